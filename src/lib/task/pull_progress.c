/* The progress of one image pull (pull_progress.h). */
#include <stdio.h>
#include <string.h>

#include "pull_progress.h"

/* 47400000 -> "45.2MiB": one decimal, for a reader (berth_format_size is exact, for configuration). */
static const char *
approx_size(int64_t bytes, char *buf, size_t len)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
  double v = (double) bytes;
  size_t u = 0;
  while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
    v /= 1024.0;
    u++;
  }
  if (u == 0)
    snprintf(buf, len, "%lldB", (long long) bytes);
  else
    snprintf(buf, len, "%.1f%s", v, units[u]);
  return buf;
}

void
berth_pull_progress_init(berth_pull_progress *p)
{
  memset(p, 0, sizeof *p);
}

/* The layer with this id, added when new; NULL past the cap. */
static berth_pull_layer *
layer(berth_pull_progress *p, const char *id)
{
  for (size_t i = 0; i < p->n; i++)
    if (strcmp(p->layers[i].id, id) == 0)
      return &p->layers[i];
  if (p->n == BERTH_PULL_LAYERS_MAX)
    return NULL;
  berth_pull_layer *l = &p->layers[p->n++];
  snprintf(l->id, sizeof l->id, "%s", id);
  return l;
}

void
berth_pull_progress_add(berth_pull_progress *p, const char *status, const char *id, int64_t current, int64_t total)
{
  /* lines about the whole image carry no id, or the tag ("Pulling from library/x", id "latest") */
  static const char *const layer_status[] = { "Pulling fs layer",  "Waiting",    "Downloading",   "Verifying Checksum",
                                              "Download complete", "Extracting", "Pull complete", "Already exists" };
  bool about_layer = false;
  for (size_t i = 0; id && status && i < sizeof layer_status / sizeof layer_status[0]; i++)
    about_layer |= strcmp(status, layer_status[i]) == 0;
  if (!about_layer)
    return;
  berth_pull_layer *l = layer(p, id);
  if (l == NULL)
    return;
  if (strcmp(status, "Downloading") == 0 && current >= 0) {
    l->current = current;
    if (total > 0)
      l->total = total;
  } else if (strcmp(status, "Download complete") == 0 || strcmp(status, "Extracting") == 0) {
    if (l->total > 0)
      l->current = l->total;
  } else if (strcmp(status, "Pull complete") == 0 || strcmp(status, "Already exists") == 0) {
    l->done = true;
    if (l->total > 0)
      l->current = l->total;
  }
  p->changed = true;
}

bool
berth_pull_progress_line(berth_pull_progress *p, int64_t now_ms, bool final, char *buf, size_t len)
{
  if (p->n == 0 || !p->changed || (!final && now_ms - p->last_report_ms < BERTH_PULL_REPORT_MS))
    return false;
  size_t done = 0;
  int64_t current = 0, total = 0;
  for (size_t i = 0; i < p->n; i++) {
    done += p->layers[i].done;
    current += p->layers[i].current;
    total += p->layers[i].total;
  }
  char cur[32], tot[32];
  if (total > 0)
    snprintf(buf, len, "%zu/%zu layers, %s of %s", done, p->n, approx_size(current, cur, sizeof cur),
             approx_size(total, tot, sizeof tot));
  else
    snprintf(buf, len, "%zu/%zu layers", done, p->n);
  p->last_report_ms = now_ms;
  p->changed = false;
  return true;
}
