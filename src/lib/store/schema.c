/* The one schema of the store, as numbered migrations, and the code that brings a store up to date.
 *
 * schema_version holds one row per applied migration. Stores made before it existed (berth 0.1.0) recorded version 1
 * in SQLite's user_version, and created the governance and API key tables lazily; migration 2 therefore creates
 * those with IF NOT EXISTS. On SQLite user_version is kept equal to the newest version, so an older berth, which
 * only reads user_version, refuses a newer store instead of writing into it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "db_engine.h"
#include "store_int.h"

typedef struct migration {
  int version;
  const char *what;
  const char *sqlite; /* the text for each engine; NULL = not available on that engine yet */
  const char *postgresql;
} migration;

static const migration migrations[] = {
  { 1, "stacks, tasks, transitions and state versions",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE stacks ("
    " name TEXT PRIMARY KEY, image TEXT NOT NULL, project_dir TEXT, subdir TEXT,"
    " init TEXT NOT NULL, before_init TEXT NOT NULL, before_perform TEXT NOT NULL, after_perform TEXT NOT NULL,"
    " after_run TEXT NOT NULL, env TEXT NOT NULL, secret_env TEXT NOT NULL, network TEXT NOT NULL,"
    " memory_bytes INTEGER NOT NULL, nano_cpus INTEGER NOT NULL, pids INTEGER NOT NULL,"
    " timeout_ms INTEGER NOT NULL, idle_timeout_ms INTEGER NOT NULL, pull_policy TEXT NOT NULL,"
    " persist TEXT NOT NULL, labels TEXT NOT NULL, keep_versions INTEGER NOT NULL,"
    " lock_owner TEXT, lock_note TEXT, locked_at INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
    "CREATE TABLE tasks ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, stack TEXT NOT NULL,"
    " command TEXT NOT NULL, actor TEXT NOT NULL, triggered_by TEXT, state TEXT NOT NULL, reason TEXT,"
    " exit_code INTEGER NOT NULL DEFAULT -1, skip_init INTEGER NOT NULL DEFAULT 0, env TEXT NOT NULL,"
    " secret_env TEXT, container_id TEXT, blocked_by TEXT, supervisor_pid INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL, started_at INTEGER NOT NULL DEFAULT 0, finished_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX tasks_by_stack ON tasks (stack, seq);"
    "CREATE INDEX tasks_by_state ON tasks (state, seq);"
    "CREATE TABLE task_transitions ("
    " task_seq INTEGER NOT NULL REFERENCES tasks (seq) ON DELETE CASCADE, n INTEGER NOT NULL,"
    " state TEXT NOT NULL, at INTEGER NOT NULL, actor TEXT NOT NULL, note TEXT, PRIMARY KEY (task_seq, n));"
    "CREATE TABLE state_versions ("
    " stack TEXT NOT NULL, version INTEGER NOT NULL, task_id TEXT, created_at INTEGER NOT NULL,"
    " bytes INTEGER NOT NULL, files INTEGER NOT NULL, PRIMARY KEY (stack, version));",
    NULL },
  { 2, "image rules, task policies, the audit chain and API keys",
    "CREATE TABLE IF NOT EXISTS image_rules ("
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
    /* an honest mistake through SQL is refused; a deliberate edit is exposed by the hash chain */
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log"
    " BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;"
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log"
    " BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;"
    "CREATE TABLE IF NOT EXISTS api_keys ("
    " id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, stacks TEXT NOT NULL DEFAULT '[]',"
    " hash TEXT NOT NULL, created_by TEXT, created_at INTEGER NOT NULL, last_used_at INTEGER NOT NULL DEFAULT 0,"
    " revoked_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX IF NOT EXISTS api_keys_live_name ON api_keys (name) WHERE revoked_at = 0;",
    NULL },
};

#define N_MIGRATIONS ((int) (sizeof migrations / sizeof migrations[0]))

int
store_schema_latest(void)
{
  return migrations[N_MIGRATIONS - 1].version;
}

static int
read_recorded_version(db_conn *c, int *version, berth_error **err)
{
  db_stmt *s = NULL;
  if (db_prepare(c, "SELECT COALESCE(MAX(version), 0) FROM schema_version", &s, err) < 0)
    return BERTH_EINTERNAL;
  int rc = db_step(s, err);
  *version = rc == DB_ROW ? (int) db_column_int64(s, 0) : 0;
  db_finalize(s);
  return rc < 0 ? rc : 0;
}

static int
record_version(db_conn *c, int version, int64_t at, berth_error **err)
{
  db_stmt *s = NULL;
  if (db_prepare(c, "INSERT INTO schema_version (version, applied_at) VALUES (?, ?) ON CONFLICT (version) DO NOTHING",
                 &s, err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_int64(s, 1, version);
  db_bind_int64(s, 2, at);
  return db_run(s, NULL, err);
}

/* The version the store is at now, creating schema_version when the store predates it. */
static int
current_version(db_conn *c, int *version, berth_error **err)
{
  int64_t tables = 0;
  bool has_sv = false;
  int legacy = 0;
  if (c->ops->probe(c, &tables, &has_sv, &legacy, err) < 0)
    return BERTH_EINTERNAL;
  if (has_sv)
    return read_recorded_version(c, version, err);
  if (legacy == 0 && tables > 0)
    return berth_error_set(err, BERTH_EINTERNAL, "store %s is not a berth store (it holds other tables)", db_label(c));
  if (db_exec(c, "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)", err) < 0)
    return BERTH_EINTERNAL;
  for (int v = 1; v <= legacy && v <= store_schema_latest(); v++)
    if (record_version(c, v, 0, err) < 0) /* applied before versions were recorded: when is unknown */
      return BERTH_EINTERNAL;
  *version = legacy;
  return 0;
}

static int
apply(db_conn *c, const migration *m, berth_error **err)
{
  const char *sql = strcmp(db_engine_name(c), "sqlite") == 0 ? m->sqlite : m->postgresql;
  if (sql == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "store %s: schema version %d is not available on %s yet", db_label(c),
                           m->version, db_engine_name(c));
  if (db_exec(c, sql, err) < 0 || record_version(c, m->version, berth_now_ms(), err) < 0)
    return berth_error_wrap(err, "migrate store to schema version %d (%s)", m->version, m->what);
  return 0;
}

static int
create_instance_id(db_conn *c, berth_error **err)
{
  unsigned char bytes[16];
  char hex[sizeof bytes * 2 + 1];
  randombytes_buf(bytes, sizeof bytes);
  sodium_bin2hex(hex, sizeof hex, bytes, sizeof bytes);
  db_stmt *s = NULL;
  if (db_prepare(c, "INSERT INTO meta (key, value) VALUES ('instance_id', ?) ON CONFLICT (key) DO NOTHING", &s, err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_text(s, 1, hex);
  return db_run(s, NULL, err);
}

int
store_schema_migrate(db_conn *c, int *from, int *to, berth_error **err)
{
  int version = 0, latest = store_schema_latest();
  /* one write transaction: two processes opening a new store do not both create it */
  if (db_begin(c, err) < 0)
    return BERTH_EINTERNAL;
  int rc = current_version(c, &version, err);
  if (rc == 0 && version > latest)
    rc = berth_error_set(err, BERTH_EINTERNAL,
                         "store %s has schema version %d, newer than this berth knows (%d); use a newer berth",
                         db_label(c), version, latest);
  *from = version;
  for (int i = 0; rc == 0 && i < N_MIGRATIONS; i++)
    if (migrations[i].version > version)
      rc = apply(c, &migrations[i], err);
  if (rc == 0 && version == 0)
    rc = create_instance_id(c, err);
  if (rc == 0 && version < latest && c->ops->mark_version)
    rc = c->ops->mark_version(c, latest, err);
  if (rc < 0) {
    db_rollback(c);
    return rc;
  }
  if (db_commit(c, err) < 0)
    return BERTH_EINTERNAL;
  *to = version > latest ? version : latest;
  return 0;
}
