/* A Docker Engine API client over libcurl.
 *
 * One berth_docker per thread. Ordinary calls reuse one connection (one curl handle); streaming calls (pull, exec
 * start, archive put/get, wait) get a handle of their own and no overall timeout. Every buffered response body is
 * capped. Errors are one line; daemon messages are included as the daemon wrote them, so front ends pass them
 * through the redactor before printing (a daemon error can echo an env value). */
#ifndef BERTH_DOCKER_H
#define BERTH_DOCKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "berth/demux.h"
#include "berth/error.h"

/* The API versions berth speaks: it negotiates min(BERTH_DOCKER_API_MAX, daemon's Api-Version). */
#define BERTH_DOCKER_API_MAX "1.45"
#define BERTH_DOCKER_API_MIN "1.24"

typedef struct berth_docker berth_docker;

/* Where and how to connect, as the docker CLI reads it from the environment (DOCKER_HOST, DOCKER_TLS_VERIFY,
 * DOCKER_TLS, DOCKER_CERT_PATH, DOCKER_API_VERSION). */
typedef struct berth_docker_endpoint {
  char *host;        /* as given, e.g. "unix:///var/run/docker.sock" or "tcp://h:2376" */
  char *socket_path; /* unix sockets: the path; NULL for tcp */
  char *base_url;    /* "http://localhost" for unix, "http(s)://host:port" for tcp */
  bool tls, tls_verify;
  char *ca, *cert, *key; /* TLS files (DOCKER_CERT_PATH or ~/.docker) */
  char *api_version;     /* DOCKER_API_VERSION override, or NULL */
} berth_docker_endpoint;

/* host NULL: DOCKER_HOST, else unix:///var/run/docker.sock. getenv_fn NULL: getenv. */
int berth_docker_endpoint_parse(const char *host, char *(*getenv_fn)(const char *), berth_docker_endpoint *out,
                                berth_error **err);
void berth_docker_endpoint_clear(berth_docker_endpoint *ep);

/* Creates a client (does not connect yet). host NULL = from the environment. */
int berth_docker_new(const char *host, berth_docker **out, berth_error **err);
void berth_docker_free(berth_docker *d);
const char *berth_docker_host(const berth_docker *d);

/* Pings the daemon and negotiates the API version (done lazily by every call; explicit for doctor). */
int berth_docker_ping(berth_docker *d, berth_error **err);
/* Whether the daemon answers /_ping right now, on a new connection (berth_docker_ping negotiates once and then trusts
 * the answer). A daemon that is stopping closes its socket first and stops its containers after: a connection it
 * had accepted before may still be answered then, a new one is refused. */
bool berth_docker_alive(berth_docker *d);
const char *berth_docker_api_version(const berth_docker *d); /* NULL before negotiation */
/* Compares "1.41"-style versions: <0, 0, >0. */
int berth_docker_version_cmp(const char *a, const char *b);

/* GET /version and GET /info; the caller owns *out (cJSON_Delete). */
int berth_docker_version(berth_docker *d, cJSON **out, berth_error **err);
int berth_docker_info(berth_docker *d, cJSON **out, berth_error **err);

/* Images. inspect: BERTH_ENOTFOUND when missing; *out may be NULL to only test presence. */
int berth_docker_image_inspect(berth_docker *d, const char *ref, cJSON **out, berth_error **err);
/* Progress lines of a pull ("Pulling fs layer"...), for display: the layer id (NULL on lines about the whole
 * image) and progressDetail's current and total bytes (-1 when the line has none). */
typedef void (*berth_pull_progress_fn)(void *userdata, const char *status, const char *id, int64_t current,
                                       int64_t total);
/* Pulls ref (always with an explicit tag or digest), auth from ~/.docker/config.json `auths` (DOCKER_CONFIG dir
 * honoured). Errors inside the 200 JSON stream are reported. *transient is set to true when retrying may help
 * (connection trouble, 5xx, timeouts), false for not found / denied / bad reference. */
int berth_docker_image_pull(berth_docker *d, const char *ref, berth_pull_progress_fn progress, void *userdata,
                            bool *transient, berth_error **err);

/* Containers. body is the create JSON (see berth_container_spec in task code); borrowed. */
int berth_docker_container_create(berth_docker *d, const char *name, const cJSON *body, char **id_out,
                                  berth_error **err);
int berth_docker_container_start(berth_docker *d, const char *id, berth_error **err);
/* Blocks until the container is not running; *status_code gets its exit status. Own connection, no timeout. */
int berth_docker_container_wait(berth_docker *d, const char *id, int *status_code, berth_error **err);
int berth_docker_container_kill(berth_docker *d, const char *id, const char *signal, berth_error **err);
/* force + remove anonymous volumes; a container that is already gone is not an error. */
int berth_docker_container_remove(berth_docker *d, const char *id, berth_error **err);

typedef struct berth_container_state {
  char status[32]; /* "created", "running", "exited" ... */
  bool running;
  bool oom_killed;
  int exit_code;
  int pid;
} berth_container_state;
int berth_docker_container_inspect(berth_docker *d, const char *id, berth_container_state *st, cJSON **raw,
                                   berth_error **err);
/* What the daemon's event log says happened to a container between since_s and until_s (Unix seconds, inclusive):
 * out-of-memory kills by the kernel (any process in it, exec children included) and kills through the API (`docker
 * kill`/`stop`, the daemon shutting down), with the last kill's signal number. */
typedef struct berth_container_events {
  int oom;
  int kill;
  int kill_signal;
} berth_container_events;
int berth_docker_container_events(berth_docker *d, const char *id, int64_t since_s, int64_t until_s,
                                  berth_container_events *out, berth_error **err);
/* Containers (all states) carrying every label in labels ("k" or "k=v"); *out is the JSON array. */
int berth_docker_container_list(berth_docker *d, const char *const *labels, size_t n_labels, cJSON **out,
                                berth_error **err);

/* Exec. cmd/env are NULL-terminated; env, workdir, user may be NULL. */
int berth_docker_exec_create(berth_docker *d, const char *container, const char *const *cmd, const char *const *env,
                             const char *workdir, const char *user, char **exec_id, berth_error **err);

/* Called after every read and at least every 10 ms while an exec streams: return non-zero to abort it. */
typedef int (*berth_exec_tick_fn)(void *userdata);
/* Starts an exec (Tty=false) and streams its demultiplexed output to sink until it ends. Blocks; no timeout (use
 * tick to abort: then BERTH_ETIMEOUT-free abort error code is returned as set by the caller via *err, see .c).
 * A container removed mid-stream gives a clear BERTH_EDOCKER error. */
int berth_docker_exec_start(berth_docker *d, const char *exec_id, berth_stream_sink sink, void *sink_userdata,
                            berth_exec_tick_fn tick, void *tick_userdata, berth_error **err);
/* Starts an exec in the background (Detach): returns once the daemon started it; its output is discarded. */
int berth_docker_exec_start_detached(berth_docker *d, const char *exec_id, berth_error **err);
typedef struct berth_exec_state {
  bool running;
  bool has_exit_code;
  int exit_code;
} berth_exec_state;
int berth_docker_exec_inspect(berth_docker *d, const char *exec_id, berth_exec_state *st, berth_error **err);

/* Archive upload: streams a tar produced by `producer` (returns bytes written into buf, 0 at end, <0 on error with
 * *err set) with chunked encoding (no temporary file, no full buffer) to `path` (a directory) in the container. */
typedef ssize_t (*berth_producer_fn)(void *userdata, char *buf, size_t len, berth_error **err);
int berth_docker_archive_put(berth_docker *d, const char *id, const char *path, bool copy_uidgid,
                             berth_producer_fn producer, void *userdata, berth_error **err);
/* Archive download: the tar of `path` goes to sink (return <0 to abort). BERTH_ENOTFOUND when path is missing. */
typedef int (*berth_bytes_sink)(void *userdata, const char *data, size_t len);
int berth_docker_archive_get(berth_docker *d, const char *id, const char *path, berth_bytes_sink sink, void *userdata,
                             berth_error **err);

#endif
