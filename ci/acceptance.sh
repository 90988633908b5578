#!/usr/bin/env bash
# Runs the user-level acceptance scripts from ../shared/acceptance against a built berth binary. They live beside
# the project's CI checkout, not in this repository: without them this prints one line and exits 0.
#
#   ci/acceptance.sh [BERTH]                 every script, the store in each script's BERTH_HOME (SQLite); store.sh
#                                            and fleet.sh make their own PostgreSQL databases (BERTH_TEST_PG)
#   ci/acceptance.sh --postgresql [BERTH]    the scripts that keep stacks, tasks, logs, keys and the audit trail, again
#                                            with BERTH_STORE on a fresh database of BERTH_TEST_PG's server each
#
# On PostgreSQL the CLI queues a task into the store and a fleet host runs it: a script that runs tasks through the
# CLI gets an execute-only host of its own (`berth serve --host`, its own BERTH_HOME, as on another machine), ended
# by its PID afterwards; server.sh starts and crashes its own server, which is then the only host. Not run again:
# identity.sh (the OIDC issuer and credential helpers are a host's own config.json, and the script writes the
# CLI's), product.sh (the package, the plain clone, a full disk under BERTH_HOME), store.sh and fleet.sh (on
# PostgreSQL already), ui.sh (ctest's ui/browser_postgresql drives the browser on PostgreSQL).
set -uo pipefail
cd "$(dirname "$0")/.."
pg=0
if [ "${1:-}" = --postgresql ]; then
  pg=1
  shift
fi
BERTH=$(cd "$(dirname "${1:-build/berth}")" && pwd)/$(basename "${1:-build/berth}")
export BERTH
dir=${BERTH_ACCEPTANCE_DIR:-../shared/acceptance}
if [ ! -d "$dir" ]; then
  echo "acceptance: $dir not found; skipped"
  exit 0
fi
if [ $pg = 1 ] && [ -z "${BERTH_TEST_PG:-}" ]; then
  echo "acceptance: --postgresql needs BERTH_TEST_PG (ci/start-postgres.sh prints one)" >&2
  exit 2
fi

failed=0 host= hhome= db=
# an interrupted run still ends its host (by PID) and drops its database
end_pg() {
  if [ -n "$host" ]; then
    kill "$host" 2>/dev/null
    wait "$host" 2>/dev/null
  fi
  [ -n "$hhome" ] && rm -rf "$hhome"
  [ -n "$db" ] && { psql -X -q "$BERTH_TEST_PG" -c "DROP DATABASE $db WITH (FORCE)" >/dev/null 2>&1 ||
    echo "acceptance: could not drop $db" >&2; }
  host= hhome= db=
}
[ $pg = 1 ] && trap end_pg EXIT
if [ $pg = 0 ]; then
  list=${BERTH_ACCEPTANCE:-foundation redaction tasks governance server live identity store fleet integrations product ui}
else
  list=${BERTH_ACCEPTANCE:-foundation redaction tasks governance live server integrations}
fi
for name in $list; do
  script=$dir/$name.sh
  [ -f "$script" ] || continue
  if [ $pg = 0 ]; then
    echo "--- acceptance: $name"
    bash "$script" || failed=1
    continue
  fi
  echo "--- acceptance on PostgreSQL: $name"
  db=berth_acc_${name}_$$
  url=$(ci/pg-newdb.sh "$BERTH_TEST_PG" "$db") || {
    echo "acceptance: cannot create a database on BERTH_TEST_PG" >&2
    db=
    failed=1
    continue
  }
  if [ "$name" != server ]; then
    hhome=$(mktemp -d /tmp/berth-acc-host.XXXXXX)
    BERTH_HOME=$hhome BERTH_STORE=$url "$BERTH" serve --host "acc-$name" --no-listen >"$hhome/host.log" 2>&1 </dev/null &
    host=$!
  fi
  BERTH_STORE=$url bash "$script" || failed=1
  end_pg
done
exit $failed
