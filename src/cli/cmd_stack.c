/* Placeholder until the real command lands in this file. */
#include "cli.h"

int
cmd_stack(int argc, char **argv)
{
  (void) argc;
  (void) argv;
  return cli_usage_error("'stack' is not available in this build yet");
}
