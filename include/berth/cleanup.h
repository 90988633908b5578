/* __attribute__((cleanup)) helpers, as crun does: a local declared with one of these is released at scope exit. */
#ifndef BERTH_CLEANUP_H
#define BERTH_CLEANUP_H

#include <stdlib.h>
#include <unistd.h>

static inline void
berth_cleanup_freep(void *p)
{
  free(*(void **) p);
}
static inline void
berth_cleanup_closep(int *fd)
{
  if (*fd >= 0)
    close(*fd);
}
#define cleanup_free __attribute__((cleanup(berth_cleanup_freep)))
#define cleanup_close __attribute__((cleanup(berth_cleanup_closep)))

#endif
