/* /v1/hosts (the fleet's hosts; drain and undrain are admin) and POST /v1/tasks/{id}/retry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/actions.h"
#include "berth/fleet.h"
#include "berth/task_json.h"
#include "server.h"

int
api_host_list(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  berth_host *v = NULL;
  size_t n = 0;
  if (berth_host_list(r->st, &v, &n, &err) < 0)
    return srv_fail(out, err);
  cJSON *j = berth_hosts_to_json(v, n);
  berth_hosts_free(v, n);
  return srv_ok(out, 200, j);
}

int
api_host_get(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  berth_host h;
  if (berth_host_get(r->st, r->args[0], &h, &err) < 0)
    return srv_fail(out, err);
  cJSON *j = berth_host_to_json(&h);
  berth_host_clear(&h);
  return srv_ok(out, 200, j);
}

static int
set_draining(srv_req *r, srv_resp *out, bool drain)
{
  berth_error *err = NULL;
  cJSON *body = NULL; /* none, or an empty object: the endpoint takes no field */
  static const char *const fields[] = { NULL };
  int rc = r->body_len > 0 ? srv_json_object(r->body, r->body_len, &body, &err) : 0;
  if (rc == 0 && body != NULL)
    rc = srv_json_only(body, fields, "the body", &err);
  cJSON_Delete(body);
  if (rc < 0)
    return srv_fail(out, err);
  if (berth_action_host_drain(r->st, r->args[0], drain, r->key->name, &err) < 0) {
    srv_audit(r, drain ? "host.drain" : "host.undrain", r->args[0], NULL, err);
    return srv_fail(out, err);
  }
  cJSON *j = berth_host_after_drain_json(r->st, r->args[0], &err);
  return j ? srv_ok(out, 200, j) : srv_fail(out, err);
}

int
api_host_drain(srv_req *r, srv_resp *out)
{
  return set_draining(r, out, true);
}

int
api_host_undrain(srv_req *r, srv_resp *out)
{
  return set_draining(r, out, false);
}

/* DELETE /v1/hosts/{name}: forgets a lost host (admin, audited); 409 for one that is not lost. */
int
api_host_remove(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  if (berth_action_host_remove(r->st, r->args[0], r->key->name, &err) < 0) {
    srv_audit(r, "host.remove", r->args[0], NULL, err);
    return srv_fail(out, err);
  }
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "removed", r->args[0]);
  return srv_ok(out, 200, j);
}

/* POST /v1/tasks/{id}/retry: the ended task's command again, as a new task (201, like a submission). */
int
api_task_retry(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  berth_task *old = NULL, *t = NULL;
  cJSON *body = NULL;
  srv_task_request tr = { 0 };
  int rc = srv_task_get_scoped(r, &old, &err);
  if (rc == 0 && r->body_len > 0)
    rc = srv_json_object(r->body, r->body_len, &body, &err);
  if (rc == 0)
    rc = srv_retry_request_parse(body, &tr, &err);
  char *triggered = NULL;
  if (asprintf(&triggered, "key:%s", r->key->name) < 0)
    triggered = NULL;
  if (rc == 0) {
    berth_submit req = { .retry_of = old->id,
                         .secret_env = tr.secret_env,
                         .n_secret_env = tr.n_secret_env,
                         .actor = r->key->name,
                         .role = r->key->role,
                         .triggered_by = triggered,
                         .die_with_parent = true,
                         .supervisor_argv = r->srv->supervisor_argv };
    rc = srv_spawner_submit(r->srv->spawner, &req, &t, &err);
  } else {
    srv_audit(r, "task.retry", old ? old->id : r->args[0], NULL, err);
  }
  free(triggered);
  srv_task_request_clear(&tr);
  cJSON_Delete(body);
  berth_task_free(old);
  if (rc < 0)
    return srv_fail(out, err);
  if (asprintf(&out->location, "/v1/tasks/%s", t->id) < 0)
    out->location = NULL;
  cJSON *record = berth_task_record(r->st, t, &err); /* a stack's secret typed into the command shows as *** */
  berth_task_free(t);
  return record ? srv_ok(out, 201, record) : srv_fail(out, err);
}
