/* Image allowlist tests: the data-driven table (tests/data/allowlist/cases.json), GitLab Runner's allowed_images
 * vectors with our documented differences, and the rule table in a real store (add, remove, list, check,
 * transactions). */
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

#include "berth/allowlist.h"
#include "berth/store.h"
#include "peer_vectors.h"

/* rel under dir; a dir of NULL is BERTH_TEST_DATA (tests/data/, set by ctest). */
static cJSON *
load_json(const char *dir, const char *rel)
{
  if (dir == NULL && (dir = getenv("BERTH_TEST_DATA")) == NULL)
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
  cJSON *j = cJSON_Parse(text);
  free(text);
  if (j == NULL)
    fail_msg("%s is not valid JSON", path);
  return j;
}

static const char *
str_or_null(const cJSON *o, const char *k)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- the table ---- */

static void
test_normalize_table(void **state)
{
  (void) state;
  cJSON *all = load_json(NULL, "allowlist/cases.json");
  const cJSON *c;
  int n = 0;
  cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(all, "normalize"))
  {
    const char *p = str_or_null(c, "pattern"), *want = str_or_null(c, "expected");
    berth_error *err = NULL;
    char *got = berth_allowlist_normalize_pattern(p, &err);
    if (got == NULL)
      fail_msg("normalize `%s`: %s", p, err->msg);
    if (strcmp(got, want) != 0)
      fail_msg("normalize `%s`: got `%s`, want `%s`", p, got, want);
    /* normalizing is idempotent: the stored form means the same */
    char *again = berth_allowlist_normalize_pattern(got, &err);
    assert_non_null(again);
    assert_string_equal(again, got);
    free(again);
    free(got);
    n++;
  }
  assert_true(n >= 15);
  cJSON_Delete(all);
}

static void
test_invalid_patterns(void **state)
{
  (void) state;
  cJSON *all = load_json(NULL, "allowlist/cases.json");
  const cJSON *c;
  cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(all, "invalid_patterns"))
  {
    berth_error *err = NULL;
    char *got = berth_allowlist_normalize_pattern(c->valuestring, &err);
    if (got != NULL)
      fail_msg("pattern `%s` was accepted as `%s`", c->valuestring, got);
    assert_int_equal(err->code, BERTH_EINVAL);
    assert_non_null(strstr(err->msg, "invalid image pattern"));
    assert_null(strchr(err->msg, '\n'));
    berth_error_free(err);
  }
  char longp[600];
  memset(longp, 'a', sizeof longp - 1);
  longp[sizeof longp - 1] = '\0';
  berth_error *err = NULL;
  assert_null(berth_allowlist_normalize_pattern(longp, &err));
  assert_non_null(strstr(err->msg, "longer than 512"));
  berth_error_free(err);
  /* invalid references are errors, never decisions */
  cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(all, "invalid_refs"))
  {
    berth_image_decision d;
    err = NULL;
    const char *pats[] = { "**" }, *kinds[] = { "allow" };
    assert_int_equal(berth_allowlist_decide(pats, kinds, 1, c->valuestring, NULL, &d, &err), BERTH_EINVAL);
    assert_non_null(err);
    berth_error_free(err);
  }
  cJSON_Delete(all);
}

static void
run_decide_case(const cJSON *c)
{
  const char *name = str_or_null(c, "name"), *image = str_or_null(c, "image");
  const cJSON *rules = cJSON_GetObjectItemCaseSensitive(c, "rules");
  size_t n = (size_t) cJSON_GetArraySize(rules);
  const char *pats[16], *kinds[16];
  assert_true(n <= 16);
  for (size_t i = 0; i < n; i++) {
    const cJSON *r = cJSON_GetArrayItem(rules, (int) i);
    kinds[i] = cJSON_GetArrayItem(r, 0)->valuestring;
    pats[i] = cJSON_GetArrayItem(r, 1)->valuestring;
  }
  berth_image_decision d;
  berth_error *err = NULL;
  if (berth_allowlist_decide(pats, kinds, n, image, NULL, &d, &err) < 0)
    fail_msg("%s: %s", name, err->msg);
  bool want = strcmp(str_or_null(c, "expected"), "allowed") == 0;
  const char *want_pat = str_or_null(c, "pattern"), *want_kind = str_or_null(c, "kind");
  if (d.allowed != want)
    fail_msg("%s: `%s` was %s: %s", name, image, d.allowed ? "allowed" : "denied", d.reason);
  if (want_pat == NULL ? d.pattern != NULL : (d.pattern == NULL || strcmp(d.pattern, want_pat) != 0))
    fail_msg("%s: deciding pattern `%s`, want `%s`", name, d.pattern ? d.pattern : "(none)",
             want_pat ? want_pat : "(none)");
  assert_string_equal(d.kind, want_kind);
  /* the reason is one line naming the image, and the deciding pattern when there is one */
  assert_non_null(strstr(d.reason, d.normalized));
  assert_non_null(strstr(d.reason, d.allowed ? "is allowed" : "is not allowed"));
  if (d.pattern)
    assert_non_null(strstr(d.reason, d.pattern));
  berth_image_decision_clear(&d);
}

static void
test_decide_table(void **state)
{
  (void) state;
  cJSON *all = load_json(NULL, "allowlist/cases.json");
  const cJSON *c;
  int n = 0;
  cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(all, "decide"))
  {
    run_decide_case(c);
    n++;
  }
  assert_true(n >= 40);
  cJSON_Delete(all);
}

/* ---- GitLab Runner's allowed_images table ----
 * GitLab matches the image string as written (doublestar; `*` crosses `:`), allows everything when the list is
 * empty, and always allows its helper images. berth normalizes both the reference and the pattern (a pattern
 * without a tag means :latest), allows only its runner image when the list is empty, and has no helper images.
 * Every row must give GitLab's answer except these, which must give the opposite one (docs/governance.md,
 * "Compared with GitLab Runner"). Lines are in common/allowed_images_test.go. */
static const struct {
  int line;
  const char *why;
} gitlab_differences[] = {
  { 23, "`library/ruby` is the official `ruby`, which `*` (docker.io/library/*:latest) names" },
  { 25, "`library/ruby` has the implicit tag latest, so `**/*:*` matches (gitlab-runner#1844)" },
  { 27, "`library/ruby` has the implicit tag latest, so `*/*:*` matches (gitlab-runner#1844)" },
  { 29, "`**/*` has no tag, so it means :latest; 2.1 is another tag" },
  { 31, "`*/*` has no tag, so it means :latest; 2.1 is another tag" },
  { 51, "`*` has no tag, so it means :latest; 2.1 is another tag" },
  { 52, "`**/*` has no tag, so it means :latest; 2.1 is another tag" },
  { 55, "berth has no helper images that bypass the list" },
  { 56, "an empty list allows only berth's runner image, not everything" },
};

static const char *
gitlab_difference(int line)
{
  for (size_t i = 0; i < sizeof gitlab_differences / sizeof gitlab_differences[0]; i++)
    if (gitlab_differences[i].line == line)
      return gitlab_differences[i].why;
  return NULL;
}

static void
test_gitlab_vectors(void **state)
{
  (void) state;
  cJSON *all = load_json(peer_vectors_dir("GitLab Runner's allowed_images vectors"), "gitlab-allowed-images.json");
  const cJSON *c;
  size_t rows = 0, differ = 0;
  cJSON_ArrayForEach(c, all)
  {
    const cJSON *pats = cJSON_GetObjectItemCaseSensitive(c, "patterns");
    size_t n = (size_t) cJSON_GetArraySize(pats);
    const char *p[8], *k[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
      p[i] = cJSON_GetArrayItem(pats, (int) i)->valuestring;
      k[i] = "allow";
    }
    const char *source = str_or_null(c, "source"), *image = str_or_null(c, "image");
    const char *colon = strrchr(source, ':');
    assert_non_null(colon);
    const char *why = gitlab_difference(atoi(colon + 1));
    berth_image_decision d;
    berth_error *err = NULL;
    if (berth_allowlist_decide(p, k, n, image, NULL, &d, &err) < 0)
      fail_msg("%s: %s", source, err->msg);
    bool gitlab = strcmp(str_or_null(c, "expected"), "allowed") == 0;
    if (why == NULL && d.allowed != gitlab)
      fail_msg("%s: `%s` with %s: berth says %s, GitLab %s (%s)", source, image, n ? p[0] : "no patterns",
               d.allowed ? "allowed" : "denied", gitlab ? "allowed" : "denied", d.reason);
    if (why != NULL && d.allowed == gitlab)
      fail_msg("%s: documented difference (%s) no longer holds", source, why);
    differ += why != NULL;
    rows++;
    berth_image_decision_clear(&d);
  }
  assert_int_equal(rows, 36);
  assert_int_equal(differ, sizeof gitlab_differences / sizeof gitlab_differences[0]);
  cJSON_Delete(all);
}

/* ---- the rule table in a store ---- */

static char home[256];

static int
setup_store(void **state)
{
  snprintf(home, sizeof home, "/tmp/berth-test-allowlist-XXXXXX");
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

static bool
check(berth_store *st, const char *ref, char **pattern)
{
  berth_image_decision d;
  berth_error *err = NULL;
  if (berth_allowlist_check(st, ref, &d, &err) < 0)
    fail_msg("check %s: %s", ref, err->msg);
  bool ok = d.allowed;
  if (pattern) {
    *pattern = d.pattern;
    d.pattern = NULL;
  }
  berth_image_decision_clear(&d);
  return ok;
}

static void
test_store_rules(void **state)
{
  berth_store *st = *state;
  berth_error *err = NULL;
  /* empty: only the default runner image */
  assert_true(check(st, "berth/runner", NULL));
  assert_false(check(st, "ubuntu", NULL));
  assert_int_equal(berth_allowlist_count(st, &err), 0);

  assert_int_equal(berth_allowlist_add(st, "allow", "ubuntu:*", "alice", &err), 0);
  assert_int_equal(berth_allowlist_add(st, "allow", "docker.io/library/ubuntu:*", "bob", &err), 1); /* same rule */
  assert_int_equal(berth_allowlist_add(st, "deny", "ubuntu:*", "bob", &err), BERTH_EBUSY);
  assert_non_null(strstr(err->msg, "already an allow rule"));
  berth_error_clear(&err);
  assert_int_equal(berth_allowlist_add(st, "maybe", "ubuntu", "bob", &err), BERTH_EINVAL);
  berth_error_clear(&err);
  assert_int_equal(berth_allowlist_add(st, "allow", "Bad Pattern", "bob", &err), BERTH_EINVAL);
  berth_error_clear(&err);
  assert_true(check(st, "ubuntu:22.04", NULL));
  assert_true(check(st, "berth/runner", NULL)); /* rules present: the default image stays allowed unless denied */

  assert_int_equal(berth_allowlist_add(st, "deny", "ubuntu:1*", "carol", &err), 0);
  char *pat = NULL;
  assert_false(check(st, "ubuntu:18.04", &pat));
  assert_string_equal(pat, "docker.io/library/ubuntu:1*");
  free(pat);

  cJSON *list = berth_allowlist_list_json(st, &err);
  assert_non_null(list);
  const cJSON *rules = cJSON_GetObjectItemCaseSensitive(list, "rules");
  assert_int_equal(cJSON_GetArraySize(rules), 2);
  const cJSON *r0 = cJSON_GetArrayItem(rules, 0);
  assert_string_equal(str_or_null(r0, "pattern"), "docker.io/library/ubuntu:*");
  assert_string_equal(str_or_null(r0, "kind"), "allow");
  assert_string_equal(str_or_null(r0, "actor"), "alice");
  /* the one time format: ISO 8601 UTC with milliseconds */
  const char *created = str_or_null(r0, "created_at");
  assert_non_null(created);
  assert_int_equal(strlen(created), 24);
  assert_true(created[4] == '-' && created[10] == 'T' && created[19] == '.' && created[23] == 'Z');
  cJSON_Delete(list);

  /* remove by any spelling of the same pattern */
  assert_int_equal(berth_allowlist_remove(st, "library/ubuntu:1*", &err), 0);
  assert_true(check(st, "ubuntu:18.04", NULL));
  assert_int_equal(berth_allowlist_remove(st, "ubuntu:1*", &err), BERTH_ENOTFOUND);
  assert_non_null(strstr(err->msg, "no image rule `docker.io/library/ubuntu:1*`"));
  berth_error_clear(&err);

  /* inside the caller's transaction: a rollback undoes the change */
  assert_int_equal(berth_store_begin(st, &err), 0);
  assert_int_equal(berth_allowlist_add(st, "allow", "alpine", "dave", &err), 0);
  assert_true(check(st, "alpine", NULL));
  berth_store_rollback(st);
  assert_false(check(st, "alpine", NULL));
  assert_int_equal(berth_allowlist_count(st, &err), 1);

  /* a second handle (another process) sees the committed rules */
  berth_store *st2 = NULL;
  assert_int_equal(berth_store_open(home, &st2, &err), 0);
  assert_true(check(st2, "ubuntu:22.04", NULL));
  berth_store_close(st2);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_normalize_table),
    cmocka_unit_test(test_invalid_patterns),
    cmocka_unit_test(test_decide_table),
    cmocka_unit_test(test_gitlab_vectors),
    cmocka_unit_test_setup_teardown(test_store_rules, setup_store, teardown_store),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
