/* berth doctor: is Docker usable, which API version was negotiated, where the store lives, is the runner image here. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/docker.h"
#include "berth/store.h"
#include "cli.h"

#define DEFAULT_RUNNER_IMAGE "berth/runner:latest"

static const char *
json_str(const cJSON *o, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

int
cmd_doctor(int argc, char **argv)
{
  bool json = false;
  static const struct option opts[] = { { "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' }, { 0 } };
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
    if (c == 'j')
      json = true;
    else if (c == 'h') {
      printf(
          "usage: berth doctor [--json]\n\nChecks that the Docker daemon answers (DOCKER_HOST), shows the server and "
          "negotiated API versions,\nthe storage driver, whether the default runner image is present and where the "
          "store lives.\nExits non-zero with the reason when Docker is not usable.\n");
      return 0;
    } else
      return cli_usage_error("doctor: unknown option (see 'berth doctor --help')");
  }
  if (optind < argc)
    return cli_usage_error("doctor: unexpected argument `%s`", argv[optind]);

  cJSON *out = cJSON_CreateObject();
  cJSON *dj = cJSON_AddObjectToObject(out, "docker");
  berth_error *err = NULL;
  berth_docker *d = NULL;
  int rc = berth_docker_new(NULL, &d, &err);
  cJSON *ver = NULL, *info = NULL;
  bool image_present = false;
  if (rc == 0) {
    cJSON_AddStringToObject(dj, "host", berth_docker_host(d));
    rc = berth_docker_ping(d, &err);
  }
  if (rc == 0)
    rc = berth_docker_version(d, &ver, &err);
  if (rc == 0)
    rc = berth_docker_info(d, &info, &err);
  if (rc == 0) {
    berth_error *ierr = NULL;
    image_present = berth_docker_image_inspect(d, DEFAULT_RUNNER_IMAGE, NULL, &ierr) == 0;
    berth_error_free(ierr);
  }
  cJSON_AddBoolToObject(dj, "reachable", rc == 0);
  if (rc == 0) {
    cJSON_AddStringToObject(dj, "server_version", json_str(ver, "Version") ? json_str(ver, "Version") : "?");
    cJSON_AddStringToObject(dj, "server_api_version", json_str(ver, "ApiVersion") ? json_str(ver, "ApiVersion") : "?");
    cJSON_AddStringToObject(dj, "min_api_version",
                            json_str(ver, "MinAPIVersion") ? json_str(ver, "MinAPIVersion") : "?");
    cJSON_AddStringToObject(dj, "api_version", berth_docker_api_version(d));
    cJSON_AddStringToObject(dj, "storage_driver", json_str(info, "Driver") ? json_str(info, "Driver") : "?");
    cJSON_AddStringToObject(dj, "os", json_str(info, "OperatingSystem") ? json_str(info, "OperatingSystem") : "?");
  } else {
    cJSON_AddStringToObject(dj, "error", err->msg);
  }
  cJSON *ij = cJSON_AddObjectToObject(out, "runner_image");
  cJSON_AddStringToObject(ij, "ref", DEFAULT_RUNNER_IMAGE);
  if (rc == 0)
    cJSON_AddBoolToObject(ij, "present", image_present);
  else
    cJSON_AddNullToObject(ij, "present");

  char *home = berth_home_default();
  cJSON *sj = cJSON_AddObjectToObject(out, "store");
  cJSON_AddStringToObject(sj, "home", home ? home : "?");
  bool exists = home && access(home, F_OK) == 0;
  cJSON_AddBoolToObject(sj, "exists", exists);
  cJSON_AddBoolToObject(sj, "writable", exists && access(home, W_OK) == 0);
  cJSON_AddBoolToObject(out, "ok", rc == 0);

  if (json) {
    char *s = cJSON_Print(out);
    printf("%s\n", s);
    free(s);
  } else {
    if (rc == 0) {
      printf("docker   ok    %s: Docker %s, API %s negotiated (server %s, min %s), storage %s\n", berth_docker_host(d),
             json_str(ver, "Version"), berth_docker_api_version(d), json_str(ver, "ApiVersion"),
             json_str(ver, "MinAPIVersion"), json_str(info, "Driver"));
      printf("image    %-5s %s %s\n", image_present ? "ok" : "miss", DEFAULT_RUNNER_IMAGE,
             image_present ? "is present" : "is not present (build it: ci/build-images.sh)");
    }
    printf("store    %-5s %s%s\n", exists ? "ok" : "new", home ? home : "?", exists ? "" : " (created on first use)");
  }
  free(home);
  cJSON_Delete(ver);
  cJSON_Delete(info);
  cJSON_Delete(out);
  berth_docker_free(d);
  if (rc < 0)
    return cli_fail(err);
  return 0;
}
