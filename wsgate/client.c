/* wsgate-client: local TCP listeners → WebSocket to wsgate-server. Each map
 * line "LISTEN_ADDR,URL" is a listener; every accepted connection dials the
 * URL, performs the RFC 6455 handshake (bounded by --connect-timeout) with
 * the -H headers, Origin and a bearer token from the token source, and then
 * becomes a tunnel (tunnel.c). One libev loop per worker thread (lib/workers,
 * --workers, default one per CPU), sharing the listeners; a tunnel lives on
 * the loop that accepted it. Per-connection state in struct tunnel; the
 * configuration is read-only once the workers run (the token source, whose
 * token a call may replace, is used under a lock). */
#include <ctype.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <strings.h>
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
#include "flags.h"
#include "jsonlog.h"
#include "mapfile.h"
#include "net.h"
#include "tunnel.h"
#include "version.h"
#include "ws.h"
#include "ws_deflate.h"
#include "ws_handshake.h"
#include "workers.h"
#include "wsgate.h"

struct listener {
    struct client *cl;
    char listen[160];
    char url[1024];
    char dial_target[300]; /* host:port for net_dial */
    char host_hdr[300];    /* Host header */
    char target[1024];     /* request target: path?query */
    char origin[320];      /* scheme://host[:port] */
    char tls_host[256];    /* host name or IP to verify (TLS), "" for plain */
    char host[256];        /* the gateway's host, without port or brackets (NO_PROXY) */
    int tls;
    char proxy[300];       /* HTTP proxy host:port for CONNECT, "" = direct */
    char *proxy_auth;      /* "Proxy-Authorization: Basic ..." or NULL (owned) */
    int lineno;            /* of its map line, for duplicate reports */
};

struct client;

/* One event loop of the client: its tunnels (w; w.lw its lib/workers loop). */
struct cli_worker {
    struct wsg_worker w;
    struct client *cl;
};

struct client {
    struct ev_loop *loop; /* the main thread's (worker 0 and signals) */
    struct wsg_opts opts;
    struct cli_worker *workers;
    int nworkers;
    struct workers set;
    double connect_timeout, shutdown_timeout;
    struct listener *ls;
    size_t nls;
    const char **headers;
    size_t nheaders;
    struct wsg_token_source *token;
    pthread_mutex_t token_lock; /* get() may replace the token another worker reads */
    struct ssl_ctx_st *tls_ctx;
    struct ws_pmd_params offer; /* permessage-deflate offer (--enable-compression) */
    char offer_str[128];
    ev_signal sigterm;
    int shutting_down;
    uint64_t seq; /* atomic */
    int stdio;    /* --stdio: one tunnel on stdin/stdout, no listeners */
    int stdio_ok; /* --stdio: the tunnel ended well */
};

static const struct wsg_disconnect_names client_names = {
    .ws_read = "ws_read",
    .tcp_write = "tcp_write",
    .tcp_read = "tcp_read",
    .ws_write = "ws_write",
};

struct cli_hs {
    struct listener *l;
    struct wsg_conn conn; /* the connection to the server until the upgrade */
    struct net_dial *dial;
    struct ws_hs_client hc;
    bool hc_init;
    char req[16384];
    size_t req_len, req_off;
    int fd;              /* the socket while talking to the proxy */
    char presp[8192];    /* proxy's answer to CONNECT */
    size_t presp_len;
};

static void hs_free(struct tunnel *t)
{
    struct cli_hs *h = t->hs;
    if (!h)
        return;
    if (h->dial)
        net_dial_cancel(h->dial);
    wsg_conn_free(&h->conn);
    if (h->hc_init)
        ws_hs_client_free(&h->hc);
    if (h->fd >= 0)
        close(h->fd);
    free(h);
    t->hs = NULL;
}

static void hs_fail(struct tunnel *t, const char *why)
{
    struct cli_hs *h = t->hs;
    struct jsonlog_field f[4];
    f[0] = JL_STR("error", why);
    f[1] = JL_STR("listen", h->l->listen);
    f[2] = JL_STR("client", t->remote_addr);
    f[3] = JL_STR("upstream", h->l->url);
    jsonlog_write(JSONLOG_WARN, "Failed to connect backend", f, 4);
    tunnel_close(t);
}

static void hs_timeout_cb(struct ev_loop *loop, ev_timer *tm, int revents)
{
    (void)loop;
    (void)revents;
    struct tunnel *t = tm->data;
    struct cli_hs *h = t->hs;
    char why[1200];
    snprintf(why, sizeof why, "Dial to \"%s\" fail: i/o timeout (--connect-timeout)", h->l->url);
    hs_fail(t, why);
}

static void hs_read(struct tunnel *t)
{
    struct cli_hs *h = t->hs;
    struct transport *tr = &h->conn.tr;
    uint8_t buf[16384];
    char why[1500];
    ssize_t n;
    size_t used;
    int rc;
    for (;;) {
        n = transport_read(tr, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* TLS: our handshake flight may still be queued */
            wsg_conn_want_read(&h->conn);
            return;
        }
        if (n < 0) {
            char eb[300];
            const char *te = transport_error(tr, eb, sizeof eb);
            snprintf(why, sizeof why, "Dial to \"%s\" fail: %s", h->l->url,
                     *te ? te : strerror(errno));
            hs_fail(t, why);
            return;
        }
        used = 0;
        rc = ws_hs_client_feed(&h->hc, buf, (size_t)n, &used);
        if (rc != WS_HS_MORE)
            break;
        if (n == 0 || !tr->ops->pending(tr))
            return;
    }
    if (rc == WS_HS_ERROR) {
        /* the error already carries the first line of a refusal's body */
        snprintf(why, sizeof why, "Dial to \"%s\" fail: %s", h->l->url,
                 h->hc.error ? h->hc.error : "bad response");
        hs_fail(t, why);
        return;
    }
    struct client *cl = h->l->cl;
    struct ws_pmd_params agreed;
    int pr = ws_pmd_client_accept(h->hc.extensions, &cl->offer, &agreed);
    if (pr < 0 || (pr == 1 && !cl->opts.compression)) {
        snprintf(why, sizeof why, "Dial to \"%s\" fail: bad Sec-WebSocket-Extensions answer: %s",
                 h->l->url, h->hc.extensions ? h->hc.extensions : "");
        hs_fail(t, why);
        return;
    }
    if (pr == 1) {
        t->pmd_on = true;
        ws_pmd_init(&t->pmd, &agreed, WS_ROLE_CLIENT, cl->opts.max_message, 1, 8);
    }
    if (h->hc.protocol && strcmp(h->hc.protocol, WSG_HALF_CLOSE_PROTOCOL) == 0)
        t->half_close = true;
    tunnel_start(t, &h->conn, buf + used, (size_t)n - used); /* frees h */
}

static void hs_write(struct tunnel *t)
{
    struct cli_hs *h = t->hs;
    if (transport_write_all(&h->conn.tr, h->req, h->req_len, &h->req_off) < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            /* TLS may need to read (handshake) before it can write */
            wsg_conn_want_write(&h->conn);
            return;
        }
        char why[1500], eb[300];
        const char *te = transport_error(&h->conn.tr, eb, sizeof eb);
        snprintf(why, sizeof why, "Dial to \"%s\" fail: %s", h->l->url,
                 *te ? te : strerror(errno));
        hs_fail(t, why);
        return;
    }
    wsg_conn_stop_write(&h->conn);
    wsg_conn_want_read(&h->conn);
}

static void ws_handshake_start(struct tunnel *t, int fd);

/* ---- HTTP proxy (CONNECT) ---- */

static void proxy_read(struct tunnel *t)
{
    struct cli_hs *h = t->hs;
    char why[1500];
    ssize_t n = recv(h->fd, h->presp + h->presp_len, sizeof h->presp - 1 - h->presp_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        snprintf(why, sizeof why, "proxy %s: %s", h->l->proxy,
                 n == 0 ? "closed the connection" : strerror(errno));
        hs_fail(t, why); /* hs_free closes h->fd */
        return;
    }
    h->presp_len += (size_t)n;
    h->presp[h->presp_len] = '\0';
    char *end = strstr(h->presp, "\r\n\r\n");
    if (!end) {
        if (h->presp_len >= sizeof h->presp - 1) {
            snprintf(why, sizeof why, "proxy %s: answer too long", h->l->proxy);
            hs_fail(t, why); /* hs_free closes h->fd */
        }
        return;
    }
    int major, minor, status = 0;
    if (sscanf(h->presp, "HTTP/%d.%d %d", &major, &minor, &status) != 3 || status < 200 ||
        status > 299 || (size_t)(end + 4 - h->presp) != h->presp_len) {
        snprintf(why, sizeof why, "proxy %s refused CONNECT: %.*s", h->l->proxy,
                 (int)strcspn(h->presp, "\r\n"), h->presp);
        hs_fail(t, why); /* hs_free closes h->fd */
        return;
    }
    wsg_conn_stop_read(&h->conn);
    int fd = h->fd;
    h->fd = -1;
    ws_handshake_start(t, fd);
}

static void proxy_write(struct tunnel *t)
{
    struct cli_hs *h = t->hs;
    while (h->req_off < h->req_len) {
        ssize_t n = send(h->fd, h->req + h->req_off, h->req_len - h->req_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                wsg_io_wait(h->conn.loop, &h->conn.wio, h->fd, TRANSPORT_WRITABLE);
                return;
            }
            char why[600];
            snprintf(why, sizeof why, "proxy %s: %s", h->l->proxy, strerror(errno));
            hs_fail(t, why); /* hs_free closes h->fd */
            return;
        }
        h->req_off += (size_t)n;
    }
    wsg_conn_stop_write(&h->conn);
    wsg_io_wait(h->conn.loop, &h->conn.rio, h->fd, TRANSPORT_READABLE);
}

/* The connection's watchers: on the proxy's socket while h->fd is set (the
 * CONNECT exchange), then on the transport (the upgrade). */
static void conn_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct tunnel *t = io->data;
    if (((struct cli_hs *)t->hs)->fd >= 0)
        proxy_read(t);
    else
        hs_read(t);
}

static void conn_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct tunnel *t = io->data;
    if (((struct cli_hs *)t->hs)->fd >= 0)
        proxy_write(t);
    else
        hs_write(t);
}

static void proxy_connect(struct tunnel *t, int fd)
{
    struct cli_hs *h = t->hs;
    struct listener *l = h->l;
    h->fd = fd;
    int n = snprintf(h->req, sizeof h->req, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s%s\r\n",
                     l->dial_target, l->dial_target, l->proxy_auth ? l->proxy_auth : "",
                     l->proxy_auth ? "\r\n" : "");
    h->req_len = n > 0 && (size_t)n < sizeof h->req ? (size_t)n : 0;
    h->req_off = 0;
    proxy_write(t);
}

static void dial_done(void *arg, int fd, const char *error)
{
    struct tunnel *t = arg;
    struct cli_hs *h = t->hs;
    h->dial = NULL;
    char why[1500];
    if (fd < 0) {
        snprintf(why, sizeof why, "Dial to \"%s\" fail: %s%s%s", h->l->url,
                 h->l->proxy[0] ? "proxy: " : "", error, "");
        hs_fail(t, why);
        return;
    }
    net_peer_name(fd, t->upstream, sizeof t->upstream);
    if (h->l->proxy[0]) {
        proxy_connect(t, fd);
        return;
    }
    ws_handshake_start(t, fd);
}

/* The TCP (or proxied) connection to the server is up: TLS if wanted, then
 * the WebSocket upgrade request. */
static void ws_handshake_start(struct tunnel *t, int fd)
{
    struct cli_hs *h = t->hs;
    struct client *cl = h->l->cl;
    char why[1500];
    if (h->l->tls) {
        if (transport_tls_init(&h->conn.tr, fd, cl->tls_ctx, h->l->tls_host) < 0) {
            hs_fail(t, "TLS setup failed");
            return;
        }
    } else {
        transport_tcp_init(&h->conn.tr, fd);
    }
    const char *hdrs[66];
    size_t nh = 0;
    for (size_t i = 0; i < cl->nheaders && nh < 64; i++)
        hdrs[nh++] = cl->headers[i];
    char authz[8192];
    if (cl->token) {
        char err[256];
        pthread_mutex_lock(&cl->token_lock);
        const char *tok = cl->token->get(cl->token, err, sizeof err);
        if (tok)
            snprintf(authz, sizeof authz, "Authorization: Bearer %s", tok);
        pthread_mutex_unlock(&cl->token_lock);
        if (!tok) {
            snprintf(why, sizeof why, "Failed to generate token: %s", err);
            hs_fail(t, why);
            return;
        }
        hdrs[nh++] = authz;
    }
    if (ws_hs_client_init(&h->hc, 0) < 0) {
        hs_fail(t, "out of memory");
        return;
    }
    (void)why;
    h->hc_init = true;
    struct ws_hs_client_config cfg = { 0 };
    cfg.host = h->l->host_hdr;
    cfg.target = h->l->target;
    cfg.origin = h->l->origin;
    cfg.protocol = WSG_HALF_CLOSE_PROTOCOL;
    cfg.extensions = cl->opts.compression ? cl->offer_str : NULL;
    cfg.headers = hdrs;
    cfg.nheaders = nh;
    ssize_t n = ws_hs_client_request(&h->hc, &cfg, h->req, sizeof h->req);
    if (n < 0) {
        snprintf(why, sizeof why, "Dial to \"%s\" fail: cannot build the request: %s",
                 h->l->url, strerror(errno));
        hs_fail(t, why);
        return;
    }
    h->req_len = (size_t)n;
    h->req_off = 0;
    hs_write(t);
}

/* Start one tunnel for listener l on worker cw, on an accepted socket (or
 * stdin/stdout). */
static void start_tunnel(struct cli_worker *cw, struct listener *l, int rfd, int wfd)
{
    struct client *cl = l->cl;
    struct ev_loop *loop = cw->w.loop;
    struct tunnel *t = tunnel_new(&cw->w, &client_names);
    struct cli_hs *h = t ? calloc(1, sizeof *h) : NULL;
    if (!h) {
        if (t)
            tunnel_close(t);
        close(rfd);
        if (wfd >= 0 && wfd != rfd)
            close(wfd);
        return;
    }
    h->l = l;
    h->fd = -1;
    wsg_conn_init(&h->conn, loop, t, conn_read_cb, conn_write_cb, hs_timeout_cb);
    t->hs = h;
    t->hs_free = hs_free;
    t->seq = __atomic_add_fetch(&cl->seq, 1, __ATOMIC_RELAXED);
    t->tcp_fd = rfd;
    if (wfd != rfd) {
        t->tcp_wfd = wfd;
        snprintf(t->remote_addr, sizeof t->remote_addr, "stdio");
    } else {
        net_set_nodelay(rfd);
        net_peer_name(rfd, t->remote_addr, sizeof t->remote_addr);
    }
    snprintf(t->dest, sizeof t->dest, "%s", l->url);
    wsg_conn_arm(&h->conn, cl->connect_timeout);
    h->dial = net_dial(loop, l->proxy[0] ? l->proxy : l->dial_target, cl->connect_timeout,
                       dial_done, t);
    if (!h->dial)
        hs_fail(t, "out of memory");
}

/* NO_PROXY: comma-separated host names, domain suffixes (".example.com" or
 * "example.com" matching subdomains), IP addresses, or "*". */
static bool no_proxy_match(const char *list, const char *host)
{
    if (!list)
        return false;
    char *copy = strdup(list), *save = NULL;
    bool hit = false;
    for (char *tok = copy ? strtok_r(copy, ", ", &save) : NULL; tok && !hit;
         tok = strtok_r(NULL, ", ", &save)) {
        char *colon = strrchr(tok, ':');
        if (colon && !strchr(tok, ']') && strchr(tok, ':') == colon)
            *colon = '\0'; /* host:port entries: match on the host */
        if (strcmp(tok, "*") == 0 || strcasecmp(tok, host) == 0) {
            hit = true;
            break;
        }
        const char *suffix = tok[0] == '.' ? tok : NULL;
        size_t hl = strlen(host), tl = strlen(tok);
        if (!suffix && hl > tl && host[hl - tl - 1] == '.' && strcasecmp(host + hl - tl, tok) == 0)
            hit = true;
        if (suffix && hl >= tl && strcasecmp(host + hl - tl, suffix) == 0)
            hit = true;
    }
    free(copy);
    return hit;
}

static const char *env2(const char *a, const char *b)
{
    const char *v = getenv(a);
    return v && *v ? v : getenv(b);
}

/* Pick the proxy for a listener from HTTPS_PROXY/HTTP_PROXY/NO_PROXY. */
static int setup_proxy(struct listener *l, char *err, size_t errlen)
{
    const char *p = l->tls ? env2("https_proxy", "HTTPS_PROXY") : env2("http_proxy", "HTTP_PROXY");
    if (!p || !*p || no_proxy_match(env2("no_proxy", "NO_PROXY"), l->host))
        return 0;
    const char *rest = p;
    if (strncmp(p, "http://", 7) == 0)
        rest = p + 7;
    else if (strstr(p, "://")) {
        snprintf(err, errlen, "proxy %s: only http:// proxies are supported", p);
        return -1;
    }
    const char *at = strchr(rest, '@');
    const char *hp = at ? at + 1 : rest;
    size_t hl = strcspn(hp, "/");
    if (hl == 0 || hl >= sizeof l->proxy) {
        snprintf(err, errlen, "proxy %s: no host", p);
        return -1;
    }
    memcpy(l->proxy, hp, hl);
    l->proxy[hl] = '\0';
    if (!strchr(l->proxy[0] == '[' ? strchr(l->proxy, ']') ? strchr(l->proxy, ']') : l->proxy
                                   : l->proxy, ':'))
        strncat(l->proxy, ":80", sizeof l->proxy - strlen(l->proxy) - 1);
    if (at) {
        /* user:password → Basic credentials */
        size_t ul = (size_t)(at - rest);
        unsigned char enc[1024];
        if (ul > 700) {
            snprintf(err, errlen, "proxy credentials too long");
            return -1;
        }
        int el = EVP_EncodeBlock(enc, (const unsigned char *)rest, (int)ul);
        l->proxy_auth = malloc((size_t)el + 40);
        if (!l->proxy_auth)
            return -1;
        snprintf(l->proxy_auth, (size_t)el + 40, "Proxy-Authorization: Basic %s", enc);
    }
    return 0;
}

static void client_accept(struct acceptor *a, int fd, const struct sockaddr *peer,
                          socklen_t peerlen)
{
    (void)peer;
    (void)peerlen;
    struct cli_worker *cw = wsg_accept_owner(a);
    start_tunnel(cw, &cw->cl->ls[a->tag], fd, fd);
}

/* ---- configuration ---- */

/* Split an http(s)/ws(s) URL into the listener's dial target, Host header,
 * request target and Origin. */
static int parse_url(struct listener *l, const char *url, char *why, size_t whylen)
{
    const char *rest;
    int tls;
    if (strncmp(url, "http://", 7) == 0)
        rest = url + 7, tls = 0;
    else if (strncmp(url, "ws://", 5) == 0)
        rest = url + 5, tls = 0;
    else if (strncmp(url, "https://", 8) == 0)
        rest = url + 8, tls = 1;
    else if (strncmp(url, "wss://", 6) == 0)
        rest = url + 6, tls = 1;
    else {
        snprintf(why, whylen, "URL \"%s\" must start with http://, https://, ws:// or wss://",
                 url);
        return -1;
    }
    size_t hl = strcspn(rest, "/?#");
    if (hl == 0 || hl >= 256) {
        snprintf(why, whylen, "URL \"%s\" has no host", url);
        return -1;
    }
    char hostport[256];
    memcpy(hostport, rest, hl);
    hostport[hl] = '\0';
    if (strchr(hostport, '@')) {
        snprintf(why, whylen, "URL \"%s\": user info is not supported", url);
        return -1;
    }
    const char *path = rest + hl;
    if (*path == '#' || *path == '\0')
        path = "/";
    snprintf(l->target, sizeof l->target, "%s%.*s", *path == '?' ? "/" : "",
             (int)strcspn(path, "#"), path);
    snprintf(l->host_hdr, sizeof l->host_hdr, "%s", hostport);
    /* host:port to dial: add the default port when absent */
    const char *close_br = hostport[0] == '[' ? strchr(hostport, ']') : NULL;
    const char *colon = close_br ? (close_br[1] == ':' ? close_br + 1 : NULL)
                                 : strrchr(hostport, ':');
    if (colon)
        snprintf(l->dial_target, sizeof l->dial_target, "%s", hostport);
    else
        snprintf(l->dial_target, sizeof l->dial_target, "%s:%s", hostport, tls ? "443" : "80");
    char h[256], p[32];
    int rc = wsg_port_check(l->dial_target, 0, why, whylen);
    if (rc < 0)
        return rc;
    net_split_hostport(l->dial_target, h, sizeof h, p, sizeof p, why, whylen);
    /* the URL's own scheme, as the original sends it (ws://h for a ws:// URL) */
    snprintf(l->origin, sizeof l->origin, "%.*s%s", (int)(rest - url), url, hostport);
    l->tls = tls;
    snprintf(l->host, sizeof l->host, "%s", h);
    if (tls)
        snprintf(l->tls_host, sizeof l->tls_host, "%s", h);
    snprintf(l->url, sizeof l->url, "%s", url);
    return 0;
}

static int map_add(void *arg, const char *key, const char *value, int lineno, char *why,
                   size_t whylen)
{
    struct client *cl = arg;
    int rc = wsg_port_check(key, 1, why, whylen);
    if (rc < 0)
        return rc;
    /* a second listener on the same address would only fail at bind time,
     * as "Address already in use"; ":0" is a new port every time */
    size_t kl = strlen(key);
    int any_port = kl >= 2 && strcmp(key + kl - 2, ":0") == 0;
    for (size_t i = 0; !any_port && i < cl->nls; i++) {
        if (strcmp(cl->ls[i].listen, key) == 0) {
            snprintf(why, whylen, "duplicate listen address %s (first at line %d)", key,
                     cl->ls[i].lineno);
            return -2;
        }
    }
    struct listener *nl = realloc(cl->ls, (cl->nls + 1) * sizeof *nl);
    if (!nl)
        return -1;
    cl->ls = nl;
    struct listener *l = &cl->ls[cl->nls];
    memset(l, 0, sizeof *l);
    snprintf(l->listen, sizeof l->listen, "%s", key);
    l->lineno = lineno;
    if (strlen(value) >= sizeof l->url) {
        snprintf(why, whylen, "URL too long");
        return -1;
    }
    rc = parse_url(l, value, why, whylen);
    if (rc < 0)
        return rc;
    if (setup_proxy(l, why, whylen) < 0)
        return -1;
    cl->nls++;
    return 0;
}

static int add_header(void *target, const char *value, char *err, size_t errlen)
{
    struct client *cl = target;
    const char *colon = strchr(value, ':');
    size_t nl = colon ? (size_t)(colon - value) : 0;
    for (size_t i = 0; i < nl; i++) {
        unsigned char c = (unsigned char)value[i];
        if (!isalnum(c) && !strchr("!#$%&'*+-.^_`|~", c)) {
            nl = 0;
            break;
        }
    }
    if (!colon || nl == 0 || strpbrk(value, "\r\n")) {
        snprintf(err, errlen, "expected \"Name: value\"");
        return -1;
    }
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    char *norm = malloc(nl + 3 + strlen(v));
    const char **nh = realloc(cl->headers, (cl->nheaders + 1) * sizeof *nh);
    if (!norm || !nh) {
        free(norm);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sprintf(norm, "%.*s: %s", (int)nl, value, v);
    cl->headers = nh;
    cl->headers[cl->nheaders++] = norm;
    return 0;
}

static void client_tunnel_closed(struct tunnel *t)
{
    struct cli_worker *cw = t->w->owner;
    if (cw->cl->stdio)
        cw->cl->stdio_ok = !t->failed; /* the one tunnel, on the main loop */
}

static void client_idle(struct wsg_worker *w)
{
    struct cli_worker *cw = w->owner;
    struct client *cl = cw->cl;
    if (cl->stdio && !cl->shutting_down) {
        ev_break(cl->loop, EVBREAK_ALL); /* --stdio: the one tunnel is over */
        return;
    }
    worker_check_idle(w->lw); /* a stopping worker is done with its last tunnel */
}

static void sigterm_cb(struct ev_loop *loop, ev_signal *sig, int revents)
{
    (void)loop;
    (void)revents;
    struct client *cl = sig->data;
    if (cl->shutting_down)
        return;
    cl->shutting_down = 1;
    jsonlog(JSONLOG_INFO, "Signal received. Start to shutdown");
    if (workers_open(&cl->set))
        jsonlog(JSONLOG_INFO, "Waiting for all connections to be closed");
    workers_shutdown(&cl->set, cl->shutdown_timeout);
}

int main(int argc, char **argv)
{
    static struct client cl;
    const char *map_path = NULL, *pk = "", *pk_user = "private-key-user", *iap_cred = "";
    const char *iap_id = "", *iap_endpoint = "", *ca_file = "", *stdio_url = NULL;
    int64_t cto = 60000000000LL, sto = 3600000000000LL;
    int compression = 0, map_seen = 0;
    long long nworkers = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
    struct wsg_keepalive ka = WSG_KEEPALIVE_DEFAULTS;
    const struct flag_spec specs[] = {
        { "map", 0, FLAG_STRING, &map_path, "FILE",
          "Listen port and upstream url mapping file (required unless --stdio)", NULL, &map_seen,
          NULL },
        { "connect-timeout", 0, FLAG_DURATION, &cto, "DURATION",
          "Timeout of connection to upstream, handshake included (default: 60s; 0 = none)",
          NULL, NULL, "0s..8760h" },
        { "shutdown-timeout", 0, FLAG_DURATION, &sto, "DURATION",
          "Timeout to wait for all connections to be closed (default: 1h)", NULL, NULL,
          "0s..8760h" },
        { "enable-compression", 0, FLAG_BOOL, &compression, NULL,
          "To enable WebSocket Per-Message Compression Extensions (RFC 7692)", NULL, NULL, NULL },
        { "headers", 'H', FLAG_FUNC, &cl, "\"Name: value\"",
          "Header key and value added to upstream (repeatable)", add_header, NULL, NULL },
        { "private-key", 0, FLAG_STRING, &pk, "FILE",
          "Private key for signing JWT auth header", NULL, NULL, NULL },
        { "private-key-user", 0, FLAG_STRING, &pk_user, "USER",
          "User id which is used as Subject in JWT payload (default: private-key-user)", NULL,
          NULL, NULL },
        { "iap-credential", 0, FLAG_STRING, &iap_cred, "FILE",
          "GCP service account json file for wsgate-server behind IAP", NULL, NULL, NULL },
        { "iap-client-id", 0, FLAG_STRING, &iap_id, "ID", "IAP's OAuth2 Client ID", NULL,
          NULL, NULL },
        { "iap-token-endpoint", 0, FLAG_STRING, &iap_endpoint, "URL",
          "OAuth2 token endpoint (default: https://oauth2.googleapis.com/token)", NULL, NULL,
          NULL },
        { "ca-file", 0, FLAG_STRING, &ca_file, "FILE",
          "Extra CA certificate (PEM) to trust for wss:// and the token endpoint", NULL, NULL,
          NULL },
        WSG_KEEPALIVE_FLAGS(&ka, "server", "--"),
        { "workers", 0, FLAG_INT, &nworkers, "N",
          "Event-loop threads sharing the listeners (default: CPUs)", NULL, NULL, "1..256" },
        { "stdio", 0, FLAG_STRING, &stdio_url, "URL",
          "One tunnel over stdin/stdout instead of listeners (ssh ProxyCommand)", NULL, NULL,
          NULL },
        { "version", 'v', FLAG_VERSION, NULL, NULL, "Show version", NULL, NULL, NULL },
        { NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL },
    };
    const struct flags_def def = {
        .prog = "wsgate-client",
        .synopsis = "--map FILE [OPTIONS] | --stdio URL [OPTIONS]",
        .description = "Accepts TCP connections on each LISTEN_ADDR of the map file and "
                       "relays each one over its own WebSocket to wsgate-server "
                       "(through HTTPS_PROXY/HTTP_PROXY unless NO_PROXY says otherwise).",
        .style = FLAGS_GNU,
        .specs = specs,
    };
    int first;
    flags_parse_or_exit(&def, argc, argv, &first);
    if (first < argc) {
        fprintf(stderr, "wsgate-client: unexpected argument \"%s\"\n", argv[first]);
        return 1;
    }
    if (stdio_url && map_seen) {
        fprintf(stderr, "wsgate-client: --stdio and --map are exclusive\n");
        return 1;
    }
    if (!stdio_url && (!map_seen || !map_path || !*map_path)) {
        fprintf(stderr, "wsgate-client: the required flag `--map' was not specified\n");
        return 1;
    }
    if (*iap_cred && *pk) {
        fprintf(stderr, "wsgate-client: --iap-credential and --private-key are exclusive\n");
        return 1;
    }
    if (*iap_cred && !*iap_id) {
        fprintf(stderr, "wsgate-client: --iap-client-id is required with --iap-credential\n");
        return 1;
    }
    wsg_process_setup();
    char err[1200];
    if (*iap_cred) {
        cl.token = wsg_token_iap_new(iap_cred, iap_id, iap_endpoint, ca_file, err, sizeof err);
        if (!cl.token) {
            fprintf(stderr, "wsgate-client: Failed to init iap token generator: %s\n", err);
            return 1;
        }
    } else if (*pk) {
        cl.token = wsg_token_privatekey_new(pk, pk_user, err, sizeof err);
        if (!cl.token) {
            fprintf(stderr, "wsgate-client: Failed to init token generator: %s\n", err);
            return 1;
        }
    }
    cl.opts.compression = compression;
    cl.offer.client_max_window_bits_novalue = true;
    cl.offer.client_no_context_takeover = true; /* bounded memory per tunnel */
    if (ws_pmd_format(&cl.offer, cl.offer_str, sizeof cl.offer_str) < 0)
        cl.opts.compression = 0;
    int n;
    if (stdio_url) {
        char why[600];
        jsonlog_set_min_level(JSONLOG_WARN); /* stderr is the user's terminal */
        n = map_add(&cl, "127.0.0.1:0", stdio_url, 0, why, sizeof why);
        if (n < 0) {
            fprintf(stderr, "wsgate-client: --stdio: %s\n", why);
            return 1;
        }
        n = 1;
        cl.stdio = 1;
    } else {
        n = mapfile_load(map_path, "LISTEN_ADDR,URL", map_add, &cl, err, sizeof err);
    }
    if (n < 0) {
        fprintf(stderr, "wsgate-client: %s\n", err);
        return 1;
    }
    if (n == 0) {
        fprintf(stderr, "wsgate-client: %s: no LISTEN_ADDR,URL line\n", map_path);
        return 1;
    }
    int need_tls = *ca_file != '\0';
    for (size_t i = 0; i < cl.nls; i++)
        need_tls |= cl.ls[i].tls;
    if (need_tls) {
        cl.tls_ctx = transport_tls_client_ctx(ca_file, err, sizeof err);
        if (!cl.tls_ctx) {
            fprintf(stderr, "wsgate-client: --ca-file: %s\n", err);
            return 1;
        }
    }
    cl.loop = ev_default_loop(EVFLAG_AUTO);
    cl.opts.handshake_timeout = (double)cto / 1e9;
    cl.opts.dial_timeout = (double)cto / 1e9;
    cl.opts.write_timeout = 10.;
    wsg_keepalive_apply(&ka, &cl.opts);
    cl.connect_timeout = (double)cto / 1e9;
    cl.shutdown_timeout = (double)sto / 1e9;
    pthread_mutex_init(&cl.token_lock, NULL);
    /* the listeners first, each logged, so that a port in use is said before
     * any thread starts */
    int *fds = calloc(cl.nls + 1, sizeof *fds);
    const char **names = calloc(cl.nls + 1, sizeof *names);
    if (!fds || !names) {
        fprintf(stderr, "wsgate-client: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < cl.nls; i++)
        cl.ls[i].cl = &cl;
    for (size_t i = 0; !cl.stdio && i < cl.nls; i++) {
        struct listener *l = &cl.ls[i];
        fds[i] = net_listen(l->listen, 1024, err, sizeof err);
        if (fds[i] < 0) {
            fprintf(stderr, "wsgate-client: could not listen %s: %s\n", l->listen, err);
            return 1;
        }
        names[i] = l->listen;
        char bound[160];
        net_local_name(fds[i], bound, sizeof bound);
        jsonlog(JSONLOG_INFO, "Create map", JL_STR("listen", l->listen),
                JL_STR("address", bound), JL_STR("upstream", l->url));
    }
    cl.nworkers = cl.stdio ? 1 : (int)nworkers;
    cl.workers = calloc((size_t)cl.nworkers, sizeof *cl.workers);
    if (!cl.workers) {
        fprintf(stderr, "wsgate-client: out of memory\n");
        return 1;
    }
    struct workers_config wc = {
        .n = cl.nworkers,
        .fds = fds,
        .names = names,
        .nfds = cl.stdio ? 0 : (int)cl.nls,
        .on_accept = client_accept,
        .open_count = wsg_worker_open_count,
        .on_stop = wsg_worker_stopping,
        .on_done = wsg_workers_done,
        .close_listeners = 1,
        .data = &cl,
    };
    if (workers_init(&cl.set, cl.loop, &wc) < 0) {
        fprintf(stderr, "wsgate-client: cannot create event loops: %s\n", strerror(errno));
        return 1;
    }
    for (int i = 0; i < cl.nworkers; i++) {
        struct cli_worker *cw = &cl.workers[i];
        cw->cl = &cl;
        cw->w.opts = &cl.opts;
        cw->w.role = WS_ROLE_CLIENT;
        cw->w.on_idle = client_idle;
        cw->w.on_close = client_tunnel_closed;
        cw->w.owner = cw;
        wsg_worker_attach(&cw->w, &cl.set.w[i]);
    }
    if (workers_run(&cl.set) < 0) {
        fprintf(stderr, "wsgate-client: cannot start worker threads: %s\n", strerror(errno));
        return 1;
    }
    if (cl.stdio) {
        int in = dup(0), out = dup(1);
        if (in < 0 || out < 0 || net_set_nonblock(in) < 0 || net_set_nonblock(out) < 0) {
            fprintf(stderr, "wsgate-client: --stdio: %s\n", strerror(errno));
            return 1;
        }
        start_tunnel(&cl.workers[0], &cl.ls[0], in, out);
    }
    ev_signal_init(&cl.sigterm, sigterm_cb, SIGTERM);
    cl.sigterm.data = &cl;
    ev_signal_start(cl.loop, &cl.sigterm);
    ev_run(cl.loop, 0);
    if (cl.stdio) /* ended without a shutdown, on the one loop: its buffers go */
        wsg_worker_stop_sweep(&cl.workers[0].w);
    workers_free(&cl.set);
    if (cl.token)
        cl.token->free(cl.token);
    free(cl.workers);
    free(fds);
    free(names);
    return stdio_url && cl.stdio_ok != 1 ? 1 : 0;
}
