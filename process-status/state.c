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

/* Vet an open state directory: ours, a directory, and not writable (private: not
 * accessible at all) by group or others. Returns 0, or -1 with a message. */
static int vet_dir(int fd, const char *path, int private_, char *err, size_t errlen)
{
    uid_t uid = geteuid();
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "cannot stat state directory %s: %s", path, strerror(errno));
        return -1;
    }
    if (st.st_uid != uid) {
        snprintf(err, errlen, "state directory %s is owned by uid %u, not by us (uid %u)", path,
                 (unsigned)st.st_uid, (unsigned)uid);
        return -1;
    }
    if ((st.st_mode & (private_ ? 077 : 022)) != 0) {
        snprintf(err, errlen, "state directory %s has mode %04o; it must not be %s", path,
                 (unsigned)(st.st_mode & 07777),
                 private_ ? "accessible by group or others (expected 0700)"
                          : "writable by group or others");
        return -1;
    }
    return 0;
}

/* Open name under parentfd (AT_FDCWD: name is a path) as a directory, never through a
 * symlink, creating it 0700 when missing; then vet it. path names it in messages.
 * Returns the fd, or -1 with a message. */
static int open_dir_at(int parentfd, const char *name, const char *path, int private_,
                       char *err, size_t errlen)
{
    const int oflags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int fd = openat(parentfd, name, oflags);
    if (fd < 0 && errno == ENOENT) {
        if (mkdirat(parentfd, name, 0700) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create state directory %s: %s", path,
                     strerror(errno));
            return -1;
        }
        fd = openat(parentfd, name, oflags);
    }
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP || e == ENOTDIR)
            snprintf(err, errlen, "state directory %s is a symlink or not a directory", path);
        else
            snprintf(err, errlen, "cannot open state directory %s: %s", path, strerror(e));
        return -1;
    }
    if (vet_dir(fd, path, private_, err, errlen) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The home directory of uid from /etc/passwd (no NSS: this binary is static). */
static int passwd_home(uid_t uid, char *out, size_t cap)
{
    FILE *f = fopen("/etc/passwd", "re");
    char line[1024];
    int found = 0;
    if (!f)
        return -1;
    while (!found && fgets(line, sizeof line, f)) {
        char *field[7];
        int nf = 0;
        char *p = line;
        line[strcspn(line, "\n")] = '\0';
        while (nf < 7) {
            field[nf++] = p;
            p = strchr(p, ':');
            if (!p)
                break;
            *p++ = '\0';
        }
        char *endp;
        if (nf < 6 || field[2][0] == '\0')
            continue;
        unsigned long v = strtoul(field[2], &endp, 10);
        if (*endp == '\0' && v == (unsigned long)uid && field[5][0] == '/' &&
            strlen(field[5]) < cap) {
            strcpy(out, field[5]);
            found = 1;
        }
    }
    fclose(f);
    return found ? 0 : -1;
}

#define STATE_DIR_NAME "mackerel-plugin-linux-process-status"

/* The fallback when the shared-location default is unusable (squatted by another
 * user, say): HOME/.cache/STATE_DIR_NAME, under a home that is ours and that nobody
 * else can write ($HOME when it is ours, else the passwd entry's). */
static int open_home_dir(char *path, size_t pathcap, char *err, size_t errlen)
{
    uid_t uid = geteuid();
    char home[4096];
    const char *env = getenv("HOME");
    struct stat hs;
    if (env && env[0] == '/' && strlen(env) < sizeof home && stat(env, &hs) == 0 &&
        S_ISDIR(hs.st_mode) && hs.st_uid == uid)
        strcpy(home, env);
    else if (passwd_home(uid, home, sizeof home) < 0) {
        snprintf(err, errlen, "no home directory of our own for a private state directory");
        return -1;
    }
    int hfd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (hfd < 0) {
        snprintf(err, errlen, "cannot open home directory %s: %s", home, strerror(errno));
        return -1;
    }
    if (vet_dir(hfd, home, 0, err, errlen) < 0) {
        close(hfd);
        return -1;
    }
    int n = snprintf(path, pathcap, "%s%s.cache", home,
                     home[strlen(home) - 1] == '/' ? "" : "/");
    int cfd = n > 0 && (size_t)n < pathcap ? open_dir_at(hfd, ".cache", path, 0, err, errlen)
                                           : -1;
    close(hfd);
    if (n <= 0 || (size_t)n >= pathcap) {
        snprintf(err, errlen, "home directory path too long");
        return -1;
    }
    if (cfd < 0)
        return -1;
    size_t len = (size_t)n;
    n = snprintf(path + len, pathcap - len, "/" STATE_DIR_NAME);
    int fd = n > 0 && (size_t)n < pathcap - len
                 ? open_dir_at(cfd, STATE_DIR_NAME, path, 1, err, errlen)
                 : -1;
    close(cfd);
    return fd;
}

int ps_state_dir_open(const char *dir, char *path, size_t pathcap, char *note, size_t notelen,
                      char *err, size_t errlen)
{
    uid_t uid = geteuid();
    int n;
    note[0] = '\0';
    if (dir) {
        n = snprintf(path, pathcap, "%s", dir);
    } else {
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        const char *tmp = getenv("TMPDIR");
        struct stat xs;
        /* only our own runtime dir: sudo keeps the invoking user's XDG_RUNTIME_DIR */
        if (xdg && xdg[0] == '/' && stat(xdg, &xs) == 0 && S_ISDIR(xs.st_mode) &&
            xs.st_uid == uid)
            n = snprintf(path, pathcap, "%s/" STATE_DIR_NAME, xdg);
        else
            n = snprintf(path, pathcap, "%s/" STATE_DIR_NAME "-%u",
                         (tmp && tmp[0] == '/') ? tmp : "/tmp", (unsigned)uid);
    }
    if (n < 0 || (size_t)n >= pathcap || path[0] == '\0') {
        snprintf(err, errlen, "state directory path is empty or too long");
        return -1;
    }
    int fd = open_dir_at(AT_FDCWD, path, path, dir == NULL, err, errlen);
    if (fd >= 0 || dir)
        return fd;
    /* The default lives in a shared place (often a world-writable /tmp) where anyone can
     * create the name first: that must cost us the default location, never our output. */
    char why[1024], fallback[4096];
    snprintf(why, sizeof why, "%s", err);
    fd = open_home_dir(fallback, sizeof fallback, err, errlen);
    if (fd < 0) {
        char why2[1024];
        snprintf(why2, sizeof why2, "%s", err);
        snprintf(err, errlen, "%s; and the fallback: %s", why, why2);
        return -1;
    }
    snprintf(note, notelen, "%s; using %s instead", why, fallback);
    snprintf(path, pathcap, "%s", fallback);
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
