/* The peer runners' test vectors (GitLab Runner, GitHub Actions runner, Buildkite agent): third-party data that this
 * repository does not carry. CI keeps them beside the checkout, in ../shared/reference/peer-vectors: that is the
 * directory built in (BERTH_PEER_VECTORS_DIR, from the CMake cache variable BERTH_PEER_VECTORS); the environment
 * variable BERTH_PEER_VECTORS overrides it at run time.
 *
 * A plain clone has no such directory: a test that replays them skips, with one line naming what it skipped, and
 * the other cases of the same binary still run. A directory that exists but lacks a file is a failure, so CI
 * cannot lose the vectors silently. */
#ifndef BERTH_TEST_PEER_VECTORS_H
#define BERTH_TEST_PEER_VECTORS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

/* The vectors directory, or a skip of the calling test when it is absent. what names the skipped vectors in the
 * skip line. */
static inline const char *
peer_vectors_dir(const char *what)
{
  const char *dir = getenv("BERTH_PEER_VECTORS");
  if (dir == NULL || *dir == '\0')
    dir = BERTH_PEER_VECTORS_DIR;
  struct stat sb;
  if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
    print_message("skipped: %s (peer vectors not found at %s; they are not part of this repository)\n", what, dir);
    skip();
  }
  return dir;
}

/* The full path of file in the vectors directory (caller frees), or a skip as peer_vectors_dir. */
static inline char *
peer_vectors_path(const char *file, const char *what)
{
  const char *dir = peer_vectors_dir(what);
  size_t n = strlen(dir) + strlen(file) + 2;
  char *path = malloc(n);
  assert_non_null(path);
  snprintf(path, n, "%s/%s", dir, file);
  return path;
}

#endif
