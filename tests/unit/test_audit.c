/* Audit trail tests: append and verify; every field of a record edited in turn (first, middle, last record), ids
 * changed, records and the head deleted -> verify names the record; SQL edits refused by the triggers; concurrent
 * appenders from several processes keep one chain; the caller's transaction; caps; --since times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "berth/audit.h"
#include "berth/store.h"
#include "store/db.h"
#include "store_helpers.h"

#define N_RECORDS 10

typedef struct fixture {
  char home[256];
  berth_store *st;
} fixture;

static int
setup(void **state)
{
  fixture *f = calloc(1, sizeof *f);
  snprintf(f->home, sizeof f->home, "/tmp/berth-test-audit-XXXXXX");
  assert_non_null(mkdtemp(f->home));
  berth_error *err = NULL;
  if (berth_store_open(f->home, &f->st, &err) < 0)
    fail_msg("open store: %s", err->msg);
  *state = f;
  return 0;
}

static int
teardown(void **state)
{
  fixture *f = *state;
  berth_store_close(f->st);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->home);
  int rc = system(cmd);
  free(f);
  return rc == 0 ? 0 : -1;
}

static void
append_n(berth_store *st, int n)
{
  for (int i = 1; i <= n; i++) {
    cJSON *args = NULL;
    if (i % 3 != 0) {
      args = cJSON_CreateObject();
      cJSON_AddNumberToObject(args, "i", i);
      cJSON_AddStringToObject(args, "secret", "***");
    }
    char target[32];
    snprintf(target, sizeof target, "stack-%d", i);
    berth_error *err = NULL;
    if (berth_audit_append(st, i % 2 ? "alice" : "bob", "stack.update", i % 4 == 0 ? NULL : target, args,
                           i % 5 == 0 ? "failed: boom" : "ok", &err)
        < 0)
      fail_msg("append %d: %s", i, err->msg);
    cJSON_Delete(args);
  }
}

static int64_t
verify(berth_store *st, int64_t *count, char **why)
{
  int64_t bad = -1;
  berth_error *err = NULL;
  if (berth_audit_verify_detail(st, &bad, count, why, NULL, &err) < 0)
    fail_msg("verify: %s", err->msg);
  return bad;
}

static void
test_append_verify(void **state)
{
  fixture *f = *state;
  int64_t count = -1;
  assert_int_equal(verify(f->st, &count, NULL), 0); /* empty trail is intact */
  assert_int_equal(count, 0);
  append_n(f->st, N_RECORDS);
  char *why = NULL;
  assert_int_equal(verify(f->st, &count, &why), 0);
  assert_null(why);
  assert_int_equal(count, N_RECORDS);
  /* list: oldest first, every field; since filters by time */
  berth_error *err = NULL;
  cJSON *list = berth_audit_list_json(f->st, 0, &err);
  const cJSON *recs = cJSON_GetObjectItemCaseSensitive(list, "records");
  assert_int_equal(cJSON_GetArraySize(recs), N_RECORDS);
  const cJSON *r1 = cJSON_GetArrayItem(recs, 0);
  assert_int_equal((int) cJSON_GetObjectItemCaseSensitive(r1, "id")->valuedouble, 1);
  assert_string_equal(cJSON_GetObjectItemCaseSensitive(r1, "actor")->valuestring, "alice");
  assert_string_equal(cJSON_GetObjectItemCaseSensitive(r1, "action")->valuestring, "stack.update");
  assert_string_equal(cJSON_GetObjectItemCaseSensitive(r1, "target")->valuestring, "stack-1");
  assert_string_equal(cJSON_GetObjectItemCaseSensitive(r1, "outcome")->valuestring, "ok");
  assert_int_equal(
      (int) cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r1, "args"), "i")->valuedouble, 1);
  assert_int_equal(strlen(cJSON_GetObjectItemCaseSensitive(r1, "hash")->valuestring), 64);
  assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(recs, 3), "target")));
  assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(recs, 2), "args")));
  cJSON_Delete(list);
  list = berth_audit_list_json(f->st, berth_now_ms() + 60000, &err);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(list, "records")), 0);
  cJSON_Delete(list);
  assert_int_equal(berth_audit_append(f->st, "a", "", NULL, NULL, "ok", &err), BERTH_EINVAL);
  berth_error_clear(&err);
}

static void
test_sql_edits_refused(void **state)
{
  fixture *f = *state;
  append_n(f->st, 3);
  /* through the store's own connection: the engine refuses, and says why in one line */
  const char *edits[] = { "UPDATE audit_log SET outcome = 'ok' WHERE id = 2", "DELETE FROM audit_log WHERE id = 2" };
  for (size_t i = 0; i < 2; i++) {
    berth_error *err = NULL;
    assert_true(db_exec(store_db(f->st), edits[i], &err) < 0);
    if (strstr(err->msg, "audit records are append-only") == NULL)
      fail_msg("unexpected: %s", err->msg);
    berth_error_free(err);
  }
  int64_t count = 0;
  assert_int_equal(verify(f->st, &count, NULL), 0);
  assert_int_equal(count, 3);
}

/* One fresh trail per edit: drop the triggers (as an attacker would), change one thing, verify. */
static void
check_tamper(const char *sql_fmt, int64_t record, int64_t want_bad, const char *want_why)
{
  fixture *f = NULL;
  setup((void **) &f);
  append_n(f->st, N_RECORDS);
  char sql[1024];
  snprintf(sql, sizeof sql, "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; ");
  size_t off = strlen(sql);
  /* sql_fmt uses ID where the record id goes (not a printf format: -Wformat-nonliteral) */
  char id[32];
  snprintf(id, sizeof id, "%lld", (long long) record);
  for (const char *p = sql_fmt; *p && off + 32 < sizeof sql;) {
    if (strncmp(p, "ID", 2) == 0) {
      off += (size_t) snprintf(sql + off, sizeof sql - off, "%s", id);
      p += 2;
    } else {
      sql[off++] = *p++;
    }
  }
  sql[off] = '\0';
  off = strlen("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; ");
  store_shell(f->home, sql);
  int64_t count = 0;
  char *why = NULL;
  int64_t bad = verify(f->st, &count, &why);
  if (bad != want_bad)
    fail_msg("after `%s`: first bad record %lld, want %lld (%s)", sql + off, (long long) bad, (long long) want_bad,
             why ? why : "intact");
  if (want_why && (why == NULL || strstr(why, want_why) == NULL))
    fail_msg("after `%s`: problem `%s`, want `%s`", sql + off, why ? why : "", want_why);
  free(why);
  void *s = f;
  teardown(&s);
}

static void
test_edit_each_field(void **state)
{
  (void) state;
  static const char *const edits[] = {
    "UPDATE audit_log SET at = at + 1 WHERE id = ID",
    "UPDATE audit_log SET actor = 'mallory' WHERE id = ID",
    "UPDATE audit_log SET action = 'stack.show' WHERE id = ID",
    "UPDATE audit_log SET target = 'other' WHERE id = ID",
    "UPDATE audit_log SET target = NULL WHERE id = ID",
    "UPDATE audit_log SET args = '{\"i\":99}' WHERE id = ID",
    "UPDATE audit_log SET args = NULL WHERE id = ID",
    "UPDATE audit_log SET outcome = 'ok (edited)' WHERE id = ID",
    "UPDATE audit_log SET hash = '00000000000000000000000000000000000000000000000000000000000000ff' WHERE id = ID",
    "UPDATE audit_log SET hash = upper(hash) WHERE id = ID",
  };
  const int64_t records[] = { 1, 5, N_RECORDS };
  for (size_t r = 0; r < 3; r++)
    for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++) {
      /* NULL -> NULL is no edit: record 4 and 8 have no target, 3/6/9 no args; use the non-null ones */
      check_tamper(edits[e], records[r], records[r], NULL);
    }
}

static void
test_ids_and_deletes(void **state)
{
  (void) state;
  check_tamper("DELETE FROM audit_log WHERE id = ID", 5, 5, "missing");
  check_tamper("DELETE FROM audit_log WHERE id = ID", 1, 1, "missing");
  check_tamper("DELETE FROM audit_log WHERE id = ID", N_RECORDS, N_RECORDS, "newest records were removed");
  check_tamper("DELETE FROM audit_log WHERE id >= ID", 7, 7, "newest records were removed");
  check_tamper("UPDATE audit_log SET id = 100 WHERE id = ID", 3, 3, "missing");
  /* swap two records' positions */
  check_tamper("UPDATE audit_log SET id = -1 WHERE id = ID; UPDATE audit_log SET id = 4 WHERE id = 5;"
               " UPDATE audit_log SET id = 5 WHERE id = -1",
               4, 4, "hash mismatch");
  /* a forged record appended by hand, with a made-up hash */
  check_tamper("INSERT INTO audit_log VALUES (ID, 1, 'x', 'y', NULL, NULL, 'ok', "
               "'0000000000000000000000000000000000000000000000000000000000000000')",
               N_RECORDS + 1, N_RECORDS + 1, NULL);
  check_tamper("DELETE FROM audit_head WHERE k = 1 OR ID = 0", 0, N_RECORDS, "head");
}

static void
test_concurrent_appenders(void **state)
{
  fixture *f = *state;
  enum { PROCS = 4, EACH = 25 };
  pid_t pids[PROCS];
  for (int p = 0; p < PROCS; p++) {
    pids[p] = fork();
    assert_true(pids[p] >= 0);
    if (pids[p] == 0) {
      berth_store *st = NULL;
      berth_error *err = NULL;
      if (berth_store_open(f->home, &st, &err) < 0)
        _exit(2);
      for (int i = 0; i < EACH; i++) {
        char target[32];
        snprintf(target, sizeof target, "p%d-%d", p, i);
        if (berth_audit_append(st, "child", "task.submit", target, NULL, "ok", &err) < 0) {
          fprintf(stderr, "append: %s\n", err->msg);
          _exit(3);
        }
      }
      berth_store_close(st);
      _exit(0);
    }
  }
  for (int p = 0; p < PROCS; p++) {
    int status = 0;
    assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  int64_t count = 0;
  assert_int_equal(verify(f->st, &count, NULL), 0);
  assert_int_equal(count, PROCS * EACH);
}

static void
test_caller_transaction(void **state)
{
  fixture *f = *state;
  berth_error *err = NULL;
  append_n(f->st, 2);
  assert_int_equal(berth_store_begin(f->st, &err), 0);
  assert_int_equal(berth_audit_append(f->st, "a", "x.y", NULL, NULL, "ok", &err), 0);
  berth_store_rollback(f->st);
  int64_t count = 0;
  assert_int_equal(verify(f->st, &count, NULL), 0);
  assert_int_equal(count, 2);
  assert_int_equal(berth_store_begin(f->st, &err), 0);
  assert_int_equal(berth_audit_append(f->st, "a", "x.y", NULL, NULL, "ok", &err), 0);
  assert_int_equal(berth_store_commit(f->st, &err), 0);
  assert_int_equal(verify(f->st, &count, NULL), 0);
  assert_int_equal(count, 3);
}

static void
test_caps(void **state)
{
  fixture *f = *state;
  berth_error *err = NULL;
  char *big = malloc(BERTH_AUDIT_ARGS_MAX + 100);
  memset(big, 'x', BERTH_AUDIT_ARGS_MAX + 99);
  big[BERTH_AUDIT_ARGS_MAX + 99] = '\0';
  cJSON *args = cJSON_CreateObject();
  cJSON_AddStringToObject(args, "blob", big);
  assert_int_equal(berth_audit_append(f->st, "a", "x.y", big, args, "failed: two\nlines", &err), 0);
  cJSON_Delete(args);
  free(big);
  cJSON *list = berth_audit_list_json(f->st, 0, &err);
  const cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(list, "records"), 0);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "args"), "truncated")));
  assert_int_equal(strlen(cJSON_GetObjectItemCaseSensitive(r, "target")->valuestring), BERTH_AUDIT_FIELD_MAX);
  assert_string_equal(cJSON_GetObjectItemCaseSensitive(r, "outcome")->valuestring, "failed: two lines");
  cJSON_Delete(list);
  int64_t count = 0;
  assert_int_equal(verify(f->st, &count, NULL), 0);
}

static void
test_parse_time(void **state)
{
  (void) state;
  int64_t now = 1714989600000LL, t = 0; /* 2024-05-06T10:00:00Z */
  berth_error *err = NULL;
  assert_int_equal(berth_audit_parse_time("2024-05-06", now, &t, &err), 0);
  assert_int_equal(t, 1714953600000LL);
  assert_int_equal(berth_audit_parse_time("2024-05-06T10:00Z", now, &t, &err), 0);
  assert_int_equal(t, now);
  assert_int_equal(berth_audit_parse_time("2024-05-06T10:00:30", now, &t, &err), 0);
  assert_int_equal(t, now + 30000);
  assert_int_equal(berth_audit_parse_time("90m", now, &t, &err), 0);
  assert_int_equal(t, now - 90 * 60000);
  const char *bad[] = { "", "2024-13-01", "2024-02-30", "2024-05-06T25:00", "yesterday", "2024-05-06Tx", "-5m" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (berth_audit_parse_time(bad[i], now, &t, &err) == 0)
      fail_msg("`%s` was accepted", bad[i]);
    assert_int_equal(err->code, BERTH_EINVAL);
    berth_error_clear(&err);
  }
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_append_verify, setup, teardown),
    cmocka_unit_test_setup_teardown(test_sql_edits_refused, setup, teardown),
    cmocka_unit_test(test_edit_each_field),
    cmocka_unit_test(test_ids_and_deletes),
    cmocka_unit_test_setup_teardown(test_concurrent_appenders, setup, teardown),
    cmocka_unit_test_setup_teardown(test_caller_transaction, setup, teardown),
    cmocka_unit_test_setup_teardown(test_caps, setup, teardown),
    cmocka_unit_test(test_parse_time),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
