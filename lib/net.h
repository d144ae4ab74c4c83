/* net: small socket helpers shared by the network daemons (wsgate, motarei):
 * "host:port" parsing (IPv6 as "[::1]:port"), listening sockets, the
 * SERVER_STARTER_PORT protocol of Perl's Server::Starter, and a non-blocking
 * dial with a timeout on a libev loop (name resolution runs off the loop
 * thread via getaddrinfo_a). Functions return 0 / an fd, or -1 with errno set
 * or with a one-line reason in err. */
#ifndef OPSKIT_NET_H
#define OPSKIT_NET_H

#include <stddef.h>
#include <sys/socket.h>

struct ev_loop;

/* Split "host:port", "[v6addr]:port" or ":port" (host "") into host and port.
 * The port must be a number 1..65535 or a service name ([A-Za-z0-9-]+).
 * Returns 0, or -1 with a reason in err. */
int net_split_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen,
                       char *err, size_t errlen);

/* Listen on "host:port" (empty host = all addresses; names are resolved, a
 * blocking call meant for startup). The socket is non-blocking, close-on-exec,
 * SO_REUSEADDR. Returns the fd or -1 with a reason in err. */
int net_listen(const char *hostport, int backlog, char *err, size_t errlen);

/* Put a socket in non-blocking mode / disable Nagle. Return 0 or -1. */
int net_set_nonblock(int fd);
int net_set_nodelay(int fd);

/* Raise the soft limit on open descriptors to the hard limit, as the Go
 * runtime does for the originals at start-up: a relay holds two or more per
 * connection, and 1024 would cap it at a few hundred. */
void net_raise_fd_limit(void);

/* An IPv4 peer of a dual-stack socket (::ffff:a.b.c.d) as the IPv4 address it
 * is (AF_INET), as Go's net gives it; any other address copied as it is. */
void net_addr_unmap_v4(const struct sockaddr_storage *in, struct sockaddr_storage *out);

/* Format a socket address as "1.2.3.4:80", "[::1]:80" or "unix:/path" (an
 * IPv4 peer of a dual-stack socket as IPv4, see net_addr_unmap_v4). */
void net_format_addr(const struct sockaddr *sa, socklen_t len, char *buf, size_t buflen);
/* The peer address of a connected socket, formatted as above ("" on error). */
void net_peer_name(int fd, char *buf, size_t buflen);

/* The local address of a socket (e.g. the port a ":0" listener got), formatted as above. */
void net_local_name(int fd, char *buf, size_t buflen);

/* host + port as "1.2.3.4:80" or "[::1]:80" (an IPv6 host gets brackets unless it
 * has them already), for net_listen, net_dial and URLs. */
void net_join_hostport(const char *host, unsigned port, char *buf, size_t buflen);

/* One entry of SERVER_STARTER_PORT: "127.0.0.1:8086=3" or "8086=3". */
struct net_starter_port {
    char addr[128]; /* the part before '=' */
    int fd;
};

/* Parse SERVER_STARTER_PORT ("host:port=fd;port=fd"; empty entries ignored)
 * into at most max entries. Returns the number of entries (>= 1), or -1 with a
 * reason in err (malformed entry, bad fd, none, too many). */
int net_starter_parse(const char *env, struct net_starter_port *out, size_t max, char *err,
                      size_t errlen);

/* The listening fd to use when running under Server::Starter: the first entry
 * of $SERVER_STARTER_PORT, made non-blocking and close-on-exec. Returns the fd,
 * -1 with err set when the variable is malformed or the fd is not a socket, or
 * -2 when the variable is not set. */
int net_starter_listener(char *err, size_t errlen);

/* Non-blocking dial with a timeout on a libev loop. target is "host:port",
 * "[v6]:port" or "unix:/path". The callback runs exactly once on the loop
 * thread (never from inside net_dial) with a connected non-blocking socket, or
 * fd -1 and a Go-like message ("dial tcp 127.0.0.1:1: connect: connection
 * refused", "dial tcp host:port: i/o timeout"). Returns a handle for
 * net_dial_cancel, or NULL when out of memory. */
struct net_dial;
typedef void (*net_dial_cb)(void *arg, int fd, const char *error);
struct net_dial *net_dial(struct ev_loop *loop, const char *target, double timeout_sec,
                          net_dial_cb cb, void *arg);
/* Cancel a pending dial: the callback will not run; any socket is closed. */
void net_dial_cancel(struct net_dial *d);

#endif
