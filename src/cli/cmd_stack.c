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
#include "berth/store.h"
#include "cli.h"

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
      "  --keep-versions N           state versions kept (default 10)\n";

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
#define N_LISTS 7
static const int list_opts[N_LISTS]
    = { OPT_INIT, OPT_BEFORE_INIT, OPT_BEFORE_PERFORM, OPT_AFTER_PERFORM, OPT_AFTER_RUN, OPT_PERSIST, OPT_LABEL };

static berth_strv *
stack_list(berth_stack *s, int idx)
{
  berth_strv *lists[N_LISTS]
      = { &s->init, &s->before_init, &s->before_perform, &s->after_perform, &s->after_run, &s->persist, &s->labels };
  return lists[idx];
}

/* What the user asked to change: NULL / false means "not given". */
typedef struct stack_edit {
  bool is_update;
  const char *image, *project_dir, *subdir, *network, *pull;
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

/* The project dir must exist, be a directory and be readable; it is stored absolute (realpath). */
static int
resolve_project_dir(const char *dir, char **out, berth_error **err)
{
  char *abs = realpath(dir, NULL);
  if (abs == NULL) {
    if (errno == ENOENT)
      return berth_error_set(err, BERTH_EINVAL, "project dir `%s` does not exist", dir);
    return berth_error_set_errno(err, BERTH_EINVAL, errno, "project dir `%s` cannot be resolved", dir);
  }
  struct stat sb;
  int rc = 0;
  if (stat(abs, &sb) < 0)
    rc = berth_error_set_errno(err, BERTH_EINVAL, errno, "project dir `%s`", dir);
  else if (!S_ISDIR(sb.st_mode))
    rc = berth_error_set(err, BERTH_EINVAL, "project dir `%s` is not a directory", dir);
  else {
    DIR *d = opendir(abs);
    if (d == NULL || access(abs, R_OK | X_OK) < 0)
      rc = berth_error_set_errno(err, BERTH_EINVAL, errno, "project dir `%s` is not readable", dir);
    if (d)
      closedir(d);
  }
  if (rc < 0) {
    free(abs);
    return rc;
  }
  *out = abs;
  return 0;
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

/* Applies the edit to s and checks the file system parts (project dir, subdir). */
static int
apply_edit(stack_edit *e, berth_stack *s, berth_error **err)
{
  int rc = 0;
  if (e->image && (rc = replace_str(&s->image, e->image, err)) < 0)
    return rc;
  if (e->project_dir) {
    char *abs = NULL;
    if (*e->project_dir && (rc = resolve_project_dir(e->project_dir, &abs, err)) < 0)
      return rc;
    free(s->project_dir);
    s->project_dir = abs;
  }
  if (e->subdir) {
    char *norm = NULL;
    if (*e->subdir && (rc = berth_parse_relative_path("subdir", e->subdir, &norm, err)) < 0)
      return rc;
    free(s->subdir);
    s->subdir = norm;
  }
  if ((e->network && (rc = replace_str(&s->network, e->network, err)) < 0)
      || (e->pull && (rc = replace_str(&s->pull_policy, e->pull, err)) < 0))
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
    s->keep_versions = (int)e->keep;
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
  if (s->subdir && (e->subdir || e->project_dir)) {
    if (s->project_dir == NULL)
      return berth_error_set(err, BERTH_EINVAL, "--subdir needs a project dir (--project-dir DIR)");
    cleanup_free char *path = NULL;
    struct stat sb;
    if (asprintf(&path, "%s/%s", s->project_dir, s->subdir) < 0)
      return oom(err);
    if (stat(path, &sb) < 0 || !S_ISDIR(sb.st_mode))
      return berth_error_set(err, BERTH_EINVAL, "subdir `%s` is not a directory under %s", s->subdir, s->project_dir);
  }
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

/* Opens the store at BERTH_HOME (or its default). */
/* The admin's config may restrict the pull policies stacks can choose. */
static int
check_admin_config(berth_store *st, const berth_stack *s, berth_error **err)
{
  berth_config cfg;
  int rc = berth_config_load(berth_store_home(st), &cfg, err);
  if (rc < 0)
    return rc;
  if (s->pull_policy)
    rc = berth_config_check_pull_policy(&cfg, s->pull_policy, err);
  berth_config_clear(&cfg);
  return rc;
}

static int
open_store(berth_store **st, berth_error **err)
{
  cleanup_free char *home = berth_home_default();
  if (home == NULL)
    return oom(err);
  return berth_store_open(home, st, err);
}

static int
cmd_edit(int argc, char **argv, bool is_update)
{
  const char *cmd = is_update ? "update" : "create";
  stack_edit e = { .is_update = is_update };
  berth_error *err = NULL;
  berth_stack *s = NULL;
  berth_store *st = NULL;
  int opt, rc = 0;
  optind = 0;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":", edit_options, NULL)) != -1) {
    if (opt == OPT_HELP) {
      printf("usage: berth stack %s NAME%s [FLAGS...]\n\nflags:\n%s%s", cmd, is_update ? "" : " --image REF",
             flags_help, is_update ? update_extra_help : "");
      goto out;
    }
    if (opt == '?' || opt == ':') {
      rc = bad_flag(opt, cmd, argv, optind);
      goto out;
    }
    if (parse_edit_flag(opt, optarg, &e, &err) < 0) {
      rc = cli_fail(err);
      goto out;
    }
  }
  if (optind >= argc) {
    rc = cli_usage_error("'berth stack %s' needs a stack NAME (see 'berth stack %s --help')", cmd, cmd);
    goto out;
  }
  if (optind + 1 < argc) {
    rc = cli_usage_error("unexpected argument `%s` for 'berth stack %s'", argv[optind + 1], cmd);
    goto out;
  }
  const char *name = argv[optind];
  if (berth_stack_validate_name(name, &err) < 0) {
    rc = cli_fail(err);
    goto out;
  }
  if (!is_update && e.image == NULL) {
    rc = cli_usage_error("'berth stack create' needs --image REF");
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
  if (apply_edit(&e, s, &err) < 0 || berth_stack_validate(s, &err) < 0) {
    rc = cli_fail(err);
    goto out;
  }
  if ((!is_update && open_store(&st, &err) < 0) || check_admin_config(st, s, &err) < 0) {
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
out:
  edit_free(&e);
  berth_stack_free(s);
  berth_store_close(st);
  return rc;
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

static void
print_json(cJSON *j)
{
  char *text = j ? cJSON_Print(j) : NULL;
  if (text)
    printf("%s\n", text);
  free(text);
  cJSON_Delete(j);
}

static void
print_list(const char *title, const berth_strv *v)
{
  if (v->n == 0)
    return;
  printf("%s:\n", title);
  for (size_t i = 0; i < v->n; i++)
    printf("  %zu. %s\n", i + 1, v->v[i]);
}

static void
print_stack(const berth_stack *s)
{
  char b1[64], b2[64];
  printf("name:           %s\n", s->name);
  printf("image:          %s\n", s->image);
  printf("project dir:    %s\n", s->project_dir ? s->project_dir : "(none: empty workspace)");
  printf("subdir:         %s\n", s->subdir ? s->subdir : "-");
  printf("network:        %s\n", s->network);
  printf("pull policy:    %s\n", s->pull_policy);
  printf("memory:         %s\n", s->memory_bytes ? berth_format_size(s->memory_bytes, b1, sizeof b1) : "default");
  printf("cpus:           %s\n", s->nano_cpus ? berth_format_cpus(s->nano_cpus, b1, sizeof b1) : "default");
  if (s->pids)
    printf("pids:           %lld\n", (long long)s->pids);
  else
    printf("pids:           default\n");
  printf("timeout:        %s\n", berth_format_duration(s->timeout_ms, b1, sizeof b1));
  printf("idle timeout:   %s\n", berth_format_duration(s->idle_timeout_ms, b1, sizeof b1));
  printf("keep versions:  %d\n", s->keep_versions);
  printf("persist:       ");
  for (size_t i = 0; i < s->persist.n; i++)
    printf(" %s", s->persist.v[i]);
  printf("%s\nlabels:        ", s->persist.n ? "" : " -");
  for (size_t i = 0; i < s->labels.n; i++)
    printf(" %s", s->labels.v[i]);
  printf("%s\n", s->labels.n ? "" : " -");
  if (s->lock_owner)
    printf("locked:         by %s since %s%s%s\n", s->lock_owner, berth_format_time(s->locked_at, b1, sizeof b1),
           s->lock_note ? ": " : "", s->lock_note ? s->lock_note : "");
  else
    printf("locked:         no\n");
  printf("created:        %s\n", berth_format_time(s->created_at, b1, sizeof b1));
  printf("updated:        %s\n", berth_format_time(s->updated_at, b2, sizeof b2));
  if (s->n_env)
    printf("env:\n");
  for (size_t i = 0; i < s->n_env; i++)
    printf("  %s=%s\n", s->env[i].key, s->env[i].value);
  if (s->n_secret_env)
    printf("secret env:\n");
  for (size_t i = 0; i < s->n_secret_env; i++)
    printf("  %s=***\n", s->secret_env[i].key);
  print_list("before init", &s->before_init);
  print_list("init", &s->init);
  print_list("before perform", &s->before_perform);
  print_list("after perform", &s->after_perform);
  print_list("after run", &s->after_run);
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
  if (json)
    print_json(berth_stack_to_json(s));
  else
    print_stack(s);
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
  if (json) {
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "stacks");
    for (size_t i = 0; i < n; i++)
      cJSON_AddItemToArray(arr, berth_stack_to_json(v[i]));
    print_json(o);
  } else {
    int wn = 4, wi = 5;
    for (size_t i = 0; i < n; i++) {
      wn = (int)strlen(v[i]->name) > wn ? (int)strlen(v[i]->name) : wn;
      wi = (int)strlen(v[i]->image) > wi ? (int)strlen(v[i]->image) : wi;
    }
    printf("%-*s  %-*s  %-7s  %-6s  %s\n", wn, "NAME", wi, "IMAGE", "NETWORK", "LOCKED", "LABELS");
    for (size_t i = 0; i < n; i++) {
      printf("%-*s  %-*s  %-7s  %-6s  ", wn, v[i]->name, wi, v[i]->image, v[i]->network,
             v[i]->lock_owner ? "yes" : "no");
      for (size_t l = 0; l < v[i]->labels.n; l++)
        printf("%s%s", l ? "," : "", v[i]->labels.v[l]);
      printf("%s\n", v[i]->labels.n ? "" : "-");
    }
  }
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
  berth_state_version *v = NULL;
  size_t n = 0;
  if (open_store(&st, &err) < 0 || berth_store_stack_get(st, name, &s, &err) < 0
      || berth_state_list(st, name, &v, &n, &err) < 0) {
    berth_stack_free(s);
    berth_store_close(st);
    return cli_fail(err);
  }
  char b1[64], b2[64];
  if (json) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "stack", name);
    cJSON *persist = cJSON_AddArrayToObject(o, "persist");
    for (size_t i = 0; i < s->persist.n; i++)
      cJSON_AddItemToArray(persist, cJSON_CreateString(s->persist.v[i]));
    cJSON *arr = cJSON_AddArrayToObject(o, "versions");
    for (size_t i = 0; i < n; i++) {
      cJSON *e = cJSON_CreateObject();
      cleanup_free char *path = berth_state_version_path(st, name, v[i].version);
      cJSON_AddNumberToObject(e, "version", (double)v[i].version);
      v[i].task_id ? cJSON_AddStringToObject(e, "task_id", v[i].task_id) : cJSON_AddNullToObject(e, "task_id");
      cJSON_AddStringToObject(e, "created_at", berth_format_time(v[i].created_at, b1, sizeof b1));
      cJSON_AddNumberToObject(e, "files", (double)v[i].files);
      cJSON_AddNumberToObject(e, "bytes", (double)v[i].bytes);
      cJSON_AddStringToObject(e, "path", path ? path : "");
      cJSON_AddItemToArray(arr, e);
    }
    print_json(o);
  } else if (n == 0) {
    printf("no state versions for stack %s yet%s\n", name,
           s->persist.n ? "" : " (it persists no paths; see --persist)");
  } else {
    printf("%-7s  %-26s  %-20s  %5s  %s\n", "VERSION", "TASK", "CREATED", "FILES", "SIZE");
    for (size_t i = 0; i < n; i++)
      printf("%-7lld  %-26s  %-20s  %5zu  %s\n", (long long)v[i].version, v[i].task_id ? v[i].task_id : "-",
             berth_format_time(v[i].created_at, b1, sizeof b1), v[i].files,
             berth_format_size(v[i].bytes, b2, sizeof b2));
  }
  berth_state_versions_free(v, n);
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
