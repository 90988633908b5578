/* Governance tables in the shared store: image rules, task policies and the audit trail.
 *
 * The tables are created on first use (CREATE ... IF NOT EXISTS) rather than by the store's migrations, so this
 * module owns its schema. Audit records are protected twice: triggers refuse UPDATE and DELETE through SQL (an
 * honest mistake), and the hash chain exposes anyone who drops the triggers (a deliberate edit). */
#include <stdlib.h>
#include <string.h>

#include "gov_int.h"

static const char schema_sql[]
    = "CREATE TABLE IF NOT EXISTS image_rules ("
      " id INTEGER PRIMARY KEY, pattern TEXT NOT NULL UNIQUE,"
      " kind TEXT NOT NULL CHECK (kind IN ('allow', 'deny')), actor TEXT NOT NULL, created_at INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS task_policies ("
      " id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, rule TEXT NOT NULL, actor TEXT NOT NULL,"
      " created_at INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS audit_log ("
      " id INTEGER PRIMARY KEY, at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT,"
      " args TEXT, outcome TEXT NOT NULL, hash TEXT NOT NULL);"
      "CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at);"
      "CREATE TABLE IF NOT EXISTS audit_head ("
      " k INTEGER PRIMARY KEY CHECK (k = 1), last_id INTEGER NOT NULL, last_hash TEXT NOT NULL);"
      "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log"
      " BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;"
      "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log"
      " BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;";

int
gov_db_error(berth_store *st, const char *what, berth_error **err)
{
  sqlite3 *db = berth_store_db(st);
  int code = sqlite3_errcode(db);
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
    return berth_error_set(err, BERTH_EBUSY, "%s: the store is busy (%s)", what, sqlite3_errmsg(db));
  return berth_error_set(err, BERTH_EINTERNAL, "%s: store error: %s", what, sqlite3_errmsg(db));
}

int
gov_ensure_schema(berth_store *st, berth_error **err)
{
  sqlite3 *db = berth_store_db(st);
  /* the common case: everything exists; a read of sqlite_master avoids taking a write lock */
  sqlite3_stmt *stmt = NULL;
  int have = 0;
  if (sqlite3_prepare_v2(db,
                         "SELECT count(*) FROM sqlite_master WHERE name IN ('image_rules', 'task_policies',"
                         " 'audit_log', 'audit_log_at', 'audit_head', 'audit_log_no_update', 'audit_log_no_delete')",
                         -1, &stmt, NULL)
          == SQLITE_OK
      && sqlite3_step(stmt) == SQLITE_ROW)
    have = sqlite3_column_int(stmt, 0);
  sqlite3_finalize(stmt);
  if (have == 7)
    return 0;
  char *msg = NULL;
  if (sqlite3_exec(db, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
    int rc = berth_error_set(err, BERTH_EINTERNAL, "create governance tables in the store: %s",
                             msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return rc;
  }
  return 0;
}

int
gov_tx_begin(berth_store *st, bool *owned, berth_error **err)
{
  *owned = sqlite3_get_autocommit(berth_store_db(st)) != 0;
  if (!*owned)
    return 0;
  return berth_store_begin(st, err);
}

int
gov_tx_commit(berth_store *st, bool owned, berth_error **err)
{
  if (!owned)
    return 0;
  return berth_store_commit(st, err);
}

void
gov_tx_rollback(berth_store *st, bool owned)
{
  if (owned)
    berth_store_rollback(st);
}

int
gov_prepare(berth_store *st, const char *sql, sqlite3_stmt **out, const char *what, berth_error **err)
{
  if (sqlite3_prepare_v2(berth_store_db(st), sql, -1, out, NULL) != SQLITE_OK) {
    *out = NULL;
    return gov_db_error(st, what, err);
  }
  return 0;
}

char *
gov_column_dup(sqlite3_stmt *stmt, int col, bool *oom)
{
  const unsigned char *t = sqlite3_column_text(stmt, col);
  if (t == NULL)
    return NULL;
  char *s = strdup((const char *) t);
  if (s == NULL)
    *oom = true;
  return s;
}
