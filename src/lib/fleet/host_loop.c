/* A fleet host's own thread: heartbeat, reap lost hosts, claim tasks while a slot is free, run each claimed task in a
 * thread of its own, and notice those that ended.
 *
 * A task's thread keeps its store (its connections to PostgreSQL, with their prepared statements) for the next task:
 * no process and no connection is started per task. A thread that could not run its task leaves it failed ("executor
 * interrupted"); a host process that dies takes its tasks' threads with it, and the fleet fails those tasks (host
 * lost) while its restart removes their containers. */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/actions.h"
#include "berth/docker.h"
#include "berth/fleet.h"
#include "berth/host_loop.h"
#include "berth/task_log.h"
#include "berth/task_runner.h"
#include "berth/task_submit.h"

#define REOPEN_MS 2000
/* A host that listens for new work and heard nothing looks at the queue this often anyway (work that wakes no one:
 * a NOTIFY lost with a dropped connection); every look takes the store's write lock, which every idle host of a fleet
 * would otherwise take twice a second. */
#define IDLE_CLAIM_MS 2000
#define SAY_AGAIN_MS 30000 /* a failure that lasts is said again this often, not on every round */
#define SWEEP_MS 30000     /* a running host looks for its ended tasks' containers this often (one Docker list) */

typedef struct worker {
  struct berth_host_runner *r;
  pthread_t thread;
  char *task_id;
  berth_task_ctl ctl;
  atomic_bool done;
  int rc; /* the runner's: < 0 when it could not run the task (err says why) */
  berth_error *err;
} worker;

struct berth_host_runner {
  berth_host_opts o;
  berth_host h; /* name, pools, slots, lease, instance */
  berth_store *st;
  pthread_t thread;
  bool started;
  atomic_bool ending;   /* the thread should return */
  atomic_bool claiming; /* false after berth_host_stop_claiming */
  bool draining;        /* an admin drained it (read with each heartbeat) */
  bool started_drained; /* it came up drained (kept from before a restart, or --drained) */
  bool listening;
  pthread_mutex_t mu; /* kids, n_kids (the server's shutdown reads them too) and the idle stores */
  worker **kids;
  size_t n_kids;
  berth_store **idle; /* stores of threads that ended, for the next task's thread */
  size_t n_idle;
  int wake; /* eventfd: a task's thread ended */
  int64_t last_beat_ok, last_said;
  int64_t beat_at;        /* the last heartbeat on the store's clock */
  int64_t store_ok_since; /* the first heartbeat of the store's last unbroken run of answers; 0 after a failure */
  int home_lock;          /* flock on BERTH_HOME/run/host-NAME.STORE.lock: a name runs once per home and store */
  berth_docker *docker;   /* for the check before claiming: a host whose Docker is down claims nothing */
  int64_t docker_checked; /* when it was last asked */
  bool docker_ok;
  bool docker_said;       /* the host said its Docker is down (said again once it is back) */
  char store_id[64];      /* the store's instance id (the berth.instance label), for threads that have no store */
  pthread_t sweep_thread; /* remove_own(strays) every SWEEP_MS, off the host's thread (Docker may be slow to answer) */
  bool sweep_started;
  berth_strv unended; /* "ID NOTE": tasks whose thread ended before their end was written, to fail when the store
                         answers (the store was down as the thread ended) */
  /* the liveness file its tasks' containers watch (berth_task_ctl.alive_path), rewritten by its own thread */
  char *alive_path;
  int alive_fd, alive_limit_s;
  pthread_t alive_thread;
  bool alive_started;
  atomic_bool alive_stop;
};

/* A host name runs once per BERTH_HOME and store (servers of one home on two stores are hosts of two fleets): the
 * lock, and "<machine id>:<home>", which tells the store that a record of this name and home whose process is gone
 * (we hold the lock) is this host restarted. */
static int
lock_home(berth_host_runner *r, berth_error **err)
{
  char path[4096], mid[128] = "";
  snprintf(path, sizeof path, "%s/run", r->o.home);
  mkdir(path, 0700);
  snprintf(path, sizeof path, "%s/run/host-%s.%s.lock", r->o.home, r->h.name, berth_store_instance_id(r->st));
  r->home_lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (r->home_lock < 0)
    return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "open %s", path);
  if (flock(r->home_lock, LOCK_EX | LOCK_NB) < 0)
    return berth_error_set(err, BERTH_EBUSY, "host %s runs from BERTH_HOME %s already", r->h.name, r->o.home);
  FILE *f = fopen("/etc/machine-id", "r");
  if (f == NULL || fgets(mid, sizeof mid, f) == NULL)
    gethostname(mid, sizeof mid - 1);
  if (f)
    fclose(f);
  mid[strcspn(mid, "\n")] = '\0';
  if (asprintf(&r->h.home, "%s:%s", mid, r->o.home) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  return 0;
}

static void say(berth_host_runner *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
say(berth_host_runner *r, const char *fmt, ...)
{
  if (r->o.say == NULL)
    return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  r->o.say(r->o.userdata, line);
}

/* Says an error, unless one was said less than SAY_AGAIN_MS ago. */
static void
say_error(berth_host_runner *r, const char *what, berth_error *e)
{
  int64_t now = berth_now_ms();
  if (now - r->last_said < SAY_AGAIN_MS)
    return;
  r->last_said = now;
  say(r, "host %s: %s: %s", r->h.name, what, e ? e->msg : "unknown error");
}

/* Is task id run by a thread of this host that has not ended? */
static bool
running_here(berth_host_runner *r, const char *id)
{
  bool yes = false;
  pthread_mutex_lock(&r->mu);
  for (size_t i = 0; i < r->n_kids && !yes; i++)
    yes = !atomic_load(&r->kids[i]->done) && strcmp(r->kids[i]->task_id, id) == 0;
  pthread_mutex_unlock(&r->mu);
  return yes;
}

/* Removes the containers carrying label (and this store's instance): those a task's thread could not end; with
 * spare_running, not those of a task a thread of this host runs (a claimed task's thread is listed before it makes
 * its container, and a task is claimed once: no container of a task not listed can be one in use). Returns how many.
 */
static int
remove_labelled(berth_host_runner *r, const char *label, bool spare_running)
{
  berth_docker *d = NULL;
  berth_error *e = NULL;
  if (berth_docker_new(NULL, &d, &e) < 0) {
    berth_error_free(e);
    return 0;
  }
  char li[160];
  snprintf(li, sizeof li, "berth.instance=%s", r->store_id);
  const char *labels[] = { label, li };
  cJSON *list = NULL, *it;
  int n = 0;
  if (berth_docker_container_list(d, labels, 2, &list, &e) == 0) {
    cJSON_ArrayForEach(it, list)
    {
      cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "Id");
      cJSON *task = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(it, "Labels"), "berth.task");
      if (spare_running && (!cJSON_IsString(task) || running_here(r, task->valuestring)))
        continue;
      if (cJSON_IsString(id) && berth_docker_container_remove(d, id->valuestring, &e) == 0)
        n++;
      berth_error_clear(&e);
    }
  }
  berth_error_free(e);
  cJSON_Delete(list);
  berth_docker_free(d);
  return n;
}

/* The containers of this host (labelled with its name): all of them when it starts or rejoins (a previous run died with
 * its tasks: leftovers), or, while it runs (strays), those of tasks whose threads have ended (a task's end removes its
 * container, unless Docker was away then; every SWEEP_MS, in a thread of its own: sweep_main). */
static void
remove_own(berth_host_runner *r, bool strays)
{
  char lh[160];
  snprintf(lh, sizeof lh, "berth.host=%s", r->h.name);
  int n = remove_labelled(r, lh, strays);
  if (n > 0)
    say(r, "host %s: removed %d container(s) %s", r->h.name, n,
        strays ? "of ended tasks (Docker was away when they ended)" : "left behind by its previous run");
}

/* ---- the tasks' threads ---- */

static berth_store *
take_store(berth_host_runner *r, berth_error **err)
{
  berth_store *st = NULL;
  pthread_mutex_lock(&r->mu);
  if (r->n_idle > 0)
    st = r->idle[--r->n_idle];
  pthread_mutex_unlock(&r->mu);
  if (st == NULL && berth_store_open(r->o.home, &st, err) < 0)
    return NULL;
  return st;
}

static void
give_store(berth_host_runner *r, berth_store *st)
{
  pthread_mutex_lock(&r->mu);
  if (berth_store_in_transaction(st) || (int) r->n_idle >= r->h.slots) {
    pthread_mutex_unlock(&r->mu);
    berth_store_close(st);
    return;
  }
  r->idle[r->n_idle++] = st;
  pthread_mutex_unlock(&r->mu);
}

/* ---- liveness: the counter the containers of this host's tasks watch ----
 * Written every ALIVE_MS by a thread that touches neither the store nor Docker, so only the process's death or a
 * freeze stops it (a database outage does not: the fleet rides through those). A container whose counter stays the
 * same for alive_limit_s ends itself: after a lease minus a heartbeat round and 2 s at most, before the others can
 * declare this host lost (a lease after its last heartbeat) and its stacks' next tasks start. */
#define ALIVE_MS 500

static void *
alive_main(void *arg)
{
  berth_host_runner *r = arg;
  unsigned long long n = 0;
  while (!atomic_load(&r->alive_stop)) {
    char line[24];
    snprintf(line, sizeof line, "%020llu\n", ++n); /* one size: written in place, never read half-changed in size */
    if (pwrite(r->alive_fd, line, 21, 0) < 0) {    /* a full disk: the containers end as its host would have */
    }
    struct timespec ts = { 0, ALIVE_MS * 1000000L };
    nanosleep(&ts, NULL);
  }
  return NULL;
}

/* Only with a Docker of this machine (a Unix socket): a remote daemon would not see the file. Written in place, never
 * replaced: a container bound to the file sees the same file as long as it runs. */
static void
start_alive(berth_host_runner *r)
{
  const char *dh = getenv("DOCKER_HOST");
  if (dh != NULL && *dh != '\0' && strncmp(dh, "unix://", 7) != 0)
    return;
  int64_t beat = r->h.lease_ms / 6 > 250 ? r->h.lease_ms / 6 : 250;
  int limit = (int) ((r->h.lease_ms - beat) / 1000) - 2;
  r->alive_limit_s = limit < 3 ? 3 : limit;
  /* one file per run of the host: the containers of a previous run (its tasks failed as this one registered) watch a
   * file no one writes any more, and end; that run's file is removed (a container keeps the file it was bound to) */
  char prefix[512];
  snprintf(prefix, sizeof prefix, "host-%s.%s.", r->h.name, r->store_id);
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/run", r->o.home);
  DIR *d = opendir(dir);
  for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
    size_t n = strlen(e->d_name);
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && n > 6 && strcmp(e->d_name + n - 6, ".alive") == 0)
      unlinkat(dirfd(d), e->d_name, 0);
  }
  if (d != NULL)
    closedir(d);
  if (asprintf(&r->alive_path, "%s/%s%s.alive", dir, prefix, r->h.instance) < 0) {
    r->alive_path = NULL;
    return;
  }
  /* a bind is "SOURCE:TARGET:ro": a path with a colon cannot be one */
  r->alive_fd = strchr(r->alive_path, ':') ? -1 : open(r->alive_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (r->alive_fd >= 0)
    fchmod(r->alive_fd, 0644); /* read by the containers' users, whoever they are */
  if (r->alive_fd >= 0 && pthread_create(&r->alive_thread, NULL, alive_main, r) == 0) {
    r->alive_started = true;
    return;
  }
  if (r->alive_fd >= 0) {
    close(r->alive_fd);
    r->alive_fd = -1;
  }
  say(r, "host %s: no liveness file (%s): its tasks' containers do not end with it", r->h.name, r->alive_path);
  free(r->alive_path);
  r->alive_path = NULL;
}

/* The sweep of its ended tasks' containers, in a thread of its own: its Docker calls may take long (a daemon that
 * answers its ping but hangs on a list or a removal), and the host's thread must go on heartbeating meanwhile. */
static void *
sweep_main(void *arg)
{
  berth_host_runner *r = arg;
  for (int64_t waited = 0; !atomic_load(&r->alive_stop);) {
    struct timespec ts = { 0, ALIVE_MS * 1000000L };
    nanosleep(&ts, NULL);
    if ((waited += ALIVE_MS) >= SWEEP_MS) {
      remove_own(r, true);
      waited = 0;
    }
  }
  return NULL;
}

static void
stop_alive(berth_host_runner *r)
{
  atomic_store(&r->alive_stop, true);
  if (r->alive_started)
    pthread_join(r->alive_thread, NULL);
  if (r->sweep_started)
    pthread_join(r->sweep_thread, NULL);
  if (r->alive_fd >= 0)
    close(r->alive_fd);
  free(r->alive_path);
}

static void *
worker_main(void *arg)
{
  worker *w = arg;
  berth_store *st = take_store(w->r, &w->err);
  w->rc = st == NULL ? BERTH_EINTERNAL : berth_task_supervise_ctl(st, w->task_id, &w->ctl, &w->err);
  if (st != NULL)
    give_store(w->r, st);
  atomic_store(&w->done, true);
  uint64_t one = 1;
  if (write(w->r->wake, &one, sizeof one) < 0) { /* the loop also looks every 500 ms */
  }
  return NULL;
}

static void
worker_free(worker *w)
{
  free(w->task_id);
  berth_error_free(w->err);
  free(w);
}

static const char *
phase_state(int phase)
{
  switch (phase) {
  case BERTH_PHASE_INITIALIZING:
    return "INITIALIZING";
  case BERTH_PHASE_PERFORMING:
    return "PERFORMING";
  case BERTH_PHASE_FINISHING:
    return "FINISHING";
  default:
    return "PREPARING";
  }
}

/* Fails a task still active under this host's claim, with why; true when that is settled (failed now, or already
 * over, or no longer this host's), false when the store did not answer (try again later). */
static bool
fail_unended(berth_host_runner *r, const char *id, const char *note, bool say_why)
{
  if (r->st == NULL)
    return false;
  berth_task *t = NULL;
  berth_error *e = NULL;
  bool settled = true;
  if (berth_store_task_get(r->st, id, &t, &e) < 0) {
    settled = e != NULL && e->code == BERTH_ENOTFOUND;
  } else if (!berth_task_state_is_terminal(t->state) && t->host && strcmp(t->host, r->h.name) == 0) {
    berth_error_clear(&e);
    if (berth_action_task_transition(r->st, t->id, "FAILED", "berth", note, "executor interrupted", -1, &e) < 0) {
      berth_task *now = NULL; /* refused because it ended meanwhile, or the store failed */
      berth_error *ge = NULL;
      settled = berth_store_task_get(r->st, id, &now, &ge) == 0 && berth_task_state_is_terminal(now->state);
      berth_task_free(now);
      berth_error_free(ge);
      if (!settled && say_why)
        say_error(r, "record a task's end (trying again)", e);
      berth_error_clear(&e);
    }
    char lt[128]; /* what the runner would have removed */
    snprintf(lt, sizeof lt, "berth.task=%s", id);
    remove_labelled(r, lt, false);
  }
  berth_error_free(e);
  berth_task_free(t);
  return settled;
}

/* A task's thread ended (joined): a task still active under this host's claim is failed, with why: its thread could
 * not run it (or could not write its end), or the host gave it up (a shutdown). A task given up for a lost lease was
 * failed by the fleet already. Where the store does not answer now, the task is failed once it does
 * (retry_unended). */
static void
end_kid(berth_host_runner *r, worker *w)
{
  bool abandoned = atomic_load(&w->ctl.abandon);
  if (w->rc >= 0 && !abandoned)
    return;
  char note[160];
  if (abandoned)
    snprintf(note, sizeof note, "host %s shut down before the task ended", r->h.name);
  else {
    snprintf(note, sizeof note, "its executor could not run it");
    say(r, "host %s: task %s could not run: %s", r->h.name, w->task_id, w->err ? w->err->msg : "unknown error");
  }
  if (!fail_unended(r, w->task_id, note, true)) {
    char *entry = NULL;
    if (asprintf(&entry, "%s %s", w->task_id, note) >= 0)
      berth_strv_push(&r->unended, entry);
    free(entry);
  }
}

/* The tasks end_kid could not fail while the store was down. */
static void
retry_unended(berth_host_runner *r)
{
  for (size_t i = 0; i < r->unended.n;) {
    char *entry = r->unended.v[i], *sp = strchr(entry, ' ');
    if (sp != NULL)
      *sp = '\0';
    bool settled = fail_unended(r, entry, sp ? sp + 1 : "its executor could not run it", false);
    if (sp != NULL)
      *sp = ' ';
    if (!settled) {
      i++;
      continue;
    }
    free(entry);
    r->unended.v[i] = r->unended.v[--r->unended.n];
  }
}

/* Threads that ended. */
static void
check_kids(berth_host_runner *r)
{
  uint64_t n;
  if (read(r->wake, &n, sizeof n) < 0) { /* nothing ended since the last look (EAGAIN) */
  }
  for (;;) {
    worker *w = NULL;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n_kids && w == NULL; i++)
      if (atomic_load(&r->kids[i]->done)) {
        w = r->kids[i];
        r->kids[i] = r->kids[--r->n_kids];
      }
    pthread_mutex_unlock(&r->mu);
    if (w == NULL)
      return;
    pthread_join(w->thread, NULL);
    end_kid(r, w);
    worker_free(w);
  }
}

/* Gives up the tasks' threads (all, or those not PERFORMING yet): each ends its container and writes nothing more.
 * Returns how many threads still run a task that is not given up. */
static int
abandon_kids(berth_host_runner *r, bool all, bool say_each)
{
  int left = 0;
  pthread_mutex_lock(&r->mu);
  for (size_t i = 0; i < r->n_kids; i++) {
    worker *w = r->kids[i];
    if (atomic_load(&w->done) || atomic_load(&w->ctl.abandon))
      continue;
    int phase = atomic_load(&w->ctl.phase);
    /* a task past its command (after_run hooks, its end being written) is PERFORMING in its record: it finishes too */
    if (all || (phase != BERTH_PHASE_PERFORMING && phase != BERTH_PHASE_FINISHING)) {
      if (say_each)
        say(r, "shutting down: task %s (%s) is interrupted", w->task_id, phase_state(phase));
      atomic_store(&w->ctl.abandon, true);
    } else
      left++;
  }
  pthread_mutex_unlock(&r->mu);
  return left;
}

static int
open_store(berth_host_runner *r, berth_error **err)
{
  if (r->st != NULL)
    return 0;
  r->listening = false;
  if (berth_store_open(r->o.home, &r->st, err) < 0)
    return BERTH_EINTERNAL;
  if (berth_fleet_listen(r->st, err) < 0) {
    berth_store_close(r->st);
    r->st = NULL;
    return BERTH_EINTERNAL;
  }
  r->listening = true;
  return 0;
}

/* This instance is no longer the host's (declared lost while it was stopped or cut off): whatever it still runs was
 * failed by the fleet. Its threads end their containers and write nothing; then it registers again as a new instance.
 */
static void
rejoin(berth_host_runner *r)
{
  say(r,
      "host %s lost its lease (no heartbeat in time): its tasks were failed by the fleet; ending their "
      "containers and registering again",
      r->h.name);
  abandon_kids(r, true, false);
  remove_own(r, false);
  berth_error *e = NULL;
  if (berth_host_register(r->st, &r->h, &e) < 0)
    say_error(r, "register again", e);
  else {
    r->last_beat_ok = berth_now_ms();
    r->draining = r->h.state && strcmp(r->h.state, "draining") == 0;
  }
  berth_error_free(e);
}

static void
heartbeat(berth_host_runner *r)
{
  berth_error *e = NULL;
  /* its Docker as last asked (not asked yet: said to answer) */
  int rc = berth_host_heartbeat(r->st, r->h.name, r->h.instance, r->docker_checked == 0 || r->docker_ok, &r->draining,
                                &r->beat_at, &e);
  if (rc == 0) {
    int64_t now = berth_now_ms();
    if (r->last_said != 0 && now - r->last_beat_ok > r->h.lease_ms / 3)
      say(r, "host %s: the store answers again", r->h.name);
    /* a store that stalled rather than failed (a hung server or network) answers late: heartbeats lease/6 apart
     * that come more than half a lease apart start a new run of answers as a failure would */
    if (r->store_ok_since == 0 || now - r->last_beat_ok > r->h.lease_ms / 2)
      r->store_ok_since = now;
    r->last_beat_ok = now;
    r->last_said = 0;
  } else if (rc == BERTH_EBUSY) {
    rejoin(r);
  } else {
    say_error(r, "heartbeat failed (retrying)", e);
    berth_store_close(r->st); /* a restarted database: reconnect on the next round */
    r->st = NULL;
    r->store_ok_since = 0;
  }
  berth_error_free(e);
}

/* Starts or stops listening on the queue channel (berth_fleet_hear); 0 when done. */
static int
hear(berth_host_runner *r, bool on)
{
  berth_error *e = NULL;
  int rc = berth_fleet_hear(r->st, on, &e);
  if (rc == 0)
    r->listening = on;
  berth_error_free(e); /* a connection that failed is remade by the loop; the poll stands in meanwhile */
  return rc;
}

/* Whether this host's Docker answers, asked at most every 2 s: a host whose Docker is down would claim the queue
 * and fail every task it claims, work that a host with a Docker would have run. */
static bool
docker_usable(berth_host_runner *r)
{
  int64_t now = berth_now_ms();
  if (now - r->docker_checked < 2000)
    return r->docker_ok;
  r->docker_checked = now;
  berth_error *e = NULL;
  if (r->docker == NULL && berth_docker_new(NULL, &r->docker, &e) < 0)
    r->docker = NULL;
  r->docker_ok = r->docker != NULL && berth_docker_alive(r->docker);
  if (!r->docker_ok && !r->docker_said) {
    say(r, "host %s: its Docker daemon does not answer (%s): claiming nothing until it does", r->h.name,
        e ? e->msg : "GET /_ping failed");
    r->docker_said = true;
  } else if (r->docker_ok && r->docker_said) {
    say(r, "host %s: its Docker daemon answers again: claiming", r->h.name);
    r->docker_said = false;
  }
  berth_error_free(e);
  return r->docker_ok;
}

static void
claim_some(berth_host_runner *r)
{
  if (!r->o.execute || r->draining || !atomic_load(&r->claiming))
    return;
  if ((int) r->n_kids < r->h.slots && !docker_usable(r))
    return;
  while ((int) r->n_kids < r->h.slots && !atomic_load(&r->ending)) {
    berth_task *t = NULL;
    berth_error *e = NULL;
    if (berth_fleet_claim(r->st, r->h.name, &r->h.pools, &t, &e) < 0) {
      /* a race the store settled (another host, the one-active-task index): the next round tries again */
      berth_error_free(e);
      return;
    }
    if (t == NULL) {
      /* nothing to claim: hear of new work from now on, and look once more for what came before we listened */
      if (!r->listening && hear(r, true) == 0)
        continue;
      return;
    }
    worker *w = calloc(1, sizeof *w);
    pthread_mutex_lock(&r->mu); /* the shutdown's thread reads the array (berth_host_interrupt) */
    worker **nk = w ? realloc(r->kids, (r->n_kids + 1) * sizeof *nk) : NULL;
    if (nk != NULL)
      r->kids = nk;
    pthread_mutex_unlock(&r->mu);
    bool ok = false;
    if (nk != NULL && (w->task_id = strdup(t->id)) != NULL) {
      w->r = r;
      atomic_init(&w->done, false);
      atomic_init(&w->ctl.abandon, false);
      atomic_init(&w->ctl.phase, BERTH_PHASE_PREPARING);
      w->ctl.alive_path = r->alive_path;
      w->ctl.alive_limit_s = r->alive_limit_s;
      pthread_mutex_lock(&r->mu);
      ok = pthread_create(&w->thread, NULL, worker_main, w) == 0;
      if (ok)
        r->kids[r->n_kids++] = w;
      pthread_mutex_unlock(&r->mu);
    }
    if (!ok) {
      if (w != NULL)
        worker_free(w);
      say(r, "host %s: cannot start a thread for task %s", r->h.name, t->id);
      berth_action_task_transition(r->st, t->id, "FAILED", "berth", "could not start its executor",
                                   "executor interrupted", -1, &e);
    }
    berth_error_free(e);
    berth_task_free(t);
  }
  /* every slot busy: this host wakes as its own tasks end (its eventfd) and claims then, so it needs no NOTIFY of
   * others' work until a claim finds nothing; each NOTIFY would wake its loop and its connection's backend */
  if (r->listening && (int) r->n_kids >= r->h.slots)
    hear(r, false);
}

static void *
host_main(void *arg)
{
  berth_host_runner *r = arg;
  int64_t beat_every = r->h.lease_ms / 6 > 250 ? r->h.lease_ms / 6 : 250;
  /* the others reconnect every REOPEN_MS and heartbeat at once: a short lease still waits for two of their rounds */
  int64_t reap_after = r->h.lease_ms > 2 * REOPEN_MS + 1000 ? r->h.lease_ms : 2 * REOPEN_MS + 1000;
  int64_t next_beat = berth_now_ms() + beat_every, next_reap = 0, next_open = 0, last_claim = 0;
  bool shown_stopping = false; /* the store shows this host draining since it stopped claiming (SIGTERM) */
  bool woken = true;           /* by a NOTIFY, a task's end, an undrain, or a new connection: look at the queue now */
  while (!atomic_load(&r->ending)) {
    int64_t now = berth_now_ms();
    if (r->st == NULL) {
      berth_error *e = NULL;
      if (now >= next_open && open_store(r, &e) < 0) {
        say_error(r, "the store is unreachable (retrying)", e);
        next_open = now + REOPEN_MS;
      }
      berth_error_free(e);
      if (r->st == NULL) {
        struct timespec ts = { 0, 200 * 1000000L };
        nanosleep(&ts, NULL);
        continue;
      }
      next_beat = now; /* at once: the lease may be nearly out */
      woken = true;
    }
    if (now >= next_beat) {
      bool was_draining = r->draining;
      heartbeat(r);
      /* undrained while it shuts down (the store read after it showed itself draining): it shows draining again */
      if (!atomic_load(&r->claiming) && shown_stopping && r->st != NULL && !r->draining)
        shown_stopping = false;
      if (was_draining && !r->draining)
        woken = true;
      /* an admin's drain or undrain, in the host's own log (its own shutdown shows draining too: not said) */
      if (r->st != NULL && was_draining != r->draining && atomic_load(&r->claiming) && r->o.execute)
        say(r,
            r->draining ? "host %s drained: it claims no new task (its running tasks finish)"
                        : "host %s undrained: it claims tasks again",
            r->h.name);
      /* a drained host looks every second for its undrain (an admin waits for it), else every lease/6 */
      next_beat = now + (r->draining && beat_every > 1000 ? 1000 : beat_every);
      if (r->st == NULL)
        continue;
    }
    if (!atomic_load(&r->claiming) && !shown_stopping) {
      /* shutting down (SIGTERM): the fleet sees it draining, and queued work says it waits for another host */
      berth_error *e = NULL;
      shown_stopping = berth_host_set_draining(r->st, r->h.name, true, false, &e) == 0;
      berth_error_free(e);
    }
    /* lost hosts are looked for once this host's store has answered for a whole lease: after the database was down
     * (restarted, failed over, cut off), every host's last heartbeat is older than its lease, and each gets the
     * time to renew it before any is declared lost (its tasks would be failed while they run on) */
    if (now >= next_reap && r->store_ok_since != 0 && now - r->store_ok_since >= reap_after) {
      berth_error *e = NULL;
      int n = 0;
      if (berth_fleet_reap(r->st, r->beat_at, r->h.lease_ms / 2, &n, &e) < 0)
        say_error(r, "look for lost hosts", e);
      else if (n > 0)
        say(r, "host %s: failed %d task(s) of lost hosts (host lost)", r->h.name, n);
      berth_error_free(e);
      next_reap = now + beat_every;
    }
    check_kids(r);
    if (r->unended.n > 0)
      retry_unended(r);
    /* a host cut off longer than its lease must not start anything: the fleet may have failed its tasks already */
    if (berth_now_ms() - r->last_beat_ok < r->h.lease_ms
        && (woken || !r->listening || berth_now_ms() - last_claim >= IDLE_CLAIM_MS)) {
      claim_some(r);
      last_claim = berth_now_ms();
    }
    int64_t wait = next_beat - berth_now_ms();
    if (wait > 500)
      wait = 500; /* the loop also watches its tasks' threads (at once, through the eventfd) and its stop flag */
    int heard = wait > 0 ? berth_fleet_wait_fds(r->st, (int) wait, &r->wake, 1) : 0;
    if (heard < 0) { /* its connection died: the database restarted, or is cut off */
      berth_store_close(r->st);
      r->st = NULL;
      r->store_ok_since = 0;
    }
    woken = heard > 0;
  }
  return NULL;
}

int
berth_host_start(const berth_host_opts *o, berth_host_runner **out, berth_error **err)
{
  berth_host_runner *r = calloc(1, sizeof *r);
  if (r == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  r->o = *o;
  r->home_lock = -1;
  r->alive_fd = -1;
  pthread_mutex_init(&r->mu, NULL);
  r->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  r->idle = calloc((size_t) (o->slots > 0 ? o->slots : 1), sizeof *r->idle);
  r->h.name = strdup(o->name);
  r->h.slots = o->slots > 0 ? o->slots : 1;
  r->h.lease_ms = o->lease_ms > 0 ? o->lease_ms : BERTH_DEFAULT_LEASE_MS;
  r->h.executes = o->execute;
  r->h.drained = o->drained;
  atomic_init(&r->ending, false);
  atomic_init(&r->claiming, true);
  int rc = r->h.name == NULL || r->idle == NULL ? berth_error_set(err, BERTH_EINTERNAL, "out of memory")
           : r->wake < 0                        ? berth_error_set_errno(err, BERTH_EINTERNAL, errno, "eventfd")
                                                : 0;
  for (size_t i = 0; rc == 0 && i < o->pools->n; i++)
    if (berth_strv_push(&r->h.pools, o->pools->v[i]) < 0)
      rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (rc == 0 && r->h.pools.n == 0 && berth_strv_push(&r->h.pools, BERTH_DEFAULT_POOL) < 0)
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (rc == 0)
    rc = open_store(r, err);
  if (rc == 0)
    rc = lock_home(r, err);
  if (rc == 0) {
    snprintf(r->store_id, sizeof r->store_id, "%s", berth_store_instance_id(r->st));
    rc = berth_host_register(r->st, &r->h, err);
  }
  if (rc == 0 && o->execute) {
    atomic_init(&r->alive_stop, false);
    start_alive(r);
    r->sweep_started = pthread_create(&r->sweep_thread, NULL, sweep_main, r) == 0;
  }
  if (rc == 0) {
    r->last_beat_ok = r->store_ok_since = berth_now_ms();
    /* an admin's drain outlives a restart: it claims nothing until undrained */
    r->draining = r->started_drained = r->h.state && strcmp(r->h.state, "draining") == 0;
    r->h.drained = false; /* --drained is for this start: a later register (after a lost lease) keeps an undrain */
    if (r->draining && o->execute)
      say(r, "host %s is drained: it claims no task until `berth host undrain %s`", r->h.name, r->h.name);
    if (o->execute)
      remove_own(r, false);
    if (pthread_create(&r->thread, NULL, host_main, r) != 0)
      rc = berth_error_set(err, BERTH_EINTERNAL, "start the host thread");
    else
      r->started = true;
  }
  if (rc < 0) {
    berth_host_stop(r);
    return rc;
  }
  *out = r;
  return 0;
}

const char *
berth_host_instance(const berth_host_runner *r)
{
  return r->h.instance;
}

bool
berth_host_started_drained(const berth_host_runner *r)
{
  return r->started_drained;
}

void
berth_host_stop_claiming(berth_host_runner *r)
{
  if (r == NULL)
    return;
  atomic_store(&r->claiming, false);
  uint64_t one = 1;
  if (write(r->wake, &one, sizeof one) < 0) { /* the loop looks every 500 ms anyway */
  }
}

int
berth_host_interrupt(berth_host_runner *r, bool all)
{
  return r == NULL ? 0 : abandon_kids(r, all, true);
}

void
berth_host_stop(berth_host_runner *r)
{
  if (r == NULL)
    return;
  atomic_store(&r->ending, true);
  if (r->started)
    pthread_join(r->thread, NULL);
  /* the tasks' threads: what still runs is given up (its container ended), and failed below as the host leaves */
  abandon_kids(r, true, false);
  for (size_t i = 0; i < r->n_kids; i++) {
    pthread_join(r->kids[i]->thread, NULL);
    end_kid(r, r->kids[i]);
    worker_free(r->kids[i]);
  }
  r->n_kids = 0;
  stop_alive(r);    /* no task's container runs any more */
  retry_unended(r); /* once more; what is left is failed by the fleet when this host's lease runs out */
  berth_strv_clear(&r->unended);
  if (r->st != NULL && r->h.instance != NULL) {
    berth_error *e = NULL;
    if (berth_host_deregister(r->st, r->h.name, r->h.instance, &e) < 0)
      say_error(r, "deregister", e);
    berth_error_free(e);
  }
  free(r->kids);
  for (size_t i = 0; i < r->n_idle; i++)
    berth_store_close(r->idle[i]);
  free(r->idle);
  if (r->wake >= 0)
    close(r->wake);
  berth_docker_free(r->docker);
  pthread_mutex_destroy(&r->mu);
  berth_store_close(r->st);
  free(r->h.name);
  free(r->h.instance);
  free(r->h.home);
  if (r->home_lock >= 0)
    close(r->home_lock);
  berth_strv_clear(&r->h.pools);
  free(r);
}
