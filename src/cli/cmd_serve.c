/* berth serve: the HTTP API server (src/server/). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/server.h"
#include "berth/parse.h"
#include "cli.h"

static const char serve_usage[]
    = "usage: berth serve [--listen unix:PATH|tcp:HOST:PORT]... [--tls-cert FILE --tls-key FILE] [--grace DUR]\n"
      "                   [--client-timeout DUR] [--store URL]\n\n"
      "Serves the HTTP API (docs/http-api.md) on each --listen address (default unix:$BERTH_HOME/berth.sock).\n"
      "Callers authenticate with API keys (berth key create). tcp:HOST:0 picks a free port (printed on stderr).\n"
      "With --tls-cert/--tls-key (PEM), TCP listeners speak HTTPS.\n"
      "SIGTERM: stop accepting, let PERFORMING tasks finish for up to --grace (default 60s), record the rest as\n"
      "interrupted. --client-timeout (default 30s) closes connections idle that long (slow clients).\n"
      "A restart fails tasks left by a crash (executor interrupted) and removes their containers.\n"
      "--store URL: the PostgreSQL store (as BERTH_STORE, which it overrides, for the server and its tasks); put a\n"
      "password in PGPASSFILE rather than in the URL, which other users can read in the process list.\n";

int
cmd_serve(int argc, char **argv)
{
  static const struct option opts[] = { { "listen", required_argument, NULL, 'l' },
                                        { "tls-cert", required_argument, NULL, 'c' },
                                        { "tls-key", required_argument, NULL, 'k' },
                                        { "grace", required_argument, NULL, 'g' },
                                        { "client-timeout", required_argument, NULL, 't' },
                                        { "store", required_argument, NULL, 's' },
                                        { "help", no_argument, NULL, 'h' },
                                        { 0 } };
  const char *listen[16];
  srv_options o = { .listen = listen, .grace_ms = 60000 };
  berth_error *err = NULL;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'l':
      if (o.n_listen >= sizeof listen / sizeof listen[0])
        return cli_usage_error("serve: at most 16 --listen addresses");
      listen[o.n_listen++] = optarg;
      break;
    case 'c':
      o.tls_cert = optarg;
      break;
    case 'k':
      o.tls_key = optarg;
      break;
    case 'g':
      if (berth_parse_duration_ms(optarg, &o.grace_ms, &err) < 0)
        return cli_fail(err);
      break;
    case 't':
      if (berth_parse_duration_ms(optarg, &o.client_timeout_ms, &err) < 0)
        return cli_fail(err);
      break;
    case 's': /* the environment carries it to every store the server and its supervisors open */
      if (setenv("BERTH_STORE", optarg, 1) < 0)
        return cli_usage_error("serve: out of memory");
      break;
    case 'h':
      fputs(serve_usage, stdout);
      return 0;
    default:
      return cli_usage_error("serve: unknown option (see 'berth serve --help')");
    }
  }
  if (optind < argc)
    return cli_usage_error("serve: unexpected argument `%s`", argv[optind]);
  char *home = berth_home_default();
  if (home == NULL)
    return cli_usage_error("serve: out of memory");
  o.home = home;
  int rc = srv_run(&o, &err);
  free(home);
  if (rc < 0)
    return cli_fail(err);
  return 0;
}
