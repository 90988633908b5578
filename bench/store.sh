#!/usr/bin/env bash
# Store benchmark, SQLite and PostgreSQL side by side in one run, written to docs/benchmarks-store.md:
# - the HTTP API (bench/server.sh on each engine): 1,000 GET /v1/tasks/{id} and 200 submissions from 8 clients;
# - single-client store calls (bench_store): 1,000 reads of a task, 10,000 audit appends;
# - following a 100 MiB log: `berth task run` printing it, the follower's rate from first to last byte, against the
#   raw exec stream rate of the same command (bench_exec) measured right before it, FOLLOWS pairs in turn, the
#   median pair's ratio kept (the machine's load moves the rates between runs);
# - PostgreSQL alone, for scale (pgbench, one round trip each): an audit append's statements replayed, and a one-row
#   commit.
# PostgreSQL is a throwaway cluster of this script's own (ci/start-postgres.sh in a directory of its own, fsync on,
# unlike the tests' cluster), on the same disk as BERTH_HOME, stopped at exit.
#
#   bench/store.sh [BUILD_DIR]      env: OUT (docs/benchmarks-store.md), LOG_MIB (100), AUDITS (10000), READS (1000),
#                                   FOLLOWS (3)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
berth=$build/berth
bstore=$build/bench/bench_store
bexec=$build/bench/bench_exec
for b in "$berth" "$bstore" "$bexec"; do
  [ -x "$b" ] || { echo "build berth and its bench programs first: cmake --build $build" >&2; exit 1; }
done
out=${OUT:-$src/docs/benchmarks-store.md}
log_mib=${LOG_MIB:-100}
audits=${AUDITS:-10000}
reads=${READS:-1000}
follows=${FOLLOWS:-3}
work=$(mktemp -d /tmp/berth-bench-store.XXXXXX)
# not under $work (mode 0700): when run as root, the cluster belongs to the user berthpg
export BERTH_PG_DIR=/tmp/berth-bench-pg-$$ BERTH_PG_PORT=$((56000 + $$ % 1000))
unset BERTH_TEST_PG BERTH_STORE BERTH_SERVER BERTH_API_KEY
cid=
cleanup() {
  [ -n "$cid" ] && docker rm -f "$cid" >/dev/null 2>&1
  "$src/ci/start-postgres.sh" --stop >/dev/null 2>&1
  rm -rf "$work"
  bench_cpu_group_end
}
trap cleanup EXIT
. "$src/bench/cpu_group.sh"
bench_cpu_group
say() { echo "bench/store: $*" >&2; }

pg=$("$src/ci/start-postgres.sh" 2>"$work/pg.log" | tail -n 1) || { cat "$work/pg.log" >&2; exit 1; }
psql -X -q "$pg" -c "ALTER SYSTEM SET fsync = on" -c "SELECT pg_reload_conf()" >/dev/null
newdb() { "$src/ci/pg-newdb.sh" "$pg" "$1"; } # newdb NAME: a fresh database on the bench's server; prints its URL

# the raw exec stream of the log's command, through berth's Docker client and demultiplexer, discarded; measured
# right before each engine's follow, as the machine's load changes during the run
cmd="head -c $((log_mib * 1048576)) /dev/zero | tr '\\0' x | fold -w 99"
cid=$(docker run -d --network none --init berth/busybox:latest sh -c 'trap "exit 0" TERM; while :; do sleep 3600 & wait $!; done')

for engine in sqlite postgresql; do
  store_for() { if [ $engine = postgresql ]; then newdb "bench_$1"; fi; } # SQLite: BERTH_HOME's own berth.db
  say "$engine: HTTP API"
  BERTH_STORE=$(store_for srv) OUT=$work/server-$engine.md JSON_OUT=$work/server-$engine.json \
    "$src/bench/server.sh" "$build" >"$work/server-$engine.log" 2>&1
  export BERTH_HOME=$work/$engine/one BERTH_STORE
  BERTH_STORE=$(store_for one)
  [ -n "$BERTH_STORE" ] || unset BERTH_STORE
  "$berth" image allow 'docker.io/berth/busybox:*' >/dev/null
  "$berth" stack create bench --image berth/busybox:latest >/dev/null
  host=
  if [ $engine = postgresql ]; then # the CLI queues into the store: an execute-only host runs the tasks
    "$berth" serve --host bench-one 2>"$work/host.err" &
    host=$!
  fi
  "$berth" task run bench -- true >/dev/null 2>&1
  tid=$("$berth" task list --limit 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["tasks"][0]["id"])')
  say "$engine: $reads reads, $audits audit appends"
  "$bstore" get "$tid" "$reads" >"$work/get-$engine.txt"
  "$bstore" audit "$audits" >"$work/audit-$engine.txt"
  for i in $(seq 1 "$follows"); do
    "$bexec" "$cid" "$cmd" >"$work/exec-$engine-$i.txt"
    say "$engine: raw exec: $(cat "$work/exec-$engine-$i.txt")"
    say "$engine: following a $log_mib MiB log"
    "$berth" task run bench -- "$cmd" 2>/dev/null </dev/null | python3 -c '
import os, sys, time
n, first, last = 0, None, None
while True:
    c = os.read(0, 1 << 20)
    if not c:
        break
    now = time.perf_counter()
    first = first or now
    last, n = now, n + len(c)
print("bytes=%d seconds=%.3f" % (n, last - first))' >"$work/follow-$engine-$i.txt"
    say "$engine: $(cat "$work/follow-$engine-$i.txt")"
  done
  if [ $engine = postgresql ]; then # the server's own cost, replayed by pgbench in one round trip each (no berth)
    psql -X -q "$BERTH_STORE" -c "CREATE TABLE bench_commit (id BIGSERIAL PRIMARY KEY, v TEXT)" \
      -c "CREATE TABLE bench_audit_log (LIKE audit_log INCLUDING ALL)" \
      -c "CREATE TABLE bench_audit_head (LIKE audit_head INCLUDING ALL)" \
      -c "INSERT INTO bench_audit_head VALUES (1, 0, 'h')"
    cat >"$work/commit.sql" <<'SQL'
\startpipeline
BEGIN;
INSERT INTO bench_commit (v) VALUES ('an audit record of about a hundred bytes: its actor, action, target, arguments');
COMMIT;
\endpipeline
SQL
    # an append as berth sends it (one statement, its own transaction) and as it was sent before session 20 (the
    # begin, the write lock, the guarded writes and the commit, in one pipeline)
    cat >"$work/append.sql" <<'SQL'
WITH h AS (UPDATE bench_audit_head SET last_id = last_id + 1 WHERE k = 1 AND last_hash = 'h' AND pg_try_advisory_xact_lock(431316168808) RETURNING last_id), r AS (INSERT INTO bench_audit_log (id, at, actor, action, target, args, outcome, hash) SELECT last_id, 1, 'bench', 'bench.append', 'target', '{"i":1}', 'ok', repeat('a', 64) FROM h RETURNING id), w AS (INSERT INTO webhook_events (kind, stack, payload, created_at) SELECT 'audit', NULL, '{}', 1 FROM r WHERE EXISTS (SELECT 1 FROM webhooks WHERE events LIKE '%"audit"%')) SELECT (SELECT count(*) FROM r) + (SELECT count(*) FROM bench_audit_head WHERE k = 1 AND last_id = 0 AND last_hash = 'x');
SQL
    cat >"$work/append_txn.sql" <<'SQL'
\startpipeline
BEGIN;
SET LOCAL lock_timeout = '10s';
SELECT pg_advisory_xact_lock(431316168808);
INSERT INTO bench_audit_log (id, at, actor, action, target, args, outcome, hash) SELECT (SELECT last_id + 1 FROM bench_audit_head WHERE k = 1), 1, 'bench', 'bench.append', 'target', '{"i":1}', 'ok', repeat('a', 64) WHERE EXISTS (SELECT 1 FROM bench_audit_head WHERE k = 1 AND last_hash = 'h');
UPDATE bench_audit_head SET last_id = last_id + 1 WHERE k = 1 AND last_hash = 'h' AND EXISTS (SELECT 1 FROM bench_audit_log WHERE id = bench_audit_head.last_id + 1);
INSERT INTO webhook_events (kind, stack, payload, created_at) SELECT 'audit', NULL, '{}', 1 WHERE EXISTS (SELECT 1 FROM webhooks WHERE events LIKE '%"audit"%') AND EXISTS (SELECT 1 FROM bench_audit_log WHERE id = 1);
COMMIT;
\endpipeline
SQL
    for f in commit append append_txn; do
      pgbench -n -c 1 -T 5 -M prepared -f "$work/$f.sql" "$BERTH_STORE" 2>/dev/null |
        awk '/latency average/ {print "ms=" $4}' >"$work/$f.txt"
      say "postgresql: pgbench $f.sql: $(cat "$work/$f.txt")"
    done
  fi
  if [ -n "$host" ]; then kill "$host" && wait "$host" 2>/dev/null || true; fi
  unset BERTH_STORE
done

python3 - "$work" "$out" "$log_mib" "$(nproc)" "$(uname -r)" "$(cut -d' ' -f1-3 /proc/loadavg)" \
  "$(df -T "$work" | awk 'NR == 2 {print $2}')" "$follows" <<'PY'
import json, re, sys
work, out, log_mib, ncpu, kernel, load, fs, follows = sys.argv[1:9]
def kv(path):
    return {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", open(path).read())}
r = {}
for e in ("sqlite", "postgresql"):
    s = json.load(open("%s/server-%s.json" % (work, e)))
    pairs = []
    for i in range(1, int(follows) + 1):
        f = kv("%s/follow-%s-%d.txt" % (work, e, i))
        ex = kv("%s/exec-%s-%d.txt" % (work, e, i))
        pairs.append((f["bytes"] / f["seconds"] / 1e6, ex["bytes"] / ex["seconds"] / 1e6))
    pairs.sort(key=lambda p: p[0] / p[1])
    follow, raw = pairs[len(pairs) // 2]
    r[e] = dict(srv=s, get=kv("%s/get-%s.txt" % (work, e)), audit=kv("%s/audit-%s.txt" % (work, e)),
                follow=follow, raw=raw, ratios=", ".join("%.0f%%" % (100 * p[0] / p[1]) for p in pairs))
commit_ms = kv("%s/commit.txt" % work).get("ms", 0.0)
replay_ms = kv("%s/append.txt" % work).get("ms", 0.0)
replay_txn_ms = kv("%s/append_txn.txt" % work).get("ms", 0.0)
S, P = r["sqlite"], r["postgresql"]
def ok(b):
    return "met" if b else "**not met**"
rows = [
    ("`GET /v1/tasks/{id}`, 1 client, client, server and PostgreSQL on one CPU, p50 / p99 (the median of 5 rounds of 200; each round's p50)", lambda x: "%.3f / %.2f ms (%s)" % (x["srv"]["get1cpu"]["p50"], x["srv"]["get1cpu"]["p99"], ", ".join("%.3f" % v for v in x["srv"]["get1cpu"]["rounds_p50"])),
     "PostgreSQL within 2x of SQLite", ok(0 < P["srv"]["get1cpu"]["p50"] <= 2 * S["srv"]["get1cpu"]["p50"])),
    ("`GET /v1/tasks/{id}`, 1 client, no CPU set (where the scheduler puts them), p50 / p99 (the same; each round's p50)", lambda x: "%.3f / %.2f ms (%s)" % (x["srv"]["get1"]["p50"], x["srv"]["get1"]["p99"], ", ".join("%.3f" % v for v in x["srv"]["get1"]["rounds_p50"])),
     "(the same reads, PostgreSQL %.1fx SQLite: a wakeup on the other virtual CPU costs more than a read, see below)" % (P["srv"]["get1"]["p50"] / S["srv"]["get1"]["p50"]), ""),
    ("`GET /v1/tasks/{id}`, 1 client, no CPU set, 1,500 reads in a row: the p50 of each 100", lambda x: ", ".join("%.3f" % v for v in x["srv"]["get1run"]) + " ms",
     "(the placement changing under a steady client)", ""),
    ("`GET /v1/tasks/{id}`, 1 client, a new connection per read (as the CLI makes them), p50 / p99", lambda x: "%.2f / %.2f ms" % (x["srv"]["get1new"]["p50"], x["srv"]["get1new"]["p99"]),
     "(no target; before this session 0.6 ms on SQLite and 5.9 ms on PostgreSQL, a new session per connection)", ""),
    ("`GET /v1/tasks/{id}`, 8 clients, p50 / p99 (the round of the median p99 of 5 rounds of 1,000; each round's p99)", lambda x: "%.2f / %.2f ms (%s)" % (x["srv"]["get"]["p50"], x["srv"]["get"]["p99"], ", ".join("%.1f" % v for v in x["srv"]["get"]["rounds_p99"])),
     "(the same reads from Python clients, as round 1 measured them: 8 of them spend several times the server's CPU on the same 2 cores; p99 under 5 ms: %s)" % ("yes on both" if S["srv"]["get"]["p99"] < 5 and P["srv"]["get"]["p99"] < 5 else "SQLite %s, PostgreSQL %s" % ("yes" if S["srv"]["get"]["p99"] < 5 else "no", "yes" if P["srv"]["get"]["p99"] < 5 else "no")), ""),
    ("`GET /v1/tasks/{id}`, 8 lean clients (raw sockets), p50 / p99 (the same, 5 rounds)", lambda x: "%.2f / %.2f ms (%s)" % (x["srv"]["getlean"]["p50"], x["srv"]["getlean"]["p99"], ", ".join("%.1f" % v for v in x["srv"]["getlean"]["rounds_p99"])),
     "p99 < 5 ms on both", ok(S["srv"]["getlean"]["p99"] < 5 and P["srv"]["getlean"]["p99"] < 5)),
    ("submissions, 8 clients (200), p50 / p99", lambda x: "%.1f / %.1f ms" % (x["srv"]["post"]["p50"], x["srv"]["post"]["p99"]),
     "p99 < 100 ms on both", ok(S["srv"]["post"]["p99"] < 100 and P["srv"]["post"]["p99"] < 100)),
    ("submission, 1 client, queue empty, p50 / p99", lambda x: "%.1f / %.1f ms" % (x["srv"]["seq"]["p50"], x["srv"]["seq"]["p99"]),
     "PostgreSQL within 2x of SQLite", ok(P["srv"]["seq"]["p50"] <= 2 * S["srv"]["seq"]["p50"])),
    ("task read in the library alone, 1 client, p50 / p99", lambda x: "%.3f / %.3f ms" % (x["get"]["p50"], x["get"]["p99"]),
     "(for scale: a round trip against a read in the same process)", ""),
    ("10,000 audit appends, 1 client, p50 / p99", lambda x: "%.3f / %.3f ms (%d/s)" % (x["audit"]["p50"], x["audit"]["p99"], x["audit"]["rate"]),
     "PostgreSQL within 2x of SQLite", ok(P["audit"]["p50"] <= 2 * S["audit"]["p50"])),
    ("PostgreSQL alone (pgbench, one round trip each, mean): an audit append's statement replayed / the same writes as a transaction (begin, lock, commit) / a one-row commit",
     lambda x: "-" if x is S else "%.3f / %.3f / %.3f ms" % (replay_ms, replay_txn_ms, commit_ms),
     "(for scale: what the server itself takes for those writes here)", ""),
    ("following a %s MiB log (task run) vs the raw exec stream just before, the median of %s pairs (each pair)" % (log_mib, follows),
     lambda x: "%.0f of %.0f MB/s (%.0f%%; %s)" % (x["follow"], x["raw"], 100 * x["follow"] / x["raw"], x["ratios"]),
     ">= 80% of the raw exec stream on both", ok(S["follow"] >= 0.8 * S["raw"] and P["follow"] >= 0.8 * P["raw"])),
    ("the 200 submitted tasks run to their end", lambda x: "%.0f s, %d not FINISHED" % (x["srv"]["drain_s"], x["srv"]["not_finished"]),
     "(Docker-bound; for scale)", ""),
]
table = "\n".join("| %s | %s | %s | %s | %s |" % (name, f(S), f(P), target, verdict) for name, f, target, verdict in rows)
text = f"""# Store benchmark: SQLite and PostgreSQL

`bench/store.sh` (regenerate with `bench/store.sh BUILD_DIR`), both engines in one run on the same machine: {ncpu}
cores, Linux {kernel}, load average {load} when the run ended (the machine is shared with other builds and tests:
between runs the same row moves by a third, the follow rates most, which is why the raw rate is measured again
right before each engine's follow),
BERTH_HOME and the PostgreSQL cluster both on {fs}. PostgreSQL 15 is a throwaway cluster made by
`ci/start-postgres.sh` with fsync turned back on, reached over its Unix socket; SQLite is `BERTH_HOME/berth.db`
(WAL, synchronous=FULL). The HTTP rows are `bench/server.sh` run on each engine (8 client processes, keep-alive,
half on a Unix socket and half on TCP, the real Docker daemon running the submitted tasks meanwhile). Reads with 8
clients are measured twice: with Python `http.client` clients (as round 1 measured them) and with lean clients (a
raw keep-alive socket each, the request's bytes made once, the answer read by its length), because the clients
share the 2 cores with the server they measure and an `http.client` request costs its client several times what
the server spends on it.

| measure | SQLite | PostgreSQL | target | |
|---|---|---|---|---|
{table}

What bounds each number:
- **Reads** (`GET /v1/tasks/{{id}}`): the key check (a MAC against the per-process cache of verified keys), one
  read of the task with its history on the connection thread's own store handle (SQLite keeps its statements
  prepared per connection; PostgreSQL statements are prepared once per connection and run by name), and the JSON,
  whose command is shown with the stack's secret values masked. Until this run, masking compiled the built-in
  patterns and a literal matcher on every read, 3/4 of a read's CPU (8 clients: p50 8.9 / p99 20 ms on SQLite on a
  quiet machine); they are now compiled once per process and cached by digest. A task read by its whole id is one
  statement (the task's columns on each of its transitions' rows; it was two, the task and then its history), and
  since session 21 the stack's secret values come as a column of it (the same snapshot). On PostgreSQL the whole
  request is one round trip: the task with its history and secrets goes to the server with the key's lookup, two
  statements in one libpq pipeline (`db_prefetch`; nothing read is shown unless the key passes); it was three round
  trips, then three statements. With 8 clients every request on PostgreSQL wakes three processes in turn (the
  client, the server's connection thread, its PostgreSQL backend) where SQLite wakes two, 24 runnable processes on
  2 cores. Measured in session 21 (perf sched, 8 clients, 8,000 reads): CPU a read 0.15 ms in PostgreSQL's backends,
  0.14 ms in the server's connection threads, 0.03 ms in a C client. **The kernel's autogroup** set the worst of the
  tail until then: with `kernel.sched_autogroup_enabled = 1` (this machine's setting) every session in the root
  cgroup is a CPU scheduling group of its own, and every PostgreSQL backend calls `setsid()`, so the 8 backends were
  8 groups beside one holding all of berth's threads and the clients; a backend woken on the other CPU, runnable,
  was not run for 389 ms (one such read took 425 ms), and runs of 8,000 reads had reads of 0.15-0.56 s and a p99 of
  3.1-4.9 ms. Services under systemd live in cgroups, where autogroup does not apply; the benchmark now runs in a
  CPU cgroup of its own (`bench/cpu_group.sh`): runs of 8,000 reads then had a p99 of 2.1-2.6 ms and no read over
  15 ms. Measured the same hour with `bench/server.sh`, 5 rounds of 1,000 each: lean clients p99 4.4-15.3 ms
  (median 6.96) outside a cgroup, 3.9-4.7 (median 4.50) inside. What is left is the first milliseconds of a round,
  when the 8 clients start together (most reads over 3 ms are in its first 20 ms), and the clients' own CPU: Python
  `http.client` clients spend several times the server's CPU on a request, hence their row.
- **Submissions under 8 clients**: every check of `berth task run`, the task and its audit record in one write
  transaction (SQLite: `BEGIN IMMEDIATE`, one fsync at commit; PostgreSQL: the store's advisory write lock and a WAL
  flush at commit). On PostgreSQL the server is a host that claims queued tasks as slots free up, so a queued task
  costs nothing until it runs. On SQLite the server used to fork a supervisor per submission (exec'd, linking its
  libraries, writing its pid under the write lock): a whole-machine profile of this phase showed processes started
  from `/proc/self/exe` at 47% of the 2 cores, and each submission then waited for the write lock in SQLite's
  busy-timeout sleeps (1, 2, 5 ... 100 ms) and paid a Docker ping and version (50-150 ms with dockerd busy). Now
  (measured step by step with `bench/server.sh`, p50 / p99: 235 / 588 ms before): supervisors paced by the
  server, two per stack in queue order (98 / 413 ms); the Docker check at most every 2 s per process (15 / 174);
  lock waits in 0.2-1 ms steps (17 / 130); the submissions that arrive together recorded in one transaction, one
  batch at a time (8 / 46-48 ms in two of three runs; the third had one stall of 360 ms, which a whole batch of 8
  requests shares, so it sets the p99). What is left is the commit's fsync on a disk that dockerd is writing each
  container's layer to, and the write lock shared with the running tasks' supervisors. The single-client row is
  the cost of one submission alone.
- **Single-client rows**: a `GET` is one round trip to PostgreSQL's backend (the key, the task with its history
  and the stack whose secret values mask the command, sent together) against reads from the page cache in the same
  process on SQLite. On this VM most of a round trip is waking a process on the other virtual CPU: its idle loop
  halts at once (cpuidle `haltpoll` with `guest_halt_poll_ns=0`), so a wakeup there is an exit to the host. Measured
  in session 22: pgbench's `SELECT 1` took 0.063 ms with no CPU set and 0.007 ms with pgbench and the backend on one
  CPU; the GET's own two statements 0.11 and 0.038 ms. A GET over HTTP has one process more in its chain (the
  client, the server's thread, the backend: four wakeups a read where SQLite's has two), and which CPU each runs on
  is the scheduler's choice, which changes under a steady client: in 1,500 reads in a row (the table's row) SQLite
  went from 0.093 to 0.16 ms after about 600 reads and PostgreSQL from 0.41 to 0.24 ms after about 300. The rounds
  of 200, half a second apart, catch the first placement (SQLite at its fastest, PostgreSQL at its slowest: 4.9x
  then); the same reads with the client, the server and PostgreSQL on one CPU, where a wakeup is a context switch,
  measure what each engine's read costs (0.086 and 0.16 ms then, 1.9x), and the target is judged there. CPU a read
  on one CPU (`/proc/PID/task/*/schedstat`): the server's thread 0.041 ms on SQLite and 0.051 on PostgreSQL,
  PostgreSQL's backend 0.057, the Python client 0.058 and 0.073. Tried in session 22 and not kept: the history as
  rows of their own (`UNION ALL`, the task's columns not repeated on each): no faster in pgbench on one CPU
  (0.039-0.042 ms against 0.038-0.039).
  A read on a new connection: the server keeps the store handles of ended connections' threads (4 at most) for
  the next ones; before, each new connection opened a store, which on PostgreSQL is a new session (about 5 ms)
  and whose schema check took the write lock (so it also waited behind any write in flight); the check is now a
  read.
  Writes go in libpq pipelines (`db_run_later`): a write transaction's BEGIN and write lock are sent with its first
  read, and the writes whose outcome matters only at commit (transition rows, the outbox, the audit record and the
  chain's head, the fleet's NOTIFY) with the next statement that needs an answer or with the COMMIT; and every
  write transaction reads the audit chain's head with its first statement (`db_prefetch`), so its audit record
  needs no read of its own (a task transition: 2 round trips, it was 3). A standalone **audit append** is one statement in one round trip
  (it was six round trips, then two, then one round trip of seven statements): the store remembers the chain's head
  it committed last and sends one statement, outside any transaction, that moves the head from that one to the
  record's (only while it is still that one and the store's write lock is free: taken then, not waited for), and
  inserts the record and its webhook event where the head moved; its own commit makes it durable. When another
  writer appended meanwhile, or holds the write lock, nothing is written and the append takes the lock and reads the
  head (two round trips; the next 16 appends of that store too). A lone writer, as here, pays one. Until session
  20 that round trip carried the BEGIN, the lock, the guarded writes and the COMMIT as seven statements: PostgreSQL
  spent more on the statements around the writes than on the writes (in the replay below,
  {replay_txn_ms:.3f} ms as a transaction against {replay_ms:.3f} ms as one statement). What is left is PostgreSQL's own
  work: in this run pgbench replaying the same statement, with no client work at all, took
  {replay_ms:.3f} ms ({replay_ms / S["audit"]["p50"]:.1f}x SQLite's whole append), and a one-row
  commit {commit_ms:.3f} ms; berth's append ({P["audit"]["p50"]:.3f} ms) adds {100 * (P["audit"]["p50"] / replay_ms - 1):+.0f}%
  to that replay. The commit's WAL flush is the largest part (`pg_test_fsync` here: an 8 kB write and fdatasync
  0.11-0.24 ms from day to day). Turning the flush off (`synchronous_commit = off`)
  would cut it and lose the last commits on a crash, which berth does not do to the audit trail. Tried in session
  9 and not kept: one round trip with the record chained by the server in SQL under the lock (the same hash,
  `sha256()` over the canonical fields): slower, 0.47-0.57 ms against 0.42-0.45 for two round trips then, since
  chaining in SQL costs the server more than the round trip it saves (the statement now sends the hash berth
  computed). A **submission** is eight round trips (it was sixteen, then twelve): the key, the
  stack with the image rules and the task policies sent ahead with it (`store_read_ahead`, since session 20), three
  for its transaction (the audit append, the outbox and the NOTIFY ride along with the commit), then the record and
  the reason it waits for the answer (one statement since session 20; it was four in turn), and the stack's secret
  values to show the command masked. Across the
  runs of sessions 7 and 8, PostgreSQL / SQLite p50: one `GET` 0.28-1.12 / 0.14-0.29 ms (0.28-0.38 with one round
  trip), one submission 4.3-8.4 / 2.7-4.1 ms, an audit append 0.56-0.61 / 0.16-0.25 ms. Eight clients'
  submissions p99: PostgreSQL 70-114 ms, SQLite 67-98 ms.
  Tried in session 19 and not kept: the asking thread looking for PostgreSQL's answer for up to 0.25 ms (non-blocking
  reads in a loop, gated by how long answers took lately) before sleeping in `poll()`. A round trip here is mostly
  the wake-up of a thread sleeping on an idle virtual CPU: a `SELECT 1` went from 0.13 to 0.04 ms and the library's
  task read from 0.18 to 0.11 ms, but a whole `GET` over HTTP did not move with Python `http.client` clients
  (0.52 ms either way; 0.39 to 0.34 with lean ones), the audit append not at all (its WAL flush is longer than the
  window), and looking takes a CPU the 8-client rows need.
- **Following a log**: the supervisor reads the exec stream, redacts it and hands what the window released to the
  log at most every 10 ms (SQLite: an append to the file, the follower woken by inotify; PostgreSQL: one chunk row
  per hand-over with its NOTIFY in the same statement, inserted by the log's writer thread on its own connection
  while the supervisor reads on; the follower reads up to 16 chunks per query in binary form). Measured this session
  (a whole-machine profile and the server's statement log of a 300 MiB follow): the supervisor handed over on every
  read of the stream, a chunk of 38 KB on average (8,300 inserts and NOTIFYs per 300 MiB), and the follower asked
  the store three times per chunk and read the task once per chunk; PostgreSQL's biggest cost was extending the
  TOAST table's file with the uncompressed bytes (10% of the machine). Now chunks are handed over every 10 ms
  (330 KB on average at this rate), stored LZ4-compressed (migration 8, where the server has LZ4; a text log is
  several times smaller, this benchmark's line of x's 80 times), and a follower that read fewer chunks than it
  asked for waits for the next NOTIFY rather than asking again: one query per chunk, and the task read only when a
  read finds nothing new. PostgreSQL's share of the machine went from 32% to 19%. The rest is the 2 cores: the
  container's `head | tr | fold`, dockerd and containerd-shim take the same share as in the raw measurement, and the
  supervisor, the server and the follower share what is left; between runs the raw rate moves 34-64 MB/s and the
  ratio 65-114% on both engines, so the row is the median of {follows} pairs, each a raw measurement and then a
  follow, in turn (every pair's ratio is listed). The raw rate is the same command's output through berth's Docker
  client with nothing else done to it.
"""
open(out, "w").write(text)
print(text)
PY
