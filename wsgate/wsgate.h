/* wsgate: pieces shared by wsgate-server and wsgate-client that are not
 * general enough for lib/: the upstream map, JWT verification (server) and
 * the token source interface (client). */
#ifndef WSGATE_WSGATE_H
#define WSGATE_WSGATE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---- server map: NAME,HOST:PORT (or NAME,unix:/path) ---- */

struct wsg_map_entry {
    char *name;
    char *upstream;
    uint64_t ok, failed; /* tunnels ended, for /metrics */
};

struct wsg_map {
    struct wsg_map_entry *e;
    size_t n, cap;
};

/* Load path into m (empty path = empty map). Returns 0 or -1 with a
 * "map.txt:3: expected NAME,HOST:PORT" message in err. Logs "Created map". */
int wsg_map_load(struct wsg_map *m, const char *path, char *err, size_t errlen);
/* Upstream for name, or NULL. A later line for the same name wins. */
const char *wsg_map_get(const struct wsg_map *m, const char *name);
/* The entry for name, or NULL. */
struct wsg_map_entry *wsg_map_find(struct wsg_map *m, const char *name);
void wsg_map_free(struct wsg_map *m);
/* Validate an upstream address (HOST:PORT with port 1..65535 or a service
 * name, or unix:/path): 0, -1 with a reason in why when it is not an address,
 * -2 with "invalid port in \"h:0\"" when the port is not one. */
int wsg_upstream_check(const char *v, char *why, size_t whylen);
/* The HOST:PORT check alone; allow_zero for listeners (":0" = any free port).
 * Same returns as wsg_upstream_check. */
int wsg_port_check(const char *hostport, int allow_zero, char *why, size_t whylen);

/* ---- server: JWT verification with an RSA public key ---- */

struct wsg_auth {
    char *pem;          /* the key file as read, NUL-terminated (owned) */
    size_t pem_len;
    int64_t freshness_ns;
};

/* Read and check an RSA public key (PEM). Returns 0 or -1 with err. */
int wsg_auth_load(struct wsg_auth *a, const char *path, int64_t freshness_ns, char *err,
                  size_t errlen);
/* Verify "Bearer <jwt>": RS256/RS384/RS512 only, signature, then the claims as
 * wsg_auth_check_claims says (exp, iat, nbf, dest). Returns 0 with
 * the subject in sub, -1 with the reason in err (the 401 body), or -2 when
 * the token carries a "dest" claim (name or list of names) without dest
 * (403; sub is set). */
int wsg_auth_verify(const struct wsg_auth *a, const char *authorization, const char *dest,
                    char *sub, size_t sublen, char *err, size_t errlen);
void wsg_auth_free(struct wsg_auth *a);

/* Clock skew allowed for iat and nbf in the future (seconds; wsgate-server.1). */
#define WSG_JWT_LEEWAY_S 60
/* The claims half of wsg_auth_verify, on the payload JSON (len bytes) of a
 * token whose signature and algorithm were checked, at time now: exp present
 * and not past; iat present, not older than freshness_ns and not later than
 * now + WSG_JWT_LEEWAY_S ("token used before issued"); nbf, when present, not
 * later than now + WSG_JWT_LEEWAY_S ("token is not valid yet"); all three
 * numbers when present. Same returns as wsg_auth_verify. */
int wsg_auth_check_claims(const char *json, size_t len, time_t now, int64_t freshness_ns,
                          const char *dest, char *sub, size_t sublen, char *err, size_t errlen);

/* ---- client: where Authorization tokens come from ---- */

/* A token source hands out the current bearer token without blocking the
 * event loop: sources that need the network (IAP) refresh ahead of expiry in
 * the background and serve from their cache. */
struct wsg_token_source {
    const char *name;
    /* The current token (owned by the source, valid until the next call),
     * or NULL with a reason in err. */
    const char *(*get)(struct wsg_token_source *ts, char *err, size_t errlen);
    void (*free)(struct wsg_token_source *ts);
};

/* RS256-signed JWT {sub: user, iss: "wsgatet-client", iat, exp: iat+60s},
 * reused until 10 s before it expires. NULL with err when the key is bad. */
struct wsg_token_source *wsg_token_privatekey_new(const char *keyfile, const char *user,
                                                  char *err, size_t errlen);

/* Google IAP: a service-account JSON's key signs an assertion that the
 * token endpoint (default https://oauth2.googleapis.com/token) exchanges
 * for an ID token for audience CLIENT_ID.apps.googleusercontent.com. The
 * first token is fetched here (blocking, at startup); a thread renews it
 * ahead of expiry. ca_file (may be NULL) is trusted in addition to the
 * system store. NULL with err on failure. */
struct wsg_token_source *wsg_token_iap_new(const char *credfile, const char *client_id,
                                           const char *endpoint, const char *ca_file,
                                           char *err, size_t errlen);

#endif
