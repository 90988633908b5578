/* Webhooks: the signature, the backoff, validation, and the outbox in the store: a task's every state is an event
 * with an increasing state_version, fanned out once per webhook, claimed by one deliverer, every attempt kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "berth/store.h"
#include "berth/webhook.h"
#include "store_helpers.h"

static void
test_signature(void **state)
{
  (void) state;
  char sig[BERTH_WEBHOOK_SIGNATURE_LEN];
  const char body[] = "{\"a\":1}";
  /* python3: hmac.new(b"It is a secret", b'1796299200.{"a":1}', hashlib.sha256).hexdigest() */
  berth_webhook_sign("It is a secret", 1796299200, body, strlen(body), sig);
  assert_string_equal(sig, "sha256=fd1b713ced85049706057c67ce18cccbc2a9e0f118c561e94b55bd4a6eb2c241");
  berth_webhook_sign("It is a secret", 1796299201, body, strlen(body), sig);
  assert_string_not_equal(sig, "sha256=fd1b713ced85049706057c67ce18cccbc2a9e0f118c561e94b55bd4a6eb2c241");
}

static void
test_backoff(void **state)
{
  (void) state;
  unsetenv("BERTH_WEBHOOK_BACKOFF_MS");
  int64_t total = 0;
  for (int i = 1; i < BERTH_WEBHOOK_ATTEMPTS; i++)
    total += berth_webhook_backoff_ms(i);
  assert_int_equal(berth_webhook_backoff_ms(1), 15000);
  assert_int_equal(berth_webhook_backoff_ms(2), 30000);
  assert_true(BERTH_WEBHOOK_ATTEMPTS >= 8);
  assert_true(total >= 50 * 60 * 1000 && total <= 80 * 60 * 1000); /* about an hour */
  setenv("BERTH_WEBHOOK_BACKOFF_MS", "200", 1);
  assert_int_equal(berth_webhook_backoff_ms(3), 800);
  unsetenv("BERTH_WEBHOOK_BACKOFF_MS");
}

static berth_webhook *
hook(const char *name, const char *url)
{
  berth_webhook *w = calloc(1, sizeof *w);
  w->name = strdup(name);
  w->url = strdup(url);
  w->secret = strdup("s3cr3t-value");
  berth_strv_push(&w->events, "task.state");
  return w;
}

static void
test_validation(void **state)
{
  (void) state;
  const char *bad[] = { "file:///etc/passwd", "gopher://x/", "ftp://x/", "http://x/a b", "" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    berth_webhook *w = hook("h", bad[i]);
    berth_error *err = NULL;
    assert_int_equal(berth_webhook_validate(w, &err), BERTH_EINVAL);
    assert_null(strstr(err->msg, "s3cr3t"));
    berth_error_free(err);
    berth_webhook_free(w);
  }
  berth_webhook *w = hook("h", "https://example.invalid/x");
  berth_error *err = NULL;
  assert_int_equal(berth_webhook_validate(w, &err), 0);
  cJSON *j = berth_webhook_to_json(w);
  char *text = cJSON_PrintUnformatted(j);
  assert_null(strstr(text, "s3cr3t")); /* never in its JSON */
  free(text);
  cJSON_Delete(j);
  berth_webhook_free(w);
}

static void
test_outbox(void **state)
{
  const char *home = *state;
  berth_store *st = open_ok(home);
  berth_error *err = NULL;
  berth_stack *s = berth_stack_new();
  s->name = strdup("web");
  s->image = strdup("busybox:latest");
  assert_int_equal(berth_store_stack_create(st, s, &err), 0);
  berth_task t0 = { .stack = "web", .command = "true", .actor = "me" };
  assert_int_equal(berth_store_task_create(st, &t0, &err), 0); /* no webhook yet: no event */
  berth_webhook *w = hook("h", "http://127.0.0.1:9/");
  assert_int_equal(berth_webhook_add(st, w, "me", &err), 0);
  berth_task t = { .stack = "web", .command = "true", .actor = "me" };
  assert_int_equal(berth_store_task_create(st, &t, &err), 0);
  assert_int_equal(berth_store_task_transition(st, t.id, "PREPARING", "me", NULL, NULL, -1, &err), 0);
  assert_int_equal(berth_store_task_transition(st, t.id, "FAILED", "me", NULL, "boom", -1, &err), 0);
  berth_outbox_event *ev = NULL;
  size_t n = 0;
  assert_int_equal(berth_store_outbox_pending(st, 100, &ev, &n, &err), 0);
  assert_int_equal(n, 3);
  const char *want[] = { "QUEUED", "PREPARING", "FAILED" };
  for (size_t i = 0; i < n; i++) {
    cJSON *p = cJSON_Parse(ev[i].payload), *task = cJSON_GetObjectItemCaseSensitive(p, "task");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(task, "state")), want[i]);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(task, "state_version")->valueint, (int) i + 1);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(task, "id")), t.id);
    cJSON_Delete(p);
    int64_t ids[1] = { 1 };
    assert_int_equal(berth_store_outbox_fan_out(st, ev[i].id, ids, 1, &err), 0);
    assert_int_equal(berth_store_outbox_fan_out(st, ev[i].id, ids, 1, &err), 0); /* twice: still one delivery */
  }
  berth_outbox_events_free(ev, n);
  /* one claim per delivery; a claimed one is nobody else's until its lease ends */
  berth_delivery *d = NULL;
  int64_t now = berth_now_ms();
  int claimed = 0;
  while (berth_store_delivery_claim(st, "a", now, 30000, &d, &err) == 1) {
    claimed++;
    assert_int_equal(berth_store_delivery_attempt(st, d->id, 1, now, 500, 12, "the receiver answered 500", "pending",
                                                  now + 1000, &err),
                     0);
    berth_delivery_free(d);
    d = NULL;
  }
  assert_int_equal(claimed, 3);
  assert_int_equal(berth_store_delivery_claim(st, "b", now + 500, 30000, &d, &err), 0); /* not due yet */
  assert_int_equal(berth_store_delivery_claim(st, "b", now + 1000, 30000, &d, &err), 1);
  assert_int_equal(d->attempts, 1);
  assert_int_equal(berth_store_delivery_attempt(st, d->id, 2, now, 200, 5, NULL, "delivered", 0, &err), 0);
  berth_delivery_free(d);
  berth_delivery_counts c;
  assert_int_equal(berth_store_delivery_counts(st, &c, &err), 0);
  assert_int_equal(c.attempts_ok, 1);
  assert_int_equal(c.attempts_failed, 3);
  assert_int_equal(c.delivered, 1);
  assert_int_equal(c.pending, 2);
  cJSON *j = NULL;
  assert_int_equal(berth_webhook_deliveries_json(st, "h", 0, &j, &err), 0);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "deliveries")), 3);
  cJSON_Delete(j);
  /* retention: what ended goes, what is pending stays */
  assert_int_equal(berth_store_events_prune(st, berth_now_ms() + 1000, &err), 0);
  assert_int_equal(berth_store_delivery_counts(st, &c, &err), 0);
  assert_int_equal(c.delivered, 0);
  assert_int_equal(c.pending, 2);
  assert_int_equal(berth_webhook_remove(st, "h", "me", &err), 0);
  assert_int_equal(berth_store_delivery_counts(st, &c, &err), 0);
  assert_int_equal(c.pending + c.delivered + c.failed, 0);
  berth_webhook_free(w);
  free(t0.id);
  free(t0.state);
  free(t.id);
  free(t.state);
  berth_stack_free(s);
  berth_store_close(st);
}

int
main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_signature),
    cmocka_unit_test(test_backoff),
    cmocka_unit_test(test_validation),
    cmocka_unit_test_setup_teardown(test_outbox, engine_setup, engine_teardown),
  };
  on_pg = pg_test_wanted(argc, argv);
  return cmocka_run_group_tests_name(on_pg ? "postgresql" : "sqlite", tests, NULL, NULL);
}
