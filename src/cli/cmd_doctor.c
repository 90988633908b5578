/* berth doctor: is Docker usable, which API version was negotiated, where the store lives, is the runner image here. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "cli.h"

static const char *
json_str(const cJSON *o, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void
show_report(const cli_request *rq, const cJSON *out)
{
  (void) rq;
  const cJSON *dj = cJSON_GetObjectItemCaseSensitive(out, "docker"),
              *img = cJSON_GetObjectItemCaseSensitive(out, "runner_image"),
              *st = cJSON_GetObjectItemCaseSensitive(out, "store");
  const cJSON *cj = cJSON_GetObjectItemCaseSensitive(out, "config");
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(dj, "reachable"))) {
    bool present = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(img, "present"));
    printf("docker   ok    %s: Docker %s, API %s negotiated (server %s, min %s), storage %s\n", json_str(dj, "host"),
           json_str(dj, "server_version"), json_str(dj, "api_version"), json_str(dj, "server_api_version"),
           json_str(dj, "min_api_version"), json_str(dj, "storage_driver"));
    printf("image    %-5s %s %s\n", present ? "ok" : "miss", json_str(img, "ref"),
           present ? "is present" : "is not present (build it: ci/build-images.sh)");
  }
  bool cfg_ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cj, "ok"));
  printf("config   %-5s %s\n", cfg_ok ? "ok" : "FAIL",
         cfg_ok ? "config.json (or its defaults) is valid" : json_str(cj, "error"));
  bool exists = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "exists"));
  const char *home = json_str(st, "home") ? json_str(st, "home") : "?";
  if (!cfg_ok)
    printf("store    -     %s (not opened: the config is not valid)\n", home);
  else if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "ok")))
    printf("store    FAIL  %s\n", json_str(st, "error") ? json_str(st, "error") : home);
  else if (json_str(st, "engine"))
    printf("store    ok    %s: %s, schema version %d\n", json_str(st, "engine"), json_str(st, "location"),
           (int) cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(st, "schema_version")));
  else
    printf("store    %-5s %s%s\n", exists ? "ok" : "new", home, exists ? "" : " (created on first use)");
}

/* Not usable: the report's reason, with the exit status of a Docker failure. */
static int
report_status(const cJSON *out)
{
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(out, "ok")))
    return 0;
  berth_error *err = NULL;
  const char *why = json_str(cJSON_GetObjectItemCaseSensitive(out, "docker"), "error");
  int code = BERTH_EDOCKER;
  if (why == NULL && (why = json_str(cJSON_GetObjectItemCaseSensitive(out, "config"), "error")) != NULL)
    code = BERTH_EINVAL;
  if (why == NULL && (why = json_str(cJSON_GetObjectItemCaseSensitive(out, "store"), "error")) != NULL)
    code = BERTH_EINTERNAL;
  berth_error_set(&err, code, "%s", why ? why : "Docker is not usable");
  return cli_fail(err);
}

int
cmd_doctor(int argc, char **argv)
{
  bool json = false;
  static const struct option opts[] = { { "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' }, { 0 } };
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
    if (c == 'j')
      json = true;
    else if (c == 'h') {
      printf(
          "usage: berth doctor [--json]\n\nChecks that the Docker daemon answers (DOCKER_HOST), shows the server and "
          "negotiated API versions,\nthe storage driver, whether the default runner image is present, whether "
          "config.json is valid,\nand opens the store (its engine, where it lives, its schema version).\nExits 125 "
          "with the reason when Docker, the config or the store is not usable.\n");
      return 0;
    } else
      return cli_flag_error(c, "doctor", argv);
  }
  if (optind < argc)
    return cli_usage_error("doctor: unexpected argument `%s`", argv[optind]);

  static const cli_view view = { show_report, NULL, report_status };
  cli_request rq = { .json = json };
  return cli_run(CLI_OP_DOCTOR, &rq, &view);
}
