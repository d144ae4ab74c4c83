#!/usr/bin/env bash
# bench/zz_report.sh: the benchmark report. Runs last in `make bench` (sorted order) and
# reruns nothing: it reads the Markdown tables the other bench/*.sh wrote to
# bench/results/<name>.md, puts each program beside its peers with ratios in
# bench/results/README.md, and draws the throughput and latency comparisons as PNG
# plots with gnuplot (bench/results/<program>-<what>.png). Each plot reads a small
# tab-separated data file extracted from those tables (kept in a temp dir), so a
# changed or missing table costs only its own table or plot, named in the report.
# OPSKIT_BUILD is accepted like the other benchmarks but not needed.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
command -v gnuplot >/dev/null || echo "zz_report: gnuplot not found (make deps installs gnuplot-nox): no plots" >&2
DATA=$(mktemp -d /tmp/bench-report.XXXXXX)
trap 'rm -rf "$DATA"' EXIT
/usr/bin/python3 - "$DATA" <<'PY'
import os, re, shutil, subprocess, sys

DATA = sys.argv[1]
RES = "bench/results"
GNUPLOT = shutil.which("gnuplot")
out = []          # README.md lines
headlines = []    # (program, sentence) for the top of the report
plots = []        # PNG files written


def tables(name):
    """Every Markdown table of bench/results/NAME.md as (heading, header, rows), the
    heading being the nearest '#' line above it; [] when the file is missing."""
    path = os.path.join(RES, name + ".md")
    if not os.path.exists(path):
        return []
    found, heading, cur = [], "", None
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cur is None:
                cur = (heading, cells, [])
                found.append(cur)
            elif not all(re.fullmatch(r":?-+:?", c) for c in cells if c):
                cur[2].append(cells)
        else:
            cur = None
    return found


def find(tabs, heading=None, first=None):
    """The first table whose heading contains HEADING and whose first header cell
    starts with FIRST (case-insensitive)."""
    for h, head, rows in tabs:
        if heading and heading.lower() not in h.lower():
            continue
        if first and not head[0].lower().startswith(first.lower()):
            continue
        return head, rows
    return None


def num(s):
    """'**1.74**', '55%', '0.51x', '1.07×' -> float; None when it is not a number."""
    s = re.sub(r"[*`%x×]", "", s or "").replace(",", "").strip()
    try:
        return float(s)
    except ValueError:
        return None


def label(s):
    return re.sub(r"[*`]", "", s).strip()


def col(head, *names):
    """Index of the first header cell that contains one of NAMES."""
    for n in names:
        for i, h in enumerate(head):
            if n.lower() in h.lower():
                return i
    raise KeyError(names)


def fmt(v, nd=2):
    if v is None:
        return "–"
    return f"{v:,.{nd}f}"


def ratio(a, b, nd=2):
    return "–" if a is None or not b else f"{a / b:.{nd}f}×"


def table(head, rows, align=None):
    align = align or ["---"] + ["---:"] * (len(head) - 1)
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "|".join(align) + "|")
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    out.append("")


def missing(what):
    out.append(f"*{what}: not found in bench/results — run the benchmark that writes it.*")
    out.append("")


def bars(png, title, ylabel, labels, series, logscale=False, fmtv="%.2f", rotate=False):
    """A clustered bar chart: LABELS on the x axis, SERIES = [(name, [values])], each
    bar labelled with its value. Written via a data file in DATA."""
    if not GNUPLOT or not labels:
        return
    dat = os.path.join(DATA, png.replace(".png", ".dat"))
    with open(dat, "w") as f:
        for i, lab in enumerate(labels):
            vals = ["%g" % s[1][i] if s[1][i] is not None else "NaN" for s in series]
            f.write('"%s"\t%s\n' % (lab.replace('"', "'"), "\t".join(vals)))
    n = len(series)
    width = 1.0 / (n + 1)
    cmds = [
        'set terminal pngcairo size 900,480 font "DejaVu Sans,10"',
        'set output "%s"' % os.path.join(RES, png),
        'set datafile separator "\\t"',
        'set title "%s" font ",12"' % title,
        'set ylabel "%s"' % ylabel,
        "set style data histograms",
        "set style histogram clustered gap 1",
        "set style fill solid 0.85 border -1",
        "set boxwidth 0.95 relative",
        "set grid ytics lc rgb '#dddddd'",
        "set key top right" if n > 1 else "unset key",
        "set xtics nomirror" + (" rotate by -20 left" if rotate else ""),
        "set ytics nomirror",
        "set border 3",
        "set offsets 0, 0, graph 0.12, 0",
        "set yrange [%s:*]" % ("1" if logscale else "0"),
    ]
    if logscale:
        cmds.append("set logscale y")
    colors = ["#4472c4", "#ed7d31", "#a5a5a5", "#ffc000", "#5b9bd5", "#70ad47"]
    plot = []
    for j, (name, _) in enumerate(series):
        plot.append("'%s' using %d:xtic(1) title \"%s\" lc rgb '%s'"
                    % (dat, j + 2, name, colors[j % len(colors)]))
    for j in range(n):
        off = (j - (n - 1) / 2.0) * width
        plot.append("'%s' using ($0%+f):%d:(sprintf(\"%s\", $%d)) with labels offset 0,0.7 "
                    "font \",8\" notitle" % (dat, off, j + 2, fmtv, j + 2))
    cmds.append("plot " + ", ".join(plot))
    r = subprocess.run([GNUPLOT], input="\n".join(cmds) + "\n", text=True,
                       capture_output=True)
    if r.returncode != 0:
        print("zz_report: gnuplot failed for %s:\n%s" % (png, r.stderr), file=sys.stderr)
        return
    plots.append(png)
    out.append(f"![{title}]({png})")
    out.append("")


# ---------------------------------------------------------------- sabo
def sabo():
    out.append("## sabo vs pv -L, cstream -t, mbuffer -r")
    out.append("")
    out.append("From [sabo.md](sabo.md) (`bench/sabo.sh`).")
    out.append("")
    t = tables("sabo")
    tools = ["sabo", "pv", "cstream", "mbuffer"]
    rate = find(t, "achieved rate")
    if rate:
        head, rows = rate
        out.append("**Rate accuracy**: achieved rate / target over 3 s (1.000 is exact).")
        out.append("")
        table(head, rows)
        idx = [col(head, x) for x in tools]
        bars("sabo-rate.png", "sabo: achieved rate / target (1.0 = exact)",
             "achieved / target", [r[0] for r in rows],
             [(x, [num(r[i]) for r in rows]) for x, i in zip(tools, idx)], fmtv="%.2f")
        g = [r for r in rows if r[0] == "1G"]
        if g:
            v = {x: num(g[0][i]) for x, i in zip(tools, idx)}
            headlines.append(("sabo", "holds a 1G limit at %.3f of target where pv reaches "
                              "%.2f, cstream %.2f, mbuffer %.2f" % (v["sabo"], v["pv"],
                                                                    v["cstream"], v["mbuffer"])))
    else:
        missing("sabo rate accuracy table")
    burst = find(t, "burst")
    if burst:
        head, rows = burst
        out.append("**Burst after 3 s of idle input** at 1M: bytes in the first 0.5 s / "
                   "(0.5 s × 1 MB/s); 1.0 = no banked credit.")
        out.append("")
        table(head, rows, ["---:"] * len(head))
    cpu = find(t, "cpu per gb")
    if cpu:
        head, rows = cpu
        ic, ig, im = col(head, "cpu s/gb"), col(head, "throughput"), col(head, "rss")
        base = {label(r[0]).split()[0]: num(r[ic]) for r in rows}
        out.append("**CPU per GB** with no limit binding (2 GB, pipe in, pipe out); lower is "
                   "better.")
        out.append("")
        table(["tool", "CPU s/GB", "vs cat", "vs sabo", "GB/s", "peak RSS kB"],
              [[label(r[0]), fmt(num(r[ic]), 3), ratio(num(r[ic]), base.get("cat")),
                ratio(num(r[ic]), base.get("sabo")), fmt(num(r[ig])), r[im]] for r in rows])
        short = [label(r[0]).split(" (")[0] for r in rows]
        bars("sabo-cpu.png", "CPU seconds per GB copied, no limit binding (lower is better)",
             "CPU s / GB", short, [("CPU s/GB", [num(r[ic]) for r in rows])], fmtv="%.3f")
        bars("sabo-throughput.png", "Unlimited throughput, pipe to pipe (higher is better)",
             "GB/s", short, [("GB/s", [num(r[ig]) for r in rows])])
        if base.get("sabo") and base.get("cat"):
            headlines.append(("sabo", "uses %.2f× the CPU of `cat` per GB (pv %.2f×, "
                              "mbuffer %.2f×)" % (base["sabo"] / base["cat"],
                                                  base.get("pv", 0) / base["cat"],
                                                  base.get("mbuffer", 0) / base["cat"])))
    else:
        missing("sabo CPU per GB table")
    reb = find(t, "rebalance")
    if reb:
        head, rows = reb
        out.append("**Rebalance latency** when one of two members leaves (the original "
                   "kazeburo/sabo rescans once a second: 0–1000 ms, 500 ms on average).")
        out.append("")
        table(head + ["vs the original (500 ms on average)"],
              [r + ["%.0f× sooner" % (500 / num(r[1])) if num(r[1]) else "–"] for r in rows])
        m = num(rows[0][1])
        if m:
            headlines.append(("sabo", "rebalances in %.0f ms (median) where the original "
                              "waits up to 1 s" % m))


# ---------------------------------------------------------------- relaxlogs
def relaxlogs():
    out.append("## relaxlogs vs multilog, svlogd, s6-log, rotatelogs, cronolog")
    out.append("")
    out.append("From [relaxlogs.md](relaxlogs.md) (`bench/relaxlogs.sh`): "
               "2,000,000 lines of 100 bytes, output on tmpfs, median of 5 runs.")
    out.append("")
    t = find(tables("relaxlogs"), None, "writer")
    if not t:
        return missing("relaxlogs writer table")
    head, rows = t
    iw, il, ic = col(head, "wall s (median)", "wall"), col(head, "lines/s"), col(head, "cpu s")
    rl = [r for r in rows if label(r[0]) == "relaxlogs"]
    rlw = num(rl[0][iw]) if rl else None
    rll = num(rl[0][il]) if rl else None
    cat = [r for r in rows if label(r[0]).startswith("cat")]
    catw = num(cat[0][iw]) if cat else None
    table(["writer", "wall s", "M lines/s", "CPU s", "wall vs relaxlogs", "wall vs cat"],
          [[label(r[0]), fmt(num(r[iw]), 3), fmt(num(r[il])), fmt(num(r[ic])),
            ratio(num(r[iw]), rlw), ratio(num(r[iw]), catw)] for r in rows])
    bars("relaxlogs-throughput.png", "Log writers: million 100-byte lines per second "
         "(higher is better)", "M lines/s", [label(r[0]).split(" (")[0] for r in rows],
         [("M lines/s", [num(r[il]) for r in rows])], rotate=True)
    bars("relaxlogs-cpu.png", "Log writers: CPU seconds for 200 MB (lower is better)",
         "CPU s", [label(r[0]).split(" (")[0] for r in rows],
         [("CPU s", [num(r[ic]) for r in rows])], rotate=True)
    peers = {label(r[0]).split(" (")[0]: num(r[il]) for r in rows}
    if rll:
        best = num(rl[0][col(head, "best vs cat")]) if "best vs cat" in head else None
        headlines.append(("relaxlogs", "writes %.1f M lines/s: %.0f× multilog, %.0f× svlogd, "
                          "%.1f× s6-log%s"
                          % (rll, rll / peers["multilog"], rll / peers["svlogd"],
                             rll / peers["s6-log"], "; best run %.2f× the time of `cat > "
                             "file`" % best if best else "")))


# ---------------------------------------------------------------- wsgate
def wsgate():
    out.append("## wsgate vs a socat relay and direct TCP")
    out.append("")
    out.append("From [wsgate.md](wsgate.md) (`bench/wsgate.sh`), loopback.")
    out.append("")
    t = tables("wsgate")
    one = find(t, None, "path")
    if one:
        head, rows = one
        im, isec = col(head, "mb/s"), col(head, "seconds")
        so = [num(r[im]) for r in rows if "socat" in r[0]]
        di = [num(r[im]) for r in rows if "direct" in r[0]]
        out.append("**One 2 GB stream** (median of 3).")
        out.append("")
        table(["path", "seconds", "MB/s", "vs socat relay", "vs direct TCP"],
              [[label(r[0]), r[isec], r[im], ratio(num(r[im]), so[0] if so else None),
                ratio(num(r[im]), di[0] if di else None)] for r in rows])
        bars("wsgate-throughput.png", "One TCP stream on loopback (higher is better)", "MB/s",
             [label(r[0]) for r in rows], [("MB/s", [num(r[im]) for r in rows])], fmtv="%.0f")
        ws = [num(r[im]) for r in rows if "wsgate" in r[0]]
        if ws and so:
            one_ratio = ws[0] / so[0]
    else:
        missing("wsgate one-stream table")
    rr = find(t, "request/response")
    if rr:
        head, rows = rr
        idi, iso, iws = col(head, "direct"), col(head, "socat"), col(head, "wsgate req")
        out.append("**Request/response** (memcached `version`, 5 s per point).")
        out.append("")
        table(["connections", "direct TCP req/s", "socat relay req/s", "wsgate req/s",
               "wsgate / socat", "wsgate / direct"],
              [[r[0], r[idi], r[iso], r[iws], ratio(num(r[iws]), num(r[iso])),
                ratio(num(r[iws]), num(r[idi]))] for r in rows])
        bars("wsgate-requests.png", "Requests per second through the tunnel, by concurrent "
             "connections (higher is better)", "req/s",
             ["%s conn" % r[0] for r in rows],
             [("direct TCP", [num(r[idi]) for r in rows]),
              ("socat relay", [num(r[iso]) for r in rows]),
              ("wsgate", [num(r[iws]) for r in rows])], fmtv="%.0f")
        last = rows[-1]
        s = "at %s connections %.2f× the socat relay's req/s" % (
            last[0], num(last[iws]) / num(last[iso]))
        if one:
            s = "one stream at %.2f× a socat relay (two relaying processes against one); " % \
                one_ratio + s
        headlines.append(("wsgate", s))
    mem = find(t, "memory")
    if mem:
        head, rows = mem
        out.append("**Memory per idle tunnel** (4000 tunnels open).")
        out.append("")
        table(head, rows)
        headlines.append(("wsgate", "an idle tunnel costs %s KiB of RSS per end"
                          % rows[0][-1]))
    both = find(t, "both directions", "route")
    if both:
        head, rows = both
        out.append("**Both directions and latency next to a tuned one-hop relay** "
                   "(socat -b262144) and HAProxy.")
        out.append("")
        table(head, rows)
        data = [r for r in rows if not r[0].startswith("**")]
        bars("wsgate-directions.png", "Upload and download through each route (higher is "
             "better)", "MB/s", [label(r[0]) for r in data],
             [("upload", [num(r[1]) for r in data]), ("download", [num(r[2]) for r in data])],
             fmtv="%.0f", rotate=True)
        ts = [r for r in rows if "socat -b262144" in r[0] and r[0].startswith("**")]
        if ts:
            r = ts[0]
            headlines.append(("wsgate", "two hops against socat -b262144's one: upload %s, "
                              "download %s, 64-byte round trip %s" % (r[1], r[2], r[3])))


# ---------------------------------------------------------------- motarei
def motarei():
    out.append("## motarei vs HAProxy (mode tcp), socat and direct TCP")
    out.append("")
    out.append("From [motarei.md](motarei.md) (`bench/motarei.sh`), medians of interleaved "
               "rounds; clients, servers and relay share 2 CPUs.")
    out.append("")
    t = tables("motarei")
    conn = find(t, "connections per second")
    cps = {}
    if conn:
        h, rws = conn
        for r in rws:
            cps[label(r[0])] = r[col(h, "connections/s")]
    for where, key, png in (("to a local listener", "local listener", "motarei"),
                            ("through docker-proxy to a real container", "docker-proxy",
                             "motarei-docker")):
        paths = find(t, key, "path")
        if not paths:
            missing("motarei paths table (%s)" % key)
            continue
        head, rows = paths
        ia, ib = col(head, "iperf3 →"), col(head, "iperf3 ←")
        irtt, i64 = col(head, "rtt"), col(head, "64 conns")
        names = [re.sub(r" 2\.\S+", "", label(r[0])).replace("mode tcp, nbthread 2",
                                                              "mode tcp") for r in rows]
        out.append("**%s.**" % (where[0].upper() + where[1:]))
        out.append("")
        hdr = ["path", "iperf3 → Gbit/s", "iperf3 ← Gbit/s", "RTT µs (64 B, 1 conn)",
               "req/s (64 conns)"]
        if key == "local listener" and cps:
            hdr.append("conn/s")
        body = []
        for n, r in zip(names, rows):
            line = [n, r[ia], r[ib], r[irtt], r[i64]]
            if len(hdr) == 6:
                k = "direct" if n.startswith("direct") else "motarei" if "motarei" in n else \
                    "haproxy" if n.startswith("HAProxy") and "splice" not in n else None
                line.append(cps.get(k, ""))
            body.append(line)
        table(hdr, body)
        # the ratio table that follows this paths table in the file
        after = [x for x in t if x[0] == paths_heading(t, key)]
        for h, hd, rw in after:
            if hd[0] == "ratio":
                out.append("Ratios (throughput and req/s: higher is better for motarei; RTT: "
                           "lower is better):")
                out.append("")
                table(hd, rw)
        short = [s.replace("HAProxy, same + option splice-request/-response",
                           "HAProxy + splice").replace(" -b262144 (fork)", "")
                 .replace(" (--workers 2)", "") for s in names]
        bars(png + "-throughput.png", "motarei: iperf3 one stream, %s (higher is better)"
             % where, "Gbit/s", short,
             [("client → server", [num(r[ia]) for r in rows]),
              ("server → client (-R)", [num(r[ib]) for r in rows])])
        bars(png + "-latency.png", "motarei: 64-byte round trip, one connection, %s "
             "(lower is better)" % where, "µs", short,
             [("RTT µs", [num(r[irtt]) for r in rows])], fmtv="%.0f")
        if key == "local listener":
            v = {}
            for n, r in zip(short, rows):
                v[n] = r
            m, hp, hs = v.get("**motarei**") or v.get("motarei"), v.get("HAProxy mode tcp"), \
                v.get("HAProxy + splice")
            if m and hp and hs:
                headlines.append(("motarei", "iperf3 throughput %.2f× HAProxy `mode tcp` "
                                  "(%.2f× HAProxy with forced splice), round trip %.2f× "
                                  "(equal)" % (num(m[ia]) / num(hp[ia]), num(m[ia]) / num(hs[ia]),
                                               num(m[irtt]) / num(hp[irtt]))))
    if conn:
        h, rws = conn
        out.append("**Connections per second** (memcached `version`, one connection per "
                   "request, 4 client processes).")
        out.append("")
        table(h, rws)
    sw = find(t, "switch latency")
    if sw:
        h, rws = sw
        out.append("**Switch latency**: from `docker start` of a new labelled container to its "
                   "first answer through motarei (the original polls every second).")
        out.append("")
        table(h, rws)
        ia = col(h, "after")
        headlines.append(("motarei", "a new container answers %s ms after `docker start` "
                          "returns (median)" % rws[0][ia]))


def paths_heading(t, key):
    for h, hd, rw in t:
        if key.lower() in h.lower() and hd[0] == "path":
            return h
    return None


# ---------------------------------------------------------------- process-status
def process_status():
    out.append("## mackerel-plugin-linux-process-status: cost of one run")
    out.append("")
    out.append("From [process_status.md](process_status.md) (`bench/process_status.sh`): "
               "500 fork+exec runs each; CPU = user+sys of the child. The Go original is "
               "not packaged in Debian, so the peers here are exec baselines.")
    out.append("")
    t = tables("process_status")
    cost = find(t, None, "command")
    if not cost:
        return missing("process-status cost table")
    head, rows = cost
    ic, irss = col(head, "cpu ms"), col(head, "rss")
    base = num(rows[0][ic])
    table(["command", "CPU ms/run", "vs exec of an empty static program", "plugin's own work ms",
           "max RSS KiB"],
          [[r[0], r[ic], ratio(num(r[ic]), base), fmt(num(r[ic]) - base, 3) if
            r[0].startswith("plugin") else "", r[irss]] for r in rows])
    short = [r[0].replace("empty static C program (exec baseline)", "empty static C")
             .replace(" (start-up only)", "").replace(", state on tmpfs", " (tmpfs)")
             .replace(" (scans /proc)", "") for r in rows]
    bars("process_status-cost.png", "CPU per run including fork+exec (lower is better)",
         "CPU ms / run", short, [("CPU ms/run", [num(r[ic]) for r in rows])], fmtv="%.2f",
         rotate=True)
    inproc = [x for x in t if x[1][0] == "command"][1:]
    if inproc:
        h, hd, rw = inproc[0]
        out.append("In-process CPU (from `main()` to exit, without exec):")
        out.append("")
        table(hd, rw)
    p = [r for r in rows if r[0] == "plugin -p PID"]
    if p:
        headlines.append(("process-status", "one run costs %s ms of CPU including exec, of "
                          "which %.2f ms is exec of an empty static program; peak RSS %s KiB"
                          % (p[0][ic], base, p[0][irss])))


body = []
for section in (sabo, relaxlogs, wsgate, motarei, process_status):
    start = len(out)
    try:
        section()
    except Exception as e:  # a changed table costs its own section, not the report
        del out[start:]
        out.append("## %s" % section.__name__)
        out.append("")
        out.append("*could not read its results (%s: %s)*" % (type(e).__name__, e))
        out.append("")
        print("zz_report: %s: %s: %s" % (section.__name__, type(e).__name__, e),
              file=sys.stderr)

top = ["# Benchmark report", "",
       "Generated by `bench/zz_report.sh` (the last step of `make bench`) from the tables in "
       "this directory; each program's own file has the method and the raw figures. "
       "Measured on a shared 2-core VM: read ratios, not absolute numbers.", "",
       "Headlines:", ""]
for prog, s in headlines:
    top.append("- **%s** %s." % (prog, s))
top.append("")
with open(os.path.join(RES, "README.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(top + out).rstrip() + "\n")
print("zz_report: wrote %s/README.md and %d plots: %s" % (RES, len(plots), " ".join(plots)))
PY
