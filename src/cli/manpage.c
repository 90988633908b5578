/* `berth __man [GROUP]`: berth(1), or the page of one command group (berth-task(1) ...), in man(7) roff. A page is
 * made of the command table (name, synopsis, flags, one-line help) and of the commands' own --help text, taken by
 * running this very binary with --help, so the pages cannot say other than the program. The build runs it for
 * every group (`berth __man --list`) and installs the result. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "berth/buf.h"
#include "cli.h"
#include "command_table.h"

extern char **environ;

#define HELP_MAX (64u * 1024u)

/* ---- roff ---- */

/* s as roff text: a leading . or ' would be a request; \ starts an escape; - is a minus sign in flags. */
static void
roff_text(const char *s, size_t len)
{
  bool bol = true;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (bol && (c == '.' || c == '\''))
      fputs("\\&", stdout);
    if (c == '\\')
      fputs("\\e", stdout);
    else if (c == '-')
      fputs("\\-", stdout);
    else
      putchar(c);
    bol = c == '\n';
  }
}

static void
roff(const char *s)
{
  roff_text(s, strlen(s));
}

/* A block of text printed as it is (a --help text): no filling, no adjusting. */
static void
roff_verbatim(const char *s, size_t len)
{
  fputs(".PP\n.nf\n", stdout);
  roff_text(s, len);
  if (len > 0 && s[len - 1] != '\n')
    putchar('\n');
  fputs(".fi\n", stdout);
}

static void
roff_flag(const cli_flag *f)
{
  fputs(".TP\n.B ", stdout);
  roff(f->name);
  if (f->arg) {
    fputs(" \\fI\\%", stdout); /* no hyphens inside a value; a long list of choices may break after a | */
    for (const char *c = f->arg; *c; c++) {
      roff_text(c, 1);
      if (*c == '|')
        fputs("\\:", stdout);
    }
    fputs("\\fR", stdout);
  }
  putchar('\n');
  roff(f->help);
  putchar('\n');
}

/* ---- the commands' --help ---- */

/* Runs this binary with the words given and --help, locally and without colors; *out gets its stdout. */
static int
help_text(const char *group, const char *sub, berth_buf *out)
{
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0)
    return -1;
  self[n] = '\0';
  char *argv[] = { "berth", (char *) group, (char *) (sub ? sub : "--help"), sub ? "--help" : NULL, NULL };
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0)
    return -1;
  unsetenv("BERTH_SERVER");
  setenv("NO_COLOR", "1", 1);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, self, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  char chunk[4096];
  while (rc == 0) {
    ssize_t r = read(fds[0], chunk, sizeof chunk);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0 || berth_buf_append(out, chunk, (size_t) r) < 0)
      break;
  }
  close(fds[0]);
  int status = 0;
  if (rc == 0 && waitpid(pid, &status, 0) < 0)
    rc = -1;
  return rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* ---- pages ---- */

static void
title(const char *name)
{
  char upper[64];
  size_t i = 0;
  for (; name[i] && i < sizeof upper - 1; i++)
    upper[i] = (char) (name[i] >= 'a' && name[i] <= 'z' ? name[i] - 'a' + 'A' : name[i]);
  upper[i] = '\0';
  fputs(".TH \"", stdout);
  roff(upper);
  printf("\" 1 \"\" \"berth %s\" \"berth manual\"\n", BERTH_VERSION);
}

static int
page_main(void)
{
  size_t n_groups = 0;
  const cli_group *groups = cli_groups(&n_groups);
  title("berth");
  fputs(".SH NAME\nberth \\- a self\\-hosted executor for infrastructure tasks\n"
        ".SH SYNOPSIS\n.B berth\n[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR...]\n"
        ".SH DESCRIPTION\n"
        "A \\fBstack\\fR is a named project directory plus a runner image, initialization commands, hooks, "
        "environment (plain and secret), limits and persisted state.\n"
        "A \\fBtask\\fR is a command run against a stack: berth creates a fresh, hardened container through the "
        "Docker Engine API, uploads the workspace, runs the initialization phase, then runs the command, streaming "
        "its output live with every secret masked, and records every transition, log line and state file.\n"
        ".PP\n"
        "Commands work on the local store, or on a berth server with \\fB\\-\\-server\\fR.\n"
        "Every command takes \\fB\\-\\-help\\fR; each group has its own page, listed below.\n"
        ".SH COMMANDS\n",
        stdout);
  for (size_t i = 0; i < n_groups; i++) {
    if (!groups[i].help)
      continue;
    printf(".TP\n.BR berth\\-%s (1)\n", groups[i].name);
    roff(groups[i].help);
    putchar('\n');
  }
  fputs(".SH OPTIONS\n", stdout);
  for (const cli_flag *f = cli_global_flags; f->name; f++)
    roff_flag(f);
  fputs(".SH ENVIRONMENT\n"
        ".TP\n.B BERTH_HOME\n"
        "The store: \\fIberth.db\\fR, \\fIsecret.key\\fR, \\fIlogs/\\fR, \\fIstate/\\fR, \\fIconfig.json\\fR.\n"
        "Default: \\fI$XDG_DATA_HOME/berth\\fR, \\fI/var/lib/berth\\fR for root, else "
        "\\fI~/.local/share/berth\\fR.\n"
        ".TP\n.B BERTH_SERVER\nThe server to talk to, as \\fB\\-\\-server\\fR.\n"
        ".TP\n.B BERTH_API_KEY\nThe API key sent to the server.\n"
        ".TP\n.B BERTH_STORE\nThe store's engine: a \\fIpostgresql://\\fR URL or libpq settings (a fleet); unset, "
        "the key \\fIstore\\fR of \\fIconfig.json\\fR, else SQLite in \\fBBERTH_HOME\\fR.\n"
        ".TP\n.B BERTH_HTTP_TIMEOUT\nHow long a request to a server may stay silent (a duration; default 2m).\n"
        ".TP\n.B BERTH_MAX_PARALLEL_TASKS\nTasks running at once on this host (overrides \\fImax_parallel_tasks\\fR).\n"
        ".TP\n.B BERTH_WORKSPACE_MAX_BYTES\\fR, \\fBBERTH_WORKSPACE_MAX_ENTRIES\nCaps on an uploaded workspace "
        "(override \\fIconfig.json\\fR).\n"
        ".TP\n.B DOCKER_HOST\nThe Docker daemon, read as the docker CLI reads it "
        "(with \\fBDOCKER_TLS_VERIFY\\fR and \\fBDOCKER_CERT_PATH\\fR).\n"
        ".TP\n.B NO_COLOR\nWhen set and not empty, no colors or styles, as \\fB\\-\\-no\\-color\\fR.\n"
        ".SH EXIT STATUS\n"
        "0 on success; 124 when a task ran into its run or idle timeout; 125 when berth could not do what was "
        "asked (bad input, not found, denied, busy, Docker error). \\fBberth task run\\fR exits with the command's "
        "own status when the command failed.\n"
        ".SH FILES\n"
        ".TP\n.I /var/lib/berth\nThe store of the system service (\\fBberth.service\\fR), owned by the "
        "\\fBberth\\fR user.\n"
        ".SH SEE ALSO\n",
        stdout);
  bool first = true;
  for (size_t i = 0; i < n_groups; i++) {
    if (!groups[i].help)
      continue;
    printf("%s.BR berth\\-%s (1)", first ? "" : ",\n", groups[i].name);
    first = false;
  }
  fputs("\n", stdout);
  return 0;
}

/* The synopsis line of one subcommand: `berth GROUP [SUB] USAGE`. */
static void
synopsis(const cli_subcommand *s)
{
  printf(".B berth %s%s%s\n", s->group, s->name ? " " : "", s->name ? s->name : "");
  if (s->usage && *s->usage) {
    roff(s->usage);
    putchar('\n');
  }
}

static int
page_group(const cli_group *g)
{
  size_t n_subs = 0;
  const cli_subcommand *subs = cli_subcommands(&n_subs);
  char name[64];
  snprintf(name, sizeof name, "berth-%s", g->name);
  title(name);
  printf(".SH NAME\nberth\\-%s \\- ", g->name);
  roff(g->help);
  fputs("\n.SH SYNOPSIS\n", stdout);
  bool any = false;
  for (size_t i = 0; i < n_subs; i++) {
    if (strcmp(subs[i].group, g->name) != 0)
      continue;
    if (any)
      fputs(".br\n", stdout);
    synopsis(&subs[i]);
    any = true;
  }
  if (!any)
    printf(".B berth %s\n\\fICOMMAND\\fR [\\fIARGS\\fR...]\n", g->name);

  /* what `berth GROUP --help` says, then each subcommand: its line, its --help (once per distinct text), flags */
  berth_buf group_help, help;
  berth_buf_init(&group_help, HELP_MAX);
  berth_buf_init(&help, HELP_MAX);
  int rc = help_text(g->name, NULL, &group_help);
  if (rc == 0) {
    fputs(".SH DESCRIPTION\n", stdout);
    roff_verbatim(group_help.data, group_help.len);
  }
  const char *seen[64];
  size_t n_seen = 0;
  if (any)
    fputs(".SH COMMANDS\n", stdout);
  for (size_t i = 0; rc == 0 && i < n_subs; i++) {
    const cli_subcommand *s = &subs[i];
    if (strcmp(s->group, g->name) != 0)
      continue;
    printf(".SS \"berth %s%s%s\"\n", s->group, s->name ? " " : "", s->name ? s->name : "");
    roff(s->help);
    fputs(".\n", stdout);
    help.len = 0;
    if (s->name && help_text(g->name, s->name, &help) < 0) {
      fprintf(stderr, "berth: `berth %s %s --help` failed\n", g->name, s->name);
      rc = -1;
      break;
    }
    bool dup = s->name == NULL || (help.len == group_help.len && memcmp(help.data, group_help.data, help.len) == 0);
    for (size_t k = 0; !dup && k < n_seen; k++)
      dup = strlen(seen[k]) == help.len && memcmp(seen[k], help.data, help.len) == 0;
    if (!dup) {
      roff_verbatim(help.data, help.len);
      if (n_seen < sizeof seen / sizeof seen[0])
        seen[n_seen++] = strndup(help.data, help.len);
    }
    bool flags = false;
    CLI_FOR_EACH_FLAG(s, f)
    {
      if (!flags)
        fputs(".PP\nFlags:\n", stdout);
      flags = true;
      roff_flag(f);
    }
  }
  for (size_t k = 0; k < n_seen; k++)
    free((char *) seen[k]);
  berth_buf_free(&group_help);
  berth_buf_free(&help);
  if (rc < 0) {
    fprintf(stderr, "berth: cannot read `berth %s --help`\n", g->name);
    return 125;
  }
  fputs(".SH SEE ALSO\n.BR berth (1)\n", stdout);
  return 0;
}

int
cmd_man(int argc, char **argv)
{
  size_t n_groups = 0;
  const cli_group *groups = cli_groups(&n_groups);
  if (argc == 1)
    return page_main();
  if (argc == 2 && strcmp(argv[1], "--list") == 0) { /* the pages the build makes */
    printf("berth\n");
    for (size_t i = 0; i < n_groups; i++)
      if (groups[i].help)
        printf("berth-%s\n", groups[i].name);
    return 0;
  }
  if (argc == 2 && strcmp(argv[1], "--commands") == 0) { /* "GROUP [SUBCOMMAND]" a line: what tests walk */
    size_t n = 0;
    const cli_subcommand *subs = cli_subcommands(&n);
    for (size_t i = 0; i < n; i++)
      printf("%s%s%s\n", subs[i].group, subs[i].name ? " " : "", subs[i].name ? subs[i].name : "");
    return 0;
  }
  const cli_group *g = argc == 2 ? cli_group_find(argv[1]) : NULL;
  if (g == NULL || g->help == NULL)
    return cli_usage_error("__man: usage: berth __man [GROUP | --list | --commands]");
  return page_group(g);
}
