/* The doctor report: is Docker usable (host, versions, negotiated API, storage driver), is the default runner image
 * present, where the store lives. Shared by `berth doctor` and GET /v1/doctor. */
#ifndef BERTH_DOCTOR_H
#define BERTH_DOCTOR_H

#include <cjson/cJSON.h>

#include "berth/error.h"

/* Returns a new object (caller frees) with "docker", "runner_image", "store" and "ok". When Docker is not usable,
 * "ok" is false, docker.error says why, and *err (when err != NULL) gets the same one-line error. */
cJSON *berth_doctor_report(const char *home, berth_error **err);

#endif
