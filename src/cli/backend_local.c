/* The local back end: every operation as libberth calls on the store at BERTH_HOME, acting as the OS user, who owns
 * the store and is its admin. Each builds the record the HTTP API answers with (backend.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "berth/actions.h"
#include "berth/allowlist.h"
#include "berth/apikey.h"
#include "berth/audit.h"
#include "berth/config.h"
#include "berth/doctor.h"
#include "berth/fleet.h"
#include "berth/oidc.h"
#include "berth/parse.h"
#include "berth/redactor.h"
#include "berth/retention.h"
#include "berth/stack_host.h"
#include "berth/stack_json.h"
#include "berth/policy.h"
#include "berth/store.h"
#include "berth/task_follow.h"
#include "berth/task_json.h"
#include "berth/task_submit.h"
#include "backend.h"
#include "cli.h"
#include "style.h"

typedef struct local_backend {
  cli_backend base;
  berth_store *st; /* opened by the first operation that needs it */
  char *actor;
} local_backend;

typedef int (*local_fn)(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err);

static int
oom(berth_error **err)
{
  return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
}

static int
store(local_backend *lb, berth_error **err)
{
  if (lb->st)
    return 0;
  char *home = berth_home_default();
  int rc = home ? berth_store_open(home, &lb->st, err) : oom(err);
  free(home);
  return rc;
}

static const char *
body_str(const cli_request *rq, const char *key)
{
  return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rq->body, key));
}

/* *out = a builder's record (NULL: it failed, with *err set). */
static int
built(cJSON *j, cJSON **out)
{
  *out = j;
  return j ? 0 : -1;
}

/* ---- doctor, stacks ---- */

static int
local_doctor(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  (void) lb, (void) rq;
  char *home = berth_home_default();
  *out = home ? berth_doctor_report(home, NULL) : NULL;
  free(home);
  return *out ? 0 : oom(err);
}

static int
local_stack_list(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  (void) rq;
  berth_stack **v = NULL;
  size_t n = 0;
  if (store(lb, err) < 0 || berth_store_stack_list(lb->st, &v, &n, err) < 0)
    return -1;
  cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "stacks");
  for (size_t i = 0; i < n; i++)
    cJSON_AddItemToArray(arr, berth_stack_to_json(v[i]));
  berth_stacks_free(v, n);
  *out = o;
  return 0;
}

static int
get_stack(local_backend *lb, const char *name, berth_stack **s, berth_error **err)
{
  if (berth_stack_validate_name(name, err) < 0 || store(lb, err) < 0)
    return -1;
  return berth_store_stack_get(lb->st, name, s, err);
}

static int
local_stack_show(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  berth_stack *s = NULL;
  if (get_stack(lb, rq->arg, &s, err) < 0)
    return -1;
  *out = berth_stack_to_json(s);
  berth_stack_free(s);
  return 0;
}

static int
local_stack_state(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  berth_stack *s = NULL;
  if (get_stack(lb, rq->arg, &s, err) < 0)
    return -1;
  *out = berth_stack_state_json(lb->st, s, err);
  berth_stack_free(s);
  return *out ? 0 : -1;
}

static int
local_stack_delete(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  if (berth_stack_validate_name(rq->arg, err) < 0 || store(lb, err) < 0
      || berth_action_stack_delete(lb->st, rq->arg, lb->actor, err) < 0)
    return -1;
  *out = cJSON_CreateObject();
  cJSON_AddStringToObject(*out, "deleted", rq->arg);
  return 0;
}

static int
local_stack_lock(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  if (berth_stack_validate_name(rq->arg, err) < 0 || store(lb, err) < 0
      || berth_action_stack_lock(lb->st, rq->arg, lb->actor, body_str(rq, "note"), err) < 0)
    return -1;
  return local_stack_show(lb, rq, out, err);
}

static int
local_stack_unlock(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  if (berth_stack_validate_name(rq->arg, err) < 0 || store(lb, err) < 0
      || berth_action_stack_unlock(lb->st, rq->arg, lb->actor, rq->force, err) < 0)
    return -1;
  return local_stack_show(lb, rq, out, err);
}

/* create and update: the body of POST /v1/stacks or PATCH /v1/stacks/{name}, applied as the server applies it;
 * everything is checked before the store is opened for a create, so a bad flag leaves nothing behind. */
static int
stack_edit(local_backend *lb, const cli_request *rq, bool create, cJSON **out, berth_error **err)
{
  berth_stack *s = NULL;
  char *home = berth_home_default();
  int rc = home == NULL ? oom(err) : 0;
  if (rc == 0 && create)
    rc = (s = berth_stack_new()) ? 0 : oom(err);
  else if (rc == 0)
    rc = get_stack(lb, rq->arg, &s, err);
  if (rc == 0)
    rc = berth_stack_edit_json(s, home, rq->body, create, err);
  if (rc == 0)
    rc = store(lb, err);
  if (rc == 0)
    rc = create ? berth_action_stack_create(lb->st, s, lb->actor, err)
                : berth_action_stack_update(lb->st, s, lb->actor, err);
  /* the record is the stack as stored (with its times), as the server answers */
  berth_stack *got = NULL;
  if (rc == 0 && (rc = berth_store_stack_get(lb->st, s->name, &got, err)) == 0)
    *out = berth_stack_json_warned(lb->st, got);
  berth_stack_free(got);
  berth_stack_free(s);
  free(home);
  return rc;
}

static int
local_stack_create(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  return stack_edit(lb, rq, true, out, err);
}

static int
local_stack_update(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  return stack_edit(lb, rq, false, out, err);
}

/* ---- tasks ---- */

static int
local_task_list(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  berth_task_filter f = { .stack = rq->stack, .state = rq->state, .host = rq->host, .limit = rq->limit };
  berth_task **v = NULL;
  size_t n = 0;
  if (f.state && !berth_task_state_is_valid(f.state))
    return berth_error_set(err, BERTH_EINVAL, "task list: unknown state `%s`", f.state);
  if (store(lb, err) < 0 || berth_store_task_list(lb->st, &f, &v, &n, err) < 0)
    return -1;
  berth_secrets *shown = berth_display_secrets(lb->st, f.stack, err);
  if (shown == NULL) {
    berth_tasks_free(v, n);
    return -1;
  }
  cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "tasks");
  for (size_t i = 0; i < n; i++)
    cJSON_AddItemToArray(arr, berth_task_to_json_redacted(v[i], shown));
  berth_secrets_free(shown);
  berth_tasks_free(v, n);
  *out = o;
  return 0;
}

static int
task_json(local_backend *lb, const char *id, cJSON **out, berth_error **err)
{
  berth_task *t = NULL; /* as the API reads it (GET /v1/tasks/{id}): one reading of a task in both modes */
  if (store(lb, err) < 0 || berth_task_get_record(lb->st, id, NULL, &t, out, err) < 0)
    return -1;
  berth_task_free(t);
  return 0;
}

static int
local_task_show(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  return task_json(lb, rq->arg, out, err);
}

static int
local_task_cancel(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  char *state = NULL;
  if (store(lb, err) < 0 || berth_task_cancel(lb->st, rq->arg, lb->actor, true, &state, err) < 0)
    return -1;
  free(state);
  return task_json(lb, rq->arg, out, err);
}

/* {"K": "V"} of the request body as a kv array. */
static int
body_env(const cli_request *rq, const char *field, berth_kv **kv, size_t *n, berth_error **err)
{
  const cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(rq->body, field))
  {
    if (cJSON_IsString(e) && berth_kv_set(kv, n, e->string, e->valuestring) < 0)
      return oom(err);
  }
  return 0;
}

static int
local_task_submit(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  berth_kv *env = NULL, *senv = NULL;
  size_t n_env = 0, n_senv = 0;
  berth_task *t = NULL;
  const char *cmd = body_str(rq, "command");
  int rc = store(lb, err);
  if (rc == 0 && (rc = body_env(rq, "env", &env, &n_env, err)) == 0
      && (rc = body_env(rq, "secret_env", &senv, &n_senv, err)) == 0) {
    berth_submit req = { .stack = rq->arg,
                         .command = cmd ? cmd : "",
                         .skip_init = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rq->body, "skip_init")),
                         .env = env,
                         .n_env = n_env,
                         .secret_env = senv,
                         .n_secret_env = n_senv,
                         .actor = lb->actor,
                         .supervisor_argv = cli_supervisor_argv() };
    rc = berth_task_submit(lb->st, &req, &t, err);
  }
  if (rc == 0)
    rc = task_json(lb, t->id, out, err);
  berth_task_free(t);
  berth_kv_array_free(env, n_env);
  berth_kv_array_free(senv, n_senv);
  return rc;
}

static int
local_task_retry(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  berth_kv *senv = NULL;
  size_t n_senv = 0;
  berth_task *t = NULL;
  int rc = store(lb, err);
  if (rc == 0 && (rc = body_env(rq, "secret_env", &senv, &n_senv, err)) == 0) {
    berth_submit base
        = { .secret_env = senv, .n_secret_env = n_senv, .actor = lb->actor, .supervisor_argv = cli_supervisor_argv() };
    rc = berth_task_retry(lb->st, rq->arg, &base, &t, err);
  }
  if (rc == 0)
    rc = task_json(lb, t->id, out, err);
  berth_task_free(t);
  berth_kv_array_free(senv, n_senv);
  return rc;
}

/* ---- the fleet's hosts ---- */

static int
local_host_list(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  (void) rq;
  berth_host *v = NULL;
  size_t n = 0;
  if (store(lb, err) < 0 || berth_host_list(lb->st, &v, &n, err) < 0)
    return -1;
  *out = berth_hosts_to_json(v, n);
  berth_hosts_free(v, n);
  return 0;
}

static int
local_host_show(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  berth_host h;
  if (store(lb, err) < 0 || berth_host_get(lb->st, rq->arg, &h, err) < 0)
    return -1;
  *out = berth_host_to_json(&h);
  berth_host_clear(&h);
  return 0;
}

static int
local_host_drain(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  bool drain = rq->verb != NULL && strcmp(rq->verb, "drain") == 0;
  if (store(lb, err) < 0 || berth_action_host_drain(lb->st, rq->arg, drain, lb->actor, err) < 0)
    return -1;
  return (*out = berth_host_after_drain_json(lb->st, rq->arg, err)) ? 0 : -1;
}

static int
local_host_remove(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  if (store(lb, err) < 0 || berth_action_host_remove(lb->st, rq->arg, lb->actor, err) < 0)
    return -1;
  *out = cJSON_CreateObject(); /* as the API's answer: {"removed": NAME} */
  cJSON_AddStringToObject(*out, "removed", rq->arg);
  return 0;
}

static int
local_task_prune(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  berth_prune p = { 0 };
  berth_prune_result res;
  if (berth_prune_parse(rq->body, &p, err) < 0 || store(lb, err) < 0
      || berth_tasks_prune(lb->st, &p, lb->actor, &res, err) < 0)
    return -1;
  *out = berth_prune_result_to_json(&p, &res);
  return 0;
}

/* ---- audit, images, policies ---- */

static int
local_audit_list(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  int64_t since_ms = 0;
  if (rq->since && berth_audit_parse_time(rq->since, berth_now_ms(), &since_ms, err) < 0)
    return berth_error_wrap(err, "--since");
  return store(lb, err) < 0 ? -1 : built(berth_audit_list_json(lb->st, since_ms, err), out);
}

static int
local_audit_verify(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  (void) rq;
  return store(lb, err) < 0 ? -1 : built(berth_audit_verify_json(lb->st, err), out);
}

static int
local_image_list(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  (void) rq;
  return store(lb, err) < 0 ? -1 : built(berth_allowlist_list_json(lb->st, err), out);
}

static int
local_image_check(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  berth_image_decision d = { 0 };
  if (store(lb, err) < 0 || berth_allowlist_check(lb->st, rq->arg, &d, err) < 0)
    return -1;
  *out = berth_image_decision_to_json(rq->arg, &d);
  berth_image_decision_clear(&d);
  return 0;
}

/* image allow|deny (kind in the body) and remove. The record: the rules, with "pattern" (normalized) and, for an add,
 * "added" (false: the rule was there already). */
static int
image_change(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  const char *kind = body_str(rq, "kind"), *pattern = kind ? body_str(rq, "pattern") : rq->arg;
  int added = 0;
  if (store(lb, err) < 0 || (added = berth_action_image_rule(lb->st, kind, pattern, lb->actor, err)) < 0
      || built(berth_allowlist_list_json(lb->st, err), out) < 0)
    return -1;
  char *norm = berth_allowlist_normalize_pattern(pattern, err);
  if (norm == NULL)
    return -1;
  cJSON_AddStringToObject(*out, "pattern", norm);
  if (kind)
    cJSON_AddBoolToObject(*out, "added", added == 0);
  free(norm);
  return 0;
}

static int
local_policy_list(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  (void) rq;
  return store(lb, err) < 0 ? -1 : built(berth_policy_list_json(lb->st, err), out);
}

static int
local_policy_add(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  size_t added = 0;
  cJSON *file = cJSON_CreateObject();
  cJSON_AddStringToObject(file, "file", rq->arg);
  int rc = store(lb, err) < 0 || berth_action_policy_add(lb->st, rq->raw_body, lb->actor, file, &added, err) < 0
                   || built(berth_policy_list_json(lb->st, err), out) < 0
               ? -1
               : 0;
  if (rc == 0)
    cJSON_AddNumberToObject(*out, "added", (double) added);
  cJSON_Delete(file);
  return rc;
}

static int
local_policy_remove(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  if (store(lb, err) < 0 || berth_action_policy_remove(lb->st, rq->arg, lb->actor, err) < 0)
    return -1;
  return built(berth_policy_list_json(lb->st, err), out);
}

static int
local_policy_test(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  const char *at = body_str(rq, "at"), *actor = body_str(rq, "actor");
  int64_t now = berth_now_ms();
  if (at && berth_audit_parse_time(at, now, &now, err) < 0)
    return berth_error_wrap(err, "--at");
  if (store(lb, err) < 0)
    return -1;
  return built(berth_policy_test_json(lb->st, body_str(rq, "stack"), body_str(rq, "command"), actor ? actor : lb->actor,
                                      body_str(rq, "role"), now, err),
               out);
}

/* ---- keys, OIDC ---- */

static int
local_key_list(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  return store(lb, err) < 0 ? -1 : built(berth_apikey_list_json(lb->st, rq->all, err), out);
}

static int
local_key_create(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  const char *name = body_str(rq, "name"), *role = body_str(rq, "role");
  const char *stacks[BERTH_APIKEY_MAX_STACKS];
  size_t n = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(rq->body, "stacks"))
  {
    if (n >= BERTH_APIKEY_MAX_STACKS)
      return berth_error_set(err, BERTH_EINVAL, "--stack: at most %d stacks", BERTH_APIKEY_MAX_STACKS);
    stacks[n++] = e->valuestring;
  }
  char *secret = NULL;
  if (store(lb, err) < 0)
    return -1;
  if (berth_action_key_create(lb->st, name, role, stacks, n, lb->actor, &secret, err) < 0)
    return -1;
  *out = cJSON_Duplicate(rq->body, true);
  cJSON_AddStringToObject(*out, "key", secret);
  sodium_memzero(secret, strlen(secret));
  free(secret);
  return 0;
}

static int
local_key_revoke(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  if (store(lb, err) < 0 || berth_action_key_revoke(lb->st, rq->arg, lb->actor, err) < 0)
    return -1;
  *out = cJSON_CreateObject();
  cJSON_AddStringToObject(*out, "revoked", rq->arg);
  return 0;
}

static int
local_oidc_jwks(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  (void) rq;
  berth_oidc_key *keys = NULL;
  size_t n = 0;
  if (store(lb, err) < 0 || berth_store_oidc_keys(lb->st, &keys, &n, err) < 0)
    return -1;
  *out = berth_oidc_jwks(keys, n, berth_now_ms(), err);
  berth_oidc_keys_free(keys, n);
  return *out ? 0 : -1;
}

/* The issuer of config.json (the server's is its --public-url). */
static int
local_oidc_config(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  (void) rq;
  berth_config cfg;
  if (store(lb, err) < 0 || berth_config_load(berth_store_home(lb->st), &cfg, err) < 0)
    return -1;
  int rc = 0;
  if (cfg.oidc_issuer == NULL)
    rc = berth_error_set(err, BERTH_ENOTFOUND,
                         "oidc config: no issuer URL (--issuer URL, or oidc_issuer in config.json)");
  else if ((*out = berth_oidc_discovery(cfg.oidc_issuer)) == NULL)
    rc = oom(err);
  berth_config_clear(&cfg);
  return rc;
}

static int
local_oidc_rotate(local_backend *lb, const cli_request *rq, cJSON **out, berth_error **err)
{
  berth_oidc_key fresh;
  int64_t now = berth_now_ms();
  if (store(lb, err) < 0 || berth_oidc_key_generate(body_str(rq, "alg"), now, &fresh, err) < 0)
    return -1;
  int rc = berth_store_oidc_rotate(lb->st, &fresh, now, err);
  cJSON *args = cJSON_CreateObject();
  cJSON_AddStringToObject(args, "alg", fresh.alg);
  berth_error *aerr = NULL;
  berth_action_record(lb->st, lb->actor, "oidc.rotate", fresh.kid, args, rc < 0 ? *err : NULL, &aerr);
  berth_error_free(aerr);
  cJSON_Delete(args);
  if (rc == 0) {
    *out = cJSON_CreateObject();
    cJSON_AddStringToObject(*out, "kid", fresh.kid);
    cJSON_AddStringToObject(*out, "alg", fresh.alg);
  }
  berth_oidc_key_clear(&fresh);
  return rc;
}

static const local_fn local_ops[CLI_OP_COUNT] = {
  [CLI_OP_DOCTOR] = local_doctor,
  [CLI_OP_STACK_LIST] = local_stack_list,
  [CLI_OP_STACK_SHOW] = local_stack_show,
  [CLI_OP_STACK_STATE] = local_stack_state,
  [CLI_OP_STACK_CREATE] = local_stack_create,
  [CLI_OP_STACK_UPDATE] = local_stack_update,
  [CLI_OP_STACK_DELETE] = local_stack_delete,
  [CLI_OP_STACK_LOCK] = local_stack_lock,
  [CLI_OP_STACK_UNLOCK] = local_stack_unlock,
  [CLI_OP_TASK_LIST] = local_task_list,
  [CLI_OP_TASK_SHOW] = local_task_show,
  [CLI_OP_TASK_SUBMIT] = local_task_submit,
  [CLI_OP_TASK_CANCEL] = local_task_cancel,
  [CLI_OP_AUDIT_LIST] = local_audit_list,
  [CLI_OP_AUDIT_VERIFY] = local_audit_verify,
  [CLI_OP_IMAGE_LIST] = local_image_list,
  [CLI_OP_IMAGE_CHECK] = local_image_check,
  [CLI_OP_IMAGE_ADD] = image_change,
  [CLI_OP_IMAGE_REMOVE] = image_change,
  [CLI_OP_POLICY_LIST] = local_policy_list,
  [CLI_OP_POLICY_ADD] = local_policy_add,
  [CLI_OP_POLICY_REMOVE] = local_policy_remove,
  [CLI_OP_POLICY_TEST] = local_policy_test,
  [CLI_OP_KEY_LIST] = local_key_list,
  [CLI_OP_KEY_CREATE] = local_key_create,
  [CLI_OP_KEY_REVOKE] = local_key_revoke,
  [CLI_OP_OIDC_JWKS] = local_oidc_jwks,
  [CLI_OP_OIDC_CONFIG] = local_oidc_config,
  [CLI_OP_OIDC_ROTATE] = local_oidc_rotate,
  [CLI_OP_TASK_RETRY] = local_task_retry,
  [CLI_OP_HOST_LIST] = local_host_list,
  [CLI_OP_HOST_SHOW] = local_host_show,
  [CLI_OP_HOST_DRAIN] = local_host_drain,
  [CLI_OP_HOST_UNDRAIN] = local_host_drain,
  [CLI_OP_HOST_REMOVE] = local_host_remove,
  [CLI_OP_TASK_PRUNE] = local_task_prune,
};

static int
local_call(cli_backend *b, cli_op op, const cli_request *rq, cJSON **out, berth_error **err)
{
  local_backend *lb = (local_backend *) b;
  *out = NULL;
  if (op >= CLI_OP_COUNT || local_ops[op] == NULL)
    return berth_error_set(err, BERTH_EINVAL, "this command needs a server (--server URL)");
  int rc = local_ops[op](lb, rq, out, err);
  if (rc < 0) {
    cJSON_Delete(*out);
    *out = NULL;
  }
  return rc < 0 ? -1 : 0;
}

/* berth_task_follow's callback also takes the phase, which no output shows */
typedef struct follow_fw {
  cli_record_fn fn;
  void *ud;
} follow_fw;

static int
forward_record(void *u, int kind, int phase, const char *data, size_t len)
{
  (void) phase;
  follow_fw *fw = u;
  fw->fn(fw->ud, kind, data, len);
  return 0; /* a closed terminal must not stop anything */
}

/* a task in a fleet's queue: why it waits, each time that changes (not part of the log) */
static void
say_waiting(void *u, const char *reason)
{
  (void) u;
  cli_note("waiting: %s", reason);
}

static int
local_follow(cli_backend *b, const char *id, bool follow, const volatile sig_atomic_t *stop, cli_record_fn fn, void *ud,
             berth_error **err)
{
  local_backend *lb = (local_backend *) b;
  follow_fw fw = { fn, ud };
  if (store(lb, err) < 0)
    return -1;
  return berth_task_follow_waiting(lb->st, id, follow, stop, forward_record, say_waiting, &fw, err);
}

static void
local_free(cli_backend *b)
{
  local_backend *lb = (local_backend *) b;
  berth_store_close(lb->st);
  free(lb->actor);
  free(lb);
}

static const cli_backend_ops local_backend_ops = { local_call, local_follow, local_free };

int
cli_backend_local_new(cli_backend **out, berth_error **err)
{
  local_backend *lb = calloc(1, sizeof *lb);
  if (lb == NULL || (lb->actor = cli_current_user()) == NULL) {
    free(lb);
    return oom(err);
  }
  lb->base.ops = &local_backend_ops;
  *out = &lb->base;
  return 0;
}
