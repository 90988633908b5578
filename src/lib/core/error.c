/* Error values and the one table that maps them to exit codes and HTTP statuses. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/error.h"
#include "berth/parse.h"

static const struct {
  int code;
  int exit_code;
  int http_status;
  const char *name;
} error_table[] = {
  { BERTH_OK, 0, 200, "ok" },
  { BERTH_EINVAL, 125, 400, "invalid" },
  { BERTH_ENOTFOUND, 125, 404, "not_found" },
  { BERTH_EDENIED, 125, 403, "denied" },
  { BERTH_EBUSY, 125, 409, "busy" },
  { BERTH_ETIMEOUT, 124, 504, "timeout" },
  { BERTH_EDOCKER, 125, 502, "docker" },
  { BERTH_EINTERNAL, 125, 500, "internal" },
};

static size_t
table_index(int code)
{
  for (size_t i = 0; i < sizeof error_table / sizeof error_table[0]; i++)
    if (error_table[i].code == code)
      return i;
  return sizeof error_table / sizeof error_table[0] - 1; /* internal */
}

int
berth_error_exit_code(int code)
{
  return error_table[table_index(code)].exit_code;
}

int
berth_error_http_status(int code)
{
  return error_table[table_index(code)].http_status;
}

const char *
berth_error_name(int code)
{
  return error_table[table_index(code)].name;
}

/* When there is no memory for an error, *err still gets one: this static value (never freed, never rewritten), as
 * libgit2 does, so that no failure ever leaves *err NULL. */
static char oom_msg[] = "out of memory";
static berth_error oom_error = { BERTH_EINTERNAL, oom_msg };

/* Turns embedded newlines into spaces so every message stays one line. */
static void
one_line(char *s)
{
  for (; s != NULL && *s; s++)
    if (*s == '\n' || *s == '\r')
      *s = ' ';
  berth_utf8_repair(s); /* a value cut by %.64s may end inside a character: never invalid text in a JSON answer */
}

__attribute__((format(printf, 4, 0))) static int
error_vset(berth_error **err, int code, const char *suffix, const char *fmt, va_list ap)
{
  if (err == NULL || *err != NULL)
    return code;
  berth_error *e = calloc(1, sizeof *e);
  if (e == NULL) {
    *err = &oom_error;
    return code;
  }
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0)
    msg = NULL;
  if (msg != NULL && suffix != NULL) {
    char *joined = NULL;
    if (asprintf(&joined, "%s: %s", msg, suffix) >= 0) {
      free(msg);
      msg = joined;
    }
  }
  if (msg == NULL) {
    free(e);
    *err = &oom_error;
    return code;
  }
  /* strip trailing whitespace; keep one line */
  if (msg != NULL) {
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' '))
      msg[--n] = '\0';
    one_line(msg);
  }
  e->code = code;
  e->msg = msg;
  *err = e;
  return code;
}

int
berth_error_set(berth_error **err, int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  error_vset(err, code, NULL, fmt, ap);
  va_end(ap);
  return code;
}

int
berth_error_set_errno(berth_error **err, int code, int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  error_vset(err, code, strerror(errnum), fmt, ap);
  va_end(ap);
  return code;
}

int
berth_error_wrap(berth_error **err, const char *fmt, ...)
{
  if (err == NULL || *err == NULL)
    return BERTH_EINTERNAL;
  if (*err == &oom_error)
    return oom_error.code;
  char *ctx = NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&ctx, fmt, ap);
  va_end(ap);
  if (n >= 0) {
    char *joined = NULL;
    if (asprintf(&joined, "%s: %s", ctx, (*err)->msg ? (*err)->msg : "") >= 0) {
      free((*err)->msg);
      (*err)->msg = joined;
      one_line(joined);
    }
    free(ctx);
  }
  return (*err)->code;
}

void
berth_error_free(berth_error *err)
{
  if (err == NULL || err == &oom_error)
    return;
  free(err->msg);
  free(err);
}

void
berth_error_clear(berth_error **err)
{
  if (err == NULL)
    return;
  berth_error_free(*err);
  *err = NULL;
}
