#!/usr/bin/env bash
# Demo: logrotate `create` against an app that recreates its log right after
# logrotate renames it, first without and then with open_no_excl.so. The race
# is made deterministic by a test-only preload (nxo_rename_hook.so) that plays
# the app: after every rename of app.log it recreates app.log and writes a line.
set -euo pipefail
B=${OPSKIT_BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
LOGROTATE=$(command -v logrotate || echo /usr/sbin/logrotate)
HOOK=$B/tests/helpers/nxo_rename_hook.so
for f in "$B/no_excl_open" "$B/open_no_excl.so" "$HOOK" "$LOGROTATE"; do
    [ -e "$f" ] || { echo "demo: $f missing (make all; make deps installs logrotate)" >&2; exit 1; }
done
T=$(mktemp -d /tmp/no_excl_open-demo.XXXXXX)
trap 'rm -rf "$T"' EXIT
chmod 755 "$T"
cat > "$T/logrotate.conf" <<CONF
$T/app.log {
    create 0640
    rotate 5
    postrotate
        echo "postrotate ran" > $T/postrotate.txt
    endscript
}
CONF
chmod 644 "$T/logrotate.conf"

round() {  # $1 = title, rest = command prefix
    local title=$1; shift
    rm -f "$T"/app.log* "$T"/postrotate.txt "$T/state" "$T/ledger"
    printf 'app line 1\napp line 2\n' | tee "$T/ledger" > "$T/app.log"
    echo "== $title"
    set +e
    NXO_HOOK_PATH=$T/app.log NXO_HOOK_LEDGER=$T/ledger LD_PRELOAD=$HOOK "$@" "$LOGROTATE" -f -s "$T/state" "$T/logrotate.conf" 2>&1 |
        sed "s|$T/||g; s|^|   |"
    local rc=${PIPESTATUS[0]}
    set -e
    echo "   logrotate exit status: $rc"
    (cd "$T" && for f in app.log*; do
        printf '   %s %-28s %s\n' "$(stat -c %A "$f")" "$f" "$(tr '\n' '|' < "$f")"
    done)
    if [ -e "$T/postrotate.txt" ]; then echo "   postrotate: ran"; else echo "   postrotate: SKIPPED"; fi
    local lost
    lost=$(cat "$T"/app.log* | grep -vxF -f - "$T/ledger" | tr '\n' '|' || true)
    echo "   lines the app wrote that are in no file: ${lost:-none}"
    echo
}

round "without the shim: the app recreates app.log after every rename"
round "with no_excl_open --debug (the shim drops O_EXCL, logrotate adopts the app's file)" \
    "$B/no_excl_open" --debug --paths "$T" --
echo "With the shim: exit 0, no .backup, the app's line is in app.log (mode 0640), postrotate ran."
