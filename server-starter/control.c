/* control: `start_server --restart` and `--stop`, the clients of a running
 * start_server (ours or Perl's) found through its pid file.
 *
 * --restart sends HUP and waits until the status file lists a single
 * generation newer than any before it, like Perl's; unlike Perl's it also
 * reads the "<status-file>.last-start" record our start_server keeps and
 * exits 1 with the reason as soon as the new worker failed to start or to
 * become ready (Perl's waits forever then), or when start_server is gone.
 * --stop sends TERM and waits for the pid file's lock to be released. Both
 * refuse a stale pid file (nobody holds its lock) instead of signalling a
 * pid that may belong to someone else by now. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "starter.h"

/* The first line of the pid file; dies with Perl's text when unreadable. */
static pid_t read_pid_file(const char *path, int *fd_out, char *line, size_t linelen)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        ss_die(errno, "failed to open file:%s:%s", path, strerror(errno));
    ssize_t n = read(fd, line, linelen - 1);
    line[n > 0 ? n : 0] = '\0';
    line[strcspn(line, "\n")] = '\0';
    *fd_out = fd;
    pid_t pid = (pid_t)atoi(line);
    if (pid <= 0)
        ss_die(0, "no pid found in %s", path);
    return pid;
}

/* Refuse a pid file whose lock nobody holds. */
static void require_locked(int fd, const char *path, const char *line)
{
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        fprintf(stderr, "start_server is not running (stale pid file:%s, pid:%s)\n", path,
                line);
        exit(1);
    }
}

/* Generations listed in the status file: returns how many, the largest in
 * *max, or -1 when the file cannot be opened. */
static int read_generations(const char *path, unsigned *max, unsigned *only)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    int n = 0;
    unsigned seen[64];
    *max = 0;
    while (fgets(line, sizeof line, f)) {
        char *end;
        unsigned long g = strtoul(line, &end, 10);
        if (end == line || *end != ':')
            continue;
        int dup = 0;
        for (int i = 0; i < n && i < 64; i++)
            dup |= seen[i] == g;
        if (dup)
            continue;
        if (n < 64)
            seen[n] = (unsigned)g;
        n++;
        if (g > *max)
            *max = (unsigned)g;
        if (only)
            *only = (unsigned)g;
    }
    fclose(f);
    return n;
}

struct last_start {
    unsigned gen; /* the latest attempt */
    int pid;
    char state[32];
    unsigned failed_gen; /* the latest failed attempt (0: none) */
    int failed_pid;
    char reason[512];
};

static int read_last_start(const char *path, struct last_start *ls)
{
    memset(ls, 0, sizeof *ls);
    if (!path)
        return -1;
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[700], fail[700] = "";
    int ok = fgets(line, sizeof line, f) != NULL;
    if (ok && !fgets(fail, sizeof fail, f))
        fail[0] = '\0';
    fclose(f);
    if (!ok)
        return -1;
    line[strcspn(line, "\n")] = '\0';
    fail[strcspn(fail, "\n")] = '\0';
    char *p = line, *end;
    ls->gen = (unsigned)strtoul(p, &end, 10);
    if (*end != ':')
        return -1;
    ls->pid = (int)strtol(end + 1, &end, 10);
    if (*end != ':')
        return -1;
    p = end + 1;
    snprintf(ls->state, sizeof ls->state, "%.*s", (int)strcspn(p, ":"), p);
    if (strncmp(fail, "failed:", 7) == 0) {
        ls->failed_gen = (unsigned)strtoul(fail + 7, &end, 10);
        if (*end == ':')
            ls->failed_pid = (int)strtol(end + 1, &end, 10);
        if (*end == ':')
            snprintf(ls->reason, sizeof ls->reason, "%s", end + 1);
        else
            ls->failed_gen = 0;
    }
    return 0;
}

int ss_restart(const struct ss_config *cfg)
{
    if (!cfg->pid_file || !cfg->status_file)
        ss_die(0, "--restart option requires --pid-file and --status-file to be set as well");
    char line[64];
    int fd;
    pid_t pid = read_pid_file(cfg->pid_file, &fd, line, sizeof line);
    require_locked(fd, cfg->pid_file, line);
    unsigned base, only = 0;
    int n = read_generations(cfg->status_file, &base, NULL);
    if (n < 0)
        ss_die(errno, "failed to open file:%s:%s", cfg->status_file, strerror(errno));
    if (n == 0)
        ss_die(0, "no active process found in the status file");
    char *lsp = ss_last_start_path(cfg->status_file);
    struct last_start ls;
    if (read_last_start(lsp, &ls) == 0 && ls.gen > base)
        base = ls.gen; /* a start already under way does not answer our HUP */
    if (kill(pid, SIGHUP) < 0)
        ss_die(errno, "failed to send SIGHUP to the server process:%s", strerror(errno));
    const struct timespec tick = {0, 100 * 1000 * 1000};
    for (;;) {
        unsigned max;
        n = read_generations(cfg->status_file, &max, &only);
        if (n == 1 && only > base) {
            close(fd);
            free(lsp);
            return 0;
        }
        if (read_last_start(lsp, &ls) == 0 && ls.failed_gen > base) {
            fprintf(stderr, "restart failed: new worker %d (generation %u) %s\n", ls.failed_pid,
                    ls.failed_gen, ls.reason);
            close(fd);
            free(lsp);
            return 1;
        }
        if (kill(pid, 0) < 0 && errno == ESRCH) {
            fprintf(stderr, "restart failed: start_server (pid:%d) exited\n", (int)pid);
            close(fd);
            free(lsp);
            return 1;
        }
        nanosleep(&tick, NULL);
    }
}

int ss_stop(const struct ss_config *cfg)
{
    if (!cfg->pid_file)
        ss_die(0, "--stop option requires --pid-file to be set as well");
    char line[64];
    int fd;
    pid_t pid = read_pid_file(cfg->pid_file, &fd, line, sizeof line);
    require_locked(fd, cfg->pid_file, line);
    fprintf(stderr, "stop_server (pid:%d) stopping now (pid:%s)...\n", (int)getpid(), line);
    if (kill(pid, SIGTERM) < 0)
        ss_die(errno, "failed to send SIGTERM to the server process:%s", strerror(errno));
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR)
            ss_die(errno, "flock failed(%s): %s", cfg->pid_file, strerror(errno));
    }
    close(fd);
    return 0;
}
