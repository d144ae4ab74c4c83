/* transport: plain TCP implementation of the transport ops (see transport.h). */
#include "transport.h"

#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

static ssize_t tcp_read(struct transport *t, void *buf, size_t len)
{
    ssize_t n;
    do
        n = recv(t->fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    return n;
}

static ssize_t tcp_writev(struct transport *t, const struct iovec *iov, int iovcnt)
{
    struct msghdr mh = { 0 };
    mh.msg_iov = (struct iovec *)(uintptr_t)iov;
    mh.msg_iovlen = (size_t)iovcnt;
    ssize_t n;
    do
        n = sendmsg(t->fd, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
}

static size_t tcp_pending(struct transport *t)
{
    (void)t;
    return 0;
}

static size_t tcp_unsent(struct transport *t)
{
    (void)t;
    return 0;
}

static int tcp_flush(struct transport *t)
{
    (void)t;
    return 0;
}

static void tcp_release(struct transport *t)
{
    (void)t;
}

static void tcp_shutdown(struct transport *t)
{
    if (t->fd >= 0)
        shutdown(t->fd, SHUT_WR);
}

static const char *tcp_error(struct transport *t, char *buf, size_t len)
{
    (void)t;
    if (len > 0)
        buf[0] = '\0';
    return buf;
}

static void tcp_close(struct transport *t)
{
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
}

static const struct transport_ops tcp_ops = {
    .name = "tcp",
    .raw = 1,
    .read = tcp_read,
    .writev = tcp_writev,
    .pending = tcp_pending,
    .unsent = tcp_unsent,
    .flush = tcp_flush,
    .release = tcp_release,
    .shutdown = tcp_shutdown,
    .error = tcp_error,
    .close = tcp_close,
};

void transport_tcp_init(struct transport *t, int fd)
{
    t->ops = &tcp_ops;
    t->fd = fd;
    t->read_wait = TRANSPORT_READABLE;
    t->write_wait = TRANSPORT_WRITABLE;
    t->impl = NULL;
}
