/* Shared by the governance modules (allowlist, policy, audit): their tables are part of the store's schema
 * (src/lib/store/schema.c) and they reach them through the store layer only. */
#ifndef BERTH_GOV_INT_H
#define BERTH_GOV_INT_H

#include "berth/error.h"
#include "berth/store.h"
#include "store/db.h"

#endif
