/* relay: two-way splice with half-close and back-pressure (see relay.h).
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
}

/* Switch a half from splice to read/write; what is already in the pipe moves
 * to the buffer. Returns 0 or -1. */
static int use_buffer(struct relay_half *h)
{
    if (!h->buf) {
        h->buf = malloc(RELAY_PIPE_SIZE);
        if (!h->buf)
            return -1;
    }
    size_t got = 0;
    while (got < h->pending) {
        ssize_t n = read(h->pipe[0], h->buf + got, RELAY_PIPE_SIZE - got);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)n;
    }
    h->buf_off = 0;
    close_pipe(h);
    return 0;
}

/* Returns 0 (wait for the next event), or -1 with a reason in the relay. */
static int half_pump(struct relay_half *h)
{
    struct relay *r = h->r;
    int src = h->fd, dst = h->other->fd;
    for (int round = 0; round < RELAY_ROUNDS; round++) {
        ssize_t n;
        if (h->pending) {
            if (h->pipe[0] >= 0)
                n = splice(h->pipe[0], NULL, dst, NULL, h->pending,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            else
                n = send(dst, h->buf + h->buf_off, h->pending, MSG_NOSIGNAL);
            if (n > 0) {
                h->pending -= (size_t)n;
                h->buf_off += (size_t)n;
                h->bytes += (uint64_t)n;
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return 0;
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EINVAL && h->pipe[0] >= 0) {
                if (use_buffer(h) < 0)
                    goto fail_write;
                continue;
            }
        fail_write:
            snprintf(r->reason, sizeof r->reason, "write %s: %s", side_name(h->other),
                     n == 0 ? "short write" : strerror(errno));
            return -1;
        }
        if (h->eof) {
            if (!h->shut) {
                h->shut = 1;
                /* ENOTCONN: the other side is already gone; its own read
                 * half will report that */
                shutdown(dst, SHUT_WR);
            }
            return 0;
        }
        if (h->pipe[0] >= 0)
            n = splice(src, NULL, h->pipe[1], NULL, RELAY_PIPE_SIZE,
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        else
            n = recv(src, h->buf, RELAY_PIPE_SIZE, 0);
        if (n > 0) {
            h->pending = (size_t)n;
            h->buf_off = 0;
            continue;
        }
        if (n == 0) {
            h->eof = 1;
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EINVAL && h->pipe[0] >= 0) {
            if (use_buffer(h) < 0)
                break;
            continue;
        }
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
    for (int i = 0; i < 2; i++) {
        struct relay_half *h = &r->h[i];
        if (use_splice && make_pipe(h) == 0)
            continue;
        h->buf = malloc(RELAY_PIPE_SIZE);
        if (!h->buf) {
            for (int j = 0; j < 2; j++) {
                close_pipe(&r->h[j]);
                free(r->h[j].buf);
                r->h[j].buf = NULL;
            }
            errno = ENOMEM;
            return -1;
        }
    }
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
