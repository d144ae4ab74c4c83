"""End-to-end tests for mackerel-plugin-linux-process-status.

Every test starts real processes (a busy loop, an idle sleeper, a child holding
extra fds, a process tree) and checks the plugin's numbers against /proc read
independently by the test. CPU and rate checks bracket the plugin's reads with
the test's own reads before and after each run, so the expected range is exact
rather than a guess with a fudge factor.
"""
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import binpath, need, wait_for

BIN = binpath("mackerel-plugin-linux-process-status")
PY = "/usr/bin/python3"
PAGE = os.sysconf("SC_PAGE_SIZE")
HZ = os.sysconf("SC_CLK_TCK")
INT_RE = re.compile(r"^\d+$")
PCT_RE = re.compile(r"^-?\d+\.\d{6}$")

BASE_NAMES = ["fds_{k}.count", "fds_{k}.max", "fds_usage_{k}.percentage",
              "cpu_{k}.percentage", "mem_{k}.used", "mem_{k}.max",
              "mem_usage_{k}.percentage"]


# ---------------------------------------------------------------- helpers

@pytest.fixture
def state_dir(tmp_path):
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    return d


def run(args, state=None, env_extra=None, check=True, timeout=30, env=None):
    if env is None:
        e = dict(os.environ)
        e.pop("MACKEREL_AGENT_PLUGIN_META", None)
    else:
        e = dict(env)
    if state is not None:
        e["PROCESS_STATUS_STATE_DIR"] = str(state)
    if env_extra:
        e.update(env_extra)
    r = subprocess.run([BIN] + [str(a) for a in args], env=e, capture_output=True,
                       text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, "rc=%d stderr=%r" % (r.returncode, r.stderr)
    return r


def parse(out):
    """name -> value string, plus the ordered list of names."""
    names, vals = [], {}
    now = time.time()
    for line in out.splitlines():
        parts = line.split("\t")
        assert len(parts) == 3, "bad line %r" % line
        name, value, epoch = parts
        assert name.startswith("process-status."), line
        assert INT_RE.match(epoch) and abs(int(epoch) - now) < 30, line
        names.append(name)
        vals[name] = value
    return names, vals


def num(vals, key, metric):
    return float(vals["process-status.%s" % metric.format(k=key)])


def pid_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    rest = s[s.rindex(")") + 2:].split()
    # rest[0] is field 3
    return {"ppid": int(rest[1]), "utime": int(rest[11]), "stime": int(rest[12]),
            "cutime": int(rest[13]), "cstime": int(rest[14]),
            "threads": int(rest[17]), "start": int(rest[19]), "rss": int(rest[21])}


def proc_ticks(pids, children=False):
    t = 0
    for p in pids:
        s = pid_stat(p)
        t += s["utime"] + s["stime"]
        if children:
            t += s["cutime"] + s["cstime"]
    return t


def machine_ticks():
    with open("/proc/stat") as f:
        first = f.readline().split()
    assert first[0] == "cpu"
    # user nice system idle iowait irq softirq steal (guest is already in user)
    return sum(int(x) for x in first[1:9])


def ncpu():
    with open("/proc/stat") as f:
        return sum(1 for line in f if re.match(r"cpu\d+ ", line))


def status_field(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def io_field(pid, field):
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def mem_total():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise KeyError("MemTotal")


def descendants(root):
    kids = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                kids.setdefault(pid_stat(int(e))["ppid"], []).append(int(e))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [root], [root]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def soft_nofile(pid):
    r = subprocess.run(["prlimit", "--pid", str(pid), "--nofile", "--output", "SOFT",
                        "--noheadings"], capture_output=True, text=True, check=True)
    return int(r.stdout.strip())


def busy(procs):
    p = procs.start(["sh", "-c", "while :; do :; done"])
    wait_for(lambda: proc_ticks([p.pid]) > 0, what="busy loop to use CPU")
    return p


def sleeper(procs, arg="1000", **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("stdout", subprocess.DEVNULL)
    p = procs.start(["sleep", arg], **kw)
    wait_for(lambda: open("/proc/%d/comm" % p.pid).read().strip() == "sleep",
             what="sleep to exec")
    # and past its start-up: locale set-up opens and closes files, so a
    # sample taken then sees an extra descriptor (flaked in CI: 4 fds, then 3)
    wait_for(lambda: sleeping(p.pid), what="sleep to be asleep")
    return p


def sleeping(pid):
    """pid is blocked in its sleep: state S and, where the numbers are known
    (x86_64), in nanosleep/clock_nanosleep."""
    stat = open("/proc/%d/stat" % pid).read()
    if stat.rsplit(")", 1)[1].split()[0] != "S":
        return False
    if platform.machine() != "x86_64":
        return True
    try:
        nr = open("/proc/%d/syscall" % pid).read().split()[0]
    except OSError:
        return True
    return nr in ("35", "230")


class Bracket:
    """Samples taken by the test right before and after one plugin run."""

    def __init__(self, fn):
        self.fn = fn

    def __enter__(self):
        self.before = self.fn()
        return self

    def __exit__(self, *a):
        self.after = self.fn()


def bracket_ratio(b1, b2, pi, ti):
    """Bounds of (proc delta)/(total delta) between two bracketed runs; samples are
    tuples, pi/ti the indexes of the numerator and denominator."""
    lo = (b2.before[pi] - b1.after[pi]) / max(1, b2.after[ti] - b1.before[ti])
    hi = (b2.after[pi] - b1.before[pi]) / max(1, b2.before[ti] - b1.after[ti])
    return lo, hi


# ---------------------------------------------------------------- compatibility

def test_help_version_and_flag_errors():
    r = run(["--help"])
    assert "--pid-file" in r.stdout and "--pattern" in r.stdout and "--key-prefix" in r.stdout
    # the default state directory honours TMPDIR (test_default_state_dir_created_private)
    assert "${TMPDIR:-/tmp}/mackerel-plugin-linux-process-status-UID" in r.stdout
    r = run(["-v"])
    assert "mackerel-plugin-linux-process-status" in r.stdout
    for args, msg in [([], "required"), (["--bogus"], "bogus"), (["-p", "abc"], "abc"),
                      (["-p", "1", "--pattern", "x"], "mutually exclusive"),
                      (["-p", "0"], '"0" for --pid: must be between 1 and 4194304'),
                      (["--pattern", "("], "--pattern"),
                      (["-p", "1", "--oldest"], "--oldest"),
                      (["-p", "1", "--key-prefix", ""], "must not be empty"),
                      (["-p", "1", "--key-prefix", "a\tb"], "invalid --key-prefix"),
                      (["-p", "1", "--key-prefix", "a b"], "invalid --key-prefix"),
                      (["-p", "1", "--key-prefix", "k" * 201], "too long"),
                      (["-p", "1", "--key-prefix", "../../etc/x"], "invalid --key-prefix"),
                      (["-p", "1", "--key-prefix", "a{b"], "invalid --key-prefix"),
                      (["-p", "1", "--key-prefix", "a:b"], "invalid --key-prefix"),
                      (["-p", "1", "--key-prefix", "caf\u00e9"], "invalid --key-prefix"),
                      (["-p", "1", "--key-prefix", ".a"], "invalid --key-prefix"),
                      (["-p", "1", "--key-prefix", "a."], "invalid --key-prefix"),
                      (["-p", "1", "--key-prefix", "a..b"], "invalid --key-prefix"),
                      (["--pattern", ""], "--pattern must not be empty"),
                      (["--pid-file", ""], "--pid-file must not be empty"),
                      (["-p", "1", "--state-dir", ""], "--state-dir must not be empty"),
                      (["-p", "1", "extra"], "unexpected argument")]:
        for env in (None, dict(os.environ, MACKEREL_AGENT_PLUGIN_META="1")):
            r = run(args, check=False, env=env)
            assert r.returncode == 1, (args, r.stderr)
            assert msg in r.stderr, (args, r.stderr)
            assert r.stdout == ""


def test_output_format_first_run_and_second_run(procs, state_dir):
    p = sleeper(procs)
    r = run(["-p", p.pid, "--key-prefix", "fmt"], state=state_dir)
    assert r.stderr == "Notice: first time execution command\n"
    names, vals = parse(r.stdout)
    expect = ["process-status." + n.format(k="fmt") for n in BASE_NAMES]
    assert names == [n for n in expect if ".cpu_" not in n]
    time.sleep(0.2)  # at least one clock tick between the runs
    r = run(["-p", p.pid, "--key-prefix", "fmt"], state=state_dir)
    assert r.stderr == ""
    names, vals = parse(r.stdout)
    assert names == expect
    for n in names:
        if n.endswith(".percentage"):
            assert PCT_RE.match(vals[n]), (n, vals[n])
        else:
            assert INT_RE.match(vals[n]), (n, vals[n])
    # the long spelling of -p and --key-prefix=VALUE work too
    time.sleep(0.2)
    r = run(["--pid=%d" % p.pid, "--key-prefix=fmt"], state=state_dir)
    assert parse(r.stdout)[0] == expect


def test_second_run_right_after_first_has_cpu_line(procs, state_dir):
    # Two runs back to back (a script, or mackerel-agent restarted) fall within one
    # clock tick of each other more often than not; the second still reports cpu.
    p = sleeper(procs)
    for i in range(10):
        key = "b2b%d" % i
        r = run(["-p", p.pid, "--key-prefix", key], state=state_dir)
        assert "first time" in r.stderr
        r = run(["-p", p.pid, "--key-prefix", key], state=state_dir)
        assert r.stderr == "", r.stderr
        names, vals = parse(r.stdout)
        assert names == ["process-status." + n.format(k=key) for n in BASE_NAMES]
        assert float(vals["process-status.cpu_%s.percentage" % key]) < 5.0


def test_missing_process_exit_1(procs, state_dir):
    t = subprocess.Popen(["true"])
    t.wait()
    r = run(["-p", t.pid, "--key-prefix", "gone"], state=state_dir, check=False)
    assert r.returncode == 1
    assert "process %d does not exist" % t.pid in r.stderr
    assert r.stdout == ""


# ---------------------------------------------------------------- CPU

def _cpu_runs(pids, state_dir, children=False, extra=()):
    sample = lambda: (proc_ticks(pids, children), machine_ticks())
    args = ["-p", pids[0]] + (["--include-children"] if children else []) + list(extra)
    with Bracket(sample) as b1:
        r1 = run(args + ["--key-prefix", "m"], state=state_dir)
        r1c = run(args + ["--key-prefix", "c", "--per-core"], state=state_dir)
    assert "first time" in r1.stderr and "first time" in r1c.stderr
    assert "process-status.cpu_m.percentage" not in r1.stdout
    time.sleep(2.0)
    with Bracket(sample) as b2:
        r2 = run(args + ["--key-prefix", "m"], state=state_dir)
        r2c = run(args + ["--key-prefix", "c", "--per-core"], state=state_dir)
    machine = float(parse(r2.stdout)[1]["process-status.cpu_m.percentage"])
    core = float(parse(r2c.stdout)[1]["process-status.cpu_c.percentage"])
    lo, hi = bracket_ratio(b1, b2, 0, 1)
    return machine, core, lo * 100, hi * 100, r2


def test_cpu_busy_loop_matches_proc(procs, state_dir):
    p = busy(procs)
    machine, core, lo, hi, _ = _cpu_runs([p.pid], state_dir)
    n = ncpu()
    assert lo - 1.0 <= machine <= hi + 1.0, (machine, lo, hi)
    assert n * lo - 2.0 <= core <= n * hi + 2.0, (core, lo, hi, n)
    # a busy loop gets a good part of a core even on a loaded 2-core machine
    assert core > 20.0, core


def test_cpu_idle_child_near_zero(procs, state_dir):
    p = sleeper(procs)
    machine, core, lo, hi, _ = _cpu_runs([p.pid], state_dir)
    assert machine < 1.0 and core < 2.0, (machine, core)
    assert lo - 1.0 <= machine <= hi + 1.0


# ---------------------------------------------------------------- fds

FD_CHILD = r"""
import os, sys
print("ready", flush=True)
sys.stdin.readline()
fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(100)]
print("opened", flush=True)
sys.stdin.readline()
"""


def test_fds_count_rises_by_100_and_max_matches_prlimit(procs, state_dir):
    need("prlimit")
    p = procs.start([PY, "-c", FD_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    text=True)
    assert p.stdout.readline() == "ready\n"
    subprocess.run(["prlimit", "--pid", str(p.pid), "--nofile=4321:8642"], check=True)
    key = "fdtest"
    v0 = parse(run(["-p", p.pid, "--key-prefix", key], state=state_dir).stdout)[1]
    c0 = int(v0["process-status.fds_%s.count" % key])
    assert c0 == fd_count(p.pid)
    p.stdin.write("go\n")
    p.stdin.flush()
    assert p.stdout.readline() == "opened\n"
    v1 = parse(run(["-p", p.pid, "--key-prefix", key], state=state_dir).stdout)[1]
    c1 = int(v1["process-status.fds_%s.count" % key])
    assert c1 == c0 + 100 == fd_count(p.pid)
    mx = int(v1["process-status.fds_%s.max" % key])
    assert mx == soft_nofile(p.pid) == 4321
    assert v1["process-status.fds_usage_%s.percentage" % key] == "%f" % (c1 * 100.0 / 4321)


# ---------------------------------------------------------------- memory

def test_mem_matches_vmrss_and_memtotal(procs, state_dir, tmp_path):
    p = sleeper(procs)
    empty = tmp_path / "nocgroup"
    empty.mkdir()
    # a process that has just started still pages itself in: compare only a
    # reading taken while its RSS did not move
    for _ in range(20):
        before = status_field(p.pid, "VmRSS")
        r = run(["-p", p.pid, "--key-prefix", "mem"], state=state_dir,
                env_extra={"PROCESS_STATUS_CGROUP_ROOT": str(empty)})
        if status_field(p.pid, "VmRSS") == before:
            break
        time.sleep(0.1)
    v = parse(r.stdout)[1]
    used = int(v["process-status.mem_mem.used"])
    assert used == before * 1024
    assert int(v["process-status.mem_mem.max"]) == mem_total()
    assert v["process-status.mem_usage_mem.percentage"] == "%f" % (used * 100.0 / mem_total())


def fake_proc(tmp_path, pid, cgroup_text=None, stat_text=None, drop=()):
    """A proc root whose files are symlinks to the real ones, except those given
    (drop: "stat" is /proc/PID/stat, "/stat" is /proc/stat)."""
    root = tmp_path / "proc"
    d = root / str(pid)
    d.mkdir(parents=True)
    for f in ("stat", "meminfo"):
        if "/" + f not in drop:
            os.symlink("/proc/" + f, root / f)
    for f in ("stat", "limits", "fd", "status", "io", "cgroup"):
        if f in drop:
            continue
        if f == "cgroup" and cgroup_text is not None:
            (d / f).write_text(cgroup_text)
        elif f == "stat" and stat_text is not None:
            (d / f).write_text(stat_text)
        else:
            os.symlink("/proc/%d/%s" % (pid, f), d / f)
    return root


def cg_file(root, rel, name, value):
    d = root / rel.strip("/") if rel.strip("/") else root
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(value + "\n")


MiB = 1024 * 1024


@pytest.mark.parametrize("case", ["v2", "v2-ancestor", "hybrid", "v1", "v1-and-v2",
                                  "above-memtotal", "unlimited"])
def test_cgroup_limit_fixture(procs, state_dir, tmp_path, case):
    p = sleeper(procs)
    cg = tmp_path / "cg"
    cg.mkdir()
    if case == "v2":
        text = "0::/svc/app\n"
        (cg / "cgroup.controllers").write_text("memory\n")
        cg_file(cg, "/svc/app", "memory.max", str(300 * MiB))
        expect = 300 * MiB
    elif case == "v2-ancestor":
        text = "0::/svc/app\n"
        (cg / "cgroup.controllers").write_text("memory\n")
        cg_file(cg, "/svc", "memory.max", str(200 * MiB))
        cg_file(cg, "/svc/app", "memory.max", "max")
        expect = 200 * MiB
    elif case == "hybrid":
        text = "4:memory:/\n0::/svc/app\n"
        (cg / "unified").mkdir()
        (cg / "unified" / "cgroup.controllers").write_text("")
        cg_file(cg / "unified", "/svc/app", "memory.max", str(150 * MiB))
        expect = 150 * MiB
    elif case == "v1":
        text = "5:cpu,cpuacct:/x\n4:memory:/x/y\n1:name=systemd:/x\n"
        cg_file(cg / "memory", "/x/y", "memory.limit_in_bytes", str(100 * MiB))
        cg_file(cg / "memory", "/x", "memory.limit_in_bytes", "9223372036854771712")
        expect = 100 * MiB
    elif case == "v1-and-v2":
        text = "4:memory:/x\n0::/y\n"
        (cg / "cgroup.controllers").write_text("")
        cg_file(cg / "memory", "/x", "memory.limit_in_bytes", str(120 * MiB))
        cg_file(cg, "/y", "memory.max", str(80 * MiB))
        expect = 80 * MiB
    elif case == "above-memtotal":
        text = "0::/big\n"
        (cg / "cgroup.controllers").write_text("")
        cg_file(cg, "/big", "memory.max", str(mem_total() * 4))
        expect = mem_total()
    else:
        text = "0::/u\n"
        (cg / "cgroup.controllers").write_text("")
        cg_file(cg, "/u", "memory.max", "max")
        expect = mem_total()
    root = fake_proc(tmp_path, p.pid, cgroup_text=text)
    r = run(["-p", p.pid, "--key-prefix", "cg"], state=state_dir,
            env_extra={"PROCESS_STATUS_CGROUP_ROOT": str(cg),
                       "PROCESS_STATUS_PROC_ROOT": str(root)})
    v = parse(r.stdout)[1]
    assert int(v["process-status.mem_cg.max"]) == expect
    used = int(v["process-status.mem_cg.used"])
    assert v["process-status.mem_usage_cg.percentage"] == "%f" % (used * 100.0 / expect)


def test_cgroup_limit_fixture_from_real_cgroup_file(procs, state_dir, tmp_path):
    """The child's real /proc/PID/cgroup paths, with limit files in a fixture tree."""
    p = sleeper(procs)
    cg = tmp_path / "cg"
    cg.mkdir()
    (cg / "cgroup.controllers").write_text("")
    found = False
    with open("/proc/%d/cgroup" % p.pid) as f:
        for line in f:
            hier, ctrls, path = line.rstrip("\n").split(":", 2)
            if hier == "0" and ctrls == "":
                cg_file(cg, path, "memory.max", str(64 * MiB))
                found = True
            elif "memory" in ctrls.split(","):
                cg_file(cg / "memory", path, "memory.limit_in_bytes", str(96 * MiB))
                found = True
    assert found
    r = run(["-p", p.pid, "--key-prefix", "cgr"], state=state_dir,
            env_extra={"PROCESS_STATUS_CGROUP_ROOT": str(cg)})
    assert int(parse(r.stdout)[1]["process-status.mem_cgr.max"]) == 64 * MiB


def _real_cgroup():
    """(kind, base dir) of a writable memory cgroup hierarchy, or a skip reason."""
    v2 = "/sys/fs/cgroup"
    try:
        with open(v2 + "/cgroup.controllers") as f:
            if "memory" in f.read().split() and os.access(v2, os.W_OK):
                return "v2", v2
    except OSError:
        pass
    v1 = "/sys/fs/cgroup/memory"
    if os.path.exists(v1 + "/memory.limit_in_bytes") and os.access(v1, os.W_OK):
        return "v1", v1
    return None, "no writable cgroup v2 (with the memory controller) or v1 memory hierarchy"


def test_cgroup_limit_real(procs, state_dir):
    kind, base = _real_cgroup()
    if kind is None:
        pytest.skip(base)
    p = sleeper(procs)
    d = os.path.join(base, "opskit-ps-test-%d" % os.getpid())
    try:
        os.mkdir(d)
    except OSError as e:
        pytest.skip("cannot create a test cgroup in %s: %s" % (base, e))
    try:
        limit_file = "memory.max" if kind == "v2" else "memory.limit_in_bytes"
        try:
            with open(os.path.join(d, limit_file), "w") as f:
                f.write(str(64 * MiB))
            with open(os.path.join(d, limit_file)) as f:
                limit = int(f.read())
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(str(p.pid))
        except OSError as e:
            pytest.skip("cannot set up a test cgroup in %s: %s" % (base, e))
        r = run(["-p", p.pid, "--key-prefix", "realcg"], state=state_dir)
        assert int(parse(r.stdout)[1]["process-status.mem_realcg.max"]) == limit
    finally:
        p.kill()
        p.wait()
        wait_for(lambda: not open(os.path.join(d, "cgroup.procs")).read().strip(),
                 what="cgroup to empty")
        os.rmdir(d)


# ---------------------------------------------------------------- graph definitions

def test_meta_json_names_every_printed_metric(procs, state_dir):
    p = busy(procs)
    args = ["-p", p.pid, "--key-prefix", "meta", "--extended"]
    run(args, state=state_dir)
    time.sleep(1.1)
    printed = parse(run(args, state=state_dir).stdout)[0]
    assert any(".io_meta." in n for n in printed) and any(".cpu_meta." in n for n in printed)
    env = dict(os.environ, MACKEREL_AGENT_PLUGIN_META="1")
    r = run(args, state=state_dir, env=env)
    head, body = r.stdout.split("\n", 1)
    assert head == "# mackerel-agent-plugin"
    graphs = json.loads(body)["graphs"]
    units = {"float", "integer", "percentage", "seconds", "milliseconds", "bytes",
             "bytes/sec", "bits/sec", "iops"}
    defined = set()
    for gname, g in graphs.items():
        assert g["unit"] in units and g["label"]
        for m in g["metrics"]:
            assert m["label"]
            defined.add(gname + "." + m["name"])
    assert set(printed) == defined
    assert graphs["process-status.mem_meta"]["unit"] == "bytes"
    assert graphs["process-status.fds_meta"]["unit"] == "integer"
    assert graphs["process-status.cpu_meta"]["unit"] == "percentage"
    # without --extended only the original's graphs; default key is the process name
    r = run(["-p", p.pid], state=state_dir, env=env)
    graphs = json.loads(r.stdout.split("\n", 1)[1])["graphs"]
    assert sorted(graphs) == sorted("process-status.%s_sh" % g for g in
                                    ["fds", "fds_usage", "cpu", "mem", "mem_usage"])
    # an explicit key needs no process (the agent may ask before it starts); one that
    # is no Mackerel name (would need JSON escaping) is refused; the default key needs
    # the process
    t = subprocess.Popen(["true"])
    t.wait()
    r = run(["-p", t.pid, "--key-prefix", "db-1.main"], state=state_dir, env=env)
    graphs = json.loads(r.stdout.split("\n", 1)[1])["graphs"]
    assert "process-status.cpu_db-1.main" in graphs
    r = run(["-p", t.pid, "--key-prefix", 'we"ird\\'], state=state_dir, env=env, check=False)
    assert r.returncode == 1 and "invalid --key-prefix" in r.stderr and r.stdout == ""
    r = run(["-p", t.pid], state=state_dir, env=env, check=False)
    assert r.returncode == 1 and "does not exist" in r.stderr and r.stdout == ""


# ---------------------------------------------------------------- selection

def test_pattern_newest_oldest_and_default_key(procs, state_dir):
    need("pgrep")
    tag = "1000.%d" % os.getpid()
    a = sleeper(procs, tag)
    time.sleep(0.05)
    extra = [os.open("/dev/null", os.O_RDONLY) for _ in range(7)]
    try:
        b = sleeper(procs, tag, pass_fds=extra)
    finally:
        for fd in extra:
            os.close(fd)
    assert fd_count(b.pid) != fd_count(a.pid)
    rx = r"^sleep %s$" % re.escape(tag)
    pg = subprocess.run(["pgrep", "-n", "-f", rx], capture_output=True, text=True)
    assert int(pg.stdout) == b.pid
    v = parse(run(["--pattern", rx], state=state_dir).stdout)[1]
    assert int(v["process-status.fds_sleep.count"]) == fd_count(b.pid)
    v = parse(run(["--pattern", rx, "--oldest", "--key-prefix", "old"],
                  state=state_dir).stdout)[1]
    assert int(v["process-status.fds_old.count"]) == fd_count(a.pid)


def test_pattern_skips_own_ancestors(procs, state_dir):
    # `timeout 5 plugin --pattern X`: the pattern is on timeout's command line too
    need("timeout")
    tag = "zz-anc-%d" % os.getpid()
    r = subprocess.run(["timeout", "20", "sh", "-c", '"$0" "$@"; exit $?', BIN,
                        "--pattern", tag], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, PROCESS_STATUS_STATE_DIR=str(state_dir)))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "no process matches --pattern" in r.stderr and r.stdout == ""
    arg = "1001.%d" % os.getpid()
    s = sleeper(procs, arg)
    r = subprocess.run(["timeout", "20", BIN, "--pattern", "^sleep %s$|%s" % (arg, tag),
                        "--key-prefix", "anc"], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, PROCESS_STATUS_STATE_DIR=str(state_dir)))
    assert r.returncode == 0, r.stderr
    assert int(parse(r.stdout)[1]["process-status.fds_anc.count"]) == fd_count(s.pid)


def test_zombie_says_so(procs, state_dir):
    # a child that exited but was not reaped: zeros, and a Notice saying why
    z = subprocess.Popen(["true"])
    request_wait = lambda: open("/proc/%d/stat" % z.pid).read().split(") ")[1][0] == "Z"
    wait_for(request_wait, what="child to become a zombie")
    try:
        r = run(["-p", z.pid, "--key-prefix", "zz"], state=state_dir)
        assert "Notice: process %d is a zombie" % z.pid in r.stderr, r.stderr
        assert "process-status.mem_zz.used" in parse(r.stdout)[0]
    finally:
        z.wait()


def test_pattern_no_match_and_self_excluded(state_dir):
    rx = "zz-no-such-process-%d-zz" % os.getpid()
    r = run(["--pattern", rx], state=state_dir, check=False)
    assert r.returncode == 1
    assert "no process matches --pattern" in r.stderr and r.stdout == ""


def test_pid_file_good_junk_empty_missing_dead(procs, state_dir, tmp_path):
    p = sleeper(procs)
    pf = tmp_path / "app.pid"
    pf.write_text("%d\n" % p.pid)
    v = parse(run(["--pid-file", pf], state=state_dir).stdout)[1]
    assert int(v["process-status.fds_sleep.count"]) == fd_count(p.pid)
    for content, msg in [("12abc\n", "does not contain a process ID"),
                         ("", "is empty"), ("-5\n", "does not contain a process ID"),
                         ("\x00\x01junk", "does not contain a process ID")]:
        pf.write_text(content)
        r = run(["--pid-file", pf], state=state_dir, check=False)
        assert r.returncode == 1 and msg in r.stderr and str(pf) in r.stderr, r.stderr
        assert r.stdout == ""
    r = run(["--pid-file", tmp_path / "missing.pid"], state=state_dir, check=False)
    assert r.returncode == 1 and "cannot read pid file" in r.stderr
    t = subprocess.Popen(["true"])
    t.wait()
    pf.write_text("%d\n" % t.pid)
    r = run(["--pid-file", pf], state=state_dir, check=False)
    assert r.returncode == 1 and "does not exist" in r.stderr and str(pf) in r.stderr


# ---------------------------------------------------------------- process tree

TREE = "sh -c 'while :; do :; done' & sleep 1000 & sleep 1000 & wait"


def test_include_children_sums_tree(procs, state_dir):
    root = procs.start(["sh", "-c", TREE], stdin=subprocess.DEVNULL)
    wait_for(lambda: len(descendants(root.pid)) == 4, what="process tree")
    tree = descendants(root.pid)
    wait_for(lambda: all(open("/proc/%d/comm" % x).read().strip() in ("sh", "sleep")
                         for x in tree))
    key = "tree"
    args = ["-p", root.pid, "--include-children", "--key-prefix", key, "--extended"]
    sample = lambda: (proc_ticks(tree, True), machine_ticks())
    with Bracket(sample) as b1:
        run(args, state=state_dir)
    time.sleep(2.0)
    with Bracket(sample) as b2:
        r = run(args, state=state_dir)
    v = parse(r.stdout)[1]
    lo, hi = bracket_ratio(b1, b2, 0, 1)
    cpu = float(v["process-status.cpu_%s.percentage" % key])
    assert lo * 100 - 1 <= cpu <= hi * 100 + 1, (cpu, lo, hi)
    assert int(v["process-status.fds_%s.count" % key]) == sum(fd_count(x) for x in tree)
    assert int(v["process-status.fds_%s.max" % key]) == sum(soft_nofile(x) for x in tree)
    rss = sum(status_field(x, "VmRSS") * 1024 for x in tree)
    assert abs(int(v["process-status.mem_%s.used" % key]) - rss) <= 0.02 * rss
    assert int(v["process-status.threads_%s.count" % key]) == len(tree)
    # without the flag only the root counts: an idle shell
    v1 = parse(run(["-p", root.pid, "--key-prefix", "rootonly"], state=state_dir).stdout)[1]
    assert int(v1["process-status.fds_rootonly.count"]) == fd_count(root.pid)
    assert int(v1["process-status.mem_rootonly.used"]) < int(v["process-status.mem_%s.used"
                                                                % key])


# ---------------------------------------------------------------- extended

EXT_CHILD = r"""
import os, threading, time
fd = os.open("/dev/null", os.O_WRONLY)
def writer():
    while True:
        os.write(fd, b"x" * 65536)
        time.sleep(0.01)
def idle():
    while True:
        time.sleep(1)
threading.Thread(target=writer, daemon=True).start()
threading.Thread(target=idle, daemon=True).start()
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def test_extended_metrics(procs, state_dir):
    p = procs.start([PY, "-c", EXT_CHILD], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    key = "ext"
    args = ["-p", p.pid, "--key-prefix", key, "--extended"]
    sample = lambda: (io_field(p.pid, "wchar"), time.monotonic(),
                      status_field(p.pid, "voluntary_ctxt_switches"))
    with Bracket(sample) as b1:
        r1 = run(args, state=state_dir)
    n1 = parse(r1.stdout)[0]
    assert "process-status.io_ext.wchar" not in n1  # rates need a previous run
    assert "process-status.threads_ext.count" in n1
    time.sleep(2.0)
    with Bracket(sample) as b2:
        r2 = run(args, state=state_dir)
    names, v = parse(r2.stdout)
    assert names[-8:] == ["process-status." + n.format(k=key) for n in [
        "threads_{k}.count", "ctx_switches_{k}.voluntary", "ctx_switches_{k}.nonvoluntary",
        "io_{k}.read_bytes", "io_{k}.write_bytes", "io_{k}.rchar", "io_{k}.wchar",
        "uptime_{k}.seconds"]]
    assert int(v["process-status.threads_ext.count"]) == status_field(p.pid, "Threads") == 3
    wlo, whi = bracket_ratio(b1, b2, 0, 1)
    wchar = float(v["process-status.io_ext.wchar"])
    assert wchar > 0 and wlo * 0.9 <= wchar <= whi * 1.1, (wchar, wlo, whi)
    clo, chi = bracket_ratio(b1, b2, 2, 1)
    vol = float(v["process-status.ctx_switches_ext.voluntary"])
    assert vol > 0 and clo * 0.9 <= vol <= chi * 1.1 + 1, (vol, clo, chi)
    assert float(v["process-status.ctx_switches_ext.nonvoluntary"]) >= 0
    with open("/proc/uptime") as f:
        up = float(f.read().split()[0])
    expect = up - pid_stat(p.pid)["start"] / HZ
    assert abs(int(v["process-status.uptime_ext.seconds"]) - expect) <= 2.0


# ---------------------------------------------------------------- state file

def _state_file(state_dir, key):
    return state_dir / key


def test_pid_reuse_different_process_same_key(procs, state_dir):
    a = sleeper(procs)
    b = sleeper(procs)
    run(["-p", a.pid, "--key-prefix", "reuse"], state=state_dir)
    r = run(["-p", b.pid, "--key-prefix", "reuse"], state=state_dir)
    assert "process changed" in r.stderr
    assert "process-status.cpu_reuse.percentage" not in r.stdout
    time.sleep(0.3)
    r = run(["-p", b.pid, "--key-prefix", "reuse"], state=state_dir)
    assert r.stderr == "" and "process-status.cpu_reuse.percentage" in r.stdout


def test_pid_reuse_by_start_time(procs, state_dir):
    p = sleeper(procs)
    run(["-p", p.pid, "--key-prefix", "rs"], state=state_dir)
    f = _state_file(state_dir, "rs")
    text = f.read_text()
    start = pid_stat(p.pid)["start"]
    assert ("start %d\n" % start) in text and ("pid %d\n" % p.pid) in text
    f.write_text(text.replace("start %d\n" % start, "start %d\n" % (start + 12345)))
    r = run(["-p", p.pid, "--key-prefix", "rs"], state=state_dir)
    assert "process changed" in r.stderr
    assert "cpu_rs" not in r.stdout
    time.sleep(0.2)
    r = run(["-p", p.pid, "--key-prefix", "rs"], state=state_dir)
    assert "process changed" not in r.stderr


@pytest.mark.parametrize("content", ["garbage\n", "", "\x00" * 100,
                                     "mackerel-plugin-linux-process-status-state 1\nkey cs\n"])
def test_corrupt_state_file_starts_fresh(procs, state_dir, content):
    p = busy(procs)
    f = _state_file(state_dir, "cs")
    f.write_text(content)
    r = run(["-p", p.pid, "--key-prefix", "cs"], state=state_dir)
    assert "Notice: state file" in r.stderr and "starting afresh" in r.stderr
    assert "cpu_cs" not in r.stdout and "mem_cs.used" in r.stdout
    time.sleep(0.3)
    r = run(["-p", p.pid, "--key-prefix", "cs"], state=state_dir)
    assert r.stderr == "" and "process-status.cpu_cs.percentage" in r.stdout


def test_state_file_symlink_not_followed(procs, state_dir, tmp_path):
    p = sleeper(procs)
    target = tmp_path / "victim"
    target.write_text("precious\n")
    os.symlink(target, _state_file(state_dir, "sl"))
    r = run(["-p", p.pid, "--key-prefix", "sl"], state=state_dir)
    assert "symlink" in r.stderr
    assert target.read_text() == "precious\n"
    assert not os.path.islink(_state_file(state_dir, "sl"))


def test_key_prefix_mackerel_names(procs, state_dir):
    # letters, digits, - and _, with . between parts: what Mackerel accepts
    p = sleeper(procs)
    r = run(["-p", p.pid, "--key-prefix", "my-app_1.db"], state=state_dir)
    assert "process-status.mem_my-app_1.db.used" in parse(r.stdout)[0]
    assert os.listdir(state_dir) == ["my-app_1.db"]


def test_default_state_dir_created_private(procs, tmp_path):
    p = sleeper(procs)
    env = {k: v for k, v in os.environ.items()
           if k not in ("XDG_RUNTIME_DIR", "PROCESS_STATUS_STATE_DIR")}
    env["TMPDIR"] = str(tmp_path)
    run(["-p", p.pid, "--key-prefix", "dd"], env=env)
    d = tmp_path / ("mackerel-plugin-linux-process-status-%d" % os.geteuid())
    st = os.lstat(d)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
    assert (d / "dd").exists()
    # XDG_RUNTIME_DIR wins when set
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    run(["-p", p.pid, "--key-prefix", "dd"], env=dict(env, XDG_RUNTIME_DIR=str(xdg)))
    assert (xdg / "mackerel-plugin-linux-process-status" / "dd").exists()
    # ... unless it belongs to someone else (sudo keeps the user's XDG_RUNTIME_DIR)
    root = os.geteuid() == 0
    if root:
        other = tmp_path / "other-xdg"
        other.mkdir(mode=0o700)
        os.chown(other, 65534, 65534)
        run(["-p", p.pid, "--key-prefix", "dd2"], env=dict(env, XDG_RUNTIME_DIR=str(other)))
        assert (d / "dd2").exists() and not os.listdir(other)
    # a loose, foreign or symlinked default directory is not used: the plugin says so
    # and keeps its state in a private directory under $HOME instead
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    env["HOME"] = str(home)
    fb = home / ".cache" / "mackerel-plugin-linux-process-status"
    os.chmod(d, 0o777)
    r = run(["-p", p.pid, "--key-prefix", "dd"], env=env)
    assert "mode 0777" in r.stderr and str(fb) in r.stderr
    assert "mem_dd.used" in r.stdout and (fb / "dd").exists()
    os.chmod(d, 0o700)
    shutil.rmtree(d)
    os.symlink(xdg, d)
    r = run(["-p", p.pid, "--key-prefix", "dd"], env=env)
    assert "symlink" in r.stderr and "mem_dd.used" in r.stdout
    assert stat.S_IMODE(os.lstat(fb).st_mode) == 0o700


def test_foreign_default_state_dir_falls_back_to_private_dir(procs, tmp_path, request):
    # Another local user pre-creates the predictable directory under a world-writable
    # TMPDIR: the plugin must still report, from a private directory of its own.
    need("setpriv")
    if os.geteuid() != 0:
        pytest.skip("needs root to create a directory as another user")
    p = sleeper(procs)
    base = tempfile.mkdtemp(prefix="opskit-ps-squat-", dir="/tmp")
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    os.chmod(base, 0o1777)
    squat = os.path.join(base, "mackerel-plugin-linux-process-status-0")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "mkdir", "-m", "0700", squat], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert os.stat(squat).st_uid == 65534
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items()
           if k not in ("XDG_RUNTIME_DIR", "PROCESS_STATUS_STATE_DIR",
                        "MACKEREL_AGENT_PLUGIN_META")}
    env.update(TMPDIR=base, HOME=str(home))
    r = run(["-p", p.pid, "--key-prefix", "sq"], env=env)
    fb = home / ".cache" / "mackerel-plugin-linux-process-status"
    assert "Notice: state directory %s is owned by uid 65534" % squat in r.stderr
    assert "using %s instead" % fb in r.stderr
    names = parse(r.stdout)[0]
    assert "process-status.fds_sq.count" in names and "process-status.mem_sq.used" in names
    st = os.lstat(fb)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_uid == 0 and (fb / "sq").exists()
    assert os.listdir(squat) == []
    time.sleep(0.2)
    r = run(["-p", p.pid, "--key-prefix", "sq"], env=env)
    assert "process-status.cpu_sq.percentage" in parse(r.stdout)[0]
    # no usable directory at all (an explicit --state-dir that is foreign): still the
    # stateless lines, with a Notice
    sd = os.path.join(base, "explicit")
    os.mkdir(sd, 0o700)
    os.chown(sd, 65534, 65534)
    r = run(["-p", p.pid, "--key-prefix", "sq", "--state-dir", sd], env=env)
    assert "owned by uid 65534" in r.stderr and "no cpu" in r.stderr
    names = parse(r.stdout)[0]
    assert names == ["process-status." + n.format(k="sq") for n in BASE_NAMES
                     if not n.startswith("cpu")]


def test_concurrent_runs_keep_state_consistent(procs, state_dir):
    p = busy(procs)
    args = [BIN, "-p", str(p.pid), "--key-prefix", "conc"]
    env = dict(os.environ, PROCESS_STATUS_STATE_DIR=str(state_dir))
    for _ in range(3):
        ps = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for _ in range(16)]
        for x in ps:
            out, err = x.communicate(timeout=30)
            assert x.returncode == 0, err
            assert "unusable" not in err and "corrupt" not in err
            parse(out)
    assert os.listdir(state_dir) == ["conc"]
    time.sleep(0.2)
    r = run(["-p", p.pid, "--key-prefix", "conc"], state=state_dir)
    assert r.stderr == "" and "cpu_conc" in r.stdout


# ---------------------------------------------------------------- unreadable /proc

def test_unprivileged_user_gets_fds_and_io_notices(procs, request):
    need("setpriv")
    if os.geteuid() != 0:
        pytest.skip("needs root to run the plugin as another user")
    p = sleeper(procs)
    base = tempfile.mkdtemp(prefix="opskit-ps-nobody-", dir="/tmp")
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    os.chmod(base, 0o755)
    sd = os.path.join(base, "state")
    os.mkdir(sd, 0o700)
    os.chown(sd, 65534, 65534)
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", BIN,
           "-p", str(p.pid), "--key-prefix", "nb", "--extended", "--state-dir", str(sd)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if r.returncode in (126, 127) or r.stderr.startswith("setpriv:"):
        pytest.skip("the build directory is not executable by nobody: %s" % r.stderr.strip())
    assert r.returncode == 0, r.stderr
    assert "Notice: Could not get fds: /proc/%d/fd: Permission denied" % p.pid in r.stderr
    assert "Notice: Could not get io" in r.stderr
    names = parse(r.stdout)[0]
    assert not any(".fds_" in n for n in names)
    assert "process-status.mem_nb.used" in names


def test_malformed_or_missing_proc_files_exit_1(procs, state_dir, tmp_path):
    p = sleeper(procs)
    cases = [
        (dict(stat_text="%d (sleep) S garbage\n" % p.pid), "malformed"),
        (dict(drop=("/meminfo",)), "meminfo"),
        (dict(drop=("/stat",)), "cannot read %s/proc/stat" % "{root}"),
        (dict(drop=("stat",)), "process %d does not exist" % p.pid),
        (dict(drop=("status",)), "/status"),
    ]
    for i, (kw, msg) in enumerate(cases):
        sub = tmp_path / ("c%d" % i)
        sub.mkdir()
        root = fake_proc(sub, p.pid, **kw)
        r = run(["-p", p.pid, "--key-prefix", "mf%d" % i], state=state_dir,
                env_extra={"PROCESS_STATUS_PROC_ROOT": str(root)}, check=False)
        msg = msg.replace("{root}/proc", str(root))
        assert r.returncode == 1 and msg in r.stderr, (kw, r.stderr)
        assert r.stdout == ""
    # an unreadable limits file is the fds notice, as in the original: go on
    sub = tmp_path / "lim"
    sub.mkdir()
    root = fake_proc(sub, p.pid, drop=("limits",))
    r = run(["-p", p.pid, "--key-prefix", "lim"], state=state_dir,
            env_extra={"PROCESS_STATUS_PROC_ROOT": str(root)})
    assert "Notice: Could not get limits" in r.stderr
    assert "mem_lim.used" in r.stdout and "fds_lim" not in r.stdout
