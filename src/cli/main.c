/* The berth command line: subcommand dispatch. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth_commit.h" /* generated: BERTH_COMMIT */
#include "cli.h"
#include "command_table.h"
#include "style.h"

/* The command groups, in the order `berth --help` lists them; their subcommands and flags are in command_table.c.
 * A NULL help hides a command. */
static const cli_group commands[] = {
  { "doctor", cmd_doctor, "Docker reachable? API version, store, runner image" },
  { "stack", cmd_stack, "create, update, show, list, delete, lock stacks; stack state" },
  { "task", cmd_task, "run, list, show, logs (follow), cancel, retry, prune tasks" },
  { "image", cmd_image, "image allowlist: allow, deny, remove, list, check" },
  { "policy", cmd_policy, "task policies: add, list, remove, test" },
  { "audit", cmd_audit, "the audit trail: list, verify" },
  { "schedule", cmd_schedule, "scheduled tasks: add, list, show, pause, resume, remove" },
  { "webhook", cmd_webhook, "signed webhooks: add, list, remove, deliveries, redeliver" },
  { "serve", NULL, "the HTTP API server" }, /* the server front end's, passed to cli_main */
  { "key", cmd_key, "API keys: create, list, revoke" },
  { "host", cmd_host, "the fleet's hosts: list, show, drain, undrain, remove" },
  { "store", cmd_store, "the store: info, migrate, copy" },
  { "oidc", cmd_oidc, "the OIDC issuer: rotate, jwks, config" },
  { "__supervise", cmd_supervise, NULL },
  { "completion", cmd_completion, "print a shell completion script: bash, zsh, fish" },
  { "__man", cmd_man, NULL },
};

const cli_group *
cli_groups(size_t *n)
{
  *n = sizeof commands / sizeof commands[0];
  return commands;
}

static void
usage(FILE *out)
{
  fprintf(out, "usage: berth [OPTIONS] COMMAND [ARGS...]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (commands[i].help)
      fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
  fprintf(out, "\noptions:\n");
  for (const cli_flag *f = cli_global_flags; f->name; f++) {
    char spec[64];
    snprintf(spec, sizeof spec, "%s%s%s", f->name, f->arg ? " " : "", f->arg ? f->arg : "");
    fprintf(out, "  %-14s %s\n", spec, f->help);
  }
  fprintf(out, "\nRun 'berth COMMAND --help' for a command's options.\n");
}

int
cli_fail(berth_error *err)
{
  int code = err ? err->code : BERTH_EINTERNAL;
  cli_error_prefix();
  const char *msg = err && err->msg ? err->msg : "unknown error";
  char *shown = cli_printable_text(msg); /* a message may quote anyone's text (a lock's note) */
  fprintf(stderr, "%s\n", shown ? shown : msg);
  free(shown);
  berth_error_free(err);
  return berth_error_exit_code(code);
}

int
cli_usage_error(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  cli_error_prefix();
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return 125;
}

/* Takes --no-color out of the options before the command (`berth --no-color --server URL task list`): it is
 * NO_COLOR for this process, which every styled output reads (cli_styled). */
static void
take_no_color(int *argc, char **argv)
{
  int i = 1;
  while (i < *argc && argv[i][0] == '-') {
    if (strcmp(argv[i], "--no-color") == 0) {
      setenv("NO_COLOR", "1", 1);
      memmove(&argv[i], &argv[i + 1], (size_t) (*argc - i) * sizeof *argv); /* argv[argc] is NULL */
      (*argc)--;
    } else if (strcmp(argv[i], "--server") == 0) {
      i += 2;
    } else {
      i++;
    }
  }
}

/* Takes `--server URL` (or `--server=URL`) out of the options before the command: it is BERTH_SERVER for this
 * process, which chooses the back end of every command (backend.c). 0, or the exit status of a refusal. */
static int
take_server(int *argc, char ***argv)
{
  char **v = *argv;
  int skip = 0;
  if (*argc == 2 && strcmp(v[1], "--server") == 0)
    return cli_usage_error("--server needs a URL (http://HOST:PORT, https://... or unix:PATH)");
  if (*argc >= 3 && strcmp(v[1], "--server") == 0) {
    setenv("BERTH_SERVER", v[2], 1);
    skip = 2;
  } else if (*argc >= 2 && strncmp(v[1], "--server=", 9) == 0) {
    setenv("BERTH_SERVER", v[1] + 9, 1);
    skip = 1;
  }
  if (skip) {
    v[skip] = v[0];
    *argv = v + skip;
    *argc -= skip;
  }
  if (*argc >= 2 && (strcmp((*argv)[1], "--server") == 0 || strncmp((*argv)[1], "--server=", 9) == 0))
    return cli_usage_error("--server is given twice");
  return 0;
}

/* A group that takes a subcommand, given none (`berth stack`): says so in one line, naming them (from the command
 * table), and returns true. */
static bool
missing_subcommand(const char *group)
{
  size_t n = 0;
  const cli_subcommand *subs = cli_subcommands(&n);
  char names[512] = "";
  for (size_t i = 0; i < n; i++) {
    if (strcmp(subs[i].group, group) != 0)
      continue;
    if (subs[i].name == NULL)
      return false; /* it runs without one (`berth doctor`) */
    size_t used = strlen(names);
    snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "", subs[i].name);
  }
  if (names[0] == '\0')
    return false;
  cli_usage_error("'berth %s' needs a command: %s (see 'berth %s --help')", group, names, group);
  return true;
}

static const char *const *supervisor_argv_given;

const char *const *
cli_supervisor_argv(void)
{
  return supervisor_argv_given;
}

int
cli_main(int argc, char **argv, cli_command_fn serve, const char *const *supervisor_argv)
{
  supervisor_argv_given = supervisor_argv;
  take_no_color(&argc, argv);
  int rc = take_server(&argc, &argv);
  if (rc != 0)
    return rc;
  if (argc < 2) {
    usage(stderr);
    return 125;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || (strcmp(argv[1], "help") == 0 && argc == 2)) {
    usage(stdout);
    return 0;
  }
  /* one way to ask for help, whichever is typed: `berth help task run`, `berth task help` and `... -h` are
   * `berth task run --help` and `berth task --help` (a -h after `--` is the task's own) */
  static char help_flag[] = "--help";
  if (strcmp(argv[1], "help") == 0) { /* `help` out, `--help` in at the end: the same count */
    memmove(argv + 1, argv + 2, (size_t) (argc - 2) * sizeof *argv);
    argv[argc - 1] = help_flag;
  } else if (argc == 3 && strcmp(argv[2], "help") == 0) {
    argv[2] = help_flag;
  } else if (strcmp(argv[argc - 1], "-h") == 0) {
    bool after_dashes = false;
    for (int i = 1; i < argc - 1 && !after_dashes; i++)
      after_dashes = strcmp(argv[i], "--") == 0;
    if (!after_dashes)
      argv[argc - 1] = help_flag;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("berth %s (commit %s)\n", BERTH_VERSION, BERTH_COMMIT);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(argv[1], commands[i].name) == 0)
      return argc == 2 && missing_subcommand(commands[i].name)
                 ? 125
                 : (commands[i].fn ? commands[i].fn : serve)(argc - 1, argv + 1);
  return cli_usage_error("unknown command '%s' (see 'berth --help')", argv[1]);
}
