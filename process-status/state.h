/* state: the plugin's memory between runs (CPU and counter baselines), kept in one
 * small text file per metric key inside a per-user 0700 directory.
 *
 * The file records which process it belongs to (PID and start time), so a reused PID
 * or a restarted service starts afresh instead of reporting a nonsense delta. It is
 * written to a temporary file and renamed into place, and opened with O_NOFOLLOW, so
 * concurrent runs never see half a file and a planted symlink is never followed. */
#ifndef OPSKIT_PS_STATE_H
#define OPSKIT_PS_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "procfs.h"

#define PS_STATE_KEY_MAX 200

struct ps_state {
    char key[PS_STATE_KEY_MAX + 1]; /* escaped metric key (the file name) */
    long long pid;
    uint64_t start;       /* /proc/PID/stat field 22 */
    int children;         /* 1 when measured with --include-children */
    uint64_t time_ns;     /* CLOCK_BOOTTIME at the measurement */
    uint64_t proc_ticks;  /* process (tree) CPU time */
    uint64_t total_ticks; /* machine CPU time from /proc/stat */
    int has_ctxt;
    uint64_t voluntary, nonvoluntary;
    int has_io;
    struct ps_io io;
};

/* Escape a metric key into a file name: [A-Za-z0-9_-] and '.' (not leading) are kept,
 * other bytes become %XX. Returns -1 when the result would exceed PS_STATE_KEY_MAX. */
int ps_state_escape_key(const char *key, char *out, size_t cap);

/* Parse a state file. Returns 0, or -1 with a reason in err. */
int ps_state_parse(const char *buf, size_t len, struct ps_state *st, char *err,
                   size_t errlen);

/* Serialise; returns the length (0 if cap is too small). */
size_t ps_state_format(const struct ps_state *st, char *buf, size_t cap);

/* Open (creating it 0700 if needed) and vet the state directory: dir if not NULL
 * (an explicit --state-dir / PROCESS_STATUS_STATE_DIR), else
 * $XDG_RUNTIME_DIR/mackerel-plugin-linux-process-status or
 * ${TMPDIR:-/tmp}/mackerel-plugin-linux-process-status-<uid>. The directory must be
 * ours, not a symlink, and not writable by others (the default one not accessible by
 * others at all). When the default is unusable (another user created it first in a
 * shared $TMPDIR, say), fall back to $HOME/.cache/mackerel-plugin-linux-process-status
 * (HOME when it is ours, else /etc/passwd's) and say why in note (else note is "").
 * Returns an O_DIRECTORY fd, or -1 with a message in err. The chosen path goes to
 * path. */
int ps_state_dir_open(const char *dir, char *path, size_t pathcap, char *note, size_t notelen,
                      char *err, size_t errlen);

/* Load name from dirfd: 1 loaded, 0 no such file, -1 unusable (reason in err: corrupt,
 * a symlink, not a regular file, unreadable). */
int ps_state_load(int dirfd, const char *name, struct ps_state *st, char *err, size_t errlen);

/* Write name atomically (temp file + rename). Returns 0 or -1 with a reason in err. */
int ps_state_save(int dirfd, const char *name, const struct ps_state *st, char *err,
                  size_t errlen);

#endif
