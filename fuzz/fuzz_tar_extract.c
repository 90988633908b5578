/* Fuzz target: arbitrary bytes as a tar extracted into a fresh temp dir; nothing may appear outside it, nothing
 * inside may be anything but a private file, a directory or a symlink resolving inside it. Aborts on a violation. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "berth/workspace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* nftw has no user pointer: the harness (not the library) keeps the checked root here */
static char fuzz_root[PATH_MAX];

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void) st;
  (void) flag;
  (void) ftw;
  return remove(path);
}

static int
check_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void) flag;
  (void) ftw;
  if (S_ISREG(st->st_mode)) {
    if ((st->st_mode & 077) != 0 || st->st_uid != geteuid()) {
      fprintf(stderr, "fuzz_tar_extract: `%s` has mode %o uid %u\n", path, st->st_mode & 07777, st->st_uid);
      abort();
    }
  } else if (S_ISLNK(st->st_mode)) {
    char real[PATH_MAX];
    /* dangling links are fine; resolved ones must stay inside */
    if (realpath(path, real) != NULL
        && !(strncmp(real, fuzz_root, strlen(fuzz_root)) == 0
             && (real[strlen(fuzz_root)] == '/' || real[strlen(fuzz_root)] == '\0'))) {
      fprintf(stderr, "fuzz_tar_extract: symlink `%s` resolves outside, to `%s`\n", path, real);
      abort();
    }
  } else if (!S_ISDIR(st->st_mode)) {
    fprintf(stderr, "fuzz_tar_extract: `%s` is not a file, directory or symlink\n", path);
    abort();
  }
  return 0;
}

static int
count_entries(const char *dir)
{
  DIR *d = opendir(dir);
  if (d == NULL)
    abort();
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
      n++;
  closedir(d);
  return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char parent[] = "/tmp/berth-fuzz-tx-XXXXXX";
  if (mkdtemp(parent) == NULL)
    return 0;
  char dest[sizeof parent + 8], canary[sizeof parent + 8];
  snprintf(dest, sizeof dest, "%s/dest", parent);
  snprintf(canary, sizeof canary, "%s/canary", parent);
  FILE *f = fopen(canary, "w");
  if (f == NULL || mkdir(dest, 0700) < 0)
    abort();
  fputs("canary", f);
  fclose(f);

  berth_error *err = NULL;
  int rc = berth_tar_extract_mem(data, size, dest, 1 << 20, &err);
  if ((rc < 0) != (err != NULL) || (err != NULL && (err->msg == NULL || strchr(err->msg, '\n') != NULL)))
    abort();
  berth_error_free(err);

  struct stat st;
  if (count_entries(parent) != 2 || stat(canary, &st) < 0 || st.st_size != 6) {
    fprintf(stderr, "fuzz_tar_extract: something was written next to the destination\n");
    abort();
  }
  if (realpath(dest, fuzz_root) == NULL)
    abort();
  nftw(dest, check_one, 16, FTW_PHYS);
  nftw(parent, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}
