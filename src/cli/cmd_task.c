/* berth task run | list | show | logs */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "berth/buf.h"
#include "berth/docker.h"
#include "berth/parse.h"
#include "berth/redactor.h"
#include "berth/store.h"
#include "berth/task_json.h"
#include "berth/task_follow.h"
#include "berth/task_log.h"
#include "berth/task_queue.h"
#include "berth/task_runner.h"
#include "berth/task_submit.h"
#include "cli.h"
#include "render.h"
#include "style.h"

static volatile sig_atomic_t stop_following;

static void
on_sigint(int sig)
{
  (void) sig;
  stop_following = 1;
}

/* ---- following a task log ---- */

typedef struct follow_out {
  bool split; /* stdout records to stdout, everything else to stderr (task run); else all to stdout (logs) */
  bool stdout_to_stderr;
  cli_log_out out; /* notes styled on a terminal */
} follow_out;

static int
on_record(void *ud, int kind, int phase, const char *data, size_t len)
{
  (void) phase;
  follow_out *fo = ud;
  int fd = 1;
  if (fo->split && (kind != BERTH_LOG_STDOUT || fo->stdout_to_stderr))
    fd = 2;
  cli_log_out_write(&fo->out, fd, kind, data, len);
  return 0; /* a closed terminal must not stop anything */
}

static void
on_waiting(void *ud, const char *reason)
{
  (void) ud;
  cli_note("waiting: %s", reason);
}

/* Prints the task's log; with follow, until the task ends (or Ctrl-C). Returns 0, 130 when interrupted, or 125. */
static int
follow_task(berth_store *st, const char *id, bool follow, follow_out *fo)
{
  berth_error *err = NULL;
  cli_log_out_init(&fo->out);
  int rc = berth_task_follow_waiting(st, id, follow, &stop_following, on_record, on_waiting, fo, &err);
  cli_log_out_finish(&fo->out);
  if (rc < 0)
    return cli_fail(err);
  if (rc == 1) {
    fprintf(stderr, "berth: stopped following task %s; it goes on (berth task logs %s --follow)\n", id, id);
    return 130;
  }
  return 0;
}

/* ---- task run ---- */

/* What task run and task retry do once the task is queued: print its id (--detach), or follow it to its end and exit
 * with its status (--json: the final record on stdout). */
static int
after_submit(berth_store *st, const char *id, const char *stack_name, bool detach, bool json)
{
  berth_error *err = NULL;
  if (detach) {
    printf("%s\n", id);
    return 0;
  }
  cli_note("task %s submitted on stack %s", id, stack_name);
  struct sigaction sa = { .sa_handler = on_sigint };
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  follow_out fo = { .split = true, .stdout_to_stderr = json };
  int rc = follow_task(st, id, true, &fo);
  if (rc == 0) {
    berth_task *fin = NULL;
    if (berth_store_task_get(st, id, &fin, &err) < 0) {
      rc = cli_fail(err);
    } else {
      rc = berth_task_exit_status(fin->state, fin->reason, fin->exit_code);
      if (json) {
        berth_secrets *shown = berth_display_secrets(st, fin->stack);
        cJSON *j = berth_task_to_json_redacted(fin, shown);
        berth_secrets_free(shown);
        cli_print_json(j);
        cJSON_Delete(j);
      } else if (rc != 0 && rc != fin->exit_code) {
        fprintf(stderr, "berth: task %s %s: %s\n", fin->id, fin->state, fin->reason ? fin->reason : "");
      }
      berth_task_free(fin);
    }
  }
  return rc;
}

static void
run_usage(FILE *f)
{
  fprintf(f, "usage: berth task run STACK [--skip-init] [--env K=V]... [--secret-env K[=V]]... [--detach] [--json] "
             "-- COMMAND...\n\n"
             "Runs COMMAND (words joined with spaces, run as sh -c) in a fresh container of STACK's image.\n"
             "The command's stdout goes to stdout, byte for byte; its stderr, hook output and berth's notes to "
             "stderr.\n"
             "Exit status: 0 finished; the command's status when it failed; 124 timeout; 125 berth could not run "
             "it.\n"
             "Ctrl-C stops following, never the task. --secret-env K reads the value from berth's environment.\n");
}

static int
task_run(int argc, char **argv)
{
  static const struct option opts[] = { { "skip-init", no_argument, NULL, 's' },
                                        { "env", required_argument, NULL, 'e' },
                                        { "secret-env", required_argument, NULL, 'S' },
                                        { "detach", no_argument, NULL, 'd' },
                                        { "json", no_argument, NULL, 'j' },
                                        { "help", no_argument, NULL, 'h' },
                                        { 0 } };
  berth_task t = { .exit_code = -1 };
  bool detach = false, json = false;
  berth_error *err = NULL;
  int c, rc = 0;
  /* options may come before or after STACK; everything after `--` is the command */
  int dd = 1;
  while (dd < argc && strcmp(argv[dd], "--") != 0)
    dd++;
  optind = 1;
  while ((c = getopt_long(dd, argv, "", opts, NULL)) != -1) {
    char *k = NULL, *v = NULL;
    switch (c) {
    case 's':
      t.skip_init = true;
      break;
    case 'e':
    case 'S':
      if ((c == 'e' ? berth_parse_env_pair(optarg, &k, &v, &err) : berth_parse_secret_env_pair(optarg, &k, &v, &err))
          < 0) {
        berth_kv_array_free(t.env, t.n_env);
        berth_kv_array_free(t.secret_env, t.n_secret_env);
        return cli_fail(err);
      }
      if (c == 'e')
        berth_kv_set(&t.env, &t.n_env, k, v);
      else
        berth_kv_set(&t.secret_env, &t.n_secret_env, k, v);
      if (v)
        explicit_bzero(v, strlen(v));
      free(k);
      free(v);
      break;
    case 'd':
      detach = true;
      break;
    case 'j':
      json = true;
      break;
    case 'h':
      run_usage(stdout);
      return 0;
    default:
      return cli_usage_error("task run: unknown option (see 'berth task run --help')");
    }
  }
  if (optind >= dd)
    rc = cli_usage_error("task run: which stack? (berth task run STACK -- COMMAND...)");
  const char *stack_name = rc ? NULL : argv[optind++];
  berth_buf cmd;
  berth_buf_init(&cmd, 1u << 20);
  for (int i = optind; rc == 0 && i < argc; i++) {
    if (i == dd)
      continue;
    if (cmd.len > 0)
      berth_buf_append(&cmd, " ", 1);
    int arc = berth_buf_append(&cmd, argv[i], strlen(argv[i]));
    if (arc < 0)
      rc = cli_usage_error(arc == BERTH_BUF_TOO_BIG ? "task run: the command is longer than 1 MiB" : "out of memory");
  }
  berth_store *st = NULL;
  berth_task *sub = NULL;
  if (rc == 0)
    rc = cli_open_store(&st);
  if (rc == 0) {
    char *actor = cli_current_user();
    berth_submit req = { .stack = stack_name,
                         .command = cmd.data,
                         .skip_init = t.skip_init,
                         .env = t.env,
                         .n_env = t.n_env,
                         .secret_env = t.secret_env,
                         .n_secret_env = t.n_secret_env,
                         .actor = actor,
                         .supervisor_argv = cli_supervisor_argv() };
    if (berth_task_submit(st, &req, &sub, &err) < 0)
      rc = cli_fail(err);
    else
      t.id = strdup(sub->id);
    free(actor);
    berth_task_free(sub);
  }
  if (rc == 0)
    rc = after_submit(st, t.id, stack_name, detach, json);
  berth_buf_free(&cmd);
  free(t.id);
  berth_kv_array_free(t.env, t.n_env);
  berth_kv_array_free(t.secret_env, t.n_secret_env);
  berth_store_close(st);
  return rc;
}

/* ---- list, show, logs ---- */

static int
task_list(int argc, char **argv)
{
  static const struct option opts[]
      = { { "stack", required_argument, NULL, 's' }, { "state", required_argument, NULL, 't' },
          { "limit", required_argument, NULL, 'l' }, { "json", no_argument, NULL, 'j' },
          { "help", no_argument, NULL, 'h' },        { 0 } };
  berth_task_filter f = { 0 };
  bool json = false;
  berth_error *err = NULL;
  int c;
  int64_t limit = 0;
  optind = 1;
  while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
    if (c == 's')
      f.stack = optarg;
    else if (c == 't') {
      if (!berth_task_state_is_valid(optarg))
        return cli_usage_error("task list: unknown state `%s`", optarg);
      f.state = optarg;
    } else if (c == 'l') {
      if (berth_parse_int64(optarg, 1, 1000000, &limit, &err) < 0)
        return cli_fail(err);
      f.limit = (int) limit;
    } else if (c == 'j')
      json = true;
    else if (c == 'h') {
      printf("usage: berth task list [--stack S] [--state S] [--limit N] [--json]\n");
      return 0;
    } else
      return cli_usage_error("task list: unknown option (see 'berth task list --help')");
  }
  if (optind < argc)
    return cli_usage_error("task list: unexpected argument `%s`", argv[optind]);
  berth_store *st = NULL;
  int rc = cli_open_store(&st);
  if (rc)
    return rc;
  berth_task **v = NULL;
  size_t n = 0;
  if (berth_store_task_list(st, &f, &v, &n, &err) < 0) {
    berth_store_close(st);
    return cli_fail(err);
  }
  berth_secrets *shown = berth_display_secrets(st, f.stack);
  if (json) {
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "tasks");
    for (size_t i = 0; i < n; i++)
      cJSON_AddItemToArray(arr, berth_task_to_json_redacted(v[i], shown));
    cli_print_json(o);
    cJSON_Delete(o);
  } else {
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
      cJSON_AddItemToArray(arr, berth_task_to_json_redacted(v[i], shown));
    cli_render_task_list(arr);
    cJSON_Delete(arr);
  }
  berth_tasks_free(v, n);
  berth_secrets_free(shown);
  berth_store_close(st);
  return 0;
}

/* Parses `ID [FLAG]` for show and logs (FLAG: the one boolean option, alias may be NULL), then opens the store and
 * loads the task. Returns 0 with *st and *t set, -1 after printing help, or an exit status. */
static int
one_task_args(int argc, char **argv, const char *flag, const char *alias, bool *flag_set, const char *help,
              berth_store **st, berth_task **t)
{
  const char *id = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], flag) == 0 || (alias && strcmp(argv[i], alias) == 0))
      *flag_set = true;
    else if (strcmp(argv[i], "--help") == 0) {
      fputs(help, stdout);
      return -1;
    } else if (argv[i][0] == '-')
      return cli_usage_error("task %s: unknown option `%s`", argv[0], argv[i]);
    else if (id == NULL)
      id = argv[i];
    else
      return cli_usage_error("task %s: unexpected argument `%s`", argv[0], argv[i]);
  }
  if (id == NULL)
    return cli_usage_error("task %s: which task? (berth task %s ID)", argv[0], argv[0]);
  int rc = cli_open_store(st);
  if (rc)
    return rc;
  berth_error *err = NULL;
  if (berth_store_task_get(*st, id, t, &err) < 0) {
    berth_store_close(*st);
    return cli_fail(err);
  }
  return 0;
}

static int
task_show(int argc, char **argv)
{
  bool json = false;
  berth_store *st = NULL;
  berth_task *t = NULL;
  int rc = one_task_args(argc, argv, "--json", NULL, &json, "usage: berth task show ID [--json]\n", &st, &t);
  if (rc)
    return rc < 0 ? 0 : rc;
  berth_secrets *shown = berth_display_secrets(st, t->stack);
  cJSON *j = berth_task_to_json_redacted(t, shown);
  berth_secrets_free(shown);
  if (json)
    cli_print_json(j);
  else
    cli_render_task(j);
  cJSON_Delete(j);
  berth_task_free(t);
  berth_store_close(st);
  return 0;
}

static int
task_logs(int argc, char **argv)
{
  bool follow = false;
  berth_store *st = NULL;
  berth_task *t = NULL;
  int rc = one_task_args(argc, argv, "--follow", "-f", &follow,
                         "usage: berth task logs ID [--follow]\n\nPrints the stored (redacted) log of a task: every "
                         "phase, in order.\nWith --follow, keeps printing until the task ends; Ctrl-C stops "
                         "following only.\n",
                         &st, &t);
  if (rc)
    return rc < 0 ? 0 : rc;
  struct sigaction sa = { .sa_handler = on_sigint };
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  follow_out fo = { .split = false };
  rc = follow_task(st, t->id, follow, &fo);
  berth_task_free(t);
  berth_store_close(st);
  return rc;
}

static int
task_cancel(int argc, char **argv)
{
  if (argc == 2 && strcmp(argv[1], "--help") == 0) {
    printf("usage: berth task cancel ID\n\nQUEUED -> CANCELED; PREPARING/INITIALIZING -> STOPPED (container removed);\n"
           "a PERFORMING task cannot be stopped. Only the task's actor or an admin may cancel.\n");
    return 0;
  }
  if (argc != 2 || argv[1][0] == '-')
    return cli_usage_error("task cancel: usage: berth task cancel ID");
  berth_store *st = NULL;
  int rc = cli_open_store(&st);
  if (rc)
    return rc;
  berth_error *err = NULL;
  char *actor = cli_current_user();
  char *state = NULL;
  /* local mode: the OS user owns the store and acts as its admin */
  if (berth_task_cancel(st, argv[1], actor, true, &state, &err) < 0)
    rc = cli_fail(err);
  else
    printf("task %s %s\n", argv[1], state);
  free(state);
  free(actor);
  berth_store_close(st);
  return rc;
}

/* berth task retry ID [--secret-env K[=V]]... [--detach] [--json] */
static int
task_retry(int argc, char **argv)
{
  static const struct option opts[] = { { "secret-env", required_argument, NULL, 'S' },
                                        { "detach", no_argument, NULL, 'd' },
                                        { "json", no_argument, NULL, 'j' },
                                        { "help", no_argument, NULL, 'h' },
                                        { 0 } };
  bool detach = false, json = false;
  berth_kv *senv = NULL;
  size_t n_senv = 0;
  berth_error *err = NULL;
  int c, rc = 0;
  optind = 1;
  while (rc == 0 && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    char *k = NULL, *v = NULL;
    if (c == 'd')
      detach = true;
    else if (c == 'j')
      json = true;
    else if (c == 'h') {
      printf("usage: berth task retry ID [--secret-env K[=V]]... [--detach] [--json]\n\n"
             "Runs an ended task's command again, with its env and --skip-init, as a new task that records which\n"
             "task it retries (retry_of), and follows it like task run. Secret values of the old task were wiped\n"
             "when it ended: give them again with --secret-env. Nothing is ever retried automatically.\n");
      berth_kv_array_free(senv, n_senv);
      return 0;
    } else if (c == 'S') {
      if (berth_parse_secret_env_pair(optarg, &k, &v, &err) < 0)
        rc = cli_fail(err);
      else
        berth_kv_set(&senv, &n_senv, k, v);
      if (v)
        explicit_bzero(v, strlen(v));
      free(k);
      free(v);
    } else
      rc = cli_usage_error("task retry: unknown option (see 'berth task retry --help')");
  }
  if (rc == 0 && optind != argc - 1)
    rc = cli_usage_error("task retry: which task? (berth task retry ID)");
  berth_store *st = NULL;
  berth_task *sub = NULL;
  if (rc == 0)
    rc = cli_open_store(&st);
  if (rc == 0) {
    char *actor = cli_current_user();
    berth_submit base = { .actor = actor,
                          .secret_env = senv,
                          .n_secret_env = n_senv,
                          .supervisor_argv = cli_supervisor_argv() };
    if (berth_task_retry(st, argv[optind], &base, &sub, &err) < 0)
      rc = cli_fail(err);
    else
      rc = after_submit(st, sub->id, sub->stack, detach, json);
    free(actor);
    berth_task_free(sub);
  }
  berth_kv_array_free(senv, n_senv);
  berth_store_close(st);
  return rc;
}

int
cmd_task(int argc, char **argv)
{
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    FILE *f = argc < 2 ? stderr : stdout;
    fprintf(f, "usage: berth task run|list|show|logs|cancel|retry ...\n\n"
               "  run STACK [--skip-init] [--env K=V]... [--secret-env K[=V]]... [--detach] [--json] -- COMMAND...\n"
               "  list [--stack S] [--state S] [--limit N] [--json]\n"
               "  show ID [--json]\n"
               "  logs ID [--follow]\n"
               "  cancel ID\n"
               "  retry ID [--secret-env K[=V]]... [--detach] [--json]\n");
    return argc < 2 ? 125 : 0;
  }
  if (strcmp(argv[1], "run") == 0)
    return task_run(argc - 1, argv + 1);
  if (strcmp(argv[1], "list") == 0)
    return task_list(argc - 1, argv + 1);
  if (strcmp(argv[1], "show") == 0)
    return task_show(argc - 1, argv + 1);
  if (strcmp(argv[1], "logs") == 0)
    return task_logs(argc - 1, argv + 1);
  if (strcmp(argv[1], "cancel") == 0)
    return task_cancel(argc - 1, argv + 1);
  if (strcmp(argv[1], "retry") == 0)
    return task_retry(argc - 1, argv + 1);
  return cli_usage_error("task: unknown subcommand `%s` (see 'berth task --help')", argv[1]);
}
