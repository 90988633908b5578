/* Admin configuration: BERTH_HOME/config.json (optional; a missing file means every default).
 *
 * {
 *   "allowed_pull_policies": ["if-not-present", "never"],   default: all three
 *   "min_secret_length": 4,                                   1..1024, default 4
 *   "max_parallel_tasks": 4,                                  1..1024, default 4 (tasks running at once, all stacks)
 *   "default_memory": "2g",                                   size string or bytes, >= 6 MiB, default 2 GiB
 *   "default_pids": 1024,                                     1..4194304, default 1024
 *   "default_cpus": "1.5",                                    string or number, 0 = no limit (default)
 *   "allow_host_network": false,                              default false
 *   "builtin_patterns": true,                                 default true (the redactor's built-in token formats)
 *   "redaction_patterns": {"corp-token": "corp_[A-Za-z0-9]{20}"}   admin PCRE2 patterns, by name
 *   "store": "postgresql://berth@db/berth"                    the store (as BERTH_STORE, which overrides it)
 * }
 * Unknown keys are errors (a typo must not silently weaken a setting). Every error is one line naming the key and
 * the file, e.g. "config /x/config.json: key `default_pids` must be an integer from 1 to 4194304".
 *
 * Ownership: berth_config owns its strings; release with berth_config_clear. */
#ifndef BERTH_CONFIG_H
#define BERTH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/error.h"

/* The built-in defaults, the one place they are written: berth_config_defaults() puts them in a berth_config, and
 * everything else reads the loaded config (a stack's limit of 0 means the config's default). */
#define BERTH_DEFAULT_MEMORY (2LL << 30)
#define BERTH_DEFAULT_MAX_LOG_BYTES (2LL << 30) /* a task's kept output; the rest is counted, not kept */
#define BERTH_DEFAULT_PIDS 1024
#define BERTH_DEFAULT_MAX_PARALLEL 4
#define BERTH_DEFAULT_MIN_SECRET_LENGTH 4

/* Largest config file accepted (bytes). */
#define BERTH_CONFIG_MAX_BYTES (1024 * 1024)

typedef struct berth_config {
  char **allowed_pull_policies; /* default: all three */
  size_t n_allowed_pull_policies;
  size_t min_secret_length;       /* default 4 */
  int max_parallel_tasks;         /* global limit on tasks running at once across stacks; default 4 */
  int64_t default_memory;         /* bytes, default 2 GiB */
  int64_t default_pids;           /* default 1024 */
  int64_t default_nano_cpus;      /* 0 = no limit */
  bool allow_host_network;        /* default false */
  bool builtin_patterns;          /* default true */
  uint64_t workspace_max_bytes;   /* 0 = the built-in default (2 GiB) */
  uint64_t workspace_max_entries; /* 0 = the built-in default (200,000) */
  int64_t max_log_bytes;          /* a task's output kept in its log; 0 = no cap; default 2 GiB */
  int64_t task_retention_ms;      /* `berth serve` prunes tasks ended this long ago (retention.h); 0 = keeps all */
  char **pattern_names;           /* admin redaction patterns (PCRE2), validated */
  char **patterns;
  size_t n_patterns;
  char *oidc_issuer;                      /* "oidc_issuer": the public URL tasks' OIDC tokens name (https://...) */
  struct berth_cred_helper *cred_helpers; /* "credential_helpers": named host commands (docs/credentials.md) */
  size_t n_cred_helpers;
  char *store; /* "store": a postgresql:// URL or libpq settings; NULL = SQLite in BERTH_HOME. Never echoed (it may
                  hold a password); wiped by berth_config_clear */
} berth_config;

/* A credential helper: a host command run before a task's initialization, with the task's context as JSON on its
 * stdin; it prints {"env": {...}, "expires_at": "..."} and those values become the task's secret env. */
typedef struct berth_cred_helper {
  char *name;
  char **argv; /* NULL-terminated; argv[0] an absolute path */
  size_t argc;
  int64_t timeout_ms; /* default 30 s */
} berth_cred_helper;
/* The helper called name in cfg, or NULL. */
const berth_cred_helper *berth_config_cred_helper(const berth_config *cfg, const char *name);

/* Fills *out with the defaults (never fails except out of memory). */
int berth_config_defaults(berth_config *out, berth_error **err);
/* Loads home/config.json over the defaults. On error *out is left cleared. */
int berth_config_load(const char *home, berth_config *out, berth_error **err);
/* The same from a text; `origin` names it in messages (e.g. the file path). */
int berth_config_parse(const char *text, const char *origin, berth_config *out, berth_error **err);
void berth_config_clear(berth_config *c);

/* BERTH_EINVAL for a policy that is not always|if-not-present|never; BERTH_EDENIED
 * "pull policy `always` is not allowed by the admin config (allowed: if-not-present, never)". */
int berth_config_check_pull_policy(const berth_config *c, const char *policy, berth_error **err);
/* An OIDC issuer: an http(s) URL with a host, without a trailing slash, at most 512 bytes (config.json's
 * oidc_issuer, `berth oidc config --issuer`, `berth serve --public-url` once its trailing slashes are cut). */
bool berth_config_issuer_valid(const char *url);
/* BERTH_EINVAL for a network that is not none|bridge|host; BERTH_EDENIED for `host` unless the admin config's
 * allow_host_network is true. */
int berth_config_check_network(const berth_config *c, const char *network, berth_error **err);

#endif
