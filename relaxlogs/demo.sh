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
show() { # the log dir: size in bytes, name (and where `current` points)
    echo "  files in the log dir:"
    (cd "$dir" && for f in *; do
        if [ -L "$f" ]; then printf '    %-22s -> %s\n' "$f" "$(readlink "$f")"
        else printf '    %-22s %6d bytes\n' "$f" "$(stat -c %s "$f")"; fi
    done)
}
fail() { echo "FAIL: $*"; exit 1; }
echo "proves: files rotate at local-time boundaries, \`current\` follows, and no line is ever lost"

if [ -z "$lib" ]; then
    echo "(libfaketime is not installed — make deps: the faked-clock part is left out)"
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
    [ "$(readlink "$dir/current")" = log.202601010700 ] && [ "$(ls "$dir"/log.* | wc -l)" = 3 ] &&
        grep -q '^\[01/Jan/2026:06:10:0[0-9] +0530\] ' "$dir/log.202601010600" ||
        fail "expected three hourly files at IST boundaries, current -> log.202601010700"
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
for f in "$dir"/*.gz; do echo "  $(basename "$f") holds: $(gzip -dc "$f")"; done
[ "$(cat "$dir/current")" = "line 4" ] && [ "$(ls "$dir" | wc -l)" = 3 ] &&
    [ "$(gzip -dc "$dir"/*.gz)" = "line 3" ] || fail "expected current + one .gz holding line 3"

echo
echo "== a 3 MiB line is written as 1 MiB pieces (the original exits on it)"
rm -rf "$dir"
{ echo first; head -c 3145728 /dev/zero | tr '\0' x; echo; printf 'last line, no newline'; } |
    "$rl" --log-dir "$dir" 2>&1 | sed 's/^/  stderr: /'
awk '{ printf "   line %d: %7d bytes\n", NR, length($0) }' "$dir/current"
[ "$(awk '{ n += length($0) } END { print NR, n }' "$dir/current")" = "5 3145754" ] ||
    fail "expected 5 lines holding all 3,145,754 bytes"
echo "   all 3,145,754 bytes are there (first + 3 MiB + last line)"
