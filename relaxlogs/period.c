/* period: rotation period arithmetic on the local wall clock, file names and
 * the --with-time prefix. See period.h for the model. All conversions go
 * through localtime_r/gmtime_r/timegm, so whatever zone TZ names is honoured,
 * including offsets that are not whole hours and DST transitions. */
#include "period.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

long period_gmtoff(int64_t t, int utc)
{
    if (utc) return 0;
    time_t tt = (time_t)t;
    struct tm tm;
    if (localtime_r(&tt, &tm) == NULL) return 0;
    return tm.tm_gmtoff;
}

static int64_t wall_of(int64_t t, int utc)
{
    return t + period_gmtoff(t, utc);
}

void period_of(int64_t t, int64_t len, int utc, struct period *p)
{
    int64_t ws = floor_div(wall_of(t, utc), len) * len;
    p->wall = ws;
    if (utc) {
        p->start = ws;
        return;
    }
    /* The boundary ws is a wall-clock time; the instant it happened is ws - off
     * for an offset off that was really in force then. Collect the offsets in
     * force around t and keep the latest consistent instant not after t: in a
     * DST fall-back the repeated wall time belongs to the later instant. */
    const int64_t probes[] = {t,         t - len,   t - len / 2, t - 7200,  t + 7200,
                              t - 86400, t + 86400, ws - 86400,  ws + 86400};
    int found = 0;
    int64_t best = 0;
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        long off = period_gmtoff(probes[i], 0);
        int64_t u = ws - off;
        if (u > t || period_gmtoff(u, 0) != off) continue;
        if (!found || u > best) {
            best = u;
            found = 1;
        }
    }
    if (!found) {
        /* ws fell into a spring-forward gap (e.g. a zone that skips local
         * midnight): the period starts at the first instant whose wall time is
         * at or after ws. The wall clock is monotonic over this short window. */
        int64_t lo = t - len - 2 * 86400, hi = t; /* wall(lo) < ws <= wall(hi) */
        while (hi - lo > 1) {
            int64_t mid = lo + (hi - lo) / 2;
            if (wall_of(mid, 0) >= ws)
                hi = mid;
            else
                lo = mid;
        }
        best = hi;
    }
    p->start = best;
}

int period_name(const struct period *p, unsigned seq, char *buf, size_t len)
{
    time_t w = (time_t)p->wall;
    struct tm tm;
    if (gmtime_r(&w, &tm) == NULL) return -1;
    int n;
    if (seq == 0)
        n = snprintf(buf, len, "log.%04d%02d%02d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min);
    else
        n = snprintf(buf, len, "log.%04d%02d%02d%02d%02d.%u", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, seq);
    if (n < 0 || (size_t)n >= len) return -1;
    return n;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int period_parse_name(const char *name, int64_t *wall, unsigned *seq, int *gz)
{
    if (strncmp(name, "log.", 4) != 0) return -1;
    const char *s = name + 4;
    int y, mo, d, h, mi;
    if (strlen(s) < 12 || digits(s, 4, &y) || digits(s + 4, 2, &mo) || digits(s + 6, 2, &d) ||
        digits(s + 8, 2, &h) || digits(s + 10, 2, &mi))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59) return -1;
    s += 12;
    unsigned sq = 0;
    if (*s == '.' && s[1] >= '1' && s[1] <= '9') {
        s++;
        unsigned long v = 0;
        while (*s >= '0' && *s <= '9') {
            v = v * 10 + (unsigned)(*s - '0');
            if (v > 1000000000UL) return -1;
            s++;
        }
        sq = (unsigned)v;
    }
    int isgz = 0;
    if (strcmp(s, ".gz") == 0)
        isgz = 1;
    else if (*s != '\0')
        return -1;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    *wall = (int64_t)timegm(&tm);
    *seq = sq;
    *gz = isgz;
    return 0;
}

int period_time_prefix(int64_t t, int utc, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if ((utc ? gmtime_r(&tt, &tm) : localtime_r(&tt, &tm)) == NULL) memset(&tm, 0, sizeof tm);
    static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    long off = utc ? 0 : tm.tm_gmtoff;
    char sign = off < 0 ? '-' : '+';
    if (off < 0) off = -off;
    int n = snprintf(buf, len, "[%02d/%s/%04d:%02d:%02d:%02d %c%02ld%02ld] ", tm.tm_mday,
                     mon[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign,
                     off / 3600, (off % 3600) / 60);
    if (n < 0 || (size_t)n >= len) return -1;
    return n;
}
