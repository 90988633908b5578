/* The life of one task inside its supervisor process. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "berth/parse.h"
#include "berth/actions.h"
#include "berth/allowlist.h"
#include "berth/buf.h"
#include "berth/config.h"
#include "berth/cleanup.h"
#include "berth/docker.h"
#include "berth/redactor.h"
#include "berth/fleet.h"
#include "berth/task_log.h"
#include "berth/task_queue.h"
#include "berth/task_runner.h"
#include "berth/task_submit.h"
#include "berth/reserve.h"
#include "task_identity.h"
#include "berth/workspace.h"
#include "pull_progress.h"

#define PERSIST_CAP (256u * 1024u * 1024u)
#define PASSWD_CAP (4u * 1024u * 1024u)
#define PULL_ATTEMPTS 4
#define REORDER_MS 30        /* how long output waits for the sibling stream's `::add-mask::` (docs/security.md) */
#define LIVE_FLUSH_MS 10     /* the most released output waits before it is handed to the log */
#define END_WRITE_TRIES 60   /* a task's end: tried once a second while the store does not answer (docs/fleet.md) */
#define PHASE_WRITE_TRIES 60 /* the same for the move to the next phase */

struct runner;
/* One per output stream: what a redactor hands on goes to the log as that stream's records. */
typedef struct stream_sink {
  struct runner *r;
  int kind; /* BERTH_LOG_STDOUT or BERTH_LOG_STDERR */
} stream_sink;

typedef struct runner {
  berth_store *st;
  berth_config cfg;
  berth_docker *d;
  berth_task *t;
  berth_stack *s;
  berth_task_log *log;
  berth_secrets *secrets;
  berth_redactor *out, *err; /* one per output stream */
  berth_outwin *win;         /* in front of both: the daemon may swap the streams' order */
  task_identity ident;       /* OIDC token and credential helpers' values (secrets) */
  stream_sink out_sink, err_sink;
  int phase;
  char *container;
  char *workdir;
  unsigned uid, gid;
  bool uploaded;
  int64_t deadline_ms; /* run timeout */
  int64_t idle_ms;     /* idle timeout */
  int64_t last_output_ms;
  int64_t last_state_check_ms;
  int64_t last_flush_ms;
  int64_t exec_started_s; /* of the last exec: where the daemon's event log is read from */
  int64_t exec_ended_ms;  /* when the last exec (the command, a hook) ended: the task's end time */
  bool stopped;           /* someone moved the task to STOPPED */
  bool ended;             /* its record is over (this runner wrote its end, or it was ended by someone else) */
  bool claimed;           /* a fleet host claimed it: its writes carry the claim (berth/fleet.h) */
  bool revoked;           /* ... and the claim was revoked (the host was declared lost): stop, write nothing */
  bool given_up;          /* ... or the host running it gave it up (shutting down, or its lease ran out) */
  berth_error *end_err;   /* the task's end could not be written: what failed last */
  int64_t last_claim_check_ms;
  berth_task_ctl *ctl;      /* a fleet host's thread runs it (NULL in a supervisor process) */
  bool log_failed;          /* a write to the task log failed (a full disk): the command is stopped */
  int64_t log_kept;         /* output bytes recorded (config max_log_bytes caps them) */
  int64_t log_dropped;      /* output bytes past the cap: counted, not kept */
  const char *timeout_kind; /* set when a timeout fired */
} runner;

/* ---- log sinks ---- */

/* The output can't be recorded: stop the command, and free the disk reserve so that the task's end can be. */
static void
log_fault(runner *r)
{
  if (!r->log_failed)
    berth_reserve_release(berth_store_home(r->st));
  r->log_failed = true;
}

static int
log_fault_error(runner *r, berth_error **err)
{
  int e = berth_task_log_failed_errno(r->log);
  if (e == ENOSPC || e == EDQUOT)
    return berth_error_set(err, BERTH_EINTERNAL,
                           "no space left on the disk under BERTH_HOME (%s): the task's output could not be recorded",
                           berth_store_home(r->st));
  const char *msg = berth_task_log_failed_msg(r->log);
  if (msg != NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "the task's output could not be recorded in its log: %s", msg);
  return berth_error_set_errno(err, BERTH_EINTERNAL, e, "the task's output could not be recorded in its log");
}

static void note(struct runner *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
sink_to_log(void *ud, const char *data, size_t len)
{
  stream_sink *ss = ud;
  runner *r = ss->r;
  if (r->log_failed)
    return 0; /* the rest of the output is lost with the log: it must not eat the space freed for the task's end */
  int64_t cap = r->cfg.max_log_bytes;
  if (cap > 0 && r->log_kept + (int64_t) len > cap) { /* the task runs on; what is past the cap is counted */
    size_t keep = (size_t) (cap - r->log_kept);
    r->log_dropped += (int64_t) (len - keep);
    if (keep == 0)
      return 0;
    len = keep;
  }
  r->log_kept += (int64_t) len;
  berth_error *e = NULL;
  int rc = berth_task_log_write(r->log, ss->kind, r->phase, data, len, &e);
  if (rc == 0 && cap > 0 && r->log_kept == cap) {
    char size[32];
    berth_format_size_approx(cap, size, sizeof size);
    note(r, "\n==> the output reached max_log_bytes (%s): the task runs on, its further output is not kept", size);
  }
  berth_error_free(e);
  if (rc < 0)
    log_fault(ss->r);
  return rc;
}

/* A line of berth's own, redacted like everything else (it may echo a command or a daemon error). */
static void
note(runner *r, const char *fmt, ...)
{
  char *msg = NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&msg, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  size_t rlen = 0;
  char *red = r->secrets ? berth_secrets_redact_string(r->secrets, msg, (size_t) n, &rlen) : NULL;
  const char *text = red ? red : r->secrets ? BERTH_NOT_SHOWN : msg;
  size_t tlen = red ? rlen : strlen(text);
  berth_buf line;
  berth_buf_init(&line, tlen + 2);
  berth_buf_append(&line, text, tlen);
  berth_buf_append(&line, "\n", 1);
  berth_error *e = NULL;
  berth_task_log_write(r->log, BERTH_LOG_NOTE, r->phase, line.data, line.len, &e);
  berth_task_log_flush(r->log, &e);
  berth_error_free(e);
  berth_buf_free(&line);
  free(red);
  free(msg);
}

static void
set_phase(runner *r, int phase)
{
  r->phase = phase;
  if (r->ctl != NULL)
    atomic_store(&r->ctl->phase, phase);
}

/* The host running the task in one of its threads gave it up (shutting down, or it lost its lease): like a revoked
 * claim, the container is ended and nothing more is written; the host records the task's end. */
static bool
abandoned(runner *r)
{
  if (r->ctl != NULL && atomic_load(&r->ctl->abandon))
    r->revoked = r->given_up = true;
  return r->revoked;
}

/* at: when it happened (unix ms; 0: now) */
static int
transition_at(runner *r, const char *state, int phase, const char *note_text, const char *reason, int exit_code,
              int64_t at, berth_error **err)
{
  if (abandoned(r))
    return berth_error_set(err, BERTH_EBUSY, "this host gave the task up (it is shutting down or lost its lease)");
  /* what the log holds so far is stored before the record moves on: a follower that sees the new state and reads
   * the log to its end reads all of it */
  berth_error *fe = NULL;
  if (berth_task_log_flush(r->log, &fe) < 0)
    log_fault(r);
  berth_error_free(fe);
  /* the note and the reason as recorded: masked, or not shown at all when they could not be masked */
  char *red_note
      = r->secrets && note_text ? berth_secrets_redact_string(r->secrets, note_text, strlen(note_text), NULL) : NULL;
  char *red_reason
      = r->secrets && reason ? berth_secrets_redact_string(r->secrets, reason, strlen(reason), NULL) : NULL;
  const char *shown_note = !r->secrets || !note_text ? note_text : red_note ? red_note : BERTH_NOT_SHOWN;
  const char *shown_reason = !r->secrets || !reason ? reason : red_reason ? red_reason : BERTH_NOT_SHOWN;
  int rc
      = berth_action_task_transition_at(r->st, r->t->id, state, "berth", shown_note, shown_reason, exit_code, at, err);
  free(red_note);
  free(red_reason);
  set_phase(r, phase);
  return rc;
}

static int
transition(runner *r, const char *state, int phase, const char *note_text, const char *reason, int exit_code,
           berth_error **err)
{
  return transition_at(r, state, phase, note_text, reason, exit_code, 0, err);
}

static bool claim_lost(runner *r, bool force);

/* After a try whose answer was lost with the connection: whether its commit went through. */
static bool
moved_already(runner *r, const char *state)
{
  berth_task *now = NULL;
  berth_error *e = NULL;
  bool moved = berth_store_task_get(r->st, r->t->id, &now, &e) == 0 && strcmp(now->state, state) == 0;
  berth_task_free(now);
  berth_error_free(e);
  return moved;
}

/* The move to the next phase (PREPARING, INITIALIZING, PERFORMING). A store that does not answer (a database
 * restarting) is tried again every second for up to PHASE_WRITE_TRIES s while the task is still this runner's, so a
 * restart at a phase's boundary delays the task instead of failing it; a refusal (the task was stopped or its claim
 * revoked meanwhile) is not retried. */
static int
next_phase(runner *r, const char *state, int phase, berth_error **err)
{
  int was = r->phase;
  for (int tries = 1;; tries++) {
    berth_error *e = NULL;
    int rc = tries > 1 && moved_already(r, state) ? (set_phase(r, phase), 0)
                                                  : transition(r, state, phase, NULL, NULL, -1, &e);
    if (rc == 0 || rc != BERTH_EINTERNAL || tries >= PHASE_WRITE_TRIES || abandoned(r) || claim_lost(r, true)) {
      if (rc < 0)
        set_phase(r, was); /* not moved: the task ends from the phase the store has */
      if (rc < 0 && err && *err == NULL)
        *err = e;
      else
        berth_error_free(e);
      return rc;
    }
    berth_error_free(e);
    set_phase(r, was); /* not moved yet: the host's shutdown treats the task by the phase the store has */
    struct timespec ts = { .tv_sec = 1 };
    nanosleep(&ts, NULL);
  }
}

/* ---- secrets ---- */

static int
setup_secrets(runner *r, berth_error **err)
{
  r->secrets = berth_secrets_new(r->cfg.min_secret_length, err);
  if (r->secrets == NULL)
    return BERTH_EINTERNAL;
  int prc = berth_secrets_use_builtin(r->secrets, r->cfg.builtin_patterns, err);
  for (size_t i = 0; prc == 0 && i < r->cfg.n_patterns; i++)
    prc = berth_secrets_add_pattern(r->secrets, r->cfg.pattern_names[i], r->cfg.patterns[i], err);
  if (prc < 0)
    return prc;
  const berth_kv *sets[2] = { r->s->secret_env, r->t->secret_env };
  size_t counts[2] = { r->s->n_secret_env, r->t->n_secret_env };
  for (int k = 0; k < 2; k++)
    for (size_t i = 0; i < counts[k]; i++) {
      const char *v = sets[k][i].value ? sets[k][i].value : "";
      int rc = berth_secrets_add_value(r->secrets, sets[k][i].key, v, strlen(v), err);
      if (rc < 0)
        return rc;
      if (rc == 1)
        note(r, "warning: secret variable %s is too short to be masked in the output", sets[k][i].key);
    }
  /* the stdout of init commands and hooks is stderr to the task's follower: only the command's own stdout is the
   * task's stdout (`berth task run s -- terraform output -json > o.json` is a valid file); see perform() */
  r->out_sink = (stream_sink){ .r = r, .kind = BERTH_LOG_STDERR };
  r->err_sink = (stream_sink){ .r = r, .kind = BERTH_LOG_STDERR };
  r->out = berth_redactor_new(r->secrets, sink_to_log, &r->out_sink, err);
  if (r->out == NULL)
    return BERTH_EINTERNAL;
  r->err = berth_redactor_new(r->secrets, sink_to_log, &r->err_sink, err);
  if (r->err == NULL)
    return BERTH_EINTERNAL;
  berth_redactor *rs[2] = { r->out, r->err };
  r->win = berth_outwin_new(r->secrets, rs, 2, REORDER_MS, err);
  return r->win == NULL ? BERTH_EINTERNAL : 0;
}

/* ---- exec ---- */

static int
on_exec_output(void *ud, int stream, const char *data, size_t len)
{
  runner *r = ud;
  r->last_output_ms = berth_now_ms();
  berth_error *e = NULL;
  int rc = berth_outwin_push(r->win, stream == BERTH_STREAM_STDOUT ? 0 : 1, data, len, r->last_output_ms, &e);
  berth_error_free(e);
  r->last_output_ms = berth_now_ms(); /* after a push that waited for the log's store: that wait is not idle time */
  return rc;
}

/* True once the task was stopped from outside (berth task cancel); checked at most once a second. */
static bool
stop_requested(runner *r, bool force)
{
  int64_t now = berth_now_ms();
  if (r->stopped || (!force && now - r->last_state_check_ms < 1000))
    return r->stopped;
  r->last_state_check_ms = now;
  berth_task *t = NULL;
  berth_error *e = NULL;
  if (berth_store_task_get(r->st, r->t->id, &t, &e) == 0 && strcmp(t->state, "STOPPED") == 0)
    r->stopped = true;
  berth_error_free(e);
  berth_task_free(t);
  return r->stopped;
}

/* True once the host's claim on the task was revoked (checked at most once a second, unless force). */
static bool
claim_lost(runner *r, bool force)
{
  int64_t now = berth_now_ms();
  if (abandoned(r) || !r->claimed || (!force && now - r->last_claim_check_ms < 1000))
    return r->revoked;
  r->last_claim_check_ms = now;
  berth_error *e = NULL;
  if (berth_store_claim_valid(r->st, r->t->id, &e) == 0)
    r->revoked = true;
  berth_error_free(e);
  return r->revoked;
}

static int
on_exec_tick(void *ud)
{
  runner *r = ud;
  int64_t now = berth_now_ms();
  /* live output: what the window releases is in the log within LIVE_FLUSH_MS (the tick runs at least every 10 ms,
   * and on every read of the stream: pushing on each would make a chunk, a round trip and a NOTIFY of every 30-40 KB
   * a fast stream delivers) */
  berth_error *fe = NULL;
  int released = berth_outwin_release(r->win, now, false, &fe);
  if (released < 0) {
    log_fault(r);
  } else if (now - r->last_flush_ms >= LIVE_FLUSH_MS) {
    /* handed to the log's writer (PostgreSQL: its own thread), so the stream is read on while the chunk is stored */
    if (berth_task_log_push(r->log, &fe) < 0)
      log_fault(r);
    r->last_flush_ms = now;
  }
  berth_error_free(fe);
  int64_t after = berth_now_ms();
  if (after - now >= 1000)
    r->last_output_ms = after; /* the log waited for the store meanwhile, and the stream was not read: not idle time */
  now = after;
  if (r->log_failed)
    return 1;
  if (r->phase != BERTH_PHASE_PERFORMING && stop_requested(r, false))
    return 1;
  if (claim_lost(r, false))
    return 1;
  if (now >= r->deadline_ms) {
    r->timeout_kind = "run";
    return 1;
  }
  if (r->idle_ms > 0 && now - r->last_output_ms >= r->idle_ms) {
    r->timeout_kind = "idle";
    return 1;
  }
  return 0;
}

/* Runs argv in the container's working directory, streaming output. *exit_code gets its status. env (NULL or
 * NULL-terminated "K=V") is the exec's own: it is not part of the container's configuration. */
static int
run_exec_env(runner *r, const char *const *argv, const char *const *env, int *exit_code, berth_error **err)
{
  cleanup_free char *eid = NULL;
  r->exec_ended_ms = 0; /* an exec that cannot be made (Docker not answering) leaves the task's end to be now */
  int rc = berth_docker_exec_create(r->d, r->container, argv, env, r->workdir, NULL, &eid, err);
  if (rc < 0)
    return rc;
  r->last_output_ms = berth_now_ms();
  r->exec_started_s = (int64_t) time(NULL);
  rc = berth_docker_exec_start(r->d, eid, on_exec_output, r, on_exec_tick, r, err);
  r->exec_ended_ms = berth_now_ms(); /* before the log's flush, which waits for a store that does not answer */
  berth_error *fe = NULL;
  berth_outwin_release(r->win, 0, true, &fe);
  berth_error_clear(&fe);
  berth_redactor_flush(r->out, &fe);
  berth_error_clear(&fe);
  berth_redactor_flush(r->err, &fe);
  berth_error_clear(&fe);
  if (berth_task_log_flush(r->log, &fe) < 0)
    log_fault(r);
  berth_error_free(fe);
  if (r->log_failed) {
    berth_error_clear(err);
    return log_fault_error(r, err);
  }
  if (rc == 1 && r->stopped)
    return berth_error_set(err, BERTH_EBUSY, "stopped on request");
  if (rc == 1 && r->revoked)
    return berth_error_set(err, BERTH_EBUSY,
                           r->given_up ? "this host gave the task up (it is shutting down, or its lease ran out)"
                                       : "this host lost its claim on the task (declared lost by the fleet)");
  if (rc == 1)
    return BERTH_ETIMEOUT;
  if (rc == BERTH_EDOCKER && !berth_docker_alive(r->d))
    return berth_error_wrap(err, "the Docker daemon stopped while the command ran");
  if (rc < 0)
    return rc;
  berth_exec_state es;
  rc = berth_docker_exec_inspect(r->d, eid, &es, err);
  if (rc == BERTH_ENOTFOUND) { /* the exec is gone: with its container, or with the daemon that knew it */
    berth_error_clear(err);
    berth_container_state cs;
    int crc = berth_docker_container_inspect(r->d, r->container, &cs, NULL, err);
    berth_error_clear(err);
    if (crc == BERTH_ENOTFOUND)
      return berth_error_set(err, BERTH_EDOCKER, "the container was removed while the command ran");
    return berth_error_set(err, BERTH_EDOCKER, "the Docker daemon restarted while the command ran (its container %s)",
                           crc == 0 && !cs.running ? "was stopped" : "lost the command");
  }
  if (rc == BERTH_EDOCKER && !berth_docker_alive(r->d)) {
    berth_error_clear(err);
    return berth_error_set(err, BERTH_EDOCKER, "the Docker daemon stopped while the command ran");
  }
  if (rc < 0)
    return rc;
  *exit_code = es.has_exit_code ? es.exit_code : -1;
  return 0;
}

static int
run_exec(runner *r, const char *const *argv, int *exit_code, berth_error **err)
{
  return run_exec_env(r, argv, NULL, exit_code, err);
}

/* A phase script: sources the environment exported by earlier phases, runs each command in this shell (so their
 * exports stay), stops at the first failure, and saves the exported environment for the next phase. It lives in
 * /dev/shm (memory) when the container has it. */
#define ENV_PROLOGUE                                                                                                   \
  "__berth_env=/dev/shm/.berth-env; { [ -d /dev/shm ] && [ -w /dev/shm ]; } || __berth_env=/tmp/.berth-env\n"          \
  "if [ -r \"$__berth_env\" ]; then . \"$__berth_env\"; fi\n"

static char *
phase_script(const berth_strv *a, const berth_strv *b)
{
  berth_buf s;
  berth_buf_init(&s, 16u << 20);
  berth_buf_append(&s, ENV_PROLOGUE, strlen(ENV_PROLOGUE));
  const berth_strv *lists[2] = { a, b };
  for (int k = 0; k < 2; k++)
    for (size_t i = 0; lists[k] && i < lists[k]->n; i++)
      berth_buf_printf(&s, "{ %s\n} || exit $?\n", lists[k]->v[i]);
  berth_buf_printf(&s, "umask 077; export -p > \"$__berth_env\"\n");
  return berth_buf_steal(&s);
}

/* Runs a hook/init list as one exec; returns BERTH_ETIMEOUT, <0 docker trouble, else 0 with *status. */
static int
run_phase_list(runner *r, const char *label, const berth_strv *a, const berth_strv *b, int *status, berth_error **err)
{
  size_t n = (a ? a->n : 0) + (b ? b->n : 0);
  *status = 0;
  if (n == 0)
    return 0;
  note(r, "==> %s (%zu command%s)", label, n, n == 1 ? "" : "s");
  cleanup_free char *script = phase_script(a, b);
  const char *argv[] = { "sh", "-c", script, NULL };
  return run_exec(r, argv, status, err);
}

/* ---- waiting ---- */

/* A queued task says what it waits for, once per thing it waits for (berth_queue_note_fn). */
static void
queue_note(void *ud, const char *blocker_id)
{
  runner *r = ud;
  int max = berth_max_parallel_tasks(&r->cfg);
  if (blocker_id)
    note(r, "queued: waiting for task %s, ahead of this one on stack %s, to end", blocker_id, r->t->stack);
  else
    note(r,
         "queued: waiting for a free slot: %d task%s already running, the most this host runs at once "
         "(max_parallel_tasks)",
         max, max == 1 ? " is" : "s are");
}

/* ---- image, container ---- */

typedef struct pull_watch {
  runner *r;
  berth_pull_progress progress;
} pull_watch;

/* The pull's own summary lines as they come; the layers' progress summed up every few seconds (a line per layer
 * event would flood the log), and once more when the summary lines begin. */
static void
on_pull_progress(void *ud, const char *status, const char *id, int64_t current, int64_t total)
{
  pull_watch *w = ud;
  char line[128];
  if (id != NULL)
    berth_pull_progress_add(&w->progress, status, id, current, total);
  if (berth_pull_progress_line(&w->progress, berth_now_ms(), id == NULL, line, sizeof line))
    note(w->r, "pull: %s", line);
  if (id == NULL)
    note(w->r, "pull: %s", status);
}

static int
resolve_image(runner *r, berth_error **err)
{
  const char *img = r->s->image;
  const char *policy = r->s->pull_policy ? r->s->pull_policy : "if-not-present";
  bool present = berth_docker_image_inspect(r->d, img, NULL, err) == 0;
  if (!present && (*err)->code != BERTH_ENOTFOUND)
    return (*err)->code;
  berth_error_clear(err);
  if (strcmp(policy, "never") == 0) {
    if (!present)
      return berth_error_set(err, BERTH_ENOTFOUND, "image `%s` is not present and the pull policy is never", img);
    note(r, "image %s is present (pull policy never)", img);
    return 0;
  }
  if (present && strcmp(policy, "if-not-present") == 0) {
    note(r, "image %s is present", img);
    return 0;
  }
  for (int attempt = 1;; attempt++) {
    bool transient = false;
    note(r, "pulling %s (attempt %d of %d)", img, attempt, PULL_ATTEMPTS);
    pull_watch w = { .r = r };
    berth_pull_progress_init(&w.progress);
    int rc = berth_docker_image_pull(r->d, img, on_pull_progress, &w, &transient, err);
    if (rc == 0)
      return 0;
    if (!transient || attempt == PULL_ATTEMPTS) {
      if (present && strcmp(policy, "always") == 0 && transient) {
        note(r, "warning: %s; using the local image", (*err)->msg);
        berth_error_clear(err);
        return 0;
      }
      return rc;
    }
    note(r, "pull failed (%s); retrying in %d s", (*err)->msg, 1 << (attempt - 1));
    berth_error_clear(err);
    for (int waited = 0; waited < (10 << (attempt - 1)); waited++) {
      if (stop_requested(r, false))
        return berth_error_set(err, BERTH_EBUSY, "stopped on request");
      if (claim_lost(r, false))
        return berth_error_set(err, BERTH_EBUSY, "this host gave the task up");
      usleep(100000);
    }
  }
}

/* The allowlist again, right before anything is pulled or created: the rules may have changed since submit. */
static int
check_image_allowed(runner *r, berth_error **err)
{
  berth_image_decision dec;
  int rc = berth_allowlist_check(r->st, r->s->image, &dec, err);
  if (rc < 0)
    return rc;
  if (!dec.allowed)
    rc = berth_error_set(err, BERTH_EDENIED, "%s", dec.reason ? dec.reason : "image not allowed");
  berth_image_decision_clear(&dec);
  return rc;
}

static void
add_env(cJSON *arr, const char *k, const char *v)
{
  char *s = NULL;
  if (asprintf(&s, "%s=%s", k, v ? v : "") >= 0) {
    cJSON_AddItemToArray(arr, cJSON_CreateString(s));
    explicit_bzero(s, strlen(s));
    free(s);
  }
}

static cJSON *
container_body(runner *r)
{
  const berth_stack *s = r->s;
  cJSON *b = cJSON_CreateObject();
  cJSON_AddStringToObject(b, "Image", s->image);
  cJSON *ep = cJSON_AddArrayToObject(b, "Entrypoint");
  cJSON_AddItemToArray(ep, cJSON_CreateString("/bin/sh"));
  cJSON_AddItemToArray(ep, cJSON_CreateString("-c"));
  cJSON *cmd = cJSON_AddArrayToObject(b, "Cmd");
  /* berth's keep-alive: the image's ENTRYPOINT/CMD are ignored; commands run as execs */
  cJSON_AddItemToArray(cmd, cJSON_CreateString("trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"));
  cJSON *env = cJSON_AddArrayToObject(b, "Env");
  for (size_t i = 0; i < s->n_env; i++)
    add_env(env, s->env[i].key, s->env[i].value);
  for (size_t i = 0; i < r->t->n_env; i++)
    add_env(env, r->t->env[i].key, r->t->env[i].value);
  for (size_t i = 0; i < s->n_secret_env; i++)
    add_env(env, s->secret_env[i].key, s->secret_env[i].value);
  for (size_t i = 0; i < r->t->n_secret_env; i++)
    add_env(env, r->t->secret_env[i].key, r->t->secret_env[i].value);
  if (r->ident.token != NULL) {
    add_env(env, "BERTH_OIDC_TOKEN_FILE", BERTH_OIDC_TOKEN_PATH);
    if (s->oidc_aws_role != NULL) {
      add_env(env, "AWS_WEB_IDENTITY_TOKEN_FILE", BERTH_OIDC_TOKEN_PATH);
      add_env(env, "AWS_ROLE_ARN", s->oidc_aws_role);
    }
  }
  add_env(env, "BERTH_TASK_ID", r->t->id);
  add_env(env, "BERTH_STACK", s->name);
  add_env(env, "BERTH_TRIGGERED_BY", r->t->triggered_by ? r->t->triggered_by : r->t->actor);
  add_env(env, "BERTH_RUN_TYPE", "TASK");
  add_env(env, "BERTH_WORKSPACE", BERTH_WORKSPACE_DIR);
  cJSON *labels = cJSON_AddObjectToObject(b, "Labels");
  cJSON_AddStringToObject(labels, "berth.managed", "true");
  cJSON_AddStringToObject(labels, "berth.task", r->t->id);
  cJSON_AddStringToObject(labels, "berth.stack", s->name);
  cJSON_AddStringToObject(labels, "berth.instance", berth_store_instance_id(r->st));
  if (r->claimed && r->t->host != NULL) /* a restarted host removes what it left behind by this label */
    cJSON_AddStringToObject(labels, "berth.host", r->t->host);
  cJSON_AddBoolToObject(b, "Tty", 0);
  cJSON_AddBoolToObject(b, "OpenStdin", 0);
  cJSON_AddBoolToObject(b, "AttachStdout", 0);
  cJSON_AddBoolToObject(b, "AttachStderr", 0);
  cJSON *hc = cJSON_AddObjectToObject(b, "HostConfig");
  const char *net
      = s->network && (strcmp(s->network, "bridge") == 0 || strcmp(s->network, "host") == 0) ? s->network : "none";
  cJSON_AddStringToObject(hc, "NetworkMode", net);
  cJSON *cd = cJSON_AddArrayToObject(hc, "CapDrop");
  cJSON_AddItemToArray(cd, cJSON_CreateString("ALL"));
  cJSON *so = cJSON_AddArrayToObject(hc, "SecurityOpt");
  cJSON_AddItemToArray(so, cJSON_CreateString("no-new-privileges"));
  int64_t mem = s->memory_bytes > 0 ? s->memory_bytes : r->cfg.default_memory;
  cJSON_AddNumberToObject(hc, "Memory", (double) mem);
  cJSON_AddNumberToObject(hc, "MemorySwap", (double) mem); /* equal to Memory: no swap */
  cJSON_AddNumberToObject(hc, "PidsLimit", (double) (s->pids > 0 ? s->pids : r->cfg.default_pids));
  int64_t cpus = s->nano_cpus > 0 ? s->nano_cpus : r->cfg.default_nano_cpus;
  if (cpus > 0)
    cJSON_AddNumberToObject(hc, "NanoCpus", (double) cpus);
  cJSON_AddBoolToObject(hc, "Init", 1);
  if (r->ctl != NULL && r->ctl->alive_path != NULL) { /* Binds: a source the daemon cannot see is no error */
    char bind[4200];
    snprintf(bind, sizeof bind, "%s:" BERTH_ALIVE_TARGET ":ro", r->ctl->alive_path);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(hc, "Binds"), cJSON_CreateString(bind));
  }
  cJSON_AddBoolToObject(hc, "Privileged", 0);
  cJSON_AddBoolToObject(hc, "AutoRemove", 0);
  cJSON *lc = cJSON_AddObjectToObject(hc, "LogConfig");
  cJSON_AddStringToObject(lc, "Type", "none");
  return b;
}

/* A fleet host's watch of its liveness (berth_task_ctl.alive_path), a background exec in the container: once it has
 * read the counter, a counter that stays the same for the limit (by /proc/uptime, whatever the CPU) ends the container
 * (its init, then every process it may signal). The watch is separate from the keep-alive: if it cannot run (no
 * /proc/uptime, a fork refused at the pids limit), only the watch is lost, never the task. */
static void
start_watch(runner *r)
{
  if (r->ctl == NULL || r->ctl->alive_path == NULL)
    return;
  char script[640];
  snprintf(script, sizeof script,
           "last=; t=; while :; do read -r up _ < /proc/uptime || exit 0; now=${up%%.*}; cur=;"
           " read -r cur < " BERTH_ALIVE_TARGET " 2>/dev/null;"
           " if [ -n \"$cur\" ] && [ \"$cur\" != \"$last\" ]; then last=$cur; t=$now; fi;"
           " if [ -n \"$t\" ] && [ $((now - t)) -ge %d ]; then kill -TERM 1; sleep 2; kill -KILL -1; exit 0; fi;"
           " sleep 1; done",
           r->ctl->alive_limit_s);
  const char *argv[] = { "sh", "-c", script, NULL };
  char *eid = NULL;
  berth_error *e = NULL;
  if (berth_docker_exec_create(r->d, r->container, argv, NULL, NULL, NULL, &eid, &e) < 0
      || berth_docker_exec_start_detached(r->d, eid, &e) < 0)
    note(r,
         "warning: the watch of this host's liveness could not start (%s): the task's commands do not end with the "
         "host",
         e ? e->msg : "?");
  berth_error_free(e);
  free(eid);
}

/* ---- the image user: the workspace must belong to it ---- */

static int
passwd_sink(void *ud, const char *data, size_t len)
{
  return berth_buf_append(ud, data, len);
}

/* Looks `name` up in the container's /etc/passwd (read with GET archive, before start). */
static bool
lookup_passwd(runner *r, const char *name, unsigned *uid, unsigned *gid)
{
  berth_buf tar;
  berth_buf_init(&tar, PASSWD_CAP);
  berth_error *e = NULL;
  bool found = false;
  if (berth_docker_archive_get(r->d, r->container, "/etc/passwd", passwd_sink, &tar, &e) == 0 && tar.len > 0) {
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    struct archive_entry *ent;
    if (archive_read_open_memory(a, tar.data, tar.len) == ARCHIVE_OK
        && archive_read_next_header(a, &ent) == ARCHIVE_OK) {
      berth_buf text;
      berth_buf_init(&text, PASSWD_CAP);
      char chunk[8192];
      ssize_t n;
      while ((n = archive_read_data(a, chunk, sizeof chunk)) > 0)
        berth_buf_append(&text, chunk, (size_t) n);
      char *save = NULL;
      for (char *line = text.data ? strtok_r(text.data, "\n", &save) : NULL; line && !found;
           line = strtok_r(NULL, "\n", &save)) {
        char *f[7] = { 0 };
        char *p = line;
        for (int i = 0; i < 7 && p; i++) {
          f[i] = p;
          p = strchr(p, ':');
          if (p)
            *p++ = '\0';
        }
        if (f[0] && f[3] && strcmp(f[0], name) == 0) {
          *uid = (unsigned) strtoul(f[2], NULL, 10);
          *gid = (unsigned) strtoul(f[3], NULL, 10);
          found = true;
        }
      }
      berth_buf_free(&text);
    }
    archive_read_free(a);
  }
  berth_error_free(e);
  berth_buf_free(&tar);
  return found;
}

static void
resolve_user(runner *r, const cJSON *image)
{
  const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(image, "Config");
  const cJSON *u = cJSON_GetObjectItemCaseSensitive(cfg, "User");
  r->uid = r->gid = 0;
  if (!cJSON_IsString(u) || u->valuestring[0] == '\0')
    return;
  char user[256];
  snprintf(user, sizeof user, "%s", u->valuestring);
  char *group = strchr(user, ':');
  if (group)
    *group++ = '\0';
  char *end = NULL;
  unsigned long v = strtoul(user, &end, 10);
  bool numeric = end && *end == '\0' && user[0];
  if (numeric) {
    r->uid = (unsigned) v;
    r->gid = (unsigned) v;
  } else if (!lookup_passwd(r, user, &r->uid, &r->gid)) {
    note(r, "warning: user `%s` of image %s not found in its /etc/passwd; the workspace belongs to root", user,
         r->s->image);
    return;
  }
  if (group) {
    unsigned long g = strtoul(group, &end, 10);
    if (end && *end == '\0')
      r->gid = (unsigned) g;
  }
}

/* ---- workspace ---- */

static void
on_ws_warning(void *ud, const char *msg)
{
  note(ud, "warning: %s", msg);
}

static ssize_t
ws_produce(void *ud, char *buf, size_t len, berth_error **err)
{
  return berth_ws_stream_read(ud, buf, len, err);
}

static int
upload_workspace(runner *r, berth_error **err)
{
  cleanup_free char *state_dir = NULL;
  int rc = berth_state_latest(r->st, r->s->name, &state_dir, err);
  if (rc < 0)
    return rc;
  berth_ws_opts o = { .project_dir = r->s->project_dir,
                      .prefix = &BERTH_SOURCE_DIR[1],
                      .overlay_dir = state_dir,
                      .overlay_subdir = r->s->subdir,
                      .uid = r->uid,
                      .gid = r->gid,
                      .warn = on_ws_warning,
                      .warn_userdata = r };
  berth_workspace_caps(&r->cfg, &o.max_bytes, &o.max_entries);
  berth_ws_stream *ws = NULL;
  rc = berth_ws_stream_open(&o, &ws, err);
  if (rc < 0)
    return rc;
  rc = berth_docker_archive_put(r->d, r->container, "/", false, ws_produce, ws, err);
  if (rc == 0) {
    note(r, "workspace uploaded: %llu entries, %llu bytes%s", (unsigned long long) berth_ws_stream_entries(ws),
         (unsigned long long) berth_ws_stream_bytes(ws), state_dir ? " (with persisted state)" : "");
    r->uploaded = true;
  }
  berth_ws_stream_free(ws);
  return rc;
}

/* Copies the persisted paths back into a new state version; nothing is written unless the whole version is.
 * Returns why the version could not be saved (the task then fails: its next task must not run on stale state), or
 * NULL. */
static char *
persist_state(runner *r)
{
  if (!r->uploaded || r->s->persist.n == 0)
    return NULL;
  berth_error *e = NULL;
  char *tmp = NULL, *why = NULL;
  if (berth_state_begin(r->st, r->s->name, &tmp, &e) < 0) {
    note(r, "warning: cannot save persisted paths: %s", e->msg);
    why = strdup(e->msg);
    berth_error_free(e);
    return why ? why : strdup("out of memory");
  }
  size_t saved = 0;
  bool failed = false;
  for (size_t i = 0; i < r->s->persist.n && !failed; i++) {
    const char *p = r->s->persist.v[i];
    cleanup_free char *src = NULL, *dest = NULL;
    const char *slash = strrchr(p, '/');
    if (asprintf(&src, "%s/%s", r->workdir, p) < 0
        || asprintf(&dest, "%s/%.*s", tmp, slash ? (int) (slash - p) : 0, p) < 0) {
      failed = true;
      break;
    }
    berth_buf tar;
    berth_buf_init(&tar, PERSIST_CAP);
    int rc = berth_docker_archive_get(r->d, r->container, src, passwd_sink, &tar, &e);
    if (rc == BERTH_ENOTFOUND) {
      note(r, "persisted path %s does not exist yet", p);
      berth_error_clear(&e);
    } else if (rc < 0) {
      note(r, "warning: cannot copy back %s: %s", p, e->msg);
      if (asprintf(&why, "cannot copy back %s: %s", p, e->msg) < 0)
        why = NULL;
      berth_error_clear(&e);
      failed = true;
    } else {
      /* dest is inside our own temp dir; create it with its parents */
      for (char *q = dest + strlen(tmp) + 1; *q; q++)
        if (*q == '/') {
          *q = '\0';
          mkdir(dest, 0700);
          *q = '/';
        }
      mkdir(dest, 0700);
      if (berth_tar_extract_mem(tar.data, tar.len, dest, PERSIST_CAP, &e) < 0) {
        note(r, "warning: cannot save %s: %s", p, e->msg);
        if (asprintf(&why, "cannot save %s: %s", p, e->msg) < 0)
          why = NULL;
        berth_error_clear(&e);
        failed = true;
      } else {
        saved++;
      }
    }
    berth_buf_free(&tar);
  }
  if (failed || saved == 0) {
    berth_state_abort(tmp);
  } else {
    int64_t version = 0;
    int keep = r->s->keep_versions > 0 ? r->s->keep_versions : BERTH_DEFAULT_KEEP_VERSIONS;
    if (berth_state_commit(r->st, r->s->name, r->t->id, tmp, keep, &version, &e) < 0) {
      note(r, "warning: cannot save persisted paths: %s", e->msg);
      if ((why = strdup(e->msg)) == NULL)
        failed = true;
      berth_error_clear(&e);
    } else {
      note(r, "persisted %zu path%s as state version %lld", saved, saved == 1 ? "" : "s", (long long) version);
    }
  }
  free(tmp);
  if (failed && why == NULL)
    why = strdup("out of memory");
  return why;
}

/* ---- phases ---- */

typedef struct outcome {
  const char *state; /* FINISHED or FAILED */
  char *reason;      /* owned */
  int exit_code;
} outcome;

static void set_failure(outcome *o, int exit_code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void
set_failure(outcome *o, int exit_code, const char *fmt, ...)
{
  if (o->reason != NULL)
    return;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&o->reason, fmt, ap) < 0)
    o->reason = NULL;
  va_end(ap);
  o->state = "FAILED";
  o->exit_code = exit_code;
}

static void
fail_from_error(runner *r, outcome *o, int rc, berth_error *e)
{
  if (stop_requested(r, true)) {
    note(r, "stop requested: stopping the task");
    o->state = "STOPPED";
    return;
  }
  if (rc == BERTH_ETIMEOUT) {
    note(r, "%s timeout reached: stopping the task",
         r->timeout_kind && strcmp(r->timeout_kind, "idle") == 0 ? "idle (no output)" : "run");
    set_failure(o, 124, "timeout");
  } else {
    note(r, "error: %s", e ? e->msg : "unknown error");
    set_failure(o, -1, "%s", e ? e->msg : "error");
  }
}

/* Why a command died of SIGKILL, from what the daemon recorded since its exec started: the memory limit (the kernel's
 * OOM killer), a kill through the Docker API (docker kill/stop, the daemon stopping), else something inside the
 * container. Worded as a guess only when the event log can't be read; *daemon_stopped set when the daemon stopped.
 * Caller frees. */
static char *
kill_reason(runner *r, bool *daemon_stopped)
{
  long long mib = (long long) ((r->s->memory_bytes > 0 ? r->s->memory_bytes : r->cfg.default_memory) >> 20);
  berth_container_events ev;
  berth_error *e = NULL;
  char *why = NULL;
  int rc = -1;
  if (r->container != NULL)
    rc = berth_docker_container_events(r->d, r->container, r->exec_started_s - 1, (int64_t) time(NULL) + 1, &ev, &e);
  if (rc < 0)
    rc = asprintf(&why,
                  "was killed (SIGKILL); it may have reached the memory limit of %lld MiB (the daemon's event "
                  "log could not be read: %s)",
                  mib, e ? e->msg : "no container");
  else if (ev.oom > 0)
    rc = asprintf(&why, "ran out of memory (limit %lld MiB) and was killed", mib);
  else if (ev.kill > 0 && !berth_docker_alive(r->d)) {
    *daemon_stopped = true;
    rc = asprintf(&why, "was killed: the Docker daemon stopped (it killed the container with signal %d)",
                  ev.kill_signal);
  } else if (ev.kill > 0)
    rc = asprintf(&why, "was killed through the Docker API (docker kill/stop, signal %d)", ev.kill_signal);
  else
    rc = asprintf(&why, "was killed (SIGKILL) from inside the container, not for memory (the daemon reported no "
                        "out-of-memory kill)");
  berth_error_free(e);
  return rc < 0 ? NULL : why;
}

static void
perform(runner *r, outcome *o)
{
  berth_error *e = NULL;
  int status = 0;
  int rc = next_phase(r, "PERFORMING", BERTH_PHASE_PERFORMING, &e);
  if (rc < 0) {
    fail_from_error(r, o, rc, e);
    berth_error_free(e);
    return;
  }
  rc = run_phase_list(r, "before_perform hooks", &r->s->before_perform, NULL, &status, &e);
  if (rc < 0) {
    fail_from_error(r, o, rc, e);
    berth_error_clear(&e);
    return;
  }
  if (status != 0) {
    note(r, "before_perform hooks failed with status %d", status);
    set_failure(o, status, "before_perform hook exited with status %d", status);
    return;
  }
  /* the command text is not echoed: it may carry a value that an ::add-mask:: line only masks later */
  note(r, "==> performing the command");
  const char *argv[] = { "sh", "-c", ENV_PROLOGUE "exec sh -c \"$0\"", r->t->command, NULL };
  r->out_sink.kind = BERTH_LOG_STDOUT; /* the exec's end flushed everything before it, and flushes all of it */
  rc = run_exec(r, argv, &status, &e);
  r->out_sink.kind = BERTH_LOG_STDERR;
  if (rc < 0) {
    fail_from_error(r, o, rc, e);
    berth_error_clear(&e);
    return;
  }
  if (status == 137) {
    bool daemon_stopped = false; /* Docker trouble, not the command's: exit 125, as when the daemon is lost */
    char *why = kill_reason(r, &daemon_stopped);
    note(r, "the command %s", why ? why : "was killed (SIGKILL)");
    set_failure(o, daemon_stopped ? -1 : status, "command %s (exit status 137)", why ? why : "was killed (SIGKILL)");
    free(why);
  } else if (status != 0) {
    note(r, "command exited with status %d", status);
    set_failure(o, status, "command exited with status %d", status);
  }
  int cmd_status = status;
  rc = run_phase_list(r, "after_perform hooks", &r->s->after_perform, NULL, &status, &e);
  if (rc < 0) {
    fail_from_error(r, o, rc, e);
    berth_error_clear(&e);
    return;
  }
  if (status != 0 && cmd_status == 0) {
    note(r, "after_perform hooks failed with status %d", status);
    set_failure(o, status, "after_perform hook exited with status %d", status);
  }
}

/* ---- workload identity ---- */

/* Before the container exists: the OIDC token and the credential helpers' values (all secrets from here on). */
static int
prepare_identity(runner *r, berth_error **err)
{
  if (r->s->oidc_audiences.n == 0 && r->s->credentials.n == 0)
    return 0;
  int rc = task_identity_prepare(r->st, &r->cfg, r->s, r->t, r->secrets, &r->ident, err);
  /* what the helpers printed on stderr, through the redactor whole (a value or a key block over several lines is
   * masked as one), then line by line like every line of ours */
  char *masked = r->ident.notes.len
                     ? berth_secrets_redact_string(r->secrets, r->ident.notes.data, r->ident.notes.len, NULL)
                     : NULL;
  if (r->ident.notes.len && masked == NULL)
    note(r, "credential helpers: their stderr is not shown (it could not be masked)");
  const char *p = masked, *end = p ? p + strlen(p) : NULL;
  while (p != NULL && p < end) {
    const char *nl = memchr(p, '\n', (size_t) (end - p));
    size_t n = nl ? (size_t) (nl - p) : (size_t) (end - p);
    note(r, "%.*s", (int) n, p);
    p += n + 1;
  }
  free(masked);
  if (rc == 0 && r->ident.token != NULL)
    note(r, "identity: an OIDC token for %zu audience%s (%s in the container)", r->s->oidc_audiences.n,
         r->s->oidc_audiences.n == 1 ? "" : "s", BERTH_OIDC_TOKEN_PATH);
  if (rc == 0 && r->s->credentials.n > 0)
    note(r, "identity: %zu credential helper%s gave %zu secret variable%s", r->s->credentials.n,
         r->s->credentials.n == 1 ? "" : "s", r->ident.n_env, r->ident.n_env == 1 ? "" : "s");
  return rc;
}

/* After the container started: the token file on its memory filesystem, and the helpers' variables in the
 * environment every phase sources. Both travel in the exec's own environment: never in argv, never in the
 * container's configuration. */
static int
install_identity(runner *r, berth_error **err)
{
  if (r->ident.token == NULL && r->ident.n_env == 0)
    return 0;
  const char **env = calloc(r->ident.n_env + 2, sizeof *env);
  berth_buf script;
  berth_buf_init(&script, 64 * 1024);
  berth_buf_append(&script, ENV_PROLOGUE, strlen(ENV_PROLOGUE));
  berth_buf_printf(&script, "umask 077\n");
  size_t k = 0;
  int rc = env == NULL ? berth_error_set(err, BERTH_EINTERNAL, "out of memory") : 0;
  if (rc == 0 && r->ident.token != NULL) {
    char *kv = NULL;
    if (asprintf(&kv, "BERTH_OIDC_TOKEN=%s", r->ident.token) < 0)
      rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    else
      env[k++] = kv;
    berth_buf_printf(&script,
                     "{ [ -d /dev/shm ] && [ -w /dev/shm ]; } || { echo 'berth: the container has no writable /dev/shm "
                     "for the identity token' >&2; exit 3; }\n"
                     "mkdir -p %s && printf %%s \"$BERTH_OIDC_TOKEN\" > %s || exit 3\nunset BERTH_OIDC_TOKEN\n",
                     BERTH_OIDC_TOKEN_DIR, BERTH_OIDC_TOKEN_PATH);
  }
  for (size_t i = 0; rc == 0 && i < r->ident.n_env; i++) {
    char *kv = NULL;
    if (asprintf(&kv, "%s=%s", r->ident.env[i].key, r->ident.env[i].value) < 0) {
      rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
      break;
    }
    env[k++] = kv;
    berth_buf_printf(&script, "export %s\n", r->ident.env[i].key);
  }
  berth_buf_printf(&script, "export -p > \"$__berth_env\"\n");
  int status = 0;
  if (rc == 0) {
    const char *argv[] = { "sh", "-c", script.data, NULL };
    rc = run_exec_env(r, argv, env, &status, err);
  }
  if (rc == 0 && status != 0)
    rc = berth_error_set(err, BERTH_EINTERNAL,
                         "the task's identity could not be installed in the container "
                         "(status %d)",
                         status);
  for (size_t i = 0; i < k; i++) {
    explicit_bzero((char *) env[i], strlen(env[i]));
    free((char *) env[i]);
  }
  free(env);
  berth_buf_free(&script);
  return rc;
}

static void
run_task(runner *r, outcome *o)
{
  berth_error *e = NULL;
  int status = 0;
  /* a fleet host's claim made it PREPARING already */
  int rc
      = r->claimed ? (set_phase(r, BERTH_PHASE_PREPARING), 0) : next_phase(r, "PREPARING", BERTH_PHASE_PREPARING, &e);
  if (rc == 0)
    rc = check_image_allowed(r, &e);
  if (rc == 0 && r->s->network) /* this host's admin config decides whether `host` may run here */
    rc = berth_config_check_network(&r->cfg, r->s->network, &e);
  if (rc == 0)
    rc = resolve_image(r, &e);
  if (rc == 0)
    rc = prepare_identity(r, &e);
  cJSON *image = NULL;
  if (rc == 0)
    rc = berth_docker_image_inspect(r->d, r->s->image, &image, &e);
  if (rc == 0) {
    cJSON *body = container_body(r);
    char name[96];
    snprintf(name, sizeof name, "berth-%s", r->t->id);
    rc = berth_docker_container_create(r->d, name, body, &r->container, &e);
    cJSON_Delete(body);
  }
  if (rc == 0) {
    berth_error *se = NULL;
    berth_store_task_set_container(r->st, r->t->id, r->container, &se);
    berth_error_free(se);
    note(r, "container %.12s created from %s", r->container, r->s->image);
    resolve_user(r, image);
    rc = next_phase(r, "INITIALIZING", BERTH_PHASE_INITIALIZING, &e);
  }
  cJSON_Delete(image);
  if (rc == 0)
    rc = upload_workspace(r, &e);
  if (rc == 0)
    rc = berth_docker_container_start(r->d, r->container, &e);
  if (rc == 0)
    start_watch(r);
  if (rc == 0)
    rc = install_identity(r, &e);
  if (rc == 0 && !r->t->skip_init) {
    rc = run_phase_list(r, "initialization: before_init hooks and init commands", &r->s->before_init, &r->s->init,
                        &status, &e);
    if (rc == 0 && status != 0) {
      note(r, "initialization failed with status %d", status);
      set_failure(o, -1, "initialization failed with status %d", status);
      return;
    }
  } else if (rc == 0) {
    note(r, "initialization skipped (--skip-init)");
  }
  if (rc < 0) {
    fail_from_error(r, o, rc, e);
    berth_error_free(e);
    return;
  }
  perform(r, o);
}

static void
finish(runner *r, outcome *o)
{
  berth_error *e = NULL;
  set_phase(r, BERTH_PHASE_FINISHING);
  if (claim_lost(r, true)) {
    r->ended = true;
    /* the fleet failed the task ("host lost") and may run the stack's next task: end the container, write nothing */
    if (r->container != NULL) {
      berth_docker_container_kill(r->d, r->container, "SIGKILL", &e);
      berth_error_clear(&e);
      berth_docker_container_remove(r->d, r->container, &e);
      berth_error_clear(&e);
    }
    return;
  }
  if (r->container != NULL) {
    berth_container_state cs;
    memset(&cs, 0, sizeof cs);
    bool running = berth_docker_container_inspect(r->d, r->container, &cs, NULL, &e) == 0 && cs.running;
    berth_error_clear(&e);
    /* after_run hooks always run once the container exists: bring a killed (timed out) container back for them */
    if (!running && r->uploaded && r->s->after_run.n > 0 && berth_docker_container_start(r->d, r->container, &e) == 0
        && (start_watch(r), true))
      running = true;
    berth_error_clear(&e);
    if (cs.oom_killed && o->reason != NULL)
      note(r, "the container ran out of memory (OOM killed)");
    if (r->s->after_run.n > 0 && running) {
      int status = 0;
      /* after_run hooks get a fresh run timeout budget of their own: they must run even after a timeout */
      int64_t saved_deadline = r->deadline_ms;
      r->deadline_ms = berth_now_ms() + (r->s->timeout_ms > 0 ? r->s->timeout_ms : BERTH_DEFAULT_TIMEOUT_MS);
      int rc = run_phase_list(r, "after_run hooks", &r->s->after_run, NULL, &status, &e);
      r->deadline_ms = saved_deadline;
      if (rc < 0)
        note(r, "after_run hooks did not complete: %s", e ? e->msg : "timeout");
      else if (status != 0)
        note(r, "after_run hooks failed with status %d", status);
      berth_error_clear(&e);
    } else if (r->s->after_run.n > 0) {
      note(r, "after_run hooks skipped: the container is no longer running");
    }
    char *lost = persist_state(r);
    /* a task that failed or was stopped already keeps its own end; the note says what was not saved */
    if (lost != NULL && (o->state == NULL || strcmp(o->state, "FINISHED") == 0))
      set_failure(o, 0, "the persisted state could not be saved (%s)", lost);
    free(lost);
    if (berth_docker_container_remove(r->d, r->container, &e) < 0) {
      note(r, "warning: cannot remove container %.12s now (%s); it is swept later", r->container, e->msg);
      berth_queue_sweep_request(berth_store_home(r->st));
      berth_error_clear(&e);
    }
  }
  if (o->state == NULL)
    o->state = "FINISHED", o->exit_code = 0;
  if (r->log_dropped > 0)
    note(r, "==> %lld bytes of output past max_log_bytes were not kept", (long long) r->log_dropped);
  note(r, "==> %s%s%s", o->state, o->reason ? ": " : "", o->reason ? o->reason : "");
  /* The end must be written, or the record stays active with nothing behind it. Refused: ended by someone else
   * meanwhile (a cancel that wrote CANCELED first). Failed: a store that does not answer (a database restarting)
   * is tried again every second for up to END_WRITE_TRIES s, while the task is still this runner's (a host that
   * missed its lease meanwhile had the task failed by the fleet: then nothing is written). What failed last is
   * kept for the caller (r->end_err). */
  uint64_t masked = berth_redactor_redactions(r->out) + berth_redactor_redactions(r->err);
  bool counted = masked == 0;
  /* the task ended when its last command did (what follows is berth's: notes, the container's removal), however
   * long its end then waits for the store (a database restarting): its record says when it ended, not when that
   * could be written; one that ran no command ends now */
  int64_t ended_at = r->exec_ended_ms > 0 ? r->exec_ended_ms : berth_now_ms();
  for (int tries = 1;; tries++) {
    berth_error_clear(&e);
    /* the count of secrets masked goes first, so that an ended task has it (the metric berth_redactions_total sums
     * it); a count that could not be written is a metric short, never a reason to keep the task from ending */
    if (!counted)
      counted = berth_store_task_set_redactions(r->st, r->t->id, masked > INT_MAX ? INT_MAX : (int) masked, &e) == 0;
    berth_error_clear(&e);
    if (transition_at(r, o->state, BERTH_PHASE_FINISHING, o->reason ? o->reason : "done", o->reason, o->exit_code,
                      ended_at, &e)
        == 0) {
      r->ended = true;
      break;
    }
    /* a full disk: the space kept in reserve for this moment is given up (the next task's start makes it again) */
    if (tries == 1 && !r->log_failed)
      berth_reserve_release(berth_store_home(r->st));
    berth_task *now = NULL;
    berth_error *ge = NULL;
    if (berth_store_task_get(r->st, r->t->id, &now, &ge) == 0 && berth_task_state_is_terminal(now->state))
      r->ended = true;
    berth_task_free(now);
    berth_error_free(ge);
    if (r->ended || abandoned(r) || claim_lost(r, true) || tries >= END_WRITE_TRIES)
      break;
    struct timespec ts = { .tv_sec = 1 };
    nanosleep(&ts, NULL);
  }
  if (!r->ended && !r->revoked) {
    r->end_err = e;
    e = NULL;
  }
  berth_error_free(e);
}

static void
kill_on_timeout(runner *r, const outcome *o)
{
  if (r->container != NULL
      && ((o->reason != NULL && strcmp(o->reason, "timeout") == 0) || (o->state && strcmp(o->state, "STOPPED") == 0))) {
    berth_error *e = NULL;
    berth_docker_container_kill(r->d, r->container, "SIGKILL", &e);
    berth_error_free(e);
  }
}

static int supervise(berth_store *st, const char *task_id, int held_fd, berth_task_ctl *ctl, berth_error **err);

int
berth_task_supervise(berth_store *st, const char *task_id, berth_error **err)
{
  return berth_task_supervise_held(st, task_id, -1, err);
}

int
berth_task_supervise_held(berth_store *st, const char *task_id, int held_fd, berth_error **err)
{
  return supervise(st, task_id, held_fd, NULL, err);
}

int
berth_task_supervise_ctl(berth_store *st, const char *task_id, berth_task_ctl *ctl, berth_error **err)
{
  return supervise(st, task_id, -1, ctl, err);
}

static int
supervise(berth_store *st, const char *task_id, int held_fd, berth_task_ctl *ctl, berth_error **err)
{
  runner r = { .st = st, .phase = BERTH_PHASE_QUEUED, .ctl = ctl };
  int hold_fd = held_fd, stack_fd = -1, slot_fd = -1;
  int rc = held_fd >= 0 ? berth_task_adopt_hold(berth_store_home(st), task_id, held_fd, err)
                        : berth_task_hold(berth_store_home(st), task_id, &hold_fd, err);
  if (rc < 0)
    return rc;
  /* the process that supervises it: a fleet host's thread records its host's */
  rc = berth_store_task_set_supervisor(st, task_id, (int) getpid(), err);
  if (rc == 0)
    rc = berth_store_task_get(st, task_id, &r.t, err);
  /* claimed by a fleet host: the claim is its turn and its slot, and every write (the log's too) carries it */
  r.claimed = rc == 0 && r.t->host != NULL && r.t->attempt > 0 && strcmp(r.t->state, "PREPARING") == 0;
  if (rc == 0 && r.claimed)
    rc = berth_store_fence(st, task_id, r.t->attempt, err);
  if (rc == 0)
    rc = berth_task_log_create(st, task_id, &r.log, err);
  if (rc == 0 && ctl != NULL)
    berth_task_log_watch(r.log, &ctl->abandon); /* a host that gives the task up stops its log's retries too */
  if (rc < 0) {
    close(hold_fd);
    return rc;
  }
  outcome o = { 0 };
  berth_error *e = NULL;
  berth_reserve_ensure(berth_store_home(st));
  rc = berth_config_load(berth_store_home(st), &r.cfg, &e);
  if (rc < 0) { /* a broken config.json: the task fails with the reason, on defaults for the rest */
    berth_error *de = NULL;
    berth_config_defaults(&r.cfg, &de);
    berth_error_free(de);
  }
  if (rc == 0)
    rc = berth_docker_new(NULL, &r.d, &e);
  if (rc == 0 && !r.claimed) {
    berth_error *se = NULL;
    berth_queue_sweep_if_due(st, r.d, 10000, &se);
    berth_error_free(se);
    rc = berth_queue_wait_turn(st, r.d, r.t, queue_note, &r, &stack_fd, &e);
    if (rc == 0)
      rc = berth_queue_wait_slot(st, r.t, berth_max_parallel_tasks(&r.cfg), queue_note, &r, &slot_fd, &e);
    if (rc == BERTH_EBUSY) { /* ended while queued (canceled): nothing more to do */
      berth_error_free(e);
      r.ended = true;
      goto out;
    }
  }
  /* the stack as it is when the task starts, not when it was submitted */
  if (rc == 0)
    rc = berth_store_stack_get(st, r.t->stack, &r.s, &e);
  if (rc == 0)
    rc = berth_stack_check_secrets(st, r.s, &e);
  if (rc == 0)
    rc = setup_secrets(&r, &e);
  if (rc < 0) {
    fail_from_error(&r, &o, rc, e);
    berth_error_clear(&e);
  } else {
    r.workdir = r.s->subdir && r.s->subdir[0] ? NULL : strdup(BERTH_SOURCE_DIR);
    if (r.workdir == NULL && asprintf(&r.workdir, "%s/%s", BERTH_SOURCE_DIR, r.s->subdir) < 0)
      r.workdir = NULL;
    r.idle_ms = r.s->idle_timeout_ms > 0 ? r.s->idle_timeout_ms : BERTH_DEFAULT_IDLE_TIMEOUT_MS;
    r.deadline_ms = berth_now_ms() + (r.s->timeout_ms > 0 ? r.s->timeout_ms : BERTH_DEFAULT_TIMEOUT_MS);
    run_task(&r, &o);
    kill_on_timeout(&r, &o);
  }
  finish(&r, &o);
out : {
  berth_error *fe = NULL;
  berth_store_task_forget_secrets(st, task_id, &fe);
  berth_error_free(fe);
}
  free(o.reason);
  free(r.container);
  free(r.workdir);
  task_identity_clear(&r.ident);
  berth_outwin_free(r.win);
  berth_redactor_free(r.out);
  berth_redactor_free(r.err);
  berth_secrets_free(r.secrets);
  berth_task_log_close(r.log);
  berth_docker_free(r.d);
  berth_stack_free(r.s);
  berth_task_free(r.t);
  berth_config_clear(&r.cfg);
  if (slot_fd >= 0)
    close(slot_fd);
  if (stack_fd >= 0)
    close(stack_fd);
  if (r.ended) /* still held: whoever probes it from now on finds no lock file, and the record says it is over */
    berth_task_forget_local(berth_store_home(st), task_id);
  close(hold_fd);
  if (r.end_err != NULL) { /* the record is still active: the caller fails the task (or the sweep does) */
    rc = berth_error_set(err, BERTH_EINTERNAL, "its end could not be recorded: %s",
                         r.end_err->msg ? r.end_err->msg : "unknown error");
    berth_error_free(r.end_err);
    return rc;
  }
  return 0;
}

int
berth_max_parallel_tasks(const berth_config *cfg)
{
  const char *v = getenv("BERTH_MAX_PARALLEL_TASKS");
  int n = v && *v ? atoi(v) : 0;
  if (n > 0)
    return n;
  return cfg && cfg->max_parallel_tasks > 0 ? cfg->max_parallel_tasks : BERTH_DEFAULT_MAX_PARALLEL;
}

int
berth_task_exit_status(const char *state, const char *reason, int exit_code)
{
  if (strcmp(state, "FINISHED") == 0)
    return 0;
  if (strcmp(state, "FAILED") == 0 && reason && strcmp(reason, "timeout") == 0)
    return 124;
  if (strcmp(state, "FAILED") == 0 && exit_code > 0)
    return exit_code;
  return 125;
}
