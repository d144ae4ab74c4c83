/* Unit tests for sabo's --progress line formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../sabo/progress.h"

static void test_si(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(progress_si(0, b, sizeof b), "0 B");
    assert_string_equal(progress_si(9, b, sizeof b), "9 B");
    assert_string_equal(progress_si(999, b, sizeof b), "999 B");
    assert_string_equal(progress_si(1000, b, sizeof b), "1.0 kB");
    assert_string_equal(progress_si(1500, b, sizeof b), "1.5 kB");
    assert_string_equal(progress_si(32000, b, sizeof b), "32 kB");
    assert_string_equal(progress_si(2e6, b, sizeof b), "2.0 MB");
    assert_string_equal(progress_si(82854982, b, sizeof b), "83 MB");
    assert_string_equal(progress_si(1e9, b, sizeof b), "1.0 GB");
    assert_string_equal(progress_si(1e21, b, sizeof b), "1000 EB");
}

static void test_line(void **state)
{
    (void)state;
    char b[256];
    struct progress_sample s = {.bytes = 12345678, .rate = 2e6, .limit = 2e6, .own_units = 1,
                                .units = 2, .elapsed_ns = 65500000000LL};
    int n = progress_format(b, sizeof b, &s);
    assert_string_equal(b,
                        "12 MB (12345678 bytes) 1:05.5 at 2.0 MB/s, limit 2.0 MB/s, share 1/2");
    assert_int_equal(n, (int)strlen(b));
    s.elapsed_ns = 3723LL * 1000000000LL + 99999999;
    s.average = 1;
    progress_format(b, sizeof b, &s);
    assert_non_null(strstr(b, " 1:02:03.0 at 2.0 MB/s average, "));
    /* Truncation keeps a terminated string and reports what fits. */
    assert_int_equal(progress_format(b, 10, &s), 9);
    assert_int_equal(strlen(b), 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_si),
        cmocka_unit_test(test_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
