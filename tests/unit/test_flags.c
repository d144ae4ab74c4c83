/* Unit tests for lib/flags: both spellings (go-flags and Go flag), operands,
 * help/version, and every malformed command line we could think of. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "flags.h"

struct opts {
    int verbose, quiet, progress;
    const char *dir;
    long long n;
    uint64_t size;
    int64_t dur;
    int headers;
    char last_header[64];
};

static int add_header(void *target, const char *v, char *err, size_t errlen)
{
    struct opts *o = target;
    if (!strchr(v, ':')) {
        snprintf(err, errlen, "expected \"Key: value\"");
        return -1;
    }
    o->headers++;
    snprintf(o->last_header, sizeof o->last_header, "%s", v);
    return 0;
}

static struct opts O;

static const struct flag_spec specs[] = {
    {.name = "verbose", .short_name = 'V', .kind = FLAG_BOOL, .target = &O.verbose},
    {.name = "quiet", .short_name = 'q', .kind = FLAG_BOOL, .target = &O.quiet},
    {.name = "progress", .kind = FLAG_BOOL, .target = &O.progress},
    {.name = "work-dir", .short_name = 'd', .kind = FLAG_STRING, .target = &O.dir},
    {.name = "count", .short_name = 'n', .kind = FLAG_INT, .target = &O.n},
    {.name = "max-bandwidth", .kind = FLAG_SIZE, .target = &O.size},
    {.name = "timeout", .kind = FLAG_DURATION, .target = &O.dur},
    {.name = "headers", .short_name = 'H', .kind = FLAG_FUNC, .target = &O, .func = add_header},
    {.name = "version", .short_name = 'v', .kind = FLAG_VERSION},
    {0},
};

static struct flags_def gnu = {.prog = "t", .style = FLAGS_GNU, .specs = specs};
static struct flags_def go = {.prog = "t", .style = FLAGS_GO, .specs = specs};

#define MAXARGS 16
static char *argv_buf[MAXARGS];
static char err[256];

/* Parse a NULL-terminated list of arguments; returns the result code. */
static int parse(const struct flags_def *def, int *first, int *argc, ...)
{
    va_list ap;
    int n = 0;
    memset(&O, 0, sizeof O);
    err[0] = 0;
    argv_buf[n++] = (char *)"t";
    va_start(ap, argc);
    for (char *a; (a = va_arg(ap, char *)) != NULL;)
        argv_buf[n++] = a;
    va_end(ap);
    argv_buf[n] = NULL;
    *argc = n;
    return flags_parse(def, n, argv_buf, first, err, sizeof err);
}

static void test_gnu_spellings(void **state)
{
    (void)state;
    int first, argc;
    assert_int_equal(parse(&gnu, &first, &argc, "--work-dir=/a", "--count", "5", "-q",
                           "--max-bandwidth", "100M", "--timeout=1h0m0s", NULL),
                     FLAGS_OK);
    assert_string_equal(O.dir, "/a");
    assert_int_equal(O.n, 5);
    assert_true(O.quiet);
    assert_int_equal(O.size, 100000000ULL);
    assert_int_equal(O.dur, 3600LL * 1000000000LL);
    assert_int_equal(first, argc);

    assert_int_equal(parse(&gnu, &first, &argc, "-d", "/b", "-n7", "-qV", NULL), FLAGS_OK);
    assert_string_equal(O.dir, "/b");
    assert_int_equal(O.n, 7);
    assert_true(O.quiet && O.verbose);

    assert_int_equal(parse(&gnu, &first, &argc, "-Vd/c", "-n=3", NULL), FLAGS_OK);
    assert_string_equal(O.dir, "/c");
    assert_int_equal(O.n, 3);

    /* A long name with one dash is accepted too. */
    assert_int_equal(parse(&gnu, &first, &argc, "-max-bandwidth=1K", "-work-dir", "/d", NULL),
                     FLAGS_OK);
    assert_int_equal(O.size, 1000);
    assert_string_equal(O.dir, "/d");

    /* Repeatable callback flag. */
    assert_int_equal(parse(&gnu, &first, &argc, "-H", "A: 1", "--headers=B: 2", "-HC: 3", NULL),
                     FLAGS_OK);
    assert_int_equal(O.headers, 3);
    assert_string_equal(O.last_header, "C: 3");

    /* A value may start with a dash. */
    assert_int_equal(parse(&gnu, &first, &argc, "--work-dir", "-weird", NULL), FLAGS_OK);
    assert_string_equal(O.dir, "-weird");
}

static void test_gnu_operands(void **state)
{
    (void)state;
    int first, argc;
    assert_int_equal(parse(&gnu, &first, &argc, "a", "-q", "b", "--", "-V", "c", NULL),
                     FLAGS_OK);
    assert_true(O.quiet);
    assert_false(O.verbose);
    assert_int_equal(argc - first, 4);
    assert_string_equal(argv_buf[first], "a");
    assert_string_equal(argv_buf[first + 1], "b");
    assert_string_equal(argv_buf[first + 2], "-V");
    assert_string_equal(argv_buf[first + 3], "c");

    assert_int_equal(parse(&gnu, &first, &argc, "-", NULL), FLAGS_OK);
    assert_int_equal(argc - first, 1);
    assert_string_equal(argv_buf[first], "-");

    struct flags_def wrap = gnu;
    wrap.stop_at_operand = 1;
    assert_int_equal(parse(&wrap, &first, &argc, "-q", "cmd", "-V", NULL), FLAGS_OK);
    assert_true(O.quiet);
    assert_false(O.verbose);
    assert_int_equal(argc - first, 2);
    assert_string_equal(argv_buf[first], "cmd");
    assert_string_equal(argv_buf[first + 1], "-V");
}

static void test_go_spellings(void **state)
{
    (void)state;
    int first, argc;
    assert_int_equal(parse(&go, &first, &argc, "-work-dir", "/a", "--count=4", "-quiet",
                           "-verbose=false", "--timeout", "10s", NULL),
                     FLAGS_OK);
    assert_string_equal(O.dir, "/a");
    assert_int_equal(O.n, 4);
    assert_true(O.quiet);
    assert_false(O.verbose);
    assert_int_equal(O.dur, 10LL * 1000000000LL);

    /* Go stops at the first operand. */
    assert_int_equal(parse(&go, &first, &argc, "-quiet", "x", "-verbose", NULL), FLAGS_OK);
    assert_true(O.quiet);
    assert_false(O.verbose);
    assert_int_equal(argc - first, 2);
    assert_string_equal(argv_buf[first + 1], "-verbose");

    /* A bool never eats the next argument. */
    assert_int_equal(parse(&go, &first, &argc, "-quiet", "false", NULL), FLAGS_OK);
    assert_true(O.quiet);
    assert_int_equal(argc - first, 1);
}

static void expect_error(const struct flags_def *def, const char *needle, ...)
{
    va_list ap;
    int n = 0, first;
    memset(&O, 0, sizeof O);
    err[0] = 0;
    argv_buf[n++] = (char *)"t";
    va_start(ap, needle);
    for (char *a; (a = va_arg(ap, char *)) != NULL;)
        argv_buf[n++] = a;
    va_end(ap);
    int r = flags_parse(def, n, argv_buf, &first, err, sizeof err);
    if (r != FLAGS_ERROR || !strstr(err, needle))
        fail_msg("expected error containing \"%s\", got %d \"%s\"", needle, r, err);
    assert_null(strchr(err, '\n'));
}

static void test_errors(void **state)
{
    (void)state;
    expect_error(&gnu, "unknown flag: --nope", "--nope", NULL);
    expect_error(&gnu, "unknown flag: -x", "-x", NULL);
    expect_error(&gnu, "unknown flag: -z", "-qz", NULL);
    expect_error(&gnu, "flag needs an argument: --work-dir", "--work-dir", NULL);
    expect_error(&gnu, "flag needs an argument: -d", "-d", NULL);
    expect_error(&gnu, "--count", "--count=abc", NULL);
    expect_error(&gnu, "--count", "--count=", NULL);
    expect_error(&gnu, "--count", "--count", "1x", NULL);
    expect_error(&gnu, "out of range", "--count=99999999999999999999", NULL);
    expect_error(&gnu, "--max-bandwidth", "--max-bandwidth=10Q", NULL);
    expect_error(&gnu, "--max-bandwidth", "--max-bandwidth=-1", NULL);
    expect_error(&gnu, "--max-bandwidth", "--max-bandwidth", "", NULL);
    expect_error(&gnu, "--timeout", "--timeout=10", NULL);
    expect_error(&gnu, "--timeout", "--timeout=ten", NULL);
    expect_error(&gnu, "invalid boolean", "--quiet=maybe", NULL);
    expect_error(&gnu, "Key: value", "-H", "nocolon", NULL);
    expect_error(&gnu, "bad flag syntax", "---x", NULL);
    expect_error(&gnu, "bad flag syntax", "--=x", NULL);
    expect_error(&go, "flag provided but not defined: -nope", "-nope", NULL);
    expect_error(&go, "flag provided but not defined: --nope", "--nope=1", NULL);
    expect_error(&go, "flag needs an argument: -work-dir", "-work-dir", NULL);
    expect_error(&go, "bad flag syntax", "-=x", NULL);
    expect_error(&go, "-timeout", "-timeout", "1d", NULL);
}

static void test_help_version(void **state)
{
    (void)state;
    int first, argc;
    assert_int_equal(parse(&gnu, &first, &argc, "--help", NULL), FLAGS_HELP);
    assert_int_equal(parse(&gnu, &first, &argc, "-h", NULL), FLAGS_HELP);
    assert_int_equal(parse(&gnu, &first, &argc, "-qh", NULL), FLAGS_HELP);
    assert_int_equal(parse(&go, &first, &argc, "-help", NULL), FLAGS_HELP);
    assert_int_equal(parse(&go, &first, &argc, "-h", NULL), FLAGS_HELP);
    assert_int_equal(parse(&gnu, &first, &argc, "-v", NULL), FLAGS_VERSION);
    assert_int_equal(parse(&gnu, &first, &argc, "--version", NULL), FLAGS_VERSION);
    assert_int_equal(parse(&go, &first, &argc, "-version", NULL), FLAGS_VERSION);
    assert_int_equal(parse(&go, &first, &argc, "--version", NULL), FLAGS_VERSION);

    /* Usage mentions every flag. */
    char buf[4096];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    flags_usage(&gnu, f);
    fclose(f);
    for (const struct flag_spec *s = specs; s->name; s++)
        assert_non_null(strstr(buf, s->name));
    f = fmemopen(buf, sizeof buf, "w");
    flags_usage(&go, f);
    fclose(f);
    assert_non_null(strstr(buf, "-timeout DURATION"));
}

/* Ranges: one table with every numeric kind bounded, as the tools declare them. */
static long long R_n;
static uint64_t R_size;
static int64_t R_dur, R_open;
static const struct flag_spec ranged_specs[] = {
    {.name = "workers", .kind = FLAG_INT, .target = &R_n, .range = "1..256"},
    {.name = "signed", .kind = FLAG_INT, .target = &R_n, .range = "-5..-2"},
    {.name = "max-message-size", .kind = FLAG_SIZE, .target = &R_size, .range = "1KiB..1GiB"},
    {.name = "dial_timeout", .kind = FLAG_DURATION, .target = &R_dur, .range = "1ms..1h"},
    {.name = "shutdown", .kind = FLAG_DURATION, .target = &R_open, .range = "0s.."},
    {.name = "dir", .kind = FLAG_STRING, .target = &O.dir},
    {0},
};
static struct flags_def ranged = {.prog = "t", .style = FLAGS_GO, .specs = ranged_specs};

static void expect_ok(const struct flags_def *def, const char *flag, const char *value)
{
    int first, argc;
    if (parse(def, &first, &argc, flag, value, NULL) != FLAGS_OK)
        fail_msg("%s %s refused: %s", flag, value, err);
}

static void test_ranges(void **state)
{
    (void)state;
    assert_int_equal(flags_check_def(&ranged, err, sizeof err), 0);
    /* the bounds themselves are in, with each kind's own spelling */
    expect_ok(&ranged, "-workers", "1");
    assert_int_equal(R_n, 1);
    expect_ok(&ranged, "-workers", "256");
    assert_int_equal(R_n, 256);
    expect_ok(&ranged, "-signed", "-5");
    assert_int_equal(R_n, -5);
    expect_ok(&ranged, "-max-message-size", "1024");
    expect_ok(&ranged, "-max-message-size", "1GiB");
    assert_int_equal(R_size, 1ULL << 30);
    expect_ok(&ranged, "-dial_timeout", "1ms");
    expect_ok(&ranged, "-dial_timeout", "1h0m0s");
    assert_int_equal(R_dur, 3600000000000LL);
    expect_ok(&ranged, "-dial_timeout", "0.5s");
    assert_int_equal(R_dur, 500000000LL);
    expect_ok(&ranged, "-shutdown", "0");
    expect_ok(&ranged, "-shutdown", "876000h");
    assert_int_equal(R_open, 876000LL * 3600000000000LL);

    /* one line, the value as given, the range in the table's words */
    expect_error(&ranged, "invalid value \"-1s\" for -dial_timeout: must be between 1ms and 1h",
                 "-dial_timeout", "-1s", NULL);
    expect_error(&ranged, "invalid value \"0\" for -dial_timeout: must be between 1ms and 1h",
                 "-dial_timeout", "0", NULL);
    expect_error(&ranged, "must be between 1ms and 1h", "-dial_timeout=999us", NULL);
    expect_error(&ranged, "must be between 1ms and 1h", "-dial_timeout=1h0m0.000000001s", NULL);
    expect_error(&ranged, "invalid value \"0\" for -workers: must be between 1 and 256",
                 "-workers", "0", NULL);
    expect_error(&ranged, "must be between 1 and 256", "-workers", "257", NULL);
    expect_error(&ranged, "must be between 1 and 256", "-workers", "-9223372036854775808",
                 NULL);
    expect_error(&ranged, "must be between -5 and -2", "-signed", "-1", NULL);
    expect_error(&ranged, "must be between -5 and -2", "-signed", "-6", NULL);
    expect_error(&ranged, "must be between 1KiB and 1GiB", "-max-message-size", "0", NULL);
    expect_error(&ranged, "must be between 1KiB and 1GiB", "-max-message-size", "1023", NULL);
    expect_error(&ranged, "must be between 1KiB and 1GiB", "-max-message-size", "1.1G", NULL);
    expect_error(&ranged, "invalid value \"-1ns\" for -shutdown: must be at least 0s",
                 "-shutdown", "-1ns", NULL);
    /* junk is still reported as junk, not as out of range */
    expect_error(&ranged, "expected an integer", "-workers", "two", NULL);
    expect_error(&ranged, "invalid value \"soon\" for -dial_timeout", "-dial_timeout", "soon",
                 NULL);
    assert_null(strstr(err, "must be"));

    /* a table that forgets a range, or gets one wrong, is caught before parsing */
    static const struct flag_spec no_range[] = {
        {.name = "n", .kind = FLAG_INT, .target = &R_n}, {0}};
    static const struct flag_spec bad[][2] = {
        {{.name = "n", .kind = FLAG_INT, .target = &R_n, .range = "1-5"}, {0}},
        {{.name = "n", .kind = FLAG_INT, .target = &R_n, .range = "..5"}, {0}},
        {{.name = "n", .kind = FLAG_INT, .target = &R_n, .range = "5..1"}, {0}},
        {{.name = "d", .kind = FLAG_DURATION, .target = &R_dur, .range = "1ms..1x"}, {0}},
        {{.name = "z", .kind = FLAG_SIZE, .target = &R_size, .range = "-1..1"}, {0}},
        {{.name = "s", .kind = FLAG_STRING, .target = &O.dir, .range = "1..2"}, {0}},
    };
    struct flags_def d = {.prog = "t", .style = FLAGS_GNU, .specs = no_range};
    assert_int_equal(flags_check_def(&d, err, sizeof err), -1);
    assert_non_null(strstr(err, "internal error: --n has no valid range"));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d.specs = bad[i];
        err[0] = 0;
        if (flags_check_def(&d, err, sizeof err) != -1 || !strstr(err, "internal error"))
            fail_msg("bad range table %zu accepted: %s", i, err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gnu_spellings), cmocka_unit_test(test_gnu_operands),
        cmocka_unit_test(test_go_spellings),  cmocka_unit_test(test_errors),
        cmocka_unit_test(test_help_version),  cmocka_unit_test(test_ranges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
