/* /v1/session: the web UI's sign-in. POST trades an API key for a session cookie (HttpOnly, SameSite=Strict, Secure
 * and __Host- under TLS, 8 hours) and a CSRF token; GET says who is signed in (and hands the CSRF token to a page
 * that was reloaded: the page keeps it in memory only); DELETE signs out. Requests authenticated by the cookie are
 * checked in server.c: the key again on every request, the CSRF token on every one that is not GET/HEAD. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "berth/task_json.h"
#include "server.h"

static char *
cookie(bool tls, const char *value, int64_t max_age_s)
{
  char *c = NULL;
  if (asprintf(&c, "%s=%s; Path=/; Max-Age=%lld; HttpOnly; SameSite=Strict%s",
               tls ? SRV_SESSION_COOKIE_TLS : SRV_SESSION_COOKIE, value, (long long) max_age_s, tls ? "; Secure" : "")
      < 0)
    return NULL;
  return c;
}

static cJSON *
who(srv_req *r, const berth_apikey *k, const char *csrf, int64_t expires)
{
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "name", k->name);
  cJSON_AddStringToObject(o, "role", k->role);
  cJSON *st = cJSON_AddArrayToObject(o, "stacks");
  for (size_t i = 0; i < k->stacks.n; i++)
    cJSON_AddItemToArray(st, cJSON_CreateString(k->stacks.v[i]));
  if (r->st) /* the UI shows the fleet's hosts only where there is a fleet */
    cJSON_AddStringToObject(o, "store", berth_store_engine(r->st));
  if (csrf) {
    cJSON_AddStringToObject(o, "csrf_token", csrf);
    char *at = berth_time_iso(expires);
    cJSON_AddStringToObject(o, "expires_at", at ? at : "");
    free(at);
  }
  return o;
}

int
api_session_create(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  cJSON *body = NULL;
  const char *token = NULL;
  const char *ctype = srv_header(r, "Content-Type");
  /* a cross-site form cannot send this type without a preflight: no sign-in CSRF */
  if (ctype == NULL || strncmp(ctype, "application/json", 16) != 0)
    return srv_fail_status(out, 400, BERTH_EINVAL, "sign-in needs a JSON body (Content-Type: application/json)");
  static const char *const fields[] = { "key", NULL };
  int rc = srv_json_object(r->body, r->body_len, &body, &err);
  if (rc == 0)
    rc = srv_json_only(body, fields, "sign-in", &err);
  if (rc == 0)
    rc = srv_json_string(body, "key", true, &token, &err);
  if (rc == 0 && (r->st = srv_store(r->srv, &err)) == NULL)
    rc = -1;
  berth_apikey *key = NULL;
  if (rc == 0 && berth_apikey_authenticate(r->st, r->srv->keys, token, &key, &err) < 0) {
    rc = -1;
    if (err->code == BERTH_EDENIED)
      srv_audit(r, "session.create", "-", NULL, err);
  }
  char id[SRV_SESSION_TOKEN_LEN + 1], csrf[SRV_SESSION_TOKEN_LEN + 1];
  int64_t expires = 0;
  if (rc == 0)
    rc = srv_session_create(r->srv->sessions, token, id, csrf, &expires, &err);
  if (token)
    sodium_memzero((char *) token, strlen(token));
  if (r->body) /* the key in clear in the request buffer */
    sodium_memzero((char *) r->body, r->body_len);
  cJSON_Delete(body);
  if (rc < 0) {
    berth_apikey_free(key);
    if (err && err->code == BERTH_EDENIED) {
      berth_error_free(err);
      return srv_fail_status(out, 401, BERTH_EDENIED, "invalid API key");
    }
    return srv_fail(out, err);
  }
  r->key = key;
  srv_audit(r, "session.create", key->name, NULL, NULL);
  r->key = NULL;
  out->set_cookie = cookie(r->tls, id, SRV_SESSION_TTL_MS / 1000);
  sodium_memzero(id, sizeof id);
  srv_ok(out, 201, who(r, key, csrf, expires));
  berth_apikey_free(key);
  return 0;
}

int
api_session_get(srv_req *r, srv_resp *out)
{
  return srv_ok(out, 200, who(r, r->key, r->session ? r->csrf : NULL, r->session_expires));
}

int
api_session_delete(srv_req *r, srv_resp *out)
{
  if (r->session == NULL)
    return srv_fail_status(out, 404, BERTH_ENOTFOUND, "this request was not made with a session cookie");
  srv_session_end(r->srv->sessions, r->session);
  srv_audit(r, "session.delete", r->key->name, NULL, NULL);
  out->set_cookie = cookie(r->tls, "", 0);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddBoolToObject(o, "signed_out", true);
  return srv_ok(out, 200, o);
}
