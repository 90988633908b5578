/* The berth command-line front end: only this layer prints and chooses exit codes. */
#ifndef BERTH_CLI_H
#define BERTH_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "berth/error.h"

/* Subcommands: argv[0] is the subcommand name ("doctor", "stack", ...). Return the process exit status. */
int cmd_doctor(int argc, char **argv);
int cmd_stack(int argc, char **argv);
int cmd_task(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_host(int argc, char **argv);
int cmd_store(int argc, char **argv);
int cmd_oidc(int argc, char **argv);
int cmd_schedule(int argc, char **argv);
int cmd_webhook(int argc, char **argv);
int cmd_supervise(int argc, char **argv); /* internal: the background supervisor of one task */

/* The berth command line: dispatches argv[1] to its command and returns the exit status. `serve` goes to serve,
 * the HTTP front end's entry point, which the program's main passes in (src/main.c): the CLI and the server never
 * include each other. */
typedef int (*cli_command_fn)(int argc, char **argv);
int cli_main(int argc, char **argv, cli_command_fn serve, const char *const *supervisor_argv);
/* The command that supervises one task (berth_submit.supervisor_argv), as cli_main was given it. */
const char *const *cli_supervisor_argv(void);

/* Prints "berth: <msg>" on stderr (the message passes the process-wide redactor when one is set) and returns the
 * exit code mapped from err's code. Frees err. */
int cli_fail(berth_error *err);
/* The one line for a flag getopt_long refused (berth_flag_error; opterr = 0, an optstring starting with ':' or "+:"),
 * printed; returns the exit code. cmd is "task run", say. */
int cli_flag_error(int ret, const char *cmd, char **argv);
/* Prints "berth: <fmt>" on stderr and returns 125. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct berth_store;
struct cJSON;
/* The local actor: the OS user's name. Caller frees. */
char *cli_current_user(void);
/* Opens the store at BERTH_HOME (or the default); on failure prints the one line and returns the exit code. */
int cli_open_store(struct berth_store **st);
/* Writes all of data to fd (retrying on EINTR and short writes); -1 on error. */
int cli_write_all(int fd, const char *data, size_t len);
/* Prints j, indented, and a newline on stdout. */
void cli_print_json(const struct cJSON *j);
/* For a terminal: every string of j (names too) with its control characters written out (\n, \t, \r, \e, \xNN,
 * \uNNNN for C1 controls and bidi overrides),
 * so that no record (a command, a lock's note, an env value: anyone's input) moves the cursor, clears the screen or
 * fakes a table's rows. */
void cli_printable(struct cJSON *j);
/* text so written out, in a new string; NULL when it needs nothing written out. */
char *cli_printable_text(const char *text);

#endif
