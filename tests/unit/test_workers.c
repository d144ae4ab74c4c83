/* lib/workers on a real loopback listener with two workers: while at most
 * one connection is open only worker 0 watches the listener (no thundering
 * herd: worker 1 is never woken), from WORKERS_SPREAD_AT open connections
 * worker 1 watches too, it stops again once the set is idle, and the ordered
 * shutdown still ends both. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "workers.h"

#define MAXC 64

struct conn {
    ev_io io;
    struct worker *w;
};

struct test {
    struct ev_loop *main_loop;
    struct workers set;
    pthread_t main_th;
    ev_async shutdown;
    int lfd, port;
    int keep;                 /* keep accepted connections until the client closes */
    int accepted[2];          /* atomic: per worker */
    int done, timed_out;
};

/* A kept connection ends when the client closes it. */
static void conn_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    struct conn *c = (struct conn *)io;
    char b[64];
    if (read(io->fd, b, sizeof b) > 0)
        return;
    ev_io_stop(loop, io);
    close(io->fd);
    struct worker *w = c->w;
    free(c);
    worker_conn_closed(w);
}

static void on_accept(struct acceptor *a, int fd, const struct sockaddr *peer, socklen_t len)
{
    (void)peer;
    (void)len;
    struct worker *w = a->data;
    struct test *t = w->set->cfg.data;
    worker_conn_opened(w);
    __atomic_add_fetch(&t->accepted[w->index], 1, __ATOMIC_RELEASE);
    struct conn *c = t->keep ? calloc(1, sizeof *c) : NULL;
    if (c) {
        c->w = w;
        ev_io_init(&c->io, conn_cb, fd, EV_READ);
        ev_io_start(w->loop, &c->io);
    } else {
        close(fd);
        worker_conn_closed(w);
    }
}

static void on_done(struct workers *set, int timed_out)
{
    struct test *t = set->cfg.data;
    t->done = 1;
    t->timed_out = timed_out;
    ev_break(t->main_loop, EVBREAK_ALL);
}

static void shutdown_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    struct test *t = a->data;
    workers_shutdown(&t->set, 10.);
}

static void *main_thread(void *arg)
{
    struct test *t = arg;
    ev_run(t->main_loop, 0);
    return NULL;
}

static struct test *start(int keep)
{
    struct test *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->keep = keep;
    t->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(t->lfd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(t->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(t->lfd, 128), 0);
    socklen_t sl = sizeof sa;
    assert_int_equal(getsockname(t->lfd, (struct sockaddr *)&sa, &sl), 0);
    t->port = ntohs(sa.sin_port);
    t->main_loop = ev_loop_new(EVFLAG_AUTO);
    struct workers_config wc = {
        .n = 2, .fds = &t->lfd, .nfds = 1, .on_accept = on_accept,
        .on_done = on_done, .close_listeners = 1, .data = t,
    };
    assert_int_equal(workers_init(&t->set, t->main_loop, &wc), 0);
    ev_async_init(&t->shutdown, shutdown_cb);
    t->shutdown.data = t;
    ev_async_start(t->main_loop, &t->shutdown);
    assert_int_equal(workers_run(&t->set), 0);
    pthread_create(&t->main_th, NULL, main_thread, t);
    return t;
}

static int total(struct test *t)
{
    return __atomic_load_n(&t->accepted[0], __ATOMIC_ACQUIRE) +
           __atomic_load_n(&t->accepted[1], __ATOMIC_ACQUIRE);
}

/* Wait (at most 10 s) until n connections were accepted in all. */
static void wait_accepted(struct test *t, int n)
{
    for (int i = 0; i < 10000 && total(t) < n; i++)
        usleep(1000);
    assert_int_equal(total(t), n);
}

/* Wait (at most 10 s) until worker 1 watches the listener or not. */
static void wait_watching(struct test *t, int want)
{
    for (int i = 0; i < 10000 && __atomic_load_n(&t->set.w[1].watching, __ATOMIC_ACQUIRE) != want;
         i++)
        usleep(1000);
    assert_int_equal(__atomic_load_n(&t->set.w[1].watching, __ATOMIC_ACQUIRE), want);
}

static int dial(struct test *t)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)t->port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void finish(struct test *t)
{
    ev_async_send(t->main_loop, &t->shutdown);
    pthread_join(t->main_th, NULL);
    assert_true(t->done);
    assert_false(t->timed_out);
    assert_int_equal(t->set.fds[0], -1); /* closed once neither worker accepted on it */
    workers_free(&t->set);
    ev_loop_destroy(t->main_loop);
    free(t);
}

/* Connections one after another, each closed before the next: worker 0
 * takes every one and worker 1 is never woken for them (with both watching,
 * the kernel would wake both and either could win each time). */
static void test_sequential_stay_on_one_worker(void **s)
{
    (void)s;
    struct test *t = start(0);
    for (int i = 0; i < 40; i++) {
        int fd = dial(t);
        wait_accepted(t, i + 1);
        close(fd);
    }
    assert_int_equal(t->accepted[0], 40);
    assert_int_equal(t->accepted[1], 0);
    assert_int_equal(__atomic_load_n(&t->set.joins, __ATOMIC_ACQUIRE), 0);
    assert_int_equal(t->set.w[1].watching, 0);
    finish(t);
}

/* WORKERS_SPREAD_AT open connections bring worker 1 in; when they close it
 * leaves at its next check; a load that stays up keeps both accepting. */
static void test_spread_under_load(void **s)
{
    (void)s;
    struct test *t = start(1);
    int c[MAXC];
    for (int i = 0; i < WORKERS_SPREAD_AT - 1; i++) {
        c[i] = dial(t);
        wait_accepted(t, i + 1);
    }
    usleep(100000);
    assert_int_equal(t->set.w[1].watching, 0); /* below the mark: worker 0 alone */
    c[WORKERS_SPREAD_AT - 1] = dial(t);
    wait_accepted(t, WORKERS_SPREAD_AT);
    wait_watching(t, 1);
    assert_int_equal(__atomic_load_n(&t->set.joins, __ATOMIC_ACQUIRE), 1);
    for (int i = 0; i < WORKERS_SPREAD_AT; i++)
        close(c[i]);
    for (int i = 0; i < 10000 && workers_open(&t->set) > 0; i++)
        usleep(1000);
    assert_int_equal(workers_open(&t->set), 0);
    wait_watching(t, 0); /* idle again: worker 1 stops watching */

    /* 40 at once, kept open: worker 1 joins again and watches throughout */
    int n = 40;
    for (int i = 0; i < n; i++)
        c[i] = dial(t);
    wait_accepted(t, WORKERS_SPREAD_AT + n);
    wait_watching(t, 1);
    usleep(1500000); /* a load check passes: the load is still there */
    assert_int_equal(t->set.w[1].watching, 1);
    for (int i = 0; i < n; i++)
        close(c[i]);
    for (int i = 0; i < 10000 && workers_open(&t->set) > 0; i++)
        usleep(1000);
    wait_watching(t, 0);
    finish(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequential_stay_on_one_worker),
        cmocka_unit_test(test_spread_under_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
