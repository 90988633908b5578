/* The image allowlist: pattern normalization, the segment-aware glob matcher, the decision, and the rule table.
 *
 * Everything is matched on normalized forms so that the spelling of a reference never decides (GitLab matches the
 * string as written, so `postgres:*` misses `postgres`). Where the meaning of a reference is uncertain (a tag next to
 * a digest, a digest without a tag), the rules lean towards denial: an allow rule vouches only for what it names,
 * a deny rule catches whatever it names. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/parse.h"
#include "berth/allowlist.h"
#include "berth/cleanup.h"
#include "berth/image_ref.h"
#include "gov_int.h"

#define MAX_SEGMENTS 256

/* A pattern split into its three parts. */
typedef struct image_pattern {
  char *name;   /* normalized name glob, e.g. "docker.io/library/ubuntu" */
  char *tag;    /* tag glob; NULL = any tag (trailing `**`, or a digest pattern) */
  char *digest; /* literal digest or NULL (= any) */
} image_pattern;

static void
pattern_clear(image_pattern *p)
{
  free(p->name);
  free(p->tag);
  free(p->digest);
  memset(p, 0, sizeof *p);
}

void
berth_image_decision_clear(berth_image_decision *d)
{
  if (d == NULL)
    return;
  free(d->normalized);
  free(d->pattern);
  free(d->kind);
  free(d->reason);
  memset(d, 0, sizeof *d);
}

cJSON *
berth_image_decision_to_json(const char *ref, const berth_image_decision *d)
{
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "ref", ref);
  cJSON_AddBoolToObject(j, "allowed", d->allowed);
  cJSON_AddStringToObject(j, "normalized", d->normalized ? d->normalized : "");
  if (d->pattern)
    cJSON_AddStringToObject(j, "pattern", d->pattern);
  else
    cJSON_AddNullToObject(j, "pattern");
  cJSON_AddStringToObject(j, "kind", d->kind ? d->kind : "default");
  cJSON_AddStringToObject(j, "reason", d->reason ? d->reason : "");
  return j;
}

/* ---- glob matching ---- */

/* Matches one character against the bracket expression starting at p[*pi] == '['; advances *pi past the `]`.
 * Returns -1 when the expression is not closed (the `[` is then literal). */
static int
class_match(const char *p, size_t pn, size_t *pi, char c)
{
  size_t i = *pi + 1;
  bool neg = false;
  if (i < pn && (p[i] == '!' || p[i] == '^')) {
    neg = true;
    i++;
  }
  bool hit = false;
  size_t first = i;
  for (; i < pn && (p[i] != ']' || i == first); i++) {
    if (i + 2 < pn && p[i + 1] == '-' && p[i + 2] != ']') {
      if ((unsigned char) c >= (unsigned char) p[i] && (unsigned char) c <= (unsigned char) p[i + 2])
        hit = true;
      i += 2;
    } else if (p[i] == c) {
      hit = true;
    }
  }
  if (i >= pn)
    return -1;
  *pi = i + 1;
  return hit != neg;
}

/* `*`, `?` and `[...]` over one segment (the subject never contains `/`). Classic single-backtrack matching:
 * linear in practice, O(pn * sn) at worst, so hostile patterns cannot blow up. */
static bool
glob_segment(const char *p, size_t pn, const char *s, size_t sn)
{
  size_t pi = 0, si = 0, star_p = SIZE_MAX, star_s = 0;
  while (si < sn) {
    if (pi < pn && p[pi] == '*') {
      while (pi < pn && p[pi] == '*')
        pi++;
      star_p = pi;
      star_s = si;
      continue;
    }
    if (pi < pn) {
      size_t next = pi + 1;
      bool ok;
      if (p[pi] == '?') {
        ok = true;
      } else if (p[pi] == '[') {
        next = pi;
        int m = class_match(p, pn, &next, s[si]);
        ok = m < 0 ? s[si] == '[' : m == 1;
        if (m < 0)
          next = pi + 1;
      } else {
        ok = p[pi] == s[si];
      }
      if (ok) {
        pi = next;
        si++;
        continue;
      }
    }
    if (star_p == SIZE_MAX)
      return false;
    pi = star_p;
    si = ++star_s;
  }
  while (pi < pn && p[pi] == '*')
    pi++;
  return pi == pn;
}

typedef struct seg {
  const char *p;
  size_t n;
} seg;

static size_t
split_segments(const char *s, seg *out, size_t max)
{
  size_t n = 0;
  for (const char *p = s;;) {
    const char *e = strchr(p, '/');
    size_t len = e ? (size_t) (e - p) : strlen(p);
    if (n == max)
      return SIZE_MAX;
    out[n++] = (seg){ p, len };
    if (e == NULL)
      return n;
    p = e + 1;
  }
}

static bool
is_double_star(const seg *s)
{
  return s->n == 2 && s->p[0] == '*' && s->p[1] == '*';
}

/* Name glob over `/`-separated segments; a whole `**` segment matches any number of segments (zero included).
 * The same single-backtrack scheme as glob_segment, one level up. */
static bool
glob_name(const char *pattern, const char *subject)
{
  seg ps[MAX_SEGMENTS], ss[MAX_SEGMENTS];
  size_t pn = split_segments(pattern, ps, MAX_SEGMENTS), sn = split_segments(subject, ss, MAX_SEGMENTS);
  if (pn == SIZE_MAX || sn == SIZE_MAX)
    return false;
  size_t pi = 0, si = 0, star_p = SIZE_MAX, star_s = 0;
  while (si < sn) {
    if (pi < pn && is_double_star(&ps[pi])) {
      while (pi < pn && is_double_star(&ps[pi]))
        pi++;
      star_p = pi;
      star_s = si;
      continue;
    }
    if (pi < pn && glob_segment(ps[pi].p, ps[pi].n, ss[si].p, ss[si].n)) {
      pi++;
      si++;
      continue;
    }
    if (star_p == SIZE_MAX)
      return false;
    pi = star_p;
    si = ++star_s;
  }
  while (pi < pn && is_double_star(&ps[pi]))
    pi++;
  return pi == pn;
}

/* ---- pattern normalization ---- */

static bool
is_glob_char(char c)
{
  return c == '*' || c == '?' || c == '[' || c == ']' || c == '!' || c == '^';
}

/* Checks a glob over [allowed chars + glob chars]; `[` must close within the part. */
static const char *
check_glob(const char *s, size_t n, const char *extra)
{
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '[') {
      size_t j = i + 1;
      if (j < n && (s[j] == '!' || s[j] == '^'))
        j++;
      if (j < n && s[j] == ']')
        j++;
      while (j < n && s[j] != ']')
        j++;
      if (j >= n)
        return "unclosed `[`";
      for (size_t k = i + 1; k < j; k++)
        if (!isalnum((unsigned char) s[k]) && !strchr("._-!^", s[k]))
          return "bad character in `[...]`";
      i = j;
      continue;
    }
    if (c == ']' || c == '!' || c == '^')
      return "`]`, `!` and `^` are only allowed inside `[...]`";
    if (isalnum((unsigned char) c) || c == '*' || c == '?' || strchr(extra, c))
      continue;
    return "bad character";
  }
  return NULL;
}

static bool
has_glob(const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (is_glob_char(s[i]))
      return true;
  return false;
}

static bool
valid_digest(const char *d)
{
  const char *colon = strchr(d, ':');
  if (colon == NULL || colon == d)
    return false;
  for (const char *p = d; p < colon; p++)
    if (!(islower((unsigned char) *p) || isdigit((unsigned char) *p)) && !strchr("+._-", *p))
      return false;
  size_t hn = strlen(colon + 1);
  if (hn < 32 || (strncmp(d, "sha256:", 7) == 0 && hn != 64))
    return false;
  for (const char *p = colon + 1; *p; p++)
    if (!isxdigit((unsigned char) *p) || isupper((unsigned char) *p))
      return false;
  return true;
}

static int
pattern_fail(image_pattern *out, berth_error **err, const char *pattern, const char *why)
{
  pattern_clear(out);
  return berth_error_set(err, BERTH_EINVAL, "invalid image pattern `%.200s`: %s", pattern, why);
}

/* The first segment names a registry when it has a `.` or `:` or is `localhost` (as in Docker's own parser). */
static bool
is_registry_segment(const char *s, size_t n)
{
  return memchr(s, '.', n) || memchr(s, ':', n) || (n == 9 && memcmp(s, "localhost", 9) == 0);
}

static int
check_name_segments(const char *pattern, const char *name, bool first_is_registry, image_pattern *out,
                    berth_error **err)
{
  seg segs[MAX_SEGMENTS];
  size_t n = split_segments(name, segs, MAX_SEGMENTS);
  if (n == SIZE_MAX)
    return pattern_fail(out, err, pattern, "too many path segments");
  for (size_t i = 0; i < n; i++) {
    if (segs[i].n == 0)
      return pattern_fail(out, err, pattern, "empty path segment");
    bool registry = i == 0 && first_is_registry;
    for (size_t k = 0; k < segs[i].n && !registry; k++)
      if (isupper((unsigned char) segs[i].p[k]))
        return pattern_fail(out, err, pattern, "repository names are lowercase");
    const char *why = check_glob(segs[i].p, segs[i].n, registry ? ".-:" : "._-");
    if (why)
      return pattern_fail(out, err, pattern, why);
  }
  return 0;
}

static int
parse_pattern(const char *pattern, image_pattern *out, berth_error **err)
{
  memset(out, 0, sizeof *out);
  if (pattern == NULL || *pattern == '\0')
    return pattern_fail(out, err, "", "empty");
  size_t len = strlen(pattern);
  if (len > BERTH_ALLOWLIST_PATTERN_MAX)
    return pattern_fail(out, err, pattern, "longer than 512 characters");
  cleanup_free char *work = strdup(pattern);
  if (work == NULL)
    return pattern_fail(out, err, pattern, "out of memory");
  char *at = strchr(work, '@');
  if (at != NULL) {
    *at = '\0';
    if (has_glob(at + 1, strlen(at + 1)))
      return pattern_fail(out, err, pattern, "a digest must be written in full (no wildcards)");
    if (!valid_digest(at + 1))
      return pattern_fail(out, err, pattern, "malformed digest (want sha256:<64 lowercase hex>)");
    if ((out->digest = strdup(at + 1)) == NULL)
      return pattern_fail(out, err, pattern, "out of memory");
  }
  char *slash = strrchr(work, '/');
  char *colon = strrchr(slash ? slash : work, ':');
  if (colon != NULL) {
    *colon = '\0';
    const char *tag = colon + 1;
    size_t tn = strlen(tag);
    const char *why = tn == 0 ? "empty tag" : tn > 128 ? "tag longer than 128 characters" : check_glob(tag, tn, "._-");
    if (why)
      return pattern_fail(out, err, pattern, why);
    /* with a digest the tag is only a label: Docker runs the digest, so the pattern is the digest */
    if (out->digest == NULL && (out->tag = strdup(tag)) == NULL)
      return pattern_fail(out, err, pattern, "out of memory");
  }
  if (*work == '\0')
    return pattern_fail(out, err, pattern, "no image name");
  char *first_slash = strchr(work, '/');
  size_t fl = first_slash ? (size_t) (first_slash - work) : strlen(work);
  bool double_star_first = fl == 2 && work[0] == '*' && work[1] == '*';
  bool registry = first_slash != NULL && !double_star_first && is_registry_segment(work, fl);
  int rc = check_name_segments(pattern, work, registry, out, err);
  if (rc < 0)
    return rc;
  const char *prefix = "";
  const char *rest = work;
  if (registry) {
    if (fl == 15 && strncmp(work, "index.docker.io", 15) == 0) {
      prefix = "docker.io";
      rest = first_slash;
    }
  } else if (!double_star_first) {
    prefix = first_slash ? "docker.io/" : "docker.io/library/";
  }
  if (asprintf(&out->name, "%s%s", prefix, rest) < 0) {
    out->name = NULL;
    return pattern_fail(out, err, pattern, "out of memory");
  }
  if (out->tag == NULL && out->digest == NULL) {
    size_t nn = strlen(out->name);
    bool tail_any = (nn == 2 || (nn > 2 && out->name[nn - 3] == '/')) && strcmp(out->name + nn - 2, "**") == 0;
    if (!tail_any && (out->tag = strdup("latest")) == NULL)
      return pattern_fail(out, err, pattern, "out of memory");
  }
  return 0;
}

static char *
pattern_string(const image_pattern *p)
{
  char *s = NULL;
  if (asprintf(&s, "%s%s%s%s%s", p->name, p->tag ? ":" : "", p->tag ? p->tag : "", p->digest ? "@" : "",
               p->digest ? p->digest : "")
      < 0)
    return NULL;
  return s;
}

char *
berth_allowlist_normalize_pattern(const char *pattern, berth_error **err)
{
  image_pattern p;
  if (parse_pattern(pattern, &p, err) < 0)
    return NULL;
  char *s = pattern_string(&p);
  pattern_clear(&p);
  if (s == NULL)
    berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  return s;
}

/* ---- decisions ---- */

static bool
tag_is_any(const char *t)
{
  for (; *t; t++)
    if (*t != '*')
      return false;
  return true;
}

static bool
pattern_matches(const image_pattern *p, const berth_image_ref *r, const char *repo, bool is_deny)
{
  if (!glob_name(p->name, repo))
    return false;
  if (p->digest)
    return r->digest != NULL && strcmp(p->digest, r->digest) == 0;
  if (p->tag == NULL || tag_is_any(p->tag))
    return true;
  if (r->tag == NULL)
    return false; /* digest only: a tag pattern cannot tell which tag that digest is */
  if (r->digest != NULL && !is_deny)
    return false; /* runs by digest: a tag name does not vouch for it */
  return glob_segment(p->tag, strlen(p->tag), r->tag, strlen(r->tag));
}

static int
decision_set(berth_image_decision *out, bool allowed, const char *normalized, const char *pattern, const char *kind,
             const char *why, berth_error **err)
{
  out->allowed = allowed;
  out->normalized = strdup(normalized);
  out->pattern = pattern ? strdup(pattern) : NULL;
  out->kind = strdup(kind);
  if (asprintf(&out->reason, "image `%s` is %s (%s)", normalized, allowed ? "allowed" : "not allowed", why) < 0)
    out->reason = NULL;
  if (out->normalized == NULL || (pattern && out->pattern == NULL) || out->kind == NULL || out->reason == NULL) {
    berth_image_decision_clear(out);
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  return 0;
}

static int
decide_default(const berth_image_ref *r, const char *normalized, const char *repo, const char *default_image,
               berth_image_decision *out, berth_error **err)
{
  image_pattern def;
  if (parse_pattern(default_image ? default_image : BERTH_ALLOWLIST_DEFAULT_IMAGE, &def, err) < 0)
    return berth_error_wrap(err, "default runner image");
  bool ok = pattern_matches(&def, r, repo, false);
  cleanup_free char *defs = pattern_string(&def);
  pattern_clear(&def);
  cleanup_free char *why = NULL;
  if (defs == NULL || asprintf(&why, "the allowlist is empty: only the default runner image `%s` is allowed", defs) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  return decision_set(out, ok, normalized, NULL, "default", why, err);
}

int
berth_allowlist_decide(const char *const *patterns, const char *const *kinds, size_t n, const char *ref,
                       const char *default_image, berth_image_decision *out, berth_error **err)
{
  memset(out, 0, sizeof *out);
  berth_image_ref r;
  if (berth_image_ref_parse(ref, &r, err) < 0)
    return BERTH_EINVAL;
  cleanup_free char *normalized = berth_image_ref_string(&r);
  cleanup_free char *repo = berth_image_ref_repository(&r);
  int rc = 0;
  if (normalized == NULL || repo == NULL) {
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    goto out;
  }
  if (n == 0) {
    rc = decide_default(&r, normalized, repo, default_image, out, err);
    goto out;
  }
  /* deny first: a deny entry always beats an allow entry, whatever the order they were added in */
  for (int pass = 0; pass < 2; pass++) {
    const char *want = pass == 0 ? "deny" : "allow";
    for (size_t i = 0; i < n; i++) {
      bool is_deny = strcmp(kinds[i], "deny") == 0;
      if (!is_deny && strcmp(kinds[i], "allow") != 0) {
        rc = berth_error_set(err, BERTH_EINVAL, "image rule `%.200s` has unknown kind `%.20s`", patterns[i], kinds[i]);
        goto out;
      }
      if (strcmp(kinds[i], want) != 0)
        continue;
      image_pattern p;
      if ((rc = parse_pattern(patterns[i], &p, err)) < 0)
        goto out;
      bool hit = pattern_matches(&p, &r, repo, is_deny);
      cleanup_free char *ps = hit ? pattern_string(&p) : NULL;
      pattern_clear(&p);
      if (!hit)
        continue;
      cleanup_free char *why = NULL;
      if (ps == NULL || asprintf(&why, "matched %s pattern `%s`", want, ps) < 0) {
        rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
        goto out;
      }
      rc = decision_set(out, !is_deny, normalized, ps, want, why, err);
      goto out;
    }
  }
  /* berth's own runner image stays usable unless a deny entry names it: adding allow entries for other images
   * must not break every stack on the default image */
  rc = decide_default(&r, normalized, repo, default_image, out, err);
  if (rc == 0 && !out->allowed) {
    berth_image_decision_clear(out);
    rc = decision_set(out, false, normalized, NULL, "default", "no allow pattern matches it", err);
  } else if (rc == 0) {
    berth_image_decision_clear(out);
    rc = decision_set(out, true, normalized, NULL, "default",
                      "berth's default runner image (no deny pattern matches it)", err);
  }
out:
  berth_image_ref_clear(&r);
  return rc;
}

/* ---- the rule table ---- */

typedef struct rule_set {
  char **patterns;
  char **kinds;
  size_t n;
} rule_set;

static void
rule_set_clear(rule_set *rs)
{
  for (size_t i = 0; i < rs->n; i++) {
    free(rs->patterns[i]);
    free(rs->kinds[i]);
  }
  free(rs->patterns);
  free(rs->kinds);
  memset(rs, 0, sizeof *rs);
}

#define RULES_SQL "SELECT pattern, kind FROM image_rules ORDER BY id"

/* The image rules, sent with the store's next statement (PostgreSQL), for the check that follows it */
void
berth_allowlist_read_ahead(berth_store *st)
{
  store_read_ahead(st, RULES_SQL);
}

static int
load_rules(berth_store *st, rule_set *rs, berth_error **err)
{
  memset(rs, 0, sizeof *rs);
  db_stmt *stmt = store_take_ahead(st, RULES_SQL);
  if (stmt == NULL && db_prepare(store_db(st), RULES_SQL, &stmt, err) < 0)
    return err && *err ? (*err)->code : BERTH_EINTERNAL;
  int rc = 0, step;
  size_t cap = 0;
  while ((step = db_step(stmt, err)) == DB_ROW) {
    if (rs->n == cap) {
      size_t nc = cap ? cap * 2 : 16;
      char **np = realloc(rs->patterns, nc * sizeof *np);
      if (np)
        rs->patterns = np;
      char **nk = np ? realloc(rs->kinds, nc * sizeof *nk) : NULL;
      if (nk == NULL) {
        rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
        break;
      }
      rs->kinds = nk;
      cap = nc;
    }
    bool oom = false;
    rs->patterns[rs->n] = db_column_strdup(stmt, 0, &oom);
    rs->kinds[rs->n] = db_column_strdup(stmt, 1, &oom);
    rs->n++;
    if (oom) {
      rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
      break;
    }
  }
  if (rc == 0 && step != DB_DONE)
    rc = berth_error_wrap(err, "read image rules");
  db_finalize(stmt);
  if (rc < 0)
    rule_set_clear(rs);
  return rc;
}

int
berth_allowlist_check(berth_store *st, const char *ref, berth_image_decision *out, berth_error **err)
{
  memset(out, 0, sizeof *out);
  rule_set rs;
  if (load_rules(st, &rs, err) < 0)
    return berth_error_wrap(err, "check image `%.200s`", ref ? ref : "");
  int rc = berth_allowlist_decide((const char *const *) rs.patterns, (const char *const *) rs.kinds, rs.n, ref, NULL,
                                  out, err);
  rule_set_clear(&rs);
  return rc;
}

int
berth_allowlist_count(berth_store *st, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(store_db(st), "SELECT count(*) FROM image_rules", &stmt, err) < 0)
    return err && *err ? (*err)->code : BERTH_EINTERNAL;
  int rc = db_step(stmt, err) == DB_ROW ? (int) db_column_int64(stmt, 0) : berth_error_wrap(err, "count image rules");
  db_finalize(stmt);
  return rc;
}

int
berth_allowlist_add(berth_store *st, const char *kind, const char *pattern, const char *actor, berth_error **err)
{
  if (kind == NULL || (strcmp(kind, "allow") != 0 && strcmp(kind, "deny") != 0))
    return berth_error_set(err, BERTH_EINVAL, "image rule kind must be `allow` or `deny`");
  if (actor == NULL || *actor == '\0')
    return berth_error_set(err, BERTH_EINVAL, "add image rule: no actor");
  cleanup_free char *norm = berth_allowlist_normalize_pattern(pattern, err);
  if (norm == NULL)
    return BERTH_EINVAL;
  db_stmt *stmt = NULL;
  int rc;
  if ((rc = db_begin(store_db(st), err)) < 0)
    return rc;
  if ((rc = db_prepare(store_db(st), "SELECT kind FROM image_rules WHERE pattern = ?", &stmt, err)) < 0)
    goto fail;
  db_bind_text(stmt, 1, norm);
  int step = db_step(stmt, err);
  if (step == DB_ROW) {
    bool same = strcmp(db_column_text(stmt, 0), kind) == 0;
    const char *other = strcmp(kind, "allow") == 0 ? "a deny" : "an allow";
    db_finalize(stmt);
    if (same) {
      db_rollback(store_db(st));
      return 1;
    }
    rc = berth_error_set(err, BERTH_EBUSY, "image pattern `%s` is already %s rule (remove it first)", norm, other);
    goto fail;
  }
  db_finalize(stmt);
  stmt = NULL;
  if (step != DB_DONE) {
    rc = berth_error_wrap(err, "add image rule");
    goto fail;
  }
  if ((rc = db_prepare(store_db(st), "INSERT INTO image_rules (pattern, kind, actor, created_at) VALUES (?, ?, ?, ?)",
                       &stmt, err))
      < 0)
    goto fail;
  db_bind_text(stmt, 1, norm);
  db_bind_text(stmt, 2, kind);
  db_bind_text(stmt, 3, actor);
  db_bind_int64(stmt, 4, berth_now_ms());
  step = db_step(stmt, err);
  db_finalize(stmt);
  if (step != DB_DONE) {
    rc = berth_error_wrap(err, "add image rule");
    goto fail;
  }
  return db_commit(store_db(st), err);
fail:
  db_rollback(store_db(st));
  return rc;
}

int
berth_allowlist_remove(berth_store *st, const char *pattern, berth_error **err)
{
  cleanup_free char *norm = berth_allowlist_normalize_pattern(pattern, err);
  if (norm == NULL)
    return BERTH_EINVAL;
  db_stmt *stmt = NULL;
  int rc;
  if ((rc = db_prepare(store_db(st), "DELETE FROM image_rules WHERE pattern = ?", &stmt, err)) < 0)
    return rc;
  db_bind_text(stmt, 1, norm);
  int64_t removed = 0;
  if (db_run(stmt, &removed, err) < 0)
    return berth_error_wrap(err, "remove image rule");
  if (removed == 0)
    return berth_error_set(err, BERTH_ENOTFOUND, "no image rule `%s`", norm);
  return 0;
}

cJSON *
berth_allowlist_list_json(berth_store *st, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(store_db(st), "SELECT pattern, kind, actor, created_at FROM image_rules ORDER BY id", &stmt, err) < 0)
    return NULL;
  cJSON *root = cJSON_CreateObject();
  cJSON *rules = root ? cJSON_AddArrayToObject(root, "rules") : NULL;
  int step = DB_DONE;
  bool oom = rules == NULL;
  while (!oom && (step = db_step(stmt, err)) == DB_ROW) {
    char when[BERTH_TIME_LEN];
    cJSON *r = cJSON_CreateObject();
    if (r == NULL || !cJSON_AddItemToArray(rules, r) || !cJSON_AddStringToObject(r, "pattern", db_column_text(stmt, 0))
        || !cJSON_AddStringToObject(r, "kind", db_column_text(stmt, 1))
        || !cJSON_AddStringToObject(r, "actor", db_column_text(stmt, 2))
        || !cJSON_AddStringToObject(r, "created_at", berth_format_time(db_column_int64(stmt, 3), when, sizeof when)))
      oom = true;
  }
  if (oom || step != DB_DONE) {
    if (oom)
      berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    else
      berth_error_wrap(err, "list image rules");
    cJSON_Delete(root);
    root = NULL;
  }
  db_finalize(stmt);
  return root;
}
