/* relay: move bytes both ways between two connected sockets on a libev loop,
 * zero-copy where the kernel allows it.
 *
 * A relay is two symmetric halves. Half i reads its own socket and writes what
 * it read into the other half's socket. Small messages (request/response
 * traffic) go by recv into a stack buffer and send, which costs fewer and
 * cheaper system calls than splice; once a read fills that buffer the
 * direction is bulk and moves through a pipe with splice(2), zero copy, until
 * reads get small again. When splice cannot be used (a socket type without
 * it, no pipe), copying is the only mode. A short read means the socket is
 * drained, so the half goes back to the event loop instead of asking again.
 * Back-pressure is by not reading: a half reads only while nothing it read
 * before is waiting to be written, so at most one pipe's worth (or one
 * buffer's) is in flight per direction.
 * When a half's input ends (EOF) and everything it read is written, the other
 * socket gets shutdown(SHUT_WR): half-close is carried, not turned into a
 * close. The relay ends when both directions are finished, or on the first
 * error; either way on_close runs exactly once, with a reason.
 *
 * Ownership: the relay owns both fds and both pipes from relay_start on and
 * closes them in relay_close; the caller owns the struct relay memory, which
 * must stay valid until on_close has run (on_close may free it). The program
 * must ignore SIGPIPE (a write to a reset peer is reported as an error). */
#ifndef OPSKIT_RELAY_H
#define OPSKIT_RELAY_H

#include <ev.h>
#include <stdint.h>
#include <sys/types.h>

struct relay;

struct relay_half {
    struct relay *r;
    int fd;              /* this side's socket */
    int pipe[2];         /* read end, write end; -1 when splice is not used */
    int splicing;        /* current mode: bulk through the pipe */
    int small_reads;     /* consecutive small splice reads (back to copying at 4) */
    char *buf;           /* what a send left over (owned, on demand), RELAY_BUF_SIZE */
    size_t pending;      /* bytes read from fd not yet written to other->fd */
    size_t buf_off;      /* start of pending data in buf (copy mode) */
    int pending_in_pipe; /* pending bytes are in the pipe, not in buf */
    uint64_t splice_bytes; /* of bytes, how many moved by splice (for tests) */
    int eof;             /* fd's input ended */
    int shut;            /* other->fd got shutdown(SHUT_WR) for this direction */
    uint64_t bytes;      /* bytes read from fd and written to the other side */
    ev_io rio, wio;      /* rio: fd readable; wio: other->fd writable for our data */
    struct relay_half *other;
};

/* Why a relay ended (for logs). */
enum relay_end { RELAY_DONE, RELAY_ERROR, RELAY_CLOSED_BY_OWNER };

typedef void (*relay_close_cb)(struct relay *r, enum relay_end why, const char *reason);

struct relay {
    struct ev_loop *loop;
    struct relay_half h[2]; /* h[0]: reads side A (e.g. the client), h[1]: side B */
    relay_close_cb on_close;
    void *data;             /* the owner's */
    const char *name[2];    /* names of side A and B for reasons ("client", "backend") */
    int closed;
    char reason[160];
};

#define RELAY_BUF_SIZE 65536   /* one copy-mode read; a full one switches to splice */
#define RELAY_PIPE_SIZE (256 * 1024) /* asked of F_SETPIPE_SZ; the kernel may give less */

/* Start relaying between connected non-blocking sockets a and b. Splice is
 * used when use_splice is nonzero and pipes can be made. Returns 0, or -1
 * with errno set (nothing started; the caller still owns a and b). */
int relay_start(struct relay *r, struct ev_loop *loop, int a, int b, int use_splice,
                relay_close_cb on_close, void *data);

/* End the relay now (idempotent): stops watchers, closes fds and pipes,
 * frees buffers and calls on_close once with why and reason. */
void relay_close(struct relay *r, enum relay_end why, const char *reason);

/* Set each watcher from the halves' state (called after every event). */
void relay_update_io(struct relay *r);

#endif
