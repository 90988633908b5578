/* The store: stacks, tasks and their transitions, stack state versions (and, through their own modules, governance
 * records and API keys). The engine is SQLite in BERTH_HOME/berth.db, or PostgreSQL when BERTH_STORE holds a
 * postgresql:// URL or libpq key=value settings; which engine, and how it is reached, stays behind this header (no
 * engine type is part of the API). On SQLite BERTH_HOME holds the secret key, logs and state versions; on PostgreSQL
 * they are records of the store too, so any host that reaches the database can run and follow tasks.
 *
 * Each process opens its own handle (berth_store_open); many processes share one store concurrently. Read-modify-
 * write operations run in write transactions, so they serialize across processes (busy timeout ~10 s). Every
 * transition is durable (SQLite: WAL, synchronous=FULL) when the call returns.
 *
 * Ownership: everything returned through an `out` pointer belongs to the caller and is released with the matching
 * free function (berth_stack_free, berth_task_free, berth_stacks_free, ...). Inputs are never retained. */
#ifndef BERTH_STORE_H
#define BERTH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/error.h"

struct cJSON;

typedef struct berth_store berth_store;

/* BERTH_HOME resolution: $BERTH_HOME, else $XDG_DATA_HOME/berth, else /var/lib/berth for root,
 * else ~/.local/share/berth. Returns a new string (NULL only when out of memory). */
char *berth_home_default(void);

/* Opens (creating dirs mode 0700 + berth.db; WAL; synchronous=FULL; busy_timeout 10 s; foreign keys;
 * secure_delete; or connecting to the PostgreSQL server in BERTH_STORE) and migrates the schema to the newest
 * version this binary knows. Messages name a PostgreSQL store by its URL without the password, and never contain
 * the password. A store that is unwritable,
 * corrupt, or has a newer schema gives ONE clear line, e.g. "store /x/berth.db is not a berth store (file is not a
 * database)" or "store /x/berth.db has schema version 5, newer than this berth knows (2); use a newer berth",
 * code BERTH_EINTERNAL. */
int berth_store_open(const char *home, berth_store **out, berth_error **err);
void berth_store_close(berth_store *st); /* accepts NULL */
/* True when home's store is a PostgreSQL server that does not answer (down, starting, unreachable): what a host may
 * wait out, unlike a wrong password or a missing database. */
bool berth_store_unreachable(const char *home);
const char *berth_store_home(const berth_store *st);
const char *berth_store_instance_id(const berth_store *st); /* random id made at creation; the berth.instance label */
/* True when hosts may share the store (PostgreSQL): what this host's BERTH_HOME shows (a supervisor's liveness
 * lock) says nothing about tasks that another host runs. */
bool berth_store_is_shared(berth_store *st);

/* Transactions that nest: the outermost begin opens a write transaction, an inner one a savepoint. An inner
 * rollback undoes only its own part; the outermost commit makes everything durable together (a change and its
 * audit record). rollback with nothing open is a no-op, so "commit failed, roll back" is safe. */
int berth_store_begin(berth_store *st, berth_error **err);
/* A nested begin with no savepoint (cheaper): if it is rolled back, the enclosing transaction can only roll back too
 * (its commit fails and undoes it). For steps whose failure fails their caller (a transition and its audit record). */
int berth_store_begin_part(berth_store *st, berth_error **err);
int berth_store_commit(berth_store *st, berth_error **err);
void berth_store_rollback(berth_store *st);
/* Whether a transaction of st is open (false too once the engine rolled one back on its own: a full disk). */
bool berth_store_in_transaction(berth_store *st);
/* "sqlite" (one host) or "postgresql" (a fleet's store), for what a user is shown, never to branch on internals. */
const char *berth_store_engine(berth_store *st);

/* What `berth store info` shows. The strings belong to the store and live until berth_store_close. */
typedef struct berth_store_info {
  const char *engine;         /* "sqlite" | "postgresql" */
  const char *location;       /* the database file, or the URL without its password */
  int schema_version;         /* now (after the migrations done at open) */
  int schema_version_at_open; /* before them; 0 for a store created by this open */
  int schema_version_known;   /* the newest this binary knows */
  int64_t stacks, tasks, audit_records, api_keys;
  int64_t size_bytes; /* -1 when unknown; PostgreSQL: the whole database */
} berth_store_info;
int berth_store_info_get(berth_store *st, berth_store_info *out, berth_error **err);

/* Copies every record of st (stacks, tasks and their transitions, state versions, image rules, policies, the audit
 * chain, API keys, the instance id) into the EMPTY PostgreSQL database at to_url (a postgresql:// URL or libpq
 * key=value settings): the schema is created there, then all rows are written in one transaction, read from one
 * snapshot of st. A target holding any table is refused (BERTH_EBUSY) and left as it was. Files stay where they are:
 * the copy is used with the same BERTH_HOME (secret key, logs, state version directories). The report names the
 * target (its URL without the password) and each table with its row count (the table names are static). */
#define BERTH_STORE_TABLES_MAX 32
typedef struct berth_store_copy_report {
  char target[1024];
  size_t n;
  struct {
    const char *table;
    int64_t rows;
  } tables[BERTH_STORE_TABLES_MAX];
} berth_store_copy_report;
int berth_store_copy(berth_store *st, const char *to_url, berth_store_copy_report *report, berth_error **err);
/* Current time in unix milliseconds (CLOCK_REALTIME). */
int64_t berth_now_ms(void);

typedef struct berth_kv {
  char *key;
  char *value;
} berth_kv;
typedef struct berth_strv {
  char **v;
  size_t n;
} berth_strv;

void berth_strv_clear(berth_strv *v);              /* frees the strings and the array; leaves {NULL, 0} */
int berth_strv_push(berth_strv *v, const char *s); /* copies s; -1 when out of memory */
void berth_kv_array_free(berth_kv *kv, size_t n);  /* wipes values (sodium_memzero) before freeing */
/* Sets key to value (copies), replacing an existing entry with the same key. -1 when out of memory. */
int berth_kv_set(berth_kv **kv, size_t *n, const char *key, const char *value);
/* Removes key; returns 1 when it was present, 0 when not. */
int berth_kv_unset(berth_kv **kv, size_t *n, const char *key);
const char *berth_kv_get(const berth_kv *kv, size_t n, const char *key);

#define BERTH_DEFAULT_POOL "default"
#define BERTH_DEFAULT_TIMEOUT_MS (70LL * 60 * 1000)
#define BERTH_DEFAULT_IDLE_TIMEOUT_MS (7LL * 60 * 1000)
#define BERTH_DEFAULT_KEEP_VERSIONS 10
#define BERTH_MAX_KEEP_VERSIONS 1000
/* The largest limits a stack takes (the API's fields and the command line's flags alike). */
#define BERTH_MAX_MEMORY_BYTES (INT64_C(1) << 50)
#define BERTH_MAX_NANO_CPUS (INT64_C(1024) * 1000000000)
#define BERTH_MAX_DURATION_MS (INT64_C(1) << 40)

typedef struct berth_stack {
  char *name;        /* [A-Za-z0-9][A-Za-z0-9_.-]{0,62} */
  char *image;       /* required */
  char *project_dir; /* absolute path; may be NULL (empty workspace) */
  char *subdir;      /* relative, no "..", may be NULL */
  berth_strv init, before_init, before_perform, after_perform, after_run;
  berth_kv *env;
  size_t n_env;
  berth_kv *secret_env; /* values in clear IN MEMORY only; encrypted at rest */
  size_t n_secret_env;
  char *network;           /* "none" (default) | "bridge" | "host" (when the admin config allows it) */
  int64_t memory_bytes;    /* 0 = admin default */
  int64_t nano_cpus;       /* 0 = admin default; --cpus 1.5 -> 1500000000 */
  int64_t pids;            /* 0 = admin default */
  int64_t timeout_ms;      /* default 70m */
  int64_t idle_timeout_ms; /* default 7m */
  char *pull_policy;       /* "always" | "if-not-present" (default) | "never" */
  berth_strv persist;      /* relative paths under the working dir */
  berth_strv labels;
  int keep_versions;         /* state versions kept, default 10 */
  berth_strv oidc_audiences; /* each task gets an OIDC token for these audiences (none: no token) */
  char *oidc_aws_role;       /* with a token: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE for the AWS SDKs */
  berth_strv credentials;    /* credential helpers (config.json) run before initialization */
  char *pool;                /* the hosts that may run its tasks (a fleet); NULL = BERTH_DEFAULT_POOL */
  /* secret env whose stored value cannot be decrypted (BERTH_HOME/secret.key replaced or lost): read as "", the
   * stack is shown and listed, its tasks are refused, and it is written again only once each is given anew or
   * removed (berth_stack_edit_json drops the names it sets or unsets) */
  berth_strv unreadable_secrets;
  char *lock_owner; /* NULL when unlocked (the lock CLI is a later issue) */
  char *lock_note;
  int64_t locked_at;
  int64_t created_at, updated_at; /* unix ms; set by the store */
} berth_stack;

/* A new zeroed stack with the defaults above (network none, pull if-not-present, timeouts, keep 10). NULL on OOM. */
berth_stack *berth_stack_new(void);
void berth_stack_free(berth_stack *s); /* accepts NULL; wipes secret values */
void berth_stacks_free(berth_stack **v, size_t n);
/* "stack name `a b` is invalid (...)" one line, BERTH_EINVAL. */
int berth_stack_validate_name(const char *name, berth_error **err);
/* Checks every field (name, image, network, pull policy, subdir/persist paths, env names, limits) without touching
 * the file system. Called by create and update too. */
int berth_stack_validate(const berth_stack *s, berth_error **err);
/* BERTH_EBUSY "stack `x` already exists". Sets created_at/updated_at in the store (not in *s). */
int berth_store_stack_create(berth_store *st, const berth_stack *s, berth_error **err);
/* Whole record replace of every user field, by s->name (BERTH_ENOTFOUND if absent). Lock fields and created_at are
 * NOT changed by update (the lock has its own functions). */
int berth_store_stack_update(berth_store *st, const berth_stack *s, berth_error **err);
int berth_store_stack_get(berth_store *st, const char *name, berth_stack **out, berth_error **err); /* ENOTFOUND */
/* EINVAL, one line naming the first, when a secret env's stored value cannot be decrypted (s->unreadable_secrets):
 * no task runs without it, and the stack is written again only once it is given anew or removed. */
int berth_stack_check_secrets(berth_store *st, const berth_stack *s, berth_error **err);
int berth_store_stack_list(berth_store *st, berth_stack ***out, size_t *n, berth_error **err); /* by name */
/* BERTH_ENOTFOUND; BERTH_EBUSY when the stack has a task that is not terminal. Also deletes its state versions
 * (rows and files). Task records are kept. */
int berth_store_stack_delete(berth_store *st, const char *name, berth_error **err);
/* Lock: BERTH_EBUSY "stack `x` is locked by y" when locked by someone else; re-locking by the owner updates the
 * note. Unlock: BERTH_EDENIED when locked by someone else and !force; unlocking an unlocked stack is a no-op. */
int berth_store_stack_lock(berth_store *st, const char *name, const char *owner, const char *note, berth_error **err);
int berth_store_stack_unlock(berth_store *st, const char *name, const char *actor, bool force, berth_error **err);

/* The JSON form used by `stack show --json` and the HTTP API. Every secret value is "***" (keys are shown).
 * Caller frees with cJSON_Delete. NULL on OOM. */
struct cJSON *berth_stack_to_json(const berth_stack *s);

/* Secret values are NEVER stored in clear: they are encrypted at rest with libsodium crypto_secretbox using a random
 * key created on first use: BERTH_HOME/secret.key (mode 0600) on SQLite, the store's settings on PostgreSQL. */

typedef struct berth_transition {
  char *state;
  int64_t at; /* unix ms */
  char *actor;
  char *note; /* may be NULL */
} berth_transition;

typedef struct berth_task {
  char *id;    /* 26-char lowercase ULID-like, sortable by creation time */
  int64_t seq; /* monotonically increasing submission order (INTEGER PRIMARY KEY) */
  char *stack;
  char *command;
  char *actor;
  char *triggered_by; /* may be NULL */
  char *state;        /* QUEUED PREPARING INITIALIZING PERFORMING FINISHED FAILED CANCELED STOPPED */
  char *reason;       /* NULL or e.g. "timeout", "executor interrupted", "command exited with status 3" */
  int exit_code;      /* -1 until known */
  bool skip_init;
  berth_kv *env; /* task env (plain) */
  size_t n_env;
  berth_kv *secret_env; /* encrypted at rest; wiped by berth_store_task_forget_secrets() */
  size_t n_secret_env;
  char *secret_names; /* the secret env's names, comma-separated, kept after the values are wiped; NULL: none */
  /* the command and plain env as shown: the secret values of the submission (its stack's and its own) masked, as
   * written with the task (berth_task_submit); NULL in tasks submitted before berth kept them */
  char *shown_command;
  berth_kv *shown_env;
  size_t n_shown_env;
  char *container_id; /* NULL until set */
  char *blocked_by;   /* NULL or the id of the task this one waits for */
  int supervisor_pid; /* 0 until set */
  char *host;         /* the fleet host that claimed (executes, executed) it; NULL when not claimed by a host */
  int attempt;        /* the claim's number, its fencing token (0: never claimed) */
  char *retry_of;     /* the task this one retries (berth task retry), or NULL */
  int64_t created_at, started_at, finished_at; /* unix ms; 0 when not yet */
  int64_t state_version;                       /* 1 when QUEUED, +1 on every transition (webhook events carry it) */
  berth_transition *history;                   /* oldest first; filled by _get, not by _list */
  size_t n_history;
} berth_task;

void berth_task_free(berth_task *t); /* accepts NULL; wipes secret values */
/* A task id is BERTH_TASK_ID_LEN lowercase letters and digits; commands also accept a unique prefix of one. */
#define BERTH_TASK_ID_LEN 26
bool berth_task_id_is_whole(const char *id); /* a whole id (not a prefix): exactly the store's form */
void berth_tasks_free(berth_task **v, size_t n);
bool berth_task_state_is_terminal(const char *state);
bool berth_task_state_is_valid(const char *state);

/* Inserts with state QUEUED and a first transition (t->actor, note "submitted"); fills t->id, t->seq,
 * t->created_at, t->state (if NULL), t->exit_code = -1. Required: stack, command, actor. The stack must exist
 * (BERTH_ENOTFOUND "stack `x` does not exist"). */
int berth_store_task_create(berth_store *st, berth_task *t, berth_error **err);
/* By full id or by a unique prefix (>= 4 chars): BERTH_ENOTFOUND, or BERTH_EINVAL when the prefix is ambiguous.
 * Fills history. */
int berth_store_task_get(berth_store *st, const char *id, berth_task **out, berth_error **err);
/* The reads of berth_store_task_get_with_secrets for a whole task id, sent ahead: on PostgreSQL they go with the
 * store's next statement (a server sends them with the caller's key check, one round trip for both; nothing read is
 * shown unless the check passes). NULL when there is nothing to send ahead (a prefix, out of memory, SQLite). */
typedef struct berth_task_ahead berth_task_ahead;
berth_task_ahead *berth_store_task_read_ahead(berth_store *st, const char *id);
void berth_task_ahead_free(berth_task_ahead *a); /* accepts NULL; drops answers not read */
/* berth_store_task_get, and the secret env of the task's stack read with it (in one round trip on PostgreSQL), for
 * showing the task without them: *secrets NULL and *n 0 when the stack is gone; *incomplete when some of them cannot
 * be decrypted (they are left out). The caller frees them with berth_kv_array_free. ahead (may be NULL) is what was
 * sent ahead for id; what it holds is used up. */
int berth_store_task_get_with_secrets(berth_store *st, const char *id, berth_task_ahead *ahead, berth_task **out,
                                      berth_kv **secrets, size_t *n, bool *incomplete, berth_error **err);

typedef struct berth_task_filter {
  const char *stack; /* NULL = all */
  const char *state; /* NULL = all */
  const char *host;  /* the fleet host that claimed it; NULL = all */
  int limit;         /* <= 0 = no limit */
} berth_task_filter;
/* Newest first (seq descending). f may be NULL. history and secret_env are not filled (only _get fills them). */
int berth_store_task_list(berth_store *st, const berth_task_filter *f, berth_task ***out, size_t *n, berth_error **err);
/* Every task that is not terminal, oldest first (seq ascending; FIFO order); stack NULL = all stacks. A QUEUED task's
 * reason (why it waits, on a shared store) is not filled. */
int berth_store_task_list_active(berth_store *st, const char *stack, berth_task ***out, size_t *n, berth_error **err);

/* Durable transition: updates state (+reason when non-NULL, exit_code when >= 0; pass NULL / -1 to keep) and
 * appends to history in ONE transaction. Refuses with BERTH_EBUSY when the task is already terminal or the move is
 * not in the contract's graph:
 *   QUEUED -> PREPARING | CANCELED | FAILED
 *   PREPARING -> INITIALIZING | PERFORMING | STOPPED | FAILED
 *   INITIALIZING -> PERFORMING | STOPPED | FAILED
 *   PERFORMING -> FINISHED | FAILED          (a stop in PERFORMING is refused: "task X is PERFORMING ...")
 * Unknown state: BERTH_EINVAL. Sets started_at on leaving QUEUED and finished_at on reaching a terminal state. */
int berth_store_task_transition(berth_store *st, const char *id, const char *state, const char *actor, const char *note,
                                const char *reason, int exit_code, berth_error **err);
/* The same at a given time (unix ms; 0: now), for a move written later than it happened (an end written once the
 * store answered again). The time is kept between the task's start (or its submission) and now. */
int berth_store_task_transition_at(berth_store *st, const char *id, const char *state, const char *actor,
                                   const char *note, const char *reason, int exit_code, int64_t at, berth_error **err);
int berth_store_task_set_container(berth_store *st, const char *id, const char *container_id, berth_error **err);
int berth_store_task_set_supervisor(berth_store *st, const char *id, int pid, berth_error **err);
int berth_store_task_set_blocked_by(berth_store *st, const char *id, const char *blocker, berth_error **err);
int berth_store_task_forget_secrets(berth_store *st, const char *id, berth_error **err);
/* How many secrets were masked in the task's output (`***` written), summed by the metrics
 * (berth_redactions_total); written once, with the task's end. */
int berth_store_task_set_redactions(berth_store *st, const char *id, int n, berth_error **err);

/* Stack state versions (persisted paths). On SQLite files live under BERTH_HOME/state/<stack>/<version>/...; on
 * PostgreSQL each version is one tar in the database (at most 128 MiB), and latest unpacks the newest into that
 * same local path (afresh on each call), so any host runs with the stack's state.
 * begin: makes a temp dir BERTH_HOME/state/<stack>/.tmp-XXXXXX and returns its path (caller frees);
 * the caller writes files into it;
 * commit: fsync of every file and dir, atomic rename to the next version number, recorded in SQLite with the task id
 * and file count/bytes, then prune to the newest `keep` versions (keep <= 0: the stack's keep_versions). tmpdir is
 * consumed in every outcome (renamed, or removed on failure).
 * abort: removes tmpdir recursively (accepts NULL).
 * A version is never half-written: readers only see versions recorded in the store, whose contents are complete. */
int berth_state_begin(berth_store *st, const char *stack, char **tmpdir_out, berth_error **err);
int berth_state_commit(berth_store *st, const char *stack, const char *task_id, const char *tmpdir, int keep,
                       int64_t *version_out, berth_error **err);
void berth_state_abort(const char *tmpdir);
/* Path of the newest version dir (caller frees), or *dir_out = NULL and 0 when the stack has none. */
int berth_state_latest(berth_store *st, const char *stack, char **dir_out, berth_error **err);

typedef struct berth_state_version {
  int64_t version;
  char *task_id; /* may be NULL */
  int64_t created_at;
  int64_t bytes;
  size_t files;
} berth_state_version;
/* Newest first. */
int berth_state_list(berth_store *st, const char *stack, berth_state_version **out, size_t *n, berth_error **err);
void berth_state_versions_free(berth_state_version *v, size_t n);
/* BERTH_HOME/state/<stack>/<version> (caller frees). */
char *berth_state_version_path(berth_store *st, const char *stack, int64_t version);

#endif
