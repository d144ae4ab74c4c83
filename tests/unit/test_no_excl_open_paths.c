/* Unit tests for the pure parts of open_no_excl.so (no_excl_open/nxo.c):
 * the O_EXCL rule, path normalisation, NO_EXCL_OPEN_PATHS parsing and prefix
 * matching at component boundaries, LD_PRELOAD editing, the debug line. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../no_excl_open/nxo.h"

static void test_rule(void **state)
{
    (void)state;
    /* the original's rule: O_CREAT, O_RDWR, no O_TRUNC */
    assert_true(nxo_rule_applies(O_CREAT | O_RDWR));
    assert_true(nxo_rule_applies(O_CREAT | O_RDWR | O_EXCL));
    assert_true(nxo_rule_applies(O_CREAT | O_RDWR | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_APPEND));
    assert_false(nxo_rule_applies(O_CREAT | O_RDWR | O_EXCL | O_TRUNC));
    assert_false(nxo_rule_applies(O_CREAT | O_WRONLY | O_EXCL));
    assert_false(nxo_rule_applies(O_CREAT | O_RDONLY | O_EXCL));
    assert_false(nxo_rule_applies(O_CREAT | O_ACCMODE | O_EXCL));
    assert_false(nxo_rule_applies(O_RDWR | O_EXCL));
    assert_false(nxo_rule_applies(O_TMPFILE | O_RDWR | O_EXCL));
}

static void check_norm(const char *in, const char *want)
{
    char buf[256];
    strcpy(buf, in);
    size_t n = nxo_path_normalize(buf);
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
    /* idempotent */
    assert_int_equal(nxo_path_normalize(buf), strlen(want));
    assert_string_equal(buf, want);
}

static void test_normalize(void **state)
{
    (void)state;
    check_norm("/", "/");
    check_norm("//", "/");
    check_norm("/var/log", "/var/log");
    check_norm("/var/log/", "/var/log");
    check_norm("//var///log//", "/var/log");
    check_norm("/var/./log/.", "/var/log");
    check_norm("/var/log/../lib", "/var/lib");
    check_norm("/var/log/../../..", "/");
    check_norm("/..", "/");
    check_norm("/../var", "/var");
    check_norm("/a/b/c/../../d", "/a/d");
    check_norm("/a/..b/.c/...", "/a/..b/.c/...");
    check_norm("/a/b/..", "/a");
    check_norm("/a/.", "/a");
    /* relative paths are not touched */
    char rel[] = "a/../b";
    assert_int_equal(nxo_path_normalize(rel), 0);
    assert_string_equal(rel, "a/../b");
}

static void test_absolute(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(nxo_path_absolute(out, sizeof out, "/srv/app", "logs/app.log"), 0);
    assert_string_equal(out, "/srv/app/logs/app.log");
    assert_int_equal(nxo_path_absolute(out, sizeof out, "/srv/app", "../x"), 0);
    assert_string_equal(out, "/srv/x");
    assert_int_equal(nxo_path_absolute(out, sizeof out, "/", "x"), 0);
    assert_string_equal(out, "/x");
    assert_int_equal(nxo_path_absolute(out, sizeof out, NULL, "/var//log/./a"), 0);
    assert_string_equal(out, "/var/log/a");
    assert_int_equal(nxo_path_absolute(out, sizeof out, NULL, "rel"), -1);
    assert_int_equal(nxo_path_absolute(out, sizeof out, "relbase", "rel"), -1);
    /* exact fit and one byte too many */
    char small[8];
    assert_int_equal(nxo_path_absolute(small, sizeof small, "/abc", "de"), 0);
    assert_string_equal(small, "/abc/de");
    assert_int_equal(nxo_path_absolute(small, sizeof small, "/abc", "def"), -1);
    assert_int_equal(nxo_path_absolute(small, sizeof small, NULL, "/abcdefg"), -1);
}

static void test_under(void **state)
{
    (void)state;
    assert_true(nxo_path_under("/var/log/app.log", "/var/log"));
    assert_true(nxo_path_under("/var/log", "/var/log"));
    assert_true(nxo_path_under("/var/log/a/b/c", "/var/log"));
    assert_false(nxo_path_under("/var/logfoo", "/var/log"));
    assert_false(nxo_path_under("/var/logfoo/app.log", "/var/log"));
    assert_false(nxo_path_under("/var/lo", "/var/log"));
    assert_false(nxo_path_under("/var", "/var/log"));
    assert_false(nxo_path_under("/srv/var/log/x", "/var/log"));
    assert_true(nxo_path_under("/anything", "/"));
    assert_true(nxo_path_under("/", "/"));
    assert_false(nxo_path_under("relative", "/"));
    assert_false(nxo_path_under("/x", "relative"));
}

static void test_parse_and_match(void **state)
{
    (void)state;
    char list[256];
    assert_int_equal(nxo_paths_parse(list, sizeof list, "/var/log:/srv/app/logs/", NULL), 2);
    assert_string_equal(list, "/var/log");
    assert_string_equal(list + 9, "/srv/app/logs");
    assert_true(nxo_paths_match(list, "/var/log/syslog"));
    assert_true(nxo_paths_match(list, "/srv/app/logs/app.log"));
    assert_false(nxo_paths_match(list, "/srv/app/logs.old/app.log"));
    assert_false(nxo_paths_match(list, "/var/logfoo"));
    assert_false(nxo_paths_match(list, "/etc/passwd"));

    /* empty entries skipped, relative entries against cwd, or dropped */
    assert_int_equal(nxo_paths_parse(list, sizeof list, "::logs:/a/../b::", "/srv/app"), 2);
    assert_string_equal(list, "/srv/app/logs");
    assert_string_equal(list + 14, "/b");
    assert_int_equal(nxo_paths_parse(list, sizeof list, "logs:/x", NULL), 1);
    assert_string_equal(list, "/x");
    assert_int_equal(nxo_paths_parse(list, sizeof list, "", NULL), 0);
    assert_false(nxo_paths_match(list, "/x"));

    /* overflow keeps what fits, says so */
    char tiny[12];
    assert_int_equal(nxo_paths_parse(tiny, sizeof tiny, "/aaaa:/bbbbbbbb", NULL), -1);
    assert_true(nxo_paths_match(tiny, "/aaaa/x"));
    assert_false(nxo_paths_match(tiny, "/bbbbbbbb/x"));

    /* append */
    assert_int_equal(nxo_paths_parse(list, sizeof list, "/a", NULL), 1);
    assert_int_equal(nxo_paths_append(list, sizeof list, "/real/a"), 0);
    assert_true(nxo_paths_match(list, "/real/a/x"));
    assert_true(nxo_paths_match(list, "/a/x"));
    assert_int_equal(nxo_paths_append(list, 12, "/much/too/long"), -1);
}

static void check_strip(const char *in, const char *self, int removed, const char *want)
{
    char buf[256];
    strcpy(buf, in);
    assert_int_equal(nxo_preload_strip(buf, self), removed);
    assert_string_equal(buf, want);
}

static void test_preload_strip(void **state)
{
    (void)state;
    const char *self = "/usr/local/lib/open_no_excl.so";
    check_strip("/usr/local/lib/open_no_excl.so", self, 1, "");
    check_strip("open_no_excl.so", self, 1, "");
    check_strip("/opt/other/open_no_excl.so", self, 1, "");
    check_strip("/lib/libeatmydata.so /usr/local/lib/open_no_excl.so", self, 1,
                "/lib/libeatmydata.so");
    check_strip("/usr/local/lib/open_no_excl.so:/lib/libfaketime.so", self, 1,
                "/lib/libfaketime.so");
    check_strip("/a.so:/usr/local/lib/open_no_excl.so /b.so", self, 1, "/a.so /b.so");
    check_strip("/a.so:/b.so", self, 0, "/a.so:/b.so");
    check_strip("  /a.so  ", self, 0, "  /a.so  ");
    check_strip("/x/not_open_no_excl.so", self, 0, "/x/not_open_no_excl.so");
    check_strip("/x/open_no_excl.so.1", self, 0, "/x/open_no_excl.so.1");
    check_strip(" open_no_excl.so  open_no_excl.so ", self, 1, "");
    check_strip("", self, 0, "");
    check_strip("/a.so", "", 0, "/a.so");
}

static void test_debug_format(void **state)
{
    (void)state;
    char buf[1024];
    size_t n =
        nxo_debug_format(buf, sizeof buf, "O_EXCL dropped", "open", -10000, "/var/log/app.log",
                         O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600, 4, 0);
    assert_string_equal(buf, "no_excl_open: open(\"/var/log/app.log\", "
                             "O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW, 0600): O_EXCL dropped = 4\n");
    assert_int_equal(n, strlen(buf));

    n = nxo_debug_format(buf, sizeof buf, "O_EXCL dropped", "openat64", 7, "a\n\"b\\",
                         O_RDWR | O_CREAT | O_EXCL | O_SYNC | 0x40000000, 0644, -1, EACCES);
    assert_int_equal(n, strlen(buf));
    assert_string_equal(buf, "no_excl_open: openat64(7, \"a\\x0a\\\"b\\\\\", "
                             "O_RDWR|O_SYNC|O_CREAT|O_EXCL|010000000000, 0644): "
                             "O_EXCL dropped = -1 EACCES\n");

    /* a long path is cut, the line still ends in a newline and fits */
    char longp[2000];
    memset(longp, 'x', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    longp[0] = '/';
    char small[200];
    n = nxo_debug_format(small, sizeof small, "O_EXCL dropped", "open", AT_FDCWD, longp,
                         O_RDWR | O_CREAT, 0, 3, 0);
    assert_int_equal(n, sizeof small - 1);
    assert_int_equal(small[n], 0);
    assert_int_equal(small[n - 1], '\n');
    n = nxo_debug_format(buf, sizeof buf, "O_EXCL dropped", "open", AT_FDCWD, longp,
                         O_RDWR | O_CREAT, 0, 3, 0);
    assert_true(n < sizeof buf);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "xxx...\", O_RDWR|O_CREAT, 0000): O_EXCL dropped = 3\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_absolute),
        cmocka_unit_test(test_under),
        cmocka_unit_test(test_parse_and_match),
        cmocka_unit_test(test_preload_strip),
        cmocka_unit_test(test_debug_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
