/* Redactor throughput: reads a log file in 32 KiB chunks through one redactor built from the first N values of a
 * values file (one per line; each also registers its encoded forms) plus the built-in patterns, and prints one
 * line: values, literal strings, MB/s (1 MB = 10^6 bytes), matcher build time, output bytes, masks, peak RSS.
 *
 *   bench_redact LOG VALUES N [--no-builtin] [--chunk BYTES]
 *
 * Run by bench/redact.sh, which also builds the inputs and runs the perl baseline. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "berth/redactor.h"

typedef struct {
  unsigned long long bytes, masks;
} counter;

static int
count_sink(void *ud, const char *data, size_t len)
{
  counter *c = ud;
  c->bytes += len;
  if (len == 3 && memcmp(data, BERTH_REDACT_REPLACEMENT, 3) == 0)
    c->masks++;
  return 0;
}

static double
now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
  if (argc < 4) {
    fprintf(stderr, "usage: bench_redact LOG VALUES N [--no-builtin] [--chunk BYTES]\n");
    return 2;
  }
  size_t want = (size_t) strtoul(argv[3], NULL, 10), chunk = 32 * 1024;
  bool builtin = true;
  for (int i = 4; i < argc; i++) {
    if (strcmp(argv[i], "--no-builtin") == 0)
      builtin = false;
    else if (strcmp(argv[i], "--chunk") == 0 && i + 1 < argc)
      chunk = (size_t) strtoul(argv[++i], NULL, 10);
  }
  berth_error *err = NULL;
  berth_secrets *s = berth_secrets_new(0, &err);
  if (s == NULL || berth_secrets_use_builtin(s, builtin, &err) < 0)
    return 1;
  FILE *vf = fopen(argv[2], "r");
  if (vf == NULL) {
    perror(argv[2]);
    return 1;
  }
  char line[4096];
  size_t n = 0;
  while (n < want && fgets(line, sizeof line, vf) != NULL) {
    size_t l = strcspn(line, "\n");
    if (berth_secrets_add_value(s, "BENCH", line, l, &err) < 0) {
      fprintf(stderr, "%s\n", err->msg);
      return 1;
    }
    n++;
  }
  fclose(vf);

  counter c = { 0, 0 };
  berth_redactor *r = berth_redactor_new(s, count_sink, &c, &err);
  int fd = open(argv[1], O_RDONLY);
  if (r == NULL || fd < 0) {
    perror(argv[1]);
    return 1;
  }
  char *buf = malloc(chunk);
  double t0 = now();
  /* The first (empty) feed compiles the matcher: timed apart from the scan. */
  if (berth_redactor_feed(r, "", 0, &err) < 0 || berth_redactor_flush(r, &err) < 0)
    return 1;
  double t1 = now();
  struct rusage ru0;
  getrusage(RUSAGE_SELF, &ru0);
  unsigned long long in = 0;
  for (;;) {
    ssize_t got = read(fd, buf, chunk);
    if (got <= 0)
      break;
    in += (unsigned long long) got;
    if (berth_redactor_feed(r, buf, (size_t) got, &err) < 0) {
      fprintf(stderr, "%s\n", err->msg);
      return 1;
    }
  }
  if (berth_redactor_flush(r, &err) < 0)
    return 1;
  double t2 = now();
  close(fd);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  /* CPU time (user + sys of the scan, like scan_s) is steadier than wall time on a shared machine. */
  double cpu
      = (double) (ru.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru.ru_stime.tv_sec - ru0.ru_stime.tv_sec)
        + (double) (ru.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
  printf("values=%zu literals=%zu in_bytes=%llu out_bytes=%llu masks=%llu build_s=%.3f scan_s=%.3f MBps=%.0f "
         "cpu_MBps=%.0f peak_rss_kib=%ld\n",
         n, berth_secrets_literal_count(s), in, c.bytes, c.masks, t1 - t0, t2 - t1, (double) in / (t2 - t1) / 1e6,
         (double) in / cpu / 1e6, ru.ru_maxrss);
  berth_redactor_free(r);
  berth_secrets_free(s);
  free(buf);
  return 0;
}
