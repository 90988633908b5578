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
int berth_action_stack_unlock(berth_store *st, const char *name, const char *actor, bool force, berth_error **err);
/* A task transition (see berth_store_task_transition) with its audit record "task.<state>". */
int berth_action_task_transition(berth_store *st, const char *id, const char *state, const char *actor,
                                 const char *note, const char *reason, int exit_code, berth_error **err);
/* Records an action's outcome in the audit trail: "ok" when failure is NULL, else "denied: <message>" (a
 * BERTH_EDENIED failure) or "failed: <message>". For actions whose change is not one of the above. */
struct cJSON;
int berth_action_record(berth_store *st, const char *actor, const char *action, const char *target,
                        const struct cJSON *args, const berth_error *failure, berth_error **err);
/* Records a refused action (e.g. a denied task submission): outcome "denied: <message>". Best effort. */
void berth_action_denied(berth_store *st, const char *actor, const char *action, const char *target,
                         const char *message, const char *command_shown);

#endif
