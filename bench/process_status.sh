#!/usr/bin/env bash
# Benchmark: CPU time and peak RSS of one mackerel-plugin-linux-process-status run,
# measured with getrusage(RUSAGE_CHILDREN) over many fork+exec runs by a tiny static C
# harness (so the child's pre-exec image does not inflate max RSS). Baselines: an empty
# static C program and /bin/true, i.e. what exec alone costs on this machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${OPSKIT_BUILD:-$ROOT/build}/mackerel-plugin-linux-process-status
RUNS=${RUNS:-500}
work=$(mktemp -d /tmp/ps-bench.XXXXXX)
target=""
cleanup() { [ -n "$target" ] && kill -- "-$target" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

cat > "$work/runner.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    int n = atoi(argv[1]);
    long maxrss = 0;
    double ut = 0, st = 0;
    (void)argc;
    for (int i = 0; i < n; i++) {
        /* mackerel-agent runs the plugin once a minute: leave at least one clock
         * tick (10 ms) between runs, or a run would wait for the tick itself. */
        usleep(11000);
        pid_t p = fork();
        if (p == 0) {
            int fd = open("/dev/null", O_WRONLY);
            dup2(fd, 1);
            dup2(fd, 2);
            execv(argv[2], argv + 2);
            _exit(127);
        }
        int status;
        struct rusage ru;
        wait4(p, &status, 0, &ru);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "%s failed\n", argv[2]);
            return 1;
        }
        ut += ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3;
        st += ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3;
        if (ru.ru_maxrss > maxrss)
            maxrss = ru.ru_maxrss;
    }
    printf("%.3f|%.3f|%.3f|%ld\n", ut / n, st / n, (ut + st) / n, maxrss);
    return 0;
}
C
cc -O2 -static -o "$work/runner" "$work/runner.c" 2>/dev/null || cc -O2 -o "$work/runner" "$work/runner.c"
echo 'int main(void){return 0;}' > "$work/empty.c"
cc -O2 -static -o "$work/empty-static" "$work/empty.c"

# In-process harness: main() renamed, timed from its call to exit in a forked child.
sed 's/^int main(int argc, char \*\*argv)$/int real_main(int argc, char **argv)/' \
    "$ROOT/process-status/main.c" > "$work/ps_main.c"
cat > "$work/inproc.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
int real_main(int argc, char **argv);
static struct timespec t0;
static int report_fd;
static void done(void)
{
    struct timespec t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    double us = (t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3;
    if (write(report_fd, &us, sizeof us) < 0)
        _exit(3);
}
int main(int argc, char **argv)
{
    int n = atoi(argv[1]);
    double total = 0, min = 1e12;
    for (int i = 0; i < n; i++) {
        usleep(11000); /* one clock tick between runs, as for the fork+exec harness */
        int p[2];
        if (pipe(p) < 0)
            return 1;
        pid_t c = fork();
        if (c == 0) {
            close(p[0]);
            report_fd = p[1];
            int fd = open("/dev/null", O_WRONLY);
            dup2(fd, 1);
            dup2(fd, 2);
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
            atexit(done);
            argv[1] = argv[0];
            exit(real_main(argc - 1, argv + 1));
        }
        close(p[1]);
        double us = 0;
        if (read(p[0], &us, sizeof us) != sizeof us)
            return 1;
        close(p[0]);
        waitpid(c, NULL, 0);
        total += us;
        if (us < min)
            min = us;
    }
    printf("%.0f|%.0f\n", total / n, min);
    return 0;
}
C
cc -O2 -D_GNU_SOURCE -I"$ROOT/lib" -I"$ROOT/process-status" -o "$work/inproc" "$work/inproc.c" \
    "$work/ps_main.c" "$ROOT"/process-status/{procfs,state,scan}.c "$ROOT/lib/flags.c" \
    "$ROOT/lib/units.c" -lm

# the watched process: a shell with two children (for --include-children)
setsid bash -c 'sleep 1000 & sleep 1000 & wait' &
target=$!
sleep 0.3
mkdir -m 700 "$work/state"
export PROCESS_STATUS_STATE_DIR=$work/state
"$B" -p "$target" --key-prefix warm >/dev/null 2>&1 || true

nproc_machine=$(ls -d /proc/[0-9]* | wc -l)
out="$ROOT/bench/results/process_status.md"
mkdir -p "$(dirname "$out")"
{
    echo "# mackerel-plugin-linux-process-status: cost of one run"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, kernel $(uname -r), $nproc_machine processes;"
    echo "$RUNS fork+exec runs each, CPU = user+sys from getrusage of the child, RSS = ru_maxrss."
    echo
    echo "| command | user ms/run | sys ms/run | CPU ms/run | max RSS KiB |"
    echo "|---|---:|---:|---:|---:|"
    row() {
        local label=$1; shift
        IFS='|' read -r u s t r < <("$work/runner" "$RUNS" "$@")
        echo "| $label | $u | $s | $t | $r |"
    }
    row "empty static C program (exec baseline)" "$work/empty-static"
    row "/bin/true (dynamic)" /bin/true
    row "plugin --version (start-up only)" "$B" --version
    row "plugin -p PID" "$B" -p "$target" --key-prefix warm
    if [ -d /dev/shm ] && mkdir -m 700 /dev/shm/ps-bench-$$ 2>/dev/null; then
        row "plugin -p PID, state on tmpfs" "$B" -p "$target" --key-prefix warm --state-dir /dev/shm/ps-bench-$$
        rm -rf /dev/shm/ps-bench-$$
    fi
    row "plugin -p PID --extended" "$B" -p "$target" --key-prefix ext --extended
    row "plugin -p PID --include-children" "$B" -p "$target" --key-prefix tree --include-children
    row "plugin --pattern (scans /proc)" "$B" --pattern "^sleep 1000$" --key-prefix pat
    echo
    echo "In-process CPU (CLOCK_PROCESS_CPUTIME_ID from main() to exit, i.e. without exec and"
    echo "libc start-up; the plugin's main.c compiled into a fork-per-run harness):"
    echo
    echo "| command | mean us/run | min us/run |"
    echo "|---|---:|---:|"
    inproc() {
        local label=$1; shift
        IFS='|' read -r mean min < <("$work/inproc" "$@")
        echo "| $label | $mean | $min |"
    }
    inproc "plugin -p PID" "$RUNS" -p "$target" --key-prefix warm
    inproc "plugin -p PID --extended" "$RUNS" -p "$target" --key-prefix ext --extended
    inproc "plugin -p PID --include-children" 300 -p "$target" --key-prefix tree --include-children
    inproc "plugin --pattern" 300 --pattern "^sleep 1000$" --key-prefix pat
    echo
    echo "The plugin's own work is its row minus the start-up row (exec of a static binary"
    echo "alone costs the first row on this machine). State in $work/state ($(findmnt -no FSTYPE -T "$work" 2>/dev/null || echo ?))."
} | tee "$out"
