/* libFuzzer target for the WebSocket frame codec (lib/ws.c) and the
 * permessage-deflate inflater (lib/ws_deflate.c). The first input byte picks
 * the decoder configuration and the read size; the rest is the byte stream.
 * Oracle: decoding the stream whole and in small reads gives the same
 * transcript (events, payload bytes, errors), and the decoder never breaks
 * its contract (consumption bounds, leftover bounds, pointers in range). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"
#include "ws_deflate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FNV-1a over the transcript. */
static void mix(uint64_t *h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        *h ^= b[i];
        *h *= 0x100000001b3ull;
    }
}

static uint64_t run(const struct ws_decoder_config *cfg, const uint8_t *in, size_t len, size_t step,
                    bool inflate)
{
    uint64_t h = 0xcbf29ce484222325ull, mh = h, mi = h;
    struct ws_decoder d;
    ws_decoder_init(&d, cfg);
    struct ws_pmd pmd;
    struct ws_pmd_params none = {0};
    ws_pmd_init(&pmd, &none, cfg->role, 1 << 16, -1, 0);
    size_t cap = len + WS_MIN_READ_BUFFER;
    uint8_t *rb = malloc(cap);
    uint8_t out[512];
    size_t have = 0, fed = 0;
    bool failed = false;
    while (fed < len && !failed) {
        size_t k = len - fed < step ? len - fed : step;
        memcpy(rb + have, in + fed, k);
        have += k;
        fed += k;
        size_t off = 0;
        for (;;) {
            struct ws_event ev;
            size_t n = ws_decoder_feed(&d, rb + off, have - off, &ev);
            if (n > have - off) abort();
            off += n;
            if (ev.type == WS_EV_NEED_MORE) break;
            if (ev.type == WS_EV_ERROR) {
                mix(&h, "E", 1);
                mix(&h, &ev.close_code, sizeof ev.close_code);
                if (!ev.error || ev.close_code < 1000) abort();
                failed = true;
                break;
            }
            if (ev.len && (ev.data < rb || ev.data + ev.len > rb + have)) abort();
            if (ev.type == WS_EV_CONTROL) {
                if (ev.len > WS_MAX_CONTROL_PAYLOAD) abort();
                mix(&h, "C", 1);
                mix(&h, &ev.opcode, 1);
                mix(&h, ev.data, ev.len);
                mix(&h, &ev.close_code, sizeof ev.close_code);
                continue;
            }
            /* DATA: chunk boundaries differ between runs, and a message cut
             * by an error shows more or fewer chunks; whole messages must
             * not differ. */
            if (ev.message_start) mh = mi = 0xcbf29ce484222325ull;
            mix(&mh, ev.data, ev.len);
            if (inflate && ev.compressed) {
                ws_pmd_inflate_input(&pmd, ev.data, ev.len, ev.message_end);
                for (;;) {
                    size_t got = 0;
                    int r = ws_pmd_inflate_output(&pmd, out, sizeof out, &got);
                    if (got > sizeof out) abort();
                    mix(&mi, out, got);
                    if (r == 1) continue;
                    if (r != 0) {
                        mix(&h, &r, sizeof r);
                        failed = true;
                    }
                    break;
                }
                if (failed) break;
            }
            if (ev.message_end) {
                mix(&h, "M", 1);
                mix(&h, &ev.opcode, 1);
                mix(&h, &mh, sizeof mh);
                mix(&h, &mi, sizeof mi);
            }
        }
        memmove(rb, rb + off, have - off);
        have -= off;
        if (!failed && have >= WS_MIN_READ_BUFFER)
            abort(); /* the decoder may keep at most a header + control frame */
    }
    ws_pmd_free(&pmd);
    free(rb);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    uint8_t c = data[0], s = data[1];
    struct ws_decoder_config cfg = {
        .role = (c & 1) ? WS_ROLE_CLIENT : WS_ROLE_SERVER,
        .allowed_rsv = (c & 2) ? WS_RSV1 : 0,
        .binary_only = (c & 4) != 0,
        .no_utf8_check = (c & 8) != 0,
        .max_frame_size = (c & 16) ? 300 : 0,
        .max_message_size = (c & 32) ? 1000 : 0,
    };
    const uint8_t *in = data + 2;
    size_t len = size - 2;
    /* the codec unmasks in place: give each run its own copy */
    uint8_t *a = malloc(len + 1), *b = malloc(len + 1);
    memcpy(a, in, len);
    memcpy(b, in, len);
    bool inflate = (c & 64) != 0;
    uint64_t h1 = run(&cfg, a, len, len ? len : 1, inflate);
    uint64_t h2 = run(&cfg, b, len, 1 + s % 16, inflate);
    if (h1 != h2) abort();

    /* stateless helpers on the raw input */
    struct ws_frame_header hdr;
    uint16_t cc;
    if (ws_frame_parse(in, len, &hdr, &cc) == WS_PARSE_OK) {
        if (hdr.header_len < 2 || hdr.header_len > WS_MAX_HEADER || hdr.header_len > len) abort();
        uint8_t w[WS_MAX_HEADER];
        if (ws_frame_header_write(w, &hdr) != hdr.header_len && hdr.payload_len >= 126)
            (void)0; /* non-minimal encodings are legal on input */
    }
    uint16_t code;
    const uint8_t *reason;
    size_t rl;
    if (ws_close_payload_parse(in, len, &code, &reason, &rl) == 0 && len >= 2 &&
        !ws_close_code_valid(code))
        abort();
    (void)ws_utf8_valid(in, len);
    free(a);
    free(b);
    return 0;
}
