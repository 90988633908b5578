/* /v1/stacks/{name}/tasks (submit) and /v1/tasks: list, get, cancel, prune. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/parse.h"
#include "berth/redactor.h"
#include "berth/retention.h"
#include "berth/task_json.h"
#include "server.h"

#define COMMAND_MAX (1u << 20)

int
api_task_create(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  cJSON *body = NULL;
  srv_task_request tr = { 0 };
  const char *stack = r->args[0];
  int rc = srv_check_stack(r, stack, &err);
  if (rc == 0)
    rc = srv_json_object(r->body, r->body_len, &body, &err);
  if (rc == 0)
    rc = srv_task_request_parse(body, &tr, &err);
  if (rc == 0 && strlen(tr.command) > COMMAND_MAX)
    rc = berth_error_set(&err, BERTH_EINVAL, "the command is longer than 1 MiB");
  char *triggered = NULL;
  if (asprintf(&triggered, "key:%s", r->key->name) < 0)
    triggered = NULL;
  berth_task *t = NULL;
  if (rc < 0) {
    /* refused here, before berth_task_submit (which records its own outcomes, denials included) */
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "triggered_by", triggered ? triggered : "");
    srv_audit(r, "task.submit", stack, args, err);
    cJSON_Delete(args);
  } else {
    berth_submit req = { .stack = stack,
                         .command = tr.command,
                         .skip_init = tr.skip_init,
                         .env = tr.env,
                         .n_env = tr.n_env,
                         .secret_env = tr.secret_env,
                         .n_secret_env = tr.n_secret_env,
                         .actor = r->key->name,
                         .role = r->key->role,
                         .triggered_by = triggered,
                         .die_with_parent = true,
                         .supervisor_argv = r->srv->supervisor_argv };
    rc = srv_spawner_submit(r->srv->spawner, &req, &t, &err);
  }
  free(triggered);
  srv_task_request_clear(&tr);
  cJSON_Delete(body);
  if (rc < 0)
    return srv_fail(out, err);
  if (asprintf(&out->location, "/v1/tasks/%s", t->id) < 0)
    out->location = NULL;
  cJSON *record = berth_task_record(r->st, t, &err);
  berth_task_free(t);
  return record ? srv_ok(out, 201, record) : srv_fail(out, err);
}

int
api_task_list(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  berth_task_filter f
      = { .stack = srv_query(r, "stack"), .state = srv_query(r, "state"), .host = srv_query(r, "host") };
  if ((f.stack && !*f.stack) || (f.host && !*f.host)) /* ?host= is a mistake, not "every host" */
    return srv_fail_status(out, 400, BERTH_EINVAL, "query parameter `%s` is empty",
                           f.host && !*f.host ? "host" : "stack");
  if (f.state && !berth_task_state_is_valid(f.state))
    return srv_fail_status(out, 400, BERTH_EINVAL, "query parameter `state`: unknown state `%.32s`", f.state);
  if (srv_parse_limit(srv_query(r, "limit"), &f.limit, &err) < 0)
    return srv_fail(out, err);
  int64_t offset = 0; /* paging: skip this many of the matching tasks */
  const char *off = srv_query(r, "offset");
  if (off && berth_parse_int64(off, 0, 1000000, &offset, &err) < 0)
    return srv_fail(out, err);
  if (f.stack && srv_check_stack(r, f.stack, &err) < 0)
    return srv_fail(out, err);
  bool scoped = r->key->stacks.n > 0 && f.stack == NULL;
  int limit = f.limit;
  if (scoped)
    f.limit = 0; /* filter first, then cut */
  else if (f.limit > 0)
    f.limit += (int) offset;
  berth_task **v = NULL;
  size_t n = 0;
  if (berth_store_task_list(r->st, &f, &v, &n, &err) < 0)
    return srv_fail(out, err);
  berth_secrets *shown = berth_display_secrets(r->st, f.stack, &err); /* commands typed with a secret in them: *** */
  if (shown == NULL) {
    berth_tasks_free(v, n);
    return srv_fail(out, err);
  }
  cJSON *o = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(o, "tasks");
  int added = 0;
  for (size_t i = 0; i < n && (limit <= 0 || added < limit); i++) {
    if (!berth_apikey_allows_stack(r->key, v[i]->stack))
      continue;
    if (offset > 0) {
      offset--;
      continue;
    }
    cJSON_AddItemToArray(arr, berth_task_to_json_redacted(v[i], shown));
    added++;
  }
  berth_secrets_free(shown);
  berth_tasks_free(v, n);
  return srv_ok(out, 200, o);
}

int
srv_task_get_scoped(srv_req *r, berth_task **t, berth_error **err)
{
  if (berth_store_task_get(r->st, r->args[0], t, err) < 0)
    return -1;
  if (srv_check_stack(r, (*t)->stack, err) < 0) {
    berth_task_free(*t);
    *t = NULL;
    return -1;
  }
  return 0;
}

/* GET /v1/tasks/{id}: the task and its stack's secrets go to the store with the key check (one round trip on
 * PostgreSQL for the whole request). */
void
api_task_get_ahead(srv_req *r)
{
  r->task_ahead = berth_store_task_read_ahead(r->st, r->args[0]);
}

int
api_task_get(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  berth_task *t = NULL;
  cJSON *record = NULL;
  if (berth_task_get_record(r->st, r->args[0], r->task_ahead, &t, &record, &err) < 0)
    return srv_fail(out, err);
  if (srv_check_stack(r, t->stack, &err) < 0) {
    cJSON_Delete(record);
    berth_task_free(t);
    return srv_fail(out, err);
  }
  srv_ok(out, 200, record);
  berth_task_free(t);
  return 0;
}

/* POST /v1/tasks/{id}/cancel: writers cancel their own tasks, admins any. */
int
api_task_cancel(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  berth_task *t = NULL;
  char *state = NULL;
  int rc = srv_task_get_scoped(r, &t, &err);
  if (rc == 0)
    rc = berth_task_cancel(r->st, t->id, r->key->name, r->role >= SRV_ROLE_ADMIN, &state, &err);
  if (rc < 0) /* a cancel that happens is recorded with its transition */
    srv_audit(r, "task.cancel", t ? t->id : r->args[0], NULL, err);
  free(state);
  if (rc == 0) {
    char *id = strdup(t->id);
    berth_task_free(t);
    t = NULL;
    rc = id ? berth_store_task_get(r->st, id, &t, &err) : berth_error_set(&err, BERTH_EINTERNAL, "out of memory");
    free(id);
  }
  if (rc < 0) {
    berth_task_free(t);
    return srv_fail(out, err);
  }
  cJSON *record = berth_task_record(r->st, t, &err);
  berth_task_free(t);
  return record ? srv_ok(out, 200, record) : srv_fail(out, err);
}

/* POST /v1/tasks/prune: ended tasks older than `older_than` go, with their logs (admin, whose keys are never limited
 * to stacks; each batch audited). */
int
api_task_prune(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  cJSON *body = NULL;
  berth_prune p = { 0 };
  berth_prune_result res;
  int rc = srv_json_object(r->body, r->body_len, &body, &err);
  if (rc == 0)
    rc = berth_prune_parse(body, &p, &err);
  cJSON_Delete(body);
  if (rc == 0)
    rc = berth_tasks_prune(r->st, &p, r->key->name, &res, &err);
  if (rc < 0) {
    srv_audit(r, "task.prune", p.stack[0] ? p.stack : "*", NULL, err);
    return srv_fail(out, err);
  }
  return srv_ok(out, 200, berth_prune_result_to_json(&p, &res));
}
