/* Every subcommand and flag of `berth`, one line of help each (command_table.h). A new subcommand is one entry in
 * `subcommands`; a group without entries here is still dispatched and listed, only without completions. */
#include <string.h>

#include "command_table.h"

const cli_flag cli_global_flags[] = {
  { "--server", "URL", "talk to a berth server instead of the local store (also BERTH_SERVER)" },
  { "--no-color", NULL, "no colors or styles, even on a terminal (also NO_COLOR)" },
  { "--version", NULL, "print the version and the commit it was built from" },
  { "--help", NULL, "list the commands" },
  { NULL, NULL, NULL },
};

static const cli_flag json_flag[] = { { "--json", NULL, "print JSON" }, { NULL, NULL, NULL } };

static const cli_flag stack_flags[] = {
  { "--image", "REF", "runner image (required on create)" },
  { "--project-dir", "DIR", "directory uploaded as the workspace (made absolute; '' = none)" },
  { "--subdir", "PATH", "working directory inside the project dir (relative; '' = none)" },
  { "--init", "CMD", "initialization command (repeatable)" },
  { "--before-init", "CMD", "hook before the init commands (repeatable)" },
  { "--before-perform", "CMD", "hook before the command (repeatable)" },
  { "--after-perform", "CMD", "hook after the command (repeatable)" },
  { "--after-run", "CMD", "hook that always runs at the end (repeatable)" },
  { "--env", "K=V", "environment variable (repeatable)" },
  { "--secret-env", "K[=V]", "secret variable; K alone reads V from berth's environment (repeatable)" },
  { "--network", "none|bridge|host", "container network (default none; host only if the admin allows it)" },
  { "--memory", "SIZE", "memory limit, e.g. 512m, 1g (0 = admin default)" },
  { "--cpus", "N", "cpu limit, e.g. 1.5 (0 = admin default)" },
  { "--pids", "N", "process limit (0 = admin default)" },
  { "--timeout", "DUR", "run timeout, e.g. 70m, 1h30m (default 70m)" },
  { "--idle-timeout", "DUR", "timeout without output (default 7m)" },
  { "--pull", "always|if-not-present|never", "image pull policy (default if-not-present)" },
  { "--persist", "PATH", "path (relative to the working dir) kept across tasks (repeatable)" },
  { "--label", "L", "label (repeatable)" },
  { "--keep-versions", "N", "state versions kept (default 10)" },
  { "--oidc-audience", "AUD", "each task gets an OIDC identity token for AUD (repeatable; docs/credentials.md)" },
  { "--oidc-aws-role", "ARN", "with a token: AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE for the AWS SDKs" },
  { "--credentials", "NAME", "credential helper from config.json run before initialization (repeatable)" },
  { "--pool", "NAME", "run its tasks only on fleet hosts of this pool ('' = default)" },
  { NULL, NULL, NULL },
};

static const cli_flag stack_update_flags[] = {
  { "--unset-env", "K", "remove a variable (repeatable)" },
  { "--unset-secret-env", "K", "remove a secret variable (repeatable)" },
  { NULL, NULL, NULL },
};

static const cli_flag task_run_flags[] = {
  { "--skip-init", NULL, "skip the initialization phase" },
  { "--env", "K=V", "environment variable for this task (repeatable)" },
  { "--secret-env", "K[=V]", "secret variable; K alone reads V from berth's environment (repeatable)" },
  { "--detach", NULL, "print the task id and return at once" },
  { "--json", NULL, "print the final task record on stdout (the command's stdout goes to stderr)" },
  { NULL, NULL, NULL },
};

static const cli_flag task_retry_flags[] = {
  { "--secret-env", "K[=V]", "secret variable to give again; K alone reads V from berth's environment (repeatable)" },
  { "--detach", NULL, "print the new task's id and return at once" },
  { "--json", NULL, "print the final task record on stdout (the command's stdout goes to stderr)" },
  { NULL, NULL, NULL },
};

static const cli_flag task_list_flags[] = {
  { "--stack", "S", "only the tasks of stack S" },
  { "--state", "QUEUED|PREPARING|INITIALIZING|PERFORMING|FINISHED|FAILED|CANCELED|STOPPED",
    "only the tasks in this state" },
  { "--host", "H", "only the tasks fleet host H ran (or runs)" },
  { "--limit", "N", "at most N tasks, newest first" },
  { "--json", NULL, "print JSON" },
  { NULL, NULL, NULL },
};
static const cli_flag task_prune_flags[] = {
  { "--older-than", "DUR", "the tasks that ended at least this long ago (\"30d\"; required)" },
  { "--stack", "S", "only the tasks of stack S" },
  { "--dry-run", NULL, "count what would go, change nothing" },
  { "--json", NULL, "print JSON" },
  { NULL, NULL, NULL },
};

static const cli_flag follow_flag[]
    = { { "--follow", NULL, "keep printing until the task ends" }, { NULL, NULL, NULL } };
static const cli_flag since_flag[]
    = { { "--since", "TIME", "only records since a UTC date or a duration ago" }, { NULL, NULL, NULL } };
static const cli_flag all_flag[] = { { "--all", NULL, "revoked keys too" }, { NULL, NULL, NULL } };
static const cli_flag note_flag[] = { { "--note", "TEXT", "why the stack is locked" }, { NULL, NULL, NULL } };
static const cli_flag force_flag[] = { { "--force", NULL, "break someone else's lock (admin)" }, { NULL, NULL, NULL } };

static const cli_flag policy_test_flags[] = {
  { "--actor", "A", "the actor to test as (default: you)" },
  { "--role", "reader|writer|admin", "the role to test as" },
  { "--at", "TIME", "the time to test at (UTC)" },
  { NULL, NULL, NULL },
};

static const cli_flag key_create_flags[] = {
  { "--role", "admin|writer|reader", "the key's role (required)" },
  { "--stack", "S", "limit a reader or writer key to stack S (repeatable)" },
  { NULL, NULL, NULL },
};

static const cli_flag serve_flags[] = {
  { "--listen", "ADDR", "unix:PATH or tcp:HOST:PORT to listen on (repeatable)" },
  { "--tls-cert", "FILE", "PEM certificate: TCP listeners speak HTTPS" },
  { "--tls-key", "FILE", "PEM private key of --tls-cert" },
  { "--grace", "DUR", "on SIGTERM, how long PERFORMING tasks may finish (default 60s)" },
  { "--client-timeout", "DUR", "close connections idle this long (default 30s)" },
  { "--store", "URL", "the PostgreSQL store (as BERTH_STORE, which it overrides)" },
  { "--public-url", "URL", "the issuer of tasks' OIDC tokens, published at /.well-known/" },
  { "--metrics-listen", "ADDR", "an address serving only GET /metrics, without a key" },
  { "--host", "NAME", "this fleet host's name (default: the hostname; PostgreSQL store)" },
  { "--pool", "NAME", "a pool this host serves (repeatable; default: default)" },
  { "--slots", "N", "tasks this host runs at once (default: max_parallel_tasks)" },
  { "--lease", "DUR", "missed heartbeats for this long make the host lost (default 30s)" },
  { "--drained", NULL, "start drained, as after `berth host drain`: claims nothing until undrained" },
  { "--no-execute", NULL, "an API-only host: it claims no tasks" },
  { "--no-listen", NULL, "an execute-only host: no HTTP API" },
  { "--store-wait", "DUR", "how long to wait at start for a PostgreSQL server that does not answer" },
  { NULL, NULL, NULL },
};

static const cli_flag store_copy_flags[] = {
  { "--to", "URL", "an empty PostgreSQL database" },
  { "--json", NULL, "print JSON" },
  { NULL, NULL, NULL },
};

static const cli_flag oidc_rotate_flags[]
    = { { "--alg", "ES256|RS256", "signing algorithm (default ES256)" }, { NULL, NULL, NULL } };
static const cli_flag oidc_config_flags[]
    = { { "--issuer", "URL", "the issuer URL (default: config.json's oidc_issuer)" }, { NULL, NULL, NULL } };

static const cli_flag schedule_add_flags[] = {
  { "--cron", "EXPR", "5-field cron expression or a macro such as @daily" },
  { "--tz", "ZONE", "time zone of the cron expression (tz database; default UTC)" },
  { "--at", "TIME", "run once at an ISO 8601 time (instead of --cron)" },
  { "--skip-init", NULL, "skip the initialization phase" },
  { "--env", "K=V", "environment variable for the tasks (repeatable)" },
  { "--catch-up", "once|skip", "fire times missed while no server ran: one task, or none (default once)" },
  { "--json", NULL, "print JSON" },
  { NULL, NULL, NULL },
};
static const cli_flag schedule_stack_flag[]
    = { { "--stack", "S", "the schedule's stack (NAME --stack S)" }, { NULL, NULL, NULL } };
static const cli_flag webhook_add_flags[] = {
  { "--secret-env", "VAR", "the environment variable holding the signing secret (required)" },
  { "--event", "task.state|audit", "an event to send (repeatable; default task.state)" },
  { "--stack", "PATTERN", "only events of stacks matching this glob" },
  { "--json", NULL, "print JSON" },
  { NULL, NULL, NULL },
};
static const cli_flag deliveries_flags[] = { { "--limit", "N", "at most N deliveries (default 100)" },
                                             { "--json", NULL, "print JSON" },
                                             { NULL, NULL, NULL } };

static const cli_subcommand subcommands[] = {
  { "doctor", NULL, "[--json]", "check Docker, the API version, the store and the runner image", { json_flag } },

  { "task",
    "run",
    "STACK [FLAGS...] -- COMMAND...",
    "run a command in a fresh container and follow it",
    { task_run_flags } },
  { "task",
    "list",
    "[--stack S] [--state S] [--host H] [--limit N] [--json]",
    "list tasks, newest first",
    { task_list_flags } },
  { "task", "show", "ID [--json]", "show a task and its state history", { json_flag } },
  { "task", "logs", "ID [--follow]", "print a task's stored log", { follow_flag } },
  { "task", "cancel", "ID", "cancel a queued task or stop one that is starting", { NULL } },
  { "task",
    "retry",
    "ID [--secret-env K[=V]]... [--detach] [--json]",
    "run an ended task's command again as a new task (retry_of)",
    { task_retry_flags } },
  { "task",
    "prune",
    "--older-than DUR [--stack S] [--dry-run] [--json]",
    "delete ended tasks and their logs (the audit trail stays); admin",
    { task_prune_flags } },

  { "host", "list", "[--json]", "list the fleet's hosts: pools, slots, busy, heartbeat, state", { json_flag } },
  { "host", "show", "NAME [--json]", "show one host", { json_flag } },
  { "host", "drain", "NAME", "the host claims no new task (its running tasks finish); admin", { NULL } },
  { "host", "undrain", "NAME", "the host claims tasks again; admin", { NULL } },
  { "host", "remove", "NAME", "forget a lost host that will not come back; admin", { NULL } },

  { "stack", "create", "NAME --image REF [FLAGS...]", "create a stack", { stack_flags } },
  { "stack", "update", "NAME [FLAGS...]", "change the fields given", { stack_flags, stack_update_flags } },
  { "stack", "show", "NAME [--json]", "show one stack (secret values as ***)", { json_flag } },
  { "stack", "list", "[--json]", "list stacks", { json_flag } },
  { "stack", "delete", "NAME", "delete a stack and its state versions", { NULL } },
  { "stack", "state", "NAME [--json]", "list the stack's persisted state versions", { json_flag } },
  { "stack", "lock", "NAME [--note TEXT]", "only you may start tasks until you unlock", { note_flag } },
  { "stack", "unlock", "NAME [--force]", "release your lock (--force: an admin)", { force_flag } },

  { "image", "allow", "PATTERN", "allow images matching PATTERN", { NULL } },
  { "image", "deny", "PATTERN", "deny images matching PATTERN (a deny always beats an allow)", { NULL } },
  { "image", "remove", "PATTERN", "remove the rule with this pattern", { NULL } },
  { "image", "list", "[--json]", "list the rules", { json_flag } },
  { "image", "check", "REF [--json]", "show whether REF may run and which pattern decided", { json_flag } },

  { "policy", "add", "FILE", "add the rule(s) in a JSON file ('-' = stdin)", { NULL } },
  { "policy", "list", "[--json]", "list the rules", { json_flag } },
  { "policy", "remove", "NAME", "remove a rule", { NULL } },
  { "policy",
    "test",
    "STACK [--actor A] [--role R] [--at TIME] [--json] -- COMMAND...",
    "show the decision for a task and every matching rule",
    { policy_test_flags, json_flag } },

  { "audit", NULL, "[--since TIME] [--json]", "list the audit trail, oldest first", { since_flag, json_flag } },
  { "audit", "list", "[--since TIME] [--json]", "list the audit trail, oldest first", { since_flag, json_flag } },
  { "audit", "verify", "[--json]", "check the hash chain and name the first broken record", { json_flag } },

  { "schedule",
    "add",
    "STACK NAME (--cron EXPR [--tz ZONE] | --at TIME) [--skip-init] [--env K=V]... [--catch-up once|skip] -- "
    "COMMAND...",
    "submit a task on a schedule (as schedule:NAME)",
    { schedule_add_flags, schedule_stack_flag } },
  { "schedule",
    "list",
    "[--stack S] [--json]",
    "list schedules and their next fire time",
    { schedule_stack_flag, json_flag } },
  { "schedule",
    "show",
    "STACK NAME [--json]",
    "show a schedule and its latest fire",
    { schedule_stack_flag, json_flag } },
  { "schedule", "pause", "STACK NAME", "stop firing until resumed", { schedule_stack_flag } },
  { "schedule", "resume", "STACK NAME", "fire again from the next fire time after now", { schedule_stack_flag } },
  { "schedule", "remove", "STACK NAME", "remove a schedule", { schedule_stack_flag } },

  { "webhook",
    "add",
    "NAME URL --secret-env VAR [--event task.state|audit]... [--stack PATTERN]",
    "send signed events to URL",
    { webhook_add_flags } },
  { "webhook", "list", "[--json]", "list webhooks (never their secrets)", { json_flag } },
  { "webhook", "remove", "NAME", "remove a webhook and its deliveries", { NULL } },
  { "webhook",
    "deliveries",
    "NAME [--limit N] [--json]",
    "the webhook's deliveries and every attempt",
    { deliveries_flags } },
  { "webhook", "redeliver", "DELIVERY_ID", "send a delivery again", { NULL } },

  { "key",
    "create",
    "NAME --role admin|writer|reader [--stack S]...",
    "create an API key and print it once",
    { key_create_flags } },
  { "key", "list", "[--all] [--json]", "list API keys", { all_flag, json_flag } },
  { "key", "revoke", "NAME", "revoke an API key", { NULL } },

  { "store", "info", "[--json]", "the store's engine, schema version, counts and size", { json_flag } },
  { "store", "migrate", "[--json]", "bring the store's schema up to this berth's", { json_flag } },
  { "store",
    "copy",
    "--to URL [--json]",
    "copy the whole store into an empty PostgreSQL database",
    { store_copy_flags } },

  { "oidc",
    "rotate",
    "[--alg ES256|RS256]",
    "make a new OIDC signing key (the old one stays published 1 h)",
    { oidc_rotate_flags } },
  { "oidc", "jwks", "", "print the published public keys (JWKS)", { NULL } },
  { "oidc", "config", "[--issuer URL]", "print the OIDC discovery document", { oidc_config_flags } },

  { "serve",
    NULL,
    "[--listen ADDR]... [--tls-cert FILE --tls-key FILE] [--grace DUR] [--client-timeout DUR] [--store URL]"
    " [--public-url URL] [--metrics-listen ADDR]",
    "serve the HTTP API",
    { serve_flags } },

  { "completion", "bash", "", "print the bash completion script", { NULL } },
  { "completion", "zsh", "", "print the zsh completion script", { NULL } },
  { "completion", "fish", "", "print the fish completion script", { NULL } },
};

const cli_subcommand *
cli_subcommands(size_t *n)
{
  *n = sizeof subcommands / sizeof subcommands[0];
  return subcommands;
}

const cli_group *
cli_group_find(const char *name)
{
  size_t n = 0;
  const cli_group *g = cli_groups(&n);
  for (size_t i = 0; i < n; i++)
    if (strcmp(g[i].name, name) == 0)
      return &g[i];
  return NULL;
}
