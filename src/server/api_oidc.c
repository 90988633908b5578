/* The OIDC issuer over HTTP: the discovery document and the JWKS, unauthenticated (a cloud's identity service reads
 * them), and key rotation (admin). The issuer URL is `berth serve --public-url`. */
#include <stdlib.h>
#include <string.h>

#include "berth/oidc.h"
#include "server.h"

/* GET /.well-known/openid-configuration */
int
api_oidc_discovery(srv_req *r, srv_resp *out)
{
  const char *issuer = getenv("BERTH_OIDC_ISSUER");
  (void) r;
  if (issuer == NULL || *issuer == '\0')
    return srv_fail_status(out, 404, BERTH_ENOTFOUND,
                           "this server publishes no OIDC issuer (berth serve --public-url)");
  cJSON *j = berth_oidc_discovery(issuer);
  if (j == NULL)
    return srv_fail_status(out, 500, BERTH_EINTERNAL, "out of memory");
  return srv_ok(out, 200, j);
}

/* GET /.well-known/jwks.json */
int
api_oidc_jwks(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  berth_oidc_key *keys = NULL;
  size_t n = 0;
  berth_store *st = srv_store(r->srv, &err); /* an unauthenticated route: the store is not opened for it */
  if (st == NULL || berth_store_oidc_keys(st, &keys, &n, &err) < 0)
    return srv_fail(out, err);
  cJSON *j = berth_oidc_jwks(keys, n, berth_now_ms(), &err);
  berth_oidc_keys_free(keys, n);
  if (j == NULL)
    return srv_fail(out, err);
  return srv_ok(out, 200, j);
}

/* POST /v1/oidc/rotate {"alg"?}: a new signing key (admin); the old one stays published until its tokens expire. */
int
api_oidc_rotate(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  cJSON *body = NULL;
  const char *alg = NULL;
  static const char *const fields[] = { "alg", NULL };
  if (r->body_len > 0
      && (srv_json_object(r->body, r->body_len, &body, &err) < 0
          || srv_json_only(body, fields, "the body", &err) < 0)) {
    cJSON_Delete(body);
    return srv_fail(out, err);
  }
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(body, "alg");
  if (a != NULL && !cJSON_IsString(a)) {
    cJSON_Delete(body);
    return srv_fail_status(out, 400, BERTH_EINVAL, "field `alg` must be \"ES256\" or \"RS256\"");
  }
  alg = a ? a->valuestring : NULL;
  berth_oidc_key fresh;
  int64_t now = berth_now_ms();
  int rc = berth_oidc_key_generate(alg, now, &fresh, &err);
  cJSON_Delete(body);
  if (rc < 0)
    return srv_fail(out, err);
  rc = berth_store_oidc_rotate(r->st, &fresh, now, &err);
  cJSON *args = cJSON_CreateObject();
  cJSON_AddStringToObject(args, "alg", fresh.alg);
  srv_audit(r, "oidc.rotate", fresh.kid, args, rc < 0 ? err : NULL);
  cJSON_Delete(args);
  if (rc < 0) {
    berth_oidc_key_clear(&fresh);
    return srv_fail(out, err);
  }
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "kid", fresh.kid);
  cJSON_AddStringToObject(j, "alg", fresh.alg);
  berth_oidc_key_clear(&fresh);
  return srv_ok(out, 201, j);
}
