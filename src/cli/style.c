/* Terminal manners (style.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/task_log.h"
#include "cli.h"
#include "style.h"

bool
cli_styled(int fd)
{
  const char *no_color = getenv("NO_COLOR");
  const char *term = getenv("TERM");
  return isatty(fd) && (no_color == NULL || *no_color == '\0') && (term == NULL || strcmp(term, "dumb") != 0);
}

const char *
cli_sgr(int fd, cli_style s)
{
  static const char *const sgr[] = {
    [CLI_STYLE_PLAIN] = "",           [CLI_STYLE_HEADER] = "\033[1;36m", /* bold cyan */
    [CLI_STYLE_DONE] = "\033[1;32m",                                     /* bold green */
    [CLI_STYLE_NOTE] = "\033[2m",                                        /* dim */
    [CLI_STYLE_WARNING] = "\033[33m",                                    /* yellow */
    [CLI_STYLE_ERROR] = "\033[1;31m",                                    /* bold red */
  };
  return cli_styled(fd) ? sgr[s] : "";
}

void
cli_error_prefix(void)
{
  if (cli_styled(2))
    fprintf(stderr, "%sberth:%s ", cli_sgr(2, CLI_STYLE_ERROR), CLI_SGR_RESET);
  else
    fputs("berth: ", stderr);
}

void
cli_note(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  bool styled = cli_styled(2);
  fprintf(stderr, "%sberth: ", styled ? cli_sgr(2, CLI_STYLE_NOTE) : "");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "%s\n", styled ? CLI_SGR_RESET : "");
  va_end(ap);
}

void
cli_log_out_init(cli_log_out *o)
{
  *o = (cli_log_out){ .styled = { false, cli_styled(1), cli_styled(2) }, .at_bol = true, .progress_fd = -1 };
}

static bool
starts_with(const char *s, size_t len, const char *prefix)
{
  size_t n = strlen(prefix);
  return len >= n && memcmp(s, prefix, n) == 0;
}

/* What a note line says, from its first bytes. */
static cli_style
note_style(const char *line, size_t len)
{
  if (starts_with(line, len, "==> FINISHED"))
    return CLI_STYLE_DONE;
  if (starts_with(line, len, "==> FAILED") || starts_with(line, len, "==> STOPPED")
      || starts_with(line, len, "==> CANCELED"))
    return CLI_STYLE_ERROR;
  if (starts_with(line, len, "==> "))
    return CLI_STYLE_HEADER;
  if (starts_with(line, len, "warning: "))
    return CLI_STYLE_WARNING;
  if (starts_with(line, len, "error: "))
    return CLI_STYLE_ERROR;
  return CLI_STYLE_NOTE;
}

/* A whole progress line of a pull ("pull: 3/7 layers, 45.2MiB of 120.0MiB\n"), which a terminal shows in place. */
static bool
is_progress(const char *line, size_t len)
{
  return starts_with(line, len, "pull: ") && len > 0 && line[len - 1] == '\n' && memchr(line, '\n', len - 1) == NULL
         && len < 200 && memmem(line, len, " layers", 7) != NULL;
}

void
cli_log_out_finish(cli_log_out *o)
{
  if (o->progress_fd >= 0)
    cli_write_all(o->progress_fd, "\n", 1);
  o->progress_fd = -1;
}

/* A note piece on a styled fd: each line in its style, the reset before the newline (a terminal that is cut off
 * mid-line keeps no color). */
static void
write_note(cli_log_out *o, int fd, const char *data, size_t len)
{
  while (len > 0) {
    if (o->at_bol)
      o->open = note_style(data, len);
    const char *nl = memchr(data, '\n', len);
    size_t n = nl ? (size_t) (nl - data) : len;
    const char *sgr = cli_sgr(fd, o->open);
    cli_write_all(fd, sgr, strlen(sgr));
    cli_write_all(fd, data, n);
    cli_write_all(fd, CLI_SGR_RESET, strlen(CLI_SGR_RESET));
    if (nl)
      cli_write_all(fd, "\n", 1);
    o->at_bol = nl != NULL;
    n += nl ? 1 : 0;
    data += n;
    len -= n;
  }
}

void
cli_log_out_write(cli_log_out *o, int fd, int kind, const char *data, size_t len)
{
  bool styled = fd >= 1 && fd <= 2 && o->styled[fd];
  if (styled && kind == BERTH_LOG_NOTE && o->at_bol && is_progress(data, len)) {
    const char *sgr = cli_sgr(fd, CLI_STYLE_NOTE);
    if (o->progress_fd >= 0 && o->progress_fd != fd)
      cli_log_out_finish(o);
    cli_write_all(fd, "\r\033[K", 4);
    cli_write_all(fd, sgr, strlen(sgr));
    cli_write_all(fd, data, len - 1); /* the newline comes with whatever follows */
    cli_write_all(fd, CLI_SGR_RESET, strlen(CLI_SGR_RESET));
    o->progress_fd = fd;
    return;
  }
  cli_log_out_finish(o);
  if (styled && kind == BERTH_LOG_NOTE)
    write_note(o, fd, data, len);
  else
    cli_write_all(fd, data, len);
}
