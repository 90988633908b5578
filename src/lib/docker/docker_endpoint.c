/* DOCKER_HOST and TLS settings, read the way the docker CLI reads them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/docker.h"

#define DEFAULT_SOCKET "/var/run/docker.sock"

void
berth_docker_endpoint_clear(berth_docker_endpoint *ep)
{
  if (ep == NULL)
    return;
  free(ep->host);
  free(ep->socket_path);
  free(ep->base_url);
  free(ep->ca);
  free(ep->cert);
  free(ep->key);
  free(ep->api_version);
  memset(ep, 0, sizeof *ep);
}

static char *
path_join(const char *dir, const char *name)
{
  char *s = NULL;
  if (asprintf(&s, "%s/%s", dir, name) < 0)
    return NULL;
  return s;
}

static int
endpoint_tcp(const char *host, const char *hostport, char *(*get)(const char *), berth_docker_endpoint *ep,
             berth_error **err)
{
  const char *verify = get("DOCKER_TLS_VERIFY");
  const char *tls = get("DOCKER_TLS");
  ep->tls_verify = verify != NULL && *verify != '\0'; /* any non-empty value, even "0", as the CLI does */
  ep->tls = ep->tls_verify || (tls != NULL && *tls != '\0');
  size_t n = strcspn(hostport, "/");
  if (n == 0)
    return berth_error_set(err, BERTH_EINVAL, "DOCKER_HOST `%s` has no host", host);
  const char *colon = memchr(hostport, ':', n);
  if (hostport[0] == '[')
    colon = strstr(hostport, "]:") ? strstr(hostport, "]:") + 1 : NULL;
  if (colon != NULL && colon < hostport + n) { /* the port: digits, 1 to 65535 */
    long port = 0;
    const char *p = colon + 1;
    for (; p < hostport + n && *p >= '0' && *p <= '9' && port <= 65535; p++)
      port = port * 10 + (*p - '0');
    if (p != hostport + n || p == colon + 1 || port < 1 || port > 65535)
      return berth_error_set(err, BERTH_EINVAL, "DOCKER_HOST `%s`: the port must be a number from 1 to 65535", host);
  }
  if (asprintf(&ep->base_url, "%s://%.*s%s", ep->tls ? "https" : "http", (int) n, hostport,
               colon ? "" : (ep->tls ? ":2376" : ":2375"))
      < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (ep->tls) {
    const char *certdir = get("DOCKER_CERT_PATH");
    char *fallback = NULL;
    if (certdir == NULL || *certdir == '\0') {
      const char *home = get("HOME");
      fallback = path_join(home ? home : "/root", ".docker");
      certdir = fallback;
    }
    ep->ca = path_join(certdir, "ca.pem");
    ep->cert = path_join(certdir, "cert.pem");
    ep->key = path_join(certdir, "key.pem");
    free(fallback);
  }
  return 0;
}

int
berth_docker_endpoint_parse(const char *host, char *(*getenv_fn)(const char *), berth_docker_endpoint *ep,
                            berth_error **err)
{
  char *(*get)(const char *) = getenv_fn ? getenv_fn : getenv;
  memset(ep, 0, sizeof *ep);
  if (host == NULL || *host == '\0')
    host = get("DOCKER_HOST");
  if (host == NULL || *host == '\0')
    host = "unix://" DEFAULT_SOCKET;
  ep->host = strdup(host);
  const char *api = get("DOCKER_API_VERSION");
  if (api != NULL && *api != '\0')
    ep->api_version = strdup(api);
  int rc = 0;
  if (strncmp(host, "unix://", 7) == 0) {
    const char *path = host + 7;
    if (*path == '\0')
      path = DEFAULT_SOCKET;
    if (strlen(path) > 107)
      rc = berth_error_set(err, BERTH_EINVAL, "DOCKER_HOST socket path `%s` is longer than 107 bytes", path);
    else {
      ep->socket_path = strdup(path);
      ep->base_url = strdup("http://localhost");
    }
  } else if (strncmp(host, "tcp://", 6) == 0) {
    rc = endpoint_tcp(host, host + 6, get, ep, err);
  } else if (strncmp(host, "ssh://", 6) == 0 || strncmp(host, "npipe://", 8) == 0 || strncmp(host, "fd://", 5) == 0) {
    rc = berth_error_set(err, BERTH_EINVAL, "DOCKER_HOST `%s`: only unix:// and tcp:// hosts are supported", host);
  } else {
    rc = berth_error_set(err, BERTH_EINVAL, "DOCKER_HOST `%s` is not a unix:// or tcp:// address", host);
  }
  if (rc == 0 && (ep->host == NULL || ep->base_url == NULL))
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (rc < 0)
    berth_docker_endpoint_clear(ep);
  return rc;
}
