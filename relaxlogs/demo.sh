#!/usr/bin/env bash
# relaxlogs demo: local-time rotation driven by libfaketime, the `current`
# link following the newest file, SIGALRM, max-files, --compress and a long
# line. Runs in a few seconds in a temp dir and cleans up.
set -euo pipefail
build=${OPSKIT_BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
rl=$build/relaxlogs
lib=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1 || true)
work=$(mktemp -d /tmp/relaxlogs-demo.XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
dir=$work/logs
show() {
    echo "  \$ ls $dir"
    ls -l "$dir" | awk 'NR > 1 { $1=$2=$3=$4=$6=$7=$8=""; print "   " $0 }' | sed 's/  */ /g'
}

if [ -z "$lib" ]; then
    echo "libfaketime is not installed (make deps): skipping the faked-clock part"
else
    echo "== hourly rotation in Asia/Kolkata (UTC+05:30), clock moved by libfaketime"
    export TZ=Asia/Kolkata
    rc=$work/faketime.rc
    # a relative offset to the real clock: the faked clock keeps running
    setclock() { # atomically: relaxlogs may read the file at any moment
        echo "$(($(date -u -d "$1" +%s) - $(date +%s)))" | sed 's/^[^-]/+&/' > "$rc.new"
        mv "$rc.new" "$rc"
    }
    setclock "2026-01-01 00:20:00 UTC"  # 05:50 IST
    exec 3> >(LD_PRELOAD=$lib FAKETIME_TIMESTAMP_FILE=$rc FAKETIME_NO_CACHE=1 NO_FAKE_STAT=1 \
        FAKETIME_DONT_FAKE_MONOTONIC=1 "$rl" --log-dir "$dir" --with-time)
    for t in "2026-01-01 00:20:00" "2026-01-01 00:40:00" "2026-01-01 01:35:00"; do
        setclock "$t UTC"
        sleep 0.3
        echo "GET /index.html 200 (sent at $t UTC)" >&3
        sleep 0.4
        echo "  at $(TZ=Asia/Kolkata date -d "$t UTC" '+%H:%M %Z'): current -> $(readlink "$dir/current")"
    done
    exec 3>&-
    sleep 0.5
    show
    for f in "$dir"/log.*; do echo "  --- $(basename "$f")"; sed 's/^/    /' "$f"; done
    unset TZ
    rm -rf "$dir"
fi

echo
echo "== SIGALRM rotates now, --max-files 2 keeps two files, --compress gzips finished ones"
mkfifo "$work/in"
"$rl" --log-dir "$dir" --max-files 2 --compress < "$work/in" &
pid=$!
exec 4> "$work/in"
for i in 1 2 3; do
    echo "line $i" >&4
    sleep 0.3
    kill -ALRM "$pid"
    sleep 0.3
done
echo "line 4" >&4
exec 4>&-
wait "$pid"
pid=
show
echo "  current -> $(readlink "$dir/current"): $(cat "$dir/current")"
for f in "$dir"/*.gz; do echo "  $(basename "$f"): $(gzip -dc "$f")"; done

echo
echo "== a 3 MiB line is written as 1 MiB pieces (the original exits on it)"
rm -rf "$dir"
{ echo first; head -c 3145728 /dev/zero | tr '\0' x; echo; printf 'last line, no newline'; } |
    "$rl" --log-dir "$dir" 2>&1 | sed 's/^/  stderr: /'
awk '{ printf "   line %d: %d bytes\n", NR, length($0) }' "$dir/current"
