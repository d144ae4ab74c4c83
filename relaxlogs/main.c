/* relaxlogs: the log service of a supervised program. Reads lines on stdin and
 * writes them to time-rotated files log.%Y%m%d%H%M in a directory, with a
 * `current` symlink to the newest and max-age / max-files retention.
 *
 * Data path: the queue is a list of line-aligned blocks (`struct outq`).
 * Without --with-time stdin is read straight into the tail block and lines
 * are only scanned there (zero copy); with --with-time it is read in large
 * batches into `ibuf` and each line is copied behind its prefix. Over-long
 * lines are split in both cases. The queue is written to the current
 * file in big write(2) calls once 1 MiB has accumulated, 50 ms after the
 * oldest queued byte (so a line is in the file within 100 ms), or at
 * EOF/TERM. Rotation requests are markers in the same queue, so every line
 * goes to the file of the period in which it was read even while the disk is
 * full. When writing fails the queue grows up to
 * --buffer-size, then stdin is no longer read (back-pressure), and a write is
 * retried every second. The time is taken once per read batch. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "flags.h"
#include "logdir.h"
#include "period.h"
#include "units.h"

#define MAXLINE (1024 * 1024)         /* longest line written unsplit */
#define IREAD (1024 * 1024)           /* most bytes read at once */
#define IBUF_CAP (MAXLINE + IREAD)    /* a partial line plus one read */
#define BLK_CAP (MAXLINE + 64 * 1024) /* every piece with its prefix fits a block */
#define PREFIX_COPY 32                /* --with-time prefix: 29 bytes, copied as 32 */
#define MIN_READ (64 * 1024)          /* start a new block rather than read less */
#define FLUSH_BYTES (1024 * 1024)
#define FLUSH_NS (50 * 1000000LL) /* half the 100 ms promise: wakeup latency fits in */
#define RETRY_NS (1000 * 1000000LL)
#define REPORT_NS (60 * 1000000000LL)
#define TERM_GRACE_NS (2000 * 1000000LL)
/* stdout mode, input ended, output still failing: nobody will read what is left
 * later (unlike a log dir, whose disk an operator can free), so give up. */
#define STDOUT_GIVE_UP_NS (5000 * 1000000LL)

enum blk_kind { BK_DATA, BK_ROTATE };

/* A block of the output queue. Data blocks hold whole lines only, so a file
 * switch (period, --max-size, SIGALRM) never cuts a line in two. Owned by the
 * queue; freed (or kept as the spare) once written. */
struct blk {
    struct blk *next;
    enum blk_kind kind;
    enum ld_kind rotate;  /* BK_ROTATE: what kind of switch */
    struct period period; /* BK_ROTATE with LD_NEW_PERIOD */
    int started;          /* BK_ROTATE: logdir_begin done */
    size_t len, off;      /* BK_DATA: bytes of whole lines, bytes already written */
    size_t pend;          /* BK_DATA, plain mode, tail block only: bytes of an
                           * incomplete line read after data[len] (not queued yet) */
    char data[];
};

struct outq {
    struct blk *head, *tail, *spare;
    uint64_t bytes; /* queued data not yet written */
    int markers;    /* BK_ROTATE blocks queued */
};

struct config {
    const char *log_dir; /* NULL: stdout */
    long long rotation_min, max_age_min, max_files;
    uint64_t buffer_size, max_size;
    int with_time, utc, compress;
};

struct state {
    struct config cfg;
    struct logdir_cfg ldcfg;
    struct logdir ld;
    int to_stdout;
    struct outq q;
    char *ibuf;
    size_t ilen;
    int eof, reading_done, in_long_line;
    int read_failed;       /* stdin gave an error: treated as EOF, exit status 1 */
    int64_t batch_sec;     /* wall-clock second of the current read batch */
    int64_t checked_sec;   /* second for which the period was last checked */
    struct period qperiod; /* period of the newest queued data */
    char prefix[48];       /* >= PREFIX_COPY */
    int prefix_len;
    int64_t prefix_sec;
    int64_t pending_since; /* monotonic ns when the queue became non-empty */
    int blocked;
    int64_t retry_at, last_report;
    int64_t give_up_at; /* stdout mode: when to stop retrying after the input ended */
    int write_errno;    /* the last failed write's errno */
    uint64_t flush_bytes;
};

static volatile sig_atomic_t sig_term, sig_hup, sig_alrm;

static void on_signal(int sig)
{
    switch (sig) {
    case SIGTERM:
    case SIGINT:
    case SIGQUIT: /* the original flushes on QUIT too */
        sig_term++;
        break;
    case SIGHUP:
        sig_hup = 1;
        break;
    case SIGALRM:
        sig_alrm = 1;
        break;
    }
}

/* The flush, retry and TERM timers measure the real time that ppoll's
 * timeout measures, so read the kernel's monotonic clock directly: an
 * LD_PRELOADed clock (faketime with a frozen or scaled clock, used to test
 * rotation) must move the file names, not stop lines from being flushed. */
static int64_t mono_ns(void)
{
    struct timespec ts;
    if (syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts) != 0) clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t wall_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL) {
        fprintf(stderr, "relaxlogs: out of memory\n");
        exit(1);
    }
    return p;
}

/* ---- output queue ---- */

static struct blk *q_new_data(struct state *s)
{
    struct blk *b = s->q.spare;
    if (b != NULL)
        s->q.spare = NULL;
    else
        b = xmalloc(sizeof *b + BLK_CAP);
    b->next = NULL;
    b->kind = BK_DATA;
    b->len = b->off = b->pend = 0;
    struct blk *old = s->q.tail;
    if (old != NULL)
        old->next = b;
    else
        s->q.head = b;
    s->q.tail = b;
    /* Only the tail holds an incomplete line: move it along. */
    if (old != NULL && old->kind == BK_DATA && old->pend > 0) {
        memcpy(b->data, old->data + old->len, old->pend);
        b->pend = old->pend;
        old->pend = 0;
    }
    return b;
}

static void q_push_rotate(struct state *s, enum ld_kind kind, const struct period *p)
{
    struct blk *b = xmalloc(sizeof *b);
    memset(b, 0, sizeof *b);
    b->kind = BK_ROTATE;
    b->rotate = kind;
    if (p != NULL) b->period = *p;
    struct blk *old = s->q.tail;
    if (old != NULL)
        old->next = b;
    else
        s->q.head = b;
    s->q.tail = b;
    s->q.markers++;
    /* An incomplete line belongs after the switch: it completes later. */
    if (old != NULL && old->kind == BK_DATA && old->pend > 0) {
        struct blk *d = q_new_data(s);
        memcpy(d->data, old->data + old->len, old->pend);
        d->pend = old->pend;
        old->pend = 0;
    }
}

static void q_pop(struct state *s)
{
    struct blk *b = s->q.head;
    s->q.head = b->next;
    if (s->q.head == NULL) s->q.tail = NULL;
    if (b->kind == BK_ROTATE) {
        s->q.markers--;
        free(b);
    } else if (s->q.spare == NULL) {
        s->q.spare = b;
    } else {
        free(b);
    }
}

static void note_queued(struct state *s, size_t n)
{
    if (s->q.bytes == 0) s->pending_since = mono_ns();
    s->q.bytes += n;
}

/* Room for need bytes at the end of the queue, in a data block. */
static struct blk *q_room(struct state *s, size_t need)
{
    struct blk *t = s->q.tail;
    if (t == NULL || t->kind != BK_DATA || BLK_CAP - t->len < need) t = q_new_data(s);
    return t;
}

/* ---- input processing ---- */

static void refresh_prefix(struct state *s)
{
    if (s->prefix_sec != s->batch_sec) {
        s->prefix_sec = s->batch_sec;
        s->prefix_len = period_time_prefix(s->batch_sec, s->cfg.utc, s->prefix, sizeof s->prefix);
        if (s->prefix_len < 0) s->prefix_len = 0;
    }
}

/* One line with the time prefix: [p, p+n) plus '\n' when add_nl. */
static void q_put_timed(struct state *s, const char *p, size_t n, int add_nl)
{
    size_t need = (size_t)s->prefix_len + n + (size_t)add_nl;
    struct blk *t = q_room(s, need);
    char *o = t->data + t->len;
    memcpy(o, s->prefix, (size_t)s->prefix_len);
    memcpy(o + s->prefix_len, p, n);
    if (add_nl) o[need - 1] = '\n';
    t->len += need;
    note_queued(s, need);
}

static void put_piece(struct state *s, const char *p, size_t n)
{
    if (s->cfg.with_time) {
        q_put_timed(s, p, n, 1);
    } else {
        struct blk *t = q_room(s, n + 1);
        memcpy(t->data + t->len, p, n);
        t->data[t->len + n] = '\n';
        t->len += n + 1;
        note_queued(s, n + 1);
    }
}

static void long_line_piece(struct state *s, const char *p)
{
    if (!s->in_long_line)
        fprintf(stderr,
                "relaxlogs: a line is longer than %d bytes; writing it as %d-byte pieces, "
                "each ending in a newline\n",
                MAXLINE, MAXLINE);
    s->in_long_line = 1;
    put_piece(s, p, MAXLINE);
}

/* Plain mode: queue the complete lines that were read into the tail block,
 * splitting over-long ones in place. With final set (EOF, TERM) an incomplete
 * last line is queued with a '\n' added. */
static void ingest_plain(struct state *s, int final)
{
    struct blk *t = s->q.tail;
    if (t == NULL || t->kind != BK_DATA) return;
    while (t->pend > 0) {
        char *p = t->data + t->len;
        size_t win = t->pend > MAXLINE + 1 ? MAXLINE + 1 : t->pend;
        char *nl = memrchr(p, '\n', win); /* every line in the window is short enough */
        if (nl != NULL) {
            size_t k = (size_t)(nl + 1 - p);
            t->len += k;
            t->pend -= k;
            note_queued(s, k);
            s->in_long_line = 0;
        } else if (t->pend > MAXLINE) {
            if (!s->in_long_line)
                fprintf(stderr,
                        "relaxlogs: a line is longer than %d bytes; writing it as %d-byte "
                        "pieces, each ending in a newline\n",
                        MAXLINE, MAXLINE);
            s->in_long_line = 1;
            /* The rest goes to a fresh block; the byte after the piece then
             * becomes its newline. */
            size_t rest = t->pend - MAXLINE;
            t->pend = 0;
            struct blk *b = q_new_data(s);
            memcpy(b->data, p + MAXLINE, rest);
            b->pend = rest;
            t->data[t->len + MAXLINE] = '\n';
            t->len += MAXLINE + 1;
            note_queued(s, MAXLINE + 1);
            t = b;
        } else {
            break;
        }
    }
    if (final && t->pend > 0) {
        if (t->len + t->pend == BLK_CAP) t = q_new_data(s);
        t->data[t->len + t->pend] = '\n';
        size_t k = t->pend + 1;
        t->len += k;
        t->pend = 0;
        note_queued(s, k);
        s->in_long_line = 0;
    }
}

static size_t partial_len(const struct state *s)
{
    if (s->cfg.with_time) return s->ilen;
    const struct blk *t = s->q.tail;
    return t != NULL && t->kind == BK_DATA ? t->pend : 0;
}

/* --with-time: move the complete lines of ibuf to the queue behind their
 * prefix; keep a partial last line. With final set (EOF, TERM) the partial
 * line is written with a '\n'. */
static void ingest(struct state *s, int final)
{
    if (!s->cfg.with_time) {
        ingest_plain(s, final);
        return;
    }
    char *p = s->ibuf, *end = s->ibuf + s->ilen;
    refresh_prefix(s);
    const size_t plen = (size_t)s->prefix_len;
    /* The hot loop works on a local cursor into the tail block: one memchr,
     * a fixed-size prefix copy (the prefix buffer is PREFIX_COPY bytes, the
     * excess is overwritten by the line) and one memcpy per line. */
    struct blk *t = s->q.tail;
    if (t == NULL || t->kind != BK_DATA) t = q_new_data(s);
    char *o = t->data + t->len, *oend = t->data + BLK_CAP;
    size_t queued = 0;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl + 1 - p) : 0;
        if (nl != NULL && n <= MAXLINE + 1) {
            if ((size_t)(oend - o) < plen + n + PREFIX_COPY) {
                t->len = (size_t)(o - t->data);
                t = q_new_data(s);
                o = t->data;
                oend = t->data + BLK_CAP;
            }
            memcpy(o, s->prefix, PREFIX_COPY);
            memcpy(o + plen, p, n);
            o += plen + n;
            queued += plen + n;
            p = nl + 1;
            s->in_long_line = 0;
        } else if (end - p > MAXLINE) {
            t->len = (size_t)(o - t->data);
            note_queued(s, queued);
            queued = 0;
            long_line_piece(s, p);
            p += MAXLINE;
            t = s->q.tail;
            o = t->data + t->len;
            oend = t->data + BLK_CAP;
        } else {
            break;
        }
    }
    t->len = (size_t)(o - t->data);
    note_queued(s, queued);
    if (final && p < end) {
        put_piece(s, p, (size_t)(end - p));
        p = end;
        s->in_long_line = 0;
    }
    s->ilen = (size_t)(end - p);
    if (s->ilen > 0 && p != s->ibuf) memmove(s->ibuf, p, s->ilen);
}

/* Per read batch: queue a switch when this batch belongs to a new period. */
static void check_period(struct state *s)
{
    if (s->to_stdout || s->batch_sec == s->checked_sec) return;
    s->checked_sec = s->batch_sec;
    struct period p;
    period_of(s->batch_sec, s->ldcfg.rotation, s->cfg.utc, &p);
    if (p.start != s->qperiod.start || p.wall != s->qperiod.wall) {
        s->qperiod = p;
        q_push_rotate(s, LD_NEW_PERIOD, &p);
    }
}

/* ---- writing ---- */

static void report_failure(struct state *s, const char *msg)
{
    int64_t now = mono_ns();
    if (!s->blocked || now - s->last_report >= REPORT_NS) {
        fprintf(stderr,
                "relaxlogs: %s; %" PRIu64 " bytes buffered (limit %" PRIu64
                "), retrying every second\n",
                msg, s->q.bytes, s->cfg.buffer_size);
        s->last_report = now;
    }
    s->blocked = 1;
    s->retry_at = now + RETRY_NS;
}

/* Bytes of block b to write next: all of it, or, with --max-size, the lines
 * that still fit into the current file (0: switch to the next file first). */
static size_t chunk_len(struct state *s, struct blk *b)
{
    size_t avail = b->len - b->off;
    const char *p = b->data + b->off;
    if (s->to_stdout || s->cfg.max_size == 0) return avail;
    if (b->off > 0 && b->data[b->off - 1] != '\n') {
        /* finish a line a short write left half-done, whatever the size */
        const char *nl = memchr(p, '\n', avail);
        return nl ? (size_t)(nl + 1 - p) : avail;
    }
    uint64_t size = s->ld.size, max = s->cfg.max_size;
    if (size + avail <= max) return avail;
    size_t allowed = size < max ? (size_t)(max - size) : 0;
    const char *cut = allowed ? memrchr(p, '\n', allowed) : NULL;
    if (cut != NULL) return (size_t)(cut + 1 - p);
    if (size == 0) {
        const char *nl = memchr(p, '\n', avail); /* one line bigger than the cap */
        return nl ? (size_t)(nl + 1 - p) : avail;
    }
    return 0;
}

/* Write queued data and perform queued rotations. force: write even below
 * the flush threshold. Returns 0 when the queue is empty or waiting for more
 * data, -1 when blocked by an error (retry later). */
static int pump(struct state *s, int force)
{
    if (s->q.head == NULL) return 0;
    if (!force && s->q.markers == 0 && s->q.bytes < s->flush_bytes &&
        mono_ns() - s->pending_since < FLUSH_NS)
        return 0;
    char msg[700];
    int64_t now = 0;
    if (!s->to_stdout) {
        now = wall_sec();
        if (s->ld.step != LD_IDLE && logdir_step(&s->ld, now) < 0) {
            report_failure(s, s->ld.err);
            return -1;
        }
        struct stat st;
        if (s->q.bytes > 0 && fstat(s->ld.fd, &st) == 0 && st.st_nlink == 0) {
            fprintf(stderr, "relaxlogs: %s/%s was removed; creating it again\n", s->ld.cfg->dir,
                    s->ld.name);
            logdir_begin(&s->ld, LD_REOPEN, NULL);
            if (logdir_step(&s->ld, now) < 0) {
                report_failure(s, s->ld.err);
                return -1;
            }
        }
    }
    while (s->q.head != NULL) {
        struct blk *b = s->q.head;
        if (b->kind == BK_ROTATE) {
            if (!b->started) {
                logdir_begin(&s->ld, b->rotate, &b->period);
                b->started = 1;
            }
            if (logdir_step(&s->ld, now) < 0) {
                report_failure(s, s->ld.err);
                return -1;
            }
            q_pop(s);
            continue;
        }
        if (b->off == b->len) {
            if (b == s->q.tail) {
                /* keep the block for the next read; an incomplete line moves
                 * to its front */
                if (b->pend > 0 && b->len > 0) memmove(b->data, b->data + b->len, b->pend);
                b->off = b->len = 0;
                break;
            }
            q_pop(s);
            continue;
        }
        size_t n = chunk_len(s, b);
        if (n == 0) {
            logdir_begin(&s->ld, LD_NEXT_SEQ, NULL);
            if (logdir_step(&s->ld, now) < 0) {
                report_failure(s, s->ld.err);
                return -1;
            }
            continue;
        }
        int fd = s->to_stdout ? STDOUT_FILENO : s->ld.fd;
        ssize_t w = write(fd, b->data + b->off, n);
        if (w == 0) {
            errno = EIO; /* no progress: treat like an error and retry later */
            w = -1;
        }
        if (w < 0) {
            if (errno == EINTR) continue;
            s->write_errno = errno;
            if (s->to_stdout && (errno == EPIPE || errno == EBADF)) {
                fprintf(stderr, "relaxlogs: write stdout: %s; %" PRIu64 " bytes lost\n",
                        strerror(errno), s->q.bytes);
                exit(1);
            }
            snprintf(msg, sizeof msg, "write %s%s%s: %s", s->to_stdout ? "stdout" : s->ld.cfg->dir,
                     s->to_stdout ? "" : "/", s->to_stdout ? "" : s->ld.name, strerror(errno));
            report_failure(s, msg);
            return -1;
        }
        b->off += (size_t)w;
        s->q.bytes -= (uint64_t)w;
        if (!s->to_stdout) s->ld.size += (uint64_t)w;
    }
    if (s->blocked) {
        fprintf(stderr, "relaxlogs: writing again; nothing was lost\n");
        s->blocked = 0;
    }
    return 0;
}

/* ---- main loop ---- */

static int read_stdin(struct state *s)
{
    char *dst;
    size_t room;
    struct blk *t = NULL;
    if (s->cfg.with_time) {
        dst = s->ibuf + s->ilen;
        room = IBUF_CAP - s->ilen;
    } else {
        /* Read straight into the queue, after the incomplete line. */
        t = s->q.tail;
        if (t == NULL || t->kind != BK_DATA || BLK_CAP - t->len - t->pend < MIN_READ)
            t = q_new_data(s);
        dst = t->data + t->len + t->pend;
        room = BLK_CAP - t->len - t->pend;
        if (room > IREAD) room = IREAD;
    }
    ssize_t n = read(STDIN_FILENO, dst, room);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) return 0;
        fprintf(stderr, "relaxlogs: read stdin: %s\n", strerror(errno));
        s->read_failed = 1;
        n = 0;
    }
    if (s->cfg.with_time)
        s->ilen += (size_t)n;
    else
        t->pend += (size_t)n;
    s->batch_sec = wall_sec();
    if (partial_len(s) > 0) check_period(s); /* no empty file for a period without lines */
    if (n == 0) s->eof = 1;
    ingest(s, n == 0);
    return n > 0;
}

/* Signals are blocked except inside ppoll (so they cannot be missed between
 * a check and the wait). Done before any thread starts, so that the
 * compression thread inherits the blocked mask and never takes them. */
static void setup_signals(sigset_t *waitmask)
{
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGQUIT);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGALRM);
    sigprocmask(SIG_BLOCK, &block, waitmask);
    sigdelset(waitmask, SIGTERM);
    sigdelset(waitmask, SIGINT);
    sigdelset(waitmask, SIGQUIT);
    sigdelset(waitmask, SIGHUP);
    sigdelset(waitmask, SIGALRM);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* HUP and ALRM become markers in the output queue, in order with the data.
 * ppoll only runs handlers when it is interrupted; a signal that arrived
 * together with data stays pending (blocked) after a successful ppoll, so it
 * is collected here before that data is read. */
static void queue_signals(struct state *s)
{
    sigset_t ours;
    sigemptyset(&ours);
    sigaddset(&ours, SIGTERM);
    sigaddset(&ours, SIGINT);
    sigaddset(&ours, SIGQUIT);
    sigaddset(&ours, SIGHUP);
    sigaddset(&ours, SIGALRM);
    const struct timespec zero = {0, 0};
    int sig;
    while ((sig = sigtimedwait(&ours, NULL, &zero)) > 0)
        on_signal(sig);
    if (sig_hup) {
        sig_hup = 0;
        if (!s->to_stdout) q_push_rotate(s, LD_REOPEN, NULL);
    }
    if (sig_alrm) {
        sig_alrm = 0;
        if (!s->to_stdout) q_push_rotate(s, LD_NEXT_SEQ, NULL);
    }
}

static int run(struct state *s, const sigset_t *waitmask)
{
    int64_t term_deadline = 0;
    int term_seen = 0, term_wait_said = 0;
    for (;;) {
        if (sig_term && !term_seen) {
            term_seen = 1;
            term_deadline = mono_ns() + TERM_GRACE_NS;
        }
        if (sig_term > 1 && s->q.bytes > 0) {
            fprintf(stderr, "relaxlogs: second TERM/INT; %" PRIu64 " buffered bytes lost\n",
                    s->q.bytes);
            return 1;
        }
        queue_signals(s);

        int64_t now = mono_ns();
        if (term_seen && !s->reading_done && !s->eof) {
            /* Read what was sent before the signal; wait (briefly) only to
             * finish a partial line. */
            if (now >= term_deadline) {
                s->batch_sec = wall_sec();
                ingest(s, 1);
                s->reading_done = 1;
            }
        }
        int finishing = s->eof || s->reading_done;
        int empty_q = s->q.bytes == 0 && s->q.markers == 0;
        if (finishing && empty_q && (s->to_stdout || s->ld.step == LD_IDLE))
            return s->read_failed ? 1 : 0;

        /* Write when due (or retry when it is time). */
        if (!s->blocked || now >= s->retry_at) pump(s, finishing || term_seen);
        empty_q = s->q.bytes == 0 && s->q.markers == 0;
        if (term_seen && !term_wait_said && s->blocked && !s->to_stdout && !empty_q) {
            /* nothing is dropped on TERM: say what the exit waits for */
            term_wait_said = 1;
            fprintf(stderr,
                    "relaxlogs: TERM/INT received; %" PRIu64 " bytes still to write, waiting "
                    "until they can be (a second TERM/INT exits and loses them)\n",
                    s->q.bytes);
        }
        if (s->to_stdout && finishing && s->blocked) {
            /* No more input will come and the output keeps failing: a bounded
             * wait, none at all after TERM. */
            if (s->give_up_at == 0) s->give_up_at = now + STDOUT_GIVE_UP_NS;
            if (term_seen) s->give_up_at = now;
            if (mono_ns() >= s->give_up_at) {
                fprintf(stderr,
                        "relaxlogs: write stdout: %s; giving up %s; %" PRIu64 " bytes lost\n",
                        strerror(s->write_errno),
                        term_seen ? "on TERM" : "5 s after the end of input", s->q.bytes);
                return 1;
            }
        } else {
            s->give_up_at = 0;
        }

        int can_read = !finishing && s->q.bytes < s->cfg.buffer_size;
        int64_t timeout = -1;
        if (s->blocked)
            timeout = s->retry_at - mono_ns();
        if (s->give_up_at != 0 && s->give_up_at - mono_ns() < timeout)
            timeout = s->give_up_at - mono_ns();
        else if (!empty_q)
            timeout = finishing ? 0 : s->pending_since + FLUSH_NS - mono_ns();
        if (term_seen && can_read) {
            int64_t t2 = partial_len(s) > 0 ? term_deadline - mono_ns() : 0;
            if (timeout < 0 || t2 < timeout) timeout = t2;
        }
        if (timeout != -1 && timeout < 0) timeout = 0;
        if (finishing && !s->blocked) continue;
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        struct timespec ts, *tsp = NULL;
        if (timeout >= 0) {
            ts.tv_sec = timeout / 1000000000LL;
            ts.tv_nsec = timeout % 1000000000LL;
            tsp = &ts;
        }
        int rc = ppoll(&pfd, can_read ? 1 : 0, tsp, waitmask);
        if (rc < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "relaxlogs: poll: %s\n", strerror(errno));
            return 1;
        }
        if (rc > 0 && can_read && (pfd.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))) {
            /* A signal that arrived with the data is handled first: lines
             * read after it belong after the switch. */
            queue_signals(s);
            read_stdin(s);
        } else if (rc == 0 && term_seen && can_read && !s->eof) {
            /* nothing more arrived: what was sent before TERM has been read */
            if (partial_len(s) == 0 || mono_ns() >= term_deadline) {
                s->batch_sec = wall_sec();
                ingest(s, 1);
                s->reading_done = 1;
            }
        }
    }
}

/* fds 0-2 must be open before the log directory and files are opened, or a
 * log file could become stdin (read as EBADF) or stderr (diagnostics written
 * into the log). A closed stdin, or stdout when it is the output, is a setup
 * error; otherwise a closed stdout/stderr gets /dev/null. */
static void check_std_fds(int to_stdout)
{
    if (fcntl(STDIN_FILENO, F_GETFD) < 0) {
        fprintf(stderr, "relaxlogs: stdin is closed\n");
        exit(1);
    }
    if (to_stdout && fcntl(STDOUT_FILENO, F_GETFD) < 0) {
        fprintf(stderr, "relaxlogs: stdout is closed (--log-dir is empty or \"stdout\")\n");
        exit(1);
    }
    for (int fd = 1; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) < 0) {
            int n = open("/dev/null", O_WRONLY);
            if (n >= 0 && n != fd) close(n);
        }
    }
}

int main(int argc, char **argv)
{
    static struct state st;
    struct state *s = &st;
    s->cfg.rotation_min = 60;
    s->cfg.max_age_min = 1440;
    s->cfg.buffer_size = 64ULL * 1024 * 1024;
    const char *log_dir = "";
    const struct flag_spec specs[] = {
        {"log-dir", 0, FLAG_STRING, &log_dir, "DIR",
         "Directory to store logfiles (empty or \"stdout\": write to stdout)", NULL, NULL, NULL},
        {"rotation-time", 0, FLAG_INT, &s->cfg.rotation_min, "MIN",
         "The time between log file rotations in minutes, on the local clock (default: 60)", NULL,
         NULL, "1..527040"},
        {"max-age", 0, FLAG_INT, &s->cfg.max_age_min, "MIN",
         "Maximum age of files (based on mtime), in minutes; 0 keeps all (default: 1440)", NULL,
         NULL, "0..52704000"},
        {"with-time", 0, FLAG_BOOL, &s->cfg.with_time, NULL,
         "Enable to prepend time, [02/Jan/2006:15:04:05 -0700]", NULL, NULL, NULL},
        {"utc", 0, FLAG_BOOL, &s->cfg.utc, NULL,
         "Use UTC for file names, rotation boundaries and --with-time", NULL, NULL, NULL},
        {"buffer-size", 0, FLAG_SIZE, &s->cfg.buffer_size, "SIZE",
         "Memory for lines that cannot be written yet (disk full); then stop reading "
         "(default: 64MiB)",
         NULL, NULL, "1..1TiB"},
        {"max-files", 0, FLAG_INT, &s->cfg.max_files, "N",
         "Keep at most N log files, the current one included (default: 0, no limit)", NULL, NULL,
         "0..1000000"},
        {"max-size", 0, FLAG_SIZE, &s->cfg.max_size, "SIZE",
         "Start a new file log.*.1, .2, ... when a file would exceed SIZE (default: none)", NULL,
         NULL, "0..1PiB"},
        {"compress", 0, FLAG_BOOL, &s->cfg.compress, NULL,
         "gzip finished files in the background (log.*.gz)", NULL, NULL, NULL},
        {"version", 'v', FLAG_VERSION, NULL, NULL, "Show version", NULL, NULL, NULL},
        {NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
    };
    const struct flags_def def = {
        .prog = "relaxlogs",
        .synopsis = "[OPTIONS] < lines",
        .description = "Write lines from stdin to time-rotated files DIR/log.%Y%m%d%H%M with a "
                       "symlink DIR/current to the newest. Signals: TERM/INT finish the line, "
                       "flush and exit; HUP reopens the file and recreates `current`; ALRM "
                       "starts a new file now.",
        .style = FLAGS_GNU,
        .specs = specs,
    };
    int first = 0;
    flags_parse_or_exit(&def, argc, argv, &first);
    if (first < argc) {
        fprintf(stderr, "relaxlogs: unexpected argument \"%s\" (see --help)\n", argv[first]);
        return 1;
    }
    if (s->cfg.rotation_min <= 0 || s->cfg.rotation_min > 60LL * 24 * 366) {
        fprintf(stderr,
                "relaxlogs: invalid value \"%lld\" for --rotation-time: must be 1..%lld "
                "minutes\n",
                s->cfg.rotation_min, 60LL * 24 * 366);
        return 1;
    }
    if (s->cfg.max_age_min < 0 || s->cfg.max_age_min > INT64_MAX / 120) {
        fprintf(stderr, "relaxlogs: invalid value \"%lld\" for --max-age: must be >= 0\n",
                s->cfg.max_age_min);
        return 1;
    }
    if (s->cfg.max_files < 0) {
        fprintf(stderr, "relaxlogs: invalid value \"%lld\" for --max-files: must be >= 0\n",
                s->cfg.max_files);
        return 1;
    }
    if (s->cfg.buffer_size == 0) {
        fprintf(stderr, "relaxlogs: invalid value \"0\" for --buffer-size: must be > 0\n");
        return 1;
    }
    s->flush_bytes = s->cfg.buffer_size / 2 < FLUSH_BYTES ? s->cfg.buffer_size / 2 : FLUSH_BYTES;
    if (s->flush_bytes == 0) s->flush_bytes = 1;
    sigset_t waitmask;
    setup_signals(&waitmask);
    s->to_stdout = log_dir[0] == '\0' || strcmp(log_dir, "stdout") == 0;
    check_std_fds(s->to_stdout);
    if (!s->to_stdout) {
        /* Strip trailing slashes so messages and paths read well. */
        static char dirbuf[4096];
        size_t n = strlen(log_dir);
        if (n >= sizeof dirbuf) {
            fprintf(stderr, "relaxlogs: --log-dir is too long\n");
            return 1;
        }
        memcpy(dirbuf, log_dir, n + 1);
        while (n > 1 && dirbuf[n - 1] == '/')
            dirbuf[--n] = '\0';
        s->cfg.log_dir = dirbuf;
        s->ldcfg.dir = dirbuf;
        s->ldcfg.rotation = s->cfg.rotation_min * 60;
        s->ldcfg.max_age = s->cfg.max_age_min * 60;
        s->ldcfg.max_files = s->cfg.max_files;
        s->ldcfg.max_size = s->cfg.max_size;
        s->ldcfg.utc = s->cfg.utc;
        s->ldcfg.compress = s->cfg.compress;
        int64_t now = wall_sec();
        if (logdir_init(&s->ld, &s->ldcfg, now) < 0) {
            fprintf(stderr, "relaxlogs: %s\n", s->ld.err);
            return 1;
        }
        s->qperiod = s->ld.cur;
        s->checked_sec = now;
        period_of(now, s->ldcfg.rotation, s->cfg.utc, &s->qperiod);
    }
    if (s->cfg.with_time) s->ibuf = xmalloc(IBUF_CAP);
    s->prefix_sec = INT64_MIN;
    /* A bigger pipe means fewer, larger reads; harmless if refused. */
    fcntl(STDIN_FILENO, F_SETPIPE_SZ, IREAD);
    int rc = run(s, &waitmask);
    if (!s->to_stdout) logdir_close(&s->ld);
    free(s->ibuf);
    while (s->q.head != NULL)
        q_pop(s);
    free(s->q.spare);
    return rc;
}
