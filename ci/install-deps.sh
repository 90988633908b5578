#!/usr/bin/env bash
# Install every Debian package berth needs to build, test, fuzz and benchmark (and to drive the web UI in a real
# browser: tests/ui/).
# Idempotent: packages already present are skipped by apt-get.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
  libcurl4-openssl-dev libcjson-dev libarchive-dev libpcre2-dev libsqlite3-dev
  libvectorscan-dev libcmocka-dev libmicrohttpd-dev libsodium-dev libssl-dev python3-jwt libpq-dev sqlite3 postgresql
  prometheus
  docker.io mmdebstrap busybox-static
  zsh fish groff-base man-db
  curl jq python3 perl procps iproute2 hyperfine time
  chromium chromium-driver python3-selenium
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
