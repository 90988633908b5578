/* Stack and task bodies of the HTTP API as JSON (include/berth/stack_json.h): strict types, unknown fields refused,
 * every size capped. The server applies request bodies with them, and the command line's local back end applies the
 * same bodies, so a stack is created or changed by one code path in both modes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/parse.h"
#include "berth/stack_host.h"
#include "berth/stack_json.h"

int
berth_json_only(const cJSON *o, const char *const *allowed, const char *what, berth_error **err)
{
  if (!cJSON_IsObject(o))
    return berth_error_set(err, BERTH_EINVAL, "%s: must be a JSON object", what);
  const cJSON *e;
  cJSON_ArrayForEach(e, o)
  {
    bool ok = false;
    for (size_t i = 0; allowed[i] && !ok; i++)
      ok = e->string && strcmp(e->string, allowed[i]) == 0;
    if (!ok)
      return berth_error_set(err, BERTH_EINVAL, "%s: unknown field `%.64s`", what, e->string ? e->string : "");
  }
  return 0;
}

/* {"K": "V", ...} into kv (merged: a null value removes the key, which must be set on stack when stack is given;
 * keep_masked: "***" keeps the current value). */
int
berth_json_env(const cJSON *o, const char *key, bool keep_masked, const char *stack, berth_kv **kv, size_t *n,
               berth_error **err)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (v == NULL || cJSON_IsNull(v))
    return 0;
  if (!cJSON_IsObject(v))
    return berth_error_set(err, BERTH_EINVAL, "field `%s` must be an object of strings", key);
  if (cJSON_GetArraySize(v) > BERTH_JSON_MAX_ENV)
    return berth_error_set(err, BERTH_EINVAL, "field `%s` has more than %d entries", key, BERTH_JSON_MAX_ENV);
  const cJSON *e;
  cJSON_ArrayForEach(e, v)
  {
    if (!berth_env_name_valid(e->string))
      return berth_error_set(err, BERTH_EINVAL, "field `%s`: `%.64s` is not a valid variable name", key, e->string);
    if (cJSON_IsNull(e) && stack == NULL) /* a task's own variables: there is nothing to unset */
      return berth_error_set(err, BERTH_EINVAL, "field `%s`: the value of `%.64s` must be a string", key, e->string);
    if (cJSON_IsNull(e)) {
      if (berth_kv_unset(kv, n, e->string) == 0 && stack)
        return berth_error_set(err, BERTH_EINVAL, "%s `%.64s` is not set on stack `%s`",
                               strcmp(key, "env") == 0 ? "env" : "secret env", e->string, stack);
      continue;
    }
    if (!cJSON_IsString(e))
      return berth_error_set(err, BERTH_EINVAL, "field `%s`: the value of `%.64s` must be a string", key, e->string);
    if (keep_masked && strcmp(e->valuestring, "***") == 0 && berth_kv_get(*kv, *n, e->string) != NULL)
      continue;
    if (berth_kv_set(kv, n, e->string, e->valuestring) < 0)
      return berth_error_set(err, BERTH_EINTERNAL, "field `%s`: out of memory", key);
  }
  return 0;
}

static int
json_strv(const cJSON *o, const char *key, berth_strv *v, berth_error **err)
{
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
  if (a == NULL)
    return 0;
  if (cJSON_IsNull(a)) {
    berth_strv_clear(v);
    return 0;
  }
  if (!cJSON_IsArray(a))
    return berth_error_set(err, BERTH_EINVAL, "field `%s` must be an array of strings", key);
  if (cJSON_GetArraySize(a) > BERTH_JSON_MAX_LIST)
    return berth_error_set(err, BERTH_EINVAL, "field `%s` has more than %d entries", key, BERTH_JSON_MAX_LIST);
  berth_strv nv = { 0 };
  const cJSON *e;
  cJSON_ArrayForEach(e, a)
  {
    if (!cJSON_IsString(e) || berth_strv_push(&nv, e->valuestring) < 0) {
      berth_strv_clear(&nv);
      return berth_error_set(err, BERTH_EINVAL, "field `%s` must be an array of strings", key);
    }
  }
  berth_strv_clear(v);
  *v = nv;
  return 0;
}

static int
json_str_field(const cJSON *o, const char *key, bool nullable, char **dst, berth_error **err)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (v == NULL)
    return 0;
  if (cJSON_IsNull(v) && nullable) {
    free(*dst);
    *dst = NULL;
    return 0;
  }
  if (!cJSON_IsString(v))
    return berth_error_set(err, BERTH_EINVAL, "field `%s` must be a string%s", key, nullable ? " or null" : "");
  char *s = strdup(v->valuestring);
  if (s == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "field `%s`: out of memory", key);
  free(*dst);
  *dst = s;
  return 0;
}

/* A whole number in [min, max], given as a JSON number. */
static int
json_int(const cJSON *o, const char *key, int64_t min, int64_t max, int64_t *dst, berth_error **err)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (v == NULL)
    return 0;
  if (!cJSON_IsNumber(v) || v->valuedouble != (double) (int64_t) v->valuedouble || v->valuedouble < (double) min
      || v->valuedouble > (double) max)
    return berth_error_set(err, BERTH_EINVAL, "field `%s` must be a whole number from %lld to %lld", key,
                           (long long) min, (long long) max);
  *dst = (int64_t) v->valuedouble;
  return 0;
}

/* A size/duration/cpus given as a string ("512m", "10m", "1.5"): parsed with the CLI's parsers. */
static int
json_parsed(const cJSON *o, const char *key, int (*parse)(const char *, int64_t *, berth_error **), int64_t *dst,
            berth_error **err)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (v == NULL)
    return 0;
  char num[64];
  const char *text = NULL;
  if (cJSON_IsString(v))
    text = v->valuestring;
  else if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e15) {
    /* a whole number whole (1073741824, not 1.07374182e+09), a fraction with its digits */
    snprintf(num, sizeof num, v->valuedouble == (double) (int64_t) v->valuedouble ? "%.0f" : "%.9g", v->valuedouble);
    text = num;
  } else if (cJSON_IsNumber(v))
    return berth_error_set(err, BERTH_EINVAL,
                           "field `%s` must be a number from 0 to 1e15 (or a string such as \"1.5\")", key);
  else
    return berth_error_set(err, BERTH_EINVAL, "field `%s` must be a string or a number", key);
  int rc = parse(text, dst, err);
  if (rc < 0)
    return berth_error_wrap(err, "field `%s`", key);
  return 0;
}

int
berth_stack_apply_json(berth_stack *s, const cJSON *o, bool create, berth_error **err)
{
  static const char *const allowed[] = { "name",           "image",
                                         "project_dir",    "subdir",
                                         "init",           "before_init",
                                         "before_perform", "after_perform",
                                         "after_run",      "env",
                                         "secret_env",     "network",
                                         "memory_bytes",   "memory",
                                         "cpus",           "nano_cpus",
                                         "pids",           "timeout_ms",
                                         "timeout",        "idle_timeout_ms",
                                         "idle_timeout",   "pull_policy",
                                         "persist",        "labels",
                                         "keep_versions",  "lock",
                                         "created_at",     "updated_at",
                                         "oidc_audiences", "oidc_aws_role",
                                         "credentials",    "warnings",
                                         "pool",           NULL };
  int rc = berth_json_only(o, allowed, "stack", err);
  if (rc < 0)
    return rc;
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
  if (create) {
    if (!cJSON_IsString(name))
      return berth_error_set(err, BERTH_EINVAL, "field `name` is required (a string)");
    if ((rc = json_str_field(o, "name", false, &s->name, err)) < 0)
      return rc;
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "image")))
      return berth_error_set(err, BERTH_EINVAL, "field `image` is required (a string)");
  } else if (name != NULL && (!cJSON_IsString(name) || strcmp(name->valuestring, s->name) != 0)) {
    return berth_error_set(err, BERTH_EINVAL, "field `name` cannot be changed (stack `%s`)", s->name);
  }
  int64_t v;
  if ((rc = json_str_field(o, "image", false, &s->image, err)) < 0
      || (rc = json_str_field(o, "project_dir", true, &s->project_dir, err)) < 0
      || (rc = json_str_field(o, "subdir", true, &s->subdir, err)) < 0 || (rc = json_strv(o, "init", &s->init, err)) < 0
      || (rc = json_strv(o, "before_init", &s->before_init, err)) < 0
      || (rc = json_strv(o, "before_perform", &s->before_perform, err)) < 0
      || (rc = json_strv(o, "after_perform", &s->after_perform, err)) < 0
      || (rc = json_strv(o, "after_run", &s->after_run, err)) < 0
      || (rc = berth_json_env(o, "env", false, s->name, &s->env, &s->n_env, err)) < 0
      || (rc = berth_json_env(o, "secret_env", true, s->name, &s->secret_env, &s->n_secret_env, err)) < 0
      || (rc = json_str_field(o, "network", false, &s->network, err)) < 0
      || (rc = json_int(o, "memory_bytes", 0, BERTH_MAX_MEMORY_BYTES, &s->memory_bytes, err)) < 0
      || (rc = json_parsed(o, "memory", berth_parse_size, &s->memory_bytes, err)) < 0
      || (rc = json_int(o, "nano_cpus", 0, BERTH_MAX_NANO_CPUS, &s->nano_cpus, err)) < 0
      || (rc = json_parsed(o, "cpus", berth_parse_cpus, &s->nano_cpus, err)) < 0
      || (rc = json_int(o, "pids", 0, 1 << 22, &s->pids, err)) < 0
      || (rc = json_int(o, "timeout_ms", 0, BERTH_MAX_DURATION_MS, &s->timeout_ms, err)) < 0
      || (rc = json_parsed(o, "timeout", berth_parse_duration_ms, &s->timeout_ms, err)) < 0
      || (rc = json_int(o, "idle_timeout_ms", 0, BERTH_MAX_DURATION_MS, &s->idle_timeout_ms, err)) < 0
      || (rc = json_parsed(o, "idle_timeout", berth_parse_duration_ms, &s->idle_timeout_ms, err)) < 0
      || (rc = json_str_field(o, "pull_policy", false, &s->pull_policy, err)) < 0
      || (rc = json_strv(o, "persist", &s->persist, err)) < 0 || (rc = json_strv(o, "labels", &s->labels, err)) < 0
      || (rc = json_strv(o, "oidc_audiences", &s->oidc_audiences, err)) < 0
      || (rc = json_str_field(o, "oidc_aws_role", true, &s->oidc_aws_role, err)) < 0
      || (rc = json_strv(o, "credentials", &s->credentials, err)) < 0
      || (rc = json_str_field(o, "pool", true, &s->pool, err)) < 0)
    return rc;
  if (s->pool != NULL && (s->pool[0] == '\0' || strcmp(s->pool, BERTH_DEFAULT_POOL) == 0)) { /* the default: none */
    free(s->pool);
    s->pool = NULL;
  }
  v = s->keep_versions;
  if ((rc = json_int(o, "keep_versions", 1, BERTH_MAX_KEEP_VERSIONS, &v, err)) < 0)
    return rc;
  /* a variable moved between plain and secret (given as one, it stops being the other); given as both in one
   * change, it is refused (it would be neither) */
  const cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(o, "env"))
  {
    if (cJSON_IsString(e)
        && cJSON_IsString(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "secret_env"), e->string)))
      return berth_error_set(err, BERTH_EINVAL,
                             "variable `%.64s` is given both plain (--env) and secret (--secret-env): give it once",
                             e->string);
  }
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(o, "env"))
  {
    if (cJSON_IsString(e))
      berth_kv_unset(&s->secret_env, &s->n_secret_env, e->string);
  }
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(o, "secret_env"))
  {
    if (cJSON_IsString(e))
      berth_kv_unset(&s->env, &s->n_env, e->string);
  }
  s->keep_versions = (int) v;
  /* secrets whose stored value could not be decrypted: those given anew (not as "***") or removed are whole again */
  const cJSON *given = cJSON_GetObjectItemCaseSensitive(o, "secret_env");
  for (size_t i = 0; i < s->unreadable_secrets.n;) {
    const char *k = s->unreadable_secrets.v[i];
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(given, k);
    if (berth_kv_get(s->secret_env, s->n_secret_env, k) == NULL
        || (cJSON_IsString(g) && strcmp(g->valuestring, "***") != 0)) {
      free(s->unreadable_secrets.v[i]);
      s->unreadable_secrets.v[i] = s->unreadable_secrets.v[--s->unreadable_secrets.n];
    } else {
      i++;
    }
  }
  return berth_stack_validate(s, err);
}

int
berth_stack_edit_json(berth_stack *s, const char *home, const cJSON *body, bool create, berth_error **err)
{
  if (berth_stack_apply_json(s, body, create, err) < 0
      || berth_stack_check_host(s, home, cJSON_HasObjectItem(body, "project_dir"), cJSON_HasObjectItem(body, "subdir"),
                                create || cJSON_HasObjectItem(body, "network"), err)
             < 0)
    return -1;
  return berth_stack_validate(s, err);
}
