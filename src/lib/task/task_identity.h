/* Private to src/lib/task/: a task's workload identity, prepared in PREPARING before its container exists. */
#ifndef BERTH_TASK_IDENTITY_H
#define BERTH_TASK_IDENTITY_H

#include "berth/buf.h"
#include "berth/config.h"
#include "berth/redactor.h"
#include "berth/store.h"

/* Where the token is inside the container: a memory filesystem, never the image's disk. */
#define BERTH_OIDC_TOKEN_DIR "/dev/shm/berth"
#define BERTH_OIDC_TOKEN_PATH "/dev/shm/berth/oidc-token"

typedef struct task_identity {
  char *token;   /* the task's OIDC token, or NULL when the stack asks for none */
  berth_kv *env; /* the credential helpers' variables, in the order given */
  size_t n_env;
  berth_buf notes; /* the helpers' stderr, unredacted: the runner writes it through its redactor */
} task_identity;

/* Mints the token (when s has OIDC audiences) and runs s's credential helpers, registering every value with
 * secrets before returning, so nothing of them can be printed unmasked. On failure, one line naming the cause (no
 * issuer configured, a helper that failed, timed out, printed garbage or expired credentials). */
int task_identity_prepare(berth_store *st, const berth_config *cfg, const berth_stack *s, const berth_task *t,
                          berth_secrets *secrets, task_identity *out, berth_error **err);
void task_identity_clear(task_identity *id);

/* The issuer URL tasks' tokens name: BERTH_OIDC_ISSUER (set by `berth serve --public-url`), else config.json's
 * oidc_issuer; NULL when neither is set. */
const char *task_identity_issuer(const berth_config *cfg);

#endif
