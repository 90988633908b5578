/* The berth CLI as a client of `berth serve`: `--server URL` / BERTH_SERVER, with the key in BERTH_API_KEY.
 * Same commands, same output, same exit codes as local mode. */
#ifndef BERTH_CLI_CLIENT_H
#define BERTH_CLI_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "berth/buf.h"
#include "berth/error.h"
#include "berth/store.h"

/* True when the command line should go to a server: a leading `--server URL` (stripped from argv; it sets
 * BERTH_SERVER for client_main) or BERTH_SERVER in the environment. `serve` and the internal supervisor always run
 * locally. */
bool client_wanted(int *argc, char ***argv);
/* Runs the command (argv[0] is "berth") against the server; returns the exit status. */
int client_main(int argc, char **argv);

/* `berth key list`'s table, over {"keys": [...]} (cmd_key.c; shared by local and client mode). */
void key_render_list(const cJSON *j);

/* `berth policy test`'s command line (cmd_policy.c; shared by local and client mode). Returns 0 with *out filled,
 * -1 when --help was printed, or the exit code after printing the one-line error. Clear *out in every case. */
typedef struct policy_test_req {
  const char *stack, *actor, *role; /* actor, role: NULL when not given */
  bool json, at_given;
  int64_t at_ms; /* --at, or now */
  berth_buf command;
} policy_test_req;
int policy_test_parse(int argc, char **argv, policy_test_req *out);
void policy_test_req_clear(policy_test_req *r);

/* `berth stack create|update`'s command line (cmd_stack.c; shared by local and client mode): the same flags,
 * checks and one-line errors in both modes. Returns 0 with *body = the stack fields the flags set, as the JSON of
 * POST /v1/stacks (create: with "name") or PATCH /v1/stacks/{name}; -1 when --help was printed; or the exit code
 * after printing the error. *name points into argv. Secret values are in *body: wipe them with
 * stack_body_free. */
int stack_edit_body(int argc, char **argv, bool is_update, const char **name, cJSON **body);
void stack_body_free(cJSON *body);
/* ---- HTTP (client_http.c) ---- */
typedef struct client_conn client_conn;

/* `berth image ...` and `berth policy list|add|remove` through the server (client_gov.c). */
int client_image(client_conn *c, int argc, char **argv);
/* `berth host ...` through the server (cmd_host.c, which holds local mode too). */
int cmd_host_client(client_conn *c, int argc, char **argv);
int client_policy(client_conn *c, int argc, char **argv);
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
int client_stream(client_conn *c, const char *path, client_sink sink, void *userdata, volatile int *stop,
                  berth_error **err);
/* Percent-encodes s for a query value or path segment (caller frees). */
char *client_escape(const char *s);

#endif
