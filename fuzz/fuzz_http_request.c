/* libFuzzer target for the server's request parsing: path splitting, route matching, query values and JSON bodies
 * (task submissions, stack documents, the small typed field readers).
 *
 * Input layout: "METHOD PATH[?QUERY]\n" then the body. The server files are pure functions over bytes (no
 * libmicrohttpd), compiled here directly. Invariants (abort on violation): a split path has at most
 * SRV_MAX_SEGMENTS segments, each NUL-terminated within SRV_SEGMENT_MAX bytes and never empty; a matched route's
 * method is the request's; a parsed task has a command; an applied stack passes berth_stack_validate. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/server/api_input.c"
#include "../src/server/http_route.c"

static int
stub(srv_req *r, srv_resp *out)
{
  (void) r;
  (void) out;
  return 0;
}

/* The route patterns of src/server/server.c. */
static const srv_route table[] = {
  { "GET", "", 0, stub },
  { "GET", "v1", 0, stub },
  { "GET", "v1/doctor", 1, stub },
  { "GET", "v1/stacks", 1, stub },
  { "POST", "v1/stacks", 3, stub },
  { "GET", "v1/stacks/*", 1, stub },
  { "PATCH", "v1/stacks/*", 3, stub },
  { "DELETE", "v1/stacks/*", 3, stub },
  { "POST", "v1/stacks/*/lock", 2, stub },
  { "DELETE", "v1/stacks/*/lock", 2, stub },
  { "POST", "v1/stacks/*/tasks", 2, stub },
  { "GET", "v1/tasks", 1, stub },
  { "GET", "v1/tasks/*", 1, stub },
  { "POST", "v1/tasks/*/cancel", 2, stub },
  { "GET", "v1/tasks/*/logs", 1, stub },
  { "GET", "v1/images/rules", 1, stub },
  { "DELETE", "v1/policies/*", 3, stub },
  { "DELETE", "v1/keys/*", 3, stub },
};

static void
fuzz_path(const char *method, const char *path)
{
  char segs[SRV_MAX_SEGMENTS][SRV_SEGMENT_MAX + 1];
  int n = srv_path_split(path, segs, SRV_MAX_SEGMENTS);
  if (n < 0)
    return;
  if (n > SRV_MAX_SEGMENTS)
    abort();
  for (int i = 0; i < n; i++)
    if (segs[i][0] == '\0' || strlen(segs[i]) > SRV_SEGMENT_MAX)
      abort();
  const char *args[4] = { NULL };
  bool known = false;
  const srv_route *r
      = srv_route_match(table, sizeof table / sizeof table[0], method, segs, (size_t) n, args, 4, &known);
  /* a route is of the request's method, or a GET route taking a HEAD (GET without the body) */
  if (r
      && ((strcmp(r->method, method) != 0 && !(strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0))
          || !known))
    abort();
  for (size_t i = 0; r && i < 4 && args[i]; i++)
    if (strlen(args[i]) > SRV_SEGMENT_MAX)
      abort();
}

static void
fuzz_query(const char *q)
{
  /* every value of a=b&c=d, as libmicrohttpd would hand them over (undecoded here: the checks take any bytes) */
  char *copy = strdup(q);
  char *save = NULL;
  for (char *kv = strtok_r(copy, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
    char *v = strchr(kv, '=');
    if (v == NULL)
      continue;
    *v++ = '\0';
    berth_error *err = NULL;
    int limit = 0;
    if (srv_parse_limit(v, &limit, &err) == 0 && (limit < 0 || limit > 1000000))
      abort();
    berth_error_free(err);
    (void) srv_truthy(v);
    (void) berth_task_state_is_valid(v);
  }
  free(copy);
}

static void
fuzz_body(const char *body, size_t len)
{
  berth_error *err = NULL;
  cJSON *o = NULL;
  if (srv_json_object(body, len, &o, &err) < 0) {
    berth_error_free(err);
    return;
  }
  srv_task_request tr;
  if (srv_task_request_parse(o, &tr, &err) == 0) {
    if (tr.command == NULL)
      abort();
    srv_task_request_clear(&tr);
  } else
    berth_error_clear(&err);
  berth_stack *s = berth_stack_new();
  if (berth_stack_apply_json(s, o, true, &err) == 0) {
    if (berth_stack_validate(s, &err) < 0)
      abort();
    /* and once more as a PATCH over the result */
    if (berth_stack_apply_json(s, o, false, &err) < 0)
      berth_error_clear(&err);
  } else
    berth_error_clear(&err);
  berth_stack_free(s);
  const char *str = NULL;
  bool b = false;
  if (srv_json_string(o, "name", false, &str, &err) < 0)
    berth_error_clear(&err);
  if (srv_json_bool(o, "force", &b, &err) < 0)
    berth_error_clear(&err);
  cJSON_Delete(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const uint8_t *nl = memchr(data, '\n', size);
  size_t head = nl ? (size_t) (nl - data) : size;
  if (head > 4096)
    return 0;
  char line[4097];
  memcpy(line, data, head);
  line[head] = '\0';
  char *sp = strchr(line, ' ');
  if (sp) {
    *sp = '\0';
    char *path = sp + 1;
    char *q = strchr(path, '?');
    if (q)
      *q++ = '\0';
    fuzz_path(line, path);
    if (q)
      fuzz_query(q);
  }
  if (nl)
    fuzz_body((const char *) nl + 1, size - head - 1);
  return 0;
}
