#!/usr/bin/env bash
# bench/sabo.sh: sabo side by side with pv -L, cstream -t and mbuffer -r.
#   1. achieved rate / target at 1M, 10M, 100M, 1G (3 s each, from process start)
#   2. burst after a 3 s idle input: bytes in the first 0.5 s / (0.5 s x target), at 1M
#   3. CPU seconds per GB with no limit binding, and the ratio to cat
#   4. sabo's rebalance latency when a member leaves (SIGTERM) or dies (kill -9)
# Prints a Markdown report and writes it to bench/results/sabo.md.
# OPSKIT_BUILD: build dir (default ./build). SABO_BENCH_SECS: seconds per rate run.
set -euo pipefail
cd "$(dirname "$0")/.."
export OPSKIT_BUILD=${OPSKIT_BUILD:-$(pwd)/build}
mkdir -p bench/results
/usr/bin/python3 - "$@" <<'PY' | tee bench/results/sabo.md
import os, shutil, signal, statistics, subprocess, sys, tempfile, threading, time

BUILD = os.environ["OPSKIT_BUILD"]
SABO = os.path.join(BUILD, "sabo")
SECS = float(os.environ.get("SABO_BENCH_SECS", "3"))
WD = tempfile.mkdtemp(prefix="sabo-bench-")
RATES = [("1M", 10**6), ("10M", 10**7), ("100M", 10**8), ("1G", 10**9)]


def tool_cmd(tool, rate):
    """Command line limiting to rate bytes/s (None: no limit). Plain byte
    counts, because pv/cstream/mbuffer read k/m/g suffixes as powers of 1024."""
    if tool == "sabo":
        return [SABO, "--max-bandwidth", str(rate or 10**15), "--work-dir", WD]
    if tool == "pv":
        return ["pv", "-q"] + (["-L", str(rate)] if rate else [])
    if tool == "cstream":
        return ["cstream"] + (["-t", str(rate)] if rate else [])
    if tool == "mbuffer":
        # 64 kB blocks: the default 4 MB blocks make 1M runs wait seconds per block.
        return ["mbuffer", "-q", "-s", "65536", "-m", "4M"] + (["-r", str(rate)] if rate else [])
    if tool == "cat":
        return ["cat"]
    raise ValueError(tool)


TOOLS = [t for t in ("sabo", "pv", "cstream", "mbuffer")
         if t == "sabo" and os.access(SABO, os.X_OK) or t != "sabo" and shutil.which(t)]


class Counter:
    """Reads a pipe to the end, recording (time, cumulative bytes)."""

    def __init__(self, fd, record=False):
        self.fd, self.n, self.record, self.log = fd, 0, record, []
        self.chunk = 1 << 16 if record else 1 << 20  # small reads: finer timestamps
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while True:
            try:
                b = os.read(self.fd, self.chunk)
            except OSError:
                return
            if not b:
                return
            self.n += len(b)
            if self.record:
                self.log.append((time.monotonic(), self.n))


def achieved(tool, rate):
    z = open("/dev/zero", "rb")
    t0 = time.monotonic()
    p = subprocess.Popen(tool_cmd(tool, rate), stdin=z, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    c = Counter(p.stdout.fileno())
    time.sleep(SECS)
    n, dt = c.n, time.monotonic() - t0
    p.kill()
    p.wait()
    z.close()
    return n / dt / rate


def idle_burst(tool, rate=10**6):
    r, w = os.pipe()
    p = subprocess.Popen(tool_cmd(tool, rate), stdin=r, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    os.close(r)
    c = Counter(p.stdout.fileno(), record=True)
    os.write(w, b"\0" * (rate // 5))
    deadline = time.monotonic() + 10
    while c.n < rate // 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(3.0)
    t0 = time.monotonic()
    wr = threading.Thread(target=lambda: os.write(w, b"\0" * (3 * rate)), daemon=True)
    wr.start()
    time.sleep(0.7)
    base = max([n for t, n in c.log if t < t0] or [0])
    first = max([n for t, n in c.log if t <= t0 + 0.5] or [base]) - base
    p.kill()
    p.wait()
    os.close(w)
    return first / (0.5 * rate)


def cpu_per_gb(tool, gb=2):
    prod = subprocess.Popen(["head", "-c", str(gb * 10**9), "/dev/zero"], stdout=subprocess.PIPE)
    cons = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    p = subprocess.Popen(tool_cmd(tool, None), stdin=prod.stdout, stdout=cons.stdin,
                         stderr=subprocess.DEVNULL)
    prod.stdout.close()
    cons.stdin.close()
    # ru_maxrss would include the forked Python before exec: sample VmHWM.
    hwm = [0]

    def poll_hwm():
        while p.returncode is None:
            try:
                with open("/proc/%d/status" % p.pid) as f:
                    for ln in f:
                        if ln.startswith("VmHWM:"):
                            hwm[0] = max(hwm[0], int(ln.split()[1]))
            except (OSError, ValueError):
                return
            time.sleep(0.05)

    th = threading.Thread(target=poll_hwm, daemon=True)
    th.start()
    t0 = time.monotonic()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = 0
    th.join()
    prod.wait()
    cons.wait()
    return (ru.ru_utime + ru.ru_stime) / gb, gb / wall, hwm[0]


def linfit(pts):
    """Least-squares slope and intercept of (x, y) points."""
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    m = sxy / sxx
    return m, my - m * mx


def rebalance_latency(how, bw=20 * 10**6, trials=5):
    """ms from the leave (signal sent) until the survivor's rate changes."""
    out = []
    for _ in range(trials):
        z1, z2 = open("/dev/zero", "rb"), open("/dev/zero", "rb")
        cmd = [SABO, "--max-bandwidth", str(bw), "--work-dir", WD]
        a = subprocess.Popen(cmd, stdin=z1, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        b = subprocess.Popen(cmd, stdin=z2, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        ca = Counter(a.stdout.fileno())
        cb = Counter(b.stdout.fileno(), record=True)
        time.sleep(1.5)
        t0 = time.monotonic()
        a.send_signal(signal.SIGKILL if how == "kill -9" else signal.SIGTERM)
        a.wait()
        time.sleep(1.0)
        b.kill()
        b.wait()
        z1.close()
        z2.close()
        # Fit a line to the survivor's cumulative output before the leave
        # and another well after it; they cross where the rate changed.
        # (Fitting many samples averages out the 10 ms transfer grain.)
        before = [(t - t0, n) for t, n in cb.log if -0.8 <= t - t0 <= 0]
        after = [(t - t0, n) for t, n in cb.log if 0.15 <= t - t0 <= 0.9]
        (m1, b1), (m2, b2) = linfit(before), linfit(after)
        lat = (b1 - b2) / (m2 - m1) if m2 > m1 * 1.2 else None
        out.append(lat * 1000 if lat is not None else float("nan"))
    return out


def fmt(x):
    return "n/a" if x is None else "%.3f" % x


print("# sabo benchmark\n")
print("Host: %s, %d CPUs, kernel %s. Input /dev/zero, output a pipe read by the harness.\n"
      % (os.uname().nodename, os.cpu_count(), os.uname().release))
print("## Achieved rate / target (%.0f s from process start; 1.000 is exact)\n" % SECS)
print("| target | " + " | ".join(TOOLS) + " |")
print("|---" * (len(TOOLS) + 1) + "|")
for name, rate in RATES:
    print("| %s | %s |" % (name, " | ".join(fmt(achieved(t, rate)) for t in TOOLS)))
    sys.stdout.flush()

print("\n## Burst after 3 s of idle input (target 1M)\n")
print("Bytes delivered in the first 0.5 s after input resumes, / (0.5 s x 1 MB/s). "
      "1.0 means no banked credit; 6.00 means all 3 MB written after the pause went "
      "through at once (the idle time was banked).\n")
print("| " + " | ".join(TOOLS) + " |")
print("|---" * len(TOOLS) + "|")
print("| " + " | ".join("%.2f" % idle_burst(t) for t in TOOLS) + " |")
sys.stdout.flush()

print("\n## CPU per GB with no limit binding (2 GB, pipe in, pipe out)\n")
print("| tool | CPU s/GB | vs cat | throughput GB/s | peak RSS kB |")
print("|---|---|---|---|---|")
cat_cpu = None
for t in ["cat"] + TOOLS:
    cpu, gbps, rss = cpu_per_gb(t)
    if t == "cat":
        cat_cpu = cpu
    print("| %s%s | %.3f | %.2fx | %.2f | %d |" % (
        t, " (no -L/-t/-r)" if t in ("pv", "cstream", "mbuffer") else
        " (--max-bandwidth 1P)" if t == "sabo" else "", cpu, cpu / cat_cpu, gbps, rss))
    sys.stdout.flush()

print("\n## sabo rebalance latency (2 members of 20M; one leaves)\n")
print("Time from the leave (signal sent) until the survivor's rate changes: where "
      "least-squares lines through its cumulative output before and after the leave "
      "cross. The original rescans once a second (0-1000 ms). 5 trials.\n")
print("| how the member leaves | median ms | max ms |")
print("|---|---|---|")
for how in ("SIGTERM (lock file removed)", "kill -9 (lock left behind, reaped)"):
    lat = rebalance_latency("kill -9" if how.startswith("kill") else "term")
    ok = [x for x in lat if x == x]
    print("| %s | %.1f | %.1f |" % (how, statistics.median(ok), max(ok)) if ok else
          "| %s | no change seen | |" % how)
shutil.rmtree(WD, ignore_errors=True)
PY
