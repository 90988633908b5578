/* berth host list | show | drain | undrain: the fleet's hosts (docs/fleet.md). */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "backend.h"
#include "cli.h"
#include "render.h"

static const char host_usage[]
    = "usage: berth host list [--json]\n"
      "       berth host show NAME [--json]\n"
      "       berth host drain NAME\n"
      "       berth host undrain NAME\n"
      "       berth host remove NAME\n\n"
      "The hosts of a fleet: every `berth serve` on one PostgreSQL store (docs/fleet.md). A host is alive while it\n"
      "heartbeats within its lease, lost after; drain makes it claim no new task (its running tasks finish), undrain\n"
      "makes it claim again (admin). remove forgets a lost host that will not come back (admin); a running host\n"
      "removes its own record when it stops.\n";

static void
show_list(const cli_request *rq, const cJSON *rec)
{
  (void) rq;
  cli_render_host_list(cJSON_GetObjectItemCaseSensitive(rec, "hosts"));
}

static void
show_one(const cli_request *rq, const cJSON *rec)
{
  (void) rq;
  cli_render_host(rec);
}

static void
show_remove(const cli_request *rq, const cJSON *rec)
{
  (void) rec;
  printf("host %s removed\n", rq->arg);
}

static void
show_drain(const cli_request *rq, const cJSON *rec)
{
  const char *state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "state"));
  state = state ? state : "";
  if (strcmp(rq->verb, "drain") == 0 && strcmp(state, "stopped") == 0)
    printf("host %s is not running: its drain is kept (it claims nothing when it starts)\n", rq->arg);
  else if (strcmp(rq->verb, "drain") == 0 && strcmp(state, "lost") == 0)
    printf("host %s is lost: its drain is kept (it claims nothing when it comes back)\n", rq->arg);
  else if (strcmp(rq->verb, "drain") == 0)
    printf("host %s is draining: it claims no new task (kept across its restarts until `berth host undrain %s`)\n",
           rq->arg, rq->arg);
  else if (strcmp(state, "stopped") == 0)
    printf("host %s: its drain is cleared (it is not running: it claims tasks when it starts)\n", rq->arg);
  else if (strcmp(state, "lost") == 0)
    printf("host %s: its drain is cleared (it is lost: it claims nothing until it runs again)\n", rq->arg);
  else if (strcmp(state, "draining") == 0) /* undrained while it shuts down */
    printf("host %s: its drain is cleared (it is shutting down)\n", rq->arg);
  else
    printf("host %s claims tasks again\n", rq->arg);
}

int
cmd_host(int argc, char **argv)
{
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fputs(host_usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 125 : 0;
  }
  static const cli_view list_view = { show_list, NULL, NULL }, one_view = { show_one, NULL, NULL },
                        drain_view = { show_drain, NULL, NULL }, remove_view = { show_remove, NULL, NULL };
  const char *sub = argv[1];
  cli_op op;
  const cli_view *view;
  bool takes_json = true;
  if (strcmp(sub, "list") == 0)
    op = CLI_OP_HOST_LIST, view = &list_view;
  else if (strcmp(sub, "show") == 0)
    op = CLI_OP_HOST_SHOW, view = &one_view;
  else if (strcmp(sub, "drain") == 0 || strcmp(sub, "undrain") == 0)
    op = sub[0] == 'd' ? CLI_OP_HOST_DRAIN : CLI_OP_HOST_UNDRAIN, view = &drain_view, takes_json = false;
  else if (strcmp(sub, "remove") == 0)
    op = CLI_OP_HOST_REMOVE, view = &remove_view, takes_json = false;
  else
    return cli_usage_error("host: unknown subcommand `%s` (see 'berth host --help')", sub);
  cli_request rq = { .verb = sub };
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(host_usage, stdout);
      return 0;
    } else if (strcmp(argv[i], "--json") == 0 && takes_json)
      rq.json = true;
    else if (argv[i][0] == '-')
      return cli_usage_error("host %s: unknown option `%s` (see 'berth host --help')", sub, argv[i]);
    else if (op != CLI_OP_HOST_LIST && rq.arg == NULL)
      rq.arg = argv[i];
    else
      return cli_usage_error("host %s: unexpected argument `%s`", sub, argv[i]);
  }
  if (op != CLI_OP_HOST_LIST && rq.arg == NULL)
    return cli_usage_error("host %s: which host? (berth host %s NAME)", sub, sub);
  return cli_run(op, &rq, view);
}
