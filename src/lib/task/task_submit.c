/* Task submission: refuse early, record durably, hand over to a supervisor process. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "berth/actions.h"
#include "berth/allowlist.h"
#include "berth/audit.h"
#include "berth/config.h"
#include "berth/docker.h"
#include "berth/fleet.h"
#include "berth/policy.h"
#include "berth/parse.h"
#include "berth/redactor.h"
#include "berth/task_json.h"
#include "berth/task_queue.h"
#include "berth/task_submit.h"
#include "berth/workspace.h"
#include "governance/gov_int.h"
#include "store/db.h"

/* A daemon that answered its ping (and version) this recently is taken as reachable by the next submission of this
 * process: under load dockerd takes 50-150 ms to answer the two requests, which a burst of submissions would
 * otherwise each pay. A daemon lost in between fails the task in its supervisor, with the reason. */
#define DOCKER_OK_MS 2000
static _Atomic int64_t docker_ok_until;

int
berth_supervisor_spawn(const char *const *argv_prefix, const char *home, const char *task_id, bool die_with_parent,
                       berth_error **err)
{
  return berth_supervisor_start(argv_prefix, home, task_id, die_with_parent, NULL, err);
}

/* argv_prefix + "--home HOME [--hold-fd N] TASK_ID"; hold_fd (>= 0) is the task's liveness lock, already held, which
 * the child keeps across exec (the lock never lapses between this process and the supervisor). */
static int
start(const char *const *argv_prefix, const char *home, const char *task_id, bool die_with_parent, int hold_fd,
      int *pid_out, berth_error **err)
{
  size_t n = 0;
  while (argv_prefix[n] != NULL)
    n++;
  if (hold_fd < 0 && berth_task_mark_local(home, task_id, err) < 0)
    return berth_error_wrap(err, "start the supervisor of task %s", task_id);
  char fdnum[16];
  snprintf(fdnum, sizeof fdnum, "%d", hold_fd);
  const char **argv = calloc(n + 6, sizeof *argv);
  if (argv == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "start the supervisor of task %s: out of memory", task_id);
  memcpy(argv, argv_prefix, n * sizeof *argv);
  argv[n++] = "--home";
  argv[n++] = home;
  if (hold_fd >= 0) {
    argv[n++] = "--hold-fd";
    argv[n++] = fdnum;
  }
  argv[n] = task_id;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    free(argv);
    return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "start the supervisor of task %s", task_id);
  }
  if (pid == 0) {
    if (die_with_parent) {
      /* a direct child that dies with the server: a server crash leaves the task to the restart sweep */
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent)
        _exit(1);
    } else {
      setsid();
      if (fork() != 0)
        _exit(0);
    }
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
      dup2(fd, 0);
      dup2(fd, 1);
      dup2(fd, 2);
      if (fd > 2)
        close(fd);
    }
    if (hold_fd >= 0 && fcntl(hold_fd, F_SETFD, 0) < 0)
      _exit(127);
    execv(argv[0], (char *const *) argv);
    _exit(127);
  }
  free(argv);
  if (pid_out != NULL)
    *pid_out = (int) pid;
  if (!die_with_parent) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
      ;
  }
  return 0;
}

int
berth_supervisor_start(const char *const *argv_prefix, const char *home, const char *task_id, bool die_with_parent,
                       int *pid_out, berth_error **err)
{
  return start(argv_prefix, home, task_id, die_with_parent, -1, pid_out, err);
}

int
berth_supervisor_start_holding(const char *const *argv_prefix, const char *home, const char *task_id, int hold_fd,
                               int *pid_out, berth_error **err)
{
  if (hold_fd < 0)
    return berth_error_set(err, BERTH_EINVAL, "start the supervisor of task %s: no liveness lock to hand over",
                           task_id);
  return start(argv_prefix, home, task_id, true, hold_fd, pid_out, err);
}

void
berth_workspace_caps(const berth_config *cfg, uint64_t *max_bytes, uint64_t *max_entries)
{
  const char *b = getenv("BERTH_WORKSPACE_MAX_BYTES");
  const char *e = getenv("BERTH_WORKSPACE_MAX_ENTRIES");
  *max_bytes = b && *b ? strtoull(b, NULL, 10) : (cfg ? cfg->workspace_max_bytes : 0);
  *max_entries = e && *e ? strtoull(e, NULL, 10) : (cfg ? cfg->workspace_max_entries : 0);
}

/* Checks that need the admin's rules: image allowlist, pull policy restriction, task policies. A refusal is
 * recorded in the audit trail. */
static int
governance_checks(berth_store *st, const berth_config *cfg, const berth_stack *s, const berth_submit *req,
                  berth_error **err)
{
  berth_image_decision dec;
  int rc = berth_allowlist_check(st, s->image, &dec, err);
  if (rc < 0)
    return berth_error_wrap(err, "stack %s", s->name);
  if (!dec.allowed)
    rc = berth_error_set(err, BERTH_EDENIED, "stack %s: %s", s->name, dec.reason ? dec.reason : "image not allowed");
  berth_image_decision_clear(&dec);
  if (rc == 0 && s->pull_policy)
    rc = berth_config_check_pull_policy(cfg, s->pull_policy, err);
  if (rc == 0 && s->network)
    rc = berth_config_check_network(cfg, s->network, err);
  if (rc == 0) {
    berth_policy_input in = { .stack = s->name,
                              .labels = (const char *const *) s->labels.v,
                              .n_labels = s->labels.n,
                              .command = req->command,
                              .actor = req->actor,
                              .role = req->role,
                              .identity = s->oidc_audiences.n > 0 || s->credentials.n > 0,
                              .now_ms = 0 };
    berth_policy_result pr;
    memset(&pr, 0, sizeof pr);
    rc = berth_policy_evaluate(st, &in, &pr, err);
    if (rc == 0 && pr.denied)
      rc = berth_error_set(err, BERTH_EDENIED, "denied by policy `%s`: %s", pr.rule ? pr.rule : "?",
                           pr.message ? pr.message : "no message");
    berth_policy_result_clear(&pr);
  }
  if (rc == BERTH_EDENIED) {
    berth_secrets *shown = berth_submission_secrets(s, req->secret_env, req->n_secret_env);
    const char *command = req->shown_command ? req->shown_command : req->command;
    char *cmd = shown ? berth_secrets_redact_string(shown, command, strlen(command), NULL) : NULL;
    berth_action_denied(st, req->actor, "task.submit", s->name, (*err)->msg, cmd ? cmd : BERTH_NOT_SHOWN);
    free(cmd);
    berth_secrets_free(shown);
  }
  return rc;
}

/* The submission's audit arguments: stack, command as shown, variable names (never values). */
static cJSON *
submit_args(const berth_submit *req, const berth_task *t)
{
  cJSON *a = cJSON_CreateObject();
  cJSON_AddStringToObject(a, "stack", req->stack);
  cJSON_AddStringToObject(a, "command", t->shown_command);
  cJSON_AddBoolToObject(a, "skip_init", req->skip_init);
  cJSON *env = cJSON_AddArrayToObject(a, "env");
  for (size_t i = 0; i < req->n_env; i++)
    cJSON_AddItemToArray(env, cJSON_CreateString(req->env[i].key));
  cJSON *senv = cJSON_AddArrayToObject(a, "secret_env");
  for (size_t i = 0; i < req->n_secret_env; i++)
    cJSON_AddItemToArray(senv, cJSON_CreateString(req->secret_env[i].key));
  if (req->role)
    cJSON_AddStringToObject(a, "role", req->role);
  return a;
}

static bool
blank(const char *s)
{
  for (; s && *s; s++)
    if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
      return false;
  return true;
}

/* A retry: the ended task's stack, command, plain env and --skip-init, submitted like any task. */
static int
submit_retry(berth_store *st, const berth_submit *base, berth_task **out, berth_error **err)
{
  berth_task *old = NULL;
  int rc = berth_store_task_get(st, base->retry_of, &old, err);
  if (rc < 0)
    return rc;
  if (!berth_task_state_is_terminal(old->state)) {
    rc = berth_error_set(err, BERTH_EBUSY, "task %s is %s: a task is retried once it has ended", old->id, old->state);
    berth_task_free(old);
    return rc;
  }
  /* the old task's secret values were wiped when it ended: the caller gives each of them again, or the retry would
   * run a different task than the one it repeats */
  char missing[512] = "", flags[768] = "";
  size_t n_missing = 0;
  bool cut = false;
  for (const char *p = old->secret_names ? old->secret_names : ""; *p;) {
    size_t n = strcspn(p, ",");
    bool given = false;
    for (size_t i = 0; i < base->n_secret_env && !given; i++)
      given = strlen(base->secret_env[i].key) == n && memcmp(base->secret_env[i].key, p, n) == 0;
    if (!given) {
      size_t used = strlen(missing);
      if (!cut && used + n + 8 < sizeof missing) {
        snprintf(missing + used, sizeof missing - used, "%s%.*s", n_missing ? ", " : "", (int) n, p);
        size_t fl = strlen(flags);
        snprintf(flags + fl, sizeof flags - fl, "%s--secret-env %.*s", n_missing ? " " : "", (int) n, p);
      } else if (!cut) { /* room is left for it: the test above keeps 8 bytes */
        snprintf(missing + used, sizeof missing - used, ", ...");
        cut = true;
      }
      n_missing++;
    }
    p += n + (p[n] == ',');
  }
  if (n_missing > 0) {
    rc = berth_error_set(err, BERTH_EINVAL,
                         "task %s ran with secret env %s, whose value%s %s wiped when it ended: give %s again"
                         " (%s%s, or secret_env in the API)",
                         old->id, missing, n_missing > 1 ? "s" : "", n_missing > 1 ? "were" : "was",
                         n_missing > 1 ? "them" : "it", flags, cut ? " ..." : "");
    berth_task_free(old);
    return rc;
  }
  berth_submit req = *base;
  req.stack = old->stack;
  req.command = old->command;
  req.skip_init = old->skip_init;
  req.env = old->env;
  req.n_env = old->n_env;
  req.shown_command = old->shown_command;
  req.shown_env = old->shown_env;
  req.n_shown_env = old->n_shown_env;
  req.retry_of = old->id;
  rc = berth_task_submit(st, &req, out, err);
  berth_task_free(old);
  return rc;
}

/* Every check of a submission, before anything is recorded; *s_out gets the stack it is for. */
static int
submit_check_all(berth_store *st, const berth_submit *req, berth_stack **s_out, berth_error **err)
{
  int rc = berth_stack_validate_name(req->stack, err);
  if (rc < 0)
    return rc;
  if (req->command == NULL || blank(req->command))
    return berth_error_set(err, BERTH_EINVAL, "the command is empty (berth task run %s -- COMMAND...)", req->stack);
  if (berth_utf8_check("the command", req->command, err) < 0)
    return BERTH_EINVAL;
  /* the task's own variables: the same rules as a stack's (names, the reserved BERTH_*, text) */
  for (int k = 0; k < 2; k++) {
    const berth_kv *kv = k ? req->secret_env : req->env;
    for (size_t i = 0, n = k ? req->n_secret_env : req->n_env; i < n; i++) {
      if (!berth_env_name_valid(kv[i].key))
        return berth_error_set(err, BERTH_EINVAL, "%s name `%.64s` is invalid", k ? "--secret-env" : "--env",
                               kv[i].key);
      if (strncmp(kv[i].key, "BERTH_", 6) == 0)
        return berth_error_set(err, BERTH_EINVAL, "%s name `%.64s` is reserved (berth sets the BERTH_* variables)",
                               k ? "--secret-env" : "--env", kv[i].key);
      if (!k && !berth_utf8_valid(kv[i].value))
        return berth_error_set(err, BERTH_EINVAL, "--env `%s`: its value is not valid UTF-8", kv[i].key);
    }
  }
  berth_config cfg;
  rc = berth_config_load(berth_store_home(st), &cfg, err);
  if (rc < 0)
    return rc;
  berth_stack *s = NULL;
  rc = berth_store_stack_get(st, req->stack, &s, err);
  if (rc == 0 && berth_stack_check_secrets(st, s, err) < 0) {
    berth_stack_free(s);
    rc = BERTH_EINVAL;
  }
  if (rc < 0) {
    berth_config_clear(&cfg);
    return rc;
  }
  if (s->lock_owner != NULL && (req->actor == NULL || strcmp(s->lock_owner, req->actor) != 0)) {
    rc = berth_error_set(err, BERTH_EDENIED, "stack `%s` is locked by %s%s%s", s->name, s->lock_owner,
                         s->lock_note ? ": " : "", s->lock_note ? s->lock_note : "");
    berth_action_denied(st, req->actor, "task.submit", s->name, (*err)->msg, NULL);
    berth_stack_free(s);
    berth_config_clear(&cfg);
    return rc;
  }
  rc = governance_checks(st, &cfg, s, req, err);
  if (rc < 0) {
    berth_stack_free(s);
    berth_config_clear(&cfg);
    return rc;
  }
  /* the workspace: readable, within the caps (a scan, nothing is read from the files); in a fleet the project
   * directory is at the same path on every host (docs/fleet.md), this one included */
  bool shared = berth_store_is_shared(st);
  berth_ws_opts wo = { .project_dir = s->project_dir, .prefix = "mnt/workspace/source" };
  berth_workspace_caps(&cfg, &wo.max_bytes, &wo.max_entries);
  berth_config_clear(&cfg);
  berth_ws_stream *ws = NULL;
  rc = berth_ws_stream_open(&wo, &ws, err);
  berth_ws_stream_free(ws);
  if (rc < 0) {
    berth_error_wrap(err, "stack %s", s->name);
    berth_stack_free(s);
    return rc;
  }
  /* fail at submit, with nothing recorded, when Docker cannot run it anyway (on a shared store the host that claims
   * it runs it, on its own Docker: this one may have none) */
  berth_docker *d = NULL;
  bool never = s->pull_policy && strcmp(s->pull_policy, "never") == 0;
  bool check = !shared && (never || berth_now_ms() >= atomic_load(&docker_ok_until));
  rc = check ? berth_docker_new(NULL, &d, err) : 0;
  if (rc == 0 && check)
    rc = berth_docker_ping(d, err);
  if (rc == 0 && check)
    atomic_store(&docker_ok_until, berth_now_ms() + DOCKER_OK_MS);
  if (rc == 0 && !shared && never) {
    rc = berth_docker_image_inspect(d, s->image, NULL, err);
    if (rc < 0)
      berth_error_wrap(err, "stack %s (pull policy never)", s->name);
  }
  berth_docker_free(d);
  if (rc < 0) {
    berth_stack_free(s);
    return rc;
  }
  *s_out = s;
  return 0;
}

/* The stack, the image rules and the task policies are read in one round trip (PostgreSQL). */
static int
submit_check(berth_store *st, const berth_submit *req, berth_stack **s_out, berth_error **err)
{
  berth_allowlist_read_ahead(st);
  berth_policy_read_ahead(st);
  int rc = submit_check_all(st, req, s_out, err);
  store_drop_ahead(st);
  return rc;
}

/* Records a checked submission: the task and its audit record (and the caller's in_tx), in the open transaction.
 * *id_out gets the new task's id. */
static int
submit_record(berth_store *st, const berth_submit *req, const berth_stack *s, char **id_out, berth_error **err)
{
  berth_task t = { .exit_code = -1, .skip_init = req->skip_init };
  t.stack = s->name;
  t.command = (char *) req->command;
  t.actor = (char *) req->actor;
  t.triggered_by = (char *) req->triggered_by;
  t.env = (berth_kv *) req->env;
  t.n_env = req->n_env;
  t.secret_env = (berth_kv *) req->secret_env;
  t.n_secret_env = req->n_secret_env;
  t.retry_of = (char *) req->retry_of;
  /* as it is shown from now on: the secret values of this moment masked (its stack's may be rotated later) */
  berth_secrets *shown = berth_submission_secrets(s, req->secret_env, req->n_secret_env);
  const char *command = req->shown_command ? req->shown_command : req->command;
  const berth_kv *env = req->shown_env ? req->shown_env : req->env;
  size_t n_env = req->shown_env ? req->n_shown_env : req->n_env;
  bool oom = shown == NULL
             || (t.shown_command = berth_secrets_redact_string(shown, command, strlen(command), NULL)) == NULL
             || (n_env > 0 && (t.shown_env = calloc(n_env, sizeof *t.shown_env)) == NULL);
  for (size_t i = 0; !oom && i < n_env; i++, t.n_shown_env++) {
    const char *v = env[i].value ? env[i].value : "";
    t.shown_env[i].key = strdup(env[i].key);
    t.shown_env[i].value = berth_secrets_redact_string(shown, v, strlen(v), NULL);
    oom = t.shown_env[i].key == NULL || t.shown_env[i].value == NULL;
  }
  berth_secrets_free(shown);
  int rc = oom ? berth_error_set(err, BERTH_EINTERNAL, "out of memory") : berth_store_task_create(st, &t, err);
  cJSON *args = rc == 0 ? submit_args(req, &t) : NULL;
  if (rc == 0)
    rc = berth_audit_append(st, req->actor, "task.submit", t.id, args, "ok", err);
  if (rc == 0 && req->in_tx != NULL)
    rc = req->in_tx(req->in_tx_ud, st, &t, err);
  cJSON_Delete(args);
  free(t.state);
  free(t.shown_command);
  berth_kv_array_free(t.shown_env, t.n_shown_env);
  if (rc < 0)
    free(t.id);
  else
    *id_out = t.id;
  return rc;
}

/* Once recorded and committed: the hosts told (a fleet) or the supervisor started; *out (optional) the record. */
static int
submit_after(berth_store *st, const berth_submit *req, const char *id, berth_task **out, berth_error **err)
{
  int rc = 0;
  /* a fleet: the task waits in the queue, and the hosts were told when it was recorded */
  if (!berth_store_is_shared(st)
      && req->supervisor_argv != NULL) { /* none: the caller starts one (a server paces them) */
    rc = berth_supervisor_spawn(req->supervisor_argv, berth_store_home(st), id, req->die_with_parent, err);
    if (rc < 0) {
      berth_error *e2 = NULL;
      berth_action_task_transition(st, id, "FAILED", "berth", "could not start its supervisor", "executor interrupted",
                                   -1, &e2);
      berth_error_free(e2);
    }
  }
  if (rc == 0 && out != NULL)
    rc = berth_store_task_get(st, id, out, err);
  return rc;
}

int
berth_task_submit(berth_store *st, const berth_submit *req, berth_task **out, berth_error **err)
{
  if (req->retry_of != NULL && req->command == NULL)
    return submit_retry(st, req, out, err);
  berth_stack *s = NULL;
  char *id = NULL;
  int rc = submit_check(st, req, &s, err);
  if (rc == 0)
    rc = berth_store_begin(st, err);
  if (rc == 0) {
    rc = submit_record(st, req, s, &id, err);
    if (rc < 0)
      berth_store_rollback(st);
    else
      rc = berth_store_commit(st, err);
  }
  if (rc == 0)
    rc = submit_after(st, req, id, out, err);
  free(id);
  berth_stack_free(s);
  return rc;
}

void
berth_task_submit_many(berth_store *st, const berth_submit *const *reqs, size_t n, berth_task **outs, int *rcs,
                       berth_error **errs)
{
  berth_stack **s = calloc(n, sizeof *s);
  char **ids = calloc(n, sizeof *ids);
  size_t batched = 0;
  for (size_t i = 0; i < n; i++) {
    outs[i] = NULL;
    errs[i] = NULL;
    if (s == NULL || ids == NULL || (reqs[i]->retry_of != NULL && reqs[i]->command == NULL)) {
      rcs[i] = berth_task_submit(st, reqs[i], &outs[i], &errs[i]); /* alone */
      rcs[i] = rcs[i] < 0 ? rcs[i] : 1;
      continue;
    }
    rcs[i] = submit_check(st, reqs[i], &s[i], &errs[i]);
    batched += rcs[i] == 0;
  }
  /* one transaction, one commit (one fsync) for all that passed their checks; each in its own savepoint, so one
   * that fails to record leaves the others */
  berth_error *be = NULL;
  int brc = batched > 0 ? berth_store_begin(st, &be) : 0;
  for (size_t i = 0; i < n && batched > 0; i++) {
    if (rcs[i] != 0)
      continue;
    /* alone in its batch: no savepoint (its failure is the transaction's) */
    if (brc == 0
        && (rcs[i] = batched == 1 ? berth_store_begin_part(st, &errs[i]) : berth_store_begin(st, &errs[i])) == 0) {
      rcs[i] = submit_record(st, reqs[i], s[i], &ids[i], &errs[i]);
      if (rcs[i] < 0)
        berth_store_rollback(st);
      else
        rcs[i] = berth_store_commit(st, &errs[i]);
      if (!berth_store_in_transaction(st)) /* the engine ended the whole transaction (a full disk) */
        brc = berth_error_set(&be, BERTH_EINTERNAL, "the store rolled back the transaction of this submission");
    } else if (brc < 0)
      rcs[i] = berth_error_set(&errs[i], be->code, "%s", be->msg);
  }
  if (brc == 0 && batched > 0)
    brc = berth_store_commit(st, &be);
  else if (batched > 0)
    berth_store_rollback(st);
  for (size_t i = 0; i < n; i++) {
    if (rcs[i] == 1) { /* submitted alone, done */
      rcs[i] = 0;
      continue;
    }
    if (rcs[i] == 0 && brc < 0) /* recorded in a transaction that did not commit: nothing of it is stored */
      rcs[i] = berth_error_set(&errs[i], be->code, "%s", be->msg);
    if (rcs[i] == 0)
      rcs[i] = submit_after(st, reqs[i], ids[i], &outs[i], &errs[i]);
    if (ids)
      free(ids[i]);
    if (s)
      berth_stack_free(s[i]);
  }
  berth_error_free(be);
  free(ids);
  free(s);
}

int
berth_task_cancel(berth_store *st, const char *id, const char *actor, bool is_admin, char **state_out,
                  berth_error **err)
{
  for (int attempt = 0; attempt < 3; attempt++) {
    berth_task *t = NULL;
    int rc = berth_store_task_get(st, id, &t, err);
    if (rc < 0)
      return rc;
    const char *target = NULL;
    if (!is_admin && (actor == NULL || t->actor == NULL || strcmp(actor, t->actor) != 0))
      rc = berth_error_set(err, BERTH_EDENIED, "task %s belongs to %s: only its actor or an admin may cancel it", t->id,
                           t->actor ? t->actor : "?");
    else if (berth_task_state_is_terminal(t->state))
      rc = berth_error_set(err, BERTH_EBUSY, "task %s is already %s", t->id, t->state);
    else if (strcmp(t->state, "PERFORMING") == 0)
      rc = berth_error_set(
          err, BERTH_EBUSY,
          "task %s is PERFORMING: a performing task cannot be stopped (it runs to its end or its timeout)", t->id);
    else
      target = strcmp(t->state, "QUEUED") == 0 ? "CANCELED" : "STOPPED";
    if (rc < 0) {
      berth_task_free(t);
      return rc;
    }
    char note[160];
    snprintf(note, sizeof note, "%s by %s", strcmp(target, "CANCELED") == 0 ? "canceled" : "stopped",
             actor ? actor : "?");
    rc = berth_action_task_transition(st, t->id, target, actor, note, note, -1, err);
    berth_task_free(t);
    if (rc == 0) {
      if (state_out)
        *state_out = strdup(target);
      return 0;
    }
    if (rc != BERTH_EBUSY)
      return rc;
    berth_error_clear(err); /* the task moved on meanwhile: look again */
  }
  return berth_error_set(err, BERTH_EBUSY, "task %s keeps changing state; try again", id);
}

int
berth_task_retry(berth_store *st, const char *id, const berth_submit *base, berth_task **out, berth_error **err)
{
  berth_submit req = *base;
  req.retry_of = id;
  req.command = NULL;
  return berth_task_submit(st, &req, out, err);
}
