/* handlers.h - the REST handlers (api/openapi.yaml), one function per route.
 *
 * Each takes the app, the request (path parameters in req->params, the JSON
 * body in req->json) and fills the response; it returns the HTTP status.
 * Handlers never touch sockets or MHD: tests call them directly. They are
 * thread-safe (the store and the broker hooks are).
 *   handlers_jobs.c: submit, list, get, cancel, delete
 *   handlers_data.c: metrics, logs, artifacts and the latest checkpoint (with Range),
 *                    event streams
 *   handlers_models.c: uploaded models (POST streamed to a file, list, get, file, delete)
 *   handlers_misc.c: workers, healthz, readyz, Prometheus metrics, openapi and its
 *                    schemas, the dashboard's page and files (with their CSP)
 */
#ifndef KILN_HANDLERS_H
#define KILN_HANDLERS_H

#include "server/routes.h"

int jobs_create(app *a, http_request *req, http_response *resp);
int jobs_list(app *a, http_request *req, http_response *resp);
int jobs_get(app *a, http_request *req, http_response *resp);
int jobs_cancel(app *a, http_request *req, http_response *resp);
int jobs_delete(app *a, http_request *req, http_response *resp);

int jobs_metrics(app *a, http_request *req, http_response *resp);
int jobs_logs(app *a, http_request *req, http_response *resp);
int jobs_events(app *a, http_request *req, http_response *resp);
int jobs_artifacts(app *a, http_request *req, http_response *resp);
int jobs_artifact(app *a, http_request *req, http_response *resp);

int jobs_checkpoint_latest(app *a, http_request *req, http_response *resp);

int models_create(app *a, http_request *req, http_response *resp);
int models_list(app *a, http_request *req, http_response *resp);
int models_get(app *a, http_request *req, http_response *resp);
int models_delete(app *a, http_request *req, http_response *resp);
int models_file(app *a, http_request *req, http_response *resp);

/* Serves the file at path (a download named filename, with Range), or an
 * error naming `what`. Returns the status. */
int api_serve_file(http_response *resp, http_request *req, const char *path, const char *filename,
                   const char *what);

int events_all(app *a, http_request *req, http_response *resp);
int workers_list(app *a, http_request *req, http_response *resp);
int health_live(app *a, http_request *req, http_response *resp);
int health_ready(app *a, http_request *req, http_response *resp);
int prometheus_metrics(app *a, http_request *req, http_response *resp);
int docs_openapi_yaml(app *a, http_request *req, http_response *resp);
int docs_openapi_json(app *a, http_request *req, http_response *resp);
int docs_schema(app *a, http_request *req, http_response *resp);
int dashboard_index(app *a, http_request *req, http_response *resp);
int dashboard_file(app *a, http_request *req, http_response *resp);

/* Rewrites, in place, every "$ref" of doc that names a file beside the
 * document (not "#...", not an absolute path or URL) to base + the name, so
 * that the JSON copy served at /openapi.json finds "schemas/x.json" at
 * base "/api/v1/" as the YAML at /api/v1/openapi.yaml does. */
void docs_absolute_refs(json_t *doc, const char *base);

/* Query helpers shared by the handlers: parse an integer query parameter in
 * [lo, hi] (dflt when absent). Return 0, or fill a 400 naming the parameter
 * and return 400. */
int query_int(http_request *req, http_response *resp, const char *key, long long lo, long long hi,
              long long dflt, long long *out);

/* Path of a job's folder under the data dir: <data>/jobs/<id>. */
void job_dir(const app *a, const char *id, char *buf, size_t len);

#endif
