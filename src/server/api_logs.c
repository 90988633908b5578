/* GET /v1/tasks/{id}/logs[?follow=1][&format=raw|records]: the stored task log, streamed (chunked) while the task
 * runs, ending when it ends.
 *
 * The log (task_log.h) is append-only and a byte, once written, never changes, so the stream forwards the record
 * stream as it grows, through the log reader (a file, or chunks in a PostgreSQL store), at most one buffer at a
 * time: a follower costs a reader and MHD's buffer, however large the log. format=records sends the log's own records
 * ([kind][phase][len:4 BE][bytes], so a client can split stdout from the rest); format=raw (the default) sends the
 * payloads only, as `berth task logs` prints them. Every follower reads the same log, so two followers receive
 * identical bytes. */
#include <poll.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "berth/task_queue.h"
#include "berth/parse.h"
#include "berth/task_log.h"
#include "server.h"

#define POLL_MS 50
#define STATE_CHECK_MS 100
#define LIVENESS_CHECKS 10 /* about once a second */
/* The niceness of a thread that streams a log. Followers wait and catch up from the stored log, a task's own work
 * (the container, the daemon's stream, the supervisor's redaction and writes) does not: on busy CPUs the task comes
 * first. 50 followers of a task printing 50 MB on 2 CPUs took 46% of its throughput at niceness 0, 19% at 10 and
 * none measurable at 19 (bench/ui.sh); a follower needs little CPU per line, so live output still arrives at once
 * (bench/latency.sh). The connection closes after the stream (server.c), so the thread never serves anything else. */
#define STREAM_NICE 19

typedef struct log_stream {
  srv_follow f;
  bool follow;
  bool raw;
  bool ended; /* read to the end (after the task ended, when following) */
  /* raw format: where we are in the record framing */
  unsigned char hdr[6];
  size_t hdr_len;
  size_t payload_left;
} log_stream;

int
srv_follow_init(srv_follow *f, srv_req *r, const berth_task *t, int64_t offset, berth_error **err)
{
  *f = (srv_follow){ .srv = r->srv, .conn_fd = r->conn_fd, .offset = offset };
  f->task_id = strdup(t->id);
  if (f->task_id == NULL) {
    srv_follow_clear(f);
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  return 0;
}

void
srv_follow_clear(srv_follow *f)
{
  berth_log_reader_close(f->log);
  f->log = NULL;
  berth_task_free(f->task);
  f->task = NULL;
  free(f->task_id);
  f->task_id = NULL;
}

ssize_t
srv_follow_read(srv_follow *f, char *buf, size_t max)
{
  berth_error *err = NULL;
  if (f->log == NULL) { /* opened on the thread that streams (the store handle is per thread) */
    /* Linux: the niceness is the thread's own; failing to lower it changes nothing else */
    (void) setpriority(PRIO_PROCESS, (id_t) gettid(), STREAM_NICE);
    berth_store *st = srv_store(f->srv, &err);
    if (st == NULL || berth_log_reader_open(st, f->task_id, &f->log, &err) < 0
        || berth_log_reader_seek(f->log, f->offset, &err) < 0) {
      berth_error_free(err);
      return -2;
    }
  }
  ssize_t n = berth_log_reader_read_bytes(f->log, buf, max, &err);
  berth_error_free(err);
  return n < 0 ? -2 : n;
}

static bool
client_gone(int fd)
{
  if (fd < 0)
    return false;
  struct pollfd p = { .fd = fd, .events = POLLRDHUP };
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Re-reads the task; true when it is terminal (or can no longer be read). */
static bool
task_terminal(srv_follow *f)
{
  berth_error *err = NULL;
  berth_store *st = srv_store(f->srv, &err);
  berth_task *t = NULL;
  if (st == NULL || berth_store_task_get(st, f->task_id, &t, &err) < 0) {
    berth_error_free(err);
    return true;
  }
  berth_task_free(f->task);
  f->task = t;
  if (!berth_task_state_is_terminal(t->state) && ++f->checks % LIVENESS_CHECKS == 0) {
    /* a supervisor that died leaves its task to whoever looks: fail it now rather than follow it forever */
    if (berth_queue_fail_if_orphan(st, NULL, t, &err) != 0) {
      berth_error_free(err);
      return true;
    }
  }
  return berth_task_state_is_terminal(t->state);
}

int
srv_follow_wait(srv_follow *f)
{
  if (f->saw_end || atomic_load(&f->srv->stopping))
    return 0;
  if (client_gone(f->conn_fd))
    return -2;
  int64_t now = berth_now_ms();
  if (now - f->last_check >= STATE_CHECK_MS) {
    f->last_check = now;
    if (task_terminal(f)) {
      f->saw_end = true; /* read once more: the last records were written before the final transition */
      return 1;
    }
  }
  if (f->log != NULL)
    berth_log_wait(f->log, POLL_MS); /* the writer's next flush wakes us */
  else {
    struct timespec ts = { 0, POLL_MS * 1000000L };
    nanosleep(&ts, NULL);
  }
  return 1;
}

static void
log_stream_free(void *p)
{
  log_stream *s = p;
  if (s == NULL)
    return;
  srv_follow_clear(&s->f);
  free(s);
}

/* Raw format: strips the 6-byte headers from buf[0..n) in place; returns the payload byte count, -1 if corrupt. */
static ssize_t
strip_headers(log_stream *s, char *buf, size_t n)
{
  size_t in = 0, out = 0;
  while (in < n) {
    if (s->payload_left > 0) {
      size_t take = n - in < s->payload_left ? n - in : s->payload_left;
      memmove(buf + out, buf + in, take);
      out += take;
      in += take;
      s->payload_left -= take;
      continue;
    }
    s->hdr[s->hdr_len++] = (unsigned char) buf[in++];
    if (s->hdr_len == 6) {
      size_t len = ((size_t) s->hdr[2] << 24) | ((size_t) s->hdr[3] << 16) | ((size_t) s->hdr[4] << 8) | s->hdr[5];
      if (s->hdr[0] < 1 || s->hdr[0] > 3 || len > BERTH_LOG_RECORD_MAX)
        return -1;
      s->payload_left = len;
      s->hdr_len = 0;
    }
  }
  return (ssize_t) out;
}

static ssize_t
log_stream_read(void *p, char *buf, size_t max)
{
  log_stream *s = p;
  for (;;) {
    if (s->ended)
      return -1;
    ssize_t n;
    while ((n = srv_follow_read(&s->f, buf, max)) > 0) {
      if (!s->raw)
        return n;
      ssize_t m = strip_headers(s, buf, (size_t) n);
      if (m < 0)
        return -2;
      if (m > 0)
        return m;
    }
    if (n < 0)
      return -2;
    /* at the end of what is written now */
    int w = s->follow ? srv_follow_wait(&s->f) : 0;
    if (w < 0)
      return -2;
    if (w == 0)
      s->ended = true;
  }
}

static const srv_stream_ops log_stream_ops = { log_stream_read, log_stream_free };

int
api_task_logs(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  berth_task *t = NULL;
  if (srv_task_get_scoped(r, &t, &err) < 0)
    return srv_fail(out, err);
  const char *format = srv_query(r, "format");
  if (format && strcmp(format, "raw") != 0 && strcmp(format, "records") != 0) {
    berth_task_free(t);
    return srv_fail_status(out, 400, BERTH_EINVAL, "query parameter `format` must be raw or records");
  }
  int64_t offset = 0;
  const char *off = srv_query(r, "offset");
  bool follow = false;
  if ((off && berth_parse_int64(off, 0, INT64_C(1) << 50, &offset, &err) < 0)
      || srv_query_bool(r, "follow", &follow, &err) < 0) {
    if (off && err && err->code == BERTH_EINVAL && strstr(err->msg, "follow") == NULL)
      berth_error_wrap(&err, "query parameter `offset`");
    berth_task_free(t);
    return srv_fail(out, err);
  }
  if (offset > 0 && (format == NULL || strcmp(format, "records") != 0)) {
    berth_task_free(t);
    return srv_fail_status(out, 400, BERTH_EINVAL, "query parameter `offset` needs format=records");
  }
  log_stream *s = calloc(1, sizeof *s);
  if (s == NULL || srv_follow_init(&s->f, r, t, offset, &err) < 0) {
    free(s);
    berth_task_free(t);
    return err ? srv_fail(out, err) : srv_fail_status(out, 500, BERTH_EINTERNAL, "out of memory");
  }
  berth_task_free(t);
  s->follow = follow;
  s->raw = format == NULL || strcmp(format, "raw") == 0;
  out->status = 200;
  out->stream = s;
  out->stream_ops = &log_stream_ops;
  out->content_type = s->raw ? "text/plain" : "application/vnd.berth.log-records";
  return 0;
}
