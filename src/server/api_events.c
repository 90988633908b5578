/* GET /v1/tasks/{id}/events: a task's log and state changes as Server-Sent Events (for browsers' EventSource).
 *
 *   event: log    data: {"stream": "stdout|stderr|note", "phase": "performing", "text": "..."}
 *   event: state  data: {"index": N, "state": "...", "at": "...", "actor": "...", "note": "..."}
 *   event: end    data: {"state": "FINISHED", "exit_code": 0, "reason": null}
 *
 * Every event's `id` is the byte offset in the log file just after the last byte it carries, so a client that
 * comes back with Last-Event-ID (or ?offset=) receives exactly the bytes after it, none twice. A record longer than
 * PIECE_MAX goes out as several log events, cut at UTF-8 character boundaries, so an id may point inside a record:
 * resuming there sends the rest of that record. State events carry the offset reached when they are sent; a
 * (re)connected stream first sends every transition so far (clients key them by index). The stream follows the log
 * with the same machinery as the log stream (srv_follow, woken by the log's next write) and ends with `end` once the
 * task is terminal and its last bytes are sent; a stream cut by a server shutdown ends without `end`, so the
 * browser reconnects. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/parse.h"
#include "berth/task_json.h"
#include "berth/task_log.h"
#include "server.h"

#define PIECE_MAX (16u * 1024u)          /* payload bytes per log event */
#define IN_MAX (64u * 1024u)             /* log file bytes read at once */
#define OUT_MAX (PIECE_MAX * 6u + 4096u) /* one event: every byte may become \u00XX */
#define NOTE_MAX 1024                    /* a transition's note or actor, cut in events */
#define KEEPALIVE_MS 15000               /* a comment line when nothing else was sent for this long */
#define RETRY_MS 1000                    /* the browser's reconnection delay */

typedef struct sse_stream {
  srv_follow f;
  char *in; /* IN_MAX bytes read from the file, in[in_off..in_len) not yet handled */
  size_t in_len, in_off;
  int64_t pos; /* file offset of in[in_off] */
  unsigned char hdr[6];
  size_t hdr_len;
  size_t payload_left; /* bytes of the current record still to come */
  int kind, phase;
  /* a UTF-8 character cut at the end of a record (the runner splits output where the reads fell): held back and
   * sent with the next record's bytes; its offset is the resume point meanwhile, so a resumed stream reads it again */
  unsigned char carry[4];
  size_t carry_len;
  int carry_kind, carry_phase;
  int64_t carry_end; /* the file offset after it */
  char *out;         /* the formatted events not yet handed to the HTTP layer */
  size_t out_len, out_off;
  size_t sent_history; /* transitions sent */
  bool started, done;
  int64_t last_sent;
} sse_stream;

static void
sse_free(void *p)
{
  sse_stream *s = p;
  if (s == NULL)
    return;
  srv_follow_clear(&s->f);
  free(s->in);
  free(s->out);
  free(s);
}

static int
put(sse_stream *s, const char *data, size_t n)
{
  if (OUT_MAX - s->out_len < n)
    return -1;
  memcpy(s->out + s->out_len, data, n);
  s->out_len += n;
  return 0;
}

static int
put_str(sse_stream *s, const char *str)
{
  return put(s, str, strlen(str));
}

/* Appends p[0..n) as the inside of a JSON string (sse_text.c). */
static int
put_json_text(sse_stream *s, const unsigned char *p, size_t n)
{
  ssize_t w = srv_json_text(s->out + s->out_len, OUT_MAX - s->out_len, p, n);
  if (w < 0)
    return -1;
  s->out_len += (size_t) w;
  return 0;
}

/* The offset a client may resume at now: the last record boundary or payload byte handled. */
static int64_t
resume_point(const sse_stream *s)
{
  return s->pos - (int64_t) s->hdr_len - (int64_t) s->carry_len;
}

static int
put_event(sse_stream *s, const char *event, int64_t id, const cJSON *data)
{
  char *text = cJSON_PrintUnformatted(data);
  char head[96];
  snprintf(head, sizeof head, "id: %lld\nevent: %s\ndata: ", (long long) id, event);
  int rc = text ? 0 : -1;
  if (rc == 0)
    rc = put_str(s, head);
  if (rc == 0)
    rc = put_str(s, text);
  if (rc == 0)
    rc = put_str(s, "\n\n");
  free(text);
  return rc;
}

static void
add_cut(cJSON *o, const char *key, const char *v)
{
  if (v == NULL) {
    cJSON_AddNullToObject(o, key);
    return;
  }
  char buf[NOTE_MAX + 1];
  size_t n = strlen(v);
  if (n > NOTE_MAX)
    n = srv_utf8_cut((const unsigned char *) v, NOTE_MAX);
  memcpy(buf, v, n);
  buf[n] = '\0';
  cJSON_AddStringToObject(o, key, buf);
}

/* The transitions of f.task not sent yet. */
static int
put_states(sse_stream *s)
{
  const berth_task *t = s->f.task;
  if (t == NULL)
    return 0;
  for (; s->sent_history < t->n_history; s->sent_history++) {
    const berth_transition *h = &t->history[s->sent_history];
    cJSON *o = cJSON_CreateObject();
    char *at = berth_time_iso(h->at);
    cJSON_AddNumberToObject(o, "index", (double) s->sent_history);
    add_cut(o, "state", h->state);
    add_cut(o, "at", at);
    add_cut(o, "actor", h->actor);
    add_cut(o, "note", h->note);
    free(at);
    int rc = put_event(s, "state", resume_point(s), o);
    cJSON_Delete(o);
    if (rc < 0)
      return -1;
  }
  return 0;
}

static int
put_end(sse_stream *s)
{
  const berth_task *t = s->f.task;
  cJSON *o = cJSON_CreateObject();
  add_cut(o, "state", t ? t->state : NULL);
  if (t && t->exit_code >= 0)
    cJSON_AddNumberToObject(o, "exit_code", t->exit_code);
  else
    cJSON_AddNullToObject(o, "exit_code");
  add_cut(o, "reason", t ? t->reason : NULL);
  int rc = put_event(s, "end", resume_point(s), o);
  cJSON_Delete(o);
  return rc;
}

static const char *
stream_name(int kind)
{
  return kind == BERTH_LOG_STDOUT ? "stdout" : kind == BERTH_LOG_STDERR ? "stderr" : "note";
}

/* One log event: the held-back bytes, then p[0..n); its id is the file offset after p[n-1]. */
static int
put_log(sse_stream *s, const unsigned char *p, size_t n, int64_t id)
{
  char head[160];
  unsigned char joined[2 * sizeof s->carry]; /* the held-back bytes and the start of p: one character at most */
  size_t lead = 0;
  if (s->carry_len > 0) {
    /* the held bytes start a character: complete it with the bytes it still needs, then p goes straight from the
     * buffer (no copy of the piece) */
    unsigned char c = s->carry[0];
    size_t need = (c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2) - s->carry_len;
    lead = n < need ? n : need;
    memcpy(joined, s->carry, s->carry_len);
    memcpy(joined + s->carry_len, p, lead);
  }
  snprintf(head, sizeof head, "id: %lld\nevent: log\ndata: {\"stream\":\"%s\",\"phase\":\"%s\",\"text\":\"",
           (long long) id, stream_name(s->kind), berth_phase_name(s->phase));
  if (put_str(s, head) < 0 || put_json_text(s, joined, s->carry_len + lead) < 0)
    return -1;
  if (put_json_text(s, p + lead, n - lead) < 0 || put_str(s, "\"}\n\n") < 0)
    return -1;
  s->carry_len = 0;
  return 0;
}

/* The held-back bytes as an event of their own, in their own stream (as U+FFFD: they never became a character). */
static int
flush_carry(sse_stream *s)
{
  int kind = s->kind, phase = s->phase;
  s->kind = s->carry_kind;
  s->phase = s->carry_phase;
  int rc = put_log(s, (const unsigned char *) s->in, 0, s->carry_end);
  s->kind = kind;
  s->phase = phase;
  return rc;
}

/* Formats the next log event from what is written now. 1: one event is in out; 0: nothing new; -2: error. */
static int
next_log_event(sse_stream *s)
{
  for (;;) {
    while (s->payload_left == 0 && s->in_off < s->in_len) {
      s->hdr[s->hdr_len++] = (unsigned char) s->in[s->in_off++];
      s->pos++;
      if (s->hdr_len < 6)
        continue;
      size_t len = ((size_t) s->hdr[2] << 24) | ((size_t) s->hdr[3] << 16) | ((size_t) s->hdr[4] << 8) | s->hdr[5];
      if (s->hdr[0] < 1 || s->hdr[0] > 3 || len > BERTH_LOG_RECORD_MAX)
        return -2;
      s->kind = s->hdr[0];
      s->phase = s->hdr[1];
      s->payload_left = len;
      s->hdr_len = 0;
    }
    if (s->payload_left > 0 && s->in_off < s->in_len) {
      size_t take = s->in_len - s->in_off;
      if (take > s->payload_left)
        take = s->payload_left;
      if (take > PIECE_MAX)
        take = PIECE_MAX;
      const unsigned char *p = (const unsigned char *) s->in + s->in_off;
      size_t send = srv_utf8_cut(p, take);
      if (take < s->payload_left)
        take = send;
      else if (s->carry_len + take - send >= sizeof s->carry)
        send = take; /* not one character: send it as it is */
      if (take > 0 && s->carry_len > 0 && (s->carry_kind != s->kind || s->carry_phase != s->phase)) {
        /* the next bytes are another stream's: the cut character goes alone */
        return flush_carry(s) < 0 ? -2 : 1;
      }
      if (take > 0) {
        bool emit = send > 0 || s->carry_len > 0;
        if (emit && put_log(s, p, send, s->pos + (int64_t) send) < 0)
          return -2;
        memcpy(s->carry + s->carry_len, p + send, take - send); /* the end of the record: a cut character */
        s->carry_len += take - send;
        s->carry_kind = s->kind;
        s->carry_phase = s->phase;
        s->carry_end = s->pos + (int64_t) take;
        s->in_off += take;
        s->pos += (int64_t) take;
        s->payload_left -= take;
        if (!emit)
          continue;
        return 1;
      }
    }
    if (s->in_off > 0) {
      memmove(s->in, s->in + s->in_off, s->in_len - s->in_off);
      s->in_len -= s->in_off;
      s->in_off = 0;
    }
    ssize_t n = srv_follow_read(&s->f, s->in + s->in_len, IN_MAX - s->in_len);
    if (n <= 0)
      return n < 0 ? -2 : 0;
    s->in_len += (size_t) n;
  }
}

static ssize_t
sse_read(void *p, char *buf, size_t max)
{
  sse_stream *s = p;
  for (;;) {
    if (s->out_off < s->out_len) {
      size_t n = s->out_len - s->out_off < max ? s->out_len - s->out_off : max;
      memcpy(buf, s->out + s->out_off, n);
      s->out_off += n;
      s->last_sent = berth_now_ms();
      return (ssize_t) n;
    }
    s->out_len = s->out_off = 0;
    if (s->done)
      return -1;
    if (!s->started) {
      s->started = true;
      char retry[32];
      snprintf(retry, sizeof retry, "retry: %d\n\n", RETRY_MS);
      if (put_str(s, retry) < 0 || put_states(s) < 0)
        return -2;
      continue;
    }
    int r = next_log_event(s);
    if (r < 0)
      return -2;
    if (r > 0)
      continue;
    int w = srv_follow_wait(&s->f);
    if (w < 0)
      return -2;
    if (put_states(s) < 0)
      return -2;
    if (w == 0) {
      s->done = true;
      if (!s->f.saw_end) /* the server is stopping: no `end`, the client comes back */
        continue;
      /* a character cut at the very end is sent as it is (U+FFFD) */
      if (s->carry_len > 0 && flush_carry(s) < 0)
        return -2;
      if (put_end(s) < 0)
        return -2;
    } else if (s->out_len == 0 && berth_now_ms() - s->last_sent >= KEEPALIVE_MS && put_str(s, ": keepalive\n\n") < 0)
      return -2;
  }
}

static const srv_stream_ops sse_ops = { sse_read, sse_free };

/* Positions s at offset, which must be a record boundary or inside a record's payload (an id this endpoint gave).
 * Walks the record headers from the start of the log with a reader of its own (a file or chunks in the store). */
static int
resume_at(sse_stream *s, int64_t offset, berth_error **err)
{
  s->pos = offset;
  s->f.offset = offset;
  if (offset == 0)
    return 0;
  berth_store *st = srv_store(s->f.srv, err);
  berth_log_reader *lr = NULL;
  if (st == NULL || berth_log_reader_open(st, s->f.task_id, &lr, err) < 0)
    return BERTH_EINTERNAL;
  int64_t at = 0; /* the stream position of the next byte */
  unsigned char hdr[6];
  size_t hl = 0;          /* header bytes collected */
  int64_t left = 0;       /* payload bytes of the current record not walked yet */
  size_t have = 0, i = 0; /* s->in[i, have): read, not walked */
  int rc = 0;
  while (rc == 0 && at < offset) {
    if (i == have) {
      ssize_t n = berth_log_reader_read_bytes(lr, s->in, IN_MAX, err);
      if (n <= 0) {
        rc = n < 0 ? BERTH_EINTERNAL
                   : berth_error_set(err, BERTH_EINVAL, "offset %lld is past the end of the log", (long long) offset);
        break;
      }
      have = (size_t) n;
      i = 0;
    }
    if (left > 0) { /* in a payload: skip it, or stop inside it */
      int64_t take = left < (int64_t) (have - i) ? left : (int64_t) (have - i);
      if (offset < at + take) {
        left -= offset - at;
        at = offset;
        break;
      }
      at += take;
      i += (size_t) take;
      left -= take;
      continue;
    }
    hdr[hl++] = (unsigned char) s->in[i++];
    at++;
    if (hl < 6) {
      if (at >= offset) /* the offset falls inside a header */
        rc = berth_error_set(err, BERTH_EINVAL, "offset %lld is not an event id of this log", (long long) offset);
      continue;
    }
    hl = 0;
    left = ((int64_t) hdr[2] << 24) | ((int64_t) hdr[3] << 16) | ((int64_t) hdr[4] << 8) | hdr[5];
    if (hdr[0] < 1 || hdr[0] > 3 || left > BERTH_LOG_RECORD_MAX)
      rc = berth_error_set(err, BERTH_EINVAL, "offset %lld is not an event id of this log", (long long) offset);
  }
  /* the offset fell inside a record's payload (anywhere in it, also at the end of one of our reads, or just after
   * its header): the rest of that record comes first */
  if (rc == 0 && left > 0) {
    s->kind = hdr[0];
    s->phase = hdr[1];
    s->payload_left = (size_t) left;
  }
  berth_log_reader_close(lr);
  return rc;
}

int
api_task_events(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  berth_task *t = NULL;
  if (srv_task_get_scoped(r, &t, &err) < 0)
    return srv_fail(out, err);
  int64_t offset = 0;
  const char *off = srv_header(r, "Last-Event-ID");
  if (off == NULL || *off == '\0')
    off = srv_query(r, "offset");
  sse_stream *s = NULL;
  int rc = off ? berth_parse_int64(off, 0, INT64_C(1) << 50, &offset, &err) : 0;
  if (rc == 0 && (s = calloc(1, sizeof *s)) != NULL)
    s->f = (srv_follow){ 0 };
  if (rc == 0 && (s == NULL || (s->in = malloc(IN_MAX)) == NULL || (s->out = malloc(OUT_MAX)) == NULL))
    rc = berth_error_set(&err, BERTH_EINTERNAL, "out of memory");
  if (rc == 0)
    rc = srv_follow_init(&s->f, r, t, offset, &err);
  if (rc == 0)
    rc = resume_at(s, offset, &err);
  if (rc < 0) {
    sse_free(s);
    berth_task_free(t);
    return srv_fail(out, err);
  }
  s->f.task = t; /* the history sent first */
  s->last_sent = berth_now_ms();
  static const char *const headers[] = { "X-Accel-Buffering", "no", NULL };
  out->status = 200;
  out->stream = s;
  out->stream_ops = &sse_ops;
  out->content_type = "text/event-stream";
  out->headers = headers;
  return 0;
}
