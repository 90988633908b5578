/* libFuzzer target: the exec-stream demultiplexer. Invariant: feeding the input in any chunking gives the same
 * per-stream bytes and the same verdict as feeding it whole; payload bytes never exceed the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/buf.h"
#include "berth/demux.h"

typedef struct out2 {
  berth_buf s[3];
} out2;

static int
sink(void *ud, int stream, const char *data, size_t len)
{
  out2 *o = ud;
  return berth_buf_append(&o->s[stream], data, len);
}

static int
run(const uint8_t *data, size_t size, size_t chunk, out2 *o)
{
  berth_demux d;
  berth_demux_init(&d, 1u << 20);
  berth_error *err = NULL;
  int rc = 0;
  for (size_t pos = 0; pos < size && rc == 0;) {
    size_t n = size - pos < chunk ? size - pos : chunk;
    rc = berth_demux_feed(&d, (const char *) data + pos, n, sink, o, &err);
    pos += n;
  }
  if (rc == 0)
    rc = berth_demux_finish(&d, &err);
  berth_error_free(err);
  return rc < 0 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  size_t chunk = (size_t) data[0] % 17 + 1;
  data++, size--;
  out2 whole, pieces;
  for (int i = 0; i < 3; i++) {
    berth_buf_init(&whole.s[i], 1u << 24);
    berth_buf_init(&pieces.s[i], 1u << 24);
  }
  int a = run(data, size, size ? size : 1, &whole);
  int b = run(data, size, chunk, &pieces);
  if (a != b)
    abort();
  for (int i = 1; i < 3; i++) {
    if (a == 0
        && (whole.s[i].len != pieces.s[i].len
            || (whole.s[i].len && memcmp(whole.s[i].data, pieces.s[i].data, whole.s[i].len) != 0)))
      abort();
    if (whole.s[i].len > size)
      abort();
  }
  for (int i = 0; i < 3; i++) {
    berth_buf_free(&whole.s[i]);
    berth_buf_free(&pieces.s[i]);
  }
  return 0;
}
