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
  int max_batches;       /* stop after this many batches (the server's runs: the rest goes next time); 0 = all */
} berth_prune;

typedef struct berth_prune_result {
  int64_t before_ms; /* the cutoff: tasks that ended before it */
  int64_t tasks;     /* pruned (or, in a dry run, that would be) */
  int64_t log_bytes; /* their logs' stored bytes */
  bool more;         /* max_batches was reached with tasks left to prune */
} berth_prune_result;

/* A retention age as written by a user: a duration with its unit ("30d", "12h"; a bare number, which
 * berth_parse_duration_ms reads as seconds, is refused here: "30" meant days more often than not), more than 0 and at
 * most 3650 days. what names it in the message ("--older-than", "field `older_than`"). */
int berth_prune_age_parse(const char *s, const char *what, int64_t *ms, berth_error **err);
/* The body of POST /v1/tasks/prune, which the command line's local back end applies too: {"older_than": "30d" (a
 * duration, berth_parse_duration_ms), "stack"?: NAME, "dry_run"?: bool}; unknown fields refused. */
int berth_prune_parse(const cJSON *body, berth_prune *out, berth_error **err);
/* {"before", "tasks", "log_bytes", "dry_run", "stack"?}: the answer of the route and of `task prune --json`. */
cJSON *berth_prune_result_to_json(const berth_prune *p, const berth_prune_result *r);

/* Prunes in batches of a few hundred tasks, each one transaction with its audit record "task.prune" (target the
 * stack or "*", args {"before", "tasks", "first", "last"}), so a large prune never holds the store's write lock for
 * long. A dry run counts and records nothing. Log files go after their batch commits. */
int berth_tasks_prune(berth_store *st, const berth_prune *p, const char *actor, berth_prune_result *out,
                      berth_error **err);

#endif
