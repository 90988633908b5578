/* Hosts of a fleet and their claims on the queue (PostgreSQL only; see berth/fleet.h). Times are the store's clock,
 * so hosts whose clocks disagree still agree on who missed a lease. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "berth/actions.h"
#include "berth/cleanup.h"
#include "berth/fleet.h"
#include "berth/task_json.h"
#include "store/db.h"

#define QUEUE_CHANNEL "berth_queue"
#define HOST_COLS "name, instance, pools, slots, version, state, executes, lease_ms, started_at, heartbeat_at"
/* a host's state as others see it: a heartbeat older than the lease makes it lost, whatever the row says */
#define HOST_STATE_SQL "CASE WHEN heartbeat_at + lease_ms < " STORE_PG_NOW_MS_SQL " THEN 'lost' ELSE state END"
#define ACTIVE_SQL "('PREPARING', 'INITIALIZING', 'PERFORMING')"

static int
need_shared(berth_store *st, berth_error **err)
{
  if (berth_store_is_shared(st))
    return 0;
  return berth_error_set(err, BERTH_EINVAL,
                         "hosts need a shared store: a SQLite store is single-host (set BERTH_STORE to PostgreSQL)");
}

void
berth_host_clear(berth_host *h)
{
  free(h->name);
  free(h->instance);
  berth_strv_clear(&h->pools);
  free(h->version);
  free(h->state);
  free(h->home);
  memset(h, 0, sizeof *h);
}

void
berth_hosts_free(berth_host *v, size_t n)
{
  for (size_t i = 0; v && i < n; i++)
    berth_host_clear(&v[i]);
  free(v);
}

static char *
join_pools(const berth_strv *p)
{
  size_t len = 1;
  for (size_t i = 0; i < p->n; i++)
    len += strlen(p->v[i]) + 1;
  char *s = calloc(1, len);
  for (size_t i = 0; s && i < p->n; i++) {
    if (i)
      strcat(s, ",");
    strcat(s, p->v[i]);
  }
  return s;
}

static int
split_pools(const char *s, berth_strv *out)
{
  while (s && *s) {
    const char *c = strchr(s, ',');
    size_t n = c ? (size_t) (c - s) : strlen(s);
    char *one = strndup(s, n);
    if (one == NULL || berth_strv_push(out, one) < 0) {
      free(one);
      return -1;
    }
    free(one);
    s = c ? c + 1 : NULL;
  }
  return 0;
}

/* Fails every active task whose claim is held by no live instance: its host was declared lost (berth_fleet_reap marks
 * the hosts whose lease ran out first) or is gone; or, when name is given, every task of that host not claimed by
 * `instance` ("": all of them: the host registered anew or left). A
 * host whose lease ran out but that is not marked lost keeps its tasks: its heartbeat may renew the lease, and the
 * mark and the heartbeat are serialized on the host's row. The claim is revoked in the same transaction as the
 * task's end, so the host's late writes fail. */
static int
fail_orphaned(berth_store *st, const char *name, const char *instance, const char *why, int *n_failed,
              berth_error **err)
{
  db_conn *db = store_db(st);
  db_stmt *s = NULL;
  int rc = db_prepare(db,
                      name ? "SELECT t.id, t.host FROM tasks t WHERE t.state IN " ACTIVE_SQL
                             " AND t.revoked = 0 AND t.host = ? AND NOT EXISTS (SELECT 1 FROM hosts h"
                             " WHERE h.name = t.host AND h.instance = ?) ORDER BY t.seq"
                           : "SELECT t.id, t.host FROM tasks t WHERE t.state IN " ACTIVE_SQL
                             " AND t.revoked = 0 AND t.host IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hosts h"
                             " WHERE h.name = t.host AND h.state <> 'lost') ORDER BY t.seq",
                      &s, err);
  if (rc < 0)
    return rc;
  if (name) {
    db_bind_text(s, 1, name);
    db_bind_text(s, 2, instance);
  }
  berth_strv ids = { 0 }, hosts = { 0 };
  int src;
  while ((src = db_step(s, err)) == DB_ROW)
    if (berth_strv_push(&ids, db_column_text(s, 0)) < 0 || berth_strv_push(&hosts, db_column_text(s, 1)) < 0) {
      src = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
      break;
    }
  db_finalize(s);
  if (src < 0) {
    berth_strv_clear(&ids);
    berth_strv_clear(&hosts);
    return berth_error_wrap(err, "find the tasks of lost hosts");
  }
  int n = 0;
  bool began = true;
  for (size_t i = 0; i < ids.n; i++) {
    char note[256];
    snprintf(note, sizeof note, "host %s %s; the task is not run again (berth task retry runs it anew)", hosts.v[i],
             why);
    if (berth_store_begin(st, err) < 0) {
      began = false;
      break;
    }
    db_stmt *u = NULL;
    rc = db_prepare(db, "UPDATE tasks SET revoked = 1 WHERE id = ? AND revoked = 0 AND state IN " ACTIVE_SQL, &u, err);
    int64_t changed = 0;
    if (rc == 0) {
      db_bind_text(u, 1, ids.v[i]);
      rc = db_run(u, &changed, err);
    }
    if (rc == 0 && changed == 1)
      rc = berth_action_task_transition(st, ids.v[i], "FAILED", "berth", note, "host lost", -1, err);
    if (rc == 0 && changed == 1)
      rc = berth_store_commit(st, err);
    else
      berth_store_rollback(st);
    if (rc < 0) { /* someone else ended it meanwhile: theirs stands */
      berth_error_clear(err);
      continue;
    }
    n += changed == 1;
  }
  berth_strv_clear(&ids);
  berth_strv_clear(&hosts);
  if (n_failed)
    *n_failed = n;
  if (n > 0)
    berth_fleet_notify(st); /* their stacks move on */
  return began ? 0 : berth_error_wrap(err, "fail the tasks of lost hosts");
}

int
berth_host_register(berth_store *st, berth_host *h, berth_error **err)
{
  if (need_shared(st, err) < 0)
    return BERTH_EINVAL;
  if (berth_stack_validate_name(h->name, NULL) < 0)
    return berth_error_set(err, BERTH_EINVAL, "host name `%.64s` is invalid ([A-Za-z0-9][A-Za-z0-9_.-]{0,62})",
                           h->name);
  for (size_t i = 0; i < h->pools.n; i++)
    if (berth_stack_validate_name(h->pools.v[i], NULL) < 0)
      return berth_error_set(err, BERTH_EINVAL, "pool name `%.64s` is invalid ([A-Za-z0-9][A-Za-z0-9_.-]{0,62})",
                             h->pools.v[i]);
  unsigned char rnd[12];
  char hex[sizeof rnd * 2 + 1];
  randombytes_buf(rnd, sizeof rnd);
  sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
  free(h->instance);
  if ((h->instance = strdup(hex)) == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  cleanup_free char *pools = join_pools(&h->pools);
  if (pools == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  /* a live host of this name elsewhere keeps it; the same home (this machine, this BERTH_HOME, whose lock the caller
   * holds) is this host restarted, and takes over at once */
  db_stmt *s = NULL;
  if (db_prepare(store_db(st),
                 "SELECT home, (" STORE_PG_NOW_MS_SQL
                 " - heartbeat_at) / 1000 FROM hosts WHERE name = ? AND state <> 'lost'"
                 " AND heartbeat_at + lease_ms >= " STORE_PG_NOW_MS_SQL,
                 &s, err)
      < 0)
    return berth_error_wrap(err, "register host %s", h->name);
  db_bind_text(s, 1, h->name);
  int src = db_step(s, err);
  bool taken = src == DB_ROW && strcmp(db_column_text(s, 0), h->home ? h->home : "") != 0;
  long long ago = src == DB_ROW ? (long long) db_column_int64(s, 1) : 0;
  db_finalize(s);
  if (src < 0)
    return berth_error_wrap(err, "register host %s", h->name);
  if (taken)
    return berth_error_set(err, BERTH_EBUSY,
                           "host %s is alive elsewhere (its last heartbeat %lld s ago): give this "
                           "one another name (--host NAME)",
                           h->name, ago);
  if (h->drained) {
    if (db_prepare(store_db(st),
                   "INSERT INTO drained_hosts (name, at) VALUES (?, " STORE_PG_NOW_MS_SQL
                   ") ON CONFLICT (name) DO NOTHING",
                   &s, err)
        < 0)
      return berth_error_wrap(err, "register host %s", h->name);
    db_bind_text(s, 1, h->name);
    if (db_run(s, NULL, err) < 0)
      return berth_error_wrap(err, "register host %s", h->name);
  }
  /* drained by an admin (before this restart, or now with --drained): it comes up draining */
  if (db_prepare(store_db(st),
                 "INSERT INTO hosts (" HOST_COLS ", home) VALUES (?, ?, ?, ?, ?, CASE WHEN EXISTS (SELECT 1 FROM"
                 " drained_hosts d WHERE d.name = ?) THEN 'draining' ELSE 'alive' END, ?, ?, " STORE_PG_NOW_MS_SQL
                 ", " STORE_PG_NOW_MS_SQL
                 ", ?) ON CONFLICT (name) DO UPDATE SET instance = excluded.instance, pools = excluded.pools,"
                 " slots = excluded.slots, version = excluded.version, state = excluded.state,"
                 " executes = excluded.executes, lease_ms = excluded.lease_ms, started_at = excluded.started_at,"
                 " heartbeat_at = excluded.heartbeat_at, home = excluded.home RETURNING state",
                 &s, err)
      < 0)
    return berth_error_wrap(err, "register host %s", h->name);
  db_bind_text(s, 1, h->name);
  db_bind_text(s, 2, h->instance);
  db_bind_text(s, 3, pools);
  db_bind_int64(s, 4, h->slots);
  db_bind_text(s, 5, BERTH_VERSION);
  db_bind_text(s, 6, h->name);
  db_bind_int64(s, 7, h->executes);
  db_bind_int64(s, 8, h->lease_ms);
  db_bind_text(s, 9, h->home ? h->home : "");
  src = db_step(s, err);
  bool oom = false;
  free(h->state);
  h->state = src == DB_ROW ? db_column_strdup(s, 0, &oom) : NULL;
  db_finalize(s);
  if (src != DB_ROW)
    return src < 0 ? berth_error_wrap(err, "register host %s", h->name)
                   : berth_error_set(err, BERTH_EINTERNAL, "register host %s: no row written", h->name);
  if (oom)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  /* what an earlier instance of this host was running died with it: every active task of the name is an earlier
   * instance's (this one has claimed nothing yet) */
  return fail_orphaned(st, h->name, "", "restarted", NULL, err);
}

int
berth_host_heartbeat(berth_store *st, const char *name, const char *instance, bool docker_ok, bool *draining,
                     int64_t *beat_at, berth_error **err)
{
  db_stmt *s = NULL;
  if (db_prepare(store_db(st),
                 "UPDATE hosts SET heartbeat_at = " STORE_PG_NOW_MS_SQL
                 ", docker_ok = ? WHERE name = ? AND instance = ?"
                 " AND state <> 'lost' RETURNING state, heartbeat_at",
                 &s, err)
      < 0)
    return berth_error_wrap(err, "heartbeat of host %s", name);
  db_bind_int64(s, 1, docker_ok);
  db_bind_text(s, 2, name);
  db_bind_text(s, 3, instance);
  int rc = db_step(s, err);
  if (rc == DB_ROW && draining)
    *draining = strcmp(db_column_text(s, 0), "draining") == 0;
  if (rc == DB_ROW && beat_at)
    *beat_at = db_column_int64(s, 1);
  db_finalize(s);
  if (rc < 0)
    return berth_error_wrap(err, "heartbeat of host %s", name);
  if (rc != DB_ROW)
    return berth_error_set(err, BERTH_EBUSY,
                           "host %s lost its lease (no heartbeat in time, or another process took "
                           "its name): its claims are revoked",
                           name);
  return 0;
}

int
berth_host_deregister(berth_store *st, const char *name, const char *instance, berth_error **err)
{
  db_stmt *s = NULL;
  if (db_prepare(store_db(st), "DELETE FROM hosts WHERE name = ? AND instance = ?", &s, err) < 0)
    return berth_error_wrap(err, "deregister host %s", name);
  db_bind_text(s, 1, name);
  db_bind_text(s, 2, instance);
  if (db_run(s, NULL, err) < 0)
    return berth_error_wrap(err, "deregister host %s", name);
  /* anything it still had is over */
  return fail_orphaned(st, name, "", "stopped", NULL, err);
}

static int
read_hosts(berth_store *st, const char *name, berth_host **out, size_t *n, berth_error **err)
{
  db_stmt *s = NULL;
  cleanup_free char *sql = NULL;
  /* the registered hosts, and those an admin drained that are not running now ("stopped": their drain is kept) */
  if (asprintf(&sql,
               "SELECT * FROM (SELECT name, instance, pools, slots, version, " HOST_STATE_SQL ", executes, lease_ms,"
               " started_at, heartbeat_at, (SELECT COUNT(*) FROM tasks t WHERE t.host = hosts.name AND t.revoked = 0"
               " AND t.state IN " ACTIVE_SQL "), EXISTS (SELECT 1 FROM drained_hosts d WHERE d.name = hosts.name)"
               " FROM hosts%s UNION ALL SELECT name, '', '', 0, '', 'stopped', 0, 0, 0, 0, 0, true FROM drained_hosts d"
               " WHERE NOT EXISTS (SELECT 1 FROM hosts h WHERE h.name = d.name)%s) AS all_hosts ORDER BY name",
               name ? " WHERE name = ?" : "", name ? " AND d.name = ?" : "")
      < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (db_prepare(store_db(st), sql, &s, err) < 0)
    return berth_error_wrap(err, "list hosts");
  if (name) {
    db_bind_text(s, 1, name);
    db_bind_text(s, 2, name);
  }
  berth_host *v = NULL;
  size_t count = 0;
  int rc;
  bool oom = false;
  while ((rc = db_step(s, err)) == DB_ROW) {
    berth_host *nv = realloc(v, (count + 1) * sizeof *nv);
    if (nv == NULL) {
      oom = true;
      break;
    }
    v = nv;
    berth_host *h = &v[count++];
    memset(h, 0, sizeof *h);
    h->name = db_column_strdup(s, 0, &oom);
    h->instance = db_column_strdup(s, 1, &oom);
    oom |= split_pools(db_column_text(s, 2), &h->pools) < 0;
    h->slots = (int) db_column_int64(s, 3);
    h->version = db_column_strdup(s, 4, &oom);
    h->state = db_column_strdup(s, 5, &oom);
    h->executes = db_column_int64(s, 6) != 0;
    h->lease_ms = db_column_int64(s, 7);
    h->started_at = db_column_int64(s, 8);
    h->heartbeat_at = db_column_int64(s, 9);
    h->busy = (int) db_column_int64(s, 10);
    h->drained = db_column_int64(s, 11) != 0;
  }
  db_finalize(s);
  if (oom || rc < 0) {
    berth_hosts_free(v, count);
    return oom ? berth_error_set(err, BERTH_EINTERNAL, "out of memory") : berth_error_wrap(err, "list hosts");
  }
  *out = v;
  *n = count;
  return 0;
}

int
berth_host_list(berth_store *st, berth_host **out, size_t *n, berth_error **err)
{
  *out = NULL;
  *n = 0;
  if (need_shared(st, err) < 0)
    return BERTH_EINVAL;
  return read_hosts(st, NULL, out, n, err);
}

int
berth_host_get(berth_store *st, const char *name, berth_host *out, berth_error **err)
{
  if (need_shared(st, err) < 0)
    return BERTH_EINVAL;
  berth_host *v = NULL;
  size_t n = 0;
  int rc = read_hosts(st, name, &v, &n, err);
  if (rc < 0)
    return rc;
  if (n == 0) {
    free(v);
    return berth_error_set(err, BERTH_ENOTFOUND, "host `%.64s` does not exist", name);
  }
  *out = v[0];
  free(v);
  return 0;
}

int
berth_host_set_draining(berth_store *st, const char *name, bool draining, bool kept, berth_error **err)
{
  if (need_shared(st, err) < 0)
    return BERTH_EINVAL;
  db_stmt *s = NULL;
  if (db_prepare(store_db(st), "UPDATE hosts SET state = ? WHERE name = ? AND state <> 'lost'", &s, err) < 0)
    return BERTH_EINTERNAL;
  db_bind_text(s, 1, draining ? "draining" : "alive");
  db_bind_text(s, 2, name);
  int64_t changed = 0, cleared = 0;
  if (db_run(s, &changed, err) < 0)
    return berth_error_wrap(err, "%s host %s", draining ? "drain" : "undrain", name);
  if (kept && changed == 0 && draining) {
    /* a host that is not running (already drained), or lost: its drain is kept for when it comes back */
    if (db_prepare(store_db(st),
                   "INSERT INTO drained_hosts (name, at) SELECT ?, " STORE_PG_NOW_MS_SQL
                   " WHERE EXISTS (SELECT 1 FROM hosts h"
                   " WHERE h.name = ?) ON CONFLICT (name) DO NOTHING",
                   &s, err)
        < 0)
      return BERTH_EINTERNAL;
    db_bind_text(s, 1, name);
    db_bind_text(s, 2, name);
    if (db_run(s, NULL, err) < 0)
      return berth_error_wrap(err, "drain host %s", name);
    if (db_prepare(store_db(st), "SELECT COUNT(*) FROM drained_hosts d WHERE d.name = ?", &s, err) < 0)
      return BERTH_EINTERNAL;
    db_bind_text(s, 1, name);
    int src = db_step(s, err);
    cleared = src == DB_ROW ? db_column_int64(s, 0) : 0;
    db_finalize(s);
    if (src < 0)
      return berth_error_wrap(err, "drain host %s", name);
  } else if (kept && (changed > 0 || !draining)) {
    const char *sql = draining ? "INSERT INTO drained_hosts (name, at) VALUES (?, " STORE_PG_NOW_MS_SQL
                                 ") ON CONFLICT (name) DO"
                                 " NOTHING"
                               : "DELETE FROM drained_hosts WHERE name = ?";
    if (db_prepare(store_db(st), sql, &s, err) < 0)
      return BERTH_EINTERNAL;
    db_bind_text(s, 1, name);
    if (db_run(s, &cleared, err) < 0)
      return berth_error_wrap(err, "%s host %s", draining ? "drain" : "undrain", name);
  }
  if (changed == 0 && cleared == 0)
    return berth_error_set(err, BERTH_ENOTFOUND, "host `%.64s` does not exist%s", name,
                           draining ? "" : " or is lost (and was not drained)");
  return 0;
}

int
berth_host_remove(berth_store *st, const char *name, berth_error **err)
{
  if (need_shared(st, err) < 0)
    return BERTH_EINVAL;
  db_stmt *s = NULL;
  /* lost: marked so by a host's reap, or twice past its lease when no live host has reaped it (right after a database
   * outage every host is past its lease for a moment, and renews it as it reconnects: not one to remove then) */
  if (db_prepare(
          store_db(st),
          "DELETE FROM hosts WHERE name = ? AND (state = 'lost' OR heartbeat_at + 2 * lease_ms < " STORE_PG_NOW_MS_SQL
          ")",
          &s, err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_text(s, 1, name);
  int64_t changed = 0;
  if (db_run(s, &changed, err) < 0)
    return berth_error_wrap(err, "remove host %s", name);
  /* what it ran is failed now, as the reap of a live host would (with no live host, nothing else would) */
  if (changed > 0 && fail_orphaned(st, name, "", "was lost and removed", NULL, err) < 0)
    return berth_error_wrap(err, "remove host %s", name);
  /* forgotten: an admin's drain of it too (of a lost host, or of one that is not running: "stopped") */
  if (db_prepare(store_db(st),
                 "DELETE FROM drained_hosts WHERE name = ? AND NOT EXISTS (SELECT 1 FROM hosts h WHERE h.name = ?)", &s,
                 err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_text(s, 1, name);
  db_bind_text(s, 2, name);
  int64_t cleared = 0;
  if (db_run(s, &cleared, err) < 0)
    return berth_error_wrap(err, "remove host %s", name);
  if (changed > 0 || cleared > 0)
    return 0;
  berth_host h;
  int rc = berth_host_get(st, name, &h, err);
  if (rc < 0)
    return rc;
  /* shown lost (past its lease) but not declared so yet: a live host declares it within a lease of its own, and past
   * twice its lease it is removed whatever the others did */
  int64_t left_ms = h.lease_ms; /* by the store's clock, as leases are judged */
  if (h.state && strcmp(h.state, "lost") == 0
      && db_prepare(store_db(st),
                    "SELECT heartbeat_at + 2 * lease_ms - " STORE_PG_NOW_MS_SQL " FROM hosts WHERE name = ?", &s, NULL)
             == 0) {
    db_bind_text(s, 1, name);
    if (db_step(s, NULL) == DB_ROW)
      left_ms = db_column_int64(s, 0);
    db_finalize(s);
  }
  int64_t left_s = (left_ms + 999) / 1000;
  if (h.state && strcmp(h.state, "lost") == 0)
    rc = berth_error_set(err, BERTH_EBUSY,
                         "host `%s` missed its lease but is not declared lost yet (a live host declares it within a"
                         " lease): try again in about %lld s",
                         name, (long long) (left_s > 1 ? left_s : 1));
  else
    rc = berth_error_set(err, BERTH_EBUSY,
                         "host `%s` is %s: only a lost host is removed (a running host removes itself when it stops)",
                         name, h.state ? h.state : "alive");
  berth_host_clear(&h);
  return rc;
}

int
berth_fleet_reap(berth_store *st, int64_t beat_at, int64_t max_age_ms, int *n_failed, berth_error **err)
{
  if (n_failed)
    *n_failed = 0;
  db_stmt *s = NULL;
  if (db_prepare(
          store_db(st),
          "UPDATE hosts SET state = 'lost' WHERE state <> 'lost' AND heartbeat_at + lease_ms < " STORE_PG_NOW_MS_SQL
          " AND " STORE_PG_NOW_MS_SQL " - ? <= ?",
          &s, err)
      < 0)
    return berth_error_wrap(err, "mark lost hosts");
  db_bind_int64(s, 1, beat_at);
  db_bind_int64(s, 2, max_age_ms);
  if (db_run(s, NULL, err) < 0)
    return berth_error_wrap(err, "mark lost hosts");
  /* followers of task logs whose connection is gone (task_log.c): their tasks' chunks need not notify any more */
  berth_error *e = NULL;
  if (db_prepare(store_db(st),
                 "DELETE FROM log_followers f WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = f.pid)",
                 &s, &e)
      == 0)
    db_run(s, NULL, &e);
  berth_error_free(e);
  return fail_orphaned(st, NULL, NULL, "lost (no heartbeat within its lease)", n_failed, err);
}

int
berth_fleet_claim(berth_store *st, const char *name, const berth_strv *pools, berth_task **out, berth_error **err)
{
  *out = NULL;
  cleanup_free char *pl = join_pools(pools);
  if (pl == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (berth_store_begin(st, err) < 0)
    return berth_error_wrap(err, "claim a task");
  /* the oldest QUEUED task whose stack has nothing ahead of it, not locked against it, in one of our pools; rows other
   * hosts are claiming right now are skipped (they are not ours to wait for). The checks are per-row subqueries
   * (OFFSET 0 keeps PostgreSQL from turning them into joins): the queue is walked in order and the walk stops at the
   * first claimable task. As joins, the plan PostgreSQL keeps for the prepared statement could sort every QUEUED
   * task first (6 ms against 0.1 ms with 1,500 queued, under the store's write lock). */
  db_stmt *s = NULL;
  int rc = db_prepare(store_db(st),
                      "WITH c AS (SELECT t.seq FROM tasks t WHERE t.state = 'QUEUED'"
                      " AND EXISTS (SELECT 1 FROM stacks s WHERE s.name = t.stack"
                      " AND strpos(',' || ? || ',', ',' || COALESCE(s.pool, '" BERTH_DEFAULT_POOL "') || ',') > 0"
                      " AND (s.lock_owner IS NULL OR s.lock_owner = t.actor) OFFSET 0)"
                      " AND EXISTS (SELECT 1 FROM hosts h WHERE h.name = ? AND h.state = 'alive')"
                      " AND NOT EXISTS (SELECT 1 FROM tasks b WHERE b.stack = t.stack AND b.seq < t.seq"
                      " AND b.state IN ('QUEUED', 'PREPARING', 'INITIALIZING', 'PERFORMING') OFFSET 0)"
                      " ORDER BY t.seq LIMIT 1 FOR UPDATE OF t SKIP LOCKED)"
                      " UPDATE tasks SET host = ?, attempt = tasks.attempt + 1, revoked = 0 FROM c"
                      " WHERE tasks.seq = c.seq AND tasks.state = 'QUEUED' RETURNING tasks.id, tasks.attempt",
                      &s, err);
  char *id = NULL;
  int attempt = 0;
  if (rc == 0) {
    db_bind_text(s, 1, pl);
    db_bind_text(s, 2, name); /* a drained host claims nothing, from the moment it is drained */
    db_bind_text(s, 3, name);
    int src = db_step(s, err);
    bool oom = false;
    if (src == DB_ROW) {
      id = db_column_strdup(s, 0, &oom);
      attempt = (int) db_column_int64(s, 1);
    }
    db_finalize(s);
    rc = src < 0 ? src : oom ? berth_error_set(err, BERTH_EINTERNAL, "out of memory") : 0;
  }
  if (rc == 0 && id != NULL) {
    char note[160];
    snprintf(note, sizeof note, "claimed by host %s (attempt %d)", name, attempt);
    rc = berth_action_task_transition(st, id, "PREPARING", name, note, NULL, -1, err);
  }
  if (rc == 0)
    rc = berth_store_commit(st, err);
  else
    berth_store_rollback(st);
  if (rc == 0 && id != NULL)
    rc = berth_store_task_get(st, id, out, err);
  free(id);
  /* two claims on one stack at once: the index let one win; the other finds the next task on its next round */
  return rc < 0 ? berth_error_wrap(err, "claim a task") : 0;
}

void
berth_fleet_notify(berth_store *st)
{
  if (!berth_store_is_shared(st))
    return;
  berth_error *e = NULL;
  db_exec(store_db(st), "SELECT pg_notify('" QUEUE_CHANNEL "', '')", &e);
  berth_error_free(e);
}

int
berth_fleet_listen(berth_store *st, berth_error **err)
{
  /* the claim walks the queue in order and stops at the first claimable task; a plan made while the queue looked
   * small (a new database, before its statistics) sorted the queue instead, and kept doing so as it grew: 10-25 ms a
   * claim with 1,500 queued, under the store's write lock, against 0.1 ms. Sorting is only the last resort on the
   * connection that claims. */
  if (db_exec(store_db(st), "SET enable_sort = off", err) < 0)
    return BERTH_EINTERNAL;
  return db_listen(store_db(st), QUEUE_CHANNEL, err);
}

int
berth_fleet_hear(berth_store *st, bool on, berth_error **err)
{
  return on ? db_listen(store_db(st), QUEUE_CHANNEL, err) : db_exec(store_db(st), "UNLISTEN " QUEUE_CHANNEL, err);
}

int
berth_fleet_wait(berth_store *st, int timeout_ms)
{
  return db_wait_notify(store_db(st), NULL, timeout_ms);
}

int
berth_fleet_wait_fds(berth_store *st, int timeout_ms, const int *fds, size_t n_fds)
{
  return db_wait_notify_fds(store_db(st), NULL, timeout_ms, fds, n_fds);
}

static void
add_time(cJSON *o, const char *key, int64_t ms)
{
  char *s = ms > 0 ? berth_time_iso(ms) : NULL;
  if (s)
    cJSON_AddStringToObject(o, key, s);
  else
    cJSON_AddNullToObject(o, key);
  free(s);
}

cJSON *
berth_host_to_json(const berth_host *h)
{
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "name", h->name);
  cJSON_AddStringToObject(o, "state", h->state ? h->state : "alive");
  cJSON *p = cJSON_AddArrayToObject(o, "pools");
  for (size_t i = 0; i < h->pools.n; i++)
    cJSON_AddItemToArray(p, cJSON_CreateString(h->pools.v[i]));
  cJSON_AddNumberToObject(o, "slots", h->slots);
  cJSON_AddNumberToObject(o, "busy", h->busy);
  cJSON_AddBoolToObject(o, "executes", h->executes);
  cJSON_AddStringToObject(o, "version", h->version ? h->version : "");
  cJSON_AddNumberToObject(o, "lease_ms", (double) h->lease_ms);
  add_time(o, "started_at", h->started_at);
  add_time(o, "heartbeat_at", h->heartbeat_at);
  cJSON_AddBoolToObject(o, "drained", h->drained);
  return o;
}

cJSON *
berth_host_after_drain_json(berth_store *st, const char *name, berth_error **err)
{
  berth_host h;
  int rc = berth_host_get(st, name, &h, err);
  if (rc == BERTH_ENOTFOUND) { /* an undrain cleared the drain of a host that is not running: nothing else is known */
    berth_error_clear(err);
    memset(&h, 0, sizeof h);
    h.name = (char *) name;
    h.state = (char *) "stopped";
    return berth_host_to_json(&h);
  }
  if (rc < 0)
    return NULL;
  cJSON *j = berth_host_to_json(&h);
  berth_host_clear(&h);
  return j;
}

cJSON *
berth_hosts_to_json(const berth_host *v, size_t n)
{
  cJSON *o = cJSON_CreateObject();
  cJSON *a = cJSON_AddArrayToObject(o, "hosts");
  for (size_t i = 0; i < n; i++)
    cJSON_AddItemToArray(a, berth_host_to_json(&v[i]));
  return o;
}

int
berth_fleet_running(berth_store *st, const char *host, const char *pool, int64_t *n, berth_error **err)
{
  db_stmt *s = NULL;
  *n = 0;
  if (db_prepare(store_db(st),
                 "SELECT COUNT(*) FROM tasks t JOIN stacks s ON s.name = t.stack WHERE t.host = ? AND t.revoked = 0"
                 " AND t.state IN " ACTIVE_SQL " AND COALESCE(s.pool, '" BERTH_DEFAULT_POOL "') = ?",
                 &s, err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_text(s, 1, host);
  db_bind_text(s, 2, pool);
  int rc = db_step(s, err);
  if (rc == DB_ROW)
    *n = db_column_int64(s, 0);
  db_finalize(s);
  return rc < 0 ? berth_error_wrap(err, "count running tasks") : 0;
}
