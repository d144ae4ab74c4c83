/* map: wsgate-server's NAME,HOST:PORT map file on top of lib/mapfile, and the
 * address checks both programs' map files share. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/socket.h>

#include "jsonlog.h"
#include "mapfile.h"
#include "net.h"
#include "wsgate.h"

int wsg_port_check(const char *hostport, int allow_zero, char *why, size_t whylen)
{
    char host[256], port[32];
    if (net_split_hostport(hostport, host, sizeof host, port, sizeof port, why, whylen) < 0)
        return -1;
    /* a number 1..65535 (net_split_hostport bounded its digits), or a
     * service name, which starts with a letter: "-1" is neither */
    int number = isdigit((unsigned char)port[0]);
    if (number ? !allow_zero && atol(port) == 0 : !isalpha((unsigned char)port[0])) {
        snprintf(why, whylen, "invalid port in \"%s\"", hostport);
        return -2;
    }
    return 0;
}

int wsg_upstream_check(const char *v, char *why, size_t whylen)
{
    if (strncmp(v, "unix:", 5) == 0) {
        if (v[5] == '\0' || strlen(v + 5) >= 108) {
            snprintf(why, whylen, "bad unix socket path \"%s\"", v + 5);
            return -1;
        }
        return 0;
    }
    return wsg_port_check(v, 0, why, whylen);
}

static int map_add(void *arg, const char *key, const char *value, int lineno, char *why,
                   size_t whylen)
{
    (void)lineno;
    struct wsg_map *m = arg;
    if (strchr(key, '/') || strpbrk(key, " \t")) {
        snprintf(why, whylen, "bad name \"%s\"", key);
        return -1;
    }
    int rc = wsg_upstream_check(value, why, whylen);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->e[i].name, key) == 0) {
            char *u = strdup(value);
            if (!u)
                return -1;
            free(m->e[i].upstream);
            m->e[i].upstream = u;
            goto logged;
        }
    }
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 16;
        struct wsg_map_entry *ne = realloc(m->e, nc * sizeof *ne);
        if (!ne)
            return -1;
        m->e = ne;
        m->cap = nc;
    }
    memset(&m->e[m->n], 0, sizeof m->e[m->n]);
    m->e[m->n].name = strdup(key);
    m->e[m->n].upstream = strdup(value);
    if (!m->e[m->n].name || !m->e[m->n].upstream)
        return -1;
    m->n++;
logged:
    return 0;
}

int wsg_map_load(struct wsg_map *m, const char *path, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (!path || !*path)
        return 0;
    if (mapfile_load(path, "NAME,HOST:PORT", map_add, m, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < m->n; i++)
        jsonlog(JSONLOG_INFO, "Created map", JL_STR("from", m->e[i].name),
                JL_STR("to", m->e[i].upstream));
    return 0;
}

const char *wsg_map_get(const struct wsg_map *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->e[i].name, name) == 0)
            return m->e[i].upstream;
    return NULL;
}

struct wsg_map_entry *wsg_map_find(struct wsg_map *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->e[i].name, name) == 0)
            return &m->e[i];
    return NULL;
}

void wsg_map_free(struct wsg_map *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->e[i].name);
        free(m->e[i].upstream);
    }
    free(m->e);
    memset(m, 0, sizeof *m);
}
