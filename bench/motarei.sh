#!/bin/bash
# motarei next to HAProxy (TCP mode, nbthread 2; once with its defaults, once
# with forced splice), a socat relay and direct TCP,
# all measured in the same run, in interleaved rounds (the order of the paths
# rotates every round; medians are reported):
#
#  1. iperf3, one stream, both directions (-c and -c -R);
#  2. 64-byte request/response (echo) over 1 and 64 connections (Python
#     asyncio client, socat PIPE echo server);
#  3. connections per second: short connections, each sends "version\r\n" to
#     memcached, reads the reply and closes (motarei, HAProxy, direct);
#  4. switch latency: from `docker start` of a new labelled container to the
#     first request that container serves through motarei (busybox httpd),
#     with the default discovery and with --health-check http:/id.
#
# "To a local listener the discovery points at" (the main table): a labelled
# container publishes its ports on 127.0.0.2:H (docker-proxy sits there,
# unused), the engine reports PublicPort H, and motarei dials
# --proxy-connect-ip 127.0.0.1:H where the host's iperf3 / echo / memcached
# listen. HAProxy, socat and direct TCP go to the same 127.0.0.1:H servers, so
# every path measures only the relay. "Through docker-proxy" (second table):
# iperf3 and the echo server run inside a container published with
# -p 127.0.0.1::PORT and every path goes to that docker-proxy port.
#
# Uses the Docker engine that answers (DOCKER_HOST or the default socket). Only
# when none does it starts one, and that one is private: its own socket, exec
# root and data root in a temp dir, no default bridge (--bridge=none) and a
# network of its own, so an engine someone else starts meanwhile on the default
# socket and docker0 is not disturbed, nor is its socket removed when ours
# stops. Builds a throw-away image with `docker import` (busybox-static, iperf3
# and socat with their libraries).
#
#   OPSKIT_BUILD=build bash bench/motarei.sh
#   (RUNS=3 SECONDS_IPERF=3 SECONDS_RR=1.5 SECONDS_CPS=2 CPS_PROCS=4 SWITCHES=5
#    DP_RUNS=1 by default; DP_RUNS=0 skips the docker-proxy table)
set -euo pipefail
BUILD=${OPSKIT_BUILD:-$(pwd)/build}
RUNS=${RUNS:-3}
SECONDS_IPERF=${SECONDS_IPERF:-3}
SECONDS_RR=${SECONDS_RR:-1.5}
SECONDS_CPS=${SECONDS_CPS:-2}
CPS_PROCS=${CPS_PROCS:-4}
SWITCHES=${SWITCHES:-5}
DP_RUNS=${DP_RUNS:-1}
OUT=${OUT:-bench/results/motarei.md}
PY=/usr/bin/python3
for c in iperf3 haproxy socat memcached docker dockerd ss busybox; do
    command -v $c >/dev/null || { echo "bench/motarei.sh: $c missing" >&2; exit 1; }
done
[ -x "$BUILD/motarei" ] || { echo "bench/motarei.sh: $BUILD/motarei missing" >&2; exit 1; }
T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
TMP=$(mktemp -d)
TAG=opskit-bench-bb:$$
LBL=opskit-bench-$$ # every container of this run carries app=$LBL-<role>
PIDS=()
DOCKERD_PID=
IMAGE_MADE=
NET=()     # extra `docker run` arguments: the private engine's network
NET_MADE=
CPIDS=()   # host PIDs of our containers' first processes, in case the engine goes away
cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if ! docker info >/dev/null 2>&1; then
        # the engine went away (someone else's, stopped meanwhile; with --live-restore
        # its containers keep running): end our containers' processes ourselves
        for p in "${CPIDS[@]}"; do # pid:start-time, so a reused pid is left alone
            [ "$(cut -d' ' -f22 "/proc/${p%:*}/stat" 2>/dev/null)" = "${p#*:}" ] && kill -KILL "${p%:*}"
        done
    else
        for role in local dp sw; do
            ids=$(docker ps -aq --filter "label=app=$LBL-$role")
            [ -n "$ids" ] && docker rm -f $ids >/dev/null
        done
        [ -n "$IMAGE_MADE" ] && docker rmi "$TAG" >/dev/null
        [ -n "$NET_MADE" ] && docker network rm "$LBL" >/dev/null
    fi
    if [ -n "$DOCKERD_PID" ]; then
        kill "$DOCKERD_PID" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait for a listener without connecting to it (a connect would reach the backend)
wait_listen() { # ip port
    for _ in $(seq 200); do ss -Hltn "sport = :$2" | grep -qF "$1:$2" && return 0; sleep 0.05; done
    echo "bench/motarei.sh: nothing listens on $1:$2" >&2
    docker info >/dev/null 2>&1 || echo "bench/motarei.sh: the Docker engine no longer answers" >&2
    tail -n 3 "$TMP"/motarei-*.log "$TMP"/haproxy*.log "$TMP"/socat.log >&2 2>/dev/null
    exit 1
}
track() { # container id: remember its first process as pid:start-time
    local pid; pid=$(docker inspect -f '{{.State.Pid}}' "$1")
    CPIDS+=("$pid:$(cut -d' ' -f22 /proc/$pid/stat)")
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "nan"}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "n/a"}'; }

# ---- Docker engine and image ----
if ! docker info >/dev/null 2>&1; then
    mkdir -p "$TMP/docker"
    dockerd --iptables=false --storage-driver=vfs --bridge=none -H "unix://$TMP/docker.sock" \
        --data-root "$TMP/docker" --exec-root "$TMP/exec" --pidfile "$TMP/docker.pid" \
        >"$TMP/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    export DOCKER_HOST=unix://$TMP/docker.sock # for docker and motarei alike
    for _ in $(seq 300); do docker info >/dev/null 2>&1 && break; sleep 0.1; done
    docker info >/dev/null 2>&1 || { echo "bench/motarei.sh: dockerd did not start" >&2; tail "$TMP/dockerd.log" >&2; exit 1; }
    docker network create "$LBL" >/dev/null
    NET_MADE=1
    NET=(--network "$LBL")
    ENGINE="started by the benchmark: vfs, private socket, data root in a temp dir"
else
    ENGINE="already running"
fi
ENGINE_VERSION=$(docker version --format '{{.Server.Version}}')
IMG=$TMP/img
mkdir -p "$IMG/bin" "$IMG/www" "$IMG/tmp" "$IMG/etc"
chmod 1777 "$IMG/tmp"
cp /bin/busybox "$IMG/bin/busybox"
for a in sh sleep httpd hostname cat netstat; do ln -s busybox "$IMG/bin/$a"; done
for b in /usr/bin/iperf3 /usr/bin/socat; do
    cp "$b" "$IMG/bin/"
    for lib in $(ldd "$b" | awk '/=> \// {print $3} /^[[:space:]]*\/lib/ {print $1}'); do
        mkdir -p "$IMG$(dirname "$lib")"
        cp -L "$lib" "$IMG$lib"
    done
done
echo "root:x:0:0:root:/:/bin/sh" > "$IMG/etc/passwd"
tar -C "$IMG" -c . | docker import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' - "$TAG" >/dev/null
IMAGE_MADE=1

# ---- the local listeners and the container whose discovery points at them ----
H_IPERF=$(free_port); H_ECHO=$(free_port); H_MC=$(free_port)  # host servers on 127.0.0.1
P_IPERF=$(free_port); P_ECHO=$(free_port); P_MC=$(free_port)  # private ports = motarei's
iperf3 -s -B 127.0.0.1 -p $H_IPERF >"$TMP/iperf3-local.log" 2>&1 & PIDS+=($!)
socat TCP-LISTEN:$H_ECHO,bind=127.0.0.1,reuseaddr,fork,backlog=1024 PIPE & PIDS+=($!)
mcuser=(); [ "$(id -u)" = 0 ] && mcuser=(-u nobody)
memcached -l 127.0.0.1 -p $H_MC -U 0 -t 2 -c 8192 -b 1024 "${mcuser[@]}" & PIDS+=($!)
LC=$(docker run -d "${NET[@]}" -l app=$LBL-local -p 127.0.0.2:$H_IPERF:$P_IPERF \
    -p 127.0.0.2:$H_ECHO:$P_ECHO -p 127.0.0.2:$H_MC:$P_MC "$TAG" sleep 1000000)
track "$LC"
"$BUILD/motarei" -l app=$LBL-local --bind 127.0.0.1 2>"$TMP/motarei-local.log" & PIDS+=($!)
wait_listen 127.0.0.1 $H_IPERF; wait_listen 127.0.0.1 $H_ECHO; wait_listen 127.0.0.1 $H_MC
wait_listen 127.0.0.1 $P_IPERF; wait_listen 127.0.0.1 $P_ECHO; wait_listen 127.0.0.1 $P_MC

# ---- the container behind docker-proxy ----
if [ "$DP_RUNS" -gt 0 ]; then
    Q_IPERF=$(free_port); Q_ECHO=$(free_port)
    DPC=$(docker run -d "${NET[@]}" -l app=$LBL-dp -p 127.0.0.1::$Q_IPERF -p 127.0.0.1::$Q_ECHO "$TAG" sh -c \
        "socat TCP-LISTEN:$Q_ECHO,reuseaddr,fork,backlog=1024 PIPE & exec iperf3 -s -p $Q_IPERF")
    track "$DPC"
    D_IPERF=$(docker port "$DPC" $Q_IPERF/tcp | head -1); D_IPERF=${D_IPERF##*:}
    D_ECHO=$(docker port "$DPC" $Q_ECHO/tcp | head -1); D_ECHO=${D_ECHO##*:}
    for _ in $(seq 100); do
        n=$(docker exec "$DPC" netstat -ltn | grep -cE ":($Q_IPERF|$Q_ECHO) " || true)
        [ "$n" -ge 2 ] && break; sleep 0.1
    done
    "$BUILD/motarei" -l app=$LBL-dp --bind 127.0.0.1 2>"$TMP/motarei-dp.log" & PIDS+=($!)
    wait_listen 127.0.0.1 $Q_IPERF; wait_listen 127.0.0.1 $Q_ECHO
fi

# ---- HAProxy and socat in front of the same servers ----
# targets: name → backend port; each gets a HAProxy and a socat listener
declare -A TGT=([iperf]=$H_IPERF [echo]=$H_ECHO [mc]=$H_MC)
[ "$DP_RUNS" -gt 0 ] && TGT+=([dpiperf]=$D_IPERF [dpecho]=$D_ECHO)
# Two HAProxy processes: the defaults (copies through 16 KiB buffers) and with
# forced splice(2) both ways, like motarei's relay; a trial showed splice-auto
# changing nothing on loopback.
declare -A HA HS SO
haproxy_cfg() { # name-of-port-array extra-defaults-lines...
    local -n ports=$1
    echo "global"
    echo "    nbthread 2"
    echo "    maxconn 4000" # forced splice adds pipes: 8000 would need more than 20000 fds
    echo "defaults"
    echo "    mode tcp"
    echo "    timeout connect 5s"
    echo "    timeout client 60s"
    echo "    timeout server 60s"
    local l; for l in "${@:2}"; do echo "    $l"; done
    for t in "${!TGT[@]}"; do
        echo "listen $t"
        echo "    bind 127.0.0.1:${ports[$t]}"
        echo "    server s1 127.0.0.1:${TGT[$t]}"
    done
}
for t in "${!TGT[@]}"; do HA[$t]=$(free_port); HS[$t]=$(free_port); done
haproxy_cfg HA > "$TMP/haproxy.cfg"
haproxy_cfg HS "option splice-request" "option splice-response" > "$TMP/haproxy-splice.cfg"
haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 & PIDS+=($!)
haproxy -db -f "$TMP/haproxy-splice.cfg" >"$TMP/haproxy-splice.log" 2>&1 & PIDS+=($!)
for t in "${!TGT[@]}"; do
    SO[$t]=$(free_port)
    socat -b262144 TCP-LISTEN:${SO[$t]},bind=127.0.0.1,reuseaddr,fork,backlog=1024,nodelay \
        TCP:127.0.0.1:${TGT[$t]},nodelay 2>>"$TMP/socat.log" & PIDS+=($!) # iperf3 ends with resets
done
for t in "${!TGT[@]}"; do
    wait_listen 127.0.0.1 ${HA[$t]}; wait_listen 127.0.0.1 ${HS[$t]}; wait_listen 127.0.0.1 ${SO[$t]}
done

# port of path $1 (direct socat haproxy haproxy-splice motarei) for target $2
port_of() {
    case $1 in
        direct) echo "${TGT[$2]}" ;;
        socat) echo "${SO[$2]}" ;;
        haproxy) echo "${HA[$2]}" ;;
        haproxy-splice) echo "${HS[$2]}" ;;
        motarei) case $2 in iperf) echo $P_IPERF ;; echo) echo $P_ECHO ;; mc) echo $P_MC ;;
                     dpiperf) echo $Q_IPERF ;; dpecho) echo $Q_ECHO ;; esac ;;
    esac
}
# the paths in round $1's order (rotated so no path always goes first)
order() { local -a p=("${@:2}"); local n=${#p[@]} i; for i in $(seq 0 $((n - 1))); do echo "${p[$(( (i + $1) % n ))]}"; done; }

# iperf3 port [-R] → Gbit/s received (retried: the server may still be closing the last test)
iperf() {
    local out
    for _ in 1 2 3 4 5; do
        if out=$(iperf3 -c 127.0.0.1 -p "$1" -t "$SECONDS_IPERF" -J "${@:2}" 2>/dev/null); then
            $PY -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))' <<<"$out" && return 0
        fi
        echo retry >> "$TMP/iperf-retries"
        sleep 0.5
    done
    echo "bench/motarei.sh: iperf3 to port $1 failed" >&2; exit 1
}

# request/response: port conns → requests/s (64 conns: two client processes)
cat > "$TMP/rr.py" <<'PY'
import asyncio, os, socket, sys, time
port, conns, secs, size = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
procs = 1 if conns == 1 else 2
msg = b"x" * (size - 1) + b"\n"
async def one(stop, out):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    w.write(msg)
    await r.readexactly(size)  # connected all the way to the server
    n = 0
    while time.monotonic() < stop:
        w.write(msg)
        if await r.readexactly(size) != msg:
            raise SystemExit("rr.py: wrong echo")
        n += 1
    out.append(n)
    w.close()
async def main(c, wfd):
    out = []
    stop = time.monotonic() + secs
    await asyncio.gather(*(one(stop, out) for _ in range(c)))
    os.write(wfd, b"%d\n" % sum(out))
r, w = os.pipe()
kids = []
for i in range(procs):
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            asyncio.run(main(conns // procs + (i < conns % procs), w))
        except BaseException as e:
            print("rr.py: port %d: %r" % (port, e), file=sys.stderr)
            code = 1
        os._exit(code)
    kids.append(pid)
os.close(w)
for p in kids:
    os.waitpid(p, 0)
counts = os.fdopen(r).read().split()
if len(counts) != procs:
    raise SystemExit("rr.py: a client process failed")
print("%.0f" % (sum(map(int, counts)) / secs))
PY
rr() { $PY "$TMP/rr.py" "$1" "$2" "$SECONDS_RR" 64; }

# connections per second: port → "conns/s failures" (CPS_PROCS processes, one connection at a time each)
cat > "$TMP/cps.py" <<'PY'
import os, socket, sys, time
port, secs, procs = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
def worker(wfd):
    stop = time.monotonic() + secs
    n = fails = 0
    while time.monotonic() < stop:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            try:
                s.sendall(b"version\r\n")
                buf = b""
                while not buf.endswith(b"\r\n"):
                    d = s.recv(64)
                    if not d:
                        raise OSError("EOF before the reply")
                    buf += d
            finally:
                s.close()
            n += 1
        except OSError:
            fails += 1
    os.write(wfd, b"%d %d\n" % (n, fails))
r, w = os.pipe()
kids = []
for _ in range(procs):
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            worker(w)
        finally:
            os._exit(0)
    kids.append(pid)
os.close(w)
for p in kids:
    os.waitpid(p, 0)
tot = fails = 0
for line in os.fdopen(r).read().splitlines():
    a, b = map(int, line.split())
    tot += a
    fails += b
print("%.0f %d" % (tot / secs, fails))
PY

# one value per round in $TMP/v.PATH.METRIC; the measurement runs in an assignment
# so that its failure stops the script (set -e ignores it inside a command's arguments)
rec() { echo "$3" >> "$TMP/v.$1.$2"; } # path metric value
med() { median < "$TMP/v.$1.$2"; }
PATHS=(direct socat haproxy haproxy-splice motarei)

echo "== iperf3 (${SECONDS_IPERF}s, $RUNS rounds) and 64-byte request/response (${SECONDS_RR}s)" >&2
for r in $(seq "$RUNS"); do
    for p in $(order $r "${PATHS[@]}"); do
        v=$(iperf "$(port_of $p iperf)"); rec $p fwd "$v"
        v=$(iperf "$(port_of $p iperf)" -R); rec $p rev "$v"
    done
    for c in 1 64; do
        for p in $(order $r "${PATHS[@]}"); do v=$(rr "$(port_of $p echo)" $c); rec $p rr$c "$v"; done
    done
    echo "   round $r done ($(( $(date +%s) - T_START ))s)" >&2
done

echo "== connections per second (${SECONDS_CPS}s, $CPS_PROCS client processes)" >&2
for r in $(seq "$RUNS"); do
    for p in $(order $r direct haproxy motarei); do
        v=$($PY "$TMP/cps.py" "$(port_of $p mc)" "$SECONDS_CPS" "$CPS_PROCS")
        read -r cps fails <<<"$v"
        rec $p cps "$cps"
        rec $p cpsfail "$fails"
        sleep 0.5 # let the relays settle between paths
    done
done

if [ "$DP_RUNS" -gt 0 ]; then
    echo "== through docker-proxy ($DP_RUNS rounds)" >&2
    for r in $(seq "$DP_RUNS"); do
        for p in $(order $r "${PATHS[@]}"); do
            v=$(iperf "$(port_of $p dpiperf)"); rec $p dpfwd "$v"
            v=$(iperf "$(port_of $p dpiperf)" -R); rec $p dprev "$v"
        done
        for c in 1 64; do
            for p in $(order $r "${PATHS[@]}"); do v=$(rr "$(port_of $p dpecho)" $c); rec $p dprr$c "$v"; done
        done
    done
fi

# motarei must really have relayed to the local listeners: its connection log names the public port
MLOG_IPERF=$(grep -c "\"public_port\":$H_IPERF[,}]" "$TMP/motarei-local.log" || true)
MLOG_MC=$(grep -c "\"public_port\":$H_MC[,}]" "$TMP/motarei-local.log" || true)
MLOG_ERR=$(grep -cE '"level":"(error|fatal)"' "$TMP/motarei-local.log" || true)

# ---- switch latency ----
echo "== switch latency ($SWITCHES switches)" >&2
S_PORT=$(free_port)
mkcontainer() {
    docker create "${NET[@]}" -l app=$LBL-sw -p 127.0.0.1::$S_PORT "$TAG" \
        sh -c "hostname > /www/id && exec httpd -f -p $S_PORT -h /www"
}
SW0=$(mkcontainer); docker start "$SW0" >/dev/null; track "$SW0"
for _ in $(seq 100); do docker exec "$SW0" netstat -ltn | grep -q ":$S_PORT " && break; sleep 0.1; done
"$BUILD/motarei" -l app=$LBL-sw --bind 127.0.0.1 2>"$TMP/motarei-sw.log" & PIDS+=($!)
"$BUILD/motarei" -l app=$LBL-sw --bind 127.0.0.2 --health-check http:/id \
    2>"$TMP/motarei-sw-hc.log" & PIDS+=($!)
wait_listen 127.0.0.1 $S_PORT; wait_listen 127.0.0.2 $S_PORT
sleep 1 # the health-checking one has probed the first container
: > "$TMP/sw.txt"
for _ in $(seq "$SWITCHES"); do
    NEW=$(mkcontainer)
    $PY - "$NEW" "$S_PORT" >> "$TMP/sw.txt" <<'PY'
import socket, subprocess, sys, threading, time
new, port = sys.argv[1][:12], int(sys.argv[2])
def get(ip):
    s = socket.create_connection((ip, port), timeout=2)
    try:
        s.sendall(b"GET /id HTTP/1.0\r\n\r\n")
        buf = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            buf += d
    finally:
        s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n")[0]:
        raise OSError("bad answer")
    return body.strip().decode()
res = {}
t0 = None
started = threading.Event()
def loop(ip):
    fails = 0
    started.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if get(ip) == new:
                res[ip] = (time.monotonic() - t0, fails)
                return
        except OSError:
            fails += 1
    res[ip] = (float("nan"), fails)
th = [threading.Thread(target=loop, args=(ip,)) for ip in ("127.0.0.1", "127.0.0.2")]
for t in th:
    t.start()
t0 = time.monotonic()
started.set()
subprocess.run(["docker", "start", sys.argv[1]], check=True, stdout=subprocess.DEVNULL)
ret = time.monotonic() - t0
for t in th:
    t.join()
print("%.1f %.1f %d %.1f %d" % (ret * 1e3, res["127.0.0.1"][0] * 1e3, res["127.0.0.1"][1],
                                res["127.0.0.2"][0] * 1e3, res["127.0.0.2"][1]))
PY
    track "$NEW"
    docker rm -f "$SW0" >/dev/null # the old one goes; the new one is the next round's old
    SW0=$NEW
    sleep 0.5
done
col() { awk -v c="$1" '{print $c}' "$TMP/sw.txt"; }
SW_RET=$(col 1 | median); SW_DEF=$(col 2 | median); SW_HC=$(col 4 | median)
SW_DEF_R=$(col 2 | sort -n | awk 'NR==1 {a=$1} {b=$1} END {print a "–" b}')
SW_HC_R=$(col 4 | sort -n | awk 'NR==1 {a=$1} {b=$1} END {print a "–" b}')
SW_AFTER=$(awk '{print $2 - $1}' "$TMP/sw.txt" | median)
SW_HC_AFTER=$(awk '{print $4 - $1}' "$TMP/sw.txt" | median)
SW_DEF_F=$(col 3 | awk '{s+=$1} END {print s+0}'); SW_HC_F=$(col 5 | awk '{s+=$1} END {print s+0}')

# ---- report ----
fmt_row() { # label metric-prefix
    local p=$1 pre=$2 lab
    case $p in
        direct) lab="direct TCP" ;; socat) lab="socat -b262144 (fork)" ;;
        haproxy) lab="HAProxy $(haproxy -v | awk 'NR==1 {print $3}') mode tcp, nbthread 2" ;;
        haproxy-splice) lab="HAProxy, same + option splice-request/-response" ;;
        motarei) lab="**motarei** (--workers 2)" ;;
    esac
    local f
    f=$(med $p ${pre}rr1)
    echo "| $lab | $(med $p ${pre}fwd) | $(med $p ${pre}rev) | $f | $(awk -v r="$f" 'BEGIN {printf "%.0f", 1e6/r}') | $(med $p ${pre}rr64) |"
}
ratio_row() { # label a b prefix (a/b for throughput and req/s)
    local pre=$4
    echo "| $1 | $(ratio "$(med $2 ${pre}fwd)" "$(med $3 ${pre}fwd)") | $(ratio "$(med $2 ${pre}rev)" "$(med $3 ${pre}rev)") | $(ratio "$(med $3 ${pre}rr1)" "$(med $2 ${pre}rr1)") | $(ratio "$(med $2 ${pre}rr64)" "$(med $3 ${pre}rr64)") |"
}
target() { # prefix haproxy-path label → "met"/"not met" lines
    local pre=$1 h=$2 tf tr rt r64
    tf=$(ratio "$(med motarei ${pre}fwd)" "$(med $h ${pre}fwd)")
    tr=$(ratio "$(med motarei ${pre}rev)" "$(med $h ${pre}rev)")
    rt=$(ratio "$(med $h ${pre}rr1)" "$(med motarei ${pre}rr1)")
    r64=$(ratio "$(med $h ${pre}rr64)" "$(med motarei ${pre}rr64)")
    awk -v tf="$tf" -v tr="$tr" -v rt="$rt" -v r64="$r64" -v h="$3" 'BEGIN {
        printf "- throughput ≥ 1.0× %s: %s (→ %.2f×, ← %.2f×)\n", h, (tf >= 1.0 && tr >= 1.0) ? "**met**" : "**not met**", tf, tr
        printf "- round trip ≤ 1.1× %s: %s (1 connection %.2f×, 64 connections %.2f× per request)\n", h, (rt <= 1.1 && r64 <= 1.1) ? "**met**" : "**not met**", rt, r64 }'
}
targets() { target "$1" haproxy "HAProxy"; target "$1" haproxy-splice "HAProxy with splice"; }
raw() { tr '\n' ' ' < "$TMP/v.$1.$2" | sed 's/ $//'; }
{
    echo "### motarei vs HAProxy, socat and direct TCP ($(nproc) CPUs, Linux $(uname -r), $(date -u +%Y-%m-%d))"
    echo
    echo "One run of \`bench/motarei.sh\`: every path measured in the same run, in $RUNS interleaved"
    echo "rounds (path order rotated each round), medians shown. Loopback only; Docker engine"
    echo "$ENGINE_VERSION ($ENGINE), image made with \`docker import\`."
    echo "iperf3 $(iperf3 --version | awk 'NR==1 {print $2}'), one stream, ${SECONDS_IPERF}s; request/response: 64-byte messages to a"
    echo "\`socat ... PIPE\` echo server, Python asyncio client (64 connections: 2 processes),"
    echo "${SECONDS_RR}s; RTT is 1/rate of the 1-connection loop. Clients and servers share the"
    echo "2 CPUs with the relay, so every figure is a relay plus its peers competing for them."
    echo "Load average at start $LOAD_START, at the end $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "#### to a local listener the discovery points at"
    echo
    echo "The labelled container publishes 127.0.0.2:H (docker-proxy idle there); motarei dials"
    echo "127.0.0.1:H (\`--proxy-connect-ip\`), where iperf3 -s, the echo server and memcached"
    echo "listen on the host. Every path goes to those same servers."
    echo
    echo "| path | iperf3 → Gbit/s | iperf3 ← (-R) Gbit/s | 64 B req/s, 1 conn | RTT µs | 64 B req/s, 64 conns |"
    echo "|---|---:|---:|---:|---:|---:|"
    for p in "${PATHS[@]}"; do fmt_row $p ""; done
    echo
    echo "| ratio | iperf3 → | iperf3 ← | RTT, 1 conn (lower is better) | req/s, 64 conns |"
    echo "|---|---:|---:|---:|---:|"
    ratio_row "motarei / HAProxy" motarei haproxy ""
    ratio_row "motarei / HAProxy with splice" motarei haproxy-splice ""
    ratio_row "motarei / direct" motarei direct ""
    ratio_row "HAProxy / direct" haproxy direct ""
    ratio_row "HAProxy with splice / direct" haproxy-splice direct ""
    ratio_row "socat / direct" socat direct ""
    echo
    echo "Spec targets (local listener):"
    echo
    targets ""
    echo
    echo "#### connections per second (${SECONDS_CPS}s, $CPS_PROCS client processes, one connection at a time each)"
    echo
    echo "Each connection sends \`version\\r\\n\` to memcached (-t 2), reads the reply, closes."
    echo
    echo "| path | connections/s | failed | vs HAProxy | vs direct |"
    echo "|---|---:|---:|---:|---:|"
    for p in direct haproxy motarei; do
        c=$(med $p cps)
        f=$(awk '{s+=$1} END {print s+0}' "$TMP/v.$p.cpsfail")
        echo "| $p | $c | $f | $(ratio "$c" "$(med haproxy cps)") | $(ratio "$c" "$(med direct cps)") |"
    done
    echo
    if [ "$DP_RUNS" -gt 0 ]; then
        echo "#### through docker-proxy to a real container ($DP_RUNS round(s))"
        echo
        echo "iperf3 -s and the echo server run inside a container published with"
        echo "\`-p 127.0.0.1::PORT\`; \"direct\" is the docker-proxy port itself."
        echo
        echo "| path | iperf3 → Gbit/s | iperf3 ← (-R) Gbit/s | 64 B req/s, 1 conn | RTT µs | 64 B req/s, 64 conns |"
        echo "|---|---:|---:|---:|---:|---:|"
        for p in "${PATHS[@]}"; do fmt_row $p dp; done
        echo
        echo "| ratio | iperf3 → | iperf3 ← | RTT, 1 conn (lower is better) | req/s, 64 conns |"
        echo "|---|---:|---:|---:|---:|"
        ratio_row "motarei / HAProxy" motarei haproxy dp
        ratio_row "motarei / HAProxy with splice" motarei haproxy-splice dp
        ratio_row "motarei / docker-proxy alone" motarei direct dp
        echo
        if [ "$DP_RUNS" -lt 3 ]; then
            echo "Spec targets (through docker-proxy; $DP_RUNS round(s), so indicative only):"
        else
            echo "Spec targets (through docker-proxy):"
        fi
        echo
        targets dp
        echo
    fi
    echo "#### switch latency ($SWITCHES switches)"
    echo
    echo "A client loop (new connection per request, HTTP GET to busybox httpd) runs through motarei;"
    echo "time from \`docker start\` of a new labelled container (created beforehand) to the first"
    echo "answer that container gives. Then the old container is removed."
    echo
    echo "| motarei | median ms | min–max ms | median ms after \`docker start\` returned | failed requests (all switches) |"
    echo "|---|---:|---:|---:|---:|"
    echo "| default (newest container, events) | $SW_DEF | $SW_DEF_R | $SW_AFTER | $SW_DEF_F |"
    echo "| --health-check http:/id | $SW_HC | $SW_HC_R | $SW_HC_AFTER | $SW_HC_F |"
    echo
    echo "\`docker start\` itself returned after $SW_RET ms (median); a negative \"after\" means the new"
    echo "container answered before the command returned."
    echo
    echo "#### raw rounds"
    echo
    echo "| path | iperf3 → | iperf3 ← | req/s 1 | req/s 64 | conn/s |"
    echo "|---|---|---|---|---|---|"
    for p in "${PATHS[@]}"; do
        c=; [ -f "$TMP/v.$p.cps" ] && c=$(raw $p cps)
        echo "| $p | $(raw $p fwd) | $(raw $p rev) | $(raw $p rr1) | $(raw $p rr64) | $c |"
    done
    echo
    echo "motarei log (local listener): $MLOG_IPERF connections relayed to the iperf3 port, $MLOG_MC to"
    echo "memcached, $MLOG_ERR error lines. iperf3 retries (server still busy): $(cat "$TMP/iperf-retries" 2>/dev/null | wc -l). Whole run: $(( $(date +%s) - T_START ))s."
} | tee "$OUT"
