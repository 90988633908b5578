/* HTTP for the command line's HTTP back end (backend_http.c): `--server URL` / BERTH_SERVER, with the key in
 * BERTH_API_KEY. */
#ifndef BERTH_CLI_CLIENT_H
#define BERTH_CLI_CLIENT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "berth/error.h"

typedef struct client_conn client_conn;

/* `berth schedule ...` and `berth webhook ...` through the server (cmd_schedule.c, cmd_webhook.c: one parser for
 * both modes). */
int cmd_schedule_client(client_conn *c, int argc, char **argv);
int cmd_webhook_client(client_conn *c, int argc, char **argv);
/* From BERTH_SERVER ("http://HOST:PORT", "https://...", "unix:/path/to.sock") and BERTH_API_KEY;
 * BERTH_SERVER_CA names a CA file for https. */
int client_conn_new(client_conn **out, berth_error **err);
void client_conn_free(client_conn *c);
/* One JSON request. body may be NULL. On a 2xx answer *resp gets the parsed body (may be NULL when empty); on an
 * error answer the server's {"error","message"} becomes *err with the matching code. */
int client_request(client_conn *c, const char *method, const char *path, const cJSON *body, cJSON **resp,
                   berth_error **err);
/* The same with a raw body (policy files). */
int client_request_raw(client_conn *c, const char *method, const char *path, const char *body, size_t len, cJSON **resp,
                       berth_error **err);
/* A streamed GET: every received byte goes to sink; stops early (returns 1) when *stop becomes non-zero.
 * Returns 0 when the server ended the stream. */
typedef int (*client_sink)(void *userdata, const char *data, size_t len);
int client_stream(client_conn *c, const char *path, client_sink sink, void *userdata, const volatile sig_atomic_t *stop,
                  berth_error **err);
/* Percent-encodes s for a query value or path segment (caller frees). */
char *client_escape(const char *s);

#endif
