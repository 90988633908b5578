/* The disk-space reserve (see include/berth/reserve.h). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "berth/reserve.h"

static char *
reserve_path(const char *home)
{
  char *p = NULL;
  return asprintf(&p, "%s/run/reserve", home) < 0 ? NULL : p;
}

bool
berth_reserve_ensure(const char *home)
{
  char *p = reserve_path(home);
  if (p == NULL)
    return false;
  struct stat sb;
  bool ok = stat(p, &sb) == 0 && sb.st_size >= BERTH_RESERVE_BYTES;
  if (!ok) {
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    ok = fd >= 0 && posix_fallocate(fd, 0, BERTH_RESERVE_BYTES) == 0;
    if (fd >= 0)
      close(fd);
    if (!ok)
      unlink(p); /* no room now: no half reserve that would look whole later */
  }
  free(p);
  return ok;
}

bool
berth_reserve_release(const char *home)
{
  char *p = reserve_path(home);
  bool freed = p != NULL && unlink(p) == 0;
  free(p);
  return freed;
}
