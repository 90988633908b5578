/* Running a fleet host inside `berth serve` (PostgreSQL stores): one thread that heartbeats, fails the tasks of lost
 * hosts, claims tasks while a slot is free and runs each in a thread of its own, on store connections kept from task
 * to task (see berth/fleet.h for the guarantees).
 * libberth prints nothing: what the host has to say goes to opts.say, a line at a time. */
#ifndef BERTH_HOST_LOOP_H
#define BERTH_HOST_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "berth/error.h"
#include "berth/store.h"

typedef struct berth_host_opts {
  const char *home; /* BERTH_HOME of this host (its tasks' liveness locks) */
  const char *name;
  const berth_strv *pools; /* none: BERTH_DEFAULT_POOL */
  int slots;               /* tasks run at once (>= 1) */
  int64_t lease_ms;        /* 0: BERTH_DEFAULT_LEASE_MS */
  bool execute;            /* false: an API-only host (registers, claims nothing) */
  bool drained;            /* start drained, as if an admin drained it (serve --drained); undrain to claim */
  void (*say)(void *userdata, const char *line);
  void *userdata;
} berth_host_opts;

typedef struct berth_host_runner berth_host_runner;

/* Registers the host (a previous instance's tasks are failed, its leftover containers removed) and starts its
 * thread. */
int berth_host_start(const berth_host_opts *o, berth_host_runner **out, berth_error **err);
const char *berth_host_instance(const berth_host_runner *r);
/* It came up drained (an admin's drain kept from before its restart, or opts.drained). */
bool berth_host_started_drained(const berth_host_runner *r);
/* SIGTERM: claim nothing more (running tasks go on). */
void berth_host_stop_claiming(berth_host_runner *r);
/* A shutdown: gives up the tasks not PERFORMING (all of them when all): each ends its container and writes nothing
 * more, and is failed when the host leaves (berth_host_stop). Returns how many PERFORMING tasks still run. */
int berth_host_interrupt(berth_host_runner *r, bool all);
/* Ends the thread and removes the host's record; tasks it still had are failed ("host lost": stopped). NULL ok. */
void berth_host_stop(berth_host_runner *r);

#endif
