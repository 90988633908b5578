/* /v1/stacks/{name}/schedules and /v1/schedules: scheduled tasks (writers of the stack change them; every change is
 * in the audit trail). */
#include <stdlib.h>
#include <string.h>

#include "berth/schedule.h"
#include "server.h"

static bool
key_allows(const char *stack, void *arg)
{
  srv_req *r = arg;
  return r->key == NULL || berth_apikey_allows_stack(r->key, stack);
}

/* GET /v1/schedules[?stack=S] and GET /v1/stacks/{name}/schedules */
int
api_schedule_list(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  const char *stack = r->args[0] ? r->args[0] : srv_query(r, "stack");
  berth_schedule **v = NULL;
  size_t n = 0;
  if (stack && srv_check_stack(r, stack, &err) < 0)
    return srv_fail(out, err);
  if (berth_store_schedule_list(r->st, stack, &v, &n, &err) < 0)
    return srv_fail(out, err);
  cJSON *j = berth_schedules_json(r->st, v, n, key_allows, r, &err);
  berth_schedules_free(v, n);
  return j ? srv_ok(out, 200, j) : srv_fail(out, err);
}

/* POST /v1/stacks/{name}/schedules {"name", "cron" | "at", "tz", "command", "skip_init", "env", "catch_up"} */
int
api_schedule_create(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  cJSON *body = NULL;
  berth_schedule *s = NULL;
  int rc = srv_check_stack(r, r->args[0], &err);
  if (rc == 0)
    rc = srv_json_object(r->body, r->body_len, &body, &err);
  if (rc == 0)
    rc = berth_schedule_from_json(body, r->args[0], &s, &err);
  cJSON_Delete(body);
  berth_schedule *added = NULL;
  bool refused = rc < 0;
  if (rc == 0)
    rc = berth_schedule_add(r->st, s, r->key->name, r->key->role, &err);
  refused = refused || rc < 0;
  if (rc == 0)
    rc = berth_store_schedule_get(r->st, s->stack, s->name, &added, &err);
  berth_schedule_free(s);
  if (refused) /* a refused change is recorded too (without its command, which may hold a secret) */
    srv_audit(r, "schedule.add", r->args[0], NULL, err);
  if (rc < 0)
    return srv_fail(out, err);
  cJSON *j = berth_schedule_json(r->st, added, &err);
  berth_schedule_free(added);
  return j ? srv_ok(out, 201, j) : srv_fail(out, err);
}

/* GET /v1/stacks/{name}/schedules/{schedule} */
int
api_schedule_get(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  berth_schedule *s = NULL;
  if (srv_check_stack(r, r->args[0], &err) < 0 || berth_store_schedule_get(r->st, r->args[0], r->args[1], &s, &err) < 0)
    return srv_fail(out, err);
  cJSON *j = berth_schedule_json(r->st, s, &err);
  berth_schedule_free(s);
  return j ? srv_ok(out, 200, j) : srv_fail(out, err);
}

static int
pause_resume(srv_req *r, srv_resp *out, bool paused)
{
  berth_error *err = NULL;
  if (srv_check_stack(r, r->args[0], &err) < 0
      || berth_schedule_set_paused(r->st, r->args[0], r->args[1], paused, r->key->name, &err) < 0)
    return srv_fail(out, err);
  return api_schedule_get(r, out);
}

/* POST /v1/stacks/{name}/schedules/{schedule}/pause */
int
api_schedule_pause(srv_req *r, srv_resp *out)
{
  return pause_resume(r, out, true);
}

/* POST /v1/stacks/{name}/schedules/{schedule}/resume */
int
api_schedule_resume(srv_req *r, srv_resp *out)
{
  return pause_resume(r, out, false);
}

/* DELETE /v1/stacks/{name}/schedules/{schedule} */
int
api_schedule_delete(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  if (srv_check_stack(r, r->args[0], &err) < 0
      || berth_schedule_remove(r->st, r->args[0], r->args[1], r->key->name, &err) < 0)
    return srv_fail(out, err);
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "stack", r->args[0]);
  cJSON_AddStringToObject(j, "removed", r->args[1]);
  return srv_ok(out, 200, j);
}
