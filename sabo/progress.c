/* progress: format the --progress line (see progress.h). */
#include "progress.h"

#include <stdio.h>

char *progress_si(double v, char *buf, size_t len)
{
    static const char *const sfx[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
    int i = 0;
    if (v < 10) {
        snprintf(buf, len, "%.0f B", v);
        return buf;
    }
    /* go-humanize: exponent from log base 1000, one decimal below 10 units. */
    while (v >= 999.5 && i < 6) {
        v /= 1000.0;
        i++;
    }
    if (i == 0)
        snprintf(buf, len, "%.0f B", v);
    else if (v < 10)
        snprintf(buf, len, "%.1f %s", v, sfx[i]);
    else
        snprintf(buf, len, "%.0f %s", v, sfx[i]);
    return buf;
}

int progress_format(char *buf, size_t len, const struct progress_sample *s)
{
    char total[32], rate[32], limit[32], el[32];
    int64_t ds = s->elapsed_ns / 100000000; /* tenths of a second */
    long long secs = (long long)(ds / 10), tenth = (long long)(ds % 10);
    if (secs >= 3600)
        snprintf(el, sizeof el, "%lld:%02lld:%02lld.%lld", secs / 3600, secs / 60 % 60, secs % 60,
                 tenth);
    else
        snprintf(el, sizeof el, "%lld:%02lld.%lld", secs / 60, secs % 60, tenth);
    int n = snprintf(buf, len, "%s (%llu bytes) %s at %s/s%s, limit %s/s, share %u/%u",
                     progress_si((double)s->bytes, total, sizeof total),
                     (unsigned long long)s->bytes, el, progress_si(s->rate, rate, sizeof rate),
                     s->average ? " average" : "", progress_si(s->limit, limit, sizeof limit),
                     s->own_units, s->units);
    if (n < 0)
        return 0;
    if ((size_t)n >= len)
        return len ? (int)len - 1 : 0;
    return n;
}
