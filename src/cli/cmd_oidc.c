/* berth oidc rotate|jwks|config: the OIDC issuer's keys and documents (local mode; docs/credentials.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/actions.h"
#include "berth/config.h"
#include "berth/oidc.h"
#include "berth/store.h"
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
print_json(cJSON *j)
{
  char *s = cJSON_Print(j);
  if (s != NULL)
    printf("%s\n", s);
  free(s);
}

static int
oidc_jwks(berth_store *st)
{
  berth_error *err = NULL;
  berth_oidc_key *keys = NULL;
  size_t n = 0;
  int64_t now = berth_now_ms();
  if (berth_store_oidc_keys(st, &keys, &n, &err) < 0)
    return cli_fail(err);
  cJSON *j = berth_oidc_jwks(keys, n, now, &err);
  berth_oidc_keys_free(keys, n);
  if (j == NULL)
    return cli_fail(err);
  print_json(j);
  cJSON_Delete(j);
  return 0;
}

static int
oidc_rotate(berth_store *st, const char *alg)
{
  berth_error *err = NULL;
  berth_oidc_key fresh;
  int64_t now = berth_now_ms();
  if (berth_oidc_key_generate(alg, now, &fresh, &err) < 0)
    return cli_fail(err);
  char *actor = cli_current_user();
  int rc = berth_store_oidc_rotate(st, &fresh, now, &err);
  cJSON *args = cJSON_CreateObject();
  cJSON_AddStringToObject(args, "alg", fresh.alg);
  berth_error *aerr = NULL;
  berth_action_record(st, actor, "oidc.rotate", fresh.kid, args, rc < 0 ? err : NULL, &aerr);
  berth_error_free(aerr);
  cJSON_Delete(args);
  free(actor);
  if (rc == 0)
    printf("new OIDC signing key %s (%s); the previous one stays published for 1 h\n", fresh.kid, fresh.alg);
  berth_oidc_key_clear(&fresh);
  return rc < 0 ? cli_fail(err) : 0;
}

static int
oidc_config(berth_store *st, const char *issuer)
{
  berth_error *err = NULL;
  berth_config cfg;
  if (berth_config_load(berth_store_home(st), &cfg, &err) < 0)
    return cli_fail(err);
  if (issuer == NULL)
    issuer = cfg.oidc_issuer;
  int rc = 0;
  if (issuer == NULL) {
    rc = cli_usage_error("oidc config: no issuer URL (--issuer URL, or oidc_issuer in config.json)");
  } else {
    cJSON *j = berth_oidc_discovery(issuer);
    print_json(j);
    cJSON_Delete(j);
  }
  berth_config_clear(&cfg);
  return rc;
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
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (c == 'a' && strcmp(sub, "rotate") == 0)
      alg = optarg;
    else if (c == 'i' && strcmp(sub, "config") == 0)
      issuer = optarg;
    else if (c == 'h') {
      fputs(oidc_usage, stdout);
      return 0;
    } else
      return cli_usage_error("oidc %s: unknown option (see 'berth oidc --help')", sub);
  }
  if (optind < argc)
    return cli_usage_error("oidc %s: unexpected argument `%s`", sub, argv[optind]);
  if (strcmp(sub, "rotate") != 0 && strcmp(sub, "jwks") != 0 && strcmp(sub, "config") != 0)
    return cli_usage_error("unknown oidc command '%s' (see 'berth oidc --help')", sub);
  berth_store *st = NULL;
  int rc = cli_open_store(&st);
  if (rc != 0)
    return rc;
  if (strcmp(sub, "rotate") == 0)
    rc = oidc_rotate(st, alg);
  else if (strcmp(sub, "jwks") == 0)
    rc = oidc_jwks(st);
  else
    rc = oidc_config(st, issuer);
  berth_store_close(st);
  return rc;
}
