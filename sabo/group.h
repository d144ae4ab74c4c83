/* group: membership of a sabo budget group through lock files in the work dir.
 *
 * Joining creates one locked file per weight unit (see lockname.h) with the
 * original's protocol: create "_<name>", flock(LOCK_EX|LOCK_NB), rename to
 * "<name>", so a name that counts is always already locked. A scan counts the
 * group's files that are still locked and removes the ones it can lock (their
 * owner is dead). An inotify watch on the directory tells us when to scan
 * again: a member joining (rename), leaving (unlink) or dying (its lock fd is
 * closed by the kernel: IN_CLOSE_WRITE), so shares change within milliseconds.
 * Without inotify the caller's periodic scan still works. */
#ifndef SABO_GROUP_H
#define SABO_GROUP_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>

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
};

/* Open dir, start the inotify watch and create/lock/rename our weight units.
 * Returns 0, or -1 with a one-line reason in err (everything undone). */
int group_join(struct group *g, const char *dir, uint64_t bw, unsigned weight, char *err,
               size_t errlen);

/* Count the locked units of the group (ours included) into *units and remove
 * unlocked ones. Units of ours found unlinked by someone else are re-created.
 * Returns 0, or -1 with errno set when the directory cannot be read. *units is
 * never less than our own weight. */
int group_scan(struct group *g, unsigned *units);

/* Read pending inotify events; returns 1 if any concerns the group (or the
 * queue overflowed), 0 if none, never blocks. */
int group_drain_events(struct group *g);

/* Remove our lock files, close everything. Safe to call twice. */
void group_leave(struct group *g);

#endif
