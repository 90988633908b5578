/* JSON views of tasks and of a stack's state versions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "berth/parse.h"
#include "berth/redactor.h"
#include "berth/task_queue.h"
#include "berth/task_json.h"

char *
berth_time_iso(int64_t ms)
{
  char buf[BERTH_TIME_LEN];
  return ms > 0 ? strdup(berth_format_time(ms, buf, sizeof buf)) : NULL;
}

static void
add_time(cJSON *o, const char *key, int64_t ms)
{
  char *s = berth_time_iso(ms);
  if (s)
    cJSON_AddStringToObject(o, key, s);
  else
    cJSON_AddNullToObject(o, key);
  free(s);
}

static void
add_str(cJSON *o, const char *key, const char *v)
{
  if (v)
    cJSON_AddStringToObject(o, key, v);
  else
    cJSON_AddNullToObject(o, key);
}

static void
add_kv(berth_secrets *s, const berth_kv *kv, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    const char *v = kv[i].value ? kv[i].value : "";
    berth_error *e = NULL;
    berth_secrets_add_value(s, kv[i].key, v, strlen(v), &e);
    berth_error_free(e);
  }
}

static void
add_secrets_of(berth_secrets *s, const berth_stack *stack)
{
  add_kv(s, stack->secret_env, stack->n_secret_env);
  if (stack->unreadable_secrets.n > 0)
    berth_secrets_mark_incomplete(s);
}

berth_secrets *
berth_submission_secrets(const berth_stack *stack, const berth_kv *own, size_t n_own)
{
  berth_error *e = NULL;
  berth_secrets *s = berth_secrets_new(0, &e);
  berth_error_free(e);
  if (s != NULL) {
    add_secrets_of(s, stack);
    add_kv(s, own, n_own);
  }
  return s;
}

berth_secrets *
berth_display_secrets_of(const berth_stack *stack)
{
  return berth_submission_secrets(stack, NULL, 0);
}

berth_secrets *
berth_display_secrets(berth_store *st, const char *stack, berth_error **err)
{
  berth_secrets *s = berth_secrets_new(0, err);
  if (s == NULL)
    return NULL;
  berth_error *e = NULL;
  int rc = 0;
  if (stack != NULL) {
    berth_stack *one = NULL;
    rc = berth_store_stack_get(st, stack, &one, &e);
    if (rc == 0)
      add_secrets_of(s, one);
    else if (rc == BERTH_ENOTFOUND) /* a deleted stack's tasks: no secrets of it left to mask */
      rc = 0;
    berth_stack_free(one);
  } else {
    berth_stack **all = NULL;
    size_t n = 0;
    rc = berth_store_stack_list(st, &all, &n, &e);
    for (size_t i = 0; rc == 0 && i < n; i++)
      add_secrets_of(s, all[i]);
    berth_stacks_free(all, n);
  }
  if (rc < 0) {
    berth_secrets_free(s);
    if (err && *err == NULL) {
      *err = e;
      e = NULL;
    }
    berth_error_free(e);
    return NULL;
  }
  berth_error_free(e);
  return s;
}

int
berth_task_get_record(berth_store *st, const char *id, berth_task_ahead *ahead, berth_task **t, cJSON **record,
                      berth_error **err)
{
  *record = NULL;
  berth_kv *secrets = NULL;
  size_t n = 0;
  bool incomplete = false;
  int rc = berth_store_task_get_with_secrets(st, id, ahead, t, &secrets, &n, &incomplete, err);
  if (rc < 0)
    return rc;
  /* one host (SQLite): a task under way whose supervisor is gone (its server was SIGKILLed) is found by whoever
   * looks, here too, rather than shown as running with nothing behind it (a fleet's hosts judge their own) */
  const char *state = (*t)->state;
  if (!berth_store_is_shared(st)
      && (strcmp(state, "PREPARING") == 0 || strcmp(state, "INITIALIZING") == 0 || strcmp(state, "PERFORMING") == 0)) {
    berth_error *e = NULL;
    int orphan = berth_queue_fail_if_orphan(st, NULL, *t, &e);
    berth_error_free(e);
    if (orphan == 1) {
      berth_kv_array_free(secrets, n);
      berth_task_free(*t);
      *t = NULL;
      return berth_task_get_record(st, id, NULL, t, record, err);
    }
  }
  berth_secrets *shown = berth_secrets_new(0, err);
  if (shown != NULL)
    add_kv(shown, secrets, n);
  if (incomplete)
    berth_secrets_mark_incomplete(shown);
  berth_kv_array_free(secrets, n);
  if (shown == NULL) { /* never shown without its secrets masked */
    berth_task_free(*t);
    *t = NULL;
    return BERTH_EINTERNAL;
  }
  *record = berth_task_to_json_redacted(*t, shown);
  berth_secrets_free(shown);
  return 0;
}

cJSON *
berth_task_to_json(const berth_task *t)
{
  return berth_task_to_json_redacted(t, NULL);
}

cJSON *
berth_task_to_json_redacted(const berth_task *t, berth_secrets *redact)
{
  cJSON *o = cJSON_CreateObject();
  add_str(o, "id", t->id);
  cJSON_AddNumberToObject(o, "seq", (double) t->seq);
  add_str(o, "stack", t->stack);
  /* the command and env as submitted, masked then (shown_*: the secret values of that moment), and masked again with
   * the stack's secrets of now (a secret added since) */
  const char *command = t->shown_command ? t->shown_command : t->command;
  /* a task recorded before its masked form was kept, of a stack whose secret cannot be decrypted: that value cannot
   * be masked, so the text is not shown */
  bool blind = berth_secrets_incomplete(redact) && t->shown_command == NULL;
  char *cmd = redact && command && !blind ? berth_secrets_redact_string(redact, command, strlen(command), NULL) : NULL;
  add_str(o, "command", cmd ? cmd : redact && command ? BERTH_NOT_SHOWN : command);
  free(cmd);
  add_str(o, "state", t->state);
  add_str(o, "reason", t->reason);
  if (t->exit_code >= 0)
    cJSON_AddNumberToObject(o, "exit_code", t->exit_code);
  else
    cJSON_AddNullToObject(o, "exit_code");
  add_str(o, "actor", t->actor);
  add_str(o, "triggered_by", t->triggered_by ? t->triggered_by : t->actor);
  cJSON_AddBoolToObject(o, "skip_init", t->skip_init);
  cJSON *env = cJSON_AddObjectToObject(o, "env");
  const berth_kv *kv = t->shown_env ? t->shown_env : t->env;
  size_t n_kv = t->shown_env ? t->n_shown_env : t->n_env;
  for (size_t i = 0; i < n_kv; i++) { /* masked like the command: a secret value given as plain env */
    const char *v = kv[i].value ? kv[i].value : "";
    char *masked = redact && !blind ? berth_secrets_redact_string(redact, v, strlen(v), NULL) : NULL;
    cJSON_AddStringToObject(env, kv[i].key, masked ? masked : redact ? BERTH_NOT_SHOWN : v);
    free(masked);
  }
  cJSON *senv = cJSON_AddObjectToObject(o, "secret_env"); /* names only: the values are never shown */
  if (t->secret_names != NULL) {                          /* kept when the values are wiped at the task's end */
    for (const char *p = t->secret_names; *p;) {
      size_t n = strcspn(p, ",");
      char *name = strndup(p, n);
      if (name != NULL)
        cJSON_AddStringToObject(senv, name, "***");
      free(name);
      p += n + (p[n] == ',');
    }
  } else {
    for (size_t i = 0; i < t->n_secret_env; i++)
      cJSON_AddStringToObject(senv, t->secret_env[i].key, "***");
  }
  add_str(o, "container_id", t->container_id);
  add_str(o, "blocked_by", t->blocked_by);
  add_str(o, "host", t->host);
  cJSON_AddNumberToObject(o, "attempt", t->attempt);
  add_str(o, "retry_of", t->retry_of);
  if (t->supervisor_pid > 0)
    cJSON_AddNumberToObject(o, "supervisor_pid", t->supervisor_pid);
  else
    cJSON_AddNullToObject(o, "supervisor_pid");
  add_time(o, "created_at", t->created_at);
  add_time(o, "started_at", t->started_at);
  add_time(o, "finished_at", t->finished_at);
  cJSON_AddNumberToObject(o, "state_version", (double) t->state_version);
  if (t->history != NULL) {
    cJSON *h = cJSON_AddArrayToObject(o, "history");
    for (size_t i = 0; i < t->n_history; i++) {
      cJSON *e = cJSON_CreateObject();
      add_str(e, "state", t->history[i].state);
      add_time(e, "at", t->history[i].at);
      add_str(e, "actor", t->history[i].actor);
      add_str(e, "note", t->history[i].note);
      cJSON_AddItemToArray(h, e);
    }
  }
  return o;
}

cJSON *
berth_stack_state_json(berth_store *st, const berth_stack *s, berth_error **err)
{
  berth_state_version *v = NULL;
  size_t n = 0;
  if (berth_state_list(st, s->name, &v, &n, err) < 0)
    return NULL;
  char b1[64];
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "stack", s->name);
  cJSON *persist = cJSON_AddArrayToObject(o, "persist");
  for (size_t i = 0; i < s->persist.n; i++)
    cJSON_AddItemToArray(persist, cJSON_CreateString(s->persist.v[i]));
  cJSON *arr = cJSON_AddArrayToObject(o, "versions");
  for (size_t i = 0; i < n; i++) {
    cJSON *e = cJSON_CreateObject();
    char *path = berth_state_version_path(st, s->name, v[i].version);
    cJSON_AddNumberToObject(e, "version", (double) v[i].version);
    v[i].task_id ? cJSON_AddStringToObject(e, "task_id", v[i].task_id) : cJSON_AddNullToObject(e, "task_id");
    cJSON_AddStringToObject(e, "created_at", berth_format_time(v[i].created_at, b1, sizeof b1));
    cJSON_AddNumberToObject(e, "files", (double) v[i].files);
    cJSON_AddNumberToObject(e, "bytes", (double) v[i].bytes);
    cJSON_AddStringToObject(e, "path", path ? path : "");
    free(path);
    cJSON_AddItemToArray(arr, e);
  }
  berth_state_versions_free(v, n);
  return o;
}

cJSON *
berth_task_record(berth_store *st, const berth_task *t, berth_error **err)
{
  berth_secrets *shown = berth_display_secrets(st, t->stack, err);
  if (shown == NULL)
    return NULL;
  cJSON *j = berth_task_to_json_redacted(t, shown);
  berth_secrets_free(shown);
  return j;
}
