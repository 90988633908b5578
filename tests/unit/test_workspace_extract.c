/* The safe tar extractor: what lands in the destination (and what never lands outside it). */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
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
#include <unistd.h>

#include <cmocka.h>

#include "berth/workspace.h"

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
  nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A parent temp dir holding "dest", so that anything escaping dest would show up next to it. */
typedef struct sandbox {
  char parent[256];
  char dest[300];
} sandbox;

static void
sandbox_make(sandbox *b)
{
  snprintf(b->parent, sizeof b->parent, "/tmp/berth-tx-test-XXXXXX");
  assert_non_null(mkdtemp(b->parent));
  snprintf(b->dest, sizeof b->dest, "%s/dest", b->parent);
  assert_int_equal(mkdir(b->dest, 0700), 0);
}

static int
count_dir(const char *path)
{
  DIR *d = opendir(path);
  assert_non_null(d);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
      n++;
  closedir(d);
  return n;
}

static void
sandbox_done(sandbox *b)
{
  assert_int_equal(count_dir(b->parent), 1); /* only dest: nothing escaped next to it */
  rm_rf(b->parent);
}

/* Builds a tar in memory: entries given as (type, name, content-or-target) triples, NULL-terminated. */
typedef struct tar_spec {
  int type; /* AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFIFO, or 1 for a hard link */
  const char *name;
  const char *data; /* file content, symlink or hard link target */
  unsigned mode;
} tar_spec;

static char *
build_tar(const tar_spec *spec, size_t *len)
{
  size_t cap = 1 << 20;
  char *buf = malloc(cap);
  struct archive *a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  assert_int_equal(archive_write_open_memory(a, buf, cap, len), ARCHIVE_OK);
  struct archive_entry *e = archive_entry_new();
  for (; spec->name != NULL; spec++) {
    archive_entry_clear(e);
    archive_entry_copy_pathname(e, spec->name);
    archive_entry_set_perm(e, spec->mode ? spec->mode : 0644);
    archive_entry_set_uid(e, 4242);
    archive_entry_set_mtime(e, 1600000000, 0);
    if (spec->type == 1) {
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_copy_hardlink(e, spec->data);
    } else {
      archive_entry_set_filetype(e, (unsigned) spec->type);
    }
    if (spec->type == AE_IFLNK)
      archive_entry_copy_symlink(e, spec->data);
    size_t n = spec->type == AE_IFREG && spec->data ? strlen(spec->data) : 0;
    archive_entry_set_size(e, (la_int64_t) n);
    assert_true(archive_write_header(a, e) >= ARCHIVE_WARN);
    if (n > 0)
      assert_int_equal(archive_write_data(a, spec->data, n), (la_ssize_t) n);
  }
  archive_entry_free(e);
  assert_int_equal(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
  return buf;
}

static int
extract(const tar_spec *spec, const char *dest, uint64_t max, berth_error **err)
{
  size_t len = 0;
  char *tar = build_tar(spec, &len);
  int rc = berth_tar_extract_mem(tar, len, dest, max, err);
  free(tar);
  return rc;
}

static void
expect_refused(const tar_spec *spec, uint64_t max, const char *needle)
{
  sandbox b;
  sandbox_make(&b);
  berth_error *err = NULL;
  int rc = extract(spec, b.dest, max, &err);
  assert_int_equal(rc, BERTH_EINVAL);
  assert_non_null(err);
  if (strstr(err->msg, needle) == NULL)
    fail_msg("unexpected message: %s", err->msg);
  berth_error_free(err);
  sandbox_done(&b);
}

static char *
slurp_at(const char *dir, const char *rel, struct stat *st)
{
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  assert_int_equal(lstat(path, st), 0);
  char *data = calloc(1, (size_t) st->st_size + 1);
  int fd = open(path, O_RDONLY | O_NOFOLLOW);
  assert_true(fd >= 0);
  assert_int_equal(read(fd, data, (size_t) st->st_size), st->st_size);
  close(fd);
  return data;
}

static void
test_extracts_files_dirs_symlinks(void **state)
{
  (void) state;
  const tar_spec spec[] = {
    { AE_IFDIR, "./", NULL, 0755 },
    { AE_IFREG, "./terraform.tfstate", "{\"version\": 4}", 0644 },
    { AE_IFDIR, "state/", NULL, 0777 },
    { AE_IFREG, "state/run.sh", "#!/bin/sh\n", 0755 },
    { AE_IFREG, "deep/er/file", "deep", 0666 },
    { AE_IFLNK, "state/latest", "run.sh", 0 },
    { AE_IFLNK, "deep/er/up", "../../terraform.tfstate", 0 },
    { AE_IFREG, "dup", "first", 0644 },
    { AE_IFREG, "dup", "second", 0644 },
    { 0, NULL, NULL, 0 },
  };
  sandbox b;
  sandbox_make(&b);
  berth_error *err = NULL;
  int rc = extract(spec, b.dest, 0, &err);
  if (rc < 0)
    fail_msg("%s", err->msg);
  assert_int_equal(rc, 5);
  struct stat st;
  char *d = slurp_at(b.dest, "terraform.tfstate", &st);
  assert_string_equal(d, "{\"version\": 4}");
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(st.st_uid, geteuid()); /* never the archive's 4242 */
  assert_int_equal(st.st_mtime, 1600000000);
  free(d);
  d = slurp_at(b.dest, "state/run.sh", &st);
  assert_int_equal(st.st_mode & 07777, 0700);
  free(d);
  d = slurp_at(b.dest, "deep/er/file", &st);
  assert_string_equal(d, "deep");
  assert_int_equal(st.st_mode & 07777, 0600);
  free(d);
  d = slurp_at(b.dest, "dup", &st);
  assert_string_equal(d, "second");
  free(d);
  char path[1024], target[64] = { 0 };
  snprintf(path, sizeof path, "%s/state", b.dest);
  assert_int_equal(lstat(path, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0700);
  snprintf(path, sizeof path, "%s/state/latest", b.dest);
  assert_int_equal(readlink(path, target, sizeof target - 1), 6);
  assert_string_equal(target, "run.sh");
  sandbox_done(&b);
}

static void
test_refuses_escapes(void **state)
{
  (void) state;
  const tar_spec dotdot[] = { { AE_IFREG, "../x", "evil", 0 }, { 0, NULL, NULL, 0 } };
  expect_refused(dotdot, 0, "`../x` contains `..`");
  const tar_spec inner[] = { { AE_IFREG, "a/../../x", "evil", 0 }, { 0, NULL, NULL, 0 } };
  expect_refused(inner, 0, "contains `..`");
  const tar_spec abs[] = { { AE_IFREG, "/etc/berth-tx-test-x", "evil", 0 }, { 0, NULL, NULL, 0 } };
  expect_refused(abs, 0, "`/etc/berth-tx-test-x` has an absolute path");
  struct stat st;
  assert_int_equal(lstat("/etc/berth-tx-test-x", &st), -1);

  /* a symlink, then a file through it: refused, even when the symlink itself points inside */
  const tar_spec through[] = {
    { AE_IFDIR, "sub/", NULL, 0 },
    { AE_IFLNK, "l", "sub", 0 },
    { AE_IFREG, "l/x", "evil", 0 },
    { 0, NULL, NULL, 0 },
  };
  expect_refused(through, 0, "`l/x` goes through the symlink `l`");
  const tar_spec out_abs[] = { { AE_IFLNK, "l", "/tmp", 0 }, { AE_IFREG, "l/x", "evil", 0 }, { 0, NULL, NULL, 0 } };
  expect_refused(out_abs, 0, "symlink `l` points to the absolute path `/tmp`");
  const tar_spec out_rel[] = { { AE_IFLNK, "a/l", "../..", 0 }, { 0, NULL, NULL, 0 } };
  expect_refused(out_rel, 0, "symlink `a/l` points outside the destination");
  /* chained: d/up -> .. is inside, but up2 -> d/up/.. would leave through it */
  const tar_spec chain[] = {
    { AE_IFLNK, "d/up", "..", 0 },
    { AE_IFLNK, "up2", "d/up/..", 0 },
    { 0, NULL, NULL, 0 },
  };
  expect_refused(chain, 0, "`up2` has `..` after a name");
  /* a file where a directory is needed */
  const tar_spec notdir[] = { { AE_IFREG, "f", "x", 0 }, { AE_IFREG, "f/x", "y", 0 }, { 0, NULL, NULL, 0 } };
  expect_refused(notdir, 0, "goes through `f`, which is not a directory");
}

static void
test_refuses_other_types_and_caps(void **state)
{
  (void) state;
  const tar_spec fifo[] = { { AE_IFIFO, "p", NULL, 0 }, { 0, NULL, NULL, 0 } };
  expect_refused(fifo, 0, "`p` is not a file, directory or symlink");
  const tar_spec hard[] = { { AE_IFREG, "a", "x", 0 }, { 1, "b", "a", 0 }, { 0, NULL, NULL, 0 } };
  expect_refused(hard, 0, "`b` is a hard link");
  const tar_spec big[] = { { AE_IFREG, "ok", "12345", 0 }, { AE_IFREG, "big", "0123456789", 0 }, { 0, NULL, NULL, 0 } };
  expect_refused(big, 14, "`big` (10 bytes) is over the cap of 14 bytes");
  sandbox b;
  sandbox_make(&b);
  berth_error *err = NULL;
  assert_int_equal(extract(big, b.dest, 15, &err), 2); /* exactly at the cap */
  sandbox_done(&b);

  /* not a tar, and a truncated one */
  sandbox_make(&b);
  assert_int_equal(berth_tar_extract_mem("hello world", 11, b.dest, 0, &err), BERTH_EINVAL);
  assert_non_null(strstr(err->msg, "extract archive into"));
  berth_error_clear(&err);
  size_t len = 0;
  char *tar = build_tar(big, &len);
  assert_true(berth_tar_extract_mem(tar, 600, b.dest, 0, &err) < 0);
  berth_error_clear(&err);
  free(tar);
  assert_true(berth_tar_extract_mem("x", 1, "/nonexistent/berth", 0, &err) < 0);
  berth_error_clear(&err);
  sandbox_done(&b);
}

/* The producer's output extracts back to the same files. */
static void
test_round_trip_with_producer(void **state)
{
  (void) state;
  sandbox src, b;
  sandbox_make(&src);
  char p[600];
  snprintf(p, sizeof p, "%s/sub", src.dest);
  assert_int_equal(mkdir(p, 0755), 0);
  snprintf(p, sizeof p, "%s/sub/state.json", src.dest);
  FILE *f = fopen(p, "w");
  fputs("{\"serial\": 3}", f);
  fclose(f);
  snprintf(p, sizeof p, "%s/link", src.dest);
  assert_int_equal(symlink("sub/state.json", p), 0);
  berth_ws_opts o = { .project_dir = src.dest, .prefix = "state" };
  berth_ws_stream *s = NULL;
  berth_error *err = NULL;
  assert_int_equal(berth_ws_stream_open(&o, &s, &err), 0);
  char *buf = malloc(1 << 16);
  size_t len = 0;
  ssize_t n;
  while ((n = berth_ws_stream_read(s, buf + len, 4096, &err)) > 0)
    len += (size_t) n;
  assert_int_equal(n, 0);
  berth_ws_stream_free(s);
  sandbox_make(&b);
  assert_int_equal(berth_tar_extract_mem(buf, len, b.dest, 0, &err), 1);
  struct stat st;
  char *d = slurp_at(b.dest, "state/sub/state.json", &st);
  assert_string_equal(d, "{\"serial\": 3}");
  free(d);
  char target[64] = { 0 };
  snprintf(p, sizeof p, "%s/state/link", b.dest);
  assert_int_equal(readlink(p, target, sizeof target - 1), 14);
  assert_string_equal(target, "sub/state.json");
  free(buf);
  sandbox_done(&b);
  sandbox_done(&src);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_extracts_files_dirs_symlinks),
    cmocka_unit_test(test_refuses_escapes),
    cmocka_unit_test(test_refuses_other_types_and_caps),
    cmocka_unit_test(test_round_trip_with_producer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
