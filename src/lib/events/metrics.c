/* The Prometheus text exposition of a store's metrics (include/berth/metrics.h). */
#include <stdio.h>
#include <string.h>

#include "berth/fleet.h"
#include "berth/metrics.h"
#include "berth/schedule.h"
#include "berth/webhook.h"

static const char *const states[]
    = { "QUEUED", "PREPARING", "INITIALIZING", "PERFORMING", "FINISHED", "FAILED", "CANCELED", "STOPPED" };

/* A label value: backslash, double quote and newline escaped. */
static void
label(berth_buf *b, const char *v)
{
  for (; v != NULL && *v; v++) {
    if (*v == '\\' || *v == '"')
      berth_buf_printf(b, "\\%c", *v);
    else if (*v == '\n')
      berth_buf_append(b, "\\n", 2);
    else
      berth_buf_append(b, v, 1);
  }
}

static void
head(berth_buf *b, const char *name, const char *type, const char *help)
{
  berth_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
histogram(berth_buf *b, const char *name, const char *help, const berth_histogram *h)
{
  head(b, name, "histogram", help);
  for (int i = 0; i < BERTH_STATS_BUCKETS; i++)
    berth_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, berth_stats_bucket_le[i], (unsigned long long) h->le[i]);
  berth_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.3f\n%s_count %llu\n", name, (unsigned long long) h->count,
                   name, h->sum, name, (unsigned long long) h->count);
}

/* Webhook deliveries and schedule fires, as the store records them (every host of a store reports the same). */
static int
events(berth_store *st, berth_buf *b, berth_error **err)
{
  berth_delivery_counts dc = { 0 };
  int64_t submitted = 0, refused = 0, missed = 0;
  if (berth_store_delivery_counts(st, &dc, err) < 0
      || berth_store_schedule_counts(st, &submitted, &refused, &missed, err) < 0)
    return BERTH_EINTERNAL;
  head(b, "berth_webhook_attempts_total", "counter", "Webhook delivery attempts by outcome (success: a 2xx answer).");
  berth_buf_printf(b, "berth_webhook_attempts_total{outcome=\"success\"} %lld\n", (long long) dc.attempts_ok);
  berth_buf_printf(b, "berth_webhook_attempts_total{outcome=\"failure\"} %lld\n", (long long) dc.attempts_failed);
  head(b, "berth_webhook_deliveries", "gauge", "Webhook deliveries in the store by state.");
  berth_buf_printf(b, "berth_webhook_deliveries{state=\"pending\"} %lld\n", (long long) dc.pending);
  berth_buf_printf(b, "berth_webhook_deliveries{state=\"delivered\"} %lld\n", (long long) dc.delivered);
  berth_buf_printf(b, "berth_webhook_deliveries{state=\"failed\"} %lld\n", (long long) dc.failed);
  head(b, "berth_schedule_fires_total", "counter", "Schedule fire times handled, by outcome.");
  berth_buf_printf(b, "berth_schedule_fires_total{outcome=\"submitted\"} %lld\n", (long long) submitted);
  berth_buf_printf(b, "berth_schedule_fires_total{outcome=\"refused\"} %lld\n", (long long) refused);
  head(b, "berth_schedule_misses_total", "counter", "Schedule fire times missed while no server ran.");
  berth_buf_printf(b, "berth_schedule_misses_total %lld\n", (long long) missed);
  return 0;
}

/* The fleet's part: running tasks by host and pool (the pool of the task's stack), hosts by state. */
static int
fleet_metrics(berth_store *st, berth_buf *b, berth_error **err)
{
  berth_host *hv = NULL;
  size_t nh = 0;
  int rc = berth_host_list(st, &hv, &nh, err);
  if (rc < 0)
    return rc;
  head(b, "berth_tasks_running", "gauge", "Tasks preparing, initializing or performing, by host and pool.");
  for (size_t i = 0; i < nh; i++)
    for (size_t k = 0; k < hv[i].pools.n; k++) {
      int64_t n = 0;
      if (berth_fleet_running(st, hv[i].name, hv[i].pools.v[k], &n, err) < 0) {
        berth_hosts_free(hv, nh);
        return BERTH_EINTERNAL;
      }
      berth_buf_append(b, "berth_tasks_running{host=\"", 26);
      label(b, hv[i].name);
      berth_buf_append(b, "\",pool=\"", 8);
      label(b, hv[i].pools.v[k]);
      berth_buf_printf(b, "\"} %lld\n", (long long) n);
    }
  head(b, "berth_hosts", "gauge", "Hosts of the fleet, by state.");
  static const char *const hstates[] = { "alive", "draining", "lost", "stopped" };
  for (size_t k = 0; k < sizeof hstates / sizeof hstates[0]; k++) {
    int n = 0;
    for (size_t i = 0; i < nh; i++)
      n += strcmp(hv[i].state, hstates[k]) == 0;
    berth_buf_printf(b, "berth_hosts{state=\"%s\"} %d\n", hstates[k], n);
  }
  berth_hosts_free(hv, nh);
  return 0;
}

int
berth_metrics_render(berth_store *st, const berth_metrics_process *p, berth_buf *b, berth_error **err)
{
  berth_task_stats ts;
  int rc = berth_store_task_stats(st, &ts, err);
  if (rc < 0)
    return rc;
  head(b, "berth_build_info", "gauge", "The berth build answering (always 1).");
  berth_buf_append(b, "berth_build_info{version=\"", 26);
  label(b, p->version);
  berth_buf_append(b, "\",commit=\"", 10);
  label(b, p->commit);
  berth_buf_append(b, "\"} 1\n", 5);

  head(b, "berth_tasks", "gauge", "Tasks in the store by state.");
  for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
    int64_t n = 0;
    for (size_t k = 0; k < ts.n_states; k++)
      if (strcmp(ts.by_state[k].label, states[i]) == 0)
        n = ts.by_state[k].n;
    berth_buf_printf(b, "berth_tasks{state=\"%s\"} %lld\n", states[i], (long long) n);
  }

  head(b, "berth_queue_depth", "gauge", "Queued tasks per stack (stacks with none are left out).");
  for (size_t k = 0; k < ts.n_stacks; k++) {
    berth_buf_append(b, "berth_queue_depth{stack=\"", 25);
    label(b, ts.queued_by_stack[k].label);
    berth_buf_printf(b, "\"} %lld\n", (long long) ts.queued_by_stack[k].n);
  }

  if (berth_store_is_shared(st)) { /* a fleet: the hosts of the store, as the store knows them */
    rc = fleet_metrics(st, b, err);
    if (rc < 0) {
      berth_task_stats_clear(&ts);
      return rc;
    }
  } else {
    head(b, "berth_tasks_running", "gauge", "Tasks preparing, initializing or performing, by host and pool.");
    berth_buf_append(b, "berth_tasks_running{host=\"", 26);
    label(b, p->host);
    berth_buf_printf(b, "\",pool=\"default\"} %lld\n", (long long) ts.running);

    head(b, "berth_hosts", "gauge", "Hosts executing tasks, by state (one host: this one).");
    berth_buf_append(b, "berth_hosts{state=\"alive\"} 1\n", 29);
  }

  histogram(b, "berth_task_wait_seconds", "Time from submission to the start of preparation.", &ts.wait);
  histogram(b, "berth_task_duration_seconds", "Time from the start of preparation to the end, of ended tasks.",
            &ts.duration);

  rc = events(st, b, err);
  if (rc < 0) {
    berth_task_stats_clear(&ts);
    return rc;
  }

  head(b, "berth_redactions_total", "counter",
       "Secrets masked in tasks' output (each *** written), counted as each task ends, over the store's tasks.");
  berth_buf_printf(b, "berth_redactions_total %lld\n", (long long) ts.redactions);

  head(b, "berth_store_errors_total", "counter", "Requests this process answered with a store error.");
  berth_buf_printf(b, "berth_store_errors_total %llu\n", (unsigned long long) p->store_errors);
  berth_task_stats_clear(&ts);
  if (b->data == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "render the metrics: out of memory");
  return 0;
}
