/* berth doctor: is Docker usable, which API version was negotiated, where the store lives, is the runner image here. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/doctor.h"
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

  char *home = berth_home_default();
  berth_error *err = NULL;
  cJSON *out = berth_doctor_report(home, &err);
  const cJSON *dj = cJSON_GetObjectItemCaseSensitive(out, "docker");
  bool ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(out, "ok"));
  const cJSON *present
      = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(out, "runner_image"), "present");
  bool image_present = cJSON_IsTrue(present);
  bool exists
      = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(out, "store"), "exists"));
  if (json) {
    cli_print_json(out);
  } else {
    if (ok) {
      printf("docker   ok    %s: Docker %s, API %s negotiated (server %s, min %s), storage %s\n", json_str(dj, "host"),
             json_str(dj, "server_version"), json_str(dj, "api_version"), json_str(dj, "server_api_version"),
             json_str(dj, "min_api_version"), json_str(dj, "storage_driver"));
      printf("image    %-5s %s %s\n", image_present ? "ok" : "miss", DEFAULT_RUNNER_IMAGE,
             image_present ? "is present" : "is not present (build it: ci/build-images.sh)");
    }
    printf("store    %-5s %s%s\n", exists ? "ok" : "new", home ? home : "?", exists ? "" : " (created on first use)");
  }
  free(home);
  cJSON_Delete(out);
  if (!ok)
    return cli_fail(err);
  berth_error_free(err);
  return 0;
}
