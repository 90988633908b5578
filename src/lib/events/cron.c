/* Cron expressions and their next fire time (include/berth/cron.h).
 *
 * The search walks wall-clock time (a struct tm read as if it were UTC, so timegm does the calendar arithmetic),
 * skipping whole months, days and hours that cannot match, then maps the matching wall-clock minute to an instant in
 * the zone. The zone is the process's TZ, switched for the computation under one lock: tzset is process-global, and
 * the only other readers of local time in berth are none (every output is UTC). The environment itself is shared with
 * every thread's getenv: a process with threads calls berth_cron_prepare first, so a switch only ever replaces TZ's
 * value (glibc keeps the strings setenv made, so a reader holding the old one still reads valid memory). */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "berth/cron.h"

static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER; /* guards TZ and tzset; no other state */

#define SEARCH_YEARS 10

static const char *const month_names[]
    = { "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec" };
static const char *const day_names[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };

static const struct {
  const char *name;
  const char *expr;
} macros[] = {
  { "@yearly", "0 0 1 1 *" }, { "@annually", "0 0 1 1 *" }, { "@monthly", "0 0 1 * *" }, { "@weekly", "0 0 * * 0" },
  { "@daily", "0 0 * * *" },  { "@midnight", "0 0 * * *" }, { "@hourly", "0 * * * *" },
};

typedef struct field_spec {
  const char *what;
  int min, max;
  const char *const *names; /* index 0 is value min */
  int n_names;
} field_spec;

static const field_spec fields[5] = {
  { "minute", 0, 59, NULL, 0 },          { "hour", 0, 23, NULL, 0 },
  { "day of month", 1, 31, NULL, 0 },    { "month", 1, 12, month_names, 12 },
  { "day of week", 0, 7, day_names, 7 },
};

/* A number or a name of the field; returns the end, or NULL. */
static const char *
parse_value(const char *p, const field_spec *f, int *out)
{
  if (*p >= '0' && *p <= '9') {
    char *end = NULL;
    long v = strtol(p, &end, 10);
    if (end - p > 3)
      return NULL;
    *out = (int) v;
    return end;
  }
  for (int i = 0; i < f->n_names; i++)
    if (strncasecmp(p, f->names[i], 3) == 0) {
      *out = f->min + i;
      return p + 3;
    }
  return NULL;
}

/* One field (a comma list of `*`, N, N-M, each with an optional /STEP) into a bit set. */
static int
parse_field(const char *expr, const char *text, const field_spec *f, uint64_t *bits, berth_error **err)
{
  *bits = 0;
  const char *p = text;
  for (;;) {
    int lo = f->min, hi = f->max, step = 1;
    bool star = false;
    if (*p == '*') {
      star = true;
      p++;
    } else {
      if ((p = parse_value(p, f, &lo)) == NULL)
        return berth_error_set(err, BERTH_EINVAL, "cron `%s`: the %s field `%s` is not valid", expr, f->what, text);
      hi = lo;
      if (*p == '-' && (p = parse_value(p + 1, f, &hi)) == NULL)
        return berth_error_set(err, BERTH_EINVAL, "cron `%s`: the %s field `%s` is not valid", expr, f->what, text);
    }
    if (*p == '/') {
      char *end = NULL;
      long s = strtol(p + 1, &end, 10);
      if (end == p + 1 || s < 1 || s > f->max)
        return berth_error_set(err, BERTH_EINVAL, "cron `%s`: the step in the %s field `%s` is not valid", expr,
                               f->what, text);
      step = (int) s;
      p = end;
      if (!star && hi == lo)
        hi = f->max; /* N/STEP: from N to the end (Vixie cron) */
    }
    if (lo < f->min || hi > f->max || lo > hi)
      return berth_error_set(err, BERTH_EINVAL, "cron `%s`: %s %d-%d is out of range (%d-%d)", expr, f->what, lo, hi,
                             f->min, f->max);
    for (int v = lo; v <= hi; v += step)
      *bits |= 1ULL << v;
    if (*p == '\0')
      return 0;
    if (*p++ != ',')
      return berth_error_set(err, BERTH_EINVAL, "cron `%s`: the %s field `%s` is not valid", expr, f->what, text);
  }
}

int
berth_cron_parse(const char *expr, berth_cron *out, berth_error **err)
{
  if (expr == NULL || strlen(expr) > 256)
    return berth_error_set(err, BERTH_EINVAL, "a cron expression is empty or too long");
  const char *text = expr;
  for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
    if (strcasecmp(expr, macros[i].name) == 0)
      text = macros[i].expr;
  if (text[0] == '@')
    return berth_error_set(err, BERTH_EINVAL,
                           "cron `%s`: unknown macro (@yearly @annually @monthly @weekly @daily "
                           "@midnight @hourly)",
                           expr);
  char copy[257], *save = NULL, *parts[6];
  snprintf(copy, sizeof copy, "%s", text);
  int n = 0;
  for (char *tok = strtok_r(copy, " \t", &save); tok != NULL; tok = strtok_r(NULL, " \t", &save))
    if (n < 6)
      parts[n++] = tok;
    else
      n++;
  if (n != 5)
    return berth_error_set(err, BERTH_EINVAL,
                           "cron `%s`: 5 fields are needed (minute hour day-of-month month day-of-week), not %d", expr,
                           n);
  uint64_t bits[5];
  for (int i = 0; i < 5; i++)
    if (parse_field(expr, parts[i], &fields[i], &bits[i], err) < 0)
      return BERTH_EINVAL;
  memset(out, 0, sizeof *out);
  out->minutes = bits[0];
  out->hours = (uint32_t) bits[1];
  out->days = (uint32_t) bits[2];
  out->months = (uint16_t) bits[3];
  out->weekdays = (uint8_t) ((bits[4] | (bits[4] >> 7)) & 0x7f); /* 7 is Sunday too */
  out->days_star = parts[2][0] == '*';
  out->weekdays_star = parts[4][0] == '*';
  return 0;
}

void
berth_cron_prepare(void)
{
  if (getenv("TZ") == NULL)
    setenv("TZ", ":/etc/localtime", 0);
}

int
berth_cron_check_tz(const char *tz, berth_error **err)
{
  if (tz == NULL || strcmp(tz, "UTC") == 0)
    return 0;
  const char *dir = getenv("TZDIR");
  char path[PATH_MAX];
  struct stat sb;
  bool ok = tz[0] != '\0' && tz[0] != '/' && strstr(tz, "..") == NULL && strlen(tz) < 128;
  if (ok) {
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", tz);
    ok = stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
  }
  return ok ? 0 : berth_error_set(err, BERTH_EINVAL, "time zone `%.128s` is not in the tz database", tz);
}

static bool
day_matches(const berth_cron *c, const struct tm *w)
{
  bool dom = (c->days >> w->tm_mday) & 1, dow = (c->weekdays >> w->tm_wday) & 1;
  if (c->days_star || c->weekdays_star)
    return dom && dow;
  return dom || dow;
}

/* The wall-clock time of instant t in the current zone, as naive seconds. */
static int64_t
wall_of(time_t t, bool utc)
{
  struct tm tm;
  if (utc)
    return (int64_t) t;
  localtime_r(&t, &tm);
  return (int64_t) timegm(&tm);
}

static long
offset_at(time_t t)
{
  struct tm tm;
  localtime_r(&t, &tm);
  return tm.tm_gmtoff;
}

/* The first instant whose wall-clock time is w; in a gap, the first instant after it. */
static int64_t
instant_of(int64_t w, bool utc)
{
  if (utc)
    return w;
  long offs[3] = { offset_at((time_t) (w - 86400)), offset_at((time_t) w), offset_at((time_t) (w + 86400)) };
  int64_t best = INT64_MAX;
  for (int i = 0; i < 3; i++) {
    int64_t t = w - offs[i];
    if (wall_of((time_t) t, false) == w && t < best)
      best = t;
  }
  if (best != INT64_MAX)
    return best;
  /* a gap: from an instant before it, the first minute whose wall-clock time is past w */
  int64_t t = w - (offs[0] < offs[2] ? offs[2] : offs[0]);
  for (int i = 0; i < 24 * 60 && wall_of((time_t) t, false) <= w; i++)
    t += 60;
  return t;
}

/* Walks wall-clock minutes from w0 to the first match whose instant is after `after`. */
static int
search(const berth_cron *c, bool utc, int64_t after, int64_t *next)
{
  int64_t w = wall_of((time_t) after, utc) / 60 * 60 + 60, limit = w + (int64_t) SEARCH_YEARS * 366 * 86400;
  while (w < limit) {
    time_t tw = (time_t) w;
    struct tm tm;
    gmtime_r(&tw, &tm);
    if (!((c->months >> (tm.tm_mon + 1)) & 1)) {
      tm.tm_mon++, tm.tm_mday = 1, tm.tm_hour = 0, tm.tm_min = 0;
    } else if (!day_matches(c, &tm)) {
      tm.tm_mday++, tm.tm_hour = 0, tm.tm_min = 0;
    } else if (!((c->hours >> tm.tm_hour) & 1)) {
      tm.tm_hour++, tm.tm_min = 0;
    } else if (!((c->minutes >> tm.tm_min) & 1)) {
      tm.tm_min++;
    } else {
      int64_t t = instant_of(w, utc);
      /* a repeated wall-clock time counts at its first occurrence only; a time in a gap maps past it */
      if (t > after) {
        *next = t;
        return 0;
      }
      tm.tm_min++;
    }
    tm.tm_sec = 0;
    w = (int64_t) timegm(&tm);
  }
  return -1;
}

int
berth_cron_next(const berth_cron *c, const char *tz, int64_t after_ms, int64_t *next_ms, berth_error **err)
{
  if (berth_cron_check_tz(tz, err) < 0)
    return BERTH_EINVAL;
  bool utc = tz == NULL || strcmp(tz, "UTC") == 0;
  int64_t after = after_ms >= 0 ? after_ms / 1000 : (after_ms - 999) / 1000, next = 0;
  int rc;
  if (utc) {
    rc = search(c, true, after, &next);
  } else {
    pthread_mutex_lock(&tz_lock);
    const char *old = getenv("TZ");
    char *saved = old ? strdup(old) : NULL;
    setenv("TZ", tz, 1);
    tzset();
    rc = search(c, false, after, &next);
    if (saved) /* never unset once prepared: restored to its value */
      setenv("TZ", saved, 1);
    else
      unsetenv("TZ"); /* not prepared: a single-threaded process (the CLI) */
    tzset();
    free(saved);
    pthread_mutex_unlock(&tz_lock);
  }
  if (rc < 0)
    return berth_error_set(err, BERTH_ENOTFOUND, "the cron expression never fires within %d years", SEARCH_YEARS);
  *next_ms = next * 1000;
  return 0;
}
