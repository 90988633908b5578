/* The web UI's pure server pieces: which asset a URL names (ui_static.c), If-None-Match and Accept-Encoding, and
 * task output as event text (sse_text.c): UTF-8 cuts and JSON escaping, checked byte by byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "server.h"

static const unsigned char page[] = "<!doctype html>";
const srv_asset srv_ui_assets[] = {
  { "/", "text/html; charset=utf-8", page, sizeof page - 1, NULL, 0, "\"aa\"", "\"aa-gz\"", false },
  { "/app.0123456789ab.js", "text/javascript", page, 1, NULL, 0, "\"bb\"", "\"bb-gz\"", true },
};
const size_t srv_ui_n_assets = 2;

static void
test_find(void **state)
{
  (void) state;
  assert_ptr_equal(srv_ui_find("/", "text/html,application/xhtml+xml;q=0.9"), &srv_ui_assets[0]);
  assert_ptr_equal(srv_ui_find("/", "*/*"), &srv_ui_assets[0]); /* curl, a browser without preferences: the UI */
  assert_ptr_equal(srv_ui_find("/", NULL), &srv_ui_assets[0]);
  assert_null(srv_ui_find("/", "application/json")); /* an API client asking for JSON: the identity document */
  assert_ptr_equal(srv_ui_find("/app.0123456789ab.js", NULL), &srv_ui_assets[1]);
  assert_null(srv_ui_find("/app.js", NULL)); /* only hashed names */
  assert_null(srv_ui_find("/v1", "text/html"));
  assert_null(srv_ui_find("/v1/stacks", "text/html"));
  assert_null(srv_ui_find("/app.0123456789ab.js/", NULL));
  assert_null(srv_ui_find(NULL, NULL));
}

static void
test_etag(void **state)
{
  (void) state;
  assert_true(srv_etag_match("\"aa\"", "\"aa\""));
  assert_true(srv_etag_match("W/\"aa\"", "\"aa\"")); /* If-None-Match compares weakly */
  assert_true(srv_etag_match("\"x\", \"aa\"", "\"aa\""));
  assert_true(srv_etag_match("  \"x\" ,\t\"aa\"  ", "\"aa\""));
  assert_true(srv_etag_match("*", "\"aa\""));
  assert_false(srv_etag_match("\"aa-gz\"", "\"aa\""));
  assert_false(srv_etag_match("\"a\"", "\"aa\""));
  assert_false(srv_etag_match("aa", "\"aa\""));
  assert_false(srv_etag_match("", "\"aa\""));
  assert_false(srv_etag_match(",,,", "\"aa\""));
  assert_false(srv_etag_match(NULL, "\"aa\""));
}

static void
test_gzip(void **state)
{
  (void) state;
  assert_true(srv_accepts_gzip("gzip"));
  assert_true(srv_accepts_gzip("gzip, deflate, br"));
  assert_true(srv_accepts_gzip("br;q=1.0, GZIP;q=0.5"));
  assert_true(srv_accepts_gzip("x-gzip"));
  assert_true(srv_accepts_gzip("gzip;q=0.001"));
  assert_false(srv_accepts_gzip("gzip;q=0"));
  assert_false(srv_accepts_gzip("gzip; q=0.000"));
  assert_false(srv_accepts_gzip("deflate, br"));
  assert_false(srv_accepts_gzip("gzipx"));
  assert_false(srv_accepts_gzip("identity"));
  assert_false(srv_accepts_gzip(""));
  assert_false(srv_accepts_gzip(NULL));
}

static void
test_utf8_cut(void **state)
{
  (void) state;
  const unsigned char euro[] = { 0xe2, 0x82, 0xac }; /* € */
  const unsigned char emoji[] = { 0xf0, 0x9f, 0x98, 0x80 };
  unsigned char buf[8] = "ab";
  for (size_t k = 0; k <= sizeof euro; k++) { /* "ab" + the first k bytes of € */
    memcpy(buf + 2, euro, k);
    assert_int_equal(srv_utf8_cut(buf, 2 + k), k == sizeof euro ? 5 : 2);
  }
  for (size_t k = 0; k <= sizeof emoji; k++) {
    memcpy(buf + 2, emoji, k);
    assert_int_equal(srv_utf8_cut(buf, 2 + k), k == sizeof emoji ? 6 : 2);
  }
  /* invalid bytes are not held back (they will be U+FFFD anyway) */
  const unsigned char bad[] = { 'a', 0xff };
  assert_int_equal(srv_utf8_cut(bad, 2), 2);
  const unsigned char lone[] = { 'a', 0x80, 0x80, 0x80 };
  assert_int_equal(srv_utf8_cut(lone, 4), 4);
  const unsigned char bad_second[] = { 'a', 0xe2, 0x41 };
  assert_int_equal(srv_utf8_cut(bad_second, 3), 3);
  assert_int_equal(srv_utf8_cut(euro, 0), 0);
}

/* Escapes p, checks the result parses as a JSON string, and returns it decoded (static buffer). */
static const char *
roundtrip(const unsigned char *p, size_t n)
{
  static char out[256], doc[300], decoded[256];
  ssize_t w = srv_json_text(out, sizeof out - 1, p, n);
  assert_true(w >= 0);
  out[w] = '\0';
  assert_null(strchr(out, '\n'));
  assert_null(strchr(out, '\r'));
  snprintf(doc, sizeof doc, "\"%s\"", out);
  cJSON *j = cJSON_Parse(doc);
  assert_non_null(j);
  assert_true(cJSON_IsString(j));
  snprintf(decoded, sizeof decoded, "%s", j->valuestring);
  cJSON_Delete(j);
  return decoded;
}

static void
test_json_text(void **state)
{
  (void) state;
  assert_string_equal(roundtrip((const unsigned char *) "plain text", 10), "plain text");
  assert_string_equal(roundtrip((const unsigned char *) "a\"b\\c", 5), "a\"b\\c");
  assert_string_equal(roundtrip((const unsigned char *) "l1\r\nl2\t", 7), "l1\r\nl2\t");
  assert_string_equal(roundtrip((const unsigned char *) "\x1b[31mred\x1b[0m", 12), "\x1b[31mred\x1b[0m");
  assert_string_equal(roundtrip((const unsigned char *) "<script>", 8), "<script>");
  assert_string_equal(roundtrip((const unsigned char *) "caf\xc3\xa9 \xe2\x82\xac", 9), "caf\xc3\xa9 \xe2\x82\xac");
  /* not UTF-8: each bad byte is U+FFFD; overlongs and surrogates are not UTF-8 */
  assert_string_equal(roundtrip((const unsigned char *) "a\xff"
                                                        "b",
                                3),
                      "a\xef\xbf\xbd"
                      "b");
  assert_string_equal(roundtrip((const unsigned char *) "\xc0\xaf", 2), "\xef\xbf\xbd\xef\xbf\xbd");
  assert_string_equal(roundtrip((const unsigned char *) "\xed\xa0\x80", 3), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  assert_string_equal(roundtrip((const unsigned char *) "\xe2\x82", 2), "\xef\xbf\xbd\xef\xbf\xbd");
  const unsigned char nul[] = { 'a', 0, 'b' };
  assert_string_equal(roundtrip(nul, 3), "a"); /* \u0000 decodes to a NUL: the C string ends there */
  /* every single byte value, alone: always valid JSON */
  for (int c = 0; c < 256; c++) {
    unsigned char b = (unsigned char) c;
    roundtrip(&b, 1);
  }
  /* the cap: 6 bytes per control byte, and -1 when it does not fit */
  char small[12];
  const unsigned char esc2[] = { 0x1b, 0x1b };
  assert_int_equal(srv_json_text(small, 12, esc2, 2), 12);
  assert_int_equal(srv_json_text(small, 11, esc2, 2), -1);
  assert_int_equal(srv_json_text(small, 0, esc2, 0), 0);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_find),     cmocka_unit_test(test_etag),      cmocka_unit_test(test_gzip),
    cmocka_unit_test(test_utf8_cut), cmocka_unit_test(test_json_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
