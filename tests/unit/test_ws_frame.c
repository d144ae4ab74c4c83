/* Unit tests for lib/ws.c: RFC 6455 examples, every frame type, every split
 * point, fragmentation with interleaved control frames, every protocol error,
 * close codes, size limits, masking against a naive implementation, UTF-8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ws.h"

/* ---- helpers ---- */

/* Naive reference encoder: independent of ws_frame_header_write(). */
static size_t naive_frame(uint8_t *out, unsigned op, int fin, unsigned rsv, int masked,
                          const uint8_t key[4], const void *payload, size_t len)
{
    size_t n = 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | op);
    uint8_t m = masked ? 0x80 : 0;
    if (len < 126) {
        out[n++] = (uint8_t)(m | len);
    } else if (len < 65536) {
        out[n++] = m | 126;
        out[n++] = (uint8_t)(len / 256);
        out[n++] = (uint8_t)(len % 256);
    } else {
        out[n++] = m | 127;
        unsigned long long l = len;
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)(l >> (8 * i));
    }
    if (masked)
        for (int i = 0; i < 4; i++)
            out[n++] = key[i];
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        out[n + i] = masked ? (uint8_t)(p[i] ^ key[i % 4]) : p[i];
    return n + len;
}

static const uint8_t KEY[4] = {0x37, 0xfa, 0x21, 0x3d};

/* A growable byte string. */
struct bs {
    uint8_t *p;
    size_t len, cap;
};

static void bs_add(struct bs *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        b->cap = (b->len + len + 1) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (len) memcpy(b->p + b->len, data, len);
    b->len += len;
}

static void bs_fmt(struct bs *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    bs_add(b, tmp, (size_t)n);
}

/* Run a stream through a decoder the way a connection does: a read buffer
 * that receives the input in pieces (chunk sizes from `cuts`, a list of
 * cumulative split offsets, or every `step` bytes), keeps unconsumed bytes,
 * and records a transcript of whole messages, control frames and errors. The
 * transcript must not depend on how the input was cut. */
static void run_stream(const struct ws_decoder_config *cfg, const uint8_t *in, size_t len,
                       size_t step, const size_t *cuts, size_t ncuts, struct bs *out)
{
    struct ws_decoder d;
    ws_decoder_init(&d, cfg);
    size_t cap = len + WS_MIN_READ_BUFFER;
    uint8_t *rb = malloc(cap);
    assert_non_null(rb);
    struct bs msg = {0};
    size_t have = 0, fed = 0, cut_i = 0;
    int msg_open = 0, chunks = 0;
    while (fed < len) {
        size_t next;
        if (cuts)
            next = cut_i < ncuts ? cuts[cut_i++] : len;
        else
            next = fed + step;
        if (next > len) next = len;
        if (next <= fed) continue;
        memcpy(rb + have, in + fed, next - fed);
        have += next - fed;
        fed = next;
        size_t off = 0;
        for (;;) {
            struct ws_event ev;
            size_t n = ws_decoder_feed(&d, rb + off, have - off, &ev);
            assert_true(n <= have - off);
            off += n;
            if (ev.type == WS_EV_NEED_MORE) break;
            if (ev.type == WS_EV_ERROR) {
                bs_fmt(out, "E%u;", ev.close_code);
                assert_non_null(ev.error);
                /* sticky */
                struct ws_event ev2;
                assert_int_equal(ws_decoder_feed(&d, rb + off, have - off, &ev2), 0);
                assert_int_equal(ev2.type, WS_EV_ERROR);
                assert_int_equal(ev2.close_code, ev.close_code);
                free(rb);
                free(msg.p);
                return;
            }
            if (ev.type == WS_EV_CONTROL) {
                bs_fmt(out, "C%u:%zu:", ev.opcode, ev.len);
                bs_add(out, ev.data, ev.len);
                if (ev.opcode == WS_OP_CLOSE) {
                    bs_fmt(out, "/%u/", ev.close_code);
                    bs_add(out, ev.reason, ev.reason_len);
                }
                bs_add(out, ";", 1);
                continue;
            }
            assert_int_equal(ev.type, WS_EV_DATA);
            assert_true(ev.len == 0 || ev.data != NULL);
            if (ev.message_start) {
                assert_false(msg_open);
                msg_open = 1;
                msg.len = 0;
                chunks = 0;
            } else {
                assert_true(msg_open);
            }
            chunks++;
            bs_add(&msg, ev.data, ev.len);
            if (ev.message_end) {
                assert_true(ev.frame_end);
                bs_fmt(out, "M%u%s:%zu:", ev.opcode, ev.compressed ? "z" : "", msg.len);
                bs_add(out, msg.p, msg.len);
                bs_add(out, ";", 1);
                msg_open = 0;
            }
        }
        memmove(rb, rb + off, have - off);
        have -= off;
        assert_true(have < WS_MIN_READ_BUFFER);
    }
    if (have) bs_fmt(out, "R%zu;", have); /* incomplete tail */
    if (msg_open) bs_fmt(out, "O%zu;", msg.len);
    free(rb);
    free(msg.p);
}

static void transcript(const struct ws_decoder_config *cfg, const uint8_t *in, size_t len,
                       size_t step, struct bs *out)
{
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, in, len);
    run_stream(cfg, copy, len, step, NULL, 0, out);
    free(copy);
}

/* Check that the stream gives `expect` whole, byte by byte, and (when
 * every_split) split in two at every offset and in three at pairs of
 * offsets near frame boundaries. */
static void check_stream(const struct ws_decoder_config *cfg, const uint8_t *in, size_t len,
                         const char *expect, size_t expect_len, int every_split)
{
    struct bs whole = {0}, bytes = {0};
    transcript(cfg, in, len, len ? len : 1, &whole);
    if (expect) {
        if (whole.len != expect_len || memcmp(whole.p, expect, expect_len) != 0)
            fail_msg("transcript %.*s != %.*s", (int)whole.len, (char *)whole.p, (int)expect_len,
                     expect);
    }
    transcript(cfg, in, len, 1, &bytes);
    assert_int_equal(bytes.len, whole.len);
    assert_memory_equal(bytes.p, whole.p, whole.len);
    if (every_split) {
        uint8_t *copy = malloc(len ? len : 1);
        for (size_t s = 1; s < len; s++) {
            struct bs t = {0};
            memcpy(copy, in, len);
            size_t cuts[1] = {s};
            run_stream(cfg, copy, len, 0, cuts, 1, &t);
            if (t.len != whole.len || memcmp(t.p, whole.p, t.len) != 0)
                fail_msg("split at %zu: %.*s != %.*s", s, (int)t.len, (char *)t.p, (int)whole.len,
                         (char *)whole.p);
            free(t.p);
        }
        /* three pieces, all pairs of split points (streams are small) */
        if (len <= 400) {
            for (size_t a = 1; a < len; a++)
                for (size_t b = a + 1; b < len; b += 3) {
                    struct bs t = {0};
                    memcpy(copy, in, len);
                    size_t cuts[2] = {a, b};
                    run_stream(cfg, copy, len, 0, cuts, 2, &t);
                    assert_int_equal(t.len, whole.len);
                    assert_memory_equal(t.p, whole.p, t.len);
                    free(t.p);
                }
        }
        free(copy);
    }
    free(whole.p);
    free(bytes.p);
}

static const struct ws_decoder_config SERVER = {.role = WS_ROLE_SERVER};
static const struct ws_decoder_config CLIENT = {.role = WS_ROLE_CLIENT};

#define EXPECT(s) s, sizeof(s) - 1

/* ---- RFC 6455 section 5.7 examples ---- */

static void test_rfc_single_unmasked(void **state)
{
    (void)state;
    const uint8_t f[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    check_stream(&CLIENT, f, sizeof f, EXPECT("M1:5:Hello;"), 1);
    struct ws_frame_header h;
    uint16_t cc;
    assert_int_equal(ws_frame_parse(f, sizeof f, &h, &cc), WS_PARSE_OK);
    assert_int_equal(h.header_len, 2);
    assert_int_equal(h.payload_len, 5);
    assert_int_equal(h.fin, 1);
    assert_int_equal(h.opcode, WS_OP_TEXT);
    assert_int_equal(h.masked, 0);
    assert_int_equal(h.rsv, 0);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(ws_frame_parse(f, i, &h, &cc), WS_PARSE_MORE);
    /* serializer produces the same bytes */
    uint8_t out[WS_MAX_HEADER];
    struct ws_frame_header w = {.fin = 1, .opcode = WS_OP_TEXT, .payload_len = 5};
    assert_int_equal(ws_frame_header_write(out, &w), 2);
    assert_memory_equal(out, f, 2);
    assert_int_equal(w.header_len, 2);
}

static void test_rfc_single_masked(void **state)
{
    (void)state;
    const uint8_t f[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    check_stream(&SERVER, f, sizeof f, EXPECT("M1:5:Hello;"), 1);
    struct ws_frame_header h;
    assert_int_equal(ws_frame_parse(f, sizeof f, &h, NULL), WS_PARSE_OK);
    assert_int_equal(h.header_len, 6);
    assert_int_equal(h.masked, 1);
    assert_memory_equal(h.mask, KEY, 4);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(ws_frame_parse(f, i, &h, NULL), WS_PARSE_MORE);
    uint8_t out[WS_MAX_HEADER + 5];
    struct ws_frame_header w = {.fin = 1, .opcode = WS_OP_TEXT, .payload_len = 5, .masked = 1};
    memcpy(w.mask, KEY, 4);
    size_t hl = ws_frame_header_write(out, &w);
    assert_int_equal(hl, 6);
    assert_int_equal(ws_mask_copy(out + hl, (const uint8_t *)"Hello", 5, w.mask, 0), 1);
    assert_memory_equal(out, f, sizeof f);
}

static void test_rfc_fragmented(void **state)
{
    (void)state;
    const uint8_t f[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
    check_stream(&CLIENT, f, sizeof f, EXPECT("M1:5:Hello;"), 1);
    /* the event flags of the two frames, fed whole */
    uint8_t b[sizeof f];
    memcpy(b, f, sizeof f);
    struct ws_decoder d;
    struct ws_event ev;
    ws_decoder_init(&d, &CLIENT);
    size_t n = ws_decoder_feed(&d, b, sizeof b, &ev);
    assert_int_equal(n, 5);
    assert_int_equal(ev.type, WS_EV_DATA);
    assert_true(ev.message_start && ev.frame_end && !ev.message_end);
    assert_true(ws_decoder_in_message(&d));
    n = ws_decoder_feed(&d, b + 5, sizeof b - 5, &ev);
    assert_int_equal(n, 4);
    assert_true(!ev.message_start && ev.frame_end && ev.message_end);
    assert_int_equal(ev.opcode, WS_OP_TEXT);
    assert_memory_equal(ev.data, "lo", 2);
    assert_false(ws_decoder_in_message(&d));
    n = ws_decoder_feed(&d, b + 9, 0, &ev);
    assert_int_equal(n, 0);
    assert_int_equal(ev.type, WS_EV_NEED_MORE);
}

static void test_rfc_ping_pong(void **state)
{
    (void)state;
    const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    check_stream(&CLIENT, ping, sizeof ping, EXPECT("C9:5:Hello;"), 1);
    const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    check_stream(&SERVER, pong, sizeof pong, EXPECT("C10:5:Hello;"), 1);
    /* builder: unmasked ping from a server is the RFC's bytes */
    uint8_t out[WS_MAX_CONTROL_FRAME];
    assert_int_equal(ws_control_frame(out, WS_ROLE_SERVER, WS_OP_PING, "Hello", 5), 7);
    assert_memory_equal(out, ping, 7);
    /* a client's pong is masked with a random key and decodes back */
    ssize_t n = ws_control_frame(out, WS_ROLE_CLIENT, WS_OP_PONG, "Hello", 5);
    assert_int_equal(n, 11);
    assert_int_equal(out[0], 0x8a);
    assert_int_equal(out[1], 0x85);
    check_stream(&SERVER, out, (size_t)n, EXPECT("C10:5:Hello;"), 0);
    /* empty ping */
    n = ws_control_frame(out, WS_ROLE_CLIENT, WS_OP_PING, NULL, 0);
    assert_int_equal(n, 6);
    check_stream(&SERVER, out, (size_t)n, EXPECT("C9:0:;"), 1);
    /* limits */
    uint8_t big[126] = {0};
    assert_int_equal(ws_control_frame(out, WS_ROLE_SERVER, WS_OP_PING, big, 126), -1);
    assert_int_equal(ws_control_frame(out, WS_ROLE_SERVER, WS_OP_BINARY, big, 1), -1);
    assert_int_equal(ws_control_frame(out, WS_ROLE_CLIENT, WS_OP_PING, big, 125), 131);
}

static void test_rfc_256_and_64k(void **state)
{
    (void)state;
    size_t sizes[] = {125, 126, 127, 256, 65535, 65536, 70000};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        size_t len = sizes[si];
        uint8_t *payload = malloc(len), *f = malloc(len + 14);
        for (size_t i = 0; i < len; i++)
            payload[i] = (uint8_t)(i * 7 + 3);
        for (int masked = 0; masked < 2; masked++) {
            size_t n = naive_frame(f, WS_OP_BINARY, 1, 0, masked, KEY, payload, len);
            if (len == 256 && !masked) {
                const uint8_t h[] = {0x82, 0x7E, 0x01, 0x00};
                assert_memory_equal(f, h, 4);
            }
            if (len == 65536 && !masked) {
                const uint8_t h[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
                assert_memory_equal(f, h, 10);
            }
            struct ws_frame_header h;
            assert_int_equal(ws_frame_parse(f, n, &h, NULL), WS_PARSE_OK);
            assert_int_equal(h.payload_len, len);
            assert_int_equal(h.header_len, n - len);
            assert_int_equal(ws_frame_header_size(len, masked), n - len);
            /* serializer agrees with the naive encoder */
            uint8_t hb[WS_MAX_HEADER];
            struct ws_frame_header w = {
                .fin = 1, .opcode = WS_OP_BINARY, .payload_len = len, .masked = (uint8_t)masked};
            memcpy(w.mask, KEY, 4);
            assert_int_equal(ws_frame_header_write(hb, &w), n - len);
            assert_memory_equal(hb, f, n - len);

            struct bs expect = {0};
            bs_fmt(&expect, "M2:%zu:", len);
            bs_add(&expect, payload, len);
            bs_add(&expect, ";", 1);
            check_stream(masked ? &SERVER : &CLIENT, f, n, (char *)expect.p, expect.len,
                         len <= 256);
            /* a few odd chunkings of the big ones */
            size_t steps[] = {3, 100, 4093};
            for (size_t k = 0; k < 3; k++) {
                struct bs t = {0};
                transcript(masked ? &SERVER : &CLIENT, f, n, steps[k], &t);
                assert_int_equal(t.len, expect.len);
                assert_memory_equal(t.p, expect.p, t.len);
                free(t.p);
            }
            free(expect.p);
        }
        free(payload);
        free(f);
    }
}

/* ---- every frame type in one stream, split everywhere ---- */

static size_t build_mixed(uint8_t *f, int masked)
{
    size_t n = 0;
    uint8_t big[200];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)i;
    n += naive_frame(f + n, WS_OP_TEXT, 1, 0, masked, KEY, "Hi", 2);
    n += naive_frame(f + n, WS_OP_BINARY, 1, 0, masked, KEY, "\x00\x01\x02", 3);
    n += naive_frame(f + n, WS_OP_BINARY, 1, 0, masked, KEY, "", 0);
    n += naive_frame(f + n, WS_OP_PING, 1, 0, masked, KEY, "p", 1);
    n += naive_frame(f + n, WS_OP_BINARY, 0, 0, masked, KEY, "ab", 2);
    n += naive_frame(f + n, WS_OP_PONG, 1, 0, masked, KEY, "", 0);
    n += naive_frame(f + n, WS_OP_CONT, 0, 0, masked, KEY, "", 0);
    n += naive_frame(f + n, WS_OP_PING, 1, 0, masked, KEY, "q", 1);
    n += naive_frame(f + n, WS_OP_CONT, 0, 0, masked, KEY, big, 200);
    n += naive_frame(f + n, WS_OP_CONT, 1, 0, masked, KEY, "cd", 2);
    n += naive_frame(f + n, WS_OP_TEXT, 0, 0, masked, KEY, "\xe2\x82", 2); /* € split */
    n += naive_frame(f + n, WS_OP_CONT, 1, 0, masked, KEY, "\xac", 1);
    n += naive_frame(f + n, WS_OP_CLOSE, 1, 0, masked, KEY,
                     "\x03\xe8"
                     "bye",
                     5);
    return n;
}

static void mixed_expect(struct bs *e)
{
    uint8_t big[200];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)i;
    bs_fmt(e, "M1:2:Hi;M2:3:");
    bs_add(e, "\x00\x01\x02", 3);
    bs_fmt(e, ";M2:0:;C9:1:p;C10:0:;C9:1:q;M2:204:ab");
    bs_add(e, big, 200);
    bs_fmt(e, "cd;M1:3:\xe2\x82\xac;C8:5:\x03\xe8"
              "bye/1000/bye;");
}

static void test_mixed_every_split(void **state)
{
    (void)state;
    uint8_t f[1024];
    struct bs e = {0};
    mixed_expect(&e);
    size_t n = build_mixed(f, 1);
    check_stream(&SERVER, f, n, (char *)e.p, e.len, 1);
    n = build_mixed(f, 0);
    check_stream(&CLIENT, f, n, (char *)e.p, e.len, 1);
    free(e.p);
}

/* Event-level check: payload chunks are delivered as they arrive (before the
 * frame is complete) with the right flags, in place. */
static void test_streaming_chunks(void **state)
{
    (void)state;
    uint8_t payload[1000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i ^ 0x5a);
    uint8_t f[1100];
    size_t n = naive_frame(f, WS_OP_BINARY, 1, 0, 1, KEY, payload, sizeof payload);
    struct ws_decoder d;
    ws_decoder_init(&d, &SERVER);
    struct ws_event ev;
    /* first 2 bytes: nothing consumed */
    assert_int_equal(ws_decoder_feed(&d, f, 2, &ev), 0);
    assert_int_equal(ev.type, WS_EV_NEED_MORE);
    /* header only: header consumed, need payload */
    assert_int_equal(ws_decoder_feed(&d, f, 8, &ev), 8);
    assert_int_equal(ev.type, WS_EV_NEED_MORE);
    /* 3 bytes of payload */
    assert_int_equal(ws_decoder_feed(&d, f + 8, 3, &ev), 3);
    assert_int_equal(ev.type, WS_EV_DATA);
    assert_true(ev.message_start && !ev.frame_end && !ev.message_end);
    assert_ptr_equal(ev.data, f + 8);
    assert_memory_equal(ev.data, payload, 3);
    /* the rest plus a following ping: only the frame's bytes are consumed */
    size_t m = naive_frame(f + n, WS_OP_PING, 1, 0, 1, KEY, "x", 1);
    assert_int_equal(ws_decoder_feed(&d, f + 11, n + m - 11, &ev), n - 11);
    assert_int_equal(ev.type, WS_EV_DATA);
    assert_true(!ev.message_start && ev.frame_end && ev.message_end);
    assert_int_equal(ev.len, sizeof payload - 3);
    assert_memory_equal(ev.data, payload + 3, sizeof payload - 3);
    assert_int_equal(ws_decoder_feed(&d, f + n, m, &ev), m);
    assert_int_equal(ev.type, WS_EV_CONTROL);
    assert_int_equal(ev.opcode, WS_OP_PING);
    assert_memory_equal(ev.data, "x", 1);
}

/* Random frames, random chunkings: transcripts agree. */
static void test_random_streams(void **state)
{
    (void)state;
    srand(12345);
    uint8_t *f = malloc(1 << 20);
    for (int iter = 0; iter < 200; iter++) {
        int masked = iter & 1;
        size_t n = 0;
        int in_msg = 0;
        for (int k = 0; k < 20; k++) {
            uint8_t key[4];
            for (int i = 0; i < 4; i++)
                key[i] = (uint8_t)rand();
            int r = rand() % 10;
            if (r < 2) {
                uint8_t p[125];
                size_t l = (size_t)rand() % 126;
                for (size_t i = 0; i < l; i++)
                    p[i] = (uint8_t)rand();
                n += naive_frame(f + n, r ? WS_OP_PONG : WS_OP_PING, 1, 0, masked, key, p, l);
                continue;
            }
            size_t l = (size_t)rand() % (rand() % 4 == 0 ? 70000 : 300);
            uint8_t *p = malloc(l + 1);
            for (size_t i = 0; i < l; i++)
                p[i] = (uint8_t)rand();
            int fin = rand() % 3 != 0;
            unsigned op = in_msg ? WS_OP_CONT : WS_OP_BINARY;
            n += naive_frame(f + n, op, fin, 0, masked, key, p, l);
            in_msg = !fin;
            free(p);
        }
        const struct ws_decoder_config *cfg = masked ? &SERVER : &CLIENT;
        struct bs whole = {0};
        transcript(cfg, f, n, n, &whole);
        size_t steps[] = {1 + (size_t)rand() % 7, 1 + (size_t)rand() % 500, 4096, 65536};
        for (size_t s = 0; s < 4; s++) {
            struct bs t = {0};
            transcript(cfg, f, n, steps[s], &t);
            assert_int_equal(t.len, whole.len);
            assert_memory_equal(t.p, whole.p, t.len);
            free(t.p);
        }
        free(whole.p);
    }
    free(f);
}

/* ---- fragmentation and interleaved control frames ---- */

static void test_fragmented_interleaved(void **state)
{
    (void)state;
    uint8_t f[256];
    size_t n = 0;
    n += naive_frame(f + n, WS_OP_TEXT, 0, 0, 1, KEY, "Hel", 3);
    n += naive_frame(f + n, WS_OP_PING, 1, 0, 1, KEY, "1", 1);
    n += naive_frame(f + n, WS_OP_CONT, 0, 0, 1, KEY, "l", 1);
    n += naive_frame(f + n, WS_OP_PONG, 1, 0, 1, KEY, "2", 1);
    n += naive_frame(f + n, WS_OP_CLOSE, 1, 0, 1, KEY, "\x03\xe9", 2);
    check_stream(&SERVER, f, n, EXPECT("C9:1:1;C10:1:2;C8:2:\x03\xe9/1001/;O4;"), 1);
    n = 0;
    n += naive_frame(f + n, WS_OP_BINARY, 0, 0, 1, KEY, "a", 1);
    n += naive_frame(f + n, WS_OP_PING, 1, 0, 1, KEY, "", 0);
    n += naive_frame(f + n, WS_OP_CONT, 0, 0, 1, KEY, "b", 1);
    n += naive_frame(f + n, WS_OP_CONT, 1, 0, 1, KEY, "c", 1);
    n += naive_frame(f + n, WS_OP_TEXT, 1, 0, 1, KEY, "d", 1);
    check_stream(&SERVER, f, n, EXPECT("C9:0:;M2:3:abc;M1:1:d;"), 1);
}

/* ---- protocol errors ---- */

static void expect_error(const struct ws_decoder_config *cfg, const uint8_t *f, size_t n,
                         unsigned code, const char *prefix)
{
    struct bs e = {0};
    bs_fmt(&e, "%sE%u;", prefix, code);
    check_stream(cfg, f, n, (char *)e.p, e.len, 1);
    free(e.p);
}

static void test_errors_masking(void **state)
{
    (void)state;
    uint8_t f[64];
    size_t n = naive_frame(f, WS_OP_BINARY, 1, 0, 0, KEY, "x", 1);
    expect_error(&SERVER, f, n, 1002, "");
    n = naive_frame(f, WS_OP_PING, 1, 0, 0, KEY, "", 0);
    expect_error(&SERVER, f, n, 1002, "");
    n = naive_frame(f, WS_OP_BINARY, 1, 0, 1, KEY, "x", 1);
    expect_error(&CLIENT, f, n, 1002, "");
    /* error after a good frame: the good one is delivered first */
    n = naive_frame(f, WS_OP_BINARY, 1, 0, 1, KEY, "ok", 2);
    n += naive_frame(f + n, WS_OP_BINARY, 1, 0, 0, KEY, "x", 1);
    expect_error(&SERVER, f, n, 1002, "M2:2:ok;");
}

static void test_errors_rsv(void **state)
{
    (void)state;
    uint8_t f[64];
    for (unsigned rsv = 1; rsv < 8; rsv++) {
        size_t n = naive_frame(f, WS_OP_BINARY, 1, rsv, 1, KEY, "x", 1);
        expect_error(&SERVER, f, n, 1002, "");
    }
    struct ws_decoder_config pmd = {.role = WS_ROLE_SERVER, .allowed_rsv = WS_RSV1};
    size_t n = naive_frame(f, WS_OP_BINARY, 1, 4, 1, KEY, "x", 1);
    check_stream(&pmd, f, n, EXPECT("M2z:1:x;"), 1);
    n = naive_frame(f, WS_OP_BINARY, 1, 2, 1, KEY, "x", 1);
    expect_error(&pmd, f, n, 1002, "");
    /* RSV1 on a continuation frame or a control frame */
    n = naive_frame(f, WS_OP_BINARY, 0, 4, 1, KEY, "x", 1);
    n += naive_frame(f + n, WS_OP_CONT, 1, 4, 1, KEY, "y", 1);
    expect_error(&pmd, f, n, 1002, "");
    n = naive_frame(f, WS_OP_PING, 1, 4, 1, KEY, "", 0);
    expect_error(&pmd, f, n, 1002, "");
    /* compressed flag carries through continuation frames */
    n = naive_frame(f, WS_OP_BINARY, 0, 4, 1, KEY, "x", 1);
    n += naive_frame(f + n, WS_OP_CONT, 1, 0, 1, KEY, "y", 1);
    check_stream(&pmd, f, n, EXPECT("M2z:2:xy;"), 1);
}

static void test_errors_opcodes(void **state)
{
    (void)state;
    unsigned bad[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint8_t f[16];
        size_t n = naive_frame(f, bad[i], 1, 0, 1, KEY, "x", 1);
        expect_error(&SERVER, f, n, 1002, "");
        uint16_t cc = 0;
        struct ws_frame_header h;
        assert_int_equal(ws_frame_parse(f, n, &h, &cc), WS_PARSE_ERROR);
        assert_int_equal(cc, 1002);
    }
}

static void test_errors_control(void **state)
{
    (void)state;
    uint8_t f[512], p[200] = {0};
    /* control payload > 125 (both 126-form and 7-bit 126) */
    size_t n = naive_frame(f, WS_OP_PING, 1, 0, 1, KEY, p, 126);
    expect_error(&SERVER, f, n, 1002, "");
    n = naive_frame(f, WS_OP_CLOSE, 1, 0, 1, KEY, p, 200);
    expect_error(&SERVER, f, n, 1002, "");
    /* fragmented control */
    n = naive_frame(f, WS_OP_PING, 0, 0, 1, KEY, "a", 1);
    expect_error(&SERVER, f, n, 1002, "");
    n = naive_frame(f, WS_OP_CLOSE, 0, 0, 1, KEY, "", 0);
    expect_error(&SERVER, f, n, 1002, "");
}

static void test_errors_fragmentation(void **state)
{
    (void)state;
    uint8_t f[64];
    size_t n = naive_frame(f, WS_OP_CONT, 1, 0, 1, KEY, "x", 1);
    expect_error(&SERVER, f, n, 1002, "");
    n = naive_frame(f, WS_OP_TEXT, 0, 0, 1, KEY, "x", 1);
    n += naive_frame(f + n, WS_OP_TEXT, 1, 0, 1, KEY, "y", 1);
    expect_error(&SERVER, f, n, 1002, "");
    n = naive_frame(f, WS_OP_BINARY, 0, 0, 1, KEY, "x", 1);
    n += naive_frame(f + n, WS_OP_BINARY, 0, 0, 1, KEY, "y", 1);
    expect_error(&SERVER, f, n, 1002, "");
    /* a finished message, then a stray continuation */
    n = naive_frame(f, WS_OP_BINARY, 1, 0, 1, KEY, "x", 1);
    n += naive_frame(f + n, WS_OP_CONT, 1, 0, 1, KEY, "y", 1);
    expect_error(&SERVER, f, n, 1002, "M2:1:x;");
}

static void test_errors_length(void **state)
{
    (void)state;
    uint8_t f[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    expect_error(&SERVER, f, sizeof f, 1002, "");
    /* largest legal length parses (payload need not be there) */
    uint8_t g[] = {0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    struct ws_frame_header h;
    assert_int_equal(ws_frame_parse(g, sizeof g, &h, NULL), WS_PARSE_OK);
    assert_int_equal(h.payload_len, 0x7fffffffffffffffull);
    /* non-minimal length encodings are accepted (sender-side rule) */
    uint8_t m[] = {0x82, 0x7e, 0x00, 0x01, 'z'};
    check_stream(&CLIENT, m, sizeof m, EXPECT("M2:1:z;"), 1);
}

static void test_binary_only_and_utf8(void **state)
{
    (void)state;
    uint8_t f[64];
    struct ws_decoder_config bo = {.role = WS_ROLE_SERVER, .binary_only = true};
    size_t n = naive_frame(f, WS_OP_TEXT, 1, 0, 1, KEY, "hi", 2);
    expect_error(&bo, f, n, 1003, "");
    n = naive_frame(f, WS_OP_BINARY, 1, 0, 1, KEY, "\xff", 1);
    check_stream(&bo, f, n, EXPECT("M2:1:\xff;"), 1);
    /* invalid UTF-8 in text: 1007, also when split over fragments */
    n = naive_frame(f, WS_OP_TEXT, 1, 0, 1, KEY, "a\xff", 2);
    expect_error(&SERVER, f, n, 1007, "");
    n = naive_frame(f, WS_OP_TEXT, 1, 0, 1, KEY, "\xe2\x82", 2); /* truncated */
    expect_error(&SERVER, f, n, 1007, "");
    n = naive_frame(f, WS_OP_TEXT, 0, 0, 1, KEY, "\xe2", 1);
    n += naive_frame(f + n, WS_OP_CONT, 1, 0, 1, KEY, "\x28", 1);
    expect_error(&SERVER, f, n, 1007, "");
    struct ws_decoder_config nocheck = {.role = WS_ROLE_SERVER, .no_utf8_check = true};
    n = naive_frame(f, WS_OP_TEXT, 1, 0, 1, KEY, "a\xff", 2);
    check_stream(&nocheck, f, n, EXPECT("M1:2:a\xff;"), 1);
}

static void test_close_codes(void **state)
{
    (void)state;
    unsigned good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                       1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    unsigned bad[] = {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        assert_true(ws_close_code_valid(good[i]));
        uint8_t out[WS_MAX_CONTROL_FRAME];
        ssize_t n = ws_close_frame(out, WS_ROLE_CLIENT, (uint16_t)good[i], "why");
        assert_int_equal(n, 6 + 5);
        struct bs e = {0};
        bs_fmt(&e, "C8:5:%c%cwhy/%u/why;", good[i] >> 8, good[i] & 0xff, good[i]);
        check_stream(&SERVER, out, (size_t)n, (char *)e.p, e.len, 1);
        free(e.p);
        assert_string_not_equal(ws_close_code_str(good[i]), "unknown");
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_false(ws_close_code_valid(bad[i]));
        uint8_t out[WS_MAX_CONTROL_FRAME];
        assert_int_equal(ws_close_frame(out, WS_ROLE_SERVER, (uint16_t)bad[i], NULL),
                         bad[i] == 0 ? 2 : -1);
        uint8_t p[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        uint8_t f[16];
        size_t n = naive_frame(f, WS_OP_CLOSE, 1, 0, 0, KEY, p, 2);
        expect_error(&CLIENT, f, n, 1002, "");
    }
    /* empty close = 1005 locally; 1-byte body is an error */
    uint8_t f[16];
    size_t n = naive_frame(f, WS_OP_CLOSE, 1, 0, 0, KEY, "", 0);
    check_stream(&CLIENT, f, n, EXPECT("C8:0:/1005/;"), 1);
    n = naive_frame(f, WS_OP_CLOSE, 1, 0, 0, KEY, "\x03", 1);
    expect_error(&CLIENT, f, n, 1002, "");
    /* reason must be UTF-8 */
    n = naive_frame(f, WS_OP_CLOSE, 1, 0, 0, KEY, "\x03\xe8\xc0\xaf", 4);
    expect_error(&CLIENT, f, n, 1007, "");
    /* any frame after a close is an error */
    n = naive_frame(f, WS_OP_CLOSE, 1, 0, 0, KEY, "\x03\xe8", 2);
    n += naive_frame(f + n, WS_OP_PING, 1, 0, 0, KEY, "", 0);
    expect_error(&CLIENT, f, n, 1002, "C8:2:\x03\xe8/1000/;");
    /* parse API */
    uint16_t code;
    const uint8_t *reason;
    size_t rlen;
    assert_int_equal(
        ws_close_payload_parse((const uint8_t *)"\x0f\xa0ok", 4, &code, &reason, &rlen), 0);
    assert_int_equal(code, 4000);
    assert_int_equal(rlen, 2);
    assert_memory_equal(reason, "ok", 2);
    assert_int_equal(ws_close_payload_parse((const uint8_t *)"", 0, &code, &reason, &rlen), 0);
    assert_int_equal(code, 1005);
    assert_int_equal(rlen, 0);
}

static void test_close_reason_truncation(void **state)
{
    (void)state;
    char reason[300];
    /* 122 ASCII + a 3-byte character straddling the 123-byte limit */
    memset(reason, 'a', 122);
    memcpy(reason + 122, "\xe2\x82\xac", 3);
    reason[125] = 0;
    uint8_t p[WS_MAX_CONTROL_PAYLOAD];
    ssize_t n = ws_close_payload_build(p, 1000, reason);
    assert_int_equal(n, 2 + 122);
    assert_true(ws_utf8_valid(p + 2, (size_t)n - 2));
    memset(reason, 'b', 299);
    reason[299] = 0;
    n = ws_close_payload_build(p, 1000, reason);
    assert_int_equal(n, 125);
    uint8_t out[WS_MAX_CONTROL_FRAME];
    n = ws_close_frame(out, WS_ROLE_CLIENT, 1000, reason);
    assert_int_equal(n, WS_MAX_CONTROL_FRAME);
    struct bs t = {0};
    transcript(&SERVER, out, (size_t)n, 1, &t);
    assert_true(t.len > 0 && t.p[0] == 'C');
    free(t.p);
    /* code 0: empty body regardless of reason */
    assert_int_equal(ws_close_payload_build(p, 0, "x"), 0);
}

static void test_size_limits(void **state)
{
    (void)state;
    uint8_t f[4096], p[1000] = {0};
    struct ws_decoder_config lim = {
        .role = WS_ROLE_SERVER, .max_frame_size = 100, .max_message_size = 250};
    size_t n = naive_frame(f, WS_OP_BINARY, 1, 0, 1, KEY, p, 100);
    struct bs e = {0};
    bs_fmt(&e, "M2:100:");
    bs_add(&e, p, 100);
    bs_add(&e, ";", 1);
    check_stream(&lim, f, n, (char *)e.p, e.len, 0);
    free(e.p);
    n = naive_frame(f, WS_OP_BINARY, 1, 0, 1, KEY, p, 101);
    expect_error(&lim, f, n, 1009, "");
    /* the error comes from the header alone: no need to wait for payload */
    struct ws_decoder d;
    struct ws_event ev;
    ws_decoder_init(&d, &lim);
    uint8_t huge[] = {0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4};
    ws_decoder_feed(&d, huge, sizeof huge, &ev);
    assert_int_equal(ev.type, WS_EV_ERROR);
    assert_int_equal(ev.close_code, 1009);
    /* message limit over fragments: 100 + 100 ok, + 51 too big */
    n = naive_frame(f, WS_OP_BINARY, 0, 0, 1, KEY, p, 100);
    n += naive_frame(f + n, WS_OP_CONT, 0, 0, 1, KEY, p, 100);
    n += naive_frame(f + n, WS_OP_CONT, 1, 0, 1, KEY, p, 51);
    expect_error(&lim, f, n, 1009, "");
    n = naive_frame(f, WS_OP_BINARY, 0, 0, 1, KEY, p, 100);
    n += naive_frame(f + n, WS_OP_CONT, 0, 0, 1, KEY, p, 100);
    n += naive_frame(f + n, WS_OP_CONT, 1, 0, 1, KEY, p, 50);
    n += naive_frame(f + n, WS_OP_BINARY, 1, 0, 1, KEY, p, 100); /* counter resets */
    struct bs t = {0};
    transcript(&lim, f, n, 7, &t);
    assert_true(memchr(t.p, 'E', t.len) == NULL);
    free(t.p);
    /* control frames don't count towards the message size */
    n = naive_frame(f, WS_OP_BINARY, 0, 0, 1, KEY, p, 100);
    n += naive_frame(f + n, WS_OP_PING, 1, 0, 1, KEY, p, 125);
    n += naive_frame(f + n, WS_OP_CONT, 1, 0, 1, KEY, p, 100);
    t = (struct bs){0};
    transcript(&lim, f, n, 1, &t);
    assert_true(memchr(t.p, 'E', t.len) == NULL);
    free(t.p);
}

/* ---- masking ---- */

static void naive_mask(uint8_t *b, size_t len, const uint8_t key[4], size_t off)
{
    for (size_t i = 0; i < len; i++)
        b[i] ^= key[(off + i) % 4];
}

static void test_mask_vs_naive(void **state)
{
    (void)state;
    srand(777);
    uint8_t src[600], a[640], b[640], c[640];
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = (size_t)rand() % 300, align = (size_t)rand() % 16, off = (size_t)rand() % 4;
        uint8_t key[4];
        for (int i = 0; i < 4; i++)
            key[i] = (uint8_t)rand();
        for (size_t i = 0; i < len; i++)
            src[i] = (uint8_t)rand();
        memcpy(a + align, src, len);
        memcpy(b + align, src, len);
        size_t r = ws_mask(a + align, len, key, off);
        assert_int_equal(r, (off + len) % 4);
        naive_mask(b + align, len, key, off);
        assert_memory_equal(a + align, b + align, len);
        assert_int_equal(ws_mask_copy(c + (align ^ 5), src, len, key, off), r);
        assert_memory_equal(c + (align ^ 5), b + align, len);
        /* masking in pieces with the returned offset == masking at once */
        memcpy(a, src, len);
        size_t o = off, pos = 0;
        while (pos < len) {
            size_t k = 1 + (size_t)rand() % 40;
            if (k > len - pos) k = len - pos;
            o = ws_mask(a + pos, k, key, o);
            pos += k;
        }
        assert_memory_equal(a, b + align, len);
        /* twice is identity */
        ws_mask(a, len, key, off);
        assert_memory_equal(a, src, len);
    }
}

static void test_frame_begin_client_masks(void **state)
{
    (void)state;
    uint8_t hdr[WS_MAX_HEADER];
    struct ws_frame_header h;
    uint8_t keys[8][4];
    for (int i = 0; i < 8; i++) {
        size_t n = ws_frame_begin(hdr, &h, WS_ROLE_CLIENT, WS_OP_BINARY, true, 0, 300);
        assert_int_equal(n, 8);
        assert_int_equal(hdr[1] & 0x80, 0x80);
        assert_memory_equal(hdr + 4, h.mask, 4);
        memcpy(keys[i], h.mask, 4);
    }
    int distinct = 0;
    for (int i = 1; i < 8; i++)
        distinct += memcmp(keys[i], keys[0], 4) != 0;
    assert_true(distinct >= 6);
    size_t n = ws_frame_begin(hdr, &h, WS_ROLE_SERVER, WS_OP_TEXT, false, WS_RSV1, 5);
    assert_int_equal(n, 2);
    assert_int_equal(hdr[0], 0x41);
    assert_int_equal(hdr[1], 5);
    /* header + separately masked payload decodes (the writev layout) */
    uint8_t payload[70000], frame[70000 + 14];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 31);
    n = ws_frame_begin(hdr, &h, WS_ROLE_CLIENT, WS_OP_BINARY, true, 0, sizeof payload);
    assert_int_equal(n, 14);
    memcpy(frame, hdr, n);
    ws_mask_copy(frame + n, payload, sizeof payload, h.mask, 0);
    struct ws_decoder d;
    struct ws_event ev;
    ws_decoder_init(&d, &SERVER);
    assert_int_equal(ws_decoder_feed(&d, frame, sizeof frame, &ev), sizeof frame);
    assert_int_equal(ev.type, WS_EV_DATA);
    assert_true(ev.message_start && ev.message_end);
    assert_int_equal(ev.len, sizeof payload);
    assert_memory_equal(ev.data, payload, sizeof payload);
}

static void test_random_bytes(void **state)
{
    (void)state;
    uint8_t a[37] = {0}, b[37] = {0};
    ws_random_bytes(a, sizeof a);
    ws_random_bytes(b, sizeof b);
    assert_memory_not_equal(a, b, sizeof a);
}

/* ---- UTF-8 ---- */

static void test_utf8(void **state)
{
    (void)state;
    const char *good[] = {"",
                          "ascii only, longer than eight bytes",
                          "\xc2\x80",
                          "\xdf\xbf",
                          "\xe0\xa0\x80",
                          "\xed\x9f\xbf",
                          "\xee\x80\x80",
                          "\xef\xbf\xbf",
                          "\xf0\x90\x80\x80",
                          "\xf4\x8f\xbf\xbf",
                          "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
                          "0123456789012345678901234567890123456789\xc3\xa9xyz"};
    const char *bad[] = {"0123456789012345678901234567890123456789\xffxyz",
                         "01234567890123456789012345678901\xc3",
                         "\x80",
                         "\xbf",
                         "\xc0\x80",
                         "\xc1\xbf",
                         "\xe0\x80\x80",
                         "\xe0\x9f\xbf",
                         "\xed\xa0\x80",
                         "\xed\xbf\xbf",
                         "\xf0\x80\x80\x80",
                         "\xf0\x8f\xbf\xbf",
                         "\xf4\x90\x80\x80",
                         "\xf5\x80\x80\x80",
                         "\xff",
                         "\xfe",
                         "\xc2",
                         "\xe2\x82",
                         "\xf0\x9f\x98",
                         "abcdefgh\xc2\x41",
                         "\xc2\xc2\x80"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        size_t len = strlen(good[i]);
        assert_true(ws_utf8_valid((const uint8_t *)good[i], len));
        /* any split gives the same answer */
        for (size_t s = 0; s <= len; s++) {
            uint32_t st = ws_utf8_validate(WS_UTF8_ACCEPT, (const uint8_t *)good[i], s);
            st = ws_utf8_validate(st, (const uint8_t *)good[i] + s, len - s);
            assert_int_equal(st, WS_UTF8_ACCEPT);
        }
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t len = strlen(bad[i]);
        assert_false(ws_utf8_valid((const uint8_t *)bad[i], len));
        for (size_t s = 0; s <= len; s++) {
            uint32_t st = ws_utf8_validate(WS_UTF8_ACCEPT, (const uint8_t *)bad[i], s);
            st = ws_utf8_validate(st, (const uint8_t *)bad[i] + s, len - s);
            assert_int_not_equal(st, WS_UTF8_ACCEPT);
        }
    }
    /* every code point round trip via a naive encoder */
    for (uint32_t cp = 0; cp < 0x110000; cp += (cp < 0x800 ? 1 : 37)) {
        uint8_t b[4];
        size_t n;
        if (cp < 0x80) {
            b[0] = (uint8_t)cp;
            n = 1;
        } else if (cp < 0x800) {
            b[0] = (uint8_t)(0xc0 | cp >> 6);
            b[1] = (uint8_t)(0x80 | (cp & 0x3f));
            n = 2;
        } else if (cp < 0x10000) {
            b[0] = (uint8_t)(0xe0 | cp >> 12);
            b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
            b[2] = (uint8_t)(0x80 | (cp & 0x3f));
            n = 3;
        } else {
            b[0] = (uint8_t)(0xf0 | cp >> 18);
            b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
            b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
            b[3] = (uint8_t)(0x80 | (cp & 0x3f));
            n = 4;
        }
        bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
        assert_int_equal(ws_utf8_valid(b, n), !surrogate);
    }
}

/* ---- whole-message mode ---- */

static void test_message_assembly(void **state)
{
    (void)state;
    uint8_t f[512];
    size_t n = 0;
    n += naive_frame(f + n, WS_OP_BINARY, 0, 0, 1, KEY, "abc", 3);
    n += naive_frame(f + n, WS_OP_PING, 1, 0, 1, KEY, "", 0);
    n += naive_frame(f + n, WS_OP_CONT, 1, 0, 1, KEY, "def", 3);
    n += naive_frame(f + n, WS_OP_TEXT, 1, 0, 1, KEY, "gh", 2);
    n += naive_frame(f + n, WS_OP_BINARY, 0, 0, 1, KEY, "0123456789", 10);
    n += naive_frame(f + n, WS_OP_CONT, 1, 0, 1, KEY, "0123456789", 10);
    struct ws_decoder d;
    ws_decoder_init(&d, &SERVER);
    struct ws_message m;
    ws_message_init(&m);
    struct ws_event ev;
    size_t off = 0;
    int done = 0;
    while (off < n) {
        off += ws_decoder_feed(&d, f + off, n - off, &ev);
        if (ev.type != WS_EV_DATA) continue;
        int r = ws_message_append(&m, &ev, 15);
        if (done == 0 && r == 1) {
            assert_int_equal(m.len, 6);
            assert_memory_equal(m.data, "abcdef", 6);
            assert_int_equal(m.opcode, WS_OP_BINARY);
            done++;
        } else if (done == 1 && r == 1) {
            assert_int_equal(m.len, 2);
            assert_memory_equal(m.data, "gh", 2);
            assert_int_equal(m.opcode, WS_OP_TEXT);
            assert_true(m.complete);
            done++;
        } else if (done == 2 && r == -1) {
            done++;
            break;
        } else {
            assert_int_equal(r, 0);
        }
    }
    assert_int_equal(done, 3);
    ws_message_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_single_unmasked),
        cmocka_unit_test(test_rfc_single_masked),
        cmocka_unit_test(test_rfc_fragmented),
        cmocka_unit_test(test_rfc_ping_pong),
        cmocka_unit_test(test_rfc_256_and_64k),
        cmocka_unit_test(test_mixed_every_split),
        cmocka_unit_test(test_streaming_chunks),
        cmocka_unit_test(test_random_streams),
        cmocka_unit_test(test_fragmented_interleaved),
        cmocka_unit_test(test_errors_masking),
        cmocka_unit_test(test_errors_rsv),
        cmocka_unit_test(test_errors_opcodes),
        cmocka_unit_test(test_errors_control),
        cmocka_unit_test(test_errors_fragmentation),
        cmocka_unit_test(test_errors_length),
        cmocka_unit_test(test_binary_only_and_utf8),
        cmocka_unit_test(test_close_codes),
        cmocka_unit_test(test_close_reason_truncation),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_mask_vs_naive),
        cmocka_unit_test(test_frame_begin_client_masks),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_message_assembly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
