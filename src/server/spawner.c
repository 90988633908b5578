/* The spawner: a few long-lived threads that run every task submission of the server.
 *
 * Supervisors are started with die_with_parent (PR_SET_PDEATHSIG), and the kernel sends that signal when the
 * THREAD that forked the child exits, not the process. Connection threads come and go with their clients, so they
 * must never fork a supervisor; these threads live as long as the server, so a server crash (and only that) takes
 * the supervisors down, and the restart sweep records their tasks as interrupted.
 *
 * On a SQLite store a queued task does not get its supervisor at submission: the server holds the task's liveness
 * lock (so no sweep takes it for abandoned) and one more thread, the pacer, starts supervisors in submission order,
 * at most AHEAD at once per stack: the one whose task runs and the next, already waiting for its turn. The lock is
 * handed to the supervisor held (berth_supervisor_start_holding). A burst of submissions then costs a transaction
 * each, not a process each that starts, links and writes the store while the others wait on the same write lock.
 * (On PostgreSQL the fleet's host loop claims queued tasks instead.) */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "berth/actions.h"
#include "berth/task_queue.h"

#include "server.h"

typedef struct job {
  const berth_submit *req;
  berth_task *task;
  berth_error *err;
  int rc;
  bool done;
  struct job *next;
} job;

#define SPAWNER_THREADS 4 /* submissions check Docker and fsync the store: a few run side by side */
#define BATCH_MAX 16      /* submissions recorded in one transaction */
#define AHEAD 2           /* supervisors alive per stack: the running task's and the next one's */

typedef struct waiting { /* a queued task whose supervisor is not started yet; the server holds its lock (fd) */
  char *task_id, *stack;
  int64_t seq; /* the store's queue order */
  int fd;
  struct waiting *next;
} waiting;

typedef struct started { /* a supervisor the pacer started */
  int pid, pidfd;        /* pidfd readable once it ended (-1: kill(pid, 0) polled) */
  char *stack;
  int64_t seq;
} started;

struct srv_spawner {
  char *home;
  pthread_t threads[SPAWNER_THREADS];
  size_t n_threads;
  pthread_mutex_t mu;
  pthread_mutex_t batch_mu; /* held while a batch is taken and recorded */
  pthread_cond_t cond;      /* jobs queued, job done, or closing */
  job *head, *tail;
  bool closed; /* no new jobs, no new supervisors */
  bool ending; /* the thread should exit */
  const char *const *supervisor_argv;
  waiting *wq, *wq_tail; /* FIFO, under mu */
  int wake;              /* eventfd: the pacer has work */
  pthread_t pacer;
  bool pacer_started;
  started *run; /* the pacer's own */
  size_t n_run;
};

static void
waiting_free(waiting *w)
{
  if (w->fd >= 0)
    close(w->fd);
  free(w->task_id);
  free(w->stack);
  free(w);
}

static void
wake_pacer(srv_spawner *sp)
{
  uint64_t one = 1;
  ssize_t n = write(sp->wake, &one, sizeof one);
  (void) n;
}

/* After a submission on a SQLite store: the server holds the task's liveness lock and queues it for the pacer. */
static int
hand_to_pacer(srv_spawner *sp, const berth_task *t, berth_error **err)
{
  waiting *w = calloc(1, sizeof *w);
  if (w == NULL || (w->task_id = strdup(t->id)) == NULL || (w->stack = strdup(t->stack)) == NULL) {
    if (w)
      free(w->task_id);
    free(w);
    return berth_error_set(err, BERTH_EINTERNAL, "queue task %s: out of memory", t->id);
  }
  w->fd = -1;
  int rc = berth_task_hold(sp->home, t->id, &w->fd, err);
  if (rc < 0) {
    waiting_free(w);
    return rc;
  }
  w->seq = t->seq;
  /* in the store's order, which is not always the order the spawner threads get here in */
  pthread_mutex_lock(&sp->mu);
  waiting **at = &sp->wq;
  if (sp->wq_tail != NULL && sp->wq_tail->seq < w->seq)
    at = &sp->wq_tail->next;
  while (*at != NULL && (*at)->seq < w->seq)
    at = &(*at)->next;
  w->next = *at;
  *at = w;
  if (w->next == NULL)
    sp->wq_tail = w;
  pthread_mutex_unlock(&sp->mu);
  wake_pacer(sp);
  return 0;
}

static void *
spawner_main(void *arg)
{
  srv_spawner *sp = arg;
  berth_store *st = NULL;
  berth_error *oe = NULL;
  pthread_mutex_lock(&sp->mu);
  for (;;) {
    while (sp->head == NULL && !sp->ending)
      pthread_cond_wait(&sp->cond, &sp->mu);
    if (sp->head == NULL && sp->ending)
      break;
    pthread_mutex_unlock(&sp->mu);
    int orc = st == NULL ? berth_store_open(sp->home, &st, &oe) : 0;
    bool pace = orc == 0 && !berth_store_is_shared(st) && sp->pacer_started;
    /* what waits now, BATCH_MAX at most, recorded together (pacing: one commit for a burst) */
    job *batch[BATCH_MAX];
    size_t n = 0;
    /* one batch recorded at a time: while it commits, the next burst gathers for the thread that waits here (the
     * store has one writer anyway; this way the writer commits many at once, not one of four threads each) */
    if (pace)
      pthread_mutex_lock(&sp->batch_mu);
    pthread_mutex_lock(&sp->mu);
    while (sp->head != NULL && n < (pace ? BATCH_MAX : 1)) {
      batch[n++] = sp->head;
      sp->head = sp->head->next;
    }
    if (sp->head == NULL)
      sp->tail = NULL;
    pthread_mutex_unlock(&sp->mu);
    if (pace && n == 0)
      pthread_mutex_unlock(&sp->batch_mu); /* another thread took them all */
    else if (orc < 0) {
      for (size_t i = 0; i < n; i++) {
        batch[i]->rc = orc;
        berth_error_set(&batch[i]->err, oe->code, "%s", oe->msg);
      }
      berth_error_clear(&oe);
    } else if (!pace) {
      for (size_t i = 0; i < n; i++)
        batch[i]->rc = berth_task_submit(st, batch[i]->req, &batch[i]->task, &batch[i]->err);
    } else {
      berth_submit reqs[BATCH_MAX];
      const berth_submit *rp[BATCH_MAX];
      berth_task *outs[BATCH_MAX];
      int rcs[BATCH_MAX];
      berth_error *errs[BATCH_MAX];
      for (size_t i = 0; i < n; i++) {
        reqs[i] = *batch[i]->req;
        reqs[i].supervisor_argv = NULL; /* recorded only: the pacer starts its supervisor */
        rp[i] = &reqs[i];
      }
      berth_task_submit_many(st, rp, n, outs, rcs, errs);
      pthread_mutex_unlock(&sp->batch_mu);
      for (size_t i = 0; i < n; i++) {
        job *j = batch[i];
        j->rc = rcs[i], j->task = outs[i], j->err = errs[i];
        if (j->rc < 0 || j->req->supervisor_argv == NULL || hand_to_pacer(sp, j->task, &j->err) == 0)
          continue;
        berth_error_clear(&j->err); /* cannot hold its lock: start it now */
        j->rc = berth_supervisor_spawn(j->req->supervisor_argv, sp->home, j->task->id, true, &j->err);
        if (j->rc < 0) {
          berth_error *e2 = NULL;
          berth_action_task_transition(st, j->task->id, "FAILED", "berth", "could not start its supervisor",
                                       "executor interrupted", -1, &e2);
          berth_error_free(e2);
          berth_task_free(j->task);
          j->task = NULL;
        }
      }
    }
    pthread_mutex_lock(&sp->mu);
    for (size_t i = 0; i < n; i++)
      batch[i]->done = true;
    pthread_cond_broadcast(&sp->cond);
  }
  pthread_mutex_unlock(&sp->mu);
  berth_store_close(st);
  return NULL;
}

/* Whether k's supervisor ended, reaping it. Only the supervisors are reaped here, by their pid: the server's other
 * threads wait for children of their own (a fleet host's task thread for its credential helper), whose exit status a
 * waitpid(-1) in this process would take from them. */
static bool
run_ended(const started *k)
{
  pid_t w = waitpid(k->pid, NULL, WNOHANG);
  return w == k->pid || (w < 0 && errno == ECHILD);
}

/* Whether w's supervisor may start: fewer than AHEAD on its stack, or w is ahead of one of them in the queue (that
 * one waits for w's turn to end: w must get a supervisor, or the stack would wait forever). */
static bool
may_start(const srv_spawner *sp, const waiting *w)
{
  size_t n = 0;
  for (size_t i = 0; i < sp->n_run; i++) {
    if (strcmp(sp->run[i].stack, w->stack) != 0)
      continue;
    if (sp->run[i].seq > w->seq)
      return true;
    n++;
  }
  return n < AHEAD;
}

/* Starts w's supervisor, handing it the lock; a task ended while it waited (canceled) needs none. */
static void
start_one(srv_spawner *sp, berth_store **st, waiting *w)
{
  berth_error *e = NULL;
  berth_task *t = NULL;
  if (*st == NULL && berth_store_open(sp->home, st, &e) < 0)
    berth_error_clear(&e);
  bool over
      = *st != NULL && berth_store_task_get(*st, w->task_id, &t, &e) == 0 && berth_task_state_is_terminal(t->state);
  berth_task_free(t);
  berth_error_clear(&e);
  started *nr = over ? NULL : realloc(sp->run, (sp->n_run + 1) * sizeof *nr);
  int pid = 0;
  if (nr != NULL) {
    sp->run = nr;
    berth_supervisor_start_holding(sp->supervisor_argv, sp->home, w->task_id, w->fd, &pid, &e);
  }
  if (!over && pid <= 0) {
    fprintf(stderr, "berth: task %s: %s\n", w->task_id, e ? e->msg : "cannot start its supervisor: out of memory");
    berth_error_clear(&e);
    if (*st != NULL)
      berth_action_task_transition(*st, w->task_id, "FAILED", "berth", "could not start its supervisor",
                                   "executor interrupted", -1, &e);
  } else if (pid > 0) {
    started *k = &sp->run[sp->n_run];
    k->pid = pid;
#ifdef SYS_pidfd_open
    k->pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
#else
    k->pidfd = -1;
#endif
    k->stack = w->stack;
    k->seq = w->seq;
    w->stack = NULL;
    sp->n_run++;
  }
  berth_error_free(e);
  waiting_free(w); /* our copy of the lock: the supervisor holds it now */
}

static void *
pacer_main(void *arg)
{
  srv_spawner *sp = arg;
  berth_store *st = NULL;
  for (;;) {
    for (size_t i = 0; i < sp->n_run;) {
      if (!run_ended(&sp->run[i])) {
        i++;
        continue;
      }
      if (sp->run[i].pidfd >= 0)
        close(sp->run[i].pidfd);
      free(sp->run[i].stack);
      sp->run[i] = sp->run[--sp->n_run];
    }
    pthread_mutex_lock(&sp->mu);
    if (sp->ending) {
      pthread_mutex_unlock(&sp->mu);
      break;
    }
    /* in submission order, the first waiting task of a stack with a free place */
    waiting *prev = NULL, *w = sp->wq;
    while (!sp->closed && w != NULL) {
      if (!may_start(sp, w)) {
        prev = w;
        w = w->next;
        continue;
      }
      if (prev)
        prev->next = w->next;
      else
        sp->wq = w->next;
      if (sp->wq_tail == w)
        sp->wq_tail = prev;
      pthread_mutex_unlock(&sp->mu);
      start_one(sp, &st, w);
      pthread_mutex_lock(&sp->mu);
      /* prev is still in the list (only this thread removes), and what was appended meanwhile follows */
      w = prev ? prev->next : sp->wq;
    }
    pthread_mutex_unlock(&sp->mu);
    struct pollfd *pf = calloc(sp->n_run + 1, sizeof *pf);
    size_t n = 0;
    int timeout = 1000;
    if (pf != NULL) {
      pf[n++] = (struct pollfd){ .fd = sp->wake, .events = POLLIN };
      for (size_t i = 0; i < sp->n_run; i++) {
        if (sp->run[i].pidfd >= 0)
          pf[n++] = (struct pollfd){ .fd = sp->run[i].pidfd, .events = POLLIN };
        else
          timeout = 100;
      }
      poll(pf, n, timeout);
      uint64_t v;
      if (pf[0].revents & POLLIN) {
        ssize_t r = read(sp->wake, &v, sizeof v);
        (void) r;
      }
    } else
      usleep(100000);
    free(pf);
  }
  for (size_t i = 0; i < sp->n_run; i++) {
    if (sp->run[i].pidfd >= 0)
      close(sp->run[i].pidfd);
    free(sp->run[i].stack);
  }
  free(sp->run);
  berth_store_close(st);
  return NULL;
}

int
srv_spawner_start(const char *home, const char *const *supervisor_argv, srv_spawner **out, berth_error **err)
{
  srv_spawner *sp = calloc(1, sizeof *sp);
  if (sp == NULL || (sp->home = strdup(home)) == NULL) {
    free(sp);
    return berth_error_set(err, BERTH_EINTERNAL, "start the task spawner: out of memory");
  }
  sp->supervisor_argv = supervisor_argv;
  sp->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  pthread_mutex_init(&sp->mu, NULL);
  pthread_mutex_init(&sp->batch_mu, NULL);
  pthread_cond_init(&sp->cond, NULL);
  /* the supervisors inherit this thread's signal mask: start it with nothing blocked */
  sigset_t none, old;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, &old);
  int e = 0;
  for (size_t i = 0; i < SPAWNER_THREADS && e == 0; i++)
    if ((e = pthread_create(&sp->threads[i], NULL, spawner_main, sp)) == 0)
      sp->n_threads++;
  /* without it (no eventfd, no thread) submissions start their supervisors at once, as they used to */
  if (e == 0 && supervisor_argv != NULL && sp->wake >= 0 && pthread_create(&sp->pacer, NULL, pacer_main, sp) == 0)
    sp->pacer_started = true;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (sp->n_threads == 0) {
    sp->ending = true;
    if (sp->pacer_started) {
      wake_pacer(sp);
      pthread_join(sp->pacer, NULL);
    }
    if (sp->wake >= 0)
      close(sp->wake);
    free(sp->home);
    free(sp);
    return berth_error_set_errno(err, BERTH_EINTERNAL, e, "start the task spawner thread");
  }
  *out = sp;
  return 0;
}

int
srv_spawner_submit(srv_spawner *sp, const berth_submit *req, berth_task **out, berth_error **err)
{
  job j = { .req = req };
  pthread_mutex_lock(&sp->mu);
  if (sp->closed) {
    pthread_mutex_unlock(&sp->mu);
    return berth_error_set(err, BERTH_EBUSY, "the server is shutting down; submit the task again later");
  }
  if (sp->tail)
    sp->tail->next = &j;
  else
    sp->head = &j;
  sp->tail = &j;
  pthread_cond_broadcast(&sp->cond);
  while (!j.done)
    pthread_cond_wait(&sp->cond, &sp->mu);
  pthread_mutex_unlock(&sp->mu);
  if (j.rc < 0) {
    if (err && *err == NULL)
      *err = j.err;
    else
      berth_error_free(j.err);
    return j.rc;
  }
  *out = j.task;
  return 0;
}

void
srv_spawner_close(srv_spawner *sp)
{
  pthread_mutex_lock(&sp->mu);
  sp->closed = true;
  pthread_mutex_unlock(&sp->mu);
  if (sp->pacer_started)
    wake_pacer(sp);
}

void
srv_spawner_free(srv_spawner *sp)
{
  if (sp == NULL)
    return;
  pthread_mutex_lock(&sp->mu);
  sp->closed = true;
  sp->ending = true;
  pthread_cond_broadcast(&sp->cond);
  pthread_mutex_unlock(&sp->mu);
  for (size_t i = 0; i < sp->n_threads; i++)
    pthread_join(sp->threads[i], NULL);
  if (sp->pacer_started) {
    wake_pacer(sp);
    pthread_join(sp->pacer, NULL);
  }
  /* tasks that never got a supervisor: their locks go, and the sweep that follows records them as interrupted */
  for (waiting *w = sp->wq, *next; w != NULL; w = next) {
    next = w->next;
    fprintf(stderr, "berth: shutting down: task %s (QUEUED) is interrupted\n", w->task_id);
    waiting_free(w);
  }
  if (sp->wake >= 0)
    close(sp->wake);
  pthread_mutex_destroy(&sp->mu);
  pthread_mutex_destroy(&sp->batch_mu);
  pthread_cond_destroy(&sp->cond);
  free(sp->home);
  free(sp);
}
