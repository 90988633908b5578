/* Private to src/lib/store: what an engine implements behind db.h, and the helpers engines share.
 *
 * An engine's connection and statement structs start with a db_conn / db_stmt, so db.c can hold them as such. db.c
 * owns everything that is the same on every engine: transaction nesting, busy retries, the one error format. */
#ifndef BERTH_STORE_DB_ENGINE_H
#define BERTH_STORE_DB_ENGINE_H

#include "db.h"

/* What went wrong, as far as a user can act on it; db_fail() turns it into the one-line message. */
typedef enum {
  DB_FAIL_OTHER,
  DB_FAIL_BUSY,     /* locked by another writer, or a serialization failure: safe to retry a whole unit */
  DB_FAIL_NOTADB,   /* the file or database is not a berth store */
  DB_FAIL_CORRUPT,  /* damaged */
  DB_FAIL_READONLY, /* cannot be written */
  DB_FAIL_CONNECT,  /* cannot be reached or opened */
  DB_FAIL_LOST,     /* the connection broke; the next operation outside a transaction makes a new one */
  DB_FAIL_NOMEM,
  DB_FAIL_FULL, /* no space left where the store writes */
} db_fail_kind;

typedef enum { DB_BIND_NULL, DB_BIND_INT64, DB_BIND_TEXT, DB_BIND_BLOB } db_bind_kind;

struct db_ops {
  const char *name;
  const char *begin_sql;      /* the outermost write transaction */
  const char *begin_read_sql; /* the outermost read snapshot */
  /* May be NULL: an SQL condition that takes the write lock without waiting, true when taken (held until the end of
   * the statement's own transaction), for a write that is one statement (db_try_write_lock_sql). */
  const char *try_write_lock_sql;
  /* May be NULL (then begin_sql / begin_read_sql run at once): opens the outermost transaction, which the engine may
   * send with the next statement that needs an answer (it then fails that statement if it fails). */
  int (*begin)(db_conn *c, bool read, berth_error **err);
  /* May be NULL (then the statement runs at once): queues s, with copies of its values, to be sent with the next
   * statement of this transaction that needs an answer, or its commit; a failure then fails that one. */
  int (*run_later)(db_stmt *s, berth_error **err);
  /* May be NULL (then db_step runs s as usual): queues s to be sent with the next statement of this transaction that
   * needs an answer, or its commit; its answer is kept for db_step on s. */
  int (*prefetch)(db_stmt *s, berth_error **err);
  void (*close)(db_conn *c);
  int (*exec)(db_conn *c, const char *sql, berth_error **err);
  int (*prepare)(db_conn *c, const char *sql, db_stmt **out, berth_error **err);
  void (*finalize)(db_stmt *s);
  void (*reset)(db_stmt *s);
  /* returns 0, or -1 when out of memory */
  int (*bind)(db_stmt *s, int idx, db_bind_kind kind, int64_t i, const void *p, size_t n);
  int (*step)(db_stmt *s, berth_error **err);
  int64_t (*changes)(const db_stmt *s);
  bool (*column_is_null)(db_stmt *s, int col);
  int64_t (*column_int64)(db_stmt *s, int col);
  const char *(*column_text)(db_stmt *s, int col);
  const void *(*column_blob)(db_stmt *s, int col, size_t *len);
  int (*column_count)(db_stmt *s);
  const char *(*column_name)(db_stmt *s, int col);
  db_type (*column_type)(db_stmt *s, int col);
  /* may be NULL when the engine keeps identity columns in step by itself */
  int (*sync_identity)(db_conn *c, const char *table, const char *column, berth_error **err);
  /* false when the engine ended the transaction on its own (SQLite does on some I/O errors) */
  bool (*in_transaction)(db_conn *c);
  int64_t (*size_bytes)(db_conn *c);
  /* For migrations: tables that exist (excluding the engine's own), whether schema_version is one of them, and a
   * version recorded the engine's own way before schema_version existed (SQLite's user_version; else 0). */
  int (*probe)(db_conn *c, int64_t *tables, bool *has_schema_version, int *legacy_version, berth_error **err);
  /* Records the schema version the engine's own way too (SQLite: user_version, so older binaries refuse a newer
   * store); may be NULL. */
  int (*mark_version)(db_conn *c, int version, berth_error **err);
  /* LISTEN/NOTIFY (db.h); NULL when the engine has none */
  int (*listen)(db_conn *c, const char *channel, berth_error **err);
  int (*wait_notify)(db_conn *c, const char *payload, int timeout_ms, const int *fds, size_t n_fds);
};

struct db_conn {
  const struct db_ops *ops;
  char *label;      /* for messages: a path, or a URL without its password */
  int depth;        /* 0 outside a transaction; n = outermost + (n - 1) nested levels (savepoints or parts) */
  uint64_t parts;   /* bit n: level n is a part (db_begin_part), no savepoint of its own */
  uint64_t tainted; /* bit n: a part inside level n failed: level n can only roll back */
  bool read_only;   /* the outermost is a read snapshot (db_begin_read) */
  uint64_t txn;     /* counts outermost begins (db_txn_id) */
};

struct db_stmt {
  db_conn *conn;
  bool binary; /* db_binary_results: results in the engine's binary form where it has one */
  bool bind_failed;
  bool stepped; /* a row or a result was read since the last reset */
};

/* Sets *err to the one line for `kind` ("store /x/berth.db is busy (database is locked)") and returns its code. */
int db_fail(const db_conn *c, db_fail_kind kind, const char *detail, berth_error **err);

/* Sets c->label (copied); -1 when out of memory. */
int db_conn_init(db_conn *c, const struct db_ops *ops, const char *label);

/* engine_sqlite.c: opens (creating) the database file at path: WAL, synchronous=FULL, busy timeout, foreign keys,
 * secure_delete. A file that is not a database, or cannot be written, gives one line naming the path. */
int db_sqlite_open(const char *path, db_conn **out, berth_error **err);

/* engine_pg.c: connects with a libpq URL or key=value string; refuses a server older than 12 or a read-only
 * standby. Messages name the store by a URL without its password, and never contain the password. */
int db_pg_open(const char *conninfo, db_conn **out, berth_error **err);
/* A postgresql:// or postgres:// URL, or key=value settings (what BERTH_STORE may hold). */
bool db_pg_conninfo_looks_valid(const char *conninfo);
/* Whether a PostgreSQL server answers at conninfo (PQping: accepting connections, whatever its answer to ours). */
bool db_pg_answers(const char *conninfo);

#endif
