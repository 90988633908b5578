/* berth error values: a code from a handful of expected kinds plus one human line.
 *
 * Fallible functions return int (<0 on failure) or a pointer (NULL on failure) and take `berth_error **err` last.
 * On failure they set *err (the caller owns it and frees it with berth_error_free); on success *err is untouched.
 * Callers add context on the way up with berth_error_wrap(). */
#ifndef BERTH_ERROR_H
#define BERTH_ERROR_H

#include <stddef.h>

typedef enum {
  BERTH_OK = 0,
  BERTH_EINVAL = -1,    /* bad input from the user or caller */
  BERTH_ENOTFOUND = -2, /* stack, task, image ... does not exist */
  BERTH_EDENIED = -3,   /* refused by role, lock, allowlist or policy */
  BERTH_EBUSY = -4,     /* conflict: already exists, locked, in a state that forbids it */
  BERTH_ETIMEOUT = -5,  /* a run or idle timeout */
  BERTH_EDOCKER = -6,   /* the Docker daemon failed or is unreachable */
  BERTH_EINTERNAL = -7, /* anything else: I/O, store, out of memory */
} berth_code;

typedef struct berth_error {
  int code;  /* one of berth_code */
  char *msg; /* one line, no trailing newline; never contains a raw secret once redacted by the caller */
} berth_error;

/* Sets *err (if err != NULL and *err == NULL) and returns code. Never fails: without memory, *err is a static
 * "out of memory" error (BERTH_EINTERNAL) that berth_error_free and berth_error_wrap leave alone. */
int berth_error_set(berth_error **err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Like berth_error_set, with ": strerror(errnum)" appended. */
int berth_error_set_errno(berth_error **err, int code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prefixes "context: " to *err's message and returns its code (BERTH_EINTERNAL if *err is NULL). */
int berth_error_wrap(berth_error **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void berth_error_free(berth_error *err);
/* Frees *err and sets it to NULL. */
void berth_error_clear(berth_error **err);

/* The ONE table: code -> CLI exit status, HTTP status, and the API error name. */
int berth_error_exit_code(int code);
int berth_error_http_status(int code);
const char *berth_error_name(int code);

#endif
