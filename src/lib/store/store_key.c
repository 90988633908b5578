/* The secret key that seals stored secret values (crypto_secretbox, 32 random bytes).
 *
 * SQLite: BERTH_HOME/secret.key, mode 0600, made once with link() so two processes never each make their own.
 * PostgreSQL: the `secret_key` row of the store's settings table, made once with ON CONFLICT DO NOTHING and read
 * back, so every host that reaches the database seals and unseals with the same key and none needs a file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "berth/cleanup.h"
#include "store_int.h"

#define KEY_SETTING "secret_key"

static int
create_key_file(berth_store *st, const char *path, berth_error **err)
{
  cleanup_free char *tmp = NULL;
  if (asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  cleanup_close int fd = mkstemp(tmp);
  if (fd < 0)
    return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "create secret key %s", path);
  unsigned char key[crypto_secretbox_KEYBYTES];
  crypto_secretbox_keygen(key);
  int ok = fchmod(fd, 0600) == 0 && write(fd, key, sizeof key) == (ssize_t) sizeof key && fsync(fd) == 0;
  int saved = errno;
  sodium_memzero(key, sizeof key);
  if (!ok) {
    unlink(tmp);
    return berth_error_set_errno(err, BERTH_EINTERNAL, saved, "write secret key %s", path);
  }
  if (link(tmp, path) < 0 && errno != EEXIST) {
    saved = errno;
    unlink(tmp);
    return berth_error_set_errno(err, BERTH_EINTERNAL, saved, "create secret key %s", path);
  }
  unlink(tmp);
  cleanup_close int dfd = open(st->home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0)
    fsync(dfd);
  return 0;
}

/* Reads the key file; with `create`, a missing one is made first. 1 when read, 0 when missing and !create. */
static int
load_key_file(berth_store *st, bool create, berth_error **err)
{
  cleanup_free char *path = NULL;
  if (asprintf(&path, "%s/secret.key", st->home) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  snprintf(st->key_origin, sizeof st->key_origin, "%s", path);
  for (int attempt = 0; attempt < 2; attempt++) {
    cleanup_close int fd
        = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK); /* a FIFO: refused, not waited on */
    if (fd < 0 && errno == ENOENT && !create)
      return 0;
    if (fd < 0 && errno == ENOENT && attempt == 0) {
      if (create_key_file(st, path, err) < 0)
        return BERTH_EINTERNAL;
      continue;
    }
    if (fd < 0)
      return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "open secret key %s", path);
    struct stat sb;
    if (fstat(fd, &sb) == 0 && !S_ISREG(sb.st_mode))
      return berth_error_set(err, BERTH_EINTERNAL, "secret key %s is not a regular file", path);
    if (fstat(fd, &sb) < 0 || sb.st_size != (off_t) sizeof st->key)
      return berth_error_set(err, BERTH_EINTERNAL, "secret key %s is damaged (expected %zu bytes)", path,
                             sizeof st->key);
    if (sb.st_mode & 077)
      return berth_error_set(err, BERTH_EINTERNAL, "secret key %s is readable by others (mode %03o; expected 600)",
                             path, (unsigned) (sb.st_mode & 0777));
    if (read(fd, st->key, sizeof st->key) != (ssize_t) sizeof st->key)
      return berth_error_set_errno(err, BERTH_EINTERNAL, errno, "read secret key %s", path);
    st->have_key = true;
    return 1;
  }
  return berth_error_set(err, BERTH_EINTERNAL, "open secret key %s", path);
}

/* 1 when the settings row was there and read, 0 when there is none. */
static int
read_key_setting(berth_store *st, berth_error **err)
{
  db_stmt *s = NULL;
  if (db_prepare(st->db, "SELECT value FROM settings WHERE key = '" KEY_SETTING "'", &s, err) < 0)
    return BERTH_EINTERNAL;
  int rc = db_step(s, err);
  if (rc == DB_ROW) {
    size_t len = 0;
    const void *p = db_column_blob(s, 0, &len);
    if (p == NULL || len != sizeof st->key)
      rc = berth_error_set(err, BERTH_EINTERNAL, "the secret key in the settings of store %s is damaged",
                           db_label(st->db));
    else {
      memcpy(st->key, p, sizeof st->key);
      st->have_key = true;
      rc = 1;
    }
  }
  db_finalize(s);
  return rc; /* DB_DONE (0): none; 1: read; <0 */
}

static int
insert_key_setting(db_conn *c, const unsigned char *key, size_t len, berth_error **err)
{
  db_stmt *s = NULL;
  if (db_prepare(c, "INSERT INTO settings (key, value) VALUES ('" KEY_SETTING "', ?) ON CONFLICT (key) DO NOTHING", &s,
                 err)
      < 0)
    return BERTH_EINTERNAL;
  db_bind_blob(s, 1, key, len);
  return db_run(s, NULL, err);
}

static int
load_key_setting(berth_store *st, berth_error **err)
{
  snprintf(st->key_origin, sizeof st->key_origin, "the secret key in the settings of store %s", db_label(st->db));
  int rc = read_key_setting(st, err);
  if (rc != 0)
    return rc < 0 ? berth_error_wrap(err, "read the secret key") : 0;
  /* none yet: offer one; whoever inserted first wins, and everyone reads the winner back */
  unsigned char key[crypto_secretbox_KEYBYTES];
  crypto_secretbox_keygen(key);
  rc = insert_key_setting(st->db, key, sizeof key, err);
  sodium_memzero(key, sizeof key);
  if (rc == 0)
    rc = read_key_setting(st, err);
  if (rc == 0)
    rc = berth_error_set(err, BERTH_EINTERNAL, "store %s: the secret key was not saved", db_label(st->db));
  return rc < 0 ? berth_error_wrap(err, "create the secret key") : 0;
}

int
store_key_load(berth_store *st, berth_error **err)
{
  if (st->have_key)
    return 0;
  if (!store_is_sqlite(st))
    return load_key_setting(st, err);
  return load_key_file(st, true, err) < 0 ? BERTH_EINTERNAL : 0;
}

int
store_key_copy(berth_store *st, db_conn *to, berth_error **err)
{
  int rc = st->have_key ? 1 : !store_is_sqlite(st) ? read_key_setting(st, err) : load_key_file(st, false, err);
  if (rc <= 0) /* the settings themselves are copied as a table; a SQLite store that never sealed has no key */
    return rc < 0 ? berth_error_wrap(err, "copy the secret key") : 0;
  return insert_key_setting(to, st->key, sizeof st->key, err) < 0 ? berth_error_wrap(err, "copy the secret key") : 0;
}

const char *
store_key_origin(berth_store *st)
{
  return st->key_origin[0] ? st->key_origin : "the store's secret key";
}
