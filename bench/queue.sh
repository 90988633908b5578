#!/usr/bin/env bash
# Issue 5 benchmark: 200 tasks of `true` over 10 stacks with a global limit of 2, submitted at once (every task
# goes through the FIFO per stack and the global slots), against the same 200 tasks run without coordination:
# two workers running their share back to back, each on its own stacks (nothing ever waits), and one worker
# running all 200 strictly one after another. Writes docs/benchmarks-queue.md.
#   bench/queue.sh      env: BUILD, N (200), STACKS (10)
. "$(dirname "$0")/lib.sh"
N=${N:-200}
STACKS=${STACKS:-10}
OUT=${OUT:-$SRC/docs/benchmarks-queue.md}
export BERTH_HOME=$WORK/home
trap 'rm -rf "$WORK"' EXIT
"$BERTH" image allow 'docker.io/berth/busybox:*' >/dev/null
for s in $(seq 1 "$STACKS"); do "$BERTH" stack create "q$s" --image berth/busybox:latest >/dev/null; done
"$BERTH" task run q1 -- true >/dev/null 2>&1 # warm up

now_ms() { date +%s%3N; }

# coordinated: all submitted at once, global limit 2
export BERTH_MAX_PARALLEL_TASKS=2
t0=$(now_ms)
for i in $(seq 1 "$N"); do
  "$BERTH" task run "q$(((i - 1) % STACKS + 1))" --detach -- true >>"$WORK/ids"
done
t_submitted=$(now_ms)
for id in $(cat "$WORK/ids"); do "$BERTH" task logs "$id" --follow >/dev/null 2>&1; done
t1=$(now_ms)
"$BERTH" task list --json --limit "$N" >"$WORK/coord.json"

# uncoordinated: 2 workers, each on its own stacks, back to back
unset BERTH_MAX_PARALLEL_TASKS
export BERTH_MAX_PARALLEL_TASKS=1000
worker() {
  local w=$1
  for i in $(seq 1 $((N / 2))); do
    "$BERTH" task run "q$(((i - 1) % (STACKS / 2) + 1 + w * (STACKS / 2)))" -- true >/dev/null 2>&1
  done
}
t2=$(now_ms)
worker 0 &
worker 1 &
wait
t3=$(now_ms)
# strictly one at a time
t4=$(now_ms)
for i in $(seq 1 "$N"); do "$BERTH" task run "q$(((i - 1) % STACKS + 1))" -- true >/dev/null 2>&1; done
t5=$(now_ms)

python3 - "$WORK/coord.json" "$N" "$t0" "$t_submitted" "$t1" "$t2" "$t3" "$t4" "$t5" "$OUT" <<'PY'
import json, sys, datetime, statistics
path, n, t0, tsub, t1, t2, t3, t4, t5, out = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:10]), sys.argv[10]
def ms(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp() * 1000
tasks = [t for t in json.load(open(path))["tasks"]][:n]
bad = [t for t in tasks if t["state"] != "FINISHED"]
waits = sorted(ms(t["started_at"]) - ms(t["created_at"]) for t in tasks if t["started_at"])
coord, unco, seq = (t1 - t0) / 1000, (t3 - t2) / 1000, (t5 - t4) / 1000
p = lambda q: waits[min(len(waits) - 1, int(q * len(waits)))] / 1000
with open(out, "w") as f:
    f.write("## Coordination (issue 5)\n\n")
    f.write("%d tasks of `true` (image berth/busybox:latest) over 10 stacks. Command: `bench/queue.sh`.\n\n" % n)
    f.write("| run | wall (s) | tasks/s |\n|---|---|---|\n")
    f.write("| coordinated: all submitted at once, FIFO per stack, global limit 2 | %.1f | %.2f |\n" % (coord, n / coord))
    f.write("| uncoordinated: 2 workers back to back, own stacks, no limit | %.1f | %.2f |\n" % (unco, n / unco))
    f.write("| one at a time, back to back | %.1f | %.2f |\n\n" % (seq, n / seq))
    f.write("Coordination cost against the 2 uncoordinated workers: %+.1f%% (target: under 10%%). " % ((coord / unco - 1) * 100))
    f.write("Submitting all %d took %.1f s of the coordinated run. " % (n, (tsub - t0) / 1000))
    f.write("Queue wait (submitted -> PREPARING): median %.1f s, p90 %.1f s, max %.1f s. " % (p(0.5), p(0.9), p(0.999)))
    f.write("Tasks not FINISHED: %d.\n" % len(bad))
print(open(out).read())
PY
