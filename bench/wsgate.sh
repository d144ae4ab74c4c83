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
# Last, both directions side by side with default socat, socat -b262144 (a
# tuned one-hop relay) and HAProxy (mode tcp): upload and download MB/s
# (XBYTES each, median of XRUNS interleaved rounds), the median round trip of 64-byte messages on
# one connection, and the median of connect + one byte echoed back + close,
# each measured by the same Python client against the same echo server.
#
#   OPSKIT_BUILD=build bash bench/wsgate.sh
#   (BYTES=2147483648 RUNS=3 SECONDS_PP=5 IDLE=10000 XBYTES=1073741824 RTTS=20000
#    CONNS=1000 LROUNDS=5 XRUNS=5 by default)
set -euo pipefail
BUILD=${OPSKIT_BUILD:-$(pwd)/build}
BYTES=${BYTES:-2147483648}
RUNS=${RUNS:-3}
SECONDS_PP=${SECONDS_PP:-5}
IDLE=${IDLE:-10000}
XBYTES=${XBYTES:-1073741824}
RTTS=${RTTS:-20000}
CONNS=${CONNS:-1000}
LROUNDS=${LROUNDS:-5}
XRUNS=${XRUNS:-5}
OUT=${OUT:-bench/results/wsgate.md}
# each idle tunnel holds two descriptors in the server and two in the client
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ $((IDLE * 2 + 200)) -gt "$(ulimit -n)" ]; then
    echo "bench/wsgate.sh: ulimit -n $(ulimit -n) holds $(( ($(ulimit -n) - 200) / 2 )) idle tunnels, not IDLE=$IDLE; using that" >&2
    IDLE=$(( ($(ulimit -n) - 200) / 2 ))
fi
for c in socat ss memcached haproxy; do command -v $c >/dev/null || { echo "bench/wsgate.sh: $c missing" >&2; exit 1; }; done
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

SINK=$(free_port); RELAY=$(free_port); SRV=$(free_port); CLI=$(free_port)
MC=$(free_port); MCRELAY=$(free_port); MCCLI=$(free_port)
SRC=$(free_port); ECHO=$(free_port); SRCCLI=$(free_port); ECHOCLI=$(free_port)
printf 'sink,127.0.0.1:%s\nmc,127.0.0.1:%s\nsrc,127.0.0.1:%s\necho,127.0.0.1:%s\n' \
    $SINK $MC $SRC $ECHO > "$TMP/server.map"
printf '127.0.0.1:%s,http://127.0.0.1:%s/proxy/%s\n' $CLI $SRV sink $MCCLI $SRV mc \
    $SRCCLI $SRV src $ECHOCLI $SRV echo > "$TMP/client.map"
socat -b 262144 TCP-LISTEN:$RELAY,bind=127.0.0.1,reuseaddr,fork,backlog=1024 TCP:127.0.0.1:$SINK & PIDS+=($!)
socat TCP-LISTEN:$MCRELAY,bind=127.0.0.1,reuseaddr,fork,backlog=1024 TCP:127.0.0.1:$MC & PIDS+=($!)
mcuser=(); [ "$(id -u)" = 0 ] && mcuser=(-u nobody)
memcached -l 127.0.0.1 -p $MC -U 0 -c $((IDLE + 1000)) -t 1 "${mcuser[@]}" & PIDS+=($!)
"$BUILD/wsgate-server" -listen 127.0.0.1:$SRV -map "$TMP/server.map" 2>"$TMP/server.log" & PIDS+=($!)
"$BUILD/wsgate-client" --map "$TMP/client.map" 2>"$TMP/client.log" & PIDS+=($!)
wait_port $SRV; wait_port $CLI

# The echo server of the latency tests (asyncio, one process, no fork).
/usr/bin/python3 - "$ECHO" <<'PY' & PIDS+=($!)
import asyncio, socket, sys
async def echo(r, w):
    w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        b = await r.read(65536)
        if not b:
            break
        w.write(b)
    w.close()
async def main():
    srv = await asyncio.start_server(echo, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    await srv.serve_forever()
asyncio.run(main())
PY
# The relays of the side-by-side table, each in front of sink, src and echo.
declare -A SD ST HP
for t in sink src echo; do SD[$t]=$(free_port); ST[$t]=$(free_port); HP[$t]=$(free_port); done
ST[sink]=$RELAY
declare -A TPORT=([sink]=$SINK [src]=$SRC [echo]=$ECHO)
for t in sink src echo; do
    socat TCP-LISTEN:${SD[$t]},bind=127.0.0.1,reuseaddr,fork,backlog=1024 TCP:127.0.0.1:${TPORT[$t]} & PIDS+=($!)
    [ $t = sink ] || { socat -b 262144 TCP-LISTEN:${ST[$t]},bind=127.0.0.1,reuseaddr,fork,backlog=1024 \
        TCP:127.0.0.1:${TPORT[$t]} & PIDS+=($!); }
done
{
    printf 'global\n    nbthread %s\n    maxconn 4000\ndefaults\n    mode tcp\n' "$(nproc)"
    printf '    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n'
    for t in sink src echo; do
        printf 'listen %s\n    bind 127.0.0.1:%s\n    server s1 127.0.0.1:%s\n' $t ${HP[$t]} ${TPORT[$t]}
    done
} > "$TMP/haproxy.cfg"
haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 & PIDS+=($!)

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
# ---- both directions and latency, side by side ----
# one download from port $1 (the source writes XBYTES of zeros); prints MB/s
download() {
    socat -u -b 262144 OPEN:/dev/zero,readbytes=$XBYTES TCP-LISTEN:$SRC,bind=127.0.0.1,reuseaddr & local src=$!
    for _ in $(seq 200); do ss -ltn "sport = :$SRC" | grep -q LISTEN && break; sleep 0.02; done
    local t0 t1
    t0=$(date +%s.%N)
    socat -u -b 262144 TCP:127.0.0.1:$1 OPEN:/dev/null
    wait $src
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" -v n="$XBYTES" 'BEGIN {printf "%.0f\n", n/(b-a)/1e6}'
}
upload() { # port → MB/s
    local s; s=$(BYTES=$XBYTES transfer "$1")
    awk -v s="$s" -v n="$XBYTES" 'BEGIN {printf "%.0f\n", n/s/1e6}'
}
# median round trip (µs) of RTTS 64-byte messages on one connection, and the
# median (µs) of CONNS connect + 1 byte echoed + close
latency() {
    /usr/bin/python3 - "$1" $((RTTS / LROUNDS)) $((CONNS / LROUNDS)) <<'PY'
import socket, sys, time
port, n, conns = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def med(v):
    v.sort()
    return v[len(v) // 2] * 1e6
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
msg, buf, rtt = b"x" * 64, bytearray(64), []
for i in range(n + 200):
    t0 = time.perf_counter()
    s.sendall(msg)
    got = 0
    while got < 64:
        got += s.recv_into(memoryview(buf)[got:])
    if i >= 200:  # warm-up
        rtt.append(time.perf_counter() - t0)
s.close()
cfb = []
for i in range(conns):
    t0 = time.perf_counter()
    c = socket.create_connection(("127.0.0.1", port))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sendall(b"x")
    if c.recv(1) != b"x":
        sys.exit("no echo on port %d" % port)
    c.close()
    cfb.append(time.perf_counter() - t0)
print("%.0f %.0f" % (med(rtt), med(cfb)))
PY
}
XPATHS=(direct socat socat-tuned haproxy wsgate)
xport() { # path target → port
    case $1 in
        direct) echo "${TPORT[$2]}" ;;
        socat) echo "${SD[$2]}" ;;
        socat-tuned) echo "${ST[$2]}" ;;
        haproxy) echo "${HP[$2]}" ;;
        wsgate) case $2 in sink) echo $CLI ;; src) echo $SRCCLI ;; echo) echo $ECHOCLI ;; esac ;;
    esac
}
wait_port $SRCCLI; wait_port $ECHOCLI; wait_port ${HP[echo]}; wait_port $ECHO
declare -A XUP XDN XRTT XCFB
for p in "${XPATHS[@]}"; do : > "$TMP/up.$p"; : > "$TMP/dn.$p"; done
for _ in $(seq "$XRUNS"); do # interleaved: every path once per round
    for p in "${XPATHS[@]}"; do
        upload "$(xport $p sink)" >> "$TMP/up.$p"
        download "$(xport $p src)" >> "$TMP/dn.$p"
    done
done
# latency: LROUNDS interleaved rounds (every path once per round, RTTS/LROUNDS
# round trips and CONNS/LROUNDS connections each); the median of the rounds
for p in "${XPATHS[@]}"; do : > "$TMP/lat.$p"; done
for _ in $(seq "$LROUNDS"); do
    for p in "${XPATHS[@]}"; do latency "$(xport $p echo)" >> "$TMP/lat.$p"; done
done
for p in "${XPATHS[@]}"; do
    XUP[$p]=$(median < "$TMP/up.$p")
    XDN[$p]=$(median < "$TMP/dn.$p")
    XRTT[$p]=$(awk '{print $1}' "$TMP/lat.$p" | median)
    XCFB[$p]=$(awk '{print $2}' "$TMP/lat.$p" | median)
done

{
    echo "### wsgate: one-stream throughput on loopback ($(nproc) CPUs, $(date -u +%Y-%m-%d))"
    echo
    echo "$BYTES bytes per transfer, median of $RUNS runs, same run for every path."
    echo "The Go originals (kazeburo/wsgate-server and wsgate-client) are not in these tables:"
    echo "they need Go >= 1.23, github.com/golang-jwt/jwt/v5 and (the server)"
    echo "github.com/lestrrat/go-server-starter-listener, which Debian 12 does not package"
    echo "(golang-go 1.19, golang-github-golang-jwt-jwt-dev 4.4.3), and no module proxy is reachable."
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
    echo
    echo "#### both directions and latency, next to a tuned one-hop relay"
    echo
    echo "Upload (app → wsgate-client → wsgate-server → upstream) and download (upstream → app),"
    echo "$XBYTES bytes, median of $XRUNS interleaved rounds; 64-byte round trip (median on one"
    echo "connection) and connect + first byte (median of connect, 1 byte echoed, close): the"
    echo "median of $LROUNDS interleaved rounds of $((RTTS / LROUNDS)) round trips and $((CONNS / LROUNDS)) connections."
    echo "The latency client and echo server are the same Python for every route."
    echo
    echo "| route | upload MB/s | download MB/s | 64 B round trip µs | connect + first byte µs |"
    echo "|---|---:|---:|---:|---:|"
    for p in "${XPATHS[@]}"; do
        case $p in
            direct) lab="direct TCP" ;;
            socat) lab="socat relay, default buffers" ;;
            socat-tuned) lab="socat -b262144 relay" ;;
            haproxy) lab="HAProxy $(haproxy -v | awk 'NR==1 {print $3}') mode tcp" ;;
            wsgate) lab="wsgate-client → wsgate-server (two hops)" ;;
        esac
        echo "| $lab | ${XUP[$p]} | ${XDN[$p]} | ${XRTT[$p]} | ${XCFB[$p]} |"
    done
    xr() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f×", a/b}'; }
    for ref in socat-tuned haproxy; do
        [ $ref = haproxy ] && lab="wsgate / HAProxy" || lab="wsgate / socat -b262144"
        echo "| **$lab** | $(xr ${XUP[wsgate]} ${XUP[$ref]}) | $(xr ${XDN[wsgate]} ${XDN[$ref]}) |" \
             "$(xr ${XRTT[wsgate]} ${XRTT[$ref]}) | $(xr ${XCFB[wsgate]} ${XCFB[$ref]}) |"
    done
} | tee "$OUT"
