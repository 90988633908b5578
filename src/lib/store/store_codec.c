/* Encodings of list and env fields for the store, and sealing of secret values (the key: store_key.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/cleanup.h"
#include "store_int.h"

#define SEAL_PREFIX "v1:"
#define SEALED_MAX (1u << 20) /* a sealed value longer than this is damage, not a secret */

void
berth_strv_clear(berth_strv *v)
{
  for (size_t i = 0; i < v->n; i++)
    free(v->v[i]);
  free(v->v);
  v->v = NULL;
  v->n = 0;
}

int
berth_strv_push(berth_strv *v, const char *s)
{
  char *d = strdup(s);
  char **nv = d ? realloc(v->v, (v->n + 1) * sizeof *nv) : NULL;
  if (nv == NULL) {
    free(d);
    return -1;
  }
  nv[v->n++] = d;
  v->v = nv;
  return 0;
}

void
berth_kv_array_free(berth_kv *kv, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free(kv[i].key);
    if (kv[i].value) {
      sodium_memzero(kv[i].value, strlen(kv[i].value));
      free(kv[i].value);
    }
  }
  free(kv);
}

const char *
berth_kv_get(const berth_kv *kv, size_t n, const char *key)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(kv[i].key, key) == 0)
      return kv[i].value;
  return NULL;
}

int
berth_kv_set(berth_kv **kv, size_t *n, const char *key, const char *value)
{
  char *v = strdup(value);
  if (v == NULL)
    return -1;
  for (size_t i = 0; i < *n; i++)
    if (strcmp((*kv)[i].key, key) == 0) {
      sodium_memzero((*kv)[i].value, strlen((*kv)[i].value));
      free((*kv)[i].value);
      (*kv)[i].value = v;
      return 0;
    }
  char *k = strdup(key);
  berth_kv *nk = k ? realloc(*kv, (*n + 1) * sizeof *nk) : NULL;
  if (nk == NULL) {
    free(k);
    free(v);
    return -1;
  }
  nk[*n].key = k;
  nk[*n].value = v;
  *kv = nk;
  (*n)++;
  return 0;
}

int
berth_kv_unset(berth_kv **kv, size_t *n, const char *key)
{
  for (size_t i = 0; i < *n; i++)
    if (strcmp((*kv)[i].key, key) == 0) {
      free((*kv)[i].key);
      sodium_memzero((*kv)[i].value, strlen((*kv)[i].value));
      free((*kv)[i].value);
      memmove(&(*kv)[i], &(*kv)[i + 1], (*n - i - 1) * sizeof **kv);
      (*n)--;
      return 1;
    }
  return 0;
}

int
store_seal(berth_store *st, const char *plain, char **out, berth_error **err)
{
  if (store_key_load(st, err) < 0)
    return BERTH_EINTERNAL;
  size_t plen = strlen(plain);
  if (plen > SEALED_MAX / 2)
    return berth_error_set(err, BERTH_EINVAL, "secret value is too long (%zu bytes; at most %u)", plen, SEALED_MAX / 2);
  size_t blen = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plen;
  cleanup_free unsigned char *box = malloc(blen);
  size_t b64len = sodium_base64_ENCODED_LEN(blen, sodium_base64_VARIANT_ORIGINAL);
  char *text = malloc(strlen(SEAL_PREFIX) + b64len);
  if (box == NULL || text == NULL) {
    free(text);
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  randombytes_buf(box, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, (const unsigned char *) plain, plen, box, st->key);
  strcpy(text, SEAL_PREFIX);
  sodium_bin2base64(text + strlen(SEAL_PREFIX), b64len, box, blen, sodium_base64_VARIANT_ORIGINAL);
  *out = text;
  return 0;
}

/* store_unseal, telling a value this key cannot open (UNSEAL_WRONG_KEY, with *err) from every other failure (< 0):
 * the key that could not be loaded, a damaged value, memory. */
#define UNSEAL_WRONG_KEY 1
static int unseal(berth_store *st, const char *sealed, char **out, berth_error **err);

int
store_unseal(berth_store *st, const char *sealed, char **out, berth_error **err)
{
  int rc = unseal(st, sealed, out, err);
  return rc == UNSEAL_WRONG_KEY ? BERTH_EINTERNAL : rc;
}

static int
unseal(berth_store *st, const char *sealed, char **out, berth_error **err)
{
  if (store_key_load(st, err) < 0)
    return BERTH_EINTERNAL;
  size_t slen = strlen(sealed);
  if (slen > SEALED_MAX || strncmp(sealed, SEAL_PREFIX, strlen(SEAL_PREFIX)) != 0)
    return berth_error_set(err, BERTH_EINTERNAL, "a stored secret value is damaged (unknown format)");
  sealed += strlen(SEAL_PREFIX);
  slen -= strlen(SEAL_PREFIX);
  cleanup_free unsigned char *box = malloc(slen + 1);
  size_t blen = 0;
  if (box == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (sodium_base642bin(box, slen + 1, sealed, slen, NULL, &blen, NULL, sodium_base64_VARIANT_ORIGINAL) != 0
      || blen < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
    return berth_error_set(err, BERTH_EINTERNAL, "a stored secret value is damaged (bad encoding)");
  size_t plen = blen - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
  char *plain = malloc(plen + 1);
  if (plain == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (crypto_secretbox_open_easy((unsigned char *) plain, box + crypto_secretbox_NONCEBYTES,
                                 blen - crypto_secretbox_NONCEBYTES, box, st->key)
      != 0) {
    free(plain);
    berth_error_set(err, BERTH_EINTERNAL, "a stored secret value cannot be decrypted (was %s replaced?)",
                    st->key_origin);
    return UNSEAL_WRONG_KEY;
  }
  plain[plen] = '\0';
  *out = plain;
  return 0;
}

char *
store_strv_encode(const berth_strv *v)
{
  cJSON *arr = cJSON_CreateArray();
  for (size_t i = 0; arr && i < v->n; i++) {
    cJSON *s = cJSON_CreateString(v->v[i]);
    if (s == NULL || !cJSON_AddItemToArray(arr, s)) {
      cJSON_Delete(s);
      cJSON_Delete(arr);
      return NULL;
    }
  }
  char *text = arr ? cJSON_PrintUnformatted(arr) : NULL;
  cJSON_Delete(arr);
  return text;
}

int
store_strv_decode(const char *text, berth_strv *out, berth_error **err)
{
  cJSON *arr = cJSON_Parse(text ? text : "[]");
  const cJSON *it;
  if (!cJSON_IsArray(arr)) {
    cJSON_Delete(arr);
    return berth_error_set(err, BERTH_EINTERNAL, "a stored list is damaged (not a JSON array)");
  }
  cJSON_ArrayForEach(it, arr)
  {
    if (!cJSON_IsString(it) || berth_strv_push(out, it->valuestring) < 0) {
      cJSON_Delete(arr);
      berth_strv_clear(out);
      return berth_error_set(err, BERTH_EINTERNAL, "a stored list is damaged or memory ran out");
    }
  }
  cJSON_Delete(arr);
  return 0;
}

/* [[key, value], ...]: an array keeps the user's order. */
int
store_kv_encode(berth_store *st, const berth_kv *kv, size_t n, bool seal, char **out, berth_error **err)
{
  cJSON *arr = cJSON_CreateArray();
  if (arr == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  for (size_t i = 0; i < n; i++) {
    char *sealed = NULL;
    if (seal && store_seal(st, kv[i].value, &sealed, err) < 0) {
      cJSON_Delete(arr);
      return BERTH_EINTERNAL;
    }
    cJSON *pair = cJSON_CreateArray();
    cJSON *k = cJSON_CreateString(kv[i].key), *v = cJSON_CreateString(seal ? sealed : kv[i].value);
    free(sealed);
    if (pair == NULL || k == NULL || v == NULL) {
      cJSON_Delete(pair);
      cJSON_Delete(k);
      cJSON_Delete(v);
      cJSON_Delete(arr);
      return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    }
    cJSON_AddItemToArray(pair, k);
    cJSON_AddItemToArray(pair, v);
    cJSON_AddItemToArray(arr, pair);
  }
  *out = cJSON_PrintUnformatted(arr);
  cJSON_Delete(arr);
  if (*out == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  return 0;
}

static int kv_decode(berth_store *st, const char *text, bool sealed, berth_kv **out, size_t *n, berth_strv *unreadable,
                     berth_error **err);

int
store_kv_decode(berth_store *st, const char *text, bool sealed, berth_kv **out, size_t *n, berth_error **err)
{
  return kv_decode(st, text, sealed, out, n, NULL, err);
}

int
store_kv_decode_lenient(berth_store *st, const char *text, berth_kv **out, size_t *n, berth_strv *unreadable,
                        berth_error **err)
{
  return kv_decode(st, text, true, out, n, unreadable, err);
}

static int
kv_decode(berth_store *st, const char *text, bool sealed, berth_kv **out, size_t *n, berth_strv *unreadable,
          berth_error **err)
{
  cJSON *arr = cJSON_Parse(text ? text : "[]");
  const cJSON *pair;
  int rc = 0;
  if (!cJSON_IsArray(arr)) {
    cJSON_Delete(arr);
    return berth_error_set(err, BERTH_EINTERNAL, "a stored environment is damaged (not a JSON array)");
  }
  cJSON_ArrayForEach(pair, arr)
  {
    const cJSON *k = cJSON_GetArrayItem(pair, 0), *v = cJSON_GetArrayItem(pair, 1);
    if (!cJSON_IsString(k) || !cJSON_IsString(v)) {
      rc = berth_error_set(err, BERTH_EINTERNAL, "a stored environment is damaged (bad pair)");
      break;
    }
    char *plain = NULL;
    if (sealed && (rc = unseal(st, v->valuestring, &plain, err)) != 0) {
      if (rc != UNSEAL_WRONG_KEY || unreadable == NULL || berth_strv_push(unreadable, k->valuestring) < 0) {
        rc = rc == UNSEAL_WRONG_KEY ? BERTH_EINTERNAL : rc; /* strict, or out of memory: the read fails */
        break;
      }
      berth_error_clear(err); /* kept by name, as "" */
      rc = 0;
      if ((plain = strdup("")) == NULL) {
        rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
        break;
      }
    }
    int set = berth_kv_set(out, n, k->valuestring, sealed ? plain : v->valuestring);
    if (plain) {
      sodium_memzero(plain, strlen(plain));
      free(plain);
    }
    if (set < 0) {
      rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
      break;
    }
  }
  cJSON_Delete(arr);
  if (rc < 0) {
    berth_kv_array_free(*out, *n);
    *out = NULL;
    *n = 0;
  }
  return rc;
}
