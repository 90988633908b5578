/* Fuzz target: the JSON bodies of the HTTP API that libberth applies (the server and the command line's local back
 * end both do): a stack's create and update, a schedule, a webhook, a task prune. The first byte picks the body's
 * kind, the rest is the body. Every refusal is one line; an accepted prune is within its bounds. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/parse.h"
#include "berth/retention.h"
#include "berth/schedule.h"
#include "berth/stack_json.h"
#include "berth/webhook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
one_line(int rc, berth_error *err)
{
  if (rc < 0 && (err == NULL || err->msg == NULL || strchr(err->msg, '\n') != NULL))
    abort();
  if (rc == 0 && err != NULL)
    abort();
  berth_error_free(err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1 || size > 64 * 1024)
    return 0;
  const char *text = (const char *) data + 1;
  size_t len = size - 1;
  berth_error *err = NULL;
  /* as the server takes a body: valid UTF-8 and escapes first, then cJSON */
  if (memchr(text, '\0', len) != NULL || berth_json_text_check(text, len, &err) < 0) {
    berth_error_free(err);
    return 0;
  }
  cJSON *o = cJSON_ParseWithLength(text, len);
  if (o == NULL)
    return 0;
  int rc;
  switch (data[0] % 5) {
  case 0:
  case 1: {
    berth_stack *s = berth_stack_new();
    bool create = data[0] % 5 == 0;
    /* an update applies to a stored stack, which has its name and image */
    if (s == NULL
        || (!create
            && ((s->name = strdup("fuzz-stack")) == NULL || (s->image = strdup("berth/runner:latest")) == NULL))) {
      berth_stack_free(s);
      break;
    }
    rc = berth_stack_apply_json(s, o, create, &err);
    one_line(rc, err);
    berth_stack_free(s);
    break;
  }
  case 2: {
    berth_schedule *s = NULL;
    rc = berth_schedule_from_json(o, "fuzz-stack", &s, &err);
    one_line(rc, err);
    berth_schedule_free(s);
    break;
  }
  case 3: {
    berth_webhook *w = NULL;
    rc = berth_webhook_from_json(o, &w, &err);
    one_line(rc, err);
    berth_webhook_free(w);
    break;
  }
  default: {
    berth_prune p;
    rc = berth_prune_parse(o, &p, &err);
    one_line(rc, err);
    if (rc == 0
        && (p.older_than_ms < 0 || p.older_than_ms > BERTH_PRUNE_MAX_AGE_MS
            || (p.stack[0] && berth_stack_validate_name(p.stack, NULL) < 0)))
      abort();
    if (rc == 0)
      cJSON_Delete(berth_prune_result_to_json(&p, &(berth_prune_result){ 0 }));
    break;
  }
  }
  cJSON_Delete(o);
  return 0;
}
