/* The store layer: nested transactions, rollback on error, the schema version (newer stores refused), concurrent
 * audit appenders (and, on PostgreSQL, an append whose answer is lost after it committed: a proxy drops it), task
 * retention over several batches, and a store made by berth 0.1.0
 * (tests/data/store/schema-v1.sql) migrated up with every record still readable.
 *
 * Run as `test_store_db postgresql` (ctest label postgresql) the same tests run on PostgreSQL: each in a database
 * of its own made on the server in BERTH_TEST_PG (ci/start-postgres.sh prints one), plus the bad connection strings.
 * Without BERTH_TEST_PG that run is skipped. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "berth/allowlist.h"
#include "berth/apikey.h"
#include "berth/audit.h"
#include "berth/fleet.h"
#include "berth/metrics.h"
#include "berth/retention.h"
#include "berth/store.h"
#include "berth/task_log.h"
#include "berth/task_queue.h"
#include "store/db.h"
#include "store_helpers.h"

/* A stack to create: name and image set; the caller adds what it tests. */
static berth_stack *
new_stack(const char *name)
{
  berth_stack *s = berth_stack_new();
  s->name = strdup(name);
  s->image = strdup("berth/busybox:latest");
  return s;
}

static void
create_stack(berth_store *st, const char *name)
{
  berth_stack *s = new_stack(name);
  berth_error *err = NULL;
  if (berth_store_stack_create(st, s, &err) != 0)
    fail_msg("create %s: %s", name, err->msg);
  berth_stack_free(s);
}

static int
create_stack_rc(berth_store *st, const char *name, berth_error **err)
{
  berth_stack *s = new_stack(name);
  int rc = berth_store_stack_create(st, s, err);
  berth_stack_free(s);
  return rc;
}

static bool
stack_exists(berth_store *st, const char *name)
{
  berth_stack *s = NULL;
  berth_error *err = NULL;
  int rc = berth_store_stack_get(st, name, &s, &err);
  berth_stack_free(s);
  if (rc == BERTH_ENOTFOUND) {
    berth_error_free(err);
    return false;
  }
  if (rc != 0)
    fail_msg("get %s: %s", name, err->msg);
  return true;
}

static int64_t
audit_count(berth_store *st)
{
  int64_t bad = -1, count = -1;
  berth_error *err = NULL;
  if (berth_audit_verify(st, &bad, &count, &err) != 0)
    fail_msg("verify: %s", err->msg);
  assert_int_equal(bad, 0);
  return count;
}

static void
test_inner_rollback_keeps_outer(void **state)
{
  berth_store *st = open_ok(*state);
  berth_error *err = NULL;
  assert_int_equal(berth_store_begin(st, &err), 0);
  create_stack(st, "outer");
  assert_int_equal(berth_store_begin(st, &err), 0);
  assert_int_equal(db_tx_depth(store_db(st)), 2);
  create_stack(st, "inner");
  assert_true(stack_exists(st, "inner")); /* visible inside */
  berth_store_rollback(st);
  assert_false(stack_exists(st, "inner"));
  assert_true(stack_exists(st, "outer"));
  /* a second inner unit after the first was undone still works and is kept */
  assert_int_equal(berth_store_begin(st, &err), 0);
  create_stack(st, "inner-2");
  assert_int_equal(berth_store_commit(st, &err), 0);
  assert_int_equal(berth_store_commit(st, &err), 0);
  assert_int_equal(db_tx_depth(store_db(st)), 0);
  berth_store_close(st);

  st = open_ok(*state); /* durable: another open sees exactly the committed work */
  assert_true(stack_exists(st, "outer"));
  assert_true(stack_exists(st, "inner-2"));
  assert_false(stack_exists(st, "inner"));
  /* an inner commit is undone by an outer rollback */
  assert_int_equal(berth_store_begin(st, &err), 0);
  assert_int_equal(berth_store_begin(st, &err), 0);
  create_stack(st, "gone");
  assert_int_equal(berth_store_commit(st, &err), 0);
  berth_store_rollback(st);
  assert_false(stack_exists(st, "gone"));
  berth_store_rollback(st); /* nothing open: a no-op */
  berth_store_close(st);
}

/* A part (berth_store_begin_part) has no savepoint: committed, it is its owner's; rolled back, its owner can only roll
 * back (its commit fails and keeps nothing), while a savepoint between them keeps the damage to the savepoint. */
static void
test_parts(void **state)
{
  berth_store *st = open_ok(*state);
  berth_error *err = NULL;
  assert_int_equal(berth_store_begin(st, &err), 0);
  create_stack(st, "p-outer");
  assert_int_equal(berth_store_begin_part(st, &err), 0);
  assert_int_equal(db_tx_depth(store_db(st)), 2);
  create_stack(st, "p-part");
  assert_int_equal(berth_store_commit(st, &err), 0);
  assert_int_equal(berth_store_commit(st, &err), 0);
  assert_true(stack_exists(st, "p-part"));
  assert_true(stack_exists(st, "p-outer"));

  /* a failed part fails the transaction that owns it: nothing of it is kept */
  assert_int_equal(berth_store_begin(st, &err), 0);
  create_stack(st, "p-doomed");
  assert_int_equal(berth_store_begin_part(st, &err), 0);
  create_stack(st, "p-doomed-part");
  berth_store_rollback(st);
  assert_int_equal(db_tx_depth(store_db(st)), 1);
  assert_int_not_equal(berth_store_commit(st, &err), 0);
  assert_non_null(err);
  berth_error_clear(&err);
  assert_int_equal(db_tx_depth(store_db(st)), 0);
  assert_false(stack_exists(st, "p-doomed"));
  assert_false(stack_exists(st, "p-doomed-part"));

  /* a part inside a savepoint: undoing the savepoint undoes the part, and the transaction goes on */
  assert_int_equal(berth_store_begin(st, &err), 0);
  create_stack(st, "p-kept");
  assert_int_equal(berth_store_begin(st, &err), 0);
  assert_int_equal(berth_store_begin_part(st, &err), 0);
  create_stack(st, "p-undone");
  berth_store_rollback(st);                              /* the part: its savepoint can only roll back */
  assert_int_not_equal(berth_store_commit(st, &err), 0); /* the savepoint's commit undoes it */
  berth_error_clear(&err);
  assert_int_equal(db_tx_depth(store_db(st)), 1);
  assert_int_equal(berth_store_commit(st, &err), 0);
  assert_true(stack_exists(st, "p-kept"));
  assert_false(stack_exists(st, "p-undone"));
  /* outside a transaction a part is a transaction of its own */
  assert_int_equal(berth_store_begin_part(st, &err), 0);
  create_stack(st, "p-alone");
  assert_int_equal(berth_store_commit(st, &err), 0);
  assert_int_equal(db_tx_depth(store_db(st)), 0);
  berth_store_close(st);
  st = open_ok(*state);
  assert_true(stack_exists(st, "p-alone"));
  assert_true(stack_exists(st, "p-kept"));
  assert_false(stack_exists(st, "p-undone"));
  berth_store_close(st);
}

/* db_run_later: writes sent with the next statement that needs an answer (PostgreSQL: in one pipeline) keep their
 * meaning: a later read sees them, a failure of one fails that read or the commit and nothing of the transaction
 * stays, a transaction of nothing else commits, and outside a transaction it runs at once. */
static int
later(db_conn *c, const char *k, int64_t v, int expect)
{
  db_stmt *s = NULL;
  berth_error *err = NULL;
  assert_int_equal(db_prepare(c, "INSERT INTO t_later (k, v) VALUES (?, ?)", &s, &err), 0);
  db_bind_text(s, 1, k);
  db_bind_int64(s, 2, v);
  int rc = db_run_later(s, &err);
  if (expect == 0)
    assert_int_equal(rc, 0);
  else if (expect < 0)
    assert_int_not_equal(rc, 0);
  berth_error_clear(&err);
  return rc;
}

static int64_t
later_value(db_conn *c, const char *k, int *rc)
{
  db_stmt *s = NULL;
  berth_error *err = NULL;
  assert_int_equal(db_prepare(c, "SELECT v FROM t_later WHERE k = ?", &s, &err), 0);
  db_bind_text(s, 1, k);
  *rc = db_step(s, &err);
  int64_t v = *rc == DB_ROW ? db_column_int64(s, 0) : -1;
  db_finalize(s);
  if (*rc < 0) {
    assert_non_null(err);
    assert_non_null(strstr(err->msg, "t_later")); /* the failed write's own message, naming what it violated */
  }
  berth_error_clear(&err);
  return v;
}

static void
test_run_later(void **state)
{
  berth_store *st = open_ok(*state);
  db_conn *c = store_db(st);
  berth_error *err = NULL;
  int rc;
  const bool pg = strcmp(db_engine_name(c), "postgresql") == 0; /* SQLite runs each at once */
  assert_int_equal(db_exec(c, "CREATE TABLE t_later (k TEXT PRIMARY KEY, v INTEGER NOT NULL)", &err), 0);
  /* seen by a later read of the same transaction, kept by its commit */
  assert_int_equal(db_begin(c, &err), 0);
  later(c, "a", 1, 0);
  assert_int_equal(later_value(c, "a", &rc), 1);
  later(c, "b", 2, 0);
  assert_int_equal(db_commit(c, &err), 0);
  assert_int_equal(later_value(c, "b", &rc), 2);
  /* a failing one fails the commit, and the writes before it go too */
  assert_int_equal(db_begin(c, &err), 0);
  later(c, "c", 3, 0);
  if (later(c, "a", 4, pg ? 0 : -1) == 0) { /* a duplicate key: on PostgreSQL it fails only when it is sent */
    assert_int_not_equal(db_commit(c, &err), 0);
    assert_non_null(err);
    berth_error_clear(&err);
  } else {
    db_rollback(c);
  }
  assert_int_equal(db_tx_depth(c), 0);
  assert_int_equal(later_value(c, "c", &rc), -1);
  assert_int_equal(later_value(c, "a", &rc), 1);
  /* ... or the next statement that needs an answer; the caller's rollback leaves nothing */
  assert_int_equal(db_begin(c, &err), 0);
  later(c, "d", 5, 0);
  if (later(c, "b", 6, pg ? 0 : -1) == 0) {
    later_value(c, "d", &rc);
    assert_true(rc < 0);
  }
  db_rollback(c);
  assert_int_equal(db_tx_depth(c), 0);
  assert_int_equal(later_value(c, "d", &rc), -1);
  /* a savepoint undone with a failing write still waiting: the write is dropped with it, the transaction goes on */
  assert_int_equal(db_begin(c, &err), 0);
  later(c, "h", 11, 0);
  assert_int_equal(db_begin(c, &err), 0); /* a savepoint: what waits is sent first */
  later(c, "a", 12, pg ? 0 : -1);
  db_rollback(c);
  assert_int_equal(db_tx_depth(c), 1);
  assert_int_equal(db_commit(c, &err), 0);
  assert_int_equal(later_value(c, "h", &rc), 11);
  assert_int_equal(later_value(c, "a", &rc), 1);
  /* nothing but writes: one commit */
  assert_int_equal(db_begin(c, &err), 0);
  for (int i = 0; i < 40; i++) { /* more than the engine keeps waiting at once */
    char k[16];
    snprintf(k, sizeof k, "n%d", i);
    later(c, k, i, 0);
  }
  assert_int_equal(db_commit(c, &err), 0);
  assert_int_equal(later_value(c, "n39", &rc), 39);
  assert_int_equal(later_value(c, "n0", &rc), 0);
  /* a begin that was never sent rolls back cleanly, and the next transaction is whole */
  assert_int_equal(db_begin(c, &err), 0);
  later(c, "e", 7, 0);
  db_rollback(c);
  assert_int_equal(db_begin(c, &err), 0);
  later(c, "f", 8, 0);
  assert_int_equal(db_commit(c, &err), 0);
  assert_int_equal(later_value(c, "e", &rc), -1);
  assert_int_equal(later_value(c, "f", &rc), 8);
  /* outside a transaction: at once, failing at once */
  later(c, "g", 9, 0);
  assert_int_equal(later_value(c, "g", &rc), 9);
  later(c, "g", 10, -1);
  assert_int_equal(db_exec(c, "DROP TABLE t_later", &err), 0);
  berth_store_close(st);
}

static db_stmt *
prefetch_value(db_conn *c, const char *k)
{
  db_stmt *s = NULL;
  berth_error *err = NULL;
  assert_int_equal(db_prepare(c, "SELECT v FROM t_later WHERE k = ?", &s, &err), 0);
  db_bind_text(s, 1, k);
  assert_int_equal(db_prefetch(s, &err), 0);
  return s;
}

static int64_t
prefetched_value(db_stmt *s, int *rc)
{
  berth_error *err = NULL;
  *rc = db_step(s, &err);
  int64_t v = *rc == DB_ROW ? db_column_int64(s, 0) : -1;
  berth_error_clear(&err);
  db_finalize(s);
  return v;
}

/* A read sent ahead (db_prefetch) answers what it would have answered where it stands among the statements. */
static void
test_prefetch(void **state)
{
  berth_store *st = open_ok(*state);
  db_conn *c = store_db(st);
  berth_error *err = NULL;
  int rc;
  const bool pg = strcmp(db_engine_name(c), "postgresql") == 0;
  assert_int_equal(db_exec(c, "CREATE TABLE t_later (k TEXT PRIMARY KEY, v INTEGER NOT NULL)", &err), 0);
  later(c, "a", 1, 0);
  /* after a write that waits, answered with the next read; a second read of the row sees the same */
  assert_int_equal(db_begin(c, &err), 0);
  later(c, "b", 2, 0);
  db_stmt *pb = prefetch_value(c, "b");
  db_stmt *pa = prefetch_value(c, "a");
  assert_int_equal(later_value(c, "a", &rc), 1);
  assert_int_equal(prefetched_value(pb, &rc), 2);
  assert_int_equal(prefetched_value(pa, &rc), 1);
  /* stepped before anything else needed an answer: it goes itself, with what waits before it */
  later(c, "c", 3, 0);
  db_stmt *pc = prefetch_value(c, "c");
  assert_int_equal(prefetched_value(pc, &rc), 3);
  /* finalized or reset before it was sent: nothing breaks, the reset one runs when stepped */
  db_stmt *gone = prefetch_value(c, "a");
  db_finalize(gone);
  db_stmt *again = prefetch_value(c, "c");
  db_reset(again);
  later(c, "d", 4, 0);
  assert_int_equal(prefetched_value(again, &rc), 3);
  assert_int_equal(db_commit(c, &err), 0);
  assert_int_equal(later_value(c, "d", &rc), 4);
  /* a write that fails before it: the read gets no answer, the transaction only rolls back */
  assert_int_equal(db_begin(c, &err), 0);
  if (later(c, "a", 5, pg ? 0 : -1) == 0) {
    db_stmt *p = prefetch_value(c, "a");
    prefetched_value(p, &rc);
    assert_true(rc < 0);
  }
  db_rollback(c);
  assert_int_equal(db_tx_depth(c), 0);
  assert_int_equal(later_value(c, "a", &rc), 1);
  /* outside a transaction: runs when stepped */
  db_stmt *out = prefetch_value(c, "d");
  assert_int_equal(prefetched_value(out, &rc), 4);
  assert_int_equal(db_exec(c, "DROP TABLE t_later", &err), 0);
  berth_store_close(st);
}

static void
test_rollback_on_error(void **state)
{
  berth_store *st = open_ok(*state);
  berth_error *err = NULL;
  /* a change, its audit record, then a failure: all of it goes */
  assert_int_equal(berth_store_begin(st, &err), 0);
  create_stack(st, "web");
  assert_int_equal(berth_audit_append(st, "alice", "stack.create", "web", NULL, "ok", &err), 0);
  berth_stack *dup = berth_stack_new();
  dup->name = strdup("web");
  dup->image = strdup("berth/busybox:latest");
  assert_int_equal(berth_store_stack_create(st, dup, &err), BERTH_EBUSY);
  assert_string_equal(err->msg, "stack `web` already exists");
  berth_error_clear(&err);
  berth_stack_free(dup);
  berth_store_rollback(st);
  assert_false(stack_exists(st, "web"));
  assert_int_equal(audit_count(st), 0);

  /* an engine error inside a savepoint: one line naming the store; the outer unit goes on and commits */
  assert_int_equal(berth_store_begin(st, &err), 0);
  create_stack(st, "kept");
  assert_int_equal(berth_store_begin(st, &err), 0);
  assert_true(db_exec(store_db(st), "INSERT INTO no_such_table VALUES (1)", &err) < 0);
  const char *want = on_pg ? "relation \"no_such_table\" does not exist" : "/berth.db: no such table: no_such_table";
  if (strstr(err->msg, want) == NULL || strncmp(err->msg, "store ", 6) != 0)
    fail_msg("unexpected: %s", err->msg);
  assert_null(strchr(err->msg, '\n'));
  assert_int_equal(berth_error_exit_code(err->code), 125);
  berth_error_clear(&err);
  berth_store_rollback(st);
  assert_int_equal(berth_audit_append(st, "alice", "stack.create", "kept", NULL, "ok", &err), 0);
  assert_int_equal(berth_store_commit(st, &err), 0);
  assert_true(stack_exists(st, "kept"));
  assert_int_equal(audit_count(st), 1);
  /* a write inside a read snapshot is refused up front */
  assert_int_equal(db_begin_read(store_db(st), &err), 0);
  assert_true(berth_store_begin(st, &err) < 0);
  assert_non_null(strstr(err->msg, "a write cannot start inside a read snapshot"));
  berth_error_clear(&err);
  berth_store_rollback(st);
  assert_int_equal(db_tx_depth(store_db(st)), 0);
  /* committing with nothing open is an error, not a crash */
  assert_true(berth_store_commit(st, &err) < 0);
  berth_error_clear(&err);
  berth_store_close(st);
}

static void
test_statements(void **state)
{
  berth_store *st = open_ok(*state);
  db_conn *c = store_db(st);
  berth_error *err = NULL;
  db_stmt *s = NULL;
  /* every bind kind round-trips through the engine, NULL included (the table's DDL is the one engine-specific bit) */
  assert_int_equal(db_exec(c,
                           on_pg ? "CREATE TABLE kinds (i BIGINT, t TEXT, b BYTEA, n TEXT)"
                                 : "CREATE TABLE kinds (i INTEGER, t TEXT, b BLOB, n TEXT)",
                           &err),
                   0);
  static const unsigned char blob[] = { 0, 1, 2, 0xff, 0 };
  assert_int_equal(db_prepare(c, "INSERT INTO kinds (i, t, b, n) VALUES (?, ?, ?, ?)", &s, &err), 0);
  db_bind_int64(s, 1, INT64_C(-9007199254740993));
  db_bind_text(s, 2, "tëxt with a ? and 'quotes'");
  db_bind_blob(s, 3, blob, sizeof blob);
  db_bind_null(s, 4);
  int64_t changes = 0;
  assert_int_equal(db_run(s, &changes, &err), 0);
  assert_int_equal(changes, 1);
  assert_int_equal(db_prepare(c, "SELECT i, t, b, n FROM kinds WHERE t <> '?' AND i = ?", &s, &err), 0);
  db_bind_int64(s, 1, INT64_C(-9007199254740993));
  assert_int_equal(db_step(s, &err), DB_ROW);
  assert_true(db_column_int64(s, 0) == INT64_C(-9007199254740993));
  assert_string_equal(db_column_text(s, 1), "tëxt with a ? and 'quotes'");
  size_t n = 0;
  const void *p = db_column_blob(s, 2, &n);
  assert_int_equal(n, sizeof blob);
  assert_memory_equal(p, blob, sizeof blob);
  assert_true(db_column_is_null(s, 3));
  assert_false(db_column_is_null(s, 0));
  assert_null(db_column_text(s, 3));
  assert_int_equal(db_step(s, &err), DB_DONE);
  /* reset runs it again with the same bindings */
  db_reset(s);
  assert_int_equal(db_step(s, &err), DB_ROW);
  db_finalize(s);
  /* a statement that does not parse names the store */
  assert_true(db_prepare(c, "SELEC 1", &s, &err) < 0 || db_step(s, &err) < 0);
  db_finalize(s);
  assert_non_null(strstr(err->msg, "store "));
  berth_error_clear(&err);
  berth_store_close(st);
}

static void
test_newer_schema_refused(void **state)
{
  berth_store *st = open_ok(*state);
  berth_store_info info;
  berth_error *err = NULL;
  assert_int_equal(berth_store_info_get(st, &info, &err), 0);
  int known = info.schema_version_known;
  char *location = strdup(info.location);
  create_stack(st, "web");
  /* as a newer berth would leave it */
  assert_int_equal(
      db_exec(store_db(st),
              "INSERT INTO schema_version (version, applied_at) VALUES (99, 1); CREATE TABLE future (x TEXT)", &err),
      0);
  berth_store_close(st);
  char want[512];
  snprintf(want, sizeof want, "store %s has schema version 99, newer than this berth knows (%d); use a newer berth",
           location, known);
  expect_open_error(*state, want);
  expect_open_error(*state, want); /* refused means untouched: still there the second time */
  free(location);
  if (on_pg)
    return;
  /* and the older schema opens again once the newer one is gone */
  store_shell(*state, "DELETE FROM schema_version WHERE version = 99; DROP TABLE future");
  st = open_ok(*state);
  assert_true(stack_exists(st, "web"));
  berth_store_close(st);
}

/* A store at this berth's version opens, and reads, while another connection holds the write lock for long (a busy
 * store's writer): the open does not wait for it. */
static void
test_open_while_writing(void **state)
{
  berth_store *writer = open_ok(*state);
  create_stack(writer, "web");
  berth_error *err = NULL;
  assert_int_equal(berth_store_begin(writer, &err), 0);
  create_stack(writer, "api"); /* the write lock is held from here to the rollback */
  int64_t t0 = berth_now_ms();
  berth_store *reader = open_ok(*state);
  int64_t took = berth_now_ms() - t0;
  assert_true(stack_exists(reader, "web"));
  assert_false(stack_exists(reader, "api")); /* not committed */
  berth_store_close(reader);
  berth_store_rollback(writer);
  berth_store_close(writer);
  if (took > 2000)
    fail_msg("opening the store waited %lld ms for the writer", (long long) took);
}

#define APPENDERS 4
#define APPENDS 25

/* Four processes, each with its own connection, append at once: one linear chain that verifies. */
static void
test_concurrent_appenders(void **state)
{
  berth_store_close(open_ok(*state)); /* created before the race */
  pid_t pids[APPENDERS];
  for (int p = 0; p < APPENDERS; p++) {
    pids[p] = fork();
    assert_true(pids[p] >= 0);
    if (pids[p] == 0) {
      berth_store *st = NULL;
      berth_error *err = NULL;
      int rc = berth_store_open(*state, &st, &err);
      for (int i = 0; rc == 0 && i < APPENDS; i++) {
        char target[32];
        snprintf(target, sizeof target, "appender-%d-%d", p, i);
        if (i % 3 == 0) {
          rc = berth_audit_append(st, "race", "test.append", target, NULL, "ok", &err);
          continue;
        }
        /* in a transaction: its first append uses the head read with the begin (PostgreSQL), the next reads it
         * again; one undone with a savepoint leaves the head as it was */
        if ((rc = berth_store_begin(st, &err)) < 0 || (rc = create_stack_rc(st, target, &err)) < 0
            || (rc = berth_audit_append(st, "race", "test.append", target, NULL, "ok", &err)) < 0)
          break;
        if (i % 3 == 2 && (rc = berth_store_begin(st, &err)) == 0) {
          rc = berth_audit_append(st, "race", "test.undone", target, NULL, "ok", &err);
          berth_store_rollback(st);
        }
        if (rc == 0)
          rc = berth_audit_append(st, "race", "test.second", target, NULL, "ok", &err);
        if (rc == 0)
          rc = berth_store_commit(st, &err);
        else
          berth_store_rollback(st);
      }
      if (rc < 0)
        fprintf(stderr, "appender %d: %s\n", p, err->msg);
      berth_store_close(st);
      _exit(rc < 0 ? 1 : 0);
    }
  }
  for (int p = 0; p < APPENDERS; p++) {
    int status = 0;
    assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  berth_store *st = open_ok(*state);
  int in_txn = APPENDS - (APPENDS + 2) / 3; /* i % 3 != 0: two records each */
  assert_int_equal(audit_count(st), APPENDERS * (APPENDS + in_txn));
  berth_store_close(st);
}

static void
append_ok(berth_store *st, const char *target)
{
  berth_error *err = NULL;
  if (berth_audit_append(st, "guess", "test.append", target, NULL, "ok", &err) != 0)
    fail_msg("append %s: %s", target, err->msg);
}

static int64_t
audit_events(berth_store *st)
{
  db_stmt *s = NULL;
  berth_error *err = NULL;
  assert_int_equal(db_prepare(store_db(st), "SELECT count(*) FROM webhook_events WHERE kind = 'audit'", &s, &err), 0);
  assert_int_equal(db_step(s, &err), DB_ROW);
  int64_t n = db_column_int64(s, 0);
  db_finalize(s);
  return n;
}

/* A standalone append on PostgreSQL guesses the chain's head (the one this store committed last) and sends its
 * record in one round trip, guarded by that head: two stores taking turns find their guess stale and append the
 * usual way; a head that went back (the newest record removed by hand) is not skipped over. Every record, and one
 * webhook event each, exactly once; the chain verifies throughout. */
static void
test_audit_head_guess(void **state)
{
  berth_store *a = open_ok(*state), *b = open_ok(*state);
  berth_error *err = NULL;
  assert_int_equal(db_exec(store_db(a),
                           "INSERT INTO webhooks (name, url, secret, events, actor, created_at)"
                           " VALUES ('w', 'http://127.0.0.1:9/', 'x', '[\"audit\"]', 'test', 1)",
                           &err),
                   0);
  int64_t id = 0;
  unsigned char raw[32];
  append_ok(a, "a1");
  assert_int_equal(store_audit_head_known(a, &id, raw), on_pg); /* remembered after its own commit */
  if (on_pg)
    assert_int_equal(id, 1);
  append_ok(a, "a2"); /* guessed right */
  append_ok(b, "b1");
  append_ok(a, "a3");                                /* a's guess (2) is stale: b wrote 3 */
  assert_false(store_audit_head_known(a, &id, raw)); /* and a reads the head for a while */
  append_ok(b, "b2");                                /* b's too */
  append_ok(a, "a4");
  assert_int_equal(audit_count(a), 6);
  assert_int_equal(audit_events(a), 6);

  berth_store *c = open_ok(*state);
  append_ok(c, "c1");
  append_ok(c, "c2");
  assert_int_equal(store_audit_head_known(c, &id, raw), on_pg);
  if (on_pg) {
    assert_int_equal(id, 8);
    /* the newest record removed and the head set back to the one before (by hand, the trigger off): c's guess
     * (8) must not leave a gap at 8 */
    assert_int_equal(
        db_exec(store_db(b),
                "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only;"
                " DELETE FROM audit_log WHERE id = 8;"
                " UPDATE audit_head SET last_id = 7, last_hash = (SELECT hash FROM audit_log WHERE id = 7);"
                " DELETE FROM webhook_events WHERE kind = 'audit' AND payload LIKE '%\"c2\"%';"
                " ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only",
                &err),
        0);
    append_ok(c, "c3");
    assert_int_equal(audit_count(c), 8); /* 1..8 again, linked */
    assert_int_equal(audit_events(c), 8);
  }
  /* an append inside a caller's transaction leaves the head to that transaction's end: nothing is guessed from it
   * (a fresh store: c reads the head under the lock for a while after its stale guess) */
  berth_store *d = open_ok(*state);
  append_ok(d, "d1");
  assert_int_equal(store_audit_head_known(d, &id, raw), on_pg);
  assert_int_equal(berth_store_begin(d, &err), 0);
  append_ok(d, "d2");
  assert_false(store_audit_head_known(d, &id, raw));
  assert_int_equal(berth_store_commit(d, &err), 0);
  append_ok(d, "d3");
  assert_int_equal(store_audit_head_known(d, &id, raw), on_pg);
  append_ok(d, "d4");
  assert_int_equal(audit_count(d), 12);
  assert_int_equal(audit_events(d), 12);
  berth_store_close(d);
  berth_store_close(a);
  berth_store_close(b);
  berth_store_close(c);
}

/* A guessed append is not made while another writer holds the write lock, even with the head as guessed: that writer
 * chained its own record to the head under the lock and commits it later. The guesser waits for that commit and
 * chains after it: the two records in turn, the chain verifying. */
static void
test_audit_guess_waits_for_writer(void **state)
{
  int ready[2], go[2];
  assert_int_equal(pipe(ready), 0);
  assert_int_equal(pipe(go), 0);
  berth_store_close(open_ok(*state)); /* created before the child opens it */
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    alarm(30); /* never outlives a parent that failed */
    close(ready[0]);
    close(go[1]);
    berth_store *st = NULL;
    berth_error *err = NULL;
    int64_t id = 0;
    unsigned char raw[32];
    char c = 0;
    int rc = berth_store_open(*state, &st, &err);
    if (rc == 0)
      rc = berth_audit_append(st, "guess", "test.append", "b1", NULL, "ok", &err);
    if (rc == 0 && on_pg && !store_audit_head_known(st, &id, raw)) /* its next append is a guess */
      rc = berth_error_set(&err, BERTH_EINTERNAL, "the head was not remembered");
    if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1 || write(ready[1], "a", 1) != 1)
      rc = -1;
    if (rc == 0)
      rc = berth_audit_append(st, "guess", "test.append", "b2", NULL, "ok", &err);
    if (rc < 0 && err)
      fprintf(stderr, "guesser: %s\n", err->msg);
    berth_store_close(st);
    _exit(rc < 0 ? 1 : 0);
  }
  close(ready[1]);
  close(go[0]);
  char c = 0;
  assert_int_equal(read(ready[0], &c, 1), 1); /* b1 is in, and the child knows the head (EOF: the child died) */
  berth_store *a = open_ok(*state);
  berth_error *err = NULL;
  assert_int_equal(berth_store_begin(a, &err), 0);
  append_ok(a, "a1"); /* chained to b1 under the write lock, not yet committed */
  assert_int_equal(write(go[1], "g", 1), 1);
  assert_int_equal(read(ready[0], &c, 1), 1); /* the child is appending b2 now */
  usleep(300 * 1000);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, WNOHANG), 0); /* still waiting for the lock */
  if (berth_store_commit(a, &err) != 0)
    fail_msg("the writer's commit: %s", err->msg);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_int_equal(audit_count(a), 3); /* linked */
  db_stmt *q = NULL;                   /* in this order: the guess came after the writer's commit */
  assert_int_equal(db_prepare(store_db(a), "SELECT target FROM audit_log ORDER BY id", &q, &err), 0);
  const char *want[] = { "b1", "a1", "b2" };
  for (int i = 0; i < 3; i++) {
    assert_int_equal(db_step(q, &err), DB_ROW);
    assert_string_equal(db_column_text(q, 0), want[i]);
  }
  db_finalize(q);
  berth_store_close(a);
  close(ready[0]);
  close(go[1]);
}

static void
sql_ok(berth_store *st, const char *sql)
{
  berth_error *err = NULL;
  if (db_exec(store_db(st), sql, &err) != 0)
    fail_msg("%s: %s", sql, err->msg);
}

/* The queued task's wait reason as a person reads it, (null) when there is none. */
static void
assert_wait_reason(berth_store *st, const berth_task *t, const char *want)
{
  char *why = NULL;
  berth_error *err = NULL;
  if (berth_fleet_wait_reason(st, t, &why, &err) != 0)
    fail_msg("wait reason of %s: %s", t->id, err->msg);
  if (strcmp(why, want) != 0)
    fail_msg("wait reason of %s: got \"%s\", want \"%s\"", t->id, why, want);
  free(why);
}

/* Why a queued task waits (PostgreSQL, the fleet's queue), every branch in its order: tasks ahead on the stack come
 * first, then the stack's lock, then the pool's hosts: none live (draining ones counted), none whose Docker answers,
 * every slot busy, or a claim about to come. Only hosts of the stack's pool count, by the name whole. */
static void
test_wait_reasons(void **state)
{
  if (!on_pg)
    return; /* SQLite has no fleet: the supervisor says why a task waits */
  berth_store *st = open_ok(*state);
  berth_error *err = NULL;
  create_stack(st, "web");
  berth_task first = { .stack = "web", .command = "true", .actor = "bob" };
  berth_task second = { .stack = "web", .command = "true", .actor = "bob" };
  assert_int_equal(berth_store_task_create(st, &first, &err), 0);
  assert_int_equal(berth_store_task_create(st, &second, &err), 0);
  assert_wait_reason(st, &second, "1 task ahead on stack web");
  assert_wait_reason(st, &first, "no live host in pool default");
  /* hosts: one of pool def_ult (which matches `default` as a LIKE pattern: not counted), one draining */
  sql_ok(st,
         "INSERT INTO hosts (name, instance, pools, slots, version, state, executes, lease_ms, started_at,"
         " heartbeat_at, docker_ok) VALUES"
         " ('x', 'i1', 'def_ult,gpu', 2, 'v', 'alive', 1, 600000, 1, (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT, 1),"
         " ('d', 'i2', 'default', 1, 'v', 'draining', 1, 600000, 1, (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT, 1)");
  assert_wait_reason(st, &first, "no live host in pool default (1 draining)");
  /* a live host of the pool whose Docker does not answer, then one more */
  sql_ok(st,
         "INSERT INTO hosts (name, instance, pools, slots, version, state, executes, lease_ms, started_at,"
         " heartbeat_at, docker_ok) VALUES"
         " ('a', 'i3', 'gpu,default', 1, 'v', 'alive', 1, 600000, 1, (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT, 0)");
  assert_wait_reason(st, &first, "the one live host of pool default cannot run it: its Docker daemon does not answer");
  sql_ok(st, "INSERT INTO hosts (name, instance, pools, slots, version, state, executes, lease_ms, started_at,"
             " heartbeat_at, docker_ok) VALUES"
             " ('b', 'i4', 'default', 2, 'v', 'alive', 1, 600000, 1, 1, 0)"); /* lease long gone: not live */
  assert_wait_reason(st, &first, "the one live host of pool default cannot run it: its Docker daemon does not answer");
  sql_ok(st, "UPDATE hosts SET heartbeat_at = (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT WHERE name = 'b'");
  assert_wait_reason(st, &first,
                     "no live host of pool default can run it: their Docker daemons do not answer (2 hosts)");
  /* Docker back on a: its one slot (host d draining beside it: the live one decides), busy with a task of another
   * stack, then free */
  sql_ok(st, "UPDATE hosts SET docker_ok = 1 WHERE name = 'a'");
  assert_wait_reason(st, &first, "a host of pool default is about to claim it");
  create_stack(st, "api");
  berth_task other = { .stack = "api", .command = "true", .actor = "bob" };
  assert_int_equal(berth_store_task_create(st, &other, &err), 0);
  char sql[256];
  snprintf(sql, sizeof sql, "UPDATE tasks SET state = 'PERFORMING', host = 'a' WHERE id = '%s'", other.id);
  sql_ok(st, sql);
  assert_wait_reason(st, &first, "the one slot of pool default is busy");
  sql_ok(st, "UPDATE hosts SET docker_ok = 1, slots = 3 WHERE name = 'b'");
  assert_wait_reason(st, &first, "a host of pool default is about to claim it");
  sql_ok(st, "UPDATE tasks SET state = 'PERFORMING', host = 'b' WHERE stack = 'web' AND state = 'QUEUED'"
             " AND seq = (SELECT MAX(seq) FROM tasks WHERE stack = 'web')");
  snprintf(sql, sizeof sql, "UPDATE hosts SET slots = 1 WHERE name = 'b'");
  sql_ok(st, sql);
  assert_wait_reason(st, &first, "all 2 slots of pool default are busy");
  /* a stack of its own pool; the lock of another person, then one's own */
  sql_ok(st, "UPDATE stacks SET pool = 'gpu' WHERE name = 'api'");
  berth_task third = { .stack = "api", .command = "true", .actor = "carol" };
  assert_int_equal(berth_store_task_create(st, &third, &err), 0);
  assert_wait_reason(st, &third, "1 task ahead on stack api");
  snprintf(sql, sizeof sql, "UPDATE tasks SET state = 'FINISHED' WHERE id = '%s'", other.id);
  sql_ok(st, sql);
  assert_wait_reason(st, &third, "a host of pool gpu is about to claim it"); /* a's slot is free again */
  assert_int_equal(berth_store_stack_lock(st, "api", "dave", "maintenance", &err), 0);
  assert_wait_reason(st, &third, "stack locked by dave");
  berth_task fourth = { .stack = "api", .command = "true", .actor = "carol" };
  assert_int_equal(berth_store_task_create(st, &fourth, &err), 0);
  assert_wait_reason(st, &fourth, "1 task ahead on stack api"); /* before the lock */
  snprintf(sql, sizeof sql, "UPDATE tasks SET state = 'CANCELED' WHERE id = '%s'", fourth.id);
  sql_ok(st, sql);
  free(fourth.id);
  free(fourth.state);
  assert_int_equal(berth_store_stack_unlock(st, "api", "dave", false, &err), 0);
  assert_int_equal(berth_store_stack_lock(st, "api", "carol", NULL, &err), 0);
  assert_wait_reason(st, &third, "a host of pool gpu is about to claim it");
  /* a stack that went meanwhile */
  berth_task gone = { .id = third.id, .seq = third.seq, .stack = "nope", .actor = "carol", .state = "QUEUED" };
  char *why = NULL;
  assert_int_equal(berth_fleet_wait_reason(st, &gone, &why, &err), BERTH_ENOTFOUND);
  assert_null(why);
  berth_error_clear(&err);
  free(first.id);
  free(first.state);
  free(second.id);
  free(second.state);
  free(other.id);
  free(other.state);
  free(third.id);
  free(third.state);
  berth_store_close(st);
}

/* A host past its lease is shown lost at once, but removed only once declared lost (by a live host's reap) or twice
 * its lease past: meanwhile the refusal says that, not "is lost: only a lost host is removed". */
static void
test_host_remove_lost(void **state)
{
  if (!on_pg)
    return; /* a fleet is on PostgreSQL */
  berth_store *st = open_ok(*state);
  berth_error *err = NULL;
  sql_ok(st, "INSERT INTO hosts (name, instance, pools, slots, version, state, executes, lease_ms, started_at,"
             " heartbeat_at, docker_ok) VALUES"
             " ('n', 'i1', 'default', 1, 'v', 'alive', 1, 60000, 1,"
             " (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT - 90000, 1)");
  assert_int_equal(berth_host_remove(st, "n", &err), BERTH_EBUSY);
  const char *about = strstr(err->msg, "try again in about ");
  int left = about ? atoi(about + strlen("try again in about ")) : 0;
  if (strstr(err->msg, "host `n` missed its lease but is not declared lost yet") == NULL || left < 29 || left > 31)
    fail_msg("refusal: %s", err->msg); /* 2 x 60 s of lease, 90 s since its heartbeat: 30 s left */
  berth_error_clear(&err);
  sql_ok(st, "UPDATE hosts SET state = 'lost' WHERE name = 'n'"); /* declared, as a live host's reap does */
  assert_int_equal(berth_host_remove(st, "n", &err), 0);
  sql_ok(st, "INSERT INTO hosts (name, instance, pools, slots, version, state, executes, lease_ms, started_at,"
             " heartbeat_at, docker_ok) VALUES"
             " ('m', 'i2', 'default', 1, 'v', 'alive', 1, 60000, 1,"
             " (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT - 121000, 1)");
  assert_int_equal(berth_host_remove(st, "m", &err), 0); /* twice its lease past: no live host needed */
  berth_store_close(st);
}

/* The fixture: loaded into berth.db exactly as berth 0.1.0 left it, with its secret key. */
static void
load_fixture(const char *home)
{
  const char *data = getenv("BERTH_TEST_DATA");
  assert_non_null(data);
  char path[512];
  snprintf(path, sizeof path, "%s/store/schema-v1.sql", data);
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  char *sql = calloc(1, 1 << 20);
  size_t n = fread(sql, 1, (1 << 20) - 1, f);
  fclose(f);
  assert_true(n > 0);
  store_shell(home, sql);
  free(sql);
  snprintf(path, sizeof path, "%s/store/secret.key", data);
  unsigned char key[64];
  int in = open(path, O_RDONLY);
  assert_true(in >= 0);
  assert_int_equal(read(in, key, sizeof key), 32);
  close(in);
  snprintf(path, sizeof path, "%s/secret.key", home);
  int out = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  assert_true(out >= 0);
  assert_int_equal(write(out, key, 32), 32);
  close(out);
}

/* Every kind of record in the fixture, read through the store as berth shows it; audit and keys may have grown. */
static void
check_fixture_records(berth_store *st, int64_t audit_records, int api_keys)
{
  berth_error *err = NULL;
  berth_stack *web = NULL, *db = NULL;
  assert_int_equal(berth_store_stack_get(st, "web", &web, &err), 0);
  assert_string_equal(web->image, "berth/busybox:latest");
  assert_string_equal(berth_kv_get(web->env, web->n_env, "A"), "1");
  assert_string_equal(berth_kv_get(web->secret_env, web->n_secret_env, "TOKEN"), "fixture-secret");
  assert_int_equal(web->persist.n, 1);
  assert_string_equal(web->persist.v[0], "out.txt");
  assert_string_equal(web->pull_policy, "never");
  assert_int_equal(berth_store_stack_get(st, "db", &db, &err), 0);
  assert_string_equal(db->lock_owner, "root");
  assert_string_equal(db->lock_note, "maintenance");
  assert_int_equal(db->keep_versions, 3);
  berth_stack_free(web);
  berth_stack_free(db);

  berth_task *t = NULL;
  assert_int_equal(berth_store_task_get(st, "01m8vvf1n24tcbac8be0dav9rr", &t, &err), 0);
  assert_string_equal(t->state, "FAILED");
  assert_int_equal(t->exit_code, 3);
  assert_string_equal(t->reason, "command exited with status 3");
  assert_int_equal(t->n_history, 5);
  assert_string_equal(t->history[0].state, "QUEUED");
  assert_string_equal(t->history[4].note, "command exited with status 3");
  berth_task_free(t);
  assert_int_equal(berth_store_task_get(st, "01m8vvf15x", &t, &err), 0); /* by prefix */
  assert_string_equal(t->state, "FINISHED");
  assert_string_equal(berth_kv_get(t->env, t->n_env, "X"), "1");
  berth_task_free(t);

  berth_state_version *v = NULL;
  size_t n = 0;
  assert_int_equal(berth_state_list(st, "web", &v, &n, &err), 0);
  assert_int_equal(n, 2);
  assert_int_equal(v[0].version, 2);
  assert_string_equal(v[0].task_id, "01m8vvf1n24tcbac8be0dav9rr");
  assert_int_equal(v[0].bytes, 6);
  berth_state_versions_free(v, n);

  assert_int_equal(audit_count(st), audit_records);
  assert_int_equal(berth_allowlist_count(st, &err), 3);
  cJSON *keys = berth_apikey_list_json(st, true, &err);
  assert_non_null(keys);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(keys, "keys")), api_keys);
  cJSON_Delete(keys);
}

static void
test_migrate_from_v1(void **state)
{
  const char *home = *state;
  load_fixture(home);
  berth_store *st = open_ok(home);
  berth_store_info info;
  berth_error *err = NULL;
  assert_int_equal(berth_store_info_get(st, &info, &err), 0);
  assert_int_equal(info.schema_version_at_open, 1);
  assert_int_equal(info.schema_version, info.schema_version_known);
  assert_true(info.schema_version > 1);
  assert_int_equal(info.stacks, 2);
  assert_int_equal(info.tasks, 2);
  assert_int_equal(info.audit_records, 21);
  assert_int_equal(info.api_keys, 2);
  assert_true(info.size_bytes > 0);
  check_fixture_records(st, 21, 2);

  /* the migrated store takes new records the way a new one does */
  berth_task t = { .stack = "web", .command = "echo again", .actor = "bob" };
  assert_int_equal(berth_store_task_create(st, &t, &err), 0);
  assert_int_equal(t.seq, 3);
  free(t.id);
  free(t.state);
  assert_int_equal(berth_audit_append(st, "bob", "task.submit", "web", NULL, "ok", &err), 0);
  assert_int_equal(audit_count(st), 22);
  char *secret = NULL;
  assert_int_equal(berth_apikey_create(st, "ci", "reader", NULL, 0, "bob", &secret, &err), BERTH_EBUSY);
  berth_error_clear(&err);
  assert_int_equal(berth_apikey_create(st, "old", "reader", NULL, 0, "bob", &secret, &err), 0); /* revoked name */
  free(secret);
  berth_store_close(st);

  /* opened again: already at the newest version, nothing migrated twice */
  st = open_ok(home);
  assert_int_equal(berth_store_info_get(st, &info, &err), 0);
  assert_int_equal(info.schema_version_at_open, info.schema_version_known);
  check_fixture_records(st, 22, 3);
  berth_store_close(st);
}

/* Requests with the same key that arrive together (a cold server, a pipeline's jobs) cost one argon2id verification,
 * not one each in turn; a wrong secret still costs its own and is refused; each caller on a store handle of its own,
 * as a server's connection threads are. */
#define KEY_THREADS 6
typedef struct key_caller {
  berth_store *st;
  berth_apikey_cache *cache;
  const char *token;
  pthread_barrier_t *go;
  int rc;
} key_caller;

static void *
authenticate_together(void *arg)
{
  key_caller *c = arg;
  berth_apikey *k = NULL;
  berth_error *err = NULL;
  pthread_barrier_wait(c->go);
  c->rc = berth_apikey_authenticate(c->st, c->cache, c->token, &k, &err);
  berth_apikey_free(k);
  berth_error_free(err);
  return NULL;
}

static void
test_key_verified_once(void **state)
{
  berth_store *st = open_ok(*state);
  berth_error *err = NULL;
  char *secret = NULL;
  assert_int_equal(berth_apikey_create(st, "ci", "writer", NULL, 0, "admin", &secret, &err), 0);
  berth_apikey_cache *cache = NULL;
  assert_int_equal(berth_apikey_cache_new(&cache, &err), 0);
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, KEY_THREADS);
  key_caller callers[KEY_THREADS];
  pthread_t th[KEY_THREADS];
  for (int i = 0; i < KEY_THREADS; i++) {
    callers[i] = (key_caller){ open_ok(*state), cache, secret, &go, -1 };
    assert_int_equal(pthread_create(&th[i], NULL, authenticate_together, &callers[i]), 0);
  }
  for (int i = 0; i < KEY_THREADS; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(callers[i].rc, 0);
    berth_store_close(callers[i].st);
  }
  assert_int_equal(berth_apikey_cache_verifications(cache), 1);
  pthread_barrier_destroy(&go);

  /* a wrong secret for the same key id: verified (and refused), the cached one still needs none */
  char *wrong = strdup(secret);
  wrong[strlen(wrong) - 1] = wrong[strlen(wrong) - 1] == 'a' ? 'b' : 'a';
  berth_apikey *k = NULL;
  assert_int_equal(berth_apikey_authenticate(st, cache, wrong, &k, &err), BERTH_EDENIED);
  berth_error_clear(&err);
  assert_int_equal(berth_apikey_cache_verifications(cache), 2);
  assert_int_equal(berth_apikey_authenticate(st, cache, secret, &k, &err), 0);
  berth_apikey_free(k);
  assert_int_equal(berth_apikey_cache_verifications(cache), 2);
  free(wrong);
  free(secret);
  berth_apikey_cache_free(cache);
  berth_store_close(st);
}

#define PASSWORD "Sekr1t-pw-0f-the-store"

/* expect_bad_store BERTH_STORE NEEDLE: opening fails with one line containing needle and never the password. */
static void
expect_bad_store(const char *home, const char *url, const char *needle)
{
  setenv("BERTH_STORE", url, 1);
  berth_store *st = NULL;
  berth_error *err = NULL;
  assert_true(berth_store_open(home, &st, &err) < 0);
  if (strstr(err->msg, needle) == NULL || strstr(err->msg, PASSWORD) != NULL || strchr(err->msg, '\n'))
    fail_msg("BERTH_STORE=%s: expected `%s` and no password in: %s", url, needle, err->msg);
  assert_int_equal(berth_error_exit_code(err->code), 125);
  berth_error_free(err);
}

static void
test_bad_connection_strings(void **state)
{
  char *info = pg_conninfo_for("no_such_database");
  char *url = NULL;
  assert_true(asprintf(&url, "%s password='" PASSWORD "'", info) > 0);
  expect_bad_store(*state, url, "does not exist");
  expect_bad_store(*state, url, "cannot be opened");
  free(url);
  free(info);
  expect_bad_store(*state, "postgresql://bob:" PASSWORD "@/berth?host=/nonexistent-dir&port=1",
                   "store postgresql://bob@/berth?host=/nonexistent-dir&port=1 cannot be opened");
  expect_bad_store(*state, "postgresql://bob:" PASSWORD "@127.0.0.1:1/berth",
                   "store postgresql://bob@127.0.0.1:1/berth cannot be opened");
  expect_bad_store(*state, "host=/nonexistent-dir password" PASSWORD,
                   "must be a valid postgresql:// URL or libpq key=value settings");
  expect_bad_store(*state, "sqlite:///tmp/x.db", "BERTH_STORE must be a valid postgresql:// URL");
  unsetenv("BERTH_STORE");
}

/* With the berth_pw role of ci/start-postgres.sh (password auth): a wrong password is one line without it, the
 * right one is found through PGPASSFILE; and a database that only takes reads is refused as not writable. */
static void
test_passwords_and_read_only(void **state)
{
  if (pg_admin("SELECT count(*) FROM pg_roles WHERE rolname = 'berth_pw'") == 0) {
    printf("skipped: no role berth_pw on the server (ci/start-postgres.sh makes it)\n");
    skip();
  }
  char sql[256], *info = NULL, *url = NULL;
  snprintf(sql, sizeof sql, "CREATE DATABASE %s_pw OWNER berth_pw", pg_db);
  pg_admin(sql);
  char db[80];
  snprintf(db, sizeof db, "%s_pw", pg_db);
  info = pg_conninfo_for(db);
  assert_true(asprintf(&url, "%s user='berth_pw' password='" PASSWORD "'", info) > 0);
  expect_bad_store(*state, url, "password authentication failed for user \"berth_pw\"");
  free(url);

  char *passfile = NULL;
  assert_true(asprintf(&passfile, "%s/pgpass", (const char *) *state) > 0);
  FILE *f = fopen(passfile, "w");
  assert_non_null(f);
  fputs("*:*:*:berth_pw:berth-test-pw\n", f);
  fclose(f);
  chmod(passfile, 0600);
  setenv("PGPASSFILE", passfile, 1);
  assert_true(asprintf(&url, "%s user='berth_pw'", info) > 0);
  setenv("BERTH_STORE", url, 1);
  berth_store *st = open_ok(*state);
  create_stack(st, "with-passfile");
  berth_store_close(st);
  unsetenv("PGPASSFILE");
  free(url);
  free(passfile);

  snprintf(sql, sizeof sql, "ALTER DATABASE %s SET default_transaction_read_only = on", pg_db);
  pg_admin(sql);
  free(info);
  info = pg_conninfo_for(pg_db);
  expect_bad_store(*state, info, "is not writable (cannot execute CREATE TABLE in a read-only transaction)");
  free(info);
  unsetenv("BERTH_STORE");
  snprintf(sql, sizeof sql, "DROP DATABASE %s_pw WITH (FORCE)", pg_db);
  pg_admin(sql);
}

/* Every row of a table as text, in key order: equal digests mean equal records, byte for byte. */
static char *
table_digest(berth_store *st, const char *table)
{
  char sql[96];
  snprintf(sql, sizeof sql, "SELECT * FROM %s ORDER BY 1, 2", table);
  db_stmt *s = NULL;
  berth_error *err = NULL;
  if (db_prepare(store_db(st), sql, &s, &err) < 0)
    fail_msg("%s", err->msg);
  char *out = strdup("");
  while (db_step(s, &err) == DB_ROW)
    for (int i = 0; i < db_column_count(s); i++) {
      const char *v = db_column_text(s, i);
      char *next = NULL;
      assert_true(asprintf(&next, "%s%s=%s%c", out, db_column_name(s, i), v ? v : "<null>",
                           i + 1 < db_column_count(s) ? '|' : '\n')
                  > 0);
      free(out);
      out = next;
    }
  assert_null(err);
  db_finalize(s);
  return out;
}

static int
count_record(void *ud, int kind, int phase, const char *data, size_t len)
{
  (void) kind;
  (void) phase;
  (void) data;
  *(int64_t *) ud += len == 1000;
  return 0;
}

/* berth store copy: the 0.1.0 fixture, migrated on SQLite, copied into an empty PostgreSQL database: every row
 * equal, the audit chain verifies with the same head, new records continue the sequences; a second copy into the
 * now non-empty database is refused. */
static void
test_copy_to_postgresql(void **state)
{
  char *target = strdup(getenv("BERTH_STORE"));
  unsetenv("BERTH_STORE");
  load_fixture(*state);
  berth_store *from = open_ok(*state);
  berth_store_copy_report report;
  berth_error *err = NULL;
  /* a task's log, a file on SQLite: records of 1000 bytes filling a little over two chunks (BERTH_LOG_BUFFER each
   * at most) */
  const int n_records = (int) (2 * BERTH_LOG_BUFFER / (1000 + 6)) + 1;
  db_stmt *q = NULL;
  assert_int_equal(db_prepare(store_db(from), "SELECT id FROM tasks ORDER BY seq LIMIT 1", &q, &err), 0);
  assert_int_equal(db_step(q, &err), DB_ROW);
  char *task_id = strdup(db_column_text(q, 0));
  db_finalize(q);
  berth_task_log *log = NULL;
  assert_int_equal(berth_task_log_create(from, task_id, &log, &err), 0);
  char line[1000];
  memset(line, 'x', sizeof line);
  for (int i = 0; i < n_records; i++)
    assert_int_equal(berth_task_log_write(log, BERTH_LOG_STDOUT, BERTH_PHASE_PERFORMING, line, sizeof line, &err), 0);
  berth_task_log_close(log);
  if (berth_store_copy(from, target, &report, &err) < 0)
    fail_msg("copy: %s", err->msg);
  assert_int_equal(report.n, 20); /* 13, the 6 tables of schedules and webhooks, and the metrics' counters */
  assert_string_equal(report.tables[12].table, "task_log_chunks");
  assert_int_equal(report.tables[12].rows, 3);
  assert_string_equal(report.tables[7].table, "audit_log");
  assert_string_equal(report.tables[10].table, "settings");
  assert_int_equal(report.tables[7].rows, 21);
  assert_int_equal(berth_store_copy(from, target, &report, &err), BERTH_EBUSY);
  assert_non_null(strstr(err->msg, "is not empty"));
  berth_error_clear(&err);

  /* the key went along into the store's settings: the copy unseals without BERTH_HOME/secret.key */
  char key[512];
  snprintf(key, sizeof key, "%s/secret.key", (const char *) *state);
  assert_int_equal(unlink(key), 0);
  setenv("BERTH_STORE", target, 1);
  berth_store *to = open_ok(*state);
  const char *names[] = { "meta",        "stacks",        "tasks",     "task_transitions", "state_versions",
                          "image_rules", "task_policies", "audit_log", "audit_head",       "api_keys" };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char *a = table_digest(from, names[i]), *b = table_digest(to, names[i]);
    assert_true(strlen(a) > 0); /* every table of the fixture has rows */
    if (strcmp(a, b) != 0)
      fail_msg("table %s differs:\n%s\nvs\n%s", names[i], a, b);
    free(a);
    free(b);
  }
  assert_string_equal(berth_store_instance_id(to), berth_store_instance_id(from));
  berth_log_reader *r = NULL;
  assert_int_equal(berth_log_reader_open(to, task_id, &r, &err), 0);
  int64_t records = 0;
  assert_int_equal(berth_log_reader_read(r, count_record, &records, &err), n_records);
  berth_log_reader_close(r);
  free(task_id);
  check_fixture_records(to, 21, 2);
  berth_task t = { .stack = "web", .command = "echo copied", .actor = "bob" };
  assert_int_equal(berth_store_task_create(to, &t, &err), 0);
  assert_int_equal(t.seq, 3);
  free(t.id);
  free(t.state);
  assert_int_equal(berth_allowlist_add(to, "allow", "docker.io/library/alpine:*", "bob", &err), 0);
  assert_int_equal(berth_allowlist_count(to, &err), 4);
  berth_store_close(to);
  berth_store_close(from);
  free(target);
}

/* The secret key lives in the store's settings: a second host (another BERTH_HOME) unseals what the first sealed,
 * and no secret.key file is written on either. */
static void
test_secret_key_in_settings(void **state)
{
  berth_store *a = open_ok(*state);
  berth_error *err = NULL;
  berth_stack *s = new_stack("sealed");
  assert_int_equal(berth_kv_set(&s->secret_env, &s->n_secret_env, "TOKEN", "shared-secret"), 0);
  if (berth_store_stack_create(a, s, &err) != 0)
    fail_msg("create: %s", err->msg);
  berth_stack_free(s);
  char *other = make_home("berth-test-store-db-host2");
  berth_store *b = open_ok(other);
  berth_stack *got = NULL;
  if (berth_store_stack_get(b, "sealed", &got, &err) != 0)
    fail_msg("get on the second host: %s", err->msg);
  assert_string_equal(berth_kv_get(got->secret_env, got->n_secret_env, "TOKEN"), "shared-secret");
  berth_stack_free(got);
  db_stmt *q = NULL;
  assert_int_equal(db_prepare(store_db(a), "SELECT count(*) FROM settings WHERE key = 'secret_key'", &q, &err), 0);
  assert_int_equal(db_step(q, &err), DB_ROW);
  assert_int_equal(db_column_int64(q, 0), 1);
  db_finalize(q);
  char path[512];
  snprintf(path, sizeof path, "%s/secret.key", (const char *) *state);
  assert_int_not_equal(access(path, F_OK), 0);
  snprintf(path, sizeof path, "%s/secret.key", other);
  assert_int_not_equal(access(path, F_OK), 0);
  berth_store_close(b);
  berth_store_close(a);
  rm_tree(other);
  free(other);
}

static void
write_store_config(const char *home, const char *store)
{
  char path[512];
  snprintf(path, sizeof path, "%s/config.json", home);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f, "{\"store\": \"%s\"}\n", store);
  fclose(f);
}

/* The key `store` of config.json chooses the store when BERTH_STORE is unset; BERTH_STORE overrides it. */
static void
test_store_from_config(void **state)
{
  char *conninfo = strdup(getenv("BERTH_STORE"));
  unsetenv("BERTH_STORE");
  write_store_config(*state, conninfo);
  berth_store *st = open_ok(*state);
  berth_store_info info;
  berth_error *err = NULL;
  assert_int_equal(berth_store_info_get(st, &info, &err), 0);
  assert_string_equal(info.engine, "postgresql");
  assert_non_null(strstr(info.location, pg_db));
  berth_store_close(st);
  setenv("BERTH_STORE", "postgresql://nobody@/none?host=/nonexistent-dir&port=1", 1);
  expect_open_error(*state, "store postgresql://nobody@/none?host=/nonexistent-dir&port=1 cannot be opened");
  unsetenv("BERTH_STORE");
  write_store_config(*state, "sqlite:///tmp/x.db");
  expect_open_error(*state, "the key `store` of config.json must be a valid postgresql:// URL");
  setenv("BERTH_STORE", conninfo, 1);
  free(conninfo);
}

/* A task whose supervisor is gone is failed by whoever notices, but on a shared store only from the BERTH_HOME the
 * supervisor ran from: a follower on another host must not fail a task that runs there. */
static void
test_orphans_judged_locally(void **state)
{
  berth_store *st = open_ok(*state);
  create_stack(st, "web");
  berth_error *err = NULL;
  berth_task t = { .stack = "web", .command = "sleep 60", .actor = "bob" };
  assert_int_equal(berth_store_task_create(st, &t, &err), 0);
  db_stmt *s = NULL; /* as a supervisor elsewhere: its pid recorded, no liveness lock in this BERTH_HOME */
  assert_int_equal(
      db_prepare(store_db(st), "UPDATE tasks SET supervisor_pid = 4242, created_at = 0 WHERE id = ?", &s, &err), 0);
  db_bind_text(s, 1, t.id);
  assert_int_equal(db_run(s, NULL, &err), 0);
  berth_task *got = NULL;
  assert_int_equal(berth_store_task_get(st, t.id, &got, &err), 0);
  assert_int_equal(berth_queue_fail_if_orphan(st, NULL, got, &err), on_pg ? 0 : 1);
  berth_task_free(got);
  assert_int_equal(berth_store_task_get(st, t.id, &got, &err), 0);
  assert_string_equal(got->state, on_pg ? "QUEUED" : "FAILED");
  berth_task_free(got);
  free(t.id);
  free(t.state);
  berth_store_close(st);
}

/* Task retention over more than one batch: max_batches stops with `more`, the next call goes on; only ended tasks
 * older than the cutoff go, with their transitions; the metrics' histograms and redactions keep what they counted;
 * each batch is one audit record and the chain verifies. */
static void
test_prune_batches(void **state)
{
  berth_store *st = open_ok(*state);
  create_stack(st, "web");
  create_stack(st, "api");
  berth_error *err = NULL;
  for (int i = 0; i < 1103; i++) {
    berth_task t = { .stack = i < 1100 ? "web" : "api", .command = "true", .actor = "bob" };
    if (berth_store_task_create(st, &t, &err) != 0)
      fail_msg("create: %s", err->msg);
    free(t.id);
    free(t.state);
  }
  db_stmt *s = NULL; /* all of them ended long ago: 2 s each, 1 redaction each */
  assert_int_equal(
      db_prepare(store_db(st),
                 "UPDATE tasks SET state = 'FINISHED', exit_code = 0, created_at = 1000, started_at = 2000,"
                 " finished_at = 4000, redactions = 1",
                 &s, &err),
      0);
  assert_int_equal(db_run(s, NULL, &err), 0);
  berth_task q = { .stack = "web", .command = "sleep 1", .actor = "bob" }; /* queued: never pruned, however old */
  assert_int_equal(berth_store_task_create(st, &q, &err), 0);
  assert_int_equal(db_prepare(store_db(st), "UPDATE tasks SET created_at = 1000 WHERE id = ?", &s, &err), 0);
  db_bind_text(s, 1, q.id);
  assert_int_equal(db_run(s, NULL, &err), 0);
  berth_task_stats before, after;
  assert_int_equal(berth_store_task_stats(st, &before, &err), 0);
  int64_t records = audit_count(st);

  berth_prune p = { .older_than_ms = 1000, .max_batches = 2 };
  berth_prune_result r;
  if (berth_tasks_prune(st, &p, "alice", &r, &err) != 0)
    fail_msg("prune: %s", err->msg);
  assert_true(r.tasks == 1000 && r.more);
  p.max_batches = 0;
  assert_int_equal(berth_tasks_prune(st, &p, "alice", &r, &err), 0);
  assert_true(r.tasks == 103 && !r.more);
  p.dry_run = true;
  assert_int_equal(berth_tasks_prune(st, &p, "alice", &r, &err), 0);
  assert_true(r.tasks == 0);

  berth_task **v = NULL;
  size_t n = 0;
  assert_int_equal(berth_store_task_list(st, NULL, &v, &n, &err), 0);
  assert_int_equal(n, 1); /* the queued one */
  assert_string_equal(v[0]->id, q.id);
  berth_tasks_free(v, n);
  int64_t transitions = -1;
  assert_int_equal(db_prepare(store_db(st), "SELECT COUNT(*) FROM task_transitions", &s, &err), 0);
  assert_int_equal(db_step(s, &err), DB_ROW);
  transitions = db_column_int64(s, 0);
  db_finalize(s);
  assert_true(transitions == 1); /* the queued task's own */
  assert_int_equal(berth_store_task_stats(st, &after, &err), 0);
  assert_true(after.duration.count == before.duration.count && before.duration.count == 1103);
  assert_true(after.wait.count == before.wait.count && after.redactions == before.redactions);
  assert_true(after.duration.sum > 2205.9 && after.duration.sum < 2206.1); /* 1103 x 2 s */
  for (int i = 0; i < BERTH_STATS_BUCKETS; i++)
    assert_true(after.duration.le[i] == before.duration.le[i] && after.wait.le[i] == before.wait.le[i]);
  assert_true(audit_count(st) == records + 3); /* 500, 500, 103: one record each */
  berth_task_stats_clear(&before);
  berth_task_stats_clear(&after);
  free(q.id);
  free(q.state);
  berth_store_close(st);
}

static int64_t
state_count(const berth_task_stats *ts, const char *state)
{
  for (size_t i = 0; i < ts->n_states; i++)
    if (strcmp(ts->by_state[i].label, state) == 0)
      return ts->by_state[i].n;
  return 0;
}

static void
run_sql(berth_store *st, const char *sql)
{
  db_stmt *s = NULL;
  berth_error *err = NULL;
  if (db_prepare(store_db(st), sql, &s, &err) < 0 || db_run(s, NULL, &err) < 0)
    fail_msg("%s: %s", sql, err->msg);
}

static void
make_tasks(berth_store *st, int n)
{
  berth_error *err = NULL;
  for (int i = 0; i < n; i++) {
    berth_task t = { .stack = "web", .command = "true", .actor = "bob" };
    if (berth_store_task_create(st, &t, &err) != 0)
      fail_msg("create: %s", err->msg);
    free(t.id);
    free(t.state);
  }
}

/* The metrics' task statistics: a process sums the tasks that settled (ended a minute ago) once and reads only the
 * later ones after that; what it shows is what the whole table holds at every step: tasks ending, settling, new ones
 * queued, a prune (the sums made again), on both engines. */
static void
test_stats_settled(void **state)
{
  berth_store *st = open_ok(*state);
  create_stack(st, "web");
  berth_error *err = NULL;
  berth_task_stats ts;
  make_tasks(st, 10); /* ended long ago: 2 s each, a redaction each */
  run_sql(st, "UPDATE tasks SET state = 'FINISHED', exit_code = 0, created_at = 1000, started_at = 2000,"
              " finished_at = 4000, redactions = 1");
  assert_int_equal(berth_store_task_stats(st, &ts, &err), 0);
  assert_true(state_count(&ts, "FINISHED") == 10 && ts.duration.count == 10 && ts.redactions == 10);
  berth_task_stats_clear(&ts);

  make_tasks(st, 5); /* ended just now: 1 s each, two redactions each */
  char sql[256];
  int64_t now = berth_now_ms();
  snprintf(sql, sizeof sql,
           "UPDATE tasks SET state = 'FAILED', started_at = %lld, finished_at = %lld, redactions = 2"
           " WHERE state = 'QUEUED'",
           (long long) now - 1000, (long long) now);
  run_sql(st, sql);
  make_tasks(st, 1); /* and one queued */
  assert_int_equal(berth_store_task_stats(st, &ts, &err), 0);
  assert_true(state_count(&ts, "FINISHED") == 10 && state_count(&ts, "FAILED") == 5 && state_count(&ts, "QUEUED") == 1);
  assert_true(ts.duration.count == 15 && ts.redactions == 20 && ts.wait.count == 15);
  assert_true(ts.duration.sum > 24.9 && ts.duration.sum < 25.1);  /* 10 x 2 s + 5 x 1 s */
  assert_true(ts.duration.le[2] == 5 && ts.duration.le[3] == 15); /* <= 1 s: 5; <= 2.5 s: all */
  berth_task_stats_clear(&ts);

  /* the five settle (as a minute later); the queued one starts and ends: same sums, one more */
  run_sql(st, "UPDATE tasks SET finished_at = 5000, started_at = 4000 WHERE state = 'FAILED'");
  snprintf(sql, sizeof sql,
           "UPDATE tasks SET state = 'STOPPED', started_at = %lld, finished_at = %lld WHERE state = 'QUEUED'",
           (long long) now - 500, (long long) now);
  run_sql(st, sql);
  assert_int_equal(berth_store_task_stats(st, &ts, &err), 0);
  assert_true(state_count(&ts, "FINISHED") == 10 && state_count(&ts, "FAILED") == 5
              && state_count(&ts, "STOPPED") == 1);
  assert_true(ts.duration.count == 16 && ts.redactions == 20 && state_count(&ts, "QUEUED") == 0);
  berth_task_stats_clear(&ts);

  /* a prune: the ended tasks' gauge goes down, what they counted stays */
  berth_prune p = { .older_than_ms = 1000 };
  berth_prune_result r;
  assert_int_equal(berth_tasks_prune(st, &p, "alice", &r, &err), 0);
  assert_int_equal(r.tasks, 15);
  assert_int_equal(berth_store_task_stats(st, &ts, &err), 0);
  assert_true(state_count(&ts, "FINISHED") == 0 && state_count(&ts, "FAILED") == 0 && state_count(&ts, "STOPPED") == 1);
  assert_true(ts.duration.count == 16 && ts.redactions == 20 && ts.wait.count == 16);
  berth_task_stats_clear(&ts);
  make_tasks(st, 2);
  assert_int_equal(berth_store_task_stats(st, &ts, &err), 0);
  assert_true(state_count(&ts, "QUEUED") == 2 && state_count(&ts, "STOPPED") == 1 && ts.duration.count == 16);
  berth_task_stats_clear(&ts);
  berth_store_close(st);
}

/* The server ends the store's connection (as a restart would): a statement outside a transaction is sent again on
 * a new connection; inside a transaction the operation fails in one line, and what was open is gone, not
 * half-written. */
static void
kill_backend(berth_store *st)
{
  db_stmt *s = NULL;
  berth_error *err = NULL;
  assert_int_equal(db_prepare(store_db(st), "SELECT pg_backend_pid()", &s, &err), 0);
  assert_int_equal(db_step(s, &err), DB_ROW);
  int64_t pid = db_column_int64(s, 0);
  db_finalize(s);
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld)", (long long) pid);
  pg_admin(sql);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %lld", (long long) pid);
  for (int i = 0; i < 100 && pg_admin(sql) > 0; i++)
    usleep(50000);
}

static void
expect_lost(int rc, berth_error **err)
{
  assert_true(rc < 0);
  if (strstr((*err)->msg, "the connection was lost") == NULL || strchr((*err)->msg, '\n'))
    fail_msg("unexpected: %s", (*err)->msg);
  berth_error_clear(err);
}

static void
test_connection_lost(void **state)
{
  berth_store *st = open_ok(*state);
  berth_error *err = NULL;
  berth_stack **v = NULL;
  size_t n = 0;
  /* outside a transaction the statement is sent again on a new connection: the caller sees nothing */
  kill_backend(st);
  assert_int_equal(berth_store_stack_list(st, &v, &n, &err), 0);
  berth_stacks_free(v, n);
  /* a write whose transaction had not reached the server yet (its BEGIN waits for its first statement) is sent
   * again whole: its first statement new to the connection (prepared first), then one the connection had prepared */
  const char *names[] = { "first", "second" };
  for (int i = 0; i < 2; i++) {
    kill_backend(st);
    assert_int_equal(berth_store_begin(st, &err), 0);
    create_stack(st, names[i]);
    assert_int_equal(berth_store_commit(st, &err), 0);
    assert_true(stack_exists(st, names[i]));
  }
  /* a read sent ahead outside a transaction (a task with its stack's secrets), stepped on a lost connection */
  berth_task t = { .stack = "first", .command = "true", .actor = "bob" };
  assert_int_equal(berth_store_task_create(st, &t, &err), 0);
  kill_backend(st);
  berth_task_ahead *ahead = berth_store_task_read_ahead(st, t.id);
  berth_task *got = NULL;
  berth_kv *secrets = NULL;
  size_t n_secrets = 0;
  bool incomplete = true;
  if (berth_store_task_get_with_secrets(st, t.id, ahead, &got, &secrets, &n_secrets, &incomplete, &err) != 0
      || incomplete)
    fail_msg("read ahead after a lost connection: %s", err->msg);
  assert_string_equal(got->id, t.id);
  berth_task_ahead_free(ahead);
  berth_task_free(got);
  berth_kv_array_free(secrets, n_secrets);
  free(t.id);
  free(t.state);

  assert_int_equal(berth_store_begin(st, &err), 0);
  create_stack(st, "half");
  kill_backend(st);
  berth_stack *s = new_stack("other");
  expect_lost(berth_store_stack_create(st, s, &err), &err);
  berth_stack_free(s);
  berth_store_rollback(st);
  assert_int_equal(db_tx_depth(store_db(st)), 0);
  assert_false(stack_exists(st, "half"));
  create_stack(st, "after");
  assert_true(stack_exists(st, "after"));
  berth_store_close(st);
}

/* A task read with its stack's secret values (to mask them where shown): by its whole id in one statement, sent ahead
 * or not; by a prefix in two; the same values every way; a task whose stack is gone has none, and is still read. */
static void
expect_task_secrets(berth_store *st, const char *id, bool ahead_too, size_t want_n, const char *want_value)
{
  for (int pass = 0; pass < (ahead_too ? 2 : 1); pass++) {
    berth_task_ahead *ahead = pass ? berth_store_task_read_ahead(st, id) : NULL;
    berth_error *err = NULL;
    berth_task *got = NULL;
    berth_kv *secrets = NULL;
    size_t n = 0;
    bool incomplete = true;
    if (berth_store_task_get_with_secrets(st, id, ahead, &got, &secrets, &n, &incomplete, &err) != 0)
      fail_msg("read %s with its stack's secrets: %s", id, err->msg);
    assert_false(incomplete);
    assert_int_equal(n, want_n);
    if (want_value)
      assert_string_equal(berth_kv_get(secrets, n, "TOKEN"), want_value);
    assert_true(got->n_history >= 1); /* its history came with it */
    berth_task_ahead_free(ahead);
    berth_task_free(got);
    berth_kv_array_free(secrets, n);
  }
}

static void
test_task_with_secrets(void **state)
{
  berth_store *st = open_ok(*state);
  berth_error *err = NULL;
  berth_stack *s = new_stack("masked");
  berth_kv_set(&s->secret_env, &s->n_secret_env, "TOKEN", "tok-Secret-1234");
  berth_kv_set(&s->secret_env, &s->n_secret_env, "OTHER", "other-Secret-5678");
  assert_int_equal(berth_store_stack_create(st, s, &err), 0);
  berth_stack_free(s);
  create_stack(st, "plain");
  berth_task t = { .stack = "masked", .command = "echo tok-Secret-1234", .actor = "bob" };
  berth_task u = { .stack = "plain", .command = "true", .actor = "bob" };
  assert_int_equal(berth_store_task_create(st, &t, &err), 0);
  assert_int_equal(berth_store_task_create(st, &u, &err), 0);
  char prefix[25];
  snprintf(prefix, sizeof prefix, "%.24s", t.id); /* not whole: read the long way */
  expect_task_secrets(st, t.id, true, 2, "tok-Secret-1234");
  expect_task_secrets(st, prefix, false, 2, "tok-Secret-1234");
  expect_task_secrets(st, u.id, true, 0, NULL);
  /* an ahead read of another task is not used for this one */
  berth_task_ahead *other = berth_store_task_read_ahead(st, u.id);
  berth_task *got = NULL;
  berth_kv *secrets = NULL;
  size_t n = 0;
  bool incomplete = true;
  assert_int_equal(berth_store_task_get_with_secrets(st, t.id, other, &got, &secrets, &n, &incomplete, &err), 0);
  assert_string_equal(got->id, t.id);
  assert_int_equal(n, 2);
  berth_task_ahead_free(other);
  berth_task_free(got);
  berth_kv_array_free(secrets, n);
  /* its stack deleted: the task is still read, with no values to mask */
  assert_int_equal(berth_store_task_transition(st, t.id, "CANCELED", "bob", NULL, NULL, 0, &err), 0);
  if (berth_store_stack_delete(st, "masked", &err) != 0)
    fail_msg("delete: %s", err->msg);
  expect_task_secrets(st, t.id, true, 0, NULL);
  expect_task_secrets(st, prefix, false, 0, NULL);
  free(t.id);
  free(t.state);
  free(u.id);
  free(u.state);
  berth_store_close(st);
}

/* ---- a Unix socket proxy to PostgreSQL that loses one answer ---- */

/* Forwards bytes both ways. Once a client message holding `pattern` has passed (a statement being prepared), the
 * client's next message (its execution) is forwarded and the server's answer to it read to its end (ReadyForQuery)
 * and dropped with both connections: the statement ran and committed, and the client never hears so. Once only. */
typedef struct lossy_proxy {
  char dir[64], path[sizeof((struct sockaddr_un *) 0)->sun_path], target[sizeof((struct sockaddr_un *) 0)->sun_path];
  const char *pattern;
  int listen_fd;
  pthread_t thread;
  pthread_mutex_t mu;
  int state; /* 0 passing, 1 pattern seen, 2 dropping the answer, 3 dropped (passing again) */
} lossy_proxy;

typedef struct proxy_pair {
  lossy_proxy *p;
  int client, server;
} proxy_pair;

static void *
proxy_pair_run(void *arg)
{
  proxy_pair *pp = arg;
  lossy_proxy *p = pp->p;
  char buf[65536];
  for (;;) {
    struct pollfd fds[2] = { { pp->client, POLLIN, 0 }, { pp->server, POLLIN, 0 } };
    if (poll(fds, 2, -1) <= 0)
      break;
    bool from_client = fds[0].revents != 0;
    ssize_t n = read(from_client ? pp->client : pp->server, buf, sizeof buf);
    if (n <= 0)
      break;
    pthread_mutex_lock(&p->mu);
    int st = p->state;
    if (from_client && st == 0 && memmem(buf, (size_t) n, p->pattern, strlen(p->pattern)) != NULL)
      p->state = 1;
    else if (from_client && st == 1)
      p->state = 2;
    bool drop = !from_client && st == 2;
    /* ReadyForQuery ends the answer: 'Z', length 5, the transaction status */
    bool answered = drop && n >= 6 && memcmp(buf + n - 6, "Z\0\0\0\5", 5) == 0;
    if (answered)
      p->state = 3;
    pthread_mutex_unlock(&p->mu);
    if (answered)
      break;
    if (!drop && write(from_client ? pp->server : pp->client, buf, (size_t) n) != n)
      break;
  }
  close(pp->client);
  close(pp->server);
  free(pp);
  return NULL;
}

static void *
proxy_accept_run(void *arg)
{
  lossy_proxy *p = arg;
  for (;;) {
    int c = accept(p->listen_fd, NULL, NULL);
    if (c < 0)
      return NULL; /* closed: the test is over */
    struct sockaddr_un to = { .sun_family = AF_UNIX };
    memcpy(to.sun_path, p->target, sizeof to.sun_path);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *) &to, sizeof to) < 0) {
      close(c);
      if (s >= 0)
        close(s);
      continue;
    }
    proxy_pair *pp = calloc(1, sizeof *pp);
    pthread_t t;
    *pp = (proxy_pair){ p, c, s };
    if (pthread_create(&t, NULL, proxy_pair_run, pp) != 0)
      fail_msg("proxy thread");
    pthread_detach(t);
  }
}

/* Starts the proxy in front of BERTH_STORE's server (a Unix socket) and points BERTH_STORE at it. */
static void
lossy_proxy_start(lossy_proxy *p, const char *pattern)
{
  const char *store = getenv("BERTH_STORE");
  PQconninfoOption *opts = PQconninfoParse(store, NULL);
  assert_non_null(opts);
  const char *host = NULL, *port = "5432";
  for (PQconninfoOption *o = opts; o->keyword; o++) {
    if (strcmp(o->keyword, "host") == 0 && o->val && *o->val)
      host = o->val;
    if (strcmp(o->keyword, "port") == 0 && o->val && *o->val)
      port = o->val;
  }
  if (host == NULL || host[0] != '/')
    fail_msg("this test needs BERTH_TEST_PG on a Unix socket (host=/dir), not `%s`", host ? host : "(none)");
  memset(p, 0, sizeof *p);
  p->pattern = pattern;
  pthread_mutex_init(&p->mu, NULL);
  snprintf(p->dir, sizeof p->dir, "/tmp/berth-lossy-XXXXXX");
  assert_non_null(mkdtemp(p->dir));
  snprintf(p->path, sizeof p->path, "%s/.s.PGSQL.%s", p->dir, port);
  if (snprintf(p->target, sizeof p->target, "%s/.s.PGSQL.%s", host, port) >= (int) sizeof p->target)
    fail_msg("the server's socket path is too long: %s", host);
  PQconninfoFree(opts);
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  memcpy(a.sun_path, p->path, sizeof a.sun_path);
  p->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
  assert_true(p->listen_fd >= 0);
  assert_int_equal(bind(p->listen_fd, (struct sockaddr *) &a, sizeof a), 0);
  assert_int_equal(listen(p->listen_fd, 16), 0);
  assert_int_equal(pthread_create(&p->thread, NULL, proxy_accept_run, p), 0);
  char *proxied = NULL;
  assert_true(asprintf(&proxied, "%s host='%s'", store, p->dir) > 0); /* the last host= wins */
  setenv("BERTH_STORE", proxied, 1);
  free(proxied);
}

static int
lossy_proxy_state(lossy_proxy *p)
{
  pthread_mutex_lock(&p->mu);
  int st = p->state;
  pthread_mutex_unlock(&p->mu);
  return st;
}

static void
lossy_proxy_stop(lossy_proxy *p)
{
  shutdown(p->listen_fd, SHUT_RDWR);
  close(p->listen_fd);
  pthread_join(p->thread, NULL);
  unlink(p->path);
  rmdir(p->dir);
}

/* A guessed audit append (one statement on its own) that committed on the server, its answer lost with the
 * connection: the engine sends it again on a new connection, which must count the record as in (the head already
 * is that record) instead of appending it a second time. */
static void
test_audit_append_answer_lost(void **state)
{
  char *direct = strdup(getenv("BERTH_STORE"));
  lossy_proxy p;
  lossy_proxy_start(&p, "pg_try_advisory_xact_lock");
  berth_store *st = open_ok(*state);
  append_ok(st, "one"); /* takes the lock and reads the head; remembers it */
  int64_t id = 0;
  unsigned char raw[32];
  assert_true(store_audit_head_known(st, &id, raw));
  append_ok(st, "two"); /* guessed: prepared (the pattern), run, committed, its answer dropped, sent again */
  assert_int_equal(lossy_proxy_state(&p), 3);
  append_ok(st, "three");
  berth_store_close(st);
  lossy_proxy_stop(&p);
  setenv("BERTH_STORE", direct, 1);
  free(direct);
  st = open_ok(*state);
  assert_int_equal(audit_count(st), 3); /* the chain verifies, and holds each record once */
  cJSON *list = berth_audit_list_json(st, 0, NULL);
  assert_non_null(list);
  char *text = cJSON_PrintUnformatted(list);
  const char *two = strstr(text, "\"two\"");
  assert_non_null(two);
  assert_null(strstr(two + 1, "\"two\""));
  free(text);
  cJSON_Delete(list);
  berth_store_close(st);
}

int
main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_inner_rollback_keeps_outer, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_parts, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_run_later, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_prefetch, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_rollback_on_error, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_statements, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_newer_schema_refused, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_open_while_writing, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_concurrent_appenders, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_audit_head_guess, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_audit_guess_waits_for_writer, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_wait_reasons, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_host_remove_lost, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_orphans_judged_locally, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_prune_batches, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_stats_settled, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_key_verified_once, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_task_with_secrets, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_migrate_from_v1, engine_setup, engine_teardown), /* last: SQLite only */
  };
  const struct CMUnitTest pg_only[] = {
    cmocka_unit_test_setup_teardown(test_bad_connection_strings, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_connection_lost, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_audit_append_answer_lost, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_passwords_and_read_only, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_copy_to_postgresql, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_secret_key_in_settings, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_store_from_config, engine_setup, engine_teardown),
  };
  on_pg = pg_test_wanted(argc, argv);
  if (!on_pg)
    return cmocka_run_group_tests_name("sqlite", tests, NULL, NULL);
  /* the fixture is a SQLite file: its migration is the SQLite run's */
  int failed = _cmocka_run_group_tests("postgresql", tests, sizeof tests / sizeof tests[0] - 1, NULL, NULL);
  return failed + cmocka_run_group_tests_name("postgresql only", pg_only, NULL, NULL);
}
