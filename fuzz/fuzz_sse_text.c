/* libFuzzer target for task output turned into event text (src/server/sse_text.c) and the UI's header parsing
 * (src/server/ui_static.c): arbitrary bytes in, invariants checked (abort on violation):
 * - srv_json_text: at most 6 bytes out per byte in; no CR or LF; the output is valid UTF-8 and, in quotes, one JSON
 *   string (cJSON parses it); a buffer one byte too small is refused, never overrun;
 * - srv_utf8_cut keeps all but at most 3 bytes, and what it holds back is the start of one character;
 * - If-None-Match and Accept-Encoding parsing read only the string given. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/server/sse_text.c"
#include "../src/server/ui_static.c"

const srv_asset srv_ui_assets[] = {
  { "/", "text/html", (const unsigned char *) "x", 1, NULL, 0, "\"e\"", "\"e-gz\"", false },
};
const size_t srv_ui_n_assets = 1;

static bool
valid_utf8(const unsigned char *p, size_t n)
{
  for (size_t i = 0; i < n;) {
    int len = utf8_seq(p + i, n - i);
    if (len <= 0)
      return false;
    i += (size_t) len;
  }
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size > 4096)
    return 0;
  char *out = malloc(6 * size + 3);
  if (out == NULL)
    return 0;
  ssize_t n = srv_json_text(out + 1, 6 * size, data, size);
  if (n < 0 || (size_t) n > 6 * size || memchr(out + 1, '\n', (size_t) n) || memchr(out + 1, '\r', (size_t) n)
      || !valid_utf8((const unsigned char *) out + 1, (size_t) n))
    abort();
  out[0] = '"';
  out[n + 1] = '"';
  out[n + 2] = '\0';
  cJSON *j = cJSON_ParseWithLength(out, (size_t) n + 2);
  if (j == NULL || !cJSON_IsString(j))
    abort();
  cJSON_Delete(j);
  if (n > 0 && srv_json_text(out, (size_t) n - 1, data, size) != -1)
    abort();
  free(out);

  size_t cut = srv_utf8_cut(data, size);
  if (cut > size || size - cut > 3 || (cut < size && utf8_seq(data + cut, size - cut) != -1))
    abort();

  char *s = malloc(size + 1);
  if (s == NULL)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  (void) srv_etag_match(s, "\"e\"");
  (void) srv_accepts_gzip(s);
  (void) srv_ui_find(s, s);
  free(s);
  return 0;
}
