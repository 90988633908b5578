/* Store benchmark: single-client costs of the store layer on whichever engine BERTH_STORE / BERTH_HOME choose,
 * printed as one line of key=value for bench/store.sh.
 *   bench_store audit N        N audit appends, one transaction each (the chain's head read and written every time)
 *   bench_store get ID N       N reads of task ID with its history (what GET /v1/tasks/{id} reads)
 * Latencies are per call, from the library's entry to its return: p50, p99, max in ms, and calls per second. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "berth/audit.h"
#include "berth/store.h"

static double
now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec * 1000.0 + (double) ts.tv_nsec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static void
report(const char *what, double *lat, int n, double wall_ms)
{
  qsort(lat, (size_t) n, sizeof *lat, cmp_double);
  printf("%s n=%d p50=%.3f p99=%.3f max=%.3f rate=%.0f\n", what, n, lat[n / 2], lat[(n * 99) / 100], lat[n - 1],
         n / (wall_ms / 1000.0));
}

int
main(int argc, char **argv)
{
  bool audit = argc == 3 && strcmp(argv[1], "audit") == 0, get = argc == 4 && strcmp(argv[1], "get") == 0;
  if (!audit && !get) {
    fprintf(stderr, "usage: bench_store audit N | bench_store get TASK_ID N\n");
    return 2;
  }
  int n = atoi(argv[argc - 1]);
  char *home = berth_home_default();
  berth_store *st = NULL;
  berth_error *err = NULL;
  double *lat = calloc(n > 0 ? (size_t) n : 1, sizeof *lat);
  if (n <= 0 || lat == NULL || berth_store_open(home, &st, &err) < 0) {
    fprintf(stderr, "bench_store: %s\n", err ? err->msg : "bad count");
    return 1;
  }
  double start = now_ms();
  for (int i = 0; i < n; i++) {
    double t0 = now_ms();
    int rc;
    if (audit) {
      char target[32];
      snprintf(target, sizeof target, "bench-%d", i);
      rc = berth_audit_append(st, "bench", "bench.append", target, NULL, "ok", &err);
    } else {
      berth_task *t = NULL;
      rc = berth_store_task_get(st, argv[2], &t, &err);
      berth_task_free(t);
    }
    if (rc < 0) {
      fprintf(stderr, "bench_store: %s\n", err->msg);
      return 1;
    }
    lat[i] = now_ms() - t0;
  }
  report(audit ? "audit" : "get", lat, n, now_ms() - start);
  free(lat);
  free(home);
  berth_store_close(st);
  return 0;
}
