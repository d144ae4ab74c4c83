/* logdir: opening, linking, rotating, purging and compressing the files of a
 * relaxlogs log directory. The rotation state machine is described in
 * logdir.h; every step here is idempotent so that a failed step can simply be
 * run again a second later. */
#include "logdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CURRENT_LINK "current"
#define CURRENT_TMP ".current.tmp"

static int ld_path(const struct logdir *ld, const char *name, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/%s", ld->cfg->dir, name);
    if (n < 0 || (size_t)n >= len) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* mkdir -p */
static int mkdir_p(const char *dir)
{
    char buf[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf) {
        errno = n ? ENAMETOOLONG : ENOENT;
        return -1;
    }
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST) return -1;
        buf[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) < 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static int exists(const struct logdir *ld, const char *name)
{
    char path[4096];
    struct stat st;
    return ld_path(ld, name, path, sizeof path) == 0 && lstat(path, &st) == 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int fail(struct logdir *ld, const char *what, const char *name)
{
    int e = errno;
    snprintf(ld->err, sizeof ld->err, "%s %s/%s: %s", what, ld->cfg->dir, name, strerror(e));
    errno = e;
    return -1;
}

/* open(2) inside the directory, recreating the directory once if it is gone. */
static int ld_open(struct logdir *ld, const char *name, int flags)
{
    char path[4096];
    if (ld_path(ld, name, path, sizeof path) < 0) return -1;
    int fd = open(path, flags | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT) {
        if (mkdir_p(ld->cfg->dir) < 0) return -1;
        fd = open(path, flags | O_WRONLY | O_CLOEXEC, 0644);
    }
    return fd;
}

static int step_open(struct logdir *ld)
{
    if (ld->kind == LD_REOPEN) {
        int fd = ld_open(ld, ld->name, O_CREAT | O_APPEND);
        if (fd < 0) return fail(ld, "reopen", ld->name);
        snprintf(ld->next_name, sizeof ld->next_name, "%s", ld->name);
        ld->next_fd = fd;
        return 0;
    }
    /* A fresh name that no file (plain or compressed) has: a DST repeat, a
     * clock step backwards, SIGALRM or --max-size within one period all end
     * up at the next free ".N". */
    for (int tries = 0; tries < 100000; tries++, ld->next_seq++) {
        char name[LD_NAME_MAX], gz[LD_NAME_MAX + 8];
        if (period_name(&ld->next, ld->next_seq, name, sizeof name) < 0) {
            errno = ENAMETOOLONG;
            return fail(ld, "create", "log.*");
        }
        snprintf(gz, sizeof gz, "%s.gz", name);
        if (exists(ld, gz)) continue;
        int fd = ld_open(ld, name, O_CREAT | O_EXCL | O_APPEND);
        if (fd < 0) {
            if (errno == EEXIST) continue;
            return fail(ld, "create", name);
        }
        snprintf(ld->next_name, sizeof ld->next_name, "%s", name);
        ld->next_fd = fd;
        return 0;
    }
    errno = EEXIST;
    return fail(ld, "create", "log.*");
}

static int step_link(struct logdir *ld)
{
    char tmp[4096], cur[4096];
    if (ld_path(ld, CURRENT_TMP, tmp, sizeof tmp) < 0 ||
        ld_path(ld, CURRENT_LINK, cur, sizeof cur) < 0)
        return fail(ld, "symlink", CURRENT_LINK);
    if (unlink(tmp) < 0 && errno != ENOENT) return fail(ld, "unlink", CURRENT_TMP);
    if (symlink(ld->next_name, tmp) < 0) {
        if (errno != ENOENT || mkdir_p(ld->cfg->dir) < 0 || symlink(ld->next_name, tmp) < 0)
            return fail(ld, "symlink", CURRENT_TMP);
    }
    /* A regular file called current (multilog, svlogd and s6-log keep their
     * live log there) is kept under another name rather than replaced. */
    struct stat st;
    if (lstat(cur, &st) == 0 && S_ISREG(st.st_mode)) {
        char saved[4096], name[64];
        snprintf(name, sizeof name, "current.saved.%lld", (long long)st.st_mtime);
        if (ld_path(ld, name, saved, sizeof saved) < 0 || rename(cur, saved) < 0)
            return fail(ld, "rename away", CURRENT_LINK);
        fprintf(stderr, "relaxlogs: %s/current was a regular file; kept as %s\n", ld->cfg->dir,
                name);
    }
    if (rename(tmp, cur) < 0) return fail(ld, "rename onto", CURRENT_LINK);
    return 0;
}

static void compress_scan(struct logdir *ld)
{
    if (ld->comp == NULL) return;
    DIR *d = opendir(ld->cfg->dir);
    if (d == NULL) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t wall;
        unsigned seq;
        int gz;
        if (period_parse_name(e->d_name, &wall, &seq, &gz) < 0 || gz) continue;
        if (strcmp(e->d_name, ld->name) == 0 ||
            (ld->step != LD_IDLE && strcmp(e->d_name, ld->next_name) == 0))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        compress_enqueue(ld->comp, e->d_name);
    }
    closedir(d);
}

static void step_finish(struct logdir *ld)
{
    char old[LD_NAME_MAX];
    snprintf(old, sizeof old, "%s", ld->name);
    if (ld->fd >= 0) close(ld->fd);
    ld->fd = ld->next_fd;
    ld->next_fd = -1;
    snprintf(ld->name, sizeof ld->name, "%s", ld->next_name);
    ld->cur = ld->next;
    ld->seq = ld->next_seq;
    struct stat st;
    ld->size = fstat(ld->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    if (ld->comp != NULL && ld->kind != LD_REOPEN && old[0] != '\0' && strcmp(old, ld->name) != 0)
        compress_enqueue(ld->comp, old);
}

void logdir_begin(struct logdir *ld, enum ld_kind kind, const struct period *p)
{
    ld->kind = kind;
    ld->step = LD_OPEN;
    ld->next = kind == LD_NEW_PERIOD ? *p : ld->cur;
    ld->next_seq = kind == LD_NEXT_SEQ ? ld->seq + 1 : kind == LD_REOPEN ? ld->seq : 0;
    ld->next_name[0] = '\0';
    ld->next_fd = -1;
}

int logdir_step(struct logdir *ld, int64_t now)
{
    for (;;) {
        switch (ld->step) {
        case LD_IDLE:
            return 0;
        case LD_OPEN:
            if (ld->next_fd < 0 && step_open(ld) < 0) return -1;
            ld->step = LD_LINK;
            break;
        case LD_LINK:
            if (step_link(ld) < 0) return -1;
            ld->step = LD_FINISH;
            break;
        case LD_FINISH:
            step_finish(ld);
            ld->step = LD_PURGE;
            break;
        case LD_PURGE:
            ld->step = LD_IDLE;
            if (ld->kind != LD_REOPEN) {
                logdir_purge(ld, now);
                compress_scan(ld);
            }
            return 0;
        }
    }
}

struct entry {
    int64_t wall;
    unsigned seq;
    char name[LD_NAME_MAX + 8];
};

static int entry_newest_first(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->wall != y->wall) return x->wall < y->wall ? 1 : -1;
    if (x->seq != y->seq) return x->seq < y->seq ? 1 : -1;
    return strcmp(x->name, y->name);
}

void logdir_purge(struct logdir *ld, int64_t now)
{
    const struct logdir_cfg *cfg = ld->cfg;
    if (cfg->max_age <= 0 && cfg->max_files <= 0) return;
    DIR *d = opendir(cfg->dir);
    if (d == NULL) return;
    struct entry *list = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        if (strncmp(nm, "log.", 4) != 0 || ends_with(nm, ".tmp")) continue;
        if (strcmp(nm, ld->name) == 0 ||
            (ld->step != LD_IDLE && ld->next_name[0] && strcmp(nm, ld->next_name) == 0))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), nm, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) continue;
        if (cfg->max_age > 0 && (int64_t)st.st_mtime < now - cfg->max_age) {
            if (unlinkat(dirfd(d), nm, 0) < 0 && errno != ENOENT)
                fprintf(stderr, "relaxlogs: purge %s/%s: %s\n", cfg->dir, nm, strerror(errno));
            continue;
        }
        int64_t wall;
        unsigned seq;
        int gz;
        if (cfg->max_files <= 0 || period_parse_name(nm, &wall, &seq, &gz) < 0 ||
            strlen(nm) >= sizeof list[0].name)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct entry *nl = realloc(list, ncap * sizeof *nl);
            if (nl == NULL) break;
            list = nl;
            cap = ncap;
        }
        list[n].wall = wall;
        list[n].seq = seq;
        memcpy(list[n].name, nm, strlen(nm) + 1); /* length checked above */
        n++;
    }
    if (cfg->max_files > 0 && n > 0) {
        qsort(list, n, sizeof *list, entry_newest_first);
        /* The file being written counts as one; X and X.gz are one file. */
        long long kept = 1;
        for (size_t i = 0; i < n; i++) {
            int same = i > 0 && list[i].wall == list[i - 1].wall && list[i].seq == list[i - 1].seq;
            if (!same) kept++;
            if (kept <= cfg->max_files) continue;
            if (unlinkat(dirfd(d), list[i].name, 0) < 0 && errno != ENOENT)
                fprintf(stderr, "relaxlogs: purge %s/%s: %s\n", cfg->dir, list[i].name,
                        strerror(errno));
        }
    }
    free(list);
    closedir(d);
}

/* Startup: the file of this period that an earlier run was writing, if any. */
static int find_resume(struct logdir *ld, const struct period *p, char *name, size_t len,
                       unsigned *seq)
{
    char cur[4096], target[LD_NAME_MAX + 1];
    int64_t wall;
    int gz;
    unsigned s;
    if (ld_path(ld, CURRENT_LINK, cur, sizeof cur) == 0) {
        ssize_t n = readlink(cur, target, sizeof target - 1);
        if (n > 0) {
            target[n] = '\0';
            struct stat st;
            char tp[4096];
            /* mtime: after a DST fall-back the link may name the first
             * 01:00 hour while this is the repeated one. */
            if ((size_t)n < len && period_parse_name(target, &wall, &s, &gz) == 0 && !gz &&
                wall == p->wall && ld_path(ld, target, tp, sizeof tp) == 0 && lstat(tp, &st) == 0 &&
                S_ISREG(st.st_mode) && (int64_t)st.st_mtime >= p->start) {
                memcpy(name, target, (size_t)n + 1);
                *seq = s;
                return 1;
            }
        }
    }
    /* No usable link: the newest file of this period modified since it began. */
    DIR *d = opendir(ld->cfg->dir);
    if (d == NULL) return 0;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        if (nl >= len || period_parse_name(e->d_name, &wall, &s, &gz) < 0 || gz || wall != p->wall)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
            (int64_t)st.st_mtime < p->start)
            continue;
        if (!found || s > *seq) {
            memcpy(name, e->d_name, nl + 1);
            *seq = s;
            found = 1;
        }
    }
    closedir(d);
    return found;
}

int logdir_init(struct logdir *ld, const struct logdir_cfg *cfg, int64_t now)
{
    memset(ld, 0, sizeof *ld);
    ld->cfg = cfg;
    ld->fd = -1;
    ld->next_fd = -1;
    if (mkdir_p(cfg->dir) < 0) {
        snprintf(ld->err, sizeof ld->err, "cannot create log directory %s: %s", cfg->dir,
                 strerror(errno));
        return -1;
    }
    /* Leftovers of a crash: the link being made, half-written .gz files. */
    DIR *d = opendir(cfg->dir);
    if (d == NULL) {
        snprintf(ld->err, sizeof ld->err, "cannot open log directory %s: %s", cfg->dir,
                 strerror(errno));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, CURRENT_TMP) == 0 ||
            (strncmp(e->d_name, "log.", 4) == 0 && ends_with(e->d_name, ".gz.tmp")))
            unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);

    struct period p;
    period_of(now, cfg->rotation, cfg->utc, &p);
    char name[LD_NAME_MAX];
    unsigned seq = 0;
    ld->kind = LD_NEW_PERIOD;
    ld->next = p;
    ld->next_seq = 0;
    if (find_resume(ld, &p, name, sizeof name, &seq)) {
        int fd = ld_open(ld, name, O_CREAT | O_APPEND);
        if (fd < 0) {
            fail(ld, "cannot open", name);
            return -1;
        }
        snprintf(ld->next_name, sizeof ld->next_name, "%s", name);
        ld->next_fd = fd;
        ld->next_seq = seq;
    } else if (step_open(ld) < 0) {
        return -1;
    }
    if (cfg->compress) {
        ld->comp = compress_start(cfg->dir);
        if (ld->comp == NULL) {
            snprintf(ld->err, sizeof ld->err, "cannot start compression thread: %s",
                     strerror(errno));
            close(ld->next_fd);
            return -1;
        }
    }
    ld->step = LD_LINK;
    if (logdir_step(ld, now) < 0) {
        compress_stop(ld->comp, 0);
        ld->comp = NULL;
        close(ld->next_fd);
        return -1;
    }
    return 0;
}

void logdir_close(struct logdir *ld)
{
    if (ld->next_fd >= 0 && ld->next_fd != ld->fd) close(ld->next_fd);
    if (ld->fd >= 0) close(ld->fd);
    ld->fd = ld->next_fd = -1;
    compress_stop(ld->comp, 0); /* queued files are resumed at the next start */
    ld->comp = NULL;
}
