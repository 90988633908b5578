#!/usr/bin/env bash
# Runs every test of berth on a fresh Debian bookworm machine: installs what is missing, starts (or reuses) a
# Docker daemon, builds the images offline, then builds berth twice (warnings as errors; ASan+UBSan) and runs the
# unit and integration tests against the real daemon, and the acceptance scripts where CI has them.
#   ci/test.sh            everything
#   ci/test.sh --quick    one build, no sanitizer pass
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1

step() { printf '\n=== %s\n' "$*"; }

step "layers: the CLI and the server never include each other"
ci/check-layers.sh

step "dependencies"
ci/install-deps.sh
step "docker daemon and images"
ci/build-images.sh

step "postgresql server (the store's tests run on both engines)"
BERTH_TEST_PG=$(ci/start-postgres.sh | tail -n1)
export BERTH_TEST_PG

step "build (warnings as errors)"
cmake -S . -B build -DBERTH_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"

step "unit and integration tests on SQLite (everything not labelled postgresql)"
ctest --test-dir build --output-on-failure --timeout 900 -LE postgresql

step "the store's tests and the integration suite again on PostgreSQL (label postgresql; a database per test)"
ctest --test-dir build --output-on-failure --timeout 900 -L postgresql

step "acceptance scripts (../shared/acceptance, beside CI's checkout; skipped when absent)"
ci/acceptance.sh build/berth

step "the acceptance scripts that keep stacks, tasks, logs, keys and the audit trail again on PostgreSQL"
ci/acceptance.sh --postgresql build/berth

if [ $quick -eq 0 ]; then
  step "ASan+UBSan build of the tests"
  cmake -S . -B build-asan -DBERTH_SANITIZE=ON -DBERTH_WERROR=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
  cmake --build build-asan -j"$(nproc)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure --timeout 900 -LE package -E '(integration|ui)/.*_postgresql$'
  # (the package is built without ASan; the integration suite's second engine ran above: the sanitizers see the
  # PostgreSQL engine through its unit tests and every suite once)

  step "libFuzzer targets (clang), a short run each"
  ci/fuzz.sh 20
fi
