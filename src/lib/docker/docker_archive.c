/* Archive PUT (streamed, chunked, from a producer) and GET (streamed to a sink). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/cleanup.h"
#include "docker_http.h"

static char *
archive_path(const char *id, const char *path, const char *extra)
{
  char *e = curl_easy_escape(NULL, path, 0);
  char *s = NULL;
  if (e == NULL || asprintf(&s, "/containers/%s/archive?path=%s%s", id, e, extra) < 0)
    s = NULL;
  curl_free(e);
  return s;
}

int
berth_docker_archive_put(berth_docker *d, const char *id, const char *path, bool copy_uidgid,
                         berth_producer_fn producer, void *userdata, berth_error **err)
{
  int rc = docker_negotiate(d, err);
  if (rc < 0)
    return rc;
  cleanup_free char *p = archive_path(
      id, path, copy_uidgid ? "&noOverwriteDirNonDir=true&copyUIDGID=true" : "&noOverwriteDirNonDir=true");
  if (p == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  /* check the destination first, as docker cp does, to fail before streaming a large tar */
  docker_req head = { .method = "HEAD", .path = p };
  docker_resp hr;
  docker_resp_init(&hr);
  rc = docker_perform(d, &head, &hr, err);
  if (rc == 0 && hr.status == 404)
    rc = berth_error_set(err, BERTH_ENOTFOUND, "upload to container %.12s: `%s` does not exist there", id, path);
  else if (rc == 0 && hr.status != 200)
    rc = docker_status_error(&hr, err, "upload to the container");
  docker_resp_clear(&hr);
  if (rc < 0)
    return rc;

  docker_req rq = { .method = "PUT", .path = p, .stream = true, .producer = producer, .producer_userdata = userdata };
  docker_resp rs;
  docker_resp_init(&rs);
  rc = docker_perform(d, &rq, &rs, err);
  if (rc == 0 && rs.status != 200) {
    cleanup_free char *what = NULL;
    if (asprintf(&what, "upload the workspace to `%s` in container %.12s", path, id) < 0)
      what = NULL;
    rc = docker_status_error(&rs, err, what ? what : "upload");
  }
  docker_resp_clear(&rs);
  return rc;
}

int
berth_docker_archive_get(berth_docker *d, const char *id, const char *path, berth_bytes_sink sink, void *userdata,
                         berth_error **err)
{
  int rc = docker_negotiate(d, err);
  if (rc < 0)
    return rc;
  cleanup_free char *p = archive_path(id, path, "");
  if (p == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  docker_req rq = { .method = "GET", .path = p, .stream = true, .sink = sink, .sink_userdata = userdata };
  docker_resp rs;
  docker_resp_init(&rs);
  rc = docker_perform(d, &rq, &rs, err);
  if (rc == 0 && rs.status == 404)
    rc = berth_error_set(err, BERTH_ENOTFOUND, "`%s` does not exist in container %.12s", path, id);
  else if (rc == 0 && rs.status != 200)
    rc = docker_status_error(&rs, err, "download from the container");
  docker_resp_clear(&rs);
  return rc;
}
