/* transport: the byte stream under the WebSocket codec. A plain TCP socket
 * today; TLS (OpenSSL, SSL_read/SSL_write on the same non-blocking fd) slots
 * in as another set of ops without touching the relay. Operations never
 * block: they return -1 with errno EAGAIN when the socket is not ready, and
 * `want` tells the event loop which readiness (EV_READ/EV_WRITE) the
 * transport needs before retrying (TLS may need to read in order to write). */
#ifndef WSGATE_TRANSPORT_H
#define WSGATE_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct transport;

struct transport_ops {
    const char *name; /* "tcp", "tls" */
    /* Read up to len bytes: >0 bytes, 0 at EOF, -1 with errno (EAGAIN). */
    ssize_t (*read)(struct transport *t, void *buf, size_t len);
    /* Write from iov: bytes written (maybe partial) or -1 with errno. */
    ssize_t (*writev)(struct transport *t, const struct iovec *iov, int iovcnt);
    /* Bytes already decrypted and buffered inside the transport (TLS), which
     * the socket's readiness will not announce. */
    size_t (*pending)(struct transport *t);
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
    int fd;     /* the socket; -1 after close */
    int want;   /* EV_READ/EV_WRITE needed after the last EAGAIN (0 = the obvious one) */
    void *impl; /* per-transport state (SSL *), owned by the transport */
};

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
static inline void transport_close(struct transport *t)
{
    if (t->ops)
        t->ops->close(t);
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
