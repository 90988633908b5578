/* The webhook deliverer: outbox events fanned out into deliveries, each claimed with a lease and POSTed with its
 * signature; every attempt stored. Runs in `berth serve`'s own threads, never in a task's path, so a slow receiver
 * delays only other deliveries. */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "berth/redactor.h"
#include "berth/task_json.h"
#include "berth/webhook.h"

#define FAN_OUT_BATCH 100

int64_t
berth_webhook_backoff_ms(int retry)
{
  const char *knob = getenv("BERTH_WEBHOOK_BACKOFF_MS");
  int64_t base = knob && *knob ? strtoll(knob, NULL, 10) : BERTH_WEBHOOK_BACKOFF_MS;
  if (base <= 0)
    base = BERTH_WEBHOOK_BACKOFF_MS;
  return base << (retry < 1 ? 0 : retry > 20 ? 19 : retry - 1);
}

static bool
wants(const berth_webhook *w, const berth_outbox_event *e)
{
  if (w->created_at > e->created_at) /* a webhook hears of what happens after it was added */
    return false;
  bool kind = false;
  for (size_t i = 0; i < w->events.n && !kind; i++)
    kind = strcmp(w->events.v[i], e->kind) == 0;
  if (!kind)
    return false;
  if (w->stack_pattern == NULL || strcmp(e->kind, "audit") == 0)
    return true;
  return e->stack != NULL && fnmatch(w->stack_pattern, e->stack, 0) == 0;
}

static int
fan_out(berth_store *st, berth_error **err)
{
  berth_outbox_event *ev = NULL;
  size_t n = 0;
  int rc = berth_store_outbox_pending(st, FAN_OUT_BATCH, &ev, &n, err);
  if (rc < 0 || n == 0) {
    berth_outbox_events_free(ev, n);
    return rc;
  }
  berth_webhook **hooks = NULL;
  size_t nh = 0;
  rc = berth_store_webhook_list(st, &hooks, &nh, err);
  int64_t *ids = rc == 0 ? calloc(nh + 1, sizeof *ids) : NULL;
  if (rc == 0 && ids == NULL)
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  for (size_t i = 0; rc == 0 && i < n; i++) {
    size_t k = 0;
    for (size_t h = 0; h < nh; h++)
      if (wants(hooks[h], &ev[i]))
        ids[k++] = hooks[h]->id;
    rc = berth_store_outbox_fan_out(st, ev[i].id, ids, k, err);
  }
  free(ids);
  berth_webhooks_free(hooks, nh);
  berth_outbox_events_free(ev, n);
  return rc;
}

/* Every string of the payload through the stack's display secrets (its secret values and the built-in patterns). */
static void
redact_strings(cJSON *j, berth_secrets *s)
{
  for (cJSON *it = j ? j->child : NULL; it; it = it->next) {
    if (cJSON_IsString(it)) {
      char *r = berth_secrets_redact_string(s, it->valuestring, strlen(it->valuestring), NULL);
      if (r == NULL)
        r = strdup(BERTH_NOT_SHOWN);
      if (r != NULL) {
        free(it->valuestring);
        it->valuestring = r;
      } else { /* nothing at all could be allocated: the value is cleared in place, never sent */
        explicit_bzero(it->valuestring, strlen(it->valuestring));
      }
    } else {
      redact_strings(it, s);
    }
  }
}

static char *
redacted_body(berth_store *st, const berth_delivery *d)
{
  cJSON *j = cJSON_Parse(d->payload);
  berth_error *e = NULL;
  berth_secrets *s = berth_display_secrets(st, d->stack, &e);
  berth_error_free(e); /* not sent now: the delivery is tried again */
  if (j == NULL || s == NULL) {
    cJSON_Delete(j);
    berth_secrets_free(s);
    return NULL;
  }
  redact_strings(j, s);
  berth_secrets_free(s);
  cJSON_AddStringToObject(j, "delivery", d->id);
  char *body = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  return body;
}

static size_t
discard(char *p, size_t size, size_t n, void *ud)
{
  size_t *seen = ud;
  (void) p;
  *seen += size * n;
  return *seen > BERTH_WEBHOOK_RESPONSE_MAX ? 0 : size * n; /* a receiver that talks on is cut off */
}

typedef struct attempt {
  long status;      /* 0 when no answer came */
  int64_t duration; /* ms */
  char error[256];
} attempt;

static void
post(const berth_webhook *w, const berth_delivery *d, const char *body, attempt *a)
{
  CURL *c = curl_easy_init();
  if (c == NULL) {
    snprintf(a->error, sizeof a->error, "out of memory");
    return;
  }
  char ts_h[64], ev_h[128], id_h[128], sig_h[BERTH_WEBHOOK_SIGNATURE_LEN + 32], sig[BERTH_WEBHOOK_SIGNATURE_LEN];
  int64_t ts = (int64_t) time(NULL);
  berth_webhook_sign(w->secret, ts, body, strlen(body), sig);
  snprintf(ts_h, sizeof ts_h, "X-Berth-Timestamp: %lld", (long long) ts);
  snprintf(ev_h, sizeof ev_h, "X-Berth-Event: %s", d->kind);
  snprintf(id_h, sizeof id_h, "X-Berth-Delivery: %s", d->id);
  snprintf(sig_h, sizeof sig_h, "X-Berth-Signature-256: %s", sig);
  struct curl_slist *h = NULL;
  const char *const lines[]
      = { "Content-Type: application/json", "User-Agent: berth-webhook", "Expect:", ts_h, ev_h, id_h, sig_h };
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
    h = curl_slist_append(h, lines[i]);
  char errbuf[CURL_ERROR_SIZE] = "";
  size_t seen = 0;
  curl_easy_setopt(c, CURLOPT_URL, w->url);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long) BERTH_WEBHOOK_TIMEOUT_MS);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long) strlen(body));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &seen);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  CURLcode cc = curl_easy_perform(c);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  a->duration = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
  if (cc != CURLE_OK) /* curl's message names the host and the failure, never the secret or the body */
    snprintf(a->error, sizeof a->error, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
  else if (a->status < 200 || a->status > 299)
    snprintf(a->error, sizeof a->error, "the receiver answered %ld", a->status);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
}

static bool
retryable(const attempt *a)
{
  return a->status == 0 || a->status == 408 || a->status == 429 || a->status >= 500;
}

static int
deliver_one(berth_store *st, berth_delivery *d, berth_error **err)
{
  berth_webhook *w = NULL;
  attempt a = { 0 };
  int n = d->attempts + 1;
  int rc = berth_store_webhook_get_id(st, d->webhook_id, &w, err);
  if (rc == BERTH_ENOTFOUND) { /* removed meanwhile: nothing to send to */
    berth_error_clear(err);
    return berth_store_delivery_attempt(st, d->id, n, berth_now_ms(), 0, 0, "the webhook was removed", "failed", 0,
                                        err);
  }
  if (rc < 0)
    return rc;
  char *body = redacted_body(st, d);
  int64_t at = berth_now_ms();
  if (body == NULL)
    snprintf(a.error, sizeof a.error, "the event could not be prepared");
  else
    post(w, d, body, &a);
  free(body);
  berth_webhook_free(w);
  const char *state = "failed";
  int64_t next = 0;
  if (a.status >= 200 && a.status <= 299)
    state = "delivered";
  else if (retryable(&a) && n < BERTH_WEBHOOK_ATTEMPTS) {
    state = "pending";
    next = berth_now_ms() + berth_webhook_backoff_ms(n);
  }
  return berth_store_delivery_attempt(st, d->id, n, at, (int) a.status, a.duration, a.error[0] ? a.error : NULL, state,
                                      next, err);
}

int
berth_webhook_deliver_due(berth_store *st, const char *owner, const atomic_bool *stop, int *sent, berth_error **err)
{
  int rc = fan_out(st, err);
  while (rc == 0 && !(stop && atomic_load(stop))) {
    berth_delivery *d = NULL;
    rc = berth_store_delivery_claim(st, owner, berth_now_ms(), BERTH_WEBHOOK_LEASE_MS, &d, err);
    if (rc <= 0)
      break;
    rc = deliver_one(st, d, err);
    berth_delivery_free(d);
    if (rc == 0 && sent)
      (*sent)++;
  }
  return rc < 0 ? rc : 0;
}
