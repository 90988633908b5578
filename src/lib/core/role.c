/* Role names (include/berth/role.h). */
#include <string.h>

#include "berth/role.h"

static const char *const names[] = { "none", "reader", "writer", "admin" };

berth_role
berth_role_parse(const char *name)
{
  for (int i = BERTH_ROLE_READER; name != NULL && i <= BERTH_ROLE_ADMIN; i++)
    if (strcmp(name, names[i]) == 0)
      return (berth_role) i;
  return BERTH_ROLE_NONE;
}

const char *
berth_role_name(berth_role role)
{
  return role >= BERTH_ROLE_NONE && role <= BERTH_ROLE_ADMIN ? names[role] : "none";
}
