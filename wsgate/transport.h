/* transport: the byte stream under the WebSocket codec: plain TCP, or TLS
 * (OpenSSL) on the same non-blocking socket, as two sets of ops. Operations
 * never block: they return -1 with errno EAGAIN when the socket is not ready,
 * and read_wait / write_wait then say which socket readiness (a mask of
 * TRANSPORT_READABLE / TRANSPORT_WRITABLE) makes a retry worthwhile: TLS may
 * need to write in order to read (its own records still queued) or to read
 * in order to write (a handshake). transport_events() turns "I want to read /
 * to write" into the readiness to wait for; nothing here knows the event
 * loop. A transport may hold output of its own (TLS records accepted by
 * writev but not yet taken by the socket, a KeyUpdate answer, close_notify):
 * unsent() says how much, flush() pushes it. */
#ifndef WSGATE_TRANSPORT_H
#define WSGATE_TRANSPORT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct transport;

enum { TRANSPORT_READABLE = 1, TRANSPORT_WRITABLE = 2 };

struct transport_ops {
    const char *name; /* "tcp", "tls" */
    int raw;          /* reads return what the socket holds (a short read drained it) */
    /* Read up to len bytes: >0 bytes, 0 at EOF, -1 with errno (EAGAIN). */
    ssize_t (*read)(struct transport *t, void *buf, size_t len);
    /* Write from iov: bytes written (maybe partial) or -1 with errno. */
    ssize_t (*writev)(struct transport *t, const struct iovec *iov, int iovcnt);
    /* Bytes already decrypted and buffered inside the transport (TLS), which
     * the socket's readiness will not announce. */
    size_t (*pending)(struct transport *t);
    /* Output the transport holds itself, not yet taken by the socket. */
    size_t (*unsent)(struct transport *t);
    /* Push that output: 0 when none is left, -1 with errno (EAGAIN: wait for
     * write_wait). */
    int (*flush)(struct transport *t);
    /* Give back memory held for traffic while the connection is idle (TLS:
     * the output queue once empty, OpenSSL's record buffers). */
    void (*release)(struct transport *t);
    /* End our direction: no more writes (TLS: close_notify first); the peer
     * reads EOF and can still send. Never blocks. */
    void (*shutdown)(struct transport *t);
    /* After a failed read/write: why, for logs, in buf (len bytes); "" when
     * errno says it all (plain TCP). Returns buf. */
    const char *(*error)(struct transport *t, char *buf, size_t len);
    /* Close the connection and release the transport's state (idempotent). */
    void (*close)(struct transport *t);
};

struct transport {
    const struct transport_ops *ops;
    int fd;              /* the socket; -1 after close */
    unsigned read_wait;  /* readiness a read waits for (TRANSPORT_READABLE unless TLS says) */
    unsigned write_wait; /* readiness a write or flush waits for (TRANSPORT_WRITABLE ...) */
    void *impl;          /* per-transport state (SSL *), owned by the transport */
};

/* The socket readiness to wait for when the owner wants to read and/or to
 * write (its own output, or the transport's unsent bytes). */
static inline unsigned transport_events(const struct transport *t, int want_read, int want_write)
{
    return (want_read ? t->read_wait : 0) | (want_write ? t->write_wait : 0);
}

/* Plain TCP on fd (takes ownership of fd). */
void transport_tcp_init(struct transport *t, int fd);

static inline ssize_t transport_read(struct transport *t, void *buf, size_t len)
{
    return t->ops->read(t, buf, len);
}
static inline ssize_t transport_writev(struct transport *t, const struct iovec *iov, int n)
{
    return t->ops->writev(t, iov, n);
}
static inline size_t transport_unsent(struct transport *t)
{
    return t->ops ? t->ops->unsent(t) : 0;
}
static inline int transport_flush(struct transport *t)
{
    return t->ops ? t->ops->flush(t) : 0;
}
static inline void transport_release(struct transport *t)
{
    if (t->ops)
        t->ops->release(t);
}
static inline void transport_close(struct transport *t)
{
    if (t->ops)
        t->ops->close(t);
}

/* Write buf[*off..len) and then the transport's own queue, advancing *off:
 * 0 once all of it is on the socket, -1 with errno (EAGAIN: wait for
 * write_wait, then call again). */
static inline int transport_write_all(struct transport *t, const void *buf, size_t len,
                                      size_t *off)
{
    while (*off < len) {
        struct iovec iov = { (char *)(uintptr_t)buf + *off, len - *off };
        ssize_t n = t->ops->writev(t, &iov, 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        *off += (size_t)n;
    }
    return transport_flush(t);
}

/* Shut down the write side (TLS: send close_notify, then the TCP FIN). */
static inline void transport_shutdown_write(struct transport *t)
{
    if (t->ops)
        t->ops->shutdown(t);
}

/* After a failed read/write: why, for logs ("tls: certificate verify failed:
 * self-signed certificate"); "" when errno says it all (plain TCP). */
static inline const char *transport_error(struct transport *t, char *buf, size_t len)
{
    if (!t->ops) {
        buf[0] = '\0';
        return buf;
    }
    return t->ops->error(t, buf, len);
}

/* ---- TLS (OpenSSL) ---- */

struct ssl_ctx_st;

/* A client context that verifies the server against the system CA store
 * plus ca_file (may be NULL). NULL with err on failure. */
struct ssl_ctx_st *transport_tls_client_ctx(const char *ca_file, char *err, size_t errlen);
/* A server context with a certificate chain and key (PEM files). */
struct ssl_ctx_st *transport_tls_server_ctx(const char *cert, const char *key, char *err,
                                            size_t errlen);

/* Drop our reference to a context (connections keep theirs). */
void transport_tls_ctx_free(struct ssl_ctx_st *ctx);

/* TLS on fd (takes ownership). Client side: verify the certificate for
 * host (name or IP address; also sent as SNI for names). Server side: host
 * NULL. The TLS handshake runs inside the first reads/writes. Returns 0 or -1
 * (the fd is closed then). */
int transport_tls_init(struct transport *t, int fd, struct ssl_ctx_st *ctx, const char *host);

#endif
