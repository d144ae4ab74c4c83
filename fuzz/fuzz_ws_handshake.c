/* libFuzzer target for the WebSocket handshake parsers (lib/ws_handshake.c)
 * and the Sec-WebSocket-Extensions negotiation (lib/ws_deflate.c). The input
 * is fed as a request to the server parser and as a response to the client
 * parser, whole and in small pieces; results must agree, and whatever is
 * accepted must build a valid answer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws_deflate.h"
#include "ws_handshake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int server_run(const uint8_t *in, size_t len, size_t step, size_t *used, char *summary,
                      size_t sumlen)
{
    struct ws_hs_server s;
    static const struct ws_hs_extra extra[] = { { "x-forwarded-for", true },
                                                { "x-goog-authenticated-user-email", false } };
    if (ws_hs_server_init_extra(&s, 2048, extra, 2) < 0) abort();
    size_t pos = 0;
    int r = WS_HS_MORE;
    while (pos < len) {
        size_t k = len - pos < step ? len - pos : step;
        size_t c = 0;
        r = ws_hs_server_feed(&s, in + pos, k, &c);
        if (c > k) abort();
        if (r == WS_HS_MORE && c != k) abort();
        pos += c;
        if (r != WS_HS_MORE) break;
    }
    *used = pos;
    summary[0] = 0;
    if (r == WS_HS_DONE) {
        const struct ws_hs_request *q = &s.req;
        if (!q->method || !q->target || !q->path) abort();
        const char *why;
        int st = ws_hs_request_check(q, &why);
        if (st == 0) {
            char resp[4096];
            struct ws_pmd_server_config cfg = {.client_max_window_bits = 12};
            struct ws_pmd_params a;
            char ext[160] = "";
            if (ws_pmd_server_negotiate(q->extensions, &cfg, &a) == 1 &&
                ws_pmd_format(&a, ext, sizeof ext) < 0)
                abort();
            if (ws_hs_response_101(resp, sizeof resp, q->key, ext, NULL, NULL) < 0) abort();
        } else if (!why) {
            abort();
        }
        /* a summary that must not depend on how the input was cut */
        size_t n = 0;
        const char *f[] = {
            q->target,   q->host,    q->origin,     q->authorization, q->extra[0],
            q->extra[1], q->upgrade, q->connection, q->key,           q->version,
            q->extensions, q->protocol};
        for (size_t i = 0; i < sizeof f / sizeof *f && n + 1 < sumlen; i++) {
            const char *v = f[i] ? f[i] : "(null)";
            size_t l = strlen(v);
            if (l > sumlen - n - 2) l = sumlen - n - 2;
            memcpy(summary + n, v, l);
            n += l;
            summary[n++] = '\n';
        }
        summary[n] = 0;
    } else if (r == WS_HS_ERROR) {
        if (!s.error || s.status < 400) abort();
    }
    ws_hs_server_free(&s);
    return r;
}

static int client_run(const uint8_t *in, size_t len, size_t step, int *status)
{
    struct ws_hs_client c;
    if (ws_hs_client_init(&c, 2048) < 0) abort();
    size_t pos = 0;
    int r = WS_HS_MORE;
    while (pos < len) {
        size_t k = len - pos < step ? len - pos : step;
        size_t used = 0;
        r = ws_hs_client_feed(&c, in + pos, k, &used);
        if (used > k) abort();
        pos += used;
        if (r != WS_HS_MORE) break;
    }
    if (r == WS_HS_MORE) {
        size_t used;
        r = ws_hs_client_feed(&c, NULL, 0, &used);
    }
    if (r == WS_HS_ERROR && !c.error) abort();
    if (c.body_len > WS_HS_BODY_SNIPPET) abort();
    *status = c.status;
    ws_hs_client_free(&c);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t step = 1 + data[0] % 23;
    const uint8_t *in = data + 1;
    size_t len = size - 1;

    static char s1[8192], s2[8192];
    size_t u1, u2;
    int r1 = server_run(in, len, len ? len : 1, &u1, s1, sizeof s1);
    int r2 = server_run(in, len, step, &u2, s2, sizeof s2);
    if (r1 != r2 || (r1 == WS_HS_DONE && (u1 != u2 || strcmp(s1, s2) != 0))) abort();

    int st1, st2;
    r1 = client_run(in, len, len ? len : 1, &st1);
    r2 = client_run(in, len, step, &st2);
    if (r1 != r2) abort();

    /* extension negotiation on the input as a header value */
    char *hv = malloc(len + 1);
    memcpy(hv, in, len);
    hv[len] = 0;
    struct ws_pmd_params a, offer = {.client_max_window_bits_novalue = true};
    struct ws_pmd_server_config cfg = {0};
    char out[160];
    if (ws_pmd_server_negotiate(hv, &cfg, &a) == 1) {
        if (ws_pmd_format(&a, out, sizeof out) < 0) abort();
        /* our own answer to a client offer that was accepted reparses */
        struct ws_pmd_params back;
        if (ws_pmd_client_accept(out, &a, &back) < 0 && a.client_max_window_bits == 0 &&
            !a.server_max_window_bits)
            abort();
    }
    (void)ws_pmd_client_accept(hv, &offer, &a);
    free(hv);
    return 0;
}
