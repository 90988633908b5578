/* Task policy tests: validation messages (tests/data/policy/invalid.json), evaluation of every condition, time
 * windows, deny precedence, fail-closed regex limits, and the policy table in a real store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "berth/policy.h"
#include "berth/store.h"

/* 2024-05-04 is a Saturday, 2024-05-06 a Monday (UTC). */
#define SAT_10H 1714816800000LL /* 2024-05-04T10:00:00Z */
#define MON_10H 1714989600000LL /* 2024-05-06T10:00:00Z */
#define HOUR_MS 3600000LL

static char *
read_data(const char *rel)
{
  const char *dir = getenv("BERTH_TEST_DATA");
  if (dir == NULL)
    fail_msg("BERTH_TEST_DATA is not set (run through ctest)");
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    fail_msg("cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = malloc((size_t) n + 1);
  assert_non_null(text);
  assert_int_equal(fread(text, 1, (size_t) n, f), (size_t) n);
  text[n] = '\0';
  fclose(f);
  return text;
}

static void
test_invalid_files(void **state)
{
  (void) state;
  char *text = read_data("policy/invalid.json");
  cJSON *cases = cJSON_Parse(text);
  free(text);
  assert_non_null(cases);
  const cJSON *c;
  int n = 0;
  cJSON_ArrayForEach(c, cases)
  {
    const char *t = cJSON_GetObjectItemCaseSensitive(c, "text")->valuestring;
    const char *want = cJSON_GetObjectItemCaseSensitive(c, "error")->valuestring;
    berth_error *err = NULL;
    size_t rules = 0;
    if (berth_policy_validate_json(t, &rules, &err) == 0)
      fail_msg("accepted: %s", t);
    assert_int_equal(err->code, BERTH_EINVAL);
    if (strstr(err->msg, want) == NULL)
      fail_msg("policy %s\n  error: %s\n  want:  %s", t, err->msg, want);
    assert_null(strchr(err->msg, '\n'));
    berth_error_free(err);
    n++;
  }
  assert_true(n >= 20);
  cJSON_Delete(cases);
}

static void
test_examples_valid(void **state)
{
  (void) state;
  char *text = read_data("policy/examples.json");
  berth_error *err = NULL;
  size_t n = 0;
  if (berth_policy_validate_json(text, &n, &err) < 0)
    fail_msg("%s", err->msg);
  assert_int_equal(n, 4);
  free(text);
  text = read_data("policy/no-destroy.json");
  assert_int_equal(berth_policy_validate_json(text, &n, &err), 0);
  assert_int_equal(n, 1);
  free(text);
}

/* Evaluates `in` against the rules in `json`; returns denied and fills *rule / the matched list joined by ",". */
static bool
eval(const char *json, const berth_policy_input *in, char *rule, size_t rule_len, char *matched, size_t mlen)
{
  berth_policy_result r;
  berth_error *err = NULL;
  if (berth_policy_evaluate_json(json, in, &r, &err) < 0)
    fail_msg("evaluate: %s", err->msg);
  snprintf(rule, rule_len, "%s", r.rule ? r.rule : "-");
  matched[0] = '\0';
  for (size_t i = 0; i < r.n_matched; i++) {
    strncat(matched, i ? "," : "", mlen - strlen(matched) - 1);
    strncat(matched, r.matched[i], mlen - strlen(matched) - 1);
  }
  bool denied = r.denied;
  if (denied)
    assert_non_null(r.message);
  else
    assert_null(r.message);
  berth_policy_result_clear(&r);
  return denied;
}

static const char *const prod_labels[] = { "prod", "pci-dss" };

static void
test_conditions(void **state)
{
  (void) state;
  char *ex = read_data("policy/examples.json");
  char rule[128], m[512];
  berth_policy_input in = {
    .stack = "prod-db", .labels = prod_labels, .n_labels = 2, .actor = "alice", .role = "writer", .now_ms = MON_10H
  };
  /* command regex, anchored */
  in.command = "terraform destroy -auto-approve";
  assert_true(eval(ex, &in, rule, sizeof rule, m, sizeof m));
  assert_string_equal(rule, "no-destroy");
  assert_string_equal(m, "no-destroy (deny)");
  in.command = "echo terraform destroy";
  assert_false(eval(ex, &in, rule, sizeof rule, m, sizeof m));
  assert_string_equal(m, "");
  in.command = "terraform destroyer";
  assert_false(eval(ex, &in, rule, sizeof rule, m, sizeof m));
  /* allow rules match and are reported, but decide nothing against a deny */
  in.command = "terraform plan";
  assert_false(eval(ex, &in, rule, sizeof rule, m, sizeof m));
  assert_string_equal(rule, "plans-are-fine");
  assert_string_equal(m, "plans-are-fine (allow)");
  /* weekday + stack glob + role: all must match */
  in.now_ms = SAT_10H;
  assert_true(eval(ex, &in, rule, sizeof rule, m, sizeof m));
  assert_string_equal(rule, "weekday-only");
  assert_string_equal(m, "weekday-only (deny),plans-are-fine (allow)");
  in.role = "admin";
  assert_false(eval(ex, &in, rule, sizeof rule, m, sizeof m));
  in.role = NULL; /* the local owner counts as admin */
  assert_false(eval(ex, &in, rule, sizeof rule, m, sizeof m));
  in.role = "writer";
  in.stack = "staging-db";
  assert_false(eval(ex, &in, rule, sizeof rule, m, sizeof m));
  /* label glob (pci-*) and the hours window: 10:00 is inside 09-17, so the out-of-hours deny does not match */
  in.now_ms = MON_10H;
  in.command = "make apply";
  assert_false(eval(ex, &in, rule, sizeof rule, m, sizeof m));
  in.now_ms = MON_10H - 2 * HOUR_MS; /* 08:00 */
  assert_true(eval(ex, &in, rule, sizeof rule, m, sizeof m));
  assert_string_equal(rule, "office-hours");
  in.now_ms = MON_10H + 7 * HOUR_MS; /* 17:00: the window 09-17 ends before 17:00 */
  assert_true(eval(ex, &in, rule, sizeof rule, m, sizeof m));
  in.now_ms = MON_10H + 7 * HOUR_MS - 1; /* 16:59:59.999 */
  assert_false(eval(ex, &in, rule, sizeof rule, m, sizeof m));
  in.n_labels = 1; /* only "prod": no label matches critical / pci-* */
  in.now_ms = MON_10H - 2 * HOUR_MS;
  assert_false(eval(ex, &in, rule, sizeof rule, m, sizeof m));
  in.n_labels = 0;
  assert_false(eval(ex, &in, rule, sizeof rule, m, sizeof m));
  free(ex);
}

static void
test_actors_and_wrap(void **state)
{
  (void) state;
  const char *rules = "[{\"name\":\"night\",\"when\":{\"hours\":\"22-06\"},\"actors\":[\"bob\"],\"decision\":\"deny\"},"
                      " {\"name\":\"all\",\"decision\":\"allow\"}]";
  char rule[128], m[512];
  berth_policy_input in = { .stack = "s", .command = "true", .actor = "bob", .now_ms = MON_10H + 13 * HOUR_MS };
  assert_true(eval(rules, &in, rule, sizeof rule, m, sizeof m)); /* 23:00 */
  assert_string_equal(m, "night (deny),all (allow)");
  in.now_ms = MON_10H - 5 * HOUR_MS; /* 05:00 */
  assert_true(eval(rules, &in, rule, sizeof rule, m, sizeof m));
  in.now_ms = MON_10H - 4 * HOUR_MS; /* 06:00 */
  assert_false(eval(rules, &in, rule, sizeof rule, m, sizeof m));
  assert_string_equal(rule, "all");
  in.now_ms = MON_10H + 13 * HOUR_MS;
  in.actor = "bobby";
  assert_false(eval(rules, &in, rule, sizeof rule, m, sizeof m));
  /* the default deny message names the rule */
  berth_policy_result r;
  berth_error *err = NULL;
  in.actor = "bob";
  assert_int_equal(berth_policy_evaluate_json(rules, &in, &r, &err), 0);
  assert_string_equal(r.message, "denied by policy `night`");
  berth_policy_result_clear(&r);
}

static void
test_deny_wins(void **state)
{
  (void) state;
  char rule[128], m[512];
  berth_policy_input in = { .stack = "s", .command = "terraform apply", .actor = "a", .now_ms = MON_10H };
  /* allow first, deny second: the deny decides; the first matching deny is the deciding rule */
  const char *rules = "[{\"name\":\"ok\",\"decision\":\"allow\"},"
                      " {\"name\":\"d1\",\"command\":\"apply\",\"decision\":\"deny\",\"message\":\"m1\"},"
                      " {\"name\":\"d2\",\"command\":\"terraform\",\"decision\":\"deny\",\"message\":\"m2\"}]";
  assert_true(eval(rules, &in, rule, sizeof rule, m, sizeof m));
  assert_string_equal(rule, "d1");
  assert_string_equal(m, "ok (allow),d1 (deny),d2 (deny)");
  berth_policy_result r;
  berth_error *err = NULL;
  assert_int_equal(berth_policy_evaluate_json(rules, &in, &r, &err), 0);
  assert_string_equal(r.message, "m1");
  berth_policy_result_clear(&r);
  /* absent conditions match everything */
  assert_true(eval("{\"name\":\"freeze\",\"decision\":\"deny\"}", &in, rule, sizeof rule, m, sizeof m));
}

static void
test_regex_fails_closed(void **state)
{
  (void) state;
  /* catastrophic backtracking must be an error (the task is refused), never a silent "no match" */
  const char *rules = "{\"name\":\"evil\",\"command\":\"^(\\\\w+\\\\s?)*$\",\"decision\":\"deny\"}";
  char cmd[200];
  memset(cmd, 'a', 60);
  strcpy(cmd + 60, "!");
  berth_policy_input in = { .stack = "s", .command = cmd, .actor = "a", .now_ms = MON_10H };
  berth_policy_result r;
  berth_error *err = NULL;
  assert_true(berth_policy_evaluate_json(rules, &in, &r, &err) < 0);
  assert_non_null(strstr(err->msg, "policy rule `evil`"));
  berth_error_free(err);
}

/* ---- the policy table ---- */

static char home[256];

static int
setup_store(void **state)
{
  snprintf(home, sizeof home, "/tmp/berth-test-policy-XXXXXX");
  assert_non_null(mkdtemp(home));
  berth_store *st = NULL;
  berth_error *err = NULL;
  if (berth_store_open(home, &st, &err) < 0)
    fail_msg("open store: %s", err->msg);
  *state = st;
  return 0;
}

static int
teardown_store(void **state)
{
  berth_store_close(*state);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
  return system(cmd) == 0 ? 0 : -1;
}

static void
test_store(void **state)
{
  berth_store *st = *state;
  berth_error *err = NULL;
  char *ex = read_data("policy/examples.json");
  size_t added = 0;
  assert_int_equal(berth_policy_add_json(st, ex, "admin1", &added, &err), 0);
  assert_int_equal(added, 4);
  free(ex);
  berth_policy_input in
      = { .stack = "prod-db", .command = "terraform destroy", .actor = "a", .role = "writer", .now_ms = MON_10H };
  berth_policy_result r;
  assert_int_equal(berth_policy_evaluate(st, &in, &r, &err), 0);
  assert_true(r.denied);
  assert_string_equal(r.rule, "no-destroy");
  assert_string_equal(r.message, "destroy is not allowed from tasks");
  berth_policy_result_clear(&r);

  /* a file with one bad rule stores nothing */
  const char *bad
      = "[{\"name\":\"new\",\"decision\":\"deny\"},{\"name\":\"x\",\"decision\":\"deny\",\"command\":\"[\"}]";
  assert_true(berth_policy_add_json(st, bad, "admin1", &added, &err) < 0);
  assert_non_null(strstr(err->msg, "rule `x`"));
  berth_error_clear(&err);
  cJSON *list = berth_policy_list_json(st, &err);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(list, "policies")), 4);
  cJSON_Delete(list);

  /* re-adding a name replaces the rule in place */
  const char *soft = "{\"name\":\"no-destroy\",\"command\":\"^terraform\\\\s+destroy\\\\b\",\"decision\":\"allow\"}";
  assert_int_equal(berth_policy_add_json(st, soft, "admin2", &added, &err), 0);
  assert_int_equal(berth_policy_evaluate(st, &in, &r, &err), 0);
  assert_false(r.denied);
  assert_string_equal(r.matched[0], "no-destroy (allow)");
  berth_policy_result_clear(&r);
  list = berth_policy_list_json(st, &err);
  const cJSON *pols = cJSON_GetObjectItemCaseSensitive(list, "policies");
  assert_int_equal(cJSON_GetArraySize(pols), 4);
  const cJSON *p0 = cJSON_GetArrayItem(pols, 0);
  assert_string_equal(cJSON_GetObjectItemCaseSensitive(p0, "name")->valuestring, "no-destroy");
  assert_string_equal(cJSON_GetObjectItemCaseSensitive(p0, "actor")->valuestring, "admin2");
  assert_string_equal(
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p0, "rule"), "decision")->valuestring, "allow");
  cJSON_Delete(list);

  assert_int_equal(berth_policy_remove(st, "no-destroy", &err), 0);
  assert_int_equal(berth_policy_remove(st, "no-destroy", &err), BERTH_ENOTFOUND);
  assert_string_equal(err->msg, "no policy `no-destroy`");
  berth_error_clear(&err);
  assert_int_equal(berth_policy_remove(st, "bad name", &err), BERTH_EINVAL);
  berth_error_clear(&err);

  /* inside the caller's transaction a rollback undoes the add */
  assert_int_equal(berth_store_begin(st, &err), 0);
  assert_int_equal(berth_policy_add_json(st, "{\"name\":\"tmp\",\"decision\":\"deny\"}", "a", &added, &err), 0);
  berth_store_rollback(st);
  assert_int_equal(berth_policy_evaluate(st, &in, &r, &err), 0);
  assert_int_equal(r.n_matched, 0);
  berth_policy_result_clear(&r);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_invalid_files),
    cmocka_unit_test(test_examples_valid),
    cmocka_unit_test(test_conditions),
    cmocka_unit_test(test_actors_and_wrap),
    cmocka_unit_test(test_deny_wins),
    cmocka_unit_test(test_regex_fails_closed),
    cmocka_unit_test_setup_teardown(test_store, setup_store, teardown_store),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
