/* A growable byte buffer with a hard cap fixed at init: growth past `max` is an error, never silent. */
#ifndef BERTH_BUF_H
#define BERTH_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct berth_buf {
  char *data; /* always NUL-terminated when non-NULL (the NUL is not counted in len) */
  size_t len;
  size_t cap;
  size_t max; /* hard limit on len */
} berth_buf;

void berth_buf_init(berth_buf *b, size_t max);
/* Failures (b is unchanged then): the cap would be exceeded, or memory ran out. Callers that only need "it failed"
 * test < 0; callers that tell the user test for BERTH_BUF_TOO_BIG. */
#define BERTH_BUF_NOMEM (-1)
#define BERTH_BUF_TOO_BIG (-2)
/* Returns 0, BERTH_BUF_TOO_BIG or BERTH_BUF_NOMEM. */
int berth_buf_append(berth_buf *b, const void *data, size_t len);
int berth_buf_printf(berth_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void berth_buf_reset(berth_buf *b);
/* Returns the data (caller frees) and leaves b empty. Never NULL unless out of memory. */
char *berth_buf_steal(berth_buf *b);
void berth_buf_free(berth_buf *b);

#endif
