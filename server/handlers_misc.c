/* handlers_misc.c - workers, health, the API document, its schemas and the dashboard's
 * files (see handlers.h). */
#include "common/files.h"
#include "common/xalloc.h"
#include "server/handlers.h"

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
    errbuf deb;
    int disk_ok = files_disk_check(a->data_dir, a->min_free_disk, &deb) == 0;
    json_t *checks = json_pack("{s:s,s:s,s:s}", "store", store_ok ? "ok" : eb.msg, "broker",
                               broker_ok ? "ok" : "the pool socket is not bound", "disk",
                               disk_ok ? "ok" : deb.msg);
    int ok = store_ok && broker_ok && disk_ok;
    return api_json(resp, ok ? 200 : 503,
                    json_pack("{s:s,s:o}", "status", ok ? "ready" : "not ready", "checks", checks));
}

int prometheus_metrics(app *a, http_request *req, http_response *resp)
{
    int64_t counts[JS__COUNT];
    errbuf eb;
    json_t *attempts = NULL;
    if (store_job_counts(a->st, counts, &eb) < 0 || store_attempt_counts(a->st, &attempts, &eb) < 0)
        return api_error(resp, req, 500, NULL, "the job store failed: %s", eb.msg);
    stats_buf b;
    stats_buf_init(&b);
    stats_printf(&b, "# HELP kiln_jobs Jobs in the store, by state.\n# TYPE kiln_jobs gauge\n");
    for (int s = 0; s < JS__COUNT; s++)
        stats_printf(&b, "kiln_jobs{state=\"%s\"} %lld\n", store_state_name((job_state)s),
                     (long long)counts[s]);
    stats_printf(&b,
                 "# HELP kiln_queue_depth Jobs waiting for a pool (QUEUED and RESTARTING).\n"
                 "# TYPE kiln_queue_depth gauge\nkiln_queue_depth %lld\n",
                 (long long)counts[JS_QUEUED] + (long long)counts[JS_RESTARTING]);
    stats_printf(&b, "# HELP kiln_attempts Attempts in the store, by how they ended (ACTIVE: "
                     "running now).\n# TYPE kiln_attempts gauge\n");
    const char *reason;
    json_t *n;
    json_object_foreach(attempts, reason, n)
    {
        stats_printf(&b, "kiln_attempts{reason=\"");
        stats_label(&b, reason);
        stats_printf(&b, "\"} %lld\n", (long long)json_integer_value(n));
    }
    json_decref(attempts);

    json_t *w = a->workers != NULL ? a->workers(a->broker_ctx) : json_array();
    static const char *const pool_states[] = {"idle", "busy", "lost"};
    stats_printf(&b, "# HELP kiln_pools Worker pools known since start, by state.\n"
                     "# TYPE kiln_pools gauge\n");
    long long ranks = 0;
    for (size_t k = 0; k < 3; k++) {
        long long cnt = 0;
        size_t i;
        json_t *p;
        json_array_foreach(w, i, p)
        {
            if (strcmp(json_string_value(json_object_get(p, "state")), pool_states[k]) == 0) {
                cnt++;
                if (k < 2)
                    ranks += (long long)json_integer_value(json_object_get(p, "ranks"));
            }
        }
        stats_printf(&b, "kiln_pools{state=\"%s\"} %lld\n", pool_states[k], cnt);
    }
    stats_printf(&b,
                 "# HELP kiln_pool_ranks MPI ranks in connected pools.\n"
                 "# TYPE kiln_pool_ranks gauge\nkiln_pool_ranks %lld\n",
                 ranks);
    stats_printf(&b, "# HELP kiln_pool_heartbeat_age_seconds Time since the pool's last "
                     "message, by pool.\n# TYPE kiln_pool_heartbeat_age_seconds gauge\n");
    size_t i;
    json_t *p;
    json_array_foreach(w, i, p)
    {
        stats_printf(&b, "kiln_pool_heartbeat_age_seconds{pool=\"");
        stats_label(&b, json_string_value(json_object_get(p, "id")));
        stats_printf(&b, "\",state=\"%s\"} %.3f\n", json_string_value(json_object_get(p, "state")),
                     json_number_value(json_object_get(p, "last_heartbeat_age_s")));
    }
    json_decref(w);
    stats_printf(&b,
                 "# HELP kiln_broker_up 1 while the pool socket is bound.\n"
                 "# TYPE kiln_broker_up gauge\nkiln_broker_up %d\n",
                 a->broker_ready != NULL && a->broker_ready(a->broker_ctx) ? 1 : 0);
    stats_render(a->stats, &b);
    http_response_bytes(resp, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
    free(b.p);
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

/* The headers of every page and file of the dashboard: scripts only from
 * this server and no inline script or style, no framing, no referrer. */
static void dashboard_headers(http_response *resp)
{
    http_response_header(resp, "Content-Security-Policy",
                         "default-src 'none'; script-src 'self'; style-src 'self'; "
                         "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                         "form-action 'none'; frame-ancestors 'none'");
    http_response_header(resp, "X-Frame-Options", "DENY");
    http_response_header(resp, "Referrer-Policy", "no-referrer");
    http_response_header(resp, "Cache-Control", "no-cache");
}

static const char *content_type_of(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},          {".json", "application/schema+json"},
        {".yaml", "application/yaml; charset=utf-8"},
    };
    size_t n = strlen(path);
    if (n > 0 && path[n - 1] == '/') /* a folder's page */
        return types[0].type;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t k = strlen(types[i].ext);
        if (n >= k && strcmp(path + n - k, types[i].ext) == 0)
            return types[i].type;
    }
    return "application/octet-stream";
}

/* Serves the file embedded at url, or 404 naming what. */
static int serve_file(app *a, http_request *req, http_response *resp, const char *url,
                      const char *what)
{
    const embed_file *f = embed_find(a->files, a->n_files, url);
    if (f == NULL)
        return api_error(resp, req, 404, NULL, "this server has no %s '%.80s'", what, url);
    http_response_bytes(resp, 200, content_type_of(url), f->data, f->len);
    return 200;
}

int dashboard_index(app *a, http_request *req, http_response *resp)
{
    int rc = serve_file(a, req, resp, "/", "dashboard page");
    if (rc == 200)
        dashboard_headers(resp);
    return rc;
}

int dashboard_file(app *a, http_request *req, http_response *resp)
{
    char url[300];
    snprintf(url, sizeof url, "/dashboard/%s", req->params[0]);
    int rc = serve_file(a, req, resp, url, "dashboard file");
    if (rc == 200)
        dashboard_headers(resp);
    return rc;
}

int docs_schema(app *a, http_request *req, http_response *resp)
{
    char url[300];
    snprintf(url, sizeof url, "/api/v1/schemas/%s", req->params[0]);
    return serve_file(a, req, resp, url, "schema");
}

void docs_absolute_refs(json_t *doc, const char *base)
{
    if (json_is_array(doc)) {
        size_t i;
        json_t *v;
        json_array_foreach(doc, i, v)
        {
            docs_absolute_refs(v, base);
        }
        return;
    }
    if (!json_is_object(doc))
        return;
    const char *k;
    json_t *v;
    json_object_foreach(doc, k, v)
    {
        const char *ref = json_string_value(v);
        if (strcmp(k, "$ref") == 0 && ref != NULL && ref[0] != '#' && ref[0] != '/' &&
            strstr(ref, "://") == NULL) {
            size_t n = strlen(base) + strlen(ref) + 1;
            char *abs = xmalloc(n);
            snprintf(abs, n, "%s%s", base, ref);
            json_object_set_new(doc, k, json_string(abs));
            free(abs);
        } else {
            docs_absolute_refs(v, base);
        }
    }
}
