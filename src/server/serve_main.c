/* `berth serve`: the server front end's own command line. The berth binary hands the command to it (src/main.c);
 * like the CLI, it prints errors as one `berth: ` line and maps them to exit statuses through the one table. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/config.h"
#include "berth/parse.h"
#include "server.h"

static const char serve_usage[]
    = "usage: berth serve [--listen unix:PATH|tcp:HOST:PORT]... [--tls-cert FILE --tls-key FILE] [--grace DUR]\n"
      "                   [--client-timeout DUR] [--store URL] [--public-url URL] [--metrics-listen ADDR]\n\n"
      "Serves the HTTP API (docs/http-api.md) on each --listen address (default unix:$BERTH_HOME/berth.sock).\n"
      "Callers authenticate with API keys (berth key create). tcp:HOST:0 picks a free port (printed on stderr).\n"
      "With --tls-cert/--tls-key (PEM), TCP listeners speak HTTPS.\n"
      "SIGTERM: stop accepting, let PERFORMING tasks finish for up to --grace (default 60s), record the rest as\n"
      "interrupted. --client-timeout (default 30s) closes connections idle that long (slow clients).\n"
      "A restart fails tasks left by a crash (executor interrupted) and removes their containers.\n"
      "--store URL: the PostgreSQL store (as BERTH_STORE, which it overrides, for the server and its tasks); put a\n"
      "password in PGPASSFILE rather than in the URL, which other users can read in the process list.\n"
      "--public-url URL: the address clouds reach this server at; the issuer of tasks' OIDC tokens, published\n"
      "unauthenticated at /.well-known/openid-configuration and /.well-known/jwks.json (docs/credentials.md).\n"
      "--metrics-listen ADDR: one more address serving only GET /metrics, without a key (docs/metrics.md);\n"
      "GET /metrics is also on every --listen address for reader keys.\n\n"
      "A fleet (PostgreSQL store; docs/fleet.md): every `berth serve` on the store is a host that claims queued tasks\n"
      "and runs them on its own Docker.\n"
      "  --host NAME        this host's name (default: the machine's hostname); unique in the fleet\n"
      "  --pool NAME        a pool it serves (repeatable; default: default); a stack's --pool picks its hosts\n"
      "  --slots N          tasks it runs at once (default: max_parallel_tasks, 4)\n"
      "  --lease DUR        how long it may miss heartbeats before the fleet calls it lost (default 30s)\n"
      "  --store-wait DUR   at start, how long to wait for a PostgreSQL server that does not answer (default: until "
      "it\n"
      "                     does, saying so every 30 s; 0: exit 125 at once)\n"
      "  --drained          start drained (as `berth host drain NAME`): it claims nothing until undrained\n"
      "  --no-execute       an API-only host: it claims nothing\n"
      "  --no-listen        an execute-only host: no HTTP API (also the default on PostgreSQL without --listen)\n";

/* One `berth: ` line on stderr, and the exit status of err's code. Frees err. */
static int
fail(berth_error *err)
{
  int code = err ? err->code : BERTH_EINTERNAL;
  fprintf(stderr, "berth: %s\n", err && err->msg ? err->msg : "unknown error");
  berth_error_free(err);
  return berth_error_exit_code(code);
}

int
srv_main(int argc, char **argv, const char *const *supervisor_argv)
{
  static const struct option opts[] = { { "listen", required_argument, NULL, 'l' },
                                        { "tls-cert", required_argument, NULL, 'c' },
                                        { "tls-key", required_argument, NULL, 'k' },
                                        { "grace", required_argument, NULL, 'g' },
                                        { "client-timeout", required_argument, NULL, 't' },
                                        { "store", required_argument, NULL, 's' },
                                        { "public-url", required_argument, NULL, 'p' },
                                        { "metrics-listen", required_argument, NULL, 'm' },
                                        { "host", required_argument, NULL, 'H' },
                                        { "pool", required_argument, NULL, 'P' },
                                        { "slots", required_argument, NULL, 'S' },
                                        { "lease", required_argument, NULL, 'L' },
                                        { "no-execute", no_argument, NULL, 'X' },
                                        { "drained", no_argument, NULL, 'D' },
                                        { "no-listen", no_argument, NULL, 'N' },
                                        { "store-wait", required_argument, NULL, 'W' },
                                        { "help", no_argument, NULL, 'h' },
                                        { 0 } };
  const char *listen[16], *pools[16];
  srv_options o = {
    .listen = listen, .grace_ms = 60000, .supervisor_argv = supervisor_argv, .pools = pools, .store_wait_ms = -1
  };
  berth_error *err = NULL;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    switch (c) {
    case 'l':
      if (o.n_listen >= sizeof listen / sizeof listen[0])
        return fail((berth_error_set(&err, BERTH_EINVAL, "serve: at most 16 --listen addresses"), err));
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
        return fail((berth_error_wrap(&err, "serve: --grace"), err));
      break;
    case 't':
      if (berth_parse_duration_ms(optarg, &o.client_timeout_ms, &err) < 0)
        return fail((berth_error_wrap(&err, "serve: --client-timeout"), err));
      break;
    case 's': /* the environment carries it to every store the server and its supervisors open */
      if (setenv("BERTH_STORE", optarg, 1) < 0)
        return fail((berth_error_set(&err, BERTH_EINTERNAL, "serve: out of memory"), err));
      break;
    case 'm':
      o.metrics_listen = optarg;
      break;
    case 'p': /* the issuer of tasks' OIDC tokens: the supervisors inherit it */
      if (strncmp(optarg, "https://", 8) != 0 && strncmp(optarg, "http://", 7) != 0)
        return fail((berth_error_set(&err, BERTH_EINVAL, "serve: --public-url must be an http(s) URL"), err));
      {
        char *u = strdup(optarg);
        size_t n = u ? strlen(u) : 0;
        while (n > 0 && u[n - 1] == '/')
          u[--n] = '\0';
        if (u != NULL && !berth_config_issuer_valid(u)) {
          free(u);
          return fail(
              (berth_error_set(&err, BERTH_EINVAL, "serve: --public-url must be an http(s) URL with a host"), err));
        }
        if (u == NULL || setenv("BERTH_OIDC_ISSUER", u, 1) < 0) {
          free(u);
          return fail((berth_error_set(&err, BERTH_EINTERNAL, "serve: out of memory"), err));
        }
        free(u);
      }
      break;
    case 'H':
      if (berth_stack_validate_name(optarg, NULL) < 0)
        return fail(
            (berth_error_set(&err, BERTH_EINVAL,
                             "serve: --host `%.80s%s` is not a valid host name (1 to 63 letters, digits, `.`, `_`"
                             " and `-`, starting with a letter or digit)",
                             optarg, strlen(optarg) > 80 ? "..." : ""),
             err));
      o.host = optarg;
      break;
    case 'P':
      if (berth_stack_validate_name(optarg, NULL) < 0)
        return fail(
            (berth_error_set(&err, BERTH_EINVAL,
                             "serve: --pool `%.80s%s` is not a valid pool name (1 to 63 letters, digits, `.`, `_`"
                             " and `-`, starting with a letter or digit)",
                             optarg, strlen(optarg) > 80 ? "..." : ""),
             err));
      for (size_t i = 0; i < o.n_pools; i++)
        if (strcmp(pools[i], optarg) == 0)
          return fail((berth_error_set(&err, BERTH_EINVAL, "serve: --pool `%s` is given twice", optarg), err));
      if (o.n_pools >= sizeof pools / sizeof pools[0])
        return fail((berth_error_set(&err, BERTH_EINVAL, "serve: at most 16 --pool names"), err));
      pools[o.n_pools++] = optarg;
      break;
    case 'S': {
      char *end = NULL;
      long n = strtol(optarg, &end, 10);
      if (end == optarg || *end || n < 1 || n > 1024)
        return fail((berth_error_set(&err, BERTH_EINVAL, "serve: --slots takes a number from 1 to 1024"), err));
      o.slots = (int) n;
      break;
    }
    case 'L':
      if (berth_parse_duration_ms(optarg, &o.lease_ms, &err) < 0)
        return fail((berth_error_wrap(&err, "serve: --lease"), err));
      if (o.lease_ms < 2000 || o.lease_ms > 3600 * 1000)
        return fail((berth_error_set(&err, BERTH_EINVAL,
                                     "serve: --lease must be from 2s to 1h (a host that misses it is declared lost)"),
                     err));
      break;
    case 'W':
      if (berth_parse_duration_ms(optarg, &o.store_wait_ms, &err) < 0)
        return fail((berth_error_wrap(&err, "serve: --store-wait"), err));
      break;
    case 'X':
      o.no_execute = true;
      break;
    case 'D':
      o.drained = true;
      break;
    case 'N':
      o.no_listen = true;
      break;
    case 'h':
      fputs(serve_usage, stdout);
      return 0;
    default:
      return fail((berth_flag_error(c, "serve", argv, optind, optopt, optarg, &err), err));
    }
  }
  if (optind < argc)
    return fail((berth_error_set(&err, BERTH_EINVAL, "serve: unexpected argument `%s`", argv[optind]), err));
  char *home = berth_home_default();
  if (home == NULL)
    return fail((berth_error_set(&err, BERTH_EINTERNAL, "serve: out of memory"), err));
  o.home = home;
  int rc = srv_run(&o, &err);
  free(home);
  if (rc < 0)
    return fail(err);
  return 0;
}
