/* Unit tests for lib/jsonlog: zap-shaped lines, JSON escaping (control
 * characters, quotes, invalid UTF-8), truncation contract, and the write path
 * through a pipe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "jsonlog.h"

static void test_shape(void **state)
{
    (void)state;
    char buf[512];
    struct jsonlog_field f[] = { JL_STR("status", "Connected"), JL_UINT("seq", 7),
                                 JL_INT("delta", -3), JL_BOOL("ok", 1), JL_FLOAT("x", 0.5) };
    size_t n = jsonlog_format(buf, sizeof buf, 1700000000.123456, JSONLOG_INFO, "log", f, 5);
    const char *want = "{\"level\":\"info\",\"ts\":1700000000.123456,\"msg\":\"log\","
                       "\"status\":\"Connected\",\"seq\":7,\"delta\":-3,\"ok\":true,\"x\":0.5}\n";
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
}

static void test_escaping(void **state)
{
    (void)state;
    char buf[512];
    const char raw[] = "a\"b\\c\n\t\x01\xff\xc3\xa9\xe2\x82";
    struct jsonlog_field f[] = { JL_BYTES("v", raw, sizeof raw - 1), JL_STR("nul", NULL) };
    jsonlog_format(buf, sizeof buf, 1.0, JSONLOG_WARN, "m\"", f, 2);
    assert_string_equal(buf, "{\"level\":\"warn\",\"ts\":1.000000,\"msg\":\"m\\\"\","
                             "\"v\":\"a\\\"b\\\\c\\n\\t\\u0001\\ufffd\xc3\xa9\\ufffd\\ufffd\","
                             "\"nul\":\"\"}\n");
}

static void test_levels_and_skip(void **state)
{
    (void)state;
    char buf[256];
    struct jsonlog_field f[] = { JL_STR(NULL, "skipped"), JL_STR("k", "v") };
    jsonlog_format(buf, sizeof buf, 2.5, JSONLOG_ERROR, "e", f, 2);
    assert_string_equal(buf, "{\"level\":\"error\",\"ts\":2.500000,\"msg\":\"e\",\"k\":\"v\"}\n");
    assert_string_equal(jsonlog_level_name(JSONLOG_DEBUG), "debug");
    assert_string_equal(jsonlog_level_name(JSONLOG_FATAL), "fatal");
}

static void test_truncation(void **state)
{
    (void)state;
    char full[256], small[16];
    struct jsonlog_field f[] = { JL_STR("key", "a fairly long value") };
    size_t need = jsonlog_format(full, sizeof full, 3.0, JSONLOG_INFO, "msg", f, 1);
    memset(small, 'X', sizeof small);
    size_t need2 = jsonlog_format(small, sizeof small, 3.0, JSONLOG_INFO, "msg", f, 1);
    assert_int_equal(need, need2);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, full, sizeof small - 1);
}

static void test_write_pipe(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    jsonlog_set_fd(p[1]);
    jsonlog_set_min_level(JSONLOG_INFO);
    jsonlog(JSONLOG_DEBUG, "hidden");
    char big[5000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    jsonlog(JSONLOG_INFO, "shown", JL_STR("big", big), JL_UINT("n", 1));
    close(p[1]);
    jsonlog_set_fd(2);
    jsonlog_set_min_level(JSONLOG_DEBUG);
    char *out = malloc(8192);
    size_t len = 0;
    ssize_t r;
    while ((r = read(p[0], out + len, 8192 - len - 1)) > 0)
        len += (size_t)r;
    close(p[0]);
    out[len] = '\0';
    assert_null(strstr(out, "hidden"));
    assert_non_null(strstr(out, "\"msg\":\"shown\""));
    assert_non_null(strstr(out, "\"n\":1}\n"));
    assert_int_equal(strchr(out, '\n') - out, (long)len - 1);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape),           cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_levels_and_skip), cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_write_pipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
