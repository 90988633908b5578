#!/usr/bin/env bash
# Live-output latency: a task printing a timestamped line every 100 ms for 20 s, 100 secret values registered.
# print -> display latency (p50, p99, max) for the CLI follower (`task run`) and the HTTP follower (`task logs
# --follow` through `berth serve`), side by side in the same run with `docker exec` of the same command (the floor:
# no redaction, no log) and with round 1's berth (commit 9a3a30f, the fixed-window redactor), built here in Release.
# Writes docs/benchmarks-latency.md.
#   bench/latency.sh        env: BUILD, LINES (200), OLD_REV (9a3a30f; "none" skips it)
. "$(dirname "$0")/lib.sh"
lines=${LINES:-200}
old_rev=${OLD_REV:-9a3a30f}
out=$SRC/docs/benchmarks-latency.md
export BERTH_HOME=$WORK/home
mkdir -p "$BERTH_HOME" "$WORK/proj"
echo x >"$WORK/proj/f"
cmd="for i in \$(seq $lines); do echo \"L \$(date +%s%3N) line \$i of the output, as wide as a log line usually is\"; sleep 0.1; done"
secrets=()
for i in $(seq 1 100); do secrets+=(--secret-env "LAT_$i=lat-secret-$i-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"); done

# stats: reads "L <ms> ..." lines as they arrive, prints "p50 p99 max n" of arrival - print (ms)
stats() { python3 -c '
import os, sys, time
buf, lags = b"", []
while True:
    c = os.read(0, 65536)
    now = time.time() * 1000
    if not c:
        break
    buf += c
    *done, buf = buf.split(b"\n")
    for l in done:
        f = l.split()
        if len(f) > 1 and f[0] == b"L":
            lags.append(now - int(f[1]))
lags.sort()
q = lambda p: lags[min(len(lags) - 1, int(p * len(lags)))]
print("%.0f %.0f %.0f %d" % (q(0.5), q(0.99), lags[-1], len(lags)) if lags else "- - - 0")
'; }

run_cli() { # run_cli BERTH STACK
  timeout 120 "$1" task run "$2" -- "$cmd" 2>/dev/null </dev/null | stats
}

echo "latency: berth CLI follower"
"$BERTH" stack create lat --image berth/runner:latest --project-dir "$WORK/proj" "${secrets[@]}" >/dev/null
cli=$(run_cli "$BERTH" lat)

echo "latency: berth HTTP follower"
port=$((27000 + $$ % 9000))
key=$("$BERTH" key create lat --role writer | tail -n 1)
"$BERTH" serve --listen "tcp:127.0.0.1:$port" >"$WORK/serve.log" 2>&1 &
srv=$!
trap 'kill $srv 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -s "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.1; done
id=$(BERTH_SERVER=http://127.0.0.1:$port BERTH_API_KEY=$key "$BERTH" task run lat --detach -- "$cmd")
http=$(BERTH_SERVER=http://127.0.0.1:$port BERTH_API_KEY=$key timeout 120 "$BERTH" task logs "$id" --follow \
  2>/dev/null </dev/null | stats)
kill $srv 2>/dev/null
wait $srv 2>/dev/null || true

echo "latency: docker exec (no berth)"
c=$(docker run -d --network none --label berth.bench=1 berth/runner:latest sleep 600)
dock=$(timeout 120 docker exec "$c" sh -c "$cmd" </dev/null | stats)
docker rm -f "$c" >/dev/null

old="- - - 0"
if [ "$old_rev" != none ]; then
  echo "latency: round 1 berth ($old_rev)"
  git -C "$SRC" worktree add -f "$WORK/old" "$old_rev" >/dev/null 2>&1
  cmake -S "$WORK/old" -B "$WORK/old/build" -DCMAKE_BUILD_TYPE=Release -DBERTH_TESTS=OFF >/dev/null
  cmake --build "$WORK/old/build" -j"$(nproc)" --target berth >/dev/null
  BERTH_HOME=$WORK/oldhome
  mkdir -p "$BERTH_HOME"
  "$WORK/old/build/berth" stack create lat --image berth/runner:latest --project-dir "$WORK/proj" "${secrets[@]}" \
    >/dev/null
  old=$(BERTH_HOME=$WORK/oldhome run_cli "$WORK/old/build/berth" lat)
  git -C "$SRC" worktree remove --force "$WORK/old" >/dev/null 2>&1 || true
fi

row() { # row NAME "p50 p99 max n"
  set -- "$1" $2
  echo "| $1 | $2 | $3 | $4 | $5 |"
}
{
  echo "# Live-output latency (issue 15)"
  echo
  echo "Measured $(date -u +%Y-%m-%d) on this machine ($(nproc) cores), dockerd $(docker version -f '{{.Server.Version}}'),"
  echo "image berth/runner:latest, 100 secret values with their encoded forms and the built-in patterns."
  echo "A task prints a line stamped with its clock (ms) every 100 ms for $((lines / 10)) s; the follower's reader notes"
  echo "when each line arrives. Command: \`bench/latency.sh\`."
  echo
  echo "| follower | p50 (ms) | p99 (ms) | max (ms) | lines |"
  echo "|---|---|---|---|---|"
  row "berth task run (CLI follower)" "$cli"
  row "berth task logs --follow through berth serve (HTTP)" "$http"
  row "docker exec, same command (no redaction, no log: the floor)" "$dock"
  row "round 1 berth ($old_rev, fixed-window redactor), task run" "$old"
  echo
  echo "Target: p99 < 150 ms for both berth followers (round 1: a line showed only when the next one came)."
  echo "What bounds it: the 30 ms reorder window that lets an \`::add-mask::\` on one stream cover the other"
  echo "(docs/security.md), then the supervisor's 10 ms tick and the followers' inotify wake-up."
} >"$out"
cat "$out"
