/* Archive upload benchmark: streams a directory as the workspace tar (berth's producer) into a container with
 * PUT archive (chunked, no temporary file), printing bytes, seconds and peak RSS.
 *   bench_upload CONTAINER_ID DIR */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "berth/docker.h"
#include "berth/workspace.h"

static ssize_t
produce(void *ud, char *buf, size_t len, berth_error **err)
{
  return berth_ws_stream_read(ud, buf, len, err);
}

int
main(int argc, char **argv)
{
  if (argc != 3) {
    fprintf(stderr, "usage: bench_upload CONTAINER DIR\n");
    return 2;
  }
  berth_docker *d = NULL;
  berth_error *err = NULL;
  berth_ws_stream *ws = NULL;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  berth_ws_opts o = { .project_dir = argv[2], .prefix = "upload/source", .uid = 0, .gid = 0 };
  if (berth_docker_new(NULL, &d, &err) < 0 || berth_ws_stream_open(&o, &ws, &err) < 0
      || berth_docker_archive_put(d, argv[1], "/tmp", false, produce, ws, &err) < 0) {
    fprintf(stderr, "bench_upload: %s\n", err ? err->msg : "?");
    return 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("entries=%llu bytes=%llu seconds=%.3f maxrss_kib=%ld\n", (unsigned long long) berth_ws_stream_entries(ws),
         (unsigned long long) berth_ws_stream_bytes(ws), secs, ru.ru_maxrss);
  berth_ws_stream_free(ws);
  berth_docker_free(d);
  return 0;
}
