/* client.h - the kiln CLI's HTTP client: JSON calls, downloads and event streams (libcurl).
 *
 * One server URL and bearer token per process (client_init). Every
 * failure of a call is one line on stderr and exit(1): a refused
 * connection or a bad URL names the URL and what to do; an API error
 * shows its code, message and fields. Event streams reconnect after a
 * drop with Last-Event-ID, so a consumer sees each event once. Not
 * thread-safe (one command at a time on the main thread).
 */
#ifndef KILN_CLI_CLIENT_H
#define KILN_CLI_CLIENT_H

#include <jansson.h>
#include <stdio.h>

/* Sets the server (e.g. "http://localhost:8080") and the token (NULL or ""
 * for none); both strings must outlive the process's calls. */
void client_init(const char *base_url, const char *token);

/* Verifies an https:// server against the CA certificate(s) in the PEM file
 * at path instead of the system's CAs (NULL or "": the system's). The string
 * must outlive the process's calls. */
void client_set_cacert(const char *path);

/* The server URL as given. */
const char *client_base(void);

/* A JSON request (data: a JSON text or NULL). Exits with one line on any
 * failure; returns the body (new reference; NULL for 204) and the status
 * in *status (if not NULL). */
json_t *client_call(const char *method, const char *path, const char *data, long *status);

/* "/api/v1/jobs/<id><rest>" (malloc'd): id percent-encoded, rest made from the
 * printf format fmt ("" for the job itself; callers escape what they put in it). */
char *client_job_path(const char *id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* client_call on job id's resource /api/v1/jobs/<id><rest> (see client_job_path;
 * rest "" or a sub-resource such as "/cancel"), with no body. */
json_t *client_job(const char *method, const char *id, const char *rest);

/* POST the size bytes of the open file f to path as
 * application/octet-stream (streamed). Exits on any failure; returns the
 * JSON answer (new reference). */
json_t *client_upload(const char *path, FILE *f, long long size);

/* s percent-encoded for a query value (malloc'd). */
char *client_escape(const char *s);

/* GET path into the open file f. Returns the HTTP status; on a status
 * other than 200 the error body is printed (as client_call would) and
 * nothing useful is in f. Exits on a transport failure. */
long client_download(const char *path, FILE *f);

/* One event of a stream: its type ("log", "metric", "state", ...), its
 * data parsed as JSON (borrowed) and its id (may be ""). Return 0 to go
 * on, 1 to stop reading. */
typedef int (*client_event_fn)(void *ctx, const char *type, const json_t *data, const char *id);

/* Follows the event stream at path until an `end` event (returns 0), the
 * callback stops it (returns 1), or an API error (exits 1). A dropped
 * connection, or one silent for longer than idle_s seconds (the server
 * sends keepalives), is opened again after retry_ms with Last-Event-ID =
 * the last id seen (initially last_id, may be NULL), at most max_retries
 * times in a row (then exits 1 naming the URL). *end_state, if not NULL,
 * gets the `end` event's data (new reference) when the stream ended. */
int client_stream(const char *path, const char *last_id, client_event_fn fn, void *ctx, int idle_s,
                  int retry_ms, int max_retries, json_t **end_state);

#endif
