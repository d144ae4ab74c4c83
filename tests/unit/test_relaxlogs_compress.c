/* Unit tests for relaxlogs/compress.c: a finished log becomes a valid gzip
 * with the same bytes and mtime, the original is removed only afterwards, and
 * a failure leaves the original and no temp file. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "../../relaxlogs/compress.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_relaxlogs_compress.XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
}

static void test_roundtrip(void **state)
{
    (void)state;
    char src[256], gz[256], tmp[256];
    path(src, sizeof src, "log.202601010000");
    path(gz, sizeof gz, "log.202601010000.gz");
    path(tmp, sizeof tmp, "log.202601010000.gz.tmp");
    size_t n = 3 * 1000 * 1000 + 7;
    unsigned char *data = malloc(n);
    assert_non_null(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (i % 101 == 100) ? '\n' : (unsigned char)(i * 7 + (i >> 9));
    FILE *f = fopen(src, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
    struct timespec ts[2] = {{.tv_sec = 1700000000}, {.tv_sec = 1700000000}};
    assert_int_equal(utimensat(AT_FDCWD, src, ts, 0), 0);

    char err[512];
    assert_int_equal(compress_file(dir, "log.202601010000", err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(src, &st), -1);
    assert_int_equal(stat(tmp, &st), -1);
    assert_int_equal(stat(gz, &st), 0);
    assert_int_equal(st.st_mtime, 1700000000);

    gzFile g = gzopen(gz, "rb");
    assert_non_null(g);
    unsigned char *back = malloc(n + 16);
    assert_non_null(back);
    int got = gzread(g, back, (unsigned)(n + 16));
    gzclose(g);
    assert_int_equal(got, (int)n);
    assert_memory_equal(back, data, n);
    free(back);
    free(data);
}

static void test_missing_source(void **state)
{
    (void)state;
    char err[512], tmp[256], gz[256];
    assert_int_equal(compress_file(dir, "log.202601010100", err, sizeof err), -1);
    assert_non_null(strstr(err, "log.202601010100"));
    struct stat st;
    path(tmp, sizeof tmp, "log.202601010100.gz.tmp");
    path(gz, sizeof gz, "log.202601010100.gz");
    assert_int_equal(stat(tmp, &st), -1);
    assert_int_equal(stat(gz, &st), -1);
}

static void test_unwritable_target_keeps_original(void **state)
{
    (void)state;
    char src[256], blocker[256], err[512];
    path(src, sizeof src, "log.202601010200");
    FILE *f = fopen(src, "w");
    assert_non_null(f);
    fputs("hello\n", f);
    fclose(f);
    /* a directory where the temp file must go makes the compression fail */
    path(blocker, sizeof blocker, "log.202601010200.gz.tmp");
    assert_int_equal(mkdir(blocker, 0755), 0);
    assert_int_equal(compress_file(dir, "log.202601010200", err, sizeof err), -1);
    struct stat st;
    assert_int_equal(stat(src, &st), 0);
    assert_int_equal(st.st_size, 6);
    rmdir(blocker);
}

static void test_background_thread(void **state)
{
    (void)state;
    char src[256], gz[256];
    path(src, sizeof src, "log.202601010300");
    path(gz, sizeof gz, "log.202601010300.gz");
    FILE *f = fopen(src, "w");
    assert_non_null(f);
    fputs("a\nb\n", f);
    fclose(f);
    struct compressor *c = compress_start(dir);
    assert_non_null(c);
    compress_enqueue(c, "log.202601010300");
    compress_enqueue(c, "log.202601010300"); /* duplicate is ignored */
    compress_stop(c, 1);                     /* finishes the queue */
    struct stat st;
    assert_int_equal(stat(gz, &st), 0);
    assert_int_equal(stat(src, &st), -1);
}

static void test_stop_without_drain(void **state)
{
    (void)state;
    char name[64], fpath[256];
    struct compressor *c = compress_start(dir);
    assert_non_null(c);
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "log.2026010104%02d", i);
        path(fpath, sizeof fpath, name);
        FILE *f = fopen(fpath, "w");
        assert_non_null(f);
        for (int k = 0; k < 20000; k++)
            fprintf(f, "line %d of %d\n", k, i);
        fclose(f);
    }
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "log.2026010104%02d", i);
        compress_enqueue(c, name);
    }
    compress_stop(c, 0);
    /* every file is still there in exactly one complete form */
    int gz = 0, plain = 0;
    for (int i = 0; i < 20; i++) {
        struct stat st;
        snprintf(name, sizeof name, "log.2026010104%02d", i);
        path(fpath, sizeof fpath, name);
        int has_plain = stat(fpath, &st) == 0;
        strcat(fpath, ".gz");
        int has_gz = stat(fpath, &st) == 0;
        strcat(fpath, ".tmp");
        assert_int_equal(stat(fpath, &st), -1);
        assert_true(has_plain != has_gz);
        gz += has_gz;
        plain += has_plain;
    }
    assert_true(plain > 0); /* the queue was not drained */
    (void)gz;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_target_keeps_original, setup, teardown),
        cmocka_unit_test_setup_teardown(test_background_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_without_drain, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
