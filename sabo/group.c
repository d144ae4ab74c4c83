/* group: lock-file membership of a sabo budget group (see group.h). */
#include "group.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A "_sabo_<bw>_..." file nobody holds is a member that died between create
 * and rename; remove it once it is clearly not a join in progress. */
#define STALE_TEMP_SECONDS 60

static void random_unique(char *unique)
{
    unsigned char rnd[LOCKNAME_UNIQUE_LEN];
    size_t got = 0;
    while (got < sizeof rnd) {
        ssize_t n = getrandom(rnd + got, sizeof rnd - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got < sizeof rnd) {
        /* No entropy source: pid and time keep it unique enough per host. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
        for (size_t i = got; i < sizeof rnd; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            rnd[i] = (unsigned char)(x >> 56);
        }
    }
    lockname_unique(unique, rnd);
}

/* Create, lock and publish one unit under name. Returns the locked fd or -1. */
static int publish_unit(int dirfd, const char *name)
{
    char tmp[LOCKNAME_MAX + 1];
    snprintf(tmp, sizeof tmp, "_%s", name);
    int fd = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0 || renameat(dirfd, tmp, dirfd, name) < 0) {
        int e = errno;
        unlinkat(dirfd, tmp, 0);
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* An inotify fd watching dir, or -1 (the periodic scan still works). */
static int start_watch(const char *dir)
{
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd >= 0 &&
        inotify_add_watch(fd, dir,
                          IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CLOSE_WRITE |
                              IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

int group_join(struct group *g, const char *dir, uint64_t bw, unsigned weight, char *err,
               size_t errlen)
{
    memset(g, 0, sizeof *g);
    g->dirfd = -1;
    g->inotify_fd = -1;
    g->bw = bw;
    g->weight = weight < 1 ? 1 : weight > LOCKNAME_MAX_WEIGHT ? LOCKNAME_MAX_WEIGHT : weight;

    g->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (g->dirfd < 0) {
        snprintf(err, errlen, "cannot open work dir %s: %s", dir, strerror(errno));
        return -1;
    }
    int scanfd = fcntl(g->dirfd, F_DUPFD_CLOEXEC, 3);
    if (scanfd < 0 || !(g->scan_dir = fdopendir(scanfd))) {
        snprintf(err, errlen, "cannot read work dir %s: %s", dir, strerror(errno));
        if (scanfd >= 0)
            close(scanfd);
        goto fail;
    }
    /* The original reads the directory first, so an unreadable dir fails
     * here rather than at the first rebalance. */
    errno = 0;
    if (!readdir(g->scan_dir) && errno) {
        snprintf(err, errlen, "cannot read work dir %s: %s", dir, strerror(errno));
        goto fail;
    }
    struct stat dst;
    if (fstat(g->dirfd, &dst) == 0) {
        g->dir_dev = dst.st_dev;
        g->dir_ino = dst.st_ino;
    }
    g->dir = strdup(dir);
    if (!g->dir) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* Watch before joining so no member's arrival is missed. */
    g->inotify_fd = start_watch(dir);

    random_unique(g->unique);
    for (unsigned u = 1; u <= g->weight; u++) {
        struct lockname ln = {.bw = bw, .pid = (long)getpid(), .weight = g->weight, .unit = u};
        memcpy(ln.unique, g->unique, sizeof ln.unique);
        char *name = g->names[u - 1];
        if (lockname_format(name, LOCKNAME_MAX, &ln) < 0) {
            snprintf(err, errlen, "lock file name too long");
            goto fail;
        }
        int fd = publish_unit(g->dirfd, name);
        if (fd < 0) {
            snprintf(err, errlen, "cannot create lock file in work dir %s: %s", dir,
                     strerror(errno));
            goto fail;
        }
        g->fds[g->held++] = fd;
    }
    return 0;

fail:
    group_leave(g);
    return -1;
}

/* Is the directory we joined gone: removed (no links left), or no longer the
 * one at its path (moved away, replaced)? An unreadable path is not "gone". */
static int dir_gone(const struct group *g)
{
    struct stat st;
    if (fstat(g->dirfd, &st) < 0 || st.st_nlink == 0)
        return 1;
    if (stat(g->dir, &st) < 0)
        return errno == ENOENT || errno == ENOTDIR;
    return st.st_dev != g->dir_dev || st.st_ino != g->dir_ino;
}

/* A directory is at the path again: move our units into it. Returns 0, or -1
 * when there is none (or it cannot be joined yet) with everything as it was. */
static int rejoin(struct group *g)
{
    int nfd = open(g->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (nfd < 0)
        return -1;
    struct stat st;
    int scanfd = -1, ino = -1, fds[LOCKNAME_MAX_WEIGHT];
    unsigned made = 0;
    DIR *sd = NULL;
    if (fstat(nfd, &st) < 0 || st.st_nlink == 0)
        goto fail;
    scanfd = fcntl(nfd, F_DUPFD_CLOEXEC, 3);
    if (scanfd < 0 || !(sd = fdopendir(scanfd)))
        goto fail;
    scanfd = -1;
    ino = start_watch(g->dir);
    for (; made < g->held; made++)
        if ((fds[made] = publish_unit(nfd, g->names[made])) < 0)
            goto fail;
    for (unsigned i = 0; i < g->held; i++) {
        unlinkat(g->dirfd, g->names[i], 0); /* the old one may only have moved */
        close(g->fds[i]);
        g->fds[i] = fds[i];
    }
    closedir(g->scan_dir);
    close(g->dirfd);
    if (g->inotify_fd >= 0)
        close(g->inotify_fd);
    g->scan_dir = sd;
    g->dirfd = nfd;
    g->inotify_fd = ino;
    g->dir_dev = st.st_dev;
    g->dir_ino = st.st_ino;
    g->missing_since_ns = 0;
    g->rejoins++;
    return 0;

fail:
    while (made > 0) {
        made--;
        unlinkat(nfd, g->names[made], 0);
        close(fds[made]);
    }
    if (ino >= 0)
        close(ino);
    if (sd)
        closedir(sd);
    if (scanfd >= 0)
        close(scanfd);
    close(nfd);
    return -1;
}

/* Units of ours that someone unlinked: re-create them once they have been
 * missing for the grace period (so others keep counting us). Returns how many
 * are still missing. */
static unsigned repair_units(struct group *g)
{
    unsigned missing = 0;
    for (unsigned i = 0; i < g->held; i++) {
        struct stat st;
        if (fstat(g->fds[i], &st) == 0 && st.st_nlink == 0)
            missing++;
    }
    if (missing == 0) {
        g->missing_since_ns = 0;
        return 0;
    }
    int64_t now = mono_ns();
    if (g->missing_since_ns == 0)
        g->missing_since_ns = now;
    if (now - g->missing_since_ns < GROUP_REPAIR_DELAY_NS || dir_gone(g))
        return missing;
    for (unsigned i = 0; i < g->held; i++) {
        struct stat st;
        if (fstat(g->fds[i], &st) == 0 && st.st_nlink == 0) {
            int fd = publish_unit(g->dirfd, g->names[i]);
            if (fd >= 0) {
                close(g->fds[i]);
                g->fds[i] = fd;
                missing--;
            }
        }
    }
    if (missing == 0)
        g->missing_since_ns = 0;
    return missing;
}

int group_scan(struct group *g, unsigned *units)
{
    char prefix[48];
    int plen = lockname_group_prefix(prefix, sizeof prefix, g->bw);
    unsigned locked = 0;
    struct dirent *de;

    if (dir_gone(g) && rejoin(g) < 0)
        return GROUP_DIR_GONE;
    if (repair_units(g) > 0)
        return GROUP_UNITS_MISSING;
    rewinddir(g->scan_dir);
    for (;;) {
        errno = 0;
        de = readdir(g->scan_dir);
        if (!de) {
            if (errno)
                return -1;
            break;
        }
        const char *name = de->d_name;
        int temp = name[0] == '_';
        if (strncmp(name + temp, prefix, (size_t)plen) != 0)
            continue;
        if (de->d_type == DT_DIR)
            continue;
        int fd = openat(g->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0)
            continue; /* vanished, or not ours to open: the original skips it too */
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            continue;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            if (!temp)
                locked++;
        } else if (!temp || time(NULL) - st.st_mtime > STALE_TEMP_SECONDS) {
            /* Nobody holds it: its owner is gone. Unlink while we hold the
             * lock so a concurrent scanner cannot count it in between. */
            if (unlinkat(g->dirfd, name, 0) == 0)
                g->reaped++;
        }
        close(fd);
    }
    *units = locked < g->weight ? g->weight : locked;
    return GROUP_OK;
}

int group_drain_events(struct group *g)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    char prefix[48];
    int plen = lockname_group_prefix(prefix, sizeof prefix, g->bw);
    int relevant = 0;

    if (g->inotify_fd < 0)
        return 0;
    for (;;) {
        ssize_t n = read(g->inotify_fd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
            if (ev->mask & (IN_Q_OVERFLOW | IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
                relevant = 1;
            else if (ev->len && strncmp(ev->name, prefix, (size_t)plen) == 0)
                relevant = 1;
            p += sizeof *ev + ev->len;
        }
    }
    return relevant;
}

void group_leave(struct group *g)
{
    /* Unlink before closing: once the lock is released the name must already
     * be gone, or a scanner would take the file for a dead member's. */
    for (unsigned i = 0; i < g->held; i++) {
        if (g->dirfd >= 0)
            unlinkat(g->dirfd, g->names[i], 0);
        close(g->fds[i]);
    }
    g->held = 0;
    if (g->inotify_fd >= 0)
        close(g->inotify_fd);
    g->inotify_fd = -1;
    if (g->scan_dir)
        closedir(g->scan_dir);
    g->scan_dir = NULL;
    if (g->dirfd >= 0)
        close(g->dirfd);
    g->dirfd = -1;
    free(g->dir);
    g->dir = NULL;
}
