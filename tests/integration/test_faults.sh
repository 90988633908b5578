#!/usr/bin/env bash
# Faults that must end cleanly, through the real binary and a real container:
#   - the disk under BERTH_HOME fills up while a task prints: the task ends FAILED with a reason naming the full
#     disk, the follower exits 125 with that line, and berth works again once space is back;
#   - a supervisor killed with SIGKILL: the follower notices within seconds, says why, and exits.
# The full disk is a small tmpfs mounted for this test (needs root; skipped with one line otherwise).
. "$(dirname "$0")/lib.sh"
S=$(stack_name faults)

# ---- a dead supervisor (SQLite: a task's supervisor is a process of its own) ----
"$BERTH" stack create "$S" --image berth/busybox:latest >/dev/null
check "stack created" test $? -eq 0
if [ -n "${BERTH_STORE:-}" ]; then
  echo "skip - a killed supervisor (on PostgreSQL a fleet host runs each task in a thread of its own: a killed host is test_fleet's)"
else
id=$("$BERTH" task run "$S" --detach -- 'echo started; sleep 60' 2>/dev/null)
for _ in $(seq 1 100); do
  [ "$(task_field "$id" state)" = PERFORMING ] && break
  sleep 0.1
done
pid=$(task_field "$id" supervisor_pid)
check "the task is PERFORMING under a supervisor (pid ${pid:-none})" test -n "$pid"
"$BERTH" task logs "$id" --follow >"$T_TMP/dead.out" 2>"$T_TMP/dead.err" </dev/null &
follower=$!
sleep 0.5
kill -9 "$pid" 2>/dev/null
start=$(date +%s%N)
timeout 30 tail --pid="$follower" -f /dev/null
wait "$follower"
rc=$?
took=$((($(date +%s%N) - start) / 1000000))
check "a follower of a task whose supervisor was killed returns within 5 s (${took} ms)" test "$took" -le 5000
check "  ...after printing what the task printed" grep -q started "$T_TMP/dead.out"
check "  ...and the task is FAILED: executor interrupted" \
  test "$(task_field "$id" state) $(task_field "$id" reason)" = "FAILED executor interrupted"

# ...and over HTTP: the server's follower notices it too
t_free_port PORT
key=$("$BERTH" key create faults-it --role writer 2>/dev/null | tail -n 1)
"$BERTH" serve --listen "tcp:127.0.0.1:$PORT" >"$T_TMP/serve.log" 2>&1 &
SRV=$!
for _ in $(seq 1 50); do curl -s "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break; sleep 0.1; done
hid=$(BERTH_SERVER=http://127.0.0.1:$PORT BERTH_API_KEY=$key "$BERTH" task run "$S" --detach -- 'echo started; sleep 60' 2>/dev/null)
for _ in $(seq 1 100); do
  [ "$(task_field "$hid" state)" = PERFORMING ] && break
  sleep 0.1
done
BERTH_SERVER=http://127.0.0.1:$PORT BERTH_API_KEY=$key "$BERTH" task logs "$hid" --follow >"$T_TMP/hdead.out" 2>&1 </dev/null &
follower=$!
sleep 0.5
kill -9 "$(task_field "$hid" supervisor_pid)" 2>/dev/null
start=$(date +%s%N)
timeout 30 tail --pid="$follower" -f /dev/null
took=$((($(date +%s%N) - start) / 1000000))
check "an HTTP follower of a task whose supervisor was killed returns within 5 s (${took} ms)" test "$took" -le 5000
check "  ...and the task is FAILED: executor interrupted" \
  test "$(task_field "$hid" state) $(task_field "$hid" reason)" = "FAILED executor interrupted"
kill "$SRV" 2>/dev/null
wait "$SRV" 2>/dev/null
fi

# ---- why a command was killed, with certainty ----
K=$(stack_name kills)
"$BERTH" stack create "$K" --image berth/busybox:latest --memory 32m >/dev/null
rc=$(run "$T_TMP/oom.out" "$T_TMP/oom.err" "$K" -- 'head -c 300m /dev/zero | tail')
kid=$(last_task "$K")
check "a command over the memory limit: exit 137 (rc=$rc)" test "$rc" -eq 137
check "  ...the reason says it ran out of memory, with the limit ($(task_field "$kid" reason))" \
  sh -c "'$BERTH' task show '$kid' --json | grep -q 'ran out of memory (limit 32 MiB)'"
rc=$(run "$T_TMP/k9.out" "$T_TMP/k9.err" "$K" -- 'kill -9 $$')
kid=$(last_task "$K")
check "a command that SIGKILLs itself: exit 137 (rc=$rc)" test "$rc" -eq 137
check "  ...the reason says it was killed from inside, not for memory ($(task_field "$kid" reason))" \
  sh -c "'$BERTH' task show '$kid' --json | grep -q 'from inside the container, not for memory'"
kid=$("$BERTH" task run "$K" --detach -- 'sleep 30' 2>/dev/null)
for _ in $(seq 1 100); do
  [ "$(task_field "$kid" state)" = PERFORMING ] && break
  sleep 0.1
done
sleep 0.5
docker kill "$(task_field "$kid" container_id)" >/dev/null 2>&1
"$BERTH" task logs "$kid" --follow >/dev/null 2>&1 </dev/null
check "a container killed with docker kill: the reason says so ($(task_field "$kid" reason))" \
  sh -c "'$BERTH' task show '$kid' --json | grep -q 'killed through the Docker API'"

# ---- a full disk ----
if [ -n "${BERTH_STORE:-}" ]; then
  echo "skip - full-disk checks: on PostgreSQL the task log is in the database, not on BERTH_HOME's disk"
  finish
  exit $?
fi
if [ "$(id -u)" -ne 0 ] || ! mkdir -p "$T_TMP/small" || ! mount -t tmpfs -o size=12m tmpfs "$T_TMP/small" 2>/dev/null; then
  echo "skip - full-disk checks: cannot mount a tmpfs here (needs root)"
  finish
  exit $?
fi
trap 'umount -l "$T_TMP/small" 2>/dev/null; t_cleanup' EXIT
export BERTH_HOME=$T_TMP/small/home
mkdir -p "$BERTH_HOME"
"$BERTH" image allow 'docker.io/berth/busybox:*' >/dev/null 2>&1
"$BERTH" stack create "$S" --image berth/busybox:latest >/dev/null
check "a stack on a 12 MiB BERTH_HOME" test $? -eq 0
rc=$(run "$T_TMP/ok1.out" "$T_TMP/ok1.err" "$S" -- 'echo warm')
check "a first task runs there (rc=$rc)" test "$rc" -eq 0
# leave about 2 MiB free, then print 8 MiB
avail=$(df -k --output=avail "$T_TMP/small" | tail -n 1)
fallocate -l $(((avail - 2048) * 1024)) "$T_TMP/small/filler"
check "the disk is nearly full" test "$(df -k --output=avail "$T_TMP/small" | tail -n 1)" -le 2100
start=$(date +%s)
rc=$(timeout 120 "$BERTH" task run "$S" -- 'i=0; while [ $i -lt 80 ]; do head -c 102400 /dev/zero | tr "\0" x; echo; i=$((i+1)); done; echo never-here' \
  >"$T_TMP/full.out" 2>"$T_TMP/full.err" </dev/null; echo $?)
check "a task whose output fills the disk ends, exit 125 (rc=$rc, $(($(date +%s) - start)) s)" test "$rc" -eq 125
check "  ...the follower says the disk is full" grep -qi "no space left" "$T_TMP/full.err"
fid=$("$BERTH" task list --stack "$S" --limit 1 --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["tasks"][0]["id"])')
check "  ...the record is FAILED" test "$(task_field "$fid" state)" = FAILED
check "  ...with a reason naming the full disk" sh -c "'$BERTH' task show '$fid' --json | grep -qi 'no space left'"
check "  ...and its container is removed" test "$(docker ps -aq --filter "label=berth.task=$fid" | wc -l)" -eq 0
rm -f "$T_TMP/small/filler"
rc=$(run "$T_TMP/ok2.out" "$T_TMP/ok2.err" "$S" -- 'echo back')
check "once space is back, the next task runs (rc=$rc)" test "$rc" -eq 0
check "  ...and prints" grep -qx back "$T_TMP/ok2.out"
check "task list works" "$BERTH" task list --stack "$S"
# persisted state that cannot be saved (no room for it): the task fails with that reason, never FINISHED with the
# next task on stale state
P=$(stack_name persist)
"$BERTH" stack create "$P" --image berth/busybox:latest --persist out.bin >/dev/null
avail=$(df -k --output=avail "$T_TMP/small" | tail -n 1)
fallocate -l $(((avail - 2048) * 1024)) "$T_TMP/small/filler"
rc=$(run "$T_TMP/p.out" "$T_TMP/p.err" "$P" -- 'head -c 3000000 /dev/urandom > out.bin; echo written')
pid_=$(last_task "$P")
check "persisted state that does not fit on the disk: the task fails, exit 125 (rc=$rc; $(task_field "$pid_" reason))" \
  sh -c 'test "$1" -eq 125 && test "$2" = FAILED && printf "%s" "$3" | grep -q "persisted state could not be saved"' \
  _ "$rc" "$(task_field "$pid_" state)" "$(task_field "$pid_" reason)"
check "  ...and no state version claims it" sh -c '! "$1" stack state "$2" 2>/dev/null | grep -q "^ *1 "' _ "$BERTH" "$P"
rm -f "$T_TMP/small/filler"
# a read on a disk with no free block at all: one line naming the full disk, not an I/O error
fallocate -l $(($(df -k --output=avail "$T_TMP/small" | tail -n 1) * 1024)) "$T_TMP/small/filler" 2>/dev/null
"$BERTH" task list --stack "$S" >/dev/null 2>"$T_TMP/ro.err"
check "with the disk full to the last block, a read works or names the full disk ($(head -c 200 "$T_TMP/ro.err"))" \
  sh -c '! test -s "$1" || grep -q "no space left" "$1"' _ "$T_TMP/ro.err"
rm -f "$T_TMP/small/filler"
finish
