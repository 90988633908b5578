#!/usr/bin/env bash
# The Docker client against a fake daemon, for faults a real one can't produce on demand: API versions out of
# range, a plain-text error body, an oversized body, a garbage exec stream. Each: one clear line, non-zero exit.
. "$(dirname "$0")/lib.sh"
fake() { # fake MODE: starts the fake daemon, sets FAKE_PID and FAKE_HOST
  python3 "$(dirname "$0")/fake_docker.py" "$T_TMP/$1.sock" "$1" 2>/dev/null &
  FAKE_PID=$!
  for _ in $(seq 1 50); do [ -S "$T_TMP/$1.sock" ] && break; sleep 0.1; done
  FAKE_HOST=unix://$T_TMP/$1.sock
}
doctor_fails() { # doctor_fails MODE "what" grep-pattern
  fake "$1"
  DOCKER_HOST=$FAKE_HOST "$BERTH" doctor >"$T_TMP/o" 2>"$T_TMP/e"
  local rc=$?
  kill "$FAKE_PID"
  wait "$FAKE_PID" 2>/dev/null
  if [ "$rc" -ne 0 ] && [ "$(wc -l <"$T_TMP/e")" -eq 1 ] && grep -q -- "$3" "$T_TMP/e"; then
    ok "$2: $(cat "$T_TMP/e")"
  else
    fail "$2 (rc=$rc): $(head -c 300 "$T_TMP/e")"
  fi
}
doctor_fails old "a daemon that is too old" "older than the 1.24 berth needs"
doctor_fails new "a daemon whose minimum API is above berth's" "requires API 1.50 or newer"
doctor_fails text-error "a plain-text error body" "boom: the fake daemon broke"
doctor_fails huge-info "an oversized response body" "exceeds the cap"
t0=$SECONDS
doctor_fails frozen "a daemon that accepts and never answers" "no answer within 15 s"
check "  ...within seconds, not minutes ($((SECONDS - t0)) s)" test $((SECONDS - t0)) -le 30

negotiated() { # negotiated MODE: the API version doctor reports against that fake
  fake "$1"
  DOCKER_HOST=$FAKE_HOST "$BERTH" doctor --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["docker"]["api_version"])'
  kill "$FAKE_PID"
  wait "$FAKE_PID" 2>/dev/null
}
check "a daemon at 1.43: berth uses 1.43" test "$(negotiated ok)" = 1.43
check "a daemon at 1.50: berth uses its own maximum, 1.45" test "$(negotiated newer)" = 1.45

fake garbage-exec
cat >"$T_TMP/exec.c" <<'C'
#include <stdio.h>
#include "berth/docker.h"
static int sink(void *u, int s, const char *d, size_t n) { (void) u; (void) s; fwrite(d, 1, n, stdout); return 0; }
int main(void) {
  berth_docker *d; berth_error *e = NULL;
  if (berth_docker_new(NULL, &d, &e) < 0) return 2;
  int rc = berth_docker_exec_start(d, "fakeexec", sink, NULL, NULL, NULL, &e);
  if (rc < 0) fprintf(stderr, "%s\n", e->msg);
  berth_docker_free(d);
  return rc < 0 ? 1 : 0;
}
C
if [ -n "${BERTH_BUILD_DIR:-}" ] && cc -D_GNU_SOURCE -I"$BERTH_SRC/include" "$T_TMP/exec.c" "$BERTH_BUILD_DIR/libberth.a" \
  $(pkg-config --libs libcurl libcjson libarchive libpcre2-8 sqlite3 libhs libsodium) -lm -lpthread -o "$T_TMP/exec" \
  2>"$T_TMP/cc.err"; then
  DOCKER_HOST=$FAKE_HOST "$T_TMP/exec" >"$T_TMP/xo" 2>"$T_TMP/xe"
  rc=$?
  check "a garbage exec stream: an error, not a hang or a crash" test "$rc" -eq 1
  check "  ...saying the stream type is unknown" grep -q 'unknown stream type 9' "$T_TMP/xe"
  check "  ...after delivering the valid frame before it" grep -qx ok "$T_TMP/xo"
else
  echo "# skipped the exec-stream case: needs BERTH_BUILD_DIR/BERTH_SRC (ctest sets them) $(head -c 200 "$T_TMP/cc.err" 2>/dev/null)"
fi
kill "$FAKE_PID"
wait "$FAKE_PID" 2>/dev/null
finish
