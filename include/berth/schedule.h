/* Scheduled tasks: a stack's named schedule (a cron expression in a time zone, or one time `at`) that submits an
 * ordinary task, through every check a task submission makes, with triggered_by "schedule:NAME".
 *
 * Exactly once per fire time: the fire's row, unique per (schedule, fire time), is written in the same transaction as
 * the task it submits, so of several hosts (or a restarted one) only the first to commit fires. A refused submission
 * (lock, allowlist, policy) is recorded as the fire's outcome and in the audit trail. Fire times missed while no
 * server ran follow the schedule's catch-up policy: "once" fires one task for the latest missed time, "skip" records
 * them as missed and waits for the next.
 *
 * Ownership: records returned through `out` belong to the caller (berth_schedule_free / berth_schedules_free). */
#ifndef BERTH_SCHEDULE_H
#define BERTH_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/error.h"
#include "berth/store.h"
#include "berth/task_submit.h"

struct cJSON;

/* A fire more than this late is a miss (a server was down), handled by the catch-up policy. */
#define BERTH_SCHEDULE_GRACE_MS 60000

typedef struct berth_schedule {
  int64_t id;
  char *stack, *name; /* the name is unique per stack: [A-Za-z0-9][A-Za-z0-9_.-]{0,62} */
  char *cron;         /* NULL for a one-time schedule */
  char *tz;           /* NULL: UTC */
  int64_t at_ms;      /* one-time schedule: when (unix ms); 0 with cron */
  char *command;
  char *shown_command; /* masked as it was added (berth_schedule_add), so a secret rotated since stays hidden; NULL in
                          schedules added before berth kept it */
  bool skip_init;
  berth_kv *env;
  size_t n_env;
  char *catch_up; /* "once" (default) | "skip" */
  bool paused;
  char *actor, *role; /* who added it: the tasks it submits run as them */
  int64_t next_fire;  /* unix ms; 0 when none (a one-time schedule that fired) */
  int64_t created_at, updated_at;
  /* the latest fire (read with the schedule; 0 / NULL when none) */
  int64_t last_fire;
  char *last_outcome; /* "submitted" | "refused" | "missed" */
  char *last_task_id, *last_message;
} berth_schedule;

void berth_schedule_free(berth_schedule *s); /* accepts NULL */
void berth_schedules_free(berth_schedule **v, size_t n);

/* The JSON form of the CLI's --json and the API (times in ISO 8601 UTC; env values are shown: they are not
 * secrets), its command passed through `shown` (berth_display_secrets of its stack: a command typed with a secret
 * value or a token in it is shown masked, as a task's is). NULL when out of memory. Caller frees. */
struct berth_secrets;
struct cJSON *berth_schedule_to_json(const berth_schedule *s, struct berth_secrets *shown);
/* {"schedules": [...]} of v[0..n), those of stacks keep(stack, arg) admits (keep NULL: all), each as above with the
 * display secrets of every stack. NULL with *err when they cannot be read: never shown unmasked. */
struct cJSON *berth_schedules_json(berth_store *st, berth_schedule **v, size_t n,
                                   bool (*keep)(const char *stack, void *arg), void *arg, berth_error **err);
/* One schedule as berth_schedule_to_json, with its stack's display secrets read here; NULL with *err. */
struct cJSON *berth_schedule_json(berth_store *st, const berth_schedule *s, berth_error **err);
/* The body of POST /v1/stacks/{stack}/schedules: {"name", "cron" | "at" (ISO 8601), "tz", "command", "skip_init",
 * "env": {K: V}, "catch_up"}. Fills a new schedule of stack (validated); BERTH_EINVAL naming the field. */
int berth_schedule_from_json(const struct cJSON *o, const char *stack, berth_schedule **out, berth_error **err);
/* Every field, and the next fire time from now (sets s->next_fire). */
int berth_schedule_validate(berth_schedule *s, int64_t now_ms, berth_error **err);
/* The next fire time of s strictly after after_ms (0 when it has none: a one-time schedule already due). */
int berth_schedule_next(const berth_schedule *s, int64_t after_ms, int64_t *next_ms, berth_error **err);

/* Changes with their admin audit record, in one transaction. add: BERTH_EBUSY when the stack has a schedule of
 * that name, BERTH_ENOTFOUND when the stack does not exist. resume computes the next fire time from now (fires
 * missed while paused are not caught up). */
int berth_schedule_add(berth_store *st, berth_schedule *s, const char *actor, const char *role, berth_error **err);
int berth_schedule_set_paused(berth_store *st, const char *stack, const char *name, bool paused, const char *actor,
                              berth_error **err);
int berth_schedule_remove(berth_store *st, const char *stack, const char *name, const char *actor, berth_error **err);

/* Fires what is due at now_ms. submit is how this process submits a task (the server: its spawner thread);
 * it must pass req on to berth_task_submit unchanged (req->in_tx writes the fire row with the task). Counts of
 * what happened go to the optional out-parameters. */
typedef int (*berth_schedule_submit_fn)(void *ud, berth_store *st, const berth_submit *req, berth_error **err);
int berth_schedule_tick(berth_store *st, int64_t now_ms, berth_schedule_submit_fn submit, void *ud, int *fired,
                        berth_error **err);

/* ---- the store's side (src/lib/store/schedule_store.c) ---- */
int berth_store_schedule_create(berth_store *st, const berth_schedule *s, berth_error **err);
int berth_store_schedule_get(berth_store *st, const char *stack, const char *name, berth_schedule **out,
                             berth_error **err);
/* By stack, then name; stack NULL = every stack. */
int berth_store_schedule_list(berth_store *st, const char *stack, berth_schedule ***out, size_t *n, berth_error **err);
/* Not paused, with a next fire time at or before now_ms. */
int berth_store_schedule_due(berth_store *st, int64_t now_ms, berth_schedule ***out, size_t *n, berth_error **err);
int berth_store_schedule_delete(berth_store *st, const char *stack, const char *name, berth_error **err);
int berth_store_schedule_set_paused(berth_store *st, const char *stack, const char *name, bool paused,
                                    int64_t next_fire, berth_error **err);
/* Moves next_fire from `from` to `to` when it still is `from` (another host may have moved it). */
int berth_store_schedule_advance(berth_store *st, int64_t id, int64_t from, int64_t to, berth_error **err);
/* Records the fire (schedule id, fire time): BERTH_EBUSY when that fire time is recorded already (someone else
 * fired it). task_id and message may be NULL. */
int berth_store_schedule_fire(berth_store *st, int64_t id, int64_t fire_time, const char *outcome, const char *task_id,
                              const char *message, int64_t missed, berth_error **err);
/* *fired: whether that fire time is recorded (by this host or another). */
int berth_store_schedule_fired(berth_store *st, int64_t id, int64_t fire_time, bool *fired, berth_error **err);
/* For the metrics: fires by outcome, and the fire times missed. */
int berth_store_schedule_counts(berth_store *st, int64_t *submitted, int64_t *refused, int64_t *missed,
                                berth_error **err);

#endif
