/* Human renderers over JSON records. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "berth/buf.h"
#include "berth/audit.h"
#include "berth/parse.h"
#include "berth/task_runner.h"
#include "render.h"

static const char *
str(const cJSON *o, const char *key, const char *dflt)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : dflt;
}

static int
num(const cJSON *o, const char *key, int dflt)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNumber(v) ? v->valueint : dflt;
}

/* "2026-11-25T08:01:02.345Z" (the records' form, fraction optional) -> Unix ms; -1 when it is not one. */
static int64_t
iso_ms(const char *iso)
{
  struct tm tm = { 0 };
  int ms = 0, used = 0;
  if (iso == NULL
      || sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                &tm.tm_sec, &used)
             != 6)
    return -1;
  if (iso[used] == '.' && sscanf(iso + used, ".%3d", &ms) != 1)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  time_t t = timegm(&tm);
  return t == (time_t) -1 ? -1 : (int64_t) t * 1000 + ms;
}

/* How long ago, as a person says it: "just now", "42 s ago", "3 min ago", "5 h ago", "2 days ago", past a month
 * the date. */
static const char *
human_ago(int64_t then_ms, int64_t now_ms, const char *iso, char *buf, size_t len)
{
  int64_t s = (now_ms - then_ms) / 1000;
  if (then_ms < 0)
    return "-";
  if (s < 5)
    snprintf(buf, len, "just now");
  else if (s < 60)
    snprintf(buf, len, "%lld s ago", (long long) s);
  else if (s < 3600)
    snprintf(buf, len, "%lld min ago", (long long) (s / 60));
  else if (s < 48 * 3600)
    snprintf(buf, len, "%lld h ago", (long long) (s / 3600));
  else if (s < 30 * 86400)
    snprintf(buf, len, "%lld days ago", (long long) (s / 86400));
  else
    snprintf(buf, len, "%.10s", iso);
  return buf;
}

/* A task's duration, to the precision that matters: "0.4s", "42s", "3m05s", "1h20m". */
static const char *
human_duration(int64_t ms, char *buf, size_t len)
{
  if (ms < 0)
    ms = 0;
  int64_t s = ms / 1000;
  if (ms < 10000)
    snprintf(buf, len, "%.1fs", (double) ms / 1000.0);
  else if (s < 60)
    snprintf(buf, len, "%llds", (long long) s);
  else if (s < 3600)
    snprintf(buf, len, "%lldm%02llds", (long long) (s / 60), (long long) (s % 60));
  else
    snprintf(buf, len, "%lldh%02lldm", (long long) (s / 3600), (long long) (s / 60 % 60));
  return buf;
}

void
cli_render_task_list(const cJSON *tasks)
{
  int64_t now = berth_now_ms();
  printf("%-26s  %-16s  %-12s  %4s  %-12s  %8s  %s\n", "ID", "STACK", "STATE", "EXIT", "CREATED", "DURATION",
         "COMMAND");
  const cJSON *t;
  cJSON_ArrayForEach(t, tasks)
  {
    char code[16] = "-", ago[32], took[32] = "-";
    int ec = num(t, "exit_code", -1);
    if (ec >= 0)
      snprintf(code, sizeof code, "%d", ec);
    /* from the start to the end, or to now while it runs */
    int64_t started = iso_ms(str(t, "started_at", NULL)), finished = iso_ms(str(t, "finished_at", NULL));
    if (started >= 0)
      human_duration((finished >= 0 ? finished : now) - started, took, sizeof took);
    const char *created = str(t, "created_at", NULL);
    printf("%-26s  %-16s  %-12s  %4s  %-12s  %8s  %.60s\n", str(t, "id", "?"), str(t, "stack", "?"),
           str(t, "state", "?"), code, human_ago(iso_ms(created), now, created, ago, sizeof ago), took,
           str(t, "command", ""));
    if (strcmp(str(t, "state", ""), "QUEUED") == 0 && str(t, "reason", NULL)) /* why it waits (a fleet) */
      printf("%-26s  waiting: %s\n", "", str(t, "reason", ""));
  }
}

void
cli_render_task(const cJSON *t)
{
  printf("id:          %s\nstack:       %s\ncommand:     %s\nstate:       %s\n", str(t, "id", "?"),
         str(t, "stack", "?"), str(t, "command", ""), str(t, "state", "?"));
  if (str(t, "reason", NULL))
    printf("reason:      %s\n", str(t, "reason", ""));
  if (num(t, "exit_code", -1) >= 0)
    printf("exit code:   %d\n", num(t, "exit_code", -1));
  printf("actor:       %s\n", str(t, "actor", "-"));
  if (str(t, "triggered_by", NULL) && strcmp(str(t, "triggered_by", ""), str(t, "actor", "")) != 0)
    printf("triggered by: %s\n", str(t, "triggered_by", ""));
  if (str(t, "blocked_by", NULL))
    printf("blocked by:  %s\n", str(t, "blocked_by", ""));
  if (str(t, "host", NULL))
    printf("host:        %s (attempt %d)\n", str(t, "host", ""), num(t, "attempt", 0));
  if (str(t, "retry_of", NULL))
    printf("retry of:    %s\n", str(t, "retry_of", ""));
  const cJSON *e, *env = cJSON_GetObjectItemCaseSensitive(t, "env");
  bool first = true;
  cJSON_ArrayForEach(e, env)
  {
    printf("%-13s%s=%s\n", first ? "env:" : "", e->string, cJSON_IsString(e) ? e->valuestring : "");
    first = false;
  }
  first = true;
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(t, "secret_env")) /* names: values are never shown */
  {
    printf("%s%s", first ? "secret env:  " : ", ", e->string);
    first = false;
  }
  if (!first)
    printf("\n");
  const cJSON *h = cJSON_GetObjectItemCaseSensitive(t, "history");
  if (cJSON_IsArray(h)) {
    printf("history:\n");
    cJSON_ArrayForEach(e, h) printf("  %-24s  %-12s  %-10s  %s\n", str(e, "at", "-"), str(e, "state", "?"),
                                    str(e, "actor", "-"), str(e, "note", ""));
  }
}

int
cli_task_exit_status(const cJSON *t)
{
  return berth_task_exit_status(str(t, "state", "FAILED"), str(t, "reason", NULL), num(t, "exit_code", -1));
}

/* ---- stacks ---- */

/* "2026-11-25T08:01:02.345Z" (the API's form) -> "2026-11-25T08:01:02Z" (the human form). */
static const char *
human_time(const char *iso, char *buf, size_t len)
{
  if (iso == NULL || strlen(iso) < 19)
    return "-";
  snprintf(buf, len, "%.19sZ", iso);
  return buf;
}

static int64_t
num64(const cJSON *o, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNumber(v) ? (int64_t) v->valuedouble : 0;
}

static void
print_numbered(const char *title, const cJSON *a)
{
  if (cJSON_GetArraySize(a) == 0)
    return;
  printf("%s:\n", title);
  int i = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, a) printf("  %d. %s\n", ++i, cJSON_IsString(e) ? e->valuestring : "");
}

/* " a b" for ["a", "b"], " -" for []: the persist and labels lines. */
static void
print_words(const cJSON *a)
{
  const cJSON *e;
  cJSON_ArrayForEach(e, a) printf(" %s", cJSON_IsString(e) ? e->valuestring : "");
  printf("%s\n", cJSON_GetArraySize(a) ? "" : " -");
}

void
cli_render_stack(const cJSON *s)
{
  char b1[64], b2[64];
  int64_t mem = num64(s, "memory_bytes"), ncpu = num64(s, "nano_cpus"), pids = num64(s, "pids");
  printf("name:           %s\n", str(s, "name", ""));
  printf("image:          %s\n", str(s, "image", ""));
  printf("project dir:    %s\n", str(s, "project_dir", "(none: empty workspace)"));
  printf("subdir:         %s\n", str(s, "subdir", "-"));
  printf("network:        %s\n", str(s, "network", ""));
  if (strcmp(str(s, "pool", BERTH_DEFAULT_POOL), BERTH_DEFAULT_POOL) != 0)
    printf("pool:           %s\n", str(s, "pool", ""));
  printf("pull policy:    %s\n", str(s, "pull_policy", ""));
  printf("memory:         %s\n", mem > 0 ? berth_format_size(mem, b1, sizeof b1) : "default");
  printf("cpus:           %s\n", ncpu > 0 ? berth_format_cpus(ncpu, b1, sizeof b1) : "default");
  if (pids > 0)
    printf("pids:           %lld\n", (long long) pids);
  else
    printf("pids:           default\n");
  printf("timeout:        %s\n", berth_format_duration(num64(s, "timeout_ms"), b1, sizeof b1));
  printf("idle timeout:   %s\n", berth_format_duration(num64(s, "idle_timeout_ms"), b1, sizeof b1));
  printf("keep versions:  %d\n", num(s, "keep_versions", 0));
  printf("persist:       ");
  print_words(cJSON_GetObjectItemCaseSensitive(s, "persist"));
  printf("labels:        ");
  print_words(cJSON_GetObjectItemCaseSensitive(s, "labels"));
  const cJSON *lock = cJSON_GetObjectItemCaseSensitive(s, "lock");
  if (cJSON_IsObject(lock))
    printf("locked:         by %s since %s%s%s\n", str(lock, "owner", "?"),
           human_time(str(lock, "locked_at", NULL), b1, sizeof b1), str(lock, "note", NULL) ? ": " : "",
           str(lock, "note", ""));
  else
    printf("locked:         no\n");
  printf("created:        %s\n", human_time(str(s, "created_at", NULL), b1, sizeof b1));
  printf("updated:        %s\n", human_time(str(s, "updated_at", NULL), b2, sizeof b2));
  const cJSON *e, *env = cJSON_GetObjectItemCaseSensitive(s, "env"),
                  *senv = cJSON_GetObjectItemCaseSensitive(s, "secret_env");
  if (cJSON_GetArraySize(env))
    printf("env:\n");
  cJSON_ArrayForEach(e, env) printf("  %s=%s\n", e->string, cJSON_IsString(e) ? e->valuestring : "");
  if (cJSON_GetArraySize(senv))
    printf("secret env:\n");
  cJSON_ArrayForEach(e, senv) printf("  %s=***\n", e->string); /* never the value, whatever the record holds */
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(s, "secret_env_unreadable"))
  {
    if (cJSON_IsString(e))
      printf(
          "  %s: its stored value cannot be decrypted (secret.key replaced or lost): give it again with --secret-env "
          "%s=VALUE\n",
          e->valuestring, e->valuestring);
  }
  print_numbered("before init", cJSON_GetObjectItemCaseSensitive(s, "before_init"));
  print_numbered("init", cJSON_GetObjectItemCaseSensitive(s, "init"));
  print_numbered("before perform", cJSON_GetObjectItemCaseSensitive(s, "before_perform"));
  print_numbered("after perform", cJSON_GetObjectItemCaseSensitive(s, "after_perform"));
  print_numbered("after run", cJSON_GetObjectItemCaseSensitive(s, "after_run"));
}

void
cli_render_stack_list(const cJSON *stacks)
{
  const cJSON *s;
  int wn = 4, wi = 5;
  cJSON_ArrayForEach(s, stacks)
  {
    int ln = (int) strlen(str(s, "name", "")), li = (int) strlen(str(s, "image", ""));
    wn = ln > wn ? ln : wn;
    wi = li > wi ? li : wi;
  }
  printf("%-*s  %-*s  %-7s  %-6s  %s\n", wn, "NAME", wi, "IMAGE", "NETWORK", "LOCKED", "LABELS");
  cJSON_ArrayForEach(s, stacks)
  {
    printf("%-*s  %-*s  %-7s  %-6s  ", wn, str(s, "name", ""), wi, str(s, "image", ""), str(s, "network", ""),
           cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(s, "lock")) ? "yes" : "no");
    const cJSON *l;
    int i = 0;
    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(s, "labels"))
        printf("%s%s", i++ ? "," : "", cJSON_IsString(l) ? l->valuestring : "");
    printf("%s\n", i ? "" : "-");
  }
}

void
cli_render_stack_state(const cJSON *state)
{
  const cJSON *versions = cJSON_GetObjectItemCaseSensitive(state, "versions"), *v;
  if (cJSON_GetArraySize(versions) == 0) {
    printf("no state versions for stack %s yet%s\n", str(state, "stack", "?"),
           cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(state, "persist"))
               ? ""
               : " (it persists no paths; see --persist)");
    return;
  }
  char b[64];
  printf("%-7s  %-26s  %-24s  %5s  %s\n", "VERSION", "TASK", "CREATED", "FILES", "SIZE");
  cJSON_ArrayForEach(v, versions)
      printf("%-7lld  %-26s  %-24s  %5lld  %s\n", (long long) num64(v, "version"), str(v, "task_id", "-"),
             str(v, "created_at", "-"), (long long) num64(v, "files"),
             berth_format_size_approx(num64(v, "bytes"), b, sizeof b));
}

/* ---- policy test, audit ---- */

void
cli_render_policy_result(const cJSON *r)
{
  const cJSON *matched = cJSON_GetObjectItemCaseSensitive(r, "matched"), *m;
  if (strcmp(str(r, "decision", "deny"), "allow") != 0)
    printf("decision: deny (rule %s): %s\n", str(r, "rule", "?"), str(r, "message", ""));
  else if (str(r, "rule", NULL))
    printf("decision: allow (rule %s; no rule denies it)\n", str(r, "rule", ""));
  else
    printf("decision: allow (no rule denies it)\n");
  printf("matching rules:%s\n", cJSON_GetArraySize(matched) ? "" : " none");
  cJSON_ArrayForEach(m, matched) printf("  %s\n", cJSON_IsString(m) ? m->valuestring : "");
}

void
cli_render_audit(const cJSON *records)
{
  if (cJSON_GetArraySize(records) == 0) {
    printf("no audit records\n");
    return;
  }
  printf("%-6s %-24s %-14s %-16s %-30s %s\n", "ID", "TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME");
  const cJSON *r;
  cJSON_ArrayForEach(r, records)
  {
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(r, "args");
    printf("%-6lld %-24s %-14s %-16s %-30s %s\n", (long long) num64(r, "id"), str(r, "at", ""), str(r, "actor", ""),
           str(r, "action", ""), str(r, "target", "-"), str(r, "outcome", ""));
    if (args != NULL && !cJSON_IsNull(args)) {
      char *a = cJSON_PrintUnformatted(args);
      if (a)
        printf("%-6s args: %s\n", "", a);
      free(a);
    }
  }
}

void
cli_render_audit_verify(const cJSON *v)
{
  int64_t count = num64(v, "records");
  if (cli_audit_verify_exit_status(v) == 0) {
    const char *head = str(v, "head", "");
    printf("audit trail intact: %lld record%s, head %s\n", (long long) count, count == 1 ? "" : "s",
           *head ? head : "(empty)");
  } else {
    printf("audit trail BROKEN: record %lld: %s (%lld records)\n", (long long) num64(v, "first_bad"),
           str(v, "problem", ""), (long long) count);
  }
}

int
cli_audit_verify_exit_status(const cJSON *v)
{
  return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "intact")) ? 0 : 1;
}

/* A host's pools, joined with "," (one form in list and show); the caller frees it. */
static char *
host_pools(const cJSON *h)
{
  berth_buf b;
  berth_buf_init(&b, 64);
  const cJSON *p;
  cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(h, "pools"))
  {
    if (cJSON_IsString(p))
      berth_buf_printf(&b, "%s%s", b.len ? "," : "", p->valuestring);
  }
  berth_buf_append(&b, "", 1);
  char *out = b.data ? strdup(b.data) : strdup("");
  berth_buf_free(&b);
  return out;
}

/* `berth host list`: NAME STATE POOLS SLOTS BUSY VERSION HEARTBEAT, the name and pools columns as wide as their
 * longest value; an API-only host (--no-execute) has no slots: "-" */
void
cli_render_host_list(const cJSON *hosts)
{
  int64_t now = berth_now_ms();
  int wn = 4, wp = 5;
  const cJSON *h;
  cJSON_ArrayForEach(h, hosts)
  {
    char *pools = host_pools(h);
    int n = (int) strlen(str(h, "name", "?")), np = pools ? (int) strlen(pools) : 0;
    wn = n > wn ? n : wn;
    wp = np > wp ? np : wp;
    free(pools);
  }
  printf("%-*s  %-8s  %-*s  %5s  %4s  %-10s  %s\n", wn, "NAME", "STATE", wp, "POOLS", "SLOTS", "BUSY", "VERSION",
         "HEARTBEAT");
  cJSON_ArrayForEach(h, hosts)
  {
    char *pools = host_pools(h), ago[32], slots[16] = "-", busy[16] = "-";
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "executes"))) {
      snprintf(slots, sizeof slots, "%d", num(h, "slots", 0));
      snprintf(busy, sizeof busy, "%d", num(h, "busy", 0));
    }
    const char *hb = str(h, "heartbeat_at", NULL);
    printf("%-*s  %-8s  %-*s  %5s  %4s  %-10s  %s\n", wn, str(h, "name", "?"), str(h, "state", "?"), wp,
           pools ? pools : "", slots, busy, str(h, "version", "-"), human_ago(iso_ms(hb), now, hb, ago, sizeof ago));
    free(pools);
  }
}

/* `berth host show`: one host object */
void
cli_render_host(const cJSON *h)
{
  char *pools = host_pools(h);
  const cJSON *ex = cJSON_GetObjectItemCaseSensitive(h, "executes");
  bool drained = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "drained"));
  if (strcmp(str(h, "state", "?"), "stopped") == 0) { /* an admin's drain of a host that is not running */
    printf("name:        %s\nstate:       stopped (not running; drained by an admin: it claims nothing when it "
           "starts, until `berth host undrain %s`)\n",
           str(h, "name", "?"), str(h, "name", "?"));
    free(pools);
    return;
  }
  printf("name:        %s\nstate:       %s%s\npools:       %s\nslots:       %d (%d busy)\nexecutes:    %s\n"
         "version:     %s\nlease:       %g s\nstarted:     %s\nheartbeat:   %s\n",
         str(h, "name", "?"), str(h, "state", "?"), drained ? " (drained by an admin, kept across restarts)" : "",
         pools ? pools : "", num(h, "slots", 0), num(h, "busy", 0), cJSON_IsTrue(ex) ? "yes" : "no (API only)",
         str(h, "version", "-"), num(h, "lease_ms", 0) / 1000.0, str(h, "started_at", "-"),
         str(h, "heartbeat_at", "-"));
  free(pools);
}
