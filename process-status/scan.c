/* scan: /proc walks for --pattern and --include-children. */
#include "scan.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procfs.h"

/* A /proc entry name that is a PID. */
static long long entry_pid(const char *name)
{
    long long v = 0;
    if (!*name)
        return 0;
    for (const char *p = name; *p; p++) {
        if (*p < '0' || *p > '9' || v > 0x7fffffff)
            return 0;
        v = v * 10 + (*p - '0');
    }
    return v;
}

static DIR *open_proc(const char *proc_root, char *err, size_t errlen)
{
    DIR *d = opendir(proc_root);
    if (!d)
        snprintf(err, errlen, "cannot list %s: %s", proc_root, strerror(errno));
    return d;
}

#define MAX_ANCESTORS 256

/* Our own PID and those of our ancestors up to init: the pattern is on their command
 * lines too (`timeout 5 plugin --pattern x`, `sh -c '...'`), so they must never be the
 * match. Returns how many were stored. */
static size_t own_lineage(const char *proc_root, long long *out)
{
    char path[4096], statbuf[1024];
    size_t n = 0;
    long long pid = (long long)getpid();
    out[n++] = pid;
    pid = (long long)getppid();
    while (pid > 0 && n < MAX_ANCESTORS) {
        struct ps_pid_stat st;
        out[n++] = pid;
        snprintf(path, sizeof path, "%s/%lld/stat", proc_root, pid);
        ssize_t r = ps_read_file(path, statbuf, sizeof statbuf, NULL);
        if (r <= 0 || ps_parse_pid_stat(statbuf, (size_t)r, &st) < 0 || st.ppid == pid)
            break;
        pid = st.ppid;
    }
    return n;
}

static int in_list(const long long *list, size_t n, long long pid)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == pid)
            return 1;
    return 0;
}

long long ps_find_by_pattern(const char *proc_root, const regex_t *re, int oldest, char *err,
                             size_t errlen)
{
    DIR *d = open_proc(proc_root, err, errlen);
    if (!d)
        return -1;
    long long lineage[MAX_ANCESTORS], best = 0;
    size_t nlineage = own_lineage(proc_root, lineage);
    unsigned long long best_start = 0;
    static char cmd[32768];
    char path[4096], statbuf[1024];
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long long pid = entry_pid(e->d_name);
        if (pid <= 0 || in_list(lineage, nlineage, pid))
            continue;
        snprintf(path, sizeof path, "%s/%lld/cmdline", proc_root, pid);
        ssize_t n = ps_read_file(path, cmd, sizeof cmd, NULL);
        if (n <= 0)
            continue; /* gone, kernel thread or zombie */
        if (ps_cmdline_join(cmd, (size_t)n) == 0)
            continue;
        if (regexec(re, cmd, 0, NULL, 0) != 0)
            continue;
        struct ps_pid_stat st;
        snprintf(path, sizeof path, "%s/%lld/stat", proc_root, pid);
        n = ps_read_file(path, statbuf, sizeof statbuf, NULL);
        if (n <= 0 || ps_parse_pid_stat(statbuf, (size_t)n, &st) < 0)
            continue;
        int better;
        if (best == 0)
            better = 1;
        else if (oldest)
            better = st.starttime < best_start || (st.starttime == best_start && pid < best);
        else
            better = st.starttime > best_start || (st.starttime == best_start && pid > best);
        if (better) {
            best = pid;
            best_start = st.starttime;
        }
    }
    closedir(d);
    return best;
}

struct link {
    long long pid, ppid;
    int member;
};

int ps_tree_collect(const char *proc_root, long long root, long long **pids, size_t *n,
                    char *err, size_t errlen)
{
    DIR *d = open_proc(proc_root, err, errlen);
    if (!d)
        return -1;
    struct link *links = NULL;
    size_t nlinks = 0, cap = 0, nmembers = 1;
    char path[4096], statbuf[1024];
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long long pid = entry_pid(e->d_name);
        struct ps_pid_stat st;
        if (pid <= 0 || pid == root)
            continue;
        snprintf(path, sizeof path, "%s/%lld/stat", proc_root, pid);
        ssize_t r = ps_read_file(path, statbuf, sizeof statbuf, NULL);
        if (r <= 0 || ps_parse_pid_stat(statbuf, (size_t)r, &st) < 0)
            continue;
        if (nlinks == cap) {
            size_t ncap = cap ? cap * 2 : 256;
            struct link *nl = realloc(links, ncap * sizeof *nl);
            if (!nl) {
                free(links);
                closedir(d);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            links = nl;
            cap = ncap;
        }
        links[nlinks++] = (struct link){pid, st.ppid, 0};
    }
    closedir(d);

    /* Mark descendants: repeat until a pass adds nothing (passes = tree depth). */
    long long *out = malloc(sizeof *out);
    if (!out) {
        free(links);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    out[0] = root;
    int changed = 1;
    while (changed) {
        changed = 0;
        for (size_t i = 0; i < nlinks; i++) {
            if (links[i].member)
                continue;
            for (size_t j = 0; j < nmembers; j++) {
                if (links[i].ppid == out[j]) {
                    long long *no = realloc(out, (nmembers + 1) * sizeof *no);
                    if (!no) {
                        free(out);
                        free(links);
                        snprintf(err, errlen, "out of memory");
                        return -1;
                    }
                    out = no;
                    out[nmembers++] = links[i].pid;
                    links[i].member = 1;
                    changed = 1;
                    break;
                }
            }
        }
    }
    free(links);
    *pids = out;
    *n = nmembers;
    return 0;
}
