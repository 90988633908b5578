/* Stack state versions: persisted paths copied back after each task, kept as numbered, complete versions.
 *
 * SQLite: numbered directories in BERTH_HOME. A version becomes visible only through its row in state_versions,
 * inserted in the same transaction that renames the fully fsynced temp dir into place; a crash leaves either a temp
 * dir or an unrecorded numbered dir, never a recorded half-written one. Unrecorded dirs are garbage and are
 * replaced by the next commit.
 *
 * PostgreSQL: the version's files as one tar (at most STATE_TAR_MAX bytes) in state_contents, inserted in the same
 * transaction as its state_versions row, so every host sees whole versions only. berth_state_latest unpacks the
 * newest into BERTH_HOME/state/<stack>/<version> (a local copy, made afresh each time: another store may have used
 * the same number), which is where the runner reads it from. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "berth/buf.h"
#include "berth/cleanup.h"
#include "berth/workspace.h"
#include "store_int.h"

#define STATE_MAX_DEPTH 64
#define STATE_TAR_MAX (128u << 20) /* one version's tar in the database: read back whole, so it is capped */
#define STATE_TAR_ROOT "state"     /* the tar's one top directory: the version's root */

typedef struct tree_stats {
  int64_t bytes;
  size_t files;
} tree_stats;

static char *
stack_dir(berth_store *st, const char *stack)
{
  char *p = NULL;
  return asprintf(&p, "%s/state/%s", st->home, stack) < 0 ? NULL : p;
}

char *
berth_state_version_path(berth_store *st, const char *stack, int64_t version)
{
  char *p = NULL;
  return asprintf(&p, "%s/state/%s/%lld", st->home, stack, (long long) version) < 0 ? NULL : p;
}

static int
fsync_path(const char *path, int flags)
{
  int fd = open(path, flags | O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

int
berth_state_begin(berth_store *st, const char *stack, char **tmpdir_out, berth_error **err)
{
  if (berth_stack_validate_name(stack, err) < 0)
    return BERTH_EINVAL;
  cleanup_free char *base = NULL, *dir = stack_dir(st, stack);
  char *tmp = NULL;
  if (dir == NULL || asprintf(&base, "%s/state", st->home) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if ((mkdir(base, 0700) < 0 && errno != EEXIST) || (mkdir(dir, 0700) < 0 && errno != EEXIST))
    return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "create state directory %s", dir);
  if (asprintf(&tmp, "%s/.tmp-XXXXXX", dir) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (mkdtemp(tmp) == NULL) {
    int saved = errno;
    free(tmp);
    return berth_error_set_errno(err, BERTH_EINTERNAL, saved, "create temporary state directory in %s", dir);
  }
  *tmpdir_out = tmp;
  return 0;
}

void
berth_state_abort(const char *tmpdir)
{
  if (tmpdir != NULL)
    store_remove_tree(tmpdir);
}

/* fsyncs every file and directory under dirfd (consumed), counting files and bytes; symlinks are counted, never
 * followed. */
static int
sync_tree(int dirfd, int depth, tree_stats *ts)
{
  DIR *d = fdopendir(dirfd);
  if (d == NULL) {
    close(dirfd);
    return -1;
  }
  int rc = depth > STATE_MAX_DEPTH ? (errno = ELOOP, -1) : 0;
  struct dirent *de;
  while (rc == 0 && (de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    struct stat sb;
    if (fstatat(dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
      rc = -1;
      break;
    }
    if (S_ISDIR(sb.st_mode)) {
      int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      rc = sub < 0 ? -1 : sync_tree(sub, depth + 1, ts);
    } else if (S_ISREG(sb.st_mode)) {
      int fd = openat(dirfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      rc = fd < 0 || fsync(fd) < 0 ? -1 : 0;
      if (fd >= 0)
        close(fd);
      ts->files++;
      ts->bytes += sb.st_size;
    } else if (S_ISLNK(sb.st_mode)) {
      ts->files++;
    }
  }
  if (rc == 0 && fsync(dirfd) < 0)
    rc = -1;
  int saved = errno;
  closedir(d);
  errno = saved;
  return rc;
}

static ssize_t
tar_sink_read(void *ud, char *buf, size_t len, berth_error **err)
{
  return berth_ws_stream_read(ud, buf, len, err);
}

/* The version's files as one tar under STATE_TAR_ROOT/ (symlinks kept, special files skipped), at most
 * STATE_TAR_MAX bytes. */
static int
pack_tree(const char *dir, berth_buf *tar, berth_error **err)
{
  berth_ws_opts o = { .project_dir = dir, .prefix = STATE_TAR_ROOT, .max_bytes = STATE_TAR_MAX };
  berth_ws_stream *ws = NULL;
  if (berth_ws_stream_open(&o, &ws, err) < 0)
    return BERTH_EINTERNAL;
  char chunk[65536];
  ssize_t n;
  int rc = 0;
  while (rc == 0 && (n = tar_sink_read(ws, chunk, sizeof chunk, err)) != 0) {
    if (n < 0)
      rc = BERTH_EINTERNAL;
    else if ((rc = berth_buf_append(tar, chunk, (size_t) n)) == BERTH_BUF_TOO_BIG)
      rc = berth_error_set(err, BERTH_EINVAL, "the state is over the %u MiB a PostgreSQL store keeps per version",
                           STATE_TAR_MAX >> 20);
    else if (rc < 0)
      rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  berth_ws_stream_free(ws);
  return rc;
}

static int
insert_contents(db_conn *c, const char *stack, int64_t version, const berth_buf *tar, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(c, "INSERT INTO state_contents (stack, version, tar) VALUES (?, ?, ?)", &stmt, err) < 0)
    return BERTH_EINTERNAL;
  db_bind_text(stmt, 1, stack);
  db_bind_int64(stmt, 2, version);
  db_bind_blob(stmt, 3, tar->data, tar->len);
  return db_run(stmt, NULL, err) < 0 ? berth_error_wrap(err, "record state version contents") : 0;
}

/* PostgreSQL: unpacks version `version` from the database into its local directory, replacing whatever is there,
 * through a temp dir renamed into place (a reader never sees half of it). */
static int
unpack_version(berth_store *st, const char *stack, int64_t version, const char *final, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, "SELECT tar FROM state_contents WHERE stack = ? AND version = ?", &stmt, err) < 0)
    return BERTH_EINTERNAL;
  db_bind_text(stmt, 1, stack);
  db_bind_int64(stmt, 2, version);
  int src = db_step(stmt, err);
  if (src != DB_ROW) {
    db_finalize(stmt);
    return src < 0 ? berth_error_wrap(err, "read state version %lld of stack `%s`", (long long) version, stack)
                   : berth_error_set(err, BERTH_EINTERNAL, "state version %lld of stack `%s` has no contents",
                                     (long long) version, stack);
  }
  cleanup_free char *tmp = NULL, *root = NULL, *old = NULL;
  size_t len = 0;
  const void *data = db_column_blob(stmt, 0, &len);
  int rc = berth_state_begin(st, stack, &tmp, err);
  if (rc == 0 && (asprintf(&root, "%s/" STATE_TAR_ROOT, tmp) < 0 || asprintf(&old, "%s.old", tmp) < 0))
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (rc == 0 && berth_tar_extract_mem(data, len, tmp, STATE_TAR_MAX, err) < 0)
    rc = berth_error_wrap(err, "unpack state version %lld of stack `%s`", (long long) version, stack);
  db_finalize(stmt);
  if (rc == 0 && mkdir(root, 0700) < 0 && errno != EEXIST) /* an empty version has no entries at all */
    rc = berth_error_set_errno(err, BERTH_EINTERNAL, errno, "unpack state version %lld", (long long) version);
  if (rc == 0) {
    if (rename(final, old) < 0 && errno != ENOENT) /* an earlier local copy, or another store's */
      rc = berth_error_set_errno(err, BERTH_EINTERNAL, errno, "replace %s", final);
    else if (rename(root, final) < 0)
      rc = berth_error_set_errno(err, BERTH_EINTERNAL, errno, "unpack state version into %s", final);
    store_remove_tree(old);
  }
  berth_state_abort(tmp);
  return rc;
}

static int
stack_keep_versions(berth_store *st, const char *stack, int *keep, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, "SELECT keep_versions FROM stacks WHERE name = ?", &stmt, err) < 0)
    return BERTH_EINTERNAL;
  db_bind_text(stmt, 1, stack);
  int src = db_step(stmt, err);
  *keep = src == DB_ROW ? (int) db_column_int64(stmt, 0) : BERTH_DEFAULT_KEEP_VERSIONS;
  db_finalize(stmt);
  if (src != DB_ROW && src != DB_DONE)
    return berth_error_wrap(err, "read stack");
  if (*keep <= 0)
    *keep = BERTH_DEFAULT_KEEP_VERSIONS;
  return 0;
}

static int
next_version(berth_store *st, const char *stack, int64_t *out, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, "SELECT COALESCE(MAX(version), 0) + 1 FROM state_versions WHERE stack = ?", &stmt, err) < 0)
    return BERTH_EINTERNAL;
  db_bind_text(stmt, 1, stack);
  int src = db_step(stmt, err);
  *out = src == DB_ROW ? db_column_int64(stmt, 0) : 0;
  db_finalize(stmt);
  return src == DB_ROW ? 0 : berth_error_wrap(err, "read state versions");
}

static int
record_version(berth_store *st, const char *stack, int64_t version, const char *task_id, const tree_stats *ts,
               berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db,
                 "INSERT INTO state_versions (stack, version, task_id, created_at, bytes, files)"
                 " VALUES (?, ?, ?, ?, ?, ?)",
                 &stmt, err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_text(stmt, 1, stack);
  db_bind_int64(stmt, 2, version);
  db_bind_text(stmt, 3, task_id);
  db_bind_int64(stmt, 4, berth_now_ms());
  db_bind_int64(stmt, 5, ts->bytes);
  db_bind_int64(stmt, 6, (int64_t) ts->files);
  int src = db_step(stmt, err);
  db_finalize(stmt);
  return src == DB_DONE ? 0 : berth_error_wrap(err, "record state version");
}

/* Deletes the rows of versions beyond the newest `keep`; their numbers go to *pruned for removal after commit. */
static int
prune_rows(berth_store *st, const char *stack, int keep, int64_t **pruned, size_t *n, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db,
                 "DELETE FROM state_versions WHERE stack = ? AND version <= (SELECT version FROM state_versions"
                 " WHERE stack = ? ORDER BY version DESC LIMIT 1 OFFSET ?) RETURNING version",
                 &stmt, err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_text(stmt, 1, stack);
  db_bind_text(stmt, 2, stack);
  db_bind_int64(stmt, 3, keep);
  int src;
  while ((src = db_step(stmt, err)) == DB_ROW) {
    int64_t *nv = realloc(*pruned, (*n + 1) * sizeof *nv);
    if (nv == NULL) {
      db_finalize(stmt);
      return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    }
    *pruned = nv;
    nv[(*n)++] = db_column_int64(stmt, 0);
  }
  db_finalize(stmt);
  return src == DB_DONE ? 0 : berth_error_wrap(err, "prune state versions");
}

/* A host saves a task's state only while it holds the task's claim: the row is locked until the commit, so a reaper
 * revoking the claim waits for it or wins before it. */
static int
lock_claim(berth_store *st, const char *task_id, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, "SELECT 1 FROM tasks WHERE id = ? AND attempt = ? AND revoked = 0 FOR UPDATE", &stmt, err) < 0)
    return BERTH_EINTERNAL;
  db_bind_text(stmt, 1, task_id);
  db_bind_int64(stmt, 2, st->fence_attempt);
  int rc = db_step(stmt, err);
  db_finalize(stmt);
  if (rc < 0)
    return berth_error_wrap(err, "read the claim of task %s", task_id);
  if (rc != DB_ROW)
    return berth_error_set(err, BERTH_EBUSY,
                           "task %s is no longer this host's (claim %d was revoked): its state is "
                           "not saved",
                           task_id, st->fence_attempt);
  return 0;
}

int
berth_state_commit(berth_store *st, const char *stack, const char *task_id, const char *tmpdir, int keep,
                   int64_t *version_out, berth_error **err)
{
  cleanup_free char *dir = stack_dir(st, stack), *prefix = NULL, *final = NULL;
  cleanup_free int64_t *pruned = NULL;
  size_t n_pruned = 0;
  tree_stats ts = { 0, 0 };
  int64_t version = 0;
  bool sqlite = store_is_sqlite(st);
  __attribute__((cleanup(berth_buf_free))) berth_buf tar;
  berth_buf_init(&tar, STATE_TAR_MAX);
  if (dir == NULL || asprintf(&prefix, "%s/.tmp-", dir) < 0) {
    berth_state_abort(tmpdir);
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  if (tmpdir == NULL || strncmp(tmpdir, prefix, strlen(prefix)) != 0 || strchr(tmpdir + strlen(prefix), '/'))
    return berth_error_set(err, BERTH_EINVAL, "%s is not a temporary state directory of stack `%s`",
                           tmpdir ? tmpdir : "(null)", stack);
  int fd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 || sync_tree(fd, 0, &ts) < 0) {
    int saved = errno;
    berth_state_abort(tmpdir);
    return berth_error_set_errno(err, BERTH_EINTERNAL, saved, "save state of stack `%s`", stack);
  }
  if (!sqlite && pack_tree(tmpdir, &tar, err) < 0) {
    berth_state_abort(tmpdir);
    return berth_error_wrap(err, "save state of stack `%s`", stack);
  }
  if (berth_store_begin(st, err) < 0) {
    berth_state_abort(tmpdir);
    return berth_error_wrap(err, "save state of stack `%s`", stack);
  }
  int rc = keep > 0 ? 0 : stack_keep_versions(st, stack, &keep, err);
  if (rc == 0 && !sqlite && task_id != NULL && *store_fence_sql(st, task_id))
    rc = lock_claim(st, task_id, err);
  if (rc == 0)
    rc = next_version(st, stack, &version, err);
  if (rc == 0 && sqlite && (final = berth_state_version_path(st, stack, version)) == NULL)
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (rc == 0 && sqlite) {
    store_remove_tree(final); /* an unrecorded leftover of a crash, never a visible version */
    if (rename(tmpdir, final) < 0 || fsync_path(dir, O_DIRECTORY) < 0)
      rc = berth_error_set_errno(err, BERTH_EINTERNAL, errno, "save state of stack `%s` as version %lld", stack,
                                 (long long) version);
  }
  if (rc == 0)
    rc = record_version(st, stack, version, task_id, &ts, err);
  if (rc == 0 && !sqlite)
    rc = insert_contents(st->db, stack, version, &tar, err);
  if (rc == 0)
    rc = prune_rows(st, stack, keep, &pruned, &n_pruned, err);
  if (rc == 0)
    rc = berth_store_commit(st, err);
  else
    berth_store_rollback(st);
  if (rc < 0) {
    berth_state_abort(tmpdir);
    if (final)
      store_remove_tree(final);
    return rc;
  }
  if (!sqlite)
    berth_state_abort(tmpdir); /* its contents are in the database now */
  for (size_t i = 0; i < n_pruned; i++) {
    cleanup_free char *old = berth_state_version_path(st, stack, pruned[i]);
    if (old)
      store_remove_tree(old);
  }
  if (version_out)
    *version_out = version;
  return 0;
}

int
berth_state_latest(berth_store *st, const char *stack, char **dir_out, berth_error **err)
{
  db_stmt *stmt = NULL;
  *dir_out = NULL;
  if (db_prepare(st->db, "SELECT MAX(version) FROM state_versions WHERE stack = ?", &stmt, err) < 0)
    return BERTH_EINTERNAL;
  db_bind_text(stmt, 1, stack);
  int src = db_step(stmt, err);
  bool none = src != DB_ROW || db_column_is_null(stmt, 0);
  int64_t version = none ? 0 : db_column_int64(stmt, 0);
  db_finalize(stmt);
  if (src != DB_ROW)
    return berth_error_wrap(err, "read state versions");
  if (none)
    return 0;
  char *path = berth_state_version_path(st, stack, version);
  if (path == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if (!store_is_sqlite(st) && unpack_version(st, stack, version, path, err) < 0) {
    free(path);
    return BERTH_EINTERNAL;
  }
  struct stat sb;
  if (lstat(path, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
    berth_error_set(err, BERTH_EINTERNAL, "state version %lld of stack `%s` is missing (%s)", (long long) version,
                    stack, path);
    free(path);
    return BERTH_EINTERNAL;
  }
  *dir_out = path;
  return 0;
}

int
berth_state_list(berth_store *st, const char *stack, berth_state_version **out, size_t *n, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(st->db,
                 "SELECT version, task_id, created_at, bytes, files FROM state_versions WHERE stack = ?"
                 " ORDER BY version DESC",
                 &stmt, err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_text(stmt, 1, stack);
  berth_state_version *v = NULL;
  size_t count = 0;
  bool oom = false;
  int src;
  while ((src = db_step(stmt, err)) == DB_ROW) {
    berth_state_version *nv = realloc(v, (count + 1) * sizeof *nv);
    if (nv == NULL) {
      oom = true;
      break;
    }
    v = nv;
    v[count].version = db_column_int64(stmt, 0);
    v[count].task_id = db_column_strdup(stmt, 1, &oom);
    v[count].created_at = db_column_int64(stmt, 2);
    v[count].bytes = db_column_int64(stmt, 3);
    v[count].files = (size_t) db_column_int64(stmt, 4);
    count++;
  }
  db_finalize(stmt);
  if (oom || (src != DB_DONE && src != DB_ROW)) {
    berth_state_versions_free(v, count);
    return oom ? berth_error_set(err, BERTH_EINTERNAL, "out of memory") : berth_error_wrap(err, "list state versions");
  }
  *out = v;
  *n = count;
  return 0;
}

void
berth_state_versions_free(berth_state_version *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(v[i].task_id);
  free(v);
}

int
store_state_copy_contents(berth_store *st, db_conn *to, berth_error **err)
{
  if (!store_is_sqlite(st))
    return 0; /* state_contents is copied as a table */
  db_stmt *stmt = NULL;
  if (db_prepare(st->db, "SELECT stack, version FROM state_versions ORDER BY stack, version", &stmt, err) < 0)
    return BERTH_EINTERNAL;
  int src = DB_DONE, rc = 0;
  while (rc == 0 && (src = db_step(stmt, err)) == DB_ROW) {
    const char *stack = db_column_text(stmt, 0);
    int64_t version = db_column_int64(stmt, 1);
    cleanup_free char *dir = berth_state_version_path(st, stack, version);
    struct stat sb;
    if (dir == NULL) {
      rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
      break;
    }
    if (lstat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode))
      continue; /* missing here already: the copy reads as missing too */
    berth_buf tar;
    berth_buf_init(&tar, STATE_TAR_MAX);
    rc = pack_tree(dir, &tar, err);
    if (rc == 0)
      rc = insert_contents(to, stack, version, &tar, err);
    berth_buf_free(&tar);
    if (rc < 0)
      rc = berth_error_wrap(err, "copy state version %lld of stack `%s`", (long long) version, stack);
  }
  db_finalize(stmt);
  return rc < 0 ? rc : src < 0 ? berth_error_wrap(err, "read state versions") : 0;
}
