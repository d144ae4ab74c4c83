/* Unit tests for sabo's lock-file membership in a scratch directory: join
 * publishes locked units, a scan counts locked files (ours, weighted ones and
 * the original's), reaps unlocked ones and stale temporaries, ignores other
 * groups, and inotify reports a joining member. flock locks belong to open
 * file descriptions, so a second open() in this process acts as another
 * member. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../sabo/group.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/test_sabo_group.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[512];
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    return rmdir(dir);
}

static int exists(const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static int count_files(void)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* A foreign member: create name and, if locked, hold an flock on it. */
static int make_file(const char *name, int locked)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    if (locked)
        assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    return fd;
}

static void test_join_scan_leave(void **state)
{
    (void)state;
    struct group g;
    char err[256];
    unsigned units = 0;

    assert_int_equal(group_join(&g, dir, 100000, 1, err, sizeof err), 0);
    assert_int_equal(g.held, 1);
    assert_true(exists(g.names[0]));
    assert_int_equal(count_files(), 1); /* the temporary was renamed */
    assert_int_equal(group_scan(&g, &units), 0);
    assert_int_equal(units, 1);
    char name[LOCKNAME_MAX];
    strcpy(name, g.names[0]);
    group_leave(&g);
    assert_false(exists(name));
    group_leave(&g); /* idempotent */
}

static void test_weight_units(void **state)
{
    (void)state;
    struct group g;
    char err[256];
    unsigned units = 0;

    assert_int_equal(group_join(&g, dir, 100000, 3, err, sizeof err), 0);
    assert_int_equal(g.held, 3);
    assert_int_equal(count_files(), 3);
    for (unsigned i = 0; i < 3; i++) {
        struct lockname ln;
        assert_int_equal(lockname_parse(g.names[i], &ln), 0);
        assert_int_equal(ln.weight, 3);
        assert_int_equal(ln.unit, i + 1);
        assert_true(ln.bw == 100000);
        assert_int_equal(ln.pid, (long)getpid());
    }
    assert_int_equal(group_scan(&g, &units), 0);
    assert_int_equal(units, 3);
    group_leave(&g);
    assert_int_equal(count_files(), 0);
}

static void test_scan_counts_and_reaps(void **state)
{
    (void)state;
    struct group g;
    char err[256];
    unsigned units = 0;

    assert_int_equal(group_join(&g, dir, 100000, 2, err, sizeof err), 0);
    /* A live original member and a live weighted member of ours. */
    int a = make_file("sabo_100000_11_9m4e2mr0ui3e8a215n4g.lock", 1);
    int b1 = make_file("sabo_100000_12_aaaaaaaaaaaaaaaaaaaa_w2.lock", 1);
    int b2 = make_file("sabo_100000_12_aaaaaaaaaaaaaaaaaaaa_w2_2.lock", 1);
    /* Dead members (nobody holds the lock): reaped. */
    close(make_file("sabo_100000_13_bbbbbbbbbbbbbbbbbbbb.lock", 0));
    close(make_file("sabo_100000_garbage", 0));
    /* Another group, a join in progress, a stale temporary, a directory. */
    int o = make_file("sabo_1000000_14_cccccccccccccccccccc.lock", 0);
    int t = make_file("_sabo_100000_15_dddddddddddddddddddd.lock", 0);
    close(make_file("_sabo_100000_16_eeeeeeeeeeeeeeeeeeee.lock", 0));
    char p[512];
    snprintf(p, sizeof p, "%s/_sabo_100000_16_eeeeeeeeeeeeeeeeeeee.lock", dir);
    struct timespec old[2] = {{.tv_sec = time(NULL) - 3600}, {.tv_sec = time(NULL) - 3600}};
    assert_int_equal(utimensat(AT_FDCWD, p, old, 0), 0);
    snprintf(p, sizeof p, "%s/sabo_100000_dir", dir);
    assert_int_equal(mkdir(p, 0700), 0);

    assert_int_equal(group_scan(&g, &units), 0);
    assert_int_equal(units, 2 + 1 + 2);
    assert_false(exists("sabo_100000_13_bbbbbbbbbbbbbbbbbbbb.lock"));
    assert_false(exists("sabo_100000_garbage"));
    assert_false(exists("_sabo_100000_16_eeeeeeeeeeeeeeeeeeee.lock"));
    assert_true(exists("sabo_1000000_14_cccccccccccccccccccc.lock"));
    assert_true(exists("_sabo_100000_15_dddddddddddddddddddd.lock"));
    assert_true(exists("sabo_100000_dir"));
    assert_int_equal(g.reaped, 3);

    /* The original member dies: its share returns at the next scan. */
    close(a);
    assert_int_equal(group_scan(&g, &units), 0);
    assert_int_equal(units, 4);
    assert_false(exists("sabo_100000_11_9m4e2mr0ui3e8a215n4g.lock"));

    close(b1);
    close(b2);
    close(o);
    close(t);
    rmdir(p);
    group_leave(&g);
}

static void test_repair_unlinked_unit(void **state)
{
    (void)state;
    struct group g;
    char err[256], p[512];
    unsigned units = 0;

    assert_int_equal(group_join(&g, dir, 50000, 1, err, sizeof err), 0);
    snprintf(p, sizeof p, "%s/%s", dir, g.names[0]);
    assert_int_equal(unlink(p), 0); /* someone cleans the dir under us */
    /* not at once: it could be rm -rf, between its unlink and its rmdir */
    assert_int_equal(group_scan(&g, &units), GROUP_UNITS_MISSING);
    assert_false(exists(g.names[0]));
    struct timespec ts = {0, GROUP_REPAIR_DELAY_NS + 20000000L};
    nanosleep(&ts, NULL);
    assert_int_equal(group_scan(&g, &units), GROUP_OK);
    assert_int_equal(units, 1);
    assert_true(exists(g.names[0]));
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), -1); /* and it is locked again */
    close(fd);
    group_leave(&g);
    assert_int_equal(count_files(), 0);
}

static void test_dir_removed_and_back(void **state)
{
    (void)state;
    struct group g;
    char err[256], p[512];
    unsigned units = 0;

    assert_int_equal(group_join(&g, dir, 50000, 2, err, sizeof err), 0);
    for (unsigned i = 0; i < g.held; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, g.names[i]);
        assert_int_equal(unlink(p), 0);
    }
    assert_int_equal(rmdir(dir), 0); /* rm -rf succeeded: we did not refill it */
    assert_int_equal(group_scan(&g, &units), GROUP_DIR_GONE);
    assert_int_equal(group_drain_events(&g), 1); /* IN_DELETE_SELF / IN_IGNORED */
    struct timespec ts = {0, GROUP_REPAIR_DELAY_NS + 20000000L};
    nanosleep(&ts, NULL);
    assert_int_equal(group_scan(&g, &units), GROUP_DIR_GONE); /* and never re-created */
    assert_int_equal(access(dir, F_OK), -1);
    assert_int_equal(g.rejoins, 0);

    assert_int_equal(mkdir(dir, 0700), 0); /* back: join the new directory */
    assert_int_equal(group_scan(&g, &units), GROUP_OK);
    assert_int_equal(units, 2);
    assert_int_equal(g.rejoins, 1);
    assert_int_equal(count_files(), 2);
    for (unsigned i = 0; i < g.held; i++)
        assert_true(exists(g.names[i]));

    /* a directory moved away is gone too (its path no longer leads to it) */
    char moved[80];
    snprintf(moved, sizeof moved, "%s.moved", dir);
    assert_int_equal(rename(dir, moved), 0);
    assert_int_equal(group_scan(&g, &units), GROUP_DIR_GONE);
    assert_int_equal(rename(moved, dir), 0);
    assert_int_equal(group_scan(&g, &units), GROUP_OK);
    group_leave(&g);
    assert_int_equal(count_files(), 0);
}

static void test_inotify_sees_join(void **state)
{
    (void)state;
    struct group g;
    char err[256];

    assert_int_equal(group_join(&g, dir, 100000, 1, err, sizeof err), 0);
    if (g.inotify_fd < 0)
        skip();
    (void)group_drain_events(&g); /* our own join */
    assert_int_equal(group_drain_events(&g), 0);
    int fd = make_file("_sabo_200000_1_ffffffffffffffffffff.lock", 1);
    assert_int_equal(group_drain_events(&g), 0); /* other group, temp name */
    close(fd);
    fd = make_file("_sabo_100000_1_ffffffffffffffffffff.lock", 1);
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/_sabo_100000_1_ffffffffffffffffffff.lock", dir);
    snprintf(b, sizeof b, "%s/sabo_100000_1_ffffffffffffffffffff.lock", dir);
    assert_int_equal(rename(a, b), 0);
    assert_int_equal(group_drain_events(&g), 1);
    /* A member dying: the kernel closes its write fd. */
    close(fd);
    assert_int_equal(group_drain_events(&g), 1);
    unlink(b);
    snprintf(a, sizeof a, "%s/_sabo_200000_1_ffffffffffffffffffff.lock", dir);
    unlink(a);
    group_leave(&g);
}

static void test_join_errors(void **state)
{
    (void)state;
    struct group g;
    char err[256];
    assert_int_equal(group_join(&g, "/nonexistent/sabo", 100000, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/sabo"));
    assert_non_null(strstr(err, "No such file"));
    assert_int_equal(group_join(&g, "/dev/null", 100000, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "Not a directory"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_join_scan_leave, setup, teardown),
        cmocka_unit_test_setup_teardown(test_weight_units, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_counts_and_reaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repair_unlinked_unit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_removed_and_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inotify_sees_join, setup, teardown),
        cmocka_unit_test(test_join_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
