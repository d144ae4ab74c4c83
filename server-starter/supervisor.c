/* supervisor: start_server's event loop and its generation switch.
 *
 * One poll(2) loop over a signalfd (HUP, TERM, INT, CHLD and ALRM are blocked
 * and read from it, so no signal is lost between a fork and the wait that
 * follows it, and no work happens in a signal handler), the exec-failure pipe
 * of the worker being started and the readiness probe's socket. Every child
 * is reaped in one place (reap_all: waitpid(-1, WNOHANG)) and its status is
 * handed to the record of that pid, so reaping an old worker can never take
 * the new worker's status, and as PID 1 orphans are reaped too.
 *
 * A start goes through an explicit state machine, and each transition is the
 * only place that logs and writes files for it:
 *
 *   IDLE --start--> INTERVAL --alive after --interval--> READY (with --ready-check)
 *                      |                                   |
 *                      | exited / exec failed              | exited / --ready-timeout
 *                      v                                   v
 *                   BACKOFF (retry at start + --interval) <-+
 *   INTERVAL/READY --up--> promote: current, status file, KILL_DELAY --> kill old --> IDLE
 *   any --TERM/INT--> SHUTDOWN --all workers reaped--> exit
 *
 * HUPs that arrive while a start is in progress are coalesced into one more
 * start after it (a retry after a failure already covers them). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ready.h"
#include "starter.h"
#include "units.h"

extern char **environ;

#define NS 1000000000LL

enum worker_role {
    W_STARTING, /* the new worker of the start in progress */
    W_CURRENT,  /* the serving generation */
    W_OLD,      /* a previous generation, retired once a new one is up */
    W_FAILED,   /* a new worker that never became ready, being stopped */
};

struct worker {
    pid_t pid;
    unsigned gen;
    enum worker_role role;
    int64_t started;
    int signalled; /* W_OLD: --signal-on-hup sent */
};

enum sw_state {
    SW_IDLE,       /* no start in progress */
    SW_INTERVAL,   /* new worker forked; it must survive --interval */
    SW_READY,      /* new worker alive; waiting for --ready-check */
    SW_KILL_DELAY, /* new worker current; KILL_OLD_DELAY before signalling old ones */
    SW_BACKOFF,    /* the last attempt failed; the next starts at the deadline */
    SW_SHUTDOWN,   /* TERM/INT: waiting for every worker to exit */
};

enum start_kind { START_FIRST, START_HUP, START_AUTO, START_DIED };

struct sup {
    const struct ss_config *cfg;
    const struct ss_listeners *ls;
    char **base_env;
    struct worker *w;
    size_t nw, capw;
    pid_t current, pending;
    enum sw_state state;
    int64_t deadline;
    enum start_kind kind;
    unsigned gen;
    int hup_pending;
    int64_t last_restart;
    int64_t auto_tick;
    int sigfd;
    int execfd;          /* read end of the pending worker's exec-failure pipe */
    char **pending_env;  /* environment the pending worker was started with */
    struct ready_probe probe;
    pid_t logger_pid;
    int status_written;
    char *last_start;
    char last_failure[560];
};

static sigset_t orig_mask;
static const int handled_signals[] = {SIGHUP, SIGTERM, SIGINT, SIGCHLD, SIGALRM};
#define NHANDLED (sizeof handled_signals / sizeof handled_signals[0])

static void noop_handler(int sig)
{
    (void)sig;
}

void ss_child_reset_signals(void)
{
    for (size_t i = 0; i < NHANDLED; i++)
        signal(handled_signals[i], SIG_DFL);
    sigprocmask(SIG_SETMASK, &orig_mask, NULL);
}

static int setup_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < NHANDLED; i++) {
        sigaddset(&set, handled_signals[i]);
        /* A handler (never run: the signals stay blocked) so that, as PID 1,
         * signals from inside the container are not discarded as "default". */
        struct sigaction sa = {.sa_handler = noop_handler};
        sigemptyset(&sa.sa_mask);
        sigaction(handled_signals[i], &sa, NULL);
    }
    signal(SIGPIPE, SIG_IGN);
    sigprocmask(SIG_BLOCK, &set, &orig_mask);
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* ------------------------------------------------------------ workers */

static struct worker *find_worker(struct sup *s, pid_t pid)
{
    for (size_t i = 0; i < s->nw; i++)
        if (s->w[i].pid == pid)
            return &s->w[i];
    return NULL;
}

static struct worker *add_worker(struct sup *s, pid_t pid, unsigned gen, enum worker_role role)
{
    if (s->nw == s->capw) {
        size_t nc = s->capw ? s->capw * 2 : 8;
        struct worker *n = realloc(s->w, nc * sizeof *n);
        if (!n)
            ss_die(ENOMEM, "out of memory");
        s->w = n;
        s->capw = nc;
    }
    struct worker *w = &s->w[s->nw++];
    *w = (struct worker){.pid = pid, .gen = gen, .role = role, .started = ss_now_ns()};
    return w;
}

static void remove_worker(struct sup *s, pid_t pid)
{
    for (size_t i = 0; i < s->nw; i++) {
        if (s->w[i].pid == pid) {
            s->w[i] = s->w[--s->nw];
            return;
        }
    }
}

static int cmp_pid(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return (x > y) - (x < y);
}

/* Comma-separated sorted pids of the workers whose role is in mask. */
static void pid_list(struct sup *s, unsigned mask, char *buf, size_t len)
{
    pid_t *pids = calloc(s->nw + 1, sizeof *pids);
    size_t n = 0;
    for (size_t i = 0; pids && i < s->nw; i++)
        if (mask & (1u << s->w[i].role))
            pids[n++] = s->w[i].pid;
    if (pids)
        qsort(pids, n, sizeof *pids, cmp_pid);
    buf[0] = '\0';
    size_t off = 0;
    for (size_t i = 0; i < n && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%d", i ? "," : "", (int)pids[i]);
    free(pids);
}

/* ------------------------------------------------------------ files */

static int write_atomic(const char *path, const char *content)
{
    size_t tl = strlen(path) + 32;
    char *tmp = malloc(tl);
    if (!tmp)
        return -1;
    snprintf(tmp, tl, "%s.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    int rc = -1;
    if (fd >= 0) {
        size_t len = strlen(content);
        ssize_t n = write(fd, content, len);
        if (close(fd) == 0 && n == (ssize_t)len && rename(tmp, path) == 0)
            rc = 0;
    }
    if (rc < 0) {
        ss_log("failed to write %s:%s", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

static int cmp_gen(const void *a, const void *b)
{
    const struct worker *x = *(struct worker *const *)a, *y = *(struct worker *const *)b;
    return (x->gen > y->gen) - (x->gen < y->gen);
}

/* The status file: "GEN:PID" of the current and every old worker. */
static void write_status(struct sup *s)
{
    if (!s->cfg->status_file)
        return;
    struct worker **list = calloc(s->nw + 1, sizeof *list);
    char *buf = malloc(s->nw * 32 + 1);
    if (!list || !buf) {
        free(list);
        free(buf);
        return;
    }
    size_t n = 0, off = 0;
    for (size_t i = 0; i < s->nw; i++)
        if (s->w[i].role == W_CURRENT || s->w[i].role == W_OLD)
            list[n++] = &s->w[i];
    qsort(list, n, sizeof *list, cmp_gen);
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        off += (size_t)sprintf(buf + off, "%u:%d\n", list[i]->gen, (int)list[i]->pid);
    if (write_atomic(s->cfg->status_file, buf) == 0)
        s->status_written = 1;
    free(list);
    free(buf);
}

char *ss_last_start_path(const char *status_file)
{
    size_t l = strlen(status_file) + sizeof ".last-start";
    char *p = malloc(l);
    if (p)
        snprintf(p, l, "%s.last-start", status_file);
    return p;
}

/* The latest start attempt and the latest failed one, for --restart (which
 * polls, so a failure must still be there after the retry began):
 *   "GEN:PID:starting|running|failed[:REASON]\n" and "failed:GEN:PID:REASON\n". */
static void write_last_start(struct sup *s, unsigned gen, pid_t pid, const char *state,
                             const char *reason)
{
    if (!s->last_start)
        return;
    if (reason)
        snprintf(s->last_failure, sizeof s->last_failure, "failed:%u:%d:%s\n", gen, (int)pid,
                 reason);
    char buf[1200];
    snprintf(buf, sizeof buf, "%u:%d:%s%s%s\n%s", gen, (int)pid, state, reason ? ":" : "",
             reason ? reason : "", s->last_failure);
    write_atomic(s->last_start, buf);
}

/* ------------------------------------------------------------ environment */

static int perl_true(const char *v)
{
    return v && *v && strcmp(v, "0") != 0;
}

static long long env_num(char **env, const char *name, long long dflt)
{
    const char *v = ss_env_get(env, name);
    return v ? strtoll(v, NULL, 10) : dflt;
}

static long long kill_old_delay(char **env)
{
    const char *v = ss_env_get(env, "KILL_OLD_DELAY");
    if (v)
        return strtoll(v, NULL, 10);
    return perl_true(ss_env_get(env, "ENABLE_AUTO_RESTART")) ? 5 : 0;
}

static char **current_env(struct sup *s, unsigned gen, int main_loop)
{
    char genbuf[48], ari[40] = "";
    snprintf(genbuf, sizeof genbuf, "SERVER_STARTER_GENERATION=%u", gen);
    const char *extra[3] = {genbuf, NULL, NULL};
    char **env = ss_env_build(s->base_env, ss_env_get(s->base_env, "ENVDIR"), extra);
    /* Perl sets AUTO_RESTART_INTERVAL=360 in its own environment once its
     * main loop runs with auto-restart on; workers started from then on see it. */
    if (main_loop && perl_true(ss_env_get(env, "ENABLE_AUTO_RESTART")) &&
        !perl_true(ss_env_get(env, "AUTO_RESTART_INTERVAL"))) {
        snprintf(ari, sizeof ari, "AUTO_RESTART_INTERVAL=360");
        extra[1] = ari;
        ss_env_free(env);
        env = ss_env_build(s->base_env, ss_env_get(s->base_env, "ENVDIR"), extra);
    }
    return env;
}

/* ------------------------------------------------------------ the switch */

static void start_attempt(struct sup *s);
static void idle_next(struct sup *s);

static void close_execfd(struct sup *s)
{
    if (s->execfd >= 0)
        close(s->execfd);
    s->execfd = -1;
}

static void drop_pending(struct sup *s)
{
    close_execfd(s);
    ss_env_free(s->pending_env);
    s->pending_env = NULL;
    s->pending = 0;
}

/* The start failed (exited, could not exec, not ready): the old workers keep
 * serving; try again no sooner than --interval after this attempt began. */
static void fail_attempt(struct sup *s, struct worker *w, const char *reason)
{
    ready_probe_stop(&s->probe);
    write_last_start(s, w->gen, w->pid, "failed", reason);
    int64_t retry = w->started + s->cfg->interval * NS, now = ss_now_ns();
    drop_pending(s);
    s->state = SW_BACKOFF;
    s->deadline = retry > now ? retry : now;
}

static int has_old(const struct sup *s)
{
    for (size_t i = 0; i < s->nw; i++)
        if (s->w[i].role == W_OLD)
            return 1;
    return 0;
}

static void kill_old(struct sup *s)
{
    ss_log("killing old workers");
    pid_t *pids = calloc(s->nw + 1, sizeof *pids);
    size_t n = 0;
    for (size_t i = 0; pids && i < s->nw; i++) {
        if (s->w[i].role == W_OLD) {
            pids[n++] = s->w[i].pid;
            s->w[i].signalled = 1;
        }
    }
    if (pids)
        qsort(pids, n, sizeof *pids, cmp_pid);
    for (size_t i = 0; i < n; i++)
        kill(pids[i], s->cfg->signal_on_hup);
    free(pids);
    s->state = SW_IDLE;
    idle_next(s);
}

/* The new worker is up: it becomes current; then the old ones are retired. */
static void promote(struct sup *s)
{
    struct worker *w = find_worker(s, s->pending);
    ready_probe_stop(&s->probe);
    long long delay = kill_old_delay(s->pending_env);
    w->role = W_CURRENT;
    s->current = w->pid;
    drop_pending(s);
    s->last_restart = ss_now_ns();
    write_status(s);
    write_last_start(s, w->gen, w->pid, "running", NULL);
    int unsignalled_old = 0;
    for (size_t i = 0; i < s->nw; i++)
        if (s->w[i].role == W_OLD && !s->w[i].signalled)
            unsignalled_old = 1;
    if (s->kind != START_HUP && s->kind != START_AUTO && !unsignalled_old) {
        s->state = SW_IDLE;
        idle_next(s);
        return;
    }
    char list[4096];
    pid_list(s, 1u << W_OLD, list, sizeof list);
    ss_log("new worker is now running, sending %s to old workers:%s", s->cfg->signal_on_hup_name,
           list[0] ? list : "none");
    if (delay > 0) {
        ss_log("sleeping %lld secs before killing old workers", delay);
        s->state = SW_KILL_DELAY;
        s->deadline = ss_now_ns() + delay * NS;
        return;
    }
    kill_old(s);
}

struct exec_report {
    int stage; /* 1 chdir, 2 exec */
    int err;
};

static void read_exec_pipe(struct sup *s)
{
    struct exec_report r;
    ssize_t n = read(s->execfd, &r, sizeof r);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n == (ssize_t)sizeof r) {
        if (r.stage == 1)
            ss_log("failed to chdir:%s:%s", s->cfg->dir, strerror(r.err));
        else
            ss_log("failed to exec %s:%s", s->cfg->argv[0], strerror(r.err));
    }
    close_execfd(s);
}

static void start_attempt(struct sup *s)
{
    s->hup_pending = 0; /* this start covers every HUP so far */
    s->gen++;
    char **env = current_env(s, s->gen, s->kind != START_FIRST);
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        pfd[0] = pfd[1] = -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        ss_child_reset_signals();
        if (pfd[0] >= 0)
            close(pfd[0]);
        struct exec_report r = {0, 0};
        if (s->cfg->dir && chdir(s->cfg->dir) < 0) {
            r = (struct exec_report){1, errno};
        } else {
            environ = env;
            execvp(s->cfg->argv[0], s->cfg->argv);
            r = (struct exec_report){2, errno};
        }
        if (pfd[1] >= 0 && write(pfd[1], &r, sizeof r) < 0)
            _exit(255);
        _exit(255);
    }
    if (pfd[1] >= 0)
        close(pfd[1]);
    if (pid < 0) {
        int e = errno;
        if (pfd[0] >= 0)
            close(pfd[0]);
        ss_env_free(env);
        ss_log("fork(2) failed:%s", strerror(e));
        char reason[128];
        snprintf(reason, sizeof reason, "fork(2) failed:%s", strerror(e));
        struct worker tmp = {.gen = s->gen, .started = ss_now_ns()};
        fail_attempt(s, &tmp, reason);
        if (s->deadline < ss_now_ns() + NS)
            s->deadline = ss_now_ns() + NS;
        return;
    }
    struct worker *w = add_worker(s, pid, s->gen, W_STARTING);
    s->pending = pid;
    s->pending_env = env;
    s->execfd = pfd[0];
    if (s->execfd >= 0)
        fcntl(s->execfd, F_SETFL, O_NONBLOCK);
    ss_log("starting new worker %d", (int)pid);
    write_last_start(s, w->gen, pid, "starting", NULL);
    s->state = SW_INTERVAL;
    s->deadline = w->started + s->cfg->interval * NS;
}

/* A restart (HUP or auto-restart): the current worker becomes old now (it
 * keeps serving, and is signalled only once the new one is up). */
static void begin_restart(struct sup *s, enum start_kind kind)
{
    struct worker *cur = s->current ? find_worker(s, s->current) : NULL;
    if (cur)
        cur->role = W_OLD;
    s->current = 0;
    s->kind = kind;
    start_attempt(s);
}

/* Back in IDLE: a queued HUP, or a lost current worker, starts the next one. */
static void idle_next(struct sup *s)
{
    if (s->state != SW_IDLE)
        return;
    if (s->hup_pending) {
        ss_log("received HUP, spawning a new worker");
        begin_restart(s, START_HUP);
    } else if (!s->current) {
        s->kind = START_DIED;
        start_attempt(s);
    }
}

static void shutdown_all(struct sup *s, int sig)
{
    if (s->state == SW_SHUTDOWN)
        return;
    ready_probe_stop(&s->probe);
    close_execfd(s);
    int tsig = sig == SIGTERM ? s->cfg->signal_on_term : SIGTERM;
    const char *tname = sig == SIGTERM ? s->cfg->signal_on_term_name : "TERM";
    char list[4096];
    pid_list(s, 0xf, list, sizeof list);
    ss_log("received %s, sending %s to all workers:%s", sig == SIGTERM ? "TERM" : "INT", tname,
           list);
    for (size_t i = 0; i < s->nw; i++)
        kill(s->w[i].pid, tsig);
    s->state = SW_SHUTDOWN;
}

static void on_worker_exit(struct sup *s, struct worker *w, int status)
{
    pid_t pid = w->pid;
    if (s->state == SW_SHUTDOWN) {
        enum worker_role role = w->role;
        ss_log("worker %d died, status:%d", (int)pid, status);
        remove_worker(s, pid);
        if (role == W_CURRENT || role == W_OLD)
            write_status(s);
        return;
    }
    switch (w->role) {
    case W_STARTING: {
        if (s->execfd >= 0)
            read_exec_pipe(s); /* the child wrote its errno before exiting */
        ss_log("new worker %d seems to have failed to start, exit status:%d", (int)pid, status);
        char reason[96];
        snprintf(reason, sizeof reason, "failed to start, exit status:%d", status);
        fail_attempt(s, w, reason);
        remove_worker(s, pid);
        break;
    }
    case W_CURRENT:
        ss_log("worker %d died unexpectedly with status:%d, restarting", (int)pid, status);
        remove_worker(s, pid);
        s->current = 0;
        write_status(s);
        if (s->state == SW_KILL_DELAY) {
            /* the new generation died before the old was retired: keep the old
             * workers unsignalled; they are retired after the next start */
            s->state = SW_IDLE;
        }
        idle_next(s);
        break;
    case W_OLD:
        ss_log("old worker %d died, status:%d", (int)pid, status);
        remove_worker(s, pid);
        write_status(s);
        break;
    case W_FAILED:
        remove_worker(s, pid);
        break;
    }
}

static void reap_all(struct sup *s)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        if (pid == s->logger_pid) {
            s->logger_pid = 0;
            continue;
        }
        int r = ready_probe_child(&s->probe, pid, status, ss_now_ns());
        if (r >= 0) {
            if (r == 1 && s->state == SW_READY) {
                ss_log("new worker %d is ready", (int)s->pending);
                promote(s);
            }
            continue;
        }
        struct worker *w = find_worker(s, pid);
        if (w)
            on_worker_exit(s, w, status);
        /* else: an orphan re-parented to us (PID 1) or a stopped probe */
    }
}

static void on_hup(struct sup *s)
{
    switch (s->state) {
    case SW_SHUTDOWN:
        return;
    case SW_IDLE:
        ss_log("received HUP, spawning a new worker");
        begin_restart(s, START_HUP);
        return;
    case SW_BACKOFF:
        /* the retry that is already scheduled starts the new worker */
        ss_log("received HUP, spawning a new worker");
        s->kind = START_HUP;
        return;
    case SW_INTERVAL:
    case SW_READY:
    case SW_KILL_DELAY:
        if (!s->hup_pending)
            ss_log("received HUP while a new worker is starting, one more new worker will "
                   "follow");
        s->hup_pending = 1;
        return;
    }
}

static void on_timer(struct sup *s, int64_t now)
{
    switch (s->state) {
    case SW_INTERVAL:
        if (now < s->deadline)
            break;
        reap_all(s); /* waitpid(WNOHANG): has it exited during the interval? */
        if (s->state != SW_INTERVAL)
            break;
        if (s->cfg->ready.kind == READY_NONE) {
            promote(s);
        } else {
            s->state = SW_READY;
            s->deadline = now + s->cfg->ready.timeout_ns;
            ready_probe_begin(&s->probe);
            ready_probe_step(&s->probe, now, 0, s->pending_env, s->pending);
        }
        break;
    case SW_READY:
        if (ready_probe_step(&s->probe, now, 0, s->pending_env, s->pending) == 1) {
            ss_log("new worker %d is ready", (int)s->pending);
            promote(s);
        } else if (now >= s->deadline) {
            struct worker *w = find_worker(s, s->pending);
            char tbuf[64], reason[400];
            units_format_duration(s->cfg->ready.timeout_ns, tbuf, sizeof tbuf);
            snprintf(reason, sizeof reason, "not ready after %s (%s)", tbuf,
                     s->probe.last_error[0] ? s->probe.last_error : "no answer");
            ss_log("new worker %d is not ready after %s (%s), stopping it%s", (int)w->pid, tbuf,
                   s->probe.last_error[0] ? s->probe.last_error : "no answer",
                   has_old(s) ? "; old workers keep serving" : "");
            kill(w->pid, s->cfg->signal_on_term);
            w->role = W_FAILED;
            fail_attempt(s, w, reason);
        }
        break;
    case SW_KILL_DELAY:
        if (now >= s->deadline)
            kill_old(s);
        break;
    case SW_BACKOFF:
        if (now >= s->deadline)
            start_attempt(s);
        break;
    case SW_IDLE:
    case SW_SHUTDOWN:
        break;
    }
    if (s->auto_tick && now >= s->auto_tick) {
        s->auto_tick = now + NS;
        if (s->state == SW_IDLE && s->current) {
            char **env = current_env(s, s->gen, 1);
            if (perl_true(ss_env_get(env, "ENABLE_AUTO_RESTART"))) {
                long long iv = env_num(env, "AUTO_RESTART_INTERVAL", 0);
                if (iv <= 0)
                    iv = 360;
                long long elapsed = (now - s->last_restart) / NS;
                int old = 0;
                for (size_t i = 0; i < s->nw; i++)
                    old |= s->w[i].role == W_OLD;
                if (elapsed >= iv && !old) {
                    ss_log("autorestart triggered (interval=%lld)", iv);
                    begin_restart(s, START_AUTO);
                } else if (elapsed >= iv * 2) {
                    ss_log("autorestart triggered (forced, interval=%lld)", iv);
                    begin_restart(s, START_AUTO);
                }
            }
            ss_env_free(env);
        }
    }
}

static int64_t next_deadline(struct sup *s)
{
    int64_t d = INT64_MAX;
    if (s->state == SW_INTERVAL || s->state == SW_READY || s->state == SW_KILL_DELAY ||
        s->state == SW_BACKOFF)
        d = s->deadline;
    if (s->state == SW_READY && s->probe.state != PROBE_EXEC && s->probe.deadline < d)
        d = s->probe.deadline;
    if (s->auto_tick && s->auto_tick < d)
        d = s->auto_tick;
    return d;
}

int ss_supervise(const struct ss_config *cfg, const struct ss_listeners *ls, int pid_fd,
                 pid_t logger_pid)
{
    (void)pid_fd;
    struct sup s = {.cfg = cfg, .ls = ls, .execfd = -1, .logger_pid = logger_pid};
    s.base_env = environ;
    s.sigfd = setup_signals();
    if (s.sigfd < 0)
        ss_die(errno, "signalfd failed:%s", strerror(errno));
    char err[300];
    if (ready_probe_init(&s.probe, &cfg->ready, err, sizeof err) < 0)
        ss_die(0, "%s", err);
    if (cfg->status_file)
        s.last_start = ss_last_start_path(cfg->status_file);
    /* auto-restart can be switched on from the env dir at any time */
    if (perl_true(ss_env_get(environ, "ENABLE_AUTO_RESTART")) || ss_env_get(environ, "ENVDIR"))
        s.auto_tick = ss_now_ns() + NS;

    s.kind = START_FIRST;
    start_attempt(&s);
    for (;;) {
        if (s.state == SW_SHUTDOWN && s.nw == 0)
            break;
        struct pollfd pfd[3];
        int n = 0, exec_i = -1, probe_i = -1;
        pfd[n++] = (struct pollfd){.fd = s.sigfd, .events = POLLIN};
        if (s.execfd >= 0) {
            exec_i = n;
            pfd[n++] = (struct pollfd){.fd = s.execfd, .events = POLLIN};
        }
        if (s.state == SW_READY && ready_probe_pollfd(&s.probe, &pfd[n]))
            probe_i = n++;
        int64_t d = next_deadline(&s), now = ss_now_ns();
        int timeout = -1;
        if (d != INT64_MAX)
            timeout = d <= now ? 0 : (int)((d - now + 999999) / 1000000);
        int rc = poll(pfd, (nfds_t)n, timeout);
        if (rc < 0 && errno != EINTR)
            ss_die(errno, "poll failed:%s", strerror(errno));
        if (rc > 0 && pfd[0].revents) {
            struct signalfd_siginfo si;
            while (read(s.sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
                switch (si.ssi_signo) {
                case SIGCHLD:
                    reap_all(&s);
                    break;
                case SIGHUP:
                    on_hup(&s);
                    break;
                case SIGTERM:
                case SIGINT:
                    shutdown_all(&s, (int)si.ssi_signo);
                    break;
                default: /* ALRM: ignored, as Perl does */
                    break;
                }
            }
        }
        if (rc > 0 && exec_i >= 0 && pfd[exec_i].revents && s.execfd == pfd[exec_i].fd)
            read_exec_pipe(&s);
        now = ss_now_ns();
        if (rc > 0 && probe_i >= 0 && pfd[probe_i].revents && s.state == SW_READY) {
            if (ready_probe_step(&s.probe, now, pfd[probe_i].revents, s.pending_env,
                                 s.pending) == 1) {
                ss_log("new worker %d is ready", (int)s.pending);
                promote(&s);
            }
        }
        on_timer(&s, ss_now_ns());
    }
    ss_log("exiting");
    if (cfg->status_file && s.status_written)
        unlink(cfg->status_file);
    if (s.last_start)
        unlink(s.last_start);
    free(s.last_start);
    ss_env_free(s.pending_env);
    free(s.w);
    close(s.sigfd);
    return 0;
}
