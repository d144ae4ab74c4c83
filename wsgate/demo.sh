#!/usr/bin/env bash
# wsgate demo: memcached reached through wsgate-client → wsgate-server on
# loopback (set/get), then a half-closed request whose answer still comes
# back, with the server's JSON log line for it. Quick and self-cleaning.
set -euo pipefail
B=${OPSKIT_BUILD:-$(pwd)/build}
T=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$T"' EXIT
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do ss -ltn "sport = :$1" | grep -q LISTEN && return; sleep 0.05; done; echo "no listener on $1"; exit 1; }

MC=$(port); SRV=$(port); CMC=$(port); UP=$(port); CUP=$(port)
user=(); [ "$(id -u)" = 0 ] && user=(-u nobody)
memcached -l 127.0.0.1 -p "$MC" -U 0 "${user[@]}" & PIDS+=($!)
# an upstream that answers only after the client half-closed (reads to EOF)
socat TCP-LISTEN:$UP,bind=127.0.0.1,reuseaddr,fork SYSTEM:'echo upstream counted $(wc -c) bytes after EOF' & PIDS+=($!)
printf 'memcached,127.0.0.1:%s\ncounter,127.0.0.1:%s\n' "$MC" "$UP" > "$T/server.map"
printf '127.0.0.1:%s,http://127.0.0.1:%s/proxy/memcached\n127.0.0.1:%s,http://127.0.0.1:%s/proxy/counter\n' \
    "$CMC" "$SRV" "$CUP" "$SRV" > "$T/client.map"
"$B/wsgate-server" -listen 127.0.0.1:$SRV -map "$T/server.map" 2> "$T/server.log" & PIDS+=($!)
"$B/wsgate-client" --map "$T/client.map" -H "X-Demo: yes" 2> "$T/client.log" & PIDS+=($!)
wait_port "$MC"; wait_port "$SRV"; wait_port "$CMC"; wait_port "$CUP"

echo "proves: TCP clients reach memcached through a WebSocket tunnel, and half-close is carried end to end"
echo "\$ curl http://127.0.0.1:$SRV/live      # wsgate-server's health check"
curl -s "http://127.0.0.1:$SRV/live"
echo
echo "memcached via 127.0.0.1:$CMC (wsgate-client) → ws://127.0.0.1:$SRV/proxy/memcached → 127.0.0.1:$MC"
printf 'set demo 0 0 21\r\nhello through wsgate!\r\nget demo\r\nquit\r\n' |
    socat -t 5 - TCP:127.0.0.1:$CMC | tr -d '\r' | tee "$T/mc" | sed 's/^/  /'
echo
echo "half-close: send 100000 bytes, shut down our write side, read the upstream's answer"
head -c 100000 /dev/zero | socat -t 5 - TCP:127.0.0.1:$CUP | tee "$T/answer" | sed 's/^/  /'
sleep 0.3
echo
echo "wsgate-server's JSON log line for that tunnel (read = bytes from the client, write = the answer):"
grep '"destination":"counter"' "$T/server.log" | grep '"status":"Suceeded"' |
    /usr/bin/python3 -c 'import json, sys
for line in sys.stdin: print(json.dumps(json.loads(line), indent=2))' | sed 's/^/  /'
grep -q 'hello through wsgate!' "$T/mc" || { echo "FAIL: memcached did not answer through the tunnel"; exit 1; }
grep -q 'counted 100000 bytes' "$T/answer" || { echo "FAIL: no answer after half-close"; exit 1; }
grep -q '"status":"Suceeded","read":100000' "$T/server.log" || { echo "FAIL: no Suceeded log line"; exit 1; }
