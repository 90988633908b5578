/* Cron expressions: parsing, the next fire time in UTC and in zones with daylight saving time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "berth/cron.h"
#include "berth/parse.h"

/* unix ms of a UTC time "YYYY-MM-DDTHH:MM" */
static int64_t
utc(const char *s)
{
  struct tm tm = { 0 };
  assert_non_null(strptime(s, "%Y-%m-%dT%H:%M", &tm));
  return (int64_t) timegm(&tm) * 1000;
}

/* the next fire time after `after` (UTC), as "YYYY-MM-DDTHH:MM" UTC */
static const char *
next(const char *expr, const char *tz, const char *after)
{
  static char out[32];
  berth_cron c;
  berth_error *err = NULL;
  assert_int_equal(berth_cron_parse(expr, &c, &err), 0);
  int64_t n = 0;
  assert_int_equal(berth_cron_next(&c, tz, utc(after), &n, &err), 0);
  time_t t = (time_t) (n / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, sizeof out, "%Y-%m-%dT%H:%M", &tm);
  return out;
}

static void
bad(const char *expr, const char *needle)
{
  berth_cron c;
  berth_error *err = NULL;
  assert_int_equal(berth_cron_parse(expr, &c, &err), BERTH_EINVAL);
  assert_non_null(err);
  if (strstr(err->msg, needle) == NULL)
    fail_msg("`%s`: message `%s` lacks `%s`", expr, err->msg, needle);
  berth_error_free(err);
}

static void
test_parse_errors(void **state)
{
  (void) state;
  bad("* * * *", "5 fields");
  bad("* * * * * *", "5 fields");
  bad("61 * * * *", "minute");
  bad("* 24 * * *", "hour");
  bad("* * 0 * *", "day of month");
  bad("* * * 13 *", "month");
  bad("* * * * 8", "day of week");
  bad("*/0 * * * *", "step");
  bad("5-1 * * * *", "out of range");
  bad("@reboot", "macro");
  bad("a * * * *", "minute");
}

static void
test_next_utc(void **state)
{
  (void) state;
  assert_string_equal(next("* * * * *", NULL, "2026-01-01T00:00"), "2026-01-01T00:01");
  assert_string_equal(next("*/15 * * * *", NULL, "2026-01-01T00:14"), "2026-01-01T00:15");
  assert_string_equal(next("5,35 9-17/4 * * *", NULL, "2026-01-01T09:35"), "2026-01-01T13:05");
  assert_string_equal(next("0 0 1 jan *", NULL, "2026-03-01T00:00"), "2027-01-01T00:00");
  assert_string_equal(next("@hourly", NULL, "2026-01-01T00:00"), "2026-01-01T01:00");
  assert_string_equal(next("@daily", NULL, "2026-01-01T00:00"), "2026-01-02T00:00");
  assert_string_equal(next("@weekly", NULL, "2026-01-01T00:00"), "2026-01-04T00:00"); /* a Sunday */
  assert_string_equal(next("@monthly", NULL, "2026-01-15T00:00"), "2026-02-01T00:00");
  assert_string_equal(next("@yearly", NULL, "2026-01-15T00:00"), "2027-01-01T00:00");
  assert_string_equal(next("0 12 * * MON-FRI", NULL, "2026-01-02T12:00"), "2026-01-05T12:00");
  assert_string_equal(next("0 0 * * 7", NULL, "2026-01-01T00:00"), "2026-01-04T00:00"); /* 7 is Sunday */
  assert_string_equal(next("0 0 29 feb *", NULL, "2026-01-01T00:00"), "2028-02-29T00:00");
  /* both day fields restricted: either matches (the 13th, or a Friday) */
  assert_string_equal(next("0 0 13 * fri", NULL, "2026-01-01T00:00"), "2026-01-02T00:00");
  assert_string_equal(next("0 0 13 * fri", NULL, "2026-01-10T00:00"), "2026-01-13T00:00");
  /* one restricted with `*` in the other: only it counts */
  assert_string_equal(next("0 0 13 * *", NULL, "2026-01-01T00:00"), "2026-01-13T00:00");
  berth_cron c;
  berth_error *err = NULL;
  int64_t n = 0;
  assert_int_equal(berth_cron_parse("0 0 31 feb *", &c, &err), 0);
  assert_int_equal(berth_cron_next(&c, NULL, utc("2026-01-01T00:00"), &n, &err), BERTH_ENOTFOUND);
  berth_error_free(err);
}

static void
test_next_zones(void **state)
{
  (void) state;
  /* 09:00 in New York is 14:00 UTC in winter, 13:00 in summer */
  assert_string_equal(next("0 9 * * *", "America/New_York", "2026-01-10T00:00"), "2026-01-10T14:00");
  assert_string_equal(next("0 9 * * *", "America/New_York", "2026-07-10T00:00"), "2026-07-10T13:00");
  berth_error *err = NULL;
  assert_int_equal(berth_cron_check_tz("Nowhere/Atlantis", &err), BERTH_EINVAL);
  berth_error_free(err);
  err = NULL;
  assert_int_equal(berth_cron_check_tz("../etc/passwd", &err), BERTH_EINVAL);
  berth_error_free(err);
}

static void
test_dst_gap(void **state)
{
  (void) state;
  /* 2026-03-08 in New York: 02:00 EST jumps to 03:00 EDT (07:00 UTC); 02:30 does not exist and runs at 03:00 */
  assert_string_equal(next("30 2 * * *", "America/New_York", "2026-03-07T12:00"), "2026-03-08T07:00");
  assert_string_equal(next("30 2 * * *", "America/New_York", "2026-03-08T07:00"), "2026-03-09T06:30");
  /* every minute: 01:59 EST is followed by 03:00 EDT, once */
  assert_string_equal(next("* * * * *", "America/New_York", "2026-03-08T06:59"), "2026-03-08T07:00");
  assert_string_equal(next("* * * * *", "America/New_York", "2026-03-08T07:00"), "2026-03-08T07:01");
  /* Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC) */
  assert_string_equal(next("15 2 * * *", "Europe/Berlin", "2026-03-28T12:00"), "2026-03-29T01:00");
}

static void
test_dst_repeat(void **state)
{
  (void) state;
  /* 2026-11-01 in New York: 01:00-02:00 happens twice (EDT, then EST); 01:30 fires once, at 05:30 UTC */
  assert_string_equal(next("30 1 * * *", "America/New_York", "2026-10-31T12:00"), "2026-11-01T05:30");
  assert_string_equal(next("30 1 * * *", "America/New_York", "2026-11-01T05:30"), "2026-11-02T06:30");
  /* every minute: after 01:59 EDT comes 02:00 EST; the repeated hour's minutes do not fire again */
  assert_string_equal(next("* * * * *", "America/New_York", "2026-11-01T05:59"), "2026-11-01T07:00");
  /* Berlin, 2026-10-25: 02:00-03:00 twice; 02:30 fires at 00:30 UTC only */
  assert_string_equal(next("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00"), "2026-10-25T00:30");
  assert_string_equal(next("30 2 * * *", "Europe/Berlin", "2026-10-25T00:30"), "2026-10-26T01:30");
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_parse_errors), cmocka_unit_test(test_next_utc),   cmocka_unit_test(test_next_zones),
    cmocka_unit_test(test_dst_gap),      cmocka_unit_test(test_dst_repeat),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
