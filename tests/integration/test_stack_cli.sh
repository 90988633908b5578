#!/usr/bin/env bash
# `berth stack` end to end with the real binary: create/update/show/list/delete/state, secrets never printed or
# stored in clear, and every bad input refused with one line on stderr, exit 125 and nothing written.
# Needs no Docker daemon.
set -u
BERTH=${BERTH:?set BERTH to the berth binary}
case $BERTH in /*) ;; *) BERTH=$PWD/$BERTH ;; esac
TMP=$(mktemp -d /tmp/berth-stack-cli-XXXXXX)
chmod 755 "$TMP"
trap 'rm -rf "$TMP"' EXIT
export BERTH_HOME=$TMP/home
unset XDG_DATA_HOME
pass=0
fail=0
SECRET='Sup3r-s3cret-VALUE-d41d8cd9'
ENV_SECRET='from-the-environment-7f3a9c'

ok() { pass=$((pass + 1)); echo "ok - $1"; }
skip() { echo "skip - $1"; }
on_pg() { [ -n "${BERTH_STORE:-}" ]; } # the postgresql label: the store is not berth.db
not_ok() { fail=$((fail + 1)); echo "not ok - $1"; [ -n "${2:-}" ] && sed 's/^/#   /' "$2"; }
check() {
  local name=$1
  shift
  if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# run OUT ERR ARGS...: runs berth, sets $rc
run() {
  local out=$1 err=$2
  shift 2
  "$BERTH" "$@" >"$out" 2>"$err"
  rc=$?
}

# bad NAME ARGS...: berth must exit 125 with exactly one line on stderr starting "berth: ", nothing on stdout.
# bad_cmd NAME CMD...: the same for a command line that runs berth itself (e.g. under setpriv).
bad() {
  local name=$1
  shift
  bad_cmd "$name" "$BERTH" "$@"
}
bad_cmd() {
  local name=$1
  shift
  "$@" >"$TMP/bad.out" 2>"$TMP/bad.err"
  rc=$?
  local lines
  lines=$(wc -l <"$TMP/bad.err")
  if [ "$rc" -eq 125 ] && [ "$lines" -eq 1 ] && grep -q '^berth: ' "$TMP/bad.err" && [ ! -s "$TMP/bad.out" ]; then
    ok "$name (exit 125: $(cat "$TMP/bad.err"))"
  else
    not_ok "$name (exit $rc, $lines stderr lines)" "$TMP/bad.err"
  fi
}

# no_secret FILE...: none of the secret values appears in the files
no_secret() {
  ! grep -qF -e "$SECRET" -e "$ENV_SECRET" "$@"
}

proj=$TMP/proj
mkdir -p "$proj/envs/prod"
echo 'resource "terraform_data" "x" {}' >"$proj/main.tf"

# --- create and read back ----------------------------------------------------------------------------------
cd "$TMP"
run c.out c.err stack create web.prod-1 --image registry.example.com/team/runner:1.2 --project-dir proj \
  --subdir envs/prod --init 'terraform init -input=false' --init 'echo two' --before-init 'export A=1' \
  --before-perform 'echo bp' --after-perform 'echo ap' --after-run 'echo ar' --env TF_IN_AUTOMATION=1 \
  --env 'GREETING=hello world' --secret-env "AWS_SECRET_ACCESS_KEY=$SECRET" --network bridge --memory 512m \
  --cpus 1.5 --pids 256 --timeout 20s --idle-timeout 90s --pull never --persist terraform.tfstate \
  --label team:infra --label prod --keep-versions 3
check "stack create exits 0" test "$rc" -eq 0
check "stack create says so" grep -q 'created stack web.prod-1' c.out
cd - >/dev/null

run "$TMP/show.out" "$TMP/show.err" stack show web.prod-1
check "show exits 0" test "$rc" -eq 0
check "show: project dir made absolute" grep -q "project dir: *$proj\$" "$TMP/show.out"
check "show: secret key shown, value masked" grep -q '^  AWS_SECRET_ACCESS_KEY=\*\*\*$' "$TMP/show.out"
check "show: plain env shown" grep -q '^  GREETING=hello world$' "$TMP/show.out"
check "show: limits" sh -c "grep -q 'memory: *512MiB' '$TMP/show.out' && grep -q 'cpus: *1.5' '$TMP/show.out' \
  && grep -q 'timeout: *20s' '$TMP/show.out' && grep -q 'idle timeout: *1m30s' '$TMP/show.out'"
check "show: hooks in order" grep -A2 '^init:' "$TMP/show.out" -q
run "$TMP/show.json" "$TMP/show.err" stack show web.prod-1 --json
check "show --json exits 0" test "$rc" -eq 0
if command -v python3 >/dev/null; then
  check "show --json: every field" python3 - "$TMP/show.json" "$proj" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
want = {"name": "web.prod-1", "image": "registry.example.com/team/runner:1.2", "project_dir": sys.argv[2],
        "subdir": "envs/prod", "init": ["terraform init -input=false", "echo two"], "before_init": ["export A=1"],
        "before_perform": ["echo bp"], "after_perform": ["echo ap"], "after_run": ["echo ar"],
        "env": {"TF_IN_AUTOMATION": "1", "GREETING": "hello world"},
        "secret_env": {"AWS_SECRET_ACCESS_KEY": "***"}, "network": "bridge", "memory_bytes": 536870912,
        "cpus": 1.5, "pids": 256, "timeout_ms": 20000, "idle_timeout_ms": 90000, "pull_policy": "never",
        "persist": ["terraform.tfstate"], "labels": ["team:infra", "prod"], "keep_versions": 3, "lock": None}
bad = {k: (s.get(k), v) for k, v in want.items() if s.get(k) != v}
sys.exit(1 if bad else 0)
PY
fi
run "$TMP/list.out" "$TMP/list.err" stack list
check "list shows the stack" grep -q '^web.prod-1 ' "$TMP/list.out"
run "$TMP/list.json" "$TMP/list.err" stack list --json
check "list --json is {\"stacks\": [...]}" grep -q '"stacks"' "$TMP/list.json"
check "list --json masks secrets" grep -q '"AWS_SECRET_ACCESS_KEY":[[:space:]]*"\*\*\*"' "$TMP/list.json"

# --- secret env from berth's own environment ----------------------------------------------------------------
run "$TMP/c2.out" "$TMP/c2.err" stack create envsecret --image alpine \
  --secret-env LITERAL_TOKEN=literal --secret-env TOKEN_FROM_ENV=x
check "create with literal secrets" test "$rc" -eq 0
export TOKEN_FROM_ENV=$ENV_SECRET
run "$TMP/c3.out" "$TMP/c3.err" stack update envsecret --secret-env TOKEN_FROM_ENV
unset TOKEN_FROM_ENV
check "--secret-env K reads berth's environment" test "$rc" -eq 0
run "$TMP/c3.json" "$TMP/c3.err" stack show envsecret --json
check "the secret from the environment is masked" grep -q '"TOKEN_FROM_ENV":[[:space:]]*"\*\*\*"' "$TMP/c3.json"
bad "--secret-env K with K missing from the environment" stack create envmissing --image alpine \
  --secret-env NOT_IN_ENV_ANYWHERE_42
check "  ...naming K" grep -q NOT_IN_ENV_ANYWHERE_42 "$TMP/bad.err"

# --- secrets never printed, never in the store's bytes ------------------------------------------------------
for cmd in "stack show web.prod-1" "stack show web.prod-1 --json" "stack list" "stack list --json" \
  "stack show envsecret" "stack show envsecret --json"; do
  # shellcheck disable=SC2086
  "$BERTH" $cmd >"$TMP/o" 2>&1
  check "'berth $cmd' never prints a secret value" no_secret "$TMP/o"
done
if on_pg; then
  pg_dump "$BERTH_STORE" >"$TMP/dump.sql" 2>/dev/null
  check "secret values are not in a dump of the PostgreSQL store (encrypted at rest)" \
    sh -c "test -s '$TMP/dump.sql' && grep -q AWS_SECRET_ACCESS_KEY '$TMP/dump.sql'"
  check "  ...no value in it" no_secret "$TMP/dump.sql"
  check "no secret.key in BERTH_HOME (the key is in the store's settings)" test ! -e "$BERTH_HOME/secret.key"
else
  check "secret values are not in berth.db or its WAL (encrypted at rest)" \
    no_secret "$BERTH_HOME/berth.db" $(ls "$BERTH_HOME"/berth.db-wal 2>/dev/null)
  check "secret.key is mode 600" test "$(stat -c %a "$BERTH_HOME/secret.key")" = 600
fi

# --- update changes only the fields given -------------------------------------------------------------------
run "$TMP/u.out" "$TMP/u.err" stack update web.prod-1 --image alpine:3.20 --init 'tofu init' --env EXTRA=1 \
  --unset-env GREETING --label ''
check "update exits 0" test "$rc" -eq 0
"$BERTH" stack show web.prod-1 >"$TMP/u.show" 2>&1
check "update: image changed" grep -q 'image: *alpine:3.20' "$TMP/u.show"
check "update: --init replaced the list" sh -c "grep -A3 '^init:' '$TMP/u.show' | grep -q 'tofu init' \
  && ! grep -q 'echo two' '$TMP/u.show'"
check "update: --env added, others kept" sh -c "grep -q '^  EXTRA=1' '$TMP/u.show' \
  && grep -q '^  TF_IN_AUTOMATION=1' '$TMP/u.show'"
check "update: --unset-env removed" sh -c "! grep -q GREETING '$TMP/u.show'"
check "update: --label '' cleared labels" grep -q 'labels: *-' "$TMP/u.show"
check "update: untouched fields kept" sh -c "grep -q 'memory: *512MiB' '$TMP/u.show' \
  && grep -q 'network: *bridge' '$TMP/u.show' && grep -q 'AWS_SECRET_ACCESS_KEY=\*\*\*' '$TMP/u.show' \
  && grep -q 'before init' '$TMP/u.show'"
bad "update: --unset-env of a variable that is not set" stack update web.prod-1 --unset-env NOPE
bad "update of an unknown stack" stack update ghost --image x
bad "--unset-env on create" stack create newone --image x --unset-env A

# --- bad input: one line, exit 125, nothing written ----------------------------------------------------------
"$BERTH" stack show web.prod-1 --json >"$TMP/before.json" 2>/dev/null
export BERTH_HOME=$TMP/fresh # a create that fails must not even create the store
bad "a stack name with a space" stack create 'bad name' --image alpine
bad "a stack name with a slash" stack create 'bad/name' --image alpine
bad "a stack name starting with a dot" stack create '.hidden' --image alpine
bad "missing --image on create" stack create noimage
bad "missing NAME" stack create --image alpine
bad "an extra argument" stack create a b --image alpine
bad "unknown flag" stack create x --image alpine --frobnicate
bad "a flag missing its value" stack create x --image
bad "project dir missing" stack create x --image alpine --project-dir "$TMP/nope"
touch "$TMP/afile"
bad "project dir is a file" stack create x --image alpine --project-dir "$TMP/afile"
bad "subdir with .." stack create x --image alpine --project-dir "$proj" --subdir ../etc
bad "subdir absolute" stack create x --image alpine --project-dir "$proj" --subdir /etc
bad "subdir that is not a directory under the project" stack create x --image alpine --project-dir "$proj" \
  --subdir envs/staging
bad "invalid duration (--timeout 5x)" stack create x --image alpine --timeout 5x
bad "negative duration (--idle-timeout -1s)" stack create x --image alpine --idle-timeout -1s
bad "zero timeout" stack create x --image alpine --timeout 0
bad "invalid size (--memory lots)" stack create x --image alpine --memory lots
bad "size overflow (--memory 99999999999t)" stack create x --image alpine --memory 99999999999t
bad "invalid cpus (--cpus abc)" stack create x --image alpine --cpus abc
bad "negative cpus" stack create x --image alpine --cpus -1
bad "invalid pids (--pids -1)" stack create x --image alpine --pids -1
bad "invalid pids (--pids 10x)" stack create x --image alpine --pids 10x
bad "unknown network (--network overlay)" stack create x --image alpine --network overlay
bad "host network without the admin's allow (--network host)" stack create x --image alpine --network host
bad "unknown pull policy" stack create x --image alpine --pull sometimes
bad "invalid --env" stack create x --image alpine --env NOEQUALS
bad "invalid env name" stack create x --image alpine --env '1X=2'
bad "reserved env name" stack create x --image alpine --env BERTH_STACK=other
bad "persisted path escaping the workspace" stack create x --image alpine --persist ../../etc/shadow
bad "keep-versions 0" stack create x --image alpine --keep-versions 0
check "failed creates wrote nothing (no store was created)" test ! -e "$TMP/fresh"
export BERTH_HOME=$TMP/home
bad "update with an invalid duration" stack update web.prod-1 --timeout forever
bad "update with a missing project dir" stack update web.prod-1 --project-dir "$TMP/nope"
"$BERTH" stack show web.prod-1 --json >"$TMP/after.json" 2>/dev/null
check "failed updates changed nothing" cmp -s "$TMP/before.json" "$TMP/after.json"
run "$TMP/l.out" "$TMP/l.err" stack list
check "failed creates left no stack behind" test "$(grep -vc '^NAME' "$TMP/l.out")" -eq 2

# unreadable project dir (root reads everything, so check it as nobody)
mkdir -p "$TMP/locked"
chmod 000 "$TMP/locked"
if [ "$(id -u)" -ne 0 ]; then
  bad "project dir unreadable" stack create x --image alpine --project-dir "$TMP/locked"
elif command -v setpriv >/dev/null; then
  mkdir -p "$TMP/nobody" && chmod 777 "$TMP/nobody"
  BERTH_HOME=$TMP/nobody/home bad_cmd "project dir unreadable (as nobody)" \
    setpriv --reuid=65534 --regid=65534 --clear-groups "$BERTH" stack create x --image alpine \
    --project-dir "$TMP/locked"
  mkdir -p "$TMP/rootstore" && chmod 755 "$TMP/rootstore"
  BERTH_HOME=$TMP/rootstore "$BERTH" stack list >/dev/null 2>&1
  BERTH_HOME=$TMP/rootstore bad_cmd "store unwritable (as nobody, store owned by root)" \
    setpriv --reuid=65534 --regid=65534 --clear-groups "$BERTH" stack create x --image alpine
  # root in a store another user owns (the package's /var/lib/berth): refused, and nothing made there
  mkdir -p "$TMP/userstore" && chown 65534 "$TMP/userstore"
  BERTH_HOME=$TMP/userstore bad "root in a BERTH_HOME another user owns" stack list
  check "  ...says whose it is and how to run it" grep -q "belongs to user .*sudo -u" "$TMP/bad.err"
  check "  ...and makes nothing there" test -z "$(ls -A "$TMP/userstore")"
else
  echo "skip - project dir unreadable (root without setpriv)"
fi
chmod 755 "$TMP/locked"

# unknown stack
bad "show of an unknown stack" stack show ghost
bad "delete of an unknown stack" stack delete ghost
bad "state of an unknown stack" stack state ghost
bad "show with a bad name" stack show 'a/b'
bad "unknown stack subcommand" stack frob
bad "show --bogus" stack show web.prod-1 --bogus

# store unwritable or corrupt
BERTH_HOME=$TMP/afile bad "BERTH_HOME pointing at a file" stack list
BERTH_HOME=$TMP/afile/sub bad "BERTH_HOME under a file" stack list
BERTH_HOME=/proc/self/berth bad "BERTH_HOME in an unwritable place" stack list
if on_pg; then
  skip "a corrupt berth.db, berth.db a directory: SQLite only"
else
  mkdir -p "$TMP/corrupt"
  head -c 8192 /dev/urandom >"$TMP/corrupt/berth.db"
  BERTH_HOME=$TMP/corrupt bad "berth.db containing garbage" stack list
  check "  ...says it is not a berth store" grep -q 'not a berth store' "$TMP/bad.err"
  BERTH_HOME=$TMP/corrupt bad "create on a corrupt store" stack create x --image alpine
  mkdir -p "$TMP/dirdb/berth.db"
  BERTH_HOME=$TMP/dirdb bad "berth.db is a directory" stack list
fi

# --- state, delete, help --------------------------------------------------------------------------------------
run "$TMP/s.out" "$TMP/s.err" stack state web.prod-1
check "state with no versions exits 0" sh -c "test $rc -eq 0 && grep -q 'no state versions' '$TMP/s.out'"
run "$TMP/s.json" "$TMP/s.err" stack state web.prod-1 --json
check "state --json lists versions" grep -q '"versions":[[:space:]]*\[\]' "$TMP/s.json"
for sub in "" create update show list delete state; do
  # shellcheck disable=SC2086
  run "$TMP/h.out" "$TMP/h.err" stack $sub --help
  check "berth stack $sub --help" sh -c "test $rc -eq 0 && grep -q usage '$TMP/h.out'"
done
run "$TMP/d.out" "$TMP/d.err" stack delete envsecret
check "delete exits 0" test "$rc" -eq 0
bad "show after delete" stack show envsecret
bad "create of an existing stack" stack create web.prod-1 --image alpine
check "  ...says it exists" grep -q 'already exists' "$TMP/bad.err"

bad "an image reference with capitals, as at run time" stack create caps --image 'Berth/BusyBox'
check "  ...says repository names are lowercase" grep -q 'must be lowercase' "$TMP/bad.err"
bad "update to such a reference" stack update web.prod-1 --image 'UP'
"$BERTH" stack create denied --image 'docker.io/evil/img:1' >"$TMP/denied.out" 2>"$TMP/denied.err"
check "a stack whose image the allowlist refuses is created (exit 0)" test $? -eq 0
check "  ...with one warning line saying its tasks will be refused" \
  sh -c "test \$(wc -l <'$TMP/denied.err') -eq 1 && grep -q '^berth: warning: .*will be refused until an admin allows it' '$TMP/denied.err'"

# --- bad input across the command line: one line each, exit 125, nothing written -----------------------------
bad "a variable given both plain and secret in one change" stack create both --image alpine --env A=v --secret-env A=w
check "  ...says so, and no stack was made" sh -c "grep -q 'given both plain' '$TMP/bad.err' && ! '$BERTH' stack show both >/dev/null 2>&1"
bad "a label that is not UTF-8" stack create u8 --image alpine --label "$(printf 'x\377')"
bad "an env value that is not UTF-8" stack update web.prod-1 --env "A=$(printf '\377')"
bad "a lock note that is not UTF-8" stack lock web.prod-1 --note "$(printf 'x\377')"
bad "a flag without its value (--note)" stack lock web.prod-1 --note
check "  ...names the flag" grep -q 'flag `--note` needs a value' "$TMP/bad.err"
bad "a flag the command does not take (lock --force)" stack lock web.prod-1 --force
bad "task list --limit -1 (names the flag)" task list --limit -1
check "  ...names the flag" grep -q -- '--limit' "$TMP/bad.err"
bad "an unknown flag of doctor" doctor --bogus
bad "a group without its command (berth stack)" stack
check "  ...names the commands" grep -q 'needs a command: create, update' "$TMP/bad.err"
bad "--server without a URL" --server
bad "--server given twice" --server http://127.0.0.1:9 --server http://127.0.0.1:9 stack list
bad "a reserved task variable (--env BERTH_X=1)" task run web.prod-1 --env BERTH_X=1 -- true
bad "a schedule with both --cron and --at" schedule add web.prod-1 both --cron @daily --at 2030-01-01T00:00:00Z -- true
check "  ...says not both" grep -q 'not both' "$TMP/bad.err"
bad "an --at with an offset past 23 hours" schedule add web.prod-1 off --at 2030-01-01T00:00:00+25:00 -- true
bad "an --at offset with a sign inside it" schedule add web.prod-1 off --at 2030-01-01T00:00:00+-9:30 -- true
bad "a task ID in upper case that does not exist (looked up, not refused as a form)" task show 01ABCDEF
check "  ...says it does not exist" grep -q 'does not exist' "$TMP/bad.err"
export WH_SECRET=webhook-signing-secret
for u in 'http://' 'http://:80/' 'http://host:99999/' 'http://[::1/'; do
  bad "a webhook URL that is not one ($u)" webhook add wh "$u" --secret-env WH_SECRET --event audit
done
bad "webhook deliveries --limit 10x" webhook deliveries wh --limit 10x
bad "oidc config --issuer without a host" oidc config --issuer notaurl
bad "serve on a port past 65535" serve --listen tcp:127.0.0.1:99999
echo precious >"$TMP/precious.txt"
bad "serve --listen unix: on a regular file" serve --listen "unix:$TMP/precious.txt"
check "  ...which is left as it was" grep -q precious "$TMP/precious.txt"
mkdir -p "$TMP/fifo"
mkfifo "$TMP/fifo/config.json"
BERTH_HOME=$TMP/fifo bad_cmd "a config.json that is a FIFO (refused, never waited on)" timeout 10 "$BERTH" stack create \
  fifo --image alpine
# a server that accepts and never answers: the request ends after BERTH_HTTP_TIMEOUT with one line
python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8); print("ready", flush=True)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)' "$TMP/silent.sock" >"$TMP/silent.ready" &
silent=$!
for _ in $(seq 1 50); do [ -s "$TMP/silent.ready" ] && break; sleep 0.1; done
start=$(date +%s)
BERTH_HTTP_TIMEOUT=2s bad_cmd "a server that never answers (BERTH_HTTP_TIMEOUT=2s)" timeout 60 "$BERTH" --server "unix:$TMP/silent.sock" stack list
check "  ...ends within seconds and says it did not answer ($(($(date +%s) - start)) s)" \
  sh -c "test $(($(date +%s) - start)) -lt 15 && grep -q 'did not answer for 2 s' '$TMP/bad.err'"
kill $silent
wait $silent 2>/dev/null
BERTH_HTTP_TIMEOUT=soon bad "a BERTH_HTTP_TIMEOUT that is not a duration" --server "unix:$TMP/silent.sock" stack list

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
