/* Task statistics for the metrics (include/berth/metrics.h): aggregates computed by the database. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/buf.h"
#include "berth/cleanup.h"
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

const char *
store_task_range_sql(const store_task_range *r)
{
  return r->stack ? "seq > ? AND seq <= ? AND finished_at > 0 AND finished_at < ? AND state IN " STORE_TERMINAL_SQL
                    " AND stack = ?"
                  : "seq > ? AND seq <= ? AND finished_at > 0 AND finished_at < ? AND state IN " STORE_TERMINAL_SQL;
}

void
store_task_range_bind(db_stmt *s, int first, const store_task_range *r)
{
  db_bind_int64(s, first, r->after_seq);
  db_bind_int64(s, first + 1, r->last_seq);
  db_bind_int64(s, first + 2, r->before_ms);
  if (r->stack)
    db_bind_text(s, first + 3, r->stack);
}

int
store_one_number(berth_store *st, const char *sql, const store_task_range *r, int64_t *out, berth_error **err)
{
  db_stmt *s = NULL;
  if (db_prepare(store_db(st), sql, &s, err) < 0)
    return BERTH_EINTERNAL;
  if (r)
    store_task_range_bind(s, 1, r);
  int rc = db_step(s, err);
  if (rc == DB_ROW)
    *out = db_column_int64(s, 0);
  db_finalize(s);
  return rc < 0 ? rc : 0;
}

/* One histogram: the count and sum of (b - a) ms over the rows where cond holds (and, with r, the rows of r), and per
 * bucket. */
static int
histogram(berth_store *st, const char *a, const char *b, const char *cond, const store_task_range *r,
          berth_histogram *h, berth_error **err)
{
  berth_buf sql;
  berth_buf_init(&sql, 8192);
  int brc = berth_buf_printf(&sql, "SELECT COUNT(*), COALESCE(SUM(%s - %s), 0)", b, a);
  for (int i = 0; brc == 0 && i < BERTH_STATS_BUCKETS; i++)
    brc = berth_buf_printf(&sql, ", COALESCE(SUM(CASE WHEN %s - %s <= %lld THEN 1 ELSE 0 END), 0)", b, a,
                           (long long) (berth_stats_bucket_le[i] * 1000));
  if (brc == 0)
    brc = berth_buf_printf(&sql, " FROM tasks WHERE %s%s%s", cond, r ? " AND " : "", r ? store_task_range_sql(r) : "");
  db_stmt *s = NULL;
  int rc = brc < 0 ? berth_error_set(err, BERTH_EINTERNAL, "out of memory") /* never a query cut short */
                   : db_prepare(store_db(st), sql.data, &s, err);
  berth_buf_free(&sql);
  if (rc < 0)
    return rc;
  if (r)
    store_task_range_bind(s, 1, r);
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

/* The counters a histogram's rows carry when they are deleted (task retention): "<prefix>_count", "<prefix>_sum_ms",
 * "<prefix>_le_<i>". */
static int
carry_number(berth_store *st, const char *name, int64_t v, berth_error **err)
{
  if (v == 0)
    return 0;
  db_stmt *s = NULL;
  if (db_prepare(store_db(st),
                 "INSERT INTO counters (name, value) VALUES (?, ?)"
                 " ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value",
                 &s, err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_text(s, 1, name);
  db_bind_int64(s, 2, v);
  return db_run_later(s, err);
}

static int
carry_histogram(berth_store *st, const char *prefix, const berth_histogram *h, int64_t sum_ms, berth_error **err)
{
  char name[64];
  snprintf(name, sizeof name, "%s_count", prefix);
  int rc = carry_number(st, name, (int64_t) h->count, err);
  snprintf(name, sizeof name, "%s_sum_ms", prefix);
  if (rc == 0)
    rc = carry_number(st, name, sum_ms, err);
  for (int i = 0; rc == 0 && i < BERTH_STATS_BUCKETS; i++) {
    snprintf(name, sizeof name, "%s_le_%d", prefix, i);
    rc = carry_number(st, name, (int64_t) h->le[i], err);
  }
  return rc;
}

int
store_carry_task_stats(berth_store *st, const store_task_range *r, berth_error **err)
{
  berth_histogram wait = { 0 }, duration = { 0 };
  int64_t redactions = 0;
  cleanup_free char *sql = NULL;
  int rc = asprintf(&sql, "SELECT COALESCE(SUM(redactions), 0) FROM tasks WHERE %s", store_task_range_sql(r)) < 0
               ? berth_error_set(err, BERTH_EINTERNAL, "out of memory")
               : 0;
  if (rc == 0)
    rc = histogram(st, "created_at", "started_at", "started_at > 0", r, &wait, err);
  if (rc == 0)
    rc = histogram(st, "started_at", "finished_at", "started_at > 0 AND finished_at > 0", r, &duration, err);
  if (rc == 0)
    rc = store_one_number(st, sql, r, &redactions, err);
  /* the sums in whole ms, as read (histogram() gives seconds) */
  if (rc == 0)
    rc = carry_histogram(st, "task_wait", &wait, (int64_t) (wait.sum * 1000.0 + 0.5), err);
  if (rc == 0)
    rc = carry_histogram(st, "task_duration", &duration, (int64_t) (duration.sum * 1000.0 + 0.5), err);
  if (rc == 0)
    rc = carry_number(st, "redactions", redactions, err);
  return rc < 0 ? berth_error_wrap(err, "carry the metrics of pruned tasks") : 0;
}

/* Adds what pruned tasks carried (store_carry_task_stats) to the sums over the tasks still kept. */
static int
add_carried(berth_store *st, berth_task_stats *out, berth_error **err)
{
  db_stmt *s = NULL;
  if (db_prepare(store_db(st), "SELECT name, value FROM counters WHERE name LIKE 'task_%' OR name = 'redactions'", &s,
                 err)
      < 0)
    return BERTH_EINTERNAL;
  int rc;
  while ((rc = db_step(s, err)) == DB_ROW) {
    const char *name = db_column_text(s, 0);
    int64_t v = db_column_int64(s, 1);
    if (name == NULL)
      continue;
    if (strcmp(name, "redactions") == 0) {
      out->redactions += v;
      continue;
    }
    berth_histogram *h = strncmp(name, "task_wait_", 10) == 0       ? &out->wait
                         : strncmp(name, "task_duration_", 14) == 0 ? &out->duration
                                                                    : NULL;
    if (h == NULL)
      continue;
    const char *rest = name + (h == &out->wait ? 10 : 14);
    if (strcmp(rest, "count") == 0)
      h->count += (uint64_t) v;
    else if (strcmp(rest, "sum_ms") == 0)
      h->sum += (double) v / 1000.0;
    else if (strncmp(rest, "le_", 3) == 0) {
      int i = atoi(rest + 3);
      if (i >= 0 && i < BERTH_STATS_BUCKETS)
        h->le[i] += (uint64_t) v;
    }
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
    rc = histogram(st, "created_at", "started_at", "started_at > 0", NULL, &out->wait, err);
  if (rc == 0)
    rc = histogram(st, "started_at", "finished_at", "started_at > 0 AND finished_at > 0", NULL, &out->duration, err);
  if (rc == 0)
    rc = store_one_number(st, "SELECT COALESCE(SUM(redactions), 0) FROM tasks", NULL, &out->redactions, err);
  if (rc == 0)
    rc = add_carried(st, out, err);
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
