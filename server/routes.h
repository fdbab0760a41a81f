/* routes.h - the route table and the request dispatcher.
 *
 * routes.c holds one static const table {method, pattern, handler, flags}
 * (Redis's command-table idea). routes_dispatch matches the path (`{x}`
 * matches one segment), answers 404/405/413/415 itself, checks the bearer
 * token when the app has tokens (401 without a valid one, 403 when its
 * scopes lack the route's), parses the JSON body of routes that take one
 * (400 on bad JSON), calls the handler, and counts the request in the
 * app's stats. Every error body has the one documented shape (api_error).
 * Thread-safe.
 */
#ifndef KILN_ROUTES_H
#define KILN_ROUTES_H

#include "common/fielderr.h"
#include "server/app.h"
#include "server/http.h"

#include <jansson.h>

/* A handler fills resp (status and body) and returns the status. */
typedef int (*route_fn)(app *a, http_request *req, http_response *resp);

enum {
    ROUTE_JSON_BODY = 1 << 0, /* the body must be JSON (req->json; the handler checks its shape) */
};

typedef struct route {
    const char *method;
    const char *pattern; /* "/api/v1/jobs/{id}" */
    route_fn fn;
    unsigned flags;
    unsigned scope; /* AUTH_READ | AUTH_SUBMIT | AUTH_ADMIN needed; 0 = public */
} route;

/* The dispatcher, with the http_dispatch_fn signature (ctx = app *). */
void routes_dispatch(void *ctx, http_request *req, http_response *resp);

/* The table, for tests and documentation checks. */
int routes_count(void);
const route *routes_get(int i);

/* "METHOD pattern" of route i (static strings), the labels of /metrics. */
const char *const *routes_labels(void);

/* api_error fills resp with status and
 * {"error":{"code","message","details":[{"field","reason"}],"request_id"}}.
 * fe may be NULL (empty details). The code string follows the status
 * (400 INVALID_ARGUMENT, 404 NOT_FOUND, 409 CONFLICT, ...). Returns status. */
int api_error(http_response *resp, const http_request *req, int status, const field_errors *fe,
              const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* api_error_field: one detail {field, reason}; the message is "field: reason". */
int api_error_field(http_response *resp, const http_request *req, int status, const char *field,
                    const char *reason);

/* api_status_code gives the error code string of an HTTP status. */
const char *api_status_code(int status);

/* api_json sets a JSON body (steals the reference) and returns status. */
int api_json(http_response *resp, int status, json_t *body);

#endif
