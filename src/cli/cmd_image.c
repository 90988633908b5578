/* `berth image`: the image allowlist (allow, deny, remove, list, check). Local mode: the OS user, as admin. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/allowlist.h"
#include "berth/audit.h"
#include "berth/cleanup.h"
#include "berth/parse.h"
#include "berth/store.h"
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
  while ((opt = getopt_long(argc, argv, "+:", options, NULL)) != -1) {
    if (opt == OPT_HELP) {
      fputs(usage, stdout);
      return -1;
    }
    if (opt == OPT_JSON && json != NULL) {
      *json = true;
      continue;
    }
    return cli_usage_error("unknown flag `%s` for 'berth image %s' (see 'berth image %s --help')",
                           argv[optind > 0 ? optind - 1 : 0], cmd, cmd);
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

static bool
default_image_allowed(berth_store *st)
{
  berth_image_decision d;
  berth_error *err = NULL;
  if (berth_allowlist_check(st, BERTH_ALLOWLIST_DEFAULT_IMAGE, &d, &err) < 0) {
    berth_error_free(err);
    return false;
  }
  bool ok = d.allowed;
  berth_image_decision_clear(&d);
  return ok;
}

/* Prints a note when a change made the default runner image not allowed any more. */
static void
note_default_image(berth_store *st, bool was_allowed)
{
  berth_image_decision d;
  berth_error *err = NULL;
  if (!was_allowed || berth_allowlist_check(st, BERTH_ALLOWLIST_DEFAULT_IMAGE, &d, &err) < 0) {
    berth_error_free(err);
    return;
  }
  if (!d.allowed)
    fprintf(stderr,
            "berth: note: the default runner image %s is not allowed by the current rules (%s); stacks that use it "
            "cannot run\n",
            d.normalized, d.pattern ? "a deny pattern matches it" : "no allow pattern matches it");
  berth_image_decision_clear(&d);
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
  cleanup_free char *actor = cli_current_user();
  berth_store *st = NULL;
  if (actor == NULL)
    return cli_usage_error("cannot tell the current user");
  if ((rc = cli_open_store(&st)) != 0)
    return rc;
  char action[32];
  snprintf(action, sizeof action, "image.%s", cmd);
  cJSON *args = cJSON_CreateObject();
  cJSON_AddStringToObject(args, "pattern", pattern);
  int added = 0;
  bool default_was_allowed = default_image_allowed(st);
  if (berth_store_begin(st, &err) < 0
      || (added
          = kind ? berth_allowlist_add(st, kind, pattern, actor, &err) : berth_allowlist_remove(st, pattern, &err))
             < 0) {
    berth_store_rollback(st);
    cli_audit_failure(st, actor, action, norm, args, err);
    rc = cli_fail(err);
    goto out;
  }
  if (berth_audit_append(st, actor, action, norm, args, added == 1 ? "ok (unchanged)" : "ok", &err) < 0
      || berth_store_commit(st, &err) < 0) {
    berth_store_rollback(st);
    rc = cli_fail(err);
    goto out;
  }
  if (kind == NULL)
    printf("removed image rule %s\n", norm);
  else if (added == 1)
    printf("image rule %s (%s) already exists\n", norm, kind);
  else
    printf("%s %s\n", strcmp(kind, "allow") == 0 ? "allowed" : "denied", norm);
  size_t nn = strlen(norm);
  if (kind && nn > 7 && strcmp(norm + nn - 7, ":latest") == 0 && strstr(pattern, ":latest") == NULL)
    fprintf(stderr, "berth: note: `%s` covers only the latest tag; write `%s:*` for every tag\n", pattern, pattern);
  note_default_image(st, default_was_allowed);
out:
  cJSON_Delete(args);
  berth_store_close(st);
  return rc;
}

static int
cmd_list(int argc, char **argv)
{
  bool json = false;
  int rc = parse_args(argc, argv, "list",
                      "usage: berth image list [--json]\n\nLists the allowlist rules, oldest first.\n", 0, &json, NULL);
  if (rc != 0)
    return rc < 0 ? 0 : rc;
  berth_store *st = NULL;
  if ((rc = cli_open_store(&st)) != 0)
    return rc;
  berth_error *err = NULL;
  cJSON *list = berth_allowlist_list_json(st, &err);
  berth_store_close(st);
  if (list == NULL)
    return cli_fail(err);
  const cJSON *rules = cJSON_GetObjectItemCaseSensitive(list, "rules");
  if (json) {
    cli_print_json(list);
  } else if (cJSON_GetArraySize(rules) == 0) {
    printf("no image rules: only the default runner image docker.io/%s is allowed\n", BERTH_ALLOWLIST_DEFAULT_IMAGE);
  } else {
    printf("%-6s %-50s %-16s %s\n", "KIND", "PATTERN", "BY", "ADDED");
    const cJSON *r;
    cJSON_ArrayForEach(r, rules)
    {
      printf("%-6s %-50s %-16s %s\n", cJSON_GetObjectItemCaseSensitive(r, "kind")->valuestring,
             cJSON_GetObjectItemCaseSensitive(r, "pattern")->valuestring,
             cJSON_GetObjectItemCaseSensitive(r, "actor")->valuestring,
             cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "created_at")));
    }
  }
  cJSON_Delete(list);
  return 0;
}

static int
cmd_check(int argc, char **argv)
{
  bool json = false;
  const char *ref = NULL;
  int rc = parse_args(argc, argv, "check",
                      "usage: berth image check REF [--json]\n\n"
                      "Shows whether REF may run and the pattern that decided.\n"
                      "Exit status: 0 allowed, 1 denied, 125 bad input.\n",
                      1, &json, &ref);
  if (rc != 0)
    return rc < 0 ? 0 : rc;
  berth_store *st = NULL;
  if ((rc = cli_open_store(&st)) != 0)
    return rc;
  berth_error *err = NULL;
  berth_image_decision d;
  rc = berth_allowlist_check(st, ref, &d, &err);
  berth_store_close(st);
  if (rc < 0)
    return cli_fail(err);
  if (json) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "image", d.normalized);
    cJSON_AddBoolToObject(j, "allowed", d.allowed);
    cJSON_AddStringToObject(j, "kind", d.kind);
    if (d.pattern)
      cJSON_AddStringToObject(j, "pattern", d.pattern);
    else
      cJSON_AddNullToObject(j, "pattern");
    cJSON_AddStringToObject(j, "reason", d.reason);
    cli_print_json(j);
    cJSON_Delete(j);
  } else {
    printf("%s: %s\n", d.allowed ? "allowed" : "denied", d.reason);
  }
  rc = d.allowed ? 0 : 1;
  berth_image_decision_clear(&d);
  return rc;
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
