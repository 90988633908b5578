/* Human renderers over JSON records. */
#include <stdio.h>
#include <string.h>

#include "berth/task_runner.h"
#include "render.h"

static const char *
str(const cJSON *o, const char *key, const char *dflt)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : dflt;
}

static int
num(const cJSON *o, const char *key, int dflt)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNumber(v) ? v->valueint : dflt;
}

void
cli_render_task_list(const cJSON *tasks)
{
  printf("%-26s  %-16s  %-12s  %4s  %-24s  %s\n", "ID", "STACK", "STATE", "EXIT", "CREATED", "COMMAND");
  const cJSON *t;
  cJSON_ArrayForEach(t, tasks)
  {
    char code[16] = "-";
    int ec = num(t, "exit_code", -1);
    if (ec >= 0)
      snprintf(code, sizeof code, "%d", ec);
    printf("%-26s  %-16s  %-12s  %4s  %-24s  %.60s\n", str(t, "id", "?"), str(t, "stack", "?"), str(t, "state", "?"),
           code, str(t, "created_at", "-"), str(t, "command", ""));
  }
}

void
cli_render_task(const cJSON *t)
{
  printf("id:          %s\nstack:       %s\ncommand:     %s\nstate:       %s\n", str(t, "id", "?"),
         str(t, "stack", "?"), str(t, "command", ""), str(t, "state", "?"));
  if (str(t, "reason", NULL))
    printf("reason:      %s\n", str(t, "reason", ""));
  if (num(t, "exit_code", -1) >= 0)
    printf("exit code:   %d\n", num(t, "exit_code", -1));
  printf("actor:       %s\n", str(t, "actor", "-"));
  if (str(t, "triggered_by", NULL) && strcmp(str(t, "triggered_by", ""), str(t, "actor", "")) != 0)
    printf("triggered by: %s\n", str(t, "triggered_by", ""));
  if (str(t, "blocked_by", NULL))
    printf("blocked by:  %s\n", str(t, "blocked_by", ""));
  const cJSON *h = cJSON_GetObjectItemCaseSensitive(t, "history");
  if (cJSON_IsArray(h)) {
    printf("history:\n");
    const cJSON *e;
    cJSON_ArrayForEach(e, h) printf("  %-24s  %-12s  %-10s  %s\n", str(e, "at", "-"), str(e, "state", "?"),
                                    str(e, "actor", "-"), str(e, "note", ""));
  }
}

int
cli_task_exit_status(const cJSON *t)
{
  return berth_task_exit_status(str(t, "state", "FAILED"), str(t, "reason", NULL), num(t, "exit_code", -1));
}
