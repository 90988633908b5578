/* berth oidc rotate|jwks|config: the OIDC issuer's keys and documents (local mode; docs/credentials.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/config.h"
#include "berth/oidc.h"
#include "backend.h"
#include "cli.h"

static const char oidc_usage[]
    = "usage: berth oidc rotate [--alg ES256|RS256]\n"
      "       berth oidc jwks\n"
      "       berth oidc config [--issuer URL]\n\n"
      "berth signs an OpenID Connect token for every task of a stack with an OIDC audience.\n"
      "  rotate   makes a new signing key (admin); the old one stays published until its tokens have expired (1 h)\n"
      "  jwks     prints the published public keys (JSON Web Key Set), e.g. for static hosting\n"
      "  config   prints the discovery document (/.well-known/openid-configuration) for the issuer URL\n"
      "           (--issuer, else config.json's oidc_issuer)\n";

static void
show_rotated(const cli_request *rq, const cJSON *rec)
{
  (void) rq;
  printf("new OIDC signing key %s (%s); the previous one stays published for 1 h\n",
         cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "kid")),
         cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "alg")));
}

/* `config --issuer URL`: the document for that issuer needs no store */
static int
print_discovery(const char *issuer)
{
  cJSON *j = berth_oidc_discovery(issuer);
  cli_print_json(j);
  cJSON_Delete(j);
  return j ? 0 : cli_usage_error("out of memory");
}

int
cmd_oidc(int argc, char **argv)
{
  static const struct option opts[] = { { "alg", required_argument, NULL, 'a' },
                                        { "issuer", required_argument, NULL, 'i' },
                                        { "help", no_argument, NULL, 'h' },
                                        { 0 } };
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fputs(oidc_usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 125 : 0;
  }
  const char *sub = argv[1], *alg = NULL, *issuer = NULL;
  int c;
  optind = 2;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    if (c == 'a' && strcmp(sub, "rotate") == 0)
      alg = optarg;
    else if (c == 'i' && strcmp(sub, "config") == 0)
      issuer = optarg;
    else if (c == 'h') {
      fputs(oidc_usage, stdout);
      return 0;
    } else
      return cli_flag_error(c,
                            strcmp(sub, "rotate") == 0   ? "oidc rotate"
                            : strcmp(sub, "config") == 0 ? "oidc config"
                                                         : "oidc jwks",
                            argv);
  }
  if (optind < argc)
    return cli_usage_error("oidc %s: unexpected argument `%s`", sub, argv[optind]);
  if (strcmp(sub, "rotate") != 0 && strcmp(sub, "jwks") != 0 && strcmp(sub, "config") != 0)
    return cli_usage_error("unknown oidc command '%s' (see 'berth oidc --help')", sub);
  static const cli_view documents = { NULL, NULL, NULL }, rotated = { show_rotated, NULL, NULL };
  cli_request rq = { 0 };
  if (strcmp(sub, "jwks") == 0)
    return cli_run(CLI_OP_OIDC_JWKS, &rq, &documents);
  if (strcmp(sub, "config") == 0 && issuer && !berth_config_issuer_valid(issuer))
    return cli_usage_error(
        "oidc config: --issuer `%.200s` must be an http(s) URL with a host, without a trailing slash", issuer);
  if (strcmp(sub, "config") == 0)
    return issuer ? print_discovery(issuer) : cli_run(CLI_OP_OIDC_CONFIG, &rq, &documents);
  rq.body = cJSON_CreateObject();
  if (alg)
    cJSON_AddStringToObject(rq.body, "alg", alg);
  return cli_run(CLI_OP_OIDC_ROTATE, &rq, &rotated);
}
