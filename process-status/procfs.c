/* procfs: bounded, allocation-free parsers for /proc/PID/{stat,limits,status,io,cgroup},
 * /proc/stat, /proc/meminfo, cgroup memory limit files and pid files, and the few
 * read helpers the plugin uses. Parsers never read past buf+len, so they can be fed
 * arbitrary bytes (see fuzz/fuzz_procstat.c). */
#include "procfs.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0
#endif

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Parse an unsigned decimal at *pp (bounded by end), advancing *pp. At least one digit;
 * fails on overflow. */
static int parse_u64(const char **pp, const char *end, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;
    if (p >= end || !is_digit(*p))
        return -1;
    while (p < end && is_digit(*p)) {
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

/* A signed decimal (for ppid, nice and friends). */
static int parse_i64(const char **pp, const char *end, long long *out)
{
    const char *p = *pp;
    int neg = 0;
    uint64_t v;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (parse_u64(&p, end, &v) < 0 || v > (uint64_t)INT64_MAX)
        return -1;
    *pp = p;
    *out = neg ? -(long long)v : (long long)v;
    return 0;
}

static void skip_blanks(const char **pp, const char *end)
{
    while (*pp < end && (**pp == ' ' || **pp == '\t'))
        (*pp)++;
}

static const char *line_end(const char *p, const char *end)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    return nl ? nl : end;
}

/* Find a line starting with key (which includes its ':' where there is one) and return
 * a pointer just past the key, or NULL. */
static const char *find_key(const char *buf, size_t len, const char *key)
{
    const char *p = buf, *end = buf + len;
    size_t klen = strlen(key);
    while (p < end) {
        const char *le = line_end(p, end);
        if ((size_t)(le - p) >= klen && memcmp(p, key, klen) == 0)
            return p + klen;
        p = le + 1;
    }
    return NULL;
}

/* "KEY:<blanks>NUMBER" anywhere at a line start; the number must end the token. */
static int key_u64(const char *buf, size_t len, const char *key, uint64_t *out)
{
    const char *end = buf + len;
    const char *p = find_key(buf, len, key);
    if (!p)
        return -1;
    skip_blanks(&p, end);
    if (parse_u64(&p, end, out) < 0)
        return -1;
    if (p < end && *p != '\n' && *p != ' ' && *p != '\t')
        return -1;
    return 0;
}

int ps_parse_pid_stat(const char *buf, size_t len, struct ps_pid_stat *out)
{
    const char *end = buf + len;
    const char *open, *close = NULL, *p;
    long long pid;
    memset(out, 0, sizeof *out);

    p = buf;
    if (parse_i64(&p, end, &pid) < 0 || pid <= 0 || p + 2 > end || p[0] != ' ' ||
        p[1] != '(')
        return -1;
    open = p + 2;
    for (const char *q = end; q > open; q--) {
        if (q[-1] == ')') {
            close = q - 1;
            break;
        }
    }
    if (!close)
        return -1;
    size_t clen = (size_t)(close - open);
    if (clen >= sizeof out->comm)
        clen = sizeof out->comm - 1;
    memcpy(out->comm, open, clen);
    out->comm[clen] = '\0';

    p = close + 1;
    /* Fields 3..24, each preceded by one space. */
    for (int field = 3; field <= 24; field++) {
        if (p >= end || *p != ' ')
            return -1;
        p++;
        if (field == 3) {
            if (p >= end || *p == ' ' || *p == '\n')
                return -1;
            out->state = *p++;
            if (p < end && *p != ' ')
                return -1;
            continue;
        }
        long long sv;
        uint64_t uv;
        switch (field) {
        case 4:
            if (parse_i64(&p, end, &sv) < 0)
                return -1;
            out->ppid = sv;
            break;
        case 14: case 15: case 16: case 17: case 20: case 22: case 24:
            if (p < end && *p == '-') {
                /* cutime/cstime/rss are signed in the kernel; never negative in
                 * practice, but do not reject the line for it. */
                if (parse_i64(&p, end, &sv) < 0)
                    return -1;
                uv = 0;
            } else if (parse_u64(&p, end, &uv) < 0) {
                return -1;
            }
            if (field == 14) out->utime = uv;
            else if (field == 15) out->stime = uv;
            else if (field == 16) out->cutime = uv;
            else if (field == 17) out->cstime = uv;
            else if (field == 20) out->num_threads = uv;
            else if (field == 22) out->starttime = uv;
            else out->rss_pages = uv;
            break;
        default:
            if (parse_i64(&p, end, &sv) < 0) {
                /* some fields are unsigned 64-bit (flags, vsize) */
                if (parse_u64(&p, end, &uv) < 0)
                    return -1;
            }
            break;
        }
        if (p < end && *p != ' ' && *p != '\n')
            return -1;
    }
    return 0;
}

int ps_parse_cpu_stat(const char *buf, size_t len, struct ps_cpu_stat *out)
{
    const char *p = buf, *end = buf + len;
    int have_total = 0, in_cpu_block = 0;
    memset(out, 0, sizeof *out);
    while (p < end) {
        const char *le = line_end(p, end);
        size_t ll = (size_t)(le - p);
        int cut = (le == end); /* no newline: the buffer may have cut it off */
        if (ll >= 4 && memcmp(p, "cpu ", 4) == 0 && !have_total) {
            const char *q = p + 4;
            uint64_t v, sum = 0;
            int n = 0;
            for (;;) {
                skip_blanks(&q, le);
                if (q >= le)
                    break;
                if (parse_u64(&q, le, &v) < 0)
                    return -1;
                if (q < le && *q != ' ')
                    return -1;
                if (n < 8) {
                    if (sum > UINT64_MAX - v)
                        return -1;
                    sum += v;
                }
                n++;
            }
            if (n < 4 || cut)
                return -1;
            out->total = sum;
            have_total = 1;
            in_cpu_block = 1;
        } else if (ll >= 4 && memcmp(p, "cpu", 3) == 0 && is_digit(p[3])) {
            if (!cut)
                out->ncpu++;
        } else if (in_cpu_block && ll > 0) {
            out->complete = 1;
            in_cpu_block = 0;
        }
        p = le + 1;
    }
    return have_total ? 0 : -1;
}

int ps_parse_limits_nofile(const char *buf, size_t len, uint64_t *soft)
{
    const char *end = buf + len;
    const char *p = find_key(buf, len, "Max open files");
    if (!p || p >= end || *p != ' ')
        return -1;
    skip_blanks(&p, end);
    if ((size_t)(end - p) >= 9 && memcmp(p, "unlimited", 9) == 0) {
        p += 9;
        *soft = PS_UNLIMITED;
    } else if (parse_u64(&p, end, soft) < 0) {
        return -1;
    }
    if (p >= end || (*p != ' ' && *p != '\n'))
        return -1;
    return 0;
}

int ps_parse_meminfo_total(const char *buf, size_t len, uint64_t *bytes)
{
    const char *end = buf + len;
    const char *p = find_key(buf, len, "MemTotal:");
    uint64_t kb;
    if (!p)
        return -1;
    skip_blanks(&p, end);
    if (parse_u64(&p, end, &kb) < 0)
        return -1;
    skip_blanks(&p, end);
    if ((size_t)(end - p) < 2 || memcmp(p, "kB", 2) != 0)
        return -1;
    if (kb > UINT64_MAX / 1024)
        return -1;
    *bytes = kb * 1024;
    return 0;
}

int ps_parse_status(const char *buf, size_t len, struct ps_status *out)
{
    const char *end = buf + len;
    uint64_t kb;
    memset(out, 0, sizeof *out);
    const char *p = find_key(buf, len, "VmRSS:");
    if (p) {
        skip_blanks(&p, end);
        if (parse_u64(&p, end, &kb) < 0 || kb > UINT64_MAX / 1024)
            return -1;
        skip_blanks(&p, end);
        if ((size_t)(end - p) < 2 || memcmp(p, "kB", 2) != 0)
            return -1;
        out->has_vmrss = 1;
        out->vmrss_bytes = kb * 1024;
    }
    if (key_u64(buf, len, "voluntary_ctxt_switches:", &out->voluntary) < 0)
        return -1;
    if (key_u64(buf, len, "nonvoluntary_ctxt_switches:", &out->nonvoluntary) < 0)
        return -1;
    return 0;
}

int ps_parse_io(const char *buf, size_t len, struct ps_io *out)
{
    if (key_u64(buf, len, "rchar:", &out->rchar) < 0 ||
        key_u64(buf, len, "wchar:", &out->wchar) < 0 ||
        key_u64(buf, len, "read_bytes:", &out->read_bytes) < 0 ||
        key_u64(buf, len, "write_bytes:", &out->write_bytes) < 0)
        return -1;
    return 0;
}

/* A cgroup path we can append to a mount point: absolute, fits, no ".." component. */
static int copy_cgroup_path(const char *p, const char *le, char *out, size_t cap)
{
    size_t n = (size_t)(le - p);
    if (n == 0 || p[0] != '/' || n >= cap)
        return -1;
    for (size_t i = 0; i + 2 <= n; i++) {
        if (p[i] == '/' && p[i + 1] == '.' && i + 2 < n && p[i + 2] == '.' &&
            (i + 3 == n || p[i + 3] == '/'))
            return -1;
    }
    if (memchr(p, '\0', n))
        return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

int ps_parse_cgroup(const char *buf, size_t len, char *v2path, size_t v2cap, char *v1mem,
                    size_t v1cap)
{
    const char *p = buf, *end = buf + len;
    if (v2cap)
        v2path[0] = '\0';
    if (v1cap)
        v1mem[0] = '\0';
    while (p < end) {
        const char *le = line_end(p, end);
        if (le == p) {
            p = le + 1;
            continue;
        }
        const char *c1 = memchr(p, ':', (size_t)(le - p));
        if (!c1)
            return -1;
        const char *c2 = memchr(c1 + 1, ':', (size_t)(le - c1 - 1));
        if (!c2)
            return -1;
        const char *q = p;
        uint64_t hier;
        if (parse_u64(&q, c1, &hier) < 0 || q != c1)
            return -1;
        if (hier == 0 && c2 == c1 + 1) {
            if (v2cap)
                (void)copy_cgroup_path(c2 + 1, le, v2path, v2cap);
        } else {
            /* controller list, comma separated */
            const char *c = c1 + 1;
            while (c < c2) {
                const char *comma = memchr(c, ',', (size_t)(c2 - c));
                const char *ce = comma ? comma : c2;
                if (ce - c == 6 && memcmp(c, "memory", 6) == 0 && v1cap)
                    (void)copy_cgroup_path(c2 + 1, le, v1mem, v1cap);
                c = ce + 1;
            }
        }
        p = le + 1;
    }
    return 0;
}

int ps_parse_mem_limit(const char *buf, size_t len, uint64_t *limit)
{
    const char *p = buf, *end = buf + len;
    while (end > p && (end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end - p == 3 && memcmp(p, "max", 3) == 0) {
        *limit = PS_UNLIMITED;
        return 0;
    }
    if (end - p == 2 && memcmp(p, "-1", 2) == 0) {
        *limit = PS_UNLIMITED;
        return 0;
    }
    if (parse_u64(&p, end, limit) < 0 || p != end)
        return -1;
    return 0;
}

int ps_parse_pid_text(const char *buf, size_t len, long long *pid)
{
    const char *p = buf, *end = buf + len;
    uint64_t v;
    skip_blanks(&p, end);
    if (parse_u64(&p, end, &v) < 0 || v == 0 || v > 0x7fffffff)
        return -1;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    if (p != end)
        return -1;
    *pid = (long long)v;
    return 0;
}

size_t ps_cmdline_join(char *buf, size_t len)
{
    while (len > 0 && buf[len - 1] == '\0')
        len--;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\0')
            buf[i] = ' ';
    }
    buf[len] = '\0';
    return len;
}

void ps_sanitize_key(const char *in, char *out, size_t outcap)
{
    size_t n = 0;
    if (outcap == 0)
        return;
    for (; *in && n + 1 < outcap; in++) {
        char c = *in;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
                 c == '_' || c == '-';
        out[n++] = ok ? c : '_';
    }
    out[n] = '\0';
    if (n == 0) {
        strncpy(out, "process", outcap - 1);
        out[outcap - 1] = '\0';
    }
}

int ps_key_valid(const char *key)
{
    int part = 0; /* length of the current dot-separated part */
    for (const char *k = key; *k; k++) {
        char c = *k;
        if (c == '.') {
            if (part == 0)
                return 0;
            part = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
                   c == '_' || c == '-') {
            part++;
        } else {
            return 0;
        }
    }
    return part > 0;
}

ssize_t ps_read_file(const char *path, char *buf, size_t cap, int *truncated)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t n = 0;
    if (truncated)
        *truncated = 0;
    if (fd < 0)
        return -1;
    while (n + 1 < cap) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        /* proc and sysfs files hand over everything that fits in one read, and a
         * regular file reads short only at its end: a short read is the end. */
        if ((size_t)r < cap - 1 - (n - (size_t)r))
            break;
    }
    if (n + 1 >= cap && truncated)
        *truncated = 1;
    close(fd);
    buf[n] = '\0';
    return (ssize_t)n;
}

long long ps_count_fds(const char *fd_dir)
{
    int fd = open(fd_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct statfs sfs;
    struct stat st;
    long long count = 0;
    if (fd < 0)
        return -1;
    /* Linux 6.2+ reports the number of open fds as the size of /proc/PID/fd. */
    if (fstatfs(fd, &sfs) == 0 && sfs.f_type == PROC_SUPER_MAGIC && fstat(fd, &st) == 0 &&
        st.st_size > 0) {
        close(fd);
        return (long long)st.st_size;
    }
    union {
        char b[16384];
        uint64_t align;
    } dents;
    for (;;) {
        long r = syscall(SYS_getdents64, fd, dents.b, sizeof dents.b);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (r == 0)
            break;
        for (long off = 0; off < r;) {
            /* struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, char name[] */
            const char *d = dents.b + off;
            unsigned short reclen;
            memcpy(&reclen, d + 16, sizeof reclen);
            const char *name = d + 19;
            if (!(name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))))
                count++;
            if (reclen == 0)
                break;
            off += reclen;
        }
    }
    close(fd);
    return count;
}
