/* workers: a set of N libev loops, one per thread, accepting on the same
 * listening sockets; each loop owns every connection it accepted. One worker
 * at a time watches the listeners (all of them watching would wake every
 * thread for each new connection, and all but one find nothing: on a small
 * machine that doubles the cost of a short connection). The watcher keeps
 * the role while its open connections stay within WORKERS_ACCEPT_SLACK of
 * the least loaded worker's, and otherwise hands it to that worker, so
 * connections still spread by load. Worker 0 runs on the main thread's loop,
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

/* Open connections the accepting worker may have beyond the least loaded one
 * before it hands accepting over to it. */
#define WORKERS_ACCEPT_SLACK 2

struct workers;

struct worker {
    struct workers *set;
    struct ev_loop *loop;
    int index;
    pthread_t thread;
    struct acceptor *acceptors; /* one per listener; acceptor.data = this worker, .tag = index */
    ev_async stop;              /* main → worker: stop accepting, end when idle */
    ev_async take;              /* worker → worker: you watch the listeners now */
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
    int accepting;            /* atomic: index of the worker watching the listeners */
    unsigned long handoffs;   /* atomic: times that role moved */
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
