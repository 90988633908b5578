/* The spawner: a few long-lived threads that run every task submission of the server.
 *
 * Supervisors are started with die_with_parent (PR_SET_PDEATHSIG), and the kernel sends that signal when the
 * THREAD that forked the child exits, not the process. Connection threads come and go with their clients, so they
 * must never fork a supervisor; these threads live as long as the server, so a server crash (and only that) takes
 * the supervisors down, and the restart sweep records their tasks as interrupted. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

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

struct srv_spawner {
  char *home;
  pthread_t threads[SPAWNER_THREADS];
  size_t n_threads;
  pthread_mutex_t mu;
  pthread_cond_t cond; /* jobs queued, job done, or closing */
  job *head, *tail;
  bool closed; /* no new jobs */
  bool ending; /* the thread should exit */
};

static void *
spawner_main(void *arg)
{
  srv_spawner *sp = arg;
  berth_store *st = NULL;
  pthread_mutex_lock(&sp->mu);
  for (;;) {
    while (sp->head == NULL && !sp->ending)
      pthread_cond_wait(&sp->cond, &sp->mu);
    if (sp->head == NULL && sp->ending)
      break;
    job *j = sp->head;
    sp->head = j->next;
    if (sp->head == NULL)
      sp->tail = NULL;
    pthread_mutex_unlock(&sp->mu);
    j->rc = 0;
    if (st == NULL)
      j->rc = berth_store_open(sp->home, &st, &j->err);
    if (j->rc == 0)
      j->rc = berth_task_submit(st, j->req, &j->task, &j->err);
    pthread_mutex_lock(&sp->mu);
    j->done = true;
    pthread_cond_broadcast(&sp->cond);
  }
  pthread_mutex_unlock(&sp->mu);
  berth_store_close(st);
  return NULL;
}

int
srv_spawner_start(const char *home, srv_spawner **out, berth_error **err)
{
  srv_spawner *sp = calloc(1, sizeof *sp);
  if (sp == NULL || (sp->home = strdup(home)) == NULL) {
    free(sp);
    return berth_error_set(err, BERTH_EINTERNAL, "start the task spawner: out of memory");
  }
  pthread_mutex_init(&sp->mu, NULL);
  pthread_cond_init(&sp->cond, NULL);
  /* the supervisors inherit this thread's signal mask: start it with nothing blocked */
  sigset_t none, old;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, &old);
  int e = 0;
  for (size_t i = 0; i < SPAWNER_THREADS && e == 0; i++)
    if ((e = pthread_create(&sp->threads[i], NULL, spawner_main, sp)) == 0)
      sp->n_threads++;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (sp->n_threads == 0) {
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
  pthread_mutex_destroy(&sp->mu);
  pthread_cond_destroy(&sp->cond);
  free(sp->home);
  free(sp);
}
