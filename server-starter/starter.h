/* starter: the pieces of start_server shared between its modules — the log
 * line writer (every message goes through ss_log, one write(2) per line so
 * lines from start_server and its workers never interleave mid-line), fatal
 * errors with Perl's exit status, socket binding, env dir loading, the
 * supervisor loop and the --restart/--stop clients. */
#ifndef SS_STARTER_H
#define SS_STARTER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "options.h"

/* One line on stderr (a newline is appended). */
void ss_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print one line and exit the way Perl's die does: with errno_value when it is
 * non-zero (e.g. 98 for EADDRINUSE), else 255. */
void ss_die(int errno_value, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/* Monotonic clock in nanoseconds. */
int64_t ss_now_ns(void);

/* In a forked child before exec: default dispositions for the signals the
 * supervisor reads from its signalfd, and the signal mask start_server was
 * started with (SIGPIPE stays ignored, as under Perl's start_server). */
void ss_child_reset_signals(void);

/* --- sockets.c --- */

/* The bound sockets and the SERVER_STARTER_PORT value describing them. */
struct ss_listeners {
    int *fds;
    size_t nfds;
    char *env; /* "KEY=FD;KEY=FD", "" when nothing is bound */
    int stdin_is_socket; /* some --port=...=0 */
};

/* Bind every --port and --path (dies with Perl's messages on failure); the
 * fds are left without close-on-exec. keep[0..nkeep) are start_server's own
 * fds (pid file, log; -1 for none), which an =FD target must not overwrite:
 * such an fd is moved out of the way and *keep[i] updated. */
void ss_listen_all(const struct ss_config *cfg, struct ss_listeners *out, int *const keep[],
                   size_t nkeep);

/* Remove the unix socket files of --path (at exit). */
void ss_unlink_paths(const struct ss_config *cfg);

/* --- envdir.c --- */

/* A NULL-terminated environment: base (copied) with every file of dir
 * overlaid (first line, dotfiles skipped). Extra "NAME=VALUE" strings (may be
 * NULL) are applied last. Free with ss_env_free. */
char **ss_env_build(char **base, const char *dir, const char *const *extra);
void ss_env_free(char **env);
/* The value of name in env, or NULL. */
const char *ss_env_get(char **env, const char *name);

/* --- supervisor.c --- */

/* Run the supervisor loop until TERM/INT; returns the exit status. */
int ss_supervise(const struct ss_config *cfg, const struct ss_listeners *ls, int pid_fd,
                 pid_t logger_pid);

/* Status-file companion holding the outcome of the latest start attempt,
 * read by --restart: "<status-file>.last-start". Returns malloc'd path. */
char *ss_last_start_path(const char *status_file);

/* --- control.c --- */

/* --restart and --stop. Return the exit status. */
int ss_restart(const struct ss_config *cfg);
int ss_stop(const struct ss_config *cfg);

#endif
