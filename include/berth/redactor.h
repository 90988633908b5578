/* Streaming secret redactor: every byte that leaves berth (task output, stored logs, API responses, audit records,
 * berth's own messages) passes through a berth_redactor built on a shared berth_secrets set.
 *
 * A berth_secrets holds literal secret values (each with its derived forms: base64 at the 3 alignments, URL-encoded,
 * JSON-escaped, long-enough lines of a multi-line value) and named PCRE2 patterns (admin ones plus a built-in set of
 * well-known token formats, on by default). A berth_redactor filters ONE output stream (stdout and stderr get one
 * each); several redactors may share one berth_secrets.
 *
 * Output: every match is replaced by `***`; overlapping, nested and touching matches become a single `***`;
 * every other byte passes unchanged (binary, invalid UTF-8, CRLF). The output does not depend on how the input is
 * chunked. See docs/security.md for the guarantees, caps and known limits.
 *
 * Threads: none of this is thread-safe. A berth_secrets and all redactors sharing it must be used from one thread
 * (the one that pumps the task's streams); no locks are taken. Redactors notice changes to the shared set (from
 * berth_secrets_add_* or from an `::add-mask::` line seen by a sibling redactor) through a generation counter and
 * rebuild their matcher state lazily on their next feed. */
#ifndef BERTH_REDACTOR_H
#define BERTH_REDACTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/error.h"

#define BERTH_REDACT_REPLACEMENT "***"
/* Default minimum length of a secret value; shorter values are not masked (the caller warns, naming the variable). */
#define BERTH_REDACT_DEFAULT_MIN_LEN 4
/* Largest secret value accepted (bytes). Longer values are refused with BERTH_EINVAL. */
#define BERTH_REDACT_MAX_VALUE (64 * 1024)
/* Patterns see a line of at most this many bytes; a longer line is cut into pieces of this size for patterns only
 * (literal values are matched across any length). */
#define BERTH_REDACT_LINE_MAX (64 * 1024)

typedef struct berth_secrets berth_secrets;

/* Creates an empty set with the built-in patterns on. min_len 0 means BERTH_REDACT_DEFAULT_MIN_LEN.
 * The caller owns the result (berth_secrets_free). It must outlive every redactor built on it. */
berth_secrets *berth_secrets_new(size_t min_len, berth_error **err);
void berth_secrets_free(berth_secrets *s);
/* Some value that should be in the set is not known (a stored secret that cannot be decrypted): a text that only this
 * set would mask must not be shown (the callers show BERTH_NOT_SHOWN instead). */
void berth_secrets_mark_incomplete(berth_secrets *s);
bool berth_secrets_incomplete(const berth_secrets *s);

/* Adds a secret value; `name` (e.g. the variable name) is used only in error messages, never the value.
 * Returns 0 if added (or already present), 1 if not masked because it is shorter than min_len (the caller warns,
 * naming the variable, never the value), <0 on error (too long: BERTH_EINVAL; out of memory).
 * Also registers the base64 forms (3 alignments, the part of the encoding that does not depend on neighbouring
 * bytes), the URL-encoded and JSON-escaped forms, the value without a trailing newline, and for a multi-line value
 * each line that is long enough on its own (at least max(min_len, 8) bytes after trimming and not a PEM
 * `-----BEGIN/END` armour line). The value is copied. */
int berth_secrets_add_value(berth_secrets *s, const char *name, const char *value, size_t len, berth_error **err);

/* Adds an admin pattern. It is compiled in byte mode (no UTF) and JIT-compiled when the platform supports it; a bad
 * pattern gives BERTH_EINVAL with a message naming the pattern and the offset of the error. If the pattern has a
 * named group `mask`, only that group is replaced; otherwise the whole match is. Patterns match within one line
 * (see BERTH_REDACT_LINE_MAX). A line is held back from where a match of a pattern could still begin, until the
 * pattern cannot match there any more or the line ends. */
int berth_secrets_add_pattern(berth_secrets *s, const char *name, const char *pcre2_pattern, berth_error **err);

/* Turns the built-in patterns on or off (on by default): AWS access key ids, GitHub, GitLab and Slack tokens, JWTs,
 * PEM private key blocks (multi-line), passwords in URLs and `password=`/`token=`/`secret=`-style parameters. */
int berth_secrets_use_builtin(berth_secrets *s, bool on, berth_error **err);

/* Number of distinct literal strings (values and derived forms) in the set; for tests and diagnostics. */
size_t berth_secrets_literal_count(const berth_secrets *s);

/* Receives redacted output. `data` is valid only during the call. Return <0 to abort the feed/flush. */
typedef int (*berth_redact_sink)(void *userdata, const char *data, size_t len);

typedef struct berth_redactor berth_redactor;

/* One per output stream. The caller owns the result (berth_redactor_free). `s` is borrowed. */
berth_redactor *berth_redactor_new(berth_secrets *s, berth_redact_sink sink, void *userdata, berth_error **err);

/* Whether `::add-mask::VALUE` lines in this stream add VALUE to the shared set (default: on). Off for text that is
 * not task output (berth's own messages, audit arguments): the lines then pass as any other text. */
void berth_redactor_set_add_mask(berth_redactor *r, bool on);

/* Filters `len` bytes. Only bytes that could still become part of a secret are held back: the longest suffix that
 * is the beginning of a literal form or of a built-in pattern's anchor, and, in the current line, from the start of
 * a pattern match that more bytes could complete (PCRE2 hard partial matching), an `::add-mask::` line or an open
 * PEM block. Every other byte reaches the sink during this call. Returns 0, or <0 if the sink aborted or memory ran
 * out. */
int berth_redactor_feed(berth_redactor *r, const char *data, size_t len, berth_error **err);

/* End of stream: emits everything held back. The redactor may then be fed a new stream. */
int berth_redactor_flush(berth_redactor *r, berth_error **err);

/* How many times the redactor wrote `***` in place of secret bytes since it was made, over every stream it was fed
 * (overlapping or touching matches are one); counted once emitted. */
uint64_t berth_redactor_redactions(const berth_redactor *r);

void berth_redactor_free(berth_redactor *r);

/* One-shot for short strings (error messages, audit args, JSON responses). `::add-mask::` lines are not honoured.
 * Returns a new NUL-terminated string the caller frees (length in *out_len if not NULL), or NULL if out of memory. */
char *berth_secrets_redact_string(berth_secrets *s, const char *in, size_t len, size_t *out_len);
/* What is shown in place of a text that could not be masked (never the text itself). */
#define BERTH_NOT_SHOWN "(not shown: it could not be masked)"

/* A reorder window in front of several streams' redactors (a task's stdout and stderr). The Docker daemon copies
 * the two streams independently, so output printed just after an `::add-mask::` line on one stream can arrive before
 * it on the other. The window registers `::add-mask::` values in the shared set the moment their line arrives, and
 * hands each piece to its stream's redactor only `delay_ms` later (in arrival order), so such a value also covers
 * what the sibling stream printed at the same moment. At most 8 MiB wait; past that the oldest pieces leave early.
 * The redactors and the set are borrowed; same threading rules as above. */
typedef struct berth_outwin berth_outwin;
berth_outwin *berth_outwin_new(berth_secrets *s, berth_redactor *const *rs, size_t n, int64_t delay_ms,
                               berth_error **err);
/* Queues `len` bytes of stream index `stream` (0 .. n-1) that arrived at now_ms. */
int berth_outwin_push(berth_outwin *w, size_t stream, const char *data, size_t len, int64_t now_ms, berth_error **err);
/* Feeds every piece older than delay_ms (all of them when `all`) to its redactor. Returns how many, or <0. */
int berth_outwin_release(berth_outwin *w, int64_t now_ms, bool all, berth_error **err);
void berth_outwin_free(berth_outwin *w);

#endif
