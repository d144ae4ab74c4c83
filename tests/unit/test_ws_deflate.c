/* Unit tests for lib/ws_deflate.c: permessage-deflate negotiation both ways,
 * RFC 7692 examples, compression round trips with and without context
 * takeover at every window size, streaming inflate in small pieces, the
 * decompression-bomb bound, corrupt data, and the decoder's RSV1 path. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ws.h"
#include "ws_deflate.h"

static const struct ws_pmd_server_config DEF = {0};

static int neg(const char *offer, const struct ws_pmd_server_config *cfg, char *resp)
{
    struct ws_pmd_params a;
    int r = ws_pmd_server_negotiate(offer, cfg, &a);
    if (r == 1)
        assert_true(ws_pmd_format(&a, resp, 160) > 0);
    else
        resp[0] = 0;
    return r;
}

static void test_server_negotiate(void **state)
{
    (void)state;
    char resp[160];
    assert_int_equal(neg("permessage-deflate", &DEF, resp), 1);
    assert_string_equal(resp, "permessage-deflate");
    /* python websockets' and browsers' default offer */
    assert_int_equal(neg("permessage-deflate; client_max_window_bits", &DEF, resp), 1);
    assert_string_equal(resp, "permessage-deflate");
    struct ws_pmd_server_config c10 = {.client_max_window_bits = 10};
    assert_int_equal(neg("permessage-deflate; client_max_window_bits", &c10, resp), 1);
    assert_string_equal(resp, "permessage-deflate; client_max_window_bits=10");
    assert_int_equal(neg("permessage-deflate; client_max_window_bits=12", &c10, resp), 1);
    assert_string_equal(resp, "permessage-deflate; client_max_window_bits=10");
    assert_int_equal(neg("permessage-deflate; client_max_window_bits=9", &c10, resp), 1);
    assert_string_equal(resp, "permessage-deflate; client_max_window_bits=9");
    /* without the client's consent we must not restrict its window */
    assert_int_equal(neg("permessage-deflate", &c10, resp), 1);
    assert_string_equal(resp, "permessage-deflate");
    assert_int_equal(neg("permessage-deflate; server_max_window_bits=10", &DEF, resp), 1);
    assert_string_equal(resp, "permessage-deflate; server_max_window_bits=10");
    assert_int_equal(neg("permessage-deflate; server_max_window_bits=\"11\"", &DEF, resp), 1);
    assert_string_equal(resp, "permessage-deflate; server_max_window_bits=11");
    struct ws_pmd_server_config s12 = {.server_max_window_bits = 12,
                                       .server_no_context_takeover = true,
                                       .client_no_context_takeover = true};
    assert_int_equal(neg("permessage-deflate; server_max_window_bits=14", &s12, resp), 1);
    assert_string_equal(resp, "permessage-deflate; server_no_context_takeover; "
                              "client_no_context_takeover; server_max_window_bits=12");
    assert_int_equal(neg("PerMessage-Deflate ; Client_No_Context_Takeover ;"
                         "server_no_context_takeover",
                         &DEF, resp),
                     1);
    assert_string_equal(resp, "permessage-deflate; server_no_context_takeover; "
                              "client_no_context_takeover");
    /* other extensions are skipped; the first acceptable offer wins */
    assert_int_equal(neg("x-webkit-deflate-frame, permessage-deflate; client_no_context_takeover,"
                         " permessage-deflate",
                         &DEF, resp),
                     1);
    assert_string_equal(resp, "permessage-deflate; client_no_context_takeover");
    assert_int_equal(neg("permessage-deflate; server_max_window_bits=8, permessage-deflate; "
                         "server_no_context_takeover",
                         &DEF, resp),
                     1);
    assert_string_equal(resp, "permessage-deflate; server_no_context_takeover");
    /* declined (0): nothing acceptable */
    const char *declined[] = {
        NULL,
        "",
        "x-webkit-deflate-frame",
        "permessage-deflate; server_max_window_bits=8", /* zlib can't */
        "permessage-deflate; foo",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=1a",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; a; b; c; d; e; f; g; h; i; j",
    };
    for (size_t i = 0; i < sizeof declined / sizeof *declined; i++) {
        struct ws_pmd_params a;
        int r = ws_pmd_server_negotiate(declined[i], &DEF, &a);
        if (r != 0) fail_msg("'%s' gave %d", declined[i] ? declined[i] : "(null)", r);
    }
    /* malformed (-1) */
    const char *bad[] = {"permessage-deflate;",
                         "permessage-deflate; =3",
                         ";",
                         "permessage-deflate; a=\"unterminated",
                         "permessage-deflate x",
                         "permessage-deflate; a=",
                         "permessage-deflate; a=b c",
                         "@"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct ws_pmd_params a;
        int r = ws_pmd_server_negotiate(bad[i], &DEF, &a);
        if (r != -1) fail_msg("'%s' gave %d", bad[i], r);
    }
    /* empty list elements are allowed */
    assert_int_equal(neg(" , permessage-deflate ,", &DEF, resp), 1);
}

static void test_client_accept(void **state)
{
    (void)state;
    struct ws_pmd_params offer = {.client_max_window_bits_novalue = true}, a;
    char buf[160];
    char small[10];
    assert_int_equal(ws_pmd_format(&offer, small, sizeof small), -1);
    assert_true(ws_pmd_format(&offer, buf, sizeof buf) > 0);
    assert_string_equal(buf, "permessage-deflate; client_max_window_bits");

    assert_int_equal(ws_pmd_client_accept(NULL, &offer, &a), 0);
    assert_int_equal(ws_pmd_client_accept("  ", &offer, &a), 0);
    assert_int_equal(ws_pmd_client_accept("permessage-deflate", &offer, &a), 1);
    assert_int_equal(a.client_max_window_bits, 0);
    assert_int_equal(ws_pmd_client_accept("permessage-deflate; server_no_context_takeover; "
                                          "client_max_window_bits=12",
                                          &offer, &a),
                     1);
    assert_true(a.server_no_context_takeover);
    assert_false(a.client_no_context_takeover);
    assert_int_equal(a.client_max_window_bits, 12);
    const char *bad[] = {"permessage-deflate; client_max_window_bits",
                         "x-foo",
                         "permessage-deflate, permessage-deflate",
                         "permessage-deflate, x-foo",
                         "permessage-deflate; bar",
                         "permessage-deflate; client_max_window_bits=8", /* zlib can't */
                         "permessage-deflate; server_max_window_bits=16",
                         "permessage-deflate;"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (ws_pmd_client_accept(bad[i], &offer, &a) != -1) fail_msg("accepted '%s'", bad[i]);
    /* consistency with what we offered */
    struct ws_pmd_params plain = {0};
    assert_int_equal(
        ws_pmd_client_accept("permessage-deflate; client_max_window_bits=10", &plain, &a), -1);
    struct ws_pmd_params o2 = {.server_max_window_bits = 10,
                               .server_no_context_takeover = true,
                               .client_max_window_bits = 11};
    assert_int_equal(ws_pmd_client_accept("permessage-deflate; server_no_context_takeover; "
                                          "server_max_window_bits=9",
                                          &o2, &a),
                     1);
    assert_int_equal(a.client_max_window_bits, 11); /* our offered value applies */
    assert_int_equal(ws_pmd_client_accept("permessage-deflate; server_no_context_takeover; "
                                          "server_max_window_bits=11",
                                          &o2, &a),
                     -1);
    assert_int_equal(
        ws_pmd_client_accept("permessage-deflate; server_no_context_takeover", &o2, &a), -1);
    assert_int_equal(ws_pmd_client_accept("permessage-deflate; server_max_window_bits=9", &o2, &a),
                     -1);
    assert_int_equal(ws_pmd_client_accept("permessage-deflate; server_no_context_takeover; "
                                          "server_max_window_bits=9; client_max_window_bits=12",
                                          &o2, &a),
                     -1);
    /* server answer from our own negotiation round-trips */
    struct ws_pmd_server_config cfg = {.client_max_window_bits = 10,
                                       .server_no_context_takeover = true};
    struct ws_pmd_params sa;
    assert_int_equal(ws_pmd_server_negotiate(buf, &cfg, &sa), 1);
    char resp[160];
    ws_pmd_format(&sa, resp, sizeof resp);
    assert_int_equal(ws_pmd_client_accept(resp, &offer, &a), 1);
    assert_int_equal(a.client_max_window_bits, 10);
    assert_true(a.server_no_context_takeover);
}

/* ---- codec ---- */

static void inflate_all(struct ws_pmd *p, const uint8_t *in, size_t len, size_t in_step,
                        size_t out_step, uint8_t *out, size_t *out_len, int *code)
{
    size_t n = 0, pos = 0;
    *code = 0;
    do {
        size_t k = len - pos < in_step ? len - pos : in_step;
        bool fin = pos + k == len;
        ws_pmd_inflate_input(p, in + pos, k, fin);
        pos += k;
        for (;;) {
            size_t got = 0;
            int r = ws_pmd_inflate_output(p, out + n, out_step, &got);
            assert_true(got <= out_step);
            n += got;
            if (r == 1) continue;
            if (r != 0) {
                *code = r;
                *out_len = n;
                return;
            }
            break;
        }
    } while (pos < len);
    *out_len = n;
}

static void test_rfc7692_examples(void **state)
{
    (void)state;
    struct ws_pmd_params none = {0};
    struct ws_pmd c;
    ws_pmd_init(&c, &none, WS_ROLE_CLIENT, 1000, -1, 0);
    uint8_t out[64];
    size_t n;
    /* 7.2.3.1 a message compressed in one block */
    const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    assert_int_equal(ws_pmd_inflate_message(&c, hello, sizeof hello, out, sizeof out, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "Hello", 5);
    /* 7.2.3.2 the same again with the LZ77 window shared (context takeover) */
    const uint8_t again[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
    assert_int_equal(ws_pmd_inflate_message(&c, again, sizeof again, out, sizeof out, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "Hello", 5);
    /* 7.2.3.3 a stored (uncompressed) block */
    const uint8_t stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00};
    assert_int_equal(ws_pmd_inflate_message(&c, stored, sizeof stored, out, sizeof out, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "Hello", 5);
    /* 7.2.3.4 BFINAL set: the stream ends, the next message starts anew */
    const uint8_t final[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};
    assert_int_equal(ws_pmd_inflate_message(&c, final, sizeof final, out, sizeof out, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "Hello", 5);
    assert_int_equal(ws_pmd_inflate_message(&c, hello, sizeof hello, out, sizeof out, &n), 0);
    assert_memory_equal(out, "Hello", 5);
    /* the 7.2.3.1 bytes split over two frames, byte-sized output */
    int code;
    inflate_all(&c, hello, sizeof hello, 3, 1, out, &n, &code);
    assert_int_equal(code, 0);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "Hello", 5);
    ws_pmd_free(&c);
    /* our compressor produces the RFC's bytes for a fresh "Hello" */
    struct ws_pmd s;
    ws_pmd_init(&s, &none, WS_ROLE_SERVER, 0, -1, 0);
    uint8_t comp[64];
    assert_int_equal(ws_pmd_compress(&s, (const uint8_t *)"Hello", 5, comp, sizeof comp, &n), 0);
    assert_int_equal(n, sizeof hello);
    assert_memory_equal(comp, hello, sizeof hello);
    /* and the empty message compresses to a single 0x00 */
    assert_int_equal(ws_pmd_compress(&s, NULL, 0, comp, sizeof comp, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(comp[0], 0);
    assert_int_equal(ws_pmd_compress(&s, NULL, 0, comp, sizeof comp, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(comp[0], 0);
    ws_pmd_free(&s);
    /* received: "00" and an empty payload are both the empty message, and
     * the stream stays usable */
    ws_pmd_init(&c, &none, WS_ROLE_CLIENT, 1000, -1, 0);
    assert_int_equal(ws_pmd_inflate_message(&c, hello, sizeof hello, out, sizeof out, &n), 0);
    assert_int_equal(ws_pmd_inflate_message(&c, (const uint8_t *)"", 1, out, sizeof out, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ws_pmd_inflate_message(&c, NULL, 0, out, sizeof out, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ws_pmd_inflate_message(&c, again, sizeof again, out, sizeof out, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "Hello", 5);
    ws_pmd_free(&c);
}

static size_t make_msg(uint8_t *buf, size_t len, unsigned kind, unsigned seed)
{
    srand(seed);
    for (size_t i = 0; i < len; i++) {
        if (kind == 0)
            buf[i] = (uint8_t)rand();
        else if (kind == 1)
            buf[i] = "the quick brown fox jumps over the lazy dog "[i % 44];
        else
            buf[i] = (uint8_t)(rand() % 4 == 0 ? rand() : 'a' + (int)((i / 100) % 26));
    }
    return len;
}

static void test_roundtrip(void **state)
{
    (void)state;
    size_t sizes[] = {0, 1, 5, 100, 1000, 65536, 300000};
    uint8_t *msg = malloc(300000), *comp = malloc(ws_pmd_compress_bound(300000)),
            *out = malloc(300000 + 8192);
    for (int nct = 0; nct < 4; nct++) {
        for (uint8_t bits = 9; bits <= 15; bits += (bits == 9 ? 1 : 5)) {
            struct ws_pmd_params a = {.server_no_context_takeover = nct & 1,
                                      .client_no_context_takeover = (nct >> 1) & 1,
                                      .server_max_window_bits = bits,
                                      .client_max_window_bits = bits};
            struct ws_pmd srv, cli;
            ws_pmd_init(&srv, &a, WS_ROLE_SERVER, 1 << 20, 1, 4);
            ws_pmd_init(&cli, &a, WS_ROLE_CLIENT, 1 << 20, -1, 0);
            for (int round = 0; round < 3; round++) {
                for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
                    for (unsigned kind = 0; kind < 3; kind++) {
                        size_t len = make_msg(msg, sizes[si], kind, (unsigned)(si + round));
                        size_t cl;
                        /* server -> client */
                        assert_int_equal(
                            ws_pmd_compress(&srv, msg, len, comp, ws_pmd_compress_bound(len), &cl),
                            0);
                        if (kind == 1 && len > 1000) assert_true(cl < len / 10);
                        size_t ol;
                        int code;
                        /* whole; tiny pieces (bigger for big messages); medium */
                        bool big = len > 70000;
                        size_t in_step = round == 0   ? cl + 1
                                         : round == 1 ? (big ? 501u : 7u)
                                                      : 1000u;
                        size_t out_step = round == 0   ? 300064u
                                          : round == 1 ? (big ? 997u : 13u)
                                                       : 4096u;
                        inflate_all(&cli, comp, cl, in_step ? in_step : 1, out_step, out, &ol,
                                    &code);
                        assert_int_equal(code, 0);
                        assert_int_equal(ol, len);
                        assert_memory_equal(out, msg, len);
                        /* client -> server */
                        assert_int_equal(
                            ws_pmd_compress(&cli, msg, len, comp, ws_pmd_compress_bound(len), &cl),
                            0);
                        assert_int_equal(ws_pmd_inflate_message(&srv, comp, cl, out, len + 64, &ol),
                                         0);
                        assert_int_equal(ol, len);
                        assert_memory_equal(out, msg, len);
                    }
                }
            }
            ws_pmd_free(&srv);
            ws_pmd_free(&cli);
        }
    }
    free(msg);
    free(comp);
    free(out);
}

/* With no context takeover each message decompresses on its own. */
static void test_no_context_takeover_independent(void **state)
{
    (void)state;
    struct ws_pmd_params a = {.server_no_context_takeover = true};
    struct ws_pmd srv;
    ws_pmd_init(&srv, &a, WS_ROLE_SERVER, 0, -1, 0);
    uint8_t c1[64], c2[64], out[64];
    size_t n1, n2, n;
    assert_int_equal(ws_pmd_compress(&srv, (const uint8_t *)"Hello", 5, c1, sizeof c1, &n1), 0);
    assert_int_equal(ws_pmd_compress(&srv, (const uint8_t *)"Hello", 5, c2, sizeof c2, &n2), 0);
    assert_int_equal(n1, n2);
    assert_memory_equal(c1, c2, n1);
    /* a fresh inflater reads the second message alone */
    struct ws_pmd cli;
    ws_pmd_init(&cli, &a, WS_ROLE_CLIENT, 0, -1, 0);
    assert_int_equal(ws_pmd_inflate_message(&cli, c2, n2, out, sizeof out, &n), 0);
    assert_memory_equal(out, "Hello", 5);
    /* idle release: both sides reset per message, so the zlib state goes
     * and comes back transparently */
    struct ws_pmd_params both = {.server_no_context_takeover = true,
                                 .client_no_context_takeover = true};
    struct ws_pmd ps, pc;
    ws_pmd_init(&ps, &both, WS_ROLE_SERVER, 0, -1, 0);
    ws_pmd_init(&pc, &both, WS_ROLE_CLIENT, 0, -1, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ws_pmd_compress(&ps, (const uint8_t *)"Hello", 5, c1, sizeof c1, &n1), 0);
        assert_non_null(ps.deflater);
        ws_pmd_idle(&ps);
        assert_null(ps.deflater);
        assert_int_equal(ws_pmd_inflate_message(&pc, c1, n1, out, sizeof out, &n), 0);
        assert_int_equal(n, 5);
        assert_non_null(pc.inflater);
        ws_pmd_idle(&pc);
        assert_null(pc.inflater);
    }
    /* mid-message the inflater stays */
    ws_pmd_inflate_input(&pc, c1, 2, false);
    size_t got;
    assert_int_equal(ws_pmd_inflate_output(&pc, out, sizeof out, &got), 0);
    ws_pmd_idle(&pc);
    assert_non_null(pc.inflater);
    ws_pmd_inflate_input(&pc, c1 + 2, n1 - 2, true);
    assert_int_equal(ws_pmd_inflate_output(&pc, out + got, sizeof out - got, &n), 0);
    assert_int_equal(got + n, 5);
    assert_memory_equal(out, "Hello", 5);
    ws_pmd_free(&ps);
    ws_pmd_free(&pc);
    ws_pmd_free(&cli);
    ws_pmd_free(&srv);
    /* with takeover the second one refers back and is shorter */
    struct ws_pmd_params t = {0};
    ws_pmd_init(&srv, &t, WS_ROLE_SERVER, 0, -1, 0);
    assert_int_equal(ws_pmd_compress(&srv, (const uint8_t *)"Hello", 5, c1, sizeof c1, &n1), 0);
    assert_int_equal(ws_pmd_compress(&srv, (const uint8_t *)"Hello", 5, c2, sizeof c2, &n2), 0);
    assert_true(n2 < n1);
    ws_pmd_idle(&srv); /* context takeover: the state must stay */
    assert_non_null(srv.deflater);
    ws_pmd_free(&srv);
}

static void test_bomb_limit(void **state)
{
    (void)state;
    size_t big = 10 << 20;
    uint8_t *zeros = calloc(1, big);
    uint8_t *comp = malloc(ws_pmd_compress_bound(big));
    struct ws_pmd_params a = {0};
    struct ws_pmd s, c;
    ws_pmd_init(&s, &a, WS_ROLE_SERVER, 0, 9, 0);
    size_t cl;
    assert_int_equal(ws_pmd_compress(&s, zeros, big, comp, ws_pmd_compress_bound(big), &cl), 0);
    assert_true(cl < 20000);
    ws_pmd_free(&s);
    /* a 1 MiB bound stops it, having given out at most the bound */
    uint8_t *out = malloc(64 * 1024);
    ws_pmd_init(&c, &a, WS_ROLE_CLIENT, 1 << 20, -1, 0);
    ws_pmd_inflate_input(&c, comp, cl, true);
    size_t total = 0;
    int r;
    for (;;) {
        size_t got;
        r = ws_pmd_inflate_output(&c, out, 64 * 1024, &got);
        total += got;
        if (r != 1) break;
    }
    assert_int_equal(r, WS_CLOSE_TOO_BIG);
    assert_true(total <= (1 << 20));
    assert_non_null(c.error);
    ws_pmd_free(&c);
    /* with a big enough bound it inflates fully (streamed in 64 KiB) */
    ws_pmd_init(&c, &a, WS_ROLE_CLIENT, big, -1, 0);
    ws_pmd_inflate_input(&c, comp, cl, true);
    total = 0;
    for (;;) {
        size_t got;
        r = ws_pmd_inflate_output(&c, out, 64 * 1024, &got);
        for (size_t i = 0; i < got; i++)
            assert_int_equal(out[i], 0);
        total += got;
        if (r != 1) break;
    }
    assert_int_equal(r, 0);
    assert_int_equal(total, big);
    ws_pmd_free(&c);
    /* whole-message mode with a too-small buffer */
    ws_pmd_init(&c, &a, WS_ROLE_CLIENT, 0, -1, 0);
    size_t n;
    assert_int_equal(ws_pmd_inflate_message(&c, comp, cl, out, 64 * 1024, &n), WS_CLOSE_TOO_BIG);
    ws_pmd_free(&c);
    free(out);
    free(zeros);
    free(comp);
}

static void test_corrupt(void **state)
{
    (void)state;
    struct ws_pmd_params a = {0};
    struct ws_pmd c;
    ws_pmd_init(&c, &a, WS_ROLE_CLIENT, 0, -1, 0);
    uint8_t out[256];
    size_t n;
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x12, 0x34};
    assert_int_equal(ws_pmd_inflate_message(&c, junk, sizeof junk, out, sizeof out, &n),
                     WS_CLOSE_INVALID_PAYLOAD);
    assert_non_null(c.error);
    /* a final block without the RFC's extra 0x00: the tail is not needed,
     * and the next message starts a fresh stream */
    const uint8_t fin_only[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    ws_pmd_free(&c);
    ws_pmd_init(&c, &a, WS_ROLE_CLIENT, 0, -1, 0);
    assert_int_equal(ws_pmd_inflate_message(&c, fin_only, sizeof fin_only, out, sizeof out, &n), 0);
    assert_int_equal(n, 5);
    const uint8_t h2[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    assert_int_equal(ws_pmd_inflate_message(&c, h2, sizeof h2, out, sizeof out, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "Hello", 5);
    /* a fresh connection state decodes fine afterwards */
    ws_pmd_free(&c);
    ws_pmd_init(&c, &a, WS_ROLE_CLIENT, 0, -1, 0);
    const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    assert_int_equal(ws_pmd_inflate_message(&c, hello, sizeof hello, out, sizeof out, &n), 0);
    ws_pmd_free(&c);
    /* compress into a too-small buffer */
    struct ws_pmd s;
    ws_pmd_init(&s, &a, WS_ROLE_SERVER, 0, -1, 0);
    uint8_t rnd[1000];
    make_msg(rnd, sizeof rnd, 0, 1);
    errno = 0;
    assert_int_equal(ws_pmd_compress(&s, rnd, sizeof rnd, out, sizeof out, &n), -1);
    assert_int_equal(errno, ENOSPC);
    ws_pmd_free(&s);
}

/* Compressed frames through the decoder: RSV1 accepted when negotiated, the
 * message arrives as compressed chunks, inflated as they come. */
static void test_decoder_integration(void **state)
{
    (void)state;
    struct ws_pmd_params a = {0};
    struct ws_pmd cli, srv;
    ws_pmd_init(&cli, &a, WS_ROLE_CLIENT, 1 << 20, -1, 0);
    ws_pmd_init(&srv, &a, WS_ROLE_SERVER, 1 << 20, -1, 0);
    uint8_t msg[5000], comp[6000], stream[7000], out[5000];
    make_msg(msg, sizeof msg, 2, 9);
    size_t cl;
    assert_int_equal(ws_pmd_compress(&cli, msg, sizeof msg, comp, sizeof comp, &cl), 0);
    /* as two frames: RSV1 on the first only, a ping in between */
    size_t half = cl / 2, n = 0;
    struct ws_frame_header h;
    n += ws_frame_begin(stream + n, &h, WS_ROLE_CLIENT, WS_OP_BINARY, false, WS_RSV1, half);
    ws_mask_copy(stream + n, comp, half, h.mask, 0);
    n += half;
    n += (size_t)ws_control_frame(stream + n, WS_ROLE_CLIENT, WS_OP_PING, "x", 1);
    n += ws_frame_begin(stream + n, &h, WS_ROLE_CLIENT, WS_OP_CONT, true, 0, cl - half);
    ws_mask_copy(stream + n, comp + half, cl - half, h.mask, 0);
    n += cl - half;
    struct ws_decoder_config dc = {
        .role = WS_ROLE_SERVER, .allowed_rsv = WS_RSV1, .binary_only = true};
    struct ws_decoder d;
    ws_decoder_init(&d, &dc);
    size_t got_total = 0;
    int pings = 0, done = 0;
    /* feed in 37-byte reads, keeping unconsumed bytes */
    uint8_t rb[512];
    size_t have = 0, fed = 0;
    while (fed < n || have) {
        size_t k = n - fed < 37 ? n - fed : 37;
        memcpy(rb + have, stream + fed, k);
        have += k;
        fed += k;
        size_t off = 0;
        for (;;) {
            struct ws_event ev;
            off += ws_decoder_feed(&d, rb + off, have - off, &ev);
            if (ev.type == WS_EV_NEED_MORE) break;
            assert_int_not_equal(ev.type, WS_EV_ERROR);
            if (ev.type == WS_EV_CONTROL) {
                pings++;
                continue;
            }
            assert_true(ev.compressed);
            ws_pmd_inflate_input(&srv, ev.data, ev.len, ev.message_end);
            for (;;) {
                size_t got;
                int r = ws_pmd_inflate_output(&srv, out + got_total, 7, &got);
                got_total += got;
                if (r == 0) break;
                assert_int_equal(r, 1);
            }
            if (ev.message_end) done = 1;
        }
        memmove(rb, rb + off, have - off);
        have -= off;
        if (fed == n) break;
    }
    assert_int_equal(pings, 1);
    assert_true(done);
    assert_int_equal(got_total, sizeof msg);
    assert_memory_equal(out, msg, sizeof msg);
    ws_pmd_free(&cli);
    ws_pmd_free(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_negotiate),
        cmocka_unit_test(test_client_accept),
        cmocka_unit_test(test_rfc7692_examples),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_no_context_takeover_independent),
        cmocka_unit_test(test_bomb_limit),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_decoder_integration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
