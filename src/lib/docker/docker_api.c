/* Docker Engine API calls: system, images, containers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/cleanup.h"
#include "docker_http.h"

int
berth_docker_new(const char *host, berth_docker **out, berth_error **err)
{
  berth_docker *d = calloc(1, sizeof *d);
  if (d == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  int rc = berth_docker_endpoint_parse(host, NULL, &d->ep, err);
  if (rc < 0) {
    free(d);
    return rc;
  }
  *out = d;
  return 0;
}

void
berth_docker_free(berth_docker *d)
{
  if (d == NULL)
    return;
  if (d->curl)
    curl_easy_cleanup(d->curl);
  berth_docker_endpoint_clear(&d->ep);
  free(d);
}

const char *
berth_docker_host(const berth_docker *d)
{
  return d->ep.host;
}

const char *
berth_docker_api_version(const berth_docker *d)
{
  return d->api_version[0] ? d->api_version : NULL;
}

int
berth_docker_ping(berth_docker *d, berth_error **err)
{
  return docker_negotiate(d, err);
}

bool
berth_docker_alive(berth_docker *d)
{
  docker_req rq = { .method = "GET", .path = "/_ping", .unversioned = true, .fresh = true };
  docker_resp rs;
  docker_resp_init(&rs);
  berth_error *e = NULL;
  bool alive = docker_perform(d, &rq, &rs, &e) == 0 && rs.status == 200;
  berth_error_free(e);
  docker_resp_clear(&rs);
  return alive;
}

/* An ordinary call: negotiates, performs, checks the status against `ok` (or any 2xx when ok == 0), parses JSON
 * into *json when json != NULL. */
static int
simple_call(berth_docker *d, const char *method, const char *path, const char *body, long ok, cJSON **json,
            long *status, berth_error **err, const char *what)
{
  int rc = docker_negotiate(d, err);
  if (rc < 0)
    return rc;
  docker_req rq = { .method = method, .path = path, .body = body, .body_len = body ? strlen(body) : 0 };
  docker_resp rs;
  docker_resp_init(&rs);
  rc = docker_perform(d, &rq, &rs, err);
  if (rc == 0) {
    if (status != NULL)
      *status = rs.status;
    bool good = ok ? rs.status == ok : (rs.status >= 200 && rs.status < 300);
    if (!good)
      rc = docker_status_error(&rs, err, what);
    else if (json != NULL)
      rc = docker_resp_json(&rs, json, err, what);
  }
  docker_resp_clear(&rs);
  return rc;
}

int
berth_docker_version(berth_docker *d, cJSON **out, berth_error **err)
{
  /* unversioned on purpose: negotiation itself needs it, and the daemon's default version always works */
  docker_req rq = { .method = "GET", .path = "/version", .unversioned = true };
  docker_resp rs;
  docker_resp_init(&rs);
  int rc = docker_perform(d, &rq, &rs, err);
  if (rc == 0 && rs.status != 200)
    rc = docker_status_error(&rs, err, "read the Docker daemon version");
  if (rc == 0)
    rc = docker_resp_json(&rs, out, err, "read the Docker daemon version");
  docker_resp_clear(&rs);
  return rc;
}

int
berth_docker_info(berth_docker *d, cJSON **out, berth_error **err)
{
  return simple_call(d, "GET", "/info", NULL, 200, out, NULL, err, "read the Docker daemon info");
}

static char *
escape(const char *s)
{
  char *e = curl_easy_escape(NULL, s, 0);
  char *r = e ? strdup(e) : NULL;
  curl_free(e);
  return r;
}

int
berth_docker_image_inspect(berth_docker *d, const char *ref, cJSON **out, berth_error **err)
{
  cleanup_free char *path = NULL;
  cleanup_free char *what = NULL;
  if (asprintf(&path, "/images/%s/json", ref) < 0 || asprintf(&what, "inspect image `%s`", ref) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  cJSON *j = NULL;
  int rc = simple_call(d, "GET", path, NULL, 200, &j, NULL, err, what);
  if (rc == BERTH_ENOTFOUND) {
    berth_error_clear(err);
    return berth_error_set(err, BERTH_ENOTFOUND, "image `%s` is not present on the Docker host", ref);
  }
  if (rc < 0)
    return rc;
  if (out)
    *out = j;
  else
    cJSON_Delete(j);
  return 0;
}

int
berth_docker_container_create(berth_docker *d, const char *name, const cJSON *body, char **id_out, berth_error **err)
{
  cleanup_free char *json = cJSON_PrintUnformatted(body);
  cleanup_free char *path = NULL;
  cleanup_free char *ename = name ? escape(name) : NULL;
  if (json == NULL
      || (name ? asprintf(&path, "/containers/create?name=%s", ename) : asprintf(&path, "/containers/create")) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  cJSON *img = cJSON_GetObjectItemCaseSensitive(body, "Image");
  cleanup_free char *what = NULL;
  if (asprintf(&what, "create a container from `%s`", cJSON_IsString(img) ? img->valuestring : "?") < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  cJSON *j = NULL;
  int rc = simple_call(d, "POST", path, json, 201, &j, NULL, err, what);
  if (rc < 0)
    return rc;
  cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "Id");
  if (!cJSON_IsString(id)) {
    cJSON_Delete(j);
    return berth_error_set(err, BERTH_EDOCKER, "%s: the daemon's answer has no Id", what);
  }
  *id_out = strdup(id->valuestring);
  cJSON_Delete(j);
  return *id_out ? 0 : berth_error_set(err, BERTH_EINTERNAL, "out of memory");
}

static int
container_action(berth_docker *d, const char *id, const char *method, const char *suffix, const char *verb,
                 long *status, berth_error **err)
{
  cleanup_free char *path = NULL;
  cleanup_free char *what = NULL;
  if (asprintf(&path, "/containers/%s%s", id, suffix) < 0 || asprintf(&what, "%s container %.12s", verb, id) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  return simple_call(d, method, path, NULL, 0, NULL, status, err, what);
}

int
berth_docker_container_start(berth_docker *d, const char *id, berth_error **err)
{
  long st = 0;
  int rc = container_action(d, id, "POST", "/start", "start", &st, err);
  if (rc < 0 && st == 304) { /* already running */
    berth_error_clear(err);
    return 0;
  }
  return rc;
}

int
berth_docker_container_kill(berth_docker *d, const char *id, const char *signal, berth_error **err)
{
  cleanup_free char *suffix = NULL;
  if (asprintf(&suffix, "/kill?signal=%s", signal ? signal : "SIGKILL") < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  return container_action(d, id, "POST", suffix, "kill", NULL, err);
}

int
berth_docker_container_remove(berth_docker *d, const char *id, berth_error **err)
{
  long st = 0;
  int rc = container_action(d, id, "DELETE", "?force=1&v=1", "remove", &st, err);
  if (rc == BERTH_ENOTFOUND) {
    berth_error_clear(err);
    return 0;
  }
  if (rc < 0 && st == 409) {
    /* "removal already in progress" is as good as done */
    berth_error_clear(err);
    return 0;
  }
  return rc;
}

int
berth_docker_container_wait(berth_docker *d, const char *id, int *status_code, berth_error **err)
{
  int rc = docker_negotiate(d, err);
  if (rc < 0)
    return rc;
  cleanup_free char *path = NULL;
  if (asprintf(&path, "/containers/%s/wait?condition=not-running", id) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  docker_req rq = { .method = "POST", .path = path, .stream = true };
  docker_resp rs;
  docker_resp_init(&rs);
  rc = docker_perform(d, &rq, &rs, err);
  if (rc == 0 && rs.status != 200)
    rc = docker_status_error(&rs, err, "wait for the container");
  cJSON *j = NULL;
  if (rc == 0)
    rc = docker_resp_json(&rs, &j, err, "wait for the container");
  if (rc == 0) {
    cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "StatusCode");
    *status_code = cJSON_IsNumber(sc) ? sc->valueint : -1;
  }
  cJSON_Delete(j);
  docker_resp_clear(&rs);
  return rc;
}

int
berth_docker_container_inspect(berth_docker *d, const char *id, berth_container_state *st, cJSON **raw,
                               berth_error **err)
{
  cleanup_free char *path = NULL;
  cleanup_free char *what = NULL;
  if (asprintf(&path, "/containers/%s/json", id) < 0 || asprintf(&what, "inspect container %.12s", id) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  cJSON *j = NULL;
  int rc = simple_call(d, "GET", path, NULL, 200, &j, NULL, err, what);
  if (rc < 0)
    return rc;
  if (st != NULL) {
    memset(st, 0, sizeof *st);
    cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "State");
    cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(s, "Status")) && cJSON_IsString(v))
      snprintf(st->status, sizeof st->status, "%s", v->valuestring);
    st->running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "Running"));
    st->oom_killed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "OOMKilled"));
    if ((v = cJSON_GetObjectItemCaseSensitive(s, "ExitCode")) && cJSON_IsNumber(v))
      st->exit_code = v->valueint;
    if ((v = cJSON_GetObjectItemCaseSensitive(s, "Pid")) && cJSON_IsNumber(v))
      st->pid = v->valueint;
  }
  if (raw)
    *raw = j;
  else
    cJSON_Delete(j);
  return 0;
}

int
berth_docker_container_list(berth_docker *d, const char *const *labels, size_t n_labels, cJSON **out, berth_error **err)
{
  cJSON *filters = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(filters, "label");
  for (size_t i = 0; i < n_labels; i++)
    cJSON_AddItemToArray(arr, cJSON_CreateString(labels[i]));
  cleanup_free char *fj = cJSON_PrintUnformatted(filters);
  cJSON_Delete(filters);
  cleanup_free char *fe = fj ? escape(fj) : NULL;
  cleanup_free char *path = NULL;
  if (fe == NULL || asprintf(&path, "/containers/json?all=1&filters=%s", fe) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  cJSON *j = NULL;
  int rc = simple_call(d, "GET", path, NULL, 200, &j, NULL, err, "list containers");
  if (rc < 0)
    return rc;
  if (!cJSON_IsArray(j)) {
    cJSON_Delete(j);
    return berth_error_set(err, BERTH_EDOCKER, "list containers: the daemon's answer is not a JSON array");
  }
  *out = j;
  return 0;
}

int
berth_docker_container_events(berth_docker *d, const char *id, int64_t since_s, int64_t until_s,
                              berth_container_events *out, berth_error **err)
{
  int rc = docker_negotiate(d, err);
  if (rc < 0)
    return rc;
  cJSON *filters = cJSON_CreateObject();
  cJSON_AddItemToArray(cJSON_AddArrayToObject(filters, "container"), cJSON_CreateString(id));
  cJSON *evs = cJSON_AddArrayToObject(filters, "event");
  cJSON_AddItemToArray(evs, cJSON_CreateString("oom"));
  cJSON_AddItemToArray(evs, cJSON_CreateString("kill"));
  cleanup_free char *fj = cJSON_PrintUnformatted(filters);
  cJSON_Delete(filters);
  cleanup_free char *fe = fj ? escape(fj) : NULL;
  cleanup_free char *path = NULL;
  if (fe == NULL
      || asprintf(&path, "/events?since=%lld&until=%lld&filters=%s", (long long) since_s, (long long) until_s, fe) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  /* with `until` in the past the daemon sends what it has (one JSON object per line) and ends the answer */
  docker_req rq = { .method = "GET", .path = path };
  docker_resp rs;
  docker_resp_init(&rs);
  rc = docker_perform(d, &rq, &rs, err);
  if (rc == 0 && rs.status != 200)
    rc = docker_status_error(&rs, err, "read the container's events");
  if (rc == 0) {
    memset(out, 0, sizeof *out);
    const char *p = rs.body.data, *end = p ? p + rs.body.len : NULL;
    while (p != NULL && p < end) {
      const char *nl = memchr(p, '\n', (size_t) (end - p));
      const char *le = nl ? nl : end;
      cJSON *ev = cJSON_ParseWithLength(p, (size_t) (le - p));
      const char *action = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "Action"));
      if (action != NULL && strcmp(action, "oom") == 0)
        out->oom++;
      if (action != NULL && strcmp(action, "kill") == 0) {
        out->kill++;
        cJSON *attrs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ev, "Actor"), "Attributes");
        const char *sig = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(attrs, "signal"));
        if (sig != NULL)
          out->kill_signal = atoi(sig);
      }
      cJSON_Delete(ev);
      p = nl ? nl + 1 : end;
    }
  }
  docker_resp_clear(&rs);
  return rc;
}
