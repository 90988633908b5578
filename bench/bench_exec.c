/* Exec streaming benchmark: runs a command in a container through berth's Docker client and demultiplexer and
 * discards the output, printing bytes, seconds, MB/s and peak RSS. bench/docker.sh compares it with the docker CLI
 * and curl in the same run.
 *   bench_exec CONTAINER_ID 'sh command' */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "berth/docker.h"

static int
discard(void *ud, int stream, const char *data, size_t len)
{
  (void) stream, (void) data;
  *(unsigned long long *) ud += len;
  return 0;
}

int
main(int argc, char **argv)
{
  if (argc != 3) {
    fprintf(stderr, "usage: bench_exec CONTAINER 'command'\n");
    return 2;
  }
  berth_docker *d = NULL;
  berth_error *err = NULL;
  char *eid = NULL;
  const char *cmd[] = { "sh", "-c", argv[2], NULL };
  unsigned long long bytes = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (berth_docker_new(NULL, &d, &err) < 0
      || berth_docker_exec_create(d, argv[1], cmd, NULL, NULL, NULL, &eid, &err) < 0
      || berth_docker_exec_start(d, eid, discard, &bytes, NULL, NULL, &err) < 0) {
    fprintf(stderr, "bench_exec: %s\n", err ? err->msg : "?");
    return 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("bytes=%llu seconds=%.3f mbps=%.1f maxrss_kib=%ld\n", bytes, secs, (double) bytes / secs / 1e6, ru.ru_maxrss);
  free(eid);
  berth_docker_free(d);
  return 0;
}
