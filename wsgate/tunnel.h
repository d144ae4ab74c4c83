/* tunnel: one relayed connection of wsgate — a WebSocket on one side, a plain
 * TCP socket on the other — used by both wsgate-server (the TCP side is the
 * upstream) and wsgate-client (the TCP side is the local application).
 *
 * The two directions are typed halves (struct tunnel_down, tunnel_up):
 *   down, WebSocket → TCP: bytes are read into down.buf, the decoder unmasks
 *     data payloads in place, and each chunk is written to the TCP socket
 *     straight from down.buf. While a chunk is not fully written the
 *     WebSocket is not read (back-pressure: at most one read buffer per
 *     direction).
 *   up, TCP → WebSocket: bytes are read into up.buf behind WS_MAX_HEADER
 *     bytes of headroom, the frame header is written in front of them (and
 *     the payload masked in place on the client), and header + payload leave
 *     in one write. While that frame is not fully sent the TCP side is not
 *     read.
 * Both directions copy; neither splices. splice(2) for the unmasked server→
 * client payload was measured twice on this kernel (6.18, loopback) and
 * gave no throughput: a one-hop socket→pipe→socket relay moved 1737 MB/s
 * against 1765 for read/write of 512 KiB (medians of 8 interleaved 4 GiB
 * runs); it spent 25 % less CPU in the relay but more in the rest of the
 * system (the sender's fresh pages, more and smaller skbs), and in the
 * tunnel it was slower. A frame would also need its header written between
 * a splice in and a splice out, and the client to read headers alone.
 * Control frames (pong, close, the half-close marker) queue in a small fixed
 * buffer and are sent between data frames. Each half has its own state
 * (open, ended, dead); the tunnel has one close state (enum tunnel_state)
 * that only moves forward: handshake, open, closing, closed or gone.
 *
 * Half-close: when both ends agreed on the subprotocol "wsgate-half-close"
 * (see WSG_HALF_CLOSE_PROTOCOL), an EMPTY binary message means "no more data
 * in this direction": the receiver shuts down the write side of its TCP
 * socket, and the other direction keeps flowing. The tunnel ends with a close
 * handshake when both directions have ended. Without the agreement (the Go
 * originals, other peers) EOF on the TCP side closes the whole tunnel, as the
 * originals do.
 *
 * Ownership: a tunnel owns its two sockets, both buffers and its watchers
 * (the handshake runs on a struct wsg_conn of its own, handed over by
 * tunnel_start);
 * tunnel_close() is the one idempotent exit that stops everything, logs the
 * final line (status, read/write byte counts, disconnect_at) and frees it. A
 * tunnel lives on one worker's loop and is touched only by that thread. */
#ifndef WSGATE_TUNNEL_H
#define WSGATE_TUNNEL_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "transport.h"
#include "ws.h"
#include "ws_deflate.h"

#define WSG_HALF_CLOSE_PROTOCOL "wsgate-half-close"
/* each direction's read buffer: 512 KiB moved 6-8 % more than 256 KiB
 * through one tunnel on loopback, both ways (fewer reads, writes and
 * wake-ups per byte); 1 MiB no more than 512 KiB */
#define WSG_BUF_SIZE (512 * 1024)
#define WSG_IO_BUF (WS_MAX_HEADER + WSG_BUF_SIZE) /* allocation of each (up: header room) */
#define WSG_IO_CACHE 4                 /* buffers a worker keeps from closed tunnels */
#define WSG_MAX_MESSAGE (64u << 20)    /* default max payload of one received message */
#define WSG_DUMP_MAX (64 * 1024)       /* dump bytes buffered before a forced flush */

struct tunnel;
struct jsonlog_field;

/* libev events for a transport readiness mask (TRANSPORT_READABLE...). */
static inline int wsg_ev_events(unsigned mask)
{
    return (mask & TRANSPORT_READABLE ? EV_READ : 0) | (mask & TRANSPORT_WRITABLE ? EV_WRITE : 0);
}

/* Make io wait for the readiness in mask on fd (restarting it only when that
 * changes). */
static inline void wsg_io_wait(struct ev_loop *loop, ev_io *io, int fd, unsigned mask)
{
    int ev = wsg_ev_events(mask);
    if (ev_is_active(io) && io->fd == fd && (io->events & (EV_READ | EV_WRITE)) == ev)
        return;
    ev_io_stop(loop, io);
    ev_io_set(io, fd, ev);
    ev_io_start(loop, io);
}

/* A WebSocket connection during its handshake: the transport (once there
 * is one), a read and a write watcher and a deadline, all with the
 * handshake code's own callbacks (their data: the tunnel). It lives in the
 * handshake state of server.c/client.c; tunnel_start() takes the transport
 * and stops the rest, and the tunnel relays on watchers of its own. */
struct wsg_conn {
    struct ev_loop *loop;
    struct transport tr; /* tr.ops NULL: no transport yet */
    ev_io rio, wio;
    ev_timer deadline;
};

typedef void (*wsg_io_cb)(struct ev_loop *loop, ev_io *io, int revents);
typedef void (*wsg_timer_cb)(struct ev_loop *loop, ev_timer *tm, int revents);

void wsg_conn_init(struct wsg_conn *c, struct ev_loop *loop, void *data, wsg_io_cb on_read,
                   wsg_io_cb on_write, wsg_timer_cb on_deadline);
/* Wait for the transport to be readable / writable as it needs (TLS may
 * need the other readiness); stop waiting. */
void wsg_conn_want_read(struct wsg_conn *c);
void wsg_conn_want_write(struct wsg_conn *c);
void wsg_conn_stop_read(struct wsg_conn *c);
void wsg_conn_stop_write(struct wsg_conn *c);
/* (Re)start the deadline secs from now; secs <= 0 stops it. */
void wsg_conn_arm(struct wsg_conn *c, double secs);
/* Stop everything and close the transport if it was not handed on. */
void wsg_conn_free(struct wsg_conn *c);

/* Settings shared by every tunnel of a program (read-only once running). */
struct wsg_opts {
    double handshake_timeout; /* seconds */
    double dial_timeout;
    double write_timeout;     /* bounds the close handshake and handshake writes */
    double ping_interval;     /* send a ping this often (0 = never) */
    double ping_timeout;      /* drop a peer silent this long while we could read */
    int dump_tcp;             /* 0 off, 1 ws→tcp, 2 both (server) */
    int compression;          /* negotiate permessage-deflate */
    uint64_t max_message;     /* max payload of one received message, 0 = none */
};

/* Keepalive and message-size flags, the same in both programs (peer: who
 * the other end is, for the help text; dash: "-" or "--"). */
struct wsg_keepalive {
    int64_t ping_interval, ping_timeout; /* ns; ping_timeout -1: 3x the interval */
    uint64_t max_message;
};
#define WSG_KEEPALIVE_DEFAULTS { 0, -1, WSG_MAX_MESSAGE }
#define WSG_KEEPALIVE_FLAGS(k, peer, dash)                                                    \
    { "ping-interval", 0, FLAG_DURATION, &(k)->ping_interval, "DURATION",                    \
      "Send a WebSocket ping this often; 0 = never (default 0)", NULL, NULL, "0s..24h" },    \
    { "ping-timeout", 0, FLAG_DURATION, &(k)->ping_timeout, "DURATION",                      \
      "Drop a tunnel whose " peer " gave no sign of life this long (default 3x " dash        \
      "ping-interval)", NULL, NULL, "1ms..24h" },                                             \
    { "max-message-size", 0, FLAG_SIZE, &(k)->max_message, "SIZE",                           \
      "Largest WebSocket message accepted; bigger ones are refused with close 1009 "         \
      "(default 64MiB)", NULL, NULL, "1KiB..1GiB" }

/* Set the keepalive fields of opts from the flags. */
void wsg_keepalive_apply(const struct wsg_keepalive *k, struct wsg_opts *opts);

/* What both programs do before they start: a closed peer is an error, not
 * SIGPIPE; the soft descriptor limit goes up to the hard one (as the Go
 * runtime does for the originals); relay buffers are mmap'd so that the
 * idle sweep gives them back to the system (glibc would otherwise raise the
 * threshold and keep them). */
void wsg_process_setup(void);

/* Per-worker state: one libev loop and the tunnels on it. */
struct wsg_worker {
    struct ev_loop *loop;
    const struct wsg_opts *opts;
    enum ws_role role;
    unsigned long open;    /* tunnels (including handshakes) alive */
    unsigned long relaying; /* tunnels past the handshake */
    void (*on_idle)(struct wsg_worker *w); /* called when open drops to 0 */
    void (*on_close)(struct tunnel *t);    /* a relaying tunnel ends (metrics) */
    size_t app_size;         /* bytes of the program's own per-tunnel fields (t->app) */
    /* the log fields of every line about t, in order, into f (at most 10);
     * NULL: seq, remote-addr, destination, upstream */
    size_t (*log_fields)(struct tunnel *t, struct jsonlog_field *f);
    struct tunnel *tunnels;  /* every tunnel on this worker (for the idle sweep) */
    ev_timer sweep;
    uint8_t *cached[WSG_IO_CACHE]; /* free relay buffers (see tunnel.c) */
    unsigned ncached;
    bool cache_hit;          /* one was taken since the last sweep */
    struct worker *lw;       /* its lib/workers loop (wsg_worker_attach), or NULL */
    void *owner;
};

/* Names of the places a tunnel can end, for disconnect_at (the server uses
 * the original's names). */
struct wsg_disconnect_names {
    const char *ws_read, *tcp_write, *tcp_read, *ws_write;
};

/* The tunnel's close state: one value, moving only forward. */
enum tunnel_state {
    TUNNEL_HANDSHAKE, /* owned by server.c/client.c handshake code */
    TUNNEL_OPEN,      /* relaying (either direction may have ended alone: half-close) */
    TUNNEL_CLOSING,   /* our close frame queued; the peer's not yet received */
    TUNNEL_CLOSED,    /* both close frames: ours goes out, then the end */
    TUNNEL_GONE,      /* the WebSocket is finished (EOF, or a socket failed): the TCP
                       * side gets what it still takes (under a deadline), then the end */
};

/* One direction's state. */
enum half_state {
    HALF_OPEN,
    HALF_ENDED, /* end of stream: down, the peer's marker came and the TCP write side
                 * is shut; up, the TCP side read EOF (marker queued on half-close) */
    HALF_DEAD,  /* down only: the TCP socket failed; what still arrives is dropped */
};

/* WebSocket → TCP: frames read into buf are decoded in place and each data
 * chunk is written to the TCP side straight from buf (or from zin when
 * inflated); while a chunk is pending the WebSocket is not read. */
struct tunnel_down {
    enum half_state st;
    struct ws_decoder dec;
    uint8_t *buf;            /* owned, allocated on demand; WSG_BUF_SIZE */
    size_t len, pos;         /* bytes held / bytes already decoded */
    const uint8_t *out;      /* pending chunk for the TCP side (inside buf or zin) */
    size_t out_len;
    bool inflating;          /* pmd holds received input not yet inflated out */
    uint8_t *zin;            /* owned; inflated bytes for the TCP side (WSG_BUF_SIZE) */
    uint64_t bytes;          /* payload bytes received over the WebSocket */
};

/* TCP → WebSocket: a read lands in buf behind WS_MAX_HEADER bytes of
 * headroom, the frame header goes in front (payload masked in place on the
 * client, or compressed into zout) and the frame leaves in one write; while
 * it is pending the TCP side is not read. */
struct tunnel_up {
    enum half_state st;
    uint8_t *buf;            /* owned, on demand; WS_MAX_HEADER + WSG_BUF_SIZE */
    uint8_t *out;            /* pending data frame (inside buf or zout) */
    size_t out_len, out_payload;
    uint8_t *zout;           /* owned; compressed frame: header room + bound */
    uint64_t bytes;          /* payload bytes sent over the WebSocket */
};

struct tunnel_dump;

struct tunnel {
    struct wsg_worker *w;
    struct tunnel *prev, *next; /* w->tunnels */
    bool busy;               /* data moved since the last idle sweep */
    enum tunnel_state state;
    bool half_close;         /* the peers agreed on WSG_HALF_CLOSE_PROTOCOL */
    bool failed;             /* the final line says "Failed" */
    uint16_t close_code;     /* peer's close code (1005: frame had none), 0 = none received */

    struct tunnel_down down;
    struct tunnel_up up;

    /* the WebSocket connection */
    struct transport ws;
    ev_io ws_rio, ws_wio;
    uint8_t ctrl[4 * WS_MAX_CONTROL_FRAME]; /* control frames queued behind up.out */
    size_t ctrl_len;
    /* the TCP side (for --stdio: tcp_fd is stdin, tcp_wfd stdout; else -1) */
    int tcp_fd;
    int tcp_wfd;
    ev_io tcp_rio, tcp_wio;

    /* readiness known from the last events: an operation is tried while its
     * flag is set and cleared by its EAGAIN (the watchers set them again) */
    bool ws_rd_ok, ws_wr_ok, tcp_rd_ok, tcp_wr_ok;
    unsigned moves;          /* counts progress within one round of tunnel_progress() */

    ev_timer timer;          /* close-handshake / drain deadline */
    ev_timer ping_timer;
    ev_tstamp last_alive;    /* last byte received from the peer */
    ev_tstamp last_tx;       /* last write progress towards the peer */

    /* log fields */
    uint64_t seq;
    const char *disconnect_at;
    const struct wsg_disconnect_names *names;
    char remote_addr[80], dest[1024], upstream[300];
    void *app;               /* the program's own fields: w->app_size bytes, zeroed */
    struct tunnel_dump *dump; /* -dump-tcp state, allocated on first use */

    /* permessage-deflate (when negotiated: set pmd_on and pmd before tunnel_start) */
    bool pmd_on;
    struct ws_pmd pmd;

    void *hs;                /* handshake state of server.c/client.c, owned by them */
    void (*hs_free)(struct tunnel *t);
};

/* Start the worker's idle sweep: every 2 s, tunnels that moved no data since
 * the last sweep give their buffers back (they are allocated again on the
 * next read), so an idle tunnel costs a struct and its sockets. */
void wsg_worker_start_sweep(struct wsg_worker *w);
/* Stop it (a worker that stops) and free the buffers the worker keeps for
 * new tunnels; tunnels that close after this free theirs. */
void wsg_worker_stop_sweep(struct wsg_worker *w);

/* Both programs run their tunnels on lib/workers loops: bind w to its loop
 * lw (lw->data = w, w->loop = lw->loop) and start its sweep. The rest are
 * the workers_config callbacks for such loops: open tunnels, stop the sweep
 * when a loop stops accepting, and the end of a shutdown (logs the
 * originals' line, breaks the main loop; after the timeout, exits 0). */
struct worker;
struct workers;
struct acceptor;
void wsg_worker_attach(struct wsg_worker *w, struct worker *lw);
/* In an acceptor callback of such a loop: the accepting wsg_worker's owner. */
void *wsg_accept_owner(const struct acceptor *a);
unsigned long wsg_worker_open_count(struct worker *lw);
void wsg_worker_stopping(struct worker *lw);
void wsg_workers_done(struct workers *set, int timed_out);

/* Allocate a tunnel on worker w (counted in w->open). fds are not set yet. */
struct tunnel *tunnel_new(struct wsg_worker *w, const struct wsg_disconnect_names *names);

/* Start relaying: the handshake on c is done and t->tcp_fd is set; `early`
 * bytes (len) that followed the handshake head are WebSocket data (copied).
 * Takes c's transport, stops c's watchers, then ends the handshake state
 * (t->hs_free, which may free c). Logs the "Connected" line after the
 * first progress (before the final line in any case). */
void tunnel_start(struct tunnel *t, struct wsg_conn *c, const uint8_t *early, size_t len);

/* The one exit: stop watchers, close both sockets, log the final line (when
 * the tunnel was open) and free. Safe to call once; t is invalid after it. */
void tunnel_close(struct tunnel *t);

/* Log fields common to every line about t ("seq", "remote-addr"...). */
void tunnel_log(struct tunnel *t, int level, const char *msg, const char *k1, const char *v1,
                const char *k2, const char *v2);

/* Format a hex dump the way the Go original's dumper does: "hex" is the bytes
 * as lowercase hex pairs separated by spaces, "ascii" the printable bytes
 * (0x20..0x7e) with '.' for the others. hex needs 3*len bytes, ascii len+1. */
void wsg_dump_format(const uint8_t *p, size_t len, char *hex, char *ascii);

#endif
