/* start_server: a superdaemon for hot deploy, a drop-in for Perl's
 * Server::Starter 0.35 start_server (see start_server.1). main() does the
 * start-up in Perl's order — options, exported variables, log file, the
 * "starting now" line, sockets, output redirection, daemonize, pid file —
 * with one change: the pid file is locked first, so a second start_server
 * says at once that one is running instead of failing to bind (or, like
 * Perl's, blocking on the lock), and a stale pid file is simply taken over.
 * Then the supervisor loop runs until TERM/INT. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "starter.h"
#include "version.h"

void ss_log(const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(2, buf + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        off += (int)w;
    }
}

/* The pid file this process locked (created, or a stale one taken over):
 * a fatal error removes it, as the normal exit does, so that a failed start
 * leaves none behind (Perl's creates it only once the sockets are bound).
 * Forked children that die never touch it. */
static const char *held_pid_file;
static pid_t held_pid_file_by;

void ss_die(int errno_value, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ss_log("%s", buf);
    if (held_pid_file && held_pid_file_by == getpid())
        unlink(held_pid_file);
    exit(errno_value > 0 && errno_value < 256 ? errno_value : 255);
}

int64_t ss_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Open and lock the pid file; refuse when another start_server holds it. The
 * fd is moved high so the sockets get the fd numbers Perl's would. */
static int lock_pid_file(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        ss_die(errno, "failed to open file:%s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK)
            ss_die(errno, "flock failed(%s): %s", path, strerror(errno));
        char line[64] = "";
        ssize_t n = pread(fd, line, sizeof line - 1, 0);
        line[n > 0 ? n : 0] = '\0';
        line[strcspn(line, "\n")] = '\0';
        fprintf(stderr, "start_server is already running (pid:%s holds the lock on %s)\n",
                line[0] ? line : "?", path);
        exit(1);
    }
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 100);
    if (high >= 0) {
        close(fd);
        fd = high;
    }
    held_pid_file = path;
    held_pid_file_by = getpid();
    return fd;
}

static void write_pid_file(int fd, const char *path)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
        ss_die(errno, "failed to write file:%s: %s", path, strerror(errno));
}

/* --log-file: "FILE" (append) or "| CMD" (a /bin/sh child reading a pipe).
 * Returns the fd to become stdout/stderr; *logger gets the pipe child. */
static int open_log(const char *spec, pid_t *logger)
{
    const char *p = spec;
    while (*p == ' ' || *p == '\t' || *p == '\n')
        p++;
    if (*p == '|') {
        p++;
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        int pfd[2];
        if (pipe(pfd) < 0)
            ss_die(errno, "failed to open pipe:%s: %s", spec, strerror(errno));
        pid_t pid = fork();
        if (pid < 0)
            ss_die(errno, "failed to open pipe:%s: %s", spec, strerror(errno));
        if (pid == 0) {
            close(pfd[1]);
            if (pfd[0] != 0) {
                dup2(pfd[0], 0);
                close(pfd[0]);
            }
            execl("/bin/sh", "sh", "-c", p, (char *)NULL);
            _exit(127);
        }
        close(pfd[0]);
        fcntl(pfd[1], F_SETFD, FD_CLOEXEC);
        *logger = pid;
        return pfd[1];
    }
    int fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        ss_die(errno, "failed to open log file:%s: %s", spec, strerror(errno));
    return fd;
}

static void daemonize(const struct ss_listeners *ls)
{
    pid_t pid = fork();
    if (pid < 0)
        ss_die(errno, "fork failed:%s", strerror(errno));
    if (pid > 0)
        _exit(0);
    setsid();
    pid = fork();
    if (pid < 0)
        ss_die(errno, "fork failed:%s", strerror(errno));
    if (pid > 0)
        _exit(0);
    held_pid_file_by = getpid();
    if (!ls->stdin_is_socket) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0)
            ss_die(errno, "reopen failed: %s", strerror(errno));
        if (fd != 0) {
            dup2(fd, 0);
            close(fd);
        }
    }
}

static void set_env_ll(const char *name, long long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    setenv(name, buf, 1);
}

static int config_free(struct ss_config *cfg, int rc)
{
    free(cfg->ports);
    free(cfg->paths);
    free(cfg->argv);
    return rc;
}

int main(int argc, char **argv)
{
    struct ss_config cfg;
    if (ss_options_parse(&cfg, argc, argv) < 0)
        return config_free(&cfg, 1);
    if (cfg.help) {
        ss_usage(stdout);
        printf("\nopskit start_server %s\n", OPSKIT_VERSION);
        return config_free(&cfg, 0);
    }
    if (cfg.version) {
        puts("0.35"); /* what Perl's prints (scripts compare it) */
        return config_free(&cfg, 0);
    }
    if (cfg.restart)
        return config_free(&cfg, ss_restart(&cfg));
    if (cfg.stop)
        return config_free(&cfg, ss_stop(&cfg));
    if (cfg.daemonize && !cfg.log_file)
        ss_die(0, "Usage: --log-file option must be specified together with --deamonize");
    if (cfg.argc == 0)
        ss_die(0, "server program not specified");

    if (cfg.envdir)
        setenv("ENVDIR", cfg.envdir, 1);
    if (cfg.enable_auto_restart)
        setenv("ENABLE_AUTO_RESTART", "1", 1);
    if (cfg.kill_old_delay_set)
        set_env_ll("KILL_OLD_DELAY", cfg.kill_old_delay);
    if (cfg.auto_restart_interval_set)
        set_env_ll("AUTO_RESTART_INTERVAL", cfg.auto_restart_interval);

    /* Perl loads the env dir into its own environment once at start-up (a
     * `local` that lasts its lifetime): variables found then stay even when
     * their files are removed later; later loads overlay this. */
    const char *envdir = getenv("ENVDIR");
    if (envdir) {
        char **loaded = ss_env_build(NULL, envdir, NULL);
        for (char **e = loaded; e && *e; e++) {
            char *eq = strchr(*e, '=');
            *eq = '\0';
            setenv(*e, eq + 1, 1);
        }
        ss_env_free(loaded);
    }

    /* Perl's start_server keeps its script open on fd 3 (close-on-exec), so
     * its log file and sockets start at 4: hold fd 3 the same way, and the
     * workers see the same SERVER_STARTER_PORT. Never closed (an =3 socket
     * may replace it). */
    if (fcntl(3, F_GETFD) < 0)
        (void)open("/dev/null", O_RDONLY | O_CLOEXEC);
    int pid_fd = cfg.pid_file ? lock_pid_file(cfg.pid_file) : -1;
    pid_t logger = 0;
    int log_fd = cfg.log_file ? open_log(cfg.log_file, &logger) : -1;

    ss_log("start_server (pid:%d) starting now...", (int)getpid());
    struct ss_listeners ls;
    int *keep[] = {&pid_fd, &log_fd};
    ss_listen_all(&cfg, &ls, keep, 2);
    setenv("SERVER_STARTER_PORT", ls.env, 1);
    setenv("SERVER_STARTER_GENERATION", "0", 1);

    if (log_fd >= 0) {
        if (dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)
            ss_die(errno, "failed to dup STDOUT to file: %s", strerror(errno));
        close(log_fd);
    }
    if (cfg.daemonize) {
        daemonize(&ls);
        logger = 0; /* not our child any more */
    }
    if (pid_fd >= 0)
        write_pid_file(pid_fd, cfg.pid_file);

    int rc = ss_supervise(&cfg, &ls, pid_fd, logger);

    ss_unlink_paths(&cfg);
    if (pid_fd >= 0) {
        if (unlink(cfg.pid_file) < 0)
            ss_log("failed to unlink file:%s:%s", cfg.pid_file, strerror(errno));
        close(pid_fd);
    }
    if (logger > 0) {
        /* let the log command see EOF and finish writing */
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
            close(devnull);
        }
        for (int i = 0; i < 300; i++) {
            if (waitpid(logger, NULL, WNOHANG) != 0)
                break;
            struct timespec t = {0, 10 * 1000 * 1000};
            nanosleep(&t, NULL);
        }
    }
    free(ls.fds);
    free(ls.env);
    return config_free(&cfg, rc);
}
