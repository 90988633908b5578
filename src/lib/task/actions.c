/* State-changing actions with their audit records, committed together. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/task_queue.h"
#include "berth/parse.h"
#include "berth/actions.h"
#include "berth/fleet.h"
#include "berth/allowlist.h"
#include "berth/apikey.h"
#include "berth/audit.h"
#include "berth/policy.h"

/* Runs the audit append inside the transaction the caller opened; rolls back on failure. */
static int
finish_audited(berth_store *st, int rc, const char *actor, const char *action, const char *target, cJSON *args,
               berth_error **err)
{
  if (rc == 0)
    rc = berth_audit_append(st, actor, action, target, args, "ok", err);
  cJSON_Delete(args);
  if (rc < 0) {
    berth_store_rollback(st);
    return rc;
  }
  return berth_store_commit(st, err);
}

static int
stack_write(berth_store *st, const berth_stack *s, const char *actor, bool update, berth_error **err)
{
  int rc = berth_store_begin(st, err);
  if (rc < 0)
    return rc;
  rc = update ? berth_store_stack_update(st, s, err) : berth_store_stack_create(st, s, err);
  return finish_audited(st, rc, actor, update ? "stack.update" : "stack.create", s->name,
                        rc == 0 ? berth_stack_to_json(s) : NULL, err);
}

int
berth_action_stack_create(berth_store *st, const berth_stack *s, const char *actor, berth_error **err)
{
  return stack_write(st, s, actor, false, err);
}

int
berth_action_stack_update(berth_store *st, const berth_stack *s, const char *actor, berth_error **err)
{
  return stack_write(st, s, actor, true, err);
}

int
berth_action_stack_delete(berth_store *st, const char *name, const char *actor, berth_error **err)
{
  int rc = berth_store_begin(st, err);
  if (rc < 0)
    return rc;
  rc = berth_store_stack_delete(st, name, err);
  rc = finish_audited(st, rc, actor, "stack.delete", name, NULL, err);
  if (rc == 0) /* its queue's lock file in this home goes with it (none of its tasks is active: the delete checked) */
    berth_stack_lock_file_remove(berth_store_home(st), name);
  return rc;
}

int
berth_action_stack_lock(berth_store *st, const char *name, const char *actor, const char *note, berth_error **err)
{
  if (berth_utf8_check("the lock's note", note, err) < 0)
    return BERTH_EINVAL;
  int rc = berth_store_begin(st, err);
  if (rc < 0)
    return rc;
  rc = berth_store_stack_lock(st, name, actor, note, err);
  cJSON *args = cJSON_CreateObject();
  if (note)
    cJSON_AddStringToObject(args, "note", note);
  return finish_audited(st, rc, actor, "stack.lock", name, args, err);
}

int
berth_action_host_drain(berth_store *st, const char *name, bool drain, const char *actor, berth_error **err)
{
  int rc = berth_store_begin(st, err);
  if (rc < 0)
    return rc;
  rc = berth_host_set_draining(st, name, drain, true, err);
  return finish_audited(st, rc, actor, drain ? "host.drain" : "host.undrain", name, NULL, err);
}

int
berth_action_host_remove(berth_store *st, const char *name, const char *actor, berth_error **err)
{
  int rc = berth_store_begin(st, err);
  if (rc < 0)
    return rc;
  rc = berth_host_remove(st, name, err);
  return finish_audited(st, rc, actor, "host.remove", name, NULL, err);
}

int
berth_action_stack_unlock(berth_store *st, const char *name, const char *actor, bool force, berth_error **err)
{
  int rc = berth_store_begin(st, err);
  if (rc < 0)
    return rc;
  rc = berth_store_stack_unlock(st, name, actor, force, err);
  cJSON *args = cJSON_CreateObject();
  cJSON_AddBoolToObject(args, "force", force);
  return finish_audited(st, rc, actor, "stack.unlock", name, args, err);
}

int
berth_action_task_transition(berth_store *st, const char *id, const char *state, const char *actor, const char *note,
                             const char *reason, int exit_code, berth_error **err)
{
  return berth_action_task_transition_at(st, id, state, actor, note, reason, exit_code, 0, err);
}

int
berth_action_task_transition_at(berth_store *st, const char *id, const char *state, const char *actor, const char *note,
                                const char *reason, int exit_code, int64_t at, berth_error **err)
{
  /* a part of the caller's transaction when there is one (a claim): no savepoint, one round trip less each way */
  int rc = berth_store_begin_part(st, err);
  if (rc < 0)
    return rc;
  rc = berth_store_task_transition_at(st, id, state, actor, note, reason, exit_code, at, err);
  char action[32] = "task.";
  for (size_t i = 0; state[i] && i < sizeof action - 6; i++)
    action[5 + i] = (char) tolower((unsigned char) state[i]), action[6 + i] = '\0';
  cJSON *args = cJSON_CreateObject();
  cJSON_AddStringToObject(args, "state", state);
  if (note)
    cJSON_AddStringToObject(args, "note", note);
  if (reason)
    cJSON_AddStringToObject(args, "reason", reason);
  if (exit_code >= 0)
    cJSON_AddNumberToObject(args, "exit_code", exit_code);
  return finish_audited(st, rc, actor ? actor : "berth", action, id, args, err);
}

void
berth_action_denied(berth_store *st, const char *actor, const char *action, const char *target, const char *message,
                    const char *command_shown)
{
  cJSON *args = NULL;
  if (command_shown) {
    args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "command", command_shown);
  }
  char *outcome = NULL;
  if (asprintf(&outcome, "denied: %s", message ? message : "") < 0)
    outcome = NULL;
  berth_error *e = NULL;
  berth_audit_append(st, actor, action, target, args, outcome ? outcome : "denied", &e);
  berth_error_free(e);
  free(outcome);
  cJSON_Delete(args);
}

int
berth_action_record(berth_store *st, const char *actor, const char *action, const char *target, const cJSON *args,
                    const berth_error *failure, berth_error **err)
{
  char *outcome = NULL;
  if (failure == NULL)
    outcome = strdup("ok");
  else if (asprintf(&outcome, "%s: %.500s", failure->code == BERTH_EDENIED ? "denied" : "failed",
                    failure->msg ? failure->msg : "")
           < 0)
    outcome = NULL;
  if (outcome == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  int rc = berth_audit_append(st, actor, action, target, args, outcome, err);
  free(outcome);
  return rc;
}

/* The end of a governance change opened with berth_store_begin: on success the audit record ("ok", or outcome) and
 * the commit; on failure the rollback, then the failure's record (best effort: the failure is what the caller
 * reports). Takes args. */
static int
finish_gov(berth_store *st, int rc, const char *actor, const char *action, const char *target, cJSON *args,
           const char *outcome, berth_error **err)
{
  if (rc >= 0
      && (berth_audit_append(st, actor, action, target, args, outcome ? outcome : "ok", err) < 0
          || berth_store_commit(st, err) < 0))
    rc = -1;
  if (rc < 0) {
    berth_error *e = NULL;
    berth_store_rollback(st);
    if (err && *err)
      berth_action_record(st, actor, action, target, args, *err, &e);
    berth_error_free(e);
  }
  cJSON_Delete(args);
  return rc;
}

int
berth_action_image_rule(berth_store *st, const char *kind, const char *pattern, const char *actor, berth_error **err)
{
  char action[32];
  char *norm = berth_allowlist_normalize_pattern(pattern, err);
  if (norm == NULL)
    return -1;
  snprintf(action, sizeof action, "image.%s", kind ? kind : "remove");
  cJSON *args = cJSON_CreateObject();
  cJSON_AddStringToObject(args, "pattern", pattern);
  int rc = berth_store_begin(st, err);
  if (rc == 0)
    rc = kind ? berth_allowlist_add(st, kind, pattern, actor, err) : berth_allowlist_remove(st, pattern, err);
  rc = finish_gov(st, rc, actor, action, norm, args, rc == 1 ? "ok (unchanged)" : NULL, err);
  free(norm);
  return rc;
}

int
berth_action_policy_add(berth_store *st, const char *text, const char *actor, const cJSON *extra, size_t *added,
                        berth_error **err)
{
  cJSON *root = cJSON_Parse(text), *args = extra ? cJSON_Duplicate(extra, true) : cJSON_CreateObject();
  cJSON *names = cJSON_AddArrayToObject(args, "rules");
  size_t len = 0;
  char target[512] = "";
  const cJSON *it = cJSON_IsArray(root) ? root->child : root;
  for (; it != NULL; it = cJSON_IsArray(root) ? it->next : NULL) {
    const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "name"));
    if (n == NULL)
      continue;
    cJSON_AddItemToArray(names, cJSON_CreateString(n));
    int w = snprintf(target + len, sizeof target - len, "%s%s", len ? ", " : "", n);
    len = w < 0 || (size_t) w >= sizeof target - len ? sizeof target - 1 : len + (size_t) w;
  }
  cJSON_Delete(root);
  int rc = berth_store_begin(st, err);
  if (rc == 0)
    rc = berth_policy_add_json(st, text, actor, added, err);
  return finish_gov(st, rc, actor, "policy.add", len ? target : "-", args, NULL, err);
}

int
berth_action_policy_remove(berth_store *st, const char *name, const char *actor, berth_error **err)
{
  int rc = berth_store_begin(st, err);
  if (rc == 0)
    rc = berth_policy_remove(st, name, err);
  return finish_gov(st, rc, actor, "policy.remove", name, NULL, NULL, err);
}

int
berth_action_key_create(berth_store *st, const char *name, const char *role, const char *const *stacks, size_t n_stacks,
                        const char *actor, char **secret_out, berth_error **err)
{
  cJSON *args = cJSON_CreateObject();
  cJSON_AddStringToObject(args, "role", role ? role : "");
  int rc = berth_store_begin(st, err);
  if (rc == 0)
    rc = berth_apikey_create(st, name, role, stacks, n_stacks, actor, secret_out, err);
  rc = finish_gov(st, rc, actor, "key.create", name ? name : "-", args, NULL, err);
  if (rc < 0 && *secret_out) { /* created but not committed: the key does not exist */
    explicit_bzero(*secret_out, strlen(*secret_out));
    free(*secret_out);
    *secret_out = NULL;
  }
  return rc;
}

int
berth_action_key_revoke(berth_store *st, const char *name, const char *actor, berth_error **err)
{
  int rc = berth_store_begin(st, err);
  if (rc == 0)
    rc = berth_apikey_revoke(st, name, err);
  return finish_gov(st, rc, actor, "key.revoke", name, NULL, NULL, err);
}
