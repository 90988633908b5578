/* HTTP for the command line's HTTP back end (backend_http.c): libcurl over TCP, TLS or a Unix socket; JSON in and out;
 * streamed logs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "berth/buf.h"
#include "berth/parse.h"
#include "client.h"

#define RESPONSE_MAX (64u << 20) /* a JSON answer (a long task list) */
/* A request (not a followed log, which may be quiet for as long as its task is) whose server sends nothing for this
 * long ends with an error; BERTH_HTTP_TIMEOUT sets it. */
#define SILENCE_DEFAULT_S 120

struct client_conn {
  CURL *curl;
  char *base;      /* "http://host:port" (no trailing slash) */
  char *unix_path; /* NULL for TCP */
  char *auth;      /* "Authorization: Bearer KEY" or NULL */
  char *ca;
  long silence_s; /* see SILENCE_DEFAULT_S */
};

int
client_conn_new(client_conn **out, berth_error **err)
{
  const char *url = getenv("BERTH_SERVER");
  if (url == NULL || *url == '\0')
    return berth_error_set(err, BERTH_EINVAL, "no server: set BERTH_SERVER or pass --server URL");
  int64_t silence_ms = SILENCE_DEFAULT_S * 1000;
  const char *t = getenv("BERTH_HTTP_TIMEOUT");
  if (t && *t && (berth_parse_duration_ms(t, &silence_ms, NULL) < 0 || silence_ms < 1000 || silence_ms > 86400000))
    return berth_error_set(err, BERTH_EINVAL, "BERTH_HTTP_TIMEOUT `%.64s` is not a duration from 1s to 1d (e.g. 30s)",
                           t);
  client_conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  c->silence_s = (long) (silence_ms / 1000);
  if (strncmp(url, "unix:", 5) == 0) {
    const char *p = url + 5;
    while (p[0] == '/' && p[1] == '/')
      p++; /* unix:///path and unix:/path */
    c->unix_path = strdup(p);
    c->base = strdup("http://localhost");
  } else if (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0) {
    c->base = strdup(url);
    size_t n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/')
      c->base[--n] = '\0';
  } else {
    free(c);
    return berth_error_set(err, BERTH_EINVAL, "server URL `%.200s%s`: use http://HOST:PORT, https://... or unix:PATH",
                           url, strlen(url) > 200 ? "..." : "");
  }
  const char *key = getenv("BERTH_API_KEY");
  if (key && *key && asprintf(&c->auth, "Authorization: Bearer %s", key) < 0)
    c->auth = NULL;
  const char *ca = getenv("BERTH_SERVER_CA");
  if (ca && *ca)
    c->ca = strdup(ca);
  c->curl = curl_easy_init();
  if (c->curl == NULL || c->base == NULL) {
    client_conn_free(c);
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  *out = c;
  return 0;
}

void
client_conn_free(client_conn *c)
{
  if (c == NULL)
    return;
  if (c->curl)
    curl_easy_cleanup(c->curl);
  free(c->base);
  free(c->unix_path);
  if (c->auth)
    explicit_bzero(c->auth, strlen(c->auth));
  free(c->auth);
  free(c->ca);
  free(c);
}

char *
client_escape(const char *s)
{
  char *e = curl_easy_escape(NULL, s, 0);
  char *r = e ? strdup(e) : NULL;
  curl_free(e);
  return r;
}

static size_t
on_body(char *data, size_t size, size_t n, void *ud)
{
  berth_buf *b = ud;
  return berth_buf_append(b, data, size * n) < 0 ? 0 : size * n;
}

/* Maps the server's error name back to a berth code (the one table, read backwards). */
static int
code_of(const char *name)
{
  for (int code = BERTH_EINVAL; code >= BERTH_EINTERNAL; code--)
    if (name && strcmp(berth_error_name(code), name) == 0)
      return code;
  return BERTH_EINTERNAL;
}

static struct curl_slist *
setup(client_conn *c, const char *method, const char *path, bool json_body)
{
  CURL *h = c->curl;
  curl_easy_reset(h);
  char *url = NULL;
  if (asprintf(&url, "%s%s", c->base, path) < 0)
    return NULL;
  curl_easy_setopt(h, CURLOPT_URL, url);
  free(url);
  if (c->unix_path)
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->unix_path);
  if (c->ca)
    curl_easy_setopt(h, CURLOPT_CAINFO, c->ca);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
  struct curl_slist *hdr = curl_slist_append(NULL, "Accept: application/json");
  if (json_body)
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
  if (c->auth)
    hdr = curl_slist_append(hdr, c->auth);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
  return hdr;
}

static int
transport_error(client_conn *c, CURLcode cc, berth_error **err)
{
  if (cc == CURLE_OPERATION_TIMEDOUT)
    return berth_error_set(err, BERTH_EINTERNAL,
                           "the berth server at %s%s did not answer for %ld s (BERTH_HTTP_TIMEOUT sets how long)",
                           c->unix_path ? "unix:" : c->base, c->unix_path ? c->unix_path : "", c->silence_s);
  return berth_error_set(err, BERTH_EINTERNAL, "cannot talk to the berth server at %s%s%s: %s",
                         c->unix_path ? "unix:" : c->base, c->unix_path ? c->unix_path : "", "",
                         curl_easy_strerror(cc));
}

/* A server that wants a key, and none was given: what to set. */
static int
no_key_error(client_conn *c, berth_error **err)
{
  return berth_error_set(err, BERTH_EDENIED,
                         "the berth server at %s%s needs an API key: set BERTH_API_KEY (an admin makes one with"
                         " 'berth key create NAME --role reader|writer|admin')",
                         c->unix_path ? "unix:" : c->base, c->unix_path ? c->unix_path : "");
}

/* The error of a non-2xx answer. */
static int
answer_error(long status, const berth_buf *b, berth_error **err)
{
  cJSON *j = b->len ? cJSON_ParseWithLength(b->data, b->len) : NULL;
  const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "error"));
  const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "message"));
  int code = name                             ? code_of(name)
             : status == 401 || status == 403 ? BERTH_EDENIED
             : status == 404                  ? BERTH_ENOTFOUND
             : status >= 500                  ? BERTH_EINTERNAL
                                              : BERTH_EINVAL;
  int rc = berth_error_set(err, code, "%s", msg ? msg : "the server answered with an error");
  if (msg == NULL)
    berth_error_wrap(err, "HTTP %ld", status);
  cJSON_Delete(j);
  return rc;
}

int
client_request_raw(client_conn *c, const char *method, const char *path, const char *body, size_t len, cJSON **resp,
                   berth_error **err)
{
  struct curl_slist *hdr = setup(c, method, path, body != NULL);
  berth_buf b;
  berth_buf_init(&b, RESPONSE_MAX);
  curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &b);
  /* less than a byte a second for that long, the wait for the answer's first byte included */
  curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, c->silence_s);
  if (body) {
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) len);
  }
  CURLcode cc = curl_easy_perform(c->curl);
  curl_slist_free_all(hdr);
  long status = 0;
  curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
  int rc = 0;
  if (cc != CURLE_OK)
    rc = transport_error(c, cc, err);
  else if (status == 401 && c->auth == NULL)
    rc = no_key_error(c, err);
  else if (status < 200 || status > 299)
    rc = answer_error(status, &b, err);
  else if (resp) {
    *resp = b.len ? cJSON_ParseWithLength(b.data, b.len) : NULL;
    if (b.len && *resp == NULL)
      rc = berth_error_set(err, BERTH_EINTERNAL, "the server's answer to %s %s is not JSON", method, path);
  }
  berth_buf_free(&b);
  return rc;
}

int
client_request(client_conn *c, const char *method, const char *path, const cJSON *body, cJSON **resp, berth_error **err)
{
  char *text = body ? cJSON_PrintUnformatted(body) : NULL;
  int rc = client_request_raw(c, method, path, text, text ? strlen(text) : 0, resp, err);
  if (text)
    explicit_bzero(text, strlen(text)); /* may hold secret env values */
  free(text);
  return rc;
}

typedef struct stream_ctx {
  client_sink sink;
  void *ud;
  const volatile sig_atomic_t *stop;
  long status;
  berth_buf errbody; /* the body of an error answer */
  CURL *curl;
} stream_ctx;

static size_t
on_stream(char *data, size_t size, size_t n, void *ud)
{
  stream_ctx *s = ud;
  if (s->status == 0)
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->status);
  if (s->status < 200 || s->status > 299)
    return berth_buf_append(&s->errbody, data, size * n) < 0 ? 0 : size * n;
  if (s->sink(s->ud, data, size * n) < 0)
    return 0;
  return size * n;
}

static int
on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
  (void) a;
  (void) b;
  (void) c;
  (void) d;
  stream_ctx *s = ud;
  return s->stop && *s->stop ? 1 : 0;
}

int
client_stream(client_conn *c, const char *path, client_sink sink, void *userdata, const volatile sig_atomic_t *stop,
              berth_error **err)
{
  struct curl_slist *hdr = setup(c, "GET", path, false);
  stream_ctx s = { .sink = sink, .ud = userdata, .stop = stop, .curl = c->curl };
  berth_buf_init(&s.errbody, 1u << 20);
  curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_stream);
  curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, &s);
  CURLcode cc = curl_easy_perform(c->curl);
  curl_slist_free_all(hdr);
  if (s.status == 0)
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &s.status);
  int rc = 0;
  if (cc == CURLE_ABORTED_BY_CALLBACK && stop && *stop)
    rc = 1;
  else if (s.status == 401 && c->auth == NULL)
    rc = no_key_error(c, err);
  else if (s.status != 0 && (s.status < 200 || s.status > 299))
    rc = answer_error(s.status, &s.errbody, err);
  else if (cc != CURLE_OK)
    rc = transport_error(c, cc, err);
  berth_buf_free(&s.errbody);
  return rc;
}
