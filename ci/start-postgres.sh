#!/usr/bin/env bash
# A throwaway PostgreSQL server for berth's tests; prints its libpq URL as the LAST line of stdout.
#
#   ci/start-postgres.sh           start (or reuse) the server, print postgresql://USER@/berth_test?host=DIR&port=PORT
#   ci/start-postgres.sh --stop    stop it (pg_ctl, by the pid in its own data dir) and remove its directory
#
# - BERTH_TEST_PG=URL set: that server is reused as it is (checked with psql) and its URL printed; nothing started.
# - Otherwise Debian's PostgreSQL 15 is installed when missing (apt-get install -y postgresql libpq-dev), and a
#   cluster is made with initdb in $BERTH_PG_DIR (default ${TMPDIR:-/tmp}/berth-pg-$UID), owned by a non-root user:
#   when run as root, a system user `berthpg` (created if missing) runs initdb and pg_ctl through runuser.
# - The server listens ONLY on a Unix socket in that directory (listen_addresses = ''; the socket mode 0700, so
#   only its owner and root connect). A role named after the calling user owns the database berth_test; the URL names
#   it and needs no password. One more role, berth_pw (password berth-test-pw), must give its password
#   (scram-sha-256), for the tests of passwords: wrong ones refused, PGPASSFILE used, none ever echoed.
# - A server already running from that directory is reused; the system-wide cluster (/var/lib/postgresql,
#   /var/run/postgresql) is never touched, and nothing is killed by name.
# Progress goes to stderr, so `url=$(ci/start-postgres.sh | tail -n1)` is the URL.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DIR=${BERTH_PG_DIR:-${TMPDIR:-/tmp}/berth-pg-$(id -u)}
DIR=${DIR%/}
DATA=$DIR/data
PORT=${BERTH_PG_PORT:-55432}
DB=berth_test
SERVER_USER=berthpg

say() { echo "start-postgres: $*" >&2; }
die() {
  echo "start-postgres: $*" >&2
  exit 1
}
# with the user name: a URL whose authority is empty (postgresql:///db) loses its `//` in tools that rebuild URLs
# (Python's urlunsplit), and the role named after the calling user is the one that owns the database anyway
url() { echo "postgresql://$(id -un)@/$DB?host=$DIR&port=$PORT"; }

# as_owner CMD...: runs CMD as the user who owns the cluster
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$SERVER_USER" -- "$@"
  else
    "$@"
  fi
}

running() { [ -f "$DATA/postmaster.pid" ] && as_owner "$PG_BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

stop() {
  if [ ! -d "$DATA" ]; then
    say "no cluster in $DIR"
    return 0
  fi
  if running; then
    as_owner "$PG_BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2 || die "pg_ctl could not stop the server in $DATA"
  fi
  rm -rf "$DIR"
  say "stopped and removed $DIR"
}

install_postgres() {
  [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] && command -v psql >/dev/null 2>&1 && return 0
  say "installing Debian's postgresql and libpq-dev"
  local sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y postgresql libpq-dev >&2 \
    || die "apt-get install postgresql libpq-dev failed"
  [ -x "$PG_BIN/initdb" ] || die "no initdb in $PG_BIN after installing (set PG_BIN)"
}

server_user() {
  [ "$(id -u)" -eq 0 ] || return 0
  id -u "$SERVER_USER" >/dev/null 2>&1 && return 0
  say "creating the system user $SERVER_USER (owns throwaway test clusters)"
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SERVER_USER" \
    || die "useradd $SERVER_USER failed"
}

init_cluster() {
  [ -f "$DATA/PG_VERSION" ] && return 0
  mkdir -p "$DIR"
  chmod 0755 "$DIR" # the socket's own mode (0700) decides who connects; the dir only has to be searchable
  [ "$(id -u)" -eq 0 ] && chown "$SERVER_USER": "$DIR"
  say "initdb in $DATA"
  as_owner "$PG_BIN/initdb" -D "$DATA" --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 \
    || die "initdb failed (see $DIR/initdb.log)"
  { # the first matching line wins: berth_pw must authenticate, everyone else on the socket is trusted
    echo "local all berth_pw scram-sha-256"
    cat "$DATA/pg_hba.conf"
  } >"$DIR/pg_hba.conf.new"
  as_owner cp "$DIR/pg_hba.conf.new" "$DATA/pg_hba.conf"
  rm -f "$DIR/pg_hba.conf.new"
  cat >>"$DATA/postgresql.conf" <<EOF
# ci/start-postgres.sh: a throwaway test server, reachable only through the Unix socket in $DIR
listen_addresses = ''
port = $PORT
unix_socket_directories = '$DIR'
unix_socket_permissions = 0700
fsync = off
# every queued or running task holds connections of its own (its supervisor's store, its log writer), and so does
# every follower and server thread: the default 100 is too few for the tests that queue hundreds of tasks
max_connections = 500
EOF
}

start_server() {
  running && return 0
  say "starting the server (log: $DIR/postgres.log)"
  as_owner "$PG_BIN/pg_ctl" -D "$DATA" -l "$DIR/postgres.log" -w -t 60 start >&2 \
    || die "pg_ctl start failed (see $DIR/postgres.log)"
}

create_db() {
  local me
  me=$(id -un)
  local psql=(as_owner psql -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -d postgres)
  if [ "$me" != "$SERVER_USER" ] && [ -z "$("${psql[@]}" -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$me'")" ]; then
    "${psql[@]}" -c "CREATE ROLE \"$me\" LOGIN SUPERUSER" >&2
  fi
  if [ -z "$("${psql[@]}" -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'berth_pw'")" ]; then
    "${psql[@]}" -c "CREATE ROLE berth_pw LOGIN CREATEDB PASSWORD 'berth-test-pw'" >&2
  fi
  if [ -z "$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]; then
    "${psql[@]}" -c "CREATE DATABASE $DB OWNER \"$me\"" >&2
  fi
}

if [ "${1:-}" = "--stop" ]; then
  [ -n "${BERTH_TEST_PG:-}" ] && say "BERTH_TEST_PG is set: that server is not ours to stop"
  [ -n "${BERTH_TEST_PG:-}" ] || stop
  exit 0
fi
[ $# -eq 0 ] || die "usage: ci/start-postgres.sh [--stop]"

if [ -n "${BERTH_TEST_PG:-}" ]; then
  psql -X -q "$BERTH_TEST_PG" -tAc 'SELECT 1' >/dev/null 2>&1 || die "BERTH_TEST_PG does not answer"
  say "reusing the server in BERTH_TEST_PG"
  echo "$BERTH_TEST_PG"
  exit 0
fi

install_postgres
server_user
init_cluster
start_server
create_db
url
