#!/usr/bin/env bash
# Governance through the real CLI, as an admin would use it: image allowlist, task policies, audit trail and its
# tamper detection (with the sqlite3 shell). Needs no Docker daemon. $BERTH is set by ctest.
set -u
BERTH=${BERTH:?set BERTH to the berth binary}
SRC=${BERTH_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
export BERTH_HOME=$(mktemp -d /tmp/berth-gov-cli-XXXXXX)
trap 'rm -rf "$BERTH_HOME" "$BERTH_HOME".copy' EXIT
pass=0
fail=0
ME=$(id -un)

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# run NAME WANT_EXIT CMD...: runs berth, keeps stdout in $out and stderr in $err
run() {
  local name=$1 want=$2
  shift 2
  out=$("$BERTH" "$@" 2>/tmp/berth-gov-err.$$)
  local rc=$?
  err=$(cat /tmp/berth-gov-err.$$)
  rm -f /tmp/berth-gov-err.$$
  if [ "$rc" -ne "$want" ]; then
    bad "$name: exit $rc, want $want (stdout: $out) (stderr: $err)"
    return 1
  fi
  ok
  return 0
}
has() { # has NAME TEXT NEEDLE
  if printf '%s' "$2" | grep -qF -- "$3"; then ok; else bad "$1: missing \`$3\` in: $2"; fi
}
lacks() {
  if printf '%s' "$2" | grep -qF -- "$3"; then bad "$1: unexpected \`$3\` in: $2"; else ok; fi
}
one_line() {
  if [ "$(printf '%s\n' "$2" | wc -l)" -eq 1 ]; then ok; else bad "$1: not one line: $2"; fi
}

# --- stacks used by policy tests (made before any image rule, with the default runner image) ---
run "stack create" 0 stack create prod-db --image berth/runner:latest --label pci-dss --label prod
run "stack create 2" 0 stack create dev --image berth/runner:latest

# --- image allowlist ---
run "empty list allows the runner image" 0 image check berth/runner
has "empty list reason" "$out" "allowlist is empty"
run "empty list denies others" 1 image check ubuntu
has "denied names the image" "$out" "docker.io/library/ubuntu:latest"
run "bad reference" 125 image check UPPER
one_line "bad reference message" "$err"
run "allow ubuntu" 0 image allow ubuntu
has "allow prints normalized" "$out" "allowed docker.io/library/ubuntu:latest"
has "tagless note" "$err" "covers only the latest tag"
run "the default image stays allowed" 0 image check berth/runner:latest
run "deny the default image" 0 image deny 'docker.io/berth/**'
has "default image note" "$err" "default runner image docker.io/berth/runner:latest is not allowed"
run "remove that deny" 0 image remove 'docker.io/berth/**'
run "the default image is allowed again" 0 image check berth/runner:latest
run "ubuntu allowed" 0 image check docker.io/library/ubuntu:latest
has "deciding pattern" "$out" "matched allow pattern \`docker.io/library/ubuntu:latest\`"
run "other tag denied" 1 image check ubuntu:22.04
run "allow any tag" 0 image allow 'ubuntu:*'
run "deny 1*" 0 image deny 'ubuntu:1*'
run "deny wins" 1 image check ubuntu:18.04
has "deny names pattern" "$out" "matched deny pattern \`docker.io/library/ubuntu:1*\`"
run "allow wins elsewhere" 0 image check ubuntu:22.04
run "check --json" 1 image check --json ubuntu:18.04
has "json allowed false" "$out" '"allowed":	false'
has "json: the API's record (ref, normalized)" "$out" '"normalized":	"docker.io/library/ubuntu:18.04"'
has "json pattern" "$out" '"pattern":	"docker.io/library/ubuntu:1*"'
run "registry with port" 0 image allow 'registry.example.com:5000/**'
run "port image allowed" 0 image check registry.example.com:5000/team/app:1.2@sha256:$(printf 'a%.0s' $(seq 64))
run "port must match" 1 image check registry.example.com/team/app:1.2
run "same rule again" 0 image allow 'docker.io/library/ubuntu:*'
has "same rule again message" "$out" "already exists"
run "opposite kind refused" 125 image deny 'ubuntu:*'
has "opposite kind message" "$err" "already an allow rule"
run "bad pattern" 125 image allow 'ub untu'
one_line "bad pattern message" "$err"
has "bad pattern says why" "$err" "invalid image pattern"
run "list" 0 image list
has "list allow" "$out" "docker.io/library/ubuntu:*"
has "list deny" "$out" "deny   docker.io/library/ubuntu:1*"
has "list actor" "$out" "$ME"
run "list --json" 0 image list --json
has "list json" "$out" '"kind":	"deny"'
run "remove by another spelling" 0 image remove 'library/ubuntu:1*'
run "removed deny no longer decides" 0 image check ubuntu:18.04
run "remove missing" 125 image remove 'ubuntu:1*'
has "remove missing message" "$err" "no image rule"
run "image usage" 125 image
run "image help" 0 image --help

# --- task policies ---
run "policy add" 0 policy add "$SRC/tests/data/policy/examples.json"
has "policy add count" "$out" "added 4 policy rules"
printf '{"name":"x","decision":"deny","command":"(a"}' >"$BERTH_HOME/bad.json"
run "policy add bad regex" 125 policy add "$BERTH_HOME/bad.json"
has "bad regex names rule and offset" "$err" "rule \`x\`: field \`command\` is not a valid regex: offset 2"
one_line "bad regex one line" "$err"
printf '[{"name":"ok","decision":"deny"},{"name":"y","decision":"deny","stack":["a"]}]' >"$BERTH_HOME/bad2.json"
run "policy add unknown field" 125 policy add "$BERTH_HOME/bad2.json"
has "unknown field" "$err" "rule \`y\`: unknown field \`stack\`"
run "policy list" 0 policy list
has "policy list names" "$out" "weekday-only"
lacks "nothing from the bad file" "$out" "ok "
run "policy list --json" 0 policy list --json
has "policy json" "$out" '"name":	"no-destroy"'
audit_before=$("$BERTH" audit --json | grep -c '"id":')
run "test destroy" 1 policy test prod-db -- terraform destroy -auto-approve
has "test decision" "$out" "decision: deny (rule no-destroy): destroy is not allowed from tasks"
has "test matched" "$out" "no-destroy (deny)"
run "test weekend writer" 1 policy test prod-db --role writer --at 2024-05-04T10:00Z -- terraform plan
has "weekend rule" "$out" "rule weekday-only"
has "every matching rule" "$out" "plans-are-fine (allow)"
run "test weekday writer" 0 policy test prod-db --role writer --at 2024-05-06T10:00Z -- terraform plan
has "allowed decision" "$out" "decision: allow"
run "test out of hours (label glob pci-*)" 1 policy test prod-db --at 2024-05-06T20:00Z -- make apply
has "hours rule" "$out" "office-hours (deny)"
run "test other stack" 0 policy test dev --role writer --at 2024-05-04T10:00Z --json -- make apply
has "test json" "$out" '"decision":	"allow"'
run "test unknown stack" 125 policy test nope -- true
run "test without command" 125 policy test prod-db
run "test bad role" 125 policy test prod-db --role root -- true
audit_after=$("$BERTH" audit --json | grep -c '"id":')
if [ "$audit_before" -eq "$audit_after" ]; then ok; else bad "policy test recorded something ($audit_before -> $audit_after)"; fi
run "policy remove" 0 policy remove no-destroy
run "destroy allowed now" 0 policy test prod-db --at 2024-05-06T10:00Z -- terraform destroy
run "policy remove missing" 125 policy remove no-destroy

# --- audit trail ---
run "audit" 0 audit
has "audit image.allow" "$out" "image.allow"
has "audit image.deny" "$out" "image.deny"
has "audit image.remove" "$out" "image.remove"
has "audit policy.add" "$out" "policy.add"
has "audit policy.remove" "$out" "policy.remove"
has "audit actor" "$out" "$ME"
has "audit failures recorded" "$out" "failed: no image rule"
run "audit --json" 0 audit --json
has "audit json hash" "$out" '"hash":'
run "audit --since future" 0 audit --since 2999-01-01
has "since filters" "$out" "no audit records"
run "audit --since 1h" 0 audit --since 1h
has "since 1h" "$out" "image.allow"
run "audit bad since" 125 audit --since soon
run "verify" 0 audit verify
has "verify intact" "$out" "audit trail intact"
n=$("$BERTH" audit --json | grep -c '"id":')

# --- tampering: each field of one record, in a copy of the store, with the sqlite3 shell ---
if [ -n "${BERTH_STORE:-}" ]; then
  echo "skip - tamper checks edit berth.db with the sqlite3 shell: SQLite only" >&2
elif command -v sqlite3 >/dev/null; then
  k=3
  for edit in "at = at + 1" "actor = 'mallory'" "action = 'stack.show'" "target = 'other'" \
    "args = '{\"pattern\":\"**\"}'" "outcome = 'ok (edited)'" "hash = upper(hash)"; do
    rm -rf "$BERTH_HOME.copy"
    cp -a "$BERTH_HOME" "$BERTH_HOME.copy"
    sqlite3 "$BERTH_HOME.copy/berth.db" "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET $edit WHERE id = $k;"
    out=$(BERTH_HOME="$BERTH_HOME.copy" "$BERTH" audit verify)
    rc=$?
    if [ "$rc" -eq 1 ] && printf '%s' "$out" | grep -qF "record $k:"; then ok; else bad "edit $edit: exit $rc: $out"; fi
  done
  for what in "id = $k" "id = 1" "id = $n"; do
    rm -rf "$BERTH_HOME.copy"
    cp -a "$BERTH_HOME" "$BERTH_HOME.copy"
    sqlite3 "$BERTH_HOME.copy/berth.db" "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE $what;"
    want=${what#id = }
    out=$(BERTH_HOME="$BERTH_HOME.copy" "$BERTH" audit verify)
    rc=$?
    if [ "$rc" -eq 1 ] && printf '%s' "$out" | grep -qF "record $want:"; then ok; else bad "delete $what: exit $rc: $out"; fi
  done
  # plain SQL edits are refused outright
  if sqlite3 "$BERTH_HOME/berth.db" "UPDATE audit_log SET outcome = 'ok' WHERE id = 1;" 2>/dev/null; then
    bad "UPDATE on audit_log was not refused"
  else
    ok
  fi
  run "original still intact" 0 audit verify
else
  echo "note: sqlite3 shell not found: tamper checks skipped" >&2
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
