/* Private to src/lib/store: the store context and the helpers its modules share. */
#ifndef BERTH_STORE_INT_H
#define BERTH_STORE_INT_H

#include <string.h>

#include <sodium.h>

#include "berth/store.h"
#include "db.h"

#define STORE_AHEAD_MAX 4

struct berth_store {
  char *home;
  char *instance_id;
  db_conn *db;
  char *conninfo; /* BERTH_STORE as it was at open (PostgreSQL), for store_db_open_another; NULL on SQLite */
  int schema_from, schema_to; /* the schema version found at open, and the one after migrating */
  bool have_key;
  unsigned char key[crypto_secretbox_KEYBYTES]; /* loaded on first use (store_key.c) */
  char key_origin[256];                         /* where it came from, for messages */
  db_conn *spare;   /* a second connection given back (store_db_give_back), for the next store_db_take_another */
  char *fence_task; /* writes to this task carry fence_attempt (berth_store_fence) */
  int fence_attempt;
  db_stmt *head_read; /* the audit chain's head, read ahead with a write transaction's begin (PostgreSQL) */
  uint64_t head_txn;  /* the transaction it was read in */
  /* the chain's head as this store committed it last (PostgreSQL; store_audit_head_known) */
  bool head_known;
  int head_misses; /* standalone appends left to make the usual way after the cached head was stale */
  int64_t head_id;
  unsigned char head_raw[32];
  struct {
    const char *sql; /* as the module sent it (compared by content) */
    db_stmt *stmt;
  } ahead[STORE_AHEAD_MAX]; /* reads sent ahead by the modules that will use them (store_read_ahead) */
};

/* " AND attempt = ? AND revoked = 0" when st is fenced on task id (bind the attempt next), else "". */
const char *store_fence_sql(berth_store *st, const char *id);

/* SQLite keeps the secret key, state version contents and task logs as files in BERTH_HOME; PostgreSQL keeps them
 * in the database, so every host that reaches it can run and follow tasks. */
static inline bool
store_is_sqlite(berth_store *st)
{
  return strcmp(db_engine_name(st->db), "sqlite") == 0;
}

/* Wakes a fleet's hosts when the open transaction commits (new work, a freed or unlocked stack); nothing on SQLite. */
int store_notify_queue(berth_store *st, berth_error **err);

#define STORE_TERMINAL_SQL "('FINISHED','FAILED','CANCELED','STOPPED')"

/* schema.c: the newest schema version this binary knows, and bringing a store up to it in one transaction (a newer
 * store is refused with one line naming both versions). *from is the version found, *to the version after. */
int store_schema_latest(void);
int store_schema_migrate(db_conn *c, int *from, int *to, berth_error **err);

/* The key that seals secret values: BERTH_HOME/secret.key on SQLite, the `secret_key` row of the store's settings
 * on PostgreSQL (so every host that reaches the database can unseal). Made on first use, once even when several
 * processes race. */
int store_key_load(berth_store *st, berth_error **err);
/* store copy: writes st's key into the settings of the target `to` (inside its open transaction). A SQLite store
 * without a secret.key yet has no key to carry, and nothing is written. */
int store_key_copy(berth_store *st, db_conn *to, berth_error **err);

/* store copy from SQLite: the files of every state version, packed into the target's state_contents (inside its
 * open transaction). Versions whose directory is missing are left without contents, as they were. */
int store_state_copy_contents(berth_store *st, db_conn *to, berth_error **err);

/* Secret values: "v1:" + base64(nonce || crypto_secretbox(value)). */
int store_seal(berth_store *st, const char *plain, char **out, berth_error **err);
int store_unseal(berth_store *st, const char *sealed, char **out, berth_error **err);

/* JSON text encodings of lists and env (secret values sealed when `seal`). */
char *store_strv_encode(const berth_strv *v);
int store_strv_decode(const char *text, berth_strv *out, berth_error **err);
int store_kv_encode(berth_store *st, const berth_kv *kv, size_t n, bool seal, char **out, berth_error **err);
int store_kv_decode(berth_store *st, const char *text, bool sealed, berth_kv **out, size_t *n, berth_error **err);
/* Sealed values, each that cannot be decrypted kept as "" with its name pushed to unreadable. */
int store_kv_decode_lenient(berth_store *st, const char *text, berth_kv **out, size_t *n, berth_strv *unreadable,
                            berth_error **err);
/* The key's file (or the store's settings), for messages. */
const char *store_key_origin(berth_store *st);

/* rm -rf without following symlinks; returns 0 or -1 (errno). A missing path is success. */
int store_remove_tree(const char *path);

/* Before rows counted by a metric are deleted, their counts go into the counters table (in the same transaction):
 * STORE_CARRY_ATTEMPTS(cond) for webhook_attempts whose delivery_id is in cond's set, STORE_CARRY_FIRES(cond) for
 * schedule_fires matching cond. */
#define STORE_CARRY_UPSERT " WHERE true ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value"
#define STORE_CARRY_ATTEMPTS(cond)                                                                                     \
  "INSERT INTO counters (name, value) SELECT n, v FROM (SELECT 'webhook_attempts_ok' AS n,"                            \
  " (SELECT COUNT(*) FROM webhook_attempts WHERE status_code >= 200 AND status_code < 300 AND delivery_id IN " cond    \
  ") AS v UNION ALL SELECT 'webhook_attempts_failed', (SELECT COUNT(*) FROM webhook_attempts WHERE NOT"                \
  " (COALESCE(status_code, 0) >= 200 AND COALESCE(status_code, 0) < 300) AND delivery_id IN " cond                     \
  ")) AS carried" STORE_CARRY_UPSERT
#define STORE_CARRY_FIRES(cond)                                                                                        \
  "INSERT INTO counters (name, value) SELECT n, v FROM (SELECT 'schedule_fires_submitted' AS n,"                       \
  " (SELECT COUNT(*) FROM schedule_fires WHERE outcome = 'submitted' AND " cond ") AS v UNION ALL SELECT"              \
  " 'schedule_fires_refused', (SELECT COUNT(*) FROM schedule_fires WHERE outcome = 'refused' AND " cond ")"            \
  " UNION ALL SELECT 'schedule_misses', (SELECT COALESCE(SUM(missed), 0) FROM schedule_fires WHERE " cond ")) AS"      \
  " carried" STORE_CARRY_UPSERT
/* A batch of ended tasks being pruned (task_prune.c): those with after_seq < seq <= last_seq that ended before
 * before_ms, of stack (NULL: every stack). Under the store's write lock that is exactly the batch selected, and its
 * SQL is the same text from batch to batch (PostgreSQL keeps a connection's statements prepared by their text). */
typedef struct store_task_range {
  int64_t after_seq, last_seq, before_ms;
  const char *stack;
} store_task_range;
/* The condition over the tasks table, with its `?`s, and their binds from index `first` on. */
const char *store_task_range_sql(const store_task_range *r);
void store_task_range_bind(db_stmt *s, int first, const store_task_range *r);
/* The first column of the first row of sql into *out (left as it was when there is no row); the `?`s of sql are
 * r's (store_task_range_sql), or none when r is NULL. */
int store_one_number(berth_store *st, const char *sql, const store_task_range *r, int64_t *out, berth_error **err);
/* Before tasks are deleted (retention): their part of the task metrics (the wait and duration histograms, redactions)
 * is added to the counters, for the tasks of r, in the open transaction. */
int store_carry_task_stats(berth_store *st, const store_task_range *r, berth_error **err);
/* A counter's carried part, as a scalar subquery */
#define STORE_CARRIED(name) "COALESCE((SELECT value FROM counters WHERE name = '" name "'), 0)"

#endif
