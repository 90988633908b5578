/* Browser sessions of the web UI: a signed-in browser holds a random session id in an HttpOnly cookie instead of
 * its API key. The table lives in the server's memory only (a restart signs everyone out) and keeps, per session:
 * a hash of the id (the id itself is not kept), the API key it was opened with (checked again on every request,
 * so revoking the key ends the session), a CSRF token, and the expiry. Hard cap: SRV_SESSION_MAX sessions; at the
 * cap the one closest to expiry is dropped. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "server.h"

typedef struct session {
  unsigned char id_hash[crypto_generichash_BYTES];
  char csrf[SRV_SESSION_TOKEN_LEN + 1];
  char *key; /* the API key, wiped when the session ends */
  int64_t expires;
} session;

struct srv_sessions {
  pthread_mutex_t mu;
  session *v;
  size_t n;
};

int
srv_sessions_new(srv_sessions **out, berth_error **err)
{
  if (sodium_init() < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "initialize libsodium");
  srv_sessions *ss = calloc(1, sizeof *ss);
  if (ss == NULL || (ss->v = calloc(SRV_SESSION_MAX, sizeof *ss->v)) == NULL) {
    free(ss);
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  pthread_mutex_init(&ss->mu, NULL);
  *out = ss;
  return 0;
}

static void
drop(srv_sessions *ss, size_t i)
{
  if (ss->v[i].key) {
    sodium_memzero(ss->v[i].key, strlen(ss->v[i].key));
    free(ss->v[i].key);
  }
  ss->v[i] = ss->v[--ss->n];
  memset(&ss->v[ss->n], 0, sizeof ss->v[ss->n]);
}

void
srv_sessions_free(srv_sessions *ss)
{
  if (ss == NULL)
    return;
  while (ss->n > 0)
    drop(ss, 0);
  pthread_mutex_destroy(&ss->mu);
  free(ss->v);
  free(ss);
}

static void
random_token(char out[SRV_SESSION_TOKEN_LEN + 1])
{
  unsigned char b[32];
  randombytes_buf(b, sizeof b);
  sodium_bin2base64(out, SRV_SESSION_TOKEN_LEN + 1, b, sizeof b, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero(b, sizeof b);
}

static void
hash_id(const char *id, unsigned char out[crypto_generichash_BYTES])
{
  crypto_generichash(out, crypto_generichash_BYTES, (const unsigned char *) id, strlen(id), NULL, 0);
}

int
srv_session_create(srv_sessions *ss, const char *key, char id[SRV_SESSION_TOKEN_LEN + 1],
                   char csrf[SRV_SESSION_TOKEN_LEN + 1], int64_t *expires, berth_error **err)
{
  char *copy = strdup(key);
  if (copy == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  random_token(id);
  random_token(csrf);
  int64_t now = berth_now_ms();
  pthread_mutex_lock(&ss->mu);
  for (size_t i = 0; i < ss->n;) /* expired ones go first */
    if (ss->v[i].expires <= now)
      drop(ss, i);
    else
      i++;
  if (ss->n == SRV_SESSION_MAX) {
    size_t oldest = 0;
    for (size_t i = 1; i < ss->n; i++)
      if (ss->v[i].expires < ss->v[oldest].expires)
        oldest = i;
    drop(ss, oldest);
  }
  session *s = &ss->v[ss->n++];
  hash_id(id, s->id_hash);
  memcpy(s->csrf, csrf, SRV_SESSION_TOKEN_LEN + 1);
  s->key = copy;
  s->expires = *expires = now + SRV_SESSION_TTL_MS;
  pthread_mutex_unlock(&ss->mu);
  return 0;
}

/* Index of the live session with this id, or -1; drops it when expired. Called with the lock held. */
static ssize_t
find(srv_sessions *ss, const char *id)
{
  if (id == NULL || strlen(id) != SRV_SESSION_TOKEN_LEN)
    return -1;
  unsigned char h[crypto_generichash_BYTES];
  hash_id(id, h);
  for (size_t i = 0; i < ss->n; i++) {
    if (sodium_memcmp(ss->v[i].id_hash, h, sizeof h) != 0)
      continue;
    if (ss->v[i].expires <= berth_now_ms()) {
      drop(ss, i);
      return -1;
    }
    return (ssize_t) i;
  }
  return -1;
}

int
srv_session_get(srv_sessions *ss, const char *id, char **key, char csrf[SRV_SESSION_TOKEN_LEN + 1], int64_t *expires)
{
  pthread_mutex_lock(&ss->mu);
  ssize_t i = find(ss, id);
  int rc = -1;
  if (i >= 0 && (*key = strdup(ss->v[i].key)) != NULL) {
    memcpy(csrf, ss->v[i].csrf, SRV_SESSION_TOKEN_LEN + 1);
    if (expires)
      *expires = ss->v[i].expires;
    rc = 0;
  }
  pthread_mutex_unlock(&ss->mu);
  return rc;
}

void
srv_session_end(srv_sessions *ss, const char *id)
{
  pthread_mutex_lock(&ss->mu);
  ssize_t i = find(ss, id);
  if (i >= 0)
    drop(ss, (size_t) i);
  pthread_mutex_unlock(&ss->mu);
}

bool
srv_csrf_ok(const char *presented, const char *csrf)
{
  return presented != NULL && strlen(presented) == SRV_SESSION_TOKEN_LEN
         && sodium_memcmp(presented, csrf, SRV_SESSION_TOKEN_LEN) == 0;
}
