/* sockets: bind the listening sockets start_server passes to every worker,
 * exactly as Server::Starter 0.35 does — TCP (or UDP with a "u" prefix) on
 * IPv4 unless the host is an IPv6 address (then IPV6_V6ONLY), SO_REUSEADDR,
 * the socket moved to the fd an "=FD" suffix names, unix sockets created
 * under umask 0 after removing a stale socket file — and build the
 * SERVER_STARTER_PORT value in option order. Errors are fatal, with Perl's
 * message texts. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "starter.h"

/* keys[i] is the SERVER_STARTER_PORT key of out->fds[i] */
static char **keys;

static void add_socket(struct ss_listeners *out, const char *key, int fd)
{
    int *n = realloc(out->fds, (out->nfds + 1) * sizeof *n);
    char **k = realloc(keys, (out->nfds + 1) * sizeof *k);
    if (!n || !k || !(k[out->nfds] = strdup(key)))
        ss_die(ENOMEM, "out of memory");
    n[out->nfds++] = fd;
    out->fds = n;
    keys = k;
}

/* An =FD target that is an earlier socket's fd: move the earlier socket
 * (Perl's start_server silently overwrites it). */
static void vacate_fd(struct ss_listeners *out, int target)
{
    for (size_t i = 0; i < out->nfds; i++) {
        if (out->fds[i] == target) {
            int moved = fcntl(target, F_DUPFD, 3);
            if (moved < 0)
                ss_die(errno, "dup2(2) failed(%d): %s", target, strerror(errno));
            out->fds[i] = moved;
        }
    }
}

static int is_socket_file(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

void ss_unlink_paths(const struct ss_config *cfg)
{
    for (size_t i = 0; i < cfg->npaths; i++)
        if (is_socket_file(cfg->paths[i]))
            unlink(cfg->paths[i]);
}

static void bind_port(const struct ss_config *cfg, const char *value, struct ss_listeners *out,
                      int *const keep[], size_t nkeep)
{
    struct ss_port_spec ps;
    if (ss_port_parse(value, &ps) < 0)
        ss_die(0, "invalid ``port'' value:%s", value);
    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof ss);
    int family;
    if (ps.ipv6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)ps.port);
        if (inet_pton(AF_INET6, ps.host, &s6->sin6_addr) != 1)
            ss_die(0, "failed to resolve host:%s:invalid IPv6 address", ps.host);
        sslen = sizeof *s6;
        family = AF_INET6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)ps.port);
        if (ps.host[0] == '\0' && strchr(value, ':') == NULL) {
            s4->sin_addr.s_addr = htonl(INADDR_ANY);
        } else {
            struct addrinfo hints = {.ai_family = AF_INET}, *res = NULL;
            int rc = ps.host[0] ? getaddrinfo(ps.host, NULL, &hints, &res) : EAI_NONAME;
            if (rc != 0 || !res)
                ss_die(0, "failed to resolve host:%s:%s", ps.host, gai_strerror(rc));
            s4->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
            freeaddrinfo(res);
        }
        sslen = sizeof *s4;
        family = AF_INET;
    }
    int fd = socket(family, ps.udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    if (fd < 0)
        ss_die(errno, "failed to create socket:%s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0)
        ss_die(errno, "failed to bind to %s:%s", ps.key, strerror(errno));
    if (!ps.udp && listen(fd, (int)cfg->backlog) < 0)
        ss_die(errno, "listen(2) failed:%s", strerror(errno));
    if (fcntl(fd, F_SETFD, 0) < 0)
        ss_die(errno, "fcntl(F_SETFD, 0) failed:%s", strerror(errno));
    if (ps.fd >= 0 && ps.fd != fd) {
        for (size_t i = 0; i < nkeep; i++) {
            if (*keep[i] != ps.fd)
                continue;
            int moved = fcntl(*keep[i], F_DUPFD_CLOEXEC, ps.fd + 1);
            if (moved < 0)
                ss_die(errno, "dup2(2) failed(%d): %s", ps.fd, strerror(errno));
            close(*keep[i]);
            *keep[i] = moved;
        }
        vacate_fd(out, ps.fd);
        if (dup2(fd, ps.fd) < 0)
            ss_die(errno, "dup2(2) failed(%d): %s", ps.fd, strerror(errno));
        ss_log("socket is duplicated to file descriptor %d", ps.fd);
        close(fd);
        fd = ps.fd;
        if (fd == 0)
            out->stdin_is_socket = 1;
    } else if (ps.fd >= 0) {
        ss_log("socket is duplicated to file descriptor %d", ps.fd);
    }
    add_socket(out, ps.key, fd);
}

static void bind_path(const struct ss_config *cfg, const char *path, struct ss_listeners *out)
{
    if (is_socket_file(path)) {
        ss_log("removing existing socket file:%s", path);
        if (unlink(path) < 0)
            ss_die(errno, "failed to remove existing socket file:%s:%s", path, strerror(errno));
    }
    unlink(path);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sun.sun_path)
        ss_die(ENAMETOOLONG, "failed to listen to file %s:%s", path, strerror(ENAMETOOLONG));
    memcpy(sun.sun_path, path, strlen(path) + 1);
    mode_t saved = umask(0);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 ||
        listen(fd, (int)cfg->backlog) < 0)
        ss_die(errno, "failed to listen to file %s:%s", path, strerror(errno));
    umask(saved);
    if (fcntl(fd, F_SETFD, 0) < 0)
        ss_die(errno, "fcntl(F_SETFD, 0) failed:%s", strerror(errno));
    add_socket(out, path, fd);
}

void ss_listen_all(const struct ss_config *cfg, struct ss_listeners *out, int *const keep[],
                   size_t nkeep)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < cfg->nports; i++)
        bind_port(cfg, cfg->ports[i], out, keep, nkeep);
    for (size_t i = 0; i < cfg->npaths; i++)
        bind_path(cfg, cfg->paths[i], out);
    size_t len = 1;
    for (size_t i = 0; i < out->nfds; i++)
        len += strlen(keys[i]) + 16;
    out->env = malloc(len);
    if (!out->env)
        ss_die(ENOMEM, "out of memory");
    size_t off = 0;
    out->env[0] = '\0';
    for (size_t i = 0; i < out->nfds; i++) {
        off += (size_t)snprintf(out->env + off, len - off, "%s%s=%d", i ? ";" : "", keys[i],
                                out->fds[i]);
        free(keys[i]);
    }
    free(keys);
    keys = NULL;
}
