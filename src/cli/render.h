/* Human renderers shared by local mode and the HTTP client mode: both hold the same JSON records, so the output
 * is the same whichever way the data came. */
#ifndef BERTH_CLI_RENDER_H
#define BERTH_CLI_RENDER_H

#include <cjson/cJSON.h>

/* `berth task list`: a table of task objects (the "tasks" array). */
void cli_render_task_list(const cJSON *tasks);
/* `berth task show`: one task object with its history. */
void cli_render_task(const cJSON *task);
/* The exit status of `berth task run` for a final task object (DESIGN.md: 0, the command's status, 124, 125). */
int cli_task_exit_status(const cJSON *task);

#endif
