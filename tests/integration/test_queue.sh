#!/usr/bin/env bash
# Many callers, one stack: FIFO serialization across processes, parallel stacks, supervisors killed at random
# moments, cancel and stop in every state, locks, and the audit trail of it all.
. "$(dirname "$0")/lib.sh"
S=$(stack_name fifo)
S2=$(stack_name other)
"$BERTH" stack create "$S" --image berth/busybox:latest >/dev/null
"$BERTH" stack create "$S2" --image berth/busybox:latest >/dev/null
span='s=$(date +%s.%N); sleep 0.3; e=$(date +%s.%N); echo "SPAN $BERTH_TASK_ID $s $e"'

# 20 concurrent `berth task run` on one stack: no overlap, submission order kept
for i in $(seq 1 20); do
  "$BERTH" task run "$S" -- "$span" >"$T_TMP/fifo.$i" 2>"$T_TMP/fifo.$i.err" </dev/null &
  sleep 0.05
done
wait
cat "$T_TMP"/fifo.[0-9]* | grep '^SPAN' | sort -k3 -n >"$T_TMP/spans"
check "all 20 tasks ran" test "$(wc -l <"$T_TMP/spans")" -eq 20
check "no two tasks on the stack overlapped" awk 'NR>1 && $3 < prev {bad=1} {prev=$4} END {exit bad}' "$T_TMP/spans"
"$BERTH" task list --stack "$S" --json | python3 -c '
import json,sys; t=json.load(sys.stdin)["tasks"]; print("\n".join(x["id"] for x in sorted(t, key=lambda x: x["seq"])))' \
  >"$T_TMP/submitted"
check "they ran in submission order" sh -c "awk '{print \$2}' '$T_TMP/spans' | diff -q - '$T_TMP/submitted'"
for _ in $(seq 1 20); do # a fleet host's thread lets go of its last task a moment after the record ended
  left_locks=$(find "$BERTH_HOME/run" -name 'task-*.lock' | wc -l)
  [ "$left_locks" -eq 0 ] && break
  sleep 0.1
done
check "no liveness lock file is left behind by the 20 ended tasks ($left_locks left)" test "$left_locks" -eq 0

# two stacks run in parallel
long=${span/sleep 0.3/sleep 2}
"$BERTH" task run "$S" -- "$long" >"$T_TMP/par.1" 2>/dev/null &
"$BERTH" task run "$S2" -- "$long" >"$T_TMP/par.2" 2>/dev/null &
wait
cat "$T_TMP"/par.* | grep '^SPAN' | sort -k3 -n >"$T_TMP/pspans"
check "tasks on two stacks overlap" awk 'NR==2 && $3 < prev {ok=1} {prev=$4} END {exit !ok}' "$T_TMP/pspans"

# a waiting task names the task blocking it
a=$("$BERTH" task run "$S" --detach -- sleep 2)
b=$("$BERTH" task run "$S" --detach -- true)
sleep 0.8
check "a queued task names its blocker" test "$(task_field "$b" blocked_by)" = "$a"
"$BERTH" task logs "$b" --follow >/dev/null 2>&1

if [ -n "${BERTH_STORE:-}" ]; then
  echo "skip - 20 supervisor kills (on PostgreSQL a fleet host runs each task in a thread of its own: a killed host is test_fleet's)"
else
START_LIMIT_MS=2000
# the supervisor holding the stack SIGKILLed at random moments: the next task starts within 2 s, nothing is left
slow=0
for trial in $(seq 1 20); do
  a=$("$BERTH" task run "$S" --detach -- sleep 30)
  b=$("$BERTH" task run "$S" --detach -- true)
  sleep "$(awk -v r=$RANDOM 'BEGIN {printf "%.2f", 0.1 + (r % 150) / 100}')"
  pid=""
  for _ in $(seq 1 50); do
    pid=$(task_field "$a" supervisor_pid)
    [ -n "$pid" ] && break
    sleep 0.05
  done
  killed_at=$(date +%s%3N)
  kill -KILL "$pid" 2>/dev/null
  "$BERTH" task logs "$b" --follow >/dev/null 2>&1
  started=$("$BERTH" task show "$b" --json | python3 -c '
import json,sys,datetime
h=json.load(sys.stdin)["history"]
p=[x["at"] for x in h if x["state"]=="PREPARING"]
print(int(datetime.datetime.strptime(p[0],"%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()*1000) if p else 0)')
  st_a=$(task_field "$a" state)
  reason_a=$(task_field "$a" reason)
  left=$(docker ps -aq --filter label=berth.task="$a" | wc -l)
  wait_ms=$((started - killed_at))
  if [ "$st_a" = FAILED ] && [ "$reason_a" = "executor interrupted" ] && [ "$left" -eq 0 ] && [ "$started" -gt 0 ] &&
    [ "$wait_ms" -lt "$START_LIMIT_MS" ]; then
    :
  else
    slow=$((slow + 1))
    echo "# trial $trial: killed task $a is $st_a/$reason_a, $left containers left, next started after ${wait_ms} ms"
  fi
done
check "20 supervisor kills: each time the next task started within $((START_LIMIT_MS / 1000)) s, the killed task FAILED 'executor interrupted', no container left" test "$slow" -eq 0
fi

# cancel and stop in every state
S3=$(stack_name cancel)
"$BERTH" image allow '127.0.0.1:9/**' >/dev/null
"$BERTH" stack create "$S3" --image 127.0.0.1:9/nowhere/app:1 --pull always >/dev/null
p=$("$BERTH" task run "$S3" --detach -- true)
sleep 1
check "PREPARING (a pull being retried) -> STOPPED" sh -c "'$BERTH' task cancel $p | grep -q STOPPED"
"$BERTH" task logs "$p" --follow >/dev/null 2>&1
check "  ...and it stays STOPPED" test "$(task_field "$p" state)" = STOPPED
S4=$(stack_name init)
"$BERTH" stack create "$S4" --image berth/busybox:latest --init 'sleep 20' >/dev/null
i=$("$BERTH" task run "$S4" --detach -- true)
for _ in $(seq 1 100); do [ "$(task_field "$i" state)" = INITIALIZING ] && break; sleep 0.1; done
sleep 0.5
start=$(date +%s)
check "INITIALIZING -> STOPPED" sh -c "'$BERTH' task cancel $i | grep -q STOPPED"
"$BERTH" task logs "$i" --follow >/dev/null 2>&1
check "  ...the init was cut short (not 20 s)" test $(($(date +%s) - start)) -lt 10
check "  ...and its container removed" test "$(docker ps -aq --filter label=berth.task="$i" | wc -l)" -eq 0
q1=$("$BERTH" task run "$S4" --skip-init --detach -- sleep 3)
q2=$(QSECRET=queued-secret-value "$BERTH" task run "$S4" --skip-init --secret-env QSECRET --detach -- echo never)
secret_col() { # the task's sealed secret env as stored, (null) once wiped
  if [ -n "${BERTH_STORE:-}" ]; then
    psql -X -qAt "$BERTH_STORE" -c "SELECT COALESCE(secret_env, '(null)') FROM tasks WHERE id = '$1'"
  else
    python3 -c 'import sqlite3, sys
r = sqlite3.connect(sys.argv[1]).execute("SELECT secret_env FROM tasks WHERE id = ?", (sys.argv[2],)).fetchone()
print("(null)" if r[0] is None else r[0])' "$BERTH_HOME/berth.db" "$1"
  fi
}
check "a queued task's secret env is kept sealed until it runs" test "$(secret_col "$q2")" != "(null)"
check "QUEUED -> CANCELED" sh -c "'$BERTH' task cancel $q2 | grep -q CANCELED"
check "  ...and its secret env is wiped from the store (no runner ever had it)" test "$(secret_col "$q2")" = "(null)"
for _ in $(seq 1 100); do [ "$(task_field "$q1" state)" = PERFORMING ] && break; sleep 0.1; done
"$BERTH" task cancel "$q1" >/dev/null 2>"$T_TMP/perf.err"
check "PERFORMING cannot be stopped (exit 125)" test $? -eq 125
check "  ...and berth says so" grep -q 'a performing task cannot be stopped (it runs to its end or its timeout)' "$T_TMP/perf.err"
"$BERTH" task logs "$q1" --follow >/dev/null 2>&1
"$BERTH" task cancel "$q1" >/dev/null 2>"$T_TMP/done.err"
check "a finished task cannot be canceled" sh -c "grep -q 'already FINISHED' '$T_TMP/done.err'"
check "the canceled task never ran" sh -c "! '$BERTH' task logs $q2 | grep -q never"

# locks: the owner runs; someone else is denied with owner and note; force unlock
"$BERTH" stack lock "$S2" --note "state surgery" >/dev/null
rc=$(run "$T_TMP/o" "$T_TMP/e" "$S2" -- true)
check "the lock owner can still run tasks" test "$rc" -eq 0
if [ -n "${BERTH_STORE:-}" ]; then
  psql -X -q "$BERTH_STORE" -c "UPDATE stacks SET lock_owner='alice' WHERE name='$S2'" >/dev/null
else
  sqlite3 "$BERTH_HOME/berth.db" "UPDATE stacks SET lock_owner='alice' WHERE name='$S2'" 2>/dev/null ||
    python3 -c "import sqlite3; c=sqlite3.connect('$BERTH_HOME/berth.db'); c.execute(\"UPDATE stacks SET lock_owner='alice' WHERE name='$S2'\"); c.commit()"
fi
rc=$(run "$T_TMP/o" "$T_TMP/e" "$S2" -- true)
check "someone else's lock: exit 125" test "$rc" -eq 125
check "  ...naming the owner and the note" grep -q 'locked by alice: state surgery' "$T_TMP/e"
"$BERTH" stack unlock "$S2" --force >/dev/null
rc=$(run "$T_TMP/o" "$T_TMP/e" "$S2" -- true)
check "after a forced unlock tasks run again" test "$rc" -eq 0
rc=$(run "$T_TMP/o" "$T_TMP/e" "$S2" -- 'exit 3')
check "a failing command: its status (rc=$rc)" test "$rc" -eq 3

"$BERTH" audit --json >"$T_TMP/audit.json"
check "the audit trail has submissions, transitions, cancels, locks and denials" python3 -c "
import json; r=json.load(open('$T_TMP/audit.json'))['records']; a={x['action'] for x in r}
need={'task.submit','task.preparing','task.finished','task.failed','task.canceled','task.stopped','stack.lock','stack.unlock','stack.create'}
assert need <= a, need - a
assert any(x['outcome'].startswith('denied') for x in r)"
check "audit verify passes" "$BERTH" audit verify
# every task above has ended (finished, failed, canceled, stopped, killed): none keeps a liveness lock file
active=$("$BERTH" task list --json | python3 -c '
import json, sys; print(sum(t["state"] not in ("FINISHED", "FAILED", "CANCELED", "STOPPED") for t in json.load(sys.stdin)["tasks"]))')
for _ in $(seq 1 20); do
  left_locks=$(find "$BERTH_HOME/run" -name 'task-*.lock' | wc -l)
  [ "$left_locks" -eq 0 ] && break
  sleep 0.1
done
check "no ended task keeps its liveness lock file ($active active, $left_locks files)" test "$active$left_locks" = 00
if t_local_only "a deleted stack's queue lock file goes with it"; then
  had=$(find "$BERTH_HOME/run" -name "stack-$S4.lock" | wc -l)
  "$BERTH" stack delete "$S4" >/dev/null
  check "a deleted stack's queue lock file goes with it (there was $had)" \
    sh -c "test $had -eq 1 && test ! -e '$BERTH_HOME/run/stack-$S4.lock'"
fi
finish
