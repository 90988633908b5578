#!/usr/bin/env bash
# Secrets never leak, end to end through a real container: live output, stored logs, task records, berth's own
# messages (including a Docker error that echoes the environment), and the store's files.
. "$(dirname "$0")/lib.sh"
S=$(stack_name red)
SECRET='Zq9-stack-Secret/with+base64=chars'
export IT_SECRET_TASK='task-Secret-value-31337'
"$BERTH" stack create "$S" --image berth/busybox:latest --secret-env "STACK_SECRET=$SECRET" \
  --secret-env SHORT=abc >/dev/null
check "stack with secrets" test $? -eq 0

cmd='a=${STACK_SECRET%??????????????????}; b=${STACK_SECRET#"$a"};
printf "%s" "$a"; sleep 0.7; printf "%s\n" "$b";
echo "whole $STACK_SECRET"; env | grep SECRET;
printf "%s" "$STACK_SECRET" | base64; printf "user:%s" "$STACK_SECRET" | base64; printf "xy:%s" "$STACK_SECRET" | base64;
echo "err $IT_SECRET_TASK" >&2;
echo "::add-mask::runtime-Generated-5150"; echo "later runtime-Generated-5150" >&2;
echo "short $SHORT";
echo "aws AKIAIOSFODNN7EXAMPLE"; echo done'
rc=$(run "$T_TMP/out" "$T_TMP/err" "$S" --secret-env IT_SECRET_TASK -- "$cmd")
check "the task ran" test "$rc" -eq 0
check "output is there" grep -q done "$T_TMP/out"
id=$(last_task "$S")
"$BERTH" task logs "$id" >"$T_TMP/logs" 2>&1
"$BERTH" task show "$id" --json >"$T_TMP/show" 2>&1
b64=$(printf %s "$SECRET" | base64 -w0)
b64u=$(printf 'user:%s' "$SECRET" | base64 -w0 | cut -c 8-30)
b64x=$(printf 'xy:%s' "$SECRET" | base64 -w0 | cut -c 6-30)
for f in out err logs show; do
  for s in "$SECRET" "$IT_SECRET_TASK" AKIAIOSFODNN7EXAMPLE "$b64" "$b64u" "$b64x" "${SECRET:0:16}"; do
    check "$f: no trace of ${s:0:5}..." sh -c "! grep -qF -- '$s' '$T_TMP/$f'"
  done
done
for f in out err logs; do
  check "$f: no trace of the runtime mask" sh -c "! grep -qF runtime-Generated-5150 '$T_TMP/$f'"
done
check "masked values show as ***" grep -q 'whole \*\*\*' "$T_TMP/out"
check "the add-mask line shows ***" grep -qF '::add-mask::***' "$T_TMP/out"
check "a secret split by a pause is masked whole" sh -c "head -n 1 '$T_TMP/out' | grep -qx '\*\*\*'"
check "a too-short secret is named in a warning" grep -q 'SHORT' "$T_TMP/err"
check "... and its value is not in the warning" sh -c "! grep 'warning' '$T_TMP/err' | grep -q abc"
check "no secret in the store's files" sh -c "! grep -rqaF -e '$SECRET' -e '$IT_SECRET_TASK' '$BERTH_HOME'"

# a secret typed into a command and a plain env value, then rotated, then its stack deleted: the task's records go on
# showing *** (masked as it was submitted, not with the stack's secrets of the moment); a task's own secret typed
# into its command likewise, in every record and the audit trail
S2=$(stack_name rot)
ROT='rot-Secret-before-1'
"$BERTH" stack create "$S2" --image berth/busybox:latest --secret-env "ROT=$ROT" >/dev/null
rc=$(run "$T_TMP/o3" "$T_TMP/e3" "$S2" --env "PLAIN=$ROT" --secret-env IT_SECRET_TASK -- "echo $ROT $IT_SECRET_TASK")
check "a task typed with its stack's and its own secret values ran (rc=$rc)" test "$rc" -eq 0
id=$(last_task "$S2")
"$BERTH" task show "$id" --json >"$T_TMP/rot0"
"$BERTH" stack update "$S2" --secret-env "ROT=rot-Secret-after-2" >/dev/null
"$BERTH" task show "$id" --json >"$T_TMP/rot1"
"$BERTH" task show "$id" >"$T_TMP/rot2"
"$BERTH" task list --json >"$T_TMP/rot3"
"$BERTH" audit --json >"$T_TMP/rot4"
"$BERTH" task retry "$id" --secret-env IT_SECRET_TASK >/dev/null 2>&1
"$BERTH" task show "$(last_task "$S2")" --json >"$T_TMP/rot7"
check "a retry after the rotation is a new task ($(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["retry_of"])' "$T_TMP/rot7"))" \
  python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["retry_of"] == sys.argv[2] else 1)' "$T_TMP/rot7" "$id"
"$BERTH" audit --json >"$T_TMP/rot8"
"$BERTH" stack delete "$S2" >/dev/null
"$BERTH" task show "$id" --json >"$T_TMP/rot5"
"$BERTH" task list >"$T_TMP/rot6"
for f in rot0 rot1 rot2 rot3 rot4 rot5 rot6 rot7 rot8; do
  check "$f: the rotated and the task's own secret are masked" sh -c "! grep -qF -e '$ROT' -e '$IT_SECRET_TASK' '$T_TMP/$f'"
done
check "  ...shown as *** in the command and the plain env" python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))
sys.exit(0 if t["command"] == "echo *** ***" and t["env"]["PLAIN"] == "***" else 1)' "$T_TMP/rot5"

# a daemon error that echoes the environment: the message is redacted everywhere
if t_local_only "a Docker error that echoes the environment"; then
python3 "$(dirname "$0")/docker_proxy.py" "$T_TMP/echo.sock" --echo-env-on-create &
proxy=$!
for _ in $(seq 1 50); do [ -S "$T_TMP/echo.sock" ] && break; sleep 0.1; done
rc=$(DOCKER_HOST=unix://$T_TMP/echo.sock run "$T_TMP/out2" "$T_TMP/err2" "$S" --secret-env IT_SECRET_TASK -- true)
kill $proxy
wait $proxy 2>/dev/null
id=$(last_task "$S")
"$BERTH" task show "$id" --json >"$T_TMP/show2"
"$BERTH" task logs "$id" >"$T_TMP/logs2" 2>&1
check "a Docker error: exit 125" test "$rc" -eq 125
check "the Docker error is reported" grep -q 'invalid environment' "$T_TMP/err2"
for f in err2 show2 logs2; do
  check "$f: the echoed secrets are masked" sh -c "! grep -qF -e '$SECRET' -e '$IT_SECRET_TASK' '$T_TMP/$f' && grep -qF 'STACK_SECRET=***' '$T_TMP/$f'"
done
fi
finish
