/* Request bodies and query values of the HTTP API: strict types, unknown fields refused, every size capped.
 * Pure functions over untrusted bytes (no libmicrohttpd), fuzzed by fuzz/fuzz_http_request.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/parse.h"
#include "server.h"

int
srv_json_object(const char *body, size_t len, cJSON **out, berth_error **err)
{
  if (body == NULL || len == 0)
    return berth_error_set(err, BERTH_EINVAL, "the request needs a JSON object body");
  if (memchr(body, '\0', len) != NULL)
    return berth_error_set(err, BERTH_EINVAL, "the request body holds a NUL byte");
  const char *end = NULL;
  cJSON *j = cJSON_ParseWithLengthOpts(body, len, &end, false);
  if (j == NULL) {
    const char *at = cJSON_GetErrorPtr();
    size_t off = at && at >= body && at <= body + len ? (size_t) (at - body) : 0;
    return berth_error_set(err, BERTH_EINVAL, "the request body is not valid JSON (near byte %zu)", off);
  }
  /* nothing but whitespace may follow the value */
  for (const char *p = end; p && p < body + len; p++)
    if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
      cJSON_Delete(j);
      return berth_error_set(err, BERTH_EINVAL, "the request body has bytes after the JSON value (at byte %zu)",
                             (size_t) (p - body));
    }
  if (!cJSON_IsObject(j)) {
    cJSON_Delete(j);
    return berth_error_set(err, BERTH_EINVAL, "the request body must be a JSON object");
  }
  *out = j;
  return 0;
}

int
srv_json_only(const cJSON *o, const char *const *allowed, const char *what, berth_error **err)
{
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

int
srv_json_string(const cJSON *o, const char *key, bool required, const char **out, berth_error **err)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (v == NULL || (cJSON_IsNull(v) && !required)) {
    if (required)
      return berth_error_set(err, BERTH_EINVAL, "field `%s` is required", key);
    return 0;
  }
  if (!cJSON_IsString(v))
    return berth_error_set(err, BERTH_EINVAL, "field `%s` must be a string", key);
  *out = v->valuestring;
  return 0;
}

int
srv_json_bool(const cJSON *o, const char *key, bool *out, berth_error **err)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (v == NULL || cJSON_IsNull(v))
    return 0;
  if (!cJSON_IsBool(v))
    return berth_error_set(err, BERTH_EINVAL, "field `%s` must be true or false", key);
  *out = cJSON_IsTrue(v);
  return 0;
}

/* {"K": "V", ...} into kv (merged: a null value removes the key, which must be set on stack when stack is given;
 * keep_masked: "***" keeps the current value). */
static int
json_env(const cJSON *o, const char *key, bool keep_masked, const char *stack, berth_kv **kv, size_t *n,
         berth_error **err)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (v == NULL || cJSON_IsNull(v))
    return 0;
  if (!cJSON_IsObject(v))
    return berth_error_set(err, BERTH_EINVAL, "field `%s` must be an object of strings", key);
  if (cJSON_GetArraySize(v) > SRV_MAX_ENV)
    return berth_error_set(err, BERTH_EINVAL, "field `%s` has more than %d entries", key, SRV_MAX_ENV);
  const cJSON *e;
  cJSON_ArrayForEach(e, v)
  {
    if (!berth_env_name_valid(e->string))
      return berth_error_set(err, BERTH_EINVAL, "field `%s`: `%.64s` is not a valid variable name", key, e->string);
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

int
srv_task_request_parse(const cJSON *o, srv_task_request *out, berth_error **err)
{
  static const char *const allowed[] = { "command", "skip_init", "env", "secret_env", NULL };
  memset(out, 0, sizeof *out);
  int rc = srv_json_only(o, allowed, "task", err);
  if (rc == 0)
    rc = srv_json_string(o, "command", true, &out->command, err);
  if (rc == 0)
    rc = srv_json_bool(o, "skip_init", &out->skip_init, err);
  if (rc == 0)
    rc = json_env(o, "env", false, NULL, &out->env, &out->n_env, err);
  if (rc == 0)
    rc = json_env(o, "secret_env", false, NULL, &out->secret_env, &out->n_secret_env, err);
  if (rc < 0)
    srv_task_request_clear(out);
  return rc;
}

int
srv_retry_request_parse(const cJSON *o, srv_task_request *out, berth_error **err)
{
  static const char *const allowed[] = { "secret_env", NULL };
  memset(out, 0, sizeof *out);
  int rc = o == NULL ? 0 : srv_json_only(o, allowed, "retry", err);
  if (rc == 0 && o != NULL)
    rc = json_env(o, "secret_env", false, NULL, &out->secret_env, &out->n_secret_env, err);
  if (rc < 0)
    srv_task_request_clear(out);
  return rc;
}

void
srv_task_request_clear(srv_task_request *r)
{
  berth_kv_array_free(r->env, r->n_env);
  berth_kv_array_free(r->secret_env, r->n_secret_env);
  memset(r, 0, sizeof *r);
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
  if (cJSON_GetArraySize(a) > SRV_MAX_LIST)
    return berth_error_set(err, BERTH_EINVAL, "field `%s` has more than %d entries", key, SRV_MAX_LIST);
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
    snprintf(num, sizeof num, "%.9g", v->valuedouble);
    text = num;
  } else
    return berth_error_set(err, BERTH_EINVAL, "field `%s` must be a string", key);
  int rc = parse(text, dst, err);
  if (rc < 0)
    return berth_error_wrap(err, "field `%s`", key);
  return 0;
}

int
srv_stack_apply_json(berth_stack *s, const cJSON *o, bool create, berth_error **err)
{
  static const char *const allowed[]
      = { "name",         "image",          "project_dir",   "subdir",    "init",
          "before_init",  "before_perform", "after_perform", "after_run", "env",
          "secret_env",   "network",        "memory_bytes",  "memory",    "cpus",
          "nano_cpus",    "pids",           "timeout_ms",    "timeout",   "idle_timeout_ms",
          "idle_timeout", "pull_policy",    "persist",       "labels",    "keep_versions",
          "lock",         "created_at",     "updated_at",    "oidc_audiences", "oidc_aws_role",
          "credentials",  "warnings",       "pool",          NULL };
  int rc = srv_json_only(o, allowed, "stack", err);
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
      || (rc = json_env(o, "env", false, s->name, &s->env, &s->n_env, err)) < 0
      || (rc = json_env(o, "secret_env", true, s->name, &s->secret_env, &s->n_secret_env, err)) < 0
      || (rc = json_str_field(o, "network", false, &s->network, err)) < 0
      || (rc = json_int(o, "memory_bytes", 0, INT64_C(1) << 50, &s->memory_bytes, err)) < 0
      || (rc = json_parsed(o, "memory", berth_parse_size, &s->memory_bytes, err)) < 0
      || (rc = json_int(o, "nano_cpus", 0, INT64_C(1024) * 1000000000, &s->nano_cpus, err)) < 0
      || (rc = json_parsed(o, "cpus", berth_parse_cpus, &s->nano_cpus, err)) < 0
      || (rc = json_int(o, "pids", 0, 1 << 22, &s->pids, err)) < 0
      || (rc = json_int(o, "timeout_ms", 0, INT64_C(1) << 40, &s->timeout_ms, err)) < 0
      || (rc = json_parsed(o, "timeout", berth_parse_duration_ms, &s->timeout_ms, err)) < 0
      || (rc = json_int(o, "idle_timeout_ms", 0, INT64_C(1) << 40, &s->idle_timeout_ms, err)) < 0
      || (rc = json_parsed(o, "idle_timeout", berth_parse_duration_ms, &s->idle_timeout_ms, err)) < 0
      || (rc = json_str_field(o, "pull_policy", false, &s->pull_policy, err)) < 0
      || (rc = json_strv(o, "persist", &s->persist, err)) < 0 || (rc = json_strv(o, "labels", &s->labels, err)) < 0
      || (rc = json_strv(o, "oidc_audiences", &s->oidc_audiences, err)) < 0
      || (rc = json_str_field(o, "oidc_aws_role", true, &s->oidc_aws_role, err)) < 0
      || (rc = json_strv(o, "credentials", &s->credentials, err)) < 0
      || (rc = json_str_field(o, "pool", true, &s->pool, err)) < 0)
    return rc;
  if (s->pool != NULL && strcmp(s->pool, BERTH_DEFAULT_POOL) == 0) { /* the default is no pool */
    free(s->pool);
    s->pool = NULL;
  }
  v = s->keep_versions;
  if ((rc = json_int(o, "keep_versions", 1, BERTH_MAX_KEEP_VERSIONS, &v, err)) < 0)
    return rc;
  /* a variable moved between plain and secret: the one given last wins, as in `berth stack update` */
  const cJSON *e;
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
  return berth_stack_validate(s, err);
}

int
srv_parse_limit(const char *v, int *out, berth_error **err)
{
  int64_t n = 0;
  if (v == NULL)
    return 0;
  if (berth_parse_int64(v, 1, 1000000, &n, err) < 0)
    return berth_error_wrap(err, "query parameter `limit`");
  *out = (int) n;
  return 0;
}

bool
srv_truthy(const char *v)
{
  return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0);
}
