/* OIDC issuer: keys, JWK/JWKS, compact JWS signing, task claims (include/berth/oidc.h). OpenSSL 3 EVP only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "berth/buf.h"
#include "berth/oidc.h"

#define ES256_PART 32 /* bytes of r and of s in a JWS ES256 signature */

/* base64url without padding (RFC 7515, section 2). */
static char *
b64url(const unsigned char *p, size_t n)
{
  char *out = malloc(4 * ((n + 2) / 3) + 1);
  if (out == NULL)
    return NULL;
  int len = EVP_EncodeBlock((unsigned char *) out, p, (int) n);
  while (len > 0 && out[len - 1] == '=')
    len--;
  out[len] = '\0';
  for (int i = 0; i < len; i++)
    out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
  return out;
}

static char *
b64url_bn(const BIGNUM *bn, int pad)
{
  int n = pad > 0 ? pad : BN_num_bytes(bn);
  unsigned char *buf = malloc((size_t) (n > 0 ? n : 1));
  char *s = NULL;
  if (buf != NULL && BN_bn2binpad(bn, buf, n) == n)
    s = b64url(buf, (size_t) n);
  free(buf);
  return s;
}

static EVP_PKEY *
load_key(const berth_oidc_key *k, berth_error **err)
{
  BIO *bio = BIO_new_mem_buf(k->private_pem, -1);
  EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
  BIO_free(bio);
  if (pkey == NULL)
    berth_error_set(err, BERTH_EINTERNAL, "OIDC signing key %s cannot be read", k->kid ? k->kid : "?");
  return pkey;
}

/* The public members of the JWK, in the lexicographic order RFC 7638 hashes them. */
static cJSON *
public_members(EVP_PKEY *pkey, const char *alg, berth_error **err)
{
  cJSON *j = cJSON_CreateObject();
  BIGNUM *a = NULL, *b = NULL;
  char *sa = NULL, *sb = NULL;
  bool ec = strcmp(alg, "ES256") == 0;
  if (ec) {
    if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &a)
        && EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &b)) {
      sa = b64url_bn(a, ES256_PART);
      sb = b64url_bn(b, ES256_PART);
    }
    if (j && sa && sb) {
      cJSON_AddStringToObject(j, "crv", "P-256");
      cJSON_AddStringToObject(j, "kty", "EC");
      cJSON_AddStringToObject(j, "x", sa);
      cJSON_AddStringToObject(j, "y", sb);
    }
  } else {
    if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &a)
        && EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &b)) {
      sa = b64url_bn(a, 0);
      sb = b64url_bn(b, 0);
    }
    if (j && sa && sb) {
      cJSON_AddStringToObject(j, "e", sa);
      cJSON_AddStringToObject(j, "kty", "RSA");
      cJSON_AddStringToObject(j, "n", sb);
    }
  }
  bool ok = j != NULL && sa != NULL && sb != NULL;
  BN_free(a);
  BN_free(b);
  free(sa);
  free(sb);
  if (!ok) {
    cJSON_Delete(j);
    berth_error_set(err, BERTH_EINTERNAL, "read the public half of an %s key", alg);
    return NULL;
  }
  return j;
}

static char *
thumbprint(const cJSON *members)
{
  char *canon = cJSON_PrintUnformatted(members);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  char *kid = NULL;
  if (canon != NULL && EVP_Digest(canon, strlen(canon), md, &mdlen, EVP_sha256(), NULL))
    kid = b64url(md, mdlen);
  free(canon);
  return kid;
}

int
berth_oidc_key_generate(const char *alg, int64_t now_ms, berth_oidc_key *out, berth_error **err)
{
  memset(out, 0, sizeof *out);
  if (alg == NULL)
    alg = "ES256";
  bool ec = strcmp(alg, "ES256") == 0;
  if (!ec && strcmp(alg, "RS256") != 0)
    return berth_error_set(err, BERTH_EINVAL, "OIDC signing algorithm `%.32s` is not ES256 or RS256", alg);
  EVP_PKEY *pkey
      = ec ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256") : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
  if (pkey == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "generate an %s key: OpenSSL failed", alg);
  BIO *bio = BIO_new(BIO_s_mem());
  char *pem = NULL;
  if (bio != NULL && PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)) {
    char *p = NULL;
    long n = BIO_get_mem_data(bio, &p);
    pem = n > 0 ? strndup(p, (size_t) n) : NULL;
  }
  BIO_free(bio);
  cJSON *members = pem ? public_members(pkey, alg, err) : NULL;
  EVP_PKEY_free(pkey);
  char *kid = members ? thumbprint(members) : NULL;
  cJSON_Delete(members);
  out->alg = strdup(alg);
  if (pem == NULL || kid == NULL || out->alg == NULL) {
    if (pem != NULL) {
      explicit_bzero(pem, strlen(pem));
      free(pem);
    }
    free(kid);
    free(out->alg);
    out->alg = NULL;
    return berth_error_set(err, BERTH_EINTERNAL, "generate an %s key: out of memory or OpenSSL failed", alg);
  }
  out->private_pem = pem;
  out->kid = kid;
  out->created_at = now_ms;
  return 0;
}

void
berth_oidc_key_clear(berth_oidc_key *k)
{
  if (k == NULL)
    return;
  if (k->private_pem != NULL) {
    explicit_bzero(k->private_pem, strlen(k->private_pem));
    free(k->private_pem);
  }
  free(k->kid);
  free(k->alg);
  memset(k, 0, sizeof *k);
}

cJSON *
berth_oidc_key_jwk(const berth_oidc_key *k, berth_error **err)
{
  EVP_PKEY *pkey = load_key(k, err);
  if (pkey == NULL)
    return NULL;
  cJSON *j = public_members(pkey, k->alg, err);
  EVP_PKEY_free(pkey);
  if (j != NULL) {
    cJSON_AddStringToObject(j, "kid", k->kid);
    cJSON_AddStringToObject(j, "alg", k->alg);
    cJSON_AddStringToObject(j, "use", "sig");
  }
  return j;
}

cJSON *
berth_oidc_jwks(const berth_oidc_key *keys, size_t n, int64_t now_ms, berth_error **err)
{
  cJSON *root = cJSON_CreateObject();
  cJSON *arr = root ? cJSON_AddArrayToObject(root, "keys") : NULL;
  if (arr == NULL) {
    cJSON_Delete(root);
    berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    if (keys[i].retired_at != 0 && keys[i].publish_until <= now_ms)
      continue;
    cJSON *jwk = berth_oidc_key_jwk(&keys[i], err);
    if (jwk == NULL) {
      cJSON_Delete(root);
      return NULL;
    }
    cJSON_AddItemToArray(arr, jwk);
  }
  return root;
}

cJSON *
berth_oidc_discovery(const char *issuer)
{
  cJSON *j = cJSON_CreateObject();
  char *jwks = NULL;
  if (j == NULL || asprintf(&jwks, "%s/.well-known/jwks.json", issuer) < 0) {
    cJSON_Delete(j);
    return NULL;
  }
  cJSON_AddStringToObject(j, "issuer", issuer);
  cJSON_AddStringToObject(j, "jwks_uri", jwks);
  free(jwks);
  cJSON *rt = cJSON_AddArrayToObject(j, "response_types_supported");
  cJSON_AddItemToArray(rt, cJSON_CreateString("id_token"));
  cJSON *st = cJSON_AddArrayToObject(j, "subject_types_supported");
  cJSON_AddItemToArray(st, cJSON_CreateString("public"));
  cJSON *algs = cJSON_AddArrayToObject(j, "id_token_signing_alg_values_supported");
  cJSON_AddItemToArray(algs, cJSON_CreateString("ES256"));
  cJSON_AddItemToArray(algs, cJSON_CreateString("RS256"));
  cJSON *claims = cJSON_AddArrayToObject(j, "claims_supported");
  static const char *const names[] = { "iss",   "aud",     "sub",          "iat",      "nbf",       "exp", "jti",
                                       "stack", "task_id", "triggered_by", "run_type", "skip_init", "host" };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    cJSON_AddItemToArray(claims, cJSON_CreateString(names[i]));
  return j;
}

/* ECDSA signatures come DER-encoded from OpenSSL; JWS wants r || s, each 32 bytes. */
static int
es256_raw(const unsigned char *der, size_t len, unsigned char raw[2 * ES256_PART])
{
  const unsigned char *p = der;
  ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long) len);
  if (sig == NULL)
    return -1;
  const BIGNUM *r = NULL, *s = NULL;
  ECDSA_SIG_get0(sig, &r, &s);
  int ok
      = BN_bn2binpad(r, raw, ES256_PART) == ES256_PART && BN_bn2binpad(s, raw + ES256_PART, ES256_PART) == ES256_PART;
  ECDSA_SIG_free(sig);
  return ok ? 0 : -1;
}

char *
berth_oidc_sign(const berth_oidc_key *k, const cJSON *claims, berth_error **err)
{
  EVP_PKEY *pkey = load_key(k, err);
  if (pkey == NULL)
    return NULL;
  cJSON *hdr = cJSON_CreateObject();
  cJSON_AddStringToObject(hdr, "alg", k->alg);
  cJSON_AddStringToObject(hdr, "kid", k->kid);
  cJSON_AddStringToObject(hdr, "typ", "JWT");
  char *hj = cJSON_PrintUnformatted(hdr), *pj = cJSON_PrintUnformatted(claims);
  cJSON_Delete(hdr);
  char *h64 = hj ? b64url((const unsigned char *) hj, strlen(hj)) : NULL;
  char *p64 = pj ? b64url((const unsigned char *) pj, strlen(pj)) : NULL;
  free(hj);
  free(pj);
  char *input = NULL, *out = NULL, *s64 = NULL;
  unsigned char *sig = NULL;
  size_t siglen = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (h64 && p64 && asprintf(&input, "%s.%s", h64, p64) >= 0 && ctx
      && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1
      && EVP_DigestSign(ctx, NULL, &siglen, (const unsigned char *) input, strlen(input)) == 1
      && (sig = malloc(siglen)) != NULL
      && EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *) input, strlen(input)) == 1) {
    unsigned char raw[2 * ES256_PART];
    if (strcmp(k->alg, "ES256") == 0)
      s64 = es256_raw(sig, siglen, raw) == 0 ? b64url(raw, sizeof raw) : NULL;
    else
      s64 = b64url(sig, siglen);
    if (s64 != NULL && asprintf(&out, "%s.%s", input, s64) < 0)
      out = NULL;
  }
  if (out == NULL)
    berth_error_set(err, BERTH_EINTERNAL, "sign a token with key %s: OpenSSL failed", k->kid);
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pkey);
  free(sig);
  free(s64);
  free(input);
  free(h64);
  free(p64);
  return out;
}

cJSON *
berth_oidc_task_claims(const berth_oidc_task *t)
{
  cJSON *c = cJSON_CreateObject();
  if (c == NULL)
    return NULL;
  int64_t ttl = t->ttl_ms > 0 && t->ttl_ms < BERTH_OIDC_MAX_TTL_MS ? t->ttl_ms : BERTH_OIDC_MAX_TTL_MS;
  double now = (double) (t->now_ms / 1000);
  char *sub = NULL;
  if (asprintf(&sub, "stack:%s:task:%s", t->stack, t->task_id) < 0)
    sub = NULL;
  cJSON_AddStringToObject(c, "iss", t->issuer);
  if (t->n_audiences == 1) {
    cJSON_AddStringToObject(c, "aud", t->audiences[0]);
  } else {
    cJSON *aud = cJSON_AddArrayToObject(c, "aud");
    for (size_t i = 0; i < t->n_audiences; i++)
      cJSON_AddItemToArray(aud, cJSON_CreateString(t->audiences[i]));
  }
  cJSON_AddStringToObject(c, "sub", sub ? sub : "");
  free(sub);
  cJSON_AddNumberToObject(c, "iat", now);
  cJSON_AddNumberToObject(c, "nbf", now);
  cJSON_AddNumberToObject(c, "exp", now + (double) (ttl / 1000));
  cJSON_AddStringToObject(c, "jti", t->task_id);
  cJSON_AddStringToObject(c, "stack", t->stack);
  cJSON_AddStringToObject(c, "task_id", t->task_id);
  cJSON_AddStringToObject(c, "triggered_by", t->triggered_by ? t->triggered_by : "");
  cJSON_AddStringToObject(c, "run_type", "TASK");
  cJSON_AddBoolToObject(c, "skip_init", t->skip_init);
  cJSON_AddStringToObject(c, "host", t->host ? t->host : "");
  return c;
}

int
berth_oidc_audience_check(const char *aud, berth_error **err)
{
  size_t n = aud ? strlen(aud) : 0;
  if (n == 0 || n > 256)
    return berth_error_set(err, BERTH_EINVAL, "OIDC audience must be 1 to 256 characters");
  for (size_t i = 0; i < n; i++)
    if (aud[i] <= ' ' || aud[i] > '~')
      return berth_error_set(err, BERTH_EINVAL,
                             "OIDC audience `%.64s` has a space or a character that is not printable ASCII", aud);
  return 0;
}
