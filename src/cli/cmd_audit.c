/* `berth audit`: list the audit trail, and verify its hash chain. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/audit.h"
#include "backend.h"
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

static void
show_records(const cli_request *rq, const cJSON *rec)
{
  (void) rq;
  cli_render_audit(cJSON_GetObjectItemCaseSensitive(rec, "records"));
}

static void
show_verify(const cli_request *rq, const cJSON *rec)
{
  (void) rq;
  cli_render_audit_verify(rec);
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
  static const cli_view list = { show_records, NULL, NULL },
                        verify = { show_verify, NULL, cli_audit_verify_exit_status };
  cli_request rq = { .json = json, .since = since };
  if (sub && strcmp(sub, "verify") == 0) {
    if (optind + 1 < argc)
      return cli_usage_error("unexpected argument `%s` for 'berth audit verify'", argv[optind + 1]);
    if (since)
      return cli_usage_error("'berth audit verify' always checks the whole trail (no --since)");
    return cli_run(CLI_OP_AUDIT_VERIFY, &rq, &verify); /* exit 0 intact, 1 broken */
  }
  if (sub && strcmp(sub, "list") != 0)
    return cli_usage_error("unknown command 'berth audit %s' (see 'berth audit --help')", sub);
  if (sub && optind + 1 < argc)
    return cli_usage_error("unexpected argument `%s` for 'berth audit'", argv[optind + 1]);
  berth_error *err = NULL;
  int64_t since_ms = 0;
  /* a bad --since is a bad command line in both modes */
  if (since && berth_audit_parse_time(since, berth_now_ms(), &since_ms, &err) < 0) {
    berth_error_wrap(&err, "--since");
    return cli_fail(err);
  }
  return cli_run(CLI_OP_AUDIT_LIST, &rq, &list);
}
