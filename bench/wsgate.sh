#!/bin/bash
# Throughput of one TCP stream through a wsgate-client → wsgate-server tunnel
# on loopback, next to the same transfer over direct TCP and through a socat
# relay, all measured in the same run. The sender is `socat -u` reading
# /dev/zero (readbytes=BYTES), the sink `socat -u` to /dev/null (both with
# 256 KiB buffers, as the relay); a transfer is
# timed until the sink has seen EOF, i.e. every byte arrived.
# Then request/response ping-pong (memcached "version", asyncio client) over
# 1, 16 and 256 concurrent connections on the same three paths, and the RSS
# of wsgate-server and wsgate-client per idle tunnel with IDLE tunnels open.
#
#   OPSKIT_BUILD=build bash bench/wsgate.sh
#   (BYTES=2147483648 RUNS=3 SECONDS_PP=5 IDLE=4000 by default)
set -euo pipefail
BUILD=${OPSKIT_BUILD:-$(pwd)/build}
BYTES=${BYTES:-2147483648}
RUNS=${RUNS:-3}
SECONDS_PP=${SECONDS_PP:-5}
IDLE=${IDLE:-4000}
OUT=${OUT:-bench/results/wsgate.md}
for c in socat ss memcached; do command -v $c >/dev/null || { echo "bench/wsgate.sh: $c missing" >&2; exit 1; }; done
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

SINK=$(free_port); RELAY=$(free_port); SRV=$(free_port); CLI=$(free_port)
MC=$(free_port); MCRELAY=$(free_port); MCCLI=$(free_port)
printf 'sink,127.0.0.1:%s\nmc,127.0.0.1:%s\n' $SINK $MC > "$TMP/server.map"
printf '127.0.0.1:%s,http://127.0.0.1:%s/proxy/sink\n127.0.0.1:%s,http://127.0.0.1:%s/proxy/mc\n' \
    $CLI $SRV $MCCLI $SRV > "$TMP/client.map"
socat -b 262144 TCP-LISTEN:$RELAY,bind=127.0.0.1,reuseaddr,fork,backlog=1024 TCP:127.0.0.1:$SINK & PIDS+=($!)
socat TCP-LISTEN:$MCRELAY,bind=127.0.0.1,reuseaddr,fork,backlog=1024 TCP:127.0.0.1:$MC & PIDS+=($!)
mcuser=(); [ "$(id -u)" = 0 ] && mcuser=(-u nobody)
memcached -l 127.0.0.1 -p $MC -U 0 -c $((IDLE + 1000)) -t 1 "${mcuser[@]}" & PIDS+=($!)
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
wait_port $MC

# request/response: C connections, each "version\r\n" → "VERSION x\r\n" in a loop
pingpong() { # port conns → requests/s
    /usr/bin/python3 - "$1" "$2" "$SECONDS_PP" <<'PY'
import asyncio, sys, time
port, conns, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
async def one(stop, counts):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    while time.monotonic() < stop:
        w.write(b"version\r\n")
        await r.readuntil(b"\r\n")
        n += 1
    counts.append(n)
    w.close()
async def main():
    counts = []
    stop = time.monotonic() + secs
    await asyncio.gather(*(one(stop, counts) for _ in range(conns)))
    print("%.0f" % (sum(counts) / secs))
asyncio.run(main())
PY
}
declare -A RPS
for c in 1 16 256; do
    RPS[direct,$c]=$(pingpong $MC $c)
    RPS[socat,$c]=$(pingpong $MCRELAY $c)
    RPS[wsgate,$c]=$(pingpong $MCCLI $c)
done

# idle tunnels: open IDLE connections through the tunnel, one request each, then measure
rss() { awk '/^VmRSS/ {print $2}' /proc/$1/status; }
SPID=$(pgrep -f "wsgate-server -listen 127.0.0.1:$SRV" | head -1)
CPID=$(pgrep -f "wsgate-client --map $TMP/client.map" | head -1)
sleep 5 # let the idle sweep give the transfer buffers back
S0=$(rss $SPID); C0=$(rss $CPID)
read -r S1 C1 <<<"$(/usr/bin/python3 - "$MCCLI" "$IDLE" "$SPID" "$CPID" <<'PY'
import socket, sys, time
port, n, spid, cpid = map(int, sys.argv[1:5])
def rss(pid):
    for l in open("/proc/%d/status" % pid):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"version\r\n")
    buf = b""
    while not buf.endswith(b"\r\n"):
        buf += s.recv(100)
    socks.append(s)
time.sleep(5)  # two idle sweeps
print(rss(spid), rss(cpid))
PY
)"
SKB=$(awk -v a="$S1" -v b="$S0" -v n="$IDLE" 'BEGIN {printf "%.1f", (a-b)/n}')
CKB=$(awk -v a="$C1" -v b="$C0" -v n="$IDLE" 'BEGIN {printf "%.1f", (a-b)/n}')
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
    echo
    echo "#### request/response (memcached \"version\", ${SECONDS_PP}s each, Python asyncio client)"
    echo
    echo "| connections | direct TCP req/s | socat relay req/s | wsgate req/s | wsgate vs socat |"
    echo "|---:|---:|---:|---:|---:|"
    for c in 1 16 256; do
        pct=$(awk -v a="${RPS[wsgate,$c]}" -v b="${RPS[socat,$c]}" 'BEGIN {printf "%.0f%%", 100*a/b}')
        echo "| $c | ${RPS[direct,$c]} | ${RPS[socat,$c]} | ${RPS[wsgate,$c]} | $pct |"
    done
    echo
    echo "#### memory per idle tunnel ($IDLE tunnels open, after the idle sweep)"
    echo
    echo "| process | RSS before (KiB) | RSS with tunnels (KiB) | KiB per tunnel |"
    echo "|---|---:|---:|---:|"
    echo "| wsgate-server | $S0 | $S1 | $SKB |"
    echo "| wsgate-client | $C0 | $C1 | $CKB |"
} | tee "$OUT"
