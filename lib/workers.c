/* workers: N accepting event loops with an ordered shutdown (see workers.h). */
#include "workers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned long open_of(struct worker *w)
{
    if (w->set->cfg.open_count)
        return w->set->cfg.open_count(w);
    return __atomic_load_n(&w->open, __ATOMIC_ACQUIRE);
}

void worker_check_idle(struct worker *w)
{
    if (!w->stopping || w->done || !__atomic_load_n(&w->accept_stopped, __ATOMIC_ACQUIRE))
        return; /* not stopping, already done, or the stop is not acknowledged yet */
    if (open_of(w))
        return;
    __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
    if (w->loop != w->set->main_loop)
        ev_break(w->loop, EVBREAK_ALL); /* the thread ends */
    ev_async_send(w->set->main_loop, &w->set->worker_done);
}

void worker_conn_opened(struct worker *w)
{
    __atomic_add_fetch(&w->open, 1, __ATOMIC_RELEASE);
}

void worker_conn_closed(struct worker *w)
{
    if (__atomic_sub_fetch(&w->open, 1, __ATOMIC_ACQ_REL) == 0)
        worker_check_idle(w);
}

static void park_all(struct worker *w, int parked)
{
    for (int i = 0; i < w->set->cfg.nfds; i++)
        acceptor_park(w->loop, &w->acceptors[i], parked);
}

/* On w's thread: start or stop watching the listeners. */
static void set_watching(struct worker *w, int on)
{
    if (w->stopping || on == __atomic_load_n(&w->watching, __ATOMIC_ACQUIRE))
        return;
    park_all(w, !on);
    __atomic_store_n(&w->watching, on, __ATOMIC_RELEASE);
    if (on) {
        __atomic_add_fetch(&w->set->joins, 1, __ATOMIC_RELAXED);
        ev_timer_again(w->loop, &w->leave);
    } else {
        ev_timer_stop(w->loop, &w->leave);
    }
}

/* w (not worker 0) was told the set is loaded. */
static void worker_take_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    struct worker *w = a->data;
    if (workers_open(w->set) >= WORKERS_SPREAD_AT)
        set_watching(w, 1);
}

/* Once a second while w (not worker 0) watches: leave if the load is gone. */
static void worker_leave_cb(struct ev_loop *loop, ev_timer *tm, int revents)
{
    (void)loop;
    (void)revents;
    struct worker *w = tm->data;
    if (workers_open(w->set) <= 1)
        set_watching(w, 0);
}

/* From any worker's thread, after it accepted: once the set is loaded, wake
 * the workers that do not watch yet (each starts on its own thread). */
static void spread(struct worker *self)
{
    struct workers *set = self->set;
    if (set->cfg.n < 2 || __atomic_load_n(&set->shutting_down, __ATOMIC_ACQUIRE) ||
        workers_open(set) < WORKERS_SPREAD_AT)
        return;
    for (int i = 1; i < set->cfg.n; i++) {
        struct worker *w = &set->w[i];
        if (__atomic_load_n(&w->watching, __ATOMIC_ACQUIRE))
            continue;
        if (w == self)
            set_watching(w, 1);
        else
            ev_async_send(w->loop, &w->take);
    }
}

static void workers_accept(struct acceptor *a, int fd, const struct sockaddr *peer,
                           socklen_t peerlen)
{
    struct worker *w = a->data;
    w->set->cfg.on_accept(a, fd, peer, peerlen);
    spread(w);
}

static void worker_stop_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)revents;
    struct worker *w = a->data;
    if (w->stopping)
        return;
    w->stopping = 1;
    ev_timer_stop(loop, &w->leave);
    for (int i = 0; i < w->set->cfg.nfds; i++)
        acceptor_stop(loop, &w->acceptors[i]);
    if (w->set->cfg.on_stop)
        w->set->cfg.on_stop(w);
    /* libev applies the watcher change to epoll at its next iteration: only
     * then may the main thread close the sockets */
    ev_timer_set(&w->ack, 0., 0.);
    ev_timer_start(loop, &w->ack);
}

static void worker_ack_cb(struct ev_loop *loop, ev_timer *tm, int revents)
{
    (void)loop;
    (void)revents;
    struct worker *w = tm->data;
    __atomic_store_n(&w->accept_stopped, 1, __ATOMIC_RELEASE);
    ev_async_send(w->set->main_loop, &w->set->worker_done);
    worker_check_idle(w);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    ev_run(w->loop, 0);
    return NULL;
}

/* Main thread: close the listeners once nobody accepts; report when all are done. */
static void worker_done_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    struct workers *set = a->data;
    int done = 0, stopped = 0;
    for (int i = 0; i < set->cfg.n; i++) {
        done += __atomic_load_n(&set->w[i].done, __ATOMIC_ACQUIRE);
        stopped += __atomic_load_n(&set->w[i].accept_stopped, __ATOMIC_ACQUIRE);
    }
    if (stopped == set->cfg.n && set->cfg.close_listeners) {
        for (int i = 0; i < set->cfg.nfds; i++) {
            if (set->fds[i] >= 0) {
                close(set->fds[i]);
                set->fds[i] = -1;
            }
        }
    }
    if (set->shutting_down && done == set->cfg.n && !set->finished) {
        set->finished = 1;
        ev_timer_stop(set->main_loop, &set->timeout);
        if (set->cfg.on_done)
            set->cfg.on_done(set, 0);
    }
}

static void workers_timeout_cb(struct ev_loop *loop, ev_timer *tm, int revents)
{
    (void)loop;
    (void)revents;
    struct workers *set = tm->data;
    if (set->finished)
        return;
    if (set->cfg.on_done)
        set->cfg.on_done(set, 1);
}

int workers_init(struct workers *set, struct ev_loop *main_loop, const struct workers_config *cfg)
{
    memset(set, 0, sizeof *set);
    if (cfg->n < 1 || cfg->nfds < 0 || !cfg->on_accept) {
        errno = EINVAL;
        return -1;
    }
    set->cfg = *cfg;
    set->main_loop = main_loop;
    set->w = calloc((size_t)cfg->n, sizeof *set->w);
    set->fds = calloc((size_t)cfg->nfds + 1, sizeof *set->fds);
    if (!set->w || !set->fds)
        goto fail;
    memcpy(set->fds, cfg->fds, (size_t)cfg->nfds * sizeof *set->fds);
    ev_async_init(&set->worker_done, worker_done_cb);
    set->worker_done.data = set;
    ev_async_start(main_loop, &set->worker_done);
    ev_init(&set->timeout, workers_timeout_cb);
    set->timeout.data = set;
    for (int i = 0; i < cfg->n; i++) {
        struct worker *w = &set->w[i];
        w->set = set;
        w->index = i;
        w->loop = i == 0 ? main_loop : ev_loop_new(EVFLAG_AUTO);
        w->acceptors = calloc((size_t)cfg->nfds + 1, sizeof *w->acceptors);
        if (!w->loop || !w->acceptors)
            goto fail;
        ev_init(&w->ack, worker_ack_cb);
        w->ack.data = w;
        ev_async_init(&w->stop, worker_stop_cb);
        w->stop.data = w;
        ev_async_start(w->loop, &w->stop);
        ev_async_init(&w->take, worker_take_cb);
        w->take.data = w;
        ev_async_start(w->loop, &w->take);
        w->watching = i == 0;
        ev_init(&w->leave, worker_leave_cb);
        w->leave.repeat = 1.;
        w->leave.data = w;
        for (int j = 0; j < cfg->nfds; j++) {
            acceptor_start(w->loop, &w->acceptors[j], cfg->fds[j], cfg->names ? cfg->names[j] : NULL,
                           workers_accept, w);
            w->acceptors[j].tag = j;
            if (i > 0) /* only worker 0 watches at first (parked before the loop polls) */
                acceptor_park(w->loop, &w->acceptors[j], 1);
        }
    }
    return 0;
fail:
    errno = ENOMEM;
    return -1;
}

int workers_run(struct workers *set)
{
    for (int i = 1; i < set->cfg.n; i++) {
        int rc = pthread_create(&set->w[i].thread, NULL, worker_main, &set->w[i]);
        if (rc != 0) {
            errno = rc;
            return -1;
        }
        set->threads_started = i;
    }
    return 0;
}

void workers_shutdown(struct workers *set, double timeout)
{
    if (set->shutting_down)
        return;
    set->shutting_down = 1;
    /* worker 0 shares this loop: stop its accepting right now */
    worker_stop_cb(set->main_loop, &set->w[0].stop, 0);
    for (int i = 1; i < set->cfg.n; i++)
        ev_async_send(set->w[i].loop, &set->w[i].stop);
    if (timeout >= 0) {
        ev_timer_set(&set->timeout, timeout, 0.);
        ev_timer_start(set->main_loop, &set->timeout);
    }
    worker_done_cb(set->main_loop, &set->worker_done, 0);
}

unsigned long workers_open(struct workers *set)
{
    unsigned long n = 0;
    for (int i = 0; i < set->cfg.n; i++)
        n += open_of(&set->w[i]);
    return n;
}

void workers_free(struct workers *set)
{
    if (!set->w)
        return;
    if (set->shutting_down && !set->finished)
        return; /* threads may still be relaying: the process is about to exit */
    for (int i = 1; i <= set->threads_started && i < set->cfg.n; i++)
        pthread_join(set->w[i].thread, NULL);
    for (int i = 0; i < set->cfg.n; i++) {
        if (set->w[i].loop && i > 0)
            ev_loop_destroy(set->w[i].loop);
        free(set->w[i].acceptors);
    }
    ev_async_stop(set->main_loop, &set->worker_done);
    free(set->w);
    free(set->fds);
    set->w = NULL;
}
