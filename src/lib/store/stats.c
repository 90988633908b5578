/* Task statistics for the metrics (include/berth/metrics.h): aggregates computed by the database. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/metrics.h"
#include "db.h"
#include "store_int.h"

const double berth_stats_bucket_le[BERTH_STATS_BUCKETS] = { 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600 };

static int
rows(berth_store *st, const char *sql, berth_stats_row **out, size_t *n, berth_error **err)
{
  db_stmt *s = NULL;
  if (db_prepare(store_db(st), sql, &s, err) < 0)
    return BERTH_EINTERNAL;
  size_t cap = 0;
  int rc;
  while ((rc = db_step(s, err)) == DB_ROW) {
    if (*n == cap) {
      cap = cap ? cap * 2 : 8;
      berth_stats_row *r = realloc(*out, cap * sizeof *r);
      if (r == NULL) {
        rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
        break;
      }
      *out = r;
    }
    bool oom = false;
    (*out)[*n].label = db_column_strdup(s, 0, &oom);
    (*out)[*n].n = db_column_int64(s, 1);
    (*n)++;
    if (oom) {
      rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
      break;
    }
  }
  db_finalize(s);
  return rc < 0 ? rc : 0;
}

static int
one_number(berth_store *st, const char *sql, int64_t *out, berth_error **err)
{
  db_stmt *s = NULL;
  if (db_prepare(store_db(st), sql, &s, err) < 0)
    return BERTH_EINTERNAL;
  int rc = db_step(s, err);
  if (rc == DB_ROW)
    *out = db_column_int64(s, 0);
  db_finalize(s);
  return rc < 0 ? rc : 0;
}

/* One histogram: the count and sum of (b - a) ms over the rows where the condition holds, and per bucket. */
static int
histogram(berth_store *st, const char *a, const char *b, const char *cond, berth_histogram *h, berth_error **err)
{
  berth_buf sql;
  berth_buf_init(&sql, 8192);
  berth_buf_printf(&sql, "SELECT COUNT(*), COALESCE(SUM(%s - %s), 0)", b, a);
  for (int i = 0; i < BERTH_STATS_BUCKETS; i++)
    berth_buf_printf(&sql, ", COALESCE(SUM(CASE WHEN %s - %s <= %lld THEN 1 ELSE 0 END), 0)", b, a,
                     (long long) (berth_stats_bucket_le[i] * 1000));
  berth_buf_printf(&sql, " FROM tasks WHERE %s", cond);
  db_stmt *s = NULL;
  int rc = sql.data == NULL ? berth_error_set(err, BERTH_EINTERNAL, "out of memory")
                            : db_prepare(store_db(st), sql.data, &s, err);
  berth_buf_free(&sql);
  if (rc < 0)
    return rc;
  rc = db_step(s, err);
  if (rc == DB_ROW) {
    h->count = (uint64_t) db_column_int64(s, 0);
    h->sum = (double) db_column_int64(s, 1) / 1000.0;
    for (int i = 0; i < BERTH_STATS_BUCKETS; i++)
      h->le[i] = (uint64_t) db_column_int64(s, 2 + i);
    rc = 0;
  }
  db_finalize(s);
  return rc < 0 ? rc : 0;
}

int
berth_store_task_stats(berth_store *st, berth_task_stats *out, berth_error **err)
{
  memset(out, 0, sizeof *out);
  int rc = db_begin_read(store_db(st), err); /* one snapshot: the numbers agree with each other */
  bool began = rc == 0;
  if (rc == 0)
    rc = rows(st, "SELECT state, COUNT(*) FROM tasks GROUP BY state ORDER BY state", &out->by_state, &out->n_states,
              err);
  if (rc == 0)
    rc = rows(st, "SELECT stack, COUNT(*) FROM tasks WHERE state = 'QUEUED' GROUP BY stack ORDER BY stack",
              &out->queued_by_stack, &out->n_stacks, err);
  if (rc == 0)
    rc = histogram(st, "created_at", "started_at", "started_at > 0", &out->wait, err);
  if (rc == 0)
    rc = histogram(st, "started_at", "finished_at", "started_at > 0 AND finished_at > 0", &out->duration, err);
  if (rc == 0)
    rc = one_number(st, "SELECT COALESCE(SUM(redactions), 0) FROM tasks", &out->redactions, err);
  for (size_t i = 0; rc == 0 && i < out->n_states; i++)
    if (strcmp(out->by_state[i].label, "PREPARING") == 0 || strcmp(out->by_state[i].label, "INITIALIZING") == 0
        || strcmp(out->by_state[i].label, "PERFORMING") == 0)
      out->running += out->by_state[i].n;
  if (began)
    db_rollback(store_db(st)); /* a read: nothing to keep */
  if (rc < 0) {
    berth_task_stats_clear(out);
    return berth_error_wrap(err, "read the task statistics");
  }
  return 0;
}

void
berth_task_stats_clear(berth_task_stats *s)
{
  for (size_t i = 0; i < s->n_states; i++)
    free(s->by_state[i].label);
  for (size_t i = 0; i < s->n_stacks; i++)
    free(s->queued_by_stack[i].label);
  free(s->by_state);
  free(s->queued_by_stack);
  memset(s, 0, sizeof *s);
}
