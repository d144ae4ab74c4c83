/* units: human sizes (go-humanize ParseBytes) and Go durations
 * (time.ParseDuration / Duration.String), ported to follow the originals'
 * accept/reject decisions exactly, so flag values that worked with the Go
 * tools work here and junk that they refused is refused too. */
#include "units.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    errno = EINVAL;
    return -1;
}

struct size_unit {
    const char *name;
    double mult;
};

/* go-humanize's bytesSizeTable, lowercase. */
static const struct size_unit size_units[] = {
    {"", 1},           {"b", 1},
    {"k", 1e3},        {"kb", 1e3},       {"ki", 1024.0},    {"kib", 1024.0},
    {"m", 1e6},        {"mb", 1e6},       {"mi", 1048576.0}, {"mib", 1048576.0},
    {"g", 1e9},        {"gb", 1e9},       {"gi", 1073741824.0}, {"gib", 1073741824.0},
    {"t", 1e12},       {"tb", 1e12},      {"ti", 1099511627776.0}, {"tib", 1099511627776.0},
    {"p", 1e15},       {"pb", 1e15},      {"pi", 1125899906842624.0},
    {"pib", 1125899906842624.0},
    {"e", 1e18},       {"eb", 1e18},      {"ei", 1152921504606846976.0},
    {"eib", 1152921504606846976.0},
};

int units_parse_bytes(const char *s, uint64_t *out, char *err, size_t errlen)
{
    char num[64], unit[16];
    size_t n = 0, i = 0, dots = 0, digits = 0;

    if (!s || !*s)
        return fail(err, errlen, "empty size");
    /* The number: digits, '.', ',' (thousands separators are dropped). */
    for (; s[i] && (isdigit((unsigned char)s[i]) || s[i] == '.' || s[i] == ','); i++) {
        if (s[i] == ',')
            continue;
        if (n + 1 >= sizeof num)
            return fail(err, errlen, "number too long");
        if (s[i] == '.')
            dots++;
        else
            digits++;
        num[n++] = s[i];
    }
    num[n] = 0;
    if (s[0] == '-')
        return fail(err, errlen, "negative size");
    if (digits == 0 || dots > 1)
        return fail(err, errlen, "expected a number optionally followed by a unit (e.g. 100M, 1.5GiB)");

    /* The unit: surrounding white space ignored, case-insensitive. */
    const char *u = s + i;
    while (isspace((unsigned char)*u))
        u++;
    size_t ul = strlen(u);
    while (ul && isspace((unsigned char)u[ul - 1]))
        ul--;
    if (ul >= sizeof unit)
        return fail(err, errlen, "unknown size unit");
    for (size_t k = 0; k < ul; k++)
        unit[k] = (char)tolower((unsigned char)u[k]);
    unit[ul] = 0;

    for (size_t k = 0; k < sizeof size_units / sizeof size_units[0]; k++) {
        if (strcmp(unit, size_units[k].name) != 0)
            continue;
        /* Integers without a fraction are exact in uint64 arithmetic (a double
         * loses precision above 2^53); fractions go through double like Go. */
        if (dots == 0) {
            errno = 0;
            unsigned long long v = strtoull(num, NULL, 10);
            uint64_t m = (uint64_t)size_units[k].mult;
            if (errno == ERANGE || (m && v > UINT64_MAX / m))
                return fail(err, errlen, "size too large");
            *out = (uint64_t)v * m;
            return 0;
        }
        double f = strtod(num, NULL) * size_units[k].mult;
        if (!(f < 18446744073709551616.0))
            return fail(err, errlen, "size too large");
        *out = (uint64_t)f;
        return 0;
    }
    return fail(err, errlen,
                "unknown size unit (use B, K/KB, KiB, M/MB, MiB, G/GB, GiB, T, P, E)");
}

/* Go's leadingInt: accumulate digits, reporting overflow past 1<<63. */
static int leading_int(const char **sp, uint64_t *x)
{
    const char *s = *sp;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_C(1) << 63) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > (UINT64_C(1) << 63))
            return -1;
    }
    *sp = s;
    *x = v;
    return 0;
}

/* Go's leadingFraction: digits after '.', as x / scale, ignoring overflowing tail. */
static void leading_fraction(const char **sp, uint64_t *x, double *scale)
{
    const char *s = *sp;
    uint64_t v = 0;
    double sc = 1;
    int overflow = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (overflow)
            continue;
        if (v > ((UINT64_C(1) << 63) - 1) / 10) {
            overflow = 1;
            continue;
        }
        uint64_t y = v * 10 + (uint64_t)(*s - '0');
        if (y > (UINT64_C(1) << 63)) {
            overflow = 1;
            continue;
        }
        v = y;
        sc *= 10;
    }
    *sp = s;
    *x = v;
    *scale = sc;
}

int units_parse_duration(const char *s, int64_t *ns, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {
        {"ns", 1},
        {"us", 1000},
        {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
        {"\xce\xbcs", 1000}, /* U+03BC Greek mu */
        {"ms", 1000000},
        {"s", 1000000000ULL},
        {"m", 60000000000ULL},
        {"h", 3600000000000ULL},
    };
    uint64_t d = 0;
    int neg = 0;

    if (!s || !*s)
        return fail(err, errlen, "empty duration");
    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    if (strcmp(s, "0") == 0) {
        *ns = 0;
        return 0;
    }
    if (!*s)
        return fail(err, errlen, "invalid duration (expected e.g. 10s, 1h30m, 300ms)");
    while (*s) {
        uint64_t v = 0, f = 0;
        double scale = 1;
        if (!(*s == '.' || (*s >= '0' && *s <= '9')))
            return fail(err, errlen, "invalid duration (expected e.g. 10s, 1h30m, 300ms)");
        const char *pl = s;
        if (leading_int(&s, &v) < 0)
            return fail(err, errlen, "duration out of range");
        int pre = s != pl, post = 0;
        if (*s == '.') {
            s++;
            const char *p2 = s;
            leading_fraction(&s, &f, &scale);
            post = s != p2;
        }
        if (!pre && !post)
            return fail(err, errlen, "invalid duration (expected e.g. 10s, 1h30m, 300ms)");
        const char *us = s;
        while (*s && *s != '.' && !(*s >= '0' && *s <= '9'))
            s++;
        size_t ulen = (size_t)(s - us);
        if (ulen == 0)
            return fail(err, errlen, "missing unit in duration (use ns, us, ms, s, m, h)");
        uint64_t unit = 0;
        for (size_t k = 0; k < sizeof units / sizeof units[0]; k++)
            if (strlen(units[k].name) == ulen && memcmp(units[k].name, us, ulen) == 0)
                unit = units[k].mult;
        if (!unit)
            return fail(err, errlen, "unknown unit in duration (use ns, us, ms, s, m, h)");
        if (v > (UINT64_C(1) << 63) / unit)
            return fail(err, errlen, "duration out of range");
        v *= unit;
        if (f > 0) {
            v += (uint64_t)((double)f * ((double)unit / scale));
            if (v > (UINT64_C(1) << 63))
                return fail(err, errlen, "duration out of range");
        }
        d += v;
        if (d > (UINT64_C(1) << 63))
            return fail(err, errlen, "duration out of range");
    }
    if (neg) {
        *ns = d == (UINT64_C(1) << 63) ? INT64_MIN : -(int64_t)d;
        return 0;
    }
    if (d > (uint64_t)INT64_MAX)
        return fail(err, errlen, "duration out of range");
    *ns = (int64_t)d;
    return 0;
}

/* Go's fmtFrac: v/10^prec with trailing zeros (and the dot) dropped, written
 * backwards ending at buf[w]; returns the new w and v/10^prec. */
static int fmt_frac(char *buf, int w, uint64_t v, int prec, uint64_t *nv)
{
    int print = 0;
    for (int i = 0; i < prec; i++) {
        int digit = (int)(v % 10);
        print = print || digit != 0;
        if (print)
            buf[--w] = (char)('0' + digit);
        v /= 10;
    }
    if (print)
        buf[--w] = '.';
    *nv = v;
    return w;
}

static int fmt_int(char *buf, int w, uint64_t v)
{
    if (v == 0)
        buf[--w] = '0';
    while (v > 0) {
        buf[--w] = (char)('0' + v % 10);
        v /= 10;
    }
    return w;
}

char *units_format_duration(int64_t d, char *out, size_t len)
{
    char buf[32];
    int w = (int)sizeof buf;
    uint64_t u = d < 0 ? (uint64_t)0 - (uint64_t)d : (uint64_t)d;
    int neg = d < 0;

    if (u < 1000000000ULL) {
        int prec;
        w--;
        buf[w] = 's';
        w--;
        if (u == 0) {
            snprintf(out, len, "0s");
            return out;
        } else if (u < 1000) {
            prec = 0;
            buf[w] = 'n';
        } else if (u < 1000000) {
            prec = 3;
            /* µ is two bytes in UTF-8 */
            buf[w] = (char)0xb5;
            w--;
            buf[w] = (char)0xc2;
        } else {
            prec = 6;
            buf[w] = 'm';
        }
        w = fmt_frac(buf, w, u, prec, &u);
        w = fmt_int(buf, w, u);
    } else {
        w--;
        buf[w] = 's';
        w = fmt_frac(buf, w, u, 9, &u);
        w = fmt_int(buf, w, u % 60);
        u /= 60;
        if (u > 0) {
            buf[--w] = 'm';
            w = fmt_int(buf, w, u % 60);
            u /= 60;
            if (u > 0) {
                buf[--w] = 'h';
                w = fmt_int(buf, w, u);
            }
        }
    }
    if (neg)
        buf[--w] = '-';
    snprintf(out, len, "%.*s", (int)sizeof buf - w, buf + w);
    return out;
}
