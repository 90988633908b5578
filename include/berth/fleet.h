/* The fleet: several `berth serve` hosts on one PostgreSQL store, one queue.
 *
 * The database keeps the order: a host claims a task in one transaction (the oldest QUEUED task of a stack with no
 * task ahead of it, not locked against it, in a pool the host serves; rows other hosts are claiming are skipped, so
 * hosts never wait on each other), and a partial unique index allows at most one active task per stack whoever
 * claims. Each claim has a number (the task's attempt); every write the executing host makes to the task (its
 * transitions, container, log chunks, state versions) carries it, and a claim that was revoked (its host was lost)
 * makes those writes change nothing.
 *
 * Liveness is a lease: a host heartbeats, and a host whose heartbeat is older than its lease is lost; any live host
 * then fails the lost host's active tasks ("host lost") and never runs them again (an interrupted apply is not
 * idempotent). SQLite stores are single-host: none of this applies there (BERTH_EINVAL).
 *
 * Ownership: strings and arrays returned through `out` belong to the caller (berth_hosts_free). */
#ifndef BERTH_FLEET_H
#define BERTH_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/error.h"
#include "berth/store.h"

#define BERTH_DEFAULT_LEASE_MS 30000
#define BERTH_FLEET_POLL_MS 2000 /* a host looks for work at least this often, notifications or not */

typedef struct berth_host {
  char *name;
  char *instance; /* random per process start */
  berth_strv pools;
  int slots;
  int busy; /* active tasks claimed by it */
  char *version;
  char *state; /* "alive" | "draining" | "lost" | "stopped" (not running, drained by an admin: the drain is kept) */
  bool executes;
  int64_t lease_ms;
  int64_t started_at, heartbeat_at; /* unix ms, the store's clock */
  char *home;   /* register: "<machine id>:<BERTH_HOME>" of this process (it holds that home's host lock) */
  bool drained; /* read: an admin drained it (kept across restarts); register: start so (serve --drained) */
} berth_host;

void berth_hosts_free(berth_host *v, size_t n);
void berth_host_clear(berth_host *h); /* frees the fields of one (berth_host_get's) */
/* The JSON form of `host show --json` and GET /v1/hosts/{name}; of `host list --json` and GET /v1/hosts:
 * {"hosts": [...]}. Caller frees (cJSON_Delete); NULL on OOM. */
struct cJSON;
struct cJSON *berth_host_to_json(const berth_host *h);
struct cJSON *berth_hosts_to_json(const berth_host *v, size_t n);
/* The answer of a drain or undrain: the host as berth_host_get reads it, or, after the undrain of a host that is not
 * running, {"name", "state": "stopped", "drained": false, ...}. NULL with *err. */
struct cJSON *berth_host_after_drain_json(berth_store *st, const char *name, berth_error **err);

/* Registers (or re-registers) host `h->name` with a new instance id (written into h->instance) and its state into
 * h->state: "draining" when an admin drained it (before a restart too) or h->drained, else "alive". A live host of
 * that name from another home keeps it (BERTH_EBUSY, one line); a previous instance from the same home is this host
 * restarted: its active tasks are failed ("host lost": restarted) at once. */
int berth_host_register(berth_store *st, berth_host *h, berth_error **err);
/* Renews the lease of (name, instance), records whether its Docker answers (docker_ok: a task waiting for its pool says
 * so when no live host of it has one), and reads back the host's state (*draining). BERTH_EBUSY when this instance is
 * no longer the host's (it was declared lost, or another process took the name): the caller stops executing. A lease
 * that ran out while no host declared it lost (the database was down for all of them) is renewed: its claims were
 * never revoked, and a host is declared lost and its claims revoked in the row this update waits for. */
int berth_host_heartbeat(berth_store *st, const char *name, const char *instance, bool docker_ok, bool *draining,
                         int64_t *beat_at,
                         berth_error **err); /* *beat_at (optional): the heartbeat's time on the store's clock, in ms */
/* Removes the host's record (clean shutdown). */
int berth_host_deregister(berth_store *st, const char *name, const char *instance, berth_error **err);
/* Every host, by name; state "lost" when its heartbeat is older than its lease; hosts an admin drained that are not
 * running are listed as "stopped" (drained, nothing else known). */
int berth_host_list(berth_store *st, berth_host **out, size_t *n, berth_error **err);
int berth_host_get(berth_store *st, const char *name, berth_host *out, berth_error **err); /* ENOTFOUND */
/* drain: the host stops claiming (its running tasks finish); undrain: it claims again. Audited by the caller. kept:
 * an admin's (kept across the host's restarts until undrained; an undrain also clears the drain of a host that is
 * not running); not kept: a host showing its own shutdown. */
int berth_host_set_draining(berth_store *st, const char *name, bool draining, bool kept, berth_error **err);
/* Forgets a lost host (one that will not come back: an autoscaled machine, a renamed host). A live or draining
 * host is refused (BERTH_EBUSY): a running host removes its own record when it stops. Its tasks keep its name. */
int berth_host_remove(berth_store *st, const char *name, berth_error **err);

/* Marks hosts whose lease ran out as lost and fails their active tasks ("host lost"), revoking the claims. *n_failed
 * (optional) gets how many tasks were failed. A host calls it only once its own store has answered for a whole
 * lease (host_loop.c): after an outage of the database every host's lease has run out, and each is given the time to
 * renew it before any is declared lost. beat_at is the caller's last heartbeat on the store's clock: the statement
 * marks nothing when it runs more than max_age_ms after it (it was held up in a stalled server, and ran late, when the
 * others' heartbeats held up with it had not run yet). */
int berth_fleet_reap(berth_store *st, int64_t beat_at, int64_t max_age_ms, int *n_failed, berth_error **err);
/* Claims the oldest runnable task for host (name, instance) serving pools: QUEUED -> PREPARING with host and the
 * next attempt, in one transaction. *out = NULL (and 0) when there is nothing to claim. */
int berth_fleet_claim(berth_store *st, const char *name, const berth_strv *pools, berth_task **out, berth_error **err);
/* Wakes the hosts (new work, a freed stack). No-op on SQLite. */
void berth_fleet_notify(berth_store *st);
/* Makes st's connection a host loop's: it listens on the queue channel, and it plans claims to walk the queue in
 * order. */
int berth_fleet_listen(berth_store *st, berth_error **err);
/* Starts (on) or stops hearing the queue channel's wake-ups on st's connection (after berth_fleet_listen). Every
 * NOTIFY wakes every listening connection of the database, so a host whose slots are all busy stops listening. */
int berth_fleet_hear(berth_store *st, bool on, berth_error **err);
/* Waits up to timeout_ms for a wake-up on the store's queue channel (a connection of its own: listen first). */
int berth_fleet_wait(berth_store *st, int timeout_ms);
/* berth_fleet_wait that also ends (2) when one of fds is readable (a host's eventfd, woken as its tasks end). */
int berth_fleet_wait_fds(berth_store *st, int timeout_ms, const int *fds, size_t n_fds);

/* Fences the store handle's writes to task_id with the claim's attempt: transitions, the container, log chunks and
 * state versions of that task then change nothing (BERTH_EBUSY) once the claim is revoked. */
int berth_store_fence(berth_store *st, const char *task_id, int attempt, berth_error **err);
/* The attempt st is fenced with for task_id, 0 when none. */
int berth_store_fence_attempt(berth_store *st, const char *task_id);
/* Does the store still hold the fenced claim of task_id (attempt matches, not revoked)? 1 yes, 0 no, <0 error. */
int berth_store_claim_valid(berth_store *st, const char *task_id, berth_error **err);

/* Active tasks host runs for stacks of pool (a metric). */
int berth_fleet_running(berth_store *st, const char *host, const char *pool, int64_t *n, berth_error **err);

/* Why a QUEUED task waits, one line (caller frees): "2 tasks ahead on stack X", "stack locked by alice", "no live host
 * in pool gpu", "all 4 slots of pool default are busy", or "waiting for a host to claim it". */
int berth_fleet_wait_reason(berth_store *st, const berth_task *t, char **out, berth_error **err);

#endif
