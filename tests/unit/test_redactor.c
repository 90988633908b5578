/* Redactor tests: data-driven cases (tests/data/redact/ JSON files), the peer runners' vectors, a chunking property
 * test, and API behaviour (short values, bad patterns, `::add-mask::` across streams, caps). */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "berth/buf.h"
#include "berth/redactor.h"
#include "peer_vectors.h"

/* ---- helpers ---- */

static int
sink_buf(void *ud, const char *data, size_t len)
{
  return berth_buf_append(ud, data, len);
}

typedef struct {
  const char **vals;
  size_t *lens;
  size_t n;
  size_t min_len;
  bool builtin;
  const char **pat_names, **pats;
  size_t npats;
} setup;

static berth_secrets *
make_set(const setup *su)
{
  berth_error *err = NULL;
  berth_secrets *s = berth_secrets_new(su->min_len, &err);
  assert_non_null(s);
  assert_int_equal(berth_secrets_use_builtin(s, su->builtin, &err), 0);
  for (size_t i = 0; i < su->n; i++)
    assert_true(berth_secrets_add_value(s, "V", su->vals[i], su->lens[i], &err) >= 0);
  for (size_t i = 0; i < su->npats; i++) {
    int rc = berth_secrets_add_pattern(s, su->pat_names[i], su->pats[i], &err);
    if (rc < 0)
      fail_msg("pattern %s: %s", su->pat_names[i], err->msg);
  }
  return s;
}

/* Redacts `in` fed in chunks cut at `cuts` (sorted offsets, ncuts of them) with a fresh set. */
static char *
run_chunks(const setup *su, const char *in, size_t len, const size_t *cuts, size_t ncuts, size_t *out_len)
{
  berth_secrets *s = make_set(su);
  berth_buf out;
  berth_buf_init(&out, 1 << 28);
  berth_error *err = NULL;
  berth_redactor *r = berth_redactor_new(s, sink_buf, &out, &err);
  assert_non_null(r);
  size_t prev = 0;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t c = i < ncuts ? cuts[i] : len;
    if (berth_redactor_feed(r, in + prev, c - prev, &err) < 0)
      fail_msg("feed: %s", err->msg);
    prev = c;
  }
  if (berth_redactor_flush(r, &err) < 0)
    fail_msg("flush: %s", err->msg);
  berth_redactor_free(r);
  berth_secrets_free(s);
  berth_buf_append(&out, "", 0);
  *out_len = out.len;
  return berth_buf_steal(&out);
}

static char *
run_bytewise(const setup *su, const char *in, size_t len, size_t *out_len)
{
  size_t *cuts = malloc((len + 1) * sizeof *cuts);
  for (size_t i = 0; i + 1 < len; i++)
    cuts[i] = i + 1;
  char *o = run_chunks(su, in, len, cuts, len > 1 ? len - 1 : 0, out_len);
  free(cuts);
  return o;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t
rnd(void)
{
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static char *
run_random_chunks(const setup *su, const char *in, size_t len, size_t *out_len)
{
  size_t *cuts = malloc((len + 1) * sizeof *cuts), n = 0;
  for (size_t i = 1; i < len; i++)
    if (rnd() % 5 == 0)
      cuts[n++] = i;
  char *o = run_chunks(su, in, len, cuts, n, out_len);
  free(cuts);
  return o;
}

static void
assert_bytes_equal(const char *what, const char *exp, size_t elen, const char *got, size_t glen)
{
  if (elen != glen || memcmp(exp, got, elen) != 0)
    fail_msg("%s:\n expected [%.*s] (%zu bytes)\n got      [%.*s] (%zu bytes)", what, (int) elen, exp, elen, (int) glen,
             got, glen);
}

/* Checks one-shot, byte-by-byte and random chunkings against `exp`. */
static void
check_all_chunkings(const char *name, const setup *su, const char *in, size_t len, const char *exp, size_t elen)
{
  char what[512];
  size_t ol;
  char *o = run_chunks(su, in, len, NULL, 0, &ol);
  snprintf(what, sizeof what, "%s (one write)", name);
  assert_bytes_equal(what, exp, elen, o, ol);
  free(o);
  o = run_bytewise(su, in, len, &ol);
  snprintf(what, sizeof what, "%s (1-byte writes)", name);
  assert_bytes_equal(what, exp, elen, o, ol);
  free(o);
  for (int k = 0; k < 5; k++) {
    o = run_random_chunks(su, in, len, &ol);
    snprintf(what, sizeof what, "%s (random writes #%d)", name, k);
    assert_bytes_equal(what, exp, elen, o, ol);
    free(o);
  }
}

static char *
read_file(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t) n + 1);
  size_t got = fread(b, 1, (size_t) n, f);
  fclose(f);
  b[got] = 0;
  if (len)
    *len = got;
  return b;
}

static char *
hex_decode(const char *h, size_t *len)
{
  size_t n = strlen(h) / 2;
  char *o = malloc(n + 1);
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    sscanf(h + 2 * i, "%2x", &v);
    o[i] = (char) v;
  }
  o[n] = 0;
  *len = n;
  return o;
}

/* A string field, or its `_hex` twin. Returns a malloc'd copy. */
static char *
get_bytes(const cJSON *c, const char *key, size_t *len)
{
  char hk[64];
  snprintf(hk, sizeof hk, "%s_hex", key);
  const cJSON *h = cJSON_GetObjectItemCaseSensitive(c, hk);
  if (cJSON_IsString(h))
    return hex_decode(h->valuestring, len);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
  if (!cJSON_IsString(v))
    return NULL;
  *len = strlen(v->valuestring);
  return strdup(v->valuestring);
}

/* The source tree, from this file's path (<src>/tests/unit/test_redactor.c), for runs outside ctest. */
static const char *
src_root(void)
{
  static char root[4096];
  snprintf(root, sizeof root, "%s", __FILE__);
  char *p = strstr(root, "/tests/unit/");
  if (p != NULL)
    *p = 0;
  else
    snprintf(root, sizeof root, ".");
  return root;
}

static const char *
src_dir_data(void)
{
  static char dir[4200];
  const char *d = getenv("BERTH_TEST_DATA");
  snprintf(dir, sizeof dir, "%s/tests/data", src_root());
  return d ? d : dir;
}

/* ---- data-driven cases ---- */

static int
run_case_file(const char *path)
{
  size_t flen;
  char *text = read_file(path, &flen);
  assert_non_null(text);
  cJSON *root = cJSON_Parse(text);
  if (root == NULL)
    fail_msg("parse %s", path);
  int count = 0;
  const cJSON *c;
  cJSON_ArrayForEach(c, root)
  {
    const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
    setup su = { 0 };
    const cJSON *secrets = cJSON_GetObjectItemCaseSensitive(c, "secrets");
    const cJSON *secrets_hex = cJSON_GetObjectItemCaseSensitive(c, "secrets_hex");
    size_t ns = (size_t) cJSON_GetArraySize(secrets) + (size_t) cJSON_GetArraySize(secrets_hex);
    su.vals = calloc(ns + 1, sizeof *su.vals);
    su.lens = calloc(ns + 1, sizeof *su.lens);
    const cJSON *v;
    cJSON_ArrayForEach(v, secrets)
    {
      su.lens[su.n] = strlen(v->valuestring);
      su.vals[su.n++] = strdup(v->valuestring);
    }
    cJSON_ArrayForEach(v, secrets_hex)
    {
      su.vals[su.n] = hex_decode(v->valuestring, &su.lens[su.n]);
      su.n++;
    }
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(c, "min_len");
    su.min_len = cJSON_IsNumber(ml) ? (size_t) ml->valueint : 0;
    su.builtin = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "builtin"));
    const cJSON *pats = cJSON_GetObjectItemCaseSensitive(c, "patterns");
    size_t np = (size_t) cJSON_GetArraySize(pats);
    su.pats = calloc(np + 1, sizeof *su.pats);
    su.pat_names = calloc(np + 1, sizeof *su.pat_names);
    cJSON_ArrayForEach(v, pats)
    {
      su.pat_names[su.npats] = cJSON_GetObjectItemCaseSensitive(v, "name")->valuestring;
      su.pats[su.npats++] = cJSON_GetObjectItemCaseSensitive(v, "regex")->valuestring;
    }
    size_t il, el;
    char *in = get_bytes(c, "input", &il), *exp = get_bytes(c, "expected", &el);
    if (in == NULL || exp == NULL)
      fail_msg("%s: case %s needs input and expected", path, name);
    check_all_chunkings(name, &su, in, il, exp, el);
    free(in);
    free(exp);
    for (size_t i = 0; i < su.n; i++)
      free((void *) su.vals[i]);
    free(su.vals);
    free(su.lens);
    free(su.pats);
    free(su.pat_names);
    count++;
  }
  cJSON_Delete(root);
  free(text);
  return count;
}

static void
test_data_cases(void **state)
{
  (void) state;
  char dir[4096];
  if (snprintf(dir, sizeof dir, "%s/redact", src_dir_data()) >= (int) sizeof dir)
    fail_msg("test data path too long");
  DIR *d = opendir(dir);
  if (d == NULL)
    fail_msg("no case directory %s", dir);
  struct dirent *de;
  int total = 0;
  while ((de = readdir(d)) != NULL) {
    size_t n = strlen(de->d_name);
    if (n < 5 || strcmp(de->d_name + n - 5, ".json") != 0)
      continue;
    char path[8192];
    if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int) sizeof path)
      continue;
    total += run_case_file(path);
  }
  closedir(d);
  print_message("ran %d data-driven cases\n", total);
  assert_true(total >= 20);
}

/* ---- property test: chunking never matters, and no value survives ---- */

static void
test_property_chunking(void **state)
{
  (void) state;
  static const char alphabet[] = "abc\n\r d=/";
  for (int round = 0; round < 300; round++) {
    setup su = { 0 };
    const char *vals[6];
    size_t lens[6];
    su.n = 1 + rnd() % 5;
    su.vals = vals;
    su.lens = lens;
    su.builtin = round % 2 == 0;
    for (size_t i = 0; i < su.n; i++) {
      size_t l = 4 + rnd() % 8;
      char *v = malloc(l);
      for (size_t k = 0; k < l; k++)
        v[k] = alphabet[rnd() % 4]; /* "abc\n": overlaps and prefixes are likely */
      vals[i] = v;
      lens[i] = l;
    }
    size_t len = rnd() % 400;
    char *in = malloc(len + 1);
    for (size_t k = 0; k < len;) {
      if (rnd() % 4 == 0) {
        size_t vi = rnd() % su.n;
        for (size_t j = 0; j < lens[vi] && k < len; j++)
          in[k++] = vals[vi][j];
      } else {
        in[k++] = alphabet[rnd() % (sizeof alphabet - 1)];
      }
    }
    size_t ol, ol2;
    char *one = run_chunks(&su, in, len, NULL, 0, &ol);
    char *many = run_random_chunks(&su, in, len, &ol2);
    assert_bytes_equal("random chunking", one, ol, many, ol2);
    free(many);
    many = run_bytewise(&su, in, len, &ol2);
    assert_bytes_equal("1-byte chunking", one, ol, many, ol2);
    free(many);
    for (size_t i = 0; i < su.n; i++)
      if (memmem(one, ol, vals[i], lens[i]) != NULL)
        fail_msg("value %zu (%.*s) leaked in [%.*s]", i, (int) lens[i], vals[i], (int) ol, one);
    free(one);
    free(in);
    for (size_t i = 0; i < su.n; i++)
      free((void *) vals[i]);
  }
}

/* ---- property test: live output without partial leaks ----
 * After every write, what left the redactor is a prefix of the final output (a byte released early would be one
 * that a later write turns into `***`: a partial leak), and when the write ended with a byte that no needle or
 * pattern can contain (space, newline, dot), everything fed so far has left. */

static void
test_property_live(void **state)
{
  (void) state;
  static const char alphabet[] = "abcqxy \n.";
  const char *pat_names[] = { "q-code" }, *pats[] = { "q[a-c]{3}" };
  for (int round = 0; round < 400; round++) {
    setup su = { 0 };
    const char *vals[6];
    size_t lens[6];
    su.n = 1 + rnd() % 5;
    su.vals = vals;
    su.lens = lens;
    su.builtin = round % 2 == 0;
    if (round % 3 == 0) {
      su.pat_names = pat_names;
      su.pats = pats;
      su.npats = 1;
    }
    for (size_t i = 0; i < su.n; i++) {
      size_t l = 4 + rnd() % 10;
      char *v = malloc(l);
      for (size_t k = 0; k < l; k++)
        v[k] = alphabet[rnd() % 3]; /* "abc": values overlap and prefix each other */
      vals[i] = v;
      lens[i] = l;
    }
    size_t len = rnd() % 300;
    char *in = malloc(len + 1);
    for (size_t k = 0; k < len;) {
      if (rnd() % 4 == 0) {
        size_t vi = rnd() % su.n, upto = rnd() % 3 == 0 ? rnd() % lens[vi] : lens[vi]; /* whole or a prefix */
        for (size_t j = 0; j < upto && k < len; j++)
          in[k++] = vals[vi][j];
      } else {
        in[k++] = alphabet[rnd() % (sizeof alphabet - 1)];
      }
    }
    size_t final_len;
    char *final = run_chunks(&su, in, len, NULL, 0, &final_len);
    berth_secrets *set = make_set(&su);
    berth_buf out;
    berth_buf_init(&out, 1 << 20);
    berth_error *err = NULL;
    berth_redactor *r = berth_redactor_new(set, sink_buf, &out, &err);
    for (size_t at = 0; at < len;) {
      size_t n = 1 + rnd() % 12;
      if (n > len - at)
        n = len - at;
      assert_int_equal(berth_redactor_feed(r, in + at, n, &err), 0);
      at += n;
      if (out.len > final_len || (out.len > 0 && memcmp(out.data, final, out.len) != 0))
        fail_msg("round %d: released [%.*s] after %zu bytes, final output [%.*s]", round, (int) out.len, out.data, at,
                 (int) final_len, final);
      char last = in[at - 1];
      if (last == ' ' || last == '\n' || last == '.') {
        size_t want_len;
        char *want = berth_secrets_redact_string(set, in, at, &want_len);
        if (out.len != want_len || (want_len > 0 && memcmp(out.data, want, want_len) != 0))
          fail_msg("round %d: after %zu bytes ending in %#x, released [%.*s], expected [%.*s]", round, at, last,
                   (int) out.len, out.data, (int) want_len, want);
        free(want);
      }
    }
    berth_redactor_free(r);
    berth_secrets_free(set);
    berth_buf_free(&out);
    free(final);
    free(in);
    for (size_t i = 0; i < su.n; i++)
      free((void *) vals[i]);
  }
}

/* A partial line leaves at once unless it is the beginning of a secret; the completed secret is masked. */
static void
test_live_partial_line(void **state)
{
  (void) state;
  const char *vals[] = { "hunter2-secret" };
  size_t lens[] = { 14 };
  setup su = { .vals = vals, .lens = lens, .n = 1, .builtin = true };
  berth_secrets *set = make_set(&su);
  berth_buf out;
  berth_buf_init(&out, 1 << 20);
  berth_error *err = NULL;
  berth_redactor *r = berth_redactor_new(set, sink_buf, &out, &err);
  assert_int_equal(berth_redactor_feed(r, "Still creating... [10s elapsed]\n", 32, &err), 0);
  assert_int_equal(out.len, 32);
  assert_int_equal(berth_redactor_feed(r, "progress 50%", 12, &err), 0);
  assert_int_equal(out.len, 44);
  assert_int_equal(berth_redactor_feed(r, " pw=hunter2-se", 14, &err), 0);
  assert_int_equal(out.len, 48); /* " pw=" left; "hunter2-se" may still become the secret */
  assert_int_equal(berth_redactor_feed(r, "cret ok", 7, &err), 0);
  berth_buf_append(&out, "", 0);
  assert_string_equal(out.data, "Still creating... [10s elapsed]\nprogress 50% pw=*** ok");
  /* a built-in pattern in an open line: held from the start of its possible match only */
  out.len = 0;
  assert_int_equal(berth_redactor_feed(r, "\nlogin with token=abc", 22, &err), 0);
  assert_int_equal(out.len, 12); /* "\nlogin with " */
  assert_int_equal(berth_redactor_feed(r, "def next\n", 9, &err), 0);
  berth_buf_append(&out, "", 0);
  assert_string_equal(out.data, "\nlogin with token=*** next\n");
  berth_redactor_free(r);
  berth_secrets_free(set);
  berth_buf_free(&out);
}

/* ---- API behaviour ---- */

static void
test_short_value_and_errors(void **state)
{
  (void) state;
  berth_error *err = NULL;
  berth_secrets *s = berth_secrets_new(0, &err);
  assert_int_equal(berth_secrets_add_value(s, "SHORT", "abc", 3, &err), 1);
  assert_null(err);
  assert_int_equal(berth_secrets_add_value(s, "OK", "abcd", 4, &err), 0);
  char *big = calloc(1, BERTH_REDACT_MAX_VALUE + 1);
  memset(big, 'x', BERTH_REDACT_MAX_VALUE + 1);
  assert_int_equal(berth_secrets_add_value(s, "BIG", big, BERTH_REDACT_MAX_VALUE + 1, &err), BERTH_EINVAL);
  assert_non_null(strstr(err->msg, "BIG"));
  assert_null(strstr(err->msg, "xxxx"));
  berth_error_clear(&err);
  free(big);
  assert_int_equal(berth_secrets_add_pattern(s, "broken", "ab(c", &err), BERTH_EINVAL);
  assert_non_null(strstr(err->msg, "`broken`"));
  assert_non_null(strstr(err->msg, "offset 4"));
  berth_error_clear(&err);
  size_t ol;
  char *o = berth_secrets_redact_string(s, "x abc abcd abcde", 16, &ol);
  assert_string_equal(o, "x abc *** ***e");
  assert_int_equal(ol, strlen(o));
  free(o);
  berth_secrets_free(s);
}

static void
test_add_mask_shared(void **state)
{
  (void) state;
  berth_error *err = NULL;
  berth_secrets *s = berth_secrets_new(0, &err);
  berth_buf out1, out2;
  berth_buf_init(&out1, 1 << 20);
  berth_buf_init(&out2, 1 << 20);
  berth_redactor *r1 = berth_redactor_new(s, sink_buf, &out1, &err);
  berth_redactor *r2 = berth_redactor_new(s, sink_buf, &out2, &err);
  const char *a = "before hunter22 x\n::add-mask::hunter22\r\nafter hunter22 ";
  /* Nothing known yet can begin with these bytes but the `t` (it may begin the anchor `token=`): they leave at once. */
  assert_int_equal(berth_redactor_feed(r2, "stderr: hunt", 12, &err), 0);
  assert_int_equal(out2.len, 11);
  assert_int_equal(berth_redactor_feed(r1, a, strlen(a), &err), 0);
  assert_int_equal(berth_redactor_feed(r2, "er22 and hunter22 and aHVudGVyMjI= end\n", 39, &err), 0);
  assert_int_equal(berth_redactor_flush(r1, &err), 0);
  assert_int_equal(berth_redactor_flush(r2, &err), 0);
  berth_buf_append(&out1, "", 0);
  berth_buf_append(&out2, "", 0);
  /* Earlier output is not recalled; the line itself and everything after are masked. */
  assert_string_equal(out1.data, "before hunter22 x\n::add-mask::***\r\nafter *** ");
  /* The sibling stream masks it from then on; what it released before the value was registered stays released. */
  assert_string_equal(out2.data, "stderr: hun*** and *** and *** end\n");
  /* redact_string does not honour add-mask, but masks known values. */
  char *o = berth_secrets_redact_string(s, "::add-mask::zzzzzz hunter22", 27, NULL);
  assert_string_equal(o, "::add-mask::zzzzzz ***");
  free(o);
  o = berth_secrets_redact_string(s, "zzzzzz", 6, NULL);
  assert_string_equal(o, "zzzzzz");
  free(o);
  berth_redactor_free(r1);
  berth_redactor_free(r2);
  berth_buf_free(&out1);
  berth_buf_free(&out2);
  berth_secrets_free(s);
}

/* A long line with no newline: patterns are cut at BERTH_REDACT_LINE_MAX, literals never. Output is never held
 * back past the cap. */
static void
test_long_lines(void **state)
{
  (void) state;
  size_t len = 3 * BERTH_REDACT_LINE_MAX + 1000;
  char *in = malloc(len);
  memset(in, '.', len);
  const char *v = "s3cr3t-value-XYZ";
  size_t at = BERTH_REDACT_LINE_MAX - 5; /* the value straddles the pattern cut */
  memcpy(in + at, v, strlen(v));
  memcpy(in + 2 * BERTH_REDACT_LINE_MAX + 10, "password=hunter2 ", 17);
  setup su = { .vals = &v, .lens = (size_t[]){ strlen(v) }, .n = 1, .builtin = true };
  size_t ol;
  char *one = run_chunks(&su, in, len, NULL, 0, &ol);
  assert_null(memmem(one, ol, v, strlen(v)));
  assert_null(memmem(one, ol, "hunter2", 7));
  assert_non_null(memmem(one, ol, "password=***", 12));
  assert_int_equal(ol, len - strlen(v) + 3 - 7 + 3);
  size_t ol2;
  char *many = run_random_chunks(&su, in, len, &ol2);
  assert_bytes_equal("long line", one, ol, many, ol2);
  free(one);
  free(many);

  /* Hold-back stays bounded: after feeding 1 MiB without a newline, almost everything was emitted. */
  berth_error *err = NULL;
  berth_secrets *s = make_set(&su);
  berth_buf out;
  berth_buf_init(&out, 1 << 22);
  berth_redactor *r = berth_redactor_new(s, sink_buf, &out, &err);
  char block[4096];
  memset(block, 'q', sizeof block);
  for (int i = 0; i < 256; i++)
    assert_int_equal(berth_redactor_feed(r, block, sizeof block, &err), 0);
  assert_true(out.len >= 256 * sizeof block - BERTH_REDACT_LINE_MAX);
  berth_redactor_free(r);
  berth_buf_free(&out);
  berth_secrets_free(s);
  free(in);
}

static int
failing_sink(void *ud, const char *data, size_t len)
{
  (void) ud;
  (void) data;
  (void) len;
  return -1;
}

static void
test_sink_abort(void **state)
{
  (void) state;
  berth_error *err = NULL;
  berth_secrets *s = berth_secrets_new(0, &err);
  berth_redactor *r = berth_redactor_new(s, failing_sink, NULL, &err);
  int rc = berth_redactor_feed(r, "hello\n", 6, &err);
  if (rc == 0)
    rc = berth_redactor_flush(r, &err);
  assert_true(rc < 0);
  assert_non_null(err);
  berth_error_clear(&err);
  berth_redactor_free(r);
  berth_secrets_free(s);
}

/* The count of `***` written (the metric berth_redactions_total): one per masked span, touching values one span,
 * counted across streams, whatever the cuts. */
static void
test_redaction_count(void **state)
{
  (void) state;
  static const char in[] = "x alpha-secret y\nalpha-secretbeta-secret\nnothing here\nbeta-secret\n";
  for (int bytewise = 0; bytewise < 2; bytewise++) {
    berth_error *err = NULL;
    berth_secrets *s = berth_secrets_new(0, &err);
    assert_non_null(s);
    assert_true(berth_secrets_add_value(s, "A", "alpha-secret", 12, &err) >= 0);
    assert_true(berth_secrets_add_value(s, "B", "beta-secret", 11, &err) >= 0);
    berth_buf out;
    berth_buf_init(&out, 1 << 20);
    berth_redactor *r = berth_redactor_new(s, sink_buf, &out, &err);
    assert_non_null(r);
    assert_int_equal(berth_redactor_redactions(r), 0);
    for (size_t i = 0; i < sizeof in - 1; i += bytewise ? 1 : sizeof in)
      assert_int_equal(berth_redactor_feed(r, in + i, bytewise ? 1 : sizeof in - 1, &err), 0);
    assert_int_equal(berth_redactor_flush(r, &err), 0);
    berth_buf_append(&out, "", 0);
    assert_string_equal(out.data, "x *** y\n***\nnothing here\n***\n");
    assert_int_equal(berth_redactor_redactions(r), 3);
    /* a second stream adds to the count */
    assert_int_equal(berth_redactor_feed(r, "beta-secret\n", 12, &err), 0);
    assert_int_equal(berth_redactor_flush(r, &err), 0);
    assert_int_equal(berth_redactor_redactions(r), 4);
    berth_buf_free(&out);
    berth_redactor_free(r);
    berth_secrets_free(s);
  }
  assert_int_equal(berth_redactor_redactions(NULL), 0);
}

/* ---- peer vectors ---- */

/* Cases where our contract differs from the peer on purpose (docs/security.md, "Peer test vectors"). */
static const char *
peer_skip_reason(const char *file, const cJSON *c)
{
  const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
  const cJSON *kind = cJSON_GetObjectItemCaseSensitive(c, "kind");
  const cJSON *skip = cJSON_GetObjectItemCaseSensitive(c, "skip_reason");
  if (cJSON_IsString(skip))
    return skip->valuestring;
  if (cJSON_IsString(kind) && strcmp(kind->valuestring, "token_prefix") == 0)
    return "GitLab keeps the token prefix (glpat-[MASKED]); berth masks the whole token";
  if (cJSON_IsString(kind) && strcmp(kind->valuestring, "url_param") == 0)
    return "GitLab url_param sanitizer is a different feature (covered by our secret-parameter built-in)";
  if (strstr(file, "buildkite") && strstr(name, "TestReplacerMultiLine"))
    return "Buildkite matches a newline in a needle against any whitespace run; berth masks the exact value and "
           "each long line";
  /* actions/runner registers more encoders than berth: a case that needs one of those is skipped. */
  static const char *ours[]
      = { "Original",           "JsonStringEscape",         "CommandLineArgumentEscape", "UriDataEscape",
          "Base64StringEscape", "Base64StringEscapeShift1", "Base64StringEscapeShift2" };
  const cJSON *mv;
  cJSON_ArrayForEach(mv, cJSON_GetObjectItemCaseSensitive(c, "matched_variants_derived"))
  {
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(mv, "needed_for_expected")))
      continue;
    bool covered = false;
    const cJSON *enc;
    cJSON_ArrayForEach(enc, cJSON_GetObjectItemCaseSensitive(mv, "encoders"))
    {
      for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
        if (strcmp(enc->valuestring, ours[i]) == 0)
          covered = true;
    }
    if (!covered)
      return "needs an actions/runner encoder berth does not register (XML, expression, PowerShell, "
             "TrimDoubleQuotes)";
  }
  return NULL;
}

static bool
peer_base64_case(const cJSON *c)
{
  const cJSON *mv, *enc;
  bool b64 = false;
  cJSON_ArrayForEach(mv, cJSON_GetObjectItemCaseSensitive(c, "matched_variants_derived"))
  {
    cJSON_ArrayForEach(enc, cJSON_GetObjectItemCaseSensitive(mv, "encoders"))
    {
      if (strncmp(enc->valuestring, "Base64", 6) == 0)
        b64 = true;
    }
  }
  return b64;
}

/* Our expectation: the peer's expected text with its replacement turned into `***`, and adjacent `***` merged
 * (touching matches are one in our contract). */
static char *
peer_expected(const char *exp, const char *repl)
{
  size_t rl = strlen(repl);
  berth_buf b;
  berth_buf_init(&b, 1 << 24);
  for (const char *p = exp; *p;) {
    if (rl > 0 && strncmp(p, repl, rl) == 0) {
      if (!(b.len >= 3 && memcmp(b.data + b.len - 3, "***", 3) == 0))
        berth_buf_append(&b, "***", 3);
      p += rl;
    } else {
      berth_buf_append(&b, p++, 1);
    }
  }
  berth_buf_append(&b, "", 0);
  return berth_buf_steal(&b);
}

static void
run_peer_file(const char *file, int *ran, int *skipped)
{
  char *path = peer_vectors_path(file, "the redaction vectors of Buildkite, GitLab Runner and GitHub Actions");
  char *text = read_file(path, NULL);
  if (text == NULL)
    fail_msg("cannot read %s", path);
  cJSON *root = cJSON_Parse(text);
  const cJSON *c;
  cJSON_ArrayForEach(c, root)
  {
    const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
    const char *why = peer_skip_reason(file, c);
    if (why != NULL) {
      print_message("skip %s [%s]: %s\n", file, name, why);
      (*skipped)++;
      continue;
    }
    const cJSON *secrets = cJSON_GetObjectItemCaseSensitive(c, "effective_secrets");
    if (!cJSON_IsArray(secrets))
      secrets = cJSON_GetObjectItemCaseSensitive(c, "secrets");
    setup su = { 0 };
    size_t ns = (size_t) cJSON_GetArraySize(secrets);
    su.vals = calloc(ns + 1, sizeof *su.vals);
    su.lens = calloc(ns + 1, sizeof *su.lens);
    su.min_len = 1; /* peers' vectors use short needles; the minimum length is tested separately */
    const cJSON *v;
    cJSON_ArrayForEach(v, secrets)
    {
      su.vals[su.n] = v->valuestring;
      su.lens[su.n++] = strlen(v->valuestring);
    }
    berth_buf in;
    berth_buf_init(&in, 1 << 24);
    const cJSON *ch;
    size_t *cuts = calloc((size_t) cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(c, "chunks")) + 1, sizeof *cuts);
    size_t ncuts = 0;
    cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(c, "chunks"))
    {
      if (in.len > 0)
        cuts[ncuts++] = in.len;
      berth_buf_append(&in, ch->valuestring, strlen(ch->valuestring));
    }
    berth_buf_append(&in, "", 0);
    char *exp = peer_expected(cJSON_GetObjectItemCaseSensitive(c, "expected")->valuestring,
                              cJSON_GetObjectItemCaseSensitive(c, "replacement")->valuestring);
    size_t ol;
    if (peer_base64_case(c)) {
      /* berth masks from the first base64 character that depends only on the secret; actions/runner from the next
       * 3-byte group. Check: every variant actions/runner masks is gone, and our masked span starts no later. */
      char *o = run_chunks(&su, in.data, in.len, cuts, ncuts, &ol);
      const cJSON *mv;
      cJSON_ArrayForEach(mv, cJSON_GetObjectItemCaseSensitive(c, "matched_variants_derived"))
      {
        const char *e = cJSON_GetObjectItemCaseSensitive(mv, "encoded")->valuestring;
        assert_null(memmem(o, ol, e, strlen(e)));
      }
      const char *ours = strstr(o, "***"), *theirs = strstr(exp, "***");
      assert_non_null(ours);
      assert_non_null(theirs);
      assert_true(ours - o <= theirs - exp && memcmp(o, exp, (size_t) (ours - o)) == 0);
      free(o);
      (*ran)++;
      goto next;
    }
    char *o = run_chunks(&su, in.data, in.len, cuts, ncuts, &ol);
    char what[1024];
    snprintf(what, sizeof what, "%s [%s] (peer chunks)", file, name);
    assert_bytes_equal(what, exp, strlen(exp), o, ol);
    free(o);
    if (in.len <= 4096) /* 1-byte writes of a long text with long needles: O(len x needle) scans, too slow here */
      check_all_chunkings(what, &su, in.data, in.len, exp, strlen(exp));
    (*ran)++;
  next:
    free(exp);
    free(cuts);
    berth_buf_free(&in);
    free(su.vals);
    free(su.lens);
  }
  cJSON_Delete(root);
  free(text);
  free(path);
}

static void
test_peer_vectors(void **state)
{
  (void) state;
  int ran = 0, skipped = 0;
  run_peer_file("buildkite-redact.json", &ran, &skipped);
  run_peer_file("gitlab-mask.json", &ran, &skipped);
  run_peer_file("gha-mask.json", &ran, &skipped);
  print_message("peer vectors: %d ran, %d skipped with a reason\n", ran, skipped);
  assert_true(ran >= 40);
}

/* Buildkite's fuzz corpus: only a property (no secret in the output), which must hold for every entry. */
static void
test_peer_fuzz_corpus(void **state)
{
  (void) state;
  char *path = peer_vectors_path("buildkite-fuzz-corpus.json", "Buildkite's redactor fuzz corpus");
  char *text = read_file(path, NULL);
  if (text == NULL)
    fail_msg("cannot read %s", path);
  cJSON *root = cJSON_Parse(text);
  const cJSON *c;
  int n = 0;
  cJSON_ArrayForEach(c, root)
  {
    setup su = { .min_len = 1 };
    const char *vals[8];
    size_t lens[8];
    su.vals = vals;
    su.lens = lens;
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(c, "secrets_hex"))
    {
      if (su.n < 8) {
        vals[su.n] = hex_decode(v->valuestring, &lens[su.n]);
        su.n++;
      }
    }
    berth_buf in;
    berth_buf_init(&in, 1 << 24);
    size_t cuts[4], ncuts = 0;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(c, "chunks_hex"))
    {
      size_t l;
      char *b = hex_decode(v->valuestring, &l);
      if (in.len > 0 && ncuts < 4)
        cuts[ncuts++] = in.len;
      berth_buf_append(&in, b, l);
      free(b);
    }
    size_t ol;
    char *o = run_chunks(&su, in.data ? in.data : "", in.len, cuts, ncuts, &ol);
    for (size_t i = 0; i < su.n; i++) {
      /* `*` is our replacement: a needle made of `*` trivially "appears" in it. */
      if (lens[i] > 0 && strspn(vals[i], "*") != lens[i] && memmem(o, ol, vals[i], lens[i]) != NULL)
        fail_msg("%s: secret leaked", cJSON_GetObjectItemCaseSensitive(c, "source")->valuestring);
      free((void *) vals[i]);
    }
    free(o);
    berth_buf_free(&in);
    n++;
  }
  assert_true(n > 200);
  cJSON_Delete(root);
  free(text);
  free(path);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_data_cases),
    cmocka_unit_test(test_property_chunking),
    cmocka_unit_test(test_property_live),
    cmocka_unit_test(test_live_partial_line),
    cmocka_unit_test(test_short_value_and_errors),
    cmocka_unit_test(test_add_mask_shared),
    cmocka_unit_test(test_long_lines),
    cmocka_unit_test(test_sink_abort),
    cmocka_unit_test(test_redaction_count),
    cmocka_unit_test(test_peer_vectors),
    cmocka_unit_test(test_peer_fuzz_corpus),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
