/* Cron expressions: the standard 5 fields (minute hour day-of-month month day-of-week) with lists, ranges, steps,
 * month and day names, and the macros @yearly @annually @monthly @weekly @daily @midnight @hourly. As in Vixie cron,
 * when both day fields are restricted (neither starts with `*`) a day matches when EITHER does.
 *
 * Fire times are computed in a time zone from the system's tz database (NULL or "UTC": UTC). Daylight saving time:
 * a wall-clock time that does not exist (a spring-forward gap) fires at the first valid minute after the gap; a
 * wall-clock time that happens twice (a fall-back repeat) fires once, at its first occurrence. */
#ifndef BERTH_CRON_H
#define BERTH_CRON_H

#include <stdbool.h>
#include <stdint.h>

#include "berth/error.h"

typedef struct berth_cron {
  uint64_t minutes; /* bit n: minute n matches */
  uint32_t hours;
  uint32_t days;                 /* bit n: day of month n (1..31) */
  uint16_t months;               /* bit n: month n (1..12) */
  uint8_t weekdays;              /* bit n: weekday n (0 = Sunday) */
  bool days_star, weekdays_star; /* the field started with `*`: it does not restrict (the OR rule) */
} berth_cron;

/* BERTH_EINVAL with one line naming the field, e.g. "cron `61 * * * *`: minute 61 is out of range (0-59)". */
int berth_cron_parse(const char *expr, berth_cron *out, berth_error **err);
/* A time zone name the tz database has ("Europe/Berlin"); NULL and "UTC" are UTC. BERTH_EINVAL otherwise. */
int berth_cron_check_tz(const char *tz, berth_error **err);
/* Call once while the process has one thread (a server: before it starts any): makes TZ present in the environment
 * (":/etc/localtime", the same as unset, when it is not), so that a zone switch in berth_cron_next only replaces
 * TZ's value and never grows or shrinks the environment under a thread reading it (getenv takes no lock). */
void berth_cron_prepare(void);
/* The first fire time strictly after after_ms (unix ms, a whole minute), in zone tz. BERTH_ENOTFOUND when there is
 * none within 10 years ("0 0 31 2 *"). Safe to call from several threads (the zone is switched under a lock). */
int berth_cron_next(const berth_cron *c, const char *tz, int64_t after_ms, int64_t *next_ms, berth_error **err);

#endif
