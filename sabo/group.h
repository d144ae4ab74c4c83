/* group: membership of a sabo budget group through lock files in the work dir.
 *
 * Joining creates one locked file per weight unit (see lockname.h) with the
 * original's protocol: create "_<name>", flock(LOCK_EX|LOCK_NB), rename to
 * "<name>", so a name that counts is always already locked. A scan counts the
 * group's files that are still locked and removes the ones it can lock (their
 * owner is dead). An inotify watch on the directory tells us when to scan
 * again: a member joining (rename), leaving (unlink) or dying (its lock fd is
 * closed by the kernel: IN_CLOSE_WRITE), so shares change within milliseconds.
 * Without inotify the caller's periodic scan still works.
 *
 * The directory itself can go away under us (rm -rf, a tmp cleaner). Then no
 * member can count the others, so a scan says so instead of reporting us alone;
 * when a directory is back at the path, the next scan joins it. Our own units
 * unlinked by someone else are re-created, but only after a grace period and
 * only into a directory that is still there: re-creating at once would refill a
 * directory that `rm -rf` has just emptied and make its rmdir fail. */
#ifndef SABO_GROUP_H
#define SABO_GROUP_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lockname.h"

struct group {
    char *dir;      /* the work dir as given (owned) */
    int dirfd;      /* O_DIRECTORY fd of dir */
    DIR *scan_dir;  /* readdir handle on a dup of dirfd, rewound every scan */
    int inotify_fd; /* -1 when inotify is unavailable */
    uint64_t bw;
    unsigned weight;
    char unique[LOCKNAME_UNIQUE_LEN + 1];
    int fds[LOCKNAME_MAX_WEIGHT];                 /* our locked units */
    char names[LOCKNAME_MAX_WEIGHT][LOCKNAME_MAX]; /* their final names */
    unsigned held;                                /* how many of fds are valid */
    unsigned reaped;                              /* dead units removed so far */
    dev_t dir_dev;                                /* identity of the joined dir */
    ino_t dir_ino;
    int64_t missing_since_ns; /* CLOCK_MONOTONIC when a unit of ours went missing, or 0 */
    unsigned rejoins;         /* times we joined a new directory at the path */
};

/* How long a unit of ours may be missing before it is re-created. */
#define GROUP_REPAIR_DELAY_NS 100000000LL

/* group_scan results besides -1 (error). Only GROUP_OK comes with a count. */
enum group_status {
    GROUP_OK = 0,
    GROUP_DIR_GONE = 1,       /* the work dir was removed (or moved) and is not back */
    GROUP_UNITS_MISSING = 2,  /* units of ours were unlinked; re-created soon */
};

/* Open dir, start the inotify watch and create/lock/rename our weight units.
 * Returns 0, or -1 with a one-line reason in err (everything undone). */
int group_join(struct group *g, const char *dir, uint64_t bw, unsigned weight, char *err,
               size_t errlen);

/* Count the locked units of the group (ours included) into *units and remove
 * unlocked ones. Returns GROUP_OK with *units (never less than our own weight);
 * GROUP_DIR_GONE when the work dir no longer exists at its path (a new directory
 * there is joined instead, counting rejoins, and then GROUP_OK);
 * GROUP_UNITS_MISSING while units of ours unlinked by someone else wait out
 * GROUP_REPAIR_DELAY_NS before they are re-created; or -1 with errno set when
 * the directory cannot be read. *units is set only with GROUP_OK. */
int group_scan(struct group *g, unsigned *units);

/* Read pending inotify events; returns 1 if any concerns the group (or the
 * queue overflowed), 0 if none, never blocks. */
int group_drain_events(struct group *g);

/* Remove our lock files, close everything. Safe to call twice. */
void group_leave(struct group *g);

#endif
