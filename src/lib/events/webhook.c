/* Webhooks: validation, their JSON form, audited changes and the HMAC signature (include/berth/webhook.h). The
 * deliverer is webhook_deliver.c. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <sodium.h>

#include "berth/audit.h"
#include "berth/parse.h"
#include "berth/stack_json.h"
#include "berth/webhook.h"

#define WEBHOOK_URL_MAX 2048
#define WEBHOOK_SECRET_MAX 4096

static const char *const event_kinds[] = { "task.state", "audit", NULL };

void
berth_webhook_sign(const char *secret, int64_t ts, const char *body, size_t len, char out[BERTH_WEBHOOK_SIGNATURE_LEN])
{
  crypto_auth_hmacsha256_state h;
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  char prefix[32];
  int n = snprintf(prefix, sizeof prefix, "%lld.", (long long) ts);
  crypto_auth_hmacsha256_init(&h, (const unsigned char *) secret, strlen(secret));
  crypto_auth_hmacsha256_update(&h, (const unsigned char *) prefix, (unsigned long long) n);
  crypto_auth_hmacsha256_update(&h, (const unsigned char *) body, len);
  crypto_auth_hmacsha256_final(&h, mac);
  memcpy(out, "sha256=", 7);
  sodium_bin2hex(out + 7, BERTH_WEBHOOK_SIGNATURE_LEN - 7, mac, sizeof mac);
  sodium_memzero(&h, sizeof h);
}

int
berth_webhook_validate(const berth_webhook *w, berth_error **err)
{
  const char *n = w->name;
  size_t len = n ? strlen(n) : 0;
  bool ok = len > 0 && len <= 63 && isalnum((unsigned char) n[0]);
  for (size_t i = 1; ok && i < len; i++)
    ok = isalnum((unsigned char) n[i]) || n[i] == '_' || n[i] == '.' || n[i] == '-';
  if (!ok)
    return berth_error_set(
        err, BERTH_EINVAL,
        "webhook name `%.80s` is invalid (letters, digits, `_.-`, at most 63, starting with a letter "
        "or digit)",
        n ? n : "");
  const char *u = w->url;
  if (u != NULL && strlen(u) > WEBHOOK_URL_MAX)
    return berth_error_set(err, BERTH_EINVAL, "a webhook URL is at most %d bytes", WEBHOOK_URL_MAX);
  if (u == NULL || (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0))
    return berth_error_set(err, BERTH_EINVAL, "webhook URL `%.200s` must be http:// or https://", u ? u : "");
  for (const char *p = u; *p; p++)
    if ((unsigned char) *p <= ' ' || *p == 0x7f)
      return berth_error_set(err, BERTH_EINVAL, "webhook URL must not contain spaces or control characters");
  /* what curl will send it to: a host, a port from 1 to 65535, brackets that close */
  CURLU *cu = curl_url();
  char *host = NULL;
  bool parsed = cu && curl_url_set(cu, CURLUPART_URL, u, 0) == CURLUE_OK
                && curl_url_get(cu, CURLUPART_HOST, &host, 0) == CURLUE_OK && host && *host;
  curl_free(host);
  curl_url_cleanup(cu);
  if (!parsed)
    return berth_error_set(err, BERTH_EINVAL, "webhook URL `%.200s` is not a valid URL (http(s)://HOST[:PORT]/PATH)",
                           u);
  if (w->secret == NULL || w->secret[0] == '\0' || strlen(w->secret) > WEBHOOK_SECRET_MAX)
    return berth_error_set(err, BERTH_EINVAL, "a webhook needs a secret (1 to %d bytes)", WEBHOOK_SECRET_MAX);
  if (w->events.n == 0)
    return berth_error_set(err, BERTH_EINVAL, "a webhook needs at least one event (task.state, audit)");
  for (size_t i = 0; i < w->events.n; i++) {
    bool known = false;
    for (size_t k = 0; event_kinds[k] && !known; k++)
      known = strcmp(w->events.v[i], event_kinds[k]) == 0;
    if (!known)
      return berth_error_set(err, BERTH_EINVAL, "event `%.64s` is unknown (task.state, audit)", w->events.v[i]);
  }
  if (w->stack_pattern && (w->stack_pattern[0] == '\0' || strlen(w->stack_pattern) > 256))
    return berth_error_set(err, BERTH_EINVAL, "the stack pattern must be 1 to 256 bytes");
  return 0;
}

cJSON *
berth_webhook_to_json(const berth_webhook *w)
{
  cJSON *o = cJSON_CreateObject();
  char when[BERTH_TIME_LEN];
  cJSON_AddStringToObject(o, "name", w->name);
  cJSON_AddStringToObject(o, "url", w->url);
  cJSON *ev = cJSON_AddArrayToObject(o, "events");
  for (size_t i = 0; i < w->events.n; i++)
    cJSON_AddItemToArray(ev, cJSON_CreateString(w->events.v[i]));
  if (w->stack_pattern)
    cJSON_AddStringToObject(o, "stack", w->stack_pattern);
  else
    cJSON_AddNullToObject(o, "stack");
  cJSON_AddStringToObject(o, "actor", w->actor ? w->actor : "");
  if (w->created_at > 0)
    cJSON_AddStringToObject(o, "created_at", berth_format_time(w->created_at, when, sizeof when));
  return o;
}

static int
take_string(const cJSON *o, const char *key, char **out, berth_error **err)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (v == NULL || cJSON_IsNull(v))
    return 0;
  if (!cJSON_IsString(v))
    return berth_error_set(err, BERTH_EINVAL, "field `%s` must be a string", key);
  return (*out = strdup(v->valuestring)) ? 0 : berth_error_set(err, BERTH_EINTERNAL, "out of memory");
}

static int
from_json(const cJSON *o, berth_webhook *w, berth_error **err)
{
  static const char *const known[] = { "name", "url", "secret", "events", "stack", NULL };
  if (berth_json_only(o, known, "webhook", err) < 0)
    return BERTH_EINVAL;
  if (take_string(o, "name", &w->name, err) < 0 || take_string(o, "url", &w->url, err) < 0
      || take_string(o, "secret", &w->secret, err) < 0 || take_string(o, "stack", &w->stack_pattern, err) < 0)
    return BERTH_EINVAL;
  const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "events");
  if (ev && !cJSON_IsArray(ev) && !cJSON_IsNull(ev))
    return berth_error_set(err, BERTH_EINVAL, "field `events` must be an array of strings");
  for (const cJSON *it = cJSON_IsArray(ev) ? ev->child : NULL; it; it = it->next)
    if (!cJSON_IsString(it))
      return berth_error_set(err, BERTH_EINVAL, "field `events` must be an array of strings");
    else if (berth_strv_push(&w->events, it->valuestring) < 0)
      return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (w->events.n == 0 && berth_strv_push(&w->events, "task.state") < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  return berth_webhook_validate(w, err);
}

int
berth_webhook_from_json(const cJSON *o, berth_webhook **out, berth_error **err)
{
  berth_webhook *w = calloc(1, sizeof *w);
  if (w == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  int rc = from_json(o, w, err);
  if (rc < 0) {
    berth_webhook_free(w);
    return rc;
  }
  *out = w;
  return 0;
}

static int
audited(berth_store *st, int rc, const char *actor, const char *action, const char *target, cJSON *args,
        berth_error **err)
{
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
berth_webhook_add(berth_store *st, berth_webhook *w, const char *actor, berth_error **err)
{
  int rc = berth_webhook_validate(w, err);
  if (rc < 0)
    return rc;
  free(w->actor);
  if ((w->actor = strdup(actor ? actor : "berth")) == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if ((rc = berth_store_begin(st, err)) < 0)
    return rc;
  rc = berth_store_webhook_create(st, w, err);
  return audited(st, rc, actor, "webhook.add", w->name, rc == 0 ? berth_webhook_to_json(w) : NULL, err);
}

int
berth_webhook_remove(berth_store *st, const char *name, const char *actor, berth_error **err)
{
  int rc = berth_store_begin(st, err);
  if (rc < 0)
    return rc;
  rc = berth_store_webhook_delete(st, name, err);
  return audited(st, rc, actor, "webhook.remove", name, NULL, err);
}

int
berth_webhook_redeliver(berth_store *st, const char *delivery_id, const char *actor, berth_error **err)
{
  int rc = berth_store_begin(st, err);
  if (rc < 0)
    return rc;
  rc = berth_store_delivery_reset(st, delivery_id, err);
  return audited(st, rc, actor, "webhook.redeliver", delivery_id, NULL, err);
}
