/* Image reference parsing and normalization; DOCKER_HOST parsing; API version comparison. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "berth/docker.h"
#include "berth/image_ref.h"

static void
expect_norm(const char *in, const char *want)
{
  berth_image_ref r;
  berth_error *err = NULL;
  int rc = berth_image_ref_parse(in, &r, &err);
  if (rc != 0)
    fail_msg("parse `%s` failed: %s", in, err ? err->msg : "?");
  char *s = berth_image_ref_string(&r);
  if (strcmp(s, want) != 0)
    fail_msg("`%s` normalized to `%s`, want `%s`", in, s, want);
  free(s);
  berth_image_ref_clear(&r);
}

static void
expect_bad(const char *in, const char *why)
{
  berth_image_ref r;
  berth_error *err = NULL;
  if (berth_image_ref_parse(in, &r, &err) == 0)
    fail_msg("`%s` was accepted", in);
  assert_int_equal(err->code, BERTH_EINVAL);
  if (strstr(err->msg, why) == NULL)
    fail_msg("`%s`: message `%s` lacks `%s`", in, err->msg, why);
  berth_error_free(err);
}

static void
test_normalize(void **state)
{
  (void) state;
  static const char *d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  char buf[256], want[256];
  expect_norm("ubuntu", "docker.io/library/ubuntu:latest");
  expect_norm("ubuntu:22.04", "docker.io/library/ubuntu:22.04");
  expect_norm("library/ubuntu", "docker.io/library/ubuntu:latest");
  expect_norm("docker.io/ubuntu", "docker.io/library/ubuntu:latest");
  expect_norm("index.docker.io/library/ubuntu:1", "docker.io/library/ubuntu:1");
  expect_norm("team/app:v1.2", "docker.io/team/app:v1.2");
  expect_norm("berth/runner:latest", "docker.io/berth/runner:latest");
  expect_norm("registry.example.com:5000/team/app", "registry.example.com:5000/team/app:latest");
  expect_norm("localhost/app", "localhost/app:latest");
  expect_norm("localhost:5000/a/b/c:t_1", "localhost:5000/a/b/c:t_1");
  expect_norm("ghcr.io/org/img-name__x.y", "ghcr.io/org/img-name__x.y:latest");
  snprintf(buf, sizeof buf, "alpine@%s", d);
  snprintf(want, sizeof want, "docker.io/library/alpine@%s", d);
  expect_norm(buf, want);
  snprintf(buf, sizeof buf, "quay.io/a/b:1.0@%s", d);
  snprintf(want, sizeof want, "quay.io/a/b:1.0@%s", d);
  expect_norm(buf, want);
}

static void
test_invalid(void **state)
{
  (void) state;
  expect_bad("", "empty");
  expect_bad("Ubuntu", "lowercase");
  expect_bad("ubuntu:", "malformed tag");
  expect_bad("ubuntu:-x", "malformed tag");
  expect_bad("a b", "whitespace");
  expect_bad("team//app", "malformed repository");
  expect_bad("-app", "malformed repository");
  expect_bad("alpine@sha256:abc", "malformed digest");
  expect_bad("reg.io:99x/app", "malformed registry");
  expect_bad("app..x", "malformed repository");
}

static char *
fake_env(const char *name)
{
  if (strcmp(name, "DOCKER_TLS_VERIFY") == 0)
    return "0"; /* any non-empty value turns verification on, as in the docker CLI */
  if (strcmp(name, "DOCKER_CERT_PATH") == 0)
    return "/certs";
  return NULL;
}

static char *
no_env(const char *name)
{
  (void) name;
  return NULL;
}

static void
test_endpoint(void **state)
{
  (void) state;
  berth_docker_endpoint ep;
  berth_error *err = NULL;
  assert_int_equal(berth_docker_endpoint_parse(NULL, no_env, &ep, &err), 0);
  assert_string_equal(ep.socket_path, "/var/run/docker.sock");
  assert_string_equal(ep.base_url, "http://localhost");
  berth_docker_endpoint_clear(&ep);

  assert_int_equal(berth_docker_endpoint_parse("unix:///run/x.sock", no_env, &ep, &err), 0);
  assert_string_equal(ep.socket_path, "/run/x.sock");
  berth_docker_endpoint_clear(&ep);

  assert_int_equal(berth_docker_endpoint_parse("tcp://127.0.0.1", no_env, &ep, &err), 0);
  assert_null(ep.socket_path);
  assert_string_equal(ep.base_url, "http://127.0.0.1:2375");
  assert_false(ep.tls);
  berth_docker_endpoint_clear(&ep);

  assert_int_equal(berth_docker_endpoint_parse("tcp://127.0.0.1:3000", fake_env, &ep, &err), 0);
  assert_string_equal(ep.base_url, "https://127.0.0.1:3000");
  assert_true(ep.tls && ep.tls_verify);
  assert_string_equal(ep.ca, "/certs/ca.pem");
  assert_string_equal(ep.key, "/certs/key.pem");
  berth_docker_endpoint_clear(&ep);

  assert_int_equal(berth_docker_endpoint_parse("tcp://h", fake_env, &ep, &err), 0);
  assert_string_equal(ep.base_url, "https://h:2376");
  berth_docker_endpoint_clear(&ep);

  assert_true(berth_docker_endpoint_parse("ssh://me@h", no_env, &ep, &err) < 0);
  assert_non_null(strstr(err->msg, "only unix:// and tcp://"));
  berth_error_clear(&err);
  assert_true(berth_docker_endpoint_parse("http://h", no_env, &ep, &err) < 0);
  berth_error_clear(&err);
  /* a port that is not one: one line saying so, not libcurl's "bad/illegal format" at the first call */
  static const char *const bad_ports[]
      = { "tcp://h:99999", "tcp://h:abc", "tcp://h:", "tcp://h:0", "tcp://[::1]:65536" };
  for (size_t i = 0; i < sizeof bad_ports / sizeof bad_ports[0]; i++) {
    assert_true(berth_docker_endpoint_parse(bad_ports[i], no_env, &ep, &err) < 0);
    assert_non_null(strstr(err->msg, "the port must be a number from 1 to 65535"));
    berth_error_clear(&err);
  }
  assert_int_equal(berth_docker_endpoint_parse("tcp://[::1]:65535", no_env, &ep, &err), 0);
  assert_string_equal(ep.base_url, "http://[::1]:65535");
  berth_docker_endpoint_clear(&ep);
}

static void
test_version_cmp(void **state)
{
  (void) state;
  assert_true(berth_docker_version_cmp("1.41", "1.45") < 0);
  assert_true(berth_docker_version_cmp("1.45", "1.41") > 0);
  assert_true(berth_docker_version_cmp("1.9", "1.10") < 0);
  assert_true(berth_docker_version_cmp("1.41", "1.41") == 0);
  assert_true(berth_docker_version_cmp("2.0", "1.99") > 0);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_normalize),
    cmocka_unit_test(test_invalid),
    cmocka_unit_test(test_endpoint),
    cmocka_unit_test(test_version_cmp),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
