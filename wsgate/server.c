/* wsgate-server: WebSocket → TCP gateway. Accepts HTTP connections, routes
 * GET / and /live (health), /proxy/NAME (JWT check, map lookup, upstream
 * dial, RFC 6455 upgrade) and hands each upgraded connection to a tunnel
 * (tunnel.c). One libev loop; all per-connection state lives in struct
 * tunnel so a worker thread can own it. */
#include <ctype.h>
#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acceptor.h"
#include "workers.h"
#include "flags.h"
#include "jsonlog.h"
#include "net.h"
#include "tunnel.h"
#include "units.h"
#include "version.h"
#include "ws.h"
#include "ws_deflate.h"
#include "ws_handshake.h"
#include "wsgate.h"

struct server;

/* One event-loop thread: accepts on the shared listening socket and owns
 * every connection it accepted. Worker 0 runs on the main thread's loop,
 * which also handles the signals. */
struct srv_worker {
    struct wsg_worker w; /* w.lw: its loop in srv->set */
    struct server *srv;
};

struct server {
    struct ev_loop *loop;
    struct wsg_opts opts;
    struct srv_worker *workers;
    int nworkers;
    struct workers set;
    pthread_rwlock_t cfg; /* map, auth, tls_ctx: read by workers, swapped by SIGHUP */
    struct wsg_map map;
    struct wsg_auth auth;
    int auth_enabled;
    struct ssl_ctx_st *tls_ctx;
    int listen_fd;
    ev_signal sigterm, sighup;
    const char *map_path, *key_path, *tls_cert, *tls_key;
    int64_t freshness;
    int shutting_down;
    double shutdown_timeout;
    uint64_t seq;
    /* /metrics */
    uint64_t bytes_in, bytes_out, auth_failures, dial_failures, not_found;
};

#define COUNT(x) __atomic_add_fetch(&(x), 1, __ATOMIC_RELAXED)
#define ADD(x, n) __atomic_add_fetch(&(x), (n), __ATOMIC_RELAXED)
#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

static struct server *server_of(const struct tunnel *t)
{
    return ((struct srv_worker *)t->w->owner)->srv;
}

/* The request headers wsgate-server logs besides the handshake's own. */
enum { HDR_XFF, HDR_USER_EMAIL };
static const struct ws_hs_extra log_headers[] = {
    [HDR_XFF] = { "x-forwarded-for", true },
    [HDR_USER_EMAIL] = { "x-goog-authenticated-user-email", false },
};

/* What the server keeps per tunnel besides the shared fields (t->app). */
struct srv_fields {
    char xff[256];  /* X-Forwarded-For */
    char user[256]; /* the JWT's user, or X-Goog-Authenticated-User-Email */
};
#define SF(t) ((struct srv_fields *)(t)->app)

/* The original's log fields, in its order. */
static size_t srv_log_fields(struct tunnel *t, struct jsonlog_field *f)
{
    size_t n = 0;
    f[n++] = JL_UINT("seq", t->seq);
    f[n++] = JL_STR("x-forwarded-for", SF(t)->xff);
    f[n++] = JL_STR("remote-addr", t->remote_addr);
    f[n++] = JL_STR("destination", t->dest);
    f[n++] = JL_STR("user-email", SF(t)->user);
    f[n++] = JL_STR("upstream", t->upstream);
    return n;
}

static const struct wsg_disconnect_names server_names = {
    .ws_read = "client_nextreader",
    .tcp_write = "client_upstream_copy",
    .tcp_read = "upstream_read",
    .ws_write = "client_write",
};

/* Handshake state of one accepted connection (t->hs). */
struct srv_hs {
    struct server *srv;
    struct wsg_conn conn; /* the client's connection until the upgrade */
    struct ws_hs_server parser;
    struct net_dial *dial;
    char out[2048];
    char *big;      /* a response larger than out (owned) */
    size_t out_len, out_off;
    bool upgrade;   /* out is the 101: start the tunnel once it is written */
    bool draining;  /* response sent, half-closed, reading until EOF */
    uint8_t *early; /* bytes after the request head (owned) */
    bool pmd;       /* permessage-deflate agreed: ext is the answer */
    struct ws_pmd_params agreed;
    char ext[128];
    size_t early_len;
    size_t got;     /* request bytes received */
};

static void hs_free(struct tunnel *t)
{
    struct srv_hs *h = t->hs;
    if (!h)
        return;
    if (h->dial)
        net_dial_cancel(h->dial);
    wsg_conn_free(&h->conn);
    ws_hs_server_free(&h->parser);
    free(h->early);
    free(h->big);
    free(h);
    t->hs = NULL;
}

static void hs_write_cb(struct ev_loop *loop, ev_io *io, int revents);
static void hs_read_cb(struct ev_loop *loop, ev_io *io, int revents);

static void hs_timeout_cb(struct ev_loop *loop, ev_timer *tm, int revents)
{
    (void)loop;
    (void)revents;
    tunnel_close(tm->data); /* no complete request in time, or a response not taken */
}

/* Send what is in h->out; then either start the tunnel (101) or linger. */
static void hs_flush(struct tunnel *t)
{
    struct srv_hs *h = t->hs;
    char *out = h->big ? h->big : h->out;
    if (transport_write_all(&h->conn.tr, out, h->out_len, &h->out_off) < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            wsg_conn_want_write(&h->conn);
            return;
        }
        if (h->upgrade) {
            tunnel_log(t, JSONLOG_WARN, "Failed to Upgrade", "error", strerror(errno), NULL,
                       NULL);
        }
        tunnel_close(t);
        return;
    }
    wsg_conn_stop_write(&h->conn);
    if (h->upgrade) {
        tunnel_start(t, &h->conn, h->early, h->early_len); /* frees h */
        return;
    }
    /* Lingering close: half-close and read until the client closes, so
     * that unread request bytes cannot turn our FIN into a RST that destroys
     * the response in flight. (TLS: close_notify, then the same.) */
    transport_shutdown_write(&h->conn.tr);
    h->draining = true;
    wsg_conn_arm(&h->conn, 2.0);
    wsg_conn_want_read(&h->conn);
}

static void hs_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    hs_flush(io->data);
}

static void respond(struct tunnel *t, int status, const char *body, const char *extra)
{
    struct srv_hs *h = t->hs;
    wsg_conn_stop_read(&h->conn);
    size_t need = (body ? strlen(body) : 0) + (extra ? strlen(extra) : 0) + 256;
    char *out = h->out;
    size_t cap = sizeof h->out;
    if (need > cap && (h->big = malloc(need)) != NULL) {
        out = h->big;
        cap = need;
    }
    ssize_t n = ws_hs_response_simple(out, cap, status, body, extra);
    if (n < 0) {
        free(h->big);
        h->big = NULL;
        n = ws_hs_response_simple(h->out, sizeof h->out, status, "error\n", NULL);
        if (n < 0) {
            tunnel_close(t);
            return;
        }
    }
    h->out_len = (size_t)n;
    h->out_off = 0;
    h->upgrade = false;
    wsg_conn_arm(&h->conn, t->w->opts->write_timeout);
    hs_flush(t);
}

static void dial_done(void *arg, int fd, const char *error)
{
    struct tunnel *t = arg;
    struct srv_hs *h = t->hs;
    h->dial = NULL;
    if (fd < 0) {
        tunnel_log(t, JSONLOG_WARN, "DialTimeout", "error", error, NULL, NULL);
        COUNT(h->srv->dial_failures);
        char body[1200];
        snprintf(body, sizeof body, "Could not connect upstream: %s\n", error);
        respond(t, 500, body, NULL);
        return;
    }
    t->tcp_fd = fd;
    const struct ws_hs_request *r = &h->parser.req;
    const char *proto = NULL;
    if (r->protocol && ws_hs_has_token(r->protocol, WSG_HALF_CLOSE_PROTOCOL)) {
        proto = WSG_HALF_CLOSE_PROTOCOL;
        t->half_close = true;
    }
    if (h->pmd) {
        t->pmd_on = true;
        ws_pmd_init(&t->pmd, &h->agreed, WS_ROLE_SERVER, t->w->opts->max_message, 1, 8);
    }
    ssize_t n = ws_hs_response_101(h->out, sizeof h->out, r->key, h->pmd ? h->ext : NULL, proto,
                                   NULL);
    if (n < 0) {
        tunnel_log(t, JSONLOG_WARN, "Failed to Upgrade", "error", "response too large", NULL,
                   NULL);
        tunnel_close(t);
        return;
    }
    h->out_len = (size_t)n;
    h->out_off = 0;
    h->upgrade = true;
    wsg_conn_arm(&h->conn, t->w->opts->handshake_timeout);
    hs_flush(t);
}

/* Escape a label value for the Prometheus text format. */
static void prom_label(FILE *f, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            fputc('\\', f), fputc(*v, f);
        else if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
    }
}

static char *metrics_text(struct server *srv)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    unsigned long relaying = 0, open = 0;
    for (int i = 0; i < srv->nworkers; i++) {
        relaying += LOAD(srv->workers[i].w.relaying);
        open += LOAD(srv->workers[i].w.open);
    }
    fprintf(f, "# HELP wsgate_open_tunnels Tunnels relaying now.\n"
               "# TYPE wsgate_open_tunnels gauge\nwsgate_open_tunnels %lu\n",
            relaying);
    fprintf(f, "# HELP wsgate_connections Connections open now, handshakes included.\n"
               "# TYPE wsgate_connections gauge\nwsgate_connections %lu\n",
            open);
    fprintf(f, "# HELP wsgate_tunnels_total Tunnels ended, by destination and status.\n"
               "# TYPE wsgate_tunnels_total counter\n");
    for (size_t i = 0; i < srv->map.n; i++) {
        for (int k = 0; k < 2; k++) {
            fputs("wsgate_tunnels_total{destination=\"", f);
            prom_label(f, srv->map.e[i].name);
            fprintf(f, "\",status=\"%s\"} %llu\n", k ? "Failed" : "Suceeded",
                    (unsigned long long)(k ? LOAD(srv->map.e[i].failed)
                                           : LOAD(srv->map.e[i].ok)));
        }
    }
    fprintf(f, "# HELP wsgate_bytes_total Payload bytes relayed by ended tunnels.\n"
               "# TYPE wsgate_bytes_total counter\n"
               "wsgate_bytes_total{direction=\"client_to_upstream\"} %llu\n"
               "wsgate_bytes_total{direction=\"upstream_to_client\"} %llu\n",
            (unsigned long long)LOAD(srv->bytes_in), (unsigned long long)LOAD(srv->bytes_out));
    fprintf(f, "# HELP wsgate_auth_failures_total Requests refused by JWT verification.\n"
               "# TYPE wsgate_auth_failures_total counter\nwsgate_auth_failures_total %llu\n",
            (unsigned long long)LOAD(srv->auth_failures));
    fprintf(f, "# HELP wsgate_dial_failures_total Upstream dials that failed.\n"
               "# TYPE wsgate_dial_failures_total counter\nwsgate_dial_failures_total %llu\n",
            (unsigned long long)LOAD(srv->dial_failures));
    fprintf(f, "# HELP wsgate_not_found_total Requests for names not in the map.\n"
               "# TYPE wsgate_not_found_total counter\nwsgate_not_found_total %llu\n",
            (unsigned long long)LOAD(srv->not_found));
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static void server_tunnel_closed(struct tunnel *t)
{
    struct server *srv = server_of(t);
    ADD(srv->bytes_in, t->down.bytes);
    ADD(srv->bytes_out, t->up.bytes);
    pthread_rwlock_rdlock(&srv->cfg);
    struct wsg_map_entry *e = wsg_map_find(&srv->map, t->dest);
    if (e) {
        if (t->failed)
            COUNT(e->failed);
        else
            COUNT(e->ok);
    }
    pthread_rwlock_unlock(&srv->cfg);
}

/* ---- routing a request: one stage each; a stage that answered returns
 * NULL/false and the request goes no further ---- */

/* Decode %XX in place, as Go's URL.Path is (so /proxy/ech%6f is /proxy/echo
 * for the router). -1 on a bad escape. */
static int path_unescape(char *p)
{
    char *o = p;
    for (; *p; p++) {
        if (*p != '%') {
            *o++ = *p;
            continue;
        }
        if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]))
            return -1;
        char hex[3] = { p[1], p[2], 0 };
        *o++ = (char)strtol(hex, NULL, 16);
        p += 2;
    }
    *o = '\0';
    return 0;
}

/* The endpoints that are not tunnels: health (/, /live), /metrics, and 404
 * for anything but /proxy/NAME. path is decoded in place first. Returns NAME
 * (inside path), or NULL once answered. */
static const char *route_endpoint(struct tunnel *t, char *path)
{
    struct server *srv = ((struct srv_hs *)t->hs)->srv;
    if (path_unescape(path) < 0) {
        respond(t, 400, "400 Bad Request: invalid URL escape\n", NULL);
        return NULL;
    }
    if (strcmp(path, "/") == 0 || strcmp(path, "/live") == 0) {
        respond(t, 200, "OK\n", NULL);
        return NULL;
    }
    if (strcmp(path, "/metrics") == 0) {
        pthread_rwlock_rdlock(&srv->cfg);
        char *body = metrics_text(srv);
        pthread_rwlock_unlock(&srv->cfg);
        respond(t, body ? 200 : 500, body ? body : "out of memory\n",
                body ? "Content-Type: text/plain; version=0.0.4\r\n" : NULL);
        free(body);
        return NULL;
    }
    const char *name = strncmp(path, "/proxy/", 7) == 0 ? path + 7 : NULL;
    if (!name || !*name || strchr(name, '/')) {
        respond(t, 404, "404 page not found\n", NULL);
        return NULL;
    }
    return name;
}

/* JWT (when a public key is configured; else the IAP user header is logged
 * as the user). False once refused (401/403). */
static bool route_authorize(struct tunnel *t, const char *name)
{
    struct server *srv = ((struct srv_hs *)t->hs)->srv;
    const struct ws_hs_request *r = &((struct srv_hs *)t->hs)->parser.req;
    if (!srv->auth_enabled) {
        const char *email = r->extra[HDR_USER_EMAIL];
        snprintf(SF(t)->user, sizeof SF(t)->user, "%s", email ? email : "");
        return true;
    }
    char err[512];
    pthread_rwlock_rdlock(&srv->cfg);
    int rc = wsg_auth_verify(&srv->auth, r->authorization, name, SF(t)->user,
                             sizeof SF(t)->user, err, sizeof err);
    pthread_rwlock_unlock(&srv->cfg);
    if (rc >= 0)
        return true;
    tunnel_log(t, JSONLOG_WARN, "Failed to authorize", "error", err, NULL, NULL);
    COUNT(srv->auth_failures);
    char body[600];
    snprintf(body, sizeof body, "%s\n", err);
    respond(t, rc == -2 ? 403 : 401, body, NULL);
    return false;
}

/* The map entry for NAME (copied into t->upstream). NULL once answered 404. */
static const char *route_upstream(struct tunnel *t, const char *name)
{
    struct server *srv = ((struct srv_hs *)t->hs)->srv;
    pthread_rwlock_rdlock(&srv->cfg);
    const char *up = wsg_map_get(&srv->map, name);
    if (up)
        snprintf(t->upstream, sizeof t->upstream, "%s", up);
    pthread_rwlock_unlock(&srv->cfg);
    if (up)
        return t->upstream;
    tunnel_log(t, JSONLOG_WARN, "No map found", NULL, NULL, NULL, NULL);
    COUNT(srv->not_found);
    char body[400];
    snprintf(body, sizeof body, "Not found: %s\n", name);
    respond(t, 404, body, NULL);
    return NULL;
}

/* A valid RFC 6455 upgrade, and permessage-deflate agreed when offered and
 * enabled. False once answered (400/426). */
static bool route_upgrade(struct tunnel *t)
{
    struct srv_hs *h = t->hs;
    const struct ws_hs_request *r = &h->parser.req;
    const char *why = NULL;
    int st = ws_hs_request_check(r, &why);
    if (st != 0) {
        tunnel_log(t, JSONLOG_WARN, "Failed to Upgrade", "error", why, NULL, NULL);
        char body[300];
        snprintf(body, sizeof body, "%s\n", why ? why : "Bad Request");
        respond(t, st, body, st == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL);
        return false;
    }
    if (!h->srv->opts.compression || !r->extensions)
        return true;
    struct ws_pmd_server_config pc = { 0 };
    pc.server_no_context_takeover = true; /* bounded memory per tunnel */
    int rc = ws_pmd_server_negotiate(r->extensions, &pc, &h->agreed);
    if (rc < 0) {
        tunnel_log(t, JSONLOG_WARN, "Failed to Upgrade", "error",
                   "malformed Sec-WebSocket-Extensions", NULL, NULL);
        respond(t, 400, "malformed Sec-WebSocket-Extensions\n", NULL);
        return false;
    }
    if (rc == 1 && ws_pmd_format(&h->agreed, h->ext, sizeof h->ext) > 0)
        h->pmd = true;
    return true;
}

/* A complete request head: answer it, or dial its upstream (the 101 is sent
 * once the dial succeeded, see dial_done). path: the request's, decoded here. */
static void route_path(struct tunnel *t, char *path)
{
    struct srv_hs *h = t->hs;
    const struct ws_hs_request *r = &h->parser.req;
    snprintf(SF(t)->xff, sizeof SF(t)->xff, "%s", r->extra[HDR_XFF] ? r->extra[HDR_XFF] : "");
    const char *name = route_endpoint(t, path);
    if (!name)
        return;
    snprintf(t->dest, sizeof t->dest, "%s", name);
    /* the original counts every /proxy request, answered or not */
    t->seq = COUNT(h->srv->seq);
    const char *up;
    if (!route_authorize(t, name) || !(up = route_upstream(t, name)) || !route_upgrade(t))
        return;
    wsg_conn_stop_read(&h->conn);
    wsg_conn_arm(&h->conn, 0); /* the dial has its own timeout */
    h->dial = net_dial(t->w->loop, up, h->srv->opts.dial_timeout, dial_done, t);
    if (!h->dial)
        respond(t, 500, "Could not connect upstream: out of memory\n", NULL);
}

static void route(struct tunnel *t)
{
    const struct ws_hs_request *r = &((struct srv_hs *)t->hs)->parser.req;
    char *path = strdup(r->path ? r->path : "");
    if (!path) {
        respond(t, 500, "out of memory\n", NULL);
        return;
    }
    route_path(t, path);
    free(path);
}

static void hs_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct tunnel *t = io->data;
    struct srv_hs *h = t->hs;
    uint8_t buf[8192];
    for (;;) {
        ssize_t n = transport_read(&h->conn.tr, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                /* TLS: a handshake flight of ours may be queued */
                wsg_conn_want_read(&h->conn);
                return;
            }
            if (!h->draining) {
                char eb[300];
                const char *why = transport_error(&h->conn.tr, eb, sizeof eb);
                if (*why)
                    tunnel_log(t, JSONLOG_WARN, "TLS handshake failed", "error", why, NULL,
                               NULL);
            }
            tunnel_close(t);
            return;
        }
        if (h->draining) {
            if (n == 0)
                tunnel_close(t);
            if (n == 0 || !h->conn.tr.ops->pending(&h->conn.tr))
                return;
            continue;
        }
        h->got += (size_t)n;
        size_t used = 0;
        int rc = ws_hs_server_feed(&h->parser, buf, (size_t)n, &used);
        if (rc == WS_HS_MORE) {
            if (n == 0)
                tunnel_close(t); /* EOF before a complete head: nothing to answer */
            else if (h->conn.tr.ops->pending(&h->conn.tr))
                continue; /* TLS holds more of the head than the socket announces */
            return;
        }
        if (rc == WS_HS_ERROR) {
            if (n == 0 && h->got == 0) {
                tunnel_close(t);
                return;
            }
            char body[300];
            snprintf(body, sizeof body, "%s\n",
                     h->parser.error ? h->parser.error : "Bad Request");
            respond(t, h->parser.status ? h->parser.status : 400, body, NULL);
            return;
        }
        if ((size_t)n > used) {
            h->early_len = (size_t)n - used;
            h->early = malloc(h->early_len);
            if (!h->early) {
                tunnel_close(t);
                return;
            }
            memcpy(h->early, buf + used, h->early_len);
        }
        route(t);
        return;
    }
}

/* A new client connection: start the TLS (if any) and the upgrade handshake. */
static void server_accept(struct acceptor *a, int fd, const struct sockaddr *peer,
                          socklen_t peerlen)
{
    (void)peer;
    (void)peerlen;
    struct srv_worker *sw = wsg_accept_owner(a);
    struct server *srv = sw->srv;
    struct ev_loop *loop = sw->w.loop;
    struct tunnel *t = tunnel_new(&sw->w, &server_names);
    struct srv_hs *h = t ? calloc(1, sizeof *h) : NULL;
    if (!h || ws_hs_server_init_extra(&h->parser, 0, log_headers,
                                         sizeof log_headers / sizeof *log_headers) < 0) {
        free(h);
        if (t)
            tunnel_close(t);
        close(fd);
        return;
    }
    h->srv = srv;
    wsg_conn_init(&h->conn, loop, t, hs_read_cb, hs_write_cb, hs_timeout_cb);
    t->hs = h;
    t->hs_free = hs_free;
    net_set_nodelay(fd);
    net_peer_name(fd, t->remote_addr, sizeof t->remote_addr);
    pthread_rwlock_rdlock(&srv->cfg);
    int tls_rc = srv->tls_ctx ? transport_tls_init(&h->conn.tr, fd, srv->tls_ctx, NULL) : 1;
    pthread_rwlock_unlock(&srv->cfg);
    if (tls_rc < 0) {
        tunnel_close(t);
        return;
    } else if (tls_rc > 0) {
        transport_tcp_init(&h->conn.tr, fd);
    }
    wsg_conn_want_read(&h->conn);
    wsg_conn_arm(&h->conn, srv->opts.handshake_timeout);
}

/* A worker's last tunnel closed: if it is stopping, it is done. */
static void worker_idle(struct wsg_worker *w)
{
    worker_check_idle(w->lw);
}

static void sigterm_cb(struct ev_loop *loop, ev_signal *sig, int revents)
{
    (void)loop;
    (void)revents;
    struct server *srv = sig->data;
    if (srv->shutting_down)
        return;
    srv->shutting_down = 1;
    jsonlog(JSONLOG_INFO, "Signal received. Start to shutdown");
    if (workers_open(&srv->set))
        jsonlog(JSONLOG_INFO, "Waiting for all connections to be closed");
    /* the listener is closed once every worker stopped accepting (under
     * Server::Starter the socket lives on in the next generation) */
    workers_shutdown(&srv->set, srv->shutdown_timeout);
}

/* SIGHUP: reload the map file, the public key and the TLS certificate.
 * Each part is loaded completely before it replaces the old one (under the
 * config lock); a part that fails to load is reported and the old one stays.
 * Open tunnels are not touched (they own copies of what they need). */
static void sighup_cb(struct ev_loop *loop, ev_signal *sig, int revents)
{
    (void)loop;
    (void)revents;
    struct server *srv = sig->data;
    char err[1024];
    struct wsg_map nm;
    struct wsg_auth na;
    struct ssl_ctx_st *nc = NULL;
    int ok = 1, map_ok, auth_ok = 0;
    map_ok = wsg_map_load(&nm, srv->map_path, err, sizeof err) == 0;
    if (!map_ok) {
        jsonlog(JSONLOG_ERROR, "Failed to reload map", JL_ERR(err));
        ok = 0;
    }
    if (srv->auth_enabled) {
        auth_ok = wsg_auth_load(&na, srv->key_path, srv->freshness, err, sizeof err) == 0;
        if (!auth_ok) {
            jsonlog(JSONLOG_ERROR, "Failed to reload public key", JL_ERR(err));
            ok = 0;
        }
    }
    if (srv->tls_ctx) {
        nc = transport_tls_server_ctx(srv->tls_cert, srv->tls_key, err, sizeof err);
        if (!nc) {
            jsonlog(JSONLOG_ERROR, "Failed to reload TLS certificate", JL_ERR(err));
            ok = 0;
        }
    }
    pthread_rwlock_wrlock(&srv->cfg);
    if (map_ok) {
        for (size_t i = 0; i < nm.n; i++) { /* keep the metrics of surviving names */
            struct wsg_map_entry *old = wsg_map_find(&srv->map, nm.e[i].name);
            if (old) {
                nm.e[i].ok = old->ok;
                nm.e[i].failed = old->failed;
            }
        }
        wsg_map_free(&srv->map);
        srv->map = nm;
    }
    if (auth_ok) {
        wsg_auth_free(&srv->auth);
        srv->auth = na;
    }
    if (nc) {
        transport_tls_ctx_free(srv->tls_ctx); /* live connections hold references */
        srv->tls_ctx = nc;
    }
    size_t entries = srv->map.n;
    pthread_rwlock_unlock(&srv->cfg);
    jsonlog(ok ? JSONLOG_INFO : JSONLOG_WARN, ok ? "Reloaded" : "Reloaded partly",
            JL_UINT("map_entries", entries));
}

int main(int argc, char **argv)
{
    static struct server srv;
    const char *listen_addr = "127.0.0.1:8086", *map_path = "", *key_path = "";
    const char *tls_cert = "", *tls_key = "";
    int64_t handshake = 10000000000LL, dial = 10000000000LL, wto = 10000000000LL;
    int64_t sto = 86400000000000LL, fresh = 3600000000000LL;
    int compression = 0;
    long long dump = 0;
    long long nworkers = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
    struct wsg_keepalive ka = WSG_KEEPALIVE_DEFAULTS;
    const struct flag_spec specs[] = {
        { "listen", 0, FLAG_STRING, &listen_addr, "ADDR",
          "Address to listen to (default 127.0.0.1:8086)", NULL, NULL, NULL },
        { "map", 0, FLAG_STRING, &map_path, "FILE", "Path and proxy host mapping file", NULL,
          NULL, NULL },
        { "public-key", 0, FLAG_STRING, &key_path, "FILE",
          "Public key for verifying JWT auth header", NULL, NULL, NULL },
        { "jwt-freshness", 0, FLAG_DURATION, &fresh, "DURATION",
          "Maximum age of a token's iat, a duration like 90s or 1h (default 1h0m0s)", NULL, NULL,
          "1s..8760h" },
        { "handshake_timeout", 0, FLAG_DURATION, &handshake, "DURATION",
          "Handshake timeout (default 10s; 0 = none)", NULL, NULL, "0s..8760h" },
        { "dial_timeout", 0, FLAG_DURATION, &dial, "DURATION",
          "Dial timeout (default 10s; 0 = the system's)", NULL, NULL, "0s..8760h" },
        { "write_timeout", 0, FLAG_DURATION, &wto, "DURATION",
          "Write timeout for handshake responses and the close handshake (default 10s; 0 = "
          "none for responses, 10s for the close handshake)", NULL, NULL, "0s..8760h" },
        { "shutdown_timeout", 0, FLAG_DURATION, &sto, "DURATION",
          "Timeout to wait for all connections to be closed (default 24h0m0s)", NULL, NULL,
          "0s..8760h" },
        { "enable_compression", 0, FLAG_BOOL, &compression, NULL,
          "To enable WebSocket Per-Message Compression Extensions (RFC 7692)", NULL, NULL, NULL },
        { "dump-tcp", 0, FLAG_INT, &dump, "N",
          "Dump TCP. 0 = disable, 1 = src to dest, 2 = both", NULL, NULL, "0..2" },
        WSG_KEEPALIVE_FLAGS(&ka, "client", "-"),
        { "workers", 0, FLAG_INT, &nworkers, "N",
          "Event-loop threads, each accepting and relaying (default: number of CPUs)", NULL,
          NULL, "1..256" },
        { "tls-cert", 0, FLAG_STRING, &tls_cert, "FILE",
          "Serve TLS (wss://, https://) with this certificate chain (PEM)", NULL, NULL, NULL },
        { "tls-key", 0, FLAG_STRING, &tls_key, "FILE", "Private key of -tls-cert (PEM)", NULL,
          NULL, NULL },
        { "version", 'v', FLAG_VERSION, NULL, NULL, "Show version (also -v)", NULL, NULL, NULL },
        { NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL },
    };
    const struct flags_def def = {
        .prog = "wsgate-server",
        .synopsis = "[-listen ADDR] [-map FILE] [-public-key FILE] [options]",
        .description = "WebSocket to TCP gateway: /proxy/NAME is relayed to the upstream "
                       "mapped to NAME.",
        .style = FLAGS_GO,
        .specs = specs,
    };
    int first;
    flags_parse_or_exit(&def, argc, argv, &first);
    if (first < argc) {
        fprintf(stderr, "wsgate-server: unexpected argument \"%s\"\n", argv[first]);
        return 1;
    }
    wsg_process_setup();

    char err[1024];
    srv.opts.handshake_timeout = (double)handshake / 1e9;
    srv.opts.dial_timeout = (double)dial / 1e9;
    srv.opts.write_timeout = (double)wto / 1e9;
    srv.opts.dump_tcp = (int)dump;
    wsg_keepalive_apply(&ka, &srv.opts);
    srv.shutdown_timeout = (double)sto / 1e9;
    if (wsg_map_load(&srv.map, map_path, err, sizeof err) < 0) {
        fprintf(stderr, "wsgate-server: %s\n", err);
        return 1;
    }
    if (srv.map.n == 0)
        jsonlog(JSONLOG_WARN, *map_path ? "Started with no map entries: every /proxy request "
                                          "is a 404 until the map has some (SIGHUP reloads it)"
                                        : "Started with no map entries (no -map): every /proxy "
                                          "request is a 404",
                JL_STR("map", map_path));
    if (*key_path) {
        if (wsg_auth_load(&srv.auth, key_path, fresh, err, sizeof err) < 0) {
            fprintf(stderr, "wsgate-server: %s\n", err);
            return 1;
        }
        srv.auth_enabled = 1;
    }
    srv.opts.compression = compression;
    if (!*tls_cert != !*tls_key) {
        fprintf(stderr, "wsgate-server: -tls-cert and -tls-key go together\n");
        return 1;
    }
    if (*tls_cert) {
        srv.tls_ctx = transport_tls_server_ctx(tls_cert, tls_key, err, sizeof err);
        if (!srv.tls_ctx) {
            fprintf(stderr, "wsgate-server: %s\n", err);
            return 1;
        }
    }

    srv.listen_fd = net_starter_listener(err, sizeof err);
    if (srv.listen_fd == -1) {
        fprintf(stderr, "wsgate-server: %s\n", err);
        return 1;
    }
    if (srv.listen_fd == -2) {
        srv.listen_fd = net_listen(listen_addr, 1024, err, sizeof err);
        if (srv.listen_fd < 0) {
            fprintf(stderr, "wsgate-server: Failed to listen to port: %s\n", err);
            return 1;
        }
        char bound[160];
        net_local_name(srv.listen_fd, bound, sizeof bound);
        jsonlog(JSONLOG_INFO, "Listening", JL_STR("listen", listen_addr),
                JL_STR("address", bound));
    } else {
        jsonlog(JSONLOG_INFO, "Listening on the socket from Server::Starter",
                JL_STR("SERVER_STARTER_PORT", getenv("SERVER_STARTER_PORT")));
    }

    srv.loop = ev_default_loop(EVFLAG_AUTO);
    pthread_rwlock_init(&srv.cfg, NULL);
    srv.nworkers = (int)nworkers;
    srv.workers = calloc((size_t)srv.nworkers, sizeof *srv.workers);
    if (!srv.workers) {
        fprintf(stderr, "wsgate-server: out of memory\n");
        return 1;
    }
    struct workers_config wc = {
        .n = srv.nworkers,
        .fds = &srv.listen_fd,
        .nfds = 1,
        .on_accept = server_accept,
        .open_count = wsg_worker_open_count,
        .on_stop = wsg_worker_stopping,
        .on_done = wsg_workers_done,
        .close_listeners = 1,
        .data = &srv,
    };
    if (workers_init(&srv.set, srv.loop, &wc) < 0) {
        fprintf(stderr, "wsgate-server: cannot create event loops: %s\n", strerror(errno));
        return 1;
    }
    for (int i = 0; i < srv.nworkers; i++) {
        struct srv_worker *sw = &srv.workers[i];
        sw->srv = &srv;
        sw->w.opts = &srv.opts;
        sw->w.role = WS_ROLE_SERVER;
        sw->w.on_idle = worker_idle;
        sw->w.on_close = server_tunnel_closed;
        sw->w.app_size = sizeof(struct srv_fields);
        sw->w.log_fields = srv_log_fields;
        sw->w.owner = sw;
        wsg_worker_attach(&sw->w, &srv.set.w[i]);
    }
    if (workers_run(&srv.set) < 0) {
        fprintf(stderr, "wsgate-server: cannot start worker threads: %s\n", strerror(errno));
        return 1;
    }
    ev_signal_init(&srv.sigterm, sigterm_cb, SIGTERM);
    srv.sigterm.data = &srv;
    ev_signal_start(srv.loop, &srv.sigterm);
    ev_signal_init(&srv.sighup, sighup_cb, SIGHUP);
    srv.sighup.data = &srv;
    ev_signal_start(srv.loop, &srv.sighup);
    srv.map_path = map_path;
    srv.key_path = key_path;
    srv.tls_cert = tls_cert;
    srv.tls_key = tls_key;
    srv.freshness = fresh;
    ev_run(srv.loop, 0);
    /* worker threads may still be relaying after a shutdown timeout: exit
     * without tearing down what they use */
    workers_free(&srv.set);
    wsg_map_free(&srv.map);
    if (srv.auth_enabled)
        wsg_auth_free(&srv.auth);
    free(srv.workers);
    return 0;
}
