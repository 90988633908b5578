#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for N seconds (default 30) from its corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
CC=clang cmake -S . -B build-fuzz -DBERTH_FUZZ=ON -DBERTH_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)"
for f in fuzz/fuzz_*.c; do
  name=$(basename "$f" .c)
  corpus=fuzz/corpus/$name
  work=$(mktemp -d)
  cp -r "$corpus"/. "$work"/ 2>/dev/null || true
  echo "--- fuzz: $name (${secs}s)"
  build-fuzz/fuzz/"$name" -max_total_time="$secs" -print_final_stats=0 "$work" >/dev/null 2>build-fuzz/"$name".log || {
    tail -n 40 build-fuzz/"$name".log
    exit 1
  }
  rm -rf "$work"
done
echo "fuzz: all targets ran clean"
