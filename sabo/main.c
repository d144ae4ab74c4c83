/* sabo: copy stdin to stdout at no more than a bandwidth shared by every sabo
 * running with the same --max-bandwidth and --work-dir (compatible with the
 * original Go sabo's lock files, so old and new members share one budget).
 *
 * One thread, one poll loop: stdin readiness, the inotify watch on the work
 * dir, a self-pipe for signals and two timers (1 s rescan fallback, progress).
 * Bytes move with splice(2) when either side is a pipe, sendfile(2) from a
 * regular file, read/write otherwise; each transfer is sized by the token
 * bucket, so any rate works with any read size. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bucket.h"
#include "flags.h"
#include "group.h"
#include "progress.h"
#include "units.h"

#define MIN_BANDWIDTH 32000ULL    /* the original's minimumBandwidh (32K) */
#define RESCAN_NS 1000000000LL    /* fallback rescan period */
/* Follow-up scans after an inotify event. The kernel reports the close of a
 * killed member's lock file (IN_CLOSE_WRITE) just before it drops the flock,
 * so the first scan can still see the file locked. */
static const int64_t followup_ns[] = {10000000LL, 50000000LL, 200000000LL};
#define N_FOLLOWUPS ((int)(sizeof followup_ns / sizeof followup_ns[0]))
/* A share goes up only when a count that allows it has held this long: a
 * directory being emptied by rm -rf shows the others gone a moment before it
 * shows our own lock gone, and we must not keep the doubled share then. */
#define INCREASE_CONFIRM_NS 50000000LL
#define PROGRESS_TTY_NS 250000000LL
#define PROGRESS_PLAIN_NS 1000000000LL
#define RW_BUFSIZE (128 * 1024)   /* read/write path buffer (keeps RSS small) */
#define MAX_XFER (1024 * 1024)    /* largest single splice/sendfile */
#define PIPE_SIZE (1024 * 1024)   /* we try to grow our pipes to this */

struct config {
    uint64_t bw;
    const char *work_dir;
    long long weight;
    int progress;
};

enum xfer_mode { XFER_SPLICE, XFER_SENDFILE, XFER_RW };

/* The copy: stdin to stdout. buf is owned here (RW mode only). */
struct pump {
    int in, out;
    enum xfer_mode mode;
    int fresh; /* no transfer done yet in this mode: EINVAL means "unsupported" */
    char *buf;
    uint64_t total;
    const char *fail_what; /* "read" or "write" after a failure */
};

static volatile sig_atomic_t stop_signal;
static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int e = errno;
    stop_signal = sig;
    if (sig_pipe[1] >= 0) {
        ssize_t r = write(sig_pipe[1], "", 1);
        (void)r;
    }
    errno = e;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int is_fifo(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

static int is_regular(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

static void pump_init(struct pump *p, int in, int out)
{
    memset(p, 0, sizeof *p);
    p->in = in;
    p->out = out;
    p->fresh = 1;
    if (is_fifo(in) || is_fifo(out)) {
        p->mode = XFER_SPLICE;
        /* Bigger pipes mean fewer wakeups; a refusal (limits) is harmless. */
        if (is_fifo(in) && fcntl(in, F_GETPIPE_SZ) < PIPE_SIZE)
            fcntl(in, F_SETPIPE_SZ, PIPE_SIZE);
        if (is_fifo(out) && fcntl(out, F_GETPIPE_SZ) < PIPE_SIZE)
            fcntl(out, F_SETPIPE_SZ, PIPE_SIZE);
    } else if (is_regular(in)) {
        p->mode = XFER_SENDFILE;
    } else {
        p->mode = XFER_RW;
    }
}

/* Wait until fd is ready for events (a non-blocking stdin/stdout inherited
 * from the parent). Returns 0, or -1 with errno EINTR when a signal came. */
static int wait_fd(int fd, short events)
{
    struct pollfd pfd[2] = {{.fd = fd, .events = events}, {.fd = sig_pipe[0], .events = POLLIN}};
    for (;;) {
        if (stop_signal) {
            errno = EINTR;
            return -1;
        }
        int r = poll(pfd, 2, -1);
        if (r < 0 && errno != EINTR)
            return -1;
        if (r > 0 && pfd[0].revents)
            return 0;
    }
}

static int write_all(struct pump *p, const char *b, size_t n)
{
    while (n > 0) {
        ssize_t w = write(p->out, b, n);
        if (w < 0) {
            if (errno == EINTR && !stop_signal)
                continue;
            if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(p->out, POLLOUT) == 0)
                continue;
            p->fail_what = "write";
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Move up to n bytes. Returns bytes moved, 0 at end of input, -1 on error
 * (errno set, fail_what says which side; EINTR when a signal stopped us). */
static ssize_t pump_move(struct pump *p, size_t n)
{
    ssize_t r;
    if (stop_signal) {
        errno = EINTR;
        return -1;
    }
    switch (p->mode) {
    case XFER_SPLICE:
        r = splice(p->in, NULL, p->out, NULL, n, SPLICE_F_MOVE);
        if (r < 0 && p->fresh && (errno == EINVAL || errno == ENOSYS)) {
            p->mode = XFER_RW; /* e.g. O_APPEND output, a tty, an odd file system */
            return pump_move(p, n);
        }
        if (r < 0) {
            p->fail_what = (errno == EPIPE || errno == ENOSPC || errno == EDQUOT ||
                            errno == EFBIG)
                               ? "write"
                               : "copy (splice)";
            return -1;
        }
        break;
    case XFER_SENDFILE:
        r = sendfile(p->out, p->in, NULL, n);
        if (r < 0 && p->fresh && (errno == EINVAL || errno == ENOSYS)) {
            p->mode = XFER_RW;
            return pump_move(p, n);
        }
        if (r < 0) {
            p->fail_what = (errno == EPIPE || errno == ENOSPC || errno == EDQUOT ||
                            errno == EFBIG)
                               ? "write"
                               : "copy (sendfile)";
            return -1;
        }
        break;
    default:
        if (!p->buf && !(p->buf = malloc(RW_BUFSIZE))) {
            p->fail_what = "read";
            return -1;
        }
        r = read(p->in, p->buf, n < RW_BUFSIZE ? n : RW_BUFSIZE);
        if (r < 0) {
            p->fail_what = "read";
            return -1;
        }
        if (r > 0 && write_all(p, p->buf, (size_t)r) < 0)
            return -1;
        break;
    }
    if (r > 0)
        p->fresh = 0;
    p->total += (uint64_t)(r > 0 ? r : 0);
    return r;
}

/* Everything the loop needs; one instance, on main's stack. */
struct sabo {
    const struct config *cfg;
    struct group group;
    struct bucket bucket;
    struct pump pump;
    unsigned units;
    double share;
    int scan_warned;
    int gone_warned;          /* said the work dir was removed; not back yet */
    unsigned rejoins_seen;    /* group.rejoins already reported */
    int64_t raise_since_ns;   /* a higher share has been allowed since, or 0 */
    int tty;
    int64_t start_ns, next_scan_ns, next_progress_ns, progress_period_ns;
    int followup; /* index into followup_ns of the next follow-up scan, or -1 */
    uint64_t progress_bytes;
    int64_t progress_ns;
    double progress_rate;
    int progress_dirty; /* an in-place line is on the terminal */
};

/* Before any other message on a terminal, end the in-place line. */
static void progress_break(struct sabo *s)
{
    if (s->progress_dirty) {
        fputc('\n', stderr);
        s->progress_dirty = 0;
    }
}

static void rebalance(struct sabo *s, int64_t now)
{
    unsigned units;
    int rc = group_scan(&s->group, &units);
    if (s->group.rejoins != s->rejoins_seen) {
        s->rejoins_seen = s->group.rejoins;
        progress_break(s);
        fprintf(stderr, "sabo: work dir %s %s; rejoined the group\n", s->cfg->work_dir,
                s->gone_warned ? "is back" : "was removed and is back");
        s->gone_warned = 0;
    }
    if (rc == GROUP_DIR_GONE || rc == GROUP_UNITS_MISSING) {
        /* Nobody can count the group now: each member seeing itself alone would
         * move N times the budget. Keep the last share until the count is back. */
        if (rc == GROUP_DIR_GONE && !s->gone_warned) {
            progress_break(s);
            fprintf(stderr,
                    "sabo: work dir %s was removed; the group cannot be counted, keeping "
                    "the last share %.0f B/s until it is back\n",
                    s->cfg->work_dir, s->share);
            s->gone_warned = 1;
        }
        s->raise_since_ns = 0;
        return;
    }
    if (rc < 0) {
        if (!s->scan_warned) {
            int e = errno;
            progress_break(s);
            fprintf(stderr, "sabo: cannot read work dir %s: %s (keeping share %.0f B/s)\n",
                    s->cfg->work_dir, strerror(e), s->share);
        }
        s->scan_warned = 1;
        return;
    }
    s->scan_warned = 0;
    s->units = units;
    double share = (double)s->cfg->bw * (double)s->group.weight / (double)units;
    if (share > s->share) {
        if (s->raise_since_ns == 0)
            s->raise_since_ns = now;
        if (now - s->raise_since_ns < INCREASE_CONFIRM_NS)
            return; /* the next follow-up scan confirms it */
    }
    s->raise_since_ns = 0;
    if (share != s->share) {
        s->share = share;
        bucket_set_rate(&s->bucket, share, MAX_XFER, now);
    }
}

/* final: NULL for a running line, else the word that ends the last one. */
static void progress_show(struct sabo *s, int64_t now, const char *final)
{
    char line[256];
    int64_t dt = now - s->progress_ns;
    if (dt > 0 && (dt >= s->progress_period_ns / 2 || final)) {
        s->progress_rate = (double)(s->pump.total - s->progress_bytes) * 1e9 / (double)dt;
        s->progress_bytes = s->pump.total;
        s->progress_ns = now;
    }
    struct progress_sample smp = {
        .bytes = s->pump.total,
        .rate = final ? (double)s->pump.total * 1e9 / (double)(now - s->start_ns + 1)
                      : s->progress_rate,
        .average = final != NULL,
        .limit = s->share,
        .own_units = s->group.weight,
        .units = s->units,
        .elapsed_ns = now - s->start_ns,
    };
    progress_format(line, sizeof line, &smp);
    if (s->tty) {
        fprintf(stderr, "\r%s%s%s\033[K%s", final && strcmp(final, "done") ? final : "",
                final && strcmp(final, "done") ? ": " : "", line, final ? "\n" : "");
        s->progress_dirty = !final;
    } else {
        fprintf(stderr, "sabo: %s%s%s\n", final ? final : "", final ? ": " : "", line);
    }
    fflush(stderr);
}

enum { RUN_EOF, RUN_ERROR, RUN_SIGNAL };

static int run(struct sabo *s)
{
    int in_ready = 0;
    int64_t now = mono_ns();

    s->start_ns = s->progress_ns = now;
    s->next_scan_ns = now + RESCAN_NS;
    s->followup = -1;
    s->next_progress_ns = now + s->progress_period_ns;
    for (;;) {
        if (stop_signal)
            return RUN_SIGNAL;
        now = mono_ns();
        if (now >= s->next_scan_ns) {
            rebalance(s, now);
            if (s->followup >= 0 && s->followup + 1 < N_FOLLOWUPS) {
                s->followup++;
                s->next_scan_ns = now + followup_ns[s->followup];
            } else {
                s->followup = -1;
                s->next_scan_ns = now + RESCAN_NS;
            }
        }
        if (s->cfg->progress && now >= s->next_progress_ns) {
            progress_show(s, now, NULL);
            s->next_progress_ns = now + s->progress_period_ns;
        }

        int64_t wait_ns = -1;
        if (in_ready) {
            uint64_t allow = bucket_allowance(&s->bucket, now, MAX_XFER);
            if (allow > 0) {
                ssize_t k = pump_move(&s->pump, (size_t)allow);
                if (k == 0)
                    return RUN_EOF;
                if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    /* Non-blocking stdin or stdout: wait for the output to
                     * drain if that is what blocked, else for more input. */
                    struct pollfd o = {.fd = s->pump.out, .events = POLLOUT};
                    if (poll(&o, 1, 0) == 0 && wait_fd(s->pump.out, POLLOUT) < 0)
                        return stop_signal ? RUN_SIGNAL : RUN_ERROR;
                    in_ready = 0;
                    continue;
                }
                if (k < 0 && errno == EINTR)
                    continue; /* the loop top checks stop_signal */
                if (k < 0)
                    return RUN_ERROR;
                bucket_consume(&s->bucket, (uint64_t)k);
                /* A short transfer means the input ran dry: poll before the
                 * next one instead of blocking in it. */
                if ((uint64_t)k < allow && s->pump.mode != XFER_SENDFILE)
                    in_ready = 0;
                continue;
            }
            wait_ns = bucket_wait_ns(&s->bucket, now);
        }

        int64_t until = s->next_scan_ns - now;
        if (s->cfg->progress && s->next_progress_ns - now < until)
            until = s->next_progress_ns - now;
        if (wait_ns >= 0 && wait_ns < until)
            until = wait_ns;
        if (until < 0)
            until = 0;

        struct pollfd pfd[3];
        int n = 0, in_idx = -1, ino_idx = -1;
        pfd[n++] = (struct pollfd){.fd = sig_pipe[0], .events = POLLIN};
        if (s->group.inotify_fd >= 0) {
            ino_idx = n;
            pfd[n++] = (struct pollfd){.fd = s->group.inotify_fd, .events = POLLIN};
        }
        if (!in_ready) {
            in_idx = n;
            pfd[n++] = (struct pollfd){.fd = s->pump.in, .events = POLLIN};
        }
        struct timespec ts = {.tv_sec = until / 1000000000LL, .tv_nsec = until % 1000000000LL};
        int r = ppoll(pfd, (nfds_t)n, &ts, NULL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            s->pump.fail_what = "poll";
            return RUN_ERROR;
        }
        if (pfd[0].revents)
            return RUN_SIGNAL;
        if (ino_idx >= 0 && pfd[ino_idx].revents && group_drain_events(&s->group)) {
            now = mono_ns();
            rebalance(s, now);
            s->followup = 0;
            s->next_scan_ns = now + followup_ns[0];
        }
        if (in_idx >= 0 && pfd[in_idx].revents) {
            if (pfd[in_idx].revents & POLLNVAL) {
                errno = EBADF;
                s->pump.fail_what = "read";
                return RUN_ERROR;
            }
            in_ready = 1;
        }
    }
}

static int parse_weight(const struct config *cfg, char *err, size_t errlen)
{
    if (cfg->weight < 1 || cfg->weight > LOCKNAME_MAX_WEIGHT) {
        snprintf(err, errlen, "invalid value \"%lld\" for --weight: must be 1..%d", cfg->weight,
                 LOCKNAME_MAX_WEIGHT);
        return -1;
    }
    return 0;
}

/* fds 0-2 must be open before we open lock files, or a lock file could
 * become our stdout. */
static void check_std_fds(void)
{
    if (fcntl(2, F_GETFD) < 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0 && fd != 2)
            close(fd);
    }
    for (int fd = 0; fd <= 1; fd++) {
        if (fcntl(fd, F_GETFD) < 0) {
            fprintf(stderr, "sabo: %s is closed\n", fd == 0 ? "stdin" : "stdout");
            exit(1);
        }
    }
}

int main(int argc, char **argv)
{
    static struct config cfg = {.weight = 1};
    int seen_bw = 0, seen_dir = 0;
    const char *bw_arg = NULL;
    const struct flag_spec specs[] = {
        {"max-bandwidth", 0, FLAG_STRING, &bw_arg, "SIZE",
         "max bandwidth (Bytes/sec) shared by the group, e.g. 100M (required, at least 32K)", NULL,
         &seen_bw, NULL},
        {"work-dir", 0, FLAG_STRING, &cfg.work_dir, "DIR",
         "directory for control bandwidth: lock files of the group (required)", NULL,
         &seen_dir, NULL},
        {"weight", 0, FLAG_INT, &cfg.weight, "N",
         "this copy's share is bw*N/(sum of live weights), 1..100 (default: 1)", NULL, NULL,
         "1..100"},
        {"progress", 0, FLAG_BOOL, &cfg.progress, NULL,
         "show bytes, rate, limit and share on stderr (in place on a terminal)", NULL, NULL, NULL},
        {"version", 'v', FLAG_VERSION, NULL, NULL, "Show version", NULL, NULL, NULL},
        {NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
    };
    const struct flags_def def = {
        .prog = "sabo",
        .synopsis = "--max-bandwidth=SIZE --work-dir=DIR [OPTIONS] < input > output",
        .description =
            "Copy stdin to stdout at no more than SIZE bytes/s. Every sabo started with the\n"
            "same --max-bandwidth and --work-dir shares that one budget (equally, or by\n"
            "--weight); when one finishes the others speed up. Exit status is 0 only when\n"
            "all input was copied.",
        .style = FLAGS_GNU,
        .specs = specs,
    };
    char err[512];
    int first_operand = argc;

    check_std_fds();
    int fr = flags_parse(&def, argc, argv, &first_operand, err, sizeof err);
    if (fr == FLAGS_HELP) {
        flags_usage(&def, stdout);
        return 0;
    }
    if (fr == FLAGS_VERSION) {
        flags_print_version("sabo");
        return 0;
    }
    if (fr == FLAGS_ERROR) {
        fprintf(stderr, "sabo: %s\n", err);
        return 1;
    }
    if (first_operand < argc) {
        fprintf(stderr, "sabo: unexpected argument \"%s\" (sabo copies stdin to stdout)\n",
                argv[first_operand]);
        return 1;
    }
    if (!seen_bw && !seen_dir) {
        fprintf(stderr, "sabo: the required flags `--max-bandwidth' and `--work-dir' were not "
                        "specified\n");
        return 1;
    }
    if (!seen_bw || !seen_dir) {
        fprintf(stderr, "sabo: the required flag `--%s' was not specified\n",
                seen_bw ? "work-dir" : "max-bandwidth");
        return 1;
    }
    if (units_parse_bytes(bw_arg, &cfg.bw, err, sizeof err) < 0) {
        fprintf(stderr, "sabo: cannot parse --max-bandwidth \"%s\": %s\n", bw_arg, err);
        return 1;
    }
    if (cfg.bw < MIN_BANDWIDTH) {
        /* the original's words first, then what the value was taken to mean */
        fprintf(stderr,
                "sabo: max-bandwidth > 32K required: --max-bandwidth \"%s\" is %" PRIu64
                " bytes/s; it must be at least 32K (%llu bytes/s)\n",
                bw_arg, cfg.bw, MIN_BANDWIDTH);
        return 1;
    }
    if (!*cfg.work_dir) {
        fprintf(stderr, "sabo: --work-dir is empty\n");
        return 1;
    }
    if (parse_weight(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "sabo: %s\n", err);
        return 1;
    }

    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        fprintf(stderr, "sabo: pipe: %s\n", strerror(errno));
        return 1;
    }
    /* No SA_RESTART: a signal must interrupt a blocked read or write. */
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* EPIPE is reported, not fatal-and-silent */

    static struct sabo s; /* static: struct group holds 100 names */
    s.cfg = &cfg;
    if (group_join(&s.group, cfg.work_dir, cfg.bw, (unsigned)cfg.weight, err, sizeof err) < 0) {
        fprintf(stderr, "sabo: %s\n", err);
        return 1;
    }
    int64_t now = mono_ns();
    s.units = s.group.weight;
    s.share = (double)cfg.bw;
    bucket_init(&s.bucket, s.share, MAX_XFER, now);
    rebalance(&s, now);
    pump_init(&s.pump, 0, 1);
    s.tty = isatty(2);
    s.progress_period_ns = s.tty ? PROGRESS_TTY_NS : PROGRESS_PLAIN_NS;

    int how = run(&s);
    int saved_errno = errno;
    now = mono_ns();
    group_leave(&s.group);
    if (cfg.progress)
        progress_show(&s, now,
                      how == RUN_EOF ? "done" : how == RUN_ERROR ? "failed" : "interrupted");
    progress_break(&s);
    free(s.pump.buf);

    switch (how) {
    case RUN_EOF:
        return 0;
    case RUN_ERROR:
        fprintf(stderr, "sabo: %s error after %" PRIu64 " bytes: %s\n",
                s.pump.fail_what ? s.pump.fail_what : "copy", s.pump.total,
                strerror(saved_errno));
        return 1;
    default: {
        int sig = (int)stop_signal;
        fprintf(stderr, "sabo: stopped by %s after %" PRIu64 " bytes; output is incomplete\n",
                sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP", s.pump.total);
        /* Die of the same signal, so the caller sees how we ended. */
        signal(sig, SIG_DFL);
        raise(sig);
        return 128 + sig;
    }
    }
}
