/* Core values: an error is always set, even without memory; a capped buffer tells "too big" from "out of memory". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "berth/buf.h"
#include "berth/error.h"

static void
test_buf_too_big(void **state)
{
  (void) state;
  berth_buf b;
  berth_buf_init(&b, 8);
  assert_int_equal(berth_buf_append(&b, "12345678", 8), 0);
  assert_int_equal(berth_buf_append(&b, "9", 1), BERTH_BUF_TOO_BIG);
  assert_int_equal(b.len, 8); /* unchanged */
  assert_int_equal(berth_buf_printf(&b, "%s", "x"), BERTH_BUF_TOO_BIG);
  berth_buf_free(&b);
}

/* In a child with a small address-space limit: allocations past it fail for real. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static void
test_out_of_memory(void **state)
{
  (void) state;
#ifdef UNDER_ASAN
  skip(); /* AddressSanitizer reserves terabytes of address space: an RLIMIT_AS child cannot start */
#endif
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct rlimit rl = { 256u << 20, 256u << 20 };
    if (setrlimit(RLIMIT_AS, &rl) < 0)
      _exit(2);
    /* an error whose message cannot be formatted: *err is still set, to the static out-of-memory error */
    berth_error *err = NULL;
    int rc = berth_error_set(&err, BERTH_EINVAL, "%*s", 1 << 30, "x");
    if (rc != BERTH_EINVAL || err == NULL || strcmp(err->msg, "out of memory") != 0 || err->code != BERTH_EINTERNAL)
      _exit(3);
    if (berth_error_wrap(&err, "context") != BERTH_EINTERNAL || strcmp(err->msg, "out of memory") != 0)
      _exit(4);
    berth_error_free(err); /* the static one: must not be freed */
    /* a buffer that cannot grow for lack of memory says so, distinct from its cap */
    berth_buf b;
    berth_buf_init(&b, SIZE_MAX / 2);
    size_t big = (size_t) 1 << 30;
    char *chunk = malloc(1);
    if (berth_buf_append(&b, chunk, 1) != 0)
      _exit(5);
    int arc = berth_buf_printf(&b, "%*s", (int) big, "x");
    if (arc != BERTH_BUF_NOMEM)
      _exit(6);
    berth_buf_free(&b);
    free(chunk);
    _exit(0);
  }
  int status = 0;
  assert_true(waitpid(pid, &status, 0) == pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_buf_too_big),
    cmocka_unit_test(test_out_of_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
