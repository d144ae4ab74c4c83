"""End-to-end tests for sabo: the real binary, real pipes, files and lock files.

Rates are checked with generous bounds (a busy 2-core machine is noisy); the
exact figures are bench/sabo.sh's job. A "member" here is a sabo process fed
by `cat /dev/zero` (killing cat is a clean end of input) whose stdout is
counted by a reader thread.
"""
import fcntl
import hashlib
import os
import re
import pty
import select
import signal
import subprocess
import threading
import time

import pytest

from conftest import binpath, need, wait_for

SABO = binpath("sabo")
PY = "/usr/bin/python3"


def sabo_cmd(bw, wd, *extra):
    return [SABO, "--max-bandwidth", str(bw), "--work-dir", str(wd), *extra]


def lock_files(wd, bw=None):
    pre = "sabo_" if bw is None else "sabo_%d_" % bw
    return sorted(n for n in os.listdir(wd) if n.startswith(pre) or n.startswith("_" + pre))


class Member:
    """A running sabo fed from `cat /dev/zero`, its output counted."""

    def __init__(self, procs, bw, wd, extra=()):
        self.feeder = procs.start(["cat", "/dev/zero"], stdout=subprocess.PIPE)
        self.p = procs.start(sabo_cmd(bw, wd, *extra), stdin=self.feeder.stdout,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.feeder.stdout.close()
        self.count = 0
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        fd = self.p.stdout.fileno()
        while True:
            b = os.read(fd, 1 << 16)
            if not b:
                return
            with self.lock:
                self.count += len(b)

    def bytes(self):
        with self.lock:
            return self.count

    def end_input(self):
        """Clean end of input: sabo sees EOF, drains and exits 0."""
        self.feeder.kill()
        self.feeder.wait()


def rates(members, secs):
    """Bytes/s of each member over the next secs seconds."""
    c0 = [m.bytes() for m in members]
    t0 = time.monotonic()
    time.sleep(secs)
    dt = time.monotonic() - t0
    return [(m.bytes() - c) / dt for m, c in zip(members, c0)]


def wait_members(wd, bw, n, timeout=10):
    wait_for(lambda: len([f for f in lock_files(wd, bw) if not f.startswith("_")]) == n,
             timeout=timeout, what="%d lock files in %s" % (n, wd))


def is_asan_build():
    with open(SABO, "rb") as f:
        return b"__asan_init" in f.read()


# ---------------------------------------------------------------- copying


SIZES = [0, 1, 4097, 65537, 1_000_003, 5_242_883]


@pytest.mark.parametrize("size", SIZES)
def test_copy_pipe_to_pipe(tmp_path, size):
    data = os.urandom(size)
    r = subprocess.run(sabo_cmd("1G", tmp_path), input=data, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr == b""
    assert hashlib.sha256(r.stdout).digest() == hashlib.sha256(data).digest()
    assert lock_files(tmp_path) == []


@pytest.mark.parametrize("mode", ["file-file", "file-pipe", "pipe-file", "pipe-append",
                                  "file-append"])
@pytest.mark.parametrize("size", [0, 1, 131071, 3_000_017])
def test_copy_regular_files(tmp_path, mode, size):
    """sendfile (file to file), splice (file to pipe, pipe to file) and the
    read/write fallback (O_APPEND output refuses splice) all copy exactly."""
    data = os.urandom(size)
    src = tmp_path / "in"
    src.write_bytes(data)
    dst = tmp_path / "out"
    prefix = b"kept\n" if "append" in mode else b""
    dst.write_bytes(prefix)
    wd = tmp_path / "wd"
    wd.mkdir()
    inp, out = mode.split("-")
    with open(src, "rb") as fi, open(dst, "ab" if out == "append" else "wb") as fo:
        if inp == "file" and out != "pipe":
            r = subprocess.run(sabo_cmd("1G", wd), stdin=fi, stdout=fo,
                               stderr=subprocess.PIPE, timeout=60)
            got = None
        elif inp == "file":
            r = subprocess.run(sabo_cmd("1G", wd), stdin=fi, capture_output=True, timeout=60)
            got = r.stdout
        else:
            r = subprocess.run(sabo_cmd("1G", wd), input=data, stdout=fo,
                               stderr=subprocess.PIPE, timeout=60)
            got = None
    assert r.returncode == 0, r.stderr
    if got is None:
        got = dst.read_bytes()
        assert got[:len(prefix)] == prefix
        got = got[len(prefix):]
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()


GEN_1G = r"""
import os, random, sys
rnd = random.Random(20240601)
block = bytes(rnd.getrandbits(8) for _ in range(1 << 20))
out = sys.stdout.buffer
for i in range(1024):
    out.write(block)
out.flush()
"""


def test_copy_1gb_high_limit(tmp_path):
    """1 GiB of a repeated random 1 MiB block through pipes at a 100G limit,
    checked by sha256 on both sides (streamed, never held in memory)."""
    gen = subprocess.Popen([PY, "-c", GEN_1G], stdout=subprocess.PIPE)
    sabo = subprocess.Popen(sabo_cmd("100G", tmp_path), stdin=gen.stdout,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    gen.stdout.close()
    h = hashlib.sha256()
    n = 0
    fd = sabo.stdout.fileno()
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            break
        h.update(b)
        n += len(b)
    assert sabo.wait(timeout=120) == 0, sabo.stderr.read()
    assert gen.wait(timeout=30) == 0
    # Expected digest of the same stream, computed without sabo.
    import random
    rnd = random.Random(20240601)
    block = bytes(rnd.getrandbits(8) for _ in range(1 << 20))
    e = hashlib.sha256()
    for _ in range(1024):
        e.update(block)
    assert n == 1 << 30
    assert h.hexdigest() == e.hexdigest()


def test_rate_accuracy_and_minimum_rate(tmp_path):
    """At 1M, 3 MB take 3 s; at 32K (the minimum) 100 kB take ~3.1 s and every
    byte arrives (the original stops after 32,768 bytes with an error)."""
    for bw, size in ((1_000_000, 3_000_000), (32_000, 100_000)):
        data = os.urandom(size)
        t0 = time.monotonic()
        r = subprocess.run(sabo_cmd(bw, tmp_path), input=data, capture_output=True, timeout=60)
        dt = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        assert r.stdout == data
        expect = size / bw
        assert dt >= expect * 0.97, "too fast: %.2fs for %d bytes at %d B/s" % (dt, size, bw)
        assert dt <= expect * 1.3 + 0.3, "too slow: %.2fs" % dt


def test_no_idle_credit(tmp_path):
    """After a 2 s pause the output resumes at the share, not in a burst."""
    r_fd, w_fd = os.pipe()
    out_r, out_w = os.pipe()
    p = subprocess.Popen(sabo_cmd("1M", tmp_path), stdin=r_fd, stdout=out_w,
                         stderr=subprocess.PIPE)
    os.close(r_fd)
    os.close(out_w)
    got = []

    def reader():
        while True:
            b = os.read(out_r, 1 << 16)
            if not b:
                return
            got.append((time.monotonic(), len(b)))

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    os.write(w_fd, b"\0" * 100_000)
    wait_for(lambda: sum(n for _, n in got) >= 100_000, timeout=10, what="first 100 kB")
    time.sleep(2.0)
    resume = time.monotonic()
    writer = threading.Thread(target=lambda: (os.write(w_fd, b"\0" * 2_000_000),
                                              os.close(w_fd)), daemon=True)
    writer.start()
    assert p.wait(timeout=30) == 0
    t.join(10)
    after = [(ts - resume, n) for ts, n in got if ts >= resume]
    first_half_second = sum(n for dt, n in after if dt <= 0.5)
    # 0.5 s at 1 MB/s plus at most 40 ms of burst; pv/cstream/mbuffer would
    # let ~2 MB through here at full speed.
    assert first_half_second <= 620_000, first_half_second
    assert sum(n for _, n in after) == 2_000_000


@pytest.mark.parametrize("out_kind", ["pipe", "file"])
def test_nonblocking_stdio(tmp_path, out_kind):
    """stdin and stdout inherited with O_NONBLOCK (as some parents leave them):
    EAGAIN means wait, not fail, and every byte still arrives."""
    chunk = 1 << 20  # = sabo's largest transfer: a full one leaves stdin empty
    data = os.urandom(6 * chunk + 1)
    in_r, in_w = os.pipe()
    os.set_blocking(in_r, False)
    fcntl.fcntl(in_w, 1031, chunk)  # F_SETPIPE_SZ
    if out_kind == "pipe":
        out_r, out_w = os.pipe()
        os.set_blocking(out_w, False)
    else:
        out_w = os.open(str(tmp_path / "out"), os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK)
    wd = tmp_path / "wd"
    wd.mkdir()
    p = subprocess.Popen(sabo_cmd("1G", wd), stdin=in_r, stdout=out_w, stderr=subprocess.PIPE)
    os.close(in_r)
    os.close(out_w)

    def feed():  # whole pipefuls with pauses, so sabo meets an empty stdin
        for i in range(0, len(data), chunk):
            os.write(in_w, data[i:i + chunk])
            time.sleep(0.05)
        os.close(in_w)

    threading.Thread(target=feed, daemon=True).start()
    got = bytearray()
    if out_kind == "pipe":
        while True:  # a slow reader, so sabo meets a full stdout
            b = os.read(out_r, 200_000)
            if not b:
                break
            got += b
            time.sleep(0.02)
        os.close(out_r)
    assert p.wait(timeout=60) == 0, p.stderr.read()
    if out_kind == "file":
        got = (tmp_path / "out").read_bytes()
    assert bytes(got) == data


# ---------------------------------------------------------------- sharing


def test_two_members_share_and_speed_up(tmp_path, procs):
    bw = 6_000_000
    a = Member(procs, bw, tmp_path)
    b = Member(procs, bw, tmp_path)
    wait_members(tmp_path, bw, 2)
    time.sleep(0.5)
    ra, rb = rates([a, b], 2.0)
    half = bw / 2
    assert 0.6 * half < ra < 1.2 * half, (ra, rb)
    assert 0.6 * half < rb < 1.2 * half, (ra, rb)
    assert ra + rb < 1.1 * bw
    a.end_input()
    assert a.p.wait(timeout=10) == 0
    # inotify: the leave is seen at once, well before the 1 s fallback rescan.
    time.sleep(0.15)
    (rb2,) = rates([b], 1.0)
    assert rb2 > 1.5 * half, (rb, rb2)
    assert rb2 < 1.1 * bw


def test_three_members_share_and_speed_up(tmp_path, procs):
    bw = 6_000_000
    ms = [Member(procs, bw, tmp_path) for _ in range(3)]
    wait_members(tmp_path, bw, 3)
    time.sleep(0.5)
    rs = rates(ms, 2.0)
    third = bw / 3
    for r in rs:
        assert 0.6 * third < r < 1.25 * third, rs
    assert sum(rs) < 1.1 * bw
    ms[0].end_input()
    assert ms[0].p.wait(timeout=10) == 0
    time.sleep(0.3)
    rs2 = rates(ms[1:], 1.5)
    for r in rs2:
        assert r > 1.25 * third, (rs, rs2)
    assert sum(rs2) < 1.1 * bw


def test_work_dir_removed_never_exceeds_budget(tmp_path, procs):
    """rm -rf of the work dir mid-run: the members cannot count each other any more;
    each keeps its last share (never the whole budget each), says so once, does not
    block the removal, and rejoins when the directory is back."""
    bw = 4_000_000
    wd = tmp_path / "wd"
    wd.mkdir()
    ms = [Member(procs, bw, wd) for _ in range(2)]
    wait_members(wd, bw, 2)
    time.sleep(0.3)
    episodes = 0
    for i in range(6):
        if i:
            wd.mkdir()
            wait_members(wd, bw, 2)  # both rejoined the new directory
        r = subprocess.run(["rm", "-rf", str(wd)], capture_output=True, text=True)
        episodes += 1
        # sabo must not re-create its lock between rm's unlink and rmdir
        assert r.returncode == 0 and not wd.exists(), (i, r.stderr)
        if i == 0:
            time.sleep(1.5)  # past the 1 s rescan too
            rs = rates(ms, 2.0)
            assert sum(rs) < 1.1 * bw, rs
            for x in rs:
                assert x < 1.2 * bw / 2, rs
    wd.mkdir()
    wait_members(wd, bw, 2)
    time.sleep(0.5)
    rs = rates(ms, 1.5)
    assert sum(rs) < 1.1 * bw and min(rs) > 0.3 * bw / 2, rs
    for m in ms:
        m.end_input()
        assert m.p.wait(timeout=10) == 0
        err = m.p.stderr.read().decode()
        assert err.count("was removed") == episodes, err
        assert err.count("rejoined the group") == episodes, err
    assert lock_files(wd) == []


def test_kill9_member_reaped_and_share_returns(tmp_path, procs):
    bw = 4_000_000
    a = Member(procs, bw, tmp_path)
    b = Member(procs, bw, tmp_path)
    wait_members(tmp_path, bw, 2)
    time.sleep(0.3)
    (rb,) = rates([b], 1.0)
    a_files = [f for f in lock_files(tmp_path, bw) if str(a.p.pid) in f.split("_")[2]]
    assert len(a_files) == 1
    t0 = time.monotonic()
    a.p.kill()
    a.p.wait()
    # The kernel closing the dead member's lock fd is an inotify event, so the
    # survivor reaps the file right away (the 1 s rescan is only a fallback).
    wait_for(lambda: not os.path.exists(tmp_path / a_files[0]), timeout=5,
             what="dead member's lock file reaped")
    reap = time.monotonic() - t0
    assert reap < 0.9, "reaped after %.2fs" % reap
    time.sleep(0.2)
    (rb2,) = rates([b], 1.0)
    assert rb2 > 1.5 * rb, (rb, rb2)
    assert lock_files(tmp_path, bw) == [f for f in lock_files(tmp_path, bw) if
                                        str(b.p.pid) in f]


def hold_original_lock(wd, bw, pid=99999, xid="9m4e2mr0ui3e8a215n4g"):
    """Join the way the original Go sabo does: create _name, flock, rename."""
    name = "sabo_%d_%d_%s.lock" % (bw, pid, xid)
    tmp = os.path.join(wd, "_" + name)
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.rename(tmp, os.path.join(wd, name))
    return fd, name


def original_count(wd, bw):
    """The original's RefreshLimiter: locked files with prefix sabo_<bw>_."""
    n = 0
    for f in os.listdir(wd):
        if not f.startswith("sabo_%d_" % bw):
            continue
        fd = os.open(os.path.join(wd, f), os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            n += 1
        finally:
            os.close(fd)
    return n


def test_shares_budget_with_original_member(tmp_path, procs):
    """A member using the original's protocol counts; when it dies (lock
    released, file left behind) sabo reaps the file and takes the budget."""
    bw = 4_000_000
    fd, name = hold_original_lock(str(tmp_path), bw)
    m = Member(procs, bw, tmp_path)
    wait_members(tmp_path, bw, 2)
    assert original_count(str(tmp_path), bw) == 2
    time.sleep(0.3)
    (r,) = rates([m], 1.5)
    assert 0.6 * bw / 2 < r < 1.2 * bw / 2, r
    os.close(fd)  # the original member dies
    wait_for(lambda: not os.path.exists(tmp_path / name), timeout=5,
             what="original member's lock reaped")
    time.sleep(0.2)
    (r2,) = rates([m], 1.0)
    assert r2 > 1.5 * r, (r, r2)


def test_weight_shares(tmp_path, procs):
    """--weight 3 vs weight 1 of 4M: 3M and 1M. The weighted member holds 3
    locked files, so the original's count (locked sabo_<bw>_ files) sees 4
    units too and every member agrees on the split."""
    bw = 4_000_000
    a = Member(procs, bw, tmp_path, ("--weight", "3"))
    b = Member(procs, bw, tmp_path)
    wait_members(tmp_path, bw, 4)
    names = lock_files(tmp_path, bw)
    wnames = [n for n in names if "_w3" in n]
    assert len(wnames) == 3, names
    assert any(n.endswith("_w3.lock") for n in wnames)
    assert any(n.endswith("_w3_2.lock") for n in wnames)
    assert any(n.endswith("_w3_3.lock") for n in wnames)
    assert original_count(str(tmp_path), bw) == 4
    time.sleep(0.5)
    ra, rb = rates([a, b], 2.0)
    assert 0.65 * 3e6 < ra < 1.2 * 3e6, (ra, rb)
    assert 0.6 * 1e6 < rb < 1.3 * 1e6, (ra, rb)
    a.end_input()
    assert a.p.wait(timeout=10) == 0
    wait_members(tmp_path, bw, 1)
    time.sleep(0.2)
    (rb2,) = rates([b], 1.0)
    assert rb2 > 2.5 * 1e6, rb2


# ---------------------------------------------------------------- errors


def bad_dir_cases(tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    return f


BAD = [
    ([], "required flags `--max-bandwidth' and `--work-dir'"),
    (["--max-bandwidth", "1M"], "required flag `--work-dir'"),
    (["--work-dir", "{wd}"], "required flag `--max-bandwidth'"),
    (["--max-bandwidth", "abc", "--work-dir", "{wd}"], '"abc"'),
    (["--max-bandwidth", "-1M", "--work-dir", "{wd}"], '"-1M"'),
    (["--max-bandwidth", "1.2.3M", "--work-dir", "{wd}"], '"1.2.3M"'),
    (["--max-bandwidth", "10XB", "--work-dir", "{wd}"], '"10XB"'),
    (["--max-bandwidth", "", "--work-dir", "{wd}"], "--max-bandwidth"),
    (["--max-bandwidth", "99999999999999999999999", "--work-dir", "{wd}"], "--max-bandwidth"),
    (["--max-bandwidth", "31999", "--work-dir", "{wd}"],
     'max-bandwidth > 32K required: --max-bandwidth "31999" is 31999 bytes/s'),
    (["--max-bandwidth", "31K", "--work-dir", "{wd}"],
     'max-bandwidth > 32K required: --max-bandwidth "31K" is 31000 bytes/s'),
    (["--max-bandwidth", "1.5", "--work-dir", "{wd}"],
     '--max-bandwidth "1.5" is 1 bytes/s; it must be at least 32K (32000 bytes/s)'),
    (["--max-bandwidth", "1M", "--work-dir", "{wd}", "--weight", "0"], "--weight"),
    (["--max-bandwidth", "1M", "--work-dir", "{wd}", "--weight", "-2"], "--weight"),
    (["--max-bandwidth", "1M", "--work-dir", "{wd}", "--weight", "abc"], "--weight"),
    (["--max-bandwidth", "1M", "--work-dir", "{wd}", "--weight", "101"], "--weight"),
    (["--max-bandwidth", "1M", "--work-dir", "{wd}", "--weight"], "--weight"),
    (["--max-bandwidth", "1M", "--work-dir", "{wd}/nope"], "No such file or directory"),
    (["--max-bandwidth", "1M", "--work-dir", "{wd}/a-file"], "Not a directory"),
    (["--max-bandwidth", "1M", "--work-dir", ""], "--work-dir"),
    (["--max-bandwidth", "1M", "--work-dir", "{wd}", "--foo"], "unknown flag: --foo"),
    (["--max-bandwidth", "1M", "--work-dir", "{wd}", "extra"], '"extra"'),
    (["--max-bandwidth"], "--max-bandwidth"),
]


@pytest.mark.parametrize("args,msg", BAD, ids=[" ".join(a) or "none" for a, _ in BAD])
def test_bad_input(tmp_path, args, msg):
    bad_dir_cases(tmp_path)
    argv = [SABO] + [a.replace("{wd}", str(tmp_path)) for a in args]
    r = subprocess.run(argv, input=b"some input", capture_output=True, timeout=10)
    assert r.returncode == 1, r
    assert r.stdout == b""
    err = r.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("sabo: "), err
    assert msg in err, err
    assert lock_files(tmp_path) == []


@pytest.mark.parametrize("mode,msg", [(0o555, "cannot create lock file"),
                                      (0o311, "cannot open work dir")])
def test_unwritable_or_unreadable_work_dir(mode, msg):
    import shutil
    import tempfile
    # Outside pytest's 0700 tmp dir, so that nobody can reach it.
    top = tempfile.mkdtemp(prefix="sabo-perm-", dir="/tmp")
    try:
        os.chmod(top, 0o755)
        wd = os.path.join(top, "wd")
        os.mkdir(wd)
        os.chmod(wd, mode)
        argv = sabo_cmd("1M", wd)
        if os.geteuid() == 0:
            need("setpriv")
            # root ignores permissions: run as nobody (the binary must be reachable).
            drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            probe = subprocess.run(drop + [SABO, "--version"], capture_output=True)
            if probe.returncode != 0:
                pytest.skip("sabo not executable by nobody: %s" % probe.stderr.decode())
            argv = drop + argv
        r = subprocess.run(argv, input=b"data", capture_output=True, timeout=10)
        assert r.returncode == 1, r
        assert r.stdout == b""
        err = r.stderr.decode()
        assert err.count("\n") == 1, err
        assert msg in err and "Permission denied" in err, err
        os.chmod(wd, 0o755)
        assert os.listdir(wd) == []
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_help_and_version(tmp_path):
    r = subprocess.run([SABO, "--help"], capture_output=True, timeout=10)
    assert r.returncode == 0
    out = r.stdout.decode()
    for f in ("--max-bandwidth", "--work-dir", "--weight", "--progress", "--version"):
        assert f in out
    for v in ("-v", "--version"):
        r = subprocess.run([SABO, v], capture_output=True, timeout=10)
        assert r.returncode == 0
        assert re.match(r"sabo \S+\nCompiler: ", r.stdout.decode()), r.stdout


def test_flag_spellings(tmp_path):
    for argv in ([SABO, "--max-bandwidth=1G", "--work-dir=%s" % tmp_path],
                 [SABO, "--work-dir", str(tmp_path), "--max-bandwidth", "1 GB"],
                 [SABO, "--max-bandwidth", "1GiB", "--work-dir", str(tmp_path), "--progress"]):
        r = subprocess.run(argv, input=b"hello", capture_output=True, timeout=10)
        assert r.returncode == 0, (argv, r.stderr)
        assert r.stdout == b"hello"


def test_epipe_is_an_error(tmp_path):
    """The reader goes away: exit 1 with a message (the original exits 0)."""
    p = subprocess.Popen(sabo_cmd("100M", tmp_path), stdin=open("/dev/zero", "rb"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.read(100_000)
    p.stdout.close()
    assert p.wait(timeout=10) == 1
    err = p.stderr.read().decode()
    assert "write error" in err and "Broken pipe" in err, err
    assert lock_files(tmp_path) == []


def test_read_error_is_an_error(tmp_path):
    d = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)  # `sabo < dir`
    try:
        r = subprocess.run(sabo_cmd("1M", tmp_path), stdin=d, capture_output=True,
                           timeout=10)
    finally:
        os.close(d)
    assert r.returncode == 1
    assert r.stdout == b""
    assert "read error" in r.stderr.decode() and "Is a directory" in r.stderr.decode()
    assert lock_files(tmp_path) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_copy_removes_lock(tmp_path, procs, sig):
    m = Member(procs, 1_000_000, tmp_path)
    wait_members(tmp_path, 1_000_000, 1)
    wait_for(lambda: m.bytes() > 100_000, timeout=10, what="copy under way")
    m.p.send_signal(sig)
    rc = m.p.wait(timeout=10)
    assert rc == -sig, rc
    assert lock_files(tmp_path) == []
    err = m.p.stderr.read().decode()
    assert signal.Signals(sig).name in err and "incomplete" in err, err


def test_signal_progress_says_interrupted(tmp_path, procs):
    m = Member(procs, 1_000_000, tmp_path, extra=("--progress",))
    wait_members(tmp_path, 1_000_000, 1)
    wait_for(lambda: m.bytes() > 100_000, timeout=10, what="copy under way")
    m.p.send_signal(signal.SIGTERM)
    assert m.p.wait(timeout=10) == -signal.SIGTERM
    lines = m.p.stderr.read().decode().splitlines()
    progress = [ln for ln in lines if " bytes) " in ln]
    assert progress and progress[-1].startswith("sabo: interrupted: "), lines
    assert not any("done:" in ln for ln in lines), lines


def test_signal_while_blocked_on_write(tmp_path, procs):
    """Nobody reads our output: SIGTERM still ends sabo and removes its lock."""
    r_out, w_out = os.pipe()
    p = procs.start(sabo_cmd("100M", tmp_path), stdin=open("/dev/zero", "rb"), stdout=w_out,
                    stderr=subprocess.PIPE)
    os.close(w_out)
    wait_members(tmp_path, 100_000_000, 1)
    time.sleep(0.5)  # the pipe is full and sabo sits in write/splice
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == -signal.SIGTERM
    assert lock_files(tmp_path) == []
    os.close(r_out)


# ---------------------------------------------------------------- progress & cost


def test_progress_plain_lines(tmp_path):
    data = b"\0" * 2_600_000
    r = subprocess.run(sabo_cmd("1M", tmp_path, "--progress"), input=data,
                       capture_output=True, timeout=30)
    assert r.returncode == 0
    assert r.stdout == data
    lines = r.stderr.decode().splitlines()
    assert len(lines) >= 3, lines
    for ln in lines[:-1]:
        assert ln.startswith("sabo: ") and " bytes) " in ln and "share 1/1" in ln, ln
        assert "limit 1.0 MB/s" in ln, ln
    assert lines[-1].startswith("sabo: done: ") and "(2600000 bytes)" in lines[-1], lines
    assert "\r" not in r.stderr.decode()


def test_progress_in_place_on_tty(tmp_path):
    master, slave = pty.openpty()
    p = subprocess.Popen(sabo_cmd("1M", tmp_path, "--progress"), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    out = {}

    def feed():
        out["data"] = p.communicate(b"\0" * 1_200_000, timeout=30)[0]

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    buf = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rr, _, _ = select.select([master], [], [], 0.5)
        if rr:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
        elif p.poll() is not None:
            break
    t.join(30)
    os.close(master)
    assert p.returncode == 0
    assert out["data"] == b"\0" * 1_200_000
    text = buf.decode()
    # Refreshed in place several times (250 ms period), then a final newline.
    assert text.count("\r") >= 3, repr(text)
    assert "\x1b[K" in text
    assert text.endswith("\r\n"), repr(text[-40:])  # the tty maps \n to \r\n
    last = text[:-2].rsplit("\r", 1)[1]
    assert "(1200000 bytes)" in last and "share 1/1" in last, repr(last)


def test_memory_stays_small(tmp_path, procs):
    if is_asan_build():
        pytest.skip("RSS is meaningless under ASan")
    feeder = procs.start(["cat", "/dev/zero"], stdout=subprocess.PIPE)
    p = procs.start(sabo_cmd("10G", tmp_path), stdin=feeder.stdout, stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE)
    feeder.stdout.close()
    time.sleep(1.0)
    with open("/proc/%d/status" % p.pid) as f:
        st = dict(ln.split(":", 1) for ln in f.read().splitlines() if ":" in ln)
    hwm_kb = int(st["VmHWM"].split()[0])
    assert hwm_kb < 2048, "peak RSS %d kB" % hwm_kb
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)
