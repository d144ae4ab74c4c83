"""Man pages: every program has one, it formats without roff warnings, and its
OPTIONS section and the program's --help name the same flags.

Flags are read from the *flag column* of --help (lines indented a little that
start with a dash: "  -v, --version   Show version", "  -listen ADDR") plus
"(also -v)" aliases, so a mention in a description such as "like pgrep -n"
is not taken for one of ours. In the man page they are read from the OPTIONS
section's item tags (the line after .TP, the first argument of .IP); flags
named in the descriptions there must exist too (a stale reference to a renamed
flag is a discrepancy), except the few listed in FOREIGN, which belong to
other programs.
"""
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, binpath

# program -> man page (relative to the repository root)
PAGES = {
    "sabo": "sabo/sabo.1",
    "relaxlogs": "relaxlogs/relaxlogs.1",
    "wsgate-server": "wsgate/wsgate-server.1",
    "wsgate-client": "wsgate/wsgate-client.1",
    "motarei": "motarei/motarei.1",
    "mackerel-plugin-linux-process-status":
        "process-status/mackerel-plugin-linux-process-status.1",
    "no_excl_open": "no_excl_open/no_excl_open.1",
    "start_server": "server-starter/start_server.1",
}

# (program, flag) named in an OPTIONS description that is another program's.
FOREIGN = {
    ("mackerel-plugin-linux-process-status", "-n"): "pgrep -n, the newest match",
    ("mackerel-plugin-linux-process-status", "-f"): "pgrep -f, match the full command line",
    ("mackerel-plugin-linux-process-status", "-o"): "pgrep -o, the oldest match",
    ("mackerel-plugin-linux-process-status", "-c"): "sh -c running the plugin",
    ("no_excl_open", "-f"): "logrotate -f, passed through to the command",
    ("wsgate-client", "-o"): "ssh -o ProxyCommand=...",
}

# Placeholders in "options are spelled --name=value or --name value".
PLACEHOLDERS = {"--name", "-name", "--opt", "-opt", "--flag", "-flag"}

# A dash after "[" is a character class ([-a-z]), after "=" or "/" a value.
FLAG_RE = re.compile(r"(?<![\w/.\-=\[])--?[A-Za-z][A-Za-z0-9_-]*")


def flags_in(text):
    return {m.group(0).rstrip("-_") for m in FLAG_RE.finditer(text)}


# --- --help ----------------------------------------------------------------

def help_text(prog):
    exe = binpath(prog)
    if not os.access(exe, os.X_OK):
        pytest.skip("%s is not built (make builds it)" % exe)
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, "%s --help exited %d: %s" % (prog, r.returncode, r.stderr)
    return r.stdout


def help_flags(text):
    """Flags defined by --help: the flag column of each option line."""
    out = set()
    for line in text.splitlines():
        m = re.match(r"^[ \t]{1,8}(-\S.*)$", line)
        if m:
            column = re.split(r"\s{2,}|\t", m.group(1).rstrip())[0]
            out |= flags_in(column)
        for alias in re.findall(r"\(also ((?:--?[A-Za-z][\w-]*(?:, )?)+)\)", line):
            out |= flags_in(alias)
    return out


# --- roff -------------------------------------------------------------------

ESCAPES = {r"\(dq": '"', r"\(aq": "'", r"\(em": "--", r"\(en": "-", r"\(bu": "*",
           r"\(mu": "x", r"\(co": "(c)", r"\e": "\\", r"\&": "", r"\-": "-",
           r"\ ": " ", r"\~": " ", r"\|": "", r"\^": "", r"\0": " "}
JOINED = {".BI", ".BR", ".IB", ".IR", ".RB", ".RI"}


def roff_args(s):
    """Split a macro's arguments like roff: blanks separate, "..." groups."""
    return [a[1:-1] if a.startswith('"') else a
            for a in re.findall(r'"[^"]*"?|\S+', s)]


def roff_plain(line):
    """One source line as plain text: macro fonts joined, escapes resolved."""
    if line.startswith((".", "'")):
        name, _, rest = line.partition(" ")
        args = roff_args(rest)
        if name in JOINED:
            line = "".join(args)
        elif name in {".B", ".I", ".SM", ".SB", ".IP", ".TP"}:
            line = " ".join(args)
        else:
            line = ""
    line = re.sub(r"\\f(\[[^\]]*\]|\(..|.)", "", line)
    line = re.sub(r"\\\*(\(..|\[[^\]]*\]|.)", "", line)
    for k, v in ESCAPES.items():
        line = line.replace(k, v)
    return line


def man_sections(path):
    """{section title: [source lines]} of a man page."""
    secs, cur = {}, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith(".SH"):
                cur = " ".join(roff_args(line[3:].strip()))
                secs[cur] = []
            elif cur is not None:
                secs[cur].append(line)
    return secs


def man_option_flags(path):
    """(flags in item tags, flags in the descriptions) of the OPTIONS section."""
    secs = man_sections(path)
    assert "OPTIONS" in secs, "%s has no OPTIONS section" % path
    tags, prose = set(), set()
    lines = secs["OPTIONS"]
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(".TP"):
            if i + 1 < len(lines):
                tags |= flags_in(roff_plain(lines[i + 1]))
                i += 2
                continue
        elif line.startswith(".IP"):
            args = roff_args(line[3:].strip())
            if args:
                tags |= flags_in(roff_plain(args[0]))
        elif not line.startswith(('.\\"', "'\\\"")):
            prose |= flags_in(roff_plain(line))
        i += 1
    return tags, prose


# --- tests ------------------------------------------------------------------

def test_every_program_has_a_page():
    for prog, page in PAGES.items():
        path = os.path.join(ROOT, page)
        assert os.path.isfile(path), "%s has no man page %s" % (prog, page)
        with open(path, encoding="utf-8") as f:
            head = f.read(400)
        assert re.search(r"^\.TH +\S+ +\d", head, re.M), "%s: no .TH line" % page
        assert re.search(r"^\.SH +\"?NAME", head, re.M), "%s: no NAME section" % page


@pytest.mark.parametrize("prog", sorted(PAGES))
def test_page_source_is_clean(prog):
    """No control characters: a "\\fI" written through a string that ate the
    backslash leaves a form feed, which roff neither warns about nor shows."""
    path = os.path.join(ROOT, PAGES[prog])
    with open(path, "rb") as f:
        data = f.read()
    data.decode("utf-8")
    for n, line in enumerate(data.split(b"\n"), 1):
        bad = [c for c in line if c < 0x20 and c != 0x09 or c == 0x7f]
        assert not bad, "%s:%d: control character(s) %s" % (path, n, [hex(c) for c in bad])
        assert not line.endswith((b" ", b"\t")) or line.startswith(b'.\\"'), \
            "%s:%d: trailing blank (roff keeps it)" % (path, n)


@pytest.mark.parametrize("prog", sorted(PAGES))
def test_page_formats_without_warnings(prog):
    if shutil.which("man") is None:
        pytest.skip("man is not installed (Debian package man-db; make deps installs it)")
    if shutil.which("groff") is None and shutil.which("nroff") is None:
        pytest.skip("groff is not installed (Debian package groff-base)")
    path = os.path.join(ROOT, PAGES[prog])
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MAN_KEEP_STDERR="1")
    env.pop("MANPAGER", None)
    env.pop("PAGER", None)
    r = subprocess.run(["man", "--warnings", "-l", path], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 0, "man -l %s exited %d: %s" % (path, r.returncode, r.stderr)
    assert r.stderr.strip() == "", "roff warnings for %s:\n%s" % (path, r.stderr)
    # the NAME line renders and names the program
    assert prog in r.stdout.split("DESCRIPTION")[0], r.stdout[:400]
    # a mangled font escape (IwordP left behind by a lost backslash) is not caught by roff
    bad = re.findall(r"\bI[a-z]+P\b", r.stdout)
    assert not bad, "%s: lost font escapes in the rendered page: %s" % (path, bad)


@pytest.mark.parametrize("prog", sorted(PAGES))
def test_page_and_help_name_the_same_flags(prog):
    path = os.path.join(ROOT, PAGES[prog])
    text = help_text(prog)
    in_help = help_flags(text)
    assert "-h" in in_help or "--help" in in_help, "no help flag parsed from:\n" + text
    tags, prose = man_option_flags(path)

    missing_in_man = sorted(in_help - tags)
    assert not missing_in_man, \
        "%s --help has flags the OPTIONS of %s do not describe: %s" % (
            prog, PAGES[prog], missing_in_man)
    missing_in_help = sorted(tags - in_help)
    assert not missing_in_help, \
        "OPTIONS of %s describe flags %s --help does not have: %s" % (
            PAGES[prog], prog, missing_in_help)
    stale = sorted(f for f in prose - in_help - PLACEHOLDERS if (prog, f) not in FOREIGN)
    assert not stale, \
        "OPTIONS of %s mention flags %s --help does not have: %s" % (
            PAGES[prog], prog, stale)


def help_entries(text):
    """[(flag column, description)] of --help: the description is the rest of
    the line and the more deeply indented lines that follow."""
    entries = []
    for line in text.splitlines():
        m = re.match(r"^[ \t]{1,8}(-\S.*)$", line)
        if m:
            parts = re.split(r"\s{2,}|\t", m.group(1).rstrip(), maxsplit=1)
            entries.append([parts[0], parts[1] if len(parts) > 1 else ""])
        elif entries and re.match(r"^\s{4,}\S", line):
            entries[-1][1] += " " + line.strip()
        else:
            entries and entries.append(["", ""])
    return [(c, d) for c, d in entries if c]


@pytest.mark.parametrize("prog", sorted(PAGES))
def test_duration_flags_are_not_called_seconds(prog):
    """A DURATION flag takes 90s, 1h30m...: its help must not say "in seconds"
    (wsgate-server -jwt-freshness once did)."""
    for column, desc in help_entries(help_text(prog)):
        if "DURATION" in column:
            assert not re.search(r"\bin seconds\b", desc, re.I), \
                "%s --help: %s takes a duration but says %r" % (prog, column, desc)


def test_process_status_page_shows_what_the_plugin_prints():
    """The example output in the page has the plugin's three columns,
    name<TAB>value<TAB>epoch (it once left the epoch out)."""
    prog = "mackerel-plugin-linux-process-status"
    exe = binpath(prog)
    if not os.access(exe, os.X_OK):
        pytest.skip("%s is not built (make builds it)" % exe)
    r = subprocess.run([exe, "-p", str(os.getpid()), "--key-prefix", "KEY"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    printed = [line.split("\t") for line in r.stdout.splitlines()]
    assert printed and all(len(f) == 3 for f in printed), r.stdout
    with open(os.path.join(ROOT, PAGES[prog]), encoding="utf-8") as f:
        shown = [line.rstrip("\n").split("\t") for line in f
                 if line.startswith("process-status.")]
    assert shown, "the page shows no example output"
    for fields in shown:
        assert len(fields) == 3 and re.match(r"^\d{10}$", fields[2]), \
            "example line %r is not name<TAB>value<TAB>epoch" % "\t".join(fields)
    # the same metric names (a first run has no cpu line yet)
    names = {f[0] for f in printed} | {"process-status.cpu_KEY.percentage"}
    assert {f[0] for f in shown} <= names, (shown, names)
