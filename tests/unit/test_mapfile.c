/* Unit tests for lib/mapfile: comments, blank lines, CRLF, trimming,
 * file:line errors, validator reasons, every split of a valid file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mapfile.h"

struct seen {
    char out[1024];
    int n;
};

static int collect(void *arg, const char *key, const char *value, int lineno, char *why,
                   size_t whylen)
{
    struct seen *s = arg;
    if (strcmp(value, "bad") == 0) {
        snprintf(why, whylen, "value is bad");
        return -1;
    }
    size_t l = strlen(s->out);
    snprintf(s->out + l, sizeof s->out - l, "%d:%s=%s;", lineno, key, value);
    s->n++;
    return 0;
}

/* A validator that refuses a well-formed line on its merits (-2). */
static int refuse_zero(void *arg, const char *key, const char *value, int lineno, char *why,
                       size_t whylen)
{
    if (strcmp(value, "h:0") == 0) {
        snprintf(why, whylen, "invalid port in \"%s\"", value);
        return -2;
    }
    return collect(arg, key, value, lineno, why, whylen);
}

static void test_bom_and_value_errors(void **state)
{
    (void)state;
    /* a UTF-8 byte order mark (Windows editors) is not part of the first name */
    const char *text = "\xef\xbb\xbfmysql,127.0.0.1:3306\n\xef\xbb\xbf# not a comment?\n";
    struct seen s = { "", 0 };
    char err[256] = "";
    int n = mapfile_parse("map.txt", text, strlen(text), "NAME,HOST:PORT", collect, &s, err,
                          sizeof err);
    /* only the one at the start of the file is a BOM; a later one is content */
    assert_int_equal(n, -1);
    assert_string_equal(s.out, "1:mysql=127.0.0.1:3306;");
    assert_string_equal(err, "map.txt:2: expected NAME,HOST:PORT");
    const char *only = "\xef\xbb\xbf# comment\r\n\xef\xbb\xbf";
    struct seen s2 = { "", 0 };
    assert_int_equal(mapfile_parse("map.txt", "\xef\xbb\xbf", 3, "X", collect, &s2, err,
                                   sizeof err), 0);
    assert_int_equal(mapfile_parse("map.txt", only, 17, "X", collect, &s2, err, sizeof err), -1);
    assert_int_equal(mapfile_parse("map.txt", only, 14, "X", collect, &s2, err, sizeof err), 0);
    /* "\xef\xbb" alone is not a BOM: the line is kept as it is */
    assert_int_equal(mapfile_parse("map.txt", "\xef\xbbk,v", 5, "X", collect, &s2, err,
                                   sizeof err), 1);
    assert_string_equal(s2.out, "1:\xef\xbbk=v;");

    /* -2: the line has the right shape, one value is wrong: file:line: why */
    struct seen s3 = { "", 0 };
    const char *z = "a,h:1\nb,h:0\n";
    assert_int_equal(mapfile_parse("map.txt", z, strlen(z), "NAME,HOST:PORT", refuse_zero, &s3,
                                   err, sizeof err), -1);
    assert_string_equal(err, "map.txt:2: invalid port in \"h:0\"");
}

static void test_valid(void **state)
{
    (void)state;
    const char *text = "# comment\n   # indented comment\n\nmc,127.0.0.1:11211\r\n"
                       "  db , [::1]:3306  \n\t\nlast,unix:/x,y";
    struct seen s = { "", 0 };
    char err[256] = "";
    int n = mapfile_parse("map.txt", text, strlen(text), "NAME,HOST:PORT", collect, &s, err,
                          sizeof err);
    assert_int_equal(n, 3);
    assert_string_equal(s.out, "4:mc=127.0.0.1:11211;5:db=[::1]:3306;7:last=unix:/x,y;");
}

static void bad(const char *text, const char *want)
{
    struct seen s = { "", 0 };
    char err[256] = "";
    int n = mapfile_parse("map.txt", text, strlen(text), "NAME,HOST:PORT", collect, &s, err,
                          sizeof err);
    if (n != -1 || strcmp(err, want) != 0)
        fail_msg("parse(%s) = %d \"%s\", want \"%s\"", text, n, err, want);
}

static void test_errors(void **state)
{
    (void)state;
    bad("ok,1\nno comma here\n", "map.txt:2: expected NAME,HOST:PORT");
    bad("\n\n,value\n", "map.txt:3: expected NAME,HOST:PORT");
    bad("name,\n", "map.txt:1: expected NAME,HOST:PORT");
    bad("name , \t\n", "map.txt:1: expected NAME,HOST:PORT");
    bad("a,1\nb,bad\n", "map.txt:2: expected NAME,HOST:PORT: value is bad");
    const char nul[] = "a,1\nb,\0x\n";
    struct seen s = { "", 0 };
    char err[256];
    assert_int_equal(mapfile_parse("m", nul, sizeof nul - 1, "X", collect, &s, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "m:2:"));
}

static void test_empty_and_load(void **state)
{
    (void)state;
    struct seen s = { "", 0 };
    char err[256];
    assert_int_equal(mapfile_parse("m", "", 0, "X", collect, &s, err, sizeof err), 0);
    assert_int_equal(mapfile_load("/nonexistent/map.txt", "X", collect, &s, err, sizeof err),
                     -1);
    assert_string_equal(err, "open /nonexistent/map.txt: No such file or directory");
    char path[] = "/tmp/test_mapfile_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "x,1\n#c\ny,2\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(mapfile_load(path, "X", collect, &s, err, sizeof err), 2);
    assert_string_equal(s.out, "1:x=1;3:y=2;");
    unlink(path);
}

/* The parser works on whole buffers; check that any prefix is handled sanely
 * (no crash, a consistent count) — the file may be cut anywhere. */
static void test_every_prefix(void **state)
{
    (void)state;
    const char *text = "# c\na,1\r\n\n b , 2 \nc,3";
    size_t len = strlen(text);
    for (size_t i = 0; i <= len; i++) {
        struct seen s = { "", 0 };
        char err[256] = "";
        char *copy = malloc(i ? i : 1);
        memcpy(copy, text, i);
        int n = mapfile_parse("m", copy, i, "X", collect, &s, err, sizeof err);
        assert_true(n == -1 || n == s.n);
        free(copy);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_bom_and_value_errors),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_empty_and_load),
        cmocka_unit_test(test_every_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
