/* Parsing of durations, sizes, cpus, env pairs and relative paths, and their display forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "berth/parse.h"

static int64_t
dur(const char *s)
{
  int64_t v = -1;
  berth_error *err = NULL;
  assert_int_equal(berth_parse_duration_ms(s, &v, &err), 0);
  assert_null(err);
  return v;
}

static void
dur_bad(const char *s)
{
  int64_t v = 12345;
  berth_error *err = NULL;
  assert_int_equal(berth_parse_duration_ms(s, &v, &err), BERTH_EINVAL);
  assert_non_null(err);
  assert_int_equal(err->code, BERTH_EINVAL);
  assert_null(strchr(err->msg, '\n'));
  assert_non_null(strstr(err->msg, "duration"));
  assert_int_equal(v, 12345); /* untouched on failure */
  berth_error_free(err);
}

static void
test_durations(void **state)
{
  (void) state;
  assert_int_equal(dur("90s"), 90000);
  assert_int_equal(dur("7m"), 420000);
  assert_int_equal(dur("1h30m"), 5400000);
  assert_int_equal(dur("500ms"), 500);
  assert_int_equal(dur("45"), 45000);
  assert_int_equal(dur("0"), 0);
  assert_int_equal(dur("1d"), 86400000);
  assert_int_equal(dur("1h0m1s5ms"), 3601005);
  dur_bad("");
  dur_bad("abc");
  dur_bad("-5s");
  dur_bad("5x");
  dur_bad("m");
  dur_bad("1.5h");
  dur_bad("5s ");
  dur_bad("99999999999999999999s");
  dur_bad("9223372036854775807h");
  /* the value is quoted in the message */
  berth_error *err = NULL;
  int64_t v;
  berth_parse_duration_ms("soon", &v, &err);
  assert_non_null(strstr(err->msg, "`soon`"));
  berth_error_free(err);
}

static int64_t
size(const char *s)
{
  int64_t v = -1;
  berth_error *err = NULL;
  assert_int_equal(berth_parse_size(s, &v, &err), 0);
  return v;
}

static void
size_bad(const char *s)
{
  int64_t v;
  berth_error *err = NULL;
  assert_int_equal(berth_parse_size(s, &v, &err), BERTH_EINVAL);
  assert_non_null(strstr(err->msg, "size"));
  berth_error_free(err);
}

static void
test_sizes(void **state)
{
  (void) state;
  assert_int_equal(size("512m"), 512LL << 20);
  assert_int_equal(size("1g"), 1LL << 30);
  assert_int_equal(size("64MiB"), 64LL << 20);
  assert_int_equal(size("1.5G"), 3LL << 29);
  assert_int_equal(size("1048576"), 1048576);
  assert_int_equal(size("2k"), 2048);
  assert_int_equal(size("1.3k"), 1331);
  assert_int_equal(size("10b"), 10);
  assert_int_equal(size("1TB"), 1LL << 40);
  size_bad("");
  size_bad("lots");
  size_bad("-1g");
  size_bad("1q");
  size_bad("1gibibytes");
  size_bad("1.g");
  size_bad(".5g");
  size_bad("99999999999t");
  size_bad("1 g");
}

static void
test_cpus_and_ints(void **state)
{
  (void) state;
  int64_t v;
  berth_error *err = NULL;
  assert_int_equal(berth_parse_cpus("1.5", &v, &err), 0);
  assert_int_equal(v, 1500000000);
  assert_int_equal(berth_parse_cpus("2", &v, &err), 0);
  assert_int_equal(v, 2000000000);
  assert_int_equal(berth_parse_cpus("0.001", &v, &err), 0);
  assert_int_equal(v, 1000000);
  const char *bad[] = { "", "-1", "1.5.5", "abc", "1e3", "0.0000000001", "99999999999999" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(berth_parse_cpus(bad[i], &v, &err), BERTH_EINVAL);
    assert_non_null(strstr(err->msg, "cpus"));
    berth_error_clear(&err);
  }
  assert_int_equal(berth_parse_int64("42", 1, 100, &v, &err), 0);
  assert_int_equal(v, 42);
  assert_int_equal(berth_parse_int64("0", 1, 100, &v, &err), BERTH_EINVAL);
  berth_error_clear(&err);
  assert_int_equal(berth_parse_int64("-3", 1, 100, &v, &err), BERTH_EINVAL);
  berth_error_clear(&err);
  assert_int_equal(berth_parse_int64("12a", 1, 100, &v, &err), BERTH_EINVAL);
  berth_error_clear(&err);
  assert_int_equal(berth_parse_int64("-3", -10, 10, &v, &err), 0);
  assert_int_equal(v, -3);
}

static void
test_env_pairs(void **state)
{
  (void) state;
  char *k = NULL, *v = NULL;
  berth_error *err = NULL;
  assert_int_equal(berth_parse_env_pair("TF_VAR_x=a=b", &k, &v, &err), 0);
  assert_string_equal(k, "TF_VAR_x");
  assert_string_equal(v, "a=b");
  free(k);
  free(v);
  assert_int_equal(berth_parse_env_pair("EMPTY=", &k, &v, &err), 0);
  assert_string_equal(v, "");
  free(k);
  free(v);
  const char *bad[] = { "NOEQ", "=v", "1X=v", "A-B=v", "A B=v" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(berth_parse_env_pair(bad[i], &k, &v, &err), BERTH_EINVAL);
    berth_error_clear(&err);
  }
  assert_true(berth_env_name_valid("_x1"));
  assert_false(berth_env_name_valid("9x"));

  /* K alone reads berth's environment; the value never appears in errors */
  setenv("BERTH_TEST_SECRET_X", "hunter2", 1);
  assert_int_equal(berth_parse_secret_env_pair("BERTH_TEST_SECRET_X", &k, &v, &err), 0);
  assert_string_equal(k, "BERTH_TEST_SECRET_X");
  assert_string_equal(v, "hunter2");
  free(k);
  free(v);
  assert_int_equal(berth_parse_secret_env_pair("TOKEN=abc", &k, &v, &err), 0);
  assert_string_equal(v, "abc");
  free(k);
  free(v);
  unsetenv("BERTH_TEST_MISSING");
  assert_int_equal(berth_parse_secret_env_pair("BERTH_TEST_MISSING", &k, &v, &err), BERTH_EINVAL);
  assert_non_null(strstr(err->msg, "BERTH_TEST_MISSING"));
  berth_error_clear(&err);
  assert_int_equal(berth_parse_secret_env_pair("bad-name=hunter2", &k, &v, &err), BERTH_EINVAL);
  assert_null(strstr(err->msg, "hunter2"));
  berth_error_clear(&err);
}

static void
test_relative_paths(void **state)
{
  (void) state;
  char *n = NULL;
  berth_error *err = NULL;
  assert_int_equal(berth_parse_relative_path("subdir", "infra/prod/", &n, &err), 0);
  assert_string_equal(n, "infra/prod");
  free(n);
  assert_int_equal(berth_parse_relative_path("subdir", "a//b", &n, &err), 0);
  assert_string_equal(n, "a/b");
  free(n);
  assert_int_equal(berth_parse_relative_path("subdir", "..foo/x..", &n, &err), 0);
  free(n);
  const char *bad[] = { "", "/abs", "..", "a/../b", "a/..", "./a", "a/./b" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(berth_parse_relative_path("subdir", bad[i], &n, &err), BERTH_EINVAL);
    assert_non_null(strstr(err->msg, "subdir"));
    berth_error_clear(&err);
  }
}

static void
test_formatting(void **state)
{
  (void) state;
  char b[64];
  assert_string_equal(berth_format_duration(4200000, b, sizeof b), "1h10m");
  assert_string_equal(berth_format_duration(420000, b, sizeof b), "7m");
  assert_string_equal(berth_format_duration(500, b, sizeof b), "500ms");
  assert_string_equal(berth_format_duration(0, b, sizeof b), "0s");
  assert_string_equal(berth_format_duration(90500, b, sizeof b), "1m30s500ms");
  assert_string_equal(berth_format_size(3LL << 29, b, sizeof b), "1.5GiB");
  assert_string_equal(berth_format_size(512LL << 20, b, sizeof b), "512MiB");
  assert_string_equal(berth_format_size(512, b, sizeof b), "512B");
  assert_string_equal(berth_format_size(1000, b, sizeof b), "1000B");
  assert_string_equal(berth_format_cpus(1500000000, b, sizeof b), "1.5");
  assert_string_equal(berth_format_cpus(2000000000, b, sizeof b), "2");
  assert_string_equal(berth_format_cpus(1000000, b, sizeof b), "0.001");
  assert_string_equal(berth_format_time(0, b, sizeof b), "-");
  assert_string_equal(berth_format_time(86400000, b, sizeof b), "1970-01-02T00:00:00.000Z");
  /* round trips */
  int64_t v;
  berth_error *err = NULL;
  assert_int_equal(berth_parse_duration_ms(berth_format_duration(5430250, b, sizeof b), &v, &err), 0);
  assert_int_equal(v, 5430250);
  assert_int_equal(berth_parse_size(berth_format_size(3LL << 29, b, sizeof b), &v, &err), 0);
  assert_int_equal(v, 3LL << 29);
}

/* Text berth stores and shows as JSON: well-formed UTF-8 only. */
static void
test_utf8(void **state)
{
  (void) state;
  assert_true(berth_utf8_valid(NULL));
  assert_true(berth_utf8_valid(""));
  assert_true(berth_utf8_valid("plain ascii"));
  assert_true(berth_utf8_valid("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x9a\xa2")); /* 2, 3 and 4 bytes */
  assert_false(berth_utf8_valid("\xff"));
  assert_false(berth_utf8_valid("x\xc3"));            /* cut short */
  assert_false(berth_utf8_valid("\xc3\x28"));         /* a continuation byte missing */
  assert_false(berth_utf8_valid("\xc0\xaf"));         /* overlong '/' */
  assert_false(berth_utf8_valid("\xe0\x80\xaf"));     /* overlong, 3 bytes */
  assert_false(berth_utf8_valid("\xed\xa0\x80"));     /* a surrogate */
  assert_false(berth_utf8_valid("\xf4\x90\x80\x80")); /* past U+10FFFF */
  assert_false(berth_utf8_valid("\x80"));             /* a lone continuation byte */
  char cut[] = "caf\xc3\xa9 \xc3";                    /* a value cut inside its last character, as %.Ns does */
  berth_utf8_repair(cut);
  assert_string_equal(cut, "caf\xc3\xa9 ?");
  char junk[] = "\xff\xe2\x82x";
  berth_utf8_repair(junk);
  assert_string_equal(junk, "???x");
  berth_error *err = NULL;
  assert_int_equal(berth_utf8_check("the note", "ok", &err), 0);
  assert_int_equal(berth_utf8_check("the note", "\xff", &err), BERTH_EINVAL);
  assert_string_equal(err->msg, "the note is not valid UTF-8");
  berth_error_free(err);
}

/* What cJSON would cut short is refused before it parses; keys given twice are found at any depth. */
static void
test_json_text(void **state)
{
  (void) state;
  static const char *const good[] = { "{}", "{\"a\": \"x\\u00e9\\ud83d\\ude80\\\\u0000\"}", "{\"\\\"\": 1}", NULL };
  static const char *const bad[] = { "{\"a\": \"\\u0000\"}",
                                     "{\"a\": \"\\uZZZZ\"}",
                                     "{\"a\": \"\\ud83d\"}",
                                     "{\"a\": \"\\ude80\"}",
                                     "{\"a\": \"\xff\"}",
                                     "{\"a\": \"\\u12\"}",
                                     NULL };
  for (int i = 0; good[i]; i++)
    assert_int_equal(berth_json_text_check(good[i], strlen(good[i]), NULL), 0);
  for (int i = 0; bad[i]; i++) {
    berth_error *err = NULL;
    assert_int_equal(berth_json_text_check(bad[i], strlen(bad[i]), &err), BERTH_EINVAL);
    berth_error_free(err);
  }
  cJSON *j = cJSON_Parse("{\"a\": {\"b\": 1, \"c\": [{\"d\": 1, \"d\": 2}]}}");
  assert_string_equal(berth_json_duplicate_key(j), "d");
  cJSON_Delete(j);
  j = cJSON_Parse("{\"a\": {\"a\": 1}, \"b\": [1, 1]}");
  assert_null(berth_json_duplicate_key(j));
  cJSON_Delete(j);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_durations), cmocka_unit_test(test_sizes),          cmocka_unit_test(test_cpus_and_ints),
    cmocka_unit_test(test_env_pairs), cmocka_unit_test(test_relative_paths), cmocka_unit_test(test_formatting),
    cmocka_unit_test(test_utf8),      cmocka_unit_test(test_json_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
