/* acceptor: batched accept with a pause on descriptor exhaustion (see acceptor.h). */
#include "acceptor.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "jsonlog.h"

static void acceptor_retry_cb(struct ev_loop *loop, ev_timer *tm, int revents)
{
    (void)revents;
    struct acceptor *a = tm->data;
    if (!a->stopped)
        ev_io_start(loop, &a->io);
}

static void acceptor_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    struct acceptor *a = io->data;
    /* a bounded batch, so one busy listener cannot starve the loop */
    for (int i = 0; i < 64 && !a->stopped; i++) {
        int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                if (a->listen)
                    jsonlog(JSONLOG_WARN, "accept: pausing", JL_ERR(strerror(errno)),
                            JL_STR("listen", a->listen));
                else
                    jsonlog(JSONLOG_WARN, "accept: pausing", JL_ERR(strerror(errno)));
                ev_io_stop(loop, &a->io);
                ev_timer_set(&a->retry, 0.1, 0.);
                ev_timer_start(loop, &a->retry);
            }
            return;
        }
        a->on_accept(a, fd);
    }
}

void acceptor_start(struct ev_loop *loop, struct acceptor *a, int listen_fd, const char *listen,
                    acceptor_cb on_accept, void *data)
{
    a->listen = listen;
    a->on_accept = on_accept;
    a->data = data;
    a->stopped = 0;
    ev_io_init(&a->io, acceptor_io_cb, listen_fd, EV_READ);
    a->io.data = a;
    ev_init(&a->retry, acceptor_retry_cb);
    a->retry.data = a;
    ev_io_start(loop, &a->io);
}

void acceptor_stop(struct ev_loop *loop, struct acceptor *a)
{
    a->stopped = 1;
    ev_io_stop(loop, &a->io);
    ev_timer_stop(loop, &a->retry);
}
