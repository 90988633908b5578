/* The store handle: BERTH_HOME resolution, opening and migrating berth.db, shared SQL helpers. */
#include <errno.h>
#include <ftw.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "berth/cleanup.h"
#include "store_int.h"

#define SCHEMA_VERSION 1
#define BUSY_TIMEOUT_MS 10000

static const char schema_v1[]
    = "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
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
      " bytes INTEGER NOT NULL, files INTEGER NOT NULL, PRIMARY KEY (stack, version));";

int64_t
berth_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *
berth_home_default(void)
{
  const char *v = getenv("BERTH_HOME");
  char *out = NULL;
  if (v != NULL && *v != '\0')
    return strdup(v);
  v = getenv("XDG_DATA_HOME");
  if (v != NULL && *v == '/')
    return asprintf(&out, "%s/berth", v) < 0 ? NULL : out;
  if (geteuid() == 0)
    return strdup("/var/lib/berth");
  v = getenv("HOME");
  if (v == NULL || *v == '\0') {
    struct passwd *pw = getpwuid(getuid());
    v = pw ? pw->pw_dir : "/tmp";
  }
  return asprintf(&out, "%s/.local/share/berth", v) < 0 ? NULL : out;
}

int
store_db_error(berth_store *st, int rc, berth_error **err, const char *what)
{
  int prim = rc & 0xff;
  const char *msg = st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
  if (prim == SQLITE_NOTADB)
    return berth_error_set(err, BERTH_EINTERNAL, "store %s is not a berth store (%s)", st->db_path, msg);
  if (prim == SQLITE_CORRUPT)
    return berth_error_set(err, BERTH_EINTERNAL, "store %s is corrupt (%s)", st->db_path, msg);
  if (prim == SQLITE_READONLY || prim == SQLITE_CANTOPEN || prim == SQLITE_PERM)
    return berth_error_set(err, BERTH_EINTERNAL, "store %s is not writable (%s)", st->db_path, msg);
  if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED)
    return berth_error_set(err, BERTH_EBUSY, "%s: store %s is busy (%s)", what, st->db_path, msg);
  return berth_error_set(err, BERTH_EINTERNAL, "%s: %s", what, msg);
}

int
store_prepare(berth_store *st, const char *sql, sqlite3_stmt **out, berth_error **err)
{
  int rc = sqlite3_prepare_v2(st->db, sql, -1, out, NULL);
  if (rc != SQLITE_OK)
    return store_db_error(st, rc, err, "prepare store query");
  return 0;
}

char *
store_col_strdup(sqlite3_stmt *stmt, int col, bool *oom)
{
  const unsigned char *s = sqlite3_column_text(stmt, col);
  if (s == NULL)
    return NULL;
  char *d = strdup((const char *) s);
  if (d == NULL)
    *oom = true;
  return d;
}

int
store_bind_text(sqlite3_stmt *stmt, int idx, const char *s)
{
  return s ? sqlite3_bind_text(stmt, idx, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(stmt, idx);
}

static int
exec_sql(berth_store *st, const char *sql, berth_error **err, const char *what)
{
  int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
  if (rc != SQLITE_OK)
    return store_db_error(st, rc, err, what);
  return 0;
}

int
berth_store_begin(berth_store *st, berth_error **err)
{
  if (st->tx_depth > 0 && !sqlite3_get_autocommit(st->db)) {
    st->tx_depth++; /* join the caller's transaction: the change and, say, its audit record commit together */
    return 0;
  }
  int rc = exec_sql(st, "BEGIN IMMEDIATE", err, "begin store transaction");
  if (rc == 0)
    st->tx_depth = 1;
  return rc;
}

int
berth_store_commit(berth_store *st, berth_error **err)
{
  if (st->tx_depth > 1) {
    st->tx_depth--;
    return 0;
  }
  st->tx_depth = 0;
  if (sqlite3_get_autocommit(st->db)) /* an inner rollback ended it: the whole unit failed */
    return berth_error_set(err, BERTH_EINTERNAL, "commit store transaction: it was rolled back");
  int rc = exec_sql(st, "COMMIT", err, "commit store transaction");
  if (rc < 0)
    berth_store_rollback(st);
  return rc;
}

void
berth_store_rollback(berth_store *st)
{
  /* a rollback at any depth ends the whole transaction; the outer commit then reports it */
  if (st->tx_depth > 1) {
    st->tx_depth--;
    if (!sqlite3_get_autocommit(st->db))
      sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return;
  }
  st->tx_depth = 0;
  if (!sqlite3_get_autocommit(st->db))
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

static int
mkdir_p(const char *path, mode_t mode, berth_error **err)
{
  cleanup_free char *p = strdup(path);
  if (p == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s != '\0')
      continue;
    char c = *s;
    *s = '\0';
    if (mkdir(p, mode) < 0 && errno != EEXIST)
      return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "create store directory %s", p);
    *s = c;
    if (c == '\0')
      break;
  }
  struct stat sb;
  if (stat(path, &sb) < 0)
    return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "create store directory %s", path);
  if (!S_ISDIR(sb.st_mode))
    return berth_error_set(err, BERTH_EINTERNAL, "store directory %s is not a directory", path);
  return 0;
}

static int
read_meta(berth_store *st, const char *key, char **out, berth_error **err)
{
  sqlite3_stmt *stmt = NULL;
  if (store_prepare(st, "SELECT value FROM meta WHERE key = ?1", &stmt, err) < 0)
    return BERTH_EINTERNAL;
  sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
  bool oom = false;
  int rc = sqlite3_step(stmt);
  *out = rc == SQLITE_ROW ? store_col_strdup(stmt, 0, &oom) : NULL;
  sqlite3_finalize(stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return store_db_error(st, rc, err, "read store metadata");
  if (oom)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  return 0;
}

/* Creates or upgrades the schema; BEGIN IMMEDIATE so two processes opening a new store do not both create it. */
static int
migrate(berth_store *st, berth_error **err)
{
  if (berth_store_begin(st, err) < 0)
    return BERTH_EINTERNAL;
  sqlite3_stmt *stmt = NULL;
  int version = -1, tables = 0;
  if (store_prepare(st, "SELECT (SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM sqlite_master)",
                    &stmt, err)
      < 0)
    goto fail;
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    version = sqlite3_column_int(stmt, 0);
    tables = sqlite3_column_int(stmt, 1);
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_ROW) {
    store_db_error(st, rc, err, "read store schema");
    goto fail;
  }
  if (version > SCHEMA_VERSION) {
    berth_error_set(err, BERTH_EINTERNAL, "store %s has schema version %d, newer than this berth (%d)", st->db_path,
                    version, SCHEMA_VERSION);
    goto fail;
  }
  if (version == 0 && tables > 0) {
    berth_error_set(err, BERTH_EINTERNAL, "store %s is not a berth store (it holds other tables)", st->db_path);
    goto fail;
  }
  if (version == 0) {
    unsigned char raw[16];
    char hex[sizeof raw * 2 + 1];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
    char *sql = NULL;
    if (asprintf(&sql, "%sINSERT INTO meta (key, value) VALUES ('instance_id', '%s');PRAGMA user_version = %d;",
                 schema_v1, hex, SCHEMA_VERSION)
        < 0) {
      berth_error_set(err, BERTH_EINTERNAL, "out of memory");
      goto fail;
    }
    rc = exec_sql(st, sql, err, "create store schema");
    free(sql);
    if (rc < 0)
      goto fail;
  }
  if (berth_store_commit(st, err) < 0)
    return BERTH_EINTERNAL;
  return 0;
fail:
  berth_store_rollback(st);
  return err && *err ? (*err)->code : BERTH_EINTERNAL;
}

static int
configure(berth_store *st, berth_error **err)
{
  sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
  sqlite3_extended_result_codes(st->db, 1);
  if (sqlite3_db_readonly(st->db, "main") == 1)
    return berth_error_set(err, BERTH_EINTERNAL, "store %s is not writable", st->db_path);
  /* The first statement reads the file header: garbage shows up here as SQLITE_NOTADB. */
  sqlite3_stmt *stmt = NULL;
  if (store_prepare(st, "PRAGMA journal_mode = WAL", &stmt, err) < 0)
    return BERTH_EINTERNAL;
  int rc = sqlite3_step(stmt);
  bool wal = rc == SQLITE_ROW && strcmp((const char *) sqlite3_column_text(stmt, 0), "wal") == 0;
  sqlite3_finalize(stmt);
  if (rc != SQLITE_ROW)
    return store_db_error(st, rc, err, "open store");
  if (!wal)
    return berth_error_set(err, BERTH_EINTERNAL, "store %s is not writable (cannot enable WAL)", st->db_path);
  return exec_sql(st, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;", err,
                  "configure store");
}

int
berth_store_open(const char *home, berth_store **out, berth_error **err)
{
  if (sodium_init() < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "initialize libsodium");
  if (home == NULL || *home == '\0')
    return berth_error_set(err, BERTH_EINVAL, "store directory is empty (set BERTH_HOME)");
  berth_store *st = calloc(1, sizeof *st);
  if (st == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  int rc = 0;
  if ((st->home = strdup(home)) == NULL || asprintf(&st->db_path, "%s/berth.db", home) < 0) {
    st->db_path = NULL;
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    goto fail;
  }
  if ((rc = mkdir_p(home, 0700, err)) < 0)
    goto fail;
  struct stat sb;
  if (stat(st->db_path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
    rc = berth_error_set(err, BERTH_EINTERNAL, "store %s is not a regular file", st->db_path);
    goto fail;
  }
  int src = sqlite3_open_v2(st->db_path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  if (src != SQLITE_OK) {
    rc = store_db_error(st, src, err, "open store");
    goto fail;
  }
  if ((rc = configure(st, err)) < 0 || (rc = migrate(st, err)) < 0
      || (rc = read_meta(st, "instance_id", &st->instance_id, err)) < 0)
    goto fail;
  if (st->instance_id == NULL) {
    rc = berth_error_set(err, BERTH_EINTERNAL, "store %s is not a berth store (no instance id)", st->db_path);
    goto fail;
  }
  *out = st;
  return 0;
fail:
  berth_store_close(st);
  return rc;
}

void
berth_store_close(berth_store *st)
{
  if (st == NULL)
    return;
  if (st->db)
    sqlite3_close_v2(st->db);
  sodium_memzero(st->key, sizeof st->key);
  free(st->home);
  free(st->db_path);
  free(st->instance_id);
  free(st);
}

const char *
berth_store_home(const berth_store *st)
{
  return st->home;
}

const char *
berth_store_instance_id(const berth_store *st)
{
  return st->instance_id;
}

sqlite3 *
berth_store_db(berth_store *st)
{
  return st->db;
}

static int
remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
  (void) sb;
  (void) type;
  (void) ftw;
  return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int
store_remove_tree(const char *path)
{
  struct stat sb;
  if (lstat(path, &sb) < 0)
    return errno == ENOENT ? 0 : -1;
  return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
