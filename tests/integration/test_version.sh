#!/usr/bin/env bash
# `berth --version`: one line naming the version of CMakeLists.txt and the commit the binary was built from (the
# checkout's HEAD; "unknown" outside a git checkout). Needs no Docker daemon.
set -u
BERTH=${BERTH:?set BERTH to the berth binary}
src=${BERTH_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $1"; }

out=$("$BERTH" --version 2>/dev/null)
rc=$?
[ $rc -eq 0 ] && ok "exit status 0" || not_ok "exit status 0 (got $rc)"
[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && ok "one line: $out" || not_ok "one line (got: $out)"

version=$(sed -n 's/^project(berth VERSION \([0-9.]*\) .*/\1/p' "$src/CMakeLists.txt")
if commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null); then
  expected="berth $version (commit $commit)"
else
  expected="berth $version (commit unknown)"
fi
[ "$out" = "$expected" ] && ok "names version $version and commit ${commit:-unknown}" \
  || not_ok "expected '$expected', got '$out'"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
