/* state: the plugin's state file — a strict line-based text format ending in an "end"
 * line (so a torn or truncated file is recognised), kept in a vetted per-user
 * directory and replaced atomically. */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STATE_MAGIC "mackerel-plugin-linux-process-status-state 1"
#define STATE_MAX_SIZE 4096

int ps_state_escape_key(const char *key, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *k = (const unsigned char *)key; *k; k++) {
        unsigned char c = *k;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-' || (c == '.' && n > 0);
        size_t need = ok ? 1 : 3;
        if (n + need > PS_STATE_KEY_MAX || n + need >= cap)
            return -1;
        if (ok) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    if (n == 0 || cap == 0)
        return -1;
    out[n] = '\0';
    return 0;
}

static int parse_num(const char **pp, const char *end, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;
    if (p >= end || *p < '0' || *p > '9')
        return -1;
    while (p < end && *p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
        p++;
    }
    *pp = p;
    *out = v;
    return 0;
}

/* Parse exactly n space-separated numbers filling the rest of [p, le). */
static int parse_nums(const char *p, const char *le, uint64_t *out, int n)
{
    for (int i = 0; i < n; i++) {
        if (p >= le || *p != ' ')
            return -1;
        p++;
        if (parse_num(&p, le, &out[i]) < 0)
            return -1;
    }
    return p == le ? 0 : -1;
}

int ps_state_parse(const char *buf, size_t len, struct ps_state *st, char *err, size_t errlen)
{
    const char *p = buf, *end = buf + len;
    unsigned seen = 0;
    int lineno = 0, ended = 0;
    enum { S_KEY = 1, S_PID = 2, S_START = 4, S_CHILDREN = 8, S_TIME = 16, S_PROC = 32,
           S_TOTAL = 64, S_CTXT = 128, S_IO = 256 };
    const unsigned required = S_KEY | S_PID | S_START | S_CHILDREN | S_TIME | S_PROC | S_TOTAL;
    memset(st, 0, sizeof *st);

#define FAIL(...)                                                                          \
    do {                                                                                   \
        char why_[128];                                                                    \
        snprintf(why_, sizeof why_, __VA_ARGS__);                                          \
        snprintf(err, errlen, "line %d: %s", lineno, why_);                                \
        return -1;                                                                         \
    } while (0)

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        lineno++;
        if (!nl)
            FAIL("truncated (no newline)");
        if (ended)
            FAIL("data after the end line");
        size_t ll = (size_t)(le - p);
        const char *sp = memchr(p, ' ', ll);
        size_t wl = sp ? (size_t)(sp - p) : ll;
        const char *rest = p + wl;
        uint64_t v[4];
        unsigned bit = 0;
#define WORD(w) (wl == sizeof(w) - 1 && memcmp(p, w, wl) == 0)
        if (lineno == 1) {
            if (ll != sizeof(STATE_MAGIC) - 1 || memcmp(p, STATE_MAGIC, ll) != 0)
                FAIL("not a state file of this version");
        } else if (WORD("key")) {
            bit = S_KEY;
            size_t kl = (size_t)(le - rest);
            if (kl < 2 || kl - 1 > PS_STATE_KEY_MAX || memchr(rest + 1, ' ', kl - 1) ||
                memchr(rest + 1, '\0', kl - 1))
                FAIL("bad key");
            memcpy(st->key, rest + 1, kl - 1);
            st->key[kl - 1] = '\0';
        } else if (WORD("pid")) {
            bit = S_PID;
            if (parse_nums(rest, le, v, 1) < 0 || v[0] == 0 || v[0] > INT32_MAX)
                FAIL("bad pid");
            st->pid = (long long)v[0];
        } else if (WORD("start")) {
            bit = S_START;
            if (parse_nums(rest, le, v, 1) < 0)
                FAIL("bad start");
            st->start = v[0];
        } else if (WORD("children")) {
            bit = S_CHILDREN;
            if (parse_nums(rest, le, v, 1) < 0 || v[0] > 1)
                FAIL("bad children");
            st->children = (int)v[0];
        } else if (WORD("time_ns")) {
            bit = S_TIME;
            if (parse_nums(rest, le, v, 1) < 0)
                FAIL("bad time_ns");
            st->time_ns = v[0];
        } else if (WORD("proc_ticks")) {
            bit = S_PROC;
            if (parse_nums(rest, le, v, 1) < 0)
                FAIL("bad proc_ticks");
            st->proc_ticks = v[0];
        } else if (WORD("total_ticks")) {
            bit = S_TOTAL;
            if (parse_nums(rest, le, v, 1) < 0)
                FAIL("bad total_ticks");
            st->total_ticks = v[0];
        } else if (WORD("ctxt")) {
            bit = S_CTXT;
            if (parse_nums(rest, le, v, 2) < 0)
                FAIL("bad ctxt");
            st->has_ctxt = 1;
            st->voluntary = v[0];
            st->nonvoluntary = v[1];
        } else if (WORD("io")) {
            bit = S_IO;
            if (parse_nums(rest, le, v, 4) < 0)
                FAIL("bad io");
            st->has_io = 1;
            st->io.rchar = v[0];
            st->io.wchar = v[1];
            st->io.read_bytes = v[2];
            st->io.write_bytes = v[3];
        } else if (WORD("end") && ll == 3) {
            ended = 1;
        } else {
            FAIL("unknown entry");
        }
#undef WORD
        if (bit) {
            if (seen & bit)
                FAIL("duplicate entry");
            seen |= bit;
        }
        p = le + 1;
    }
    if (lineno == 0)
        FAIL("empty");
    if (!ended)
        FAIL("truncated (no end line)");
    if ((seen & required) != required)
        FAIL("missing entries");
#undef FAIL
    return 0;
}

size_t ps_state_format(const struct ps_state *st, char *buf, size_t cap)
{
    int n = snprintf(buf, cap,
                     STATE_MAGIC "\nkey %s\npid %lld\nstart %" PRIu64 "\nchildren %d\n"
                                 "time_ns %" PRIu64 "\nproc_ticks %" PRIu64
                                 "\ntotal_ticks %" PRIu64 "\n",
                     st->key, st->pid, st->start, st->children ? 1 : 0, st->time_ns,
                     st->proc_ticks, st->total_ticks);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    size_t len = (size_t)n;
    if (st->has_ctxt) {
        n = snprintf(buf + len, cap - len, "ctxt %" PRIu64 " %" PRIu64 "\n", st->voluntary,
                     st->nonvoluntary);
        if (n < 0 || (size_t)n >= cap - len)
            return 0;
        len += (size_t)n;
    }
    if (st->has_io) {
        n = snprintf(buf + len, cap - len,
                     "io %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", st->io.rchar,
                     st->io.wchar, st->io.read_bytes, st->io.write_bytes);
        if (n < 0 || (size_t)n >= cap - len)
            return 0;
        len += (size_t)n;
    }
    n = snprintf(buf + len, cap - len, "end\n");
    if (n < 0 || (size_t)n >= cap - len)
        return 0;
    return len + (size_t)n;
}

int ps_state_dir_open(const char *dir, char *path, size_t pathcap, char *err, size_t errlen)
{
    uid_t uid = geteuid();
    int explicit_dir = dir != NULL;
    int n;
    if (explicit_dir) {
        n = snprintf(path, pathcap, "%s", dir);
    } else {
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        const char *tmp = getenv("TMPDIR");
        struct stat xs;
        /* only our own runtime dir: sudo keeps the invoking user's XDG_RUNTIME_DIR */
        if (xdg && xdg[0] == '/' && stat(xdg, &xs) == 0 && S_ISDIR(xs.st_mode) &&
            xs.st_uid == uid)
            n = snprintf(path, pathcap, "%s/mackerel-plugin-linux-process-status", xdg);
        else
            n = snprintf(path, pathcap, "%s/mackerel-plugin-linux-process-status-%u",
                         (tmp && tmp[0] == '/') ? tmp : "/tmp", (unsigned)uid);
    }
    if (n < 0 || (size_t)n >= pathcap || path[0] == '\0') {
        snprintf(err, errlen, "state directory path is empty or too long");
        return -1;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (mkdir(path, 0700) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create state directory %s: %s", path,
                     strerror(errno));
            return -1;
        }
        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP || e == ENOTDIR)
            snprintf(err, errlen, "state directory %s is a symlink or not a directory", path);
        else
            snprintf(err, errlen, "cannot open state directory %s: %s", path, strerror(e));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "cannot stat state directory %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (st.st_uid != uid) {
        snprintf(err, errlen, "state directory %s is owned by uid %u, not by us (uid %u)", path,
                 (unsigned)st.st_uid, (unsigned)uid);
        close(fd);
        return -1;
    }
    if ((st.st_mode & (explicit_dir ? 022 : 077)) != 0) {
        snprintf(err, errlen, "state directory %s has mode %04o; it must not be %s", path,
                 (unsigned)(st.st_mode & 07777),
                 explicit_dir ? "writable by group or others"
                              : "accessible by group or others (expected 0700)");
        close(fd);
        return -1;
    }
    return fd;
}

int ps_state_load(int dirfd, const char *name, struct ps_state *st, char *err, size_t errlen)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        if (errno == ELOOP)
            snprintf(err, errlen, "it is a symlink");
        else
            snprintf(err, errlen, "cannot open it: %s", strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "not a regular file");
        close(fd);
        return -1;
    }
    char buf[STATE_MAX_SIZE + 1];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "read error: %s", strerror(errno));
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == sizeof buf) {
            snprintf(err, errlen, "larger than %d bytes", STATE_MAX_SIZE);
            close(fd);
            return -1;
        }
    }
    close(fd);
    return ps_state_parse(buf, n, st, err, errlen) < 0 ? -1 : 1;
}

int ps_state_save(int dirfd, const char *name, const struct ps_state *st, char *err,
                  size_t errlen)
{
    char data[STATE_MAX_SIZE];
    char tmp[PS_STATE_KEY_MAX + 64];
    size_t len = ps_state_format(st, data, sizeof data);
    if (len == 0) {
        snprintf(err, errlen, "state too large");
        return -1;
    }
    /* PID plus the clock's nanoseconds make the name unique among concurrent runs (even
     * from different PID namespaces sharing the directory); O_EXCL makes sure. */
    int fd = -1;
    for (int attempt = 0; attempt < 4 && fd < 0; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        snprintf(tmp, sizeof tmp, ".%s.tmp.%ld.%ld", name, (long)getpid(),
                 (long)ts.tv_nsec + attempt);
        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(err, errlen, "cannot write %s: %s", tmp,
                     w < 0 ? strerror(errno) : "short write");
            close(fd);
            (void)unlinkat(dirfd, tmp, 0);
            return -1;
        }
        off += (size_t)w;
    }
    if (close(fd) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        (void)unlinkat(dirfd, tmp, 0);
        return -1;
    }
    if (renameat(dirfd, tmp, dirfd, name) < 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, name, strerror(errno));
        (void)unlinkat(dirfd, tmp, 0);
        return -1;
    }
    return 0;
}
