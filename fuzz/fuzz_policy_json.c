/* Fuzz target: task policy JSON. Every input is validated; a valid policy is evaluated against a few tasks and the
 * result must be consistent: denied exactly when a matched rule is a deny, with a message and a deciding rule. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
evaluate(const char *text, const berth_policy_input *in)
{
  berth_policy_result r;
  berth_error *err = NULL;
  if (berth_policy_evaluate_json(text, in, &r, &err) < 0) {
    /* only a command pattern hitting PCRE2's match limit may fail a valid policy, and it denies (fail closed) */
    if (err->code != BERTH_EDENIED || strstr(err->msg, "could not match its command pattern") == NULL) {
      fprintf(stderr, "evaluate failed on a valid policy: %s\n", err->msg);
      abort();
    }
    berth_error_free(err);
    return;
  }
  bool any_deny = false;
  for (size_t i = 0; i < r.n_matched; i++) {
    size_t len = strlen(r.matched[i]);
    any_deny = any_deny || (len > 7 && strcmp(r.matched[i] + len - 7, " (deny)") == 0);
  }
  if (any_deny != r.denied || (r.denied && (r.message == NULL || r.rule == NULL)) || (!r.denied && r.message)) {
    fprintf(stderr, "inconsistent policy result (denied=%d, %zu matched)\n", r.denied, r.n_matched);
    abort();
  }
  berth_policy_result_clear(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size > 64 * 1024)
    return 0;
  char *text = malloc(size + 1);
  if (text == NULL)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  size_t n = 0;
  berth_error *err = NULL;
  if (berth_policy_validate_json(text, &n, &err) < 0) {
    if (err == NULL || err->msg == NULL || strchr(err->msg, '\n') != NULL)
      abort(); /* every refusal is one line */
    berth_error_free(err);
    free(text);
    return 0;
  }
  static const char *const labels[] = { "prod", "pci-dss" };
  berth_policy_input a
      = { "prod-db", labels, 2, "terraform destroy -auto-approve", "alice", "writer", 1714816800000LL };
  berth_policy_input b = { "dev", NULL, 0, "", "bob", NULL, 1714989600000LL };
  evaluate(text, &a);
  evaluate(text, &b);
  free(text);
  return 0;
}
