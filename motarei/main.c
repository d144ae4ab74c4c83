/* motarei: TCP proxy for Docker hot deploy, a drop-in for kazeburo/motarei.
 * Start-up asks the engine for the running containers with the label; the
 * newest one's published TCP ports are the private ports served, one
 * listener each (or the sockets from SERVER_STARTER_PORT). Then the
 * discovery thread keeps the backend table current and the worker loops
 * proxy. This file: flags, start-up checks and their messages, listeners,
 * /metrics, signals and the ordered shutdown. */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>

#include "flags.h"
#include "jsonlog.h"
#include "net.h"
#include "proxy.h"
#include "units.h"
#include "version.h"

/* zap's Fatal: one line, exit 1. */
static void fatal(const char *msg, const char *err)
{
    jsonlog(JSONLOG_FATAL, msg, JL_ERR(err));
    exit(1);
}

/* ---- /metrics ---- */

struct metrics_conn {
    ev_io io;
    ev_timer deadline;
    struct motarei *m;
    char buf[2048];
    size_t len;
    char *out; /* the answer being sent (owned) */
    size_t out_len, out_off;
};

static const char *health_name(enum mt_health h)
{
    switch (h) {
    case MT_HEALTH_STARTING: return "starting";
    case MT_HEALTH_HEALTHY: return "healthy";
    case MT_HEALTH_UNHEALTHY: return "unhealthy";
    default: return "none";
    }
}

static const char *probe_name(enum mt_probe p)
{
    switch (p) {
    case MT_PROBE_UNKNOWN: return "unknown";
    case MT_PROBE_PASSED: return "passed";
    case MT_PROBE_FAILED: return "failed";
    default: return "off";
    }
}

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

static char *metrics_body(struct motarei *m, size_t *len)
{
    char *p = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&p, &n);
    if (!f)
        return NULL;
    const struct mt_snapshot *s = m->loops[0].snap; /* this thread's own */
    fprintf(f, "# HELP motarei_backend A container publishing a served port (1 = present).\n"
               "# TYPE motarei_backend gauge\n");
    for (size_t i = 0; s && i < s->nports; i++) {
        const struct mt_backend *c = mt_snapshot_chosen(s, i);
        for (size_t k = 0; k < s->ports[i].n; k++) {
            const struct mt_backend *b = &s->ports[i].b[k];
            fprintf(f,
                    "motarei_backend{port=\"%u\",container=\"%s\",public_port=\"%u\","
                    "health=\"%s\",check=\"%s\",ready=\"%d\",chosen=\"%d\"} 1\n",
                    s->ports[i].private_port, b->id, b->public_port, health_name(b->health),
                    probe_name(b->probe), b->ready, b == c);
        }
    }
    fprintf(f, "# HELP motarei_connections_open Client connections open now.\n"
               "# TYPE motarei_connections_open gauge\nmotarei_connections_open %lu\n",
            LOAD(m->open));
    fprintf(f, "# HELP motarei_connections_total Client connections accepted.\n"
               "# TYPE motarei_connections_total counter\nmotarei_connections_total %lu\n",
            LOAD(m->total));
    fprintf(f, "# HELP motarei_connections_failed_total Connections closed without a backend.\n"
               "# TYPE motarei_connections_failed_total counter\n"
               "motarei_connections_failed_total %lu\n",
            LOAD(m->failed));
    fprintf(f, "# HELP motarei_bytes_total Bytes relayed by finished connections.\n"
               "# TYPE motarei_bytes_total counter\n"
               "motarei_bytes_total{direction=\"client_to_backend\"} %llu\n"
               "motarei_bytes_total{direction=\"backend_to_client\"} %llu\n",
            LOAD(m->bytes_c2b), LOAD(m->bytes_b2c));
    fprintf(f, "# HELP motarei_discovery_errors_total Failed container listings.\n"
               "# TYPE motarei_discovery_errors_total counter\n"
               "motarei_discovery_errors_total %lu\n",
            mt_discovery_errors(m->disc));
    fprintf(f, "# HELP motarei_docker_events_connected 1 while the events stream is open.\n"
               "# TYPE motarei_docker_events_connected gauge\n"
               "motarei_docker_events_connected %d\n",
            mt_discovery_events_connected(m->disc));
    fclose(f);
    *len = n;
    return p;
}

static void metrics_close(struct ev_loop *loop, struct metrics_conn *mc)
{
    ev_io_stop(loop, &mc->io);
    ev_timer_stop(loop, &mc->deadline);
    close(mc->io.fd);
    free(mc->out);
    free(mc);
}

/* Send the answer as the socket takes it (the main loop never waits on a
 * slow reader; the 5 s deadline drops one that does not read at all). */
static void metrics_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    struct metrics_conn *mc = io->data;
    while (mc->out_off < mc->out_len) {
        ssize_t w = send(io->fd, mc->out + mc->out_off, mc->out_len - mc->out_off, MSG_NOSIGNAL);
        if (w > 0) {
            mc->out_off += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            break;
        }
    }
    metrics_close(loop, mc);
}

/* Queue head + body (body may be NULL) and start sending. */
static void metrics_respond(struct ev_loop *loop, struct metrics_conn *mc, const char *head,
                            size_t hl, const char *body, size_t blen)
{
    mc->out = malloc(hl + blen);
    if (!mc->out) {
        metrics_close(loop, mc);
        return;
    }
    memcpy(mc->out, head, hl);
    if (blen)
        memcpy(mc->out + hl, body, blen);
    mc->out_len = hl + blen;
    ev_io_stop(loop, &mc->io);
    ev_io_set(&mc->io, mc->io.fd, EV_WRITE);
    ev_set_cb(&mc->io, metrics_write_cb);
    ev_io_start(loop, &mc->io);
    metrics_write_cb(loop, &mc->io, EV_WRITE);
}

static void metrics_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    struct metrics_conn *mc = io->data;
    ssize_t n = recv(io->fd, mc->buf + mc->len, sizeof mc->buf - 1 - mc->len, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        metrics_close(loop, mc);
        return;
    }
    mc->len += (size_t)n;
    mc->buf[mc->len] = 0;
    if (!strstr(mc->buf, "\r\n\r\n") && !strstr(mc->buf, "\n\n")) {
        if (mc->len >= sizeof mc->buf - 1)
            metrics_close(loop, mc);
        return;
    }
    if (strncmp(mc->buf, "GET /metrics ", 13) == 0 || strncmp(mc->buf, "GET / ", 6) == 0) {
        char head[256];
        size_t blen = 0;
        char *body = metrics_body(mc->m, &blen);
        int hl = snprintf(head, sizeof head,
                          "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                          body ? blen : 0);
        metrics_respond(loop, mc, head, (size_t)hl, body, body ? blen : 0);
        free(body);
    } else {
        static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                                 "Content-Length: 10\r\nConnection: close\r\n\r\nnot found\n";
        metrics_respond(loop, mc, nf, sizeof nf - 1, NULL, 0);
    }
}

static void metrics_deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    metrics_close(loop, t->data);
}

static void metrics_accept(struct acceptor *a, int fd, const struct sockaddr *peer,
                           socklen_t peerlen)
{
    (void)peer;
    (void)peerlen;
    struct motarei *m = a->data;
    struct metrics_conn *mc = calloc(1, sizeof *mc);
    if (!mc) {
        close(fd);
        return;
    }
    mc->m = m;
    ev_io_init(&mc->io, metrics_read_cb, fd, EV_READ);
    mc->io.data = mc;
    ev_timer_init(&mc->deadline, metrics_deadline_cb, 5., 0.);
    mc->deadline.data = mc;
    ev_io_start(m->set.main_loop, &mc->io);
    ev_timer_start(m->set.main_loop, &mc->deadline);
}

/* ---- signals and shutdown ---- */

static struct acceptor metrics_acceptor;
static int metrics_fd = -1;

static void shutdown_done(struct workers *set, int timed_out)
{
    struct motarei *m = set->cfg.data;
    if (timed_out) {
        jsonlog(JSONLOG_WARN, "Shutdown timeout, closing open connections",
                JL_UINT("open", LOAD(m->open)));
        _exit(0); /* the kernel closes what is still open, in every thread */
    }
    jsonlog(JSONLOG_INFO, "All connections closed. Shutdown");
    ev_break(set->main_loop, EVBREAK_ALL);
}

static void sigterm_cb(struct ev_loop *loop, ev_signal *sig, int revents)
{
    (void)revents;
    struct motarei *m = sig->data;
    if (m->set.shutting_down)
        return;
    jsonlog(JSONLOG_INFO, "Signal received. Start to shutdown",
            JL_STR("signal", sig->signum == SIGINT ? "SIGINT" : "SIGTERM"),
            JL_UINT("open", LOAD(m->open)));
    for (size_t i = 0; i < m->nports; i++)
        jsonlog(JSONLOG_INFO, "Go shutdown", JL_STR("host", m->cfg.bind),
                JL_UINT("port", m->ports[i]));
    if (metrics_fd >= 0) {
        acceptor_stop(loop, &metrics_acceptor);
        close(metrics_fd);
        metrics_fd = -1;
    }
    workers_shutdown(&m->set, m->cfg.shutdown_timeout);
}

static void sighup_cb(struct ev_loop *loop, ev_signal *sig, int revents)
{
    (void)loop;
    (void)revents;
    struct motarei *m = sig->data;
    jsonlog(JSONLOG_INFO, "SIGHUP: re-listing containers");
    mt_discovery_poke(m->disc);
}

/* ---- flags ---- */

struct check_arg {
    enum mt_check *kind;
    const char **path;
};

static int parse_check(void *target, const char *v, char *err, size_t errlen)
{
    struct check_arg *ca = target;
    if (strcmp(v, "tcp") == 0) {
        *ca->kind = MT_CHECK_TCP;
    } else if (strncmp(v, "http:", 5) == 0 && v[5] == '/' && strlen(v) < 400 &&
               !strpbrk(v, " \t\r\n")) {
        *ca->kind = MT_CHECK_HTTP;
        *ca->path = v + 5;
    } else if (strcmp(v, "none") == 0) {
        *ca->kind = MT_CHECK_NONE;
    } else {
        snprintf(err, errlen, "tcp, http:/PATH or none");
        return -1;
    }
    return 0;
}

static int parse_pp(void *target, const char *v, char *err, size_t errlen)
{
    int *pp = target;
    if (strcmp(v, "v1") == 0 || strcmp(v, "1") == 0)
        *pp = 1;
    else if (strcmp(v, "v2") == 0 || strcmp(v, "2") == 0)
        *pp = 2;
    else if (strcmp(v, "none") == 0 || strcmp(v, "0") == 0)
        *pp = 0;
    else {
        snprintf(err, errlen, "v1, v2 or none");
        return -1;
    }
    return 0;
}

/* Does s hold a backend no probe has decided yet? */
static int probes_pending(const struct mt_snapshot *s)
{
    for (size_t i = 0; s && i < s->nports; i++)
        for (size_t k = 0; k < s->ports[i].n; k++)
            if (s->ports[i].b[k].probe == MT_PROBE_UNKNOWN)
                return 1;
    return 0;
}

/* With --health-check the first snapshot has no probe results: every backend
 * counts as not ready, and the first connections would be turned away with
 * "Could not find Backends". Wait for the first round of probes (each gives
 * up within 2 s; this waits 3 s at most); meanwhile connections wait in the
 * listen backlog. Runs before the loops do, so it takes their snapshots. */
static void wait_first_probes(struct motarei *m)
{
    for (int tick = 0; tick < 300 && probes_pending(m->loops[0].snap); tick++) {
        struct timespec t = { 0, 10 * 1000 * 1000 };
        nanosleep(&t, NULL);
        for (int i = 0; i < m->nloops; i++)
            mt_loop_take_snapshot(&m->loops[i]);
    }
}

/* The port of a SERVER_STARTER_PORT key ("8080", "127.0.0.1:8080", "[::1]:8080"). */
static long starter_key_port(const char *key)
{
    const char *c = strrchr(key, ':');
    const char *p = c ? c + 1 : key;
    char *end;
    long v = strtol(p, &end, 10);
    return *p && !*end && v > 0 && v < 65536 ? v : -1;
}

int main(int argc, char **argv)
{
    struct motarei m;
    memset(&m, 0, sizeof m);
    const char *label = NULL, *bind = "0.0.0.0", *cip = "127.0.0.1", *metrics = NULL;
    int64_t cto = 60000000000LL, sto = 30000000000LL;
    long long nworkers = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
    int label_seen = 0;
    enum mt_check check = MT_CHECK_NONE;
    const char *check_path = NULL;
    struct check_arg ca = { &check, &check_path };
    int pp = 0;
    const struct flag_spec specs[] = {
        { "label", 'l', FLAG_STRING, &label, "LABEL",
          "label to filter container. eg app=nginx (required)", NULL, &label_seen, NULL },
        { "bind", 0, FLAG_STRING, &bind, "IP", "IP address to bind (default 0.0.0.0; [::] too)", NULL, NULL,
          NULL },
        { "proxy-connect-timeout", 0, FLAG_DURATION, &cto, "DURATION",
          "timeout of connection to upstream (default 60s; 0 = the system's)", NULL, NULL,
          "0s..8760h" },
        { "proxy-connect-ip", 0, FLAG_STRING, &cip, "IP",
          "destination ip address to connect to upstream (default 127.0.0.1)", NULL, NULL, NULL },
        { "health-check", 0, FLAG_FUNC, &ca, "tcp|http:/PATH",
          "probe each backend; only one that passed takes traffic (default: none)", parse_check, NULL,
          NULL },
        { "proxy-protocol", 0, FLAG_FUNC, &pp, "v1|v2",
          "send a PROXY protocol header with the client address to the backend", parse_pp, NULL,
          NULL },
        { "shutdown-timeout", 0, FLAG_DURATION, &sto, "DURATION",
          "on SIGTERM, wait this long for open connections (default 30s; 0 = no limit)", NULL,
          NULL, "0s..8760h" },
        { "metrics-listen", 0, FLAG_STRING, &metrics, "ADDR",
          "serve Prometheus metrics on ADDR (host:port), GET /metrics", NULL, NULL, NULL },
        { "workers", 0, FLAG_INT, &nworkers, "N", "event-loop threads (default: CPUs)", NULL, NULL,
          "1..256" },
        { "version", 'v', FLAG_VERSION, NULL, NULL, "Show version", NULL, NULL, NULL },
        { NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL },
    };
    const struct flags_def def = {
        .prog = "motarei",
        .synopsis = "-l LABEL [OPTIONS]",
        .description =
            "Listens on each TCP port the newest running container with LABEL publishes and "
            "forwards every connection to the newest ready container publishing that port, "
            "following Docker events (DOCKER_HOST, DOCKER_API_VERSION). Listeners come from "
            "SERVER_STARTER_PORT when run under start_server.",
        .style = FLAGS_GNU,
        .specs = specs,
    };
    int first;
    int rc = flags_parse(&def, argc, argv, &first, NULL, 0);
    if (rc == FLAGS_VERSION) {
        flags_print_version("motarei");
        return 0;
    }
    flags_parse_or_exit(&def, argc, argv, &first);
    if (first < argc) {
        fprintf(stderr, "motarei: unexpected argument \"%s\"\n", argv[first]);
        return 1;
    }
    if (!label_seen) {
        fprintf(stderr, "the required flag `-l, --label' was not specified\n");
        return 1;
    }
    if (!*label) {
        fprintf(stderr, "motarei: --label must not be empty\n");
        return 1;
    }
    if (sto < 0) {
        fprintf(stderr, "motarei: --shutdown-timeout must not be negative\n");
        return 1;
    }
    if (nworkers < 1 || nworkers > 256) {
        fprintf(stderr, "motarei: --workers must be 1..256\n");
        return 1;
    }
    {
        char probe[80], h[64], p[16], err[128];
        net_join_hostport(bind, 1, probe, sizeof probe);
        if (!*bind || net_split_hostport(probe, h, sizeof h, p, sizeof p, err, sizeof err) < 0) {
            fprintf(stderr, "motarei: invalid --bind \"%s\"\n", bind);
            return 1;
        }
        /* a name that does not resolve is the flag's fault: say so now, not
         * after discovery as a failure to listen */
        struct addrinfo hints = { .ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM }, *res;
        int gai = getaddrinfo(h, NULL, &hints, &res);
        if (gai != 0) {
            fprintf(stderr, "motarei: invalid --bind \"%s\": %s\n", bind, gai_strerror(gai));
            return 1;
        }
        freeaddrinfo(res);
        unsigned char tmp[16];
        if (inet_pton(AF_INET, cip, tmp) != 1 && inet_pton(AF_INET6, cip, tmp) != 1) {
            fprintf(stderr, "motarei: invalid --proxy-connect-ip \"%s\" (an IP address)\n", cip);
            return 1;
        }
        if (metrics &&
            net_split_hostport(metrics, h, sizeof h, p, sizeof p, err, sizeof err) < 0) {
            fprintf(stderr, "motarei: invalid --metrics-listen \"%s\": %s\n", metrics, err);
            return 1;
        }
    }
    m.cfg = (struct motarei_config){
        .label = label, .bind = bind, .connect_ip = cip, .connect_timeout = (double)cto / 1e9,
        .proxy_protocol = pp, .check = check, .check_path = check_path,
        .shutdown_timeout = sto == 0 ? -1 : (double)sto / 1e9, .metrics_listen = metrics,
        .workers = (int)nworkers,
    };
    signal(SIGPIPE, SIG_IGN);
    /* like zap's production logger: info and up, unless asked */
    const char *dbg = getenv("MOTAREI_DEBUG");
    jsonlog_set_min_level(dbg && *dbg && strcmp(dbg, "0") != 0 ? JSONLOG_DEBUG : JSONLOG_INFO);
    net_raise_fd_limit(); /* several descriptors per connection (two sockets, two pipes) */
    curl_global_init(CURL_GLOBAL_DEFAULT);

    /* ---- discovery at start-up ---- */
    char err[1024];
    struct mt_docker docker;
    struct mt_list list;
    if (mt_docker_init(&docker, err, sizeof err) < 0 || mt_docker_ping(&docker, err, sizeof err) < 0 ||
        mt_docker_list(&docker, label, &list, err, sizeof err) < 0)
        fatal("failed initialize discovery", err);
    if (list.n < 1) {
        snprintf(err, sizeof err, "Could not find containers with label: %s", label);
        fatal("failed initialize discovery", err);
    }
    const struct mt_container *newest = &list.c[0];
    m.ports = calloc(newest->nports + 1, sizeof *m.ports);
    for (size_t i = 0; m.ports && i < newest->nports; i++) {
        if (newest->ports[i].public_port)
            m.ports[m.nports++] = newest->ports[i].private_port;
        else
            jsonlog(JSONLOG_WARN, "Exposed port is not published: not listening on it",
                    JL_UINT("port", newest->ports[i].private_port),
                    JL_STR("container", newest->id));
    }
    if (m.nports < 1) {
        snprintf(err, sizeof err,
                 "containers were found, but that container has no public port. container-id:%s",
                 newest->id);
        fatal("failed initialize discovery", err);
    }
    jsonlog(JSONLOG_INFO, "Discovered containers", JL_UINT("containers", list.n),
            JL_STR("newest", newest->id), JL_STR("api_version", docker.version));

    /* ---- listeners ---- */
    int *fds = calloc(m.nports, sizeof *fds);
    char **names = calloc(m.nports, sizeof *names);
    const char *ssp = getenv("SERVER_STARTER_PORT");
    struct net_starter_port sp[64];
    int nsp = 0;
    if (ssp) {
        nsp = net_starter_parse(ssp, sp, 64, err, sizeof err);
        if (nsp < 0)
            fatal("failed to start proxy", err);
    }
    for (size_t i = 0; i < m.nports; i++) {
        char addr[160];
        net_join_hostport(bind, m.ports[i], addr, sizeof addr);
        names[i] = strdup(addr);
        fds[i] = -1;
        for (int k = 0; k < nsp; k++) {
            if (starter_key_port(sp[k].addr) == m.ports[i]) {
                fds[i] = sp[k].fd;
                net_set_nonblock(fds[i]);
                jsonlog(JSONLOG_INFO, "Start listen", JL_STR("host", bind),
                        JL_UINT("port", m.ports[i]), JL_STR("server_starter", sp[k].addr));
                break;
            }
        }
        if (fds[i] >= 0)
            continue;
        if (nsp > 0)
            jsonlog(JSONLOG_WARN, "No SERVER_STARTER_PORT socket for this port: listening myself",
                    JL_UINT("port", m.ports[i]));
        jsonlog(JSONLOG_INFO, "Start listen", JL_STR("host", bind), JL_UINT("port", m.ports[i]));
        fds[i] = net_listen(addr, SOMAXCONN, err, sizeof err);
        if (fds[i] < 0)
            fatal("failed to start proxy", err);
    }
    for (int k = 0; k < nsp; k++) {
        long pnum = starter_key_port(sp[k].addr);
        size_t i;
        for (i = 0; i < m.nports; i++)
            if (m.ports[i] == pnum)
                break;
        if (i == m.nports)
            jsonlog(JSONLOG_WARN, "SERVER_STARTER_PORT socket for a port not served: ignored",
                    JL_STR("socket", sp[k].addr));
    }

    /* ---- loops, discovery, metrics ---- */
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    struct workers_config wc = {
        .n = m.cfg.workers,
        .fds = fds,
        .names = (const char *const *)names,
        .nfds = (int)m.nports,
        .on_accept = mt_proxy_accept,
        .on_done = shutdown_done,
        .close_listeners = 1,
        .data = &m,
    };
    if (workers_init(&m.set, loop, &wc) < 0)
        fatal("failed to start proxy", strerror(errno));
    m.nloops = m.cfg.workers;
    m.loops = calloc((size_t)m.nloops, sizeof *m.loops);
    if (!m.loops)
        fatal("failed to start proxy", "out of memory");
    for (int i = 0; i < m.nloops; i++)
        mt_loop_init(&m.loops[i], &m, &m.set.w[i]);
    struct mt_discovery_config dc = {
        .label = label, .ports = m.ports, .nports = m.nports, .check = check,
        .check_path = check_path, .connect_ip = cip, .relist_interval = 1.0,
        .publish = mt_publish, .arg = &m,
    };
    m.disc = mt_discovery_start(&dc, &docker, &list, err, sizeof err);
    if (!m.disc)
        fatal("failed first discovery", err);
    mt_list_free(&list);
    /* the first snapshot is waiting in each loop's slot: take it before accepting */
    for (int i = 0; i < m.nloops; i++)
        mt_loop_take_snapshot(&m.loops[i]);
    if (check != MT_CHECK_NONE)
        wait_first_probes(&m);
    if (metrics) {
        metrics_fd = net_listen(metrics, 64, err, sizeof err);
        if (metrics_fd < 0)
            fatal("failed to start metrics listener", err);
        acceptor_start(loop, &metrics_acceptor, metrics_fd, metrics, metrics_accept, &m);
        jsonlog(JSONLOG_INFO, "Metrics listen", JL_STR("listen", metrics));
    }
    if (workers_run(&m.set) < 0)
        fatal("failed to start proxy", strerror(errno));
    ev_signal sterm, sint, shup;
    ev_signal_init(&sterm, sigterm_cb, SIGTERM);
    ev_signal_init(&sint, sigterm_cb, SIGINT);
    ev_signal_init(&shup, sighup_cb, SIGHUP);
    sterm.data = sint.data = shup.data = &m;
    ev_signal_start(loop, &sterm);
    ev_signal_start(loop, &sint);
    ev_signal_start(loop, &shup);
    ev_run(loop, 0);
    mt_discovery_stop(m.disc);
    workers_free(&m.set);
    for (int i = 0; i < m.nloops; i++)
        mt_loop_free(&m.loops[i]);
    free(m.loops);
    for (size_t i = 0; i < m.nports; i++)
        free(names[i]);
    free(names);
    free(fds);
    free(m.ports);
    curl_global_cleanup();
    return 0;
}
