/* ready: the readiness gate — repeated probes of a new worker (tcp connect,
 * HTTP GET, or a shell command) driven by the supervisor's poll loop, never
 * blocking it: sockets are non-blocking with a per-attempt deadline, and a
 * command runs as a child whose exit status the supervisor's reaper hands
 * back. The probe only says "ready" or "not yet" (with the last reason); the
 * overall --ready-timeout belongs to the supervisor's state machine. */
#ifndef SS_READY_H
#define SS_READY_H

#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "options.h"

enum probe_state { PROBE_OFF, PROBE_WAIT, PROBE_CONNECT, PROBE_SEND, PROBE_RECV, PROBE_EXEC };

struct ready_probe {
    const struct ready_spec *spec;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    enum probe_state state;
    int fd;               /* PROBE_CONNECT/SEND/RECV: owned socket, else -1 */
    pid_t pid;            /* PROBE_EXEC: the command's pid, else 0 */
    int64_t deadline;     /* WAIT: when the next attempt starts; else attempt timeout */
    char req[1400];       /* HTTP request */
    size_t reqlen, sent;
    char buf[512];        /* HTTP response head */
    size_t len;
    char last_error[256]; /* why the last attempt failed ("" before any) */
    int attempts;
};

/* Resolve the spec's address (a blocking lookup meant for start-up). Returns
 * 0, or -1 with a reason in err. */
int ready_probe_init(struct ready_probe *p, const struct ready_spec *spec, char *err,
                     size_t errlen);

/* Start probing: the first attempt starts at the next ready_probe_step. */
void ready_probe_begin(struct ready_probe *p);

/* Stop probing: close the socket, SIGKILL a running command (the reaper
 * will see its exit and ready_probe_child ignores it). */
void ready_probe_stop(struct ready_probe *p);

/* The fd to poll and its events; returns 0 when there is none. */
int ready_probe_pollfd(const struct ready_probe *p, struct pollfd *pfd);

/* Drive the probe after poll (revents of its fd, 0 on a timer). Returns 1
 * when the check passed, 0 while not yet. Starts attempts itself; exec
 * attempts fork with env. */
int ready_probe_step(struct ready_probe *p, int64_t now, short revents, char **env,
                     pid_t worker_pid);

/* A child exited: if it is the probe's command, record the result and return
 * 1 (ready) or 0 (not yet); return -1 when pid is not the probe's. */
int ready_probe_child(struct ready_probe *p, pid_t pid, int status, int64_t now);

#endif
