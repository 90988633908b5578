/* The doctor report. */
#include <stdbool.h>
#include <unistd.h>

#include "berth/config.h"
#include "berth/docker.h"
#include "berth/doctor.h"
#include "berth/store.h"
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
  /* the admin's config and the store as every other command reads them: a broken config.json or an unusable
   * store is what makes them fail, whatever Docker says */
  cJSON *cj = cJSON_AddObjectToObject(o, "config");
  berth_config cfg;
  berth_error *ce = NULL;
  bool cfg_ok = home != NULL && berth_config_load(home, &cfg, &ce) == 0;
  if (cfg_ok)
    berth_config_clear(&cfg);
  cJSON_AddBoolToObject(cj, "ok", cfg_ok);
  if (!cfg_ok)
    cJSON_AddStringToObject(cj, "error", ce && ce->msg ? ce->msg : "no BERTH_HOME");
  cJSON *sj = cJSON_AddObjectToObject(o, "store");
  cJSON_AddStringToObject(sj, "home", home ? home : "?");
  bool exists = home && access(home, F_OK) == 0;
  cJSON_AddBoolToObject(sj, "exists", exists);
  cJSON_AddBoolToObject(sj, "writable", exists && access(home, W_OK) == 0);
  berth_error *se = NULL;
  bool store_ok = !exists || !cfg_ok; /* a new home is made by the first command; a broken config says enough */
  if (exists && cfg_ok) {
    berth_store *st = NULL;
    berth_store_info sinfo;
    if (berth_store_open(home, &st, &se) == 0 && berth_store_info_get(st, &sinfo, &se) == 0) {
      store_ok = true;
      cJSON_AddStringToObject(sj, "engine", sinfo.engine);
      cJSON_AddStringToObject(sj, "location", sinfo.location);
      cJSON_AddNumberToObject(sj, "schema_version", sinfo.schema_version);
    }
    berth_store_close(st);
  }
  cJSON_AddBoolToObject(sj, "ok", store_ok);
  if (!store_ok)
    cJSON_AddStringToObject(sj, "error", se && se->msg ? se->msg : "the store cannot be opened");
  cJSON_AddBoolToObject(o, "ok", rc == 0 && cfg_ok && store_ok);
  if (rc == 0 && !cfg_ok) { /* the first thing that fails is the report's error */
    rc = BERTH_EINVAL;
    e = ce;
    ce = NULL;
  } else if (rc == 0 && !store_ok) {
    rc = BERTH_EINTERNAL;
    e = se;
    se = NULL;
  }
  berth_error_free(ce);
  berth_error_free(se);
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
