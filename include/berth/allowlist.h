/* The image allowlist: admin rules (allow or deny, glob patterns) that decide which images stacks may run.
 *
 * Patterns are matched against the NORMALIZED reference (`ubuntu` = `docker.io/library/ubuntu:latest`) and are
 * normalized the same way when added, so `ubuntu`, `library/ubuntu:latest` and `docker.io/library/ubuntu:latest` are
 * one rule. A pattern has up to three parts, matched separately: NAME[:TAG][@DIGEST].
 *   NAME   `*` `?` `[...]` match within one path segment (never `/`); a whole segment `**` matches any number of
 *          segments (zero included). A first segment with `.` or `:` or equal to `localhost` is a registry host
 *          (ports allowed); otherwise `docker.io/` is prefixed, and `docker.io/library/` for a one-segment name.
 *          A pattern whose first segment is `**` spans every registry and gets no prefix.
 *   TAG    a glob; omitted means `latest`, except after a trailing `**` segment, which matches every tag and digest.
 *          The tag glob `*` also matches a reference that has only a digest.
 *   DIGEST literal (`sha256:<64 hex>`): the pattern then matches only that digest, whatever the tag.
 * A deny match ALWAYS beats an allow match. With no rules at all, only the default runner image is allowed.
 * A reference with both a tag and a digest runs by digest: an allow pattern with a specific tag does not vouch for
 * it (it needs the digest, or the tag glob `*`), while a deny pattern matching its written tag still denies it.
 * See docs/governance.md for the full table.
 *
 * Ownership: decision strings belong to the decision (berth_image_decision_clear); JSON results belong to the caller
 * (cJSON_Delete). Store functions create their table on first use and join a transaction the caller has begun
 * (berth_store_begin) instead of starting their own, so a change and its audit record can commit together. */
#ifndef BERTH_ALLOWLIST_H
#define BERTH_ALLOWLIST_H

#include <stdbool.h>
#include <stddef.h>

#include "berth/error.h"
#include "berth/store.h"

struct cJSON;

/* berth's default runner image: the only image allowed while the allowlist is empty. */
#define BERTH_ALLOWLIST_DEFAULT_IMAGE "berth/runner:latest"
/* Longest pattern accepted (bytes). */
#define BERTH_ALLOWLIST_PATTERN_MAX 512

typedef struct berth_image_decision {
  bool allowed;
  char *normalized; /* the normalized reference that was matched */
  char *pattern;    /* the deciding pattern (normalized), or NULL when decided by a default */
  char *kind;       /* "allow", "deny", or "default" (empty list, or no pattern matched) */
  char *reason;     /* one line, e.g. "image `docker.io/x/y:1` is not allowed (matched deny pattern
                       `docker.io/(any)/y(any)`)" */
} berth_image_decision;

void berth_image_decision_clear(berth_image_decision *d);
/* `berth image check` and GET /v1/images/check: {"ref", "allowed", "normalized", "pattern" (null when a default
 * decided), "kind", "reason"}. A new object the caller owns. */
struct cJSON *berth_image_decision_to_json(const char *ref, const berth_image_decision *d);

/* Normalizes a pattern (see above); BERTH_EINVAL with one line naming the pattern and the problem. Caller frees. */
char *berth_allowlist_normalize_pattern(const char *pattern, berth_error **err);

/* Pure matcher, for tests and for callers that hold the rules themselves: patterns[i] with kinds[i] ("allow" or
 * "deny"), in priority order (the first matching deny, else the first matching allow, decides). With n == 0 only
 * default_image (NULL: BERTH_ALLOWLIST_DEFAULT_IMAGE) is allowed. An invalid ref or pattern is BERTH_EINVAL. */
int berth_allowlist_decide(const char *const *patterns, const char *const *kinds, size_t n, const char *ref,
                           const char *default_image, berth_image_decision *out, berth_error **err);

/* Decides with the rules in the store (oldest first). */
int berth_allowlist_check(berth_store *st, const char *ref, berth_image_decision *out, berth_error **err);

/* Adds a rule (kind "allow" or "deny"); the pattern is normalized first. Returns 0 when added, 1 when the same rule
 * already exists (nothing changes), BERTH_EBUSY when the pattern exists with the other kind. */
int berth_allowlist_add(berth_store *st, const char *kind, const char *pattern, const char *actor, berth_error **err);
/* Removes the rule with this pattern (normalized first); BERTH_ENOTFOUND "no image rule `x`". */
int berth_allowlist_remove(berth_store *st, const char *pattern, berth_error **err);
/* {"rules":[{"pattern","kind","actor","created_at"}]}, oldest first. NULL on error. */
struct cJSON *berth_allowlist_list_json(berth_store *st, berth_error **err);
/* Number of rules in the store, or <0 on error. */
int berth_allowlist_count(berth_store *st, berth_error **err);

#endif
