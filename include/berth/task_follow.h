/* Following a task: its stored (redacted) log record by record, live while it runs, until it ends. The one follower
 * behind `task run`, `task logs --follow` in local mode; the server streams the same log with the same wake-up
 * (a file and inotify on SQLite, chunks and LISTEN/NOTIFY on PostgreSQL).
 *
 * A follower never waits on a task nobody runs: when the task is still active but its supervisor is gone (killed,
 * or it died on a full disk), the follower fails the task itself ("executor interrupted") within about a second,
 * and if even that record cannot be written it returns the reason instead of waiting. */
#ifndef BERTH_TASK_FOLLOW_H
#define BERTH_TASK_FOLLOW_H

#include <signal.h>
#include <stdbool.h>

#include "berth/error.h"
#include "berth/store.h"
#include "berth/task_log.h"

/* Hands every record of task `id`'s log to fn; with follow, keeps going until the task has ended and its supervisor
 * finished writing. *stop (may be NULL) is checked between waits. Returns 0 when done, 1 when *stop was set, <0 on
 * an error (the log is unreadable; the supervisor is gone and the record could not be updated). */
int berth_task_follow(berth_store *st, const char *id, bool follow, const volatile sig_atomic_t *stop,
                      berth_log_record_fn fn, void *userdata, berth_error **err);

/* The same, and wait_fn (may be NULL) gets each new reason a task in a fleet's queue waits for ("no live host in pool
 * gpu"), once per change; it is not part of the log. */
typedef void (*berth_follow_wait_fn)(void *userdata, const char *reason);
int berth_task_follow_waiting(berth_store *st, const char *id, bool follow, const volatile sig_atomic_t *stop,
                              berth_log_record_fn fn, berth_follow_wait_fn wait_fn, void *userdata, berth_error **err);

#endif
