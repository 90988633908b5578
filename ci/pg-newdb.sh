#!/usr/bin/env bash
# Creates a database on a PostgreSQL server and prints how to reach it: SERVER (a postgresql:// URL or libpq
# key=value settings, e.g. ci/start-postgres.sh's last line) with its database replaced by NAME. Used by the
# integration tests' PostgreSQL runs, ci/acceptance.sh --postgresql and bench/store.sh.
#   ci/pg-newdb.sh SERVER NAME
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: ci/pg-newdb.sh SERVER NAME" >&2; exit 2; }
psql -X -q -v ON_ERROR_STOP=1 "$1" -c "CREATE DATABASE $2" >/dev/null
python3 -c 'import sys, urllib.parse as u
url, db = sys.argv[1], sys.argv[2]
if url.startswith(("postgresql://", "postgres://")):
    p = u.urlsplit(url)
    print(p.scheme + "://" + p.netloc + "/" + db + ("?" + p.query if p.query else ""))
else:
    print(url + " dbname=" + db)' "$1" "$2"
