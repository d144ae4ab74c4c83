/* Unit tests of wsgate's tunnel state machine on socketpairs, no network and
 * no handshake: a tunnel is built the way server.c/client.c leave it after
 * the upgrade (tunnel_new, a transport on one end of a socketpair, the TCP
 * side on another, tunnel_start), its worker loop runs in a thread, and the
 * test plays both outer ends with plain blocking calls: the WebSocket peer
 * (framing with lib/ws, masked when the tunnel is the server) and the TCP
 * side (the upstream for the server, the local application for the client).
 *
 * Every close order is driven in both roles: the peer closes first, the TCP
 * side ends first, half-close each way (the "wsgate-half-close" agreement),
 * an EOF in the middle of a frame, a reset TCP side, a protocol error, an
 * abnormal close code. Each checks what both ends see on the wire and what
 * the tunnel reports when it ends (status, disconnect_at, byte counts). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "socket_pairs.h"
#include "jsonlog.h"
#include "../../wsgate/tunnel.h"
#include "ws.h"

#define WAIT_MS 10000 /* any single wait; a hang fails the test instead */

static const struct wsg_disconnect_names names = {
    .ws_read = "ws_read", .tcp_write = "tcp_write", .tcp_read = "tcp_read",
    .ws_write = "ws_write",
};

/* What the tunnel reported as it ended (w->on_close). */
struct ended {
    int count;
    bool failed;
    char at[32];
    uint64_t nread, nwrite;
    uint16_t close_code;
};

struct harness {
    struct ev_loop *loop;
    pthread_t th;
    struct wsg_opts opts;
    struct wsg_worker w;
    struct tunnel *t;
    struct wsg_conn conn; /* the WebSocket connection before the tunnel takes it */
    int peer;  /* the test's WebSocket end */
    int app;   /* the test's TCP end */
    enum ws_role peer_role;
    struct ws_decoder dec;
    uint8_t *rbuf; /* the peer's receive buffer */
    size_t rlen, rpos;
    struct ended end;
    char logpath[64];
    int logfd;
    SSL_CTX *peer_ctx; /* TLS: the test's side */
    SSL *ssl;
};

/* A self-signed certificate for "localhost", made once per run. */
static char tls_dir[64];
static char tls_cert[96], tls_key[96];

static void make_cert(void)
{
    if (tls_dir[0])
        return;
    snprintf(tls_dir, sizeof tls_dir, "/tmp/test_wsgate_tunnel_tls.XXXXXX");
    assert_non_null(mkdtemp(tls_dir));
    snprintf(tls_cert, sizeof tls_cert, "%s/cert.pem", tls_dir);
    snprintf(tls_key, sizeof tls_key, "%s/key.pem", tls_dir);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-subj /CN=localhost -addext subjectAltName=DNS:localhost -days 2 "
             "-keyout %s -out %s 2>/dev/null",
             tls_key, tls_cert);
    assert_int_equal(system(cmd), 0);
}

static struct ended *g_end;
static bool g_sweep; /* the next harness runs the worker's idle sweep */ /* the running harness's record (one at a time) */

static void on_close(struct tunnel *t)
{
    g_end->count++;
    g_end->failed = t->failed;
    snprintf(g_end->at, sizeof g_end->at, "%s", t->disconnect_at ? t->disconnect_at : "");
    g_end->nread = t->down.bytes;
    g_end->nwrite = t->up.bytes;
    g_end->close_code = t->close_code;
}

static void on_idle(struct wsg_worker *w)
{
    ev_break(w->loop, EVBREAK_ALL);
}

static void *loop_main(void *arg)
{
    struct harness *h = arg;
    ev_run(h->loop, 0);
    return NULL;
}

struct hs_thread {
    SSL *ssl;
    int rc;
    volatile int done;
};

static void *peer_handshake_main(void *arg)
{
    struct hs_thread *x = arg;
    x->rc = SSL_do_handshake(x->ssl);
    x->done = 1;
    return NULL;
}

/* The TLS handshake before the tunnel starts, as the HTTP upgrade leaves it
 * in the programs: the test's end in a thread, the tunnel's transport driven
 * here by reads that find no application data. */
static void tls_handshake(struct harness *h)
{
    struct hs_thread x = { .ssl = h->ssl };
    pthread_t th;
    pthread_create(&th, NULL, peer_handshake_main, &x);
    uint8_t c;
    /* until the test's end is done and then 100 ms pass without handshake
     * bytes for us (its last flight, session tickets) */
    for (int i = 0, quiet = 0; i < WAIT_MS / 10 && quiet < 10; i++) {
        ssize_t n = transport_read(&h->conn.tr, &c, 1);
        assert_true(n < 0 && errno == EAGAIN); /* no data before the tunnel runs */
        struct pollfd p = { .fd = h->conn.tr.fd,
                            .events = (short)((h->conn.tr.read_wait & TRANSPORT_READABLE ? POLLIN : 0) |
                                     (h->conn.tr.read_wait & TRANSPORT_WRITABLE ? POLLOUT : 0)) };
        int r = poll(&p, 1, 10);
        quiet = x.done && r == 0 ? quiet + 1 : 0;
    }
    pthread_join(th, NULL);
    assert_int_equal(x.rc, 1);
}

/* role: the tunnel's. tcp_app: the TCP side on loopback TCP (else a
 * socketpair). tls: the WebSocket side runs TLS 1.3 (the tunnel's transport
 * is wsgate's, the test's end a blocking OpenSSL connection). */
static struct harness *start_tls(enum ws_role role, bool half_close, bool tcp_app, bool tls)
{
    struct harness *h = calloc(1, sizeof *h);
    assert_non_null(h);
    snprintf(h->logpath, sizeof h->logpath, "/tmp/test_wsgate_tunnel.XXXXXX");
    h->logfd = mkstemp(h->logpath);
    assert_true(h->logfd >= 0);
    jsonlog_set_fd(h->logfd);
    g_end = &h->end;
    h->loop = ev_loop_new(EVFLAG_AUTO);
    h->opts.write_timeout = 5;
    h->opts.max_message = WSG_MAX_MESSAGE;
    h->w.loop = h->loop;
    h->w.opts = &h->opts;
    h->w.role = role;
    h->w.on_idle = on_idle;
    h->w.on_close = on_close;
    h->peer_role = role == WS_ROLE_SERVER ? WS_ROLE_CLIENT : WS_ROLE_SERVER;
    struct ws_decoder_config dc = { .role = h->peer_role };
    ws_decoder_init(&h->dec, &dc);
    h->rbuf = malloc(1 << 20);

    int ws[2], tcp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, ws), 0);
    if (tcp_app)
        tcp_pair(tcp);
    else
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, tcp), 0);
    nonblock(ws[1]);
    nonblock(tcp[1]);
    h->peer = ws[0];
    h->app = tcp[0];

    struct tunnel *t = tunnel_new(&h->w, &names);
    assert_non_null(t);
    wsg_conn_init(&h->conn, h->loop, t, NULL, NULL, NULL); /* no handshake runs on it */
    if (tls) {
        make_cert();
        char err[256];
        SSL_CTX *ours = role == WS_ROLE_SERVER
                            ? transport_tls_server_ctx(tls_cert, tls_key, err, sizeof err)
                            : transport_tls_client_ctx(tls_cert, err, sizeof err);
        assert_non_null(ours);
        assert_int_equal(
            transport_tls_init(&h->conn.tr, ws[1], ours, role == WS_ROLE_SERVER ? NULL : "localhost"),
            0);
        transport_tls_ctx_free(ours);
        h->peer_ctx = SSL_CTX_new(role == WS_ROLE_SERVER ? TLS_client_method() : TLS_server_method());
        assert_non_null(h->peer_ctx);
        SSL_CTX_set_min_proto_version(h->peer_ctx, TLS1_3_VERSION);
        if (role == WS_ROLE_CLIENT) {
            assert_int_equal(SSL_CTX_use_certificate_chain_file(h->peer_ctx, tls_cert), 1);
            assert_int_equal(SSL_CTX_use_PrivateKey_file(h->peer_ctx, tls_key, SSL_FILETYPE_PEM), 1);
        }
        h->ssl = SSL_new(h->peer_ctx);
        SSL_set_fd(h->ssl, ws[0]);
        if (role == WS_ROLE_SERVER)
            SSL_set_connect_state(h->ssl);
        else
            SSL_set_accept_state(h->ssl);
    } else {
        transport_tcp_init(&h->conn.tr, ws[1]);
    }
    t->tcp_fd = tcp[1];
    t->half_close = half_close;
    snprintf(t->dest, sizeof t->dest, "test");
    h->t = t;
    if (h->ssl)
        tls_handshake(h);
    tunnel_start(t, &h->conn, NULL, 0);
    if (g_sweep)
        wsg_worker_start_sweep(&h->w);
    g_sweep = false;
    pthread_create(&h->th, NULL, loop_main, h);
    return h;
}

static struct harness *start(enum ws_role role, bool half_close, bool tcp_app)
{
    return start_tls(role, half_close, tcp_app, false);
}

/* The loop thread ends when the tunnel has closed (on_idle). */
static void wait_closed(struct harness *h)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_MS / 1000;
    assert_int_equal(pthread_timedjoin_np(h->th, NULL, &ts), 0);
    assert_int_equal(h->end.count, 1);
}

/* The log written while h ran, NUL-terminated (caller frees). */
static char *log_text(struct harness *h)
{
    off_t n = lseek(h->logfd, 0, SEEK_END);
    char *s = calloc(1, (size_t)n + 1);
    assert_int_equal(pread(h->logfd, s, (size_t)n, 0), n);
    return s;
}

static void finish(struct harness *h)
{
    SSL_free(h->ssl);
    SSL_CTX_free(h->peer_ctx);
    wsg_worker_stop_sweep(&h->w);
    assert_int_equal(h->w.ncached, 0);
    ev_loop_destroy(h->loop);
    close(h->peer);
    close(h->app);
    jsonlog_set_fd(2);
    close(h->logfd);
    unlink(h->logpath);
    free(h->rbuf);
    free(h);
}

static void wait_readable(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    assert_int_equal(poll(&p, 1, WAIT_MS), 1);
}

static void write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

/* ---- the WebSocket peer ---- */

static void peer_write(struct harness *h, const void *buf, size_t len)
{
    if (!h->ssl) {
        write_all(h->peer, buf, len);
        return;
    }
    const uint8_t *p = buf;
    while (len > 0) {
        int n = SSL_write(h->ssl, p, len > 1 << 30 ? 1 << 30 : (int)len);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

/* Blocking read of what is there (waits up to WAIT_MS); 0 at EOF. */
static ssize_t peer_read(struct harness *h, void *buf, size_t cap)
{
    if (!h->ssl || SSL_pending(h->ssl) == 0)
        wait_readable(h->peer);
    if (!h->ssl)
        return read(h->peer, buf, cap);
    int n = SSL_read(h->ssl, buf, (int)cap);
    if (n <= 0) {
        int e = SSL_get_error(h->ssl, n);
        return e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL ? 0 : -1;
    }
    return n;
}

static void peer_frame(struct harness *h, unsigned opcode, bool fin, const void *data, size_t len)
{
    uint8_t head[WS_MAX_HEADER];
    struct ws_frame_header hdr;
    size_t hl = ws_frame_begin(head, &hdr, h->peer_role, opcode, fin, 0, len);
    uint8_t *body = malloc(len ? len : 1);
    if (len)
        memcpy(body, data, len);
    if (hdr.masked)
        ws_mask(body, len, hdr.mask, 0);
    peer_write(h, head, hl);
    peer_write(h, body, len);
    free(body);
}

static void peer_close(struct harness *h, uint16_t code)
{
    uint8_t f[WS_MAX_CONTROL_FRAME];
    ssize_t n = ws_close_frame(f, h->peer_role, code, NULL);
    assert_true(n > 0);
    peer_write(h, f, (size_t)n);
}

/* The next event from the tunnel; ev->type 0 (NEED_MORE) means EOF. Data
 * events point into the peer's buffer until the next call. */
static void peer_next(struct harness *h, struct ws_event *ev)
{
    for (;;) {
        size_t n = ws_decoder_feed(&h->dec, h->rbuf + h->rpos, h->rlen - h->rpos, ev);
        h->rpos += n;
        if (ev->type != WS_EV_NEED_MORE)
            return;
        memmove(h->rbuf, h->rbuf + h->rpos, h->rlen - h->rpos);
        h->rlen -= h->rpos;
        h->rpos = 0;
        ssize_t k = peer_read(h, h->rbuf + h->rlen, (1 << 20) - h->rlen);
        assert_true(k >= 0);
        if (k == 0) {
            ev->type = WS_EV_NEED_MORE;
            return;
        }
        h->rlen += (size_t)k;
    }
}

/* Collect binary payload until an empty binary message (the half-close
 * marker) or a close frame; returns the event that ended it. */
static struct ws_event peer_collect(struct harness *h, uint8_t *out, size_t cap, size_t *got)
{
    struct ws_event ev;
    *got = 0;
    for (;;) {
        peer_next(h, &ev);
        if (ev.type == WS_EV_DATA) {
            assert_int_equal(ev.opcode, WS_OP_BINARY);
            if (ev.message_start && ev.message_end && ev.len == 0)
                return ev;
            assert_true(*got + ev.len <= cap);
            memcpy(out + *got, ev.data, ev.len);
            *got += ev.len;
            continue;
        }
        return ev; /* control, error or EOF */
    }
}

static void expect_close_frame(struct harness *h, uint16_t code)
{
    uint8_t buf[64];
    size_t got;
    struct ws_event ev = peer_collect(h, buf, sizeof buf, &got);
    assert_int_equal(ev.type, WS_EV_CONTROL);
    assert_int_equal(ev.opcode, WS_OP_CLOSE);
    assert_int_equal(ev.close_code, code);
}

/* ---- the TCP side ---- */

static size_t app_read_until_eof(struct harness *h, uint8_t *out, size_t cap)
{
    size_t got = 0;
    for (;;) {
        wait_readable(h->app);
        ssize_t n = read(h->app, out + got, cap - got);
        if (n <= 0)
            return got;
        got += (size_t)n;
        assert_true(got < cap);
    }
}

static void app_read_exact(struct harness *h, uint8_t *out, size_t len)
{
    size_t got = 0;
    while (got < len) {
        wait_readable(h->app);
        ssize_t n = read(h->app, out + got, len - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i * 2654435761u + seed) >> 9);
}

/* Threads for the TCP side, so that big transfers both ways at once do not
 * deadlock on full buffers (no cmocka asserts off the main thread). */
struct app_io {
    int fd;
    uint8_t *p;
    size_t n;
    size_t done;
};

static void *app_writer_main(void *arg)
{
    struct app_io *a = arg;
    while (a->done < a->n) {
        ssize_t k = write(a->fd, a->p + a->done, a->n - a->done);
        if (k <= 0)
            break;
        a->done += (size_t)k;
    }
    return NULL;
}

static void *app_reader_main(void *arg)
{
    struct app_io *a = arg;
    while (a->done < a->n) {
        struct pollfd p = { .fd = a->fd, .events = POLLIN };
        if (poll(&p, 1, WAIT_MS) != 1)
            break;
        ssize_t k = read(a->fd, a->p + a->done, a->n - a->done);
        if (k <= 0)
            break;
        a->done += (size_t)k;
    }
    return NULL;
}

/* ---- cases ---- */

/* Data both ways at once (MiBs, frames of assorted sizes), then the peer
 * closes first: the close is echoed, the TCP side reads EOF, the tunnel ends
 * "Suceeded" at ws_read with exact counts. */
static void peer_closes_first(enum ws_role role, bool tls, int keyupdate_every)
{
    struct harness *h = start_tls(role, false, false, tls);
    size_t up = 3u << 20, down = 2u << 20;
    uint8_t *a = malloc(up), *b = malloc(down), *ra = malloc(up), *rb = malloc(down);
    fill(a, up, 1);
    fill(b, down, 2);
    struct app_io aw = { .fd = h->app, .p = b, .n = down };
    struct app_io ar = { .fd = h->app, .p = ra, .n = up };
    pthread_t wt, rt;
    pthread_create(&wt, NULL, app_writer_main, &aw);
    pthread_create(&rt, NULL, app_reader_main, &ar);
    /* the download is read by the peer in between its frames */
    size_t off = 0, step = 1, total = 0;
    int frames = 0;
    while (off < up || total < down) {
        if (off < up) {
            size_t k = step < up - off ? step : up - off;
            if (keyupdate_every && ++frames % keyupdate_every == 0)
                assert_int_equal(SSL_key_update(h->ssl, SSL_KEY_UPDATE_REQUESTED), 1);
            peer_frame(h, WS_OP_BINARY, true, a + off, k);
            off += k;
            step = step > 200000 ? 1 : step * 7 + 13;
        }
        struct pollfd p = { .fd = h->peer, .events = POLLIN };
        while (total < down && (off == up || poll(&p, 1, 0) == 1)) {
            struct ws_event ev;
            peer_next(h, &ev);
            assert_int_equal(ev.type, WS_EV_DATA);
            assert_true(total + ev.len <= down);
            memcpy(rb + total, ev.data, ev.len);
            total += ev.len;
            if (h->rpos == h->rlen && off < up)
                break; /* nothing buffered: back to sending */
        }
    }
    pthread_join(wt, NULL);
    pthread_join(rt, NULL);
    assert_int_equal(ar.done, up);
    assert_memory_equal(ra, a, up);
    assert_memory_equal(rb, b, down);
    peer_close(h, WS_CLOSE_NORMAL);
    expect_close_frame(h, WS_CLOSE_NORMAL);
    uint8_t c[8];
    assert_int_equal(app_read_until_eof(h, c, sizeof c), 0); /* the TCP side was closed */
    wait_closed(h);
    assert_false(h->end.failed);
    assert_string_equal(h->end.at, "ws_read");
    assert_int_equal(h->end.nread, up);
    assert_int_equal(h->end.nwrite, down);
    assert_int_equal(h->end.close_code, WS_CLOSE_NORMAL);
    char *log = log_text(h);
    assert_non_null(strstr(log, "\"Connected\""));
    assert_non_null(strstr(log, "\"Suceeded\""));
    free(log);
    free(a);
    free(b);
    free(ra);
    free(rb);
    finish(h);
}

static void test_peer_closes_first(void **s)
{
    (void)s;
    peer_closes_first(WS_ROLE_SERVER, false, 0);
    peer_closes_first(WS_ROLE_CLIENT, false, 0);
}

/* The same over TLS 1.3, the peer asking for a key update (which the
 * tunnel's side must answer with one of its own) every few frames while
 * data flows both ways: nothing lost, nothing stuck. */
static void test_tls_key_updates_under_traffic(void **s)
{
    (void)s;
    peer_closes_first(WS_ROLE_SERVER, true, 0);
    peer_closes_first(WS_ROLE_CLIENT, true, 0);
    peer_closes_first(WS_ROLE_SERVER, true, 3);
    peer_closes_first(WS_ROLE_CLIENT, true, 3);
}

/* Echo a few messages: peer → TCP side → back as a download. */
static void ping_pong(struct harness *h, int rounds)
{
    char msg[64], got[64];
    for (int i = 0; i < rounds; i++) {
        int n = snprintf(msg, sizeof msg, "message %d", i);
        peer_frame(h, WS_OP_BINARY, true, msg, (size_t)n);
        app_read_exact(h, (uint8_t *)got, (size_t)n);
        assert_memory_equal(got, msg, (size_t)n);
        write_all(h->app, got, (size_t)n);
        size_t have = 0;
        while (have < (size_t)n) {
            struct ws_event ev;
            peer_next(h, &ev);
            assert_int_equal(ev.type, WS_EV_DATA);
            memcpy(got + have, ev.data, ev.len);
            have += ev.len;
        }
        assert_memory_equal(got, msg, (size_t)n);
    }
}

static void break_cb(struct ev_loop *loop, ev_timer *tm, int revents)
{
    (void)tm;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Idle for two sweeps (which give back the tunnel's buffers and the TLS
 * output queue and record buffers), then traffic again both ways. The
 * closed tunnel leaves its two buffers in the worker's cache; two sweeps
 * that find the cache unused empty it. */
static void idle_then_traffic(enum ws_role role, bool tls)
{
    g_sweep = true;
    struct harness *h = start_tls(role, false, false, tls);
    ping_pong(h, 20);
    usleep(4500000);
    ping_pong(h, 20);
    peer_close(h, WS_CLOSE_NORMAL);
    expect_close_frame(h, WS_CLOSE_NORMAL);
    wait_closed(h);
    assert_false(h->end.failed);
    assert_int_equal(h->end.nread, h->end.nwrite);
    assert_int_equal(h->w.ncached, 2);
    if (!tls) {
        ev_timer stop;
        ev_timer_init(&stop, break_cb, 4.5, 0.);
        ev_timer_start(h->loop, &stop);
        ev_run(h->loop, 0); /* just the sweep */
        assert_int_equal(h->w.ncached, 0);
    }
    finish(h);
}

static void test_idle_then_traffic(void **s)
{
    (void)s;
    idle_then_traffic(WS_ROLE_SERVER, true);
    idle_then_traffic(WS_ROLE_CLIENT, true);
    idle_then_traffic(WS_ROLE_SERVER, false);
}

static double thread_cpu(pthread_t th)
{
    clockid_t cid;
    struct timespec ts;
    assert_int_equal(pthread_getcpuclockid(th, &cid), 0);
    assert_int_equal(clock_gettime(cid, &ts), 0);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A key update arriving while the tunnel's output towards the peer is full:
 * SSL_read must write its answer and cannot, so the read waits for the
 * socket to become writable. Waiting for readable instead (with the frame
 * behind the update already there) spins the loop at full CPU until the peer
 * reads. Then everything arrives. */
static void key_update_while_full(enum ws_role role)
{
    struct harness *h = start_tls(role, false, false, true);
    size_t down = 4u << 20;
    uint8_t *b = malloc(down), *rb = malloc(down);
    fill(b, down, 3);
    struct app_io aw = { .fd = h->app, .p = b, .n = down };
    pthread_t wt;
    pthread_create(&wt, NULL, app_writer_main, &aw);
    usleep(300000); /* the tunnel fills its way to the peer, which does not read */
    assert_true(aw.done < down);
    assert_int_equal(SSL_key_update(h->ssl, SSL_KEY_UPDATE_REQUESTED), 1);
    peer_frame(h, WS_OP_BINARY, true, "after-update", 12);
    usleep(200000);
    double c0 = thread_cpu(h->th);
    usleep(1000000);
    double spent = thread_cpu(h->th) - c0;
    size_t total = 0;
    while (total < down) {
        struct ws_event ev;
        peer_next(h, &ev);
        assert_int_equal(ev.type, WS_EV_DATA);
        memcpy(rb + total, ev.data, ev.len);
        total += ev.len;
    }
    pthread_join(wt, NULL);
    assert_memory_equal(rb, b, down);
    uint8_t got[12];
    app_read_exact(h, got, sizeof got);
    assert_memory_equal(got, "after-update", 12);
    peer_close(h, WS_CLOSE_NORMAL);
    expect_close_frame(h, WS_CLOSE_NORMAL);
    wait_closed(h);
    assert_false(h->end.failed);
    free(b);
    free(rb);
    finish(h);
    /* checked last so that a failure still cleans up the sockets */
    printf("key update while full (%s): loop CPU %.3f s over 1 s\n",
           role == WS_ROLE_SERVER ? "server" : "client", spent);
    assert_true(spent < 0.25);
}

static void test_tls_key_update_while_full(void **s)
{
    (void)s;
    key_update_while_full(WS_ROLE_SERVER);
    key_update_while_full(WS_ROLE_CLIENT);
}

/* The TCP side ends first, no half-close agreed: what it sent arrives, then
 * a close 1000; the peer echoes it and the tunnel ends at tcp_read. */
static void tcp_ends_first(enum ws_role role)
{
    struct harness *h = start(role, false, false);
    write_all(h->app, "bye", 3);
    shutdown(h->app, SHUT_WR);
    uint8_t buf[64];
    size_t got;
    struct ws_event ev = peer_collect(h, buf, sizeof buf, &got);
    assert_int_equal(got, 3);
    assert_memory_equal(buf, "bye", 3);
    assert_int_equal(ev.type, WS_EV_CONTROL);
    assert_int_equal(ev.opcode, WS_OP_CLOSE);
    assert_int_equal(ev.close_code, WS_CLOSE_NORMAL);
    peer_close(h, WS_CLOSE_NORMAL);
    wait_closed(h);
    assert_false(h->end.failed);
    assert_string_equal(h->end.at, "tcp_read");
    assert_int_equal(h->end.nwrite, 3);
    finish(h);
}

static void test_tcp_ends_first(void **s)
{
    (void)s;
    tcp_ends_first(WS_ROLE_SERVER);
    tcp_ends_first(WS_ROLE_CLIENT);
}

/* Half-close, peer first: its empty binary message becomes a FIN on the TCP
 * side, which can still answer for as long as it likes; its own EOF then
 * becomes the marker back and the close handshake. */
static void half_close_peer_first(enum ws_role role)
{
    struct harness *h = start(role, true, false);
    peer_frame(h, WS_OP_BINARY, true, "request", 7);
    peer_frame(h, WS_OP_BINARY, true, NULL, 0);
    uint8_t buf[256];
    assert_int_equal(app_read_until_eof(h, buf, sizeof buf), 7);
    assert_memory_equal(buf, "request", 7);
    for (int i = 0; i < 20; i++) {
        write_all(h->app, "answer", 6);
        size_t got = 0;
        while (got < 6) {
            struct ws_event ev;
            peer_next(h, &ev);
            assert_int_equal(ev.type, WS_EV_DATA);
            memcpy(buf + got, ev.data, ev.len);
            got += ev.len;
        }
        assert_memory_equal(buf, "answer", 6);
    }
    assert_int_equal(h->end.count, 0);
    shutdown(h->app, SHUT_WR);
    size_t got;
    struct ws_event ev = peer_collect(h, buf, sizeof buf, &got);
    assert_int_equal(ev.type, WS_EV_DATA); /* the marker */
    assert_int_equal(got, 0);
    expect_close_frame(h, WS_CLOSE_NORMAL);
    peer_close(h, WS_CLOSE_NORMAL);
    wait_closed(h);
    assert_false(h->end.failed);
    assert_int_equal(h->end.nread, 7);
    assert_int_equal(h->end.nwrite, 120);
    finish(h);
}

static void test_half_close_peer_first(void **s)
{
    (void)s;
    half_close_peer_first(WS_ROLE_SERVER);
    half_close_peer_first(WS_ROLE_CLIENT);
}

/* Half-close, TCP side first: its EOF becomes the marker; the peer keeps
 * sending and the TCP side keeps receiving; the peer's marker then ends it. */
static void half_close_tcp_first(enum ws_role role)
{
    struct harness *h = start(role, true, false);
    shutdown(h->app, SHUT_WR);
    uint8_t buf[256];
    size_t got;
    struct ws_event ev = peer_collect(h, buf, sizeof buf, &got);
    assert_int_equal(ev.type, WS_EV_DATA);
    assert_int_equal(got, 0);
    for (int i = 0; i < 20; i++) {
        peer_frame(h, WS_OP_BINARY, true, "more", 4);
        app_read_exact(h, buf, 4);
        assert_memory_equal(buf, "more", 4);
    }
    assert_int_equal(h->end.count, 0);
    peer_frame(h, WS_OP_BINARY, true, NULL, 0);
    assert_int_equal(app_read_until_eof(h, buf, sizeof buf), 0);
    expect_close_frame(h, WS_CLOSE_NORMAL);
    peer_close(h, WS_CLOSE_NORMAL);
    wait_closed(h);
    assert_false(h->end.failed);
    assert_int_equal(h->end.nread, 80);
    assert_int_equal(h->end.nwrite, 0);
    finish(h);
}

static void test_half_close_tcp_first(void **s)
{
    (void)s;
    half_close_tcp_first(WS_ROLE_SERVER);
    half_close_tcp_first(WS_ROLE_CLIENT);
}

/* The peer's connection ends in the middle of a frame: Failed at ws_read,
 * "unexpected EOF" logged, the TCP side closed after what did arrive. */
static void eof_mid_frame(enum ws_role role)
{
    struct harness *h = start(role, false, false);
    uint8_t head[WS_MAX_HEADER];
    struct ws_frame_header hdr;
    size_t hl = ws_frame_begin(head, &hdr, h->peer_role, WS_OP_BINARY, true, 0, 1000);
    uint8_t part[10] = "0123456789";
    if (hdr.masked)
        ws_mask(part, sizeof part, hdr.mask, 0);
    write_all(h->peer, head, hl);
    write_all(h->peer, part, sizeof part);
    shutdown(h->peer, SHUT_WR);
    uint8_t buf[64];
    assert_int_equal(app_read_until_eof(h, buf, sizeof buf), 10);
    assert_memory_equal(buf, "0123456789", 10);
    wait_closed(h);
    assert_true(h->end.failed);
    assert_string_equal(h->end.at, "ws_read");
    char *log = log_text(h);
    assert_non_null(strstr(log, "unexpected EOF"));
    assert_non_null(strstr(log, "\"Failed\""));
    free(log);
    finish(h);
}

static void test_eof_mid_frame(void **s)
{
    (void)s;
    eof_mid_frame(WS_ROLE_SERVER);
    eof_mid_frame(WS_ROLE_CLIENT);
}

/* The TCP side is reset: the peer gets close 1001 and the tunnel ends
 * Failed at tcp_read once the peer answers. */
static void tcp_reset(enum ws_role role)
{
    struct harness *h = start(role, false, true);
    peer_frame(h, WS_OP_BINARY, true, "x", 1);
    uint8_t c;
    app_read_exact(h, &c, 1);
    struct linger lg = { 1, 0 };
    setsockopt(h->app, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(h->app);
    h->app = socket(AF_INET, SOCK_STREAM, 0); /* finish() closes something */
    expect_close_frame(h, WS_CLOSE_GOING_AWAY);
    peer_close(h, WS_CLOSE_NORMAL);
    wait_closed(h);
    assert_true(h->end.failed);
    assert_string_equal(h->end.at, "tcp_read");
    finish(h);
}

static void test_tcp_reset(void **s)
{
    (void)s;
    tcp_reset(WS_ROLE_SERVER);
    tcp_reset(WS_ROLE_CLIENT);
}

/* A text message is refused with 1003 (the originals relay binary only),
 * and a protocol error (a reserved opcode) with 1002; both end Failed. The
 * tunnel reads nothing more from a peer that broke the protocol: it closes
 * after its close frame (RFC 6455 7.1.7, fail the connection) without
 * waiting for an answer. */
static void refused(enum ws_role role, unsigned opcode, uint16_t code)
{
    struct harness *h = start(role, false, false);
    if (opcode == 3) {
        uint8_t raw[2] = { 0x83, h->peer_role == WS_ROLE_CLIENT ? 0x80 : 0x00 };
        write_all(h->peer, raw, 2);
        if (h->peer_role == WS_ROLE_CLIENT)
            write_all(h->peer, "\0\0\0\0", 4);
    } else {
        peer_frame(h, opcode, true, "hi", 2);
    }
    expect_close_frame(h, code);
    struct ws_event ev;
    peer_next(h, &ev);
    assert_int_equal(ev.type, WS_EV_NEED_MORE); /* then EOF */
    uint8_t buf[8];
    assert_int_equal(app_read_until_eof(h, buf, sizeof buf), 0);
    wait_closed(h);
    assert_true(h->end.failed);
    assert_string_equal(h->end.at, "ws_read");
    assert_int_equal(h->end.nread, 0);
    finish(h);
}

static void test_refused(void **s)
{
    (void)s;
    refused(WS_ROLE_SERVER, WS_OP_TEXT, WS_CLOSE_UNSUPPORTED_DATA);
    refused(WS_ROLE_CLIENT, WS_OP_TEXT, WS_CLOSE_UNSUPPORTED_DATA);
    refused(WS_ROLE_SERVER, 3, WS_CLOSE_PROTOCOL_ERROR);
    refused(WS_ROLE_CLIENT, 3, WS_CLOSE_PROTOCOL_ERROR);
}

/* The peer closes with an error code: echoed, logged, Failed. */
static void abnormal_close(enum ws_role role)
{
    struct harness *h = start(role, false, false);
    peer_close(h, WS_CLOSE_INTERNAL_ERROR);
    expect_close_frame(h, WS_CLOSE_INTERNAL_ERROR);
    uint8_t buf[8];
    assert_int_equal(app_read_until_eof(h, buf, sizeof buf), 0);
    wait_closed(h);
    assert_true(h->end.failed);
    assert_int_equal(h->end.close_code, WS_CLOSE_INTERNAL_ERROR);
    char *log = log_text(h);
    assert_non_null(strstr(log, "websocket: close 1011"));
    free(log);
    finish(h);
}

static void test_abnormal_close(void **s)
{
    (void)s;
    abnormal_close(WS_ROLE_SERVER);
    abnormal_close(WS_ROLE_CLIENT);
}

/* The peer vanishes without a close frame after a complete frame: the TCP
 * side gets what arrived and an EOF; the tunnel ends at ws_read. */
static void peer_vanishes(enum ws_role role)
{
    struct harness *h = start(role, false, false);
    peer_frame(h, WS_OP_BINARY, true, "last", 4);
    shutdown(h->peer, SHUT_WR);
    uint8_t buf[16];
    assert_int_equal(app_read_until_eof(h, buf, sizeof buf), 4);
    wait_closed(h);
    assert_string_equal(h->end.at, "ws_read");
    assert_int_equal(h->end.nread, 4);
    finish(h);
}

static void test_peer_vanishes(void **s)
{
    (void)s;
    peer_vanishes(WS_ROLE_SERVER);
    peer_vanishes(WS_ROLE_CLIENT);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peer_closes_first),
        cmocka_unit_test(test_tls_key_updates_under_traffic),
        cmocka_unit_test(test_tls_key_update_while_full),
        cmocka_unit_test(test_idle_then_traffic),
        cmocka_unit_test(test_tcp_ends_first),
        cmocka_unit_test(test_half_close_peer_first),
        cmocka_unit_test(test_half_close_tcp_first),
        cmocka_unit_test(test_eof_mid_frame),
        cmocka_unit_test(test_tcp_reset),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_abnormal_close),
        cmocka_unit_test(test_peer_vanishes),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (tls_dir[0]) {
        unlink(tls_cert);
        unlink(tls_key);
        rmdir(tls_dir);
    }
    return rc;
}
