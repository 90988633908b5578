/* Image pull: registry auth from ~/.docker/config.json, the JSON progress stream, errors inside a 200 stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "berth/cleanup.h"
#include "berth/image_ref.h"
#include "docker_http.h"

#define CONFIG_CAP (1u << 20)
#define PULL_LINE_CAP (64u * 1024u)

static char *
read_small_file(const char *path, size_t cap)
{
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  berth_buf b;
  berth_buf_init(&b, cap);
  char tmp[4096];
  size_t n;
  int ok = 0;
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
    if ((ok = berth_buf_append(&b, tmp, n)) < 0)
      break;
  fclose(f);
  if (ok < 0) {
    berth_buf_free(&b);
    return NULL;
  }
  return berth_buf_steal(&b);
}

/* Builds the X-Registry-Auth header for the image's registry from the `auths` of the docker config, or NULL. */
static char *
registry_auth_header(const char *domain)
{
  const char *dir = getenv("DOCKER_CONFIG");
  cleanup_free char *path = NULL;
  const char *home = getenv("HOME");
  if ((dir ? asprintf(&path, "%s/config.json", dir) : asprintf(&path, "%s/.docker/config.json", home ? home : "/")) < 0)
    return NULL;
  cleanup_free char *text = read_small_file(path, CONFIG_CAP);
  if (text == NULL)
    return NULL;
  cJSON *cfg = cJSON_Parse(text);
  cJSON *auths = cJSON_GetObjectItemCaseSensitive(cfg, "auths");
  const char *key_candidates[4] = { domain, NULL, NULL, NULL };
  cleanup_free char *https = NULL;
  if (asprintf(&https, "https://%s", domain) >= 0)
    key_candidates[1] = https;
  if (strcmp(domain, "docker.io") == 0) {
    key_candidates[2] = "https://index.docker.io/v1/";
    key_candidates[3] = "index.docker.io";
  }
  cJSON *entry = NULL;
  for (size_t i = 0; i < 4 && entry == NULL; i++)
    if (key_candidates[i])
      entry = cJSON_GetObjectItemCaseSensitive(auths, key_candidates[i]);
  char *header = NULL;
  cJSON *auth = cJSON_GetObjectItemCaseSensitive(entry, "auth");
  cJSON *token = cJSON_GetObjectItemCaseSensitive(entry, "identitytoken");
  cJSON *out = cJSON_CreateObject();
  bool have = false;
  if (cJSON_IsString(auth)) {
    size_t alen = strlen(auth->valuestring);
    unsigned char *raw = malloc(alen + 1);
    size_t rawlen = 0;
    if (raw
        && sodium_base642bin(raw, alen, auth->valuestring, alen, "\n\r ", &rawlen, NULL, sodium_base64_VARIANT_ORIGINAL)
               == 0) {
      raw[rawlen] = '\0';
      char *colon = strchr((char *) raw, ':');
      if (colon) {
        *colon = '\0';
        cJSON_AddStringToObject(out, "username", (char *) raw);
        cJSON_AddStringToObject(out, "password", colon + 1);
        have = true;
      }
      sodium_memzero(raw, rawlen);
    }
    free(raw);
  }
  if (cJSON_IsString(token)) {
    cJSON_AddStringToObject(out, "identitytoken", token->valuestring);
    have = true;
  }
  if (have) {
    cJSON_AddStringToObject(out, "serveraddress", domain);
    char *json = cJSON_PrintUnformatted(out);
    size_t jl = json ? strlen(json) : 0;
    size_t b64len = sodium_base64_encoded_len(jl, sodium_base64_VARIANT_URLSAFE);
    char *b64 = json ? malloc(b64len) : NULL;
    if (b64) {
      sodium_bin2base64(b64, b64len, (unsigned char *) json, jl, sodium_base64_VARIANT_URLSAFE);
      if (asprintf(&header, "X-Registry-Auth: %s", b64) < 0)
        header = NULL;
      sodium_memzero(b64, b64len);
    }
    if (json)
      sodium_memzero(json, jl);
    free(json);
    free(b64);
  }
  cJSON_Delete(out);
  cJSON_Delete(cfg);
  return header;
}

typedef struct pull_state {
  berth_buf line;
  char *error; /* first error line from the stream */
  bool line_too_long;
  berth_pull_progress_fn progress;
  void *userdata;
} pull_state;

static void
pull_handle_line(pull_state *ps, const char *line, size_t len)
{
  cJSON *j = cJSON_ParseWithLength(line, len);
  if (j == NULL)
    return;
  cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
  cJSON *ed = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "errorDetail"), "message");
  if (ps->error == NULL && (cJSON_IsString(e) || cJSON_IsString(ed)))
    ps->error = strdup(cJSON_IsString(ed) ? ed->valuestring : e->valuestring);
  cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
  cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
  const cJSON *detail = cJSON_GetObjectItemCaseSensitive(j, "progressDetail");
  const cJSON *cur = cJSON_GetObjectItemCaseSensitive(detail, "current");
  const cJSON *tot = cJSON_GetObjectItemCaseSensitive(detail, "total");
  if (ps->progress && cJSON_IsString(st))
    ps->progress(ps->userdata, st->valuestring, cJSON_IsString(id) ? id->valuestring : NULL,
                 cJSON_IsNumber(cur) && cur->valuedouble >= 0 ? (int64_t) cur->valuedouble : -1,
                 cJSON_IsNumber(tot) && tot->valuedouble >= 0 ? (int64_t) tot->valuedouble : -1);
  cJSON_Delete(j);
}

static int
pull_on_bytes(void *ud, const char *data, size_t len)
{
  pull_state *ps = ud;
  for (size_t i = 0; i < len; i++) {
    if (data[i] == '\n') {
      if (!ps->line_too_long)
        pull_handle_line(ps, ps->line.data ? ps->line.data : "", ps->line.len);
      berth_buf_reset(&ps->line);
      ps->line_too_long = false;
    } else if (!ps->line_too_long && berth_buf_append(&ps->line, data + i, 1) < 0) {
      ps->line_too_long = true; /* skip an oversized progress line */
    }
  }
  return 0;
}

static bool
message_is_transient(long status, const char *msg)
{
  static const char *const permanent[] = { "not found",
                                           "manifest unknown",
                                           "unauthorized",
                                           "denied",
                                           "invalid reference",
                                           "no such host",
                                           "repository does not exist",
                                           "pull access denied",
                                           "authentication required" };
  if (status == 400 || status == 401 || status == 403 || status == 404)
    return false;
  for (size_t i = 0; msg && i < sizeof permanent / sizeof permanent[0]; i++)
    if (strcasestr(msg, permanent[i]))
      return false;
  return true; /* timeouts, resets, 5xx, TLS handshake trouble, "toomanyrequests" ... */
}

int
berth_docker_image_pull(berth_docker *d, const char *ref, berth_pull_progress_fn progress, void *userdata,
                        bool *transient, berth_error **err)
{
  *transient = false;
  berth_image_ref r;
  int rc = berth_image_ref_parse(ref, &r, err);
  if (rc < 0)
    return rc;
  rc = docker_negotiate(d, err);
  if (rc < 0) {
    *transient = true;
    berth_image_ref_clear(&r);
    return rc;
  }
  cleanup_free char *repo = berth_image_ref_repository(&r);
  cleanup_free char *erepo = repo ? curl_easy_escape(NULL, repo, 0) : NULL;
  cleanup_free char *etag = curl_easy_escape(NULL, r.digest ? r.digest : r.tag, 0);
  cleanup_free char *path = NULL;
  cleanup_free char *auth = registry_auth_header(r.domain);
  if (erepo == NULL || etag == NULL || asprintf(&path, "/images/create?fromImage=%s&tag=%s", erepo, etag) < 0) {
    berth_image_ref_clear(&r);
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  pull_state ps = { .progress = progress, .userdata = userdata };
  berth_buf_init(&ps.line, PULL_LINE_CAP);
  docker_req rq = {
    .method = "POST", .path = path, .stream = true, .sink = pull_on_bytes, .sink_userdata = &ps, .extra_header = auth
  };
  docker_resp rs;
  docker_resp_init(&rs);
  rc = docker_perform(d, &rq, &rs, err);
  if (rc < 0) {
    *transient = true;
  } else if (rs.status != 200) {
    rc = docker_status_error(&rs, err, "pull image");
    *transient = message_is_transient(rs.status, (*err)->msg);
    berth_error_wrap(err, "`%s`", ref);
  } else {
    if (ps.line.len > 0)
      pull_handle_line(&ps, ps.line.data, ps.line.len);
    if (ps.error != NULL) {
      *transient = message_is_transient(200, ps.error);
      rc = berth_error_set(err, BERTH_EDOCKER, "pull image `%s`: %s", ref, ps.error);
    }
  }
  docker_resp_clear(&rs);
  berth_buf_free(&ps.line);
  free(ps.error);
  berth_image_ref_clear(&r);
  if (auth)
    sodium_memzero(auth, strlen(auth));
  return rc;
}
