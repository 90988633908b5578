/* Schedules: validation, their JSON form, audited changes, and firing what is due (include/berth/schedule.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "berth/audit.h"
#include "berth/cron.h"
#include "berth/parse.h"
#include "berth/stack_json.h"
#include "berth/schedule.h"
#include "berth/redactor.h"
#include "berth/task_json.h"

#define CATCH_UP_ITERATIONS 100000 /* fire times counted when catching up (a year of minutes is 525,600) */

static bool
valid_name(const char *n)
{
  size_t len = n ? strlen(n) : 0;
  if (len == 0 || len > 63 || !isalnum((unsigned char) n[0]))
    return false;
  for (size_t i = 1; i < len; i++)
    if (!isalnum((unsigned char) n[i]) && n[i] != '_' && n[i] != '.' && n[i] != '-')
      return false;
  return true;
}

int
berth_schedule_next(const berth_schedule *s, int64_t after_ms, int64_t *next_ms, berth_error **err)
{
  if (s->cron == NULL) {
    *next_ms = s->at_ms > after_ms ? s->at_ms : 0;
    return 0;
  }
  berth_cron c;
  if (berth_cron_parse(s->cron, &c, err) < 0)
    return BERTH_EINVAL;
  return berth_cron_next(&c, s->tz, after_ms, next_ms, err);
}

int
berth_schedule_validate(berth_schedule *s, int64_t now_ms, berth_error **err)
{
  if (berth_stack_validate_name(s->stack, err) < 0)
    return BERTH_EINVAL;
  if (!valid_name(s->name))
    return berth_error_set(
        err, BERTH_EINVAL,
        "schedule name `%.80s` is invalid (letters, digits, `_.-`, at most 63, starting with a letter "
        "or digit)",
        s->name ? s->name : "");
  if (s->cron != NULL && s->at_ms != 0)
    return berth_error_set(err, BERTH_EINVAL, "a schedule takes a cron expression or a time to run at, not both");
  if (s->cron == NULL && s->at_ms == 0)
    return berth_error_set(err, BERTH_EINVAL, "a schedule needs either a cron expression or a time to run at");
  if (s->command == NULL || strspn(s->command, " \t\r\n") == strlen(s->command))
    return berth_error_set(err, BERTH_EINVAL, "the command of schedule `%s` is empty", s->name);
  if (!berth_utf8_valid(s->command))
    return berth_error_set(err, BERTH_EINVAL, "the command of schedule `%s` is not valid UTF-8", s->name);
  if (s->catch_up && strcmp(s->catch_up, "once") != 0 && strcmp(s->catch_up, "skip") != 0)
    return berth_error_set(err, BERTH_EINVAL, "catch-up `%.40s` is invalid (once or skip)", s->catch_up);
  for (size_t i = 0; i < s->n_env; i++) { /* the rules of a task's own variables: its fires are tasks */
    if (!berth_env_name_valid(s->env[i].key))
      return berth_error_set(err, BERTH_EINVAL, "environment variable name `%.80s` is invalid",
                             s->env[i].key ? s->env[i].key : "");
    if (strncmp(s->env[i].key, "BERTH_", 6) == 0)
      return berth_error_set(err, BERTH_EINVAL,
                             "environment variable name `%.80s` is reserved (berth sets the BERTH_* "
                             "variables)",
                             s->env[i].key);
    if (!berth_utf8_valid(s->env[i].value))
      return berth_error_set(err, BERTH_EINVAL, "environment variable `%.80s`: its value is not valid UTF-8",
                             s->env[i].key);
  }
  if (s->cron == NULL && s->tz != NULL)
    return berth_error_set(err, BERTH_EINVAL, "a time zone goes with a cron expression (--at takes a UTC offset)");
  if (s->cron == NULL && s->at_ms <= now_ms)
    return berth_error_set(err, BERTH_EINVAL, "the time to run at is in the past");
  int rc = berth_schedule_next(s, now_ms, &s->next_fire, err);
  if (rc < 0) {
    berth_error_wrap(err, "schedule `%s`", s->name);
    if (rc == BERTH_ENOTFOUND && err && *err && (*err)->code == BERTH_ENOTFOUND) {
      (*err)->code = BERTH_EINVAL; /* a cron expression that never fires is bad input, not a missing thing */
      rc = BERTH_EINVAL;
    }
    return rc;
  }
  return 0;
}

static void
add_time(cJSON *o, const char *key, int64_t ms)
{
  char buf[BERTH_TIME_LEN];
  if (ms > 0)
    cJSON_AddStringToObject(o, key, berth_format_time(ms, buf, sizeof buf));
  else
    cJSON_AddNullToObject(o, key);
}

static void
add_str(cJSON *o, const char *key, const char *v)
{
  if (v)
    cJSON_AddStringToObject(o, key, v);
  else
    cJSON_AddNullToObject(o, key);
}

cJSON *
berth_schedule_to_json(const berth_schedule *s, struct berth_secrets *shown)
{
  /* masked as added (shown_command), and again with the stack's secrets of now; one added before berth kept that, of
   * a stack whose secret cannot be decrypted: that value cannot be masked, so the command is not shown */
  const char *command = s->shown_command ? s->shown_command : s->command;
  bool blind = berth_secrets_incomplete(shown);
  char *cmd = command && shown ? blind && !s->shown_command
                                     ? strdup(BERTH_NOT_SHOWN)
                                     : berth_secrets_redact_string(shown, command, strlen(command), NULL)
                               : NULL;
  if (s->command && cmd == NULL)
    return NULL; /* never unmasked */
  cJSON *o = cJSON_CreateObject();
  add_str(o, "stack", s->stack);
  add_str(o, "name", s->name);
  add_str(o, "cron", s->cron);
  add_str(o, "tz", s->cron ? (s->tz ? s->tz : "UTC") : NULL);
  add_time(o, "at", s->at_ms);
  add_str(o, "command", cmd);
  free(cmd);
  cJSON_AddBoolToObject(o, "skip_init", s->skip_init);
  cJSON *env = cJSON_AddObjectToObject(o, "env");
  for (size_t i = 0; i < s->n_env; i++) { /* masked like a task's: a secret value given as plain env */
    const char *v = s->env[i].value ? s->env[i].value : "";
    char *m = shown && !blind ? berth_secrets_redact_string(shown, v, strlen(v), NULL) : NULL;
    cJSON_AddStringToObject(env, s->env[i].key, m ? m : shown ? BERTH_NOT_SHOWN : v);
    free(m);
  }
  add_str(o, "catch_up", s->catch_up);
  cJSON_AddBoolToObject(o, "paused", s->paused);
  add_str(o, "actor", s->actor);
  add_time(o, "next_fire_at", s->paused ? 0 : s->next_fire);
  add_time(o, "created_at", s->created_at);
  add_time(o, "updated_at", s->updated_at);
  if (s->last_fire > 0) {
    cJSON *l = cJSON_AddObjectToObject(o, "last_fire");
    add_time(l, "fire_time", s->last_fire);
    add_str(l, "outcome", s->last_outcome);
    add_str(l, "task_id", s->last_task_id);
    add_str(l, "message", s->last_message);
  } else {
    cJSON_AddNullToObject(o, "last_fire");
  }
  return o;
}

cJSON *
berth_schedules_json(berth_store *st, berth_schedule **v, size_t n, bool (*keep)(const char *stack, void *arg),
                     void *arg, berth_error **err)
{
  struct berth_secrets *shown = berth_display_secrets(st, NULL, err);
  if (shown == NULL)
    return NULL;
  cJSON *j = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(j, "schedules");
  for (size_t i = 0; i < n && j; i++) {
    if (keep && !keep(v[i]->stack, arg))
      continue;
    cJSON *o = berth_schedule_to_json(v[i], shown);
    if (o == NULL) {
      cJSON_Delete(j);
      j = NULL;
      berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    } else {
      cJSON_AddItemToArray(a, o);
    }
  }
  berth_secrets_free(shown);
  return j;
}

cJSON *
berth_schedule_json(berth_store *st, const berth_schedule *s, berth_error **err)
{
  struct berth_secrets *shown = berth_display_secrets(st, s->stack, err);
  if (shown == NULL)
    return NULL;
  cJSON *o = berth_schedule_to_json(s, shown);
  berth_secrets_free(shown);
  if (o == NULL)
    berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  return o;
}

/* ISO 8601: YYYY-MM-DDTHH:MM[:SS[.fff]][Z|+HH:MM|-HH:MM] (no offset: UTC). */
static int
parse_at(const char *v, int64_t *out, berth_error **err)
{
  struct tm tm = { 0 };
  const char *p = v ? strptime(v, "%Y-%m-%dT%H:%M", &tm) : NULL;
  if (p && *p == ':') {
    char *end = NULL;
    long sec = strtol(p + 1, &end, 10);
    if (end != p + 3 || sec < 0 || sec > 60)
      p = NULL;
    else {
      tm.tm_sec = (int) sec;
      p = end;
      if (*p == '.')
        for (p++; isdigit((unsigned char) *p); p++)
          ;
    }
  }
  long off = 0;
  if (p && (*p == '+' || *p == '-')) {
    int hh = 0, mm = 0, n = 0;
    bool digits = isdigit((unsigned char) p[1]) && isdigit((unsigned char) p[2]) && p[3] == ':'
                  && isdigit((unsigned char) p[4]) && isdigit((unsigned char) p[5]);
    if (!digits || sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &n) != 2 || p[1 + n] != '\0' || n != 5 || hh > 23 || mm > 59)
      p = NULL;
    else
      off = (*p == '-' ? -1 : 1) * (hh * 3600L + mm * 60L), p += 1 + n;
  } else if (p && (*p == 'Z' || *p == 'z')) {
    p++;
  }
  if (p == NULL || *p != '\0')
    return berth_error_set(err, BERTH_EINVAL, "time `%.64s` is not ISO 8601 (e.g. 2026-12-24T18:00:00Z)", v ? v : "");
  *out = ((int64_t) timegm(&tm) - off) * 1000;
  return 0;
}

static int
json_str(const cJSON *o, const char *key, char **out, berth_error **err)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (v == NULL || cJSON_IsNull(v))
    return 0;
  if (!cJSON_IsString(v))
    return berth_error_set(err, BERTH_EINVAL, "field `%s` must be a string", key);
  *out = strdup(v->valuestring);
  return *out ? 0 : berth_error_set(err, BERTH_EINTERNAL, "out of memory");
}

static int
from_json(const cJSON *o, berth_schedule *s, berth_error **err)
{
  static const char *const known[] = { "name", "cron", "tz", "at", "command", "skip_init", "env", "catch_up", NULL };
  if (berth_json_only(o, known, "schedule", err) < 0)
    return BERTH_EINVAL;
  char *at = NULL;
  if (json_str(o, "name", &s->name, err) < 0 || json_str(o, "cron", &s->cron, err) < 0
      || json_str(o, "tz", &s->tz, err) < 0 || json_str(o, "command", &s->command, err) < 0
      || json_str(o, "catch_up", &s->catch_up, err) < 0 || json_str(o, "at", &at, err) < 0)
    return BERTH_EINVAL;
  int rc = at ? parse_at(at, &s->at_ms, err) : 0;
  free(at);
  const cJSON *skip = cJSON_GetObjectItemCaseSensitive(o, "skip_init");
  if (rc == 0 && skip && !cJSON_IsBool(skip))
    rc = berth_error_set(err, BERTH_EINVAL, "field `skip_init` must be true or false");
  s->skip_init = cJSON_IsTrue(skip);
  const cJSON *env = cJSON_GetObjectItemCaseSensitive(o, "env");
  if (rc == 0 && env && !cJSON_IsObject(env) && !cJSON_IsNull(env))
    rc = berth_error_set(err, BERTH_EINVAL, "field `env` must be an object of strings");
  for (const cJSON *it = cJSON_IsObject(env) ? env->child : NULL; rc == 0 && it; it = it->next) {
    if (!cJSON_IsString(it))
      rc = berth_error_set(err, BERTH_EINVAL, "env `%.64s` must be a string", it->string);
    else if (berth_kv_set(&s->env, &s->n_env, it->string, it->valuestring) < 0)
      rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  if (rc == 0 && s->tz && strcmp(s->tz, "UTC") == 0) {
    free(s->tz);
    s->tz = NULL;
  }
  return rc;
}

int
berth_schedule_from_json(const cJSON *o, const char *stack, berth_schedule **out, berth_error **err)
{
  berth_schedule *s = calloc(1, sizeof *s);
  if (s == NULL || (s->stack = strdup(stack)) == NULL || (s->catch_up = strdup("once")) == NULL) {
    berth_schedule_free(s);
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  free(s->catch_up);
  s->catch_up = NULL;
  int rc = from_json(o, s, err);
  if (rc == 0 && s->catch_up == NULL && (s->catch_up = strdup("once")) == NULL)
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (rc == 0)
    rc = berth_schedule_validate(s, berth_now_ms(), err);
  if (rc < 0) {
    berth_schedule_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

/* ---- audited changes ---- */

static int
audited(berth_store *st, int rc, const char *actor, const char *action, const char *stack, const char *name,
        cJSON *args, berth_error **err)
{
  char target[200];
  snprintf(target, sizeof target, "%s/%s", stack, name);
  if (rc == 0)
    rc = berth_audit_append(st, actor, action, target, args, "ok", err);
  cJSON_Delete(args);
  if (rc < 0) {
    berth_store_rollback(st);
    return rc;
  }
  return berth_store_commit(st, err);
}

int
berth_schedule_add(berth_store *st, berth_schedule *s, const char *actor, const char *role, berth_error **err)
{
  int rc = berth_schedule_validate(s, berth_now_ms(), err);
  if (rc < 0)
    return rc;
  free(s->actor);
  free(s->role);
  s->actor = strdup(actor ? actor : "berth");
  s->role = role ? strdup(role) : NULL;
  /* as it is shown from now on: masked with its stack's secret values of this moment (they may be rotated later) */
  struct berth_secrets *secrets = berth_display_secrets(st, s->stack, err);
  if (secrets == NULL)
    return err && *err ? (*err)->code : BERTH_EINTERNAL;
  free(s->shown_command);
  s->shown_command = berth_secrets_incomplete(secrets)
                         ? strdup(BERTH_NOT_SHOWN)
                         : berth_secrets_redact_string(secrets, s->command, strlen(s->command), NULL);
  berth_secrets_free(secrets);
  if (s->shown_command == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if ((rc = berth_store_begin(st, err)) < 0)
    return rc;
  rc = berth_store_schedule_create(st, s, err);
  cJSON *shown = rc == 0 ? berth_schedule_json(st, s, err) : NULL; /* the record's arguments: the command masked */
  if (rc == 0 && shown == NULL)
    rc = err && *err ? (*err)->code : BERTH_EINTERNAL;
  return audited(st, rc, actor, "schedule.add", s->stack, s->name, shown, err);
}

int
berth_schedule_set_paused(berth_store *st, const char *stack, const char *name, bool paused, const char *actor,
                          berth_error **err)
{
  int rc = berth_store_begin(st, err);
  if (rc < 0)
    return rc;
  berth_schedule *s = NULL;
  int64_t next = 0;
  rc = berth_store_schedule_get(st, stack, name, &s, err);
  if (rc == 0)
    next = s->next_fire;
  if (rc == 0 && !paused) /* fires missed while paused are not caught up */
    rc = berth_schedule_next(s, berth_now_ms(), &next, err);
  if (rc == 0)
    rc = berth_store_schedule_set_paused(st, stack, name, paused, next, err);
  berth_schedule_free(s);
  return audited(st, rc, actor, paused ? "schedule.pause" : "schedule.resume", stack, name, NULL, err);
}

int
berth_schedule_remove(berth_store *st, const char *stack, const char *name, const char *actor, berth_error **err)
{
  int rc = berth_store_begin(st, err);
  if (rc < 0)
    return rc;
  rc = berth_store_schedule_delete(st, stack, name, err);
  return audited(st, rc, actor, "schedule.remove", stack, name, NULL, err);
}

/* ---- firing ---- */

typedef struct fire_ctx {
  const berth_schedule *s;
  int64_t fire_time, missed;
  bool lost; /* another host recorded this fire time first */
} fire_ctx;

/* In the task's transaction: the fire row, unique per (schedule, fire time). */
static int
record_fire_in_tx(void *ud, berth_store *st, const berth_task *t, berth_error **err)
{
  fire_ctx *fc = ud;
  int rc = berth_store_schedule_fire(st, fc->s->id, fc->fire_time, "submitted", t->id, NULL, fc->missed, err);
  fc->lost = rc == BERTH_EBUSY;
  return rc;
}

/* The latest fire time due at now (*count: how many were due, that one included) and the one after it. */
static int
due_times(const berth_schedule *s, int64_t now, int64_t *fire, int64_t *count, int64_t *after, berth_error **err)
{
  int64_t t = s->next_fire, n = 1, nx = 0;
  int rc;
  while ((rc = berth_schedule_next(s, t, &nx, err)) == 0 && nx > 0 && nx <= now && n < CATCH_UP_ITERATIONS) {
    t = nx;
    n++;
  }
  if (rc == 0 && nx > 0 && nx <= now) /* too many to count: jump to now */
    rc = berth_schedule_next(s, now, &nx, err);
  if (rc == BERTH_ENOTFOUND) {
    berth_error_clear(err);
    nx = 0, rc = 0;
  }
  *fire = t, *count = n, *after = nx;
  return rc;
}

static int
fire_one(berth_store *st, const berth_schedule *s, int64_t now, berth_schedule_submit_fn submit, void *ud, int *fired,
         berth_error **err)
{
  int64_t fire = 0, count = 0, after = 0;
  int rc = due_times(s, now, &fire, &count, &after, err);
  if (rc < 0)
    return rc;
  bool late = now - fire > BERTH_SCHEDULE_GRACE_MS, done = false;
  /* another host fired it since this one read the schedule: nothing to submit (the unique row decides anyway; this
   * spares a submission that would be rolled back, and a refusal recorded twice) */
  if ((rc = berth_store_schedule_fired(st, s->id, fire, &done, err)) < 0)
    return rc;
  if (done) {
    rc = 0;
  } else if (late && strcmp(s->catch_up, "skip") == 0) {
    rc = berth_store_schedule_fire(st, s->id, fire, "missed", NULL, "missed: no server ran at its time", count, err);
  } else {
    char trigger[96];
    snprintf(trigger, sizeof trigger, "schedule:%s", s->name);
    fire_ctx fc = { s, fire, count - 1, false };
    berth_submit req = { .stack = s->stack,
                         .command = s->command,
                         .shown_command = s->shown_command, /* the fired task shows it masked as added */
                         .skip_init = s->skip_init,
                         .env = s->env,
                         .n_env = s->n_env,
                         .actor = s->actor,
                         .role = s->role,
                         .triggered_by = trigger,
                         .in_tx = record_fire_in_tx,
                         .in_tx_ud = &fc };
    berth_error *e = NULL;
    rc = submit(ud, st, &req, &e);
    if (rc == 0 && fired)
      (*fired)++;
    if (rc < 0 && fc.lost)
      rc = 0;     /* another host fired it */
    if (rc < 0) { /* refused (lock, allowlist, policy, Docker): recorded, not silent */
      const char *why = e && e->msg ? e->msg : "refused";
      rc = berth_store_schedule_fire(st, s->id, fire, "refused", NULL, why, count - 1, err);
      if (rc == 0) {
        cJSON *args = cJSON_CreateObject();
        cJSON_AddStringToObject(args, "schedule", s->name);
        cJSON_AddStringToObject(args, "reason", why);
        berth_error *e2 = NULL;
        char target[200];
        snprintf(target, sizeof target, "%s/%s", s->stack, s->name);
        berth_audit_append(st, s->actor, "schedule.fire", target, args, "refused", &e2);
        berth_error_free(e2);
        cJSON_Delete(args);
      }
    }
    berth_error_free(e);
  }
  if (rc == BERTH_EBUSY) { /* another host fired it */
    berth_error_clear(err);
    rc = 0;
  }
  if (rc == 0)
    rc = berth_store_schedule_advance(st, s->id, s->next_fire, after, err);
  return rc;
}

int
berth_schedule_tick(berth_store *st, int64_t now_ms, berth_schedule_submit_fn submit, void *ud, int *fired,
                    berth_error **err)
{
  berth_schedule **due = NULL;
  size_t n = 0;
  int rc = berth_store_schedule_due(st, now_ms, &due, &n, err), first = 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    berth_error *e = NULL; /* one schedule's failure (its zone gone from the tz database) does not stop the others */
    int frc = fire_one(st, due[i], now_ms, submit, ud, fired, &e);
    if (frc < 0 && first == 0) {
      first = frc;
      *err = e;
      berth_error_wrap(err, "schedule `%s` of stack `%s`", due[i]->name, due[i]->stack);
      e = NULL;
    }
    berth_error_free(e);
  }
  berth_schedules_free(due, n);
  return rc < 0 ? rc : first;
}
