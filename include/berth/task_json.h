/* JSON views of store records, shared by the CLI (--json) and the HTTP API. Secret values are always `***`. */
#ifndef BERTH_TASK_JSON_H
#define BERTH_TASK_JSON_H

#include <cjson/cJSON.h>

#include "berth/store.h"

/* ISO 8601 UTC with milliseconds ("2026-11-25T08:01:02.345Z"), or NULL for 0. Caller frees. */
char *berth_time_iso(int64_t unix_ms);
struct berth_secrets;
/* A new object; the caller owns it (cJSON_Delete). */
cJSON *berth_task_to_json(const berth_task *t);
/* The same, with the command text passed through `redact` (built-in patterns and the stack's secret values): a
 * command typed with a secret in it is shown masked. redact may be NULL. */
cJSON *berth_task_to_json_redacted(const berth_task *t, struct berth_secrets *redact);
/* A secret set for displaying records: the built-in patterns plus the secret values of every stack (stack NULL) or
 * of one stack (none when it is gone). NULL with *err when the stacks cannot be read or out of memory: a record is
 * then not shown at all, never shown with secrets unmasked. The caller frees it with berth_secrets_free. */
struct berth_secrets *berth_display_secrets(berth_store *st, const char *stack, berth_error **err);
/* The same for a stack already read (no read of the store). */
struct berth_secrets *berth_display_secrets_of(const berth_stack *stack);
/* A submission's: its stack's secret values and its own (own, n_own: the task's secret env). */
struct berth_secrets *berth_submission_secrets(const berth_stack *stack, const berth_kv *own, size_t n_own);
/* A task's record as both front ends show it (`berth task show --json`, GET /v1/tasks/{id}):
 * berth_task_to_json_redacted with the display secrets of its stack. A new object the caller owns. */
cJSON *berth_task_record(berth_store *st, const berth_task *t, berth_error **err); /* NULL with *err on failure */
/* Reads task id (berth_store_task_get) and makes its record with its stack's secret values read in the same round
 * trip; *t is the task, for the caller's own checks before it shows *record. ahead (may be NULL): what
 * berth_store_task_read_ahead sent for id. */
int berth_task_get_record(berth_store *st, const char *id, berth_task_ahead *ahead, berth_task **t, cJSON **record,
                          berth_error **err);

/* `berth stack state` and GET /v1/stacks/{name}/state: {"stack", "persist": [...], "versions": [{"version",
 * "task_id", "created_at", "files", "bytes", "path"}]}, newest version first. A new object the caller owns; NULL
 * with *err on failure. */
cJSON *berth_stack_state_json(berth_store *st, const berth_stack *s, berth_error **err);

#endif
