/* logdir: the files of a relaxlogs log directory and the rotation state
 * machine that moves from one file to the next.
 *
 * Rotation is multi-step work that can fail half-way (disk full, directory
 * removed): it is an explicit state machine in the manner of s6-log. Each step
 * is idempotent and logdir_step() resumes at the step that failed, so after a
 * retry nothing is done twice and nothing is skipped. The order guarantees
 * that `current` always points at a file that exists and that a file is only
 * handed to the compressor after `current` has moved away from it:
 *
 *   LD_OPEN    choose a unique name for the new file and create it (O_EXCL;
 *              the log directory is recreated first if it has gone)
 *   LD_LINK    symlink(name, ".current.tmp") + rename onto "current"
 *   LD_FINISH  close the previous file; queue it for --compress
 *   LD_PURGE   max-age / max-files retention (best effort, never retried)
 *
 * A reopen (SIGHUP, or the file was found unlinked) runs the same machine with
 * the same name and O_APPEND instead of a new one. */
#ifndef RELAXLOGS_LOGDIR_H
#define RELAXLOGS_LOGDIR_H

#include <stddef.h>
#include <stdint.h>

#include "compress.h"
#include "period.h"

struct logdir_cfg {
    const char *dir;     /* log directory */
    int64_t rotation;    /* period length in seconds (> 0) */
    int64_t max_age;     /* seconds; 0 = no age-based purge */
    long long max_files; /* 0 = no count-based purge */
    uint64_t max_size;   /* bytes; 0 = no size cap */
    int utc;
    int compress;
};

enum ld_step { LD_IDLE, LD_OPEN, LD_LINK, LD_FINISH, LD_PURGE };
enum ld_kind { LD_NEW_PERIOD, LD_NEXT_SEQ, LD_REOPEN };

#define LD_NAME_MAX 64

struct logdir {
    const struct logdir_cfg *cfg;
    int fd;                 /* file being written; -1 before init */
    struct period cur;      /* its period */
    unsigned seq;           /* its ".N" suffix, 0 for none */
    char name[LD_NAME_MAX]; /* its name inside dir */
    uint64_t size;          /* its size in bytes */

    /* rotation in progress (step != LD_IDLE) */
    enum ld_step step;
    enum ld_kind kind;
    struct period next;
    unsigned next_seq;
    char next_name[LD_NAME_MAX];
    int next_fd;

    struct compressor *comp; /* NULL unless cfg->compress */
    char err[512];           /* last failure, for the caller to report */
};

/* Prepare the directory (create it, remove stale temp files), open the file
 * for the period containing now (appending to it if this period's file
 * already exists from an earlier run), point `current` at it, purge, and
 * queue finished uncompressed files for --compress. Returns 0, or -1 with a
 * message in ld->err (startup errors are fatal for the caller). */
int logdir_init(struct logdir *ld, const struct logdir_cfg *cfg, int64_t now);

/* Begin a rotation: to period p (LD_NEW_PERIOD), to the next ".N" file of the
 * current period (LD_NEXT_SEQ: SIGALRM, --max-size) or reopening the current
 * name (LD_REOPEN: SIGHUP). A rotation already in progress is finished first
 * by the caller (logdir_step until 0). */
void logdir_begin(struct logdir *ld, enum ld_kind kind, const struct period *p);

/* Run the pending rotation steps. Returns 0 when idle (rotation complete), -1
 * if a step failed (message in ld->err, errno set); call again later. */
int logdir_step(struct logdir *ld, int64_t now);

/* Retention: remove log.* files older than max-age by mtime and the oldest
 * beyond max-files, never the file being written, `current` or other files. */
void logdir_purge(struct logdir *ld, int64_t now);

/* Finish: close the file, wait for queued compression. */
void logdir_close(struct logdir *ld);

#endif
