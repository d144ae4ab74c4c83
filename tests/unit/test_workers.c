/* lib/workers on a real loopback listener with two workers: one worker at a
 * time watches the listener (no thundering herd), the role moves to the
 * least loaded worker once the accepting one is WORKERS_ACCEPT_SLACK
 * connections ahead, and the ordered shutdown still ends both. */
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

struct test {
    struct ev_loop *main_loop;
    struct workers set;
    pthread_t main_th;
    ev_async shutdown;
    int lfd, port;
    int keep;                 /* keep accepted connections open (else close at once) */
    int accepted[2];          /* atomic: per worker */
    int fds[2][MAXC];         /* kept connections, touched by their worker only */
    int nfds[2];
    int done, timed_out;
};

static void on_accept(struct acceptor *a, int fd, const struct sockaddr *peer, socklen_t len)
{
    (void)peer;
    (void)len;
    struct worker *w = a->data;
    struct test *t = w->set->cfg.data;
    worker_conn_opened(w);
    if (t->keep && t->nfds[w->index] < MAXC) {
        t->fds[w->index][t->nfds[w->index]++] = fd;
    } else {
        close(fd);
        worker_conn_closed(w);
    }
    __atomic_add_fetch(&t->accepted[w->index], 1, __ATOMIC_RELEASE);
}

/* Stopping: the worker lets its connections go, so it can end. */
static void on_stop(struct worker *w)
{
    struct test *t = w->set->cfg.data;
    while (t->nfds[w->index] > 0) {
        close(t->fds[w->index][--t->nfds[w->index]]);
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
        .n = 2, .fds = &t->lfd, .nfds = 1, .on_accept = on_accept, .on_stop = on_stop,
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

/* Connections one after another, each closed before the next: the first
 * worker takes every one and the second never wakes for them (with both
 * watching, the kernel would wake both and either could win each time). */
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
    assert_int_equal(__atomic_load_n(&t->set.handoffs, __ATOMIC_ACQUIRE), 0);
    finish(t);
}

/* Connections that stay open: the role moves by load, so both workers end
 * up with their share, within the slack. */
static void test_open_connections_spread(void **s)
{
    (void)s;
    struct test *t = start(1);
    int c[MAXC];
    int n = 40;
    for (int i = 0; i < n; i++) {
        c[i] = dial(t);
        wait_accepted(t, i + 1);
    }
    int a0 = t->accepted[0], a1 = t->accepted[1];
    assert_true(a0 > 0 && a1 > 0);
    assert_true(abs(a0 - a1) <= WORKERS_ACCEPT_SLACK + 1);
    assert_true(__atomic_load_n(&t->set.handoffs, __ATOMIC_ACQUIRE) >= 2);
    finish(t); /* on_stop lets the kept connections go: both workers end */
    for (int i = 0; i < n; i++)
        close(c[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequential_stay_on_one_worker),
        cmocka_unit_test(test_open_connections_spread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
