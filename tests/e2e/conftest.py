"""Shared fixtures for opskit end-to-end tests.

Tests run the real binaries from $OPSKIT_BUILD (default: ./build) against real
peers on loopback. Every process a test starts is registered with `procs` and
killed at teardown, so a failing test never leaves a server behind.
"""
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("OPSKIT_BUILD", os.path.join(ROOT, "build"))


def binpath(name):
    """Absolute path of a built program, e.g. binpath('sabo')."""
    return os.path.join(BUILD, name)


def free_port(host="127.0.0.1"):
    """An ephemeral TCP port that was free a moment ago."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(port, host="127.0.0.1", timeout=15.0, proc=None):
    """Poll until something accepts on host:port; fail early if proc died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before listening on %s" %
                               (proc.returncode, port))
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("nothing listening on %s:%s after %ss" % (host, port, timeout))


def wait_for(pred, timeout=15.0, interval=0.05, what="condition"):
    """Poll pred() until it is truthy; return its value or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError("timed out waiting for %s" % what)


def need(*cmds):
    """Skip the test, with the reason, when a peer program is not installed."""
    for c in cmds:
        if shutil.which(c) is None and not os.path.exists(c):
            pytest.skip("%s is not installed (make deps installs it)" % c)


class EchoHandler(socketserver.BaseRequestHandler):
    """Sends back every byte it reads, until EOF."""

    def handle(self):
        while True:
            d = self.request.recv(65536)
            if not d:
                break
            self.request.sendall(d)


class ThreadedTCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # (default 5: a burst of dials overflows it)


def start_tcp_server(handler=EchoHandler, host="127.0.0.1"):
    """A threaded TCP peer on host, port 0, serving in the background (an
    echo server by default). The caller calls .shutdown() and .server_close()."""
    srv = ThreadedTCPServer((host, 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


class Procs:
    def __init__(self):
        self.items = []

    def start(self, args, **kw):
        kw.setdefault("start_new_session", True)
        p = subprocess.Popen(args, **kw)
        self.items.append(p)
        return p

    def stop_all(self):
        for p in reversed(self.items):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    try:
                        p.kill()
                    except OSError:
                        pass
            try:
                p.wait(timeout=10)
            except Exception:
                pass


@pytest.fixture
def procs():
    """Start processes with procs.start([...]); all are killed at teardown."""
    p = Procs()
    yield p
    p.stop_all()
