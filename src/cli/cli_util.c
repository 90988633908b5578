/* Small helpers shared by the CLI commands. */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdint.h>
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

/* The length of a character at s that must not reach a terminal as it is (0: none): a C0 control or DEL, a C1 control
 * in UTF-8 (U+0080-U+009F: U+009B starts a control sequence on some terminals) or a bidi override or isolate
 * (U+202A-U+202E, U+2066-U+2069: text that reads differently than it is). */
static size_t
unprintable(const unsigned char *s, uint32_t *cp)
{
  if (s[0] < 0x20 || s[0] == 0x7f) {
    *cp = s[0];
    return 1;
  }
  if (s[0] == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f) {
    *cp = s[1];
    return 2;
  }
  if (s[0] == 0xe2
      && ((s[1] == 0x80 && s[2] >= 0xaa && s[2] <= 0xae) || (s[1] == 0x81 && s[2] >= 0xa6 && s[2] <= 0xa9))) {
    *cp = 0x2000u + ((uint32_t) (s[1] & 0x3f) << 6) + (s[2] & 0x3f);
    return 3;
  }
  return 0;
}

char *
cli_printable_text(const char *text)
{
  const unsigned char *s = (const unsigned char *) text;
  size_t n = 0, len = strlen(text);
  uint32_t cp;
  for (size_t i = 0; i < len; i++)
    n += unprintable(s + i, &cp) > 0;
  if (n == 0)
    return NULL;
  char *out = malloc(len + 6 * n + 1), *p = out;
  if (out == NULL)
    return strdup("(not shown: out of memory)");
  for (size_t i = 0; i < len;) {
    size_t k = unprintable(s + i, &cp);
    if (k == 0)
      *p++ = (char) s[i++];
    else if (cp == '\n' || cp == '\t' || cp == '\r' || cp == 0x1b)
      p += sprintf(p, "\\%c", cp == '\n' ? 'n' : cp == '\t' ? 't' : cp == '\r' ? 'r' : 'e');
    else if (cp < 0x80)
      p += sprintf(p, "\\x%02x", (unsigned) cp);
    else
      p += sprintf(p, "\\u%04x", (unsigned) cp);
    i += k ? k : 0;
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
    char *name = e->string ? cli_printable_text(e->string) : NULL;
    if (name != NULL && !(e->type & cJSON_StringIsConst)) {
      free(e->string);
      e->string = name;
    } else {
      free(name);
    }
    if (cJSON_IsString(e) && e->valuestring != NULL) {
      char *v = cli_printable_text(e->valuestring);
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
