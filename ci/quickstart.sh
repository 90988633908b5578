#!/usr/bin/env bash
# First steps on a fresh machine: install, start Docker, build the images and berth, check the setup with
# `berth doctor`, then run a first real task: the Terraform example stack (apply, state list, taint).
#   ci/quickstart.sh              on the embedded SQLite store (BERTH_HOME)
#   ci/quickstart.sh --postgres   on a throwaway PostgreSQL (ci/start-postgres.sh; stop it with --stop)
set -euo pipefail
cd "$(dirname "$0")/.."
pg=0
case "${1:-}" in
--postgres) pg=1 ;;
"") ;;
*) echo "usage: ci/quickstart.sh [--postgres]" >&2; exit 2 ;;
esac
ci/install-deps.sh
ci/build-images.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target berth
if [ $pg -eq 1 ]; then
  BERTH_STORE=$(ci/start-postgres.sh | tail -n 1)
  export BERTH_STORE
  build/berth store migrate
  build/berth store info
fi
build/berth doctor
examples/terraform-stack/run.sh "$PWD/build/berth"
