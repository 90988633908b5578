/* Credential helpers: an admin's host command (config.json "credential_helpers") that a task runs before its
 * initialization to get short-lived credentials. The helper reads the task's context as JSON on stdin and prints
 * {"env": {"NAME": "value", ...}, "expires_at": "2026-12-02T18:00:00Z"}; the values become secret env of that task
 * only (masked, never stored). Anything else fails the task with one line. See docs/credentials.md. */
#ifndef BERTH_CREDHELPER_H
#define BERTH_CREDHELPER_H

#include <stdint.h>

#include "berth/buf.h"
#include "berth/config.h"
#include "berth/error.h"
#include "berth/store.h"

#define BERTH_CRED_OUTPUT_MAX (1024 * 1024) /* what a helper may print on stdout */
#define BERTH_CRED_STDERR_MAX (64 * 1024)   /* what of its stderr is kept for the task's log */

typedef struct berth_cred_result {
  berth_kv *env; /* secret values: the caller registers them with its redactor before printing anything */
  size_t n_env;
  int64_t expires_at; /* unix ms */
  berth_buf err_text; /* the helper's stderr (unredacted: pass it through the task's redactor) */
} berth_cred_result;

/* Runs helper h with input on stdin, within its timeout. On failure (could not start, non-zero exit, killed, timed
 * out, output that is not the expected JSON, credentials already expired at now_ms) returns BERTH_EINVAL with one
 * line naming the helper; the line never contains what the helper printed on stdout.
 * out->err_text is filled in either case. */
int berth_cred_helper_run(const berth_cred_helper *h, const char *input, int64_t now_ms, berth_cred_result *out,
                          berth_error **err);
void berth_cred_result_clear(berth_cred_result *r);

/* For stack create/update: the helper exists in cfg and its command is an executable file. */
int berth_cred_helper_check(const berth_config *cfg, const char *name, berth_error **err);

#endif
