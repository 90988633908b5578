/* `berth stack`: create, update, show, list, delete stacks, and list their state versions. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "berth/actions.h"
#include "berth/cleanup.h"
#include "berth/config.h"
#include "berth/parse.h"
#include "berth/stack_host.h"
#include "berth/store.h"
#include "berth/task_json.h"
#include "cli.h"
#include "client.h"
#include "render.h"

static const char usage_main[] = "usage: berth stack COMMAND [ARGS...]\n"
                                 "\n"
                                 "commands:\n"
                                 "  create NAME --image REF [FLAGS...]   create a stack\n"
                                 "  update NAME [FLAGS...]               change the fields given\n"
                                 "  show NAME [--json]                   show one stack (secret values as ***)\n"
                                 "  list [--json]                        list stacks\n"
                                 "  delete NAME                          delete a stack and its state versions\n"
                                 "  state NAME [--json]                  list the stack's persisted state versions\n"
                                 "  lock NAME [--note TEXT]              only you may start tasks until you unlock\n"
                                 "  unlock NAME [--force]                release your lock (--force: an admin)\n"
                                 "\n"
                                 "Run 'berth stack COMMAND --help' for a command's flags.\n";

static const char flags_help[]
    = "  --image REF                 runner image (required on create)\n"
      "  --project-dir DIR           directory uploaded as the workspace (made absolute; '' = none)\n"
      "  --subdir PATH               working directory inside the project dir (relative; '' = none)\n"
      "  --init CMD                  initialization command (repeatable)\n"
      "  --before-init CMD           hook before the init commands (repeatable)\n"
      "  --before-perform CMD        hook before the command (repeatable)\n"
      "  --after-perform CMD         hook after the command (repeatable)\n"
      "  --after-run CMD             hook that always runs at the end (repeatable)\n"
      "  --env K=V                   environment variable (repeatable)\n"
      "  --secret-env K[=V]          secret variable; K alone reads V from berth's environment (repeatable)\n"
      "  --network none|bridge       container network (default none)\n"
      "  --memory SIZE               memory limit, e.g. 512m, 1g (0 = admin default)\n"
      "  --cpus N                    cpu limit, e.g. 1.5 (0 = admin default)\n"
      "  --pids N                    process limit (0 = admin default)\n"
      "  --timeout DUR               run timeout, e.g. 70m, 1h30m (default 70m)\n"
      "  --idle-timeout DUR          timeout without output (default 7m)\n"
      "  --pull always|if-not-present|never   image pull policy (default if-not-present)\n"
      "  --persist PATH              path (relative to the working dir) kept across tasks (repeatable)\n"
      "  --label L                   label (repeatable)\n"
      "  --keep-versions N           state versions kept (default 10)\n"
      "  --oidc-audience AUD         each task gets an OIDC identity token for AUD (repeatable; docs/credentials.md)\n"
      "  --oidc-aws-role ARN         with a token: AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE for the AWS SDKs\n"
      "  --pool NAME                 run its tasks only on fleet hosts of this pool ('' = default; docs/fleet.md)\n"
      "  --credentials NAME          credential helper from config.json run before initialization (repeatable)\n";

static const char update_extra_help[]
    = "  --unset-env K               remove a variable (repeatable)\n"
      "  --unset-secret-env K        remove a secret variable (repeatable)\n"
      "\n"
      "A repeatable command/path/label flag REPLACES that whole list; an empty value ('') clears it.\n"
      "--env and --secret-env set or overwrite single variables; the others are kept.\n";

enum {
  OPT_IMAGE = 256,
  OPT_PROJECT_DIR,
  OPT_SUBDIR,
  OPT_INIT,
  OPT_BEFORE_INIT,
  OPT_BEFORE_PERFORM,
  OPT_AFTER_PERFORM,
  OPT_AFTER_RUN,
  OPT_ENV,
  OPT_SECRET_ENV,
  OPT_NETWORK,
  OPT_MEMORY,
  OPT_CPUS,
  OPT_PIDS,
  OPT_TIMEOUT,
  OPT_IDLE_TIMEOUT,
  OPT_PULL,
  OPT_PERSIST,
  OPT_LABEL,
  OPT_KEEP_VERSIONS,
  OPT_OIDC_AUDIENCE,
  OPT_OIDC_AWS_ROLE,
  OPT_POOL,
  OPT_CREDENTIALS,
  OPT_UNSET_ENV,
  OPT_UNSET_SECRET_ENV,
  OPT_JSON,
  OPT_HELP,
};

static const struct option edit_options[] = {
  { "image", required_argument, NULL, OPT_IMAGE },
  { "project-dir", required_argument, NULL, OPT_PROJECT_DIR },
  { "subdir", required_argument, NULL, OPT_SUBDIR },
  { "init", required_argument, NULL, OPT_INIT },
  { "before-init", required_argument, NULL, OPT_BEFORE_INIT },
  { "before-perform", required_argument, NULL, OPT_BEFORE_PERFORM },
  { "after-perform", required_argument, NULL, OPT_AFTER_PERFORM },
  { "after-run", required_argument, NULL, OPT_AFTER_RUN },
  { "env", required_argument, NULL, OPT_ENV },
  { "secret-env", required_argument, NULL, OPT_SECRET_ENV },
  { "network", required_argument, NULL, OPT_NETWORK },
  { "memory", required_argument, NULL, OPT_MEMORY },
  { "cpus", required_argument, NULL, OPT_CPUS },
  { "pids", required_argument, NULL, OPT_PIDS },
  { "timeout", required_argument, NULL, OPT_TIMEOUT },
  { "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
  { "pull", required_argument, NULL, OPT_PULL },
  { "persist", required_argument, NULL, OPT_PERSIST },
  { "label", required_argument, NULL, OPT_LABEL },
  { "keep-versions", required_argument, NULL, OPT_KEEP_VERSIONS },
  { "oidc-audience", required_argument, NULL, OPT_OIDC_AUDIENCE },
  { "oidc-aws-role", required_argument, NULL, OPT_OIDC_AWS_ROLE },
  { "pool", required_argument, NULL, OPT_POOL },
  { "credentials", required_argument, NULL, OPT_CREDENTIALS },
  { "unset-env", required_argument, NULL, OPT_UNSET_ENV },
  { "unset-secret-env", required_argument, NULL, OPT_UNSET_SECRET_ENV },
  { "help", no_argument, NULL, OPT_HELP },
  { NULL, 0, NULL, 0 },
};

static const struct option read_options[] = {
  { "json", no_argument, NULL, OPT_JSON },
  { "help", no_argument, NULL, OPT_HELP },
  { NULL, 0, NULL, 0 },
};

/* The list flags: which option fills which field of the stack. */
#define N_LISTS 9
static const int list_opts[N_LISTS] = { OPT_INIT,         OPT_BEFORE_INIT, OPT_BEFORE_PERFORM,
                                        OPT_AFTER_PERFORM, OPT_AFTER_RUN,   OPT_PERSIST,
                                        OPT_LABEL,         OPT_OIDC_AUDIENCE, OPT_CREDENTIALS };

static berth_strv *
stack_list(berth_stack *s, int idx)
{
  berth_strv *lists[N_LISTS] = { &s->init,    &s->before_init, &s->before_perform, &s->after_perform,  &s->after_run,
                                 &s->persist, &s->labels,      &s->oidc_audiences, &s->credentials };
  return lists[idx];
}

/* What the user asked to change: NULL / false means "not given". */
typedef struct stack_edit {
  bool is_update;
  const char *image, *project_dir, *subdir, *network, *pull, *aws_role, *pool;
  bool memory_given, cpus_given, pids_given, timeout_given, idle_given, keep_given;
  int64_t memory, cpus, pids, timeout, idle, keep;
  bool list_given[N_LISTS];
  berth_strv lists[N_LISTS];
  berth_kv *env, *secret;
  size_t n_env, n_secret;
  berth_strv unset_env, unset_secret;
} stack_edit;

static void
edit_free(stack_edit *e)
{
  for (int i = 0; i < N_LISTS; i++)
    berth_strv_clear(&e->lists[i]);
  berth_kv_array_free(e->env, e->n_env);
  berth_kv_array_free(e->secret, e->n_secret);
  berth_strv_clear(&e->unset_env);
  berth_strv_clear(&e->unset_secret);
}

static int
oom(berth_error **err)
{
  return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
}

static int
set_kv(berth_kv **kv, size_t *n, const char *arg, bool secret, berth_error **err)
{
  char *k = NULL, *v = NULL;
  int rc = secret ? berth_parse_secret_env_pair(arg, &k, &v, err) : berth_parse_env_pair(arg, &k, &v, err);
  if (rc < 0)
    return berth_error_wrap(err, secret ? "--secret-env" : "--env");
  rc = berth_kv_set(kv, n, k, v) < 0 ? oom(err) : 0;
  free(k);
  if (v) {
    explicit_bzero(v, strlen(v));
    free(v);
  }
  return rc;
}

static int
parse_number_flag(int opt, const char *arg, stack_edit *e, berth_error **err)
{
  int rc = 0;
  switch (opt) {
  case OPT_MEMORY:
    e->memory_given = true;
    if ((rc = berth_parse_size(arg, &e->memory, err)) < 0)
      return berth_error_wrap(err, "--memory");
    break;
  case OPT_CPUS:
    e->cpus_given = true;
    if ((rc = berth_parse_cpus(arg, &e->cpus, err)) < 0)
      return berth_error_wrap(err, "--cpus");
    break;
  case OPT_PIDS:
    e->pids_given = true;
    if ((rc = berth_parse_int64(arg, 0, 4194304, &e->pids, err)) < 0)
      return berth_error_wrap(err, "--pids");
    break;
  case OPT_TIMEOUT:
  case OPT_IDLE_TIMEOUT: {
    const char *flag = opt == OPT_TIMEOUT ? "--timeout" : "--idle-timeout";
    int64_t *dst = opt == OPT_TIMEOUT ? &e->timeout : &e->idle;
    *(opt == OPT_TIMEOUT ? &e->timeout_given : &e->idle_given) = true;
    if ((rc = berth_parse_duration_ms(arg, dst, err)) < 0)
      return berth_error_wrap(err, "%s", flag);
    if (*dst == 0)
      return berth_error_set(err, BERTH_EINVAL, "%s: duration must be positive", flag);
    break;
  }
  case OPT_KEEP_VERSIONS:
    e->keep_given = true;
    if ((rc = berth_parse_int64(arg, 1, BERTH_MAX_KEEP_VERSIONS, &e->keep, err)) < 0)
      return berth_error_wrap(err, "--keep-versions");
    break;
  }
  return rc;
}

static int
parse_edit_flag(int opt, const char *arg, stack_edit *e, berth_error **err)
{
  for (int i = 0; i < N_LISTS; i++)
    if (opt == list_opts[i]) {
      e->list_given[i] = true;
      if (*arg == '\0') { /* '' clears the list */
        berth_strv_clear(&e->lists[i]);
        return 0;
      }
      return berth_strv_push(&e->lists[i], arg) < 0 ? oom(err) : 0;
    }
  switch (opt) {
  case OPT_IMAGE:
    e->image = arg;
    return 0;
  case OPT_PROJECT_DIR:
    e->project_dir = arg;
    return 0;
  case OPT_SUBDIR:
    e->subdir = arg;
    return 0;
  case OPT_NETWORK:
    e->network = arg;
    return 0;
  case OPT_PULL:
    e->pull = arg;
    return 0;
  case OPT_POOL:
    e->pool = arg;
    return 0;
  case OPT_OIDC_AWS_ROLE:
    e->aws_role = arg;
    return 0;
  case OPT_ENV:
    return set_kv(&e->env, &e->n_env, arg, false, err);
  case OPT_SECRET_ENV:
    return set_kv(&e->secret, &e->n_secret, arg, true, err);
  case OPT_UNSET_ENV:
  case OPT_UNSET_SECRET_ENV:
    if (!e->is_update)
      return berth_error_set(err, BERTH_EINVAL, "--%s is only for 'berth stack update'",
                             opt == OPT_UNSET_ENV ? "unset-env" : "unset-secret-env");
    return berth_strv_push(opt == OPT_UNSET_ENV ? &e->unset_env : &e->unset_secret, arg) < 0 ? oom(err) : 0;
  default:
    return parse_number_flag(opt, arg, e, err);
  }
}

static int
replace_str(char **dst, const char *src, berth_error **err)
{
  char *d = src ? strdup(src) : NULL;
  if (src && d == NULL)
    return oom(err);
  free(*dst);
  *dst = d;
  return 0;
}

static int
apply_env(berth_kv **kv, size_t *n, const berth_kv *add, size_t n_add, const berth_strv *unset, const char *what,
          const char *stack, berth_error **err)
{
  for (size_t i = 0; i < unset->n; i++)
    if (berth_kv_unset(kv, n, unset->v[i]) == 0)
      return berth_error_set(err, BERTH_EINVAL, "%s `%s` is not set on stack `%s`", what, unset->v[i], stack);
  for (size_t i = 0; i < n_add; i++)
    if (berth_kv_set(kv, n, add[i].key, add[i].value) < 0)
      return oom(err);
  return 0;
}

/* Applies the edit to s (the file system parts are checked by berth_stack_check_host). */
static int
apply_edit(stack_edit *e, berth_stack *s, berth_error **err)
{
  int rc = 0;
  if ((e->image && (rc = replace_str(&s->image, e->image, err)) < 0)
      || (e->project_dir && (rc = replace_str(&s->project_dir, *e->project_dir ? e->project_dir : NULL, err)) < 0)
      || (e->subdir && (rc = replace_str(&s->subdir, *e->subdir ? e->subdir : NULL, err)) < 0)
      || (e->network && (rc = replace_str(&s->network, e->network, err)) < 0)
      || (e->pull && (rc = replace_str(&s->pull_policy, e->pull, err)) < 0)
      || (e->aws_role && (rc = replace_str(&s->oidc_aws_role, *e->aws_role ? e->aws_role : NULL, err)) < 0)
      || (e->pool && (rc = replace_str(&s->pool, *e->pool ? e->pool : NULL, err)) < 0))
    return rc;
  if (e->memory_given)
    s->memory_bytes = e->memory;
  if (e->cpus_given)
    s->nano_cpus = e->cpus;
  if (e->pids_given)
    s->pids = e->pids;
  if (e->timeout_given)
    s->timeout_ms = e->timeout;
  if (e->idle_given)
    s->idle_timeout_ms = e->idle;
  if (e->keep_given)
    s->keep_versions = (int) e->keep;
  for (int i = 0; i < N_LISTS; i++)
    if (e->list_given[i]) {
      berth_strv *dst = stack_list(s, i);
      berth_strv_clear(dst);
      *dst = e->lists[i];
      e->lists[i] = (berth_strv){ NULL, 0 };
    }
  if ((rc = apply_env(&s->env, &s->n_env, e->env, e->n_env, &e->unset_env, "env", s->name, err)) < 0
      || (rc = apply_env(&s->secret_env, &s->n_secret_env, e->secret, e->n_secret, &e->unset_secret, "secret env",
                         s->name, err))
             < 0)
    return rc;
  /* a variable moved between plain and secret: the newest flag wins */
  for (size_t i = 0; i < e->n_env; i++)
    berth_kv_unset(&s->secret_env, &s->n_secret_env, e->env[i].key);
  for (size_t i = 0; i < e->n_secret; i++)
    berth_kv_unset(&s->env, &s->n_env, e->secret[i].key);
  return 0;
}

static int
bad_flag(int opt, const char *cmd, char **argv, int idx)
{
  const char *arg = idx > 0 ? argv[idx - 1] : "?";
  if (opt == ':')
    return cli_usage_error("flag `%s` needs a value (see 'berth stack %s --help')", arg, cmd);
  if (optopt > 0 && optopt < 256)
    return cli_usage_error("unknown flag `-%c` for 'berth stack %s' (see 'berth stack %s --help')", optopt, cmd, cmd);
  return cli_usage_error("unknown flag `%s` for 'berth stack %s' (see 'berth stack %s --help')", arg, cmd, cmd);
}

static int
open_store(berth_store **st, berth_error **err)
{
  cleanup_free char *home = berth_home_default();
  if (home == NULL)
    return oom(err);
  return berth_store_open(home, st, err);
}

/* The create/update command line into e: 0, -1 when --help was printed, or the exit code after the error. */
static int
edit_parse(int argc, char **argv, bool is_update, stack_edit *e, const char **name)
{
  const char *cmd = is_update ? "update" : "create";
  berth_error *err = NULL;
  int opt;
  optind = 0;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":", edit_options, NULL)) != -1) {
    if (opt == OPT_HELP) {
      printf("usage: berth stack %s NAME%s [FLAGS...]\n\nflags:\n%s%s", cmd, is_update ? "" : " --image REF",
             flags_help, is_update ? update_extra_help : "");
      return -1;
    }
    if (opt == '?' || opt == ':')
      return bad_flag(opt, cmd, argv, optind);
    if (parse_edit_flag(opt, optarg, e, &err) < 0)
      return cli_fail(err);
  }
  if (optind >= argc)
    return cli_usage_error("'berth stack %s' needs a stack NAME (see 'berth stack %s --help')", cmd, cmd);
  if (optind + 1 < argc)
    return cli_usage_error("unexpected argument `%s` for 'berth stack %s'", argv[optind + 1], cmd);
  *name = argv[optind];
  if (berth_stack_validate_name(*name, &err) < 0)
    return cli_fail(err);
  if (!is_update && e->image == NULL)
    return cli_usage_error("'berth stack create' needs --image REF");
  return 0;
}

static int
cmd_edit(int argc, char **argv, bool is_update)
{
  stack_edit e = { .is_update = is_update };
  berth_error *err = NULL;
  berth_stack *s = NULL;
  berth_store *st = NULL;
  const char *name = NULL;
  cleanup_free char *home = berth_home_default();
  int rc = edit_parse(argc, argv, is_update, &e, &name);
  if (rc != 0) {
    rc = rc < 0 ? 0 : rc;
    goto out;
  }
  if (!is_update) {
    s = berth_stack_new();
    if (s == NULL || (s->name = strdup(name)) == NULL) {
      rc = cli_fail((oom(&err), err));
      goto out;
    }
  } else if (open_store(&st, &err) < 0 || berth_store_stack_get(st, name, &s, &err) < 0) {
    rc = cli_fail(err);
    goto out;
  }
  /* everything is checked before the store is opened for a create, so a bad flag leaves nothing behind */
  if (home == NULL || apply_edit(&e, s, &err) < 0
      || berth_stack_check_host(s, NULL, e.project_dir != NULL, e.subdir != NULL, &err) < 0
      || berth_stack_validate(s, &err) < 0 || berth_stack_check_host(s, home, false, false, &err) < 0) {
    rc = cli_fail(err ? err : (oom(&err), err));
    goto out;
  }
  if (!is_update && open_store(&st, &err) < 0) {
    rc = cli_fail(err);
    goto out;
  }
  {
    char *actor = cli_current_user();
    int wrc = is_update ? berth_action_stack_update(st, s, actor, &err) : berth_action_stack_create(st, s, actor, &err);
    free(actor);
    if (wrc < 0) {
      rc = cli_fail(err);
      goto out;
    }
  }
  printf("%s stack %s\n", is_update ? "updated" : "created", s->name);
  {
    char *w = berth_stack_image_warning(st, s);
    if (w != NULL)
      fprintf(stderr, "berth: warning: %s\n", w);
    free(w);
  }
out:
  edit_free(&e);
  berth_stack_free(s);
  berth_store_close(st);
  return rc;
}

static const char *const list_fields[N_LISTS]
    = { "init", "before_init", "before_perform", "after_perform", "after_run", "persist", "labels", "oidc_audiences",
        "credentials" };

/* {"K": "V"} into o[field]: the variables to unset first (null), then those to set, in apply_env's order. */
static void
add_env(cJSON *o, const char *field, const berth_kv *kv, size_t n, const berth_strv *unset)
{
  if (n == 0 && unset->n == 0)
    return;
  cJSON *env = cJSON_AddObjectToObject(o, field);
  for (size_t i = 0; env && i < unset->n + n; i++)
    cJSON_AddItemToObject(env, i < unset->n ? unset->v[i] : kv[i - unset->n].key,
                          i < unset->n ? cJSON_CreateNull() : cJSON_CreateString(kv[i - unset->n].value));
}

/* The local checks that need no store: the project dir is resolved on this host, the subdir normalized. */
static int
edit_json(const stack_edit *e, const char *name, cJSON *o, berth_error **err)
{
  int rc = 0;
  if (!e->is_update)
    cJSON_AddStringToObject(o, "name", name);
  if (e->image)
    cJSON_AddStringToObject(o, "image", e->image);
  if (e->project_dir) {
    cleanup_free char *abs = NULL;
    if (*e->project_dir && (rc = berth_stack_resolve_project_dir(e->project_dir, &abs, err)) < 0)
      return rc;
    cJSON_AddItemToObject(o, "project_dir", abs ? cJSON_CreateString(abs) : cJSON_CreateNull());
  }
  if (e->subdir) {
    cleanup_free char *norm = NULL;
    if (*e->subdir && (rc = berth_parse_relative_path("subdir", e->subdir, &norm, err)) < 0)
      return rc;
    cJSON_AddItemToObject(o, "subdir", norm ? cJSON_CreateString(norm) : cJSON_CreateNull());
  }
  if (e->network)
    cJSON_AddStringToObject(o, "network", e->network);
  if (e->pull)
    cJSON_AddStringToObject(o, "pull_policy", e->pull);
  if (e->aws_role)
    cJSON_AddItemToObject(o, "oidc_aws_role", *e->aws_role ? cJSON_CreateString(e->aws_role) : cJSON_CreateNull());
  if (e->pool)
    cJSON_AddItemToObject(o, "pool", *e->pool ? cJSON_CreateString(e->pool) : cJSON_CreateNull());
  const struct {
    bool given;
    const char *field;
    int64_t v;
  } nums[] = { { e->memory_given, "memory_bytes", e->memory },
               { e->cpus_given, "nano_cpus", e->cpus },
               { e->pids_given, "pids", e->pids },
               { e->timeout_given, "timeout_ms", e->timeout },
               { e->idle_given, "idle_timeout_ms", e->idle },
               { e->keep_given, "keep_versions", e->keep } };
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
    if (nums[i].given)
      cJSON_AddNumberToObject(o, nums[i].field, (double) nums[i].v);
  for (int i = 0; i < N_LISTS; i++) {
    cJSON *a = e->list_given[i] ? cJSON_AddArrayToObject(o, list_fields[i]) : NULL;
    for (size_t k = 0; a && k < e->lists[i].n; k++)
      cJSON_AddItemToArray(a, cJSON_CreateString(e->lists[i].v[k]));
  }
  add_env(o, "env", e->env, e->n_env, &e->unset_env);
  add_env(o, "secret_env", e->secret, e->n_secret, &e->unset_secret);
  return 0;
}

int
stack_edit_body(int argc, char **argv, bool is_update, const char **name, cJSON **body)
{
  stack_edit e = { .is_update = is_update };
  berth_error *err = NULL;
  *body = NULL;
  int rc = edit_parse(argc, argv, is_update, &e, name);
  if (rc == 0) {
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
      oom(&err);
    if (o == NULL || edit_json(&e, *name, o, &err) < 0) {
      stack_body_free(o);
      rc = cli_fail(err);
    } else {
      *body = o;
    }
  }
  edit_free(&e);
  return rc;
}

void
stack_body_free(cJSON *body)
{
  cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(body, "secret_env"))
  {
    if (cJSON_IsString(e))
      explicit_bzero(e->valuestring, strlen(e->valuestring));
  }
  cJSON_Delete(body);
}

/* Parses [--json] [--help] and the expected number of positional args (0 or 1). */
static int
parse_read_args(int argc, char **argv, const char *cmd, const char *usage, int want_args, bool *json, const char **name,
                bool *done)
{
  int opt;
  optind = 0;
  opterr = 0;
  *done = false;
  while ((opt = getopt_long(argc, argv, ":", read_options, NULL)) != -1) {
    if (opt == OPT_HELP) {
      fputs(usage, stdout);
      *done = true;
      return 0;
    }
    if (opt == OPT_JSON && json != NULL) {
      *json = true;
      continue;
    }
    return bad_flag(opt, cmd, argv, optind);
  }
  int nargs = argc - optind;
  if (nargs < want_args)
    return cli_usage_error("'berth stack %s' needs a stack NAME (see 'berth stack %s --help')", cmd, cmd);
  if (nargs > want_args)
    return cli_usage_error("unexpected argument `%s` for 'berth stack %s'", argv[optind + want_args], cmd);
  if (want_args)
    *name = argv[optind];
  return 0;
}

static const char show_usage[] = "usage: berth stack show NAME [--json]\n\n"
                                 "Shows one stack; secret values are printed as ***.\n";
static const char list_usage[] = "usage: berth stack list [--json]\n\n"
                                 "Lists stacks; --json prints {\"stacks\": [...]} (secret values as ***).\n";
static const char delete_usage[] = "usage: berth stack delete NAME\n\n"
                                   "Deletes a stack and its persisted state versions (refused while a task of the "
                                   "stack is active). Task records are kept.\n";
static const char state_usage[] = "usage: berth stack state NAME [--json]\n\n"
                                  "Lists the stack's persisted state versions, newest first.\n";

static int
cmd_show(int argc, char **argv)
{
  bool json = false, done = false;
  const char *name = NULL;
  int rc = parse_read_args(argc, argv, "show", show_usage, 1, &json, &name, &done);
  if (rc != 0 || done)
    return rc;
  berth_error *err = NULL;
  if (berth_stack_validate_name(name, &err) < 0)
    return cli_fail(err);
  berth_store *st = NULL;
  berth_stack *s = NULL;
  if (open_store(&st, &err) < 0 || berth_store_stack_get(st, name, &s, &err) < 0) {
    berth_store_close(st);
    return cli_fail(err);
  }
  cJSON *j = berth_stack_to_json(s);
  if (json)
    cli_print_json(j);
  else
    cli_render_stack(j);
  cJSON_Delete(j);
  berth_stack_free(s);
  berth_store_close(st);
  return 0;
}

static int
cmd_list(int argc, char **argv)
{
  bool json = false, done = false;
  int rc = parse_read_args(argc, argv, "list", list_usage, 0, &json, NULL, &done);
  if (rc != 0 || done)
    return rc;
  berth_error *err = NULL;
  berth_store *st = NULL;
  berth_stack **v = NULL;
  size_t n = 0;
  if (open_store(&st, &err) < 0 || berth_store_stack_list(st, &v, &n, &err) < 0) {
    berth_store_close(st);
    return cli_fail(err);
  }
  cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "stacks");
  for (size_t i = 0; i < n; i++)
    cJSON_AddItemToArray(arr, berth_stack_to_json(v[i]));
  if (json)
    cli_print_json(o);
  else
    cli_render_stack_list(arr);
  cJSON_Delete(o);
  berth_stacks_free(v, n);
  berth_store_close(st);
  return 0;
}

static int
cmd_delete(int argc, char **argv)
{
  bool done = false;
  const char *name = NULL;
  int rc = parse_read_args(argc, argv, "delete", delete_usage, 1, NULL, &name, &done);
  if (rc != 0 || done)
    return rc;
  berth_error *err = NULL;
  if (berth_stack_validate_name(name, &err) < 0)
    return cli_fail(err);
  berth_store *st = NULL;
  char *actor = cli_current_user();
  if (open_store(&st, &err) < 0 || berth_action_stack_delete(st, name, actor, &err) < 0) {
    free(actor);
    berth_store_close(st);
    return cli_fail(err);
  }
  free(actor);
  berth_store_close(st);
  printf("deleted stack %s\n", name);
  return 0;
}

static int
cmd_state(int argc, char **argv)
{
  bool json = false, done = false;
  const char *name = NULL;
  int rc = parse_read_args(argc, argv, "state", state_usage, 1, &json, &name, &done);
  if (rc != 0 || done)
    return rc;
  berth_error *err = NULL;
  if (berth_stack_validate_name(name, &err) < 0)
    return cli_fail(err);
  berth_store *st = NULL;
  berth_stack *s = NULL;
  cJSON *j = NULL;
  if (open_store(&st, &err) < 0 || berth_store_stack_get(st, name, &s, &err) < 0
      || (j = berth_stack_state_json(st, s, &err)) == NULL) {
    berth_stack_free(s);
    berth_store_close(st);
    return cli_fail(err);
  }
  if (json)
    cli_print_json(j);
  else
    cli_render_stack_state(j);
  cJSON_Delete(j);
  berth_stack_free(s);
  berth_store_close(st);
  return 0;
}

static int
cmd_lock(int argc, char **argv, bool lock)
{
  static const struct option opts[] = { { "note", required_argument, NULL, 'n' },
                                        { "force", no_argument, NULL, 'f' },
                                        { "help", no_argument, NULL, 'h' },
                                        { 0 } };
  const char *note = NULL;
  bool force = false;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (c == 'n' && lock)
      note = optarg;
    else if (c == 'f' && !lock)
      force = true;
    else if (c == 'h') {
      printf(lock ? "usage: berth stack lock NAME [--note TEXT]\n\nWhile locked only you can start tasks on the "
                    "stack; the lock never expires.\n"
                  : "usage: berth stack unlock NAME [--force]\n\nThe owner unlocks; an admin may --force.\n");
      return 0;
    } else
      return cli_usage_error("stack %s: unknown option (see 'berth stack %s --help')", argv[0], argv[0]);
  }
  if (optind != argc - 1)
    return cli_usage_error("stack %s: usage: berth stack %s NAME", argv[0], argv[0]);
  const char *name = argv[optind];
  berth_error *err = NULL;
  if (berth_stack_validate_name(name, &err) < 0)
    return cli_fail(err);
  berth_store *st = NULL;
  int rc = cli_open_store(&st);
  if (rc)
    return rc;
  char *actor = cli_current_user();
  if (lock)
    rc = berth_action_stack_lock(st, name, actor, note, &err);
  else
    rc = berth_action_stack_unlock(st, name, actor, force, &err);
  if (rc < 0)
    rc = cli_fail(err);
  else
    printf("%s stack %s\n", lock ? "locked" : "unlocked", name);
  free(actor);
  berth_store_close(st);
  return rc;
}

int
cmd_stack(int argc, char **argv)
{
  if (argc < 2) {
    fputs(usage_main, stderr);
    return 125;
  }
  const char *sub = argv[1];
  if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
    fputs(usage_main, stdout);
    return 0;
  }
  if (strcmp(sub, "create") == 0)
    return cmd_edit(argc - 1, argv + 1, false);
  if (strcmp(sub, "update") == 0)
    return cmd_edit(argc - 1, argv + 1, true);
  if (strcmp(sub, "show") == 0)
    return cmd_show(argc - 1, argv + 1);
  if (strcmp(sub, "list") == 0)
    return cmd_list(argc - 1, argv + 1);
  if (strcmp(sub, "delete") == 0)
    return cmd_delete(argc - 1, argv + 1);
  if (strcmp(sub, "state") == 0)
    return cmd_state(argc - 1, argv + 1);
  if (strcmp(sub, "lock") == 0)
    return cmd_lock(argc - 1, argv + 1, true);
  if (strcmp(sub, "unlock") == 0)
    return cmd_lock(argc - 1, argv + 1, false);
  return cli_usage_error("unknown command 'stack %s' (see 'berth stack --help')", sub);
}
