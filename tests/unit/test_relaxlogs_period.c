/* Unit tests for relaxlogs/period.c: local-time period boundaries (non-whole-
 * hour zones, DST in both directions, a skipped midnight), file names and the
 * --with-time prefix. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../../relaxlogs/period.h"

static void use_tz(const char *tz)
{
    setenv("TZ", tz, 1);
    tzset();
}

/* UTC instant from a broken-down UTC time. */
static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return (int64_t)timegm(&tm);
}

static void expect_period(int64_t t, int64_t len, int use_utc, const char *name, int64_t start)
{
    struct period p;
    char buf[64];
    period_of(t, len, use_utc, &p);
    assert_true(period_name(&p, 0, buf, sizeof buf) > 0);
    assert_string_equal(buf, name);
    assert_int_equal(p.start, start);
}

static void test_utc_hourly(void **state)
{
    (void)state;
    use_tz("UTC");
    expect_period(utc(2026, 1, 1, 0, 0, 0), 3600, 0, "log.202601010000", utc(2026, 1, 1, 0, 0, 0));
    expect_period(utc(2026, 1, 1, 0, 59, 59), 3600, 0, "log.202601010000",
                  utc(2026, 1, 1, 0, 0, 0));
    expect_period(utc(2026, 1, 1, 1, 0, 0), 3600, 0, "log.202601010100", utc(2026, 1, 1, 1, 0, 0));
    expect_period(utc(2026, 1, 1, 1, 7, 0), 300, 0, "log.202601010105", utc(2026, 1, 1, 1, 5, 0));
}

static void test_tokyo_daily_at_local_midnight(void **state)
{
    (void)state;
    use_tz("Asia/Tokyo");
    /* 14:59:59Z is 23:59:59 JST: still Jan 1; 15:00Z is midnight JST. */
    expect_period(utc(2026, 1, 1, 14, 59, 59), 86400, 0, "log.202601010000",
                  utc(2025, 12, 31, 15, 0, 0));
    expect_period(utc(2026, 1, 1, 15, 0, 0), 86400, 0, "log.202601020000",
                  utc(2026, 1, 1, 15, 0, 0));
    /* --utc: the original's boundary, 09:00 JST */
    expect_period(utc(2026, 1, 1, 15, 0, 0), 86400, 1, "log.202601010000",
                  utc(2026, 1, 1, 0, 0, 0));
}

static void test_kolkata_half_hour_offset(void **state)
{
    (void)state;
    use_tz("Asia/Kolkata");
    /* 00:29:59Z = 05:59:59 IST; 00:30Z = 06:00 IST */
    expect_period(utc(2026, 1, 1, 0, 29, 59), 3600, 0, "log.202601010500",
                  utc(2025, 12, 31, 23, 30, 0));
    expect_period(utc(2026, 1, 1, 0, 30, 0), 3600, 0, "log.202601010600",
                  utc(2026, 1, 1, 0, 30, 0));
    expect_period(utc(2026, 1, 1, 18, 29, 59), 86400, 0, "log.202601010000",
                  utc(2025, 12, 31, 18, 30, 0));
    expect_period(utc(2026, 1, 1, 18, 30, 0), 86400, 0, "log.202601020000",
                  utc(2026, 1, 1, 18, 30, 0));
}

static void test_new_york_fall_back(void **state)
{
    (void)state;
    use_tz("America/New_York");
    /* 2026-11-01 02:00 EDT (06:00Z) -> 01:00 EST: 01:xx happens twice. */
    expect_period(utc(2026, 11, 1, 5, 30, 0), 3600, 0, "log.202611010100",
                  utc(2026, 11, 1, 5, 0, 0));
    /* the repeated hour: same wall-clock name, a different period */
    expect_period(utc(2026, 11, 1, 6, 30, 0), 3600, 0, "log.202611010100",
                  utc(2026, 11, 1, 6, 0, 0));
    expect_period(utc(2026, 11, 1, 7, 0, 0), 3600, 0, "log.202611010200",
                  utc(2026, 11, 1, 7, 0, 0));
    /* daily: one 25-hour period from midnight EDT to midnight EST */
    expect_period(utc(2026, 11, 1, 6, 30, 0), 86400, 0, "log.202611010000",
                  utc(2026, 11, 1, 4, 0, 0));
    expect_period(utc(2026, 11, 2, 4, 59, 59), 86400, 0, "log.202611010000",
                  utc(2026, 11, 1, 4, 0, 0));
    expect_period(utc(2026, 11, 2, 5, 0, 0), 86400, 0, "log.202611020000",
                  utc(2026, 11, 2, 5, 0, 0));
    /* 30 minutes: 01:30 EDT, then 01:00 EST again */
    expect_period(utc(2026, 11, 1, 5, 59, 59), 1800, 0, "log.202611010130",
                  utc(2026, 11, 1, 5, 30, 0));
    expect_period(utc(2026, 11, 1, 6, 0, 0), 1800, 0, "log.202611010100",
                  utc(2026, 11, 1, 6, 0, 0));
}

static void test_new_york_spring_forward(void **state)
{
    (void)state;
    use_tz("America/New_York");
    /* 2026-03-08 02:00 EST (07:00Z) -> 03:00 EDT */
    expect_period(utc(2026, 3, 8, 6, 59, 59), 3600, 0, "log.202603080100",
                  utc(2026, 3, 8, 6, 0, 0));
    expect_period(utc(2026, 3, 8, 7, 0, 0), 3600, 0, "log.202603080300", utc(2026, 3, 8, 7, 0, 0));
    /* daily: a 23-hour day */
    expect_period(utc(2026, 3, 9, 3, 59, 59), 86400, 0, "log.202603080000",
                  utc(2026, 3, 8, 5, 0, 0));
    expect_period(utc(2026, 3, 9, 4, 0, 0), 86400, 0, "log.202603090000", utc(2026, 3, 9, 4, 0, 0));
}

static void test_skipped_midnight(void **state)
{
    (void)state;
    use_tz("America/Sao_Paulo");
    /* 2018-11-04 00:00 -03 (03:00Z) jumped to 01:00 -02: local midnight did
     * not exist; the day's period starts at the jump. */
    expect_period(utc(2018, 11, 4, 3, 30, 0), 86400, 0, "log.201811040000",
                  utc(2018, 11, 4, 3, 0, 0));
    expect_period(utc(2018, 11, 4, 2, 59, 59), 86400, 0, "log.201811030000",
                  utc(2018, 11, 3, 3, 0, 0));
}

static void test_names(void **state)
{
    (void)state;
    struct period p = {.start = 0, .wall = utc(2026, 2, 3, 4, 5, 0)};
    char buf[64];
    assert_int_equal(period_name(&p, 0, buf, sizeof buf), 16);
    assert_string_equal(buf, "log.202602030405");
    assert_true(period_name(&p, 12, buf, sizeof buf) > 0);
    assert_string_equal(buf, "log.202602030405.12");
    assert_int_equal(period_name(&p, 0, buf, 10), -1);

    int64_t wall;
    unsigned seq;
    int gz;
    assert_int_equal(period_parse_name("log.202602030405", &wall, &seq, &gz), 0);
    assert_int_equal(wall, p.wall);
    assert_int_equal(seq, 0);
    assert_int_equal(gz, 0);
    assert_int_equal(period_parse_name("log.202602030405.7.gz", &wall, &seq, &gz), 0);
    assert_int_equal(seq, 7);
    assert_int_equal(gz, 1);
    assert_int_equal(period_parse_name("log.202602030405.gz", &wall, &seq, &gz), 0);
    assert_int_equal(seq, 0);
    assert_int_equal(gz, 1);
    const char *bad[] = {"current",
                         "log.",
                         "log.2026020304",
                         "log.202602030405.gz.tmp",
                         "log.202602030405.0",
                         "log.202613030405",
                         "log.202602030460",
                         "log.202602030405x",
                         "log.202602030405.1.2",
                         "xlog.202602030405",
                         "log.202602030405.gzip",
                         "log.20260203040a"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(period_parse_name(bad[i], &wall, &seq, &gz), -1);
}

static void test_time_prefix(void **state)
{
    (void)state;
    char buf[64];
    use_tz("Asia/Kolkata");
    int64_t t = utc(2026, 1, 2, 3, 4, 5);
    assert_int_equal(period_time_prefix(t, 0, buf, sizeof buf), 29);
    assert_string_equal(buf, "[02/Jan/2026:08:34:05 +0530] ");
    assert_int_equal(period_time_prefix(t, 1, buf, sizeof buf), 29);
    assert_string_equal(buf, "[02/Jan/2026:03:04:05 +0000] ");
    use_tz("America/New_York");
    period_time_prefix(utc(2026, 7, 4, 12, 0, 0), 0, buf, sizeof buf);
    assert_string_equal(buf, "[04/Jul/2026:08:00:00 -0400] ");
    use_tz("Asia/Tokyo");
    period_time_prefix(utc(2026, 12, 31, 15, 0, 0), 0, buf, sizeof buf);
    assert_string_equal(buf, "[01/Jan/2027:00:00:00 +0900] ");
}

/* Every instant of a year in New York belongs to exactly one hourly period,
 * periods are contiguous, and no two periods get the same name without the
 * second one being a DST repeat (which logdir suffixes). */
static void test_contiguous_year(void **state)
{
    (void)state;
    use_tz("America/New_York");
    struct period prev;
    period_of(utc(2026, 1, 1, 0, 0, 0), 3600, 0, &prev);
    int repeats = 0;
    for (int64_t t = utc(2026, 1, 1, 0, 0, 0); t < utc(2027, 1, 1, 0, 0, 0); t += 60) {
        struct period p;
        period_of(t, 3600, 0, &p);
        assert_true(p.start <= t);
        if (p.start != prev.start) {
            assert_int_equal(p.start, t); /* a period starts exactly when the old one ends */
            if (p.wall <= prev.wall) repeats++;
            prev = p;
        }
    }
    assert_int_equal(repeats, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utc_hourly),
        cmocka_unit_test(test_tokyo_daily_at_local_midnight),
        cmocka_unit_test(test_kolkata_half_hour_offset),
        cmocka_unit_test(test_new_york_fall_back),
        cmocka_unit_test(test_new_york_spring_forward),
        cmocka_unit_test(test_skipped_midnight),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_time_prefix),
        cmocka_unit_test(test_contiguous_year),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
