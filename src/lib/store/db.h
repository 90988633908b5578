/* Private to libberth: the ONE way modules reach the store's database. Every module's SQL (stacks, tasks, state
 * versions, governance, API keys) goes through these calls; only the engines (engine_sqlite.c, and later
 * engine_pg.c) include an engine's headers.
 *
 * SQL is written in a dialect both engines run: `?` placeholders (an engine may rewrite them to `$n`), each `?`
 * bound on its own (no `?1` reuse); `INSERT ... ON CONFLICT ... DO NOTHING/UPDATE` instead of `INSERT OR ...`;
 * `RETURNING` instead of last-insert-rowid; no engine-only functions; columns typed INTEGER (64-bit), TEXT, BLOB.
 * Schema text that cannot be shared (identity columns, triggers) lives in schema.c, one variant per engine.
 *
 * Errors: every failing call sets *err to one line naming the store (a path, or a URL without its password) and
 * returns a berth_code: BERTH_EBUSY for a busy store or a serialization failure, BERTH_EINTERNAL otherwise. Callers
 * add what they were doing with berth_error_wrap(). */
#ifndef BERTH_STORE_DB_H
#define BERTH_STORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/error.h"
#include "berth/store.h"

typedef struct db_conn db_conn;
typedef struct db_stmt db_stmt;

enum { DB_DONE = 0, DB_ROW = 1 };

/* The connection of an open store (owned by the store; valid until berth_store_close). */
db_conn *store_db(berth_store *st);

/* Now in unix ms by the PostgreSQL server's clock (the fleet's one clock: leases, heartbeats and drains are judged by
 * it, never by a host's own); PostgreSQL only. */
#define STORE_PG_NOW_MS_SQL "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"

/* The audit chain's head: the last id and hash, or the newest record when no head is kept (audit.c). */
#define STORE_AUDIT_HEAD_SQL                                                                                           \
  "SELECT last_id, last_hash FROM audit_head WHERE k = 1"                                                              \
  " UNION ALL SELECT id, hash FROM (SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1) AS newest"

/* STORE_AUDIT_HEAD_SQL as read ahead in this transaction, not yet used (the caller steps and finalizes it), or NULL:
 * on PostgreSQL a write transaction reads the head with its first statement (under the write lock), so appending
 * its audit record costs no round trip of its own. Taking it is what uses it up: the next append reads afresh. */
db_stmt *store_take_audit_head(berth_store *st);

/* Reads of one operation that do not depend on each other, sent ahead by the modules that will use them: on
 * PostgreSQL each goes with the store's next statement that needs an answer (outside a transaction), so they cost
 * that statement's round trip and none of their own; on SQLite nothing is sent. sql takes no parameters and stays
 * valid until taken or dropped (a string constant). store_take_ahead returns the statement sent ahead for that sql
 * (the caller steps and finalizes it) or NULL, when the caller prepares it as usual. The operation that sent them
 * drops what it did not take when it ends (store_drop_ahead): an answer is never used past it. */
void store_read_ahead(berth_store *st, const char *sql);
db_stmt *store_take_ahead(berth_store *st, const char *sql);
void store_drop_ahead(berth_store *st);

/* The audit chain's head as this store itself committed it last (PostgreSQL only): a standalone append chains to it
 * and sends its record as one statement, guarded by that head and the write lock (another writer may have appended
 * since, or hold the lock). store_audit_head_known is false on SQLite, when nothing is remembered, and for a while
 * after the cached head was found stale (store_audit_head_stale), when the usual read under the lock is the cheaper
 * way. */
bool store_audit_head_known(berth_store *st, int64_t *id, unsigned char raw[32]);
void store_audit_head_remember(berth_store *st, int64_t id, const unsigned char raw[32]);
void store_audit_head_stale(berth_store *st);
void store_audit_head_forget(berth_store *st); /* appended inside a caller's transaction: the head is not known */
const char *db_engine_name(const db_conn *c);  /* "sqlite" or "postgresql" */
const char *db_label(const db_conn *c);        /* the store's path or password-free URL, for messages */
/* An SQL condition that takes the store's write lock without waiting and is true when it did (the lock is then held
 * until the end of the statement's transaction: outside db_begin, the statement's own), so that a write made of one
 * statement can be guarded by it instead of a transaction's begin, lock and commit; NULL on an engine where every
 * statement runs under the one writer's lock anyway (SQLite: callers use a transaction there). */
const char *db_try_write_lock_sql(const db_conn *c);

/* Runs SQL without parameters or results (one or more statements; DDL, migrations). */
int db_exec(db_conn *c, const char *sql, berth_error **err);

/* Statements. Binding never fails on its own: a bind that cannot be done (out of memory) makes the next step fail.
 * Indexes count from 1 (the n-th `?`); columns from 0. Text and blob values are copied. */
int db_prepare(db_conn *c, const char *sql, db_stmt **out, berth_error **err);
void db_bind_int64(db_stmt *s, int idx, int64_t v);
void db_bind_text(db_stmt *s, int idx, const char *v); /* NULL binds SQL NULL */
void db_bind_blob(db_stmt *s, int idx, const void *p, size_t n);
void db_bind_null(db_stmt *s, int idx);
/* Results in the engine's binary form (PostgreSQL: a blob's bytes as they are, not hex-encoded text to decode: half
 * the bytes over the socket). Only for statements whose columns are integers, booleans, text and blobs; before the
 * first step. SQLite has one form. */
void db_binary_results(db_stmt *s);
/* DB_ROW, DB_DONE, or <0 with *err set. A busy store is retried when that is safe (the statement runs alone, and
 * nothing was read from it yet). */
int db_step(db_stmt *s, berth_error **err);
/* Back to before the first step; bindings are kept. */
void db_reset(db_stmt *s);
void db_finalize(db_stmt *s); /* accepts NULL */
/* Rows inserted, updated or deleted by the statement's last run (valid after DB_DONE, or a row of RETURNING). */
int64_t db_changes(const db_stmt *s);

/* Column values of the current row; NULL reads as 0 / NULL. Text and blobs are valid until the next step. */
bool db_column_is_null(db_stmt *s, int col);
int64_t db_column_int64(db_stmt *s, int col);
const char *db_column_text(db_stmt *s, int col);
const void *db_column_blob(db_stmt *s, int col, size_t *len);
/* A copy of a text column (NULL for SQL NULL); sets *oom on allocation failure. */
char *db_column_strdup(db_stmt *s, int col, bool *oom);
/* For code that moves rows it does not know (store copy): the row's shape and each value's kind. */
typedef enum { DB_TYPE_NULL, DB_TYPE_INT, DB_TYPE_TEXT, DB_TYPE_BLOB } db_type;
int db_column_count(db_stmt *s);
const char *db_column_name(db_stmt *s, int col);
db_type db_column_type(db_stmt *s, int col);

/* Steps once (a row of RETURNING is fine), stores the changed row count in *changes (may be NULL), finalizes s. */
int db_run(db_stmt *s, int64_t *changes, berth_error **err);
/* Like db_run without the count, for a write inside a transaction whose outcome the caller needs only when the
 * transaction commits: an engine with a network round trip per statement (PostgreSQL) sends it with the next
 * statement that needs an answer, or the commit, and a failure of it then fails that statement or the commit (so
 * the transaction can only roll back, as if this call had failed). Outside a transaction it is db_run. Finalizes s. */
int db_run_later(db_stmt *s, berth_error **err);
/* A read whose answer the caller wants a little later: an engine with a network round trip per statement
 * (PostgreSQL) sends it with the next statement that needs an answer (or the commit, inside a transaction; outside
 * one, a begin drops it), and db_step on s then reads the answer it got, with no round trip of its own. Elsewhere
 * nothing is sent now and db_step runs s as usual. Only for reads: s stays the caller's, and finalizing or resetting it
 * before it was sent takes it off the queue (after: drops the answer). */
int db_prefetch(db_stmt *s, berth_error **err);
/* Changes whenever an outermost transaction begins: what was read inside a transaction is current while it is
 * unchanged (and the connection is still in that transaction). */
uint64_t db_txn_id(const db_conn *c);

/* Transactions nest: the outermost begin opens a write transaction (SQLite BEGIN IMMEDIATE, so read-modify-write
 * serializes across processes; a busy begin is retried; PostgreSQL sends its BEGIN and write lock with the first
 * statement, which fails when the lock cannot be had), an inner begin opens a savepoint. An inner rollback undoes
 * only its own work and keeps the outer transaction; commit of the outermost makes all of it durable at once.
 * begin_read opens a read snapshot at the outermost level (a savepoint when nested); a write begun inside a read
 * snapshot is refused. rollback at depth 0 is a no-op, so "commit failed, roll back" is always safe. */
int db_begin(db_conn *c, berth_error **err);
int db_begin_read(db_conn *c, berth_error **err);
/* A nested level with no savepoint of its own (one round trip less each way on PostgreSQL): committing it is a no-op,
 * rolling it back leaves the level that owns it (the nearest savepoint, or the transaction) able only to roll back:
 * its commit fails and undoes it. Outside a transaction: db_begin. */
int db_begin_part(db_conn *c, berth_error **err);
int db_commit(db_conn *c, berth_error **err);
/* CLOCK_MONOTONIC in microseconds (waits and timeouts of the engines). */
int64_t db_mono_us(void);
/* An open transaction that the engine still holds open. */
bool db_in_transaction(db_conn *c);
void db_rollback(db_conn *c);
int db_tx_depth(const db_conn *c);

/* After rows were inserted with explicit values into an identity column (tasks.seq, ...), the next generated value
 * follows the largest one (PostgreSQL: setval on the column's sequence; SQLite does this on its own). */
int db_sync_identity(db_conn *c, const char *table, const char *column, berth_error **err);

/* Notifications between processes and hosts (PostgreSQL LISTEN/NOTIFY; SQLite has none: listen fails with
 * BERTH_EINVAL, and callers fall back to what they do on SQLite). Senders use SQL (pg_notify, in PostgreSQL-only
 * code); a notification is delivered when the sender's transaction commits. db_wait_notify waits up to timeout_ms
 * for one on a channel listened to whose payload equals `payload` (any payload when NULL); the others are dropped.
 * Returns 1 when one came, 0 on timeout, <0 when the connection failed. A connection that listens and also runs
 * statements (a follower's own, from store_db_open_another) keeps the notifications that arrive meanwhile for its
 * next wait. */
int db_listen(db_conn *c, const char *channel, berth_error **err);
int db_wait_notify(db_conn *c, const char *payload, int timeout_ms);
/* db_wait_notify that also returns (2) when one of fds is readable (a child's pidfd: it ended). */
int db_wait_notify_fds(db_conn *c, const char *payload, int timeout_ms, const int *fds, size_t n_fds);

/* Another connection to the store st is on (the same file, or the same server and database), for work that must not
 * share st's transactions, thread or notifications: a log writer, a follower. Caller closes it with db_close. */
int store_db_open_another(berth_store *st, db_conn **out, berth_error **err);
/* The same, reusing the connection last given back to st (a fleet host's thread runs task after task on one store: a
 * task's log writer then needs no new connection). give_back keeps c for the next taker (or closes it, when one is
 * kept already or c is inside a transaction); st may be NULL (c is closed). */
int store_db_take_another(berth_store *st, db_conn **out, berth_error **err);
void store_db_give_back(berth_store *st, db_conn *c);
void db_close(db_conn *c); /* accepts NULL */
/* A connection for a task log's reader: on PostgreSQL one a reader of the same store (in this process, on any
 * thread) left with store_db_reader_done, else a new one; key identifies the store for the return. done keeps c for
 * the next reader when reusable (it never listened, it is in no transaction) and fewer than a few are kept, and
 * closes it otherwise; a server would otherwise start a database session for every log read. */
#define STORE_READER_KEY_LEN 32
int store_db_open_reader(berth_store *st, db_conn **out, unsigned char key[STORE_READER_KEY_LEN], berth_error **err);
void store_db_reader_done(const unsigned char key[STORE_READER_KEY_LEN], db_conn *c, bool reusable);

/* Bytes the store occupies (SQLite: the database file and its WAL; PostgreSQL: the database); -1 if unknown. */
int64_t db_size_bytes(db_conn *c);

#endif
