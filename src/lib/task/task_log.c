/* Stored task logs: append-only record streams that readers can follow while they grow; a file per task on SQLite,
 * ordered chunks in the store on PostgreSQL. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "berth/buf.h"
#include "berth/fleet.h"
#include "berth/task_log.h"
#include "store/db.h"

#define LOG_CHANNEL "berth_log" /* PostgreSQL: NOTIFY berth_log, '<task id>' after each chunk */
#define PG_POLL_MS 50           /* a follower's poll when notifications cannot be had */
#define FETCH_CHUNKS "16"       /* chunks a follower reads per query */
#define FETCH_CHUNKS_N 16

struct berth_task_log {
  int fd;      /* SQLite: the file; -1 on PostgreSQL */
  db_conn *db; /* PostgreSQL: the writer's own connection (given back to st at close) */
  berth_store *st;
  char *task_id;
  char *path; /* SQLite: the file; PostgreSQL: "task log <id>", for messages */
  char *buf;  /* pending records, BERTH_LOG_BUFFER bytes */
  size_t len;
  int failed_errno;           /* of the first write that failed; 0 while all went well */
  char *failed_msg;           /* the store's word on the first chunk that failed (a log in PostgreSQL), or NULL */
  int fence;                  /* PostgreSQL: the claim (attempt) chunks are written under; 0 = none */
  const atomic_bool *give_up; /* set by the log's owner: stop retrying a chunk (berth_task_log_watch) */
  int64_t size; /* bytes of whole records written: a failed file write is cut back to this; the next chunk's
                   offset */
  /* PostgreSQL: a writer thread inserts the chunks on db, one at a time, while the caller fills the next buffer (the
   * caller's loop reads the exec stream meanwhile instead of waiting for each insert's round trip) */
  bool threaded;
  pthread_t writer;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool busy, stop; /* busy: wbuf[0..wlen) is being written */
  char *wbuf;
  size_t wlen;
  berth_error *werr; /* the writer's first failure, reported by the next flush */
};

struct berth_log_reader {
  char *task_id;
  char *path; /* SQLite: the file */
  int fd;
  int watch;                                  /* SQLite: inotify on the file, for berth_log_wait */
  db_conn *db;                                /* PostgreSQL: the reader's own connection (it also LISTENs) */
  unsigned char db_key[STORE_READER_KEY_LEN]; /* whose it is (store_db_reader_done) */
  bool listening;
  bool listened;       /* it did once: its connection is not left for another reader */
  bool following;      /* PostgreSQL: a row of log_followers says so (for this connection's backend) */
  bool store_failed;   /* PostgreSQL: the last read failed in the store (a read again starts where it stopped) */
  int64_t pos;         /* the byte offset in the record stream of the next byte to hand out */
  bool locate;         /* pos may fall inside a chunk (after a seek) */
  db_stmt *batch;      /* PostgreSQL: the chunks read by the last query, not handed out yet */
  bool batch_locating; /* ... by a seek's lookup */
  int batch_rows;      /* ... rows taken from it so far */
  berth_buf chunk;     /* PostgreSQL: the chunk being handed out ... */
  size_t chunk_at;     /* ... from here */
  berth_buf pending;   /* a partial record carried to the next read */
};

const char *
berth_phase_name(int phase)
{
  switch (phase) {
  case BERTH_PHASE_QUEUED:
    return "queued";
  case BERTH_PHASE_PREPARING:
    return "preparing";
  case BERTH_PHASE_INITIALIZING:
    return "initializing";
  case BERTH_PHASE_PERFORMING:
    return "performing";
  case BERTH_PHASE_FINISHING:
    return "finishing";
  default:
    return "?";
  }
}

char *
berth_task_log_path(const char *home, const char *task_id)
{
  char *p = NULL;
  if (asprintf(&p, "%s/logs/%s.log", home, task_id) < 0)
    return NULL;
  return p;
}

static bool
logs_in_files(berth_store *st)
{
  return strcmp(db_engine_name(store_db(st)), "sqlite") == 0;
}

static int
open_file(berth_store *st, berth_task_log *l, berth_error **err)
{
  const char *home = berth_store_home(st);
  char *dir = NULL;
  if (asprintf(&dir, "%s/logs", home) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
    int rc = berth_error_set_errno(err, BERTH_EINTERNAL, errno, "create the log directory %s", dir);
    free(dir);
    return rc;
  }
  free(dir);
  if ((l->path = berth_task_log_path(home, l->task_id)) == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  l->fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (l->fd < 0)
    return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "open the task log %s", l->path);
  struct stat sb;
  l->size = fstat(l->fd, &sb) == 0 ? sb.st_size : 0;
  return 0;
}

/* The end of what is stored already (a log re-opened appends after it). */
static int
chunks_end(db_conn *db, const char *task_id, int64_t *end, berth_error **err)
{
  db_stmt *s = NULL;
  if (db_prepare(db, "SELECT COALESCE(MAX(off + len), 0) FROM task_log_chunks WHERE task_id = ?", &s, err) < 0)
    return BERTH_EINTERNAL;
  db_bind_text(s, 1, task_id);
  int rc = db_step(s, err);
  *end = rc == DB_ROW ? db_column_int64(s, 0) : 0;
  db_finalize(s);
  return rc < 0 ? rc : 0;
}

static void *writer_main(void *arg);

static int
open_chunks(berth_store *st, berth_task_log *l, berth_error **err)
{
  if (asprintf(&l->path, "task log %s", l->task_id) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  /* like the file, the log is not synced: the task record is what must survive a power loss, and a commit that
   * waits for the disk on every 10 ms flush would slow the output down */
  l->fence = berth_store_fence_attempt(st, l->task_id);
  l->st = st;
  if (store_db_take_another(st, &l->db, err) < 0 || db_exec(l->db, "SET synchronous_commit = off", err) < 0
      || chunks_end(l->db, l->task_id, &l->size, err) < 0)
    return berth_error_wrap(err, "open the task log of %s", l->task_id);
  if ((l->wbuf = malloc(BERTH_LOG_BUFFER)) == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  if (pthread_create(&l->writer, NULL, writer_main, l) != 0) {
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    return berth_error_set(err, BERTH_EINTERNAL, "start the writer of the task log of %s", l->task_id);
  }
  l->threaded = true;
  return 0;
}

int
berth_task_log_create(berth_store *st, const char *task_id, berth_task_log **out, berth_error **err)
{
  berth_task_log *l = calloc(1, sizeof *l);
  if (l == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  l->fd = -1;
  l->task_id = strdup(task_id);
  l->buf = malloc(BERTH_LOG_BUFFER);
  int rc = l->task_id == NULL || l->buf == NULL ? berth_error_set(err, BERTH_EINTERNAL, "out of memory")
           : logs_in_files(st)                  ? open_file(st, l, err)
                                                : open_chunks(st, l, err);
  if (rc < 0) {
    berth_task_log_close(l);
    return rc;
  }
  *out = l;
  return 0;
}

static int
write_all(int fd, const struct iovec *iov, int n)
{
  struct iovec v[2];
  memcpy(v, iov, sizeof(struct iovec) * (size_t) n);
  int i = 0;
  while (i < n) {
    ssize_t w = writev(fd, v + i, n - i);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    while (i < n && (size_t) w >= v[i].iov_len) {
      w -= (ssize_t) v[i].iov_len;
      i++;
    }
    if (i < n) {
      v[i].iov_base = (char *) v[i].iov_base + w;
      v[i].iov_len -= (size_t) w;
    }
  }
  return 0;
}

/* A write that failed may have left part of a record: cut the file back to whole records, so that readers never see
 * a torn one and later records (berth's notes once space is freed) still parse. A chunk is all or nothing. */
static int
write_failed(berth_task_log *l, int e, berth_error **err)
{
  if (l->fd >= 0 && ftruncate(l->fd, (off_t) l->size) < 0) { /* nothing better to do: the reader reports it */
  }
  if (l->failed_errno == 0)
    l->failed_errno = e;
  if (l->fd < 0 && l->failed_msg == NULL && err && *err && (*err)->msg)
    l->failed_msg = strdup((*err)->msg);
  if (l->fd < 0)
    return berth_error_wrap(err, "write the %s", l->path);
  return berth_error_set_errno(err, BERTH_EINTERNAL, e, "write the task log %s", l->path);
}

/* The blocks a write needs, taken before it is made: on a full disk the write is not made at all, so a follower
 * never reads half a record (the cut-back in write_failed is for file systems without fallocate). */
static int
reserve(berth_task_log *l, size_t n)
{
  int rc = fallocate(l->fd, FALLOC_FL_KEEP_SIZE, l->size, (off_t) n);
  if (rc < 0 && (errno == EOPNOTSUPP || errno == ENOSYS || errno == EINTR))
    return 0;
  return rc;
}

/* The NOTIFY of a chunk of task c.task_id, sent only when the task has a follower (log_followers): a NOTIFY wakes
 * every listening connection of the database, a fleet host's too, whatever the channel. One row per chunk. */
#define NOTIFY_FOLLOWERS_SQL                                                                                           \
  "(SELECT pg_notify('" LOG_CHANNEL "', c.task_id) FROM log_followers f WHERE f.task_id = c.task_id LIMIT 1)"

/* One chunk of whole records at offset l->size, then a NOTIFY that wakes the followers. */
static int
insert_chunk(berth_task_log *l, const void *data, size_t len, berth_error **err)
{
  /* one round trip per flush: the NOTIFY rides on the insert (PostgreSQL only, as chunks are); a log fenced by a
   * host's claim writes only while the claim holds */
  db_stmt *s = NULL;
  if (db_prepare(l->db,
                 l->fence > 0 ? "WITH c AS (INSERT INTO task_log_chunks (task_id, off, len, bytes) SELECT ?, ?, ?, ?"
                                " WHERE EXISTS (SELECT 1 FROM tasks WHERE id = ? AND attempt = ? AND revoked = 0)"
                                " RETURNING task_id) SELECT " NOTIFY_FOLLOWERS_SQL " FROM c"
                              : "WITH c AS (INSERT INTO task_log_chunks (task_id, off, len, bytes) VALUES (?, ?, ?, ?)"
                                " RETURNING task_id) SELECT " NOTIFY_FOLLOWERS_SQL " FROM c",
                 &s, err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_text(s, 1, l->task_id);
  db_bind_int64(s, 2, l->size);
  db_bind_int64(s, 3, (int64_t) len);
  db_bind_blob(s, 4, data, len);
  if (l->fence > 0) {
    db_bind_text(s, 5, l->task_id);
    db_bind_int64(s, 6, l->fence);
  }
  int64_t rows = 0;
  if (db_run(s, &rows, err) < 0)
    return BERTH_EINTERNAL;
  if (l->fence > 0 && rows == 0)
    return berth_error_set(err, BERTH_EBUSY, "task %s is no longer this host's to log (claim %d was revoked)",
                           l->task_id, l->fence);
  return 0;
}

/* A chunk the store did not take (PostgreSQL restarting, failing over, out of disk) is tried again every second for
 * up to LOG_WRITE_TRIES s: meanwhile the caller's next push waits, so the command's output waits in the exec stream
 * (the pipe blocks the command's writes) instead of failing the task. A claim revoked meanwhile is not retried, nor
 * is a chunk of a task its host gave up (berth_task_log_watch). A
 * chunk whose insert failed with the connection may have been written before it died: the log's end says so. */
#define LOG_WRITE_TRIES 60

static int
insert_chunk_kept(berth_task_log *l, const void *data, size_t len, berth_error **err)
{
  for (int tries = 1;; tries++) {
    berth_error *e = NULL;
    if (insert_chunk(l, data, len, &e) == 0)
      return 0;
    if (e == NULL || e->code == BERTH_EBUSY || tries >= LOG_WRITE_TRIES
        || (l->give_up != NULL && atomic_load(l->give_up))) {
      if (err && *err == NULL)
        *err = e;
      else
        berth_error_free(e);
      return BERTH_EINTERNAL;
    }
    berth_error_free(e);
    for (int i = 0; i < 10 && !(l->give_up != NULL && atomic_load(l->give_up)); i++) {
      struct timespec ts = { 0, 100 * 1000000L };
      nanosleep(&ts, NULL);
    }
    /* the connection is made again by the next statement; its session setting with it */
    int64_t end = -1;
    berth_error *ce = NULL;
    if (chunks_end(l->db, l->task_id, &end, &ce) == 0) {
      berth_error_clear(&ce);
      db_exec(l->db, "SET synchronous_commit = off", &ce);
      if (end == l->size + (int64_t) len)
        return 0; /* it was written */
    }
    berth_error_free(ce);
  }
}

/* Appends whole records (n iovecs, at most two) to the file or as one chunk. */
static int
append(berth_task_log *l, const struct iovec *iov, int n, berth_error **err)
{
  size_t total = 0;
  for (int i = 0; i < n; i++)
    total += iov[i].iov_len;
  if (l->fd >= 0) {
    if (reserve(l, total) < 0 || write_all(l->fd, iov, n) < 0)
      return write_failed(l, errno, err);
  } else {
    char *joined = NULL;
    if (n > 1 && (joined = malloc(total)) == NULL)
      return write_failed(l, ENOMEM, err);
    for (size_t i = 0, at = 0; joined && i < (size_t) n; at += iov[i].iov_len, i++)
      memcpy(joined + at, iov[i].iov_base, iov[i].iov_len);
    int rc = insert_chunk_kept(l, joined ? joined : iov[0].iov_base, total, err);
    free(joined);
    if (rc < 0)
      return write_failed(l, EIO, err);
  }
  l->size += (int64_t) total;
  return 0;
}

static void *
writer_main(void *arg)
{
  berth_task_log *l = arg;
  pthread_mutex_lock(&l->mu);
  for (;;) {
    while (!l->busy && !l->stop)
      pthread_cond_wait(&l->cv, &l->mu);
    if (!l->busy)
      break;
    pthread_mutex_unlock(&l->mu);
    berth_error *e = NULL;
    int rc = l->werr != NULL ? -1 : insert_chunk_kept(l, l->wbuf, l->wlen, &e); /* after a failure, nothing more */
    pthread_mutex_lock(&l->mu);
    if (rc == 0)
      l->size += (int64_t) l->wlen;
    else if (e != NULL) {
      if (l->failed_errno == 0)
        l->failed_errno = EIO;
      if (l->failed_msg == NULL && e->msg)
        l->failed_msg = strdup(e->msg);
      l->werr = e;
    }
    l->busy = false;
    pthread_cond_broadcast(&l->cv);
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

/* Waits until the writer has written what it was given; then the caller may use l->db and l->size itself. Returns the
 * writer's failure, if it had one (the log stays failed: every later flush says so). */
static int
writer_idle(berth_task_log *l, berth_error **err)
{
  if (!l->threaded)
    return 0;
  pthread_mutex_lock(&l->mu);
  while (l->busy)
    pthread_cond_wait(&l->cv, &l->mu);
  berth_error *e = l->werr;
  pthread_mutex_unlock(&l->mu);
  if (e == NULL)
    return 0;
  if (err && *err == NULL)
    berth_error_set(err, e->code, "%s", e->msg);
  return write_failed(l, EIO, err);
}

void
berth_task_log_watch(berth_task_log *l, const atomic_bool *give_up)
{
  l->give_up = give_up;
}

int
berth_task_log_failed_errno(const berth_task_log *l)
{
  return l->failed_errno;
}

const char *
berth_task_log_failed_msg(const berth_task_log *l)
{
  return l->failed_msg;
}

int
berth_task_log_flush(berth_task_log *l, berth_error **err)
{
  if (berth_task_log_push(l, err) < 0)
    return BERTH_EINTERNAL;
  return writer_idle(l, err);
}

int
berth_task_log_push(berth_task_log *l, berth_error **err)
{
  if (writer_idle(l, err) < 0)
    return BERTH_EINTERNAL;
  if (l->len == 0)
    return 0;
  if (l->threaded) { /* hand the buffer over and go on filling the other one */
    pthread_mutex_lock(&l->mu);
    char *b = l->wbuf;
    l->wbuf = l->buf;
    l->wlen = l->len;
    l->buf = b;
    l->len = 0;
    l->busy = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return 0;
  }
  struct iovec iov[1] = { { l->buf, l->len } };
  l->len = 0;
  return append(l, iov, 1, err);
}

int
berth_task_log_write(berth_task_log *l, int kind, int phase, const char *data, size_t len, berth_error **err)
{
  while (len > 0) {
    size_t n = len > BERTH_LOG_RECORD_MAX ? BERTH_LOG_RECORD_MAX : len;
    unsigned char hdr[6] = { (unsigned char) kind,      (unsigned char) phase,    (unsigned char) (n >> 24),
                             (unsigned char) (n >> 16), (unsigned char) (n >> 8), (unsigned char) n };
    if (l->len + sizeof hdr + n <= BERTH_LOG_BUFFER) {
      memcpy(l->buf + l->len, hdr, sizeof hdr);
      memcpy(l->buf + l->len + sizeof hdr, data, n);
      l->len += sizeof hdr + n;
    } else {
      if (berth_task_log_push(l, err) < 0)
        return BERTH_EINTERNAL;
      struct iovec iov[2] = { { hdr, sizeof hdr }, { (void *) data, n } };
      if (sizeof hdr + n > BERTH_LOG_BUFFER / 2) {
        if (writer_idle(l, err) < 0 || append(l, iov, 2, err) < 0)
          return BERTH_EINTERNAL;
      } else {
        memcpy(l->buf, hdr, sizeof hdr);
        memcpy(l->buf + sizeof hdr, data, n);
        l->len = sizeof hdr + n;
      }
    }
    data += n;
    len -= n;
  }
  return 0;
}

void
berth_task_log_close(berth_task_log *l)
{
  if (l == NULL)
    return;
  if (l->fd >= 0 || l->db != NULL) {
    berth_error *e = NULL;
    berth_task_log_flush(l, &e);
    berth_error_clear(&e);
    writer_idle(l, &e);
    berth_error_free(e);
  }
  if (l->threaded) {
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->writer, NULL);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    berth_error_free(l->werr);
  }
  free(l->wbuf);
  /* no fsync: the log goes through the page cache like any log file; the task record (SQLite, synchronous=FULL)
   * is what must survive a power loss, and an fsync of a 1 GiB log would hold the task's end for seconds */
  if (l->fd >= 0)
    close(l->fd);
  store_db_give_back(l->st, l->db);
  free(l->task_id);
  free(l->path);
  free(l->buf);
  free(l->failed_msg);
  free(l);
}

int
berth_log_reader_open(berth_store *st, const char *task_id, berth_log_reader **out, berth_error **err)
{
  berth_log_reader *r = calloc(1, sizeof *r);
  if (r == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  r->fd = -1;
  r->watch = -1;
  berth_buf_init(&r->pending, BERTH_LOG_RECORD_MAX + 6);
  berth_buf_init(&r->chunk, BERTH_LOG_CHUNK_MAX);
  int rc = (r->task_id = strdup(task_id)) == NULL ? berth_error_set(err, BERTH_EINTERNAL, "out of memory") : 0;
  if (rc == 0 && logs_in_files(st)) {
    if ((r->path = berth_task_log_path(berth_store_home(st), task_id)) == NULL)
      rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  } else if (rc == 0 && store_db_open_reader(st, &r->db, r->db_key, err) < 0) {
    rc = berth_error_wrap(err, "read the task log of %s", task_id);
  }
  if (rc < 0) {
    berth_log_reader_close(r);
    return rc;
  }
  *out = r;
  return 0;
}

int
berth_log_reader_seek(berth_log_reader *r, int64_t offset, berth_error **err)
{
  if (offset < 0)
    return berth_error_set(err, BERTH_EINVAL, "a log offset cannot be negative");
  r->pos = offset;
  r->locate = offset > 0;
  return 0;
}

/* Takes the current row of r->batch as the chunk to hand out: 1, 0 when the row lies wholly before r->pos (a
 * seek's lookup found the chunk before), <0 when it is damaged. */
static int
take_row(berth_log_reader *r, berth_error **err)
{
  int64_t off = db_column_int64(r->batch, 0);
  size_t len = 0;
  const void *p = db_column_blob(r->batch, 1, &len);
  berth_buf_reset(&r->chunk);
  if (off + (int64_t) len <= r->pos)
    return 0;
  if (berth_buf_append(&r->chunk, p ? p : "", len) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "task log %s is corrupt (a chunk of %zu bytes)", r->task_id, len);
  r->chunk_at = off < r->pos ? (size_t) (r->pos - off) : 0;
  r->pos = off > r->pos ? off : r->pos;
  return 1;
}

/* PostgreSQL: the chunk holding r->pos (after a seek) or the next one, from a batch of up to FETCH_CHUNKS read in one
 * query. 1 when one was loaded, 0 when there is none yet, <0 on error. */
static int
fetch_chunk(berth_log_reader *r, berth_error **err)
{
  for (;;) {
    bool fresh = r->batch == NULL, locating = fresh && r->locate;
    if (fresh) {
      const char *sql = locating ? "SELECT off, bytes FROM task_log_chunks WHERE task_id = ? AND off <= ?"
                                   " ORDER BY off DESC LIMIT 1"
                                 : "SELECT off, bytes FROM task_log_chunks WHERE task_id = ? AND off >= ?"
                                   " ORDER BY off LIMIT " FETCH_CHUNKS;
      r->locate = false;
      r->batch_locating = locating;
      r->batch_rows = 0;
      if (db_prepare(r->db, sql, &r->batch, err) < 0) {
        r->store_failed = true;
        r->locate = locating; /* looked up again by the next read */
        return berth_error_wrap(err, "read the task log of %s", r->task_id);
      }
      db_binary_results(r->batch); /* the chunks' bytes as they are, not hex */
      db_bind_text(r->batch, 1, r->task_id);
      db_bind_int64(r->batch, 2, r->pos);
    }
    int rc = db_step(r->batch, err);
    if (rc == DB_ROW)
      r->batch_rows++;
    if (rc == DB_ROW && (rc = take_row(r, err)) != 0)
      return rc < 0 ? berth_error_wrap(err, "read the task log of %s", r->task_id) : 1;
    db_finalize(r->batch);
    r->batch = NULL;
    if (rc < 0) {
      r->store_failed = true;
      r->locate = r->batch_locating && r->batch_rows == 0; /* a lookup that found nothing yet is made again */
      return berth_error_wrap(err, "read the task log of %s", r->task_id);
    }
    /* used up: a scan that found fewer chunks than it asked for saw the end of the log as it was (the next call
     * asks again; a reader waiting in between is woken by the next chunk's NOTIFY); after a full one, more may
     * follow at once; a seek's lookup goes on with the chunks after what it found */
    if (!r->batch_locating && r->batch_rows < FETCH_CHUNKS_N)
      return 0;
  }
}

bool
berth_log_reader_store_failed(const berth_log_reader *r)
{
  return r->store_failed;
}

ssize_t
berth_log_reader_read_bytes(berth_log_reader *r, char *buf, size_t max, berth_error **err)
{
  if (r->db != NULL) {
    r->store_failed = false;
    if (r->chunk_at >= r->chunk.len) {
      int rc = fetch_chunk(r, err);
      if (rc <= 0)
        return rc;
    }
    size_t n = r->chunk.len - r->chunk_at < max ? r->chunk.len - r->chunk_at : max;
    memcpy(buf, r->chunk.data + r->chunk_at, n);
    r->chunk_at += n;
    r->pos += (int64_t) n;
    return (ssize_t) n;
  }
  if (r->fd < 0) {
    r->fd = open(r->path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0)
      return errno == ENOENT ? 0 : berth_error_set_errno(err, BERTH_EINTERNAL, errno, "open the task log %s", r->path);
    if (r->pos > 0 && lseek(r->fd, (off_t) r->pos, SEEK_SET) < 0)
      return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "read the task log %s", r->path);
  }
  for (;;) {
    ssize_t n = read(r->fd, buf, max);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "read the task log %s", r->path);
    r->pos += n;
    return n;
  }
}

int
berth_log_reader_read(berth_log_reader *r, berth_log_record_fn fn, void *userdata, berth_error **err)
{
  const char *name = r->path ? r->path : r->task_id;
  int records = 0;
  char buf[65536];
  for (;;) {
    /* never more than pending can take: a whole record always fits, and delivering it makes room */
    size_t room = r->pending.max - r->pending.len;
    if (room == 0)
      return berth_error_set(err, BERTH_EINTERNAL, "task log %s is corrupt", name);
    ssize_t n = berth_log_reader_read_bytes(r, buf, room < sizeof buf ? room : sizeof buf, err);
    if (n < 0)
      return (int) n;
    if (n == 0)
      break;
    if (berth_buf_append(&r->pending, buf, (size_t) n) < 0)
      return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    /* deliver whole records; keep a partial one */
    size_t off = 0;
    while (r->pending.len - off >= 6) {
      const unsigned char *h = (const unsigned char *) r->pending.data + off;
      size_t len = ((size_t) h[2] << 24) | ((size_t) h[3] << 16) | ((size_t) h[4] << 8) | h[5];
      if (len > BERTH_LOG_RECORD_MAX || h[0] < 1 || h[0] > 3)
        return berth_error_set(err, BERTH_EINTERNAL, "task log %s is corrupt", name);
      if (r->pending.len - off - 6 < len)
        break;
      int rc = fn(userdata, h[0], h[1], r->pending.data + off + 6, len);
      if (rc < 0)
        return berth_error_set(err, BERTH_EINTERNAL, "stopped reading the task log");
      records++;
      off += 6 + len;
    }
    if (off > 0) {
      memmove(r->pending.data, r->pending.data + off, r->pending.len - off);
      r->pending.len -= off;
    }
  }
  return records;
}

/* PostgreSQL: records (or removes) this reader's connection as a follower of its task, so that the writer's chunks
 * of that task send their NOTIFY. Failing to is not fatal: the reader polls every PG_POLL_MS meanwhile. */
static void
follow(berth_log_reader *r, bool on)
{
  db_stmt *s = NULL;
  berth_error *e = NULL;
  if (db_prepare(r->db,
                 on ? "INSERT INTO log_followers (task_id, pid, since) VALUES (?, pg_backend_pid(), ?)"
                      " ON CONFLICT (task_id, pid) DO NOTHING"
                    : "DELETE FROM log_followers WHERE task_id = ? AND pid = pg_backend_pid()",
                 &s, &e)
      == 0) {
    db_bind_text(s, 1, r->task_id);
    if (on)
      db_bind_int64(s, 2, berth_now_ms());
    r->following = db_run(s, NULL, &e) == 0 && on;
  }
  berth_error_free(e);
}

void
berth_log_reader_close(berth_log_reader *r)
{
  if (r == NULL)
    return;
  if (r->fd >= 0)
    close(r->fd);
  if (r->watch >= 0)
    close(r->watch);
  db_finalize(r->batch);
  if (r->following)
    follow(r, false);
  store_db_reader_done(r->db_key, r->db, !r->listened);
  berth_buf_free(&r->pending);
  berth_buf_free(&r->chunk);
  free(r->task_id);
  free(r->path);
  free(r);
}

static void
sleep_ms(int ms)
{
  struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
  nanosleep(&ts, NULL);
}

/* PostgreSQL: the first call LISTENs and records the follower (and says "grown": a flush may have come before
 * them); later calls wait for the writer's NOTIFY. Without notifications, a short poll. A chunk whose statement
 * began just before the follower was recorded sends no NOTIFY: the poll's timeout (PG_POLL_MS) bounds that wait. */
static int
wait_notify(berth_log_reader *r, int timeout_ms)
{
  if (!r->listening) {
    berth_error *e = NULL;
    r->listened = true; /* even a LISTEN that failed may have reached the server */
    r->listening = db_listen(r->db, LOG_CHANNEL, &e) == 0;
    berth_error_free(e);
    if (r->listening)
      follow(r, true); /* again after a lost connection: a new backend, a new pid */
    if (r->listening)
      return 1;
  } else {
    /* at most PG_POLL_MS, so a wake-up lost with a connection is made up for by the caller's next read */
    int rc = db_wait_notify(r->db, r->task_id, timeout_ms < PG_POLL_MS ? timeout_ms : PG_POLL_MS);
    if (rc >= 0)
      return rc;
    r->listening = false;
  }
  sleep_ms(timeout_ms < PG_POLL_MS ? timeout_ms : PG_POLL_MS);
  return 1;
}

int
berth_log_wait(berth_log_reader *r, int timeout_ms)
{
  if (r->db != NULL)
    return wait_notify(r, timeout_ms);
  if (r->watch < 0) {
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd >= 0 && inotify_add_watch(fd, r->path, IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE_SELF) < 0) {
      close(fd);
      fd = -1;
    }
    if (fd < 0) { /* no file yet (or no inotify): look again soon */
      sleep_ms(timeout_ms < 20 ? timeout_ms : 20);
      return 0;
    }
    r->watch = fd;
    return 1; /* it may have grown between the caller's last read and the watch */
  }
  struct pollfd p = { .fd = r->watch, .events = POLLIN };
  int n = poll(&p, 1, timeout_ms);
  if (n <= 0)
    return 0;
  char ev[4096];
  while (read(r->watch, ev, sizeof ev) > 0)
    ;
  return 1;
}
