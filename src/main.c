/* The berth program: the command line (src/cli/) with `berth serve` handed to the HTTP front end (src/server/).
 * This is the one file that sees both front ends; they never include each other (ci/check-layers.sh). */
#include "cli/cli.h"
#include "server/server.h"

/* How either front end starts a task's supervisor: this program again, with the CLI's internal command. */
static const char *const supervise_argv[] = { "/proc/self/exe", "__supervise", NULL };

static int
serve(int argc, char **argv)
{
  return srv_main(argc, argv, supervise_argv);
}

int
main(int argc, char **argv)
{
  return cli_main(argc, argv, serve, supervise_argv);
}
