/* The workspace tar: a stack's project directory (plus its persisted state) streamed as a tar with bounded memory,
 * and the safe extractor used to bring persisted files back from a container.
 *
 * Producer: deterministic order (names sorted by bytes, depth-first, each directory before its contents), real
 * mtimes, pax-restricted format (plain ustar unless a name or link target needs a pax record), every entry owned by
 * opts.uid/opts.gid with no user or group names. Symlinks are stored, never followed; fifos, sockets and devices are
 * skipped with a warning; hard links are stored as independent files.
 *
 * Ownership: berth_ws_stream_open gives the caller a stream freed with berth_ws_stream_free; the opts strings are
 * copied, so the caller may free them right after open. Errors are returned in *err (caller frees). */
#ifndef BERTH_WORKSPACE_H
#define BERTH_WORKSPACE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "berth/error.h"

#define BERTH_WS_DEFAULT_MAX_BYTES (UINT64_C(2) << 30)
#define BERTH_WS_DEFAULT_MAX_ENTRIES UINT64_C(200000)

/* Receives one warning line (no trailing newline), e.g. "skipping fifo `x/p` (...)". */
typedef void (*berth_ws_warn_fn)(void *userdata, const char *msg);

typedef struct berth_ws_opts {
  const char *project_dir;    /* host dir streamed as the workspace; NULL = empty workspace */
  const char *prefix;         /* path of the workspace root inside the archive, e.g. "mnt/workspace/source". Every
                                 directory of the prefix is emitted except its first component ("mnt", which the
                                 image owns); a one-component prefix is emitted as it is the workspace root. */
  const char *overlay_dir;    /* NULL or a host dir (persisted stack state) whose files are overlaid ... A missing
                                 overlay_dir counts as empty (a stack with no state yet). */
  const char *overlay_subdir; /* ... at prefix/<overlay_subdir>/ (NULL = at prefix); an overlaid path replaces the
                                 project file of the same path (the project file is then NOT emitted); an overlaid
                                 directory is merged with the project directory of the same path. */
  unsigned uid, gid;          /* owner written into every entry (so the container user owns its workspace) */
  uint64_t max_bytes;         /* cap on total file bytes (0 = BERTH_WS_DEFAULT_MAX_BYTES) */
  uint64_t max_entries;       /* cap on entry count, prefix dirs excluded (0 = BERTH_WS_DEFAULT_MAX_ENTRIES) */
  berth_ws_warn_fn warn;      /* NULL = warnings dropped */
  void *warn_userdata;
} berth_ws_opts;

typedef struct berth_ws_stream berth_ws_stream;

/* Validates project_dir (missing / not a dir / unreadable -> one clear line, BERTH_EINVAL) and scans the whole tree
 * first, so that a workspace over a cap, or holding an unreadable file or directory, fails HERE, before any byte is
 * uploaded ("workspace `/p` has 250001 entries, over the cap of 200000"). Warnings about skipped special files are
 * reported during this scan. Returns 0 and sets *out (caller frees with berth_ws_stream_free). */
int berth_ws_stream_open(const berth_ws_opts *o, berth_ws_stream **out, berth_error **err);

/* Pull-style producer (usable directly from a libcurl CURLOPT_READFUNCTION): fills up to len bytes of the tar and
 * returns the count, 0 at the end, <0 on error with *err set (every later call fails the same way). Memory stays
 * bounded whatever the workspace size: a small buffer refilled entry by entry, files read 64 KiB at a time.
 * A file that vanishes after the scan is skipped with a warning; one that shrinks while streamed is padded with
 * zeros, one that grows is cut at the size in its header (both warned), so the tar is never corrupt. */
ssize_t berth_ws_stream_read(berth_ws_stream *s, char *buf, size_t len, berth_error **err);

void berth_ws_stream_free(berth_ws_stream *s);

/* Totals found by the scan in berth_ws_stream_open (entries exclude the prefix dirs; bytes are regular-file bytes). */
uint64_t berth_ws_stream_entries(const berth_ws_stream *s);
uint64_t berth_ws_stream_bytes(const berth_ws_stream *s);

/* Safe extraction of an uncompressed tar held in memory (e.g. a persisted file fetched from a container with GET
 * archive) into the existing directory dest_dir: regular files, directories and symlinks only (anything else,
 * including hard links, is refused). Refuses absolute paths, ".." components, symlinks whose target is absolute or
 * climbs out of dest_dir, entries reaching through a symlink, and file sizes making the total exceed max_bytes
 * (0 = BERTH_WS_DEFAULT_MAX_BYTES). Never follows a symlink while writing (every component opened O_NOFOLLOW
 * relative to dest_dir). Files are written 0600 (0700 when owner-executable), directories 0700, owned by the
 * calling process (never chowned to the archive's uid); file mtimes are kept. A later entry of the same path
 * replaces an earlier file or symlink. On failure dest_dir may hold a partial result: extract into a fresh
 * directory and rename it into place once this returns, so that no version is ever half-written.
 * Returns the number of regular files written, or <0 with *err set (BERTH_EINVAL for a refused or malformed
 * archive, BERTH_EINTERNAL for a local I/O failure). */
int berth_tar_extract_mem(const void *data, size_t len, const char *dest_dir, uint64_t max_bytes, berth_error **err);

#endif
