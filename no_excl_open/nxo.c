/* nxo.c: the pure parts of open_no_excl.so — the O_EXCL rule, path
 * normalisation and NO_EXCL_OPEN_PATHS prefix matching, LD_PRELOAD editing
 * and the debug line. No system calls, no allocation, no stdio: these run
 * inside the interposed open() of any program, and the fuzz target and unit
 * tests drive them directly. */
#include "nxo.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

int nxo_rule_applies(int flags)
{
    return (flags & O_CREAT) && (flags & O_ACCMODE) == O_RDWR && !(flags & O_TRUNC);
}

size_t nxo_path_normalize(char *buf)
{
    if (buf[0] != '/') return 0;
    /* Output never gets ahead of input: each component is preceded by at
     * least one slash in the input and exactly one in the output. */
    size_t w = 1, r = 1;
    for (;;) {
        while (buf[r] == '/')
            r++;
        if (buf[r] == '\0') break;
        size_t s = r;
        while (buf[r] != '/' && buf[r] != '\0')
            r++;
        size_t len = r - s;
        if (len == 1 && buf[s] == '.') continue;
        if (len == 2 && buf[s] == '.' && buf[s + 1] == '.') {
            while (w > 1 && buf[w - 1] != '/')
                w--;
            if (w > 1) w--;
            continue;
        }
        if (w > 1) buf[w++] = '/';
        memmove(buf + w, buf + s, len);
        w += len;
    }
    buf[w] = '\0';
    return w;
}

int nxo_path_absolute(char *out, size_t outsz, const char *base, const char *name)
{
    size_t nlen = strlen(name);
    if (name[0] == '/') {
        if (nlen + 1 > outsz) return -1;
        memcpy(out, name, nlen + 1);
    } else {
        if (base == NULL || base[0] != '/') return -1;
        size_t blen = strlen(base);
        if (blen + 1 + nlen + 1 > outsz) return -1;
        memcpy(out, base, blen);
        out[blen] = '/';
        memcpy(out + blen + 1, name, nlen + 1);
    }
    nxo_path_normalize(out);
    return 0;
}

int nxo_path_under(const char *path, const char *prefix)
{
    if (path[0] != '/' || prefix[0] != '/') return 0;
    size_t plen = strlen(prefix);
    if (plen == 1) return 1;
    return strncmp(path, prefix, plen) == 0 && (path[plen] == '\0' || path[plen] == '/');
}

static size_t list_used(const char *list)
{
    size_t n = 0;
    while (list[n] != '\0')
        n += strlen(list + n) + 1;
    return n; /* offset of the terminating empty string */
}

int nxo_paths_append(char *list, size_t listsz, const char *path)
{
    size_t used = list_used(list);
    size_t len = strlen(path);
    if (used + len + 2 > listsz || len == 0) return -1;
    memcpy(list + used, path, len + 1);
    list[used + len + 1] = '\0';
    return 0;
}

int nxo_paths_parse(char *list, size_t listsz, const char *spec, const char *cwd)
{
    char entry[NXO_PATH_BUF], abs[NXO_PATH_BUF];
    int n = 0, overflow = 0;

    if (listsz == 0) return -1;
    list[0] = '\0';
    while (*spec != '\0') {
        const char *end = strchr(spec, ':');
        size_t len = end ? (size_t)(end - spec) : strlen(spec);
        if (len > 0) {
            if (len >= sizeof entry) {
                overflow = 1;
            } else {
                memcpy(entry, spec, len);
                entry[len] = '\0';
                if (nxo_path_absolute(abs, sizeof abs, cwd, entry) == 0) {
                    if (nxo_paths_append(list, listsz, abs) == 0)
                        n++;
                    else
                        overflow = 1;
                }
            }
        }
        spec += len;
        if (*spec == ':') spec++;
    }
    return overflow ? -1 : n;
}

int nxo_paths_match(const char *list, const char *path)
{
    for (const char *p = list; *p != '\0'; p += strlen(p) + 1)
        if (nxo_path_under(path, p)) return 1;
    return 0;
}

static const char *base_name(const char *p, size_t len, size_t *blen)
{
    size_t i = len;
    while (i > 0 && p[i - 1] != '/')
        i--;
    *blen = len - i;
    return p + i;
}

int nxo_preload_strip(char *value, const char *self)
{
    size_t selflen = strlen(self), selfblen;
    const char *selfbase = base_name(self, selflen, &selfblen);
    size_t r = 0, w = 0;
    int removed = 0;

    if (selfblen == 0) return 0;
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0 only looks; pass 1 (when we are listed) compacts in place */
        r = w = 0;
        while (value[r] != '\0') {
            size_t sep = r;
            while (value[r] == ' ' || value[r] == ':')
                r++;
            if (value[r] == '\0') break;
            size_t s = r;
            while (value[r] != '\0' && value[r] != ' ' && value[r] != ':')
                r++;
            size_t len = r - s, blen;
            const char *b = base_name(value + s, len, &blen);
            int ours = (len == selflen && memcmp(value + s, self, len) == 0) ||
                       (blen == selfblen && memcmp(b, selfbase, blen) == 0);
            if (ours) {
                removed = 1;
                continue;
            }
            if (pass == 0) continue;
            /* keep the separator that stood before this entry (one char) */
            if (w > 0) value[w++] = s > sep ? value[s - 1] : ' ';
            memmove(value + w, value + s, len);
            w += len;
        }
        if (!removed) return 0;
    }
    value[w] = '\0';
    return 1;
}

/* ---- debug line ---- */

struct sbuf {
    char *p;
    size_t len, cap; /* cap excludes room kept for the final "\n" and NUL */
};

static void sb_str(struct sbuf *b, const char *s)
{
    while (*s != '\0' && b->len < b->cap)
        b->p[b->len++] = *s++;
}

static void sb_num(struct sbuf *b, unsigned long v, unsigned base, int width)
{
    char tmp[32];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v != 0 && n < (int)sizeof tmp);
    while (n < width && n < (int)sizeof tmp)
        tmp[n++] = '0';
    while (n > 0 && b->len < b->cap)
        b->p[b->len++] = tmp[--n];
}

static void sb_int(struct sbuf *b, long v)
{
    if (v < 0) {
        sb_str(b, "-");
        sb_num(b, (unsigned long)(-(v + 1)) + 1, 10, 0);
    } else {
        sb_num(b, (unsigned long)v, 10, 0);
    }
}

/* The path, quoted, with control bytes escaped so one open is one line. */
static void sb_path(struct sbuf *b, const char *s)
{
    size_t n = 0;
    sb_str(b, "\"");
    for (; *s != '\0'; s++, n++) {
        unsigned char c = (unsigned char)*s;
        if (n >= 512) {
            sb_str(b, "...");
            break;
        }
        if (c == '"' || c == '\\') {
            char e[3] = {'\\', (char)c, '\0'};
            sb_str(b, e);
        } else if (c < 0x20 || c == 0x7f) {
            sb_str(b, "\\x");
            sb_num(b, c, 16, 2);
        } else {
            char e[2] = {(char)c, '\0'};
            sb_str(b, e);
        }
    }
    sb_str(b, "\"");
}

static void sb_flags(struct sbuf *b, int flags)
{
    static const struct {
        int bit;
        const char *name;
    } names[] = {
        {O_TMPFILE, "O_TMPFILE"},   {O_SYNC, "O_SYNC"},         {O_CREAT, "O_CREAT"},
        {O_EXCL, "O_EXCL"},         {O_NOCTTY, "O_NOCTTY"},     {O_TRUNC, "O_TRUNC"},
        {O_APPEND, "O_APPEND"},     {O_NONBLOCK, "O_NONBLOCK"}, {O_DSYNC, "O_DSYNC"},
        {O_ASYNC, "O_ASYNC"},       {O_DIRECT, "O_DIRECT"},     {O_DIRECTORY, "O_DIRECTORY"},
        {O_NOFOLLOW, "O_NOFOLLOW"}, {O_NOATIME, "O_NOATIME"},   {O_CLOEXEC, "O_CLOEXEC"},
        {O_PATH, "O_PATH"},
    };
    unsigned rest = (unsigned)flags & ~(unsigned)O_ACCMODE;
    switch (flags & O_ACCMODE) {
    case O_RDONLY:
        sb_str(b, "O_RDONLY");
        break;
    case O_WRONLY:
        sb_str(b, "O_WRONLY");
        break;
    case O_RDWR:
        sb_str(b, "O_RDWR");
        break;
    default:
        sb_str(b, "O_ACCMODE");
        break;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        unsigned bit = (unsigned)names[i].bit;
        /* multi-bit flags (O_SYNC, O_TMPFILE) print only when complete */
        if (bit != 0 && (rest & bit) == bit) {
            sb_str(b, "|");
            sb_str(b, names[i].name);
            rest &= ~bit;
        }
    }
    if (rest != 0) {
        sb_str(b, "|0");
        sb_num(b, rest, 8, 0);
    }
}

size_t nxo_debug_format(char *buf, size_t bufsz, const char *what, const char *fn, int dirfd,
                        const char *path, int flags, unsigned mode, int result, int err)
{
    if (bufsz < 3) return 0;
    struct sbuf b = {buf, 0, bufsz - 2};
    sb_str(&b, "no_excl_open: ");
    sb_str(&b, fn);
    sb_str(&b, "(");
    if (dirfd == AT_FDCWD) {
        sb_str(&b, "AT_FDCWD, ");
    } else if (dirfd >= -1000) {
        sb_int(&b, dirfd);
        sb_str(&b, ", ");
    }
    sb_path(&b, path);
    sb_str(&b, ", ");
    sb_flags(&b, flags);
    sb_str(&b, ", 0");
    sb_num(&b, mode, 8, 3);
    sb_str(&b, "): ");
    sb_str(&b, what);
    sb_str(&b, " = ");
    sb_int(&b, result);
    if (result < 0) {
        const char *name = strerrorname_np(err);
        sb_str(&b, " ");
        if (name != NULL) {
            sb_str(&b, name);
        } else {
            sb_str(&b, "errno ");
            sb_int(&b, err);
        }
    }
    buf[b.len++] = '\n';
    buf[b.len] = '\0';
    return b.len;
}
