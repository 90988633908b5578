# Shared helpers for berth's integration tests (sourced). They run the real berth binary ($BERTH, set by ctest)
# against the real Docker daemon that ci/ starts, with a fresh store per script.
set -u
T_PASS=0
T_FAIL=0
BERTH=${BERTH:-$(cd "$(dirname "$0")/../.." && pwd)/build/berth}
T_TMP=$(mktemp -d /tmp/berth-it.XXXXXX)
export BERTH_HOME=$T_TMP/home
mkdir -p "$BERTH_HOME"
# the tests use the tiny busybox image besides berth's default runner image: let the allowlist admit it
"$BERTH" image allow 'docker.io/berth/busybox:*' >/dev/null 2>&1
# On PostgreSQL the store is a fleet's queue: the local CLI only queues, and a host runs what was queued. A test gets an
# execute-only host of its own on the test's BERTH_HOME (its config.json), unless it sets T_OWN_HOSTS=1 before
# sourcing this file because it starts its own `berth serve` hosts (one host per BERTH_HOME).
T_HOST_PID=
t_start_host() {
  "$BERTH" store migrate >/dev/null 2>&1
  # started from a subshell, so that a test's bare `wait` does not wait for it
  ("$BERTH" serve --host "itest-$$" --grace 5s >"$T_TMP/fleet-host.log" 2>&1 </dev/null &
    echo $! >"$T_TMP/fleet-host.pid")
  T_HOST_PID=$(cat "$T_TMP/fleet-host.pid")
  local i
  for i in $(seq 1 50); do
    "$BERTH" host show "itest-$$" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
}
t_stop_host() {
  [ -n "$T_HOST_PID" ] || return 0
  kill "$T_HOST_PID" 2>/dev/null
  timeout 30 tail --pid="$T_HOST_PID" -f /dev/null || kill -9 "$T_HOST_PID" 2>/dev/null
  T_HOST_PID=
}
if [ -n "${BERTH_STORE:-}" ] && [ -z "${T_OWN_HOSTS:-}" ]; then
  t_start_host
fi
t_cleanup() {
  t_stop_host
  # containers this store left (a failing test must not leak containers into the next)
  local inst
  for inst in $(docker ps -aq --filter "label=berth.managed=true" 2>/dev/null); do
    if docker inspect -f '{{index .Config.Labels "berth.stack"}}' "$inst" 2>/dev/null | grep -q "^it-$$-"; then
      docker rm -f "$inst" >/dev/null 2>&1
    fi
  done
  chmod -R u+rwx "$T_TMP" 2>/dev/null
  rm -rf "$T_TMP"
}
trap t_cleanup EXIT
# t_local_only WHAT: true on SQLite; on PostgreSQL prints a skip line and is false. For cases that hand one `task run`
# its own environment (DOCKER_HOST, BERTH_MAX_PARALLEL_TASKS): in a fleet the claiming host runs the task with its own.
t_local_only() {
  [ -z "${BERTH_STORE:-}" ] && return 0
  echo "skip - $1 (on PostgreSQL a fleet host runs the task, with its own environment; this runs on SQLite)"
  return 1
}
# t_free_port VAR: sets VAR to a TCP port on 127.0.0.1 that the system says is free now and that this script was not
# given before (tests run side by side: ports derived from the pid overlapped between scripts). Not in $(...): the
# ports given are remembered in this shell.
T_PORTS=" "
t_free_port() {
  local p
  while :; do
    p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') || return 1
    case "$T_PORTS" in *" $p "*) continue ;; esac
    T_PORTS="$T_PORTS$p "
    printf -v "$1" '%s' "$p"
    return 0
  done
}
ok() { T_PASS=$((T_PASS + 1)); echo "ok   - $*"; }
fail() { T_FAIL=$((T_FAIL + 1)); echo "FAIL - $*"; }
check() { # check "description" command...
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then ok "$what"; else fail "$what"; fi
}
# run OUT ERR args...: berth task run args..., prints the exit status
run() {
  local out=$1 err=$2
  shift 2
  "$BERTH" task run "$@" >"$out" 2>"$err" </dev/null
  echo $?
}
stack_name() { echo "it-$$-$1"; }
containers_of() { docker ps -aq --filter "label=berth.stack=$1" | wc -l; }
last_task() { "$BERTH" task list --stack "$1" --limit 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["tasks"][0]["id"])'; }
task_field() { "$BERTH" task show "$1" --json | python3 -c "import json,sys; v=json.load(sys.stdin)[\"$2\"]; print('' if v is None else v)"; }
finish() {
  echo "$T_PASS passed, $T_FAIL failed"
  [ "$T_FAIL" -eq 0 ]
}
