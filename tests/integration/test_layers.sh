#!/usr/bin/env bash
# ci/check-layers.sh: passes on this tree, and fails, naming each offending line, on a copy where the server
# includes the CLI, the CLI includes the server, or the library includes a front end. Needs no Docker daemon.
set -u
src=${BERTH_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
TMP=$(mktemp -d /tmp/berth-layers-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $1"; [ -n "${2:-}" ] && sed 's/^/#   /' "$2"; }

if "$src/ci/check-layers.sh" >"$TMP/out" 2>&1; then ok "this tree keeps its layers"; else not_ok "this tree keeps its layers" "$TMP/out"; fi

# a copy of the tree's sources with one violation each
mk() {
  rm -rf "$TMP/tree"
  mkdir -p "$TMP/tree/ci" "$TMP/tree/src" "$TMP/tree/include"
  cp "$src/ci/check-layers.sh" "$TMP/tree/ci/"
  cp -r "$src/src/cli" "$src/src/server" "$src/src/lib" "$src/src/main.c" "$TMP/tree/src/"
  cp -r "$src/include/berth" "$TMP/tree/include/"
}
expect_refused() { # what file line
  local what=$1 file=$2 line=$3
  mk
  printf '%s\n' "$line" >>"$TMP/tree/$file"
  if bash "$TMP/tree/ci/check-layers.sh" >"$TMP/out" 2>&1; then
    not_ok "$what: refused" "$TMP/out"
  elif grep -qF "$file:" "$TMP/out" && grep -qF "$line" "$TMP/out"; then
    ok "$what: refused, naming $file and the line"
  else
    not_ok "$what: the message names $file and the line" "$TMP/out"
  fi
}
expect_refused "the server includes a CLI header" src/server/api_gov.c '#include "../cli/render.h"'
expect_refused "the CLI includes a server header" src/cli/main.c '#include "../server/server.h"'
expect_refused "the library includes the CLI" src/lib/task/task_json.c '#  include <cli/cli.h>'
expect_refused "the library includes the server" src/lib/core/error.c '#include "../../server/server.h"'

mk
printf '#include "berth/server_names.h"\n' >>"$TMP/tree/src/cli/main.c"
if bash "$TMP/tree/ci/check-layers.sh" >"$TMP/out" 2>&1; then
  ok "a libberth header whose name starts with server is not a violation"
else
  not_ok "a libberth header whose name starts with server is not a violation" "$TMP/out"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
