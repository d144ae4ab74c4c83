/* ws_handshake: the RFC 6455 opening handshake over HTTP/1.1, both ways.
 *
 * Heads are parsed incrementally with http_parser. The few headers we care
 * about are copied, NUL-terminated, into one per-handshake heap buffer as
 * their pieces arrive (a header can be cut anywhere by a read), so the caller
 * does not have to keep the head's bytes around; everything else is skipped.
 * The parser is paused at the end of the head, so the bytes after it (the
 * first WebSocket frames) are left to the caller. */
#include "ws_handshake.h"

#include <ctype.h>
#include <errno.h>
#include <http_parser.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* Known headers; index 0 is the request target. */
enum {
    H_TARGET,
    H_HOST,
    H_ORIGIN,
    H_AUTHORIZATION,
    H_UPGRADE,
    H_CONNECTION,
    H_KEY,
    H_VERSION,
    H_EXTENSIONS,
    H_PROTOCOL,
    H_USER_AGENT,
    H_ACCEPT,
    H_COUNT
};

_Static_assert(H_COUNT <= 16, "ws_hs_head.off has 16 slots for the known headers");

static const struct {
    const char *name;
    bool list; /* repeats are joined with ", " (else a repeat is an error) */
} known[H_COUNT] = {
    [H_TARGET] = {"", false},
    [H_HOST] = {"host", false},
    [H_ORIGIN] = {"origin", false},
    [H_AUTHORIZATION] = {"authorization", false},
    [H_UPGRADE] = {"upgrade", true},
    [H_CONNECTION] = {"connection", true},
    [H_KEY] = {"sec-websocket-key", false},
    [H_VERSION] = {"sec-websocket-version", false},
    [H_EXTENSIONS] = {"sec-websocket-extensions", true},
    [H_PROTOCOL] = {"sec-websocket-protocol", true},
    [H_USER_AGENT] = {"user-agent", false},
    [H_ACCEPT] = {"sec-websocket-accept", false},
};

enum { ST_HEAD, ST_DONE, ST_ERROR };
enum { LAST_NONE, LAST_FIELD, LAST_VALUE };

/* ---- keys ---- */

void ws_hs_accept(const char *key, size_t key_len, char out[WS_HS_ACCEPT_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) || !EVP_DigestUpdate(ctx, key, key_len) ||
        !EVP_DigestUpdate(ctx, WS_GUID, sizeof WS_GUID - 1) ||
        !EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen != 20) {
        /* Only out of memory gets here; an accept that matches nothing
         * fails the handshake safely. */
        memset(out, '!', WS_HS_ACCEPT_LEN);
        out[WS_HS_ACCEPT_LEN] = 0;
        EVP_MD_CTX_free(ctx);
        return;
    }
    EVP_MD_CTX_free(ctx);
    EVP_EncodeBlock((unsigned char *)out, md, 20);
}

static bool b64char(int c)
{
    return isalnum(c) || c == '+' || c == '/';
}

bool ws_hs_key_valid(const char *key)
{
    if (!key || strlen(key) != WS_HS_KEY_LEN) return false;
    for (int i = 0; i < 22; i++)
        if (!b64char((unsigned char)key[i])) return false;
    return key[22] == '=' && key[23] == '=';
}

int ws_hs_key_generate(char out[WS_HS_KEY_LEN + 1])
{
    unsigned char raw[16];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) return -1;
    EVP_EncodeBlock((unsigned char *)out, raw, sizeof raw);
    return 0;
}

bool ws_hs_has_token(const char *value, const char *token)
{
    if (!value) return false;
    size_t tl = strlen(token);
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *s = p;
        while (*p && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == tl && strncasecmp(s, token, tl) == 0) return true;
    }
    return false;
}

/* ---- incremental head parsing ---- */

static bool is_tchar(int c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int store_reserve(struct ws_hs_head *h, size_t more)
{
    if (h->store_len + more <= h->store_cap) return 0;
    size_t cap = h->store_cap ? h->store_cap : 512;
    while (cap < h->store_len + more)
        cap *= 2;
    char *n = realloc(h->store, cap);
    if (!n) return -1;
    h->store = n;
    h->store_cap = cap;
    return 0;
}

static int store_add(struct ws_hs_head *h, const char *p, size_t len)
{
    if (store_reserve(h, len + 1) < 0) return -1;
    memcpy(h->store + h->store_len, p, len);
    h->store_len += len;
    return 0;
}

static int head_fail(struct ws_hs_head *h, int status, const char *why)
{
    if (h->state != ST_ERROR) {
        h->state = ST_ERROR;
        h->status = status;
        h->error = why;
    }
    return 1; /* abort http_parser */
}

/* End the value being read: trim trailing blanks, NUL-terminate. */
static int value_end(struct ws_hs_head *h)
{
    if (h->last == LAST_VALUE && h->cur >= 0) {
        size_t start = h->off[h->cur] - 1;
        while (h->store_len > start &&
               (h->store[h->store_len - 1] == ' ' || h->store[h->store_len - 1] == '\t'))
            h->store_len--;
        if (store_reserve(h, 1) < 0) return -1;
        h->store[h->store_len++] = 0;
    }
    h->cur = -1;
    return 0;
}

static struct ws_hs_head *head_of(http_parser *p)
{
    return p->data;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct ws_hs_head *h = head_of(p);
    if (h->last != LAST_VALUE) {
        h->off[H_TARGET] = (uint32_t)h->store_len + 1;
        h->cur = H_TARGET;
        h->last = LAST_VALUE;
    }
    if (store_add(h, at, len) < 0) return head_fail(h, 500, "out of memory");
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct ws_hs_head *h = head_of(p);
    if (h->last != LAST_FIELD) {
        if (value_end(h) < 0) return head_fail(h, 500, "out of memory");
        h->field_len = 0;
        h->last = LAST_FIELD;
    }
    for (size_t i = 0; i < len; i++) {
        /* Debian's http_parser is built lenient (spaces in names...): be
         * strict ourselves, names are RFC 7230 tokens. */
        if (!is_tchar((unsigned char)at[i]))
            return head_fail(h, 400, "invalid character in header name");
        if (h->field_len < sizeof h->field - 1)
            h->field[h->field_len] = (char)tolower((unsigned char)at[i]);
        h->field_len++;
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct ws_hs_head *h = head_of(p);
    if (h->last != LAST_VALUE) {
        h->last = LAST_VALUE;
        h->cur = -1;
        if (h->field_len < sizeof h->field) {
            h->field[h->field_len] = 0;
            for (int i = 1; i < H_COUNT; i++) {
                if (strcmp(h->field, known[i].name) == 0) {
                    h->cur = i;
                    break;
                }
            }
            for (size_t i = 0; h->cur < 0 && i < h->n_extra; i++) {
                if (strcmp(h->field, h->extra[i].name) == 0)
                    h->cur = H_COUNT + (int)i;
            }
        }
        if (h->cur >= 0) {
            uint32_t old = h->off[h->cur];
            bool list = h->cur < H_COUNT ? known[h->cur].list : h->extra[h->cur - H_COUNT].list;
            if (old && !list)
                return head_fail(h, 400, "repeated header that must appear once");
            if (old) {
                /* Join a repeated list header: copy the earlier value to the
                 * end and continue it with ", ". */
                size_t ol = strlen(h->store + old - 1);
                if (store_reserve(h, ol + 3) < 0) return head_fail(h, 500, "out of memory");
                h->off[h->cur] = (uint32_t)h->store_len + 1;
                memmove(h->store + h->store_len, h->store + old - 1, ol);
                h->store_len += ol;
                if (ol) store_add(h, ", ", 2);
            } else {
                h->off[h->cur] = (uint32_t)h->store_len + 1;
            }
        }
    }
    if (h->cur >= 0 && store_add(h, at, len) < 0) return head_fail(h, 500, "out of memory");
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct ws_hs_head *h = head_of(p);
    if (value_end(h) < 0) return head_fail(h, 500, "out of memory");
    h->last = LAST_NONE;
    /* A 101 (and any request) ends at the head: skip the body so that
     * message_complete comes now. A client reads a non-101 body for the
     * error message. */
    if (!h->is_client || p->status_code == 101) return 1;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len);

static int on_message_complete(http_parser *p)
{
    struct ws_hs_head *h = head_of(p);
    if (h->state == ST_HEAD) h->state = ST_DONE;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static int head_init(struct ws_hs_head *h, bool is_client, size_t max_head)
{
    memset(h, 0, sizeof *h);
    h->parser = malloc(sizeof(http_parser));
    if (!h->parser) {
        errno = ENOMEM;
        return -1;
    }
    http_parser_init(h->parser, is_client ? HTTP_RESPONSE : HTTP_REQUEST);
    ((http_parser *)h->parser)->data = h;
    h->is_client = is_client;
    h->max_head = max_head ? max_head : WS_HS_DEFAULT_MAX_HEAD;
    h->cur = -1;
    return 0;
}

static void head_free(struct ws_hs_head *h)
{
    free(h->parser);
    free(h->store);
    h->parser = NULL;
    h->store = NULL;
    h->store_len = h->store_cap = 0;
}

static const char *head_str(const struct ws_hs_head *h, int i)
{
    return h->off[i] ? h->store + h->off[i] - 1 : NULL;
}

/* Feed bytes to http_parser, at most up to the head size limit. Returns
 * ST_HEAD / ST_DONE / ST_ERROR. */
static int head_feed(struct ws_hs_head *h, const uint8_t *buf, size_t len, size_t *consumed)
{
    http_parser *p = h->parser;
    *consumed = 0;
    if (h->state != ST_HEAD) return h->state;
    if (len == 0) {
        http_parser_execute(p, &settings, NULL, 0);
        if (h->state == ST_HEAD) head_fail(h, 400, "connection closed before the end of the head");
        return h->state;
    }
    size_t room = h->max_head - h->seen;
    size_t n = len < room ? len : room;
    size_t done = n ? http_parser_execute(p, &settings, (const char *)buf, n) : 0;
    enum http_errno e = HTTP_PARSER_ERRNO(p);
    if (h->state == ST_HEAD && e != HPE_OK && e != HPE_PAUSED) {
        if (e == HPE_HEADER_OVERFLOW)
            head_fail(h, 431, "head too large");
        else
            head_fail(h, 400, http_errno_description(e));
    }
    h->seen += done;
    *consumed = done;
    if (h->state == ST_HEAD && h->seen >= h->max_head) head_fail(h, 431, "head too large");
    return h->state;
}

/* ---- server ---- */

int ws_hs_server_init(struct ws_hs_server *s, size_t max_head)
{
    return ws_hs_server_init_extra(s, max_head, NULL, 0);
}

int ws_hs_server_init_extra(struct ws_hs_server *s, size_t max_head,
                            const struct ws_hs_extra *extra, size_t n)
{
    memset(s, 0, sizeof *s);
    if (n > WS_HS_MAX_EXTRA) {
        errno = EINVAL;
        return -1;
    }
    int rc = head_init(&s->head, false, max_head);
    s->head.extra = extra;
    s->head.n_extra = n;
    return rc;
}

void ws_hs_server_free(struct ws_hs_server *s)
{
    head_free(&s->head);
    memset(&s->req, 0, sizeof s->req);
}

int ws_hs_server_feed(struct ws_hs_server *s, const uint8_t *buf, size_t len, size_t *consumed)
{
    struct ws_hs_head *h = &s->head;
    size_t dummy;
    if (!consumed) consumed = &dummy;
    int st = head_feed(h, buf, len, consumed);
    if (st == ST_HEAD) return WS_HS_MORE;
    if (st == ST_ERROR) {
        s->status = h->status;
        s->error = h->error;
        return WS_HS_ERROR;
    }
    if (s->req.target) return WS_HS_DONE; /* already filled by an earlier call */

    http_parser *p = h->parser;
    const char *target = head_str(h, H_TARGET);
    if (!target) {
        head_fail(h, 400, "empty request target");
        s->status = h->status;
        s->error = h->error;
        return WS_HS_ERROR;
    }
    /* path = target without query or fragment; absolute-form targets
     * ("http://host/p") are reduced to their path. */
    size_t tlen = strlen(target), ps = 0, pl = 0;
    bool root = false; /* "http://host" without a path means "/" */
    if (target[0] == '/') {
        pl = strcspn(target, "?#");
    } else {
        struct http_parser_url u;
        http_parser_url_init(&u);
        if (http_parser_parse_url(target, tlen, 0, &u) == 0) {
            if (u.field_set & (1 << UF_PATH)) {
                ps = u.field_data[UF_PATH].off;
                pl = u.field_data[UF_PATH].len;
            } else {
                root = (u.field_set & (1 << UF_HOST)) != 0;
            }
        }
        /* junk gets an empty path, which matches no route */
    }
    size_t toff = h->off[H_TARGET] - 1;
    if (store_reserve(h, pl + 2) < 0) {
        head_fail(h, 500, "out of memory");
        s->status = h->status;
        s->error = h->error;
        return WS_HS_ERROR;
    }
    size_t poff = h->store_len;
    if (root) h->store[h->store_len++] = '/';
    memmove(h->store + h->store_len, h->store + toff + ps, pl);
    h->store_len += pl;
    h->store[h->store_len++] = 0;

    struct ws_hs_request *r = &s->req;
    r->method = http_method_str((enum http_method)p->method);
    r->target = head_str(h, H_TARGET);
    r->path = h->store + poff;
    r->host = head_str(h, H_HOST);
    r->origin = head_str(h, H_ORIGIN);
    r->authorization = head_str(h, H_AUTHORIZATION);
    r->upgrade = head_str(h, H_UPGRADE);
    r->connection = head_str(h, H_CONNECTION);
    r->key = head_str(h, H_KEY);
    r->version = head_str(h, H_VERSION);
    r->extensions = head_str(h, H_EXTENSIONS);
    r->protocol = head_str(h, H_PROTOCOL);
    r->user_agent = head_str(h, H_USER_AGENT);
    for (size_t i = 0; i < h->n_extra; i++)
        r->extra[i] = head_str(h, H_COUNT + (int)i);
    r->http_major = p->http_major;
    r->http_minor = p->http_minor;
    r->has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
    return WS_HS_DONE;
}

int ws_hs_request_check(const struct ws_hs_request *r, const char **why)
{
    const char *dummy;
    if (!why) why = &dummy;
    if (!ws_hs_has_token(r->upgrade, "websocket")) {
        *why = "not a WebSocket upgrade request";
        return 426;
    }
    if (strcmp(r->method, "GET") != 0) {
        *why = "WebSocket upgrade needs method GET";
        return 400;
    }
    if (r->http_major < 1 || (r->http_major == 1 && r->http_minor < 1)) {
        *why = "WebSocket upgrade needs HTTP/1.1";
        return 400;
    }
    if (!ws_hs_has_token(r->connection, "upgrade")) {
        *why = "Connection header lacks the upgrade token";
        return 400;
    }
    if (!r->version || strcmp(r->version, "13") != 0) {
        *why = "unsupported Sec-WebSocket-Version (need 13)";
        return 426;
    }
    if (!r->key) {
        *why = "missing Sec-WebSocket-Key";
        return 400;
    }
    if (!ws_hs_key_valid(r->key)) {
        *why = "invalid Sec-WebSocket-Key";
        return 400;
    }
    if (!r->host || !*r->host) {
        *why = "missing Host header";
        return 400;
    }
    if (r->has_body) {
        *why = "upgrade request with a body";
        return 400;
    }
    *why = NULL;
    return 0;
}

/* ---- building responses and requests ---- */

static bool has_crlf(const char *s)
{
    return s && strpbrk(s, "\r\n") != NULL;
}

/* Bounded appender: keeps the total length; fails once at the end. */
struct out {
    char *p;
    size_t cap, len;
};

static void out_add(struct out *o, const char *s, size_t n)
{
    if (o->len < o->cap) {
        size_t room = o->cap - o->len;
        memcpy(o->p + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void out_str(struct out *o, const char *s)
{
    out_add(o, s, strlen(s));
}

static void out_hdr(struct out *o, const char *name, const char *value)
{
    out_str(o, name);
    out_add(o, ": ", 2);
    out_str(o, value);
    out_add(o, "\r\n", 2);
}

static ssize_t out_end(struct out *o)
{
    if (o->len + 1 > o->cap) {
        if (o->cap) o->p[0] = 0;
        errno = ENOSPC;
        return -1;
    }
    o->p[o->len] = 0;
    return (ssize_t)o->len;
}

ssize_t ws_hs_response_101(char *out, size_t cap, const char *key, const char *extensions,
                           const char *protocol, const char *extra_headers)
{
    if (!key || has_crlf(key) || has_crlf(extensions) || has_crlf(protocol)) {
        errno = EINVAL;
        return -1;
    }
    char accept[WS_HS_ACCEPT_LEN + 1];
    ws_hs_accept(key, strlen(key), accept);
    struct out o = {out, cap, 0};
    out_str(&o, "HTTP/1.1 101 Switching Protocols\r\n");
    out_hdr(&o, "Upgrade", "websocket");
    out_hdr(&o, "Connection", "Upgrade");
    out_hdr(&o, "Sec-WebSocket-Accept", accept);
    if (extensions && *extensions) out_hdr(&o, "Sec-WebSocket-Extensions", extensions);
    if (protocol && *protocol) out_hdr(&o, "Sec-WebSocket-Protocol", protocol);
    if (extra_headers) out_str(&o, extra_headers);
    out_add(&o, "\r\n", 2);
    return out_end(&o);
}

const char *ws_hs_status_text(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Payload Too Large";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

ssize_t ws_hs_response_simple(char *out, size_t cap, int status, const char *body,
                              const char *extra_headers)
{
    if (status < 100 || status > 999) {
        errno = EINVAL;
        return -1;
    }
    size_t blen = body ? strlen(body) : 0;
    char line[96];
    struct out o = {out, cap, 0};
    snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status, ws_hs_status_text(status));
    out_str(&o, line);
    /* a caller's own Content-Type (e.g. Prometheus' text format) replaces ours */
    if (!extra_headers || (strncasecmp(extra_headers, "Content-Type:", 13) != 0 &&
                           !strcasestr(extra_headers, "\nContent-Type:")))
        out_hdr(&o, "Content-Type", "text/plain; charset=utf-8");
    snprintf(line, sizeof line, "%zu", blen);
    out_hdr(&o, "Content-Length", line);
    out_hdr(&o, "Connection", "close");
    if (extra_headers) out_str(&o, extra_headers);
    out_add(&o, "\r\n", 2);
    if (blen) out_add(&o, body, blen);
    return out_end(&o);
}

/* ---- client ---- */

int ws_hs_client_init(struct ws_hs_client *c, size_t max_head)
{
    memset(c, 0, sizeof *c);
    if (ws_hs_key_generate(c->key) < 0) return -1;
    ws_hs_accept(c->key, WS_HS_KEY_LEN, c->accept);
    return head_init(&c->head, true, max_head);
}

void ws_hs_client_free(struct ws_hs_client *c)
{
    head_free(&c->head);
    c->extensions = c->protocol = NULL;
    c->error = NULL;
}

/* Split "Name: value" into a name length and a value start; false if the
 * name is not an RFC 7230 token or the value has control characters. */
static bool split_header(const char *h, size_t *name_len, const char **value)
{
    size_t n = 0;
    while (is_tchar((unsigned char)h[n]))
        n++;
    if (n == 0 || h[n] != ':') return false;
    const char *v = h + n + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    for (const char *q = v; *q; q++)
        if ((unsigned char)*q < 0x20 && *q != '\t') return false;
    *name_len = n;
    *value = v;
    return true;
}

static bool name_is(const char *h, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(h, name, n) == 0;
}

static bool bad_value(const char *v)
{
    if (!v) return false;
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 && *v != '\t') return true;
    return false;
}

ssize_t ws_hs_client_request(struct ws_hs_client *c, const struct ws_hs_client_config *cfg,
                             char *out, size_t cap)
{
    const char *host = cfg->host, *origin = cfg->origin, *protocol = cfg->protocol;
    /* -H may override Host, Origin and the subprotocol; the headers that make
     * the handshake are ours alone. */
    for (size_t i = 0; i < cfg->nheaders; i++) {
        size_t n;
        const char *v;
        const char *h = cfg->headers[i];
        if (!h || !split_header(h, &n, &v)) {
            errno = EINVAL;
            return -1;
        }
        if (name_is(h, n, "host"))
            host = v;
        else if (name_is(h, n, "origin"))
            origin = v;
        else if (name_is(h, n, "sec-websocket-protocol"))
            protocol = v;
        else if (name_is(h, n, "upgrade") || name_is(h, n, "connection") ||
                 name_is(h, n, "sec-websocket-key") || name_is(h, n, "sec-websocket-version") ||
                 name_is(h, n, "sec-websocket-extensions") || name_is(h, n, "content-length") ||
                 name_is(h, n, "transfer-encoding")) {
            errno = EINVAL;
            return -1;
        }
    }
    const char *target = cfg->target && *cfg->target ? cfg->target : "/";
    if (!host || !*host || bad_value(host) || strpbrk(host, " \t") || bad_value(origin) ||
        bad_value(protocol) || bad_value(cfg->extensions) || strpbrk(target, " \t\r\n") ||
        bad_value(target)) {
        errno = EINVAL;
        return -1;
    }
    c->offered_ext = cfg->extensions && *cfg->extensions;
    c->offered_proto = protocol && *protocol;
    struct out o = {out, cap, 0};
    out_str(&o, "GET ");
    out_str(&o, target);
    out_str(&o, " HTTP/1.1\r\n");
    out_hdr(&o, "Host", host);
    out_hdr(&o, "Upgrade", "websocket");
    out_hdr(&o, "Connection", "Upgrade");
    out_hdr(&o, "Sec-WebSocket-Key", c->key);
    out_hdr(&o, "Sec-WebSocket-Version", "13");
    if (origin && *origin) out_hdr(&o, "Origin", origin);
    if (cfg->extensions && *cfg->extensions)
        out_hdr(&o, "Sec-WebSocket-Extensions", cfg->extensions);
    if (protocol && *protocol) out_hdr(&o, "Sec-WebSocket-Protocol", protocol);
    for (size_t i = 0; i < cfg->nheaders; i++) {
        size_t n;
        const char *v;
        const char *h = cfg->headers[i];
        split_header(h, &n, &v);
        if (name_is(h, n, "host") || name_is(h, n, "origin") ||
            name_is(h, n, "sec-websocket-protocol"))
            continue;
        out_add(&o, h, n);
        out_add(&o, ": ", 2);
        out_str(&o, v);
        out_add(&o, "\r\n", 2);
    }
    out_add(&o, "\r\n", 2);
    return out_end(&o);
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct ws_hs_head *h = head_of(p);
    if (!h->is_client) return 0;
    struct ws_hs_client *c =
        (struct ws_hs_client *)(void *)((char *)h - offsetof(struct ws_hs_client, head));
    size_t room = WS_HS_BODY_SNIPPET - c->body_len;
    size_t n = len < room ? len : room;
    memcpy(c->body + c->body_len, at, n);
    c->body_len += n;
    c->body[c->body_len] = 0;
    if (c->body_len == WS_HS_BODY_SNIPPET) {
        /* Enough for an error message: don't wait for the rest. */
        h->state = ST_DONE;
        http_parser_pause(p, 1);
    }
    return 0;
}

static int client_fail(struct ws_hs_client *c, const char *what)
{
    if (c->status && c->status != 101)
        snprintf(c->errbuf, sizeof c->errbuf, "server answered HTTP %d %s%s%s", c->status,
                 ws_hs_status_text(c->status), *what ? ": " : "", what);
    else
        snprintf(c->errbuf, sizeof c->errbuf, "bad handshake response: %s", what);
    c->error = c->errbuf;
    c->head.state = ST_ERROR;
    return WS_HS_ERROR;
}

int ws_hs_client_feed(struct ws_hs_client *c, const uint8_t *buf, size_t len, size_t *consumed)
{
    struct ws_hs_head *h = &c->head;
    size_t dummy;
    if (!consumed) consumed = &dummy;
    if (h->state == ST_DONE && c->status == 101) {
        *consumed = 0;
        return WS_HS_DONE;
    }
    if (h->state == ST_ERROR && c->error) {
        *consumed = 0;
        return WS_HS_ERROR;
    }
    http_parser *p = h->parser;
    int st = head_feed(h, buf, len, consumed);
    if (p->status_code) c->status = p->status_code;
    if (st == ST_HEAD) return WS_HS_MORE;
    if (st == ST_ERROR) /* a non-101 cut short still reports its status */
        return client_fail(c, c->status && c->status != 101 ? "(truncated)" : h->error);
    if (c->status != 101) {
        /* The error message carries the first line of the body. */
        char line[WS_HS_BODY_SNIPPET + 1];
        size_t bl = strcspn(c->body, "\r\n");
        memcpy(line, c->body, bl);
        line[bl] = 0;
        return client_fail(c, line);
    }
    if (!ws_hs_has_token(head_str(h, H_UPGRADE), "websocket"))
        return client_fail(c, "no Upgrade: websocket");
    if (!ws_hs_has_token(head_str(h, H_CONNECTION), "upgrade"))
        return client_fail(c, "no Connection: Upgrade");
    const char *acc = head_str(h, H_ACCEPT);
    if (!acc) return client_fail(c, "no Sec-WebSocket-Accept");
    if (strcmp(acc, c->accept) != 0) return client_fail(c, "Sec-WebSocket-Accept mismatch");
    const char *ext = head_str(h, H_EXTENSIONS), *proto = head_str(h, H_PROTOCOL);
    if (ext && *ext && !c->offered_ext)
        return client_fail(c, "server accepted an extension we did not offer");
    if (proto && *proto && !c->offered_proto)
        return client_fail(c, "server chose a subprotocol we did not offer");
    c->extensions = ext && *ext ? ext : NULL;
    c->protocol = proto && *proto ? proto : NULL;
    return WS_HS_DONE;
}
