/* berth serve: the HTTP API front end (internal interfaces between the server's files).
 *
 * Threads: libmicrohttpd runs one thread per connection; each such thread opens its own store handle on first use
 * (srv_store), closed when the thread ends. Task submissions are handed to long-lived spawner threads, because
 * a supervisor started with die_with_parent gets PR_SET_PDEATHSIG, which fires when the *thread* that forked it
 * ends: a connection thread would take its supervisors down with it when the client disconnects. */
#ifndef BERTH_SERVER_H
#define BERTH_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "berth/task_log.h"
#include "berth/role.h"
#include "berth/apikey.h"
#include "berth/error.h"
#include "berth/store.h"
#include "berth/task_submit.h"

/* ---- limits (hard caps fixed here; requests beyond them get a 4xx) ---- */
#define SRV_BODY_MAX (2u << 20)     /* request body; a policy text may be 1 MiB */
#define SRV_DRAIN_MAX (16u << 20)   /* a too large body is read and dropped up to this, then the connection closed */
#define SRV_CONN_MEMORY (64u << 10) /* request line + headers per connection (MHD answers 414/431 above) */
#define SRV_CONN_TIMEOUT_S 30       /* idle connection (slow client) timeout */
#define SRV_REQUEST_MAX_MS 60000    /* a whole request body must arrive within this */
#define SRV_CONN_LIMIT 512          /* concurrent connections per listener */
#define SRV_MAX_SEGMENTS 8          /* path segments after /v1 */
#define SRV_SEGMENT_MAX 256         /* bytes in one path segment */
#define SRV_QUERY_VALUE_MAX 1024    /* bytes in one query value */

/* ---- roles ---- */
enum {
  SRV_ROLE_NONE = BERTH_ROLE_NONE,
  SRV_ROLE_READER = BERTH_ROLE_READER,
  SRV_ROLE_WRITER = BERTH_ROLE_WRITER,
  SRV_ROLE_ADMIN = BERTH_ROLE_ADMIN
};
int srv_role_level(const char *role);

/* ---- routing (http_route.c; no libmicrohttpd in it, so it is fuzzed alone) ---- */
struct srv_req;
struct srv_resp;
typedef int (*srv_handler)(struct srv_req *r, struct srv_resp *out);
typedef struct srv_route {
  const char *method;
  const char *pattern; /* "v1/stacks/STAR/lock": path segments; a `*` segment captures one */
  int min_role;        /* SRV_ROLE_NONE: no key needed */
  srv_handler fn;      /* NULL: the method is not allowed on the path (which the `*` routes after it would take) */
  /* may be NULL: sends the handler's first reads ahead, with the key check (nothing read is shown unless it passes) */
  void (*ahead)(struct srv_req *r);
} srv_route;

/* Splits a decoded path into segments. Returns the count, or -1 when the path does not start with "/", has an
 * empty or oversized segment, more than max segments, or a control byte. A single trailing "/" is allowed. */
int srv_path_split(const char *path, char segs[][SRV_SEGMENT_MAX + 1], size_t max);
/* Finds the route for method + segments. Returns the route, or NULL with *path_known set when some route has the
 * path with another method (405), else 404. args[] gets the captured segments (pointers into segs). */
const srv_route *srv_route_match(const srv_route *table, size_t n, const char *method, char segs[][SRV_SEGMENT_MAX + 1],
                                 size_t nseg, const char **args, size_t max_args, bool *path_known);

/* ---- request input (api_input.c; no libmicrohttpd) ---- */
/* Parses a body that must be one JSON object (a 400 message otherwise). *out is the caller's. */
int srv_json_object(const char *body, size_t len, cJSON **out, berth_error **err);
/* Checks that every key of o is in allowed (NULL-terminated): BERTH_EINVAL "unknown field `x`". */
int srv_json_only(const cJSON *o, const char *const *allowed, const char *what, berth_error **err);
/* Optional typed fields: absent -> 0 and *out untouched; wrong type -> BERTH_EINVAL naming the field. */
int srv_json_string(const cJSON *o, const char *key, bool required, const char **out, berth_error **err);
int srv_json_bool(const cJSON *o, const char *key, bool *out, berth_error **err);

typedef struct srv_task_request {
  const char *command; /* points into the JSON */
  bool skip_init;
  berth_kv *env;
  size_t n_env;
  berth_kv *secret_env;
  size_t n_secret_env;
} srv_task_request;
/* {"command": "...", "skip_init": false, "env": {...}, "secret_env": {...}}; anything else is a 400. */
int srv_task_request_parse(const cJSON *o, srv_task_request *out, berth_error **err);
void srv_task_request_clear(srv_task_request *r);
/* POST /v1/tasks/{id}/retry: {"secret_env": {...}} (optional; o may be NULL for an empty body). */
int srv_retry_request_parse(const cJSON *o, srv_task_request *out, berth_error **err);

/* Query values: decoded by libmicrohttpd; these check them. */
int srv_parse_limit(const char *v, int *out, berth_error **err);
bool srv_truthy(const char *v); /* "1", "true", "yes" */

/* ---- browser sessions (session.c): the web UI's sign-in ---- */
#define SRV_SESSION_MAX 4096                 /* sessions held at once */
#define SRV_SESSION_TTL_MS (8 * 3600 * 1000) /* a session (and its cookie) lasts 8 hours */
#define SRV_SESSION_TOKEN_LEN 43             /* base64url of 32 random bytes: the session id and the CSRF token */
#define SRV_SESSION_COOKIE "berth_session"
#define SRV_SESSION_COOKIE_TLS "__Host-berth_session" /* under TLS: Secure, host-only, Path=/ enforced by browsers */
typedef struct srv_sessions srv_sessions;
int srv_sessions_new(srv_sessions **out, berth_error **err);
void srv_sessions_free(srv_sessions *ss); /* wipes the keys; accepts NULL */
/* Opens a session for an API key already verified: fills the new session id and CSRF token, and its expiry. */
int srv_session_create(srv_sessions *ss, const char *key, char id[SRV_SESSION_TOKEN_LEN + 1],
                       char csrf[SRV_SESSION_TOKEN_LEN + 1], int64_t *expires, berth_error **err);
/* The live session with this id: 0 with *key (a copy the caller wipes and frees), its CSRF token and expiry
 * (expires may be NULL); -1 when there is none (unknown, ended or expired). */
int srv_session_get(srv_sessions *ss, const char *id, char **key, char csrf[SRV_SESSION_TOKEN_LEN + 1],
                    int64_t *expires);
void srv_session_end(srv_sessions *ss, const char *id);
/* Constant-time check of a presented X-CSRF-Token against the session's. */
bool srv_csrf_ok(const char *presented, const char *csrf);

/* ---- the server context ---- */
typedef struct srv_spawner srv_spawner;

/* Store handles a connection's thread leaves for the next connection's (its database connection, with its prepared
 * statements, outlives the HTTP connection: a client that connects per request, as the CLI and curl do, would
 * otherwise pay a new PostgreSQL session, about 5 ms, on every request). Few, so that a fleet's hosts keep few idle
 * sessions on the database. */
#define SRV_IDLE_STORES 4

typedef struct srv_ctx {
  char *home;
  const char *const *supervisor_argv; /* how to start a task's supervisor (from the program's main) */
  berth_apikey_cache *keys;
  pthread_key_t store_key; /* the thread's store handle, left for the next thread by the key's destructor */
  pthread_mutex_t idle_mu;
  berth_store *idle[SRV_IDLE_STORES];
  size_t n_idle;
  bool idle_closed; /* the server is ending: a thread's store is closed, not kept */
  srv_spawner *spawner;
  srv_sessions *sessions;
  atomic_bool stopping;         /* SIGTERM seen: no new work, followers end */
  atomic_ulong internal_errors; /* requests answered 5xx: the store or the disk failed (a metric) */
} srv_ctx;

/* The calling thread's store handle (on first use, one an ended thread left, or a new one). NULL with *err on
 * failure. */
berth_store *srv_store(srv_ctx *s, berth_error **err);

/* ---- one request, as the handlers see it ---- */
typedef struct srv_req {
  srv_ctx *srv;
  berth_store *st;
  const char *method;
  const char *args[4];     /* captured path segments */
  const berth_apikey *key; /* NULL only on routes with min_role NONE */
  int role;                /* SRV_ROLE_* of key */
  const char *body;
  size_t body_len;
  void *conn; /* struct MHD_Connection *, for query values */
  int conn_fd;
  bool tls;                             /* the listener speaks HTTPS */
  const char *session;                  /* the session id when authenticated by its cookie, else NULL */
  char csrf[SRV_SESSION_TOKEN_LEN + 1]; /* its CSRF token */
  int64_t session_expires;
  berth_task_ahead *task_ahead; /* the route's reads sent ahead (srv_route.ahead), freed with the request */
} srv_req;

/* A streamed (chunked) body: the HTTP layer calls read until it returns <0 (-1 end, -2 error), then free. read
 * blocks (in the connection's own thread) while there is nothing new. */
typedef struct srv_stream_ops {
  ssize_t (*read)(void *stream, char *buf, size_t max);
  void (*free)(void *stream);
} srv_stream_ops;

typedef struct srv_resp {
  int status;
  cJSON *json;    /* the body, owned; NULL with a stream */
  char *location; /* optional Location header, owned */
  void *stream;   /* a streamed body, owned (freed with stream_ops->free) */
  const srv_stream_ops *stream_ops;
  const char *content_type;   /* static; NULL = application/json */
  const char *const *headers; /* static extra headers: name, value, ..., NULL */
  char *set_cookie;           /* optional Set-Cookie header, owned */
  char *text;                 /* a text body instead of json (metrics), owned */
} srv_resp;

/* Query value by name (NULL when absent). */
const char *srv_query(srv_req *r, const char *name);
/* Query parameter name as a yes/no (absent: no); BERTH_EINVAL naming it for anything else than 1/0, true/false,
 * yes/no. */
int srv_query_bool(srv_req *r, const char *name, bool *out, berth_error **err);
/* Request header by name (NULL when absent). */
const char *srv_header(srv_req *r, const char *name);
/* Fills out with the error body for err (status from the one table) and frees err. Returns 0. */
int srv_fail(srv_resp *out, berth_error *err);
/* An error with an explicit HTTP status (for HTTP-level errors: 401, 404 route, 405, 413 ...). Returns 0. */
int srv_fail_status(srv_resp *out, int status, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* 200 with j (consumed). Returns 0. */
int srv_ok(srv_resp *out, int status, cJSON *j);
/* BERTH_EDENIED when the key may not act on stack. */
int srv_check_stack(srv_req *r, const char *stack, berth_error **err);
/* The task r->args[0] names (an id or a unique prefix), when the key may act on its stack. *t is the caller's. */
int srv_task_get_scoped(srv_req *r, berth_task **t, berth_error **err);
/* Appends an audit record attributed to the key, outcome "ok" (e NULL), "denied: ..." or "failed: ..." (best
 * effort: a failure to record is logged on stderr, never fatal). */
void srv_audit(srv_req *r, const char *action, const char *target, const cJSON *args, const berth_error *e);

/* ---- handlers ---- */
int api_root(srv_req *r, srv_resp *out);
int api_doctor(srv_req *r, srv_resp *out);
int api_stack_list(srv_req *r, srv_resp *out);
int api_stack_create(srv_req *r, srv_resp *out);
int api_stack_get(srv_req *r, srv_resp *out);
int api_stack_patch(srv_req *r, srv_resp *out);
int api_stack_delete(srv_req *r, srv_resp *out);
int api_stack_state(srv_req *r, srv_resp *out);
int api_stack_lock(srv_req *r, srv_resp *out);
int api_stack_unlock(srv_req *r, srv_resp *out);
int api_task_create(srv_req *r, srv_resp *out);
int api_task_list(srv_req *r, srv_resp *out);
int api_task_get(srv_req *r, srv_resp *out);
void api_task_get_ahead(srv_req *r);
int api_task_cancel(srv_req *r, srv_resp *out);
int api_task_prune(srv_req *r, srv_resp *out);
int api_task_retry(srv_req *r, srv_resp *out);
int api_host_list(srv_req *r, srv_resp *out);
int api_host_get(srv_req *r, srv_resp *out);
int api_host_drain(srv_req *r, srv_resp *out);
int api_host_remove(srv_req *r, srv_resp *out);
int api_host_undrain(srv_req *r, srv_resp *out);
int api_task_logs(srv_req *r, srv_resp *out);
int api_image_rules(srv_req *r, srv_resp *out);
int api_image_rule_add(srv_req *r, srv_resp *out);
int api_image_rule_remove(srv_req *r, srv_resp *out);
int api_image_check(srv_req *r, srv_resp *out);
int api_policy_list(srv_req *r, srv_resp *out);
int api_policy_add(srv_req *r, srv_resp *out);
int api_policy_remove(srv_req *r, srv_resp *out);
int api_policy_test(srv_req *r, srv_resp *out);
int api_audit(srv_req *r, srv_resp *out);
int api_audit_verify(srv_req *r, srv_resp *out);
int api_key_list(srv_req *r, srv_resp *out);
int api_key_create(srv_req *r, srv_resp *out);
int api_key_revoke(srv_req *r, srv_resp *out);
int api_oidc_discovery(srv_req *r, srv_resp *out);
int api_oidc_jwks(srv_req *r, srv_resp *out);
int api_oidc_rotate(srv_req *r, srv_resp *out);
int api_metrics(srv_req *r, srv_resp *out);
int api_schedule_list(srv_req *r, srv_resp *out);
int api_schedule_create(srv_req *r, srv_resp *out);
int api_schedule_get(srv_req *r, srv_resp *out);
int api_schedule_pause(srv_req *r, srv_resp *out);
int api_schedule_resume(srv_req *r, srv_resp *out);
int api_schedule_delete(srv_req *r, srv_resp *out);
int api_webhook_list(srv_req *r, srv_resp *out);
int api_webhook_create(srv_req *r, srv_resp *out);
int api_webhook_delete(srv_req *r, srv_resp *out);
int api_webhook_deliveries(srv_req *r, srv_resp *out);
int api_webhook_redeliver(srv_req *r, srv_resp *out);

int api_task_events(srv_req *r, srv_resp *out);
int api_session_create(srv_req *r, srv_resp *out);
int api_session_get(srv_req *r, srv_resp *out);
int api_session_delete(srv_req *r, srv_resp *out);

/* ---- following a task's log file (api_logs.c): the log stream and the event stream (api_events.c) ---- */
typedef struct srv_follow {
  srv_ctx *srv;
  char *task_id;
  berth_log_reader *log; /* the task's record stream (a file, or chunks in PostgreSQL); opened at the first read */
  int conn_fd;
  int64_t offset;     /* where the first read starts */
  int64_t last_check; /* when the task was last read from the store */
  int checks;         /* how many times: every LIVENESS_CHECKS-th also checks that its supervisor lives */
  bool saw_end;       /* terminal state seen: one last read, then end */
  berth_task *task;   /* as of the last check (with history); owned */
} srv_follow;
/* Sets f up to follow the log of task t (which f copies) from offset. Returns 0 or BERTH_EINTERNAL. */
int srv_follow_init(srv_follow *f, srv_req *r, const berth_task *t, int64_t offset, berth_error **err);
void srv_follow_clear(srv_follow *f);
/* Reads what is written now: >0 bytes, 0 at the end of what is written (or no file yet), -2 error. */
ssize_t srv_follow_read(srv_follow *f, char *buf, size_t max);
/* At the end of what is written: waits (at most ~50 ms) for the log to grow, re-reading the task from the store
 * every 100 ms (f->task). Returns 1: read again; 0: the task has ended and the file was read to its end after that
 * (or the server is stopping); -2: the client has gone. */
int srv_follow_wait(srv_follow *f);

/* ---- task output in events (sse_text.c) ---- */
/* How many of p[0..n) to send when more bytes follow: n, less a UTF-8 character cut at the end. */
size_t srv_utf8_cut(const unsigned char *p, size_t n);
/* Writes p[0..n) as the inside of a JSON string into out: control bytes (ESC included) as \u00XX, `"` and `\`
 * escaped, bytes that are not UTF-8 as U+FFFD; never a CR or LF. Returns the length, or -1 when cap is too small
 * (at most 6 * n is needed). */
ssize_t srv_json_text(char *out, size_t cap, const unsigned char *p, size_t n);

/* ---- the web UI (ui_static.c; the files are embedded at build time by cmake/embed_ui.cmake) ---- */
typedef struct srv_asset {
  const char *path; /* "/" for index.html, else "/name.<hash>.ext" */
  const char *content_type;
  const unsigned char *data;
  size_t len;
  const unsigned char *gz; /* gzip -n -9 of data, NULL when not smaller */
  size_t gz_len;
  const char *etag, *gz_etag; /* strong: "<sha-256 prefix>" and "<prefix>-gz" */
  bool immutable;             /* a content-hashed name: cached for a year */
} srv_asset;
extern const srv_asset srv_ui_assets[];
extern const size_t srv_ui_n_assets;
/* The asset for a GET/HEAD of url, or NULL (then the request goes to the API). "/" is the UI only for a client that
 * accepts text/html (a browser); others get the API's identity document there. */
const srv_asset *srv_ui_find(const char *url, const char *accept);
/* Does an If-None-Match header value match etag (weak comparison, as RFC 9110 says for If-None-Match)? */
bool srv_etag_match(const char *if_none_match, const char *etag);
/* Does an Accept-Encoding header value accept gzip (q > 0)? */
bool srv_accepts_gzip(const char *accept_encoding);

/* ---- the server (server.c) ---- */
typedef struct srv_options {
  const char *home;
  const char *const *listen;  /* specs; none = unix:$BERTH_HOME/berth.sock */
  const char *metrics_listen; /* an extra tcp:/unix: address serving only GET /metrics, without a key; NULL = none */
  size_t n_listen;
  const char *tls_cert, *tls_key;     /* PEM files; both or neither */
  int64_t grace_ms;                   /* SIGTERM: how long PERFORMING tasks may take to finish */
  int64_t client_timeout_ms;          /* idle connection timeout (0 = SRV_CONN_TIMEOUT_S) */
  const char *const *supervisor_argv; /* berth_submit.supervisor_argv for the tasks this server submits */
  /* a fleet host (PostgreSQL store): refused on SQLite */
  const char *host;         /* NULL: the machine's hostname */
  const char *const *pools; /* n_pools names; none: default */
  size_t n_pools;
  int slots;             /* 0: max_parallel_tasks */
  int64_t lease_ms;      /* 0: BERTH_DEFAULT_LEASE_MS */
  int64_t store_wait_ms; /* how long to wait at start for a PostgreSQL server that does not answer (< 0: no end) */
  bool no_execute, no_listen;
  bool drained; /* start drained (kept, as an admin's drain) */
} srv_options;
/* Runs the server until SIGTERM/SIGINT. Returns 0 after a clean shutdown. */
int srv_run(const srv_options *o, berth_error **err);
/* `berth serve [OPTIONS]` (serve_main.c): argv[0] is "serve". Parses the options, runs the server, and returns the
 * process exit status. */
int srv_main(int argc, char **argv, const char *const *supervisor_argv);

/* ---- background work of the server (background.c): the schedule ticker and the webhook deliverers ---- */
typedef struct srv_background srv_background;
/* Starts the threads; each opens its own store handle. */
int srv_background_start(srv_ctx *srv, srv_background **out, berth_error **err);
/* Stops and joins them (a delivery in flight ends within its request timeout). Accepts NULL. */
void srv_background_stop(srv_background *bg);

/* ---- the spawner thread (spawner.c) ---- */
/* supervisor_argv: what starts a supervisor (the pacer's, on a SQLite store); NULL starts none. */
int srv_spawner_start(const char *home, const char *const *supervisor_argv, srv_spawner **out, berth_error **err);
/* Runs berth_task_submit in the spawner thread and waits for it. BERTH_EBUSY once the spawner is closed. */
int srv_spawner_submit(srv_spawner *sp, const berth_submit *req, berth_task **out, berth_error **err);
/* Refuses new submissions (the thread stays: its children's lives are tied to it). */
void srv_spawner_close(srv_spawner *sp);
/* Ends the thread (its remaining supervisors get SIGKILL from the kernel) and frees. Accepts NULL. */
void srv_spawner_free(srv_spawner *sp);

#endif
