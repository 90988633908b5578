#!/usr/bin/env bash
# berth serve end to end: a real server on a Unix socket and on 127.0.0.1 (a free port), the real Docker daemon.
# The checks live in server_test.py (standard library only; or the script named as $1, e.g. sse_test.py, which
# reuses its set-up); it prints "N passed, N failed".
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${BERTH:?set BERTH to the berth binary}"
export BERTH BERTH_SRC="${BERTH_SRC:-$here/../..}"
if ! docker version >/dev/null 2>&1; then
  echo "test_server: no Docker daemon answers" >&2
  exit 1
fi
exec python3 "$here/${1:-server_test.py}"
