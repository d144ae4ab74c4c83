/* procfs: parsers for the /proc and cgroup files mackerel-plugin-linux-process-status
 * reads, plus the small file and directory helpers that feed them.
 *
 * Every ps_parse_* function takes a buffer and its length (the buffer need not be
 * NUL-terminated), never allocates, and returns 0 on success or -1 when the text is
 * not what the kernel writes. They are shared by the program, its cmocka unit tests
 * and the libFuzzer target fuzz/fuzz_procstat.c. */
#ifndef OPSKIT_PS_PROCFS_H
#define OPSKIT_PS_PROCFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PS_UNLIMITED UINT64_MAX

/* The fields of /proc/PID/stat this program uses (field numbers as in proc(5)). */
struct ps_pid_stat {
    char comm[64];        /* (2), without the parentheses, truncated */
    char state;           /* (3) */
    long long ppid;       /* (4) */
    uint64_t utime;       /* (14) clock ticks */
    uint64_t stime;       /* (15) */
    uint64_t cutime;      /* (16) waited-for children */
    uint64_t cstime;      /* (17) */
    uint64_t num_threads; /* (20) */
    uint64_t starttime;   /* (22) clock ticks after boot */
    uint64_t rss_pages;   /* (24) */
};

/* /proc/PID/stat. comm may contain spaces and parentheses: it ends at the last ')'. */
int ps_parse_pid_stat(const char *buf, size_t len, struct ps_pid_stat *out);

/* Aggregate CPU time from /proc/stat. */
struct ps_cpu_stat {
    uint64_t total; /* user+nice+system+idle+iowait+irq+softirq+steal, clock ticks */
    unsigned ncpu;  /* number of "cpuN" lines (online CPUs) */
    int complete;   /* 1 when a line after the cpuN block was seen (nothing cut off) */
};

/* /proc/stat. guest and guest_nice are not added: the kernel already counts them in
 * user and nice. Fails when there is no well-formed "cpu " line. */
int ps_parse_cpu_stat(const char *buf, size_t len, struct ps_cpu_stat *out);

/* The soft limit of "Max open files" in /proc/PID/limits ("unlimited" → PS_UNLIMITED). */
int ps_parse_limits_nofile(const char *buf, size_t len, uint64_t *soft);

/* MemTotal of /proc/meminfo, in bytes. */
int ps_parse_meminfo_total(const char *buf, size_t len, uint64_t *bytes);

/* The fields of /proc/PID/status this program uses. */
struct ps_status {
    int has_vmrss;        /* kernel threads have no VmRSS line */
    uint64_t vmrss_bytes; /* VmRSS (exact; stat's rss field is an approximation) */
    uint64_t voluntary, nonvoluntary; /* *_ctxt_switches */
};

/* /proc/PID/status. Fails when the context switch counters are missing. */
int ps_parse_status(const char *buf, size_t len, struct ps_status *out);

struct ps_io {
    uint64_t rchar, wchar, read_bytes, write_bytes;
};

/* /proc/PID/io (all four fields must be present). */
int ps_parse_io(const char *buf, size_t len, struct ps_io *out);

/* /proc/PID/cgroup: the cgroup v2 path ("0::/x") and the v1 memory controller path
 * ("N:...memory...:/x"). Either output is set to "" when absent. Paths longer than the
 * output or containing ".." components (outside our cgroup namespace) are treated as
 * absent. Returns 0 (even when neither is there) or -1 on malformed lines. */
int ps_parse_cgroup(const char *buf, size_t len, char *v2path, size_t v2cap, char *v1mem,
                    size_t v1cap);

/* A cgroup memory limit file: v2 memory.max ("max" or bytes) or v1
 * memory.limit_in_bytes (bytes; the kernel writes a huge page-rounded number for
 * "no limit", which the caller's min() with MemTotal absorbs). "max" → PS_UNLIMITED. */
int ps_parse_mem_limit(const char *buf, size_t len, uint64_t *limit);

/* A pid file: optional blanks, a positive decimal PID, optional blanks/newlines.
 * Anything else fails. */
int ps_parse_pid_text(const char *buf, size_t len, long long *pid);

/* Turn a /proc/PID/cmdline buffer (NUL-separated arguments) into one line joined with
 * spaces, in place; trailing NULs are dropped. Returns the new length. buf[len] must be
 * writable (it receives the terminating NUL). */
size_t ps_cmdline_join(char *buf, size_t len);

/* Copy a process name into a metric-key-safe form: [A-Za-z0-9_-] kept, anything else
 * becomes '_'. Empty input gives "process". */
void ps_sanitize_key(const char *in, char *out, size_t outcap);

/* 1 when key can be the KEY of process-status.GROUP_KEY.METRIC under Mackerel's metric
 * name rule ^[-a-zA-Z0-9_.]+$: letters, digits, '-' and '_', in parts joined by single
 * dots (no leading, trailing or doubled dot, which would make empty name parts). */
int ps_key_valid(const char *key);

/* ---- I/O helpers (not used by the fuzz target) ---- */

/* Read up to cap-1 bytes of a (proc) file and NUL-terminate. Returns the length, or -1
 * with errno set. A file that fills the buffer sets *truncated (may be NULL). */
ssize_t ps_read_file(const char *path, char *buf, size_t cap, int *truncated);

/* Number of entries of /proc/PID/fd (path given). Uses the entry count the kernel
 * reports as the directory size on procfs (Linux ≥ 6.2), else getdents64 with a stack
 * buffer. Returns -1 with errno on failure. */
long long ps_count_fds(const char *fd_dir);

#endif
