#!/usr/bin/env bash
# Tasks end to end through the real berth binary and the real daemon: output streams, exit statuses, env, hooks,
# timeouts, persisted state, logs, following, clean-up after crashes, and every bad input.
. "$(dirname "$0")/lib.sh"
S=$(stack_name main)
proj=$T_TMP/proj
mkdir -p "$proj/sub/dir"
echo hello >"$proj/README"
echo nested >"$proj/sub/dir/file"
ln -s /etc/hostname "$proj/link-out"
ln -s README "$proj/link-in"

"$BERTH" stack create "$S" --image berth/busybox:latest --project-dir "$proj" \
  --before-init 'echo before-init-ran; export FROM_HOOK=hook' --init 'export FROM_INIT=init; echo init-ran' \
  --before-perform 'echo before-perform-ran' --after-perform 'echo after-perform-ran' \
  --after-run 'echo after-run-ran' --env PLAIN=plain-value --timeout 60s --idle-timeout 30s \
  --persist out/state.json --keep-versions 2 >/dev/null
check "stack create with every hook" test $? -eq 0

# stdout is the command's stdout, byte for byte; everything else goes to stderr
rc=$(run "$T_TMP/o1" "$T_TMP/e1" "$S" -- 'printf "\000\001\377bin\r\n"; echo to-err >&2')
check "exit 0 when the command succeeds" test "$rc" -eq 0
printf '\000\001\377bin\r\n' >"$T_TMP/want1"
check "stdout carries exactly the command's bytes" cmp "$T_TMP/o1" "$T_TMP/want1"
check "the command's stderr is on stderr" grep -q to-err "$T_TMP/e1"
for h in before-init-ran init-ran before-perform-ran after-perform-ran after-run-ran; do
  check "hook output on stderr, what they print on stdout too: $h" grep -q "$h" "$T_TMP/e1"
done
# (the hooks print on stdout, as the command's stderr follows: one exec's two streams keep no order between them)
check "hooks run in order" sh -c "grep -n -e before-init-ran -e init-ran -e before-perform-ran -e to-err \
  -e after-perform-ran -e after-run-ran '$T_TMP/e1' | cut -d: -f2 | tr '\n' ' ' | \
  grep -q 'before-init-ran init-ran before-perform-ran to-err after-perform-ran after-run-ran'"

for code in 1 3 42; do
  rc=$(run "$T_TMP/o" "$T_TMP/e" "$S" -- "exit $code")
  check "berth exits with the command's status $code" test "$rc" -eq "$code"
done
id=$(last_task "$S")
check "a failed command: FAILED with its status as the reason" \
  sh -c "test \"\$('$BERTH' task show $id --json | python3 -c 'import json,sys; t=json.load(sys.stdin); print(t[\"state\"], t[\"exit_code\"], t[\"reason\"])')\" = 'FAILED 42 command exited with status 42'"

export IT_TASK_SECRET=task-secret-value-0987
rc=$(run "$T_TMP/o2" "$T_TMP/e2" "$S" --env TASKVAR=tv --secret-env IT_TASK_SECRET -- \
  'echo "$PLAIN $TASKVAR $FROM_HOOK $FROM_INIT $BERTH_STACK $BERTH_RUN_TYPE $BERTH_WORKSPACE"; echo "s=$IT_TASK_SECRET"; id -u; pwd')
check "env run" test "$rc" -eq 0
check "stack env, task env, hook and init exports and BERTH_* reach the command" \
  grep -qx "plain-value tv hook init $S TASK /mnt/workspace" "$T_TMP/o2"
check "a task secret is masked" grep -qx 's=\*\*\*' "$T_TMP/o2"
check "the secret is not in the store in clear" sh -c "! grep -rqa task-secret-value-0987 '$BERTH_HOME'"

rc=$(run "$T_TMP/o3" "$T_TMP/e3" "$S" -- 'ls -la; test -L link-out && readlink link-out; cat sub/dir/file; stat -c %u README')
check "workspace task" test "$rc" -eq 0
check "a symlink out of the workspace is stored as a symlink" grep -qx /etc/hostname "$T_TMP/o3"
check "nested files arrive" grep -qx nested "$T_TMP/o3"

rc=$(run "$T_TMP/o4" "$T_TMP/e4" "$S" --skip-init -- 'echo "[$FROM_HOOK$FROM_INIT]"')
check "--skip-init skips before_init and init" sh -c "test $rc -eq 0 && grep -qx '\[\]' '$T_TMP/o4' && ! grep -q init-ran '$T_TMP/e4'"

rc=$(run "$T_TMP/o5" "$T_TMP/e5" "$S" -- 'exit 4')
check "after_run hooks run when the command fails" sh -c "test $rc -eq 4 && grep -q after-run-ran '$T_TMP/e5'"

# persisted state: versions, keep-versions, overlay on the next task
for n in 1 2 3; do
  run "$T_TMP/o" "$T_TMP/e" "$S" -- "mkdir -p out; echo '{\"n\": $n}' > out/state.json" >/dev/null
done
rc=$(run "$T_TMP/o6" "$T_TMP/e6" "$S" -- 'cat out/state.json')
check "the persisted file of the last task is overlaid on the next" grep -q '"n": 3' "$T_TMP/o6"
"$BERTH" stack state "$S" --json >"$T_TMP/state.json"
check "stack state keeps only the last 2 versions" \
  python3 -c "import json; d=json.load(open('$T_TMP/state.json')); v=d.get('versions', d); assert len(v)==2, v"

# init failure: 125, FAILED, nothing left
S2=$(stack_name badinit)
"$BERTH" stack create "$S2" --image berth/busybox:latest --project-dir "$proj" --init 'exit 9' >/dev/null
rc=$(run "$T_TMP/o7" "$T_TMP/e7" "$S2" -- 'echo never')
check "a failing init command: exit 125" test "$rc" -eq 125
check "... and the command did not run" sh -c "! grep -q never '$T_TMP/o7'"
check "... and the reason says initialization failed" grep -q 'initialization failed' "$T_TMP/e7"

# idle timeout: no output for 3 s
S3=$(stack_name idle)
"$BERTH" stack create "$S3" --image berth/busybox:latest --project-dir "$proj" --idle-timeout 3s >/dev/null
start=$(date +%s)
rc=$(run "$T_TMP/o8" "$T_TMP/e8" "$S3" -- 'echo tick; sleep 120')
took=$(($(date +%s) - start))
check "idle timeout: exit 124" test "$rc" -eq 124
check "idle timeout fired in time (${took}s for 3s)" test "$took" -lt 20
check "idle timeout: reason timeout" test "$(task_field "$(last_task "$S3")" reason)" = timeout

# logs: every phase, in order; history in show
id=$(last_task "$S")
"$BERTH" task logs "$id" >"$T_TMP/logs" 2>&1
check "task logs shows the command output" grep -q '"n": 3' "$T_TMP/logs"
check "task logs shows the phases" sh -c "grep -q initialization '$T_TMP/logs' && grep -q FINISHED '$T_TMP/logs'"
"$BERTH" task show "$id" --json >"$T_TMP/show.json"
check "history goes QUEUED PREPARING INITIALIZING PERFORMING FINISHED" python3 -c "
import json; h=[x['state'] for x in json.load(open('$T_TMP/show.json'))['history']]
assert h == ['QUEUED','PREPARING','INITIALIZING','PERFORMING','FINISHED'], h"

# Ctrl-C stops following, never the task
"$BERTH" task run "$S" -- 'sleep 3; echo survived' >"$T_TMP/o9" 2>"$T_TMP/e9" </dev/null &
follower=$!
sleep 1.5
kill -INT $follower
wait $follower
rc=$?
check "Ctrl-C: the follower exits 130" test "$rc" -eq 130
id=$(last_task "$S")
for _ in $(seq 1 60); do
  st=$(task_field "$id" state)
  [ "$st" = FINISHED ] || [ "$st" = FAILED ] && break
  sleep 0.5
done
check "Ctrl-C: the task went on and finished" test "$(task_field "$id" state)" = FINISHED
"$BERTH" task logs "$id" >"$T_TMP/logs9" 2>&1
check "Ctrl-C: its output is in the log" grep -q survived "$T_TMP/logs9"

if [ -n "${BERTH_STORE:-}" ]; then
  echo "skip - a supervisor killed mid-task (on PostgreSQL a fleet host runs each task in a thread of its own: a killed host is test_fleet's)"
else
killed_supervisor() { # a task PERFORMING `sleep 60` whose supervisor is then SIGKILLed; prints its id
  local id
  id=$("$BERTH" task run "$S" --detach -- 'sleep 60')
  for _ in $(seq 1 100); do
    [ "$(task_field "$id" state)" = PERFORMING ] && break
    sleep 0.2
  done
  kill -KILL "$(task_field "$id" supervisor_pid)"
  echo "$id"
}
# a supervisor killed mid-task: the task becomes FAILED "executor interrupted", its container is removed
id=$("$BERTH" task run "$S" --detach -- 'sleep 60')
for _ in $(seq 1 100); do
  [ "$(task_field "$id" state)" = PERFORMING ] && break
  sleep 0.2
done
pid=$(task_field "$id" supervisor_pid)
kill -KILL "$pid"
rc=$(run "$T_TMP/o10" "$T_TMP/e10" "$S" -- 'echo next')
check "after a supervisor crash the next task runs" test "$rc" -eq 0
check "the crashed task is FAILED: executor interrupted" \
  sh -c "test \"\$('$BERTH' task show $id --json | python3 -c 'import json,sys; t=json.load(sys.stdin); print(t[\"state\"]+\"/\"+t[\"reason\"])')\" = 'FAILED/executor interrupted'"
check "the crashed task's container is gone" test "$(docker ps -aq --filter label=berth.task="$id" | wc -l)" -eq 0
# ...and when a follower is the one that finds it: the container is gone before the record ends (the stack's next
# task may start as soon as it does)
id=$(killed_supervisor)
timeout 60 "$BERTH" task logs "$id" --follow >/dev/null 2>&1
check "a follower that finds the supervisor gone: FAILED, and the container already removed ($(task_field "$id" state))" \
  sh -c 'test "$1" = FAILED && test "$(docker ps -aq --filter label=berth.task="$2" | wc -l)" -eq 0' _ "$(task_field "$id" state)" "$id"
# ...and one who only looks (task show): it is not shown as running with nothing behind it
id=$(killed_supervisor)
sleep 0.5
check "task show of a task whose supervisor is gone: FAILED executor interrupted, container removed ($(task_field "$id" state))" \
  sh -c 'test "$1" = "FAILED executor interrupted" && test "$(docker ps -aq --filter label=berth.task="$2" | wc -l)" -eq 0' \
  _ "$(task_field "$id" state) $(task_field "$id" reason)" "$id"
fi

# Docker lost mid-task (a proxy socket that the test kills), then back
if t_local_only "Docker lost mid-task (one task run's DOCKER_HOST is a proxy)"; then
python3 "$(dirname "$0")/docker_proxy.py" "$T_TMP/proxy.sock" &
proxy=$!
for _ in $(seq 1 50); do [ -S "$T_TMP/proxy.sock" ] && break; sleep 0.1; done
DOCKER_HOST=unix://$T_TMP/proxy.sock "$BERTH" task run "$S" -- 'echo started; sleep 4; echo finished' \
  >"$T_TMP/o11" 2>"$T_TMP/e11" </dev/null &
runner=$!
sleep 2.5
kill -KILL $proxy
wait $proxy 2>/dev/null
wait $runner
rc=$?
id=$(last_task "$S")
check "Docker lost mid-task: exit 125" test "$rc" -eq 125
lost_state=$(task_field "$id" state)
lost_reason=$(task_field "$id" reason)
check "Docker lost mid-task: FAILED, the reason says the daemon stopped ($lost_reason)" \
  sh -c "test '$lost_state' = FAILED && echo '$lost_reason' | grep -q 'Docker daemon stopped'"
run "$T_TMP/o" "$T_TMP/e" "$S" -- true >/dev/null
check "once Docker is back, its container is removed" test "$(docker ps -aq --filter label=berth.task="$id" | wc -l)" -eq 0
fi

# A Docker daemon stopped gracefully mid-task (systemctl stop docker, SIGTERM): it closes its socket, then stops its
# containers itself. A private daemon of this test's own (ci/start-docker.sh with BERTH_DOCKERD_ROOT), stopped by
# its pid. The reason says the daemon stopped, not that someone ran docker stop.
if t_local_only "a Docker daemon stopped gracefully mid-task (a private daemon of this test's)" \
  && [ "$(id -u)" -eq 0 ] && command -v dockerd >/dev/null; then
  droot=$T_TMP/dd
  if BERTH_DOCKERD_ROOT=$droot "$BERTH_SRC/ci/start-docker.sh" >"$T_TMP/dd.out" 2>&1 \
    && docker save berth/busybox:latest | DOCKER_HOST=unix://$droot/docker.sock docker load >/dev/null; then
    G=$(stack_name graceful)
    "$BERTH" stack create "$G" --image berth/busybox:latest >/dev/null
    DOCKER_HOST=unix://$droot/docker.sock "$BERTH" task run "$G" -- 'echo started; sleep 30; echo finished' \
      >"$T_TMP/o12" 2>"$T_TMP/e12" </dev/null &
    runner=$!
    for _ in $(seq 1 100); do grep -q started "$T_TMP/o12" && break; sleep 0.1; done
    dpid=$(cat "$droot/docker.pid")
    kill -TERM "$dpid"
    wait $runner
    rc=$?
    id=$(last_task "$G")
    check "Docker stopped gracefully mid-task: the command never finished, exit 125 (Docker trouble) ($rc)" \
      sh -c 'test "$1" -eq 125 && ! grep -q finished "$2"' _ "$rc" "$T_TMP/o12"
    check "  ...FAILED, the reason says the daemon stopped ($(task_field "$id" reason))" \
      sh -c 'test "$1" = FAILED && echo "$2" | grep -q "the Docker daemon stopped"' _ \
      "$(task_field "$id" state)" "$(task_field "$id" reason)"
    for _ in $(seq 1 150); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.2; done
  else
    fail "a private Docker daemon for the graceful stop: $(tail -n 3 "$T_TMP/dd.out")"
    if [ -f "$droot/docker.pid" ]; then # started but unusable: stopped, and waited for before its root is removed
      dpid=$(cat "$droot/docker.pid")
      kill -TERM "$dpid" 2>/dev/null
      for _ in $(seq 1 150); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.2; done
    fi
  fi
fi

# anyone's text in a record (a command, an env value, a lock's note) never drives the terminal: control characters
# are written out in the human views (--json keeps the text as it is, JSON-escaped)
esc=$(printf '\033')
id=$("$BERTH" task run "$S" --detach --env "E=a${esc}[31mb" -- "echo ${esc}[2J${esc}[31mX; #
rm -rf")
"$BERTH" task cancel "$id" >/dev/null 2>&1
wait_for_end() { for _ in $(seq 1 100); do case "$(task_field "$1" state)" in FINISHED | FAILED | CANCELED | STOPPED) return ;; esac; sleep 0.2; done; }
wait_for_end "$id"
"$BERTH" task list --stack "$S" >"$T_TMP/cc1"
"$BERTH" task show "$id" >"$T_TMP/cc2"
"$BERTH" stack lock "$S" --note "line1
FAKE: ${esc}[31mred" >/dev/null
"$BERTH" stack show "$S" >"$T_TMP/cc3"
"$BERTH" stack unlock "$S" >/dev/null
for f in cc1 cc2 cc3; do
  check "$f: no control character reaches the terminal" sh -c '! grep -q "$(printf "\033")" "$1"' _ "$T_TMP/$f"
done
check "  ...they are written out: the command and env value in task show" \
  sh -c 'grep -qF "command:     echo \e[2J\e[31mX; #\nrm -rf" "$1" && grep -qF "E=a\e[31mb" "$1"' _ "$T_TMP/cc2"
check "  ...and the lock's note in stack show, on its line" grep -qF ': line1\nFAKE: \e[31mred' "$T_TMP/cc3"
check "  ...--json keeps the text as given" sh -c '"$1" task show "$2" --json | python3 -c "import json,sys; sys.exit(0 if json.load(sys.stdin)[\"env\"][\"E\"] == \"a\x1b[31mb\" else 1)"' _ "$BERTH" "$id"

# a replaced secret.key: a stack whose secret cannot be decrypted is still listed and shown (and so is every other
# stack and task), its tasks are refused with what to do, and giving the secret again makes it whole
if t_local_only "a replaced secret.key (a SQLite store's key file)"; then
kh=$T_TMP/keyhome
mkdir -p "$kh"
BERTH_HOME=$kh "$BERTH" stack create ks --image berth/runner:latest --secret-env K=before-value-1 >/dev/null
BERTH_HOME=$kh "$BERTH" stack create plain --image berth/runner:latest >/dev/null
BERTH_HOME=$kh "$BERTH" task run plain -- true >/dev/null 2>&1
BERTH_HOME=$kh "$BERTH" task run ks --env E=before-value-1 -- 'echo before-value-1' >/dev/null 2>&1
# as a task recorded before berth kept its masked form (schema 14): masked with its stack's secrets when shown
python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("UPDATE tasks SET shown_command = NULL, shown_env = NULL"); c.commit()' "$kh/berth.db"
head -c 32 /dev/urandom >"$kh/secret.key"
check "a replaced secret.key: stack list still works" sh -c 'BERTH_HOME=$1 "$2" stack list | grep -q "^ks "' _ "$kh" "$BERTH"
check "  ...task list too" sh -c 'BERTH_HOME=$1 "$2" task list >/dev/null' _ "$kh" "$BERTH"
check "  ...and an older task typed with the secret, which can no longer be masked, is not shown" \
  sh -c 'BERTH_HOME=$1 "$2" task list --json >"$3" && ! grep -q before-value-1 "$3" && grep -q "not shown" "$3"' _ "$kh" "$BERTH" "$T_TMP/kl"
check "  ...stack show says which secret cannot be decrypted" \
  sh -c 'BERTH_HOME=$1 "$2" stack show ks | grep -q "K: its stored value cannot be decrypted"' _ "$kh" "$BERTH"
BERTH_HOME=$kh "$BERTH" task run ks -- true >"$T_TMP/ko" 2>"$T_TMP/ke" </dev/null
rc=$?
check "  ...a task of it is refused in one line saying what to do (rc=$rc: $(cat "$T_TMP/ke"))" \
  sh -c 'test "$1" -eq 125 && test "$(wc -l <"$2")" -eq 1 && grep -q "give it again (berth stack update ks --secret-env K=VALUE)" "$2"' \
  _ "$rc" "$T_TMP/ke"
out=$(BERTH_HOME=$kh "$BERTH" stack update ks --env A=1 2>&1)
check "  ...another change keeps refusing until it is given ($out)" sh -c 'printf "%s" "$1" | grep -q "secret env K cannot be decrypted"' _ "$out"
check "  ...given again, the stack is whole and its task runs" \
  sh -c 'BERTH_HOME=$1 "$2" stack update ks --secret-env K=after-value-2 >/dev/null && BERTH_HOME=$1 "$2" task run ks -- "test \"\$K\" = after-value-2" >/dev/null 2>&1 && ! BERTH_HOME=$1 "$2" stack show ks | grep -q "cannot be decrypted"' _ "$kh" "$BERTH"
fi

# bad input: one clear line on stderr, exit 125, nothing recorded
bad() { # bad "what" args...
  local what=$1
  shift
  local before after
  before=$("$BERTH" task list --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["tasks"]))' 2>/dev/null || echo x)
  "$BERTH" "$@" >"$T_TMP/bo" 2>"$T_TMP/be" </dev/null
  local rc=$?
  after=$("$BERTH" task list --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["tasks"]))' 2>/dev/null || echo x)
  if [ "$rc" -eq 125 ] && [ "$(wc -l <"$T_TMP/be")" -eq 1 ] && [ "$before" = "$after" ]; then
    ok "bad input: $what -> 125, one line: $(cat "$T_TMP/be")"
  else
    fail "bad input: $what (rc=$rc, $(wc -l <"$T_TMP/be") lines, tasks $before -> $after): $(head -c 300 "$T_TMP/be")"
  fi
}
bad "unknown stack" task run "$(stack_name nope)" -- true
bad "stack name with a space" task run "a b" -- true
bad "stack name with a slash" task run "a/b" -- true
bad "empty command" task run "$S" --
bad "blank command" task run "$S" -- "   "
bad "invalid --env" task run "$S" --env NOEQUALS -- true
bad "invalid duration" stack create "$(stack_name d)" --image berth/busybox:latest --timeout 5parsecs
bad "invalid size" stack create "$(stack_name m)" --image berth/busybox:latest --memory lots
bad "project dir that is a file" stack create "$(stack_name f)" --image berth/busybox:latest --project-dir "$proj/README"
S4=$(stack_name gone)
mkdir -p "$T_TMP/gone"
"$BERTH" stack create "$S4" --image berth/busybox:latest --project-dir "$T_TMP/gone" >/dev/null
rmdir "$T_TMP/gone"
bad "project dir removed after create" task run "$S4" -- true
mkdir -p "$T_TMP/locked"
chmod 000 "$T_TMP/locked"
S5=$(stack_name unreadable)
"$BERTH" stack update "$S4" --project-dir "$proj" >/dev/null 2>&1
if [ "$(id -u)" -ne 0 ]; then
  "$BERTH" stack create "$S5" --image berth/busybox:latest --project-dir "$T_TMP/locked" >/dev/null 2>&1
  check "an unreadable project dir is refused" test $? -eq 125
fi
chmod 755 "$T_TMP/locked"
S6=$(stack_name never)
"$BERTH" stack create "$S6" --image berth/not-here:nope --pull never >/dev/null
bad "image missing under pull policy never" task run "$S6" -- true
S7=$(stack_name big)
mkdir -p "$T_TMP/big"
for i in $(seq 1 30); do echo $i >"$T_TMP/big/f$i"; done
"$BERTH" stack create "$S7" --image berth/busybox:latest --project-dir "$T_TMP/big" >/dev/null
BERTH_WORKSPACE_MAX_ENTRIES=10 bad "workspace over the entry cap" task run "$S7" -- true
BERTH_WORKSPACE_MAX_BYTES=20 bad "workspace over the size cap" task run "$S7" -- true
if [ -z "${BERTH_STORE:-}" ]; then
  DOCKER_HOST=unix://$T_TMP/no.sock bad "Docker unreachable at submit" task run "$S" -- true
else
  echo "skip - Docker unreachable at submit: in a fleet the submitter needs no Docker (the claiming host has its own)"
fi
BERTH_HOME=$proj/README bad "a store that is a file" task run "$S" -- true
if [ -n "${BERTH_STORE:-}" ]; then
  echo "skip - a corrupt berth.db: SQLite only"
else
  mkdir -p "$T_TMP/corrupt"
  head -c 8192 /dev/urandom >"$T_TMP/corrupt/berth.db"
  BERTH_HOME=$T_TMP/corrupt bad "a corrupt store" task run "$S" -- true
fi

# the admin's defaults (config.json) are what a stack without limits gets, read from one place
L=$(stack_name limits)
cp "$BERTH_HOME/config.json" "$T_TMP/config.saved" 2>/dev/null
printf '{"default_pids": 77, "default_cpus": "0.5", "default_memory": "96m"}\n' >"$BERTH_HOME/config.json"
"$BERTH" image allow 'docker.io/berth/busybox:*' >/dev/null 2>&1
"$BERTH" stack create "$L" --image berth/busybox:latest >/dev/null
lid=$("$BERTH" task run "$L" --detach -- 'sleep 5' 2>/dev/null)
for _ in $(seq 1 100); do
  [ "$(task_field "$lid" state)" = PERFORMING ] && break
  sleep 0.1
done
limits=$(docker inspect -f '{{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}' "$(task_field "$lid" container_id)" 2>&1)
check "config.json's default_pids, default_cpus and default_memory reach the container ($limits)" \
  test "$limits" = "77 500000000 100663296"
"$BERTH" task logs "$lid" --follow >/dev/null 2>&1
rm -f "$BERTH_HOME/config.json"
[ -f "$T_TMP/config.saved" ] && cp "$T_TMP/config.saved" "$BERTH_HOME/config.json"

# max_log_bytes: past the cap the task runs on, its further output is counted and not kept, and the log says so
printf '{"max_log_bytes": "1m"}\n' >"$BERTH_HOME/config.json"
capid=$("$BERTH" task run "$L" --detach -- 'head -c 3000000 /dev/zero | tr "\0" x; echo; echo after-the-cap >&2; exit 7' 2>/dev/null)
"$BERTH" task logs "$capid" --follow >/dev/null 2>&1
"$BERTH" task logs "$capid" >"$T_TMP/cap.log" 2>&1
xs=$(grep -o 'x\{1000,\}' "$T_TMP/cap.log" | tr -d '\n' | wc -c)
check "max_log_bytes: the task ran to its end, with its own status ($(task_field "$capid" state) $(task_field "$capid" exit_code))" \
  test "$(task_field "$capid" state) $(task_field "$capid" exit_code)" = "FAILED 7"
check "  ...its log kept the first 1 MiB of output ($xs bytes of it)" test "$xs" -eq 1048576
check "  ...and says so, with what was not kept" sh -c 'grep -q "reached max_log_bytes (1.0MiB): the task runs on" "$1" &&
  grep -q "^==> 1951439 bytes of output past max_log_bytes were not kept" "$1" && ! grep -q after-the-cap "$1"' _ "$T_TMP/cap.log"
rm -f "$BERTH_HOME/config.json"
[ -f "$T_TMP/config.saved" ] && cp "$T_TMP/config.saved" "$BERTH_HOME/config.json"

# the host network: only where the admin's config allows it, at create, at submit and on the host that runs the task
# (no container is started on it here: a proxy records the creation's body and refuses it)
HN=$(stack_name hostnet)
bad "a stack on the host network without the admin's allow" stack create "$HN" --image berth/busybox:latest \
  --network host
check "the refusal names the config key" grep -q 'allow_host_network is false' "$T_TMP/be"
cp "$BERTH_HOME/config.json" "$T_TMP/config.saved" 2>/dev/null
printf '{"allow_host_network": true}\n' >"$BERTH_HOME/config.json"
"$BERTH" stack create "$HN" --image berth/busybox:latest --network host >/dev/null 2>"$T_TMP/hn.err"
check "allow_host_network: a stack on the host network is created" test $? -eq 0
if t_local_only "the host network reaches the container's creation (the task's DOCKER_HOST is a proxy)"; then
  python3 "$(dirname "$0")/docker_proxy.py" "$T_TMP/hn.sock" --refuse-create "$T_TMP/hn.bodies" &
  hnproxy=$!
  for _ in $(seq 1 50); do [ -S "$T_TMP/hn.sock" ] && break; sleep 0.1; done
  DOCKER_HOST=unix://$T_TMP/hn.sock "$BERTH" task run "$HN" -- true >/dev/null 2>&1 </dev/null
  kill $hnproxy
  wait $hnproxy 2>/dev/null
  check "allow_host_network: the container is created on the host network" \
    python3 -c 'import json,sys; b=json.loads(open(sys.argv[1]).readline()); sys.exit(b["HostConfig"]["NetworkMode"] != "host")' \
    "$T_TMP/hn.bodies"
fi
rm -f "$BERTH_HOME/config.json"
[ -f "$T_TMP/config.saved" ] && cp "$T_TMP/config.saved" "$BERTH_HOME/config.json"
bad "a task on the host network once the admin no longer allows it" task run "$HN" -- true
check "the submission's refusal names the config key" grep -q 'allow_host_network is false' "$T_TMP/be"
check "  ...while a change that leaves the network alone is still taken" "$BERTH" stack update "$HN" --label kept

# retention: task prune deletes ended tasks with their history and logs; the audit trail keeps its records
bad "task prune without --older-than" task prune
bad "task prune --older-than with no duration" task prune --older-than soon
check "  ...the refusal names the flag" grep -q -- '--older-than' "$T_TMP/be"
bad "task prune of a stack with an invalid name" task prune --older-than 1d --stack 'a b'
bad "task prune --older-than past ten years" task prune --older-than 4000d
bad "task prune --older-than 0 (task_retention 0 keeps every task: here it would delete them all)" task prune --older-than 0
bad "task prune --older-than 30 (a bare number: 30 seconds, or 30 days?)" task prune --older-than 30
check "  ...the refusal asks for a unit" grep -q 'needs a unit' "$T_TMP/be"
P1=$(stack_name prune1)
P2=$(stack_name prune2)
"$BERTH" stack create "$P1" --image berth/busybox:latest >/dev/null
"$BERTH" stack create "$P2" --image berth/busybox:latest >/dev/null
for st in "$P1" "$P1" "$P2"; do "$BERTH" task run "$st" -- echo kept-in-the-log >/dev/null 2>&1; done
old1=$(last_task "$P1")
old2=$(last_task "$P2")
sleep 1.1 # a task that ended in the last second is never pruned
"$BERTH" task prune --older-than 1h --stack "$P1" >"$T_TMP/pr0" 2>&1
check "task prune --older-than 1h: nothing that recent goes ($(cat "$T_TMP/pr0"))" grep -q '^pruned 0 tasks' "$T_TMP/pr0"
"$BERTH" task prune --older-than 1s --stack "$P1" --dry-run --json >"$T_TMP/pr1" 2>&1
check "--dry-run --json counts the stack's two ended tasks and their logs" python3 -c 'import json,sys
r=json.load(open(sys.argv[1])); sys.exit(not (r["tasks"] == 2 and r["log_bytes"] > 0 and r["dry_run"] is True and r["stack"] == sys.argv[2]))' "$T_TMP/pr1" "$P1"
check "  ...and changes nothing" sh -c "'$BERTH' task show $old1 >/dev/null 2>&1 && '$BERTH' task logs $old1 | grep -q kept-in-the-log"
"$BERTH" task prune --older-than 1s --stack "$P1" >"$T_TMP/pr2" 2>&1
check "task prune --stack: the stack's ended tasks go ($(cat "$T_TMP/pr2"))" grep -q "^pruned 2 tasks (.* of logs) of stack $P1 that ended before 20" "$T_TMP/pr2"
"$BERTH" task show "$old1" >/dev/null 2>"$T_TMP/pr3"
check "  ...a pruned task is not found (exit $?)" grep -q "$old1" "$T_TMP/pr3"
check "  ...nor its log" sh -c "! '$BERTH' task logs $old1 >/dev/null 2>&1"
check "  ...the other stack's task is kept, log and all" sh -c "'$BERTH' task logs $old2 | grep -q kept-in-the-log"
if [ -z "${BERTH_STORE:-}" ]; then
  check "  ...the log file is gone (SQLite)" test ! -e "$BERTH_HOME/logs/$old1.log"
fi
check "  ...the audit trail records the prune and stays intact" sh -c "'$BERTH' audit list | grep -q 'task.prune  *$P1' &&
  '$BERTH' audit verify >/dev/null"

check "no container of these stacks is left" test "$(docker ps -aq --filter label=berth.managed=true --filter label=berth.instance | xargs -r docker inspect -f '{{index .Config.Labels "berth.stack"}}' | grep -c "^it-$$-")" -eq 0
finish
