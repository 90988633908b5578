#!/usr/bin/env bash
# The layers of berth: libberth (src/lib/, include/berth/) below two front ends, the command line (src/cli/) and the
# HTTP API (src/server/), which never include each other; the library includes neither. Only src/main.c, which
# joins the front ends into one program, may see both. Prints each offending #include line and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

failed=0
# check DIR PATTERN WHAT: no #include line under DIR may name a path matching PATTERN
check() {
  local dir=$1 pattern=$2 what=$3 hits
  hits=$(grep -rnE --include='*.c' --include='*.h' "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]([^\">]*/)?${pattern}" \
    "$dir" || true)
  if [ -n "$hits" ]; then
    echo "layers: $what"
    echo "$hits" | sed 's/^/  /'
    failed=1
  fi
}

check src/server 'cli/' "src/server/ includes the command line (src/cli/)"
check src/cli 'server/' "src/cli/ includes the HTTP server (src/server/)"
check src/lib '(cli|server)/' "src/lib/ includes a front end"
check include/berth '(cli|server)/' "include/berth/ includes a front end"

if [ $failed -eq 0 ]; then
  echo "layers: ok (src/cli and src/server include neither each other; src/lib neither)"
fi
exit $failed
