/* Credential helpers (include/berth/credhelper.h): fork/exec with three pipes, a deadline, capped output. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "berth/audit.h"
#include "berth/credhelper.h"
#include "berth/parse.h"

static int64_t
now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct child_io {
  int in, out, errfd;
  const char *input;
  size_t input_len, written;
  berth_buf out_buf;
  bool out_over;
} child_io;

/* Pumps the pipes until both outputs close or the deadline passes. Returns 0, or 1 on timeout. */
static int
pump(child_io *io, berth_buf *err_text, int64_t deadline)
{
  while (io->out >= 0 || io->errfd >= 0) {
    struct pollfd p[3];
    int n = 0, iin = -1, iout = -1, ierr = -1;
    if (io->in >= 0)
      p[iin = n++] = (struct pollfd){ .fd = io->in, .events = POLLOUT };
    if (io->out >= 0)
      p[iout = n++] = (struct pollfd){ .fd = io->out, .events = POLLIN };
    if (io->errfd >= 0)
      p[ierr = n++] = (struct pollfd){ .fd = io->errfd, .events = POLLIN };
    int64_t left = deadline - now_ms();
    if (left <= 0)
      return 1;
    if (poll(p, (nfds_t) n, (int) left) < 0 && errno != EINTR)
      return 1;
    if (iin >= 0 && (p[iin].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = (p[iin].revents & POLLOUT) ? write(io->in, io->input + io->written, io->input_len - io->written) : -1;
      if (w > 0)
        io->written += (size_t) w;
      if (w < 0 || io->written == io->input_len) { /* done, or the helper does not read its input */
        close(io->in);
        io->in = -1;
      }
    }
    int fds[2] = { iout, ierr };
    for (int k = 0; k < 2; k++) {
      if (fds[k] < 0 || !(p[fds[k]].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      char buf[8192];
      int *fd = k == 0 ? &io->out : &io->errfd;
      ssize_t r = read(*fd, buf, sizeof buf);
      if (r <= 0) {
        close(*fd);
        *fd = -1;
      } else if (k == 0 && berth_buf_append(&io->out_buf, buf, (size_t) r) < 0) {
        io->out_over = true;
      } else if (k == 1) {
        size_t room = err_text->max - err_text->len;
        berth_buf_append(err_text, buf, (size_t) r < room ? (size_t) r : room);
      }
    }
  }
  return 0;
}

static bool
env_name_ok(const char *s)
{
  if (s == NULL || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
    return false;
  for (; *s; s++)
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
      return false;
  return true;
}

/* {"env": {...}, "expires_at": "..."} -> out. Never quotes what it read. */
static int
parse_output(const berth_cred_helper *h, const berth_buf *o, int64_t now, berth_cred_result *out, berth_error **err)
{
  cJSON *j = o->len ? cJSON_ParseWithLength(o->data, o->len) : NULL;
  const cJSON *env = cJSON_GetObjectItemCaseSensitive(j, "env");
  const char *exp = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "expires_at"));
  int rc = 0;
  int64_t exp_ms = 0;
  berth_error *te = NULL;
  if (!cJSON_IsObject(j) || !cJSON_IsObject(env) || exp == NULL || strlen(exp) < 10 || exp[4] != '-'
      || berth_audit_parse_time(exp, now, &exp_ms, &te) < 0)
    rc = berth_error_set(err, BERTH_EINVAL,
                         "credential helper `%s` printed something that is not {\"env\": {...}, \"expires_at\": "
                         "\"YYYY-MM-DDTHH:MM:SSZ\"}",
                         h->name);
  berth_error_free(te);
  int n = rc == 0 ? cJSON_GetArraySize(env) : 0;
  if (rc == 0 && (out->env = calloc((size_t) n + 1, sizeof *out->env)) == NULL)
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  const cJSON *v;
  if (rc == 0)
    cJSON_ArrayForEach(v, env)
    {
      if (!env_name_ok(v->string) || !cJSON_IsString(v)) {
        rc = berth_error_set(err, BERTH_EINVAL,
                             "credential helper `%s`: env entries must be NAME: \"string\" (a name of letters, digits "
                             "and _)",
                             h->name);
        break;
      }
      berth_kv *kv = &out->env[out->n_env++];
      kv->key = strdup(v->string);
      kv->value = strdup(v->valuestring);
      if (kv->key == NULL || kv->value == NULL) {
        rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
        break;
      }
    }
  if (rc == 0 && exp_ms <= now) {
    char when[BERTH_TIME_LEN];
    rc = berth_error_set(err, BERTH_EINVAL, "credential helper `%s` returned credentials that expired at %s", h->name,
                         berth_format_time(exp_ms, when, sizeof when));
  }
  out->expires_at = exp_ms;
  if (j != NULL) { /* wipe the values the parse tree still holds */
    cJSON_ArrayForEach(v, env) if (cJSON_IsString(v)) explicit_bzero(v->valuestring, strlen(v->valuestring));
  }
  cJSON_Delete(j);
  return rc;
}

int
berth_cred_helper_run(const berth_cred_helper *h, const char *input, int64_t wall_now_ms, berth_cred_result *out,
                      berth_error **err)
{
  memset(out, 0, sizeof *out);
  berth_buf_init(&out->err_text, BERTH_CRED_STDERR_MAX);
  int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
  if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0) {
    int e = errno;
    for (int i = 0; i < 2; i++) {
      if (pin[i] >= 0)
        close(pin[i]);
      if (pout[i] >= 0)
        close(pout[i]);
      if (perr[i] >= 0)
        close(perr[i]);
    }
    return berth_error_set_errno(err, BERTH_EINTERNAL, e, "run credential helper `%s`", h->name);
  }
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0); /* its own group: a timeout kills whatever it started too */
    dup2(pin[0], 0);
    dup2(pout[1], 1);
    dup2(perr[1], 2);
    execv(h->argv[0], h->argv);
    dprintf(2, "cannot run %s: %s\n", h->argv[0], strerror(errno));
    _exit(127);
  }
  close(pin[0]);
  close(pout[1]);
  close(perr[1]);
  if (pid < 0) {
    int e = errno;
    close(pin[1]);
    close(pout[0]);
    close(perr[0]);
    return berth_error_set_errno(err, BERTH_EINTERNAL, e, "run credential helper `%s`", h->name);
  }
  signal(SIGPIPE, SIG_IGN);
  child_io io = {
    .in = pin[1], .out = pout[0], .errfd = perr[0], .input = input ? input : "", .input_len = input ? strlen(input) : 0
  };
  berth_buf_init(&io.out_buf, BERTH_CRED_OUTPUT_MAX);
  int64_t deadline = now_ms() + h->timeout_ms;
  int timed_out = pump(&io, &out->err_text, deadline);
  int status = 0;
  for (;;) { /* its outputs are closed: it exits now, or it is killed at the deadline */
    pid_t w = timed_out ? 0 : waitpid(pid, &status, WNOHANG);
    if (w == pid || (w < 0 && errno != EINTR))
      break;
    if (timed_out || now_ms() >= deadline) {
      timed_out = 1;
      kill(-pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
      break;
    }
    struct timespec ts = { 0, 10 * 1000000L };
    nanosleep(&ts, NULL);
  }
  kill(-pid, SIGKILL); /* anything it left running in its group */
  if (io.in >= 0)
    close(io.in);
  if (io.out >= 0)
    close(io.out);
  if (io.errfd >= 0)
    close(io.errfd);
  int rc = 0;
  char took[32];
  if (timed_out)
    rc = berth_error_set(err, BERTH_EINVAL, "credential helper `%s` timed out after %s", h->name,
                         berth_format_duration(h->timeout_ms, took, sizeof took));
  else if (WIFSIGNALED(status))
    rc = berth_error_set(err, BERTH_EINVAL, "credential helper `%s` was killed by signal %d", h->name,
                         WTERMSIG(status));
  else if (WEXITSTATUS(status) != 0)
    rc = berth_error_set(err, BERTH_EINVAL, "credential helper `%s` failed with exit status %d", h->name,
                         WEXITSTATUS(status));
  else if (io.out_over)
    rc = berth_error_set(err, BERTH_EINVAL, "credential helper `%s` printed more than 1 MiB", h->name);
  else
    rc = parse_output(h, &io.out_buf, wall_now_ms, out, err);
  if (io.out_buf.data != NULL)
    explicit_bzero(io.out_buf.data, io.out_buf.len);
  berth_buf_free(&io.out_buf);
  return rc;
}

void
berth_cred_result_clear(berth_cred_result *r)
{
  if (r == NULL)
    return;
  berth_kv_array_free(r->env, r->n_env);
  berth_buf_free(&r->err_text);
  memset(r, 0, sizeof *r);
}

int
berth_cred_helper_check(const berth_config *cfg, const char *name, berth_error **err)
{
  const berth_cred_helper *h = berth_config_cred_helper(cfg, name);
  if (h == NULL)
    return berth_error_set(err, BERTH_EINVAL,
                           "credential helper `%.64s` is not defined in config.json "
                           "(credential_helpers)",
                           name ? name : "");
  struct stat sb;
  if (stat(h->argv[0], &sb) < 0 || !S_ISREG(sb.st_mode) || access(h->argv[0], X_OK) < 0)
    return berth_error_set(err, BERTH_EINVAL, "credential helper `%s`: %s is not an executable file", h->name,
                           h->argv[0]);
  return 0;
}
