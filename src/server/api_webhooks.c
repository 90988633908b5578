/* /v1/webhooks and /v1/webhook-deliveries (admin): signed webhooks, their deliveries and attempts. The secret
 * arrives in the body of POST /v1/webhooks and is never sent back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/parse.h"
#include "berth/webhook.h"
#include "server.h"

/* GET /v1/webhooks */
int
api_webhook_list(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  berth_webhook **v = NULL;
  size_t n = 0;
  if (berth_store_webhook_list(r->st, &v, &n, &err) < 0)
    return srv_fail(out, err);
  cJSON *j = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(j, "webhooks");
  for (size_t i = 0; i < n; i++)
    cJSON_AddItemToArray(a, berth_webhook_to_json(v[i]));
  berth_webhooks_free(v, n);
  return srv_ok(out, 200, j);
}

/* POST /v1/webhooks {"name", "url", "secret", "events": [...], "stack"} */
int
api_webhook_create(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  cJSON *body = NULL;
  berth_webhook *w = NULL;
  int rc = srv_json_object(r->body, r->body_len, &body, &err);
  if (rc == 0)
    rc = berth_webhook_from_json(body, &w, &err);
  cJSON *secret = cJSON_GetObjectItemCaseSensitive(body, "secret");
  if (cJSON_IsString(secret))
    explicit_bzero(secret->valuestring, strlen(secret->valuestring));
  const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "name"));
  char target[80];
  snprintf(target, sizeof target, "%s", name && berth_utf8_valid(name) ? name : "-");
  cJSON_Delete(body);
  if (rc == 0)
    rc = berth_webhook_add(r->st, w, r->key->name, &err);
  cJSON *j = rc == 0 ? berth_webhook_to_json(w) : NULL;
  berth_webhook_free(w);
  if (rc < 0) /* a refused change is recorded too (its arguments are not: they hold the URL and the secret) */
    srv_audit(r, "webhook.add", target, NULL, err);
  return rc == 0 ? srv_ok(out, 201, j) : srv_fail(out, err);
}

/* DELETE /v1/webhooks/{name} */
int
api_webhook_delete(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  if (berth_webhook_remove(r->st, r->args[0], r->key->name, &err) < 0)
    return srv_fail(out, err);
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "removed", r->args[0]);
  return srv_ok(out, 200, j);
}

/* GET /v1/webhooks/{name}/deliveries[?limit=N] */
int
api_webhook_deliveries(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  int limit = 0;
  cJSON *j = NULL;
  if (srv_parse_limit(srv_query(r, "limit"), &limit, &err) < 0
      || berth_webhook_deliveries_json(r->st, r->args[0], limit, &j, &err) < 0)
    return srv_fail(out, err);
  return srv_ok(out, 200, j);
}

/* POST /v1/webhook-deliveries/{id}/redeliver */
int
api_webhook_redeliver(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  if (berth_webhook_redeliver(r->st, r->args[0], r->key->name, &err) < 0)
    return srv_fail(out, err);
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "redelivering", r->args[0]);
  return srv_ok(out, 202, j);
}
