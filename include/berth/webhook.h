/* Signed webhooks: on every matching event a JSON POST to the webhook's URL, with
 *   X-Berth-Event: the event kind ("task.state", "audit")
 *   X-Berth-Delivery: the delivery's id (the same on every retry of that delivery)
 *   X-Berth-Timestamp: unix seconds of the attempt
 *   X-Berth-Signature-256: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the webhook's secret>
 *
 * Events are written to an outbox in the same transaction as the change they report (a task transition: see
 * berth_store_task_transition), so none is lost by a crash. A deliverer (`berth serve`) fans each event out into one
 * delivery per matching webhook and sends it: at least once, retried with exponential backoff on network errors,
 * timeouts and 5xx (BERTH_WEBHOOK_ATTEMPTS attempts over about an hour), never on another 4xx than 408 and 429.
 * Every attempt is stored. A delivery is claimed with a lease, so with several servers on one store each is sent by
 * one of them at a time. Without a running server events wait in the outbox.
 *
 * The secret is sealed at rest like stack secrets and never shown (list, JSON, audit, errors, deliveries).
 * Ownership: records returned through `out` belong to the caller (the matching _free). */
#ifndef BERTH_WEBHOOK_H
#define BERTH_WEBHOOK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/error.h"
#include "berth/store.h"

struct cJSON;

#define BERTH_WEBHOOK_ATTEMPTS 9             /* the first and 8 retries */
#define BERTH_WEBHOOK_BACKOFF_MS 15000       /* before the first retry; doubles each time (15 s ... 32 min) */
#define BERTH_WEBHOOK_TIMEOUT_MS 10000       /* one request, connecting included */
#define BERTH_WEBHOOK_LEASE_MS 30000         /* a claimed delivery is another host's again after this */
#define BERTH_WEBHOOK_RESPONSE_MAX (1 << 20) /* a receiver's answer is read and dropped; a longer one is cut off */

typedef struct berth_webhook {
  int64_t id;
  char *name;          /* unique: [A-Za-z0-9][A-Za-z0-9_.-]{0,62} */
  char *url;           /* http:// or https:// */
  char *secret;        /* in clear in memory only (filled by berth_store_webhook_get with_secret) */
  berth_strv events;   /* "task.state", "audit" */
  char *stack_pattern; /* fnmatch glob on the event's stack; NULL = every stack */
  char *actor;
  int64_t created_at;
} berth_webhook;
void berth_webhook_free(berth_webhook *w); /* wipes the secret; accepts NULL */
void berth_webhooks_free(berth_webhook **v, size_t n);

/* {"name", "url", "events", "stack", "created_at", "actor"}: never the secret. */
struct cJSON *berth_webhook_to_json(const berth_webhook *w);
/* The body of POST /v1/webhooks: {"name", "url", "secret", "events": [...], "stack"}; validated. */
int berth_webhook_from_json(const struct cJSON *o, berth_webhook **out, berth_error **err);
int berth_webhook_validate(const berth_webhook *w, berth_error **err);

/* Audited changes (admin). add: BERTH_EBUSY when the name is taken. remove also drops its deliveries. */
int berth_webhook_add(berth_store *st, berth_webhook *w, const char *actor, berth_error **err);
int berth_webhook_remove(berth_store *st, const char *name, const char *actor, berth_error **err);
/* A delivery sent again from its first attempt (its id kept): BERTH_ENOTFOUND for an unknown id. */
int berth_webhook_redeliver(berth_store *st, const char *delivery_id, const char *actor, berth_error **err);
/* The deliveries of webhook `name`, newest first (at most limit), each with its attempts:
 * {"webhook", "deliveries": [{"id", "event", "state", "attempts": [{"n", "at", "status_code", "duration_ms",
 * "error"}], ...}]}. */
int berth_webhook_deliveries_json(berth_store *st, const char *name, int limit, struct cJSON **out, berth_error **err);

/* The signature header's value for body at timestamp ts: "sha256=" + 64 hex digits + NUL (72 bytes). */
#define BERTH_WEBHOOK_SIGNATURE_LEN 72
void berth_webhook_sign(const char *secret, int64_t ts, const char *body, size_t len,
                        char out[BERTH_WEBHOOK_SIGNATURE_LEN]);

/* One pass of the deliverer: fans new outbox events out into deliveries, then claims and sends due deliveries until
 * none is due (or `stop` becomes true). owner names this process in claims. *sent (optional) counts attempts. */
int berth_webhook_deliver_due(berth_store *st, const char *owner, const atomic_bool *stop, int *sent,
                              berth_error **err);
/* The delay before retry n (1-based): base * 2^(n-1), base from BERTH_WEBHOOK_BACKOFF_MS in the environment (a
 * testing knob) or the default above. */
int64_t berth_webhook_backoff_ms(int retry);

/* ---- the store's side (src/lib/store/webhook_store.c) ---- */
int berth_store_webhook_create(berth_store *st, const berth_webhook *w, berth_error **err);
int berth_store_webhook_get(berth_store *st, const char *name, bool with_secret, berth_webhook **out,
                            berth_error **err);
int berth_store_webhook_get_id(berth_store *st, int64_t id, berth_webhook **out, berth_error **err); /* with secret */
int berth_store_webhook_list(berth_store *st, berth_webhook ***out, size_t *n, berth_error **err);
int berth_store_webhook_delete(berth_store *st, const char *name, berth_error **err);

typedef struct berth_outbox_event {
  int64_t id;
  char *kind, *stack, *payload;
  int64_t created_at;
} berth_outbox_event;
void berth_outbox_events_free(berth_outbox_event *v, size_t n);
/* Events not fanned out yet, oldest first (at most limit). */
int berth_store_outbox_pending(berth_store *st, int limit, berth_outbox_event **out, size_t *n, berth_error **err);
/* In one transaction: a delivery (new random id) per webhook id in ids (an existing one is kept), and the event
 * marked fanned out. */
int berth_store_outbox_fan_out(berth_store *st, int64_t event_id, const int64_t *webhook_ids, size_t n,
                               berth_error **err);

typedef struct berth_delivery {
  char *id;
  int64_t webhook_id, event_id;
  char *kind, *stack, *payload;
  int attempts;
} berth_delivery;
void berth_delivery_free(berth_delivery *d); /* accepts NULL */
/* Claims the oldest due pending delivery for owner until now + lease: 1 with *out, 0 when none is due. */
int berth_store_delivery_claim(berth_store *st, const char *owner, int64_t now_ms, int64_t lease_ms,
                               berth_delivery **out, berth_error **err);
/* Stores attempt n and the delivery's new state ("delivered", "failed", or "pending" with next_at), releasing the
 * claim. error may be NULL. */
int berth_store_delivery_attempt(berth_store *st, const char *id, int n, int64_t at, int status, int64_t duration_ms,
                                 const char *error, const char *state, int64_t next_at, berth_error **err);
/* Back to pending from the start: BERTH_ENOTFOUND for an unknown id. */
int berth_store_delivery_reset(berth_store *st, const char *id, berth_error **err);
/* Retention: deliveries that ended (delivered or failed) and their attempts, outbox events left without deliveries,
 * and schedule fire records, older than before_ms, are deleted (`berth serve` does it every 10 minutes for what is
 * older than BERTH_EVENTS_RETENTION_MS). Pending deliveries are kept whatever their age. */
#define BERTH_EVENTS_RETENTION_MS (30LL * 24 * 3600 * 1000)
int berth_store_events_prune(berth_store *st, int64_t before_ms, berth_error **err);

/* For the metrics: attempts by outcome, deliveries by state. */
typedef struct berth_delivery_counts {
  int64_t attempts_ok, attempts_failed; /* 2xx answers; anything else (an error, another status) */
  int64_t pending, delivered, failed;   /* deliveries by state */
} berth_delivery_counts;
int berth_store_delivery_counts(berth_store *st, berth_delivery_counts *out, berth_error **err);

#endif
