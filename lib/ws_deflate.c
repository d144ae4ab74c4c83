/* ws_deflate: permessage-deflate (RFC 7692) for the ws codec: negotiation of
 * the Sec-WebSocket-Extensions parameters both ways, and message compression
 * / streaming decompression on zlib raw deflate streams with a bound on the
 * inflated size of each message. */
#include "ws_deflate.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- Sec-WebSocket-Extensions parsing (RFC 6455 9.1) ---- */

#define EXT_MAX_PARAMS 8

struct ext_param {
    const char *name;
    size_t nlen;
    bool has_value;
    bool value_ok; /* fits value[] */
    char value[16];
};

struct ext {
    const char *name;
    size_t nlen;
    int nparams;
    bool too_many;
    struct ext_param params[EXT_MAX_PARAMS];
};

static bool tchar(int c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static const char *token(const char *p, const char **start, size_t *len)
{
    const char *s = p;
    while (tchar((unsigned char)*p))
        p++;
    *start = s;
    *len = (size_t)(p - s);
    return p;
}

/* Parse the next extension of the list at *pp. Returns 1 with *e filled, 0
 * at the end of the list, -1 on a syntax error. */
static int ext_next(const char **pp, struct ext *e)
{
    const char *p = *pp;
    for (;;) {
        p = ows(p);
        if (*p != ',') break;
        p++;
    }
    if (!*p) return 0;
    memset(e, 0, sizeof *e);
    p = token(p, &e->name, &e->nlen);
    if (!e->nlen) return -1;
    for (;;) {
        p = ows(p);
        if (*p != ';') break;
        p = ows(p + 1);
        struct ext_param tmp, *prm = e->nparams < EXT_MAX_PARAMS ? &e->params[e->nparams] : &tmp;
        memset(prm, 0, sizeof *prm);
        p = token(p, &prm->name, &prm->nlen);
        if (!prm->nlen) return -1;
        p = ows(p);
        if (*p == '=') {
            p = ows(p + 1);
            prm->has_value = true;
            size_t vl = 0;
            prm->value_ok = true;
            if (*p == '"') {
                p++;
                while (*p && *p != '"') {
                    if (*p == '\\' && p[1]) p++;
                    if (vl < sizeof prm->value - 1)
                        prm->value[vl++] = *p;
                    else
                        prm->value_ok = false;
                    p++;
                }
                if (*p != '"') return -1;
                p++;
            } else {
                const char *vs;
                size_t n;
                p = token(p, &vs, &n);
                if (!n) return -1;
                if (n < sizeof prm->value)
                    memcpy(prm->value, vs, n);
                else
                    prm->value_ok = false;
                vl = n < sizeof prm->value ? n : 0;
            }
            prm->value[vl] = 0;
        }
        if (e->nparams < EXT_MAX_PARAMS)
            e->nparams++;
        else
            e->too_many = true;
    }
    if (*p && *p != ',') return -1;
    *pp = p;
    return 1;
}

static bool is(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

/* "8".."15" without sign or leading zero. */
static int window_bits(const struct ext_param *prm)
{
    const char *v = prm->value;
    if (!prm->value_ok || !isdigit((unsigned char)v[0]) || v[0] == '0') return -1;
    int n = atoi(v);
    for (const char *q = v; *q; q++)
        if (!isdigit((unsigned char)*q)) return -1;
    return n >= 8 && n <= 15 && strlen(v) <= 2 ? n : -1;
}

/* Parameters of one permessage-deflate element. Returns 0, or -1 when a
 * parameter is unknown, repeated or has a bad value. */
static int pmd_params(const struct ext *e, struct ws_pmd_params *out)
{
    memset(out, 0, sizeof *out);
    bool seen[4] = {false, false, false, false};
    if (e->too_many) return -1;
    for (int i = 0; i < e->nparams; i++) {
        const struct ext_param *prm = &e->params[i];
        int k;
        if (is(prm->name, prm->nlen, "server_no_context_takeover"))
            k = 0;
        else if (is(prm->name, prm->nlen, "client_no_context_takeover"))
            k = 1;
        else if (is(prm->name, prm->nlen, "server_max_window_bits"))
            k = 2;
        else if (is(prm->name, prm->nlen, "client_max_window_bits"))
            k = 3;
        else
            return -1;
        if (seen[k]) return -1;
        seen[k] = true;
        switch (k) {
        case 0:
        case 1:
            if (prm->has_value) return -1;
            if (k == 0)
                out->server_no_context_takeover = true;
            else
                out->client_no_context_takeover = true;
            break;
        case 2: {
            int b = prm->has_value ? window_bits(prm) : -1;
            if (b < 0) return -1;
            out->server_max_window_bits = (uint8_t)b;
            break;
        }
        case 3:
            if (!prm->has_value) {
                out->client_max_window_bits_novalue = true;
            } else {
                int b = window_bits(prm);
                if (b < 0) return -1;
                out->client_max_window_bits = (uint8_t)b;
            }
            break;
        }
    }
    return 0;
}

int ws_pmd_format(const struct ws_pmd_params *p, char *out, size_t cap)
{
    char buf[160];
    int n = snprintf(buf, sizeof buf, "permessage-deflate%s%s",
                     p->server_no_context_takeover ? "; server_no_context_takeover" : "",
                     p->client_no_context_takeover ? "; client_no_context_takeover" : "");
    if (p->server_max_window_bits)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "; server_max_window_bits=%u",
                      p->server_max_window_bits);
    if (p->client_max_window_bits)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "; client_max_window_bits=%u",
                      p->client_max_window_bits);
    else if (p->client_max_window_bits_novalue)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "; client_max_window_bits");
    if ((size_t)n + 1 > cap) {
        if (cap) out[0] = 0;
        errno = ENOSPC;
        return -1;
    }
    memcpy(out, buf, (size_t)n + 1);
    return n;
}

static uint8_t clamp_bits(uint8_t b)
{
    /* zlib cannot write raw deflate with an 8-bit window, so 9 is our floor
     * for what we compress. */
    return b == 0 || b > 15 ? 15 : b < 9 ? 9 : b;
}

int ws_pmd_server_negotiate(const char *header, const struct ws_pmd_server_config *cfg,
                            struct ws_pmd_params *agreed)
{
    memset(agreed, 0, sizeof *agreed);
    if (!header) return 0;
    const char *p = header;
    struct ext e;
    int r, accepted = 0;
    while ((r = ext_next(&p, &e)) == 1) {
        if (accepted || !is(e.name, e.nlen, "permessage-deflate")) continue;
        struct ws_pmd_params off, a;
        if (pmd_params(&e, &off) < 0)
            continue; /* RFC 7692: decline an offer we cannot parse; try the next */
        memset(&a, 0, sizeof a);
        uint8_t ours = clamp_bits(cfg->server_max_window_bits);
        if (off.server_max_window_bits) {
            if (off.server_max_window_bits < 9)
                continue; /* we cannot compress with a 256-byte window */
            a.server_max_window_bits =
                ours < off.server_max_window_bits ? ours : off.server_max_window_bits;
        } else if (ours < 15) {
            a.server_max_window_bits = ours;
        }
        a.server_no_context_takeover =
            off.server_no_context_takeover || cfg->server_no_context_takeover;
        a.client_no_context_takeover =
            off.client_no_context_takeover || cfg->client_no_context_takeover;
        if (off.client_max_window_bits || off.client_max_window_bits_novalue) {
            uint8_t capb = clamp_bits(cfg->client_max_window_bits);
            uint8_t v = off.client_max_window_bits && off.client_max_window_bits < capb
                            ? off.client_max_window_bits
                            : capb;
            if (v < 15 || off.client_max_window_bits) a.client_max_window_bits = v;
        }
        *agreed = a;
        accepted = 1;
    }
    if (r < 0) {
        memset(agreed, 0, sizeof *agreed);
        return -1;
    }
    return accepted;
}

int ws_pmd_client_accept(const char *header, const struct ws_pmd_params *offered,
                         struct ws_pmd_params *agreed)
{
    memset(agreed, 0, sizeof *agreed);
    if (!header || !*ows(header)) return 0;
    const char *p = header;
    struct ext e;
    int r, n = 0;
    struct ws_pmd_params resp;
    while ((r = ext_next(&p, &e)) == 1) {
        /* We offered only permessage-deflate, once. */
        if (!is(e.name, e.nlen, "permessage-deflate") || n++ > 0) return -1;
        if (pmd_params(&e, &resp) < 0) return -1;
    }
    if (r < 0 || n == 0) return -1;
    if (resp.client_max_window_bits_novalue) return -1;
    bool offered_cmwb = offered->client_max_window_bits || offered->client_max_window_bits_novalue;
    if (resp.client_max_window_bits && !offered_cmwb) return -1;
    if (offered->client_max_window_bits &&
        resp.client_max_window_bits > offered->client_max_window_bits)
        return -1;
    if (offered->server_max_window_bits &&
        (!resp.server_max_window_bits ||
         resp.server_max_window_bits > offered->server_max_window_bits))
        return -1;
    if (offered->server_no_context_takeover && !resp.server_no_context_takeover) return -1;
    if (!resp.client_max_window_bits && offered->client_max_window_bits)
        resp.client_max_window_bits = offered->client_max_window_bits;
    if (resp.client_max_window_bits && resp.client_max_window_bits < 9)
        return -1; /* zlib cannot compress with a 256-byte window */
    *agreed = resp;
    return 1;
}

/* ---- codec ---- */

static const uint8_t TAIL[4] = {0x00, 0x00, 0xff, 0xff};

void ws_pmd_init(struct ws_pmd *p, const struct ws_pmd_params *a, enum ws_role role,
                 uint64_t max_inflated, int level, int mem_level)
{
    memset(p, 0, sizeof *p);
    if (role == WS_ROLE_SERVER) {
        p->deflate_reset = a->server_no_context_takeover;
        p->inflate_reset = a->client_no_context_takeover;
        p->deflate_window = clamp_bits(a->server_max_window_bits);
    } else {
        p->deflate_reset = a->client_no_context_takeover;
        p->inflate_reset = a->server_no_context_takeover;
        p->deflate_window = clamp_bits(a->client_max_window_bits);
    }
    p->level = level < -1 || level > 9 ? Z_DEFAULT_COMPRESSION : level;
    p->mem_level = mem_level < 1 || mem_level > 9 ? 8 : mem_level;
    p->max_inflated = max_inflated;
}

void ws_pmd_free(struct ws_pmd *p)
{
    if (p->deflater) {
        deflateEnd(p->deflater);
        free(p->deflater);
    }
    if (p->inflater) {
        inflateEnd(p->inflater);
        free(p->inflater);
    }
    p->deflater = p->inflater = NULL;
}

void ws_pmd_idle(struct ws_pmd *p)
{
    if (p->deflater && p->deflate_reset) {
        deflateEnd(p->deflater);
        free(p->deflater);
        p->deflater = NULL;
    }
    if (p->inflater && p->inflate_reset && !p->in_message) {
        inflateEnd(p->inflater);
        free(p->inflater);
        p->inflater = NULL;
    }
}

size_t ws_pmd_compress_bound(size_t len)
{
    /* deflateBound()'s conservative bound for non-default window/memLevel
     * (small memLevels emit many small stored blocks for incompressible
     * data), plus the sync-flush block and slack. */
    return len + ((len + 7) >> 3) + ((len + 63) >> 6) + 5 + 16;
}

int ws_pmd_compress(struct ws_pmd *p, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                    size_t *out_len)
{
    z_stream *z = p->deflater;
    if (!z) {
        z = calloc(1, sizeof *z);
        if (!z) {
            p->error = "out of memory";
            errno = ENOMEM;
            return -1;
        }
        if (deflateInit2(z, p->level, Z_DEFLATED, -p->deflate_window, p->mem_level,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            free(z);
            p->error = "deflateInit2 failed";
            errno = ENOMEM;
            return -1;
        }
        p->deflater = z;
    }
    z->next_in = (Bytef *)(uintptr_t)in;
    z->next_out = out;
    size_t in_left = len, out_left = cap;
    /* Input with Z_NO_FLUSH (avail_* are 32-bit: pieces for huge messages),
     * then one Z_SYNC_FLUSH. The NO_FLUSH call also happens for an empty
     * message, so zlib does not take the sync flush for a useless repeat of
     * the previous one and still emits the empty block (payload "00"). */
    int flush = Z_NO_FLUSH;
    for (;;) {
        uInt ai = in_left > 0x40000000u ? 0x40000000u : (uInt)in_left;
        uInt ao = out_left > 0x40000000u ? 0x40000000u : (uInt)out_left;
        z->avail_in = ai;
        z->avail_out = ao;
        int r = deflate(z, flush);
        in_left -= ai - z->avail_in;
        out_left -= ao - z->avail_out;
        if (r != Z_OK && r != Z_BUF_ERROR) {
            p->error = "deflate failed";
            deflateReset(z);
            errno = EIO;
            return -1;
        }
        if (flush == Z_SYNC_FLUSH && z->avail_out > 0) break; /* flushed completely */
        if (out_left == 0) {
            p->error = "compress buffer too small";
            deflateReset(z);
            errno = ENOSPC;
            return -1;
        }
        if (in_left == 0 && z->avail_out > 0) flush = Z_SYNC_FLUSH;
    }
    size_t n = cap - out_left;
    if (n < 4 || memcmp(out + n - 4, TAIL, 4) != 0) {
        p->error = "deflate output lacks the sync-flush tail";
        deflateReset(z);
        errno = EIO;
        return -1;
    }
    *out_len = n - 4;
    if (p->deflate_reset) deflateReset(z);
    return 0;
}

void ws_pmd_inflate_input(struct ws_pmd *p, const uint8_t *in, size_t len, bool fin)
{
    if (!p->in_message) {
        p->in_message = true;
        p->inflated = 0;
        p->in_any = false;
    }
    p->in = in;
    p->in_len = len;
    p->in_fin = fin;
    p->in_any |= len > 0;
    /* An empty compressed message has no block header for the tail to
     * complete: feeding the tail would leave zlib inside a stored block. */
    p->tail_left = fin && p->in_any ? 4 : 0;
}

static int inflate_fail(struct ws_pmd *p, int code, const char *why)
{
    p->error = why;
    p->in_len = 0;
    p->tail_left = 0;
    p->in_message = false;
    p->in_any = false;
    if (p->inflater) inflateReset(p->inflater);
    return code;
}

int ws_pmd_inflate_output(struct ws_pmd *p, uint8_t *out, size_t cap, size_t *produced)
{
    *produced = 0;
    if (cap == 0) return 1;
    z_stream *z = p->inflater;
    if (!z) {
        z = calloc(1, sizeof *z);
        if (!z) return inflate_fail(p, WS_CLOSE_INTERNAL_ERROR, "out of memory");
        if (inflateInit2(z, -15) != Z_OK) {
            free(z);
            return inflate_fail(p, WS_CLOSE_INTERNAL_ERROR, "inflateInit2 failed");
        }
        p->inflater = z;
    }
    for (;;) {
        const uint8_t *src;
        size_t src_len;
        bool tail = false;
        if (p->in_len) {
            src = p->in;
            src_len = p->in_len;
        } else if (p->tail_left) {
            src = TAIL + 4 - p->tail_left;
            src_len = p->tail_left;
            tail = true;
        } else {
            src = NULL;
            src_len = 0;
        }
        size_t room = cap - *produced;
        /* Never produce more than one byte past the bound: a bomb costs at
         * most max_inflated + 1 bytes of output. */
        if (p->max_inflated) {
            uint64_t left = p->max_inflated >= p->inflated ? p->max_inflated - p->inflated : 0;
            if (room > left + 1) room = (size_t)(left + 1);
        }
        uInt ai = src_len > 0x40000000u ? 0x40000000u : (uInt)src_len;
        uInt ao = room > 0x40000000u ? 0x40000000u : (uInt)room;
        z->next_in = (Bytef *)(uintptr_t)src;
        z->avail_in = ai;
        z->next_out = out + *produced;
        z->avail_out = ao;
        int r = inflate(z, Z_SYNC_FLUSH);
        size_t used = ai - z->avail_in, made = ao - z->avail_out;
        *produced += made;
        p->inflated += made;
        if (tail) {
            p->tail_left = (uint8_t)(p->tail_left - used);
        } else {
            p->in += used;
            p->in_len -= used;
        }
        if (p->max_inflated && p->inflated > p->max_inflated) {
            /* the byte past the bound only told us: not part of the output */
            *produced -= (size_t)(p->inflated - p->max_inflated);
            return inflate_fail(p, WS_CLOSE_TOO_BIG, "inflated message too big");
        }
        if (r == Z_STREAM_END) {
            /* The peer ended the deflate stream (BFINAL, RFC 7692 7.2.3.4).
             * What follows, if anything, starts a new stream (the RFC's
             * example adds one 0x00 header byte so that the tail completes
             * an empty stored block); if nothing follows, the tail is not
             * needed. */
            inflateReset(z);
            if (p->in_len == 0 && p->tail_left == 4) p->tail_left = 0;
        } else if (r == Z_MEM_ERROR) {
            return inflate_fail(p, WS_CLOSE_INTERNAL_ERROR, "out of memory");
        } else if (r != Z_OK && r != Z_BUF_ERROR) {
            return inflate_fail(p, WS_CLOSE_INVALID_PAYLOAD,
                                z->msg ? z->msg : "corrupt deflate data");
        }
        if (*produced == cap) return 1; /* out is full; zlib may hold more */
        /* Space is left, so zlib took all of src it could. */
        if (p->in_len == 0 && p->tail_left == 0) {
            if (p->in_fin) {
                p->in_message = false;
                p->in_fin = false;
                p->in_any = false;
                if (p->inflate_reset) inflateReset(z);
            }
            return 0;
        }
        if (used == 0 && made == 0)
            return inflate_fail(p, WS_CLOSE_INVALID_PAYLOAD, "deflate stream stuck");
    }
}

int ws_pmd_inflate_message(struct ws_pmd *p, const uint8_t *in, size_t len, uint8_t *out,
                           size_t cap, size_t *out_len)
{
    ws_pmd_inflate_input(p, in, len, true);
    size_t n = 0;
    int r = ws_pmd_inflate_output(p, out, cap, &n);
    *out_len = n;
    if (r == 1) {
        /* out is full: anything more means cap was too small */
        uint8_t probe[64];
        size_t more = 0;
        r = ws_pmd_inflate_output(p, probe, sizeof probe, &more);
        if (r == 0 && more == 0) return 0;
        if (r > 1) return r;
        return inflate_fail(p, WS_CLOSE_TOO_BIG, "inflated message larger than the buffer");
    }
    return r;
}
