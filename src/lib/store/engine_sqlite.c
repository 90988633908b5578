/* The embedded engine: one SQLite file (BERTH_HOME/berth.db) in WAL mode, shared by many processes.
 *
 * Writers serialize with BEGIN IMMEDIATE and a 10 s busy timeout, so a read-modify-write never upgrades a read lock
 * (which SQLite could only fail, not wait for). The only file in libberth that includes <sqlite3.h>. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "db_engine.h"

#define BUSY_TIMEOUT_MS 10000

/* Finished statements kept per connection for the next use of the same SQL: parsing and planning a statement cost
 * more than running most of berth's (a task read was a third SQLite's parser). */
#define STMT_CACHE 48

typedef struct sqlite_stmt {
  db_stmt base;
  sqlite3_stmt *stmt;
  int64_t changes;
} sqlite_stmt;

typedef struct sqlite_conn {
  db_conn base;
  sqlite3 *db;
  char *path;
  sqlite_stmt *cache[STMT_CACHE]; /* reset, bindings cleared; cache[0] the least recently finished */
  size_t ncache;
  int64_t busy_since_us; /* when the current wait for a lock began */
} sqlite_conn;

static sqlite3 *
handle(db_conn *c)
{
  return ((sqlite_conn *) c)->db;
}

static sqlite3_stmt *
raw(db_stmt *s)
{
  return ((sqlite_stmt *) s)->stmt;
}

static db_fail_kind
kind_of(int rc)
{
  switch (rc & 0xff) {
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return DB_FAIL_BUSY;
  case SQLITE_NOTADB:
    return DB_FAIL_NOTADB;
  case SQLITE_CORRUPT:
    return DB_FAIL_CORRUPT;
  case SQLITE_READONLY:
  case SQLITE_CANTOPEN:
  case SQLITE_PERM:
    return DB_FAIL_READONLY;
  case SQLITE_NOMEM:
    return DB_FAIL_NOMEM;
  case SQLITE_FULL:
    return DB_FAIL_FULL;
  default:
    return DB_FAIL_OTHER;
  }
}

/* An I/O error where the disk under the store has no free block is a full disk (SQLite says "disk I/O error" when
 * its shared-memory index or journal cannot grow, even for a read). */
static bool
disk_full(const db_conn *c)
{
  const sqlite_conn *sc = (const sqlite_conn *) c;
  if (sc == NULL || sc->path == NULL)
    return false;
  char *dir = strdup(sc->path);
  char *slash = dir ? strrchr(dir, '/') : NULL;
  if (slash != NULL)
    *slash = '\0';
  struct statvfs vs;
  bool full = dir != NULL && statvfs(slash ? dir : ".", &vs) == 0 && vs.f_bavail == 0;
  free(dir);
  return full;
}

static int
fail(db_conn *c, int rc, berth_error **err)
{
  sqlite3 *db = c ? handle(c) : NULL;
  db_fail_kind kind = kind_of(rc);
  if ((rc & 0xff) == SQLITE_IOERR && disk_full(c))
    kind = DB_FAIL_FULL;
  return db_fail(c, kind, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), err);
}

static void
sq_close(db_conn *c)
{
  sqlite_conn *sc = (sqlite_conn *) c;
  for (size_t i = 0; i < sc->ncache; i++) {
    sqlite3_finalize(sc->cache[i]->stmt);
    free(sc->cache[i]);
  }
  if (sc->db)
    sqlite3_close_v2(sc->db);
  free(sc->path);
  free(c->label);
  free(sc);
}

static int
sq_exec(db_conn *c, const char *sql, berth_error **err)
{
  char *msg = NULL;
  int rc = sqlite3_exec(handle(c), sql, NULL, NULL, &msg);
  sqlite3_free(msg); /* the same text as sqlite3_errmsg, which fail() reads */
  return rc == SQLITE_OK ? 0 : fail(c, rc, err);
}

static int
sq_prepare(db_conn *c, const char *sql, db_stmt **out, berth_error **err)
{
  sqlite_conn *sc = (sqlite_conn *) c;
  for (size_t i = sc->ncache; i-- > 0;) {
    sqlite_stmt *hit = sc->cache[i];
    if (strcmp(sqlite3_sql(hit->stmt), sql) == 0) {
      memmove(sc->cache + i, sc->cache + i + 1, (sc->ncache - i - 1) * sizeof *sc->cache);
      sc->ncache--;
      hit->changes = 0;
      *out = &hit->base;
      return 0;
    }
  }
  sqlite_stmt *s = calloc(1, sizeof *s);
  if (s == NULL)
    return db_fail(c, DB_FAIL_NOMEM, NULL, err);
  int rc = sqlite3_prepare_v2(handle(c), sql, -1, &s->stmt, NULL);
  if (rc != SQLITE_OK) {
    free(s);
    return fail(c, rc, err);
  }
  *out = &s->base;
  return 0;
}

static void
sq_finalize(db_stmt *s)
{
  sqlite_conn *sc = (sqlite_conn *) s->conn;
  /* kept unless it failed to reset (its error would show again) or it is not one whole statement */
  if (sqlite3_reset(raw(s)) == SQLITE_OK && sqlite3_clear_bindings(raw(s)) == SQLITE_OK
      && sqlite3_sql(raw(s)) != NULL) {
    if (sc->ncache == STMT_CACHE) { /* full: the least recently used goes */
      sqlite3_finalize(sc->cache[0]->stmt);
      free(sc->cache[0]);
      memmove(sc->cache, sc->cache + 1, (STMT_CACHE - 1) * sizeof *sc->cache);
      sc->ncache--;
    }
    sc->cache[sc->ncache++] = (sqlite_stmt *) s;
    return;
  }
  sqlite3_finalize(raw(s));
  free(s);
}

static void
sq_reset(db_stmt *s)
{
  sqlite3_reset(raw(s));
}

static int
sq_bind(db_stmt *s, int idx, db_bind_kind kind, int64_t i, const void *p, size_t n)
{
  int rc;
  switch (kind) {
  case DB_BIND_INT64:
    rc = sqlite3_bind_int64(raw(s), idx, i);
    break;
  case DB_BIND_TEXT:
    rc = sqlite3_bind_text64(raw(s), idx, p, n, SQLITE_TRANSIENT, SQLITE_UTF8);
    break;
  case DB_BIND_BLOB:
    rc = sqlite3_bind_blob64(raw(s), idx, p ? p : "", n, SQLITE_TRANSIENT);
    break;
  default:
    rc = sqlite3_bind_null(raw(s), idx);
    break;
  }
  return rc == SQLITE_OK ? 0 : -1;
}

static int
sq_step(db_stmt *s, berth_error **err)
{
  int rc = sqlite3_step(raw(s));
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
    ((sqlite_stmt *) s)->changes = sqlite3_changes64(handle(s->conn));
    return rc == SQLITE_ROW ? DB_ROW : DB_DONE;
  }
  sqlite3_reset(raw(s)); /* so the connection's error is this statement's, and a retry starts clean */
  return fail(s->conn, rc, err);
}

static int64_t
sq_changes(const db_stmt *s)
{
  return ((const sqlite_stmt *) s)->changes;
}

static bool
sq_is_null(db_stmt *s, int col)
{
  return sqlite3_column_type(raw(s), col) == SQLITE_NULL;
}

static int64_t
sq_int64(db_stmt *s, int col)
{
  return sqlite3_column_int64(raw(s), col);
}

static const char *
sq_text(db_stmt *s, int col)
{
  return (const char *) sqlite3_column_text(raw(s), col);
}

static const void *
sq_blob(db_stmt *s, int col, size_t *len)
{
  const void *p = sqlite3_column_blob(raw(s), col);
  *len = (size_t) sqlite3_column_bytes(raw(s), col);
  return p;
}

static int
sq_column_count(db_stmt *s)
{
  return sqlite3_column_count(raw(s));
}

static const char *
sq_column_name(db_stmt *s, int col)
{
  return sqlite3_column_name(raw(s), col);
}

static db_type
sq_column_type(db_stmt *s, int col)
{
  switch (sqlite3_column_type(raw(s), col)) {
  case SQLITE_INTEGER:
    return DB_TYPE_INT;
  case SQLITE_BLOB:
    return DB_TYPE_BLOB;
  case SQLITE_NULL:
    return DB_TYPE_NULL;
  default:
    return DB_TYPE_TEXT; /* text, and the floats berth never stores */
  }
}

static bool
sq_in_transaction(db_conn *c)
{
  return sqlite3_get_autocommit(handle(c)) == 0;
}

static int64_t
sq_size_bytes(db_conn *c)
{
  const char *path = ((sqlite_conn *) c)->path;
  size_t n = strlen(path);
  char *wal = malloc(n + 5);
  struct stat sb;
  int64_t total = stat(path, &sb) == 0 ? (int64_t) sb.st_size : -1;
  if (wal && total >= 0) {
    memcpy(wal, path, n);
    memcpy(wal + n, "-wal", 5);
    if (stat(wal, &sb) == 0)
      total += (int64_t) sb.st_size;
  }
  free(wal);
  return total;
}

static int
query_int(db_conn *c, const char *sql, int64_t *out, berth_error **err)
{
  sqlite3_stmt *stmt = NULL;
  int rc = sqlite3_prepare_v2(handle(c), sql, -1, &stmt, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(stmt);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : 0;
  }
  sqlite3_finalize(stmt);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(c, rc, err);
}

static int
sq_probe(db_conn *c, int64_t *tables, bool *has_schema_version, int *legacy_version, berth_error **err)
{
  int64_t sv = 0, uv = 0;
  if (query_int(c, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
                tables, err)
          < 0
      || query_int(c, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'", &sv, err)
             < 0
      || query_int(c, "PRAGMA user_version", &uv, err) < 0)
    return BERTH_EINTERNAL;
  *has_schema_version = sv > 0;
  *legacy_version = (int) uv;
  return 0;
}

static int
sq_mark_version(db_conn *c, int version, berth_error **err)
{
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA user_version = %d", version);
  return sq_exec(c, sql, err);
}

static const struct db_ops sqlite_ops = {
  .name = "sqlite",
  .begin_sql = "BEGIN IMMEDIATE",
  .begin_read_sql = "BEGIN DEFERRED",
  .close = sq_close,
  .exec = sq_exec,
  .prepare = sq_prepare,
  .finalize = sq_finalize,
  .reset = sq_reset,
  .bind = sq_bind,
  .step = sq_step,
  .changes = sq_changes,
  .column_is_null = sq_is_null,
  .column_int64 = sq_int64,
  .column_text = sq_text,
  .column_blob = sq_blob,
  .column_count = sq_column_count,
  .column_name = sq_column_name,
  .column_type = sq_column_type,
  .sync_identity = NULL,
  .in_transaction = sq_in_transaction,
  .size_bytes = sq_size_bytes,
  .probe = sq_probe,
  .mark_version = sq_mark_version,
};

/* Waits for a lock another connection holds, BUSY_TIMEOUT_MS at most. SQLite's own busy timeout sleeps 1, 2, 5, 10,
 * 15, 20, 25 ... 100 ms between tries: a writer that lost the lock for a moment slept long after it was free, and
 * under many writers those sleeps were most of a submission's tail. Short sleeps (0.2 ms, then 1 ms after the
 * first 10 ms of waiting) take the lock soon after it is released, for a check of a lock byte each. */
static int
busy_wait(void *arg, int count)
{
  sqlite_conn *sc = arg;
  int64_t now = db_mono_us();
  if (count == 0)
    sc->busy_since_us = now;
  int64_t waited = now - sc->busy_since_us;
  if (waited >= (int64_t) BUSY_TIMEOUT_MS * 1000)
    return 0;
  struct timespec ts = { 0, waited < 10000 ? 200000 : 1000000 };
  nanosleep(&ts, NULL);
  return 1;
}

/* WAL and the pragmas; the first statement reads the file header, so garbage shows up here as SQLITE_NOTADB. */
static int
configure(sqlite_conn *sc, berth_error **err)
{
  db_conn *c = &sc->base;
  sqlite3_busy_handler(sc->db, busy_wait, sc);
  sqlite3_extended_result_codes(sc->db, 1);
  if (sqlite3_db_readonly(sc->db, "main") == 1)
    return db_fail(c, DB_FAIL_READONLY, "opened read-only", err);
  sqlite3_stmt *stmt = NULL;
  int rc = sqlite3_prepare_v2(sc->db, "PRAGMA journal_mode = WAL", -1, &stmt, NULL);
  if (rc != SQLITE_OK)
    return fail(c, rc, err);
  rc = sqlite3_step(stmt);
  const unsigned char *mode = rc == SQLITE_ROW ? sqlite3_column_text(stmt, 0) : NULL;
  bool wal = mode && strcmp((const char *) mode, "wal") == 0;
  sqlite3_finalize(stmt);
  if (rc != SQLITE_ROW)
    return fail(c, rc, err);
  if (!wal)
    return db_fail(c, DB_FAIL_READONLY, "cannot enable WAL", err);
  return sq_exec(c, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;", err);
}

/* SQLite's count of its own memory takes a global mutex on every allocation, which every thread of a server then
 * waits on; berth never reads it. */
static void
global_config(void)
{
  (void) sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int
db_sqlite_open(const char *path, db_conn **out, berth_error **err)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, global_config);
  sqlite_conn *sc = calloc(1, sizeof *sc);
  if (sc == NULL || db_conn_init(&sc->base, &sqlite_ops, path) < 0 || (sc->path = strdup(path)) == NULL) {
    if (sc)
      free(sc->base.label);
    free(sc);
    return berth_error_set(err, BERTH_EINTERNAL, "open store %s: out of memory", path);
  }
  int rc = sqlite3_open_v2(path, &sc->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  int brc = rc == SQLITE_OK ? configure(sc, err) : fail(&sc->base, rc, err);
  if (brc < 0) {
    sq_close(&sc->base);
    return brc;
  }
  *out = &sc->base;
  return 0;
}
