/* Placeholder until the real command lands in this file. */
#include "cli.h"

int
cmd_key(int argc, char **argv)
{
  (void) argc;
  (void) argv;
  return cli_usage_error("'key' is not available in this build yet");
}
