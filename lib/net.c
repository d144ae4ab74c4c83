/* net: listen / dial / Server::Starter helpers (see net.h). The dialer is a
 * tiny state machine on a libev loop: resolve (getaddrinfo_a, off-thread, only
 * for names) → connect to each address in turn → callback; one timer bounds
 * the whole attempt. */
#include "net.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int net_split_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen,
                       char *err, size_t errlen)
{
    const char *h, *p;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "address %s: missing port or ']'", s);
            return -1;
        }
        h = s + 1;
        hl = (size_t)(close - h);
        p = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon) {
            snprintf(err, errlen, "address %s: missing port in address", s);
            return -1;
        }
        if (memchr(s, ':', (size_t)(colon - s))) {
            snprintf(err, errlen, "address %s: too many colons in address", s);
            return -1;
        }
        h = s;
        hl = (size_t)(colon - s);
        p = colon + 1;
    }
    if (hl >= hostlen) {
        snprintf(err, errlen, "address %s: host too long", s);
        return -1;
    }
    if (*p == '\0') {
        snprintf(err, errlen, "address %s: missing port", s);
        return -1;
    }
    size_t pl = strlen(p);
    if (pl >= portlen) {
        snprintf(err, errlen, "address %s: invalid port", s);
        return -1;
    }
    int digits = 1;
    for (const char *c = p; *c; c++) {
        if (!isdigit((unsigned char)*c))
            digits = 0;
        if (!isalnum((unsigned char)*c) && *c != '-') {
            snprintf(err, errlen, "address %s: invalid port", s);
            return -1;
        }
    }
    if (digits) {
        long v = strtol(p, NULL, 10);
        if (pl > 5 || v < 0 || v > 65535) {
            snprintf(err, errlen, "address %s: invalid port", s);
            return -1;
        }
    }
    for (size_t i = 0; i < hl; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c <= ' ' || c == '/' || c == ',' || c == '[' || c == ']' || c >= 0x7f) {
            snprintf(err, errlen, "address %s: invalid host", s);
            return -1;
        }
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, p, pl + 1);
    return 0;
}

int net_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    return fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -1 : 0;
}

void net_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int net_set_nodelay(int fd)
{
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int net_listen(const char *hostport, int backlog, char *err, size_t errlen)
{
    char host[256], port[32];
    if (net_split_hostport(hostport, host, sizeof host, port, sizeof port, err, errlen) < 0)
        return -1;
    struct addrinfo hints = { 0 }, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "listen tcp %s: %s", hostport, gai_strerror(rc));
        return -1;
    }
    int fd = -1, saved = 0;
    /* ":port" means every address, v4 included, as in Go: getaddrinfo gives
     * 0.0.0.0 first, so the wildcard v6 socket (dual-stack) is tried first,
     * and 0.0.0.0 only where there is no IPv6. */
    for (int pass = host[0] ? 1 : 0; fd < 0 && pass < 2; pass++) {
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int v6 = ai->ai_family == AF_INET6;
        if (pass == 0 ? !v6 : (!host[0] && v6))
            continue;
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6 && !host[0]) {
            int zero = 0;
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errlen, "listen tcp %s: %s", hostport, strerror(saved));
    return fd;
}

void net_addr_unmap_v4(const struct sockaddr_storage *in, struct sockaddr_storage *out)
{
    const struct sockaddr_in6 *a6 = (const void *)in;
    if (in->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
        *out = *in;
        return;
    }
    struct sockaddr_in *a4 = (void *)out;
    memset(out, 0, sizeof *out);
    a4->sin_family = AF_INET;
    a4->sin_port = a6->sin6_port;
    memcpy(&a4->sin_addr, &a6->sin6_addr.s6_addr[12], 4);
}

void net_format_addr(const struct sockaddr *sa, socklen_t len, char *buf, size_t buflen)
{
    char ip[INET6_ADDRSTRLEN];
    if (buflen == 0)
        return;
    buf[0] = '\0';
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(buf, buflen, "%s:%u", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            struct sockaddr_storage ss, v4;
            memcpy(&ss, sa, sizeof *in6);
            net_addr_unmap_v4(&ss, &v4);
            net_format_addr((const struct sockaddr *)&v4, sizeof(struct sockaddr_in), buf,
                            buflen);
            return;
        }
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(buf, buflen, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        int n = len > off ? (int)strnlen(un->sun_path, len - off) : 0;
        snprintf(buf, buflen, "unix:%.*s", n, un->sun_path);
    }
}

void net_peer_name(int fd, char *buf, size_t buflen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (buflen)
        buf[0] = '\0';
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
        net_format_addr((struct sockaddr *)&ss, len, buf, buflen);
}

void net_local_name(int fd, char *buf, size_t buflen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (buflen)
        buf[0] = '\0';
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        net_format_addr((struct sockaddr *)&ss, len, buf, buflen);
}

void net_join_hostport(const char *host, unsigned port, char *buf, size_t buflen)
{
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 1 && host[hl - 1] == ']')
        snprintf(buf, buflen, "%s:%u", host, port);
    else if (strchr(host, ':'))
        snprintf(buf, buflen, "[%s]:%u", host, port);
    else
        snprintf(buf, buflen, "%s:%u", host, port);
}

int net_starter_parse(const char *env, struct net_starter_port *out, size_t max, char *err,
                      size_t errlen)
{
    size_t n = 0;
    const char *p = env;
    while (*p) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            const char *eq = memrchr(p, '=', len);
            if (!eq || eq == p) {
                snprintf(err, errlen, "SERVER_STARTER_PORT: malformed entry \"%.*s\"",
                         (int)(len > 100 ? 100 : len), p);
                return -1;
            }
            size_t al = (size_t)(eq - p);
            const char *fs = eq + 1;
            size_t fl = len - al - 1;
            long fd = 0;
            if (fl == 0 || fl > 9) {
                snprintf(err, errlen, "SERVER_STARTER_PORT: bad fd in \"%.*s\"",
                         (int)(len > 100 ? 100 : len), p);
                return -1;
            }
            for (size_t i = 0; i < fl; i++) {
                if (!isdigit((unsigned char)fs[i])) {
                    snprintf(err, errlen, "SERVER_STARTER_PORT: bad fd in \"%.*s\"",
                             (int)(len > 100 ? 100 : len), p);
                    return -1;
                }
                fd = fd * 10 + (fs[i] - '0');
            }
            if (n >= max) {
                snprintf(err, errlen, "SERVER_STARTER_PORT: more than %zu entries", max);
                return -1;
            }
            if (al >= sizeof out[n].addr) {
                snprintf(err, errlen, "SERVER_STARTER_PORT: address too long");
                return -1;
            }
            memcpy(out[n].addr, p, al);
            out[n].addr[al] = '\0';
            out[n].fd = (int)fd;
            n++;
        }
        if (!end)
            break;
        p = end + 1;
    }
    if (n == 0) {
        snprintf(err, errlen, "SERVER_STARTER_PORT: no listening socket in \"%.100s\"", env);
        return -1;
    }
    return (int)n;
}

int net_starter_listener(char *err, size_t errlen)
{
    const char *env = getenv("SERVER_STARTER_PORT");
    if (!env)
        return -2;
    struct net_starter_port ports[16];
    if (net_starter_parse(env, ports, 16, err, errlen) < 0)
        return -1;
    int fd = ports[0].fd;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "SERVER_STARTER_PORT: fd %d (%s) is not a socket", fd,
                 ports[0].addr);
        return -1;
    }
    if (net_set_nonblock(fd) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        snprintf(err, errlen, "SERVER_STARTER_PORT: fd %d: %s", fd, strerror(errno));
        return -1;
    }
    return fd;
}

/* ---- dialer ---- */

struct net_dial {
    struct ev_loop *loop;
    net_dial_cb cb;
    void *arg;
    char target[300];
    char network[8]; /* "tcp" or "unix" for messages */
    ev_timer timer;  /* overall deadline; also used with 0 delay to report early errors */
    ev_io io;
    ev_async async;        /* getaddrinfo_a completion */
    struct gaicb gcb;
    struct addrinfo hints;
    char host[256], port[32];
    struct addrinfo *res, *cur;
    struct sockaddr_storage one; /* numeric / unix address without getaddrinfo */
    socklen_t one_len;
    int fd;
    int gai_pending;
    int cancelled;
    int failing; /* timer armed to report err */
    char err[1024];
};

/* strerror the way Go prints it: "connection refused". */
static const char *go_strerror(int e, char *buf, size_t len)
{
    snprintf(buf, len, "%s", strerror(e));
    if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
        buf[0] = (char)(buf[0] - 'A' + 'a');
    return buf;
}

static void dial_free(struct net_dial *d)
{
    if (d->res)
        freeaddrinfo(d->res);
    free(d);
}

static void dial_finish(struct net_dial *d, int fd, const char *error)
{
    ev_timer_stop(d->loop, &d->timer);
    ev_io_stop(d->loop, &d->io);
    net_dial_cb cb = d->cb;
    void *arg = d->arg;
    d->cb = NULL;
    if (cb)
        cb(arg, fd, error);
    else if (fd >= 0)
        close(fd);
    if (!d->gai_pending) {
        ev_async_stop(d->loop, &d->async);
        dial_free(d);
    } else {
        d->cancelled = 1; /* freed by the async callback */
    }
}

static void dial_fail_soon(struct net_dial *d)
{
    d->failing = 1;
    ev_timer_stop(d->loop, &d->timer);
    ev_timer_set(&d->timer, 0., 0.);
    ev_timer_start(d->loop, &d->timer);
}

static void dial_next(struct net_dial *d);

static void dial_try(struct net_dial *d, const struct sockaddr *sa, socklen_t len)
{
    char eb[128];
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(d->err, sizeof d->err, "dial %s %s: socket: %s", d->network, d->target,
                 go_strerror(errno, eb, sizeof eb));
        dial_next(d);
        return;
    }
    if (connect(fd, sa, len) < 0 && errno != EINPROGRESS) {
        snprintf(d->err, sizeof d->err, "dial %s %s: connect: %s", d->network, d->target,
                 go_strerror(errno, eb, sizeof eb));
        close(fd);
        dial_next(d);
        return;
    }
    d->fd = fd;
    ev_io_set(&d->io, fd, EV_WRITE);
    ev_io_start(d->loop, &d->io);
}

/* Try the next resolved address, or report the last error. */
static void dial_next(struct net_dial *d)
{
    if (d->cur) {
        struct addrinfo *ai = d->cur;
        d->cur = ai->ai_next;
        dial_try(d, ai->ai_addr, ai->ai_addrlen);
        return;
    }
    dial_fail_soon(d);
}

static void dial_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct net_dial *d = w->data;
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    ev_io_stop(d->loop, &d->io);
    if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
        soerr = errno;
    if (soerr == 0) {
        int fd = d->fd;
        d->fd = -1;
        if (d->network[0] == 't')
            net_set_nodelay(fd);
        dial_finish(d, fd, NULL);
        return;
    }
    char eb[128];
    snprintf(d->err, sizeof d->err, "dial %s %s: connect: %s", d->network, d->target,
             go_strerror(soerr, eb, sizeof eb));
    close(d->fd);
    d->fd = -1;
    dial_next(d);
}

static void dial_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct net_dial *d = w->data;
    if (d->fd >= 0) {
        close(d->fd);
        d->fd = -1;
    }
    if (!d->failing)
        snprintf(d->err, sizeof d->err, "dial %s %s: i/o timeout", d->network, d->target);
    dial_finish(d, -1, d->err);
}

static void dial_async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)revents;
    struct net_dial *d = w->data;
    if (!d->gai_pending)
        return;
    int rc = gai_error(&d->gcb);
    if (rc == EAI_INPROGRESS)
        return;
    d->gai_pending = 0;
    d->res = d->gcb.ar_result;
    if (d->cancelled) {
        ev_async_stop(loop, &d->async);
        dial_free(d);
        return;
    }
    if (rc != 0) {
        snprintf(d->err, sizeof d->err, "dial %s %s: lookup %s: %s", d->network, d->target,
                 d->host, gai_strerror(rc));
        dial_fail_soon(d);
        return;
    }
    d->cur = d->res;
    snprintf(d->err, sizeof d->err, "dial %s %s: no address", d->network, d->target);
    dial_next(d);
}

static void dial_gai_notify(union sigval sv)
{
    struct net_dial *d = sv.sival_ptr;
    ev_async_send(d->loop, &d->async);
}

struct net_dial *net_dial(struct ev_loop *loop, const char *target, double timeout_sec,
                          net_dial_cb cb, void *arg)
{
    struct net_dial *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->loop = loop;
    d->cb = cb;
    d->arg = arg;
    d->fd = -1;
    snprintf(d->target, sizeof d->target, "%s", target);
    ev_timer_init(&d->timer, dial_timer_cb, timeout_sec > 0 ? timeout_sec : 1e9, 0.);
    d->timer.data = d;
    ev_io_init(&d->io, dial_io_cb, -1, EV_WRITE);
    d->io.data = d;
    ev_async_init(&d->async, dial_async_cb);
    d->async.data = d;
    ev_timer_start(loop, &d->timer);

    if (strncmp(target, "unix:", 5) == 0) {
        snprintf(d->network, sizeof d->network, "unix");
        snprintf(d->target, sizeof d->target, "%s", target + 5);
        struct sockaddr_un *un = (struct sockaddr_un *)&d->one;
        if (strlen(target + 5) >= sizeof un->sun_path || !target[5]) {
            snprintf(d->err, sizeof d->err, "dial unix %s: invalid socket path", target + 5);
            dial_fail_soon(d);
            return d;
        }
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, target + 5);
        dial_try(d, (struct sockaddr *)un, sizeof *un);
        return d;
    }
    snprintf(d->network, sizeof d->network, "tcp");
    char err[256];
    if (net_split_hostport(target, d->host, sizeof d->host, d->port, sizeof d->port, err,
                           sizeof err) < 0) {
        snprintf(d->err, sizeof d->err, "dial tcp %s", err);
        dial_fail_soon(d);
        return d;
    }
    struct sockaddr_in *in = (struct sockaddr_in *)&d->one;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&d->one;
    char *pend;
    long pn = strtol(d->port, &pend, 10);
    int numeric_port = *pend == '\0';
    const char *h = d->host[0] ? d->host : "127.0.0.1";
    if (numeric_port && inet_pton(AF_INET, h, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)pn);
        dial_try(d, (struct sockaddr *)in, sizeof *in);
        return d;
    }
    if (numeric_port && inet_pton(AF_INET6, h, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)pn);
        dial_try(d, (struct sockaddr *)in6, sizeof *in6);
        return d;
    }
    /* a name: resolve on a helper thread, completion wakes the loop */
    d->hints.ai_family = AF_UNSPEC;
    d->hints.ai_socktype = SOCK_STREAM;
    d->gcb.ar_name = d->host;
    d->gcb.ar_service = d->port;
    d->gcb.ar_request = &d->hints;
    struct gaicb *list[1] = { &d->gcb };
    struct sigevent sev = { 0 };
    sev.sigev_notify = SIGEV_THREAD;
    sev.sigev_notify_function = dial_gai_notify;
    sev.sigev_value.sival_ptr = d;
    ev_async_start(loop, &d->async);
    d->gai_pending = 1;
    int rc = getaddrinfo_a(GAI_NOWAIT, list, 1, &sev);
    if (rc != 0) {
        d->gai_pending = 0;
        ev_async_stop(loop, &d->async);
        snprintf(d->err, sizeof d->err, "dial tcp %s: lookup %s: %s", d->target, d->host,
                 gai_strerror(rc));
        dial_fail_soon(d);
    }
    return d;
}

void net_dial_cancel(struct net_dial *d)
{
    if (!d)
        return;
    d->cb = NULL;
    if (d->fd >= 0) {
        close(d->fd);
        d->fd = -1;
    }
    dial_finish(d, -1, NULL);
}
