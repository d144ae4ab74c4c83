/* jsonlog: zap-compatible JSON-lines logging (see jsonlog.h). Formatting is a
 * pure function (jsonlog_format) so it can be unit-tested; jsonlog_write adds
 * the clock and the single write(2). */
#include "jsonlog.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_fd = 2;
static enum jsonlog_level min_level = JSONLOG_DEBUG;

void jsonlog_set_fd(int fd) { log_fd = fd; }
void jsonlog_set_min_level(enum jsonlog_level level) { min_level = level; }

const char *jsonlog_level_name(enum jsonlog_level level)
{
    switch (level) {
    case JSONLOG_DEBUG: return "debug";
    case JSONLOG_INFO: return "info";
    case JSONLOG_WARN: return "warn";
    case JSONLOG_ERROR: return "error";
    case JSONLOG_FATAL: return "fatal";
    }
    return "info";
}

/* An output cursor that counts what would have been written past the end. */
struct out {
    char *buf;
    size_t cap, len;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len < o->cap) {
        size_t room = o->cap - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void puts_(struct out *o, const char *s) { put(o, s, strlen(s)); }

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t need;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    unsigned cp = c & (0x7f >> need);
    for (size_t i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return need;
}

static void put_json_string(struct out *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    put(o, "\"", 1);
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        /* copy plain runs in one go */
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        if (run > i) {
            put(o, s + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = p[i];
        if (c == '"') {
            put(o, "\\\"", 2);
        } else if (c == '\\') {
            put(o, "\\\\", 2);
        } else if (c == '\n') {
            put(o, "\\n", 2);
        } else if (c == '\r') {
            put(o, "\\r", 2);
        } else if (c == '\t') {
            put(o, "\\t", 2);
        } else if (c < 0x20) {
            char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            put(o, u, 6);
        } else {
            size_t k = utf8_seq(p + i, n - i);
            if (k == 0) {
                put(o, "\\ufffd", 6);
                i++;
                continue;
            }
            put(o, s + i, k);
            i += k;
            continue;
        }
        i++;
    }
    put(o, "\"", 1);
}

size_t jsonlog_format(char *buf, size_t len, double ts, enum jsonlog_level level,
                      const char *msg, const struct jsonlog_field *f, size_t n)
{
    struct out o = { buf, len, 0 };
    char num[64];
    puts_(&o, "{\"level\":\"");
    puts_(&o, jsonlog_level_name(level));
    puts_(&o, "\",\"ts\":");
    snprintf(num, sizeof num, "%.6f", ts);
    puts_(&o, num);
    puts_(&o, ",\"msg\":");
    put_json_string(&o, msg ? msg : "", msg ? strlen(msg) : 0);
    for (size_t i = 0; i < n; i++) {
        if (!f[i].key)
            continue;
        put(&o, ",", 1);
        put_json_string(&o, f[i].key, strlen(f[i].key));
        put(&o, ":", 1);
        switch (f[i].type) {
        case JSONLOG_T_STR:
            put_json_string(&o, f[i].v.s ? f[i].v.s : "", f[i].v.s ? strlen(f[i].v.s) : 0);
            break;
        case JSONLOG_T_BYTES:
            put_json_string(&o, f[i].v.s ? f[i].v.s : "", f[i].v.s ? f[i].len : 0);
            break;
        case JSONLOG_T_INT:
            snprintf(num, sizeof num, "%lld", f[i].v.i);
            puts_(&o, num);
            break;
        case JSONLOG_T_UINT:
            snprintf(num, sizeof num, "%llu", f[i].v.u);
            puts_(&o, num);
            break;
        case JSONLOG_T_FLOAT:
            if (isfinite(f[i].v.f))
                snprintf(num, sizeof num, "%.17g", f[i].v.f);
            else /* zap writes these as strings */
                snprintf(num, sizeof num, "\"%s\"",
                         isnan(f[i].v.f) ? "NaN" : f[i].v.f > 0 ? "+Inf" : "-Inf");
            puts_(&o, num);
            break;
        case JSONLOG_T_BOOL:
            puts_(&o, f[i].v.b ? "true" : "false");
            break;
        }
    }
    put(&o, "}\n", 2);
    if (len > 0)
        buf[o.len < len ? o.len : len - 1] = '\0';
    return o.len;
}

void jsonlog_write(enum jsonlog_level level, const char *msg, const struct jsonlog_field *f,
                   size_t n)
{
    if (level < min_level)
        return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double ts = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
    char stackbuf[2048];
    char *buf = stackbuf;
    size_t need = jsonlog_format(stackbuf, sizeof stackbuf, ts, level, msg, f, n);
    if (need >= sizeof stackbuf) {
        buf = malloc(need + 1);
        if (!buf)
            return; /* nothing sane to do: logging must not kill the daemon */
        jsonlog_format(buf, need + 1, ts, level, msg, f, n);
    }
    size_t off = 0;
    int saved = errno;
    while (off < need) {
        ssize_t w = write(log_fd, buf + off, need - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        off += (size_t)w;
    }
    errno = saved;
    if (buf != stackbuf)
        free(buf);
}
