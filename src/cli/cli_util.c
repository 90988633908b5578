/* Small helpers shared by the CLI commands. */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "berth/parse.h"
#include "berth/store.h"
#include "cli.h"

char *
cli_current_user(void)
{
  struct passwd *pw = getpwuid(getuid());
  if (pw != NULL)
    return strdup(pw->pw_name);
  char *s = NULL;
  if (asprintf(&s, "uid%u", (unsigned) getuid()) < 0)
    return NULL;
  return s;
}

int
cli_open_store(berth_store **st)
{
  berth_error *err = NULL;
  char *home = berth_home_default();
  int rc = berth_store_open(home, st, &err);
  free(home);
  if (rc < 0)
    return cli_fail(err);
  return 0;
}

void
cli_print_json(const cJSON *j)
{
  char *s = cJSON_Print(j);
  if (s)
    printf("%s\n", s);
  free(s);
}

int
cli_write_all(int fd, const char *data, size_t len)
{
  while (len > 0) {
    ssize_t w = write(fd, data, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -1;
    data += w;
    len -= (size_t) w;
  }
  return 0;
}

int
cli_flag_error(int ret, const char *cmd, char **argv)
{
  berth_error *err = NULL;
  berth_flag_error(ret, cmd, argv, optind, optopt, optarg, &err);
  return cli_fail(err);
}
