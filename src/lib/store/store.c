/* The store handle: BERTH_HOME resolution, opening the engine and migrating, store-wide information. */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "berth/cleanup.h"
#include "berth/config.h"
#include "db_engine.h"
#include "store_int.h"

int64_t
berth_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *
berth_home_default(void)
{
  const char *v = getenv("BERTH_HOME");
  char *out = NULL;
  if (v != NULL && *v != '\0')
    return strdup(v);
  v = getenv("XDG_DATA_HOME");
  if (v != NULL && *v == '/')
    return asprintf(&out, "%s/berth", v) < 0 ? NULL : out;
  if (geteuid() == 0)
    return strdup("/var/lib/berth");
  v = getenv("HOME");
  if (v == NULL || *v == '\0') {
    struct passwd *pw = getpwuid(getuid());
    v = pw ? pw->pw_dir : "/tmp";
  }
  return asprintf(&out, "%s/.local/share/berth", v) < 0 ? NULL : out;
}

db_conn *
store_db(berth_store *st)
{
  return st->db;
}

/* After an outermost write begin on PostgreSQL: the audit head is read with the transaction's first statement. */
static void
read_head_ahead(berth_store *st)
{
  if (store_is_sqlite(st) || db_tx_depth(st->db) != 1)
    return;
  db_finalize(st->head_read);
  st->head_read = NULL;
  db_stmt *s = NULL;
  berth_error *e = NULL;
  if (db_prepare(st->db, STORE_AUDIT_HEAD_SQL, &s, &e) == 0 && db_prefetch(s, &e) == 0) {
    st->head_read = s;
    st->head_txn = db_txn_id(st->db);
    s = NULL;
  }
  db_finalize(s);
  berth_error_free(e); /* the append reads the head itself */
}

/* After a stale guess, this many standalone appends read the head under the lock (two round trips) before guessing
 * again: with several writers the guess is mostly wrong, and a wrong one costs a round trip. */
#define AUDIT_HEAD_MISS_BACKOFF 16

bool
store_audit_head_known(berth_store *st, int64_t *id, unsigned char raw[32])
{
  if (store_is_sqlite(st) || !st->head_known)
    return false;
  if (st->head_misses > 0) {
    st->head_misses--;
    return false;
  }
  *id = st->head_id;
  memcpy(raw, st->head_raw, sizeof st->head_raw);
  return true;
}

void
store_audit_head_remember(berth_store *st, int64_t id, const unsigned char raw[32])
{
  st->head_known = true;
  st->head_id = id;
  memcpy(st->head_raw, raw, sizeof st->head_raw);
}

void
store_audit_head_forget(berth_store *st)
{
  st->head_known = false;
}

void
store_audit_head_stale(berth_store *st)
{
  st->head_known = false;
  st->head_misses = AUDIT_HEAD_MISS_BACKOFF;
}

db_stmt *
store_take_audit_head(berth_store *st)
{
  db_stmt *s = st->head_read;
  st->head_read = NULL;
  if (s != NULL && (st->head_txn != db_txn_id(st->db) || db_tx_depth(st->db) == 0)) {
    db_finalize(s);
    s = NULL;
  }
  return s;
}

void
store_read_ahead(berth_store *st, const char *sql)
{
  if (store_is_sqlite(st) || db_tx_depth(st->db) != 0)
    return;
  int k = 0;
  while (k < STORE_AHEAD_MAX && st->ahead[k].stmt != NULL)
    k++;
  db_stmt *s = NULL;
  berth_error *e = NULL;
  if (k < STORE_AHEAD_MAX && db_prepare(st->db, sql, &s, &e) == 0 && db_prefetch(s, &e) == 0) {
    st->ahead[k].sql = sql;
    st->ahead[k].stmt = s;
    s = NULL;
  }
  db_finalize(s);
  berth_error_free(e); /* the caller reads it itself */
}

db_stmt *
store_take_ahead(berth_store *st, const char *sql)
{
  for (int k = 0; k < STORE_AHEAD_MAX; k++)
    if (st->ahead[k].stmt != NULL && strcmp(st->ahead[k].sql, sql) == 0) {
      db_stmt *s = st->ahead[k].stmt;
      st->ahead[k].stmt = NULL;
      return s;
    }
  return NULL;
}

void
store_drop_ahead(berth_store *st)
{
  for (int k = 0; k < STORE_AHEAD_MAX; k++) {
    db_finalize(st->ahead[k].stmt);
    st->ahead[k].stmt = NULL;
  }
}

int
berth_store_begin(berth_store *st, berth_error **err)
{
  bool outermost = db_tx_depth(st->db) == 0;
  int rc = db_begin(st->db, err);
  if (rc == 0 && outermost)
    read_head_ahead(st);
  return rc;
}

int
berth_store_begin_part(berth_store *st, berth_error **err)
{
  bool outermost = db_tx_depth(st->db) == 0;
  int rc = db_begin_part(st->db, err);
  if (rc == 0 && outermost)
    read_head_ahead(st);
  return rc;
}

int
berth_store_commit(berth_store *st, berth_error **err)
{
  return db_commit(st->db, err);
}

void
berth_store_rollback(berth_store *st)
{
  db_rollback(st->db);
}

bool
berth_store_in_transaction(berth_store *st)
{
  return db_in_transaction(st->db);
}

const char *
berth_store_engine(berth_store *st)
{
  return db_engine_name(st->db);
}

static int
mkdir_p(const char *path, mode_t mode, berth_error **err)
{
  cleanup_free char *p = strdup(path);
  if (p == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s != '\0')
      continue;
    char c = *s;
    *s = '\0';
    if (mkdir(p, mode) < 0 && errno != EEXIST)
      return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "create store directory %s", p);
    *s = c;
    if (c == '\0')
      break;
  }
  struct stat sb;
  if (stat(path, &sb) < 0)
    return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "create store directory %s", path);
  if (!S_ISDIR(sb.st_mode))
    return berth_error_set(err, BERTH_EINTERNAL, "store directory %s is not a directory", path);
  return 0;
}

static int
read_instance_id(berth_store *st, berth_error **err)
{
  db_stmt *s = NULL;
  if (db_prepare(st->db, "SELECT value FROM meta WHERE key = 'instance_id'", &s, err) < 0)
    return BERTH_EINTERNAL;
  bool oom = false;
  int rc = db_step(s, err);
  if (rc == DB_ROW)
    st->instance_id = db_column_strdup(s, 0, &oom);
  db_finalize(s);
  if (rc < 0)
    return berth_error_wrap(err, "read store metadata");
  if (oom)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (st->instance_id == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "store %s is not a berth store (no instance id)", db_label(st->db));
  return 0;
}

/* root in a BERTH_HOME another user owns (the package's /var/lib/berth, which root's default is, or a user's own)
 * would make files there that lock that user out of its store: refused, with the command that works. */
static int
check_home_owner(const char *home, berth_error **err)
{
  struct stat sb;
  if (geteuid() != 0 || stat(home, &sb) < 0 || sb.st_uid == 0)
    return 0;
  struct passwd *pw = getpwuid(sb.st_uid);
  char uid[32];
  snprintf(uid, sizeof uid, "%lu", (unsigned long) sb.st_uid);
  const char *who = pw && pw->pw_name ? pw->pw_name : uid;
  return berth_error_set(err, BERTH_EDENIED,
                         "BERTH_HOME %s belongs to user %s: run berth as that user (sudo -u %s berth ...); files"
                         " root made there would lock it out of its own store",
                         home, who, who);
}

static int
open_sqlite(berth_store *st, berth_error **err)
{
  cleanup_free char *path = NULL;
  if (asprintf(&path, "%s/berth.db", st->home) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  int rc = mkdir_p(st->home, 0700, err);
  if (rc < 0)
    return rc;
  struct stat sb;
  if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
    return berth_error_set(err, BERTH_EINTERNAL, "store %s is not a regular file", path);
  if (stat(path, &sb) < 0 && lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode))
    return berth_error_set(err, BERTH_EINTERNAL, "store %s is a symbolic link to nothing (its target does not exist)",
                           path);
  return db_sqlite_open(path, &st->db, err);
}

static int
open_postgresql(berth_store *st, const char *url, berth_error **err)
{
  int rc = mkdir_p(st->home, 0700, err);
  if (rc == 0)
    rc = check_home_owner(st->home, err);
  if (rc == 0 && (st->conninfo = strdup(url)) == NULL)
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  return rc < 0 ? rc : db_pg_open(url, &st->db, err);
}

/* The engine: BERTH_STORE (which `berth serve --store` sets) when set, else the key `store` of BERTH_HOME/config.json,
 * else SQLite in BERTH_HOME. */
static int
open_engine(berth_store *st, berth_error **err)
{
  const char *url = getenv("BERTH_STORE"), *origin = "BERTH_STORE";
  berth_config cfg;
  memset(&cfg, 0, sizeof cfg);
  if (url == NULL || *url == '\0') {
    int rc = mkdir_p(st->home, 0700, err); /* BERTH_HOME first: "not a directory" is about it, not its config */
    if (rc == 0)
      rc = check_home_owner(st->home, err);
    if (rc < 0)
      return rc;
    if (berth_config_load(st->home, &cfg, err) < 0)
      return BERTH_EINVAL; /* the config's own line: a store must not be chosen from half a config */
    url = cfg.store;
    origin = "the key `store` of config.json";
  }
  int rc = 0;
  if (url == NULL)
    rc = open_sqlite(st, err);
  else if (!db_pg_conninfo_looks_valid(url))
    rc = berth_error_set(err, BERTH_EINVAL,
                         "%s must be a valid postgresql:// URL or libpq key=value settings (or be unset for the"
                         " SQLite store in BERTH_HOME)",
                         origin);
  else
    rc = open_postgresql(st, url, err);
  berth_config_clear(&cfg);
  return rc;
}

bool
berth_store_unreachable(const char *home)
{
  const char *url = getenv("BERTH_STORE");
  berth_config cfg;
  memset(&cfg, 0, sizeof cfg);
  berth_error *e = NULL;
  if ((url == NULL || *url == '\0') && home != NULL && berth_config_load(home, &cfg, &e) == 0)
    url = cfg.store;
  berth_error_free(e);
  bool r = url != NULL && *url && db_pg_conninfo_looks_valid(url) && !db_pg_answers(url);
  berth_config_clear(&cfg);
  return r;
}

int
store_db_open_another(berth_store *st, db_conn **out, berth_error **err)
{
  if (st->conninfo != NULL)
    return db_pg_open(st->conninfo, out, err);
  cleanup_free char *path = NULL;
  if (asprintf(&path, "%s/berth.db", st->home) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  return db_sqlite_open(path, out, err);
}

/* Readers' connections left for the next reader, by store (a hash of its connection string: no password kept). */
#define IDLE_READERS 4
static pthread_mutex_t readers_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
  unsigned char key[STORE_READER_KEY_LEN];
  db_conn *c;
} idle_readers[IDLE_READERS];
static size_t n_idle_readers;

int
store_db_open_reader(berth_store *st, db_conn **out, unsigned char key[STORE_READER_KEY_LEN], berth_error **err)
{
  memset(key, 0, STORE_READER_KEY_LEN);
  if (st->conninfo == NULL)
    return store_db_open_another(st, out, err);
  crypto_generichash(key, STORE_READER_KEY_LEN, (const unsigned char *) st->conninfo, strlen(st->conninfo), NULL, 0);
  *out = NULL;
  pthread_mutex_lock(&readers_mu);
  for (size_t i = n_idle_readers; i-- > 0;)
    if (memcmp(idle_readers[i].key, key, STORE_READER_KEY_LEN) == 0) {
      *out = idle_readers[i].c;
      idle_readers[i] = idle_readers[--n_idle_readers];
      break;
    }
  pthread_mutex_unlock(&readers_mu);
  return *out != NULL ? 0 : store_db_open_another(st, out, err);
}

void
store_db_reader_done(const unsigned char key[STORE_READER_KEY_LEN], db_conn *c, bool reusable)
{
  if (c == NULL)
    return;
  bool kept = false;
  if (reusable && strcmp(db_engine_name(c), "postgresql") == 0 && !db_in_transaction(c)) {
    pthread_mutex_lock(&readers_mu);
    if (n_idle_readers < IDLE_READERS) {
      memcpy(idle_readers[n_idle_readers].key, key, STORE_READER_KEY_LEN);
      idle_readers[n_idle_readers++].c = c;
      kept = true;
    }
    pthread_mutex_unlock(&readers_mu);
  }
  if (!kept)
    db_close(c);
}

int
store_db_take_another(berth_store *st, db_conn **out, berth_error **err)
{
  if (st->spare != NULL) {
    *out = st->spare;
    st->spare = NULL;
    return 0;
  }
  return store_db_open_another(st, out, err);
}

void
store_db_give_back(berth_store *st, db_conn *c)
{
  if (c == NULL)
    return;
  if (st == NULL || st->spare != NULL || db_in_transaction(c))
    db_close(c);
  else
    st->spare = c;
}

int
berth_store_open(const char *home, berth_store **out, berth_error **err)
{
  if (sodium_init() < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "initialize libsodium");
  if (home == NULL || *home == '\0')
    return berth_error_set(err, BERTH_EINVAL, "store directory is empty (set BERTH_HOME)");
  berth_store *st = calloc(1, sizeof *st);
  if (st == NULL || (st->home = strdup(home)) == NULL) {
    free(st);
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  int rc = open_engine(st, err);
  if (rc == 0)
    rc = store_schema_migrate(st->db, &st->schema_from, &st->schema_to, err);
  if (rc == 0)
    rc = read_instance_id(st, err);
  if (rc < 0) {
    berth_store_close(st);
    return rc;
  }
  *out = st;
  return 0;
}

void
berth_store_close(berth_store *st)
{
  if (st == NULL)
    return;
  db_finalize(st->head_read);
  store_drop_ahead(st);
  db_close(st->db);
  db_close(st->spare);
  sodium_memzero(st->key, sizeof st->key);
  if (st->conninfo) /* it may hold a password */
    sodium_memzero(st->conninfo, strlen(st->conninfo));
  free(st->conninfo);
  free(st->fence_task);
  free(st->home);
  free(st->instance_id);
  free(st);
}

const char *
berth_store_home(const berth_store *st)
{
  return st->home;
}

bool
berth_store_is_shared(berth_store *st)
{
  return !store_is_sqlite(st);
}

const char *
berth_store_instance_id(const berth_store *st)
{
  return st->instance_id;
}

static int
remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
  (void) sb;
  (void) type;
  (void) ftw;
  return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int
store_remove_tree(const char *path)
{
  struct stat sb;
  if (lstat(path, &sb) < 0)
    return errno == ENOENT ? 0 : -1;
  return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int
berth_store_info_get(berth_store *st, berth_store_info *out, berth_error **err)
{
  memset(out, 0, sizeof *out);
  out->engine = db_engine_name(st->db);
  out->location = db_label(st->db);
  out->schema_version = st->schema_to;
  out->schema_version_at_open = st->schema_from;
  out->schema_version_known = store_schema_latest();
  db_stmt *s = NULL;
  if (db_prepare(st->db,
                 "SELECT (SELECT count(*) FROM stacks), (SELECT count(*) FROM tasks),"
                 " (SELECT count(*) FROM audit_log), (SELECT count(*) FROM api_keys)",
                 &s, err)
      < 0)
    return berth_error_wrap(err, "read store information");
  int rc = db_step(s, err);
  if (rc == DB_ROW) {
    out->stacks = db_column_int64(s, 0);
    out->tasks = db_column_int64(s, 1);
    out->audit_records = db_column_int64(s, 2);
    out->api_keys = db_column_int64(s, 3);
  }
  db_finalize(s);
  if (rc < 0)
    return berth_error_wrap(err, "read store information");
  out->size_bytes = db_size_bytes(st->db);
  return 0;
}
