/* Capped growable buffer. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/buf.h"

void
berth_buf_init(berth_buf *b, size_t max)
{
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
}

static int
buf_reserve(berth_buf *b, size_t extra)
{
  if (extra > b->max || b->len > b->max - extra)
    return BERTH_BUF_TOO_BIG;
  size_t need = b->len + extra + 1;
  if (need <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need)
    cap *= 2;
  char *p = realloc(b->data, cap);
  if (p == NULL)
    return BERTH_BUF_NOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int
berth_buf_append(berth_buf *b, const void *data, size_t len)
{
  int rc = buf_reserve(b, len);
  if (rc < 0)
    return rc;
  if (len)
    memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
  return 0;
}

int
berth_buf_printf(berth_buf *b, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  int n = vasprintf(&s, fmt, ap);
  va_end(ap);
  if (n < 0)
    return BERTH_BUF_NOMEM;
  int rc = berth_buf_append(b, s, (size_t) n);
  free(s);
  return rc;
}

void
berth_buf_reset(berth_buf *b)
{
  b->len = 0;
  if (b->data)
    b->data[0] = '\0';
}

char *
berth_buf_steal(berth_buf *b)
{
  char *p = b->data;
  if (p == NULL)
    p = calloc(1, 1);
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}

void
berth_buf_free(berth_buf *b)
{
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
