/* libFuzzer target for the redactor: the no-leak invariant.
 *
 * Input layout: byte 0 picks 1-4 values; each value is a length byte (value length 4..19) and its bytes (`*`, the
 * replacement's character, is mapped to `+` so a value cannot be spelled by replacements); 2 bytes seed the chunking;
 * the rest is the stream. The stream is redacted once in one write and once cut at pseudo-random points (with
 * 1-byte writes mixed in), each with its own secret set (`::add-mask::` lines in the stream change the set).
 * abort() if the outputs differ, if a value appears in the output, or if the chunked run ever released a byte the
 * one-shot output does not have at that place (a partial leak). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/buf.h"
#include "berth/redactor.h"

static int
sink(void *ud, const char *data, size_t len)
{
  return berth_buf_append(ud, data, len);
}

typedef struct {
  char val[4][20];
  size_t len[4];
  size_t n;
} values;

static berth_secrets *
make_set(const values *v)
{
  berth_error *err = NULL;
  berth_secrets *s = berth_secrets_new(0, &err);
  if (s == NULL)
    abort();
  for (size_t i = 0; i < v->n; i++)
    if (berth_secrets_add_value(s, "FUZZ", v->val[i], v->len[i], &err) < 0)
      berth_error_clear(&err); /* e.g. an all-NUL value is refused: not checked below either */
  return s;
}

/* With `final` (the one-shot output), every write's released bytes must be a prefix of it: a byte released early
 * that a later write turns into `***` would be a partial leak. */
static void
redact(const values *v, const uint8_t *text, size_t len, uint32_t seed, berth_buf *out, const berth_buf *final)
{
  berth_error *err = NULL;
  berth_secrets *s = make_set(v);
  berth_redactor *r = berth_redactor_new(s, sink, out, &err);
  if (r == NULL)
    abort();
  size_t pos = 0;
  while (pos < len) {
    size_t n = len - pos;
    if (seed != 0) {
      seed = seed * 1103515245u + 12345u;
      n = (seed >> 16) % 4 == 0 ? 1 : 1 + (seed >> 8) % 97;
      if (n > len - pos)
        n = len - pos;
    }
    if (berth_redactor_feed(r, (const char *) text + pos, n, &err) < 0)
      abort();
    pos += n;
    if (final != NULL && (out->len > final->len || (out->len > 0 && memcmp(out->data, final->data, out->len) != 0)))
      abort();
  }
  if (berth_redactor_flush(r, &err) < 0)
    abort();
  berth_redactor_free(r);
  berth_secrets_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 3)
    return 0;
  values v = { .n = (size_t) (data[0] % 4) + 1 };
  size_t p = 1;
  for (size_t i = 0; i < v.n; i++) {
    if (p >= size)
      return 0;
    size_t l = 4 + data[p++] % 16;
    if (p + l > size)
      return 0;
    for (size_t k = 0; k < l; k++)
      v.val[i][k] = data[p + k] == '*' ? '+' : (char) data[p + k];
    v.len[i] = l;
    p += l;
  }
  if (p + 2 > size)
    return 0;
  uint32_t seed = (uint32_t) data[p] << 8 | data[p + 1] | 1u;
  p += 2;
  berth_buf one, many;
  berth_buf_init(&one, 1 << 24);
  berth_buf_init(&many, 1 << 24);
  redact(&v, data + p, size - p, 0, &one, NULL);
  redact(&v, data + p, size - p, seed, &many, &one);
  if (one.len != many.len || (one.len > 0 && memcmp(one.data, many.data, one.len) != 0))
    abort();
  for (size_t i = 0; i < v.n; i++) {
    bool all_nul = true;
    for (size_t k = 0; k < v.len[i]; k++)
      all_nul = all_nul && v.val[i][k] == 0;
    if (!all_nul && one.len > 0 && memmem(one.data, one.len, v.val[i], v.len[i]) != NULL)
      abort();
  }
  berth_buf_free(&one);
  berth_buf_free(&many);
  return 0;
}
