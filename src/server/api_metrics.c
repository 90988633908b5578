/* GET /metrics: the Prometheus text exposition (reader key; without a key on --metrics-listen). docs/metrics.md */
#include <stdlib.h>
#include <unistd.h>

#include "berth/metrics.h"
#include "berth_commit.h" /* generated: BERTH_COMMIT */
#include "server.h"

int
api_metrics(srv_req *r, srv_resp *out)
{
  berth_error *err = NULL;
  berth_store *st = r->st ? r->st : srv_store(r->srv, &err);
  if (st == NULL)
    return srv_fail(out, err);
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  berth_metrics_process p = { .version = BERTH_VERSION,
                              .commit = BERTH_COMMIT,
                              .host = host,
                              .store_errors = atomic_load(&r->srv->internal_errors) };
  berth_buf b;
  berth_buf_init(&b, 16u << 20);
  if (berth_metrics_render(st, &p, &b, &err) < 0) {
    berth_buf_free(&b);
    atomic_fetch_add(&r->srv->internal_errors, 1);
    return srv_fail(out, err);
  }
  out->status = 200;
  out->text = berth_buf_steal(&b);
  out->content_type = "text/plain; version=0.0.4; charset=utf-8";
  return 0;
}
