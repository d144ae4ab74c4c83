"""End-to-end tests of start_server (server-starter/), side by side with
Debian's Perl start_server (Server::Starter 0.35, the oracle): the same
scenarios run against both and what a worker sees (environment, open fds,
sockets, cwd) and what the files and messages say are compared. Then the
scenarios only ours gets right: new workers that fail to start (exit at once,
die after 0.3 s, cannot be exec'd) while a client loop keeps hitting the old
one, the readiness gate, --restart's exit status, coalesced HUPs, stale pid
files, PID 1, and a hot deploy of wsgate-server under load.

Workers are small Python scripts (Debian's /usr/bin/python3) that take their
listener from SERVER_STARTER_PORT; their behaviour per generation comes from
a mode file the test rewrites before a HUP."""
import json
import os
import re
import signal
import socket
import stat
import subprocess
import threading
import time

import pytest

from conftest import binpath, free_port, need, start_tcp_server, wait_for, wait_port

OURS = binpath("start_server")
PERL = "/usr/bin/start_server"
PY = "/usr/bin/python3"

WORKER = r'''#!/usr/bin/python3
import json, os, signal, socket, sys, threading, time
d = sys.argv[1]
gen = os.environ.get("SERVER_STARTER_GENERATION", "?")
try:
    with open(os.path.join(d, "mode.json")) as f:
        mode = json.load(f)
except FileNotFoundError:
    mode = {}
mode.update(mode.get("gen%s" % gen, {}))

def fdinfo():
    names = os.listdir("/proc/self/fd")
    out = {}
    for n in names:
        try:
            out[int(n)] = os.readlink("/proc/self/fd/" + n)
        except OSError:
            pass  # the fd listdir itself used
    return out

def sockinfo(fd):
    try:
        s = socket.socket(fileno=os.dup(fd))
    except OSError as e:
        return {"error": str(e)}
    try:
        fam = {socket.AF_INET: "inet", socket.AF_INET6: "inet6", socket.AF_UNIX: "unix"}[s.family]
        typ = {socket.SOCK_STREAM: "stream", socket.SOCK_DGRAM: "dgram"}[s.type]
        addr = s.getsockname()
        if fam == "inet6":
            addr = addr[:2]
        v6only = None
        if fam == "inet6":
            v6only = s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
        listening = s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        reuse = s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        return {"family": fam, "type": typ, "addr": addr, "v6only": v6only,
                "listening": listening, "reuseaddr": reuse}
    finally:
        s.close()

env_keys = ["SERVER_STARTER_PORT", "SERVER_STARTER_GENERATION", "ENVDIR", "ENABLE_AUTO_RESTART",
            "KILL_OLD_DELAY", "AUTO_RESTART_INTERVAL", "FOO", "BAR", "KEEP"]
ports = []
for ent in filter(None, os.environ.get("SERVER_STARTER_PORT", "").split(";")):
    k, fd = ent.rsplit("=", 1)
    ports.append((k, int(fd)))
fds = fdinfo()
report = {
    "pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(), "t": time.time(),
    "env": {k: os.environ.get(k) for k in env_keys},
    "fds": sorted(fds),
    "ports": [[k, fd, sockinfo(fd)] for k, fd in ports],
    "sigpipe_ignored": signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN,
    "stdin": fds.get(0),
}
tmp = os.path.join(d, ".report.%s" % os.getpid())
with open(tmp, "w") as f:
    json.dump(report, f)
os.rename(tmp, os.path.join(d, "report.%s.json" % gen))

def log_event(what):
    with open(os.path.join(d, "events"), "a") as f:
        f.write("%s %s %d %.3f\n" % (what, gen, os.getpid(), time.time()))

stop = threading.Event()
def on_signal(sig, frame):
    log_event("signal:" + signal.Signals(sig).name)
    stop.set()
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGQUIT):
    signal.signal(s, on_signal)

if "exit" in mode:
    sys.exit(mode["exit"])
if mode.get("hup_parent"):
    os.kill(os.getppid(), signal.SIGHUP)
if mode.get("orphan"):
    if os.fork() == 0:
        if os.fork() == 0:
            time.sleep(0.5)
            os._exit(0)
        os._exit(0)
delay = mode.get("delay", 0)
die_after = mode.get("die_after")
t0 = time.monotonic()
while delay and time.monotonic() - t0 < delay and not stop.is_set():
    if die_after is not None and time.monotonic() - t0 >= die_after:
        sys.exit(3)
    time.sleep(0.02)
if die_after is not None and not stop.is_set():
    time.sleep(max(0, die_after - (time.monotonic() - t0)))
    sys.exit(3)

health = mode.get("health")
if health and not stop.is_set():
    hs = socket.socket()
    hs.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    hs.bind(("127.0.0.1", health))
    hs.listen(8)
    def health_once():
        while True:
            c, _ = hs.accept()
            if mode.get("http"):
                c.recv(4096)
                c.sendall(b"HTTP/1.0 %d X\r\nContent-Length: 0\r\n\r\n" % mode.get("http"))
            c.close()
            if not mode.get("http_forever"):
                break
        hs.close()
    threading.Thread(target=health_once, daemon=True).start()
log_event("accepting")

lsock = None
for k, fd in ports:
    s = socket.socket(fileno=os.dup(fd))
    if s.type == socket.SOCK_STREAM and s.family != socket.AF_UNIX:
        lsock = s
        break
    s.close()

def serve(c):
    try:
        c.settimeout(10)
        c.recv(100)
        c.sendall(b"%s %d\n" % (gen.encode(), os.getpid()))
    except OSError:
        pass
    finally:
        c.close()

if lsock is not None:
    lsock.settimeout(0.1)
serving = []
while not stop.is_set():
    if lsock is None:
        time.sleep(0.1)
        continue
    try:
        c, _ = lsock.accept()
    except socket.timeout:
        continue
    except OSError:
        break
    t = threading.Thread(target=serve, args=(c,), daemon=True)
    t.start()
    serving.append(t)
# a graceful worker: finish the requests it accepted (no reset for them)
for t in serving:
    t.join(timeout=10)
time.sleep(mode.get("linger", 0))
log_event("exit")
sys.exit(0)
'''


# ---------------------------------------------------------------- helpers

IMPLS = ["perl", "ours"]


def impl_path(impl):
    if impl == "perl":
        need(PERL)
        return PERL
    return OURS


@pytest.fixture(params=IMPLS)
def impl(request):
    return impl_path(request.param)


class Starter:
    """A start_server (ours or Perl's) running the Python worker in tmp."""

    def __init__(self, procs, tmp_path, exe, args=(), mode=None, port=True, name="ss",
                 worker_argv=None, env=None, wait=True):
        self.tmp = tmp_path
        self.dir = tmp_path / ("%s-w" % name)
        self.dir.mkdir(exist_ok=True)
        self.worker = self.dir / "worker.py"
        self.worker.write_text(WORKER)
        self.worker.chmod(0o755)
        self.set_mode(mode or {})
        self.port = free_port() if port else None
        self.pidf = tmp_path / ("%s.pid" % name)
        self.statusf = tmp_path / ("%s.status" % name)
        self.log = tmp_path / ("%s.log" % name)
        self.exe = exe
        argv = [exe]
        if port:
            argv.append("--port=127.0.0.1:%d" % self.port)
        argv += ["--pid-file=%s" % self.pidf, "--status-file=%s" % self.statusf, *args, "--"]
        argv += worker_argv or [str(self.worker), str(self.dir)]
        e = dict(os.environ)
        for k in ("ENVDIR", "ENABLE_AUTO_RESTART", "KILL_OLD_DELAY", "AUTO_RESTART_INTERVAL"):
            e.pop(k, None)
        e.update(env or {})
        self.proc = procs.start(argv, stderr=open(self.log, "wb"), stdout=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, env=e)
        if wait:
            self.wait_gen(1)

    def set_mode(self, mode):
        tmp = self.dir / ".mode.tmp"
        tmp.write_text(json.dumps(mode))
        os.rename(tmp, self.dir / "mode.json")

    def report(self, gen):
        try:
            return json.loads((self.dir / ("report.%s.json" % gen)).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def wait_report(self, gen, timeout=20):
        return wait_for(lambda: self.report(gen), timeout=timeout, what="worker %s report" % gen)

    def events(self):
        try:
            lines = (self.dir / "events").read_text().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for ln in lines:
            what, gen, pid, t = ln.split()
            out.append((what, gen, int(pid), float(t)))
        return out

    def event(self, what, gen):
        for e in self.events():
            if e[0] == what and e[1] == str(gen):
                return e
        return None

    def wait_event(self, what, gen, timeout=20):
        return wait_for(lambda: self.event(what, gen), timeout=timeout,
                        what="event %s of gen %s" % (what, gen))

    def status(self):
        try:
            return self.statusf.read_text()
        except FileNotFoundError:
            return None

    def status_gens(self):
        s = self.status() or ""
        return [int(ln.split(":")[0]) for ln in s.splitlines() if ":" in ln]

    def wait_gen(self, gen, timeout=30):
        """Until the status file lists generation gen alone."""
        def ok():
            if self.proc.poll() is not None:
                raise RuntimeError("start_server exited %s:\n%s" % (self.proc.returncode,
                                                                    self.text()))
            return self.status_gens() == [gen]
        wait_for(ok, timeout=timeout, what="generation %d alone in the status file" % gen)

    def text(self):
        try:
            return self.log.read_text()
        except FileNotFoundError:
            return ""

    def lines(self):
        return self.text().splitlines()

    def wait_log(self, pattern, timeout=20, count=1):
        rx = re.compile(pattern)
        return wait_for(lambda: len([ln for ln in self.lines() if rx.search(ln)]) >= count,
                        timeout=timeout, what="log line %r x%d in:\n%s" % (pattern, count,
                                                                            self.text()))

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)

    def term(self, timeout=20):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


def ask(port, timeout=10):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"hi\n")
        data = b""
        while not data.endswith(b"\n"):
            d = s.recv(100)
            if not d:
                break
            data += d
    gen, pid = data.split()
    return int(gen), int(pid)


class ClientLoop:
    """Requests in a loop against port; records every failure."""

    def __init__(self, port):
        self.port = port
        self.ok = 0
        self.errors = []
        self.by_gen = {}
        self.first_seen = {}
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def run(self):
        while not self.stop_ev.is_set():
            try:
                gen, _ = ask(self.port)
                self.ok += 1
                self.by_gen[gen] = self.by_gen.get(gen, 0) + 1
                self.first_seen.setdefault(gen, time.time())
            except (OSError, ValueError) as e:
                self.errors.append(repr(e))
            time.sleep(0.01)

    def wait_ok(self, n, timeout=30):
        target = self.ok + n
        wait_for(lambda: self.ok >= target, timeout=timeout, what="%d more requests" % n)

    def stop(self):
        self.stop_ev.set()
        self.th.join(30)


def strip_perl_at(line):
    return re.sub(r" at \S+ line \d+\.$", "", line)


# ---------------------------------------------------------------- options and messages

BAD_ARGS = [
    (["--foo", "--", "true"], 1),
    (["--port"], 1),
    (["--interval=abc", "--", "true"], 1),
    (["--interval", "1.5", "--", "true"], 1),
    (["-p", "80", "--", "true"], 1),
    (["--s", "x", "--", "true"], 1),
    (["--help=1"], 1),
    (["--restart=0"], 1),
    ([], 255),
    (["--port=80"], 255),
    (["--daemonize", "--", "true"], 255),
    (["--restart"], 255),
    (["--restart", "--pid-file=/nonexistent/x.pid", "--status-file=/tmp/x"], 2),
    (["--stop"], 255),
    (["--stop", "--pid-file=/nonexistent/x.pid"], 2),
    (["--port=abc", "--", "true"], 255),
]


@pytest.mark.parametrize("args,rc", BAD_ARGS, ids=[" ".join(a) or "none" for a, _ in BAD_ARGS])
def test_bad_options_like_perl(args, rc):
    need(PERL)
    results = {}
    for name, exe in (("perl", PERL), ("ours", OURS)):
        r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=20,
                           stdin=subprocess.DEVNULL)
        lines = [strip_perl_at(ln) for ln in r.stderr.splitlines()
                 if not ln.startswith("start_server (pid:") and ln.strip()]
        results[name] = (r.returncode, lines[:1])
    assert results["ours"] == results["perl"] == (rc, results["perl"][1]), results


def test_our_extra_validation():
    r = subprocess.run([OURS, "--signal-on-hup=NOPE", "--", "true"], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr == "invalid signal name for --signal-on-hup:NOPE\n"
    r = subprocess.run([OURS, "--ready-check=ftp://x", "--", "true"], capture_output=True,
                       text=True)
    assert r.returncode == 1 and r.stderr.startswith("invalid --ready-check value:ftp://x")
    r = subprocess.run([OURS, "--ready-check=tcp:127.0.0.1:1", "--ready-timeout=soon", "--",
                        "true"], capture_output=True, text=True)
    assert r.returncode == 1 and "invalid --ready-timeout value:soon" in r.stderr
    r = subprocess.run([OURS, "--port=70000", "--", "true"], capture_output=True, text=True)
    assert r.returncode == 255 and "invalid ``port'' value:70000" in r.stderr


def test_help_and_version():
    r = subprocess.run([OURS, "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for opt in ("--port", "--path", "--dir", "--interval", "--signal-on-hup", "--signal-on-term",
                "--pid-file", "--status-file", "--envdir", "--log-file", "--daemonize",
                "--backlog", "--enable-auto-restart", "--auto-restart-interval",
                "--kill-old-delay", "--ready-check", "--ready-timeout", "--restart", "--stop",
                "--version"):
        assert opt in r.stdout, opt
    assert re.search(r"^opskit start_server \d+\.\d+\.\d+$", r.stdout, re.M)
    # what Perl's prints (scripts compare it); Getopt::Long spellings too:
    # single dash, case-insensitive, unique prefix
    for flag in ("--version", "-VERS"):
        r = subprocess.run([OURS, flag], capture_output=True, text=True)
        assert (r.returncode, r.stdout) == (0, "0.35\n"), flag
    if os.path.exists(PERL):
        r = subprocess.run([PERL, "--version"], capture_output=True, text=True)
        assert r.stdout == "0.35\n"


def test_man_page():
    need("man")
    page = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                        "server-starter", "start_server.1")
    r = subprocess.run(["man", "--warnings", "-l", page], capture_output=True, text=True,
                       env=dict(os.environ, MANWIDTH="80"))
    assert r.returncode == 0 and r.stderr == "", r.stderr


# ---------------------------------------------------------------- side by side with Perl

def normalized_report(rep, subst):
    """What a worker sees, with this run's ports and paths replaced by
    placeholders so Perl's and ours compare equal (fd numbers stay: they
    must be the same)."""
    def sub(s):
        if s is None:
            return None
        for a, b in subst:
            s = s.replace(a, b)
        return s
    ports = []
    fd_of = {}
    for key, fd, info in rep["ports"]:
        fd_of[fd] = fd
        info = dict(info)
        if isinstance(info.get("addr"), list):
            info["addr"] = [sub(str(x)) for x in info["addr"]]
        elif isinstance(info.get("addr"), str):
            info["addr"] = sub(info["addr"])
        ports.append([sub(key), info])
    env = dict(rep["env"])
    spp = env.get("SERVER_STARTER_PORT")
    if spp:
        parts = []
        for ent in spp.split(";"):
            k, fd = ent.rsplit("=", 1)
            fd = int(fd)
            parts.append("%s=%d" % (sub(k), fd))
        env["SERVER_STARTER_PORT"] = ";".join(parts)
    env["ENVDIR"] = sub(env.get("ENVDIR"))
    extra_fds = sorted(set(rep["fds"]) - set(fd_of) - {0, 1, 2})
    return {"env": env, "ports": ports, "cwd": sub(rep["cwd"]), "extra_fds": extra_fds,
            "sigpipe_ignored": rep["sigpipe_ignored"],
            "fixed_fds": sorted(fd for fd in fd_of if fd in (17, 19))}


def run_env_scenario(procs, tmp_path, exe, name):
    p = [free_port() for _ in range(4)]
    p6 = free_port("::1")
    pu = free_port()
    sock = tmp_path / ("%s.sock" % name)
    wd = tmp_path / ("%s-wd" % name)
    wd.mkdir()
    envdir = tmp_path / ("%s-env" % name)
    envdir.mkdir()
    (envdir / "FOO").write_text("foo value\nsecond line ignored\n")
    (envdir / ".hidden").write_text("x\n")
    (envdir / "EMPTY").write_text("")
    args = ["--port=%d" % p[0], "--port=127.0.0.1:%d" % p[1], "--port=[::1]:%d" % p6,
            "--port=127.0.0.1:%d=19" % p[2], "--port=u%d" % pu, "--port= %d =17 " % p[3],
            "--path=%s" % sock, "--dir=%s" % wd, "--envdir=%s" % envdir, "--backlog=64"]
    ss = Starter(procs, tmp_path, exe, args=args, port=False, name=name)
    rep = ss.wait_report(1)
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode)
    sock_mode = stat.S_IMODE(st.st_mode)
    pidfile = ss.pidf.read_text()
    status = ss.status()
    assert ss.term() == 0
    lines = ss.lines()
    subst = [(str(sock), "SOCK"), (str(wd), "WD"), (str(envdir), "ENVDIR"),
             (str(p[0]), "P0"), (str(p[1]), "P1"), (str(p[2]), "P2"), (str(p[3]), "P3"),
             (str(p6), "P6"), (str(pu), "PU")]
    return {"report": normalized_report(rep, subst), "raw": rep, "sock_mode": sock_mode,
            "pidfile": pidfile, "pid": ss.proc.pid, "status": status,
            "status_after": ss.status(), "pid_after": ss.pidf.exists(),
            "sock_after": os.path.exists(sock), "lines": lines,
            "ports": p, "p6": p6, "pu": pu, "sock": str(sock)}


def test_worker_sees_the_same_as_under_perl(procs, tmp_path):
    need(PERL)
    perl = run_env_scenario(procs, tmp_path, PERL, "perl")
    ours = run_env_scenario(procs, tmp_path, OURS, "ours")
    assert ours["report"] == perl["report"], json.dumps([ours["report"], perl["report"]])
    r = ours["report"]
    # the protocol itself, spelled out
    keys = [k for k, _ in r["ports"]]
    assert keys == ["P0", "127.0.0.1:P1", "[::1]:P6", "127.0.0.1:P2", "PU", "P3", "SOCK"]
    infos = [i for _, i in r["ports"]]
    assert infos[0]["family"] == "inet" and infos[0]["addr"] == ["0.0.0.0", "P0"]
    assert infos[2]["family"] == "inet6" and infos[2]["v6only"] == 1
    assert infos[4]["type"] == "dgram" and infos[4]["listening"] == 0
    assert infos[6]["family"] == "unix"
    assert all(i["reuseaddr"] for i in infos[:6])
    assert r["fixed_fds"] == [17, 19] and r["extra_fds"] == []
    assert r["env"]["SERVER_STARTER_GENERATION"] == "1"
    assert r["env"]["ENVDIR"] == "ENVDIR" and r["env"]["FOO"] == "foo value"
    assert r["cwd"] == "WD"
    assert ours["sock_mode"] == perl["sock_mode"] == 0o777
    raw = ours["raw"]["env"]["SERVER_STARTER_PORT"]
    assert "127.0.0.1:%d=19" % ours["ports"][2] in raw and "%d=17" % ours["ports"][3] in raw
    for res in (perl, ours):
        assert res["pidfile"] == "%d\n" % res["pid"]
        assert re.fullmatch(r"1:\d+\n", res["status"])
        assert res["status_after"] is None and not res["pid_after"] and not res["sock_after"]
        assert "socket is duplicated to file descriptor 19" in res["lines"]
        assert "start_server (pid:%d) starting now..." % res["pid"] in res["lines"]
        assert res["lines"][-1] == "exiting"


def test_envdir_reload_and_status_through_restart(procs, tmp_path, impl):
    envdir = tmp_path / "env"
    envdir.mkdir()
    (envdir / "FOO").write_text("one\n")
    (envdir / "KEEP").write_text("kept\n")
    ss = Starter(procs, tmp_path, impl, args=["--envdir=%s" % envdir],
                 env={"BAR": "from-parent"})
    r1 = ss.wait_report(1)
    assert r1["env"]["FOO"] == "one" and r1["env"]["BAR"] == "from-parent"
    assert ss.status() == "1:%d\n" % r1["pid"]
    (envdir / "FOO").write_text("two\n")
    (envdir / "BAR").write_text("from-envdir\n")
    (envdir / "KEEP").unlink()
    ss.hup()
    ss.wait_gen(2)
    r2 = ss.report(2)
    assert r2["env"]["FOO"] == "two" and r2["env"]["BAR"] == "from-envdir"
    # Perl's quirk, kept: what the first load found stays in start_server's own
    # environment, so removing the file later does not unset the variable
    assert r2["env"]["KEEP"] == "kept"
    assert ss.status() == "2:%d\n" % r2["pid"]
    assert ss.event("signal:SIGTERM", 1)
    # let the old worker's death be handled first: Perl loads the env dir at the
    # top of its loop, so a HUP that lands in the iteration handling that death
    # would use the load from before the file was removed
    wait_for(lambda: any(re.fullmatch(r"old worker %d died, status:\d+" % r1["pid"], ln)
                         for ln in ss.lines()), what="old worker reaped")
    time.sleep(0.3)
    (envdir / "BAR").unlink()
    ss.hup()
    ss.wait_gen(3)
    assert ss.report(3)["env"]["BAR"] == "from-parent"
    lines = ss.lines()
    assert "received HUP, spawning a new worker" in lines
    assert ("new worker is now running, sending TERM to old workers:%d" % r1["pid"]) in lines
    assert "killing old workers" in lines
    assert any(re.fullmatch(r"old worker %d died, status:0" % r1["pid"], ln) for ln in lines)
    assert ss.term() == 0
    assert ss.status() is None


def test_signal_on_hup_and_term(procs, tmp_path, impl):
    ss = Starter(procs, tmp_path, impl, args=["--signal-on-hup=usr1", "--signal-on-term=SIGINT"])
    r1 = ss.wait_report(1)
    ss.hup()
    ss.wait_gen(2)
    assert ss.event("signal:SIGUSR1", 1)
    r2 = ss.report(2)
    assert ss.term() == 0
    assert ss.event("signal:SIGINT", 2)
    lines = ss.lines()
    assert "new worker is now running, sending USR1 to old workers:%d" % r1["pid"] in lines
    assert "received TERM, sending INT to all workers:%d" % r2["pid"] in lines
    assert "worker %d died, status:0" % r2["pid"] in lines


def test_int_sends_term(procs, tmp_path, impl):
    ss = Starter(procs, tmp_path, impl, args=["--signal-on-term=USR1"])
    r1 = ss.wait_report(1)
    ss.proc.send_signal(signal.SIGINT)
    assert ss.proc.wait(timeout=20) == 0
    assert ss.event("signal:SIGTERM", 1)
    assert "received INT, sending TERM to all workers:%d" % r1["pid"] in ss.lines()


def test_kill_old_delay(procs, tmp_path, impl):
    ss = Starter(procs, tmp_path, impl, args=["--kill-old-delay=2"])
    assert ss.wait_report(1)["env"]["KILL_OLD_DELAY"] == "2"
    ss.hup()
    ss.wait_gen(2, timeout=40)
    started2 = ss.report(2)["t"]
    killed1 = ss.event("signal:SIGTERM", 1)[3]
    assert killed1 - started2 >= 2.5  # --interval 1 + the 2 s delay
    assert "sleeping 2 secs before killing old workers" in ss.lines()


def test_auto_restart(procs, tmp_path, impl):
    ss = Starter(procs, tmp_path, impl, args=["--enable-auto-restart",
                                              "--auto-restart-interval=2", "--kill-old-delay=0"])
    r1 = ss.wait_report(1)
    assert r1["env"]["ENABLE_AUTO_RESTART"] == "1" and r1["env"]["AUTO_RESTART_INTERVAL"] == "2"
    ss.wait_gen(2, timeout=30)
    ss.wait_log(r"^autorestart triggered \(interval=2\)$")


def test_worker_dies_unexpectedly(procs, tmp_path, impl):
    ss = Starter(procs, tmp_path, impl, mode={"gen1": {"die_after": 4.0}})
    r1 = ss.wait_report(1)
    ss.wait_gen(2, timeout=30)
    assert "worker %d died unexpectedly with status:768, restarting" % r1["pid"] in ss.lines()
    assert ss.report(2)["env"]["SERVER_STARTER_GENERATION"] == "2"


def test_restart_and_stop_commands(procs, tmp_path, impl):
    ss = Starter(procs, tmp_path, impl)
    r1 = ss.wait_report(1)
    r = subprocess.run([impl, "--restart", "--pid-file=%s" % ss.pidf,
                        "--status-file=%s" % ss.statusf], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert ss.status_gens() == [2] and ss.report(2)["pid"] != r1["pid"]
    r = subprocess.run([impl, "--stop", "--pid-file=%s" % ss.pidf], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0
    assert re.fullmatch(r"stop_server \(pid:\d+\) stopping now \(pid:%d\)\.\.\.\n" % ss.proc.pid,
                        r.stderr)
    assert ss.proc.wait(timeout=5) == 0  # --stop returned after start_server released the lock
    assert not ss.pidf.exists() and ss.status() is None


def test_our_restart_against_perl_server(procs, tmp_path):
    need(PERL)
    ss = Starter(procs, tmp_path, PERL)
    r = subprocess.run([OURS, "--restart", "--pid-file=%s" % ss.pidf,
                        "--status-file=%s" % ss.statusf], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert ss.status_gens() == [2]
    r = subprocess.run([OURS, "--stop", "--pid-file=%s" % ss.pidf], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and ss.proc.wait(timeout=5) == 0


def test_daemonize_with_log_file(procs, tmp_path, impl):
    wdir = tmp_path / "w"
    wdir.mkdir()
    (wdir / "worker.py").write_text(WORKER)
    (wdir / "worker.py").chmod(0o755)
    port = free_port()
    log = tmp_path / "daemon.log"
    pidf = tmp_path / "d.pid"
    r = subprocess.run([impl, "--daemonize", "--log-file=%s" % log, "--pid-file=%s" % pidf,
                        "--port=127.0.0.1:%d" % port, "--", str(wdir / "worker.py"), str(wdir)],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0
    try:
        assert re.fullmatch(r"start_server \(pid:\d+\) starting now\.\.\.\n", r.stderr)
        wait_for(lambda: pidf.exists() and pidf.read_text().strip(), what="pid file")
        dpid = int(pidf.read_text())
        wait_for(lambda: (wdir / "report.1.json").exists(), what="worker")
        rep = json.loads((wdir / "report.1.json").read_text())
        assert rep["ppid"] == dpid and rep["stdin"] == "/dev/null"
        assert os.getsid(dpid) != os.getsid(0) and os.getsid(dpid) != dpid  # setsid + fork
        wait_port(port)
        wait_for(lambda: "starting new worker %d" % rep["pid"] in log.read_text(),
                 what="log line")
    finally:
        r = subprocess.run([impl, "--stop", "--pid-file=%s" % pidf], capture_output=True,
                           text=True, timeout=30)
    assert r.returncode == 0
    assert "exiting" in log.read_text().splitlines()


def test_log_file_pipe(procs, tmp_path, impl):
    out = tmp_path / "piped.log"
    ss = Starter(procs, tmp_path, impl, args=["--log-file=| cat >> %s" % out])
    r1 = ss.wait_report(1)
    wait_for(lambda: out.exists() and ("starting new worker %d" % r1["pid"]) in out.read_text(),
             what="piped log")
    assert ss.term() == 0
    wait_for(lambda: out.read_text().splitlines()[-1:] == ["exiting"], what="exiting in log")
    assert "start_server (pid:%d) starting now..." % ss.proc.pid in ss.text()


# ---------------------------------------------------------------- failed starts (ours)

BROKEN = {
    "exits-at-once": {"exit": 1},
    "dies-after-0.3s": {"die_after": 0.3},
}


@pytest.mark.parametrize("kind", ["exits-at-once", "dies-after-0.3s", "cannot-exec"])
def test_broken_deploy_keeps_old_worker_serving(procs, tmp_path, kind):
    ss = Starter(procs, tmp_path, OURS)
    r1 = ss.wait_report(1)
    loop = ClientLoop(ss.port)
    try:
        loop.wait_ok(20)
        if kind == "cannot-exec":
            ss.worker.chmod(0o644)
        else:
            ss.set_mode(BROKEN[kind])
        ss.hup()
        ss.wait_log(r"^new worker \d+ seems to have failed to start, exit status:\d+$", count=2)
        if kind == "cannot-exec":
            ss.wait_log(r"^failed to exec %s:Permission denied$" % re.escape(str(ss.worker)))
        # --restart against the broken deploy says so
        r = subprocess.run([OURS, "--restart", "--pid-file=%s" % ss.pidf,
                            "--status-file=%s" % ss.statusf], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 1
        assert re.match(r"restart failed: new worker \d+ \(generation \d+\) failed to start, "
                        r"exit status:\d+", r.stderr), r.stderr
        loop.wait_ok(20)
        assert ss.status_gens() == [1]
        assert os.kill(r1["pid"], 0) is None and not ss.event("signal:SIGTERM", 1)
        assert "new worker is now running" not in ss.text()
        # fix the deploy: the next retry takes over
        ss.worker.chmod(0o755)
        ss.set_mode({})
        wait_for(lambda: ss.status_gens() and ss.status_gens()[-1] > 1 and
                 len(ss.status_gens()) == 1, timeout=30, what="a good generation")
        loop.wait_ok(20)
    finally:
        loop.stop()
    assert loop.errors == [], loop.errors[:5]
    gen = ss.status_gens()[0]
    assert gen >= 4  # 1, the failed ones (each retry a new generation), the good one
    assert loop.by_gen.get(gen, 0) > 0
    assert ss.event("signal:SIGTERM", 1)


def test_restart_exit_status_ok_and_failed(procs, tmp_path):
    ss = Starter(procs, tmp_path, OURS)
    ss.set_mode({"gen2": {"exit": 2}})
    cmd = [OURS, "--restart", "--pid-file=%s" % ss.pidf, "--status-file=%s" % ss.statusf]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "(generation 2) failed to start, exit status:512" in r.stderr
    ss.wait_gen(3)  # the retry (generation 3) is healthy
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert ss.status_gens() == [4]


# ---------------------------------------------------------------- readiness gate (ours)

def test_ready_check_tcp_waits_for_slow_worker(procs, tmp_path):
    hp = free_port()
    ss = Starter(procs, tmp_path, OURS, mode={"health": hp},
                 args=["--ready-check=tcp:127.0.0.1:%d" % hp, "--ready-timeout=30s"])
    r1 = ss.wait_report(1)
    loop = ClientLoop(ss.port)
    try:
        loop.wait_ok(20)
        ss.set_mode({"health": hp, "delay": 3})
        ss.hup()
        ss.wait_gen(2, timeout=40)
        loop.wait_ok(20)
    finally:
        loop.stop()
    assert loop.errors == []
    accepting2 = ss.event("accepting", 2)[3]
    started2 = ss.report(2)["t"]
    killed1 = ss.event("signal:SIGTERM", 1)[3]
    assert accepting2 - started2 >= 2.9
    assert killed1 >= accepting2  # the old one was kept until the new one was ready
    assert loop.first_seen[2] >= accepting2  # and no traffic went to it before
    lines = ss.lines()
    assert "new worker %d is ready" % ss.report(2)["pid"] in lines
    assert lines.index("new worker %d is ready" % ss.report(2)["pid"]) < lines.index(
        "new worker is now running, sending TERM to old workers:%d" % r1["pid"])


def test_ready_check_never_ready_is_stopped(procs, tmp_path):
    hp = free_port()
    ss = Starter(procs, tmp_path, OURS, mode={"health": hp},
                 args=["--ready-check=tcp:127.0.0.1:%d" % hp, "--ready-timeout=2"])
    ss.wait_report(1)
    loop = ClientLoop(ss.port)
    try:
        loop.wait_ok(20)
        # later generations never get ready (and never accept)
        ss.set_mode({"delay": 1000, "gen1": {"health": hp, "delay": 0}})
        r = subprocess.run([OURS, "--restart", "--pid-file=%s" % ss.pidf,
                            "--status-file=%s" % ss.statusf], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 1
        assert "(generation 2) not ready after 2s (connect: Connection refused)" in r.stderr
        r2 = ss.report(2)
        wait_for(lambda: ss.event("signal:SIGTERM", 2), what="the unready worker stopped")
        wait_for(lambda: not os.path.exists("/proc/%d" % r2["pid"]) or
                 open("/proc/%d/stat" % r2["pid"]).read().split()[2] == "Z", what="gone")
        loop.wait_ok(20)
    finally:
        loop.stop()
    assert loop.errors == []
    assert ss.status_gens() == [1] and not ss.event("signal:SIGTERM", 1)
    assert loop.by_gen.keys() == {1}
    ss.wait_log(r"^new worker %d is not ready after 2s \(connect: Connection refused\), "
                r"stopping it; old workers keep serving$" % r2["pid"])


def test_ready_check_http_and_exec(procs, tmp_path):
    hp = free_port()
    ss = Starter(procs, tmp_path, OURS, mode={"health": hp, "http": 503, "http_forever": 1,
                                                 "gen1": {"http": 200, "http_forever": 0}},
                 args=["--ready-check=http://127.0.0.1:%d/health" % hp, "--ready-timeout=2s"],
                 name="http")
    ss.wait_report(1)
    ss.hup()
    ss.wait_log(r"^new worker \d+ is not ready after 2s \(HTTP status 503\)")
    ss.term()
    flag = tmp_path / "ready"
    ss = Starter(procs, tmp_path, OURS, name="exec", wait=False,
                 args=["--ready-check=exec:test -e %s.$SERVER_STARTER_GENERATION" % flag])
    ss.wait_report(1)
    time.sleep(1.5)
    assert ss.status() is None  # not current until the check passes
    (tmp_path / "ready.1").write_text("")
    ss.wait_gen(1)


def test_ready_check_on_the_shared_port_is_refused():
    """The old workers accept on the listening socket too, so a check there
    would always pass: refused with one line naming both."""
    p = free_port()
    for port, check in (("%d" % p, "tcp:127.0.0.1:%d" % p),
                        ("127.0.0.1:%d" % p, "http://localhost:%d/live" % p)):
        r = subprocess.run([OURS, "--port=%s" % port, "--ready-check=%s" % check, "--", "true"],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 1, r.stderr
        assert r.stderr == (
            "invalid --ready-check value:%s (port %d is --port=%s, the listening socket the "
            "old workers share: it always answers; check a port only the new worker answers, "
            "or use exec:)\n" % (check, p, port))


def test_exec_ready_check_does_not_hold_the_sockets(procs, tmp_path):
    out = tmp_path / "fds"
    ss = Starter(procs, tmp_path, OURS, args=[
        "--ready-check=exec:for f in /proc/$$/fd/*; do readlink $f; done > %s; true" % out])
    ss.wait_gen(1)
    links = out.read_text().split()
    assert links and not any(x.startswith("socket:") for x in links), links


def test_log_file_survives_an_fd_target(procs, tmp_path):
    """The log is fd 4 while the sockets are bound (as under Perl); an =4
    socket moves it instead of overwriting it (Perl's loses the log)."""
    log = tmp_path / "ss.log"
    p = free_port()
    ss = procs.start([OURS, "--log-file=%s" % log, "--port=127.0.0.1:%d=4" % p, "--", "sh",
                      "-c", 'echo "worker sees $SERVER_STARTER_PORT" >&2; exec sleep 60'],
                     stdin=subprocess.DEVNULL)
    wait_for(lambda: log.exists() and "worker sees" in log.read_text(), what="worker line")
    assert "worker sees 127.0.0.1:%d=4\n" % p in log.read_text()
    ss.send_signal(signal.SIGTERM)
    assert ss.wait(timeout=20) == 0
    assert "exiting" in log.read_text()


@pytest.mark.parametrize("exe", ["ours", "perl"])
def test_failed_bind_leaves_no_pid_file(tmp_path, exe):
    if exe == "perl":
        need(PERL)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    pidf = tmp_path / "ss.pid"
    try:
        r = subprocess.run([OURS if exe == "ours" else PERL, "--pid-file=%s" % pidf,
                            "--port=127.0.0.1:%d" % taken.getsockname()[1], "--", "true"],
                           capture_output=True, text=True, timeout=20)
    finally:
        taken.close()
    assert r.returncode == 98 and "Address already in use" in r.stderr
    assert not pidf.exists()


# ---------------------------------------------------------------- pid files, HUPs, PID 1 (ours)

def test_stale_and_live_pid_file(procs, tmp_path):
    pidf = tmp_path / "ss.pid"
    pidf.write_text("999999\n")  # a start_server that died without cleaning up
    ss = Starter(procs, tmp_path, OURS)
    assert pidf.read_text() == "%d\n" % ss.proc.pid
    r = subprocess.run([OURS, "--pid-file=%s" % pidf, "--", "true"], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 1
    assert r.stderr == "start_server is already running (pid:%d holds the lock on %s)\n" % (
        ss.proc.pid, pidf)
    assert ss.proc.poll() is None and pidf.read_text() == "%d\n" % ss.proc.pid
    assert ss.term() == 0
    pidf.write_text("999999\n")
    r = subprocess.run([OURS, "--stop", "--pid-file=%s" % pidf], capture_output=True, text=True)
    assert r.returncode == 1 and "not running (stale pid file" in r.stderr


def test_coalesced_hups(procs, tmp_path):
    ss = Starter(procs, tmp_path, OURS, args=["--interval=2"])
    for _ in range(6):
        ss.hup()
        time.sleep(0.05)
    ss.wait_gen(3, timeout=40)
    time.sleep(3)
    starts = [ln for ln in ss.lines() if ln.startswith("starting new worker")]
    assert len(starts) == 3, ss.text()
    assert ss.status_gens() == [3]


def test_pid1_in_a_pid_namespace(procs, tmp_path):
    need("unshare")
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cannot create a PID namespace here: %s" % probe.stderr.decode().strip())
    port = free_port()
    wdir = tmp_path / "w"
    wdir.mkdir()
    (wdir / "worker.py").write_text(WORKER)
    (wdir / "worker.py").chmod(0o755)
    (wdir / "mode.json").write_text(json.dumps({"orphan": True, "gen1": {"hup_parent": True}}))
    log = tmp_path / "pid1.log"
    u = procs.start(["unshare", "--pid", "--fork", "--mount-proc", OURS,
                     "--port=127.0.0.1:%d" % port, "--", str(wdir / "worker.py"), str(wdir)],
                    stderr=open(log, "wb"))
    # generation 1 sends HUP to its parent, PID 1: generation 2 must follow
    wait_for(lambda: (wdir / "report.2.json").exists(), timeout=30, what="generation 2")
    rep = json.loads((wdir / "report.2.json").read_text())
    assert rep["ppid"] == 1
    text = log.read_text()
    assert "start_server (pid:1) starting now..." in text
    assert "received HUP, spawning a new worker" in text
    # find start_server's pid outside the namespace
    ss_pid = int(subprocess.run(["pgrep", "-P", str(u.pid)], capture_output=True,
                                text=True).stdout.split()[0])
    time.sleep(1.5)  # the orphaned grandchildren (0.5 s) have exited by now

    def zombies():
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    f = open("/proc/%s/stat" % d).read()
                except OSError:
                    continue
                fields = f.rsplit(")", 1)[1].split()
                if fields[0] == "Z" and int(fields[1]) == ss_pid:
                    out.append(int(d))
        return out
    assert zombies() == []
    os.kill(ss_pid, signal.SIGTERM)
    assert u.wait(timeout=20) == 0
    assert "exiting" in log.read_text().splitlines()
    assert any(e[0] == "signal:SIGTERM" and e[1] == "2" for e in
               [ln.split() for ln in (wdir / "events").read_text().splitlines()])


# ---------------------------------------------------------------- wsgate-server hot deploy

def test_wsgate_server_hot_deploy(procs, tmp_path):
    server = binpath("wsgate-server")
    client = binpath("wsgate-client")
    if not os.path.exists(server) or not os.path.exists(client):
        pytest.skip("build/wsgate-server and wsgate-client are not built")
    echo = start_tcp_server()
    port = free_port()
    smap = tmp_path / "map.txt"
    smap.write_text("echo,127.0.0.1:%d\n" % echo.server_address[1])
    pidf, statusf = tmp_path / "ws.pid", tmp_path / "ws.status"
    log = tmp_path / "ws-ss.log"
    # no --ready-check: the new worker accepts on the same socket, and until
    # it does connections wait in that socket's backlog
    ss = procs.start([OURS, "--port=127.0.0.1:%d" % port, "--pid-file=%s" % pidf,
                      "--status-file=%s" % statusf,
                      "--", server, "-map", str(smap)], stderr=open(log, "wb"),
                     stdout=subprocess.DEVNULL)
    wait_for(lambda: statusf.exists(), what="status file")
    cport = free_port()
    cmap = tmp_path / "client-map.txt"
    cmap.write_text("127.0.0.1:%d,ws://127.0.0.1:%d/proxy/echo\n" % (cport, port))
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy",
                                                                    "no_proxy")}
    cl = procs.start([client, "--map", str(cmap)], stderr=open(tmp_path / "wc.log", "wb"),
                     env=env)
    wait_port(cport, proc=cl)
    results = {"ok": 0, "live": 0, "errors": []}
    stop = threading.Event()

    def tunnels():
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
                    results["errors"].append(("tunnel", i, got))
            except OSError as e:
                results["errors"].append(("tunnel", i, repr(e)))

    def live():
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
                    s.sendall(b"GET /live HTTP/1.0\r\nHost: x\r\n\r\n")
                    data = b""
                    while True:
                        d = s.recv(4096)
                        if not d:
                            break
                        data += d
                if data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200"):
                    results["live"] += 1
                else:
                    results["errors"].append(("live", data[:100]))
            except OSError as e:
                results["errors"].append(("live", repr(e)))
    ths = [threading.Thread(target=tunnels), threading.Thread(target=live)]
    for t in ths:
        t.start()
    try:
        wait_for(lambda: results["ok"] >= 20 and results["live"] >= 20, timeout=30,
                 what="traffic before the deploys")
        for gen in (2, 3, 4):
            ss.send_signal(signal.SIGHUP)
            wait_for(lambda: statusf.read_text().startswith("%d:" % gen) and
                     statusf.read_text().count("\n") == 1, timeout=40,
                     what="generation %d alone" % gen)
            n, m = results["ok"], results["live"]
            wait_for(lambda: results["ok"] >= n + 10 and results["live"] >= m + 10, timeout=30,
                     what="traffic after deploy %d" % gen)
    finally:
        stop.set()
        for t in ths:
            t.join(30)
        echo.shutdown()
        echo.server_close()
    assert results["errors"] == [], results["errors"][:5]
    ss.send_signal(signal.SIGTERM)
    assert ss.wait(timeout=30) == 0
    cl.send_signal(signal.SIGTERM)

