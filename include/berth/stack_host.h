/* The checks of a stack that depend on the host berth runs on, not on the record alone: shared by `berth stack
 * create|update` and the server's POST/PATCH /v1/stacks, which checks on its own host whatever the caller sent. */
#ifndef BERTH_STACK_HOST_H
#define BERTH_STACK_HOST_H

#include <stdbool.h>

#include "berth/error.h"
#include "berth/store.h"

/* The project dir must exist, be a directory and be readable. On success *out is its absolute path (realpath),
 * owned by the caller. BERTH_EINVAL naming dir otherwise. */
int berth_stack_resolve_project_dir(const char *dir, char **out, berth_error **err);

/* After a change to s: when project_dir_changed, s->project_dir is resolved as above and replaced by its absolute
 * path; when subdir_changed, s->subdir is normalized; after either, the subdir must be a directory under the
 * project dir. With home (NULL: skipped), the admin config (home/config.json) must allow s->pull_policy and, when
 * network_changed, s->network (a change that leaves the network alone is not refused for it: submissions and the
 * host that runs a task check it again). */
int berth_stack_check_host(berth_stack *s, const char *home, bool project_dir_changed, bool subdir_changed,
                           bool network_changed, berth_error **err);

/* A stack whose image the allowlist refuses can be saved (an admin may allow it later), but its tasks are refused at
 * submit: this says so, as a line for the user ("the allowlist refuses image X: ...; its tasks will be refused until
 * an admin allows it"), or NULL when the image is allowed or the allowlist can't be read. Caller frees. */
char *berth_stack_image_warning(berth_store *st, const berth_stack *s);
/* The stack as saved (berth_stack_to_json), with "warnings": [berth_stack_image_warning] when there is one: the
 * answer to a create or an update. A new object the caller owns. */
struct cJSON *berth_stack_json_warned(berth_store *st, const berth_stack *s);

#endif
