/* A disk-space reserve: a 1 MiB file, BERTH_HOME/run/reserve, that a supervisor deletes when a write fails for lack
 * of space, so that the task's last notes and its final record can still be written on a full disk. Made again (best
 * effort) when the next supervisor starts and there is room. */
#ifndef BERTH_RESERVE_H
#define BERTH_RESERVE_H

#include <stdbool.h>

#define BERTH_RESERVE_BYTES (1024 * 1024)

/* Creates the reserve if it is missing and the disk has room. Best effort: returns true if the reserve exists. */
bool berth_reserve_ensure(const char *home);
/* Deletes the reserve; true if there was one to free. */
bool berth_reserve_release(const char *home);

#endif
