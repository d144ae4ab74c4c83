/* ready: readiness probes of a new worker (see ready.h). One attempt at a
 * time; a failed attempt is retried RETRY_NS later; a socket attempt gives up
 * after ATTEMPT_NS. */
#include "ready.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "starter.h"

#define RETRY_NS (250LL * 1000000LL)
#define ATTEMPT_NS (2000LL * 1000000LL)

int ready_probe_init(struct ready_probe *p, const struct ready_spec *spec, char *err,
                     size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->spec = spec;
    p->fd = -1;
    if (spec->kind != READY_TCP && spec->kind != READY_HTTP)
        return 0;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(spec->host, spec->port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "--ready-check: failed to resolve host:%s:%s", spec->host,
                 gai_strerror(rc));
        return -1;
    }
    memcpy(&p->addr, res->ai_addr, res->ai_addrlen);
    p->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    int v6 = strchr(spec->host, ':') != NULL;
    p->reqlen = (size_t)snprintf(p->req, sizeof p->req,
                                 "GET %s HTTP/1.0\r\nHost: %s%s%s:%s\r\n"
                                 "User-Agent: start_server ready-check\r\n"
                                 "Connection: close\r\n\r\n",
                                 spec->path, v6 ? "[" : "", spec->host, v6 ? "]" : "",
                                 spec->port);
    if (p->reqlen >= sizeof p->req)
        p->reqlen = sizeof p->req - 1;
    return 0;
}

static void close_fd(struct ready_probe *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
}

/* The attempt failed: remember why, try again shortly. */
static int attempt_failed(struct ready_probe *p, int64_t now, const char *fmt, const char *arg)
{
    close_fd(p);
    snprintf(p->last_error, sizeof p->last_error, fmt, arg);
    p->state = PROBE_WAIT;
    p->deadline = now + RETRY_NS;
    return 0;
}

void ready_probe_begin(struct ready_probe *p)
{
    close_fd(p);
    p->state = PROBE_WAIT;
    p->deadline = 0;
    p->last_error[0] = '\0';
    p->attempts = 0;
}

void ready_probe_stop(struct ready_probe *p)
{
    close_fd(p);
    if (p->state == PROBE_EXEC && p->pid > 0)
        kill(p->pid, SIGKILL);
    p->pid = 0;
    p->state = PROBE_OFF;
}

int ready_probe_pollfd(const struct ready_probe *p, struct pollfd *pfd)
{
    if (p->fd < 0)
        return 0;
    pfd->fd = p->fd;
    pfd->events = p->state == PROBE_RECV ? POLLIN : POLLOUT;
    pfd->revents = 0;
    return 1;
}

static int start_attempt(struct ready_probe *p, int64_t now, char **env, pid_t worker_pid)
{
    p->attempts++;
    if (p->spec->kind == READY_EXEC) {
        char pidbuf[64];
        snprintf(pidbuf, sizeof pidbuf, "SERVER_STARTER_WORKER_PID=%d", (int)worker_pid);
        const char *extra[] = {pidbuf, NULL};
        char **cenv = ss_env_build(env, NULL, extra);
        pid_t pid = fork();
        if (pid < 0) {
            ss_env_free(cenv);
            return attempt_failed(p, now, "fork: %s", strerror(errno));
        }
        if (pid == 0) {
            ss_child_reset_signals();
            dup2(2, 1);
            /* not the listening sockets: a check that leaves a process
             * behind must not hold them open */
            close_range(3, ~0U, 0);
            execle("/bin/sh", "sh", "-c", p->spec->command, (char *)NULL, cenv);
            _exit(127);
        }
        ss_env_free(cenv);
        p->pid = pid;
        p->state = PROBE_EXEC;
        p->deadline = INT64_MAX;
        return 0;
    }
    p->fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd < 0)
        return attempt_failed(p, now, "socket: %s", strerror(errno));
    p->deadline = now + ATTEMPT_NS;
    p->len = p->sent = 0;
    if (connect(p->fd, (struct sockaddr *)&p->addr, p->addrlen) < 0 && errno != EINPROGRESS)
        return attempt_failed(p, now, "connect: %s", strerror(errno));
    p->state = PROBE_CONNECT;
    return 0;
}

/* Status line of the response: 2xx/3xx is ready. */
static int http_verdict(struct ready_probe *p, int64_t now, int eof)
{
    char *nl = memchr(p->buf, '\n', p->len);
    if (!nl && !eof && p->len < sizeof p->buf - 1)
        return 0; /* need more */
    p->buf[nl ? (size_t)(nl - p->buf) : p->len] = '\0';
    int code = 0;
    if (sscanf(p->buf, "HTTP/%*d.%*d %d", &code) != 1) {
        attempt_failed(p, now, "%s", "no HTTP response");
        return 0;
    }
    if (code >= 200 && code < 400) {
        close_fd(p);
        p->state = PROBE_OFF;
        return 1;
    }
    char codebuf[32];
    snprintf(codebuf, sizeof codebuf, "%d", code);
    attempt_failed(p, now, "HTTP status %s", codebuf);
    return 0;
}

int ready_probe_step(struct ready_probe *p, int64_t now, short revents, char **env,
                     pid_t worker_pid)
{
    switch (p->state) {
    case PROBE_OFF:
    case PROBE_EXEC:
        return 0;
    case PROBE_WAIT:
        if (now >= p->deadline)
            start_attempt(p, now, env, worker_pid);
        return 0;
    case PROBE_CONNECT:
        if (revents) {
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
            if (soerr)
                return attempt_failed(p, now, "connect: %s", strerror(soerr));
            if (p->spec->kind == READY_TCP) {
                close_fd(p);
                p->state = PROBE_OFF;
                return 1;
            }
            p->state = PROBE_SEND;
        }
        break;
    case PROBE_SEND:
        if (revents) {
            ssize_t n = send(p->fd, p->req + p->sent, p->reqlen - p->sent, MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                return attempt_failed(p, now, "send: %s", strerror(errno));
            if (n > 0)
                p->sent += (size_t)n;
            if (p->sent == p->reqlen)
                p->state = PROBE_RECV;
        }
        break;
    case PROBE_RECV:
        if (revents) {
            ssize_t n = recv(p->fd, p->buf + p->len, sizeof p->buf - 1 - p->len, 0);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                return attempt_failed(p, now, "recv: %s", strerror(errno));
            if (n == 0 && p->len == 0)
                return attempt_failed(p, now, "%s", "connection closed without a response");
            if (n >= 0) {
                p->len += (size_t)n;
                if (http_verdict(p, now, n == 0))
                    return 1;
                if (p->state != PROBE_RECV)
                    return 0;
            }
        }
        break;
    }
    if (p->fd >= 0 && now >= p->deadline)
        return attempt_failed(p, now, "%s", "timed out");
    return 0;
}

int ready_probe_child(struct ready_probe *p, pid_t pid, int status, int64_t now)
{
    if (p->state != PROBE_EXEC || pid != p->pid)
        return -1;
    p->pid = 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        p->state = PROBE_OFF;
        return 1;
    }
    char why[64];
    if (WIFEXITED(status))
        snprintf(why, sizeof why, "exit status %d", WEXITSTATUS(status));
    else
        snprintf(why, sizeof why, "killed by signal %d", WTERMSIG(status));
    attempt_failed(p, now, "command: %s", why);
    return 0;
}
