/* The store: opening (and refusing bad stores), stack CRUD with every field, secrets at rest, locks, delete. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "berth/store.h"
#include "store_helpers.h"

#define SECRET_VALUE "s3cr3t-Value-That-Must-Not-Leak-9f1c"

static int
setup_home(void **state)
{
  *state = make_home("berth-test-store");
  return 0;
}

static int
teardown_home(void **state)
{
  rm_tree(*state);
  free(*state);
  return 0;
}

/* Reads a whole file; returns its size in *n. */
static char *
slurp(const char *path, size_t *n)
{
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    *n = 0;
    return NULL;
  }
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t) len + 1);
  *n = fread(buf, 1, (size_t) len, f);
  fclose(f);
  return buf;
}

static bool
file_contains(const char *path, const char *needle)
{
  size_t n;
  char *buf = slurp(path, &n);
  bool found = buf && memmem(buf, n, needle, strlen(needle)) != NULL;
  free(buf);
  return found;
}

static berth_stack *
full_stack(const char *name)
{
  berth_stack *s = berth_stack_new();
  s->name = strdup(name);
  s->image = strdup("registry.example.com/team/runner:1.2");
  s->project_dir = strdup("/srv/infra");
  s->subdir = strdup("envs/prod");
  berth_strv_push(&s->init, "terraform init -input=false");
  berth_strv_push(&s->init, "echo 'quoted \"json\" \\ back'");
  berth_strv_push(&s->before_init, "export A=1");
  berth_strv_push(&s->before_perform, "echo before");
  berth_strv_push(&s->after_perform, "echo after");
  berth_strv_push(&s->after_run, "echo always");
  berth_kv_set(&s->env, &s->n_env, "TF_IN_AUTOMATION", "1");
  berth_kv_set(&s->env, &s->n_env, "EMPTY", "");
  berth_kv_set(&s->secret_env, &s->n_secret_env, "AWS_SECRET_ACCESS_KEY", SECRET_VALUE);
  berth_kv_set(&s->secret_env, &s->n_secret_env, "TOKEN", "tok-ünïcode-\xe2\x9c\x93");
  free(s->network);
  s->network = strdup("bridge");
  s->memory_bytes = 512LL << 20;
  s->nano_cpus = 1500000000;
  s->pids = 256;
  s->timeout_ms = 20000;
  s->idle_timeout_ms = 5000;
  free(s->pull_policy);
  s->pull_policy = strdup("never");
  berth_strv_push(&s->persist, "terraform.tfstate");
  berth_strv_push(&s->persist, ".terraform/modules");
  berth_strv_push(&s->labels, "team:infra");
  berth_strv_push(&s->labels, "prod");
  s->keep_versions = 3;
  return s;
}

static void
assert_strv_equal(const berth_strv *a, const berth_strv *b)
{
  assert_int_equal(a->n, b->n);
  for (size_t i = 0; i < a->n; i++)
    assert_string_equal(a->v[i], b->v[i]);
}

static void
assert_kv_equal(const berth_kv *a, size_t na, const berth_kv *b, size_t nb)
{
  assert_int_equal(na, nb);
  for (size_t i = 0; i < na; i++) {
    assert_string_equal(a[i].key, b[i].key);
    assert_string_equal(a[i].value, b[i].value);
  }
}

static void
assert_stack_equal(const berth_stack *a, const berth_stack *b)
{
  assert_string_equal(a->name, b->name);
  assert_string_equal(a->image, b->image);
  if (a->project_dir || b->project_dir)
    assert_string_equal(a->project_dir, b->project_dir);
  if (a->subdir || b->subdir)
    assert_string_equal(a->subdir, b->subdir);
  assert_strv_equal(&a->init, &b->init);
  assert_strv_equal(&a->before_init, &b->before_init);
  assert_strv_equal(&a->before_perform, &b->before_perform);
  assert_strv_equal(&a->after_perform, &b->after_perform);
  assert_strv_equal(&a->after_run, &b->after_run);
  assert_kv_equal(a->env, a->n_env, b->env, b->n_env);
  assert_kv_equal(a->secret_env, a->n_secret_env, b->secret_env, b->n_secret_env);
  assert_string_equal(a->network, b->network);
  assert_int_equal(a->memory_bytes, b->memory_bytes);
  assert_int_equal(a->nano_cpus, b->nano_cpus);
  assert_int_equal(a->pids, b->pids);
  assert_int_equal(a->timeout_ms, b->timeout_ms);
  assert_int_equal(a->idle_timeout_ms, b->idle_timeout_ms);
  assert_string_equal(a->pull_policy, b->pull_policy);
  assert_strv_equal(&a->persist, &b->persist);
  assert_strv_equal(&a->labels, &b->labels);
  assert_int_equal(a->keep_versions, b->keep_versions);
}

static void
test_open_creates_and_reopens(void **state)
{
  char *home = NULL;
  assert_true(asprintf(&home, "%s/nested/deeper", (char *) *state) > 0);
  berth_store *st = open_ok(home);
  assert_string_equal(berth_store_home(st), home);
  char *id = strdup(berth_store_instance_id(st));
  assert_int_equal(strlen(id), 32);
  berth_store_info info;
  berth_error *err = NULL;
  assert_int_equal(berth_store_info_get(st, &info, &err), 0);
  assert_string_equal(info.engine, "sqlite");
  assert_int_equal(info.schema_version_at_open, 0); /* created by this open */
  assert_int_equal(info.schema_version, info.schema_version_known);
  berth_store_close(st);
  st = open_ok(home);
  assert_string_equal(berth_store_instance_id(st), id); /* stable across opens */
  berth_store_close(st);
  struct stat sb;
  assert_int_equal(stat(home, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0700);
  free(id);
  free(home);
}

static void
test_open_refuses_bad_stores(void **state)
{
  const char *home = *state;
  char path[512];
  /* BERTH_HOME is a file */
  snprintf(path, sizeof path, "%s/afile", home);
  FILE *f = fopen(path, "w");
  fputs("x", f);
  fclose(f);
  expect_open_error(path, "not a directory");
  /* a path under a file */
  snprintf(path, sizeof path, "%s/afile/sub", home);
  expect_open_error(path, "afile");
  /* berth.db containing garbage */
  snprintf(path, sizeof path, "%s/garbage", home);
  mkdir(path, 0700);
  snprintf(path, sizeof path, "%s/garbage/berth.db", home);
  f = fopen(path, "w");
  for (int i = 0; i < 400; i++)
    fputs("this is not a database at all. ", f);
  fclose(f);
  snprintf(path, sizeof path, "%s/garbage", home);
  expect_open_error(path, "is not a berth store (file is not a database)");
  /* someone else's SQLite database */
  snprintf(path, sizeof path, "%s/other", home);
  mkdir(path, 0700);
  snprintf(path, sizeof path, "%s/other/berth.db", home);
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "CREATE TABLE songs (t TEXT)", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  snprintf(path, sizeof path, "%s/other", home);
  expect_open_error(path, "not a berth store");
  /* berth.db is a directory */
  snprintf(path, sizeof path, "%s/dirdb", home);
  mkdir(path, 0700);
  snprintf(path, sizeof path, "%s/dirdb/berth.db", home);
  mkdir(path, 0700);
  *strrchr(path, '/') = '\0';
  expect_open_error(path, "not a regular file");
  /* an unwritable place */
  expect_open_error("/proc/self/berth-home", "berth-home");
}

static void
test_stack_round_trip(void **state)
{
  berth_store *st = open_ok(*state);
  berth_error *err = NULL;
  berth_stack *in = full_stack("web.prod-1");
  assert_int_equal(berth_store_stack_create(st, in, &err), 0);
  berth_stack *out = NULL;
  assert_int_equal(berth_store_stack_get(st, "web.prod-1", &out, &err), 0);
  assert_stack_equal(in, out);
  assert_true(out->created_at > 0);
  assert_int_equal(out->created_at, out->updated_at);
  assert_null(out->lock_owner);
  berth_stack_free(out);

  /* the same, through a second handle (another process would do the same) */
  berth_store_close(st);
  st = open_ok(*state);
  assert_int_equal(berth_store_stack_get(st, "web.prod-1", &out, &err), 0);
  assert_stack_equal(in, out);
  berth_stack_free(out);

  /* defaults of a minimal stack */
  berth_stack *min = berth_stack_new();
  min->name = strdup("a");
  min->image = strdup("alpine");
  assert_int_equal(berth_store_stack_create(st, min, &err), 0);
  assert_int_equal(berth_store_stack_get(st, "a", &out, &err), 0);
  assert_null(out->project_dir);
  assert_null(out->subdir);
  assert_string_equal(out->network, "none");
  assert_string_equal(out->pull_policy, "if-not-present");
  assert_int_equal(out->timeout_ms, 70 * 60 * 1000);
  assert_int_equal(out->idle_timeout_ms, 7 * 60 * 1000);
  assert_int_equal(out->keep_versions, 10);
  assert_int_equal(out->n_env + out->n_secret_env + out->init.n + out->labels.n, 0);
  berth_stack_free(out);

  /* duplicate */
  assert_int_equal(berth_store_stack_create(st, min, &err), BERTH_EBUSY);
  assert_non_null(strstr(err->msg, "already exists"));
  berth_error_clear(&err);

  /* update replaces every user field */
  berth_stack *upd = full_stack("a");
  berth_strv_clear(&upd->init);
  berth_kv_unset(&upd->secret_env, &upd->n_secret_env, "TOKEN");
  free(upd->image);
  upd->image = strdup("alpine:3.20");
  assert_int_equal(berth_store_stack_update(st, upd, &err), 0);
  assert_int_equal(berth_store_stack_get(st, "a", &out, &err), 0);
  assert_stack_equal(upd, out);
  assert_true(out->updated_at >= out->created_at);
  berth_stack_free(out);

  /* list, by name */
  berth_stack **all = NULL;
  size_t n = 0;
  assert_int_equal(berth_store_stack_list(st, &all, &n, &err), 0);
  assert_int_equal(n, 2);
  assert_string_equal(all[0]->name, "a");
  assert_string_equal(all[1]->name, "web.prod-1");
  berth_stacks_free(all, n);

  /* update / get / delete of an unknown stack */
  free(upd->name);
  upd->name = strdup("ghost");
  assert_int_equal(berth_store_stack_update(st, upd, &err), BERTH_ENOTFOUND);
  berth_error_clear(&err);
  assert_int_equal(berth_store_stack_get(st, "ghost", &out, &err), BERTH_ENOTFOUND);
  assert_string_equal(err->msg, "stack `ghost` does not exist");
  berth_error_clear(&err);
  assert_int_equal(berth_store_stack_delete(st, "ghost", &err), BERTH_ENOTFOUND);
  berth_error_clear(&err);

  assert_int_equal(berth_store_stack_delete(st, "a", &err), 0);
  assert_int_equal(berth_store_stack_get(st, "a", &out, &err), BERTH_ENOTFOUND);
  berth_error_clear(&err);

  berth_stack_free(upd);
  berth_stack_free(min);
  berth_stack_free(in);
  berth_store_close(st);
}

static void
test_validation(void **state)
{
  berth_store *st = open_ok(*state);
  berth_error *err = NULL;
  const char *bad_names[] = { "a b",
                              "a/b",
                              "",
                              "-lead",
                              ".hidden",
                              "x\n",
                              ("this-name-is-way-too-long-for-a-stack-"
                               "name-0123456789012345678901234567") };
  for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
    assert_int_equal(berth_stack_validate_name(bad_names[i], &err), BERTH_EINVAL);
    assert_non_null(strstr(err->msg, "stack name"));
    assert_null(strchr(err->msg, '\n'));
    berth_error_clear(&err);
  }
  assert_int_equal(berth_stack_validate_name("A1_b.c-d", &err), 0);

  berth_stack *s = full_stack("v");
#define EXPECT_INVALID(stmt, needle)                                                                                   \
  do {                                                                                                                 \
    berth_stack *c = full_stack("v");                                                                                  \
    stmt;                                                                                                              \
    assert_int_equal(berth_store_stack_create(st, c, &err), BERTH_EINVAL);                                             \
    if (strstr(err->msg, needle) == NULL)                                                                              \
      fail_msg("expected `%s` in: %s", needle, err->msg);                                                              \
    berth_error_clear(&err);                                                                                           \
    berth_stack_free(c);                                                                                               \
  } while (0)
  EXPECT_INVALID((free(c->image), c->image = NULL), "needs an image");
  EXPECT_INVALID((free(c->network), c->network = strdup("overlay")), "network `overlay`");
  EXPECT_INVALID(berth_strv_push(&c->labels, "x\377"), "not valid UTF-8");
  EXPECT_INVALID((free(c->pull_policy), c->pull_policy = strdup("sometimes")), "pull policy");
  EXPECT_INVALID((free(c->subdir), c->subdir = strdup("../up")), "subdir");
  EXPECT_INVALID((free(c->subdir), c->subdir = strdup("/abs")), "subdir");
  EXPECT_INVALID((free(c->project_dir), c->project_dir = strdup("rel/dir")), "absolute");
  EXPECT_INVALID(berth_strv_push(&c->persist, "../../etc/passwd"), "persisted path");
  EXPECT_INVALID(c->memory_bytes = 1024, "memory");
  EXPECT_INVALID(c->timeout_ms = 0, "timeout");
  EXPECT_INVALID(c->keep_versions = 0, "keep-versions");
  EXPECT_INVALID(berth_kv_set(&c->env, &c->n_env, "AWS_SECRET_ACCESS_KEY", "x"), "both a plain and a secret");
  EXPECT_INVALID(berth_strv_push(&c->init, ""), "init command 3 is empty");
  EXPECT_INVALID(berth_strv_push(&c->labels, ""), "label");
  /* nothing was written */
  berth_stack **all = NULL;
  size_t n = 9;
  assert_int_equal(berth_store_stack_list(st, &all, &n, &err), 0);
  assert_int_equal(n, 0);
  berth_stacks_free(all, n);
  berth_stack_free(s);
  berth_store_close(st);
}

static void
test_secrets_encrypted_at_rest(void **state)
{
  const char *home = *state;
  berth_store *st = open_ok(home);
  berth_error *err = NULL;
  berth_stack *s = full_stack("sec");
  assert_int_equal(berth_store_stack_create(st, s, &err), 0);
  /* a task secret too */
  berth_task t = { 0 };
  t.stack = "sec";
  t.command = "true";
  t.actor = "tester";
  berth_kv *tsec = NULL;
  size_t ntsec = 0;
  berth_kv_set(&tsec, &ntsec, "TASK_TOKEN", SECRET_VALUE "-task");
  t.secret_env = tsec;
  t.n_secret_env = ntsec;
  assert_int_equal(berth_store_task_create(st, &t, &err), 0);
  berth_store_close(st); /* checkpoints the WAL into berth.db */

  char db[512], wal[512], key[512];
  snprintf(db, sizeof db, "%s/berth.db", home);
  snprintf(wal, sizeof wal, "%s/berth.db-wal", home);
  snprintf(key, sizeof key, "%s/secret.key", home);
  size_t n;
  char *bytes = slurp(db, &n);
  assert_non_null(bytes);
  assert_true(n > 0);
  free(bytes);
  assert_false(file_contains(db, SECRET_VALUE));
  assert_false(file_contains(db, "tok-\xc3\xbcn"));
  assert_false(file_contains(wal, SECRET_VALUE));
  /* the keys (names) are not secret, and the plain env is stored as is */
  assert_true(file_contains(db, "AWS_SECRET_ACCESS_KEY"));
  assert_true(file_contains(db, "TF_IN_AUTOMATION"));
  struct stat sb;
  assert_int_equal(stat(key, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  assert_int_equal(sb.st_size, 32);

  /* still readable after reopening */
  st = open_ok(home);
  berth_stack *out = NULL;
  assert_int_equal(berth_store_stack_get(st, "sec", &out, &err), 0);
  assert_string_equal(berth_kv_get(out->secret_env, out->n_secret_env, "AWS_SECRET_ACCESS_KEY"), SECRET_VALUE);
  berth_stack_free(out);

  /* the JSON form masks every secret value */
  cJSON *j = berth_stack_to_json(s);
  char *text = cJSON_PrintUnformatted(j);
  assert_null(strstr(text, SECRET_VALUE));
  assert_non_null(strstr(text, "\"AWS_SECRET_ACCESS_KEY\":\"***\""));
  assert_non_null(strstr(text, "\"TOKEN\":\"***\""));
  assert_non_null(strstr(text, "\"cpus\":1.5"));
  free(text);
  cJSON_Delete(j);

  /* forgetting a task's secrets wipes them from the record */
  berth_task *got = NULL;
  assert_int_equal(berth_store_task_get(st, t.id, &got, &err), 0);
  assert_int_equal(got->n_secret_env, 1);
  assert_string_equal(got->secret_env[0].value, SECRET_VALUE "-task");
  berth_task_free(got);
  assert_int_equal(berth_store_task_forget_secrets(st, t.id, &err), 0);
  assert_int_equal(berth_store_task_get(st, t.id, &got, &err), 0);
  assert_int_equal(got->n_secret_env, 0);
  berth_task_free(got);

  /* a replaced key cannot decrypt: never garbage; the stack reads with those secrets named as unreadable (""), and
   * neither a task of it nor a write of it goes on until they are given again */
  berth_store_close(st);
  unlink(key);
  int fd = open(key, O_WRONLY | O_CREAT, 0600);
  assert_int_equal(write(fd, "0123456789abcdef0123456789abcdef", 32), 32);
  close(fd);
  st = open_ok(home);
  assert_int_equal(berth_store_stack_get(st, "sec", &out, &err), 0);
  assert_int_equal(out->unreadable_secrets.n, 2);
  assert_string_equal(berth_kv_get(out->secret_env, out->n_secret_env, "TOKEN"), "");
  assert_int_equal(berth_stack_check_secrets(st, out, &err), BERTH_EINVAL);
  assert_non_null(strstr(err->msg, "cannot be decrypted"));
  berth_error_clear(&err);
  assert_int_equal(berth_store_stack_update(st, out, &err), BERTH_EINVAL);
  berth_error_clear(&err);
  berth_stack_free(out);
  berth_store_close(st);

  free(t.id);
  free(t.state);
  berth_kv_array_free(tsec, ntsec);
  berth_stack_free(s);
}

static void
test_lock_and_delete(void **state)
{
  berth_store *st = open_ok(*state);
  berth_error *err = NULL;
  berth_stack *s = full_stack("locky");
  assert_int_equal(berth_store_stack_create(st, s, &err), 0);
  assert_int_equal(berth_store_stack_lock(st, "locky", "alice", "migrating state", &err), 0);
  assert_int_equal(berth_store_stack_lock(st, "locky", "bob", NULL, &err), BERTH_EBUSY);
  assert_non_null(strstr(err->msg, "locked by alice"));
  berth_error_clear(&err);
  /* update keeps the lock */
  assert_int_equal(berth_store_stack_update(st, s, &err), 0);
  berth_stack *out = NULL;
  assert_int_equal(berth_store_stack_get(st, "locky", &out, &err), 0);
  assert_string_equal(out->lock_owner, "alice");
  assert_string_equal(out->lock_note, "migrating state");
  assert_true(out->locked_at > 0);
  cJSON *j = berth_stack_to_json(out);
  char *text = cJSON_PrintUnformatted(j);
  assert_non_null(strstr(text, "migrating state"));
  free(text);
  cJSON_Delete(j);
  berth_stack_free(out);
  assert_int_equal(berth_store_stack_unlock(st, "locky", "bob", false, &err), BERTH_EDENIED);
  berth_error_clear(&err);
  assert_int_equal(berth_store_stack_unlock(st, "locky", "bob", true, &err), 0);
  assert_int_equal(berth_store_stack_get(st, "locky", &out, &err), 0);
  assert_null(out->lock_owner);
  berth_stack_free(out);

  /* delete refuses while a task is active, then removes the stack and its state */
  berth_task t = { 0 };
  t.stack = "locky";
  t.command = "sleep 1";
  t.actor = "alice";
  assert_int_equal(berth_store_task_create(st, &t, &err), 0);
  assert_int_equal(berth_store_stack_delete(st, "locky", &err), BERTH_EBUSY);
  assert_non_null(strstr(err->msg, t.id));
  berth_error_clear(&err);
  assert_int_equal(berth_store_task_transition(st, t.id, "CANCELED", "alice", NULL, "canceled", -1, &err), 0);
  char *tmp = NULL;
  assert_int_equal(berth_state_begin(st, "locky", &tmp, &err), 0);
  assert_int_equal(berth_state_commit(st, "locky", t.id, tmp, 0, NULL, &err), 0);
  free(tmp);
  assert_int_equal(berth_store_stack_delete(st, "locky", &err), 0);
  char path[512];
  snprintf(path, sizeof path, "%s/state/locky", (char *) *state);
  assert_int_equal(access(path, F_OK), -1);
  /* the task record is kept */
  berth_task *got = NULL;
  assert_int_equal(berth_store_task_get(st, t.id, &got, &err), 0);
  berth_task_free(got);
  free(t.id);
  free(t.state);
  berth_stack_free(s);
  berth_store_close(st);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_open_creates_and_reopens, setup_home, teardown_home),
    cmocka_unit_test_setup_teardown(test_open_refuses_bad_stores, setup_home, teardown_home),
    cmocka_unit_test_setup_teardown(test_stack_round_trip, setup_home, teardown_home),
    cmocka_unit_test_setup_teardown(test_validation, setup_home, teardown_home),
    cmocka_unit_test_setup_teardown(test_secrets_encrypted_at_rest, setup_home, teardown_home),
    cmocka_unit_test_setup_teardown(test_lock_and_delete, setup_home, teardown_home),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
