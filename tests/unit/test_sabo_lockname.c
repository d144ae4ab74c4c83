/* Unit tests for sabo's lock file names: the original's format, weight
 * units, group prefix matching, and rejection of malformed names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../sabo/lockname.h"

static void test_unique_shape(void **state)
{
    (void)state;
    unsigned char rnd[LOCKNAME_UNIQUE_LEN];
    char u[LOCKNAME_UNIQUE_LEN + 1];
    for (int i = 0; i < LOCKNAME_UNIQUE_LEN; i++)
        rnd[i] = (unsigned char)(i * 37 + 255);
    lockname_unique(u, rnd);
    assert_int_equal(strlen(u), LOCKNAME_UNIQUE_LEN);
    for (int i = 0; i < LOCKNAME_UNIQUE_LEN; i++)
        assert_true((u[i] >= '0' && u[i] <= '9') || (u[i] >= 'a' && u[i] <= 'v'));
}

static void test_format(void **state)
{
    (void)state;
    char buf[LOCKNAME_MAX];
    struct lockname ln = {.bw = 100000000, .pid = 4242, .weight = 1, .unit = 1};
    strcpy(ln.unique, "c1q2kmb7p3hc72o0ab5g");
    assert_int_equal(lockname_format(buf, sizeof buf, &ln), 45);
    assert_string_equal(buf, "sabo_100000000_4242_c1q2kmb7p3hc72o0ab5g.lock");
    ln.weight = 3;
    lockname_format(buf, sizeof buf, &ln);
    assert_string_equal(buf, "sabo_100000000_4242_c1q2kmb7p3hc72o0ab5g_w3.lock");
    ln.unit = 3;
    lockname_format(buf, sizeof buf, &ln);
    assert_string_equal(buf, "sabo_100000000_4242_c1q2kmb7p3hc72o0ab5g_w3_3.lock");
    assert_int_equal(lockname_format(buf, 10, &ln), -1);
}

static void test_group_prefix(void **state)
{
    (void)state;
    char buf[48];
    assert_int_equal(lockname_group_prefix(buf, sizeof buf, 32000), 11);
    assert_string_equal(buf, "sabo_32000_");
    assert_true(lockname_in_group("sabo_100_1_abc.lock", 100));
    assert_true(lockname_in_group("sabo_100_anything", 100)); /* the original's rule */
    assert_false(lockname_in_group("sabo_1000_1_abc.lock", 100));
    assert_false(lockname_in_group("sabo_10_1_abc.lock", 100));
    assert_false(lockname_in_group("_sabo_100_1_abc.lock", 100));
    assert_false(lockname_in_group("sabo_100", 100));
}

static void test_parse_roundtrip(void **state)
{
    (void)state;
    char buf[LOCKNAME_MAX];
    for (unsigned w = 1; w <= 5; w++)
        for (unsigned u = 1; u <= w; u++) {
            struct lockname ln = {.bw = 18446744073709551615ULL, .pid = 2147483647,
                                  .weight = w, .unit = u}, out;
            strcpy(ln.unique, "0123456789abcdefghuv");
            assert_true(lockname_format(buf, sizeof buf, &ln) > 0);
            assert_int_equal(lockname_parse(buf, &out), 0);
            assert_true(out.bw == ln.bw);
            assert_int_equal(out.pid, ln.pid);
            assert_string_equal(out.unique, ln.unique);
            assert_int_equal(out.weight, w);
            assert_int_equal(out.unit, u);
        }
}

static void test_parse_original(void **state)
{
    (void)state;
    struct lockname out;
    /* Written by kazeburo/sabo: sabo_<bw>_<pid>_<xid>.lock */
    assert_int_equal(lockname_parse("sabo_32000_77_9m4e2mr0ui3e8a215n4g.lock", &out), 0);
    assert_true(out.bw == 32000);
    assert_int_equal(out.pid, 77);
    assert_int_equal(out.weight, 1);
    assert_int_equal(out.unit, 1);
    /* Its older versions had no unique part. */
    assert_int_equal(lockname_parse("sabo_32000_77.lock", &out), -1);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "sabo_",
        "sabo__1_abc.lock",
        "sabo_x_1_abc.lock",
        "sabo_-1_1_abc.lock",
        "sabo_1_1_abc",
        "sabo_1_1_abc.lockx",
        "sabo_1_1_abc.lock.tmp",
        "sabo_1_1_.lock",
        "sabo_1__abc.lock",
        "sabo_1_1_ABC.lock",
        "sabo_1_1_abc_w1.lock",     /* weight 1 is written without _w */
        "sabo_1_1_abc_w0.lock",
        "sabo_1_1_abc_w.lock",
        "sabo_1_1_abc_w101.lock",   /* above the maximum weight */
        "sabo_1_1_abc_w3_1.lock",   /* unit 1 has no _<k> */
        "sabo_1_1_abc_w3_4.lock",   /* unit beyond the weight */
        "sabo_1_1_abc_w3_.lock",
        "sabo_1_1_abc_x3.lock",
        "sabo_18446744073709551616_1_abc.lock", /* bw overflow */
        "sabo_1_2147483648_abc.lock",           /* pid overflow */
        "sabo_1_1_abcdefghijklmnopqrstu.lock",  /* unique too long */
        "_sabo_1_1_abc.lock",
        "Sabo_1_1_abc.lock",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct lockname out;
        if (lockname_parse(bad[i], &out) != -1)
            fail_msg("accepted malformed name \"%s\"", bad[i]);
    }
}

/* Every prefix of a valid name is rejected (no partial-parse acceptance). */
static void test_parse_prefixes(void **state)
{
    (void)state;
    const char *good = "sabo_100000_4242_c1q2kmb7p3hc72o0ab5g_w12_7.lock";
    char buf[LOCKNAME_MAX];
    struct lockname out;
    assert_int_equal(lockname_parse(good, &out), 0);
    for (size_t n = 0; n < strlen(good); n++) {
        memcpy(buf, good, n);
        buf[n] = 0;
        assert_int_equal(lockname_parse(buf, &out), -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unique_shape),   cmocka_unit_test(test_format),
        cmocka_unit_test(test_group_prefix),   cmocka_unit_test(test_parse_roundtrip),
        cmocka_unit_test(test_parse_original), cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_parse_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
