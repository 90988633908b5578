/* berth key create | list | revoke: API keys for server mode, managed directly on the local store. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/store.h"
#include "backend.h"
#include "cli.h"

static const char key_usage[]
    = "usage: berth key create NAME --role admin|writer|reader [--stack S]...\n"
      "       berth key list [--all] [--json]\n"
      "       berth key revoke NAME\n\n"
      "API keys authenticate callers of `berth serve` (Authorization: Bearer KEY). `create` prints the key ONCE on\n"
      "stdout; only a salted argon2id hash is stored. --stack limits a reader or writer key to the named stacks.\n"
      "Without a server they work on the local store (BERTH_HOME), so the first admin key needs none; with\n"
      "a server (BERTH_SERVER), through it (an admin key).\n";

/* The key is printed once, on stdout; the rest is a note on stderr. */
static void
show_created(const cli_request *rq, const cJSON *rec)
{
  (void) rq;
  fprintf(stderr, "berth: API key `%s` (%s) created; it is shown once, store it now:\n",
          cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "name")),
          cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "role")));
  printf("%s\n", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "key")));
}

static int
key_create(int argc, char **argv)
{
  static const struct option opts[] = { { "role", required_argument, NULL, 'r' },
                                        { "stack", required_argument, NULL, 's' },
                                        { "help", no_argument, NULL, 'h' },
                                        { 0 } };
  const char *role = NULL;
  berth_strv stacks = { 0 };
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    if (c == 'r')
      role = optarg;
    else if (c == 's')
      berth_strv_push(&stacks, optarg);
    else if (c == 'h') {
      fputs(key_usage, stdout);
      berth_strv_clear(&stacks);
      return 0;
    } else {
      berth_strv_clear(&stacks);
      return cli_flag_error(c, "key create", argv);
    }
  }
  if (optind >= argc || optind + 1 < argc || role == NULL) {
    berth_strv_clear(&stacks);
    return cli_usage_error("key create: usage: berth key create NAME --role admin|writer|reader [--stack S]...");
  }
  cli_request rq = { .body = cJSON_CreateObject() };
  cJSON_AddStringToObject(rq.body, "name", argv[optind]);
  cJSON_AddStringToObject(rq.body, "role", role);
  cJSON *arr = cJSON_AddArrayToObject(rq.body, "stacks");
  for (size_t i = 0; i < stacks.n; i++)
    cJSON_AddItemToArray(arr, cJSON_CreateString(stacks.v[i]));
  berth_strv_clear(&stacks);
  static const cli_view view = { show_created, NULL, NULL };
  return cli_run(CLI_OP_KEY_CREATE, &rq, &view);
}

static void
key_render_list(const cli_request *rq, const cJSON *j)
{
  (void) rq;
  const cJSON *keys = cJSON_GetObjectItemCaseSensitive(j, "keys");
  printf("%-20s  %-12s  %-6s  %-24s  %-24s  %s\n", "NAME", "ID", "ROLE", "CREATED", "LAST USED", "STACKS");
  const cJSON *k;
  cJSON_ArrayForEach(k, keys)
  {
    const cJSON *lu = cJSON_GetObjectItemCaseSensitive(k, "last_used_at");
    const cJSON *rv = cJSON_GetObjectItemCaseSensitive(k, "revoked_at");
    const cJSON *stx = cJSON_GetObjectItemCaseSensitive(k, "stacks");
    char stacks[512] = "*";
    size_t off = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, stx)
    {
      int w = snprintf(stacks + off, sizeof stacks - off, "%s%s", off ? "," : "", s->valuestring);
      if (w < 0 || (size_t) w >= sizeof stacks - off)
        break;
      off += (size_t) w;
    }
    printf("%-20s  %-12s  %-6s  %-24s  %-24s  %s%s\n",
           cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(k, "name")),
           cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(k, "id")),
           cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(k, "role")),
           cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(k, "created_at")),
           cJSON_IsString(lu) ? lu->valuestring : "never", stacks, cJSON_IsString(rv) ? " (revoked)" : "");
  }
}

static int
key_list(int argc, char **argv)
{
  bool json = false, all = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0)
      json = true;
    else if (strcmp(argv[i], "--all") == 0)
      all = true;
    else if (strcmp(argv[i], "--help") == 0) {
      fputs(key_usage, stdout);
      return 0;
    } else
      return cli_usage_error("key list: unexpected argument `%s`", argv[i]);
  }
  static const cli_view view = { key_render_list, NULL, NULL };
  cli_request rq = { .json = json, .all = all };
  return cli_run(CLI_OP_KEY_LIST, &rq, &view);
}

static void
show_revoked(const cli_request *rq, const cJSON *rec)
{
  (void) rec;
  fprintf(stderr, "berth: API key `%s` revoked\n", rq->arg);
}

static int
key_revoke(int argc, char **argv)
{
  if (argc == 2 && strcmp(argv[1], "--help") == 0) {
    fputs(key_usage, stdout);
    return 0;
  }
  if (argc != 2 || argv[1][0] == '-')
    return cli_usage_error("key revoke: usage: berth key revoke NAME");
  static const cli_view view = { show_revoked, NULL, NULL };
  cli_request rq = { .arg = argv[1] };
  return cli_run(CLI_OP_KEY_REVOKE, &rq, &view);
}

int
cmd_key(int argc, char **argv)
{
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fputs(key_usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 125 : 0;
  }
  if (strcmp(argv[1], "create") == 0)
    return key_create(argc - 1, argv + 1);
  if (strcmp(argv[1], "list") == 0)
    return key_list(argc - 1, argv + 1);
  if (strcmp(argv[1], "revoke") == 0)
    return key_revoke(argc - 1, argv + 1);
  return cli_usage_error("key: unknown subcommand `%s` (see 'berth key --help')", argv[1]);
}
