/* The web UI's files: which asset a URL names, conditional requests and content coding (no libmicrohttpd here: pure
 * functions over request header values, tested alone). The response itself is made in server.c. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server.h"

const srv_asset *
srv_ui_find(const char *url, const char *accept)
{
  if (url == NULL || strncmp(url, "/v1", 3) == 0)
    return NULL;
  /* / is the web UI; an API client that asks for JSON there gets the identity document (always at /v1) */
  if (strcmp(url, "/") == 0 && accept != NULL && strstr(accept, "application/json") != NULL
      && strstr(accept, "text/html") == NULL)
    return NULL;
  for (size_t i = 0; i < srv_ui_n_assets; i++)
    if (strcmp(srv_ui_assets[i].path, url) == 0)
      return &srv_ui_assets[i];
  return NULL;
}

/* Next comma-separated element of *p (spaces trimmed): its start and length; false at the end. */
static bool
next_item(const char **p, const char **item, size_t *len)
{
  const char *s = *p;
  while (*s == ' ' || *s == '\t' || *s == ',')
    s++;
  if (*s == '\0')
    return false;
  const char *e = strchr(s, ',');
  if (e == NULL)
    e = s + strlen(s);
  *p = e;
  while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
    e--;
  *item = s;
  *len = (size_t) (e - s);
  return true;
}

bool
srv_etag_match(const char *if_none_match, const char *etag)
{
  if (if_none_match == NULL)
    return false;
  const char *p = if_none_match, *item;
  size_t len, elen = strlen(etag);
  while (next_item(&p, &item, &len)) {
    if (len == 1 && item[0] == '*')
      return true;
    if (len > 2 && strncmp(item, "W/", 2) == 0) {
      item += 2;
      len -= 2;
    }
    if (len == elen && memcmp(item, etag, len) == 0)
      return true;
  }
  return false;
}

bool
srv_accepts_gzip(const char *accept_encoding)
{
  if (accept_encoding == NULL)
    return false;
  const char *p = accept_encoding, *item;
  size_t len;
  while (next_item(&p, &item, &len)) {
    size_t name = 0;
    while (name < len && item[name] != ';' && item[name] != ' ')
      name++;
    if (!((name == 4 && strncasecmp(item, "gzip", 4) == 0) || (name == 6 && strncasecmp(item, "x-gzip", 6) == 0)))
      continue;
    /* "gzip;q=0" (or 0.0, 0.00 ...) refuses it */
    const char *q = memchr(item, '=', len);
    if (q == NULL)
      return true;
    for (q++; q < item + len; q++)
      if (*q >= '1' && *q <= '9')
        return true;
    return false;
  }
  return false;
}
