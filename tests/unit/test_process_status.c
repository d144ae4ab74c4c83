/* Unit tests for process-status/procfs.c and process-status/state.c: every parser on
 * real-looking input, on malformed input, and on every prefix of valid input (a cut
 * anywhere must never be read past, and must fail wherever a needed field is lost). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../process-status/procfs.h"
#include "../../process-status/state.h"

/* Copy into an exact-size heap buffer so ASan catches any read past len. */
static char *dup_exact(const char *s, size_t len)
{
    char *b = malloc(len ? len : 1);
    assert_non_null(b);
    memcpy(b, s, len);
    return b;
}

static const char STAT_LINE[] =
    "4242 (my (odd) comm) S 1 4242 4242 0 -1 4194560 1234 0 5 0 "
    "150 70 3 4 20 0 7 0 987654 123456789 321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 "
    "0 17 1 0 0 0 0 0\n";

static void test_pid_stat(void **state)
{
    (void)state;
    struct ps_pid_stat st;
    char *b = dup_exact(STAT_LINE, strlen(STAT_LINE));
    assert_int_equal(ps_parse_pid_stat(b, strlen(STAT_LINE), &st), 0);
    assert_string_equal(st.comm, "my (odd) comm");
    assert_int_equal(st.state, 'S');
    assert_int_equal(st.ppid, 1);
    assert_int_equal(st.utime, 150);
    assert_int_equal(st.stime, 70);
    assert_int_equal(st.cutime, 3);
    assert_int_equal(st.cstime, 4);
    assert_int_equal(st.num_threads, 7);
    assert_int_equal(st.starttime, 987654);
    assert_int_equal(st.rss_pages, 321);
    free(b);

    /* every prefix: no over-read; anything cut before rss is complete fails */
    const char *rss = strstr(STAT_LINE, " 321 ") + 1;
    size_t at = (size_t)(rss - STAT_LINE), need = at + 3;
    for (size_t n = 0; n < strlen(STAT_LINE); n++) {
        b = dup_exact(STAT_LINE, n);
        int rc = ps_parse_pid_stat(b, n, &st);
        if (n <= at)
            assert_int_equal(rc, -1);
        else if (n >= need)
            assert_int_equal(st.rss_pages, 321);
        free(b);
    }
}

static void test_pid_stat_bad(void **state)
{
    (void)state;
    struct ps_pid_stat st;
    const char *bad[] = {
        "", "x", "12 comm S 1", "12 (c S 1 2 3", "-3 (c) S 1 1 1 0 0 0 0 0 0 0 1 2 3 4 5 6 7 8 9 10 11",
        "12 (c) S x 1 1 0 0 0 0 0 0 0 1 2 3 4 5 6 7 8 9 10 11",
        "12 (c)  S 1 1 1 0 0 0 0 0 0 0 1 2 3 4 5 6 7 8 9 10 11",
        "12 (c) S 1 1 1 0 0 0 0 0 0 0 1 2 3 4 5 6 7 8 9 10 99999999999999999999999",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ps_parse_pid_stat(bad[i], strlen(bad[i]), &st), -1);
    const char *ok = "12 (c) S 1 1 1 0 0 0 0 0 0 0 1 2 3 4 5 6 7 8 9 10 11";
    assert_int_equal(ps_parse_pid_stat(ok, strlen(ok), &st), 0);
    assert_int_equal(st.rss_pages, 11);
}

static const char PROC_STAT[] =
    "cpu  100 20 30 400 5 6 7 8 1000 2000\n"
    "cpu0 50 10 15 200 2 3 3 4 500 1000\n"
    "cpu1 50 10 15 200 3 3 4 4 500 1000\n"
    "intr 12345 0 0 0\n"
    "ctxt 999\n";

static void test_cpu_stat(void **state)
{
    (void)state;
    struct ps_cpu_stat c;
    char *b = dup_exact(PROC_STAT, strlen(PROC_STAT));
    assert_int_equal(ps_parse_cpu_stat(b, strlen(PROC_STAT), &c), 0);
    assert_int_equal(c.total, 100 + 20 + 30 + 400 + 5 + 6 + 7 + 8); /* no guest */
    assert_int_equal(c.ncpu, 2);
    assert_int_equal(c.complete, 1);
    free(b);
    size_t first = strchr(PROC_STAT, '\n') - PROC_STAT;
    for (size_t n = 0; n < strlen(PROC_STAT); n++) {
        b = dup_exact(PROC_STAT, n);
        int rc = ps_parse_cpu_stat(b, n, &c);
        if (n <= first) {
            assert_int_equal(rc, -1);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(c.total, 576);
            assert_true(c.ncpu <= 2);
            if (!c.complete)
                assert_true(n < (size_t)(strstr(PROC_STAT, "ctxt") - PROC_STAT));
        }
        free(b);
    }
    const char *old = "cpu 1 2 3 4\ncpu0 1 2 3 4\n";
    assert_int_equal(ps_parse_cpu_stat(old, strlen(old), &c), 0);
    assert_int_equal(c.total, 10);
    assert_int_equal(c.complete, 0);
    const char *bad[] = {"cpu0 1 2 3 4\n", "cpu 1 2 3\n", "cpu 1 x 3 4\n", "intr 1\n"};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(ps_parse_cpu_stat(bad[i], strlen(bad[i]), &c), -1);
}

static const char LIMITS[] =
    "Limit                     Soft Limit           Hard Limit           Units     \n"
    "Max cpu time              unlimited            unlimited            seconds   \n"
    "Max open files            4321                 8642                 files     \n"
    "Max locked memory         8388608              8388608              bytes     \n";

static void test_limits(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(ps_parse_limits_nofile(LIMITS, strlen(LIMITS), &v), 0);
    assert_int_equal(v, 4321);
    const char *u = "Max open files            unlimited            unlimited            files\n";
    assert_int_equal(ps_parse_limits_nofile(u, strlen(u), &v), 0);
    assert_true(v == PS_UNLIMITED);
    const char *bad[] = {"", "Max open files\n", "Max open files   12x  1 files\n",
                         "Max open filesx 1 1 files\n"};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(ps_parse_limits_nofile(bad[i], strlen(bad[i]), &v), -1);
    size_t need = strstr(LIMITS, "4321") - LIMITS + 5;
    for (size_t n = 0; n < strlen(LIMITS); n++) {
        char *b = dup_exact(LIMITS, n);
        int rc = ps_parse_limits_nofile(b, n, &v);
        assert_int_equal(rc, n < need ? -1 : 0);
        free(b);
    }
}

static void test_meminfo_status_io(void **state)
{
    (void)state;
    uint64_t v;
    const char *mi = "MemTotal:       24684092 kB\nMemFree:         1 kB\n";
    assert_int_equal(ps_parse_meminfo_total(mi, strlen(mi), &v), 0);
    assert_true(v == 24684092ull * 1024);
    for (size_t n = 0; n < strlen(mi); n++) {
        char *b = dup_exact(mi, n);
        size_t need = (size_t)(strstr(mi, "kB") - mi) + 2;
        assert_int_equal(ps_parse_meminfo_total(b, n, &v), n < need ? -1 : 0);
        free(b);
    }
    assert_int_equal(ps_parse_meminfo_total("MemFree: 1 kB\n", 14, &v), -1);

    struct ps_status s;
    const char *st = "Name:\tsleep\nVmRSS:\t    1760 kB\nThreads:\t1\n"
                     "voluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:\t3\n";
    assert_int_equal(ps_parse_status(st, strlen(st), &s), 0);
    assert_int_equal(s.has_vmrss, 1);
    assert_int_equal(s.vmrss_bytes, 1760 * 1024);
    assert_int_equal(s.voluntary, 12);
    assert_int_equal(s.nonvoluntary, 3);
    const char *kt = "Name:\tkthreadd\nvoluntary_ctxt_switches:\t1\nnonvoluntary_ctxt_switches:\t0\n";
    assert_int_equal(ps_parse_status(kt, strlen(kt), &s), 0);
    assert_int_equal(s.has_vmrss, 0);
    assert_int_equal(ps_parse_status("Name:\tx\n", 8, &s), -1);
    for (size_t n = 0; n < strlen(st); n++) {
        char *b = dup_exact(st, n);
        assert_int_equal(ps_parse_status(b, n, &s), n < strlen(st) - 1 ? -1 : 0);
        free(b);
    }

    struct ps_io io;
    const char *iot = "rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 2\nread_bytes: 30\n"
                      "write_bytes: 40\ncancelled_write_bytes: 0\n";
    assert_int_equal(ps_parse_io(iot, strlen(iot), &io), 0);
    assert_int_equal(io.rchar, 10);
    assert_int_equal(io.wchar, 20);
    assert_int_equal(io.read_bytes, 30);
    assert_int_equal(io.write_bytes, 40);
    assert_int_equal(ps_parse_io("rchar: 1\n", 9, &io), -1);
}

static void test_cgroup(void **state)
{
    (void)state;
    char v2[256], v1[256];
    const char *hyb = "12:pids:/x\n4:cpu,memory:/a/b\n1:name=systemd:/s:y\n0::/u/v\n";
    assert_int_equal(ps_parse_cgroup(hyb, strlen(hyb), v2, sizeof v2, v1, sizeof v1), 0);
    assert_string_equal(v2, "/u/v");
    assert_string_equal(v1, "/a/b");
    const char *pure = "0::/system.slice/mysqld.service\n";
    assert_int_equal(ps_parse_cgroup(pure, strlen(pure), v2, sizeof v2, v1, sizeof v1), 0);
    assert_string_equal(v2, "/system.slice/mysqld.service");
    assert_string_equal(v1, "");
    const char *outside = "0::/../../other\n4:memory:/a/..\n";
    assert_int_equal(ps_parse_cgroup(outside, strlen(outside), v2, sizeof v2, v1, sizeof v1),
                     0);
    assert_string_equal(v2, "");
    assert_string_equal(v1, "");
    const char *dots = "0::/a..b/..c\n";
    assert_int_equal(ps_parse_cgroup(dots, strlen(dots), v2, sizeof v2, v1, sizeof v1), 0);
    assert_string_equal(v2, "/a..b/..c");
    const char *bad[] = {"garbage\n", "x::/a\n", "0:/a\n"};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(ps_parse_cgroup(bad[i], strlen(bad[i]), v2, sizeof v2, v1, sizeof v1),
                         -1);
    char small[4];
    assert_int_equal(ps_parse_cgroup(pure, strlen(pure), small, sizeof small, v1, sizeof v1), 0);
    assert_string_equal(small, "");
    for (size_t n = 0; n < strlen(hyb); n++) {
        char *b = dup_exact(hyb, n);
        (void)ps_parse_cgroup(b, n, v2, sizeof v2, v1, sizeof v1);
        free(b);
    }
}

static void test_mem_limit_pid_text(void **state)
{
    (void)state;
    uint64_t l;
    assert_int_equal(ps_parse_mem_limit("max\n", 4, &l), 0);
    assert_true(l == PS_UNLIMITED);
    assert_int_equal(ps_parse_mem_limit("104857600\n", 10, &l), 0);
    assert_int_equal(l, 104857600);
    assert_int_equal(ps_parse_mem_limit("-1\n", 3, &l), 0);
    assert_true(l == PS_UNLIMITED);
    const char *bad[] = {"", "\n", "12 3\n", "maxx\n", "1e9\n", "99999999999999999999999\n"};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(ps_parse_mem_limit(bad[i], strlen(bad[i]), &l), -1);

    long long pid;
    assert_int_equal(ps_parse_pid_text(" 1234 \r\n\n", 9, &pid), 0);
    assert_int_equal(pid, 1234);
    const char *badp[] = {"", "\n", "0\n", "12a\n", "-5\n", "1 2\n", "99999999999\n", "abc"};
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(ps_parse_pid_text(badp[i], strlen(badp[i]), &pid), -1);
}

static void test_cmdline_and_key(void **state)
{
    (void)state;
    char buf[64];
    memcpy(buf, "nginx: worker\0--flag\0x\0\0", 24);
    size_t n = ps_cmdline_join(buf, 24);
    assert_int_equal(n, 22);
    assert_string_equal(buf, "nginx: worker --flag x");
    memcpy(buf, "\0\0", 2);
    assert_int_equal(ps_cmdline_join(buf, 2), 0);

    char key[16];
    ps_sanitize_key("php-fpm: pool", key, sizeof key);
    assert_string_equal(key, "php-fpm__pool");
    ps_sanitize_key("", key, sizeof key);
    assert_string_equal(key, "process");
    ps_sanitize_key("abcdefghijklmnopqrstuvwxyz", key, sizeof key);
    assert_string_equal(key, "abcdefghijklmno");

    /* --key-prefix: Mackerel's ^[-a-zA-Z0-9_.]+$ with '.' only between parts */
    static const char *good[] = {"mysqld", "my-app_1", "a.b", "A9.x-y._z", "0"};
    static const char *bad[] = {"",   "../../etc/x", "a{b", "a:b", "caf\xc3\xa9", ".a",
                                "a.", "a..b",        "a b", "a/b", "a*",          "a#b"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_true(ps_key_valid(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(ps_key_valid(bad[i]));
}

static void test_state_roundtrip(void **state)
{
    (void)state;
    struct ps_state s = {0}, t;
    char buf[4096], err[256];
    strcpy(s.key, "mysqld");
    s.pid = 77;
    s.start = 123456;
    s.children = 1;
    s.time_ns = 99;
    s.proc_ticks = 5;
    s.total_ticks = 500;
    s.has_ctxt = 1;
    s.voluntary = 8;
    s.nonvoluntary = 9;
    s.has_io = 1;
    s.io = (struct ps_io){1, 2, 3, 4};
    size_t len = ps_state_format(&s, buf, sizeof buf);
    assert_true(len > 0);
    assert_int_equal(ps_state_parse(buf, len, &t, err, sizeof err), 0);
    assert_string_equal(t.key, "mysqld");
    assert_int_equal(t.pid, 77);
    assert_int_equal(t.start, 123456);
    assert_int_equal(t.children, 1);
    assert_int_equal(t.proc_ticks, 5);
    assert_int_equal(t.total_ticks, 500);
    assert_int_equal(t.nonvoluntary, 9);
    assert_int_equal(t.io.write_bytes, 4);
    /* any cut loses the end line */
    for (size_t n = 0; n < len; n++) {
        char *b = dup_exact(buf, n);
        assert_int_equal(ps_state_parse(b, n, &t, err, sizeof err), -1);
        free(b);
    }
    assert_int_equal(ps_state_format(&s, buf, 20), 0);

    const char *bad[] = {
        "garbage\n",
        "mackerel-plugin-linux-process-status-state 1\nkey a\nkey a\nend\n",
        "mackerel-plugin-linux-process-status-state 1\nbogus 1\nend\n",
        "mackerel-plugin-linux-process-status-state 1\nkey a\npid 1\nstart 1\nchildren 2\n"
        "time_ns 1\nproc_ticks 1\ntotal_ticks 1\nend\n",
        "mackerel-plugin-linux-process-status-state 1\nkey a\npid 1\nstart 1\nchildren 0\n"
        "time_ns 1\nproc_ticks 1\nend\n",
        "mackerel-plugin-linux-process-status-state 1\nkey a\npid 1\nstart 1\nchildren 0\n"
        "time_ns 1\nproc_ticks 1\ntotal_ticks 1\nend\nextra\n",
        "mackerel-plugin-linux-process-status-state 1\nkey a\npid 1\nstart -1\nchildren 0\n"
        "time_ns 1\nproc_ticks 1\ntotal_ticks 1\nend\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(ps_state_parse(bad[i], strlen(bad[i]), &t, err, sizeof err), -1);
        assert_true(strncmp(err, "line ", 5) == 0);
    }
}

static void test_state_escape(void **state)
{
    (void)state;
    char out[PS_STATE_KEY_MAX + 1];
    assert_int_equal(ps_state_escape_key("mysqld_main-1", out, sizeof out), 0);
    assert_string_equal(out, "mysqld_main-1");
    assert_int_equal(ps_state_escape_key("../a b/", out, sizeof out), 0);
    assert_string_equal(out, "%2E.%2Fa%20b%2F");
    assert_int_equal(ps_state_escape_key("", out, sizeof out), -1);
    char longkey[300];
    memset(longkey, 'a', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    assert_int_equal(ps_state_escape_key(longkey, out, sizeof out), -1);
    longkey[PS_STATE_KEY_MAX] = '\0';
    assert_int_equal(ps_state_escape_key(longkey, out, sizeof out), 0);
}

static void test_state_files(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/ps-unit-XXXXXX", path[4096], err[512], sub[4200];
    assert_non_null(mkdtemp(tmpl));
    snprintf(sub, sizeof sub, "%s/state", tmpl);
    char note[256];
    int dfd = ps_state_dir_open(sub, path, sizeof path, note, sizeof note, err, sizeof err);
    assert_true(dfd >= 0);
    struct stat sb;
    assert_int_equal(stat(sub, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0700);

    struct ps_state s = {0}, t;
    strcpy(s.key, "k");
    s.pid = 1;
    assert_int_equal(ps_state_load(dfd, "k", &t, err, sizeof err), 0);
    assert_int_equal(ps_state_save(dfd, "k", &s, err, sizeof err), 0);
    assert_int_equal(ps_state_load(dfd, "k", &t, err, sizeof err), 1);
    assert_int_equal(t.pid, 1);
    /* a symlink in place of the state file is not followed */
    assert_int_equal(symlinkat("/etc/passwd", dfd, "l"), 0);
    assert_int_equal(ps_state_load(dfd, "l", &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "symlink"));
    assert_int_equal(ps_state_save(dfd, "l", &s, err, sizeof err), 0);
    assert_int_equal(ps_state_load(dfd, "l", &t, err, sizeof err), 1);
    assert_int_equal(mkdirat(dfd, "d", 0700), 0);
    assert_int_equal(ps_state_load(dfd, "d", &t, err, sizeof err), -1);
    close(dfd);

    /* an explicit directory writable by others is refused */
    assert_int_equal(chmod(sub, 0777), 0);
    assert_int_equal(
        ps_state_dir_open(sub, path, sizeof path, note, sizeof note, err, sizeof err), -1);
    assert_non_null(strstr(err, "writable"));
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpl);
    assert_int_equal(system(cmd), 0);
}

static void test_count_fds(void **state)
{
    (void)state;
    /* /proc/self/fd: compare with readdir; both count their own directory fd */
    int extra[10];
    for (int i = 0; i < 10; i++)
        extra[i] = open("/dev/null", O_RDONLY);
    long long c = ps_count_fds("/proc/self/fd");
    DIR *d = opendir("/proc/self/fd");
    long long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    assert_int_equal(c, n);
    for (int i = 0; i < 10; i++)
        close(extra[i]);
    assert_int_equal(ps_count_fds("/proc/self/fd"), c - 10);

    /* a plain directory goes through getdents64 */
    char tmpl[] = "/tmp/ps-unit-fd-XXXXXX", p[256];
    assert_non_null(mkdtemp(tmpl));
    for (int i = 0; i < 300; i++) {
        snprintf(p, sizeof p, "%s/file-with-a-longish-name-%d", tmpl, i);
        close(open(p, O_CREAT | O_WRONLY, 0600));
    }
    assert_int_equal(ps_count_fds(tmpl), 300);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpl);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(ps_count_fds("/nonexistent-dir"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pid_stat),          cmocka_unit_test(test_pid_stat_bad),
        cmocka_unit_test(test_cpu_stat),          cmocka_unit_test(test_limits),
        cmocka_unit_test(test_meminfo_status_io), cmocka_unit_test(test_cgroup),
        cmocka_unit_test(test_mem_limit_pid_text), cmocka_unit_test(test_cmdline_and_key),
        cmocka_unit_test(test_state_roundtrip),   cmocka_unit_test(test_state_escape),
        cmocka_unit_test(test_state_files),       cmocka_unit_test(test_count_fds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
