#!/usr/bin/env bash
# sabo demo: two copies share one 4 MB/s budget. Copy A (8 MB) starts alone at
# 4 MB/s; copy B (16 MB) joins after 1 s and both run at 2 MB/s; when A ends,
# B speeds up to 4 MB/s. --progress prints one line a second per copy.
set -euo pipefail
build=${OPSKIT_BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
sabo=$build/sabo
tmp=$(mktemp -d /tmp/sabo-demo.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
work=$tmp/work
mkdir "$work"

head -c 8000000 /dev/urandom > "$tmp/a.in"
head -c 16000000 /dev/urandom > "$tmp/b.in"

echo "proves: copies with the same --max-bandwidth and --work-dir share one budget; the survivor speeds up"
echo "budget 4M (4,000,000 bytes/s) shared by copy A (8,000,000 bytes) and copy B (16,000,000 bytes),"
echo "B joining 1 s after A; time since start, who, and sabo's --progress line:"
start=$(date +%s.%N)
stamp() { awk -v s="$start" -v who="$1" '{ cmd = "date +%s.%N"; cmd | getline now; close(cmd);
          printf "  %5.1fs  %s  %s\n", now - s, who, $0; fflush() }'; }

exec 3>&1  # the progress pipes print here, not into the copies' output files
"$sabo" --max-bandwidth 4M --work-dir "$work" --progress < "$tmp/a.in" > "$tmp/a.out" \
    2> >(stamp "A" >&3) &
pa=$!
sleep 1
"$sabo" --max-bandwidth 4M --work-dir "$work" --progress < "$tmp/b.in" > "$tmp/b.out" \
    2> >(stamp "B" >&3) &
pb=$!
sleep 0.2
echo "  lock files in the work dir once B has joined (sabo_<bytes/s>_<pid>_<id>.lock):"
ls "$work" | sed 's/^/    /'
wait $pa
ta=$(date +%s.%N)
wait $pb
tb=$(date +%s.%N)
sleep 0.2  # let the progress pipes flush

cmp -s "$tmp/a.in" "$tmp/a.out" && cmp -s "$tmp/b.in" "$tmp/b.out" || {
    echo "FAIL: output differs from input" >&2; exit 1; }
left=$(ls "$work" | wc -l)
awk -v s="$start" -v a="$ta" -v b="$tb" -v left="$left" 'BEGIN {
    printf "A done after %.1f s (expected ~3.0: 1 s alone at 4 MB/s, then 2 s at 2 MB/s)\n", a - s
    printf "B done after %.1f s (expected ~6.0: 2 s at 2 MB/s, then 3 s alone at 4 MB/s)\n", b - s
    printf "both outputs identical to their inputs; lock files left: %d\n", left
    # generous bounds: a loaded machine may be slower, a broken limiter is faster
    bad = (a - s < 2.5 || a - s > 5 || b - s < 5.5 || b - s > 9 || left != 0)
    if (bad) print "FAIL: the copies did not share the budget as expected"
    exit bad }'
