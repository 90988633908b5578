/* berth store copy: every record of an open store into an empty PostgreSQL database, in one transaction.
 *
 * Rows are moved generically (SELECT * on the source, the same columns inserted on the target, each value by its
 * kind), so a column added by a later migration is copied without touching this file; only the list of tables and
 * their identity columns lives here. The source is read in one snapshot, so a store in use copies consistently. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/buf.h"
#include "berth/task_log.h"
#include "db_engine.h"
#include "store_int.h"

/* In an order that respects the foreign keys; identity: the column a target must keep generating after. */
static const struct {
  const char *name;
  const char *identity;
} tables[] = {
  { "meta", NULL },
  { "stacks", NULL },
  { "tasks", "seq" },
  { "task_transitions", NULL },
  { "state_versions", NULL },
  { "image_rules", "id" },
  { "task_policies", "id" },
  { "audit_log", NULL },
  { "audit_head", NULL },
  { "api_keys", NULL },
  { "settings", NULL },
  { "state_contents", NULL },
  { "task_log_chunks", NULL },
  { "schedules", "id" },
  { "schedule_fires", NULL },
  { "webhooks", "id" },
  { "webhook_events", "id" },
  { "webhook_deliveries", NULL },
  { "webhook_attempts", NULL },
  { "counters", NULL },
};

/* INSERT INTO table (c1, ...) VALUES (?, ...) for the columns of the source row. */
static char *
insert_sql(db_stmt *row, const char *table)
{
  int n = db_column_count(row);
  size_t len = strlen(table) + 48;
  for (int i = 0; i < n; i++)
    len += strlen(db_column_name(row, i)) + 5;
  char *sql = malloc(len), *p = sql;
  if (sql == NULL)
    return NULL;
  p += sprintf(p, "INSERT INTO %s (", table);
  for (int i = 0; i < n; i++)
    p += sprintf(p, "%s%s", i ? ", " : "", db_column_name(row, i));
  p += sprintf(p, ") VALUES (");
  for (int i = 0; i < n; i++)
    p += sprintf(p, "%s?", i ? ", " : "");
  strcpy(p, ")");
  return sql;
}

static void
bind_row(db_stmt *ins, db_stmt *row)
{
  size_t len = 0;
  for (int i = 0; i < db_column_count(row); i++) {
    switch (db_column_type(row, i)) {
    case DB_TYPE_INT:
      db_bind_int64(ins, i + 1, db_column_int64(row, i));
      break;
    case DB_TYPE_TEXT:
      db_bind_text(ins, i + 1, db_column_text(row, i));
      break;
    case DB_TYPE_BLOB: {
      const void *p = db_column_blob(row, i, &len);
      db_bind_blob(ins, i + 1, p, len);
      break;
    }
    default:
      db_bind_null(ins, i + 1);
    }
  }
}

static int
copy_table(db_conn *from, db_conn *to, const char *table, int64_t *rows, berth_error **err)
{
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT * FROM %s", table);
  db_stmt *row = NULL, *ins = NULL;
  int rc = db_prepare(from, sql, &row, err), step = DB_DONE;
  while (rc == 0 && (step = db_step(row, err)) == DB_ROW) {
    if (ins == NULL) {
      char *isql = insert_sql(row, table);
      rc = isql ? db_prepare(to, isql, &ins, err) : berth_error_set(err, BERTH_EINTERNAL, "out of memory");
      free(isql);
      if (rc < 0)
        break;
    }
    db_reset(ins);
    bind_row(ins, row);
    if ((rc = db_step(ins, err)) >= 0) {
      rc = 0;
      (*rows)++;
    }
  }
  if (rc == 0 && step < 0)
    rc = step;
  db_finalize(row);
  db_finalize(ins);
  return rc < 0 ? berth_error_wrap(err, "copy table %s", table) : 0;
}

static int
insert_log_chunk(db_conn *to, const char *task_id, int64_t off, const berth_buf *chunk, berth_error **err)
{
  db_stmt *s = NULL;
  if (db_prepare(to, "INSERT INTO task_log_chunks (task_id, off, len, bytes) VALUES (?, ?, ?, ?)", &s, err) < 0)
    return BERTH_EINTERNAL;
  db_bind_text(s, 1, task_id);
  db_bind_int64(s, 2, off);
  db_bind_int64(s, 3, (int64_t) chunk->len);
  db_bind_blob(s, 4, chunk->data, chunk->len);
  return db_run(s, NULL, err);
}

/* One SQLite log file as chunks of whole records (up to BERTH_LOG_BUFFER bytes, or one bigger record), as the writer
 * would have flushed them. A torn record at the end (a supervisor killed mid-write) is left out, as readers do. */
static int
copy_log_file(db_conn *to, const char *path, const char *task_id, int64_t *chunks, berth_error **err)
{
  FILE *f = fopen(path, "rbe");
  if (f == NULL)
    return 0; /* a task that never wrote a log */
  berth_buf chunk;
  berth_buf_init(&chunk, BERTH_LOG_CHUNK_MAX);
  char *payload = malloc(BERTH_LOG_RECORD_MAX);
  int64_t off = 0;
  int rc = payload ? 0 : berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  unsigned char h[6];
  while (rc == 0 && fread(h, 1, sizeof h, f) == sizeof h) {
    size_t len = ((size_t) h[2] << 24) | ((size_t) h[3] << 16) | ((size_t) h[4] << 8) | h[5];
    if (len > BERTH_LOG_RECORD_MAX || h[0] < 1 || h[0] > 3) {
      rc = berth_error_set(err, BERTH_EINTERNAL, "task log %s is corrupt", path);
      break;
    }
    if (fread(payload, 1, len, f) != len)
      break;
    if (chunk.len > 0 && chunk.len + sizeof h + len > BERTH_LOG_BUFFER) {
      rc = insert_log_chunk(to, task_id, off, &chunk, err);
      off += (int64_t) chunk.len;
      (*chunks)++;
      berth_buf_reset(&chunk);
    }
    if (rc == 0 && (berth_buf_append(&chunk, h, sizeof h) < 0 || berth_buf_append(&chunk, payload, len) < 0))
      rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  if (rc == 0 && chunk.len > 0) {
    rc = insert_log_chunk(to, task_id, off, &chunk, err);
    (*chunks)++;
  }
  fclose(f);
  free(payload);
  berth_buf_free(&chunk);
  return rc < 0 ? berth_error_wrap(err, "copy the log of task %s", task_id) : 0;
}

/* SQLite keeps task logs as files in BERTH_HOME: every task's log goes into the target's task_log_chunks. */
static int
copy_log_files(berth_store *st, db_conn *to, int64_t *chunks, berth_error **err)
{
  db_stmt *s = NULL;
  if (db_prepare(st->db, "SELECT id FROM tasks ORDER BY seq", &s, err) < 0)
    return BERTH_EINTERNAL;
  int step = DB_DONE, rc = 0;
  while (rc == 0 && (step = db_step(s, err)) == DB_ROW) {
    char *path = berth_task_log_path(st->home, db_column_text(s, 0));
    rc = path ? copy_log_file(to, path, db_column_text(s, 0), chunks, err)
              : berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    free(path);
  }
  db_finalize(s);
  return rc < 0 ? rc : step < 0 ? berth_error_wrap(err, "read tasks") : 0;
}

/* The target must hold nothing yet: a copy never merges into, or overwrites, another store. */
static int
check_empty(db_conn *to, berth_error **err)
{
  int64_t n = 0;
  bool has_sv = false;
  int legacy = 0;
  if (to->ops->probe(to, &n, &has_sv, &legacy, err) < 0)
    return BERTH_EINTERNAL;
  if (n > 0)
    return berth_error_set(err, BERTH_EBUSY,
                           "store %s is not empty (it holds %lld tables); copy into an empty database", db_label(to),
                           (long long) n);
  return 0;
}

static int
copy_all(berth_store *st, db_conn *to, berth_store_copy_report *report, berth_error **err)
{
  int rc = db_exec(to, "DELETE FROM meta", err); /* the new schema's own instance id: the source's replaces it */
  for (size_t i = 0; rc == 0 && i < sizeof tables / sizeof tables[0]; i++) {
    int64_t rows = 0;
    rc = copy_table(st->db, to, tables[i].name, &rows, err);
    if (rc == 0 && tables[i].identity)
      rc = db_sync_identity(to, tables[i].name, tables[i].identity, err);
    if (rc == 0 && report->n < BERTH_STORE_TABLES_MAX) {
      report->tables[report->n].table = tables[i].name;
      report->tables[report->n++].rows = rows;
    }
  }
  /* what SQLite keeps as files */
  if (rc == 0)
    rc = store_key_copy(st, to, err);
  if (rc == 0)
    rc = store_state_copy_contents(st, to, err);
  for (size_t i = 0; rc == 0 && store_is_sqlite(st) && i < report->n; i++)
    if (strcmp(report->tables[i].table, "task_log_chunks") == 0)
      rc = copy_log_files(st, to, &report->tables[i].rows, err);
  return rc;
}

int
berth_store_copy(berth_store *st, const char *to_url, berth_store_copy_report *report, berth_error **err)
{
  memset(report, 0, sizeof *report);
  if (to_url == NULL || !db_pg_conninfo_looks_valid(to_url))
    return berth_error_set(err, BERTH_EINVAL,
                           "store copy: --to must be a valid postgresql:// URL or libpq key=value settings");
  db_conn *to = NULL;
  int from_v = 0, to_v = 0;
  int rc = db_pg_open(to_url, &to, err);
  if (rc == 0) {
    snprintf(report->target, sizeof report->target, "%s", db_label(to));
    rc = check_empty(to, err);
  }
  if (rc == 0)
    rc = store_schema_migrate(to, &from_v, &to_v, err);
  if (rc == 0 && (rc = db_begin_read(st->db, err)) == 0) {
    if ((rc = db_begin(to, err)) == 0) {
      rc = copy_all(st, to, report, err);
      if (rc == 0)
        rc = db_commit(to, err);
      else
        db_rollback(to);
    }
    db_rollback(st->db); /* read only */
  }
  db_close(to);
  if (rc < 0)
    return berth_error_wrap(err, "copy store %s", db_label(st->db));
  return 0;
}
