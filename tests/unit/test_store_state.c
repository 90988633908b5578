/* Stack state versions: begin/commit/abort/prune, and that a version is never half-written.
 *
 * Run as `test_store_state postgresql` (ctest label postgresql) on a database of its own on the server in
 * BERTH_TEST_PG, where versions are tars in the database: then another host (BERTH_HOME) reads the newest too. */
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "berth/store.h"
#include "store_helpers.h"

static int
setup(void **state)
{
  if (on_pg)
    pg_test_db_create(pg_db, sizeof pg_db, ++n_databases);
  char *home = strdup("/tmp/berth-test-state-XXXXXX");
  assert_non_null(mkdtemp(home));
  berth_store *st = NULL;
  berth_error *err = NULL;
  assert_int_equal(berth_store_open(home, &st, &err), 0);
  free(home);
  berth_stack *s = berth_stack_new();
  s->name = strdup("tf");
  s->image = strdup("alpine");
  s->keep_versions = 3;
  assert_int_equal(berth_store_stack_create(st, s, &err), 0);
  berth_stack_free(s);
  *state = st;
  return 0;
}

static int
teardown(void **state)
{
  berth_store *st = *state;
  char *home = strdup(berth_store_home(st));
  berth_store_close(st);
  rm_tree(home);
  free(home);
  if (on_pg)
    pg_test_db_drop(pg_db);
  return 0;
}

static void
write_file(const char *dir, const char *rel, const char *content)
{
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  for (char *slash = strchr(path + strlen(dir) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
    *slash = '\0';
    mkdir(path, 0755);
    *slash = '/';
  }
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(content, f);
  fclose(f);
}

static char *
read_file(const char *dir, const char *rel)
{
  char path[1024], buf[256] = "";
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return NULL;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  return strdup(buf);
}

/* Entries of the stack's state dir (names, excluding . and ..). */
static int
count_entries(berth_store *st, const char *prefix)
{
  char path[1024];
  snprintf(path, sizeof path, "%s/state/tf", berth_store_home(st));
  char cmd[1200];
  int n = 0;
  snprintf(cmd, sizeof cmd, "ls -A '%s' 2>/dev/null | grep -c '^%s'", path, prefix);
  FILE *p = popen(cmd, "r");
  if (fscanf(p, "%d", &n) != 1)
    n = -1;
  pclose(p);
  return n;
}

static int64_t
commit_version(berth_store *st, const char *content, const char *task)
{
  char *tmp = NULL;
  berth_error *err = NULL;
  assert_int_equal(berth_state_begin(st, "tf", &tmp, &err), 0);
  write_file(tmp, "terraform.tfstate", content);
  write_file(tmp, "sub/dir/extra.json", "{}");
  char link[1024];
  snprintf(link, sizeof link, "%s/link", tmp);
  assert_int_equal(symlink("terraform.tfstate", link), 0);
  int64_t v = 0;
  if (berth_state_commit(st, "tf", task, tmp, 0, &v, &err) != 0)
    fail_msg("commit: %s", err->msg);
  free(tmp);
  return v;
}

static void
test_commit_list_latest_prune(void **state)
{
  berth_store *st = *state;
  berth_error *err = NULL;
  char *dir = NULL;
  assert_int_equal(berth_state_latest(st, "tf", &dir, &err), 0);
  assert_null(dir);
  berth_state_version *v = NULL;
  size_t n = 9;
  assert_int_equal(berth_state_list(st, "tf", &v, &n, &err), 0);
  assert_int_equal(n, 0);
  berth_state_versions_free(v, n);

  for (int i = 1; i <= 5; i++) {
    char content[32];
    snprintf(content, sizeof content, "serial %d", i);
    assert_int_equal(commit_version(st, content, "task-x"), i);
    assert_int_equal(berth_state_latest(st, "tf", &dir, &err), 0);
    char *got = read_file(dir, "terraform.tfstate");
    assert_string_equal(got, content);
    free(got);
    free(dir);
  }
  /* keep_versions = 3: versions 5, 4, 3 remain, newest first, with their sizes; the others are gone from disk */
  assert_int_equal(berth_state_list(st, "tf", &v, &n, &err), 0);
  assert_int_equal(n, 3);
  assert_int_equal(v[0].version, 5);
  assert_int_equal(v[2].version, 3);
  assert_string_equal(v[0].task_id, "task-x");
  assert_int_equal(v[0].files, 3);                                /* two files and a symlink */
  assert_int_equal(v[0].bytes, (int64_t) strlen("serial 5") + 2); /* symlinks count no bytes */
  assert_true(v[0].created_at > 0);
  berth_state_versions_free(v, n);
  char *old = berth_state_version_path(st, "tf", 2);
  assert_int_equal(access(old, F_OK), -1);
  free(old);
  /* symlinks are kept as symlinks */
  char *kept = NULL;
  assert_int_equal(berth_state_latest(st, "tf", &kept, &err), 0);
  char link[1024], target[64] = "";
  snprintf(link, sizeof link, "%s/link", kept);
  assert_int_equal(readlink(link, target, sizeof target - 1), (ssize_t) strlen("terraform.tfstate"));
  free(kept);
  assert_int_equal(count_entries(st, ".tmp-"), 0);

  /* an explicit keep overrides the stack's */
  char *tmp = NULL;
  assert_int_equal(berth_state_begin(st, "tf", &tmp, &err), 0);
  int64_t ver = 0;
  assert_int_equal(berth_state_commit(st, "tf", NULL, tmp, 1, &ver, &err), 0);
  free(tmp);
  assert_int_equal(ver, 6);
  assert_int_equal(berth_state_list(st, "tf", &v, &n, &err), 0);
  assert_int_equal(n, 1);
  assert_null(v[0].task_id);
  assert_int_equal(v[0].files, 0);
  berth_state_versions_free(v, n);
}

static void
test_abort_and_half_written(void **state)
{
  berth_store *st = *state;
  berth_error *err = NULL;
  assert_int_equal(commit_version(st, "good", "t1"), 1);

  /* abort leaves nothing behind */
  char *tmp = NULL;
  assert_int_equal(berth_state_begin(st, "tf", &tmp, &err), 0);
  write_file(tmp, "terraform.tfstate", "aborted");
  berth_state_abort(tmp);
  assert_int_equal(access(tmp, F_OK), -1);
  free(tmp);
  assert_int_equal(count_entries(st, ".tmp-"), 0);

  /* a writer that dies mid-write (no commit): readers still see the last complete version */
  pid_t pid = fork();
  if (pid == 0) {
    berth_store *cst = NULL;
    berth_error *cerr = NULL;
    char *ctmp = NULL;
    if (berth_store_open(berth_store_home(st), &cst, &cerr) != 0 || berth_state_begin(cst, "tf", &ctmp, &cerr) != 0)
      _exit(1);
    write_file(ctmp, "terraform.tfstate", "half-writ");
    _exit(0); /* crash: neither commit nor abort */
  }
  int status;
  waitpid(pid, &status, 0);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  char *dir = NULL;
  assert_int_equal(berth_state_latest(st, "tf", &dir, &err), 0);
  char *got = read_file(dir, "terraform.tfstate");
  assert_string_equal(got, "good");
  free(got);
  free(dir);

  /* a crash between the rename and the record leaves an unrecorded numbered dir: never listed, never latest, and
   * the next commit takes its place */
  char *orphan = berth_state_version_path(st, "tf", 2);
  assert_int_equal(mkdir(orphan, 0700), 0);
  write_file(orphan, "terraform.tfstate", "half");
  assert_int_equal(berth_state_latest(st, "tf", &dir, &err), 0);
  assert_non_null(strstr(dir, "/state/tf/1"));
  free(dir);
  berth_state_version *v = NULL;
  size_t n = 0;
  assert_int_equal(berth_state_list(st, "tf", &v, &n, &err), 0);
  assert_int_equal(n, 1);
  berth_state_versions_free(v, n);
  assert_int_equal(commit_version(st, "next", "t2"), 2);
  if (on_pg) { /* the local copy is made by latest, replacing what was there */
    assert_int_equal(berth_state_latest(st, "tf", &dir, &err), 0);
    free(dir);
  }
  got = read_file(orphan, "terraform.tfstate");
  assert_string_equal(got, "next");
  free(got);
  free(orphan);

  /* commit refuses a directory that is not one of begin's, and leaves it alone */
  char bogus[1024];
  snprintf(bogus, sizeof bogus, "%s/not-a-tmp", berth_store_home(st));
  mkdir(bogus, 0700);
  assert_int_equal(berth_state_commit(st, "tf", NULL, bogus, 0, NULL, &err), BERTH_EINVAL);
  berth_error_clear(&err);
  assert_int_equal(access(bogus, F_OK), 0);
  /* a bad stack name never becomes a path */
  assert_int_equal(berth_state_begin(st, "../escape", &dir, &err), BERTH_EINVAL);
  berth_error_clear(&err);
}

/* PostgreSQL: a second host, with a BERTH_HOME of its own, reads the newest version from the database. */
static void
test_other_host(void **state)
{
  berth_store *st = *state;
  berth_error *err = NULL;
  assert_int_equal(commit_version(st, "shared", "t1"), 1);
  char *home = make_home("berth-test-state-host2");
  berth_store *other = open_ok(home);
  char *dir = NULL;
  if (berth_state_latest(other, "tf", &dir, &err) != 0)
    fail_msg("latest on the other host: %s", err->msg);
  assert_non_null(strstr(dir, home));
  char *got = read_file(dir, "terraform.tfstate");
  assert_string_equal(got, "shared");
  free(got);
  got = read_file(dir, "sub/dir/extra.json");
  assert_string_equal(got, "{}");
  free(got);
  free(dir);
  berth_store_close(other);
  rm_tree(home);
  free(home);
}

int
main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_commit_list_latest_prune, setup, teardown),
    cmocka_unit_test_setup_teardown(test_abort_and_half_written, setup, teardown),
  };
  const struct CMUnitTest pg_only[] = {
    cmocka_unit_test_setup_teardown(test_other_host, setup, teardown),
  };
  ENGINE_TESTS_MAIN(argc, argv, tests, pg_only);
}
