/* progress: the --progress line (bytes so far, current rate, limit, share,
 * elapsed). Pure formatting, so it is unit-testable; main decides when and
 * where to print (in place on a terminal, one line per second otherwise). */
#ifndef SABO_PROGRESS_H
#define SABO_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

struct progress_sample {
    uint64_t bytes;     /* total copied so far */
    double rate;        /* bytes/s over the last interval (or the whole run) */
    int average;        /* rate is the whole run's average (the final line) */
    double limit;       /* our current share, bytes/s */
    unsigned own_units; /* our weight */
    unsigned units;     /* units of the whole group (ours included) */
    int64_t elapsed_ns; /* since start */
};

/* Sizes the way go-humanize's Bytes() prints them: "0 B", "999 B", "1.5 kB",
 * "12 MB", "2.0 GB" (SI, 1000-based, like --max-bandwidth). */
char *progress_si(double v, char *buf, size_t len);

/* One progress line without a newline, e.g.
 * "12 MB (12345678 bytes) 0:05.3 at 2.0 MB/s, limit 2.0 MB/s, share 1/2"
 * (elapsed m:ss.t, or h:mm:ss.t; "at X/s average" on the final line).
 * Returns the length (truncated to len-1). */
int progress_format(char *buf, size_t len, const struct progress_sample *s);

#endif
