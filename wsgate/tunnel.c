/* tunnel: the relay between a WebSocket and a TCP socket (see tunnel.h).
 *
 * Every watcher callback records the readiness it saw and runs
 * tunnel_progress(): one loop that moves both halves as far as they go and
 * ends in tunnel_after_event(), which either closes the tunnel (the single
 * exit) or sets the four watchers from the state. Failures go through
 * tunnel_fail(). Nothing frees the tunnel in the middle of a callback. */
#include "tunnel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <malloc.h>
#include <signal.h>

#include "jsonlog.h"
#include "net.h"
#include "workers.h"

static void ws_io_cb(struct ev_loop *loop, ev_io *io, int revents);
static void tcp_read_cb(struct ev_loop *loop, ev_io *io, int revents);
static void tcp_write_cb(struct ev_loop *loop, ev_io *io, int revents);
static void timer_cb(struct ev_loop *loop, ev_timer *tm, int revents);
static void ping_timer_cb(struct ev_loop *loop, ev_timer *tm, int revents);
static void dump_release(struct tunnel *t);

void wsg_keepalive_apply(const struct wsg_keepalive *k, struct wsg_opts *opts)
{
    opts->max_message = k->max_message;
    opts->ping_interval = (double)k->ping_interval / 1e9;
    opts->ping_timeout =
        k->ping_timeout < 0 ? 3 * opts->ping_interval : (double)k->ping_timeout / 1e9;
}

void wsg_process_setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    net_raise_fd_limit(); /* two descriptors per tunnel */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
}

/* ---- the handshake's connection ---- */

void wsg_conn_init(struct wsg_conn *c, struct ev_loop *loop, void *data, wsg_io_cb on_read,
                   wsg_io_cb on_write, wsg_timer_cb on_deadline)
{
    memset(&c->tr, 0, sizeof c->tr);
    c->tr.fd = -1;
    c->loop = loop;
    ev_init(&c->rio, on_read);
    ev_init(&c->wio, on_write);
    ev_init(&c->deadline, on_deadline);
    c->rio.data = c->wio.data = c->deadline.data = data;
}

void wsg_conn_want_read(struct wsg_conn *c)
{
    wsg_io_wait(c->loop, &c->rio, c->tr.fd, c->tr.read_wait);
}

void wsg_conn_want_write(struct wsg_conn *c)
{
    wsg_io_wait(c->loop, &c->wio, c->tr.fd, c->tr.write_wait);
}

void wsg_conn_stop_read(struct wsg_conn *c)
{
    ev_io_stop(c->loop, &c->rio);
}

void wsg_conn_stop_write(struct wsg_conn *c)
{
    ev_io_stop(c->loop, &c->wio);
}

void wsg_conn_arm(struct wsg_conn *c, double secs)
{
    ev_timer_stop(c->loop, &c->deadline);
    if (secs > 0) {
        ev_timer_set(&c->deadline, secs, 0.);
        ev_timer_start(c->loop, &c->deadline);
    }
}

void wsg_conn_free(struct wsg_conn *c)
{
    ev_io_stop(c->loop, &c->rio);
    ev_io_stop(c->loop, &c->wio);
    ev_timer_stop(c->loop, &c->deadline);
    transport_close(&c->tr);
    c->tr.ops = NULL;
}

struct tunnel *tunnel_new(struct wsg_worker *w, const struct wsg_disconnect_names *names)
{
    struct tunnel *t = calloc(1, sizeof *t + w->app_size);
    if (!t)
        return NULL;
    t->app = w->app_size ? (void *)(t + 1) : NULL;
    t->w = w;
    t->names = names;
    t->tcp_fd = -1;
    t->tcp_wfd = -1;
    t->ws.fd = -1;
    t->state = TUNNEL_HANDSHAKE;
    ev_init(&t->ws_rio, ws_io_cb);
    ev_init(&t->ws_wio, ws_io_cb);
    ev_init(&t->tcp_rio, tcp_read_cb);
    ev_init(&t->tcp_wio, tcp_write_cb);
    t->ws_rio.data = t->ws_wio.data = t->tcp_rio.data = t->tcp_wio.data = t;
    ev_init(&t->timer, timer_cb);
    t->timer.data = t;
    ev_init(&t->ping_timer, ping_timer_cb);
    t->ping_timer.data = t;
    __atomic_add_fetch(&w->open, 1, __ATOMIC_RELAXED); /* /metrics reads it */
    t->next = w->tunnels;
    if (w->tunnels)
        w->tunnels->prev = t;
    w->tunnels = t;
    return t;
}

/* Make sure *b holds size bytes (buffers come and go with traffic). */
static bool need_buf(uint8_t **b, size_t size)
{
    if (!*b)
        *b = malloc(size);
    return *b != NULL;
}

/* The two relay buffers (one size for both halves) come from the worker's
 * small cache of buffers that closed tunnels left, so that short
 * connections cost no mmap, munmap (a TLB shootdown in a threaded process)
 * or page faults. The cache is emptied by a sweep that finds it unused
 * since the previous one, and is off while the sweep is (stopping). */
static bool need_io_buf(struct wsg_worker *w, uint8_t **b)
{
    if (!*b && w->ncached > 0) {
        *b = w->cached[--w->ncached];
        w->cache_hit = true;
    }
    return need_buf(b, WSG_IO_BUF);
}

static void put_io_buf(struct wsg_worker *w, uint8_t *b)
{
    if (b && ev_is_active(&w->sweep) && w->ncached < WSG_IO_CACHE)
        w->cached[w->ncached++] = b;
    else
        free(b);
}

static void drop_io_cache(struct wsg_worker *w)
{
    while (w->ncached > 0)
        free(w->cached[--w->ncached]);
}

static void release_idle_buffers(struct tunnel *t)
{
    if (t->down.len == 0 && t->down.out_len == 0 && !t->down.inflating) {
        free(t->down.buf);
        t->down.buf = NULL;
        free(t->down.zin);
        t->down.zin = NULL;
    }
    if (t->up.out_len == 0) {
        free(t->up.buf);
        t->up.buf = NULL;
        free(t->up.zout);
        t->up.zout = NULL;
    }
    dump_release(t);
    if (t->pmd_on && !t->down.inflating)
        ws_pmd_idle(&t->pmd);
    transport_release(&t->ws);
}

static void sweep_cb(struct ev_loop *loop, ev_timer *tm, int revents)
{
    (void)loop;
    (void)revents;
    struct wsg_worker *w = tm->data;
    for (struct tunnel *t = w->tunnels; t; t = t->next) {
        if (t->state != TUNNEL_HANDSHAKE && !t->busy)
            release_idle_buffers(t);
        t->busy = false;
    }
    if (!w->cache_hit)
        drop_io_cache(w);
    w->cache_hit = false;
}

void wsg_worker_start_sweep(struct wsg_worker *w)
{
    ev_timer_init(&w->sweep, sweep_cb, 2., 2.);
    w->sweep.data = w;
    ev_timer_start(w->loop, &w->sweep);
}

void wsg_worker_stop_sweep(struct wsg_worker *w)
{
    ev_timer_stop(w->loop, &w->sweep);
    drop_io_cache(w);
}

void wsg_worker_attach(struct wsg_worker *w, struct worker *lw)
{
    w->lw = lw;
    w->loop = lw->loop;
    lw->data = w;
    wsg_worker_start_sweep(w);
}

void *wsg_accept_owner(const struct acceptor *a)
{
    return ((struct wsg_worker *)((struct worker *)a->data)->data)->owner;
}

unsigned long wsg_worker_open_count(struct worker *lw)
{
    return __atomic_load_n(&((struct wsg_worker *)lw->data)->open, __ATOMIC_RELAXED);
}

void wsg_worker_stopping(struct worker *lw)
{
    wsg_worker_stop_sweep(lw->data);
}

void wsg_workers_done(struct workers *set, int timed_out)
{
    if (timed_out) {
        jsonlog(JSONLOG_INFO, "Timeout, close some connections. Shutdown");
        _exit(0); /* the kernel closes what is still open, in every thread */
    }
    jsonlog(JSONLOG_INFO, "All connections closed. Shutdown");
    ev_break(set->main_loop, EVBREAK_ALL);
}

/* ---- logging ---- */

static size_t common_fields(struct tunnel *t, struct jsonlog_field *f)
{
    if (t->w->log_fields)
        return t->w->log_fields(t, f);
    size_t n = 0;
    f[n++] = JL_UINT("seq", t->seq);
    f[n++] = JL_STR("remote-addr", t->remote_addr);
    f[n++] = JL_STR("destination", t->dest);
    f[n++] = JL_STR("upstream", t->upstream);
    return n;
}

void tunnel_log(struct tunnel *t, int level, const char *msg, const char *k1, const char *v1,
                const char *k2, const char *v2)
{
    struct jsonlog_field f[12];
    size_t n = common_fields(t, f);
    if (k1)
        f[n++] = JL_STR(k1, v1);
    if (k2)
        f[n++] = JL_STR(k2, v2);
    jsonlog_write((enum jsonlog_level)level, msg, f, n);
}

void wsg_dump_format(const uint8_t *p, size_t len, char *hex, char *ascii)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        hex[3 * i] = digits[p[i] >> 4];
        hex[3 * i + 1] = digits[p[i] & 15];
        hex[3 * i + 2] = i + 1 < len ? ' ' : '\0';
        ascii[i] = (p[i] >= 0x20 && p[i] <= 0x7e) ? (char)p[i] : '.';
    }
    if (len == 0)
        hex[0] = '\0';
    ascii[len] = '\0';
}

/* -dump-tcp: the bytes relayed each way, logged in lines of at most
 * WSG_DUMP_MAX bytes, at the latest 0.3 s after they passed. Only tunnels
 * that dump carry this (t->dump). */
struct tunnel_dump {
    uint8_t *buf[2];  /* direction 1 (ws→tcp), 2 (tcp→ws); freed when idle */
    size_t len[2];
    ev_timer timer;
};

static void dump_flush(struct tunnel *t, int dir)
{
    struct tunnel_dump *d = t->dump;
    size_t len = d ? d->len[dir] : 0;
    if (len == 0)
        return;
    char *hex = malloc(3 * len + 1), *ascii = malloc(len + 1);
    if (hex && ascii) {
        wsg_dump_format(d->buf[dir], len, hex, ascii);
        struct jsonlog_field f[12];
        size_t n = common_fields(t, f);
        f[n++] = JL_UINT("direction", (unsigned)dir + 1);
        f[n++] = JL_STR("hex", hex);
        f[n++] = JL_STR("ascii", ascii);
        jsonlog_write(JSONLOG_INFO, "dump", f, n);
    }
    free(hex);
    free(ascii);
    d->len[dir] = 0;
}

static void dump_timer_cb(struct ev_loop *loop, ev_timer *tm, int revents)
{
    (void)loop;
    (void)revents;
    struct tunnel *t = tm->data;
    dump_flush(t, 0);
    dump_flush(t, 1);
}

/* Record relayed bytes for -dump-tcp (dir 0 = ws→tcp "1", 1 = tcp→ws "2"). */
static void dump_add(struct tunnel *t, int dir, const uint8_t *p, size_t len)
{
    int level = t->w->opts->dump_tcp;
    if (level < dir + 1 || t->w->role != WS_ROLE_SERVER)
        return;
    if (!t->dump) {
        if (!(t->dump = calloc(1, sizeof *t->dump)))
            return;
        ev_init(&t->dump->timer, dump_timer_cb);
        t->dump->timer.data = t;
    }
    struct tunnel_dump *d = t->dump;
    if (!d->buf[dir] && !(d->buf[dir] = malloc(WSG_DUMP_MAX)))
        return;
    while (len > 0) {
        if (d->len[dir] == WSG_DUMP_MAX)
            dump_flush(t, dir);
        size_t k = WSG_DUMP_MAX - d->len[dir];
        if (k > len)
            k = len;
        memcpy(d->buf[dir] + d->len[dir], p, k);
        d->len[dir] += k;
        p += k;
        len -= k;
    }
    if (!ev_is_active(&d->timer)) {
        ev_timer_set(&d->timer, 0.3, 0.3);
        ev_timer_start(t->w->loop, &d->timer);
    }
}

/* Idle: give back the buffers that hold nothing. */
static void dump_release(struct tunnel *t)
{
    for (int dir = 0; t->dump && dir < 2; dir++) {
        if (t->dump->len[dir] == 0) {
            free(t->dump->buf[dir]);
            t->dump->buf[dir] = NULL;
        }
    }
}

static void dump_free(struct tunnel *t)
{
    if (!t->dump)
        return;
    ev_timer_stop(t->w->loop, &t->dump->timer);
    free(t->dump->buf[0]);
    free(t->dump->buf[1]);
    free(t->dump);
    t->dump = NULL;
}

/* ---- state changes ---- */

/* The places a tunnel can end; t->names gives each its disconnect_at name. */
enum tunnel_at { AT_WS_READ, AT_TCP_WRITE, AT_TCP_READ, AT_WS_WRITE };

/* The first place recorded is the one logged. */
static void set_where(struct tunnel *t, enum tunnel_at at)
{
    const struct wsg_disconnect_names *nm = t->names;
    const char *name[] = { nm->ws_read, nm->tcp_write, nm->tcp_read, nm->ws_write };
    if (!t->disconnect_at)
        t->disconnect_at = name[at];
}

static void queue_ctrl(struct tunnel *t, unsigned opcode, const void *payload, size_t len)
{
    if (t->ctrl_len + WS_MAX_CONTROL_FRAME > sizeof t->ctrl)
        return; /* only when the peer floods pings faster than it reads: skip a pong */
    ssize_t n = ws_control_frame(t->ctrl + t->ctrl_len, t->w->role, opcode, payload, len);
    if (n > 0)
        t->ctrl_len += (size_t)n;
}

static void arm_timer(struct tunnel *t, double after)
{
    ev_timer_stop(t->w->loop, &t->timer);
    ev_timer_set(&t->timer, after, 0.);
    ev_timer_start(t->w->loop, &t->timer);
}

/* Queue our close frame after any pending data and stop taking new data
 * (once: only an open tunnel has not sent it, or cannot any more). */
static void begin_close(struct tunnel *t, uint16_t code, const char *reason)
{
    if (t->state != TUNNEL_OPEN)
        return;
    if (t->ctrl_len + WS_MAX_CONTROL_FRAME > sizeof t->ctrl)
        t->ctrl_len = 0; /* pongs may be dropped; the close may not */
    ssize_t n = ws_close_frame(t->ctrl + t->ctrl_len, t->w->role, code, reason);
    if (n > 0)
        t->ctrl_len += (size_t)n;
    t->state = TUNNEL_CLOSING;
    arm_timer(t, t->w->opts->write_timeout > 0 ? t->w->opts->write_timeout : 10.);
}

/* The one failure path: mark t failed at `at`, log msg with "error" (msg
 * NULL: the caller logged its own line), and end the tunnel:
 * - code 0: the socket at `at` failed and nothing more can be done on it:
 *   drop all pending output; tunnel_after_event() closes at once.
 * - else: queue our close frame (code, reason) behind the pending data and
 *   read no more from the side that failed (the peer at AT_WS_READ, the TCP
 *   side at AT_TCP_READ); the close handshake or its deadline ends it. */
static void tunnel_fail(struct tunnel *t, enum tunnel_at at, const char *msg, const char *error,
                        uint16_t code, const char *reason)
{
    t->failed = true;
    set_where(t, at);
    if (msg)
        tunnel_log(t, JSONLOG_WARN, msg, "error", error, NULL, NULL);
    if (code == 0) {
        t->state = TUNNEL_GONE; /* with nothing left to deliver: after_event closes */
        t->down.out_len = 0;
        t->up.out_len = 0;
        t->ctrl_len = 0;
        return;
    }
    begin_close(t, code, reason);
    if (at == AT_WS_READ && t->state == TUNNEL_CLOSING)
        t->state = TUNNEL_CLOSED; /* the peer broke the protocol: read nothing more */
    else if (at == AT_TCP_READ)
        t->up.st = HALF_ENDED;
}

/* ---- WebSocket → TCP ---- */

/* The descriptor to write the TCP side's output to. */
static int wfd(const struct tunnel *t)
{
    return t->tcp_wfd == -1 ? t->tcp_fd : t->tcp_wfd;
}

/* Write to the TCP side what it takes; the rest waits in down.out (a pointer
 * into the buffer it came from, which is not read into meanwhile). */
static void tcp_send(struct tunnel *t, const uint8_t *p, size_t len)
{
    while (len > 0 && t->tcp_wr_ok) {
        ssize_t n = write(wfd(t), p, len); /* SIGPIPE is ignored by both programs */
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                t->tcp_wr_ok = false;
                break;
            }
            tunnel_fail(t, AT_TCP_WRITE, "Reading from websocket", strerror(errno), 0, NULL);
            return;
        }
        p += n;
        len -= (size_t)n;
        t->moves++;
    }
    t->down.out = p;
    t->down.out_len = len;
}

/* The peer's end-of-stream marker (half-close): the TCP side reads EOF. */
static void got_ws_eof_marker(struct tunnel *t)
{
    if (t->tcp_wfd >= 0 && t->tcp_wfd != t->tcp_fd) {
        close(t->tcp_wfd); /* a pipe: EOF for the reader */
        t->tcp_wfd = -2;
    } else {
        shutdown(t->tcp_fd, SHUT_WR);
    }
    t->down.st = HALF_ENDED;
    if (t->up.st != HALF_OPEN) {
        set_where(t, AT_WS_READ);
        begin_close(t, WS_CLOSE_NORMAL, NULL);
    }
}

/* Inflate what the compressor state holds and write it to the TCP side,
 * until done or the TCP side is full (resumed from ws_pump). */
static void inflate_some(struct tunnel *t)
{
    while (t->down.inflating && t->down.out_len == 0 &&
           (t->state == TUNNEL_OPEN || (t->state == TUNNEL_CLOSING && !t->failed))) {
        size_t produced = 0;
        int rc = ws_pmd_inflate_output(&t->pmd, t->down.zin, WSG_BUF_SIZE, &produced);
        if (produced > 0) {
            t->down.bytes += produced;
            dump_add(t, 0, t->down.zin, produced);
            tcp_send(t, t->down.zin, produced);
        }
        if (rc == 0) {
            t->down.inflating = false;
        } else if (rc != 1) {
            t->down.inflating = false;
            tunnel_fail(t, AT_WS_READ, "NextReader", t->pmd.error ? t->pmd.error : "inflate failed",
                        (uint16_t)rc,
                        rc == WS_CLOSE_TOO_BIG ? "message too big" : "bad compressed message");
        }
    }
}

static void handle_data(struct tunnel *t, const struct ws_event *ev)
{
    if (ev->opcode != WS_OP_BINARY) {
        struct jsonlog_field f[12];
        size_t n = common_fields(t, f);
        f[n++] = JL_INT("messageType", ev->opcode);
        jsonlog_write(JSONLOG_WARN, "BinaryMessage required", f, n);
        tunnel_fail(t, AT_WS_READ, NULL, NULL, WS_CLOSE_UNSUPPORTED_DATA, "binary messages only");
        return;
    }
    if (t->state != TUNNEL_OPEN || t->down.st != HALF_OPEN) {
        if (t->down.st == HALF_ENDED && ev->len > 0)
            tunnel_fail(t, AT_WS_READ, "NextReader", "data after end of stream",
                        WS_CLOSE_PROTOCOL_ERROR, "data after end of stream");
        return; /* closing: nowhere to deliver */
    }
    if (ev->compressed && t->pmd_on) {
        if (!need_buf(&t->down.zin, WSG_BUF_SIZE)) {
            tunnel_fail(t, AT_WS_READ, "NextReader", strerror(ENOMEM), 0, NULL);
            return;
        }
        ws_pmd_inflate_input(&t->pmd, ev->data, ev->len, ev->message_end);
        t->down.inflating = true;
        inflate_some(t);
        return;
    }
    if (ev->len == 0) {
        if (t->half_close && ev->message_start && ev->message_end)
            got_ws_eof_marker(t);
        return;
    }
    t->down.bytes += ev->len;
    dump_add(t, 0, ev->data, ev->len);
    tcp_send(t, ev->data, ev->len);
}

static void handle_control(struct tunnel *t, const struct ws_event *ev)
{
    switch (ev->opcode) {
    case WS_OP_PING:
        queue_ctrl(t, WS_OP_PONG, ev->data, ev->len);
        break;
    case WS_OP_PONG:
        break;
    case WS_OP_CLOSE: {
        t->close_code = ev->close_code;
        set_where(t, AT_WS_READ);
        if (t->state == TUNNEL_CLOSING) {
            t->state = TUNNEL_CLOSED; /* the answer to ours */
            break;
        }
        /* echo the peer's code; one not allowed on the wire (1005: none given) sends 1000 */
        uint16_t code = ws_close_code_valid(ev->close_code) ? ev->close_code : WS_CLOSE_NORMAL;
        if (ev->close_code != WS_CLOSE_NORMAL && ev->close_code != WS_CLOSE_GOING_AWAY &&
            ev->close_code != WS_CLOSE_NO_STATUS) {
            char msg[200];
            snprintf(msg, sizeof msg, "websocket: close %u (%s): %.*s", ev->close_code,
                     ws_close_code_str(ev->close_code), (int)ev->reason_len,
                     (const char *)ev->reason);
            tunnel_fail(t, AT_WS_READ, "NextReader", msg, code, NULL);
        } else {
            begin_close(t, code, NULL);
            t->state = TUNNEL_CLOSED; /* ours answers the peer's */
        }
        break;
    }
    }
}

/* Decode what is in down.buf and deliver it, until the buffer is used up or
 * the TCP side (or the control queue) cannot take more. */
static void ws_pump(struct tunnel *t)
{
    if (t->down.inflating)
        inflate_some(t);
    if (!t->down.buf)
        return;
    while (!t->down.inflating && t->down.out_len == 0 && t->state != TUNNEL_CLOSED &&
           t->ctrl_len + WS_MAX_CONTROL_FRAME <= sizeof t->ctrl) {
        struct ws_event ev;
        size_t n = ws_decoder_feed(&t->down.dec, t->down.buf + t->down.pos,
                                   t->down.len - t->down.pos, &ev);
        t->down.pos += n;
        if (n > 0 || ev.type != WS_EV_NEED_MORE)
            t->moves++;
        switch (ev.type) {
        case WS_EV_NEED_MORE:
            if (t->down.pos > 0) {
                memmove(t->down.buf, t->down.buf + t->down.pos, t->down.len - t->down.pos);
                t->down.len -= t->down.pos;
                t->down.pos = 0;
            }
            return;
        case WS_EV_DATA:
            handle_data(t, &ev);
            break;
        case WS_EV_CONTROL:
            handle_control(t, &ev);
            break;
        case WS_EV_ERROR:
            tunnel_fail(t, AT_WS_READ, "NextReader", ev.error, ev.close_code, ev.error);
            return;
        }
    }
}

static void tunnel_after_event(struct tunnel *t);

static bool ws_can_read(const struct tunnel *t)
{
    return (t->state == TUNNEL_OPEN || t->state == TUNNEL_CLOSING) && t->down.out_len == 0 &&
           !t->down.inflating && t->ctrl_len + WS_MAX_CONTROL_FRAME <= sizeof t->ctrl;
}

/* One read from the WebSocket and the deliveries it allows. */
static void ws_read_once(struct tunnel *t)
{
    if (!t->ws_rd_ok || !ws_can_read(t))
        return;
    if (!need_io_buf(t->w, &t->down.buf)) {
        tunnel_fail(t, AT_WS_READ, "NextReader", strerror(ENOMEM), 0, NULL);
        return;
    }
    size_t room = WSG_BUF_SIZE - t->down.len;
    ssize_t n = transport_read(&t->ws, t->down.buf + t->down.len, room);
    if (n > 0) {
        t->moves++;
        t->down.len += (size_t)n;
        t->busy = true;
        t->last_alive = ev_now(t->w->loop);
        ws_pump(t);
        /* a short read drained a plain socket; TLS returns a record at a
         * time, so it reads on until EAGAIN */
        if ((size_t)n < room && !t->ws.ops->pending(&t->ws) && t->ws.ops->raw)
            t->ws_rd_ok = false; /* drained for now: the watcher says when there is more */
    } else if (n == 0) {
        t->moves++;
        set_where(t, AT_WS_READ);
        if (t->state == TUNNEL_OPEN &&
            (t->down.len > t->down.pos || ws_decoder_in_message(&t->down.dec))) {
            t->failed = true; /* cut in a header, a payload or a fragmented message */
            tunnel_log(t, JSONLOG_WARN, "NextReader", "error", "unexpected EOF", NULL, NULL);
        }
        t->state = TUNNEL_GONE;
        arm_timer(t, t->w->opts->write_timeout > 0 ? t->w->opts->write_timeout : 10.);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        t->ws_rd_ok = false;
    } else if (errno != EINTR) {
        tunnel_fail(t, AT_WS_READ, "NextReader", strerror(errno), 0, NULL);
    }
}

/* ---- TCP → WebSocket ---- */

/* Send the pending data frame, the control queue behind it, and whatever the
 * transport holds itself (TLS records). */
static void ws_flush(struct tunnel *t)
{
    while (t->ws_wr_ok &&
           (t->up.out_len > 0 || t->ctrl_len > 0 || transport_unsent(&t->ws) > 0)) {
        struct iovec iov[2];
        int cnt = 0;
        if (t->up.out_len > 0)
            iov[cnt++] = (struct iovec){ t->up.out, t->up.out_len };
        if (t->ctrl_len > 0)
            iov[cnt++] = (struct iovec){ t->ctrl, t->ctrl_len };
        ssize_t n = cnt ? transport_writev(&t->ws, iov, cnt) : transport_flush(&t->ws);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                t->ws_wr_ok = false;
                return;
            }
            if (errno == EINTR)
                continue;
            tunnel_fail(t, AT_WS_WRITE, "WriteMessage", strerror(errno), 0, NULL);
            return;
        }
        t->moves++;
        if (cnt == 0)
            continue; /* the transport's own queue went out */
        size_t k = (size_t)n < t->up.out_len ? (size_t)n : t->up.out_len;
        t->last_tx = ev_now(t->w->loop);
        if (k > 0) {
            t->up.out += k;
            t->up.out_len -= k;
            n -= (ssize_t)k;
            if (t->up.out_len == 0) {
                t->up.bytes += t->up.out_payload;
                dump_add(t, 1, t->up.buf + WS_MAX_HEADER, t->up.out_payload);
                t->up.out_payload = 0;
            }
        }
        if (n > 0) {
            memmove(t->ctrl, t->ctrl + n, t->ctrl_len - (size_t)n);
            t->ctrl_len -= (size_t)n;
        }
    }
}

static bool tcp_can_read(const struct tunnel *t)
{
    return t->state == TUNNEL_OPEN && t->up.st == HALF_OPEN && t->up.out_len == 0 &&
           t->ctrl_len + WS_MAX_CONTROL_FRAME <= sizeof t->ctrl;
}

/* One read from the TCP side, framed and sent. */
static void tcp_read_once(struct tunnel *t)
{
    if (!t->tcp_rd_ok || !tcp_can_read(t))
        return;
    if (!need_io_buf(t->w, &t->up.buf) ||
        (t->pmd_on &&
         !need_buf(&t->up.zout, WS_MAX_HEADER + ws_pmd_compress_bound(WSG_BUF_SIZE)))) {
        tunnel_fail(t, AT_TCP_READ, "Reading from dest", strerror(ENOMEM), 0, NULL);
        return;
    }
    uint8_t *payload = t->up.buf + WS_MAX_HEADER;
    ssize_t n = read(t->tcp_fd, payload, WSG_BUF_SIZE);
    if (n > 0) {
        t->moves++;
        t->busy = true;
        struct ws_frame_header hdr;
        uint8_t head[WS_MAX_HEADER];
        uint8_t *body = payload;
        size_t blen = (size_t)n;
        unsigned rsv = 0;
        if (t->pmd_on) {
            body = t->up.zout + WS_MAX_HEADER;
            if (ws_pmd_compress(&t->pmd, payload, (size_t)n, body,
                                ws_pmd_compress_bound(WSG_BUF_SIZE), &blen) < 0) {
                tunnel_fail(t, AT_TCP_READ, "WriteMessage",
                            t->pmd.error ? t->pmd.error : "compression failed",
                            WS_CLOSE_INTERNAL_ERROR, "compression failed");
                return;
            }
            rsv = WS_RSV1;
        }
        size_t hl = ws_frame_begin(head, &hdr, t->w->role, WS_OP_BINARY, true, rsv,
                                   (uint64_t)blen);
        if (hdr.masked)
            ws_mask(body, blen, hdr.mask, 0);
        t->up.out = body - hl;
        memcpy(t->up.out, head, hl);
        t->up.out_len = hl + blen;
        t->up.out_payload = (size_t)n;
        ws_flush(t); /* header and payload in one write, now */
        if ((size_t)n < WSG_BUF_SIZE)
            t->tcp_rd_ok = false; /* drained for now */
    } else if (n == 0) {
        t->moves++;
        t->up.st = HALF_ENDED;
        if (t->half_close) {
            struct ws_frame_header hdr;
            t->ctrl_len += ws_frame_begin(t->ctrl + t->ctrl_len, &hdr, t->w->role,
                                          WS_OP_BINARY, true, 0, 0);
            if (t->down.st == HALF_ENDED) {
                set_where(t, AT_TCP_READ);
                begin_close(t, WS_CLOSE_NORMAL, NULL);
            }
        } else {
            set_where(t, AT_TCP_READ);
            begin_close(t, WS_CLOSE_NORMAL, NULL);
        }
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        t->tcp_rd_ok = false;
    } else if (errno != EINTR) {
        /* the TCP socket is dead both ways; the WebSocket closes cleanly */
        t->down.out_len = 0;
        t->down.st = HALF_DEAD;
        tunnel_fail(t, AT_TCP_READ, "Reading from dest", strerror(errno), WS_CLOSE_GOING_AWAY,
                    "upstream connection failed");
    }
}

/* ---- the one progress loop ---- */

/* Every event ends here: move whatever can move, both ways, until nothing
 * does (bounded, so one busy tunnel cannot starve its loop: the level-
 * triggered watchers bring it back), then set the watchers from the state.
 * Writes come first so that reads find room; no callback calls another. */
static void progress_rounds(struct tunnel *t)
{
    for (int round = 0; round < 16; round++) {
        unsigned before = t->moves;
        if (t->down.out_len > 0)
            tcp_send(t, t->down.out, t->down.out_len);
        if (t->down.out_len == 0 && t->state != TUNNEL_GONE)
            ws_pump(t); /* decoding resumes once the TCP side took the last chunk */
        ws_flush(t);
        ws_read_once(t);
        tcp_read_once(t);
        if (t->moves == before)
            break;
    }
}

static void tunnel_progress(struct tunnel *t)
{
    progress_rounds(t);
    tunnel_after_event(t);
}

/* Both WebSocket watchers: the readiness the socket reports frees whichever
 * operation waits for it (TLS may read on writable, write on readable). */
static void ws_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    struct tunnel *t = io->data;
    unsigned ready = (revents & EV_READ ? TRANSPORT_READABLE : 0) |
                     (revents & EV_WRITE ? TRANSPORT_WRITABLE : 0);
    if (ready & t->ws.read_wait)
        t->ws_rd_ok = true;
    if (ready & t->ws.write_wait)
        t->ws_wr_ok = true;
    tunnel_progress(t);
}

static void tcp_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct tunnel *t = io->data;
    t->tcp_rd_ok = true;
    tunnel_progress(t);
}

static void tcp_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct tunnel *t = io->data;
    t->tcp_wr_ok = true;
    tunnel_progress(t);
}

static void timer_cb(struct ev_loop *loop, ev_timer *tm, int revents)
{
    (void)loop;
    (void)revents;
    struct tunnel *t = tm->data;
    /* the close-handshake deadline, or the peer's EOF while the TCP side
     * still had output it would not take */
    tunnel_close(t);
}

/* Keepalive: a ping every ping_interval; a peer that gave no sign of life
 * for ping_timeout is dropped. While we are not reading the WebSocket
 * ourselves (back-pressure) the silence is ours, not the peer's. */
static void ping_timer_cb(struct ev_loop *loop, ev_timer *tm, int revents)
{
    (void)revents;
    struct tunnel *t = tm->data;
    ev_tstamp now = ev_now(loop);
    if (t->state != TUNNEL_OPEN)
        return;
    if (!ws_can_read(t))
        t->last_alive = now;
    /* our output is stuck behind a slow reader that still makes progress:
     * its pong waits behind our data */
    if ((t->up.out_len > 0 || t->ctrl_len > 0) && t->last_tx > t->last_alive)
        t->last_alive = t->last_tx;
    double limit = t->w->opts->ping_timeout;
    if (limit > 0 && now - t->last_alive >= limit) {
        tunnel_fail(t, AT_WS_READ, "NextReader", "ping timeout: peer silent", 0, NULL);
        tunnel_after_event(t); /* closes: nothing is left to send */
        return;
    }
    uint8_t payload[8];
    uint64_t ms = (uint64_t)(now * 1000);
    for (int i = 0; i < 8; i++)
        payload[i] = (uint8_t)(ms >> (56 - 8 * i));
    queue_ctrl(t, WS_OP_PING, payload, sizeof payload);
    tunnel_progress(t);
}

/* ---- after every event ---- */

static void io_set(struct ev_loop *loop, ev_io *io, int fd, int events, bool on)
{
    if (on && !ev_is_active(io)) {
        ev_io_set(io, fd, events);
        ev_io_start(loop, io);
    } else if (!on && ev_is_active(io)) {
        ev_io_stop(loop, io);
    }
}

static void tunnel_after_event(struct tunnel *t)
{
    bool ws_flushed =
        t->up.out_len == 0 && t->ctrl_len == 0 && transport_unsent(&t->ws) == 0;
    if (t->state == TUNNEL_GONE && (t->down.out_len == 0 || t->down.st != HALF_OPEN)) {
        tunnel_close(t);
        return;
    }
    if (t->state == TUNNEL_CLOSED && ws_flushed && t->down.out_len == 0) {
        tunnel_close(t);
        return;
    }
    struct ev_loop *loop = t->w->loop;
    bool want_read = ws_can_read(t);
    unsigned ws_ev =
        transport_events(&t->ws, want_read, t->state != TUNNEL_GONE && !ws_flushed);
    io_set(loop, &t->ws_rio, t->ws.fd, EV_READ, ws_ev & TRANSPORT_READABLE);
    io_set(loop, &t->ws_wio, t->ws.fd, EV_WRITE, ws_ev & TRANSPORT_WRITABLE);
    /* TLS may hold decrypted bytes the socket will not announce again */
    if (want_read && t->ws.ops->pending(&t->ws)) {
        t->ws_rd_ok = true;
        ev_feed_event(loop, &t->ws_rio, EV_READ);
    }
    io_set(loop, &t->tcp_rio, t->tcp_fd, EV_READ, tcp_can_read(t));
    io_set(loop, &t->tcp_wio, wfd(t), EV_WRITE, t->down.out_len > 0 && wfd(t) >= 0);
}

void tunnel_start(struct tunnel *t, struct wsg_conn *c, const uint8_t *early, size_t len)
{
    struct ws_decoder_config dc = { 0 };
    dc.role = t->w->role;
    dc.max_frame_size = 0;
    dc.max_message_size = t->w->opts->max_message;
    dc.binary_only = false; /* text is refused by handle_data with the original's log */
    dc.allowed_rsv = t->pmd_on ? WS_RSV1 : 0;
    ws_decoder_init(&t->down.dec, &dc);
    if (len > WSG_BUF_SIZE)
        len = WSG_BUF_SIZE;
    bool oom = len > 0 && !need_io_buf(t->w, &t->down.buf);
    if (len > 0 && !oom) {
        memcpy(t->down.buf, early, len);
        t->down.len = len;
    }
    /* the connection is the tunnel's now; the handshake state goes */
    t->ws = c->tr;
    c->tr.ops = NULL;
    c->tr.fd = -1;
    wsg_conn_free(c); /* its watchers */
    if (t->hs_free)
        t->hs_free(t);
    t->hs_free = NULL;
    if (oom) {
        tunnel_log(t, JSONLOG_ERROR, "out of memory", NULL, NULL, NULL, NULL);
        t->failed = true;
        tunnel_close(t);
        return;
    }
    /* writes and the TCP side are tried until EAGAIN says not; the
     * WebSocket was just read dry by the handshake (what it read past the
     * head is `early`), so it waits for its watcher: no read that can only
     * say EAGAIN on the way to the first byte */
    t->ws_wr_ok = t->tcp_rd_ok = t->tcp_wr_ok = true;
    t->ws_rd_ok = false;
    t->state = TUNNEL_OPEN;
    __atomic_add_fetch(&t->w->relaying, 1, __ATOMIC_RELAXED);
    t->last_alive = ev_now(t->w->loop);
    if (t->w->opts->ping_interval > 0) {
        ev_timer_set(&t->ping_timer, t->w->opts->ping_interval, t->w->opts->ping_interval);
        ev_timer_start(t->w->loop, &t->ping_timer);
    }
    /* the "Connected" line after the first moves: what the peers sent
     * first is already on its way (a log write less on the path to the
     * first byte), and nothing has closed the tunnel before after_event */
    progress_rounds(t);
    tunnel_log(t, JSONLOG_INFO, "log", "status", "Connected", NULL, NULL);
    tunnel_after_event(t);
}

void tunnel_close(struct tunnel *t)
{
    struct ev_loop *loop = t->w->loop;
    ev_io_stop(loop, &t->ws_rio);
    ev_io_stop(loop, &t->ws_wio);
    ev_io_stop(loop, &t->tcp_rio);
    ev_io_stop(loop, &t->tcp_wio);
    ev_timer_stop(loop, &t->timer);
    ev_timer_stop(loop, &t->ping_timer);
    if (t->state != TUNNEL_HANDSHAKE) {
        dump_flush(t, 0);
        dump_flush(t, 1);
        struct jsonlog_field f[16];
        size_t n = common_fields(t, f);
        f[n++] = JL_STR("status", t->failed ? "Failed" : "Suceeded");
        f[n++] = JL_UINT("read", t->down.bytes);
        f[n++] = JL_UINT("write", t->up.bytes);
        f[n++] = JL_STR("disconnect_at", t->disconnect_at ? t->disconnect_at : "");
        jsonlog_write(JSONLOG_INFO, "log", f, n);
        __atomic_sub_fetch(&t->w->relaying, 1, __ATOMIC_RELAXED);
        if (t->w->on_close)
            t->w->on_close(t);
    }
    if (t->hs_free)
        t->hs_free(t);
    if (t->tcp_fd >= 0)
        close(t->tcp_fd);
    if (t->tcp_wfd >= 0 && t->tcp_wfd != t->tcp_fd)
        close(t->tcp_wfd);
    transport_close(&t->ws);
    put_io_buf(t->w, t->down.buf);
    put_io_buf(t->w, t->up.buf);
    dump_free(t);
    if (t->pmd_on)
        ws_pmd_free(&t->pmd);
    free(t->down.zin);
    free(t->up.zout);
    struct wsg_worker *w = t->w;
    if (t->prev)
        t->prev->next = t->next;
    else
        w->tunnels = t->next;
    if (t->next)
        t->next->prev = t->prev;
    free(t);
    if (__atomic_sub_fetch(&w->open, 1, __ATOMIC_RELAXED) == 0 && w->on_idle)
        w->on_idle(w);
}
