"""Example files a user copies (<program dir>/examples/, plus the older sample
files README links): each one is checked the way its consumer reads it.

- systemd units and drop-ins: `systemd-analyze verify` on a copy whose
  /usr/local/bin/ paths point at $OPSKIT_BUILD (and with our man pages on
  MANPATH, since verify checks Documentation=man:...); always also parsed here:
  the programs every Exec line names exist, the hardening the issue asks for
  is there, and our programs accept the exact flags (the command line is run
  with a help flag appended: flags are parsed, in order, before help wins).
- run scripts: `sh -n`, the programs after `exec` exist, their flags parse.
- the logrotate config: `logrotate -d` on a temporary state file, through
  no_excl_open as the example says, then one real rotation of a copy aimed at
  a temporary directory.
- mackerel-agent.conf: TOML (tomllib), every plugin command is our plugin,
  with flags it accepts and a valid metric key prefix.
"""
import glob
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys

import pytest

from conftest import BUILD, ROOT, binpath

OURS = {"sabo", "relaxlogs", "wsgate-server", "wsgate-client", "motarei",
        "mackerel-plugin-linux-process-status", "no_excl_open", "start_server"}
INSTALL_DIRS = ("/usr/local/bin/", "/usr/bin/")

UNITS = [
    "wsgate/examples/systemd/wsgate-server.service",
    "wsgate/examples/systemd/wsgate-client.service",
    "motarei/examples/systemd/motarei.service",
    "server-starter/examples/systemd/start_server-wsgate.service",
]
DROPINS = {"no_excl_open/logrotate.service.conf": "logrotate.service"}
RUN_SCRIPTS = [
    "relaxlogs/examples/runit/log/run",
    "wsgate/examples/runit/wsgate-server/run",
    "wsgate/examples/runit/wsgate-server/log/run",
    "relaxlogs/log-run",
    "no_excl_open/logrotate.cron",
]
LOGROTATE_CONFS = ["no_excl_open/examples/logrotate.d/app"]
MACKEREL_CONFS = ["process-status/examples/mackerel-agent.conf"]
# paths README links: they must keep working
LEGACY = ["relaxlogs/log-run", "wsgate/sample-server-map.txt",
          "wsgate/sample-client-map.txt", "no_excl_open/logrotate.cron",
          "no_excl_open/logrotate.service.conf"]

HARDENING = ["ProtectSystem", "ProtectHome", "NoNewPrivileges", "PrivateTmp",
             "RestrictAddressFamilies", "CapabilityBoundingSet", "SystemCallFilter"]


def repo(path):
    return os.path.join(ROOT, path)


def need_built(name):
    exe = binpath(name)
    if not os.access(exe, os.X_OK):
        pytest.skip("%s is not built (make builds it)" % exe)
    return exe


# --- systemd unit files ------------------------------------------------------

def parse_unit(path):
    """{section: [(key, value)]}: systemd's syntax (repeated keys kept in
    order, backslash continuation, # and ; comments), not configparser's."""
    sections, cur, pending = {}, None, ""
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if pending:
                if line.lstrip().startswith(("#", ";")):
                    continue
                line = pending + " " + line.strip()
                pending = ""
            elif not line.strip() or line.lstrip().startswith(("#", ";")):
                continue
            if line.endswith("\\"):
                pending = line[:-1].rstrip()
                continue
            m = re.match(r"^\[([^\]]+)\]\s*$", line)
            if m:
                cur = sections.setdefault(m.group(1), [])
                continue
            assert cur is not None, "%s:%d: a setting outside any [section]" % (path, n)
            assert "=" in line, "%s:%d: expected KEY=VALUE: %r" % (path, n, line)
            k, v = line.split("=", 1)
            cur.append((k.strip(), v.strip()))
    assert not pending, "%s: ends in a continuation" % path
    return sections


def unit_values(sections, section, key):
    """Values of a key as systemd applies them: an empty assignment resets."""
    vals = []
    for k, v in sections.get(section, []):
        if k == key:
            vals = [] if v == "" else vals + [v]
    return vals


def specifiers(tmp):
    return {"%d": os.path.join(tmp, "credentials"), "%t": "/run", "%H": socket.gethostname(),
            "%i": "instance", "%n": "unit.service", "%%": "%"}


def exec_argv(value, tmp):
    """An Exec*= value as argv, prefixes (-@+!:) dropped, specifiers expanded."""
    value = value.lstrip("-@+!:")
    spec = specifiers(tmp)
    value = re.sub(r"%[a-zA-Z%]", lambda m: spec.get(m.group(0), m.group(0)), value)
    return shlex.split(value)


def check_program(path, what):
    """An absolute program path in an example: ours must be built, others must
    be where the example says (on Debian 12)."""
    base = os.path.basename(path)
    if base in OURS:
        assert path.startswith(INSTALL_DIRS), "%s: %s is not in %s" % (what, path, INSTALL_DIRS)
        need_built(base)
    else:
        assert os.path.isabs(path), "%s: %s must be an absolute path" % (what, path)
        if not os.path.exists(path):
            pytest.skip("%s: %s is not installed here" % (what, path))


def with_help(argv):
    """argv of one of our programs with its help flag added where its parser
    still reads options: start_server's before `--`, the others' at the end."""
    prog = os.path.basename(argv[0])
    args = argv[1:]
    if prog == "start_server" and "--" in args:
        i = args.index("--")
        return [binpath(prog)] + args[:i] + ["--help"] + args[i:]
    return [binpath(prog)] + args + ["--help" if prog != "wsgate-server" else "-help"]


def check_flags(argv, what):
    """Our program accepts exactly these flags: with a help flag appended it
    prints usage and exits 0; a bad flag or value exits 1 before that."""
    r = subprocess.run(with_help(argv), capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and "sage" in r.stdout, \
        "%s: %s refuses its flags (exit %d): %s" % (what, " ".join(argv), r.returncode,
                                                    r.stderr.strip())


def check_exec_lines(sections, path, tmp):
    """Every Exec*= of the [Service] section: programs exist, our flags parse."""
    n = 0
    for key in ("ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop",
                "ExecStopPost"):
        for value in unit_values(sections, "Service", key):
            argv = exec_argv(value, tmp)
            what = "%s %s=" % (os.path.relpath(path, ROOT), key)
            check_program(argv[0], what)
            base = os.path.basename(argv[0])
            if base in OURS:
                check_flags(argv, what)
                n += 1
            # a program run by ours (start_server -- PROG, no_excl_open -- PROG)
            if "--" in argv:
                inner = argv[argv.index("--") + 1:]
                check_program(inner[0], what + " after --")
                if os.path.basename(inner[0]) in OURS:
                    check_flags(inner, what + " after --")
                    n += 1
    assert n, "%s: no Exec line runs one of our programs" % path
    return n


class Verifier:
    """systemd-analyze verify, or the reason it cannot run here."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.exe = shutil.which("systemd-analyze")
        self.man = os.path.join(tmp, "man")
        os.makedirs(os.path.join(self.man, "man1"), exist_ok=True)
        for page in glob.glob(repo("*/*.[1-8]")):
            sec = page.rsplit(".", 1)[1]
            d = os.path.join(self.man, "man" + sec)
            os.makedirs(d, exist_ok=True)
            shutil.copy(page, d)

    def env(self, unit_path=None):
        # our pages first; the trailing colon keeps the system's after them
        e = dict(os.environ, MANPATH=self.man + ":", SYSTEMD_LOG_COLOR="0")
        if unit_path:
            e["SYSTEMD_UNIT_PATH"] = unit_path + ":"
        return e

    def usable(self):
        if self.exe is None:
            return "systemd-analyze is not installed (Debian package systemd; make deps)"
        probe = os.path.join(self.tmp, "opskit-probe.service")
        with open(probe, "w") as f:
            f.write("[Unit]\nDescription=probe\n[Service]\nExecStart=/bin/true\n")
        r = subprocess.run([self.exe, "verify", probe], capture_output=True, text=True,
                           env=self.env(), timeout=120)
        if r.returncode != 0 or r.stderr.strip():
            return "systemd-analyze verify cannot run here: %s" % (
                r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]
        return None

    def verify(self, unit):
        # verify runs `man` for every Documentation=man:...; without man-db
        # that part is left out (test_systemd_unit checks the pages exist)
        man = [] if shutil.which("man") else ["--man=no"]
        r = subprocess.run([self.exe, "verify"] + man + [unit], capture_output=True, text=True,
                           env=self.env(os.path.dirname(unit)), timeout=120)
        return r


def copy_for_verify(src, dst):
    """The unit with our install paths pointing at the build directory."""
    with open(src, encoding="utf-8") as f:
        text = f.read()
    for d in INSTALL_DIRS:
        text = re.sub(re.escape(d) + r"(%s)\b" % "|".join(map(re.escape, sorted(OURS))),
                      lambda m: os.path.join(BUILD, m.group(1)), text)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "w", encoding="utf-8") as f:
        f.write(text)


@pytest.fixture(scope="module")
def verifier(tmp_path_factory):
    return Verifier(str(tmp_path_factory.mktemp("verify")))


def test_example_files_exist():
    for p in UNITS + list(DROPINS) + RUN_SCRIPTS + LOGROTATE_CONFS + MACKEREL_CONFS + LEGACY:
        assert os.path.isfile(repo(p)), "missing example %s" % p
    for p in RUN_SCRIPTS:
        assert os.access(repo(p), os.X_OK), "%s must be executable (mode 0755)" % p
    # every file under */examples/ is checked by one of the tests here
    listed = set(UNITS + RUN_SCRIPTS + LOGROTATE_CONFS + MACKEREL_CONFS)
    found = {os.path.relpath(p, ROOT) for p in glob.glob(repo("*/examples/**"), recursive=True)
             if os.path.isfile(p)}
    assert not found - listed, "examples no test checks: %s" % sorted(found - listed)


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_unit(unit, verifier, tmp_path):
    path = repo(unit)
    s = parse_unit(path)
    assert unit_values(s, "Unit", "Description"), "%s: no Description=" % unit
    doc = " ".join(unit_values(s, "Unit", "Documentation"))
    pages = re.findall(r"man:([\w.-]+)\((\d)\)", doc)
    assert pages, "%s: Documentation= names no man page" % unit
    for name, sec in pages:
        assert glob.glob(repo("*/%s.%s" % (name, sec))), "%s: no page %s.%s here" % (
            unit, name, sec)
    assert unit_values(s, "Install", "WantedBy"), "%s: no [Install] WantedBy=" % unit
    svc = dict(s["Service"])
    for key in HARDENING:
        assert key in svc, "%s: no %s=" % (unit, key)
    assert svc["ProtectSystem"] == "strict", unit
    assert svc["NoNewPrivileges"] == "yes" and svc["PrivateTmp"] == "yes", unit
    assert svc.get("DynamicUser") == "yes" or "User" in svc, \
        "%s: runs as root (neither DynamicUser=yes nor User=)" % unit
    families = set(svc["RestrictAddressFamilies"].split())
    assert families <= {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}, (unit, families)
    if "motarei" in unit:
        assert "docker" in svc.get("SupplementaryGroups", "").split(), \
            "%s: the Docker socket needs the docker group" % unit
        assert "AF_UNIX" in families
    if "start_server" in unit:
        assert svc.get("Type") == "simple", "%s: start_server stays in the foreground" % unit
        assert svc.get("KillMode") == "mixed", \
            "%s: TERM to start_server alone, SIGKILL to the rest only at the timeout" % unit
        assert unit_values(s, "Service", "ExecReload"), "%s: no ExecReload=" % unit
        start = " ".join(unit_values(s, "Service", "ExecStart"))
        assert "--daemonize" not in start and "--log-file" not in start, unit
    check_exec_lines(s, path, str(tmp_path))

    why = verifier.usable()
    if why:
        pytest.skip(why + " (parsed and checked above instead)")
    copy = os.path.join(str(tmp_path), "units", os.path.basename(unit))
    copy_for_verify(path, copy)
    r = verifier.verify(copy)
    assert r.returncode == 0 and not r.stderr.strip(), \
        "systemd-analyze verify %s (exit %d):\n%s" % (unit, r.returncode, r.stderr)


@pytest.mark.parametrize("dropin", sorted(DROPINS))
def test_systemd_dropin(dropin, verifier, tmp_path):
    path = repo(dropin)
    s = parse_unit(path)
    assert check_exec_lines(s, path, str(tmp_path))
    why = verifier.usable()
    if why:
        pytest.skip(why + " (parsed and checked above instead)")
    unit = DROPINS[dropin]
    d = os.path.join(str(tmp_path), "units")
    os.makedirs(d)
    # Debian's logrotate.service, reduced (its Documentation= pages may be
    # excluded from a slim image; the drop-in is what is checked here)
    with open(os.path.join(d, unit), "w") as f:
        f.write("[Unit]\nDescription=Rotate log files\n[Service]\nType=oneshot\n"
                "ExecStart=/usr/sbin/logrotate /etc/logrotate.conf\n")
    copy_for_verify(path, os.path.join(d, unit + ".d", os.path.basename(dropin)))
    r = verifier.verify(os.path.join(d, unit))
    assert r.returncode == 0 and not r.stderr.strip(), \
        "systemd-analyze verify %s with %s (exit %d):\n%s" % (unit, dropin, r.returncode,
                                                             r.stderr)


# --- run scripts ---------------------------------------------------------------

# wrappers a run script puts before the program, and how many arguments each
# of their options takes (chpst: all but -P -0 -1 -2 -v take one)
WRAPPERS = {"chpst", "setuidgid", "envuidgid", "envdir", "softlimit", "setlock", "nice"}


def script_commands(path):
    """argv lists of the `exec PROG ...` lines (continuations joined);
    `exec 2>&1` and other pure redirections are skipped."""
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"\\\n\s*", " ", f.read())
    cmds = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("exec "):
            continue
        argv = [a for a in shlex.split(line, comments=True)[1:]
                if not re.match(r"^\d*[<>]", a)]
        if argv:
            cmds.append(argv)
    return cmds


def strip_wrappers(argv, what):
    """(wrappers, the program's argv)."""
    wrappers = []
    i = 0
    while i < len(argv) and os.path.basename(argv[i]) in WRAPPERS:
        w = os.path.basename(argv[i])
        wrappers.append(argv[i])
        i += 1
        if w == "chpst":
            while i < len(argv) and argv[i].startswith("-"):
                i += 1 if argv[i] in ("-P", "-0", "-1", "-2", "-v") else 2
        elif w in ("setuidgid", "envuidgid", "envdir", "setlock"):
            i += 1
        else:
            while i < len(argv) and argv[i].startswith("-"):
                i += 2 if len(argv[i]) == 2 else 1
    assert i < len(argv), "%s: wrappers %s run nothing" % (what, wrappers)
    return wrappers, argv[i:]


@pytest.mark.parametrize("script", RUN_SCRIPTS)
def test_run_script(script):
    path = repo(script)
    r = subprocess.run(["sh", "-n", path], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, "sh -n %s: %s" % (script, r.stderr)
    with open(path, encoding="utf-8") as f:
        assert f.readline().startswith("#!/bin/sh"), "%s: not a /bin/sh script" % script
    # the commands run with exec, and anything of ours called by a path
    cmds = script_commands(path)
    with open(path, encoding="utf-8") as f:
        for m in re.finditer(r"(?m)^[^#\n]*?(/usr/(?:local/)?bin/[\w.-]+)", f.read()):
            if os.path.basename(m.group(1)) in OURS:
                need_built(os.path.basename(m.group(1)))
    missing = []
    n = 0
    for argv in cmds:
        wrappers, prog = strip_wrappers(argv, script)
        for w in wrappers:
            if shutil.which(w) is None and not os.path.exists(w):
                missing.append(w)
        base = os.path.basename(prog[0])
        if base in OURS:
            need_built(base)
            check_flags([base] + prog[1:], script)
            n += 1
            if "--" in prog:
                inner = prog[prog.index("--") + 1:]
                assert os.path.isabs(inner[0]) or shutil.which(inner[0]), (script, inner)
        else:
            assert shutil.which(prog[0]) or os.path.exists(prog[0]), \
                "%s: %s is not a program here" % (script, prog[0])
    if not n:
        # no_excl_open/logrotate.cron runs ours through a variable
        with open(path, encoding="utf-8") as f:
            text = f.read()
        named = [p for p in OURS if re.search(r"/bin/%s\b" % re.escape(p), text)]
        assert named, "%s runs none of our programs" % script
    if missing:
        pytest.skip("%s: wrapper(s) %s not installed (Debian runit, daemontools; make deps)" %
                    (script, missing))


# --- logrotate -------------------------------------------------------------------

@pytest.mark.parametrize("conf", LOGROTATE_CONFS)
def test_logrotate_config(conf, tmp_path):
    logrotate = shutil.which("logrotate") or "/usr/sbin/logrotate"
    if not os.path.exists(logrotate):
        pytest.skip("logrotate is not installed (Debian package logrotate; make deps)")
    wrapper = need_built("no_excl_open")
    shim = os.path.join(BUILD, "open_no_excl.so")
    path = repo(conf)
    state = str(tmp_path / "state")
    # as the example's comment says: debug mode, nothing rotated
    r = subprocess.run([wrapper, "--shim", shim, "-p", "/var/log/app", "--",
                        logrotate, "-d", "-s", state, path],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, "logrotate -d %s (exit %d):\n%s%s" % (conf, r.returncode,
                                                                  r.stdout, r.stderr)
    out = r.stdout + r.stderr
    assert not re.search(r"^error:", out, re.M), out
    assert "considering log /var/log/app/" in out, out

    # one real rotation of a copy aimed at a temporary directory
    if os.geteuid() != 0:
        return   # `create 0640 root adm` needs root; the debug run above is the check
    logdir = tmp_path / "log"
    logdir.mkdir(mode=0o755)
    with open(path, encoding="utf-8") as f:
        text = f.read().replace("/var/log/app", str(logdir)).replace("/run/app.pid",
                                                                      str(tmp_path / "pid"))
    copy = tmp_path / "app.conf"
    copy.write_text(text)
    os.chmod(str(copy), 0o644)
    (logdir / "app.log").write_text("line 1\n")
    r = subprocess.run([wrapper, "--shim", shim, "-p", str(logdir), "--",
                        logrotate, "-f", "-s", state, str(copy)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, "logrotate -f (exit %d):\n%s%s" % (r.returncode, r.stdout,
                                                               r.stderr)
    names = sorted(os.listdir(str(logdir)))
    assert "app.log" in names, names
    assert any(re.match(r"^app\.log-\d{8}$", n) for n in names), names
    st = os.stat(str(logdir / "app.log"))
    assert oct(st.st_mode & 0o777) == oct(0o640), oct(st.st_mode)


# --- mackerel-agent.conf --------------------------------------------------------

KEY_RE = re.compile(r"^[-a-zA-Z0-9_]+(\.[-a-zA-Z0-9_]+)*$")


@pytest.mark.parametrize("conf", MACKEREL_CONFS)
def test_mackerel_agent_conf(conf):
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11 (Debian 12's /usr/bin/python3)")
    import tomllib
    with open(repo(conf), "rb") as f:
        cfg = tomllib.load(f)
    metrics = cfg.get("plugin", {}).get("metrics", {})
    assert metrics, "%s: no [plugin.metrics.NAME] section" % conf
    prog = "mackerel-plugin-linux-process-status"
    need_built(prog)
    for name, section in metrics.items():
        assert re.match(r"^[-a-zA-Z0-9_]+$", name), "%s: section name %r" % (conf, name)
        cmd = section["command"]
        argv = shlex.split(cmd) if isinstance(cmd, str) else cmd
        assert all(isinstance(a, str) for a in argv), (name, argv)
        assert os.path.basename(argv[0]) == prog, "%s: %s runs %s" % (conf, name, argv[0])
        assert argv[0].startswith(INSTALL_DIRS) or "/" not in argv[0], argv[0]
        for k, v in section.items():
            assert k in ("command", "timeout_seconds", "custom_identifier",
                         "include_pattern", "exclude_pattern", "env"), \
                "%s: [plugin.metrics.%s] has an unknown key %s" % (conf, name, k)
        if "timeout_seconds" in section:
            assert isinstance(section["timeout_seconds"], int), section
        check_flags([prog] + argv[1:], "%s [plugin.metrics.%s]" % (conf, name))
        if "--key-prefix" in argv:
            key = argv[argv.index("--key-prefix") + 1]
            assert KEY_RE.match(key), "%s: --key-prefix %r is not a metric name part" % (
                conf, key)
