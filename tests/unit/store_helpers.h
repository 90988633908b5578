/* Shared by the store's unit tests: a throwaway BERTH_HOME, opening it, the sqlite3 shell's view of berth.db, and a
 * database of its own per test on the PostgreSQL server in BERTH_TEST_PG.
 * Header-only (static functions), included after <cmocka.h>. */
#ifndef BERTH_TEST_STORE_HELPERS_H
#define BERTH_TEST_STORE_HELPERS_H

#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "berth/store.h"

static int
helpers_rm_entry(const char *p, const struct stat *sb, int t, struct FTW *f)
{
  (void) sb;
  (void) t;
  (void) f;
  return remove(p);
}

/* rm -rf path (no symlinks followed). */
static inline void
rm_tree(const char *path)
{
  nftw(path, helpers_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A new empty directory /tmp/<prefix>-XXXXXX (caller frees). */
static inline char *
make_home(const char *prefix)
{
  char *home = NULL;
  assert_true(asprintf(&home, "/tmp/%s-XXXXXX", prefix) > 0);
  assert_non_null(mkdtemp(home));
  return home;
}

static inline berth_store *
open_ok(const char *home)
{
  berth_store *st = NULL;
  berth_error *err = NULL;
  if (berth_store_open(home, &st, &err) != 0)
    fail_msg("open %s: %s", home, err->msg);
  return st;
}

/* Opening home fails with one line containing needle, exit status 125. */
static inline void
expect_open_error(const char *home, const char *needle)
{
  berth_store *st = NULL;
  berth_error *err = NULL;
  assert_true(berth_store_open(home, &st, &err) < 0);
  assert_null(st);
  assert_non_null(err);
  assert_null(strchr(err->msg, '\n'));
  if (strstr(err->msg, needle) == NULL)
    fail_msg("expected `%s` in: %s", needle, err->msg);
  assert_int_equal(berth_error_exit_code(err->code), 125);
  berth_error_free(err);
}

/* Runs SQL on home/berth.db through its own connection, as someone with the sqlite3 shell would. */
static inline void
store_shell(const char *home, const char *sql)
{
  char path[512];
  snprintf(path, sizeof path, "%s/berth.db", home);
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
    fail_msg("`%.60s`: %s", sql, msg);
  sqlite3_close(db);
}

/* Runs one statement on the server in BERTH_TEST_PG (a maintenance connection, not the store's); returns the first
 * column of its first row as a number (0 when there is none). */
static inline int64_t
pg_admin(const char *sql)
{
  PGconn *pg = PQconnectdb(getenv("BERTH_TEST_PG"));
  if (PQstatus(pg) != CONNECTION_OK)
    fail_msg("BERTH_TEST_PG: %s", PQerrorMessage(pg));
  PGresult *res = PQexec(pg, sql);
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
    fail_msg("`%s`: %s", sql, PQerrorMessage(pg));
  int64_t v = st == PGRES_TUPLES_OK && PQntuples(res) > 0 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
  PQclear(res);
  PQfinish(pg);
  return v;
}

/* BERTH_TEST_PG's settings with another dbname, as libpq key=value settings (caller frees). */
static inline char *
pg_conninfo_for(const char *db)
{
  PQconninfoOption *opts = PQconninfoParse(getenv("BERTH_TEST_PG"), NULL);
  assert_non_null(opts);
  char *out = strdup("");
  for (PQconninfoOption *o = opts; o->keyword; o++) {
    const char *v = strcmp(o->keyword, "dbname") == 0 ? db : o->val;
    if (v == NULL || *v == '\0')
      continue;
    char *next = NULL;
    assert_true(asprintf(&next, "%s%s%s='%s'", out, *out ? " " : "", o->keyword, v) > 0);
    free(out);
    out = next;
  }
  PQconninfoFree(opts);
  return out;
}

/* A new database on the BERTH_TEST_PG server, named into name[size], and BERTH_STORE set to it. */
static inline void
pg_test_db_create(char *name, size_t size, int n)
{
  snprintf(name, size, "berth_t%d_%d", (int) getpid(), n);
  char sql[128];
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
  pg_admin(sql);
  char *conninfo = pg_conninfo_for(name);
  setenv("BERTH_STORE", conninfo, 1);
  free(conninfo);
}

static inline void
pg_test_db_drop(const char *name)
{
  unsetenv("BERTH_STORE");
  char sql[128];
  snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", name);
  pg_admin(sql);
}

/* `prog postgresql` runs on PostgreSQL: exits 77 (ctest's skip) with one line when BERTH_TEST_PG is unset. */
static inline bool
pg_test_wanted(int argc, char **argv)
{
  bool on_pg = argc > 1 && strcmp(argv[1], "postgresql") == 0;
  unsetenv("BERTH_STORE");
  if (on_pg && (getenv("BERTH_TEST_PG") == NULL || *getenv("BERTH_TEST_PG") == '\0')) {
    printf("skipped: set BERTH_TEST_PG to a PostgreSQL server (ci/start-postgres.sh prints one)\n");
    exit(77);
  }
  return on_pg;
}
/* The engine a store test runs on (`prog postgresql`: PostgreSQL), and the database of the current test there. */
static bool on_pg;
static int n_databases;
static char pg_db[64];

/* setup/teardown of a test on either engine: *state is a new empty BERTH_HOME; on PostgreSQL BERTH_STORE names a new
 * database of the test's own. */
static inline int
engine_setup(void **state)
{
  if (on_pg)
    pg_test_db_create(pg_db, sizeof pg_db, ++n_databases);
  *state = make_home("berth-test-store");
  return 0;
}

static inline int
engine_teardown(void **state)
{
  rm_tree(*state);
  free(*state);
  if (on_pg)
    pg_test_db_drop(pg_db);
  return 0;
}

/* main() of a test that runs on both engines: `tests` on the one chosen by argv, then `pg_only` on PostgreSQL. */
#define ENGINE_TESTS_MAIN(argc, argv, tests, pg_only)                                                                  \
  do {                                                                                                                 \
    on_pg = pg_test_wanted(argc, argv);                                                                                \
    if (!on_pg)                                                                                                        \
      return cmocka_run_group_tests_name("sqlite", tests, NULL, NULL);                                                 \
    return cmocka_run_group_tests_name("postgresql", tests, NULL, NULL)                                                \
           + cmocka_run_group_tests_name("postgresql only", pg_only, NULL, NULL);                                      \
  } while (0)

#endif
