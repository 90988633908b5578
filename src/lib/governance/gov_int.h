/* Shared by the governance modules (allowlist, policy, audit): schema and transaction helpers. */
#ifndef BERTH_GOV_INT_H
#define BERTH_GOV_INT_H

#include <stdbool.h>

#include <sqlite3.h>

#include "berth/error.h"
#include "berth/store.h"

/* Creates the governance tables and triggers if they do not exist yet (cheap when they do). */
int gov_ensure_schema(berth_store *st, berth_error **err);
/* BEGIN IMMEDIATE unless the caller already holds a transaction; *owned says which. */
int gov_tx_begin(berth_store *st, bool *owned, berth_error **err);
int gov_tx_commit(berth_store *st, bool owned, berth_error **err);
void gov_tx_rollback(berth_store *st, bool owned);
/* sqlite3_prepare_v2 with a one-line error naming `what`. */
int gov_prepare(berth_store *st, const char *sql, sqlite3_stmt **out, const char *what, berth_error **err);
/* One-line store error for the last failed step. */
int gov_db_error(berth_store *st, const char *what, berth_error **err);
/* sqlite3_column_text as a new string (NULL stays NULL); *oom set on allocation failure. */
char *gov_column_dup(sqlite3_stmt *stmt, int col, bool *oom);

#endif
