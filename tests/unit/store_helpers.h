/* Shared by the store's unit tests: a throwaway BERTH_HOME, opening it, and the sqlite3 shell's view of berth.db.
 * Header-only (static functions), included after <cmocka.h>. */
#ifndef BERTH_TEST_STORE_HELPERS_H
#define BERTH_TEST_STORE_HELPERS_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#endif
