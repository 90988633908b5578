/* Parsing of user-supplied values (durations, sizes, cpus, env pairs, relative paths) and their display forms. */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "berth/parse.h"

#define VALUE_SHOW_MAX 64 /* how much of a bad value an error message quotes */

/* Error messages quote the bad value, cut to a sane length so a megabyte of argv is not echoed back. */
static int
bad_value(berth_error **err, const char *what, const char *s, const char *hint)
{
  int n = (int) strnlen(s, VALUE_SHOW_MAX);
  return berth_error_set(err, BERTH_EINVAL, "invalid %s `%.*s%s`%s%s", what, n, s, s[n] ? "..." : "", hint ? " " : "",
                         hint ? hint : "");
}

/* Reads decimal digits into *v; returns the number of digits, or -1 on overflow. */
static int
read_digits(const char **p, int64_t *v)
{
  int n = 0;
  int64_t acc = 0;
  while (isdigit((unsigned char) **p)) {
    if (__builtin_mul_overflow(acc, 10, &acc) || __builtin_add_overflow(acc, **p - '0', &acc))
      return -1;
    (*p)++;
    n++;
  }
  *v = acc;
  return n;
}

static const struct {
  const char *unit;
  int64_t ms;
} duration_units[] = {
  { "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 }, { "h", 3600 * 1000 }, { "d", 24 * 3600 * 1000 },
};

int
berth_parse_duration_ms(const char *s, int64_t *out, berth_error **err)
{
  static const char hint[] = "(use e.g. 90s, 7m, 1h30m, 500ms, 30d)";
  const char *p = s;
  int64_t total = 0, v = 0;
  if (s == NULL || *s == '\0')
    return berth_error_set(err, BERTH_EINVAL, "invalid duration `` %s", hint);
  int nd = read_digits(&p, &v);
  if (nd > 0 && *p == '\0') { /* a plain number is seconds */
    if (__builtin_mul_overflow(v, 1000, &total))
      return bad_value(err, "duration", s, "(too large)");
    *out = total;
    return 0;
  }
  p = s;
  while (*p) {
    nd = read_digits(&p, &v);
    if (nd < 0)
      return bad_value(err, "duration", s, "(too large)");
    if (nd == 0)
      return bad_value(err, "duration", s, hint);
    size_t ulen = 0;
    while (isalpha((unsigned char) p[ulen]))
      ulen++;
    int64_t mult = 0;
    for (size_t i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++)
      if (strlen(duration_units[i].unit) == ulen && strncmp(p, duration_units[i].unit, ulen) == 0)
        mult = duration_units[i].ms;
    if (mult == 0)
      return bad_value(err, "duration", s, hint);
    p += ulen;
    int64_t part;
    if (__builtin_mul_overflow(v, mult, &part) || __builtin_add_overflow(total, part, &total))
      return bad_value(err, "duration", s, "(too large)");
  }
  *out = total;
  return 0;
}

static const struct {
  const char *suffix;
  int64_t mult;
} size_units[] = {
  { "", 1 },           { "b", 1 },           { "k", 1LL << 10 },
  { "kb", 1LL << 10 }, { "kib", 1LL << 10 }, { "m", 1LL << 20 },
  { "mb", 1LL << 20 }, { "mib", 1LL << 20 }, { "g", 1LL << 30 },
  { "gb", 1LL << 30 }, { "gib", 1LL << 30 }, { "t", 1LL << 40 },
  { "tb", 1LL << 40 }, { "tib", 1LL << 40 },
};

/* "<int>[.<frac>]" as a fixed-point pair: *ip and the fraction scaled to 10^9. */
static int
read_decimal(const char **p, int64_t *ip, int64_t *frac_nano)
{
  int nd = read_digits(p, ip);
  if (nd <= 0)
    return -1;
  *frac_nano = 0;
  if (**p != '.')
    return 0;
  (*p)++;
  int64_t scale = 100000000;
  int nf = 0;
  while (isdigit((unsigned char) **p)) {
    if (nf == 9)
      return -1;
    *frac_nano += (**p - '0') * scale;
    scale /= 10;
    (*p)++;
    nf++;
  }
  return nf == 0 ? -1 : 0;
}

int
berth_parse_size(const char *s, int64_t *out, berth_error **err)
{
  static const char hint[] = "(use e.g. 512m, 1g, 64MiB, 1.5G or a number of bytes)";
  const char *p = s;
  int64_t ip = 0, frac = 0;
  if (s == NULL || read_decimal(&p, &ip, &frac) < 0)
    return bad_value(err, "size", s ? s : "", hint);
  char suffix[4] = "";
  size_t sl = strlen(p);
  if (sl >= sizeof suffix)
    return bad_value(err, "size", s, hint);
  for (size_t i = 0; i <= sl; i++)
    suffix[i] = (char) tolower((unsigned char) p[i]);
  int64_t mult = 0;
  for (size_t i = 0; i < sizeof size_units / sizeof size_units[0]; i++)
    if (strcmp(suffix, size_units[i].suffix) == 0)
      mult = size_units[i].mult;
  if (mult == 0)
    return bad_value(err, "size", s, hint);
  int64_t bytes;
  if (__builtin_mul_overflow(ip, mult, &bytes))
    return bad_value(err, "size", s, "(too large)");
  /* frac < 1e9 and mult <= 2^40: the product needs more than 64 bits; long double holds it exactly enough */
  int64_t fb = (int64_t) ((long double) frac * (long double) mult / 1e9L);
  if (__builtin_add_overflow(bytes, fb, &bytes))
    return bad_value(err, "size", s, "(too large)");
  *out = bytes;
  return 0;
}

int
berth_parse_cpus(const char *s, int64_t *nano_out, berth_error **err)
{
  static const char hint[] = "(use a number of cpus such as 1, 0.5 or 1.5)";
  const char *p = s;
  int64_t ip = 0, frac = 0, nano;
  if (s == NULL || read_decimal(&p, &ip, &frac) < 0 || *p != '\0')
    return bad_value(err, "cpus", s ? s : "", hint);
  if (__builtin_mul_overflow(ip, 1000000000, &nano) || __builtin_add_overflow(nano, frac, &nano))
    return bad_value(err, "cpus", s, "(too large)");
  *nano_out = nano;
  return 0;
}

int
berth_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out, berth_error **err)
{
  const char *p = s;
  bool neg = false;
  int64_t v = 0;
  if (s == NULL)
    return bad_value(err, "number", "", NULL);
  if (*p == '-' && min < 0) {
    neg = true;
    p++;
  }
  int nd = read_digits(&p, &v);
  if (nd < 0)
    return bad_value(err, "number", s, "(too large)");
  if (nd == 0 || *p != '\0')
    return bad_value(err, "number", s, NULL);
  if (neg)
    v = -v;
  if (v < min || v > max)
    return berth_error_set(err, BERTH_EINVAL, "number `%s` is out of range (%lld to %lld)", s, (long long) min,
                           (long long) max);
  *out = v;
  return 0;
}

bool
berth_env_name_valid(const char *name)
{
  if (name == NULL || !(isalpha((unsigned char) name[0]) || name[0] == '_'))
    return false;
  for (const char *p = name; *p; p++)
    if (!(isalnum((unsigned char) *p) || *p == '_'))
      return false;
  return strlen(name) <= 256;
}

static int
split_env(const char *s, const char *eq, char **key_out, char **value_out, const char *value, berth_error **err)
{
  size_t klen = eq ? (size_t) (eq - s) : strlen(s);
  char *key = strndup(s, klen);
  if (key == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (!berth_env_name_valid(key)) {
    int n = (int) strnlen(key, VALUE_SHOW_MAX);
    berth_error_set(err, BERTH_EINVAL,
                    "invalid environment variable name `%.*s` (use letters, digits and '_', not starting with a "
                    "digit)",
                    n, key);
    free(key);
    return BERTH_EINVAL;
  }
  char *val = strdup(value);
  if (val == NULL) {
    free(key);
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  *key_out = key;
  *value_out = val;
  return 0;
}

int
berth_parse_env_pair(const char *s, char **key_out, char **value_out, berth_error **err)
{
  const char *eq = s ? strchr(s, '=') : NULL;
  if (eq == NULL)
    return bad_value(err, "env", s ? s : "", "(expected KEY=VALUE)");
  return split_env(s, eq, key_out, value_out, eq + 1, err);
}

int
berth_parse_secret_env_pair(const char *s, char **key_out, char **value_out, berth_error **err)
{
  if (s == NULL || *s == '\0')
    return berth_error_set(err, BERTH_EINVAL, "invalid secret env `` (expected KEY=VALUE or KEY)");
  const char *eq = strchr(s, '=');
  if (eq != NULL)
    return split_env(s, eq, key_out, value_out, eq + 1, err);
  if (!berth_env_name_valid(s))
    return split_env(s, NULL, key_out, value_out, "", err); /* reports the bad name */
  const char *v = getenv(s);
  if (v == NULL)
    return berth_error_set(err, BERTH_EINVAL, "secret env `%s` is not set in berth's environment", s);
  return split_env(s, NULL, key_out, value_out, v, err);
}

int
berth_parse_relative_path(const char *what, const char *s, char **norm_out, berth_error **err)
{
  if (s == NULL || *s == '\0')
    return berth_error_set(err, BERTH_EINVAL, "%s must not be empty", what);
  size_t len = strlen(s);
  int n = (int) (len > VALUE_SHOW_MAX ? VALUE_SHOW_MAX : len);
  if (len > 4096)
    return berth_error_set(err, BERTH_EINVAL, "%s `%.*s...` is too long", what, n, s);
  if (s[0] == '/')
    return berth_error_set(err, BERTH_EINVAL, "%s `%.*s` must be relative (no leading '/')", what, n, s);
  char *norm = malloc(len + 1), *w = norm;
  if (norm == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  const char *p = s;
  while (*p) {
    while (*p == '/')
      p++;
    const char *e = strchrnul(p, '/');
    size_t cl = (size_t) (e - p);
    if (cl == 0)
      break;
    if ((cl == 1 && p[0] == '.') || (cl == 2 && p[0] == '.' && p[1] == '.')) {
      free(norm);
      return berth_error_set(err, BERTH_EINVAL, "%s `%.*s` must not contain '.' or '..' components", what, n, s);
    }
    for (size_t i = 0; i < cl; i++)
      if ((unsigned char) p[i] < 0x20) {
        free(norm);
        return berth_error_set(err, BERTH_EINVAL, "%s contains a control character", what);
      }
    if (w != norm)
      *w++ = '/';
    memcpy(w, p, cl);
    w += cl;
    p = e;
  }
  *w = '\0';
  *norm_out = norm;
  return 0;
}

char *
berth_format_duration(int64_t ms, char *buf, size_t len)
{
  if (ms <= 0) {
    snprintf(buf, len, "0s");
    return buf;
  }
  int64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, r = ms % 1000;
  size_t off = 0;
  buf[0] = '\0';
  if (h && off < len)
    off += (size_t) snprintf(buf + off, len - off, "%lldh", (long long) h);
  if (m && off < len)
    off += (size_t) snprintf(buf + off, len - off, "%lldm", (long long) m);
  if (s && off < len)
    off += (size_t) snprintf(buf + off, len - off, "%llds", (long long) s);
  if (r && off < len)
    snprintf(buf + off, len - off, "%lldms", (long long) r);
  return buf;
}

char *
berth_format_size(int64_t bytes, char *buf, size_t len)
{
  static const char *const names[] = { "TiB", "GiB", "MiB", "KiB" };
  for (int i = 0; i < 4; i++) {
    int64_t unit = 1LL << (10 * (4 - i));
    if (bytes < unit)
      continue;
    if (bytes % unit == 0) {
      snprintf(buf, len, "%lld%s", (long long) (bytes / unit), names[i]);
      return buf;
    }
    if ((bytes % unit) * 10 % unit == 0) {
      snprintf(buf, len, "%lld.%lld%s", (long long) (bytes / unit), (long long) ((bytes % unit) * 10 / unit), names[i]);
      return buf;
    }
  }
  snprintf(buf, len, "%lldB", (long long) bytes);
  return buf;
}

char *
berth_format_size_approx(int64_t bytes, char *buf, size_t len)
{
  static const char *const names[] = { "B", "KiB", "MiB", "GiB", "TiB" };
  double v = (double) bytes;
  int i = 0;
  while (v >= 1024 && i < 4) {
    v /= 1024;
    i++;
  }
  if (i == 0)
    snprintf(buf, len, "%lldB", (long long) bytes);
  else
    snprintf(buf, len, v < 10 ? "%.1f%s" : "%.0f%s", v, names[i]);
  return buf;
}

char *
berth_format_cpus(int64_t nano, char *buf, size_t len)
{
  int64_t frac = nano % 1000000000;
  int n = snprintf(buf, len, "%lld", (long long) (nano / 1000000000));
  if (frac != 0 && n > 0 && (size_t) n < len) {
    char f[16];
    snprintf(f, sizeof f, "%09lld", (long long) frac);
    for (int i = 8; i > 0 && f[i] == '0'; i--)
      f[i] = '\0';
    snprintf(buf + n, len - (size_t) n, ".%s", f);
  }
  return buf;
}

char *
berth_format_time(int64_t unix_ms, char *buf, size_t len)
{
  time_t t = (time_t) (unix_ms / 1000);
  struct tm tm;
  if (unix_ms <= 0 || gmtime_r(&t, &tm) == NULL
      || snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, (int) (unix_ms % 1000))
             >= (int) len)
    snprintf(buf, len, "-");
  return buf;
}

int
berth_flag_error(int ret, const char *cmd, char *const *argv, int optind, int optopt, const char *optarg,
                 berth_error **err)
{
  const char *arg = optind > 0 ? argv[optind - 1] : "?";
  if (ret != ':' && ret != '?' && optarg != NULL && arg == optarg && optind > 1)
    arg = argv[optind - 2]; /* a known flag with its value as the next argument */
  char flag[104];
  snprintf(flag, sizeof flag, "%.100s", arg);
  char *eq = strncmp(flag, "--", 2) == 0 ? strchr(flag, '=') : NULL;
  if (eq)
    *eq = '\0'; /* --flag=value: the flag */
  arg = flag;
  if (ret == ':')
    return berth_error_set(err, BERTH_EINVAL, "flag `%.100s` needs a value (see 'berth %s --help')", arg, cmd);
  if (optopt > 0 && optopt < 256 && strncmp(arg, "--", 2) != 0)
    return berth_error_set(err, BERTH_EINVAL, "unknown flag `-%c` for 'berth %s' (see 'berth %s --help')", optopt, cmd,
                           cmd);
  return berth_error_set(err, BERTH_EINVAL, "unknown flag `%.100s` for 'berth %s' (see 'berth %s --help')", arg, cmd,
                         cmd);
}

/* s[0..len) is well-formed UTF-8 (a NUL is a character like any other here). */
static bool
utf8_valid_n(const char *s, size_t len)
{
  const unsigned char *p = (const unsigned char *) s, *end = p + len;
  while (p < end) {
    if (*p < 0x80) {
      p++;
      continue;
    }
    int n = (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 : (*p & 0xf8) == 0xf0 ? 3 : -1;
    if (n < 0 || end - p <= n)
      return false;
    uint32_t cp = *p & (0x3f >> n);
    for (int i = 1; i <= n; i++) {
      if ((p[i] & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    static const uint32_t min[4] = { 0, 0x80, 0x800, 0x10000 };
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    p += n + 1;
  }
  return true;
}

bool
berth_utf8_valid(const char *s)
{
  return s == NULL || utf8_valid_n(s, strlen(s));
}

void
berth_utf8_repair(char *s)
{
  for (char *p = s; p != NULL && *p;) {
    unsigned char c = (unsigned char) *p;
    size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    size_t have = 0;
    while (n && have < n && p[have])
      have++;
    if (n == 0 || have < n || !utf8_valid_n(p, n)) {
      *p++ = '?';
      continue;
    }
    p += n;
  }
}

static int
hex4(const char *p)
{
  int v = 0;
  for (int i = 0; i < 4; i++) {
    int c = (unsigned char) p[i], d = c >= '0' && c <= '9'   ? c - '0'
                                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                             : -1;
    if (d < 0)
      return -1;
    v = v * 16 + d;
  }
  return v;
}

int
berth_json_text_check(const char *text, size_t len, berth_error **err)
{
  if (!utf8_valid_n(text, len))
    return berth_error_set(err, BERTH_EINVAL, "the JSON text is not valid UTF-8");
  bool in_string = false;
  for (size_t i = 0; i < len; i++) {
    if (!in_string) {
      in_string = text[i] == '"';
      continue;
    }
    if (text[i] == '"') {
      in_string = false;
    } else if (text[i] == '\\' && i + 1 < len && text[i + 1] == 'u') {
      int v = i + 6 <= len ? hex4(text + i + 2) : -1;
      if (v < 0)
        return berth_error_set(err, BERTH_EINVAL, "the JSON text has a \\u escape without 4 hex digits (byte %zu)", i);
      if (v == 0)
        return berth_error_set(err, BERTH_EINVAL, "the JSON text holds a NUL (\\u0000) in a string (byte %zu)", i);
      bool high = v >= 0xd800 && v <= 0xdbff, low = v >= 0xdc00 && v <= 0xdfff;
      int next = high && i + 12 <= len && text[i + 6] == '\\' && text[i + 7] == 'u' ? hex4(text + i + 8) : -1;
      if (low || (high && !(next >= 0xdc00 && next <= 0xdfff)))
        return berth_error_set(err, BERTH_EINVAL, "the JSON text has a lone UTF-16 surrogate (byte %zu)", i);
      i += high ? 11 : 5;
    } else if (text[i] == '\\') {
      i++; /* the escaped character, whatever it is (the parser checks it) */
    }
  }
  return 0;
}

static int
cmp_str(const void *a, const void *b)
{
  return strcmp(*(const char *const *) a, *(const char *const *) b);
}

const char *
berth_json_duplicate_key(const cJSON *j)
{
  size_t n = 0;
  for (const cJSON *it = j ? j->child : NULL; it; it = it->next)
    n++;
  if (cJSON_IsObject(j) && n > 1) { /* sorted, so that a body of many keys costs n log n, not n^2 */
    const char **keys = malloc(n * sizeof *keys);
    if (keys == NULL)
      return "(out of memory)";
    size_t k = 0;
    for (const cJSON *it = j->child; it; it = it->next)
      keys[k++] = it->string;
    qsort(keys, n, sizeof *keys, cmp_str);
    const char *dup = NULL;
    for (size_t i = 1; i < n && dup == NULL; i++)
      if (strcmp(keys[i - 1], keys[i]) == 0)
        dup = keys[i];
    free(keys);
    if (dup)
      return dup;
  }
  for (const cJSON *it = j ? j->child : NULL; it; it = it->next) {
    const char *inner = berth_json_duplicate_key(it);
    if (inner)
      return inner;
  }
  return NULL;
}

int
berth_utf8_check(const char *what, const char *s, berth_error **err)
{
  if (berth_utf8_valid(s))
    return 0;
  return berth_error_set(err, BERTH_EINVAL, "%s is not valid UTF-8", what);
}
