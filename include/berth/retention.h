/* Retention of tasks: ended tasks that ended long enough ago go, with their history and logs (on SQLite the log
 * files, on PostgreSQL the log chunks). The audit trail stays whole (its records of those tasks are kept), the metrics'
 * counters and histograms keep what the pruned tasks counted, and a task still active is never touched. Used by
 * `berth task prune`, POST /v1/tasks/prune and the server's `task_retention` (config.json). */
#ifndef BERTH_RETENTION_H
#define BERTH_RETENTION_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "berth/error.h"
#include "berth/store.h"

/* The shortest and longest age a prune takes: a task that ended in the last second is never pruned (its log may
 * still be in its last write), and more than ten years is a typo. */
#define BERTH_PRUNE_MAX_AGE_MS (3650LL * 24 * 3600 * 1000)

typedef struct berth_prune {
  int64_t older_than_ms; /* tasks that ended at least this long ago */
  char stack[256];       /* "" = every stack (a deleted stack's tasks too) */
  bool dry_run;          /* count only */
} berth_prune;

typedef struct berth_prune_result {
  int64_t before_ms; /* the cutoff: tasks that ended before it */
  int64_t tasks;     /* pruned (or, in a dry run, that would be) */
  int64_t log_bytes; /* their logs' stored bytes */
} berth_prune_result;

/* The body of POST /v1/tasks/prune, which the command line's local back end applies too: {"older_than": "30d" (a
 * duration, berth_parse_duration_ms), "stack"?: NAME, "dry_run"?: bool}; unknown fields refused. */
int berth_prune_parse(const cJSON *body, berth_prune *out, berth_error **err);
/* {"before", "tasks", "log_bytes", "dry_run", "stack"?}: the answer of the route and of `task prune --json`. */
cJSON *berth_prune_result_to_json(const berth_prune *p, const berth_prune_result *r);

/* Prunes in batches of a few hundred tasks, each one transaction with its audit record "task.prune" (target the
 * stack or "*", args {"before", "tasks"}), so a large prune never holds the store's write lock for long. A dry run
 * counts and records nothing. Log files go after their batch commits. */
int berth_tasks_prune(berth_store *st, const berth_prune *p, const char *actor, berth_prune_result *out,
                      berth_error **err);

#endif
