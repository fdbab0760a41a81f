/* handlers_misc.c - workers, health, the API document and the dashboard (see handlers.h). */
#include "common/xalloc.h"
#include "server/handlers.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Appends printf output to a growing buffer. */
static void addf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void addf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < *cap - *len) {
            *len += (size_t)n;
            return;
        }
        *cap = *cap * 2 + (size_t)(n > 0 ? n : 0);
        *buf = xrealloc(*buf, *cap);
    }
}

int prometheus_metrics(app *a, http_request *req, http_response *resp)
{
    int64_t counts[JS__COUNT];
    errbuf eb;
    if (store_job_counts(a->st, counts, &eb) < 0)
        return api_error(resp, req, 500, NULL, "the job store failed: %s", eb.msg);
    size_t len = 0, cap = 2048;
    char *buf = xmalloc(cap);
    buf[0] = '\0';
    addf(&buf, &len, &cap,
         "# HELP kiln_jobs Jobs in the store, by state.\n"
         "# TYPE kiln_jobs gauge\n");
    for (int s = 0; s < JS__COUNT; s++)
        addf(&buf, &len, &cap, "kiln_jobs{state=\"%s\"} %lld\n", store_state_name((job_state)s),
             (long long)counts[s]);
    json_t *w = a->workers != NULL ? a->workers(a->broker_ctx) : json_array();
    static const char *const pool_states[] = {"idle", "busy", "lost"};
    addf(&buf, &len, &cap,
         "# HELP kiln_pools Worker pools known since start, by state.\n"
         "# TYPE kiln_pools gauge\n");
    long long ranks = 0;
    for (size_t k = 0; k < 3; k++) {
        long long n = 0;
        size_t i;
        json_t *p;
        json_array_foreach(w, i, p)
        {
            if (strcmp(json_string_value(json_object_get(p, "state")), pool_states[k]) == 0) {
                n++;
                if (k < 2)
                    ranks += (long long)json_integer_value(json_object_get(p, "ranks"));
            }
        }
        addf(&buf, &len, &cap, "kiln_pools{state=\"%s\"} %lld\n", pool_states[k], n);
    }
    json_decref(w);
    addf(&buf, &len, &cap,
         "# HELP kiln_pool_ranks MPI ranks in connected pools.\n# TYPE kiln_pool_ranks gauge\n"
         "kiln_pool_ranks %lld\n",
         ranks);
    addf(&buf, &len, &cap,
         "# HELP kiln_broker_up 1 while the pool socket is bound.\n# TYPE kiln_broker_up gauge\n"
         "kiln_broker_up %d\n",
         a->broker_ready != NULL && a->broker_ready(a->broker_ctx) ? 1 : 0);
    http_response_bytes(resp, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len);
    free(buf);
    return 200;
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
