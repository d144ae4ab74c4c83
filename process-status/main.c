/* mackerel-plugin-linux-process-status: a Mackerel metric plugin reporting the fd,
 * CPU and memory usage of one process (or process tree), drop-in compatible with
 * kazeburo's Go original (same flags, metric names, order and formatting).
 *
 * One run reads a handful of small /proc files with plain read(2) into stack buffers,
 * compares CPU time with the previous run's state file, and writes all metric lines
 * with one write(2). Scanning all of /proc happens only for --pattern and
 * --include-children. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flags.h"
#include "procfs.h"
#include "scan.h"
#include "state.h"

#define PROG "mackerel-plugin-linux-process-status"

struct config {
    long long pid;
    int pid_given;
    const char *pid_file;
    const char *pattern;
    int oldest;
    const char *key_prefix;
    int include_children;
    int per_core;
    int extended;
    const char *state_dir;
    const char *proc_root;   /* PROCESS_STATUS_PROC_ROOT, default /proc */
    const char *cgroup_root; /* PROCESS_STATUS_CGROUP_ROOT, default /sys/fs/cgroup */
};

/* What one run measures (sums over the tree with --include-children). */
struct sample {
    struct ps_pid_stat root;
    int fds_ok;
    uint64_t fds, fds_max;
    char fds_err[1200];
    uint64_t proc_ticks;
    struct ps_cpu_stat cpu;
    uint64_t rss_bytes;
    uint64_t mem_max;
    uint64_t threads;
    int status_ok, status_errno;
    uint64_t voluntary, nonvoluntary;
    int io_ok;
    char io_err[1200];
    struct ps_io io;
    uint64_t now_ns; /* CLOCK_BOOTTIME */
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", PROG, msg);
    exit(1);
}

static void notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void notice(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "Notice: %s\n", msg);
}

/* Output buffer: all metric lines go out with one write(2). */
struct out {
    char buf[8192];
    size_t len;
};

static void out_printf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, sizeof o->buf - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof o->buf - o->len)
        die("output too long");
    o->len += (size_t)n;
}

static void out_flush(struct out *o)
{
    size_t off = 0;
    while (off < o->len) {
        ssize_t w = write(STDOUT_FILENO, o->buf + off, o->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write to stdout: %s", w < 0 ? strerror(errno) : "short write");
        off += (size_t)w;
    }
    o->len = 0;
}

static uint64_t boottime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- process selection ---- */

static long long pid_from_file(const char *file)
{
    char buf[4096];
    int trunc;
    ssize_t n = ps_read_file(file, buf, sizeof buf, &trunc);
    long long pid;
    if (n < 0)
        die("cannot read pid file %s: %s", file, strerror(errno));
    if (n == 0)
        die("pid file %s is empty", file);
    if (trunc || ps_parse_pid_text(buf, (size_t)n, &pid) < 0) {
        /* show the start of the junk, printable characters only */
        char shown[41];
        size_t k = 0;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
            n--;
        for (ssize_t i = 0; i < n && k < sizeof shown - 1; i++)
            shown[k++] = (buf[i] >= 0x20 && buf[i] < 0x7f) ? buf[i] : '?';
        shown[k] = '\0';
        die("pid file %s does not contain a process ID: \"%s%s\"", file, shown,
            (size_t)n > k ? "..." : "");
    }
    return pid;
}

static long long pid_from_pattern(const struct config *cfg)
{
    regex_t re;
    char err[512];
    int rc = regcomp(&re, cfg->pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        regerror(rc, &re, err, sizeof err);
        die("invalid --pattern \"%s\": %s", cfg->pattern, err);
    }
    long long pid = ps_find_by_pattern(cfg->proc_root, &re, cfg->oldest, err, sizeof err);
    regfree(&re);
    if (pid < 0)
        die("%s", err);
    if (pid == 0)
        die("no process matches --pattern \"%s\"", cfg->pattern);
    return pid;
}

static long long select_pid(const struct config *cfg)
{
    if (cfg->pid_given)
        return cfg->pid;
    if (cfg->pid_file)
        return pid_from_file(cfg->pid_file);
    return pid_from_pattern(cfg);
}

static const char *describe_selection(const struct config *cfg, char *buf, size_t cap)
{
    if (cfg->pid_file)
        snprintf(buf, cap, " (from pid file %s)", cfg->pid_file);
    else if (cfg->pattern)
        snprintf(buf, cap, " (matching --pattern \"%s\")", cfg->pattern);
    else
        buf[0] = '\0';
    return buf;
}

/* ---- reading one process ---- */

/* Read and parse /proc/PID/stat. Returns 0, or -1 with errno (EINVAL: malformed). */
static int read_pid_stat(const struct config *cfg, long long pid, struct ps_pid_stat *st)
{
    char path[1024], buf[2048];
    snprintf(path, sizeof path, "%s/%lld/stat", cfg->proc_root, pid);
    ssize_t n = ps_read_file(path, buf, sizeof buf, NULL);
    if (n < 0)
        return -1;
    if (ps_parse_pid_stat(buf, (size_t)n, st) < 0) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

/* fds and their soft limit of one process. Returns 0, or -1 with a message. */
static int read_fds(const struct config *cfg, long long pid, uint64_t *count, uint64_t *max,
                    char *err, size_t errlen)
{
    char path[1024], buf[4096];
    snprintf(path, sizeof path, "%s/%lld/fd", cfg->proc_root, pid);
    long long c = ps_count_fds(path);
    if (c < 0) {
        snprintf(err, errlen, "Could not get fds: %s: %s", path, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/%lld/limits", cfg->proc_root, pid);
    ssize_t n = ps_read_file(path, buf, sizeof buf, NULL);
    if (n < 0) {
        snprintf(err, errlen, "Could not get limits: %s: %s", path, strerror(errno));
        return -1;
    }
    if (ps_parse_limits_nofile(buf, (size_t)n, max) < 0) {
        snprintf(err, errlen, "Could not get limits: %s: no \"Max open files\" line", path);
        return -1;
    }
    *count = (uint64_t)c;
    return 0;
}

static int read_status(const struct config *cfg, long long pid, struct ps_status *st)
{
    char path[1024], buf[8192];
    snprintf(path, sizeof path, "%s/%lld/status", cfg->proc_root, pid);
    ssize_t n = ps_read_file(path, buf, sizeof buf, NULL);
    if (n < 0)
        return -1;
    if (ps_parse_status(buf, (size_t)n, st) < 0) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

static int read_io(const struct config *cfg, long long pid, struct ps_io *io, char *err,
                   size_t errlen)
{
    char path[1024], buf[1024];
    snprintf(path, sizeof path, "%s/%lld/io", cfg->proc_root, pid);
    ssize_t n = ps_read_file(path, buf, sizeof buf, NULL);
    if (n < 0) {
        snprintf(err, errlen, "Could not get io: %s: %s", path, strerror(errno));
        return -1;
    }
    if (ps_parse_io(buf, (size_t)n, io) < 0) {
        snprintf(err, errlen, "Could not get io: %s: malformed", path);
        return -1;
    }
    return 0;
}

/* ---- machine-wide ---- */

static void read_cpu_stat(const struct config *cfg, struct ps_cpu_stat *cpu)
{
    char path[1024];
    char sbuf[65536];
    char *buf = sbuf;
    size_t cap = sizeof sbuf;
    snprintf(path, sizeof path, "%s/stat", cfg->proc_root);
    for (;;) {
        int trunc;
        ssize_t n = ps_read_file(path, buf, cap, &trunc);
        if (n < 0)
            die("cannot read %s: %s", path, strerror(errno));
        int rc = ps_parse_cpu_stat(buf, (size_t)n, cpu);
        if (rc == 0 && (cpu->complete || !trunc))
            break;
        if (!trunc)
            die("%s: no \"cpu\" line", path);
        /* A machine with so many CPUs that their lines do not fit: read it all. */
        if (cap >= (64u << 20))
            die("%s: too large", path);
        cap *= 4;
        char *nb = buf == sbuf ? malloc(cap) : realloc(buf, cap);
        if (!nb)
            die("out of memory");
        buf = nb;
    }
    if (buf != sbuf)
        free(buf);
}

static uint64_t read_mem_total(const struct config *cfg)
{
    char path[1024], buf[8192];
    uint64_t total;
    snprintf(path, sizeof path, "%s/meminfo", cfg->proc_root);
    ssize_t n = ps_read_file(path, buf, sizeof buf, NULL);
    if (n < 0)
        die("cannot read %s: %s", path, strerror(errno));
    if (ps_parse_meminfo_total(buf, (size_t)n, &total) < 0 || total == 0)
        die("%s: no MemTotal line", path);
    return total;
}

/* The lowest memory limit file found at dir+path and each of its ancestors. */
static uint64_t walk_limits(const char *dir, const char *cgpath, const char *file)
{
    char path[4200], buf[128];
    char rel[2048];
    uint64_t best = PS_UNLIMITED;
    snprintf(rel, sizeof rel, "%s", cgpath);
    for (;;) {
        size_t rl = strlen(rel);
        while (rl > 0 && rel[rl - 1] == '/')
            rel[--rl] = '\0';
        int pl = snprintf(path, sizeof path, "%s%s/%s", dir, rel, file);
        ssize_t n = pl > 0 && (size_t)pl < sizeof path ? ps_read_file(path, buf, sizeof buf, NULL)
                                                        : -1;
        uint64_t lim;
        if (n > 0 && ps_parse_mem_limit(buf, (size_t)n, &lim) == 0 && lim > 0 && lim < best)
            best = lim;
        if (rl == 0)
            break;
        char *slash = strrchr(rel, '/');
        if (!slash)
            break;
        *slash = '\0';
    }
    return best;
}

static uint64_t cgroup_mem_limit(const struct config *cfg, long long pid)
{
    char path[1024], buf[4096], v2[2048], v1[2048];
    uint64_t best = PS_UNLIMITED;
    snprintf(path, sizeof path, "%s/%lld/cgroup", cfg->proc_root, pid);
    ssize_t n = ps_read_file(path, buf, sizeof buf, NULL);
    if (n <= 0 || ps_parse_cgroup(buf, (size_t)n, v2, sizeof v2, v1, sizeof v1) < 0)
        return best;
    if (v2[0]) {
        /* unified hierarchy: at the root (pure v2) or at unified/ (hybrid) */
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/cgroup.controllers", cfg->cgroup_root);
        if (access(dir, F_OK) == 0)
            snprintf(dir, sizeof dir, "%s", cfg->cgroup_root);
        else
            snprintf(dir, sizeof dir, "%s/unified", cfg->cgroup_root);
        uint64_t l = walk_limits(dir, v2, "memory.max");
        if (l < best)
            best = l;
    }
    if (v1[0]) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/memory", cfg->cgroup_root);
        uint64_t l = walk_limits(dir, v1, "memory.limit_in_bytes");
        if (l < best)
            best = l;
    }
    return best;
}

/* ---- measuring ---- */

/* Add one process to the sample. A descendant that exits while we read it is skipped
 * (ENOENT/ESRCH); for the watched process itself, failures are reported. */
static void add_member(const struct config *cfg, long long pid, int is_root,
                       const struct ps_pid_stat *st, struct sample *s)
{
    s->proc_ticks += st->utime + st->stime;
    if (cfg->include_children)
        s->proc_ticks += st->cutime + st->cstime;
    s->threads += st->num_threads;
    if (s->status_ok) {
        /* VmRSS is exact; the rss field of stat is a per-CPU-cached approximation */
        struct ps_status ps;
        if (read_status(cfg, pid, &ps) == 0) {
            s->rss_bytes += ps.has_vmrss ? ps.vmrss_bytes
                                         : st->rss_pages * (uint64_t)sysconf(_SC_PAGESIZE);
            s->voluntary += ps.voluntary;
            s->nonvoluntary += ps.nonvoluntary;
        } else if (is_root || (errno != ENOENT && errno != ESRCH)) {
            s->status_ok = 0;
            s->status_errno = errno;
        }
    }
    if (s->fds_ok) {
        uint64_t c, m;
        if (read_fds(cfg, pid, &c, &m, s->fds_err, sizeof s->fds_err) < 0) {
            if (is_root || (errno != ENOENT && errno != ESRCH))
                s->fds_ok = 0;
        } else {
            s->fds += c;
            s->fds_max = (s->fds_max == PS_UNLIMITED || m == PS_UNLIMITED) ? PS_UNLIMITED
                                                                           : s->fds_max + m;
        }
    }
    if (cfg->extended) {
        struct ps_io io;
        if (s->io_ok) {
            if (read_io(cfg, pid, &io, s->io_err, sizeof s->io_err) == 0) {
                s->io.rchar += io.rchar;
                s->io.wchar += io.wchar;
                s->io.read_bytes += io.read_bytes;
                s->io.write_bytes += io.write_bytes;
            } else if (is_root || (errno != ENOENT && errno != ESRCH)) {
                s->io_ok = 0;
            }
        }
    }
}

static void measure(const struct config *cfg, long long pid, const char *how,
                    struct sample *s)
{
    memset(s, 0, sizeof *s);
    s->fds_ok = 1;
    s->status_ok = 1;
    s->io_ok = 1;

    if (read_pid_stat(cfg, pid, &s->root) < 0) {
        if (errno == ENOENT || errno == ESRCH)
            die("process %lld%s does not exist", pid, how);
        die("cannot read %s/%lld/stat: %s", cfg->proc_root, pid,
            errno == EINVAL ? "malformed" : strerror(errno));
    }
    /* CPU times first: the process's (or tree's) stat, then the machine's, read back
     * to back so both deltas cover the same interval. */
    struct member {
        long long pid;
        struct ps_pid_stat st;
    } *members = NULL;
    size_t nmembers = 0;
    if (cfg->include_children) {
        long long *pids;
        size_t n;
        char err[512];
        if (ps_tree_collect(cfg->proc_root, pid, &pids, &n, err, sizeof err) < 0)
            die("%s", err);
        members = calloc(n, sizeof *members);
        if (!members)
            die("out of memory");
        for (size_t i = 1; i < n; i++) {
            /* a child that exited since the scan is simply not counted */
            if (read_pid_stat(cfg, pids[i], &members[nmembers].st) == 0) {
                members[nmembers].pid = pids[i];
                nmembers++;
            }
        }
        free(pids);
    }
    read_cpu_stat(cfg, &s->cpu);
    s->now_ns = boottime_ns();

    add_member(cfg, pid, 1, &s->root, s);
    for (size_t i = 0; i < nmembers; i++)
        add_member(cfg, members[i].pid, 0, &members[i].st, s);
    free(members);
    if (!s->status_ok)
        die("cannot read %s/%lld/status (or a child's): %s", cfg->proc_root, pid,
            s->status_errno == EINVAL ? "malformed" : strerror(s->status_errno));

    uint64_t total = read_mem_total(cfg);
    uint64_t lim = cgroup_mem_limit(cfg, pid);
    s->mem_max = lim < total ? lim : total;
}

/* ---- output ---- */

static double pct(uint64_t part, uint64_t whole)
{
    if (whole == 0 || whole == PS_UNLIMITED)
        return 0.0;
    return (double)part * 100.0 / (double)whole;
}

static void json_string(struct out *o, const char *s)
{
    out_printf(o, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            out_printf(o, "\\%c", c);
        else if (c < 0x20)
            out_printf(o, "\\u%04x", c);
        else
            out_printf(o, "%c", c);
    }
    out_printf(o, "\"");
}

struct graph_metric {
    const char *name, *label;
};

static void json_graph(struct out *o, int *first, const char *group, const char *key,
                       const char *label, const char *unit, const struct graph_metric *m,
                       size_t nm)
{
    char gkey[512], glabel[512];
    snprintf(gkey, sizeof gkey, "process-status.%s_%s", group, key);
    snprintf(glabel, sizeof glabel, "%s (%s)", label, key);
    out_printf(o, "%s", *first ? "" : ",");
    *first = 0;
    json_string(o, gkey);
    out_printf(o, ":{\"label\":");
    json_string(o, glabel);
    out_printf(o, ",\"unit\":\"%s\",\"metrics\":[", unit);
    for (size_t i = 0; i < nm; i++) {
        out_printf(o, "%s{\"name\":\"%s\",\"label\":\"%s\",\"stacked\":false}", i ? "," : "",
                   m[i].name, m[i].label);
    }
    out_printf(o, "]}");
}

static void print_meta(const struct config *cfg, const char *key)
{
    static const struct graph_metric fds[] = {{"count", "Count"}, {"max", "Max"}};
    static const struct graph_metric usage[] = {{"percentage", "Usage"}};
    static const struct graph_metric cpu[] = {{"percentage", "CPU"}};
    static const struct graph_metric mem[] = {{"used", "Used"}, {"max", "Max"}};
    static const struct graph_metric threads[] = {{"count", "Threads"}};
    static const struct graph_metric ctxt[] = {{"voluntary", "Voluntary"},
                                               {"nonvoluntary", "Involuntary"}};
    static const struct graph_metric io[] = {{"read_bytes", "Storage read"},
                                             {"write_bytes", "Storage write"},
                                             {"rchar", "Read (syscalls)"},
                                             {"wchar", "Written (syscalls)"}};
    static const struct graph_metric up[] = {{"seconds", "Uptime"}};
    struct out o = {.len = 0};
    int first = 1;
    out_printf(&o, "# mackerel-agent-plugin\n{\"graphs\":{");
    json_graph(&o, &first, "fds", key, "Process file descriptors", "integer", fds, 2);
    json_graph(&o, &first, "fds_usage", key, "Process file descriptor usage", "percentage",
               usage, 1);
    json_graph(&o, &first, "cpu", key,
               cfg->per_core ? "Process CPU (100% = one core)" : "Process CPU (% of machine)",
               "percentage", cpu, 1);
    json_graph(&o, &first, "mem", key, "Process memory", "bytes", mem, 2);
    json_graph(&o, &first, "mem_usage", key, "Process memory usage", "percentage", usage, 1);
    if (cfg->extended) {
        json_graph(&o, &first, "threads", key, "Process threads", "integer", threads, 1);
        json_graph(&o, &first, "ctx_switches", key, "Process context switches per second",
                   "float", ctxt, 2);
        json_graph(&o, &first, "io", key, "Process I/O bytes per second", "bytes/sec", io, 4);
        json_graph(&o, &first, "uptime", key, "Process uptime", "seconds", up, 1);
    }
    out_printf(&o, "}}\n");
    out_flush(&o);
}

/* Wait (at most ~200 ms, sleeping) until the machine's CPU time has moved past
 * `prev_total`. Returns 1 when it has, 0 when it never did. */
static int wait_cpu_tick(const struct config *cfg, uint64_t prev_total)
{
    for (int i = 0; i < 100; i++) {
        struct ps_cpu_stat cpu;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
        read_cpu_stat(cfg, &cpu);
        if (cpu.total > prev_total)
            return 1;
    }
    return 0;
}

static double rate(uint64_t cur, uint64_t prev, double secs)
{
    return cur >= prev ? (double)(cur - prev) / secs : 0.0;
}

/* Compare with the previous run, print the metric lines, save the new state. */
static void report(const struct config *cfg, long long pid, const char *how, const char *key,
                   struct sample *s)
{
    struct out o = {.len = 0};
    long long now = (long long)time(NULL);
    char err[512], dir[4096], fname[PS_STATE_KEY_MAX + 1];

    if (ps_state_escape_key(key, fname, sizeof fname) < 0)
        die("--key-prefix is too long for a state file name (at most %d bytes when escaped)",
            PS_STATE_KEY_MAX);
    char note[2048];
    int dirfd = ps_state_dir_open(cfg->state_dir, dir, sizeof dir, note, sizeof note, err,
                                  sizeof err);
    if (note[0])
        notice("%s", note);

    if (s->root.state == 'Z')
        notice("process %lld%s is a zombie (it has exited and its parent, pid %lld, has not "
               "reaped it yet): it holds no memory or fds, so these numbers are zeros",
               pid, how, s->root.ppid);

    struct ps_state prev, cur;
    int have_prev = 0;
    int rc = dirfd < 0 ? 0 : ps_state_load(dirfd, fname, &prev, err, sizeof err);
    if (dirfd < 0) {
        /* The stateless lines are still worth printing: never print nothing. */
        notice("%s; no cpu line without a state directory to keep the previous sample",
               err);
    } else if (rc < 0) {
        notice("state file %s/%s is unusable (%s); starting afresh", dir, fname, err);
    } else if (rc == 0) {
        notice("first time execution command");
    } else if (strcmp(prev.key, fname) != 0) {
        notice("state file %s/%s belongs to key %s; starting afresh", dir, fname, prev.key);
    } else if (prev.pid != pid || prev.start != s->root.starttime) {
        notice("process changed (was pid %lld started at tick %" PRIu64 ", now pid %lld "
               "started at tick %" PRIu64 "); starting CPU measurement afresh",
               prev.pid, prev.start, pid, s->root.starttime);
    } else if (prev.children != cfg->include_children) {
        notice("--include-children changed since the previous run; starting afresh");
    } else {
        have_prev = 1;
    }

    int save = dirfd >= 0;
    int cpu_ok = 0;
    double cpu_pct = 0, secs = 0;
    if (have_prev && s->cpu.total <= prev.total_ticks && wait_cpu_tick(cfg, prev.total_ticks)) {
        /* Run again within one clock tick of the previous run (a script calling us twice
         * in a row): measure once the machine's CPU time has moved, rather than print no
         * cpu line. */
        measure(cfg, pid, how, s);
    }
    if (have_prev) {
        if (s->cpu.total <= prev.total_ticks) {
            notice("less than one clock tick since the previous run; no cpu this time");
            have_prev = 0;
            save = 0; /* keep the older baseline */
        } else {
            uint64_t dproc = s->proc_ticks >= prev.proc_ticks ? s->proc_ticks - prev.proc_ticks
                                                              : 0;
            cpu_pct = (double)dproc * 100.0 / (double)(s->cpu.total - prev.total_ticks);
            if (cfg->per_core)
                cpu_pct *= s->cpu.ncpu ? s->cpu.ncpu : 1;
            cpu_ok = 1;
            secs = s->now_ns > prev.time_ns ? (double)(s->now_ns - prev.time_ns) / 1e9 : 0;
        }
    }

    if (s->fds_ok) {
        out_printf(&o, "process-status.fds_%s.count\t%" PRIu64 "\t%lld\n", key, s->fds, now);
        out_printf(&o, "process-status.fds_%s.max\t%" PRIu64 "\t%lld\n", key, s->fds_max, now);
        out_printf(&o, "process-status.fds_usage_%s.percentage\t%f\t%lld\n", key,
                   pct(s->fds, s->fds_max), now);
    } else {
        notice("%s", s->fds_err);
    }
    if (cpu_ok)
        out_printf(&o, "process-status.cpu_%s.percentage\t%f\t%lld\n", key, cpu_pct, now);
    out_printf(&o, "process-status.mem_%s.used\t%" PRIu64 "\t%lld\n", key, s->rss_bytes, now);
    out_printf(&o, "process-status.mem_%s.max\t%" PRIu64 "\t%lld\n", key, s->mem_max, now);
    out_printf(&o, "process-status.mem_usage_%s.percentage\t%f\t%lld\n", key,
               pct(s->rss_bytes, s->mem_max), now);
    if (cfg->extended) {
        out_printf(&o, "process-status.threads_%s.count\t%" PRIu64 "\t%lld\n", key, s->threads,
                   now);
        if (cpu_ok && secs > 0 && prev.has_ctxt) {
            out_printf(&o, "process-status.ctx_switches_%s.voluntary\t%f\t%lld\n", key,
                       rate(s->voluntary, prev.voluntary, secs), now);
            out_printf(&o, "process-status.ctx_switches_%s.nonvoluntary\t%f\t%lld\n", key,
                       rate(s->nonvoluntary, prev.nonvoluntary, secs), now);
        }
        if (!s->io_ok) {
            notice("%s", s->io_err);
        } else if (cpu_ok && secs > 0 && prev.has_io) {
            out_printf(&o, "process-status.io_%s.read_bytes\t%f\t%lld\n", key,
                       rate(s->io.read_bytes, prev.io.read_bytes, secs), now);
            out_printf(&o, "process-status.io_%s.write_bytes\t%f\t%lld\n", key,
                       rate(s->io.write_bytes, prev.io.write_bytes, secs), now);
            out_printf(&o, "process-status.io_%s.rchar\t%f\t%lld\n", key,
                       rate(s->io.rchar, prev.io.rchar, secs), now);
            out_printf(&o, "process-status.io_%s.wchar\t%f\t%lld\n", key,
                       rate(s->io.wchar, prev.io.wchar, secs), now);
        }
        long hz = sysconf(_SC_CLK_TCK);
        uint64_t start_s = s->root.starttime / (uint64_t)(hz > 0 ? hz : 100);
        uint64_t up_s = s->now_ns / 1000000000u;
        out_printf(&o, "process-status.uptime_%s.seconds\t%" PRIu64 "\t%lld\n", key,
                   up_s > start_s ? up_s - start_s : 0, now);
    }

    if (save) {
        memset(&cur, 0, sizeof cur);
        memcpy(cur.key, fname, sizeof cur.key);
        cur.pid = pid;
        cur.start = s->root.starttime;
        cur.children = cfg->include_children;
        cur.time_ns = s->now_ns;
        cur.proc_ticks = s->proc_ticks;
        cur.total_ticks = s->cpu.total;
        if (cfg->extended) {
            cur.has_ctxt = 1;
            cur.voluntary = s->voluntary;
            cur.nonvoluntary = s->nonvoluntary;
            if (s->io_ok) {
                cur.has_io = 1;
                cur.io = s->io;
            }
        }
        if (ps_state_save(dirfd, fname, &cur, err, sizeof err) < 0)
            notice("failed to save state in %s: %s", dir, err);
    }
    if (dirfd >= 0)
        close(dirfd);
    out_flush(&o);
}

int main(int argc, char **argv)
{
    struct config cfg = {0};
    int first_operand;
    const struct flag_spec specs[] = {
        {"pid", 'p', FLAG_INT, &cfg.pid, "PID", "PID of the process to watch", NULL,
         &cfg.pid_given, "1..4194304"},
        {"pid-file", 0, FLAG_STRING, &cfg.pid_file, "FILE",
         "read the PID from FILE (e.g. /run/mysqld/mysqld.pid)", NULL, NULL, NULL},
        {"pattern", 0, FLAG_STRING, &cfg.pattern, "REGEX",
         "watch the newest process whose command line matches REGEX (POSIX extended, "
         "like pgrep -n -f)",
         NULL, NULL, NULL},
        {"oldest", 0, FLAG_BOOL, &cfg.oldest, NULL,
         "with --pattern, pick the oldest match instead (like pgrep -o)", NULL, NULL, NULL},
        {"key-prefix", 0, FLAG_STRING, &cfg.key_prefix, "KEY",
         "Metric key prefix (default: the process name)", NULL, NULL, NULL},
        {"include-children", 0, FLAG_BOOL, &cfg.include_children, NULL,
         "sum CPU, memory and fds over the process and all its descendants", NULL, NULL, NULL},
        {"per-core", 0, FLAG_BOOL, &cfg.per_core, NULL,
         "report CPU so that 100% is one core (default: 100% is the whole machine)", NULL,
         NULL, NULL},
        {"extended", 0, FLAG_BOOL, &cfg.extended, NULL,
         "also report threads, context switches/s, I/O bytes/s and uptime", NULL, NULL, NULL},
        {"state-dir", 0, FLAG_STRING, &cfg.state_dir, "DIR",
         "directory for the state file (default: $XDG_RUNTIME_DIR/" PROG
         " or ${TMPDIR:-/tmp}/" PROG "-UID)",
         NULL, NULL, NULL},
        {"version", 'v', FLAG_VERSION, NULL, NULL, "Show version", NULL, NULL, NULL},
        {NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
    };
    const struct flags_def def = {
        .prog = PROG,
        .synopsis = "(-p PID | --pid-file FILE | --pattern REGEX) [OPTIONS]",
        .description =
            "Mackerel metric plugin: file descriptors, CPU and memory of one process.\n"
            "Prints name<TAB>value<TAB>epoch lines; with MACKEREL_AGENT_PLUGIN_META=1 prints\n"
            "the graph definitions instead. Environment: PROCESS_STATUS_STATE_DIR (like\n"
            "--state-dir), PROCESS_STATUS_CGROUP_ROOT (default /sys/fs/cgroup),\n"
            "PROCESS_STATUS_PROC_ROOT (default /proc; for tests).",
        .style = FLAGS_GNU,
        .specs = specs,
    };
    flags_parse_or_exit(&def, argc, argv, &first_operand);
    if (first_operand < argc)
        die("unexpected argument \"%s\" (see --help)", argv[first_operand]);

    int selectors = cfg.pid_given + (cfg.pid_file != NULL) + (cfg.pattern != NULL);
    if (selectors == 0)
        die("one of -p/--pid, --pid-file or --pattern is required (see --help)");
    if (selectors > 1)
        die("-p/--pid, --pid-file and --pattern are mutually exclusive");
    if (cfg.pid_given && (cfg.pid <= 0 || cfg.pid > INT_MAX))
        die("invalid PID %lld for --pid", cfg.pid);
    if (cfg.oldest && !cfg.pattern)
        die("--oldest only makes sense with --pattern");
    if (cfg.key_prefix && cfg.key_prefix[0] == '\0')
        die("--key-prefix must not be empty");
    if (cfg.key_prefix && !ps_key_valid(cfg.key_prefix))
        die("invalid --key-prefix: a Mackerel metric name part is letters, digits, '-' and "
            "'_', with single '.' between parts");
    if (cfg.pattern && cfg.pattern[0] == '\0')
        die("--pattern must not be empty (it would match every process)");
    if (cfg.pid_file && cfg.pid_file[0] == '\0')
        die("--pid-file must not be empty");
    if (cfg.state_dir && cfg.state_dir[0] == '\0')
        die("--state-dir must not be empty");
    if (cfg.key_prefix) {
        char fname[PS_STATE_KEY_MAX + 1];
        if (ps_state_escape_key(cfg.key_prefix, fname, sizeof fname) < 0)
            die("--key-prefix is too long for a state file name (at most %d bytes when "
                "escaped)",
                PS_STATE_KEY_MAX);
    }

    const char *env;
    cfg.proc_root = (env = getenv("PROCESS_STATUS_PROC_ROOT")) && *env ? env : "/proc";
    cfg.cgroup_root = (env = getenv("PROCESS_STATUS_CGROUP_ROOT")) && *env ? env
                                                                          : "/sys/fs/cgroup";
    if (strlen(cfg.proc_root) > 512 || strlen(cfg.cgroup_root) > 512)
        die("PROCESS_STATUS_PROC_ROOT / PROCESS_STATUS_CGROUP_ROOT too long (max 512 bytes)");
    if (!cfg.state_dir && (env = getenv("PROCESS_STATUS_STATE_DIR")) && *env)
        cfg.state_dir = env;

    const char *meta = getenv("MACKEREL_AGENT_PLUGIN_META");
    char key[sizeof(((struct ps_pid_stat *)0)->comm)];
    char how[4200];
    if (meta && *meta && cfg.key_prefix) {
        print_meta(&cfg, cfg.key_prefix);
        return 0;
    }

    long long pid = select_pid(&cfg);
    describe_selection(&cfg, how, sizeof how);
    struct sample s;
    if (meta && *meta) {
        /* only the name is needed for the default key */
        if (read_pid_stat(&cfg, pid, &s.root) < 0)
            die("process %lld%s does not exist", pid, how);
        ps_sanitize_key(s.root.comm, key, sizeof key);
        print_meta(&cfg, key);
        return 0;
    }
    measure(&cfg, pid, how, &s);
    if (!cfg.key_prefix)
        ps_sanitize_key(s.root.comm, key, sizeof key);
    report(&cfg, pid, how, cfg.key_prefix ? cfg.key_prefix : key, &s);
    return 0;
}
