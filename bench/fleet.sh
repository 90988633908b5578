#!/usr/bin/env bash
# Issue 10 benchmark: the fleet. Writes docs/benchmarks-fleet.md.
#  (a) coordination alone: hosts pointed at a Docker endpoint that answers at once (bench/fake_engine.py), 2,000
#      tasks over 200 stacks queued first, then the hosts started: tasks/s from the hosts' start to the last task's
#      end, and in the steady middle (the 10% to the 90% task's end); hosts added with 4 slots each (1, 2, 4, 8) and
#      hosts sharing the same 8 slots in all (1x8, 2x4, 4x2, 8x1); each shape ROUNDS times, in turn, the median kept;
#      serialization violations (two tasks of one stack active at once, or out of FIFO order) from the records; then
#      (first round) claim latency when a slot is free: 100 tasks submitted 50 ms apart onto idle stacks, submit ->
#      claimed (started_at - created_at) p50/p99.
#  (b) real Docker: 200 tasks of `true` over 10 stacks, 1 host (3 slots) and 3 hosts (1 slot each) on this machine,
#      against 3 uncoordinated workers running their share back to back with `berth task run` on SQLite.
#   bench/fleet.sh      env: BUILD, N (2000), STACKS (200), HOSTS ("1 2 4 8"), NREAL (200), ROUNDS (3),
#                       SAME_TOTAL ("1:8 2:4 4:2 8:1")
. "$(dirname "$0")/lib.sh"
N=${N:-2000}
STACKS=${STACKS:-200}
HOSTS=${HOSTS:-1 2 4 8}
NREAL=${NREAL:-200}
ROUNDS=${ROUNDS:-3}
SAME_TOTAL=${SAME_TOTAL:-1:8 2:4 4:2 8:1} # hosts:slots with the same 8 slots in all
OUT=${OUT:-$SRC/docs/benchmarks-fleet.md}
BENCH_FLEET=$BUILD/bench/bench_fleet
PGDIR=/tmp/berth-bench-pg-$$ # not under WORK (0700): the server's own user must reach it
PGPORT=$((45000 + $$ % 10000))
pg() { BERTH_TEST_PG= BERTH_PG_DIR=$PGDIR BERTH_PG_PORT=$PGPORT bash "$SRC/ci/start-postgres.sh" "$@"; }
PIDS=()
stop_all() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do timeout 20 tail --pid="$p" -f /dev/null || kill -9 "$p" 2>/dev/null; done
  PIDS=()
}
trap 'stop_all; pg --stop >/dev/null 2>&1; rm -rf "$WORK"' EXIT
PG=$(pg 2>"$WORK/pg.err" | tail -n 1)
newdb() { psql "$PG" -qc "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null && echo "${PG/\/berth_test?//$1?}"; }
q() { psql "$BERTH_STORE" -Atc "$1"; }
now_ms() { date +%s%3N; }
export BERTH_HOME=$WORK/cli
mkdir -p "$BERTH_HOME"

wait_done() { # wait_done N: until N tasks have ended
  until [ "$(q "select count(*) from tasks where state in ('FINISHED','FAILED','CANCELED','STOPPED')")" -ge "$1" ]; do
    sleep 0.2
  done
}
start_hosts() { # start_hosts COUNT SLOTS [env...]
  local n=$1 slots=$2 i
  shift 2
  for i in $(seq 1 "$n"); do
    mkdir -p "$WORK/h$i"
    env "$@" BERTH_HOME="$WORK/h$i" "$BERTH" serve --host "bh$i" --slots "$slots" --grace 2s >"$WORK/h$i.log" 2>&1 &
    PIDS+=($!)
  done
}
violations() { # tasks of one stack that overlapped, or started out of submission order
  q "select count(*) from tasks a join tasks b on a.stack = b.stack and a.seq < b.seq
     where b.started_at < a.finished_at or b.started_at < a.started_at"
}

# ---- (a) coordination alone -------------------------------------------------------------------------------------
# Every shape runs ROUNDS times, the shapes in turn (forward, then backward, ...), so the machine's drift between
# runs (10-20% on this shared 2-core machine) falls on every shape alike; each row is the median of its runs. The
# queue (stacks and N queued tasks) is made once and each run gets a copy of it (CREATE DATABASE ... TEMPLATE). The
# end of a run is watched through one psql session kept open, not a psql process every poll.
shapes=""
for h in $HOSTS; do shapes="$shapes $h:4"; done # hosts added, 4 slots each (the issue's rows)
for sh in $SAME_TOTAL; do case " $shapes " in *" $sh "*) ;; *) shapes="$shapes $sh" ;; esac; done
shapes=${shapes# }
sql_open() { coproc PQ { psql "$BERTH_STORE" -XAtq 2>>"$WORK/psql.err"; }; }
sql() { # one statement on the open session; its answer's first line
  local ans
  echo "$1;" >&"${PQ[1]}"
  IFS= read -r -t 60 ans <&"${PQ[0]}" || { echo "bench/fleet: no answer from psql to: $1" >&2; exit 1; }
  echo "$ans"
}
sql_close() { echo '\q' >&"${PQ[1]}"; wait "$PQ_PID" 2>/dev/null || true; }
wait_done_sql() { # wait_done_sql N: until N tasks have ended (on the open session)
  until [ "$(sql "select count(*) from tasks where state in ('FINISHED','FAILED','CANCELED','STOPPED')")" -ge "$1" ]; do
    sleep 0.2
  done
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {printf "%.1f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
minmax() { tr ' ' '\n' | grep . | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "-" hi}'; }

python3 "$SRC/bench/fake_engine.py" "$WORK/fake.sock" &
PIDS_FAKE=$!
for _ in $(seq 1 50); do [ -S "$WORK/fake.sock" ] && break; sleep 0.1; done
export BERTH_STORE=$(newdb bench_fleet_queue)
"$BERTH" store migrate >/dev/null
"$BERTH" image allow 'docker.io/berth/busybox:*' >/dev/null
for s in $(seq 0 $((STACKS - 1))); do echo "$s"; done |
  xargs -P 4 -I{} "$BERTH" stack create "f{}" --image berth/busybox:latest >/dev/null
"$BENCH_FLEET" "$N" "$STACKS" 0 f
QUEUE_URL=$BERTH_STORE
declare -A RATES STEADY LAT VIOL FAILED
order=$shapes
for round in $(seq 1 "$ROUNDS"); do
  for sh in $order; do
    h=${sh%:*} slots=${sh#*:}
    psql "$PG" -qc "DROP DATABASE IF EXISTS bench_fleet_run" -c "CREATE DATABASE bench_fleet_run TEMPLATE bench_fleet_queue" >/dev/null
    export BERTH_STORE=${QUEUE_URL/bench_fleet_queue/bench_fleet_run}
    rm -rf "$WORK"/h[0-9]* # every run's hosts start from an empty BERTH_HOME (the copies' task ids repeat)
    sql_open
    t0=$(now_ms)
    start_hosts "$h" "$slots" DOCKER_HOST="unix://$WORK/fake.sock"
    wait_done_sql "$N"
    t1=$(now_ms)
    rate=$(awk -v n="$N" -v ms=$((t1 - t0)) 'BEGIN {printf "%.1f", n / (ms / 1000)}')
    # steady: between the 10% and the 90% task's end (each host's start and the queue's last stacks left out)
    steady=$(sql "with e as (select finished_at, row_number() over (order by finished_at) rn from tasks)
                  select round(($N * 8 / 10) * 1000.0 / nullif((select finished_at from e where rn = $N * 9 / 10)
                               - (select finished_at from e where rn = $N / 10), 0), 1)")
    VIOL[$sh]=$((${VIOL[$sh]:-0} + $(violations)))
    FAILED[$sh]=$((${FAILED[$sh]:-0} + $(sql "select count(*) from tasks where state <> 'FINISHED'")))
    if [ "$round" = 1 ]; then # claim latency with a free slot: tasks on idle stacks, one every 50 ms
      base=$(sql "select coalesce(max(seq), 0) from tasks")
      "$BENCH_FLEET" 100 "$STACKS" 50 f
      wait_done_sql $((N + 100))
      LAT[$sh]=$(sql "select round(percentile_cont(0.5) within group (order by started_at - created_at)::numeric) || ' | '
                      || round(percentile_cont(0.99) within group (order by started_at - created_at)::numeric)
                      from tasks where seq > $base")
    fi
    sql_close
    stop_all
    RATES[$sh]="${RATES[$sh]:-} $rate"
    STEADY[$sh]="${STEADY[$sh]:-} $steady"
    echo "fleet (a) round $round: $h host(s) x $slots slot(s): $rate tasks/s (steady $steady)" >&2
  done
  order=$(echo "$order" | tr ' ' '\n' | tac | tr '\n' ' ')
done
kill "$PIDS_FAKE"
rows_a=""
for sh in $shapes; do
  h=${sh%:*} slots=${sh#*:}
  rows_a="$rows_a| $h | $slots | $((h * slots)) | $(echo "${RATES[$sh]}" | median) | $(echo "${RATES[$sh]}" | minmax) | $(echo "${STEADY[$sh]}" | median) | ${LAT[$sh]} | ${VIOL[$sh]} | ${FAILED[$sh]} |
"
done
ratio() { # ratio SHAPE BASE: median rate of SHAPE over BASE's
  awk -v a="$(echo "${RATES[$1]:-}" | median)" -v b="$(echo "${RATES[$2]:-}" | median)" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'
}
first_h=${HOSTS%% *} last_h=${HOSTS##* }
ratio_add=$(ratio "$last_h:4" "$first_h:4")
set -- $SAME_TOTAL
ratio_same=$(ratio "${!#}" "$1")
same_first=$1 same_last=${!#}
echo "fleet (a): $last_h hosts x 4 at $ratio_add of $first_h host x 4; ${same_last/:/ x } at $ratio_same of ${same_first/:/ x }" >&2

# ---- (b) real Docker ------------------------------------------------------------------------------------------------
# uncoordinated: 3 workers on SQLite, each running its share back to back on its own stacks
unset BERTH_STORE
export BERTH_HOME=$WORK/sqlite
mkdir -p "$BERTH_HOME"
"$BERTH" image allow 'docker.io/berth/busybox:*' >/dev/null
for s in $(seq 0 9); do "$BERTH" stack create "u$s" --image berth/busybox:latest >/dev/null; done
"$BERTH" task run u0 -- true >/dev/null 2>&1 # warm up
worker() {
  local w=$1 i
  for i in $(seq 0 $((NREAL / 3 - 1))); do "$BERTH" task run "u$(((i % 3) + w * 3))" -- true >/dev/null 2>&1; done
}
t0=$(now_ms)
worker 0 &
w0=$!
worker 1 &
w1=$!
worker 2 &
w2=$!
wait $w0 $w1 $w2
t_unc=$(($(now_ms) - t0))
n_unc=$((NREAL / 3 * 3))
rate_unc=$(awk -v n="$n_unc" -v ms="$t_unc" 'BEGIN {printf "%.2f", n / (ms / 1000)}')
rows_b="| 3 uncoordinated workers (SQLite, \`berth task run\` back to back) | $n_unc | $(awk -v ms="$t_unc" 'BEGIN {printf "%.1f", ms / 1000}') | $rate_unc | - | - |
"
export BERTH_HOME=$WORK/cli
for shape in "1 3" "3 1"; do
  read -r nh slots <<<"$shape"
  export BERTH_STORE=$(newdb bench_real_$nh)
  "$BERTH" store migrate >/dev/null
  "$BERTH" image allow 'docker.io/berth/busybox:*' >/dev/null
  for s in $(seq 0 9); do "$BERTH" stack create "r$s" --image berth/busybox:latest >/dev/null; done
  start_hosts "$nh" "$slots"
  "$BENCH_FLEET" 1 10 0 r
  wait_done 1 # warm up
  t0=$(now_ms)
  "$BENCH_FLEET" "$n_unc" 10 0 r
  wait_done $((n_unc + 1))
  t_f=$(($(now_ms) - t0))
  viol=$(violations)
  stop_all
  rate=$(awk -v n="$n_unc" -v ms="$t_f" 'BEGIN {printf "%.2f", n / (ms / 1000)}')
  over=$(awk -v f="$t_f" -v u="$t_unc" 'BEGIN {printf "%+.1f%%", (f / u - 1) * 100}')
  echo "fleet (b): $nh host(s) x $slots slot(s): $rate tasks/s ($over against uncoordinated), $viol violations" >&2
  rows_b="$rows_b| fleet: $nh host(s) x $slots slot(s) (PostgreSQL) | $n_unc | $(awk -v ms="$t_f" 'BEGIN {printf "%.1f", ms / 1000}') | $rate | $over | $viol |
"
done

cat >"$OUT" <<EOF
# Fleet (issue 10)

\`bench/fleet.sh\`, $(date -u +%Y-%m-%d), this machine (2 cores). PostgreSQL 15 is a throwaway server on a Unix
socket; every host, its task threads, PostgreSQL and (b) dockerd share the 2 cores.

## (a) Coordination alone

$N tasks over $STACKS stacks queued first (made once; each run gets a copy of that database), then the hosts started
against a Docker endpoint that answers at once (\`bench/fake_engine.py\`): tasks/s from the hosts' start to the last
task's end, and "steady" between the 10% and the 90% task's end (each host's start and the last stacks' tails left
out). Two sets of shapes: hosts added with 4 slots each (the rows the issue asks for), and hosts sharing the same 8
slots in all (1 x 8, 2 x 4, 4 x 2, 8 x 1), which keeps the work in flight the same and changes only how many hosts
share it. Every shape ran $ROUNDS times, the shapes in turn (forward, then backward), so the machine's drift falls on
all of them alike; the table has each shape's median and the range of its runs. Claim latency (first round): 100
tasks submitted 50 ms apart while slots are free (submit -> claimed, \`started_at - created_at\`). Violations (all
runs): pairs of tasks of one stack that overlapped or started out of submission order, from the records (the unique
index makes an overlap impossible; this counts what the records show). Targets: >= 50 tasks/s with 8 hosts, the rate
does not fall as hosts are added, claim p99 < 250 ms, 0 violations.

| hosts | slots each | slots in all | tasks/s (median) | tasks/s (range of the runs) | steady tasks/s (median) | claim p50 (ms) | claim p99 (ms) | violations | not FINISHED |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
$rows_a
Medians: $last_h hosts x 4 slots at $ratio_add of $first_h host x 4; ${same_last/:/ hosts x } slot at $ratio_same of ${same_first/:/ host x } slots.

What bounds it: the store's one write lock (an advisory lock every write transaction takes, so the audit chain stays
one linear chain) and the 2 cores, which every host, its task threads, PostgreSQL and the fake engine share. Each
task is four write transactions (the claim with its PREPARING transition, then INITIALIZING, PERFORMING and its end),
each a few round trips under the lock. What it took to get here (tasks/s with 1 and 8 hosts): a supervisor process
per task with two new PostgreSQL connections (19-21) -> each claimed task run in a thread of its host on store
connections the host keeps -> the claim's plan pinned to walk the queue in order, JIT off (101 / 99) -> transitions
without savepoints or a second read -> BEGIN and writes sent in libpq pipelines (148 / 107) -> the audit chain's head
read with each write transaction's first statement (178 / 126) -> a log chunk notifies only a followed task and a
host with no free slot stops listening (session 9: PostgreSQL wakes every listening connection for every NOTIFY,
whatever its channel; 198 / 163 and 205 / 194 in two runs) -> this table, whose method (interleaved rounds, medians)
was added because one run per shape could not tell a real difference from the machine's drift (the same shape moved
by 20-30% between runs here, e.g. 1 host x 4 slots 169-221 tasks/s within this one run).

Why 8 hosts run slower on this machine: not coordination that grows with hosts. With 4 slots each, 2 and 4 hosts ran at
or above 1 host's rate; with 8 hosts, 32 tasks are in flight on 2 cores where 1 host has 4. With the same 8 slots in
all, 8 hosts x 1 slot ran at $ratio_same of 1 host x 8 slots: the same work and the same concurrency, spread over 8
processes and their connections instead of 1. Measured with each process's CPU time (2,000 tasks, two runs of each
in turn, session 11): 8.7 ms of CPU a task with 1 host x 8 slots, 9.6 ms with 8 hosts x 1 (hosts +0.35 ms, PostgreSQL
+0.3 ms, the fake engine the same; 194-196 against 175-179 tasks/s; session 10: 8.6 and 9.5 ms) and the same ~215
context switches a task; in a whole-machine profile (1 host x 4 against
8 x 4) the extra was spread over every library alike (libcurl, libpq, berth, cJSON, about a third more samples
a task each), not one hot spot, and 80 idle connections added to PostgreSQL moved nothing beyond the noise (one
run slower, one faster). Session 9 measured that the write lock's wait is not what bounds the rate (a variant that
cut the average wait from 34 to 5 ms left it where it was). So: 8 address spaces and their backends taking turns on
2 cores cost more than threads of one process doing the same work. Not idle work: each host's background threads
woke about 70 times a second (three looked at a stop flag every 50 ms) and now sleep until their next round or the
shutdown, about 15 wake-ups a second in all, and the CPU a task did not move (the two runs above are with it). Hosts
on machines of their own do not share their cores this way; what they do share, PostgreSQL, spent 0.3 ms a task more
with 8 hosts than with 1. "Does not fall": with 8 hosts x 4 at $ratio_add and 8 x 1 at $ratio_same of 1 host in
these medians; met when the ratio is 1 or more, and this machine's 8-host shapes have stayed below it in every run.
Bench notes: the fake engine (Python) listened with a backlog of 5 and refused a connection now and then under 32
concurrent tasks; it now has a real backlog. This method found a leak: every task left its liveness lock file
(\`BERTH_HOME/run/task-ID.lock\`) behind, so a host kept one file per task it ever ran; the file is now removed once
the task's record has ended (checked by test_queue).

## (b) Real Docker

$NREAL tasks of \`true\` over 10 stacks (busybox image). The baseline, measured in the same run: 3 workers with no
coordination at all, each running its share back to back with \`berth task run\` on its own stacks (SQLite store).
Target: coordination overhead < 10%.

| how | tasks | wall (s) | tasks/s | overhead | violations |
|---|---:|---:|---:|---:|---:|
$rows_b
What bounds it: dockerd (container create/start/remove) on 2 cores.
EOF
echo "wrote $OUT" >&2
