#!/usr/bin/env bash
# make demo: one story through every program, in the order of the README table
# (and of an SRE's day). Each part is <program>/demo.sh, run against the build
# dir; it prints one "proves:" line and then only what proves it, checks its own
# result and exits non-zero when the tool did not do what it claims (77 = skipped,
# with the reason). Every part runs even after a failure; the summary names the
# failed ones and the exit status is 1 if there is any.
set -uo pipefail
build=${1:-$(pwd)/build}
cd "$(dirname "$0")/.."

parts=(
    "sabo:sabo"
    "relaxlogs:relaxlogs"
    "wsgate-server + wsgate-client:wsgate"
    "motarei:motarei"
    "mackerel-plugin-linux-process-status:process-status"
    "open_no_excl.so + no_excl_open:no_excl_open"
    "start_server:server-starter"
)

cat <<'EOF'
opskit demo — what you will see (about 30 s, everything on loopback, in temp dirs):
  1. sabo        two copies sharing one 4 MB/s budget; the survivor speeds up
  2. relaxlogs   log files rotating on local-time boundaries, `current` following
  3. wsgate      memcached reached over a WebSocket tunnel; half-close carried through
  4. motarei     a deploy (a newer container) takes new connections, old ones keep going
  5. process-status  CPU/memory/fd metrics of a process tree, Mackerel graph definitions
  6. no_excl_open    logrotate failing on a recreated log, then not failing with the shim
  7. start_server    a crashing deploy refused while the old worker keeps serving
Each part starts with what it proves and ends with "ok", "FAILED" or "skipped".
EOF

failed=() skipped=() n=0
t0=$SECONDS
for p in "${parts[@]}"; do
    title=${p%%:*} dir=${p#*:}
    n=$((n + 1))
    echo
    echo "━━━━ $n/${#parts[@]} $title ━━━━"
    s=$SECONDS
    OPSKIT_BUILD=$build bash "$dir/demo.sh"
    rc=$?
    case $rc in
    0) echo "━━ $title: ok ($((SECONDS - s)) s)" ;;
    77) echo "━━ $title: skipped"; skipped+=("$title") ;;
    *) echo "━━ $title: FAILED (exit status $rc)"; failed+=("$title") ;;
    esac
done

echo
ok=$((${#parts[@]} - ${#failed[@]} - ${#skipped[@]}))
echo "demo: $ok of ${#parts[@]} parts ok in $((SECONDS - t0)) s${skipped[*]:+; skipped: ${skipped[*]}}${failed[*]:+; FAILED: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
