/* berth task run | list | show | logs | cancel | retry | prune */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/buf.h"
#include "berth/parse.h"
#include "berth/retention.h"
#include "berth/task_log.h"
#include "backend.h"
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

static void
on_record(void *ud, int kind, const char *data, size_t len)
{
  follow_out *fo = ud;
  int fd = 1;
  if (fo->split && (kind != BERTH_LOG_STDOUT || fo->stdout_to_stderr))
    fd = 2;
  cli_log_out_write(&fo->out, fd, kind, data, len);
}

/* Prints the task's log; with follow, until the task ends (or Ctrl-C). Returns 0, 130 when interrupted, or the
 * exit status of the error. */
static int
follow_task(cli_backend *b, const char *id, bool follow, follow_out *fo)
{
  berth_error *err = NULL;
  struct sigaction sa = { .sa_handler = on_sigint };
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  cli_log_out_init(&fo->out);
  int rc = b->ops->follow(b, id, follow, &stop_following, on_record, fo, &err);
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

static void
run_usage(FILE *f)
{
  fprintf(f, "usage: berth task run STACK [--skip-init] [--env K=V]... [--secret-env K[=V]]... [--detach] [--json] "
             "-- COMMAND...\n\n"
             "Runs COMMAND (words joined with spaces, run as sh -c) in a fresh container of STACK's image.\n"
             "The command's stdout goes to stdout, byte for byte (up to max_log_bytes of config.json); its stderr, "
             "hook output and berth's notes to stderr.\n"
             "Exit status: 0 finished; the command's status when it failed; 124 timeout; 125 berth could not run "
             "it.\n"
             "Ctrl-C stops following, never the task. --secret-env K reads the value from berth's environment.\n");
}

/* --env / --secret-env K=V into the body's object (a later one wins). */
static int
add_env_flag(cJSON *o, const char *arg, bool secret)
{
  berth_error *err = NULL;
  char *k = NULL, *v = NULL;
  if ((secret ? berth_parse_secret_env_pair(arg, &k, &v, &err) : berth_parse_env_pair(arg, &k, &v, &err)) < 0)
    return cli_fail(err);
  cJSON_DeleteItemFromObjectCaseSensitive(o, k);
  cJSON_AddStringToObject(o, k, v);
  explicit_bzero(v, strlen(v));
  free(k);
  free(v);
  return 0;
}

/* The command line of `task run` into rq (arg: the stack; body: POST /v1/stacks/{name}/tasks). 0, -1 after the help,
 * or the exit status of the error. */
static int
run_parse(int argc, char **argv, cli_request *rq, bool *detach)
{
  static const struct option opts[] = { { "skip-init", no_argument, NULL, 's' },
                                        { "env", required_argument, NULL, 'e' },
                                        { "secret-env", required_argument, NULL, 'S' },
                                        { "detach", no_argument, NULL, 'd' },
                                        { "json", no_argument, NULL, 'j' },
                                        { "help", no_argument, NULL, 'h' },
                                        { 0 } };
  rq->body = cJSON_CreateObject();
  cJSON *env = cJSON_AddObjectToObject(rq->body, "env"), *senv = cJSON_AddObjectToObject(rq->body, "secret_env");
  bool skip_init = false;
  int c, rc = 0;
  /* options may come before or after STACK; everything after `--` is the command */
  int dd = 1;
  while (dd < argc && strcmp(argv[dd], "--") != 0)
    dd++;
  optind = 1;
  opterr = 0;
  while (rc == 0 && (c = getopt_long(dd, argv, ":", opts, NULL)) != -1) {
    if (c == 's')
      skip_init = true;
    else if (c == 'e' || c == 'S')
      rc = add_env_flag(c == 'e' ? env : senv, optarg, c == 'S');
    else if (c == 'd')
      *detach = true;
    else if (c == 'j')
      rq->json = true;
    else if (c == 'h') {
      run_usage(stdout);
      return -1;
    } else
      return cli_flag_error(c, "task run", argv);
  }
  if (rc == 0 && optind >= dd)
    return cli_usage_error("task run: which stack? (berth task run STACK -- COMMAND...)");
  if (rc != 0)
    return rc;
  rq->arg = argv[optind++];
  berth_buf cmd;
  berth_buf_init(&cmd, 1u << 20);
  for (int i = optind; rc == 0 && i < argc; i++) {
    if (i == dd)
      continue;
    int arc = cmd.len > 0 ? berth_buf_append(&cmd, " ", 1) : 0;
    if (arc == 0)
      arc = berth_buf_append(&cmd, argv[i], strlen(argv[i]));
    if (arc < 0)
      rc = cli_usage_error(arc == BERTH_BUF_TOO_BIG ? "task run: the command is longer than 1 MiB" : "out of memory");
  }
  cJSON_AddStringToObject(rq->body, "command", cmd.data ? cmd.data : "");
  cJSON_AddBoolToObject(rq->body, "skip_init", skip_init);
  berth_buf_free(&cmd);
  return rc;
}

static const char *
str(const cJSON *o, const char *key)
{
  return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* After the follow: the final record's exit status (docs/contract.md), and its reason when that is not the
 * command's own status. */
static int
run_finish(cli_backend *b, const cli_request *rq, const char *id)
{
  berth_error *err = NULL;
  cJSON *fin = NULL;
  cli_request show = { .arg = id };
  if (b->ops->call(b, CLI_OP_TASK_SHOW, &show, &fin, &err) < 0)
    return cli_fail(err);
  int rc = cli_task_exit_status(fin);
  const cJSON *ec = cJSON_GetObjectItemCaseSensitive(fin, "exit_code");
  if (rq->json)
    cli_print_json(fin);
  else if (rc != 0 && !(cJSON_IsNumber(ec) && ec->valueint == rc))
    fprintf(stderr, "berth: task %s %s: %s\n", id, str(fin, "state") ? str(fin, "state") : "?",
            str(fin, "reason") ? str(fin, "reason") : "");
  cJSON_Delete(fin);
  return rc;
}

/* task run and task retry: op queues the task (its record), then --detach prints its id (with --json, its record),
 * or the log is followed to the end and the final record decides the exit status. */
static int
submit_and_follow(cli_op op, cli_request *rq, int rc, bool detach)
{
  berth_error *err = NULL;
  cli_backend *b = NULL;
  cJSON *task = NULL;
  if (rc == 0 && (cli_backend_open(&b, &err) < 0 || b->ops->call(b, op, rq, &task, &err) < 0))
    rc = cli_fail(err);
  char *id = rc == 0 ? strdup(str(task, "id") ? str(task, "id") : "?") : NULL;
  char *stack = rc == 0 ? strdup(str(task, "stack") ? str(task, "stack") : "?") : NULL;
  if (rc == 0 && detach && rq->json) /* the queued task's record, as the API answers the submission */
    cli_print_json(task);
  else if (rc == 0 && detach)
    printf("%s\n", id);
  cJSON_Delete(task);
  if (rc == 0 && !detach) {
    cli_note("task %s submitted on stack %s", id, stack);
    follow_out fo = { .split = true, .stdout_to_stderr = rq->json };
    rc = follow_task(b, id, true, &fo);
    if (rc == 0)
      rc = run_finish(b, rq, id);
  }
  free(id);
  free(stack);
  cli_backend_free(b);
  cli_request_clear(rq);
  return rc < 0 ? 0 : rc;
}

static int
task_run(int argc, char **argv)
{
  cli_request rq = { 0 };
  bool detach = false;
  int rc = run_parse(argc, argv, &rq, &detach);
  return submit_and_follow(CLI_OP_TASK_SUBMIT, &rq, rc, detach);
}

/* berth task retry ID [--secret-env K[=V]]... [--detach] [--json]: POST /v1/tasks/{id}/retry {"secret_env"} */
/* A task ID or a prefix of one, as both modes read it (a path through a server must not become another endpoint):
 * 0, or the exit status after saying what is wrong. */
static int
check_task_id(const char *cmd, const char *id)
{
  size_t n = strspn(id, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
  if (n == 0 || id[n] != '\0' || n > BERTH_TASK_ID_LEN)
    return cli_usage_error("task %s: `%.64s` is not a task ID (%d letters and digits, or a prefix of one)", cmd, id,
                           BERTH_TASK_ID_LEN);
  return 0;
}

static int
task_retry(int argc, char **argv)
{
  static const struct option opts[] = { { "secret-env", required_argument, NULL, 'S' },
                                        { "detach", no_argument, NULL, 'd' },
                                        { "json", no_argument, NULL, 'j' },
                                        { "help", no_argument, NULL, 'h' },
                                        { 0 } };
  cli_request rq = { 0 };
  rq.body = cJSON_CreateObject();
  cJSON *senv = cJSON_AddObjectToObject(rq.body, "secret_env");
  bool detach = false;
  int c, rc = 0;
  optind = 1;
  opterr = 0;
  while (rc == 0 && (c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    if (c == 'd')
      detach = true;
    else if (c == 'j')
      rq.json = true;
    else if (c == 'S')
      rc = add_env_flag(senv, optarg, true);
    else if (c == 'h') {
      printf("usage: berth task retry ID [--secret-env K[=V]]... [--detach] [--json]\n\n"
             "Runs an ended task's command again, with its env and --skip-init, as a new task that records which\n"
             "task it retries (retry_of), and follows it like task run. Secret values of the old task were wiped\n"
             "when it ended (task show lists their names): give each again with --secret-env NAME, or the retry is\n"
             "refused. Nothing is ever retried automatically.\n");
      rc = -1;
    } else
      rc = cli_flag_error(c, "task retry", argv);
  }
  if (rc == 0 && optind < argc - 1)
    rc = cli_usage_error("task retry: unexpected argument `%s`", argv[optind + 1]);
  if (rc == 0 && optind != argc - 1)
    rc = cli_usage_error("task retry: which task? (berth task retry ID)");
  if (rc == 0 && (rc = check_task_id("retry", argv[optind])) == 0)
    rq.arg = argv[optind];
  if (rc != 0) {
    cli_request_clear(&rq);
    return rc < 0 ? 0 : rc;
  }
  return submit_and_follow(CLI_OP_TASK_RETRY, &rq, 0, detach);
}

/* ---- list, show, logs ---- */

static void
show_task_list(const cli_request *rq, const cJSON *rec)
{
  (void) rq;
  cli_render_task_list(cJSON_GetObjectItemCaseSensitive(rec, "tasks"));
}

static int
task_list(int argc, char **argv)
{
  static const struct option opts[] = { { "stack", required_argument, NULL, 's' },
                                        { "state", required_argument, NULL, 't' },
                                        { "host", required_argument, NULL, 'H' },
                                        { "limit", required_argument, NULL, 'l' },
                                        { "json", no_argument, NULL, 'j' },
                                        { "help", no_argument, NULL, 'h' },
                                        { 0 } };
  static const cli_view view = { show_task_list, NULL, NULL };
  cli_request rq = { 0 };
  berth_error *err = NULL;
  int c;
  int64_t limit = 0;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
    if (c == 's')
      rq.stack = optarg;
    else if (c == 't') {
      if (!berth_task_state_is_valid(optarg))
        return cli_usage_error("task list: unknown state `%s`", optarg);
      rq.state = optarg;
    } else if (c == 'H') {
      rq.host = optarg;
    } else if (c == 'l') {
      if (berth_parse_int64(optarg, 1, 1000000, &limit, &err) < 0)
        return cli_fail((berth_error_wrap(&err, "--limit"), err));
      rq.limit = (int) limit;
    } else if (c == 'j')
      rq.json = true;
    else if (c == 'h') {
      printf("usage: berth task list [--stack S] [--state S] [--host H] [--limit N] [--json]\n\n--host H: the tasks a "
             "fleet host ran (or runs).\n");
      return 0;
    } else
      return cli_flag_error(c, "task list", argv);
  }
  if (optind < argc)
    return cli_usage_error("task list: unexpected argument `%s`", argv[optind]);
  return cli_run(CLI_OP_TASK_LIST, &rq, &view);
}

/* Parses `ID [FLAG]` for show and logs (FLAG: the one boolean option, alias may be NULL). Returns 0 with rq->arg
 * set, -1 after printing help, or an exit status. */
static int
one_task_args(int argc, char **argv, const char *flag, const char *alias, bool *flag_set, const char *help,
              cli_request *rq)
{
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], flag) == 0 || (alias && strcmp(argv[i], alias) == 0))
      *flag_set = true;
    else if (strcmp(argv[i], "--help") == 0) {
      fputs(help, stdout);
      return -1;
    } else if (argv[i][0] == '-')
      return cli_usage_error("task %s: unknown option `%s`", argv[0], argv[i]);
    else if (rq->arg == NULL)
      rq->arg = argv[i];
    else
      return cli_usage_error("task %s: unexpected argument `%s`", argv[0], argv[i]);
  }
  if (rq->arg == NULL)
    return cli_usage_error("task %s: which task? (berth task %s ID)", argv[0], argv[0]);
  return check_task_id(argv[0], rq->arg);
}

static void
show_task(const cli_request *rq, const cJSON *rec)
{
  (void) rq;
  cli_render_task(rec);
}

static int
task_show(int argc, char **argv)
{
  static const cli_view view = { show_task, NULL, NULL };
  cli_request rq = { 0 };
  int rc = one_task_args(argc, argv, "--json", NULL, &rq.json, "usage: berth task show ID [--json]\n", &rq);
  if (rc)
    return rc < 0 ? 0 : rc;
  return cli_run(CLI_OP_TASK_SHOW, &rq, &view);
}

static int
task_logs(int argc, char **argv)
{
  bool follow = false;
  cli_request rq = { 0 };
  int rc = one_task_args(argc, argv, "--follow", "-f", &follow,
                         "usage: berth task logs ID [--follow]\n\nPrints the stored (redacted) log of a task: every "
                         "phase, in order.\nWith --follow, keeps printing until the task ends; Ctrl-C stops "
                         "following only.\n",
                         &rq);
  if (rc)
    return rc < 0 ? 0 : rc;
  berth_error *err = NULL;
  cli_backend *b = NULL;
  cJSON *t = NULL;
  /* a missing task is a clear error, not an empty log; a short id becomes the task's own */
  if (cli_backend_open(&b, &err) < 0 || b->ops->call(b, CLI_OP_TASK_SHOW, &rq, &t, &err) < 0) {
    rc = cli_fail(err);
  } else {
    follow_out fo = { .split = false };
    rc = follow_task(b, str(t, "id") ? str(t, "id") : rq.arg, follow, &fo);
  }
  cJSON_Delete(t);
  cli_backend_free(b);
  return rc;
}

static void
show_cancel(const cli_request *rq, const cJSON *rec)
{
  printf("task %s %s\n", rq->arg, str(rec, "state") ? str(rec, "state") : "?");
}

static int
task_cancel(int argc, char **argv)
{
  static const cli_view view = { show_cancel, NULL, NULL };
  if (argc == 2 && strcmp(argv[1], "--help") == 0) {
    printf("usage: berth task cancel ID\n\nQUEUED -> CANCELED; PREPARING/INITIALIZING -> STOPPED (container removed);\n"
           "a PERFORMING task cannot be stopped. Only the task's actor or an admin may cancel.\n");
    return 0;
  }
  if (argc != 2 || argv[1][0] == '-')
    return cli_usage_error("task cancel: usage: berth task cancel ID");
  int rc = check_task_id("cancel", argv[1]);
  if (rc != 0)
    return rc;
  cli_request rq = { .arg = argv[1] };
  return cli_run(CLI_OP_TASK_CANCEL, &rq, &view);
}

static void
show_prune(const cli_request *rq, const cJSON *rec)
{
  (void) rq;
  const cJSON *n = cJSON_GetObjectItemCaseSensitive(rec, "tasks"),
              *b = cJSON_GetObjectItemCaseSensitive(rec, "log_bytes");
  const char *stack = str(rec, "stack"), *before = str(rec, "before");
  long long tasks = cJSON_IsNumber(n) ? (long long) n->valuedouble : 0;
  char size[32];
  berth_format_size_approx(cJSON_IsNumber(b) ? (int64_t) b->valuedouble : 0, size, sizeof size);
  printf("%s %lld task%s (%s of logs)%s%s that ended before %s\n",
         cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "dry_run")) ? "would prune" : "pruned", tasks,
         tasks == 1 ? "" : "s", size, stack ? " of stack " : "", stack ? stack : "", before ? before : "?");
}

static int
task_prune(int argc, char **argv)
{
  static const struct option opts[] = { { "older-than", required_argument, NULL, 'o' },
                                        { "stack", required_argument, NULL, 's' },
                                        { "dry-run", no_argument, NULL, 'n' },
                                        { "json", no_argument, NULL, 'j' },
                                        { "help", no_argument, NULL, 'h' },
                                        { 0 } };
  static const cli_view view = { show_prune, NULL, NULL };
  const char *older = NULL, *stack = NULL;
  bool dry = false, json = false;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
    if (c == 'o')
      older = optarg;
    else if (c == 's')
      stack = optarg;
    else if (c == 'n')
      dry = true;
    else if (c == 'j')
      json = true;
    else if (c == 'h') {
      printf("usage: berth task prune --older-than DUR [--stack S] [--dry-run] [--json]\n\n"
             "Deletes the tasks that ended (FINISHED, FAILED, CANCELED, STOPPED) at least DUR ago (\"30d\", \"12h\"),\n"
             "with their state history and logs; queued and running tasks are never touched. The audit trail keeps\n"
             "its records of them, and the metrics keep what they counted. --dry-run counts what would go. Admin.\n"
             "config.json's task_retention makes `berth serve` do this every 10 minutes.\n");
      return 0;
    } else
      return cli_flag_error(c, "task prune", argv);
  }
  if (optind < argc)
    return cli_usage_error("task prune: unexpected argument `%s`", argv[optind]);
  if (older == NULL)
    return cli_usage_error("task prune: --older-than is required (\"30d\": the tasks that ended 30 days ago or more)");
  /* the flags' own names in the refusals, before the body (whose checks name its fields) is made */
  berth_error *err = NULL;
  int64_t ms = 0;
  if (berth_prune_age_parse(older, "--older-than", &ms, &err) < 0)
    return cli_fail(err);
  if (stack && berth_stack_validate_name(stack, &err) < 0)
    return cli_fail((berth_error_wrap(&err, "--stack"), err));
  cli_request rq = { .json = json };
  rq.body = cJSON_CreateObject();
  cJSON_AddStringToObject(rq.body, "older_than", older);
  if (stack)
    cJSON_AddStringToObject(rq.body, "stack", stack);
  if (dry)
    cJSON_AddTrueToObject(rq.body, "dry_run");
  return cli_run(CLI_OP_TASK_PRUNE, &rq, &view);
}

int
cmd_task(int argc, char **argv)
{
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    FILE *f = argc < 2 ? stderr : stdout;
    fprintf(f, "usage: berth task run|list|show|logs|cancel|retry|prune ...\n\n"
               "  run STACK [--skip-init] [--env K=V]... [--secret-env K[=V]]... [--detach] [--json] -- COMMAND...\n"
               "  list [--stack S] [--state S] [--limit N] [--json]\n"
               "  show ID [--json]\n"
               "  logs ID [--follow]\n"
               "  cancel ID\n"
               "  retry ID [--secret-env K[=V]]... [--detach] [--json]\n"
               "  prune --older-than DUR [--stack S] [--dry-run] [--json]\n");
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
  if (strcmp(argv[1], "prune") == 0)
    return task_prune(argc - 1, argv + 1);
  return cli_usage_error("task: unknown subcommand `%s` (see 'berth task --help')", argv[1]);
}
