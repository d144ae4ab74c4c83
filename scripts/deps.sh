#!/bin/sh
# Install the given Debian packages if any is missing (idempotent; runs
# apt-get update only when something has to be installed). Needs root.
set -e
missing=""
for p in "$@"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = "installed" ] || missing="$missing $p"
done
[ -z "$missing" ] && { echo "deps: all $# packages present"; exit 0; }
echo "deps: installing$missing"
if [ "$(id -u)" != 0 ]; then
    echo "deps: need root to install:$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps packaged daemons (memcached, mariadb) from starting: tests run their own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq $missing
