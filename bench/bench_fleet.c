/* bench_fleet: submits tasks into a store's queue through libberth, as `berth task run --detach` does, without a
 * process per task (bench/fleet.sh measures the hosts, not the submitting CLI).
 *   bench_fleet N STACKS GAP_MS PREFIX   N tasks of `true`, round robin over stacks PREFIX0..PREFIX<STACKS-1>,
 *                                        GAP_MS between submissions (0: at once) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "berth/store.h"
#include "berth/task_submit.h"

int
main(int argc, char **argv)
{
  if (argc != 5) {
    fprintf(stderr, "usage: bench_fleet N STACKS GAP_MS PREFIX\n");
    return 2;
  }
  int n = atoi(argv[1]), stacks = atoi(argv[2]), gap = atoi(argv[3]);
  berth_store *st = NULL;
  berth_error *err = NULL;
  char *home = berth_home_default();
  if (berth_store_open(home, &st, &err) < 0) {
    fprintf(stderr, "bench_fleet: %s\n", err->msg);
    return 1;
  }
  free(home);
  for (int i = 0; i < n; i++) {
    char stack[128];
    snprintf(stack, sizeof stack, "%s%d", argv[4], i % stacks);
    berth_submit req = { .stack = stack, .command = "true", .actor = "bench" };
    berth_task *t = NULL;
    if (berth_task_submit(st, &req, &t, &err) < 0) {
      fprintf(stderr, "bench_fleet: %s\n", err->msg);
      return 1;
    }
    berth_task_free(t);
    if (gap > 0) {
      struct timespec ts = { gap / 1000, (gap % 1000) * 1000000L };
      nanosleep(&ts, NULL);
    }
  }
  berth_store_close(st);
  return 0;
}
