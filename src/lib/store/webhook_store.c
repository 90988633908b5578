/* Webhooks, the event outbox, deliveries and their attempts in the store (include/berth/webhook.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/cleanup.h"
#include "berth/parse.h"
#include "berth/webhook.h"
#include "store_int.h"

#define WEBHOOK_COLS "id, name, url, secret, events, stack_pattern, actor, created_at"

void
berth_webhook_free(berth_webhook *w)
{
  if (w == NULL)
    return;
  free(w->name);
  free(w->url);
  if (w->secret) {
    sodium_memzero(w->secret, strlen(w->secret));
    free(w->secret);
  }
  berth_strv_clear(&w->events);
  free(w->stack_pattern);
  free(w->actor);
  free(w);
}

void
berth_webhooks_free(berth_webhook **v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    berth_webhook_free(v[i]);
  free(v);
}

int
berth_store_webhook_create(berth_store *st, const berth_webhook *w, berth_error **err)
{
  cleanup_free char *sealed = NULL;
  cleanup_free char *events = store_strv_encode(&w->events);
  if (events == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (store_seal(st, w->secret, &sealed, err) < 0)
    return berth_error_wrap(err, "seal the secret of webhook `%s`", w->name);
  db_stmt *stmt = NULL;
  if (db_prepare(st->db,
                 "INSERT INTO webhooks (name, url, secret, events, stack_pattern, actor, created_at)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                 &stmt, err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_text(stmt, 1, w->name);
  db_bind_text(stmt, 2, w->url);
  db_bind_text(stmt, 3, sealed);
  db_bind_text(stmt, 4, events);
  db_bind_text(stmt, 5, w->stack_pattern);
  db_bind_text(stmt, 6, w->actor ? w->actor : "berth");
  db_bind_int64(stmt, 7, berth_now_ms());
  int64_t changed = 0;
  if (db_run(stmt, &changed, err) < 0)
    return berth_error_wrap(err, "add webhook `%s`", w->name);
  return changed ? 0 : berth_error_set(err, BERTH_EBUSY, "webhook `%s` already exists", w->name);
}

static int
read_webhook(berth_store *st, db_stmt *stmt, bool with_secret, berth_webhook **out, berth_error **err)
{
  berth_webhook *w = calloc(1, sizeof *w);
  bool oom = w == NULL;
  if (oom)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  w->id = db_column_int64(stmt, 0);
  w->name = db_column_strdup(stmt, 1, &oom);
  w->url = db_column_strdup(stmt, 2, &oom);
  int rc = with_secret ? store_unseal(st, db_column_text(stmt, 3), &w->secret, err) : 0;
  if (rc == 0)
    rc = store_strv_decode(db_column_text(stmt, 4), &w->events, err);
  w->stack_pattern = db_column_strdup(stmt, 5, &oom);
  w->actor = db_column_strdup(stmt, 6, &oom);
  w->created_at = db_column_int64(stmt, 7);
  if (rc == 0 && oom)
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (rc < 0) {
    berth_webhook_free(w);
    return rc;
  }
  *out = w;
  return 0;
}

static int
collect(berth_store *st, db_stmt *stmt, bool with_secret, berth_webhook ***out, size_t *n, berth_error **err)
{
  berth_webhook **v = NULL;
  size_t count = 0;
  int rc = 0, src;
  while ((src = db_step(stmt, err)) == DB_ROW) {
    berth_webhook **nv = realloc(v, (count + 1) * sizeof *nv);
    if (nv == NULL) {
      rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
      break;
    }
    v = nv;
    if ((rc = read_webhook(st, stmt, with_secret, &v[count], err)) < 0)
      break;
    count++;
  }
  if (rc == 0 && src != DB_DONE)
    rc = berth_error_wrap(err, "read webhooks");
  db_finalize(stmt);
  if (rc < 0) {
    berth_webhooks_free(v, count);
    return rc;
  }
  *out = v;
  *n = count;
  return 0;
}

static int
get_one(berth_store *st, db_stmt *stmt, bool with_secret, const char *what, berth_webhook **out, berth_error **err)
{
  berth_webhook **v = NULL;
  size_t n = 0;
  if (collect(st, stmt, with_secret, &v, &n, err) < 0)
    return BERTH_EINTERNAL;
  if (n == 0) {
    free(v);
    return berth_error_set(err, BERTH_ENOTFOUND, "webhook `%.80s` does not exist", what);
  }
  *out = v[0];
  v[0] = NULL;
  berth_webhooks_free(v, n);
  return 0;
}

int
berth_store_webhook_get(berth_store *st, const char *name, bool with_secret, berth_webhook **out, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, "SELECT " WEBHOOK_COLS " FROM webhooks WHERE name = ?", &stmt, err) < 0)
    return BERTH_EINTERNAL;
  db_bind_text(stmt, 1, name);
  return get_one(st, stmt, with_secret, name, out, err);
}

int
berth_store_webhook_get_id(berth_store *st, int64_t id, berth_webhook **out, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, "SELECT " WEBHOOK_COLS " FROM webhooks WHERE id = ?", &stmt, err) < 0)
    return BERTH_EINTERNAL;
  db_bind_int64(stmt, 1, id);
  return get_one(st, stmt, true, "(removed)", out, err);
}

int
berth_store_webhook_list(berth_store *st, berth_webhook ***out, size_t *n, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, "SELECT " WEBHOOK_COLS " FROM webhooks ORDER BY name", &stmt, err) < 0)
    return BERTH_EINTERNAL;
  return collect(st, stmt, false, out, n, err);
}

/* Runs sql with id bound to each of its `?` (a statement may name the same value more than once). */
static int
run_id(berth_store *st, const char *sql, int64_t id, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, sql, &stmt, err) < 0)
    return BERTH_EINTERNAL;
  int n = 0;
  for (const char *p = sql; (p = strchr(p, '?')) != NULL; p++)
    db_bind_int64(stmt, ++n, id);
  return db_run(stmt, NULL, err);
}

int
berth_store_webhook_delete(berth_store *st, const char *name, berth_error **err)
{
  berth_webhook *w = NULL;
  int rc = berth_store_begin(st, err);
  if (rc == 0)
    rc = berth_store_webhook_get(st, name, false, &w, err);
  if (rc == 0)
    rc = run_id(st, STORE_CARRY_ATTEMPTS("(SELECT id FROM webhook_deliveries WHERE webhook_id = ?)"), w->id, err);
  if (rc == 0)
    rc = run_id(st,
                "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE"
                " webhook_id = ?)",
                w->id, err);
  if (rc == 0)
    rc = run_id(st, "DELETE FROM webhook_deliveries WHERE webhook_id = ?", w->id, err);
  if (rc == 0)
    rc = run_id(st, "DELETE FROM webhooks WHERE id = ?", w->id, err);
  berth_webhook_free(w);
  if (rc < 0) {
    berth_store_rollback(st);
    return rc;
  }
  return berth_store_commit(st, err);
}

/* ---- the outbox ---- */

void
berth_outbox_events_free(berth_outbox_event *v, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free(v[i].kind);
    free(v[i].stack);
    free(v[i].payload);
  }
  free(v);
}

int
berth_store_outbox_pending(berth_store *st, int limit, berth_outbox_event **out, size_t *n, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db,
                 "SELECT id, kind, stack, payload, created_at FROM webhook_events WHERE fanned = 0 ORDER BY id LIMIT ?",
                 &stmt, err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_int64(stmt, 1, limit);
  berth_outbox_event *v = NULL;
  size_t count = 0;
  bool oom = false;
  int src;
  while ((src = db_step(stmt, err)) == DB_ROW) {
    berth_outbox_event *nv = realloc(v, (count + 1) * sizeof *nv);
    if (nv == NULL) {
      oom = true;
      break;
    }
    v = nv;
    berth_outbox_event *e = &v[count++];
    e->id = db_column_int64(stmt, 0);
    e->kind = db_column_strdup(stmt, 1, &oom);
    e->stack = db_column_strdup(stmt, 2, &oom);
    e->payload = db_column_strdup(stmt, 3, &oom);
    e->created_at = db_column_int64(stmt, 4);
  }
  db_finalize(stmt);
  if (oom || src < 0) {
    berth_outbox_events_free(v, count);
    return oom ? berth_error_set(err, BERTH_EINTERNAL, "out of memory") : berth_error_wrap(err, "read the outbox");
  }
  *out = v;
  *n = count;
  return 0;
}

static void
new_delivery_id(char out[37])
{
  unsigned char b[16];
  randombytes_buf(b, sizeof b);
  b[6] = (unsigned char) ((b[6] & 0x0f) | 0x40); /* a version 4 UUID */
  b[8] = (unsigned char) ((b[8] & 0x3f) | 0x80);
  char hex[33];
  sodium_bin2hex(hex, sizeof hex, b, sizeof b);
  snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

int
berth_store_outbox_fan_out(berth_store *st, int64_t event_id, const int64_t *webhook_ids, size_t n, berth_error **err)
{
  int rc = berth_store_begin(st, err);
  int64_t now = berth_now_ms();
  for (size_t i = 0; rc == 0 && i < n; i++) {
    db_stmt *stmt = NULL;
    char id[37];
    new_delivery_id(id);
    if ((rc
         = db_prepare(st->db,
                      "INSERT INTO webhook_deliveries (id, webhook_id, event_id, state, next_attempt_at, created_at,"
                      " updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT (webhook_id, event_id) DO NOTHING",
                      &stmt, err))
        < 0)
      break;
    db_bind_text(stmt, 1, id);
    db_bind_int64(stmt, 2, webhook_ids[i]);
    db_bind_int64(stmt, 3, event_id);
    db_bind_int64(stmt, 4, now);
    db_bind_int64(stmt, 5, now);
    db_bind_int64(stmt, 6, now);
    rc = db_run(stmt, NULL, err);
  }
  if (rc == 0)
    rc = run_id(st, "UPDATE webhook_events SET fanned = 1 WHERE id = ?", event_id, err);
  if (rc < 0) {
    berth_store_rollback(st);
    return berth_error_wrap(err, "fan out webhook event %lld", (long long) event_id);
  }
  return berth_store_commit(st, err);
}

/* ---- deliveries ---- */

void
berth_delivery_free(berth_delivery *d)
{
  if (d == NULL)
    return;
  free(d->id);
  free(d->kind);
  free(d->stack);
  free(d->payload);
  free(d);
}

/* The claimed delivery's event and attempt count. */
static int
read_claimed(berth_store *st, const char *id, berth_delivery **out, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db,
                 "SELECT d.webhook_id, d.event_id, d.attempts, e.kind, e.stack, e.payload FROM webhook_deliveries d"
                 " JOIN webhook_events e ON e.id = d.event_id WHERE d.id = ?",
                 &stmt, err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_text(stmt, 1, id);
  int src = db_step(stmt, err), rc = 0;
  berth_delivery *d = NULL;
  bool oom = false;
  if (src == DB_ROW && (d = calloc(1, sizeof *d)) != NULL) {
    d->id = strdup(id);
    oom = d->id == NULL;
    d->webhook_id = db_column_int64(stmt, 0);
    d->event_id = db_column_int64(stmt, 1);
    d->attempts = (int) db_column_int64(stmt, 2);
    d->kind = db_column_strdup(stmt, 3, &oom);
    d->stack = db_column_strdup(stmt, 4, &oom);
    d->payload = db_column_strdup(stmt, 5, &oom);
  }
  db_finalize(stmt);
  if (src < 0)
    rc = berth_error_wrap(err, "read delivery %s", id);
  else if (src == DB_ROW && (d == NULL || oom))
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (rc < 0 || src != DB_ROW) {
    berth_delivery_free(d);
    return rc < 0 ? rc : 0;
  }
  *out = d;
  return 1;
}

int
berth_store_delivery_claim(berth_store *st, const char *owner, int64_t now_ms, int64_t lease_ms, berth_delivery **out,
                           berth_error **err)
{
  db_stmt *stmt = NULL;
  /* the outer condition again: of two hosts racing for one row, the second finds it claimed and changes nothing */
  if (db_prepare(st->db,
                 "UPDATE webhook_deliveries SET claimed_by = ?, claimed_until = ? WHERE id = (SELECT id FROM"
                 " webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= ? AND claimed_until < ?"
                 " ORDER BY next_attempt_at, created_at LIMIT 1) AND state = 'pending' AND claimed_until < ?"
                 " RETURNING id",
                 &stmt, err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_text(stmt, 1, owner);
  db_bind_int64(stmt, 2, now_ms + lease_ms);
  db_bind_int64(stmt, 3, now_ms);
  db_bind_int64(stmt, 4, now_ms);
  db_bind_int64(stmt, 5, now_ms);
  int src = db_step(stmt, err);
  bool oom = false;
  char *id = src == DB_ROW ? db_column_strdup(stmt, 0, &oom) : NULL;
  if (src == DB_ROW)
    src = db_step(stmt, err);
  db_finalize(stmt);
  if (src < 0) {
    free(id);
    return berth_error_wrap(err, "claim a webhook delivery");
  }
  if (id == NULL)
    return oom ? berth_error_set(err, BERTH_EINTERNAL, "out of memory") : 0;
  int rc = read_claimed(st, id, out, err);
  free(id);
  return rc;
}

int
berth_store_delivery_attempt(berth_store *st, const char *id, int n, int64_t at, int status, int64_t duration_ms,
                             const char *error, const char *state, int64_t next_at, berth_error **err)
{
  db_stmt *stmt = NULL;
  int rc = berth_store_begin(st, err);
  if (rc == 0
      && (rc = db_prepare(st->db,
                          "INSERT INTO webhook_attempts (delivery_id, n, at, status_code, duration_ms, error)"
                          " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_id, n) DO NOTHING",
                          &stmt, err))
             == 0) {
    db_bind_text(stmt, 1, id);
    db_bind_int64(stmt, 2, n);
    db_bind_int64(stmt, 3, at);
    db_bind_int64(stmt, 4, status);
    db_bind_int64(stmt, 5, duration_ms);
    db_bind_text(stmt, 6, error);
    rc = db_run(stmt, NULL, err);
  }
  if (rc == 0
      && (rc
          = db_prepare(st->db,
                       "UPDATE webhook_deliveries SET state = ?, attempts = ?, next_attempt_at = ?, claimed_by = NULL,"
                       " claimed_until = 0, updated_at = ? WHERE id = ?",
                       &stmt, err))
             == 0) {
    db_bind_text(stmt, 1, state);
    db_bind_int64(stmt, 2, n);
    db_bind_int64(stmt, 3, next_at);
    db_bind_int64(stmt, 4, berth_now_ms());
    db_bind_text(stmt, 5, id);
    rc = db_run(stmt, NULL, err);
  }
  if (rc < 0) {
    berth_store_rollback(st);
    return berth_error_wrap(err, "record an attempt of delivery %s", id);
  }
  return berth_store_commit(st, err);
}

int
berth_store_delivery_reset(berth_store *st, const char *id, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db,
                 "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = ?, claimed_by = NULL,"
                 " claimed_until = 0, updated_at = ? WHERE id = ?",
                 &stmt, err)
      < 0)
    return BERTH_EINTERNAL;
  int64_t now = berth_now_ms(), changed = 0;
  db_bind_int64(stmt, 1, now);
  db_bind_int64(stmt, 2, now);
  db_bind_text(stmt, 3, id);
  if (db_run(stmt, &changed, err) < 0)
    return berth_error_wrap(err, "redeliver %s", id);
  return changed ? 0 : berth_error_set(err, BERTH_ENOTFOUND, "delivery `%.80s` does not exist", id);
}

static cJSON *
attempts_json(berth_store *st, const char *id, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db,
                 "SELECT n, at, status_code, duration_ms, error FROM webhook_attempts WHERE delivery_id = ? ORDER BY n",
                 &stmt, err)
      < 0)
    return NULL;
  db_bind_text(stmt, 1, id);
  cJSON *a = cJSON_CreateArray();
  char when[BERTH_TIME_LEN];
  while (db_step(stmt, err) == DB_ROW) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", (double) db_column_int64(stmt, 0));
    cJSON_AddStringToObject(o, "at", berth_format_time(db_column_int64(stmt, 1), when, sizeof when));
    if (db_column_int64(stmt, 2) > 0)
      cJSON_AddNumberToObject(o, "status_code", (double) db_column_int64(stmt, 2));
    else
      cJSON_AddNullToObject(o, "status_code");
    cJSON_AddNumberToObject(o, "duration_ms", (double) db_column_int64(stmt, 3));
    if (db_column_is_null(stmt, 4))
      cJSON_AddNullToObject(o, "error");
    else
      cJSON_AddStringToObject(o, "error", db_column_text(stmt, 4));
    cJSON_AddItemToArray(a, o);
  }
  db_finalize(stmt);
  return a;
}

int
berth_webhook_deliveries_json(berth_store *st, const char *name, int limit, cJSON **out, berth_error **err)
{
  berth_webhook *w = NULL;
  int rc = berth_store_webhook_get(st, name, false, &w, err);
  if (rc < 0)
    return rc;
  db_stmt *stmt = NULL;
  if (db_prepare(st->db,
                 "SELECT d.id, e.kind, d.state, d.attempts, d.next_attempt_at, d.created_at, e.payload"
                 " FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id WHERE d.webhook_id = ?"
                 " ORDER BY d.created_at DESC, e.id DESC LIMIT ?",
                 &stmt, err)
      < 0) {
    berth_webhook_free(w);
    return BERTH_EINTERNAL;
  }
  db_bind_int64(stmt, 1, w->id);
  db_bind_int64(stmt, 2, limit > 0 ? limit : 100);
  cJSON *root = cJSON_CreateObject(), *list = NULL;
  cJSON_AddStringToObject(root, "webhook", w->name);
  list = cJSON_AddArrayToObject(root, "deliveries");
  berth_webhook_free(w);
  char when[BERTH_TIME_LEN];
  int src;
  while ((src = db_step(stmt, err)) == DB_ROW) {
    cJSON *o = cJSON_CreateObject();
    const char *id = db_column_text(stmt, 0);
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "event", db_column_text(stmt, 1));
    cJSON_AddStringToObject(o, "state", db_column_text(stmt, 2));
    cJSON_AddStringToObject(o, "created_at", berth_format_time(db_column_int64(stmt, 5), when, sizeof when));
    if (strcmp(db_column_text(stmt, 2), "pending") == 0)
      cJSON_AddStringToObject(o, "next_attempt_at", berth_format_time(db_column_int64(stmt, 4), when, sizeof when));
    cJSON *payload = cJSON_Parse(db_column_text(stmt, 6));
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(payload, "task");
    if (task) { /* which task and state, to find a delivery (the payload itself is the receiver's) */
      cJSON_AddStringToObject(o, "task_id", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(task, "id")));
      cJSON_AddStringToObject(o, "task_state", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(task, "state")));
    }
    cJSON_Delete(payload);
    cJSON_AddItemToObject(o, "attempts", attempts_json(st, id, err));
    cJSON_AddItemToArray(list, o);
  }
  db_finalize(stmt);
  if (src < 0) {
    cJSON_Delete(root);
    return berth_error_wrap(err, "read the deliveries of webhook `%s`", name);
  }
  *out = root;
  return 0;
}

int
berth_store_delivery_counts(berth_store *st, berth_delivery_counts *out, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(
          st->db,
          "SELECT COALESCE(SUM(CASE WHEN status_code >= 200 AND status_code < 300 THEN 1 ELSE 0 END), 0)"
          " + " STORE_CARRIED(
              "webhook_attempts_ok") ","
                                     " COALESCE(SUM(CASE WHEN status_code >= 200 AND status_code < 300 THEN 0 ELSE 1 "
                                     "END), 0)"
                                     " + " STORE_CARRIED(
                                         "webhook_attempts_failed") ","
                                                                    " (SELECT COUNT(*) FROM webhook_deliveries WHERE "
                                                                    "state = 'pending'),"
                                                                    " (SELECT COUNT(*) FROM webhook_deliveries WHERE "
                                                                    "state = 'delivered'),"
                                                                    " (SELECT COUNT(*) FROM webhook_deliveries WHERE "
                                                                    "state = 'failed') FROM webhook_attempts",
          &stmt, err)
      < 0)
    return BERTH_EINTERNAL;
  int rc = db_step(stmt, err);
  if (rc == DB_ROW) {
    out->attempts_ok = db_column_int64(stmt, 0);
    out->attempts_failed = db_column_int64(stmt, 1);
    out->pending = db_column_int64(stmt, 2);
    out->delivered = db_column_int64(stmt, 3);
    out->failed = db_column_int64(stmt, 4);
  }
  db_finalize(stmt);
  return rc < 0 ? berth_error_wrap(err, "count webhook deliveries") : 0;
}

int
berth_store_events_prune(berth_store *st, int64_t before_ms, berth_error **err)
{
  static const char *const sql[] = {
    STORE_CARRY_ATTEMPTS("(SELECT id FROM webhook_deliveries WHERE state <> 'pending' AND updated_at < ?)"),
    STORE_CARRY_FIRES("fired_at < ?"),
    "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE state <> 'pending'"
    " AND updated_at < ?)",
    "DELETE FROM webhook_deliveries WHERE state <> 'pending' AND updated_at < ?",
    "DELETE FROM webhook_events WHERE fanned = 1 AND created_at < ? AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d"
    " WHERE d.event_id = webhook_events.id)",
    "DELETE FROM schedule_fires WHERE fired_at < ?",
  };
  int rc = berth_store_begin(st, err);
  for (size_t i = 0; rc == 0 && i < sizeof sql / sizeof sql[0]; i++)
    rc = run_id(st, sql[i], before_ms, err);
  if (rc < 0) {
    berth_store_rollback(st);
    return berth_error_wrap(err, "prune old webhook deliveries and schedule fires");
  }
  return berth_store_commit(st, err);
}
