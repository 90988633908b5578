/* State-changing actions together with their audit record, in ONE store transaction: the change and the record
 * commit together or not at all. The CLI and the HTTP server both go through these. Secrets never reach the audit
 * arguments (stacks are recorded as berth_stack_to_json shows them, `***` for secret values). */
#ifndef BERTH_ACTIONS_H
#define BERTH_ACTIONS_H

#include <stdbool.h>

#include "berth/error.h"
#include "berth/store.h"

int berth_action_stack_create(berth_store *st, const berth_stack *s, const char *actor, berth_error **err);
int berth_action_stack_update(berth_store *st, const berth_stack *s, const char *actor, berth_error **err);
int berth_action_stack_delete(berth_store *st, const char *name, const char *actor, berth_error **err);
int berth_action_stack_lock(berth_store *st, const char *name, const char *actor, const char *note, berth_error **err);
/* A fleet host: drain (claims nothing new) or undrain, audited as host.drain / host.undrain. */
int berth_action_host_drain(berth_store *st, const char *name, bool drain, const char *actor, berth_error **err);
int berth_action_host_remove(berth_store *st, const char *name, const char *actor, berth_error **err);
int berth_action_stack_unlock(berth_store *st, const char *name, const char *actor, bool force, berth_error **err);
/* A task transition (see berth_store_task_transition) with its audit record "task.<state>". */
int berth_action_task_transition(berth_store *st, const char *id, const char *state, const char *actor,
                                 const char *note, const char *reason, int exit_code, berth_error **err);
/* The same, recorded as having happened at `at` (unix ms; 0: now): an end that could only be written later (its
 * store did not answer) keeps the time it happened. The audit record has the time it was written. */
int berth_action_task_transition_at(berth_store *st, const char *id, const char *state, const char *actor,
                                    const char *note, const char *reason, int exit_code, int64_t at, berth_error **err);
/* Records an action's outcome in the audit trail: "ok" when failure is NULL, else "denied: <message>" (a
 * BERTH_EDENIED failure) or "failed: <message>". For actions whose change is not one of the above. */
struct cJSON;
int berth_action_record(berth_store *st, const char *actor, const char *action, const char *target,
                        const struct cJSON *args, const berth_error *failure, berth_error **err);
/* Governance changes, each with its audit record in one transaction; a failure is recorded too (best effort). The
 * server and the command line's local back end both go through these.
 * An image allowlist rule: kind "allow" or "deny" adds it, NULL removes the rule with this pattern. Audited as
 * "image.allow|deny|remove" on the normalized pattern, args {"pattern"}. Returns 0 when changed, 1 when the rule was
 * there already (recorded "ok (unchanged)"), or <0. */
int berth_action_image_rule(berth_store *st, const char *kind, const char *pattern, const char *actor,
                            berth_error **err);
/* Adds the rule(s) of a policy text (berth_policy_add_json; *added may be NULL). Audited as "policy.add" on the rule
 * names, args {"rules": [names]} plus the members of extra (may be NULL). */
int berth_action_policy_add(berth_store *st, const char *text, const char *actor, const struct cJSON *extra,
                            size_t *added, berth_error **err);
int berth_action_policy_remove(berth_store *st, const char *name, const char *actor, berth_error **err);
/* API keys (berth_apikey_create, berth_apikey_revoke), audited as "key.create" (args {"role"}) and "key.revoke". */
int berth_action_key_create(berth_store *st, const char *name, const char *role, const char *const *stacks,
                            size_t n_stacks, const char *actor, char **secret_out, berth_error **err);
int berth_action_key_revoke(berth_store *st, const char *name, const char *actor, berth_error **err);
/* Records a refused action (e.g. a denied task submission): outcome "denied: <message>". Best effort. */
void berth_action_denied(berth_store *st, const char *actor, const char *action, const char *target,
                         const char *message, const char *command_shown);

#endif
