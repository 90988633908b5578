#!/usr/bin/env bash
# The fleet (docs/fleet.md): three `berth serve` hosts on one PostgreSQL store and one dockerd. Exactly-once and FIFO
# per stack across hosts, a SIGKILLed host, a host frozen past its lease, PostgreSQL restarted mid-task, a host
# started while PostgreSQL is down, drain, pools, cancel across hosts, state handed from host to host, task retry.
# On SQLite (the default store) only the refusals of fleet options run. The PostgreSQL server is the test's own
# (ci/start-postgres.sh in a temporary directory, on its own port), so restarting it disturbs no other test.
T_OWN_HOSTS=1 # this test starts its own hosts, on a PostgreSQL server of its own
. "$(dirname "$0")/lib.sh"
SRC=${BERTH_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}

# --- SQLite: single-host, and says so ---------------------------------------------------------------------------
if [ -z "${BERTH_STORE:-}" ]; then
  for opt in "--pool gpu" "--no-execute" "--no-listen" "--lease 10s" "--slots 2" "--drained"; do
    out=$(timeout 20 "$BERTH" serve --listen tcp:127.0.0.1:0 $opt 2>&1 </dev/null)
    rc=$?
    check "serve $opt on SQLite is refused with one line (rc=$rc)" \
      sh -c 'test "$1" -ne 0 && test "$(printf "%s\n" "$2" | wc -l)" -eq 1 && printf "%s" "$2" | grep -q "PostgreSQL"' _ \
      "$rc" "$out"
  done
  out=$("$BERTH" host list 2>&1)
  check "host list on SQLite says a SQLite store is single-host" sh -c 'printf "%s" "$1" | grep -q "single-host"' _ "$out"
  finish
  exit $?
fi

# --- a PostgreSQL server of the test's own ------------------------------------------------------------------------
PGDIR=/tmp/berth-fleet-pg-$$ # not under T_TMP: the server's own user must reach it
t_free_port PGPORT
pg() { BERTH_TEST_PG= BERTH_PG_DIR=$PGDIR BERTH_PG_PORT=$PGPORT bash "$SRC/ci/start-postgres.sh" "$@"; }
PGURL=$(pg 2>"$T_TMP/pg.err" | tail -n 1)
if ! psql "$PGURL" -Atc 'select 1' >/dev/null 2>&1; then
  fail "a PostgreSQL server of the test's own starts ($(tail -n 2 "$T_TMP/pg.err"))"
  finish
  exit 1
fi
PGDATA_DIR=$PGDIR/data
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u berthpg -- "$@"; else "$@"; fi; }
pg_ctl_() { as_pg /usr/lib/postgresql/15/bin/pg_ctl -D "$PGDATA_DIR" "$@"; }
export BERTH_STORE=$PGURL
"$BERTH" store migrate >/dev/null

declare -A HPID=() HPORT=()
t_free_port PA
t_free_port PB
t_free_port PC
start_host() { # start_host NAME PORT|- [serve options...]: its own BERTH_HOME, as on its own machine
  local name=$1 port=$2
  shift 2
  [ "$port" = - ] || {
    set -- --listen "tcp:127.0.0.1:$port" "$@"
    HPORT[$name]=$port
  }
  mkdir -p "$T_TMP/h-$name"
  BERTH_HOME=$T_TMP/h-$name "$BERTH" serve --host "$name" --grace 5s --lease 6s "$@" >>"$T_TMP/h-$name.log" 2>&1 </dev/null &
  HPID[$name]=$!
}
stop_hosts() {
  local h
  for h in "${!HPID[@]}"; do kill -CONT "${HPID[$h]}" 2>/dev/null; kill "${HPID[$h]}" 2>/dev/null; done
  for h in "${!HPID[@]}"; do timeout 20 tail --pid="${HPID[$h]}" -f /dev/null || kill -9 "${HPID[$h]}" 2>/dev/null; done
}
cleanup_all() { stop_hosts; pg --stop >/dev/null 2>&1; t_cleanup; }
trap cleanup_all EXIT
host_state() { "$BERTH" host list --json 2>/dev/null | python3 -c '
import json, sys
print({h["name"]: h["state"] for h in json.load(sys.stdin)["hosts"]}.get(sys.argv[1], "none"))' "$1"; }
wait_for() { # wait_for SECONDS COMMAND...
  local end=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $end ] && return 1
    sleep 0.3
  done
}
is_state() { [ "$(task_field "$1" state)" = "$2" ]; }
api() { # api HOST ARGS...: the CLI as a CI client of HOST (no store of its own)
  local h=$1
  shift
  env -u BERTH_STORE BERTH_SERVER="http://127.0.0.1:${HPORT[$h]}" BERTH_API_KEY="$KEY" timeout 300 "$BERTH" "$@" </dev/null
}
children_of() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' '; }

proj=$T_TMP/proj
mkdir -p "$proj"
echo x >"$proj/f"
KEY=$("$BERTH" key create fleet-admin --role admin | tail -n 1)
for i in $(seq 0 9); do "$BERTH" stack create "$(stack_name s$i)" --image berth/runner:latest --project-dir "$proj" >/dev/null; done

start_host A "$PA" --slots 3
start_host B "$PB" --slots 3
start_host C "$PC" --slots 3
check "three hosts register and are alive" wait_for 30 sh -c '[ "$(BERTH_STORE=$1 "$2" host list --json | grep -c "\"alive\"")" = 3 ]' _ \
  "$BERTH_STORE" "$BERTH"

# --- 100 tasks over 10 stacks, through the three hosts' APIs at once ----------------------------------------------
span='echo "SPAN $(date +%s.%N)"; sleep 0.2; echo "END $(date +%s.%N)"'
hosts=(A B C)
: >"$T_TMP/ids"
subs=()
for i in $(seq 0 99); do
  { api "${hosts[$((i % 3))]}" task run "$(stack_name s$((i % 10)))" --detach -- "$span" >>"$T_TMP/ids"; } &
  subs+=($!)
done
wait "${subs[@]}" # (not a bare wait: the hosts are this shell's children too)
n_ids=$(sort -u "$T_TMP/ids" | grep -c .)
check "100 submissions through three hosts are accepted ($n_ids ids)" test "$n_ids" = 100
ended() { [ "$("$BERTH" task list --state FINISHED --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["tasks"]))')" -ge 100 ]; }
wait_for 300 ended
"$BERTH" task list --json >"$T_TMP/all.json"
for id in $(cat "$T_TMP/ids"); do "$BERTH" task logs "$id" | sed "s/^/$id /"; done >"$T_TMP/spans"
python3 - "$T_TMP/all.json" "$T_TMP/spans" >"$T_TMP/verdict" 2>&1 <<'PY'
import collections, json, sys
tasks = {t["id"]: t for t in json.load(open(sys.argv[1]))["tasks"]}
spans = collections.defaultdict(dict)
for line in open(sys.argv[2]):
    f = line.split()
    if len(f) == 3 and f[1] in ("SPAN", "END"):
        spans[f[0]].setdefault(f[1], []).append(float(f[2]))
once = all(len(s.get("SPAN", [])) == 1 and len(s.get("END", [])) == 1 for s in spans.values()) and len(spans) == 100
finished = sum(t["state"] == "FINISHED" for t in tasks.values())
by_stack = collections.defaultdict(list)
for tid, s in spans.items():
    by_stack[tasks[tid]["stack"]].append((tasks[tid]["created_at"], tid, s["SPAN"][0], s["END"][0]))
fifo = overlap = 0
for v in by_stack.values():
    v.sort()
    for a, b in zip(v, v[1:]):
        fifo += b[2] < a[2]          # a later submission started first
        overlap += b[2] < a[3]       # started before the one ahead ended
hosts = collections.Counter(t["host"] for t in tasks.values() if t["id"] in spans)
print("once=%s finished=%d fifo_violations=%d overlaps=%d hosts=%s" % (once, finished, fifo, overlap, dict(hosts)))
sys.exit(0 if once and finished == 100 and fifo == 0 and overlap == 0 and len(hosts) == 3 else 1)
PY
vrc=$?
check "every task ran exactly once, FIFO per stack, no overlap, every host ran some ($(cat "$T_TMP/verdict"))" test $vrc -eq 0

# --- SIGKILL the host that runs a task ----------------------------------------------------------------------------
S=$(stack_name s0)
id=$(api A task run "$S" --detach -- 'echo started; sleep 30')
wait_for 30 is_state "$id" PERFORMING
h=$(task_field "$id" host)
check "a long task is PERFORMING on a host ($h)" test -n "$h"
kill -9 "${HPID[$h]}"
t0=$SECONDS
wait_for 45 is_state "$id" FAILED
check "the SIGKILLed host's task is FAILED within 45 s ($((SECONDS - t0)) s)" is_state "$id" FAILED
check "  ...with the reason 'host lost'" test "$(task_field "$id" reason)" = "host lost"
other=A; [ "$h" = A ] && other=B
api "$other" task run "$S" --json -- echo next >"$T_TMP/next.json" 2>/dev/null
check "  ...the stack moves on to another host" python3 -c '
import json, sys; t = json.load(open(sys.argv[1])); sys.exit(not (t["state"] == "FINISHED" and t["host"] != sys.argv[2]))' \
  "$T_TMP/next.json" "$h"
check "  ...the dead host's command ended before the stack's next task started (its container ends itself when the host's liveness file stops changing)" python3 -c '
import datetime, json, subprocess, sys
st = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}} {{.State.FinishedAt}}", "berth-" + sys.argv[1]],
                    capture_output=True, text=True).stdout.split()
iso = lambda s: datetime.datetime.fromisoformat(s[:23].rstrip("Z") + "+00:00")
nxt = json.load(open(sys.argv[2]))
print(st, nxt["started_at"])
sys.exit(0 if st and st[0] == "false" and iso(st[1]) < iso(nxt["started_at"]) else 1)' "$id" "$T_TMP/next.json"
check "  ...its stopped container stays until the host restarts" test "$(docker ps -aq --filter "label=berth.task=$id" | wc -l)" -eq 1
check "  ...and so is the task's liveness lock file in its home" test -e "$T_TMP/h-$h/run/task-$id.lock"
start_host "$h" "${HPORT[$h]}" --slots 3
check "  ...the restarted host removes its leftover container" \
  wait_for 30 sh -c '[ "$(docker ps -aq --filter "label=berth.task=$1" | wc -l)" -eq 0 ]' _ "$id"
check "  ...and the ended task's lock file (no task lock file left in its home)" \
  wait_for 30 sh -c '! ls "$1"/run/task-*.lock >/dev/null 2>&1' _ "$T_TMP/h-$h"
wait_for 30 sh -c '[ "$(BERTH_STORE=$1 "$2" host list --json | grep -c "\"alive\"")" = 3 ]' _ "$BERTH_STORE" "$BERTH"

# --- freeze a host (and its supervisor) past its lease, then let it go on --------------------------------------------
S=$(stack_name s1)
id=$(api B task run "$S" --detach -- 'echo before; sleep 12; echo LATE-WRITE')
wait_for 30 is_state "$id" PERFORMING
h=$(task_field "$id" host)
frozen="${HPID[$h]} $(children_of "${HPID[$h]}")"
kill -STOP $frozen
t0=$SECONDS
wait_for 45 is_state "$id" FAILED
check "a host frozen past its lease: its task is failed by the others ($((SECONDS - t0)) s, $(task_field "$id" reason))" \
  test "$(task_field "$id" reason)" = "host lost"
check "  ...its state is lost in host list" test "$(host_state "$h")" = lost
check "  ...and its command ended with it, by the time its task was failed (the container ends itself)" \
  test "$(docker ps -q --filter "label=berth.task=$id" | wc -l)" -eq 0
before=$("$BERTH" task show "$id" --json | python3 -c 'import json,sys; t=json.load(sys.stdin); print(len(t["history"]), t["state"], t["finished_at"])')
kill -CONT $frozen
check "  ...resumed, it ends the task's container" \
  wait_for 20 sh -c '[ "$(docker ps -q --filter "label=berth.task=$1" | wc -l)" -eq 0 ]' _ "$id"
sleep 14 # past the end the command would have had
after=$("$BERTH" task show "$id" --json | python3 -c 'import json,sys; t=json.load(sys.stdin); print(len(t["history"]), t["state"], t["finished_at"])')
check "  ...and its late writes change nothing: the record ($after)" test "$before" = "$after"
check "  ...nor the log (no LATE-WRITE)" sh -c '! "$1" task logs "$2" | grep -q LATE-WRITE' _ "$BERTH" "$id"
check "  ...and the audit chain verifies" "$BERTH" audit verify
check "  ...the host registers again and is alive" wait_for 20 sh -c '[ "$(BERTH_STORE=$1 "$2" host list --json | grep -c "\"alive\"")" = 3 ]' _ \
  "$BERTH_STORE" "$BERTH"

# --- cancel across hosts; state handed from host to host --------------------------------------------------------
S=$(stack_name slow)
"$BERTH" stack create "$S" --image berth/runner:latest --project-dir "$proj" --init 'sleep 20' >/dev/null
id=$(api A task run "$S" --detach -- true)
wait_for 30 is_state "$id" INITIALIZING
h=$(task_field "$id" host)
other=A; [ "$h" = A ] && other=C
t0=$(date +%s%3N)
api "$other" task cancel "$id" >/dev/null 2>&1
wait_for 10 sh -c '[ "$(docker ps -q --filter "label=berth.task=$1" | wc -l)" -eq 0 ]' _ "$id"
el=$(($(date +%s%3N) - t0))
check "a stop issued through host $other reaches host $h: STOPPED, container gone in ${el} ms (< 2000)" \
  sh -c 'test "$1" = STOPPED && test "$2" -lt 2000' _ "$(task_field "$id" state)" "$el"
S=$(stack_name st)
"$BERTH" stack create "$S" --image berth/runner:latest --project-dir "$proj" --persist out.txt >/dev/null
"$BERTH" host drain B >/dev/null; "$BERTH" host drain C >/dev/null
api A task run "$S" --json -- 'echo handed-over >out.txt' >"$T_TMP/w.json" 2>/dev/null
"$BERTH" host undrain B >/dev/null; "$BERTH" host drain A >/dev/null
api A task run "$S" --json -- 'cat out.txt' >"$T_TMP/r.json" 2>"$T_TMP/r.err"
"$BERTH" host undrain A >/dev/null; "$BERTH" host undrain C >/dev/null
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $KEY" -d '{"bogus": 1}' \
  "http://127.0.0.1:${HPORT[A]}/v1/hosts/A/drain")
check "POST /v1/hosts/A/drain with an unknown field -> 400, and A stays alive ($code)" \
  sh -c 'test "$1" = 400 && test "$2" = alive' _ "$code" "$(host_state A)"
check "state saved by a task on host A is what the next task sees on host B" python3 -c '
import json, sys
w, r = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
sys.exit(not (w["host"] == "A" and r["host"] == "B" and r["state"] == "FINISHED"))' "$T_TMP/w.json" "$T_TMP/r.json"
check "  ...its output is the file written on A" grep -qx handed-over "$T_TMP/r.err"

# --- pools and waiting reasons ------------------------------------------------------------------------------------
S=$(stack_name gpu)
"$BERTH" stack create "$S" --image berth/runner:latest --project-dir "$proj" --pool gpu >/dev/null
id=$("$BERTH" task run "$S" --detach -- echo on-gpu)
sleep 2
check "a task for pool gpu waits while no gpu host lives" is_state "$id" QUEUED
check "  ...and says why in task show: $(task_field "$id" reason)" test "$(task_field "$id" reason)" = "no live host in pool gpu"
check "  ...and in task list" sh -c '"$1" task list --stack "$2" | grep -q "waiting: no live host in pool gpu"' _ "$BERTH" "$S"
# a CI client following it through a server says why it waits, as the local follower does
api A task logs "$id" --follow >"$T_TMP/gpu.out" 2>"$T_TMP/gpu.err" &
gpu_follow=$!
sleep 2
start_host G - --pool gpu
wait_for 30 is_state "$id" FINISHED
wait $gpu_follow
check "  ...a follower through a server said why it waited, then printed the output" sh -c \
  'grep -qx "berth: waiting: no live host in pool gpu" "$1" && grep -qx on-gpu "$2"' _ "$T_TMP/gpu.err" "$T_TMP/gpu.out"
check "  ...then runs on the gpu host (execute-only, no --listen)" test "$(task_field "$id" host)" = G
check "task list --host G lists the gpu task, and only tasks G ran" sh -c \
  '"$1" task list --host G --json | python3 -c "import json,sys; t=json.load(sys.stdin)[\"tasks\"]; sys.exit(not (t and all(x[\"host\"] == \"G\" for x in t) and sys.argv[1] in [x[\"id\"] for x in t]))" "$2"' _ "$BERTH" "$id"
check "  ...through a server too" sh -c 'test "$(env -u BERTH_STORE BERTH_SERVER="http://127.0.0.1:$1" BERTH_API_KEY="$2" "$3" task list --host G --json | grep -c "\"id\"")" -ge 1' \
  _ "${HPORT[A]}" "$KEY" "$BERTH"
# an admin's drain outlives the host's restart; serve --drained starts drained; undrain lets either claim
"$BERTH" host drain G >/dev/null
check "  ...the drained host says so in its own log" wait_for 10 grep -q "host G drained: it claims no new task" "$T_TMP/h-G.log"
kill "${HPID[G]}"
wait "${HPID[G]}" 2>/dev/null
check "a drained host that stopped is listed as stopped, drained by an admin ($(host_state G))" sh -c \
  '"$1" host list --json | python3 -c "import json,sys; h={x[\"name\"]: x for x in json.load(sys.stdin)[\"hosts\"]}[\"G\"]; sys.exit(not (h[\"state\"] == \"stopped\" and h[\"drained\"] is True))" && "$1" host show G | grep -q "stopped (not running; drained by an admin"' _ "$BERTH"
start_host G - --pool gpu
wait_for 20 sh -c 'grep -c "joined the fleet" "$1" | grep -qx 2' _ "$T_TMP/h-G.log"
check "  ...its joined line says it is drained" grep -q "host G joined the fleet (drained: claims nothing until undrained" "$T_TMP/h-G.log"
check "a drained host that restarts comes back draining ($(host_state G))" test "$(host_state G)" = draining
check "  ...and says so in its log" grep -q "host G is drained: it claims no task until .berth host undrain G." "$T_TMP/h-G.log"
id=$("$BERTH" task run "$S" --detach -- echo after-restart)
sleep 2
check "  ...it claims nothing: the task waits ($(task_field "$id" reason))"   sh -c 'test "$1" = QUEUED && test "$2" = "no live host in pool gpu (1 draining)"' _ "$(task_field "$id" state)" "$(task_field "$id" reason)"
"$BERTH" host undrain G >/dev/null
wait_for 30 is_state "$id" FINISHED
check "  ...until undrained: then it runs the task (on $(task_field "$id" host))" test "$(task_field "$id" host)" = G
kill "${HPID[G]}"
wait "${HPID[G]}" 2>/dev/null
start_host G - --pool gpu --drained
wait_for 20 sh -c 'grep -c "joined the fleet" "$1" | grep -qx 3' _ "$T_TMP/h-G.log"
check "serve --drained starts the host draining ($(host_state G))" test "$(host_state G)" = draining
"$BERTH" host undrain G >/dev/null
check "  ...and undrain makes it alive" wait_for 5 sh -c 'test "$("$1" host list --json | python3 -c "import json,sys; print({h[\"name\"]: h[\"state\"] for h in json.load(sys.stdin)[\"hosts\"]}[\"G\"])")" = alive' _ "$BERTH"
# the kept drain of a host that is not running: undrain clears it, with exit 0 and a line that says so
"$BERTH" host drain G >/dev/null
kill "${HPID[G]}"
wait "${HPID[G]}" 2>/dev/null
out=$("$BERTH" host drain G 2>&1)
check "drain of a drained host that is not running keeps its drain, exit $? ($out)" \
  sh -c 'test "$1" -eq 0 && printf "%s" "$2" | grep -q "is not running: its drain is kept"' _ $? "$out"
out=$("$BERTH" host undrain G 2>&1)
check "undrain of a drained host that is not running clears its drain, exit $? ($out)" \
  sh -c 'test "$1" -eq 0 && printf "%s" "$2" | grep -q "its drain is cleared (it is not running: it claims tasks when it starts)" && test "$("$3" host list --json | grep -c "\"G\"")" -eq 0' _ $? "$out" "$BERTH"
start_host G - --pool gpu
wait_for 20 sh -c 'grep -c "joined the fleet" "$1" | grep -qx 4' _ "$T_TMP/h-G.log"
check "  ...so it comes back alive ($(host_state G))" test "$(host_state G)" = alive
# a pool's name is matched whole: `_` (a valid name character) is no wildcard, so pool gp_ is not pool gpu
S=$(stack_name under)
"$BERTH" stack create "$S" --image berth/runner:latest --project-dir "$proj" --pool gp_ >/dev/null
id=$("$BERTH" task run "$S" --detach -- echo on-gp_)
sleep 3
check "a task for pool gp_ is not claimed by a host of pool gpu ($(task_field "$id" state): $(task_field "$id" reason))" \
  sh -c 'test "$1" = QUEUED && test "$2" = "no live host in pool gp_"' _ "$(task_field "$id" state)" "$(task_field "$id" reason)"
"$BERTH" task cancel "$id" >/dev/null 2>&1
# a host whose Docker does not answer claims nothing: the queue waits for a host that can run it
S=$(stack_name nodock)
"$BERTH" stack create "$S" --image berth/runner:latest --project-dir "$proj" --pool nodock >/dev/null
DOCKER_HOST=unix://$T_TMP/no-docker.sock start_host N - --pool nodock
wait_for 20 sh -c 'test "$("$1" host list --json | grep -c "\"N\"")" -ge 1' _ "$BERTH"
id=$("$BERTH" task run "$S" --detach -- echo on-nodock)
sleep 4
check "a host whose Docker does not answer claims nothing: the task waits ($(task_field "$id" state))" is_state "$id" QUEUED
check "  ...and the host says why" grep -q "its Docker daemon does not answer" "$T_TMP/h-N.log"
check "  ...and so does the task ($(task_field "$id" reason))" \
  test "$(task_field "$id" reason)" = "the one live host of pool nodock cannot run it: its Docker daemon does not answer"
"$BERTH" task cancel "$id" >/dev/null 2>&1
# a task's container that Docker was away to remove (its daemon vanished as the task ended) goes once Docker answers
# again, while the host runs on (not only at its next start)
S=$(stack_name proxied)
"$BERTH" stack create "$S" --image berth/runner:latest --project-dir "$proj" --pool proxied >/dev/null
python3 "$(dirname "$0")/docker_proxy.py" "$T_TMP/px.sock" &
proxy=$!
wait_for 10 test -S "$T_TMP/px.sock"
DOCKER_HOST=unix://$T_TMP/px.sock start_host X - --pool proxied
id=$("$BERTH" task run "$S" --detach -- 'echo started; sleep 8; echo finished')
wait_for 60 is_state "$id" PERFORMING
sleep 1
kill -KILL $proxy
wait $proxy 2>/dev/null
ended() { case "$(task_field "$1" state)" in FINISHED | FAILED | CANCELED | STOPPED) return 0 ;; esac; return 1; }
wait_for 30 ended "$id"
containers_of() { docker ps -aq --filter "label=berth.task=$1" | wc -l; }
check "Docker gone mid-task on a host: the task ends FAILED ($(task_field "$id" state) $(task_field "$id" reason)), its container is left ($(containers_of "$id"))" \
  sh -c 'test "$1" = FAILED && test "$2" -eq 1' _ "$(task_field "$id" state)" "$(containers_of "$id")"
python3 "$(dirname "$0")/docker_proxy.py" "$T_TMP/px.sock" &
proxy=$!
gone() { test "$(containers_of "$1")" -eq 0; }
wait_for 45 gone "$id"
check "  ...Docker back: the running host removes it ($(containers_of "$id") left) and says so" \
  sh -c 'test "$1" -eq 0 && grep -q "removed 1 container(s) of ended tasks" "$2"' _ "$(containers_of "$id")" "$T_TMP/h-X.log"
kill "${HPID[X]}" 2>/dev/null
wait "${HPID[X]}" 2>/dev/null
unset 'HPID[X]'
kill $proxy 2>/dev/null
wait $proxy 2>/dev/null
# host remove: a live host is refused; a lost one (SIGKILLed, past its lease) is forgotten, audited
out=$("$BERTH" host remove A 2>&1)
check "host remove of a live host is refused with one line ($out)" \
  sh -c 'test "$(printf "%s\n" "$1" | wc -l)" -eq 1 && printf "%s" "$1" | grep -q "is alive: only a lost host is removed"' _ "$out"
kill -KILL "${HPID[N]}" 2>/dev/null
wait "${HPID[N]}" 2>/dev/null
unset 'HPID[N]'
host_lost() { test "$(host_state N)" = lost; }
wait_for 45 host_lost
# shown lost once past its lease; removable once a live host declared it lost (within a lease of its own), or twice
# its lease after its last heartbeat: until then the refusal says so and when to try again
was=$(host_state N)
out=$("$BERTH" host remove N 2>&1) || true
if printf "%s" "$out" | grep -q "not declared lost yet"; then
  check "  (a host shown lost before it is declared so: the refusal says when to try again: $out)" \
    sh -c 'printf "%s" "$1" | grep -qE "try again in about [0-9]+ s$"' _ "$out"
  removed() { out=$("$BERTH" host remove N 2>&1); }
  wait_for 20 removed
fi
check "host remove of a lost host forgets it (was $was: $out)" \
  sh -c 'test "$("$1" host list --json | grep -c "\"N\"")" -eq 0' _ "$BERTH"
check "  ...and audits it" sh -c '"$1" audit --json | grep -q "host.remove"' _ "$BERTH"
S=$(stack_name s2)
"$BERTH" stack lock "$S" --note maintenance >/dev/null
id=$(env -u BERTH_STORE BERTH_SERVER="http://127.0.0.1:${HPORT[A]}" BERTH_API_KEY="$KEY" "$BERTH" task run "$S" --detach -- true 2>&1 | tail -n 1)
check "a locked stack refuses others' tasks at submission" sh -c '! printf "%s" "$1" | grep -qE "^[0-9a-z]{26}$"' _ "$id"
"$BERTH" stack unlock "$S" >/dev/null

# --- retry ----------------------------------------------------------------------------------------------------------
S=$(stack_name s3)
api C task run "$S" --json -- 'echo AGAIN; exit 3' >"$T_TMP/o.json" 2>/dev/null
oid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$T_TMP/o.json")
api A task retry "$oid" --json >"$T_TMP/rt.json" 2>"$T_TMP/rt.err"
rc=$?
check "task retry follows the new task and exits with its status (rc=$rc)" test $rc -eq 3
check "  ...the new task records retry_of and ran the same command" python3 -c '
import json, sys
t = json.load(open(sys.argv[1])); sys.exit(not (t["retry_of"] == sys.argv[2] and t["command"] == "echo AGAIN; exit 3" and t["id"] != sys.argv[2]))' \
  "$T_TMP/rt.json" "$oid"
out=$("$BERTH" task retry "$(cat "$T_TMP/ids" | head -n 1)" --detach)
check "task retry --detach prints the new id" sh -c 'printf "%s" "$1" | grep -qE "^[0-9a-z]{26}$"' _ "$out"

# --- PostgreSQL restarted mid-task; a host started while it is down ------------------------------------------------
S=$(stack_name s4)
: >"$T_TMP/short"
for i in 0 1 2 3 4 5; do # short tasks in every phase when PostgreSQL stops: each must end, none stay active
  "$BERTH" stack create "$(stack_name r$i)" --image berth/runner:latest --project-dir "$proj" >/dev/null
  api "${hosts[$((i % 3))]}" task run "$(stack_name r$i)" --detach -- 'echo a; sleep 1; echo b' >>"$T_TMP/short"
done
# the long task prints every half second, while PostgreSQL is down too (its output waits and none of it is lost), and
# runs on after PostgreSQL is back
# (its stack's idle timeout is shorter than the outage: the time its output waits for the store is not idle time)
"$BERTH" stack update "$S" --idle-timeout 5s >/dev/null
id=$(api A task run "$S" --detach -- 'echo one; i=0; while [ $i -lt 30 ]; do i=$((i + 1)); echo "tick $i"; sleep 0.5; done; echo two')
# and one whose initialization ends while PostgreSQL is down: its move to PERFORMING waits for the database
SI=$(stack_name s4i)
"$BERTH" stack create "$SI" --image berth/runner:latest --project-dir "$proj" --init 'sleep 6' >/dev/null
idi=$(api B task run "$SI" --detach -- 'echo ran-after-init')
# and one whose command ends while PostgreSQL is down (about 3 s into the outage): its end is written once the
# database is back, with the time it ended
SE=$(stack_name s4e)
"$BERTH" stack create "$SE" --image berth/runner:latest --project-dir "$proj" >/dev/null
ide=$(api C task run "$SE" --detach -- 'sleep 5')
wait_for 30 is_state "$id" PERFORMING
wait_for 30 is_state "$idi" INITIALIZING
wait_for 30 is_state "$ide" PERFORMING
host_lost_before=$(psql "$PGURL" -Atc "SELECT count(*) FROM tasks WHERE reason = 'host lost'")
# a follower on the store itself (the CLI with BERTH_STORE, no server), following the long task through the restart
"$BERTH" task logs "$id" --follow >"$T_TMP/follow-out" 2>"$T_TMP/follow-err" &
follower=$!
# host C keeps store connections and log readers of requests answered before the restart (4 at once, each on a
# connection of its own), to be used again after it
readers=()
for i in 1 2 3 4; do
  api C task logs "$(head -n 1 "$T_TMP/ids")" >/dev/null 2>&1 &
  readers+=($!)
done
wait "${readers[@]}"
check "as PostgreSQL stops, the long task performs and the other one initializes ($(task_field "$id" state), $(task_field "$idi" state))" \
  sh -c 'test "$1" = PERFORMING && test "$2" = INITIALIZING' _ "$(task_field "$id" state)" "$(task_field "$idi" state)"
pg_stopped=$(date +%s%3N)
pg_ctl_ -m fast -w stop >/dev/null 2>&1
start_host D - # while PostgreSQL is down
sleep 8 # longer than the hosts' lease (6 s): after it, each host renews its lease before any is declared lost
check "a host started while PostgreSQL is down waits and says so" grep -q "retrying" "$T_TMP/h-D.log"
check "  ...and has not exited" kill -0 "${HPID[D]}"
pg_ctl_ -w start -l "$PGDIR/restart.log" >/dev/null 2>&1
pg_back=$(date +%s%3N)
wait_for 60 sh -c '[ "$(BERTH_STORE=$1 "$2" task show "$3" --json | python3 -c "import json,sys; print(json.load(sys.stdin)[\"state\"])")" != PERFORMING ]' _ "$BERTH_STORE" "$BERTH" "$id"
st=$(task_field "$id" state)
check "a task printing while PostgreSQL restarted goes on and finishes ($st: $(task_field "$id" reason))" test "$st" = FINISHED
"$BERTH" task logs "$id" 2>/dev/null | grep -E '^(one|two|tick [0-9]+)$' >"$T_TMP/restart-log"
check "  ...with every line it printed, in order, none twice" sh -c '
  { echo one; for i in $(seq 1 30); do echo "tick $i"; done; echo two; } | diff - "$1"' _ "$T_TMP/restart-log"
timeout 60 tail --pid="$follower" -f /dev/null || kill "$follower" 2>/dev/null
wait "$follower"
frc=$?
check "  ...a follower on the store waits through the restart, says so once, and gets every line (exit $frc)" sh -c '
  test "$1" -eq 0 && test "$(grep -c "the store does not answer" "$3")" -eq 1 &&
  grep -E "^(one|two|tick [0-9]+)\$" "$2" | diff -q - "$4" >/dev/null' _ "$frc" "$T_TMP/follow-out" "$T_TMP/follow-err" "$T_TMP/restart-log"
wait_for 60 sh -c '[ "$(BERTH_STORE=$1 "$2" task show "$3" --json | python3 -c "import json,sys; print(json.load(sys.stdin)[\"state\"])")" = FINISHED ]' _ "$BERTH_STORE" "$BERTH" "$idi"
check "  ...and a task whose initialization ended while it was down goes on to perform and finish ($(task_field "$idi" state): $(task_field "$idi" reason))" \
  sh -c 'test "$1" = FINISHED && "$2" task logs "$3" 2>/dev/null | grep -qx ran-after-init' _ "$(task_field "$idi" state)" "$BERTH" "$idi"
short_ended() {
  local t
  for t in $(cat "$T_TMP/short"); do
    case $(task_field "$t" state) in FINISHED | FAILED | STOPPED | CANCELED) ;; *) return 1 ;; esac
  done
}
wait_for 75 short_ended
check "  ...and so do the short tasks that were in flight, none left active ($(for t in $(cat "$T_TMP/short"); do printf '%s ' "$(task_field "$t" state)"; done))" \
  short_ended
wait_for 60 is_state "$ide" FINISHED
ide_end=$(psql "$PGURL" -Atc "SELECT finished_at FROM tasks WHERE id = '$ide'")
ide_hist=$(psql "$PGURL" -Atc "SELECT at FROM task_transitions WHERE task_seq = (SELECT seq FROM tasks WHERE id = '$ide') AND state = 'FINISHED'")
check "  ...a task that ended while it was down is FINISHED with the time it ended, not the time that was written ($((ide_end - pg_stopped)) ms after the stop; PostgreSQL was back after $((pg_back - pg_stopped)) ms)" \
  sh -c 'test "$1" -gt "$2" && test "$1" -lt $(($3 - 1000)) && test "$4" = "$1"' _ "$ide_end" "$pg_stopped" "$pg_back" "$ide_hist"
check "  ...and no task failed as \"host lost\" meanwhile: a database down longer than the lease loses no host" \
  test "$(psql "$PGURL" -Atc "SELECT count(*) FROM tasks WHERE reason = 'host lost'")" = "$host_lost_before"
check "  ...the host started meanwhile joins once PostgreSQL is back" wait_for 30 sh -c '[ "$(BERTH_STORE=$1 "$2" host list --json | python3 -c "import json,sys; print({h[\"name\"]: h[\"state\"] for h in json.load(sys.stdin)[\"hosts\"]}.get(\"D\"))")" = alive ]' _ "$BERTH_STORE" "$BERTH"
check "  ...and the hosts said each fault once, not once a second while it lasted" sh -c '
  for f in "$1"/h-*.log; do grep -E "^berth: (webhooks|schedules): " "$f" | sort | uniq -c; done |
    awk "\$1 > 2 { print; bad = 1 } END { exit bad }"' _ "$T_TMP"
first=$(head -n 1 "$T_TMP/ids")
reads_ok=0
for i in 1 2 3 4; do # each on a connection of its own, served with what host C kept from before the restart
  api C task show "$first" >/dev/null 2>&1 && api C task logs "$first" 2>/dev/null | grep -q '^SPAN ' && reads_ok=$((reads_ok + 1))
done
check "  ...a host's store connections and log readers from before the restart answer at first try ($reads_ok of 4)" \
  test "$reads_ok" -eq 4
api B task run "$S" --json -- echo after-restart >"$T_TMP/ar.json" 2>/dev/null
check "  ...and the fleet runs tasks again" python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["state"] != "FINISHED")' "$T_TMP/ar.json"

# --- PostgreSQL hangs (its processes frozen) past the lease: no error, only late answers ---------------------------
S=$(stack_name s6)
id=$(api C task run "$S" --detach -- 'i=0; while [ $i -lt 30 ]; do i=$((i + 1)); echo "tick $i"; sleep 0.5; done')
wait_for 30 is_state "$id" PERFORMING
lost_before=$(psql "$PGURL" -Atc "SELECT count(*) FROM tasks WHERE reason = 'host lost'")
rejoins() { cat "$T_TMP"/h-*.log | grep -c 'lost its lease'; }
rejoins_before=$(rejoins)
pm=$(head -n 1 "$PGDATA_DIR/postmaster.pid")
frozen_pg="$pm $(ps -o pid= --ppid "$pm" | tr '\n' ' ')"
kill -STOP $frozen_pg
check "  (PostgreSQL does not answer while frozen)" sh -c '! timeout 2 psql "$1" -Atc "select 1" >/dev/null 2>&1' _ "$PGURL"
sleep 6 # past the hosts' lease (6 s), with the check's 2 s
kill -CONT $frozen_pg
wait_for 60 sh -c '[ "$(BERTH_STORE=$1 "$2" task show "$3" --json | python3 -c "import json,sys; print(json.load(sys.stdin)[\"state\"])")" != PERFORMING ]' _ "$BERTH_STORE" "$BERTH" "$id"
sleep 8 # a lease and more after it: a host that would wrongly look for lost hosts has done so
check "PostgreSQL frozen past the lease: the running task goes on and finishes ($(task_field "$id" state): $(task_field "$id" reason))" \
  is_state "$id" FINISHED
check "  ...and no host was declared lost for it (no task failed as host lost; $((rejoins_after = $(rejoins))) - $rejoins_before host(s) found they had lost their lease)" \
  sh -c 'test "$(psql "$1" -Atc "SELECT count(*) FROM tasks WHERE reason = '"'host lost'"'")" = "$2" && test "$3" = "$4"' \
  _ "$PGURL" "$lost_before" "$rejoins_after" "$rejoins_before"

# --- drain and SIGTERM: no new claims, the running task finishes ---------------------------------------------------
S=$(stack_name s5)
out=$(api A task run "$S" --detach -- 'sleep 2; echo done' 2>&1)
id=$(printf '%s\n' "$out" | tail -n 1)
wait_for 30 is_state "$id" PERFORMING
h=$(task_field "$id" host)
if [ -n "$h" ] && [ -n "${HPID[$h]:-}" ]; then
  kill -TERM "${HPID[$h]}"
  host_is() { test "$(host_state "$1")" = "$2"; }
  wait_for 5 host_is "$h" draining
  check "  ...a host shutting down shows draining while its task finishes ($(host_state "$h"))" \
    test "$(host_state "$h")" = draining
  wait_for 30 is_state "$id" FINISHED
  check "SIGTERM lets the host's PERFORMING task finish ($(task_field "$id" state))" is_state "$id" FINISHED
  timeout 20 tail --pid="${HPID[$h]}" -f /dev/null
  check "  ...and the host leaves the fleet" test "$(host_state "$h")" = none
else
  fail "SIGTERM: a task to end gracefully was PERFORMING on a host (${h:-none}; submission: $out; $(task_field "$id" state) $(task_field "$id" reason))"
fi
# --- a fleet of one host, SIGKILLed: no live host is left to declare it lost ----------------------------------------
psql -X -q "$PGURL" -c "CREATE DATABASE solo" >/dev/null
SOLO=$(python3 -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1]); print(p.scheme + "://" + p.netloc + "/solo" + ("?" + p.query if p.query else ""))' "$PGURL")
solo() { BERTH_STORE=$SOLO "$BERTH" "$@"; }
solo store migrate >/dev/null
solo image allow 'docker.io/berth/busybox:*' >/dev/null
solo stack create solo --image berth/busybox:latest >/dev/null
(export BERTH_STORE=$SOLO; start_host solo1 - --lease 5s; echo "${HPID[solo1]}" >"$T_TMP/solo1.pid")
HPID[solo1]=$(cat "$T_TMP/solo1.pid")
id=$(solo task run solo --detach -- 'sleep 60')
(export BERTH_STORE=$SOLO; wait_for 30 is_state "$id" PERFORMING)
kill -KILL "${HPID[solo1]}"
unset 'HPID[solo1]'
solo_lost() { test "$(export BERTH_STORE=$SOLO; host_state solo1)" = lost; }
wait_for 20 solo_lost
out=$(solo host drain solo1 2>&1)
check "a lost host can be drained: the drain is kept for when it comes back ($out)" \
  test "$out" = "host solo1 is lost: its drain is kept (it claims nothing when it comes back)"
sleep 6 # twice past its lease: no host reaped it, and it did not come back either
out=$(solo host remove solo1 2>&1)
check "a host shown lost that no live host declared lost is removed ($out)" \
  sh -c 'test "$(BERTH_STORE=$1 "$2" host list --json | grep -c solo1)" -eq 0' _ "$SOLO" "$BERTH"
state=$(solo task show "$id" --json | python3 -c 'import json,sys; t=json.load(sys.stdin); print(t["state"], t["reason"])')
check "  ...and its task is failed with it ($state)" test "$state" = "FAILED host lost"
docker ps -aq --filter "label=berth.task=$id" | xargs -r docker rm -f >/dev/null # the host never comes back for it

if [ "$T_FAIL" -gt 0 ]; then # what the hosts said, for the failure above
  for f in "$T_TMP"/h-*.log; do echo "--- $f (last 15 lines)"; tail -n 15 "$f"; done
fi
finish
