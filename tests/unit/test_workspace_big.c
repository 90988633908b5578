/* Manual measurement: peak RSS and throughput of streaming a 500 MiB / 20,000-file workspace.
 * Skipped unless BERTH_WS_BIG_DIR names a directory to build the tree in (reused when already built), e.g.
 *   BERTH_WS_BIG_DIR=/tmp/ws-big ./build/tests/test_workspace_big
 * BERTH_WS_BIG_OUT=FILE also writes the tar there (to check it with GNU tar). Under ASan, add
 * ASAN_OPTIONS=quarantine_size_mb=1: its quarantine of freed blocks otherwise shows up as ~100 MiB of "growth". */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "berth/workspace.h"

#define BIG_FILES 20
#define BIG_SIZE (24u << 20)
#define SMALL_FILES 19980
#define SMALL_SIZE 1024u
#define DIRS 200

static void
write_file(const char *path, size_t size, const char *block, size_t block_len)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0)
    _exit(2);
  for (size_t done = 0; done < size;) {
    size_t n = size - done < block_len ? size - done : block_len;
    if (write(fd, block, n) != (ssize_t) n)
      _exit(2);
    done += n;
  }
  close(fd);
}

/* Built in a child, so its buffers do not count in the measured peak. */
static void
build_tree(const char *root)
{
  char marker[4096];
  snprintf(marker, sizeof marker, "%s/.built", root);
  if (access(marker, F_OK) == 0)
    return;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    size_t bl = 1 << 20;
    char *block = malloc(bl);
    for (size_t i = 0; i < bl; i++)
      block[i] = (char) (i * 7 + (i >> 11));
    mkdir(root, 0755);
    char path[4096];
    for (int d = 0; d < DIRS; d++) {
      snprintf(path, sizeof path, "%s/dir%03d", root, d);
      mkdir(path, 0755);
    }
    for (int i = 0; i < SMALL_FILES; i++) {
      snprintf(path, sizeof path, "%s/dir%03d/file%05d.txt", root, i % DIRS, i);
      write_file(path, SMALL_SIZE, block + i, SMALL_SIZE);
    }
    for (int i = 0; i < BIG_FILES; i++) {
      snprintf(path, sizeof path, "%s/dir%03d/big%02d.bin", root, i * 10, i);
      write_file(path, BIG_SIZE, block, bl);
    }
    write_file(marker, 0, block, 1);
    _exit(0);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static long
peak_rss_kib(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static void
test_big_workspace_bounded_memory(void **state)
{
  (void) state;
  const char *root = getenv("BERTH_WS_BIG_DIR");
  if (root == NULL || *root == '\0')
    skip();
  build_tree(root);
  const char *out_path = getenv("BERTH_WS_BIG_OUT");
  int out = open(out_path && *out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true(out >= 0);

  long before = peak_rss_kib();
  struct timespec t0, t1, t2;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  berth_ws_opts o = { .project_dir = root, .prefix = "mnt/workspace/source", .uid = 1983, .gid = 1983 };
  berth_ws_stream *s = NULL;
  berth_error *err = NULL;
  if (berth_ws_stream_open(&o, &s, &err) < 0)
    fail_msg("open: %s", err->msg);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  static char buf[64 * 1024]; /* a libcurl-sized read buffer */
  uint64_t total = 0;
  ssize_t n;
  while ((n = berth_ws_stream_read(s, buf, sizeof buf, &err)) > 0) {
    assert_int_equal(write(out, buf, (size_t) n), n);
    total += (uint64_t) n;
  }
  assert_int_equal(n, 0);
  clock_gettime(CLOCK_MONOTONIC, &t2);
  uint64_t entries = berth_ws_stream_entries(s), bytes = berth_ws_stream_bytes(s);
  berth_ws_stream_free(s);
  close(out);
  long after = peak_rss_kib();

  double scan_s = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
  double stream_s = (double) (t2.tv_sec - t1.tv_sec) + (double) (t2.tv_nsec - t1.tv_nsec) / 1e9;
  printf("workspace: %llu entries, %llu file bytes, tar %llu bytes\n", (unsigned long long) entries,
         (unsigned long long) bytes, (unsigned long long) total);
  printf("scan %.3f s, stream %.3f s (%.0f MiB/s), peak RSS %ld KiB before open, %ld KiB after (+%ld KiB)\n", scan_s,
         stream_s, (double) total / (1 << 20) / stream_s, before, after, after - before);
  assert_int_equal(bytes, (uint64_t) BIG_FILES * BIG_SIZE + (uint64_t) SMALL_FILES * SMALL_SIZE);
  assert_int_equal(entries, DIRS + BIG_FILES + SMALL_FILES + 1); /* + the .built marker */
  assert_true(total > bytes);
  assert_true(after - before < 16 * 1024); /* memory does not grow with the workspace */
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_big_workspace_bounded_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
