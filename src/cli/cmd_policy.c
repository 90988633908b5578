/* `berth policy`: task policies (add FILE, list, remove NAME, test STACK -- COMMAND). Local mode: the OS user, as
 * admin. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "berth/role.h"
#include "berth/audit.h"
#include "berth/buf.h"
#include "berth/cleanup.h"
#include "berth/parse.h"
#include "berth/policy.h"
#include "backend.h"
#include "cli.h"
#include "render.h"

static const char usage_main[]
    = "usage: berth policy COMMAND [ARGS...]\n"
      "\n"
      "commands:\n"
      "  add FILE                 add the rule(s) in a JSON file ('-' = stdin); a rule with an existing name\n"
      "                           replaces it\n"
      "  list [--json]            list the rules\n"
      "  remove NAME              remove a rule\n"
      "  test STACK [--actor A] [--role reader|writer|admin] [--at TIME] [--json] -- COMMAND...\n"
      "                           show the decision for a task and every matching rule (records nothing);\n"
      "                           exit 0 allowed, 1 denied, 125 bad input\n"
      "\n"
      "A rule: {\"name\", \"command\" (PCRE2), \"actors\", \"roles\", \"stacks\" (globs), \"labels\" (globs),\n"
      "         \"when\": {\"weekdays\": [\"sat\", \"sun\"], \"hours\": \"09-17\"} (UTC), \"decision\": "
      "\"deny\"|\"allow\",\n"
      "         \"message\"}. Any matching deny wins. See docs/governance.md.\n";

enum { OPT_JSON = 256, OPT_HELP, OPT_ACTOR, OPT_ROLE, OPT_AT };

static const struct option options[] = {
  { "json", no_argument, NULL, OPT_JSON },         { "help", no_argument, NULL, OPT_HELP },
  { "actor", required_argument, NULL, OPT_ACTOR }, { "role", required_argument, NULL, OPT_ROLE },
  { "at", required_argument, NULL, OPT_AT },       { NULL, 0, NULL, 0 },
};

typedef struct policy_args {
  bool json;
  const char *actor, *role, *at;
  const char *arg;
} policy_args;

/* Parses flags (only those `allowed` lists as letters: j=json a=actor r=role t=at) and exactly `want` positional
 * args. Returns -1 when help was printed, else 0 or an exit code. */
static int
parse_args(int argc, char **argv, const char *cmd, const char *usage, const char *allowed, int want, policy_args *pa)
{
  int opt;
  optind = 0;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) {
    const char *bad = argv[optind > 0 ? optind - 1 : 0];
    if (opt == OPT_HELP) {
      fputs(usage, stdout);
      return -1;
    }
    if (opt == ':')
      return cli_usage_error("flag `%s` needs a value (see 'berth policy %s --help')", bad, cmd);
    if (opt == OPT_JSON && strchr(allowed, 'j'))
      pa->json = true;
    else if (opt == OPT_ACTOR && strchr(allowed, 'a'))
      pa->actor = optarg;
    else if (opt == OPT_ROLE && strchr(allowed, 'r'))
      pa->role = optarg;
    else if (opt == OPT_AT && strchr(allowed, 't'))
      pa->at = optarg;
    else
      return cli_usage_error("unknown flag `%s` for 'berth policy %s' (see 'berth policy %s --help')", bad, cmd, cmd);
  }
  int nargs = argc - optind;
  if (nargs < want)
    return cli_usage_error("'berth policy %s' needs %s (see 'berth policy %s --help')", cmd,
                           strcmp(cmd, "add") == 0    ? "a FILE"
                           : strcmp(cmd, "test") == 0 ? "a STACK"
                                                      : "a NAME",
                           cmd);
  if (nargs > want)
    return cli_usage_error("unexpected argument `%s` for 'berth policy %s'", argv[optind + want], cmd);
  if (want)
    pa->arg = argv[optind];
  return 0;
}

/* Reads a policy file (or stdin for "-") with the policy size cap. */
static char *
read_policy_file(const char *path, berth_error **err)
{
  cleanup_close int fd = strcmp(path, "-") == 0 ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    berth_error_set_errno(err, BERTH_EINVAL, errno, "policy file %s cannot be read", path);
    return NULL;
  }
  berth_buf b;
  berth_buf_init(&b, BERTH_POLICY_MAX_TEXT);
  char chunk[8192];
  for (;;) {
    ssize_t r = read(fd, chunk, sizeof chunk);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      berth_error_set_errno(err, BERTH_EINVAL, errno, "policy file %s cannot be read", path);
      break;
    }
    if (r == 0) {
      if (berth_buf_append(&b, "", 0) < 0)
        break;
      if (b.data == NULL || strlen(b.data) != b.len) {
        berth_error_set(err, BERTH_EINVAL, "policy file %s is empty or contains a NUL byte", path);
        break;
      }
      return berth_buf_steal(&b);
    }
    int arc = berth_buf_append(&b, chunk, (size_t) r);
    if (arc < 0) {
      if (arc == BERTH_BUF_TOO_BIG)
        berth_error_set(err, BERTH_EINVAL, "policy file %s is larger than 1 MiB", path);
      else
        berth_error_set(err, BERTH_EINTERNAL, "read policy file %s: out of memory", path);
      break;
    }
  }
  berth_buf_free(&b);
  return NULL;
}

/* "added 2 policy rules: a, b" (the names from the policy text: the record is the rules now stored) */
static void
show_added(const cli_request *rq, const cJSON *rec)
{
  size_t added = (size_t) cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(rec, "added"));
  cJSON *root = cJSON_Parse(rq->raw_body);
  printf("added %zu policy rule%s: ", added, added == 1 ? "" : "s");
  const cJSON *it = cJSON_IsArray(root) ? root->child : root;
  for (const char *sep = ""; it != NULL; it = cJSON_IsArray(root) ? it->next : NULL) {
    const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "name"));
    if (n != NULL) {
      printf("%s%s", sep, n);
      sep = ", ";
    }
  }
  putchar('\n');
  cJSON_Delete(root);
}

static int
cmd_add(int argc, char **argv)
{
  policy_args pa = { 0 };
  int rc = parse_args(argc, argv, "add",
                      "usage: berth policy add FILE\n\n"
                      "Adds the rule(s) in FILE ('-' = stdin): one JSON rule object or an array of them.\n"
                      "Every rule is checked before any is stored; a rule with an existing name replaces it.\n",
                      "", 1, &pa);
  if (rc != 0)
    return rc < 0 ? 0 : rc;
  berth_error *err = NULL;
  cleanup_free char *text = read_policy_file(pa.arg, &err);
  size_t n = 0;
  if (text == NULL)
    return cli_fail(err);
  if (berth_policy_validate_json(text, &n, &err) < 0) {
    berth_error_wrap(&err, "policy file %s", pa.arg);
    return cli_fail(err);
  }
  static const cli_view view = { show_added, NULL, NULL };
  cli_request rq = { .arg = pa.arg, .raw_body = text };
  return cli_run(CLI_OP_POLICY_ADD, &rq, &view);
}

static void
show_removed(const cli_request *rq, const cJSON *rec)
{
  (void) rec;
  printf("removed policy rule %s\n", rq->arg);
}

static int
cmd_remove(int argc, char **argv)
{
  policy_args pa = { 0 };
  int rc = parse_args(argc, argv, "remove", "usage: berth policy remove NAME\n\nRemoves the policy rule NAME.\n", "", 1,
                      &pa);
  if (rc != 0)
    return rc < 0 ? 0 : rc;
  static const cli_view view = { show_removed, NULL, NULL };
  cli_request rq = { .arg = pa.arg };
  return cli_run(CLI_OP_POLICY_REMOVE, &rq, &view);
}

/* "command=..., stacks=[...]": the conditions of a rule, for the table. */
static char *
conditions(const cJSON *rule)
{
  cJSON *c = cJSON_Duplicate(rule, true);
  cJSON_DeleteItemFromObjectCaseSensitive(c, "name");
  cJSON_DeleteItemFromObjectCaseSensitive(c, "decision");
  cJSON_DeleteItemFromObjectCaseSensitive(c, "message");
  char *s = c && c->child ? cJSON_PrintUnformatted(c) : strdup("(always)");
  cJSON_Delete(c);
  return s;
}

static void
show_policies(const cli_request *rq, const cJSON *list)
{
  (void) rq;
  const cJSON *pols = cJSON_GetObjectItemCaseSensitive(list, "policies"), *p;
  if (cJSON_GetArraySize(pols) == 0) {
    printf("no policy rules: every task is allowed\n");
    return;
  }
  printf("%-24s %-8s %s\n", "NAME", "DECISION", "CONDITIONS / MESSAGE");
  cJSON_ArrayForEach(p, pols)
  {
    const cJSON *rule = cJSON_GetObjectItemCaseSensitive(p, "rule");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(rule, "message");
    cleanup_free char *cond = conditions(rule);
    printf("%-24s %-8s %s\n", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "name")),
           cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rule, "decision")), cond ? cond : "?");
    if (cJSON_IsString(msg))
      printf("%-24s %-8s message: %s\n", "", "", msg->valuestring);
  }
}

static int
cmd_list(int argc, char **argv)
{
  policy_args pa = { 0 };
  int rc
      = parse_args(argc, argv, "list", "usage: berth policy list [--json]\n\nLists the policy rules.\n", "j", 0, &pa);
  if (rc != 0)
    return rc < 0 ? 0 : rc;
  static const cli_view view = { show_policies, NULL, NULL };
  cli_request rq = { .json = pa.json };
  return cli_run(CLI_OP_POLICY_LIST, &rq, &view);
}

/* `berth policy test`'s command line. */
typedef struct policy_test_req {
  const char *stack, *actor, *role; /* actor, role: NULL when not given */
  bool json, at_given;
  int64_t at_ms; /* --at, or now */
  berth_buf command;
} policy_test_req;

static const char test_usage[]
    = "usage: berth policy test STACK [--actor A] [--role reader|writer|admin] [--at TIME] [--json] -- COMMAND...\n"
      "\n"
      "Evaluates the stored policies for a task on STACK (its labels come from the store) and prints the decision\n"
      "and every matching rule. Records nothing. --actor defaults to the current user, --role to admin (the local\n"
      "owner), --at to now (YYYY-MM-DD[THH:MM[:SS]Z], UTC, or a duration ago).\n"
      "Exit status: 0 allowed, 1 denied, 125 bad input.\n";

/* 0 with *out filled, -1 when --help was printed, or the exit code after the one-line error. Clear *out in every
 * case. */
static int
policy_test_parse(int argc, char **argv, policy_test_req *out)
{
  int dash = 0;
  for (int i = 1; i < argc && dash == 0; i++)
    if (strcmp(argv[i], "--") == 0)
      dash = i;
  policy_args pa = { 0 };
  memset(out, 0, sizeof *out);
  berth_buf_init(&out->command, 1024 * 1024);
  int rc = parse_args(dash ? dash : argc, argv, "test", test_usage, "jart", 1, &pa);
  if (rc != 0)
    return rc;
  if (dash == 0 || dash + 1 >= argc)
    return cli_usage_error("'berth policy test' needs -- COMMAND... (see 'berth policy test --help')");
  if (pa.role && berth_role_parse(pa.role) == BERTH_ROLE_NONE)
    return cli_usage_error("--role must be one of " BERTH_ROLE_NAMES);
  berth_error *err = NULL;
  out->at_ms = berth_now_ms();
  if (pa.at && berth_audit_parse_time(pa.at, out->at_ms, &out->at_ms, &err) < 0) {
    berth_error_wrap(&err, "--at");
    return cli_fail(err);
  }
  for (int i = dash + 1; i < argc; i++)
    if (berth_buf_printf(&out->command, "%s%s", i > dash + 1 ? " " : "", argv[i]) < 0)
      return cli_usage_error("the command is longer than 1 MiB");
  out->stack = pa.arg;
  out->actor = pa.actor;
  out->role = pa.role;
  out->at_given = pa.at != NULL;
  out->json = pa.json;
  return 0;
}

static void
policy_test_req_clear(policy_test_req *r)
{
  berth_buf_free(&r->command);
}

static void
show_result(const cli_request *rq, const cJSON *rec)
{
  (void) rq;
  cli_render_policy_result(rec);
}

static int
result_status(const cJSON *rec)
{
  const char *d = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "decision"));
  return d && strcmp(d, "allow") == 0 ? 0 : 1;
}

/* POST /v1/policies/test's body; records nothing. Exit 0 allowed, 1 denied. */
static int
cmd_test(int argc, char **argv)
{
  static const cli_view view = { show_result, NULL, result_status };
  policy_test_req t;
  int rc = policy_test_parse(argc, argv, &t);
  if (rc != 0) {
    policy_test_req_clear(&t);
    return rc < 0 ? 0 : rc;
  }
  char at[64];
  cli_request rq = { .json = t.json, .body = cJSON_CreateObject() };
  cJSON_AddStringToObject(rq.body, "stack", t.stack);
  cJSON_AddStringToObject(rq.body, "command", t.command.data ? t.command.data : "");
  if (t.actor)
    cJSON_AddStringToObject(rq.body, "actor", t.actor);
  if (t.role)
    cJSON_AddStringToObject(rq.body, "role", t.role);
  if (t.at_given)
    cJSON_AddStringToObject(rq.body, "at", berth_format_time(t.at_ms, at, sizeof at));
  policy_test_req_clear(&t);
  return cli_run(CLI_OP_POLICY_TEST, &rq, &view);
}

int
cmd_policy(int argc, char **argv)
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
  if (strcmp(sub, "add") == 0)
    return cmd_add(argc - 1, argv + 1);
  if (strcmp(sub, "list") == 0)
    return cmd_list(argc - 1, argv + 1);
  if (strcmp(sub, "remove") == 0)
    return cmd_remove(argc - 1, argv + 1);
  if (strcmp(sub, "test") == 0)
    return cmd_test(argc - 1, argv + 1);
  return cli_usage_error("unknown command 'berth policy %s' (see 'berth policy --help')", sub);
}
