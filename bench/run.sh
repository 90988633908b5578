#!/usr/bin/env bash
# Runs every benchmark (or the ones named) and assembles docs/benchmarks.md from their sections.
#   bench/run.sh [docker] [tasks] [redact] [queue] [server] [latency] [ui] [store] [fleet] [docs]     env: BUILD (default build/, built here in Release)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
export BUILD=${BUILD:-$SRC/build-bench}
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBERTH_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
sections=${*:-docker tasks redact queue server latency ui store fleet}
. "$SRC/bench/cpu_group.sh"
trap bench_cpu_group_end EXIT
bench_cpu_group
for s in $sections; do
  case $s in
  docker) "$SRC/bench/docker.sh" ;;
  tasks) "$SRC/bench/tasks.sh" ;;
  redact) "$SRC/bench/redact.sh" "$BUILD" ;;
  queue) [ -x "$SRC/bench/queue.sh" ] && "$SRC/bench/queue.sh" ;;
  server) [ -x "$SRC/bench/server.sh" ] && "$SRC/bench/server.sh" ;;
  latency) "$SRC/bench/latency.sh" ;;
  ui) "$SRC/bench/ui.sh" "$BUILD" ;;
  store) "$SRC/bench/store.sh" "$BUILD" ;;
  fleet) BUILD=$BUILD "$SRC/bench/fleet.sh" ;;
  docs) ;; # assembles docs/benchmarks.md from the sections as they are
  *) echo "bench/run.sh: unknown section $s" >&2; exit 2 ;;
  esac
done
{
  echo "# Benchmarks"
  echo
  echo "Every number here was measured by \`bench/run.sh\` on this project's machines (2 cores, 24 GiB, Debian"
  echo "bookworm, dockerd 20.10 from Debian) side by side with the baseline the issue names, in the same run."
  echo "Benchmarks are never timed tests: CI does not run them. Sections are rewritten by their own scripts."
  for f in summary docker tasks redact queue server latency ui store fleet; do
    if [ -f "$SRC/docs/benchmarks-$f.md" ]; then
      echo
      sed 's/^# /## /' "$SRC/docs/benchmarks-$f.md"
    fi
  done
} >"$SRC/docs/benchmarks.md"
echo "wrote docs/benchmarks.md"
