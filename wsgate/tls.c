/* tls: the OpenSSL transport (see transport.h). SSL_read reads the
 * non-blocking socket directly; everything OpenSSL writes (records of
 * SSL_write, handshake flights, a KeyUpdate answer, alerts, close_notify)
 * goes into an output queue of ours through a small BIO that never refuses,
 * and flush() sends the queue. So OpenSSL never sees a write that would
 * block: SSL_write never has a half-written record to be retried with the
 * same arguments, and an SSL_read that must answer a TLS 1.3 KeyUpdate while
 * our output is backed up queues the answer instead of failing the
 * connection (OpenSSL 3.0 fails it with "bad length" when an application
 * write is pending). writev accepts data only while the queue is empty;
 * reads go on while it holds less than TLS_OUT_MAX (a peer that floods
 * KeyUpdates without reading cannot grow it without bound). Verification
 * uses the system CA store (plus --ca-file) and checks the host name or IP
 * address. */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport.h"

#define TLS_WRITE_CHUNK (256 * 1024) /* plaintext encrypted per writev call at most */
#define TLS_OUT_MAX (1024 * 1024)    /* queued output above which reads wait */

struct tls_impl {
    SSL *ssl;
    int fd;
    int last_err;       /* SSL_get_error of the last failure */
    unsigned long ossl; /* ERR_get_error of the last failure */
    uint8_t *out;       /* queued output: out[off..len) */
    size_t off, len, cap;
    int oom;            /* the queue could not grow: the connection is lost */
    int fin;            /* send the TCP FIN once the queue is empty */
};

/* ---- the output queue and its BIO ---- */

static int out_bio_write(BIO *b, const char *data, int n)
{
    struct tls_impl *ti = BIO_get_data(b);
    if (n <= 0)
        return 0;
    if (ti->off == ti->len)
        ti->off = ti->len = 0;
    if (ti->len + (size_t)n > ti->cap) {
        if (ti->off > 0) {
            memmove(ti->out, ti->out + ti->off, ti->len - ti->off);
            ti->len -= ti->off;
            ti->off = 0;
        }
        size_t cap = ti->cap ? ti->cap : 16384;
        while (cap < ti->len + (size_t)n)
            cap *= 2;
        if (cap != ti->cap) {
            uint8_t *nb = realloc(ti->out, cap);
            if (!nb) {
                ti->oom = 1;
                return -1;
            }
            ti->out = nb;
            ti->cap = cap;
        }
    }
    memcpy(ti->out + ti->len, data, (size_t)n);
    ti->len += (size_t)n;
    return n;
}

static long out_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0; /* flushing is ours, after the call */
}

static int out_bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *out_method;

static void out_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "opskit tls out");
    if (m && BIO_meth_set_write(m, out_bio_write) && BIO_meth_set_ctrl(m, out_bio_ctrl) &&
        BIO_meth_set_create(m, out_bio_create))
        out_method = m;
}

static size_t tls_unsent(struct transport *t)
{
    struct tls_impl *ti = t->impl;
    return ti ? ti->len - ti->off : 0;
}

static int tls_flush(struct transport *t)
{
    struct tls_impl *ti = t->impl;
    t->write_wait = TRANSPORT_WRITABLE;
    if (!ti)
        return 0;
    if (ti->oom) {
        errno = ENOMEM;
        return -1;
    }
    while (ti->off < ti->len) {
        ssize_t n = send(ti->fd, ti->out + ti->off, ti->len - ti->off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1; /* EAGAIN: wait for writable */
        }
        ti->off += (size_t)n;
    }
    ti->off = ti->len = 0;
    if (ti->cap > 4 * TLS_WRITE_CHUNK) { /* a burst grew it: give it back */
        free(ti->out);
        ti->out = NULL;
        ti->cap = 0;
    }
    if (ti->fin) {
        ti->fin = 0;
        shutdown(ti->fd, SHUT_WR);
    }
    return 0;
}

static void tls_release(struct transport *t)
{
    struct tls_impl *ti = t->impl;
    if (!ti || ti->off < ti->len)
        return;
    free(ti->out);
    ti->out = NULL;
    ti->off = ti->len = ti->cap = 0;
    if (ti->ssl)
        (void)SSL_free_buffers(ti->ssl); /* refuses while a record is half read */
}

/* ---- reads and writes ---- */

/* SSL_read/SSL_write returned r <= 0: EAGAIN with *wait set, 0 (EOF) or -1. */
static ssize_t fail(struct tls_impl *ti, int r, unsigned *wait)
{
    int e = SSL_get_error(ti->ssl, r);
    ti->last_err = e;
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *wait = TRANSPORT_READABLE;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE: /* not from our queue; kept for safety */
        *wait = TRANSPORT_WRITABLE;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        ti->ossl = ERR_get_error();
        if (errno == 0)
            return 0; /* EOF without close_notify: treat as EOF */
        return -1;
    default:
        ti->ossl = ERR_get_error();
        ERR_clear_error();
        errno = ti->oom ? ENOMEM : EPROTO;
        return -1;
    }
}

static ssize_t tls_read(struct transport *t, void *buf, size_t len)
{
    struct tls_impl *ti = t->impl;
    t->read_wait = TRANSPORT_READABLE;
    if (tls_unsent(t) >= TLS_OUT_MAX && tls_flush(t) < 0) {
        if (errno != EAGAIN)
            return -1;
        t->read_wait = TRANSPORT_WRITABLE; /* our queue first */
        return -1;
    }
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(ti->ssl, buf, len > 0x40000000 ? 0x40000000 : (int)len);
    int saved = errno;
    /* what the read made OpenSSL write (handshake, KeyUpdate answer) goes
     * out now if the socket takes it; else it waits in the queue */
    if (tls_unsent(t))
        (void)tls_flush(t); /* a dead socket: the next read or write reports it */
    errno = saved;
    if (r > 0)
        return r;
    ssize_t f = fail(ti, r, &t->read_wait);
    if (f < 0 && errno == EAGAIN && tls_unsent(t))
        t->read_wait |= TRANSPORT_WRITABLE; /* a handshake flight still queued */
    return f;
}

static ssize_t tls_writev(struct transport *t, const struct iovec *iov, int iovcnt)
{
    struct tls_impl *ti = t->impl;
    t->write_wait = TRANSPORT_WRITABLE;
    if (tls_flush(t) < 0)
        return -1; /* EAGAIN: the queue first, so it stays bounded */
    ssize_t total = 0;
    for (int i = 0; i < iovcnt && total < TLS_WRITE_CHUNK; i++) {
        size_t off = 0;
        while (off < iov[i].iov_len && total < TLS_WRITE_CHUNK) {
            ERR_clear_error();
            errno = 0;
            size_t n = iov[i].iov_len - off;
            if (n > (size_t)(TLS_WRITE_CHUNK - total))
                n = (size_t)(TLS_WRITE_CHUNK - total);
            int r = SSL_write(ti->ssl, (const char *)iov[i].iov_base + off, (int)n);
            if (r <= 0) {
                unsigned wait = TRANSPORT_WRITABLE;
                ssize_t f = fail(ti, r, &wait);
                /* a handshake: the flight it queued leaves first */
                if (tls_flush(t) < 0 && errno != EAGAIN)
                    return -1;
                if (f < 0 && errno == EAGAIN)
                    t->write_wait = tls_unsent(t) ? TRANSPORT_WRITABLE : wait;
                if (total > 0 && f < 0 && errno == EAGAIN)
                    return total;
                if (f == 0) {
                    errno = EPIPE;
                    return -1;
                }
                return f;
            }
            off += (size_t)r;
            total += r;
        }
    }
    /* push what was encrypted; a partial send leaves the rest queued, and the
     * next writev (or flush) waits for it */
    if (tls_flush(t) < 0 && errno != EAGAIN)
        return -1;
    return total;
}

static size_t tls_pending(struct transport *t)
{
    struct tls_impl *ti = t->impl;
    return ti && ti->ssl ? (size_t)SSL_pending(ti->ssl) : 0;
}

static void tls_shutdown(struct transport *t)
{
    struct tls_impl *ti = t->impl;
    if (ti && ti->ssl && SSL_is_init_finished(ti->ssl))
        SSL_shutdown(ti->ssl); /* close_notify; never waits for the peer's */
    if (ti) {
        ti->fin = 1; /* the FIN after close_notify and whatever is queued */
        (void)tls_flush(t);
    } else if (t->fd >= 0) {
        shutdown(t->fd, SHUT_WR);
    }
}

static const char *tls_error(struct transport *t, char *buf, size_t len)
{
    buf[0] = '\0';
    struct tls_impl *ti = t->impl;
    if (!ti)
        return buf;
    long vr = SSL_get_verify_result(ti->ssl);
    if (vr != X509_V_OK) {
        snprintf(buf, len, "tls: certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
        return buf;
    }
    if (ti->ossl) {
        char e[256];
        ERR_error_string_n(ti->ossl, e, sizeof e);
        snprintf(buf, len, "tls: %s", e);
    }
    return buf;
}

static void tls_close(struct transport *t)
{
    struct tls_impl *ti = t->impl;
    if (ti) {
        if (ti->ssl) {
            if (SSL_is_init_finished(ti->ssl))
                SSL_shutdown(ti->ssl); /* best effort close_notify, never waits */
            (void)tls_flush(t);
            SSL_free(ti->ssl);
        }
        free(ti->out);
        free(ti);
        t->impl = NULL;
    }
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
}

static const struct transport_ops tls_ops = {
    .name = "tls",
    .read = tls_read,
    .writev = tls_writev,
    .pending = tls_pending,
    .unsent = tls_unsent,
    .flush = tls_flush,
    .release = tls_release,
    .shutdown = tls_shutdown,
    .error = tls_error,
    .close = tls_close,
};

static void ossl_err(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "%s%s%s", what, buf[0] ? ": " : "", buf);
    ERR_clear_error();
}

struct ssl_ctx_st *transport_tls_client_ctx(const char *ca_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ossl_err(err, errlen, "TLS client context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        ossl_err(err, errlen, "system CA store");
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (ca_file && *ca_file && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
        ossl_err(err, errlen, ca_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

struct ssl_ctx_st *transport_tls_server_ctx(const char *cert, const char *key, char *err,
                                            size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ossl_err(err, errlen, "TLS server context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    char what[600];
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(what, sizeof what, "-tls-cert %s", cert);
        ossl_err(err, errlen, what);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(what, sizeof what, "-tls-key %s", key);
        ossl_err(err, errlen, what);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int transport_tls_init(struct transport *t, int fd, struct ssl_ctx_st *ctx, const char *host)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, out_method_init);
    struct tls_impl *ti = calloc(1, sizeof *ti);
    SSL *ssl = ti && out_method ? SSL_new(ctx) : NULL;
    BIO *wb = ssl ? BIO_new(out_method) : NULL;
    if (!wb || SSL_set_rfd(ssl, fd) != 1) {
        BIO_free(wb);
        SSL_free(ssl);
        free(ti);
        close(fd);
        return -1;
    }
    BIO_set_data(wb, ti);
    SSL_set0_wbio(ssl, wb); /* the SSL owns it now */
    ti->fd = fd;
    if (host) {
        unsigned char ip[16];
        int is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
        char sni[256]; /* the macro casts away const */
        snprintf(sni, sizeof sni, "%s", host);
        if (!is_ip)
            SSL_set_tlsext_host_name(ssl, sni);
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        if (is_ip)
            X509_VERIFY_PARAM_set1_ip_asc(vp, host);
        else
            SSL_set1_host(ssl, host);
        SSL_set_connect_state(ssl);
    } else {
        SSL_set_accept_state(ssl);
    }
    ti->ssl = ssl;
    t->ops = &tls_ops;
    t->fd = fd;
    t->read_wait = TRANSPORT_READABLE;
    t->write_wait = TRANSPORT_WRITABLE;
    t->impl = ti;
    return 0;
}

void transport_tls_ctx_free(struct ssl_ctx_st *ctx)
{
    SSL_CTX_free(ctx);
}
