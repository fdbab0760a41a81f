/* routes.c - the route table and dispatcher (see routes.h). */
#include "routes.h"

#include "common/clock.h"
#include "common/log.h"
#include "server/auth.h"
#include "server/handlers.h"
#include "server/stats.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define R AUTH_READ
#define S AUTH_SUBMIT
#define A AUTH_ADMIN

/* Reading needs read, submitting and cancelling submit, deleting admin;
 * liveness, readiness, the API document, its schemas and the dashboard's
 * page and files are public (the page asks for a token before it calls the
 * API). */
static const route table[] = {
    {"POST", "/api/v1/jobs", jobs_create, ROUTE_JSON_BODY, S},
    {"GET", "/api/v1/jobs", jobs_list, 0, R},
    {"GET", "/api/v1/jobs/{id}", jobs_get, 0, R},
    {"DELETE", "/api/v1/jobs/{id}", jobs_delete, 0, S}, /* own jobs; admin any (handler) */
    {"POST", "/api/v1/jobs/{id}/cancel", jobs_cancel, 0, S},
    {"GET", "/api/v1/jobs/{id}/metrics", jobs_metrics, 0, R},
    {"GET", "/api/v1/jobs/{id}/logs", jobs_logs, 0, R},
    {"GET", "/api/v1/jobs/{id}/events", jobs_events, 0, R},
    {"GET", "/api/v1/jobs/{id}/artifacts", jobs_artifacts, 0, R},
    {"GET", "/api/v1/jobs/{id}/artifacts/{name}", jobs_artifact, 0, R},
    {"GET", "/api/v1/events", events_all, 0, R},
    {"GET", "/api/v1/workers", workers_list, 0, R},
    {"POST", "/api/v1/models", models_create, 0, S},
    {"GET", "/api/v1/models", models_list, 0, R},
    {"GET", "/api/v1/models/{id}", models_get, 0, R},
    {"DELETE", "/api/v1/models/{id}", models_delete, 0, A},
    {"GET", "/api/v1/models/{id}/file", models_file, 0, R},
    {"GET", "/api/v1/jobs/{id}/checkpoints/latest", jobs_checkpoint_latest, 0, R},
    {"GET", "/api/v1/openapi.yaml", docs_openapi_yaml, 0, 0},
    {"GET", "/openapi.json", docs_openapi_json, 0, 0},
    {"GET", "/healthz", health_live, 0, 0},
    {"GET", "/readyz", health_ready, 0, 0},
    {"GET", "/metrics", prometheus_metrics, 0, R},
    {"GET", "/api/v1/schemas/{name}", docs_schema, 0, 0},
    {"GET", "/", dashboard_index, 0, 0},
    {"GET", "/dashboard/{name}", dashboard_file, 0, 0},
};

#undef R
#undef S
#undef A

#define N_ROUTES ((int)(sizeof table / sizeof table[0]))

static const char *const labels[N_ROUTES] = {
    "POST /api/v1/jobs",
    "GET /api/v1/jobs",
    "GET /api/v1/jobs/{id}",
    "DELETE /api/v1/jobs/{id}",
    "POST /api/v1/jobs/{id}/cancel",
    "GET /api/v1/jobs/{id}/metrics",
    "GET /api/v1/jobs/{id}/logs",
    "GET /api/v1/jobs/{id}/events",
    "GET /api/v1/jobs/{id}/artifacts",
    "GET /api/v1/jobs/{id}/artifacts/{name}",
    "GET /api/v1/events",
    "GET /api/v1/workers",
    "POST /api/v1/models",
    "GET /api/v1/models",
    "GET /api/v1/models/{id}",
    "DELETE /api/v1/models/{id}",
    "GET /api/v1/models/{id}/file",
    "GET /api/v1/jobs/{id}/checkpoints/latest",
    "GET /api/v1/openapi.yaml",
    "GET /openapi.json",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /api/v1/schemas/{name}",
    "GET /",
    "GET /dashboard/{name}",
};

const char *const *routes_labels(void)
{
    return labels;
}

int routes_count(void)
{
    return N_ROUTES;
}

const route *routes_get(int i)
{
    return (i >= 0 && i < N_ROUTES) ? &table[i] : NULL;
}

const char *api_status_code(int status)
{
    switch (status) {
    case 400:
        return "INVALID_ARGUMENT";
    case 401:
        return "UNAUTHENTICATED";
    case 403:
        return "PERMISSION_DENIED";
    case 404:
        return "NOT_FOUND";
    case 405:
        return "METHOD_NOT_ALLOWED";
    case 409:
        return "CONFLICT";
    case 413:
        return "PAYLOAD_TOO_LARGE";
    case 415:
        return "UNSUPPORTED_MEDIA_TYPE";
    case 416:
        return "RANGE_NOT_SATISFIABLE";
    case 429:
        return "RESOURCE_EXHAUSTED";
    case 501:
        return "UNIMPLEMENTED";
    case 503:
        return "UNAVAILABLE";
    default:
        return "INTERNAL";
    }
}

int api_json(http_response *resp, int status, json_t *body)
{
    json_decref(resp->json);
    resp->json = body;
    resp->status = status;
    return status;
}

static int api_error_v(http_response *resp, const http_request *req, int status,
                       const field_errors *fe, const char *fmt, va_list ap)
{
    char text[1024];
    vsnprintf(text, sizeof text, fmt, ap);
    json_t *details = json_array();
    for (int i = 0; fe != NULL && i < fe->n; i++)
        json_array_append_new(
            details, json_pack("{s:s,s:s}", "field", fe->e[i].field, "reason", fe->e[i].reason));
    if (fe != NULL && fe->dropped > 0) {
        char more[64];
        snprintf(more, sizeof more, "%d more problems not listed", fe->dropped);
        json_array_append_new(details, json_pack("{s:s,s:s}", "field", "", "reason", more));
    }
    json_t *err = json_pack("{s:s,s:s,s:o,s:s}", "code", api_status_code(status), "message", text,
                            "details", details, "request_id", req != NULL ? req->request_id : "");
    return api_json(resp, status, json_pack("{s:o}", "error", err));
}

int api_error(http_response *resp, const http_request *req, int status, const field_errors *fe,
              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = api_error_v(resp, req, status, fe, fmt, ap);
    va_end(ap);
    return rc;
}

int api_error_field(http_response *resp, const http_request *req, int status, const char *field,
                    const char *reason)
{
    field_errors fe;
    fe_init(&fe);
    fe_add(&fe, field, "%s", reason);
    return api_error(resp, req, status, &fe, "%s: %s", field, reason);
}

/* Matches path against pattern; fills the {param} segments. 1 on a match. */
static int match(const char *pattern, const char *path, http_request *req)
{
    int np = 0;
    const char *p = pattern, *s = path;
    char params[HTTP_MAX_PARAMS][256];
    while (*p != '\0' && *s != '\0') {
        if (*p == '{') {
            const char *pe = strchr(p, '}');
            const char *se = strchr(s, '/');
            size_t n = se != NULL ? (size_t)(se - s) : strlen(s);
            if (n == 0 || n >= sizeof params[0] || np == HTTP_MAX_PARAMS)
                return 0;
            memcpy(params[np], s, n);
            params[np][n] = '\0';
            np++;
            p = pe + 1;
            s += n;
        } else {
            if (*p != *s)
                return 0;
            p++;
            s++;
        }
    }
    if (*p != '\0' || *s != '\0')
        return 0;
    if (req != NULL) {
        for (int i = 0; i < np; i++) {
            memcpy(req->param_buf[i], params[i], sizeof params[i]);
            req->params[i] = req->param_buf[i];
        }
        req->n_params = np;
    }
    return 1;
}

static int json_content_type_ok(const char *ct)
{
    if (ct == NULL)
        return 1;
    size_t n = strlen("application/json");
    return strncmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';');
}

static void run(app *a, const route *r, http_request *req, http_response *resp)
{
    if (r->flags & ROUTE_JSON_BODY) {
        if (!json_content_type_ok(http_header(req, "Content-Type"))) {
            api_error(resp, req, 415, NULL, "Content-Type must be application/json (got '%s')",
                      http_header(req, "Content-Type"));
            return;
        }
        if (req->body == NULL || req->len == 0) {
            api_error_field(resp, req, 400, "body", "a JSON object is required");
            return;
        }
        json_error_t je;
        json_t *j = json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
        if (j == NULL) {
            char reason[256];
            snprintf(reason, sizeof reason, "invalid JSON at line %d, column %d: %s", je.line,
                     je.column, je.text);
            api_error_field(resp, req, 400, "body", reason);
            return;
        }
        req->json = j;
        r->fn(a, req, resp);
        json_decref(j);
        req->json = NULL;
        return;
    }
    r->fn(a, req, resp);
}

/* Checks the bearer token against the route's scope: 0 to go on, or the
 * 401/403 status with resp filled. */
static int authorize(const app *a, const route *r, http_request *req, http_response *resp)
{
    if (a->auth == NULL || r->scope == 0)
        return 0;
    const char *hdr = http_header(req, "Authorization");
    const char *tok = auth_bearer(hdr);
    unsigned scopes = 0;
    if (tok == NULL || !auth_check(a->auth, tok, &scopes, req->principal)) {
        if (tok == NULL)
            api_error(resp, req, 401, NULL,
                      "%s needs a bearer token: send 'Authorization: Bearer <token>' (kiln "
                      "--token or KILN_TOKEN)",
                      req->path);
        else
            api_error(resp, req, 401, NULL, "the bearer token is not one this server knows");
        http_response_header(resp, "WWW-Authenticate", "Bearer realm=\"kiln\"");
        return 401;
    }
    req->scopes = scopes;
    if ((scopes & r->scope) == 0) {
        unsigned need = r->scope;
        return api_error(resp, req, 403, NULL, "token '%s' lacks the '%s' scope that %s %s needs",
                         req->principal, auth_scope_name(need), r->method, r->pattern);
    }
    return 0;
}

/* Finds the route; -1 with resp filled (404/405) when there is none. */
static int route_find(const app *a, http_request *req, http_response *resp)
{
    (void)a;
    const char *method = strcmp(req->method, "HEAD") == 0 ? "GET" : req->method;
    char allow[128] = "";
    for (int i = 0; i < N_ROUTES; i++) {
        const route *r = &table[i];
        if (!match(r->pattern, req->path, NULL))
            continue;
        if (strcmp(r->method, method) == 0) {
            match(r->pattern, req->path, req);
            return i;
        }
        size_t used = strlen(allow);
        snprintf(allow + used, sizeof allow - used, "%s%s", used ? ", " : "", r->method);
    }
    if (allow[0] != '\0') {
        api_error(resp, req, 405, NULL, "method %s is not allowed on %s (allowed: %s)", req->method,
                  req->path, allow);
        http_response_header(resp, "Allow", allow);
        return -1;
    }
    api_error(resp, req, 404, NULL, "no route %s %s", req->method, req->path);
    return -1;
}

void routes_dispatch(void *ctx, http_request *req, http_response *resp)
{
    app *a = ctx;
    double t0 = clock_mono_s();
    int i = req->malformed != NULL ? -1 : route_find(a, req, resp);
    req->route = i;
    if (req->malformed != NULL)
        api_error(resp, req, 400, NULL, "malformed request: %s", req->malformed);
    else if (i >= 0 && authorize(a, &table[i], req, resp) == 0) {
        if (req->too_large)
            api_error(resp, req, 413, NULL, "request body is larger than the limit of %zu bytes",
                      strcmp(table[i].pattern, "/api/v1/models") == 0 ? a->upload_limit
                                                                      : a->body_limit);
        else
            run(a, &table[i], req, resp);
    }
    /* No answer is ever to be read as another type than it says. */
    http_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (resp->deferred != NULL)
        return; /* the handler answers later, and counts it then */
    stats_http(a->stats, i, resp->status, clock_mono_s() - t0);
}
