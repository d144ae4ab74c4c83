/* ws: RFC 6455 frame codec. Parses headers in place, unmasks payloads in
 * place a word at a time, and enforces the protocol rules per connection in
 * struct ws_decoder; see ws.h for the contract. No allocation on the frame
 * path (ws_message is the only heap user, and only if the caller wants whole
 * messages). */
#include "ws.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline void store64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

/* ---- header parse / write ---- */

static bool opcode_known(unsigned op)
{
    return op <= WS_OP_BINARY || (op >= WS_OP_CLOSE && op <= WS_OP_PONG);
}

/* ws_frame_parse() with a reason string for the decoder's error report. */
static int frame_parse(const uint8_t *buf, size_t len, struct ws_frame_header *hdr,
                       uint16_t *close_code, const char **why)
{
    if (len < 2) return WS_PARSE_MORE;
    unsigned b0 = buf[0], b1 = buf[1];
    unsigned op = b0 & 0x0f;
    unsigned fin = b0 >> 7;
    uint64_t plen = b1 & 0x7f;
    if (!opcode_known(op)) {
        *close_code = WS_CLOSE_PROTOCOL_ERROR;
        *why = "unknown opcode";
        return WS_PARSE_ERROR;
    }
    if (op & 0x8) {
        if (!fin) {
            *close_code = WS_CLOSE_PROTOCOL_ERROR;
            *why = "fragmented control frame";
            return WS_PARSE_ERROR;
        }
        if (plen > WS_MAX_CONTROL_PAYLOAD) {
            *close_code = WS_CLOSE_PROTOCOL_ERROR;
            *why = "control frame payload over 125 bytes";
            return WS_PARSE_ERROR;
        }
    }
    size_t hl = 2 + (plen == 126 ? 2 : plen == 127 ? 8 : 0) + ((b1 & 0x80) ? 4 : 0);
    if (len < hl) return WS_PARSE_MORE;
    const uint8_t *p = buf + 2;
    if (plen == 126) {
        plen = (uint64_t)p[0] << 8 | p[1];
        p += 2;
    } else if (plen == 127) {
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | p[i];
        p += 8;
        if (plen >> 63) {
            *close_code = WS_CLOSE_PROTOCOL_ERROR;
            *why = "64-bit payload length with the top bit set";
            return WS_PARSE_ERROR;
        }
    }
    hdr->payload_len = plen;
    hdr->header_len = (uint8_t)hl;
    hdr->opcode = (uint8_t)op;
    hdr->fin = (uint8_t)fin;
    hdr->rsv = (uint8_t)((b0 >> 4) & 0x7);
    hdr->masked = (uint8_t)(b1 >> 7);
    if (hdr->masked)
        memcpy(hdr->mask, p, 4);
    else
        memset(hdr->mask, 0, 4);
    return WS_PARSE_OK;
}

int ws_frame_parse(const uint8_t *buf, size_t len, struct ws_frame_header *hdr,
                   uint16_t *close_code)
{
    uint16_t cc = 0;
    const char *why = NULL;
    int r = frame_parse(buf, len, hdr, &cc, &why);
    if (close_code) *close_code = cc;
    return r;
}

size_t ws_frame_header_size(uint64_t payload_len, bool masked)
{
    size_t n = payload_len < 126 ? 2 : payload_len <= 0xffff ? 4 : 10;
    return n + (masked ? 4 : 0);
}

size_t ws_frame_header_write(uint8_t out[WS_MAX_HEADER], struct ws_frame_header *hdr)
{
    uint64_t len = hdr->payload_len;
    uint8_t mbit = hdr->masked ? 0x80 : 0;
    size_t n;
    out[0] = (uint8_t)((hdr->fin ? 0x80 : 0) | (hdr->rsv & 7) << 4 | (hdr->opcode & 0x0f));
    if (len < 126) {
        out[1] = mbit | (uint8_t)len;
        n = 2;
    } else if (len <= 0xffff) {
        out[1] = mbit | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = mbit | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (hdr->masked) {
        memcpy(out + n, hdr->mask, 4);
        n += 4;
    }
    hdr->header_len = (uint8_t)n;
    return n;
}

size_t ws_frame_begin(uint8_t out[WS_MAX_HEADER], struct ws_frame_header *hdr, enum ws_role role,
                      unsigned opcode, bool fin, unsigned rsv, uint64_t payload_len)
{
    hdr->payload_len = payload_len;
    hdr->opcode = (uint8_t)(opcode & 0x0f);
    hdr->fin = fin ? 1 : 0;
    hdr->rsv = (uint8_t)(rsv & 7);
    hdr->masked = role == WS_ROLE_CLIENT;
    if (hdr->masked)
        ws_mask_key(hdr->mask);
    else
        memset(hdr->mask, 0, 4);
    return ws_frame_header_write(out, hdr);
}

/* ---- masking ---- */

/* The key repeated to 8 bytes, rotated so that byte i of a run that starts
 * at key offset `offset` uses kb[i & 7]. */
static inline uint64_t mask_word(const uint8_t key[4], size_t offset, uint8_t kb[8])
{
    for (int i = 0; i < 8; i++)
        kb[i] = key[(offset + (size_t)i) & 3];
    return load64(kb);
}

/* 16-byte vectors (SSE2/NEON when available, plain words otherwise); loads
 * and stores go through memcpy, so any alignment is fine. */
typedef uint64_t ws_v16 __attribute__((vector_size(16)));

static inline ws_v16 loadv(const uint8_t *p)
{
    ws_v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void storev(uint8_t *p, ws_v16 v)
{
    memcpy(p, &v, sizeof v);
}

size_t ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                    size_t offset)
{
    uint8_t kb[8];
    uint64_t k = mask_word(key, offset, kb);
    ws_v16 kv = {k, k};
    size_t i = 0;
    for (; i + 64 <= len; i += 64) {
        ws_v16 a = loadv(src + i), b = loadv(src + i + 16), c = loadv(src + i + 32),
               d = loadv(src + i + 48);
        storev(dst + i, a ^ kv);
        storev(dst + i + 16, b ^ kv);
        storev(dst + i + 32, c ^ kv);
        storev(dst + i + 48, d ^ kv);
    }
    for (; i + 8 <= len; i += 8)
        store64(dst + i, load64(src + i) ^ k);
    for (; i < len; i++)
        dst[i] = src[i] ^ kb[i & 7];
    return (offset + len) & 3;
}

size_t ws_mask(uint8_t *buf, size_t len, const uint8_t key[4], size_t offset)
{
    return ws_mask_copy(buf, buf, len, key, offset);
}

/* wyrand: a fast 64-bit PRNG, one state per thread, seeded from getrandom().
 * Mask keys only have to be unpredictable to a script in a browser, not
 * secret. */
static _Thread_local uint64_t rng_state;
static _Thread_local int rng_seeded;

static uint64_t rng_next(void)
{
    if (!rng_seeded) {
        uint64_t seed = 0;
        if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
            seed = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)&seed;
        rng_state = seed;
        rng_seeded = 1;
    }
    rng_state += 0xa0761d6478bd642full;
    __uint128_t t = (__uint128_t)rng_state * (rng_state ^ 0xe7037ed1a0b428dbull);
    return (uint64_t)(t >> 64) ^ (uint64_t)t;
}

void ws_mask_key(uint8_t key[4])
{
    uint32_t v = (uint32_t)rng_next();
    memcpy(key, &v, 4);
}

void ws_random_bytes(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len >= 8) {
        store64(p, rng_next());
        p += 8;
        len -= 8;
    }
    if (len) {
        uint64_t v = rng_next();
        memcpy(p, &v, len);
    }
}

/* ---- UTF-8 ---- */

/* States: 0 accept, 12 reject, 1..3 = that many continuation bytes (80..BF)
 * to go, 4..7 = the next byte has a narrowed range (after E0, ED, F0, F4). */
static inline uint32_t utf8_step(uint32_t s, unsigned b)
{
    switch (s) {
    case 0:
        if (b < 0x80) return 0;
        if (b >= 0xC2 && b <= 0xDF) return 1;
        if (b == 0xE0) return 4;
        if (b == 0xED) return 5;
        if (b >= 0xE1 && b <= 0xEF) return 2;
        if (b == 0xF0) return 6;
        if (b >= 0xF1 && b <= 0xF3) return 3;
        if (b == 0xF4) return 7;
        return WS_UTF8_REJECT;
    case 1:
    case 2:
    case 3:
        return (b & 0xC0) == 0x80 ? s - 1 : WS_UTF8_REJECT;
    case 4:
        return b >= 0xA0 && b <= 0xBF ? 1 : WS_UTF8_REJECT;
    case 5:
        return b >= 0x80 && b <= 0x9F ? 1 : WS_UTF8_REJECT;
    case 6:
        return b >= 0x90 && b <= 0xBF ? 2 : WS_UTF8_REJECT;
    case 7:
        return b >= 0x80 && b <= 0x8F ? 2 : WS_UTF8_REJECT;
    default:
        return WS_UTF8_REJECT;
    }
}

uint32_t ws_utf8_validate(uint32_t state, const uint8_t *buf, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (state == WS_UTF8_REJECT) return state;
        if (state == 0) {
            /* ASCII runs are the common case: skip them a word at a time. */
            while (i + 32 <= len && ((load64(buf + i) | load64(buf + i + 8) | load64(buf + i + 16) |
                                      load64(buf + i + 24)) &
                                     0x8080808080808080ull) == 0)
                i += 32;
            while (i + 8 <= len && (load64(buf + i) & 0x8080808080808080ull) == 0)
                i += 8;
            if (i == len) break;
        }
        state = utf8_step(state, buf[i++]);
    }
    return state;
}

bool ws_utf8_valid(const uint8_t *buf, size_t len)
{
    return ws_utf8_validate(WS_UTF8_ACCEPT, buf, len) == WS_UTF8_ACCEPT;
}

/* ---- close frames ---- */

bool ws_close_code_valid(unsigned code)
{
    /* 1012-1014 are registered with IANA (service restart, try again later,
     * bad gateway) and sent by common servers; RFC 6455 leaves room for them. */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

const char *ws_close_code_str(unsigned code)
{
    switch (code) {
    case 1000:
        return "normal";
    case 1001:
        return "going away";
    case 1002:
        return "protocol error";
    case 1003:
        return "unsupported data";
    case 1005:
        return "no status";
    case 1006:
        return "abnormal closure";
    case 1007:
        return "invalid payload data";
    case 1008:
        return "policy violation";
    case 1009:
        return "message too big";
    case 1010:
        return "mandatory extension";
    case 1011:
        return "internal error";
    case 1012:
        return "service restart";
    case 1013:
        return "try again later";
    case 1014:
        return "bad gateway";
    case 1015:
        return "TLS handshake failure";
    default:
        return code >= 3000 && code <= 4999 ? "application" : "unknown";
    }
}

/* Length of the longest prefix of s (at most max bytes) that does not cut a
 * UTF-8 character. */
static size_t utf8_cut(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n <= max) return n;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

ssize_t ws_close_payload_build(uint8_t out[WS_MAX_CONTROL_PAYLOAD], uint16_t code,
                               const char *reason)
{
    if (code == 0) return 0;
    if (!ws_close_code_valid(code)) {
        errno = EINVAL;
        return -1;
    }
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    size_t n = reason ? utf8_cut(reason, WS_MAX_CLOSE_REASON) : 0;
    if (n) memcpy(out + 2, reason, n);
    return (ssize_t)(2 + n);
}

ssize_t ws_control_frame(uint8_t out[WS_MAX_CONTROL_FRAME], enum ws_role role, unsigned opcode,
                         const void *payload, size_t len)
{
    if (len > WS_MAX_CONTROL_PAYLOAD ||
        (opcode != WS_OP_PING && opcode != WS_OP_PONG && opcode != WS_OP_CLOSE)) {
        errno = EINVAL;
        return -1;
    }
    struct ws_frame_header h;
    size_t hl = ws_frame_begin(out, &h, role, opcode, true, 0, len);
    if (len) {
        if (h.masked)
            ws_mask_copy(out + hl, payload, len, h.mask, 0);
        else
            memmove(out + hl, payload, len);
    }
    return (ssize_t)(hl + len);
}

ssize_t ws_close_frame(uint8_t out[WS_MAX_CONTROL_FRAME], enum ws_role role, uint16_t code,
                       const char *reason)
{
    uint8_t payload[WS_MAX_CONTROL_PAYLOAD];
    ssize_t n = ws_close_payload_build(payload, code, reason);
    if (n < 0) return -1;
    return ws_control_frame(out, role, WS_OP_CLOSE, payload, (size_t)n);
}

int ws_close_payload_parse(const uint8_t *payload, size_t len, uint16_t *code,
                           const uint8_t **reason, size_t *reason_len)
{
    *reason = payload + (len >= 2 ? 2 : len);
    *reason_len = 0;
    if (len == 0) {
        *code = WS_CLOSE_NO_STATUS;
        return 0;
    }
    if (len == 1) {
        *code = 0;
        return WS_CLOSE_PROTOCOL_ERROR;
    }
    *code = (uint16_t)(payload[0] << 8 | payload[1]);
    *reason_len = len - 2;
    if (!ws_close_code_valid(*code)) return WS_CLOSE_PROTOCOL_ERROR;
    if (!ws_utf8_valid(payload + 2, len - 2)) return WS_CLOSE_INVALID_PAYLOAD;
    return 0;
}

/* ---- decoder ---- */

void ws_decoder_init(struct ws_decoder *d, const struct ws_decoder_config *cfg)
{
    memset(d, 0, sizeof *d);
    d->cfg = *cfg;
    d->cfg.allowed_rsv &= 7;
}

bool ws_decoder_in_message(const struct ws_decoder *d)
{
    return d->in_message || d->in_frame;
}

static size_t fail(struct ws_decoder *d, struct ws_event *ev, size_t pos, uint16_t code,
                   const char *why)
{
    d->err_code = code;
    d->err = why;
    ev->type = WS_EV_ERROR;
    ev->close_code = code;
    ev->error = why;
    return pos;
}

size_t ws_decoder_feed(struct ws_decoder *d, uint8_t *buf, size_t len, struct ws_event *ev)
{
    memset(ev, 0, sizeof *ev);
    if (d->err_code) return fail(d, ev, 0, d->err_code, d->err);
    size_t pos = 0;

    if (!d->in_frame) {
        struct ws_frame_header h;
        uint16_t cc = 0;
        const char *why = NULL;
        int r = frame_parse(buf, len, &h, &cc, &why);
        if (r == WS_PARSE_MORE) {
            ev->type = WS_EV_NEED_MORE;
            return 0;
        }
        if (r == WS_PARSE_ERROR) return fail(d, ev, 0, cc, why);
        if (d->closed) return fail(d, ev, 0, WS_CLOSE_PROTOCOL_ERROR, "frame after close frame");
        if (d->cfg.role == WS_ROLE_SERVER && !h.masked)
            return fail(d, ev, 0, WS_CLOSE_PROTOCOL_ERROR, "unmasked frame from client");
        if (d->cfg.role == WS_ROLE_CLIENT && h.masked)
            return fail(d, ev, 0, WS_CLOSE_PROTOCOL_ERROR, "masked frame from server");
        if (h.rsv & ~d->cfg.allowed_rsv)
            return fail(d, ev, 0, WS_CLOSE_PROTOCOL_ERROR, "reserved bits set");

        if (h.opcode & 0x8) {
            if (h.rsv)
                return fail(d, ev, 0, WS_CLOSE_PROTOCOL_ERROR, "reserved bits on control frame");
            size_t total = h.header_len + (size_t)h.payload_len;
            if (len < total) {
                ev->type = WS_EV_NEED_MORE;
                return 0;
            }
            uint8_t *p = buf + h.header_len;
            size_t n = (size_t)h.payload_len;
            if (h.masked) ws_mask(p, n, h.mask, 0);
            ev->type = WS_EV_CONTROL;
            ev->opcode = h.opcode;
            ev->data = n ? p : NULL;
            ev->len = n;
            if (h.opcode == WS_OP_CLOSE) {
                int bad =
                    ws_close_payload_parse(p, n, &ev->close_code, &ev->reason, &ev->reason_len);
                if (bad) {
                    ev->data = NULL;
                    ev->len = 0;
                    return fail(d, ev, 0, (uint16_t)bad,
                                bad == WS_CLOSE_INVALID_PAYLOAD ? "close reason is not UTF-8"
                                                                : "invalid close code");
                }
                d->closed = 1;
            }
            return total;
        }

        if (h.opcode == WS_OP_CONT) {
            if (!d->in_message)
                return fail(d, ev, 0, WS_CLOSE_PROTOCOL_ERROR,
                            "continuation frame outside a fragmented message");
            if (h.rsv & WS_RSV1)
                return fail(d, ev, 0, WS_CLOSE_PROTOCOL_ERROR, "RSV1 on a continuation frame");
        } else {
            if (d->in_message)
                return fail(d, ev, 0, WS_CLOSE_PROTOCOL_ERROR,
                            "new message inside a fragmented message");
            if (h.opcode == WS_OP_TEXT && d->cfg.binary_only)
                return fail(d, ev, 0, WS_CLOSE_UNSUPPORTED_DATA,
                            "text message on a binary-only connection");
        }
        if (d->cfg.max_frame_size && h.payload_len > d->cfg.max_frame_size)
            return fail(d, ev, 0, WS_CLOSE_TOO_BIG, "frame too big");
        uint64_t msg_len = h.opcode == WS_OP_CONT ? d->msg_len : 0;
        if (d->cfg.max_message_size && (msg_len > d->cfg.max_message_size ||
                                        h.payload_len > d->cfg.max_message_size - msg_len))
            return fail(d, ev, 0, WS_CLOSE_TOO_BIG, "message too big");

        if (h.opcode != WS_OP_CONT) {
            d->msg_opcode = h.opcode;
            d->msg_compressed = (h.rsv & WS_RSV1) != 0;
            d->msg_started = 0;
            d->utf8_state = WS_UTF8_ACCEPT;
        }
        d->msg_len = msg_len + h.payload_len;
        d->in_message = !h.fin;
        d->in_frame = 1;
        d->hdr = h;
        d->frame_left = h.payload_len;
        d->mask_off = 0;
        pos = h.header_len;
    }

    size_t avail = len - pos;
    if (avail == 0 && d->frame_left > 0) {
        ev->type = WS_EV_NEED_MORE;
        return pos;
    }
    size_t n = d->frame_left < avail ? (size_t)d->frame_left : avail;
    uint8_t *p = buf + pos;
    if (d->hdr.masked && n) d->mask_off = (uint8_t)ws_mask(p, n, d->hdr.mask, d->mask_off);
    d->frame_left -= n;
    pos += n;

    bool frame_end = d->frame_left == 0;
    bool msg_end = frame_end && d->hdr.fin;
    if (d->msg_opcode == WS_OP_TEXT && !d->msg_compressed && !d->cfg.no_utf8_check) {
        d->utf8_state = ws_utf8_validate(d->utf8_state, p, n);
        if (d->utf8_state == WS_UTF8_REJECT || (msg_end && d->utf8_state != WS_UTF8_ACCEPT))
            return fail(d, ev, pos, WS_CLOSE_INVALID_PAYLOAD, "text message is not UTF-8");
    }

    ev->type = WS_EV_DATA;
    ev->opcode = d->msg_opcode;
    ev->message_start = !d->msg_started;
    ev->message_end = msg_end;
    ev->frame_end = frame_end;
    ev->compressed = d->msg_compressed;
    ev->data = n ? p : NULL;
    ev->len = n;
    d->msg_started = 1;
    if (frame_end) {
        d->in_frame = 0;
        if (msg_end) {
            d->msg_started = 0;
            d->msg_len = 0;
        }
    }
    return pos;
}

/* ---- whole messages ---- */

void ws_message_init(struct ws_message *m)
{
    memset(m, 0, sizeof *m);
}

int ws_message_append(struct ws_message *m, const struct ws_event *ev, size_t max)
{
    if (ev->message_start || m->complete) {
        m->len = 0;
        m->complete = false;
        m->opcode = ev->opcode;
        m->compressed = ev->compressed;
    }
    if (ev->len) {
        if (max && (m->len > max || ev->len > max - m->len)) {
            errno = EMSGSIZE;
            return -1;
        }
        size_t need = m->len + ev->len;
        if (need > m->cap) {
            size_t cap = m->cap ? m->cap : 256;
            while (cap < need)
                cap = cap > SIZE_MAX / 2 ? need : cap * 2;
            uint8_t *nd = realloc(m->data, cap);
            if (!nd) return -1;
            m->data = nd;
            m->cap = cap;
        }
        memcpy(m->data + m->len, ev->data, ev->len);
        m->len = need;
    }
    if (ev->message_end) {
        m->complete = true;
        return 1;
    }
    return 0;
}

void ws_message_free(struct ws_message *m)
{
    free(m->data);
    memset(m, 0, sizeof *m);
}
