/* Prometheus metrics of a store (the text exposition format, version 0.0.4): what `GET /metrics` answers.
 *
 * Everything is read from the store at scrape time, so every host of a store reports the same task numbers and a
 * restart loses nothing. Names, units and labels follow Prometheus's conventions (checked by `promtool check
 * metrics` in the tests); labels carry only bounded values: states, stack names, the host name, never a task id
 * or anything from a command. See docs/metrics.md. */
#ifndef BERTH_METRICS_H
#define BERTH_METRICS_H

#include <stdint.h>

#include "berth/buf.h"
#include "berth/error.h"
#include "berth/store.h"

/* What the process itself counts (the server: requests answered with a store error). */
typedef struct berth_metrics_process {
  const char *version, *commit;
  const char *host;
  uint64_t store_errors;
} berth_metrics_process;

/* Appends the exposition text to out. */
int berth_metrics_render(berth_store *st, const berth_metrics_process *p, berth_buf *out, berth_error **err);

/* ---- the store's side (src/lib/store/stats.c) ---- */
#define BERTH_STATS_BUCKETS 12
/* Upper bounds (seconds) of the wait and duration histograms' buckets. */
extern const double berth_stats_bucket_le[BERTH_STATS_BUCKETS];
typedef struct berth_histogram {
  uint64_t count;                   /* observations */
  double sum;                       /* seconds */
  uint64_t le[BERTH_STATS_BUCKETS]; /* cumulative counts per bucket */
} berth_histogram;
typedef struct berth_stats_row {
  char *label; /* a state or a stack name */
  int64_t n;
} berth_stats_row;
typedef struct berth_task_stats {
  berth_stats_row *by_state;
  size_t n_states;
  berth_stats_row *queued_by_stack;
  size_t n_stacks;
  int64_t running;          /* PREPARING, INITIALIZING or PERFORMING */
  berth_histogram wait;     /* created -> started, tasks that started */
  berth_histogram duration; /* started -> finished, tasks that ended after starting */
  int64_t redactions;       /* secrets masked in tasks' output, summed over the store's tasks */
} berth_task_stats;
int berth_store_task_stats(berth_store *st, berth_task_stats *out, berth_error **err);
void berth_task_stats_clear(berth_task_stats *s);

#endif
