/* berth __supervise --home DIR [--hold-fd N] TASK_ID: the background process that owns one task to its end (internal).
 * --hold-fd: the task's liveness lock, handed over held by the server that queued the task. */
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <stdio.h>
#include <string.h>

#include "berth/store.h"
#include "berth/task_runner.h"
#include "cli.h"

int
cmd_supervise(int argc, char **argv)
{
  int held = -1;
  if (argc == 6 && strcmp(argv[3], "--hold-fd") == 0) {
    char *end = NULL;
    long v = strtol(argv[4], &end, 10);
    if (end == argv[4] || *end != '\0' || v < 3 || v > 65535)
      return cli_usage_error("__supervise: --hold-fd takes a file descriptor number");
    held = (int) v;
    argv[3] = argv[5];
    argc = 4;
  }
  if (argc != 4 || strcmp(argv[1], "--home") != 0)
    return cli_usage_error("__supervise is internal: berth __supervise --home DIR [--hold-fd N] TASK_ID");
  /* the task outlives terminals and followers: no terminal signal ends it */
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  berth_store *st = NULL;
  berth_error *err = NULL;
  if (berth_store_open(argv[2], &st, &err) < 0)
    return cli_fail(err);
  int rc = berth_task_supervise_held(st, argv[3], held, &err);
  berth_store_close(st);
  /* benchmarks read the supervisor's peak memory from here */
  const char *rdir = getenv("BERTH_RUSAGE_DIR");
  if (rdir != NULL && *rdir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.rusage", rdir, argv[3]);
    FILE *f = fopen(path, "w");
    struct rusage ru;
    if (f != NULL && getrusage(RUSAGE_SELF, &ru) == 0)
      fprintf(f, "%ld %ld.%06ld %ld.%06ld\n", ru.ru_maxrss, (long) ru.ru_utime.tv_sec, (long) ru.ru_utime.tv_usec,
              (long) ru.ru_stime.tv_sec, (long) ru.ru_stime.tv_usec);
    if (f != NULL)
      fclose(f);
  }
  if (rc < 0)
    return cli_fail(err);
  return 0;
}
