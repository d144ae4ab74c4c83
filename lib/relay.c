/* relay: two-way relay with half-close and back-pressure (see relay.h).
 * Each half is a small loop: write what is pending, else carry an EOF as
 * shutdown(SHUT_WR), else read more. It runs a bounded number of rounds per
 * event so one fast connection cannot starve the others on its loop; the
 * level-triggered watchers bring it back. */
#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RELAY_ROUNDS 16
#define RELAY_SMALL 16384 /* a splice read below this is "small" */

static const char *side_name(const struct relay_half *h)
{
    const struct relay *r = h->r;
    int i = h == &r->h[0] ? 0 : 1;
    return r->name[i] ? r->name[i] : (i ? "b" : "a");
}

static void close_pipe(struct relay_half *h)
{
    for (int i = 0; i < 2; i++) {
        if (h->pipe[i] >= 0)
            close(h->pipe[i]);
        h->pipe[i] = -1;
    }
    h->splicing = 0;
}

/* splice failed with EINVAL: this pair of fds cannot splice. What is in the
 * pipe moves to the buffer and the half copies from now on. Returns 0 or -1. */
static int stop_splicing(struct relay_half *h)
{
    if (h->pending_in_pipe && h->pending) {
        char *nb = malloc(h->pending > RELAY_BUF_SIZE ? h->pending : RELAY_BUF_SIZE);
        if (!nb)
            return -1;
        size_t got = 0;
        while (got < h->pending) {
            ssize_t n = read(h->pipe[0], nb + got, h->pending - got);
            if (n <= 0) {
                if (n < 0 && errno == EINTR)
                    continue;
                free(nb);
                return -1;
            }
            got += (size_t)n;
        }
        free(h->buf);
        h->buf = nb;
        h->buf_off = 0;
    }
    h->pending_in_pipe = 0;
    close_pipe(h);
    return 0;
}

/* Keep what send() did not take. Returns 0 or -1 (out of memory). */
static int keep(struct relay_half *h, const char *p, size_t n)
{
    if (!h->buf) {
        h->buf = malloc(RELAY_BUF_SIZE);
        if (!h->buf)
            return -1;
    }
    memmove(h->buf, p, n);
    h->buf_off = 0;
    h->pending = n;
    h->pending_in_pipe = 0;
    return 0;
}

/* The input ended and everything read has been written: pass the EOF on. */
static void carry_eof(struct relay_half *h)
{
    if (!h->shut) {
        h->shut = 1;
        /* ENOTCONN: the other side is already gone; its own read half will
         * report that */
        shutdown(h->other->fd, SHUT_WR);
    }
}

/* Returns 0 (wait for the next event), or -1 with a reason in the relay. */
static int half_pump(struct relay_half *h)
{
    struct relay *r = h->r;
    int src = h->fd, dst = h->other->fd;
    char stack[RELAY_BUF_SIZE];
    for (int round = 0; round < RELAY_ROUNDS; round++) {
        ssize_t n;
        if (h->pending) {
            if (h->pending_in_pipe)
                n = splice(h->pipe[0], NULL, dst, NULL, h->pending,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            else
                n = send(dst, h->buf + h->buf_off, h->pending, MSG_NOSIGNAL);
            if (n > 0) {
                h->pending -= (size_t)n;
                h->buf_off += (size_t)n;
                h->bytes += (uint64_t)n;
                if (h->pending_in_pipe)
                    h->splice_bytes += (uint64_t)n;
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return 0;
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EINVAL && h->pending_in_pipe) {
                if (stop_splicing(h) < 0)
                    goto fail_write;
                continue;
            }
        fail_write:
            snprintf(r->reason, sizeof r->reason, "write %s: %s", side_name(h->other),
                     n == 0 ? "short write" : strerror(errno));
            return -1;
        }
        if (h->eof) {
            carry_eof(h);
            return 0;
        }
        if (h->splicing) {
            n = splice(src, NULL, h->pipe[1], NULL, RELAY_PIPE_SIZE,
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) {
                h->pending = (size_t)n;
                h->pending_in_pipe = 1;
                if (n < RELAY_SMALL && ++h->small_reads >= 4)
                    h->splicing = 0; /* traffic got small: copy from the next read on */
                else if (n >= RELAY_SMALL)
                    h->small_reads = 0;
                continue;
            }
            if (n < 0 && errno == EINVAL) {
                if (stop_splicing(h) < 0)
                    break;
                continue;
            }
        } else {
            n = recv(src, stack, sizeof stack, 0);
            if (n > 0) {
                /* straight on: most small messages need no buffer at all */
                ssize_t w = send(dst, stack, (size_t)n, MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    snprintf(r->reason, sizeof r->reason, "write %s: %s", side_name(h->other),
                             strerror(errno));
                    return -1;
                }
                if (w < 0)
                    w = 0;
                h->bytes += (uint64_t)w;
                if (w < n && keep(h, stack + w, (size_t)(n - w)) < 0) {
                    snprintf(r->reason, sizeof r->reason, "out of memory");
                    return -1;
                }
                if (n == (ssize_t)sizeof stack) {
                    if (h->pipe[0] >= 0 && !h->pending) {
                        h->splicing = 1; /* bulk: zero copy from now on */
                        h->small_reads = 0;
                    }
                    continue;
                }
                /* a short read: drained (epoll says when there is more), or
                 * a leftover waits until the other side can take it */
                return 0;
            }
        }
        if (n == 0) {
            /* reads happen only with nothing pending, so the EOF goes on now:
             * left to a next round, it was lost when this was the last round
             * of the event (no watcher wants an ended, drained half) */
            h->eof = 1;
            carry_eof(h);
            return 0;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno == EINTR)
            continue;
        snprintf(r->reason, sizeof r->reason, "read %s: %s", side_name(h), strerror(errno));
        return -1;
    }
    return 0;
}

void relay_update_io(struct relay *r)
{
    if (r->closed)
        return;
    for (int i = 0; i < 2; i++) {
        struct relay_half *h = &r->h[i];
        int want_read = !h->eof && h->pending == 0;
        int want_write = h->pending > 0;
        if (want_read && !ev_is_active(&h->rio))
            ev_io_start(r->loop, &h->rio);
        else if (!want_read && ev_is_active(&h->rio))
            ev_io_stop(r->loop, &h->rio);
        if (want_write && !ev_is_active(&h->wio))
            ev_io_start(r->loop, &h->wio);
        else if (!want_write && ev_is_active(&h->wio))
            ev_io_stop(r->loop, &h->wio);
    }
}

static void half_event(struct relay_half *h)
{
    struct relay *r = h->r;
    if (half_pump(h) < 0) {
        relay_close(r, RELAY_ERROR, r->reason);
        return;
    }
    if (r->h[0].shut && r->h[1].shut) {
        relay_close(r, RELAY_DONE, "eof");
        return;
    }
    relay_update_io(r);
}

static void relay_rio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    half_event(w->data);
}

static void relay_wio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    half_event(w->data);
}

static int make_pipe(struct relay_half *h)
{
    if (pipe2(h->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        h->pipe[0] = h->pipe[1] = -1;
        return -1;
    }
    (void)fcntl(h->pipe[1], F_SETPIPE_SZ, RELAY_PIPE_SIZE); /* a hint: the default works */
    return 0;
}

int relay_start(struct relay *r, struct ev_loop *loop, int a, int b, int use_splice,
                relay_close_cb on_close, void *data)
{
    const char *n0 = r->name[0], *n1 = r->name[1];
    memset(r, 0, sizeof *r);
    r->name[0] = n0;
    r->name[1] = n1;
    r->loop = loop;
    r->on_close = on_close;
    r->data = data;
    int fds[2] = { a, b };
    for (int i = 0; i < 2; i++) {
        struct relay_half *h = &r->h[i];
        h->r = r;
        h->fd = fds[i];
        h->other = &r->h[1 - i];
        h->pipe[0] = h->pipe[1] = -1;
        ev_io_init(&h->rio, relay_rio_cb, fds[i], EV_READ);
        h->rio.data = h;
        ev_io_init(&h->wio, relay_wio_cb, fds[1 - i], EV_WRITE);
        h->wio.data = h;
    }
    for (int i = 0; i < 2; i++)
        if (use_splice)
            (void)make_pipe(&r->h[i]); /* no pipe: this half copies */
    relay_update_io(r);
    return 0;
}

void relay_close(struct relay *r, enum relay_end why, const char *reason)
{
    if (r->closed)
        return;
    r->closed = 1;
    if (reason != r->reason)
        snprintf(r->reason, sizeof r->reason, "%s", reason ? reason : "");
    for (int i = 0; i < 2; i++) {
        struct relay_half *h = &r->h[i];
        ev_io_stop(r->loop, &h->rio);
        ev_io_stop(r->loop, &h->wio);
        close_pipe(h);
        free(h->buf);
        h->buf = NULL;
    }
    for (int i = 0; i < 2; i++) {
        if (r->h[i].fd >= 0)
            close(r->h[i].fd);
        r->h[i].fd = -1;
    }
    if (r->on_close)
        r->on_close(r, why, r->reason);
}
