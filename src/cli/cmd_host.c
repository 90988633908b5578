/* berth host list | show | drain | undrain: the fleet's hosts (docs/fleet.md). One parse and one renderer; the
 * records come from the store (local mode) or from the server's API (client mode), in the same JSON form. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/audit.h"
#include "berth/fleet.h"
#include "berth/store.h"
#include "cli.h"
#include "client.h"
#include "render.h"

static const char host_usage[]
    = "usage: berth host list [--json]\n"
      "       berth host show NAME [--json]\n"
      "       berth host drain NAME\n"
      "       berth host undrain NAME\n\n"
      "The hosts of a fleet: every `berth serve` on one PostgreSQL store (docs/fleet.md). A host is alive while it\n"
      "heartbeats within its lease, lost after; drain makes it claim no new task (its running tasks finish), undrain\n"
      "makes it claim again (admin).\n";

typedef struct host_req {
  const char *sub; /* list, show, drain, undrain */
  const char *name;
  bool json;
} host_req;

/* 0 with *r filled, -1 after --help, or an exit status after a one-line error. */
static int
host_parse(int argc, char **argv, host_req *r)
{
  memset(r, 0, sizeof *r);
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fputs(host_usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 125 : -1;
  }
  r->sub = argv[1];
  bool takes_name = strcmp(r->sub, "list") != 0;
  if (takes_name && strcmp(r->sub, "show") != 0 && strcmp(r->sub, "drain") != 0 && strcmp(r->sub, "undrain") != 0)
    return cli_usage_error("host: unknown subcommand `%s` (see 'berth host --help')", r->sub);
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(host_usage, stdout);
      return -1;
    } else if (strcmp(argv[i], "--json") == 0 && (strcmp(r->sub, "list") == 0 || strcmp(r->sub, "show") == 0))
      r->json = true;
    else if (argv[i][0] == '-')
      return cli_usage_error("host %s: unknown option `%s` (see 'berth host --help')", r->sub, argv[i]);
    else if (takes_name && r->name == NULL)
      r->name = argv[i];
    else
      return cli_usage_error("host %s: unexpected argument `%s`", r->sub, argv[i]);
  }
  if (takes_name && r->name == NULL)
    return cli_usage_error("host %s: which host? (berth host %s NAME)", r->sub, r->sub);
  return 0;
}

static int
host_render(const host_req *r, cJSON *j)
{
  if (r->json)
    cli_print_json(j);
  else if (strcmp(r->sub, "list") == 0)
    cli_render_host_list(cJSON_GetObjectItemCaseSensitive(j, "hosts"));
  else
    cli_render_host(j);
  return 0;
}

static int
host_done(const host_req *r)
{
  printf("host %s %s\n", r->name, strcmp(r->sub, "drain") == 0 ? "is draining: it claims no new task"
                                                                : "claims tasks again");
  return 0;
}

/* ---- local: the store ---- */

int
cmd_host(int argc, char **argv)
{
  host_req r;
  int rc = host_parse(argc, argv, &r);
  if (rc != 0)
    return rc < 0 ? 0 : rc;
  berth_store *st = NULL;
  if ((rc = cli_open_store(&st)) != 0)
    return rc;
  berth_error *err = NULL;
  cJSON *j = NULL;
  if (strcmp(r.sub, "list") == 0) {
    berth_host *v = NULL;
    size_t n = 0;
    if (berth_host_list(st, &v, &n, &err) == 0)
      j = berth_hosts_to_json(v, n);
    berth_hosts_free(v, n);
  } else if (strcmp(r.sub, "show") == 0) {
    berth_host h;
    if (berth_host_get(st, r.name, &h, &err) == 0) {
      j = berth_host_to_json(&h);
      berth_host_clear(&h);
    }
  } else {
    bool drain = strcmp(r.sub, "drain") == 0;
    char *actor = cli_current_user();
    if (berth_store_begin(st, &err) == 0) {
      if (berth_host_set_draining(st, r.name, drain, &err) == 0
          && berth_audit_append(st, actor ? actor : "unknown", drain ? "host.drain" : "host.undrain", r.name, NULL,
                                "ok", &err)
                 == 0
          && berth_store_commit(st, &err) == 0)
        rc = host_done(&r);
      else
        berth_store_rollback(st);
    }
    free(actor);
  }
  if (err != NULL)
    rc = cli_fail(err);
  else if (j != NULL)
    rc = host_render(&r, j);
  cJSON_Delete(j);
  berth_store_close(st);
  return rc;
}

/* ---- client: the server's API ---- */

int
cmd_host_client(client_conn *c, int argc, char **argv)
{
  host_req r;
  int rc = host_parse(argc, argv, &r);
  if (rc != 0)
    return rc < 0 ? 0 : rc;
  berth_error *err = NULL;
  cJSON *j = NULL;
  char *name = r.name ? client_escape(r.name) : NULL, *path = NULL;
  int n = strcmp(r.sub, "list") == 0   ? asprintf(&path, "/v1/hosts")
          : strcmp(r.sub, "show") == 0 ? asprintf(&path, "/v1/hosts/%s", name ? name : "")
                                       : asprintf(&path, "/v1/hosts/%s/%s", name ? name : "", r.sub);
  free(name);
  if (n < 0)
    return cli_usage_error("out of memory");
  bool write = strcmp(r.sub, "drain") == 0 || strcmp(r.sub, "undrain") == 0;
  if (client_request(c, write ? "POST" : "GET", path, NULL, &j, &err) < 0)
    rc = cli_fail(err);
  else
    rc = write ? host_done(&r) : host_render(&r, j);
  cJSON_Delete(j);
  free(path);
  return rc;
}
