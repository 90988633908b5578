/* The secret set: literal values with their derived forms, admin and built-in PCRE2 patterns, and the Vectorscan
 * literal database compiled from them (one per generation, shared by every redactor on the set). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include "redact/redact_int.h"

/* Built-in patterns. Each has literal anchors: a line is handed to the pattern only if one of its anchors occurs in
 * it, so the common no-match path costs one multi-literal scan. The masked part (group `mask`, or the whole match)
 * must start at or after the anchor: bytes before an anchor may already have been emitted when it is seen. */
static const struct {
  const char *name;
  const char *regex;
} builtin_patterns[] = {
  [REDACT_PAT_PEM] = { "pem-private-key", "-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----" },
  { "aws-access-key-id", "(?<![A-Za-z0-9])(?<mask>(?:AKIA|ASIA)[0-9A-Z]{16})(?![A-Za-z0-9])" },
  { "github-token", "(?<mask>gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{20,255})" },
  { "gitlab-token", "(?<mask>gl(?:pat|oas|dt|rt|rtr|cbt|ptt|ft|imt|agent|soat|ffct|tok)-[0-9A-Za-z_.=-]{8,})" },
  { "slack-token", "(?<mask>xox[abposr]-[0-9A-Za-z-]{8,})" },
  { "jwt", "(?<mask>eyJ[A-Za-z0-9_-]{4,}\\.eyJ[A-Za-z0-9_-]{4,}\\.[A-Za-z0-9_-]*)" },
  { "url-password", "[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\\s/:@]*:(?<mask>[^\\s/]+)@" },
  { "secret-parameter", "(?i)(?:password|passwd|token|secret|secret_key|api_key|apikey|access_key|private_key|"
                        "signature|credential)=[\"']?(?<mask>[^\\s&;\"'<>,]+)" },
};
#define NBUILTIN (sizeof builtin_patterns / sizeof builtin_patterns[0])

static const struct {
  const char *lit;
  bool caseless;
  unsigned pat;
} builtin_anchors[] = {
  { "-----BEGIN", false, REDACT_PAT_PEM },
  { "AKIA", false, 1 },
  { "ASIA", false, 1 },
  { "ghp_", false, 2 },
  { "gho_", false, 2 },
  { "ghu_", false, 2 },
  { "ghs_", false, 2 },
  { "ghr_", false, 2 },
  { "github_pat_", false, 2 },
  { "glpat-", false, 3 },
  { "gloas-", false, 3 },
  { "gldt-", false, 3 },
  { "glrt-", false, 3 },
  { "glrtr-", false, 3 },
  { "glcbt-", false, 3 },
  { "glptt-", false, 3 },
  { "glft-", false, 3 },
  { "glimt-", false, 3 },
  { "glagent-", false, 3 },
  { "glsoat-", false, 3 },
  { "glffct-", false, 3 },
  { "gltok-", false, 3 },
  { "xox", false, 4 },
  { "eyJ", false, 5 },
  { "://", false, 6 },
  { "password=", true, 7 },
  { "passwd=", true, 7 },
  { "token=", true, 7 },
  { "secret=", true, 7 },
  { "secret_key=", true, 7 },
  { "api_key=", true, 7 },
  { "apikey=", true, 7 },
  { "access_key=", true, 7 },
  { "private_key=", true, 7 },
  { "signature=", true, 7 },
  { "credential=", true, 7 },
};
#define NANCHORS (sizeof builtin_anchors / sizeof builtin_anchors[0])

/* Compiles one PCRE2 pattern (JIT when the CPU has it); *pairs is the ovector size a match needs. */
static int
compile_code(const char *name, const char *regex, pcre2_code **code, uint32_t *pairs, berth_error **err)
{
  int ec;
  PCRE2_SIZE eoff;
  *code = pcre2_compile((PCRE2_SPTR) regex, PCRE2_ZERO_TERMINATED, PCRE2_NEVER_UTF | PCRE2_NEVER_UCP, &ec, &eoff, NULL);
  if (*code == NULL) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(ec, msg, sizeof msg);
    return berth_error_set(err, BERTH_EINVAL, "compile redaction pattern `%s`: %s at offset %zu", name,
                           (const char *) msg, (size_t) eoff);
  }
  /* JIT is an optimisation; without it (no JIT on this CPU) the interpreter gives the same results. */
  (void) pcre2_jit_compile(*code, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD);
  uint32_t caps = 0;
  pcre2_pattern_info(*code, PCRE2_INFO_CAPTURECOUNT, &caps);
  *pairs = caps + 1;
  return 0;
}

static uint32_t
mask_group_of(const pcre2_code *code)
{
  int g = pcre2_substring_number_from_name(code, (PCRE2_SPTR) "mask");
  return g > 0 ? (uint32_t) g : 0;
}

/* Grows the set's match data to hold pairs. */
static int
set_match_pairs(berth_secrets *s, uint32_t pairs)
{
  if (pairs <= s->md_pairs)
    return 0;
  pcre2_match_data *md = pcre2_match_data_create(pairs, NULL);
  if (md == NULL)
    return -1;
  pcre2_match_data_free(s->md);
  s->md = md;
  s->md_pairs = pairs;
  return 0;
}

/* An admin's pattern, the set's own. */
static int
compile_pattern(berth_secrets *s, redact_pattern *p, const char *name, const char *regex, berth_error **err)
{
  uint32_t pairs = 0;
  if (compile_code(name, regex, &p->code, &pairs, err) < 0)
    return -1;
  p->mask_group = mask_group_of(p->code);
  p->name = strdup(name);
  if (p->name == NULL || set_match_pairs(s, pairs) < 0) {
    free(p->name);
    p->name = NULL;
    pcre2_code_free(p->code);
    p->code = NULL;
    return berth_error_set(err, BERTH_EINTERNAL, "compile redaction pattern `%s`: out of memory", name);
  }
  return 0;
}

/* The built-in patterns, compiled once per process and shared by every set: a compiled pattern is only read while
 * matching, and each set matches with match data of its own. (A set is made for every task read the API shows:
 * compiling them each time was most of a read's cost.) */
static struct {
  pthread_once_t once;
  redact_pattern builtin[NBUILTIN];
  pcre2_code *pem_end;
  uint32_t pairs;
  char failed[320]; /* why compiling them failed, or "" */
} shared_builtin = { .once = PTHREAD_ONCE_INIT };

static void db_release(redact_dbref *r);

static void
compile_builtin(void)
{
  berth_error *err = NULL;
  uint32_t pairs = 0;
  for (size_t i = 0; i < NBUILTIN && err == NULL; i++) {
    redact_pattern *p = &shared_builtin.builtin[i];
    if (compile_code(builtin_patterns[i].name, builtin_patterns[i].regex, &p->code, &pairs, &err) == 0) {
      p->name = (char *) builtin_patterns[i].name;
      p->mask_group = mask_group_of(p->code);
      if (pairs > shared_builtin.pairs)
        shared_builtin.pairs = pairs;
    }
  }
  if (err == NULL
      && compile_code("pem-private-key-end", "-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----",
                      &shared_builtin.pem_end, &pairs, &err)
             == 0
      && pairs > shared_builtin.pairs)
    shared_builtin.pairs = pairs;
  if (err != NULL)
    snprintf(shared_builtin.failed, sizeof shared_builtin.failed, "%s", err->msg ? err->msg : "out of memory");
  berth_error_free(err);
}

berth_secrets *
berth_secrets_new(size_t min_len, berth_error **err)
{
  berth_secrets *s = calloc(1, sizeof *s);
  if (s == NULL) {
    berth_error_set(err, BERTH_EINTERNAL, "create secret set: out of memory");
    return NULL;
  }
  s->min_len = min_len ? min_len : BERTH_REDACT_DEFAULT_MIN_LEN;
  s->use_builtin = true;
  s->gen = 1;
  s->mctx = pcre2_match_context_create(NULL);
  if (s->mctx == NULL)
    goto oom;
  /* Bounds the work of one match, so a pathological admin pattern cannot stall a stream (no match then). */
  pcre2_set_match_limit(s->mctx, 1000000);
  pcre2_set_depth_limit(s->mctx, 10000);
  pthread_once(&shared_builtin.once, compile_builtin);
  if (shared_builtin.failed[0] != '\0') {
    berth_error_set(err, BERTH_EINTERNAL, "%s", shared_builtin.failed);
    goto fail;
  }
  memcpy(s->builtin, shared_builtin.builtin, sizeof shared_builtin.builtin);
  s->nbuiltin = NBUILTIN;
  s->pem_end = shared_builtin.pem_end;
  if (set_match_pairs(s, shared_builtin.pairs) < 0)
    goto oom;
  return s;
oom:
  berth_error_set(err, BERTH_EINTERNAL, "create secret set: out of memory");
fail:
  berth_secrets_free(s);
  return NULL;
}

void
berth_secrets_mark_incomplete(berth_secrets *s)
{
  if (s != NULL)
    s->incomplete = true;
}

bool
berth_secrets_incomplete(const berth_secrets *s)
{
  return s != NULL && s->incomplete;
}

void
berth_secrets_free(berth_secrets *s)
{
  if (s == NULL)
    return;
  for (size_t i = 0; i < s->nlits; i++)
    free(s->lit[i]);
  free(s->lit);
  free(s->lit_len);
  free(s->hash);
  free(s->pfx);
  /* the built-in patterns are shared (shared_builtin) */
  for (size_t i = 0; i < s->nadmin; i++) {
    free(s->admin[i].name);
    pcre2_code_free(s->admin[i].code);
  }
  free(s->admin);
  pcre2_match_data_free(s->md);
  pcre2_match_context_free(s->mctx);
  db_release(s->dbref);
  free(s);
}

size_t
berth_secrets_literal_count(const berth_secrets *s)
{
  return s->nlits;
}

static size_t
hash_bytes(const char *p, size_t len)
{
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char) p[i];
    h *= 1099511628211ULL;
  }
  return (size_t) h;
}

static int
hash_grow(berth_secrets *s)
{
  size_t cap = s->hash_cap ? s->hash_cap * 2 : 256;
  size_t *h = calloc(cap, sizeof *h);
  if (h == NULL)
    return -1;
  for (size_t i = 0; i < s->nlits; i++) {
    size_t j = hash_bytes(s->lit[i], s->lit_len[i]) & (cap - 1);
    while (h[j] != 0)
      j = (j + 1) & (cap - 1);
    h[j] = i + 1;
  }
  free(s->hash);
  s->hash = h;
  s->hash_cap = cap;
  return 0;
}

/* ---- prefixes: what may be held back ----
 * A polynomial hash H(b0..bk-1) = sum bi * B^(k-1-i) (mod 2^64) can be extended at either end: forward for the
 * prefixes of a literal (H = H*B + c), backward for the suffixes of the output seen so far (H = c*B^(k-1) + H). A hit
 * is confirmed with memcmp, so a collision costs time, never a wrong answer. */
#define PFX_B 0x100000001b3ULL

struct redact_prefix {
  uint64_t h;
  uint32_t len; /* 0: empty slot */
  uint32_t id;  /* the literal it is a prefix of */
};

static size_t
pfx_slot(uint64_t h, size_t len, size_t cap)
{
  uint64_t k = h ^ ((uint64_t) len * 0x9e3779b97f4a7c15ULL);
  k ^= k >> 29;
  return (size_t) k & (cap - 1);
}

static bool
pfx_find(const berth_secrets *s, uint64_t h, const char *p, size_t len)
{
  if (s->pfx_cap == 0)
    return false;
  for (size_t j = pfx_slot(h, len, s->pfx_cap); s->pfx[j].len != 0; j = (j + 1) & (s->pfx_cap - 1))
    if (s->pfx[j].h == h && s->pfx[j].len == len && memcmp(s->lit[s->pfx[j].id], p, len) == 0)
      return true;
  return false;
}

static void
pfx_put(struct redact_prefix *t, size_t cap, struct redact_prefix e)
{
  size_t j = pfx_slot(e.h, e.len, cap);
  while (t[j].len != 0)
    j = (j + 1) & (cap - 1);
  t[j] = e;
}

/* Registers the proper prefixes of literal `id` (its full form is a match, found by the matcher). */
static int
pfx_add_literal(berth_secrets *s, size_t id)
{
  const char *p = s->lit[id];
  size_t len = s->lit_len[id];
  if (len > UINT32_MAX || id > UINT32_MAX)
    return -1;
  if ((s->pfx_n + len) * 2 > s->pfx_cap) {
    size_t cap = s->pfx_cap ? s->pfx_cap : 1024;
    while ((s->pfx_n + len) * 2 > cap)
      cap *= 2;
    struct redact_prefix *t = calloc(cap, sizeof *t);
    if (t == NULL)
      return -1;
    for (size_t i = 0; i < s->pfx_cap; i++)
      if (s->pfx[i].len != 0)
        pfx_put(t, cap, s->pfx[i]);
    free(s->pfx);
    s->pfx = t;
    s->pfx_cap = cap;
  }
  uint64_t h = 0;
  for (size_t k = 1; k < len; k++) {
    h = h * PFX_B + (unsigned char) p[k - 1];
    if (pfx_find(s, h, p, k))
      continue; /* the same bytes begin an earlier literal */
    pfx_put(s->pfx, s->pfx_cap, (struct redact_prefix){ h, (uint32_t) k, (uint32_t) id });
    s->pfx_n++;
  }
  return 0;
}

/* Derived forms (encodings, lines) of a very short value would match ordinary text: they need at least this many
 * bytes even when an admin lowers the minimum length. */
#define DERIVED_MIN 4

/* Adds one literal unless it is too short or already known. Returns 0, or -1 when out of memory. */
static int
add_literal(berth_secrets *s, const char *p, size_t len, bool derived)
{
  if (len < s->min_len || len == 0 || (derived && len < DERIVED_MIN))
    return 0;
  size_t nul = 0;
  while (nul < len && p[nul] == 0)
    nul++;
  if (nul == len)
    return 0; /* all NUL: not expressible for the matcher (the raw value is refused in add_value) */
  if ((s->nlits + 1) * 2 > s->hash_cap && hash_grow(s) < 0)
    return -1;
  size_t j = hash_bytes(p, len) & (s->hash_cap - 1);
  for (; s->hash[j] != 0; j = (j + 1) & (s->hash_cap - 1)) {
    size_t k = s->hash[j] - 1;
    if (s->lit_len[k] == len && memcmp(s->lit[k], p, len) == 0)
      return 0;
  }
  if (s->nlits == s->lits_cap) {
    size_t cap = s->lits_cap ? s->lits_cap * 2 : 64;
    char **l = realloc(s->lit, cap * sizeof *l);
    if (l == NULL)
      return -1;
    s->lit = l;
    size_t *ll = realloc(s->lit_len, cap * sizeof *ll);
    if (ll == NULL)
      return -1;
    s->lit_len = ll;
    s->lits_cap = cap;
  }
  char *copy = malloc(len);
  if (copy == NULL)
    return -1;
  memcpy(copy, p, len);
  s->lit[s->nlits] = copy;
  s->lit_len[s->nlits] = len;
  if (pfx_add_literal(s, s->nlits) < 0) {
    free(copy);
    return -1;
  }
  s->hash[j] = ++s->nlits;
  if (len > s->max_lit_len)
    s->max_lit_len = len;
  s->gen++;
  return 0;
}

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The base64 characters that depend only on the value when it is preceded by `align` (0-2) other bytes in the
 * encoded text: found inside any longer base64 text (e.g. base64("user:" + value)) whatever surrounds it. */
static int
add_base64_core(berth_secrets *s, const unsigned char *v, size_t len, size_t align)
{
  size_t bits = 8 * (align + len);
  size_t first = (8 * align + 5) / 6, end = bits / 6;
  if (end <= first)
    return 0;
  char *out = malloc(end - first);
  if (out == NULL)
    return -1;
  for (size_t j = first; j < end; j++) {
    size_t bit = 6 * j - 8 * align; /* bit offset inside the value */
    size_t byte = bit / 8, off = bit % 8;
    unsigned w = (unsigned) v[byte] << 8 | (byte + 1 < len ? v[byte + 1] : 0);
    out[j - first] = b64_alphabet[(w >> (10 - off)) & 63];
  }
  int rc = add_literal(s, out, end - first, true);
  free(out);
  return rc;
}

/* The standalone base64 of the value, with padding (what `base64 <<<$SECRET`-style output shows). */
static int
add_base64_full(berth_secrets *s, const unsigned char *v, size_t len)
{
  char *out = malloc((len + 2) / 3 * 4 + 1);
  if (out == NULL)
    return -1;
  size_t o = 0;
  for (size_t i = 0; i < len; i += 3) {
    unsigned w = (unsigned) v[i] << 16 | (i + 1 < len ? (unsigned) v[i + 1] << 8 : 0) | (i + 2 < len ? v[i + 2] : 0);
    out[o++] = b64_alphabet[(w >> 18) & 63];
    out[o++] = b64_alphabet[(w >> 12) & 63];
    out[o++] = i + 1 < len ? b64_alphabet[(w >> 6) & 63] : '=';
    out[o++] = i + 2 < len ? b64_alphabet[w & 63] : '=';
  }
  int rc = add_literal(s, out, o, true);
  free(out);
  return rc;
}

/* RFC 3986 percent-encoding of everything but unreserved characters (as encodeURIComponent / EscapeDataString). */
static int
add_url_encoded(berth_secrets *s, const unsigned char *v, size_t len)
{
  static const char hex[] = "0123456789ABCDEF";
  char *out = malloc(3 * len);
  if (out == NULL)
    return -1;
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = v[i];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
        || c == '~') {
      out[o++] = (char) c;
    } else {
      out[o++] = '%';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  int rc = add_literal(s, out, o, true);
  free(out);
  return rc;
}

/* The value as it appears inside a JSON string. */
static int
add_json_escaped(berth_secrets *s, const unsigned char *v, size_t len)
{
  char *out = malloc(6 * len + 1); /* + snprintf's NUL */
  if (out == NULL)
    return -1;
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = v[i];
    const char *esc = NULL;
    switch (c) {
    case '"':
      esc = "\\\"";
      break;
    case '\\':
      esc = "\\\\";
      break;
    case '\n':
      esc = "\\n";
      break;
    case '\r':
      esc = "\\r";
      break;
    case '\t':
      esc = "\\t";
      break;
    case '\b':
      esc = "\\b";
      break;
    case '\f':
      esc = "\\f";
      break;
    default:
      break;
    }
    if (esc != NULL) {
      memcpy(out + o, esc, 2);
      o += 2;
    } else if (c < 0x20 || c == 0x7f) {
      o += (size_t) snprintf(out + o, 7, "\\u%04x", c);
    } else {
      out[o++] = (char) c;
    }
  }
  int rc = add_literal(s, out, o, true);
  free(out);
  return rc;
}

static bool
is_space(unsigned char c)
{
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Each line of a multi-line value that can stand on its own: long enough, and not PEM armour (`-----END ...`) that
 * every key shares. Short lines (`{`, `}`) would mask unrelated output. */
static int
add_lines(berth_secrets *s, const char *v, size_t len)
{
  size_t floor = s->min_len > 8 ? s->min_len : 8;
  const char *p = v, *end = v + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t) (end - p));
    const char *le = nl ? nl : end;
    const char *a = p, *b = le;
    while (a < b && is_space((unsigned char) *a))
      a++;
    while (b > a && is_space((unsigned char) b[-1]))
      b--;
    if ((size_t) (b - a) >= floor && !((size_t) (b - a) >= 5 && memcmp(a, "-----", 5) == 0))
      if (add_literal(s, a, (size_t) (b - a), true) < 0)
        return -1;
    p = nl ? nl + 1 : end;
  }
  return 0;
}

static int
add_forms(berth_secrets *s, const char *value, size_t len)
{
  const unsigned char *v = (const unsigned char *) value;
  if (add_literal(s, value, len, false) < 0)
    return -1;
  for (size_t a = 0; a < 3; a++)
    if (add_base64_core(s, v, len, a) < 0)
      return -1;
  /* The value at the end of a base64 text, after 2 or 1 other bytes of its group: the encoding of the rest of the
   * value from its next group boundary, padding included (so no trailing character is left). */
  if (len > 2 && (add_base64_full(s, v + 1, len - 1) < 0 || add_base64_full(s, v + 2, len - 2) < 0))
    return -1;
  if (add_base64_full(s, v, len) < 0 || add_url_encoded(s, v, len) < 0 || add_json_escaped(s, v, len) < 0)
    return -1;
  return 0;
}

int
berth_secrets_add_value(berth_secrets *s, const char *name, const char *value, size_t len, berth_error **err)
{
  if (len > BERTH_REDACT_MAX_VALUE)
    return berth_error_set(err, BERTH_EINVAL, "add secret `%s`: value is longer than %d bytes", name,
                           BERTH_REDACT_MAX_VALUE);
  if (len < s->min_len)
    return 1;
  size_t nul = 0;
  while (nul < len && value[nul] == 0)
    nul++;
  if (nul == len)
    return berth_error_set(err, BERTH_EINVAL, "add secret `%s`: value is only NUL bytes", name);
  if (add_forms(s, value, len) < 0)
    goto oom;
  /* A value read from a file usually ends with a newline that `echo "$(cat f)"` and friends drop. */
  size_t t = len;
  while (t > 0 && (value[t - 1] == '\n' || value[t - 1] == '\r'))
    t--;
  if (t != len && t >= s->min_len && add_forms(s, value, t) < 0)
    goto oom;
  if (memchr(value, '\n', len) != NULL && add_lines(s, value, len) < 0)
    goto oom;
  return 0;
oom:
  return berth_error_set(err, BERTH_EINTERNAL, "add secret `%s`: out of memory", name);
}

int
berth_secrets_add_pattern(berth_secrets *s, const char *name, const char *pcre2_pattern, berth_error **err)
{
  if (s->nadmin == s->admin_cap) {
    size_t cap = s->admin_cap ? s->admin_cap * 2 : 8;
    redact_pattern *a = realloc(s->admin, cap * sizeof *a);
    if (a == NULL)
      return berth_error_set(err, BERTH_EINTERNAL, "add redaction pattern `%s`: out of memory", name);
    s->admin = a;
    s->admin_cap = cap;
  }
  redact_pattern p = { 0 };
  int rc = compile_pattern(s, &p, name, pcre2_pattern, err);
  if (rc < 0)
    return rc;
  s->admin[s->nadmin++] = p;
  s->gen++;
  return 0;
}

int
berth_secrets_use_builtin(berth_secrets *s, bool on, berth_error **err)
{
  (void) err;
  if (s->use_builtin != on) {
    s->use_builtin = on;
    s->gen++;
  }
  return 0;
}

static size_t
anchor_hold_len(const char *p, size_t n)
{
  size_t best = 0;
  for (size_t i = 0; i < NANCHORS; i++) {
    const char *a = builtin_anchors[i].lit;
    size_t alen = strlen(a);
    for (size_t k = alen - 1 < n ? alen - 1 : n; k > best; k--) {
      const char *suf = p + n - k;
      if (builtin_anchors[i].caseless ? strncasecmp(suf, a, k) == 0 : memcmp(suf, a, k) == 0) {
        best = k;
        break;
      }
    }
  }
  return best;
}

size_t
redact_hold_len(const berth_secrets *s, const char *p, size_t n)
{
  size_t best = s->use_builtin ? anchor_hold_len(p, n) : 0;
  size_t max = s->max_lit_len > 0 ? s->max_lit_len - 1 : 0;
  if (max > n)
    max = n;
  uint64_t h = 0, pw = 1;
  for (size_t k = 1; k <= max; k++) {
    h += (unsigned char) p[n - k] * pw;
    pw *= PFX_B;
    if (k > best && pfx_find(s, h, p + n - k, k))
      best = k;
  }
  return best;
}

/* Compiled literal databases, shared between sets with the same strings: a process that makes a set per request
 * (the server shows commands and notes with the stack's secrets masked) compiles each distinct set once. Keyed by a
 * BLAKE2b-256 digest of what is compiled (the strings, their flags and ids, in order), so no value is kept in clear
 * beside the database itself; an entry unused for DB_CACHE_IDLE_S is dropped, and at most DB_CACHE_MAX are kept. */
#define DB_CACHE_MAX 32
#define DB_CACHE_IDLE_S 300

struct redact_dbref {
  unsigned char key[32];
  hs_database_t *db;
  unsigned refs;
  bool cached; /* in db_cache (else freed with its last reference) */
  int64_t idle_since;
};

static pthread_mutex_t db_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static redact_dbref *db_cache[DB_CACHE_MAX];

static int64_t
mono_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec;
}

static void
db_release(redact_dbref *r)
{
  if (r == NULL)
    return;
  pthread_mutex_lock(&db_cache_lock);
  bool gone = --r->refs == 0 && !r->cached;
  if (r->refs == 0)
    r->idle_since = mono_s();
  pthread_mutex_unlock(&db_cache_lock);
  if (gone) {
    hs_free_database(r->db);
    free(r);
  }
}

/* Drops idle entries past their time; with the lock held. Returns a free slot's index, or -1. */
static int
db_cache_sweep(int64_t now)
{
  int free_slot = -1, lru = -1;
  for (int i = 0; i < DB_CACHE_MAX; i++) {
    redact_dbref *e = db_cache[i];
    if (e != NULL && e->refs == 0 && now - e->idle_since >= DB_CACHE_IDLE_S) {
      hs_free_database(e->db);
      free(e);
      db_cache[i] = e = NULL;
    }
    if (e == NULL && free_slot < 0)
      free_slot = i;
    if (e != NULL && e->refs == 0 && (lru < 0 || e->idle_since < db_cache[lru]->idle_since))
      lru = i;
  }
  if (free_slot < 0 && lru >= 0) { /* full: the longest idle one goes */
    hs_free_database(db_cache[lru]->db);
    free(db_cache[lru]);
    db_cache[lru] = NULL;
    free_slot = lru;
  }
  return free_slot;
}

static redact_dbref *
db_cache_find(const unsigned char key[32])
{
  redact_dbref *hit = NULL;
  pthread_mutex_lock(&db_cache_lock);
  for (int i = 0; i < DB_CACHE_MAX && hit == NULL; i++)
    if (db_cache[i] != NULL && memcmp(db_cache[i]->key, key, 32) == 0) {
      hit = db_cache[i];
      hit->refs++;
    }
  pthread_mutex_unlock(&db_cache_lock);
  return hit;
}

/* Takes db; returns a reference to it (or to the same strings' database another thread cached meanwhile), NULL if
 * out of memory (db freed). */
static redact_dbref *
db_cache_put(const unsigned char key[32], hs_database_t *db)
{
  redact_dbref *r = calloc(1, sizeof *r);
  if (r == NULL) {
    hs_free_database(db);
    return NULL;
  }
  memcpy(r->key, key, 32);
  r->db = db;
  r->refs = 1;
  pthread_mutex_lock(&db_cache_lock);
  redact_dbref *other = NULL;
  for (int i = 0; i < DB_CACHE_MAX && other == NULL; i++)
    if (db_cache[i] != NULL && memcmp(db_cache[i]->key, key, 32) == 0)
      other = db_cache[i];
  if (other != NULL)
    other->refs++;
  else {
    int slot = db_cache_sweep(mono_s());
    if (slot >= 0) {
      r->cached = true;
      db_cache[slot] = r;
    }
  }
  pthread_mutex_unlock(&db_cache_lock);
  if (other != NULL) {
    hs_free_database(db);
    free(r);
    return other;
  }
  return r;
}

int
redact_secrets_db(berth_secrets *s, hs_database_t **db, size_t *maxlen, berth_error **err)
{
  if (s->db_gen == s->gen) {
    *db = s->db;
    *maxlen = s->db_maxlen;
    return 0;
  }
  size_t n = s->nlits + (s->use_builtin ? NANCHORS : 0);
  db_release(s->dbref);
  s->dbref = NULL;
  s->db = NULL;
  s->db_maxlen = 0;
  if (n > 0) {
    const char **expr = malloc(n * sizeof *expr);
    size_t *lens = malloc(n * sizeof *lens);
    unsigned *flags = malloc(n * sizeof *flags), *ids = malloc(n * sizeof *ids);
    if (expr == NULL || lens == NULL || flags == NULL || ids == NULL) {
      free(expr);
      free(lens);
      free(flags);
      free(ids);
      return berth_error_set(err, BERTH_EINTERNAL, "compile secret matcher: out of memory");
    }
    size_t k = 0, maxl = 0;
    for (size_t i = 0; i < s->nlits; i++) {
      size_t off = redact_lit_off(s, i);
      if (off == s->lit_len[i])
        continue;
      expr[k] = s->lit[i] + off;
      lens[k] = s->lit_len[i] - off;
      flags[k] = 0;
      ids[k] = (unsigned) i;
      if (s->lit_len[i] > maxl)
        maxl = s->lit_len[i];
      k++;
    }
    for (size_t i = 0; s->use_builtin && i < NANCHORS; i++, k++) {
      /* anchors */
      expr[k] = builtin_anchors[i].lit;
      lens[k] = strlen(builtin_anchors[i].lit);
      flags[k] = builtin_anchors[i].caseless ? HS_FLAG_CASELESS : 0;
      ids[k] = REDACT_ANCHOR_BIT | builtin_anchors[i].pat;
      if (lens[k] > maxl)
        maxl = lens[k];
    }
    hs_compile_error_t *cerr = NULL;
    n = k;
    unsigned char key[32];
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, sizeof key);
    for (size_t j = 0; j < n; j++) {
      uint64_t head[3] = { lens[j], flags[j], ids[j] };
      crypto_generichash_update(&h, (const unsigned char *) head, sizeof head);
      crypto_generichash_update(&h, (const unsigned char *) expr[j], lens[j]);
    }
    crypto_generichash_final(&h, key, sizeof key);
    sodium_memzero(&h, sizeof h);
    hs_database_t *built = NULL;
    hs_error_t rc = HS_SUCCESS;
    if (n > 0 && (s->dbref = db_cache_find(key)) == NULL) {
      rc = hs_compile_lit_multi(expr, flags, ids, lens, (unsigned) n, HS_MODE_BLOCK, NULL, &built, &cerr);
      if (rc == HS_SUCCESS && (s->dbref = db_cache_put(key, built)) == NULL)
        rc = HS_NOMEM;
    }
    free(expr);
    free(lens);
    free(flags);
    free(ids);
    if (rc != HS_SUCCESS) {
      int r = berth_error_set(err, BERTH_EINTERNAL, "compile secret matcher (%zu strings): %s", n,
                              cerr && cerr->message ? cerr->message : "out of memory");
      hs_free_compile_error(cerr);
      return r;
    }
    s->db = s->dbref ? s->dbref->db : NULL;
    s->db_maxlen = maxl;
  }
  s->db_gen = s->gen;
  *db = s->db;
  *maxlen = s->db_maxlen;
  return 0;
}
