/* berth serve: listeners, libmicrohttpd plumbing, authentication, dispatch, and the SIGTERM shutdown. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "berth/buf.h"
#include "berth/cron.h"
#include "berth/docker.h"
#include "berth/config.h"
#include "berth/host_loop.h"
#include "berth/parse.h"
#include "berth/task_queue.h"
#include "berth/task_runner.h"
#include "server.h"

/* ---- the route table: every endpoint, with the least role that may call it ---- */
static const srv_route routes[] = {
  { "GET", "", SRV_ROLE_NONE, api_root, NULL },
  { "GET", "v1", SRV_ROLE_NONE, api_root, NULL },
  { "GET", "v1/doctor", SRV_ROLE_READER, api_doctor, NULL },
  { "POST", "v1/session", SRV_ROLE_NONE, api_session_create, NULL }, /* checks the key in its body */
  { "GET", "v1/session", SRV_ROLE_READER, api_session_get, NULL },
  { "DELETE", "v1/session", SRV_ROLE_READER, api_session_delete, NULL },
  { "GET", "v1/stacks", SRV_ROLE_READER, api_stack_list, NULL },
  { "POST", "v1/stacks", SRV_ROLE_ADMIN, api_stack_create, NULL },
  { "GET", "v1/stacks/*", SRV_ROLE_READER, api_stack_get, NULL },
  { "PATCH", "v1/stacks/*", SRV_ROLE_ADMIN, api_stack_patch, NULL },
  { "DELETE", "v1/stacks/*", SRV_ROLE_ADMIN, api_stack_delete, NULL },
  { "GET", "v1/stacks/*/state", SRV_ROLE_READER, api_stack_state, NULL },
  { "POST", "v1/stacks/*/lock", SRV_ROLE_WRITER, api_stack_lock, NULL },
  { "DELETE", "v1/stacks/*/lock", SRV_ROLE_WRITER, api_stack_unlock, NULL },
  { "POST", "v1/stacks/*/tasks", SRV_ROLE_WRITER, api_task_create, NULL },
  { "GET", "v1/tasks", SRV_ROLE_READER, api_task_list, NULL },
  { "POST", "v1/tasks/prune", SRV_ROLE_ADMIN, api_task_prune, NULL },
  { "GET", "v1/tasks/prune", SRV_ROLE_NONE, NULL, NULL }, /* 405, not "task `prune` does not exist" */
  { "GET", "v1/tasks/*", SRV_ROLE_READER, api_task_get, api_task_get_ahead },
  { "POST", "v1/tasks/*/cancel", SRV_ROLE_WRITER, api_task_cancel, NULL },
  { "POST", "v1/tasks/*/retry", SRV_ROLE_WRITER, api_task_retry, NULL },
  { "GET", "v1/hosts", SRV_ROLE_READER, api_host_list, NULL },
  { "GET", "v1/hosts/*", SRV_ROLE_READER, api_host_get, NULL },
  { "POST", "v1/hosts/*/drain", SRV_ROLE_ADMIN, api_host_drain, NULL },
  { "DELETE", "v1/hosts/*", SRV_ROLE_ADMIN, api_host_remove, NULL },
  { "POST", "v1/hosts/*/undrain", SRV_ROLE_ADMIN, api_host_undrain, NULL },
  { "GET", "v1/tasks/*/logs", SRV_ROLE_READER, api_task_logs, NULL },
  { "GET", "v1/tasks/*/events", SRV_ROLE_READER, api_task_events, NULL },
  { "GET", "v1/images/rules", SRV_ROLE_READER, api_image_rules, NULL },
  { "POST", "v1/images/rules", SRV_ROLE_ADMIN, api_image_rule_add, NULL },
  { "DELETE", "v1/images/rules", SRV_ROLE_ADMIN, api_image_rule_remove, NULL },
  { "GET", "v1/images/check", SRV_ROLE_READER, api_image_check, NULL },
  { "GET", "v1/policies", SRV_ROLE_READER, api_policy_list, NULL },
  { "POST", "v1/policies", SRV_ROLE_ADMIN, api_policy_add, NULL },
  { "DELETE", "v1/policies", SRV_ROLE_ADMIN, api_policy_remove, NULL },
  { "DELETE", "v1/policies/*", SRV_ROLE_ADMIN, api_policy_remove, NULL },
  { "POST", "v1/policies/test", SRV_ROLE_READER, api_policy_test, NULL }, /* a dry run: records nothing */
  { "GET", "v1/audit", SRV_ROLE_ADMIN, api_audit, NULL },
  { "GET", "v1/audit/verify", SRV_ROLE_ADMIN, api_audit_verify, NULL },
  { "GET", "v1/keys", SRV_ROLE_ADMIN, api_key_list, NULL },
  { "POST", "v1/keys", SRV_ROLE_ADMIN, api_key_create, NULL },
  { "DELETE", "v1/keys/*", SRV_ROLE_ADMIN, api_key_revoke, NULL },
  { "GET", ".well-known/openid-configuration", SRV_ROLE_NONE, api_oidc_discovery, NULL }, /* a cloud reads these */
  { "GET", ".well-known/jwks.json", SRV_ROLE_NONE, api_oidc_jwks, NULL },
  { "POST", "v1/oidc/rotate", SRV_ROLE_ADMIN, api_oidc_rotate, NULL },
  { "GET", "metrics", SRV_ROLE_READER, api_metrics, NULL }, /* also without a key on --metrics-listen */
  { "GET", "v1/schedules", SRV_ROLE_READER, api_schedule_list, NULL },
  { "GET", "v1/stacks/*/schedules", SRV_ROLE_READER, api_schedule_list, NULL },
  { "POST", "v1/stacks/*/schedules", SRV_ROLE_WRITER, api_schedule_create, NULL },
  { "GET", "v1/stacks/*/schedules/*", SRV_ROLE_READER, api_schedule_get, NULL },
  { "DELETE", "v1/stacks/*/schedules/*", SRV_ROLE_WRITER, api_schedule_delete, NULL },
  { "POST", "v1/stacks/*/schedules/*/pause", SRV_ROLE_WRITER, api_schedule_pause, NULL },
  { "POST", "v1/stacks/*/schedules/*/resume", SRV_ROLE_WRITER, api_schedule_resume, NULL },
  { "GET", "v1/webhooks", SRV_ROLE_ADMIN, api_webhook_list, NULL },
  { "POST", "v1/webhooks", SRV_ROLE_ADMIN, api_webhook_create, NULL },
  { "DELETE", "v1/webhooks/*", SRV_ROLE_ADMIN, api_webhook_delete, NULL },
  { "GET", "v1/webhooks/*/deliveries", SRV_ROLE_ADMIN, api_webhook_deliveries, NULL },
  { "POST", "v1/webhook-deliveries/*/redeliver", SRV_ROLE_ADMIN, api_webhook_redeliver, NULL },
};

/* ---- per-thread store ---- */

typedef struct thread_store {
  srv_ctx *srv;
  berth_store *st;
} thread_store;

/* A connection's thread ends: its store is left for the next thread, unless enough are left already, or it is in
 * the middle of a transaction, or the server is ending. */
static void
release_thread_store(void *p)
{
  thread_store *ts = p;
  srv_ctx *s = ts->srv;
  bool keep = !berth_store_in_transaction(ts->st);
  pthread_mutex_lock(&s->idle_mu);
  if (keep && !s->idle_closed && s->n_idle < SRV_IDLE_STORES) {
    s->idle[s->n_idle++] = ts->st;
    ts->st = NULL;
  }
  pthread_mutex_unlock(&s->idle_mu);
  berth_store_close(ts->st);
  free(ts);
}

berth_store *
srv_store(srv_ctx *s, berth_error **err)
{
  thread_store *ts = pthread_getspecific(s->store_key);
  if (ts != NULL)
    return ts->st;
  if ((ts = calloc(1, sizeof *ts)) == NULL) {
    berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    return NULL;
  }
  ts->srv = s;
  pthread_mutex_lock(&s->idle_mu);
  if (s->n_idle > 0)
    ts->st = s->idle[--s->n_idle];
  pthread_mutex_unlock(&s->idle_mu);
  if (ts->st == NULL && berth_store_open(s->home, &ts->st, err) < 0) {
    free(ts);
    return NULL;
  }
  pthread_setspecific(s->store_key, ts);
  return ts->st;
}

/* After the last connection's thread: the stores left idle. */
static void
close_idle_stores(srv_ctx *s)
{
  pthread_mutex_lock(&s->idle_mu);
  s->idle_closed = true;
  for (size_t i = 0; i < s->n_idle; i++)
    berth_store_close(s->idle[i]);
  s->n_idle = 0;
  pthread_mutex_unlock(&s->idle_mu);
}

/* ---- responses ---- */

int
srv_ok(srv_resp *out, int status, cJSON *j)
{
  out->status = status;
  out->json = j;
  return 0;
}

static cJSON *
error_body(int code, const char *msg)
{
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "error", berth_error_name(code));
  cJSON_AddStringToObject(j, "message", msg ? msg : "unknown error");
  return j;
}

int
srv_fail(srv_resp *out, berth_error *err)
{
  int code = err ? err->code : BERTH_EINTERNAL;
  out->status = berth_error_http_status(code);
  cJSON_Delete(out->json);
  out->json = error_body(code, err ? err->msg : NULL);
  berth_error_free(err);
  return 0;
}

int
srv_fail_status(srv_resp *out, int status, int code, const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  out->status = status;
  cJSON_Delete(out->json);
  out->json = error_body(code, msg);
  return 0;
}

const char *
srv_query(srv_req *r, const char *name)
{
  if (r->conn == NULL)
    return NULL;
  const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
  if (v && strlen(v) > SRV_QUERY_VALUE_MAX)
    return NULL;
  return v;
}

int
srv_query_bool(srv_req *r, const char *name, bool *out, berth_error **err)
{
  const char *v = srv_query(r, name);
  *out = srv_truthy(v);
  if (v == NULL || *out || strcmp(v, "0") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0)
    return 0;
  return berth_error_set(err, BERTH_EINVAL, "query parameter `%s` must be true or false (1, 0, yes, no)", name);
}

const char *
srv_header(srv_req *r, const char *name)
{
  return r->conn ? MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name) : NULL;
}

int
srv_check_stack(srv_req *r, const char *stack, berth_error **err)
{
  if (r->key == NULL || berth_apikey_allows_stack(r->key, stack))
    return 0;
  return berth_error_set(err, BERTH_EDENIED, "API key `%s` may not act on stack `%s`", r->key->name, stack);
}

typedef struct stream_cls {
  void *stream;
  const srv_stream_ops *ops;
} stream_cls;

static ssize_t
stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
  (void) pos;
  stream_cls *sc = cls;
  ssize_t n = sc->ops->read(sc->stream, buf, max);
  if (n == -1)
    return MHD_CONTENT_READER_END_OF_STREAM;
  if (n < 0)
    return MHD_CONTENT_READER_END_WITH_ERROR;
  return n;
}

static void
stream_free(void *cls)
{
  stream_cls *sc = cls;
  sc->ops->free(sc->stream);
  free(sc);
}

static enum MHD_Result
queue(struct MHD_Connection *c, srv_resp *rs)
{
  struct MHD_Response *resp = NULL;
  if (rs->stream) {
    stream_cls *sc = malloc(sizeof *sc);
    if (sc != NULL) {
      *sc = (stream_cls){ rs->stream, rs->stream_ops };
      resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_reader, sc, stream_free);
    }
    if (resp == NULL) {
      rs->stream_ops->free(rs->stream);
      free(sc);
    }
    rs->stream = NULL;
    /* a quiet task must not look like an idle client */
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned int) 0);
    /* the connection's thread streams at a low priority (api_logs.c): it ends with the stream */
    if (resp != NULL)
      MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
  } else if (rs->text != NULL) {
    resp = MHD_create_response_from_buffer(strlen(rs->text), rs->text, MHD_RESPMEM_MUST_FREE);
    if (resp != NULL)
      rs->text = NULL;
  } else {
    char *text = rs->json ? cJSON_PrintUnformatted(rs->json) : NULL;
    size_t len = text ? strlen(text) : 0;
    if (text) {
      text[len] = '\n'; /* replaces the NUL: the body is the JSON and a newline */
      len++;
    }
    resp = MHD_create_response_from_buffer(len, text ? text : (void *) "",
                                           text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
      free(text);
  }
  if (resp == NULL)
    return MHD_NO;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rs->content_type ? rs->content_type : "application/json");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(resp, "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
  if (rs->location)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, rs->location);
  if (rs->set_cookie)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, rs->set_cookie);
  for (const char *const *h = rs->headers; h && h[0] && h[1]; h += 2)
    MHD_add_response_header(resp, h[0], h[1]);
  if (rs->status == 401)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"berth\"");
  enum MHD_Result ret = MHD_queue_response(c, (unsigned int) rs->status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* Every UI answer: no inline script or style, nothing from elsewhere, never in a frame. */
#define UI_CSP                                                                                                         \
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; "   \
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
static const char *const ui_headers[] = {
  "Content-Security-Policy",
  UI_CSP,
  "X-Content-Type-Options",
  "nosniff",
  "X-Frame-Options",
  "DENY",
  "Referrer-Policy",
  "no-referrer",
  "Cross-Origin-Opener-Policy",
  "same-origin",
  "Vary",
  "Accept-Encoding",
  NULL,
};

static enum MHD_Result
queue_asset(struct MHD_Connection *c, const srv_asset *a)
{
  const char *ae = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
  bool gz = a->gz != NULL && srv_accepts_gzip(ae);
  const char *etag = gz ? a->gz_etag : a->etag;
  bool fresh = srv_etag_match(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH), etag);
  struct MHD_Response *resp = MHD_create_response_from_buffer(fresh ? 0
                                                              : gz  ? a->gz_len
                                                                    : a->len,
                                                              (void *) (fresh ? NULL
                                                                        : gz  ? a->gz
                                                                              : a->data),
                                                              MHD_RESPMEM_PERSISTENT);
  if (resp == NULL)
    return MHD_NO;
  for (const char *const *h = ui_headers; h[0]; h += 2)
    MHD_add_response_header(resp, h[0], h[1]);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
  /* hashed names never change; index.html is checked every time (a cheap 304), so a new build shows at once */
  MHD_add_response_header(resp, "Cache-Control", a->immutable ? "public, max-age=31536000, immutable" : "no-cache");
  if (!fresh) {
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->content_type);
    if (gz)
      MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
  }
  enum MHD_Result ret = MHD_queue_response(c, fresh ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, resp);
  MHD_destroy_response(resp);
  return ret;
}

static enum MHD_Result queue_error(struct MHD_Connection *c, int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum MHD_Result
queue_error(struct MHD_Connection *c, int status, int code, const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  srv_resp rs = { .status = status, .json = error_body(code, msg) };
  enum MHD_Result r = queue(c, &rs);
  cJSON_Delete(rs.json);
  return r;
}

/* ---- one request ---- */

typedef struct conn_state {
  berth_buf body;
  bool too_big;
  bool oom;      /* the body could not be kept: out of memory */
  bool answered; /* an early answer (413, 408) was queued */
  uint64_t received;
  int64_t started;
} conn_state;

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
  (void) cls;
  (void) c;
  (void) toe;
  conn_state *cs = *con_cls;
  if (cs) {
    berth_buf_free(&cs->body);
    free(cs);
  }
  *con_cls = NULL;
}

/* The bearer token of the request, or NULL. */
static const char *
bearer(struct MHD_Connection *c)
{
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
    return NULL;
  h += 7;
  while (*h == ' ')
    h++;
  return *h ? h : NULL;
}

static bool
is_read(const char *method)
{
  return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

static int
fail401(srv_resp *rs, const char *msg)
{
  srv_fail_status(rs, 401, BERTH_EDENIED, "%s", msg);
  return -1;
}

/* Who is calling: the bearer key, else the key behind the session cookie (then a request that changes anything must
 * carry the session's CSRF token). 0 with *key; -1 with the answer in rs. */
static int
authenticate(srv_ctx *srv, struct MHD_Connection *c, srv_req *r, berth_apikey **key, srv_resp *rs)
{
  berth_error *err = NULL;
  const char *token = bearer(c);
  char *session_key = NULL;
  if (token == NULL) {
    r->session = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, r->tls ? SRV_SESSION_COOKIE_TLS : SRV_SESSION_COOKIE);
    if (r->session && srv_session_get(srv->sessions, r->session, &session_key, r->csrf, &r->session_expires) < 0)
      return fail401(rs, "the session has ended: sign in again");
    token = session_key;
  }
  if (token == NULL)
    return fail401(rs, "an API key is required (Authorization: Bearer KEY)");
  int rc = berth_apikey_authenticate(r->st, srv->keys, token, key, &err);
  if (session_key) {
    explicit_bzero(session_key, strlen(session_key));
    free(session_key);
  }
  if (rc < 0) {
    if (err->code != BERTH_EDENIED) {
      srv_fail(rs, err);
      return -1;
    }
    berth_error_free(err);
    if (r->session) /* the key was revoked: the session ends with it */
      srv_session_end(srv->sessions, r->session);
    return fail401(rs, r->session ? "the session's API key is no longer valid" : "invalid API key");
  }
  if (r->session && !is_read(r->method)
      && !srv_csrf_ok(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-CSRF-Token"), r->csrf)) {
    berth_error *denied = NULL;
    berth_error_set(&denied, BERTH_EDENIED, "a request made with a session cookie needs its X-CSRF-Token header");
    r->key = *key;
    srv_audit(r, "request", r->method, NULL, denied);
    r->key = NULL;
    srv_fail(rs, denied);
    return -1;
  }
  return 0;
}

/* One line on stderr (the journal) for an answer an operator must see: a server error, or a refused key (with the
 * peer's address, for fail2ban and the like). The message is the answer's own, as safe as the answer. */
static void
log_answer(struct MHD_Connection *c, const char *method, const char *url, const srv_resp *rs)
{
  char peer[INET6_ADDRSTRLEN + 8] = "a unix socket", path[256];
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  const struct sockaddr *sa = ci ? ci->client_addr : NULL;
  if (sa != NULL && sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *) (const void *) sa)->sin_addr, peer, sizeof peer);
  else if (sa != NULL && sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *) (const void *) sa)->sin6_addr, peer, sizeof peer);
  size_t n = 0;
  for (const char *p = url; *p && n + 1 < sizeof path; p++) /* one line, whatever the path holds */
    path[n++] = (unsigned char) *p < 0x20 || *p == 0x7f ? '?' : *p;
  path[n] = '\0';
  const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rs->json, "message"));
  fprintf(stderr, "berth: %.16s %s -> %d from %s: %.300s\n", method, path, rs->status, peer, msg ? msg : "");
}

static enum MHD_Result
dispatch(srv_ctx *srv, bool tls, struct MHD_Connection *c, const char *url, const char *method, conn_state *cs)
{
  if (is_read(method)) {
    const srv_asset *a = srv_ui_find(url, MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT));
    if (a != NULL)
      return queue_asset(c, a);
  }
  char segs[SRV_MAX_SEGMENTS][SRV_SEGMENT_MAX + 1];
  int nseg = srv_path_split(url, segs, SRV_MAX_SEGMENTS);
  if (nseg < 0)
    return queue_error(c, 404, BERTH_ENOTFOUND, "no such endpoint");
  srv_req r = { .srv = srv, .method = method, .conn = c, .conn_fd = -1, .tls = tls };
  bool path_known = false;
  const srv_route *route
      = srv_route_match(routes, sizeof routes / sizeof routes[0], method, segs, (size_t) nseg, r.args, 4, &path_known);
  if (route == NULL && path_known) { /* 405 says which methods the path takes (RFC 9110) */
    static const char *const methods[] = { "GET", "HEAD", "POST", "PATCH", "DELETE" };
    char allow[64] = "";
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
      const char *args[4];
      bool known = false;
      if (srv_route_match(routes, sizeof routes / sizeof routes[0], methods[i], segs, (size_t) nseg, args, 4, &known))
        snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s", allow[0] ? ", " : "", methods[i]);
    }
    char msg[512];
    snprintf(msg, sizeof msg, "method %.16s is not allowed on %.300s (allowed: %s)", method, url, allow);
    const char *headers[] = { "Allow", allow, NULL };
    srv_resp rs = { .status = 405, .json = error_body(BERTH_EINVAL, msg), .headers = headers };
    enum MHD_Result res = queue(c, &rs);
    cJSON_Delete(rs.json);
    return res;
  }
  if (route == NULL)
    return queue_error(c, 404, BERTH_ENOTFOUND, "no such endpoint: %.16s %.300s", method, url);
  if (atomic_load(&srv->stopping))
    return queue_error(c, 503, BERTH_EBUSY, "the server is shutting down");
  berth_error *err = NULL;
  srv_resp rs = { 0 };
  berth_apikey *key = NULL;
  if (route->min_role > SRV_ROLE_NONE) {
    r.st = srv_store(srv, &err);
    if (r.st == NULL) {
      srv_fail(&rs, err);
      goto send;
    }
    if (route->ahead)
      route->ahead(&r);
    if (authenticate(srv, c, &r, &key, &rs) < 0)
      goto send;
    r.key = key;
    r.role = srv_role_level(key->role);
    if (r.role < route->min_role) {
      berth_error *denied = NULL;
      berth_error_set(&denied, BERTH_EDENIED, "API key `%s` is a %s key; %s %s needs the %s role", key->name, key->role,
                      method, url, berth_role_name((berth_role) route->min_role));
      if (strcmp(method, "GET") != 0)
        srv_audit(&r, "request", url, NULL, denied);
      srv_fail(&rs, denied);
      goto send;
    }
  }
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (ci)
    r.conn_fd = ci->connect_fd;
  r.body = cs->body.data;
  r.body_len = cs->body.len;
  route->fn(&r, &rs);
  if (rs.status >= 500)
    atomic_fetch_add(&srv->internal_errors, 1);
send:
  if (rs.status >= 500 || rs.status == 401)
    log_answer(c, method, url, &rs);
  enum MHD_Result ret = queue(c, &rs);
  cJSON_Delete(rs.json);
  free(rs.location);
  free(rs.text);
  free(rs.set_cookie);
  berth_apikey_free(key);
  berth_task_ahead_free(r.task_ahead);
  return ret;
}

typedef struct listener {
  srv_ctx *srv;
  char *spec;
  char *unix_path; /* removed at exit */
  int fd;
  bool tls;
  bool metrics_only; /* --metrics-listen: GET /metrics without a key, nothing else */
  struct MHD_Daemon *d;
  atomic_bool starting; /* while MHD_start_daemon runs: its messages go in start_err, for the one error line */
  char start_err[256];  /* the first of them */
} listener;

/* %XX in the path and the query, decoded only where the result is text: a %00 (which would cut the string there) or
 * bytes that are not UTF-8 stay as they were written, so they reach the handlers as a name that does not exist
 * instead of a shorter one, and are never echoed raw in a JSON answer or an audit record. */
static size_t
unescape(void *cls, struct MHD_Connection *c, char *s)
{
  (void) cls;
  (void) c;
  size_t n = strlen(s);
  char *copy = strdup(s);
  if (copy == NULL)
    return n;
  size_t m = MHD_http_unescape(copy);
  if (strlen(copy) == m && berth_utf8_valid(copy)) {
    memcpy(s, copy, m + 1);
    n = m;
  }
  free(copy);
  return n;
}

/* libmicrohttpd's (and GnuTLS's, through it) messages: while a listener starts, the first is kept for its error
 * line; later ones are one line each on stderr. */
static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
  listener *l = cls;
  char msg[256];
  vsnprintf(msg, sizeof msg, fmt, ap);
  msg[strcspn(msg, "\r\n")] = '\0';
  if (l->starting) {
    if (l->start_err[0] == '\0')
      snprintf(l->start_err, sizeof l->start_err, "%s", msg);
    return;
  }
  fprintf(stderr, "berth serve: %s: %s\n", l->spec ? l->spec : "http", msg);
}

/* A --metrics-listen address: the scrape endpoint alone, for a Prometheus that holds no API key. */
static enum MHD_Result
metrics_only(srv_ctx *srv, struct MHD_Connection *c, const char *url, const char *method)
{
  if (strcmp(url, "/metrics") != 0)
    return queue_error(c, 404, BERTH_ENOTFOUND, "this address serves GET /metrics only");
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
    return queue_error(c, 405, BERTH_EINVAL, "GET /metrics only");
  srv_req r = { .srv = srv, .conn_fd = -1 };
  srv_resp rs = { 0 };
  api_metrics(&r, &rs);
  enum MHD_Result ret = queue(c, &rs);
  cJSON_Delete(rs.json);
  free(rs.text);
  return ret;
}

static enum MHD_Result
on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
          const char *upload_data, size_t *upload_data_size, void **con_cls)
{
  (void) version;
  listener *l = cls;
  conn_state *cs = *con_cls;
  if (cs == NULL) {
    cs = calloc(1, sizeof *cs);
    if (cs == NULL)
      return MHD_NO;
    berth_buf_init(&cs->body, SRV_BODY_MAX);
    cs->started = berth_now_ms();
    *con_cls = cs;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    unsigned long long len = cl ? strtoull(cl, NULL, 10) : 0;
    if (len > SRV_BODY_MAX) {
      /* answer before the body when the client waits for it (Expect: 100-continue) or the body is absurd; else
       * read and drop it, so the client sees the answer instead of a reset */
      cs->too_big = true;
      if (expect != NULL || len > SRV_DRAIN_MAX) {
        cs->answered = true;
        return queue_error(c, 413, BERTH_EINVAL, "the request body is larger than %u bytes", SRV_BODY_MAX);
      }
    }
    return MHD_YES;
  }
  if (*upload_data_size > 0) {
    cs->received += *upload_data_size;
    if (!cs->answered && !cs->too_big && !cs->oom) {
      int arc = berth_buf_append(&cs->body, upload_data, *upload_data_size);
      if (arc < 0) {
        cs->too_big = arc == BERTH_BUF_TOO_BIG;
        cs->oom = arc != BERTH_BUF_TOO_BIG;
        berth_buf_free(&cs->body);
      }
    }
    *upload_data_size = 0;
    if (!cs->answered && cs->received > SRV_DRAIN_MAX) {
      cs->answered = true;
      return queue_error(c, 413, BERTH_EINVAL, "the request body is larger than %u bytes", SRV_BODY_MAX);
    }
    if (!cs->answered && berth_now_ms() - cs->started > SRV_REQUEST_MAX_MS) {
      cs->answered = true;
      return queue_error(c, 408, BERTH_ETIMEOUT, "the request body took longer than %d s to arrive",
                         SRV_REQUEST_MAX_MS / 1000);
    }
    return MHD_YES;
  }
  if (cs->answered)
    return MHD_YES;
  if (cs->too_big)
    return queue_error(c, 413, BERTH_EINVAL, "the request body is larger than %u bytes", SRV_BODY_MAX);
  if (cs->oom)
    return queue_error(c, 503, BERTH_EINTERNAL, "out of memory reading the request body");
  if (l->metrics_only)
    return metrics_only(l->srv, c, url, method);
  return dispatch(l->srv, l->tls, c, url, method, cs);
}

/* ---- listeners ---- */

static int
listen_unix(listener *l, const char *path, berth_error **err)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  if (*path == '\0')
    return berth_error_set(err, BERTH_EINVAL, "listen address `unix:` needs a path (unix:/run/berth.sock)");
  if (strlen(path) >= sizeof sa.sun_path)
    return berth_error_set(err, BERTH_EINVAL, "socket path %.200s is too long", path);
  /* only a socket is ever replaced: anything else at the path is the user's */
  struct stat sb;
  if (lstat(path, &sb) == 0 && !S_ISSOCK(sb.st_mode))
    return berth_error_set(err, BERTH_EINVAL, "listen on %s: it exists and is not a socket (%s)", path,
                           S_ISDIR(sb.st_mode)   ? "a directory"
                           : S_ISLNK(sb.st_mode) ? "a symbolic link"
                                                 : "a file");
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "create a socket for %s", path);
  /* a socket file left by a crash is replaced; one with a live server behind it is not */
  if (connect(fd, (struct sockaddr *) &sa, sizeof sa) == 0) {
    close(fd);
    return berth_error_set(err, BERTH_EBUSY, "another server already listens on %s", path);
  }
  close(fd);
  unlink(path);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  mode_t old = umask(0117);
  int rc = fd < 0 ? -1 : bind(fd, (struct sockaddr *) &sa, sizeof sa);
  umask(old);
  if (rc < 0 || listen(fd, 128) < 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    return berth_error_set_errno(err, BERTH_EINTERNAL, e, "listen on %s", path);
  }
  l->fd = fd;
  l->unix_path = strdup(path);
  return 0;
}

static int
listen_tcp(listener *l, const char *hostport, berth_error **err)
{
  char host[256];
  const char *colon = strrchr(hostport, ':');
  if (colon == NULL || colon == hostport || (size_t) (colon - hostport) >= sizeof host || colon[1] == '\0')
    return berth_error_set(err, BERTH_EINVAL, "listen address `tcp:%.200s` needs HOST:PORT", hostport);
  char *pend = NULL;
  errno = 0;
  long port_asked = strtol(colon + 1, &pend, 10);
  if (!isdigit((unsigned char) colon[1]) || *pend != '\0' || errno != 0 || port_asked > 65535)
    return berth_error_set(err, BERTH_EINVAL, "listen address `tcp:%.200s`: the port must be a number from 0 to 65535",
                           hostport);
  memcpy(host, hostport, (size_t) (colon - hostport));
  host[colon - hostport] = '\0';
  if (host[0] == '[' && host[strlen(host) - 1] == ']') {
    memmove(host, host + 1, strlen(host));
    host[strlen(host) - 1] = '\0';
  }
  struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai = NULL;
  int g = getaddrinfo(host, colon + 1, &hints, &ai);
  if (g != 0)
    return berth_error_set(err, BERTH_EINVAL, "listen address `tcp:%s`: %s", hostport, gai_strerror(g));
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0)
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    freeaddrinfo(ai);
    return berth_error_set_errno(err, e == EADDRINUSE ? BERTH_EBUSY : BERTH_EINTERNAL, e, "listen on tcp:%s", hostport);
  }
  freeaddrinfo(ai);
  /* report the real port (port 0 asks the kernel for a free one) */
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char addr[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (getsockname(fd, (struct sockaddr *) &ss, &sl) == 0) {
    if (ss.ss_family == AF_INET) {
      inet_ntop(AF_INET, &((struct sockaddr_in *) &ss)->sin_addr, addr, sizeof addr);
      port = ntohs(((struct sockaddr_in *) &ss)->sin_port);
    } else {
      inet_ntop(AF_INET6, &((struct sockaddr_in6 *) &ss)->sin6_addr, addr, sizeof addr);
      port = ntohs(((struct sockaddr_in6 *) &ss)->sin6_port);
    }
  }
  free(l->spec);
  if (asprintf(&l->spec, ss.ss_family == AF_INET6 ? "tcp:[%s]:%d" : "tcp:%s:%d", addr, port) < 0)
    l->spec = NULL;
  l->fd = fd;
  return 0;
}

static char *
read_file(const char *path, berth_error **err)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO is refused below, never waited on */
  FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
  if (f == NULL) {
    berth_error_set_errno(err, BERTH_EINVAL, errno, "read %s", path);
    if (fd >= 0)
      close(fd);
    return NULL;
  }
  struct stat sb;
  if (fstat(fileno(f), &sb) < 0 || !S_ISREG(sb.st_mode)) {
    fclose(f);
    berth_error_set(err, BERTH_EINVAL, "read %s: not a regular file", path);
    return NULL;
  }
  berth_buf b;
  berth_buf_init(&b, 1u << 20);
  char chunk[4096];
  size_t n;
  int rc = 0;
  while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
    rc = berth_buf_append(&b, chunk, n);
  fclose(f);
  if (rc < 0 || b.data == NULL) {
    berth_buf_free(&b);
    berth_error_set(err, BERTH_EINVAL, "read %s: empty or larger than 1 MiB", path);
    return NULL;
  }
  return berth_buf_steal(&b);
}

static int
start_listener(listener *l, const char *cert, const char *key, unsigned timeout_s, berth_error **err)
{
  unsigned int flags
      = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
  if (l->tls)
    flags |= MHD_USE_TLS;
  struct MHD_OptionItem opts[] = {
    { MHD_OPTION_EXTERNAL_LOGGER, (intptr_t) mhd_log, l }, /* first: it takes the messages of the options after it */
    { MHD_OPTION_LISTEN_SOCKET, l->fd, NULL },
    { MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t) unescape, NULL },
    { MHD_OPTION_CONNECTION_MEMORY_LIMIT, SRV_CONN_MEMORY, NULL },
    { MHD_OPTION_CONNECTION_TIMEOUT, timeout_s, NULL },
    { MHD_OPTION_CONNECTION_LIMIT, SRV_CONN_LIMIT, NULL },
    { MHD_OPTION_NOTIFY_COMPLETED, (intptr_t) on_completed, NULL },
    { l->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, (void *) cert },
    { l->tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, (void *) key },
    { MHD_OPTION_END, 0, NULL },
  };
  l->starting = true;
  l->start_err[0] = '\0';
  l->d = MHD_start_daemon(flags, 0, NULL, NULL, on_access, l, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
  l->starting = false;
  if (l->d == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "start the HTTP server on %s%s%s%s", l->spec,
                           l->start_err[0] ? ": " : "", l->start_err,
                           l->tls && l->start_err[0] == '\0' ? ": check --tls-cert and --tls-key" : "");
  return 0;
}

/* ---- shutdown ---- */

static volatile sig_atomic_t got_signal;
static volatile sig_atomic_t n_signals; /* a second SIGTERM/SIGINT ends the grace period at once */

static void
on_signal(int sig)
{
  got_signal = sig;
  n_signals++;
}

static bool
is_my_child(int pid)
{
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return false;
  buf[n] = '\0';
  const char *p = strrchr(buf, ')');
  int ppid = 0;
  char state = 0;
  return p && sscanf(p + 1, " %c %d", &state, &ppid) == 2 && ppid == getpid() && state != 'Z';
}

/* Kills the supervisors this server started whose task is not PERFORMING (all of them when all). Returns how many
 * supervisors of this server are still alive. */
static int
kill_supervisors(berth_store *st, bool all)
{
  berth_task **v = NULL;
  size_t n = 0;
  berth_error *err = NULL;
  if (berth_store_task_list_active(st, NULL, &v, &n, &err) < 0) {
    berth_error_free(err);
    return 0;
  }
  int alive = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i]->supervisor_pid <= 0 || !is_my_child(v[i]->supervisor_pid))
      continue;
    if (all || strcmp(v[i]->state, "PERFORMING") != 0) {
      fprintf(stderr, "berth: shutting down: task %s (%s) is interrupted\n", v[i]->id, v[i]->state);
      kill(v[i]->supervisor_pid, SIGKILL);
    } else
      alive++;
  }
  berth_tasks_free(v, n);
  return alive;
}

static void
sweep(berth_store *st)
{
  berth_docker *d = NULL;
  berth_error *err = NULL;
  if (berth_docker_new(NULL, &d, &err) < 0)
    berth_error_clear(&err);
  if (berth_queue_sweep(st, d, &err) < 0) {
    fprintf(stderr, "berth: sweep: %s\n", err->msg);
    berth_error_clear(&err);
  }
  berth_docker_free(d);
}

static void
sleep_ms(long ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  nanosleep(&ts, NULL);
}

/* SIGTERM: no new connections or tasks; PERFORMING tasks get the grace period; the rest are interrupted. */
static void
shutdown_tasks(srv_ctx *srv, berth_store *st, berth_host_runner *host, int64_t grace_ms)
{
  int64_t deadline = berth_now_ms() + grace_ms;
  int alive = kill_supervisors(st, false) + berth_host_interrupt(host, false);
  if (alive > 0)
    fprintf(stderr, "berth: waiting up to %lld s for %d performing task(s) to finish\n", (long long) (grace_ms / 1000),
            alive);
  while (alive > 0 && berth_now_ms() < deadline && n_signals < 2) {
    sleep_ms(100); /* the pacer reaps the supervisors that end (spawner.c) */
    alive = kill_supervisors(st, false) + berth_host_interrupt(host, false);
  }
  kill_supervisors(st, true);
  berth_host_interrupt(host, true); /* their end is recorded as the host leaves (berth_host_stop) */
  srv_spawner_free(srv->spawner);   /* its end takes any supervisor left with it (PR_SET_PDEATHSIG) */
  srv->spawner = NULL;
  sleep_ms(1000); /* the supervisors killed above let go of their tasks' locks, which the sweep looks at */
  sweep(st);
}

static void
say_line(void *ud, const char *line)
{
  (void) ud;
  fprintf(stderr, "berth: %s\n", line);
}

/* A PostgreSQL server that does not answer yet (a host started before its database): wait for it, saying so, up to
 * wait_ms (< 0: as long as it takes). Any other error (a wrong password, a missing database) is the server's at once.
 */
static int
open_store_waiting(const char *home, int64_t wait_ms, berth_store **st, berth_error **err)
{
  int64_t said = 0, until = wait_ms < 0 ? INT64_MAX : berth_now_ms() + wait_ms;
  for (;;) {
    int rc = berth_store_open(home, st, err);
    if (rc == 0 || got_signal || berth_now_ms() >= until || !berth_store_unreachable(home))
      return rc;
    if (berth_now_ms() - said >= 30000) {
      fprintf(stderr, "berth: %s; retrying every 2 s until it answers\n", (*err)->msg);
      said = berth_now_ms();
    }
    berth_error_clear(err);
    for (int i = 0; i < 20 && !got_signal; i++)
      sleep_ms(100);
  }
}

/* A fleet host: this server claims and runs the store's queued tasks (berth/host_loop.h). */
static int
start_host(srv_ctx *srv, const srv_options *o, berth_host_runner **out, char joined[512], berth_error **err)
{
  char hostname[256] = "";
  const char *name = o->host;
  if (name == NULL) {
    if (gethostname(hostname, sizeof hostname - 1) < 0 || berth_stack_validate_name(hostname, NULL) < 0)
      return berth_error_set(err, BERTH_EINVAL, "serve: this machine's hostname is not a valid host name: use --host");
    name = hostname;
  }
  berth_config cfg;
  berth_error *ce = NULL;
  int slots = o->slots;
  if (slots <= 0 && berth_config_load(srv->home, &cfg, &ce) == 0) {
    slots = berth_max_parallel_tasks(&cfg);
    berth_config_clear(&cfg);
  }
  berth_error_free(ce);
  berth_strv pools = { (char **) o->pools, o->n_pools };
  berth_host_opts ho = { .home = srv->home,
                         .name = name,
                         .pools = &pools,
                         .slots = slots > 0 ? slots : BERTH_DEFAULT_MAX_PARALLEL,
                         .lease_ms = o->lease_ms,
                         .execute = !o->no_execute,
                         .drained = o->drained,
                         .say = say_line };
  int rc = berth_host_start(&ho, out, err);
  /* said once the listeners are up too (a bad address is then the only line) */
  size_t n = (size_t) snprintf(joined, 512, "berth: host %s joined the fleet (%s; pools", name,
                               o->no_execute                                 ? "API only"
                               : rc == 0 && berth_host_started_drained(*out) ? "drained: claims nothing until undrained"
                                                                             : "claims tasks");
  for (size_t i = 0; rc == 0 && i < (o->n_pools ? o->n_pools : 1) && n < 512; i++)
    n += (size_t) snprintf(joined + n, 512 - n, " %s", o->n_pools ? o->pools[i] : BERTH_DEFAULT_POOL);
  if (n < 512)
    snprintf(joined + n, 512 - n, "; %d slot(s))", ho.slots);
  return rc;
}

int
srv_run(const srv_options *o, berth_error **err)
{
  srv_ctx srv = { 0 };
  listener *ls = NULL;
  berth_host_runner *host = NULL;
  size_t nl = 0;
  char *cert = NULL, *key = NULL;
  berth_store *st = NULL;
  int rc = 0;
  berth_cron_prepare(); /* before any thread: schedules in a zone switch TZ (background.c) */
  srv.home = strdup(o->home);
  srv.supervisor_argv = o->supervisor_argv;
  atomic_init(&srv.stopping, false);
  pthread_mutex_init(&srv.idle_mu, NULL);
  pthread_key_create(&srv.store_key, release_thread_store);
  if ((o->tls_cert == NULL) != (o->tls_key == NULL))
    rc = berth_error_set(err, BERTH_EINVAL, "--tls-cert and --tls-key go together");
  if (rc == 0 && o->tls_cert) {
    if ((cert = read_file(o->tls_cert, err)) == NULL || (key = read_file(o->tls_key, err)) == NULL)
      rc = BERTH_EINVAL;
  }
  if (rc == 0)
    rc = open_store_waiting(o->home, o->store_wait_ms, &st, err);
  bool fleet = rc == 0 && berth_store_is_shared(st);
  if (rc == 0 && !fleet
      && (o->n_pools > 0 || o->no_execute || o->no_listen || o->lease_ms > 0 || o->slots > 0 || o->drained))
    rc = berth_error_set(err, BERTH_EINVAL,
                         "serve: --pool, --slots, --drained, --no-execute, --no-listen and --lease need a PostgreSQL "
                         "store (a "
                         "SQLite store is single-host: max_parallel_tasks sets how many tasks run at once; see "
                         "docs/fleet.md)");
  if (rc == 0 && o->no_listen && o->n_listen > 0)
    rc = berth_error_set(err, BERTH_EINVAL, "serve: --no-listen and --listen exclude each other");
  if (rc == 0 && o->no_execute && (o->no_listen || o->n_listen == 0))
    rc = berth_error_set(err, BERTH_EINVAL, "serve: --no-execute needs a --listen address (the host would do nothing)");
  if (rc == 0)
    rc = berth_apikey_cache_new(&srv.keys, err);
  if (rc == 0)
    rc = srv_sessions_new(&srv.sessions, err);
  if (rc == 0) {
    /* restart recovery, as in local mode: tasks whose supervisor died with a previous server are failed */
    sweep(st);
    rc = srv_spawner_start(o->home, o->supervisor_argv, &srv.spawner, err);
  }
  srv_background *bg = NULL;
  if (rc == 0)
    rc = srv_background_start(&srv, &bg, err);
  char joined[512] = "";
  if (rc == 0 && fleet)
    rc = start_host(&srv, o, &host, joined, err);
  /* on PostgreSQL no --listen makes an execute-only host */
  size_t n_api = fleet && (o->no_listen || o->n_listen == 0) ? 0 : o->n_listen ? o->n_listen : 1;
  size_t want = n_api + (o->metrics_listen ? 1 : 0);
  ls = calloc(want, sizeof *ls);
  for (size_t i = 0; rc == 0 && i < want; i++) {
    char *def = NULL;
    bool metrics = o->metrics_listen != NULL && i == want - 1;
    const char *spec = metrics ? o->metrics_listen : o->n_listen ? o->listen[i] : NULL;
    if (spec == NULL && asprintf(&def, "unix:%s/berth.sock", o->home) >= 0)
      spec = def;
    listener *l = &ls[nl++];
    l->srv = &srv;
    l->fd = -1;
    l->metrics_only = metrics;
    l->spec = strdup(spec);
    if (strncmp(spec, "unix:", 5) == 0)
      rc = listen_unix(l, spec + 5, err);
    else if (strncmp(spec, "tcp:", 4) == 0) {
      rc = listen_tcp(l, spec + 4, err);
      l->tls = cert != NULL;
    } else
      rc = berth_error_set(err, BERTH_EINVAL, "listen address `%s`: use unix:PATH or tcp:HOST:PORT", spec);
    free(def);
    if (rc == 0)
      rc = start_listener(
          l, cert, key,
          o->client_timeout_ms > 0 ? (unsigned) ((o->client_timeout_ms + 999) / 1000) : SRV_CONN_TIMEOUT_S, err);
  }
  if (rc == 0 && host != NULL)
    fprintf(stderr, "%s\n", joined);
  for (size_t i = 0; rc == 0 && i < nl; i++) /* said once every address is up: a bad one is the only line */
    fprintf(stderr, "berth: listening on %s%s%s\n", ls[i].spec, ls[i].tls ? " (TLS)" : "",
            ls[i].metrics_only ? " (GET /metrics only, no key)" : "");
  if (rc == 0) {
    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGHUP, SIG_IGN);
    while (!got_signal)
      sleep_ms(100);
    fprintf(stderr, "berth: %s: shutting down (grace %lld s)\n", got_signal == SIGINT ? "SIGINT" : "SIGTERM",
            (long long) (o->grace_ms / 1000));
    berth_host_stop_claiming(host); /* queued work is left to the other hosts */
    atomic_store(&srv.stopping, true);
    for (size_t i = 0; i < nl; i++) {
      if (ls[i].d) {
        MHD_socket s = MHD_quiesce_daemon(ls[i].d);
        if (s != MHD_INVALID_SOCKET)
          close(s);
        ls[i].fd = -1;
      }
      if (ls[i].unix_path)
        unlink(ls[i].unix_path);
    }
    srv_background_stop(bg); /* no new fires; deliveries not sent stay in the store for the next server */
    bg = NULL;
    srv_spawner_close(srv.spawner);
    shutdown_tasks(&srv, st, host, o->grace_ms);
  }
  berth_host_stop(host);
  for (size_t i = 0; i < nl; i++) {
    if (ls[i].d)
      MHD_stop_daemon(ls[i].d);
    else if (ls[i].fd >= 0)
      close(ls[i].fd);
    if (ls[i].unix_path && rc < 0) /* ours (a shutdown removed it already, when it stopped accepting) */
      unlink(ls[i].unix_path);
    free(ls[i].unix_path);
    free(ls[i].spec);
  }
  free(ls);
  srv_background_stop(bg);
  srv_spawner_free(srv.spawner);
  berth_apikey_cache_free(srv.keys);
  srv_sessions_free(srv.sessions);
  berth_store_close(st);
  close_idle_stores(&srv); /* the connections' threads have ended (MHD_stop_daemon joins them) */
  pthread_key_delete(srv.store_key);
  pthread_mutex_destroy(&srv.idle_mu);
  free(srv.home);
  if (key)
    explicit_bzero(key, strlen(key));
  free(key);
  free(cert);
  return rc;
}
