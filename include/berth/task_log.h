/* Stored task logs: already-redacted bytes as records [kind:1][phase:1][length:4, big-endian][bytes], in the order
 * they were produced. Readers may follow a log while the supervisor writes it: a record is visible only once whole
 * (a reader stops at a partial record).
 *
 * Where the records live depends on the store's engine:
 * - SQLite: one append-only file per task, BERTH_HOME/logs/<task id>.log; followers wake up through inotify.
 * - PostgreSQL: ordered chunks of whole records in the store (task_log_chunks: each chunk at its byte offset in the
 *   record stream, at most BERTH_LOG_CHUNK_MAX bytes), one chunk per flush, so any host reads and follows the log;
 *   followers wake up through LISTEN/NOTIFY. Writer and readers each use a connection of their own.
 * The record stream a reader sees is byte for byte the same on both. */
#ifndef BERTH_TASK_LOG_H
#define BERTH_TASK_LOG_H

#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>

#include "berth/error.h"
#include "berth/store.h"

enum { BERTH_LOG_STDOUT = 1, BERTH_LOG_STDERR = 2, BERTH_LOG_NOTE = 3 }; /* NOTE: berth's own lines and headers */

/* Phase codes stored with each record. */
enum {
  BERTH_PHASE_QUEUED = 'Q',
  BERTH_PHASE_PREPARING = 'P',
  BERTH_PHASE_INITIALIZING = 'I',
  BERTH_PHASE_PERFORMING = 'R',
  BERTH_PHASE_FINISHING = 'F',
};
const char *berth_phase_name(int phase);

#define BERTH_LOG_RECORD_MAX (1u << 20)                /* a record's payload is split above this */
#define BERTH_LOG_CHUNK_MAX (BERTH_LOG_RECORD_MAX + 6) /* PostgreSQL: the largest chunk, one whole record */

/* Returns a new string: <home>/logs/<id>.log (where the SQLite store keeps the log). */
char *berth_task_log_path(const char *home, const char *task_id);

typedef struct berth_task_log berth_task_log;
/* Opens task_id's log for appending (creating it), in the store st is on. st must outlive the log (on PostgreSQL the
 * log's own connection is given back to it at close, for the next log). */
int berth_task_log_create(berth_store *st, const char *task_id, berth_task_log **out, berth_error **err);
/* Appends a record. Records are buffered (up to BERTH_LOG_BUFFER bytes) to keep system calls few on big outputs;
 * berth_task_log_flush makes them visible to readers (the runner flushes at least every 100 ms while output
 * streams, and after every note). */
int berth_task_log_write(berth_task_log *l, int kind, int phase, const char *data, size_t len, berth_error **err);
int berth_task_log_flush(berth_task_log *l, berth_error **err);
/* The same without waiting for the write (on PostgreSQL a writer thread inserts the chunk while the caller goes on;
 * it waits only for the write before). Errors of a write show in the next push or flush. berth_task_log_flush after
 * it makes everything visible. On SQLite it is berth_task_log_flush. */
int berth_task_log_push(berth_task_log *l, berth_error **err);
/* A flag the log's retries watch (PostgreSQL: a chunk the store did not take is tried again for up to a minute): once
 * set (a fleet host gave the task up), the chunk is given up at once. The flag must outlive the log. */
void berth_task_log_watch(berth_task_log *l, const atomic_bool *give_up);
#define BERTH_LOG_BUFFER (1024u * 1024u)
void berth_task_log_close(berth_task_log *l);
/* The errno of the first write to the log that failed (ENOSPC on a full disk; EIO when the PostgreSQL store
 * refused or lost a chunk), 0 if none did. */
int berth_task_log_failed_errno(const berth_task_log *l);
/* For a log in PostgreSQL: the store's message for the first chunk that failed (say, the connection was lost), or
 * NULL. Owned by the log. */
const char *berth_task_log_failed_msg(const berth_task_log *l);

/* Incremental reader: call berth_task_log_read repeatedly; it reads what is there now and hands every whole
 * record to fn. Returns the number of records delivered, or <0. A log not written yet reads as empty. st is not
 * kept (PostgreSQL: the reader connects on its own). */
typedef int (*berth_log_record_fn)(void *userdata, int kind, int phase, const char *data, size_t len);
typedef struct berth_log_reader berth_log_reader;
int berth_log_reader_open(berth_store *st, const char *task_id, berth_log_reader **out, berth_error **err);
int berth_log_reader_read(berth_log_reader *r, berth_log_record_fn fn, void *userdata, berth_error **err);
/* The record stream itself, for forwarding it as it is (the server's format=records): seek (before any read) to a
 * byte offset, e.g. where a cut stream ended, then read_bytes returns up to max bytes from there (0 when nothing new
 * is there yet; <0 on error). Use either this or berth_log_reader_read on one reader, not both. */
int berth_log_reader_seek(berth_log_reader *r, int64_t offset, berth_error **err);
ssize_t berth_log_reader_read_bytes(berth_log_reader *r, char *buf, size_t max, berth_error **err);
/* Whether the last read failed in the store (PostgreSQL: one of its statements failed, as with a lost connection or
 * a server restarting), not in the log's bytes or the caller's function: nothing was handed out past what was read
 * before, and a read again (the connection is made again) goes on from there. */
bool berth_log_reader_store_failed(const berth_log_reader *r);
void berth_log_reader_close(berth_log_reader *r); /* accepts NULL; releases the wait's watch too */

/* Waits at most timeout_ms for the log to grow: wakes at the writer's next flush (SQLite: inotify on the file once it
 * exists, before that a short sleep; PostgreSQL: the writer's NOTIFY, or a poll of at most 50 ms when notifications
 * cannot be had). Followers call this instead of sleeping, so new records reach them within milliseconds. Returns 1
 * if it (may have) grown, 0 otherwise. */
int berth_log_wait(berth_log_reader *r, int timeout_ms);

#endif
