/* Terminal manners: colors and styles only on a terminal, never with NO_COLOR (no-color.org) or TERM=dumb; the
 * bytes written to a pipe or a file are the plain ones. */
#ifndef BERTH_CLI_STYLE_H
#define BERTH_CLI_STYLE_H

#include <stdbool.h>
#include <stddef.h>

/* True when output on fd may be styled: fd is a terminal, NO_COLOR is unset or empty (`--no-color` sets it), and
 * TERM is not "dumb". */
bool cli_styled(int fd);

typedef enum {
  CLI_STYLE_PLAIN,
  CLI_STYLE_HEADER,  /* a phase header: `==> initializing (2 commands)` */
  CLI_STYLE_DONE,    /* the last header of a task that finished: `==> FINISHED` */
  CLI_STYLE_NOTE,    /* berth's own line between the command's output */
  CLI_STYLE_WARNING, /* `warning: ...` */
  CLI_STYLE_ERROR,   /* `error: ...`, `berth:` before a failure */
} cli_style;

/* The SGR sequence that starts style s on fd, "" when fd is not styled; CLI_SGR_RESET ends it. */
const char *cli_sgr(int fd, cli_style s);
#define CLI_SGR_RESET "\033[0m"

/* Prints the "berth: " that starts an error line on stderr, red on a terminal. */
void cli_error_prefix(void);
/* Prints "berth: <fmt>" and a newline on stderr, dim on a terminal: a note of the command line's own. */
void cli_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes a task log's records to the terminal as they come: the command's output as it is, berth's notes styled by
 * what they say (phase headers, warnings, errors, the rest dim), and consecutive pull progress lines
 * (`pull: 3/7 layers, ...`) rewriting one line in place. On a stream that is not styled every byte goes out as
 * recorded. A record may arrive in pieces: the state is kept between calls. */
typedef struct cli_log_out {
  bool styled[3];  /* per fd (1, 2) */
  cli_style open;  /* the style of the note line being written, when it continues in the next piece */
  bool at_bol;     /* the last note piece ended a line */
  int progress_fd; /* a progress line is open on this fd (no newline yet); -1 when none */
} cli_log_out;

void cli_log_out_init(cli_log_out *o);
/* Writes one piece of a record of kind (BERTH_LOG_STDOUT / STDERR / NOTE) to fd. */
void cli_log_out_write(cli_log_out *o, int fd, int kind, const char *data, size_t len);
/* Ends an open progress line (call before printing anything else). */
void cli_log_out_finish(cli_log_out *o);

#endif
