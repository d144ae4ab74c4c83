/* Interop of the lib/ws codec, handshake and permessage-deflate with an
 * independent implementation, Debian's python3-websockets, both ways and on
 * loopback: a small blocking echo server built on our codec serves a Python
 * client, and a client built on our codec talks to a Python echo server.
 * Covers masking, fragmentation both ways, text and binary, empty and large
 * messages, ping/pong, close codes both ways, compression with negotiated
 * window bits, and an oversized message refused with 1009. Skipped (with the
 * reason) when /usr/bin/python3 cannot import websockets. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ws.h"
#include "ws_deflate.h"
#include "ws_handshake.h"

#define PY "/usr/bin/python3"
#define MAX_MSG (4u << 20)

/* ---- a blocking WebSocket connection on our codec ---- */

struct conn {
    int fd;
    enum ws_role role;
    uint8_t rb[64 * 1024]; /* read buffer; unconsumed bytes stay at the front */
    size_t have;
    struct ws_decoder dec;
    struct ws_message msg;
    bool pmd_on;
    struct ws_pmd pmd;
    uint8_t *inflated; /* MAX_MSG bytes */
};

/* What conn_next() returns. */
struct item {
    int kind; /* 'M' message, 'C' control, 'E' error, 'X' EOF */
    uint8_t opcode;
    const uint8_t *data;
    size_t len;
    uint16_t code;
    char reason[128];
};

static void conn_setup(struct conn *c, int fd, enum ws_role role, uint64_t max_msg,
                       const struct ws_pmd_params *pmd)
{
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->role = role;
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct ws_decoder_config dc = {
        .role = role, .max_message_size = max_msg, .allowed_rsv = pmd ? WS_RSV1 : 0};
    ws_decoder_init(&c->dec, &dc);
    ws_message_init(&c->msg);
    if (pmd) {
        c->pmd_on = true;
        ws_pmd_init(&c->pmd, pmd, role, max_msg, -1, 0);
    }
    c->inflated = malloc(MAX_MSG);
    assert_non_null(c->inflated);
}

static void conn_free(struct conn *c)
{
    if (c->pmd_on) ws_pmd_free(&c->pmd);
    ws_message_free(&c->msg);
    free(c->inflated);
    if (c->fd >= 0) close(c->fd);
}

static void write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) fail_msg("write: %s", strerror(errno));
        b += w;
        n -= (size_t)w;
    }
}

/* Send one frame: header and payload with writev; a client masks a copy. */
static void send_frame(struct conn *c, unsigned opcode, bool fin, unsigned rsv, const uint8_t *p,
                       size_t len)
{
    uint8_t hdr[WS_MAX_HEADER];
    struct ws_frame_header h;
    size_t hl = ws_frame_begin(hdr, &h, c->role, opcode, fin, rsv, len);
    uint8_t *tmp = NULL;
    if (h.masked && len) {
        tmp = malloc(len);
        ws_mask_copy(tmp, p, len, h.mask, 0);
        p = tmp;
    }
    struct iovec iov[2] = {{hdr, hl}, {(void *)(uintptr_t)p, len}};
    size_t total = hl + len;
    ssize_t w = writev(c->fd, iov, len ? 2 : 1);
    if (w < 0) fail_msg("writev: %s", strerror(errno));
    if ((size_t)w < total) {
        /* finish the rest the simple way */
        uint8_t *all = malloc(total);
        memcpy(all, hdr, hl);
        if (len) memcpy(all + hl, p, len);
        write_all(c->fd, all + w, total - (size_t)w);
        free(all);
    }
    free(tmp);
}

/* Send a message, compressed when negotiated, in frames of at most frag
 * bytes (0 = one frame). */
static void send_msg(struct conn *c, unsigned opcode, const void *data, size_t len, size_t frag)
{
    const uint8_t *p = data;
    uint8_t *comp = NULL;
    unsigned rsv = 0;
    if (c->pmd_on) {
        comp = malloc(ws_pmd_compress_bound(len));
        size_t cl;
        assert_int_equal(ws_pmd_compress(&c->pmd, p, len, comp, ws_pmd_compress_bound(len), &cl),
                         0);
        p = comp;
        len = cl;
        rsv = WS_RSV1;
    }
    if (!frag || frag >= len) {
        send_frame(c, opcode, true, rsv, p, len);
    } else {
        size_t off = 0;
        while (off < len) {
            size_t k = len - off < frag ? len - off : frag;
            send_frame(c, off ? WS_OP_CONT : opcode, off + k == len, off ? 0 : rsv, p + off, k);
            off += k;
        }
    }
    free(comp);
}

static void send_control(struct conn *c, unsigned opcode, const void *p, size_t len)
{
    uint8_t f[WS_MAX_CONTROL_FRAME];
    ssize_t n = ws_control_frame(f, c->role, opcode, p, len);
    assert_true(n > 0);
    write_all(c->fd, f, (size_t)n);
}

static void send_close(struct conn *c, uint16_t code, const char *reason)
{
    uint8_t f[WS_MAX_CONTROL_FRAME];
    ssize_t n = ws_close_frame(f, c->role, code, reason);
    assert_true(n > 0);
    write_all(c->fd, f, (size_t)n);
}

/* Next whole message, control frame, error or EOF. Payload pointers stay
 * valid until the next call. */
static void conn_next(struct conn *c, struct item *it)
{
    memset(it, 0, sizeof *it);
    static uint8_t ctl[WS_MAX_CONTROL_PAYLOAD];
    for (;;) {
        size_t off = 0;
        while (off < c->have) {
            struct ws_event ev;
            off += ws_decoder_feed(&c->dec, c->rb + off, c->have - off, &ev);
            if (ev.type == WS_EV_NEED_MORE) break;
            if (ev.type == WS_EV_ERROR) {
                it->kind = 'E';
                it->code = ev.close_code;
                snprintf(it->reason, sizeof it->reason, "%s", ev.error);
                return;
            }
            if (ev.type == WS_EV_CONTROL) {
                it->kind = 'C';
                it->opcode = ev.opcode;
                memcpy(ctl, ev.data, ev.len);
                it->data = ctl;
                it->len = ev.len;
                it->code = ev.close_code;
                snprintf(it->reason, sizeof it->reason, "%.*s", (int)ev.reason_len,
                         (const char *)ev.reason);
                memmove(c->rb, c->rb + off, c->have - off);
                c->have -= off;
                return;
            }
            int r = ws_message_append(&c->msg, &ev, MAX_MSG);
            assert_int_not_equal(r, -1);
            if (r == 1) {
                memmove(c->rb, c->rb + off, c->have - off);
                c->have -= off;
                it->kind = 'M';
                it->opcode = c->msg.opcode;
                if (c->msg.compressed) {
                    assert_true(c->pmd_on);
                    size_t n;
                    int e = ws_pmd_inflate_message(&c->pmd, c->msg.data, c->msg.len, c->inflated,
                                                   MAX_MSG, &n);
                    if (e) {
                        it->kind = 'E';
                        it->code = (uint16_t)e;
                        return;
                    }
                    it->data = c->inflated;
                    it->len = n;
                } else {
                    it->data = c->msg.data;
                    it->len = c->msg.len;
                }
                return;
            }
        }
        memmove(c->rb, c->rb + off, c->have - off);
        c->have -= off;
        ssize_t n = read(c->fd, c->rb + c->have, sizeof c->rb - c->have);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail_msg("read: %s", strerror(errno));
        if (n == 0) {
            it->kind = 'X';
            return;
        }
        c->have += (size_t)n;
    }
}

/* Read and drop until EOF (after a close handshake). */
static void drain_to_eof(int fd)
{
    uint8_t b[4096];
    for (;;) {
        ssize_t n = read(fd, b, sizeof b);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
    }
}

/* ---- processes ---- */

static bool have_python_websockets(void)
{
    return system(PY " -c 'import websockets' >/dev/null 2>&1") == 0;
}

static pid_t spawn(const char *const argv[], int *in_fd, int *out_fd)
{
    int pin[2], pout[2];
    assert_int_equal(pipe(pin), 0);
    assert_int_equal(pipe(pout), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        close(pin[0]);
        close(pin[1]);
        close(pout[0]);
        close(pout[1]);
        execv(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    *in_fd = pin[1];
    *out_fd = pout[0];
    return pid;
}

static int wait_exit(pid_t pid)
{
    int st;
    for (int i = 0; i < 600; i++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(100 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

/* ---- our server, Python client ---- */

static const char PY_CLIENT[] =
    "import asyncio, sys, websockets\n"
    "async def main():\n"
    "    port, mode = int(sys.argv[1]), sys.argv[2]\n"
    "    comp = 'deflate' if mode == 'deflate' else None\n"
    "    uri = 'ws://127.0.0.1:%d/proxy/echo?x=1' % port\n"
    "    async with websockets.connect(uri, compression=comp, max_size=None,\n"
    "                                  ping_interval=None, open_timeout=20) as ws:\n"
    "        if mode == 'oversize':\n"
    "            await ws.send(b'x' * 2000000)\n"
    "            try:\n"
    "                await asyncio.wait_for(ws.recv(), 20)\n"
    "            except websockets.ConnectionClosed as e:\n"
    "                assert e.rcvd is not None and e.rcvd.code == 1009, repr(e)\n"
    "                return\n"
    "            raise SystemExit('oversized message was echoed')\n"
    "        if comp:\n"
    "            assert ws.extensions, 'permessage-deflate not negotiated'\n"
    "        msgs = [b'hello', b'', 'text \\u00e9\\u20ac', bytes(range(256)) * 40,\n"
    "                b'z' * 200000, 't' * 70000, bytes(range(256)) * 4000]\n"
    "        for m in msgs:\n"
    "            await ws.send(m)\n"
    "            r = await asyncio.wait_for(ws.recv(), 20)\n"
    "            assert r == m, (type(r), len(r), type(m), len(m))\n"
    "        await ws.send([b'frag1-', b'frag2-', b'', b'frag3'])\n"
    "        assert await asyncio.wait_for(ws.recv(), 20) == b'frag1-frag2-frag3'\n"
    "        await ws.send(['a', '\\u20ac', 'b'])\n"
    "        assert await asyncio.wait_for(ws.recv(), 20) == 'a\\u20acb'\n"
    "        pong = await ws.ping(b'pp')\n"
    "        await asyncio.wait_for(pong, 20)\n"
    "        await ws.close(4001, 'bye')\n"
    "        assert ws.close_code == 4001, ws.close_code\n"
    "        assert ws.close_reason == 'bye', ws.close_reason\n"
    "asyncio.run(main())\n";

static int listen_local(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    return fd;
}

static void serve_one(int lfd, const char *mode, int *frames_in, uint16_t *error_code)
{
    struct pollfd pfd = {.fd = lfd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 30000), 1);
    int fd = accept(lfd, NULL, NULL);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

    struct ws_hs_server hs;
    assert_int_equal(ws_hs_server_init(&hs, 0), 0);
    uint8_t buf[8192];
    size_t left = 0, used = 0;
    int r;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        assert_true(n > 0);
        r = ws_hs_server_feed(&hs, buf, (size_t)n, &used);
        if (r != WS_HS_MORE) {
            left = (size_t)n - used;
            break;
        }
    }
    assert_int_equal(r, WS_HS_DONE);
    const char *why = NULL;
    assert_int_equal(ws_hs_request_check(&hs.req, &why), 0);
    assert_string_equal(hs.req.path, "/proxy/echo");
    assert_string_equal(hs.req.target, "/proxy/echo?x=1");
    struct ws_pmd_params agreed;
    /* smaller windows than the defaults, to exercise the window bits */
    struct ws_pmd_server_config pcfg = {.server_max_window_bits = 10, .client_max_window_bits = 11};
    char ext[160] = "";
    int neg = ws_pmd_server_negotiate(hs.req.extensions, &pcfg, &agreed);
    assert_true(neg >= 0);
    if (neg == 1) ws_pmd_format(&agreed, ext, sizeof ext);
    if (strcmp(mode, "deflate") == 0) {
        assert_int_equal(neg, 1);
        /* python offers client_max_window_bits: we pick both windows */
        assert_string_equal(ext, "permessage-deflate; server_max_window_bits=10; "
                                 "client_max_window_bits=11");
    }
    char resp[512];
    ssize_t rl =
        ws_hs_response_101(resp, sizeof resp, hs.req.key, neg == 1 ? ext : NULL, NULL, NULL);
    assert_true(rl > 0);
    write_all(fd, resp, (size_t)rl);
    ws_hs_server_free(&hs);

    struct conn *c = malloc(sizeof *c);
    conn_setup(c, fd, WS_ROLE_SERVER, strcmp(mode, "oversize") == 0 ? 1u << 20 : MAX_MSG,
               neg == 1 ? &agreed : NULL);
    memcpy(c->rb, buf + used, left);
    c->have = left;
    *frames_in = 0;
    *error_code = 0;
    for (;;) {
        struct item it;
        conn_next(c, &it);
        if (it.kind == 'X') fail_msg("EOF before close");
        if (it.kind == 'E') {
            *error_code = it.code;
            send_close(c, it.code, it.reason);
            /* the server closes TCP first (RFC 6455 7.1.1); a client waits
             * for that before closing its end */
            shutdown(fd, SHUT_WR);
            drain_to_eof(fd);
            break;
        }
        if (it.kind == 'C') {
            if (it.opcode == WS_OP_PING) {
                send_control(c, WS_OP_PONG, it.data, it.len);
                continue;
            }
            if (it.opcode == WS_OP_CLOSE) {
                /* echo the close code and reason, then wait for EOF */
                send_close(c, it.code == WS_CLOSE_NO_STATUS ? 0 : it.code, it.reason);
                shutdown(fd, SHUT_WR);
                drain_to_eof(fd);
                break;
            }
            continue;
        }
        (*frames_in)++;
        /* echo, fragmenting anything larger than 1000 bytes */
        send_msg(c, it.opcode, it.data, it.len, it.len > 1000 ? 777 : 0);
    }
    conn_free(c);
    free(c);
}

static void run_python_client(const char *mode)
{
    if (!have_python_websockets()) skip();
    int port;
    int lfd = listen_local(&port);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    const char *argv[] = {PY, "-c", PY_CLIENT, ps, mode, NULL};
    int in_fd, out_fd;
    pid_t pid = spawn(argv, &in_fd, &out_fd);
    int msgs;
    uint16_t err;
    serve_one(lfd, mode, &msgs, &err);
    close(lfd);
    close(in_fd);
    close(out_fd);
    assert_int_equal(wait_exit(pid), 0);
    if (strcmp(mode, "oversize") == 0) {
        assert_int_equal(err, WS_CLOSE_TOO_BIG);
    } else {
        assert_int_equal(err, 0);
        assert_int_equal(msgs, 9);
    }
}

static void test_python_client_plain(void **state)
{
    (void)state;
    run_python_client("plain");
}

static void test_python_client_deflate(void **state)
{
    (void)state;
    run_python_client("deflate");
}

static void test_python_client_oversize(void **state)
{
    (void)state;
    run_python_client("oversize");
}

/* ---- Python server, our client ---- */

static const char PY_SERVER[] =
    "import asyncio, sys, websockets\n"
    "async def handler(ws, path=None):\n"
    "    async for m in ws:\n"
    "        if m == 'please-fragment':\n"
    "            await ws.send([b'x' * 10, b'y' * 3000, b'z'])\n"
    "        elif m == 'please-close':\n"
    "            await ws.close(4002, 'server bye')\n"
    "            return\n"
    "        elif m == 'headers?':\n"
    "            await ws.send(ws.request_headers.get('X-Test', '') + '|' +\n"
    "                          ws.request_headers.get('Origin', ''))\n"
    "        else:\n"
    "            await ws.send(m)\n"
    "async def main():\n"
    "    comp = 'deflate' if sys.argv[1] == 'deflate' else None\n"
    "    async with websockets.serve(handler, '127.0.0.1', 0, compression=comp,\n"
    "                                max_size=None, ping_interval=None) as srv:\n"
    "        print(srv.sockets[0].getsockname()[1], flush=True)\n"
    "        loop = asyncio.get_running_loop()\n"
    "        await loop.run_in_executor(None, sys.stdin.read)\n"
    "asyncio.run(main())\n";

static int dial_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static struct conn *client_open(int port, bool deflate)
{
    int fd = dial_local(port);
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct ws_hs_client hc;
    assert_int_equal(ws_hs_client_init(&hc, 0), 0);
    struct ws_pmd_params offer = {.client_max_window_bits_novalue = true};
    char ext[160];
    ws_pmd_format(&offer, ext, sizeof ext);
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", port);
    const char *hdrs[] = {"X-Test: hello there"};
    struct ws_hs_client_config cfg = {.host = host,
                                      .target = "/proxy/x",
                                      .origin = "http://127.0.0.1",
                                      .extensions = deflate ? ext : NULL,
                                      .headers = hdrs,
                                      .nheaders = 1};
    char req[1024];
    ssize_t n = ws_hs_client_request(&hc, &cfg, req, sizeof req);
    assert_true(n > 0);
    write_all(fd, req, (size_t)n);
    uint8_t buf[8192];
    size_t used = 0, got = 0;
    int r;
    for (;;) {
        ssize_t k = read(fd, buf, sizeof buf);
        assert_true(k >= 0);
        r = ws_hs_client_feed(&hc, buf, (size_t)k, &used);
        got = (size_t)k;
        if (r != WS_HS_MORE) break;
    }
    if (r != WS_HS_DONE) fail_msg("handshake: %s", hc.error);
    struct ws_pmd_params agreed;
    int acc = ws_pmd_client_accept(hc.extensions, &offer, &agreed);
    assert_int_equal(acc, deflate ? 1 : 0);
    if (deflate) /* python's defaults: 12-bit windows both ways */
        assert_int_equal(agreed.client_max_window_bits, 12);
    struct conn *c = malloc(sizeof *c);
    conn_setup(c, fd, WS_ROLE_CLIENT, MAX_MSG, acc == 1 ? &agreed : NULL);
    memcpy(c->rb, buf + used, got - used);
    c->have = got - used;
    ws_hs_client_free(&hc);
    return c;
}

static void expect_msg(struct conn *c, unsigned opcode, const void *data, size_t len)
{
    struct item it;
    for (;;) {
        conn_next(c, &it);
        if (it.kind != 'C' || it.opcode != WS_OP_PONG) break;
    }
    if (it.kind != 'M')
        fail_msg("expected a message, got %c (code %u %s)", it.kind, it.code, it.reason);
    assert_int_equal(it.opcode, opcode);
    assert_int_equal(it.len, len);
    if (len) assert_memory_equal(it.data, data, len);
}

static void run_python_server(bool deflate)
{
    if (!have_python_websockets()) skip();
    const char *argv[] = {PY, "-c", PY_SERVER, deflate ? "deflate" : "plain", NULL};
    int in_fd, out_fd;
    pid_t pid = spawn(argv, &in_fd, &out_fd);
    char line[32] = {0};
    struct pollfd pfd = {.fd = out_fd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 30000), 1);
    ssize_t n = read(out_fd, line, sizeof line - 1);
    assert_true(n > 0);
    int port = atoi(line);
    assert_true(port > 0);

    struct conn *c = client_open(port, deflate);
    size_t big = 300000;
    uint8_t *data = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i % 251 ^ i / 1000);
    send_msg(c, WS_OP_BINARY, "hello", 5, 0);
    expect_msg(c, WS_OP_BINARY, "hello", 5);
    send_msg(c, WS_OP_BINARY, "", 0, 0);
    expect_msg(c, WS_OP_BINARY, "", 0);
    send_msg(c, WS_OP_TEXT, "caf\xc3\xa9", 5, 0);
    expect_msg(c, WS_OP_TEXT, "caf\xc3\xa9", 5);
    send_msg(c, WS_OP_BINARY, data, big, 0);
    expect_msg(c, WS_OP_BINARY, data, big);
    send_msg(c, WS_OP_BINARY, data, big, 1000); /* fragmented by us */
    expect_msg(c, WS_OP_BINARY, data, big);
    send_msg(c, WS_OP_BINARY, data, 5000, 1); /* one byte per frame */
    expect_msg(c, WS_OP_BINARY, data, 5000);
    send_msg(c, WS_OP_TEXT, "headers?", 8, 0);
    expect_msg(c, WS_OP_TEXT, "hello there|http://127.0.0.1", 28);
    /* a ping in the middle of a fragmented message */
    if (!deflate) {
        send_frame(c, WS_OP_BINARY, false, 0, (const uint8_t *)"ab", 2);
        send_control(c, WS_OP_PING, "mid", 3);
        send_frame(c, WS_OP_CONT, true, 0, (const uint8_t *)"cd", 2);
        struct item it;
        conn_next(c, &it);
        assert_int_equal(it.kind, 'C');
        assert_int_equal(it.opcode, WS_OP_PONG);
        assert_memory_equal(it.data, "mid", 3);
        expect_msg(c, WS_OP_BINARY, "abcd", 4);
    }
    send_msg(c, WS_OP_TEXT, "please-fragment", 15, 0);
    uint8_t exp[3011];
    memset(exp, 'x', 10);
    memset(exp + 10, 'y', 3000);
    exp[3010] = 'z';
    expect_msg(c, WS_OP_BINARY, exp, sizeof exp);
    send_control(c, WS_OP_PING, "cp", 2);
    struct item it;
    conn_next(c, &it);
    assert_int_equal(it.kind, 'C');
    assert_int_equal(it.opcode, WS_OP_PONG);
    assert_int_equal(it.len, 2);
    assert_memory_equal(it.data, "cp", 2);
    /* server-initiated close with a code and reason */
    send_msg(c, WS_OP_TEXT, "please-close", 12, 0);
    conn_next(c, &it);
    assert_int_equal(it.kind, 'C');
    assert_int_equal(it.opcode, WS_OP_CLOSE);
    assert_int_equal(it.code, 4002);
    assert_string_equal(it.reason, "server bye");
    send_close(c, 4002, "server bye");
    drain_to_eof(c->fd);
    conn_free(c);
    free(c);

    /* client-initiated close: the server answers with our code */
    c = client_open(port, deflate);
    send_msg(c, WS_OP_BINARY, "x", 1, 0);
    expect_msg(c, WS_OP_BINARY, "x", 1);
    send_close(c, WS_CLOSE_NORMAL, "done");
    conn_next(c, &it);
    assert_int_equal(it.kind, 'C');
    assert_int_equal(it.opcode, WS_OP_CLOSE);
    assert_int_equal(it.code, 1000);
    conn_next(c, &it);
    assert_int_equal(it.kind, 'X');
    conn_free(c);
    free(c);

    free(data);
    close(in_fd); /* the server exits on EOF of stdin */
    close(out_fd);
    assert_int_equal(wait_exit(pid), 0);
}

static void test_python_server_plain(void **state)
{
    (void)state;
    run_python_server(false);
}

static void test_python_server_deflate(void **state)
{
    (void)state;
    run_python_server(true);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_python_client_plain),    cmocka_unit_test(test_python_client_deflate),
        cmocka_unit_test(test_python_client_oversize), cmocka_unit_test(test_python_server_plain),
        cmocka_unit_test(test_python_server_deflate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
