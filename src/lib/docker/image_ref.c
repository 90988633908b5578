/* Image reference grammar, after the distribution/reference rules the Docker daemon applies. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/image_ref.h"

#define REF_MAX 512

static bool
is_alnum_lower(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [_.] | __ | [-]+ */
static bool
valid_component(const char *s, size_t n)
{
  if (n == 0 || !is_alnum_lower(s[0]) || !is_alnum_lower(s[n - 1]))
    return false;
  for (size_t i = 0; i < n; i++) {
    if (is_alnum_lower(s[i]))
      continue;
    size_t j = i;
    while (j < n && !is_alnum_lower(s[j]))
      j++;
    size_t sep = j - i;
    bool dashes = true;
    for (size_t k = i; k < j; k++)
      dashes = dashes && s[k] == '-';
    bool ok = dashes || (sep == 1 && (s[i] == '.' || s[i] == '_')) || (sep == 2 && s[i] == '_' && s[i + 1] == '_');
    if (!ok)
      return false;
    i = j - 1;
  }
  return true;
}

static bool
valid_domain(const char *s, size_t n)
{
  /* host[:port]; host labels of [A-Za-z0-9-] separated by dots, or a bracketed IPv6 address */
  const char *colon = NULL;
  if (n == 0)
    return false;
  if (s[0] == '[') {
    const char *end = memchr(s, ']', n);
    if (end == NULL)
      return false;
    colon = end + 1 < s + n ? end + 1 : NULL;
    if (colon != NULL && *colon != ':')
      return false;
  } else {
    colon = memchr(s, ':', n);
    size_t hn = colon ? (size_t) (colon - s) : n;
    if (hn == 0)
      return false;
    for (size_t i = 0; i < hn; i++)
      if (!isalnum((unsigned char) s[i]) && s[i] != '-' && s[i] != '.')
        return false;
    if (s[0] == '-' || s[0] == '.' || s[hn - 1] == '-' || s[hn - 1] == '.')
      return false;
  }
  if (colon != NULL) {
    size_t pn = (size_t) (s + n - colon - 1);
    if (pn == 0 || pn > 5)
      return false;
    for (size_t i = 1; i <= pn; i++)
      if (!isdigit((unsigned char) colon[i]))
        return false;
  }
  return true;
}

static bool
valid_tag(const char *t)
{
  size_t n = strlen(t);
  if (n == 0 || n > 128 || !(isalnum((unsigned char) t[0]) || t[0] == '_'))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!isalnum((unsigned char) t[i]) && t[i] != '_' && t[i] != '.' && t[i] != '-')
      return false;
  return true;
}

static bool
valid_digest(const char *d)
{
  const char *colon = strchr(d, ':');
  if (colon == NULL || colon == d)
    return false;
  for (const char *p = d; p < colon; p++)
    if (!is_alnum_lower(*p) && *p != '+' && *p != '.' && *p != '_' && *p != '-')
      return false;
  size_t hn = strlen(colon + 1);
  if (hn < 32)
    return false;
  for (const char *p = colon + 1; *p; p++)
    if (!isxdigit((unsigned char) *p) || isupper((unsigned char) *p))
      return false;
  if (strncmp(d, "sha256:", 7) == 0 && hn != 64)
    return false;
  return true;
}

void
berth_image_ref_clear(berth_image_ref *r)
{
  if (r == NULL)
    return;
  free(r->domain);
  free(r->path);
  free(r->tag);
  free(r->digest);
  memset(r, 0, sizeof *r);
}

static int
ref_fail(berth_image_ref *r, berth_error **err, const char *s, const char *why)
{
  berth_image_ref_clear(r);
  return berth_error_set(err, BERTH_EINVAL, "invalid image reference `%.200s`: %s", s, why);
}

int
berth_image_ref_parse(const char *s, berth_image_ref *out, berth_error **err)
{
  memset(out, 0, sizeof *out);
  if (s == NULL || *s == '\0')
    return ref_fail(out, err, "", "empty");
  size_t n = strlen(s);
  if (n > REF_MAX)
    return ref_fail(out, err, s, "longer than 512 characters");
  for (size_t i = 0; i < n; i++)
    if (isspace((unsigned char) s[i]) || iscntrl((unsigned char) s[i]))
      return ref_fail(out, err, s, "contains whitespace or control characters");

  char *work = strdup(s);
  if (work == NULL)
    return ref_fail(out, err, s, "out of memory");
  char *at = strchr(work, '@');
  if (at != NULL) {
    *at = '\0';
    if (!valid_digest(at + 1)) {
      free(work);
      return ref_fail(out, err, s, "malformed digest");
    }
    out->digest = strdup(at + 1);
  }
  /* the tag is after the last ':' that follows the last '/' */
  char *slash = strrchr(work, '/');
  char *colon = strrchr(slash ? slash : work, ':');
  if (colon != NULL) {
    *colon = '\0';
    if (!valid_tag(colon + 1)) {
      free(work);
      return ref_fail(out, err, s, "malformed tag");
    }
    out->tag = strdup(colon + 1);
  }
  char *name = work;
  char *first_slash = strchr(name, '/');
  const char *domain = "docker.io";
  char *path = name;
  if (first_slash != NULL) {
    size_t fl = (size_t) (first_slash - name);
    bool is_domain = memchr(name, '.', fl) || memchr(name, ':', fl) || (fl == 9 && strncmp(name, "localhost", 9) == 0);
    for (size_t i = 0; i < fl && !is_domain; i++)
      if (isupper((unsigned char) name[i]))
        is_domain = true;
    if (is_domain) {
      *first_slash = '\0';
      if (!valid_domain(name, fl)) {
        free(work);
        return ref_fail(out, err, s, "malformed registry host");
      }
      domain = name;
      path = first_slash + 1;
    }
  }
  if (strcmp(domain, "index.docker.io") == 0)
    domain = "docker.io";
  /* validate the path components */
  for (char *p = path;;) {
    char *e = strchr(p, '/');
    size_t cn = e ? (size_t) (e - p) : strlen(p);
    bool upper = false;
    for (size_t i = 0; i < cn; i++)
      upper = upper || isupper((unsigned char) p[i]);
    if (upper) {
      free(work);
      return ref_fail(out, err, s, "repository name must be lowercase");
    }
    if (!valid_component(p, cn)) {
      free(work);
      return ref_fail(out, err, s, "malformed repository name");
    }
    if (e == NULL)
      break;
    p = e + 1;
  }
  out->domain = strdup(domain);
  if (strcmp(domain, "docker.io") == 0 && strchr(path, '/') == NULL) {
    if (asprintf(&out->path, "library/%s", path) < 0)
      out->path = NULL;
  } else {
    out->path = strdup(path);
  }
  if (out->tag == NULL && out->digest == NULL)
    out->tag = strdup("latest");
  free(work);
  if (out->domain == NULL || out->path == NULL || (out->tag == NULL && out->digest == NULL))
    return ref_fail(out, err, s, "out of memory");
  return 0;
}

char *
berth_image_ref_repository(const berth_image_ref *r)
{
  char *s = NULL;
  if (asprintf(&s, "%s/%s", r->domain, r->path) < 0)
    return NULL;
  return s;
}

char *
berth_image_ref_string(const berth_image_ref *r)
{
  char *s = NULL;
  if (asprintf(&s, "%s/%s%s%s%s%s", r->domain, r->path, r->tag ? ":" : "", r->tag ? r->tag : "", r->digest ? "@" : "",
               r->digest ? r->digest : "")
      < 0)
    return NULL;
  return s;
}
