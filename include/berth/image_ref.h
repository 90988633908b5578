/* Docker image references: parsing, validation and normalization (`ubuntu` = `docker.io/library/ubuntu:latest`). */
#ifndef BERTH_IMAGE_REF_H
#define BERTH_IMAGE_REF_H

#include "berth/error.h"

typedef struct berth_image_ref {
  char *domain; /* "docker.io", "registry.example.com:5000", "localhost" ... */
  char *path;   /* "library/ubuntu", "team/app" */
  char *tag;    /* NULL when only a digest was given; "latest" when neither was */
  char *digest; /* "sha256:<64 hex>" or NULL */
} berth_image_ref;

/* Parses s; on failure (BERTH_EINVAL) says why in one line. The caller clears out with berth_image_ref_clear. */
int berth_image_ref_parse(const char *s, berth_image_ref *out, berth_error **err);
void berth_image_ref_clear(berth_image_ref *r);
/* "domain/path[:tag][@digest]"; caller frees. */
char *berth_image_ref_string(const berth_image_ref *r);
/* "domain/path" (docker.io images keep the docker.io/ prefix); caller frees. */
char *berth_image_ref_repository(const berth_image_ref *r);

#endif
