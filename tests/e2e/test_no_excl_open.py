"""End-to-end tests for open_no_excl.so and the no_excl_open wrapper against
Debian's real logrotate.

The race (the app recreates its log between logrotate's rename and its
create) is made deterministic by a test-only LD_PRELOAD helper,
build/tests/helpers/nxo_rename_hook.so: right after every rename(2) of
app.log it recreates app.log (mode 0644) and writes one unique line to it and
to a ledger file, exactly what an app that opens/writes/closes per line does
when it wins the race.
"""
import os
import re
import shutil
import stat
import subprocess
import textwrap

import pytest

from conftest import binpath, need

LOGROTATE = shutil.which("logrotate") or "/usr/sbin/logrotate"
SHIM = binpath("open_no_excl.so")
WRAPPER = binpath("no_excl_open")
HOOK = binpath("tests/helpers/nxo_rename_hook.so")
PY = "/usr/bin/python3"
# the triplet no_excl_open was built with (packaging/module.mk: $(CC) -print-multiarch)
MULTIARCH = subprocess.run(["cc", "-print-multiarch"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, universal_newlines=True).stdout.strip()


@pytest.fixture(autouse=True)
def _built():
    for f in (SHIM, WRAPPER, HOOK):
        assert os.path.exists(f), "%s is not built (run make)" % f
    need(LOGROTATE)


def base_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "NO_EXCL_OPEN_PATHS", "NO_EXCL_OPEN_DEBUG",
                        "NO_EXCL_OPEN_SHIM") and not k.startswith("NXO_HOOK")}
    # the wrapper may be an ASan build; the hook preloaded into it comes
    # before libasan, which ASan would otherwise refuse
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")
    env.update(extra)
    return env


class Rotation:
    """A log directory with app.log, a logrotate rule and the app's ledger."""

    def __init__(self, root, extra_rule=""):
        self.dir = os.path.join(str(root), "logs")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.log = os.path.join(self.dir, "app.log")
        self.ledger = os.path.join(str(root), "ledger.txt")
        self.post = os.path.join(str(root), "postrotate.txt")
        self.postenv = os.path.join(str(root), "postrotate.env")
        self.state = os.path.join(str(root), "state")
        self.conf = os.path.join(str(root), "logrotate.conf")
        self.n = 0
        with open(self.conf, "w") as f:
            f.write(textwrap.dedent("""\
                %s {
                    create 0640
                    rotate 9
                    %s
                    postrotate
                        echo "postrotate $1" >> %s
                        env > %s
                    endscript
                }
                """) % (self.log, extra_rule, self.post, self.postenv))
        os.chmod(self.conf, 0o644)
        self.app_write(3)

    def app_write(self, count):
        """The app appends lines the way it always does (open/append/close)."""
        for _ in range(count):
            self.n += 1
            line = "app line normal-%d\n" % self.n
            with open(self.log, "a") as f:
                f.write(line)
            with open(self.ledger, "a") as f:
                f.write(line)

    def run(self, preload=(), wrapper_args=None, times=None, extra_env=None, hook=True):
        env = base_env(NXO_HOOK_PATH=self.log, NXO_HOOK_LEDGER=self.ledger)
        if times is not None:
            env["NXO_HOOK_TIMES"] = str(times)
        libs = ([HOOK] if hook else []) + list(preload)
        if libs:
            env["LD_PRELOAD"] = " ".join(libs)
        env.update(extra_env or {})
        cmd = [LOGROTATE, "-f", "-s", self.state, self.conf]
        if wrapper_args is not None:
            cmd = [WRAPPER] + wrapper_args + ["--"] + cmd
        return subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=120)

    def files(self):
        return sorted(os.listdir(self.dir))

    def backups(self):
        return [f for f in self.files() if f.endswith(".backup")]

    def ledger_lines(self):
        with open(self.ledger) as f:
            return f.read().splitlines()

    def lines_in(self, names):
        out = []
        for n in names:
            with open(os.path.join(self.dir, n)) as f:
                out.extend(f.read().splitlines())
        return out

    def post_ran(self):
        return os.path.exists(self.post)


# ---- the failure without the shim, made deterministic ----

def test_without_shim_logrotate_fails_with_file_exists(tmp_path):
    r = Rotation(tmp_path)
    p = r.run()
    assert p.returncode == 1, p.stderr
    assert "error creating output file %s: File exists" % r.log in p.stderr
    assert r.backups(), r.files()
    assert not r.post_ran(), "postrotate must be skipped on failure"
    # the second .backup rename in the same hour overwrote the first: a line is gone
    lost = set(r.ledger_lines()) - set(r.lines_in(r.files()))
    assert len(lost) == 1 and "recreated-after-rename-1 " in lost.pop()


def test_without_shim_app_lines_moved_to_backup(tmp_path):
    r = Rotation(tmp_path)
    p = r.run(times=1)
    assert p.returncode == 0, p.stderr
    assert "already exists, renaming to" in p.stderr
    backups = r.backups()
    assert len(backups) == 1, r.files()
    moved = r.lines_in(backups)
    assert moved and all("recreated-after-rename" in l for l in moved)
    # those lines are not where anyone looks for them
    assert not set(moved) & set(r.lines_in(["app.log", "app.log.1"]))


# ---- with the shim ----

@pytest.mark.parametrize("how", ["LD_PRELOAD", "wrapper"])
def test_with_shim_logrotate_adopts_recreated_file(tmp_path, how):
    r = Rotation(tmp_path)
    for rnd in range(1, 4):
        if how == "wrapper":
            p = r.run(wrapper_args=[])
        else:
            p = r.run(preload=[SHIM])
        assert p.returncode == 0, p.stderr
        assert "File exists" not in p.stderr and "already exists" not in p.stderr, p.stderr
        assert r.backups() == [], r.files()
        with open(r.post) as f:
            assert f.read().splitlines() == ["postrotate %s" % r.log] * rnd
        st = os.stat(r.log)
        assert stat.S_IMODE(st.st_mode) == 0o640
        # the app's line written right after the rename is in the new file
        adopted = r.lines_in(["app.log"])
        assert len(adopted) == 1 and re.fullmatch(
            r"app line recreated-after-rename-1 pid-\d+", adopted[0]), adopted
        r.app_write(5)
    # nothing the app wrote was lost or moved aside, nothing duplicated
    rotated = ["app.log"] + ["app.log.%d" % i for i in range(1, 4)]
    assert sorted(r.files()) == sorted(rotated)
    everything = r.lines_in(rotated)
    ledger = r.ledger_lines()
    assert len(ledger) == 3 + 3 + 3 * 5
    assert sorted(everything) == sorted(ledger)


def test_children_do_not_inherit_ld_preload(tmp_path):
    r = Rotation(tmp_path)
    # the shim alone: LD_PRELOAD is gone for postrotate, as with the original
    p = r.run(preload=[SHIM], hook=False)
    assert p.returncode == 0, p.stderr
    with open(r.postenv) as f:
        env = f.read()
    assert "open_no_excl" not in env
    assert not re.search(r"^LD_PRELOAD=", env, re.M), env
    # another preloaded library (the test hook) stays; only the shim goes
    p = r.run(preload=[SHIM])
    assert p.returncode == 0, p.stderr
    with open(r.postenv) as f:
        env = f.read()
    assert "open_no_excl" not in env
    assert re.findall(r"^LD_PRELOAD=.*$", env, re.M) == ["LD_PRELOAD=%s" % HOOK]


def test_children_do_not_inherit_a_long_ld_preload(tmp_path):
    """Beyond the shim's 8 KiB buffer too: many preloads (names of libraries
    that are not there only make ld.so warn) and the shim last."""
    missing = " ".join(str(tmp_path / ("absent%03d.so" % i)) for i in range(300))
    env = base_env(LD_PRELOAD="%s %s" % (missing, SHIM))
    out = subprocess.run(["/bin/sh", "-c", "env"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, universal_newlines=True, timeout=30,
                         check=True).stdout
    assert len(missing) > 8192
    assert "LD_PRELOAD=%s\n" % missing in out
    assert "open_no_excl" not in out


def test_children_keep_other_preloads(tmp_path):
    other = str(tmp_path / "other_preload.so")
    shutil.copy(HOOK, other)  # inert without NXO_HOOK_PATH
    env = base_env(LD_PRELOAD="%s %s" % (other, SHIM))
    out = subprocess.run(["/bin/sh", "-c", "env"], env=env, stdout=subprocess.PIPE,
                         universal_newlines=True, timeout=30, check=True).stdout
    assert "LD_PRELOAD=%s\n" % other in out
    env = base_env(LD_PRELOAD="%s:%s" % (SHIM, other))
    out = subprocess.run(["/bin/sh", "-c", "env"], env=env, stdout=subprocess.PIPE,
                         universal_newlines=True, timeout=30, check=True).stdout
    assert "LD_PRELOAD=%s\n" % other in out


# ---- every entry point through a real LD_PRELOAD ----

ENTRY_POINT_SCRIPT = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
d = sys.argv[1]
dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
path = os.path.join(d, "exists.log").encode()
fl = os.O_CREAT | os.O_RDWR | os.O_EXCL
calls = {
    "open": lambda: libc.open(path, fl, 0o600),
    "open64": lambda: libc.open64(path, fl, 0o600),
    "openat": lambda: libc.openat(dfd, b"exists.log", fl, 0o600),
    "openat64": lambda: libc.openat64(dfd, b"exists.log", fl, 0o600),
    "os.open": lambda: os.open(path, fl, 0o600),
    "os.open+dir_fd": lambda: os.open("exists.log", fl, 0o600, dir_fd=dfd),
}
for name, f in calls.items():
    try:
        fd = f()
        err = ctypes.get_errno() if fd < 0 else 0
    except OSError as e:
        fd, err = -1, e.errno
    if fd >= 0:
        os.close(fd)
    print(name, "ok" if fd >= 0 else os.strerror(err))
"""


def test_each_entry_point_through_real_preload(tmp_path):
    (tmp_path / "exists.log").write_text("x\n")
    cmd = [PY, "-c", ENTRY_POINT_SCRIPT, str(tmp_path)]
    without = subprocess.run(cmd, env=base_env(), stdout=subprocess.PIPE,
                             universal_newlines=True, timeout=60, check=True).stdout
    with_shim = subprocess.run(cmd, env=base_env(LD_PRELOAD=SHIM), stdout=subprocess.PIPE,
                               universal_newlines=True, timeout=60, check=True).stdout
    names = ["open", "open64", "openat", "openat64", "os.open", "os.open+dir_fd"]
    assert without.splitlines() == ["%s File exists" % n for n in names]
    assert with_shim.splitlines() == ["%s ok" % n for n in names]
    assert (tmp_path / "exists.log").read_text() == "x\n"


# ---- NO_EXCL_OPEN_PATHS and NO_EXCL_OPEN_DEBUG with logrotate ----

def test_paths_scope(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = Rotation(tmp_path)
    # a scope that does not cover the log: the shim leaves it alone
    p = r.run(wrapper_args=["--paths", str(elsewhere)])
    assert p.returncode == 1 and "File exists" in p.stderr, p.stderr
    # r.dir + "foo" must not count as inside r.dir
    os.makedirs(r.dir + "foo")
    for b in r.backups():
        os.unlink(os.path.join(r.dir, b))
    p = r.run(preload=[SHIM], extra_env={"NO_EXCL_OPEN_PATHS": r.dir + "foo"})
    assert p.returncode == 1 and "File exists" in p.stderr, p.stderr
    # covering it (relative entry, resolved against the cwd) works
    for b in r.backups():
        os.unlink(os.path.join(r.dir, b))
    os.unlink(r.log)
    r.app_write(1)
    env = base_env(NXO_HOOK_PATH=r.log, NXO_HOOK_LEDGER=r.ledger, NO_EXCL_OPEN_DEBUG="2")
    p = subprocess.run([WRAPPER, "-p", "/nonexistent", "--paths=logs", LOGROTATE, "-f", "-s",
                        r.state, r.conf], env=dict(env, LD_PRELOAD=HOOK), cwd=str(tmp_path),
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert r.backups() == []
    assert 'open("%s", O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW, 0600): O_EXCL dropped = ' % r.log \
        in p.stderr
    # the state file lives outside the scope: its O_EXCL is kept (debug level 2 says so)
    assert 'open("%s.tmp", O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW, 0600): ' \
        'outside NO_EXCL_OPEN_PATHS, O_EXCL kept = ' % r.state in p.stderr


def test_debug_lines(tmp_path):
    r = Rotation(tmp_path)
    p = r.run(preload=[SHIM], extra_env={"NO_EXCL_OPEN_DEBUG": "1"})
    assert p.returncode == 0, p.stderr
    lines = [l for l in p.stderr.splitlines() if l.startswith("no_excl_open: ")]
    assert re.fullmatch(r'no_excl_open: open\("%s", O_RDWR\|O_CREAT\|O_EXCL\|O_NOFOLLOW, 0600\): '
                        r'O_EXCL dropped = \d+' % re.escape(r.log), lines[0]), lines
    # one line per rewritten open: the log once, and logrotate 3.21's own state.tmp
    assert sum('"%s"' % r.log in l for l in lines) == 1, lines
    assert all('"%s"' % r.log in l or '"%s.tmp"' % r.state in l for l in lines), lines
    # off by default
    p = r.run(preload=[SHIM])
    assert p.returncode == 0
    assert "no_excl_open" not in p.stderr
    # the wrapper's --debug
    p = r.run(wrapper_args=["--debug"])
    assert p.returncode == 0, p.stderr
    assert "no_excl_open: exec %s with LD_PRELOAD=%s %s" % (LOGROTATE, HOOK, os.path.realpath(
        SHIM)) in p.stderr
    assert 'open("%s", O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW, 0600): O_EXCL dropped' % r.log \
        in p.stderr


# ---- the wrapper ----

def run_wrapper(args, wrapper=WRAPPER, **kw):
    kw.setdefault("env", base_env())
    return subprocess.run([wrapper] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60, **kw)


def test_wrapper_missing_shim(tmp_path):
    lonely = tmp_path / "bin" / "no_excl_open"
    lonely.parent.mkdir()
    shutil.copy(WRAPPER, str(lonely))
    marker = tmp_path / "ran"
    p = run_wrapper(["--", "touch", str(marker)], wrapper=str(lonely))
    assert p.returncode == 1
    err = p.stderr.strip().splitlines()
    assert len(err) == 1, p.stderr
    d = lonely.parent
    looked = ("%s/open_no_excl.so, %s/../lib/open_no_excl.so and %s/../lib/%s/open_no_excl.so"
              % (d, d, d, MULTIARCH) if MULTIARCH else
              "%s/open_no_excl.so and %s/../lib/open_no_excl.so" % (d, d))
    assert err[0].startswith("no_excl_open: cannot find open_no_excl.so (looked for %s)"
                             % looked), err[0]
    assert "NO_EXCL_OPEN_SHIM" in err[0]
    assert not marker.exists()
    # an explicit location that is wrong is an error too, naming it
    p = run_wrapper(["--", "touch", str(marker)], wrapper=str(lonely),
                    env=base_env(NO_EXCL_OPEN_SHIM="/nonexistent/open_no_excl.so"))
    assert p.returncode == 1
    assert p.stderr == ("no_excl_open: shim not found: /nonexistent/open_no_excl.so "
                        "(given by NO_EXCL_OPEN_SHIM)\n")
    # a file that is not a loadable shim: refused, not silently ignored by ld.so
    bogus = tmp_path / "open_no_excl.so"
    bogus.write_text("not an ELF file\n")
    p = run_wrapper(["--shim", str(bogus), "--", "touch", str(marker)])
    assert p.returncode == 1
    assert p.stderr.startswith("no_excl_open: cannot load shim: ")
    assert not marker.exists()
    # a library that loads but is some other one (its open is libc's)
    other = "/lib/%s/libm.so.6" % MULTIARCH if MULTIARCH else "/lib/x86_64-linux-gnu/libm.so.6"
    if os.path.exists(other):
        p = run_wrapper(["--shim", other, "--", "touch", str(marker)])
        assert p.returncode == 1
        assert p.stderr == ("no_excl_open: %s is not open_no_excl.so (it defines no "
                            "open/openat of its own)\n" % os.path.realpath(other)), p.stderr
        assert not marker.exists()


def test_wrapper_finds_shim_in_prefix_lib(tmp_path):
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "lib").mkdir()
    shutil.copy(WRAPPER, str(prefix / "bin" / "no_excl_open"))
    shutil.copy(SHIM, str(prefix / "lib" / "open_no_excl.so"))
    (tmp_path / "exists.log").write_text("x\n")
    p = run_wrapper(["--debug", PY, "-c", ENTRY_POINT_SCRIPT, str(tmp_path)],
                    wrapper=str(prefix / "bin" / "no_excl_open"))
    assert p.returncode == 0, p.stderr
    assert "LD_PRELOAD=%s/lib/open_no_excl.so" % prefix in p.stderr
    assert all(l.endswith(" ok") for l in p.stdout.splitlines()), p.stdout
    # and next to itself (the build directory layout)
    p = run_wrapper([PY, "-c", ENTRY_POINT_SCRIPT, str(tmp_path)])
    assert p.returncode == 0, p.stderr
    assert all(l.endswith(" ok") for l in p.stdout.splitlines()), p.stdout


def test_wrapper_finds_shim_in_multiarch_lib(tmp_path):
    # the Debian layout: /usr/bin/no_excl_open finds /usr/lib/<triplet>/open_no_excl.so
    if not MULTIARCH:
        pytest.skip("the compiler reports no multiarch triplet (cc -print-multiarch)")
    usr = tmp_path / "usr"
    (usr / "bin").mkdir(parents=True)
    (usr / "lib" / MULTIARCH).mkdir(parents=True)
    shutil.copy(WRAPPER, str(usr / "bin" / "no_excl_open"))
    shutil.copy(SHIM, str(usr / "lib" / MULTIARCH / "open_no_excl.so"))
    (tmp_path / "exists.log").write_text("x\n")
    p = run_wrapper(["--debug", PY, "-c", ENTRY_POINT_SCRIPT, str(tmp_path)],
                    wrapper=str(usr / "bin" / "no_excl_open"))
    assert p.returncode == 0, p.stderr
    assert "LD_PRELOAD=%s/lib/%s/open_no_excl.so" % (usr, MULTIARCH) in p.stderr
    assert all(l.endswith(" ok") for l in p.stdout.splitlines()), p.stdout
    # PREFIX/lib still wins over the multiarch directory (the /usr/local layout)
    shutil.copy(SHIM, str(usr / "lib" / "open_no_excl.so"))
    p = run_wrapper(["--debug", "true"], wrapper=str(usr / "bin" / "no_excl_open"))
    assert p.returncode == 0, p.stderr
    assert "LD_PRELOAD=%s/lib/open_no_excl.so " % usr in p.stderr


def test_wrapper_usage_and_exit_codes(tmp_path):
    p = run_wrapper(["--help"])
    assert p.returncode == 0 and p.stdout.startswith("Usage: no_excl_open [OPTIONS]")
    assert "--paths" in p.stdout and "NO_EXCL_OPEN_SHIM" in p.stdout
    p = run_wrapper(["-v"])
    assert p.returncode == 0 and re.fullmatch(r"no_excl_open version \S+\n", p.stdout)
    p = run_wrapper(["--bogus", "true"])
    assert p.returncode == 1
    assert p.stderr == "no_excl_open: unknown flag: --bogus (try --help)\n"
    p = run_wrapper(["--paths"])
    assert p.returncode == 1 and "flag needs an argument: --paths" in p.stderr
    p = run_wrapper(["--paths=", "true"])
    assert p.returncode == 1
    assert p.stderr == 'no_excl_open: invalid value "" for --paths: no directory given\n'
    p = run_wrapper([])
    assert p.returncode == 1 and "missing COMMAND" in p.stderr
    p = run_wrapper(["--", "/nonexistent/cmd"])
    assert p.returncode == 127
    assert p.stderr == "no_excl_open: /nonexistent/cmd: No such file or directory\n"
    notexec = tmp_path / "notexec"
    notexec.write_text("#!/bin/sh\n")
    p = run_wrapper([str(notexec)])
    assert p.returncode == 126 and "Permission denied" in p.stderr
    # options end at the command: its own flags are its own
    p = run_wrapper(["/bin/echo", "-d", "--paths", "x"])
    assert p.returncode == 0 and p.stdout == "-d --paths x\n"
    # the command's exit status is passed through
    p = run_wrapper(["-d", "--", "/bin/sh", "-c", "exit 7"])
    assert p.returncode == 7
    # environment as documented
    p = run_wrapper(["-d", "-p", "/a", "--paths=/b", "/usr/bin/env"])
    assert p.returncode == 0
    assert "NO_EXCL_OPEN_PATHS=/a:/b\n" in p.stdout
    assert "NO_EXCL_OPEN_DEBUG=1\n" in p.stdout
    assert "LD_PRELOAD" not in p.stdout  # the shim took itself out again
