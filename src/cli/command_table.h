/* The command table: every command group, subcommand and flag of `berth` with a one-line help. The dispatch
 * (main.c), the shell completions (completion.c) and the man pages (manpage.c) are all read from it, so adding a
 * command is adding its entries here and nowhere else. */
#ifndef BERTH_CLI_COMMAND_TABLE_H
#define BERTH_CLI_COMMAND_TABLE_H

#include <stddef.h>

#include "cli.h" /* cli_command_fn */

/* A flag. arg is NULL for a switch, else the value's name as --help shows it ("K=V", "DUR"); a value written as
 * choices ("none|bridge") is completed from them, and one ending in DIR, FILE or PATH as a directory or file. */
typedef struct cli_flag {
  const char *name; /* "--env" */
  const char *arg;
  const char *help;
} cli_flag;

/* A command group (`berth task`). fn runs it with argv[0] = the group's name; NULL for `serve`, whose entry point
 * the server front end passes to cli_main. help is NULL for hidden (internal) commands. */
typedef struct cli_group {
  const char *name;
  cli_command_fn fn;
  const char *help;
} cli_group;

/* A subcommand of a group (`berth task run`), or, with name NULL, what the group takes without one (`berth doctor
 * [--json]`). usage is the rest of its synopsis after the name; flags lists up to three flag arrays, each ending
 * with a { NULL } entry (groups of flags are shared: `stack create` and `stack update`). */
typedef struct cli_subcommand {
  const char *group;
  const char *name;
  const char *usage;
  const char *help;
  const cli_flag *flags[3];
} cli_subcommand;

/* The commands of the table's own: `berth completion bash|zsh|fish` (completion.c) and the internal
 * `berth __man [GROUP | --list]` that prints a man page (manpage.c). */
int cmd_completion(int argc, char **argv);
int cmd_man(int argc, char **argv);

/* The options that come before the command (`berth --server URL task list`). */
extern const cli_flag cli_global_flags[];

/* The groups, in the order `berth --help` lists them (main.c), and the subcommands (command_table.c). */
const cli_group *cli_groups(size_t *n);
const cli_subcommand *cli_subcommands(size_t *n);
/* The group named name, or NULL. */
const cli_group *cli_group_find(const char *name);

/* Runs f(flag, ud) over the flags of sub. */
#define CLI_FOR_EACH_FLAG(sub, f)                                                                                      \
  for (size_t cli_k_ = 0; cli_k_ < 3; cli_k_++)                                                                        \
    for (const cli_flag *f = (sub)->flags[cli_k_]; f && f->name; f++)

#endif
