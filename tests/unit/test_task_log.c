/* Task logs through the store: records written and read back byte for byte (split records, big ones, notes), the
 * raw record stream from an offset (the server's format=records&offset=), and a follower woken by the writer.
 *
 * Run as `test_task_log postgresql` (ctest label postgresql) the same tests run with the log as chunks in a database
 * of its own on the server in BERTH_TEST_PG, plus a reader on another host (another BERTH_HOME). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "berth/buf.h"
#include "berth/store.h"
#include "berth/task_log.h"
#include "store/db.h"
#include "store_helpers.h"

#define BIG (BERTH_LOG_RECORD_MAX + 1000) /* split into two records */

static int64_t
mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Collects records as "kind:phase:len;" and their payloads. */
typedef struct seen {
  berth_buf index, bytes;
} seen;

static int
collect(void *ud, int kind, int phase, const char *data, size_t len)
{
  seen *s = ud;
  berth_buf_printf(&s->index, "%d:%c:%zu;", kind, phase, len);
  berth_buf_append(&s->bytes, data, len);
  return 0;
}

static void
write_ok(berth_task_log *l, int kind, const char *data, size_t len)
{
  berth_error *err = NULL;
  if (berth_task_log_write(l, kind, BERTH_PHASE_PERFORMING, data, len, &err) < 0)
    fail_msg("write: %s", err->msg);
}

/* Writes the sample log of task `id` and returns the record stream it must read as. */
static void
write_sample(berth_store *st, const char *id, berth_buf *stream)
{
  berth_task_log *l = NULL;
  berth_error *err = NULL;
  if (berth_task_log_create(st, id, &l, &err) < 0)
    fail_msg("create: %s", err->msg);
  char *big = malloc(BIG);
  for (size_t i = 0; i < BIG; i++)
    big[i] = (char) ('a' + i % 26);
  write_ok(l, BERTH_LOG_NOTE, "starting\n", 9);
  write_ok(l, BERTH_LOG_STDOUT, "out 1\n", 6);
  assert_int_equal(berth_task_log_flush(l, &err), 0);
  write_ok(l, BERTH_LOG_STDERR, "err 1\n", 6);
  write_ok(l, BERTH_LOG_STDOUT, big, BIG);
  write_ok(l, BERTH_LOG_STDOUT, "tail\n", 5);
  berth_task_log_close(l);
  const struct {
    int kind;
    const char *data;
    size_t len;
  } recs[] = { { BERTH_LOG_NOTE, "starting\n", 9 },
               { BERTH_LOG_STDOUT, "out 1\n", 6 },
               { BERTH_LOG_STDERR, "err 1\n", 6 },
               { BERTH_LOG_STDOUT, big, BERTH_LOG_RECORD_MAX },
               { BERTH_LOG_STDOUT, big + BERTH_LOG_RECORD_MAX, BIG - BERTH_LOG_RECORD_MAX },
               { BERTH_LOG_STDOUT, "tail\n", 5 } };
  berth_buf_init(stream, 4 * BIG);
  for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++) {
    unsigned char h[6] = { (unsigned char) recs[i].kind,        BERTH_PHASE_PERFORMING,
                           (unsigned char) (recs[i].len >> 24), (unsigned char) (recs[i].len >> 16),
                           (unsigned char) (recs[i].len >> 8),  (unsigned char) recs[i].len };
    berth_buf_append(stream, h, 6);
    berth_buf_append(stream, recs[i].data, recs[i].len);
  }
  free(big);
}

static void
test_records_round_trip(void **state)
{
  berth_store *st = open_ok(*state);
  berth_buf stream;
  write_sample(st, "t-1", &stream);
  berth_log_reader *r = NULL;
  berth_error *err = NULL;
  assert_int_equal(berth_log_reader_open(st, "t-1", &r, &err), 0);
  seen s;
  berth_buf_init(&s.index, 4096);
  berth_buf_init(&s.bytes, 4 * BIG);
  assert_int_equal(berth_log_reader_read(r, collect, &s, &err), 6);
  char want[256];
  snprintf(want, sizeof want, "3:R:9;1:R:6;2:R:6;1:R:%u;1:R:%u;1:R:5;", BERTH_LOG_RECORD_MAX,
           (unsigned) (BIG - BERTH_LOG_RECORD_MAX));
  assert_string_equal(s.index.data, want);
  assert_int_equal(berth_log_reader_read(r, collect, &s, &err), 0); /* nothing new */
  berth_log_reader_close(r);

  /* the raw stream, whole and from an offset inside a record */
  for (int64_t from = 0; from <= 20; from += 20) {
    assert_int_equal(berth_log_reader_open(st, "t-1", &r, &err), 0);
    assert_int_equal(berth_log_reader_seek(r, from, &err), 0);
    berth_buf got;
    berth_buf_init(&got, 4 * BIG);
    char buf[7000];
    ssize_t n;
    while ((n = berth_log_reader_read_bytes(r, buf, sizeof buf, &err)) > 0)
      berth_buf_append(&got, buf, (size_t) n);
    assert_int_equal(n, 0);
    assert_int_equal(got.len, stream.len - (size_t) from);
    assert_memory_equal(got.data, stream.data + from, got.len);
    berth_buf_free(&got);
    berth_log_reader_close(r);
  }
  /* a log nobody wrote reads as empty */
  assert_int_equal(berth_log_reader_open(st, "t-none", &r, &err), 0);
  assert_int_equal(berth_log_reader_read(r, collect, &s, &err), 0);
  berth_log_reader_close(r);
  berth_buf_free(&s.index);
  berth_buf_free(&s.bytes);
  berth_buf_free(&stream);
  berth_store_close(st);
}

/* A follower waiting in berth_log_wait sees a record flushed by another process within milliseconds, not at the end
 * of its timeout. */
static void
test_follower_woken(void **state)
{
  berth_store *st = open_ok(*state);
  berth_log_reader *r = NULL;
  berth_error *err = NULL;
  assert_int_equal(berth_log_reader_open(st, "t-live", &r, &err), 0);
  seen s;
  berth_buf_init(&s.index, 4096);
  berth_buf_init(&s.bytes, 4096);
  /* the writer's log exists before the follower waits (the runner creates it before the task starts) */
  berth_task_log *l = NULL;
  assert_int_equal(berth_task_log_create(st, "t-live", &l, &err), 0);
  write_ok(l, BERTH_LOG_NOTE, "hello\n", 6);
  assert_int_equal(berth_task_log_flush(l, &err), 0);
  assert_int_equal(berth_log_reader_read(r, collect, &s, &err), 1);
  berth_task_log_close(l);
  berth_log_wait(r, 10); /* sets up the wake-up */
  int worst = 0;
  for (int i = 0; i < 5; i++) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) { /* a supervisor: connected first, then a flush some time later */
      berth_error *e = NULL;
      berth_store *cst = NULL;
      berth_task_log *cl = NULL;
      if (berth_store_open(*state, &cst, &e) != 0 || berth_task_log_create(cst, "t-live", &cl, &e) != 0)
        _exit(1);
      usleep(100 * 1000);
      if (berth_task_log_write(cl, BERTH_LOG_STDOUT, BERTH_PHASE_PERFORMING, "line\n", 5, &e) != 0
          || berth_task_log_flush(cl, &e) != 0)
        _exit(1);
      int64_t flushed = mono_ms();
      _exit(write(fds[1], &flushed, sizeof flushed) == sizeof flushed ? 0 : 1); /* nothing closed */
    }
    close(fds[1]);
    int64_t start = mono_ms(), got = 0, seen_at = 0, flushed = 0;
    while (got == 0 && mono_ms() - start < 5000) {
      berth_log_wait(r, 1000);
      got = berth_log_reader_read(r, collect, &s, &err);
    }
    seen_at = mono_ms();
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(read(fds[0], &flushed, sizeof flushed), sizeof flushed);
    close(fds[0]);
    assert_int_equal(got, 1);
    int waited = (int) (seen_at - flushed);
    worst = waited > worst ? waited : worst;
  }
  printf("# follower latency after the flush: worst %d ms of 5\n", worst);
  assert_true(worst < 60);
  berth_log_reader_close(r);
  berth_buf_free(&s.index);
  berth_buf_free(&s.bytes);
  berth_store_close(st);
}

static int64_t
count_followers(berth_store *st, const char *task)
{
  db_stmt *s = NULL;
  berth_error *err = NULL;
  if (db_prepare(store_db(st), "SELECT COUNT(*) FROM log_followers WHERE task_id = ?", &s, &err) < 0)
    fail_msg("%s", err->msg);
  db_bind_text(s, 1, task);
  assert_int_equal(db_step(s, &err), DB_ROW);
  int64_t n = db_column_int64(s, 0);
  db_finalize(s);
  return n;
}

/* PostgreSQL: a chunk sends its NOTIFY only while its task has a follower (every NOTIFY wakes every listening
 * connection of the database: a fleet host's too), and a follower is recorded while it waits, and gone when closed. */
static void
test_notify_only_followed(void **state)
{
  berth_store *st = open_ok(*state);
  berth_error *err = NULL;
  db_conn *ear = NULL; /* what any other listener of the database (a fleet host) would be woken by */
  assert_int_equal(store_db_open_another(st, &ear, &err), 0);
  assert_int_equal(db_listen(ear, "berth_log", &err), 0);
  berth_task_log *l = NULL;
  assert_int_equal(berth_task_log_create(st, "t-alone", &l, &err), 0);
  write_ok(l, BERTH_LOG_STDOUT, "nobody reads\n", 13);
  assert_int_equal(berth_task_log_flush(l, &err), 0);
  assert_int_equal(db_wait_notify(ear, NULL, 300), 0);

  berth_log_reader *r = NULL;
  assert_int_equal(berth_log_reader_open(st, "t-alone", &r, &err), 0);
  assert_int_equal(count_followers(st, "t-alone"), 0); /* reading is not following */
  assert_int_equal(berth_log_wait(r, 10), 1);          /* following: recorded */
  assert_int_equal(count_followers(st, "t-alone"), 1);
  write_ok(l, BERTH_LOG_STDOUT, "now someone does\n", 17);
  assert_int_equal(berth_task_log_flush(l, &err), 0);
  assert_int_equal(db_wait_notify(ear, "t-alone", 2000), 1);
  assert_int_equal(berth_log_wait(r, 2000), 1);
  berth_log_reader_close(r);
  assert_int_equal(count_followers(st, "t-alone"), 0);
  write_ok(l, BERTH_LOG_STDOUT, "and no more\n", 12);
  assert_int_equal(berth_task_log_flush(l, &err), 0);
  assert_int_equal(db_wait_notify(ear, NULL, 300), 0);
  berth_task_log_close(l);
  db_close(ear);
  berth_store_close(st);
}

/* PostgreSQL: the log is in the store, so a host with another BERTH_HOME reads it. */
static void
test_other_host(void **state)
{
  berth_store *st = open_ok(*state);
  berth_buf stream;
  write_sample(st, "t-2", &stream);
  char *home = make_home("berth-test-task-log-host2");
  berth_store *other = open_ok(home);
  berth_log_reader *r = NULL;
  berth_error *err = NULL;
  assert_int_equal(berth_log_reader_open(other, "t-2", &r, &err), 0);
  seen s;
  berth_buf_init(&s.index, 4096);
  berth_buf_init(&s.bytes, 4 * BIG);
  assert_int_equal(berth_log_reader_read(r, collect, &s, &err), 6);
  berth_log_reader_close(r);
  berth_buf_free(&s.index);
  berth_buf_free(&s.bytes);
  berth_buf_free(&stream);
  berth_store_close(other);
  berth_store_close(st);
  rm_tree(home);
  free(home);
}

int
main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_records_round_trip, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_follower_woken, engine_setup, engine_teardown),
  };
  const struct CMUnitTest pg_only[] = {
    cmocka_unit_test_setup_teardown(test_other_host, engine_setup, engine_teardown),
    cmocka_unit_test_setup_teardown(test_notify_only_followed, engine_setup, engine_teardown),
  };
  ENGINE_TESTS_MAIN(argc, argv, tests, pg_only);
}
