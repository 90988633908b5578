/* Human renderers over the JSON records of the command layer (backend.h): both back ends give the same records, so
 * the output is the same whichever way the data came. */
#ifndef BERTH_CLI_RENDER_H
#define BERTH_CLI_RENDER_H

#include <cjson/cJSON.h>

#include "berth/error.h"
#include "berth/policy.h"
#include "berth/store.h"

/* `berth task list`: a table of task objects (the "tasks" array). */
void cli_render_task_list(const cJSON *tasks);
/* `berth task show`: one task object with its history. */
void cli_render_task(const cJSON *task);
/* The exit status of `berth task run` for a final task object (docs/contract.md: 0, the command's status, 124, 125). */
int cli_task_exit_status(const cJSON *task);

/* `berth stack show`: one stack object (berth_stack_to_json's form). Secret values are printed as *** whatever the
 * object holds. */
void cli_render_stack(const cJSON *stack);
/* `berth stack list`: a table of stack objects (the "stacks" array). */
void cli_render_stack_list(const cJSON *stacks);
/* `berth stack state`: the object of berth_stack_state_json (GET /v1/stacks/{name}/state). */
void cli_render_stack_state(const cJSON *state);
/* `berth policy test`: {"decision", "rule", "message", "matched"} (berth_policy_result_to_json). */
void cli_render_policy_result(const cJSON *result);
/* `berth audit`: a table of audit records (the "records" array of berth_audit_list_json). */
void cli_render_audit(const cJSON *records);
/* `berth audit verify`: the object of berth_audit_verify_json; its exit status is 0 intact, 1 broken. */
void cli_render_audit_verify(const cJSON *verify);
int cli_audit_verify_exit_status(const cJSON *verify);

/* `berth host list`: a table of host objects (the "hosts" array); `berth host show`: one (berth_host_to_json). */
void cli_render_host_list(const cJSON *hosts);
void cli_render_host(const cJSON *host);

#endif
