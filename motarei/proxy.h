/* proxy: motarei's shared state, its per-loop state and the connection
 * path (accept → dial with fallback → relay). */
#ifndef MOTAREI_PROXY_H
#define MOTAREI_PROXY_H

#include <pthread.h>

#include "acceptor.h"
#include "motarei.h"
#include "relay.h"
#include "workers.h"

struct motarei_config {
    const char *label;
    const char *bind;
    const char *connect_ip;
    double connect_timeout; /* seconds */
    int proxy_protocol;     /* 0, 1 or 2 */
    enum mt_check check;
    const char *check_path;
    double shutdown_timeout; /* seconds; < 0: no limit */
    const char *metrics_listen;
    int workers;
};

struct mt_loop {
    struct motarei *m;
    struct worker *w;
    struct mt_snapshot *snap;    /* this loop's current one (owned reference) */
    struct mt_snapshot *pending; /* atomic: handed over by the discovery thread */
    ev_async snap_async;
};

struct motarei {
    struct motarei_config cfg;
    uint16_t *ports; /* private ports, one listener each */
    size_t nports;
    struct mt_loop *loops;
    int nloops;
    struct workers set;
    struct mt_discovery *disc;
    /* counters (atomic) */
    unsigned long open, total, failed;
    unsigned long long bytes_c2b, bytes_b2c;
};

void mt_loop_init(struct mt_loop *ml, struct motarei *m, struct worker *w);
void mt_loop_free(struct mt_loop *ml);
/* Make the newest published snapshot the loop's own, if one is waiting (on
 * the loop's thread, or before the loops run). */
void mt_loop_take_snapshot(struct mt_loop *ml);
/* The discovery thread's publish callback (arg = struct motarei *). */
void mt_publish(void *arg, struct mt_snapshot *s);
/* acceptor callback of every listener (tag = index of the private port). */
void mt_proxy_accept(struct acceptor *a, int fd, const struct sockaddr *peer, socklen_t peerlen);

#endif
