/* Exec: create, start (streamed and demultiplexed), inspect. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/cleanup.h"
#include "docker_http.h"

static cJSON *
str_array(const char *const *v)
{
  cJSON *a = cJSON_CreateArray();
  for (size_t i = 0; v != NULL && v[i] != NULL; i++)
    cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
  return a;
}

int
berth_docker_exec_create(berth_docker *d, const char *container, const char *const *cmd, const char *const *env,
                         const char *workdir, const char *user, char **exec_id, berth_error **err)
{
  int rc = docker_negotiate(d, err);
  if (rc < 0)
    return rc;
  cJSON *b = cJSON_CreateObject();
  cJSON_AddBoolToObject(b, "AttachStdin", 0);
  cJSON_AddBoolToObject(b, "AttachStdout", 1);
  cJSON_AddBoolToObject(b, "AttachStderr", 1);
  cJSON_AddBoolToObject(b, "Tty", 0);
  cJSON_AddItemToObject(b, "Cmd", str_array(cmd));
  if (env != NULL)
    cJSON_AddItemToObject(b, "Env", str_array(env));
  if (workdir != NULL)
    cJSON_AddStringToObject(b, "WorkingDir", workdir);
  if (user != NULL)
    cJSON_AddStringToObject(b, "User", user);
  cJSON_AddBoolToObject(b, "Privileged", 0);
  cleanup_free char *json = cJSON_PrintUnformatted(b);
  cJSON_Delete(b);
  cleanup_free char *path = NULL;
  if (json == NULL || asprintf(&path, "/containers/%s/exec", container) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  docker_req rq = { .method = "POST", .path = path, .body = json, .body_len = strlen(json) };
  docker_resp rs;
  docker_resp_init(&rs);
  rc = docker_perform(d, &rq, &rs, err);
  if (rc == 0 && rs.status != 201) {
    rc = docker_status_error(&rs, err, "start a command in the container");
    if (rs.status == 404 || rs.status == 409) {
      berth_error_clear(err);
      rc = berth_error_set(err, BERTH_EDOCKER, "container %.12s is gone or no longer running", container);
    }
  }
  cJSON *j = NULL;
  if (rc == 0)
    rc = docker_resp_json(&rs, &j, err, "create an exec");
  if (rc == 0) {
    cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "Id");
    if (cJSON_IsString(id))
      *exec_id = strdup(id->valuestring);
    else
      rc = berth_error_set(err, BERTH_EDOCKER, "create an exec: the daemon's answer has no Id");
  }
  cJSON_Delete(j);
  docker_resp_clear(&rs);
  return rc;
}

typedef struct exec_stream {
  berth_demux demux;
  berth_stream_sink sink;
  void *sink_userdata;
  berth_error *err;
  bool saw_bytes;
} exec_stream;

static int
exec_on_bytes(void *ud, const char *data, size_t len)
{
  exec_stream *es = ud;
  es->saw_bytes = true;
  if (berth_demux_feed(&es->demux, data, len, es->sink, es->sink_userdata, &es->err) < 0)
    return -1;
  return 0;
}

/* The API version settled and the start's path made: 0, or < 0 with *err. */
static int
start_path(berth_docker *d, const char *exec_id, char **path, berth_error **err)
{
  int rc = docker_negotiate(d, err);
  if (rc < 0)
    return rc;
  if (asprintf(path, "/exec/%s/start", exec_id) < 0) {
    *path = NULL;
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  return 0;
}

int
berth_docker_exec_start(berth_docker *d, const char *exec_id, berth_stream_sink sink, void *sink_userdata,
                        berth_exec_tick_fn tick, void *tick_userdata, berth_error **err)
{
  cleanup_free char *path = NULL;
  int rc = start_path(d, exec_id, &path, err);
  if (rc < 0)
    return rc;
  static const char body[] = "{\"Detach\":false,\"Tty\":false}";
  exec_stream es = { .sink = sink, .sink_userdata = sink_userdata };
  berth_demux_init(&es.demux, 0);
  /* no Upgrade header: the daemon answers 200 and closes the connection at the end (framing decided by Tty) */
  docker_req rq = { .method = "POST",
                    .path = path,
                    .body = body,
                    .body_len = sizeof body - 1,
                    .stream = true,
                    .sink = exec_on_bytes,
                    .sink_userdata = &es,
                    .tick = tick,
                    .tick_userdata = tick_userdata };
  docker_resp rs;
  docker_resp_init(&rs);
  rc = docker_perform(d, &rq, &rs, err);
  if (es.err != NULL) {
    berth_error_clear(err);
    rc = berth_error_set(err, es.err->code, "%s", es.err->msg);
    berth_error_free(es.err);
  } else if (rc == 0 && !rs.aborted && (rs.status < 200 || rs.status >= 300)) {
    rc = docker_status_error(&rs, err, "start the exec");
  } else if (rc == 0 && !rs.aborted) {
    rc = berth_demux_finish(&es.demux, err);
  }
  if (rc == 0 && rs.aborted)
    rc = 1; /* aborted by tick */
  docker_resp_clear(&rs);
  return rc;
}

int
berth_docker_exec_start_detached(berth_docker *d, const char *exec_id, berth_error **err)
{
  cleanup_free char *path = NULL;
  int rc = start_path(d, exec_id, &path, err);
  if (rc < 0)
    return rc;
  static const char body[] = "{\"Detach\":true,\"Tty\":false}";
  docker_req rq = { .method = "POST", .path = path, .body = body, .body_len = sizeof body - 1 };
  docker_resp rs;
  docker_resp_init(&rs);
  rc = docker_perform(d, &rq, &rs, err);
  if (rc == 0 && (rs.status < 200 || rs.status >= 300))
    rc = docker_status_error(&rs, err, "start the exec");
  docker_resp_clear(&rs);
  return rc;
}

int
berth_docker_exec_inspect(berth_docker *d, const char *exec_id, berth_exec_state *st, berth_error **err)
{
  int rc = docker_negotiate(d, err);
  if (rc < 0)
    return rc;
  cleanup_free char *path = NULL;
  if (asprintf(&path, "/exec/%s/json", exec_id) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  docker_req rq = { .method = "GET", .path = path };
  docker_resp rs;
  docker_resp_init(&rs);
  rc = docker_perform(d, &rq, &rs, err);
  if (rc == 0 && rs.status == 404)
    rc = berth_error_set(err, BERTH_ENOTFOUND, "the exec %.12s is gone (its container was removed)", exec_id);
  else if (rc == 0 && rs.status != 200)
    rc = docker_status_error(&rs, err, "inspect the exec");
  cJSON *j = NULL;
  if (rc == 0)
    rc = docker_resp_json(&rs, &j, err, "inspect the exec");
  if (rc == 0) {
    memset(st, 0, sizeof *st);
    st->running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "Running"));
    cJSON *ec = cJSON_GetObjectItemCaseSensitive(j, "ExitCode");
    st->has_exit_code = cJSON_IsNumber(ec);
    st->exit_code = st->has_exit_code ? ec->valueint : -1;
  }
  cJSON_Delete(j);
  docker_resp_clear(&rs);
  return rc;
}
