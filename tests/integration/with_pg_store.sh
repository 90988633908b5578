#!/usr/bin/env bash
# Runs one integration test with the store on PostgreSQL: a fresh database of its own on the server in BERTH_TEST_PG
# (ci/start-postgres.sh prints one), BERTH_STORE set to it, dropped afterwards. Without BERTH_TEST_PG the test is
# skipped with one line (exit 77, ctest's SKIP_RETURN_CODE).
#   tests/integration/with_pg_store.sh bash tests/integration/test_tasks.sh
set -u
if [ -z "${BERTH_TEST_PG:-}" ]; then
  echo "skipped: set BERTH_TEST_PG to a PostgreSQL server (ci/start-postgres.sh prints one)"
  exit 77
fi
db=berth_it_$$_$(date +%s%N | tail -c 7)
admin() { psql -X -q -v ON_ERROR_STOP=1 "$BERTH_TEST_PG" -c "$1" >/dev/null; }
BERTH_STORE=$("$(dirname "$0")/../../ci/pg-newdb.sh" "$BERTH_TEST_PG" "$db") || {
  echo "with_pg_store: cannot create a database on BERTH_TEST_PG" >&2
  exit 1
}
export BERTH_STORE
"$@"
rc=$?
admin "DROP DATABASE $db WITH (FORCE)" || echo "with_pg_store: could not drop $db" >&2
exit $rc
