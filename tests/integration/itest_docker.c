/* The Docker client against the real daemon that ci/ starts (image berth/busybox:latest from runner-image/). */
#include <archive.h>
#include <archive_entry.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "berth/buf.h"
#include "berth/docker.h"

#define TEST_IMAGE "berth/busybox:latest"

static double
now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static berth_docker *
client(void)
{
  berth_docker *d = NULL;
  berth_error *err = NULL;
  if (berth_docker_new(NULL, &d, &err) < 0)
    fail_msg("%s", err->msg);
  return d;
}

/* Creates and starts a hardened keep-alive container; returns its id. */
static char *
start_container(berth_docker *d, int64_t memory, const char *name)
{
  cJSON *b = cJSON_CreateObject();
  cJSON_AddStringToObject(b, "Image", TEST_IMAGE);
  cJSON *ep = cJSON_AddArrayToObject(b, "Entrypoint");
  cJSON_AddItemToArray(ep, cJSON_CreateString("sh"));
  cJSON_AddItemToArray(ep, cJSON_CreateString("-c"));
  cJSON *cmd = cJSON_AddArrayToObject(b, "Cmd");
  cJSON_AddItemToArray(cmd, cJSON_CreateString("trap 'exit 0' TERM; while :; do sleep 1; done"));
  cJSON *labels = cJSON_AddObjectToObject(b, "Labels");
  cJSON_AddStringToObject(labels, "berth.test", "itest_docker");
  cJSON *hc = cJSON_AddObjectToObject(b, "HostConfig");
  cJSON_AddStringToObject(hc, "NetworkMode", "none");
  cJSON *cd = cJSON_AddArrayToObject(hc, "CapDrop");
  cJSON_AddItemToArray(cd, cJSON_CreateString("ALL"));
  cJSON *so = cJSON_AddArrayToObject(hc, "SecurityOpt");
  cJSON_AddItemToArray(so, cJSON_CreateString("no-new-privileges"));
  cJSON_AddNumberToObject(hc, "PidsLimit", 256);
  cJSON_AddBoolToObject(hc, "Init", 1);
  if (memory) {
    cJSON_AddNumberToObject(hc, "Memory", (double) memory);
    cJSON_AddNumberToObject(hc, "MemorySwap", (double) memory);
  }
  char *id = NULL;
  berth_error *err = NULL;
  if (berth_docker_container_create(d, name, b, &id, &err) < 0)
    fail_msg("create: %s", err->msg);
  cJSON_Delete(b);
  if (berth_docker_container_start(d, id, &err) < 0)
    fail_msg("start: %s", err->msg);
  return id;
}

static void
remove_container(berth_docker *d, char *id)
{
  berth_error *err = NULL;
  assert_int_equal(berth_docker_container_remove(d, id, &err), 0);
  free(id);
}

typedef struct capture {
  berth_buf out, err;
} capture;

static int
capture_sink(void *ud, int stream, const char *data, size_t len)
{
  capture *c = ud;
  return berth_buf_append(stream == BERTH_STREAM_STDOUT ? &c->out : &c->err, data, len);
}

/* Runs sh -c script; returns the exit code, output in c. */
static int
run_exec(berth_docker *d, const char *id, const char *script, capture *c, berth_error **err)
{
  const char *cmd[] = { "sh", "-c", script, NULL };
  char *eid = NULL;
  int rc = berth_docker_exec_create(d, id, cmd, NULL, NULL, NULL, &eid, err);
  if (rc < 0)
    return rc;
  rc = berth_docker_exec_start(d, eid, capture_sink, c, NULL, NULL, err);
  berth_exec_state st;
  if (rc == 0)
    rc = berth_docker_exec_inspect(d, eid, &st, err);
  free(eid);
  if (rc < 0)
    return rc;
  return st.exit_code;
}

static void
test_ping_version_info(void **state)
{
  (void) state;
  berth_docker *d = client();
  berth_error *err = NULL;
  assert_int_equal(berth_docker_ping(d, &err), 0);
  cJSON *v = NULL, *info = NULL;
  assert_int_equal(berth_docker_version(d, &v, &err), 0);
  const char *server_api = cJSON_GetObjectItem(v, "ApiVersion")->valuestring;
  const char *want = berth_docker_version_cmp(server_api, BERTH_DOCKER_API_MAX) < 0 ? server_api : BERTH_DOCKER_API_MAX;
  assert_string_equal(berth_docker_api_version(d), want);
  assert_int_equal(berth_docker_info(d, &info, &err), 0);
  assert_true(cJSON_IsString(cJSON_GetObjectItem(info, "Driver")));
  cJSON_Delete(v);
  cJSON_Delete(info);
  berth_docker_free(d);
}

static void
test_unreachable(void **state)
{
  (void) state;
  berth_docker *d = NULL;
  berth_error *err = NULL;
  assert_int_equal(berth_docker_new("unix:///nonexistent/docker.sock", &d, &err), 0);
  assert_true(berth_docker_ping(d, &err) < 0);
  assert_int_equal(err->code, BERTH_EDOCKER);
  assert_non_null(strstr(err->msg, "unix:///nonexistent/docker.sock"));
  assert_non_null(strstr(err->msg, "no such socket"));
  berth_error_clear(&err);
  berth_docker_free(d);

  char path[] = "/tmp/berth-notsock-XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  char host[128];
  snprintf(host, sizeof host, "unix://%s", path);
  assert_int_equal(berth_docker_new(host, &d, &err), 0);
  assert_true(berth_docker_ping(d, &err) < 0);
  assert_non_null(strstr(err->msg, "is not a socket"));
  berth_error_clear(&err);
  berth_docker_free(d);
  unlink(path);

  /* a TCP port on loopback where nothing listens */
  assert_int_equal(berth_docker_new("tcp://127.0.0.1:9", &d, &err), 0);
  assert_true(berth_docker_ping(d, &err) < 0);
  assert_non_null(strstr(err->msg, "refused"));
  berth_error_clear(&err);
  berth_docker_free(d);
}

static void
test_image_inspect_and_pull_errors(void **state)
{
  (void) state;
  berth_docker *d = client();
  berth_error *err = NULL;
  cJSON *img = NULL;
  assert_int_equal(berth_docker_image_inspect(d, TEST_IMAGE, &img, &err), 0);
  assert_true(cJSON_IsString(cJSON_GetObjectItem(img, "Id")));
  cJSON_Delete(img);
  assert_int_equal(berth_docker_image_inspect(d, "berth/no-such-image:nope", NULL, &err), BERTH_ENOTFOUND);
  assert_non_null(strstr(err->msg, "berth/no-such-image:nope"));
  berth_error_clear(&err);

  bool transient = false;
  assert_int_equal(berth_docker_image_pull(d, "Bad Ref", NULL, NULL, &transient, &err), BERTH_EINVAL);
  assert_false(transient);
  berth_error_clear(&err);
  /* a registry on loopback where nothing listens: the daemon's error arrives as a clear line, retrying may help */
  assert_true(berth_docker_image_pull(d, "127.0.0.1:9/team/app:1", NULL, NULL, &transient, &err) < 0);
  assert_non_null(strstr(err->msg, "127.0.0.1:9/team/app:1"));
  assert_null(strchr(err->msg, '\n'));
  assert_true(transient);
  berth_error_clear(&err);
  berth_docker_free(d);
}

static void
test_container_lifecycle(void **state)
{
  (void) state;
  berth_docker *d = client();
  berth_error *err = NULL;
  char name[64];
  snprintf(name, sizeof name, "berth-itest-%d", (int) getpid());
  char *id = start_container(d, 0, name);

  berth_container_state st;
  assert_int_equal(berth_docker_container_inspect(d, id, &st, NULL, &err), 0);
  assert_true(st.running);
  assert_string_equal(st.status, "running");

  /* a second container with the same name: a clear conflict */
  cJSON *b = cJSON_Parse("{\"Image\":\"" TEST_IMAGE "\",\"HostConfig\":{\"NetworkMode\":\"none\"}}");
  char *id2 = NULL;
  assert_int_equal(berth_docker_container_create(d, name, b, &id2, &err), BERTH_EBUSY);
  assert_non_null(strstr(err->msg, "already in use"));
  berth_error_clear(&err);
  cJSON_Delete(b);

  /* list by label */
  const char *labels[] = { "berth.test=itest_docker" };
  cJSON *list = NULL;
  assert_int_equal(berth_docker_container_list(d, labels, 1, &list, &err), 0);
  bool found = false;
  cJSON *it;
  cJSON_ArrayForEach(it, list) found = found || strcmp(cJSON_GetObjectItem(it, "Id")->valuestring, id) == 0;
  assert_true(found);
  cJSON_Delete(list);

  /* kill, then wait reports 137 */
  assert_int_equal(berth_docker_container_kill(d, id, "SIGKILL", &err), 0);
  int code = -1;
  assert_int_equal(berth_docker_container_wait(d, id, &code, &err), 0);
  assert_int_equal(code, 137);
  assert_int_equal(berth_docker_container_inspect(d, id, &st, NULL, &err), 0);
  assert_false(st.running);
  assert_int_equal(st.exit_code, 137);
  remove_container(d, id);
  /* removing what is gone is fine; inspecting it is not found */
  assert_int_equal(berth_docker_container_inspect(d, name, &st, NULL, &err), BERTH_ENOTFOUND);
  berth_error_clear(&err);
  berth_docker_free(d);
}

static void
test_exec_exit_codes(void **state)
{
  (void) state;
  berth_docker *d = client();
  berth_error *err = NULL;
  char *id = start_container(d, 0, NULL);
  static const int codes[] = { 0, 1, 3 };
  for (size_t i = 0; i < 3; i++) {
    capture c;
    berth_buf_init(&c.out, 1 << 20);
    berth_buf_init(&c.err, 1 << 20);
    char script[64];
    snprintf(script, sizeof script, "echo out-%d; echo err-%d >&2; exit %d", codes[i], codes[i], codes[i]);
    int rc = run_exec(d, id, script, &c, &err);
    assert_int_equal(rc, codes[i]);
    char want[32];
    snprintf(want, sizeof want, "out-%d\n", codes[i]);
    assert_string_equal(c.out.data, want);
    snprintf(want, sizeof want, "err-%d\n", codes[i]);
    assert_string_equal(c.err.data, want);
    berth_buf_free(&c.out), berth_buf_free(&c.err);
  }
  /* a command that does not exist: 127 from the shell */
  capture c;
  berth_buf_init(&c.out, 1 << 20);
  berth_buf_init(&c.err, 1 << 20);
  assert_int_equal(run_exec(d, id, "no-such-command-xyz", &c, &err), 127);
  berth_buf_free(&c.out), berth_buf_free(&c.err);
  /* a binary that does not exist, exec'd directly: the daemon reports 126 (20.10) or 127, never a hang */
  const char *cmd[] = { "/no/such/binary", NULL };
  char *eid = NULL;
  assert_int_equal(berth_docker_exec_create(d, id, cmd, NULL, NULL, NULL, &eid, &err), 0);
  berth_buf_init(&c.out, 1 << 20);
  berth_buf_init(&c.err, 1 << 20);
  assert_int_equal(berth_docker_exec_start(d, eid, capture_sink, &c, NULL, NULL, &err), 0);
  berth_exec_state es;
  assert_int_equal(berth_docker_exec_inspect(d, eid, &es, &err), 0);
  assert_true(es.has_exit_code);
  assert_true(es.exit_code == 126 || es.exit_code == 127);
  free(eid);
  berth_buf_free(&c.out), berth_buf_free(&c.err);
  remove_container(d, id);
  berth_docker_free(d);
}

static void
test_exec_oom(void **state)
{
  (void) state;
  berth_docker *d = client();
  berth_error *err = NULL;
  char *id = start_container(d, 16 * 1024 * 1024, NULL);
  capture c;
  berth_buf_init(&c.out, 1 << 20);
  berth_buf_init(&c.err, 1 << 20);
  /* an exec child over the limit is killed: 137. (dockerd 20.10 on cgroup v1 does not flag OOMKilled for exec
   * children, only for the container's own process: that case is below.) */
  int rc = run_exec(d, id, "x=$(head -c 200000000 /dev/zero | tr '\\000' a); echo ${#x}", &c, &err);
  assert_int_equal(rc, 137);
  berth_buf_free(&c.out), berth_buf_free(&c.err);
  remove_container(d, id);

  /* the container's own process over the limit: wait reports 137 and inspect reports OOMKilled */
  cJSON *b = cJSON_CreateObject();
  cJSON_AddStringToObject(b, "Image", TEST_IMAGE);
  cJSON *cmd = cJSON_AddArrayToObject(b, "Cmd");
  cJSON_AddItemToArray(cmd, cJSON_CreateString("sh"));
  cJSON_AddItemToArray(cmd, cJSON_CreateString("-c"));
  cJSON_AddItemToArray(cmd, cJSON_CreateString("x=$(head -c 200000000 /dev/zero | tr '\\000' a); echo ${#x}"));
  cJSON *labels = cJSON_AddObjectToObject(b, "Labels");
  cJSON_AddStringToObject(labels, "berth.test", "itest_docker");
  cJSON *hc = cJSON_AddObjectToObject(b, "HostConfig");
  cJSON_AddStringToObject(hc, "NetworkMode", "none");
  cJSON_AddNumberToObject(hc, "Memory", 16 * 1024 * 1024);
  cJSON_AddNumberToObject(hc, "MemorySwap", 16 * 1024 * 1024);
  id = NULL;
  assert_int_equal(berth_docker_container_create(d, NULL, b, &id, &err), 0);
  cJSON_Delete(b);
  assert_int_equal(berth_docker_container_start(d, id, &err), 0);
  int code = -1;
  assert_int_equal(berth_docker_container_wait(d, id, &code, &err), 0);
  assert_int_equal(code, 137);
  berth_container_state st = { 0 };
  for (int i = 0; i < 50 && !st.oom_killed; i++) {
    assert_int_equal(berth_docker_container_inspect(d, id, &st, NULL, &err), 0);
    if (!st.oom_killed)
      usleep(100000);
  }
  assert_true(st.oom_killed);
  assert_int_equal(st.exit_code, 137);
  remove_container(d, id);
  berth_docker_free(d);
}

/* Removes containers a previous, interrupted run of this test left behind. */
static int
sweep_leftovers(void **state)
{
  (void) state;
  berth_docker *d = client();
  berth_error *err = NULL;
  const char *labels[] = { "berth.test=itest_docker" };
  cJSON *list = NULL;
  if (berth_docker_container_list(d, labels, 1, &list, &err) == 0) {
    cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
      berth_docker_container_remove(d, cJSON_GetObjectItem(it, "Id")->valuestring, &err);
      berth_error_clear(&err);
    }
  }
  berth_error_free(err);
  cJSON_Delete(list);
  berth_docker_free(d);
  return 0;
}

/* Checks that the stream is exactly "1\n2\n3\n...N\n", incrementally. */
typedef struct seq_check {
  uint64_t next[3];
  uint64_t cur[3];
  bool bad;
  uint64_t bytes[3];
} seq_check;

static int
seq_sink(void *ud, int stream, const char *data, size_t len)
{
  seq_check *s = ud;
  s->bytes[stream] += len;
  for (size_t i = 0; i < len; i++) {
    char ch = data[i];
    if (ch == '\n') {
      if (s->cur[stream] != s->next[stream])
        s->bad = true;
      s->next[stream]++;
      s->cur[stream] = 0;
    } else if (ch >= '0' && ch <= '9') {
      s->cur[stream] = s->cur[stream] * 10 + (uint64_t) (ch - '0');
    } else {
      s->bad = true;
    }
  }
  return 0;
}

static void
test_exec_large_output(void **state)
{
  (void) state;
  berth_docker *d = client();
  berth_error *err = NULL;
  char *id = start_container(d, 0, NULL);
  /* seq 1..32,000,000 is 276,888,897 bytes (> 256 MiB) on stdout; 2,000,000 lines on stderr meanwhile */
  const char *cmd[] = { "sh", "-c", "seq 1 2000000 >&2 & seq 1 32000000; wait", NULL };
  char *eid = NULL;
  assert_int_equal(berth_docker_exec_create(d, id, cmd, NULL, NULL, NULL, &eid, &err), 0);
  seq_check s = { .next = { 1, 1, 1 } };
  assert_int_equal(berth_docker_exec_start(d, eid, seq_sink, &s, NULL, NULL, &err), 0);
  assert_false(s.bad);
  assert_int_equal(s.next[1] - 1, 32000000);
  assert_int_equal(s.next[2] - 1, 2000000);
  assert_true(s.bytes[1] > 256u * 1024 * 1024);
  berth_exec_state es;
  assert_int_equal(berth_docker_exec_inspect(d, eid, &es, &err), 0);
  assert_int_equal(es.exit_code, 0);
  free(eid);
  remove_container(d, id);
  berth_docker_free(d);
}

typedef struct remover {
  char *id;
} remover;

static void *
remove_later(void *arg)
{
  remover *r = arg;
  sleep(1);
  berth_docker *d = client();
  berth_error *err = NULL;
  berth_docker_container_remove(d, r->id, &err);
  berth_error_free(err);
  berth_docker_free(d);
  return NULL;
}

static void
test_container_removed_mid_exec(void **state)
{
  (void) state;
  berth_docker *d = client();
  berth_error *err = NULL;
  char *id = start_container(d, 0, NULL);
  const char *cmd[] = { "sh", "-c", "echo started; sleep 60; echo never", NULL };
  char *eid = NULL;
  assert_int_equal(berth_docker_exec_create(d, id, cmd, NULL, NULL, NULL, &eid, &err), 0);
  remover r = { .id = id };
  pthread_t th;
  pthread_create(&th, NULL, remove_later, &r);
  capture c;
  berth_buf_init(&c.out, 1 << 20);
  berth_buf_init(&c.err, 1 << 20);
  double t0 = now_s();
  berth_docker_exec_start(d, eid, capture_sink, &c, NULL, NULL, &err);
  berth_error_clear(&err);
  double took = now_s() - t0;
  pthread_join(th, NULL);
  assert_true(took < 30);
  assert_null(strstr(c.out.data ? c.out.data : "", "never"));
  berth_exec_state es;
  assert_int_equal(berth_docker_exec_inspect(d, eid, &es, &err), BERTH_ENOTFOUND);
  assert_non_null(strstr(err->msg, "container was removed"));
  berth_error_clear(&err);
  free(eid);
  free(id);
  berth_buf_free(&c.out), berth_buf_free(&c.err);
  berth_docker_free(d);
}

/* A producer that writes a small tar built with libarchive in memory. */
typedef struct memtar {
  char *data;
  size_t len, pos;
} memtar;

static ssize_t
memtar_read(void *ud, char *buf, size_t len, berth_error **err)
{
  (void) err;
  memtar *m = ud;
  size_t n = m->len - m->pos < len ? m->len - m->pos : len;
  if (n > 7)
    n = 7; /* tiny pieces: chunked upload of many small reads */
  memcpy(buf, m->data + m->pos, n);
  m->pos += n;
  return (ssize_t) n;
}

static int
buf_sink(void *ud, const char *data, size_t len)
{
  return berth_buf_append(ud, data, len);
}

static void
test_archive_put_get(void **state)
{
  (void) state;
  berth_docker *d = client();
  berth_error *err = NULL;
  char *id = start_container(d, 0, NULL);
  struct archive *a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  size_t cap = 1 << 20, used = 0;
  char *mem = malloc(cap);
  archive_write_open_memory(a, mem, cap, &used);
  struct archive_entry *e = archive_entry_new();
  archive_entry_set_pathname(e, "up/hello.txt");
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, 12);
  archive_write_header(a, e);
  archive_write_data(a, "hello world\n", 12);
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  memtar m = { .data = mem, .len = used };
  assert_int_equal(berth_docker_archive_put(d, id, "/tmp", false, memtar_read, &m, &err), 0);
  capture c;
  berth_buf_init(&c.out, 1 << 20);
  berth_buf_init(&c.err, 1 << 20);
  assert_int_equal(run_exec(d, id, "cat /tmp/up/hello.txt", &c, &err), 0);
  assert_string_equal(c.out.data, "hello world\n");
  berth_buf_free(&c.out), berth_buf_free(&c.err);

  berth_buf got;
  berth_buf_init(&got, 1 << 20);
  assert_int_equal(berth_docker_archive_get(d, id, "/tmp/up/hello.txt", buf_sink, &got, &err), 0);
  assert_true(got.len >= 1024);
  assert_non_null(memmem(got.data, got.len, "hello world\n", 12));
  berth_buf_free(&got);
  berth_buf_init(&got, 1 << 20);
  assert_int_equal(berth_docker_archive_get(d, id, "/no/such/path", buf_sink, &got, &err), BERTH_ENOTFOUND);
  berth_error_clear(&err);
  m.pos = 0;
  assert_int_equal(berth_docker_archive_put(d, id, "/no/such/dir", false, memtar_read, &m, &err), BERTH_ENOTFOUND);
  berth_error_clear(&err);
  berth_buf_free(&got);
  free(mem);
  remove_container(d, id);
  berth_docker_free(d);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_ping_version_info),
    cmocka_unit_test(test_unreachable),
    cmocka_unit_test(test_image_inspect_and_pull_errors),
    cmocka_unit_test(test_container_lifecycle),
    cmocka_unit_test(test_exec_exit_codes),
    cmocka_unit_test(test_exec_oom),
    cmocka_unit_test(test_exec_large_output),
    cmocka_unit_test(test_container_removed_mid_exec),
    cmocka_unit_test(test_archive_put_get),
  };
  return cmocka_run_group_tests(tests, sweep_leftovers, sweep_leftovers);
}
