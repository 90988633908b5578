/* The audit trail: a hash chain of records in the store, its verification, and its listing. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "berth/audit.h"
#include "berth/buf.h"
#include "berth/cleanup.h"
#include "berth/parse.h"
#include "gov_int.h"

#define HASH_HEX (crypto_hash_sha256_BYTES * 2 + 1)
/* The canonical encoding is bounded by the field caps: 4 capped fields, the args and the numbers. */
#define CANON_MAX (4 * (BERTH_AUDIT_FIELD_MAX + 16) + BERTH_AUDIT_ARGS_MAX + 256)

typedef struct audit_record {
  int64_t id, at;
  const char *actor, *action, *target, *args, *outcome;
} audit_record;

static int
canon_field(berth_buf *b, const char *s)
{
  if (s == NULL)
    return berth_buf_append(b, "~\n", 2);
  size_t n = strlen(s);
  if (berth_buf_printf(b, "%zu:", n) < 0 || berth_buf_append(b, s, n) < 0)
    return -1;
  return berth_buf_append(b, "\n", 1);
}

/* hash_hex = hex(SHA-256(prev || canonical(rec))); prev is 32 raw bytes. */
static int
record_hash(const unsigned char prev[crypto_hash_sha256_BYTES], const audit_record *rec, char hash_hex[HASH_HEX],
            unsigned char raw[crypto_hash_sha256_BYTES])
{
  berth_buf b;
  berth_buf_init(&b, CANON_MAX + 64);
  char id[32], at[32];
  snprintf(id, sizeof id, "%lld", (long long) rec->id);
  snprintf(at, sizeof at, "%lld", (long long) rec->at);
  int rc = 0;
  if (berth_buf_append(&b, "berth-audit-v1\n", 15) < 0 || canon_field(&b, id) < 0 || canon_field(&b, at) < 0
      || canon_field(&b, rec->actor) < 0 || canon_field(&b, rec->action) < 0 || canon_field(&b, rec->target) < 0
      || canon_field(&b, rec->args) < 0 || canon_field(&b, rec->outcome) < 0)
    rc = -1;
  if (rc == 0) {
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, prev, crypto_hash_sha256_BYTES);
    crypto_hash_sha256_update(&h, (const unsigned char *) b.data, b.len);
    crypto_hash_sha256_final(&h, raw);
    sodium_bin2hex(hash_hex, HASH_HEX, raw, crypto_hash_sha256_BYTES);
  }
  berth_buf_free(&b);
  return rc;
}

static int
hex_to_raw(const char *hex, unsigned char raw[crypto_hash_sha256_BYTES])
{
  size_t bin_len = 0;
  if (hex == NULL || strlen(hex) != crypto_hash_sha256_BYTES * 2)
    return -1;
  if (sodium_hex2bin(raw, crypto_hash_sha256_BYTES, hex, strlen(hex), NULL, &bin_len, NULL) != 0
      || bin_len != crypto_hash_sha256_BYTES)
    return -1;
  return 0;
}

/* Copies s, cut to BERTH_AUDIT_FIELD_MAX bytes (ending in "...") and made one line. */
static char *
capped(const char *s)
{
  if (s == NULL)
    return NULL;
  size_t n = strlen(s);
  bool cut = n > BERTH_AUDIT_FIELD_MAX;
  if (cut)
    n = BERTH_AUDIT_FIELD_MAX - 3;
  char *c = malloc(n + 4);
  if (c == NULL)
    return NULL;
  memcpy(c, s, n);
  strcpy(c + n, cut ? "..." : "");
  for (char *p = c; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  return c;
}

static char *
args_text(const cJSON *args)
{
  if (args == NULL)
    return NULL;
  char *t = cJSON_PrintUnformatted(args);
  if (t == NULL || strlen(t) <= BERTH_AUDIT_ARGS_MAX)
    return t;
  size_t n = strlen(t);
  free(t);
  if (asprintf(&t, "{\"truncated\":true,\"bytes\":%zu}", n) < 0)
    return NULL;
  return t;
}

/* Reads the head (last id and raw hash); without a head, continues from the newest record if any. */
static int
read_head(berth_store *st, int64_t *last_id, unsigned char prev[crypto_hash_sha256_BYTES], berth_error **err)
{
  memset(prev, 0, crypto_hash_sha256_BYTES);
  *last_id = 0;
  db_stmt *stmt = store_take_audit_head(st);
  if (stmt == NULL && db_prepare(store_db(st), STORE_AUDIT_HEAD_SQL, &stmt, err) < 0)
    return berth_error_wrap(err, "append audit record");
  int step = db_step(stmt, err);
  int rc = 0;
  if (step == DB_ROW) {
    *last_id = db_column_int64(stmt, 0);
    if (hex_to_raw(db_column_text(stmt, 1), prev) < 0)
      rc = berth_error_set(err, BERTH_EINTERNAL,
                           "append audit record: the stored chain head is corrupt"
                           " (run 'berth audit verify')");
  } else if (step != DB_DONE) {
    rc = berth_error_wrap(err, "append audit record");
  }
  db_finalize(stmt);
  return rc;
}

/* Binds the record's fields from at to hash (as audit_log's columns after id) from idx on. */
static void
bind_record(db_stmt *stmt, int idx, const audit_record *rec, const char *hash)
{
  db_bind_int64(stmt, idx, rec->at);
  db_bind_text(stmt, idx + 1, rec->actor);
  db_bind_text(stmt, idx + 2, rec->action);
  db_bind_text(stmt, idx + 3, rec->target);
  db_bind_text(stmt, idx + 4, rec->args);
  db_bind_text(stmt, idx + 5, rec->outcome);
  db_bind_text(stmt, idx + 6, hash);
}

/* The record and the chain's new head, in the caller's write transaction. */
static int
insert_record(berth_store *st, const audit_record *rec, const char *hash, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(store_db(st),
                 "INSERT INTO audit_log (id, at, actor, action, target, args, outcome, hash)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 &stmt, err)
      < 0)
    return berth_error_wrap(err, "append audit record");
  db_bind_int64(stmt, 1, rec->id);
  bind_record(stmt, 2, rec, hash);
  if (db_run_later(stmt, err) < 0)
    return berth_error_wrap(err, "append audit record");
  if (db_prepare(store_db(st),
                 "INSERT INTO audit_head (k, last_id, last_hash) VALUES (1, ?, ?)"
                 " ON CONFLICT (k) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash",
                 &stmt, err)
      < 0)
    return berth_error_wrap(err, "append audit record");
  db_bind_int64(stmt, 1, rec->id);
  db_bind_text(stmt, 2, hash);
  if (db_run_later(stmt, err) < 0)
    return berth_error_wrap(err, "append audit record");
  return 0;
}

/* The webhook event of a record (the arguments hold no secret values: callers record them as shown); NULL when out of
 * memory. */
static char *
audit_event_payload(const audit_record *rec)
{
  char when[BERTH_TIME_LEN];
  cJSON *o = cJSON_CreateObject(), *a = cJSON_AddObjectToObject(o, "audit");
  cJSON_AddStringToObject(o, "event", "audit");
  cJSON_AddNumberToObject(a, "id", (double) rec->id);
  cJSON_AddStringToObject(a, "at", berth_format_time(rec->at, when, sizeof when));
  cJSON_AddStringToObject(a, "actor", rec->actor);
  cJSON_AddStringToObject(a, "action", rec->action);
  if (rec->target)
    cJSON_AddStringToObject(a, "target", rec->target);
  else
    cJSON_AddNullToObject(a, "target");
  cJSON *args = rec->args ? cJSON_Parse(rec->args) : NULL;
  cJSON_AddItemToObject(a, "args", args ? args : cJSON_CreateNull());
  cJSON_AddStringToObject(a, "outcome", rec->outcome);
  cJSON_AddStringToObject(o, "at", when);
  char *payload = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return payload;
}

/* The webhooks wanting audit events (the outbox takes an event only while one does). */
#define WANTS_AUDIT_SQL "EXISTS (SELECT 1 FROM webhooks WHERE events LIKE '%\"audit\"%')"

/* The webhook outbox: an `audit` event in the record's own transaction, only while some webhook wants audit events. */
static int
outbox_audit_event(berth_store *st, const audit_record *rec, berth_error **err)
{
  char *payload = audit_event_payload(rec);
  db_stmt *stmt = NULL;
  int rc = payload ? db_prepare(store_db(st),
                                "INSERT INTO webhook_events (kind, stack, payload, created_at)"
                                " SELECT 'audit', NULL, ?, ? WHERE " WANTS_AUDIT_SQL,
                                &stmt, err)
                   : berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (rc == 0) {
    db_bind_text(stmt, 1, payload);
    db_bind_int64(stmt, 2, rec->at);
    rc = db_run_later(stmt, err);
  }
  free(payload);
  return rc < 0 ? berth_error_wrap(err, "record the webhook event of an audit record") : 0;
}

/* One statement, outside any transaction (its own commits it): the head moves from the one expected to the record's
 * only while it is still that one and the write lock is free (taken then, not waited for); the record and its
 * webhook event go in only where the head moved. Its one row: 1 when the record is in, else 0. In: went in now, or
 * was already the head when the statement began (this very statement, committed by a connection that was lost before
 * its answer came, and sent again by the engine on a new one: the record's hash is its own, chained to its
 * predecessor, so a head with that id and hash is this record). */
#define APPEND_GUESSED_SQL_HEAD                                                                                        \
  "WITH h AS (UPDATE audit_head SET last_id = ?, last_hash = ? WHERE k = 1 AND last_id = ? AND last_hash = ? AND "
/* then the engine's try-lock condition, then: */
#define APPEND_GUESSED_SQL_TAIL                                                                                        \
  " RETURNING last_id),"                                                                                               \
  " r AS (INSERT INTO audit_log (id, at, actor, action, target, args, outcome, hash)"                                  \
  " SELECT last_id, ?, ?, ?, ?, ?, ?, ? FROM h RETURNING id),"                                                         \
  " w AS (INSERT INTO webhook_events (kind, stack, payload, created_at) SELECT 'audit', NULL, ?, ? FROM r"             \
  " WHERE " WANTS_AUDIT_SQL ")"                                                                                        \
  " SELECT (SELECT count(*) FROM r) + (SELECT count(*) FROM audit_head WHERE k = 1 AND last_id = ? AND last_hash = ?)"

/* PostgreSQL, outside a caller's transaction, when this store committed the chain's head itself: the record is chained
 * to that head and written by one statement in one round trip (APPEND_GUESSED_SQL_*: no begin, lock or commit of
 * their own, which cost PostgreSQL more than the writes). Returns 1 when appended, 0 when it was not (another writer
 * appended since, or holds the write lock: nothing was written, the caller appends the usual way), or an error. */
static int
append_guessed(berth_store *st, audit_record *rec, berth_error **err)
{
  unsigned char prev[crypto_hash_sha256_BYTES], raw[crypto_hash_sha256_BYTES];
  char prev_hex[HASH_HEX], hash[HASH_HEX];
  int64_t last_id = 0;
  const char *try_lock = db_try_write_lock_sql(store_db(st));
  if (try_lock == NULL || !store_audit_head_known(st, &last_id, prev))
    return 0;
  sodium_bin2hex(prev_hex, sizeof prev_hex, prev, sizeof prev);
  rec->id = last_id + 1;
  if (record_hash(prev, rec, hash, raw) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "append audit record: record too large");
  char *payload = audit_event_payload(rec), *sql = NULL;
  if (payload == NULL || asprintf(&sql, "%s%s%s", APPEND_GUESSED_SQL_HEAD, try_lock, APPEND_GUESSED_SQL_TAIL) < 0) {
    free(payload);
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  db_stmt *stmt = NULL;
  int rc = db_prepare(store_db(st), sql, &stmt, err);
  free(sql);
  if (rc == 0) {
    db_bind_int64(stmt, 1, rec->id);
    db_bind_text(stmt, 2, hash);
    db_bind_int64(stmt, 3, last_id);
    db_bind_text(stmt, 4, prev_hex);
    bind_record(stmt, 5, rec, hash);
    db_bind_text(stmt, 12, payload);
    db_bind_int64(stmt, 13, rec->at);
    db_bind_int64(stmt, 14, rec->id);
    db_bind_text(stmt, 15, hash);
    int step = db_step(stmt, err);
    rc = step == DB_ROW ? (db_column_int64(stmt, 0) == 1) : step == DB_DONE ? 0 : step;
    db_finalize(stmt);
  }
  free(payload);
  if (rc == 1) {
    store_audit_head_remember(st, rec->id, raw);
    return 1;
  }
  store_audit_head_stale(st);
  return rc < 0 ? berth_error_wrap(err, "append audit record") : 0;
}

int
berth_audit_append(berth_store *st, const char *actor, const char *action, const char *target, const cJSON *args,
                   const char *outcome, berth_error **err)
{
  if (actor == NULL || *actor == '\0' || action == NULL || *action == '\0' || outcome == NULL || *outcome == '\0')
    return berth_error_set(err, BERTH_EINVAL, "append audit record: actor, action and outcome are required");
  if (sodium_init() < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "append audit record: libsodium failed to initialize");
  cleanup_free char *c_actor = capped(actor);
  cleanup_free char *c_action = capped(action);
  cleanup_free char *c_target = capped(target);
  cleanup_free char *c_outcome = capped(outcome);
  cleanup_free char *c_args = args_text(args);
  if (!c_actor || !c_action || (target && !c_target) || !c_outcome || (args && !c_args))
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  int rc;
  /* inside the caller's transaction when there is one (the change and its record commit together; a failed append
   * fails the caller's transaction); the chain head is read and written in one write transaction, so appenders are
   * serialized */
  audit_record rec = { 0, berth_now_ms(), c_actor, c_action, c_target, c_args, c_outcome };
  bool outermost = db_tx_depth(store_db(st)) == 0;
  if (outermost && (rc = append_guessed(st, &rec, err)) != 0)
    return rc < 0 ? rc : 0;
  if ((rc = db_begin_part(store_db(st), err)) < 0)
    return berth_error_wrap(err, "append audit record");
  unsigned char prev[crypto_hash_sha256_BYTES], raw[crypto_hash_sha256_BYTES];
  char hash[HASH_HEX];
  if ((rc = read_head(st, &rec.id, prev, err)) < 0)
    goto fail;
  rec.id++;
  rec.at = berth_now_ms(); /* once the write lock is held (taken with the head's read): times follow the chain */
  if (record_hash(prev, &rec, hash, raw) < 0) {
    rc = berth_error_set(err, BERTH_EINTERNAL, "append audit record: record too large");
    goto fail;
  }
  if ((rc = insert_record(st, &rec, hash, err)) < 0 || (rc = outbox_audit_event(st, &rec, err)) < 0)
    goto fail;
  if ((rc = db_commit(store_db(st), err)) == 0 && outermost)
    store_audit_head_remember(st, rec.id, raw);
  else
    store_audit_head_forget(st); /* the caller's commit (or rollback) decides what the head will be */
  return rc;
fail:
  db_rollback(store_db(st));
  return rc;
}

/* ---- verification ---- */

typedef struct verify_state {
  int64_t expect_id, first_bad, count;
  unsigned char prev[crypto_hash_sha256_BYTES];
  char last_hash[HASH_HEX];
  char why[160];
} verify_state;

static void
mark_bad(verify_state *v, int64_t id, const char *why)
{
  if (v->first_bad != 0)
    return;
  v->first_bad = id;
  snprintf(v->why, sizeof v->why, "%s", why);
}

static void
verify_row(verify_state *v, db_stmt *stmt)
{
  audit_record rec = {
    db_column_int64(stmt, 0), db_column_int64(stmt, 1), db_column_text(stmt, 2), db_column_text(stmt, 3),
    db_column_text(stmt, 4),  db_column_text(stmt, 5),  db_column_text(stmt, 6),
  };
  const char *stored = db_column_text(stmt, 7);
  v->count++;
  if (rec.id != v->expect_id) {
    mark_bad(v, v->expect_id < rec.id ? v->expect_id : rec.id,
             v->expect_id < rec.id ? "record is missing (ids jump past it)" : "record id is out of sequence");
    v->expect_id = rec.id;
  }
  v->expect_id++;
  char hash[HASH_HEX];
  unsigned char raw[crypto_hash_sha256_BYTES];
  if (record_hash(v->prev, &rec, hash, raw) < 0) {
    mark_bad(v, rec.id, "record is too large");
    return;
  }
  if (stored == NULL || strcmp(stored, hash) != 0)
    mark_bad(v, rec.id, "hash mismatch: the record or the one before it was changed");
  /* continue the chain from the stored hash, so one edit is reported once, at the record that was changed */
  if (hex_to_raw(stored, v->prev) < 0)
    memcpy(v->prev, raw, sizeof raw);
  snprintf(v->last_hash, sizeof v->last_hash, "%s", stored ? stored : "");
}

static int
verify_head(berth_store *st, verify_state *v, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(store_db(st), "SELECT last_id, last_hash FROM audit_head WHERE k = 1", &stmt, err) < 0)
    return BERTH_EINTERNAL;
  int step = db_step(stmt, err);
  int64_t last_seen = v->expect_id - 1;
  if (step == DB_ROW) {
    int64_t head_id = db_column_int64(stmt, 0);
    const char *head_hash = db_column_text(stmt, 1);
    if (head_id > last_seen)
      mark_bad(v, last_seen + 1, "record is missing (the newest records were removed)");
    else if (head_id < last_seen)
      mark_bad(v, head_id + 1, "record was added outside berth (after the recorded head)");
    else if (head_hash == NULL || strcmp(head_hash, v->last_hash) != 0)
      mark_bad(v, last_seen, "hash does not match the recorded head");
  } else if (step == DB_DONE) {
    if (v->count > 0)
      mark_bad(v, last_seen, "the recorded head of the chain is missing");
  } else {
    db_finalize(stmt);
    return berth_error_wrap(err, "verify audit trail");
  }
  db_finalize(stmt);
  return 0;
}

int
berth_audit_verify_detail(berth_store *st, int64_t *first_bad, int64_t *count, char **why, char **head_hash,
                          berth_error **err)
{
  if (why)
    *why = NULL;
  if (head_hash)
    *head_hash = NULL;
  if (sodium_init() < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "verify audit trail: libsodium failed to initialize");
  db_stmt *stmt = NULL;
  /* one read snapshot: a concurrent append cannot slip between the records and the head */
  if (db_begin_read(store_db(st), err) < 0)
    return berth_error_wrap(err, "verify audit trail");
  if (db_prepare(store_db(st), "SELECT id, at, actor, action, target, args, outcome, hash FROM audit_log ORDER BY id",
                 &stmt, err)
      < 0) {
    db_rollback(store_db(st));
    return berth_error_wrap(err, "verify audit trail");
  }
  verify_state v = { .expect_id = 1 };
  int step;
  while ((step = db_step(stmt, err)) == DB_ROW)
    verify_row(&v, stmt);
  db_finalize(stmt);
  int rc = step == DB_DONE ? verify_head(st, &v, err) : berth_error_wrap(err, "verify audit trail");
  db_rollback(store_db(st)); /* read only: nothing to keep */
  if (rc < 0)
    return rc;
  *first_bad = v.first_bad;
  *count = v.count;
  if ((why && v.first_bad && (*why = strdup(v.why)) == NULL)
      || (head_hash && (*head_hash = strdup(v.last_hash)) == NULL)) {
    if (why) {
      free(*why);
      *why = NULL;
    }
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  return 0;
}

int
berth_audit_verify(berth_store *st, int64_t *first_bad, int64_t *count, berth_error **err)
{
  return berth_audit_verify_detail(st, first_bad, count, NULL, NULL, err);
}

/* ---- listing ---- */

static bool
add_record_json(cJSON *list, db_stmt *stmt)
{
  cJSON *r = cJSON_CreateObject();
  if (r == NULL || !cJSON_AddItemToArray(list, r))
    return false;
  char when[64];
  int64_t at = db_column_int64(stmt, 1);
  const char *target = db_column_text(stmt, 4);
  const char *args = db_column_text(stmt, 5);
  cJSON *aj = args ? cJSON_Parse(args) : cJSON_CreateNull();
  if (aj == NULL)
    aj = cJSON_CreateString(args); /* never hide what was stored */
  if (aj == NULL || !cJSON_AddNumberToObject(r, "id", (double) db_column_int64(stmt, 0))
      || !cJSON_AddStringToObject(r, "at", berth_format_time(at, when, sizeof when))
      || !cJSON_AddStringToObject(r, "actor", db_column_text(stmt, 2))
      || !cJSON_AddStringToObject(r, "action", db_column_text(stmt, 3))
      || !(target ? cJSON_AddStringToObject(r, "target", target) : cJSON_AddNullToObject(r, "target"))
      || !cJSON_AddItemToObject(r, "args", aj) || !cJSON_AddStringToObject(r, "outcome", db_column_text(stmt, 6))
      || !cJSON_AddStringToObject(r, "hash", db_column_text(stmt, 7)))
    return false;
  return true;
}

cJSON *
berth_audit_list_json(berth_store *st, int64_t since_ms, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(store_db(st),
                 "SELECT id, at, actor, action, target, args, outcome, hash FROM audit_log WHERE at >= ? ORDER BY id",
                 &stmt, err)
      < 0) {
    berth_error_wrap(err, "list audit records");
    return NULL;
  }
  db_bind_int64(stmt, 1, since_ms);
  cJSON *root = cJSON_CreateObject();
  cJSON *list = root ? cJSON_AddArrayToObject(root, "records") : NULL;
  int step = DB_DONE;
  bool oom = list == NULL;
  while (!oom && (step = db_step(stmt, err)) == DB_ROW)
    oom = !add_record_json(list, stmt);
  if (oom || step != DB_DONE) {
    if (oom)
      berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    else
      berth_error_wrap(err, "list audit records");
    cJSON_Delete(root);
    root = NULL;
  }
  db_finalize(stmt);
  return root;
}

/* ---- time arguments ---- */

int
berth_audit_parse_time(const char *s, int64_t now_ms, int64_t *out_ms, berth_error **err)
{
  if (s == NULL || *s == '\0')
    return berth_error_set(err, BERTH_EINVAL, "empty time");
  int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, n = 0;
  if (strlen(s) <= 32 && sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) == 3 && n == 10) {
    const char *rest = s + n;
    int m = 0;
    if (*rest == 'T' || *rest == ' ') {
      if (sscanf(rest + 1, "%2d:%2d%n", &h, &mi, &m) != 2 || m != 5)
        goto bad_date;
      rest += 1 + m;
      if (*rest == ':') {
        if (sscanf(rest + 1, "%2d%n", &sec, &m) != 1 || m != 2)
          goto bad_date;
        rest += 1 + m;
        if (*rest == '.') { /* milliseconds, as berth prints times */
          if (sscanf(rest + 1, "%3d%n", &ms, &m) != 1 || m != 3)
            goto bad_date;
          rest += 1 + m;
        }
      }
      if (*rest == 'Z')
        rest++;
    }
    if (*rest != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970)
      goto bad_date;
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec };
    time_t t = timegm(&tm);
    if (t == (time_t) -1 || tm.tm_mday != d)
      goto bad_date;
    *out_ms = (int64_t) t * 1000 + ms;
    return 0;
  bad_date:
    return berth_error_set(err, BERTH_EINVAL, "time `%.64s` is not YYYY-MM-DD[THH:MM[:SS[.mmm]][Z]] (UTC)", s);
  }
  int64_t ago = 0;
  berth_error *perr = NULL;
  if (berth_parse_duration_ms(s, &ago, &perr) < 0) {
    berth_error_free(perr);
    return berth_error_set(
        err, BERTH_EINVAL,
        "time `%.64s` is neither a date (YYYY-MM-DD[THH:MM[:SS]Z], UTC) nor a duration ago (90m, 2d)", s);
  }
  *out_ms = now_ms - ago;
  return 0;
}

cJSON *
berth_audit_verify_json(berth_store *st, berth_error **err)
{
  int64_t first_bad = 0, count = 0;
  char *why = NULL, *head = NULL;
  if (berth_audit_verify_detail(st, &first_bad, &count, &why, &head, err) < 0)
    return NULL;
  cJSON *j = cJSON_CreateObject();
  cJSON_AddBoolToObject(j, "intact", first_bad == 0);
  cJSON_AddNumberToObject(j, "records", (double) count);
  if (first_bad) {
    cJSON_AddNumberToObject(j, "first_bad", (double) first_bad);
    cJSON_AddStringToObject(j, "problem", why ? why : "");
  } else {
    cJSON_AddStringToObject(j, "head", head ? head : "");
  }
  free(why);
  free(head);
  return j;
}
