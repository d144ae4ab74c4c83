"""The Debian package (`make deb`) and `make install` / `make uninstall`.

The .deb is built by `make deb` (or taken from $OPSKIT_DEB), unpacked with
`dpkg-deb -x` into a temporary root and checked there: the file list (every
program, the shim in the multiarch lib directory, every man page gzipped, the
open_no_excl.so.8 link, copyright, changelog, examples), the control fields,
lintian, and every program's --version run from the unpacked tree (the shim
through no_excl_open, which must find it in ../lib/<triplet> by itself, and
preloaded into /bin/true). `make install DESTDIR=... PREFIX=...` is checked for
the same layout, and `make uninstall` for leaving no file behind.

What install puts where comes from `make print-install`, so a man page or an
example added later is covered without editing this file; the programs are also
listed here, so one dropped from PROGRAMS by mistake is noticed.
"""
import gzip
import os
import re
import shutil
import subprocess

import pytest

from conftest import BUILD, ROOT

PROGRAMS = ["sabo", "relaxlogs", "wsgate-server", "wsgate-client", "motarei",
            "mackerel-plugin-linux-process-status", "no_excl_open", "start_server"]
SHIM = "open_no_excl.so"
# what dpkg-shlibdeps must find (the libraries the README's dependency table names)
RUNTIME_LIBS = ["libev4", "libssl3", "libjwt0", "libjansson4", "libcurl4",
                "libhttp-parser2.9", "zlib1g", "libc6"]


def version_h():
    with open(os.path.join(ROOT, "lib", "version.h")) as f:
        return re.search(r'#define OPSKIT_VERSION "([^"]+)"', f.read()).group(1)


def make(*args, timeout=600, **kw):
    return subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout, **kw)


def install_layout(prefix):
    """make print-install for PREFIX: {"LIBDIR": "/usr/lib/x86_64-linux-gnu", ...}."""
    r = make("PREFIX=%s" % prefix, "BUILD=%s" % BUILD, "print-install", timeout=60)
    assert r.returncode == 0, r.stderr
    lay = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
    for k in ("PROGRAMS", "MANPAGES", "MANLINKS", "EXAMPLES"):
        lay[k] = lay[k].split()
    return lay


def example_dest(lay, src):
    # dir/examples/a/b -> EXAMPLEDIR/dir/a/b; dir/file -> EXAMPLEDIR/dir/file
    d, rest = src.split("/", 1)
    if rest.startswith("examples/"):
        rest = rest[len("examples/"):]
    return "%s/%s/%s" % (lay["EXAMPLEDIR"], d, rest)


def expected_files(lay, gz):
    """Paths (relative to the root) install or the package must contain."""
    suffix = ".gz" if gz else ""
    files = {lay["BINDIR"] + "/" + p for p in PROGRAMS}
    files.add(lay["LIBDIR"] + "/" + SHIM)
    files |= {lay["BINDIR"] + "/" + p for p in lay["PROGRAMS"] if not p.endswith(".so")}
    for m in lay["MANPAGES"]:
        files.add("%s/man%s/%s%s" % (lay["MANDIR"], m.rsplit(".", 1)[1], os.path.basename(m),
                                     suffix))
    for l in lay["MANLINKS"]:
        files.add("%s/%s%s" % (lay["MANDIR"], l.split("=", 1)[0], suffix))
    files |= {example_dest(lay, e) for e in lay["EXAMPLES"]}
    return {f.lstrip("/") for f in files}


def tree_files(root):
    """Every non-directory (files and symlinks) below root, relative."""
    out = set()
    for d, dirs, names in os.walk(root):
        for n in names + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


def run_version(exe):
    # start_server's --version prints the Server::Starter version, as Perl's
    # does; its --help ends with ours
    flag = "--help" if os.path.basename(exe) == "start_server" else "--version"
    r = subprocess.run([exe, flag], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=30)
    assert r.returncode == 0, "%s --version: exit %d, %s" % (exe, r.returncode, r.stderr)
    assert version_h() in r.stdout + r.stderr, (exe, r.stdout, r.stderr)


def check_shim_found(root, lay):
    """The installed no_excl_open finds the installed shim on its own and runs a command
    with it preloaded; the shim preloads cleanly into /bin/true."""
    wrapper = os.path.join(root, lay["BINDIR"].lstrip("/"), "no_excl_open")
    shim = os.path.realpath(os.path.join(root, lay["LIBDIR"].lstrip("/"), SHIM))
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "NO_EXCL_OPEN_SHIM", "NO_EXCL_OPEN_PATHS")}
    r = subprocess.run([wrapper, "--debug", "--", "true"], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "LD_PRELOAD=%s " % shim in r.stderr, r.stderr
    env["LD_PRELOAD"] = shim
    r = subprocess.run(["/bin/true"], env=env, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr


# ---- the package ----------------------------------------------------------

@pytest.fixture(scope="module")
def deb():
    path = os.environ.get("OPSKIT_DEB")
    if path:
        assert os.path.isfile(path), "OPSKIT_DEB=%s does not exist" % path
        return path
    for tool in ("dpkg-deb", "dpkg-shlibdeps", "strip", "file"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed (make deps installs dpkg-dev, binutils, file)"
                        % tool)
    r = make("deb", timeout=900)
    assert r.returncode == 0, "make deb failed:\n%s\n%s" % (r.stdout[-3000:], r.stderr[-3000:])
    path = r.stdout.strip().splitlines()[-1]
    assert path.endswith(".deb") and os.path.isfile(path), r.stdout
    return path


@pytest.fixture(scope="module")
def unpacked(deb, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("debroot"))
    subprocess.run(["dpkg-deb", "-x", deb, root], check=True, timeout=60)
    return root


def test_package_control_fields(deb):
    def field(name):
        return subprocess.run(["dpkg-deb", "-f", deb, name], stdout=subprocess.PIPE,
                              universal_newlines=True, check=True).stdout.strip()
    assert field("Package") == "opskit"
    assert field("Version").split("-")[0] == version_h()
    arch = subprocess.run(["dpkg", "--print-architecture"], stdout=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout.strip()
    assert field("Architecture") == arch
    assert re.match(r".+ <[^@>]+@[^>]+>$", field("Maintainer")), field("Maintainer")
    assert field("Description").startswith("small")
    deps = {d.strip().split(" ")[0] for d in field("Depends").split(",")}
    missing = [l for l in RUNTIME_LIBS if l not in deps]
    assert not missing, "Depends %s lacks %s" % (field("Depends"), missing)
    # the statically linked process-status plugin carries glibc
    assert field("Built-Using").startswith("glibc (= ")
    # the shim is in an ld.so cache directory
    r = subprocess.run(["dpkg-deb", "--ctrl-tarfile", deb], stdout=subprocess.PIPE, check=True)
    assert b"triggers" in subprocess.run(["tar", "-t"], input=r.stdout,
                                         stdout=subprocess.PIPE, check=True).stdout


def test_package_file_list(unpacked):
    lay = install_layout("/usr")
    assert lay["LIBDIR"] == "/usr/lib/" + lay["MULTIARCH"], lay["LIBDIR"]
    have = tree_files(unpacked)
    docs = {"usr/share/doc/opskit/copyright", "usr/share/doc/opskit/changelog.Debian.gz",
            "usr/share/lintian/overrides/opskit"}
    want = expected_files(lay, gz=True) | docs
    assert not want - have, "missing from the package: %s" % sorted(want - have)
    assert not have - want, "unexpected in the package: %s" % sorted(have - want)
    assert os.path.isdir(os.path.join(unpacked, "usr/share/doc/opskit/examples"))
    for p in PROGRAMS:
        st = os.stat(os.path.join(unpacked, "usr/bin", p))
        assert st.st_mode & 0o777 == 0o755, p
    for m in (f for f in have if f.startswith("usr/share/man/")):
        full = os.path.join(unpacked, m)
        with gzip.open(full) as g:  # a link must resolve to a gzipped page too
            assert g.read(4).startswith(b"."), m


def test_package_man_open_no_excl_so(unpacked):
    if shutil.which("man") is None:
        pytest.skip("man is not installed (make deps installs man-db)")
    mandir = os.path.join(unpacked, "usr/share/man")
    link = os.path.join(mandir, "man8", "open_no_excl.so.8.gz")
    assert os.readlink(link) == "../man1/no_excl_open.1.gz"
    # `man open_no_excl.so` finds it by name (through the link: man-db prints where it
    # leads, and without the link there is no page of that name at all)
    r = subprocess.run(["man", "-M", mandir, "-w", "open_no_excl.so"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert os.path.realpath(r.stdout.strip()) == os.path.realpath(link), r.stdout
    r = subprocess.run(["man", "-l", link], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=60,
                       env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
    assert r.returncode == 0, r.stderr
    assert "open_no_excl.so" in r.stdout and "LD_PRELOAD" in r.stdout


def test_package_programs_run(unpacked):
    for p in PROGRAMS:
        run_version(os.path.join(unpacked, "usr/bin", p))
    check_shim_found(unpacked, install_layout("/usr"))


def test_package_lintian(deb):
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed (make deps installs it)")
    r = subprocess.run(["lintian", "-I", "--pedantic", "--no-tag-display-limit", deb],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=300)
    tags = [l for l in r.stdout.splitlines() if re.match(r"[EWIPX]: ", l)]
    assert not tags, "lintian (fix, or override with a reason in " \
                     "packaging/lintian-overrides):\n" + "\n".join(tags)
    assert r.returncode == 0, r.stdout + r.stderr


# ---- make install / make uninstall ----------------------------------------

@pytest.mark.parametrize("prefix", ["/usr", "/usr/local"])
def test_install_uninstall(tmp_path, prefix):
    lay = install_layout(prefix)
    missing = [p for p in lay["PROGRAMS"] if not os.path.exists(os.path.join(BUILD, p))]
    if missing:
        pytest.skip("not built in %s: %s (make builds them)" % (BUILD, missing))
    if prefix == "/usr":
        assert lay["LIBDIR"] == "/usr/lib/" + lay["MULTIARCH"]
    else:
        assert lay["LIBDIR"] == prefix + "/lib"
    dest = str(tmp_path / "root")
    # -o all: install what $OPSKIT_BUILD holds, never rebuild it here
    r = make("-o", "all", "BUILD=%s" % BUILD, "PREFIX=%s" % prefix, "DESTDIR=%s" % dest,
             "install")
    assert r.returncode == 0, r.stderr
    have = tree_files(dest)
    want = expected_files(lay, gz=False)
    assert have == want, "missing %s, unexpected %s" % (sorted(want - have), sorted(have - want))
    link = os.path.join(dest, lay["MANDIR"].lstrip("/"), "man8", "open_no_excl.so.8")
    assert os.path.isfile(link) and os.readlink(link) == "../man1/no_excl_open.1"
    for p in PROGRAMS:
        run_version(os.path.join(dest, lay["BINDIR"].lstrip("/"), p))
    check_shim_found(dest, lay)

    r = make("BUILD=%s" % BUILD, "PREFIX=%s" % prefix, "DESTDIR=%s" % dest, "uninstall")
    assert r.returncode == 0, r.stderr
    assert tree_files(dest) == set(), "left behind: %s" % sorted(tree_files(dest))
    # only the shared directories install created stay (empty); opskit's own are gone
    dirs = {os.path.relpath(d, dest) for d, _, _ in os.walk(dest)} - {"."}
    ours = [d for d in dirs if "opskit" in d]
    assert not ours, ours
    shared = {lay[k].lstrip("/") for k in ("BINDIR", "LIBDIR", "MANDIR")}
    for d in dirs:
        assert any(s == d or s.startswith(d + "/") or d.startswith(s + "/") for s in shared) \
            or d in ("usr/share", "usr/share/doc", "usr/local/share", "usr/local/share/doc"), d
