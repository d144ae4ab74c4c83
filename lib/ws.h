/* ws: the RFC 6455 WebSocket frame codec, the hot path of wsgate.
 *
 * Frames are parsed in place in a caller-owned read buffer and payloads are
 * unmasked in place with word-sized XORs; nothing is copied and nothing is
 * allocated per frame. Sending is the mirror image: ws_frame_header_write()
 * fills a 2..14 byte header that the caller sends with writev() in front of
 * the payload (masked in place or into a destination on the client side).
 *
 * Three layers, use the one that fits:
 *   - ws_frame_parse(): stateless header parse (needs-more / error / header).
 *   - struct ws_decoder: per-connection receive state. Enforces the role
 *     (masking), reserved bits, opcodes, fragmentation, control-frame rules,
 *     frame/message size limits, UTF-8 of text and close reasons, and yields
 *     data-payload chunks as soon as they arrive (a relay never waits for a
 *     whole frame; memory stays bounded by the read buffer).
 *   - struct ws_message: optional whole-message assembly on top of the decoder.
 * Control frames (ping, pong, close) are always delivered whole: the decoder
 * does not consume a control frame until all of it (<= 131 bytes) is in the
 * buffer, so a read buffer must be at least WS_MIN_READ_BUFFER bytes.
 *
 * permessage-deflate lives in ws_deflate.h, the HTTP upgrade in
 * ws_handshake.h. */
#ifndef OPSKIT_WS_H
#define OPSKIT_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* Close status codes (RFC 6455 7.4.1). 1005, 1006 and 1015 are never sent on
 * the wire; they only describe a close locally. */
enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL_ERROR = 1002,
    WS_CLOSE_UNSUPPORTED_DATA = 1003, /* e.g. text in a binary-only tunnel */
    WS_CLOSE_NO_STATUS = 1005,        /* close frame without a body */
    WS_CLOSE_ABNORMAL = 1006,         /* no close frame at all */
    WS_CLOSE_INVALID_PAYLOAD = 1007,  /* bad UTF-8, corrupt deflate data */
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_MANDATORY_EXT = 1010,
    WS_CLOSE_INTERNAL_ERROR = 1011,
    WS_CLOSE_TLS = 1015,
};

/* Which end of the connection we are. A server receives masked frames and
 * sends unmasked ones; a client the opposite. */
enum ws_role {
    WS_ROLE_SERVER = 0,
    WS_ROLE_CLIENT = 1,
};

/* Reserved bits as stored in ws_frame_header.rsv (bits 6..4 of byte 0,
 * shifted down): RSV1 = 4, RSV2 = 2, RSV3 = 1. RSV1 = permessage-deflate. */
#define WS_RSV1 0x4u
#define WS_RSV2 0x2u
#define WS_RSV3 0x1u

#define WS_MAX_HEADER 14                                  /* 2 + 8 (length) + 4 (mask key) */
#define WS_MAX_CONTROL_PAYLOAD 125                        /* RFC 6455 5.5 */
#define WS_MAX_CONTROL_FRAME (6 + WS_MAX_CONTROL_PAYLOAD) /* a whole ping/pong/close */
#define WS_MAX_CLOSE_REASON (WS_MAX_CONTROL_PAYLOAD - 2)  /* 123 bytes */
/* Smallest read buffer that can hold any header plus a whole control frame. */
#define WS_MIN_READ_BUFFER (WS_MAX_HEADER + WS_MAX_CONTROL_PAYLOAD)

/* A parsed (or to-be-written) frame header. */
struct ws_frame_header {
    uint64_t payload_len; /* length of the payload that follows the header */
    uint8_t header_len;   /* 2..14: bytes of header in front of the payload */
    uint8_t opcode;       /* enum ws_opcode (4 bits, unknown ones included) */
    uint8_t fin;          /* 1 = final fragment */
    uint8_t rsv;          /* WS_RSV1|WS_RSV2|WS_RSV3 bits */
    uint8_t masked;       /* 1 = payload is masked with mask[] */
    uint8_t mask[4];      /* masking key (valid when masked) */
};

/* Result of ws_frame_parse() and kind of ws_decoder event. */
enum ws_parse_result {
    WS_PARSE_ERROR = -1, /* protocol error; close code given separately */
    WS_PARSE_MORE = 0,   /* need more bytes for a header */
    WS_PARSE_OK = 1,     /* header parsed */
};

/* Stateless parse of the frame header at buf[0..len). Returns WS_PARSE_MORE
 * when the header is incomplete (nothing is stored), WS_PARSE_OK with *hdr
 * filled (the payload starts at buf + hdr->header_len and may not have arrived
 * yet), or WS_PARSE_ERROR with *close_code set (may be NULL) for what can be
 * decided from the header alone: unknown opcode, fragmented or > 125 byte
 * control frame, 64-bit length with the top bit set (all 1002). Role, RSV,
 * fragmentation-sequence and size checks are the decoder's job. */
int ws_frame_parse(const uint8_t *buf, size_t len, struct ws_frame_header *hdr,
                   uint16_t *close_code);

/* Header length that ws_frame_header_write() will produce. */
size_t ws_frame_header_size(uint64_t payload_len, bool masked);

/* Write the header described by hdr (fin, rsv, opcode, masked, mask,
 * payload_len; header_len is ignored and set) into out, which must have
 * WS_MAX_HEADER bytes. Returns the header length (2..14). The payload itself
 * is not touched: on the client side mask it with ws_mask(..., hdr->mask, 0)
 * or ws_mask_copy() before sending. */
size_t ws_frame_header_write(uint8_t out[WS_MAX_HEADER], struct ws_frame_header *hdr);

/* Convenience for senders: fill a header for one frame as role `role` sends
 * it (a client gets a fresh random mask key in hdr->mask and the MASK bit),
 * write it to out and return its length. rsv is usually 0 or WS_RSV1 on the
 * first frame of a compressed message. */
size_t ws_frame_begin(uint8_t out[WS_MAX_HEADER], struct ws_frame_header *hdr, enum ws_role role,
                      unsigned opcode, bool fin, unsigned rsv, uint64_t payload_len);

/* XOR buf[0..len) in place with the 4-byte key, starting at key position
 * `offset` (0..3; use the value returned by the previous call to continue a
 * payload that arrives in pieces). Masking and unmasking are the same
 * operation. Works a machine word at a time; any alignment. Returns the key
 * offset after the last byte: (offset + len) & 3. */
size_t ws_mask(uint8_t *buf, size_t len, const uint8_t key[4], size_t offset);

/* Same, reading src and writing dst (may be equal; must not otherwise
 * overlap). */
size_t ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                    size_t offset);

/* A fresh masking key from a fast per-thread PRNG seeded from getrandom(). */
void ws_mask_key(uint8_t key[4]);

/* Fill buf with len bytes from the same PRNG (not for secrets). */
void ws_random_bytes(void *buf, size_t len);

/* ---- control frames and close ---- */

/* Build a complete control frame (opcode WS_OP_PING, WS_OP_PONG or
 * WS_OP_CLOSE) as `role` sends it: header, then the payload (masked for a
 * client) into out, which must have WS_MAX_CONTROL_FRAME bytes. Returns the
 * frame length, or -1 with errno = EINVAL if len > 125 or opcode is not a
 * control opcode. */
ssize_t ws_control_frame(uint8_t out[WS_MAX_CONTROL_FRAME], enum ws_role role, unsigned opcode,
                         const void *payload, size_t len);

/* Build a close frame. code 0 sends an empty body (peer sees 1005); otherwise
 * code must be valid on the wire (ws_close_code_valid(), else -1/EINVAL).
 * reason may be NULL; it is cut to WS_MAX_CLOSE_REASON bytes at a UTF-8
 * character boundary. Returns the frame length. */
ssize_t ws_close_frame(uint8_t out[WS_MAX_CONTROL_FRAME], enum ws_role role, uint16_t code,
                       const char *reason);

/* Build just the close payload (code in network order + reason, cut as
 * above) into out (WS_MAX_CONTROL_PAYLOAD bytes). Returns its length (0 for
 * code 0), or -1/EINVAL for a code not valid on the wire. */
ssize_t ws_close_payload_build(uint8_t out[WS_MAX_CONTROL_PAYLOAD], uint16_t code,
                               const char *reason);

/* Parse a received close payload. An empty payload gives code 1005 and an
 * empty reason. Returns 0, or the close code to fail the connection with:
 * 1002 for a 1-byte payload or a code not valid on the wire, 1007 for a
 * reason that is not UTF-8. *reason points into payload (not NUL-terminated). */
int ws_close_payload_parse(const uint8_t *payload, size_t len, uint16_t *code,
                           const uint8_t **reason, size_t *reason_len);

/* True for codes a peer may send: 1000-1003, 1007-1011, 3000-4999. */
bool ws_close_code_valid(unsigned code);

/* Short name of a close code for logs ("normal", "protocol error", ...). */
const char *ws_close_code_str(unsigned code);

/* ---- UTF-8 validation (incremental, for text messages and close reasons) ---- */

#define WS_UTF8_ACCEPT 0u
#define WS_UTF8_REJECT 12u

/* Advance the validator state (start with WS_UTF8_ACCEPT) over buf[0..len).
 * Returns the new state: WS_UTF8_REJECT as soon as the input cannot be UTF-8
 * (sticky), WS_UTF8_ACCEPT at a character boundary, anything else when a
 * character is cut by the end of buf. A message is valid when the state after
 * its last byte is WS_UTF8_ACCEPT. Rejects overlongs, surrogates, > U+10FFFF. */
uint32_t ws_utf8_validate(uint32_t state, const uint8_t *buf, size_t len);

/* Whole-buffer check. */
bool ws_utf8_valid(const uint8_t *buf, size_t len);

/* ---- the per-connection decoder ---- */

struct ws_decoder_config {
    enum ws_role role;         /* our role: a server requires masked frames */
    uint64_t max_frame_size;   /* payload bytes per frame; 0 = no limit */
    uint64_t max_message_size; /* payload bytes per message (wire size for a
                                  compressed one: bound the inflated size with
                                  ws_pmd too); 0 = no limit */
    unsigned allowed_rsv;      /* RSV bits an extension negotiated: WS_RSV1 for
                                  permessage-deflate, else 0 */
    bool binary_only;          /* a text message is an error (1003) */
    bool no_utf8_check;        /* skip UTF-8 validation of (uncompressed) text
                                  messages; close reasons are always checked */
};

enum ws_event_type {
    WS_EV_NEED_MORE = 0, /* every useful byte was consumed: read more */
    WS_EV_DATA,          /* a chunk of a text/binary message's payload */
    WS_EV_CONTROL,       /* a whole ping, pong or close frame */
    WS_EV_ERROR,         /* protocol violation: send close(close_code) and stop */
};

struct ws_event {
    enum ws_event_type type;
    uint8_t opcode;     /* DATA: WS_OP_TEXT/WS_OP_BINARY of the message;
                           CONTROL: WS_OP_PING/PONG/CLOSE */
    bool message_start; /* DATA: first chunk of a message */
    bool message_end;   /* DATA: last chunk of a message (after it the next
                           DATA event starts a new message) */
    bool frame_end;     /* DATA: last chunk of the current frame */
    bool compressed;    /* DATA: the message had RSV1 (permessage-deflate):
                           feed the chunks to ws_pmd_inflate_*() */
    uint8_t *data;      /* DATA/CONTROL: payload, unmasked in place; points
                           into the caller's buffer (NULL when len == 0) */
    size_t len;
    uint16_t close_code;   /* CONTROL close: received code (1005 if none);
                              ERROR: the code to close with */
    const uint8_t *reason; /* CONTROL close: reason bytes (in the buffer) */
    size_t reason_len;
    const char *error; /* ERROR: what was wrong, for logs (static) */
};

/* Receive state of one connection. Initialise with ws_decoder_init(); no
 * heap memory is owned, nothing to free. Treat fields as private. */
struct ws_decoder {
    struct ws_decoder_config cfg;
    struct ws_frame_header hdr; /* the data frame being delivered */
    uint64_t frame_left;        /* its payload bytes not yet delivered */
    uint64_t msg_len;           /* payload bytes of the current message so far */
    uint32_t utf8_state;
    uint8_t mask_off;   /* key offset of the next payload byte */
    uint8_t in_frame;   /* delivering a data frame's payload */
    uint8_t in_message; /* a fragmented message awaits continuations */
    uint8_t msg_opcode;
    uint8_t msg_compressed;
    uint8_t msg_started; /* the first chunk of the message was delivered */
    uint8_t closed;      /* a close frame was received */
    uint16_t err_code;   /* sticky error */
    const char *err;
};

void ws_decoder_init(struct ws_decoder *d, const struct ws_decoder_config *cfg);

/* Consume bytes from buf[0..len) and report the next event in *ev. Returns
 * the number of bytes consumed. Payload bytes delivered in a DATA or CONTROL
 * event are unmasked in place and consumed; bytes not consumed (an incomplete
 * header or control frame, at most WS_MIN_READ_BUFFER - 1 bytes) must be
 * presented again at the start of the next call, followed by new data. Call
 * in a loop until it returns WS_EV_NEED_MORE (which may still consume bytes)
 * or WS_EV_ERROR (sticky: every later call reports the same error and
 * consumes nothing). Every data frame yields at least one DATA event, even
 * an empty one. After a close frame any further frame is an error. */
size_t ws_decoder_feed(struct ws_decoder *d, uint8_t *buf, size_t len, struct ws_event *ev);

/* True between the first and the last frame of a fragmented message. */
bool ws_decoder_in_message(const struct ws_decoder *d);

/* ---- whole-message mode ---- */

/* Collects a message from DATA events into one growable heap buffer, owned by
 * the struct and reused from message to message (no allocation per frame).
 * Zero-initialise, or use ws_message_init(); release with ws_message_free().
 * An unfragmented message that arrived in one chunk (message_start &&
 * message_end) can be used straight from ev->data without this. */
struct ws_message {
    uint8_t *data; /* len bytes of payload (compressed if `compressed`) */
    size_t len;
    size_t cap;
    uint8_t opcode; /* WS_OP_TEXT or WS_OP_BINARY */
    bool compressed;
    bool complete; /* set by the chunk with message_end; the next append
                      starts a new message */
};

void ws_message_init(struct ws_message *m);

/* Append a DATA event's chunk. Returns 1 when the message is complete, 0
 * when more chunks are needed, -1 with errno = EMSGSIZE if the message would
 * exceed max bytes (0 = no limit) or ENOMEM. */
int ws_message_append(struct ws_message *m, const struct ws_event *ev, size_t max);

void ws_message_free(struct ws_message *m);

#endif
