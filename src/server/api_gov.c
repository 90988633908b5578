/* /v1/images (allowlist rules, check) and /v1/policies. */
#include <stdlib.h>
#include <string.h>

#include "berth/actions.h"
#include "berth/allowlist.h"
#include "berth/audit.h"
#include "berth/policy.h"
#include "server.h"

int
api_image_rules(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  cJSON *j = berth_allowlist_list_json(r->st, &err);
  return j ? srv_ok(out, 200, j) : srv_fail(out, err);
}

/* POST /v1/images/rules {"pattern": "...", "kind": "allow"|"deny"}: 201 when added, 200 when it already existed;
 * the answer is the rule list plus "pattern" (the normalized form) and "added". */
int
api_image_rule_add(srv_req *r, srv_resp *out)
{
  static const char *const allowed[] = { "pattern", "kind", NULL };
  berth_error *err = NULL;
  cJSON *body = NULL;
  const char *pattern = NULL, *kind = NULL;
  int rc = srv_json_object(r->body, r->body_len, &body, &err);
  if (rc == 0)
    rc = srv_json_only(body, allowed, "image rule", &err);
  if (rc == 0)
    rc = srv_json_string(body, "pattern", true, &pattern, &err);
  if (rc == 0)
    rc = srv_json_string(body, "kind", true, &kind, &err);
  if (rc == 0 && strcmp(kind, "allow") != 0 && strcmp(kind, "deny") != 0)
    rc = berth_error_set(&err, BERTH_EINVAL, "field `kind` must be allow or deny");
  if (rc == 0 && strlen(pattern) > BERTH_ALLOWLIST_PATTERN_MAX)
    rc = berth_error_set(&err, BERTH_EINVAL, "field `pattern` is longer than %d bytes", BERTH_ALLOWLIST_PATTERN_MAX);
  int added = -1;
  if (rc == 0) /* the change and its record */
    rc = added = berth_action_image_rule(r->st, kind, pattern, r->key->name, &err);
  else if (body)
    srv_audit(r, kind && strcmp(kind, "deny") == 0 ? "image.deny" : "image.allow", pattern ? pattern : "-", body, err);
  char *norm = rc >= 0 ? berth_allowlist_normalize_pattern(pattern, &err) : NULL; /* 1: the rule was there */
  cJSON *j = norm ? berth_allowlist_list_json(r->st, &err) : NULL;
  if (j) {
    cJSON_AddStringToObject(j, "pattern", norm);
    cJSON_AddBoolToObject(j, "added", added == 0);
  }
  free(norm);
  cJSON_Delete(body); /* pattern and kind point into it */
  return j ? srv_ok(out, added == 0 ? 201 : 200, j) : srv_fail(out, err);
}

/* DELETE /v1/images/rules?pattern=... (patterns hold slashes, so they travel in the query). */
int
api_image_rule_remove(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  const char *pattern = srv_query(r, "pattern");
  if (pattern == NULL)
    return srv_fail_status(out, 400, BERTH_EINVAL, "query parameter `pattern` is required");
  int rc = berth_action_image_rule(r->st, NULL, pattern, r->key->name, &err);
  if (rc < 0)
    return srv_fail(out, err);
  cJSON *j = berth_allowlist_list_json(r->st, &err);
  return j ? srv_ok(out, 200, j) : srv_fail(out, err);
}

int
api_image_check(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  const char *ref = srv_query(r, "ref");
  if (ref == NULL)
    return srv_fail_status(out, 400, BERTH_EINVAL, "query parameter `ref` is required");
  berth_image_decision d = { 0 };
  if (berth_allowlist_check(r->st, ref, &d, &err) < 0)
    return srv_fail(out, err);
  cJSON *j = berth_image_decision_to_json(ref, &d);
  berth_image_decision_clear(&d);
  return srv_ok(out, 200, j);
}

int
api_policy_list(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  cJSON *j = berth_policy_list_json(r->st, &err);
  return j ? srv_ok(out, 200, j) : srv_fail(out, err);
}

/* POST /v1/policies: the body is a policy file (one rule object or an array of rules). */
int
api_policy_add(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  size_t added = 0;
  int rc = 0;
  if (r->body_len == 0)
    rc = berth_error_set(&err, BERTH_EINVAL, "the request needs a policy (a JSON rule or an array of rules)");
  char *text = NULL;
  if (rc == 0 && (text = strndup(r->body, r->body_len)) == NULL)
    rc = berth_error_set(&err, BERTH_EINTERNAL, "out of memory");
  if (rc == 0 && strlen(text) != r->body_len)
    rc = berth_error_set(&err, BERTH_EINVAL, "the policy holds a NUL byte");
  if (rc == 0) /* the change and its record */
    rc = berth_action_policy_add(r->st, text, r->key->name, NULL, &added, &err);
  else
    srv_audit(r, "policy.add", "-", NULL, err);
  free(text);
  if (rc < 0)
    return srv_fail(out, err);
  cJSON *j = berth_policy_list_json(r->st, &err);
  if (j == NULL)
    return srv_fail(out, err);
  cJSON_AddNumberToObject(j, "added", (double) added);
  return srv_ok(out, 201, j);
}

/* DELETE /v1/policies/{name} or /v1/policies?name=... */
int
api_policy_remove(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  const char *name = r->args[0] ? r->args[0] : srv_query(r, "name");
  if (name == NULL)
    return srv_fail_status(out, 400, BERTH_EINVAL, "which policy? (DELETE /v1/policies/NAME)");
  int rc = berth_action_policy_remove(r->st, name, r->key->name, &err);
  if (rc < 0)
    return srv_fail(out, err);
  cJSON *j = berth_policy_list_json(r->st, &err);
  return j ? srv_ok(out, 200, j) : srv_fail(out, err);
}

/* POST /v1/policies/test {"stack", "command", "actor"?, "role"?, "at"?}: the decision of the stored policies for such
 * a task, as `berth policy test` prints it. A dry run for readers: it records nothing, changes nothing. actor and role
 * default to the key's own; the stack's labels come from the store; "at" takes the forms of --at. */
int
api_policy_test(srv_req *r, srv_resp *out)
{
  static const char *const allowed[] = { "stack", "command", "actor", "role", "at", NULL };
  berth_error *err = NULL;
  cJSON *body = NULL, *j = NULL;
  const char *stack = NULL, *command = NULL, *actor = NULL, *role = NULL, *at = NULL;
  int64_t now = berth_now_ms();
  int rc = srv_json_object(r->body, r->body_len, &body, &err);
  if (rc == 0
      && ((rc = srv_json_only(body, allowed, "policy test", &err)) < 0
          || (rc = srv_json_string(body, "stack", true, &stack, &err)) < 0
          || (rc = srv_json_string(body, "command", true, &command, &err)) < 0
          || (rc = srv_json_string(body, "actor", false, &actor, &err)) < 0
          || (rc = srv_json_string(body, "role", false, &role, &err)) < 0
          || (rc = srv_json_string(body, "at", false, &at, &err)) < 0))
    goto out;
  if (rc == 0 && strlen(command) > BERTH_POLICY_MAX_TEXT)
    rc = berth_error_set(&err, BERTH_EINVAL, "field `command` is longer than 1 MiB");
  if (rc == 0 && role && srv_role_level(role) == SRV_ROLE_NONE)
    rc = berth_error_set(&err, BERTH_EINVAL, "field `role` must be one of " BERTH_ROLE_NAMES);
  if (rc == 0 && at && berth_audit_parse_time(at, now, &now, &err) < 0)
    rc = berth_error_wrap(&err, "field `at`");
  if (rc == 0 && (rc = berth_stack_validate_name(stack, &err)) == 0 && (rc = srv_check_stack(r, stack, &err)) == 0)
    rc = (j = berth_policy_test_json(r->st, stack, command, actor ? actor : r->key->name, role ? role : r->key->role,
                                     now, &err))
             ? 0
             : -1;
out:
  cJSON_Delete(body);
  if (rc < 0)
    return srv_fail(out, err);
  return srv_ok(out, 200, j);
}
