/* acceptor: accept connections on a listening socket from a libev loop, for
 * every "accept, dial, relay" daemon (wsgate-server's workers, wsgate-client's
 * listeners, motarei's ports). Accepts in batches of at most 64 so one busy
 * listener cannot starve the loop; when out of descriptors or memory (EMFILE,
 * ENFILE, ENOBUFS, ENOMEM) it stops watching the listener for 100 ms instead
 * of spinning on a socket that stays readable, then resumes unless stopped. */
#ifndef OPSKIT_ACCEPTOR_H
#define OPSKIT_ACCEPTOR_H

#include <ev.h>
#include <sys/socket.h>

struct acceptor;

/* Called with each accepted socket (non-blocking, close-on-exec) and the
 * peer's address (what PROXY protocol headers and logs need); it owns fd. */
typedef void (*acceptor_cb)(struct acceptor *a, int fd, const struct sockaddr *peer,
                            socklen_t peerlen);

struct acceptor {
    ev_io io;
    ev_timer retry;
    const char *listen; /* address for the pause log line; NULL for none */
    acceptor_cb on_accept;
    void *data;         /* the owner's */
    int tag;            /* the owner's (e.g. which listener this is) */
    int stopped;
    int parked;         /* not watching for now (acceptor_park); resumable */
    unsigned long pauses; /* 100 ms pauses in the current EMFILE episode */
};

/* Start accepting on listen_fd in loop. */
void acceptor_start(struct ev_loop *loop, struct acceptor *a, int listen_fd, const char *listen,
                    acceptor_cb on_accept, void *data);

/* Stop watching the listener for now (parked 1), or watch it again (0);
 * an EMFILE pause does not restart a parked acceptor. No-op once stopped. */
void acceptor_park(struct ev_loop *loop, struct acceptor *a, int parked);

/* Stop accepting for good (the listening socket stays open: the caller closes it). */
void acceptor_stop(struct ev_loop *loop, struct acceptor *a);

#endif
