/* The stream filter. Positions are absolute stream offsets (uint64_t). The redactor keeps a history window
 * [base, fed) of the input and works in three steps per piece of input:
 *   1. scan: a Vectorscan block scan of the new bytes plus the (longest literal - 1) bytes before them finds every
 *      literal match ending in the new bytes (so the matches do not depend on chunking) and every built-in anchor;
 *   2. segments: lines (cut every BERTH_REDACT_LINE_MAX bytes) are walked; a completed line is handed to the
 *      patterns its anchors flagged, to the admin patterns, to the PEM block tracker and to `::add-mask::`;
 *   3. emit: matches are merged into intervals (overlapping or touching ones become one) and bytes are emitted up
 *      to the first position a future match could still start at: the longest suffix that is the beginning of a
 *      literal or an anchor (a prefix table, not a fixed window), the start of a partial pattern match in the open
 *      line, an open `::add-mask::` line or PEM block. A byte nothing can continue leaves with the write that brought
 *      it.
 * Every decision depends only on stream positions and content, never on where a chunk ended. */
#include <stdlib.h>
#include <string.h>

#include "berth/buf.h"
#include "redact/redact_int.h"

#define PIECE (64 * 1024) /* input is processed in pieces of at most this size, bounding the window */
#define ADD_MASK "::add-mask::"
#define ADD_MASK_LEN (sizeof ADD_MASK - 1)

typedef struct {
  uint64_t s, e;
} interval;

typedef struct {
  uint64_t end;
  unsigned pat;
} anchor_hit;

enum { AM_UNDECIDED = 0, AM_YES, AM_NO };

struct berth_redactor {
  berth_secrets *s;
  berth_redact_sink sink;
  void *userdata;
  bool add_mask;

  /* What this redactor knows of the shared set. */
  unsigned long gen;
  size_t nknown;
  uint64_t *from; /* per literal: matches starting before this position are ignored (`::add-mask::` values) */
  size_t from_cap;
  hs_database_t *db;
  hs_scratch_t *scratch;
  size_t maxlen;

  char *hist;
  size_t hist_cap;
  uint64_t base, fed, scanned;

  uint64_t emitted, red_end;
  bool in_red;         /* the last thing emitted was `***`, covering up to red_end */
  uint64_t redactions; /* `***` written since the redactor was made */
  interval *ivs;
  size_t iv_head, iv_n, iv_cap;

  uint64_t seg_start;
  bool seg_line_start; /* the segment starts a line (not the continuation of a cut long line) */
  uint32_t seg_flags;  /* built-in patterns whose anchors occur in the segment */
  int seg_am;
  bool am_rest;  /* masking the rest of an over-long `::add-mask::` line */
  bool pem_open; /* inside a PEM private key block, masked up to pem_end */
  uint64_t pem_end;

  anchor_hit *hits;
  size_t nhits, hits_cap;
  /* Scan callback context. */
  uint64_t win_start, report_after;
  size_t id_min;
  bool want_anchors;
  bool oom;
  /* `::add-mask::` values added while processing the current piece: their matches from supp_from are searched for
   * once the piece is walked. */
  uint64_t supp_from;
  size_t supp_id;
};

static int
iv_add(berth_redactor *r, uint64_t s, uint64_t e)
{
  if (e <= s)
    return 0;
  if (r->iv_head > 0 && r->iv_head * 2 >= r->iv_n) {
    memmove(r->ivs, r->ivs + r->iv_head, (r->iv_n - r->iv_head) * sizeof *r->ivs);
    r->iv_n -= r->iv_head;
    r->iv_head = 0;
  }
  size_t i = r->iv_n;
  while (i > r->iv_head && r->ivs[i - 1].s > s)
    i--;
  if (i > r->iv_head && r->ivs[i - 1].e >= s) {
    i--;
    if (e > r->ivs[i].e)
      r->ivs[i].e = e;
  } else {
    if (r->iv_n == r->iv_cap) {
      size_t cap = r->iv_cap ? r->iv_cap * 2 : 64;
      interval *n = realloc(r->ivs, cap * sizeof *n);
      if (n == NULL)
        return -1;
      r->ivs = n;
      r->iv_cap = cap;
    }
    memmove(r->ivs + i + 1, r->ivs + i, (r->iv_n - i) * sizeof *r->ivs);
    r->ivs[i] = (interval){ s, e };
    r->iv_n++;
  }
  size_t j = i + 1;
  while (j < r->iv_n && r->ivs[j].s <= r->ivs[i].e) {
    if (r->ivs[j].e > r->ivs[i].e)
      r->ivs[i].e = r->ivs[j].e;
    j++;
  }
  if (j > i + 1) {
    memmove(r->ivs + i + 1, r->ivs + j, (r->iv_n - j) * sizeof *r->ivs);
    r->iv_n -= j - (i + 1);
  }
  return 0;
}

static int
on_match(unsigned id, unsigned long long from, unsigned long long to, unsigned flags, void *ctx)
{
  berth_redactor *r = ctx;
  (void) from;
  (void) flags;
  uint64_t end = r->win_start + to;
  if (end <= r->report_after)
    return 0;
  if (id & REDACT_ANCHOR_BIT) {
    if (!r->want_anchors)
      return 0; /* supplementary scans look for new literals only */
    if (r->nhits == r->hits_cap) {
      size_t cap = r->hits_cap ? r->hits_cap * 2 : 64;
      anchor_hit *h = realloc(r->hits, cap * sizeof *h);
      if (h == NULL) {
        r->oom = true;
        return 1;
      }
      r->hits = h;
      r->hits_cap = cap;
    }
    r->hits[r->nhits++] = (anchor_hit){ end, id & ~REDACT_ANCHOR_BIT };
    return 0;
  }
  if (id < r->id_min || id >= r->nknown)
    return 0;
  if (end < r->s->lit_len[id])
    return 0; /* only possible for a literal whose leading NULs would lie before the stream */
  uint64_t start = end - r->s->lit_len[id];
  if (start < r->from[id])
    return 0;
  if (r->s->lit[id][0] == 0 || r->s->lit_len[id] > REDACT_HS_LIT_MAX) {
    size_t off = redact_lit_off(r->s, id);
    if (start < r->base || memcmp(r->hist + (start - r->base), r->s->lit[id], off) != 0)
      return 0;
  }
  if (iv_add(r, start, end) < 0) {
    r->oom = true;
    return 1;
  }
  return 0;
}

static int
scan(berth_redactor *r, uint64_t ws, uint64_t we, uint64_t report_after, size_t id_min, berth_error **err)
{
  if (r->db == NULL || we <= ws)
    return 0;
  r->want_anchors = id_min == SIZE_MAX;
  if (id_min == SIZE_MAX)
    id_min = 0;
  r->win_start = ws;
  r->report_after = report_after;
  r->id_min = id_min;
  hs_error_t rc = hs_scan(r->db, r->hist + (ws - r->base), (unsigned) (we - ws), 0, r->scratch, on_match, r);
  if (r->oom) {
    r->oom = false;
    return berth_error_set(err, BERTH_EINTERNAL, "redact output: out of memory");
  }
  if (rc != HS_SUCCESS)
    return berth_error_set(err, BERTH_EINTERNAL, "redact output: scan failed (vectorscan error %d)", (int) rc);
  return 0;
}

static int
ensure_hist(berth_redactor *r, size_t need)
{
  if (need <= r->hist_cap)
    return 0;
  size_t cap = r->hist_cap ? r->hist_cap : PIECE;
  while (cap < need)
    cap *= 2;
  char *h = realloc(r->hist, cap);
  if (h == NULL)
    return -1;
  r->hist = h;
  r->hist_cap = cap;
  return 0;
}

/* Brings the matcher up to the set's generation. Literals this redactor had not seen apply from position 0 (they
 * were added elsewhere: from now on, and to every byte still held back). */
static int
sync_set(berth_redactor *r, uint64_t new_from, berth_error **err)
{
  if (r->gen == r->s->gen)
    return 0;
  berth_secrets *s = r->s;
  int rc = redact_secrets_db(s, &r->db, &r->maxlen, err);
  if (rc < 0)
    return rc;
  if (r->db != NULL && hs_alloc_scratch(r->db, &r->scratch) != HS_SUCCESS)
    return berth_error_set(err, BERTH_EINTERNAL, "redact output: cannot allocate matcher scratch");
  if (s->nlits > r->from_cap) {
    size_t cap = r->from_cap ? r->from_cap : 64;
    while (cap < s->nlits)
      cap *= 2;
    uint64_t *f = realloc(r->from, cap * sizeof *f);
    if (f == NULL)
      return berth_error_set(err, BERTH_EINTERNAL, "redact output: out of memory");
    r->from = f;
    r->from_cap = cap;
  }
  for (size_t i = r->nknown; i < s->nlits; i++)
    r->from[i] = new_from;
  size_t old = r->nknown;
  r->nknown = s->nlits;
  r->gen = s->gen;
  /* Held-back bytes are searched again for the new literals (clipped to what was not emitted yet). */
  if (new_from == 0 && old < r->nknown && r->fed > r->base)
    return scan(r, r->base, r->fed, 0, old, err);
  return 0;
}

static uint64_t
trim_newline(const char *p, uint64_t ss, uint64_t se)
{
  if (se > ss && p[se - ss - 1] == '\n')
    se--;
  if (se > ss && p[se - ss - 1] == '\r')
    se--;
  return se;
}

/* Runs one pattern over a segment and records what it masks. */
static int
run_pattern(berth_redactor *r, const redact_pattern *pat, uint64_t ss, uint64_t se)
{
  const char *subj = r->hist + (ss - r->base);
  size_t len = (size_t) (se - ss), off = 0;
  while (off <= len) {
    int rc = pcre2_match(pat->code, (PCRE2_SPTR) subj, len, off, 0, r->s->md, r->s->mctx);
    if (rc <= 0)
      break; /* no match, or a match/depth limit: best effort, documented */
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->s->md);
    PCRE2_SIZE gs = ov[2 * pat->mask_group], ge = ov[2 * pat->mask_group + 1];
    if (gs != PCRE2_UNSET && ge > gs && iv_add(r, ss + gs, ss + ge) < 0)
      return -1;
    off = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
  }
  return 0;
}

/* Finds the first match of `code` in [off, len) of the segment; returns 1 and sets *ms, *me on a match. */
static int
find(berth_redactor *r, pcre2_code *code, uint64_t ss, uint64_t se, size_t off, size_t *ms, size_t *me)
{
  const char *subj = r->hist + (ss - r->base);
  size_t len = (size_t) (se - ss);
  if (off > len || pcre2_match(code, (PCRE2_SPTR) subj, len, off, 0, r->s->md, r->s->mctx) <= 0)
    return 0;
  PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->s->md);
  *ms = ov[0];
  *me = ov[1];
  return 1;
}

/* A line that can be part of a PEM body: base64, an RFC 1421 header, or blank. */
static bool
pem_body_line(const char *p, size_t len)
{
  while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r' || p[len - 1] == ' ' || p[len - 1] == '\t'))
    len--;
  while (len > 0 && (*p == ' ' || *p == '\t')) {
    p++;
    len--;
  }
  if ((len >= 10 && memcmp(p, "Proc-Type:", 10) == 0) || (len >= 9 && memcmp(p, "DEK-Info:", 9) == 0)
      || (len >= 8 && memcmp(p, "Comment:", 8) == 0))
    return true;
  for (size_t i = 0; i < len; i++) {
    char c = p[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/'
          || c == '='))
      return false;
  }
  return true;
}

/* BEGIN lines: mask from the marker to the END marker on the same line, or open a multi-line block. */
static int
pem_begin(berth_redactor *r, uint64_t ss, uint64_t se)
{
  berth_secrets *s = r->s;
  size_t off = 0, bs, be, es, ee;
  while (find(r, s->builtin[REDACT_PAT_PEM].code, ss, se, off, &bs, &be)) {
    if (find(r, s->pem_end, ss, se, be, &es, &ee)) {
      if (iv_add(r, ss + bs, ss + ee) < 0)
        return -1;
      off = ee;
      continue;
    }
    uint64_t te = trim_newline(r->hist + (ss - r->base), ss, se);
    if (iv_add(r, ss + bs, te) < 0)
      return -1;
    r->pem_open = true;
    r->pem_end = te;
    break;
  }
  return 0;
}

/* A line inside an open PEM block. Returns 1 if the line was consumed by the block. */
static int
pem_continue(berth_redactor *r, uint64_t ss, uint64_t se)
{
  size_t es, ee;
  const char *p = r->hist + (ss - r->base);
  if (find(r, r->s->pem_end, ss, se, 0, &es, &ee)) {
    r->pem_open = false;
    return iv_add(r, r->pem_end, ss + ee) < 0 ? -1 : 0;
  }
  if (pem_body_line(p, (size_t) (se - ss))) {
    uint64_t te = trim_newline(p, ss, se);
    if (iv_add(r, r->pem_end, te > r->pem_end ? te : r->pem_end) < 0)
      return -1;
    if (te > r->pem_end)
      r->pem_end = te;
    return 1;
  }
  r->pem_open = false; /* not key material: the block ended without its END line */
  return 0;
}

static int
add_mask_line(berth_redactor *r, uint64_t ss, uint64_t se, bool cut, berth_error **err)
{
  const char *p = r->hist + (ss - r->base);
  uint64_t vs = ss + ADD_MASK_LEN, ve = trim_newline(p, ss, se);
  if (cut) {
    /* Longer than a line may be: never shown, never registered (documented limit). */
    r->am_rest = true;
    return iv_add(r, vs, se) < 0 ? berth_error_set(err, BERTH_EINTERNAL, "redact output: out of memory") : 0;
  }
  while (vs < ve && (p[vs - ss] == ' ' || p[vs - ss] == '\t'))
    vs++;
  while (ve > vs && (p[ve - ss - 1] == ' ' || p[ve - ss - 1] == '\t'))
    ve--;
  if (ve <= vs)
    return 0;
  if (iv_add(r, vs, ve) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "redact output: out of memory");
  size_t before = r->s->nlits;
  berth_error *aerr = NULL;
  int rc = berth_secrets_add_value(r->s, "::add-mask::", p + (vs - ss), (size_t) (ve - vs), &aerr);
  if (rc < 0 && rc != BERTH_EINVAL) {
    berth_error_free(aerr);
    return berth_error_set(err, BERTH_EINTERNAL, "redact output: out of memory");
  }
  berth_error_free(aerr);
  if (r->s->nlits > before) {
    /* The new value applies from the start of this line on, in this stream; whatever chunking. */
    if (sync_set(r, ss, err) < 0)
      return -1;
    if (ss < r->supp_from)
      r->supp_from = ss;
    if (before < r->supp_id)
      r->supp_id = before;
  }
  return 0;
}

/* A segment is complete (a line, a cut piece of a long line, or the tail at end of stream). */
static int
segment_done(berth_redactor *r, uint64_t ss, uint64_t se, bool nl, bool cut, berth_error **err)
{
  berth_secrets *s = r->s;
  if (r->am_rest) {
    r->am_rest = !nl;
    if (iv_add(r, ss, trim_newline(r->hist + (ss - r->base), ss, se)) < 0)
      goto oom;
    return 0;
  }
  if (r->seg_am == AM_YES)
    return add_mask_line(r, ss, se, cut, err);
  if (r->pem_open) {
    int rc = pem_continue(r, ss, se);
    if (rc < 0)
      goto oom;
    if (rc == 1)
      return 0;
  }
  if (r->seg_flags != 0 && s->use_builtin) {
    if ((r->seg_flags & (1u << REDACT_PAT_PEM)) && !r->pem_open && pem_begin(r, ss, se) < 0)
      goto oom;
    for (size_t i = 1; i < s->nbuiltin; i++)
      if ((r->seg_flags & (1u << i)) && run_pattern(r, &s->builtin[i], ss, se) < 0)
        goto oom;
  }
  for (size_t i = 0; i < s->nadmin; i++)
    if (run_pattern(r, &s->admin[i], ss, se) < 0)
      goto oom;
  return 0;
oom:
  return berth_error_set(err, BERTH_EINTERNAL, "redact output: out of memory");
}

static void
check_add_mask(berth_redactor *r, uint64_t upto)
{
  if (r->seg_am != AM_UNDECIDED)
    return;
  if (!r->add_mask || !r->seg_line_start) {
    r->seg_am = AM_NO;
    return;
  }
  size_t have = (size_t) (upto - r->seg_start);
  size_t n = have < ADD_MASK_LEN ? have : ADD_MASK_LEN;
  if (memcmp(r->hist + (r->seg_start - r->base), ADD_MASK, n) != 0)
    r->seg_am = AM_NO;
  else if (n == ADD_MASK_LEN)
    r->seg_am = AM_YES;
}

/* Walks the segments of [from, r->fed). */
static int
walk(berth_redactor *r, uint64_t from, berth_error **err)
{
  size_t hi = 0;
  uint64_t pos = from;
  while (pos < r->fed) {
    uint64_t room = BERTH_REDACT_LINE_MAX - (pos - r->seg_start);
    uint64_t avail = r->fed - pos, n = avail < room ? avail : room;
    const char *p = r->hist + (pos - r->base);
    const char *nlp = memchr(p, '\n', (size_t) n);
    uint64_t end = nlp ? pos + (uint64_t) (nlp - p) + 1 : pos + n;
    bool cut = !nlp && end - r->seg_start == BERTH_REDACT_LINE_MAX;
    check_add_mask(r, end);
    while (hi < r->nhits && r->hits[hi].end - 1 < end)
      r->seg_flags |= 1u << r->hits[hi++].pat;
    if (nlp || cut) {
      if (segment_done(r, r->seg_start, end, nlp != NULL, cut, err) < 0)
        return -1;
      r->seg_start = end;
      r->seg_line_start = nlp != NULL;
      r->seg_flags = 0;
      r->seg_am = AM_UNDECIDED;
    }
    pos = end;
  }
  r->nhits = 0;
  return 0;
}

static int
emit(berth_redactor *r, uint64_t lim, berth_error **err)
{
  while (r->emitted < lim) {
    while (r->iv_head < r->iv_n && r->ivs[r->iv_head].s <= r->emitted) {
      interval iv = r->ivs[r->iv_head++];
      if (r->in_red && iv.s <= r->red_end) {
        if (iv.e > r->red_end)
          r->red_end = iv.e;
      } else if (iv.e > r->emitted) {
        if (r->sink(r->userdata, BERTH_REDACT_REPLACEMENT, sizeof BERTH_REDACT_REPLACEMENT - 1) < 0)
          goto aborted;
        r->redactions++;
        r->in_red = true;
        r->red_end = iv.e;
      }
    }
    if (r->in_red && r->emitted < r->red_end) {
      r->emitted = r->red_end < lim ? r->red_end : lim;
      continue;
    }
    uint64_t stop = lim;
    if (r->iv_head < r->iv_n && r->ivs[r->iv_head].s < stop)
      stop = r->ivs[r->iv_head].s;
    if (stop > r->emitted) {
      if (r->sink(r->userdata, r->hist + (r->emitted - r->base), (size_t) (stop - r->emitted)) < 0)
        goto aborted;
      r->in_red = false;
      r->emitted = stop;
    }
  }
  return 0;
aborted:
  return berth_error_set(err, BERTH_EINTERNAL, "redact output: the output sink failed");
}

/* One pattern over the open segment [ss, se), in hard partial mode: a match that reaches the end of what was seen
 * could still grow, so it is held from its start; a complete match that stops before the end is final and masked
 * now (the completed line finds it again). `whole`: hold from any match's start (the PEM block decides at the end of
 * the line). Lowers *hold to the first position the pattern may still cover. */
static int
pattern_hold(berth_redactor *r, const redact_pattern *pat, bool whole, uint64_t ss, uint64_t se, uint64_t *hold)
{
  const char *subj = r->hist + (ss - r->base);
  size_t len = (size_t) (se - ss), off = 0;
  while (off <= len && ss + off < *hold) {
    int rc = pcre2_match(pat->code, (PCRE2_SPTR) subj, len, off, PCRE2_PARTIAL_HARD, r->s->md, r->s->mctx);
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->s->md);
    if (rc == PCRE2_ERROR_PARTIAL || (rc > 0 && whole)) {
      if (ss + ov[0] < *hold)
        *hold = ss + ov[0];
      return 0;
    }
    if (rc == PCRE2_ERROR_NOMATCH)
      return 0;
    if (rc <= 0) { /* a match or depth limit: keep the line back, as the completed line decides */
      *hold = ss;
      return 0;
    }
    PCRE2_SIZE gs = ov[2 * pat->mask_group], ge = ov[2 * pat->mask_group + 1];
    if (gs != PCRE2_UNSET && ge > gs && iv_add(r, ss + gs, ss + ge) < 0)
      return -1;
    off = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
  }
  return 0;
}

/* The first position that a match not seen yet could still cover: the longest suffix that could begin a literal or
 * an anchor, the open line while a pattern could still match in it (from where that match would start), a line
 * that may be `::add-mask::`, an open PEM block. Every byte before it can never be part of a match. */
static int
emit_limit(berth_redactor *r, uint64_t *out, berth_error **err)
{
  berth_secrets *s = r->s;
  uint64_t from = r->emitted > r->base ? r->emitted : r->base;
  uint64_t lim = r->fed - redact_hold_len(s, r->hist + (from - r->base), (size_t) (r->fed - from));
  uint64_t ss = r->seg_start, se = r->fed;
  if (ss < se) {
    if (r->am_rest || r->seg_am != AM_NO) {
      if (ss < lim)
        lim = ss;
    } else {
      for (size_t i = 0; s->use_builtin && r->seg_flags != 0 && i < s->nbuiltin; i++)
        if ((r->seg_flags & (1u << i)) && pattern_hold(r, &s->builtin[i], i == REDACT_PAT_PEM, ss, se, &lim) < 0)
          goto oom;
      for (size_t i = 0; i < s->nadmin; i++)
        if (pattern_hold(r, &s->admin[i], false, ss, se, &lim) < 0)
          goto oom;
    }
  }
  if (r->pem_open && r->pem_end < lim)
    lim = r->pem_end;
  *out = lim;
  return 0;
oom:
  return berth_error_set(err, BERTH_EINTERNAL, "redact output: out of memory");
}

static int
process(berth_redactor *r, const char *data, size_t len, berth_error **err)
{
  /* Drop history nobody needs: before the emitted point, the current segment and the scan context. */
  uint64_t keep = r->emitted < r->seg_start ? r->emitted : r->seg_start;
  uint64_t ctx = r->scanned + 1 > r->maxlen ? r->scanned + 1 - r->maxlen : 0;
  if (ctx < keep)
    keep = ctx;
  if (keep < r->base)
    keep = r->base;
  size_t live = (size_t) (r->fed - keep);
  if (keep > r->base && (live + len > r->hist_cap || keep - r->base >= live)) {
    memmove(r->hist, r->hist + (keep - r->base), live);
    r->base = keep;
  }
  /* Structural bound: a line, the longest literal, one piece. Past this something is wrong; refuse to grow. */
  size_t hard = 2 * ((size_t) BERTH_REDACT_LINE_MAX + r->maxlen + PIECE);
  if ((size_t) (r->fed - r->base) + len > hard)
    return berth_error_set(err, BERTH_EINTERNAL, "redact output: held-back data exceeds %zu bytes", hard);
  if (ensure_hist(r, (size_t) (r->fed - r->base) + len) < 0)
    return berth_error_set(err, BERTH_EINTERNAL, "redact output: out of memory");
  memcpy(r->hist + (r->fed - r->base), data, len);
  uint64_t old = r->fed;
  r->fed += len;

  uint64_t ws = r->scanned + 1 > r->maxlen ? r->scanned + 1 - r->maxlen : 0;
  if (ws < r->base)
    ws = r->base;
  if (scan(r, ws, r->fed, r->scanned, SIZE_MAX, err) < 0) /* SIZE_MAX: all literals and the anchors */
    return -1;
  r->scanned = r->fed;
  r->supp_from = UINT64_MAX;
  r->supp_id = SIZE_MAX;
  if (walk(r, old, err) < 0)
    return -1;
  if (r->supp_id != SIZE_MAX && scan(r, r->supp_from, r->fed, 0, r->supp_id, err) < 0)
    return -1;
  uint64_t lim = r->emitted;
  if (emit_limit(r, &lim, err) < 0)
    return -1;
  return emit(r, lim, err);
}

berth_redactor *
berth_redactor_new(berth_secrets *s, berth_redact_sink sink, void *userdata, berth_error **err)
{
  berth_redactor *r = calloc(1, sizeof *r);
  if (r == NULL) {
    berth_error_set(err, BERTH_EINTERNAL, "create redactor: out of memory");
    return NULL;
  }
  r->s = s;
  r->sink = sink;
  r->userdata = userdata;
  r->add_mask = true;
  r->gen = 0; /* sets start at generation 1: the first feed compiles/fetches the matcher */
  r->seg_line_start = true;
  return r;
}

void
berth_redactor_set_add_mask(berth_redactor *r, bool on)
{
  r->add_mask = on;
}

int
berth_redactor_feed(berth_redactor *r, const char *data, size_t len, berth_error **err)
{
  while (len > 0) {
    if (sync_set(r, 0, err) < 0)
      return -1;
    size_t n = len < PIECE ? len : PIECE;
    if (process(r, data, n, err) < 0)
      return -1;
    data += n;
    len -= n;
  }
  return 0;
}

int
berth_redactor_flush(berth_redactor *r, berth_error **err)
{
  if (sync_set(r, 0, err) < 0)
    return -1;
  r->supp_from = UINT64_MAX;
  r->supp_id = SIZE_MAX;
  /* The unfinished last line is a line. */
  if (r->fed > r->seg_start) {
    check_add_mask(r, r->fed);
    if (segment_done(r, r->seg_start, r->fed, false, false, err) < 0)
      return -1;
  }
  if (r->supp_id != SIZE_MAX && scan(r, r->supp_from, r->fed, 0, r->supp_id, err) < 0)
    return -1;
  if (emit(r, r->fed, err) < 0)
    return -1;
  /* A new stream may follow: forget the old one's state (positions keep counting). */
  r->base = r->scanned = r->emitted = r->seg_start = r->fed;
  r->in_red = false;
  r->iv_head = r->iv_n = 0;
  r->seg_line_start = true;
  r->seg_flags = 0;
  r->seg_am = AM_UNDECIDED;
  r->am_rest = r->pem_open = false;
  for (size_t i = 0; i < r->nknown; i++)
    if (r->from[i] > r->fed)
      r->from[i] = r->fed;
  return 0;
}

uint64_t
berth_redactor_redactions(const berth_redactor *r)
{
  return r != NULL ? r->redactions : 0;
}

void
berth_redactor_free(berth_redactor *r)
{
  if (r == NULL)
    return;
  hs_free_scratch(r->scratch);
  free(r->from);
  free(r->hist);
  free(r->ivs);
  free(r->hits);
  free(r);
}

static int
buf_sink(void *userdata, const char *data, size_t len)
{
  return berth_buf_append(userdata, data, len);
}

char *
berth_secrets_redact_string(berth_secrets *s, const char *in, size_t len, size_t *out_len)
{
  berth_buf out;
  berth_buf_init(&out, SIZE_MAX / 2);
  berth_redactor *r = berth_redactor_new(s, buf_sink, &out, NULL);
  if (r == NULL)
    return NULL;
  berth_redactor_set_add_mask(r, false);
  berth_error *err = NULL;
  int rc = berth_redactor_feed(r, in, len, &err);
  if (rc == 0)
    rc = berth_redactor_flush(r, &err);
  berth_redactor_free(r);
  berth_error_free(err);
  if (rc < 0 || berth_buf_append(&out, "", 0) < 0) {
    berth_buf_free(&out);
    return NULL;
  }
  if (out_len != NULL)
    *out_len = out.len;
  return berth_buf_steal(&out);
}
