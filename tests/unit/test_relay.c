/* Unit tests for lib/relay on socketpairs and loopback TCP: bytes both ways
 * (splice and the read/write fallback), half-close carried as shutdown in
 * each direction while the other keeps flowing, an error ending the relay
 * with a reason, back-pressure (a peer that does not read stops the relay
 * reading), and an idempotent close. The relay's loop runs in a thread; the
 * test drives the outer ends with plain blocking calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "relay.h"
#include "socket_pairs.h"

struct fixture {
    struct ev_loop *loop;
    struct relay r;
    ev_async quit;
    pthread_t th;
    int outer_a, outer_b; /* the test's ends */
    int closes;
    enum relay_end why;
    char reason[160];
    uint64_t bytes0, bytes1, spliced0;
};

static void on_close(struct relay *r, enum relay_end why, const char *reason)
{
    struct fixture *f = r->data;
    f->closes++;
    f->why = why;
    snprintf(f->reason, sizeof f->reason, "%s", reason);
    f->bytes0 = r->h[0].bytes;
    f->bytes1 = r->h[1].bytes;
    f->spliced0 = r->h[0].splice_bytes;
    ev_break(f->loop, EVBREAK_ALL);
}

static void quit_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)a;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void *loop_main(void *arg)
{
    struct fixture *f = arg;
    ev_run(f->loop, 0);
    return NULL;
}

#define NO_PREFILL ((size_t)-1)

/* mode: 0 socketpair+splice, 1 socketpair+fallback, 2 tcp+splice.
 * prefill (socketpairs only): that many bytes and an EOF are queued at the
 * relay's side A before its loop first runs, so one event sees them all. */
static struct fixture *start_with(int mode, size_t prefill)
{
    struct fixture *f = calloc(1, sizeof *f);
    int p1[2], p2[2];
    if (mode == 2) {
        tcp_pair(p1);
        tcp_pair(p2);
    } else {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p1), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p2), 0);
    }
    nonblock(p1[1]);
    nonblock(p2[0]);
    f->outer_a = p1[0];
    f->outer_b = p2[1];
    if (prefill != NO_PREFILL) {
        /* room for all of it in both queues (root only: SO_SNDBUFFORCE) */
        int sz = (int)(prefill * 2 + 65536);
        if (setsockopt(p1[0], SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) < 0 ||
            setsockopt(p2[0], SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) < 0) {
            free(f);
            return NULL;
        }
        uint8_t *b = calloc(1, prefill ? prefill : 1);
        assert_int_equal(write(p1[0], b, prefill), (ssize_t)prefill);
        free(b);
        shutdown(p1[0], SHUT_WR);
    }
    f->loop = ev_loop_new(EVFLAG_AUTO);
    ev_async_init(&f->quit, quit_cb);
    ev_async_start(f->loop, &f->quit);
    f->r.name[0] = "client";
    f->r.name[1] = "backend";
    assert_int_equal(relay_start(&f->r, f->loop, p1[1], p2[0], mode != 1, on_close, f), 0);
    pthread_create(&f->th, NULL, loop_main, f);
    return f;
}

static struct fixture *start(int mode)
{
    return start_with(mode, NO_PREFILL);
}

static void finish(struct fixture *f)
{
    pthread_join(f->th, NULL);
    if (!f->r.closed)
        relay_close(&f->r, RELAY_CLOSED_BY_OWNER, "test");
    ev_loop_destroy(f->loop);
    if (f->outer_a >= 0)
        close(f->outer_a);
    if (f->outer_b >= 0)
        close(f->outer_b);
    free(f);
}

struct pump {
    int wfd, rfd;
    size_t n;
    uint32_t seed;
    size_t got;
    int ok;
    int shut_after;
    uint8_t *data; /* the n bytes to send, made before the threads start */
};

static uint8_t pat(uint32_t seed, size_t i)
{
    return (uint8_t)((i * 2654435761u + seed) >> 7);
}

/* The pattern is computed up front so that the writer and the reader run at
 * memcpy speed even under ASan: a writer that trickles 8 KiB at a time would
 * (rightly) keep the relay in its copy mode and test something else. */
static void pump_init(struct pump *p)
{
    p->data = malloc(p->n ? p->n : 1);
    assert_non_null(p->data);
    for (size_t i = 0; i < p->n; i++)
        p->data[i] = pat(p->seed, i);
}

static void *writer(void *arg)
{
    struct pump *p = arg;
    for (size_t off = 0; off < p->n;) {
        size_t k = p->n - off < (1u << 20) ? p->n - off : (1u << 20);
        ssize_t w = write(p->wfd, p->data + off, k);
        if (w <= 0)
            return NULL;
        off += (size_t)w;
    }
    if (p->shut_after)
        shutdown(p->wfd, SHUT_WR);
    return NULL;
}

/* Read until EOF, checking the pattern. */
static void *reader(void *arg)
{
    struct pump *p = arg;
    uint8_t buf[262144];
    p->ok = 1;
    for (;;) {
        ssize_t n = read(p->rfd, buf, sizeof buf);
        if (n <= 0)
            break;
        if (p->got + (size_t)n > p->n || memcmp(buf, p->data + p->got, (size_t)n) != 0)
            p->ok = 0;
        p->got += (size_t)n;
    }
    return NULL;
}

/* Both directions at once, each ended by a half-close: everything arrives,
 * each EOF is carried, and the relay ends as done once both are. */
static void both_ways(int mode, size_t n)
{
    struct fixture *f = start(mode);
    struct pump ab = { .wfd = f->outer_a, .rfd = f->outer_b, .n = n, .seed = 1, .shut_after = 1 };
    struct pump ba = { .wfd = f->outer_b, .rfd = f->outer_a, .n = n / 3, .seed = 7,
                       .shut_after = 1 };
    pthread_t t[4];
    pump_init(&ab);
    pump_init(&ba);
    pthread_create(&t[0], NULL, writer, &ab);
    pthread_create(&t[1], NULL, reader, &ab);
    pthread_create(&t[2], NULL, writer, &ba);
    pthread_create(&t[3], NULL, reader, &ba);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);

    pthread_join(f->th, NULL);
    free(ab.data);
    free(ba.data);
    assert_int_equal(ab.got, n);
    assert_true(ab.ok);
    assert_int_equal(ba.got, n / 3);
    assert_true(ba.ok);
    assert_int_equal(f->closes, 1);
    assert_int_equal(f->why, RELAY_DONE);
    assert_int_equal(f->bytes0, n);
    assert_int_equal(f->bytes1, n / 3);
    /* bulk goes by splice where it can, never without pipes */
    if (mode == 1 || n < (1u << 20))
        assert_true(mode != 1 || f->spliced0 == 0);
    else
        assert_true(f->spliced0 > n / 2);
    relay_close(&f->r, RELAY_CLOSED_BY_OWNER, "again"); /* idempotent */
    assert_int_equal(f->closes, 1);
    ev_loop_destroy(f->loop);
    close(f->outer_a);
    close(f->outer_b);
    free(f);

}

static void test_splice_socketpair(void **s) { (void)s; both_ways(0, 8u << 20); }
static void test_fallback_socketpair(void **s) { (void)s; both_ways(1, 8u << 20); }
static void test_splice_tcp(void **s) { (void)s; both_ways(2, 32u << 20); }
static void test_small(void **s) { (void)s; both_ways(0, 1); both_ways(2, 0); both_ways(1, 3); }

/* Request/response: small messages go by recv/send (no splice), both ways. */
static void test_small_messages_copy(void **s)
{
    (void)s;
    struct fixture *f = start(2);
    char buf[64];
    for (int i = 0; i < 200; i++) {
        assert_int_equal(write(f->outer_a, "0123456789abcdef", 16), 16);
        size_t got = 0;
        while (got < 16) {
            ssize_t n = read(f->outer_b, buf + got, sizeof buf - got);
            assert_true(n > 0);
            got += (size_t)n;
        }
        assert_int_equal(write(f->outer_b, buf, 16), 16);
        got = 0;
        while (got < 16) {
            ssize_t n = read(f->outer_a, buf + got, sizeof buf - got);
            assert_true(n > 0);
            got += (size_t)n;
        }
        assert_memory_equal(buf, "0123456789abcdef", 16);
    }
    shutdown(f->outer_a, SHUT_WR);
    shutdown(f->outer_b, SHUT_WR);
    pthread_join(f->th, NULL);
    assert_int_equal(f->why, RELAY_DONE);
    assert_int_equal(f->bytes0, 3200);
    assert_int_equal(f->bytes1, 3200);
    assert_int_equal(f->spliced0, 0);
    ev_loop_destroy(f->loop);
    close(f->outer_a);
    close(f->outer_b);
    free(f);
}

/* A half-close in one direction does not stop the other: A ends its output,
 * B sees EOF, and B can still send to A for as long as it likes. */
static void half_close(int mode)
{
    struct fixture *f = start(mode);
    char buf[64];
    assert_int_equal(write(f->outer_a, "ping", 4), 4);
    shutdown(f->outer_a, SHUT_WR);
    size_t got = 0;
    while (got < 4) {
        ssize_t n = read(f->outer_b, buf + got, sizeof buf - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_memory_equal(buf, "ping", 4);
    assert_int_equal(read(f->outer_b, buf, sizeof buf), 0); /* the EOF was carried */
    for (int i = 0; i < 50; i++) {
        assert_int_equal(write(f->outer_b, "pong", 4), 4);
        got = 0;
        while (got < 4) {
            ssize_t n = read(f->outer_a, buf + got, 4 - got);
            assert_true(n > 0);
            got += (size_t)n;
        }
        assert_memory_equal(buf, "pong", 4);
    }
    assert_int_equal(f->closes, 0);
    shutdown(f->outer_b, SHUT_WR);
    assert_int_equal(read(f->outer_a, buf, sizeof buf), 0);
    pthread_join(f->th, NULL);
    assert_int_equal(f->closes, 1);
    assert_int_equal(f->why, RELAY_DONE);
    assert_int_equal(f->bytes0, 4);
    assert_int_equal(f->bytes1, 200);
    ev_loop_destroy(f->loop);
    close(f->outer_a);
    close(f->outer_b);
    free(f);
}

static void test_half_close(void **s)
{
    (void)s;
    half_close(0);
    half_close(1);
    half_close(2);
}

/* A reset on one side ends the relay with an error naming that side. */
static void test_reset(void **s)
{
    (void)s;
    struct fixture *f = start(2);
    struct linger lg = { 1, 0 };
    assert_int_equal(write(f->outer_b, "x", 1), 1);
    char c;
    assert_int_equal(read(f->outer_a, &c, 1), 1);
    setsockopt(f->outer_b, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(f->outer_b);
    f->outer_b = -1;
    pthread_join(f->th, NULL);
    assert_int_equal(f->closes, 1);
    assert_int_equal(f->why, RELAY_ERROR);
    assert_non_null(strstr(f->reason, "backend"));
    /* the client side was closed too */
    assert_true(read(f->outer_a, &c, 1) <= 0);
    ev_loop_destroy(f->loop);
    close(f->outer_a);
    free(f);
}

/* The third (max) field of a tcp_rmem/tcp_wmem sysctl, or a default. */
static size_t sysctl_max(const char *path, size_t dflt)
{
    FILE *fp = fopen(path, "r");
    unsigned long a, b, c;
    size_t v = dflt;
    if (fp && fscanf(fp, "%lu %lu %lu", &a, &b, &c) == 3)
        v = c;
    if (fp)
        fclose(fp);
    return v;
}

/* Back-pressure: B never reads, A keeps writing without blocking. What A can
 * get in must be bounded by the socket buffers plus one pipe, not grow. On
 * loopback TCP the receive buffers autotune up to tcp_rmem's max (32 MiB on
 * some machines), so the bound comes from the machine's own limits; what the
 * relay itself holds is one pipe or one buffer at most. */
static void backpressure(int mode)
{
    struct fixture *f = start(mode);
    int sz = 65536;
    /* two receive queues, two send queues, one pipe, some slack */
    size_t bound = 2 * sysctl_max("/proc/sys/net/ipv4/tcp_rmem", 6u << 20) +
                   2 * sysctl_max("/proc/sys/net/ipv4/tcp_wmem", 4u << 20) + (4u << 20);
    setsockopt(f->outer_a, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    nonblock(f->outer_a);
    static uint8_t chunk[65536];
    size_t total = 0;
    for (int idle = 0; idle < 20;) {
        ssize_t n = write(f->outer_a, chunk, sizeof chunk);
        if (n > 0) {
            total += (size_t)n;
            idle = 0;
        } else {
            assert_true(errno == EAGAIN);
            idle++;
            usleep(10000);
        }
        assert_true(total < bound + (8u << 20));
    }
    assert_true(total < bound);
    assert_true(f->r.h[0].pending > 0);
    assert_true(f->r.h[0].pending <= (f->r.h[0].pending_in_pipe ? 1u << 20 : RELAY_BUF_SIZE));
    ev_async_send(f->loop, &f->quit);
    finish(f);
}

static void test_backpressure(void **s)
{
    (void)s;
    backpressure(0);
    backpressure(1);
    backpressure(2);
}

/* An EOF read in the last round an event allows (copy mode: one round per
 * full 64 KiB read, so 15 full reads and the EOF make 16) is still carried.
 * It used to be left for a next round that no watcher would ever start: B
 * never saw the EOF and the relay hung. */
static void eof_on_last_round(size_t n)
{
    struct fixture *f = start_with(1, n);
    if (!f)
        skip(); /* not root: cannot queue it all at once */
    size_t got = 0;
    char buf[65536];
    for (;;) {
        struct pollfd pfd = { .fd = f->outer_b, .events = POLLIN };
        assert_int_equal(poll(&pfd, 1, 10000), 1); /* not a hang */
        ssize_t k = read(f->outer_b, buf, sizeof buf);
        assert_true(k >= 0);
        if (k == 0)
            break;
        got += (size_t)k;
    }
    assert_int_equal(got, n);
    shutdown(f->outer_b, SHUT_WR);
    pthread_join(f->th, NULL);
    assert_int_equal(f->why, RELAY_DONE);
    assert_int_equal(f->bytes0, n);
    ev_loop_destroy(f->loop);
    close(f->outer_a);
    close(f->outer_b);
    free(f);
}

static void test_eof_on_last_round(void **s)
{
    (void)s;
    for (size_t k = 13; k <= 17; k++)
        eof_on_last_round(k * RELAY_BUF_SIZE);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_splice_socketpair), cmocka_unit_test(test_fallback_socketpair),
        cmocka_unit_test(test_splice_tcp),        cmocka_unit_test(test_small),
        cmocka_unit_test(test_half_close),        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_backpressure),      cmocka_unit_test(test_small_messages_copy),
        cmocka_unit_test(test_eof_on_last_round),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
