/* The progress of one image pull, summed over its layers from the daemon's progress lines, as the short line a
 * task's log shows every few seconds: "3/7 layers, 45.2MiB of 120MiB". Internal to the task runner. */
#ifndef BERTH_PULL_PROGRESS_H
#define BERTH_PULL_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BERTH_PULL_LAYERS_MAX 128 /* layers past this many are not counted (no image has that many) */
#define BERTH_PULL_REPORT_MS 2000 /* at most one progress line per this many ms */

typedef struct berth_pull_layer {
  char id[72];
  int64_t current, total; /* bytes downloaded, of total (0 when not known yet) */
  bool done;              /* pulled, or already present */
} berth_pull_layer;

typedef struct berth_pull_progress {
  berth_pull_layer layers[BERTH_PULL_LAYERS_MAX];
  size_t n;
  int64_t last_report_ms;
  bool changed; /* something moved since the last line */
} berth_pull_progress;

/* Starts a pull (zeroes p). */
void berth_pull_progress_init(berth_pull_progress *p);
/* One progress line of the daemon: status ("Downloading", "Pull complete" ...), the layer id (NULL for lines about
 * the whole image) and progressDetail's current and total (-1 when absent). */
void berth_pull_progress_add(berth_pull_progress *p, const char *status, const char *id, int64_t current,
                             int64_t total);
/* Writes the progress line into buf and returns true when one is due: at most every BERTH_PULL_REPORT_MS, and only
 * when something moved; with final, whenever there are layers and something moved. */
bool berth_pull_progress_line(berth_pull_progress *p, int64_t now_ms, bool final, char *buf, size_t len);

#endif
