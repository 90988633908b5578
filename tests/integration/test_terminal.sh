#!/usr/bin/env bash
# Terminal manners: styled phase headers, notes and errors only on a terminal (script(1) gives berth one), never
# with NO_COLOR, --no-color or TERM=dumb, and never in a pipe; `task list` shows relative times and durations (its
# JSON unchanged); waits say what they wait for (the task ahead, a free slot, an image pull's layers and bytes,
# rewritten in place on a terminal and plain lines otherwise).
. "$(dirname "$0")/lib.sh"
S=$(stack_name term)
S2=$(stack_name term2)
"$BERTH" stack create "$S" --image berth/busybox:latest --init 'echo init' >/dev/null
"$BERTH" stack create "$S2" --image berth/busybox:latest >/dev/null
ESC=$'\033'

# tty CMD...: runs CMD on a pseudo-terminal, its output (both streams) in $T_TMP/tty
tty() { TERM=xterm script -qec "$*" /dev/null >"$T_TMP/tty" 2>&1 </dev/null; }

rc=$(run "$T_TMP/out" "$T_TMP/err" "$S" -- 'echo hi')
check "a piped run: exit 0" test "$rc" -eq 0
check "a pipe gets no escape sequence (stdout)" bash -c "! grep -q \$'\\033' '$T_TMP/out'"
check "a pipe gets no escape sequence (stderr)" bash -c "! grep -q \$'\\033' '$T_TMP/err'"
check "the phase header is a plain line in a pipe" grep -qx '==> performing the command' "$T_TMP/err"

tty "'$BERTH' task run '$S' -- 'echo hi'"
check "on a terminal: the phase header is bold cyan" grep -qF "${ESC}[1;36m==> performing the command${ESC}[0m" "$T_TMP/tty"
check "on a terminal: FINISHED is bold green" grep -qF "${ESC}[1;32m==> FINISHED${ESC}[0m" "$T_TMP/tty"
check "on a terminal: berth's notes are dim" grep -qF "${ESC}[2mberth: task " "$T_TMP/tty"
check "on a terminal: the command's output is as it was" grep -qx $'hi\r' "$T_TMP/tty"
check "on a terminal: init output is as it was" grep -qx $'init\r' "$T_TMP/tty"

for how in "NO_COLOR=1|NO_COLOR=1 '$BERTH'" "--no-color|'$BERTH' --no-color" "TERM=dumb|TERM=dumb '$BERTH'"; do
  tty "env ${how#*|} task run '$S' -- 'echo hi'"
  check "on a terminal with ${how%%|*}: no escape sequence" bash -c "! grep -q \$'\\033' '$T_TMP/tty'"
  check "on a terminal with ${how%%|*}: the header is there, plain" grep -q '^==> performing the command' "$T_TMP/tty"
done

tty "'$BERTH' task show nosuchtask"
check "an error on a terminal: 'berth:' in bold red" grep -qF "${ESC}[1;31mberth:${ESC}[0m " "$T_TMP/tty"
"$BERTH" task show nosuchtask 2>"$T_TMP/err"
check "an error in a pipe: plain 'berth: '" grep -q '^berth: ' "$T_TMP/err"

# task list: relative times and durations in the table, the JSON as before
"$BERTH" task list --stack "$S" >"$T_TMP/list"
check "task list: CREATED and DURATION columns" grep -q '^ID .* STATE .* EXIT  CREATED .* DURATION  COMMAND$' "$T_TMP/list"
check "task list: created 'just now' or 'N s ago'" grep -qE '  (just now|[0-9]+ s ago) ' "$T_TMP/list"
check "task list: a duration in seconds" grep -qE ' [0-9]+(\.[0-9])?s  echo hi$' "$T_TMP/list"
"$BERTH" task list --stack "$S" --json >"$T_TMP/list.json"
check "task list --json: RFC 3339 times, no relative ones" python3 -c "
import json, re, sys
tasks = json.load(open('$T_TMP/list.json'))['tasks']
assert tasks and all(re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z', t['created_at']) for t in tasks), tasks
assert 'ago' not in open('$T_TMP/list.json').read()
assert set(tasks[0]) >= {'id', 'stack', 'state', 'exit_code', 'created_at', 'started_at', 'finished_at'}"

# waits say what they wait for
first=$("$BERTH" task run "$S" --detach -- 'sleep 2')
rc=$(run "$T_TMP/out" "$T_TMP/err" "$S" -- 'echo second')
check "queued behind a task: exit 0" test "$rc" -eq 0
if [ -z "${BERTH_STORE:-}" ]; then
  check "queued behind a task: says which" grep -q "^queued: waiting for task $first, ahead of this one on stack $S, to end" "$T_TMP/err"
else # a fleet's queue: the follower says why, as the store sees it
  check "queued behind a task: says so" grep -q "^berth: waiting: 1 task ahead on stack $S$" "$T_TMP/err"
fi
if t_local_only "waiting for a free slot of this process's BERTH_MAX_PARALLEL_TASKS, and a pull through a proxy"; then
"$BERTH" task run "$S" --detach -- 'sleep 2' >/dev/null
sleep 0.5
rc=$(BERTH_MAX_PARALLEL_TASKS=1 run "$T_TMP/out" "$T_TMP/err" "$S2" -- 'echo third')
check "waiting for a slot: exit 0" test "$rc" -eq 0
check "waiting for a slot: says so" grep -q '^queued: waiting for a free slot: 1 task is already running' "$T_TMP/err"

# an image pull's progress: a proxy answers the pull with two layers over ~4 s (the image itself is local)
"$BERTH" stack update "$S2" --pull always >/dev/null
python3 "$(dirname "$0")/docker_proxy.py" "$T_TMP/pull.sock" --fake-pull &
proxy=$!
for _ in $(seq 1 50); do [ -S "$T_TMP/pull.sock" ] && break; sleep 0.1; done
rc=$(DOCKER_HOST=unix://$T_TMP/pull.sock run "$T_TMP/out" "$T_TMP/err" "$S2" -- 'echo pulled')
check "a pull with progress: exit 0" test "$rc" -eq 0
check "the pull says what it pulls" grep -q '^pulling berth/busybox:latest (attempt 1 of ' "$T_TMP/err"
check "pull progress in plain lines: layers and bytes" grep -qE '^pull: [0-2]/2 layers, [0-9.]+MiB of 8.0MiB$' "$T_TMP/err"
check "the last progress line: every layer" grep -qx 'pull: 2/2 layers, 8.0MiB of 8.0MiB' "$T_TMP/err"
check "no carriage return in a pipe" bash -c "! grep -q \$'\\r' '$T_TMP/err'"
DOCKER_HOST=unix://$T_TMP/pull.sock tty "'$BERTH' task run '$S2' -- 'echo pulled'"
check "on a terminal: progress rewrites one line" grep -qF $'\r'"${ESC}[K${ESC}[2mpull: 2/2 layers, 8.0MiB of 8.0MiB" "$T_TMP/tty"
check "on a terminal: the line after the progress starts on a new line" grep -qF $'8.0MiB\033[0m\r\n\033[2mpull: Digest' "$T_TMP/tty"
kill $proxy
wait $proxy 2>/dev/null
fi

finish
