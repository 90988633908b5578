/* Task statistics for the metrics (include/berth/metrics.h): aggregates computed by the database. */
#include <pthread.h>
#include <stdint.h>
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

/* One histogram: the count and sum of (b - a) ms over the rows where cond holds (and, with r, the rows of r; with
 * window, those of seq in (window[0], window[1]]), and per bucket. */
static int
histogram(berth_store *st, const char *a, const char *b, const char *cond, const store_task_range *r,
          const int64_t *window, berth_histogram *h, berth_error **err)
{
  berth_buf sql;
  berth_buf_init(&sql, 8192);
  int brc = berth_buf_printf(&sql, "SELECT COUNT(*), COALESCE(SUM(%s - %s), 0)", b, a);
  for (int i = 0; brc == 0 && i < BERTH_STATS_BUCKETS; i++)
    brc = berth_buf_printf(&sql, ", COALESCE(SUM(CASE WHEN %s - %s <= %lld THEN 1 ELSE 0 END), 0)", b, a,
                           (long long) (berth_stats_bucket_le[i] * 1000));
  if (brc == 0)
    brc = berth_buf_printf(&sql, " FROM tasks WHERE %s%s%s", cond, r || window ? " AND " : "",
                           r        ? store_task_range_sql(r)
                           : window ? "seq > ? AND seq <= ?"
                                    : "");
  db_stmt *s = NULL;
  int rc = brc < 0 ? berth_error_set(err, BERTH_EINTERNAL, "out of memory") /* never a query cut short */
                   : db_prepare(store_db(st), sql.data, &s, err);
  berth_buf_free(&sql);
  if (rc < 0)
    return rc;
  if (r)
    store_task_range_bind(s, 1, r);
  else if (window) {
    db_bind_int64(s, 1, window[0]);
    db_bind_int64(s, 2, window[1]);
  }
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
    rc = histogram(st, "created_at", "started_at", "started_at > 0", r, NULL, &wait, err);
  if (rc == 0)
    rc = histogram(st, "started_at", "finished_at", "started_at > 0 AND finished_at > 0", r, NULL, &duration, err);
  if (rc == 0)
    rc = store_one_number(st, sql, r, &redactions, err);
  /* the sums in whole ms, as read (histogram() gives seconds) */
  if (rc == 0)
    rc = carry_histogram(st, "task_wait", &wait, (int64_t) (wait.sum * 1000.0 + 0.5), err);
  if (rc == 0)
    rc = carry_histogram(st, "task_duration", &duration, (int64_t) (duration.sum * 1000.0 + 0.5), err);
  if (rc == 0)
    rc = carry_number(st, "redactions", redactions, err);
  /* how many: a process's sums of settled tasks (count_settled) are made again after a prune */
  int64_t n = 0;
  cleanup_free char *count = NULL;
  if (rc == 0 && asprintf(&count, "SELECT COUNT(*) FROM tasks WHERE %s", store_task_range_sql(r)) < 0)
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (rc == 0)
    rc = store_one_number(st, count, r, &n, err);
  if (rc == 0)
    rc = carry_number(st, "tasks_pruned", n, err);
  return rc < 0 ? berth_error_wrap(err, "carry the metrics of pruned tasks") : 0;
}

/* Adds what pruned tasks carried (store_carry_task_stats) to the sums over the tasks still kept. */
static int
add_carried(berth_store *st, berth_task_stats *out, int64_t *pruned, berth_error **err)
{
  db_stmt *s = NULL;
  if (db_prepare(store_db(st), "SELECT name, value FROM counters WHERE name LIKE 'task%' OR name = 'redactions'", &s,
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
    if (strcmp(name, "tasks_pruned") == 0) {
      *pruned = v;
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

/* ---- settled tasks, summed once per process ----
 * A task that ended more than SETTLE_MS ago changes no more: only a prune deletes it, counting it in the counter
 * tasks_pruned. Each process keeps, per store, the sums over the tasks up to the first one that has not settled, and
 * a read of the statistics sums only the tasks after it (and moves it on over those settled since): a scrape of a
 * store with years of tasks reads the recent ones, not the whole table. A prune since the sums were made (tasks_pruned
 * moved) makes them again. On PostgreSQL the store's write lock makes tasks visible in the order of their seq. */
#define SETTLE_MS 60000
#define N_ENDED 4
static const char *const ended_states[N_ENDED] = { "CANCELED", "FAILED", "FINISHED", "STOPPED" };

typedef struct settled_sums {
  char store[320]; /* the store's instance id and label */
  int64_t pruned;  /* tasks_pruned when the sums were made */
  int64_t upto;    /* every task of seq <= upto is summed here */
  int64_t by_state[N_ENDED];
  berth_histogram wait, duration;
  int64_t redactions;
} settled_sums;

static pthread_mutex_t settled_mu = PTHREAD_MUTEX_INITIALIZER;
static settled_sums settled; /* of the store read last: a process reads one store */

static void
hist_add(berth_histogram *to, const berth_histogram *h)
{
  to->count += h->count;
  to->sum += h->sum;
  for (int i = 0; i < BERTH_STATS_BUCKETS; i++)
    to->le[i] += h->le[i];
}

/* Adds n tasks in state to out's rows. */
static int
add_state(berth_task_stats *out, const char *state, int64_t n, berth_error **err)
{
  for (size_t i = 0; i < out->n_states; i++)
    if (strcmp(out->by_state[i].label, state) == 0) {
      out->by_state[i].n += n;
      return 0;
    }
  berth_stats_row *r = realloc(out->by_state, (out->n_states + 1) * sizeof *r);
  if (r == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  out->by_state = r;
  if ((r[out->n_states].label = strdup(state)) == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  r[out->n_states++].n = n;
  return 0;
}

/* Adds the sums over the tasks of seq in (lo, hi] to out. */
static int
add_window(berth_store *st, int64_t lo, int64_t hi, berth_task_stats *out, berth_error **err)
{
  const int64_t w[2] = { lo, hi };
  db_stmt *s = NULL;
  if (db_prepare(store_db(st), "SELECT state, COUNT(*) FROM tasks WHERE seq > ? AND seq <= ? GROUP BY state", &s, err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_int64(s, 1, lo);
  db_bind_int64(s, 2, hi);
  int rc;
  while ((rc = db_step(s, err)) == DB_ROW) {
    const char *state = db_column_text(s, 0);
    if (state != NULL && (rc = add_state(out, state, db_column_int64(s, 1), err)) < 0)
      break;
  }
  db_finalize(s);
  berth_histogram wait = { 0 }, duration = { 0 };
  int64_t redactions = 0;
  if (rc >= 0)
    rc = histogram(st, "created_at", "started_at", "started_at > 0", NULL, w, &wait, err);
  if (rc == 0)
    rc = histogram(st, "started_at", "finished_at", "started_at > 0 AND finished_at > 0", NULL, w, &duration, err);
  if (rc == 0
      && db_prepare(store_db(st), "SELECT COALESCE(SUM(redactions), 0) FROM tasks WHERE seq > ? AND seq <= ?", &s, err)
             < 0)
    rc = BERTH_EINTERNAL;
  if (rc == 0) {
    db_bind_int64(s, 1, lo);
    db_bind_int64(s, 2, hi);
    rc = db_step(s, err);
    if (rc == DB_ROW)
      redactions = db_column_int64(s, 0);
    db_finalize(s);
  }
  if (rc < 0)
    return rc;
  hist_add(&out->wait, &wait);
  hist_add(&out->duration, &duration);
  out->redactions += redactions;
  return 0;
}

/* The seq up to which every task has settled, from after (settled already). */
static int
settled_upto(berth_store *st, int64_t after, int64_t *upto, berth_error **err)
{
  db_stmt *s = NULL;
  if (db_prepare(store_db(st),
                 "SELECT seq FROM tasks WHERE seq > ? AND (state NOT IN " STORE_TERMINAL_SQL " OR finished_at >= ?)"
                 " ORDER BY seq LIMIT 1",
                 &s, err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_int64(s, 1, after);
  db_bind_int64(s, 2, berth_now_ms() - SETTLE_MS);
  int rc = db_step(s, err);
  if (rc == DB_ROW)
    *upto = db_column_int64(s, 0) - 1;
  db_finalize(s);
  if (rc < 0 || rc == DB_ROW)
    return rc < 0 ? rc : 0;
  int64_t last = 0; /* none unsettled: all of them */
  rc = store_one_number(st, "SELECT COALESCE(MAX(seq), 0) FROM tasks", NULL, &last, err);
  *upto = last > after ? last : after;
  return rc;
}

/* Sums the tasks settled since the process last did (all of them after a prune, or for another store) into *c. */
static int
sum_settled(berth_store *st, int64_t pruned, settled_sums *c, berth_error **err)
{
  char key[sizeof c->store];
  snprintf(key, sizeof key, "%s %s", berth_store_instance_id(st), db_label(store_db(st)));
  pthread_mutex_lock(&settled_mu);
  *c = settled;
  pthread_mutex_unlock(&settled_mu);
  if (strcmp(c->store, key) != 0 || c->pruned != pruned) {
    memset(c, 0, sizeof *c);
    snprintf(c->store, sizeof c->store, "%s", key);
    c->pruned = pruned;
  }
  int64_t upto = c->upto;
  int rc = settled_upto(st, c->upto, &upto, err);
  if (rc < 0 || upto <= c->upto)
    return rc;
  berth_task_stats w = { 0 };
  rc = add_window(st, c->upto, upto, &w, err);
  for (size_t i = 0; rc == 0 && i < w.n_states; i++)
    for (int k = 0; k < N_ENDED; k++)
      if (strcmp(w.by_state[i].label, ended_states[k]) == 0)
        c->by_state[k] += w.by_state[i].n; /* only ended tasks settle */
  if (rc == 0) {
    hist_add(&c->wait, &w.wait);
    hist_add(&c->duration, &w.duration);
    c->redactions += w.redactions;
    c->upto = upto;
    pthread_mutex_lock(&settled_mu);
    if (strcmp(settled.store, c->store) != 0 || settled.pruned != c->pruned || settled.upto < c->upto)
      settled = *c;
    pthread_mutex_unlock(&settled_mu);
  }
  berth_task_stats_clear(&w);
  return rc;
}

int
berth_store_task_stats(berth_store *st, berth_task_stats *out, berth_error **err)
{
  memset(out, 0, sizeof *out);
  int rc = db_begin_read(store_db(st), err); /* one snapshot: the numbers agree with each other */
  bool began = rc == 0;
  int64_t pruned = 0;
  settled_sums c;
  if (rc == 0)
    rc = rows(st, "SELECT stack, COUNT(*) FROM tasks WHERE state = 'QUEUED' GROUP BY stack ORDER BY stack",
              &out->queued_by_stack, &out->n_stacks, err);
  if (rc == 0)
    rc = add_carried(st, out, &pruned, err);
  if (rc == 0)
    rc = sum_settled(st, pruned, &c, err);
  if (rc == 0)
    rc = add_window(st, c.upto, INT64_MAX, out, err); /* the tasks that have not settled */
  for (int k = 0; rc == 0 && k < N_ENDED; k++)
    rc = add_state(out, ended_states[k], c.by_state[k], err);
  if (rc == 0) {
    hist_add(&out->wait, &c.wait);
    hist_add(&out->duration, &c.duration);
    out->redactions += c.redactions;
  }
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
