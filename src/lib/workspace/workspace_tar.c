/* Streams a project directory, with persisted state overlaid on it, as a tar: pull-style, bounded memory.
 *
 * One walker visits the merged tree (project + overlay) in a fixed order: names sorted by bytes, depth-first, each
 * directory before its contents. It holds one sorted listing per open directory level, never the whole tree. The
 * stream runs it twice: a scan at open (caps, unreadable files, warnings: everything that must fail before a byte
 * is uploaded), then the real pass feeding libarchive, whose output lands in a small buffer the reader drains. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "berth/buf.h"
#include "berth/cleanup.h"
#include "berth/workspace.h"

#define WS_CHUNK (64 * 1024)
#define WS_OUT_MAX (4 * 1024 * 1024) /* libarchive output between two reads: one block, header or chunk */
#define WS_MAX_DEPTH 1024
#define WS_SCAN_FACTOR 4 /* a scan over the entry cap stops counting at this many times the cap */

typedef struct ws_child {
  char *name;
  bool in_project, in_overlay, synthetic;
} ws_child;

typedef struct ws_level {
  char *rel;  /* workspace-relative path of this directory, "" for the root */
  char *proj; /* host path of this directory in the project, or NULL */
  char *ovl;  /* host path of this directory in the overlay, or NULL */
  ws_child *kids;
  size_t n, cap, i;
} ws_level;

typedef enum { WS_DIR, WS_REG, WS_LNK, WS_SPECIAL } ws_kind;

typedef struct ws_walker {
  const char *overlay_dir; /* NULL when there is no overlay */
  const char *ovl_sub;     /* normalized overlay_subdir, "" = at the root */
  time_t synth_mtime;      /* for directories only the overlay needs */
  uint64_t list_cap;       /* max names in one directory listing */
  berth_ws_warn_fn warn;
  void *warn_userdata;
  ws_level *levels;
  size_t depth, cap;
  bool pending; /* the last entry was a directory: descend into it on the next call */
  char *pend_proj, *pend_ovl;
  /* the current entry (owned; valid until the next walker_next) */
  char *rel, *host;
  struct stat st;
  ws_kind kind;
} ws_walker;

typedef enum { ST_PREFIX, ST_ENTRIES, ST_DATA, ST_DONE, ST_FAILED } ws_state;

struct berth_ws_stream {
  char *project_dir, *overlay_dir, *ovl_sub, *prefix;
  char **prefix_dirs; /* archive names of the prefix directories to emit, the workspace root last */
  size_t n_prefix, i_prefix;
  unsigned uid, gid;
  uint64_t max_bytes, max_entries;
  berth_ws_warn_fn warn;
  void *warn_userdata;
  struct stat root_st; /* the project dir, or a synthetic 0755 directory */
  uint64_t scan_entries, scan_bytes, entries, bytes;
  ws_walker walker;
  struct archive *a;
  struct archive_entry *entry;
  berth_buf out;
  size_t out_off;
  ws_state state;
  int fd;
  uint64_t file_size, remaining;
  bool short_read;
  char *chunk;
  int fail_code;
  char *fail_msg;
};

static void ws_warnf(berth_ws_warn_fn warn, void *ud, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
ws_warnf(berth_ws_warn_fn warn, void *ud, const char *fmt, ...)
{
  if (warn == NULL)
    return;
  char *msg = NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&msg, fmt, ap);
  va_end(ap);
  if (n >= 0) {
    warn(ud, msg);
    free(msg);
  }
}

/* "a" + "b" -> "a/b"; "" + "b" -> "b". NULL when out of memory or longer than PATH_MAX. */
static char *
path_join(const char *a, const char *b)
{
  char *p = NULL;
  int n = (a == NULL || *a == '\0') ? asprintf(&p, "%s", b) : asprintf(&p, "%s/%s", a, b);
  if (n < 0)
    return NULL;
  if (n >= PATH_MAX) {
    free(p);
    return NULL;
  }
  return p;
}

/* Normalizes a relative archive path ("./a//b/" -> "a/b"); refuses "..". *out is "" for an empty path. */
static int
normalize_rel(const char *in, const char *what, char **out, berth_error **err)
{
  berth_buf b;
  berth_buf_init(&b, PATH_MAX);
  const char *p = in != NULL ? in : "";
  while (*p) {
    const char *end = strchrnul(p, '/');
    size_t n = (size_t) (end - p);
    if (n == 2 && p[0] == '.' && p[1] == '.') {
      berth_buf_free(&b);
      return berth_error_set(err, BERTH_EINVAL, "%s `%s` must not contain `..`", what, in);
    }
    if (n > 0 && !(n == 1 && p[0] == '.')) {
      if ((b.len > 0 && berth_buf_append(&b, "/", 1) < 0) || berth_buf_append(&b, p, n) < 0) {
        berth_buf_free(&b);
        return berth_error_set(err, BERTH_EINVAL, "%s `%s` is too long", what, in);
      }
    }
    p = *end ? end + 1 : end;
  }
  *out = berth_buf_steal(&b);
  return *out != NULL ? 0 : berth_error_set(err, BERTH_EINTERNAL, "out of memory");
}

static int
cmp_child(const void *x, const void *y)
{
  return strcmp(((const ws_child *) x)->name, ((const ws_child *) y)->name);
}

static int
level_add(ws_level *l, const char *name, int which, uint64_t list_cap, berth_error **err)
{
  if (l->n >= list_cap)
    return berth_error_set(err, BERTH_EINVAL, "directory `%s` has more than %llu entries, over the cap",
                           *l->rel ? l->rel : ".", (unsigned long long) (list_cap - 1));
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    ws_child *k = realloc(l->kids, cap * sizeof *k);
    if (k == NULL)
      return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    l->kids = k;
    l->cap = cap;
  }
  ws_child *c = &l->kids[l->n];
  c->name = strdup(name);
  if (c->name == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  c->in_project = which == 0;
  c->in_overlay = which == 1;
  c->synthetic = which == 2;
  l->n++;
  return 0;
}

/* Adds the names of host directory `dir`; a directory that vanished after it was seen is warned about, not fatal. */
static int
level_list(ws_walker *w, ws_level *l, const char *dir, int which, berth_error **err)
{
  DIR *d = opendir(dir);
  if (d == NULL) {
    if (errno == ENOENT || errno == ENOTDIR) {
      ws_warnf(w->warn, w->warn_userdata, "directory `%s` vanished while the workspace was read; uploaded empty",
               *l->rel ? l->rel : ".");
      return 0;
    }
    return berth_error_set_errno(err, BERTH_EINVAL, errno, "cannot read workspace directory `%s`", dir);
  }
  int rc = 0;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (de == NULL) {
      if (errno != 0)
        rc = berth_error_set_errno(err, BERTH_EINVAL, errno, "cannot read workspace directory `%s`", dir);
      break;
    }
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    if ((rc = level_add(l, de->d_name, which, w->list_cap, err)) < 0)
      break;
  }
  closedir(d);
  return rc;
}

static void
level_free(ws_level *l)
{
  for (size_t i = 0; i < l->n; i++)
    free(l->kids[i].name);
  free(l->kids);
  free(l->rel);
  free(l->proj);
  free(l->ovl);
  memset(l, 0, sizeof *l);
}

/* Opens one level of the merged tree: the project's names, the overlay's, and when the overlay root lies deeper,
 * the next directory on the way to it. Takes ownership of rel, proj and ovl. */
static int
walker_push(ws_walker *w, char *rel, char *proj, char *ovl, berth_error **err)
{
  if (w->depth == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 16;
    ws_level *lv = realloc(w->levels, cap * sizeof *lv);
    if (lv == NULL) {
      free(rel);
      free(proj);
      free(ovl);
      return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    }
    w->levels = lv;
    w->cap = cap;
  }
  ws_level *l = &w->levels[w->depth++];
  memset(l, 0, sizeof *l);
  l->rel = rel;
  l->proj = proj;
  l->ovl = ovl;
  if (proj != NULL && level_list(w, l, proj, 0, err) < 0)
    return -1;
  if (ovl != NULL && level_list(w, l, ovl, 1, err) < 0)
    return -1;
  if (w->overlay_dir != NULL && *w->ovl_sub) {
    size_t rl = strlen(rel);
    const char *sub = w->ovl_sub;
    if (rl == 0 || (strncmp(sub, rel, rl) == 0 && sub[rl] == '/')) {
      const char *start = rl == 0 ? sub : sub + rl + 1;
      char *next = strndup(start, (size_t) (strchrnul(start, '/') - start));
      if (next == NULL)
        return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
      int rc = level_add(l, next, 2, w->list_cap, err);
      free(next);
      if (rc < 0)
        return rc;
    }
  }
  if (l->n > 1)
    qsort(l->kids, l->n, sizeof *l->kids, cmp_child);
  size_t o = 0;
  for (size_t i = 0; i < l->n; i++) {
    if (o > 0 && strcmp(l->kids[o - 1].name, l->kids[i].name) == 0) {
      ws_child *keep = &l->kids[o - 1];
      keep->in_project |= l->kids[i].in_project;
      keep->in_overlay |= l->kids[i].in_overlay;
      keep->synthetic |= l->kids[i].synthetic;
      free(l->kids[i].name);
    } else {
      l->kids[o++] = l->kids[i];
    }
  }
  l->n = o;
  return 0;
}

static void
walker_free(ws_walker *w)
{
  while (w->depth > 0)
    level_free(&w->levels[--w->depth]);
  free(w->levels);
  free(w->pend_proj);
  free(w->pend_ovl);
  free(w->rel);
  free(w->host);
  w->levels = NULL;
  w->cap = 0;
  w->pending = false;
  w->pend_proj = w->pend_ovl = w->rel = w->host = NULL;
}

/* lstat that tells "absent" (0 with *have false) from a real failure (<0). */
static int
lstat_opt(const char *path, struct stat *st, bool *have, berth_error **err)
{
  *have = false;
  if (path == NULL)
    return 0;
  if (lstat(path, st) == 0) {
    *have = true;
    return 0;
  }
  if (errno == ENOENT || errno == ENOTDIR)
    return 0;
  return berth_error_set_errno(err, BERTH_EINVAL, errno, "cannot inspect workspace file `%s`", path);
}

static ws_kind
kind_of(mode_t m)
{
  if (S_ISDIR(m))
    return WS_DIR;
  if (S_ISREG(m))
    return WS_REG;
  if (S_ISLNK(m))
    return WS_LNK;
  return WS_SPECIAL;
}

/* Resolves one child of level l into the current entry. Returns 1 with an entry, 0 when it vanished, <0 on error. */
static int
walker_resolve(ws_walker *w, ws_level *l, const ws_child *c, berth_error **err)
{
  cleanup_free char *pp = c->in_project || c->synthetic ? (l->proj ? path_join(l->proj, c->name) : NULL) : NULL;
  cleanup_free char *op = c->in_overlay ? path_join(l->ovl, c->name) : NULL;
  char *rel = path_join(l->rel, c->name);
  if (rel == NULL || (l->proj != NULL && (c->in_project || c->synthetic) && pp == NULL)
      || (c->in_overlay && op == NULL)) {
    free(rel);
    return berth_error_set(err, BERTH_EINVAL, "workspace path `%s/%s` is too long", l->rel, c->name);
  }
  free(w->rel);
  w->rel = rel;
  struct stat sp, so;
  bool hp = false, ho = false;
  if (lstat_opt(pp, &sp, &hp, err) < 0 || lstat_opt(op, &so, &ho, err) < 0)
    return -1;
  char *host = NULL, *cproj = NULL, *covl = NULL;
  bool proj_dir = hp && S_ISDIR(sp.st_mode);
  if (c->synthetic) {
    /* a directory on the way to the overlay root: the project's if it is one, else made up */
    if (proj_dir) {
      w->st = sp;
    } else {
      memset(&w->st, 0, sizeof w->st);
      w->st.st_mode = S_IFDIR | 0755;
      w->st.st_mtime = w->synth_mtime;
    }
    host = proj_dir ? strdup(pp) : NULL;
    cproj = proj_dir ? strdup(pp) : NULL;
    covl = strcmp(rel, w->ovl_sub) == 0 ? strdup(w->overlay_dir) : NULL;
  } else if (ho) {
    /* the overlay wins; directories of both sides are merged */
    w->st = so;
    host = strdup(op);
    if (S_ISDIR(so.st_mode)) {
      cproj = proj_dir ? strdup(pp) : NULL;
      covl = strdup(op);
    }
  } else if (hp) {
    w->st = sp;
    host = strdup(pp);
    if (proj_dir)
      cproj = strdup(pp);
  } else {
    ws_warnf(w->warn, w->warn_userdata, "skipping `%s` (vanished while the workspace was read)", rel);
    return 0;
  }
  free(w->host);
  w->host = host;
  w->kind = kind_of(w->st.st_mode);
  if (w->kind == WS_DIR) {
    if (w->depth >= WS_MAX_DEPTH) {
      free(cproj);
      free(covl);
      return berth_error_set(err, BERTH_EINVAL, "workspace directory `%s` is nested deeper than %d levels", rel,
                             WS_MAX_DEPTH);
    }
    w->pending = true;
    w->pend_proj = cproj;
    w->pend_ovl = covl;
  } else {
    free(cproj);
    free(covl);
  }
  return 1;
}

/* Moves to the next entry of the merged tree: 1 (w->rel, w->host, w->st, w->kind set), 0 at the end, <0 error. */
static int
walker_next(ws_walker *w, berth_error **err)
{
  if (w->pending) {
    w->pending = false;
    char *rel = strdup(w->rel);
    char *proj = w->pend_proj, *ovl = w->pend_ovl;
    w->pend_proj = w->pend_ovl = NULL;
    if (rel == NULL) {
      free(proj);
      free(ovl);
      return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    }
    if (walker_push(w, rel, proj, ovl, err) < 0)
      return -1;
  }
  while (w->depth > 0) {
    ws_level *l = &w->levels[w->depth - 1];
    if (l->i == l->n) {
      level_free(l);
      w->depth--;
      continue;
    }
    const ws_child *c = &l->kids[l->i++];
    int rc = walker_resolve(w, l, c, err);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static int
walker_start(ws_walker *w, const berth_ws_stream *s, berth_error **err)
{
  memset(w, 0, sizeof *w);
  w->overlay_dir = s->overlay_dir;
  w->ovl_sub = s->ovl_sub;
  w->synth_mtime = s->root_st.st_mtime;
  w->list_cap = s->max_entries + 1;
  w->warn = s->warn;
  w->warn_userdata = s->warn_userdata;
  char *rel = strdup("");
  char *proj = s->project_dir ? strdup(s->project_dir) : NULL;
  char *ovl = s->overlay_dir && *s->ovl_sub == '\0' ? strdup(s->overlay_dir) : NULL;
  if (rel == NULL || (s->project_dir && proj == NULL) || (s->overlay_dir && *s->ovl_sub == '\0' && ovl == NULL)) {
    free(rel);
    free(proj);
    free(ovl);
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  return walker_push(w, rel, proj, ovl, err);
}

static const char *
special_name(mode_t m)
{
  if (S_ISFIFO(m))
    return "fifo";
  if (S_ISSOCK(m))
    return "socket";
  if (S_ISCHR(m))
    return "character device";
  if (S_ISBLK(m))
    return "block device";
  return "special file";
}

static const char *
ws_name(const berth_ws_stream *s)
{
  return s->project_dir ? s->project_dir : "(empty)";
}

/* The first pass: counts, checks every file can be opened, warns about what will be skipped. */
static int
ws_scan(berth_ws_stream *s, berth_error **err)
{
  ws_walker w;
  int rc = walker_start(&w, s, err);
  const uint64_t stop = s->max_entries * WS_SCAN_FACTOR;
  bool truncated = false;
  while (rc >= 0 && (rc = walker_next(&w, err)) > 0) {
    if (w.kind == WS_SPECIAL) {
      ws_warnf(s->warn, s->warn_userdata, "skipping %s `%s` (only files, directories and symlinks are uploaded)",
               special_name(w.st.st_mode), w.rel);
      continue;
    }
    s->scan_entries++;
    if (w.kind == WS_REG) {
      s->scan_bytes += (uint64_t) w.st.st_size;
      int fd = open(w.host, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0 && errno != ENOENT) {
        rc = berth_error_set_errno(err, BERTH_EINVAL, errno, "workspace file `%s` is not readable", w.host);
        break;
      }
      if (fd >= 0)
        close(fd);
    }
    if (s->scan_entries >= stop) {
      truncated = true;
      break;
    }
  }
  walker_free(&w);
  if (rc < 0)
    return berth_error_wrap(err, "scan workspace `%s`", ws_name(s));
  if (s->scan_entries > s->max_entries)
    return berth_error_set(err, BERTH_EINVAL, "workspace `%s` has %s%llu entries, over the cap of %llu", ws_name(s),
                           truncated ? "at least " : "", (unsigned long long) s->scan_entries,
                           (unsigned long long) s->max_entries);
  if (s->scan_bytes > s->max_bytes)
    return berth_error_set(err, BERTH_EINVAL, "workspace `%s` has %llu bytes of files, over the cap of %llu bytes",
                           ws_name(s), (unsigned long long) s->scan_bytes, (unsigned long long) s->max_bytes);
  return 0;
}

static la_ssize_t
ws_write_cb(struct archive *a, void *ud, const void *buf, size_t n)
{
  berth_ws_stream *s = ud;
  if (berth_buf_append(&s->out, buf, n) < 0) {
    archive_set_error(a, ENOMEM, "workspace tar buffer over its cap");
    return -1;
  }
  return (la_ssize_t) n;
}

static int
ws_archive_err(berth_ws_stream *s, const char *what, const char *name, berth_error **err)
{
  const char *why = archive_error_string(s->a);
  return berth_error_set(err, BERTH_EINTERNAL, "%s `%s` to the workspace tar: %s", what, name,
                         why ? why : "unknown libarchive error");
}

/* Writes one header; name is the full archive name, link the symlink target or NULL. */
static int
ws_header(berth_ws_stream *s, const char *name, const struct stat *st, const char *link, berth_error **err)
{
  struct archive_entry *e = archive_entry_clear(s->entry);
  archive_entry_copy_pathname(e, name);
  archive_entry_set_filetype(e, S_ISDIR(st->st_mode) ? AE_IFDIR : S_ISLNK(st->st_mode) ? AE_IFLNK : AE_IFREG);
  archive_entry_set_perm(e, st->st_mode & 0777);
  archive_entry_set_uid(e, s->uid);
  archive_entry_set_gid(e, s->gid);
  archive_entry_set_mtime(e, st->st_mtime, 0);
  archive_entry_set_size(e, S_ISREG(st->st_mode) ? st->st_size : 0);
  if (link != NULL)
    archive_entry_copy_symlink(e, link);
  if (archive_write_header(s->a, e) < ARCHIVE_WARN)
    return ws_archive_err(s, "write header of", name, err);
  return 0;
}

/* The archive name of workspace path rel: prefix/rel, with a trailing slash for directories. */
static char *
ws_archive_name(const berth_ws_stream *s, const char *rel, bool dir)
{
  char *p = NULL;
  const char *sep = *s->prefix && *rel ? "/" : "";
  if (asprintf(&p, "%s%s%s%s", s->prefix, sep, rel, dir ? "/" : "") < 0)
    return NULL;
  return p;
}

static int
ws_emit_link(berth_ws_stream *s, const char *name, berth_error **err)
{
  char target[PATH_MAX];
  ssize_t n = readlink(s->walker.host, target, sizeof target - 1);
  if (n < 0) {
    if (errno == ENOENT || errno == EINVAL) {
      ws_warnf(s->warn, s->warn_userdata, "skipping `%s` (changed while the workspace was read)", s->walker.rel);
      return 0;
    }
    return berth_error_set_errno(err, BERTH_EINVAL, errno, "cannot read workspace symlink `%s`", s->walker.host);
  }
  target[n] = '\0';
  return ws_header(s, name, &s->walker.st, target, err);
}

static int
ws_emit_file(berth_ws_stream *s, const char *name, berth_error **err)
{
  const char *rel = s->walker.rel;
  int fd = open(s->walker.host, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  if (fd < 0 && (errno == ENOENT || errno == ELOOP)) {
    ws_warnf(s->warn, s->warn_userdata, "skipping `%s` (vanished while the workspace was read)", rel);
    return 0;
  }
  if (fd < 0)
    return berth_error_set_errno(err, BERTH_EINVAL, errno, "workspace file `%s` is not readable", s->walker.host);
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    ws_warnf(s->warn, s->warn_userdata, "skipping `%s` (changed while the workspace was read)", rel);
    return 0;
  }
  if (s->bytes + (uint64_t) st.st_size > s->max_bytes) {
    close(fd);
    return berth_error_set(err, BERTH_EINVAL, "workspace `%s` grew over the cap of %llu bytes while uploaded (at `%s`)",
                           ws_name(s), (unsigned long long) s->max_bytes, rel);
  }
  if (ws_header(s, name, &st, NULL, err) < 0) {
    close(fd);
    return -1;
  }
  s->bytes += (uint64_t) st.st_size;
  s->fd = fd;
  s->file_size = s->remaining = (uint64_t) st.st_size;
  s->short_read = false;
  if (s->remaining > 0) {
    s->state = ST_DATA;
  } else {
    close(fd);
    s->fd = -1;
  }
  return 0;
}

/* Emits the next entry of the tree, or ends the archive. */
static int
ws_step_entry(berth_ws_stream *s, berth_error **err)
{
  int rc;
  while ((rc = walker_next(&s->walker, err)) > 0 && s->walker.kind == WS_SPECIAL)
    ; /* warned about by the scan */
  if (rc < 0)
    return berth_error_wrap(err, "stream workspace `%s`", ws_name(s));
  if (rc == 0) {
    if (archive_write_close(s->a) < ARCHIVE_WARN)
      return ws_archive_err(s, "finish", ws_name(s), err);
    s->state = ST_DONE;
    return 0;
  }
  if (++s->entries > s->max_entries)
    return berth_error_set(err, BERTH_EINVAL, "workspace `%s` grew over the cap of %llu entries while uploaded",
                           ws_name(s), (unsigned long long) s->max_entries);
  cleanup_free char *name = ws_archive_name(s, s->walker.rel, s->walker.kind == WS_DIR);
  if (name == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  switch (s->walker.kind) {
  case WS_DIR:
    return ws_header(s, name, &s->walker.st, NULL, err);
  case WS_LNK:
    return ws_emit_link(s, name, err);
  default:
    return ws_emit_file(s, name, err);
  }
}

/* Streams the next chunk of the current file; a file that shrank is padded with zeros, one that grew is cut. */
static int
ws_step_data(berth_ws_stream *s, berth_error **err)
{
  size_t want = s->remaining < WS_CHUNK ? (size_t) s->remaining : WS_CHUNK;
  ssize_t n = 0;
  if (!s->short_read) {
    do
      n = read(s->fd, s->chunk, want);
    while (n < 0 && errno == EINTR);
    if (n < 0)
      return berth_error_set_errno(err, BERTH_EINVAL, errno, "read workspace file `%s`", s->walker.host);
    if (n == 0) {
      s->short_read = true;
      ws_warnf(s->warn, s->warn_userdata,
               "file `%s` shrank while the workspace was uploaded; padded with zeros to its %llu bytes", s->walker.rel,
               (unsigned long long) s->file_size);
    }
  }
  if (s->short_read) {
    memset(s->chunk, 0, want);
    n = (ssize_t) want;
  }
  if (archive_write_data(s->a, s->chunk, (size_t) n) < 0)
    return ws_archive_err(s, "write data of", s->walker.rel, err);
  s->remaining -= (uint64_t) n;
  if (s->remaining == 0) {
    struct stat st;
    if (!s->short_read && fstat(s->fd, &st) == 0 && (uint64_t) st.st_size != s->file_size)
      ws_warnf(s->warn, s->warn_userdata, "file `%s` changed size while the workspace was uploaded; cut at %llu bytes",
               s->walker.rel, (unsigned long long) s->file_size);
    close(s->fd);
    s->fd = -1;
    s->state = ST_ENTRIES;
  }
  return 0;
}

static int
ws_step(berth_ws_stream *s, berth_error **err)
{
  switch (s->state) {
  case ST_PREFIX: {
    if (s->i_prefix == s->n_prefix) {
      s->state = ST_ENTRIES;
      return 0;
    }
    size_t i = s->i_prefix++;
    struct stat st = s->root_st;
    if (i + 1 < s->n_prefix)
      st.st_mode = S_IFDIR | 0755; /* above the workspace root */
    return ws_header(s, s->prefix_dirs[i], &st, NULL, err);
  }
  case ST_ENTRIES:
    return ws_step_entry(s, err);
  case ST_DATA:
    return ws_step_data(s, err);
  default:
    return 0;
  }
}

/* The archive names of the prefix directories: all but the first component, which the image owns, unless the
 * prefix has a single component (then it is the workspace root itself). */
static int
ws_prefix_dirs(berth_ws_stream *s, berth_error **err)
{
  size_t ncomp = 0;
  for (const char *p = s->prefix; *p; p = *p == '/' ? p + 1 : strchrnul(p, '/'))
    if (*p != '/')
      ncomp++;
  if (ncomp == 0)
    return 0;
  s->prefix_dirs = calloc(ncomp, sizeof *s->prefix_dirs);
  if (s->prefix_dirs == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  size_t k = 0;
  for (const char *p = s->prefix;; p++) {
    if (*p == '/' || *p == '\0') {
      k++;
      if (k >= 2 || ncomp == 1) {
        char *d = NULL;
        if (asprintf(&d, "%.*s/", (int) (p - s->prefix), s->prefix) < 0)
          return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
        s->prefix_dirs[s->n_prefix++] = d;
      }
      if (*p == '\0')
        break;
    }
  }
  return 0;
}

static int
ws_check_dirs(berth_ws_stream *s, const berth_ws_opts *o, berth_error **err)
{
  memset(&s->root_st, 0, sizeof s->root_st);
  s->root_st.st_mode = S_IFDIR | 0755;
  if (o->project_dir != NULL) {
    if (*o->project_dir == '\0')
      return berth_error_set(err, BERTH_EINVAL, "project directory is empty");
    if (stat(o->project_dir, &s->root_st) < 0)
      return berth_error_set_errno(err, BERTH_EINVAL, errno, "project directory `%s` cannot be used", o->project_dir);
    if (!S_ISDIR(s->root_st.st_mode))
      return berth_error_set(err, BERTH_EINVAL, "project directory `%s` is not a directory", o->project_dir);
    DIR *d = opendir(o->project_dir);
    if (d == NULL)
      return berth_error_set_errno(err, BERTH_EINVAL, errno, "project directory `%s` is not readable", o->project_dir);
    closedir(d);
    if ((s->project_dir = strdup(o->project_dir)) == NULL)
      return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  if (o->overlay_dir != NULL) {
    struct stat st;
    if (stat(o->overlay_dir, &st) < 0) {
      if (errno != ENOENT)
        return berth_error_set_errno(err, BERTH_EINVAL, errno, "stack state directory `%s` cannot be used",
                                     o->overlay_dir);
    } else if (!S_ISDIR(st.st_mode)) {
      return berth_error_set(err, BERTH_EINVAL, "stack state directory `%s` is not a directory", o->overlay_dir);
    } else if ((s->overlay_dir = strdup(o->overlay_dir)) == NULL) {
      return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    }
  }
  return 0;
}

int
berth_ws_stream_open(const berth_ws_opts *o, berth_ws_stream **out, berth_error **err)
{
  berth_ws_stream *s = calloc(1, sizeof *s);
  if (s == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  s->fd = -1;
  s->uid = o->uid;
  s->gid = o->gid;
  s->max_bytes = o->max_bytes ? o->max_bytes : BERTH_WS_DEFAULT_MAX_BYTES;
  s->max_entries = o->max_entries ? o->max_entries : BERTH_WS_DEFAULT_MAX_ENTRIES;
  s->warn = o->warn;
  s->warn_userdata = o->warn_userdata;
  berth_buf_init(&s->out, WS_OUT_MAX);
  if (normalize_rel(o->prefix, "workspace prefix", &s->prefix, err) < 0
      || normalize_rel(o->overlay_subdir, "stack state subdirectory", &s->ovl_sub, err) < 0
      || ws_check_dirs(s, o, err) < 0 || ws_prefix_dirs(s, err) < 0 || ws_scan(s, err) < 0)
    goto fail;
  s->chunk = malloc(WS_CHUNK);
  s->a = archive_write_new();
  s->entry = archive_entry_new();
  if (s->chunk == NULL || s->a == NULL || s->entry == NULL) {
    berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    goto fail;
  }
  /* pax restricted: plain ustar headers unless a long or non-ASCII name needs a pax record. (Not hdrcharset=BINARY:
   * libarchive would then add a pax record to every entry.) */
  if (archive_write_set_format_pax_restricted(s->a) != ARCHIVE_OK
      || archive_write_open(s->a, s, NULL, ws_write_cb, NULL) != ARCHIVE_OK) {
    ws_archive_err(s, "open", ws_name(s), err);
    goto fail;
  }
  if (walker_start(&s->walker, s, err) < 0)
    goto fail;
  s->state = ST_PREFIX;
  *out = s;
  return 0;
fail : {
  int code = (err && *err) ? (*err)->code : BERTH_EINTERNAL;
  berth_ws_stream_free(s);
  return code;
}
}

ssize_t
berth_ws_stream_read(berth_ws_stream *s, char *buf, size_t len, berth_error **err)
{
  if (s->state == ST_FAILED)
    return berth_error_set(err, s->fail_code, "%s", s->fail_msg ? s->fail_msg : "workspace stream failed");
  size_t done = 0;
  while (done < len) {
    if (s->out_off < s->out.len) {
      size_t n = s->out.len - s->out_off;
      if (n > len - done)
        n = len - done;
      memcpy(buf + done, s->out.data + s->out_off, n);
      s->out_off += n;
      done += n;
      continue;
    }
    berth_buf_reset(&s->out);
    s->out_off = 0;
    if (s->state == ST_DONE)
      break;
    berth_error *e = NULL;
    if (ws_step(s, &e) < 0) {
      s->state = ST_FAILED;
      s->fail_code = e ? e->code : BERTH_EINTERNAL;
      s->fail_msg = e && e->msg ? strdup(e->msg) : NULL;
      if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
      }
      if (err != NULL && *err == NULL)
        *err = e;
      else
        berth_error_free(e);
      return s->fail_code;
    }
  }
  return (ssize_t) done;
}

void
berth_ws_stream_free(berth_ws_stream *s)
{
  if (s == NULL)
    return;
  if (s->fd >= 0)
    close(s->fd);
  if (s->a != NULL)
    archive_write_free(s->a); /* also closes it; output past this point is dropped */
  archive_entry_free(s->entry);
  walker_free(&s->walker);
  for (size_t i = 0; i < s->n_prefix; i++)
    free(s->prefix_dirs[i]);
  free(s->prefix_dirs);
  berth_buf_free(&s->out);
  free(s->chunk);
  free(s->project_dir);
  free(s->overlay_dir);
  free(s->ovl_sub);
  free(s->prefix);
  free(s->fail_msg);
  free(s);
}

uint64_t
berth_ws_stream_entries(const berth_ws_stream *s)
{
  return s->scan_entries;
}

uint64_t
berth_ws_stream_bytes(const berth_ws_stream *s)
{
  return s->scan_bytes;
}
