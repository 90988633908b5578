/* The berth commands against a server: the same command lines, output and exit codes as local mode. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "berth/buf.h"
#include "berth/parse.h"
#include "berth/store.h"
#include "cli.h"
#include "client.h"
#include "render.h"
#include "style.h"

#define LOG_HDR 6
#define FOLLOW_RETRIES 30 /* a follow cut short (server restart) is resumed for up to ~30 s */

static volatile int stop_following;

static void
on_sigint(int sig)
{
  (void) sig;
  stop_following = 1;
}

bool
client_wanted(int *argc, char ***argv)
{
  char **v = *argv;
  if (*argc >= 3 && strcmp(v[1], "--server") == 0) {
    setenv("BERTH_SERVER", v[2], 1);
    v[2] = v[0];
    *argv = v + 2;
    *argc -= 2;
    v = *argv;
  } else if (*argc >= 2 && strncmp(v[1], "--server=", 9) == 0) {
    setenv("BERTH_SERVER", v[1] + 9, 1);
    v[1] = v[0];
    *argv = v + 1;
    *argc -= 1;
    v = *argv;
  }
  /* internal commands (man pages) and completion scripts are the program's own, whatever the server */
  if (*argc >= 2 && (strncmp(v[1], "__", 2) == 0 || strcmp(v[1], "completion") == 0))
    return false;
  const char *s = getenv("BERTH_SERVER");
  if (s == NULL || *s == '\0' || *argc < 2)
    return false;
  /* a command's help is one text, whatever the mode: the command's own (it touches no store) */
  for (int i = 2; i < *argc && strcmp(v[i], "--") != 0; i++)
    if (strcmp(v[i], "--help") == 0 || strcmp(v[i], "-h") == 0)
      return false;
  /* always local: the server itself, its supervisors, the store's own administration, and help */
  return strcmp(v[1], "serve") != 0 && strcmp(v[1], "__supervise") != 0 && strcmp(v[1], "store") != 0
         && strcmp(v[1], "--help") != 0 && strcmp(v[1], "-h") != 0 && strcmp(v[1], "help") != 0
         && strcmp(v[1], "--version") != 0;
}

static const char *
str(const cJSON *o, const char *key)
{
  return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static bool
has_flag(int argc, char **argv, const char *flag)
{
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], flag) == 0)
      return true;
  return false;
}

/* A GET whose answer is printed as JSON (--json) or handed to render; the exit status is status(answer), or 0. */
static int
get_and_show_status(client_conn *c, const char *path, bool json, void (*render)(const cJSON *),
                    int (*status)(const cJSON *))
{
  berth_error *err = NULL;
  cJSON *j = NULL;
  if (client_request(c, "GET", path, NULL, &j, &err) < 0)
    return cli_fail(err);
  if (json || render == NULL)
    cli_print_json(j);
  else
    render(j);
  int rc = status ? status(j) : 0;
  cJSON_Delete(j);
  return rc;
}

static int
get_and_show(client_conn *c, const char *path, bool json, void (*render)(const cJSON *))
{
  return get_and_show_status(c, path, json, render, NULL);
}

/* ---- following a log: records ([kind][phase][len:4][bytes]) split to stdout / stderr, as local mode does ---- */

typedef struct follow_state {
  bool split;            /* records: stdout records to stdout, the rest to stderr */
  bool stdout_to_stderr; /* --json: stdout keeps only the final record */
  unsigned char hdr[LOG_HDR];
  size_t hdr_len;
  size_t left;
  int kind;
  long long offset; /* bytes of the log received, to resume after a cut */
  cli_log_out out;  /* notes styled on a terminal */
} follow_state;

static int
on_log_bytes(void *ud, const char *data, size_t len)
{
  follow_state *f = ud;
  f->offset += (long long) len;
  while (len > 0) {
    if (f->left == 0) {
      f->hdr[f->hdr_len++] = (unsigned char) *data++;
      len--;
      if (f->hdr_len == LOG_HDR) {
        f->kind = f->hdr[0];
        f->left = ((size_t) f->hdr[2] << 24) | ((size_t) f->hdr[3] << 16) | ((size_t) f->hdr[4] << 8) | f->hdr[5];
        f->hdr_len = 0;
      }
      continue;
    }
    size_t take = len < f->left ? len : f->left;
    cli_log_out_write(&f->out, !f->split || (f->kind == 1 && !f->stdout_to_stderr) ? 1 : 2, f->kind, data, take);
    data += take;
    len -= take;
    f->left -= take;
  }
  return 0;
}

static int
fetch_task(client_conn *c, const char *id, cJSON **out, berth_error **err)
{
  char *eid = client_escape(id), *path = NULL;
  int rc = eid && asprintf(&path, "/v1/tasks/%s", eid) >= 0 ? client_request(c, "GET", path, NULL, out, err)
                                                            : berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  free(eid);
  free(path);
  return rc;
}

static bool
is_terminal(const cJSON *t)
{
  const char *s = str(t, "state");
  return s && berth_task_state_is_terminal(s);
}

/* Follows the task's log until the task ends (0), Ctrl-C (130) or a failure (exit code). */
static int
follow_stream(client_conn *c, const char *id, bool follow_on, follow_state *f)
{
  struct sigaction sa = { .sa_handler = on_sigint };
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  char *eid = client_escape(id);
  for (int attempt = 0;; attempt++) {
    char *path = NULL;
    if (asprintf(&path, "/v1/tasks/%s/logs?format=records&follow=%d&offset=%lld", eid, follow_on ? 1 : 0, f->offset)
        < 0)
      path = NULL;
    berth_error *err = NULL;
    int rc = path ? client_stream(c, path, on_log_bytes, f, &stop_following, &err) : -1;
    free(path);
    if (rc == 1) {
      fprintf(stderr, "berth: stopped following task %s; it goes on (berth task logs %s --follow)\n", id, id);
      free(eid);
      return 130;
    }
    if (rc == 0 && !follow_on)
      break;
    cJSON *t = NULL;
    if (rc == 0 && fetch_task(c, id, &t, &err) == 0 && is_terminal(t)) {
      cJSON_Delete(t);
      break;
    }
    cJSON_Delete(t);
    /* the stream was cut (a server restart): resume where it stopped */
    if (err && (err->code != BERTH_EINTERNAL || attempt >= FOLLOW_RETRIES)) {
      free(eid);
      return cli_fail(err);
    }
    berth_error_free(err);
    if (attempt >= FOLLOW_RETRIES) {
      free(eid);
      return cli_usage_error("lost the server while following task %s", id);
    }
    sleep(1);
  }
  free(eid);
  return 0;
}

static int
follow(client_conn *c, const char *id, bool follow_on, follow_state *f)
{
  cli_log_out_init(&f->out);
  int rc = follow_stream(c, id, follow_on, f);
  cli_log_out_finish(&f->out);
  return rc;
}

/* ---- task ---- */

/* What task run and task retry do once the server queued the task: print its id (--detach), or follow it to its end
 * and exit with its status. */
static int
after_submit(client_conn *c, const char *id, const char *stack, bool detach, bool json)
{
  berth_error *err = NULL;
  int rc;
  if (detach) {
    printf("%s\n", id);
    return 0;
  }
  cli_note("task %s submitted on stack %s", id, stack);
  follow_state f = { .split = true, .stdout_to_stderr = json };
  rc = follow(c, id, true, &f);
  if (rc == 0) {
    cJSON *fin = NULL;
    if (fetch_task(c, id, &fin, &err) < 0)
      rc = cli_fail(err);
    else {
      rc = cli_task_exit_status(fin);
      const cJSON *ec = cJSON_GetObjectItemCaseSensitive(fin, "exit_code");
      if (json)
        cli_print_json(fin);
      else if (rc != 0 && !(cJSON_IsNumber(ec) && ec->valueint == rc))
        fprintf(stderr, "berth: task %s %s: %s\n", id, str(fin, "state") ? str(fin, "state") : "?",
                str(fin, "reason") ? str(fin, "reason") : "");
      cJSON_Delete(fin);
    }
  }
  return rc;
}

static int
task_run(client_conn *c, int argc, char **argv)
{
  static const struct option opts[] = { { "skip-init", no_argument, NULL, 's' },
                                        { "env", required_argument, NULL, 'e' },
                                        { "secret-env", required_argument, NULL, 'S' },
                                        { "detach", no_argument, NULL, 'd' },
                                        { "json", no_argument, NULL, 'j' },
                                        { "help", no_argument, NULL, 'h' },
                                        { 0 } };
  bool detach = false, json = false, skip_init = false;
  berth_error *err = NULL;
  cJSON *env = cJSON_CreateObject(), *senv = cJSON_CreateObject();
  int dd = 1, c2, rc = 0;
  while (dd < argc && strcmp(argv[dd], "--") != 0)
    dd++;
  optind = 1;
  while (rc == 0 && (c2 = getopt_long(dd, argv, "", opts, NULL)) != -1) {
    char *k = NULL, *v = NULL;
    if (c2 == 's')
      skip_init = true;
    else if (c2 == 'd')
      detach = true;
    else if (c2 == 'j')
      json = true;
    else if (c2 == 'h') {
      rc = -1;
      printf("usage: berth task run STACK [--skip-init] [--env K=V]... [--secret-env K[=V]]... [--detach] [--json] "
             "-- COMMAND...\n");
    } else if (c2 == 'e' || c2 == 'S') {
      if ((c2 == 'e' ? berth_parse_env_pair(optarg, &k, &v, &err) : berth_parse_secret_env_pair(optarg, &k, &v, &err))
          < 0)
        rc = cli_fail(err);
      else {
        cJSON *o = c2 == 'e' ? env : senv;
        cJSON_DeleteItemFromObjectCaseSensitive(o, k);
        cJSON_AddStringToObject(o, k, v);
      }
      if (v)
        explicit_bzero(v, strlen(v));
      free(k);
      free(v);
    } else
      rc = cli_usage_error("task run: unknown option (see 'berth task run --help')");
  }
  if (rc == 0 && optind >= dd)
    rc = cli_usage_error("task run: which stack? (berth task run STACK -- COMMAND...)");
  const char *stack = rc == 0 ? argv[optind++] : NULL;
  berth_buf cmd;
  berth_buf_init(&cmd, 1u << 20);
  for (int i = optind; rc == 0 && i < argc; i++) {
    if (i == dd)
      continue;
    if ((cmd.len > 0 && berth_buf_append(&cmd, " ", 1) < 0) || berth_buf_append(&cmd, argv[i], strlen(argv[i])) < 0)
      rc = cli_usage_error("task run: the command is longer than 1 MiB");
  }
  cJSON *body = cJSON_CreateObject(), *task = NULL;
  cJSON_AddStringToObject(body, "command", cmd.data ? cmd.data : "");
  cJSON_AddBoolToObject(body, "skip_init", skip_init);
  cJSON_AddItemToObject(body, "env", env);
  cJSON_AddItemToObject(body, "secret_env", senv);
  char *estack = stack ? client_escape(stack) : NULL, *path = NULL;
  if (rc == 0 && (estack == NULL || asprintf(&path, "/v1/stacks/%s/tasks", estack) < 0))
    rc = cli_usage_error("out of memory");
  if (rc == 0 && client_request(c, "POST", path, body, &task, &err) < 0)
    rc = cli_fail(err);
  /* wipe secret values before the body goes */
  cJSON *e;
  cJSON_ArrayForEach(e, senv)
  {
    if (e->valuestring)
      explicit_bzero(e->valuestring, strlen(e->valuestring));
  }
  cJSON_Delete(body);
  free(path);
  free(estack);
  berth_buf_free(&cmd);
  if (rc != 0) {
    cJSON_Delete(task);
    return rc < 0 ? 0 : rc;
  }
  char *id = strdup(str(task, "id") ? str(task, "id") : "?");
  cJSON_Delete(task);
  rc = after_submit(c, id, stack, detach, json);
  free(id);
  return rc;
}

/* berth task retry ID [--secret-env K[=V]]... [--detach] [--json] through the server */
static int
task_retry(client_conn *c, int argc, char **argv)
{
  bool detach = false, json = false;
  berth_error *err = NULL;
  cJSON *senv = cJSON_CreateObject();
  const char *id = NULL;
  int rc = 0;
  for (int i = 1; rc == 0 && i < argc; i++) {
    if (strcmp(argv[i], "--detach") == 0)
      detach = true;
    else if (strcmp(argv[i], "--json") == 0)
      json = true;
    else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf("usage: berth task retry ID [--secret-env K[=V]]... [--detach] [--json]\n");
      rc = -1;
    } else if (strcmp(argv[i], "--secret-env") == 0 && i + 1 < argc) {
      char *k = NULL, *v = NULL;
      if (berth_parse_secret_env_pair(argv[++i], &k, &v, &err) < 0)
        rc = cli_fail(err);
      else
        cJSON_AddStringToObject(senv, k, v);
      if (v)
        explicit_bzero(v, strlen(v));
      free(k);
      free(v);
    } else if (argv[i][0] == '-')
      rc = cli_usage_error("task retry: unknown option (see 'berth task retry --help')");
    else if (id == NULL)
      id = argv[i];
    else
      rc = cli_usage_error("task retry: unexpected argument `%s`", argv[i]);
  }
  if (rc == 0 && id == NULL)
    rc = cli_usage_error("task retry: which task? (berth task retry ID)");
  cJSON *body = cJSON_CreateObject(), *task = NULL;
  cJSON_AddItemToObject(body, "secret_env", senv);
  char *eid = id ? client_escape(id) : NULL, *path = NULL;
  if (rc == 0 && (eid == NULL || asprintf(&path, "/v1/tasks/%s/retry", eid) < 0))
    rc = cli_usage_error("out of memory");
  if (rc == 0 && client_request(c, "POST", path, body, &task, &err) < 0)
    rc = cli_fail(err);
  cJSON *e;
  cJSON_ArrayForEach(e, senv)
  {
    if (e->valuestring)
      explicit_bzero(e->valuestring, strlen(e->valuestring));
  }
  cJSON_Delete(body);
  free(path);
  free(eid);
  if (rc == 0) {
    char *nid = strdup(str(task, "id") ? str(task, "id") : "?");
    char *stack = strdup(str(task, "stack") ? str(task, "stack") : "?");
    rc = after_submit(c, nid, stack, detach, json);
    free(nid);
    free(stack);
  }
  cJSON_Delete(task);
  return rc < 0 ? 0 : rc;
}

static void
render_task_list(const cJSON *j)
{
  cli_render_task_list(cJSON_GetObjectItemCaseSensitive(j, "tasks"));
}

static int
task_list(client_conn *c, int argc, char **argv)
{
  static const struct option opts[]
      = { { "stack", required_argument, NULL, 's' }, { "state", required_argument, NULL, 't' },
          { "limit", required_argument, NULL, 'l' }, { "json", no_argument, NULL, 'j' },
          { "help", no_argument, NULL, 'h' },        { 0 } };
  berth_buf q;
  berth_buf_init(&q, 4096);
  berth_buf_printf(&q, "/v1/tasks");
  bool json = false;
  int c2;
  char sep = '?';
  optind = 1;
  while ((c2 = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
    const char *name = c2 == 's' ? "stack" : c2 == 't' ? "state" : c2 == 'l' ? "limit" : NULL;
    if (name) {
      char *v = client_escape(optarg);
      berth_buf_printf(&q, "%c%s=%s", sep, name, v ? v : "");
      free(v);
      sep = '&';
    } else if (c2 == 'j')
      json = true;
    else if (c2 == 'h') {
      printf("usage: berth task list [--stack S] [--state S] [--limit N] [--json]\n");
      berth_buf_free(&q);
      return 0;
    } else {
      berth_buf_free(&q);
      return cli_usage_error("task list: unknown option (see 'berth task list --help')");
    }
  }
  if (optind < argc) {
    berth_buf_free(&q);
    return cli_usage_error("task list: unexpected argument `%s`", argv[optind]);
  }
  int rc = get_and_show(c, q.data, json, render_task_list);
  berth_buf_free(&q);
  return rc;
}

/* "ID [--json]" style arguments: returns the one positional argument or NULL after printing a usage error. */
static const char *
one_arg(int argc, char **argv, const char *what, int *rc)
{
  const char *id = NULL;
  for (int i = 1; i < argc; i++) {
    if (argv[i][0] == '-' && argv[i][1] != '\0')
      continue;
    if (id) {
      *rc = cli_usage_error("%s: unexpected argument `%s`", what, argv[i]);
      return NULL;
    }
    id = argv[i];
  }
  if (id == NULL)
    *rc = cli_usage_error("%s: which one? (see 'berth %s --help')", what, what);
  return id;
}

static int
task_show(client_conn *c, int argc, char **argv)
{
  int rc = 0;
  const char *id = one_arg(argc, argv, "task show", &rc);
  if (id == NULL)
    return rc;
  berth_error *err = NULL;
  cJSON *t = NULL;
  if (fetch_task(c, id, &t, &err) < 0)
    return cli_fail(err);
  if (has_flag(argc, argv, "--json"))
    cli_print_json(t);
  else
    cli_render_task(t);
  cJSON_Delete(t);
  return 0;
}

static int
task_logs(client_conn *c, int argc, char **argv)
{
  int rc = 0;
  const char *id = one_arg(argc, argv, "task logs", &rc);
  if (id == NULL)
    return rc;
  berth_error *err = NULL;
  cJSON *t = NULL;
  if (fetch_task(c, id, &t, &err) < 0) /* a missing task is a clear error, not an empty log */
    return cli_fail(err);
  char *full = strdup(str(t, "id") ? str(t, "id") : id);
  cJSON_Delete(t);
  follow_state f = { .split = false };
  rc = follow(c, full, has_flag(argc, argv, "--follow") || has_flag(argc, argv, "-f"), &f);
  free(full);
  return rc;
}

static int
task_cancel(client_conn *c, int argc, char **argv)
{
  int rc = 0;
  const char *id = one_arg(argc, argv, "task cancel", &rc);
  if (id == NULL)
    return rc;
  char *eid = client_escape(id), *path = NULL;
  berth_error *err = NULL;
  cJSON *t = NULL;
  if (eid == NULL || asprintf(&path, "/v1/tasks/%s/cancel", eid) < 0)
    path = NULL;
  rc = path ? client_request(c, "POST", path, NULL, &t, &err) : berth_error_set(&err, BERTH_EINTERNAL, "no memory");
  free(eid);
  free(path);
  if (rc < 0)
    return cli_fail(err);
  printf("task %s %s\n", id, str(t, "state") ? str(t, "state") : "?");
  cJSON_Delete(t);
  return 0;
}

/* ---- stack ---- */

static void
render_stack_list(const cJSON *j)
{
  cli_render_stack_list(cJSON_GetObjectItemCaseSensitive(j, "stacks"));
}

/* `berth stack create|update`: cmd_stack.c's parser gives the body; the server applies it. */
static int
stack_edit_client(client_conn *c, int argc, char **argv, bool is_update)
{
  const char *name = NULL;
  cJSON *body = NULL, *j = NULL;
  int rc = stack_edit_body(argc, argv, is_update, &name, &body);
  if (rc != 0)
    return rc < 0 ? 0 : rc;
  berth_error *err = NULL;
  char *en = client_escape(name), *path = NULL;
  if (en == NULL || asprintf(&path, is_update ? "/v1/stacks/%s" : "/v1/stacks", en) < 0)
    path = NULL;
  if (path == NULL)
    rc = cli_usage_error("out of memory");
  else if (client_request(c, is_update ? "PATCH" : "POST", path, body, &j, &err) < 0)
    rc = cli_fail(err);
  else {
    printf("%s stack %s\n", is_update ? "updated" : "created", name);
    cJSON *w;
    cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(j, "warnings"))
    if (cJSON_IsString(w))
      fprintf(stderr, "berth: warning: %s\n", w->valuestring);
  }
  stack_body_free(body);
  cJSON_Delete(j);
  free(en);
  free(path);
  return rc;
}

static int
cmd_stack_client(client_conn *c, int argc, char **argv)
{
  if (argc < 2)
    return cli_usage_error("stack: which subcommand? (see 'berth stack --help')");
  const char *sub = argv[1];
  bool json = has_flag(argc - 1, argv + 1, "--json");
  if (strcmp(sub, "list") == 0)
    return get_and_show(c, "/v1/stacks", json, render_stack_list);
  if (strcmp(sub, "create") == 0 || strcmp(sub, "update") == 0)
    return stack_edit_client(c, argc - 1, argv + 1, strcmp(sub, "update") == 0);
  int rc = 0;
  if (strcmp(sub, "show") != 0 && strcmp(sub, "lock") != 0 && strcmp(sub, "unlock") != 0 && strcmp(sub, "delete") != 0
      && strcmp(sub, "state") != 0)
    return cli_usage_error("stack %s is not available against a server (use the HTTP API: docs/http-api.md)", sub);
  const char *name = NULL;
  const char *note = NULL;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--note") == 0 && i + 1 < argc)
      note = argv[++i];
    else if (argv[i][0] != '-' && name == NULL)
      name = argv[i];
  }
  if (name == NULL)
    return cli_usage_error("'berth stack %s' needs a stack NAME (see 'berth stack %s --help')", sub, sub);
  char *en = client_escape(name), *path = NULL;
  berth_error *err = NULL;
  cJSON *j = NULL;
  if (en == NULL
      || asprintf(&path, "/v1/stacks/%s%s%s", en,
                  strcmp(sub, "lock") == 0 || strcmp(sub, "unlock") == 0 ? "/lock"
                  : strcmp(sub, "state") == 0                            ? "/state"
                                                                         : "",
                  has_flag(argc, argv, "--force") ? "?force=1" : "")
             < 0)
    path = NULL;
  free(en);
  if (path == NULL)
    return cli_usage_error("out of memory");
  if (strcmp(sub, "show") == 0) {
    rc = get_and_show(c, path, json, cli_render_stack);
  } else if (strcmp(sub, "state") == 0) {
    rc = get_and_show(c, path, json, cli_render_stack_state);
  } else if (strcmp(sub, "lock") == 0) {
    cJSON *body = cJSON_CreateObject();
    if (note)
      cJSON_AddStringToObject(body, "note", note);
    if (client_request(c, "POST", path, body, &j, &err) < 0)
      rc = cli_fail(err);
    else
      printf("locked stack %s\n", name);
    cJSON_Delete(body);
  } else if (client_request(c, "DELETE", path, NULL, &j, &err) < 0) {
    rc = cli_fail(err);
  } else {
    printf(strcmp(sub, "unlock") == 0 ? "unlocked stack %s\n" : "deleted stack %s\n", name);
  }
  cJSON_Delete(j);
  free(path);
  return rc;
}

/* ---- doctor, audit, keys ---- */

static int
cmd_doctor_client(client_conn *c, int argc, char **argv)
{
  berth_error *err = NULL;
  cJSON *j = NULL;
  if (client_request(c, "GET", "/v1/doctor", NULL, &j, &err) < 0)
    return cli_fail(err);
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "docker"),
              *img = cJSON_GetObjectItemCaseSensitive(j, "runner_image"),
              *st = cJSON_GetObjectItemCaseSensitive(j, "store");
  bool ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ok"));
  if (has_flag(argc, argv, "--json"))
    cli_print_json(j);
  else {
    if (ok) {
      bool present = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(img, "present"));
      printf("docker   ok    %s: Docker %s, API %s negotiated (server %s, min %s), storage %s\n", str(d, "host"),
             str(d, "server_version"), str(d, "api_version"), str(d, "server_api_version"), str(d, "min_api_version"),
             str(d, "storage_driver"));
      printf("image    %-5s %s %s\n", present ? "ok" : "miss", str(img, "ref"),
             present ? "is present" : "is not present (build it: ci/build-images.sh)");
    }
    bool exists = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "exists"));
    printf("store    %-5s %s%s\n", exists ? "ok" : "new", str(st, "home"), exists ? "" : " (created on first use)");
  }
  int rc = 0;
  if (!ok) {
    berth_error_set(&err, BERTH_EDOCKER, "%s", str(d, "error") ? str(d, "error") : "Docker is not usable");
    rc = cli_fail(err);
  }
  cJSON_Delete(j);
  return rc;
}

static void
render_audit(const cJSON *j)
{
  cli_render_audit(cJSON_GetObjectItemCaseSensitive(j, "records"));
}

static int
cmd_audit_client(client_conn *c, int argc, char **argv)
{
  const char *since = NULL;
  bool verify = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "verify") == 0 && !verify)
      verify = true;
    else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc)
      since = argv[++i];
    else if (strncmp(argv[i], "--since=", 8) == 0)
      since = argv[i] + 8;
    else if (strcmp(argv[i], "--json") != 0)
      return cli_usage_error("audit: `%s` is not available against a server", argv[i]);
  }
  if (verify && since)
    return cli_usage_error("'berth audit verify' always checks the whole trail (no --since)");
  if (verify) /* exit 0 intact, 1 broken, as local mode */
    return get_and_show_status(c, "/v1/audit/verify", has_flag(argc, argv, "--json"), cli_render_audit_verify,
                               cli_audit_verify_exit_status);
  char *es = since ? client_escape(since) : NULL, *path = NULL;
  if (asprintf(&path, "/v1/audit%s%s", es ? "?since=" : "", es ? es : "") < 0)
    path = NULL;
  free(es);
  int rc = path ? get_and_show(c, path, has_flag(argc, argv, "--json"), render_audit) : 125;
  free(path);
  return rc;
}

static int
cmd_key_client(client_conn *c, int argc, char **argv)
{
  berth_error *err = NULL;
  cJSON *j = NULL;
  if (argc >= 2 && strcmp(argv[1], "list") == 0)
    return get_and_show(c, has_flag(argc, argv, "--all") ? "/v1/keys?all=1" : "/v1/keys",
                        has_flag(argc, argv, "--json"), key_render_list);
  if (argc == 3 && strcmp(argv[1], "revoke") == 0) {
    char *en = client_escape(argv[2]), *path = NULL;
    if (en == NULL || asprintf(&path, "/v1/keys/%s", en) < 0)
      path = NULL;
    free(en);
    int rc = path && client_request(c, "DELETE", path, NULL, &j, &err) == 0 ? 0 : cli_fail(err);
    if (rc == 0)
      fprintf(stderr, "berth: API key `%s` revoked\n", argv[2]);
    free(path);
    cJSON_Delete(j);
    return rc;
  }
  if (argc >= 3 && strcmp(argv[1], "create") == 0) {
    cJSON *body = cJSON_CreateObject(), *stacks = cJSON_AddArrayToObject(body, "stacks");
    const char *name = NULL;
    for (int i = 2; i < argc; i++) {
      if (strcmp(argv[i], "--role") == 0 && i + 1 < argc)
        cJSON_AddStringToObject(body, "role", argv[++i]);
      else if (strcmp(argv[i], "--stack") == 0 && i + 1 < argc)
        cJSON_AddItemToArray(stacks, cJSON_CreateString(argv[++i]));
      else if (name == NULL && argv[i][0] != '-')
        name = argv[i];
    }
    if (name)
      cJSON_AddStringToObject(body, "name", name);
    int rc = client_request(c, "POST", "/v1/keys", body, &j, &err) == 0 ? 0 : cli_fail(err);
    cJSON_Delete(body);
    if (rc == 0) {
      fprintf(stderr, "berth: API key `%s` (%s) created; it is shown once, store it now:\n", name, str(j, "role"));
      printf("%s\n", str(j, "key"));
    }
    cJSON_Delete(j);
    return rc;
  }
  return cli_usage_error("key: usage: berth key create NAME --role R [--stack S]... | list | revoke NAME");
}

/* `berth oidc jwks|config|rotate` against a server: the documents it publishes, rotation (admin). */
static int
client_oidc(client_conn *c, int argc, char **argv)
{
  const char *sub = argc >= 2 ? argv[1] : "";
  const char *path = strcmp(sub, "jwks") == 0     ? "/.well-known/jwks.json"
                     : strcmp(sub, "config") == 0 ? "/.well-known/openid-configuration"
                     : strcmp(sub, "rotate") == 0 ? "/v1/oidc/rotate"
                                                  : NULL;
  if (path == NULL || argc > 2)
    return cli_usage_error("oidc: through a server, `berth oidc jwks|config|rotate` (see 'berth oidc --help')");
  berth_error *err = NULL;
  cJSON *j = NULL;
  if (client_request(c, strcmp(sub, "rotate") == 0 ? "POST" : "GET", path, NULL, &j, &err) < 0)
    return cli_fail(err);
  if (strcmp(sub, "rotate") == 0) {
    printf("new OIDC signing key %s (%s); the previous one stays published for 1 h\n",
           cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "kid")),
           cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "alg")));
  } else {
    char *s = cJSON_Print(j);
    if (s != NULL)
      printf("%s\n", s);
    free(s);
  }
  cJSON_Delete(j);
  return 0;
}

int
client_main(int argc, char **argv)
{
  if (argc < 2)
    return cli_usage_error("which command? (see 'berth --help')");
  berth_error *err = NULL;
  client_conn *c = NULL;
  if (client_conn_new(&c, &err) < 0)
    return cli_fail(err);
  const char *cmd = argv[1];
  int sub_argc = argc - 1;
  char **sub = argv + 1;
  int rc;
  if (strcmp(cmd, "task") == 0 && sub_argc >= 2) {
    const char *t = sub[1];
    if (strcmp(t, "run") == 0)
      rc = task_run(c, sub_argc - 1, sub + 1);
    else if (strcmp(t, "list") == 0)
      rc = task_list(c, sub_argc - 1, sub + 1);
    else if (strcmp(t, "show") == 0)
      rc = task_show(c, sub_argc - 1, sub + 1);
    else if (strcmp(t, "logs") == 0)
      rc = task_logs(c, sub_argc - 1, sub + 1);
    else if (strcmp(t, "cancel") == 0)
      rc = task_cancel(c, sub_argc - 1, sub + 1);
    else if (strcmp(t, "retry") == 0)
      rc = task_retry(c, sub_argc - 1, sub + 1);
    else
      rc = cli_usage_error("task: unknown subcommand `%s` (see 'berth task --help')", t);
  } else if (strcmp(cmd, "stack") == 0)
    rc = cmd_stack_client(c, sub_argc, sub);
  else if (strcmp(cmd, "doctor") == 0)
    rc = cmd_doctor_client(c, sub_argc, sub);
  else if (strcmp(cmd, "audit") == 0)
    rc = cmd_audit_client(c, sub_argc, sub);
  else if (strcmp(cmd, "key") == 0)
    rc = cmd_key_client(c, sub_argc, sub);
  else if (strcmp(cmd, "image") == 0)
    rc = client_image(c, sub_argc, sub);
  else if (strcmp(cmd, "policy") == 0)
    rc = client_policy(c, sub_argc, sub);
  else if (strcmp(cmd, "oidc") == 0)
    rc = client_oidc(c, sub_argc, sub);
  else if (strcmp(cmd, "host") == 0)
    rc = cmd_host_client(c, sub_argc, sub);
  else
    rc = cli_usage_error("`berth %s` is not available against a server yet (use the HTTP API: docs/http-api.md)", cmd);
  client_conn_free(c);
  return rc;
}
