#!/usr/bin/env bash
# start_server demo: a deploy whose new worker crashes at start-up is refused
# (--restart says why and exits 1) while the old worker keeps serving; then a
# good deploy takes over. A client loop runs throughout: zero failed requests.
set -euo pipefail
B=${OPSKIT_BUILD:-$(pwd)/build}
T=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# the app: answers its release; release "broken" crashes at start-up. On
# SIGTERM (start_server retiring it) it answers the request in hand and exits:
# dying in the middle of one would reset that client.
cat > "$T/app.py" <<'PY'
import os, signal, socket, sys
release = open(sys.argv[1]).read().strip()
if release == "broken":
    sys.exit("app: cannot parse config")
stop = False
def term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, term)
fd = int(os.environ["SERVER_STARTER_PORT"].split("=")[1])
s = socket.socket(fileno=fd)
s.settimeout(0.1)  # look at `stop` between connections
while not stop:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    c.settimeout(5)
    c.recv(100)
    c.sendall(b"release %s (generation %s)\n" % (release.encode(),
              os.environ["SERVER_STARTER_GENERATION"].encode()))
    c.close()
PY
# a client loop: one request every 20 ms, counts failures
cat > "$T/loop.py" <<'PY'
import os, socket, sys, time
ok = bad = 0
while True:
    try:
        with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as c:
            c.sendall(b"hi\n")
            ok += c.recv(100).startswith(b"release")
    except OSError:
        bad += 1
    open(sys.argv[2] + ".tmp", "w").write("%d %d\n" % (ok, bad))
    os.rename(sys.argv[2] + ".tmp", sys.argv[2])
    time.sleep(0.02)
PY
ask() { /usr/bin/python3 -c 'import socket,sys; c=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); c.sendall(b"x\n"); print(c.recv(100).decode().strip())' "$PORT"; }
SS=("$B/start_server" --pid-file="$T/app.pid" --status-file="$T/app.status")

echo "proves: a deploy that crashes at start-up is refused and the old worker keeps serving; 0 failed requests"
echo v1 > "$T/release"
echo '$ start_server --port 127.0.0.1:PORT --pid-file app.pid --status-file app.status -- python3 app.py'
"${SS[@]}" --port=127.0.0.1:$PORT -- /usr/bin/python3 "$T/app.py" "$T/release" 2> "$T/ss.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$T/app.status" ] && break; sleep 0.1; done
echo "serving:            $(ask)"
echo "(a client now sends a request every 20 ms until the end)"
/usr/bin/python3 "$T/loop.py" "$PORT" "$T/counts" & PIDS+=($!)

echo broken > "$T/release"
echo '$ start_server --restart ...     # deploy a release that crashes at start-up'
if "${SS[@]}" --restart 2> "$T/restart.err"; then echo "FAIL: the broken deploy was accepted"; exit 1; fi
sed 's/^/  /' "$T/restart.err"
grep -m1 'seems to have failed to start' "$T/ss.log" | sed 's/^/  start_server log: /'
grep -m1 'cannot parse config' "$T/ss.log" | sed 's/^/  the worker said:   /'
echo "  (--restart exited 1; 256 is the raw wait status of a worker that exited 1)"
still=$(ask)
echo "still serving:      $still"
[[ $still == "release v1 "* ]] || { echo "FAIL: the old worker is not serving"; exit 1; }

echo v2 > "$T/release"
echo '$ start_server --restart ...     # deploy a good release'
"${SS[@]}" --restart || { echo "FAIL: the good deploy did not take over"; cat "$T/ss.log"; exit 1; }
echo "now serving:        $(ask)"
sleep 0.5
read -r ok bad < "$T/counts"
echo "client loop:        $ok requests, $bad failed"
[ "$bad" = 0 ] && [ "$ok" -gt 0 ] || { echo "FAIL: requests failed during the deploys"; exit 1; }
