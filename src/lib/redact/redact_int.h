/* Private to src/lib/redact/: the secret set shared by redactors, and the compiled matcher. */
#ifndef BERTH_REDACT_INT_H
#define BERTH_REDACT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hs/hs.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "berth/redactor.h"

/* Vectorscan ids: a literal's id is its index; an anchor of a built-in pattern has this bit set plus the index. */
#define REDACT_ANCHOR_BIT 0x80000000u

/* Built-in pattern indexes (bits of a line's "anchor seen" mask). */
enum {
  REDACT_PAT_PEM = 0, /* PEM private key block: handled as a multi-line region, not one regex match */
  REDACT_PAT_COUNT_MAX = 32,
};

typedef struct redact_pattern {
  char *name;
  pcre2_code *code;
  uint32_t mask_group; /* 0: the whole match; else the group named `mask` */
} redact_pattern;

typedef struct redact_dbref redact_dbref;

struct berth_secrets {
  size_t min_len;
  bool incomplete; /* berth_secrets_mark_incomplete */

  /* Literals (values and derived forms), append-only: an index never changes, so redactors can remember which
   * literals they already know. */
  char **lit;
  size_t *lit_len;
  size_t nlits, lits_cap;
  size_t *hash; /* open addressing, index+1 (0 = empty) */
  size_t hash_cap;
  size_t max_lit_len;
  /* Every proper prefix of every literal, keyed by (hash, length): what the redactor must hold back at the end of
   * what it has seen (the longest suffix that is the beginning of some literal). Open addressing, grown at half. */
  struct redact_prefix *pfx;
  size_t pfx_n, pfx_cap;

  redact_pattern builtin[REDACT_PAT_COUNT_MAX];
  size_t nbuiltin;
  pcre2_code *pem_end; /* `-----END ... PRIVATE KEY-----` */
  bool use_builtin;
  redact_pattern *admin;
  size_t nadmin, admin_cap;
  pcre2_match_data *md;
  uint32_t md_pairs;
  pcre2_match_context *mctx;

  /* Bumped on every change; redactors compare it with what they last saw. */
  unsigned long gen;
  hs_database_t *db;    /* literals + built-in anchors, block mode; NULL when there is nothing to find */
  redact_dbref *dbref;  /* db's reference in the process's cache of compiled databases (secrets.c) */
  unsigned long db_gen; /* gen the db was built for */
  size_t db_maxlen;     /* longest string in db */
};

/* Vectorscan takes literals of at most 16000 bytes and none starting with NUL. A literal is compiled from offset
 * redact_lit_off() on (its last REDACT_HS_LIT_MAX bytes, without leading NULs); when that offset is not 0 the match
 * callback compares the bytes before it. Returns the literal's length when nothing is left to compile (a literal
 * ending in REDACT_HS_LIT_MAX NUL bytes; the raw value may not be all NUL). */
#define REDACT_HS_LIT_MAX 4096
static inline size_t
redact_lit_off(const berth_secrets *s, size_t i)
{
  size_t len = s->lit_len[i];
  size_t off = len > REDACT_HS_LIT_MAX ? len - REDACT_HS_LIT_MAX : 0;
  while (off < len && s->lit[i][off] == 0)
    off++;
  return off;
}

/* The length of the longest suffix of p[0, n) that a literal (or, with the built-in patterns on, an anchor) could
 * still complete: the bytes a redactor must hold back. 0 when no byte of the suffix can begin a match. */
size_t redact_hold_len(const berth_secrets *s, const char *p, size_t n);

/* Returns the matcher for the current generation (compiling it if needed). *db may be NULL (nothing to match). */
int redact_secrets_db(berth_secrets *s, hs_database_t **db, size_t *maxlen, berth_error **err);

#endif
