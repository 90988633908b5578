/* `berth webhook`: signed webhooks (add, list, remove, deliveries, redeliver), against the local store or, through a
 * server, the HTTP API (admin). The secret is read from the environment variable --secret-env names and sent once;
 * it is never printed. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/parse.h"
#include "berth/cleanup.h"
#include "berth/store.h"
#include "berth/webhook.h"
#include "cli.h"
#include "client.h"

static const char usage_main[]
    = "usage: berth webhook COMMAND [ARGS...]\n"
      "\n"
      "commands:\n"
      "  add NAME URL --secret-env VAR [--event task.state|audit]... [--stack PATTERN] [--json]\n"
      "                           POST matching events to URL, signed with the secret in $VAR\n"
      "  list [--json]            list webhooks (never their secrets)\n"
      "  remove NAME              remove a webhook and its deliveries\n"
      "  deliveries NAME [--limit N] [--json]\n"
      "                           the webhook's deliveries, newest first, with every attempt\n"
      "  redeliver DELIVERY_ID    send a delivery again (the same X-Berth-Delivery id)\n"
      "\n"
      "Events: task.state (default; every state of a task), audit. See docs/webhooks.md.\n";

enum { OPT_JSON = 256, OPT_HELP, OPT_SECRET_ENV, OPT_EVENT, OPT_STACK, OPT_LIMIT };

static const struct option options[] = {
  { "json", no_argument, NULL, OPT_JSON },
  { "help", no_argument, NULL, OPT_HELP },
  { "secret-env", required_argument, NULL, OPT_SECRET_ENV },
  { "event", required_argument, NULL, OPT_EVENT },
  { "stack", required_argument, NULL, OPT_STACK },
  { "limit", required_argument, NULL, OPT_LIMIT },
  { NULL, 0, NULL, 0 },
};

typedef struct hook_req {
  const char *sub;
  const char *arg, *url;
  const char *secret_env;
  bool json;
  int limit;
  cJSON *body; /* add */
} hook_req;

static int
parse(int argc, char **argv, hook_req *q)
{
  bool add = strcmp(q->sub, "add") == 0;
  int want = add ? 2 : strcmp(q->sub, "list") == 0 ? 0 : 1, npos = 0, opt;
  const char *pos[2] = { NULL, NULL };
  cJSON *events = NULL;
  if (add)
    q->body = cJSON_CreateObject();
  optind = 0;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, "-:", options, NULL)) != -1) {
    const char *bad = argv[optind > 0 ? optind - 1 : 0];
    if (opt == OPT_HELP) {
      fputs(usage_main, stdout);
      return -1;
    } else if (opt == 1 && npos < want) {
      pos[npos++] = optarg;
    } else if (opt == 1) {
      return cli_usage_error("unexpected argument `%s` for 'berth webhook %s'", optarg, q->sub);
    } else if (opt == ':') {
      return cli_usage_error("flag `%s` needs a value (see 'berth webhook --help')", bad);
    } else if (opt == OPT_JSON) {
      q->json = true;
    } else if (opt == OPT_LIMIT && strcmp(q->sub, "deliveries") == 0) {
      int64_t n = 0;
      berth_error *err = NULL;
      if (berth_parse_int64(optarg, 1, 1000000, &n, &err) < 0)
        return cli_fail((berth_error_wrap(&err, "--limit"), err));
      q->limit = (int) n;
    } else if (add && opt == OPT_SECRET_ENV) {
      q->secret_env = optarg;
    } else if (add && opt == OPT_EVENT) {
      if (events == NULL)
        events = cJSON_AddArrayToObject(q->body, "events");
      cJSON_AddItemToArray(events, cJSON_CreateString(optarg));
    } else if (add && opt == OPT_STACK) {
      cJSON_DeleteItemFromObjectCaseSensitive(q->body, "stack");
      cJSON_AddStringToObject(q->body, "stack", optarg);
    } else {
      return cli_usage_error("unknown flag `%s` for 'berth webhook %s' (see 'berth webhook --help')", bad, q->sub);
    }
  }
  if (npos < want)
    return cli_usage_error("'berth webhook %s' needs %s", q->sub,
                           add                                ? "NAME URL"
                           : strcmp(q->sub, "redeliver") == 0 ? "a DELIVERY_ID"
                                                              : "a NAME");
  q->arg = pos[0];
  q->url = pos[1];
  if (add) {
    const char *secret = q->secret_env ? getenv(q->secret_env) : NULL;
    if (q->secret_env == NULL)
      return cli_usage_error("'berth webhook add' needs --secret-env VAR (the variable holding the secret)");
    if (secret == NULL || *secret == '\0')
      return cli_usage_error("--secret-env %s: the variable is not set or empty", q->secret_env);
    cJSON_AddStringToObject(q->body, "name", q->arg);
    cJSON_AddStringToObject(q->body, "url", q->url);
    cJSON_AddStringToObject(q->body, "secret", secret);
  }
  return 0;
}

/* The request through the server. */
static int
run_client(client_conn *c, const hook_req *q, cJSON **out, berth_error **err)
{
  cleanup_free char *arg = q->arg ? client_escape(q->arg) : NULL;
  cleanup_free char *path = NULL;
  const char *method = "GET";
  int n = -1;
  if (strcmp(q->sub, "add") == 0)
    method = "POST", n = asprintf(&path, "/v1/webhooks");
  else if (strcmp(q->sub, "list") == 0)
    n = asprintf(&path, "/v1/webhooks");
  else if (strcmp(q->sub, "remove") == 0)
    method = "DELETE", n = asprintf(&path, "/v1/webhooks/%s", arg);
  else if (strcmp(q->sub, "deliveries") == 0)
    n = asprintf(&path, "/v1/webhooks/%s/deliveries?limit=%d", arg, q->limit > 0 ? q->limit : 100);
  else
    method = "POST", n = asprintf(&path, "/v1/webhook-deliveries/%s/redeliver", arg);
  if (n < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  return client_request(c, method, path, q->body, out, err);
}

static int
run_local(berth_store *st, const char *actor, const hook_req *q, cJSON **out, berth_error **err)
{
  int rc = 0;
  if (strcmp(q->sub, "add") == 0) {
    berth_webhook *w = NULL;
    rc = berth_webhook_from_json(q->body, &w, err);
    if (rc == 0)
      rc = berth_webhook_add(st, w, actor, err);
    if (rc == 0)
      *out = berth_webhook_to_json(w);
    berth_webhook_free(w);
  } else if (strcmp(q->sub, "list") == 0) {
    berth_webhook **v = NULL;
    size_t n = 0;
    if ((rc = berth_store_webhook_list(st, &v, &n, err)) == 0) {
      *out = cJSON_CreateObject();
      cJSON *a = cJSON_AddArrayToObject(*out, "webhooks");
      for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, berth_webhook_to_json(v[i]));
    }
    berth_webhooks_free(v, n);
  } else if (strcmp(q->sub, "remove") == 0) {
    rc = berth_webhook_remove(st, q->arg, actor, err);
  } else if (strcmp(q->sub, "deliveries") == 0) {
    rc = berth_webhook_deliveries_json(st, q->arg, q->limit, out, err);
  } else {
    rc = berth_webhook_redeliver(st, q->arg, actor, err);
  }
  return rc;
}

static const char *
str(const cJSON *o, const char *key)
{
  const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
  return v ? v : "-";
}

static void
render_list(const cJSON *j)
{
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "webhooks");
  if (cJSON_GetArraySize(a) == 0) {
    printf("no webhooks\n");
    return;
  }
  printf("%-20s %-24s %-12s %s\n", "NAME", "EVENTS", "STACKS", "URL");
  for (const cJSON *w = a->child; w; w = w->next) {
    char ev[128] = "";
    const cJSON *e = NULL;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(w, "events"))
    {
      if (ev[0])
        strncat(ev, ",", sizeof ev - strlen(ev) - 1);
      strncat(ev, cJSON_GetStringValue(e) ? cJSON_GetStringValue(e) : "", sizeof ev - strlen(ev) - 1);
    }
    printf("%-20s %-24s %-12s %s\n", str(w, "name"), ev,
           cJSON_IsString(cJSON_GetObjectItemCaseSensitive(w, "stack")) ? str(w, "stack") : "*", str(w, "url"));
  }
}

static void
render_deliveries(const cJSON *j)
{
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "deliveries");
  if (cJSON_GetArraySize(a) == 0) {
    printf("no deliveries\n");
    return;
  }
  printf("%-36s %-10s %-9s %-24s %-12s %-8s %s\n", "DELIVERY", "EVENT", "STATE", "CREATED", "TASK STATE", "ATTEMPTS",
         "LAST");
  for (const cJSON *d = a->child; d; d = d->next) {
    const cJSON *attempts = cJSON_GetObjectItemCaseSensitive(d, "attempts");
    int n = cJSON_GetArraySize(attempts);
    const cJSON *last = n > 0 ? cJSON_GetArrayItem(attempts, n - 1) : NULL;
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(last, "status_code");
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(last, "duration_ms");
    char result[320] = "-";
    if (cJSON_IsNumber(code))
      snprintf(result, sizeof result, "%d in %d ms", code->valueint, cJSON_IsNumber(ms) ? ms->valueint : 0);
    else if (last)
      snprintf(result, sizeof result, "%s", str(last, "error"));
    printf("%-36s %-10s %-9s %-24s %-12s %-8d %s\n", str(d, "id"), str(d, "event"), str(d, "state"),
           str(d, "created_at"), str(d, "task_state"), n, result);
  }
}

static int
webhook_main(client_conn *c, int argc, char **argv)
{
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fputs(usage_main, argc < 2 ? stderr : stdout);
    return argc < 2 ? 125 : 0;
  }
  static const char *const subs[] = { "add", "list", "remove", "deliveries", "redeliver", NULL };
  hook_req q = { .sub = argv[1] };
  bool known = false;
  for (size_t i = 0; subs[i] && !known; i++)
    known = strcmp(q.sub, subs[i]) == 0;
  if (!known)
    return cli_usage_error("webhook: unknown subcommand `%s` (see 'berth webhook --help')", q.sub);
  int rc = parse(argc - 1, argv + 1, &q);
  berth_error *err = NULL;
  cJSON *out = NULL;
  berth_store *st = NULL;
  if (rc == 0 && c == NULL)
    rc = cli_open_store(&st);
  if (rc != 0) {
    cJSON_Delete(q.body);
    return rc < 0 ? 0 : rc; /* -1: --help was printed */
  }
  if (c != NULL) {
    rc = run_client(c, &q, &out, &err);
  } else {
    char *actor = cli_current_user();
    rc = run_local(st, actor, &q, &out, &err);
    free(actor);
    berth_store_close(st);
  }
  cJSON *secret = cJSON_GetObjectItemCaseSensitive(q.body, "secret");
  if (cJSON_IsString(secret))
    explicit_bzero(secret->valuestring, strlen(secret->valuestring));
  cJSON_Delete(q.body);
  if (rc < 0)
    return cli_fail(err);
  if (q.json && out)
    cli_print_json(out);
  else if (out != NULL && (cli_printable(out), strcmp(q.sub, "list") == 0)) /* anyone's text: see cli_printable */
    render_list(out);
  else if (strcmp(q.sub, "deliveries") == 0)
    render_deliveries(out);
  else if (strcmp(q.sub, "add") == 0)
    printf("webhook %s added: %s\n", q.arg, q.url);
  else if (strcmp(q.sub, "remove") == 0)
    printf("webhook %s removed\n", q.arg);
  else
    printf("delivery %s will be sent again\n", q.arg);
  cJSON_Delete(out);
  return 0;
}

/* Local, or through the server that BERTH_SERVER names (`--server URL` sets it), like every command. */
int
cmd_webhook(int argc, char **argv)
{
  const char *server = getenv("BERTH_SERVER");
  if (server == NULL || *server == '\0')
    return webhook_main(NULL, argc, argv);
  berth_error *err = NULL;
  client_conn *c = NULL;
  if (client_conn_new(&c, &err) < 0)
    return cli_fail(err);
  int rc = webhook_main(c, argc, argv);
  client_conn_free(c);
  return rc;
}

int
cmd_webhook_client(client_conn *c, int argc, char **argv)
{
  return webhook_main(c, argc, argv);
}
