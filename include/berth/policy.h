/* Task policies: admin rules, added from JSON files, that allow or deny a task before it is queued.
 *
 * A rule (docs/governance.md "Task policies"; a file holds one rule object or an array of them):
 *   name      required, [A-Za-z0-9][A-Za-z0-9_.-]{0,62}, unique in the store (adding a rule again replaces it)
 *   command   PCRE2 pattern searched in the task's command (anchor it with ^ yourself)
 *   actors    array of actor names (exact)
 *   roles     array of "reader" | "writer" | "admin"
 *   stacks    array of stack name globs (fnmatch: * ? [...])
 *   labels    array of label globs; matches when the stack has at least one label matching one of them
 *   when      {"weekdays": ["mon".."sun"], "hours": "09-17" | ["09-12", "13-17"]}, UTC; "22-06" wraps midnight;
 *             an hour range "A-B" covers A:00 up to, not including, B:00
 *   decision  required, "deny" | "allow"
 *   message   the deny message (default "denied by policy `NAME`")
 * Absent conditions match everything; every present condition must match; any matching deny wins over allow;
 * with no matching deny the task is allowed. Unknown fields are errors (a typo must not silently widen a rule).
 *
 * Ownership: results and JSON belong to the caller (berth_policy_result_clear, cJSON_Delete). Store functions join a
 * transaction the caller has begun (berth_store_begin), so a change and its audit record can commit together. */
#ifndef BERTH_POLICY_H
#define BERTH_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/error.h"
#include "berth/store.h"

struct cJSON;

/* Largest policy file / JSON text accepted (bytes). */
#define BERTH_POLICY_MAX_TEXT (1024 * 1024)
/* Most rules one text may hold. */
#define BERTH_POLICY_MAX_RULES 1000

typedef struct berth_policy_input {
  const char *stack;
  const char *const *labels; /* the stack's labels */
  size_t n_labels;
  const char *command; /* the joined command, as run by sh -c */
  const char *actor;
  const char *role; /* NULL role = local owner, counts as "admin" */
  bool identity;    /* the task carries a workload identity (its stack has OIDC audiences or credential helpers) */
  int64_t now_ms;   /* 0 = berth_now_ms() */
} berth_policy_input;

typedef struct berth_policy_result {
  bool denied;
  char *message;  /* the deny message of the deciding rule; NULL when allowed */
  char *rule;     /* deciding rule name: the first matching deny, else the first matching allow, else NULL */
  char **matched; /* every matching rule, in store order, "name (deny)" / "name (allow)" */
  size_t n_matched;
} berth_policy_result;

void berth_policy_result_clear(berth_policy_result *r);
/* `berth policy test` and POST /v1/policies/test: {"decision": "allow"|"deny", "rule", "message", "matched": [...]}.
 * A new object the caller owns (NULL only on out of memory). */
struct cJSON *berth_policy_result_to_json(const berth_policy_result *r);
/* The same record for a task of the stored stack `stack` (its labels, and whether it asks for an identity, come from
 * the store) running command as actor with role (NULL: the store's owner) at now_ms. Records nothing. NULL with
 * *err (BERTH_ENOTFOUND for a missing stack) on failure. */
struct cJSON *berth_policy_test_json(berth_store *st, const char *stack, const char *command, const char *actor,
                                     const char *role, int64_t now_ms, berth_error **err);

/* Parses and validates a policy text (one rule or an array) without a store; *n_rules gets the number of rules.
 * BERTH_EINVAL with one line naming the rule and the field, and for a bad regex its offset. */
int berth_policy_validate_json(const char *json_text, size_t *n_rules, berth_error **err);
/* Evaluates in against the rules of a policy text (no store); for tests, fuzzing and `policy test` dry runs. */
int berth_policy_evaluate_json(const char *json_text, const berth_policy_input *in, berth_policy_result *out,
                               berth_error **err);

/* Validates every rule first, then stores them all in one transaction (a rule with an existing name replaces it).
 * *added (may be NULL) gets the number of rules stored. */
int berth_policy_add_json(berth_store *st, const char *json_text, const char *actor, size_t *added, berth_error **err);
/* BERTH_ENOTFOUND "no policy `x`". */
int berth_policy_remove(berth_store *st, const char *name, berth_error **err);
/* {"policies":[{"name","rule":{...},"actor","created_at"}]}, in store order. NULL on error. */
struct cJSON *berth_policy_list_json(berth_store *st, berth_error **err);
/* Evaluates in against the stored rules. A stored rule that no longer compiles is an error (BERTH_EINTERNAL),
 * never skipped. */
int berth_policy_evaluate(berth_store *st, const berth_policy_input *in, berth_policy_result *out, berth_error **err);

#endif
