/* Safe extraction of an untrusted tar held in memory (persisted state fetched from a container).
 *
 * Every path is resolved component by component with openat(O_NOFOLLOW) from a descriptor on the destination, so
 * nothing ever writes through a symlink, whatever the archive or a concurrent writer puts there. Symlinks themselves
 * are only accepted when they cannot point out of the destination, even chained: a relative target whose ".."
 * components all come first and do not climb above the destination. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "berth/cleanup.h"
#include "berth/workspace.h"

#define TX_MAX_ENTRIES 200000
#define TX_MAX_COMPONENTS 1024
#define TX_CHUNK (64 * 1024)

typedef struct tx_ctx {
  struct archive *a;
  int root;
  uint64_t max_bytes, bytes, entries;
  int files;
  char *chunk;
} tx_ctx;

typedef struct tx_path {
  char *buf; /* normalized path, components separated by NULs */
  char *comp[TX_MAX_COMPONENTS];
  size_t n;
  const char *shown; /* the entry's name as in the archive, for messages */
} tx_path;

/* Splits name into components; refuses absolute paths and "..". n == 0 means the destination itself ("./"). */
static int
tx_split(const char *name, tx_path *p, berth_error **err)
{
  p->shown = name;
  p->n = 0;
  if (name[0] == '/')
    return berth_error_set(err, BERTH_EINVAL, "archive entry `%s` has an absolute path", name);
  if (strlen(name) >= PATH_MAX)
    return berth_error_set(err, BERTH_EINVAL, "archive entry `%.64s...` has a path longer than %d bytes", name,
                           PATH_MAX);
  p->buf = strdup(name);
  if (p->buf == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  char *save = NULL;
  for (char *c = strtok_r(p->buf, "/", &save); c != NULL; c = strtok_r(NULL, "/", &save)) {
    if (strcmp(c, ".") == 0)
      continue;
    if (strcmp(c, "..") == 0)
      return berth_error_set(err, BERTH_EINVAL, "archive entry `%s` contains `..`", name);
    if (p->n == TX_MAX_COMPONENTS)
      return berth_error_set(err, BERTH_EINVAL, "archive entry `%s` is nested too deep", name);
    p->comp[p->n++] = c;
  }
  return 0;
}

/* The parent directory of component i ... as an fd, created (0700) where missing; never through a symlink. */
static int
tx_open_parent(tx_ctx *c, const tx_path *p, berth_error **err)
{
  int fd = dup(c->root);
  if (fd < 0)
    return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "duplicate a descriptor");
  for (size_t i = 0; i + 1 < p->n; i++) {
    int next = openat(fd, p->comp[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && errno == ENOENT) {
      if (mkdirat(fd, p->comp[i], 0700) < 0 && errno != EEXIST) {
        int e = errno;
        close(fd);
        return berth_error_set_errno(err, BERTH_EINTERNAL, e, "create directory for archive entry `%s`", p->shown);
      }
      next = openat(fd, p->comp[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (next < 0) {
      int e = errno;
      struct stat st;
      bool link = fstatat(fd, p->comp[i], &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
      close(fd);
      if (link)
        return berth_error_set(err, BERTH_EINVAL, "archive entry `%s` goes through the symlink `%s`", p->shown,
                               p->comp[i]);
      if (e == ENOTDIR)
        return berth_error_set(err, BERTH_EINVAL, "archive entry `%s` goes through `%s`, which is not a directory",
                               p->shown, p->comp[i]);
      return berth_error_set_errno(err, BERTH_EINTERNAL, e, "open directory for archive entry `%s`", p->shown);
    }
    close(fd);
    fd = next;
  }
  return fd;
}

/* Removes what an earlier entry left at the name, unless it is a directory (a file never replaces a directory). */
static int
tx_clear(int dir, const tx_path *p, berth_error **err)
{
  const char *last = p->comp[p->n - 1];
  if (unlinkat(dir, last, 0) == 0 || errno == ENOENT)
    return 0;
  if (errno == EISDIR || errno == EPERM)
    return berth_error_set(err, BERTH_EINVAL, "archive entry `%s` would replace a directory", p->shown);
  return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "replace `%s`", p->shown);
}

static int
tx_write_all(int fd, const char *b, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, b, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -1;
    b += w;
    n -= (size_t) w;
  }
  return 0;
}

static int
tx_file(tx_ctx *c, int dir, const tx_path *p, struct archive_entry *e, berth_error **err)
{
  if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0
      && (uint64_t) archive_entry_size(e) > c->max_bytes - c->bytes)
    return berth_error_set(err, BERTH_EINVAL, "archive entry `%s` (%lld bytes) is over the cap of %llu bytes", p->shown,
                           (long long) archive_entry_size(e), (unsigned long long) c->max_bytes);
  if (tx_clear(dir, p, err) < 0)
    return -1;
  mode_t mode = (archive_entry_perm(e) & 0100) ? 0700 : 0600;
  cleanup_close int fd = openat(dir, p->comp[p->n - 1], O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0)
    return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "create `%s`", p->shown);
  for (;;) {
    la_ssize_t n = archive_read_data(c->a, c->chunk, TX_CHUNK);
    if (n == 0)
      break;
    if (n < 0)
      return berth_error_set(err, BERTH_EINVAL, "read archive entry `%s`: %s", p->shown,
                             archive_error_string(c->a) ? archive_error_string(c->a) : "corrupt archive");
    if ((uint64_t) n > c->max_bytes - c->bytes)
      return berth_error_set(err, BERTH_EINVAL, "archive entry `%s` is over the cap of %llu bytes", p->shown,
                             (unsigned long long) c->max_bytes);
    c->bytes += (uint64_t) n;
    if (tx_write_all(fd, c->chunk, (size_t) n) < 0)
      return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "write `%s`", p->shown);
  }
  if (archive_entry_mtime_is_set(e)) {
    struct timespec ts[2] = { { 0, UTIME_OMIT }, { archive_entry_mtime(e), 0 } };
    (void) futimens(fd, ts); /* best effort: a timestamp is no reason to lose state */
  }
  int rc = close(fd);
  fd = -1;
  if (rc < 0)
    return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "write `%s`", p->shown);
  c->files++;
  return 0;
}

/* A relative target whose ".." all come first and climb at most to the destination stays inside it, even through
 * other such symlinks (each resolves inside, from a real directory). */
static int
tx_check_target(const tx_path *p, const char *target, berth_error **err)
{
  if (target == NULL || *target == '\0')
    return berth_error_set(err, BERTH_EINVAL, "archive symlink `%s` has no target", p->shown);
  if (target[0] == '/')
    return berth_error_set(err, BERTH_EINVAL, "archive symlink `%s` points to the absolute path `%s`", p->shown,
                           target);
  size_t ups = 0;
  bool named = false;
  for (const char *s = target; *s;) {
    const char *end = strchrnul(s, '/');
    size_t n = (size_t) (end - s);
    if (n == 2 && s[0] == '.' && s[1] == '.') {
      if (named)
        return berth_error_set(err, BERTH_EINVAL, "archive symlink `%s` has `..` after a name in its target `%s`",
                               p->shown, target);
      ups++;
    } else if (n > 0 && !(n == 1 && s[0] == '.')) {
      named = true;
    }
    s = *end ? end + 1 : end;
  }
  if (ups > p->n - 1)
    return berth_error_set(err, BERTH_EINVAL, "archive symlink `%s` points outside the destination (`%s`)", p->shown,
                           target);
  return 0;
}

static int
tx_entry(tx_ctx *c, struct archive_entry *e, berth_error **err)
{
  const char *name = archive_entry_pathname(e);
  if (name == NULL || *name == '\0')
    return berth_error_set(err, BERTH_EINVAL, "archive entry without a name");
  if (++c->entries > TX_MAX_ENTRIES)
    return berth_error_set(err, BERTH_EINVAL, "archive has more than %d entries", TX_MAX_ENTRIES);
  mode_t type = archive_entry_filetype(e);
  if (archive_entry_hardlink(e) != NULL)
    return berth_error_set(err, BERTH_EINVAL,
                           "archive entry `%s` is a hard link; only files, directories and "
                           "symlinks are extracted",
                           name);
  if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
    return berth_error_set(err, BERTH_EINVAL, "archive entry `%s` is not a file, directory or symlink", name);
  tx_path p = { 0 };
  int rc = tx_split(name, &p, err);
  if (rc < 0 || p.n == 0) {
    free(p.buf);
    if (rc == 0 && type != AE_IFDIR)
      rc = berth_error_set(err, BERTH_EINVAL, "archive entry `%s` has an empty path", name);
    return rc;
  }
  if (type == AE_IFLNK && (rc = tx_check_target(&p, archive_entry_symlink(e), err)) < 0) {
    free(p.buf);
    return rc;
  }
  int dir = tx_open_parent(c, &p, err);
  if (dir < 0) {
    free(p.buf);
    return -1;
  }
  const char *last = p.comp[p.n - 1];
  if (type == AE_IFDIR) {
    struct stat st;
    if (mkdirat(dir, last, 0700) < 0
        && !(errno == EEXIST && fstatat(dir, last, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)))
      rc = errno == EEXIST
               ? berth_error_set(err, BERTH_EINVAL, "archive directory `%s` clashes with an earlier entry", name)
               : berth_error_set_errno(err, BERTH_EINTERNAL, errno, "create directory `%s`", name);
  } else if (type == AE_IFLNK) {
    if ((rc = tx_clear(dir, &p, err)) == 0 && symlinkat(archive_entry_symlink(e), dir, last) < 0)
      rc = berth_error_set_errno(err, BERTH_EINTERNAL, errno, "create symlink `%s`", name);
  } else {
    rc = tx_file(c, dir, &p, e, err);
  }
  close(dir);
  free(p.buf);
  return rc;
}

int
berth_tar_extract_mem(const void *data, size_t len, const char *dest_dir, uint64_t max_bytes, berth_error **err)
{
  tx_ctx c = { .root = -1, .max_bytes = max_bytes ? max_bytes : BERTH_WS_DEFAULT_MAX_BYTES };
  int rc = 0;
  c.root = open(dest_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (c.root < 0)
    return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "open extraction directory `%s`", dest_dir);
  c.chunk = malloc(TX_CHUNK);
  c.a = archive_read_new();
  if (c.chunk == NULL || c.a == NULL) {
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    goto out;
  }
  archive_read_support_format_tar(c.a);
  if (archive_read_open_memory(c.a, data, len) != ARCHIVE_OK) {
    rc = berth_error_set(err, BERTH_EINVAL, "read archive: %s",
                         archive_error_string(c.a) ? archive_error_string(c.a) : "not a tar archive");
    goto out;
  }
  for (;;) {
    struct archive_entry *e = NULL;
    int r = archive_read_next_header(c.a, &e);
    if (r == ARCHIVE_EOF)
      break;
    if (r < ARCHIVE_WARN) {
      rc = berth_error_set(err, BERTH_EINVAL, "read archive: %s",
                           archive_error_string(c.a) ? archive_error_string(c.a) : "corrupt archive");
      goto out;
    }
    if ((rc = tx_entry(&c, e, err)) < 0)
      goto out;
  }
  rc = c.files;
out:
  if (rc < 0)
    rc = berth_error_wrap(err, "extract archive into `%s`", dest_dir);
  if (c.a != NULL)
    archive_read_free(c.a);
  free(c.chunk);
  close(c.root);
  return rc;
}
