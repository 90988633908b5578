/* The HTTP back end: every operation is one API request to `berth serve` (BERTH_SERVER, the key in BERTH_API_KEY),
 * and its record is the server's answer (backend.h). The transport is client_http.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "berth/buf.h"
#include "berth/store.h"
#include "backend.h"
#include "style.h"
#include "client.h"

#define LOG_HDR 6
/* a follow cut short (a server or its database restarting) is resumed for up to ~90 s of cuts in a row, as a
 * follower on the store waits (task_follow.c) */
#define FOLLOW_RETRIES 90

typedef struct http_backend {
  cli_backend base;
  client_conn *conn;
} http_backend;

/* The route of each operation: "%s" in path is the request's arg, escaped; the query comes from the request's
 * filters (append_query). */
typedef struct http_route {
  const char *method;
  const char *path;
} http_route;

static const http_route routes[CLI_OP_COUNT] = {
  [CLI_OP_DOCTOR] = { "GET", "/v1/doctor" },
  [CLI_OP_STACK_LIST] = { "GET", "/v1/stacks" },
  [CLI_OP_STACK_SHOW] = { "GET", "/v1/stacks/%s" },
  [CLI_OP_STACK_STATE] = { "GET", "/v1/stacks/%s/state" },
  [CLI_OP_STACK_CREATE] = { "POST", "/v1/stacks" },
  [CLI_OP_STACK_UPDATE] = { "PATCH", "/v1/stacks/%s" },
  [CLI_OP_STACK_DELETE] = { "DELETE", "/v1/stacks/%s" },
  [CLI_OP_STACK_LOCK] = { "POST", "/v1/stacks/%s/lock" },
  [CLI_OP_STACK_UNLOCK] = { "DELETE", "/v1/stacks/%s/lock" },
  [CLI_OP_TASK_LIST] = { "GET", "/v1/tasks" },
  [CLI_OP_TASK_SHOW] = { "GET", "/v1/tasks/%s" },
  [CLI_OP_TASK_SUBMIT] = { "POST", "/v1/stacks/%s/tasks" },
  [CLI_OP_TASK_CANCEL] = { "POST", "/v1/tasks/%s/cancel" },
  [CLI_OP_AUDIT_LIST] = { "GET", "/v1/audit" },
  [CLI_OP_AUDIT_VERIFY] = { "GET", "/v1/audit/verify" },
  [CLI_OP_IMAGE_LIST] = { "GET", "/v1/images/rules" },
  [CLI_OP_IMAGE_CHECK] = { "GET", "/v1/images/check?ref=%s" },
  [CLI_OP_IMAGE_ADD] = { "POST", "/v1/images/rules" },
  [CLI_OP_IMAGE_REMOVE] = { "DELETE", "/v1/images/rules?pattern=%s" },
  [CLI_OP_POLICY_LIST] = { "GET", "/v1/policies" },
  [CLI_OP_POLICY_ADD] = { "POST", "/v1/policies" },
  [CLI_OP_POLICY_REMOVE] = { "DELETE", "/v1/policies/%s" },
  [CLI_OP_POLICY_TEST] = { "POST", "/v1/policies/test" },
  [CLI_OP_KEY_LIST] = { "GET", "/v1/keys" },
  [CLI_OP_KEY_CREATE] = { "POST", "/v1/keys" },
  [CLI_OP_KEY_REVOKE] = { "DELETE", "/v1/keys/%s" },
  [CLI_OP_OIDC_JWKS] = { "GET", "/.well-known/jwks.json" },
  [CLI_OP_OIDC_CONFIG] = { "GET", "/.well-known/openid-configuration" },
  [CLI_OP_OIDC_ROTATE] = { "POST", "/v1/oidc/rotate" },
  [CLI_OP_TASK_RETRY] = { "POST", "/v1/tasks/%s/retry" },
  [CLI_OP_HOST_LIST] = { "GET", "/v1/hosts" },
  [CLI_OP_HOST_SHOW] = { "GET", "/v1/hosts/%s" },
  [CLI_OP_HOST_DRAIN] = { "POST", "/v1/hosts/%s/drain" },
  [CLI_OP_HOST_REMOVE] = { "DELETE", "/v1/hosts/%s" },
  [CLI_OP_TASK_PRUNE] = { "POST", "/v1/tasks/prune" },
  [CLI_OP_HOST_UNDRAIN] = { "POST", "/v1/hosts/%s/undrain" },
};

static void
append_param(berth_buf *b, const char *name, const char *value)
{
  char *v = client_escape(value);
  berth_buf_printf(b, "%c%s=%s", strchr(b->data, '?') ? '&' : '?', name, v ? v : "");
  free(v);
}

static void
append_query(berth_buf *b, const cli_request *rq)
{
  char n[32];
  if (rq->stack)
    append_param(b, "stack", rq->stack);
  if (rq->state)
    append_param(b, "state", rq->state);
  if (rq->host)
    append_param(b, "host", rq->host);
  if (rq->limit > 0 && snprintf(n, sizeof n, "%d", rq->limit) > 0)
    append_param(b, "limit", n);
  if (rq->since)
    append_param(b, "since", rq->since);
  if (rq->all)
    append_param(b, "all", "1");
  if (rq->force)
    append_param(b, "force", "1");
}

static int
http_call(cli_backend *b, cli_op op, const cli_request *rq, cJSON **out, berth_error **err)
{
  http_backend *hb = (http_backend *) b;
  *out = NULL;
  if (op >= CLI_OP_COUNT || routes[op].method == NULL)
    return berth_error_set(err, BERTH_EINVAL, "this command is not available against a server");
  const http_route *r = &routes[op];
  char *arg = client_escape(rq->arg ? rq->arg : "");
  berth_buf path;
  berth_buf_init(&path, 64 * 1024);
  const char *hole = strstr(r->path, "%s");
  size_t pre = hole ? (size_t) (hole - r->path) : strlen(r->path);
  int rc = arg && berth_buf_append(&path, r->path, pre) == 0
                   && (hole == NULL
                       || (berth_buf_append(&path, arg, strlen(arg)) == 0
                           && berth_buf_append(&path, hole + 2, strlen(hole + 2)) == 0))
                   && berth_buf_append(&path, "", 0) == 0
               ? 0
               : berth_error_set(err, BERTH_EINVAL, "the request is too long");
  free(arg);
  if (rc == 0) {
    append_query(&path, rq);
    rc = rq->raw_body ? client_request_raw(hb->conn, r->method, path.data, rq->raw_body, strlen(rq->raw_body), out, err)
                      : client_request(hb->conn, r->method, path.data, rq->body, out, err);
  }
  berth_buf_free(&path);
  return rc < 0 ? -1 : 0;
}

/* ---- following a log: records ([kind][phase][len:4][bytes]), as berth_task_follow hands them out ---- */

typedef struct follow_state {
  cli_record_fn fn;
  void *ud;
  unsigned char hdr[LOG_HDR];
  size_t hdr_len;
  size_t left;
  int kind;
  long long offset; /* bytes of the log received, to resume after a cut */
} follow_state;

static int
on_log_bytes(void *ud, const char *data, size_t len)
{
  follow_state *f = ud;
  f->offset += (long long) len;
  while (len > 0) {
    if (f->left == 0) {
      f->hdr[f->hdr_len++] = (unsigned char) *data++;
      len--;
      if (f->hdr_len == LOG_HDR) {
        f->kind = f->hdr[0];
        f->left = ((size_t) f->hdr[2] << 24) | ((size_t) f->hdr[3] << 16) | ((size_t) f->hdr[4] << 8) | f->hdr[5];
        f->hdr_len = 0;
      }
      continue;
    }
    size_t take = len < f->left ? len : f->left;
    f->fn(f->ud, f->kind, data, take);
    data += take;
    len -= take;
    f->left -= take;
  }
  return 0;
}

static bool
task_ended(http_backend *hb, const char *id, berth_error **err)
{
  cJSON *t = NULL;
  cli_request rq = { .arg = id };
  bool ended = http_call(&hb->base, CLI_OP_TASK_SHOW, &rq, &t, err) == 0
               && berth_task_state_is_terminal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "state")));
  cJSON_Delete(t);
  return ended;
}

/* While the task is QUEUED: why it waits, each time that changes, as the local follower says it (a fleet gives the
 * reason; a store of one host has none). 1 when stopped (Ctrl-C); a failed read leaves it to the log's follow. */
static int
say_waiting(http_backend *hb, const char *id, const volatile sig_atomic_t *stop)
{
  char *last = NULL;
  int rc = 0;
  while (rc == 0) {
    if (stop != NULL && *stop) {
      rc = 1;
      break;
    }
    cJSON *t = NULL;
    berth_error *e = NULL;
    cli_request rq = { .arg = id };
    if (http_call(&hb->base, CLI_OP_TASK_SHOW, &rq, &t, &e) < 0) {
      berth_error_free(e);
      break;
    }
    const char *state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "state"));
    const char *reason = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "reason"));
    bool queued = state != NULL && strcmp(state, "QUEUED") == 0;
    if (queued && reason != NULL && (last == NULL || strcmp(last, reason) != 0)) {
      cli_note("waiting: %s", reason);
      free(last);
      last = strdup(reason);
    }
    cJSON_Delete(t);
    if (!queued)
      break;
    usleep(500 * 1000);
  }
  free(last);
  return rc;
}

static int
http_follow(cli_backend *b, const char *id, bool follow, const volatile sig_atomic_t *stop, cli_record_fn fn, void *ud,
            berth_error **err)
{
  http_backend *hb = (http_backend *) b;
  follow_state f = { .fn = fn, .ud = ud };
  if (follow && say_waiting(hb, id, stop) == 1)
    return 1;
  char *eid = client_escape(id);
  int rc = eid ? 0 : berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  for (int attempt = 0; rc == 0; attempt++) {
    long long had = f.offset;
    char *path = NULL;
    if (asprintf(&path, "/v1/tasks/%s/logs?format=records&follow=%d&offset=%lld", eid, follow ? 1 : 0, f.offset) < 0)
      path = NULL;
    berth_error *cut = NULL;
    int src = path ? client_stream(hb->conn, path, on_log_bytes, &f, stop, &cut) : -1;
    free(path);
    if (src == 1 || (src < 0 && stop != NULL && *stop)) { /* stopped (Ctrl-C), also while no server answers */
      berth_error_free(cut);
      rc = 1;
      break;
    }
    if (src == 0 && (!follow || task_ended(hb, id, &cut)))
      break;
    if (f.offset > had)
      attempt = 0; /* it went on before the cut: the count is of cuts in a row */
    /* the stream was cut (a server restart): resume where it stopped */
    if (cut && (cut->code != BERTH_EINTERNAL || attempt >= FOLLOW_RETRIES)) {
      *err = cut;
      rc = -1;
    } else if (attempt >= FOLLOW_RETRIES) {
      rc = berth_error_set(err, BERTH_EINTERNAL, "lost the server while following task %s", id);
    } else {
      berth_error_free(cut);
      sleep(1); /* a signal ends it early; the loop's next round sees the stop */
    }
  }
  free(eid);
  return rc;
}

static void
http_free(cli_backend *b)
{
  http_backend *hb = (http_backend *) b;
  client_conn_free(hb->conn);
  free(hb);
}

static const cli_backend_ops http_backend_ops = { http_call, http_follow, http_free };

int
cli_backend_http_new(cli_backend **out, berth_error **err)
{
  http_backend *hb = calloc(1, sizeof *hb);
  if (hb == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (client_conn_new(&hb->conn, err) < 0) {
    free(hb);
    return -1;
  }
  hb->base.ops = &http_backend_ops;
  *out = &hb->base;
  return 0;
}
