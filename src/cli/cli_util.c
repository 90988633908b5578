/* Small helpers shared by the CLI commands. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "berth/actions.h"
#include "berth/buf.h"
#include "berth/store.h"
#include "cli.h"

char *
cli_current_user(void)
{
  struct passwd *pw = getpwuid(getuid());
  if (pw != NULL)
    return strdup(pw->pw_name);
  char *s = NULL;
  if (asprintf(&s, "uid%u", (unsigned) getuid()) < 0)
    return NULL;
  return s;
}

int
cli_open_store(berth_store **st)
{
  berth_error *err = NULL;
  char *home = berth_home_default();
  int rc = berth_store_open(home, st, &err);
  free(home);
  if (rc < 0)
    return cli_fail(err);
  return 0;
}

void
cli_print_json(const cJSON *j)
{
  char *s = cJSON_Print(j);
  if (s)
    printf("%s\n", s);
  free(s);
}

int
cli_write_all(int fd, const char *data, size_t len)
{
  while (len > 0) {
    ssize_t w = write(fd, data, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -1;
    data += w;
    len -= (size_t) w;
  }
  return 0;
}

void
cli_audit_failure(berth_store *st, const char *actor, const char *action, const char *target, const cJSON *args,
                  const berth_error *failure)
{
  berth_error *err = NULL;
  if (berth_action_record(st, actor, action, target, args, failure, &err) < 0) {
    fprintf(stderr, "berth: warning: could not record the failure in the audit trail: %s\n", err->msg);
    berth_error_free(err);
  }
}

/* The rule names in a validated policy text, comma-separated, and as a JSON array. */
char *
cli_policy_rule_names(const char *text, cJSON **names_out)
{
  cJSON *root = cJSON_Parse(text);
  cJSON *names = cJSON_CreateArray();
  berth_buf b;
  berth_buf_init(&b, 64 * 1024);
  const cJSON *it = cJSON_IsArray(root) ? root->child : root;
  for (; it != NULL; it = cJSON_IsArray(root) ? it->next : NULL) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");
    if (cJSON_IsString(n)) {
      berth_buf_printf(&b, "%s%s", b.len ? ", " : "", n->valuestring);
      cJSON_AddItemToArray(names, cJSON_CreateString(n->valuestring));
    }
  }
  cJSON_Delete(root);
  *names_out = names;
  berth_buf_append(&b, "", 0);
  return berth_buf_steal(&b);
}

