/* Tasks in the store: submission, lookup, listing and durable state transitions. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/cleanup.h"
#include "berth/fleet.h"
#include "berth/parse.h"
#include "store_int.h"

#define TASK_PREFIX_MIN 4

/* blocked_by is derived when read: a QUEUED task is blocked by the oldest unfinished task ahead of it on its stack
 * (kept out of the table, so a queue of waiting tasks writes nothing while it waits) */
#define TASK_COLS                                                                                                      \
  "seq, id, stack, command, actor, triggered_by, state, reason, exit_code, skip_init, env, secret_env,"                \
  " container_id,"                                                                                                     \
  " CASE WHEN tasks.state = 'QUEUED' THEN (SELECT b.id FROM tasks b WHERE b.stack = tasks.stack"                       \
  " AND b.seq < tasks.seq AND b.state NOT IN " STORE_TERMINAL_SQL " ORDER BY b.seq LIMIT 1) END,"                      \
  " supervisor_pid, created_at, started_at, finished_at, host, attempt, retry_of, state_version, secret_names,"        \
  " shown_command, shown_env"

static void fill_wait_reason(berth_store *st, berth_task *t);

static const char *const states[]
    = { "QUEUED", "PREPARING", "INITIALIZING", "PERFORMING", "FINISHED", "FAILED", "CANCELED", "STOPPED" };

/* The contract's graph: from -> the states it may move to. */
static const struct {
  const char *from;
  const char *to[4];
} edges[] = {
  { "QUEUED", { "PREPARING", "CANCELED", "FAILED" } },
  { "PREPARING", { "INITIALIZING", "PERFORMING", "STOPPED", "FAILED" } },
  { "INITIALIZING", { "PERFORMING", "STOPPED", "FAILED" } },
  { "PERFORMING", { "FINISHED", "FAILED" } },
};

bool
berth_task_state_is_valid(const char *state)
{
  for (size_t i = 0; state && i < sizeof states / sizeof states[0]; i++)
    if (strcmp(state, states[i]) == 0)
      return true;
  return false;
}

bool
berth_task_state_is_terminal(const char *state)
{
  return state != NULL
         && (strcmp(state, "FINISHED") == 0 || strcmp(state, "FAILED") == 0 || strcmp(state, "CANCELED") == 0
             || strcmp(state, "STOPPED") == 0);
}

static bool
edge_allowed(const char *from, const char *to)
{
  for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
    if (strcmp(edges[i].from, from) == 0)
      for (size_t j = 0; j < 4 && edges[i].to[j]; j++)
        if (strcmp(edges[i].to[j], to) == 0)
          return true;
  return false;
}

void
berth_task_free(berth_task *t)
{
  if (t == NULL)
    return;
  free(t->id);
  free(t->stack);
  free(t->command);
  free(t->actor);
  free(t->triggered_by);
  free(t->state);
  free(t->reason);
  berth_kv_array_free(t->env, t->n_env);
  berth_kv_array_free(t->secret_env, t->n_secret_env);
  free(t->container_id);
  free(t->blocked_by);
  free(t->host);
  free(t->retry_of);
  free(t->secret_names);
  free(t->shown_command);
  berth_kv_array_free(t->shown_env, t->n_shown_env);
  for (size_t i = 0; i < t->n_history; i++) {
    free(t->history[i].state);
    free(t->history[i].actor);
    free(t->history[i].note);
  }
  free(t->history);
  free(t);
}

void
berth_tasks_free(berth_task **v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    berth_task_free(v[i]);
  free(v);
}

/* 48 bits of milliseconds then 80 random bits, Crockford base32, lowercase: sortable by submission time. */
static void
make_task_id(char out[BERTH_TASK_ID_LEN + 1])
{
  static const char alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
  uint64_t ms = (uint64_t) berth_now_ms();
  for (int i = 9; i >= 0; i--) {
    out[i] = alphabet[ms & 31];
    ms >>= 5;
  }
  unsigned char rnd[10];
  randombytes_buf(rnd, sizeof rnd);
  for (int i = 0; i < 16; i++) {
    int bit = i * 5, v = 0;
    for (int b = 0; b < 5; b++)
      v = (v << 1) | ((rnd[(bit + b) / 8] >> (7 - (bit + b) % 8)) & 1);
    out[10 + i] = alphabet[v];
  }
  out[BERTH_TASK_ID_LEN] = '\0';
}

static int
add_transition(berth_store *st, int64_t seq, const char *state, int64_t at, const char *actor, const char *note,
               berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db,
                 "INSERT INTO task_transitions (task_seq, n, state, at, actor, note) SELECT ?,"
                 " COALESCE(MAX(n), -1) + 1, ?, ?, ?, ? FROM task_transitions WHERE task_seq = ?",
                 &stmt, err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_int64(stmt, 1, seq);
  db_bind_text(stmt, 2, state);
  db_bind_int64(stmt, 3, at);
  db_bind_text(stmt, 4, actor ? actor : "berth");
  db_bind_text(stmt, 5, note);
  db_bind_int64(stmt, 6, seq);
  if (db_run_later(stmt, err) < 0)
    return berth_error_wrap(err, "record task transition");
  return 0;
}

static int
insert_task(berth_store *st, berth_task *t, const char *id, int64_t now, int64_t *seq, berth_error **err)
{
  cleanup_free char *env = NULL, *secret = NULL, *names = NULL, *shown_env = NULL;
  if (store_kv_encode(st, t->env, t->n_env, false, &env, err) < 0
      || store_kv_encode(st, t->secret_env, t->n_secret_env, true, &secret, err) < 0
      || (t->shown_env != NULL && store_kv_encode(st, t->shown_env, t->n_shown_env, false, &shown_env, err) < 0))
    return BERTH_EINTERNAL;
  size_t len = 0;
  for (size_t i = 0; i < t->n_secret_env; i++)
    len += strlen(t->secret_env[i].key) + 1;
  if (len > 0) {
    if ((names = malloc(len)) == NULL)
      return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    names[0] = '\0';
    for (size_t i = 0; i < t->n_secret_env; i++) {
      if (i > 0)
        strcat(names, ",");
      strcat(names, t->secret_env[i].key);
    }
  }
  db_stmt *stmt = NULL;
  if (db_prepare(st->db,
                 "INSERT INTO tasks (id, stack, command, actor, triggered_by, state, skip_init, env, secret_env,"
                 " created_at, retry_of, state_version, secret_names, shown_command, shown_env)"
                 " VALUES (?, ?, ?, ?, ?, 'QUEUED', ?, ?, ?, ?, ?, 1, ?, ?, ?) RETURNING seq",
                 &stmt, err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_text(stmt, 1, id);
  db_bind_text(stmt, 2, t->stack);
  db_bind_text(stmt, 3, t->command);
  db_bind_text(stmt, 4, t->actor);
  db_bind_text(stmt, 5, t->triggered_by);
  db_bind_int64(stmt, 6, t->skip_init);
  db_bind_text(stmt, 7, env);
  db_bind_text(stmt, 8, secret);
  db_bind_int64(stmt, 9, now);
  db_bind_text(stmt, 10, t->retry_of);
  db_bind_text(stmt, 11, names);
  db_bind_text(stmt, 12, t->shown_command);
  db_bind_text(stmt, 13, shown_env);
  int rc = db_step(stmt, err);
  if (rc == DB_ROW)
    *seq = db_column_int64(stmt, 0);
  db_finalize(stmt);
  if (rc < 0)
    return berth_error_wrap(err, "insert task");
  return rc == DB_ROW ? 0 : berth_error_set(err, BERTH_EINTERNAL, "insert task: the store returned no sequence number");
}

static int find_task(berth_store *st, const char *id, bool with_secrets, berth_task **out, berth_error **err);

/* The webhook outbox: a `task.state` event for the task as it is now, written inside the caller's transaction (so
 * the event exists exactly when the change does). Written only while some webhook exists: a store without webhooks
 * keeps no outbox. The payload is redacted when it is delivered (src/lib/events). */
static int
outbox_task_event_of(berth_store *st, const berth_task *t, berth_error **err)
{
  int rc = 0;
  cJSON *o = cJSON_CreateObject(), *task = cJSON_AddObjectToObject(o, "task");
  char when[BERTH_TIME_LEN];
  cJSON_AddStringToObject(o, "event", "task.state");
  cJSON_AddStringToObject(task, "id", t->id);
  cJSON_AddStringToObject(task, "stack", t->stack);
  cJSON_AddStringToObject(task, "state", t->state);
  cJSON_AddNumberToObject(task, "state_version", (double) t->state_version);
  if (t->reason)
    cJSON_AddStringToObject(task, "reason", t->reason);
  else
    cJSON_AddNullToObject(task, "reason");
  if (t->exit_code >= 0)
    cJSON_AddNumberToObject(task, "exit_code", t->exit_code);
  else
    cJSON_AddNullToObject(task, "exit_code");
  cJSON_AddStringToObject(task, "actor", t->actor);
  /* as the task's record says it (berth_task_to_json_redacted): who triggered it, its actor when no one else */
  cJSON_AddStringToObject(task, "triggered_by", t->triggered_by ? t->triggered_by : t->actor);
  const int64_t times[] = { t->created_at, t->started_at, t->finished_at };
  const char *const names[] = { "created_at", "started_at", "finished_at" };
  for (int i = 0; i < 3; i++) {
    if (times[i] > 0)
      cJSON_AddStringToObject(task, names[i], berth_format_time(times[i], when, sizeof when));
    else
      cJSON_AddNullToObject(task, names[i]);
  }
  cJSON_AddStringToObject(o, "at", berth_format_time(berth_now_ms(), when, sizeof when));
  char *payload = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  db_stmt *stmt = NULL;
  if (payload == NULL)
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  else if ((rc = db_prepare(st->db,
                            "INSERT INTO webhook_events (kind, stack, payload, created_at) SELECT 'task.state', ?, ?, ?"
                            " WHERE EXISTS (SELECT 1 FROM webhooks)",
                            &stmt, err))
           == 0) {
    db_bind_text(stmt, 1, t->stack);
    db_bind_text(stmt, 2, payload);
    db_bind_int64(stmt, 3, berth_now_ms());
    rc = db_run_later(stmt, err);
    if (rc < 0)
      berth_error_wrap(err, "record the webhook event of task %s", t->id);
  }
  free(payload);
  return rc < 0 ? rc : 0;
}

/* A fleet's hosts are woken when the transaction commits (a NOTIFY is delivered then, and sent with the commit). */
int
store_notify_queue(berth_store *st, berth_error **err)
{
  if (store_is_sqlite(st))
    return 0;
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, "SELECT pg_notify('berth_queue', '')", &stmt, err) < 0)
    return BERTH_EINTERNAL;
  return db_run_later(stmt, err);
}

int
berth_store_task_create(berth_store *st, berth_task *t, berth_error **err)
{
  if (t->stack == NULL || t->command == NULL || t->actor == NULL)
    return berth_error_set(err, BERTH_EINVAL, "a task needs a stack, a command and an actor");
  char id[BERTH_TASK_ID_LEN + 1];
  make_task_id(id);
  int64_t now = 0, found = 0, seq = 0;
  /* a part of the caller's transaction (which rolls back when this fails), or a transaction of its own */
  if (berth_store_begin_part(st, err) < 0)
    return berth_error_wrap(err, "submit task on stack `%s`", t->stack);
  db_stmt *stmt = NULL;
  int rc = db_prepare(st->db, "SELECT 1 FROM stacks WHERE name = ?", &stmt, err);
  if (rc == 0) {
    db_bind_text(stmt, 1, t->stack);
    int src = db_step(stmt, err);
    found = src == DB_ROW;
    if (src < 0)
      rc = berth_error_wrap(err, "read stack");
    db_finalize(stmt);
  }
  if (rc == 0 && !found)
    rc = berth_error_set(err, BERTH_ENOTFOUND, "stack `%.80s` does not exist", t->stack);
  /* the time once the write lock is held (on PostgreSQL it is taken with the read above): created_at then follows
   * the queue's order (seq) across writers and hosts */
  now = berth_now_ms();
  if (rc == 0)
    rc = insert_task(st, t, id, now, &seq, err);
  if (rc == 0)
    rc = add_transition(st, seq, "QUEUED", now, t->actor, "submitted", err);
  if (rc == 0) { /* the record as inserted: no need to read it back */
    berth_task ev = *t;
    ev.id = id;
    ev.seq = seq;
    ev.state = "QUEUED";
    ev.state_version = 1;
    ev.reason = NULL;
    ev.exit_code = -1;
    ev.created_at = now;
    ev.started_at = ev.finished_at = 0;
    rc = outbox_task_event_of(st, &ev, err);
  }
  if (rc == 0)
    rc = store_notify_queue(st, err);
  if (rc < 0) {
    berth_store_rollback(st);
    return rc;
  }
  if (berth_store_commit(st, err) < 0)
    return berth_error_wrap(err, "submit task on stack `%s`", t->stack);
  char *nid = strdup(id);
  char *nstate = t->state ? NULL : strdup("QUEUED");
  if (nid == NULL || (t->state == NULL && nstate == NULL)) {
    free(nid);
    free(nstate);
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  free(t->id);
  t->id = nid;
  if (nstate)
    t->state = nstate;
  t->seq = seq;
  t->created_at = now;
  t->exit_code = -1;
  return 0;
}

/* Reads one row of TASK_COLS; secrets are decrypted only when with_secrets. */
static int
read_task(berth_store *st, db_stmt *stmt, bool with_secrets, berth_task **out, berth_error **err)
{
  berth_task *t = calloc(1, sizeof *t);
  bool oom = t == NULL;
  if (oom)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  t->seq = db_column_int64(stmt, 0);
  t->id = db_column_strdup(stmt, 1, &oom);
  t->stack = db_column_strdup(stmt, 2, &oom);
  t->command = db_column_strdup(stmt, 3, &oom);
  t->actor = db_column_strdup(stmt, 4, &oom);
  t->triggered_by = db_column_strdup(stmt, 5, &oom);
  t->state = db_column_strdup(stmt, 6, &oom);
  t->reason = db_column_strdup(stmt, 7, &oom);
  t->exit_code = (int) db_column_int64(stmt, 8);
  t->skip_init = (int) db_column_int64(stmt, 9) != 0;
  int rc = store_kv_decode(st, db_column_text(stmt, 10), false, &t->env, &t->n_env, err);
  if (rc == 0 && with_secrets && !db_column_is_null(stmt, 11))
    rc = store_kv_decode(st, db_column_text(stmt, 11), true, &t->secret_env, &t->n_secret_env, err);
  t->container_id = db_column_strdup(stmt, 12, &oom);
  t->blocked_by = db_column_strdup(stmt, 13, &oom);
  t->supervisor_pid = (int) db_column_int64(stmt, 14);
  t->created_at = db_column_int64(stmt, 15);
  t->started_at = db_column_int64(stmt, 16);
  t->finished_at = db_column_int64(stmt, 17);
  t->host = db_column_strdup(stmt, 18, &oom);
  t->attempt = (int) db_column_int64(stmt, 19);
  t->retry_of = db_column_strdup(stmt, 20, &oom);
  t->state_version = db_column_int64(stmt, 21);
  t->secret_names = db_column_strdup(stmt, 22, &oom);
  t->shown_command = db_column_strdup(stmt, 23, &oom);
  if (rc == 0 && !db_column_is_null(stmt, 24))
    rc = store_kv_decode(st, db_column_text(stmt, 24), false, &t->shown_env, &t->n_shown_env, err);
  if (rc == 0 && oom)
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (rc < 0) {
    berth_task_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

/* One transition from columns col..col+3 of stmt (state, at, actor, note). */
static int
add_transition_row(berth_task *t, db_stmt *stmt, int col)
{
  berth_transition *nh = realloc(t->history, (t->n_history + 1) * sizeof *nh);
  if (nh == NULL)
    return -1;
  t->history = nh;
  berth_transition *h = &nh[t->n_history++];
  bool oom = false;
  h->state = db_column_strdup(stmt, col, &oom);
  h->at = db_column_int64(stmt, col + 1);
  h->actor = db_column_strdup(stmt, col + 2, &oom);
  h->note = db_column_strdup(stmt, col + 3, &oom);
  return oom ? -1 : 0;
}

/* A task by its whole id with its history, in one statement (one round trip on PostgreSQL instead of two): the task's
 * columns repeated on each of its transitions' rows; GET_WHOLE_SECRETS_SQL adds its stack's secret values (still
 * encrypted) as the last column, so a read that masks them is one statement too (the same snapshot as the task). */
#define GET_WHOLE_SQL_WITH(extra)                                                                                      \
  "SELECT " TASK_COLS ", h.h_state, h.h_at, h.h_actor, h.h_note" extra " FROM tasks LEFT JOIN"                         \
  " (SELECT task_seq AS h_seq, n AS h_n, state AS h_state, at AS h_at, actor AS h_actor, note AS h_note"               \
  " FROM task_transitions) h ON h.h_seq = tasks.seq WHERE tasks.id = ? ORDER BY h.h_n"
#define GET_WHOLE_SQL GET_WHOLE_SQL_WITH("")
#define GET_WHOLE_SECRETS_SQL GET_WHOLE_SQL_WITH(", (SELECT secret_env FROM stacks WHERE name = tasks.stack)")

/* stmt: GET_WHOLE_SQL (GET_WHOLE_SECRETS_SQL when stack_secrets) bound to id and sent ahead, or NULL; finalized either
 * way. stack_secrets: the stack's secret_env column as stored (NULL when the stack has none or is gone). */
static int
get_whole(berth_store *st, const char *id, db_stmt *stmt, char **stack_secrets, berth_task **out, berth_error **err)
{
  if (stmt == NULL) {
    if (db_prepare(st->db, stack_secrets ? GET_WHOLE_SECRETS_SQL : GET_WHOLE_SQL, &stmt, err) < 0)
      return BERTH_EINTERNAL;
    db_bind_text(stmt, 1, id);
  }
  berth_task *t = NULL;
  int rc = 0, src;
  const int hcol = 25; /* after TASK_COLS */
  while ((src = db_step(stmt, err)) == DB_ROW) {
    bool first = t == NULL, oom = false;
    if (first && (rc = read_task(st, stmt, true, &t, err)) < 0)
      break;
    if (first && stack_secrets)
      *stack_secrets = db_column_strdup(stmt, hcol + 4, &oom);
    if (oom || (!db_column_is_null(stmt, hcol) && add_transition_row(t, stmt, hcol) < 0)) {
      rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
      break;
    }
  }
  if (rc == 0 && src != DB_DONE)
    rc = berth_error_wrap(err, "read task");
  else if (rc == 0 && t == NULL)
    rc = berth_error_set(err, BERTH_ENOTFOUND, "task `%s` does not exist", id);
  db_finalize(stmt);
  if (rc < 0) {
    berth_task_free(t);
    if (stack_secrets) {
      free(*stack_secrets);
      *stack_secrets = NULL;
    }
    return rc;
  }
  *out = t;
  return 0;
}

static int
read_history(berth_store *st, berth_task *t, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, "SELECT state, at, actor, note FROM task_transitions WHERE task_seq = ? ORDER BY n", &stmt,
                 err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_int64(stmt, 1, t->seq);
  int rc = 0, src;
  bool oom = false;
  while ((src = db_step(stmt, err)) == DB_ROW)
    if (add_transition_row(t, stmt, 0) < 0) {
      oom = true;
      break;
    }
  if (oom)
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  else if (src != DB_DONE)
    rc = berth_error_wrap(err, "read task history");
  db_finalize(stmt);
  return rc;
}

/* Exact id first, then a unique prefix. */
static int
find_task(berth_store *st, const char *id, bool with_secrets, berth_task **out, berth_error **err)
{
  char prefix[BERTH_TASK_ID_LEN + 1];
  size_t len = id ? strlen(id) : 0;
  bool ok = len >= TASK_PREFIX_MIN && len <= BERTH_TASK_ID_LEN;
  for (size_t i = 0; ok && i < len; i++) {
    prefix[i] = (char) tolower((unsigned char) id[i]);
    ok = isalnum((unsigned char) prefix[i]);
  }
  if (!ok)
    return berth_error_set(err, BERTH_ENOTFOUND, "task `%.40s` does not exist", id ? id : "");
  prefix[len] = '\0';
  db_stmt *stmt = NULL;
  /* ids are 26 characters: a shorter prefix can never be an exact match, so any second row makes it ambiguous. A
   * whole id is looked up by the unique index (a prefix scans the table: a person typing, not a program) */
  bool whole = len == BERTH_TASK_ID_LEN;
  if (db_prepare(st->db,
                 whole ? "SELECT " TASK_COLS " FROM tasks WHERE id = ?"
                       : "SELECT " TASK_COLS " FROM tasks WHERE substr(id, 1, ?) = ? ORDER BY seq LIMIT 2",
                 &stmt, err)
      < 0)
    return BERTH_EINTERNAL;
  if (whole)
    db_bind_text(stmt, 1, prefix);
  else {
    db_bind_int64(stmt, 1, (int64_t) len);
    db_bind_text(stmt, 2, prefix);
  }
  berth_task *t = NULL;
  int rc, src = db_step(stmt, err);
  if (src == DB_DONE)
    rc = berth_error_set(err, BERTH_ENOTFOUND, "task `%s` does not exist", id);
  else if (src < 0)
    rc = berth_error_wrap(err, "read task");
  else if ((rc = read_task(st, stmt, with_secrets, &t, err)) == 0 && (src = db_step(stmt, err)) != DB_DONE)
    rc = src == DB_ROW
             ? berth_error_set(err, BERTH_EINVAL, "task id prefix `%s` is ambiguous (give more characters)", id)
             : berth_error_wrap(err, "read task");
  db_finalize(stmt);
  if (rc < 0) {
    berth_task_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

bool
berth_task_id_is_whole(const char *id)
{
  bool whole = id != NULL && strlen(id) == BERTH_TASK_ID_LEN;
  for (size_t i = 0; whole && i < BERTH_TASK_ID_LEN; i++) /* ids are lowercase: anything else goes the long way */
    whole = islower((unsigned char) id[i]) || isdigit((unsigned char) id[i]);
  return whole;
}

/* ahead: GET_WHOLE_SQL (GET_WHOLE_SECRETS_SQL when stack_secrets) for id sent ahead, or NULL; finalized either way.
 * stack_secrets: see get_whole; read for a whole id only (left NULL for a prefix) */
static int
task_get(berth_store *st, const char *id, db_stmt *ahead, char **stack_secrets, berth_task **out, berth_error **err)
{
  berth_task *t = NULL;
  bool whole = berth_task_id_is_whole(id);
  if (!whole)
    db_finalize(ahead);
  int rc = whole ? get_whole(st, id, ahead, stack_secrets, &t, err) : find_task(st, id, true, &t, err);
  if (rc < 0)
    return rc;
  if (!whole && read_history(st, t, err) < 0) {
    berth_task_free(t);
    return BERTH_EINTERNAL;
  }
  fill_wait_reason(st, t);
  *out = t;
  return 0;
}

int
berth_store_task_get(berth_store *st, const char *id, berth_task **out, berth_error **err)
{
  return task_get(st, id, NULL, NULL, out, err);
}

struct berth_task_ahead {
  char id[BERTH_TASK_ID_LEN + 1];
  db_stmt *task; /* GET_WHOLE_SECRETS_SQL */
};

void
berth_task_ahead_free(berth_task_ahead *a)
{
  if (a == NULL)
    return;
  db_finalize(a->task);
  free(a);
}

/* A statement bound to id, sent ahead; NULL on failure (the caller then reads the usual way). */
static db_stmt *
send_ahead(berth_store *st, const char *sql, const char *id)
{
  db_stmt *s = NULL;
  berth_error *e = NULL;
  if (db_prepare(st->db, sql, &s, &e) == 0) {
    db_bind_text(s, 1, id);
    if (db_prefetch(s, &e) < 0) {
      db_finalize(s);
      s = NULL;
    }
  }
  berth_error_free(e);
  return s;
}

berth_task_ahead *
berth_store_task_read_ahead(berth_store *st, const char *id)
{
  if (store_is_sqlite(st) || !berth_task_id_is_whole(id))
    return NULL;
  berth_task_ahead *a = calloc(1, sizeof *a);
  if (a == NULL)
    return NULL;
  memcpy(a->id, id, BERTH_TASK_ID_LEN + 1);
  a->task = send_ahead(st, GET_WHOLE_SECRETS_SQL, id);
  return a;
}

int
berth_store_task_get_with_secrets(berth_store *st, const char *id, berth_task_ahead *ahead, berth_task **out,
                                  berth_kv **secrets, size_t *n, bool *incomplete, berth_error **err)
{
  *secrets = NULL;
  *incomplete = false;
  *n = 0;
  db_stmt *task = NULL, *s = NULL;
  if (ahead != NULL && id != NULL && strcmp(ahead->id, id) == 0) {
    task = ahead->task;
    ahead->task = NULL;
  }
  /* by a whole id, with the task in one statement; a prefix finds the task first, then its stack is read */
  bool whole = berth_task_id_is_whole(id);
  char *stored = NULL;
  int rc = task_get(st, id, task, &stored, out, err);
  if (rc == 0 && !whole) {
    if (db_prepare(store_db(st), "SELECT secret_env FROM stacks WHERE name = ?", &s, err) < 0)
      rc = berth_error_wrap(err, "read task %s", id);
    else
      db_bind_text(s, 1, (*out)->stack);
  }
  if (rc == 0) {
    int src = whole ? DB_ROW : db_step(s, err);
    berth_strv unreadable = { 0 }; /* values that cannot be masked: the caller shows no text only they would mask */
    if (src == DB_ROW)
      rc = store_kv_decode_lenient(st, whole ? stored : db_column_text(s, 0), secrets, n, &unreadable, err);
    else if (src != DB_DONE)
      rc = src;
    *incomplete = unreadable.n > 0;
    berth_strv_clear(&unreadable);
    if (rc < 0) {
      berth_error_wrap(err, "read the stack of task %s", id);
      berth_task_free(*out);
      *out = NULL;
    }
  }
  db_finalize(s);
  free(stored);
  return rc;
}

static int
collect_tasks(berth_store *st, db_stmt *stmt, bool why, berth_task ***out, size_t *n, berth_error **err)
{
  berth_task **v = NULL;
  size_t count = 0;
  int rc = 0, src;
  while ((src = db_step(stmt, err)) == DB_ROW) {
    berth_task **nv = realloc(v, (count + 1) * sizeof *nv);
    if (nv == NULL) {
      rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
      break;
    }
    v = nv;
    if ((rc = read_task(st, stmt, false, &v[count], err)) < 0)
      break;
    count++;
  }
  if (rc == 0 && src != DB_DONE)
    rc = berth_error_wrap(err, "list tasks");
  db_finalize(stmt);
  if (rc < 0) {
    berth_tasks_free(v, count);
    return rc;
  }
  for (size_t i = 0; i < count && why; i++)
    fill_wait_reason(st, v[i]);
  *out = v;
  *n = count;
  return 0;
}

/* SELECT TASK_COLS with the optional filters as clauses (never `? IS NULL`, whose type an engine cannot infer). */
static int
list_tasks(berth_store *st, const char *stack, const char *state, const char *host, bool active, int limit,
           bool newest_first, berth_task ***out, size_t *n, berth_error **err)
{
  char *sql = NULL;
  if (asprintf(&sql, "SELECT " TASK_COLS " FROM tasks WHERE 1 = 1%s%s%s%s ORDER BY seq %s%s",
               stack ? " AND stack = ?" : "", state ? " AND state = ?" : "", host ? " AND host = ?" : "",
               active ? " AND state NOT IN " STORE_TERMINAL_SQL : "", newest_first ? "DESC" : "ASC",
               limit > 0 ? " LIMIT ?" : "")
      < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  db_stmt *stmt = NULL;
  int rc = db_prepare(st->db, sql, &stmt, err);
  free(sql);
  if (rc < 0)
    return berth_error_wrap(err, "list tasks");
  int idx = 1;
  if (stack)
    db_bind_text(stmt, idx++, stack);
  if (state)
    db_bind_text(stmt, idx++, state);
  if (host)
    db_bind_text(stmt, idx++, host);
  if (limit > 0)
    db_bind_int64(stmt, idx, limit);
  /* why a task waits is for people (task list); the active list is the queue's and the sweep's own */
  return collect_tasks(st, stmt, !active, out, n, err);
}

int
berth_store_task_list(berth_store *st, const berth_task_filter *f, berth_task ***out, size_t *n, berth_error **err)
{
  return list_tasks(st, f ? f->stack : NULL, f ? f->state : NULL, f ? f->host : NULL, false, f ? f->limit : 0, true,
                    out, n, err);
}

int
berth_store_task_list_active(berth_store *st, const char *stack, berth_task ***out, size_t *n, berth_error **err)
{
  return list_tasks(st, stack, NULL, NULL, true, 0, false, out, n, err);
}

/* reason and exit_code are kept when NULL / < 0; started_at is set once, on leaving QUEUED for a state that is not
 * terminal; finished_at on reaching a terminal state, and the task's own secret env (sealed) is wiped then, in the
 * same statement, whoever ends it (its runner, a cancel of a queued task, a reaper, a host lost). The row must still be
 * in state `from` (and, on a fenced handle, under the same claim): a change made meanwhile by someone else (a reaper, a
 * cancel) wins, and this one is refused with BERTH_EBUSY. */
/* Moves t (as read, in state t->state) to state; t is updated to the row as written (the webhook event is made from
 * it, with no second read). */
static int
update_task_state(berth_store *st, berth_task *t, const char *state, const char *reason, int exit_code, int64_t now,
                  berth_error **err)
{
  const char *id = t->id, *from = t->state;
  bool terminal = berth_task_state_is_terminal(state);
  const char *fence = store_fence_sql(st, id);
  cleanup_free char *sql = NULL;
  if (asprintf(&sql,
               "UPDATE tasks SET state = ?, reason = COALESCE(?, reason), exit_code = COALESCE(?, exit_code),"
               " state_version = state_version + 1,"
               " started_at = CASE WHEN started_at = 0 THEN ? ELSE started_at END,"
               " finished_at = COALESCE(?, finished_at)%s WHERE id = ? AND state = ?%s"
               " RETURNING state, reason, exit_code, state_version, started_at, finished_at",
               terminal ? ", secret_env = NULL" : "", fence)
      < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, sql, &stmt, err) < 0)
    return BERTH_EINTERNAL;
  db_bind_text(stmt, 1, state);
  db_bind_text(stmt, 2, reason);
  if (exit_code >= 0)
    db_bind_int64(stmt, 3, exit_code);
  else
    db_bind_null(stmt, 3);
  db_bind_int64(stmt, 4, terminal ? 0 : now);
  if (terminal)
    db_bind_int64(stmt, 5, now);
  else
    db_bind_null(stmt, 5);
  db_bind_text(stmt, 6, id);
  db_bind_text(stmt, 7, from);
  if (*fence)
    db_bind_int64(stmt, 8, st->fence_attempt);
  int src = db_step(stmt, err);
  bool changed = src == DB_ROW, oom = false;
  char *nstate = NULL, *nreason = NULL;
  int64_t v[4] = { 0 };
  if (changed) {
    nstate = db_column_strdup(stmt, 0, &oom);
    nreason = db_column_strdup(stmt, 1, &oom);
    for (int i = 0; i < 4; i++)
      v[i] = db_column_int64(stmt, 2 + i);
    src = db_step(stmt, err); /* the statement's end (one row: id is unique) */
  }
  db_finalize(stmt); /* before t's strings change: they are bound to it */
  if (src < 0 || oom || (changed && nstate == NULL)) {
    free(nstate);
    free(nreason);
    return src < 0 ? berth_error_wrap(err, "update task state")
                   : berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  if (changed) {
    free(t->state);
    free(t->reason);
    t->state = nstate;
    t->reason = nreason;
    t->exit_code = (int) v[0];
    t->state_version = v[1];
    t->started_at = v[2];
    t->finished_at = v[3];
  }
  if (!changed && *fence)
    return berth_error_set(err, BERTH_EBUSY, "task %s is no longer this host's to change (claim %d was revoked)", id,
                           st->fence_attempt);
  if (!changed)
    return berth_error_set(err, BERTH_EBUSY, "task %s changed meanwhile; it cannot become %s", id, state);
  return 0;
}

int
berth_store_task_transition(berth_store *st, const char *id, const char *state, const char *actor, const char *note,
                            const char *reason, int exit_code, berth_error **err)
{
  return berth_store_task_transition_at(st, id, state, actor, note, reason, exit_code, 0, err);
}

int
berth_store_task_transition_at(berth_store *st, const char *id, const char *state, const char *actor, const char *note,
                               const char *reason, int exit_code, int64_t at, berth_error **err)
{
  if (!berth_task_state_is_valid(state))
    return berth_error_set(err, BERTH_EINVAL, "unknown task state `%.32s`", state ? state : "");
  if (berth_store_begin_part(st, err) < 0)
    return berth_error_wrap(err, "move task %s to %s", id, state);
  berth_task *t = NULL;
  int rc = find_task(st, id, false, &t, err);
  int64_t now = berth_now_ms();
  /* a time given is kept between the task's start (or submission) and now */
  if (rc == 0 && at > 0 && at < now)
    now = at > t->started_at && at > t->created_at ? at : t->started_at > t->created_at ? t->started_at : t->created_at;
  if (rc == 0 && berth_task_state_is_terminal(t->state))
    rc = berth_error_set(err, BERTH_EBUSY, "task %s is already %s; it cannot become %s", t->id, t->state, state);
  else if (rc == 0 && strcmp(t->state, "PERFORMING") == 0 && strcmp(state, "STOPPED") == 0)
    rc = berth_error_set(err, BERTH_EBUSY,
                         "task %s is PERFORMING and cannot be stopped (only its run or idle timeout ends it)", t->id);
  else if (rc == 0 && !edge_allowed(t->state, state))
    rc = berth_error_set(err, BERTH_EBUSY, "task %s is %s; it cannot become %s", t->id, t->state, state);
  if (rc == 0)
    rc = update_task_state(st, t, state, reason, exit_code, now, err);
  if (rc == 0)
    rc = add_transition(st, t->seq, state, now, actor, note, err);
  if (rc == 0)
    rc = outbox_task_event_of(st, t, err);
  /* a freed stack (or slot) wakes the fleet's hosts when this commits */
  if (rc == 0 && berth_task_state_is_terminal(state))
    rc = store_notify_queue(st, err);
  berth_task_free(t);
  if (rc < 0) {
    berth_store_rollback(st);
    return rc;
  }
  if (berth_store_commit(st, err) < 0)
    return berth_error_wrap(err, "move task %s to %s", id, state);
  return 0;
}

/* sql: UPDATE tasks SET <col> = ? WHERE id = ?, with the value (text, or num when text is NULL and !null); ENOTFOUND
 * when no row matched. A fenced handle adds its claim (BERTH_EBUSY once revoked). */
static int
set_column(berth_store *st, const char *sql_base, const char *id, const char *text, int num, bool null,
           berth_error **err)
{
  /* wiping secrets is always allowed, claim or not */
  const char *fence = strstr(sql_base, "secret_env") ? "" : store_fence_sql(st, id);
  cleanup_free char *sql = NULL;
  if (asprintf(&sql, "%s%s", sql_base, fence) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, sql, &stmt, err) < 0)
    return BERTH_EINTERNAL;
  if (text)
    db_bind_text(stmt, 1, text);
  else if (null)
    db_bind_null(stmt, 1);
  else
    db_bind_int64(stmt, 1, num);
  db_bind_text(stmt, 2, id);
  if (*fence)
    db_bind_int64(stmt, 3, st->fence_attempt);
  int64_t changed = 0;
  if (db_run(stmt, &changed, err) < 0)
    return berth_error_wrap(err, "update task %.40s", id ? id : "");
  if (changed == 0 && *fence)
    return berth_error_set(err, BERTH_EBUSY, "task %s is no longer this host's to change (claim %d was revoked)", id,
                           st->fence_attempt);
  if (changed == 0)
    return berth_error_set(err, BERTH_ENOTFOUND, "task `%.40s` does not exist", id ? id : "");
  return 0;
}

int
berth_store_task_set_container(berth_store *st, const char *id, const char *container_id, berth_error **err)
{
  return set_column(st, "UPDATE tasks SET container_id = ? WHERE id = ?", id, container_id, 0, true, err);
}

int
berth_store_task_set_supervisor(berth_store *st, const char *id, int pid, berth_error **err)
{
  return set_column(st, "UPDATE tasks SET supervisor_pid = ? WHERE id = ?", id, NULL, pid, false, err);
}

int
berth_store_task_set_blocked_by(berth_store *st, const char *id, const char *blocker, berth_error **err)
{
  return set_column(st, "UPDATE tasks SET blocked_by = ? WHERE id = ?", id, blocker, 0, true, err);
}

int
berth_store_task_set_redactions(berth_store *st, const char *id, int n, berth_error **err)
{
  return set_column(st, "UPDATE tasks SET redactions = ? WHERE id = ?", id, NULL, n < 0 ? 0 : n, false, err);
}

int
berth_store_task_forget_secrets(berth_store *st, const char *id, berth_error **err)
{
  return set_column(st, "UPDATE tasks SET secret_env = ? WHERE id = ?", id, NULL, 0, true, err);
}

/* ---- claims and their fence (the fleet; see berth/fleet.h) ---- */

const char *
store_fence_sql(berth_store *st, const char *id)
{
  return st->fence_task != NULL && id != NULL && strcmp(st->fence_task, id) == 0 ? " AND attempt = ? AND revoked = 0"
                                                                                 : "";
}

int
berth_store_fence(berth_store *st, const char *task_id, int attempt, berth_error **err)
{
  char *copy = task_id ? strdup(task_id) : NULL;
  if (task_id != NULL && copy == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  free(st->fence_task);
  st->fence_task = copy;
  st->fence_attempt = attempt;
  return 0;
}

int
berth_store_fence_attempt(berth_store *st, const char *task_id)
{
  return *store_fence_sql(st, task_id) ? st->fence_attempt : 0;
}

int
berth_store_claim_valid(berth_store *st, const char *task_id, berth_error **err)
{
  if (!*store_fence_sql(st, task_id))
    return 1;
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, "SELECT revoked FROM tasks WHERE id = ? AND attempt = ?", &stmt, err) < 0)
    return BERTH_EINTERNAL;
  db_bind_text(stmt, 1, task_id);
  db_bind_int64(stmt, 2, st->fence_attempt);
  int rc = db_step(stmt, err);
  int valid = rc == DB_ROW && db_column_int64(stmt, 0) == 0;
  db_finalize(stmt);
  if (rc < 0)
    return berth_error_wrap(err, "read the claim of task %s", task_id);
  return valid;
}

/* The hosts of the queued task's pool (its stack's, or the default: bound; hosts.pools is "a,b,c", matched by the
 * name whole: never LIKE, where a pool's `_` is a wildcard) that are live (heartbeat within their
 * lease, by the store's clock) and in state st (alive or draining), as a condition on hosts h. */
#define FLEET_LIVE_IN_POOL_SQL(st)                                                                                     \
  "h.state = '" st "' AND h.executes = 1 AND h.heartbeat_at + h.lease_ms >= " STORE_PG_NOW_MS_SQL                      \
  " AND strpos(',' || h.pools || ',', ',' || COALESCE(s.pool, ?) || ',') > 0"

/* Everything a queued task's wait reason is made of, in one statement (one round trip: it was four in turn): the
 * stack's lock owner and pool, the unfinished tasks ahead on the stack, the pool's live hosts (how many, the slots of
 * those whose Docker answers, how many those are), its draining hosts, and its busy slots. */
#define WAIT_REASON_SQL                                                                                                \
  "SELECT s.lock_owner, COALESCE(s.pool, ?),"                                                                          \
  " (SELECT COUNT(*) FROM tasks b WHERE b.stack = s.name AND b.seq < CAST(? AS BIGINT)"                                \
  " AND b.state NOT IN " STORE_TERMINAL_SQL "),"                                                                       \
  " (SELECT COUNT(*) FROM hosts h WHERE " FLEET_LIVE_IN_POOL_SQL(                                                      \
      "alive") "),"                                                                                                    \
               " (SELECT COALESCE(SUM(h.slots * h.docker_ok), 0) FROM hosts h WHERE " FLEET_LIVE_IN_POOL_SQL(          \
                   "alive") "),"                                                                                       \
                            " (SELECT COALESCE(SUM(h.docker_ok), 0) FROM hosts h WHERE " FLEET_LIVE_IN_POOL_SQL(       \
                                "alive") "),"                                                                          \
                                         " (SELECT COUNT(*) FROM hosts h WHERE " FLEET_LIVE_IN_POOL_SQL(               \
                                             "draining") "),"                                                          \
                                                         " (SELECT COUNT(*) FROM tasks t JOIN hosts h ON h.name = "    \
                                                         "t.host WHERE t.revoked = 0"                                  \
                                                         " AND t.state IN ('PREPARING', 'INITIALIZING', "              \
                                                         "'PERFORMING') AND h.docker_ok = 1 "                          \
                                                         "AND " FLEET_LIVE_IN_POOL_SQL(                                \
                                                             "alive") ")"                                              \
                                                                      " FROM stacks s WHERE s.name = ?"

int
berth_fleet_wait_reason(berth_store *st, const berth_task *t, char **out, berth_error **err)
{
  *out = NULL;
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, WAIT_REASON_SQL, &stmt, err) < 0)
    return berth_error_wrap(err, "read the queue");
  int idx = 1;
  db_bind_text(stmt, idx++, BERTH_DEFAULT_POOL);
  db_bind_int64(stmt, idx++, t->seq);
  for (int k = 0; k < 5; k++) /* each pool condition's default */
    db_bind_text(stmt, idx++, BERTH_DEFAULT_POOL);
  db_bind_text(stmt, idx, t->stack);
  int rc = db_step(stmt, err);
  if (rc != DB_ROW) {
    db_finalize(stmt);
    return rc == DB_DONE ? berth_error_set(err, BERTH_ENOTFOUND, "stack `%s` does not exist", t->stack)
                         : berth_error_wrap(err, "read the queue");
  }
  const char *owner = db_column_is_null(stmt, 0) ? NULL : db_column_text(stmt, 0);
  const char *pool = db_column_text(stmt, 1);
  int64_t ahead = db_column_int64(stmt, 2), hosts = db_column_int64(stmt, 3), slots = db_column_int64(stmt, 4),
          docker = db_column_int64(stmt, 5), draining = db_column_int64(stmt, 6), busy = db_column_int64(stmt, 7);
  char *line = NULL;
  int n;
  if (ahead > 0)
    n = asprintf(&line, "%lld task%s ahead on stack %s", (long long) ahead, ahead == 1 ? "" : "s", t->stack);
  else if (owner != NULL && (t->actor == NULL || strcmp(owner, t->actor) != 0))
    n = asprintf(&line, "stack locked by %s", owner);
  else if (hosts == 0 && draining > 0)
    n = asprintf(&line, "no live host in pool %s (%lld draining)", pool, (long long) draining);
  else if (hosts == 0)
    n = asprintf(&line, "no live host in pool %s", pool);
  else if (docker == 0)
    n = hosts == 1
            ? asprintf(&line, "the one live host of pool %s cannot run it: its Docker daemon does not answer", pool)
            : asprintf(&line, "no live host of pool %s can run it: their Docker daemons do not answer (%lld hosts)",
                       pool, (long long) hosts);
  else if (busy >= slots)
    n = slots == 1 ? asprintf(&line, "the one slot of pool %s is busy", pool)
                   : asprintf(&line, "all %lld slots of pool %s are busy", (long long) slots, pool);
  else
    n = asprintf(&line, "a host of pool %s is about to claim it", pool);
  db_finalize(stmt);
  if (n < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  *out = line;
  return 0;
}

static void
fill_wait_reason(berth_store *st, berth_task *t)
{
  if (store_is_sqlite(st) || strcmp(t->state, "QUEUED") != 0 || t->reason != NULL)
    return;
  berth_error *e = NULL;
  if (berth_fleet_wait_reason(st, t, &t->reason, &e) < 0)
    berth_error_free(e);
}
