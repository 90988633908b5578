/* `berth audit`: list the audit trail, and verify its hash chain. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/audit.h"
#include "berth/store.h"
#include "cli.h"
#include "render.h"

static const char usage_main[]
    = "usage: berth audit [--since TIME] [--json]\n"
      "       berth audit verify [--json]\n"
      "\n"
      "Lists the audit trail (every state-changing action: who, what, on which target, with which arguments and\n"
      "outcome), oldest first. --since takes a UTC date (2024-05-01, 2024-05-01T12:00Z) or a duration ago (90m, 7d).\n"
      "'verify' checks the hash chain and names the first broken record; exit 0 intact, 1 broken.\n";

enum { OPT_JSON = 256, OPT_HELP, OPT_SINCE };

static const struct option options[] = {
  { "json", no_argument, NULL, OPT_JSON },
  { "help", no_argument, NULL, OPT_HELP },
  { "since", required_argument, NULL, OPT_SINCE },
  { NULL, 0, NULL, 0 },
};

static int
cmd_verify(bool json)
{
  berth_store *st = NULL;
  int rc = cli_open_store(&st);
  if (rc != 0)
    return rc;
  berth_error *err = NULL;
  cJSON *j = berth_audit_verify_json(st, &err);
  berth_store_close(st);
  if (j == NULL)
    return cli_fail(err);
  if (json)
    cli_print_json(j);
  else
    cli_render_audit_verify(j);
  rc = cli_audit_verify_exit_status(j);
  cJSON_Delete(j);
  return rc;
}

int
cmd_audit(int argc, char **argv)
{
  bool json = false;
  const char *since = NULL;
  int opt;
  optind = 0;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) {
    const char *bad = argv[optind > 0 ? optind - 1 : 0];
    if (opt == OPT_HELP) {
      fputs(usage_main, stdout);
      return 0;
    }
    if (opt == OPT_JSON)
      json = true;
    else if (opt == OPT_SINCE)
      since = optarg;
    else if (opt == ':')
      return cli_usage_error("flag `%s` needs a value (see 'berth audit --help')", bad);
    else
      return cli_usage_error("unknown flag `%s` for 'berth audit' (see 'berth audit --help')", bad);
  }
  const char *sub = optind < argc ? argv[optind] : NULL;
  if (sub && strcmp(sub, "verify") == 0) {
    if (optind + 1 < argc)
      return cli_usage_error("unexpected argument `%s` for 'berth audit verify'", argv[optind + 1]);
    if (since)
      return cli_usage_error("'berth audit verify' always checks the whole trail (no --since)");
    return cmd_verify(json);
  }
  if (sub && strcmp(sub, "list") != 0)
    return cli_usage_error("unknown command 'berth audit %s' (see 'berth audit --help')", sub);
  if (sub && optind + 1 < argc)
    return cli_usage_error("unexpected argument `%s` for 'berth audit'", argv[optind + 1]);
  berth_error *err = NULL;
  int64_t since_ms = 0;
  if (since && berth_audit_parse_time(since, berth_now_ms(), &since_ms, &err) < 0) {
    berth_error_wrap(&err, "--since");
    return cli_fail(err);
  }
  berth_store *st = NULL;
  int rc = cli_open_store(&st);
  if (rc != 0)
    return rc;
  cJSON *list = berth_audit_list_json(st, since_ms, &err);
  berth_store_close(st);
  if (list == NULL)
    return cli_fail(err);
  if (json)
    cli_print_json(list);
  else
    cli_render_audit(cJSON_GetObjectItemCaseSensitive(list, "records"));
  cJSON_Delete(list);
  return 0;
}
