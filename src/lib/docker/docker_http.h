/* Private: the HTTP transport under the Docker client. */
#ifndef BERTH_DOCKER_HTTP_H
#define BERTH_DOCKER_HTTP_H

#include <curl/curl.h>

#include "berth/buf.h"
#include "berth/docker.h"

#define DOCKER_BODY_CAP (16u * 1024u * 1024u) /* any buffered response body */
#define DOCKER_ERROR_BODY_CAP (64u * 1024u)   /* error bodies of streaming calls */

struct berth_docker {
  berth_docker_endpoint ep;
  CURL *curl;           /* the reused connection for ordinary calls */
  char api_version[16]; /* negotiated, "" before */
  char min_api[16];     /* daemon's MinAPIVersion when known */
};

typedef struct docker_req {
  const char *method; /* "GET", "POST", "PUT", "DELETE", "HEAD" */
  const char *path;   /* "/containers/json?all=1" (unversioned; the helper adds /vX.Y) */
  bool unversioned;   /* for /_ping */
  bool fresh;         /* on a new connection, closed after (not one the daemon may still serve after it stopped
                       * accepting new ones) */
  const char *body;   /* JSON body or NULL */
  size_t body_len;
  bool stream;           /* own handle, no timeout */
  berth_bytes_sink sink; /* 2xx body goes here instead of being buffered */
  void *sink_userdata;
  berth_producer_fn producer; /* upload body (chunked) */
  void *producer_userdata;
  berth_exec_tick_fn tick; /* abort check while streaming */
  void *tick_userdata;
  const char *extra_header; /* one extra "Name: value" header or NULL */
} docker_req;

typedef struct docker_resp {
  long status;
  berth_buf body;       /* buffered body (capped); for sink requests: only non-2xx bodies */
  char api_version[16]; /* Api-Version response header */
  berth_error *producer_err;
  bool aborted; /* tick asked to stop */
} docker_resp;

void docker_resp_init(docker_resp *rs);
void docker_resp_clear(docker_resp *rs);
/* Performs the request. Returns 0 when an HTTP response arrived (any status), <0 on transport failure with a clear
 * one-line error (daemon unreachable, permission denied, refused, not a socket ...). */
int docker_perform(berth_docker *d, const docker_req *rq, docker_resp *rs, berth_error **err);
/* Sets a one-line error from a non-2xx response: "<what>: <daemon message>" with code from the status. */
int docker_status_error(const docker_resp *rs, berth_error **err, const char *what);
/* Makes sure the API version is negotiated. */
int docker_negotiate(berth_docker *d, berth_error **err);
/* Parses the buffered body as JSON (BERTH_EDOCKER on garbage). */
int docker_resp_json(const docker_resp *rs, cJSON **out, berth_error **err, const char *what);

#endif
