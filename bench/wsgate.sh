#!/bin/bash
# Throughput of one TCP stream through a wsgate-client → wsgate-server tunnel
# on loopback, next to the same transfer over direct TCP and through a socat
# relay, all measured in the same run. The sender is `socat -u` reading
# /dev/zero (readbytes=BYTES), the sink `socat -u` to /dev/null (both with
# 256 KiB buffers, as the relay); a transfer is
# timed until the sink has seen EOF, i.e. every byte arrived.
#
#   OPSKIT_BUILD=build bash bench/wsgate.sh        (BYTES=2147483648 RUNS=3 by default)
set -euo pipefail
BUILD=${OPSKIT_BUILD:-$(pwd)/build}
BYTES=${BYTES:-2147483648}
RUNS=${RUNS:-3}
OUT=${OUT:-bench/results/wsgate.md}
for c in socat ss; do command -v $c >/dev/null || { echo "bench/wsgate.sh: $c missing" >&2; exit 1; }; done
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

SINK=$(free_port); RELAY=$(free_port); SRV=$(free_port); CLI=$(free_port)
echo "sink,127.0.0.1:$SINK" > "$TMP/server.map"
echo "127.0.0.1:$CLI,http://127.0.0.1:$SRV/proxy/sink" > "$TMP/client.map"
socat -b 262144 TCP-LISTEN:$RELAY,bind=127.0.0.1,reuseaddr,fork TCP:127.0.0.1:$SINK & PIDS+=($!)
"$BUILD/wsgate-server" -listen 127.0.0.1:$SRV -map "$TMP/server.map" 2>"$TMP/server.log" & PIDS+=($!)
"$BUILD/wsgate-client" --map "$TMP/client.map" 2>"$TMP/client.log" & PIDS+=($!)
wait_port $SRV; wait_port $CLI

# one transfer to port $1; prints seconds
transfer() {
    socat -u -b 262144 TCP-LISTEN:$SINK,bind=127.0.0.1,reuseaddr OPEN:/dev/null & local sink=$!
    for _ in $(seq 200); do ss -ltn "sport = :$SINK" | grep -q LISTEN && break; sleep 0.02; done
    local t0 t1
    t0=$(date +%s.%N)
    socat -u -b 262144 OPEN:/dev/zero,readbytes=$BYTES TCP:127.0.0.1:$1
    wait $sink
    t1=$(date +%s.%N)
    echo "$t0 $t1" | awk '{printf "%.3f\n", $2-$1}'
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A MBS SECS
for name in direct socat wsgate; do
    case $name in direct) port=$SINK ;; socat) port=$RELAY ;; wsgate) port=$CLI ;; esac
    : > "$TMP/times"
    for _ in $(seq "$RUNS"); do transfer $port >> "$TMP/times"; done
    s=$(median < "$TMP/times")
    SECS[$name]=$s
    MBS[$name]=$(awk -v b="$BYTES" -v s="$s" 'BEGIN {printf "%.0f", b/s/1e6}')
done

ok=$(grep -c '"status":"Suceeded"' "$TMP/server.log" || true)
{
    echo "### wsgate: one-stream throughput on loopback ($(nproc) CPUs, $(date -u +%Y-%m-%d))"
    echo
    echo "$BYTES bytes per transfer, median of $RUNS runs, same run for every path."
    echo
    echo "| path | seconds | MB/s | vs socat relay |"
    echo "|---|---:|---:|---:|"
    for name in direct socat wsgate; do
        label=$name
        [ $name = direct ] && label="direct TCP"
        [ $name = socat ] && label="socat relay (TCP→TCP)"
        [ $name = wsgate ] && label="wsgate-client → wsgate-server (ws)"
        pct=$(awk -v a="${MBS[$name]}" -v b="${MBS[socat]}" 'BEGIN {printf "%.0f%%", 100*a/b}')
        echo "| $label | ${SECS[$name]} | ${MBS[$name]} | $pct |"
    done
    echo
    echo "wsgate tunnels completed with status Suceeded: $ok of $RUNS"
} | tee "$OUT"
