/* `berth schedule`: scheduled tasks of a stack (add, list, show, pause, resume, remove). Each subcommand parses its
 * command line once, then runs against the local store or, through a server, the HTTP API; both give the same JSON
 * record, rendered the same way. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/cleanup.h"
#include "berth/parse.h"
#include "berth/schedule.h"
#include "berth/store.h"
#include "cli.h"
#include "client.h"

static const char usage_main[]
    = "usage: berth schedule COMMAND [ARGS...]\n"
      "\n"
      "commands:\n"
      "  add STACK NAME (--cron 'EXPR' [--tz ZONE] | --at TIME) [--skip-init] [--env K=V]...\n"
      "      [--catch-up once|skip] [--json] -- COMMAND...\n"
      "                           submit COMMAND on the stack at every fire time (as schedule:NAME)\n"
      "  list [--stack S] [--json] list schedules with their next fire time (UTC)\n"
      "  show STACK NAME [--json]  show one schedule and its latest fire\n"
      "  pause STACK NAME          stop firing until resumed\n"
      "  resume STACK NAME         fire again from the next fire time after now\n"
      "  remove STACK NAME         remove a schedule\n"
      "\n"
      "NAME --stack STACK works wherever STACK NAME does. Cron: 5 fields, lists, ranges, steps, names, @daily and\n"
      "the other macros; --tz from the tz database (default UTC). See docs/schedules.md.\n";

enum { OPT_JSON = 256, OPT_HELP, OPT_CRON, OPT_TZ, OPT_AT, OPT_SKIP_INIT, OPT_ENV, OPT_CATCH_UP, OPT_STACK };

static const struct option options[] = {
  { "json", no_argument, NULL, OPT_JSON },         { "help", no_argument, NULL, OPT_HELP },
  { "cron", required_argument, NULL, OPT_CRON },   { "tz", required_argument, NULL, OPT_TZ },
  { "at", required_argument, NULL, OPT_AT },       { "skip-init", no_argument, NULL, OPT_SKIP_INIT },
  { "env", required_argument, NULL, OPT_ENV },     { "catch-up", required_argument, NULL, OPT_CATCH_UP },
  { "stack", required_argument, NULL, OPT_STACK }, { NULL, 0, NULL, 0 },
};

typedef struct sched_req {
  const char *sub;
  const char *stack, *name;
  bool json;
  cJSON *body; /* add: the API's body */
} sched_req;

/* The backend: the local store (c NULL) or a server. */
typedef struct backend {
  client_conn *c;
  berth_store *st;
  char *actor;
} backend;

static char *
join_command(int argc, char **argv)
{
  size_t len = 1;
  for (int i = 0; i < argc; i++)
    len += strlen(argv[i]) + 1;
  char *cmd = len <= (1u << 20) ? calloc(1, len) : NULL;
  for (int i = 0; cmd && i < argc; i++) {
    if (i)
      strcat(cmd, " ");
    strcat(cmd, argv[i]);
  }
  return cmd;
}

static int
add_flag(sched_req *q, int opt, const char *arg)
{
  const char *key = opt == OPT_CRON ? "cron" : opt == OPT_TZ ? "tz" : opt == OPT_AT ? "at" : "catch_up";
  if (opt == OPT_SKIP_INIT) {
    cJSON_AddBoolToObject(q->body, "skip_init", true);
    return 0;
  }
  if (opt == OPT_ENV) {
    char *k = NULL, *v = NULL;
    berth_error *err = NULL;
    if (berth_parse_env_pair(arg, &k, &v, &err) < 0) {
      berth_error_wrap(&err, "--env");
      return cli_fail(err);
    }
    cJSON *env = cJSON_GetObjectItemCaseSensitive(q->body, "env");
    if (env == NULL)
      env = cJSON_AddObjectToObject(q->body, "env");
    cJSON_DeleteItemFromObjectCaseSensitive(env, k);
    cJSON_AddStringToObject(env, k, v);
    free(k);
    free(v);
    return 0;
  }
  cJSON_DeleteItemFromObjectCaseSensitive(q->body, key);
  cJSON_AddStringToObject(q->body, key, arg);
  return 0;
}

/* Parses argv (argv[0] the subcommand). Returns 0, -1 after --help, or an exit code. */
static int
parse(int argc, char **argv, sched_req *q)
{
  int dash = argc;
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--") == 0) {
      dash = i;
      break;
    }
  bool add = strcmp(q->sub, "add") == 0;
  if (add)
    q->body = cJSON_CreateObject();
  const char *pos[3];
  int npos = 0, opt;
  optind = 0;
  opterr = 0;
  while ((opt = getopt_long(dash, argv, "-:", options, NULL)) != -1) {
    const char *bad = argv[optind > 0 ? optind - 1 : 0];
    if (opt == OPT_HELP) {
      fputs(usage_main, stdout);
      return -1;
    }
    if (opt == 1) {
      if (npos == 2)
        return cli_usage_error("unexpected argument `%s` for 'berth schedule %s'", optarg, q->sub);
      pos[npos++] = optarg;
    } else if (opt == ':') {
      return cli_usage_error("flag `%s` needs a value (see 'berth schedule --help')", bad);
    } else if (opt == OPT_JSON) {
      q->json = true;
    } else if (opt == OPT_STACK) {
      q->stack = optarg;
    } else if (add && opt != OPT_STACK && opt != '?') {
      int rc = add_flag(q, opt, optarg);
      if (rc)
        return rc;
    } else {
      return cli_usage_error("unknown flag `%s` for 'berth schedule %s' (see 'berth schedule --help')", bad, q->sub);
    }
  }
  if (strcmp(q->sub, "list") == 0) {
    if (npos > 0)
      return cli_usage_error("unexpected argument `%s` for 'berth schedule list'", pos[0]);
    return 0;
  }
  if (npos == 2 && q->stack == NULL)
    q->stack = pos[0], q->name = pos[1];
  else if (npos == 1 && q->stack != NULL)
    q->name = pos[0];
  else
    return cli_usage_error("'berth schedule %s' needs STACK NAME (or NAME --stack STACK)", q->sub);
  if (add) {
    if (dash >= argc - 1)
      return cli_usage_error("'berth schedule add' needs a command after `--`");
    char *cmd = join_command(argc - dash - 1, argv + dash + 1);
    if (cmd == NULL)
      return cli_usage_error("the command is too long");
    cJSON_AddStringToObject(q->body, "name", q->name);
    cJSON_AddStringToObject(q->body, "command", cmd);
    free(cmd);
  } else if (dash != argc) {
    return cli_usage_error("'berth schedule %s' takes no command", q->sub);
  }
  return 0;
}

static char *
schedule_path(const char *stack, const char *name, const char *suffix)
{
  char *s = client_escape(stack), *n = name ? client_escape(name) : NULL, *p = NULL;
  if (s && (name == NULL || n)
      && asprintf(&p, "/v1/stacks/%s/schedules%s%s%s", s, name ? "/" : "", name ? n : "", suffix) < 0)
    p = NULL;
  free(s);
  free(n);
  return p;
}

/* Runs the request; *out gets the schedule (add, show, pause, resume) or {"schedules": [...]} (list). */
static int
run(backend *b, const sched_req *q, cJSON **out, berth_error **err)
{
  const char *sub = q->sub;
  if (b->c) {
    cleanup_free char *path = NULL;
    const char *method = "GET";
    if (strcmp(sub, "list") == 0) {
      cleanup_free char *s = q->stack ? client_escape(q->stack) : NULL;
      if (asprintf(&path, "/v1/schedules%s%s", s ? "?stack=" : "", s ? s : "") < 0)
        path = NULL;
    } else if (strcmp(sub, "pause") == 0 || strcmp(sub, "resume") == 0) {
      method = "POST";
      path = schedule_path(q->stack, q->name, strcmp(sub, "pause") == 0 ? "/pause" : "/resume");
    } else {
      method = strcmp(sub, "add") == 0 ? "POST" : strcmp(sub, "remove") == 0 ? "DELETE" : "GET";
      path = schedule_path(q->stack, strcmp(sub, "add") == 0 ? NULL : q->name, "");
    }
    if (path == NULL)
      return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    return client_request(b->c, method, path, q->body, out, err);
  }
  int rc = 0;
  if (strcmp(sub, "list") == 0) {
    berth_schedule **v = NULL;
    size_t n = 0;
    if ((rc = berth_store_schedule_list(b->st, q->stack, &v, &n, err)) < 0)
      return rc;
    *out = berth_schedules_json(b->st, v, n, NULL, NULL, err);
    berth_schedules_free(v, n);
    return *out ? 0 : err && *err ? (*err)->code : BERTH_EINTERNAL;
  }
  if (strcmp(sub, "add") == 0) {
    berth_schedule *s = NULL;
    rc = berth_schedule_from_json(q->body, q->stack, &s, err);
    if (rc == 0)
      rc = berth_schedule_add(b->st, s, b->actor, NULL, err);
    berth_schedule_free(s);
  } else if (strcmp(sub, "pause") == 0 || strcmp(sub, "resume") == 0) {
    rc = berth_schedule_set_paused(b->st, q->stack, q->name, strcmp(sub, "pause") == 0, b->actor, err);
  } else if (strcmp(sub, "remove") == 0) {
    return berth_schedule_remove(b->st, q->stack, q->name, b->actor, err);
  }
  berth_schedule *s = NULL;
  if (rc == 0)
    rc = berth_store_schedule_get(b->st, q->stack, q->name, &s, err);
  if (rc == 0 && (*out = berth_schedule_json(b->st, s, err)) == NULL)
    rc = err && *err ? (*err)->code : BERTH_EINTERNAL;
  berth_schedule_free(s);
  return rc;
}

static const char *
str(const cJSON *o, const char *key)
{
  const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
  return v ? v : "-";
}

static void
render_list(const cJSON *list)
{
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(list, "schedules");
  if (cJSON_GetArraySize(a) == 0) {
    printf("no schedules\n");
    return;
  }
  printf("%-20s %-20s %-24s %-26s %-8s %s\n", "STACK", "NAME", "WHEN", "NEXT (UTC)", "STATE", "COMMAND");
  for (const cJSON *s = a->child; s; s = s->next) {
    char when[128];
    const char *cron = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "cron"));
    if (cron)
      snprintf(when, sizeof when, "%s%s%s", cron, strcmp(str(s, "tz"), "UTC") ? " " : "",
               strcmp(str(s, "tz"), "UTC") ? str(s, "tz") : "");
    else
      snprintf(when, sizeof when, "at %s", str(s, "at"));
    printf("%-20s %-20s %-24s %-26s %-8s %s\n", str(s, "stack"), str(s, "name"), when, str(s, "next_fire_at"),
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "paused")) ? "paused" : "active", str(s, "command"));
  }
}

static void
render_one(const cJSON *s)
{
  printf("stack      %s\nname       %s\n", str(s, "stack"), str(s, "name"));
  if (cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "cron")))
    printf("cron       %s (%s)\n", str(s, "cron"), str(s, "tz"));
  else
    printf("at         %s\n", str(s, "at"));
  printf("command    %s\ncatch-up   %s\nstate      %s\nnext fire  %s\n", str(s, "command"), str(s, "catch_up"),
         cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "paused")) ? "paused" : "active", str(s, "next_fire_at"));
  const cJSON *l = cJSON_GetObjectItemCaseSensitive(s, "last_fire");
  if (cJSON_IsObject(l))
    printf("last fire  %s %s %s%s%s\n", str(l, "fire_time"), str(l, "outcome"), str(l, "task_id"),
           cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "message")) ? ": " : "",
           cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "message")) ? str(l, "message") : "");
}

static int
schedule_main(client_conn *c, int argc, char **argv)
{
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fputs(usage_main, argc < 2 ? stderr : stdout);
    return argc < 2 ? 125 : 0;
  }
  static const char *const subs[] = { "add", "list", "show", "pause", "resume", "remove", NULL };
  sched_req q = { .sub = argv[1] };
  bool known = false;
  for (size_t i = 0; subs[i] && !known; i++)
    known = strcmp(q.sub, subs[i]) == 0;
  if (!known)
    return cli_usage_error("schedule: unknown subcommand `%s` (see 'berth schedule --help')", q.sub);
  int rc = parse(argc - 1, argv + 1, &q);
  if (rc != 0) {
    cJSON_Delete(q.body);
    return rc < 0 ? 0 : rc;
  }
  backend b = { .c = c };
  if (c == NULL && (rc = cli_open_store(&b.st)) != 0) {
    cJSON_Delete(q.body);
    return rc;
  }
  b.actor = c ? NULL : cli_current_user();
  berth_error *err = NULL;
  cJSON *out = NULL;
  rc = run(&b, &q, &out, &err);
  cJSON_Delete(q.body);
  free(b.actor);
  berth_store_close(b.st);
  if (rc < 0)
    return cli_fail(err);
  if (q.json && out)
    cli_print_json(out);
  else if (out != NULL && (cli_printable(out), strcmp(q.sub, "list") == 0)) /* anyone's text: see cli_printable */
    render_list(out);
  else if (strcmp(q.sub, "remove") == 0)
    printf("schedule %s of stack %s removed\n", q.name, q.stack);
  else if (strcmp(q.sub, "show") == 0)
    render_one(out);
  else
    printf("schedule %s of stack %s %s; next fire %s\n", q.name, q.stack,
           strcmp(q.sub, "add") == 0     ? "added"
           : strcmp(q.sub, "pause") == 0 ? "paused"
                                         : "resumed",
           strcmp(q.sub, "pause") == 0 ? "none while paused" : str(out, "next_fire_at"));
  cJSON_Delete(out);
  return 0;
}

/* Local, or through the server that BERTH_SERVER names (`--server URL` sets it), like every command. */
int
cmd_schedule(int argc, char **argv)
{
  const char *server = getenv("BERTH_SERVER");
  if (server == NULL || *server == '\0')
    return schedule_main(NULL, argc, argv);
  berth_error *err = NULL;
  client_conn *c = NULL;
  if (client_conn_new(&c, &err) < 0)
    return cli_fail(err);
  int rc = schedule_main(c, argc, argv);
  client_conn_free(c);
  return rc;
}

int
cmd_schedule_client(client_conn *c, int argc, char **argv)
{
  return schedule_main(c, argc, argv);
}
