/* Private to src/lib/store: the store context and the helpers its modules share. */
#ifndef BERTH_STORE_INT_H
#define BERTH_STORE_INT_H

#include <sodium.h>

#include "berth/store.h"

struct berth_store {
  char *home;
  char *db_path;
  char *instance_id;
  sqlite3 *db;
  int tx_depth; /* nested berth_store_begin calls join the outermost transaction */
  bool have_key;
  unsigned char key[crypto_secretbox_KEYBYTES]; /* loaded on first use from BERTH_HOME/secret.key */
};

#define STORE_TERMINAL_SQL "('FINISHED','FAILED','CANCELED','STOPPED')"

/* Sets *err from the db's last error: "<what>: <sqlite message>"; a corrupt/not-a-db file says so plainly. */
int store_db_error(berth_store *st, int rc, berth_error **err, const char *what);
/* Prepares sql; on failure sets *err. */
int store_prepare(berth_store *st, const char *sql, sqlite3_stmt **out, berth_error **err);
/* A copy of a text column, NULL for SQL NULL. Sets *oom on allocation failure. */
char *store_col_strdup(sqlite3_stmt *stmt, int col, bool *oom);
int store_bind_text(sqlite3_stmt *stmt, int idx, const char *s); /* NULL binds SQL NULL */

/* Secret values: "v1:" + base64(nonce || crypto_secretbox(value)). */
int store_seal(berth_store *st, const char *plain, char **out, berth_error **err);
int store_unseal(berth_store *st, const char *sealed, char **out, berth_error **err);

/* JSON text encodings of lists and env (secret values sealed when `seal`). */
char *store_strv_encode(const berth_strv *v);
int store_strv_decode(const char *text, berth_strv *out, berth_error **err);
int store_kv_encode(berth_store *st, const berth_kv *kv, size_t n, bool seal, char **out, berth_error **err);
int store_kv_decode(berth_store *st, const char *text, bool sealed, berth_kv **out, size_t *n, berth_error **err);

/* rm -rf without following symlinks; returns 0 or -1 (errno). A missing path is success. */
int store_remove_tree(const char *path);

#endif
