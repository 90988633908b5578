/* A task's workload identity (task_identity.h): the OIDC token and the credential helpers' short-lived values. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "berth/credhelper.h"
#include "berth/oidc.h"
#include "berth/parse.h"
#include "task_identity.h"

const char *
task_identity_issuer(const berth_config *cfg)
{
  const char *e = getenv("BERTH_OIDC_ISSUER");
  if (e != NULL && *e != '\0')
    return e;
  return cfg->oidc_issuer;
}

static int
mint(berth_store *st, const berth_config *cfg, const berth_stack *s, const berth_task *t, char **out, berth_error **err)
{
  const char *issuer = task_identity_issuer(cfg);
  if (issuer == NULL)
    return berth_error_set(err, BERTH_EINVAL,
                           "stack `%s` asks for an OIDC token, but no issuer URL is set (config.json oidc_issuer, or "
                           "berth serve --public-url)",
                           s->name);
  int64_t now = berth_now_ms();
  berth_oidc_key key;
  int rc = berth_store_oidc_signing_key(st, NULL, now, &key, err);
  if (rc < 0)
    return rc;
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  berth_oidc_task claims = { .issuer = issuer,
                             .audiences = (const char *const *) s->oidc_audiences.v,
                             .n_audiences = s->oidc_audiences.n,
                             .stack = s->name,
                             .task_id = t->id,
                             .triggered_by = t->triggered_by ? t->triggered_by : t->actor,
                             .skip_init = t->skip_init,
                             .host = host,
                             .now_ms = now,
                             .ttl_ms = s->timeout_ms > 0 ? s->timeout_ms : BERTH_OIDC_MAX_TTL_MS };
  cJSON *c = berth_oidc_task_claims(&claims);
  *out = c ? berth_oidc_sign(&key, c, err) : NULL;
  cJSON_Delete(c);
  berth_oidc_key_clear(&key);
  if (*out == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "sign the task's OIDC token: out of memory");
  return 0;
}

/* The context a helper reads on stdin. */
static char *
helper_input(const berth_stack *s, const berth_task *t, const char *token)
{
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "task_id", t->id);
  cJSON_AddStringToObject(j, "stack", s->name);
  cJSON_AddStringToObject(j, "triggered_by", t->triggered_by ? t->triggered_by : t->actor);
  cJSON_AddStringToObject(j, "run_type", "TASK");
  cJSON_AddBoolToObject(j, "skip_init", t->skip_init);
  cJSON_AddNumberToObject(j, "timeout_ms", (double) s->timeout_ms);
  token ? cJSON_AddStringToObject(j, "oidc_token", token) : cJSON_AddNullToObject(j, "oidc_token");
  char *text = cJSON_PrintUnformatted(j);
  if (token != NULL) { /* the tree holds a copy of the token */
    cJSON *tk = cJSON_GetObjectItemCaseSensitive(j, "oidc_token");
    explicit_bzero(tk->valuestring, strlen(tk->valuestring));
  }
  cJSON_Delete(j);
  return text;
}

static int
run_helpers(const berth_config *cfg, const berth_stack *s, const berth_task *t, berth_secrets *secrets,
            task_identity *out, berth_error **err)
{
  char *input = helper_input(s, t, out->token);
  if (input == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < s->credentials.n; i++) {
    const berth_cred_helper *h = berth_config_cred_helper(cfg, s->credentials.v[i]);
    if (h == NULL) {
      rc = berth_error_set(err, BERTH_EINVAL, "credential helper `%s` of stack `%s` is not defined in config.json",
                           s->credentials.v[i], s->name);
      break;
    }
    berth_cred_result res;
    rc = berth_cred_helper_run(h, input, berth_now_ms(), &res, err);
    /* its values are secrets before anything of it is printed, its stderr included */
    for (size_t k = 0; k < res.n_env; k++) {
      berth_error *ae = NULL;
      const char *v = res.env[k].value;
      int added = berth_secrets_add_value(secrets, res.env[k].key, v, strlen(v), &ae);
      if (added < 0 && rc == 0)
        rc = berth_error_set(err, BERTH_EINVAL, "credential helper `%s`: variable %s: %s", h->name, res.env[k].key,
                             ae ? ae->msg : "cannot be masked");
      else if (added == 1) /* as for the stack's own secrets: said, by name */
        berth_buf_printf(&out->notes,
                         "warning: secret variable %s from credential helper %s is too short to be masked"
                         " in the output\n",
                         res.env[k].key, h->name);
      berth_error_free(ae);
      if (rc == 0 && berth_kv_set(&out->env, &out->n_env, res.env[k].key, v) < 0)
        rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    }
    if (res.err_text.len > 0) {
      /* stderr cut at its cap ends at its last whole line: a value cut there could not be masked whole */
      size_t n = res.err_text.len;
      if (res.err_text.len >= res.err_text.max)
        while (n > 0 && res.err_text.data[n - 1] != '\n')
          n--;
      berth_buf_printf(&out->notes, "credential helper %s says:\n", h->name);
      berth_buf_append(&out->notes, res.err_text.data, n);
      if (n > 0 && res.err_text.data[n - 1] != '\n')
        berth_buf_append(&out->notes, "\n", 1);
      if (n < res.err_text.len)
        berth_buf_printf(&out->notes, "(credential helper %s: the rest of its stderr is not shown)\n", h->name);
    }
    berth_cred_result_clear(&res);
  }
  explicit_bzero(input, strlen(input));
  free(input);
  return rc;
}

int
task_identity_prepare(berth_store *st, const berth_config *cfg, const berth_stack *s, const berth_task *t,
                      berth_secrets *secrets, task_identity *out, berth_error **err)
{
  memset(out, 0, sizeof *out);
  berth_buf_init(&out->notes, 2 * BERTH_CRED_STDERR_MAX);
  int rc = 0;
  if (s->oidc_audiences.n > 0) {
    rc = mint(st, cfg, s, t, &out->token, err);
    if (rc == 0) {
      berth_error *ae = NULL;
      rc = berth_secrets_add_value(secrets, "OIDC token", out->token, strlen(out->token), &ae) < 0
               ? berth_error_set(err, BERTH_EINTERNAL, "mask the OIDC token: %s", ae ? ae->msg : "error")
               : 0;
      berth_error_free(ae);
    }
  }
  if (rc == 0 && s->credentials.n > 0)
    rc = run_helpers(cfg, s, t, secrets, out, err);
  return rc;
}

void
task_identity_clear(task_identity *id)
{
  if (id->token != NULL) {
    explicit_bzero(id->token, strlen(id->token));
    free(id->token);
  }
  berth_kv_array_free(id->env, id->n_env);
  if (id->notes.data != NULL)
    explicit_bzero(id->notes.data, id->notes.len);
  berth_buf_free(&id->notes);
  memset(id, 0, sizeof *id);
}
