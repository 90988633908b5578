/* Fuzz target: image reference parsing, pattern normalization and allowlist decisions.
 * Input: the first line is a reference; every further line is a pattern, "-" prefixed for a deny rule.
 * Aborts when a property breaks: normalization is idempotent (for references and patterns); a decision on a valid
 * reference always succeeds with valid patterns; a deny of everything always wins; the reason names the pattern. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/allowlist.h"
#include "berth/image_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RULES 16

static void
check_ref_idempotent(const char *ref)
{
  berth_image_ref r, r2;
  berth_error *err = NULL;
  if (berth_image_ref_parse(ref, &r, &err) < 0) {
    berth_error_free(err);
    return;
  }
  char *s = berth_image_ref_string(&r);
  if (s == NULL || berth_image_ref_parse(s, &r2, &err) < 0) {
    fprintf(stderr, "normalized `%s` of `%s` does not parse\n", s ? s : "(null)", ref);
    abort();
  }
  char *s2 = berth_image_ref_string(&r2);
  if (s2 == NULL || strcmp(s, s2) != 0) {
    fprintf(stderr, "normalizing `%s` is not idempotent: `%s` then `%s`\n", ref, s, s2 ? s2 : "(null)");
    abort();
  }
  free(s);
  free(s2);
  berth_image_ref_clear(&r);
  berth_image_ref_clear(&r2);
}

static void
decide(const char **pats, const char **kinds, size_t n, const char *ref, bool want_denied)
{
  berth_image_decision d;
  berth_error *err = NULL;
  if (berth_allowlist_decide(pats, kinds, n, ref, NULL, &d, &err) < 0) {
    fprintf(stderr, "decide failed on a valid reference `%s`: %s\n", ref, err->msg);
    abort();
  }
  if ((want_denied && d.allowed) || (d.allowed && strcmp(d.kind, "deny") == 0)
      || (d.pattern != NULL && strstr(d.reason, d.pattern) == NULL)) {
    fprintf(stderr, "bad decision for `%s`: %s\n", ref, d.reason);
    abort();
  }
  berth_image_decision_clear(&d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size > 8192)
    return 0;
  char *text = malloc(size + 1);
  if (text == NULL)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  const char *pats[MAX_RULES + 1], *kinds[MAX_RULES + 1];
  char *norms[MAX_RULES];
  size_t n = 0;
  char *save = NULL;
  char *ref = strtok_r(text, "\n", &save);
  for (char *line = strtok_r(NULL, "\n", &save); line && n < MAX_RULES; line = strtok_r(NULL, "\n", &save)) {
    bool deny = line[0] == '-';
    const char *p = deny ? line + 1 : line;
    berth_error *err = NULL;
    char *norm = berth_allowlist_normalize_pattern(p, &err);
    if (norm == NULL) {
      berth_error_free(err);
      continue;
    }
    char *again = berth_allowlist_normalize_pattern(norm, &err);
    if (again == NULL || strcmp(again, norm) != 0) {
      fprintf(stderr, "pattern `%s` -> `%s` -> `%s`\n", p, norm, again ? again : err->msg);
      abort();
    }
    free(again);
    norms[n] = norm;
    pats[n] = norm;
    kinds[n] = deny ? "deny" : "allow";
    n++;
  }
  if (ref != NULL) {
    check_ref_idempotent(ref);
    berth_image_ref r;
    berth_error *err = NULL;
    if (berth_image_ref_parse(ref, &r, &err) == 0) {
      berth_image_ref_clear(&r);
      decide(pats, kinds, n, ref, false);
      pats[n] = "**:*"; /* deny everything: must win over any allow */
      kinds[n] = "deny";
      decide(pats, kinds, n + 1, ref, true);
    } else {
      berth_error_free(err);
    }
  }
  for (size_t i = 0; i < n; i++)
    free(norms[i]);
  free(text);
  return 0;
}
