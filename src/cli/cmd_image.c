/* `berth image`: the image allowlist (allow, deny, remove, list, check). Local mode: the OS user, as admin. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/allowlist.h"
#include "berth/cleanup.h"
#include "berth/parse.h"
#include "backend.h"
#include "cli.h"

static const char usage_main[]
    = "usage: berth image COMMAND [ARGS...]\n"
      "\n"
      "commands:\n"
      "  allow PATTERN          allow images matching PATTERN\n"
      "  deny PATTERN           deny images matching PATTERN (a deny always beats an allow)\n"
      "  remove PATTERN         remove the rule with this pattern\n"
      "  list [--json]          list the rules\n"
      "  check REF [--json]     show whether REF may run and which pattern decided;\n"
      "                         exit 0 allowed, 1 denied, 125 bad input\n"
      "\n"
      "Patterns match the normalized reference (`ubuntu` = docker.io/library/ubuntu:latest):\n"
      "  *, ?, [...] within one path segment; ** across segments; NAME[:TAG][@DIGEST].\n"
      "  A missing tag means :latest (write `ubuntu:*` for every tag); `registry.example.com/**` means everything\n"
      "  under that registry, every tag and digest. With no rules only berth/runner:latest is allowed.\n"
      "  See docs/governance.md.\n";

enum { OPT_JSON = 256, OPT_HELP };

static const struct option options[] = {
  { "json", no_argument, NULL, OPT_JSON },
  { "help", no_argument, NULL, OPT_HELP },
  { NULL, 0, NULL, 0 },
};

/* Parses [--json] [--help] and exactly `want` positional args. Returns -1 when done (help printed), else 0 or an
 * exit code > 0. */
static int
parse_args(int argc, char **argv, const char *cmd, const char *usage, int want, bool *json, const char **arg)
{
  int opt;
  optind = 0;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) { /* flags before or after the argument */
    if (opt == OPT_HELP) {
      fputs(usage, stdout);
      return -1;
    }
    if (opt == OPT_JSON && json != NULL) {
      *json = true;
      continue;
    }
    char full[32];
    snprintf(full, sizeof full, "image %s", cmd);
    return cli_flag_error(opt, full, argv);
  }
  int nargs = argc - optind;
  if (nargs < want)
    return cli_usage_error("'berth image %s' needs %s (see 'berth image %s --help')", cmd,
                           strcmp(cmd, "check") == 0 ? "an image REF" : "a PATTERN", cmd);
  if (nargs > want)
    return cli_usage_error("unexpected argument `%s` for 'berth image %s'", argv[optind + want], cmd);
  if (want)
    *arg = argv[optind];
  return 0;
}

static const char *
str(const cJSON *o, const char *key)
{
  return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* The decision about the default runner image, through the same back end (NULL when it cannot be asked). */
static cJSON *
default_decision(void)
{
  cli_request rq = { .arg = BERTH_ALLOWLIST_DEFAULT_IMAGE };
  cJSON *j = NULL;
  berth_error *err = NULL;
  cli_backend *b = NULL;
  if (cli_backend_open(&b, &err) < 0 || b->ops->call(b, CLI_OP_IMAGE_CHECK, &rq, &j, &err) < 0)
    berth_error_free(err);
  cli_backend_free(b);
  return j;
}

/* norm: the pattern as the command normalized it (a removal's record is the rules left) */
static void
show_change(const cli_request *rq, const cJSON *rec, const char *norm)
{
  const char *kind = str(rq->body, "kind"), *pattern = rq->arg;
  if (kind == NULL)
    printf("removed image rule %s\n", norm);
  else if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "added")))
    printf("image rule %s (%s) already exists\n", norm, kind);
  else
    printf("%s %s\n", strcmp(kind, "allow") == 0 ? "allowed" : "denied", norm);
  size_t nn = strlen(norm);
  if (kind && nn > 7 && strcmp(norm + nn - 7, ":latest") == 0 && strstr(pattern, ":latest") == NULL)
    fprintf(stderr, "berth: note: `%s` covers only the latest tag; write `%s:*` for every tag\n", pattern, pattern);
}

/* A note when a change made the default runner image not allowed any more. */
static void
note_default_image(bool was_allowed)
{
  cJSON *after = was_allowed ? default_decision() : NULL;
  if (after && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(after, "allowed")))
    fprintf(stderr,
            "berth: note: the default runner image %s is not allowed by the current rules (%s); stacks that use it "
            "cannot run\n",
            str(after, "normalized"),
            cJSON_IsString(cJSON_GetObjectItemCaseSensitive(after, "pattern")) ? "a deny pattern matches it"
                                                                               : "no allow pattern matches it");
  cJSON_Delete(after);
}

static int
cmd_change(int argc, char **argv, const char *kind)
{
  const char *cmd = kind ? kind : "remove";
  char usage[256];
  snprintf(usage, sizeof usage, "usage: berth image %s PATTERN\n\n%s\n", cmd,
           kind ? "Adds an allowlist rule; the pattern is normalized first (see 'berth image --help')."
                : "Removes the allowlist rule with this pattern (normalized first).");
  const char *pattern = NULL;
  int rc = parse_args(argc, argv, cmd, usage, 1, NULL, &pattern);
  if (rc != 0)
    return rc < 0 ? 0 : rc;
  berth_error *err = NULL;
  cleanup_free char *norm = berth_allowlist_normalize_pattern(pattern, &err);
  if (norm == NULL)
    return cli_fail(err);
  cli_request rq = { .arg = pattern };
  if (kind) {
    rq.body = cJSON_CreateObject();
    cJSON_AddStringToObject(rq.body, "pattern", pattern);
    cJSON_AddStringToObject(rq.body, "kind", kind);
  }
  cJSON *before = default_decision();
  bool was_allowed = before && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(before, "allowed"));
  cJSON_Delete(before);
  cJSON *rec = NULL;
  rc = cli_call(kind ? CLI_OP_IMAGE_ADD : CLI_OP_IMAGE_REMOVE, &rq, &rec);
  if (rc == 0) {
    show_change(&rq, rec, norm);
    note_default_image(was_allowed);
  }
  cJSON_Delete(rec);
  cli_request_clear(&rq);
  return rc;
}

static void
show_rules(const cli_request *rq, const cJSON *rec)
{
  (void) rq;
  const cJSON *rules = cJSON_GetObjectItemCaseSensitive(rec, "rules"), *r;
  if (cJSON_GetArraySize(rules) == 0) {
    printf("no image rules: only the default runner image docker.io/%s is allowed\n", BERTH_ALLOWLIST_DEFAULT_IMAGE);
    return;
  }
  printf("%-6s %-50s %-16s %s\n", "KIND", "PATTERN", "BY", "ADDED");
  cJSON_ArrayForEach(r, rules)
  {
    printf("%-6s %-50s %-16s %s\n", str(r, "kind"), str(r, "pattern"), str(r, "actor"), str(r, "created_at"));
  }
}

static int
cmd_list(int argc, char **argv)
{
  static const cli_view view = { show_rules, NULL, NULL };
  cli_request rq = { 0 };
  int rc
      = parse_args(argc, argv, "list", "usage: berth image list [--json]\n\nLists the allowlist rules, oldest first.\n",
                   0, &rq.json, NULL);
  if (rc != 0)
    return rc < 0 ? 0 : rc;
  return cli_run(CLI_OP_IMAGE_LIST, &rq, &view);
}

static void
show_decision(const cli_request *rq, const cJSON *rec)
{
  (void) rq;
  printf("%s: %s\n", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "allowed")) ? "allowed" : "denied",
         str(rec, "reason"));
}

static int
decision_status(const cJSON *rec)
{
  return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "allowed")) ? 0 : 1;
}

static int
cmd_check(int argc, char **argv)
{
  /* --json: the decision's record as the API answers it ({"ref", "allowed", "normalized", "pattern", ...}) */
  static const cli_view view = { show_decision, NULL, decision_status };
  cli_request rq = { 0 };
  int rc = parse_args(argc, argv, "check",
                      "usage: berth image check REF [--json]\n\n"
                      "Shows whether REF may run and the pattern that decided.\n"
                      "Exit status: 0 allowed, 1 denied, 125 bad input.\n",
                      1, &rq.json, &rq.arg);
  if (rc != 0)
    return rc < 0 ? 0 : rc;
  return cli_run(CLI_OP_IMAGE_CHECK, &rq, &view);
}

int
cmd_image(int argc, char **argv)
{
  if (argc < 2) {
    fputs(usage_main, stderr);
    return 125;
  }
  const char *sub = argv[1];
  if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
    fputs(usage_main, stdout);
    return 0;
  }
  if (strcmp(sub, "allow") == 0 || strcmp(sub, "deny") == 0)
    return cmd_change(argc - 1, argv + 1, strcmp(sub, "allow") == 0 ? "allow" : "deny");
  if (strcmp(sub, "remove") == 0)
    return cmd_change(argc - 1, argv + 1, NULL);
  if (strcmp(sub, "list") == 0)
    return cmd_list(argc - 1, argv + 1);
  if (strcmp(sub, "check") == 0)
    return cmd_check(argc - 1, argv + 1);
  return cli_usage_error("unknown command 'berth image %s' (see 'berth image --help')", sub);
}
