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

/* s with its control characters written out; NULL when it has none (or out of memory: then s is kept, cut at the
 * first of them rather than shown raw). */
static char *
printable(char *s)
{
  size_t n = 0, len = strlen(s);
  for (size_t i = 0; i < len; i++)
    n += (unsigned char) s[i] < 0x20 || s[i] == 0x7f;
  if (n == 0)
    return NULL;
  char *out = malloc(len + 4 * n + 1), *p = out;
  if (out == NULL) {
    for (size_t i = 0; i < len; i++)
      if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
        s[i] = '\0';
    return NULL;
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char) s[i];
    if (c >= 0x20 && c != 0x7f)
      *p++ = (char) c;
    else if (c == '\n' || c == '\t' || c == '\r' || c == 0x1b) {
      *p++ = '\\';
      *p++ = c == '\n' ? 'n' : c == '\t' ? 't' : c == '\r' ? 'r' : 'e';
    } else
      p += sprintf(p, "\\x%02x", c);
  }
  *p = '\0';
  return out;
}

void
cli_printable(cJSON *j)
{
  cJSON *e;
  cJSON_ArrayForEach(e, j)
  {
    char *name = e->string ? printable(e->string) : NULL;
    if (name != NULL && !(e->type & cJSON_StringIsConst)) {
      free(e->string);
      e->string = name;
    } else {
      free(name);
    }
    if (cJSON_IsString(e) && e->valuestring != NULL) {
      char *v = printable(e->valuestring);
      if (v != NULL)
        cJSON_SetValuestring(e, v);
      free(v);
    } else {
      cli_printable(e);
    }
  }
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
