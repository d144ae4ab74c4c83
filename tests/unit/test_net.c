/* Unit tests for lib/net: host:port splitting (IPv6 brackets), listening on
 * v4 and v6 loopback, SERVER_STARTER_PORT parsing, and the libev dialer
 * (connect, refused, name lookup off-thread, timeout, cancel). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "net.h"

static void split_ok(const char *s, const char *host, const char *port)
{
    char h[64], p[16], err[128] = "";
    if (net_split_hostport(s, h, sizeof h, p, sizeof p, err, sizeof err) != 0)
        fail_msg("split(%s) failed: %s", s, err);
    assert_string_equal(h, host);
    assert_string_equal(p, port);
}

static void split_bad(const char *s)
{
    char h[64], p[16], err[128] = "";
    if (net_split_hostport(s, h, sizeof h, p, sizeof p, err, sizeof err) == 0)
        fail_msg("split(%s) accepted: %s %s", s, h, p);
    assert_true(strlen(err) > 0);
}

static void test_split(void **state)
{
    (void)state;
    split_ok("127.0.0.1:8086", "127.0.0.1", "8086");
    split_ok("[::1]:80", "::1", "80");
    split_ok(":8086", "", "8086");
    split_ok("db.example.com:mysql", "db.example.com", "mysql");
    split_ok("localhost:65535", "localhost", "65535");
    split_bad("127.0.0.1");
    split_bad("::1:80");
    split_bad("[::1]80");
    split_bad("host:");
    split_bad("host:65536");
    split_bad("host:12a$");
    split_bad("a b:1");
    split_bad("[::1");
}

static void test_starter_parse(void **state)
{
    (void)state;
    struct net_starter_port p[4];
    char err[128];
    assert_int_equal(net_starter_parse("127.0.0.1:8086=3", p, 4, err, sizeof err), 1);
    assert_string_equal(p[0].addr, "127.0.0.1:8086");
    assert_int_equal(p[0].fd, 3);
    assert_int_equal(net_starter_parse("8080=4;[::1]:9=5;", p, 4, err, sizeof err), 2);
    assert_string_equal(p[1].addr, "[::1]:9");
    assert_int_equal(p[1].fd, 5);
    assert_int_equal(net_starter_parse("", p, 4, err, sizeof err), -1);
    assert_int_equal(net_starter_parse("8080", p, 4, err, sizeof err), -1);
    assert_int_equal(net_starter_parse("8080=", p, 4, err, sizeof err), -1);
    assert_int_equal(net_starter_parse("8080=x", p, 4, err, sizeof err), -1);
    assert_int_equal(net_starter_parse("=3", p, 4, err, sizeof err), -1);
    assert_int_equal(net_starter_parse("1=1;2=2;3=3;4=4;5=5", p, 4, err, sizeof err), -1);
    assert_int_equal(net_starter_parse("8080=99999999999", p, 4, err, sizeof err), -1);
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void test_listen_and_format(void **state)
{
    (void)state;
    char err[256], name[80];
    int fd = net_listen("127.0.0.1:0", 16, err, sizeof err);
    assert_true(fd >= 0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    net_format_addr((struct sockaddr *)&ss, len, name, sizeof name);
    char want[80];
    snprintf(want, sizeof want, "127.0.0.1:%d", bound_port(fd));
    assert_string_equal(name, want);
    close(fd);
    fd = net_listen("[::1]:0", 16, err, sizeof err);
    if (fd >= 0) { /* no IPv6 in some containers */
        len = sizeof ss;
        getsockname(fd, (struct sockaddr *)&ss, &len);
        net_format_addr((struct sockaddr *)&ss, len, name, sizeof name);
        snprintf(want, sizeof want, "[::1]:%d", bound_port(fd));
        assert_string_equal(name, want);
        close(fd);
    }
    /* ":port" is every address, IPv4 and IPv6 (dual-stack where there is
     * IPv6); an IPv4 peer of it is written as IPv4 */
    fd = net_listen(":0", 16, err, sizeof err);
    assert_true(fd >= 0);
    len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    int c4 = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to4 = { .sin_family = AF_INET, .sin_port = htons(bound_port(fd)) };
    to4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c4, (struct sockaddr *)&to4, sizeof to4), 0);
    if (ss.ss_family == AF_INET6) {
        int c6 = socket(AF_INET6, SOCK_STREAM, 0);
        struct sockaddr_in6 to6 = { .sin6_family = AF_INET6, .sin6_port = htons(bound_port(fd)),
                                    .sin6_addr = IN6ADDR_LOOPBACK_INIT };
        assert_int_equal(connect(c6, (struct sockaddr *)&to6, sizeof to6), 0);
        close(c6);
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int a4 = accept(fd, (struct sockaddr *)&peer, &plen);
        assert_true(a4 >= 0);
        net_format_addr((struct sockaddr *)&peer, plen, name, sizeof name);
        assert_non_null(strstr(name, "127.0.0.1:")); /* not [::ffff:127.0.0.1] */
        assert_true(name[0] == '1');
        close(a4);
    }
    close(c4);
    close(fd);
    assert_int_equal(net_listen("127.0.0.1", 16, err, sizeof err), -1);
    assert_non_null(strstr(err, "missing port"));
    int a = net_listen("127.0.0.1:0", 16, err, sizeof err);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", bound_port(a));
    assert_int_equal(net_listen(addr, 16, err, sizeof err), -1);
    assert_non_null(strstr(err, "in use"));
    close(a);
}

struct dial_result {
    int done, fd;
    char err[512];
};

static void on_dial(void *arg, int fd, const char *error)
{
    struct dial_result *r = arg;
    r->done++;
    r->fd = fd;
    snprintf(r->err, sizeof r->err, "%s", error ? error : "");
}

static struct dial_result dial(struct ev_loop *loop, const char *target, double timeout)
{
    struct dial_result r = { 0, -2, "" };
    struct net_dial *d = net_dial(loop, target, timeout, on_dial, &r);
    assert_non_null(d);
    assert_int_equal(r.done, 0); /* never from inside net_dial */
    while (!r.done)
        ev_run(loop, EVRUN_ONCE);
    assert_int_equal(r.done, 1);
    return r;
}

static void test_dial(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_default_loop(0);
    char err[256], target[64];
    int lfd = net_listen("127.0.0.1:0", 16, err, sizeof err);
    int port = bound_port(lfd);
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    struct dial_result r = dial(loop, target, 5);
    assert_true(r.fd >= 0);
    close(r.fd);
    snprintf(target, sizeof target, "localhost:%d", port); /* resolved off-thread */
    r = dial(loop, target, 5);
    if (r.fd < 0) /* localhost may resolve to ::1 first; then 127.0.0.1 must follow */
        fail_msg("localhost dial failed: %s", r.err);
    close(r.fd);
    close(lfd);
    r = dial(loop, target, 5);
    assert_int_equal(r.fd, -1);
    assert_non_null(strstr(r.err, "connection refused"));
    r = dial(loop, "nonexistent.invalid:80", 5);
    assert_int_equal(r.fd, -1);
    assert_non_null(strstr(r.err, "lookup nonexistent.invalid"));
    r = dial(loop, "bad target", 5);
    assert_int_equal(r.fd, -1);
    r = dial(loop, "unix:/nonexistent/sock", 5);
    assert_int_equal(r.fd, -1);
    assert_non_null(strstr(r.err, "dial unix /nonexistent/sock"));

    /* timeout: a listener with a full accept queue drops our SYN */
    int full = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
    assert_int_equal(bind(full, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(full, 0), 0);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        socklen_t sl = sizeof sin;
        getsockname(full, (struct sockaddr *)&sin, &sl);
        connect(fill[i], (struct sockaddr *)&sin, sizeof sin);
    }
    usleep(100000);
    snprintf(target, sizeof target, "127.0.0.1:%d", bound_port(full));
    ev_tstamp t0 = ev_time();
    r = dial(loop, target, 0.3);
    assert_int_equal(r.fd, -1);
    assert_non_null(strstr(r.err, "i/o timeout"));
    assert_true(ev_time() - t0 < 3);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(full);

    /* cancel: the callback never runs */
    struct dial_result c = { 0, -2, "" };
    struct net_dial *d = net_dial(loop, "localhost:1", 5, on_dial, &c);
    net_dial_cancel(d);
    for (int i = 0; i < 20; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        usleep(5000);
    }
    assert_int_equal(c.done, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_starter_parse),
        cmocka_unit_test(test_listen_and_format),
        cmocka_unit_test(test_dial),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
