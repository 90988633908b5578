/* The audit trail: append-only records of every state-changing action, kept forever, tamper-evident.
 *
 * Each record has an id (1, 2, 3 ... with no gaps), a time, the actor, the action (e.g. "image.allow",
 * "policy.add", "stack.create", "task.submit"), the target, the arguments as JSON (secrets masked by the caller) and
 * the outcome ("ok", "denied: ...", "failed: ..."). Its hash is SHA-256 (libsodium crypto_hash_sha256) over the
 * previous record's hash (32 zero bytes for record 1) followed by the canonical encoding of the record:
 *   "berth-audit-v1\n" then for id, at, actor, action, target, args, outcome in that order:
 *   "<byte length>:<bytes>\n", or "~\n" for NULL (id and at in decimal).
 * A head row holds the last id and hash, so removing the newest records is detected too. SQL UPDATE and DELETE on
 * the records are refused by triggers; an edit made around them (dropping the triggers, editing the file) breaks the
 * chain and `verify` names the first broken record. Anyone who can rewrite the whole file can also recompute the
 * chain: keep a copy of the head hash printed by `berth audit verify` elsewhere to detect that.
 *
 * Store functions join a transaction the caller has begun (berth_store_begin), so an action and its record can
 * commit together; otherwise each append is its own BEGIN IMMEDIATE transaction. JSON belongs to the caller. */
#ifndef BERTH_AUDIT_H
#define BERTH_AUDIT_H

#include <stdint.h>

#include "berth/error.h"
#include "berth/store.h"

struct cJSON;

/* Arguments larger than this (bytes, as JSON) are replaced by {"truncated": true, "bytes": N}. */
#define BERTH_AUDIT_ARGS_MAX (64 * 1024)
/* Longest actor, action, target or outcome kept (bytes); longer ones are cut (marked with "..."). */
#define BERTH_AUDIT_FIELD_MAX 4096

/* actor, action and outcome are required; target and args may be NULL. */
int berth_audit_append(berth_store *st, const char *actor, const char *action, const char *target,
                       const struct cJSON *args, const char *outcome, berth_error **err);

/* Walks the chain. Returns 0 when the walk could be done: *first_bad = 0 when intact, otherwise the id of the first
 * broken (edited, missing or out-of-place) record; *count = number of records. <0 only on store errors. */
int berth_audit_verify(berth_store *st, int64_t *first_bad, int64_t *count, berth_error **err);
/* The same, with *why (caller frees, may be NULL) saying what is wrong ("hash mismatch", "record is missing" ...)
 * and *head_hash (caller frees, may be NULL) the hex hash of the newest record ("" when the trail is empty). */
int berth_audit_verify_detail(berth_store *st, int64_t *first_bad, int64_t *count, char **why, char **head_hash,
                              berth_error **err);

/* {"records":[{"id","at","time","actor","action","target","args","outcome","hash"}]}, oldest first, with
 * at >= since_ms (0 = all). NULL on error. */
struct cJSON *berth_audit_list_json(berth_store *st, int64_t since_ms, berth_error **err);
/* `berth audit verify` and GET /v1/audit/verify: {"intact": true, "records", "head"} or {"intact": false,
 * "records", "first_bad", "problem"}. A new object the caller owns; NULL with *err on store errors. */
struct cJSON *berth_audit_verify_json(berth_store *st, berth_error **err);

/* A point in time for --since / --at: "2024-05-01", "2024-05-01T12:00[:00][Z]" (UTC), or a duration ago ("90m",
 * "1h30m", "7d"). */
int berth_audit_parse_time(const char *s, int64_t now_ms, int64_t *out_ms, berth_error **err);

#endif
