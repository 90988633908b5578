/* Placeholder until the real command lands in this file. */
#include "cli.h"

int
cmd_audit(int argc, char **argv)
{
  (void) argc;
  (void) argv;
  return cli_usage_error("'audit' is not available in this build yet");
}
