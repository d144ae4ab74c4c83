/* Unit tests for lib/units: sizes as go-humanize ParseBytes, durations as Go's
 * time.ParseDuration and Duration.String. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "units.h"

static void size_ok(const char *s, uint64_t want)
{
    uint64_t v = 12345;
    char err[128] = "";
    int r = units_parse_bytes(s, &v, err, sizeof err);
    if (r != 0 || v != want)
        fail_msg("units_parse_bytes(\"%s\") = %d, %llu (%s); want %llu", s, r,
                 (unsigned long long)v, err, (unsigned long long)want);
}

static void size_bad(const char *s)
{
    uint64_t v = 777;
    char err[128] = "";
    if (units_parse_bytes(s, &v, err, sizeof err) != -1)
        fail_msg("units_parse_bytes(\"%s\") accepted: %llu", s, (unsigned long long)v);
    assert_int_equal(v, 777);
    assert_true(strlen(err) > 0);
}

static void test_sizes_valid(void **state)
{
    (void)state;
    size_ok("0", 0);
    size_ok("42", 42);
    size_ok("42B", 42);
    size_ok("42b", 42);
    size_ok("100M", 100000000ULL);
    size_ok("100m", 100000000ULL);
    size_ok("100MB", 100000000ULL);
    size_ok("100MiB", 104857600ULL);
    size_ok("100mib", 104857600ULL);
    size_ok("100Mi", 104857600ULL);
    size_ok("1.5G", 1500000000ULL);
    size_ok("1.5GiB", 1610612736ULL);
    size_ok("32K", 32000);
    size_ok("32KiB", 32768);
    size_ok("500 kB", 500000);
    size_ok("500kB", 500000);
    size_ok("500 kB ", 500000);
    size_ok("1,000", 1000);
    size_ok("1,000K", 1000000);
    size_ok(".5K", 500);
    size_ok("5.K", 5000);
    size_ok("1T", 1000000000000ULL);
    size_ok("1TiB", 1099511627776ULL);
    size_ok("1P", 1000000000000000ULL);
    size_ok("1E", 1000000000000000000ULL);
    size_ok("16E", 16000000000000000000ULL);
    size_ok("18446744073709551615", UINT64_MAX);
    size_ok("9007199254740993", 9007199254740993ULL); /* exact above 2^53 */
}

static void test_sizes_invalid(void **state)
{
    (void)state;
    const char *bad[] = {
        "", " ", "M", "abc", "-1", "-1M", "- 1", "1X", "1MX", "1 M B", "1..5M", "1.2.3",
        "1e5", "1 z", "0x10", "+1", "\t", "1MiBs", "1 KiBB", "100Mbit", "1K1", "1 2",
        "18446744073709551616", "19E", "17EiB", "99999999999999999999999", ",", ".",
        "NaN", "inf", "1\n2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        size_bad(bad[i]);
}

static void dur_ok(const char *s, int64_t want)
{
    int64_t v = 12345;
    char err[128] = "";
    int r = units_parse_duration(s, &v, err, sizeof err);
    if (r != 0 || v != want)
        fail_msg("units_parse_duration(\"%s\") = %d, %lld (%s); want %lld", s, r, (long long)v,
                 err, (long long)want);
}

static void dur_bad(const char *s)
{
    int64_t v = 777;
    char err[128] = "";
    if (units_parse_duration(s, &v, err, sizeof err) != -1)
        fail_msg("units_parse_duration(\"%s\") accepted: %lld", s, (long long)v);
    assert_int_equal(v, 777);
    assert_true(strlen(err) > 0);
}

#define SEC 1000000000LL

static void test_durations_valid(void **state)
{
    (void)state;
    dur_ok("0", 0);
    dur_ok("-0", 0);
    dur_ok("+0", 0);
    dur_ok("0s", 0);
    dur_ok("10s", 10 * SEC);
    dur_ok("1h", 3600 * SEC);
    dur_ok("1h0m0s", 3600 * SEC);
    dur_ok("1h30m", 5400 * SEC);
    dur_ok("300ms", 300000000LL);
    dur_ok("86400s", 86400 * SEC);
    dur_ok("1.5h", 5400 * SEC);
    dur_ok(".5s", SEC / 2);
    dur_ok("1.s", SEC);
    dur_ok("-1s", -SEC);
    dur_ok("+5m", 300 * SEC);
    dur_ok("1ns", 1);
    dur_ok("1us", 1000);
    dur_ok("1\xc2\xb5s", 1000);
    dur_ok("1\xce\xbcs", 1000);
    dur_ok("2h45m30.5s", (2 * 3600 + 45 * 60 + 30) * SEC + SEC / 2);
    dur_ok("1m1m", 120 * SEC);
    dur_ok("9223372036854775807ns", INT64_MAX);
    dur_ok("-9223372036854775808ns", INT64_MIN);
    dur_ok("0.000000001s", 1);
    dur_ok("2562047h", 2562047LL * 3600 * SEC);
}

static void test_durations_invalid(void **state)
{
    (void)state;
    const char *bad[] = {
        "", " ", "-", "+", "s", "10", "1.5", ".", ".s", "-.s", "10x", "10 s", "10s ", " 10s",
        "1h 30m", "1d", "1w", "10S", "1H", "1e3s", "abc", "1s2", "9223372036854775808ns",
        "2562048h", "3000000h", "99999999999999999999s", "1s-1s", "--1s", "0x10s", "1..5s",
        "1sec",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        dur_bad(bad[i]);
}

static void test_duration_format(void **state)
{
    (void)state;
    struct {
        int64_t ns;
        const char *want;
    } cases[] = {
        {0, "0s"},
        {1, "1ns"},
        {1100, "1.1\xc2\xb5s"},
        {2200000, "2.2ms"},
        {300000000, "300ms"},
        {SEC, "1s"},
        {SEC + SEC / 2, "1.5s"},
        {10 * SEC, "10s"},
        {60 * SEC, "1m0s"},
        {3600 * SEC, "1h0m0s"},
        {86400 * SEC, "24h0m0s"},
        {-SEC, "-1s"},
        {(4 * 3600 + 5 * 60 + 6) * SEC + 7000000, "4h5m6.007s"},
        {INT64_MAX, "2562047h47m16.854775807s"},
        {INT64_MIN, "-2562047h47m16.854775808s"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_string_equal(units_format_duration(cases[i].ns, buf, sizeof buf), cases[i].want);
    /* Round trip through the parser. */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t v;
        assert_int_equal(units_parse_duration(cases[i].want, &v, NULL, 0), 0);
        assert_int_equal(v, cases[i].ns);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes_valid),      cmocka_unit_test(test_sizes_invalid),
        cmocka_unit_test(test_durations_valid),  cmocka_unit_test(test_durations_invalid),
        cmocka_unit_test(test_duration_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
