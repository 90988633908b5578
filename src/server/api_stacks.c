/* /v1/stacks: list, create, get, patch, delete, lock and unlock. Secret values are always "***" in answers.
 * Changes go through berth_action_* (the change and its audit record commit together); refusals are audited here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/actions.h"
#include "berth/redactor.h"
#include "berth/stack_host.h"
#include "berth/task_json.h"
#include "berth/stack_json.h"
#include "server.h"

int
api_stack_list(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  berth_stack **v = NULL;
  size_t n = 0;
  if (berth_store_stack_list(r->st, &v, &n, &err) < 0)
    return srv_fail(out, err);
  cJSON *o = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(o, "stacks");
  for (size_t i = 0; i < n; i++)
    if (berth_apikey_allows_stack(r->key, v[i]->name))
      cJSON_AddItemToArray(arr, berth_stack_to_json(v[i]));
  berth_stacks_free(v, n);
  return srv_ok(out, 200, o);
}

/* Every string in j (values, not names) passed through s. */
static void
mask_strings(cJSON *j, berth_secrets *s)
{
  cJSON *e;
  cJSON_ArrayForEach(e, j)
  {
    if (cJSON_IsString(e) && e->valuestring != NULL) {
      char *m = berth_secrets_redact_string(s, e->valuestring, strlen(e->valuestring), NULL);
      cJSON_SetValuestring(e, m ? m : BERTH_NOT_SHOWN);
      free(m);
    } else {
      mask_strings(e, s);
    }
  }
}

/* The audit arguments of a stack change: the body with secret values masked, and wherever else the body holds them
 * (a refused body may give one as a plain env value too). A secret_env that is not an object of strings (refused, but
 * audited as a failed change) is masked whole: what it holds is a value, whatever its shape. */
static cJSON *
masked_args(const cJSON *body, berth_store *st, const char *stack)
{
  cJSON *a = body ? cJSON_Duplicate(body, true) : NULL;
  cJSON *se = a ? cJSON_GetObjectItemCaseSensitive(a, "secret_env") : NULL;
  bool strings = cJSON_IsObject(se);
  cJSON *e;
  cJSON_ArrayForEach(e, se)
  {
    strings = strings && cJSON_IsString(e);
  }
  /* the values given (those that are strings), and the stack's own when it exists (a PATCH: the store still holds
   * them, the change was refused) */
  berth_error *err = NULL;
  berth_secrets *values = stack != NULL ? berth_display_secrets(st, stack, &err) : berth_secrets_new(0, &err);
  berth_error_free(err);
  cJSON *given = values != NULL && cJSON_IsObject(se) ? se : NULL;
  cJSON_ArrayForEach(e, given)
  {
    err = NULL;
    if (cJSON_IsString(e))
      berth_secrets_add_value(values, e->string, e->valuestring, strlen(e->valuestring), &err);
    berth_error_free(err);
  }
  if (values == NULL) { /* nothing could mask it: the body is not recorded at all */
    cJSON_Delete(a);
    return NULL;
  }
  mask_strings(a, values);
  berth_secrets_free(values);
  if (se && !strings)
    cJSON_ReplaceItemInObjectCaseSensitive(a, "secret_env", cJSON_CreateString("***"));
  else
    cJSON_ArrayForEach(e, se)
    {
      cJSON_SetValuestring(e, "***");
    }
  return a;
}

int
api_stack_create(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  cJSON *body = NULL;
  berth_stack *s = berth_stack_new();
  int rc = s ? srv_json_object(r->body, r->body_len, &body, &err)
             : berth_error_set(&err, BERTH_EINTERNAL, "out of memory");
  if (rc == 0) /* what the CLI checks on its host, checked again here on the server's */
    rc = berth_stack_edit_json(s, r->srv->home, body, true, &err);
  if (rc == 0)
    rc = berth_action_stack_create(r->st, s, r->key->name, &err);
  cJSON *args = rc < 0 ? masked_args(body, r->st, NULL) : NULL;
  const char *nm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "name"));
  if (body && rc < 0)
    srv_audit(r, "stack.create", nm ? nm : "-", args, err);
  cJSON_Delete(args);
  cJSON_Delete(body);
  if (rc < 0) {
    berth_stack_free(s);
    return srv_fail(out, err);
  }
  berth_stack *got = NULL;
  if (berth_store_stack_get(r->st, s->name, &got, &err) < 0) {
    berth_stack_free(s);
    return srv_fail(out, err);
  }
  if (asprintf(&out->location, "/v1/stacks/%s", s->name) < 0)
    out->location = NULL;
  berth_stack_free(s);
  srv_ok(out, 201, berth_stack_json_warned(r->st, got));
  berth_stack_free(got);
  return 0;
}

int
api_stack_get(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  berth_stack *s = NULL;
  if (srv_check_stack(r, r->args[0], &err) < 0 || berth_store_stack_get(r->st, r->args[0], &s, &err) < 0)
    return srv_fail(out, err);
  srv_ok(out, 200, berth_stack_to_json(s));
  berth_stack_free(s);
  return 0;
}

int
api_stack_patch(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  cJSON *body = NULL;
  berth_stack *s = NULL;
  int rc = srv_json_object(r->body, r->body_len, &body, &err);
  if (rc == 0)
    rc = berth_store_stack_get(r->st, r->args[0], &s, &err);
  if (rc == 0)
    rc = berth_stack_edit_json(s, r->srv->home, body, false, &err);
  if (rc == 0)
    rc = berth_action_stack_update(r->st, s, r->key->name, &err);
  cJSON *args = rc < 0 ? masked_args(body, r->st, r->args[0]) : NULL;
  if (rc < 0)
    srv_audit(r, "stack.update", r->args[0], args, err);
  cJSON_Delete(args);
  cJSON_Delete(body);
  berth_stack_free(s);
  s = NULL;
  if (rc < 0 || berth_store_stack_get(r->st, r->args[0], &s, &err) < 0)
    return srv_fail(out, err);
  srv_ok(out, 200, berth_stack_json_warned(r->st, s));
  berth_stack_free(s);
  return 0;
}

/* GET /v1/stacks/{name}/state: the persisted state versions, newest first (`berth stack state`). */
int
api_stack_state(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  berth_stack *s = NULL;
  cJSON *j = NULL;
  if (srv_check_stack(r, r->args[0], &err) < 0 || berth_store_stack_get(r->st, r->args[0], &s, &err) < 0
      || (j = berth_stack_state_json(r->st, s, &err)) == NULL) {
    berth_stack_free(s);
    return srv_fail(out, err);
  }
  berth_stack_free(s);
  return srv_ok(out, 200, j);
}

int
api_stack_delete(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  int rc = berth_action_stack_delete(r->st, r->args[0], r->key->name, &err);
  if (rc < 0)
    srv_audit(r, "stack.delete", r->args[0], NULL, err);
  if (rc < 0)
    return srv_fail(out, err);
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "deleted", r->args[0]);
  return srv_ok(out, 200, j);
}

static int
stack_answer(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  berth_stack *s = NULL;
  if (berth_store_stack_get(r->st, r->args[0], &s, &err) < 0)
    return srv_fail(out, err);
  srv_ok(out, 200, berth_stack_to_json(s));
  berth_stack_free(s);
  return 0;
}

/* POST /v1/stacks/{name}/lock {"note": "..."} (body optional): the lock belongs to the key's name. */
int
api_stack_lock(srv_req *r, srv_resp *out)
{
  static const char *const allowed[] = { "note", NULL };
  berth_error *err = NULL;
  cJSON *body = NULL;
  const char *note = NULL;
  int rc = srv_check_stack(r, r->args[0], &err);
  if (rc == 0 && r->body_len > 0) {
    rc = srv_json_object(r->body, r->body_len, &body, &err);
    if (rc == 0)
      rc = srv_json_only(body, allowed, "lock", &err);
    if (rc == 0)
      rc = srv_json_string(body, "note", false, &note, &err);
  }
  if (rc == 0)
    rc = berth_action_stack_lock(r->st, r->args[0], r->key->name, note, &err);
  if (rc < 0)
    srv_audit(r, "stack.lock", r->args[0], body, err);
  cJSON_Delete(body);
  if (rc < 0)
    return srv_fail(out, err);
  return stack_answer(r, out);
}

/* DELETE /v1/stacks/{name}/lock[?force=1]: the owner unlocks; force (another key's lock) is for admins. */
int
api_stack_unlock(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  bool force = false;
  int rc = srv_query_bool(r, "force", &force, &err);
  if (rc == 0)
    rc = srv_check_stack(r, r->args[0], &err);
  if (rc == 0 && force && r->role < SRV_ROLE_ADMIN)
    rc = berth_error_set(&err, BERTH_EDENIED, "API key `%s`: only an admin may force an unlock", r->key->name);
  if (rc == 0)
    rc = berth_action_stack_unlock(r->st, r->args[0], r->key->name, force, &err);
  cJSON *args = cJSON_CreateObject();
  cJSON_AddBoolToObject(args, "force", force);
  if (rc < 0)
    srv_audit(r, "stack.unlock", r->args[0], args, err);
  cJSON_Delete(args);
  if (rc < 0)
    return srv_fail(out, err);
  return stack_answer(r, out);
}
