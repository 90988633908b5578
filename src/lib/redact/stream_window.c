/* The reorder window in front of a task's redactors. Docker copies a container's stdout and stderr with two
 * independent readers, so `echo ::add-mask::V; echo V >&2` may reach berth stderr first. Each piece is held for
 * `delay_ms` before its redactor sees it, and `::add-mask::` lines are registered in the shared set the moment they
 * arrive: a value masked on one stream covers what the sibling printed at the same moment. */
#include <stdlib.h>
#include <string.h>

#include "berth/buf.h"
#include "redact/redact_int.h"

#define ADD_MASK "::add-mask::"
#define ADD_MASK_LEN (sizeof ADD_MASK - 1)
#define WINDOW_CAP (8u * 1024u * 1024u) /* past this many queued bytes, the oldest leave early */

typedef struct piece {
  struct piece *next;
  size_t stream;
  int64_t at;
  size_t len;
  char data[];
} piece;

typedef struct am_scan {
  size_t matched; /* bytes of ADD_MASK seen at the start of the current line */
  bool at_start, collecting, overlong;
  berth_buf line;
} am_scan;

struct berth_outwin {
  berth_secrets *s;
  berth_redactor **rs;
  am_scan *am;
  size_t n;
  int64_t delay_ms;
  piece *head, *tail;
  size_t queued;
};

berth_outwin *
berth_outwin_new(berth_secrets *s, berth_redactor *const *rs, size_t n, int64_t delay_ms, berth_error **err)
{
  berth_outwin *w = calloc(1, sizeof *w);
  if (w != NULL) {
    w->rs = calloc(n, sizeof *w->rs);
    w->am = calloc(n, sizeof *w->am);
  }
  if (w == NULL || w->rs == NULL || w->am == NULL) {
    berth_outwin_free(w);
    berth_error_set(err, BERTH_EINTERNAL, "create the output window: out of memory");
    return NULL;
  }
  w->s = s;
  w->n = n;
  w->delay_ms = delay_ms;
  for (size_t i = 0; i < n; i++) {
    w->rs[i] = rs[i];
    w->am[i].at_start = true;
    berth_buf_init(&w->am[i].line, BERTH_REDACT_LINE_MAX);
  }
  return w;
}

static bool
blank(char c)
{
  return c == ' ' || c == '\t' || c == '\r';
}

/* The value as the redactor takes it from the line: without the line end and surrounding blanks. */
static void
am_register(berth_outwin *w, am_scan *a)
{
  const char *v = a->line.data;
  size_t len = a->line.len;
  while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == ' ' || v[len - 1] == '\t'))
    len--;
  while (len > 0 && blank(*v)) {
    v++;
    len--;
  }
  if (len > 0 && !a->overlong) {
    berth_error *e = NULL;
    (void) berth_secrets_add_value(w->s, ADD_MASK, v, len, &e); /* too short or too long: the redactor says so */
    berth_error_free(e);
  }
  a->line.len = 0;
  a->collecting = a->overlong = false;
  a->at_start = true;
  a->matched = 0;
}

static void
am_scan_bytes(berth_outwin *w, am_scan *a, const char *p, size_t len)
{
  while (len > 0) {
    if (a->collecting) {
      const char *nl = memchr(p, '\n', len);
      size_t take = nl ? (size_t) (nl - p) : len;
      if (!a->overlong && berth_buf_append(&a->line, p, take) < 0)
        a->overlong = true;
      p += take;
      len -= take;
      if (nl != NULL) {
        am_register(w, a);
        p++;
        len--;
      }
    } else if (a->at_start) {
      char c = *p++;
      len--;
      if (c == ADD_MASK[a->matched]) {
        if (++a->matched == ADD_MASK_LEN)
          a->collecting = true;
      } else {
        a->matched = 0;
        a->at_start = c == '\n';
      }
    } else {
      const char *nl = memchr(p, '\n', len);
      if (nl == NULL)
        return;
      len -= (size_t) (nl - p) + 1;
      p = nl + 1;
      a->at_start = true;
      a->matched = 0;
    }
  }
}

static int
release_one(berth_outwin *w, berth_error **err)
{
  piece *pc = w->head;
  w->head = pc->next;
  if (w->head == NULL)
    w->tail = NULL;
  w->queued -= pc->len;
  int rc = berth_redactor_feed(w->rs[pc->stream], pc->data, pc->len, err);
  free(pc);
  return rc;
}

int
berth_outwin_push(berth_outwin *w, size_t stream, const char *data, size_t len, int64_t now_ms, berth_error **err)
{
  if (stream >= w->n)
    return berth_error_set(err, BERTH_EINVAL, "output window: no stream %zu", stream);
  if (len == 0)
    return 0;
  am_scan_bytes(w, &w->am[stream], data, len);
  if (w->delay_ms <= 0)
    return berth_redactor_feed(w->rs[stream], data, len, err);
  piece *pc = malloc(sizeof *pc + len);
  if (pc == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "output window: out of memory");
  *pc = (piece){ .stream = stream, .at = now_ms, .len = len };
  memcpy(pc->data, data, len);
  if (w->tail != NULL)
    w->tail->next = pc;
  else
    w->head = pc;
  w->tail = pc;
  w->queued += len;
  while (w->queued > WINDOW_CAP && w->head != w->tail)
    if (release_one(w, err) < 0)
      return -1;
  return 0;
}

int
berth_outwin_release(berth_outwin *w, int64_t now_ms, bool all, berth_error **err)
{
  int n = 0;
  while (w->head != NULL && (all || now_ms - w->head->at >= w->delay_ms)) {
    if (release_one(w, err) < 0)
      return -1;
    n++;
  }
  return n;
}

void
berth_outwin_free(berth_outwin *w)
{
  if (w == NULL)
    return;
  while (w->head != NULL) {
    piece *pc = w->head;
    w->head = pc->next;
    free(pc);
  }
  for (size_t i = 0; w->am != NULL && i < w->n; i++)
    berth_buf_free(&w->am[i].line);
  free(w->am);
  free(w->rs);
  free(w);
}
