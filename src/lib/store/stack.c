/* Stacks: the record, its validation, CRUD in the store, the user lock and the JSON form. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/cleanup.h"
#include "berth/image_ref.h"
#include "berth/oidc.h"
#include "berth/parse.h"
#include "store_int.h"

#define STACK_NAME_MAX 63
#define IMAGE_MAX 512
#define LABEL_MAX 128
#define COMMAND_MAX 65536
#define MIN_MEMORY (6LL << 20) /* Docker refuses less */

/* The user fields in column order; bind_stack() and read_stack() follow it. */
#define STACK_USER_COLS                                                                                                \
  "name, image, project_dir, subdir, init, before_init, before_perform, after_perform, after_run, env, secret_env,"    \
  " network, memory_bytes, nano_cpus, pids, timeout_ms, idle_timeout_ms, pull_policy, persist, labels,"                \
  " keep_versions, oidc_audiences, oidc_aws_role, credentials, pool"
#define STACK_N_USER_COLS 25

berth_stack *
berth_stack_new(void)
{
  berth_stack *s = calloc(1, sizeof *s);
  if (s == NULL)
    return NULL;
  s->network = strdup("none");
  s->pull_policy = strdup("if-not-present");
  s->timeout_ms = BERTH_DEFAULT_TIMEOUT_MS;
  s->idle_timeout_ms = BERTH_DEFAULT_IDLE_TIMEOUT_MS;
  s->keep_versions = BERTH_DEFAULT_KEEP_VERSIONS;
  if (s->network == NULL || s->pull_policy == NULL) {
    berth_stack_free(s);
    return NULL;
  }
  return s;
}

void
berth_stack_free(berth_stack *s)
{
  if (s == NULL)
    return;
  free(s->name);
  free(s->image);
  free(s->project_dir);
  free(s->subdir);
  berth_strv_clear(&s->init);
  berth_strv_clear(&s->before_init);
  berth_strv_clear(&s->before_perform);
  berth_strv_clear(&s->after_perform);
  berth_strv_clear(&s->after_run);
  berth_kv_array_free(s->env, s->n_env);
  berth_kv_array_free(s->secret_env, s->n_secret_env);
  berth_strv_clear(&s->unreadable_secrets);
  free(s->network);
  free(s->pull_policy);
  berth_strv_clear(&s->persist);
  berth_strv_clear(&s->oidc_audiences);
  berth_strv_clear(&s->credentials);
  free(s->oidc_aws_role);
  free(s->pool);
  berth_strv_clear(&s->labels);
  free(s->lock_owner);
  free(s->lock_note);
  free(s);
}

void
berth_stacks_free(berth_stack **v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    berth_stack_free(v[i]);
  free(v);
}

int
berth_stack_validate_name(const char *name, berth_error **err)
{
  bool ok = name != NULL && isalnum((unsigned char) name[0]) && strlen(name) <= STACK_NAME_MAX;
  for (const char *p = name; ok && *p; p++)
    ok = isalnum((unsigned char) *p) || *p == '_' || *p == '.' || *p == '-';
  if (ok)
    return 0;
  int n = name ? (int) strnlen(name, 80) : 0;
  return berth_error_set(err, BERTH_EINVAL,
                         "stack name `%.*s%s` is invalid (use letters, digits, '_', '.' and '-', starting with a "
                         "letter or digit, at most %d characters)",
                         n, name ? name : "", name && name[n] ? "..." : "", STACK_NAME_MAX);
}

static int
validate_commands(const berth_strv *v, const char *what, berth_error **err)
{
  for (size_t i = 0; i < v->n; i++) {
    if (v->v[i][0] == '\0')
      return berth_error_set(err, BERTH_EINVAL, "%s command %zu is empty", what, i + 1);
    if (strlen(v->v[i]) > COMMAND_MAX)
      return berth_error_set(err, BERTH_EINVAL, "%s command %zu is longer than %d bytes", what, i + 1, COMMAND_MAX);
    if (!berth_utf8_valid(v->v[i]))
      return berth_error_set(err, BERTH_EINVAL, "%s command %zu is not valid UTF-8", what, i + 1);
  }
  return 0;
}

static int
validate_path(const char *what, const char *path, berth_error **err)
{
  char *norm = NULL;
  if (berth_parse_relative_path(what, path, &norm, err) < 0)
    return BERTH_EINVAL;
  bool same = strcmp(norm, path) == 0;
  free(norm);
  if (!same)
    return berth_error_set(err, BERTH_EINVAL, "%s `%s` is not in normal form (no trailing or repeated '/')", what,
                           path);
  return 0;
}

static int
validate_env(const berth_kv *kv, size_t n, const char *what, berth_error **err)
{
  for (size_t i = 0; i < n; i++) {
    if (!berth_env_name_valid(kv[i].key))
      return berth_error_set(err, BERTH_EINVAL, "%s name `%.64s` is invalid", what, kv[i].key);
    if (strncmp(kv[i].key, "BERTH_", 6) == 0)
      return berth_error_set(err, BERTH_EINVAL, "%s name `%.64s` is reserved (berth sets the BERTH_* variables)", what,
                             kv[i].key);
    for (size_t j = 0; j < i; j++)
      if (strcmp(kv[i].key, kv[j].key) == 0)
        return berth_error_set(err, BERTH_EINVAL, "%s `%s` is given twice", what, kv[i].key);
    if (!berth_utf8_valid(kv[i].value)) /* said without the value, which may be a secret */
      return berth_error_set(err, BERTH_EINVAL, "%s `%s`: its value is not valid UTF-8", what, kv[i].key);
  }
  return 0;
}

static int
validate_limits(const berth_stack *s, berth_error **err)
{
  if (s->memory_bytes < 0 || (s->memory_bytes > 0 && s->memory_bytes < MIN_MEMORY)
      || s->memory_bytes > BERTH_MAX_MEMORY_BYTES)
    return berth_error_set(err, BERTH_EINVAL, "memory limit must be from 6MiB to 1PiB (or 0 for the default)");
  if (s->nano_cpus < 0 || s->nano_cpus > BERTH_MAX_NANO_CPUS)
    return berth_error_set(err, BERTH_EINVAL, "cpus must be from 0 to 1024");
  if (s->pids < 0 || s->pids > 4194304)
    return berth_error_set(err, BERTH_EINVAL, "pids limit must be between 1 and 4194304 (or 0 for the default)");
  if (s->timeout_ms <= 0 || s->timeout_ms > BERTH_MAX_DURATION_MS)
    return berth_error_set(err, BERTH_EINVAL, "run timeout must be positive and at most 12725d");
  if (s->idle_timeout_ms <= 0 || s->idle_timeout_ms > BERTH_MAX_DURATION_MS)
    return berth_error_set(err, BERTH_EINVAL, "idle timeout must be positive and at most 12725d");
  if (s->keep_versions < 1 || s->keep_versions > BERTH_MAX_KEEP_VERSIONS)
    return berth_error_set(err, BERTH_EINVAL, "keep-versions must be between 1 and %d", BERTH_MAX_KEEP_VERSIONS);
  return 0;
}

int
berth_stack_validate(const berth_stack *s, berth_error **err)
{
  if (berth_stack_validate_name(s->name, err) < 0)
    return BERTH_EINVAL;
  if (s->image == NULL || s->image[0] == '\0')
    return berth_error_set(err, BERTH_EINVAL, "stack `%s` needs an image (--image REF)", s->name);
  for (const char *p = s->image; *p; p++)
    if (isspace((unsigned char) *p) || iscntrl((unsigned char) *p) || p - s->image >= IMAGE_MAX)
      return berth_error_set(err, BERTH_EINVAL, "image `%.64s` is not a valid image reference", s->image);
  /* the same parser the runner and the allowlist use: what is accepted here can be pulled and matched later */
  berth_image_ref ref;
  if (berth_image_ref_parse(s->image, &ref, err) < 0)
    return BERTH_EINVAL;
  berth_image_ref_clear(&ref);
  if (s->oidc_audiences.n > 16)
    return berth_error_set(err, BERTH_EINVAL, "stack `%s`: at most 16 OIDC audiences", s->name);
  for (size_t i = 0; i < s->oidc_audiences.n; i++)
    if (berth_oidc_audience_check(s->oidc_audiences.v[i], err) < 0)
      return BERTH_EINVAL;
  if (s->oidc_aws_role != NULL && s->oidc_audiences.n == 0)
    return berth_error_set(err, BERTH_EINVAL, "stack `%s`: --oidc-aws-role needs an OIDC audience (--oidc-audience)",
                           s->name);
  if (s->oidc_aws_role != NULL && strncmp(s->oidc_aws_role, "arn:", 4) != 0)
    return berth_error_set(err, BERTH_EINVAL, "stack `%s`: --oidc-aws-role `%.64s` is not an ARN (arn:...)", s->name,
                           s->oidc_aws_role);
  for (size_t i = 0; i < s->credentials.n; i++)
    if (berth_stack_validate_name(s->credentials.v[i], NULL) < 0)
      return berth_error_set(err, BERTH_EINVAL, "stack `%s`: `%.64s` is not a credential helper name", s->name,
                             s->credentials.v[i]);
  if (s->pool != NULL && berth_stack_validate_name(s->pool, NULL) < 0)
    return berth_error_set(err, BERTH_EINVAL, "stack `%s`: `%.64s` is not a pool name ([A-Za-z0-9][A-Za-z0-9_.-]*)",
                           s->name, s->pool);
  if (s->project_dir != NULL && s->project_dir[0] != '/')
    return berth_error_set(err, BERTH_EINVAL, "project dir `%.64s` must be an absolute path", s->project_dir);
  if (berth_utf8_check("the project dir", s->project_dir, err) < 0 || berth_utf8_check("--subdir", s->subdir, err) < 0
      || berth_utf8_check("--oidc-aws-role", s->oidc_aws_role, err) < 0)
    return BERTH_EINVAL;
  for (size_t i = 0; i < s->persist.n; i++)
    if (berth_utf8_check("a persisted path", s->persist.v[i], err) < 0)
      return BERTH_EINVAL;
  for (size_t i = 0; i < s->oidc_audiences.n; i++)
    if (berth_utf8_check("an OIDC audience", s->oidc_audiences.v[i], err) < 0)
      return BERTH_EINVAL;
  if (s->subdir != NULL && validate_path("subdir", s->subdir, err) < 0)
    return BERTH_EINVAL;
  /* `host` is known here; whether the admin allows it is the config's (berth_config_check_network) */
  if (s->network == NULL
      || (strcmp(s->network, "none") != 0 && strcmp(s->network, "bridge") != 0 && strcmp(s->network, "host") != 0))
    return berth_error_set(err, BERTH_EINVAL, "network `%.32s` is not one of none, bridge, host",
                           s->network ? s->network : "");
  if (s->pull_policy == NULL
      || (strcmp(s->pull_policy, "always") != 0 && strcmp(s->pull_policy, "if-not-present") != 0
          && strcmp(s->pull_policy, "never") != 0))
    return berth_error_set(err, BERTH_EINVAL, "pull policy `%.32s` is unknown (use always, if-not-present or never)",
                           s->pull_policy ? s->pull_policy : "");
  if (validate_limits(s, err) < 0 || validate_commands(&s->init, "init", err) < 0
      || validate_commands(&s->before_init, "before-init", err) < 0
      || validate_commands(&s->before_perform, "before-perform", err) < 0
      || validate_commands(&s->after_perform, "after-perform", err) < 0
      || validate_commands(&s->after_run, "after-run", err) < 0 || validate_env(s->env, s->n_env, "env", err) < 0
      || validate_env(s->secret_env, s->n_secret_env, "secret env", err) < 0)
    return BERTH_EINVAL;
  for (size_t i = 0; i < s->n_env; i++)
    if (berth_kv_get(s->secret_env, s->n_secret_env, s->env[i].key))
      return berth_error_set(err, BERTH_EINVAL, "`%s` is both a plain and a secret env variable", s->env[i].key);
  for (size_t i = 0; i < s->persist.n; i++)
    if (validate_path("persisted path", s->persist.v[i], err) < 0)
      return BERTH_EINVAL;
  for (size_t i = 0; i < s->labels.n; i++) {
    const char *l = s->labels.v[i];
    if (berth_utf8_check("a label", l, err) < 0)
      return BERTH_EINVAL;
    bool ok = *l != '\0' && strlen(l) <= LABEL_MAX;
    for (const char *p = l; ok && *p; p++)
      ok = !iscntrl((unsigned char) *p);
    if (!ok)
      return berth_error_set(err, BERTH_EINVAL, "label `%.64s` is invalid (1 to %d printable characters)", l,
                             LABEL_MAX);
  }
  return 0;
}

/* Binds parameters 1..25 in STACK_USER_COLS order (the statement keeps copies). */
static int
bind_stack(berth_store *st, db_stmt *stmt, const berth_stack *s, berth_error **err)
{
  const berth_strv *lists[] = { &s->init, &s->before_init, &s->before_perform, &s->after_perform, &s->after_run };
  db_bind_text(stmt, 1, s->name);
  db_bind_text(stmt, 2, s->image);
  db_bind_text(stmt, 3, s->project_dir);
  db_bind_text(stmt, 4, s->subdir);
  for (int i = 0; i < 5; i++) {
    cleanup_free char *text = store_strv_encode(lists[i]);
    if (text == NULL)
      return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    db_bind_text(stmt, 5 + i, text);
  }
  cleanup_free char *env = NULL, *secret = NULL, *persist = NULL, *labels = NULL;
  if (store_kv_encode(st, s->env, s->n_env, false, &env, err) < 0
      || store_kv_encode(st, s->secret_env, s->n_secret_env, true, &secret, err) < 0)
    return BERTH_EINTERNAL;
  persist = store_strv_encode(&s->persist);
  labels = store_strv_encode(&s->labels);
  if (persist == NULL || labels == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  db_bind_text(stmt, 10, env);
  db_bind_text(stmt, 11, secret);
  db_bind_text(stmt, 12, s->network);
  db_bind_int64(stmt, 13, s->memory_bytes);
  db_bind_int64(stmt, 14, s->nano_cpus);
  db_bind_int64(stmt, 15, s->pids);
  db_bind_int64(stmt, 16, s->timeout_ms);
  db_bind_int64(stmt, 17, s->idle_timeout_ms);
  db_bind_text(stmt, 18, s->pull_policy);
  db_bind_text(stmt, 19, persist);
  db_bind_text(stmt, 20, labels);
  db_bind_int64(stmt, 21, s->keep_versions);
  cleanup_free char *auds = store_strv_encode(&s->oidc_audiences), *creds = store_strv_encode(&s->credentials);
  if (auds == NULL || creds == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  db_bind_text(stmt, 22, auds);
  db_bind_text(stmt, 23, s->oidc_aws_role);
  db_bind_text(stmt, 24, creds);
  db_bind_text(stmt, 25, s->pool);
  return 0;
}

static int
read_stack(berth_store *st, db_stmt *stmt, berth_stack **out, berth_error **err)
{
  berth_stack *s = calloc(1, sizeof *s);
  bool oom = s == NULL;
  if (oom)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  berth_strv *lists[] = { &s->init, &s->before_init, &s->before_perform, &s->after_perform, &s->after_run };
  s->name = db_column_strdup(stmt, 0, &oom);
  s->image = db_column_strdup(stmt, 1, &oom);
  s->project_dir = db_column_strdup(stmt, 2, &oom);
  s->subdir = db_column_strdup(stmt, 3, &oom);
  int rc = 0;
  for (int i = 0; i < 5 && rc == 0; i++)
    rc = store_strv_decode(db_column_text(stmt, 4 + i), lists[i], err);
  if (rc == 0)
    rc = store_kv_decode(st, db_column_text(stmt, 9), false, &s->env, &s->n_env, err);
  if (rc == 0)
    rc = store_kv_decode_lenient(st, db_column_text(stmt, 10), &s->secret_env, &s->n_secret_env, &s->unreadable_secrets,
                                 err);
  s->network = db_column_strdup(stmt, 11, &oom);
  s->memory_bytes = db_column_int64(stmt, 12);
  s->nano_cpus = db_column_int64(stmt, 13);
  s->pids = db_column_int64(stmt, 14);
  s->timeout_ms = db_column_int64(stmt, 15);
  s->idle_timeout_ms = db_column_int64(stmt, 16);
  s->pull_policy = db_column_strdup(stmt, 17, &oom);
  if (rc == 0)
    rc = store_strv_decode(db_column_text(stmt, 18), &s->persist, err);
  if (rc == 0)
    rc = store_strv_decode(db_column_text(stmt, 19), &s->labels, err);
  s->keep_versions = (int) db_column_int64(stmt, 20);
  if (rc == 0)
    rc = store_strv_decode(db_column_text(stmt, 21), &s->oidc_audiences, err);
  s->oidc_aws_role = db_column_strdup(stmt, 22, &oom);
  if (rc == 0)
    rc = store_strv_decode(db_column_text(stmt, 23), &s->credentials, err);
  s->pool = db_column_strdup(stmt, 24, &oom);
  s->lock_owner = db_column_strdup(stmt, 25, &oom);
  s->lock_note = db_column_strdup(stmt, 26, &oom);
  s->locked_at = db_column_int64(stmt, 27);
  s->created_at = db_column_int64(stmt, 28);
  s->updated_at = db_column_int64(stmt, 29);
  if (rc == 0 && oom)
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (rc < 0) {
    berth_stack_free(s);
    return berth_error_wrap(err, "read stack");
  }
  *out = s;
  return 0;
}

/* Runs an INSERT or UPDATE of every user column (bound in STACK_USER_COLS order), then the time (created_at and
 * updated_at for an insert; updated_at and the name to match for an update); *changes says whether a row was
 * written. */
static int
write_stack(berth_store *st, const char *sql, bool update, const berth_stack *s, int64_t *changes, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, sql, &stmt, err) < 0)
    return BERTH_EINTERNAL;
  int rc = bind_stack(st, stmt, s, err);
  if (rc < 0) {
    db_finalize(stmt);
    return rc;
  }
  int64_t now = berth_now_ms();
  db_bind_int64(stmt, STACK_N_USER_COLS + 1, now);
  if (update)
    db_bind_text(stmt, STACK_N_USER_COLS + 2, s->name);
  else
    db_bind_int64(stmt, STACK_N_USER_COLS + 2, now);
  return db_run(stmt, changes, err);
}

int
berth_stack_check_secrets(berth_store *st, const berth_stack *s, berth_error **err)
{
  if (s->unreadable_secrets.n == 0)
    return 0;
  return berth_error_set(err, BERTH_EINVAL,
                         "stack %s: the stored value of secret env %s cannot be decrypted (%s was replaced or lost):"
                         " give it again (berth stack update %s --secret-env %s=VALUE) or remove it"
                         " (--unset-secret-env %s)",
                         s->name, s->unreadable_secrets.v[0], store_key_origin(st), s->name, s->unreadable_secrets.v[0],
                         s->unreadable_secrets.v[0]);
}

int
berth_store_stack_create(berth_store *st, const berth_stack *s, berth_error **err)
{
  if (berth_stack_validate(s, err) < 0 || berth_stack_check_secrets(st, s, err) < 0)
    return BERTH_EINVAL;
  int64_t added = 0;
  int rc = write_stack(st,
                       "INSERT INTO stacks (" STACK_USER_COLS ", created_at, updated_at)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                       " ON CONFLICT (name) DO NOTHING",
                       false, s, &added, err);
  if (rc < 0)
    return berth_error_wrap(err, "create stack `%s`", s->name);
  if (added == 0)
    return berth_error_set(err, BERTH_EBUSY, "stack `%s` already exists", s->name);
  return 0;
}

int
berth_store_stack_update(berth_store *st, const berth_stack *s, berth_error **err)
{
  if (berth_stack_validate(s, err) < 0 || berth_stack_check_secrets(st, s, err) < 0)
    return BERTH_EINVAL;
  int64_t changed = 0;
  int rc
      = write_stack(st,
                    "UPDATE stacks SET name = ?, image = ?, project_dir = ?, subdir = ?, init = ?, before_init = ?,"
                    " before_perform = ?, after_perform = ?, after_run = ?, env = ?, secret_env = ?,"
                    " network = ?, memory_bytes = ?, nano_cpus = ?, pids = ?, timeout_ms = ?,"
                    " idle_timeout_ms = ?, pull_policy = ?, persist = ?, labels = ?, keep_versions = ?,"
                    " oidc_audiences = ?, oidc_aws_role = ?, credentials = ?, pool = ?, updated_at = ? WHERE name = ?",
                    true, s, &changed, err);
  if (rc < 0)
    return berth_error_wrap(err, "update stack `%s`", s->name);
  if (changed == 0)
    return berth_error_set(err, BERTH_ENOTFOUND, "stack `%s` does not exist", s->name);
  return 0;
}

int
berth_store_stack_get(berth_store *st, const char *name, berth_stack **out, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db,
                 "SELECT " STACK_USER_COLS ", lock_owner, lock_note, locked_at, created_at, updated_at"
                 " FROM stacks WHERE name = ?",
                 &stmt, err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_text(stmt, 1, name);
  int rc = 0, src = db_step(stmt, err);
  if (src == DB_ROW)
    rc = read_stack(st, stmt, out, err);
  else if (src == DB_DONE)
    rc = berth_error_set(err, BERTH_ENOTFOUND, "stack `%.80s` does not exist", name ? name : "");
  else
    rc = berth_error_wrap(err, "read stack");
  db_finalize(stmt);
  return rc;
}

int
berth_store_stack_list(berth_store *st, berth_stack ***out, size_t *n, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db,
                 "SELECT " STACK_USER_COLS ", lock_owner, lock_note, locked_at, created_at, updated_at"
                 " FROM stacks ORDER BY name",
                 &stmt, err)
      < 0)
    return BERTH_EINTERNAL;
  berth_stack **v = NULL;
  size_t count = 0;
  int rc = 0, src;
  while ((src = db_step(stmt, err)) == DB_ROW) {
    berth_stack **nv = realloc(v, (count + 1) * sizeof *nv);
    if (nv == NULL) {
      rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
      break;
    }
    v = nv;
    if ((rc = read_stack(st, stmt, &v[count], err)) < 0)
      break;
    count++;
  }
  if (rc == 0 && src != DB_DONE)
    rc = berth_error_wrap(err, "list stacks");
  db_finalize(stmt);
  if (rc < 0) {
    berth_stacks_free(v, count);
    return rc;
  }
  *out = v;
  *n = count;
  return 0;
}

/* Runs one statement with a text parameter; returns the first column of the first row as int64 (or dflt). */
static int
query_text_int(berth_store *st, const char *sql, const char *arg, int64_t dflt, int64_t *out, char **text_out,
               berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, sql, &stmt, err) < 0)
    return BERTH_EINTERNAL;
  db_bind_text(stmt, 1, arg);
  int rc = 0, src = db_step(stmt, err);
  bool oom = false;
  *out = dflt;
  if (src == DB_ROW) {
    *out = db_column_int64(stmt, 0);
    if (text_out)
      *text_out = db_column_strdup(stmt, 1, &oom);
  } else if (src != DB_DONE)
    rc = berth_error_wrap(err, "query store");
  db_finalize(stmt);
  if (oom)
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  return rc;
}

int
berth_store_stack_delete(berth_store *st, const char *name, berth_error **err)
{
  int64_t found = 0, active = 0;
  cleanup_free char *active_id = NULL, *state_dir = NULL;
  if (berth_store_begin(st, err) < 0)
    return berth_error_wrap(err, "delete stack `%s`", name);
  int rc = query_text_int(st, "SELECT 1 FROM stacks WHERE name = ?", name, 0, &found, NULL, err);
  if (rc == 0 && !found)
    rc = berth_error_set(err, BERTH_ENOTFOUND, "stack `%.80s` does not exist", name);
  if (rc == 0)
    rc = query_text_int(
        st, "SELECT 1, id FROM tasks WHERE stack = ? AND state NOT IN " STORE_TERMINAL_SQL " ORDER BY seq LIMIT 1",
        name, 0, &active, &active_id, err);
  if (rc == 0 && active)
    rc = berth_error_set(err, BERTH_EBUSY, "stack `%s` has an active task %s; wait for it or cancel it first", name,
                         active_id ? active_id : "");
  int64_t dummy;
  if (rc == 0)
    rc = query_text_int(st, "DELETE FROM state_versions WHERE stack = ?", name, 0, &dummy, NULL, err);
  if (rc == 0)
    rc = query_text_int(st, "DELETE FROM stacks WHERE name = ?", name, 0, &dummy, NULL, err);
  if (rc < 0) {
    berth_store_rollback(st);
    return rc;
  }
  if (berth_store_commit(st, err) < 0)
    return berth_error_wrap(err, "delete stack `%s`", name);
  /* The rows are gone; files left by a failure here are never read (readers go through state_versions). */
  if (asprintf(&state_dir, "%s/state/%s", st->home, name) >= 0)
    store_remove_tree(state_dir);
  return 0;
}

int
berth_store_stack_lock(berth_store *st, const char *name, const char *owner, const char *note, berth_error **err)
{
  berth_stack *s = NULL;
  if (berth_store_begin(st, err) < 0)
    return BERTH_EINTERNAL;
  int rc = berth_store_stack_get(st, name, &s, err);
  if (rc == 0 && s->lock_owner && strcmp(s->lock_owner, owner) != 0)
    rc = berth_error_set(err, BERTH_EBUSY, "stack `%s` is locked by %s", name, s->lock_owner);
  if (rc == 0) {
    db_stmt *stmt = NULL;
    rc = db_prepare(st->db, "UPDATE stacks SET lock_owner = ?, lock_note = ?, locked_at = ? WHERE name = ?", &stmt,
                    err);
    if (rc == 0) {
      db_bind_text(stmt, 1, owner);
      db_bind_text(stmt, 2, note);
      db_bind_int64(stmt, 3, s->lock_owner ? s->locked_at : berth_now_ms());
      db_bind_text(stmt, 4, name);
      if ((rc = db_run(stmt, NULL, err)) < 0)
        berth_error_wrap(err, "lock stack `%s`", name);
    }
  }
  berth_stack_free(s);
  if (rc < 0) {
    berth_store_rollback(st);
    return rc;
  }
  return berth_store_commit(st, err);
}

int
berth_store_stack_unlock(berth_store *st, const char *name, const char *actor, bool force, berth_error **err)
{
  berth_stack *s = NULL;
  if (berth_store_begin(st, err) < 0)
    return BERTH_EINTERNAL;
  int rc = berth_store_stack_get(st, name, &s, err);
  if (rc == 0 && s->lock_owner && !force && strcmp(s->lock_owner, actor) != 0)
    rc = berth_error_set(err, BERTH_EDENIED,
                         "stack `%s` is locked by %s; only the owner or an admin (--force) may "
                         "unlock it",
                         name, s->lock_owner);
  if (rc == 0 && s->lock_owner) {
    int64_t dummy;
    rc = query_text_int(st, "UPDATE stacks SET lock_owner = NULL, lock_note = NULL, locked_at = 0 WHERE name = ?", name,
                        0, &dummy, NULL, err);
    if (rc == 0) /* the stack's queued tasks may run now */
      rc = store_notify_queue(st, err);
  }
  berth_stack_free(s);
  if (rc < 0) {
    berth_store_rollback(st);
    return rc;
  }
  return berth_store_commit(st, err);
}

static cJSON *
strv_json(const berth_strv *v)
{
  cJSON *a = cJSON_CreateArray();
  for (size_t i = 0; a && i < v->n; i++)
    cJSON_AddItemToArray(a, cJSON_CreateString(v->v[i]));
  return a;
}

static cJSON *
env_json(const berth_kv *kv, size_t n, bool mask)
{
  cJSON *o = cJSON_CreateObject();
  for (size_t i = 0; o && i < n; i++)
    cJSON_AddItemToObject(o, kv[i].key, cJSON_CreateString(mask ? "***" : kv[i].value));
  return o;
}

static void
add_time(cJSON *o, const char *key, int64_t ms)
{
  char buf[40];
  if (ms > 0)
    cJSON_AddStringToObject(o, key, berth_format_time(ms, buf, sizeof buf));
  else
    cJSON_AddNullToObject(o, key);
}

cJSON *
berth_stack_to_json(const berth_stack *s)
{
  cJSON *o = cJSON_CreateObject();
  if (o == NULL)
    return NULL;
  char cpus[40];
  cJSON_AddStringToObject(o, "name", s->name);
  cJSON_AddStringToObject(o, "image", s->image);
  s->project_dir ? cJSON_AddStringToObject(o, "project_dir", s->project_dir) : cJSON_AddNullToObject(o, "project_dir");
  s->subdir ? cJSON_AddStringToObject(o, "subdir", s->subdir) : cJSON_AddNullToObject(o, "subdir");
  cJSON_AddItemToObject(o, "init", strv_json(&s->init));
  cJSON_AddItemToObject(o, "before_init", strv_json(&s->before_init));
  cJSON_AddItemToObject(o, "before_perform", strv_json(&s->before_perform));
  cJSON_AddItemToObject(o, "after_perform", strv_json(&s->after_perform));
  cJSON_AddItemToObject(o, "after_run", strv_json(&s->after_run));
  cJSON_AddItemToObject(o, "env", env_json(s->env, s->n_env, false));
  cJSON_AddItemToObject(o, "secret_env", env_json(s->secret_env, s->n_secret_env, true));
  if (s->unreadable_secrets.n > 0) { /* only then: their values cannot be decrypted (secret.key replaced or lost) */
    cJSON *u = cJSON_AddArrayToObject(o, "secret_env_unreadable");
    for (size_t i = 0; i < s->unreadable_secrets.n; i++)
      cJSON_AddItemToArray(u, cJSON_CreateString(s->unreadable_secrets.v[i]));
  }
  cJSON_AddStringToObject(o, "network", s->network);
  cJSON_AddNumberToObject(o, "memory_bytes", (double) s->memory_bytes);
  cJSON_AddRawToObject(o, "cpus", berth_format_cpus(s->nano_cpus, cpus, sizeof cpus));
  cJSON_AddNumberToObject(o, "nano_cpus", (double) s->nano_cpus);
  cJSON_AddNumberToObject(o, "pids", (double) s->pids);
  cJSON_AddNumberToObject(o, "timeout_ms", (double) s->timeout_ms);
  cJSON_AddNumberToObject(o, "idle_timeout_ms", (double) s->idle_timeout_ms);
  cJSON_AddStringToObject(o, "pull_policy", s->pull_policy);
  cJSON_AddItemToObject(o, "persist", strv_json(&s->persist));
  cJSON_AddItemToObject(o, "labels", strv_json(&s->labels));
  cJSON_AddNumberToObject(o, "keep_versions", s->keep_versions);
  cJSON_AddItemToObject(o, "oidc_audiences", strv_json(&s->oidc_audiences));
  s->oidc_aws_role ? cJSON_AddStringToObject(o, "oidc_aws_role", s->oidc_aws_role)
                   : cJSON_AddNullToObject(o, "oidc_aws_role");
  cJSON_AddItemToObject(o, "credentials", strv_json(&s->credentials));
  cJSON_AddStringToObject(o, "pool", s->pool ? s->pool : BERTH_DEFAULT_POOL);
  if (s->lock_owner) {
    cJSON *lock = cJSON_AddObjectToObject(o, "lock");
    cJSON_AddStringToObject(lock, "owner", s->lock_owner);
    s->lock_note ? cJSON_AddStringToObject(lock, "note", s->lock_note) : cJSON_AddNullToObject(lock, "note");
    add_time(lock, "locked_at", s->locked_at);
  } else
    cJSON_AddNullToObject(o, "lock");
  add_time(o, "created_at", s->created_at);
  add_time(o, "updated_at", s->updated_at);
  return o;
}
