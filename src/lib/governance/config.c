/* Admin configuration (BERTH_HOME/config.json): defaults, parsing, validation. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "berth/cleanup.h"
#include "berth/config.h"
#include "berth/parse.h"
#include "berth/redactor.h"
#include "berth/retention.h"

#define MAX_PATTERNS 256
#define MIN_MEMORY (6LL * 1024 * 1024) /* Docker refuses less */

static const char *const pull_policies[] = { "always", "if-not-present", "never" };

void
berth_config_clear(berth_config *c)
{
  if (c == NULL)
    return;
  for (size_t i = 0; i < c->n_allowed_pull_policies; i++)
    free(c->allowed_pull_policies[i]);
  free(c->allowed_pull_policies);
  for (size_t i = 0; i < c->n_patterns; i++) {
    free(c->pattern_names[i]);
    free(c->patterns[i]);
  }
  free(c->pattern_names);
  free(c->patterns);
  for (size_t i = 0; i < c->n_cred_helpers; i++) {
    free(c->cred_helpers[i].name);
    for (size_t k = 0; k < c->cred_helpers[i].argc; k++)
      free(c->cred_helpers[i].argv[k]);
    free(c->cred_helpers[i].argv);
  }
  free(c->cred_helpers);
  free(c->oidc_issuer);
  if (c->store)
    sodium_memzero(c->store, strlen(c->store));
  free(c->store);
  memset(c, 0, sizeof *c);
}

const berth_cred_helper *
berth_config_cred_helper(const berth_config *cfg, const char *name)
{
  for (size_t i = 0; cfg != NULL && name != NULL && i < cfg->n_cred_helpers; i++)
    if (strcmp(cfg->cred_helpers[i].name, name) == 0)
      return &cfg->cred_helpers[i];
  return NULL;
}

static int
set_pull_policies(berth_config *c, const char *const *v, size_t n, berth_error **err)
{
  char **p = calloc(n ? n : 1, sizeof *p);
  if (p == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  for (size_t i = 0; i < n; i++)
    if ((p[i] = strdup(v[i])) == NULL) {
      for (size_t k = 0; k < i; k++)
        free(p[k]);
      free(p);
      return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    }
  for (size_t i = 0; i < c->n_allowed_pull_policies; i++)
    free(c->allowed_pull_policies[i]);
  free(c->allowed_pull_policies);
  c->allowed_pull_policies = p;
  c->n_allowed_pull_policies = n;
  return 0;
}

int
berth_config_defaults(berth_config *out, berth_error **err)
{
  memset(out, 0, sizeof *out);
  out->min_secret_length = BERTH_DEFAULT_MIN_SECRET_LENGTH;
  out->max_parallel_tasks = BERTH_DEFAULT_MAX_PARALLEL;
  out->default_memory = BERTH_DEFAULT_MEMORY;
  out->max_log_bytes = BERTH_DEFAULT_MAX_LOG_BYTES;
  out->default_pids = BERTH_DEFAULT_PIDS;
  out->default_nano_cpus = 0;
  out->allow_host_network = false;
  out->builtin_patterns = true;
  return set_pull_policies(out, pull_policies, 3, err);
}

static int
key_fail(berth_error **err, const char *origin, const char *key, const char *what)
{
  return berth_error_set(err, BERTH_EINVAL, "config %s: key `%s` %s", origin, key, what);
}

static int
get_int(const cJSON *v, const char *origin, const char *key, int64_t min, int64_t max, int64_t *out, berth_error **err)
{
  char what[128];
  snprintf(what, sizeof what, "must be an integer from %lld to %lld", (long long) min, (long long) max);
  if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < (double) min
      || v->valuedouble > (double) max)
    return key_fail(err, origin, key, what);
  *out = (int64_t) v->valuedouble;
  return 0;
}

static int
get_bool(const cJSON *v, const char *origin, const char *key, bool *out, berth_error **err)
{
  if (!cJSON_IsBool(v))
    return key_fail(err, origin, key, "must be true or false");
  *out = cJSON_IsTrue(v);
  return 0;
}

/* A size key: a size string ("512m", "2g") or a number of bytes, at least min; 0 (or "0") too when zero_ok. */
static int
get_size(const cJSON *v, const char *origin, const char *key, int64_t min, bool zero_ok, const char *bad, int64_t *out,
         berth_error **err)
{
  int64_t bytes = 0;
  bool ok;
  if (cJSON_IsString(v)) {
    berth_error *perr = NULL;
    ok = berth_parse_size(v->valuestring, &bytes, &perr) == 0;
    berth_error_free(perr);
  } else {
    ok = get_int(v, origin, key, 0, INT64_C(1) << 50, &bytes, err) == 0;
    berth_error_clear(err);
  }
  if (!ok || (bytes < min && !(zero_ok && bytes == 0)))
    return key_fail(err, origin, key, bad);
  *out = bytes;
  return 0;
}

static int
get_memory(const cJSON *v, const char *origin, berth_config *c, berth_error **err)
{
  return get_size(v, origin, "default_memory", MIN_MEMORY, false,
                  "must be a size (\"512m\", \"2g\") or a number of bytes, at least 6 MiB", &c->default_memory, err);
}

/* max_log_bytes: 0 (or "0") = no cap, else at least 1 MiB */
static int
get_log_cap(const cJSON *v, const char *origin, berth_config *c, berth_error **err)
{
  return get_size(v, origin, "max_log_bytes", INT64_C(1) << 20, true,
                  "must be a size (\"500m\", \"2g\") or a number of bytes, at least 1 MiB, or 0 for no cap",
                  &c->max_log_bytes, err);
}

/* task_retention: a duration ("90d"); 0 or "0" = tasks are kept until `berth task prune` */
static int
get_retention(const cJSON *v, const char *origin, berth_config *c, berth_error **err)
{
  const char *bad = "must be a duration with its unit such as \"90d\" (at most 3650 days), or 0 to keep every task";
  int64_t ms = 0;
  if (cJSON_IsNumber(v) && v->valuedouble == 0)
    ms = 0;
  else if (!cJSON_IsString(v))
    return key_fail(err, origin, "task_retention", bad);
  else if (strcmp(v->valuestring, "0") != 0) {
    berth_error *perr = NULL;
    if (berth_prune_age_parse(v->valuestring, "task_retention", &ms, &perr) < 0) {
      berth_error_free(perr);
      return key_fail(err, origin, "task_retention", bad);
    }
  }
  c->task_retention_ms = ms;
  return 0;
}

static int
get_cpus(const cJSON *v, const char *origin, berth_config *c, berth_error **err)
{
  char buf[64];
  const char *s = NULL;
  if (cJSON_IsString(v))
    s = v->valuestring;
  else if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 1024) {
    snprintf(buf, sizeof buf, "%.9f", v->valuedouble);
    s = buf;
  }
  berth_error *perr = NULL;
  if (s == NULL || berth_parse_cpus(s, &c->default_nano_cpus, &perr) < 0) {
    berth_error_free(perr);
    return key_fail(err, origin, "default_cpus", "must be a number of cpus such as \"1.5\" (0 = no limit)");
  }
  return 0;
}

static int
get_pull_policies(const cJSON *v, const char *origin, berth_config *c, berth_error **err)
{
  const char *bad = "must be a non-empty array of \"always\", \"if-not-present\", \"never\"";
  if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0 || cJSON_GetArraySize(v) > 3)
    return key_fail(err, origin, "allowed_pull_policies", bad);
  const char *chosen[3];
  size_t n = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, v)
  {
    const char *known = NULL;
    for (size_t k = 0; k < 3 && cJSON_IsString(it); k++)
      if (strcmp(it->valuestring, pull_policies[k]) == 0)
        known = pull_policies[k];
    for (size_t k = 0; k < n && known; k++)
      if (chosen[k] == known)
        known = NULL;
    if (known == NULL)
      return key_fail(err, origin, "allowed_pull_policies", bad);
    chosen[n++] = known;
  }
  return set_pull_policies(c, chosen, n, err);
}

static int
get_patterns(const cJSON *v, const char *origin, berth_config *c, berth_error **err)
{
  if (!cJSON_IsObject(v))
    return key_fail(err, origin, "redaction_patterns", "must be an object {\"name\": \"PCRE2 pattern\", ...}");
  int n = cJSON_GetArraySize(v);
  if (n > MAX_PATTERNS)
    return key_fail(err, origin, "redaction_patterns", "has more than 256 patterns");
  c->pattern_names = calloc((size_t) n + 1, sizeof *c->pattern_names);
  c->patterns = calloc((size_t) n + 1, sizeof *c->patterns);
  if (c->pattern_names == NULL || c->patterns == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  berth_secrets *probe = berth_secrets_new(0, err);
  if (probe == NULL)
    return BERTH_EINTERNAL;
  int rc = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, v)
  {
    if (!cJSON_IsString(it) || it->valuestring[0] == '\0') {
      rc = berth_error_set(err, BERTH_EINVAL,
                           "config %s: key `redaction_patterns.%s` must be a non-empty PCRE2 pattern", origin,
                           it->string);
      break;
    }
    if (berth_secrets_add_pattern(probe, it->string, it->valuestring, err) < 0) {
      rc = berth_error_wrap(err, "config %s: key `redaction_patterns.%s`", origin, it->string);
      break;
    }
    c->pattern_names[c->n_patterns] = strdup(it->string);
    c->patterns[c->n_patterns] = strdup(it->valuestring);
    c->n_patterns++;
    if (c->pattern_names[c->n_patterns - 1] == NULL || c->patterns[c->n_patterns - 1] == NULL) {
      rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
      break;
    }
  }
  berth_secrets_free(probe);
  return rc;
}

#define CRED_TIMEOUT_MS 30000
#define CRED_TIMEOUT_MAX_MS (10 * 60 * 1000)

static int
get_cred_helper(const cJSON *h, const char *origin, berth_cred_helper *out, berth_error **err)
{
  const char *name = h->string;
  out->timeout_ms = CRED_TIMEOUT_MS;
  if ((out->name = strdup(name)) == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (!cJSON_IsObject(h))
    return berth_error_set(err, BERTH_EINVAL,
                           "config %s: key `credential_helpers.%.64s` must be an object "
                           "{\"command\": [\"/path\", \"arg\"...], \"timeout\": \"30s\"}",
                           origin, name);
  const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(h, "command");
  int n = cJSON_GetArraySize(cmd);
  if (!cJSON_IsArray(cmd) || n < 1 || n > 64)
    return berth_error_set(err, BERTH_EINVAL,
                           "config %s: key `credential_helpers.%.64s.command` must be an array of "
                           "1 to 64 strings",
                           origin, name);
  if ((out->argv = calloc((size_t) n + 1, sizeof *out->argv)) == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  const cJSON *a;
  cJSON_ArrayForEach(a, cmd)
  {
    if (!cJSON_IsString(a))
      return berth_error_set(err, BERTH_EINVAL,
                             "config %s: key `credential_helpers.%.64s.command` must be an array "
                             "of strings",
                             origin, name);
    if ((out->argv[out->argc++] = strdup(a->valuestring)) == NULL)
      return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  if (out->argv[0][0] != '/')
    return berth_error_set(err, BERTH_EINVAL,
                           "config %s: credential helper `%.64s`: the command `%.128s` must be an "
                           "absolute path",
                           origin, name, out->argv[0]);
  const cJSON *to = cJSON_GetObjectItemCaseSensitive(h, "timeout");
  if (to != NULL) {
    berth_error *e = NULL;
    if (!cJSON_IsString(to) || berth_parse_duration_ms(to->valuestring, &out->timeout_ms, &e) < 0
        || out->timeout_ms <= 0 || out->timeout_ms > CRED_TIMEOUT_MAX_MS) {
      berth_error_free(e);
      return berth_error_set(err, BERTH_EINVAL,
                             "config %s: key `credential_helpers.%.64s.timeout` must be a "
                             "duration from 1s to 10m such as \"30s\"",
                             origin, name);
    }
  }
  const cJSON *k;
  cJSON_ArrayForEach(
      k, h) if (strcmp(k->string, "command") != 0
                && strcmp(k->string, "timeout")
                       != 0) return berth_error_set(err, BERTH_EINVAL,
                                                    "config %s: credential helper `%.64s`: unknown key `%.64s` (known: "
                                                    "command, timeout)",
                                                    origin, name, k->string);
  return 0;
}

static int
get_cred_helpers(const cJSON *v, const char *origin, berth_config *c, berth_error **err)
{
  if (!cJSON_IsObject(v))
    return key_fail(err, origin, "credential_helpers", "must be an object {\"NAME\": {\"command\": [...]}, ...}");
  int n = cJSON_GetArraySize(v);
  if (n > 64)
    return key_fail(err, origin, "credential_helpers", "has more than 64 helpers");
  if ((c->cred_helpers = calloc((size_t) n + 1, sizeof *c->cred_helpers)) == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  const cJSON *h;
  cJSON_ArrayForEach(h, v)
  {
    int rc = get_cred_helper(h, origin, &c->cred_helpers[c->n_cred_helpers++], err);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* The value is checked for shape only (the store checks the connection string when it opens), and never quoted. */
static int
get_store(const cJSON *v, const char *origin, berth_config *c, berth_error **err)
{
  const char *s = cJSON_GetStringValue(v);
  if (s == NULL || *s == '\0' || strlen(s) > 4096 || strpbrk(s, "\r\n") != NULL)
    return key_fail(err, origin, "store",
                    "must be a postgresql:// URL or libpq key=value settings on one line (at most 4096 bytes)");
  free(c->store);
  return (c->store = strdup(s)) ? 0 : berth_error_set(err, BERTH_EINTERNAL, "out of memory");
}

static int
apply_key(const cJSON *it, const char *origin, berth_config *c, berth_error **err)
{
  const char *k = it->string;
  int64_t n = 0;
  int rc;
  if (strcmp(k, "allowed_pull_policies") == 0)
    return get_pull_policies(it, origin, c, err);
  if (strcmp(k, "min_secret_length") == 0) {
    if ((rc = get_int(it, origin, k, 1, 1024, &n, err)) == 0)
      c->min_secret_length = (size_t) n;
    return rc;
  }
  if (strcmp(k, "max_parallel_tasks") == 0) {
    if ((rc = get_int(it, origin, k, 1, 1024, &n, err)) == 0)
      c->max_parallel_tasks = (int) n;
    return rc;
  }
  if (strcmp(k, "workspace_max_bytes") == 0) {
    if ((rc = get_int(it, origin, k, 1, INT64_MAX, &n, err)) == 0)
      c->workspace_max_bytes = (uint64_t) n;
    return rc;
  }
  if (strcmp(k, "workspace_max_entries") == 0) {
    if ((rc = get_int(it, origin, k, 1, 100000000, &n, err)) == 0)
      c->workspace_max_entries = (uint64_t) n;
    return rc;
  }
  if (strcmp(k, "default_memory") == 0)
    return get_memory(it, origin, c, err);
  if (strcmp(k, "max_log_bytes") == 0)
    return get_log_cap(it, origin, c, err);
  if (strcmp(k, "task_retention") == 0)
    return get_retention(it, origin, c, err);
  if (strcmp(k, "default_pids") == 0)
    return get_int(it, origin, k, 1, 4194304, &c->default_pids, err);
  if (strcmp(k, "default_cpus") == 0)
    return get_cpus(it, origin, c, err);
  if (strcmp(k, "allow_host_network") == 0)
    return get_bool(it, origin, k, &c->allow_host_network, err);
  if (strcmp(k, "builtin_patterns") == 0)
    return get_bool(it, origin, k, &c->builtin_patterns, err);
  if (strcmp(k, "redaction_patterns") == 0)
    return get_patterns(it, origin, c, err);
  if (strcmp(k, "credential_helpers") == 0)
    return get_cred_helpers(it, origin, c, err);
  if (strcmp(k, "oidc_issuer") == 0) {
    const char *u = cJSON_GetStringValue(it);
    if (!berth_config_issuer_valid(u))
      return key_fail(err, origin, "oidc_issuer", "must be an http(s) URL without a trailing slash");
    free(c->oidc_issuer);
    return (c->oidc_issuer = strdup(u)) == NULL ? berth_error_set(err, BERTH_EINTERNAL, "out of memory") : 0;
  }
  if (strcmp(k, "store") == 0)
    return get_store(it, origin, c, err);
  return berth_error_set(err, BERTH_EINVAL,
                         "config %s: unknown key `%.100s` (known: allowed_pull_policies, min_secret_length, "
                         "max_parallel_tasks, default_memory, default_pids, default_cpus, allow_host_network, "
                         "builtin_patterns, redaction_patterns, workspace_max_bytes, workspace_max_entries, "
                         "max_log_bytes, task_retention, credential_helpers, oidc_issuer, store)",
                         origin, k);
}

int
berth_config_parse(const char *text, const char *origin, berth_config *out, berth_error **err)
{
  int rc = berth_config_defaults(out, err);
  if (rc < 0)
    return rc;
  size_t len = strnlen(text, BERTH_CONFIG_MAX_BYTES + 1);
  if (len > BERTH_CONFIG_MAX_BYTES) {
    berth_config_clear(out);
    return berth_error_set(err, BERTH_EINVAL, "config %s is larger than 1 MiB", origin);
  }
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
  if (root == NULL || !cJSON_IsObject(root)) {
    size_t off = root == NULL && end && end >= text && end <= text + len ? (size_t) (end - text) : 0;
    cJSON_Delete(root);
    berth_config_clear(out);
    if (off)
      return berth_error_set(err, BERTH_EINVAL, "config %s is not valid JSON (near byte %zu)", origin, off);
    return berth_error_set(err, BERTH_EINVAL, "config %s must be a JSON object", origin);
  }
  for (const char *p = end; p && p < text + len; p++)
    if (!isspace((unsigned char) *p)) {
      cJSON_Delete(root);
      berth_config_clear(out);
      return berth_error_set(err, BERTH_EINVAL, "config %s has trailing data after the JSON object (byte %zu)", origin,
                             (size_t) (p - text));
    }
  const cJSON *it;
  cJSON_ArrayForEach(it, root)
  {
    for (const cJSON *prev = root->child; prev != it && rc == 0; prev = prev->next)
      if (strcmp(prev->string, it->string) == 0)
        rc = berth_error_set(err, BERTH_EINVAL, "config %s: key `%.100s` appears twice", origin, it->string);
    if (rc == 0)
      rc = apply_key(it, origin, out, err);
    if (rc < 0)
      break;
  }
  cJSON_Delete(root);
  if (rc < 0)
    berth_config_clear(out);
  return rc;
}

int
berth_config_load(const char *home, berth_config *out, berth_error **err)
{
  memset(out, 0, sizeof *out);
  cleanup_free char *path = NULL;
  if (home == NULL || asprintf(&path, "%s/config.json", home) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "config: no BERTH_HOME");
  /* O_NONBLOCK: a FIFO in its place must not wait for a writer (it is refused below, as not a regular file) */
  cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT)
      return berth_config_defaults(out, err);
    if (errno == ELOOP)
      return berth_error_set(err, BERTH_EINVAL, "config %s is a symbolic link (not followed: make it a file)", path);
    if (errno == ENOTDIR)
      return berth_error_set(err, BERTH_EINVAL, "BERTH_HOME %s is not a directory", home);
    return berth_error_set_errno(err, BERTH_EINVAL, errno, "config %s cannot be read", path);
  }
  struct stat sb;
  if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))
    return berth_error_set(err, BERTH_EINVAL, "config %s is not a regular file", path);
  if (sb.st_size > BERTH_CONFIG_MAX_BYTES)
    return berth_error_set(err, BERTH_EINVAL, "config %s is larger than 1 MiB", path);
  cleanup_free char *text = malloc((size_t) sb.st_size + 1);
  if (text == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  size_t got = 0;
  while (got < (size_t) sb.st_size) {
    ssize_t r = read(fd, text + got, (size_t) sb.st_size - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return berth_error_set_errno(err, BERTH_EINVAL, errno, "config %s cannot be read", path);
    if (r == 0)
      break;
    got += (size_t) r;
  }
  text[got] = '\0';
  if (strlen(text) != got)
    return berth_error_set(err, BERTH_EINVAL, "config %s contains a NUL byte", path);
  return berth_config_parse(text, path, out, err);
}

int
berth_config_check_pull_policy(const berth_config *c, const char *policy, berth_error **err)
{
  bool known = false;
  for (size_t k = 0; k < 3 && policy; k++)
    known = known || strcmp(policy, pull_policies[k]) == 0;
  if (!known)
    return berth_error_set(err, BERTH_EINVAL, "pull policy `%.64s` is not one of always, if-not-present, never",
                           policy ? policy : "");
  for (size_t i = 0; i < c->n_allowed_pull_policies; i++)
    if (strcmp(c->allowed_pull_policies[i], policy) == 0)
      return 0;
  char allowed[64] = "";
  for (size_t i = 0; i < c->n_allowed_pull_policies; i++) {
    strncat(allowed, i ? ", " : "", sizeof allowed - strlen(allowed) - 1);
    strncat(allowed, c->allowed_pull_policies[i], sizeof allowed - strlen(allowed) - 1);
  }
  return berth_error_set(err, BERTH_EDENIED, "pull policy `%s` is not allowed by the admin config (allowed: %s)",
                         policy, allowed);
}

int
berth_config_check_network(const berth_config *c, const char *network, berth_error **err)
{
  if (network == NULL
      || (strcmp(network, "none") != 0 && strcmp(network, "bridge") != 0 && strcmp(network, "host") != 0))
    return berth_error_set(err, BERTH_EINVAL, "network `%.32s` is not one of none, bridge, host",
                           network ? network : "");
  if (strcmp(network, "host") == 0 && !c->allow_host_network)
    return berth_error_set(err, BERTH_EDENIED,
                           "network `host` is not allowed by the admin config (allow_host_network is false)");
  return 0;
}

bool
berth_config_issuer_valid(const char *u)
{
  const char *host = u == NULL                        ? NULL
                     : strncmp(u, "https://", 8) == 0 ? u + 8
                     : strncmp(u, "http://", 7) == 0  ? u + 7
                                                      : NULL;
  return host != NULL && *host != '\0' && *host != '/' && *host != ':' && strlen(u) <= 512
         && strpbrk(u, " \t\r\n\"") == NULL && u[strlen(u) - 1] != '/';
}
