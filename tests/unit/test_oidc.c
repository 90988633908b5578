/* The OIDC issuer's tokens, checked by an independent implementation: PyJWT (Debian's python3-jwt) verifies each
 * token against the JWKS berth publishes: signature, every claim, expiry; a tampered token and a token after its
 * key's publication ended fail. Skipped with one line where /usr/bin/python3 has no jwt module. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "berth/oidc.h"

#define PY "/usr/bin/python3"

static const char verify_py[]
    = "import json, sys, jwt\n"
      "tok, jwks, aud = open(sys.argv[1]).read(), json.load(open(sys.argv[2])), sys.argv[3]\n"
      "kid = jwt.get_unverified_header(tok)['kid']\n"
      "keys = {k['kid']: k for k in jwks['keys']}\n"
      "if kid not in keys: print('kid not published'); sys.exit(3)\n"
      "key = jwt.PyJWK.from_dict(keys[kid])\n"
      "c = jwt.decode(tok, key.key, algorithms=['ES256', 'RS256'], audience=aud, issuer='https://berth.example',\n"
      "               options={'require': ['exp', 'iat', 'nbf', 'sub', 'jti']})\n"
      "want = {'sub': 'stack:infra:task:01task', 'jti': '01task', 'stack': 'infra', 'task_id': '01task',\n"
      "        'triggered_by': 'alice', 'run_type': 'TASK', 'skip_init': True, 'host': 'h1'}\n"
      "bad = {k: (c.get(k), v) for k, v in want.items() if c.get(k) != v}\n"
      "if bad or c['exp'] - c['iat'] != 600: print('claims', bad, c); sys.exit(4)\n"
      "print('verified', kid)\n";

static bool
have_pyjwt(void)
{
  return access(PY, X_OK) == 0 && system(PY " -c 'import jwt, cryptography' 2>/dev/null") == 0;
}

static void
write_file(const char *path, const char *s)
{
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(s, f);
  fclose(f);
}

/* 0 when PyJWT verifies the token against the JWKS for audience aud. */
static int
pyjwt_verify(const char *dir, const char *token, const cJSON *jwks, const char *aud)
{
  char tp[512], jp[512], sp[512], cmd[2048];
  snprintf(tp, sizeof tp, "%s/token", dir);
  snprintf(jp, sizeof jp, "%s/jwks.json", dir);
  snprintf(sp, sizeof sp, "%s/verify.py", dir);
  write_file(tp, token);
  char *j = cJSON_PrintUnformatted(jwks);
  write_file(jp, j);
  free(j);
  write_file(sp, verify_py);
  snprintf(cmd, sizeof cmd, PY " %s %s %s %s >/dev/null 2>&1", sp, tp, jp, aud);
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *
task_token(const berth_oidc_key *k, int64_t now_ms)
{
  const char *auds[] = { "sts.amazonaws.com" };
  berth_oidc_task t = { .issuer = "https://berth.example",
                        .audiences = auds,
                        .n_audiences = 1,
                        .stack = "infra",
                        .task_id = "01task",
                        .triggered_by = "alice",
                        .skip_init = true,
                        .host = "h1",
                        .now_ms = now_ms,
                        .ttl_ms = 600000 };
  cJSON *c = berth_oidc_task_claims(&t);
  berth_error *err = NULL;
  char *tok = berth_oidc_sign(k, c, &err);
  cJSON_Delete(c);
  assert_non_null(tok);
  return tok;
}

static void
test_tokens_verify_independently(void **state)
{
  (void) state;
  if (!have_pyjwt()) {
    print_message("skipped: " PY " has no jwt module (python3-jwt)\n");
    skip();
  }
  char dir[] = "/tmp/berth-oidc.XXXXXX";
  assert_non_null(mkdtemp(dir));
  berth_error *err = NULL;
  int64_t now = (int64_t) time(NULL) * 1000;
  const char *algs[] = { "ES256", "RS256" };
  for (int a = 0; a < 2; a++) {
    berth_oidc_key keys[2];
    assert_int_equal(berth_oidc_key_generate(algs[a], now, &keys[0], &err), 0);
    char *tok = task_token(&keys[0], now);
    cJSON *jwks = berth_oidc_jwks(keys, 1, now, &err);
    assert_non_null(jwks);
    assert_int_equal(pyjwt_verify(dir, tok, jwks, "sts.amazonaws.com"), 0);
    /* another audience is refused */
    assert_int_not_equal(pyjwt_verify(dir, tok, jwks, "other"), 0);
    /* a tampered payload fails the signature */
    char *dot = strchr(tok, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    assert_int_not_equal(pyjwt_verify(dir, tok, jwks, "sts.amazonaws.com"), 0);
    free(tok);
    /* rotation: the old key stays published until its tokens expire, new tokens use the new key */
    char *old_tok = task_token(&keys[0], now);
    keys[0].retired_at = now;
    keys[0].publish_until = now + BERTH_OIDC_MAX_TTL_MS;
    assert_int_equal(berth_oidc_key_generate(algs[a], now, &keys[1], &err), 0);
    assert_string_not_equal(keys[0].kid, keys[1].kid);
    char *new_tok = task_token(&keys[1], now);
    cJSON_Delete(jwks);
    jwks = berth_oidc_jwks(keys, 2, now, &err);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(jwks, "keys")), 2);
    assert_int_equal(pyjwt_verify(dir, old_tok, jwks, "sts.amazonaws.com"), 0);
    assert_int_equal(pyjwt_verify(dir, new_tok, jwks, "sts.amazonaws.com"), 0);
    /* after the old key's publication ends, its tokens no longer verify against the JWKS */
    cJSON_Delete(jwks);
    jwks = berth_oidc_jwks(keys, 2, now + BERTH_OIDC_MAX_TTL_MS + 1, &err);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(jwks, "keys")), 1);
    assert_int_equal(pyjwt_verify(dir, old_tok, jwks, "sts.amazonaws.com"), 3);
    free(old_tok);
    free(new_tok);
    cJSON_Delete(jwks);
    berth_oidc_key_clear(&keys[0]);
    berth_oidc_key_clear(&keys[1]);
  }
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

static void
test_expired_token_fails(void **state)
{
  (void) state;
  if (!have_pyjwt())
    skip();
  char dir[] = "/tmp/berth-oidc.XXXXXX";
  assert_non_null(mkdtemp(dir));
  berth_error *err = NULL;
  berth_oidc_key k;
  assert_int_equal(berth_oidc_key_generate(NULL, 0, &k, &err), 0);
  assert_string_equal(k.alg, "ES256");
  int64_t long_ago = ((int64_t) time(NULL) - 7200) * 1000;
  char *tok = task_token(&k, long_ago);
  cJSON *jwks = berth_oidc_jwks(&k, 1, long_ago, &err);
  assert_int_not_equal(pyjwt_verify(dir, tok, jwks, "sts.amazonaws.com"), 0);
  free(tok);
  cJSON_Delete(jwks);
  berth_oidc_key_clear(&k);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

static void
test_bad_input(void **state)
{
  (void) state;
  berth_error *err = NULL;
  berth_oidc_key k;
  assert_int_equal(berth_oidc_key_generate("HS256", 0, &k, &err), BERTH_EINVAL);
  assert_non_null(strstr(err->msg, "not ES256 or RS256"));
  berth_error_clear(&err);
  assert_int_equal(berth_oidc_audience_check("has space", &err), BERTH_EINVAL);
  berth_error_clear(&err);
  assert_int_equal(berth_oidc_audience_check("", &err), BERTH_EINVAL);
  berth_error_clear(&err);
  assert_int_equal(berth_oidc_audience_check("sts.amazonaws.com", &err), 0);
  /* the claims: one audience is a string, several an array; the ttl is capped at an hour */
  const char *auds[] = { "a", "b" };
  berth_oidc_task t = { .issuer = "i",
                        .audiences = auds,
                        .n_audiences = 2,
                        .stack = "s",
                        .task_id = "t",
                        .now_ms = 1000000,
                        .ttl_ms = 24LL * 3600 * 1000 };
  cJSON *c = berth_oidc_task_claims(&t);
  assert_true(cJSON_IsArray(cJSON_GetObjectItem(c, "aud")));
  assert_int_equal((int64_t) cJSON_GetNumberValue(cJSON_GetObjectItem(c, "exp"))
                       - (int64_t) cJSON_GetNumberValue(cJSON_GetObjectItem(c, "iat")),
                   3600);
  cJSON_Delete(c);
  cJSON *d = berth_oidc_discovery("https://berth.example");
  assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(d, "jwks_uri")),
                      "https://berth.example/.well-known/jwks.json");
  cJSON_Delete(d);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_tokens_verify_independently),
    cmocka_unit_test(test_expired_token_fails),
    cmocka_unit_test(test_bad_input),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
