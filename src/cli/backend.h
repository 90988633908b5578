/* The two back ends of the command line. A command parses its arguments once into a cli_request, asks the back end
 * for one operation (cli_op) and renders the JSON record it gets: the record of the HTTP API, which the local back
 * end (backend_local.c: libberth calls on the store at BERTH_HOME) builds with the same libberth builders the server
 * uses, and the HTTP back end (backend_http.c: `--server URL` / BERTH_SERVER) receives from the server. So help,
 * flags, exit codes and `--json` output are the same in both modes by construction (tests/integration/test_modes.sh
 * checks it). Adding a command: docs/architecture.md, "Adding a command". */
#ifndef BERTH_CLI_BACKEND_H
#define BERTH_CLI_BACKEND_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "berth/error.h"

/* One operation per command that talks to a store. The record each returns is the API's answer to the route named
 * here (docs/http-api.md). */
typedef enum cli_op {
  CLI_OP_DOCTOR,        /* GET /v1/doctor */
  CLI_OP_STACK_LIST,    /* GET /v1/stacks */
  CLI_OP_STACK_SHOW,    /* GET /v1/stacks/{arg} */
  CLI_OP_STACK_STATE,   /* GET /v1/stacks/{arg}/state */
  CLI_OP_STACK_CREATE,  /* POST /v1/stacks, body */
  CLI_OP_STACK_UPDATE,  /* PATCH /v1/stacks/{arg}, body */
  CLI_OP_STACK_DELETE,  /* DELETE /v1/stacks/{arg} */
  CLI_OP_STACK_LOCK,    /* POST /v1/stacks/{arg}/lock, body {"note"?} */
  CLI_OP_STACK_UNLOCK,  /* DELETE /v1/stacks/{arg}/lock[?force=1] */
  CLI_OP_TASK_LIST,     /* GET /v1/tasks[?stack&state&limit] */
  CLI_OP_TASK_SHOW,     /* GET /v1/tasks/{arg} */
  CLI_OP_TASK_SUBMIT,   /* POST /v1/stacks/{arg}/tasks, body {"command", "skip_init", "env", "secret_env"} */
  CLI_OP_TASK_CANCEL,   /* POST /v1/tasks/{arg}/cancel */
  CLI_OP_AUDIT_LIST,    /* GET /v1/audit[?since] */
  CLI_OP_AUDIT_VERIFY,  /* GET /v1/audit/verify */
  CLI_OP_IMAGE_LIST,    /* GET /v1/images/rules */
  CLI_OP_IMAGE_CHECK,   /* GET /v1/images/check?ref={arg} */
  CLI_OP_IMAGE_ADD,     /* POST /v1/images/rules, body {"pattern", "kind"} */
  CLI_OP_IMAGE_REMOVE,  /* DELETE /v1/images/rules?pattern={arg} */
  CLI_OP_POLICY_LIST,   /* GET /v1/policies */
  CLI_OP_POLICY_ADD,    /* POST /v1/policies, raw_body: the policy text */
  CLI_OP_POLICY_REMOVE, /* DELETE /v1/policies/{arg} */
  CLI_OP_POLICY_TEST,   /* POST /v1/policies/test, body {"stack", "command", "actor"?, "role"?, "at"?} */
  CLI_OP_KEY_LIST,      /* GET /v1/keys[?all=1] */
  CLI_OP_KEY_CREATE,    /* POST /v1/keys, body {"name", "role", "stacks"} */
  CLI_OP_KEY_REVOKE,    /* DELETE /v1/keys/{arg} */
  CLI_OP_OIDC_JWKS,     /* GET /.well-known/jwks.json */
  CLI_OP_OIDC_CONFIG,   /* GET /.well-known/openid-configuration */
  CLI_OP_OIDC_ROTATE,   /* POST /v1/oidc/rotate, body {"alg"?} */
  CLI_OP_TASK_RETRY,    /* POST /v1/tasks/{arg}/retry, body {"secret_env"} */
  CLI_OP_HOST_LIST,     /* GET /v1/hosts */
  CLI_OP_HOST_SHOW,     /* GET /v1/hosts/{arg} */
  CLI_OP_HOST_DRAIN,    /* POST /v1/hosts/{arg}/drain */
  CLI_OP_HOST_UNDRAIN,  /* POST /v1/hosts/{arg}/undrain */
  CLI_OP_HOST_REMOVE,   /* DELETE /v1/hosts/{arg} */
  CLI_OP_TASK_PRUNE,    /* POST /v1/tasks/prune, body {"older_than", "stack"?, "dry_run"?} */
  CLI_OP_COUNT
} cli_op;

/* A parsed command line: what the operation needs, in the API's terms. Strings point into argv or the request's
 * own storage; body is owned by the request (cli_request_clear wipes its secret values). */
typedef struct cli_request {
  const char *arg;      /* the one object: a stack name, task id, image reference or pattern, policy or key name */
  const char *stack;    /* task list --stack */
  const char *state;    /* task list --state */
  const char *host;     /* task list --host */
  int limit;            /* task list --limit; 0 = all */
  const char *since;    /* audit --since, as typed (the store's side reads the clock) */
  bool all;             /* key list --all */
  bool force;           /* stack unlock --force */
  const char *raw_body; /* a body sent as it is, instead of body (policy add: the policy file's text) */
  cJSON *body;          /* the JSON body of the API request, or NULL */
  bool json;            /* --json: print the record, not the table */
  const char *verb;     /* for the human line of a change: "created", "locked", ... (never sent) */
} cli_request;

void cli_request_clear(cli_request *rq);

/* A log record of a followed task (kind: BERTH_LOG_*). */
typedef void (*cli_record_fn)(void *ud, int kind, const char *data, size_t len);

typedef struct cli_backend cli_backend;
typedef struct cli_backend_ops {
  /* The operation's record: 0 with *out (the caller's), or -1 with *err. An operation this back end does not
   * have fails with BERTH_EINVAL. */
  int (*call)(cli_backend *b, cli_op op, const cli_request *rq, cJSON **out, berth_error **err);
  /* Prints task id's log through fn; with follow, until the task ends. 0 at the end, 1 when *stop became set,
   * -1 with *err. */
  int (*follow)(cli_backend *b, const char *id, bool follow, const volatile sig_atomic_t *stop, cli_record_fn fn,
                void *ud, berth_error **err);
  void (*free)(cli_backend *b);
} cli_backend_ops;

struct cli_backend {
  const cli_backend_ops *ops;
};

/* The back end of this command line: HTTP when BERTH_SERVER names a server (`--server URL` sets it), else local.
 * 0 with *out, or -1 with *err. */
int cli_backend_open(cli_backend **out, berth_error **err);
int cli_backend_local_new(cli_backend **out, berth_error **err);
int cli_backend_http_new(cli_backend **out, berth_error **err);
void cli_backend_free(cli_backend *b);

/* Opens the back end, runs op and hands back the record: 0, or the exit status after printing the error. */
int cli_call(cli_op op, const cli_request *rq, cJSON **out);

/* How a command shows its record: with --json the record (or json(record), a new object, when the command prints
 * another form), else human(rq, record); the exit status is status(record), or 0 when status is NULL. */
typedef struct cli_view {
  void (*human)(const cli_request *rq, const cJSON *rec);
  cJSON *(*json)(const cJSON *rec);
  int (*status)(const cJSON *rec);
} cli_view;
/* Runs op for rq and shows its record with view; clears rq. Returns the exit status. */
int cli_run(cli_op op, cli_request *rq, const cli_view *view);

#endif
