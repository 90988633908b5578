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
t_cleanup() {
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
