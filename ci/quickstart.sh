#!/usr/bin/env bash
# First steps on a fresh machine: install, start Docker, build the images and berth, check the setup with
# `berth doctor`, then run a first real task: the Terraform example stack (apply, state list, taint).
set -euo pipefail
cd "$(dirname "$0")/.."
ci/install-deps.sh
ci/build-images.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target berth
build/berth doctor
examples/terraform-stack/run.sh "$PWD/build/berth"
