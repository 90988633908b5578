/* Parsing and formatting of user-supplied values: durations, sizes, cpus, env pairs.
 *
 * Every parser rejects garbage, negatives and overflow with one line that names the offending value; callers add
 * the flag on the way up (berth_error_wrap(err, "--timeout")). Parsers never allocate except where they return
 * strings, which the caller frees. */
#ifndef BERTH_PARSE_H
#define BERTH_PARSE_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "berth/error.h"

/* "90s", "7m", "1h30m", "500ms", "2h"; a plain number is seconds. Units: ms, s, m, h, d. Result in milliseconds,
 * >= 0 (callers that need a positive value check for 0). BERTH_EINVAL on garbage, a sign, or overflow. */
int berth_parse_duration_ms(const char *s, int64_t *out, berth_error **err);

/* "512m", "1g", "64MiB", "1.5G", "1048576" (bytes). Binary units only: k/K/KB/KiB = 1024, m/M/MB/MiB = 1024^2,
 * g, t likewise; "b"/"B" = bytes. Fractions are rounded down to whole bytes. BERTH_EINVAL on garbage/overflow. */
int berth_parse_size(const char *s, int64_t *out, berth_error **err);

/* "1.5" -> 1500000000 nano cpus; at most 9 decimals; >= 0. */
int berth_parse_cpus(const char *s, int64_t *nano_out, berth_error **err);

/* A decimal integer in [min, max]; no sign unless min < 0, no trailing garbage. */
int berth_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out, berth_error **err);

/* The one line for a flag getopt_long refused (opterr = 0; an optstring starting with ':' tells a missing value), or
 * one it knows that this command does not take: ret is what it returned (':' a flag without its value, '?' an
 * unknown one, else the flag's own value), argv, optind and optarg as it left them, cmd the command ("stack lock").
 * "flag `--note` needs a value (see 'berth stack lock --help')", "unknown flag `--x` for 'berth doctor' (see 'berth
 * doctor --help')". Returns BERTH_EINVAL. */
int berth_flag_error(int ret, const char *cmd, char *const *argv, int optind, int optopt, const char *optarg,
                     berth_error **err);

/* s (NUL-terminated; NULL is valid) is well-formed UTF-8: no overlong forms, surrogates or code points past
 * U+10FFFF. Text berth stores, shows as JSON and sends to PostgreSQL must be. */
bool berth_utf8_valid(const char *s);
/* Makes s valid UTF-8 in place: each byte of a malformed or cut sequence becomes '?'. */
void berth_utf8_repair(char *s);
/* 0, or BERTH_EINVAL "WHAT is not valid UTF-8" when s is not (what: "label `x...`", "--note"). */
int berth_utf8_check(const char *what, const char *s, berth_error **err);

/* Before a JSON text is parsed (cJSON would cut a string at an escaped NUL or a bad escape): it is valid UTF-8, and
 * its strings hold no \u0000, no \u escape without 4 hex digits, no lone surrogate. 0, or BERTH_EINVAL saying
 * which and where. */
int berth_json_text_check(const char *text, size_t len, berth_error **err);
/* The first key that an object of j (j itself or any object inside it) holds twice, or NULL. */
struct cJSON;
const char *berth_json_duplicate_key(const struct cJSON *j);

/* [A-Za-z_][A-Za-z0-9_]* */
bool berth_env_name_valid(const char *name);

/* "K=V" (V may be empty or contain '='). K must be a valid env name. *key_out and *value_out are new strings. */
int berth_parse_env_pair(const char *s, char **key_out, char **value_out, berth_error **err);

/* "K=V", or "K" alone: the value is then read from this process's environment (so secrets never appear in argv);
 * a K absent from the environment is BERTH_EINVAL "secret env `K` is not set in berth's environment".
 * Error messages never contain the value. */
int berth_parse_secret_env_pair(const char *s, char **key_out, char **value_out, berth_error **err);

/* A relative path without "." / ".." components, not absolute, no NUL, at most 4096 bytes; `what` names it in the
 * message ("subdir", "persisted path"). Trailing slashes and repeated slashes are normalized in *norm_out (new). */
int berth_parse_relative_path(const char *what, const char *s, char **norm_out, berth_error **err);

/* Formatting into a caller buffer (>= 32 bytes): 4200000 -> "1h10m", 500 -> "500ms", 0 -> "0s";
 * 1610612736 -> "1.5GiB", 512 -> "512B". Return buf. */
char *berth_format_duration(int64_t ms, char *buf, size_t len);
char *berth_format_size(int64_t bytes, char *buf, size_t len);
/* For reading, not for giving back: "1.4MiB", "216KiB", "512B" (one decimal under 10 units). */
char *berth_format_size_approx(int64_t bytes, char *buf, size_t len);
/* 1500000000 -> "1.5" */
char *berth_format_cpus(int64_t nano, char *buf, size_t len);
/* THE time format of berth's output (API, --json, audit, tables): ISO 8601 UTC with milliseconds,
 * unix ms -> "2024-05-01T12:00:00.000Z" ("-" for 0 or a buffer shorter than BERTH_TIME_LEN). */
#define BERTH_TIME_LEN 32
char *berth_format_time(int64_t unix_ms, char *buf, size_t len);

#endif
