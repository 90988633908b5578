/* Request bodies of the HTTP API that the command line's local back end applies too: strict types, unknown fields
 * refused, every size capped. Pure functions over untrusted JSON. */
#ifndef BERTH_STACK_JSON_H
#define BERTH_STACK_JSON_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "berth/error.h"
#include "berth/store.h"

#define BERTH_JSON_MAX_ENV 256  /* env / secret_env entries in a body */
#define BERTH_JSON_MAX_LIST 256 /* entries in a list field (init, hooks, persist, labels, stacks) */

/* BERTH_EINVAL "WHAT: unknown field `x`" unless every member of o is named in allowed (NULL-terminated). */
int berth_json_only(const cJSON *o, const char *const *allowed, const char *what, berth_error **err);
/* {"K": "V", ...} (o[key]) merged into kv: a null value removes the key, which must be set on stack when stack is
 * given; keep_masked: "***" keeps the current value. Absent or null: nothing changes. */
int berth_json_env(const cJSON *o, const char *key, bool keep_masked, const char *stack, berth_kv **kv, size_t *n,
                   berth_error **err);
/* Applies a stack JSON (the form of berth_stack_to_json, plus "memory", "timeout", "idle_timeout" as strings) to
 * s. create: "name" and "image" are required. A secret_env value "***" keeps the current value; null removes a
 * key (PATCH). Read-only fields (lock, created_at, updated_at, warnings) are ignored. Validates the result. */
int berth_stack_apply_json(berth_stack *s, const cJSON *o, bool create, berth_error **err);
/* A create's or update's body applied to s as above, then checked against this host (berth_stack_check_host with
 * home: the project dir and subdir the body names, the admin config's pull policies) and validated: what the server
 * and the command line's local back end do before storing the stack. Needs no store. */
int berth_stack_edit_json(berth_stack *s, const char *home, const cJSON *body, bool create, berth_error **err);

#endif
