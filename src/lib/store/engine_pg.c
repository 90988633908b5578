/* The shared engine: PostgreSQL through libpq, chosen with BERTH_STORE=postgresql://... (or a key=value conninfo;
 * PGPASSFILE, sslmode and the other libpq settings work as libpq documents them).
 *
 * Write transactions take one transaction-scoped advisory lock, so they serialize across connections and hosts the
 * way BEGIN IMMEDIATE does on SQLite: a read-modify-write (the audit chain's head, a transition's check) never races
 * another writer. `?` placeholders are rewritten to `$n`; values go as text (blobs as binary) and the server infers
 * their types from where they are used. The password, when there is one, never appears in a message: the store is
 * named by a URL rebuilt without it, and libpq's messages are scrubbed of it. The only file that includes
 * <libpq-fe.h>. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "db_engine.h"

#define PG_MAX_PARAMS 64
#define PG_MIN_SERVER 120000 /* identity columns, EXECUTE FUNCTION triggers */
/* berth's write transactions: one advisory lock (key: "berth" in ASCII), waited for as long as SQLite's busy
 * timeout; a timeout is 55P03, busy, which db.c retries at begin */
#define WRITE_LOCK_TIMEOUT_SQL "SET LOCAL lock_timeout = '10s'"
#define WRITE_LOCK_KEY "431316168808"
#define WRITE_LOCK_SQL "SELECT pg_advisory_xact_lock(" WRITE_LOCK_KEY ")"
#define READ_BEGIN_SQL "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

/* Statements prepared on the server once per connection (named b0, b1, ...) and executed by name after: parsing
 * and planning a statement cost the server more than running most of berth's, and a connection runs the same few
 * dozen statements all its life. Statements beyond the cache's size go unnamed, as before. A re-made connection
 * starts with none. */
#define PG_STMT_CACHE 128

typedef struct pg_prepared {
  char *sql; /* as the caller gave it (with `?`) */
  uint64_t hash;
} pg_prepared;

struct pg_stmt;

/* A statement waiting to be sent (db_run_later, or the begin of a transaction): it goes in one pipeline with the
 * next statement that needs an answer, so a write transaction costs one round trip per read plus its commit. */
typedef struct pg_pending {
  char *sql;   /* $n form, or a command without parameters */
  char *given; /* the cache key (as the caller gave it); NULL for a command */
  uint64_t hash;
  int nparams;
  char **values;
  int *lengths, *formats;
  struct pg_stmt *keep; /* db_prefetch: the statement that gets the answer */
} pg_pending;

#define PG_PENDING_MAX 32 /* more than this many waiting are sent at once */

typedef struct pg_conn {
  db_conn base;
  PGconn *pg;
  char *password; /* only to scrub it from messages; wiped on close */
  pg_prepared prepared[PG_STMT_CACHE];
  int nprepared;
  pg_pending pending[PG_PENDING_MAX];
  int npending;
  bool begin_pending; /* the transaction's BEGIN is among them: nothing of it reached the server yet */
} pg_conn;

typedef struct pg_stmt {
  db_stmt base;
  char *sql;     /* with $n placeholders */
  char *given;   /* as the caller gave it */
  uint64_t hash; /* of given */
  int nparams;
  char *values[PG_MAX_PARAMS];
  int lengths[PG_MAX_PARAMS];
  int formats[PG_MAX_PARAMS];
  PGresult *res;
  int row; /* the current row; -1 before the first */
  int64_t changes;
  unsigned char *blob; /* the last blob column read (PQunescapeBytea) */
} pg_stmt;

static PGconn *
handle(db_conn *c)
{
  return ((pg_conn *) c)->pg;
}

static void
ignore_notice(void *arg, const char *message)
{
  (void) arg; /* "relation already exists, skipping" and the like: the library never prints */
  (void) message;
}

/* A copy of msg on one line, runs of blanks made one, without trailing space, with every occurrence of the password
 * replaced by ***. */
static char *
scrub(const char *msg, const char *password)
{
  size_t n = strlen(msg), pl = password ? strlen(password) : 0;
  char *out = malloc(n * 3 + 1), *o = out;
  if (out == NULL)
    return NULL;
  for (const char *p = msg; *p;) {
    if (pl > 0 && strncmp(p, password, pl) == 0) {
      memcpy(o, "***", 3);
      o += 3;
      p += pl;
      continue;
    }
    char ch = (*p == '\n' || *p == '\r' || *p == '\t') ? ' ' : *p;
    if (ch != ' ' || (o > out && o[-1] != ' ')) /* libpq's lines and indents become single spaces */
      *o++ = ch;
    p++;
  }
  while (o > out && o[-1] == ' ')
    o--;
  *o = '\0';
  return out;
}

static db_fail_kind
kind_of(const char *sqlstate, PGconn *pg)
{
  if (sqlstate == NULL)
    return PQstatus(pg) == CONNECTION_BAD ? DB_FAIL_LOST : DB_FAIL_OTHER;
  if (strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0 || strcmp(sqlstate, "55P03") == 0)
    return DB_FAIL_BUSY; /* serialization failure, deadlock, lock not available */
  if (strncmp(sqlstate, "08", 2) == 0 || strcmp(sqlstate, "57P01") == 0 || strcmp(sqlstate, "57P02") == 0
      || strcmp(sqlstate, "57P03") == 0)
    return DB_FAIL_LOST;              /* connection exceptions, server shutting down or starting */
  if (strcmp(sqlstate, "53100") == 0) /* disk_full */
    return DB_FAIL_FULL;
  if (strcmp(sqlstate, "25006") == 0)
    return DB_FAIL_READONLY;
  if (strcmp(sqlstate, "XX001") == 0 || strcmp(sqlstate, "XX002") == 0)
    return DB_FAIL_CORRUPT;
  return DB_FAIL_OTHER;
}

/* One line from a failed result (or the connection's last error when res is NULL). */
static int
fail(db_conn *c, const PGresult *res, berth_error **err)
{
  pg_conn *pc = (pg_conn *) c;
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  char *msg = scrub(primary ? primary : PQerrorMessage(pc->pg), pc->password);
  int rc = db_fail(c, kind_of(state, pc->pg), msg ? msg : "out of memory", err);
  free(msg);
  return rc;
}

static void
forget_prepared(pg_conn *pc)
{
  for (int i = 0; i < pc->nprepared; i++)
    free(pc->prepared[i].sql);
  pc->nprepared = 0;
}

static void
free_pending(pg_pending *p)
{
  for (int i = 0; i < p->nparams; i++)
    free(p->values[i]);
  free(p->values);
  free(p->lengths);
  free(p->formats);
  free(p->sql);
  free(p->given);
  memset(p, 0, sizeof *p);
}

static void
drop_pending(pg_conn *pc)
{
  for (int i = 0; i < pc->npending; i++)
    free_pending(&pc->pending[i]);
  pc->npending = 0;
  pc->begin_pending = false;
}

/* Re-makes the connection: a new server session, with no prepared statements. */
static void
remake(db_conn *c)
{
  forget_prepared((pg_conn *) c);
  PQreset(handle(c));
}

/* Before sending anything outside a transaction: a connection that was lost is re-made (nothing can be half done). */
static void
reconnect_if_lost(db_conn *c)
{
  if (PQstatus(handle(c)) == CONNECTION_BAD && c->depth == 0)
    remake(c);
}

/* After a failure outside a transaction: was it the connection (a restarted server)? Then it is re-made, and the
 * caller sends its statement once more (nothing of it can have been done: a statement outside a transaction that
 * never reached a live server). */
static bool
remade_after_loss(db_conn *c)
{
  if (c->depth != 0 || PQstatus(handle(c)) != CONNECTION_BAD)
    return false;
  remake(c);
  return PQstatus(handle(c)) == CONNECTION_OK;
}

static void
pg_close(db_conn *c)
{
  pg_conn *pc = (pg_conn *) c;
  forget_prepared(pc);
  drop_pending(pc);
  PQfinish(pc->pg);
  if (pc->password) {
    sodium_memzero(pc->password, strlen(pc->password));
    free(pc->password);
  }
  free(c->label);
  free(pc);
}

static bool
pg_in_transaction(db_conn *c)
{
  if (((pg_conn *) c)->begin_pending)
    return true;
  PGTransactionStatusType t = PQtransactionStatus(handle(c));
  return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

static PGresult *pipeline(pg_conn *pc, pg_stmt *cur, const char *cmd);

static int
pg_exec(db_conn *c, const char *sql, berth_error **err)
{
  pg_conn *pc = (pg_conn *) c;
  if (pc->npending > 0) {
    if (strncmp(sql, "ROLLBACK", 8) == 0) {
      /* what waits is dropped, unsent: it was all queued inside what is undone (opening a savepoint sends what
       * waits first); nothing to undo when the BEGIN itself was still waiting */
      bool nothing_sent = pc->begin_pending;
      drop_pending(pc);
      if (nothing_sent)
        return 0;
    } else {
      /* one command goes in the pipeline (a COMMIT: one round trip for the writes and the commit); several go
       * after it */
      bool one = strchr(sql, ';') == NULL;
      PGresult *res = pipeline(pc, NULL, one ? sql : NULL);
      int rc
          = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : fail(c, res, err);
      PQclear(res);
      if (rc < 0 || one)
        return rc;
    }
  }
  reconnect_if_lost(c);
  PGresult *res = PQexec(handle(c), sql);
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && remade_after_loss(c)) {
    PQclear(res);
    res = PQexec(handle(c), sql);
    st = PQresultStatus(res);
  }
  int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : fail(c, res, err);
  PQclear(res);
  /* a failed outermost BEGIN (say, the write lock timed out) must not leave a transaction behind */
  if (rc < 0 && c->depth == 0 && pg_in_transaction(c))
    PQclear(PQexec(handle(c), "ROLLBACK"));
  return rc;
}

/* `?` -> `$n`, outside string literals, quoted identifiers and comments. */
static char *
rewrite_placeholders(const char *sql, int *nparams)
{
  size_t n = strlen(sql);
  char *out = malloc(n * 4 + 1), *o = out;
  int count = 0;
  char quote = 0;
  if (out == NULL)
    return NULL;
  for (const char *p = sql; *p; p++) {
    if (quote) {
      if (*p == quote)
        quote = 0; /* a doubled quote re-opens at once: the next character starts it again */
    } else if (*p == '\'' || *p == '"') {
      quote = *p;
    } else if (p[0] == '-' && p[1] == '-') {
      const char *e = strchr(p, '\n');
      size_t len = e ? (size_t) (e - p) : strlen(p);
      memcpy(o, p, len);
      o += len;
      p += len - 1;
      continue;
    } else if (*p == '?') {
      o += sprintf(o, "$%d", ++count);
      continue;
    }
    *o++ = *p;
  }
  *o = '\0';
  *nparams = count;
  return out;
}

static void
clear_result(pg_stmt *s)
{
  PQclear(s->res);
  s->res = NULL;
  s->row = -1;
  if (s->blob)
    PQfreemem(s->blob);
  s->blob = NULL;
}

static int
pg_prepare(db_conn *c, const char *sql, db_stmt **out, berth_error **err)
{
  pg_stmt *s = calloc(1, sizeof *s);
  if (s == NULL || (s->sql = rewrite_placeholders(sql, &s->nparams)) == NULL) {
    free(s);
    return db_fail(c, DB_FAIL_NOMEM, NULL, err);
  }
  if (s->nparams > PG_MAX_PARAMS) {
    free(s->sql);
    free(s);
    return db_fail(c, DB_FAIL_OTHER, "too many parameters in one statement", err);
  }
  s->row = -1;
  if ((s->given = strdup(sql)) == NULL) {
    free(s->sql);
    free(s);
    return db_fail(c, DB_FAIL_NOMEM, NULL, err);
  }
  uint64_t h = 14695981039346656037u; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *) sql; *p; p++)
    h = (h ^ *p) * 1099511628211u;
  s->hash = h;
  *out = &s->base;
  return 0;
}

/* s no longer wants the answer of its prefetch (finalized or reset first): a read not sent yet is not sent. */
static void
unkeep(pg_stmt *s)
{
  pg_conn *pc = (pg_conn *) s->base.conn;
  for (int i = 0; i < pc->npending; i++)
    if (pc->pending[i].keep == s) {
      free_pending(&pc->pending[i]);
      memmove(&pc->pending[i], &pc->pending[i + 1], (size_t) (pc->npending - i - 1) * sizeof pc->pending[0]);
      pc->npending--;
      memset(&pc->pending[pc->npending], 0, sizeof pc->pending[0]);
      i--;
    }
}

static bool
kept(pg_stmt *s)
{
  pg_conn *pc = (pg_conn *) s->base.conn;
  for (int i = 0; i < pc->npending; i++)
    if (pc->pending[i].keep == s)
      return true;
  return false;
}

static void
pg_finalize(db_stmt *base)
{
  pg_stmt *s = (pg_stmt *) base;
  unkeep(s);
  clear_result(s);
  for (int i = 0; i < PG_MAX_PARAMS; i++)
    free(s->values[i]);
  free(s->sql);
  free(s->given);
  free(s);
}

static void
pg_reset(db_stmt *base)
{
  unkeep((pg_stmt *) base);
  clear_result((pg_stmt *) base);
}

/* The answer to a prefetched statement, now that it came. */
static void
deliver(pg_stmt *s, PGresult *r)
{
  clear_result(s);
  s->res = r;
  const char *tuples = PQcmdTuples(r);
  s->changes = tuples && *tuples ? strtoll(tuples, NULL, 10) : 0;
}

static int
pg_bind(db_stmt *base, int idx, db_bind_kind kind, int64_t i, const void *p, size_t n)
{
  pg_stmt *s = (pg_stmt *) base;
  if (idx < 1 || idx > PG_MAX_PARAMS)
    return -1;
  int k = idx - 1;
  free(s->values[k]);
  s->values[k] = NULL;
  s->lengths[k] = 0;
  s->formats[k] = 0;
  if (kind == DB_BIND_NULL)
    return 0;
  if (kind == DB_BIND_INT64) {
    char num[24];
    snprintf(num, sizeof num, "%lld", (long long) i);
    return (s->values[k] = strdup(num)) ? 0 : -1;
  }
  if (n > (size_t) 0x7fffffff || (s->values[k] = malloc(n + 1)) == NULL)
    return -1;
  memcpy(s->values[k], p ? p : "", n);
  s->values[k][n] = '\0';
  s->lengths[k] = (int) n;
  s->formats[k] = kind == DB_BIND_BLOB; /* binary, so bytes pass as they are */
  return 0;
}

/* The server-side statement for `given`, made when there is room: 1 and its name in name[16] when it is prepared, 0
 * when it goes unnamed, -1 with the failed prepare's result in *failed (a failed parse has aborted the transaction it
 * is in). */
static int
prepared_name(pg_conn *pc, const char *given, uint64_t hash, const char *sql, int nparams, char name[16],
              PGresult **failed)
{
  int k = 0;
  while (k < pc->nprepared && (pc->prepared[k].hash != hash || strcmp(pc->prepared[k].sql, given) != 0))
    k++;
  snprintf(name, 16, "b%d", k);
  if (k < pc->nprepared)
    return 1;
  char *copy = k < PG_STMT_CACHE ? strdup(given) : NULL;
  if (copy == NULL)
    return 0;
  PGresult *prep = PQprepare(pc->pg, name, sql, nparams, NULL);
  if (PQresultStatus(prep) != PGRES_COMMAND_OK) {
    free(copy);
    *failed = prep;
    return -1;
  }
  PQclear(prep);
  pc->prepared[k] = (pg_prepared){ copy, hash };
  pc->nprepared++;
  return 1;
}

/* Runs s on the server: by name when it is prepared on this connection (preparing it first when there is room),
 * else unnamed. */
static PGresult *
run(pg_stmt *s)
{
  pg_conn *pc = (pg_conn *) s->base.conn;
  char name[16];
  PGresult *failed = NULL;
  int named = prepared_name(pc, s->given, s->hash, s->sql, s->nparams, name, &failed);
  if (named < 0)
    return failed;
  if (named == 0)
    return PQexecParams(pc->pg, s->sql, s->nparams, NULL, (const char *const *) s->values, s->lengths, s->formats,
                        s->base.binary);
  return PQexecPrepared(pc->pg, name, s->nparams, (const char *const *) s->values, s->lengths, s->formats,
                        s->base.binary);
}

static PGresult *
make_result(pg_conn *pc, ExecStatusType st)
{
  return PQmakeEmptyPGresult(pc->pg, st);
}

/* One attempt of pipeline(): NULL when the connection broke before every answer was read. */
static PGresult *
pipeline_once(pg_conn *pc, pg_stmt *cur, const char *cmd)
{
  PGconn *pg = pc->pg;
  int n = pc->npending;
  char names[PG_PENDING_MAX + 1][16];
  int named[PG_PENDING_MAX + 1];
  PGresult *failed = NULL;
  /* prepared first, one round trip each the first time a connection sees a statement */
  for (int i = 0; i <= n; i++) {
    pg_pending *p = i < n ? &pc->pending[i] : NULL;
    named[i] = 0;
    if (p && p->given)
      named[i] = prepared_name(pc, p->given, p->hash, p->sql, p->nparams, names[i], &failed);
    else if (p == NULL && cur)
      named[i] = prepared_name(pc, cur->given, cur->hash, cur->sql, cur->nparams, names[i], &failed);
    if (named[i] < 0 && PQstatus(pg) == CONNECTION_BAD) {
      PQclear(failed); /* the connection was lost (a restarted server), not the statement refused */
      return NULL;
    }
    if (named[i] < 0)
      return failed;
  }
  if (PQenterPipelineMode(pg) == 0)
    return NULL;
  bool sent = true;
  for (int i = 0; i < n && sent; i++) {
    pg_pending *p = &pc->pending[i];
    sent = named[i] ? PQsendQueryPrepared(pg, names[i], p->nparams, (const char *const *) p->values, p->lengths,
                                          p->formats, 0)
                    : PQsendQueryParams(pg, p->sql, p->nparams, NULL, (const char *const *) p->values, p->lengths,
                                        p->formats, 0);
  }
  if (sent && cur)
    sent = named[n] ? PQsendQueryPrepared(pg, names[n], cur->nparams, (const char *const *) cur->values, cur->lengths,
                                          cur->formats, cur->base.binary)
                    : PQsendQueryParams(pg, cur->sql, cur->nparams, NULL, (const char *const *) cur->values,
                                        cur->lengths, cur->formats, cur->base.binary);
  else if (sent && cmd)
    sent = PQsendQueryParams(pg, cmd, 0, NULL, NULL, NULL, NULL, 0);
  if (sent)
    sent = PQpipelineSync(pg);
  int answers = n + (cur || cmd ? 1 : 0);
  PGresult *first_failed = NULL, *answer = NULL;
  bool broken = !sent;
  for (int i = 0; i < answers && !broken; i++) {
    PGresult *r = PQgetResult(pg);
    if (r == NULL) {
      broken = true;
      break;
    }
    for (PGresult *more; (more = PQgetResult(pg)) != NULL;)
      PQclear(more);
    ExecStatusType st = PQresultStatus(r);
    if (i < n && st == PGRES_FATAL_ERROR && first_failed == NULL)
      first_failed = r;
    else if (i == n)
      answer = r;
    else if (pc->pending[i].keep && (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK))
      deliver(pc->pending[i].keep, r);
    else
      PQclear(r);
    if (PQstatus(pg) == CONNECTION_BAD)
      broken = true;
  }
  if (!broken) {
    PGresult *r = PQgetResult(pg);
    broken = PQresultStatus(r) != PGRES_PIPELINE_SYNC;
    PQclear(r);
  }
  if (!broken && PQexitPipelineMode(pg) == 0) {
    for (PGresult *more; (more = PQgetResult(pg)) != NULL;)
      PQclear(more);
    broken = PQexitPipelineMode(pg) == 0;
  }
  if (broken) {
    PQclear(first_failed);
    PQclear(answer);
    if (PQstatus(pg) != CONNECTION_BAD) /* out of step with the server: only a new session is sure */
      remake(&pc->base);
    return NULL;
  }
  if (first_failed) {
    PQclear(answer);
    return first_failed;
  }
  return answer ? answer : make_result(pc, PGRES_COMMAND_OK);
}

/* Sends the statements waiting on the connection, then cur (a statement) or cmd (a command without parameters) or
 * neither, in one pipeline, and reads every answer. Returns cur's or cmd's result (PGRES_COMMAND_OK with neither), or
 * the first waiting statement's failure instead. Nothing waits after it. A connection lost or out of step while the
 * whole transaction is in this pipeline (its BEGIN was waiting too, and no COMMIT was sent, so the server undoes
 * whatever of it arrived) is re-made and the pipeline sent again: say, a kept connection whose server restarted
 * since, found dead by the prepare of the transaction's first statement or by the pipeline itself. */
static PGresult *
pipeline(pg_conn *pc, pg_stmt *cur, const char *cmd)
{
  bool again = pc->begin_pending && !(cmd && strcmp(cmd, "COMMIT") == 0);
  PGresult *r = pipeline_once(pc, cur, cmd);
  if (r == NULL && again) {
    if (PQstatus(pc->pg) != CONNECTION_OK)
      remake(&pc->base);
    if (PQstatus(pc->pg) == CONNECTION_OK)
      r = pipeline_once(pc, cur, cmd);
  }
  if (r == NULL)
    r = make_result(pc, PGRES_FATAL_ERROR);
  drop_pending(pc);
  return r;
}

static char *
memdup0(const char *p, size_t n)
{
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, p, n);
    d[n] = '\0';
  }
  return d;
}

static int
queue(pg_conn *pc, const char *sql, const pg_stmt *s, berth_error **err)
{
  if (pc->npending == PG_PENDING_MAX) {
    PGresult *r = pipeline(pc, NULL, NULL);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : fail(&pc->base, r, err);
    PQclear(r);
    if (rc < 0)
      return rc;
  }
  pg_pending *p = &pc->pending[pc->npending];
  int n = s ? s->nparams : 0;
  bool ok = (p->sql = strdup(sql)) != NULL;
  if (ok && s) {
    p->hash = s->hash;
    p->nparams = n;
    ok = (p->given = strdup(s->given)) != NULL && (p->values = calloc((size_t) n + 1, sizeof *p->values)) != NULL
         && (p->lengths = calloc((size_t) n + 1, sizeof *p->lengths)) != NULL
         && (p->formats = calloc((size_t) n + 1, sizeof *p->formats)) != NULL;
    for (int i = 0; ok && i < n; i++) {
      p->lengths[i] = s->lengths[i];
      p->formats[i] = s->formats[i];
      if (s->values[i])
        ok = (p->values[i] = memdup0(s->values[i], s->formats[i] ? (size_t) s->lengths[i] : strlen(s->values[i])))
             != NULL;
    }
  }
  if (!ok) {
    free_pending(p);
    return db_fail(&pc->base, DB_FAIL_NOMEM, NULL, err);
  }
  pc->npending++;
  return 0;
}

static int
pg_run_later(db_stmt *base, berth_error **err)
{
  pg_stmt *s = (pg_stmt *) base;
  return queue((pg_conn *) base->conn, s->sql, s, err);
}

static int
pg_prefetch(db_stmt *base, berth_error **err)
{
  pg_stmt *s = (pg_stmt *) base;
  pg_conn *pc = (pg_conn *) base->conn;
  unkeep(s);
  clear_result(s);
  int rc = queue(pc, s->sql, s, err);
  if (rc < 0)
    return rc;
  pc->pending[pc->npending - 1].keep = s;
  return 0;
}

/* The outermost transaction's BEGIN (and the write lock) goes with its first statement. */
static int
pg_begin(db_conn *c, bool read, berth_error **err)
{
  pg_conn *pc = (pg_conn *) c;
  reconnect_if_lost(c);
  if (PQstatus(pc->pg) != CONNECTION_OK)
    return fail(c, NULL, err);
  drop_pending(pc);
  int rc;
  if (read)
    rc = queue(pc, READ_BEGIN_SQL, NULL, err);
  else if ((rc = queue(pc, "BEGIN", NULL, err)) == 0 && (rc = queue(pc, WRITE_LOCK_TIMEOUT_SQL, NULL, err)) == 0)
    rc = queue(pc, WRITE_LOCK_SQL, NULL, err);
  if (rc < 0) {
    drop_pending(pc);
    return rc;
  }
  pc->begin_pending = true;
  return 0;
}

static int
pg_step(db_stmt *base, berth_error **err)
{
  pg_stmt *s = (pg_stmt *) base;
  pg_conn *pc = (pg_conn *) base->conn;
  if (s->res == NULL && kept(s)) { /* prefetched, not sent yet: send what waits, this among it */
    bool reads_only = true;
    for (int i = 0; i < pc->npending; i++)
      reads_only = reads_only && pc->pending[i].keep != NULL;
    PGresult *r = pipeline(pc, NULL, NULL);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      /* outside a transaction, reads sent ahead on a connection found lost: this one goes again below, alone, on the
       * new connection (the others, no longer waiting, are sent again when stepped) */
      if (!(reads_only && remade_after_loss(base->conn)))
        rc = fail(base->conn, r, err);
    } else if (s->res == NULL) {
      rc = db_fail(base->conn, DB_FAIL_OTHER, "a read sent ahead got no answer", err);
    }
    PQclear(r);
    if (rc < 0)
      return rc;
  }
  if (s->res == NULL) {
    if (pc->npending == 0)
      reconnect_if_lost(base->conn);
    s->res = pc->npending ? pipeline(pc, s, NULL) : run(s);
    ExecStatusType st = PQresultStatus(s->res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && remade_after_loss(base->conn)) {
      PQclear(s->res);
      s->res = run(s);
      st = PQresultStatus(s->res);
    }
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      int rc = fail(base->conn, s->res, err);
      clear_result(s);
      return rc;
    }
    const char *tuples = PQcmdTuples(s->res);
    s->changes = tuples && *tuples ? strtoll(tuples, NULL, 10) : 0;
    s->row = -1;
  }
  if (s->blob) {
    PQfreemem(s->blob);
    s->blob = NULL;
  }
  if (PQresultStatus(s->res) == PGRES_TUPLES_OK && s->row + 1 < PQntuples(s->res)) {
    s->row++;
    return DB_ROW;
  }
  return DB_DONE;
}

static int64_t
pg_changes(const db_stmt *s)
{
  return ((const pg_stmt *) s)->changes;
}

static bool
pg_is_null(db_stmt *base, int col)
{
  pg_stmt *s = (pg_stmt *) base;
  return s->res == NULL || s->row < 0 || col >= PQnfields(s->res) || PQgetisnull(s->res, s->row, col);
}

static const char *
pg_col_text(db_stmt *base, int col)
{
  pg_stmt *s = (pg_stmt *) base;
  return pg_is_null(base, col) ? NULL : PQgetvalue(s->res, s->row, col);
}

/* A binary-format integer or boolean (network byte order). */
static int64_t
binary_int(const unsigned char *p, int len)
{
  if (len == 1)
    return p[0] != 0;
  uint64_t v = (len == 2 || len == 4 || len == 8) && (p[0] & 0x80) ? UINT64_MAX : 0; /* sign-extended */
  for (int i = 0; i < len && i < 8; i++)
    v = (v << 8) | p[i];
  return (int64_t) v;
}

static int64_t
pg_col_int64(db_stmt *base, int col)
{
  pg_stmt *s = (pg_stmt *) base;
  const char *t = pg_col_text(base, col);
  if (t == NULL)
    return 0;
  if (PQfformat(s->res, col) == 1)
    return binary_int((const unsigned char *) t, PQgetlength(s->res, s->row, col));
  if (strcmp(t, "t") == 0 || strcmp(t, "f") == 0) /* a boolean expression */
    return *t == 't';
  return strtoll(t, NULL, 10);
}

static const void *
pg_col_blob(db_stmt *base, int col, size_t *len)
{
  pg_stmt *s = (pg_stmt *) base;
  const char *t = pg_col_text(base, col);
  *len = 0;
  if (t == NULL)
    return NULL;
  if (PQfformat(s->res, col) == 1) { /* the bytes themselves */
    *len = (size_t) PQgetlength(s->res, s->row, col);
    return t;
  }
  if (s->blob)
    PQfreemem(s->blob);
  s->blob = PQunescapeBytea((const unsigned char *) t, len);
  return s->blob;
}

static int
pg_column_count(db_stmt *base)
{
  pg_stmt *s = (pg_stmt *) base;
  return s->res ? PQnfields(s->res) : 0;
}

static const char *
pg_column_name(db_stmt *base, int col)
{
  pg_stmt *s = (pg_stmt *) base;
  return s->res ? PQfname(s->res, col) : NULL;
}

/* By the column's type OID (pg_type.h): the integers and booleans, bytea, and everything else as text. */
static db_type
pg_column_type(db_stmt *base, int col)
{
  pg_stmt *s = (pg_stmt *) base;
  if (pg_is_null(base, col))
    return DB_TYPE_NULL;
  switch (PQftype(s->res, col)) {
  case 16: /* bool */
  case 20: /* int8 */
  case 21: /* int2 */
  case 23: /* int4 */
    return DB_TYPE_INT;
  case 17: /* bytea */
    return DB_TYPE_BLOB;
  default:
    return DB_TYPE_TEXT;
  }
}

static int
pg_sync_identity(db_conn *c, const char *table, const char *column, berth_error **err)
{
  char sql[256];
  /* table and column come from berth's own list of tables, never from input */
  snprintf(sql, sizeof sql,
           "SELECT setval(pg_get_serial_sequence('%s', '%s'), COALESCE(MAX(%s), 0) + 1, false) FROM %s", table, column,
           column, table);
  return pg_exec(c, sql, err);
}

static int
query_int(db_conn *c, const char *sql, int64_t *out, berth_error **err)
{
  if (((pg_conn *) c)->npending > 0 && pg_exec(c, "SELECT 1", err) < 0)
    return BERTH_EINTERNAL;
  PGresult *res = PQexec(handle(c), sql);
  int rc = PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : fail(c, res, err);
  *out = rc == 0 && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
  PQclear(res);
  return rc;
}

static int64_t
pg_size_bytes(db_conn *c)
{
  int64_t n = -1;
  return query_int(c, "SELECT pg_database_size(current_database())", &n, NULL) == 0 ? n : -1;
}

static int
pg_probe(db_conn *c, int64_t *tables, bool *has_schema_version, int *legacy_version, berth_error **err)
{
  int64_t sv = 0;
  if (query_int(c,
                /* pg_catalog, not information_schema: this runs on every connection, and the view costs ms */
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')",
                tables, err)
          < 0
      || query_int(c,
                   "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                   " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname = 'schema_version'",
                   &sv, err)
             < 0)
    return BERTH_EINTERNAL;
  *has_schema_version = sv > 0;
  *legacy_version = 0; /* no berth before schema_version ever ran on PostgreSQL */
  return 0;
}

static int
pg_listen(db_conn *c, const char *channel, berth_error **err)
{
  char *id = PQescapeIdentifier(handle(c), channel, strlen(channel));
  if (id == NULL)
    return fail(c, NULL, err);
  char sql[128];
  snprintf(sql, sizeof sql, "LISTEN %s", id);
  PQfreemem(id);
  return pg_exec(c, sql, err);
}

static int64_t
mono_ms(void)
{
  return db_mono_us() / 1000;
}

/* 1 when a queued notification matches payload (the others are dropped), else 0. */
static int
take_notifies(PGconn *pg, const char *payload)
{
  int found = 0;
  PGnotify *n;
  while ((n = PQnotifies(pg)) != NULL) {
    if (payload == NULL || strcmp(n->extra, payload) == 0)
      found = 1;
    PQfreemem(n);
  }
  return found;
}

static int
pg_wait_notify(db_conn *c, const char *payload, int timeout_ms, const int *fds, size_t n_fds)
{
  PGconn *pg = handle(c);
  int64_t deadline = mono_ms() + timeout_ms;
  struct pollfd p[17];
  if (n_fds > 16)
    n_fds = 16; /* the others are seen on the next round */
  for (;;) {
    if (PQconsumeInput(pg) == 0)
      return -1;
    if (take_notifies(pg, payload))
      return 1;
    int64_t left = deadline - mono_ms();
    if (left <= 0)
      return 0;
    p[0] = (struct pollfd){ .fd = PQsocket(pg), .events = POLLIN };
    for (size_t i = 0; i < n_fds; i++)
      p[i + 1] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
    int n = poll(p, n_fds + 1, (int) left);
    if (n < 0 && errno != EINTR)
      return -1;
    for (size_t i = 0; n > 0 && i < n_fds; i++)
      if (p[i + 1].revents)
        return 2;
  }
}

static const struct db_ops pg_ops = {
  .name = "postgresql",
  .begin_sql = "BEGIN; " WRITE_LOCK_TIMEOUT_SQL "; " WRITE_LOCK_SQL, /* what pg_begin sends, as one string */
  .begin_read_sql = READ_BEGIN_SQL,
  .try_write_lock_sql = "pg_try_advisory_xact_lock(" WRITE_LOCK_KEY ")",
  .begin = pg_begin,
  .run_later = pg_run_later,
  .prefetch = pg_prefetch,
  .close = pg_close,
  .exec = pg_exec,
  .prepare = pg_prepare,
  .finalize = pg_finalize,
  .reset = pg_reset,
  .bind = pg_bind,
  .step = pg_step,
  .changes = pg_changes,
  .column_is_null = pg_is_null,
  .column_int64 = pg_col_int64,
  .column_text = pg_col_text,
  .column_blob = pg_col_blob,
  .column_count = pg_column_count,
  .column_name = pg_column_name,
  .column_type = pg_column_type,
  .sync_identity = pg_sync_identity,
  .in_transaction = pg_in_transaction,
  .size_bytes = pg_size_bytes,
  .probe = pg_probe,
  .mark_version = NULL,
  .listen = pg_listen,
  .wait_notify = pg_wait_notify,
};

bool
db_pg_answers(const char *conninfo)
{
  return PQping(conninfo) == PQPING_OK;
}

bool
db_pg_conninfo_looks_valid(const char *conninfo)
{
  if (conninfo == NULL
      || (strncmp(conninfo, "postgresql://", 13) != 0 && strncmp(conninfo, "postgres://", 11) != 0
          && strchr(conninfo, '=') == NULL))
    return false;
  char *perr = NULL; /* libpq's own message may quote the string, password included: never shown */
  PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
  PQfreemem(perr);
  PQconninfoFree(opts);
  return opts != NULL;
}

/* postgresql://user@host:port/dbname, or postgresql://user@/dbname?host=/dir&port=N for a socket; no password. */
static char *
make_label(const PQconninfoOption *opts, char **password)
{
  const char *user = NULL, *host = NULL, *port = NULL, *db = NULL;
  for (const PQconninfoOption *o = opts; o->keyword; o++) {
    const char *v = o->val && *o->val ? o->val : NULL;
    if (strcmp(o->keyword, "user") == 0)
      user = v;
    else if (strcmp(o->keyword, "host") == 0)
      host = v;
    else if (strcmp(o->keyword, "port") == 0)
      port = v;
    else if (strcmp(o->keyword, "dbname") == 0)
      db = v;
    else if (strcmp(o->keyword, "password") == 0 && v)
      *password = strdup(v);
  }
  char *label = NULL;
  bool socket = host && host[0] == '/';
  int n = asprintf(&label, "postgresql://%s%s%s%s%s/%s%s%s%s%s", user ? user : "", user ? "@" : "",
                   host && !socket ? host : "", port && !socket ? ":" : "", port && !socket ? port : "", db ? db : "",
                   socket ? "?host=" : "", socket ? host : "", socket && port ? "&port=" : "",
                   socket && port ? port : "");
  return n < 0 ? NULL : label;
}

/* The server must be able to take writes, and be new enough for the schema. */
static int
check_server(pg_conn *pc, berth_error **err)
{
  db_conn *c = &pc->base;
  int version = PQserverVersion(pc->pg);
  if (version < PG_MIN_SERVER) {
    char detail[96];
    snprintf(detail, sizeof detail, "server version %d.%d is too old; berth needs PostgreSQL 12 or newer",
             version / 10000, version % 10000);
    return db_fail(c, DB_FAIL_CONNECT, detail, err);
  }
  int64_t standby = 0;
  if (query_int(c, "SELECT CASE WHEN pg_is_in_recovery() THEN 1 ELSE 0 END", &standby, err) < 0)
    return BERTH_EINTERNAL;
  if (standby)
    return db_fail(c, DB_FAIL_READONLY, "the server is a read-only standby", err);
  return 0;
}

int
db_pg_open(const char *conninfo, db_conn **out, berth_error **err)
{
  char *perr = NULL;
  PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
  if (opts == NULL) {
    PQfreemem(perr); /* it may quote the string, password included */
    return berth_error_set(err, BERTH_EINVAL,
                           "the store is not a valid PostgreSQL connection string (a postgresql:// URL or libpq"
                           " key=value settings)");
  }
  /* JIT off for berth's sessions, after the user's own options: berth's statements are small, and JIT compiles any
   * plan whose cost estimate is high (a planner setting's penalty is enough) for 100-300 ms */
  const char *uopt = NULL;
  for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
    if (strcmp(o->keyword, "options") == 0 && o->val != NULL && *o->val)
      uopt = o->val;
  /* over TCP, a server or network that vanishes without a word (a host cut off, a failover) is noticed in about half
   * a minute instead of the kernel's 15 minutes or 2 hours: berth's defaults for the libpq settings the string and
   * the environment leave unset (a Unix socket ignores them) */
  static const struct {
    const char *key, *env, *val;
  } tcp_defaults[] = {
    { "connect_timeout", "PGCONNECT_TIMEOUT", "10" },
    { "keepalives_idle", NULL, "10" },
    { "keepalives_interval", NULL, "5" },
    { "keepalives_count", NULL, "3" },
    { "tcp_user_timeout", NULL, "30000" },
  };
  const char *keys[4 + sizeof tcp_defaults / sizeof tcp_defaults[0]],
      *vals[4 + sizeof tcp_defaults / sizeof tcp_defaults[0]];
  size_t nk = 3;
  for (size_t i = 0; i < sizeof tcp_defaults / sizeof tcp_defaults[0]; i++) {
    bool set = tcp_defaults[i].env != NULL && getenv(tcp_defaults[i].env) != NULL && *getenv(tcp_defaults[i].env);
    for (PQconninfoOption *o = opts; !set && o->keyword != NULL; o++)
      set = strcmp(o->keyword, tcp_defaults[i].key) == 0 && o->val != NULL && *o->val;
    if (!set) {
      keys[nk] = tcp_defaults[i].key;
      vals[nk++] = tcp_defaults[i].val;
    }
  }
  keys[nk] = vals[nk] = NULL;
  if (uopt == NULL)
    uopt = getenv("PGOPTIONS");
  char *options = NULL;
  if (asprintf(&options, "%s%s-c jit=off", uopt ? uopt : "", uopt ? " " : "") < 0)
    options = NULL;
  pg_conn *pc = calloc(1, sizeof *pc);
  char *label = pc && options ? make_label(opts, &pc->password) : NULL;
  PQconninfoFree(opts);
  if (pc == NULL || label == NULL || db_conn_init(&pc->base, &pg_ops, label) < 0) {
    free(label);
    free(options);
    if (pc)
      pg_close(&pc->base);
    return berth_error_set(err, BERTH_EINTERNAL, "open store: out of memory");
  }
  free(label);
  /* the user's string as dbname is expanded (a URL or key=value settings); options given here come after it. The
   * sessions say they are berth's (pg_stat_activity) unless the string or PGAPPNAME names them otherwise. */
  keys[0] = "dbname", vals[0] = conninfo;
  keys[1] = "options", vals[1] = options;
  keys[2] = "fallback_application_name", vals[2] = "berth";
  pc->pg = PQconnectdbParams(keys, vals, 1);
  free(options);
  int rc = 0;
  if (pc->pg == NULL)
    rc = db_fail(&pc->base, DB_FAIL_NOMEM, NULL, err);
  else if (PQstatus(pc->pg) != CONNECTION_OK) {
    char *msg = scrub(PQerrorMessage(pc->pg), pc->password);
    rc = db_fail(&pc->base, DB_FAIL_CONNECT, msg ? msg : "out of memory", err);
    free(msg);
  } else {
    PQsetNoticeProcessor(pc->pg, ignore_notice, NULL);
    rc = check_server(pc, err);
  }
  if (rc < 0) {
    pg_close(&pc->base);
    return rc;
  }
  *out = &pc->base;
  return 0;
}
