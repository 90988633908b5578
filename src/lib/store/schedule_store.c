/* Schedules and their fires in the store (include/berth/schedule.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/cleanup.h"
#include "berth/schedule.h"
#include "store_int.h"

/* the schedule's columns, and its latest fire (a correlated subquery each: a store holds few schedules) */
#define LAST_FIRE(col)                                                                                                 \
  " (SELECT f." col " FROM schedule_fires f WHERE f.schedule_id = s.id ORDER BY f.fire_time DESC LIMIT 1)"
#define SCHEDULE_COLS                                                                                                  \
  "s.id, s.stack, s.name, s.cron, s.tz, s.at_ms, s.command, s.skip_init, s.env, s.catch_up, s.paused, s.actor,"        \
  " s.role, s.next_fire, s.created_at, s.updated_at," LAST_FIRE("fire_time") "," LAST_FIRE("outcome") "," LAST_FIRE(   \
      "task_id") "," LAST_FIRE("message") ", s.shown_command"

void
berth_schedule_free(berth_schedule *s)
{
  if (s == NULL)
    return;
  free(s->stack);
  free(s->name);
  free(s->cron);
  free(s->tz);
  free(s->command);
  free(s->shown_command);
  berth_kv_array_free(s->env, s->n_env);
  free(s->catch_up);
  free(s->actor);
  free(s->role);
  free(s->last_outcome);
  free(s->last_task_id);
  free(s->last_message);
  free(s);
}

void
berth_schedules_free(berth_schedule **v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    berth_schedule_free(v[i]);
  free(v);
}

int
berth_store_schedule_create(berth_store *st, const berth_schedule *s, berth_error **err)
{
  cleanup_free char *env = NULL;
  if (store_kv_encode(st, s->env, s->n_env, false, &env, err) < 0)
    return BERTH_EINTERNAL;
  db_stmt *stmt = NULL;
  int64_t now = berth_now_ms(), changed = 0;
  if (db_prepare(
          st->db,
          "INSERT INTO schedules (stack, name, cron, tz, at_ms, command, skip_init, env, catch_up, paused, actor,"
          " role, next_fire, created_at, updated_at, shown_command) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, "
          "?, ?"
          " WHERE EXISTS (SELECT 1 FROM stacks WHERE name = ?) ON CONFLICT (stack, name) DO NOTHING",
          &stmt, err)
      < 0)
    return BERTH_EINTERNAL;
  int i = 1;
  db_bind_text(stmt, i++, s->stack);
  db_bind_text(stmt, i++, s->name);
  db_bind_text(stmt, i++, s->cron);
  db_bind_text(stmt, i++, s->tz);
  db_bind_int64(stmt, i++, s->at_ms);
  db_bind_text(stmt, i++, s->command);
  db_bind_int64(stmt, i++, s->skip_init);
  db_bind_text(stmt, i++, env);
  db_bind_text(stmt, i++, s->catch_up ? s->catch_up : "once");
  db_bind_text(stmt, i++, s->actor ? s->actor : "berth");
  db_bind_text(stmt, i++, s->role);
  db_bind_int64(stmt, i++, s->next_fire);
  db_bind_int64(stmt, i++, now);
  db_bind_int64(stmt, i++, now);
  db_bind_text(stmt, i++, s->shown_command);
  db_bind_text(stmt, i, s->stack);
  if (db_run(stmt, &changed, err) < 0)
    return berth_error_wrap(err, "add schedule `%s` of stack `%s`", s->name, s->stack);
  if (changed == 1)
    return 0;
  berth_stack *found = NULL;
  int rc = berth_store_stack_get(st, s->stack, &found, err);
  berth_stack_free(found);
  if (rc < 0)
    return rc;
  return berth_error_set(err, BERTH_EBUSY, "stack `%s` already has a schedule `%s`", s->stack, s->name);
}

static int
read_schedule(berth_store *st, db_stmt *stmt, berth_schedule **out, berth_error **err)
{
  berth_schedule *s = calloc(1, sizeof *s);
  bool oom = s == NULL;
  if (oom)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  s->id = db_column_int64(stmt, 0);
  s->stack = db_column_strdup(stmt, 1, &oom);
  s->name = db_column_strdup(stmt, 2, &oom);
  s->cron = db_column_strdup(stmt, 3, &oom);
  s->tz = db_column_strdup(stmt, 4, &oom);
  s->at_ms = db_column_int64(stmt, 5);
  s->command = db_column_strdup(stmt, 6, &oom);
  s->skip_init = db_column_int64(stmt, 7) != 0;
  int rc = store_kv_decode(st, db_column_text(stmt, 8), false, &s->env, &s->n_env, err);
  s->catch_up = db_column_strdup(stmt, 9, &oom);
  s->paused = db_column_int64(stmt, 10) != 0;
  s->actor = db_column_strdup(stmt, 11, &oom);
  s->role = db_column_strdup(stmt, 12, &oom);
  s->next_fire = db_column_int64(stmt, 13);
  s->created_at = db_column_int64(stmt, 14);
  s->updated_at = db_column_int64(stmt, 15);
  s->last_fire = db_column_int64(stmt, 16);
  s->last_outcome = db_column_strdup(stmt, 17, &oom);
  s->last_task_id = db_column_strdup(stmt, 18, &oom);
  s->last_message = db_column_strdup(stmt, 19, &oom);
  s->shown_command = db_column_strdup(stmt, 20, &oom);
  if (rc == 0 && oom)
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (rc < 0) {
    berth_schedule_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

static int
collect(berth_store *st, db_stmt *stmt, berth_schedule ***out, size_t *n, berth_error **err)
{
  berth_schedule **v = NULL;
  size_t count = 0;
  int rc = 0, src;
  while ((src = db_step(stmt, err)) == DB_ROW) {
    berth_schedule **nv = realloc(v, (count + 1) * sizeof *nv);
    if (nv == NULL) {
      rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
      break;
    }
    v = nv;
    if ((rc = read_schedule(st, stmt, &v[count], err)) < 0)
      break;
    count++;
  }
  if (rc == 0 && src != DB_DONE)
    rc = berth_error_wrap(err, "read schedules");
  db_finalize(stmt);
  if (rc < 0) {
    berth_schedules_free(v, count);
    return rc;
  }
  *out = v;
  *n = count;
  return 0;
}

int
berth_store_schedule_get(berth_store *st, const char *stack, const char *name, berth_schedule **out, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, "SELECT " SCHEDULE_COLS " FROM schedules s WHERE s.stack = ? AND s.name = ?", &stmt, err) < 0)
    return BERTH_EINTERNAL;
  db_bind_text(stmt, 1, stack);
  db_bind_text(stmt, 2, name);
  berth_schedule **v = NULL;
  size_t n = 0;
  if (collect(st, stmt, &v, &n, err) < 0)
    return BERTH_EINTERNAL;
  if (n == 0) {
    free(v);
    return berth_error_set(err, BERTH_ENOTFOUND, "stack `%.80s` has no schedule `%.80s`", stack, name);
  }
  *out = v[0];
  v[0] = NULL;
  berth_schedules_free(v, n);
  return 0;
}

int
berth_store_schedule_list(berth_store *st, const char *stack, berth_schedule ***out, size_t *n, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (stack) { /* the schedules of a stack that does not exist: that it does not, as for its other records */
    berth_stack *s = NULL;
    int rc = berth_store_stack_get(st, stack, &s, err);
    berth_stack_free(s);
    if (rc < 0)
      return rc;
  }
  if (db_prepare(st->db,
                 stack ? "SELECT " SCHEDULE_COLS " FROM schedules s WHERE s.stack = ? ORDER BY s.stack, s.name"
                       : "SELECT " SCHEDULE_COLS " FROM schedules s ORDER BY s.stack, s.name",
                 &stmt, err)
      < 0)
    return BERTH_EINTERNAL;
  if (stack)
    db_bind_text(stmt, 1, stack);
  return collect(st, stmt, out, n, err);
}

int
berth_store_schedule_due(berth_store *st, int64_t now_ms, berth_schedule ***out, size_t *n, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db,
                 "SELECT " SCHEDULE_COLS " FROM schedules s WHERE s.paused = 0 AND s.next_fire > 0 AND s.next_fire <= ?"
                 " ORDER BY s.next_fire",
                 &stmt, err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_int64(stmt, 1, now_ms);
  return collect(st, stmt, out, n, err);
}

/* Runs a statement on (stack, name) binding `pre` values first; ENOTFOUND when no row changed. */
static int
change(berth_store *st, const char *sql, const int64_t *pre, int npre, const char *stack, const char *name,
       berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, sql, &stmt, err) < 0)
    return BERTH_EINTERNAL;
  for (int i = 0; i < npre; i++)
    db_bind_int64(stmt, i + 1, pre[i]);
  db_bind_text(stmt, npre + 1, stack);
  db_bind_text(stmt, npre + 2, name);
  int64_t changed = 0;
  if (db_run(stmt, &changed, err) < 0)
    return berth_error_wrap(err, "change schedule `%s` of stack `%s`", name, stack);
  if (changed == 0)
    return berth_error_set(err, BERTH_ENOTFOUND, "stack `%.80s` has no schedule `%.80s`", stack, name);
  return 0;
}

int
berth_store_schedule_delete(berth_store *st, const char *stack, const char *name, berth_error **err)
{
  if (berth_store_begin(st, err) < 0)
    return BERTH_EINTERNAL;
  db_stmt *carry = NULL; /* what its fires counted stays in the metrics' counters */
  int rc = db_prepare(
      st->db, STORE_CARRY_FIRES("schedule_id IN (SELECT id FROM schedules WHERE stack = ? AND name = ?)"), &carry, err);
  for (int i = 0; rc == 0 && i < 3; i++) {
    db_bind_text(carry, 2 * i + 1, stack);
    db_bind_text(carry, 2 * i + 2, name);
  }
  if (rc == 0)
    rc = db_run(carry, NULL, err);
  else
    db_finalize(carry);
  if (rc == 0)
    rc = change(st,
                "DELETE FROM schedule_fires WHERE schedule_id IN (SELECT id FROM schedules WHERE stack = ? AND"
                " name = ?)",
                NULL, 0, stack, name, err);
  if (rc == BERTH_ENOTFOUND) {
    berth_error_clear(err);
    rc = 0;
  }
  if (rc == 0)
    rc = change(st, "DELETE FROM schedules WHERE stack = ? AND name = ?", NULL, 0, stack, name, err);
  if (rc < 0) {
    berth_store_rollback(st);
    return rc;
  }
  return berth_store_commit(st, err);
}

int
berth_store_schedule_set_paused(berth_store *st, const char *stack, const char *name, bool paused, int64_t next_fire,
                                berth_error **err)
{
  int64_t pre[3] = { paused, next_fire, berth_now_ms() };
  return change(st, "UPDATE schedules SET paused = ?, next_fire = ?, updated_at = ? WHERE stack = ? AND name = ?", pre,
                3, stack, name, err);
}

int
berth_store_schedule_advance(berth_store *st, int64_t id, int64_t from, int64_t to, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, "UPDATE schedules SET next_fire = ? WHERE id = ? AND next_fire = ?", &stmt, err) < 0)
    return BERTH_EINTERNAL;
  db_bind_int64(stmt, 1, to);
  db_bind_int64(stmt, 2, id);
  db_bind_int64(stmt, 3, from);
  if (db_run(stmt, NULL, err) < 0)
    return berth_error_wrap(err, "advance schedule %lld", (long long) id);
  return 0;
}

int
berth_store_schedule_fire(berth_store *st, int64_t id, int64_t fire_time, const char *outcome, const char *task_id,
                          const char *message, int64_t missed, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db,
                 "INSERT INTO schedule_fires (schedule_id, fire_time, fired_at, outcome, task_id, message, missed)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (schedule_id, fire_time) DO NOTHING",
                 &stmt, err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_int64(stmt, 1, id);
  db_bind_int64(stmt, 2, fire_time);
  db_bind_int64(stmt, 3, berth_now_ms());
  db_bind_text(stmt, 4, outcome);
  db_bind_text(stmt, 5, task_id);
  db_bind_text(stmt, 6, message);
  db_bind_int64(stmt, 7, missed);
  int64_t changed = 0;
  if (db_run(stmt, &changed, err) < 0)
    return berth_error_wrap(err, "record the fire of schedule %lld", (long long) id);
  if (changed == 0)
    return berth_error_set(err, BERTH_EBUSY, "schedule %lld has fired for this time already", (long long) id);
  return 0;
}

int
berth_store_schedule_fired(berth_store *st, int64_t id, int64_t fire_time, bool *fired, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, "SELECT 1 FROM schedule_fires WHERE schedule_id = ? AND fire_time = ?", &stmt, err) < 0)
    return BERTH_EINTERNAL;
  db_bind_int64(stmt, 1, id);
  db_bind_int64(stmt, 2, fire_time);
  int rc = db_step(stmt, err);
  db_finalize(stmt);
  if (rc < 0)
    return berth_error_wrap(err, "read the fires of schedule %lld", (long long) id);
  *fired = rc == DB_ROW;
  return 0;
}

int
berth_store_schedule_counts(berth_store *st, int64_t *submitted, int64_t *refused, int64_t *missed, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(
          st->db,
          "SELECT COALESCE(SUM(CASE WHEN outcome = 'submitted' THEN 1 ELSE 0 END), 0)"
          " + " STORE_CARRIED(
              "schedule_fires_submitted") ","
                                          " COALESCE(SUM(CASE WHEN outcome = 'refused' THEN 1 ELSE 0 END), 0)"
                                          " + " STORE_CARRIED(
                                              "schedule_fires_refused") ","
                                                                        " COALESCE(SUM(missed), 0) + " STORE_CARRIED(
                                                                            "schedule_misses") " FROM schedule_fires",
          &stmt, err)
      < 0)
    return BERTH_EINTERNAL;
  int rc = db_step(stmt, err);
  if (rc == DB_ROW) {
    *submitted = db_column_int64(stmt, 0);
    *refused = db_column_int64(stmt, 1);
    *missed = db_column_int64(stmt, 2);
  }
  db_finalize(stmt);
  return rc < 0 ? berth_error_wrap(err, "count schedule fires") : 0;
}
