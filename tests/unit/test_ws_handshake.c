/* Unit tests for lib/ws_handshake.c: keys and Sec-WebSocket-Accept, request
 * and response heads parsed split at every byte boundary, leftover bytes,
 * head size limit, validation failures, request/response builders. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ws_handshake.h"

/* ---- keys ---- */

static void test_accept_rfc_example(void **state)
{
    (void)state;
    char out[WS_HS_ACCEPT_LEN + 1];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    ws_hs_accept(key, strlen(key), out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* a second key, checked against Python hashlib */
    const char *k2 = "CSIRmL8dWYxeAdr/XpEHRw==";
    ws_hs_accept(k2, strlen(k2), out);
    assert_string_equal(out, "Cl08BPHCO6KrG+lBD2wp0+jmtMQ=");
}

static void test_key_valid(void **state)
{
    (void)state;
    assert_true(ws_hs_key_valid("dGhlIHNhbXBsZSBub25jZQ=="));
    assert_true(ws_hs_key_valid("AAAAAAAAAAAAAAAAAAAAAA=="));
    assert_true(ws_hs_key_valid("+/+/+/+/+/+/+/+/+/+/+w=="));
    const char *bad[] = {"",
                         "dGhlIHNhbXBsZSBub25jZQ=",
                         "dGhlIHNhbXBsZSBub25jZQ===",
                         "dGhlIHNhbXBsZSBub25jZQ",
                         "dGhlIHNhbXBsZSBub25jZQAA",
                         "dGhlIHNhbXBsZSBub25j ZQ=",
                         "dGhlIHNhbXBsZSBub25jZ-==",
                         "dGhlIHNhbXBsZSBub25jZ_==",
                         "dGhlIHNhbXBsZSBub25jZ=Q=",
                         "dGhlIHNhbXBsZSBub25jZQ==x",
                         "c2hvcnQ=",
                         "dGhpcyBpcyBhIDIwIGJ5dGUga2V5IQ==" /* 20 bytes */};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(ws_hs_key_valid(bad[i]));
    assert_false(ws_hs_key_valid(NULL));
    char a[WS_HS_KEY_LEN + 1], b[WS_HS_KEY_LEN + 1];
    assert_int_equal(ws_hs_key_generate(a), 0);
    assert_int_equal(ws_hs_key_generate(b), 0);
    assert_true(ws_hs_key_valid(a));
    assert_true(ws_hs_key_valid(b));
    assert_string_not_equal(a, b);
}

static void test_has_token(void **state)
{
    (void)state;
    assert_true(ws_hs_has_token("Upgrade", "upgrade"));
    assert_true(ws_hs_has_token("keep-alive, Upgrade", "upgrade"));
    assert_true(ws_hs_has_token(" keep-alive ,UPGRADE ", "upgrade"));
    assert_true(ws_hs_has_token("a,,upgrade", "upgrade"));
    assert_false(ws_hs_has_token("upgrades", "upgrade"));
    assert_false(ws_hs_has_token("keep-alive", "upgrade"));
    assert_false(ws_hs_has_token("", "upgrade"));
    assert_false(ws_hs_has_token(NULL, "upgrade"));
    assert_false(ws_hs_has_token("up grade", "upgrade"));
}

/* ---- server: request parsing ---- */

static const char RFC_REQ[] = "GET /proxy/chat?x=1 HTTP/1.1\r\n"
                              "Host: server.example.com\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Origin: http://example.com\r\n"
                              "Sec-WebSocket-Protocol: chat, superchat\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "authorization: Bearer abc.def.ghi\r\n"
                              "X-Forwarded-For: 10.0.0.1\r\n"
                              "X-Unrelated-Header-With-A-Rather-Long-Name-Over-40: zzz\r\n"
                              "x-forwarded-for:   10.0.0.2  \r\n"
                              "X-Goog-Authenticated-User-Email: accounts.google.com:a@b.c\r\n"
                              "Sec-WebSocket-Extensions: permessage-deflate; "
                              "client_max_window_bits\r\n"
                              "User-Agent: test/1.0\r\n"
                              "\r\n";
static const uint8_t LEFTOVER[] = {0x82, 0x80, 1, 2, 3, 4, 0x88};

/* The application's own headers (wsgate's, and one the request lacks). */
static const struct ws_hs_extra app_headers[] = {
    { "x-forwarded-for", true },
    { "x-goog-authenticated-user-email", false },
    { "x-absent", false },
};
#define N_EXTRA (sizeof app_headers / sizeof *app_headers)

static void check_rfc_req(const struct ws_hs_server *s)
{
    const struct ws_hs_request *r = &s->req;
    assert_string_equal(r->method, "GET");
    assert_string_equal(r->target, "/proxy/chat?x=1");
    assert_string_equal(r->path, "/proxy/chat");
    assert_string_equal(r->host, "server.example.com");
    assert_string_equal(r->upgrade, "websocket");
    assert_string_equal(r->connection, "Upgrade");
    assert_string_equal(r->key, "dGhlIHNhbXBsZSBub25jZQ==");
    assert_string_equal(r->origin, "http://example.com");
    assert_string_equal(r->protocol, "chat, superchat");
    assert_string_equal(r->version, "13");
    assert_string_equal(r->authorization, "Bearer abc.def.ghi");
    assert_string_equal(r->extra[0], "10.0.0.1, 10.0.0.2");  /* a list: joined */
    assert_string_equal(r->extra[1], "accounts.google.com:a@b.c");
    assert_null(r->extra[2]); /* asked for, absent */
    assert_string_equal(r->extensions, "permessage-deflate; client_max_window_bits");
    assert_string_equal(r->user_agent, "test/1.0");
    assert_int_equal(r->http_major, 1);
    assert_int_equal(r->http_minor, 1);
    assert_false(r->has_body);
    const char *why = "x";
    assert_int_equal(ws_hs_request_check(r, &why), 0);
    assert_null(why);
}

/* Feed `data` to a server parser in pieces ending at the cumulative cuts
 * (then the rest). Returns the final result; leftover bytes (those after the
 * head) are appended to *left. */
static int feed_server(struct ws_hs_server *s, const uint8_t *data, size_t len, const size_t *cuts,
                       size_t ncuts, size_t step, uint8_t *left, size_t *left_len)
{
    size_t pos = 0, ci = 0;
    int r = WS_HS_MORE;
    *left_len = 0;
    while (pos < len) {
        size_t end = cuts ? (ci < ncuts ? cuts[ci++] : len) : pos + step;
        if (end > len) end = len;
        if (end <= pos) continue;
        size_t consumed = 12345;
        r = ws_hs_server_feed(s, data + pos, end - pos, &consumed);
        if (r == WS_HS_MORE) {
            assert_int_equal(consumed, end - pos);
            pos = end;
            continue;
        }
        if (r == WS_HS_DONE) {
            assert_true(consumed <= end - pos);
            memcpy(left, data + pos + consumed, len - pos - consumed);
            *left_len = len - pos - consumed;
        }
        return r;
    }
    return r;
}

static void test_server_rfc_every_split(void **state)
{
    (void)state;
    size_t hl = strlen(RFC_REQ);
    size_t len = hl + sizeof LEFTOVER;
    uint8_t *data = malloc(len);
    memcpy(data, RFC_REQ, hl);
    memcpy(data + hl, LEFTOVER, sizeof LEFTOVER);
    uint8_t left[64];
    size_t ll;
    /* whole, byte by byte, every 2-piece split, some 3-piece splits */
    for (size_t step = 1; step <= len; step += (step < 8 ? 1 : 97)) {
        struct ws_hs_server s;
        assert_int_equal(ws_hs_server_init_extra(&s, 0, app_headers, N_EXTRA), 0);
        assert_int_equal(feed_server(&s, data, len, NULL, 0, step, left, &ll), WS_HS_DONE);
        check_rfc_req(&s);
        assert_int_equal(ll, sizeof LEFTOVER);
        assert_memory_equal(left, LEFTOVER, ll);
        ws_hs_server_free(&s);
    }
    for (size_t a = 1; a < len; a++) {
        for (size_t b = a; b < len; b += (b == a ? 1 : 61)) {
            struct ws_hs_server s;
            assert_int_equal(ws_hs_server_init_extra(&s, 0, app_headers, N_EXTRA), 0);
            size_t cuts[2] = {a, b};
            int r = feed_server(&s, data, len, cuts, b == a ? 1 : 2, 0, left, &ll);
            assert_int_equal(r, WS_HS_DONE);
            check_rfc_req(&s);
            assert_int_equal(ll, sizeof LEFTOVER);
            assert_memory_equal(left, LEFTOVER, ll);
            /* further feeds report done again and consume nothing */
            size_t c = 9;
            assert_int_equal(ws_hs_server_feed(&s, LEFTOVER, 1, &c), WS_HS_DONE);
            assert_int_equal(c, 0);
            ws_hs_server_free(&s);
        }
    }
    free(data);
}

static int parse_req(const char *req, struct ws_hs_server *s, size_t max)
{
    assert_int_equal(ws_hs_server_init(s, max), 0);
    size_t consumed;
    return ws_hs_server_feed(s, (const uint8_t *)req, strlen(req), &consumed);
}

static void test_server_case_insensitive(void **state)
{
    (void)state;
    struct ws_hs_server s;
    int r = parse_req("GET / HTTP/1.1\r\nHOST: h:80\r\nUPGRADE: WebSocket\r\n"
                      "connection: keep-alive\r\nConnection: upgrade\r\n"
                      "SEC-WEBSOCKET-KEY: AAAAAAAAAAAAAAAAAAAAAA==\r\n"
                      "sec-websocket-version: 13\r\n\r\n",
                      &s, 0);
    assert_int_equal(r, WS_HS_DONE);
    assert_string_equal(s.req.connection, "keep-alive, upgrade");
    assert_string_equal(s.req.host, "h:80");
    assert_string_equal(s.req.path, "/");
    assert_null(s.req.origin);
    assert_null(s.req.authorization);
    assert_null(s.req.extensions);
    assert_int_equal(ws_hs_request_check(&s.req, NULL), 0);
    ws_hs_server_free(&s);
}

static void test_server_plain_get(void **state)
{
    (void)state;
    struct ws_hs_server s;
    assert_int_equal(parse_req("GET /live HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n", &s, 0),
                     WS_HS_DONE);
    assert_string_equal(s.req.path, "/live");
    const char *why;
    assert_int_equal(ws_hs_request_check(&s.req, &why), 426);
    assert_non_null(why);
    ws_hs_server_free(&s);
    /* pipelined second request is not consumed */
    assert_int_equal(ws_hs_server_init(&s, 0), 0);
    const char *two = "GET /live HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\n";
    size_t consumed;
    assert_int_equal(ws_hs_server_feed(&s, (const uint8_t *)two, strlen(two), &consumed),
                     WS_HS_DONE);
    assert_int_equal(consumed, strlen("GET /live HTTP/1.0\r\n\r\n"));
    assert_int_equal(s.req.http_minor, 0);
    assert_null(s.req.host);
    ws_hs_server_free(&s);
    /* absolute-form target */
    assert_int_equal(parse_req("GET http://gw:8/proxy/a?b=1 HTTP/1.1\r\nHost: gw\r\n\r\n", &s, 0),
                     WS_HS_DONE);
    assert_string_equal(s.req.path, "/proxy/a");
    ws_hs_server_free(&s);
    assert_int_equal(parse_req("GET http://gw:8 HTTP/1.1\r\nHost: gw\r\n\r\n", &s, 0), WS_HS_DONE);
    assert_string_equal(s.req.path, "/");
    ws_hs_server_free(&s);
    assert_int_equal(parse_req("OPTIONS * HTTP/1.1\r\nHost: gw\r\n\r\n", &s, 0), WS_HS_DONE);
    assert_string_equal(s.req.path, "*"); /* matches no route */
    assert_string_equal(s.req.target, "*");
    assert_string_equal(s.req.method, "OPTIONS");
    ws_hs_server_free(&s);
}

static void test_server_head_limit(void **state)
{
    (void)state;
    size_t max = 16 * 1024;
    char *req = malloc(2 * max);
    /* a head of exactly max bytes passes; one byte more is 431 */
    for (int extra = 0; extra < 2; extra++) {
        const char *start = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
        size_t sl = strlen(start);
        size_t pad = max - sl - 4 + (size_t)extra;
        memcpy(req, start, sl);
        memset(req + sl, 'p', pad);
        memcpy(req + sl + pad, "\r\n\r\n", 5);
        assert_int_equal(strlen(req), max + (size_t)extra);
        for (size_t step = 1; step <= max * 2; step = step * 7 + 1) {
            struct ws_hs_server s;
            assert_int_equal(ws_hs_server_init(&s, 0), 0);
            uint8_t left[8];
            size_t ll;
            int r = feed_server(&s, (const uint8_t *)req, strlen(req), NULL, 0, step, left, &ll);
            if (extra) {
                assert_int_equal(r, WS_HS_ERROR);
                assert_int_equal(s.status, 431);
                assert_non_null(s.error);
            } else {
                assert_int_equal(r, WS_HS_DONE);
                assert_int_equal(ll, 0);
            }
            ws_hs_server_free(&s);
        }
    }
    /* an endless header line with a small limit */
    struct ws_hs_server s;
    assert_int_equal(ws_hs_server_init(&s, 100), 0);
    memset(req, 'a', 1000);
    memcpy(req, "GET / HTTP/1.1\r\nX: ", 19);
    size_t consumed;
    assert_int_equal(ws_hs_server_feed(&s, (const uint8_t *)req, 50, &consumed), WS_HS_MORE);
    assert_int_equal(ws_hs_server_feed(&s, (const uint8_t *)req + 50, 50, &consumed), WS_HS_ERROR);
    assert_int_equal(s.status, 431);
    /* sticky */
    assert_int_equal(ws_hs_server_feed(&s, (const uint8_t *)"\r\n\r\n", 4, &consumed), WS_HS_ERROR);
    ws_hs_server_free(&s);
    free(req);
}

static void test_server_malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "HELLO\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nSec-WebSocket-Key: a\r\nSec-WebSocket-Key: b\r\n\r\n",
        "GET / HTTP/1.1\r\nAuthorization: a\r\nauthorization: b\r\n\r\n",
        "GET / HTTP/x.1\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* TLS ClientHello */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct ws_hs_server s;
        int r = parse_req(bad[i], &s, 0);
        if (r != WS_HS_ERROR) fail_msg("request %zu accepted", i);
        assert_int_equal(s.status, 400);
        assert_non_null(s.error);
        ws_hs_server_free(&s);
    }
    /* EOF before the end of the head */
    struct ws_hs_server s;
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: a\r\n", &s, 0), WS_HS_MORE);
    size_t c;
    assert_int_equal(ws_hs_server_feed(&s, NULL, 0, &c), WS_HS_ERROR);
    ws_hs_server_free(&s);
}

static void test_server_check_failures(void **state)
{
    (void)state;
    const char *key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    struct {
        const char *req;
        int status;
    } cases[] = {
        {"GET /p HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n%s"
         "\r\n",
         426},
        {"GET /p HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\n%s\r\n",
         426},
        {"GET /p HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 8\r\n%s\r\n",
         426},
        {"GET /p HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n%s\r\n", 426},
        {"GET /p HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
         "Sec-WebSocket-Version: 13\r\n%s\r\n",
         400},
        {"GET /p HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
         "Sec-WebSocket-Version: 13\r\n%s\r\n",
         400},
        {"POST /p HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\n%s\r\n",
         400},
        {"GET /p HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\n%s\r\n",
         400},
        {"GET /p HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\n%s\r\n",
         400},
        {"GET /p HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\nContent-Length: 3\r\n%s\r\nabc",
         400},
        {"GET /p HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\n\r\n",
         400}, /* no key */
        {"GET /p HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short==\r\n\r\n",
         400},
        {"GET /p HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\n%s\r\n",
         0}, /* control: valid */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char req[1024];
        snprintf(req, sizeof req, cases[i].req, key);
        struct ws_hs_server s;
        assert_int_equal(parse_req(req, &s, 0), WS_HS_DONE);
        const char *why = NULL;
        int st = ws_hs_request_check(&s.req, &why);
        if (st != cases[i].status)
            fail_msg("case %zu: status %d, want %d (%s)", i, st, cases[i].status, why ? why : "-");
        if (st) assert_non_null(why);
        ws_hs_server_free(&s);
    }
}

/* ---- responses ---- */

static void test_response_101(void **state)
{
    (void)state;
    char out[512];
    ssize_t n = ws_hs_response_101(
        out, sizeof out, "dGhlIHNhbXBsZSBub25jZQ==", "permessage-deflate", NULL, "X-A: b\r\n");
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(out));
    assert_string_equal(out, "HTTP/1.1 101 Switching Protocols\r\n"
                             "Upgrade: websocket\r\n"
                             "Connection: Upgrade\r\n"
                             "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                             "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                             "X-A: b\r\n"
                             "\r\n");
    /* too small: every size below the need fails cleanly */
    for (size_t cap = 0; cap <= (size_t)n; cap++) {
        errno = 0;
        assert_int_equal(ws_hs_response_101(out, cap, "dGhlIHNhbXBsZSBub25jZQ==",
                                            "permessage-deflate", NULL, "X-A: b\r\n"),
                         -1);
        assert_int_equal(errno, ENOSPC);
    }
    assert_int_equal(ws_hs_response_101(out, sizeof out, "k", "a\r\nX: y", NULL, NULL), -1);
    assert_int_equal(errno, EINVAL);
}

static void test_response_simple(void **state)
{
    (void)state;
    char out[512];
    ssize_t n = ws_hs_response_simple(out, sizeof out, 404, "Not found: db", NULL);
    assert_string_equal(out, "HTTP/1.1 404 Not Found\r\n"
                             "Content-Type: text/plain; charset=utf-8\r\n"
                             "Content-Length: 13\r\n"
                             "Connection: close\r\n"
                             "\r\n"
                             "Not found: db");
    assert_int_equal((size_t)n, strlen(out));
    n = ws_hs_response_simple(out, sizeof out, 200, "OK\n", NULL);
    assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(out, "Content-Length: 3\r\n"));
    assert_string_equal(out + n - 7, "\r\n\r\nOK\n");
    n = ws_hs_response_simple(out, sizeof out, 426, "", "Sec-WebSocket-Version: 13\r\n");
    assert_non_null(strstr(out, "HTTP/1.1 426 Upgrade Required\r\n"));
    assert_non_null(strstr(out, "Sec-WebSocket-Version: 13\r\n\r\n"));
    int codes[] = {401, 403, 500, 431, 400};
    for (size_t i = 0; i < 5; i++) {
        n = ws_hs_response_simple(out, sizeof out, codes[i], "x", NULL);
        assert_true(n > 0);
        assert_string_not_equal(ws_hs_status_text(codes[i]), "Unknown");
    }
    assert_int_equal(ws_hs_response_simple(out, 10, 200, "OK", NULL), -1);
    assert_int_equal(errno, ENOSPC);
}

/* ---- client ---- */

static void test_client_request(void **state)
{
    (void)state;
    struct ws_hs_client c;
    assert_int_equal(ws_hs_client_init(&c, 0), 0);
    assert_true(ws_hs_key_valid(c.key));
    const char *hdrs[] = {"X-Token: abc def", "Cookie:a=b"};
    struct ws_hs_client_config cfg = {.host = "gw.example.com:8443",
                                      .target = "/proxy/db",
                                      .origin = "https://gw.example.com",
                                      .extensions = "permessage-deflate; client_max_window_bits",
                                      .headers = hdrs,
                                      .nheaders = 2};
    char out[1024];
    ssize_t n = ws_hs_client_request(&c, &cfg, out, sizeof out);
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(out));
    assert_memory_equal(out, "GET /proxy/db HTTP/1.1\r\nHost: gw.example.com:8443\r\n", 50);
    assert_non_null(strstr(out, "X-Token: abc def\r\n"));
    assert_non_null(strstr(out, "Cookie: a=b\r\n"));
    assert_string_equal(out + n - 4, "\r\n\r\n");
    /* our own server parser accepts it */
    struct ws_hs_server s;
    assert_int_equal(parse_req(out, &s, 0), WS_HS_DONE);
    assert_int_equal(ws_hs_request_check(&s.req, NULL), 0);
    assert_string_equal(s.req.key, c.key);
    assert_string_equal(s.req.origin, "https://gw.example.com");
    assert_string_equal(s.req.host, "gw.example.com:8443");
    assert_string_equal(s.req.extensions, "permessage-deflate; client_max_window_bits");
    assert_string_equal(s.req.path, "/proxy/db");
    ws_hs_server_free(&s);
    /* -H Host / Origin override the defaults */
    const char *ov[] = {"host: internal:80", "Origin: http://o"};
    cfg.headers = ov;
    n = ws_hs_client_request(&c, &cfg, out, sizeof out);
    assert_true(n > 0);
    assert_int_equal(parse_req(out, &s, 0), WS_HS_DONE);
    assert_string_equal(s.req.host, "internal:80");
    assert_string_equal(s.req.origin, "http://o");
    ws_hs_server_free(&s);
    /* bad headers: injection, no colon, bad name, our own handshake headers */
    const char *bad[] = {
        "X: a\r\nY: b", "NoColon",           "Bad Name: x",
        ": x",          "X: a\nb",           "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==",
        "Upgrade: x",   "connection: close", "Sec-WebSocket-Version: 8"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cfg.headers = &bad[i];
        cfg.nheaders = 1;
        errno = 0;
        assert_int_equal(ws_hs_client_request(&c, &cfg, out, sizeof out), -1);
        assert_int_equal(errno, EINVAL);
    }
    cfg.headers = NULL;
    cfg.nheaders = 0;
    cfg.target = "/a b";
    assert_int_equal(ws_hs_client_request(&c, &cfg, out, sizeof out), -1);
    cfg.target = "/ok";
    cfg.host = "h\r\nX: y";
    assert_int_equal(ws_hs_client_request(&c, &cfg, out, sizeof out), -1);
    cfg.host = "h";
    assert_int_equal(ws_hs_client_request(&c, &cfg, out, 20), -1);
    assert_int_equal(errno, ENOSPC);
    ws_hs_client_free(&c);
}

/* Feed a response to a client in pieces (step) or split at `cut`. */
static int feed_client(struct ws_hs_client *c, const uint8_t *data, size_t len, size_t step,
                       size_t cut, bool eof, size_t *leftover_at)
{
    size_t pos = 0;
    int r = WS_HS_MORE;
    while (pos < len) {
        size_t end = cut ? (pos < cut ? cut : len) : pos + step;
        if (end > len) end = len;
        size_t consumed = 777;
        r = ws_hs_client_feed(c, data + pos, end - pos, &consumed);
        if (r != WS_HS_MORE) {
            if (leftover_at) *leftover_at = pos + consumed;
            return r;
        }
        assert_int_equal(consumed, end - pos);
        pos = end;
    }
    if (eof) {
        size_t consumed;
        r = ws_hs_client_feed(c, NULL, 0, &consumed);
        if (leftover_at) *leftover_at = len;
    }
    return r;
}

static void test_client_101_every_split(void **state)
{
    (void)state;
    for (size_t mode = 0; mode < 3; mode++) {
        struct ws_hs_client c0;
        assert_int_equal(ws_hs_client_init(&c0, 0), 0);
        char resp[1024];
        ssize_t n =
            ws_hs_response_101(resp, sizeof resp, c0.key,
                               mode == 1 ? "permessage-deflate; server_no_context_takeover" : NULL,
                               mode == 2 ? "chat" : NULL, "Server: opskit\r\n");
        assert_true(n > 0);
        size_t len = (size_t)n + 3;
        memcpy(resp + n, "\x82\x01z", 3);
        for (size_t split = 0; split < len; split++) {
            for (size_t step = 1; step <= (split ? 1 : len); step += (step < 3 ? 1 : 200)) {
                struct ws_hs_client c = c0;
                /* fresh parse state with the same key */
                assert_int_equal(ws_hs_client_init(&c, 0), 0);
                memcpy(c.key, c0.key, sizeof c.key);
                memcpy(c.accept, c0.accept, sizeof c.accept);
                struct ws_hs_client_config cfg = {.host = "h",
                                                  .target = "/",
                                                  .extensions = "permessage-deflate",
                                                  .protocol = "chat, superchat"};
                char req[512];
                assert_true(ws_hs_client_request(&c, &cfg, req, sizeof req) > 0);
                size_t at = 0;
                int r = feed_client(&c, (const uint8_t *)resp, len, split ? len : step, split,
                                    false, &at);
                if (r != WS_HS_DONE) fail_msg("split %zu step %zu: %s", split, step, c.error);
                assert_int_equal(c.status, 101);
                assert_int_equal(at, (size_t)n);
                if (mode == 1)
                    assert_string_equal(c.extensions,
                                        "permessage-deflate; server_no_context_takeover");
                else
                    assert_null(c.extensions);
                if (mode == 2) assert_string_equal(c.protocol, "chat");
                size_t cc = 5;
                assert_int_equal(ws_hs_client_feed(&c, (const uint8_t *)"x", 1, &cc), WS_HS_DONE);
                assert_int_equal(cc, 0);
                ws_hs_client_free(&c);
            }
        }
        ws_hs_client_free(&c0);
    }
}

static void client_expect_error(const char *resp, bool eof, int status, const char *msg_part,
                                const char *body)
{
    size_t len = strlen(resp);
    for (size_t split = 0; split < len; split++) {
        struct ws_hs_client c;
        assert_int_equal(ws_hs_client_init(&c, 0), 0);
        /* responses name the key of this client where needed */
        char buf[4096];
        snprintf(buf, sizeof buf, resp, c.accept);
        size_t bl = strlen(buf);
        int r = feed_client(&c, (const uint8_t *)buf, bl, 1, split < bl ? split : 0, eof, NULL);
        if (r != WS_HS_ERROR) fail_msg("split %zu: result %d for %s", split, r, resp);
        assert_int_equal(c.status, status);
        assert_non_null(c.error);
        if (!strstr(c.error, msg_part)) fail_msg("error '%s' lacks '%s'", c.error, msg_part);
        if (body) assert_string_equal(c.body, body);
        ws_hs_client_free(&c);
    }
}

static void test_client_errors(void **state)
{
    (void)state;
    client_expect_error("HTTP/1.1 404 Not Found\r\nContent-Length: 13\r\n\r\nNot found: db", false,
                        404, "404 Not Found: Not found: db", "Not found: db");
    client_expect_error("HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 19\r\n\r\ntoken expired\nmore\n",
                        false, 401, "401 Unauthorized: token expired", "token expired\nmore\n");
    /* body until EOF */
    client_expect_error("HTTP/1.0 500 Internal Server Error\r\n\r\nCould not connect upstream",
                        true, 500, "500 Internal Server Error: Could not connect upstream",
                        "Could not connect upstream");
    /* no body */
    client_expect_error("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", false, 403,
                        "403 Forbidden", "");
    /* bad 101s */
    client_expect_error("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Accept: "
                        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                        false, 101, "Sec-WebSocket-Accept mismatch", NULL);
    client_expect_error("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\n\r\n",
                        false, 101, "no Sec-WebSocket-Accept", NULL);
    client_expect_error("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: %s\r\n\r\n",
                        false, 101, "no Upgrade", NULL);
    client_expect_error("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Sec-WebSocket-Accept: %s\r\n\r\n",
                        false, 101, "no Connection", NULL);
    client_expect_error("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                        "Sec-WebSocket-Accept: %s\r\n\r\n",
                        false, 101, "once", NULL);
    /* an extension or subprotocol we did not offer (nothing offered here) */
    client_expect_error("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                        "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
                        false, 101, "extension we did not offer", NULL);
    client_expect_error("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                        "Sec-WebSocket-Protocol: chat\r\n\r\n",
                        false, 101, "subprotocol we did not offer", NULL);
    /* not HTTP at all */
    client_expect_error("SSH-2.0-OpenSSH_9.2\r\n", false, 0, "bad handshake response", NULL);
    /* EOF in the middle of the head */
    client_expect_error("HTTP/1.1 101 Switching Protocols\r\nUpgrade: webs", true, 101, "closed",
                        NULL);
}

static void test_client_valid_accept_template(void **state)
{
    /* sanity for the template used above: the correct accept passes */
    (void)state;
    struct ws_hs_client c;
    assert_int_equal(ws_hs_client_init(&c, 0), 0);
    char buf[512];
    snprintf(buf, sizeof buf,
             "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n"
             "connection: upgrade\r\nsec-websocket-accept: %s\r\n\r\n",
             c.accept);
    size_t consumed;
    assert_int_equal(ws_hs_client_feed(&c, (const uint8_t *)buf, strlen(buf), &consumed),
                     WS_HS_DONE);
    assert_int_equal(consumed, strlen(buf));
    ws_hs_client_free(&c);
}

static void test_client_long_body_and_limit(void **state)
{
    (void)state;
    /* a 10 KB error body: the error comes after the snippet, without waiting */
    char *resp = malloc(20000);
    int hl = sprintf(resp, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 10000\r\n\r\n");
    memset(resp + hl, 'e', 10000);
    struct ws_hs_client c;
    assert_int_equal(ws_hs_client_init(&c, 0), 0);
    size_t consumed;
    int r = ws_hs_client_feed(&c, (const uint8_t *)resp, (size_t)hl + 300, &consumed);
    assert_int_equal(r, WS_HS_ERROR);
    assert_int_equal(c.status, 502);
    assert_int_equal(c.body_len, WS_HS_BODY_SNIPPET);
    ws_hs_client_free(&c);
    /* response head over the limit */
    assert_int_equal(ws_hs_client_init(&c, 1024), 0);
    hl = sprintf(resp, "HTTP/1.1 101 Switching Protocols\r\nX-Pad: ");
    memset(resp + hl, 'p', 2000);
    r = ws_hs_client_feed(&c, (const uint8_t *)resp, (size_t)hl + 2000, &consumed);
    assert_int_equal(r, WS_HS_ERROR);
    assert_non_null(strstr(c.error, "too large"));
    ws_hs_client_free(&c);
    free(resp);
}

/* The simple responses parse back through the client as errors. */
static void test_simple_response_roundtrip(void **state)
{
    (void)state;
    char out[512];
    ssize_t n = ws_hs_response_simple(out, sizeof out, 500,
                                      "Could not connect upstream: connection refused", NULL);
    assert_true(n > 0);
    struct ws_hs_client c;
    assert_int_equal(ws_hs_client_init(&c, 0), 0);
    size_t consumed;
    assert_int_equal(ws_hs_client_feed(&c, (const uint8_t *)out, (size_t)n, &consumed),
                     WS_HS_ERROR);
    assert_int_equal(c.status, 500);
    assert_string_equal(c.body, "Could not connect upstream: connection refused");
    assert_string_equal(c.error, "server answered HTTP 500 Internal Server Error: "
                                 "Could not connect upstream: connection refused");
    ws_hs_client_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_rfc_example),
        cmocka_unit_test(test_key_valid),
        cmocka_unit_test(test_has_token),
        cmocka_unit_test(test_server_rfc_every_split),
        cmocka_unit_test(test_server_case_insensitive),
        cmocka_unit_test(test_server_plain_get),
        cmocka_unit_test(test_server_head_limit),
        cmocka_unit_test(test_server_malformed),
        cmocka_unit_test(test_server_check_failures),
        cmocka_unit_test(test_response_101),
        cmocka_unit_test(test_response_simple),
        cmocka_unit_test(test_client_request),
        cmocka_unit_test(test_client_101_every_split),
        cmocka_unit_test(test_client_errors),
        cmocka_unit_test(test_client_valid_accept_template),
        cmocka_unit_test(test_client_long_body_and_limit),
        cmocka_unit_test(test_simple_response_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
