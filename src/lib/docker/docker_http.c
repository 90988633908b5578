/* HTTP transport for the Docker client: libcurl over a unix socket or TCP(+TLS), capped buffers, clear errors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "docker_http.h"

void
docker_resp_init(docker_resp *rs)
{
  memset(rs, 0, sizeof *rs);
  berth_buf_init(&rs->body, DOCKER_BODY_CAP);
}

void
docker_resp_clear(docker_resp *rs)
{
  berth_buf_free(&rs->body);
  berth_error_free(rs->producer_err);
  rs->producer_err = NULL;
}

typedef struct xfer {
  CURL *curl;
  const docker_req *rq;
  docker_resp *rs;
  bool too_big;
  bool sink_failed;
} xfer;

static size_t
on_header(char *buf, size_t size, size_t n, void *ud)
{
  xfer *x = ud;
  size_t len = size * n;
  static const char name[] = "api-version:";
  if (len > sizeof name - 1 && strncasecmp(buf, name, sizeof name - 1) == 0) {
    const char *v = buf + sizeof name - 1;
    size_t vl = len - (sizeof name - 1);
    while (vl && (*v == ' ' || *v == '\t'))
      v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
      vl--;
    if (vl < sizeof x->rs->api_version) {
      memcpy(x->rs->api_version, v, vl);
      x->rs->api_version[vl] = '\0';
    }
  }
  return len;
}

static size_t
on_body(char *buf, size_t size, size_t n, void *ud)
{
  xfer *x = ud;
  size_t len = size * n;
  long status = 0;
  curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
  if (x->rq->sink != NULL && status >= 200 && status < 300) {
    if (x->rq->sink(x->rq->sink_userdata, buf, len) < 0) {
      x->sink_failed = true;
      return 0;
    }
    return len;
  }
  if (x->rq->sink != NULL && x->rs->body.len + len > DOCKER_ERROR_BODY_CAP) {
    size_t room = DOCKER_ERROR_BODY_CAP - x->rs->body.len;
    berth_buf_append(&x->rs->body, buf, room);
    return len; /* keep the head of an oversized error body, drop the rest */
  }
  int arc = berth_buf_append(&x->rs->body, buf, len);
  if (arc == BERTH_BUF_TOO_BIG) {
    x->too_big = true;
    return 0;
  }
  if (arc < 0)
    return 0; /* out of memory: libcurl ends the transfer with a write error */
  return len;
}

static size_t
on_read(char *buf, size_t size, size_t n, void *ud)
{
  xfer *x = ud;
  berth_error *e = NULL;
  ssize_t got = x->rq->producer(x->rq->producer_userdata, buf, size * n, &e);
  if (got < 0) {
    if (x->rs->producer_err == NULL)
      x->rs->producer_err = e;
    else
      berth_error_free(e);
    return CURL_READFUNC_ABORT;
  }
  return (size_t) got;
}

static int
on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
  (void) dltotal, (void) dlnow, (void) ultotal, (void) ulnow;
  xfer *x = ud;
  if (x->rq->tick != NULL && x->rq->tick(x->rq->tick_userdata) != 0) {
    x->rs->aborted = true;
    return 1;
  }
  return 0;
}

static int
connect_error(berth_docker *d, CURL *c, CURLcode cc, berth_error **err)
{
  long oserr = 0;
  curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &oserr);
  const char *host = d->ep.host;
  if (d->ep.socket_path != NULL) {
    struct stat stb;
    if (stat(d->ep.socket_path, &stb) < 0) {
      if (errno == EACCES)
        return berth_error_set(err, BERTH_EDOCKER,
                               "permission denied while trying to reach the Docker daemon socket at %s", host);
      return berth_error_set(err, BERTH_EDOCKER,
                             "cannot connect to the Docker daemon at %s: no such socket (is dockerd running?)", host);
    }
    if (!S_ISSOCK(stb.st_mode))
      return berth_error_set(err, BERTH_EDOCKER, "cannot connect to the Docker daemon at %s: %s is not a socket", host,
                             d->ep.socket_path);
  }
  if (oserr == EACCES)
    return berth_error_set(err, BERTH_EDOCKER,
                           "permission denied while trying to connect to the Docker daemon socket at %s", host);
  if (oserr == ECONNREFUSED)
    return berth_error_set(err, BERTH_EDOCKER,
                           "cannot connect to the Docker daemon at %s: connection refused (is dockerd running?)", host);
  if (oserr == ENOENT)
    return berth_error_set(err, BERTH_EDOCKER,
                           "cannot connect to the Docker daemon at %s: no such socket (is dockerd running?)", host);
  return berth_error_set(err, BERTH_EDOCKER, "cannot connect to the Docker daemon at %s: %s", host,
                         curl_easy_strerror(cc));
}

static void
setup_handle(berth_docker *d, CURL *c, bool stream)
{
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (d->ep.socket_path != NULL)
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, d->ep.socket_path);
  if (d->ep.tls) {
    if (d->ep.tls_verify) {
      curl_easy_setopt(c, CURLOPT_CAINFO, d->ep.ca);
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    } else {
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    curl_easy_setopt(c, CURLOPT_SSLCERT, d->ep.cert);
    curl_easy_setopt(c, CURLOPT_SSLKEY, d->ep.key);
  }
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
  if (!stream)
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L); /* ordinary calls answer in well under this */
  else {
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 0L);
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024L); /* fewer, larger reads for big streams */
  }
}

#define DOCKER_QUICK_TIMEOUT_S 15

/* A stream whose caller must act while it is quiet (flush live output, check timeouts): libcurl's progress callback
 * runs only about once a second on an idle transfer, so the transfer is driven here and the tick runs after every
 * read and at least every TICK_MS. */
#define TICK_MS 10
static CURLcode
perform_ticking(CURL *c, xfer *x)
{
  CURLM *m = curl_multi_init();
  if (m == NULL || curl_multi_add_handle(m, c) != CURLM_OK) {
    curl_multi_cleanup(m);
    return CURLE_OUT_OF_MEMORY;
  }
  CURLcode cc = CURLE_OK;
  for (;;) {
    int running = 0;
    if (curl_multi_perform(m, &running) != CURLM_OK) {
      cc = CURLE_RECV_ERROR;
      break;
    }
    if (running == 0) {
      int left = 0;
      CURLMsg *msg;
      while ((msg = curl_multi_info_read(m, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE)
          cc = msg->data.result;
      break;
    }
    if (x->rq->tick(x->rq->tick_userdata) != 0) {
      x->rs->aborted = true;
      cc = CURLE_ABORTED_BY_CALLBACK;
      break;
    }
    if (curl_multi_poll(m, NULL, 0, TICK_MS, NULL) != CURLM_OK) {
      cc = CURLE_RECV_ERROR;
      break;
    }
  }
  curl_multi_remove_handle(m, c);
  curl_multi_cleanup(m);
  return cc;
}

int
docker_perform(berth_docker *d, const docker_req *rq, docker_resp *rs, berth_error **err)
{
  CURL *c;
  if (rq->stream) {
    c = curl_easy_init();
  } else {
    if (d->curl == NULL)
      d->curl = curl_easy_init();
    else
      curl_easy_reset(d->curl); /* keeps the live connection in the handle's cache */
    c = d->curl;
  }
  if (c == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "cannot create a curl handle");
  setup_handle(d, c, rq->stream);
  /* /_ping and /version: a daemon that accepts and never answers (frozen, or a wrong endpoint) is a failure in
   * seconds, not in the 5 minutes an ordinary call may take */
  if (rq->unversioned && !rq->stream)
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long) DOCKER_QUICK_TIMEOUT_S);

  char *url = NULL;
  int n = rq->unversioned || d->api_version[0] == '\0'
              ? asprintf(&url, "%s%s", d->ep.base_url, rq->path)
              : asprintf(&url, "%s/v%s%s", d->ep.base_url, d->api_version, rq->path);
  if (n < 0) { /* the pointer is undefined then */
    url = NULL;
    if (rq->stream)
      curl_easy_cleanup(c);
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  curl_easy_setopt(c, CURLOPT_URL, url);

  struct curl_slist *hdrs = NULL;
  hdrs = curl_slist_append(hdrs, "Expect:");
  if (rq->body != NULL)
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
  if (rq->producer != NULL)
    hdrs = curl_slist_append(hdrs, "Content-Type: application/x-tar");
  if (rq->extra_header != NULL)
    hdrs = curl_slist_append(hdrs, rq->extra_header);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);

  xfer x = { .curl = c, .rq = rq, .rs = rs };
  if (strcmp(rq->method, "HEAD") == 0) {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (strcmp(rq->method, "PUT") == 0 && rq->producer != NULL) {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &x);
  } else if (strcmp(rq->method, "POST") == 0) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long) (rq->body ? rq->body_len : 0));
  } else if (strcmp(rq->method, "GET") != 0) {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
  }
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
  if (rq->tick != NULL && !rq->stream) {
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
  }
  /* hijacked exec streams are closed by the daemon anyway; a fresh request's connection is not kept either (the
   * handle's kept one stays for the next ordinary call) */
  if (rq->stream || rq->fresh)
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
  if (rq->fresh)
    curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);

  CURLcode cc = rq->stream && rq->tick != NULL ? perform_ticking(c, &x) : curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rs->status);
  int rc = 0;
  if (cc == CURLE_COULDNT_CONNECT
      || (cc != CURLE_OK && rs->status == 0 && cc != CURLE_ABORTED_BY_CALLBACK && cc != CURLE_READ_ERROR
          && cc != CURLE_ABORTED_BY_CALLBACK)) {
    if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST)
      rc = connect_error(d, c, cc, err);
    else if (cc == CURLE_OPERATION_TIMEDOUT)
      rc = berth_error_set(err, BERTH_EDOCKER,
                           "Docker daemon at %s: %s %s: no answer within %d s (is the daemon stopped or hung?)",
                           d->ep.host, rq->method, rq->path, rq->unversioned ? DOCKER_QUICK_TIMEOUT_S : 300);
    else
      rc = berth_error_set(err, BERTH_EDOCKER, "Docker daemon at %s: %s %s failed: %s", d->ep.host, rq->method,
                           rq->path, curl_easy_strerror(cc));
  } else if (x.too_big) {
    rc = berth_error_set(err, BERTH_EDOCKER, "Docker daemon response to %s %s exceeds the cap of %u bytes", rq->method,
                         rq->path, DOCKER_BODY_CAP);
  } else if (rs->producer_err != NULL) {
    rc = berth_error_set(err, rs->producer_err->code, "%s", rs->producer_err->msg);
  } else if (x.sink_failed) {
    rc = berth_error_set(err, BERTH_EINTERNAL, "%s %s: the consumer stopped the transfer", rq->method, rq->path);
  } else if (rs->aborted) {
    rc = 0; /* the caller asked for it and knows why */
  } else if (cc != CURLE_OK && cc != CURLE_PARTIAL_FILE && cc != CURLE_RECV_ERROR) {
    rc = berth_error_set(err, BERTH_EDOCKER, "Docker daemon at %s: %s %s failed: %s", d->ep.host, rq->method, rq->path,
                         curl_easy_strerror(cc));
  }
  curl_slist_free_all(hdrs);
  free(url);
  if (rq->stream)
    curl_easy_cleanup(c);
  return rc;
}

/* A body that is not a Docker error is quoted only whole (the request's env may be in it, masked later only where it
 * is whole), and up to this size. */
#define DOCKER_ERROR_BODY_SHOWN 1024

/* p[0..n) (n <= DOCKER_ERROR_BODY_SHOWN) as one line in line: control bytes become spaces, ending at the first NUL. */
static const char *
one_line(const char *p, size_t n, char line[DOCKER_ERROR_BODY_SHOWN + 1])
{
  size_t i = 0;
  for (; i < n && p[i]; i++)
    line[i] = (unsigned char) p[i] < 0x20 || p[i] == 0x7f ? ' ' : p[i];
  line[i] = '\0';
  return line;
}

int
docker_status_error(const docker_resp *rs, berth_error **err, const char *what)
{
  int code = BERTH_EDOCKER;
  if (rs->status == 404)
    code = BERTH_ENOTFOUND;
  else if (rs->status == 409)
    code = BERTH_EBUSY;
  else if (rs->status == 400)
    code = BERTH_EINVAL;
  const char *msg = NULL;
  char line[DOCKER_ERROR_BODY_SHOWN + 1];
  cJSON *j = rs->body.len ? cJSON_ParseWithLength(rs->body.data, rs->body.len) : NULL;
  cJSON *m = j ? cJSON_GetObjectItemCaseSensitive(j, "message") : NULL;
  if (cJSON_IsString(m))
    msg = m->valuestring;
  int rc;
  if (msg != NULL)
    rc = berth_error_set(err, code, "%s: %s", what, msg);
  else if (rs->body.len > 0 && rs->body.len <= DOCKER_ERROR_BODY_SHOWN)
    rc = berth_error_set(err, code, "%s: HTTP %ld: %s", what, rs->status, one_line(rs->body.data, rs->body.len, line));
  else if (rs->body.len > 0) /* never a cut: a cut could leave the prefix of a value the request carried unmasked */
    rc = berth_error_set(err, code, "%s: HTTP %ld and a %zu-byte body that is not a Docker error (not shown)", what,
                         rs->status, rs->body.len);
  else
    rc = berth_error_set(err, code, "%s: HTTP %ld", what, rs->status);
  cJSON_Delete(j);
  return rc;
}

int
docker_resp_json(const docker_resp *rs, cJSON **out, berth_error **err, const char *what)
{
  cJSON *j = rs->body.len ? cJSON_ParseWithLength(rs->body.data, rs->body.len) : NULL;
  if (j == NULL)
    return berth_error_set(err, BERTH_EDOCKER, "%s: the daemon sent a body that is not JSON", what);
  *out = j;
  return 0;
}

int
berth_docker_version_cmp(const char *a, const char *b)
{
  unsigned long amaj = strtoul(a, (char **) &a, 10), bmaj = strtoul(b, (char **) &b, 10);
  if (amaj != bmaj)
    return amaj < bmaj ? -1 : 1;
  unsigned long amin = *a == '.' ? strtoul(a + 1, NULL, 10) : 0;
  unsigned long bmin = *b == '.' ? strtoul(b + 1, NULL, 10) : 0;
  return amin < bmin ? -1 : amin > bmin;
}

int
docker_negotiate(berth_docker *d, berth_error **err)
{
  if (d->api_version[0] != '\0')
    return 0;
  if (d->ep.api_version != NULL) {
    snprintf(d->api_version, sizeof d->api_version, "%s", d->ep.api_version);
    return 0;
  }
  docker_req rq = { .method = "GET", .path = "/_ping", .unversioned = true };
  docker_resp rs;
  docker_resp_init(&rs);
  int rc = docker_perform(d, &rq, &rs, err);
  if (rc == 0 && rs.status != 200)
    rc = docker_status_error(&rs, err, "ping the Docker daemon");
  if (rc == 0) {
    /* no header: assume the oldest version the daemon must speak, as the docker CLI does */
    const char *server = rs.api_version[0] ? rs.api_version : "1.24";
    const char *use = berth_docker_version_cmp(server, BERTH_DOCKER_API_MAX) < 0 ? server : BERTH_DOCKER_API_MAX;
    if (berth_docker_version_cmp(use, BERTH_DOCKER_API_MIN) < 0)
      rc = berth_error_set(err, BERTH_EDOCKER,
                           "the Docker daemon at %s speaks API %s, older than the %s berth needs; upgrade Docker",
                           d->ep.host, server, BERTH_DOCKER_API_MIN);
    else
      snprintf(d->api_version, sizeof d->api_version, "%s", use);
  }
  docker_resp_clear(&rs);
  if (rc < 0)
    return rc;
  /* a daemon whose minimum is above what berth speaks refuses every call: say so once, clearly */
  cJSON *v = NULL;
  berth_error *verr = NULL;
  if (berth_docker_version(d, &v, &verr) == 0) {
    cJSON *min = cJSON_GetObjectItemCaseSensitive(v, "MinAPIVersion");
    if (cJSON_IsString(min)) {
      snprintf(d->min_api, sizeof d->min_api, "%s", min->valuestring);
      if (berth_docker_version_cmp(d->api_version, min->valuestring) < 0) {
        rc = berth_error_set(err, BERTH_EDOCKER,
                             "the Docker daemon at %s requires API %s or newer; berth speaks up to %s", d->ep.host,
                             min->valuestring, BERTH_DOCKER_API_MAX);
        d->api_version[0] = '\0';
      }
    }
    cJSON_Delete(v);
  } else if (verr != NULL && verr->code != BERTH_EINVAL) {
    rc = berth_error_set(err, verr->code, "%s", verr->msg);
    d->api_version[0] = '\0';
  }
  berth_error_free(verr);
  return rc;
}
