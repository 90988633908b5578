/* Stored task logs: append-only record files that readers can follow while they grow. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "berth/buf.h"
#include "berth/task_log.h"

struct berth_task_log {
  int fd;
  char *path;
  char *buf; /* pending records, BERTH_LOG_BUFFER bytes */
  size_t len;
  int failed_errno; /* of the first write that failed; 0 while all went well */
  off_t size;       /* bytes of whole records in the file: a failed write is cut back to this */
};

struct berth_log_reader {
  char *path;
  int fd;
  berth_buf pending; /* a partial record carried to the next read */
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

int
berth_task_log_create(const char *home, const char *task_id, berth_task_log **out, berth_error **err)
{
  char *dir = NULL;
  if (asprintf(&dir, "%s/logs", home) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
    int rc = berth_error_set_errno(err, BERTH_EINTERNAL, errno, "create the log directory %s", dir);
    free(dir);
    return rc;
  }
  free(dir);
  berth_task_log *l = calloc(1, sizeof *l);
  if (l == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  l->path = berth_task_log_path(home, task_id);
  l->buf = malloc(BERTH_LOG_BUFFER);
  l->fd = l->buf == NULL ? -1 : l->path ? open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
  if (l->fd < 0) {
    int rc = berth_error_set_errno(err, BERTH_EINTERNAL, errno, "open the task log %s", l->path ? l->path : "?");
    free(l->path);
    free(l->buf);
    free(l);
    return rc;
  }
  struct stat sb;
  l->size = fstat(l->fd, &sb) == 0 ? sb.st_size : 0;
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
 * a torn one and later records (berth's notes once space is freed) still parse. */
static int
write_failed(berth_task_log *l, berth_error **err)
{
  int e = errno;
  if (ftruncate(l->fd, l->size) < 0) { /* nothing better to do: the reader reports the file as corrupt */
  }
  if (l->failed_errno == 0)
    l->failed_errno = e;
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

int
berth_task_log_failed_errno(const berth_task_log *l)
{
  return l->failed_errno;
}

int
berth_task_log_flush(berth_task_log *l, berth_error **err)
{
  if (l->len == 0)
    return 0;
  struct iovec iov[1] = { { l->buf, l->len } };
  size_t n = l->len;
  l->len = 0;
  if (reserve(l, n) < 0 || write_all(l->fd, iov, 1) < 0)
    return write_failed(l, err);
  l->size += (off_t) n;
  return 0;
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
      if (berth_task_log_flush(l, err) < 0)
        return BERTH_EINTERNAL;
      struct iovec iov[2] = { { hdr, sizeof hdr }, { (void *) data, n } };
      if (sizeof hdr + n > BERTH_LOG_BUFFER / 2) {
        if (reserve(l, sizeof hdr + n) < 0 || write_all(l->fd, iov, 2) < 0)
          return write_failed(l, err);
        l->size += (off_t) (sizeof hdr + n);
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
  if (l->fd >= 0) {
    berth_error *e = NULL;
    berth_task_log_flush(l, &e);
    berth_error_free(e);
    /* no fsync: the log goes through the page cache like any log file; the task record (SQLite, synchronous=FULL)
     * is what must survive a power loss, and an fsync of a 1 GiB log would hold the task's end for seconds */
    close(l->fd);
  }
  free(l->path);
  free(l->buf);
  free(l);
}

int
berth_log_reader_open(const char *path, berth_log_reader **out, berth_error **err)
{
  berth_log_reader *r = calloc(1, sizeof *r);
  if (r == NULL || (r->path = strdup(path)) == NULL) {
    free(r);
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  r->fd = -1;
  berth_buf_init(&r->pending, BERTH_LOG_RECORD_MAX + 6);
  *out = r;
  return 0;
}

int
berth_log_reader_read(berth_log_reader *r, berth_log_record_fn fn, void *userdata, berth_error **err)
{
  if (r->fd < 0) {
    r->fd = open(r->path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0)
      return errno == ENOENT ? 0 : berth_error_set_errno(err, BERTH_EINTERNAL, errno, "open the task log %s", r->path);
  }
  int records = 0;
  char buf[65536];
  for (;;) {
    ssize_t n = read(r->fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "read the task log %s", r->path);
    if (n == 0)
      break;
    if (berth_buf_append(&r->pending, buf, (size_t) n) < 0 && r->pending.len == 0)
      return berth_error_set(err, BERTH_EINTERNAL, "task log %s is corrupt", r->path);
    /* deliver whole records; keep a partial one */
    size_t off = 0;
    while (r->pending.len - off >= 6) {
      const unsigned char *h = (const unsigned char *) r->pending.data + off;
      size_t len = ((size_t) h[2] << 24) | ((size_t) h[3] << 16) | ((size_t) h[4] << 8) | h[5];
      if (len > BERTH_LOG_RECORD_MAX || h[0] < 1 || h[0] > 3)
        return berth_error_set(err, BERTH_EINTERNAL, "task log %s is corrupt", r->path);
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

void
berth_log_reader_close(berth_log_reader *r)
{
  if (r == NULL)
    return;
  if (r->fd >= 0)
    close(r->fd);
  berth_buf_free(&r->pending);
  free(r->path);
  free(r);
}

int
berth_log_wait(int *watch, const char *path, int timeout_ms)
{
  if (*watch < 0) {
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd >= 0 && inotify_add_watch(fd, path, IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE_SELF) < 0) {
      close(fd);
      fd = -1;
    }
    if (fd < 0) { /* no file yet (or no inotify): look again soon */
      struct timespec ts = { 0, (long) (timeout_ms < 20 ? timeout_ms : 20) * 1000000L };
      nanosleep(&ts, NULL);
      return 0;
    }
    *watch = fd;
    return 1; /* it may have grown between the caller's last read and the watch */
  }
  struct pollfd p = { .fd = *watch, .events = POLLIN };
  int n = poll(&p, 1, timeout_ms);
  if (n <= 0)
    return 0;
  char ev[4096];
  while (read(*watch, ev, sizeof ev) > 0)
    ;
  return 1;
}

void
berth_log_watch_close(int *watch)
{
  if (*watch >= 0)
    close(*watch);
  *watch = -1;
}
