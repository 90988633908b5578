/* Admin config tests: defaults when the file is missing, every key read, every bad value refused with one line
 * naming the key and the file, and the pull policy restriction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "berth/config.h"

static char home[256];

static int
setup(void **state)
{
  (void) state;
  snprintf(home, sizeof home, "/tmp/berth-test-config-XXXXXX");
  return mkdtemp(home) ? 0 : -1;
}

static int
teardown(void **state)
{
  (void) state;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
  return system(cmd) == 0 ? 0 : -1;
}

static void
write_config(const char *text)
{
  char path[512];
  snprintf(path, sizeof path, "%s/config.json", home);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void
test_defaults(void **state)
{
  (void) state;
  berth_config c;
  berth_error *err = NULL;
  assert_int_equal(berth_config_load(home, &c, &err), 0);
  assert_int_equal(c.n_allowed_pull_policies, 3);
  assert_int_equal(c.min_secret_length, 4);
  assert_int_equal(c.max_parallel_tasks, 4);
  assert_true(c.default_memory == 2LL * 1024 * 1024 * 1024);
  assert_true(c.default_pids == 1024);
  assert_true(c.default_nano_cpus == 0);
  assert_false(c.allow_host_network);
  assert_true(c.builtin_patterns);
  assert_int_equal(c.n_patterns, 0);
  assert_null(c.store);
  assert_true(c.task_retention_ms == 0); /* every task kept until pruned */
  assert_true(c.max_log_bytes == 2LL << 30);
  for (size_t i = 0; i < 3; i++)
    assert_int_equal(berth_config_check_pull_policy(&c, c.allowed_pull_policies[i], &err), 0);
  berth_config_clear(&c);
  write_config("{}");
  assert_int_equal(berth_config_load(home, &c, &err), 0);
  assert_int_equal(c.max_parallel_tasks, 4);
  berth_config_clear(&c);
}

static void
test_all_keys(void **state)
{
  (void) state;
  write_config("{\"allowed_pull_policies\": [\"if-not-present\", \"never\"], \"min_secret_length\": 8,"
               " \"max_parallel_tasks\": 2, \"default_memory\": \"512m\", \"default_pids\": 256,"
               " \"default_cpus\": \"1.5\", \"allow_host_network\": true, \"builtin_patterns\": false,"
               " \"redaction_patterns\": {\"corp-token\": \"corp_[A-Za-z0-9]{20}\", \"pin\": \"PIN=(?<mask>\\\\d+)\"},"
               " \"store\": \"postgresql://berth@db.internal/berth\"}");
  berth_config c;
  berth_error *err = NULL;
  if (berth_config_load(home, &c, &err) < 0)
    fail_msg("%s", err->msg);
  assert_int_equal(c.n_allowed_pull_policies, 2);
  assert_int_equal(c.min_secret_length, 8);
  assert_int_equal(c.max_parallel_tasks, 2);
  assert_true(c.default_memory == 512LL * 1024 * 1024);
  assert_true(c.default_pids == 256);
  assert_true(c.default_nano_cpus == 1500000000LL);
  assert_true(c.allow_host_network);
  assert_false(c.builtin_patterns);
  assert_int_equal(c.n_patterns, 2);
  assert_string_equal(c.pattern_names[0], "corp-token");
  assert_string_equal(c.patterns[1], "PIN=(?<mask>\\d+)");
  assert_string_equal(c.store, "postgresql://berth@db.internal/berth");
  assert_int_equal(berth_config_check_pull_policy(&c, "never", &err), 0);
  assert_int_equal(berth_config_check_pull_policy(&c, "always", &err), BERTH_EDENIED);
  assert_string_equal(err->msg,
                      "pull policy `always` is not allowed by the admin config (allowed: if-not-present, never)");
  berth_error_clear(&err);
  assert_int_equal(berth_config_check_pull_policy(&c, "sometimes", &err), BERTH_EINVAL);
  berth_error_clear(&err);
  berth_config_clear(&c);
  /* numbers are accepted where a size or a cpu count is expected */
  write_config("{\"default_memory\": 134217728, \"default_cpus\": 2}");
  assert_int_equal(berth_config_load(home, &c, &err), 0);
  assert_true(c.default_memory == 134217728LL);
  assert_true(c.default_nano_cpus == 2000000000LL);
  berth_config_clear(&c);
  write_config("{\"task_retention\": \"90d\", \"max_log_bytes\": \"1g\"}");
  assert_int_equal(berth_config_load(home, &c, &err), 0);
  assert_true(c.task_retention_ms == 90LL * 24 * 3600 * 1000);
  assert_true(c.max_log_bytes == 1LL << 30);
  berth_config_clear(&c);
  write_config("{\"task_retention\": 0, \"max_log_bytes\": 0}");
  assert_int_equal(berth_config_load(home, &c, &err), 0);
  assert_true(c.task_retention_ms == 0 && c.max_log_bytes == 0);
  berth_config_clear(&c);
}

static void
test_bad_values(void **state)
{
  (void) state;
  static const struct {
    const char *text;
    const char *want;
  } cases[] = {
    { "{\"max_parallel_tasks\": 0}", "key `max_parallel_tasks` must be an integer from 1 to 1024" },
    { "{\"max_parallel_tasks\": 2.5}", "key `max_parallel_tasks` must be an integer" },
    { "{\"max_parallel_tasks\": \"4\"}", "key `max_parallel_tasks` must be an integer" },
    { "{\"min_secret_length\": 0}", "key `min_secret_length` must be an integer from 1 to 1024" },
    { "{\"default_pids\": -1}", "key `default_pids` must be an integer from 1 to 4194304" },
    { "{\"default_memory\": \"1m\"}", "key `default_memory` must be a size" },
    { "{\"default_memory\": \"lots\"}", "key `default_memory` must be a size" },
    { "{\"default_cpus\": \"-1\"}", "key `default_cpus` must be a number of cpus" },
    { "{\"default_cpus\": true}", "key `default_cpus` must be a number of cpus" },
    { "{\"allow_host_network\": \"yes\"}", "key `allow_host_network` must be true or false" },
    { "{\"builtin_patterns\": 1}", "key `builtin_patterns` must be true or false" },
    { "{\"allowed_pull_policies\": []}", "key `allowed_pull_policies` must be a non-empty array" },
    { "{\"allowed_pull_policies\": [\"sometimes\"]}", "key `allowed_pull_policies` must be a non-empty array" },
    { "{\"allowed_pull_policies\": [\"never\", \"never\"]}", "key `allowed_pull_policies` must be a non-empty array" },
    { "{\"redaction_patterns\": [\"x\"]}", "key `redaction_patterns` must be an object" },
    { "{\"redaction_patterns\": {\"p\": \"(unclosed\"}}", "key `redaction_patterns.p`" },
    { "{\"redaction_patterns\": {\"p\": \"\"}}", "key `redaction_patterns.p` must be a non-empty PCRE2 pattern" },
    { "{\"max_paralel_tasks\": 2}", "unknown key `max_paralel_tasks`" },
    { "{\"task_retention\": \"soon\"}", "key `task_retention` must be a duration with its unit such as \"90d\"" },
    { "{\"task_retention\": \"30\"}", "key `task_retention` must be a duration with its unit" },
    { "{\"task_retention\": 30}", "key `task_retention` must be a duration" },
    { "{\"task_retention\": \"4000d\"}",
      "key `task_retention` must be a duration with its unit such as \"90d\" (at most 3650 days)" },
    { "{\"max_log_bytes\": \"100k\"}", "key `max_log_bytes` must be a size" },
    { "{\"store\": 5}", "key `store` must be a postgresql:// URL or libpq key=value settings" },
    { "{\"store\": \"\"}", "key `store` must be a postgresql:// URL" },
    { "{\"store\": \"postgresql://u:hunter2@h/db\\nx\"}", "key `store` must be" },
    { "{\"default_pids\": 5, \"default_pids\": 6}", "key `default_pids` appears twice" },
    { "[1]", "must be a JSON object" },
    { "{} trailing", "has trailing data after the JSON object (byte 3)" },
    { "{\"oidc_issuer\": \"https://\"}", "key `oidc_issuer` must be an http(s) URL" },
    { "{\"a\": ", "is not valid JSON" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    write_config(cases[i].text);
    berth_config c;
    berth_error *err = NULL;
    if (berth_config_load(home, &c, &err) == 0)
      fail_msg("accepted: %s", cases[i].text);
    assert_int_equal(err->code, BERTH_EINVAL);
    if (strstr(err->msg, cases[i].want) == NULL || strstr(err->msg, home) == NULL)
      fail_msg("config %s\n  error: %s\n  want:  %s (and the file name)", cases[i].text, err->msg, cases[i].want);
    assert_null(strchr(err->msg, '\n'));
    assert_null(strstr(err->msg, "hunter2")); /* a store's password is never echoed */
    assert_null(c.allowed_pull_policies);     /* left cleared */
    berth_error_free(err);
  }
  /* a bad regex names its offset */
  write_config("{\"redaction_patterns\": {\"p\": \"ab(c\"}}");
  berth_config c;
  berth_error *err = NULL;
  assert_true(berth_config_load(home, &c, &err) < 0);
  assert_non_null(strstr(err->msg, "offset"));
  berth_error_free(err);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
    cmocka_unit_test_setup_teardown(test_all_keys, setup, teardown),
    cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
