/* Shared by the governance modules (allowlist, policy, audit): their tables are part of the store's schema
 * (src/lib/store/schema.c) and they reach them through the store layer only. */
#ifndef BERTH_GOV_INT_H
#define BERTH_GOV_INT_H

#include "berth/error.h"
#include "berth/store.h"
#include "store/db.h"

/* The rules berth_allowlist_check and berth_policy_evaluate read, sent ahead with the store's next statement
 * (store_read_ahead: PostgreSQL, no round trip of their own). Private to libberth: the operation that sends them
 * drops what it did not take when it ends (store_drop_ahead), which only libberth can (a submission does). */
void berth_allowlist_read_ahead(berth_store *st);
void berth_policy_read_ahead(berth_store *st);

#endif
