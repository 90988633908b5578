/* berth __supervise --home DIR TASK_ID: the background process that owns one task to its end (internal). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "berth/store.h"
#include "berth/task_runner.h"
#include "cli.h"

int
cmd_supervise(int argc, char **argv)
{
  if (argc != 4 || strcmp(argv[1], "--home") != 0)
    return cli_usage_error("__supervise is internal: berth __supervise --home DIR TASK_ID");
  /* the task outlives terminals and followers: no terminal signal ends it */
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  berth_store *st = NULL;
  berth_error *err = NULL;
  if (berth_store_open(argv[2], &st, &err) < 0)
    return cli_fail(err);
  int rc = berth_task_supervise(st, argv[3], &err);
  berth_store_close(st);
  if (rc < 0)
    return cli_fail(err);
  return 0;
}
