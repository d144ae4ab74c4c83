"""End-to-end tests of wsgate-server and wsgate-client against real peers:
memcached, MariaDB with the real `mariadb` client, Debian's python3-websockets
(as client of our server and as server for our client), Perl's start_server,
curl, and small TCP peers written here (echo, half-close answerers)."""
import asyncio
import base64
import hashlib
import json
import os
import re
import random
import signal
import socket
import socketserver
import subprocess
import threading
import time

import pytest

from conftest import (EchoHandler, ThreadedTCPServer, binpath, free_port, need,
                      start_tcp_server, wait_for, wait_port)

websockets = pytest.importorskip("websockets")
import websockets.exceptions  # noqa: E402

SERVER = binpath("wsgate-server")
CLIENT = binpath("wsgate-client")


# ---------------------------------------------------------------- helpers

@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch):
    """wsgate-client honours HTTP(S)_PROXY: keep the machine's own proxy
    settings away from tests that do not ask for one."""
    for v in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy",
              "NO_PROXY"):
        monkeypatch.delenv(v, raising=False)


class _AnswerAfterEOF(socketserver.BaseRequestHandler):
    """Reads until EOF, then answers with the byte count and a digest."""

    def handle(self):
        h = hashlib.sha256()
        n = 0
        while True:
            d = self.request.recv(65536)
            if not d:
                break
            h.update(d)
            n += len(d)
        time.sleep(0.2)  # answer well after the EOF
        self.request.sendall(b"got %d bytes %s\n" % (n, h.hexdigest().encode()))


@pytest.fixture
def tcp_peer():
    """Start a TCP peer on loopback: tcp_peer('echo'|'eof') -> port."""
    servers = []

    def start(kind="echo"):
        srv = start_tcp_server({"echo": EchoHandler, "eof": _AnswerAfterEOF}[kind])
        servers.append(srv)
        return srv.server_address[1]

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def listening(port):
    """Is something listening on port? (without connecting: a probe connection
    to wsgate-client would open a tunnel of its own)"""
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(f) as fh:
                next(fh)
                for line in fh:
                    parts = line.split()
                    if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            pass
    return False


def wait_listening(port, proc=None, timeout=15):
    def ok():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("exited with %s before listening" % proc.returncode)
        return listening(port)
    wait_for(ok, timeout=timeout, what="listener on %d" % port)


def read_log(path):
    out = []
    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out


class Gate:
    """A wsgate-server (and optionally a wsgate-client in front of it)."""

    def __init__(self, procs, tmp_path, smap, server_args=(), client=False, client_args=(),
                 name="t"):
        self.tmp = tmp_path
        self.port = free_port()
        self.map = tmp_path / ("%s-server-map.txt" % name)
        self.map.write_text("".join("%s,%s\n" % kv for kv in smap.items()))
        self.slog = tmp_path / ("%s-server.log" % name)
        self.server = procs.start(
            [SERVER, "-listen", "127.0.0.1:%d" % self.port, "-map", str(self.map),
             *server_args], stderr=open(self.slog, "wb"))
        wait_port(self.port, proc=self.server)
        self.cports = {}
        if client:
            cmap = tmp_path / ("%s-client-map.txt" % name)
            lines = []
            for n in smap:
                p = free_port()
                self.cports[n] = p
                lines.append("127.0.0.1:%d,http://127.0.0.1:%d/proxy/%s\n" % (p, self.port, n))
            cmap.write_text("".join(lines))
            self.clog = tmp_path / ("%s-client.log" % name)
            self.client = procs.start([CLIENT, "--map", str(cmap), *client_args],
                                      stderr=open(self.clog, "wb"))
            for p in self.cports.values():
                wait_listening(p, proc=self.client)

    def url(self, name):
        return "ws://127.0.0.1:%d/proxy/%s" % (self.port, name)

    def server_log(self):
        return read_log(self.slog)

    def client_log(self):
        return read_log(self.clog)

    def finals(self, log=None):
        log = self.server_log() if log is None else log
        return [e for e in log if e.get("msg") == "log" and e.get("status") != "Connected"]


def roundtrip(port, data, timeout=30):
    """Send data, half-close, read until EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        buf = []
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf.append(d)
        return b"".join(buf)


def echo_exchange(port, data, timeout=30):
    """Send data and read the same number of bytes back (connection stays open)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    got = bytearray()
    while len(got) < len(data):
        d = s.recv(65536)
        if not d:
            break
        got += d
    return s, bytes(got)


def http_raw(port, request, timeout=10):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        buf = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode("latin-1"), body


def http_status(port, request, timeout=10):
    """Status of the response head only (a 101 keeps the connection open)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(4096)
            if not d:
                break
            buf += d
    return int(buf.split(b" ", 2)[1])


def upgrade_request(name, extra=b""):
    key = base64.b64encode(os.urandom(16))
    return (b"GET /proxy/" + name.encode() + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key +
            b"\r\n" + extra + b"\r\n")


def arun(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


# ---------------------------------------------------------------- basics

def test_version_and_help():
    for prog, flag in ((SERVER, "-version"), (SERVER, "-v"), (SERVER, "--version"),
                       (CLIENT, "--version"), (CLIENT, "-v")):
        r = subprocess.run([prog, flag], capture_output=True, text=True)
        # the originals' shape: "NAME VERSION" and "Compiler: ..."
        assert r.returncode == 0, (prog, r)
        assert re.match(r"%s \S+\nCompiler: " % os.path.basename(prog), r.stdout), (prog, r)
    r = subprocess.run([SERVER, "-h"], capture_output=True, text=True)
    assert r.returncode == 0 and "-dump-tcp" in r.stdout and "-listen" in r.stdout
    r = subprocess.run([CLIENT, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--headers" in r.stdout and "--map" in r.stdout


def test_health_and_routing(procs, tmp_path, tcp_peer):
    need("curl")
    g = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer()})
    for path in ("/", "/live"):
        r = subprocess.run(["curl", "-s", "-i", "http://127.0.0.1:%d%s" % (g.port, path)],
                           capture_output=True, timeout=20)
        assert r.stdout.startswith(b"HTTP/1.1 200"), r.stdout
        assert r.stdout.endswith(b"\r\n\r\nOK\n")
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                        "http://127.0.0.1:%d/nothing/here" % g.port], capture_output=True,
                       timeout=20)
    assert r.stdout == b"404"
    status, _, body = http_raw(g.port, upgrade_request("nope"))
    assert status == 404 and body == b"Not found: nope\n"
    warn = [e for e in g.server_log() if e.get("msg") == "No map found"]
    assert warn and warn[0]["destination"] == "nope" and warn[0]["level"] == "warn"
    # a plain GET of a mapped name is not an upgrade: refused, and nothing is relayed
    status, _, body = http_raw(g.port, b"GET /proxy/echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status in (400, 426), (status, body)
    # the router sees the decoded path, as Go's does: ech%6f is echo
    assert http_status(g.port, upgrade_request("ech%6f")) == 101
    status, _, body = http_raw(g.port, upgrade_request("ech%zz"))
    assert status == 400, (status, body)


def test_dial_failure_is_500(procs, tmp_path):
    dead = free_port()
    g = Gate(procs, tmp_path, {"dead": "127.0.0.1:%d" % dead})
    status, _, body = http_raw(g.port, upgrade_request("dead"))
    assert status == 500
    assert body.startswith(b"Could not connect upstream: dial tcp 127.0.0.1:%d" % dead), body
    assert b"connection refused" in body
    assert any(e.get("msg") == "DialTimeout" for e in g.server_log())


def test_dial_timeout(procs, tmp_path):
    # a listener whose accept queue is full drops further SYNs: connect hangs
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(lst.getsockname())
        fillers.append(c)
    time.sleep(0.2)
    g = Gate(procs, tmp_path, {"bh": "127.0.0.1:%d" % lst.getsockname()[1]},
             server_args=["-dial_timeout", "500ms"])
    t0 = time.monotonic()
    status, _, body = http_raw(g.port, upgrade_request("bh"), timeout=20)
    elapsed = time.monotonic() - t0
    assert status == 500 and b"Could not connect upstream" in body
    assert b"i/o timeout" in body
    assert elapsed < 8, elapsed
    lst.close()
    for c in fillers:
        c.close()


def _max_open_files(pid):
    for line in open("/proc/%d/limits" % pid):
        if line.startswith("Max open files"):
            return [int(x) for x in line.split()[3:5]]
    raise AssertionError("no Max open files in /proc/%d/limits" % pid)


def test_fd_soft_limit_raised(procs, tmp_path, tcp_peer):
    """Both programs lift the soft descriptor limit to the hard one at start,
    as the Go runtime does for the originals: with a soft 256, a relay that
    holds two descriptors per tunnel would refuse the 128th."""
    import resource

    def low():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))

    smap = tmp_path / "lim-server-map.txt"
    smap.write_text("echo,127.0.0.1:%d\n" % tcp_peer("echo"))
    sport, cport = free_port(), free_port()
    server = procs.start([SERVER, "-listen", "127.0.0.1:%d" % sport, "-map", str(smap)],
                         stderr=subprocess.DEVNULL, preexec_fn=low)
    wait_port(sport, proc=server)
    cmap = tmp_path / "lim-client-map.txt"
    cmap.write_text("127.0.0.1:%d,http://127.0.0.1:%d/proxy/echo\n" % (cport, sport))
    client = procs.start([CLIENT, "--map", str(cmap)], stderr=subprocess.DEVNULL,
                         preexec_fn=low)
    wait_listening(cport, proc=client)
    assert _max_open_files(server.pid) == [4096, 4096]
    assert _max_open_files(client.pid) == [4096, 4096]
    # 300 tunnels at once: 600 descriptors on each side, past the old soft limit
    conns = [socket.create_connection(("127.0.0.1", cport), timeout=20) for _ in range(300)]
    for i, c in enumerate(conns):
        c.sendall(b"%d\n" % i)
    for i, c in enumerate(conns):
        want = b"%d\n" % i
        got = b""
        while len(got) < len(want):
            d = c.recv(100)
            assert d, "tunnel %d closed" % i
            got += d
        assert got == want
    for c in conns:
        c.close()


def test_handshake_deadlines(procs, tmp_path, tcp_peer):
    """The handshake's own deadline on both sides: the server drops a client
    that sends half a request head (-handshake_timeout), the client gives
    up on a server that accepts and never answers (--connect-timeout), and
    both keep serving."""
    g = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer("echo")},
             server_args=["-handshake_timeout", "700ms"])
    with socket.create_connection(("127.0.0.1", g.port), timeout=20) as s:
        s.sendall(b"GET /proxy/echo HTTP/1.1\r\nHost: x\r\n")  # no end of head
        t0 = time.monotonic()
        assert s.recv(100) == b""  # closed, nothing answered
        elapsed = time.monotonic() - t0
    assert 0.5 < elapsed < 8, elapsed
    status, _, _ = http_raw(g.port, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert status in (200, 404)  # still serving

    mute = socket.socket()  # accepts (the kernel does) and never answers
    mute.bind(("127.0.0.1", 0))
    mute.listen(8)
    port = free_port()
    cmap = tmp_path / "mute-map.txt"
    cmap.write_text("127.0.0.1:%d,http://127.0.0.1:%d/proxy/x\n" % (port, mute.getsockname()[1]))
    clog = tmp_path / "mute-client.log"
    client = procs.start([CLIENT, "--map", str(cmap), "--connect-timeout", "700ms"],
                         stderr=open(clog, "wb"))
    wait_listening(port, proc=client)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        t0 = time.monotonic()
        assert s.recv(100) == b""  # the tunnel never started: the app is closed
        elapsed = time.monotonic() - t0
    assert 0.5 < elapsed < 8, elapsed
    fails = [e for e in read_log(clog) if e.get("msg") == "Failed to connect backend"]
    assert len(fails) == 1 and "i/o timeout" in fails[0]["error"], fails
    assert client.poll() is None
    mute.close()


def test_zero_timeouts_mean_none(procs, tmp_path, tcp_peer):
    """As with the Go originals (a 0 time.Duration): accepted, and the
    tunnel works."""
    g = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer("echo")},
             server_args=["-handshake_timeout", "0", "-dial_timeout", "0",
                          "-write_timeout", "0"],
             client=True, client_args=["--connect-timeout", "0"])
    s, got = echo_exchange(g.cports["echo"], b"no deadlines")
    s.close()
    assert got == b"no deadlines"


# ---------------------------------------------------------------- real peers

def start_memcached(procs):
    need("memcached")
    port = free_port()
    args = ["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0"]
    if os.geteuid() == 0:
        args += ["-u", "nobody"]
    p = procs.start(args)
    wait_port(port, proc=p)
    return port


def gate_mode_args(mode, rsa_keys):
    """Server and client flags for a test mode: "plain", or "jwt+deflate"
    (RS256 tokens signed by the client, verified by the server, and
    permessage-deflate)."""
    if mode == "plain":
        return [], []
    key, pub = rsa_keys["good"]
    return (["-public-key", str(pub), "-enable_compression"],
            ["--private-key", str(key), "--private-key-user", "tester", "--enable-compression"])


@pytest.mark.parametrize("mode", ["plain", "jwt+deflate"])
def test_memcached_through_client_and_server(procs, tmp_path, mode, rsa_keys):
    mc = start_memcached(procs)
    sargs, cargs = gate_mode_args(mode, rsa_keys)
    g = Gate(procs, tmp_path, {"memcached": "127.0.0.1:%d" % mc}, client=True,
             server_args=sargs, client_args=cargs)
    port = g.cports["memcached"]
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"set wsgate 0 0 5\r\nhello\r\n")
        assert s.recv(100) == b"STORED\r\n"
        s.sendall(b"get wsgate\r\n")
        buf = b""
        while not buf.endswith(b"END\r\n"):
            d = s.recv(100)
            assert d
            buf += d
        assert buf == b"VALUE wsgate 0 5\r\nhello\r\nEND\r\n"
    # a 1 MB value both ways
    val = os.urandom(1000000)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"set big 0 0 %d\r\n" % len(val) + val + b"\r\nget big\r\n")
        buf = b""
        while not buf.endswith(b"END\r\n"):
            d = s.recv(1 << 16)
            assert d
            buf += d
        assert buf == b"STORED\r\nVALUE big 0 %d\r\n" % len(val) + val + b"\r\nEND\r\n"
    big = wait_for(lambda: [e for e in g.finals() if e["read"] > 1000000],
                   what="final log line of the big transfer")[0]
    fin = g.finals()
    assert all(e["status"] == "Suceeded" for e in fin), fin
    assert big["write"] == len(b"STORED\r\nVALUE big 0 %d\r\n" % len(val)) + len(val) + 7
    for key in ("seq", "remote-addr", "x-forwarded-for", "destination", "upstream",
                "user-email", "disconnect_at", "ts", "level"):
        assert key in big, key
    assert big["destination"] == "memcached" and big["upstream"] == "127.0.0.1:%d" % mc
    connected = [e for e in g.server_log() if e.get("status") == "Connected"]
    assert len(connected) >= 2
    if mode != "plain":  # the user is the token's subject
        assert all(e["user-email"] == "tester" for e in connected), connected
    cfin = wait_for(lambda: [e for e in g.client_log() if e.get("status") == "Suceeded"],
                    what="client final lines")
    assert cfin


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    need("/usr/sbin/mariadbd", "mariadb-install-db", "mariadb")
    d = tmp_path_factory.mktemp("mariadb")
    datadir = d / "data"
    sock = d / "mysqld.sock"
    port = free_port()
    user = ["--user=root"] if os.geteuid() == 0 else []
    r = subprocess.run(["mariadb-install-db", "--no-defaults", "--datadir=%s" % datadir,
                        "--auth-root-authentication-method=normal", "--skip-test-db",
                        *user], capture_output=True, timeout=180)
    if r.returncode != 0:
        pytest.skip("mariadb-install-db failed: %s" % r.stderr[-500:])
    p = subprocess.Popen(["/usr/sbin/mariadbd", "--no-defaults", "--datadir=%s" % datadir,
                          "--socket=%s" % sock, "--port=%d" % port, "--bind-address=127.0.0.1",
                          "--skip-grant-tables", "--skip-name-resolve", "--local-infile=1",
                          "--max-allowed-packet=64M", "--pid-file=%s" % (d / "pid"),
                          "--log-error=%s" % (d / "err.log"), *user],
                         start_new_session=True)
    try:
        wait_port(port, timeout=120, proc=p)
        yield {"port": port, "sock": str(sock), "dir": d}
    finally:
        p.terminate()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


def mariadb_cli(port, sql, extra=(), timeout=120):
    return subprocess.run(["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(port),
                           "-u", "root", "--protocol=TCP", "-N", "-B", *extra, "-e", sql],
                          capture_output=True, timeout=timeout)


@pytest.mark.parametrize("mode", ["plain", "jwt+deflate"])
def test_mariadb_select_and_10mb_roundtrip(procs, tmp_path, mariadb, mode, rsa_keys):
    sargs, cargs = gate_mode_args(mode, rsa_keys)
    g = Gate(procs, tmp_path, {"mysql": "127.0.0.1:%d" % mariadb["port"]}, client=True,
             server_args=sargs, client_args=cargs)
    port = g.cports["mysql"]
    r = mariadb_cli(port, "SELECT 1")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"1\n"
    # 10 MB up with LOAD DATA LOCAL INFILE, and back down with SELECT
    rnd = random.Random(42)
    lines = ["%08d %s" % (i, "%032x" % rnd.getrandbits(128) * 3) for i in range(95000)]
    data = ("\n".join(lines) + "\n").encode()
    assert len(data) > 10_000_000
    f = tmp_path / "rows.txt"
    f.write_bytes(data)
    sql = ("CREATE DATABASE IF NOT EXISTS wsg; USE wsg; DROP TABLE IF EXISTS t; "
           "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, line TEXT) ENGINE=InnoDB; "
           "LOAD DATA LOCAL INFILE '%s' INTO TABLE t (line); "
           "SELECT COUNT(*), SUM(LENGTH(line)) FROM t;" % f)
    r = mariadb_cli(port, sql, extra=["--local-infile=1"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"%d\t%d\n" % (len(lines), len(data) - len(lines))
    r = mariadb_cli(port, "SELECT line FROM wsg.t ORDER BY id")
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256(r.stdout).hexdigest() == hashlib.sha256(data).hexdigest()
    fin = wait_for(lambda: len(g.finals()) >= 3 and g.finals(), what="final lines")
    assert all(e["status"] == "Suceeded" for e in fin), fin
    assert max(e["read"] for e in fin) > 10_000_000
    assert max(e["write"] for e in fin) > 10_000_000


# ---------------------------------------------------------------- python websockets as client

def test_websockets_client_interop(procs, tmp_path, tcp_peer):
    g = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer()},
             server_args=["-max-message-size", "1MiB"])

    async def main():
        async with websockets.connect(g.url("echo"), max_size=None, compression=None) as ws:
            await ws.send(b"hello")
            got = b""
            while len(got) < 5:
                got += await ws.recv()
            assert got == b"hello"
            # a fragmented message: three frames, relayed as one stream
            await ws.send([b"frag1-", b"frag2-", b"frag3"])
            want = b"frag1-frag2-frag3"
            got = b""
            while len(got) < len(want):
                got += await ws.recv()
            assert got == want
            # ping → pong
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 10)
            # 900 kB in one message, below the 1 MiB limit, comes back in pieces
            big = os.urandom(900_000)
            await ws.send(big)
            got = b""
            while len(got) < len(big):
                got += await ws.recv()
            assert got == big
            await ws.close(1000)
            assert ws.close_code == 1000

        # text is refused with 1003
        async with websockets.connect(g.url("echo"), compression=None) as ws:
            await ws.send("text is not allowed")
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 1003

        # an oversized message is refused with 1009
        async with websockets.connect(g.url("echo"), compression=None, max_size=None) as ws:
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                # the server may close before the send is complete
                await ws.send(os.urandom(2 * 1024 * 1024))
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 1009

        # a close code other than normal is logged as a failure
        async with websockets.connect(g.url("echo"), compression=None) as ws:
            await ws.close(4001, "bye")

    arun(main())
    fin = wait_for(lambda: len(g.finals()) >= 4 and g.finals(), what="final lines")
    statuses = sorted(e["status"] for e in fin)
    assert statuses == ["Failed", "Failed", "Failed", "Suceeded"], fin
    assert any(e.get("msg") == "BinaryMessage required" for e in g.server_log())


def test_websockets_client_unmasked_frame_rejected(procs, tmp_path, tcp_peer):
    g = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer()})
    s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
    s.sendall(upgrade_request("echo"))
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    assert buf.startswith(b"HTTP/1.1 101")
    s.sendall(b"\x82\x03abc")  # unmasked binary frame from a "client"
    rest = buf.partition(b"\r\n\r\n")[2]
    while len(rest) < 4:
        d = s.recv(4096)
        if not d:
            break
        rest += d
    assert rest[0] == 0x88, rest  # a close frame
    assert int.from_bytes(rest[2:4], "big") == 1002
    s.close()


# ---------------------------------------------------------------- python websockets as server

class WsPeer:
    """A python3-websockets server in a thread; `behaviour` picks what it does."""

    def __init__(self, behaviour="echo"):
        self.behaviour = behaviour
        self.headers = []
        self.extensions = []
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(20)

    async def handler(self, ws, path):
        self.headers.append((path, dict(ws.request_headers)))
        self.extensions.append([e.name for e in ws.extensions])
        if self.behaviour == "echo":
            async for m in ws:
                await ws.send(m)
        elif self.behaviour == "fragments":
            await ws.send([b"one-", b"two-", b"three\n"])
            pong = await ws.ping(b"x")
            await asyncio.wait_for(pong, 10)
            await ws.send(b"pong ok\n")
            await ws.close(4000, "server says bye")

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def main():
            async with websockets.serve(self.handler, "127.0.0.1", self.port,
                                        compression="deflate", max_size=None):
                self.ready.set()
                self.stop = self.loop.create_future()
                await self.stop

        self.loop.run_until_complete(main())

    def close(self):
        self.loop.call_soon_threadsafe(lambda: self.stop.set_result(None))
        self.thread.join(10)


def start_client(procs, tmp_path, url, args=(), name="c"):
    port = free_port()
    cmap = tmp_path / ("%s-map.txt" % name)
    cmap.write_text("# comment\n\n127.0.0.1:%d,%s\n" % (port, url))
    log = tmp_path / ("%s.log" % name)
    p = procs.start([CLIENT, "--map", str(cmap), *args], stderr=open(log, "wb"))
    wait_listening(port, proc=p)
    return port, p, log


def test_client_against_websockets_server(procs, tmp_path):
    peer = WsPeer("echo")
    try:
        port, _, log = start_client(
            procs, tmp_path, "http://127.0.0.1:%d/proxy/x?y=1" % peer.port,
            ["-H", "X-Test: hello world", "--headers=X-Other:two"])
        s, got = echo_exchange(port, b"ping through the tunnel")
        assert got == b"ping through the tunnel"
        big = os.urandom(3_000_000)
        s.sendall(big)
        got = bytearray()
        while len(got) < len(big):
            d = s.recv(1 << 16)
            assert d
            got += d
        assert bytes(got) == big
        s.close()
        path, h = peer.headers[0]
        assert path == "/proxy/x?y=1"
        h = {k.lower(): v for k, v in h.items()}
        assert h["x-test"] == "hello world" and h["x-other"] == "two"
        assert h["origin"] == "http://127.0.0.1:%d" % peer.port
        assert h["host"] == "127.0.0.1:%d" % peer.port
        assert peer.extensions == [[]]  # not offered without --enable-compression
    finally:
        peer.close()


def test_client_fragments_ping_close_code(procs, tmp_path):
    peer = WsPeer("fragments")
    try:
        port, _, log = start_client(procs, tmp_path, "ws://127.0.0.1:%d/p" % peer.port)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            buf = b""
            while True:
                d = s.recv(4096)
                if not d:
                    break
                buf += d
        assert buf == b"one-two-three\npong ok\n"
        # Origin carries the URL's scheme as written, as the original's does
        assert {k.lower(): v for k, v in peer.headers[0][1].items()}["origin"] == \
            "ws://127.0.0.1:%d" % peer.port
        fin = wait_for(lambda: [e for e in read_log(log) if e.get("status") in
                                ("Failed", "Suceeded")], what="client final line")
        assert fin[0]["status"] == "Failed"  # 4000 is not a normal close
    finally:
        peer.close()


def test_client_dial_failure_closes_connection(procs, tmp_path):
    dead = free_port()
    port, _, log = start_client(procs, tmp_path, "http://127.0.0.1:%d/proxy/x" % dead)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        assert s.recv(10) == b""
    w = wait_for(lambda: [e for e in read_log(log) if e.get("msg") == "Failed to connect backend"],
                 what="warning")
    assert "connection refused" in w[0]["error"]


def test_client_against_404(procs, tmp_path, tcp_peer):
    g = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer()})
    port, _, log = start_client(procs, tmp_path, "http://127.0.0.1:%d/proxy/other" % g.port)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        assert s.recv(10) == b""
    w = wait_for(lambda: [e for e in read_log(log) if e.get("msg") == "Failed to connect backend"],
                 what="warning")
    assert "404" in w[0]["error"] and "Not found: other" in w[0]["error"]
    assert w[0]["error"].count("Not found: other") == 1, w[0]["error"]


# ---------------------------------------------------------------- half-close

def test_half_close_end_to_end(procs, tmp_path, tcp_peer):
    g = Gate(procs, tmp_path, {"eof": "127.0.0.1:%d" % tcp_peer("eof")}, client=True)
    data = os.urandom(2_000_000)
    got = roundtrip(g.cports["eof"], data)
    assert got == b"got %d bytes %s\n" % (len(data), hashlib.sha256(data).hexdigest().encode())
    fin = wait_for(lambda: g.finals(), what="final line")
    assert fin[0]["status"] == "Suceeded"


def test_half_close_without_agreement_closes_like_original(procs, tmp_path, tcp_peer):
    """A peer that does not offer the half-close subprotocol (python websockets
    here, the Go client in the field): EOF upstream closes the tunnel."""
    g = Gate(procs, tmp_path, {"eof": "127.0.0.1:%d" % tcp_peer("eof")})

    async def main():
        async with websockets.connect(g.url("eof"), compression=None) as ws:
            await ws.send(b"abc")
            await ws.send(b"")  # without the agreement an empty message is just empty
            await ws.close()
    arun(main())
    fin = wait_for(lambda: g.finals(), what="final line")
    assert fin[0]["status"] == "Suceeded"


# ---------------------------------------------------------------- bad input

def test_bad_map_lines_and_flags(tmp_path):
    cases = [
        (SERVER, ["-map"], "mc,127.0.0.1:11211\nbroken line\n", ":2: expected NAME,HOST:PORT"),
        (SERVER, ["-map"], "# c\n\nmc,127.0.0.1\n", ":3: expected NAME,HOST:PORT"),
        (SERVER, ["-map"], "mc,127.0.0.1:99999\n", ":1: expected NAME,HOST:PORT"),
        (CLIENT, ["--map"], "127.0.0.1:1,ftp://x/\n", ":1: expected LISTEN_ADDR,URL"),
        (CLIENT, ["--map"], "\n# x\nnoport,http://x/\n", ":3: expected LISTEN_ADDR,URL"),
        (CLIENT, ["--map"], "127.0.0.1:1\n", ":1: expected LISTEN_ADDR,URL"),
    ]
    for i, (prog, flag, text, msg) in enumerate(cases):
        m = tmp_path / ("map%d.txt" % i)
        m.write_text(text)
        r = subprocess.run([prog, *flag, str(m)], capture_output=True, text=True, timeout=10)
        assert r.returncode == 1, (text, r)
        assert (str(m) + msg) in r.stderr, (text, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for args in ([SERVER, "-nope"], [SERVER, "-dial_timeout", "10parsecs"],
                 [SERVER, "-dump-tcp", "x"], [SERVER, "-map", str(tmp_path / "missing.txt")],
                 [SERVER, "-public-key", str(tmp_path / "missing.pem")],
                 [CLIENT], [CLIENT, "--map", str(tmp_path / "missing.txt")],
                 [CLIENT, "--nope"], [CLIENT, "--connect-timeout", "soon", "--map", "x"]):
        r = subprocess.run(args, capture_output=True, text=True, timeout=10)
        assert r.returncode == 1, (args, r)
        assert r.stderr.strip(), args
    m = tmp_path / "ok.txt"
    m.write_text("127.0.0.1:1,http://127.0.0.1:2/proxy/x\n")
    r = subprocess.run([CLIENT, "--map", str(m), "-H", "no colon here"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 1 and "no colon here" in r.stderr


def test_map_bom_ports_duplicates_and_bound_ports(procs, tmp_path, tcp_peer):
    """A leading UTF-8 BOM is not part of the first name (server and client maps);
    ports 0 and -1 are refused at load; a duplicate LISTEN_ADDR names its lines;
    a :0 listener logs the port it got."""
    bad = [
        (SERVER, ["-map"], "mc,127.0.0.1:0\n", ':1: invalid port in "127.0.0.1:0"'),
        (SERVER, ["-map"], "ok,127.0.0.1:1\nmc,127.0.0.1:-1\n",
         ':2: invalid port in "127.0.0.1:-1"'),
        (CLIENT, ["--map"], "127.0.0.1:1,http://127.0.0.1:0/proxy/x\n",
         ':1: invalid port in "127.0.0.1:0"'),
        (CLIENT, ["--map"], "127.0.0.1:-1,http://127.0.0.1:2/proxy/x\n",
         ':1: invalid port in "127.0.0.1:-1"'),
        (CLIENT, ["--map"], "127.0.0.1:7001,http://h:1/proxy/a\n# x\n"
         "127.0.0.1:7002,http://h:1/proxy/b\n127.0.0.1:7001,http://h:1/proxy/c\n",
         ":4: duplicate listen address 127.0.0.1:7001 (first at line 1)"),
    ]
    for i, (prog, flag, text, msg) in enumerate(bad):
        m = tmp_path / ("bad%d.txt" % i)
        m.write_text(text)
        r = subprocess.run([prog, *flag, str(m)], capture_output=True, text=True, timeout=10)
        assert r.returncode == 1, (text, r)
        assert (str(m) + msg) in r.stderr, (text, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr

    # BOM: the server serves /proxy/echo, the client listens; both on :0 ports
    smap = tmp_path / "bom-server.txt"
    smap.write_bytes(b"\xef\xbb\xbfecho,127.0.0.1:%d\n" % tcp_peer())
    slog = tmp_path / "bom-server.log"
    server = procs.start([SERVER, "-listen", "127.0.0.1:0", "-map", str(smap)],
                         stderr=open(slog, "wb"))
    lst = wait_for(lambda: [e for e in read_log(slog) if e.get("msg") == "Listening"],
                   what="Listening line")
    host, port = lst[0]["address"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0, lst
    port = int(port)
    assert [e["from"] for e in read_log(slog) if e.get("msg") == "Created map"] == ["echo"]
    assert http_status(port, upgrade_request("echo")) == 101
    cmap = tmp_path / "bom-client.txt"
    cmap.write_bytes(b"\xef\xbb\xbf127.0.0.1:0,http://127.0.0.1:%d/proxy/echo\n" % port)
    clog = tmp_path / "bom-client.log"
    procs.start([CLIENT, "--map", str(cmap)], stderr=open(clog, "wb"))
    made = wait_for(lambda: [e for e in read_log(clog) if e.get("msg") == "Create map"],
                    what="Create map line")
    assert made[0]["listen"] == "127.0.0.1:0"
    cport = int(made[0]["address"].rsplit(":", 1)[1])
    assert cport > 0
    s, got = echo_exchange(cport, b"through a :0 listener")
    assert got == b"through a :0 listener"
    s.close()
    assert server.poll() is None


def test_warns_without_map_entries(procs, tmp_path):
    """Every /proxy request would be a 404: say so once at start."""
    cases = {"none": [], "empty": ["-map", str(tmp_path / "empty.txt")]}
    (tmp_path / "empty.txt").write_text("# nothing yet\n\n")
    for what, args in cases.items():
        port = free_port()
        log = tmp_path / ("%s.log" % what)
        p = procs.start([SERVER, "-listen", "127.0.0.1:%d" % port, *args],
                        stderr=open(log, "wb"))
        wait_port(port, proc=p)
        warn = [e for e in read_log(log) if e.get("level") == "warn"]
        assert len(warn) == 1 and "no map entries" in warn[0]["msg"], (what, warn)
    # a map with entries: no such warning
    m = tmp_path / "one.txt"
    m.write_text("a,127.0.0.1:1\n")
    port = free_port()
    log = tmp_path / "one.log"
    p = procs.start([SERVER, "-listen", "127.0.0.1:%d" % port, "-map", str(m)],
                    stderr=open(log, "wb"))
    wait_port(port, proc=p)
    assert not [e for e in read_log(log) if e.get("level") == "warn"]


def test_flag_ranges(tmp_path):
    """Every duration, size and int flag has a valid range (lib/flags): a value
    outside it is one clear line and exit 1. A timeout of 0 is the originals'
    "none" (Go's 0 duration), accepted."""
    r = subprocess.run([SERVER, "-dial_timeout", "-1s"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1
    assert ('invalid value "-1s" for -dial_timeout: must be between 0s and 8760h'
            in r.stderr), r.stderr
    m = tmp_path / "ok.txt"
    m.write_text("127.0.0.1:1,http://127.0.0.1:2/proxy/x\n")
    bad = [(SERVER, "-handshake_timeout", "-10s"),
           (SERVER, "-dial_timeout", "9000h"), (SERVER, "-write_timeout", "-1s"),
           (SERVER, "-shutdown_timeout", "-1s"), (SERVER, "-jwt-freshness", "0"),
           (SERVER, "-ping-interval", "-1s"), (SERVER, "-ping-timeout", "0"),
           (SERVER, "-dump-tcp", "3"), (SERVER, "-dump-tcp", "-1"),
           (SERVER, "-max-message-size", "0"), (SERVER, "-max-message-size", "8GiB"),
           (SERVER, "-workers", "257"),
           (CLIENT, "--connect-timeout", "-1s"),
           (CLIENT, "--shutdown-timeout", "-1s"), (CLIENT, "--ping-interval", "-1s"),
           (CLIENT, "--ping-timeout", "0"), (CLIENT, "--max-message-size", "0")]
    for prog, flag, value in bad:
        args = [prog, flag, value] + (["--map", str(m)] if prog == CLIENT else [])
        r = subprocess.run(args, capture_output=True, text=True, timeout=10)
        assert r.returncode == 1, (flag, value, r)
        assert '"%s" for %s: must be ' % (value, flag) in r.stderr, (flag, value, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


# ---------------------------------------------------------------- dump, signals, start_server

def test_dump_tcp(procs, tmp_path, tcp_peer):
    g = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer()}, client=True,
             server_args=["-dump-tcp", "2"])
    s, got = echo_exchange(g.cports["echo"], b"Hi\x00\xff")
    assert got == b"Hi\x00\xff"
    dumps = wait_for(lambda: [e for e in g.server_log() if e.get("msg") == "dump"] or None,
                     what="dump lines")
    s.close()
    d1 = [e for e in dumps if e["direction"] == 1]
    assert d1 and d1[0]["hex"] == "48 69 00 ff" and d1[0]["ascii"] == "Hi.."
    dumps = wait_for(lambda: [e for e in g.server_log() if e.get("msg") == "dump" and
                              e["direction"] == 2], what="direction 2")
    assert dumps[0]["hex"] == "48 69 00 ff"


def test_sigterm_waits_for_tunnels(procs, tmp_path, tcp_peer):
    g = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer()}, client=True)
    s, got = echo_exchange(g.cports["echo"], b"first")
    assert got == b"first"
    g.server.send_signal(signal.SIGTERM)
    wait_for(lambda: any(e.get("msg") == "Waiting for all connections to be closed"
                         for e in g.server_log()), what="shutdown start")
    # new connections are refused by the server (as soon as every worker
    # stopped accepting), the open tunnel still relays
    def refused():
        try:
            socket.create_connection(("127.0.0.1", g.port), timeout=5).close()
            return False
        except OSError:
            return True
    wait_for(refused, timeout=10, what="refused connections")
    s.sendall(b"second")
    assert s.recv(100) == b"second"
    assert g.server.poll() is None
    s.close()
    assert g.server.wait(timeout=20) == 0


def test_shutdown_timeout(procs, tmp_path, tcp_peer):
    g = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer()}, client=True,
             server_args=["-shutdown_timeout", "1s"])
    s, got = echo_exchange(g.cports["echo"], b"x")
    t0 = time.monotonic()
    g.server.send_signal(signal.SIGTERM)
    assert g.server.wait(timeout=20) == 0
    assert time.monotonic() - t0 < 10
    s.close()
    g.client.send_signal(signal.SIGTERM)
    assert g.client.wait(timeout=20) == 0


def test_server_starter_restart(procs, tmp_path, tcp_peer):
    need("start_server")
    echo = tcp_peer()
    port = free_port()
    smap = tmp_path / "map.txt"
    smap.write_text("echo,127.0.0.1:%d\n" % echo)
    pidf = tmp_path / "ss.pid"
    log = tmp_path / "ss.log"
    ss = procs.start(["start_server", "--port=127.0.0.1:%d" % port, "--pid-file=%s" % pidf,
                      "--interval=1", "--signal-on-hup=TERM", "--",
                      SERVER, "-map", str(smap)], stderr=open(log, "wb"), stdout=subprocess.DEVNULL)
    wait_port(port, proc=ss)
    cport, _, _ = start_client(procs, tmp_path, "http://127.0.0.1:%d/proxy/echo" % port)
    stop = threading.Event()
    results = {"ok": 0, "errors": []}

    def loop():
        i = 0
        while not stop.is_set():
            i += 1
            msg = b"request %d\n" % i
            try:
                with socket.create_connection(("127.0.0.1", cport), timeout=20) as s:
                    s.sendall(msg)
                    got = b""
                    while len(got) < len(msg):
                        d = s.recv(100)
                        if not d:
                            break
                        got += d
                if got == msg:
                    results["ok"] += 1
                else:
                    results["errors"].append((i, got))
            except OSError as e:
                results["errors"].append((i, repr(e)))
    th = threading.Thread(target=loop)
    th.start()
    try:
        wait_for(lambda: results["ok"] >= 20, timeout=30, what="traffic before HUP")

        def workers():
            r = subprocess.run(["pgrep", "-f", "-P", str(ss.pid), "wsgate-server"],
                               capture_output=True, text=True)
            return set(r.stdout.split())
        before = workers()
        assert before
        ss.send_signal(signal.SIGHUP)
        wait_for(lambda: workers() and not (workers() & before), timeout=30,
                 what="a new wsgate-server generation")
        n = results["ok"]
        wait_for(lambda: results["ok"] >= n + 20, timeout=30, what="traffic after HUP")
    finally:
        stop.set()
        th.join(30)
    assert results["errors"] == [], results["errors"][:5]
    assert results["ok"] >= 40


# ---------------------------------------------------------------- JWT

@pytest.fixture(scope="module")
def rsa_keys(tmp_path_factory):
    need("openssl")
    d = tmp_path_factory.mktemp("keys")
    out = {}
    for name in ("good", "other"):
        key = d / ("%s.pem" % name)
        pub = d / ("%s.pub.pem" % name)
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                       capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)],
                       check=True, capture_output=True)
        out[name] = (key, pub)
    return out


class _CountingEcho(EchoHandler):
    accepted = 0

    def handle(self):
        type(self).accepted += 1
        super().handle()


@pytest.mark.parametrize("keyform", ["pubkey", "certificate"])
def test_jwt_verification(procs, tmp_path, rsa_keys, keyform):
    """Each token gets its status; a refused one dials nothing. The key may
    be a PUBLIC KEY PEM or an X.509 certificate (as golang-jwt takes)."""
    jwt = pytest.importorskip("jwt")
    key, pub = rsa_keys["good"]
    if keyform == "certificate":
        cert = tmp_path / "cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-new", "-key", str(key), "-days", "1",
                        "-subj", "/CN=wsgate-test", "-out", str(cert)], check=True,
                       capture_output=True)
        pub = cert
    handler = type("Counting", (_CountingEcho,), {"accepted": 0})
    peer = start_tcp_server(handler)
    g = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % peer.server_address[1]},
             server_args=["-public-key", str(pub), "-jwt-freshness", "10m"])
    now = int(time.time())
    priv = key.read_bytes()
    other = rsa_keys["other"][0].read_bytes()
    pubtext = pub.read_bytes()

    def hs256_with_pubkey():
        h = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
        p = base64.urlsafe_b64encode(json.dumps(
            {"sub": "evil", "iat": now, "exp": now + 60}).encode()).rstrip(b"=")
        import hmac
        sig = base64.urlsafe_b64encode(hmac.new(pubtext, h + b"." + p, "sha256").digest())
        return (h + b"." + p + b"." + sig.rstrip(b"=")).decode()

    def none_token():
        h = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=")
        p = base64.urlsafe_b64encode(json.dumps(
            {"sub": "evil", "iat": now, "exp": now + 60}).encode()).rstrip(b"=")
        return (h + b"." + p + b".").decode()

    cases = {
        "good": (jwt.encode({"sub": "alice", "iat": now, "exp": now + 60}, priv, "RS256"), 101),
        "rs512": (jwt.encode({"sub": "bob", "iat": now, "exp": now + 60}, priv, "RS512"), 101),
        "expired": (jwt.encode({"sub": "a", "iat": now - 100, "exp": now - 10}, priv, "RS256"),
                    401),
        "old iat": (jwt.encode({"sub": "a", "iat": now - 3600, "exp": now + 60}, priv,
                               "RS256"), 401),
        "no exp": (jwt.encode({"sub": "a", "iat": now}, priv, "RS256"), 401),
        "no iat": (jwt.encode({"sub": "a", "exp": now + 60}, priv, "RS256"), 401),
        "wrong key": (jwt.encode({"sub": "a", "iat": now, "exp": now + 60}, other, "RS256"),
                      401),
        "none": (none_token(), 401),
        "hs256 pubkey": (hs256_with_pubkey(), 401),
        "garbage": ("not.a.token", 401),
        "missing": (None, 401),
        "dest ok": (jwt.encode({"sub": "dan", "iat": now, "exp": now + 60,
                                "dest": ["other", "echo"]}, priv, "RS256"), 101),
        "dest other": (jwt.encode({"sub": "eve", "iat": now, "exp": now + 60,
                                   "dest": ["other"]}, priv, "RS256"), 403),
        # a token minted ahead of time would stay "fresh" until its exp: refused beyond
        # the documented 60 s clock-skew leeway, as the Go original refuses it
        "future iat": (jwt.encode({"sub": "a", "iat": now + 3600, "exp": now + 7200}, priv,
                                  "RS256"), 401, b"token used before issued"),
        "future nbf": (jwt.encode({"sub": "a", "iat": now, "nbf": now + 3600,
                                   "exp": now + 7200}, priv, "RS256"), 401,
                       b"token is not valid yet"),
        "bad nbf": (jwt.encode({"sub": "a", "iat": now, "nbf": "soon", "exp": now + 60}, priv,
                               "RS256"), 401, b"token is malformed: invalid type for claim nbf"),
        "iat in leeway": (jwt.encode({"sub": "fay", "iat": now + 20, "nbf": now + 20,
                                      "exp": now + 60}, priv, "RS256"), 101),
        "past nbf": (jwt.encode({"sub": "gus", "iat": now, "nbf": now - 5, "exp": now + 60},
                                priv, "RS256"), 101),
    }
    for what, (tok, want, *reason) in cases.items():
        extra = b"" if tok is None else b"Authorization: Bearer " + tok.encode() + b"\r\n"
        s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
        s.sendall(upgrade_request("echo", extra))
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(4096)
            if not d:
                break
            buf += d
        if reason:
            while not buf.endswith(b"\n"):
                d = s.recv(4096)
                if not d:
                    break
                buf += d
        s.close()
        status = int(buf.split(b" ", 2)[1])
        assert status == want, (what, buf)
        if reason:
            assert buf.split(b"\r\n\r\n", 1)[1].strip() == reason[0], (what, buf)
    # the 101 can reach us before the server has written its log line
    want_users = ["alice", "bob", "dan", "fay", "gus"]

    def settled():
        log = g.server_log()
        users = [e["user-email"] for e in log if e.get("status") == "Connected"]
        fails = [e for e in log if e.get("msg") == "Failed to authorize"]
        return log if len(users) >= len(want_users) and len(fails) >= 13 else None
    try:
        log = wait_for(settled, timeout=10, what="every log line")
    except TimeoutError:
        log = g.server_log()
    users = [e["user-email"] for e in log if e.get("status") == "Connected"]
    assert sorted(users) == want_users
    assert len([e for e in log if e.get("msg") == "Failed to authorize"]) == 13
    # refused tokens (401, 403) dialled nothing: one upstream connection per 101
    wait_for(lambda: handler.accepted >= len(want_users), what="upstream connections")
    time.sleep(0.2)
    assert handler.accepted == len(want_users)
    peer.shutdown()
    peer.server_close()


def test_client_private_key_signs_tokens(procs, tmp_path, tcp_peer, rsa_keys):
    key, pub = rsa_keys["good"]
    g = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer()},
             server_args=["-public-key", str(pub)])
    port, _, _ = start_client(procs, tmp_path, "http://127.0.0.1:%d/proxy/echo" % g.port,
                              ["--private-key", str(key), "--private-key-user", "carol"])
    s, got = echo_exchange(port, b"authorised")
    assert got == b"authorised"
    s.close()
    conn = wait_for(lambda: [e for e in g.server_log() if e.get("status") == "Connected"],
                    what="Connected")
    assert conn[0]["user-email"] == "carol"


# ---------------------------------------------------------------- back-pressure, unix sockets

def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_backpressure_bounds_memory(procs, tmp_path):
    """1 GiB to an upstream that first stops reading, then reads slowly: the
    sender blocks, the gateway's memory stays bounded all along, and every
    byte arrives."""
    total = 1024 * 1024 * 1024
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    got = {"n": 0}
    release = threading.Event()

    def upstream():
        c, _ = lst.accept()
        release.wait(60)
        while True:
            d = c.recv(256 * 1024)
            if not d:
                break
            got["n"] += len(d)
            time.sleep(0.001)  # slow: at most ~250 MB/s
        c.close()
    th = threading.Thread(target=upstream, daemon=True)
    th.start()
    g = Gate(procs, tmp_path, {"slow": "127.0.0.1:%d" % lst.getsockname()[1]}, client=True)
    base = {p.pid: rss_kb(p.pid) for p in (g.server, g.client)}
    sent = {"n": 0}

    def sender():
        s = socket.create_connection(("127.0.0.1", g.cports["slow"]))
        chunk = b"\0" * (1 << 20)
        for _ in range(total // len(chunk)):
            s.sendall(chunk)
            sent["n"] += len(chunk)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        s.close()
    st = threading.Thread(target=sender, daemon=True)
    st.start()
    time.sleep(3)  # the sender is stuck: everything between it and the upstream is full
    stuck_at = sent["n"]
    peak = {p.pid: rss_kb(p.pid) - base[p.pid] for p in (g.server, g.client)}
    assert stuck_at < 64 * 1024 * 1024, stuck_at
    for pid, grow in peak.items():
        assert grow < 16 * 1024, (pid, grow)  # KiB: a couple of buffers, not the stream
    release.set()
    deadline = time.monotonic() + 180
    while th.is_alive() and time.monotonic() < deadline:  # and while it reads slowly
        for p in (g.server, g.client):
            grow = rss_kb(p.pid) - base[p.pid]
            assert grow < 16 * 1024, (p.pid, grow, got["n"])
        th.join(0.2)
    st.join(120)
    assert got["n"] == total


def test_unix_socket_upstream(procs, tmp_path):
    path = str(tmp_path / "echo.sock")

    class UnixEcho(socketserver.ThreadingUnixStreamServer):
        daemon_threads = True
    srv = UnixEcho(path, EchoHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        g = Gate(procs, tmp_path, {"sock": "unix:" + path}, client=True)
        s, got = echo_exchange(g.cports["sock"], b"over a unix socket")
        assert got == b"over a unix socket"
        s.close()
    finally:
        srv.shutdown()
        srv.server_close()


# ---------------------------------------------------------------- keepalive

def test_ping_keepalive(procs, tmp_path, tcp_peer):
    g = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer()},
             server_args=["-ping-interval", "100ms", "-ping-timeout", "600ms"])

    async def main():
        # websockets answers pings: an idle tunnel outlives the timeout
        async with websockets.connect(g.url("echo"), compression=None,
                                      ping_interval=None) as ws:
            await asyncio.sleep(1.5)
            await ws.send(b"still here")
            assert await ws.recv() == b"still here"
    arun(main())

    # a raw client that never answers: pinged, then dropped
    s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
    s.sendall(upgrade_request("echo"))
    buf = b""
    t0 = time.monotonic()
    while time.monotonic() - t0 < 20:
        d = s.recv(4096)
        if not d:
            break
        buf += d
    elapsed = time.monotonic() - t0
    s.close()
    frames = buf.partition(b"\r\n\r\n")[2]
    assert frames[:1] == b"\x89", frames[:16]  # a ping came first
    assert elapsed < 8
    fin = wait_for(lambda: [e for e in g.finals() if e["status"] == "Failed"], what="drop")
    assert any("ping timeout" in e.get("error", "") for e in g.server_log())
    assert fin


# ---------------------------------------------------------------- permessage-deflate

def test_compression_memcached_and_mariadb(procs, tmp_path, mariadb):
    mc = start_memcached(procs)
    g = Gate(procs, tmp_path, {"memcached": "127.0.0.1:%d" % mc,
                               "mysql": "127.0.0.1:%d" % mariadb["port"]}, client=True,
             server_args=["-enable_compression"], client_args=["--enable-compression"])
    val = (b"compressible " * 100000)[:1000000]
    with socket.create_connection(("127.0.0.1", g.cports["memcached"]), timeout=30) as s:
        s.sendall(b"set z 0 0 %d\r\n" % len(val) + val + b"\r\nget z\r\n")
        buf = b""
        while not buf.endswith(b"END\r\n"):
            d = s.recv(1 << 16)
            assert d
            buf += d
        assert buf == b"STORED\r\nVALUE z 0 %d\r\n" % len(val) + val + b"\r\nEND\r\n"
    r = mariadb_cli(g.cports["mysql"], "SELECT REPEAT('ab', 3000000) AS x")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"ab" * 3000000 + b"\n"


def test_compression_interop_with_websockets(procs, tmp_path, tcp_peer):
    g = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer()},
             server_args=["-enable_compression", "-max-message-size", "1MiB"])

    async def main():
        async with websockets.connect(g.url("echo"), compression="deflate",
                                      max_size=None) as ws:
            assert [e.name for e in ws.extensions] == ["permessage-deflate"]
            data = b"0123456789" * 50000
            await ws.send(data)
            got = b""
            while len(got) < len(data):
                got += await ws.recv()
            assert got == data
        # a bomb: 32 MB of zeros compresses to a few kB, inflates past the limit
        async with websockets.connect(g.url("echo"), compression="deflate",
                                      max_size=None) as ws:
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await ws.send(b"\0" * (32 << 20))
                while True:
                    await asyncio.wait_for(ws.recv(), 20)
            assert ws.close_code == 1009
            assert ws.close_reason == "message too big"
    arun(main())
    # the upstream got no more than the limit of it
    finals = wait_for(lambda: [e for e in g.finals() if e.get("read", 0) > 1000000] or None,
                      what="the bomb's final line")
    assert finals[0]["read"] <= 1 << 20, finals

    # without -enable_compression nothing is negotiated, and that is fine
    g2 = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer()}, name="plain")

    async def plain():
        async with websockets.connect(g2.url("echo"), compression="deflate") as ws:
            assert ws.extensions == []
            await ws.send(b"x")
            assert await ws.recv() == b"x"
    arun(plain())


def test_client_compression_against_websockets_server(procs, tmp_path):
    peer = WsPeer("echo")
    try:
        port, _, _ = start_client(procs, tmp_path, "http://127.0.0.1:%d/z" % peer.port,
                                  ["--enable-compression"])
        data = b"hello compressed world " * 20000
        s, got = echo_exchange(port, data)
        s.close()
        assert got == data
        assert peer.extensions == [["permessage-deflate"]]
    finally:
        peer.close()


# ---------------------------------------------------------------- TLS

@pytest.fixture(scope="module")
def tls_certs(tmp_path_factory):
    need("openssl")
    d = tmp_path_factory.mktemp("tls")

    def run(*args):
        subprocess.run(args, check=True, capture_output=True, cwd=d)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "2", "-subj", "/CN=wsgate test CA")
    for name, san in (("srv", "DNS:localhost,IP:127.0.0.1"), ("wrong", "DNS:other.example")):
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
            "-out", name + ".csr", "-subj", "/CN=" + name)
        (d / (name + ".ext")).write_text("subjectAltName=%s\n" % san)
        run("openssl", "x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile",
            name + ".ext")
    return d


def test_tls_end_to_end(procs, tmp_path, tcp_peer, tls_certs):
    d = tls_certs
    g = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer()},
             server_args=["-tls-cert", str(d / "srv.pem"), "-tls-key", str(d / "srv.key")])
    need("curl")
    r = subprocess.run(["curl", "-s", "--cacert", str(d / "ca.pem"),
                        "https://localhost:%d/live" % g.port], capture_output=True, timeout=20)
    assert r.stdout == b"OK\n", r
    for host in ("localhost", "127.0.0.1"):
        port, _, log = start_client(procs, tmp_path,
                                    "https://%s:%d/proxy/echo" % (host, g.port),
                                    ["--ca-file", str(d / "ca.pem")], name="c-" + host)
        data = os.urandom(1_500_000)
        s, got = echo_exchange(port, data)
        s.close()
        assert got == data
    # and python websockets over wss against our server
    import ssl
    ctx = ssl.create_default_context(cafile=str(d / "ca.pem"))

    async def main():
        async with websockets.connect("wss://localhost:%d/proxy/echo" % g.port, ssl=ctx,
                                      compression=None) as ws:
            await ws.send(b"over tls")
            assert await ws.recv() == b"over tls"
    arun(main())


def test_tls_verification_failures(procs, tmp_path, tcp_peer, tls_certs):
    d = tls_certs
    g = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer()},
             server_args=["-tls-cert", str(d / "srv.pem"), "-tls-key", str(d / "srv.key")])
    g2 = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer()}, name="wrong",
              server_args=["-tls-cert", str(d / "wrong.pem"), "-tls-key",
                           str(d / "wrong.key")])
    cases = [
        ("https://localhost:%d/proxy/echo" % g.port, [], "certificate verify failed"),
        ("https://localhost:%d/proxy/echo" % g2.port, ["--ca-file", str(d / "ca.pem")],
         "hostname mismatch"),
    ]
    for i, (url, args, want) in enumerate(cases):
        port, _, log = start_client(procs, tmp_path, url, args, name="bad%d" % i)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            assert s.recv(10) == b""
        w = wait_for(lambda: [e for e in read_log(log)
                              if e.get("msg") == "Failed to connect backend"], what="warning")
        assert want in w[0]["error"], w
    assert not [e for e in g.server_log() if e.get("status") == "Connected"]
    r = subprocess.run([SERVER, "-tls-cert", str(d / "srv.pem")], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 1 and "-tls-key" in r.stderr
    r = subprocess.run([SERVER, "-tls-cert", str(d / "srv.pem"), "-tls-key",
                        str(d / "wrong.key")], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "tls-key" in r.stderr


def test_emfile_pauses_accept_and_recovers(procs, tmp_path, tcp_peer):
    port = free_port()
    smap = tmp_path / "map.txt"
    smap.write_text("echo,127.0.0.1:%d\n" % tcp_peer())
    log = tmp_path / "emfile.log"
    p = procs.start(["bash", "-c", "ulimit -n 24 && exec %s -listen 127.0.0.1:%d -map %s "
                     "-workers 1" % (SERVER, port, smap)], stderr=open(log, "wb"))
    wait_port(port, proc=p)
    conns = []
    for _ in range(40):  # more than the server has descriptors for
        try:
            conns.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            break
    wait_for(lambda: any(e.get("msg") == "accept: pausing" for e in read_log(log)),
             what="EMFILE warning")
    assert p.poll() is None
    for c in conns:
        c.close()
    # descriptors are back: the server accepts again and answers
    def live():
        try:
            return http_raw(port, b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)[2]
        except OSError:
            return None
    assert wait_for(live, timeout=20, what="/live after EMFILE") == b"OK\n"
    # an episode (first EMFILE until the next accepted connection) logs one
    # "pausing" line however often the 100 ms retry found no descriptor, and one
    # "resumed" line that says how often it paused (one acceptor: -workers 1;
    # a connection answered and closed while full frees a descriptor and ends
    # an episode, so there may be several)
    wait_for(lambda: [e for e in read_log(log) if e.get("msg") == "accept: resumed"],
             what="accept: resumed")
    seq = [e for e in read_log(log) if e.get("msg", "").startswith("accept: ")]
    assert [e["msg"] for e in seq] == ["accept: pausing", "accept: resumed"] * (len(seq) // 2), seq
    assert all(e["level"] == "warn" and e["error"] == "Too many open files" for e in seq[::2])
    assert all(e["level"] == "info" and e["pauses"] >= 1 for e in seq[1::2]), seq
    assert len(seq) <= 20, seq


def test_metrics(procs, tmp_path, tcp_peer):
    dead = free_port()
    g = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer(),
                               "dead": "127.0.0.1:%d" % dead}, client=True)
    s, got = echo_exchange(g.cports["echo"], b"12345")
    s.close()
    wait_for(lambda: g.finals(), what="final line")
    http_raw(g.port, upgrade_request("dead"))
    http_raw(g.port, upgrade_request("nope"))
    status, head, body = http_raw(g.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200
    ctypes = [h for h in head.split("\r\n") if h.lower().startswith("content-type:")]
    assert ctypes == ["Content-Type: text/plain; version=0.0.4"], head
    text = body.decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            values[k] = float(v)
    assert values['wsgate_tunnels_total{destination="echo",status="Suceeded"}'] == 1
    assert values['wsgate_bytes_total{direction="client_to_upstream"}'] == 5
    assert values['wsgate_bytes_total{direction="upstream_to_client"}'] == 5
    assert values["wsgate_dial_failures_total"] == 1
    assert values["wsgate_not_found_total"] == 1
    assert values["wsgate_open_tunnels"] == 0
    assert "# TYPE wsgate_tunnels_total counter" in text


def test_client_stdio(procs, tmp_path, tcp_peer):
    g = Gate(procs, tmp_path, {"eof": "127.0.0.1:%d" % tcp_peer("eof"),
                               "echo": "127.0.0.1:%d" % tcp_peer()})
    data = os.urandom(300_000)
    r = subprocess.run([CLIENT, "--stdio", g.url("eof")], input=data, capture_output=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"got %d bytes %s\n" % (len(data), hashlib.sha256(data).hexdigest().encode())
    assert r.stderr == b""  # quiet on the user's terminal unless something is wrong
    r = subprocess.run([CLIENT, "--stdio", g.url("echo")], input=data, capture_output=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout == data
    r = subprocess.run([CLIENT, "--stdio", g.url("missing")], input=b"x", capture_output=True,
                       timeout=60)
    assert r.returncode == 1 and b"404" in r.stderr


def test_sighup_reloads_map_without_dropping_tunnels(procs, tmp_path, tcp_peer):
    one, two = tcp_peer(), tcp_peer()
    g = Gate(procs, tmp_path, {"one": "127.0.0.1:%d" % one}, client=True)
    s, got = echo_exchange(g.cports["one"], b"before")
    assert got == b"before"
    g.map.write_text("# reloaded\ntwo,127.0.0.1:%d\n" % two)
    g.server.send_signal(signal.SIGHUP)
    wait_for(lambda: any(e.get("msg") == "Reloaded" for e in g.server_log()), what="reload")
    s.sendall(b"after")  # the open tunnel survived
    assert s.recv(100) == b"after"
    s.close()
    status, _, body = http_raw(g.port, upgrade_request("one"))
    assert status == 404
    assert http_status(g.port, upgrade_request("two")) == 101
    # a broken map on reload keeps the old one
    g.map.write_text("two,127.0.0.1:%d\nbroken\n" % two)
    g.server.send_signal(signal.SIGHUP)
    wait_for(lambda: any(e.get("msg") == "Failed to reload map" for e in g.server_log()),
             what="reload error")
    err = [e for e in g.server_log() if e.get("msg") == "Failed to reload map"][0]
    assert ":2: expected NAME,HOST:PORT" in err["error"]
    assert http_status(g.port, upgrade_request("two")) == 101
    assert g.server.poll() is None


# ---------------------------------------------------------------- IAP token source

class TokenEndpoint:
    """A local HTTPS OAuth2 token endpoint that checks the jwt-bearer
    assertion's signature and claims and hands out numbered ID tokens."""

    def __init__(self, certs, sa_public_pem, client_id, email, fail=False):
        import http.server
        import ssl
        import urllib.parse
        jwt = pytest.importorskip("jwt")
        self.port = free_port()
        self.url = "https://localhost:%d/token" % self.port
        self.requests = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                form = urllib.parse.parse_qs(body)
                try:
                    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
                    a = form["assertion"][0]
                    assert jwt.get_unverified_header(a)["kid"] == "key-1"
                    c = jwt.decode(a, sa_public_pem, algorithms=["RS256"], audience=outer.url)
                    assert c["iss"] == email and c["sub"] == email
                    assert c["target_audience"] == client_id + ".apps.googleusercontent.com"
                    assert c["exp"] - c["iat"] == 3600
                    ok = not fail
                except Exception as e:  # noqa: BLE001 - report any failure as 400
                    outer.requests.append(("bad", repr(e)))
                    ok = False
                if not ok:
                    self.send_response(401 if fail else 400)
                    self.end_headers()
                    self.wfile.write(b'{"error":"invalid_grant"}')
                    return
                outer.requests.append(("ok", c))
                out = json.dumps({"id_token": "idtok-%d" % len(outer.requests),
                                  "expires_in": 3600}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(certs / "srv.pem"), str(certs / "srv.key"))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_iap_token_source(procs, tmp_path, tls_certs, rsa_keys):
    key, pub = rsa_keys["good"]
    email = "gate@example-project.iam.gserviceaccount.com"
    cred = tmp_path / "sa.json"
    cred.write_text(json.dumps({"type": "service_account", "client_email": email,
                                "private_key": key.read_text(), "private_key_id": "key-1"}))
    ep = TokenEndpoint(tls_certs, pub.read_bytes(), "1234-abc", email)
    peer = WsPeer("echo")
    try:
        port, _, _ = start_client(
            procs, tmp_path, "http://127.0.0.1:%d/proxy/x" % peer.port,
            ["--iap-credential", str(cred), "--iap-client-id", "1234-abc",
             "--iap-token-endpoint", ep.url, "--ca-file", str(tls_certs / "ca.pem")])
        s, got = echo_exchange(port, b"iap")
        s.close()
        assert got == b"iap"
        assert [r[0] for r in ep.requests] == ["ok"], ep.requests
        h = {k.lower(): v for k, v in peer.headers[0][1].items()}
        assert h["authorization"] == "Bearer idtok-1"
        # the token is cached, not fetched per connection
        s, got = echo_exchange(port, b"again")
        s.close()
        assert len(ep.requests) == 1
    finally:
        peer.close()
        ep.close()
    # an endpoint that refuses: startup fails loudly
    bad = TokenEndpoint(tls_certs, pub.read_bytes(), "1234-abc", email, fail=True)
    try:
        m = tmp_path / "m.txt"
        m.write_text("127.0.0.1:%d,http://127.0.0.1:1/proxy/x\n" % free_port())
        r = subprocess.run([CLIENT, "--map", str(m), "--iap-credential", str(cred),
                            "--iap-client-id", "1234-abc", "--iap-token-endpoint", bad.url,
                            "--ca-file", str(tls_certs / "ca.pem")], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 1 and "401" in r.stderr, r.stderr
        # without the CA the endpoint's certificate is not trusted
        r = subprocess.run([CLIENT, "--map", str(m), "--iap-credential", str(cred),
                            "--iap-client-id", "1234-abc", "--iap-token-endpoint", bad.url],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "certificate" in r.stderr.lower(), r.stderr
        r = subprocess.run([CLIENT, "--map", str(m), "--iap-credential", str(cred),
                            "--private-key", str(key)], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 1 and "exclusive" in r.stderr
    finally:
        bad.close()


def sanitized():
    with open(SERVER, "rb") as f:
        return b"__asan_init" in f.read()


def test_idle_tunnels_give_buffers_back(procs, tmp_path):
    """Tunnels that moved data and went idle shrink back to a small struct:
    RSS per idle tunnel stays far below the 2 x 512 KiB of relay buffers."""
    if sanitized():
        pytest.skip("RSS says nothing under ASan (its allocator keeps freed memory)")
    n = 300
    mc = start_memcached(procs)
    g = Gate(procs, tmp_path, {"mc": "127.0.0.1:%d" % mc}, client=True)
    val = os.urandom(200_000)
    with socket.create_connection(("127.0.0.1", g.cports["mc"]), timeout=30) as s:
        s.sendall(b"set v 0 0 %d\r\n" % len(val) + val + b"\r\n")
        assert s.recv(100) == b"STORED\r\n"
    time.sleep(0.5)
    base = {p.pid: rss_kb(p.pid) for p in (g.server, g.client)}
    conns = []
    want = b"VALUE v 0 %d\r\n" % len(val) + val + b"\r\nEND\r\n"
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", g.cports["mc"]), timeout=30)
        s.sendall(b"get v\r\n")
        got = b""
        while len(got) < len(want):
            d = s.recv(1 << 18)
            assert d
            got += d
        assert got == want
        conns.append(s)
    busy = {p.pid: rss_kb(p.pid) - base[p.pid] for p in (g.server, g.client)}
    time.sleep(5)  # two idle sweeps
    idle = {p.pid: rss_kb(p.pid) - base[p.pid] for p in (g.server, g.client)}
    for s in conns:
        s.close()
    for pid in idle:
        per_tunnel = idle[pid] / n
        assert per_tunnel < 64, (pid, busy[pid] / n, per_tunnel)  # KiB


def test_workers(procs, tmp_path, tcp_peer):
    for n in ("1", "4"):
        g = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer()}, client=True,
                 server_args=["-workers", n], name="w" + n)
        socks = []
        for i in range(20):  # spread over the workers
            s, got = echo_exchange(g.cports["echo"], b"worker test %d" % i)
            assert got == b"worker test %d" % i
            socks.append(s)
        status, _, body = http_raw(g.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"wsgate_open_tunnels 20\n" in body, body
        for s in socks:
            s.close()
        wait_for(lambda: len(g.finals()) >= 20, what="20 final lines")
        g.server.send_signal(signal.SIGTERM)
        assert g.server.wait(timeout=20) == 0
    r = subprocess.run([SERVER, "-workers", "0"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "-workers" in r.stderr


def test_client_workers(procs, tmp_path, tcp_peer):
    """The client's loops share its listeners too (--workers, default one
    per CPU): a thread per loop, tunnels spread over them, and SIGTERM waits
    for the open ones on every loop."""
    for n in ("1", "3", None):
        args = ["--workers", n] if n else []
        g = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer()}, client=True,
                 client_args=args, name="cw%s" % n)
        threads = len(os.listdir("/proc/%d/task" % g.client.pid))
        assert threads == int(n or os.cpu_count()), threads
        socks = []
        for i in range(30):
            s, got = echo_exchange(g.cports["echo"], b"client worker %d" % i)
            assert got == b"client worker %d" % i
            socks.append(s)
        g.client.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert g.client.poll() is None  # waits for the open tunnels
        for i, s in enumerate(socks):  # still relaying
            s.sendall(b"after TERM %d" % i)
            want, got = b"after TERM %d" % i, b""
            while len(got) < len(want):
                d = s.recv(100)
                assert d, got
                got += d
            assert got == want
            s.close()
        assert g.client.wait(timeout=20) == 0
        assert [e for e in g.client_log() if e.get("msg") == "All connections closed. Shutdown"]
    r = subprocess.run([CLIENT, "--workers", "0", "--map", "x"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1 and "--workers" in r.stderr


# ---------------------------------------------------------------- HTTP proxy

class ConnectProxy:
    """A minimal HTTP CONNECT proxy that records what it was asked for."""

    def __init__(self, need_auth=None):
        self.targets = []
        self.auth = []
        outer = self

        class H(socketserver.BaseRequestHandler):
            def handle(self):
                buf = b""
                while b"\r\n\r\n" not in buf:
                    d = self.request.recv(4096)
                    if not d:
                        return
                    buf += d
                head = buf.split(b"\r\n")
                method, target, _ = head[0].decode().split(" ")
                auth = [h.split(b":", 1)[1].strip().decode() for h in head[1:]
                        if h.lower().startswith(b"proxy-authorization:")]
                outer.targets.append((method, target))
                outer.auth.append(auth[0] if auth else None)
                if need_auth and (not auth or auth[0] != need_auth):
                    self.request.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                    return
                host, port = target.rsplit(":", 1)
                up = socket.create_connection((host, int(port)))
                self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

                def pump(a, b):
                    try:
                        while True:
                            d = a.recv(65536)
                            if not d:
                                break
                            b.sendall(d)
                    except OSError:
                        pass
                    try:
                        b.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                th = threading.Thread(target=pump, args=(up, self.request), daemon=True)
                th.start()
                pump(self.request, up)
                th.join(30)
                up.close()

        self.srv = ThreadedTCPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def test_client_http_proxy_and_no_proxy_for_plain_urls(procs, tmp_path, tcp_peer):
    """http:// and ws:// gateways go through HTTP_PROXY, and NO_PROXY matches
    their host (without the port the URL carries)."""
    g = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer()})
    proxy = ConnectProxy()
    try:
        for i, (no_proxy, via_proxy) in enumerate([("", True), ("127.0.0.1", False),
                                                   ("example.com, 127.0.0.1", False)]):
            env = dict(os.environ, HTTP_PROXY="http://127.0.0.1:%d" % proxy.port,
                       NO_PROXY=no_proxy)
            env.pop("no_proxy", None)
            env.pop("http_proxy", None)
            port = free_port()
            cmap = tmp_path / ("plain%d.txt" % i)
            scheme = "ws" if i == 2 else "http"
            cmap.write_text("127.0.0.1:%d,%s://127.0.0.1:%d/proxy/echo\n" % (port, scheme, g.port))
            before = len(proxy.targets)
            p = procs.start([CLIENT, "--map", str(cmap)], env=env,
                            stderr=open(tmp_path / ("plain%d.log" % i), "wb"))
            wait_listening(port, proc=p)
            s, got = echo_exchange(port, b"plain %d" % i)
            s.close()
            assert got == b"plain %d" % i
            assert len(proxy.targets) - before == (1 if via_proxy else 0), (no_proxy,
                                                                           proxy.targets)
    finally:
        proxy.close()


def test_client_through_http_proxy(procs, tmp_path, tcp_peer, tls_certs):
    g = Gate(procs, tmp_path, {"echo": "127.0.0.1:%d" % tcp_peer()},
             server_args=["-tls-cert", str(tls_certs / "srv.pem"), "-tls-key",
                          str(tls_certs / "srv.key")])
    proxy = ConnectProxy(need_auth="Basic " + base64.b64encode(b"me:secret").decode())
    try:
        env = dict(os.environ, HTTPS_PROXY="http://me:secret@127.0.0.1:%d" % proxy.port,
                   NO_PROXY="example.com,.internal")
        port = free_port()
        cmap = tmp_path / "pmap.txt"
        cmap.write_text("127.0.0.1:%d,https://localhost:%d/proxy/echo\n" % (port, g.port))
        p = procs.start([CLIENT, "--map", str(cmap), "--ca-file", str(tls_certs / "ca.pem")],
                        env=env, stderr=open(tmp_path / "p.log", "wb"))
        wait_listening(port, proc=p)
        s, got = echo_exchange(port, b"through a corporate proxy")
        s.close()
        assert got == b"through a corporate proxy"
        assert proxy.targets == [("CONNECT", "localhost:%d" % g.port)]
        # NO_PROXY bypasses it
        env["NO_PROXY"] = "localhost"
        port2 = free_port()
        cmap.write_text("127.0.0.1:%d,https://localhost:%d/proxy/echo\n" % (port2, g.port))
        p2 = procs.start([CLIENT, "--map", str(cmap), "--ca-file", str(tls_certs / "ca.pem")],
                         env=env, stderr=open(tmp_path / "p2.log", "wb"))
        wait_listening(port2, proc=p2)
        s, got = echo_exchange(port2, b"direct")
        s.close()
        assert got == b"direct" and len(proxy.targets) == 1
        # a proxy that refuses: the connection is closed and the reason logged
        env["NO_PROXY"] = ""
        env["HTTPS_PROXY"] = "http://127.0.0.1:%d" % proxy.port  # no credentials → 407
        port3 = free_port()
        cmap.write_text("127.0.0.1:%d,https://localhost:%d/proxy/echo\n" % (port3, g.port))
        log3 = tmp_path / "p3.log"
        p3 = procs.start([CLIENT, "--map", str(cmap), "--ca-file", str(tls_certs / "ca.pem")],
                         env=env, stderr=open(log3, "wb"))
        wait_listening(port3, proc=p3)
        with socket.create_connection(("127.0.0.1", port3), timeout=20) as s:
            assert s.recv(10) == b""
        w = wait_for(lambda: [e for e in read_log(log3)
                              if e.get("msg") == "Failed to connect backend"], what="warning")
        assert "407" in w[0]["error"]
    finally:
        proxy.close()
