/* Unit tests for motarei's Docker JSON handling: the container list (the
 * dual-stack duplicate with different public ports, unpublished and UDP
 * ports, ordering with the Id tie-break, health from Status, odd and
 * missing fields, every truncation of a real answer, non-JSON), the event
 * parser, the line splitter fed at every byte boundary, and the snapshot
 * built from a list (readiness from Docker health). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../motarei/motarei.h"

static const char LIST[] =
    "[{\"Id\":\"bbb\",\"Created\":100,\"Status\":\"Up 3 seconds (health: starting)\","
    "\"Ports\":[{\"IP\":\"::\",\"PrivatePort\":80,\"PublicPort\":32790,\"Type\":\"tcp\"},"
    "{\"IP\":\"0.0.0.0\",\"PrivatePort\":80,\"PublicPort\":32789,\"Type\":\"tcp\"},"
    "{\"PrivatePort\":9000,\"Type\":\"tcp\"},"
    "{\"IP\":\"0.0.0.0\",\"PrivatePort\":53,\"PublicPort\":32700,\"Type\":\"udp\"}]},"
    "{\"Id\":\"aaa\",\"Created\":100,\"Status\":\"Up 1 minute (healthy)\","
    "\"Ports\":[{\"IP\":\"0.0.0.0\",\"PrivatePort\":80,\"PublicPort\":32768,\"Type\":\"tcp\"},"
    "{\"IP\":\"::\",\"PrivatePort\":80,\"PublicPort\":32768,\"Type\":\"tcp\"},"
    "{\"IP\":\"0.0.0.0\",\"PrivatePort\":443,\"PublicPort\":32769,\"Type\":\"tcp\"}]},"
    "{\"Id\":\"ccc\",\"Created\":99,\"Status\":\"Up 2 hours\",\"Ports\":[]},"
    "{\"Id\":\"ddd\",\"Created\":101,\"Status\":\"Up 1 second (unhealthy)\","
    "\"Ports\":[{\"IP\":\"::\",\"PrivatePort\":80,\"PublicPort\":32800,\"Type\":\"tcp\"}]}]";

static void test_list(void **s)
{
    (void)s;
    struct mt_list l;
    char err[256];
    assert_int_equal(mt_parse_containers(LIST, strlen(LIST), &l, err, sizeof err), 0);
    assert_int_equal(l.n, 4);
    /* Created descending, ties by Id ascending */
    assert_string_equal(l.c[0].id, "ddd");
    assert_string_equal(l.c[1].id, "aaa");
    assert_string_equal(l.c[2].id, "bbb");
    assert_string_equal(l.c[3].id, "ccc");
    /* bbb: IPv4 entry wins over the IPv6 one with another port; 9000 is
     * exposed only; udp ignored */
    assert_int_equal(l.c[2].nports, 2);
    assert_int_equal(mt_container_public(&l.c[2], 80), 32789);
    assert_int_equal(mt_container_public(&l.c[2], 9000), 0);
    assert_int_equal(mt_container_public(&l.c[2], 53), -1);
    assert_int_equal(l.c[2].health, MT_HEALTH_STARTING);
    /* aaa: the duplicate counted once */
    assert_int_equal(l.c[1].nports, 2);
    assert_int_equal(mt_container_public(&l.c[1], 80), 32768);
    assert_int_equal(mt_container_public(&l.c[1], 443), 32769);
    assert_int_equal(l.c[1].health, MT_HEALTH_HEALTHY);
    /* ddd: only an IPv6 entry: used */
    assert_int_equal(mt_container_public(&l.c[0], 80), 32800);
    assert_int_equal(l.c[0].health, MT_HEALTH_UNHEALTHY);
    assert_int_equal(l.c[3].health, MT_HEALTH_NONE);
    assert_int_equal(l.c[3].nports, 0);

    /* snapshot for ports 80 and 443: readiness follows Docker health */
    uint16_t ports[] = { 80, 443 };
    struct mt_snapshot *sn = mt_snapshot_build(&l, ports, 2, NULL, NULL, 1);
    assert_non_null(sn);
    assert_int_equal(sn->ports[0].n, 3); /* ddd, aaa, bbb */
    assert_false(sn->ports[0].b[0].ready); /* unhealthy */
    assert_true(sn->ports[0].b[1].ready);  /* healthy */
    assert_false(sn->ports[0].b[2].ready); /* starting */
    assert_string_equal(mt_snapshot_chosen(sn, 0)->id, "aaa");
    assert_int_equal(sn->ports[1].n, 1);
    assert_int_equal(mt_snapshot_chosen(sn, 1)->public_port, 32769);
    mt_snapshot_unref(sn);
    mt_list_free(&l);
}

static void test_truncated(void **s)
{
    (void)s;
    char err[256];
    size_t n = strlen(LIST);
    for (size_t i = 0; i < n; i++) {
        struct mt_list l;
        int rc = mt_parse_containers(LIST, i, &l, err, sizeof err);
        assert_int_equal(rc, -1);
        assert_true(strlen(err) > 0);
        assert_null(l.c);
    }
}

static void parse_bad(const char *json)
{
    struct mt_list l;
    char err[256] = "";
    assert_int_equal(mt_parse_containers(json, strlen(json), &l, err, sizeof err), -1);
    assert_non_null(strstr(err, "invalid container list"));
}

static void parse_count(const char *json, size_t n)
{
    struct mt_list l;
    char err[256] = "";
    if (mt_parse_containers(json, strlen(json), &l, err, sizeof err) != 0)
        fail_msg("%s: %s", json, err);
    assert_int_equal(l.n, n);
    mt_list_free(&l);
}

static void test_odd(void **s)
{
    (void)s;
    parse_bad("");
    parse_bad("<html>502 Bad Gateway</html>");
    parse_bad("{\"message\":\"page not found\"}");
    parse_bad("null");
    parse_count("[]", 0);
    parse_count("[1,\"x\",null,{},{\"Id\":5},{\"Id\":\"\"}]", 0);
    /* ill-typed fields get defaults */
    parse_count("[{\"Id\":\"x\",\"Created\":\"yesterday\",\"Ports\":{},\"Status\":7}]", 1);
    parse_count("[{\"Id\":\"x\",\"Ports\":[1,null,{\"PrivatePort\":\"80\"},"
                "{\"PrivatePort\":70000,\"PublicPort\":1,\"Type\":\"tcp\"},"
                "{\"PrivatePort\":80,\"PublicPort\":-1,\"Type\":\"tcp\"}]}]",
                1);
    struct mt_list l;
    char err[256];
    const char *j = "[{\"Id\":\"x\",\"Ports\":[{\"PrivatePort\":80,\"PublicPort\":99999}]}]";
    assert_int_equal(mt_parse_containers(j, strlen(j), &l, err, sizeof err), 0);
    assert_int_equal(mt_container_public(&l.c[0], 80), 0); /* out of range: unpublished */
    mt_list_free(&l);
    /* an Id too long for the table is skipped rather than cut */
    char big[256];
    snprintf(big, sizeof big, "[{\"Id\":\"%0100d\"}]", 1);
    parse_count(big, 0);
}

static void test_event(void **s)
{
    (void)s;
    struct mt_event ev;
    char err[128];
    const char *e1 = "{\"status\":\"start\",\"id\":\"abc\",\"from\":\"bb\",\"Type\":\"container\","
                     "\"Action\":\"start\",\"Actor\":{\"ID\":\"abc\",\"Attributes\":{\"app\":\"x\"}},"
                     "\"scope\":\"local\",\"time\":1700000000,\"timeNano\":1700000000000000000}";
    assert_int_equal(mt_parse_event(e1, strlen(e1), &ev, err, sizeof err), 0);
    assert_string_equal(ev.action, "start");
    assert_string_equal(ev.id, "abc");
    assert_string_equal(ev.type, "container");
    const char *e2 = "{\"Type\":\"container\",\"Action\":\"health_status: healthy\","
                     "\"Actor\":{\"ID\":\"def\"}}";
    assert_int_equal(mt_parse_event(e2, strlen(e2), &ev, err, sizeof err), 0);
    assert_string_equal(ev.action, "health_status: healthy");
    assert_string_equal(ev.id, "def");
    assert_int_equal(mt_parse_event("{}", 2, &ev, err, sizeof err), -1);
    assert_int_equal(mt_parse_event("[]", 2, &ev, err, sizeof err), -1);
    assert_int_equal(mt_parse_event("{\"Action\":", 10, &ev, err, sizeof err), -1);
}

struct lines {
    char got[8][64];
    int n;
};

static void on_line(void *arg, const char *line, size_t len)
{
    struct lines *ls = arg;
    if (ls->n < 8)
        snprintf(ls->got[ls->n], 64, "%.*s", (int)len, line);
    ls->n++;
}

static void test_linebuf(void **s)
{
    (void)s;
    const char *stream = "{\"a\":1}\n{\"b\":2}\n\n{\"c\":3}\n{\"partial";
    size_t n = strlen(stream);
    for (size_t cut = 0; cut <= n; cut++) {
        struct mt_linebuf lb = { 0 };
        struct lines ls = { .n = 0 };
        assert_int_equal(mt_linebuf_feed(&lb, stream, cut, on_line, &ls), 0);
        assert_int_equal(mt_linebuf_feed(&lb, stream + cut, n - cut, on_line, &ls), 0);
        assert_int_equal(ls.n, 3);
        assert_string_equal(ls.got[0], "{\"a\":1}");
        assert_string_equal(ls.got[1], "{\"b\":2}");
        assert_string_equal(ls.got[2], "{\"c\":3}");
        mt_linebuf_free(&lb);
    }
    /* an over-long line is dropped, the next one still arrives */
    struct mt_linebuf lb = { .max = 8 };
    struct lines ls = { .n = 0 };
    const char *s2 = "0123456789abcdef\nok\n";
    for (size_t i = 0; i < strlen(s2); i++)
        assert_int_equal(mt_linebuf_feed(&lb, s2 + i, 1, on_line, &ls), 0);
    assert_int_equal(ls.n, 1);
    assert_string_equal(ls.got[0], "ok");
    assert_int_equal(lb.dropped, 1);
    mt_linebuf_free(&lb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list),  cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_odd),   cmocka_unit_test(test_event),
        cmocka_unit_test(test_linebuf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
