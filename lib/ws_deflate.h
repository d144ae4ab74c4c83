/* ws_deflate: permessage-deflate (RFC 7692) for the ws codec, on zlib.
 *
 * Negotiation: the client offers with ws_pmd_offer_format() and checks the
 * server's answer with ws_pmd_client_accept(); the server picks an offer with
 * ws_pmd_server_negotiate() and answers with ws_pmd_format(). The agreed
 * struct ws_pmd_params then configures a struct ws_pmd (one per connection)
 * that compresses whole outgoing messages and inflates incoming ones as their
 * chunks arrive, with a hard bound on the inflated size of a message
 * (decompression-bomb protection). zlib state is allocated lazily on first
 * use, so an idle connection with compression negotiated costs nothing. */
#ifndef OPSKIT_WS_DEFLATE_H
#define OPSKIT_WS_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ws.h"

/* Parameters of one permessage-deflate offer or agreement. Window bits are
 * 8..15; 0 means "parameter absent" (15 is implied in an agreement). In an
 * offer, client_max_window_bits_novalue records the valueless form (client
 * supports the parameter but leaves the value to the server). */
struct ws_pmd_params {
    bool server_no_context_takeover;
    bool client_no_context_takeover;
    uint8_t server_max_window_bits;
    uint8_t client_max_window_bits;
    bool client_max_window_bits_novalue;
};

/* What a server is willing to agree to. */
struct ws_pmd_server_config {
    bool server_no_context_takeover; /* always reset our compressor per message
                                        (saves memory, costs ratio) */
    bool client_no_context_takeover; /* ask the client to do the same */
    uint8_t server_max_window_bits;  /* our compressor window, 9..15 (0 = 15) */
    uint8_t client_max_window_bits;  /* cap on the client's window if the
                                        client allows us to set it (0 = 15) */
};

/* Format params as a Sec-WebSocket-Extensions value ("permessage-deflate;
 * server_no_context_takeover; client_max_window_bits=10" ...), into out (cap
 * bytes, NUL-terminated). Used both for a client offer and a server answer.
 * Returns the length, or -1 if it does not fit (80 bytes always suffice). */
int ws_pmd_format(const struct ws_pmd_params *p, char *out, size_t cap);

/* Server side: parse the client's Sec-WebSocket-Extensions value (all of
 * them joined with ", "; may list other extensions, which are skipped) and
 * accept the first permessage-deflate offer compatible with cfg. Returns 1
 * with *agreed filled (format it with ws_pmd_format() into the 101
 * response), 0 when there is no acceptable offer (answer without the
 * extension), or -1 when the header is malformed (answer 400). */
int ws_pmd_server_negotiate(const char *header, const struct ws_pmd_server_config *cfg,
                            struct ws_pmd_params *agreed);

/* Client side: check the server's Sec-WebSocket-Extensions answer against
 * what we offered. Returns 1 with *agreed filled when permessage-deflate was
 * accepted consistently with the offer, 0 when the header is NULL/empty (no
 * compression), -1 when the answer is invalid (unknown extension, duplicate
 * or bad parameter, a window larger than offered...: fail the connection). */
int ws_pmd_client_accept(const char *header, const struct ws_pmd_params *offered,
                         struct ws_pmd_params *agreed);

/* Per-connection compression state. Treat as private; ws_pmd_init() it,
 * ws_pmd_free() it (frees the zlib streams). */
struct ws_pmd {
    void *deflater;        /* z_stream *, allocated on first compress */
    void *inflater;        /* z_stream *, allocated on first inflate */
    bool deflate_reset;    /* no context takeover for what we send */
    bool inflate_reset;    /* no context takeover for what we receive */
    int deflate_window;    /* 9..15 */
    int level;             /* zlib level */
    int mem_level;         /* zlib memLevel */
    uint64_t max_inflated; /* bound on one inflated message, 0 = none */
    uint64_t inflated;     /* bytes inflated in the current message */
    uint8_t tail_left;     /* bytes of 00 00 ff ff still to feed */
    bool in_fin;           /* current input is the end of the message */
    bool in_message;       /* inflating a message (tail not yet fed) */
    bool in_any;           /* the current message had compressed bytes */
    const uint8_t *in;     /* pending compressed input (not owned) */
    size_t in_len;
    const char *error; /* last error, static string */
};

/* Set up for an agreement made as `role`. max_inflated bounds the inflated
 * size of each received message (0 = no bound; don't). level is the zlib
 * level (-1 = default, 1 = fast), mem_level 1..9 (0 = 8). */
void ws_pmd_init(struct ws_pmd *p, const struct ws_pmd_params *agreed, enum ws_role role,
                 uint64_t max_inflated, int level, int mem_level);
void ws_pmd_free(struct ws_pmd *p);

/* Give back zlib memory between messages where the agreement allows it: the
 * compressor when it resets per message anyway (our no_context_takeover) and
 * the inflater when the peer resets per message and no message is being
 * inflated. Both come back lazily on next use. Call it when a connection
 * goes idle: a compressor costs about 2^(window+2) + 2^(mem_level+9) bytes
 * (256 KiB at 15/8), an inflater about 7 KiB + 2^window. */
void ws_pmd_idle(struct ws_pmd *p);

/* Upper bound of ws_pmd_compress() output for len input bytes. */
size_t ws_pmd_compress_bound(size_t len);

/* Compress one whole message in[0..len) into out (cap >=
 * ws_pmd_compress_bound(len)); the 00 00 ff ff tail is removed as RFC 7692
 * requires. Send it with RSV1 on the first frame. Returns 0 with *out_len
 * set, or -1 (errno ENOMEM/ENOSPC/EIO) with p->error set. */
int ws_pmd_compress(struct ws_pmd *p, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                    size_t *out_len);

/* Streaming inflate of a received compressed message. Give each DATA chunk
 * with ws_pmd_inflate_input() (fin = ev->message_end), then call
 * ws_pmd_inflate_output() until it returns 0; the input buffer must stay
 * valid until then. */
void ws_pmd_inflate_input(struct ws_pmd *p, const uint8_t *in, size_t len, bool fin);

/* Inflate pending input into out[0..cap); *produced = bytes written. Returns
 * 1 when out is full and more output may follow (consume it, call again),
 * 0 when all input is consumed and everything it gives is in out (after the
 * chunk with fin, the message is complete and the next input starts a new
 * message), or the close code to fail the connection with: 1009 when the
 * message inflates past max_inflated (output is cut at the bound, so a bomb
 * never costs more than max_inflated + cap), 1007 when the data is corrupt
 * (p->error says why), 1011 when out of memory. */
int ws_pmd_inflate_output(struct ws_pmd *p, uint8_t *out, size_t cap, size_t *produced);

/* Whole-message convenience: inflate in[0..len) (a complete message) into
 * out (cap bytes). Returns 0 with *out_len, else a close code as above (1009
 * also when cap is too small). */
int ws_pmd_inflate_message(struct ws_pmd *p, const uint8_t *in, size_t len, uint8_t *out,
                           size_t cap, size_t *out_len);

#endif
