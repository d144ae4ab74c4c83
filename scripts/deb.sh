#!/bin/sh
# Build the opskit Debian package with plain dpkg-deb (no debhelper): stage a
# `make install PREFIX=/usr` tree, make it Debian-shaped (stripped ELF files, man
# pages gzip -9n, copyright and changelog.Debian.gz, md5sums), compute Depends with
# dpkg-shlibdeps, fill packaging/control.in and build BUILD/opskit_VERSION_ARCH.deb.
#
#   scripts/deb.sh BUILD     BUILD holds programs built with dpkg-buildflags (make deb)
#
# Environment: MAKE (default make), DEB_MAINTAINER ("Name <mail>", default: git's
# user.name and user.email), SOURCE_DATE_EPOCH (default: the last commit's time; it
# dates the changelog entry and clamps every file's mtime, so a rebuild of the same
# commit gives the same package). Prints the path of the .deb as its last line.
set -eu
umask 022

build=${1:?usage: scripts/deb.sh BUILD}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
build=$(cd "$build" && pwd)
make=${MAKE:-make}

upstream=$(sed -n 's/^#define OPSKIT_VERSION "\(.*\)"$/\1/p' lib/version.h)
[ -n "$upstream" ] || { echo "deb.sh: no OPSKIT_VERSION in lib/version.h" >&2; exit 1; }
version="$upstream-1"
arch=$(dpkg --print-architecture)
maint=${DEB_MAINTAINER:-"$(git config user.name || true) <$(git config user.email || true)>"}
case $maint in *"<>"*|" <"*) echo "deb.sh: set DEB_MAINTAINER=\"Name <mail>\"" >&2; exit 1 ;; esac
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=""
git diff --quiet HEAD -- 2>/dev/null || dirty=" plus uncommitted changes"
: "${SOURCE_DATE_EPOCH:=$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
export SOURCE_DATE_EPOCH

root="$build/deb/root"
rm -rf "$build/deb"
mkdir -p "$root/DEBIAN"

"$make" --no-print-directory -s BUILD="$build" PREFIX=/usr DESTDIR="$root" install >/dev/null

# ELF files: the debug info stays in build/, as dh_strip would leave it in a -dbgsym.
find "$root/usr/bin" "$root/usr/lib" -type f | while read -r f; do
    case $(file -b "$f") in
    *"shared object"*) strip --remove-section=.comment --remove-section=.note \
                             --strip-unneeded "$f" ;;
    ELF*) strip --remove-section=.comment --remove-section=.note "$f" ;;
    esac
done

# Man pages: gzip -9n; links point at the .gz of their target.
man="$root/usr/share/man"
find "$man" -type f -name '*.[1-9]' -exec gzip -9n {} +
find "$man" -type l -name '*.[1-9]' | while read -r l; do
    t=$(readlink "$l")
    rm "$l"
    ln -s "$t.gz" "$l.gz"
done

doc="$root/usr/share/doc/opskit"
install -d "$doc"
install -m 0644 packaging/copyright "$doc/copyright"
{
    printf 'opskit (%s) unstable; urgency=medium\n\n' "$version"
    printf '  * Built by scripts/deb.sh from commit %s%s.\n\n' "$commit" "$dirty"
    printf ' -- %s  %s\n' "$maint" "$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$doc/changelog.Debian.gz"
chmod 0644 "$doc/changelog.Debian.gz"
install -d "$root/usr/share/lintian/overrides"
install -m 0644 packaging/lintian-overrides "$root/usr/share/lintian/overrides/opskit"

# Depends: the libraries the ELF files really link (dpkg-shlibdeps needs a
# debian/control to read, so it runs in a scratch directory).
elves=$(find "$root/usr/bin" "$root/usr/lib" -type f)
scratch="$build/deb/shlibdeps"
mkdir -p "$scratch/debian"
printf 'Source: opskit\n\nPackage: opskit\nArchitecture: any\n' > "$scratch/debian/control"
# shellcheck disable=SC2086
depends=$(cd "$scratch" && dpkg-shlibdeps -O $elves 2>"$build/deb/shlibdeps.log" |
          sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { cat "$build/deb/shlibdeps.log" >&2; echo "deb.sh: no Depends" >&2; exit 1; }
rm -rf "$scratch"

# Built-Using: the glibc copied into statically linked programs (licence compliance,
# and a record that a glibc update needs a rebuild of this package).
built_using=""
for f in $elves; do
    case $(file -b "$f") in *"statically linked"*)
        built_using=$(dpkg-query -W -f='${source:Package} (= ${source:Version})' libc6-dev) ;;
    esac
done

size=$(du -k -s --apparent-size "$root/usr" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maint|" \
    -e "s|@INSTALLED_SIZE@|$size|" -e "s|@DEPENDS@|$depends|" \
    -e "s|@BUILT_USING@|$built_using|" -e '/^Built-Using: $/d' \
    packaging/control.in > "$root/DEBIAN/control"
# the shim is in a directory of the ld.so cache: refresh it on install and removal
echo "activate-noawait ldconfig" > "$root/DEBIAN/triggers"
(cd "$root" && find usr -type f | LC_ALL=C sort | xargs md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums" "$root/DEBIAN/triggers"

find "$root" -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
deb="$build/opskit_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
