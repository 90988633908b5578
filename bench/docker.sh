#!/usr/bin/env bash
# Issue 2 benchmarks: exec streaming (1 GiB to /dev/null) through berth's client vs `docker exec` vs curl on the
# socket, and a 500 MiB / 20,000-file archive upload vs `docker cp`. Writes docs/benchmarks-docker.md.
#   bench/docker.sh      env: BUILD (build dir), RUNS (3), SIZE (bytes, 1 GiB)
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
SIZE=${SIZE:-1073741824}
OUT=${OUT:-$SRC/docs/benchmarks-docker.md}
cid=$(keepalive_container)
trap 'docker rm -f "$cid" >/dev/null 2>&1; rm -rf "$WORK"' EXIT
cmd="head -c $SIZE /dev/zero"

for i in $(seq 1 "$RUNS"); do
  timed b "$BUILD/bench/bench_exec" "$cid" "$cmd" >"$WORK/b.out"
  grep -q "bytes=$SIZE " "$WORK/b.out" || { echo "bench_exec lost bytes: $(cat "$WORK/b.out")" >&2; exit 1; }
  echo "$b_s $b_kib" >>"$WORK/berth.txt"
  timed c docker exec "$cid" sh -c "$cmd" >/dev/null
  echo "$c_s $c_kib" >>"$WORK/cli.txt"
  eid=$(dcurl -H 'Content-Type: application/json' \
    -d "{\"AttachStdout\":true,\"AttachStderr\":true,\"Cmd\":[\"sh\",\"-c\",\"$cmd\"]}" \
    "http://localhost/$API/containers/$cid/exec" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Id"])')
  timed u curl -sS --unix-socket "$SOCK" -H 'Content-Type: application/json' -d '{"Detach":false,"Tty":false}' \
    -o /dev/null "http://localhost/$API/exec/$eid/start"
  echo "$u_s $u_kib" >>"$WORK/curl.txt"
done
row() { # name file
  local s kib
  s=$(cut -d' ' -f1 "$2" | median)
  kib=$(cut -d' ' -f2 "$2" | sort -n | tail -n 1)
  printf '| %s | %s | %s | %s |\n' "$1" "$s" "$(mbps "$SIZE" "$s")" "$((kib / 1024))"
}

# upload: 20 files of 24 MiB + 19,980 files of 1 KiB in 200 directories
ws=$WORK/ws
python3 - "$ws" <<'PY'
import os, sys
root = sys.argv[1]
big = os.urandom(1 << 20)
for d in range(200):
    p = os.path.join(root, "d%03d" % d)
    os.makedirs(p, exist_ok=True)
    for f in range(100 if d < 199 else 80):
        with open(os.path.join(p, "f%03d.txt" % f), "wb") as fh:
            fh.write(os.urandom(1024))
for i in range(20):
    with open(os.path.join(root, "big%02d.bin" % i), "wb") as fh:
        for _ in range(24):
            fh.write(big)
PY
for i in $(seq 1 "$RUNS"); do
  docker exec "$cid" rm -rf /tmp/upload /tmp/ws
  timed ub "$BUILD/bench/bench_upload" "$cid" "$ws" >"$WORK/ub.out"
  echo "$ub_s $ub_kib" >>"$WORK/up-berth.txt"
  docker exec "$cid" rm -rf /tmp/upload /tmp/ws
  timed uc docker cp "$ws" "$cid:/tmp/" >/dev/null
  echo "$uc_s $uc_kib" >>"$WORK/up-cli.txt"
done
files=$(docker exec "$cid" sh -c 'find /tmp/ws -type f | wc -l')
upsize=$(du -sb "$ws" | cut -f1)

{
  echo "## Docker client (issue 2)"
  echo
  echo "Measured $(date -u +%Y-%m-%d) on this machine ($(nproc) cores), dockerd $(docker version -f '{{.Server.Version}}'),"
  echo "median of $RUNS runs, peak RSS is the largest seen. Command: \`bench/docker.sh\`."
  echo
  echo "### Exec streaming: \`$cmd\` to /dev/null"
  echo
  echo "| client | seconds | MB/s | peak RSS (MiB) |"
  echo "|---|---|---|---|"
  row "berth client + demultiplexer (bench_exec)" "$WORK/berth.txt"
  row "docker exec (CLI $(docker version -f '{{.Client.Version}}'))" "$WORK/cli.txt"
  row "curl on the socket (raw frames, no demultiplexing)" "$WORK/curl.txt"
  echo
  echo "Targets: berth within 10% of curl; peak RSS under 16 MiB whatever the output size."
  echo
  echo "### Archive upload: $((upsize / 1048576)) MiB in $files files"
  echo
  echo "| client | seconds | peak RSS (MiB) |"
  echo "|---|---|---|"
  for pair in "berth (workspace tar producer, chunked PUT, bench_upload):up-berth" "docker cp:up-cli"; do
    s=$(cut -d' ' -f1 "$WORK/${pair##*:}.txt" | median)
    kib=$(cut -d' ' -f2 "$WORK/${pair##*:}.txt" | sort -n | tail -n 1)
    printf '| %s | %s | %s |\n' "${pair%%:*}" "$s" "$((kib / 1024))"
  done
  echo
  echo "Target: no slower than docker cp, constant memory."
} >"$OUT"
cat "$OUT"
