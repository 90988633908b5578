/* JSON views of tasks. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "berth/task_json.h"

char *
berth_time_iso(int64_t ms)
{
  if (ms <= 0)
    return NULL;
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char *s = NULL;
  if (asprintf(&s, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
               tm.tm_min, tm.tm_sec, (int)(ms % 1000))
      < 0)
    return NULL;
  return s;
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

cJSON *
berth_task_to_json(const berth_task *t)
{
  cJSON *o = cJSON_CreateObject();
  add_str(o, "id", t->id);
  cJSON_AddNumberToObject(o, "seq", (double)t->seq);
  add_str(o, "stack", t->stack);
  add_str(o, "command", t->command);
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
  for (size_t i = 0; i < t->n_env; i++)
    cJSON_AddStringToObject(env, t->env[i].key, t->env[i].value ? t->env[i].value : "");
  cJSON *senv = cJSON_AddObjectToObject(o, "secret_env");
  for (size_t i = 0; i < t->n_secret_env; i++)
    cJSON_AddStringToObject(senv, t->secret_env[i].key, "***");
  add_str(o, "container_id", t->container_id);
  add_str(o, "blocked_by", t->blocked_by);
  if (t->supervisor_pid > 0)
    cJSON_AddNumberToObject(o, "supervisor_pid", t->supervisor_pid);
  else
    cJSON_AddNullToObject(o, "supervisor_pid");
  add_time(o, "created_at", t->created_at);
  add_time(o, "started_at", t->started_at);
  add_time(o, "finished_at", t->finished_at);
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
