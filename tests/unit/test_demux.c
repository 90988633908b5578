/* The exec-stream demultiplexer: any chunking gives the same per-stream bytes; bad headers are rejected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "berth/buf.h"
#include "berth/demux.h"

typedef struct collected {
  berth_buf out, err;
  size_t calls;
} collected;

static int
collect(void *ud, int stream, const char *data, size_t len)
{
  collected *c = ud;
  c->calls++;
  return berth_buf_append(stream == BERTH_STREAM_STDOUT ? &c->out : &c->err, data, len);
}

static void
frame(berth_buf *b, uint8_t type, const char *payload, uint32_t len)
{
  uint8_t h[8] = { type, 0, 0, 0, (uint8_t) (len >> 24), (uint8_t) (len >> 16), (uint8_t) (len >> 8), (uint8_t) len };
  berth_buf_append(b, h, 8);
  berth_buf_append(b, payload, len);
}

/* A stream with zero-length frames, a large frame and interleaved stdout/stderr. */
static void
build_stream(berth_buf *in, berth_buf *want_out, berth_buf *want_err)
{
  berth_buf_init(in, 1u << 26);
  berth_buf_init(want_out, 1u << 26);
  berth_buf_init(want_err, 1u << 26);
  frame(in, 1, "out\n", 4);
  berth_buf_append(want_out, "out\n", 4);
  frame(in, 2, "", 0);
  frame(in, 1, "abc", 3);
  berth_buf_append(want_out, "abc", 3);
  frame(in, 2, "err\n", 4);
  berth_buf_append(want_err, "err\n", 4);
  size_t big = 300000;
  char *p = malloc(big);
  for (size_t i = 0; i < big; i++)
    p[i] = (char) (i * 7 + 3);
  frame(in, 2, p, (uint32_t) big);
  berth_buf_append(want_err, p, big);
  frame(in, 0, "stdin-as-stdout", 15);
  berth_buf_append(want_out, "stdin-as-stdout", 15);
  frame(in, 1, "", 0);
  free(p);
}

static void
check_chunking(size_t (*next)(size_t pos, void *st), void *st)
{
  berth_buf in, wo, we;
  build_stream(&in, &wo, &we);
  collected c = { 0 };
  berth_buf_init(&c.out, 1u << 26);
  berth_buf_init(&c.err, 1u << 26);
  berth_demux d;
  berth_demux_init(&d, 0);
  berth_error *err = NULL;
  for (size_t pos = 0; pos < in.len;) {
    size_t n = next(pos, st);
    if (n > in.len - pos)
      n = in.len - pos;
    assert_int_equal(berth_demux_feed(&d, in.data + pos, n, collect, &c, &err), 0);
    pos += n;
  }
  assert_int_equal(berth_demux_finish(&d, &err), 0);
  assert_int_equal(c.out.len, wo.len);
  assert_int_equal(c.err.len, we.len);
  assert_memory_equal(c.out.data, wo.data, wo.len);
  assert_memory_equal(c.err.data, we.data, we.len);
  berth_buf_free(&in), berth_buf_free(&wo), berth_buf_free(&we);
  berth_buf_free(&c.out), berth_buf_free(&c.err);
}

static size_t
one_byte(size_t pos, void *st)
{
  (void) pos, (void) st;
  return 1;
}

static size_t
random_size(size_t pos, void *st)
{
  (void) pos;
  unsigned *seed = st;
  int r = rand_r(seed);
  return (r % 3 == 0) ? (size_t) (r % 9 + 1) : (size_t) (r % 70000 + 1);
}

static size_t
whole(size_t pos, void *st)
{
  (void) pos, (void) st;
  return SIZE_MAX;
}

static void
test_one_shot(void **state)
{
  (void) state;
  check_chunking(whole, NULL);
}

static void
test_byte_by_byte(void **state)
{
  (void) state;
  check_chunking(one_byte, NULL);
}

static void
test_random_chunkings(void **state)
{
  (void) state;
  for (unsigned seed = 1; seed <= 200; seed++) {
    unsigned s = seed;
    check_chunking(random_size, &s);
  }
}

static void
expect_error(const char *bytes, size_t len, const char *needle)
{
  collected c = { 0 };
  berth_buf_init(&c.out, 1024);
  berth_buf_init(&c.err, 1024);
  berth_demux d;
  berth_demux_init(&d, 1024);
  berth_error *err = NULL;
  int rc = berth_demux_feed(&d, bytes, len, collect, &c, &err);
  if (rc == 0)
    rc = berth_demux_finish(&d, &err);
  assert_true(rc < 0);
  assert_non_null(err);
  assert_non_null(strstr(err->msg, needle));
  berth_error_free(err);
  berth_buf_free(&c.out), berth_buf_free(&c.err);
}

static void
test_bad_streams(void **state)
{
  (void) state;
  expect_error("\x07\0\0\0\0\0\0\x01x", 9, "unknown stream type 7");
  expect_error("\x01\0\x01\0\0\0\0\x01x", 9, "malformed header");
  expect_error("\x01\0\0\0\0\x10\0\0", 8, "exceeds the cap");
  expect_error("\x01\0\0\0\0\0\0\x05"
               "ab",
               10, "ended inside a frame");
  expect_error("\x01\0\0", 3, "ended inside a frame");
  expect_error("\x03\0\0\0\0\0\0\x02hi", 10, "daemon error");
}

static int
refuse(void *ud, int stream, const char *data, size_t len)
{
  (void) ud, (void) stream, (void) data, (void) len;
  return -1;
}

static void
test_sink_abort(void **state)
{
  (void) state;
  berth_demux d;
  berth_demux_init(&d, 0);
  berth_error *err = NULL;
  assert_true(berth_demux_feed(&d, "\x01\0\0\0\0\0\0\x01x", 9, refuse, NULL, &err) < 0);
  assert_non_null(err);
  berth_error_free(err);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_one_shot),    cmocka_unit_test(test_byte_by_byte), cmocka_unit_test(test_random_chunkings),
    cmocka_unit_test(test_bad_streams), cmocka_unit_test(test_sink_abort),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
