/* lockname: format and parse sabo lock file names (see lockname.h). */
#include "lockname.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char base32hex[] = "0123456789abcdefghijklmnopqrstuv";

void lockname_unique(char *unique, const unsigned char rnd[LOCKNAME_UNIQUE_LEN])
{
    for (int i = 0; i < LOCKNAME_UNIQUE_LEN; i++)
        unique[i] = base32hex[rnd[i] & 31];
    unique[LOCKNAME_UNIQUE_LEN] = '\0';
}

int lockname_format(char *buf, size_t len, const struct lockname *ln)
{
    int n;
    if (ln->weight <= 1)
        n = snprintf(buf, len, "sabo_%" PRIu64 "_%ld_%s.lock", ln->bw, ln->pid, ln->unique);
    else if (ln->unit <= 1)
        n = snprintf(buf, len, "sabo_%" PRIu64 "_%ld_%s_w%u.lock", ln->bw, ln->pid,
                     ln->unique, ln->weight);
    else
        n = snprintf(buf, len, "sabo_%" PRIu64 "_%ld_%s_w%u_%u.lock", ln->bw, ln->pid,
                     ln->unique, ln->weight, ln->unit);
    if (n < 0 || (size_t)n >= len)
        return -1;
    return n;
}

int lockname_group_prefix(char *buf, size_t len, uint64_t bw)
{
    int n = snprintf(buf, len, "sabo_%" PRIu64 "_", bw);
    if (n < 0 || (size_t)n >= len)
        return -1;
    return n;
}

int lockname_in_group(const char *name, uint64_t bw)
{
    char prefix[48];
    int n = lockname_group_prefix(prefix, sizeof prefix, bw);
    return n > 0 && strncmp(name, prefix, (size_t)n) == 0;
}

/* Parse an unsigned decimal with no sign, no leading '+', no empty string. */
static int parse_dec(const char **p, uint64_t max, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9')
        return -1;
    while (*s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s - '0');
        if (d > max || v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
        s++;
    }
    *p = s;
    *out = v;
    return 0;
}

int lockname_parse(const char *name, struct lockname *out)
{
    const char *p = name;
    uint64_t v;
    struct lockname ln = {.weight = 1, .unit = 1};

    if (strncmp(p, "sabo_", 5) != 0)
        return -1;
    p += 5;
    if (parse_dec(&p, UINT64_MAX, &ln.bw) < 0 || *p++ != '_')
        return -1;
    if (parse_dec(&p, (uint64_t)0x7fffffff, &v) < 0 || *p++ != '_')
        return -1;
    ln.pid = (long)v;
    /* The unique part: the original uses an xid (20 chars of [0-9a-v]); accept
     * any run of [0-9a-z] so a future id format still parses. */
    size_t u = 0;
    while ((p[u] >= '0' && p[u] <= '9') || (p[u] >= 'a' && p[u] <= 'z'))
        u++;
    if (u == 0 || u > LOCKNAME_UNIQUE_LEN)
        return -1;
    memcpy(ln.unique, p, u);
    ln.unique[u] = '\0';
    p += u;
    if (strncmp(p, "_w", 2) == 0) {
        p += 2;
        if (parse_dec(&p, LOCKNAME_MAX_WEIGHT, &v) < 0 || v < 2)
            return -1;
        ln.weight = (unsigned)v;
        if (*p == '_') {
            p++;
            if (parse_dec(&p, ln.weight, &v) < 0 || v < 2)
                return -1;
            ln.unit = (unsigned)v;
        }
    }
    if (strcmp(p, ".lock") != 0)
        return -1;
    *out = ln;
    return 0;
}
