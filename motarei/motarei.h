/* motarei: TCP proxy for Docker hot deploy. Shared declarations of its
 * modules: the Docker JSON parsers and API client (docker.c), discovery
 * with events, re-list and health probes on its own thread (discovery.c),
 * and the immutable backend snapshots it publishes to the event loops, and
 * the proxy on those loops (proxy.c, main.c). */
#ifndef MOTAREI_H
#define MOTAREI_H

#include <stddef.h>
#include <stdint.h>

#define MT_ID_MAX 72

enum mt_health { MT_HEALTH_NONE, MT_HEALTH_STARTING, MT_HEALTH_HEALTHY, MT_HEALTH_UNHEALTHY };

/* One published (or only exposed) TCP port of a container. */
struct mt_port {
    uint16_t private_port;
    uint16_t public_port; /* 0: exposed but not published */
};

struct mt_container {
    char id[MT_ID_MAX];
    int64_t created;       /* Unix seconds */
    enum mt_health health; /* Docker's own healthcheck, from Status */
    size_t nports;
    struct mt_port *ports; /* TCP only, one entry per private port (IPv4 entry preferred) */
};

struct mt_list {
    struct mt_container *c;
    size_t n;
};

/* Parse the body of GET /containers/json. Entries without an Id are skipped;
 * missing or ill-typed fields get defaults. Returns 0, or -1 with a reason in
 * err (not JSON, not an array, out of memory). The list is sorted newest
 * first, ties by Id ascending. */
int mt_parse_containers(const char *json, size_t len, struct mt_list *out, char *err,
                        size_t errlen);
void mt_list_free(struct mt_list *l);
/* The public port of private_port in c, 0 when not published, -1 when absent. */
int mt_container_public(const struct mt_container *c, uint16_t private_port);

/* One line of GET /events. */
struct mt_event {
    char action[64]; /* "start", "die", "health_status: healthy", … */
    char id[MT_ID_MAX];
    char type[32];   /* "container" */
};
/* Parse one event line. Returns 0, or -1 with a reason in err. */
int mt_parse_event(const char *json, size_t len, struct mt_event *ev, char *err, size_t errlen);

/* Splits a chunked stream into lines: feed bytes, get each complete line.
 * Lines longer than max are dropped (counted). */
struct mt_linebuf {
    char *buf;
    size_t len, cap, max;
    unsigned long dropped;
    int skipping; /* inside an over-long line */
};
typedef void (*mt_line_cb)(void *arg, const char *line, size_t len);
int mt_linebuf_feed(struct mt_linebuf *lb, const char *data, size_t len, mt_line_cb cb,
                    void *arg);
void mt_linebuf_free(struct mt_linebuf *lb);

/* ---- Docker Engine API client (blocking; used on the discovery thread and at start-up) ---- */

struct mt_docker {
    char host_desc[300];  /* DOCKER_HOST as given, for messages */
    char unix_path[256];  /* "" for tcp:// */
    char base[300];       /* "http://localhost" or "http://host:port" */
    char version[16];     /* "1.41": negotiated or DOCKER_API_VERSION */
    int version_pinned;
};

/* Read DOCKER_HOST (default unix:///var/run/docker.sock) and DOCKER_API_VERSION. */
int mt_docker_init(struct mt_docker *d, char *err, size_t errlen);
/* GET /_ping: negotiate the API version (unless pinned). */
int mt_docker_ping(struct mt_docker *d, char *err, size_t errlen);
/* GET /containers/json?filters={"label":[label]}. */
int mt_docker_list(struct mt_docker *d, const char *label, struct mt_list *out, char *err,
                   size_t errlen);
/* The URL of what ("/containers/json" or "/events") filtered on label (events:
 * containers' start, die, destroy and health_status only). Returns 0, or -1
 * with a reason in err. */
int mt_docker_filtered_url(const struct mt_docker *d, const char *what, const char *label,
                           char *url, size_t urllen, char *err, size_t errlen);
/* The URL (and, for unix sockets, the path) for an API request path. */
void mt_docker_url(const struct mt_docker *d, const char *path_and_query, char *url,
                   size_t urllen);
/* Turn a curl failure or an HTTP error answer into the Docker client's text. */
void mt_docker_error(const struct mt_docker *d, int curl_code, long http_status,
                     const char *body, size_t bodylen, char *err, size_t errlen);

/* A curl easy handle (as void *: callers include curl themselves) for an API
 * URL: the Unix socket, no proxy, a connect timeout. */
void *mt_docker_easy(const struct mt_docker *d, const char *url);

/* An answer body collected by mt_body_write (CURLOPT_WRITEFUNCTION), NUL
 * terminated; the transfer is aborted beyond max bytes. p is the caller's to free. */
struct mt_body {
    char *p;
    size_t len;
    size_t max;
};
size_t mt_body_write(char *ptr, size_t size, size_t nmemb, void *ud);

#define MT_API_VERSION_MAX "1.47"

/* ---- backend snapshots: immutable, reference counted, shared by the loops ---- */

enum mt_probe { MT_PROBE_OFF, MT_PROBE_UNKNOWN, MT_PROBE_PASSED, MT_PROBE_FAILED };

struct mt_backend {
    char id[MT_ID_MAX];
    uint16_t public_port;
    int64_t created;
    enum mt_health health; /* Docker's */
    enum mt_probe probe;   /* ours (--health-check) */
    int ready;             /* may take traffic */
};

struct mt_port_backends {
    uint16_t private_port;
    size_t n;
    struct mt_backend *b; /* newest first; ready or not (metrics show all) */
};

struct mt_snapshot {
    int refs; /* atomic */
    uint64_t seq;
    size_t nports;
    struct mt_port_backends *ports; /* in the order of the listeners */
};

void mt_snapshot_ref(struct mt_snapshot *s);
void mt_snapshot_unref(struct mt_snapshot *s);

/* ---- discovery thread ---- */

enum mt_check { MT_CHECK_NONE, MT_CHECK_TCP, MT_CHECK_HTTP };

struct mt_discovery_config {
    const char *label;
    const uint16_t *ports; /* the private ports served, fixed at start-up */
    size_t nports;
    enum mt_check check;
    const char *check_path; /* MT_CHECK_HTTP: "/path" */
    const char *connect_ip; /* where published ports are reached */
    double relist_interval; /* seconds (1) */
    /* Called on the discovery thread with a new snapshot holding one
     * reference for the callee. */
    void (*publish)(void *arg, struct mt_snapshot *s);
    void *arg;
};

struct mt_discovery;

/* Build the first snapshot from list (no probes yet; the discovery takes the
 * list over, leaving *first empty) and start the thread. */
struct mt_discovery *mt_discovery_start(const struct mt_discovery_config *cfg,
                                        const struct mt_docker *docker, struct mt_list *first,
                                        char *err, size_t errlen);
/* Ask for a re-list now (any thread). */
void mt_discovery_poke(struct mt_discovery *d);
/* Stop and join the thread, free everything. */
void mt_discovery_stop(struct mt_discovery *d);
/* Counters for /metrics (thread-safe reads). */
unsigned long mt_discovery_errors(struct mt_discovery *d);
int mt_discovery_events_connected(struct mt_discovery *d);

/* Build a snapshot from a container list (exported for tests). probe_of may
 * be NULL (every backend MT_PROBE_OFF). */
struct mt_snapshot *mt_snapshot_build(const struct mt_list *l, const uint16_t *ports,
                                      size_t nports,
                                      enum mt_probe (*probe_of)(void *arg, const char *id,
                                                                uint16_t public_port),
                                      void *arg, uint64_t seq);
/* The first ready backend for port index i, or NULL. */
const struct mt_backend *mt_snapshot_chosen(const struct mt_snapshot *s, size_t i);

#endif
