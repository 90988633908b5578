# Shared helpers for the benchmark scripts (sourced).
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$([ -d "$SRC/build-bench" ] && echo "$SRC/build-bench" || echo "$SRC/build")}
BERTH=${BERTH:-$BUILD/berth}
SOCK=${DOCKER_SOCK:-/var/run/docker.sock}
API=${DOCKER_API:-v1.41}
WORK=${WORK:-$(mktemp -d /tmp/berth-bench.XXXXXX)}
mkdir -p "$WORK"

# timed OUT_VAR_PREFIX cmd...: runs cmd under /usr/bin/time, sets ${prefix}_s (wall seconds) and ${prefix}_kib (max RSS)
timed() {
  local prefix=$1
  shift
  /usr/bin/time -f '%e %M' -o "$WORK/time.out" "$@"
  read -r "${prefix}_s" "${prefix}_kib" <"$WORK/time.out"
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN {printf "%.0f", b / s / 1e6}'; }
keepalive_container() {
  docker run -d --network none --init --label berth.bench=1 berth/busybox:latest \
    sh -c 'trap "exit 0" TERM; while :; do sleep 3600 & wait $!; done'
}
dcurl() { curl -sS --unix-socket "$SOCK" "$@"; }
