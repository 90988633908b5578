#!/usr/bin/env bash
# GET /metrics through a real server and real tasks: Prometheus's own checker (promtool, from Debian's prometheus
# package) accepts the exposition, its numbers move as tasks run and queue, it needs a reader key on the API
# listeners and none on --metrics-listen, and no label carries a task id.
. "$(dirname "$0")/lib.sh"
if ! command -v promtool >/dev/null 2>&1; then
  echo "skip - promtool not installed (ci/install-deps.sh installs the prometheus package)"
  finish
  exit $?
fi
S=$(stack_name met)
"$BERTH" stack create "$S" --image berth/busybox:latest >/dev/null
t_free_port PORT
t_free_port MPORT
reader=$("$BERTH" key create met-reader --role reader 2>/dev/null | tail -n 1)
"$BERTH" serve --listen "tcp:127.0.0.1:$PORT" --metrics-listen "tcp:127.0.0.1:$MPORT" >"$T_TMP/serve.log" 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null; t_cleanup' EXIT
for _ in $(seq 1 50); do curl -s "http://127.0.0.1:$MPORT/metrics" >/dev/null 2>&1 && break; sleep 0.1; done
scrape() { curl -s "http://127.0.0.1:$MPORT/metrics"; }
value() { # value FILE SERIES: the sample of that exact series
  awk -v s="$2" '$1 == s { print $2; exit }' "$1"; }

scrape >"$T_TMP/m0"
check "promtool check metrics accepts the exposition" sh -c "promtool check metrics <'$T_TMP/m0'"
check "the content type is the text format 0.0.4" sh -c \
  "curl -s -o /dev/null -w '%{content_type}' http://127.0.0.1:$MPORT/metrics | grep -q 'text/plain; version=0.0.4'"
check "build info names the version" grep -q '^berth_build_info{version="' "$T_TMP/m0"
check "on an API listener, /metrics needs a key (401)" \
  test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/metrics")" = 401
check "  ...a reader key is enough" test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $reader" \
  "http://127.0.0.1:$PORT/metrics")" = 200
check "the metrics address serves nothing else (404)" \
  test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/v1/stacks")" = 404

f0=$(value "$T_TMP/m0" 'berth_tasks{state="FINISHED"}')
run "$T_TMP/o" "$T_TMP/e" "$S" -- true >/dev/null
scrape >"$T_TMP/m1"
check "a finished task moves berth_tasks{state=\"FINISHED\"} (${f0:-?} -> $(value "$T_TMP/m1" 'berth_tasks{state="FINISHED"}'))" \
  test "$(value "$T_TMP/m1" 'berth_tasks{state="FINISHED"}')" -eq $((f0 + 1))
check "  ...and the duration histogram counts it" \
  test "$(value "$T_TMP/m1" berth_task_duration_seconds_count)" -gt "$(value "$T_TMP/m0" berth_task_duration_seconds_count)"

# secrets masked in a task's output: three lines, three `***`
SEC=met-secret-$$-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
S2=$(stack_name met-sec)
"$BERTH" stack create "$S2" --image berth/busybox:latest --secret-env "MET_TOKEN=$SEC" >/dev/null
r0=$(value "$T_TMP/m1" berth_redactions_total)
run "$T_TMP/o2" "$T_TMP/e2" "$S2" -- 'for i in 1 2 3; do echo "token $MET_TOKEN"; done' >/dev/null
scrape >"$T_TMP/m1b"
check "the task's output has its secret masked three times" test "$(grep -c '^token \*\*\*$' "$T_TMP/o2")" = 3
check "berth_redactions_total counts them (${r0:-?} -> $(value "$T_TMP/m1b" berth_redactions_total))" \
  test "$(value "$T_TMP/m1b" berth_redactions_total)" -eq $((r0 + 3))
check "  ...and the secret itself appears nowhere in the metrics" sh -c "! grep -q '$SEC' '$T_TMP/m1b'"

# one running, two queued behind it on the same stack
first=$("$BERTH" task run "$S" --detach -- 'sleep 4' 2>/dev/null)
"$BERTH" task run "$S" --detach -- true >/dev/null 2>&1
"$BERTH" task run "$S" --detach -- true >/dev/null 2>&1
for _ in $(seq 1 50); do [ "$(task_field "$first" state)" = PERFORMING ] && break; sleep 0.1; done
scrape >"$T_TMP/m2"
check "while one runs: berth_tasks_running is 1" sh -c "grep -q '^berth_tasks_running{host=\"[^\"]*\",pool=\"default\"} 1$' '$T_TMP/m2'"
check "  ...and the stack's queue depth is 2" test "$(value "$T_TMP/m2" "berth_queue_depth{stack=\"$S\"}")" = 2
check "  ...promtool still accepts it" sh -c "promtool check metrics <'$T_TMP/m2'"
check "no label carries a task id" sh -c "! grep -q '$first' '$T_TMP/m2'"
"$BERTH" task logs "$first" --follow >/dev/null 2>&1
last=$(last_task "$S")
"$BERTH" task logs "$last" --follow >/dev/null 2>&1

# pruning ended tasks (task prune) takes them out of the gauges, never out of the counters and histograms
sleep 1.1 # a task that ended in the last second is not pruned
scrape >"$T_TMP/m3"
"$BERTH" task prune --older-than 1s >"$T_TMP/prune.out" 2>&1
check "task prune removed the ended tasks ($(cat "$T_TMP/prune.out"))" grep -q '^pruned [1-9][0-9]* tasks' "$T_TMP/prune.out"
scrape >"$T_TMP/m4"
check "  ...berth_tasks{state=\"FINISHED\"} went down to 0 ($(value "$T_TMP/m3" 'berth_tasks{state="FINISHED"}') -> $(value "$T_TMP/m4" 'berth_tasks{state="FINISHED"}'))" \
  test "$(value "$T_TMP/m4" 'berth_tasks{state="FINISHED"}')" = 0
for series in berth_redactions_total berth_task_duration_seconds_count berth_task_wait_seconds_count \
  'berth_task_duration_seconds_bucket{le="0.5"}' 'berth_task_duration_seconds_bucket{le="10"}' \
  'berth_task_wait_seconds_bucket{le="+Inf"}'; do
  check "  ...$series keeps what the pruned tasks counted ($(value "$T_TMP/m3" "$series") -> $(value "$T_TMP/m4" "$series"))" \
    test "$(value "$T_TMP/m3" "$series")" = "$(value "$T_TMP/m4" "$series")"
done
check "  ...and so do the histograms' sums" python3 -c 'import sys
def v(f, s):
    return float([l.split()[1] for l in open(f) if l.split()[0] == s][0])
sys.exit(any(abs(v(sys.argv[1], s) - v(sys.argv[2], s)) > 0.002 for s in ("berth_task_duration_seconds_sum", "berth_task_wait_seconds_sum")))' "$T_TMP/m3" "$T_TMP/m4"
check "  ...promtool accepts it" sh -c "promtool check metrics <'$T_TMP/m4'"
run "$T_TMP/o" "$T_TMP/e" "$S" -- true >/dev/null
scrape >"$T_TMP/m5"
check "  ...and a task ended after the prune adds to them (count $(value "$T_TMP/m4" berth_task_duration_seconds_count) -> $(value "$T_TMP/m5" berth_task_duration_seconds_count))" \
  test "$(value "$T_TMP/m5" berth_task_duration_seconds_count)" -eq $(($(value "$T_TMP/m4" berth_task_duration_seconds_count) + 1))
# config.json's task_retention: the server prunes on its own (when it starts, then every 10 minutes)
kept=$(last_task "$S")
sleep 1.1
printf '{"task_retention": "1s"}\n' >"$BERTH_HOME/config.json"
kill $SRV
wait $SRV 2>/dev/null
"$BERTH" serve --listen "tcp:127.0.0.1:$PORT" --metrics-listen "tcp:127.0.0.1:$MPORT" >>"$T_TMP/serve.log" 2>&1 &
SRV=$!
for _ in $(seq 1 100); do "$BERTH" task show "$kept" >/dev/null 2>&1 || break; sleep 0.1; done
check "task_retention: the server pruned an ended task on its own" sh -c "! '$BERTH' task show $kept >/dev/null 2>&1"
check "  ...said so in its log" grep -q 'task_retention: pruned 1 task that ended before' "$T_TMP/serve.log"
check "  ...and in the audit trail" sh -c "'$BERTH' audit list | grep -q 'task_retention  *task.prune'"
rm -f "$BERTH_HOME/config.json"
[ "$T_FAIL" -eq 0 ] || { echo "--- the server's log"; cat "$T_TMP/serve.log"; }
finish
