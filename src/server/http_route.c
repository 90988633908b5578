/* Path splitting and route matching for the HTTP API (pure functions over untrusted bytes; fuzzed). */
#include <string.h>

#include "berth/role.h"
#include "server.h"

int
srv_role_level(const char *role)
{
  return (int) berth_role_parse(role);
}

int
srv_path_split(const char *path, char segs[][SRV_SEGMENT_MAX + 1], size_t max)
{
  if (path == NULL || path[0] != '/')
    return -1;
  size_t n = 0;
  const char *p = path + 1;
  if (*p == '\0')
    return 0;
  for (;;) {
    const char *end = strchr(p, '/');
    size_t len = end ? (size_t) (end - p) : strlen(p);
    if (len == 0)
      return end == NULL && n > 0 ? (int) n : -1; /* "a//b" or "/" inside; a single trailing "/" is fine */
    if (len > SRV_SEGMENT_MAX || n >= max)
      return -1;
    for (size_t i = 0; i < len; i++)
      if ((unsigned char) p[i] < 0x20 || p[i] == 0x7f)
        return -1;
    memcpy(segs[n], p, len);
    segs[n][len] = '\0';
    n++;
    if (end == NULL)
      return (int) n;
    p = end + 1;
    if (*p == '\0')
      return (int) n;
  }
}

/* Does pattern ("a/STAR/b", STAR being `*`) match segs? Captures `*` segments into args. */
static bool
pattern_match(const char *pattern, char segs[][SRV_SEGMENT_MAX + 1], size_t nseg, const char **args, size_t max_args)
{
  size_t i = 0, na = 0;
  const char *p = pattern;
  while (*p) {
    const char *end = strchr(p, '/');
    size_t len = end ? (size_t) (end - p) : strlen(p);
    if (i >= nseg)
      return false;
    if (len == 1 && p[0] == '*') {
      if (na < max_args)
        args[na++] = segs[i];
    } else if (strlen(segs[i]) != len || memcmp(segs[i], p, len) != 0) {
      return false;
    }
    i++;
    p = end ? end + 1 : p + len;
  }
  return i == nseg;
}

const srv_route *
srv_route_match(const srv_route *table, size_t n, const char *method, char segs[][SRV_SEGMENT_MAX + 1], size_t nseg,
                const char **args, size_t max_args, bool *path_known)
{
  *path_known = false;
  for (size_t i = 0; i < n; i++) {
    const char *tmp[4] = { NULL };
    if (!pattern_match(table[i].pattern, segs, nseg, tmp, 4))
      continue;
    *path_known = true;
    /* HEAD is GET without the body (RFC 9110 9.3.2); libmicrohttpd leaves the body out */
    if (strcmp(table[i].method, method) != 0 && !(strcmp(method, "HEAD") == 0 && strcmp(table[i].method, "GET") == 0))
      continue;
    if (table[i].fn == NULL) /* the path is a name of its own, not a value of the `*` routes after it */
      return NULL;
    for (size_t k = 0; k < max_args && k < 4; k++)
      args[k] = tmp[k];
    return &table[i];
  }
  return NULL;
}
