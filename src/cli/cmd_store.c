/* `berth store`: what the store is (engine, schema version, counts, size), bringing its schema up to date, and
 * copying it into an empty PostgreSQL database. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/parse.h"
#include "berth/store.h"
#include "cli.h"

static const char usage_main[]
    = "usage: berth store info [--json]\n"
      "       berth store migrate [--json]\n"
      "       berth store copy --to URL [--json]\n"
      "\n"
      "info     the store's engine and location, its schema version, how many stacks, tasks, audit records and\n"
      "         API keys it holds, and its size on disk\n"
      "migrate  brings the schema up to the newest version this berth knows and prints the versions before and\n"
      "         after (every command does this when it opens the store; this one only does that)\n"
      "copy     copies every record into the EMPTY PostgreSQL database at URL (a postgresql:// URL or libpq\n"
      "         key=value settings) in one transaction; then use it with BERTH_STORE=URL and the same BERTH_HOME\n"
      "\n"
      "The store is BERTH_HOME/berth.db. A store whose schema is newer than this berth knows is refused with one\n"
      "line naming both versions (exit 125); use a newer berth. These commands always work on the local store.\n";

enum { OPT_JSON = 256, OPT_HELP, OPT_TO };

static const struct option options[] = {
  { "json", no_argument, NULL, OPT_JSON },
  { "help", no_argument, NULL, OPT_HELP },
  { "to", required_argument, NULL, OPT_TO },
  { NULL, 0, NULL, 0 },
};

static cJSON *
info_json(const berth_store_info *in)
{
  cJSON *o = cJSON_CreateObject();
  if (o == NULL)
    return NULL;
  cJSON_AddStringToObject(o, "engine", in->engine);
  cJSON_AddStringToObject(o, "location", in->location);
  cJSON_AddNumberToObject(o, "schema_version", in->schema_version);
  cJSON_AddNumberToObject(o, "schema_version_known", in->schema_version_known);
  cJSON_AddNumberToObject(o, "schema_version_at_open", in->schema_version_at_open); /* 0: made by this open */
  cJSON *counts = cJSON_AddObjectToObject(o, "counts");
  cJSON_AddNumberToObject(counts, "stacks", (double) in->stacks);
  cJSON_AddNumberToObject(counts, "tasks", (double) in->tasks);
  cJSON_AddNumberToObject(counts, "audit_records", (double) in->audit_records);
  cJSON_AddNumberToObject(counts, "api_keys", (double) in->api_keys);
  if (in->size_bytes >= 0)
    cJSON_AddNumberToObject(o, "size_bytes", (double) in->size_bytes);
  else
    cJSON_AddNullToObject(o, "size_bytes");
  return o;
}

static void
render_info(const berth_store_info *in)
{
  char size[32];
  printf("engine:          %s\n", in->engine);
  printf("location:        %s\n", in->location);
  printf("schema version:  %d (this berth knows up to %d)", in->schema_version, in->schema_version_known);
  if (in->schema_version_at_open > 0 && in->schema_version_at_open < in->schema_version)
    printf(", migrated from %d as it was opened", in->schema_version_at_open);
  printf("\n");
  printf("stacks:          %lld\n", (long long) in->stacks);
  printf("tasks:           %lld\n", (long long) in->tasks);
  printf("audit records:   %lld\n", (long long) in->audit_records);
  printf("API keys:        %lld\n", (long long) in->api_keys);
  printf("size:            %s\n",
         in->size_bytes >= 0 ? berth_format_size_approx(in->size_bytes, size, sizeof size) : "unknown");
}

static void
render_migrate(const berth_store_info *in)
{
  if (in->schema_version_at_open == 0)
    printf("store %s created at schema version %d\n", in->location, in->schema_version);
  else if (in->schema_version_at_open < in->schema_version)
    printf("store %s migrated from schema version %d to %d\n", in->location, in->schema_version_at_open,
           in->schema_version);
  else
    printf("store %s is at schema version %d (up to date)\n", in->location, in->schema_version);
}

static int
run(const char *sub, bool json)
{
  berth_store *st = NULL;
  int rc = cli_open_store(&st); /* opening migrates: `migrate` reports what the open did */
  if (rc != 0)
    return rc;
  berth_store_info info;
  berth_error *err = NULL;
  if (berth_store_info_get(st, &info, &err) < 0) {
    berth_store_close(st);
    return cli_fail(err);
  }
  bool migrate = strcmp(sub, "migrate") == 0;
  cJSON *j = NULL;
  if (json && migrate) {
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "location", info.location);
    cJSON_AddNumberToObject(j, "from", info.schema_version_at_open);
    cJSON_AddNumberToObject(j, "to", info.schema_version);
  } else if (json) {
    j = info_json(&info);
  }
  if (json && j == NULL)
    rc = cli_fail(berth_error_set(&err, BERTH_EINTERNAL, "out of memory") < 0 ? err : NULL);
  else if (json)
    cli_print_json(j);
  else if (migrate)
    render_migrate(&info);
  else
    render_info(&info);
  cJSON_Delete(j);
  berth_store_close(st); /* the strings in info belong to the store */
  return rc;
}

static int
copy(const char *to, bool json)
{
  berth_store *st = NULL;
  int rc = cli_open_store(&st);
  if (rc != 0)
    return rc;
  berth_store_copy_report report;
  berth_store_info info;
  berth_error *err = NULL;
  if (berth_store_info_get(st, &info, &err) < 0 || berth_store_copy(st, to, &report, &err) < 0) {
    berth_store_close(st);
    return cli_fail(err);
  }
  cJSON *j = json ? cJSON_CreateObject() : NULL;
  if (j) {
    cJSON_AddStringToObject(j, "from", info.location);
    cJSON_AddStringToObject(j, "to", report.target);
    cJSON *t = cJSON_AddObjectToObject(j, "rows");
    for (size_t i = 0; i < report.n; i++)
      cJSON_AddNumberToObject(t, report.tables[i].table, (double) report.tables[i].rows);
    cli_print_json(j);
    cJSON_Delete(j);
  } else {
    printf("copied store %s to %s\n", info.location, report.target);
    for (size_t i = 0; i < report.n; i++)
      printf("  %-18s %lld\n", report.tables[i].table, (long long) report.tables[i].rows);
  }
  berth_store_close(st);
  return 0;
}

int
cmd_store(int argc, char **argv)
{
  bool json = false;
  const char *to = NULL;
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
    else if (opt == OPT_TO)
      to = optarg;
    else if (opt == ':')
      return cli_usage_error("flag `%s` needs a value (see 'berth store --help')", bad);
    else
      return cli_usage_error("unknown flag `%s` for 'berth store' (see 'berth store --help')", bad);
  }
  const char *sub = optind < argc ? argv[optind] : NULL;
  if (sub == NULL)
    return cli_usage_error("'berth store' needs a command: info, migrate or copy (see 'berth store --help')");
  if (strcmp(sub, "info") != 0 && strcmp(sub, "migrate") != 0 && strcmp(sub, "copy") != 0)
    return cli_usage_error("unknown command 'berth store %s' (see 'berth store --help')", sub);
  if (optind + 1 < argc)
    return cli_usage_error("unexpected argument `%s` for 'berth store %s'", argv[optind + 1], sub);
  if ((strcmp(sub, "copy") == 0) != (to != NULL))
    return cli_usage_error(to ? "--to is for 'berth store copy' only" : "'berth store copy' needs --to URL");
  return to ? copy(to, json) : run(sub, json);
}
