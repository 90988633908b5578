/* API keys for server mode: who calls the HTTP API, with which role, on which stacks.
 *
 * A key is the string "berth_<id>_<secret>": <id> is 12 lowercase hex characters (public, the lookup handle) and
 * <secret> 43 base64url characters (256 random bits). Only an argon2id hash of the whole key (libsodium
 * crypto_pwhash_str, salted, t=2, m=19 MiB) is stored, in the store table `api_keys`; the key itself is shown once,
 * by berth_apikey_create, and never again.
 *
 * Verification is costly by design (tens of ms), so a server keeps a berth_apikey_cache: after one successful
 * argon2id verification, later requests with the same key are checked against a keyed BLAKE2b MAC of the key
 * (random per-process key, constant-time compare), and the key's row is still read on every request, so a revoke
 * (from any process) takes effect on the next request.
 *
 * Roles: "reader" (read stacks, tasks, logs), "writer" (also run and cancel its own tasks, lock and unlock its own
 * locks), "admin" (everything). A reader or writer may be scoped to stacks (globs are not allowed: exact names).
 *
 * Ownership: records and JSON returned through out pointers belong to the caller (berth_apikey_free, cJSON_Delete,
 * free for the secret, which should be wiped with sodium_memzero or explicit_bzero after use). */
#ifndef BERTH_APIKEY_H
#define BERTH_APIKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/error.h"
#include "berth/store.h"

struct cJSON;

#define BERTH_APIKEY_MAX_LEN 128   /* longer bearer tokens are refused before any work */
#define BERTH_APIKEY_MAX_STACKS 64 /* stacks a scoped key may name */

typedef struct berth_apikey {
  char *id;          /* 12 hex chars */
  char *name;        /* [A-Za-z0-9][A-Za-z0-9_.-]{0,62}, unique among live keys */
  char *role;        /* "reader" | "writer" | "admin" */
  berth_strv stacks; /* empty = every stack */
  char *created_by;
  int64_t created_at;
  int64_t last_used_at; /* 0 = never; updated at most once a minute per server process */
  int64_t revoked_at;   /* 0 = live */
} berth_apikey;

void berth_apikey_free(berth_apikey *k); /* accepts NULL */

/* True when role is one of the three names. */
bool berth_apikey_role_valid(const char *role);
/* True when k may act on stack (k unscoped, or stack among its stacks). */
bool berth_apikey_allows_stack(const berth_apikey *k, const char *stack);

/* Creates a key and returns its one-time text in *secret_out. BERTH_EINVAL for a bad name, role or stack name,
 * or stacks on an admin key; BERTH_EBUSY "API key `x` already exists". */
int berth_apikey_create(berth_store *st, const char *name, const char *role, const char *const *stacks, size_t n_stacks,
                        const char *actor, char **secret_out, berth_error **err);
/* Revokes the live key with this name (the record is kept, marked revoked): BERTH_ENOTFOUND "no API key `x`". */
int berth_apikey_revoke(berth_store *st, const char *name, berth_error **err);
/* {"keys":[{"id","name","role","stacks":[],"created_by","created_at","last_used_at","revoked_at"}]} by name,
 * live keys only unless include_revoked. Never contains a secret or a hash. */
struct cJSON *berth_apikey_list_json(berth_store *st, bool include_revoked, berth_error **err);
/* One key record as JSON (same fields as a list entry). */
struct cJSON *berth_apikey_to_json(const berth_apikey *k);

/* A per-process cache of verified keys; thread-safe. At most one argon2id verification runs at a time in a cache
 * (a flood of wrong secrets costs one core, not all of them), and requests with the same key that arrive together
 * wait for one verification of it, not one each. */
typedef struct berth_apikey_cache berth_apikey_cache;
int berth_apikey_cache_new(berth_apikey_cache **out, berth_error **err);
void berth_apikey_cache_free(berth_apikey_cache *c); /* accepts NULL */
/* How many argon2id verifications the cache's callers made (a key found in the cache makes none). */
size_t berth_apikey_cache_verifications(berth_apikey_cache *c);

/* Checks a presented key. BERTH_EDENIED "invalid API key" for anything malformed, unknown, revoked or wrong
 * (the message never says which, nor echoes the token). On success *out gets the key's record. cache may be NULL
 * (every call then pays the full verification). */
int berth_apikey_authenticate(berth_store *st, berth_apikey_cache *cache, const char *token, berth_apikey **out,
                              berth_error **err);

#endif
