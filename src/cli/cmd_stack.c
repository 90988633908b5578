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

#include "berth/cleanup.h"
#include "berth/parse.h"
#include "berth/stack_host.h"
#include "berth/store.h"
#include "backend.h"
#include "cli.h"
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
      "  --network none|bridge|host  container network (default none; host only if the admin allows it)\n"
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
static const int list_opts[N_LISTS]
    = { OPT_INIT,    OPT_BEFORE_INIT, OPT_BEFORE_PERFORM, OPT_AFTER_PERFORM, OPT_AFTER_RUN,
        OPT_PERSIST, OPT_LABEL,       OPT_OIDC_AUDIENCE,  OPT_CREDENTIALS };

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
    if (e->memory > BERTH_MAX_MEMORY_BYTES)
      return berth_error_set(err, BERTH_EINVAL, "--memory `%s` is more than the most a stack takes (1 PiB)", arg);
    break;
  case OPT_CPUS:
    e->cpus_given = true;
    if ((rc = berth_parse_cpus(arg, &e->cpus, err)) < 0)
      return berth_error_wrap(err, "--cpus");
    if (e->cpus > BERTH_MAX_NANO_CPUS)
      return berth_error_set(err, BERTH_EINVAL, "--cpus `%s` is more than the most a stack takes (1024)", arg);
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
    if (*dst > BERTH_MAX_DURATION_MS)
      return berth_error_set(err, BERTH_EINVAL, "%s `%s` is longer than the most a stack takes (12725d)", flag, arg);
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
    if (!berth_env_name_valid(arg))
      return berth_error_set(err, BERTH_EINVAL, "--%s `%.64s` is not a variable name",
                             opt == OPT_UNSET_ENV ? "unset-env" : "unset-secret-env", arg);
    return berth_strv_push(opt == OPT_UNSET_ENV ? &e->unset_env : &e->unset_secret, arg) < 0 ? oom(err) : 0;
  default:
    return parse_number_flag(opt, arg, e, err);
  }
}

static int
bad_flag(int opt, const char *cmd, char **argv)
{
  char full[32];
  snprintf(full, sizeof full, "stack %s", cmd);
  return cli_flag_error(opt, full, argv);
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
      return bad_flag(opt, cmd, argv);
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

static const char *const list_fields[N_LISTS]
    = { "init",    "before_init", "before_perform", "after_perform", "after_run",
        "persist", "labels",      "oidc_audiences", "credentials" };

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

static void stack_body_free(cJSON *body);

/* The create/update command line as the JSON body of POST /v1/stacks (with "name") or PATCH /v1/stacks/{name}: 0,
 * -1 when --help was printed, or the exit code after the error. Wipe it with stack_body_free. */
static int
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

static void
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
    return bad_flag(opt, cmd, argv);
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

/* "created stack NAME", and the warnings of the record (an image the allowlist denies). */
static void
show_edited(const cli_request *rq, const cJSON *rec)
{
  printf("%s stack %s\n", rq->verb, rq->arg);
  const cJSON *w;
  cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(rec, "warnings"))
  {
    if (cJSON_IsString(w))
      fprintf(stderr, "berth: warning: %s\n", w->valuestring);
  }
}

static int
cmd_edit(int argc, char **argv, bool is_update)
{
  static const cli_view view = { show_edited, NULL, NULL };
  cli_request rq = { .verb = is_update ? "updated" : "created" };
  int rc = stack_edit_body(argc, argv, is_update, &rq.arg, &rq.body);
  if (rc != 0)
    return rc < 0 ? 0 : rc;
  return cli_run(is_update ? CLI_OP_STACK_UPDATE : CLI_OP_STACK_CREATE, &rq, &view);
}

static void
show_stack(const cli_request *rq, const cJSON *rec)
{
  (void) rq;
  cli_render_stack(rec);
}

static void
show_stack_list(const cli_request *rq, const cJSON *rec)
{
  (void) rq;
  cli_render_stack_list(cJSON_GetObjectItemCaseSensitive(rec, "stacks"));
}

static void
show_stack_state(const cli_request *rq, const cJSON *rec)
{
  (void) rq;
  cli_render_stack_state(rec);
}

/* "deleted stack NAME", "locked stack NAME", ...: the line of a change, after the verb of the command. */
static void
show_changed(const cli_request *rq, const cJSON *rec)
{
  (void) rec;
  printf("%s stack %s\n", rq->verb, rq->arg);
}

/* A read (or delete) of one or no stack: the [--json] [--help] NAME command line, the operation, the view. */
static int
read_command(int argc, char **argv, const char *cmd, const char *usage, int want_args, cli_op op, bool json_flag,
             const cli_view *view)
{
  bool done = false;
  cli_request rq = { .verb = "deleted" };
  int rc = parse_read_args(argc, argv, cmd, usage, want_args, json_flag ? &rq.json : NULL, &rq.arg, &done);
  if (rc != 0 || done)
    return rc;
  berth_error *err = NULL;
  if (rq.arg && berth_stack_validate_name(rq.arg, &err) < 0)
    return cli_fail(err);
  return cli_run(op, &rq, view);
}

static int
cmd_lock(int argc, char **argv, bool lock)
{
  static const struct option opts[] = { { "note", required_argument, NULL, 'n' },
                                        { "force", no_argument, NULL, 'f' },
                                        { "help", no_argument, NULL, 'h' },
                                        { 0 } };
  static const cli_view view = { show_changed, NULL, NULL };
  const char *note = NULL;
  cli_request rq = { .verb = lock ? "locked" : "unlocked" };
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    if (c == 'n' && lock)
      note = optarg;
    else if (c == 'f' && !lock)
      rq.force = true;
    else if (c == 'h') {
      printf(lock ? "usage: berth stack lock NAME [--note TEXT]\n\nWhile locked only you can start tasks on the "
                    "stack; the lock never expires.\n"
                  : "usage: berth stack unlock NAME [--force]\n\nThe owner unlocks; an admin may --force.\n");
      return 0;
    } else
      return cli_flag_error(c, lock ? "stack lock" : "stack unlock", argv);
  }
  if (optind != argc - 1)
    return cli_usage_error("stack %s: usage: berth stack %s NAME", argv[0], argv[0]);
  rq.arg = argv[optind];
  berth_error *err = NULL;
  if (berth_stack_validate_name(rq.arg, &err) < 0)
    return cli_fail(err);
  if (lock) {
    rq.body = cJSON_CreateObject();
    if (note)
      cJSON_AddStringToObject(rq.body, "note", note);
  }
  return cli_run(lock ? CLI_OP_STACK_LOCK : CLI_OP_STACK_UNLOCK, &rq, &view);
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
  if (strcmp(sub, "create") == 0 || strcmp(sub, "update") == 0)
    return cmd_edit(argc - 1, argv + 1, strcmp(sub, "update") == 0);
  static const cli_view show = { show_stack, NULL, NULL }, list = { show_stack_list, NULL, NULL },
                        state = { show_stack_state, NULL, NULL }, deleted = { show_changed, NULL, NULL };
  if (strcmp(sub, "show") == 0)
    return read_command(argc - 1, argv + 1, "show", show_usage, 1, CLI_OP_STACK_SHOW, true, &show);
  if (strcmp(sub, "list") == 0)
    return read_command(argc - 1, argv + 1, "list", list_usage, 0, CLI_OP_STACK_LIST, true, &list);
  if (strcmp(sub, "delete") == 0)
    return read_command(argc - 1, argv + 1, "delete", delete_usage, 1, CLI_OP_STACK_DELETE, false, &deleted);
  if (strcmp(sub, "state") == 0)
    return read_command(argc - 1, argv + 1, "state", state_usage, 1, CLI_OP_STACK_STATE, true, &state);
  if (strcmp(sub, "lock") == 0)
    return cmd_lock(argc - 1, argv + 1, true);
  if (strcmp(sub, "unlock") == 0)
    return cmd_lock(argc - 1, argv + 1, false);
  return cli_usage_error("unknown command 'stack %s' (see 'berth stack --help')", sub);
}
