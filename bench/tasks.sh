#!/usr/bin/env bash
# Issue 4 benchmarks: task overhead (`berth task run` of `true` on a stack with a 200-file workspace and one init
# command) vs the same steps through the docker CLI and through curl on the socket; and 1 GiB of task output end
# to end (redacted, stored, printed to /dev/null) vs `docker exec` to /dev/null. Writes docs/benchmarks-tasks.md.
#   bench/tasks.sh      env: BUILD, RUNS (10), SIZE (1 GiB)
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-10}
SIZE=${SIZE:-1073741824}
OUT=${OUT:-$SRC/docs/benchmarks-tasks.md}
export BERTH_HOME=$WORK/home
IMG=berth/busybox:latest
ws=$WORK/ws
mkdir -p "$ws"
for i in $(seq 1 200); do head -c 2048 /dev/urandom >"$ws/file$i.txt"; done
"$BERTH" image allow "docker.io/berth/busybox:*" >/dev/null
"$BERTH" stack create bench --image "$IMG" --project-dir "$ws" --init true >/dev/null
cid=""
trap 'docker rm -f $cid >/dev/null 2>&1; rm -rf "$WORK"' EXIT

cat >"$WORK/cli.sh" <<SH
#!/bin/sh
set -e
cid=\$(docker create --network none --cap-drop ALL --security-opt no-new-privileges --init --pids-limit 1024 \
  --memory 2g --memory-swap 2g $IMG sh -c 'while :; do sleep 3600; done')
docker start \$cid >/dev/null
docker cp $ws/. \$cid:/mnt/workspace/
docker exec -w /mnt/workspace \$cid sh -c true
docker exec -w /mnt/workspace \$cid sh -c true
docker rm -f \$cid >/dev/null
SH
cat >"$WORK/curl.sh" <<SH
#!/bin/sh
set -e
c() { curl -sS --unix-socket $SOCK "\$@"; }
u=http://localhost/$API
cid=\$(c -H 'Content-Type: application/json' -d '{"Image":"$IMG","Entrypoint":["sh","-c"],"Cmd":["while :; do sleep 3600; done"],"HostConfig":{"NetworkMode":"none","CapDrop":["ALL"],"SecurityOpt":["no-new-privileges"],"Init":true,"PidsLimit":1024,"Memory":2147483648,"MemorySwap":2147483648}}' \$u/containers/create | sed 's/.*"Id":"\([0-9a-f]*\)".*/\1/')
tar -C $ws -cf - . | c -X PUT -T - -H 'Content-Type: application/x-tar' "\$u/containers/\$cid/archive?path=/mnt/workspace" >/dev/null
c -X POST \$u/containers/\$cid/start
for i in 1 2; do
  e=\$(c -H 'Content-Type: application/json' -d '{"AttachStdout":true,"AttachStderr":true,"WorkingDir":"/mnt/workspace","Cmd":["sh","-c","true"]}' \$u/containers/\$cid/exec | sed 's/.*"Id":"\([0-9a-f]*\)".*/\1/')
  c -H 'Content-Type: application/json' -d '{"Detach":false,"Tty":false}' -o /dev/null \$u/exec/\$e/start
  c \$u/exec/\$e/json >/dev/null
done
c -X DELETE "\$u/containers/\$cid?force=1&v=1"
SH
chmod +x "$WORK/cli.sh" "$WORK/curl.sh"
hyperfine --warmup 2 --runs "$RUNS" -N --export-json "$WORK/overhead.json" \
  -n "berth task run (200-file workspace, 1 init command)" "$BERTH task run bench -- true" \
  -n "docker CLI script (create, start, cp, exec init, exec, rm -f)" "$WORK/cli.sh" \
  -n "curl script on the socket (same steps)" "$WORK/curl.sh" >"$WORK/hyperfine.txt" 2>&1 || {
  cat "$WORK/hyperfine.txt"
  exit 1
}

# 1 GiB of output end to end; the supervisor reports its own peak RSS through BERTH_RUSAGE_DIR
gen="yes 'terraform: module.vpc.aws_subnet.private[2]: Still creating... [10s elapsed] lorem ipsum dolor' | head -c $SIZE"
export BERTH_RUSAGE_DIR=$WORK/rusage
mkdir -p "$BERTH_RUSAGE_DIR"
for i in 1 2 3; do
  timed f "$BERTH" task run bench --skip-init -- "$gen" >/dev/null 2>"$WORK/f.err"
  sup=$(cat "$BERTH_RUSAGE_DIR"/*.rusage | sort -n | tail -n 1)
  echo "$f_s $f_kib $sup" >>"$WORK/out-berth.txt"
  rm -f "$BERTH_RUSAGE_DIR"/*.rusage "$BERTH_HOME"/logs/*.log
done
cid=$(keepalive_container)
for i in 1 2 3; do
  timed d docker exec "$cid" sh -c "$gen" >/dev/null
  echo "$d_s $d_kib" >>"$WORK/out-cli.txt"
  body=$(python3 -c 'import json,sys; print(json.dumps({"AttachStdout":True,"AttachStderr":True,"Cmd":["sh","-c",sys.argv[1]]}))' "$gen")
  eid=$(dcurl -H 'Content-Type: application/json' -d "$body" "http://localhost/$API/containers/$cid/exec" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Id"])')
  timed u curl -sS --unix-socket "$SOCK" -H 'Content-Type: application/json' -d '{"Detach":false,"Tty":false}' \
    -o /dev/null "http://localhost/$API/exec/$eid/start"
  echo "$u_s $u_kib" >>"$WORK/out-curl.txt"
done

{
  echo "## Tasks (issue 4)"
  echo
  echo "Measured $(date -u +%Y-%m-%d) on this machine ($(nproc) cores), dockerd $(docker version -f '{{.Server.Version}}'),"
  echo "image $IMG. Command: \`bench/tasks.sh\`."
  echo
  echo "### Task overhead: \`true\` with a 200-file workspace ($RUNS runs each, hyperfine)"
  echo
  echo "| way | mean (s) | stddev (s) | min (s) |"
  echo "|---|---|---|---|"
  python3 - "$WORK/overhead.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print("| %s | %.3f | %.3f | %.3f |" % (r["command"], r["mean"], r["stddev"], r["min"]))
PY
  echo
  echo "Target: berth within 10% of the curl script."
  echo
  echo "### 1 GiB of task output, end to end to /dev/null (median of 3)"
  echo
  echo "| way | seconds | MB/s | peak RSS (MiB) |"
  echo "|---|---|---|---|"
  s=$(cut -d' ' -f1 "$WORK/out-berth.txt" | median)
  cli_kib=$(cut -d' ' -f2 "$WORK/out-berth.txt" | sort -n | tail -n 1)
  sup_kib=$(cut -d' ' -f3 "$WORK/out-berth.txt" | sort -n | tail -n 1)
  echo "| berth task run (redacted, stored, followed) | $s | $(mbps "$SIZE" "$s") | follower $((cli_kib / 1024)), supervisor $((sup_kib / 1024)) |"
  s=$(cut -d' ' -f1 "$WORK/out-cli.txt" | median)
  kib=$(cut -d' ' -f2 "$WORK/out-cli.txt" | sort -n | tail -n 1)
  echo "| docker exec | $s | $(mbps "$SIZE" "$s") | $((kib / 1024)) |"
  s=$(cut -d' ' -f1 "$WORK/out-curl.txt" | median)
  kib=$(cut -d' ' -f2 "$WORK/out-curl.txt" | sort -n | tail -n 1)
  echo "| curl on the socket (raw frames to /dev/null: what the daemon can deliver) | $s | $(mbps "$SIZE" "$s") | $((kib / 1024)) |"
  echo
  echo "Target: at least 1.5x the docker CLI's throughput; berth's peak RSS under 32 MiB."
} >"$OUT"
cat "$OUT"
