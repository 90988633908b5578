#!/usr/bin/env bash
# Build berth's images (berth/runner:latest, berth/busybox:latest) offline, starting a Docker daemon if none answers.
# Arguments go to runner-image/build.sh: [--force] [all|runner|busybox]. Unchanged inputs: nothing is rebuilt.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/ci/start-docker.sh"
exec "$top/runner-image/build.sh" "$@"
