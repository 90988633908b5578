/* Task output as the text of a Server-Sent Event: UTF-8 boundaries and JSON string escaping (pure functions over
 * untrusted bytes; no libmicrohttpd; unit-tested byte by byte in tests/unit/test_server_ui.c). */
#include <stdio.h>
#include <string.h>

#include "server.h"

/* Length of the valid UTF-8 sequence at p[0..n): >0; 0 when invalid; -1 when p ends before it could complete. */
static int
utf8_seq(const unsigned char *p, size_t n)
{
  unsigned char c = p[0];
  int len;
  unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte (no overlongs, no surrogates, <= U+10FFFF) */
  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf)
    len = 2;
  else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0)
      lo = 0xa0;
    if (c == 0xed)
      hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0)
      lo = 0x90;
    if (c == 0xf4)
      hi = 0x8f;
  } else
    return 0;
  for (int i = 1; i < len; i++) {
    if ((size_t) i >= n)
      return -1;
    if (p[i] < (i == 1 ? lo : 0x80) || p[i] > (i == 1 ? hi : 0xbf))
      return 0;
  }
  return len;
}

size_t
srv_utf8_cut(const unsigned char *p, size_t n)
{
  for (size_t k = 1; k <= 3 && k <= n; k++) {
    if ((p[n - k] & 0xc0) == 0x80)
      continue; /* a continuation byte: look further back */
    return utf8_seq(p + n - k, k) < 0 ? n - k : n;
  }
  return n;
}

ssize_t
srv_json_text(char *out, size_t cap, const unsigned char *p, size_t n)
{
  size_t o = 0, i = 0;
  while (i < n) {
    unsigned char c = p[i];
    char esc[8];
    const char *add = esc;
    size_t len;
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      /* a run of plain ASCII, copied at once (most output is) */
      size_t run = i + 1;
      while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
        run++;
      add = (const char *) p + i;
      len = run - i;
      i = run;
    } else if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char) c;
      len = 2;
      i++;
    } else if (c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      len = 6;
      i++;
    } else {
      int seq = utf8_seq(p + i, n - i);
      if (seq > 0) {
        add = (const char *) p + i;
        len = (size_t) seq;
        i += (size_t) seq;
      } else {
        add = "\xef\xbf\xbd";
        len = 3;
        i++;
      }
    }
    if (cap - o < len)
      return -1;
    memcpy(out + o, add, len);
    o += len;
  }
  return (ssize_t) o;
}
