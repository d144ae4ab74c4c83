/* acceptor: accept connections on a listening socket from a libev loop, for
 * wsgate-server's workers and wsgate-client's listeners alike. Accepts in
 * batches; when out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM)
 * it stops watching the listener for 100 ms instead of spinning on a socket
 * that stays readable, then resumes unless stopped. */
#ifndef WSGATE_ACCEPTOR_H
#define WSGATE_ACCEPTOR_H

#include <ev.h>

struct acceptor;

/* Called with each accepted socket (non-blocking, close-on-exec); it owns fd. */
typedef void (*acceptor_cb)(struct acceptor *a, int fd);

struct acceptor {
    ev_io io;
    ev_timer retry;
    const char *listen; /* address for the pause log line; NULL for none */
    acceptor_cb on_accept;
    void *data;         /* the owner's */
    int stopped;
};

/* Start accepting on listen_fd in loop. */
void acceptor_start(struct ev_loop *loop, struct acceptor *a, int listen_fd, const char *listen,
                    acceptor_cb on_accept, void *data);

/* Stop accepting for good (the listening socket stays open: the caller closes it). */
void acceptor_stop(struct ev_loop *loop, struct acceptor *a);

#endif
