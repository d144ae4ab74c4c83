/* tls: the OpenSSL transport (see transport.h). SSL_read/SSL_write run on the
 * same non-blocking socket as plain TCP; WANT_READ/WANT_WRITE become EAGAIN
 * with t->want saying which readiness to wait for. Verification uses the
 * system CA store (plus --ca-file) and checks the host name or IP address. */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport.h"

struct tls_impl {
    SSL *ssl;
    int last_err;       /* SSL_get_error of the last failure */
    unsigned long ossl; /* ERR_get_error of the last failure */
};

static ssize_t fail(struct transport *t, struct tls_impl *ti, int r)
{
    int e = SSL_get_error(ti->ssl, r);
    ti->last_err = e;
    switch (e) {
    case SSL_ERROR_WANT_READ:
        t->want = EV_READ;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        t->want = EV_WRITE;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        ti->ossl = ERR_get_error();
        if (errno == 0 || ti->ossl == 0) {
            if (errno == 0)
                return 0; /* EOF without close_notify: treat as EOF */
        }
        return -1;
    default:
        ti->ossl = ERR_get_error();
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

static ssize_t tls_read(struct transport *t, void *buf, size_t len)
{
    struct tls_impl *ti = t->impl;
    t->want = 0;
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(ti->ssl, buf, len > 0x40000000 ? 0x40000000 : (int)len);
    if (r > 0)
        return r;
    return fail(t, ti, r);
}

static ssize_t tls_writev(struct transport *t, const struct iovec *iov, int iovcnt)
{
    struct tls_impl *ti = t->impl;
    ssize_t total = 0;
    t->want = 0;
    for (int i = 0; i < iovcnt; i++) {
        size_t off = 0;
        while (off < iov[i].iov_len) {
            ERR_clear_error();
            errno = 0;
            size_t n = iov[i].iov_len - off;
            int r = SSL_write(ti->ssl, (const char *)iov[i].iov_base + off,
                              n > 0x40000000 ? 0x40000000 : (int)n);
            if (r <= 0) {
                ssize_t f = fail(t, ti, r);
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
    if (t->fd >= 0)
        shutdown(t->fd, SHUT_WR);
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
            SSL_free(ti->ssl);
        }
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
    struct tls_impl *ti = calloc(1, sizeof *ti);
    SSL *ssl = ti ? SSL_new(ctx) : NULL;
    if (!ssl || SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        free(ti);
        close(fd);
        return -1;
    }
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
    t->want = 0;
    t->impl = ti;
    return 0;
}

void transport_tls_ctx_free(struct ssl_ctx_st *ctx)
{
    SSL_CTX_free(ctx);
}
