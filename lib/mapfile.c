/* mapfile: line-oriented "KEY,VALUE" map files (see mapfile.h). */
#include "mapfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAPFILE_MAX (16u << 20)

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

int mapfile_parse(const char *name, const char *buf, size_t len, const char *expect,
                  mapfile_cb cb, void *arg, char *err, size_t errlen)
{
    int lineno = 0, count = 0;
    size_t pos = 0;
    char *line = NULL;
    size_t linecap = 0;
    /* Windows editors start UTF-8 files with a byte order mark; it is not
     * part of the first name */
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
        pos = 3;
    while (pos < len) {
        const char *start = buf + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - start) : len - pos;
        pos += ll + (nl ? 1 : 0);
        lineno++;
        if (memchr(start, '\0', ll)) {
            snprintf(err, errlen, "%s:%d: expected %s: NUL byte in line", name, lineno, expect);
            free(line);
            return -1;
        }
        if (ll + 1 > linecap) {
            char *nb = realloc(line, ll + 1);
            if (!nb) {
                snprintf(err, errlen, "%s: out of memory", name);
                free(line);
                return -1;
            }
            line = nb;
            linecap = ll + 1;
        }
        memcpy(line, start, ll);
        line[ll] = '\0';
        char *s = line, *e = line + ll;
        while (s < e && is_blank(*s))
            s++;
        while (e > s && is_blank(e[-1]))
            *--e = '\0';
        if (s == e || *s == '#')
            continue;
        char *comma = strchr(s, ',');
        char why[256] = "";
        if (!comma) {
            snprintf(err, errlen, "%s:%d: expected %s", name, lineno, expect);
            free(line);
            return -1;
        }
        char *ke = comma, *v = comma + 1;
        while (ke > s && is_blank(ke[-1]))
            ke--;
        *ke = '\0';
        while (*v && is_blank(*v))
            v++;
        if (!*s || !*v) {
            snprintf(err, errlen, "%s:%d: expected %s", name, lineno, expect);
            free(line);
            return -1;
        }
        int rc = cb ? cb(arg, s, v, lineno, why, sizeof why) : 0;
        if (rc < 0) {
            if (rc == -2 && why[0])
                snprintf(err, errlen, "%s:%d: %s", name, lineno, why);
            else if (why[0])
                snprintf(err, errlen, "%s:%d: expected %s: %s", name, lineno, expect, why);
            else
                snprintf(err, errlen, "%s:%d: expected %s", name, lineno, expect);
            free(line);
            return -1;
        }
        count++;
    }
    free(line);
    return count;
}

int mapfile_load(const char *path, const char *expect, mapfile_cb cb, void *arg, char *err,
                 size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len == cap) {
            if (cap >= MAPFILE_MAX) {
                snprintf(err, errlen, "%s: larger than %u bytes", path, MAPFILE_MAX);
                free(buf);
                fclose(f);
                return -1;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        fclose(f);
        return -1;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "read %s: %s", path, strerror(errno));
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    int rc = mapfile_parse(path, buf, len, expect, cb, arg, err, errlen);
    free(buf);
    return rc;
}
