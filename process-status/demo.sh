#!/usr/bin/env bash
# Demo: mackerel-plugin-linux-process-status watching a busy process tree, the way
# mackerel-agent runs it once a minute (here: twice, two seconds apart).
set -euo pipefail
B=${OPSKIT_BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}/mackerel-plugin-linux-process-status
work=$(mktemp -d /tmp/ps-demo.XXXXXX)
pids=()
cleanup() {
    # each started tree is its own session/process group: kill the whole group
    for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
export PROCESS_STATUS_STATE_DIR=$work/state
exec 2>&1 # show Notices inline

# A "service": a parent shell with a CPU-burning worker and an idle worker.
setsid bash -c 'sh -c "while :; do :; done" & sleep 600 & wait' &
pids+=($!)
echo $! > "$work/app.pid"
sleep 0.3

say() { printf '\n$ %s\n' "$*"; }
say "$(basename "$B") --pid-file app.pid --key-prefix app      # first run: no CPU yet"
"$B" --pid-file "$work/app.pid" --key-prefix app
sleep 2
say "$(basename "$B") --pid-file app.pid --key-prefix app      # 2 s later: the parent alone is idle"
"$B" --pid-file "$work/app.pid" --key-prefix app

say "$(basename "$B") --pid-file app.pid --key-prefix tree --include-children --per-core --extended"
"$B" --pid-file "$work/app.pid" --key-prefix tree --include-children --per-core --extended
sleep 2
say "(again, 2 s later: the busy worker shows up as ~100% of one core)"
"$B" --pid-file "$work/app.pid" --key-prefix tree --include-children --per-core --extended

say "$(basename "$B") --pattern 'sleep 600'      # newest match, key defaults to the process name"
"$B" --pattern 'sleep 600'

say "MACKEREL_AGENT_PLUGIN_META=1 $(basename "$B") --pid-file app.pid --key-prefix app"
MACKEREL_AGENT_PLUGIN_META=1 "$B" --pid-file "$work/app.pid" --key-prefix app | cut -c1-160

say "echo junk > bad.pid; $(basename "$B") --pid-file bad.pid    # bad input: one line, exit 1"
echo junk > "$work/bad.pid"
"$B" --pid-file "$work/bad.pid" || echo "(exit status $?)"
