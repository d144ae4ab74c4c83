/* docker: what motarei reads from the Docker Engine API. The parsers are
 * pure functions over the bytes of an answer (fuzzed: fuzz/fuzz_docker_json.c)
 * and defensive about its known oddities: with -P each published port is
 * listed twice (IPv4 and IPv6, possibly with different public ports: the
 * IPv4 one wins), exposed but unpublished ports have no PublicPort, UDP is
 * listed alongside TCP, and the order of Ports is random. The client is
 * blocking libcurl over the Unix socket (or TCP) and runs off the relay
 * loops: at start-up and on the discovery thread. */
#include "motarei.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is_v4(const char *ip)
{
    return ip && strchr(ip, '.') != NULL;
}

static void parse_ports(json_t *ports, struct mt_container *c)
{
    size_t n = json_is_array(ports) ? json_array_size(ports) : 0;
    c->ports = n ? calloc(n, sizeof *c->ports) : NULL;
    c->nports = 0;
    if (!c->ports)
        return;
    /* per private port: best public port so far and whether it came from IPv4 */
    int *from_v4 = calloc(n, sizeof *from_v4);
    if (!from_v4)
        return;
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(ports, i);
        if (!json_is_object(p))
            continue;
        json_t *type = json_object_get(p, "Type");
        if (json_is_string(type) && strcmp(json_string_value(type), "tcp") != 0)
            continue; /* udp, sctp */
        json_t *pp = json_object_get(p, "PrivatePort");
        json_t *pub = json_object_get(p, "PublicPort");
        json_t *ip = json_object_get(p, "IP");
        if (!json_is_integer(pp) || json_integer_value(pp) < 1 || json_integer_value(pp) > 65535)
            continue;
        uint16_t priv = (uint16_t)json_integer_value(pp);
        long long pv = json_is_integer(pub) ? json_integer_value(pub) : 0;
        uint16_t public_port = pv >= 1 && pv <= 65535 ? (uint16_t)pv : 0;
        int v4 = is_v4(json_is_string(ip) ? json_string_value(ip) : NULL);
        size_t k;
        for (k = 0; k < c->nports; k++)
            if (c->ports[k].private_port == priv)
                break;
        if (k == c->nports) {
            c->ports[k].private_port = priv;
            c->ports[k].public_port = public_port;
            from_v4[k] = v4 && public_port;
            c->nports++;
            continue;
        }
        /* a second entry for the same private port: prefer a published IPv4
         * one, then any published one, then the lowest port (deterministic) */
        struct mt_port *e = &c->ports[k];
        if (!public_port)
            continue;
        if (!e->public_port || (v4 && !from_v4[k]) ||
            (v4 == from_v4[k] && public_port < e->public_port)) {
            e->public_port = public_port;
            from_v4[k] = v4;
        }
    }
    free(from_v4);
}

static enum mt_health parse_health(const char *status)
{
    if (!status)
        return MT_HEALTH_NONE;
    if (strstr(status, "(health: starting)"))
        return MT_HEALTH_STARTING;
    if (strstr(status, "(unhealthy)"))
        return MT_HEALTH_UNHEALTHY;
    if (strstr(status, "(healthy)"))
        return MT_HEALTH_HEALTHY;
    return MT_HEALTH_NONE;
}

static int cmp_containers(const void *a, const void *b)
{
    const struct mt_container *x = a, *y = b;
    if (x->created != y->created)
        return x->created > y->created ? -1 : 1;
    return strcmp(x->id, y->id);
}

int mt_parse_containers(const char *json, size_t len, struct mt_list *out, char *err,
                        size_t errlen)
{
    json_error_t je;
    out->c = NULL;
    out->n = 0;
    json_t *root = json_loadb(json, len, 0, &je);
    if (!root) {
        snprintf(err, errlen, "invalid container list: %s (line %d)", je.text, je.line);
        return -1;
    }
    if (!json_is_array(root)) {
        snprintf(err, errlen, "invalid container list: not a JSON array");
        json_decref(root);
        return -1;
    }
    size_t n = json_array_size(root);
    out->c = n ? calloc(n, sizeof *out->c) : NULL;
    if (n && !out->c) {
        snprintf(err, errlen, "out of memory");
        json_decref(root);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(root, i);
        if (!json_is_object(o))
            continue;
        json_t *id = json_object_get(o, "Id");
        if (!json_is_string(id) || json_string_length(id) == 0 ||
            json_string_length(id) >= MT_ID_MAX)
            continue;
        struct mt_container *c = &out->c[out->n];
        snprintf(c->id, sizeof c->id, "%s", json_string_value(id));
        json_t *cr = json_object_get(o, "Created");
        c->created = json_is_integer(cr) ? (int64_t)json_integer_value(cr) : 0;
        json_t *st = json_object_get(o, "Status");
        c->health = parse_health(json_is_string(st) ? json_string_value(st) : NULL);
        parse_ports(json_object_get(o, "Ports"), c);
        out->n++;
    }
    json_decref(root);
    if (out->n > 1)
        qsort(out->c, out->n, sizeof *out->c, cmp_containers);
    return 0;
}

void mt_list_free(struct mt_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->c[i].ports);
    free(l->c);
    l->c = NULL;
    l->n = 0;
}

int mt_container_public(const struct mt_container *c, uint16_t private_port)
{
    for (size_t i = 0; i < c->nports; i++)
        if (c->ports[i].private_port == private_port)
            return c->ports[i].public_port;
    return -1;
}

static void copy_str(char *dst, size_t len, json_t *v)
{
    dst[0] = 0;
    if (json_is_string(v))
        snprintf(dst, len, "%s", json_string_value(v));
}

int mt_parse_event(const char *json, size_t len, struct mt_event *ev, char *err, size_t errlen)
{
    json_error_t je;
    memset(ev, 0, sizeof *ev);
    json_t *o = json_loadb(json, len, 0, &je);
    if (!o) {
        snprintf(err, errlen, "invalid event: %s", je.text);
        return -1;
    }
    if (!json_is_object(o)) {
        snprintf(err, errlen, "invalid event: not a JSON object");
        json_decref(o);
        return -1;
    }
    json_t *action = json_object_get(o, "Action");
    copy_str(ev->action, sizeof ev->action, json_is_string(action) ? action
                                                                   : json_object_get(o, "status"));
    json_t *id = json_object_get(o, "id");
    if (!json_is_string(id)) {
        json_t *actor = json_object_get(o, "Actor");
        id = json_is_object(actor) ? json_object_get(actor, "ID") : NULL;
    }
    copy_str(ev->id, sizeof ev->id, id);
    copy_str(ev->type, sizeof ev->type, json_object_get(o, "Type"));
    json_decref(o);
    if (!ev->action[0]) {
        snprintf(err, errlen, "invalid event: no Action");
        return -1;
    }
    return 0;
}

int mt_linebuf_feed(struct mt_linebuf *lb, const char *data, size_t len, mt_line_cb cb, void *arg)
{
    if (!lb->max)
        lb->max = 1 << 20;
    while (len) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        if (!lb->skipping) {
            if (lb->len + take > lb->max) {
                lb->skipping = 1;
                lb->dropped++;
                lb->len = 0;
            } else if (take) {
                if (lb->len + take > lb->cap) {
                    size_t cap = lb->cap ? lb->cap : 4096;
                    while (cap < lb->len + take)
                        cap *= 2;
                    char *nb = realloc(lb->buf, cap);
                    if (!nb)
                        return -1;
                    lb->buf = nb;
                    lb->cap = cap;
                }
                memcpy(lb->buf + lb->len, data, take);
                lb->len += take;
            }
        }
        if (!nl)
            break;
        if (!lb->skipping && lb->len)
            cb(arg, lb->buf, lb->len);
        lb->len = 0;
        lb->skipping = 0;
        data = nl + 1;
        len -= take + 1;
    }
    return 0;
}

void mt_linebuf_free(struct mt_linebuf *lb)
{
    free(lb->buf);
    memset(lb, 0, sizeof *lb);
}

/* ---- client ---- */

int mt_docker_init(struct mt_docker *d, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    const char *h = getenv("DOCKER_HOST");
    if (!h || !*h)
        h = "unix:///var/run/docker.sock";
    snprintf(d->host_desc, sizeof d->host_desc, "%s", h);
    if (strncmp(h, "unix://", 7) == 0) {
        if (!h[7] || strlen(h + 7) >= sizeof d->unix_path) {
            snprintf(err, errlen, "invalid DOCKER_HOST: %s", h);
            return -1;
        }
        snprintf(d->unix_path, sizeof d->unix_path, "%s", h + 7);
        snprintf(d->base, sizeof d->base, "http://localhost");
    } else if (strncmp(h, "tcp://", 6) == 0 || strncmp(h, "http://", 7) == 0) {
        const char *hp = h + (h[0] == 't' ? 6 : 7);
        size_t n = strcspn(hp, "/");
        if (n == 0 || n > 256) {
            snprintf(err, errlen, "invalid DOCKER_HOST: %s", h);
            return -1;
        }
        snprintf(d->base, sizeof d->base, "http://%.*s", (int)n, hp);
    } else {
        snprintf(err, errlen, "unsupported DOCKER_HOST (unix:// or tcp:// expected): %s", h);
        return -1;
    }
    const char *v = getenv("DOCKER_API_VERSION");
    if (v && *v) {
        if (strlen(v) >= sizeof d->version || strspn(v, "0123456789.") != strlen(v)) {
            snprintf(err, errlen, "invalid DOCKER_API_VERSION: %s", v);
            return -1;
        }
        snprintf(d->version, sizeof d->version, "%s", v);
        d->version_pinned = 1;
    }
    return 0;
}

void mt_docker_url(const struct mt_docker *d, const char *path, char *url, size_t urllen)
{
    if (d->version[0])
        snprintf(url, urllen, "%s/v%s%s", d->base, d->version, path);
    else
        snprintf(url, urllen, "%s%s", d->base, path);
}

void mt_docker_error(const struct mt_docker *d, int curl_code, long status, const char *body,
                     size_t bodylen, char *err, size_t errlen)
{
    if (curl_code == CURLE_COULDNT_CONNECT || curl_code == CURLE_COULDNT_RESOLVE_HOST) {
        snprintf(err, errlen,
                 "Cannot connect to the Docker daemon at %s. Is the docker daemon running?",
                 d->host_desc);
        return;
    }
    if (curl_code != CURLE_OK) {
        snprintf(err, errlen, "error during connect to %s: %s", d->host_desc,
                 curl_easy_strerror((CURLcode)curl_code));
        return;
    }
    /* {"message":"..."} is how the engine explains an error */
    json_t *o = body ? json_loadb(body, bodylen, 0, NULL) : NULL;
    json_t *m = json_is_object(o) ? json_object_get(o, "message") : NULL;
    if (json_is_string(m))
        snprintf(err, errlen, "Error response from daemon: %s", json_string_value(m));
    else
        snprintf(err, errlen, "Error response from daemon: HTTP status %ld", status);
    json_decref(o);
}

size_t mt_body_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct mt_body *b = ud;
    size_t n = size * nmemb;
    if (b->len + n > b->max)
        return 0; /* abort: an answer this big is not a container list */
    char *np = realloc(b->p, b->len + n + 1);
    if (!np)
        return 0;
    memcpy(np + b->len, ptr, n);
    b->p = np;
    b->len += n;
    b->p[b->len] = 0;
    return n;
}

struct hdr_version {
    char v[16];
};

static size_t ping_header(char *buf, size_t size, size_t nitems, void *ud)
{
    struct hdr_version *hv = ud;
    size_t n = size * nitems;
    if (n > 12 && strncasecmp(buf, "Api-Version:", 12) == 0) {
        const char *p = buf + 12;
        while (*p == ' ' || *p == '\t')
            p++;
        size_t k = strspn(p, "0123456789.");
        if (k && k < sizeof hv->v) {
            memcpy(hv->v, p, k);
            hv->v[k] = 0;
        }
    }
    return n;
}

void *mt_docker_easy(const struct mt_docker *d, const char *url)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    curl_easy_setopt(e, CURLOPT_URL, url);
    if (d->unix_path[0])
        curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, d->unix_path);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "motarei (opskit)");
    return e;
}

static CURL *easy_for(const struct mt_docker *d, const char *url, struct mt_body *b,
                      long timeout_ms)
{
    CURL *e = mt_docker_easy(d, url);
    if (!e)
        return NULL;
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, mt_body_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
    return e;
}

/* Compare dotted versions numerically: <0, 0, >0. */
static int version_cmp(const char *a, const char *b)
{
    for (;;) {
        size_t la = strspn(a, "0123456789"), lb = strspn(b, "0123456789");
        long x = atol(a), y = atol(b);
        if (x != y)
            return x < y ? -1 : 1;
        a += la;
        b += lb;
        if (*a == '.')
            a++;
        if (*b == '.')
            b++;
        if (!*a && !*b)
            return 0;
    }
}

int mt_docker_ping(struct mt_docker *d, char *err, size_t errlen)
{
    char url[512];
    struct mt_body b = { .max = 1 << 16 };
    struct hdr_version hv = { "" };
    snprintf(url, sizeof url, "%s/_ping", d->base);
    CURL *e = easy_for(d, url, &b, 10000);
    if (!e) {
        snprintf(err, errlen, "curl: cannot create a handle");
        return -1;
    }
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, ping_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &hv);
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    if (rc != CURLE_OK || status != 200) {
        mt_docker_error(d, rc, status, b.p, b.len, err, errlen);
        free(b.p);
        return -1;
    }
    free(b.p);
    if (!d->version_pinned) {
        const char *v = hv.v[0] ? hv.v : "1.24"; /* engines before 1.25 sent no header */
        snprintf(d->version, sizeof d->version, "%s",
                 version_cmp(v, MT_API_VERSION_MAX) < 0 ? v : MT_API_VERSION_MAX);
    }
    return 0;
}

int mt_docker_filtered_url(const struct mt_docker *d, const char *what, const char *label,
                           char *url, size_t urllen, char *err, size_t errlen)
{
    int events = strcmp(what, "/events") == 0;
    json_t *f = events ? json_pack("{s:[s],s:[s],s:[s,s,s,s]}", "type", "container", "label",
                                   label, "event", "start", "die", "destroy", "health_status")
                       : json_pack("{s:[s]}", "label", label);
    char *fs = f ? json_dumps(f, JSON_COMPACT) : NULL;
    json_decref(f);
    CURL *e = curl_easy_init();
    char *esc = fs && e ? curl_easy_escape(e, fs, 0) : NULL;
    free(fs);
    if (e)
        curl_easy_cleanup(e);
    char path[1600];
    if (!esc || (size_t)snprintf(path, sizeof path, "%s?filters=%s", what, esc) >= sizeof path) {
        snprintf(err, errlen, esc ? "label too long" : "out of memory");
        curl_free(esc);
        return -1;
    }
    curl_free(esc);
    mt_docker_url(d, path, url, urllen);
    return 0;
}

int mt_docker_list(struct mt_docker *d, const char *label, struct mt_list *out, char *err,
                   size_t errlen)
{
    char url[2048];
    if (mt_docker_filtered_url(d, "/containers/json", label, url, sizeof url, err, errlen) < 0)
        return -1;
    struct mt_body b = { .max = 64 << 20 };
    CURL *e = easy_for(d, url, &b, 10000);
    if (!e) {
        snprintf(err, errlen, "curl: cannot create a handle");
        return -1;
    }
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    int ret;
    if (rc != CURLE_OK || status != 200) {
        mt_docker_error(d, rc, status, b.p, b.len, err, errlen);
        ret = -1;
    } else {
        ret = mt_parse_containers(b.p ? b.p : "", b.len, out, err, errlen);
    }
    free(b.p);
    return ret;
}
