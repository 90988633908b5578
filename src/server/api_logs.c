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
#include <string.h>

#include "berth/parse.h"
#include "berth/task_log.h"
#include "server.h"

#define POLL_MS 50
#define STATE_CHECK_MS 100

struct srv_stream {
  srv_ctx *srv;
  char *task_id;
  berth_log_reader *log; /* opened at the first read, on the thread that streams */
  int conn_fd;
  bool follow;
  bool raw;
  int64_t offset; /* records format: start at this offset in the record stream (a client resuming a cut stream) */
  bool ended;     /* the task is terminal and the file was read to its end after that */
  bool saw_end;   /* terminal state seen: one last read, then end */
  /* raw format: where we are in the record framing */
  unsigned char hdr[6];
  size_t hdr_len;
  size_t payload_left;
};

void
srv_stream_free(srv_stream *s)
{
  if (s == NULL)
    return;
  berth_log_reader_close(s->log);
  free(s->task_id);
  free(s);
}

/* Raw format: strips the 6-byte headers from buf[0..n) in place; returns the payload byte count, -1 if corrupt. */
static ssize_t
strip_headers(srv_stream *s, char *buf, size_t n)
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

static bool
client_gone(int fd)
{
  if (fd < 0)
    return false;
  struct pollfd p = { .fd = fd, .events = POLLRDHUP };
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static bool
task_terminal(srv_stream *s)
{
  berth_error *err = NULL;
  berth_store *st = srv_store(s->srv, &err);
  berth_task *t = NULL;
  bool done
      = st == NULL || berth_store_task_get(st, s->task_id, &t, &err) < 0 || berth_task_state_is_terminal(t->state);
  berth_task_free(t);
  berth_error_free(err);
  return done;
}

ssize_t
srv_stream_read(srv_stream *s, char *buf, size_t max)
{
  int64_t last_check = 0;
  for (;;) {
    if (s->ended)
      return -1;
    if (s->log == NULL) {
      berth_error *err = NULL;
      berth_store *st = srv_store(s->srv, &err);
      if (st == NULL || berth_log_reader_open(st, s->task_id, &s->log, &err) < 0
          || berth_log_reader_seek(s->log, s->offset, &err) < 0) {
        berth_error_free(err);
        return -2;
      }
    }
    for (;;) {
      berth_error *err = NULL;
      ssize_t n = berth_log_reader_read_bytes(s->log, buf, max, &err);
      berth_error_free(err);
      if (n < 0)
        return -2;
      if (n == 0)
        break;
      if (!s->raw)
        return n;
      ssize_t m = strip_headers(s, buf, (size_t) n);
      if (m < 0)
        return -2;
      if (m > 0)
        return m;
    }
    /* at the end of what is written now */
    if (!s->follow || s->saw_end || atomic_load(&s->srv->stopping)) {
      s->ended = true;
      return -1;
    }
    if (client_gone(s->conn_fd))
      return -2;
    int64_t now = berth_now_ms();
    if (now - last_check >= STATE_CHECK_MS) {
      last_check = now;
      if (task_terminal(s)) {
        s->saw_end = true; /* read once more: the last records were written before the final transition */
        continue;
      }
    }
    berth_log_wait(s->log, POLL_MS);
  }
}

int
api_task_logs(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  berth_task *t = NULL;
  if (berth_store_task_get(r->st, r->args[0], &t, &err) < 0)
    return srv_fail(out, err);
  if (srv_check_stack(r, t->stack, &err) < 0) {
    berth_task_free(t);
    return srv_fail(out, err);
  }
  const char *format = srv_query(r, "format");
  if (format && strcmp(format, "raw") != 0 && strcmp(format, "records") != 0) {
    berth_task_free(t);
    return srv_fail_status(out, 400, BERTH_EINVAL, "query parameter `format` must be raw or records");
  }
  int64_t offset = 0;
  const char *off = srv_query(r, "offset");
  if (off && berth_parse_int64(off, 0, INT64_C(1) << 50, &offset, &err) < 0) {
    berth_task_free(t);
    return srv_fail(out, err);
  }
  if (offset > 0 && (format == NULL || strcmp(format, "records") != 0)) {
    berth_task_free(t);
    return srv_fail_status(out, 400, BERTH_EINVAL, "query parameter `offset` needs format=records");
  }
  srv_stream *s = calloc(1, sizeof *s);
  if (s == NULL) {
    berth_task_free(t);
    return srv_fail_status(out, 500, BERTH_EINTERNAL, "out of memory");
  }
  s->srv = r->srv;
  s->conn_fd = r->conn_fd;
  s->offset = offset;
  s->follow = srv_truthy(srv_query(r, "follow"));
  s->raw = format == NULL || strcmp(format, "raw") == 0;
  s->task_id = strdup(t->id);
  berth_task_free(t);
  if (s->task_id == NULL) {
    srv_stream_free(s);
    return srv_fail_status(out, 500, BERTH_EINTERNAL, "out of memory");
  }
  out->status = 200;
  out->stream = s;
  out->content_type = s->raw ? "text/plain" : "application/vnd.berth.log-records";
  return 0;
}
