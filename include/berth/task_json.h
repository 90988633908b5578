/* JSON views of store records, shared by the CLI (--json) and the HTTP API. Secret values are always `***`. */
#ifndef BERTH_TASK_JSON_H
#define BERTH_TASK_JSON_H

#include <cjson/cJSON.h>

#include "berth/store.h"

/* ISO 8601 UTC with milliseconds ("2026-11-25T08:01:02.345Z"), or NULL for 0. Caller frees. */
char *berth_time_iso(int64_t unix_ms);
/* A new object; the caller owns it (cJSON_Delete). */
cJSON *berth_task_to_json(const berth_task *t);

#endif
