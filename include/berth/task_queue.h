/* Coordination between berth processes sharing one store: who supervises a task, whose turn it is on a stack, and
 * the sweep of what crashed supervisors left behind.
 *
 * Liveness is an flock(2) on BERTH_HOME/run/task-<id>.lock held by the task's supervisor for its whole life: the
 * kernel drops it the instant that process dies (SIGKILL, power loss), so there is no lease to wait out. The turn on
 * a stack is an flock on BERTH_HOME/run/stack-<name>.lock, taken only by the oldest active task of the stack. */
#ifndef BERTH_TASK_QUEUE_H
#define BERTH_TASK_QUEUE_H

#include <stdbool.h>

#include "berth/docker.h"
#include "berth/error.h"
#include "berth/store.h"

/* Takes the liveness lock of a task (blocking for at most a few seconds). Returns the fd to keep open. */
int berth_task_hold(const char *home, const char *task_id, int *fd_out, berth_error **err);
/* Adopts fd, the task's liveness lock handed over held by the process that started this one
 * (berth_supervisor_start_holding): checks it is that lock file and held through fd. */
int berth_task_adopt_hold(const char *home, const char *task_id, int fd, berth_error **err);
/* True while some process holds the task's liveness lock. */
bool berth_task_is_supervised(const char *home, const char *task_id);
/* Removes the task's liveness lock file, once its record has ended (its holder, before letting go of it): a host
 * that runs tasks for months keeps no file per task it ran. */
void berth_task_forget_local(const char *home, const char *task_id);

/* Says what a waiting task waits for: blocker_id is the task ahead of it on its stack, or NULL for a free slot. */
typedef void (*berth_queue_note_fn)(void *userdata, const char *blocker_id);
/* Waits until task t is the oldest active task of its stack and takes the stack lock (fd returned). While waiting,
 * records the blocking task (blocked_by) and calls note when it changes; tasks ahead whose supervisor died are
 * failed with reason "executor interrupted" (and their containers removed when d is non-NULL). Stops early with
 * BERTH_EBUSY when the task was ended by someone else (e.g. canceled). */
int berth_queue_wait_turn(berth_store *st, berth_docker *d, const berth_task *t, berth_queue_note_fn note,
                          void *userdata, int *stack_fd_out, berth_error **err);

/* Waits for one of the max_parallel global worker slots (flock on BERTH_HOME/run/slot-N.lock) and returns its fd;
 * calls note (with NULL) once when every slot is taken and it has to wait. Stops early with BERTH_EBUSY when the
 * task was ended meanwhile. */
int berth_queue_wait_slot(berth_store *st, const berth_task *t, int max_parallel, berth_queue_note_fn note,
                          void *userdata, int *slot_fd_out, berth_error **err);

/* Fails every active task whose supervisor is gone ("executor interrupted") and removes every container of this
 * store whose task is not supervised. Best effort when Docker is unreachable (tasks are still failed). */
int berth_queue_sweep(berth_store *st, berth_docker *d, berth_error **err);
/* The same, unless some berth process of this store swept less than interval_ms ago (a burst of supervisors
 * starting at once sweeps once; each still checks the task ahead of it while it waits). */
int berth_queue_sweep_if_due(berth_store *st, berth_docker *d, int64_t interval_ms, berth_error **err);
/* On a shared store (PostgreSQL) a supervisor's liveness is judged only from the BERTH_HOME it ran from: a task
 * whose supervisor left no lock in this one runs elsewhere (another host), and is left alone by both.
 * One task: if it is active and its supervisor is gone (past the grace a just-submitted task has), fails it with
 * reason "executor interrupted". Returns 1 if it did, 0 if the task is supervised or over, <0 when the record could
 * not be written (the error says why: a full disk, a store that refuses writes). */
/* Marks task_id as supervised from this BERTH_HOME (its liveness lock file, not held yet), before its supervisor
 * starts: a supervisor that dies before taking the lock is then judged from here, on a shared store too. */
int berth_task_mark_local(const char *home, const char *task_id, berth_error **err);
/* A deleted stack's lock file (home/run/stack-NAME.lock), removed while it is held so that no one holds the file
 * removed; left alone when someone holds it. */
void berth_stack_lock_file_remove(const char *home, const char *stack);
int berth_queue_fail_if_orphan(berth_store *st, berth_docker *d, const berth_task *t, berth_error **err);
/* Makes the next berth_queue_sweep_if_due sweep (e.g. a container could not be removed because Docker was away). */
void berth_queue_sweep_request(const char *home);

#endif
