#!/usr/bin/env bash
# Workload identity end to end, with a real container: a task's OIDC token (checked by PyJWT, an independent
# implementation, against the JWKS berth publishes), credential helpers (success, failure, timeout, garbage, expired,
# one that echoes its input), and that neither the token nor a helper's value is anywhere berth wrote.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
S=$(stack_name idp)
H=$T_TMP/helpers
mkdir -p "$H"
future=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
past=$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)
CRED_VALUE="cred-Value-$$-q8Zt"
# ok: keeps what it read (the task's context, with its token) for the test, prints a short-lived secret
cat >"$H/ok" <<EOF
#!/bin/sh
cat >"$T_TMP/helper-input.json"
echo "issuing credentials for the task" >&2
printf '{"env": {"CRED_SECRET": "$CRED_VALUE"}, "expires_at": "$future"}\n'
EOF
printf '#!/bin/sh\necho "no credentials today: %s" >&2\nexit 3\n' "$CRED_VALUE" >"$H/fails"
printf '#!/bin/sh\nsleep 30\n' >"$H/hangs"
printf '#!/bin/sh\necho hello, not JSON\n' >"$H/garbage"
cat >"$H/expired" <<EOF
#!/bin/sh
echo '{"env": {"X": "stale-Value-77"}, "expires_at": "$past"}'
EOF
printf '#!/bin/sh\ncat\ncat "%s/helper-input.json" >&2\n' "$T_TMP" >"$H/echo"
printf 'not executable\n' >"$H/noexec"
# pem: prints a key block on stderr (masked whole by the built-in PEM pattern, not line by line) and gives a value
# too short to be masked (said, by name)
cat >"$H/pem" <<'EOF'
#!/bin/sh
printf '%s\n' 'here is a key:' '-----BEGIN PRIVATE KEY-----' 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCpemBodyLine1xQ8sK2nR5vT7wY9zA1c' \
  'pemBodyLine2E3gH5jL7mN9pR1tV3xZ5bD7fH9kM2qW4eR6tY8uI0oP' '-----END PRIVATE KEY-----' >&2
printf '{"env": {"SHORT_ONE": "ab"}, "expires_at": "%s"}\n' "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)"
EOF
chmod +x "$H/ok" "$H/fails" "$H/hangs" "$H/garbage" "$H/expired" "$H/echo" "$H/pem"
cat >"$BERTH_HOME/config.json" <<EOF
{"oidc_issuer": "https://berth.example",
 "credential_helpers": {"ok": {"command": ["$H/ok"]}, "fails": {"command": ["$H/fails"]},
   "hangs": {"command": ["$H/hangs"], "timeout": "1s"}, "garbage": {"command": ["$H/garbage"]},
   "expired": {"command": ["$H/expired"]}, "echo": {"command": ["$H/echo"]}, "noexec": {"command": ["$H/noexec"]},
   "pem": {"command": ["$H/pem"]}}}
EOF
"$BERTH" image allow 'docker.io/berth/busybox:*' >/dev/null 2>&1

# bad configuration: one line at stack create, exit 125
bad_create() { # bad_create "what" pattern args...
  local what=$1 pat=$2
  shift 2
  "$BERTH" stack create "$(stack_name bad)" --image berth/busybox:latest "$@" >/dev/null 2>"$T_TMP/bad.err"
  local rc=$?
  check "$what: exit 125, one line ($(head -c 160 "$T_TMP/bad.err"))" \
    sh -c "test $rc -eq 125 && test \$(wc -l <'$T_TMP/bad.err') -eq 1 && grep -q '$pat' '$T_TMP/bad.err'"
}
bad_create "an unknown credential helper" "not defined in config.json" --credentials nosuch
bad_create "a helper whose command is not executable" "not an executable file" --credentials noexec
bad_create "an audience with a space" "has a space" --oidc-audience 'a b'
bad_create "an AWS role without an audience" "needs an OIDC audience" --oidc-aws-role arn:aws:iam::1:role/x

# a task with a token and a helper
"$BERTH" stack create "$S" --image berth/busybox:latest --oidc-audience sts.amazonaws.com \
  --oidc-aws-role arn:aws:iam::123456789012:role/berth --credentials ok >/dev/null
check "stack with an OIDC audience, an AWS role and a credential helper" test $? -eq 0
cmd='echo "file=$BERTH_OIDC_TOKEN_FILE aws_file=$AWS_WEB_IDENTITY_TOKEN_FILE role=$AWS_ROLE_ARN";
echo "token-sha=$(sha256sum <"$BERTH_OIDC_TOKEN_FILE" | cut -c1-16)";
echo "cred-sha=$(printf %s "$CRED_SECRET" | sha256sum | cut -c1-16)";
echo "token: $(cat "$BERTH_OIDC_TOKEN_FILE")"; echo "cred: $CRED_SECRET"; env | grep -c BERTH_OIDC_TOKEN=; true'
rc=$(run "$T_TMP/t.out" "$T_TMP/t.err" "$S" -- "$cmd")
id=$(last_task "$S")
check "the task ran (rc=$rc)" test "$rc" -eq 0
check "  ...it names the token file on a memory filesystem, for berth and the AWS SDKs" \
  grep -qx "file=/dev/shm/berth/oidc-token aws_file=/dev/shm/berth/oidc-token role=arn:aws:iam::123456789012:role/berth" "$T_TMP/t.out"
check "  ...the token is not in the container's environment" grep -qx 0 "$T_TMP/t.out"
check "  ...printing the token and the helper's value shows ***" \
  sh -c "grep -qx 'token: \*\*\*' '$T_TMP/t.out' && grep -qx 'cred: \*\*\*' '$T_TMP/t.out'"
token=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["oidc_token"])' "$T_TMP/helper-input.json" 2>/dev/null)
check "the helper was given the task's context and its token on stdin" test -n "$token"
check "  ...the same token the task found in its file" \
  grep -qx "token-sha=$(printf %s "$token" | sha256sum | cut -c1-16)" "$T_TMP/t.out"
check "  ...and the task got the helper's value" \
  grep -qx "cred-sha=$(printf %s "$CRED_VALUE" | sha256sum | cut -c1-16)" "$T_TMP/t.out"
"$BERTH" oidc jwks >"$T_TMP/jwks.json"
if $PY -c 'import jwt' 2>/dev/null; then
  verify() { $PY - "$1" "$T_TMP/jwks.json" "$id" "$S" <<'PY'
import json, sys, jwt
tok, jwks, tid, stack = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3], sys.argv[4]
kid = jwt.get_unverified_header(tok)["kid"]
key = jwt.PyJWK.from_dict(next(k for k in jwks["keys"] if k["kid"] == kid))
c = jwt.decode(tok, key.key, algorithms=["ES256", "RS256"], audience="sts.amazonaws.com", issuer="https://berth.example")
assert c["sub"] == "stack:%s:task:%s" % (stack, tid) and c["jti"] == tid and c["task_id"] == tid, c
assert c["stack"] == stack and c["run_type"] == "TASK" and c["skip_init"] is False and c["host"], c
assert 0 < c["exp"] - c["iat"] <= 3600 and c["nbf"] == c["iat"], c
PY
  }
  check "PyJWT verifies the token against 'berth oidc jwks': signature, audience, issuer, every claim" verify "$token"
  tampered=$(printf %s "$token" | $PY -c 'import sys; t=sys.stdin.read().split("."); t[1]=t[1][:-2]+("A" if t[1][-2]!="A" else "B")+t[1][-1]; print(".".join(t))')
  if verify "$tampered" 2>/dev/null; then fail "  ...a tampered token fails"; else ok "  ...a tampered token fails"; fi
  "$BERTH" oidc rotate >/dev/null
  "$BERTH" oidc jwks >"$T_TMP/jwks.json"
  check "after 'berth oidc rotate' the old token still verifies (its key stays published)" verify "$token"
  rc=$(run "$T_TMP/t2.out" "$T_TMP/t2.err" "$S" -- true)
  new_token=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["oidc_token"])' "$T_TMP/helper-input.json")
  new_kid=$($PY -c 'import jwt,sys; print(jwt.get_unverified_header(sys.argv[1])["kid"])' "$new_token")
  old_kid=$($PY -c 'import jwt,sys; print(jwt.get_unverified_header(sys.argv[1])["kid"])' "$token")
  check "  ...and new tokens are signed with the new key" test "$new_kid" != "$old_kid"
else
  echo "skip - token verification: $PY has no jwt module (python3-jwt)"
fi

# nothing berth wrote holds the token or the helper's value
"$BERTH" task logs "$id" >"$T_TMP/logs" 2>&1
"$BERTH" task show "$id" --json >"$T_TMP/show" 2>&1
"$BERTH" audit --json >"$T_TMP/audit" 2>&1
for f in t.out t.err logs show audit; do
  check "$f: no trace of the token or the helper's value" \
    sh -c "! grep -qF -e '$token' -e '$CRED_VALUE' '$T_TMP/$f'"
done
check "no file under BERTH_HOME (store, logs, state) holds either" \
  sh -c "! grep -rqF -e '$token' -e '$CRED_VALUE' '$BERTH_HOME'"

# helpers that fail: the task fails in PREPARING with one line; their stderr is in the log, redacted
failing() { # failing HELPER "reason pattern"
  local st
  st=$(stack_name "h$1")
  "$BERTH" stack create "$st" --image berth/busybox:latest --credentials "$1" >/dev/null
  local rc
  rc=$(run "$T_TMP/f.out" "$T_TMP/f.err" "$st" -- 'echo should-not-run')
  local fid reason
  fid=$(last_task "$st")
  reason=$(task_field "$fid" reason)
  check "helper $1: the task fails before it runs, exit 125 ($reason)" \
    sh -c "test $rc -eq 125 && ! grep -q should-not-run '$T_TMP/f.out' && echo '$reason' | grep -q '$2'"
  "$BERTH" task logs "$fid" >"$T_TMP/f.logs" 2>&1
}
failing fails "failed with exit status 3"
check "  ...its stderr is in the task's log" grep -q 'no credentials today' "$T_TMP/f.logs"
# the helper's exit status is its task's alone: on a fleet host the task runs in a thread of the server, whose other
# threads must not reap the helper before the task's thread reads its status (a server used to reap every child)
F=$(stack_name hfails)
for i in $(seq 1 12); do "$BERTH" task run "$F" --detach -- true >/dev/null 2>&1; done
for _ in $(seq 1 600); do
  [ "$("$BERTH" task list --stack "$F" --json | python3 -c 'import json, sys
print(sum(t["state"] in ("FINISHED", "FAILED", "CANCELED", "STOPPED") for t in json.load(sys.stdin)["tasks"]))')" -ge 13 ] && break
  sleep 0.1
done
reasons=$("$BERTH" task list --stack "$F" --json | python3 -c 'import json, sys
print("\n".join(t["reason"] or "-" for t in json.load(sys.stdin)["tasks"]))' | sort | uniq -c | tr -s ' ' | tr '\n' ';')
check "  ...and in 13 tasks, every one failed for the helper's exit status 3 ($reasons)" \
  sh -c '[ "$(printf "%s" "$1" | tr ";" "\n" | grep -c .)" = 1 ] && printf "%s" "$1" | grep -q "13 .*failed with exit status 3"' _ "$reasons"
failing hangs "timed out after 1s"
failing garbage "printed something that is not"
check "  ...the reason does not quote what it printed" sh -c "! grep -q 'hello, not JSON' '$T_TMP/f.err'"
failing expired "credentials that expired at"
check "  ...the expired value is not shown" sh -c "! grep -rq 'stale-Value-77' '$T_TMP/f.err' '$T_TMP/f.logs'"
# a helper's stderr with a key block in it: masked as one text; a value too short to mask is named in a warning
P=$(stack_name hpem)
"$BERTH" stack create "$P" --image berth/busybox:latest --credentials pem >/dev/null
rc=$(run "$T_TMP/p.out" "$T_TMP/p.err" "$P" -- true)
pid=$(last_task "$P")
"$BERTH" task logs "$pid" >"$T_TMP/p.logs" 2>&1
check "a helper's key block on stderr: the task runs (rc=$rc), the block is masked whole, no line of it shows" \
  sh -c "test $rc -eq 0 && grep -q 'here is a key' '$T_TMP/p.logs' && ! grep -rq -e pemBodyLine -e MIIEvQ '$T_TMP/p.logs' '$T_TMP/p.err' '$BERTH_HOME'"
check "  ...and a value too short to be masked is named in a warning" \
  grep -q 'warning: secret variable SHORT_ONE from credential helper pem is too short to be masked' "$T_TMP/p.logs"
# a helper that echoes its input (the context with the token) to stdout and stderr: fails, leaks nothing
"$BERTH" stack update "$S" --credentials echo >/dev/null
rc=$(run "$T_TMP/e.out" "$T_TMP/e.err" "$S" -- true)
eid=$(last_task "$S")
"$BERTH" task logs "$eid" >"$T_TMP/e.logs" 2>&1
etoken=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["oidc_token"])' "$T_TMP/helper-input.json" 2>/dev/null)
check "a helper that echoes its input fails the task (rc=$rc)" test "$rc" -eq 125
check "  ...and the token it echoed shows nowhere" \
  sh -c "! grep -rqF -e '$etoken' -e '$token' '$T_TMP/e.out' '$T_TMP/e.err' '$T_TMP/e.logs' '$BERTH_HOME'"

# policies can ask for an identity
cat >"$T_TMP/p.json" <<'EOF'
{"name": "apply-needs-identity", "command": "^terraform apply", "identity": false, "decision": "deny",
 "message": "terraform apply needs a workload identity"}
EOF
"$BERTH" policy add "$T_TMP/p.json" >/dev/null
N=$(stack_name noid)
"$BERTH" stack create "$N" --image berth/busybox:latest >/dev/null
"$BERTH" task run "$N" -- terraform apply >/dev/null 2>"$T_TMP/p.err"
check "a policy denies terraform apply on a stack without an identity" grep -q "needs a workload identity" "$T_TMP/p.err"
"$BERTH" policy test "$S" -- terraform apply >"$T_TMP/p.out" 2>&1
check "  ...and allows it on a stack with one" grep -q "decision: allow" "$T_TMP/p.out"
# berth serve --public-url publishes the discovery document and the JWKS without a key
t_free_port PORT
"$BERTH" serve --listen "tcp:127.0.0.1:$PORT" --public-url https://ci.berth.example/ >"$T_TMP/serve.log" 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null; t_cleanup' EXIT
for _ in $(seq 1 50); do curl -s "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break; sleep 0.1; done
curl -s "http://127.0.0.1:$PORT/.well-known/openid-configuration" >"$T_TMP/disc.json"
check "GET /.well-known/openid-configuration, no key: the issuer is the public URL" \
  $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["issuer"]=="https://ci.berth.example" and d["jwks_uri"]=="https://ci.berth.example/.well-known/jwks.json"' "$T_TMP/disc.json"
curl -s "http://127.0.0.1:$PORT/.well-known/jwks.json" >"$T_TMP/jwks.http"
"$BERTH" oidc jwks >"$T_TMP/jwks.cli"
check "GET /.well-known/jwks.json, no key: the same keys as berth oidc jwks" \
  $PY -c 'import json,sys; a,b=(json.load(open(f)) for f in sys.argv[1:]); assert a==b and len(a["keys"])>=1' "$T_TMP/jwks.http" "$T_TMP/jwks.cli"
check "POST /v1/oidc/rotate needs a key" test "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/v1/oidc/rotate")" = 401
kill $SRV 2>/dev/null
wait $SRV 2>/dev/null
rm -f "$BERTH_HOME/config.json"
finish
