/* Schedules against a real store: a fire time fires once even when two handles (two hosts) race for it, missed fire
 * times follow the catch-up policy, a refusal is recorded, a paused schedule fires nothing. The submission is a
 * stand-in for berth_task_submit (which needs Docker) that keeps its contract: the task and req->in_tx in one
 * transaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "berth/schedule.h"
#include "berth/store.h"
#include "store_helpers.h"

typedef struct fake {
  bool refuse;
  int submitted;
} fake;

static int
fake_submit(void *ud, berth_store *st, const berth_submit *req, berth_error **err)
{
  fake *f = ud;
  if (f->refuse)
    return berth_error_set(err, BERTH_EDENIED, "stack `%s` is locked by someone", req->stack);
  berth_task t = { .stack = (char *) req->stack,
                   .command = (char *) req->command,
                   .actor = (char *) req->actor,
                   .triggered_by = (char *) req->triggered_by };
  int rc = berth_store_begin(st, err);
  if (rc == 0)
    rc = berth_store_task_create(st, &t, err);
  if (rc == 0)
    rc = req->in_tx(req->in_tx_ud, st, &t, err);
  if (rc < 0)
    berth_store_rollback(st);
  else
    rc = berth_store_commit(st, err);
  free(t.id);
  free(t.state);
  if (rc == 0)
    f->submitted++;
  return rc;
}

static int
tasks_of(berth_store *st, const char *name)
{
  berth_task **v = NULL;
  size_t n = 0;
  berth_error *err = NULL;
  assert_int_equal(berth_store_task_list(st, NULL, &v, &n, &err), 0);
  char want[80];
  snprintf(want, sizeof want, "schedule:%s", name);
  int count = 0;
  for (size_t i = 0; i < n; i++)
    count += v[i]->triggered_by && strcmp(v[i]->triggered_by, want) == 0;
  berth_tasks_free(v, n);
  return count;
}

static berth_schedule *
add(berth_store *st, const char *name, const char *cron, const char *catch_up)
{
  berth_schedule *s = calloc(1, sizeof *s);
  s->stack = strdup("web");
  s->name = strdup(name);
  s->cron = strdup(cron);
  s->command = strdup("true");
  s->catch_up = strdup(catch_up);
  berth_error *err = NULL;
  if (berth_schedule_add(st, s, "alice", "writer", &err) < 0)
    fail_msg("%s", err->msg);
  berth_schedule_free(s);
  assert_int_equal(berth_store_schedule_get(st, "web", name, &s, &err), 0);
  return s;
}

static void
test_firing(void **state)
{
  const char *home = *state;
  berth_store *st = open_ok(home), *other = open_ok(home);
  berth_error *err = NULL;
  berth_stack *stack = berth_stack_new();
  stack->name = strdup("web");
  stack->image = strdup("busybox:latest");
  assert_int_equal(berth_store_stack_create(st, stack, &err), 0);
  fake f = { 0 };

  /* on time: one task; ticking again fires nothing more */
  berth_schedule *s = add(st, "tick", "* * * * *", "once");
  int64_t due = s->next_fire;
  assert_int_equal(berth_schedule_tick(st, due + 1000, fake_submit, &f, NULL, &err), 0);
  assert_int_equal(tasks_of(st, "tick"), 1);
  assert_int_equal(berth_schedule_tick(st, due + 2000, fake_submit, &f, NULL, &err), 0);
  assert_int_equal(tasks_of(st, "tick"), 1);
  /* another host that read the schedule before it was advanced: its fire finds the row, and submits nothing */
  assert_int_equal(berth_store_schedule_advance(st, s->id, due + 60000, due, &err), 0);
  assert_int_equal(berth_schedule_tick(other, due + 3000, fake_submit, &f, NULL, &err), 0);
  assert_int_equal(tasks_of(st, "tick"), 1);
  berth_schedule_free(s);
  assert_int_equal(berth_store_schedule_get(st, "web", "tick", &s, &err), 0);
  assert_int_equal(s->next_fire, due + 60000);
  assert_string_equal(s->last_outcome, "submitted");
  /* and in a true race, the second insert of one fire time is refused inside the task's transaction */
  assert_int_equal(berth_store_schedule_fire(other, s->id, due, "submitted", NULL, NULL, 0, &err), BERTH_EBUSY);
  berth_error_free(err);
  err = NULL;
  berth_schedule_free(s);
  assert_int_equal(berth_schedule_set_paused(st, "web", "tick", true, "alice", &err), 0);

  /* down across four fire times: once -> one task for the latest, three misses; skip -> none, recorded as missed */
  berth_schedule *once = add(st, "once", "*/10 * * * *", "once"), *skip = add(st, "skip", "*/10 * * * *", "skip");
  int64_t later = once->next_fire + 3 * 600000 + 61000; /* the latest missed time is 61 s late */
  assert_int_equal(berth_schedule_tick(st, later, fake_submit, &f, NULL, &err), 0);
  assert_int_equal(tasks_of(st, "once"), 1);
  assert_int_equal(tasks_of(st, "skip"), 0);
  berth_schedule_free(skip);
  assert_int_equal(berth_store_schedule_get(st, "web", "skip", &skip, &err), 0);
  assert_string_equal(skip->last_outcome, "missed");
  assert_true(skip->next_fire > later);
  int64_t submitted = 0, refused = 0, missed = 0;
  assert_int_equal(berth_store_schedule_counts(st, &submitted, &refused, &missed, &err), 0);
  assert_int_equal(missed, 3 + 4); /* once: the 3 before the one it fired; skip: all 4 */

  /* refused: recorded with the reason */
  f.refuse = true;
  assert_int_equal(berth_schedule_tick(st, skip->next_fire + 1000, fake_submit, &f, NULL, &err), 0);
  berth_schedule *r = NULL;
  assert_int_equal(berth_store_schedule_get(st, "web", "skip", &r, &err), 0);
  assert_string_equal(r->last_outcome, "refused");
  assert_non_null(strstr(r->last_message, "locked"));
  berth_schedule_free(r);
  f.refuse = false;

  /* paused: nothing */
  assert_int_equal(berth_schedule_set_paused(st, "web", "once", true, "alice", &err), 0);
  int before = tasks_of(st, "once");
  assert_int_equal(berth_schedule_tick(st, later + 3600 * 1000, fake_submit, &f, NULL, &err), 0);
  assert_int_equal(tasks_of(st, "once"), before);

  berth_schedule_free(once);
  berth_schedule_free(skip);
  berth_stack_free(stack);
  berth_store_close(other);
  berth_store_close(st);
}

static void
test_at_once(void **state)
{
  const char *home = *state;
  berth_store *st = open_ok(home);
  berth_error *err = NULL;
  berth_stack *stack = berth_stack_new();
  stack->name = strdup("web");
  stack->image = strdup("busybox:latest");
  assert_int_equal(berth_store_stack_create(st, stack, &err), 0);
  berth_schedule *s = calloc(1, sizeof *s);
  s->stack = strdup("web");
  s->name = strdup("one");
  s->command = strdup("true");
  s->catch_up = strdup("once");
  s->at_ms = berth_now_ms() + 60000;
  assert_int_equal(berth_schedule_add(st, s, "alice", NULL, &err), 0);
  fake f = { 0 };
  assert_int_equal(berth_schedule_tick(st, s->at_ms + 10, fake_submit, &f, NULL, &err), 0);
  assert_int_equal(berth_schedule_tick(st, s->at_ms + 120000, fake_submit, &f, NULL, &err), 0);
  assert_int_equal(tasks_of(st, "one"), 1);
  berth_schedule *got = NULL;
  assert_int_equal(berth_store_schedule_get(st, "web", "one", &got, &err), 0);
  assert_int_equal(got->next_fire, 0); /* done */
  berth_schedule_free(got);
  berth_schedule_free(s);
  berth_stack_free(stack);
  berth_store_close(st);
}

int
main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_firing, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_at_once, engine_setup, engine_teardown),
  };
  on_pg = pg_test_wanted(argc, argv);
  return cmocka_run_group_tests_name(on_pg ? "postgresql" : "sqlite", tests, NULL, NULL);
}
