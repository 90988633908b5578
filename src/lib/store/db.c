/* The store layer's engine-independent half: statements dispatched to the engine, nested transactions as savepoints,
 * busy retries where they are safe, and the one error format. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db_engine.h"

/* A busy store is retried only where nothing has happened yet: an outermost begin, or the first step of a statement
 * outside any transaction. SQLite already waits its busy timeout inside each attempt. */
#define BUSY_RETRIES 2
#define BUSY_BACKOFF_MS 50

int
db_fail(const db_conn *c, db_fail_kind kind, const char *detail, berth_error **err)
{
  const char *label = c && c->label ? c->label : "(unopened)";
  detail = detail ? detail : "unknown error";
  switch (kind) {
  case DB_FAIL_BUSY:
    return berth_error_set(err, BERTH_EBUSY, "store %s is busy (%s)", label, detail);
  case DB_FAIL_NOTADB:
    return berth_error_set(err, BERTH_EINTERNAL, "store %s is not a berth store (%s)", label, detail);
  case DB_FAIL_CORRUPT:
    return berth_error_set(err, BERTH_EINTERNAL, "store %s is corrupt (%s)", label, detail);
  case DB_FAIL_READONLY:
    return berth_error_set(err, BERTH_EINTERNAL, "store %s is not writable (%s)", label, detail);
  case DB_FAIL_CONNECT:
    return berth_error_set(err, BERTH_EINTERNAL, "store %s cannot be opened (%s)", label, detail);
  case DB_FAIL_LOST:
    return berth_error_set(err, BERTH_EINTERNAL, "store %s: the connection was lost (%s)", label, detail);
  case DB_FAIL_NOMEM:
    return berth_error_set(err, BERTH_EINTERNAL, "store %s: out of memory", label);
  case DB_FAIL_FULL:
    return berth_error_set(err, BERTH_EINTERNAL, "store %s: no space left on its disk (%s)", label, detail);
  case DB_FAIL_OTHER:
    break;
  }
  return berth_error_set(err, BERTH_EINTERNAL, "store %s: %s", label, detail);
}

int
db_conn_init(db_conn *c, const struct db_ops *ops, const char *label)
{
  c->ops = ops;
  c->depth = 0;
  c->read_only = false;
  c->label = strdup(label);
  return c->label ? 0 : -1;
}

void
db_close(db_conn *c)
{
  if (c != NULL)
    c->ops->close(c); /* the engine frees c->label with c */
}

int
db_listen(db_conn *c, const char *channel, berth_error **err)
{
  if (c->ops->listen == NULL)
    return berth_error_set(err, BERTH_EINVAL, "store %s: %s has no notifications", c->label, c->ops->name);
  return c->ops->listen(c, channel, err);
}

int
db_wait_notify(db_conn *c, const char *payload, int timeout_ms)
{
  return c->ops->wait_notify ? c->ops->wait_notify(c, payload, timeout_ms, NULL, 0) : -1;
}

int
db_wait_notify_fds(db_conn *c, const char *payload, int timeout_ms, const int *fds, size_t n_fds)
{
  return c->ops->wait_notify ? c->ops->wait_notify(c, payload, timeout_ms, fds, n_fds) : -1;
}

const char *
db_engine_name(const db_conn *c)
{
  return c->ops->name;
}

const char *
db_try_write_lock_sql(const db_conn *c)
{
  return c->ops->try_write_lock_sql;
}

const char *
db_label(const db_conn *c)
{
  return c->label;
}

int
db_exec(db_conn *c, const char *sql, berth_error **err)
{
  return c->ops->exec(c, sql, err);
}

int
db_prepare(db_conn *c, const char *sql, db_stmt **out, berth_error **err)
{
  *out = NULL;
  int rc = c->ops->prepare(c, sql, out, err);
  if (rc < 0)
    return rc;
  (*out)->conn = c;
  (*out)->binary = false;
  (*out)->bind_failed = false;
  (*out)->stepped = false;
  return 0;
}

void
db_binary_results(db_stmt *s)
{
  s->binary = true;
}

static void
bind(db_stmt *s, int idx, db_bind_kind kind, int64_t i, const void *p, size_t n)
{
  if (s->conn->ops->bind(s, idx, kind, i, p, n) < 0)
    s->bind_failed = true;
}

void
db_bind_int64(db_stmt *s, int idx, int64_t v)
{
  bind(s, idx, DB_BIND_INT64, v, NULL, 0);
}

void
db_bind_text(db_stmt *s, int idx, const char *v)
{
  if (v == NULL)
    bind(s, idx, DB_BIND_NULL, 0, NULL, 0);
  else
    bind(s, idx, DB_BIND_TEXT, 0, v, strlen(v));
}

void
db_bind_blob(db_stmt *s, int idx, const void *p, size_t n)
{
  bind(s, idx, DB_BIND_BLOB, 0, p, n);
}

void
db_bind_null(db_stmt *s, int idx)
{
  bind(s, idx, DB_BIND_NULL, 0, NULL, 0);
}

static void
sleep_ms(long ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  nanosleep(&ts, NULL);
}

int
db_step(db_stmt *s, berth_error **err)
{
  if (s->bind_failed)
    return db_fail(s->conn, DB_FAIL_NOMEM, NULL, err);
  bool retry_ok = s->conn->depth == 0 && !s->stepped;
  for (int attempt = 0;; attempt++) {
    berth_error *e = NULL;
    int rc = s->conn->ops->step(s, &e);
    if (rc >= 0) {
      s->stepped = true;
      return rc;
    }
    if (!retry_ok || rc != BERTH_EBUSY || attempt >= BUSY_RETRIES) {
      if (err && *err == NULL)
        *err = e;
      else
        berth_error_free(e);
      return rc;
    }
    berth_error_free(e);
    s->conn->ops->reset(s);
    sleep_ms(BUSY_BACKOFF_MS << attempt);
  }
}

void
db_reset(db_stmt *s)
{
  s->conn->ops->reset(s);
  s->stepped = false;
}

void
db_finalize(db_stmt *s)
{
  if (s != NULL)
    s->conn->ops->finalize(s);
}

int64_t
db_changes(const db_stmt *s)
{
  return s->conn->ops->changes(s);
}

bool
db_column_is_null(db_stmt *s, int col)
{
  return s->conn->ops->column_is_null(s, col);
}

int64_t
db_column_int64(db_stmt *s, int col)
{
  return s->conn->ops->column_int64(s, col);
}

const char *
db_column_text(db_stmt *s, int col)
{
  return s->conn->ops->column_text(s, col);
}

const void *
db_column_blob(db_stmt *s, int col, size_t *len)
{
  return s->conn->ops->column_blob(s, col, len);
}

char *
db_column_strdup(db_stmt *s, int col, bool *oom)
{
  const char *t = db_column_text(s, col);
  if (t == NULL)
    return NULL;
  char *d = strdup(t);
  if (d == NULL)
    *oom = true;
  return d;
}

int
db_column_count(db_stmt *s)
{
  return s->conn->ops->column_count(s);
}

const char *
db_column_name(db_stmt *s, int col)
{
  return s->conn->ops->column_name(s, col);
}

db_type
db_column_type(db_stmt *s, int col)
{
  return s->conn->ops->column_type(s, col);
}

int
db_sync_identity(db_conn *c, const char *table, const char *column, berth_error **err)
{
  return c->ops->sync_identity ? c->ops->sync_identity(c, table, column, err) : 0;
}

int
db_run(db_stmt *s, int64_t *changes, berth_error **err)
{
  int rc = db_step(s, err);
  if (rc >= 0 && changes)
    *changes = db_changes(s);
  db_finalize(s);
  return rc < 0 ? rc : 0;
}

int
db_run_later(db_stmt *s, berth_error **err)
{
  if (s->conn->depth == 0 || s->conn->ops->run_later == NULL || s->bind_failed)
    return db_run(s, NULL, err);
  int rc = s->conn->ops->run_later(s, err);
  db_finalize(s);
  return rc;
}

int
db_prefetch(db_stmt *s, berth_error **err)
{
  if (s->conn->ops->prefetch == NULL || s->bind_failed)
    return 0;
  return s->conn->ops->prefetch(s, err);
}

uint64_t
db_txn_id(const db_conn *c)
{
  return c->txn;
}

int64_t
db_size_bytes(db_conn *c)
{
  return c->ops->size_bytes(c);
}

int
db_tx_depth(const db_conn *c)
{
  return c->depth;
}

typedef enum { SP_OPEN, SP_RELEASE, SP_UNDO } savepoint_op;

#define PARTS_MAX 63 /* deeper parts are savepoints */

static uint64_t
level_bit(int level)
{
  return level > 0 && level <= PARTS_MAX ? (uint64_t) 1 << level : 0;
}

/* The level a part at `level` belongs to: the nearest enclosing level that is not a part (1 at the least). */
static int
owner_level(const db_conn *c, int level)
{
  while (level > 1 && (c->parts & level_bit(level)))
    level--;
  return level;
}

static int
savepoint(db_conn *c, savepoint_op op, int level, berth_error **err)
{
  char sql[96];
  if (op == SP_OPEN)
    snprintf(sql, sizeof sql, "SAVEPOINT berth_sp%d", level);
  else if (op == SP_RELEASE)
    snprintf(sql, sizeof sql, "RELEASE SAVEPOINT berth_sp%d", level);
  else
    snprintf(sql, sizeof sql, "ROLLBACK TO SAVEPOINT berth_sp%d; RELEASE SAVEPOINT berth_sp%d", level, level);
  return db_exec(c, sql, err);
}

static int
begin(db_conn *c, bool read, berth_error **err)
{
  if (c->depth > 0) {
    /* never start afresh under a caller who thinks its transaction is open: its work would be split in two */
    if (!c->ops->in_transaction(c))
      return berth_error_set(err, BERTH_EINTERNAL, "store %s rolled back the enclosing transaction", c->label);
    if (!read && c->read_only) /* SQLite could only fail the upgrade later, PostgreSQL refuses the writes */
      return berth_error_set(err, BERTH_EINTERNAL, "store %s: a write cannot start inside a read snapshot", c->label);
    if (savepoint(c, SP_OPEN, c->depth + 1, err) < 0)
      return err && *err ? (*err)->code : BERTH_EINTERNAL;
    c->depth++;
    c->parts &= ~level_bit(c->depth);
    c->tainted &= ~level_bit(c->depth);
    return 0;
  }
  for (int attempt = 0;; attempt++) {
    berth_error *e = NULL;
    int rc = c->ops->begin ? c->ops->begin(c, read, &e)
                           : db_exec(c, read ? c->ops->begin_read_sql : c->ops->begin_sql, &e);
    if (rc == 0) {
      c->depth = 1;
      c->txn++;
      c->read_only = read;
      c->parts = c->tainted = 0;
      return 0;
    }
    if (rc != BERTH_EBUSY || attempt >= BUSY_RETRIES) {
      if (err && *err == NULL)
        *err = e;
      else
        berth_error_free(e);
      return rc;
    }
    berth_error_free(e);
    sleep_ms(BUSY_BACKOFF_MS << attempt);
  }
}

int
db_begin(db_conn *c, berth_error **err)
{
  return begin(c, false, err);
}

int
db_begin_read(db_conn *c, berth_error **err)
{
  return begin(c, true, err);
}

int
db_begin_part(db_conn *c, berth_error **err)
{
  if (c->depth == 0 || c->depth >= PARTS_MAX)
    return begin(c, false, err);
  if (!c->ops->in_transaction(c))
    return berth_error_set(err, BERTH_EINTERNAL, "store %s rolled back the enclosing transaction", c->label);
  if (c->read_only)
    return berth_error_set(err, BERTH_EINTERNAL, "store %s: a write cannot start inside a read snapshot", c->label);
  c->depth++;
  c->parts |= level_bit(c->depth);
  return 0;
}

int
db_commit(db_conn *c, berth_error **err)
{
  if (c->depth == 0)
    return berth_error_set(err, BERTH_EINTERNAL, "commit store transaction: none is open");
  if (!c->ops->in_transaction(c)) {
    c->depth = 0;
    return berth_error_set(err, BERTH_EINTERNAL, "commit store transaction: the store rolled it back");
  }
  if (c->parts & level_bit(c->depth)) { /* a part: its owner commits it */
    c->parts &= ~level_bit(c->depth);
    c->depth--;
    return 0;
  }
  if (c->tainted & level_bit(c->depth)) {
    c->tainted &= ~level_bit(c->depth);
    db_rollback(c);
    return berth_error_set(err, BERTH_EINTERNAL, "store %s: a part of the transaction failed; it was rolled back",
                           c->label);
  }
  if (c->depth > 1) {
    int rc = savepoint(c, SP_RELEASE, c->depth, err);
    if (rc < 0)
      savepoint(c, SP_UNDO, c->depth, NULL);
    c->depth--;
    return rc;
  }
  int rc = db_exec(c, "COMMIT", err);
  if (rc < 0 && c->ops->in_transaction(c))
    db_exec(c, "ROLLBACK", NULL);
  c->depth = 0;
  return rc;
}

int64_t
db_mono_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

bool
db_in_transaction(db_conn *c)
{
  return c->depth > 0 && c->ops->in_transaction(c);
}

void
db_rollback(db_conn *c)
{
  if (c->depth == 0)
    return;
  if (!c->ops->in_transaction(c)) {
    c->depth = 0;
    return;
  }
  if (c->parts & level_bit(c->depth)) { /* a part cannot be undone alone: its owner can only roll back */
    c->parts &= ~level_bit(c->depth);
    c->depth--;
    c->tainted |= level_bit(owner_level(c, c->depth));
    return;
  }
  c->tainted &= ~level_bit(c->depth);
  if (c->depth > 1) {
    savepoint(c, SP_UNDO, c->depth, NULL);
    c->depth--;
    return;
  }
  db_exec(c, "ROLLBACK", NULL);
  c->depth = 0;
}
