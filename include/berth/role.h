/* Roles, the one place their names are written: an API key has one; routes need a least one; policies match them.
 * Each role can do everything the one before it can. */
#ifndef BERTH_ROLE_H
#define BERTH_ROLE_H

typedef enum {
  BERTH_ROLE_NONE = 0, /* no key: only what needs no role */
  BERTH_ROLE_READER = 1,
  BERTH_ROLE_WRITER = 2,
  BERTH_ROLE_ADMIN = 3,
} berth_role;

/* "reader", "writer", "admin" -> the role; anything else (NULL included) -> BERTH_ROLE_NONE. */
berth_role berth_role_parse(const char *name);
/* The name of a role ("none" for BERTH_ROLE_NONE). */
const char *berth_role_name(berth_role role);
/* For messages: "reader, writer, admin". */
#define BERTH_ROLE_NAMES "reader, writer, admin"

#endif
