/* Choosing the back end of a command line, and running one operation through it (backend.h). */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cli.h"

void
cli_request_clear(cli_request *rq)
{
  cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(rq->body, "secret_env"))
  {
    if (cJSON_IsString(e))
      explicit_bzero(e->valuestring, strlen(e->valuestring));
  }
  cJSON_Delete(rq->body);
  rq->body = NULL;
}

int
cli_backend_open(cli_backend **out, berth_error **err)
{
  const char *server = getenv("BERTH_SERVER");
  if (server && *server)
    return cli_backend_http_new(out, err);
  return cli_backend_local_new(out, err);
}

void
cli_backend_free(cli_backend *b)
{
  if (b)
    b->ops->free(b);
}

int
cli_call(cli_op op, const cli_request *rq, cJSON **out)
{
  berth_error *err = NULL;
  cli_backend *b = NULL;
  *out = NULL;
  int rc = cli_backend_open(&b, &err) < 0 || b->ops->call(b, op, rq, out, &err) < 0 ? cli_fail(err) : 0;
  cli_backend_free(b);
  return rc;
}

int
cli_run(cli_op op, cli_request *rq, const cli_view *view)
{
  cJSON *rec = NULL;
  int rc = cli_call(op, rq, &rec);
  if (rc == 0) {
    if (rq->json || view->human == NULL) {
      cJSON *shown = rq->json && view->json ? view->json(rec) : NULL;
      cli_print_json(shown ? shown : rec);
      cJSON_Delete(shown);
    } else {
      cli_printable(rec); /* anyone's text: nothing of it drives the terminal */
      view->human(rq, rec);
    }
    rc = view->status ? view->status(rec) : 0;
  }
  cJSON_Delete(rec);
  cli_request_clear(rq);
  return rc;
}
