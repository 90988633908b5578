#!/usr/bin/env bash
# Build berth's Debian package: berth_VERSION_ARCH.deb with /usr/bin/berth, the man pages, the bash, zsh and fish
# completions, the systemd unit (berth.service) and maintainer scripts that create the berth system user and
# /var/lib/berth. Depends: comes from dpkg-shlibdeps over the binary (the shared libraries it links) plus adduser.
#   ci/package.sh [--build-dir DIR] [--out DIR]
# DIR defaults to build-package (configured for /usr, Release with debug info, no tests); --out (default: the
# repository's top) receives the .deb, whose path is the last line printed. Install it with
#   apt install ./berth_*.deb
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build-package
out=$top
while [ $# -gt 0 ]; do
  case "$1" in
  --build-dir) build=$2; shift 2 ;;
  --out) out=$2; shift 2 ;;
  -h | --help)
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
    exit 0
    ;;
  *) echo "package: unknown argument '$1' (usage: ci/package.sh [--build-dir DIR] [--out DIR])" >&2; exit 125 ;;
  esac
done
say() { echo "package: $*" >&2; }
for tool in cmake cpack dpkg-deb dpkg-shlibdeps gzip; do
  command -v "$tool" >/dev/null 2>&1 || { say "$tool not found (run ci/install-deps.sh)"; exit 1; }
done

say "configuring $build (prefix /usr)"
cmake -S "$top" -B "$build" -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBERTH_TESTS=OFF \
  -DBERTH_WERROR=ON >/dev/null
say "building"
cmake --build "$build" -j"${BERTH_JOBS:-$(nproc)}" --target berth berth_docs >/dev/null
rm -f "$build"/berth_*.deb
(cd "$build" && cpack -G DEB >/dev/null) || { say "cpack failed (see $build/_CPack_Packages)"; exit 1; }
deb=$(ls "$build"/berth_*.deb)
mkdir -p "$out"
install -m 0644 "$deb" "$out/"
deb=$out/$(basename "$deb")
say "$(dpkg-deb -f "$deb" Package Version Architecture Depends | tr '\n' ' ')"
echo "$deb"
