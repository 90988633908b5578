/* Retention of ended tasks (include/berth/retention.h): their rows, history and logs deleted in batches, each batch
 * one transaction with its audit record. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "berth/audit.h"
#include "berth/buf.h"
#include "berth/cleanup.h"
#include "berth/parse.h"
#include "berth/retention.h"
#include "berth/stack_json.h"
#include "berth/task_log.h"
#include "store_int.h"

#define PRUNE_BATCH 500
#define PRUNE_MIN_AGE_MS                                                                                               \
  1000 /* a task that ended in the last second keeps its log: its last write may be under way                          \
        */

int
berth_prune_age_parse(const char *s, const char *what, int64_t *ms, berth_error **err)
{
  size_t n = strspn(s, "0123456789");
  if (n > 0 && s[n] == '\0')
    return berth_error_set(err, BERTH_EINVAL, "%s: `%.32s` needs a unit (\"%.16sd\" for days, \"%.16sh\" for hours)",
                           what, s, s, s);
  if (berth_parse_duration_ms(s, ms, err) < 0)
    return berth_error_wrap(err, "%s", what);
  if (*ms == 0) /* config.json's task_retention 0 keeps every task: here 0 would delete them all */
    return berth_error_set(err, BERTH_EINVAL, "%s must be more than 0 (to prune every ended task, say \"1s\")", what);
  if (*ms > BERTH_PRUNE_MAX_AGE_MS)
    return berth_error_set(err, BERTH_EINVAL, "%s: `%.32s` is more than 3650 days", what, s);
  return 0;
}

int
berth_prune_parse(const cJSON *body, berth_prune *out, berth_error **err)
{
  static const char *const known[] = { "older_than", "stack", "dry_run", NULL };
  memset(out, 0, sizeof *out);
  if (!cJSON_IsObject(body))
    return berth_error_set(err, BERTH_EINVAL, "the body must be a JSON object with `older_than` (\"30d\")");
  if (berth_json_only(body, known, "prune", err) < 0)
    return BERTH_EINVAL;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "older_than");
  if (v == NULL || cJSON_IsNull(v))
    return berth_error_set(err, BERTH_EINVAL, "field `older_than` is required: how long ago a task ended (\"30d\")");
  if (!cJSON_IsString(v))
    return berth_error_set(err, BERTH_EINVAL, "field `older_than` must be a duration string such as \"30d\"");
  if (berth_prune_age_parse(v->valuestring, "field `older_than`", &out->older_than_ms, err) < 0)
    return BERTH_EINVAL;
  v = cJSON_GetObjectItemCaseSensitive(body, "stack");
  if (v != NULL && !cJSON_IsNull(v)) {
    if (!cJSON_IsString(v))
      return berth_error_set(err, BERTH_EINVAL, "field `stack` must be a stack name");
    if (berth_stack_validate_name(v->valuestring, err) < 0)
      return berth_error_wrap(err, "field `stack`");
    snprintf(out->stack, sizeof out->stack, "%s", v->valuestring);
  }
  v = cJSON_GetObjectItemCaseSensitive(body, "dry_run");
  if (v != NULL && !cJSON_IsNull(v)) {
    if (!cJSON_IsBool(v))
      return berth_error_set(err, BERTH_EINVAL, "field `dry_run` must be true or false");
    out->dry_run = cJSON_IsTrue(v);
  }
  return 0;
}

cJSON *
berth_prune_result_to_json(const berth_prune *p, const berth_prune_result *r)
{
  char when[BERTH_TIME_LEN];
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "before", berth_format_time(r->before_ms, when, sizeof when));
  if (p->stack[0])
    cJSON_AddStringToObject(o, "stack", p->stack);
  cJSON_AddNumberToObject(o, "tasks", (double) r->tasks);
  cJSON_AddNumberToObject(o, "log_bytes", (double) r->log_bytes);
  cJSON_AddBoolToObject(o, "dry_run", p->dry_run);
  return o;
}

typedef struct batch {
  int64_t seq[PRUNE_BATCH];
  char *id[PRUNE_BATCH];
  size_t n;
} batch;

static void
batch_clear(batch *b)
{
  for (size_t i = 0; i < b->n; i++)
    free(b->id[i]);
  b->n = 0;
}

/* The next ended tasks past after_seq that ended before `before`, oldest first: the range's own condition, open at
 * its top. */
static int
select_batch(berth_store *st, const berth_prune *p, int64_t before, int64_t after_seq, batch *b, berth_error **err)
{
  store_task_range r = { after_seq, INT64_MAX, before, p->stack[0] ? p->stack : NULL };
  cleanup_free char *sql = NULL;
  if (asprintf(&sql, "SELECT seq, id FROM tasks WHERE %s ORDER BY seq LIMIT %d", store_task_range_sql(&r), PRUNE_BATCH)
      < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  db_stmt *s = NULL;
  if (db_prepare(store_db(st), sql, &s, err) < 0)
    return BERTH_EINTERNAL;
  store_task_range_bind(s, 1, &r);
  int rc = 0;
  bool oom = false;
  while (b->n < PRUNE_BATCH && (rc = db_step(s, err)) == DB_ROW) {
    b->seq[b->n] = db_column_int64(s, 0);
    b->id[b->n] = db_column_strdup(s, 1, &oom);
    b->n++;
    if (oom)
      break;
  }
  db_finalize(s);
  if (oom)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  return rc < 0 ? rc : 0;
}

/* head + the range's condition + tail, its binds those of the range: a write the commit waits for */
static int
run_sql(berth_store *st, const char *head, const store_task_range *r, const char *tail, berth_error **err)
{
  cleanup_free char *sql = NULL;
  if (asprintf(&sql, "%s%s%s", head, store_task_range_sql(r), tail) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  db_stmt *s = NULL;
  if (db_prepare(store_db(st), sql, &s, err) < 0)
    return BERTH_EINTERNAL;
  store_task_range_bind(s, 1, r);
  return db_run_later(s, err);
}

/* The stored size of the batch's logs: files on SQLite, chunks on PostgreSQL. */
static int
batch_log_bytes(berth_store *st, const batch *b, const store_task_range *r, int64_t *bytes, berth_error **err)
{
  if (store_is_sqlite(st)) {
    for (size_t i = 0; i < b->n; i++) {
      cleanup_free char *path = berth_task_log_path(st->home, b->id[i]);
      struct stat sb;
      if (path && stat(path, &sb) == 0)
        *bytes += (int64_t) sb.st_size;
    }
    return 0;
  }
  cleanup_free char *sql = NULL;
  if (asprintf(&sql,
               "SELECT COALESCE(SUM(len), 0) FROM task_log_chunks WHERE task_id IN (SELECT id FROM tasks WHERE %s)",
               store_task_range_sql(r))
      < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  int64_t n = 0;
  int rc = store_one_number(st, sql, r, &n, err);
  *bytes += n;
  return rc;
}

/* Deletes one batch (already selected in this transaction: r is exactly its tasks) and records it in the audit
 * trail. */
static int
delete_batch(berth_store *st, const berth_prune *p, const batch *b, const store_task_range *r, const char *actor,
             berth_error **err)
{
  int rc = store_carry_task_stats(st, r, err);
  if (rc == 0)
    rc = run_sql(st, "DELETE FROM task_log_chunks WHERE task_id IN (SELECT id FROM tasks WHERE ", r, ")", err);
  if (rc == 0 && !store_is_sqlite(st))
    rc = run_sql(st, "DELETE FROM log_followers WHERE task_id IN (SELECT id FROM tasks WHERE ", r, ")", err);
  if (rc == 0)
    rc = run_sql(st, "DELETE FROM task_transitions WHERE task_seq IN (SELECT seq FROM tasks WHERE ", r, ")", err);
  if (rc == 0)
    rc = run_sql(st, "DELETE FROM tasks WHERE ", r, "", err);
  if (rc == 0) {
    char when[BERTH_TIME_LEN];
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "before", berth_format_time(r->before_ms, when, sizeof when));
    cJSON_AddNumberToObject(args, "tasks", (double) b->n);
    cJSON_AddStringToObject(args, "first", b->id[0]);
    cJSON_AddStringToObject(args, "last", b->id[b->n - 1]);
    rc = berth_audit_append(st, actor, "task.prune", p->stack[0] ? p->stack : "*", args, "ok", err);
    cJSON_Delete(args);
  }
  return rc;
}

int
berth_tasks_prune(berth_store *st, const berth_prune *p, const char *actor, berth_prune_result *out, berth_error **err)
{
  memset(out, 0, sizeof *out);
  int64_t age = p->older_than_ms < PRUNE_MIN_AGE_MS ? PRUNE_MIN_AGE_MS : p->older_than_ms;
  out->before_ms = berth_now_ms() - age;
  batch *b = calloc(1, sizeof *b);
  if (b == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  int64_t after = 0;
  int rc = 0;
  for (int n_batches = 0;; n_batches++) {
    if (p->max_batches > 0 && n_batches == p->max_batches) {
      out->more = true; /* the rest goes next time */
      break;
    }
    if (!p->dry_run && (rc = berth_store_begin(st, err)) < 0)
      break;
    rc = select_batch(st, p, out->before_ms, after, b, err);
    if (rc == 0 && b->n == 0) {
      if (!p->dry_run)
        berth_store_rollback(st); /* nothing written */
      break;
    }
    store_task_range r = { after, rc == 0 ? b->seq[b->n - 1] : after, out->before_ms, p->stack[0] ? p->stack : NULL };
    int64_t bytes = 0;
    if (rc == 0)
      rc = batch_log_bytes(st, b, &r, &bytes, err);
    if (rc == 0 && !p->dry_run)
      rc = delete_batch(st, p, b, &r, actor, err);
    if (rc == 0 && !p->dry_run)
      rc = berth_store_commit(st, err);
    else if (rc < 0 && !p->dry_run)
      berth_store_rollback(st);
    if (rc < 0)
      break;
    out->tasks += (int64_t) b->n;
    out->log_bytes += bytes;
    after = r.last_seq;
    if (!p->dry_run && store_is_sqlite(st)) /* the rows are gone: their files are never read again */
      for (size_t i = 0; i < b->n; i++) {
        cleanup_free char *path = berth_task_log_path(st->home, b->id[i]);
        if (path && unlink(path) < 0 && errno != ENOENT)
          fprintf(stderr, "berth: could not remove the log %s: %s\n", path, strerror(errno));
      }
    batch_clear(b);
  }
  batch_clear(b);
  free(b);
  if (rc < 0)
    return berth_error_wrap(err, "prune tasks");
  return 0;
}
