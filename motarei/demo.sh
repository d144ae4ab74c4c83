#!/usr/bin/env bash
# motarei demo: two containers of one app behind motarei; a deploy (a newer
# container) takes new connections at once, while a connection opened to the
# old one keeps working until it ends. Needs a Docker engine: uses the one
# that answers, or starts one for the demo (root); skipped with the reason
# when neither is possible.
set -euo pipefail
B=${OPSKIT_BUILD:-$(pwd)/build}
T=$(mktemp -d)
PIDS=()
DOCKERD=
APP=motarei-demo-$$
cleanup() {
    docker rm -f $(docker ps -aq --filter label=app=$APP) >/dev/null 2>&1 || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "$DOCKERD" ]; then kill "$DOCKERD" 2>/dev/null || true; wait "$DOCKERD" 2>/dev/null || true; fi
    [ -n "${KEEP:-}" ] && cp "$T/motarei.log" /tmp/demo-motarei.log; rm -rf "$T"
}
trap cleanup EXIT
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do ss -ltn "sport = :$1" | grep -q LISTEN && return; sleep 0.05; done; echo "no listener on $1"; exit 1; }

echo "proves: a deploy (a newer container) takes new connections at once; an open one is not cut"
if ! command -v docker >/dev/null; then echo "motarei demo skipped: no docker CLI (make deps installs docker.io)"; exit 77; fi
if ! docker info >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ] || ! command -v dockerd >/dev/null; then
        echo "motarei demo skipped: no Docker engine answers and none can be started here (needs root and dockerd)"
        exit 77
    fi
    echo "(no Docker engine answers: starting a throw-away dockerd for the demo)"
    dockerd --iptables=false --storage-driver=vfs --data-root "$T/docker" --exec-root "$T/exec" \
        --pidfile "$T/docker.pid" > "$T/dockerd.log" 2>&1 & DOCKERD=$!
    for _ in $(seq 300); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
    docker info >/dev/null 2>&1 || { echo "motarei demo skipped: dockerd did not start"; tail -3 "$T/dockerd.log"; exit 77; }
fi
mkdir -p "$T/img/bin" "$T/img/w" "$T/img/tmp"
cp /bin/busybox "$T/img/bin/"; for a in sh httpd nc cat hostname; do ln -s busybox "$T/img/bin/$a"; done
tar -C "$T/img" -c . | docker import - opskit-demo-bb >/dev/null

WEB=$(port); ECHO=$(port)
run() { docker run -d -P -l app=$APP --expose $WEB --expose $ECHO opskit-demo-bb \
        sh -c "hostname > /w/index.html; httpd -p $WEB -h /w; exec nc -ll -p $ECHO -e /bin/cat"; }
OLD=$(run | cut -c1-12)
echo "container $OLD: web on private port $WEB, echo on $ECHO (published with -P)"
"$B/motarei" -l app=$APP --bind 127.0.0.1 2> "$T/motarei.log" & PIDS+=($!)
wait_port $WEB; wait_port $ECHO
get() { curl -s --max-time 5 "http://127.0.0.1:$WEB/"; }
for _ in $(seq 100); do [ "$(get)" = "$OLD" ] && break; sleep 0.1; done
echo "\$ curl 127.0.0.1:$WEB  →  served by $(get)"

# a long-lived connection to the old container (echo through motarei)
exec 3<>/dev/tcp/127.0.0.1/$ECHO
echo "hello before the deploy" >&3; read -r -t 5 line <&3; echo "long-lived connection: $line"

# Created has whole seconds and a tie goes to the lower Id (as in the
# original): deploy in a later second than the old container's start
sleep 1.1
NEW=$(run | cut -c1-12)
echo "deploy: container $NEW started"
for _ in $(seq 300); do [ "$(get)" = "$NEW" ] && break; sleep 0.03; done
echo "\$ curl 127.0.0.1:$WEB  →  served by $(get)"
echo "still here after the deploy" >&3; read -r -t 5 line <&3; echo "long-lived connection: $line"
exec 3>&-
sleep 0.3
pretty() { /usr/bin/python3 -c 'import json, sys
for line in sys.stdin: print(json.dumps(json.loads(line), indent=2))' | sed 's/^/  /'; }
echo
echo "motarei's JSON log: the web port switching to the new container..."
grep '"msg":"Backend changed"' "$T/motarei.log" | grep "\"port\":$WEB," | tail -1 | pretty
echo "...and the long-lived connection ending on the old one, after the switch:"
grep '"msg":"Connection closed"' "$T/motarei.log" | grep "\"port\":$ECHO," |
    grep -v '"bytes_to_backend":0' | tail -1 | pretty
[ "$(get)" = "$NEW" ] || { echo "FAIL: the new container does not serve"; cat "$T/motarei.log"; exit 1; }
[ "$line" = "still here after the deploy" ] || { echo "FAIL: the old connection was cut"; exit 1; }
