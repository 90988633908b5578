/* Request bodies and query values of the HTTP API: strict types, unknown fields refused, every size capped.
 * Pure functions over untrusted bytes (no libmicrohttpd), fuzzed by fuzz/fuzz_http_request.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/parse.h"
#include "berth/stack_json.h"
#include "server.h"

int
srv_json_object(const char *body, size_t len, cJSON **out, berth_error **err)
{
  if (body == NULL || len == 0)
    return berth_error_set(err, BERTH_EINVAL, "the request needs a JSON object body");
  if (memchr(body, '\0', len) != NULL)
    return berth_error_set(err, BERTH_EINVAL, "the request body holds a NUL byte");
  if (berth_json_text_check(body, len, err) < 0)
    return berth_error_wrap(err, "the request body");
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
  const char *dup = berth_json_duplicate_key(j);
  if (dup != NULL) {
    int rc = berth_error_set(err, BERTH_EINVAL, "the request body gives the field `%.64s` twice", dup);
    cJSON_Delete(j);
    return rc;
  }
  *out = j;
  return 0;
}

int
srv_json_only(const cJSON *o, const char *const *allowed, const char *what, berth_error **err)
{
  return berth_json_only(o, allowed, what, err);
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
    rc = berth_json_env(o, "env", false, NULL, &out->env, &out->n_env, err);
  if (rc == 0)
    rc = berth_json_env(o, "secret_env", false, NULL, &out->secret_env, &out->n_secret_env, err);
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
    rc = berth_json_env(o, "secret_env", false, NULL, &out->secret_env, &out->n_secret_env, err);
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
