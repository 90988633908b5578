/* The workspace tar producer: what a container would find after extracting the stream. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "berth/workspace.h"

/* ---- helpers ---- */

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void) st;
  (void) flag;
  (void) ftw;
  return remove(path);
}

static void
rm_rf(const char *path)
{
  chmod(path, 0700);
  nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *
mktemp_dir(void)
{
  char *t = strdup("/tmp/berth-ws-test-XXXXXX");
  assert_non_null(mkdtemp(t));
  return t;
}

static void
put_file(const char *root, const char *rel, const char *data, size_t len, mode_t mode)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t) len);
  close(fd);
  chmod(path, mode);
}

static void
put_dir(const char *root, const char *rel)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  assert_int_equal(mkdir(path, 0755), 0);
}

static void
put_link(const char *root, const char *rel, const char *target)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  assert_int_equal(symlink(target, path), 0);
}

typedef struct warnings {
  char lines[16][512];
  int n;
} warnings;

static void
collect_warn(void *ud, const char *msg)
{
  warnings *w = ud;
  if (w->n < 16)
    snprintf(w->lines[w->n++], sizeof w->lines[0], "%s", msg);
}

static bool
warned(const warnings *w, const char *needle1, const char *needle2)
{
  for (int i = 0; i < w->n; i++)
    if (strstr(w->lines[i], needle1) && (needle2 == NULL || strstr(w->lines[i], needle2)))
      return true;
  return false;
}

/* Reads the whole stream with reads of `step` bytes (0 = random sizes from 1 to 70000). */
static char *
stream_all(const berth_ws_opts *o, size_t step, size_t *len_out)
{
  berth_ws_stream *s = NULL;
  berth_error *err = NULL;
  int rc = berth_ws_stream_open(o, &s, &err);
  if (rc < 0)
    fail_msg("open: %s", err->msg);
  size_t cap = 1 << 20, len = 0;
  char *out = malloc(cap);
  unsigned seed = 7;
  for (;;) {
    size_t want = step ? step : 1 + (size_t) (rand_r(&seed) % 70000);
    if (len + want > cap) {
      cap = (len + want) * 2;
      out = realloc(out, cap);
    }
    ssize_t n = berth_ws_stream_read(s, out + len, want, &err);
    if (n < 0)
      fail_msg("read: %s", err->msg);
    if (n == 0)
      break;
    len += (size_t) n;
  }
  berth_ws_stream_free(s);
  *len_out = len;
  return out;
}

typedef struct tar_ent {
  char name[1024];
  int type;
  int64_t size;
  unsigned mode;
  int64_t uid, gid, mtime;
  char link[1024];
  char uname[64];
  char *data;
} tar_ent;

typedef struct tar_list {
  tar_ent e[128];
  int n;
} tar_list;

static void
tar_list_free(tar_list *l)
{
  for (int i = 0; i < l->n; i++)
    free(l->e[i].data);
  free(l);
}

static tar_list *
parse_tar(const char *buf, size_t len)
{
  tar_list *l = calloc(1, sizeof *l);
  struct archive *a = archive_read_new();
  archive_read_support_format_tar(a);
  assert_int_equal(archive_read_open_memory(a, buf, len), ARCHIVE_OK);
  struct archive_entry *e;
  int r;
  while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
    assert_true(l->n < 128);
    tar_ent *t = &l->e[l->n++];
    snprintf(t->name, sizeof t->name, "%s", archive_entry_pathname(e));
    t->type = (int) archive_entry_filetype(e);
    t->size = archive_entry_size(e);
    t->mode = archive_entry_perm(e);
    t->uid = archive_entry_uid(e);
    t->gid = archive_entry_gid(e);
    t->mtime = archive_entry_mtime(e);
    snprintf(t->link, sizeof t->link, "%s", archive_entry_symlink(e) ? archive_entry_symlink(e) : "");
    snprintf(t->uname, sizeof t->uname, "%s", archive_entry_uname(e) ? archive_entry_uname(e) : "");
    t->data = malloc((size_t) t->size + 1);
    ssize_t got = t->size > 0 ? archive_read_data(a, t->data, (size_t) t->size) : 0;
    assert_int_equal(got, t->size);
  }
  assert_int_equal(r, ARCHIVE_EOF);
  archive_read_free(a);
  return l;
}

static const tar_ent *
find(const tar_list *l, const char *name)
{
  for (int i = 0; i < l->n; i++)
    if (strcmp(l->e[i].name, name) == 0)
      return &l->e[i];
  return NULL;
}

/* ---- tests ---- */

static char long_dir[200], long_name[400];

static char *
make_tree(char **outside_out)
{
  char *root = mktemp_dir();
  put_dir(root, "a");
  put_file(root, "a/b.txt", "hello\n", 6, 0644);
  put_dir(root, "a/sub");
  put_file(root, "a/sub/run.sh", "#!/bin/sh\necho hi\n", 18, 0755);
  put_file(root, "empty", "", 0, 0600);
  size_t big = 300 * 1024 + 17;
  char *data = malloc(big);
  for (size_t i = 0; i < big; i++)
    data[i] = (char) (i * 31 + (i >> 9));
  put_file(root, "big.bin", data, big, 0644);
  free(data);
  put_link(root, "out", "../../etc/passwd");
  put_link(root, "ld", "a");
  put_file(root, "caf\xc3\xa9.txt", "utf8", 4, 0644);
  put_file(root, "Z", "upper", 5, 0644);
  memset(long_dir, 'd', 150);
  long_dir[150] = '\0';
  put_dir(root, long_dir);
  snprintf(long_name, sizeof long_name, "%s/%0150d", long_dir, 7);
  put_file(root, long_name, "long", 4, 0644);
  if (outside_out)
    *outside_out = NULL;
  return root;
}

static void
expect_file(const tar_list *l, const char *root, const char *rel, unsigned mode)
{
  char name[1024], path[4096];
  snprintf(name, sizeof name, "mnt/workspace/source/%s", rel);
  snprintf(path, sizeof path, "%s/%s", root, rel);
  const tar_ent *t = find(l, name);
  if (t == NULL)
    fail_msg("missing %s", name);
  struct stat st;
  assert_int_equal(lstat(path, &st), 0);
  assert_int_equal(t->type, AE_IFREG);
  assert_int_equal(t->size, st.st_size);
  assert_int_equal(t->mode, mode);
  assert_int_equal(t->mtime, st.st_mtime);
  assert_int_equal(t->uid, 1983);
  assert_int_equal(t->gid, 1984);
  assert_string_equal(t->uname, "");
  char *want = malloc((size_t) st.st_size + 1);
  int fd = open(path, O_RDONLY);
  assert_int_equal(read(fd, want, (size_t) st.st_size + 1), st.st_size);
  close(fd);
  assert_memory_equal(t->data, want, (size_t) st.st_size);
  free(want);
}

static void
test_round_trip(void **state)
{
  (void) state;
  char *root = make_tree(NULL);
  warnings w = { 0 };
  berth_ws_opts o = { .project_dir = root,
                      .prefix = "mnt/workspace/source",
                      .uid = 1983,
                      .gid = 1984,
                      .warn = collect_warn,
                      .warn_userdata = &w };
  size_t len;
  char *tar = stream_all(&o, 4096, &len);
  assert_int_equal(len % 512, 0);
  tar_list *l = parse_tar(tar, len);

  /* order: prefix dirs (never "mnt/" itself), then sorted by bytes, depth-first, dirs before their contents */
  char want_long_dir[300], want_long_file[600];
  snprintf(want_long_dir, sizeof want_long_dir, "mnt/workspace/source/%s/", long_dir);
  snprintf(want_long_file, sizeof want_long_file, "mnt/workspace/source/%s", long_name);
  const char *order[] = {
    "mnt/workspace/",
    "mnt/workspace/source/",
    "mnt/workspace/source/Z",
    "mnt/workspace/source/a/",
    "mnt/workspace/source/a/b.txt",
    "mnt/workspace/source/a/sub/",
    "mnt/workspace/source/a/sub/run.sh",
    "mnt/workspace/source/big.bin",
    "mnt/workspace/source/caf\xc3\xa9.txt",
    want_long_dir,
    want_long_file,
    "mnt/workspace/source/empty",
    "mnt/workspace/source/ld",
    "mnt/workspace/source/out",
  };
  size_t n = sizeof order / sizeof order[0];
  assert_int_equal(l->n, (int) n);
  for (size_t i = 0; i < n; i++)
    assert_string_equal(l->e[i].name, order[i]);

  struct stat rst;
  assert_int_equal(stat(root, &rst), 0);
  assert_int_equal(l->e[1].type, AE_IFDIR);
  assert_int_equal(l->e[1].mode, rst.st_mode & 0777);
  assert_int_equal(l->e[1].mtime, rst.st_mtime);
  for (int i = 0; i < l->n; i++) {
    assert_int_equal(l->e[i].uid, 1983);
    assert_int_equal(l->e[i].gid, 1984);
  }
  expect_file(l, root, "a/b.txt", 0644);
  expect_file(l, root, "a/sub/run.sh", 0755);
  expect_file(l, root, "empty", 0600);
  expect_file(l, root, "big.bin", 0644);
  expect_file(l, root, "caf\xc3\xa9.txt", 0644);
  expect_file(l, root, long_name, 0644);
  expect_file(l, root, "Z", 0644);
  const tar_ent *out = find(l, "mnt/workspace/source/out");
  assert_int_equal(out->type, AE_IFLNK);
  assert_string_equal(out->link, "../../etc/passwd");
  const tar_ent *ld = find(l, "mnt/workspace/source/ld");
  assert_int_equal(ld->type, AE_IFLNK);
  assert_string_equal(ld->link, "a");
  assert_null(find(l, "mnt/workspace/source/ld/b.txt")); /* a symlink to a dir is not descended */
  assert_int_equal(w.n, 0);

  /* the counters of the scan */
  berth_ws_stream *s = NULL;
  berth_error *err = NULL;
  assert_int_equal(berth_ws_stream_open(&o, &s, &err), 0);
  assert_int_equal(berth_ws_stream_entries(s), n - 2);
  assert_int_equal(berth_ws_stream_bytes(s), 6 + 18 + 0 + 300 * 1024 + 17 + 4 + 5 + 4);
  berth_ws_stream_free(s);

  tar_list_free(l);
  free(tar);
  rm_rf(root);
  free(root);
}

static void
test_chunked_reads_identical(void **state)
{
  (void) state;
  char *root = make_tree(NULL);
  berth_ws_opts o = { .project_dir = root, .prefix = "mnt/workspace/source", .uid = 1, .gid = 1 };
  size_t l1, l2, l3, l4;
  char *one = stream_all(&o, 1 << 24, &l1);
  char *bytewise = stream_all(&o, 1, &l2);
  char *random = stream_all(&o, 0, &l3);
  char *again = stream_all(&o, 1 << 24, &l4);
  assert_int_equal(l1, l2);
  assert_int_equal(l1, l3);
  assert_int_equal(l1, l4);
  assert_memory_equal(one, bytewise, l1);
  assert_memory_equal(one, random, l1);
  assert_memory_equal(one, again, l1); /* the same tree always gives the same bytes */
  free(one);
  free(bytewise);
  free(random);
  free(again);
  rm_rf(root);
  free(root);
}

static void
test_special_files_skipped(void **state)
{
  (void) state;
  char *root = mktemp_dir();
  put_dir(root, "x");
  char path[4096];
  snprintf(path, sizeof path, "%s/x/p", root);
  assert_int_equal(mkfifo(path, 0644), 0);
  put_file(root, "x/q", "q", 1, 0644);
  warnings w = { 0 };
  berth_ws_opts o
      = { .project_dir = root, .prefix = "mnt/workspace/source", .warn = collect_warn, .warn_userdata = &w };
  size_t len;
  char *tar = stream_all(&o, 512, &len);
  assert_true(warned(&w, "skipping fifo `x/p`", NULL));
  assert_int_equal(w.n, 1); /* warned once, at the scan */
  tar_list *l = parse_tar(tar, len);
  assert_null(find(l, "mnt/workspace/source/x/p"));
  assert_non_null(find(l, "mnt/workspace/source/x/q"));
  assert_int_equal(l->n, 4);
  tar_list_free(l);
  free(tar);
  rm_rf(root);
  free(root);
}

static void
expect_open_fails(const berth_ws_opts *o, int code, const char *needle1, const char *needle2)
{
  berth_ws_stream *s = NULL;
  berth_error *err = NULL;
  int rc = berth_ws_stream_open(o, &s, &err);
  assert_int_equal(rc, code);
  assert_null(s);
  assert_non_null(err);
  if (strstr(err->msg, needle1) == NULL || (needle2 && strstr(err->msg, needle2) == NULL))
    fail_msg("unexpected message: %s", err->msg);
  assert_null(strchr(err->msg, '\n'));
  berth_error_free(err);
}

static void
test_caps_fail_at_open(void **state)
{
  (void) state;
  char *root = mktemp_dir();
  put_dir(root, "d");
  for (int i = 0; i < 5; i++) {
    char rel[32];
    snprintf(rel, sizeof rel, "d/f%d", i);
    put_file(root, rel, "0123456789", 10, 0644);
  }
  /* 6 entries, 50 bytes */
  char want[4200];
  snprintf(want, sizeof want, "workspace `%s` has 6 entries, over the cap of 5", root);
  berth_ws_opts o = { .project_dir = root, .prefix = "p", .max_entries = 5 };
  expect_open_fails(&o, BERTH_EINVAL, want, NULL);
  o.max_entries = 6;
  size_t len;
  free(stream_all(&o, 4096, &len));

  o.max_bytes = 49;
  snprintf(want, sizeof want, "workspace `%s` has 50 bytes of files, over the cap of 49 bytes", root);
  expect_open_fails(&o, BERTH_EINVAL, want, NULL);
  o.max_bytes = 50;
  free(stream_all(&o, 4096, &len));

  /* a huge directory stops at the cap instead of being listed whole */
  o.max_entries = 3;
  o.max_bytes = 0;
  expect_open_fails(&o, BERTH_EINVAL, "`d` has more than 3 entries, over the cap", NULL);
  rm_rf(root);
  free(root);
}

static void
test_bad_project_dirs(void **state)
{
  (void) state;
  char *root = mktemp_dir();
  char missing[4200], file[4200];
  snprintf(missing, sizeof missing, "%s/nope", root);
  snprintf(file, sizeof file, "%s/file", root);
  put_file(root, "file", "x", 1, 0644);
  berth_ws_opts o = { .project_dir = missing, .prefix = "p" };
  expect_open_fails(&o, BERTH_EINVAL, missing, "No such file or directory");
  o.project_dir = file;
  expect_open_fails(&o, BERTH_EINVAL, file, "is not a directory");
  o.project_dir = "";
  expect_open_fails(&o, BERTH_EINVAL, "project directory", NULL);
  o.project_dir = root;
  o.prefix = "a/../b";
  expect_open_fails(&o, BERTH_EINVAL, "must not contain `..`", NULL);
  rm_rf(root);
  free(root);
}

/* Runs open as an unprivileged user (root reads everything); returns 0 when the expected message came back. */
static void
check_unreadable_as_nobody(const char *project, const char *needle1, const char *needle2)
{
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
      _exit(3);
    berth_ws_opts o = { .project_dir = project, .prefix = "p" };
    berth_ws_stream *s = NULL;
    berth_error *err = NULL;
    int rc = berth_ws_stream_open(&o, &s, &err);
    if (rc != BERTH_EINVAL || strstr(err->msg, needle1) == NULL || strstr(err->msg, needle2) == NULL) {
      fprintf(stderr, "rc=%d msg=%s\n", rc, err ? err->msg : "(none)");
      _exit(1);
    }
    _exit(0);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

static void
test_unreadable(void **state)
{
  (void) state;
  char *root = mktemp_dir();
  chmod(root, 0755);
  put_dir(root, "closed");
  char closed[4200], open_dir[4200], secret[4200];
  snprintf(closed, sizeof closed, "%s/closed", root);
  assert_int_equal(chmod(closed, 0700), 0);
  check_unreadable_as_nobody(closed, closed, "not readable");

  put_dir(root, "open");
  put_file(root, "open/ok", "ok", 2, 0644);
  put_file(root, "open/secret", "s", 1, 0600);
  snprintf(open_dir, sizeof open_dir, "%s/open", root);
  snprintf(secret, sizeof secret, "%s/open/secret", root);
  check_unreadable_as_nobody(open_dir, secret, "is not readable");
  rm_rf(root);
  free(root);
}

static void
test_overlay(void **state)
{
  (void) state;
  char *root = mktemp_dir();
  char *ovl = mktemp_dir();
  put_file(root, "main.tf", "resource", 8, 0644);
  put_file(root, "terraform.tfstate", "old", 3, 0644);
  put_dir(root, "mods");
  put_file(root, "mods/keep", "k", 1, 0644);
  put_file(ovl, "terraform.tfstate", "new state", 9, 0600);
  put_dir(ovl, "mods");
  put_file(ovl, "mods/added", "a", 1, 0644);
  put_file(ovl, "zz-new", "fresh", 5, 0644);
  berth_ws_opts o = { .project_dir = root, .prefix = "mnt/workspace/source", .overlay_dir = ovl };
  size_t len;
  char *tar = stream_all(&o, 1000, &len);
  tar_list *l = parse_tar(tar, len);
  const char *order[] = {
    "mnt/workspace/",
    "mnt/workspace/source/",
    "mnt/workspace/source/main.tf",
    "mnt/workspace/source/mods/",
    "mnt/workspace/source/mods/added",
    "mnt/workspace/source/mods/keep",
    "mnt/workspace/source/terraform.tfstate",
    "mnt/workspace/source/zz-new",
  };
  assert_int_equal(l->n, 8);
  for (int i = 0; i < 8; i++)
    assert_string_equal(l->e[i].name, order[i]);
  const tar_ent *st = find(l, "mnt/workspace/source/terraform.tfstate");
  assert_int_equal(st->size, 9);
  assert_memory_equal(st->data, "new state", 9);
  assert_int_equal(st->mode, 0600);
  tar_list_free(l);
  free(tar);

  /* at a subdir the project does not have: the directories on the way are made up */
  o.overlay_subdir = "infra/prod/";
  tar = stream_all(&o, 1000, &len);
  l = parse_tar(tar, len);
  const char *order2[] = {
    "mnt/workspace/",
    "mnt/workspace/source/",
    "mnt/workspace/source/infra/",
    "mnt/workspace/source/infra/prod/",
    "mnt/workspace/source/infra/prod/mods/",
    "mnt/workspace/source/infra/prod/mods/added",
    "mnt/workspace/source/infra/prod/terraform.tfstate",
    "mnt/workspace/source/infra/prod/zz-new",
    "mnt/workspace/source/main.tf",
    "mnt/workspace/source/mods/",
    "mnt/workspace/source/mods/keep",
    "mnt/workspace/source/terraform.tfstate",
  };
  assert_int_equal(l->n, 12);
  for (int i = 0; i < 12; i++)
    assert_string_equal(l->e[i].name, order2[i]);
  assert_memory_equal(find(l, "mnt/workspace/source/terraform.tfstate")->data, "old", 3);
  tar_list_free(l);
  free(tar);

  /* at a subdir the project has: merged with it */
  o.overlay_subdir = "mods";
  tar = stream_all(&o, 1000, &len);
  l = parse_tar(tar, len);
  assert_non_null(find(l, "mnt/workspace/source/mods/keep"));
  assert_non_null(find(l, "mnt/workspace/source/mods/mods/added"));
  assert_memory_equal(find(l, "mnt/workspace/source/mods/terraform.tfstate")->data, "new state", 9);
  assert_memory_equal(find(l, "mnt/workspace/source/terraform.tfstate")->data, "old", 3);
  assert_int_equal(l->n, 10);
  tar_list_free(l);
  free(tar);

  /* a missing state dir is an empty one; a state dir that is a file is an error */
  char missing[4200], file[4200];
  snprintf(missing, sizeof missing, "%s/none", ovl);
  snprintf(file, sizeof file, "%s/zz-new", ovl);
  o.overlay_dir = missing;
  o.overlay_subdir = NULL;
  tar = stream_all(&o, 1000, &len);
  l = parse_tar(tar, len);
  assert_int_equal(l->n, 6);
  tar_list_free(l);
  free(tar);
  o.overlay_dir = file;
  expect_open_fails(&o, BERTH_EINVAL, file, "is not a directory");
  rm_rf(root);
  rm_rf(ovl);
  free(root);
  free(ovl);
}

static void
test_empty_workspace(void **state)
{
  (void) state;
  berth_ws_opts o = { .project_dir = NULL, .prefix = "/mnt/workspace/source", .uid = 1983, .gid = 1983 };
  size_t len;
  char *tar = stream_all(&o, 100, &len);
  tar_list *l = parse_tar(tar, len);
  assert_int_equal(l->n, 2);
  assert_string_equal(l->e[0].name, "mnt/workspace/");
  assert_string_equal(l->e[1].name, "mnt/workspace/source/");
  assert_int_equal(l->e[1].type, AE_IFDIR);
  assert_int_equal(l->e[1].uid, 1983);
  assert_int_equal(l->e[1].mode, 0755);
  tar_list_free(l);
  free(tar);

  o.prefix = "ws";
  tar = stream_all(&o, 100, &len);
  l = parse_tar(tar, len);
  assert_int_equal(l->n, 1);
  assert_string_equal(l->e[0].name, "ws/");
  tar_list_free(l);
  free(tar);
}

/* Opens a stream on root and reads `first` bytes, so the first big file is being streamed. */
static berth_ws_stream *
open_and_read(berth_ws_opts *o, char *buf, size_t first, size_t *got)
{
  berth_ws_stream *s = NULL;
  berth_error *err = NULL;
  assert_int_equal(berth_ws_stream_open(o, &s, &err), 0);
  ssize_t n = berth_ws_stream_read(s, buf, first, &err);
  assert_int_equal(n, (ssize_t) first);
  *got = (size_t) n;
  return s;
}

static void
finish(berth_ws_stream *s, char *buf, size_t cap, size_t *len)
{
  berth_error *err = NULL;
  ssize_t n;
  while ((n = berth_ws_stream_read(s, buf + *len, 777, &err)) > 0) {
    *len += (size_t) n;
    assert_true(*len + 777 < cap);
  }
  assert_int_equal(n, 0);
  berth_ws_stream_free(s);
}

static void
test_files_changing_while_streamed(void **state)
{
  (void) state;
  char *root = mktemp_dir();
  size_t big = 256 * 1024;
  char *data = malloc(big);
  memset(data, 'x', big);
  put_file(root, "a", data, big, 0644);
  put_file(root, "c-vanishes", "c", 1, 0644);
  warnings w = { 0 };
  berth_ws_opts o = { .project_dir = root, .prefix = "w", .warn = collect_warn, .warn_userdata = &w };
  size_t cap = 2 << 20, len = 0;
  char *buf = malloc(cap);
  char path[4200], gone[4200];
  snprintf(path, sizeof path, "%s/a", root);
  snprintf(gone, sizeof gone, "%s/c-vanishes", root);

  /* grows while streamed (the first read is inside its data), and the next file vanishes */
  berth_ws_stream *s = open_and_read(&o, buf, 1, &len);
  FILE *f = fopen(path, "a");
  fputs("more", f);
  fclose(f);
  assert_int_equal(unlink(gone), 0);
  finish(s, buf, cap, &len);
  assert_true(warned(&w, "`a` changed size", "cut at 262144 bytes"));
  assert_true(warned(&w, "skipping `c-vanishes`", "vanished"));
  tar_list *l = parse_tar(buf, len);
  assert_int_equal(l->n, 2);
  assert_int_equal(find(l, "w/a")->size, big);
  assert_memory_equal(find(l, "w/a")->data, data, big);
  assert_null(find(l, "w/c-vanishes"));
  tar_list_free(l);

  /* shrinks while streamed: padded to the size in its header, so the tar stays valid */
  put_file(root, "a", data, big, 0644);
  len = 0;
  w.n = 0;
  s = open_and_read(&o, buf, 1, &len);
  assert_int_equal(truncate(path, 1000), 0);
  finish(s, buf, cap, &len);
  assert_true(warned(&w, "`a` shrank", "padded with zeros"));
  l = parse_tar(buf, len);
  assert_int_equal(l->n, 2);
  const tar_ent *a = find(l, "w/a");
  assert_int_equal(a->size, big);
  assert_memory_equal(a->data, data, 1000);
  assert_int_equal(a->data[big - 1], 0);
  tar_list_free(l);
  free(buf);
  free(data);
  rm_rf(root);
  free(root);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_chunked_reads_identical),
    cmocka_unit_test(test_special_files_skipped),
    cmocka_unit_test(test_caps_fail_at_open),
    cmocka_unit_test(test_bad_project_dirs),
    cmocka_unit_test(test_unreadable),
    cmocka_unit_test(test_overlay),
    cmocka_unit_test(test_empty_workspace),
    cmocka_unit_test(test_files_changing_while_streamed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
