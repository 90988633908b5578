/* The berth program: the command line (src/cli/) with `berth serve` handed to the HTTP front end (src/server/).
 * This is the one file that sees both front ends; they never include each other (ci/check-layers.sh). */
#include "cli/cli.h"
#include "server/server.h"

int
main(int argc, char **argv)
{
  return cli_main(argc, argv, srv_main);
}
