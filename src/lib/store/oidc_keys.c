/* The OIDC issuer's signing keys in the store (include/berth/oidc.h keeps the crypto): private keys sealed with the
 * store's secret key, so every host of a fleet on one PostgreSQL store signs with the same keys. */
#include <stdlib.h>
#include <string.h>

#include "berth/oidc.h"
#include "berth/store.h"
#include "db.h"
#include "store_int.h"

void
berth_oidc_keys_free(berth_oidc_key *keys, size_t n)
{
  for (size_t i = 0; keys != NULL && i < n; i++)
    berth_oidc_key_clear(&keys[i]);
  free(keys);
}

int
berth_store_oidc_keys(berth_store *st, berth_oidc_key **out, size_t *n, berth_error **err)
{
  *out = NULL;
  *n = 0;
  db_stmt *s = NULL;
  if (db_prepare(store_db(st),
                 "SELECT kid, alg, private_key, created_at, retired_at, publish_until FROM oidc_keys"
                 " ORDER BY created_at, kid",
                 &s, err)
      < 0)
    return berth_error_wrap(err, "read the OIDC signing keys");
  size_t cap = 0;
  int rc;
  while ((rc = db_step(s, err)) == DB_ROW) {
    if (*n == cap) {
      cap = cap ? cap * 2 : 4;
      berth_oidc_key *k = realloc(*out, cap * sizeof *k);
      if (k == NULL) {
        rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
        break;
      }
      *out = k;
    }
    berth_oidc_key *k = &(*out)[(*n)++];
    memset(k, 0, sizeof *k);
    bool oom = false;
    k->kid = db_column_strdup(s, 0, &oom);
    k->alg = db_column_strdup(s, 1, &oom);
    k->created_at = db_column_int64(s, 3);
    k->retired_at = db_column_int64(s, 4);
    k->publish_until = db_column_int64(s, 5);
    if (oom) {
      rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
      break;
    }
    if ((rc = store_unseal(st, db_column_text(s, 2), &k->private_pem, err)) < 0)
      break;
  }
  db_finalize(s);
  if (rc < 0) {
    berth_oidc_keys_free(*out, *n);
    *out = NULL;
    *n = 0;
    return berth_error_wrap(err, "read the OIDC signing keys");
  }
  return 0;
}

static int
insert_key(berth_store *st, const berth_oidc_key *k, berth_error **err)
{
  char *sealed = NULL;
  if (store_seal(st, k->private_pem, &sealed, err) < 0)
    return BERTH_EINTERNAL;
  db_stmt *s = NULL;
  int rc = db_prepare(store_db(st),
                      "INSERT INTO oidc_keys (kid, alg, private_key, created_at, retired_at, publish_until)"
                      " VALUES (?, ?, ?, ?, 0, 0)",
                      &s, err);
  if (rc == 0) {
    db_bind_text(s, 1, k->kid);
    db_bind_text(s, 2, k->alg);
    db_bind_text(s, 3, sealed);
    db_bind_int64(s, 4, k->created_at);
    rc = db_run(s, NULL, err);
  }
  free(sealed);
  return rc;
}

int
berth_store_oidc_rotate(berth_store *st, const berth_oidc_key *fresh, int64_t now_ms, berth_error **err)
{
  int rc = db_begin(store_db(st), err);
  if (rc < 0)
    return berth_error_wrap(err, "rotate the OIDC signing key");
  db_stmt *s = NULL;
  /* the key that signed until now stays published until every token it signed has expired */
  rc = db_prepare(store_db(st), "UPDATE oidc_keys SET retired_at = ?, publish_until = ? WHERE retired_at = 0", &s, err);
  if (rc == 0) {
    db_bind_int64(s, 1, now_ms);
    db_bind_int64(s, 2, now_ms + BERTH_OIDC_MAX_TTL_MS);
    rc = db_run(s, NULL, err);
  }
  if (rc == 0)
    rc = insert_key(st, fresh, err);
  /* keys whose publication ended are of no use to anyone */
  if (rc == 0
      && (rc = db_prepare(store_db(st), "DELETE FROM oidc_keys WHERE retired_at > 0 AND publish_until < ?", &s, err))
             == 0) {
    db_bind_int64(s, 1, now_ms);
    rc = db_run(s, NULL, err);
  }
  if (rc == 0)
    rc = db_commit(store_db(st), err);
  if (rc < 0) {
    db_rollback(store_db(st));
    return berth_error_wrap(err, "rotate the OIDC signing key");
  }
  return 0;
}

int
berth_store_oidc_signing_key(berth_store *st, const char *alg, int64_t now_ms, berth_oidc_key *out, berth_error **err)
{
  memset(out, 0, sizeof *out);
  berth_oidc_key *keys = NULL;
  size_t n = 0;
  int rc = berth_store_oidc_keys(st, &keys, &n, err);
  for (size_t i = 0; rc == 0 && i < n; i++)
    if (keys[i].retired_at == 0) {
      *out = keys[i];
      memset(&keys[i], 0, sizeof keys[i]);
      berth_oidc_keys_free(keys, n);
      return 0;
    }
  berth_oidc_keys_free(keys, n);
  if (rc < 0)
    return rc;
  /* the first use makes the first key; a race between two hosts is settled by the primary key: one insert wins */
  berth_oidc_key fresh;
  if ((rc = berth_oidc_key_generate(alg, now_ms, &fresh, err)) < 0)
    return rc;
  rc = berth_store_oidc_rotate(st, &fresh, now_ms, err);
  if (rc < 0) {
    berth_oidc_key_clear(&fresh);
    return rc;
  }
  *out = fresh;
  return 0;
}
