#!/usr/bin/env bash
# Demo: mackerel-plugin-linux-process-status watching a busy process tree, the way
# mackerel-agent runs it once a minute (here: twice, two seconds apart), then the
# graph definitions mackerel-agent asks for, then bad input.
set -euo pipefail
B=${OPSKIT_BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}/mackerel-plugin-linux-process-status
P=$(basename "$B")
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
fail() { echo "FAIL: $*"; exit 1; }
# the plugin's tab-separated lines (name, value, epoch), aligned; Notices pass through
plugin() { "$B" "$@" 2>&1 | tee "$work/out" |
    awk -F'\t' 'NF == 3 { printf "  %-48s %14s  %s\n", $1, $2, $3; next } { print "  " $0 }'; }

echo "proves: CPU, memory and fds of a whole process tree as Mackerel metrics, with graph definitions"
# A "service": a parent shell with a CPU-burning worker and an idle worker.
setsid bash -c 'sh -c "while :; do :; done" & sleep 600 & wait' &
pids+=($!)
echo $! > "$work/app.pid"
sleep 0.3

printf '$ %s --pid-file app.pid --key-prefix app --include-children --per-core\n' "$P"
echo "  (a parent shell with a busy-looping worker and an idle one; first run: no CPU line yet;"
echo "   columns: metric, value (a count, bytes or percent), epoch seconds)"
plugin --pid-file "$work/app.pid" --key-prefix app --include-children --per-core
sleep 2
echo "\$ (the same, 2 s later: the busy worker shows up as ~100% of one core)"
plugin --pid-file "$work/app.pid" --key-prefix app --include-children --per-core
cpu=$(awk -F'\t' '$1 == "process-status.cpu_app.percentage" { print int($2) }' "$work/out")
[ "${cpu:-0}" -ge 30 ] || fail "expected the tree's CPU near 100% of a core, got '${cpu:-none}'"

echo
printf '$ MACKEREL_AGENT_PLUGIN_META=1 %s --pid-file app.pid --key-prefix app --include-children --per-core\n' "$P"
echo "  (what mackerel-agent reads to draw the graphs; JSON re-indented here, one metric a line)"
MACKEREL_AGENT_PLUGIN_META=1 "$B" --pid-file "$work/app.pid" --key-prefix app --include-children \
    --per-core > "$work/meta"
head -n 1 "$work/meta" | sed 's/^/  /'
tail -n +2 "$work/meta" | /usr/bin/python3 -c '
import json, sys
graphs = json.load(sys.stdin)["graphs"]
print("{\"graphs\": {")
for i, (name, g) in enumerate(graphs.items()):
    head = {k: v for k, v in g.items() if k != "metrics"}
    print("  %s: %s, \"metrics\": [" % (json.dumps(name), json.dumps(head)[:-1]))
    for j, m in enumerate(g["metrics"]):
        print("    %s%s" % (json.dumps(m), "," if j + 1 < len(g["metrics"]) else ""))
    print("  ]}%s" % ("," if i + 1 < len(graphs) else ""))
print("}}")' | sed 's/^/  /'
[ "$(head -n 1 "$work/meta")" = "# mackerel-agent-plugin" ] || fail "no plugin meta header"

echo
printf '$ echo junk > bad.pid; %s --pid-file bad.pid      # bad input: one line, exit 1\n' "$P"
echo junk > "$work/bad.pid"
set +e
"$B" --pid-file "$work/bad.pid" 2>&1 | sed "s|$work/||; s/^/  /"
rc=${PIPESTATUS[0]}
set -e
echo "  (exit status $rc)"
[ "$rc" = 1 ] || fail "expected exit status 1 for a bad pid file"
