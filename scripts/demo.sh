#!/usr/bin/env bash
# make demo: run every program's demo (<program>/demo.sh) against the build dir.
set -euo pipefail
build=${1:-$(pwd)/build}
cd "$(dirname "$0")/.."
for d in */demo.sh; do
    [ "$d" = scripts/demo.sh ] && continue
    echo
    echo "################ ${d%/demo.sh} ################"
    OPSKIT_BUILD=$build bash "$d"
done
