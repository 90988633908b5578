/* `berth image ...` and `berth policy list|add|remove` against a server: the same lines as local mode
 * (src/cli/cmd_image.c, cmd_policy.c), rendered from the API's JSON. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "berth/allowlist.h"
#include "berth/buf.h"
#include "berth/parse.h"
#include "berth/policy.h"
#include "cli.h"
#include "client.h"
#include "render.h"

static const char *
str(const cJSON *o, const char *key)
{
  return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* Positional arguments after the subcommand, skipping --json; NULL + usage error when the count is wrong. */
static int
positional(int argc, char **argv, const char *what, int want, bool *json, const char **arg)
{
  int n = 0;
  for (int i = 1; i < argc; i++) {
    if (n > 0) { /* as getopt("+") does: options end at the first argument */
      if (n++ >= want)
        return cli_usage_error("unexpected argument `%s` for 'berth %s'", argv[i], what);
      continue;
    }
    if (strcmp(argv[i], "--json") == 0 && json) {
      *json = true;
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      return cli_usage_error("unknown flag `%s` for 'berth %s' (see 'berth %s --help')", argv[i], what, what);
    } else if (n++ < want) {
      *arg = argv[i];
    } else {
      return cli_usage_error("unexpected argument `%s` for 'berth %s'", argv[i], what);
    }
  }
  if (n < want)
    return cli_usage_error("'berth %s' needs %s (see 'berth %s --help')", what,
                           strstr(what, "check")            ? "an image REF"
                           : strncmp(what, "image", 5) == 0 ? "a PATTERN"
                                                            : "an argument",
                           what);
  return 0;
}

static void
render_rules(const cJSON *list)
{
  const cJSON *rules = cJSON_GetObjectItemCaseSensitive(list, "rules"), *r;
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

/* The decision about the default runner image (NULL when it cannot be asked). */
static cJSON *
default_decision(client_conn *c)
{
  berth_error *err = NULL;
  cJSON *j = NULL;
  char *ref = client_escape(BERTH_ALLOWLIST_DEFAULT_IMAGE), *path = NULL;
  if (ref && asprintf(&path, "/v1/images/check?ref=%s", ref) >= 0 && client_request(c, "GET", path, NULL, &j, &err) < 0)
    berth_error_clear(&err);
  free(ref);
  free(path);
  return j;
}

static int
image_change(client_conn *c, const char *kind, const char *pattern)
{
  berth_error *err = NULL;
  char *norm = berth_allowlist_normalize_pattern(pattern, &err);
  if (norm == NULL)
    return cli_fail(err);
  cJSON *before = default_decision(c), *j = NULL;
  bool was_allowed = before && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(before, "allowed"));
  cJSON_Delete(before);
  int rc = 0;
  if (kind) {
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "pattern", pattern);
    cJSON_AddStringToObject(body, "kind", kind);
    rc = client_request(c, "POST", "/v1/images/rules", body, &j, &err);
    cJSON_Delete(body);
  } else {
    char *ep = client_escape(pattern), *path = NULL;
    if (ep && asprintf(&path, "/v1/images/rules?pattern=%s", ep) < 0)
      path = NULL;
    rc = path ? client_request(c, "DELETE", path, NULL, &j, &err)
              : berth_error_set(&err, BERTH_EINTERNAL, "out of memory");
    free(ep);
    free(path);
  }
  if (rc < 0) {
    free(norm);
    return cli_fail(err);
  }
  if (kind == NULL)
    printf("removed image rule %s\n", norm);
  else if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "added")))
    printf("image rule %s (%s) already exists\n", norm, kind);
  else
    printf("%s %s\n", strcmp(kind, "allow") == 0 ? "allowed" : "denied", norm);
  size_t nn = strlen(norm);
  if (kind && nn > 7 && strcmp(norm + nn - 7, ":latest") == 0 && strstr(pattern, ":latest") == NULL)
    fprintf(stderr, "berth: note: `%s` covers only the latest tag; write `%s:*` for every tag\n", pattern, pattern);
  cJSON *after = was_allowed ? default_decision(c) : NULL;
  if (after && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(after, "allowed")))
    fprintf(stderr,
            "berth: note: the default runner image %s is not allowed by the current rules (%s); stacks that use it "
            "cannot run\n",
            str(after, "normalized"),
            cJSON_IsString(cJSON_GetObjectItemCaseSensitive(after, "pattern")) ? "a deny pattern matches it"
                                                                               : "no allow pattern matches it");
  cJSON_Delete(after);
  cJSON_Delete(j);
  free(norm);
  return 0;
}

static int
image_check(client_conn *c, const char *ref, bool json)
{
  berth_error *err = NULL;
  cJSON *j = NULL;
  char *er = client_escape(ref), *path = NULL;
  if (er == NULL || asprintf(&path, "/v1/images/check?ref=%s", er) < 0)
    path = NULL;
  int rc
      = path ? client_request(c, "GET", path, NULL, &j, &err) : berth_error_set(&err, BERTH_EINTERNAL, "out of memory");
  free(er);
  free(path);
  if (rc < 0)
    return cli_fail(err);
  bool allowed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "allowed"));
  if (json) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "image", str(j, "normalized"));
    cJSON_AddBoolToObject(o, "allowed", allowed);
    cJSON_AddStringToObject(o, "kind", str(j, "kind"));
    if (str(j, "pattern"))
      cJSON_AddStringToObject(o, "pattern", str(j, "pattern"));
    else
      cJSON_AddNullToObject(o, "pattern");
    cJSON_AddStringToObject(o, "reason", str(j, "reason"));
    cli_print_json(o);
    cJSON_Delete(o);
  } else {
    printf("%s: %s\n", allowed ? "allowed" : "denied", str(j, "reason"));
  }
  cJSON_Delete(j);
  return allowed ? 0 : 1;
}

int
client_image(client_conn *c, int argc, char **argv)
{
  if (argc < 2)
    return cli_usage_error("image: which subcommand? (see 'berth image --help')");
  const char *sub = argv[1], *arg = NULL;
  bool json = false;
  int rc;
  if (strcmp(sub, "list") == 0) {
    if ((rc = positional(argc - 1, argv + 1, "image list", 0, &json, &arg)) != 0)
      return rc;
    berth_error *err = NULL;
    cJSON *j = NULL;
    if (client_request(c, "GET", "/v1/images/rules", NULL, &j, &err) < 0)
      return cli_fail(err);
    if (json)
      cli_print_json(j);
    else
      render_rules(j);
    cJSON_Delete(j);
    return 0;
  }
  if (strcmp(sub, "check") == 0) {
    if ((rc = positional(argc - 1, argv + 1, "image check", 1, &json, &arg)) != 0)
      return rc;
    return image_check(c, arg, json);
  }
  const char *kind = strcmp(sub, "allow") == 0 ? "allow" : strcmp(sub, "deny") == 0 ? "deny" : NULL;
  if (kind == NULL && strcmp(sub, "remove") != 0)
    return cli_usage_error("image: unknown subcommand `%s` (see 'berth image --help')", sub);
  if ((rc = positional(argc - 1, argv + 1, kind ? (kind[0] == 'a' ? "image allow" : "image deny") : "image remove", 1,
                       NULL, &arg))
      != 0)
    return rc;
  return image_change(c, kind, arg);
}

/* ---- policies ---- */

static char *
read_text(const char *path, berth_error **err)
{
  int fd = strcmp(path, "-") == 0 ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    berth_error_set_errno(err, BERTH_EINVAL, errno, "policy file %s cannot be read", path);
    return NULL;
  }
  berth_buf b;
  berth_buf_init(&b, BERTH_POLICY_MAX_TEXT);
  char chunk[8192];
  ssize_t r;
  int rc = 0;
  while (rc == 0 && ((r = read(fd, chunk, sizeof chunk)) > 0 || (r < 0 && errno == EINTR)))
    if (r > 0 && berth_buf_append(&b, chunk, (size_t) r) < 0)
      rc = berth_error_set(err, BERTH_EINVAL, "policy file %s is larger than 1 MiB", path);
  close(fd);
  if (rc == 0 && (berth_buf_append(&b, "", 0) < 0 || b.data == NULL || strlen(b.data) != b.len))
    rc = berth_error_set(err, BERTH_EINVAL, "policy file %s is empty or contains a NUL byte", path);
  if (rc < 0) {
    berth_buf_free(&b);
    return NULL;
  }
  return berth_buf_steal(&b);
}

static void
render_policies(const cJSON *list)
{
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
    cJSON *cnd = cJSON_Duplicate(rule, true);
    cJSON_DeleteItemFromObjectCaseSensitive(cnd, "name");
    cJSON_DeleteItemFromObjectCaseSensitive(cnd, "decision");
    cJSON_DeleteItemFromObjectCaseSensitive(cnd, "message");
    char *cond = cnd && cnd->child ? cJSON_PrintUnformatted(cnd) : strdup("(always)");
    printf("%-24s %-8s %s\n", str(p, "name"), str(rule, "decision"), cond ? cond : "?");
    if (cJSON_IsString(msg))
      printf("%-24s %-8s message: %s\n", "", "", msg->valuestring);
    free(cond);
    cJSON_Delete(cnd);
  }
}

/* `berth policy test`: the same command line as local mode (cmd_policy.c's parser); POST /v1/policies/test records
 * nothing. Exit 0 allowed, 1 denied. */
static int
policy_test_client(client_conn *c, int argc, char **argv)
{
  policy_test_req t;
  int rc = policy_test_parse(argc, argv, &t);
  if (rc != 0) {
    policy_test_req_clear(&t);
    return rc < 0 ? 0 : rc;
  }
  char at[64];
  berth_error *err = NULL;
  cJSON *body = cJSON_CreateObject(), *j = NULL;
  cJSON_AddStringToObject(body, "stack", t.stack);
  cJSON_AddStringToObject(body, "command", t.command.data ? t.command.data : "");
  if (t.actor)
    cJSON_AddStringToObject(body, "actor", t.actor);
  if (t.role)
    cJSON_AddStringToObject(body, "role", t.role);
  if (t.at_given)
    cJSON_AddStringToObject(body, "at", berth_format_time(t.at_ms, at, sizeof at));
  if (client_request(c, "POST", "/v1/policies/test", body, &j, &err) < 0) {
    rc = cli_fail(err);
  } else {
    if (t.json)
      cli_print_json(j);
    else
      cli_render_policy_result(j);
    rc = strcmp(str(j, "decision") ? str(j, "decision") : "deny", "allow") == 0 ? 0 : 1;
  }
  cJSON_Delete(body);
  cJSON_Delete(j);
  policy_test_req_clear(&t);
  return rc;
}

int
client_policy(client_conn *c, int argc, char **argv)
{
  if (argc < 2)
    return cli_usage_error("policy: which subcommand? (see 'berth policy --help')");
  const char *sub = argv[1], *arg = NULL;
  bool json = false;
  berth_error *err = NULL;
  cJSON *j = NULL;
  int rc;
  if (strcmp(sub, "list") == 0) {
    if ((rc = positional(argc - 1, argv + 1, "policy list", 0, &json, &arg)) != 0)
      return rc;
    if (client_request(c, "GET", "/v1/policies", NULL, &j, &err) < 0)
      return cli_fail(err);
    if (json)
      cli_print_json(j);
    else
      render_policies(j);
    cJSON_Delete(j);
    return 0;
  }
  if (strcmp(sub, "remove") == 0) {
    if ((rc = positional(argc - 1, argv + 1, "policy remove", 1, NULL, &arg)) != 0)
      return rc;
    char *en = client_escape(arg), *path = NULL;
    if (en == NULL || asprintf(&path, "/v1/policies/%s", en) < 0)
      path = NULL;
    free(en);
    rc = path ? client_request(c, "DELETE", path, NULL, &j, &err)
              : berth_error_set(&err, BERTH_EINTERNAL, "out of memory");
    free(path);
    cJSON_Delete(j);
    if (rc < 0)
      return cli_fail(err);
    printf("removed policy rule %s\n", arg);
    return 0;
  }
  if (strcmp(sub, "test") == 0)
    return policy_test_client(c, argc - 1, argv + 1);
  if (strcmp(sub, "add") != 0)
    return cli_usage_error("policy %s is not available against a server (use the HTTP API: docs/http-api.md)", sub);
  if ((rc = positional(argc - 1, argv + 1, "policy add", 1, NULL, &arg)) != 0)
    return rc;
  char *text = read_text(arg, &err);
  size_t n = 0;
  if (text == NULL)
    return cli_fail(err);
  if (berth_policy_validate_json(text, &n, &err) < 0) {
    free(text);
    berth_error_wrap(&err, "policy file %s", arg);
    return cli_fail(err);
  }
  rc = client_request_raw(c, "POST", "/v1/policies", text, strlen(text), &j, &err);
  if (rc == 0) {
    /* the rule names, as local mode prints them */
    cJSON *root = cJSON_Parse(text);
    berth_buf names;
    berth_buf_init(&names, 64 * 1024);
    const cJSON *it = cJSON_IsArray(root) ? root->child : root;
    for (; it != NULL; it = cJSON_IsArray(root) ? it->next : NULL)
      if (str(it, "name"))
        berth_buf_printf(&names, "%s%s", names.len ? ", " : "", str(it, "name"));
    size_t added = (size_t) cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "added"));
    printf("added %zu policy rule%s: %s\n", added, added == 1 ? "" : "s", names.data ? names.data : "");
    berth_buf_free(&names);
    cJSON_Delete(root);
  }
  cJSON_Delete(j);
  free(text);
  return rc < 0 ? cli_fail(err) : 0;
}
