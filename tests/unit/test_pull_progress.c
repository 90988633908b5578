/* The pull progress line: layers counted from the daemon's per-layer lines (not the image's own), bytes summed,
 * one line per BERTH_PULL_REPORT_MS at most, none when nothing moved, and the layer cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "task/pull_progress.h"

static void
test_layers_and_bytes(void **state)
{
  (void) state;
  berth_pull_progress p;
  berth_pull_progress_init(&p);
  char line[128];
  berth_pull_progress_add(&p, "Pulling from library/debian", "bookworm", -1, -1); /* the image, not a layer */
  assert_false(berth_pull_progress_line(&p, 10000, false, line, sizeof line));
  berth_pull_progress_add(&p, "Pulling fs layer", "a1", -1, -1);
  berth_pull_progress_add(&p, "Already exists", "b2", -1, -1);
  assert_true(berth_pull_progress_line(&p, 10000, false, line, sizeof line));
  assert_string_equal(line, "1/2 layers");
  berth_pull_progress_add(&p, "Downloading", "a1", 3 << 20, 10 << 20);
  assert_false(berth_pull_progress_line(&p, 11000, false, line, sizeof line)); /* too soon */
  assert_true(berth_pull_progress_line(&p, 12000, false, line, sizeof line));
  assert_string_equal(line, "1/2 layers, 3.0MiB of 10.0MiB");
  assert_false(berth_pull_progress_line(&p, 20000, false, line, sizeof line)); /* nothing moved */
  berth_pull_progress_add(&p, "Download complete", "a1", -1, -1);
  berth_pull_progress_add(&p, "Pull complete", "a1", -1, -1);
  assert_true(berth_pull_progress_line(&p, 20001, true, line, sizeof line)); /* final: not held back */
  assert_string_equal(line, "2/2 layers, 10.0MiB of 10.0MiB");
}

static void
test_unknown_status_and_cap(void **state)
{
  (void) state;
  berth_pull_progress p;
  berth_pull_progress_init(&p);
  char line[128], id[32];
  berth_pull_progress_add(&p, "Digest: sha256:00", NULL, -1, -1);
  berth_pull_progress_add(&p, "Something new", "a1", -1, -1);
  assert_false(berth_pull_progress_line(&p, 10000, true, line, sizeof line));
  for (int i = 0; i < BERTH_PULL_LAYERS_MAX + 10; i++) {
    snprintf(id, sizeof id, "layer%d", i);
    berth_pull_progress_add(&p, "Pull complete", id, -1, -1);
  }
  assert_int_equal(p.n, BERTH_PULL_LAYERS_MAX);
  assert_true(berth_pull_progress_line(&p, 10000, true, line, sizeof line));
  assert_string_equal(line, "128/128 layers");
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_layers_and_bytes),
    cmocka_unit_test(test_unknown_status_and_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
