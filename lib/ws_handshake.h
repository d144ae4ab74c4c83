/* ws_handshake: the HTTP/1.1 upgrade handshake of RFC 6455, both ways.
 *
 * Server: feed the bytes of a request head to struct ws_hs_server as they
 * arrive (http_parser underneath, with a head size limit); once it is
 * complete, the request's fields are NUL-terminated strings and the caller
 * answers with ws_hs_response_101() or ws_hs_response_simple(). Client: build
 * the GET with ws_hs_client_request() and feed the answer to the same struct
 * until the 101 has been validated (status, Upgrade, Connection,
 * Sec-WebSocket-Accept, extensions). In both directions bytes after the head
 * are not consumed: they are the first WebSocket frames and belong to the
 * codec. */
#ifndef OPSKIT_WS_HANDSHAKE_H
#define OPSKIT_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WS_HS_DEFAULT_MAX_HEAD (16 * 1024)
#define WS_HS_KEY_LEN 24    /* base64 of 16 bytes */
#define WS_HS_ACCEPT_LEN 28 /* base64 of a SHA-1 */
#define WS_HS_BODY_SNIPPET 256

/* Results of the feed functions. */
enum ws_hs_result {
    WS_HS_ERROR = -1, /* malformed or refused: see status / error */
    WS_HS_MORE = 0,   /* head incomplete: feed more */
    WS_HS_DONE = 1,   /* head complete */
};

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), into out
 * (WS_HS_ACCEPT_LEN + 1 bytes, NUL-terminated). key_len as given. */
void ws_hs_accept(const char *key, size_t key_len, char out[WS_HS_ACCEPT_LEN + 1]);

/* True if key is a valid Sec-WebSocket-Key: base64 of exactly 16 bytes. */
bool ws_hs_key_valid(const char *key);

/* A fresh random Sec-WebSocket-Key (getrandom), NUL-terminated. */
int ws_hs_key_generate(char out[WS_HS_KEY_LEN + 1]);

/* A header an application wants from the request besides the handshake's
 * own (wsgate: X-Forwarded-For, X-Goog-Authenticated-User-Email): its name
 * in lower case, and whether repeats are joined with ", " (else a repeat is
 * an error, 400). */
#define WS_HS_MAX_EXTRA 8
struct ws_hs_extra {
    const char *name;
    bool list;
};

/* Private state of an incremental head parse (both sides). */
struct ws_hs_head {
    void *parser; /* http_parser *, heap */
    char *store;  /* NUL-terminated strings of the head, heap */
    size_t store_len, store_cap;
    size_t max_head, seen;
    uint32_t off[16 + WS_HS_MAX_EXTRA]; /* per known header, then per extra
                                           one: offset in store + 1, 0 = absent */
    const struct ws_hs_extra *extra; /* the caller's, n_extra of them */
    size_t n_extra;
    char field[40];   /* current header name, lowercased */
    size_t field_len; /* > sizeof field - 1: a name we don't track */
    int cur;          /* known header whose value is being read, or -1 */
    int last;         /* last callback: 0 none, 1 field, 2 value */
    int state;        /* 0 head, 1 complete, 2 error */
    bool is_client;
    int status;        /* error status (server) */
    const char *error; /* error reason (static) */
};

/* ---- server side ---- */

/* A parsed request head. Every string is NUL-terminated and owned by the
 * struct ws_hs_server it came from (valid until ws_hs_server_free()); a
 * header that was absent is NULL. Repeated list headers (Connection,
 * Upgrade, Sec-WebSocket-Extensions, Sec-WebSocket-Protocol, and the
 * caller's extra headers marked as lists) are joined with ", "; other
 * repeated headers listed here are an error (400). */
struct ws_hs_request {
    const char *method; /* "GET", ... */
    const char *target; /* request target as sent: "/proxy/db?x=1" */
    const char *path;   /* target without the query: "/proxy/db" */
    const char *host;
    const char *origin;
    const char *authorization;
    const char *upgrade;
    const char *connection;
    const char *key;        /* Sec-WebSocket-Key */
    const char *version;    /* Sec-WebSocket-Version */
    const char *extensions; /* Sec-WebSocket-Extensions */
    const char *protocol;   /* Sec-WebSocket-Protocol */
    const char *user_agent;
    const char *extra[WS_HS_MAX_EXTRA]; /* the caller's own headers (see
                                          ws_hs_server_init_extra), by index */
    int http_major, http_minor;
    bool has_body; /* Content-Length > 0 or chunked */
};

struct ws_hs_server {
    struct ws_hs_request req; /* valid after WS_HS_DONE */
    int status;               /* after WS_HS_ERROR: HTTP status to answer
                                 (400, 431; 500 out of memory) */
    const char *error;        /* after WS_HS_ERROR: reason (static string) */
    struct ws_hs_head head;   /* private */
};

/* Prepare to parse one request head; max_head is the limit on the head's
 * size in bytes (0 = WS_HS_DEFAULT_MAX_HEAD). Returns 0 or -1 (ENOMEM). */
int ws_hs_server_init(struct ws_hs_server *s, size_t max_head);

/* The same, also collecting n (<= WS_HS_MAX_EXTRA) extra headers into
 * req.extra[0..n) (NULL when absent). extra must outlive the parse. */
int ws_hs_server_init_extra(struct ws_hs_server *s, size_t max_head,
                            const struct ws_hs_extra *extra, size_t n);

/* Feed received bytes. Returns WS_HS_MORE (all consumed, head incomplete),
 * WS_HS_DONE (s->req is filled; *consumed bytes belonged to the request,
 * bytes after them are already WebSocket data and must be kept), or
 * WS_HS_ERROR (s->status: 400 malformed, 431 head larger than max_head;
 * s->error says why). len == 0 means EOF (→ error if incomplete). */
int ws_hs_server_feed(struct ws_hs_server *s, const uint8_t *buf, size_t len, size_t *consumed);

void ws_hs_server_free(struct ws_hs_server *s);

/* Is the complete request a WebSocket upgrade? Returns 0 if it is a valid
 * RFC 6455 opening handshake (GET, HTTP/1.1+, Upgrade: websocket, Connection
 * with the "upgrade" token, Sec-WebSocket-Version: 13, a valid
 * Sec-WebSocket-Key, Host present), else the HTTP status to refuse with and
 * *why: 400 (bad key, no Host, not GET...) or 426 when it is not an upgrade
 * or a version we don't speak (answer with "Sec-WebSocket-Version: 13"). */
int ws_hs_request_check(const struct ws_hs_request *r, const char **why);

/* Does a comma-separated header value contain token (case-insensitive)? */
bool ws_hs_has_token(const char *value, const char *token);

/* Build "HTTP/1.1 101 Switching Protocols" with Upgrade, Connection,
 * Sec-WebSocket-Accept for key, and when non-NULL Sec-WebSocket-Extensions
 * and Sec-WebSocket-Protocol; extra_headers (NULL or "Name: value\r\n"...
 * lines) are appended verbatim. Writes into out (cap bytes, NUL-terminated).
 * Returns the length, or -1 with errno ENOSPC (too small) or EINVAL (CR/LF
 * in a value). */
ssize_t ws_hs_response_101(char *out, size_t cap, const char *key, const char *extensions,
                           const char *protocol, const char *extra_headers);

/* Build a complete plain response: status line (reason phrase from status),
 * Content-Type: text/plain; charset=utf-8, Content-Length, Connection: close,
 * extra_headers verbatim (may be NULL), then body (may be NULL). Same returns. */
ssize_t ws_hs_response_simple(char *out, size_t cap, int status, const char *body,
                              const char *extra_headers);

/* Reason phrase for a status ("Not Found"), "Unknown" if we don't know it. */
const char *ws_hs_status_text(int status);

/* ---- client side ---- */

struct ws_hs_client_config {
    const char *host;           /* Host header value ("gw.example.com:8443") */
    const char *target;         /* request target ("/proxy/db") */
    const char *origin;         /* NULL = no Origin */
    const char *extensions;     /* offer, e.g. from ws_pmd_format(); NULL = none */
    const char *protocol;       /* Sec-WebSocket-Protocol; NULL = none */
    const char *const *headers; /* extra "Name: value" strings (no CRLF) */
    size_t nheaders;
    size_t max_head; /* limit on the response head, 0 = default */
};

struct ws_hs_client {
    int status;                        /* HTTP status of the response (0 = none yet) */
    const char *error;                 /* after WS_HS_ERROR: why (owned, NUL-terminated) */
    const char *extensions;            /* after WS_HS_DONE: accepted extensions or NULL */
    const char *protocol;              /* after WS_HS_DONE: selected subprotocol or NULL */
    char body[WS_HS_BODY_SNIPPET + 1]; /* non-101: start of the body */
    size_t body_len;
    char key[WS_HS_KEY_LEN + 1]; /* our Sec-WebSocket-Key */
    /* private */
    char accept[WS_HS_ACCEPT_LEN + 1]; /* expected Sec-WebSocket-Accept */
    bool offered_ext, offered_proto;   /* what our request offered */
    struct ws_hs_head head;
    char errbuf[WS_HS_BODY_SNIPPET + 96];
};

/* Prepare a client handshake: generates the key. Returns 0 or -1 (ENOMEM). */
int ws_hs_client_init(struct ws_hs_client *c, size_t max_head);

/* Build the GET request for cfg into out (cap bytes, NUL-terminated):
 * request line, Host, Upgrade, Connection, Sec-WebSocket-Key (c->key),
 * Sec-WebSocket-Version: 13, Origin, Sec-WebSocket-Extensions,
 * Sec-WebSocket-Protocol, then the extra headers. Returns the length, or -1
 * with errno ENOSPC, or EINVAL for a header that is not "Name: value" with a
 * token name or that contains CR/LF (header injection). */
ssize_t ws_hs_client_request(struct ws_hs_client *c, const struct ws_hs_client_config *cfg,
                             char *out, size_t cap);

/* Feed response bytes; len == 0 means EOF. Returns WS_HS_MORE, WS_HS_DONE
 * (a valid 101; *consumed bytes were the head, the rest is WebSocket data)
 * or WS_HS_ERROR: c->error says why, c->status is the status (0 if the
 * response was not HTTP), c->body holds the start of a non-101 body (for
 * "server said 404: Not found: db"). An extension or subprotocol in the
 * answer when the request offered none is an error; otherwise extensions are
 * only reported: validate them with ws_pmd_client_accept(). */
int ws_hs_client_feed(struct ws_hs_client *c, const uint8_t *buf, size_t len, size_t *consumed);

void ws_hs_client_free(struct ws_hs_client *c);

#endif
