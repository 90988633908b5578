/* Runs one task end to end, in the supervisor process: QUEUED -> PREPARING -> INITIALIZING -> PERFORMING ->
 * FINISHED | FAILED, with every transition durable, output redacted into the task log, persisted paths copied back
 * and the container removed in every outcome. */
#ifndef BERTH_TASK_RUNNER_H
#define BERTH_TASK_RUNNER_H

#include <stdatomic.h>
#include <stdbool.h>

#include "berth/error.h"
#include "berth/store.h"

#define BERTH_DEFAULT_RUNNER_IMAGE "berth/runner:latest"
#define BERTH_WORKSPACE_DIR "/mnt/workspace"
#define BERTH_SOURCE_DIR "/mnt/workspace/source"

/* The global limit on tasks running at once across all stacks of a store: BERTH_MAX_PARALLEL_TASKS, else
 * config.json's max_parallel_tasks, else 4. */
struct berth_config;
int berth_max_parallel_tasks(const struct berth_config *cfg);

/* Supervises task_id to its end. Returns 0 when the task reached a terminal state (whatever it is), <0 when the
 * supervisor itself could not work (store unreadable, task already supervised ...). */
int berth_task_supervise(berth_store *st, const char *task_id, berth_error **err);
/* The same with the task's liveness lock handed over already held as held_fd (berth_supervisor_start_holding). */
int berth_task_supervise_held(berth_store *st, const char *task_id, int held_fd, berth_error **err);

/* A fleet host runs each claimed task in a thread of its own, on a store connection it keeps between tasks
 * (berth/host_loop.h). The host and the runner share this: */
/* Where a fleet host's liveness file appears in its tasks' containers. */
#define BERTH_ALIVE_TARGET "/.berth-host-alive"
typedef struct berth_task_ctl {
  atomic_bool abandon; /* set by the host: end the container and write nothing more (a shutdown past its grace, a
                        * lost lease); the host records the task's end */
  atomic_int phase;    /* set by the runner: BERTH_PHASE_* (berth/task_log.h), read by the host's shutdown */
  /* The host's liveness file (NULL: none): a counter its process rewrites every 0.5 s. The container sees it
   * (read-only), and a watch started in it (a background exec) ends the container when the counter stops changing
   * for alive_limit_s seconds: a host that dies or freezes takes its commands with it before the fleet declares it
   * lost and the stack's next task starts. */
  const char *alive_path;
  int alive_limit_s;
} berth_task_ctl;
int berth_task_supervise_ctl(berth_store *st, const char *task_id, berth_task_ctl *ctl, berth_error **err);

/* The CLI's exit status for a finished task record (docs/contract.md: 0, the command's status, 124, 125). */
int berth_task_exit_status(const char *state, const char *reason, int exit_code);

#endif
