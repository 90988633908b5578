/* Tasks in the store: submission, lookup by id prefix, listing, the transition graph, durability across processes. */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "berth/store.h"
#include "store_helpers.h"

static int
setup(void **state)
{
  char *home = strdup("/tmp/berth-test-task-XXXXXX");
  assert_non_null(mkdtemp(home));
  berth_store *st = open_ok(home);
  berth_error *err = NULL;
  const char *names[] = { "alpha", "beta" };
  for (int i = 0; i < 2; i++) {
    berth_stack *s = berth_stack_new();
    s->name = strdup(names[i]);
    s->image = strdup("alpine");
    assert_int_equal(berth_store_stack_create(st, s, &err), 0);
    berth_stack_free(s);
  }
  berth_store_close(st);
  *state = home;
  return 0;
}

static int
teardown(void **state)
{
  rm_tree(*state);
  free(*state);
  return 0;
}

/* Submits a task; returns its id (caller frees). */
static char *
submit(berth_store *st, const char *stack, const char *command)
{
  berth_task t = { 0 };
  berth_error *err = NULL;
  t.stack = (char *) stack;
  t.command = (char *) command;
  t.actor = "alice";
  t.triggered_by = "ci";
  berth_kv *env = NULL;
  size_t n = 0;
  berth_kv_set(&env, &n, "STAGE", "prod");
  t.env = env;
  t.n_env = n;
  t.skip_init = true;
  if (berth_store_task_create(st, &t, &err) != 0)
    fail_msg("submit: %s", err->msg);
  assert_int_equal(strlen(t.id), 26);
  assert_string_equal(t.state, "QUEUED");
  assert_true(t.seq > 0);
  assert_true(t.created_at > 0);
  assert_int_equal(t.exit_code, -1);
  berth_kv_array_free(env, n);
  free(t.state);
  return t.id;
}

static void
transition_ok(berth_store *st, const char *id, const char *state, const char *reason, int code)
{
  berth_error *err = NULL;
  if (berth_store_task_transition(st, id, state, "runner", NULL, reason, code, &err) != 0)
    fail_msg("%s -> %s: %s", id, state, err->msg);
}

static void
test_create_get_list(void **state)
{
  berth_store *st = open_ok(*state);
  berth_error *err = NULL;
  char *a = submit(st, "alpha", "terraform plan");
  char *b = submit(st, "beta", "true");
  char *c = submit(st, "alpha", "terraform apply -auto-approve");
  assert_true(strcmp(a, c) < 0 || strncmp(a, c, 10) == 0); /* sortable by time */

  berth_task *t = NULL;
  assert_int_equal(berth_store_task_get(st, a, &t, &err), 0);
  assert_string_equal(t->stack, "alpha");
  assert_string_equal(t->command, "terraform plan");
  assert_string_equal(t->actor, "alice");
  assert_string_equal(t->triggered_by, "ci");
  assert_string_equal(t->state, "QUEUED");
  assert_true(t->skip_init);
  assert_int_equal(t->exit_code, -1);
  assert_null(t->reason);
  assert_null(t->container_id);
  assert_int_equal(t->n_env, 1);
  assert_string_equal(berth_kv_get(t->env, t->n_env, "STAGE"), "prod");
  assert_int_equal(t->n_history, 1);
  assert_string_equal(t->history[0].state, "QUEUED");
  assert_string_equal(t->history[0].actor, "alice");
  assert_string_equal(t->history[0].note, "submitted");
  assert_int_equal(t->started_at, 0);
  berth_task_free(t);

  /* a unique prefix, case-insensitively; too short or unknown is not found */
  char prefix[27];
  snprintf(prefix, sizeof prefix, "%.20s", b);
  for (char *p = prefix; *p; p++)
    *p = (char) (*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
  assert_int_equal(berth_store_task_get(st, prefix, &t, &err), 0);
  assert_string_equal(t->id, b);
  berth_task_free(t);
  assert_int_equal(berth_store_task_get(st, "abc", &t, &err), BERTH_ENOTFOUND);
  berth_error_clear(&err);
  assert_int_equal(berth_store_task_get(st, "zzzzzzzzzzzzzzzzzzzzzzzzzz", &t, &err), BERTH_ENOTFOUND);
  assert_non_null(strstr(err->msg, "does not exist"));
  berth_error_clear(&err);
  /* the first 4 chars (time) are shared by every task made now: ambiguous */
  snprintf(prefix, sizeof prefix, "%.4s", a);
  assert_int_equal(berth_store_task_get(st, prefix, &t, &err), BERTH_EINVAL);
  assert_non_null(strstr(err->msg, "ambiguous"));
  berth_error_clear(&err);

  /* unknown stack */
  berth_task bad = { 0 };
  bad.stack = "nope";
  bad.command = "true";
  bad.actor = "alice";
  assert_int_equal(berth_store_task_create(st, &bad, &err), BERTH_ENOTFOUND);
  assert_string_equal(err->msg, "stack `nope` does not exist");
  berth_error_clear(&err);

  berth_task **v = NULL;
  size_t n = 0;
  assert_int_equal(berth_store_task_list(st, NULL, &v, &n, &err), 0);
  assert_int_equal(n, 3);
  assert_string_equal(v[0]->id, c); /* newest first */
  assert_string_equal(v[2]->id, a);
  assert_int_equal(v[0]->n_history, 0);
  berth_tasks_free(v, n);
  berth_task_filter f = { .stack = "alpha", .limit = 1 };
  assert_int_equal(berth_store_task_list(st, &f, &v, &n, &err), 0);
  assert_int_equal(n, 1);
  assert_string_equal(v[0]->id, c);
  berth_tasks_free(v, n);

  transition_ok(st, a, "PREPARING", NULL, -1);
  f = (berth_task_filter){ .state = "QUEUED" };
  assert_int_equal(berth_store_task_list(st, &f, &v, &n, &err), 0);
  assert_int_equal(n, 2);
  berth_tasks_free(v, n);

  /* active tasks, oldest first (FIFO) */
  transition_ok(st, b, "CANCELED", "canceled by alice", -1);
  assert_int_equal(berth_store_task_list_active(st, NULL, &v, &n, &err), 0);
  assert_int_equal(n, 2);
  assert_string_equal(v[0]->id, a);
  assert_string_equal(v[1]->id, c);
  berth_tasks_free(v, n);
  assert_int_equal(berth_store_task_list_active(st, "beta", &v, &n, &err), 0);
  assert_int_equal(n, 0);
  berth_tasks_free(v, n);

  /* container, supervisor, blocker */
  assert_int_equal(berth_store_task_set_container(st, a, "c0ffee", &err), 0);
  assert_int_equal(berth_store_task_set_supervisor(st, a, 4242, &err), 0);
  assert_int_equal(berth_store_task_get(st, a, &t, &err), 0);
  assert_string_equal(t->container_id, "c0ffee");
  assert_int_equal(t->supervisor_pid, 4242);
  berth_task_free(t);
  /* blocked_by is derived: c waits for a (same stack, older, unfinished); b is canceled and waits for nothing */
  assert_int_equal(berth_store_task_get(st, c, &t, &err), 0);
  assert_string_equal(t->blocked_by, a);
  berth_task_free(t);
  assert_int_equal(berth_store_task_get(st, b, &t, &err), 0);
  assert_null(t->blocked_by);
  berth_task_free(t);
  assert_int_equal(berth_store_task_transition(st, a, "STOPPED", "me", NULL, NULL, -1, &err), 0);
  assert_int_equal(berth_store_task_get(st, c, &t, &err), 0);
  assert_null(t->blocked_by);
  berth_task_free(t);
  assert_int_equal(berth_store_task_set_container(st, "nope", "x", &err), BERTH_ENOTFOUND);
  berth_error_clear(&err);

  free(a);
  free(b);
  free(c);
  berth_store_close(st);
}

static void
test_lifecycle_and_terminal(void **state)
{
  berth_store *st = open_ok(*state);
  berth_error *err = NULL;
  char *id = submit(st, "alpha", "exit 3");
  transition_ok(st, id, "PREPARING", NULL, -1);
  transition_ok(st, id, "INITIALIZING", NULL, -1);
  transition_ok(st, id, "PERFORMING", NULL, -1);
  /* a stop while PERFORMING is refused, with a clear message */
  assert_int_equal(berth_store_task_transition(st, id, "STOPPED", "bob", NULL, NULL, -1, &err), BERTH_EBUSY);
  assert_non_null(strstr(err->msg, "PERFORMING and cannot be stopped"));
  berth_error_clear(&err);
  /* going back is refused */
  assert_int_equal(berth_store_task_transition(st, id, "PREPARING", "x", NULL, NULL, -1, &err), BERTH_EBUSY);
  berth_error_clear(&err);
  assert_int_equal(berth_store_task_transition(st, id, "DONE", "x", NULL, NULL, -1, &err), BERTH_EINVAL);
  berth_error_clear(&err);
  transition_ok(st, id, "FAILED", "command exited with status 3", 3);
  /* terminal: every further transition is refused and nothing changes */
  const char *next[] = { "FINISHED", "FAILED", "CANCELED", "STOPPED", "PERFORMING", "QUEUED" };
  for (size_t i = 0; i < sizeof next / sizeof next[0]; i++) {
    assert_int_equal(berth_store_task_transition(st, id, next[i], "x", NULL, "late", 0, &err), BERTH_EBUSY);
    assert_non_null(strstr(err->msg, "already FAILED"));
    berth_error_clear(&err);
  }
  berth_task *t = NULL;
  assert_int_equal(berth_store_task_get(st, id, &t, &err), 0);
  assert_string_equal(t->state, "FAILED");
  assert_string_equal(t->reason, "command exited with status 3");
  assert_int_equal(t->exit_code, 3);
  assert_true(t->started_at > 0);
  assert_true(t->finished_at >= t->started_at);
  const char *want[] = { "QUEUED", "PREPARING", "INITIALIZING", "PERFORMING", "FAILED" };
  assert_int_equal(t->n_history, 5);
  for (size_t i = 0; i < 5; i++) {
    assert_string_equal(t->history[i].state, want[i]);
    assert_true(t->history[i].at >= t->created_at);
  }
  assert_string_equal(t->history[1].actor, "runner");
  berth_task_free(t);
  free(id);

  /* QUEUED -> CANCELED never started; a stop before PERFORMING is allowed */
  id = submit(st, "alpha", "true");
  transition_ok(st, id, "CANCELED", "canceled", -1);
  assert_int_equal(berth_store_task_get(st, id, &t, &err), 0);
  assert_int_equal(t->started_at, 0);
  assert_true(t->finished_at > 0);
  berth_task_free(t);
  free(id);
  id = submit(st, "alpha", "true");
  assert_int_equal(berth_store_task_transition(st, id, "FINISHED", "x", NULL, NULL, 0, &err), BERTH_EBUSY);
  berth_error_clear(&err);
  transition_ok(st, id, "PREPARING", NULL, -1);
  assert_int_equal(berth_store_task_transition(st, id, "CANCELED", "x", NULL, NULL, -1, &err), BERTH_EBUSY);
  berth_error_clear(&err);
  transition_ok(st, id, "STOPPED", "stopped by bob", -1);
  free(id);
  berth_store_close(st);
}

/* Two processes race on the same tasks: one walks each to FINISHED, the other cancels. Every task must end in
 * exactly one terminal state, with a history that follows the graph and no duplicate terminal record. */
static void
test_concurrent_transitions(void **state)
{
  enum { N = 40 };
  const char *home = *state;
  berth_store *st = open_ok(home);
  char *ids[N];
  for (int i = 0; i < N; i++)
    ids[i] = submit(st, i % 2 ? "alpha" : "beta", "true");
  berth_store_close(st);

  int pipes[2][2];
  pid_t pids[2];
  for (int p = 0; p < 2; p++) {
    assert_int_equal(pipe(pipes[p]), 0);
    pids[p] = fork();
    assert_true(pids[p] >= 0);
    if (pids[p] == 0) {
      berth_store *cst = NULL;
      berth_error *err = NULL;
      if (berth_store_open(home, &cst, &err) != 0)
        _exit(99);
      int wins = 0, other = 0;
      for (int i = 0; i < N; i++) {
        if (p == 0) {
          const char *chain[] = { "PREPARING", "INITIALIZING", "PERFORMING", "FINISHED" };
          int ok = 1;
          for (int k = 0; k < 4 && ok; k++) {
            int rc = berth_store_task_transition(cst, ids[i], chain[k], "runner", NULL, NULL, k == 3 ? 0 : -1, &err);
            if (rc == BERTH_EBUSY)
              ok = 0;
            else if (rc != 0)
              other++;
            berth_error_clear(&err);
          }
          wins += ok;
        } else {
          int rc = berth_store_task_transition(cst, ids[i], "CANCELED", "canceller", NULL, "canceled", -1, &err);
          if (rc == 0)
            wins++;
          else if (rc != BERTH_EBUSY)
            other++;
          berth_error_clear(&err);
        }
      }
      berth_store_close(cst);
      int out[2] = { wins, other };
      if (write(pipes[p][1], out, sizeof out) != (ssize_t) sizeof out)
        _exit(98);
      _exit(0);
    }
    close(pipes[p][1]);
  }
  int wins[2] = { 0, 0 };
  for (int p = 0; p < 2; p++) {
    int status = 0, out[2] = { -1, -1 };
    assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(read(pipes[p][0], out, sizeof out), sizeof out);
    close(pipes[p][0]);
    assert_int_equal(out[1], 0); /* no error other than "busy" (no SQLITE_BUSY leaking out) */
    wins[p] = out[0];
  }
  /* A cancel can only win while QUEUED; once PREPARING, the chain runs until PERFORMING; a cancel landing in
   * between is refused. So the counts must add up exactly. */
  st = open_ok(home);
  int finished = 0, canceled = 0;
  for (int i = 0; i < N; i++) {
    berth_task *t = NULL;
    berth_error *err = NULL;
    assert_int_equal(berth_store_task_get(st, ids[i], &t, &err), 0);
    int terminal = 0;
    for (size_t h = 0; h < t->n_history; h++)
      terminal += berth_task_state_is_terminal(t->history[h].state);
    assert_int_equal(terminal, 1);
    if (strcmp(t->state, "FINISHED") == 0) {
      finished++;
      assert_int_equal(t->n_history, 5);
    } else {
      assert_string_equal(t->state, "CANCELED");
      assert_int_equal(t->n_history, 2);
      canceled++;
    }
    berth_task_free(t);
    free(ids[i]);
  }
  assert_int_equal(finished, wins[0]);
  assert_int_equal(canceled, wins[1]);
  assert_int_equal(finished + canceled, N);
  berth_store_close(st);
}

/* Two processes submitting at once: every task recorded, seq unique and increasing, ids unique. */
static void
test_concurrent_submissions(void **state)
{
  enum { PER = 30 };
  const char *home = *state;
  pid_t pids[2];
  for (int p = 0; p < 2; p++) {
    pids[p] = fork();
    assert_true(pids[p] >= 0);
    if (pids[p] == 0) {
      berth_store *cst = NULL;
      berth_error *err = NULL;
      if (berth_store_open(home, &cst, &err) != 0)
        _exit(99);
      for (int i = 0; i < PER; i++) {
        berth_task t = { 0 };
        t.stack = "alpha";
        t.command = p ? "echo b" : "echo a";
        t.actor = "x";
        if (berth_store_task_create(cst, &t, &err) != 0)
          _exit(1);
        free(t.id);
        free(t.state);
      }
      berth_store_close(cst);
      _exit(0);
    }
  }
  for (int p = 0; p < 2; p++) {
    int status = 0;
    assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  berth_store *st = open_ok(home);
  berth_task **v = NULL;
  size_t n = 0;
  berth_error *err = NULL;
  assert_int_equal(berth_store_task_list(st, NULL, &v, &n, &err), 0);
  assert_int_equal(n, 2 * PER);
  for (size_t i = 1; i < n; i++) {
    assert_true(v[i - 1]->seq > v[i]->seq);
    for (size_t j = 0; j < i; j++)
      assert_string_not_equal(v[i]->id, v[j]->id);
  }
  berth_tasks_free(v, n);
  berth_store_close(st);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_create_get_list, setup, teardown),
    cmocka_unit_test_setup_teardown(test_lifecycle_and_terminal, setup, teardown),
    cmocka_unit_test_setup_teardown(test_concurrent_transitions, setup, teardown),
    cmocka_unit_test_setup_teardown(test_concurrent_submissions, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
