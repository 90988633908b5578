#!/usr/bin/env bash
# `berth store info` and `berth store migrate` with the real binary: a new store, a store made by berth 0.1.0
# (tests/data/store/schema-v1.sql, loaded with the sqlite3 shell) migrated up with its records intact, and a store
# from a newer berth refused with one line; with BERTH_TEST_PG, the same on PostgreSQL. Needs no Docker daemon.
set -u
if [ -n "${BERTH_STORE:-}" ]; then # it makes SQLite stores of its own, and PostgreSQL ones with BERTH_TEST_PG
  echo "skipped: this test builds its stores itself (berth.db files, and databases on BERTH_TEST_PG)"
  exit 77
fi
BERTH=${BERTH:?set BERTH to the berth binary}
SRC=${BERTH_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
TMP=$(mktemp -d /tmp/berth-store-cli-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
unset BERTH_SERVER XDG_DATA_HOME
pass=0
fail=0
# the newest schema version: the last migration in the source (not what the binary says of itself)
LATEST=$(sed -n 's/^  { \([0-9][0-9]*\), ".*/\1/p' "$SRC/src/lib/store/schema.c" | tail -n 1)
[ -n "$LATEST" ] || { echo "not ok - the newest schema version is read from $SRC/src/lib/store/schema.c"; exit 1; }
NEWER=$((LATEST + 1))

ok() { pass=$((pass + 1)); echo "ok - $1"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $1"; }
# expect NAME WANT_EXIT ARGS...: runs berth; stdout in $out, stderr in $err
expect() {
  local name=$1 want=$2
  shift 2
  out=$("$BERTH" "$@" 2>"$TMP/err")
  local rc=$?
  err=$(cat "$TMP/err")
  if [ "$rc" -eq "$want" ]; then ok "$name"; else not_ok "$name: exit $rc, want $want (stdout: $out) (stderr: $err)"; fi
}
has_line() { # has_line NAME TEXT LINE
  if printf '%s\n' "$2" | grep -qxF -- "$3"; then ok "$1"; else not_ok "$1: no line \`$3\` in: $2"; fi
}
same() { # same NAME GOT WANT
  if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1: got \`$2\`, want \`$3\`"; fi
}
json() { # json FIELD.PATH: reads $out
  printf '%s' "$out" | python3 -c "import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split('.'): v=v[k]
print(v)" "$1"
}

# --- a new store ------------------------------------------------------------------------------------------
export BERTH_HOME=$TMP/new
expect "migrate creates a store" 0 store migrate
same "migrate says it created it" "$out" "store $BERTH_HOME/berth.db created at schema version $LATEST"
expect "migrate again" 0 store migrate
same "already up to date" "$out" "store $BERTH_HOME/berth.db is at schema version $LATEST (up to date)"
expect "stack create" 0 stack create web --image berth/busybox:latest
expect "info --json" 0 store info --json
same "engine" "$(json engine)" "sqlite"
same "location" "$(json location)" "$BERTH_HOME/berth.db"
same "schema version" "$(json schema_version)" "$LATEST"
same "stacks counted" "$(json counts.stacks)" "1"
same "audit record of the create counted" "$(json counts.audit_records)" "1"
same "no tasks" "$(json counts.tasks)" "0"
if [ "$(json size_bytes)" -gt 0 ]; then ok "size is positive"; else not_ok "size is positive: $(json size_bytes)"; fi
expect "info" 0 store info
has_line "info text: schema" "$out" "schema version:  $LATEST (this berth knows up to $LATEST)"
has_line "info text: stacks" "$out" 'stacks:          1'

# --- a store made by berth 0.1.0 ----------------------------------------------------------------------------
export BERTH_HOME=$TMP/old
mkdir -p "$BERTH_HOME"
sqlite3 "$BERTH_HOME/berth.db" <"$SRC/tests/data/store/schema-v1.sql"
install -m 600 "$SRC/tests/data/store/secret.key" "$BERTH_HOME/secret.key"
expect "migrate the old store" 0 store migrate --json
same "from 1" "$(json from)" "1"
same "to the newest" "$(json to)" "$LATEST"
same "an older berth would refuse it now" "$(sqlite3 "$BERTH_HOME/berth.db" 'PRAGMA user_version')" "$LATEST"
expect "info on the migrated store" 0 store info --json
same "its stacks" "$(json counts.stacks)" "2"
same "its tasks" "$(json counts.tasks)" "2"
same "its audit records" "$(json counts.audit_records)" "21"
same "its API keys" "$(json counts.api_keys)" "2"
expect "its audit chain verifies" 0 audit verify
expect "its failed task is still there" 0 task show 01m8vvf1n24tcbac8be0dav9rr --json
same "with its exit code" "$(json exit_code)" "3"

# --- a store from a newer berth -----------------------------------------------------------------------------
sqlite3 "$BERTH_HOME/berth.db" "INSERT INTO schema_version (version, applied_at) VALUES ($NEWER, 0)"
expect "a newer store is refused" 125 store info
same "in one line naming both versions" "$err" \
  "berth: store $BERTH_HOME/berth.db has schema version $NEWER, newer than this berth knows ($LATEST); use a newer berth"
expect "by every command" 125 stack list
expect "migrate refuses it too" 125 store migrate
same "left as it was" "$(sqlite3 "$BERTH_HOME/berth.db" 'SELECT max(version) FROM schema_version')" "$NEWER"

# --- PostgreSQL, when a server is given (ci/start-postgres.sh) ------------------------------------------------
if [ -n "${BERTH_TEST_PG:-}" ]; then
  db=berth_cli_$$
  psql -X -q "$BERTH_TEST_PG" -c "CREATE DATABASE $db" >/dev/null
  case $BERTH_TEST_PG in
  postgres://* | postgresql://*) # the same URL with the database replaced
    conninfo=$(python3 -c 'import sys,urllib.parse as u
p=u.urlsplit(sys.argv[1]); print(p.scheme + "://" + p.netloc + "/" + sys.argv[2] + ("?" + p.query if p.query else ""))' \
      "$BERTH_TEST_PG" "$db") ;;
  *) conninfo="$BERTH_TEST_PG dbname=$db" ;; # key=value settings: the last dbname wins
  esac
  export BERTH_HOME=$TMP/pg BERTH_STORE=$conninfo
  expect "pg: migrate creates the schema" 0 store migrate
  migrated=$out
  expect "pg: stack create" 0 stack create web --image berth/busybox:latest --secret-env TOKEN=pg-secret-value
  expect "pg: audit verify" 0 audit verify
  expect "pg: info --json" 0 store info --json
  same "pg: engine" "$(json engine)" "postgresql"
  loc=$(json location)
  case $loc in
  "postgresql://"*"/$db?"*) ok "pg: location is a URL naming the database ($loc)" ;;
  *) not_ok "pg: location is a URL naming the database: $loc" ;;
  esac
  same "pg: migrate said it created it" "$migrated" "store $loc created at schema version $LATEST"
  same "pg: stacks" "$(json counts.stacks)" "1"
  same "pg: audit records" "$(json counts.audit_records)" "1"
  if ! grep -rqF pg-secret-value "$BERTH_HOME" && ! pg_dump "$conninfo" | grep -qF pg-secret-value; then
    ok "pg: the secret is sealed in the database too"
  else
    not_ok "pg: the secret is sealed in the database too"
  fi
  export BERTH_STORE="postgresql://bob:Sekr1t-Passw0rd@/$db?host=/nonexistent-dir&port=1"
  expect "pg: unreachable server" 125 store info
  same "pg: one line, no password" "$err" "berth: store postgresql://bob@/$db?host=/nonexistent-dir&port=1 cannot be \
opened (connection to server on socket \"/nonexistent-dir/.s.PGSQL.1\" failed: No such file or directory Is the \
server running locally and accepting connections on that socket?)"
  unset BERTH_STORE

  # the 0.1.0 store (migrated above) moves up to PostgreSQL with its whole history
  copydb=${db}_copy
  psql -X -q "$BERTH_TEST_PG" -c "CREATE DATABASE $copydb" >/dev/null
  case $conninfo in
  postgres*) target=${conninfo/\/$db/\/$copydb} ;;
  *) target="$conninfo dbname=$copydb" ;;
  esac
  export BERTH_HOME=$TMP/old
  sqlite3 "$BERTH_HOME/berth.db" "DELETE FROM schema_version WHERE version = $NEWER" # undo the newer-berth test
  expect "pg: store copy" 0 store copy --to "$target" --json
  same "pg: copied the audit chain" "$(json rows.audit_log)" "21"
  same "pg: copied the transitions" "$(json rows.task_transitions)" "10"
  expect "pg: a second copy is refused" 125 store copy --to "$target"
  case $err in *"is not empty"*) ok "pg: ...because the target is not empty" ;; *) not_ok "pg: not empty: $err" ;; esac
  expect "verify on SQLite" 0 audit verify
  on_sqlite=$out
  BERTH_STORE=$target expect "pg: info on the copy" 0 store info --json
  same "pg: ...which is on PostgreSQL" "$(json engine)" "postgresql"
  same "pg: ...with every audit record" "$(json counts.audit_records)" "21"
  BERTH_STORE=$target expect "pg: audit verify on the copy" 0 audit verify
  same "pg: the same chain, the same head" "$out" "$on_sqlite"
  BERTH_STORE=$target expect "pg: the failed task on the copy" 0 task show 01m8vvf1n24tcbac8be0dav9rr --json
  same "pg: with its exit code" "$(json exit_code)" "3"
  BERTH_STORE=$target expect "pg: its stacks" 0 stack show web --json
  same "pg: with the secret still readable (masked)" "$(json secret_env.TOKEN)" "***"
  # a server that answers but refuses is not waited for, unlike one that does not answer
  t0=$(date +%s)
  expect "pg: serve on a missing database" 125 serve --store "${conninfo/$db/${db}_missing}" --listen "unix:$TMP/pgm.sock"
  case $err in *"${db}_missing"*) ok "pg: ...one line naming it" ;; *) not_ok "pg: ...one line naming it: $err" ;; esac
  if [ $(($(date +%s) - t0)) -le 10 ]; then ok "pg: ...at once"; else not_ok "pg: ...waited $(($(date +%s) - t0)) s"; fi
  psql -X -q "$BERTH_TEST_PG" -c "DROP DATABASE $copydb WITH (FORCE)" >/dev/null
  psql -X -q "$BERTH_TEST_PG" -c "DROP DATABASE $db WITH (FORCE)" >/dev/null
else
  echo "# skipped the PostgreSQL part: BERTH_TEST_PG is not set (ci/start-postgres.sh prints one)"
fi

# --- a PostgreSQL server that accepts and never answers (a fake endpoint: a real server can't hang on demand) -----
silent_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 - "$silent_port" <<'PY' &
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
s.settimeout(1)
held, end = [], time.time() + 60
while time.time() < end:
    try:
        held.append(s.accept()[0])
    except OSError:
        pass
PY
silent=$!
for _ in $(seq 1 50); do python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
  "$silent_port" 2>/dev/null && break; sleep 0.1; done
t0=$(date +%s)
out=$(BERTH_HOME=$TMP/silent BERTH_STORE="postgresql://bob:Sekr1t-silent@127.0.0.1:$silent_port/x" timeout 60 \
  "$BERTH" store info 2>"$TMP/err")
rc=$?
err=$(cat "$TMP/err")
el=$(($(date +%s) - t0))
kill "$silent" 2>/dev/null
if [ "$rc" -eq 125 ] && [ "$el" -le 15 ]; then ok "a server that never answers: exit 125 within 15 s ($el s)"; else
  not_ok "a server that never answers: exit $rc after $el s, want 125 within 15 s"; fi
case $err in
  *"cannot be opened"*"timeout expired"*) same "  ...in one line, no password" "$(printf '%s\n' "$err" | grep -c .)$(printf '%s' "$err" | grep -c Sekr1t)" "10" ;;
  *) not_ok "  ...says the connection timed out: $err" ;;
esac

# --- berth serve --store ----------------------------------------------------------------------------------------
export BERTH_HOME=$TMP/serve
expect "serve --store reaches the store (--store-wait 0: no wait)" 125 serve --store-wait 0 \
  --store "postgresql://bob:Sekr1t-serve@/x?host=/nonexistent&port=1" \
  --listen "unix:$TMP/serve.sock"
case $err in
*"postgresql://bob@/x?host=/nonexistent&port=1 cannot be opened"*) ok "serve --store: one line naming the URL" ;;
*) not_ok "serve --store: one line naming the URL: $err" ;;
esac
case $err in *Sekr1t-serve*) not_ok "serve --store: password shown" ;; *) ok "serve --store: no password" ;; esac
t0=$(date +%s)
expect "serve --store-wait gives up after its time" 125 serve --store-wait 3s \
  --store "postgresql://bob:Sekr1t-serve@/x?host=/nonexistent&port=1" --listen "unix:$TMP/serve.sock"
waited=$(($(date +%s) - t0))
if [ "$waited" -ge 2 ] && [ "$waited" -le 20 ]; then ok "serve --store-wait: waited ${waited}s"; else not_ok "serve --store-wait: waited ${waited}s"; fi
case $err in *"retrying every 2 s"*) ok "serve --store-wait: says it retries" ;; *) not_ok "serve --store-wait: $err" ;; esac
case $err in *Sekr1t-serve*) not_ok "serve --store-wait: password shown" ;; *) ok "serve --store-wait: no password" ;; esac

# --- bad input ------------------------------------------------------------------------------------------------
expect "no subcommand" 125 store
expect "unknown subcommand" 125 store vacuum
same "one line" "$err" "berth: unknown command 'berth store vacuum' (see 'berth store --help')"
expect "help" 0 store --help

# --- berth doctor opens the store and reads the config as every command does (Docker aside: it may be absent) ----
export BERTH_HOME=$TMP/doctor
mkdir -p "$BERTH_HOME"
"$BERTH" store migrate >/dev/null 2>&1
out=$("$BERTH" doctor 2>/dev/null)
has_line "doctor: the store's engine, file and schema" "$out" "store    ok    sqlite: $BERTH_HOME/berth.db, schema version $LATEST"
printf '{"no_such_key": 1}\n' >"$BERTH_HOME/config.json"
expect "doctor: a broken config.json is a failure" 125 doctor
case $out in *"config   FAIL  config $BERTH_HOME/config.json: unknown key \`no_such_key\`"*) ok "doctor: says what is wrong in the config" ;;
*) not_ok "doctor: config line: $out" ;; esac
rm -f "$BERTH_HOME/config.json"
head -c 8192 /dev/urandom >"$BERTH_HOME/berth.db"
expect "doctor: a store that is not one is a failure" 125 doctor
case $out in *"store    FAIL  store $BERTH_HOME/berth.db is not a berth store"*) ok "doctor: says what is wrong with the store" ;;
*) not_ok "doctor: store line: $out" ;; esac

echo "# $pass passed, $fail failed"
[ "$fail" -eq 0 ]
