/* discovery: the thread that knows which containers may take traffic.
 *
 * It owns one curl multi handle that carries, all at once and without ever
 * blocking a relay loop: the /events stream (filtered on the label; any
 * start/die/destroy/health_status triggers an immediate re-list), the
 * periodic re-list (the safety net, every relist_interval), and HTTP health
 * probes; TCP probes are its own non-blocking sockets polled alongside
 * (curl_multi_poll's extra fds). Whenever what it knows changes it builds a
 * new immutable snapshot and hands it to the publish callback.
 *
 * A TCP probe passes when the connection is accepted and not closed by the
 * peer within 200 ms: a user-space docker-proxy accepts even when nothing
 * listens inside the container and then closes at once, so a bare connect
 * would prove nothing. An HTTP probe passes on a 2xx or 3xx answer. A backend
 * that passed is demoted after two failures in a row; one that never passed
 * is probed every 250 ms so it takes traffic soon after it is ready. */
#include "motarei.h"

#include <curl/curl.h>
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "jsonlog.h"
#include "net.h"

/* ---- snapshots ---- */

void mt_snapshot_ref(struct mt_snapshot *s)
{
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

void mt_snapshot_unref(struct mt_snapshot *s)
{
    if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < s->nports; i++)
        free(s->ports[i].b);
    free(s->ports);
    free(s);
}

struct mt_snapshot *mt_snapshot_build(const struct mt_list *l, const uint16_t *ports,
                                      size_t nports,
                                      enum mt_probe (*probe_of)(void *, const char *, uint16_t),
                                      void *arg, uint64_t seq)
{
    struct mt_snapshot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->refs = 1;
    s->seq = seq;
    s->nports = nports;
    s->ports = calloc(nports ? nports : 1, sizeof *s->ports);
    if (!s->ports) {
        free(s);
        return NULL;
    }
    for (size_t i = 0; i < nports; i++) {
        struct mt_port_backends *pb = &s->ports[i];
        pb->private_port = ports[i];
        pb->b = calloc(l->n ? l->n : 1, sizeof *pb->b);
        if (!pb->b) {
            s->nports = i;
            mt_snapshot_unref(s);
            return NULL;
        }
        for (size_t k = 0; k < l->n; k++) { /* the list is sorted newest first */
            const struct mt_container *c = &l->c[k];
            int pub = mt_container_public(c, ports[i]);
            if (pub <= 0)
                continue;
            struct mt_backend *b = &pb->b[pb->n++];
            snprintf(b->id, sizeof b->id, "%s", c->id);
            b->public_port = (uint16_t)pub;
            b->created = c->created;
            b->health = c->health;
            b->probe = probe_of ? probe_of(arg, c->id, (uint16_t)pub) : MT_PROBE_OFF;
            b->ready = (b->probe == MT_PROBE_OFF || b->probe == MT_PROBE_PASSED) &&
                       b->health != MT_HEALTH_STARTING && b->health != MT_HEALTH_UNHEALTHY;
        }
    }
    return s;
}

const struct mt_backend *mt_snapshot_chosen(const struct mt_snapshot *s, size_t i)
{
    if (!s || i >= s->nports)
        return NULL;
    for (size_t k = 0; k < s->ports[i].n; k++)
        if (s->ports[i].b[k].ready)
            return &s->ports[i].b[k];
    return NULL;
}

/* ---- the thread ---- */

struct probe {
    char id[MT_ID_MAX];
    uint16_t public_port;
    enum mt_probe state;
    int fails;
    int seen; /* still in the latest list */
    double next_at;
    /* in flight */
    int fd;
    int phase; /* 0 idle, 1 connecting, 2 watching, 3 http */
    double deadline;
    CURL *easy;
};

struct mt_discovery {
    struct mt_discovery_config cfg;
    struct mt_docker docker;
    pthread_t th;
    CURLM *multi;
    int stop;  /* atomic */
    int poked; /* atomic */
    struct mt_list list;
    uint64_t seq;
    struct probe *probes;
    size_t nprobes;
    char (*chosen)[MT_ID_MAX]; /* per port: last chosen id, for change logs */
    uint16_t *chosen_port;
    /* events */
    CURL *ev;
    struct mt_linebuf ev_lines;
    int ev_connected; /* atomic */
    int ev_failing;   /* a failure to connect was logged (once until it connects) */
    double ev_retry_at, ev_backoff;
    char ev_url[2048];
    /* re-list */
    CURL *ls;
    struct mt_body ls_body;
    char ls_url[2048];
    double next_list;
    int need_list;
    int list_failing;
    unsigned long errors; /* atomic */
};

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static enum mt_probe probe_state(void *arg, const char *id, uint16_t public_port)
{
    struct mt_discovery *d = arg;
    if (d->cfg.check == MT_CHECK_NONE)
        return MT_PROBE_OFF;
    for (size_t i = 0; i < d->nprobes; i++)
        if (d->probes[i].public_port == public_port && strcmp(d->probes[i].id, id) == 0)
            return d->probes[i].state;
    return MT_PROBE_UNKNOWN;
}

static void log_changes(struct mt_discovery *d, const struct mt_snapshot *s)
{
    for (size_t i = 0; i < s->nports; i++) {
        const struct mt_backend *b = mt_snapshot_chosen(s, i);
        const char *id = b ? b->id : "";
        uint16_t pub = b ? b->public_port : 0;
        if (strcmp(id, d->chosen[i]) == 0 && pub == d->chosen_port[i])
            continue;
        if (b)
            jsonlog(JSONLOG_INFO, "Backend changed", JL_UINT("port", s->ports[i].private_port),
                    JL_STR("container", id), JL_UINT("public_port", pub),
                    JL_STR("previous_container", d->chosen[i]),
                    JL_UINT("previous_public_port", d->chosen_port[i]),
                    JL_UINT("backends", s->ports[i].n));
        else
            jsonlog(JSONLOG_WARN, "No ready backend", JL_UINT("port", s->ports[i].private_port),
                    JL_STR("previous_container", d->chosen[i]),
                    JL_UINT("backends", s->ports[i].n));
        snprintf(d->chosen[i], MT_ID_MAX, "%s", id);
        d->chosen_port[i] = pub;
    }
}

static void publish(struct mt_discovery *d)
{
    struct mt_snapshot *s =
        mt_snapshot_build(&d->list, d->cfg.ports, d->cfg.nports, probe_state, d, ++d->seq);
    if (!s) {
        jsonlog(JSONLOG_ERROR, "out of memory building the backend table");
        return;
    }
    log_changes(d, s);
    d->cfg.publish(d->cfg.arg, s);
}

static void probe_abort(struct mt_discovery *d, struct probe *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    if (p->easy) {
        curl_multi_remove_handle(d->multi, p->easy);
        curl_easy_cleanup(p->easy);
        p->easy = NULL;
    }
    p->phase = 0;
}

/* Match the probe table to the container list: keep what we knew. */
static void sync_probes(struct mt_discovery *d)
{
    if (d->cfg.check == MT_CHECK_NONE)
        return;
    for (size_t i = 0; i < d->nprobes; i++)
        d->probes[i].seen = 0;
    for (size_t k = 0; k < d->list.n; k++) {
        const struct mt_container *c = &d->list.c[k];
        for (size_t j = 0; j < d->cfg.nports; j++) {
            int pub = mt_container_public(c, d->cfg.ports[j]);
            if (pub <= 0)
                continue;
            size_t i;
            for (i = 0; i < d->nprobes; i++)
                if (d->probes[i].public_port == pub && strcmp(d->probes[i].id, c->id) == 0)
                    break;
            if (i == d->nprobes) {
                struct probe *np = realloc(d->probes, (d->nprobes + 1) * sizeof *np);
                if (!np)
                    continue;
                d->probes = np;
                struct probe *p = &d->probes[d->nprobes++];
                memset(p, 0, sizeof *p);
                snprintf(p->id, sizeof p->id, "%s", c->id);
                p->public_port = (uint16_t)pub;
                p->state = MT_PROBE_UNKNOWN;
                p->fd = -1;
            }
            d->probes[i].seen = 1;
        }
    }
    for (size_t i = 0; i < d->nprobes;) {
        if (!d->probes[i].seen) {
            probe_abort(d, &d->probes[i]);
            d->probes[i] = d->probes[--d->nprobes];
        } else {
            i++;
        }
    }
}

/* A probe finished: returns 1 when the backend's state changed. */
static int probe_done(struct probe *p, int ok, double now)
{
    enum mt_probe before = p->state;
    p->phase = 0;
    if (ok) {
        p->fails = 0;
        p->state = MT_PROBE_PASSED;
    } else {
        p->fails++;
        if (p->state != MT_PROBE_PASSED || p->fails >= 2)
            p->state = MT_PROBE_FAILED;
    }
    p->next_at = now + (p->state == MT_PROBE_PASSED ? 1.0 : 0.25);
    if (before != p->state)
        jsonlog(p->state == MT_PROBE_PASSED ? JSONLOG_INFO : JSONLOG_WARN,
                p->state == MT_PROBE_PASSED ? "Health check passed" : "Health check failed",
                JL_STR("container", p->id), JL_UINT("public_port", p->public_port));
    return before != p->state;
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

static void probe_start(struct mt_discovery *d, struct probe *p, double now)
{
    if (d->cfg.check == MT_CHECK_HTTP) {
        char hp[80], url[512];
        net_join_hostport(d->cfg.connect_ip, p->public_port, hp, sizeof hp);
        snprintf(url, sizeof url, "http://%s%s", hp, d->cfg.check_path);
        p->easy = curl_easy_init();
        if (!p->easy) {
            probe_done(p, 0, now);
            return;
        }
        curl_easy_setopt(p->easy, CURLOPT_URL, url);
        curl_easy_setopt(p->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(p->easy, CURLOPT_TIMEOUT_MS, 2000L);
        curl_easy_setopt(p->easy, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(p->easy, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(p->easy, CURLOPT_PRIVATE, p);
        curl_easy_setopt(p->easy, CURLOPT_USERAGENT, "motarei health check");
        curl_multi_add_handle(d->multi, p->easy);
        p->phase = 3;
        return;
    }
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, d->cfg.connect_ip, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(p->public_port);
        sl = sizeof *in;
    } else if (inet_pton(AF_INET6, d->cfg.connect_ip, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(p->public_port);
        sl = sizeof *in6;
    } else {
        probe_done(p, 0, now);
        return;
    }
    p->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd < 0) {
        p->next_at = now + 0.25;
        return;
    }
    if (connect(p->fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
        close(p->fd);
        p->fd = -1;
        probe_done(p, 0, now);
        return;
    }
    p->phase = 1;
    p->deadline = now + 1.0;
}

/* A TCP probe's socket is ready (or its deadline passed). Returns 1 on a change. */
static int probe_io(struct probe *p, short revents, double now)
{
    int ok;
    if (p->phase == 1) {
        if (!revents) {
            ok = 0; /* connect timed out */
        } else {
            int e = 0;
            socklen_t el = sizeof e;
            getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &e, &el);
            if (e == 0 && !(revents & (POLLERR | POLLHUP))) {
                p->phase = 2;
                p->deadline = now + 0.2;
                return 0;
            }
            ok = 0;
        }
    } else {
        if (!revents) {
            ok = 1; /* accepted and still open */
        } else {
            char c;
            ssize_t n = recv(p->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
            ok = n > 0; /* the app spoke first; EOF or a reset: nothing listens */
        }
    }
    close(p->fd);
    p->fd = -1;
    return probe_done(p, ok, now);
}

static void on_event_line(void *arg, const char *line, size_t len)
{
    struct mt_discovery *d = arg;
    struct mt_event ev;
    char err[128];
    if (mt_parse_event(line, len, &ev, err, sizeof err) < 0) {
        jsonlog(JSONLOG_WARN, "Ignoring a Docker event", JL_ERR(err));
        return;
    }
    jsonlog(JSONLOG_DEBUG, "Docker event", JL_STR("action", ev.action), JL_STR("container", ev.id));
    d->need_list = 1;
}

static size_t ev_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct mt_discovery *d = ud;
    if (mt_linebuf_feed(&d->ev_lines, ptr, size * nmemb, on_event_line, d) < 0)
        return 0;
    return size * nmemb;
}

static size_t ev_header(char *buf, size_t size, size_t nitems, void *ud)
{
    struct mt_discovery *d = ud;
    size_t n = size * nitems;
    if (n >= 12 && strncmp(buf, "HTTP/", 5) == 0) {
        const char *sp = memchr(buf, ' ', n);
        if (sp && strncmp(sp + 1, "200", 3) == 0 && !d->ev_connected) {
            __atomic_store_n(&d->ev_connected, 1, __ATOMIC_RELAXED);
            d->ev_backoff = 0.1;
            d->ev_failing = 0;
            d->need_list = 1; /* whatever happened while we were not listening */
        }
    }
    return n;
}

static CURL *api_easy(struct mt_discovery *d, const char *url)
{
    return mt_docker_easy(&d->docker, url);
}

static void start_events(struct mt_discovery *d)
{
    d->ev = api_easy(d, d->ev_url);
    if (!d->ev)
        return;
    curl_easy_setopt(d->ev, CURLOPT_WRITEFUNCTION, ev_write);
    curl_easy_setopt(d->ev, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(d->ev, CURLOPT_HEADERFUNCTION, ev_header);
    curl_easy_setopt(d->ev, CURLOPT_HEADERDATA, d);
    /* a stream that stays silent is normal; a dead engine shows as EOF/reset */
    curl_easy_setopt(d->ev, CURLOPT_TCP_KEEPALIVE, 1L);
    d->ev_lines.len = 0;
    d->ev_lines.skipping = 0;
    curl_multi_add_handle(d->multi, d->ev);
}

static void start_list(struct mt_discovery *d)
{
    d->ls = api_easy(d, d->ls_url);
    if (!d->ls)
        return;
    d->ls_body.len = 0;
    d->ls_body.max = 64u << 20;
    curl_easy_setopt(d->ls, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(d->ls, CURLOPT_WRITEFUNCTION, mt_body_write);
    curl_easy_setopt(d->ls, CURLOPT_WRITEDATA, &d->ls_body);
    curl_multi_add_handle(d->multi, d->ls);
}

static void list_failed(struct mt_discovery *d, const char *err)
{
    __atomic_add_fetch(&d->errors, 1, __ATOMIC_RELAXED);
    d->list_failing = 1;
    jsonlog(JSONLOG_ERROR, "Regularly runDiscovery failed", JL_ERR(err));
}

static void list_done(struct mt_discovery *d, CURLcode rc)
{
    long status = 0;
    char err[512];
    curl_easy_getinfo(d->ls, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(d->multi, d->ls);
    curl_easy_cleanup(d->ls);
    d->ls = NULL;
    if (rc != CURLE_OK || status != 200) {
        mt_docker_error(&d->docker, rc, status, d->ls_body.p, d->ls_body.len, err, sizeof err);
        list_failed(d, err);
        return;
    }
    struct mt_list nl;
    if (mt_parse_containers(d->ls_body.p ? d->ls_body.p : "", d->ls_body.len, &nl, err,
                            sizeof err) < 0) {
        list_failed(d, err);
        return;
    }
    if (d->list_failing) {
        d->list_failing = 0;
        jsonlog(JSONLOG_INFO, "Discovery recovered", JL_UINT("containers", nl.n));
    }
    mt_list_free(&d->list);
    d->list = nl;
    sync_probes(d);
    publish(d);
}

static void events_done(struct mt_discovery *d, CURLcode rc, double now)
{
    long status = 0;
    curl_easy_getinfo(d->ev, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(d->multi, d->ev);
    curl_easy_cleanup(d->ev);
    d->ev = NULL;
    char err[512];
    mt_docker_error(&d->docker, rc, rc == CURLE_OK && status == 200 ? 0 : status, NULL, 0, err,
                    sizeof err);
    if (__atomic_load_n(&d->ev_connected, __ATOMIC_RELAXED)) {
        jsonlog(JSONLOG_WARN, "Docker events stream ended, reconnecting",
                JL_ERR(rc == CURLE_OK ? "end of stream" : err));
    } else if (!d->ev_failing) {
        /* never connected (refused, an error status): say it once, then
         * retry quietly with back-off; the re-list keeps the table fresh */
        d->ev_failing = 1;
        jsonlog(JSONLOG_WARN, "Docker events stream failed, retrying",
                JL_ERR(rc == CURLE_OK && status == 200 ? "end of stream" : err));
    }
    __atomic_store_n(&d->ev_connected, 0, __ATOMIC_RELAXED);
    d->ev_retry_at = now + d->ev_backoff;
    d->ev_backoff = d->ev_backoff * 2 > 5.0 ? 5.0 : d->ev_backoff * 2;
    d->need_list = 1;
}

static void *discovery_main(void *arg)
{
    struct mt_discovery *d = arg;
    while (!__atomic_load_n(&d->stop, __ATOMIC_ACQUIRE)) {
        double now = now_mono();
        int changed = 0;
        if (__atomic_exchange_n(&d->poked, 0, __ATOMIC_ACQ_REL))
            d->need_list = 1;
        if (!d->ev && now >= d->ev_retry_at)
            start_events(d);
        if (!d->ls && (d->need_list || now >= d->next_list)) {
            d->need_list = 0;
            d->next_list = now + d->cfg.relist_interval;
            start_list(d);
        }
        for (size_t i = 0; i < d->nprobes; i++) {
            struct probe *p = &d->probes[i];
            if (p->phase == 0 && now >= p->next_at)
                probe_start(d, p, now);
        }
        double wake = d->next_list;
        if (!d->ev && d->ev_retry_at < wake)
            wake = d->ev_retry_at;
        /* TCP probes are polled alongside curl's sockets (64 at a time;
         * the rest wait for the next round) */
        struct curl_waitfd extra[64];
        size_t nextra = 0;
        struct probe *owner[64];
        for (size_t i = 0; i < d->nprobes; i++) {
            struct probe *p = &d->probes[i];
            if (p->phase == 0 && p->next_at < wake)
                wake = p->next_at;
            if ((p->phase == 1 || p->phase == 2) && nextra < 64) {
                extra[nextra].fd = p->fd;
                extra[nextra].events = p->phase == 1 ? CURL_WAIT_POLLOUT : CURL_WAIT_POLLIN;
                extra[nextra].revents = 0;
                owner[nextra++] = p;
                if (p->deadline < wake)
                    wake = p->deadline;
            }
        }
        int timeout = (int)((wake - now) * 1000) + 1;
        if (timeout < 0 || d->need_list)
            timeout = 0;
        if (timeout > 1000)
            timeout = 1000;
        curl_multi_poll(d->multi, extra, (unsigned)nextra, timeout, NULL);
        int running;
        curl_multi_perform(d->multi, &running);
        now = now_mono();
        for (size_t i = 0; i < nextra; i++) {
            struct probe *p = owner[i];
            short rev = 0;
            if (extra[i].revents & CURL_WAIT_POLLIN)
                rev |= POLLIN;
            if (extra[i].revents & CURL_WAIT_POLLOUT)
                rev |= POLLOUT;
            if (extra[i].revents & CURL_WAIT_POLLPRI)
                rev |= POLLPRI;
            if (rev || now >= p->deadline)
                changed |= probe_io(p, rev, now);
        }
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(d->multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            CURL *e = m->easy_handle;
            CURLcode rc = m->data.result;
            if (e == d->ls) {
                list_done(d, rc);
            } else if (e == d->ev) {
                events_done(d, rc, now);
            } else {
                struct probe *p = NULL;
                curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&p);
                long status = 0;
                curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
                curl_multi_remove_handle(d->multi, e);
                curl_easy_cleanup(e);
                if (p) {
                    p->easy = NULL;
                    changed |= probe_done(p, rc == CURLE_OK && status >= 200 && status < 400, now);
                }
            }
        }
        if (changed)
            publish(d);
    }
    return NULL;
}

struct mt_discovery *mt_discovery_start(const struct mt_discovery_config *cfg,
                                        const struct mt_docker *docker, struct mt_list *first,
                                        char *err, size_t errlen)
{
    struct mt_discovery *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->cfg = *cfg;
    d->docker = *docker;
    d->ev_backoff = 0.1;
    d->chosen = calloc(cfg->nports + 1, sizeof *d->chosen);
    d->chosen_port = calloc(cfg->nports + 1, sizeof *d->chosen_port);
    d->multi = curl_multi_init();
    if (!d->chosen || !d->chosen_port || !d->multi) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    d->list = *first; /* ours now */
    first->c = NULL;
    first->n = 0;
    if (mt_docker_filtered_url(&d->docker, "/containers/json", cfg->label, d->ls_url,
                               sizeof d->ls_url, err, errlen) < 0 ||
        mt_docker_filtered_url(&d->docker, "/events", cfg->label, d->ev_url, sizeof d->ev_url,
                               err, errlen) < 0)
        goto fail;

    d->next_list = now_mono() + cfg->relist_interval;
    sync_probes(d);
    publish(d);
    int rc = pthread_create(&d->th, NULL, discovery_main, d);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the discovery thread: %s", strerror(rc));
        goto fail;
    }
    return d;
fail:
    if (d->multi)
        curl_multi_cleanup(d->multi);
    mt_list_free(&d->list);
    free(d->chosen);
    free(d->chosen_port);
    free(d);
    return NULL;
}

void mt_discovery_poke(struct mt_discovery *d)
{
    __atomic_store_n(&d->poked, 1, __ATOMIC_RELEASE);
    curl_multi_wakeup(d->multi);
}

void mt_discovery_stop(struct mt_discovery *d)
{
    if (!d)
        return;
    __atomic_store_n(&d->stop, 1, __ATOMIC_RELEASE);
    curl_multi_wakeup(d->multi);
    pthread_join(d->th, NULL);
    for (size_t i = 0; i < d->nprobes; i++)
        probe_abort(d, &d->probes[i]);
    if (d->ev) {
        curl_multi_remove_handle(d->multi, d->ev);
        curl_easy_cleanup(d->ev);
    }
    if (d->ls) {
        curl_multi_remove_handle(d->multi, d->ls);
        curl_easy_cleanup(d->ls);
    }
    curl_multi_cleanup(d->multi);
    mt_linebuf_free(&d->ev_lines);
    free(d->ls_body.p);
    free(d->probes);
    mt_list_free(&d->list);
    free(d->chosen);
    free(d->chosen_port);
    free(d);
}

unsigned long mt_discovery_errors(struct mt_discovery *d)
{
    return __atomic_load_n(&d->errors, __ATOMIC_RELAXED);
}

int mt_discovery_events_connected(struct mt_discovery *d)
{
    return __atomic_load_n(&d->ev_connected, __ATOMIC_RELAXED);
}
