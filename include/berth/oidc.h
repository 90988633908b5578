/* berth as an OpenID Connect issuer: signing keys, the task identity token, the JWKS and discovery documents.
 *
 * Keys are generated with OpenSSL (ES256 on P-256 by default, RS256 with 2048-bit RSA), identified by their RFC 7638
 * thumbprint, and signed with OpenSSL's EVP interface; nothing here is home-made cryptography. A key set has one
 * active key (the one that signs) and the retired keys whose public halves stay published until every token they
 * signed has expired (publish_until). Where keys are kept (encrypted, in the store) is the caller's business.
 *
 * Ownership: strings and cJSON results belong to the caller; berth_oidc_key_clear frees a key's fields. */
#ifndef BERTH_OIDC_H
#define BERTH_OIDC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "berth/error.h"
#include "berth/store.h"

/* The longest a task token lives, whatever the run timeout (the issue of a token is capped at this). */
#define BERTH_OIDC_MAX_TTL_MS (60LL * 60 * 1000)

typedef struct berth_oidc_key {
  char *kid;             /* RFC 7638 thumbprint of the public key, base64url */
  char *alg;             /* "ES256" or "RS256" */
  char *private_pem;     /* PKCS#8 PEM: a secret */
  int64_t created_at;    /* unix ms */
  int64_t retired_at;    /* 0: the active key */
  int64_t publish_until; /* retired keys: published in the JWKS until then (unix ms) */
} berth_oidc_key;

/* A new key for alg ("ES256" or "RS256"; NULL = ES256). BERTH_EINVAL for another alg. */
int berth_oidc_key_generate(const char *alg, int64_t now_ms, berth_oidc_key *out, berth_error **err);
void berth_oidc_key_clear(berth_oidc_key *k);

/* The public JWK of a key: {"kty", "crv"/"x"/"y" or "n"/"e", "kid", "alg", "use": "sig"}. */
cJSON *berth_oidc_key_jwk(const berth_oidc_key *k, berth_error **err);
/* {"keys": [...]}: the active key and the retired keys still published at now_ms. */
cJSON *berth_oidc_jwks(const berth_oidc_key *keys, size_t n, int64_t now_ms, berth_error **err);
/* The discovery document (/.well-known/openid-configuration) for issuer (the public URL, no trailing slash). */
cJSON *berth_oidc_discovery(const char *issuer);

/* A compact JWS (header.payload.signature) of claims, signed with k; the header names k's kid and alg. */
char *berth_oidc_sign(const berth_oidc_key *k, const cJSON *claims, berth_error **err);

/* What a task's token says. */
typedef struct berth_oidc_task {
  const char *issuer;
  const char *const *audiences;
  size_t n_audiences;
  const char *stack;
  const char *task_id;
  const char *triggered_by;
  bool skip_init;
  const char *host;
  int64_t now_ms;
  int64_t ttl_ms; /* the run timeout; capped at BERTH_OIDC_MAX_TTL_MS */
} berth_oidc_task;
/* The claims of a task token: iss, aud (a string for one audience, else an array), sub = stack:NAME:task:ID, iat,
 * nbf, exp, jti = the task id, and stack, task_id, triggered_by, run_type = "TASK", skip_init, host. */
cJSON *berth_oidc_task_claims(const berth_oidc_task *t);

/* An audience is a non-empty string of printable ASCII without spaces, at most 256 bytes. */
int berth_oidc_audience_check(const char *aud, berth_error **err);

/* ---- the keys in the store (src/lib/store/oidc_keys.c) ---- */
/* Every key kept (the active one and those still published), oldest first; private keys unsealed. */
int berth_store_oidc_keys(berth_store *st, berth_oidc_key **out, size_t *n, berth_error **err);
void berth_oidc_keys_free(berth_oidc_key *keys, size_t n);
/* Makes fresh the active key: the previous one is retired and stays published for BERTH_OIDC_MAX_TTL_MS. One
 * transaction. */
int berth_store_oidc_rotate(berth_store *st, const berth_oidc_key *fresh, int64_t now_ms, berth_error **err);
/* The active key, made on first use (alg NULL = ES256). */
int berth_store_oidc_signing_key(berth_store *st, const char *alg, int64_t now_ms, berth_oidc_key *out,
                                 berth_error **err);

#endif
