/* acceptor: batched accept with a pause on descriptor exhaustion (see acceptor.h).
 * A pause episode (the first EMFILE until the next successful accept) logs one
 * "accept: pausing" line and one "accept: resumed" line with the number of
 * 100 ms pauses it took, instead of a line every retry. */
#include "acceptor.h"

#include <errno.h>
#include <string.h>

#include "jsonlog.h"

static void acceptor_retry_cb(struct ev_loop *loop, ev_timer *tm, int revents)
{
    (void)revents;
    struct acceptor *a = tm->data;
    if (!a->stopped && !a->parked)
        ev_io_start(loop, &a->io);
}

static void acceptor_pause(struct ev_loop *loop, struct acceptor *a, int err)
{
    if (a->pauses++ == 0) {
        if (a->listen)
            jsonlog(JSONLOG_WARN, "accept: pausing", JL_ERR(strerror(err)),
                    JL_STR("listen", a->listen));
        else
            jsonlog(JSONLOG_WARN, "accept: pausing", JL_ERR(strerror(err)));
    }
    ev_io_stop(loop, &a->io);
    ev_timer_set(&a->retry, 0.1, 0.);
    ev_timer_start(loop, &a->retry);
}

static void acceptor_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    struct acceptor *a = io->data;
    for (int i = 0; i < 64 && !a->stopped && !a->parked; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(io->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                acceptor_pause(loop, a, errno);
            return;
        }
        if (a->pauses) {
            if (a->listen)
                jsonlog(JSONLOG_INFO, "accept: resumed", JL_UINT("pauses", a->pauses),
                        JL_STR("listen", a->listen));
            else
                jsonlog(JSONLOG_INFO, "accept: resumed", JL_UINT("pauses", a->pauses));
            a->pauses = 0;
        }
        a->on_accept(a, fd, (struct sockaddr *)&ss, sl);
    }
}

void acceptor_start(struct ev_loop *loop, struct acceptor *a, int listen_fd, const char *listen,
                    acceptor_cb on_accept, void *data)
{
    a->listen = listen;
    a->on_accept = on_accept;
    a->data = data;
    a->stopped = 0;
    a->parked = 0;
    a->pauses = 0;
    ev_io_init(&a->io, acceptor_io_cb, listen_fd, EV_READ);
    a->io.data = a;
    ev_init(&a->retry, acceptor_retry_cb);
    a->retry.data = a;
    ev_io_start(loop, &a->io);
}

void acceptor_park(struct ev_loop *loop, struct acceptor *a, int parked)
{
    if (a->stopped || a->parked == parked)
        return;
    a->parked = parked;
    if (parked) {
        ev_io_stop(loop, &a->io);
    } else if (!ev_is_active(&a->retry)) {
        ev_io_start(loop, &a->io); /* (in an EMFILE pause the retry does it) */
    }
}

void acceptor_stop(struct ev_loop *loop, struct acceptor *a)
{
    a->stopped = 1;
    ev_io_stop(loop, &a->io);
    ev_timer_stop(loop, &a->retry);
}
