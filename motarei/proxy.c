/* proxy: one accepted client connection, on the worker loop that accepted
 * it. It takes a reference on that loop's current backend snapshot, dials
 * the ready backends of its private port newest first (each within
 * --proxy-connect-timeout, the next one on failure), optionally writes a
 * PROXY protocol header, then hands both sockets to lib/relay. A backend
 * switch never touches an open connection: it keeps its snapshot's backend
 * until it ends. One JSON line when it ends. */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "jsonlog.h"
#include "net.h"

struct conn {
    struct mt_loop *ml;
    size_t port_idx;
    uint16_t private_port;
    int cfd;
    struct sockaddr_storage peer, local;
    socklen_t peerlen, locallen;
    char client[80];
    struct mt_snapshot *snap; /* referenced for the life of the connection */
    size_t next;              /* next backend to try in snap->ports[port_idx] */
    struct net_dial *dial;
    const struct mt_backend *backend;
    char last_err[300];
    struct relay relay;
    double start;
};

static double now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define ADD(x, n) __atomic_add_fetch(&(x), (n), __ATOMIC_RELAXED)

static void conn_free(struct conn *c)
{
    struct mt_loop *ml = c->ml;
    if (c->dial)
        net_dial_cancel(c->dial);
    mt_snapshot_unref(c->snap);
    free(c);
    ADD(ml->m->open, (unsigned long)-1);
    worker_conn_closed(ml->w);
}

/* Before relaying: the connection ends without a backend. */
static void conn_fail(struct conn *c)
{
    ADD(c->ml->m->failed, 1);
    if (c->cfd >= 0)
        close(c->cfd);
    c->cfd = -1;
    conn_free(c);
}

static void relay_closed(struct relay *r, enum relay_end why, const char *reason)
{
    struct conn *c = r->data;
    struct motarei *m = c->ml->m;
    ADD(m->bytes_c2b, r->h[0].bytes);
    ADD(m->bytes_b2c, r->h[1].bytes);
    jsonlog(why == RELAY_ERROR ? JSONLOG_WARN : JSONLOG_INFO, "Connection closed",
            JL_STR("client", c->client), JL_UINT("port", c->private_port),
            JL_STR("container", c->backend->id), JL_UINT("public_port", c->backend->public_port),
            JL_UINT("bytes_to_backend", r->h[0].bytes),
            JL_UINT("bytes_to_client", r->h[1].bytes),
            JL_FLOAT("duration", now_real() - c->start), JL_STR("end", reason));
    conn_free(c);
}

/* PROXY protocol header for the client's connection (v1 text or v2 binary). */
static size_t proxy_header(const struct conn *c, int version, uint8_t *buf, size_t len)
{
    /* an IPv4 client of a dual-stack [::] listener goes in as IPv4 (as the
     * original's Go net gives it), so a backend trusting 127.0.0.1 sees it */
    struct sockaddr_storage peer, local;
    net_addr_unmap_v4(&c->peer, &peer);
    net_addr_unmap_v4(&c->local, &local);
    const struct sockaddr *p = (const struct sockaddr *)&peer;
    const struct sockaddr *l = (const struct sockaddr *)&local;
    int fam = p->sa_family == l->sa_family ? p->sa_family : AF_UNSPEC;
    if (fam != AF_INET && fam != AF_INET6)
        fam = AF_UNSPEC;
    if (version == 1) {
        if (fam == AF_UNSPEC)
            return (size_t)snprintf((char *)buf, len, "PROXY UNKNOWN\r\n");
        char sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN];
        unsigned sp, dp;
        if (fam == AF_INET) {
            const struct sockaddr_in *a = (const void *)p, *b = (const void *)l;
            inet_ntop(AF_INET, &a->sin_addr, sa, sizeof sa);
            inet_ntop(AF_INET, &b->sin_addr, da, sizeof da);
            sp = ntohs(a->sin_port);
            dp = ntohs(b->sin_port);
        } else {
            const struct sockaddr_in6 *a = (const void *)p, *b = (const void *)l;
            inet_ntop(AF_INET6, &a->sin6_addr, sa, sizeof sa);
            inet_ntop(AF_INET6, &b->sin6_addr, da, sizeof da);
            sp = ntohs(a->sin6_port);
            dp = ntohs(b->sin6_port);
        }
        return (size_t)snprintf((char *)buf, len, "PROXY %s %s %s %u %u\r\n",
                                fam == AF_INET ? "TCP4" : "TCP6", sa, da, sp, dp);
    }
    static const uint8_t sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                     0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };
    memcpy(buf, sig, 12);
    buf[12] = 0x21; /* version 2, PROXY */
    size_t n = 16;
    if (fam == AF_INET) {
        const struct sockaddr_in *a = (const void *)p, *b = (const void *)l;
        buf[13] = 0x11; /* TCP over IPv4 */
        memcpy(buf + n, &a->sin_addr, 4);
        memcpy(buf + n + 4, &b->sin_addr, 4);
        memcpy(buf + n + 8, &a->sin_port, 2);
        memcpy(buf + n + 10, &b->sin_port, 2);
        n += 12;
    } else if (fam == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)p, *b = (const void *)l;
        buf[13] = 0x21; /* TCP over IPv6 */
        memcpy(buf + n, &a->sin6_addr, 16);
        memcpy(buf + n + 16, &b->sin6_addr, 16);
        memcpy(buf + n + 32, &a->sin6_port, 2);
        memcpy(buf + n + 34, &b->sin6_port, 2);
        n += 36;
    } else {
        buf[13] = 0x00; /* UNSPEC */
    }
    buf[14] = (uint8_t)((n - 16) >> 8);
    buf[15] = (uint8_t)(n - 16);
    return n;
}

static void dial_next(struct conn *c);

static void dialed(void *arg, int fd, const char *error)
{
    struct conn *c = arg;
    struct motarei *m = c->ml->m;
    c->dial = NULL;
    const struct mt_backend *b = &c->snap->ports[c->port_idx].b[c->next - 1];
    if (fd < 0) {
        snprintf(c->last_err, sizeof c->last_err, "%s", error);
        jsonlog(JSONLOG_ERROR, "Failed to connect backend", JL_ERR(error),
                JL_STR("container", b->id), JL_UINT("public_port", b->public_port));
        dial_next(c);
        return;
    }
    net_set_nodelay(fd);
    c->backend = b;
    if (m->cfg.proxy_protocol) {
        uint8_t hdr[256];
        size_t n = proxy_header(c, m->cfg.proxy_protocol, hdr, sizeof hdr);
        /* a fresh connection's send buffer is empty: the header fits */
        if (send(fd, hdr, n, MSG_NOSIGNAL) != (ssize_t)n) {
            jsonlog(JSONLOG_ERROR, "Failed to send PROXY header", JL_ERR(strerror(errno)),
                    JL_STR("container", b->id));
            close(fd);
            conn_fail(c);
            return;
        }
    }
    c->relay.name[0] = "client";
    c->relay.name[1] = "backend";
    if (relay_start(&c->relay, c->ml->w->loop, c->cfd, fd, 1, relay_closed, c) < 0) {
        jsonlog(JSONLOG_ERROR, "Failed to start relay", JL_ERR(strerror(errno)));
        close(fd);
        conn_fail(c);
        return;
    }
    c->cfd = -1; /* the relay owns it */
}

static void dial_next(struct conn *c)
{
    struct motarei *m = c->ml->m;
    const struct mt_port_backends *pb = &c->snap->ports[c->port_idx];
    while (c->next < pb->n && !pb->b[c->next].ready)
        c->next++;
    if (c->next >= pb->n) {
        jsonlog(JSONLOG_ERROR, "Giveup to connect backends", JL_ERR(c->last_err),
                JL_STR("client", c->client), JL_UINT("port", c->private_port));
        conn_fail(c);
        return;
    }
    const struct mt_backend *b = &pb->b[c->next++];
    char target[128];
    net_join_hostport(m->cfg.connect_ip, b->public_port, target, sizeof target);
    c->dial = net_dial(c->ml->w->loop, target, m->cfg.connect_timeout, dialed, c);
    if (!c->dial) {
        snprintf(c->last_err, sizeof c->last_err, "out of memory");
        dial_next(c);
    }
}

void mt_proxy_accept(struct acceptor *a, int fd, const struct sockaddr *peer, socklen_t peerlen)
{
    struct worker *w = a->data;
    struct mt_loop *ml = w->data;
    struct motarei *m = ml->m;
    size_t idx = (size_t)a->tag;
    ADD(m->total, 1);
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        ADD(m->failed, 1);
        return;
    }
    c->ml = ml;
    c->cfd = fd;
    c->port_idx = idx;
    c->private_port = m->ports[idx];
    c->start = now_real();
    if (peerlen > sizeof c->peer)
        peerlen = sizeof c->peer;
    memcpy(&c->peer, peer, peerlen);
    c->peerlen = peerlen;
    c->locallen = sizeof c->local;
    getsockname(fd, (struct sockaddr *)&c->local, &c->locallen);
    net_format_addr(peer, peerlen, c->client, sizeof c->client);
    net_set_nodelay(fd);
    worker_conn_opened(w);
    ADD(m->open, 1);
    c->snap = ml->snap;
    if (c->snap)
        mt_snapshot_ref(c->snap);
    const struct mt_port_backends *pb = c->snap ? &c->snap->ports[idx] : NULL;
    int any = 0;
    for (size_t i = 0; pb && i < pb->n; i++)
        any |= pb->b[i].ready;
    if (!any) {
        char err[96];
        snprintf(err, sizeof err, "Could not find Backends for private port: %u", c->private_port);
        jsonlog(JSONLOG_ERROR, "Failed to get backends", JL_ERR(err),
                JL_STR("client", c->client));
        conn_fail(c);
        return;
    }
    snprintf(c->last_err, sizeof c->last_err, "no backend answered");
    dial_next(c);
}

/* ---- snapshot hand-over: discovery thread → each loop ---- */

void mt_loop_take_snapshot(struct mt_loop *ml)
{
    struct mt_snapshot *s = __atomic_exchange_n(&ml->pending, NULL, __ATOMIC_ACQ_REL);
    if (!s)
        return;
    mt_snapshot_unref(ml->snap);
    ml->snap = s;
}

static void snap_async_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    mt_loop_take_snapshot(a->data);
}

void mt_loop_init(struct mt_loop *ml, struct motarei *m, struct worker *w)
{
    ml->m = m;
    ml->w = w;
    w->data = ml;
    ev_async_init(&ml->snap_async, snap_async_cb);
    ml->snap_async.data = ml;
    ev_async_start(w->loop, &ml->snap_async);
}

void mt_publish(void *arg, struct mt_snapshot *s)
{
    struct motarei *m = arg;
    for (int i = 0; i < m->nloops; i++) {
        struct mt_loop *ml = &m->loops[i];
        mt_snapshot_ref(s);
        struct mt_snapshot *old = __atomic_exchange_n(&ml->pending, s, __ATOMIC_ACQ_REL);
        mt_snapshot_unref(old); /* never picked up: superseded */
        ev_async_send(ml->w->loop, &ml->snap_async);
    }
    mt_snapshot_unref(s); /* the one we were given: each loop holds its own */
}

void mt_loop_free(struct mt_loop *ml)
{
    struct mt_snapshot *p = __atomic_exchange_n(&ml->pending, NULL, __ATOMIC_ACQ_REL);
    mt_snapshot_unref(p);
    mt_snapshot_unref(ml->snap);
    ml->snap = NULL;
}
