/* GET /, GET /v1/doctor, GET /v1/audit, /v1/keys, and the audit helper every state-changing handler uses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "berth/audit.h"
#include "berth/docker.h"
#include "berth/doctor.h"
#include "berth/actions.h"
#include "berth/task_runner.h"
#include "server.h"

void
srv_audit(srv_req *r, const char *action, const char *target, const cJSON *args, const berth_error *e)
{
  berth_error *err = NULL;
  if (r->st == NULL
      || berth_action_record(r->st, r->key ? r->key->name : "anonymous", action, target, args, e, &err) < 0) {
    fprintf(stderr, "berth: could not record %s on %s in the audit trail: %s\n", action, target ? target : "-",
            err ? err->msg : "no store");
    berth_error_free(err);
  }
}

int
api_root(srv_req *r, srv_resp *out)
{
  (void) r;
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "name", "berth");
  cJSON_AddStringToObject(j, "version", BERTH_VERSION);
  cJSON_AddStringToObject(j, "api", "/v1");
  return srv_ok(out, 200, j);
}

/* The same document as `berth doctor --json`, about the server's host. */
int
api_doctor(srv_req *r, srv_resp *out)
{
  cJSON *o = berth_doctor_report(r->srv->home, NULL);
  /* a report, not a failure: the body says what is wrong (the CLI exits non-zero on ok=false) */
  return srv_ok(out, 200, o);
}

int
api_audit(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  int64_t since = 0;
  const char *s = srv_query(r, "since");
  if (s && berth_audit_parse_time(s, berth_now_ms(), &since, &err) < 0)
    return srv_fail(out, err);
  cJSON *j = berth_audit_list_json(r->st, since, &err);
  if (j == NULL)
    return srv_fail(out, err);
  return srv_ok(out, 200, j);
}

/* GET /v1/audit/verify: walks the hash chain (admin; `berth audit verify`). 200 whether intact or not. */
int
api_audit_verify(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  cJSON *j = berth_audit_verify_json(r->st, &err);
  return j ? srv_ok(out, 200, j) : srv_fail(out, err);
}

int
api_key_list(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  bool all = false;
  if (srv_query_bool(r, "all", &all, &err) < 0)
    return srv_fail(out, err);
  cJSON *j = berth_apikey_list_json(r->st, all, &err);
  if (j == NULL)
    return srv_fail(out, err);
  return srv_ok(out, 200, j);
}

int
api_key_create(srv_req *r, srv_resp *out)
{
  static const char *const allowed[] = { "name", "role", "stacks", NULL };
  berth_error *err = NULL;
  cJSON *body = NULL;
  const char *name = NULL, *role = NULL;
  const char *stacks[BERTH_APIKEY_MAX_STACKS];
  size_t n = 0;
  int rc = srv_json_object(r->body, r->body_len, &body, &err);
  if (rc == 0)
    rc = srv_json_only(body, allowed, "key", &err);
  if (rc == 0)
    rc = srv_json_string(body, "name", true, &name, &err);
  if (rc == 0)
    rc = srv_json_string(body, "role", true, &role, &err);
  const cJSON *sa = body ? cJSON_GetObjectItemCaseSensitive(body, "stacks") : NULL;
  if (rc == 0 && sa && !cJSON_IsNull(sa)) {
    const cJSON *e;
    if (!cJSON_IsArray(sa))
      rc = berth_error_set(&err, BERTH_EINVAL, "field `stacks` must be an array of stack names");
    cJSON_ArrayForEach(e, sa)
    {
      if (rc < 0)
        break;
      if (!cJSON_IsString(e))
        rc = berth_error_set(&err, BERTH_EINVAL, "field `stacks` must be an array of stack names");
      else if (n >= BERTH_APIKEY_MAX_STACKS)
        rc = berth_error_set(&err, BERTH_EINVAL, "field `stacks`: at most %d stacks", BERTH_APIKEY_MAX_STACKS);
      else
        stacks[n++] = e->valuestring;
    }
  }
  char *secret = NULL;
  if (rc == 0) { /* the change and its record */
    rc = berth_action_key_create(r->st, name, role, stacks, n, r->key->name, &secret, &err);
  } else if (name) {
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "role", role ? role : "");
    srv_audit(r, "key.create", name, args, err);
    cJSON_Delete(args);
  }
  if (rc < 0) {
    cJSON_Delete(body);
    return srv_fail(out, err);
  }
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "name", name);
  cJSON_AddStringToObject(j, "role", role);
  cJSON *a = cJSON_AddArrayToObject(j, "stacks");
  for (size_t i = 0; i < n; i++)
    cJSON_AddItemToArray(a, cJSON_CreateString(stacks[i]));
  cJSON_AddStringToObject(j, "key", secret);
  sodium_memzero(secret, strlen(secret));
  free(secret);
  cJSON_Delete(body);
  return srv_ok(out, 201, j);
}

int
api_key_revoke(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  int rc = berth_action_key_revoke(r->st, r->args[0], r->key->name, &err);
  if (rc < 0)
    return srv_fail(out, err);
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "revoked", r->args[0]);
  return srv_ok(out, 200, j);
}
