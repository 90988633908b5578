/* Submitting a task: every check that can fail before anything runs, then the durable QUEUED record, then a
 * supervisor process that owns the task to its end. Shared by the CLI (local mode) and the HTTP server. */
#ifndef BERTH_TASK_SUBMIT_H
#define BERTH_TASK_SUBMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "berth/error.h"
#include "berth/store.h"

typedef struct berth_submit {
  const char *stack;
  const char *command; /* joined command line, run as sh -c */
  bool skip_init;
  const berth_kv *env;
  size_t n_env;
  const berth_kv *secret_env;
  size_t n_secret_env;
  const char *actor;        /* the OS user (local mode) or the API key's name */
  const char *role;         /* "admin", "writer", "reader"; NULL in local mode (the store's owner) */
  const char *triggered_by; /* NULL = actor */
  const char *retry_of;     /* the task this one retries; with command NULL, a retry: stack, command, env and
                               skip_init come from that (ended) task (berth_task_retry) */
  bool die_with_parent;     /* server mode: the supervisor ends with the server (a restart fails it) */
  /* A retry's: the retried task's command and env as they are shown (masked as it was submitted), masked again
   * rather than the command itself (a secret rotated since would show in the retry); NULL: the command itself. */
  const char *shown_command;
  const berth_kv *shown_env;
  size_t n_shown_env;
  /* The front end's command that supervises one task, argv[0] an executable path, NULL-terminated; berth appends
   * "--home HOME TASK_ID". libberth knows no command names. NULL: no supervisor is started here. */
  const char *const *supervisor_argv;
  /* Optional: runs inside the transaction that records the task (t->id set), so its records commit with the task
   * or not at all (a schedule's fire); a failure cancels the submission with nothing recorded. */
  int (*in_tx)(void *ud, berth_store *st, const berth_task *t, berth_error **err);
  void *in_tx_ud;
} berth_submit;

/* Checks (stack exists, command not empty, stack lock, image allowlist, task policies, Docker reachable, image
 * present under pull policy never), records the task QUEUED and starts its supervisor. *out (optional) gets the
 * new task record. Refusals are BERTH_EINVAL / BERTH_ENOTFOUND / BERTH_EDENIED / BERTH_EDOCKER with one line. */
int berth_task_submit(berth_store *st, const berth_submit *req, berth_task **out, berth_error **err);
/* Submits n tasks at once, as n berth_task_submit calls would, except that every one that passes its checks is
 * recorded in ONE transaction (each in its own savepoint): one commit, one fsync, for a burst. Per submission:
 * rcs[i] 0 and outs[i] (caller frees) or rcs[i] < 0 and errs[i] (caller frees). A commit that fails fails all
 * that were in it, with nothing of them stored. Retries (retry_of without command) are submitted alone. */
void berth_task_submit_many(berth_store *st, const berth_submit *const *reqs, size_t n, berth_task **outs, int *rcs,
                            berth_error **errs);

/* Submits task id's command, plain env and --skip-init again as a new task that records retry_of = id (the task must
 * have ended: BERTH_EBUSY otherwise). base gives everything else (actor, role, supervisor, secret env to give again:
 * a task's secret values are wiped when it ends); its stack/command/env fields are ignored. */
int berth_task_retry(berth_store *st, const char *id, const berth_submit *base, berth_task **out, berth_error **err);

/* Cancels a task: QUEUED -> CANCELED; PREPARING/INITIALIZING -> STOPPED (its supervisor then removes the
 * container); PERFORMING is refused (BERTH_EBUSY "performing cannot be stopped"); a finished task is BERTH_EBUSY.
 * Only the task's actor or an admin may cancel (BERTH_EDENIED). *state_out (optional, caller frees) gets the new
 * state. */
int berth_task_cancel(berth_store *st, const char *id, const char *actor, bool is_admin, char **state_out,
                      berth_error **err);

/* The workspace caps in force (0 = the built-in defaults): config.json's workspace_max_bytes/_entries, overridden
 * by the environment of the berth process, BERTH_WORKSPACE_MAX_BYTES and BERTH_WORKSPACE_MAX_ENTRIES. */
struct berth_config;
void berth_workspace_caps(const struct berth_config *cfg, uint64_t *max_bytes, uint64_t *max_entries);

/* Starts argv_prefix + "--home HOME TASK_ID" as the task's supervisor: a daemon (double fork, own session), or with
 * die_with_parent a direct child that the kernel kills when this thread's process dies. */
int berth_supervisor_spawn(const char *const *argv_prefix, const char *home, const char *task_id, bool die_with_parent,
                           berth_error **err);
/* The same; with die_with_parent, *pid_out (optional) gets the child's pid (the caller reaps it). */
int berth_supervisor_start(const char *const *argv_prefix, const char *home, const char *task_id, bool die_with_parent,
                           int *pid_out, berth_error **err);
/* Starts a supervisor that dies with this thread (as die_with_parent) and hands it hold_fd, the task's liveness lock
 * this process holds (berth_task_hold): the child keeps it open across exec ("--hold-fd N" before TASK_ID), so the
 * task is never seen unsupervised in between. The caller closes its own copy afterwards. */
int berth_supervisor_start_holding(const char *const *argv_prefix, const char *home, const char *task_id, int hold_fd,
                                   int *pid_out, berth_error **err);

#endif
