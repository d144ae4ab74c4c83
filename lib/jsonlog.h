/* jsonlog: one JSON object per line on stderr, shaped like the zap production
 * logs of the Go originals, so that existing log pipelines keep parsing them:
 *
 *   {"level":"info","ts":1700000000.123456,"msg":"log","seq":1,"status":"Connected"}
 *
 * Keys come in the order level, ts (float epoch seconds), msg, then the fields
 * in the order given. Strings are escaped as JSON (control characters as \u00XX,
 * invalid UTF-8 as \ufffd, like zap). Each line is emitted with a single
 * write(2), so lines from several threads never interleave. */
#ifndef OPSKIT_JSONLOG_H
#define OPSKIT_JSONLOG_H

#include <stddef.h>
#include <stdint.h>

enum jsonlog_level { JSONLOG_DEBUG, JSONLOG_INFO, JSONLOG_WARN, JSONLOG_ERROR, JSONLOG_FATAL };

enum jsonlog_type { JSONLOG_T_STR, JSONLOG_T_INT, JSONLOG_T_UINT, JSONLOG_T_FLOAT,
                    JSONLOG_T_BOOL, JSONLOG_T_BYTES };

struct jsonlog_field {
    const char *key;
    enum jsonlog_type type;
    size_t len; /* JSONLOG_T_BYTES: length of v.s (may contain NULs) */
    union {
        const char *s;
        long long i;
        unsigned long long u;
        double f;
        int b;
    } v;
};

#define JL_STR(k, x)  ((struct jsonlog_field){ .key = (k), .type = JSONLOG_T_STR, .v.s = (x) })
#define JL_INT(k, x)  ((struct jsonlog_field){ .key = (k), .type = JSONLOG_T_INT, .v.i = (x) })
#define JL_UINT(k, x) ((struct jsonlog_field){ .key = (k), .type = JSONLOG_T_UINT, .v.u = (x) })
#define JL_FLOAT(k, x) ((struct jsonlog_field){ .key = (k), .type = JSONLOG_T_FLOAT, .v.f = (x) })
#define JL_BOOL(k, x) ((struct jsonlog_field){ .key = (k), .type = JSONLOG_T_BOOL, .v.b = !!(x) })
/* A string given by pointer and length (need not be NUL-terminated). */
#define JL_BYTES(k, p, n) \
    ((struct jsonlog_field){ .key = (k), .type = JSONLOG_T_BYTES, .v.s = (p), .len = (n) })
/* zap.Error(err) spelling: key "error". */
#define JL_ERR(x) JL_STR("error", (x))

/* Log one line: jsonlog(JSONLOG_INFO, "log", JL_STR("status", "Connected"), JL_INT("seq", 3)); */
#define jsonlog(level, msg, ...)                                                     \
    do {                                                                             \
        const struct jsonlog_field jl_f_[] = { JL_STR(NULL, NULL), ##__VA_ARGS__ };  \
        jsonlog_write((level), (msg), jl_f_ + 1, sizeof jl_f_ / sizeof jl_f_[0] - 1); \
    } while (0)

/* Write one line to the log fd (stderr unless changed). Lines below the minimum
 * level are dropped. A field with a NULL key is skipped; a NULL string value
 * is written as "". */
void jsonlog_write(enum jsonlog_level level, const char *msg, const struct jsonlog_field *f,
                   size_t n);

/* Format one line (with the trailing newline) into buf like snprintf: returns
 * the length the whole line needs; buf holds a NUL-terminated prefix when the
 * line does not fit. ts is epoch seconds. */
size_t jsonlog_format(char *buf, size_t len, double ts, enum jsonlog_level level,
                      const char *msg, const struct jsonlog_field *f, size_t n);

/* Where lines go (default 2) and the least level written (default DEBUG). */
void jsonlog_set_fd(int fd);
void jsonlog_set_min_level(enum jsonlog_level level);

/* "debug", "info", "warn", "error", "fatal". */
const char *jsonlog_level_name(enum jsonlog_level level);

#endif
