/* Task policies: parsing and validation of rule files, evaluation, and the policy table.
 *
 * Rules are stored as their validated JSON and compiled again at each evaluation: a handful of rules compile in
 * microseconds, and the store never holds a form that could drift from what the admin wrote. Evaluation fails
 * closed: a regex that hits its match limit is an error, never a silent "no match". */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <stdarg.h>
#include <fnmatch.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "berth/parse.h"
#include "berth/role.h"
#include "berth/cleanup.h"
#include "berth/policy.h"
#include "gov_int.h"

#define MAX_LIST 256
#define MAX_ITEM 256
#define MAX_MESSAGE 1024
#define MAX_REGEX 4096
#define MATCH_LIMIT 1000000

typedef struct str_list {
  char **v;
  size_t n;
} str_list;

typedef struct policy_rule {
  char *name;
  pcre2_code *command;
  str_list actors, roles, stacks, labels;
  int identity;      /* -1 any; 0 tasks without a workload identity; 1 tasks with one */
  unsigned weekdays; /* bit d = weekday d (0 = sunday); 0 = any */
  uint32_t hours;    /* bit h = hour h UTC; 0 = any */
  bool deny;
  char *message;
  cJSON *json; /* the rule as written (validated) */
} policy_rule;

typedef struct rule_vec {
  policy_rule *v;
  size_t n;
} rule_vec;

static void
list_clear(str_list *l)
{
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

static void
rule_clear(policy_rule *r)
{
  free(r->name);
  pcre2_code_free(r->command);
  list_clear(&r->actors);
  list_clear(&r->roles);
  list_clear(&r->stacks);
  list_clear(&r->labels);
  free(r->message);
  cJSON_Delete(r->json);
  memset(r, 0, sizeof *r);
}

static void
rules_clear(rule_vec *rv)
{
  for (size_t i = 0; i < rv->n; i++)
    rule_clear(&rv->v[i]);
  free(rv->v);
  rv->v = NULL;
  rv->n = 0;
}

void
berth_policy_result_clear(berth_policy_result *r)
{
  if (r == NULL)
    return;
  free(r->message);
  free(r->rule);
  for (size_t i = 0; i < r->n_matched; i++)
    free(r->matched[i]);
  free(r->matched);
  memset(r, 0, sizeof *r);
}

/* ---- parsing ---- */

static bool
valid_rule_name(const char *s)
{
  size_t n = strlen(s);
  if (n == 0 || n > 63 || !isalnum((unsigned char) s[0]))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!isalnum((unsigned char) s[i]) && !strchr("_.-", s[i]))
      return false;
  return true;
}

/* "policy rule `name`: ..." once the name is known, "policy rule #N: ..." before. */
static int rule_fail(berth_error **err, const char *name, size_t idx, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
rule_fail(berth_error **err, const char *name, size_t idx, const char *fmt, ...)
{
  char what[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (name)
    return berth_error_set(err, BERTH_EINVAL, "policy rule `%s`: %s", name, what);
  return berth_error_set(err, BERTH_EINVAL, "policy rule #%zu: %s", idx + 1, what);
}

static int
parse_list(const cJSON *obj, const char *field, str_list *out, const char *name, size_t idx, berth_error **err)
{
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, field);
  if (a == NULL)
    return 0;
  if (!cJSON_IsArray(a))
    return rule_fail(err, name, idx, "field `%s` must be an array of strings", field);
  int n = cJSON_GetArraySize(a);
  if (n == 0)
    return rule_fail(err, name, idx, "field `%s` is empty (leave it out to match everything)", field);
  if (n > MAX_LIST)
    return rule_fail(err, name, idx, "field `%s` has more than 256 entries", field);
  if ((out->v = calloc((size_t) n, sizeof *out->v)) == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  const cJSON *it;
  cJSON_ArrayForEach(it, a)
  {
    if (!cJSON_IsString(it) || it->valuestring[0] == '\0' || strlen(it->valuestring) > MAX_ITEM)
      return rule_fail(err, name, idx, "field `%s` must hold non-empty strings of at most 256 bytes", field);
    if ((out->v[out->n++] = strdup(it->valuestring)) == NULL)
      return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  return 0;
}

static const char *const weekday_names[7] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };
static const char *const weekday_long[7]
    = { "sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday" };

static int
parse_weekdays(const cJSON *w, policy_rule *r, const char *name, size_t idx, berth_error **err)
{
  str_list days = { NULL, 0 };
  int rc = parse_list(w, "weekdays", &days, name, idx, err);
  for (size_t i = 0; rc == 0 && i < days.n; i++) {
    int d = -1;
    for (int k = 0; k < 7 && d < 0; k++)
      if (strcasecmp(days.v[i], weekday_names[k]) == 0 || strcasecmp(days.v[i], weekday_long[k]) == 0)
        d = k;
    if (d < 0)
      rc = rule_fail(err, name, idx, "field `when.weekdays`: `%s` is not a weekday (mon, tue, ... sun)", days.v[i]);
    else
      r->weekdays |= 1u << d;
  }
  list_clear(&days);
  return rc;
}

/* "HH-HH": hours A:00 up to B:00, wrapping past midnight when A > B. */
static int
parse_hour_range(const char *s, uint32_t *mask)
{
  int a, b, end = 0;
  if (sscanf(s, "%2d-%2d%n", &a, &b, &end) != 2 || (size_t) end != strlen(s) || !isdigit((unsigned char) s[0]))
    return -1;
  if (a < 0 || a > 23 || b < 0 || b > 24 || a == b || (a == 0 && b == 0))
    return -1;
  int h = a;
  do {
    *mask |= 1u << h;
    h = (h + 1) % 24;
  } while (h != b % 24);
  return 0;
}

static int
parse_when(const cJSON *obj, policy_rule *r, const char *name, size_t idx, berth_error **err)
{
  const cJSON *w = cJSON_GetObjectItemCaseSensitive(obj, "when");
  if (w == NULL)
    return 0;
  if (!cJSON_IsObject(w))
    return rule_fail(err, name, idx, "field `when` must be an object {\"weekdays\": [...], \"hours\": \"09-17\"}");
  const cJSON *it;
  cJSON_ArrayForEach(it, w)
  {
    if (strcmp(it->string, "weekdays") != 0 && strcmp(it->string, "hours") != 0)
      return rule_fail(err, name, idx, "unknown field `when.%s` (known: weekdays, hours)", it->string);
  }
  int rc = parse_weekdays(w, r, name, idx, err);
  if (rc < 0)
    return rc;
  const cJSON *h = cJSON_GetObjectItemCaseSensitive(w, "hours");
  if (h == NULL)
    return 0;
  if (cJSON_IsString(h)) {
    if (parse_hour_range(h->valuestring, &r->hours) < 0)
      return rule_fail(err, name, idx,
                       "field `when.hours` must be \"HH-HH\" (UTC, e.g. \"09-17\") or an array of them");
    return 0;
  }
  if (!cJSON_IsArray(h) || cJSON_GetArraySize(h) == 0)
    return rule_fail(err, name, idx, "field `when.hours` must be \"HH-HH\" (UTC, e.g. \"09-17\") or an array of them");
  cJSON_ArrayForEach(it, h)
  {
    if (!cJSON_IsString(it) || parse_hour_range(it->valuestring, &r->hours) < 0)
      return rule_fail(err, name, idx,
                       "field `when.hours` must be \"HH-HH\" (UTC, e.g. \"09-17\") or an array of them");
  }
  return 0;
}

static int
parse_command(const cJSON *obj, policy_rule *r, const char *name, size_t idx, berth_error **err)
{
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(obj, "command");
  if (c == NULL)
    return 0;
  if (!cJSON_IsString(c) || c->valuestring[0] == '\0' || strlen(c->valuestring) > MAX_REGEX)
    return rule_fail(err, name, idx, "field `command` must be a non-empty PCRE2 pattern of at most 4096 bytes");
  int code;
  PCRE2_SIZE off;
  r->command = pcre2_compile((PCRE2_SPTR) c->valuestring, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
  if (r->command == NULL) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(code, msg, sizeof msg);
    char detail[400];
    snprintf(detail, sizeof detail, "offset %zu: %s", (size_t) off, (const char *) msg);
    return rule_fail(err, name, idx, "field `command` is not a valid regex: %s", detail);
  }
  return 0;
}

static const char *const known_fields[]
    = { "name", "command", "actors", "roles", "stacks", "labels", "identity", "when", "decision", "message", NULL };

static int
parse_rule(const cJSON *obj, size_t idx, policy_rule *r, berth_error **err)
{
  memset(r, 0, sizeof *r);
  if (!cJSON_IsObject(obj))
    return rule_fail(err, NULL, idx, "must be a JSON object");
  const cJSON *nm = cJSON_GetObjectItemCaseSensitive(obj, "name");
  if (!cJSON_IsString(nm))
    return rule_fail(err, NULL, idx, "field `name` is missing or not a string");
  if (!valid_rule_name(nm->valuestring))
    return rule_fail(err, NULL, idx, "field `name` must match [A-Za-z0-9][A-Za-z0-9_.-]{0,62}");
  const char *name = nm->valuestring;
  const cJSON *it;
  cJSON_ArrayForEach(it, obj)
  {
    for (const cJSON *prev = obj->child; prev != it; prev = prev->next)
      if (strcmp(prev->string, it->string) == 0)
        return rule_fail(err, name, idx, "field `%.64s` appears twice", it->string);
    bool known = false;
    for (size_t k = 0; known_fields[k] && !known; k++)
      known = strcmp(it->string, known_fields[k]) == 0;
    if (!known)
      return rule_fail(err, name, idx, "unknown field `%s`", it->string);
  }
  int rc;
  if ((r->name = strdup(name)) == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  if ((rc = parse_command(obj, r, name, idx, err)) < 0
      || (rc = parse_list(obj, "actors", &r->actors, name, idx, err)) < 0
      || (rc = parse_list(obj, "roles", &r->roles, name, idx, err)) < 0
      || (rc = parse_list(obj, "stacks", &r->stacks, name, idx, err)) < 0
      || (rc = parse_list(obj, "labels", &r->labels, name, idx, err)) < 0
      || (rc = parse_when(obj, r, name, idx, err)) < 0)
    return rc;
  const cJSON *idn = cJSON_GetObjectItemCaseSensitive(obj, "identity");
  if (idn != NULL && !cJSON_IsBool(idn))
    return rule_fail(err, name, idx,
                     "field `identity` must be true (tasks with an OIDC token or credential helpers) "
                     "or false (tasks without)");
  r->identity = idn == NULL ? -1 : cJSON_IsTrue(idn);
  for (size_t i = 0; i < r->roles.n; i++)
    if (berth_role_parse(r->roles.v[i]) == BERTH_ROLE_NONE)
      return rule_fail(err, name, idx, "field `roles`: `%s` is not a role (" BERTH_ROLE_NAMES ")", r->roles.v[i]);
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(obj, "decision");
  if (!cJSON_IsString(d) || (strcmp(d->valuestring, "deny") != 0 && strcmp(d->valuestring, "allow") != 0))
    return rule_fail(err, name, idx, "field `decision` must be \"deny\" or \"allow\"");
  r->deny = strcmp(d->valuestring, "deny") == 0;
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, "message");
  if (m != NULL
      && (!cJSON_IsString(m) || m->valuestring[0] == '\0' || strlen(m->valuestring) > MAX_MESSAGE
          || strpbrk(m->valuestring, "\r\n")))
    return rule_fail(err, name, idx, "field `message` must be one non-empty line of at most 1024 bytes");
  if (m != NULL)
    r->message = strdup(m->valuestring);
  else if (asprintf(&r->message, "denied by policy `%s`", name) < 0)
    r->message = NULL;
  if (r->message == NULL || (r->json = cJSON_Duplicate(obj, true)) == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  return 0;
}

static int
parse_text(const char *text, rule_vec *rv, berth_error **err)
{
  memset(rv, 0, sizeof *rv);
  if (text == NULL)
    return berth_error_set(err, BERTH_EINVAL, "policy: no text");
  size_t len = strnlen(text, BERTH_POLICY_MAX_TEXT + 1);
  if (len > BERTH_POLICY_MAX_TEXT)
    return berth_error_set(err, BERTH_EINVAL, "policy is larger than 1 MiB");
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
  if (root == NULL) {
    size_t off = end && end >= text && end <= text + len ? (size_t) (end - text) : 0;
    return berth_error_set(err, BERTH_EINVAL, "policy is not valid JSON (near byte %zu)", off);
  }
  for (const char *p = end; p && p < text + len; p++)
    if (!isspace((unsigned char) *p)) {
      cJSON_Delete(root);
      return berth_error_set(err, BERTH_EINVAL, "policy has trailing data after the JSON value (byte %zu)",
                             (size_t) (p - text));
    }
  int rc = 0;
  bool array = cJSON_IsArray(root);
  size_t n = array ? (size_t) cJSON_GetArraySize(root) : 1;
  if (!array && !cJSON_IsObject(root))
    rc = berth_error_set(err, BERTH_EINVAL, "policy must be a rule object or an array of rule objects");
  else if (n == 0)
    rc = berth_error_set(err, BERTH_EINVAL, "policy holds no rules (empty array)");
  else if (n > BERTH_POLICY_MAX_RULES)
    rc = berth_error_set(err, BERTH_EINVAL, "policy holds more than %d rules", BERTH_POLICY_MAX_RULES);
  else if ((rv->v = calloc(n, sizeof *rv->v)) == NULL)
    rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  for (size_t i = 0; rc == 0 && i < n; i++) {
    rc = parse_rule(array ? cJSON_GetArrayItem(root, (int) i) : root, i, &rv->v[i], err);
    rv->n = i + 1;
    for (size_t k = 0; rc == 0 && k < i; k++)
      if (strcmp(rv->v[k].name, rv->v[i].name) == 0)
        rc = berth_error_set(err, BERTH_EINVAL, "policy rule `%s` appears twice (rules #%zu and #%zu)", rv->v[i].name,
                             k + 1, i + 1);
  }
  cJSON_Delete(root);
  if (rc < 0)
    rules_clear(rv);
  return rc;
}

int
berth_policy_validate_json(const char *json_text, size_t *n_rules, berth_error **err)
{
  rule_vec rv;
  int rc = parse_text(json_text, &rv, err);
  if (rc == 0 && n_rules)
    *n_rules = rv.n;
  rules_clear(&rv);
  return rc;
}

/* ---- evaluation ---- */

static bool
list_has(const str_list *l, const char *s)
{
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->v[i], s) == 0)
      return true;
  return false;
}

static bool
list_glob(const str_list *l, const char *s)
{
  for (size_t i = 0; i < l->n; i++)
    if (fnmatch(l->v[i], s, 0) == 0)
      return true;
  return false;
}

/* 1 match, 0 no match, <0 error */
static int
command_matches(const policy_rule *r, const char *command, berth_error **err)
{
  if (r->command == NULL)
    return 1;
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(r->command, NULL);
  pcre2_match_context *mc = pcre2_match_context_create(NULL);
  if (md == NULL || mc == NULL) {
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  pcre2_set_match_limit(mc, MATCH_LIMIT);
  const char *s = command ? command : "";
  int m = pcre2_match(r->command, (PCRE2_SPTR) s, strlen(s), 0, 0, md, mc);
  pcre2_match_data_free(md);
  pcre2_match_context_free(mc);
  if (m >= 0)
    return 1;
  if (m == PCRE2_ERROR_NOMATCH)
    return 0;
  PCRE2_UCHAR msg[256];
  pcre2_get_error_message(m, msg, sizeof msg);
  /* a rule that cannot be evaluated denies (fail closed): the caller is refused, not met with an internal error */
  return berth_error_set(err, BERTH_EDENIED, "policy rule `%s` could not match its command pattern (%s): denied",
                         r->name, (const char *) msg);
}

static int
rule_matches(const policy_rule *r, const berth_policy_input *in, const struct tm *tm, berth_error **err)
{
  const char *role = in->role ? in->role : "admin";
  if (r->actors.n && !list_has(&r->actors, in->actor ? in->actor : ""))
    return 0;
  if (r->roles.n && !list_has(&r->roles, role))
    return 0;
  if (r->stacks.n && !list_glob(&r->stacks, in->stack ? in->stack : ""))
    return 0;
  if (r->labels.n) {
    bool any = false;
    for (size_t i = 0; i < in->n_labels && !any; i++)
      any = list_glob(&r->labels, in->labels[i]);
    if (!any)
      return 0;
  }
  if (r->identity >= 0 && r->identity != (int) in->identity)
    return 0;
  if (r->weekdays && !(r->weekdays & (1u << tm->tm_wday)))
    return 0;
  if (r->hours && !(r->hours & (1u << tm->tm_hour)))
    return 0;
  return command_matches(r, in->command, err);
}

static int
evaluate_rules(const rule_vec *rv, const berth_policy_input *in, berth_policy_result *out, berth_error **err)
{
  memset(out, 0, sizeof *out);
  int64_t now = in->now_ms ? in->now_ms : berth_now_ms();
  time_t secs = (time_t) (now / 1000);
  struct tm tm;
  if (gmtime_r(&secs, &tm) == NULL)
    return berth_error_set(err, BERTH_EINVAL, "policy: time %lld is out of range", (long long) now);
  const policy_rule *deciding_deny = NULL, *first_allow = NULL;
  if (rv->n && (out->matched = calloc(rv->n, sizeof *out->matched)) == NULL)
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  for (size_t i = 0; i < rv->n; i++) {
    const policy_rule *r = &rv->v[i];
    int m = rule_matches(r, in, &tm, err);
    if (m < 0) {
      berth_policy_result_clear(out);
      return m;
    }
    if (m == 0)
      continue;
    if (asprintf(&out->matched[out->n_matched], "%s (%s)", r->name, r->deny ? "deny" : "allow") < 0) {
      berth_policy_result_clear(out);
      return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    }
    out->n_matched++;
    if (r->deny && deciding_deny == NULL)
      deciding_deny = r;
    if (!r->deny && first_allow == NULL)
      first_allow = r;
  }
  const policy_rule *d = deciding_deny ? deciding_deny : first_allow;
  out->denied = deciding_deny != NULL;
  if ((d && (out->rule = strdup(d->name)) == NULL)
      || (deciding_deny && (out->message = strdup(deciding_deny->message)) == NULL)) {
    berth_policy_result_clear(out);
    return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  }
  return 0;
}

int
berth_policy_evaluate_json(const char *json_text, const berth_policy_input *in, berth_policy_result *out,
                           berth_error **err)
{
  memset(out, 0, sizeof *out);
  rule_vec rv;
  int rc = parse_text(json_text, &rv, err);
  if (rc == 0)
    rc = evaluate_rules(&rv, in, out, err);
  rules_clear(&rv);
  return rc;
}

/* ---- the policy table ---- */

#define RULES_SQL "SELECT name, rule FROM task_policies ORDER BY id"

/* The task policies, sent with the store's next statement (PostgreSQL), for the check that follows it */
void
berth_policy_read_ahead(berth_store *st)
{
  store_read_ahead(st, RULES_SQL);
}

static int
load_rules(berth_store *st, rule_vec *rv, berth_error **err)
{
  memset(rv, 0, sizeof *rv);
  db_stmt *stmt = store_take_ahead(st, RULES_SQL);
  if (stmt == NULL && db_prepare(store_db(st), RULES_SQL, &stmt, err) < 0)
    return err && *err ? (*err)->code : BERTH_EINTERNAL;
  int rc = 0, step;
  size_t cap = 0;
  while (rc == 0 && (step = db_step(stmt, err)) == DB_ROW) {
    if (rv->n == cap) {
      size_t nc = cap ? cap * 2 : 16;
      policy_rule *nv = realloc(rv->v, nc * sizeof *nv);
      if (nv == NULL) {
        rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
        break;
      }
      rv->v = nv;
      cap = nc;
    }
    const char *name = db_column_text(stmt, 0);
    cJSON *j = cJSON_Parse(db_column_text(stmt, 1));
    if (j == NULL) {
      rc = berth_error_set(err, BERTH_EINTERNAL, "stored policy `%s` is not valid JSON", name ? name : "?");
      break;
    }
    rc = parse_rule(j, rv->n, &rv->v[rv->n], err);
    rv->n++;
    cJSON_Delete(j);
    if (rc < 0) {
      berth_error_wrap(err, "stored policy `%s` is invalid", name ? name : "?");
      if (err && *err)
        (*err)->code = BERTH_EINTERNAL;
      rc = BERTH_EINTERNAL;
    }
  }
  if (rc == 0 && step != DB_DONE)
    rc = berth_error_wrap(err, "read task policies");
  db_finalize(stmt);
  if (rc < 0)
    rules_clear(rv);
  return rc;
}

int
berth_policy_evaluate(berth_store *st, const berth_policy_input *in, berth_policy_result *out, berth_error **err)
{
  memset(out, 0, sizeof *out);
  rule_vec rv;
  int rc = load_rules(st, &rv, err);
  if (rc == 0)
    rc = evaluate_rules(&rv, in, out, err);
  rules_clear(&rv);
  return rc;
}

int
berth_policy_add_json(berth_store *st, const char *json_text, const char *actor, size_t *added, berth_error **err)
{
  if (added)
    *added = 0;
  if (actor == NULL || *actor == '\0')
    return berth_error_set(err, BERTH_EINVAL, "add policy: no actor");
  rule_vec rv;
  int rc = parse_text(json_text, &rv, err);
  if (rc < 0)
    return rc;
  db_stmt *stmt = NULL;
  if ((rc = db_begin(store_db(st), err)) < 0)
    goto out;
  rc = db_prepare(store_db(st),
                  "INSERT INTO task_policies (name, rule, actor, created_at) VALUES (?, ?, ?, ?)"
                  " ON CONFLICT (name) DO UPDATE SET rule = excluded.rule, actor = excluded.actor,"
                  " created_at = excluded.created_at",
                  &stmt, err);
  int64_t now = berth_now_ms();
  for (size_t i = 0; rc == 0 && i < rv.n; i++) {
    char *text = cJSON_PrintUnformatted(rv.v[i].json);
    if (text == NULL) {
      rc = berth_error_set(err, BERTH_EINTERNAL, "out of memory");
      break;
    }
    db_reset(stmt);
    db_bind_text(stmt, 1, rv.v[i].name);
    db_bind_text(stmt, 2, text);
    db_bind_text(stmt, 3, actor);
    db_bind_int64(stmt, 4, now);
    if (db_step(stmt, err) != DB_DONE)
      rc = berth_error_wrap(err, "add policy");
    free(text);
  }
  db_finalize(stmt);
  if (rc == 0)
    rc = db_commit(store_db(st), err);
  else
    db_rollback(store_db(st));
  if (rc == 0 && added)
    *added = rv.n;
out:
  rules_clear(&rv);
  return rc;
}

int
berth_policy_remove(berth_store *st, const char *name, berth_error **err)
{
  if (name == NULL || !valid_rule_name(name))
    return berth_error_set(err, BERTH_EINVAL, "policy name `%.100s` is invalid", name ? name : "");
  db_stmt *stmt = NULL;
  int rc;
  if ((rc = db_prepare(store_db(st), "DELETE FROM task_policies WHERE name = ?", &stmt, err)) < 0)
    return rc;
  db_bind_text(stmt, 1, name);
  int64_t removed = 0;
  if (db_run(stmt, &removed, err) < 0)
    return berth_error_wrap(err, "remove policy");
  if (removed == 0)
    return berth_error_set(err, BERTH_ENOTFOUND, "no policy `%s`", name);
  return 0;
}

cJSON *
berth_policy_list_json(berth_store *st, berth_error **err)
{
  db_stmt *stmt = NULL;
  if (db_prepare(store_db(st), "SELECT name, rule, actor, created_at FROM task_policies ORDER BY id", &stmt, err) < 0)
    return NULL;
  cJSON *root = cJSON_CreateObject();
  cJSON *list = root ? cJSON_AddArrayToObject(root, "policies") : NULL;
  int step = DB_DONE;
  bool oom = list == NULL;
  while (!oom && (step = db_step(stmt, err)) == DB_ROW) {
    char when[BERTH_TIME_LEN];
    cJSON *p = cJSON_CreateObject();
    cJSON *rule = cJSON_Parse(db_column_text(stmt, 1));
    if (p == NULL || rule == NULL || !cJSON_AddItemToArray(list, p)
        || !cJSON_AddStringToObject(p, "name", db_column_text(stmt, 0)) || !cJSON_AddItemToObject(p, "rule", rule)
        || !cJSON_AddStringToObject(p, "actor", db_column_text(stmt, 2))
        || !cJSON_AddStringToObject(p, "created_at", berth_format_time(db_column_int64(stmt, 3), when, sizeof when)))
      oom = true;
  }
  if (oom || step != DB_DONE) {
    if (oom)
      berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    else
      berth_error_wrap(err, "list policies");
    cJSON_Delete(root);
    root = NULL;
  }
  db_finalize(stmt);
  return root;
}

cJSON *
berth_policy_result_to_json(const berth_policy_result *r)
{
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "decision", r->denied ? "deny" : "allow");
  r->rule ? cJSON_AddStringToObject(j, "rule", r->rule) : cJSON_AddNullToObject(j, "rule");
  r->message ? cJSON_AddStringToObject(j, "message", r->message) : cJSON_AddNullToObject(j, "message");
  cJSON *m = cJSON_AddArrayToObject(j, "matched");
  for (size_t i = 0; i < r->n_matched; i++)
    cJSON_AddItemToArray(m, cJSON_CreateString(r->matched[i]));
  return j;
}

cJSON *
berth_policy_test_json(berth_store *st, const char *stack, const char *command, const char *actor, const char *role,
                       int64_t now_ms, berth_error **err)
{
  berth_stack *s = NULL;
  berth_policy_result res = { 0 };
  cJSON *j = NULL;
  if (berth_stack_validate_name(stack, err) < 0 || berth_store_stack_get(st, stack, &s, err) < 0)
    return NULL;
  berth_policy_input in = {
    .stack = s->name,
    .labels = (const char *const *) s->labels.v,
    .n_labels = s->labels.n,
    .command = command ? command : "",
    .actor = actor,
    .role = role,
    .identity = s->oidc_audiences.n > 0 || s->credentials.n > 0,
    .now_ms = now_ms,
  };
  if (berth_policy_evaluate(st, &in, &res, err) == 0 && (j = berth_policy_result_to_json(&res)) == NULL)
    berth_error_set(err, BERTH_EINTERNAL, "out of memory");
  berth_policy_result_clear(&res);
  berth_stack_free(s);
  return j;
}
