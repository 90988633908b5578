/* The doctor report. */
#include <stdbool.h>
#include <unistd.h>

#include "berth/docker.h"
#include "berth/doctor.h"
#include "berth/task_runner.h"

static const char *
json_str(const cJSON *o, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : "?";
}

cJSON *
berth_doctor_report(const char *home, berth_error **err)
{
  cJSON *o = cJSON_CreateObject();
  cJSON *dj = cJSON_AddObjectToObject(o, "docker");
  berth_error *e = NULL;
  berth_docker *d = NULL;
  cJSON *ver = NULL, *info = NULL;
  bool image_present = false;
  int rc = berth_docker_new(NULL, &d, &e);
  if (rc == 0) {
    cJSON_AddStringToObject(dj, "host", berth_docker_host(d));
    rc = berth_docker_ping(d, &e);
  }
  if (rc == 0)
    rc = berth_docker_version(d, &ver, &e);
  if (rc == 0)
    rc = berth_docker_info(d, &info, &e);
  if (rc == 0) {
    berth_error *ierr = NULL;
    image_present = berth_docker_image_inspect(d, BERTH_DEFAULT_RUNNER_IMAGE, NULL, &ierr) == 0;
    berth_error_free(ierr);
  }
  cJSON_AddBoolToObject(dj, "reachable", rc == 0);
  if (rc == 0) {
    cJSON_AddStringToObject(dj, "server_version", json_str(ver, "Version"));
    cJSON_AddStringToObject(dj, "server_api_version", json_str(ver, "ApiVersion"));
    cJSON_AddStringToObject(dj, "min_api_version", json_str(ver, "MinAPIVersion"));
    cJSON_AddStringToObject(dj, "api_version", berth_docker_api_version(d));
    cJSON_AddStringToObject(dj, "storage_driver", json_str(info, "Driver"));
    cJSON_AddStringToObject(dj, "os", json_str(info, "OperatingSystem"));
  } else {
    cJSON_AddStringToObject(dj, "error", e && e->msg ? e->msg : "unreachable");
  }
  cJSON *ij = cJSON_AddObjectToObject(o, "runner_image");
  cJSON_AddStringToObject(ij, "ref", BERTH_DEFAULT_RUNNER_IMAGE);
  if (rc == 0)
    cJSON_AddBoolToObject(ij, "present", image_present);
  else
    cJSON_AddNullToObject(ij, "present");
  cJSON *sj = cJSON_AddObjectToObject(o, "store");
  cJSON_AddStringToObject(sj, "home", home ? home : "?");
  bool exists = home && access(home, F_OK) == 0;
  cJSON_AddBoolToObject(sj, "exists", exists);
  cJSON_AddBoolToObject(sj, "writable", exists && access(home, W_OK) == 0);
  cJSON_AddBoolToObject(o, "ok", rc == 0);
  if (rc < 0 && err != NULL && e != NULL) {
    *err = e;
    e = NULL;
  }
  berth_error_free(e);
  cJSON_Delete(ver);
  cJSON_Delete(info);
  berth_docker_free(d);
  return o;
}
