/* handlers_misc.c - workers, health, the API document and the dashboard (see handlers.h). */
#include "server/handlers.h"

#include <string.h>

int workers_list(app *a, http_request *req, http_response *resp)
{
    (void)req;
    json_t *w = a->workers != NULL ? a->workers(a->broker_ctx) : json_array();
    return api_json(resp, 200, json_pack("{s:o}", "workers", w));
}

int health_live(app *a, http_request *req, http_response *resp)
{
    (void)a;
    (void)req;
    return api_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

int health_ready(app *a, http_request *req, http_response *resp)
{
    (void)req;
    errbuf eb;
    int store_ok = store_writable(a->st, &eb) == 0;
    int broker_ok = a->broker_ready != NULL && a->broker_ready(a->broker_ctx);
    json_t *checks = json_pack("{s:s,s:s}", "store", store_ok ? "ok" : eb.msg, "broker",
                               broker_ok ? "ok" : "the pool socket is not bound");
    int ok = store_ok && broker_ok;
    return api_json(resp, ok ? 200 : 503,
                    json_pack("{s:s,s:o}", "status", ok ? "ready" : "not ready", "checks", checks));
}

int docs_openapi_yaml(app *a, http_request *req, http_response *resp)
{
    if (a->openapi_yaml == NULL)
        return api_error(resp, req, 404, NULL, "this server was built without api/openapi.yaml");
    http_response_bytes(resp, 200, "application/yaml; charset=utf-8", a->openapi_yaml,
                        a->openapi_len);
    return 200;
}

int docs_openapi_json(app *a, http_request *req, http_response *resp)
{
    if (a->openapi_json == NULL)
        return api_error(resp, req, 404, NULL, "this server was built without api/openapi.yaml");
    return api_json(resp, 200, json_incref(a->openapi_json));
}

int dashboard_index(app *a, http_request *req, http_response *resp)
{
    if (a->dashboard_html == NULL)
        return api_error(resp, req, 404, NULL, "this server was built without the dashboard");
    http_response_bytes(resp, 200, "text/html; charset=utf-8", a->dashboard_html, a->dashboard_len);
    return 200;
}
