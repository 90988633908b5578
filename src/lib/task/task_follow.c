/* The follower: reads the log as it grows (woken by the writer through inotify, or NOTIFY on PostgreSQL), looks at the
 * task record when the log is quiet, and checks the supervisor's liveness lock about once a second. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "berth/task_follow.h"
#include "berth/task_queue.h"

#define QUIET_MS 50        /* the record is read again after this much quiet */
#define LIVENESS_ROUNDS 20 /* quiet rounds between liveness checks (~1 s) */
#define OUTAGE_MS 90000    /* a shared store that stops answering is waited for this long (see outage()) */

/* Ended (record terminal, supervisor done) -> 1; still running -> 0; supervisor gone and the record could not be
 * updated -> <0. */
typedef struct waiting {
  berth_follow_wait_fn fn;
  void *userdata;
  char *said;        /* the reason said last */
  bool said_outage;  /* the store's outage was said, and it has not answered the task's record since */
  bool store_failed; /* task_done's error was the store's (its record could not be read) */
} waiting;

static int
task_done(berth_store *st, const char *id, bool check_liveness, waiting *w, berth_error **err)
{
  berth_task *t = NULL;
  int rc = berth_store_task_get(st, id, &t, err);
  w->store_failed = rc == BERTH_EINTERNAL;
  if (rc < 0)
    return rc;
  /* a task in a fleet's queue says why it waits (the reason is computed when the record is read) */
  if (w->fn != NULL && strcmp(t->state, "QUEUED") == 0 && t->reason != NULL
      && (w->said == NULL || strcmp(w->said, t->reason) != 0)) {
    free(w->said);
    w->said = strdup(t->reason);
    w->fn(w->userdata, t->reason);
  }
  const char *home = berth_store_home(st);
  /* done when the task ended and its supervisor finished cleaning up (its last notes are in the log then) */
  if (berth_task_state_is_terminal(t->state)) {
    rc = !berth_task_is_supervised(home, id);
  } else if (check_liveness) {
    berth_error *e = NULL;
    rc = berth_queue_fail_if_orphan(st, NULL, t, &e);
    if (rc < 0)
      rc = berth_error_set(err, BERTH_EINTERNAL,
                           "task %s: its supervisor is gone and the task's record could not be updated: %s", id,
                           e ? e->msg : "unknown error");
    berth_error_free(e);
  }
  berth_task_free(t);
  return rc;
}

/* A follower of a task on PostgreSQL whose store stopped answering (a restart, a failover): the task goes on (its
 * writes are tried again for up to a minute each), so the follower waits for the store too, for up to OUTAGE_MS of
 * failures in a row, says so once through wait_fn, and reads on from where it stopped. Returns true to go on; false
 * (err kept) for a store of one host, another kind of failure, or an outage too long. Clears *err when going on. */
static bool
outage(berth_store *st, bool store_failure, int64_t *since, waiting *w, berth_error **err)
{
  if (!berth_store_is_shared(st) || !store_failure || err == NULL || *err == NULL)
    return false;
  int64_t now = berth_now_ms();
  if (*since == 0) {
    *since = now;
  } else if (now - *since >= OUTAGE_MS) {
    return false;
  }
  if (!w->said_outage) {
    w->said_outage = true;
    if (w->fn != NULL) {
      char *line = NULL;
      if (asprintf(&line, "the store does not answer (%s); following again when it does", (*err)->msg) >= 0)
        w->fn(w->userdata, line);
      free(line);
    }
    free(w->said); /* a reason said before the outage is said again after it */
    w->said = NULL;
  }
  berth_error_clear(err);
  struct timespec ts = { .tv_sec = 1 };
  nanosleep(&ts, NULL);
  return true;
}

int
berth_task_follow(berth_store *st, const char *id, bool follow, const volatile sig_atomic_t *stop,
                  berth_log_record_fn fn, void *userdata, berth_error **err)
{
  return berth_task_follow_waiting(st, id, follow, stop, fn, NULL, userdata, err);
}

int
berth_task_follow_waiting(berth_store *st, const char *id, bool follow, const volatile sig_atomic_t *stop,
                          berth_log_record_fn fn, berth_follow_wait_fn wait_fn, void *userdata, berth_error **err)
{
  waiting w = { wait_fn, userdata, NULL, false, false };
  berth_log_reader *r = NULL;
  if (berth_log_reader_open(st, id, &r, err) < 0)
    return BERTH_EINTERNAL;
  int rc = 0, quiet = 0;
  int64_t down_since = 0;
  for (;;) {
    int n = berth_log_reader_read(r, fn, userdata, err);
    if (n < 0 && follow && outage(st, berth_log_reader_store_failed(r), &down_since, &w, err)) {
      if (stop != NULL && *stop) {
        rc = 1;
        break;
      }
      continue;
    }
    if (n < 0 || !follow) {
      rc = n < 0 ? n : 0;
      break;
    }
    if (stop != NULL && *stop) {
      rc = 1;
      break;
    }
    if (n > 0) {
      down_since = 0; /* the store answered, and the log grows */
      /* a read goes on until it has seen the end of the log as it was: wait for the next write (it wakes the wait
       * at once, also when it came while we read) rather than ask the store again now */
      quiet = 0;
      berth_log_wait(r, QUIET_MS);
      continue;
    }
    /* a queued task in a fleet is only looked at every liveness round: it has no supervisor yet */
    ++quiet;
    int done
        = w.said != NULL && quiet % LIVENESS_ROUNDS != 0 ? 0 : task_done(st, id, quiet % LIVENESS_ROUNDS == 0, &w, err);
    if (done < 0 && outage(st, w.store_failed, &down_since, &w, err)) {
      if (stop != NULL && *stop) {
        rc = 1;
        break;
      }
      continue;
    }
    if (done >= 0) { /* the store answered the task's record: an outage is over */
      down_since = 0;
      w.said_outage = false;
    }
    if (done != 0) {
      if (done > 0) { /* read once more: the last records were written before the final transition */
        berth_error *e = NULL;
        berth_log_reader_read(r, fn, userdata, &e);
        berth_error_free(e);
      }
      rc = done < 0 ? done : 0;
      break;
    }
    berth_log_wait(r, QUIET_MS); /* the next write wakes us at once */
  }
  berth_log_reader_close(r);
  free(w.said);
  return rc;
}
