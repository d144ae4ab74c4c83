/* workers: a set of N libev loops, one per thread, accepting on the same
 * listening sockets; each loop owns every connection it accepted. While the
 * set is quiet (at most one connection open) only worker 0 watches the
 * listeners: with all of them watching, every new connection wakes every
 * sleeping thread and all but one find nothing, which on a small machine
 * costs as much again as the connection itself. Once WORKERS_SPREAD_AT are
 * open, the others are woken to watch too and the kernel spreads connections
 * between the loops; each stops again at a once-a-second check that finds at
 * most one connection open in the set. Worker 0
 * runs on the main thread's loop,
 * which also handles signals. Shutdown is ordered: every worker stops
 * accepting and acknowledges once libev has really dropped the listener from
 * its poll set; then the listening sockets may be closed (new connections are
 * refused, or taken by the next generation under Server::Starter); then each
 * worker ends when its last connection has closed, or the shutdown timeout
 * passes. The program decides what each step logs. */
#ifndef OPSKIT_WORKERS_H
#define OPSKIT_WORKERS_H

#include <ev.h>
#include <pthread.h>

#include "acceptor.h"

/* Open connections (in the whole set) from which every worker watches the
 * listeners (three: a client that opens its next connection while the last
 * one is still closing does not count as load). */
#define WORKERS_SPREAD_AT 3

struct workers;

struct worker {
    struct workers *set;
    struct ev_loop *loop;
    int index;
    pthread_t thread;
    struct acceptor *acceptors; /* one per listener; acceptor.data = this worker, .tag = index */
    ev_async stop;              /* main → worker: stop accepting, end when idle */
    ev_async take;              /* → worker: reconsider watching the listeners */
    int watching;               /* atomic, written by its own thread: listeners watched */
    ev_timer leave;             /* while a worker other than 0 watches: the load check */
    ev_timer ack;               /* acknowledges the stop once libev has applied it */
    int stopping;
    int accept_stopped;         /* atomic: its accept watchers are stopped */
    int done;                   /* atomic: stopped and idle */
    unsigned long open;         /* atomic: connections (see worker_conn_opened) */
    void *data;                 /* the owner's */
};

struct workers_config {
    int n;                    /* number of loops (>= 1) */
    const int *fds;           /* listening sockets, shared by every worker */
    const char *const *names; /* for the accept pause log line; may be NULL */
    int nfds;
    acceptor_cb on_accept;    /* runs on the accepting worker's thread */
    /* Optional: connections still open on w (thread-safe read). NULL = the
     * worker's own counter kept by worker_conn_opened/closed. */
    unsigned long (*open_count)(struct worker *w);
    /* Optional: on w's thread when it stops accepting (stop its timers). */
    void (*on_stop)(struct worker *w);
    /* On the main thread: every worker is done (timed_out 0), or the shutdown
     * timeout passed with connections still open (timed_out 1). */
    void (*on_done)(struct workers *set, int timed_out);
    int close_listeners;      /* close the listening fds once nobody accepts on them */
    void *data;               /* the owner's */
};

struct workers {
    struct workers_config cfg;
    struct ev_loop *main_loop;
    struct worker *w;         /* cfg.n entries */
    ev_async worker_done;     /* worker → main: a worker acknowledged or finished */
    ev_timer timeout;
    int shutting_down, finished, threads_started;
    unsigned long joins;      /* atomic: times a worker other than 0 began watching */
    int *fds;                 /* owned copy of cfg.fds; -1 once closed */
};

/* Create the loops (worker 0 uses main_loop) and start accepting on each.
 * Returns 0, or -1 with errno set. */
int workers_init(struct workers *set, struct ev_loop *main_loop, const struct workers_config *cfg);

/* Start the threads of workers 1..n-1. Returns 0 or -1 with errno set. */
int workers_run(struct workers *set);

/* Main thread: stop accepting everywhere and end each worker once it is idle;
 * cfg.on_done runs when all are, or after timeout seconds (< 0: no limit). */
void workers_shutdown(struct workers *set, double timeout);

/* Connections open in the whole set (thread-safe). */
unsigned long workers_open(struct workers *set);

/* On w's thread: count a connection in / out. The last one out of a stopping
 * worker ends it. */
void worker_conn_opened(struct worker *w);
void worker_conn_closed(struct worker *w);

/* On w's thread, for owners that count their own connections (open_count):
 * call when w's count dropped to zero. */
void worker_check_idle(struct worker *w);

/* After the main loop ended: join the threads that ended (all of them unless
 * on_done reported a timeout) and free the set. */
void workers_free(struct workers *set);

#endif
