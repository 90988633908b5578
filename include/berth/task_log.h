/* Stored task logs: one append-only file per task, BERTH_HOME/logs/<task id>.log, holding already-redacted bytes as
 * records [kind:1][phase:1][length:4, big-endian][bytes], in the order they were produced. Readers may follow a log
 * while the supervisor writes it: a record is visible only once whole (a reader stops at a partial record). */
#ifndef BERTH_TASK_LOG_H
#define BERTH_TASK_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "berth/error.h"

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

#define BERTH_LOG_RECORD_MAX (1u << 20) /* a record's payload is split above this */

/* Returns a new string: <home>/logs/<id>.log. */
char *berth_task_log_path(const char *home, const char *task_id);

typedef struct berth_task_log berth_task_log;
int berth_task_log_create(const char *home, const char *task_id, berth_task_log **out, berth_error **err);
/* Appends a record. Records are buffered (up to BERTH_LOG_BUFFER bytes) to keep system calls few on big outputs;
 * berth_task_log_flush makes them visible to readers (the runner flushes at least every 100 ms while output
 * streams, and after every note). */
int berth_task_log_write(berth_task_log *l, int kind, int phase, const char *data, size_t len, berth_error **err);
int berth_task_log_flush(berth_task_log *l, berth_error **err);
#define BERTH_LOG_BUFFER (256u * 1024u)
void berth_task_log_close(berth_task_log *l);
/* The errno of the first write to the log that failed (ENOSPC on a full disk), 0 if none did. */
int berth_task_log_failed_errno(const berth_task_log *l);

/* Incremental reader: call berth_task_log_read repeatedly; it reads what is there now and hands every whole
 * record to fn. Returns the number of records delivered, or <0. A missing file reads as empty. */
typedef int (*berth_log_record_fn)(void *userdata, int kind, int phase, const char *data, size_t len);
typedef struct berth_log_reader berth_log_reader;
int berth_log_reader_open(const char *path, berth_log_reader **out, berth_error **err);
int berth_log_reader_read(berth_log_reader *r, berth_log_record_fn fn, void *userdata, berth_error **err);
void berth_log_reader_close(berth_log_reader *r);

/* Waits at most timeout_ms for the log file at `path` to grow: wakes at the writer's next write (inotify on the file
 * once it exists; before that, a short sleep). *watch starts as -1; berth_log_watch_close releases it. Followers call
 * this instead of sleeping, so new records reach them within milliseconds. Returns 1 if it grew, 0 otherwise. */
int berth_log_wait(int *watch, const char *path, int timeout_ms);
void berth_log_watch_close(int *watch);

#endif
