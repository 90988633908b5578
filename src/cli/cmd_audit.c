/* `berth audit`: list the audit trail, and verify its hash chain. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/audit.h"
#include "berth/cleanup.h"
#include "berth/store.h"
#include "cli.h"

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
print_table(const cJSON *records)
{
  if (cJSON_GetArraySize(records) == 0) {
    printf("no audit records\n");
    return;
  }
  printf("%-6s %-20s %-14s %-16s %-30s %s\n", "ID", "TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME");
  const cJSON *r;
  cJSON_ArrayForEach(r, records)
  {
    const cJSON *target = cJSON_GetObjectItemCaseSensitive(r, "target");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(r, "args");
    printf("%-6lld %-20s %-14s %-16s %-30s %s\n", (long long)cJSON_GetObjectItemCaseSensitive(r, "id")->valuedouble,
           cJSON_GetObjectItemCaseSensitive(r, "time")->valuestring,
           cJSON_GetObjectItemCaseSensitive(r, "actor")->valuestring,
           cJSON_GetObjectItemCaseSensitive(r, "action")->valuestring,
           cJSON_IsString(target) ? target->valuestring : "-",
           cJSON_GetObjectItemCaseSensitive(r, "outcome")->valuestring);
    if (args != NULL && !cJSON_IsNull(args)) {
      cleanup_free char *a = cJSON_PrintUnformatted(args);
      if (a)
        printf("%-6s args: %s\n", "", a);
    }
  }
}

static int
cmd_verify(bool json)
{
  berth_store *st = NULL;
  int rc = cli_open_store(&st);
  if (rc != 0)
    return rc;
  berth_error *err = NULL;
  int64_t first_bad = 0, count = 0;
  cleanup_free char *why = NULL;
  cleanup_free char *head = NULL;
  rc = berth_audit_verify_detail(st, &first_bad, &count, &why, &head, &err);
  berth_store_close(st);
  if (rc < 0)
    return cli_fail(err);
  if (json) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "intact", first_bad == 0);
    cJSON_AddNumberToObject(j, "records", (double)count);
    if (first_bad) {
      cJSON_AddNumberToObject(j, "first_bad", (double)first_bad);
      cJSON_AddStringToObject(j, "problem", why ? why : "");
    } else {
      cJSON_AddStringToObject(j, "head", head ? head : "");
    }
    cli_print_json(j);
    cJSON_Delete(j);
  } else if (first_bad == 0) {
    printf("audit trail intact: %lld record%s, head %s\n", (long long)count, count == 1 ? "" : "s",
           head && *head ? head : "(empty)");
  } else {
    printf("audit trail BROKEN: record %lld: %s (%lld records)\n", (long long)first_bad, why ? why : "",
           (long long)count);
  }
  return first_bad == 0 ? 0 : 1;
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
    print_table(cJSON_GetObjectItemCaseSensitive(list, "records"));
  cJSON_Delete(list);
  return 0;
}
