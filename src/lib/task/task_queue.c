/* Cross-process coordination with flock(2): liveness of supervisors, FIFO turns per stack, the crash sweep. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "berth/actions.h"
#include "berth/task_queue.h"

#define NEW_TASK_GRACE_MS 15000 /* a task just submitted may not have its supervisor yet */

static char *
lock_path(const char *home, const char *kind, const char *name)
{
  char *dir = NULL, *p = NULL;
  if (asprintf(&dir, "%s/run", home) < 0)
    return NULL;
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
    free(dir);
    return NULL;
  }
  if (asprintf(&p, "%s/%s-%s.lock", dir, kind, name) < 0)
    p = NULL;
  free(dir);
  return p;
}

static int
open_lock(const char *home, const char *kind, const char *name, berth_error **err)
{
  char *p = lock_path(home, kind, name);
  if (p == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "cannot create the lock directory in %s", home);
  int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    berth_error_set_errno(err, BERTH_EINTERNAL, errno, "open the lock file %s", p);
  free(p);
  return fd;
}

void
berth_stack_lock_file_remove(const char *home, const char *stack)
{
  char *p = home ? lock_path(home, "stack", stack) : NULL;
  int fd = p ? open(p, O_RDWR | O_CLOEXEC | O_NOFOLLOW) : -1;
  if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
    unlink(p);
  if (fd >= 0)
    close(fd);
  free(p);
}

int
berth_task_mark_local(const char *home, const char *task_id, berth_error **err)
{
  int fd = open_lock(home, "task", task_id, err);
  if (fd < 0)
    return BERTH_EINTERNAL;
  close(fd);
  return 0;
}

int
berth_task_hold(const char *home, const char *task_id, int *fd_out, berth_error **err)
{
  int fd = open_lock(home, "task", task_id, err);
  if (fd < 0)
    return BERTH_EINTERNAL;
  /* a prober may hold it for an instant: retry briefly */
  for (int i = 0; i < 200; i++) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
      *fd_out = fd;
      return 0;
    }
    usleep(10000);
  }
  close(fd);
  return berth_error_set(err, BERTH_EBUSY, "task %s is already supervised by another process", task_id);
}

int
berth_task_adopt_hold(const char *home, const char *task_id, int fd, berth_error **err)
{
  char *p = lock_path(home, "task", task_id);
  if (p == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "cannot create the lock directory in %s", home);
  struct stat a, b;
  bool same = fstat(fd, &a) == 0 && stat(p, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
  free(p);
  /* the same open file description as the lock's holder: taking it again succeeds at once, and only then */
  if (!same || flock(fd, LOCK_EX | LOCK_NB) < 0)
    return berth_error_set(err, BERTH_EINVAL, "--hold-fd %d is not the held liveness lock of task %s", fd, task_id);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  return 0;
}

bool
berth_task_is_supervised(const char *home, const char *task_id)
{
  char *p = lock_path(home, "task", task_id);
  if (p == NULL)
    return true; /* cannot tell: assume alive, never fail a live task */
  int fd = open(p, O_RDWR | O_CLOEXEC);
  free(p);
  if (fd < 0)
    return false;
  bool held = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
  close(fd); /* releases our probe lock if we got it */
  return held;
}

void
berth_task_forget_local(const char *home, const char *task_id)
{
  char *p = lock_path(home, "task", task_id);
  if (p != NULL)
    unlink(p);
  free(p);
}

static void
remove_task_containers(berth_store *st, berth_docker *d, const char *task_id)
{
  berth_docker *own = NULL; /* a follower or a reader judging the task has no client of its own */
  if (d == NULL) {
    berth_error *e = NULL;
    if (berth_docker_new(NULL, &own, &e) < 0) {
      berth_error_free(e);
      return; /* no Docker here: the next sweep of a process that has one removes it */
    }
    d = own;
  }
  char label_task[128], label_inst[160];
  snprintf(label_task, sizeof label_task, "berth.task=%s", task_id);
  snprintf(label_inst, sizeof label_inst, "berth.instance=%s", berth_store_instance_id(st));
  const char *labels[] = { label_task, label_inst };
  cJSON *list = NULL;
  berth_error *err = NULL;
  if (berth_docker_container_list(d, labels, 2, &list, &err) == 0) {
    cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
      cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "Id");
      if (cJSON_IsString(id))
        berth_docker_container_remove(d, id->valuestring, &err);
      berth_error_clear(&err);
    }
  }
  berth_error_free(err);
  cJSON_Delete(list);
  berth_docker_free(own);
}

static bool
has_liveness_lock(const char *home, const char *task_id)
{
  char *p = lock_path(home, "task", task_id);
  bool exists = p == NULL || access(p, F_OK) == 0;
  free(p);
  return exists;
}

static bool
task_is_orphan(berth_store *st, const berth_task *t)
{
  if (berth_task_is_supervised(berth_store_home(st), t->id))
    return false;
  if (berth_store_is_shared(st) && !has_liveness_lock(berth_store_home(st), t->id))
    return false; /* its supervisor never ran from this BERTH_HOME: another host's task is not ours to judge */
  if (t->supervisor_pid == 0 && berth_now_ms() - t->created_at < NEW_TASK_GRACE_MS)
    return false;
  return true;
}

static int
fail_orphan_err(berth_store *st, berth_docker *d, const berth_task *t, berth_error **err)
{
  /* its container first: once the record ends, the stack's next task may start, and two must never run at once */
  remove_task_containers(st, d, t->id);
  int rc = berth_action_task_transition(st, t->id, "FAILED", "berth", "its supervisor is gone", "executor interrupted",
                                        -1, err);
  if (rc == 0) /* its supervisor died holding the lock: the file is this judge's to remove */
    berth_task_forget_local(berth_store_home(st), t->id);
  berth_error *e = NULL;
  berth_store_task_forget_secrets(st, t->id, &e);
  berth_error_free(e);
  return rc;
}

static void
fail_orphan(berth_store *st, berth_docker *d, const berth_task *t)
{
  berth_error *err = NULL;
  fail_orphan_err(st, d, t, &err);
  berth_error_free(err);
}

int
berth_queue_fail_if_orphan(berth_store *st, berth_docker *d, const berth_task *t, berth_error **err)
{
  if (berth_task_state_is_terminal(t->state) || !task_is_orphan(st, t))
    return 0;
  int rc = fail_orphan_err(st, d, t, err);
  return rc < 0 ? rc : 1;
}

/* Liveness lock files nobody holds whose task has ended: left by a process killed outright after its task's end was
 * written by someone else (a fleet host SIGKILLed, whose tasks the fleet failed as "host lost"). A file whose task
 * this store does not know is left alone: the home may serve another store too. */
static void
sweep_lock_files(berth_store *st)
{
  char *dir = NULL;
  if (asprintf(&dir, "%s/run", berth_store_home(st)) < 0)
    return;
  DIR *dh = opendir(dir);
  struct dirent *de;
  while (dh != NULL && (de = readdir(dh)) != NULL) {
    /* task-ID.lock with a whole task id: never a prefix, which the store would match to a task */
    size_t len = strlen(de->d_name);
    if (len != 5 + BERTH_TASK_ID_LEN + 5 || strncmp(de->d_name, "task-", 5) != 0
        || strcmp(de->d_name + len - 5, ".lock") != 0)
      continue;
    char id[BERTH_TASK_ID_LEN + 1];
    memcpy(id, de->d_name + 5, BERTH_TASK_ID_LEN);
    id[BERTH_TASK_ID_LEN] = '\0';
    if (!berth_task_id_is_whole(id))
      continue;
    int fd = openat(dirfd(dh), de->d_name, O_RDWR | O_CLOEXEC);
    if (fd < 0)
      continue;
    berth_task *t = NULL;
    berth_error *e = NULL;
    /* held while it is removed: a holder that comes later opens a file of its own */
    if (flock(fd, LOCK_EX | LOCK_NB) == 0 && berth_store_task_get(st, id, &t, &e) == 0
        && berth_task_state_is_terminal(t->state))
      unlinkat(dirfd(dh), de->d_name, 0);
    berth_error_free(e);
    berth_task_free(t);
    close(fd);
  }
  if (dh != NULL)
    closedir(dh);
  free(dir);
}

int
berth_queue_sweep(berth_store *st, berth_docker *d, berth_error **err)
{
  berth_task **tasks = NULL;
  size_t n = 0;
  int rc = berth_store_task_list_active(st, NULL, &tasks, &n, err);
  if (rc < 0)
    return rc;
  for (size_t i = 0; i < n; i++)
    if (task_is_orphan(st, tasks[i]))
      fail_orphan(st, d, tasks[i]);
  berth_tasks_free(tasks, n);
  sweep_lock_files(st);
  if (d == NULL)
    return 0;
  /* containers of this store whose task is over or unsupervised */
  char label_inst[160];
  snprintf(label_inst, sizeof label_inst, "berth.instance=%s", berth_store_instance_id(st));
  const char *labels[] = { "berth.managed=true", label_inst };
  cJSON *list = NULL;
  berth_error *derr = NULL;
  if (berth_docker_container_list(d, labels, 2, &list, &derr) < 0) {
    berth_error_free(derr);
    return 0;
  }
  cJSON *it;
  cJSON_ArrayForEach(it, list)
  {
    cJSON *labels_j = cJSON_GetObjectItemCaseSensitive(it, "Labels");
    cJSON *task = cJSON_GetObjectItemCaseSensitive(labels_j, "berth.task");
    cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "Id");
    if (!cJSON_IsString(task) || !cJSON_IsString(id))
      continue;
    berth_task *t = NULL;
    berth_error *terr = NULL;
    bool leftover = berth_store_task_get(st, task->valuestring, &t, &terr) < 0 || berth_task_state_is_terminal(t->state)
                    || task_is_orphan(st, t);
    if (leftover && t != NULL && !berth_task_state_is_terminal(t->state))
      fail_orphan(st, NULL, t);
    if (leftover)
      berth_docker_container_remove(d, id->valuestring, &derr);
    berth_error_clear(&derr);
    berth_error_free(terr);
    berth_task_free(t);
  }
  cJSON_Delete(list);
  return 0;
}

static void
on_alarm(int sig)
{
  (void) sig; /* only there to interrupt a blocking flock */
}

/* Waits, five seconds at most, for the supervisor of task id to let go of its liveness lock: a blocking flock
 * (no CPU while waiting) cut short by a one-shot SIGALRM, so the caller re-reads the store now and then (it may
 * have been canceled meanwhile; a crash of the task ahead releases the lock at once). Returns true when the lock was
 * free (the supervisor ended, or has not started yet), false when it is still held. Only for single-threaded supervisor
 * processes (it uses SIGALRM). */
static bool
wait_for_supervisor(const char *home, const char *id)
{
  char *p = lock_path(home, "task", id);
  int fd = p ? open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;
  free(p);
  if (fd < 0) {
    usleep(50000);
    return true;
  }
  if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
    flock(fd, LOCK_UN);
    close(fd);
    return true;
  }
  struct sigaction sa = { .sa_handler = on_alarm }, old;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, &old); /* no SA_RESTART: the alarm interrupts flock */
  struct itimerval it = { .it_value = { .tv_sec = 5 } }, stop = { 0 };
  setitimer(ITIMER_REAL, &it, NULL);
  bool released = flock(fd, LOCK_SH) == 0;
  setitimer(ITIMER_REAL, &stop, NULL);
  sigaction(SIGALRM, &old, NULL);
  if (released)
    flock(fd, LOCK_UN);
  close(fd);
  return released;
}

int
berth_queue_wait_turn(berth_store *st, berth_docker *d, const berth_task *t, berth_queue_note_fn note, void *userdata,
                      int *stack_fd_out, berth_error **err)
{
  const char *home = berth_store_home(st);
  char *last_blocker = NULL;
  int rc = 0;
  for (;;) {
    berth_task **active = NULL;
    size_t n = 0;
    rc = berth_store_task_list_active(st, t->stack, &active, &n, err);
    if (rc < 0)
      break;
    /* FIFO: I may run once no unfinished task is ahead of me on the stack. Meanwhile I wait for the task just
     * ahead of me (not the first one): each completion then wakes exactly one waiter. */
    const berth_task *blocker = NULL;
    bool still_active = false;
    for (size_t i = 0; i < n; i++) {
      if (strcmp(active[i]->id, t->id) == 0) {
        still_active = true;
        break;
      }
      if (task_is_orphan(st, active[i])) {
        fail_orphan(st, d, active[i]);
        continue;
      }
      blocker = active[i];
    }
    if (!still_active) {
      berth_tasks_free(active, n);
      rc = berth_error_set(err, BERTH_EBUSY, "task %s was ended while it waited", t->id);
      break;
    }
    if (blocker == NULL) {
      berth_tasks_free(active, n);
      int fd = open_lock(home, "stack", t->stack, err);
      if (fd < 0) {
        rc = BERTH_EINTERNAL;
        break;
      }
      /* the previous holder may still be cleaning up after its final transition: wait for its lock */
      if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        *stack_fd_out = fd;
        rc = 0;
        break;
      }
      close(fd);
      usleep(20000);
      continue;
    }
    if (last_blocker == NULL || strcmp(last_blocker, blocker->id) != 0) {
      /* nothing is written: readers derive blocked_by from the queue itself */
      free(last_blocker);
      last_blocker = strdup(blocker->id);
      if (note)
        note(userdata, blocker->id);
    }
    bool released = wait_for_supervisor(home, blocker->id);
    berth_tasks_free(active, n);
    if (released)
      usleep(20000); /* its supervisor is not (or not yet) running: look again shortly, without spinning */
  }
  free(last_blocker);
  return rc;
}

int
berth_queue_wait_slot(berth_store *st, const berth_task *t, int max_parallel, berth_queue_note_fn note, void *userdata,
                      int *slot_fd_out, berth_error **err)
{
  const char *home = berth_store_home(st);
  if (max_parallel < 1)
    max_parallel = 1;
  for (unsigned round = 0;; round++) {
    for (int i = 0; i < max_parallel; i++) {
      char name[32];
      snprintf(name, sizeof name, "%d", i);
      int fd = open_lock(home, "slot", name, err);
      if (fd < 0)
        return BERTH_EINTERNAL;
      if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        *slot_fd_out = fd;
        return 0;
      }
      close(fd);
    }
    if (round == 0 && note)
      note(userdata, NULL);
    if (round % 10 == 0) { /* every ~0.5 s: still wanted? */
      berth_task *cur = NULL;
      berth_error *e = NULL;
      bool ended = berth_store_task_get(st, t->id, &cur, &e) == 0 && berth_task_state_is_terminal(cur->state);
      berth_task_free(cur);
      berth_error_free(e);
      if (ended)
        return berth_error_set(err, BERTH_EBUSY, "task %s was ended while it waited", t->id);
    }
    usleep(50000);
  }
}

int
berth_queue_sweep_if_due(berth_store *st, berth_docker *d, int64_t interval_ms, berth_error **err)
{
  char *p = lock_path(berth_store_home(st), "sweep", "stamp");
  if (p == NULL)
    return berth_queue_sweep(st, d, err);
  struct stat sb;
  int64_t now = berth_now_ms();
  bool due
      = stat(p, &sb) < 0 || now - ((int64_t) sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000) >= interval_ms;
  if (due) {
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0)
      close(fd);
  }
  free(p);
  return due ? berth_queue_sweep(st, d, err) : 0;
}

void
berth_queue_sweep_request(const char *home)
{
  char *p = lock_path(home, "sweep", "stamp");
  if (p != NULL)
    unlink(p);
  free(p);
}
