/* API keys: creation (the secret shown once), argon2id hashes at rest, lookup by id, a verified-key cache. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "berth/role.h"
#include "berth/apikey.h"
#include "berth/task_json.h"
#include "store/db.h"

#define KEY_PREFIX "berth_"
#define ID_BYTES 6
#define ID_HEX (ID_BYTES * 2)
#define SECRET_BYTES 32
/* OWASP's argon2id minimum (t=2, m=19 MiB, p=1): the secret has 256 random bits, so the hash only has to make an
 * offline attack on a stolen store pointless, and a first verification stays around 30 ms. */
#define HASH_OPSLIMIT 2
#define HASH_MEMLIMIT (19u << 20)
#define CACHE_MAX 1024
#define LAST_USED_EVERY_MS 60000

void
berth_apikey_free(berth_apikey *k)
{
  if (k == NULL)
    return;
  free(k->id);
  free(k->name);
  free(k->role);
  berth_strv_clear(&k->stacks);
  free(k->created_by);
  free(k);
}

bool
berth_apikey_role_valid(const char *role)
{
  return berth_role_parse(role) != BERTH_ROLE_NONE;
}

bool
berth_apikey_allows_stack(const berth_apikey *k, const char *stack)
{
  if (k->stacks.n == 0)
    return true;
  for (size_t i = 0; stack && i < k->stacks.n; i++)
    if (strcmp(k->stacks.v[i], stack) == 0)
      return true;
  return false;
}

static int
validate_name(const char *name, berth_error **err)
{
  size_t n = name ? strlen(name) : 0;
  bool ok = n >= 1 && n <= 63;
  for (size_t i = 0; ok && i < n; i++) {
    char c = name[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    ok = alnum || (i > 0 && (c == '_' || c == '.' || c == '-'));
  }
  if (!ok)
    return berth_error_set(err, BERTH_EINVAL,
                           "API key name `%.64s` is invalid (1 to 63 of A-Z a-z 0-9 _ . -, starting with a letter or "
                           "digit)",
                           name ? name : "");
  return 0;
}

static char *
stacks_text(const char *const *stacks, size_t n)
{
  cJSON *a = cJSON_CreateArray();
  for (size_t i = 0; a && i < n; i++)
    cJSON_AddItemToArray(a, cJSON_CreateString(stacks[i]));
  char *s = a ? cJSON_PrintUnformatted(a) : NULL;
  cJSON_Delete(a);
  return s;
}

static void
stacks_parse(const char *text, berth_strv *out)
{
  cJSON *a = cJSON_Parse(text ? text : "[]");
  const cJSON *e;
  cJSON_ArrayForEach(e, a)
  {
    if (cJSON_IsString(e))
      berth_strv_push(out, e->valuestring);
  }
  cJSON_Delete(a);
}

int
berth_apikey_create(berth_store *st, const char *name, const char *role, const char *const *stacks, size_t n_stacks,
                    const char *actor, char **secret_out, berth_error **err)
{
  int rc = validate_name(name, err);
  if (rc < 0)
    return rc;
  if (!berth_apikey_role_valid(role))
    return berth_error_set(err, BERTH_EINVAL, "API key role `%.32s` is invalid (admin, writer or reader)",
                           role ? role : "");
  if (n_stacks > 0 && berth_role_parse(role) == BERTH_ROLE_ADMIN)
    return berth_error_set(err, BERTH_EINVAL, "API key `%s`: an admin key cannot be limited to stacks", name);
  if (n_stacks > BERTH_APIKEY_MAX_STACKS)
    return berth_error_set(err, BERTH_EINVAL, "API key `%s`: at most %d stacks", name, BERTH_APIKEY_MAX_STACKS);
  for (size_t i = 0; i < n_stacks; i++)
    if ((rc = berth_stack_validate_name(stacks[i], err)) < 0)
      return berth_error_wrap(err, "API key `%s`", name);
  if (sodium_init() < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "initialize libsodium");

  unsigned char idb[ID_BYTES], sec[SECRET_BYTES];
  char id[ID_HEX + 1], sec64[sodium_base64_ENCODED_LEN(SECRET_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  randombytes_buf(idb, sizeof idb);
  randombytes_buf(sec, sizeof sec);
  sodium_bin2hex(id, sizeof id, idb, sizeof idb);
  sodium_bin2base64(sec64, sizeof sec64, sec, sizeof sec, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero(sec, sizeof sec);
  char *key = NULL;
  if (asprintf(&key, KEY_PREFIX "%s_%s", id, sec64) < 0)
    key = NULL;
  sodium_memzero(sec64, sizeof sec64);
  if (key == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "create API key `%s`: out of memory", name);
  char hash[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(hash, key, strlen(key), HASH_OPSLIMIT, HASH_MEMLIMIT, crypto_pwhash_ALG_ARGON2ID13) != 0) {
    sodium_memzero(key, strlen(key));
    free(key);
    return berth_error_set(err, BERTH_EINTERNAL, "hash API key `%s`: out of memory", name);
  }
  char *stx = stacks_text(stacks, n_stacks);
  db_stmt *stmt = NULL;
  int64_t added = 0;
  /* a live key with the same name conflicts with the partial unique index on name */
  rc = db_prepare(store_db(st),
                  "INSERT INTO api_keys (id, name, role, stacks, hash, created_by, created_at)"
                  " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                  &stmt, err);
  if (rc == 0) {
    db_bind_text(stmt, 1, id);
    db_bind_text(stmt, 2, name);
    db_bind_text(stmt, 3, role);
    db_bind_text(stmt, 4, stx ? stx : "[]");
    db_bind_text(stmt, 5, hash);
    db_bind_text(stmt, 6, actor);
    db_bind_int64(stmt, 7, berth_now_ms());
    rc = db_run(stmt, &added, err);
  }
  if (rc < 0)
    berth_error_wrap(err, "create API key `%s`", name);
  else if (added == 0)
    rc = berth_error_set(err, BERTH_EBUSY, "API key `%s` already exists (revoke it first)", name);
  free(stx);
  if (rc < 0) {
    sodium_memzero(key, strlen(key));
    free(key);
    return rc;
  }
  *secret_out = key;
  return 0;
}

int
berth_apikey_revoke(berth_store *st, const char *name, berth_error **err)
{
  db_stmt *stmt = NULL;
  int64_t revoked = 0;
  if (db_prepare(store_db(st), "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at = 0", &stmt, err) < 0)
    return berth_error_wrap(err, "revoke API key");
  db_bind_int64(stmt, 1, berth_now_ms());
  db_bind_text(stmt, 2, name ? name : "");
  if (db_run(stmt, &revoked, err) < 0)
    return berth_error_wrap(err, "revoke API key");
  if (revoked == 0)
    return berth_error_set(err, BERTH_ENOTFOUND, "no API key `%.64s`", name ? name : "");
  return 0;
}

static const char select_cols[] = "SELECT id, name, role, stacks, created_by, created_at, last_used_at, revoked_at,"
                                  " hash FROM api_keys";

static berth_apikey *
row_to_key(db_stmt *stmt)
{
  berth_apikey *k = calloc(1, sizeof *k);
  if (k == NULL)
    return NULL;
  bool oom = false;
  k->id = db_column_strdup(stmt, 0, &oom);
  k->name = db_column_strdup(stmt, 1, &oom);
  k->role = db_column_strdup(stmt, 2, &oom);
  stacks_parse(db_column_text(stmt, 3), &k->stacks);
  k->created_by = db_column_strdup(stmt, 4, &oom);
  k->created_at = db_column_int64(stmt, 5);
  k->last_used_at = db_column_int64(stmt, 6);
  k->revoked_at = db_column_int64(stmt, 7);
  if (oom || k->id == NULL || k->name == NULL || k->role == NULL) {
    berth_apikey_free(k);
    return NULL;
  }
  return k;
}

static void
add_time(cJSON *o, const char *key, int64_t ms)
{
  char *s = ms > 0 ? berth_time_iso(ms) : NULL;
  if (s)
    cJSON_AddStringToObject(o, key, s);
  else
    cJSON_AddNullToObject(o, key);
  free(s);
}

cJSON *
berth_apikey_to_json(const berth_apikey *k)
{
  cJSON *o = cJSON_CreateObject();
  if (o == NULL)
    return NULL;
  cJSON_AddStringToObject(o, "id", k->id);
  cJSON_AddStringToObject(o, "name", k->name);
  cJSON_AddStringToObject(o, "role", k->role);
  cJSON *a = cJSON_AddArrayToObject(o, "stacks");
  for (size_t i = 0; i < k->stacks.n; i++)
    cJSON_AddItemToArray(a, cJSON_CreateString(k->stacks.v[i]));
  if (k->created_by)
    cJSON_AddStringToObject(o, "created_by", k->created_by);
  else
    cJSON_AddNullToObject(o, "created_by");
  add_time(o, "created_at", k->created_at);
  add_time(o, "last_used_at", k->last_used_at);
  add_time(o, "revoked_at", k->revoked_at);
  return o;
}

cJSON *
berth_apikey_list_json(berth_store *st, bool include_revoked, berth_error **err)
{
  char sql[256];
  snprintf(sql, sizeof sql, "%s%s ORDER BY name, created_at", select_cols,
           include_revoked ? "" : " WHERE revoked_at = 0");
  db_stmt *stmt = NULL;
  if (db_prepare(store_db(st), sql, &stmt, err) < 0) {
    berth_error_wrap(err, "list API keys");
    return NULL;
  }
  cJSON *o = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(o, "keys");
  int s;
  while ((s = db_step(stmt, err)) == DB_ROW) {
    berth_apikey *k = row_to_key(stmt);
    if (k)
      cJSON_AddItemToArray(arr, berth_apikey_to_json(k));
    berth_apikey_free(k);
  }
  if (s != DB_DONE) {
    berth_error_wrap(err, "list API keys");
    cJSON_Delete(o);
    o = NULL;
  }
  db_finalize(stmt);
  return o;
}

/* ---- the verified-key cache ---- */

typedef struct cache_entry {
  char id[ID_HEX + 1];
  unsigned char mac[crypto_generichash_BYTES];      /* keyed BLAKE2b of the whole presented key */
  unsigned char hash_mac[crypto_generichash_BYTES]; /* of the stored hash string: a re-keyed row is not trusted */
  int64_t last_used_written;
  bool used;
} cache_entry;

struct berth_apikey_cache {
  pthread_mutex_t mu;        /* guards entries */
  pthread_mutex_t verify_mu; /* one argon2id verification at a time */
  unsigned char mac_key[crypto_generichash_KEYBYTES];
  cache_entry entries[CACHE_MAX];
  size_t next_evict;
  size_t verifications; /* argon2id verifications done; guarded by verify_mu */
};

int
berth_apikey_cache_new(berth_apikey_cache **out, berth_error **err)
{
  if (sodium_init() < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "initialize libsodium");
  berth_apikey_cache *c = sodium_malloc(sizeof *c);
  if (c == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "create the API key cache: out of memory");
  memset(c, 0, sizeof *c);
  pthread_mutex_init(&c->mu, NULL);
  pthread_mutex_init(&c->verify_mu, NULL);
  crypto_generichash_keygen(c->mac_key);
  *out = c;
  return 0;
}

size_t
berth_apikey_cache_verifications(berth_apikey_cache *c)
{
  pthread_mutex_lock(&c->verify_mu);
  size_t n = c->verifications;
  pthread_mutex_unlock(&c->verify_mu);
  return n;
}

void
berth_apikey_cache_free(berth_apikey_cache *c)
{
  if (c == NULL)
    return;
  pthread_mutex_destroy(&c->mu);
  pthread_mutex_destroy(&c->verify_mu);
  sodium_free(c); /* wipes */
}

static void
mac_of(const berth_apikey_cache *c, const char *s, unsigned char out[crypto_generichash_BYTES])
{
  crypto_generichash(out, crypto_generichash_BYTES, (const unsigned char *) s, strlen(s), c->mac_key,
                     sizeof c->mac_key);
}

/* Returns the entry index whose id, key MAC and hash MAC all match, or -1. Caller holds mu. */
static int
cache_find(berth_apikey_cache *c, const char *id, const unsigned char *mac, const unsigned char *hash_mac)
{
  for (size_t i = 0; i < CACHE_MAX; i++) {
    cache_entry *e = &c->entries[i];
    if (!e->used || strcmp(e->id, id) != 0)
      continue;
    if (sodium_memcmp(e->mac, mac, crypto_generichash_BYTES) == 0
        && sodium_memcmp(e->hash_mac, hash_mac, crypto_generichash_BYTES) == 0)
      return (int) i;
  }
  return -1;
}

static int
cache_insert(berth_apikey_cache *c, const char *id, const unsigned char *mac, const unsigned char *hash_mac)
{
  size_t slot = CACHE_MAX;
  for (size_t i = 0; i < CACHE_MAX && slot == CACHE_MAX; i++)
    if (!c->entries[i].used || strcmp(c->entries[i].id, id) == 0)
      slot = i; /* one entry per key id: a new secret for the id replaces the old one */
  if (slot == CACHE_MAX) {
    slot = c->next_evict;
    c->next_evict = (c->next_evict + 1) % CACHE_MAX;
  }
  cache_entry *e = &c->entries[slot];
  memset(e, 0, sizeof *e);
  memcpy(e->id, id, ID_HEX + 1);
  memcpy(e->mac, mac, crypto_generichash_BYTES);
  memcpy(e->hash_mac, hash_mac, crypto_generichash_BYTES);
  e->used = true;
  return (int) slot;
}

/* "berth_<12 hex>_<43 base64url>" -> id; false for anything else. */
static bool
parse_token(const char *token, char id[ID_HEX + 1])
{
  size_t n = strlen(token), pl = strlen(KEY_PREFIX);
  if (n > BERTH_APIKEY_MAX_LEN || n < pl + ID_HEX + 2 || strncmp(token, KEY_PREFIX, pl) != 0)
    return false;
  for (size_t i = 0; i < ID_HEX; i++) {
    char ch = token[pl + i];
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
      return false;
  }
  if (token[pl + ID_HEX] != '_')
    return false;
  for (const char *p = token + pl + ID_HEX + 1; *p; p++) {
    char ch = *p;
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '-' || ch == '_'))
      return false;
  }
  memcpy(id, token + pl, ID_HEX);
  id[ID_HEX] = '\0';
  return true;
}

static void
touch_last_used(berth_store *st, const char *id, int64_t now)
{
  db_stmt *stmt = NULL;
  if (db_prepare(store_db(st), "UPDATE api_keys SET last_used_at = ? WHERE id = ?", &stmt, NULL) == 0) {
    db_bind_int64(stmt, 1, now);
    db_bind_text(stmt, 2, id);
    db_run(stmt, NULL, NULL); /* best effort: a busy store must not refuse the request */
  }
}

int
berth_apikey_authenticate(berth_store *st, berth_apikey_cache *cache, const char *token, berth_apikey **out,
                          berth_error **err)
{
  char id[ID_HEX + 1];
  if (token == NULL || !parse_token(token, id))
    return berth_error_set(err, BERTH_EDENIED, "invalid API key");
  int rc = 0;
  char sql[256];
  snprintf(sql, sizeof sql, "%s WHERE id = ? AND revoked_at = 0", select_cols);
  db_stmt *stmt = NULL;
  if (db_prepare(store_db(st), sql, &stmt, err) < 0)
    return berth_error_wrap(err, "look up API key");
  db_bind_text(stmt, 1, id);
  int s = db_step(stmt, err);
  if (s != DB_ROW) {
    rc = s == DB_DONE ? berth_error_set(err, BERTH_EDENIED, "invalid API key")
                      : berth_error_wrap(err, "look up API key");
    db_finalize(stmt);
    return rc;
  }
  berth_apikey *k = row_to_key(stmt);
  bool oom = false;
  char *hash = db_column_strdup(stmt, 8, &oom);
  db_finalize(stmt);
  if (k == NULL || hash == NULL) {
    berth_apikey_free(k);
    free(hash);
    return berth_error_set(err, BERTH_EINTERNAL, "look up API key: out of memory");
  }
  unsigned char mac[crypto_generichash_BYTES], hash_mac[crypto_generichash_BYTES];
  bool ok = false, write_last_used = false;
  int64_t now = berth_now_ms();
  if (cache) {
    mac_of(cache, token, mac);
    mac_of(cache, hash, hash_mac);
    pthread_mutex_lock(&cache->mu);
    int i = cache_find(cache, id, mac, hash_mac);
    if (i >= 0) {
      ok = true;
      if (now - cache->entries[i].last_used_written >= LAST_USED_EVERY_MS) {
        cache->entries[i].last_used_written = now;
        write_last_used = true;
      }
    }
    pthread_mutex_unlock(&cache->mu);
  }
  if (!ok) {
    bool found = false;
    if (cache) {
      /* requests with the same key that arrive together (a cold server, a CI pipeline's jobs) wait for one
       * verification, not one each in turn: the first verifies, the others find its entry */
      pthread_mutex_lock(&cache->verify_mu);
      pthread_mutex_lock(&cache->mu);
      found = cache_find(cache, id, mac, hash_mac) >= 0;
      pthread_mutex_unlock(&cache->mu);
    }
    if (!found && cache)
      cache->verifications++;
    ok = found || crypto_pwhash_str_verify(hash, token, strlen(token)) == 0;
    if (ok && !found) {
      write_last_used = true;
      if (cache) { /* before the next waiter looks */
        pthread_mutex_lock(&cache->mu);
        int i = cache_insert(cache, id, mac, hash_mac);
        cache->entries[i].last_used_written = now;
        pthread_mutex_unlock(&cache->mu);
      }
    }
    if (cache)
      pthread_mutex_unlock(&cache->verify_mu);
  }
  free(hash);
  if (!ok) {
    berth_apikey_free(k);
    return berth_error_set(err, BERTH_EDENIED, "invalid API key");
  }
  if (write_last_used) {
    touch_last_used(st, id, now);
    k->last_used_at = now;
  }
  *out = k;
  return 0;
}
