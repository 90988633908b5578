/* The server's background work: the schedule ticker (once a second: fire what is due) and the webhook deliverers
 * (two threads, so one hanging receiver holds up at most one of them; a request gives up after 10 s). Neither is in
 * a task's path: a task's transition only writes its outbox row. Each thread has its own store handle. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "berth/config.h"
#include "berth/parse.h"
#include "berth/retention.h"
#include "berth/schedule.h"
#include "berth/webhook.h"
#include "server.h"

#define TICK_MS 1000
#define DELIVER_IDLE_MS 250
#define DELIVER_IDLE_MAX_MS 1000
#define DELIVERERS 2
#define PRUNE_EVERY_MS (10 * 60 * 1000)

struct srv_background {
  srv_ctx *srv;
  atomic_bool stop;
  pthread_mutex_t mu; /* with cond: a nap ends at once when the server stops */
  pthread_cond_t cond;
  char owner[128]; /* this process in delivery claims: host:pid */
  pthread_t threads[1 + DELIVERERS];
  size_t n_threads;
};

/* Sleeps ms, or less when the server stops (an idle server's threads wake only for their work). */
static void
nap(srv_background *bg, int ms)
{
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (long) (ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&bg->mu);
  while (!atomic_load(&bg->stop) && pthread_cond_timedwait(&bg->cond, &bg->mu, &until) == 0) {
  } /* 0: woken (the stop, or spuriously); ETIMEDOUT: slept enough */
  pthread_mutex_unlock(&bg->mu);
}

/* Submits through the spawner, whose thread the supervisors' lives are tied to, as the API's submissions do. */
static int
submit_fired(void *ud, berth_store *st, const berth_submit *req, berth_error **err)
{
  srv_ctx *srv = ud;
  (void) st;
  berth_submit copy = *req;
  copy.supervisor_argv = srv->supervisor_argv;
  copy.die_with_parent = true;
  berth_task *t = NULL;
  int rc = srv_spawner_submit(srv->spawner, &copy, &t, err);
  berth_task_free(t);
  return rc;
}

/* One line per fault, not one a second while it lasts (a database down for a minute, whose error text changes as it
 * shuts down and starts again): a kind of work that failed is not said again until it succeeded once in between
 * (quiet_ok). The deliverers share one (one line for all of them). */
typedef struct quiet {
  char last[64]; /* the kind of work said last */
} quiet;

static pthread_mutex_t quiet_mu = PTHREAD_MUTEX_INITIALIZER;
static quiet deliverers_quiet; /* a server's deliverers: one line for all of them */

static void
report(quiet *q, const char *what, berth_error *err)
{
  pthread_mutex_lock(&quiet_mu);
  if (strcmp(what, q->last) != 0) {
    fprintf(stderr, "berth: %s: %s (not repeated while it lasts)\n", what,
            err && err->msg ? err->msg : "unknown error");
    snprintf(q->last, sizeof q->last, "%s", what);
  }
  pthread_mutex_unlock(&quiet_mu);
  berth_error_free(err);
}

static void
quiet_ok(quiet *q)
{
  pthread_mutex_lock(&quiet_mu);
  q->last[0] = '\0';
  pthread_mutex_unlock(&quiet_mu);
}

/* config.json's task_retention, read each time (a change needs no restart); on a fleet every host does it, and
 * whichever comes first finds the work. */
static int
prune_tasks(srv_background *bg, berth_store *st, berth_error **err)
{
  berth_config cfg;
  if (berth_config_load(bg->srv->home, &cfg, err) < 0)
    return -1;
  /* at most 20 batches (10,000 tasks) a run: the schedule ticks and a shutdown wait on this thread; the first run on
   * a store with years of tasks goes on in the next ones */
  berth_prune p = { .older_than_ms = cfg.task_retention_ms, .max_batches = 20 };
  berth_config_clear(&cfg);
  if (p.older_than_ms <= 0)
    return 0;
  berth_prune_result res;
  if (berth_tasks_prune(st, &p, "task_retention", &res, err) < 0)
    return -1;
  if (res.tasks > 0) {
    char when[BERTH_TIME_LEN];
    fprintf(stderr, "berth: task_retention: pruned %lld task%s that ended before %s%s\n", (long long) res.tasks,
            res.tasks == 1 ? "" : "s", berth_format_time(res.before_ms, when, sizeof when),
            res.more ? " (more remain: the next run, in 10 minutes, goes on)" : "");
  }
  return 0;
}

static void *
ticker(void *arg)
{
  srv_background *bg = arg;
  berth_store *st = NULL;
  int64_t pruned = 0;
  quiet q = { "" };
  while (!atomic_load(&bg->stop)) {
    berth_error *err = NULL;
    int64_t now = berth_now_ms();
    if (st == NULL && berth_store_open(bg->srv->home, &st, &err) < 0)
      report(&q, "schedules", err);
    else if (berth_schedule_tick(st, now, submit_fired, bg->srv, NULL, &err) < 0)
      report(&q, "schedules", err);
    else if (now - pruned > PRUNE_EVERY_MS) {
      pruned = now;
      if (berth_store_events_prune(st, now - BERTH_EVENTS_RETENTION_MS, &err) < 0 || prune_tasks(bg, st, &err) < 0)
        report(&q, "retention", err);
      else
        quiet_ok(&q);
    } else {
      quiet_ok(&q);
    }
    nap(bg, TICK_MS);
  }
  berth_store_close(st);
  return NULL;
}

static void *
deliverer(void *arg)
{
  srv_background *bg = arg;
  berth_store *st = NULL;
  int idle_ms = DELIVER_IDLE_MS;
  quiet *q = &deliverers_quiet;
  while (!atomic_load(&bg->stop)) {
    berth_error *err = NULL;
    int sent = 0;
    if (st == NULL && berth_store_open(bg->srv->home, &st, &err) < 0)
      report(q, "webhooks", err);
    else if (berth_webhook_deliver_due(st, bg->owner, &bg->stop, &sent, &err) < 0)
      report(q, "webhooks", err);
    else
      quiet_ok(q);
    /* idle: look less often, up to once a second (every host of a fleet polls the same table) */
    if (sent == 0) {
      nap(bg, idle_ms);
      idle_ms = idle_ms * 2 > DELIVER_IDLE_MAX_MS ? DELIVER_IDLE_MAX_MS : idle_ms * 2;
    } else {
      idle_ms = DELIVER_IDLE_MS;
    }
  }
  berth_store_close(st);
  return NULL;
}

int
srv_background_start(srv_ctx *srv, srv_background **out, berth_error **err)
{
  srv_background *bg = calloc(1, sizeof *bg);
  if (bg == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  curl_global_init(CURL_GLOBAL_DEFAULT); /* before the threads that use curl */
  bg->srv = srv;
  atomic_init(&bg->stop, false);
  pthread_mutex_init(&bg->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&bg->cond, &ca);
  pthread_condattr_destroy(&ca);
  char host[64] = "host";
  gethostname(host, sizeof host - 1);
  snprintf(bg->owner, sizeof bg->owner, "%s:%ld", host, (long) getpid());
  for (int i = 0; i < 1 + DELIVERERS; i++) {
    int e = pthread_create(&bg->threads[bg->n_threads], NULL, i == 0 ? ticker : deliverer, bg);
    if (e != 0) {
      srv_background_stop(bg);
      return berth_error_set_errno(err, BERTH_EINTERNAL, e, "start the server's background threads");
    }
    bg->n_threads++;
  }
  *out = bg;
  return 0;
}

void
srv_background_stop(srv_background *bg)
{
  if (bg == NULL)
    return;
  pthread_mutex_lock(&bg->mu);
  atomic_store(&bg->stop, true);
  pthread_cond_broadcast(&bg->cond);
  pthread_mutex_unlock(&bg->mu);
  for (size_t i = 0; i < bg->n_threads; i++)
    pthread_join(bg->threads[i], NULL);
  pthread_cond_destroy(&bg->cond);
  pthread_mutex_destroy(&bg->mu);
  free(bg);
}
