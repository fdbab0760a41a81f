/* check_api.c - the REST API end to end: a real server on 127.0.0.1:0 and libcurl.
 *
 * The fixture runs what kiln-server's main runs (store on a file, broker on
 * tcp loopback, HTTP on a free port); jobs run on tests/unit/fakepool.c (a
 * scripted test double of a pool). api/openapi.yaml is checked against what
 * is served, route by route, every answer's body against the schema the
 * document gives for its status and type (tests/unit/jsonschema.c; the job
 * spec schema fetched from where the served document points), and
 * api/examples/invalid/ against the 400s.
 */
#include "server/app.h"
#include "server/broker.h"
#include "server/embed.h"
#include "server/handlers.h"
#include "server/http.h"
#include "server/routes.h"
#include "server/yamljson.h"
#include "tests/unit/jsonschema.h"
#include "tests/unit/testserver.h"
#include "tests/unit/testutil.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

Suite *suite_api(void);

#define BODY_LIMIT TESTSERVER_BODY_LIMIT

static testserver T;

/* The served API document (embedded, as kiln-server serves it) and the dashboard. */
static void serve_docs(app *a)
{
    errbuf eb;
    const embed_file *doc = embed_find(embed_files, embed_files_count, "/api/v1/openapi.yaml");
    ck_assert_ptr_nonnull(doc);
    a->openapi_yaml = (const char *)doc->data;
    a->openapi_len = doc->len;
    ck_assert_int_eq(yamljson_parse(a->openapi_yaml, a->openapi_len, &a->openapi_json, &eb), 0);
    docs_absolute_refs(a->openapi_json, "/api/v1/");
    a->files = embed_files;
    a->n_files = embed_files_count;
}

static void setup(void)
{
    testserver_options o = {.tag = "api",
                            .mode = HTTP_MODE_POOL,
                            .sse = {.keepalive_ms = 1000, .max_streams = 8},
                            .prepare_app = serve_docs};
    testserver_start(&T, &o);
}

static void teardown(void)
{
    json_t *doc = T.app.openapi_json;
    testserver_stop(&T);
    json_decref(doc);
}

static void start_pool(int step_ms)
{
    testserver_start_pool(
        &T, (fakepool_options){
                .pool_id = "api-pool", .ranks = 2, .step_ms = step_ms, .ckpt_every = 10});
}

static void url(char *buf, size_t len, const char *path)
{
    snprintf(buf, len, "%s%s", T.base, path);
}

/* Checks the documented error shape and returns error.code. */
static const char *error_code(const httpc_resp *r)
{
    json_t *e = json_object_get(r->json, "error");
    ck_assert_msg(json_is_object(e), "no error object in: %s", r->body);
    ck_assert(json_is_string(json_object_get(e, "code")));
    ck_assert(json_is_string(json_object_get(e, "message")));
    ck_assert(json_is_array(json_object_get(e, "details")));
    ck_assert(json_string_length(json_object_get(e, "request_id")) > 0);
    return json_string_value(json_object_get(e, "code"));
}

static const char *SMALL_JOB =
    "{\"name\":\"small\",\"model\":{\"arch\":\"resnet_cifar\",\"depth\":20,\"widths\":[16,32,"
    "64]},\"data\":{\"dataset\":\"fashion-mnist\"},\"optim\":{\"epochs\":1,\"max_steps\":30}}";

/* Submits a spec; returns the new id (static buffer). */
static const char *submit(const char *spec)
{
    static char id[STORE_ID_MAX];
    char u[128];
    url(u, sizeof u, "/api/v1/jobs");
    httpc_resp r;
    ck_assert_int_eq(httpc_post_json(u, spec, &r), 0);
    ck_assert_msg(r.status == 201, "submit: %ld %s", r.status, r.body);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(r.json, "id")));
    httpc_free(&r);
    return id;
}

static const char *state_via_http(const char *id, char *buf, size_t len)
{
    char u[160];
    snprintf(u, sizeof u, "%s/api/v1/jobs/%s", T.base, id);
    httpc_resp r;
    ck_assert_int_eq(httpc_get(u, &r), 0);
    ck_assert_int_eq(r.status, 200);
    snprintf(buf, len, "%s", json_string_value(json_object_get(r.json, "state")));
    httpc_free(&r);
    return buf;
}

static void wait_http_state(const char *id, const char *want, int ms)
{
    char st[32] = "";
    for (int t = 0; t < ms; t += 10) {
        if (strcmp(state_via_http(id, st, sizeof st), want) == 0)
            return;
        testserver_sleep_ms(10);
    }
    ck_abort_msg("job %s is %s, expected %s", id, st, want);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static const char *api_dir(void)
{
    const char *d = getenv("KILN_API_DIR");
    return d != NULL ? d : "api";
}

/* ---- the document matches the server ------------------------------------------- */

/* Documents a $ref of the served API document points at, fetched from the
 * server (the refs of /openapi.json are absolute paths on it) and kept. */
typedef struct doc_cache {
    char uri[4][128];
    json_t *doc[4];
    int n;
} doc_cache;

static const json_t *doc_load(void *ctx, const char *uri)
{
    doc_cache *c = ctx;
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->uri[i], uri) == 0)
            return c->doc[i];
    if (c->n == 4 || uri[0] != '/')
        return NULL;
    char u[256];
    url(u, sizeof u, uri);
    httpc_resp r;
    if (httpc_get(u, &r) != 0 || r.status != 200 || r.json == NULL) {
        httpc_free(&r);
        return NULL;
    }
    snprintf(c->uri[c->n], sizeof c->uri[0], "%s", uri);
    c->doc[c->n] = json_incref(r.json);
    httpc_free(&r);
    return c->doc[c->n++];
}

/* The documented response of op for status, with a components ref followed. */
static const json_t *documented_response(const json_t *doc, const json_t *op, long status)
{
    char code[8];
    snprintf(code, sizeof code, "%ld", status);
    const json_t *resp = json_object_get(json_object_get(op, "responses"), code);
    const char *ref = json_string_value(json_object_get(resp, "$ref"));
    if (ref != NULL && strncmp(ref, "#/components/responses/", 23) == 0)
        resp = json_object_get(json_object_get(json_object_get(doc, "components"), "responses"),
                               ref + 23);
    return resp;
}

/* Checks an answer against the document: a documented status, a
 * documented content type, and a JSON body valid against its schema. */
static void check_answer(const json_t *doc, doc_cache *dc, const char *what, const json_t *op,
                         const httpc_resp *r)
{
    const json_t *resp = documented_response(doc, op, r->status);
    ck_assert_msg(resp != NULL, "%s answered %ld, not documented", what, r->status);
    const json_t *content = json_object_get(resp, "content");
    if (content == NULL) {
        ck_assert_msg(r->len == 0, "%s %ld: a body where none is documented", what, r->status);
        return;
    }
    char ct[128] = "";
    httpc_header(r, "Content-Type", ct, sizeof ct);
    ct[strcspn(ct, "; ")] = '\0';
    const json_t *media = json_object_get(content, ct);
    ck_assert_msg(media != NULL, "%s %ld: Content-Type '%s' is not documented", what, r->status,
                  ct);
    if (strcmp(ct, "application/json") != 0 && strcmp(ct, "application/schema+json") != 0)
        return;
    ck_assert_msg(r->json != NULL, "%s %ld: the body is not JSON", what, r->status);
    char err[512];
    int rc = jsonschema_check(json_object_get(media, "schema"), doc, r->json, doc_load, dc, err,
                              sizeof err);
    ck_assert_msg(rc == 0, "%s %ld: the body does not match the documented schema: %s", what,
                  r->status, err);
    if (r->status >= 400)
        error_code(r);
}

/* The URL of a documented path: {id} is the job, other parameters their example. */
static void documented_url(const json_t *item, const char *path, const char *id, char *u,
                           size_t len)
{
    char p[256] = "", *o = p;
    for (const char *s = path; *s;) {
        if (*s != '{') {
            *o++ = *s++;
            continue;
        }
        const char *e = strchr(s, '}');
        ck_assert_ptr_nonnull(e);
        const char *val = NULL;
        size_t i;
        json_t *prm;
        json_array_foreach(json_object_get(item, "parameters"), i, prm)
        {
            const char *n = json_string_value(json_object_get(prm, "name"));
            if (n != NULL && strlen(n) == (size_t)(e - s - 1) && strncmp(n, s + 1, e - s - 1) == 0)
                val = json_string_value(json_object_get(prm, "example"));
        }
        if (strncmp(s, "{id}", 4) == 0)
            val = id;
        ck_assert_msg(val != NULL, "%s: no example for %.*s", path, (int)(e - s + 1), s);
        o += sprintf(o, "%s", val);
        s = e + 1;
    }
    *o = '\0';
    url(u, len, p);
}

START_TEST(openapi_routes_answer_as_documented)
{
    /* a job that ran, so that metrics, logs and artifacts have rows */
    start_pool(1);
    char id[STORE_ID_MAX];
    snprintf(id, sizeof id, "%s", submit(SMALL_JOB));
    wait_http_state(id, "SUCCEEDED", 5000);
    /* the document as served, and its refs followed over HTTP */
    char u[400];
    httpc_resp r;
    url(u, sizeof u, "/openapi.json");
    ck_assert_int_eq(httpc_get(u, &r), 0);
    ck_assert(json_equal(r.json, T.app.openapi_json));
    json_t *doc = json_incref(r.json);
    httpc_free(&r);
    doc_cache dc = {.n = 0};
    json_t *paths = json_object_get(doc, "paths");
    ck_assert(json_object_size(paths) > 10);
    int checked = 0;
    /* deletes last: they take the job away */
    for (int pass = 0; pass < 2; pass++) {
        const char *path;
        json_t *item;
        json_object_foreach(paths, path, item)
        {
            const char *method;
            json_t *op;
            json_object_foreach(item, method, op)
            {
                if (strcmp(method, "parameters") == 0 || (strcmp(method, "delete") == 0) != pass)
                    continue;
                ck_assert_msg(json_is_string(json_object_get(op, "operationId")),
                              "%s %s has no operationId", method, path);
                char upper[16];
                size_t k;
                for (k = 0; method[k] && k < sizeof upper - 1; k++)
                    upper[k] = (char)(method[k] - 32);
                upper[k] = '\0';
                int found = 0;
                for (int i = 0; i < routes_count(); i++)
                    found |= strcmp(routes_get(i)->method, upper) == 0 &&
                             strcmp(routes_get(i)->pattern, path) == 0;
                ck_assert_msg(found, "documented %s %s is not in the route table", upper, path);
                documented_url(item, path, id, u, sizeof u);
                char what[300];
                snprintf(what, sizeof what, "%s %s", upper, path);
                if (strcmp(upper, "POST") == 0 && strcmp(path, "/api/v1/jobs") == 0) {
                    ck_assert_int_eq(httpc_post_json(u, SMALL_JOB, &r), 0);
                    ck_assert_int_eq(r.status, 201);
                    check_answer(doc, &dc, what, op, &r);
                    httpc_free(&r);
                    strcat(u, "?dry_run=true"); /* and the other 200 body */
                    ck_assert_int_eq(httpc_post_json(u, SMALL_JOB, &r), 0);
                    ck_assert_int_eq(r.status, 200);
                } else if (strstr(path, "/events") != NULL) {
                    ck_assert_int_eq(httpc_stream(u, NULL, 1000, &r), 0);
                } else {
                    ck_assert_int_eq(httpc_do(upper, u, NULL, NULL, 0, &r), 0);
                }
                check_answer(doc, &dc, what, op, &r);
                httpc_free(&r);
                checked++;
            }
        }
    }
    /* the job's data and the spec schema were really checked */
    ck_assert_int_eq(dc.n, 1);
    ck_assert_str_eq(dc.uri[0], "/api/v1/schemas/jobspec.schema.json");
    /* every route of the table is documented */
    for (int i = 0; i < routes_count(); i++) {
        const route *rt = routes_get(i);
        char lower[16];
        size_t k;
        for (k = 0; rt->method[k] && k < sizeof lower - 1; k++)
            lower[k] = (char)(rt->method[k] + 32);
        lower[k] = '\0';
        ck_assert_msg(json_object_get(json_object_get(paths, rt->pattern), lower) != NULL,
                      "route %s %s is not in api/openapi.yaml", rt->method, rt->pattern);
    }
    ck_assert_int_eq(checked, routes_count());
    /* the YAML is served as it is */
    url(u, sizeof u, "/api/v1/openapi.yaml");
    httpc_get(u, &r);
    ck_assert_uint_eq(r.len, T.app.openapi_len);
    httpc_free(&r);
    for (int i = 0; i < dc.n; i++)
        json_decref(dc.doc[i]);
    json_decref(doc);
}
END_TEST

/* The checker itself: answers that break the document are caught. */
START_TEST(schema_check_catches_wrong_answers)
{
    json_t *doc = T.app.openapi_json;
    const json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    doc_cache dc = {.n = 0};
    char err[512];
    static const struct {
        const char *schema, *body, *why;
    } bad[] = {
        {"Worker",
         "{\"id\":\"p\",\"state\":\"gone\",\"ranks\":1,\"hosts\":[],\"cores\":1,"
         "\"version\":\"v\",\"engine\":null,\"last_heartbeat_age_s\":0,\"connected_at\":"
         "\"2024-01-01T00:00:00Z\",\"current_job\":null,\"current_jobs\":[],\"free_ranks\":1}",
         "state"},
        {"Progress", "{\"step\":1,\"total_steps\":2}", "fraction"},
        {"Event",
         "{\"seq\":1,\"time\":\"yesterday\",\"from\":null,\"to\":\"QUEUED\","
         "\"reason\":\"SUBMITTED\",\"message\":\"\"}",
         "date-time"},
        {"MetricPoint", "{\"seq\":1,\"name\":\"x\",\"step\":1,\"value\":\"1\",\"time\":1}",
         "value"},
        {"DryRun",
         "{\"valid\":true,\"params\":1,\"mflops\":1,\"spec\":{\"model\":{\"arch\":"
         "\"resnet_cifar\",\"depth\":20,\"widths\":[16,32,64]},\"optim\":{"
         "\"lr\":\"fast\"}}}",
         "optim.lr"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *b = json_loads(bad[i].body, 0, NULL);
        ck_assert_ptr_nonnull(b);
        ck_assert_msg(jsonschema_check(json_object_get(schemas, bad[i].schema), doc, b, doc_load,
                                       &dc, err, sizeof err) < 0,
                      "a wrong %s passed", bad[i].schema);
        ck_assert_msg(strstr(err, bad[i].why) != NULL, "%s: '%s' does not name %s", bad[i].schema,
                      err, bad[i].why);
        json_decref(b);
    }
    for (int i = 0; i < dc.n; i++)
        json_decref(dc.doc[i]);
}
END_TEST

/* api/examples/ against the spec schema: every valid example passes; the
 * invalid ones whose fault is one of shape (a type, an unknown or missing
 * field, a range, a pair of fields that exclude each other) fail it. The
 * others fail only checks across fields that a schema cannot express
 * (batch vs ranks, heads vs embed_dim, ...), which the server makes. */
START_TEST(examples_match_the_spec_schema)
{
    char path[600], err[512];
    snprintf(path, sizeof path, "%s/schemas/jobspec.schema.json", api_dir());
    json_t *schema = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(schema);
    snprintf(path, sizeof path, "%s/examples", api_dir());
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        snprintf(path, sizeof path, "%s/examples/%s", api_dir(), de->d_name);
        json_t *spec = json_load_file(path, 0, NULL);
        ck_assert_ptr_nonnull(spec);
        ck_assert_msg(jsonschema_check(schema, schema, spec, NULL, NULL, err, sizeof err) == 0,
                      "%s: %s", de->d_name, err);
        json_decref(spec);
        n++;
    }
    closedir(d);
    ck_assert_int_ge(n, 8);
    static const char *const shape[] = {"lr-as-string",      "epochs-at-top-level",
                                        "missing-model",     "not-an-object",
                                        "prune-two-targets", "resnet-depth",
                                        "several-problems",  "stage-unknown-field",
                                        "betas-with-sgd",    "adapt-dna-field-on-baseline"};
    for (size_t i = 0; i < sizeof shape / sizeof shape[0]; i++) {
        snprintf(path, sizeof path, "%s/examples/invalid/%s.json", api_dir(), shape[i]);
        json_t *spec = json_load_file(path, JSON_DECODE_ANY, NULL);
        ck_assert_ptr_nonnull(spec);
        ck_assert_msg(jsonschema_check(schema, schema, spec, NULL, NULL, err, sizeof err) < 0,
                      "%s passes the schema", shape[i]);
        json_decref(spec);
    }
    json_decref(schema);
}
END_TEST

START_TEST(invalid_examples_name_the_fields)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/examples/invalid", api_dir());
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s (run from the repository root or set KILN_API_DIR)",
                  dir);
    struct dirent *de;
    int n = 0;
    char u[128];
    url(u, sizeof u, "/api/v1/jobs");
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        char path[800], exp[800];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        snprintf(exp, sizeof exp, "%s/%.*s.expect", dir, (int)(len - 5), de->d_name);
        char *body = read_text(path);
        char *etext = read_text(exp);
        json_t *expect = json_loads(etext, 0, NULL);
        ck_assert_ptr_nonnull(expect);
        httpc_resp r;
        ck_assert_int_eq(httpc_post_json(u, body, &r), 0);
        const char *ecode = json_string_value(json_object_get(expect, "code"));
        long want = strcmp(ecode, "ERR_UNSUPPORTED") == 0 ? 501 : 400;
        ck_assert_msg(r.status == want, "%s: %ld (want %ld): %s", de->d_name, r.status, want,
                      r.body);
        ck_assert_str_eq(error_code(&r), want == 400 ? "INVALID_ARGUMENT" : "UNIMPLEMENTED");
        json_t *details = json_object_get(json_object_get(r.json, "error"), "details");
        json_t *fields = json_object_get(expect, "fields");
        ck_assert_msg(json_array_size(details) == json_array_size(fields), "%s: details %s",
                      de->d_name, r.body);
        size_t i;
        json_t *f;
        json_array_foreach(fields, i, f)
        {
            int found = 0;
            size_t j;
            json_t *dt;
            json_array_foreach(details, j, dt) found |=
                strcmp(json_string_value(json_object_get(dt, "field")), json_string_value(f)) == 0;
            ck_assert_msg(found, "%s: field '%s' not named in %s", de->d_name, json_string_value(f),
                          r.body);
        }
        httpc_free(&r);
        json_decref(expect);
        free(body);
        free(etext);
        n++;
    }
    closedir(d);
    ck_assert_int_gt(n, 5);
    /* nothing was stored */
    int64_t count;
    errbuf eb;
    ck_assert_int_eq(store_job_count(T.st, &count, &eb), 0);
    ck_assert_int_eq(count, 0);
}
END_TEST

START_TEST(submit_defaults_dry_run_idempotency)
{
    char path[512];
    snprintf(path, sizeof path, "%s/examples/train-resnet20-fmnist.json", api_dir());
    char *spec = read_text(path);
    char u[400];
    url(u, sizeof u, "/api/v1/jobs?dry_run=true");
    httpc_resp r;
    ck_assert_int_eq(httpc_post_json(u, spec, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert(json_is_true(json_object_get(r.json, "valid")));
    ck_assert_int_gt(json_integer_value(json_object_get(r.json, "params")), 1000);
    httpc_free(&r);
    int64_t count;
    errbuf eb;
    store_job_count(T.st, &count, &eb);
    ck_assert_int_eq(count, 0);

    url(u, sizeof u, "/api/v1/jobs");
    ck_assert_int_eq(httpc_post_json(u, spec, &r), 0);
    ck_assert_int_eq(r.status, 201);
    char loc[160];
    ck_assert_ptr_nonnull(httpc_header(&r, "Location", loc, sizeof loc));
    const char *id = json_string_value(json_object_get(r.json, "id"));
    char want[160];
    snprintf(want, sizeof want, "/api/v1/jobs/%s", id);
    ck_assert_str_eq(loc, want);
    json_t *s = json_object_get(r.json, "spec");
    /* defaults filled and shown */
    ck_assert(json_is_number(json_object_get(json_object_get(s, "optim"), "lr")));
    ck_assert(json_is_object(json_object_get(s, "resources")));
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "priority")), 60);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "max_restarts")), 2);
    ck_assert(json_real_value(json_object_get(r.json, "mflops")) > 1.0);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "state")), "QUEUED");
    httpc_free(&r);
    url(u, sizeof u, loc);
    ck_assert_int_eq(httpc_get(u, &r), 0);
    ck_assert_int_eq(r.status, 200);
    httpc_free(&r);

    /* the same Idempotency-Key and body: the same job; another body: 409 */
    static const char *const h[] = {"Content-Type: application/json", "Idempotency-Key: k-1", NULL};
    url(u, sizeof u, "/api/v1/jobs");
    ck_assert_int_eq(httpc_do("POST", u, h, spec, strlen(spec), &r), 0);
    ck_assert_int_eq(r.status, 201);
    char first[STORE_ID_MAX];
    snprintf(first, sizeof first, "%s", json_string_value(json_object_get(r.json, "id")));
    httpc_free(&r);
    ck_assert_int_eq(httpc_do("POST", u, h, spec, strlen(spec), &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "id")), first);
    httpc_free(&r);
    ck_assert_int_eq(httpc_do("POST", u, h, SMALL_JOB, strlen(SMALL_JOB), &r), 0);
    ck_assert_int_eq(r.status, 409);
    ck_assert_str_eq(error_code(&r), "CONFLICT");
    httpc_free(&r);
    free(spec);
}
END_TEST

START_TEST(error_shapes)
{
    char u[200];
    httpc_resp r;
    url(u, sizeof u, "/api/v1/nope");
    httpc_get(u, &r);
    ck_assert_int_eq(r.status, 404);
    ck_assert_str_eq(error_code(&r), "NOT_FOUND");
    httpc_free(&r);
    url(u, sizeof u, "/api/v1/jobs");
    httpc_do("PUT", u, NULL, "{}", 2, &r);
    ck_assert_int_eq(r.status, 405);
    ck_assert_str_eq(error_code(&r), "METHOD_NOT_ALLOWED");
    char allow[64];
    ck_assert_ptr_nonnull(httpc_header(&r, "Allow", allow, sizeof allow));
    ck_assert_str_eq(allow, "POST, GET");
    httpc_free(&r);
    /* over the body limit: 413, with and without a Content-Length */
    char *big = malloc(BODY_LIMIT * 2);
    memset(big, ' ', BODY_LIMIT * 2);
    big[0] = '{';
    big[BODY_LIMIT * 2 - 1] = '}';
    httpc_do("POST", u, (const char *const[]){"Content-Type: application/json", NULL}, big,
             BODY_LIMIT * 2, &r);
    ck_assert_int_eq(r.status, 413);
    ck_assert_str_eq(error_code(&r), "PAYLOAD_TOO_LARGE");
    httpc_free(&r);
    httpc_do(
        "POST", u,
        (const char *const[]){"Content-Type: application/json", "Transfer-Encoding: chunked", NULL},
        big, BODY_LIMIT * 2, &r);
    ck_assert_int_eq(r.status, 413);
    httpc_free(&r);
    free(big);
    httpc_do("POST", u, (const char *const[]){"Content-Type: text/plain", NULL}, "{}", 2, &r);
    ck_assert_int_eq(r.status, 415);
    httpc_free(&r);
    httpc_post_json(u, "{\"name\": ", &r);
    ck_assert_int_eq(r.status, 400);
    ck_assert_str_eq(
        json_string_value(json_object_get(
            json_array_get(json_object_get(json_object_get(r.json, "error"), "details"), 0),
            "field")),
        "body");
    httpc_free(&r);
    url(u, sizeof u, "/api/v1/jobs?page_size=0");
    httpc_get(u, &r);
    ck_assert_int_eq(r.status, 400);
    ck_assert_ptr_nonnull(strstr(r.body, "\"field\":\"page_size\""));
    httpc_free(&r);
    url(u, sizeof u, "/api/v1/jobs?state=DONE");
    httpc_get(u, &r);
    ck_assert_int_eq(r.status, 400);
    httpc_free(&r);
    url(u, sizeof u, "/api/v1/jobs/jdoesnotexist");
    httpc_get(u, &r);
    ck_assert_int_eq(r.status, 404);
    char rid[64];
    ck_assert_ptr_nonnull(httpc_header(&r, "X-Request-Id", rid, sizeof rid));
    ck_assert_str_eq(
        rid, json_string_value(json_object_get(json_object_get(r.json, "error"), "request_id")));
    httpc_free(&r);
    url(u, sizeof u, "/api/v1/jobs/jdoesnotexist/metrics?max_points=2");
    httpc_get(u, &r);
    ck_assert_int_eq(r.status, 400);
    httpc_free(&r);
}
END_TEST

START_TEST(list_pages)
{
    char ids[5][STORE_ID_MAX];
    for (int i = 0; i < 5; i++)
        snprintf(ids[i], sizeof ids[i], "%s", submit(SMALL_JOB));
    char u[256], tok[64] = "";
    int seen = 0, pages = 0;
    do {
        if (tok[0])
            snprintf(u, sizeof u, "%s/api/v1/jobs?page_size=2&page_token=%s", T.base, tok);
        else
            snprintf(u, sizeof u, "%s/api/v1/jobs?page_size=2", T.base);
        httpc_resp r;
        ck_assert_int_eq(httpc_get(u, &r), 0);
        ck_assert_int_eq(r.status, 200);
        json_t *jobs = json_object_get(r.json, "jobs");
        for (size_t i = 0; i < json_array_size(jobs); i++, seen++)
            ck_assert_str_eq(json_string_value(json_object_get(json_array_get(jobs, i), "id")),
                             ids[4 - seen]);
        json_t *nt = json_object_get(r.json, "next_page_token");
        snprintf(tok, sizeof tok, "%s", json_is_string(nt) ? json_string_value(nt) : "");
        httpc_free(&r);
        pages++;
    } while (tok[0] && pages < 10);
    ck_assert_int_eq(seen, 5);
    ck_assert_int_eq(pages, 3);
    httpc_resp r;
    snprintf(u, sizeof u, "%s/api/v1/jobs?page_token=garbage", T.base);
    httpc_get(u, &r);
    ck_assert_int_eq(r.status, 400);
    httpc_free(&r);
    snprintf(u, sizeof u, "%s/api/v1/jobs?state=QUEUED&type=train&q=small", T.base);
    httpc_get(u, &r);
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "jobs")), 5);
    httpc_free(&r);

    /* by priority: highest first, newest first within one, paged the same way */
    static const int prio[3] = {10, 90, 50};
    for (int i = 0; i < 3; i++) {
        char spec[400];
        snprintf(spec, sizeof spec,
                 "{\"name\":\"p%d\",\"priority\":%d,\"model\":{\"arch\":\"resnet_cifar\","
                 "\"depth\":20,\"widths\":[16,32,64]},\"data\":{\"dataset\":\"fashion-mnist\"}}",
                 prio[i], prio[i]);
        submit(spec);
    }
    int last_prio = 101, n = 0;
    char last_created[64] = "";
    tok[0] = '\0';
    pages = 0;
    do {
        snprintf(u, sizeof u, "%s/api/v1/jobs?order_by=priority&page_size=3%s%s", T.base,
                 tok[0] ? "&page_token=" : "", tok);
        ck_assert_int_eq(httpc_get(u, &r), 0);
        ck_assert_int_eq(r.status, 200);
        size_t i;
        json_t *j;
        json_array_foreach(json_object_get(r.json, "jobs"), i, j)
        {
            int p = (int)json_integer_value(json_object_get(j, "priority"));
            const char *c = json_string_value(json_object_get(j, "created_at"));
            ck_assert_int_le(p, last_prio);
            if (p == last_prio)
                ck_assert_int_le(strcmp(c, last_created), 0);
            last_prio = p;
            snprintf(last_created, sizeof last_created, "%s", c);
            n++;
        }
        if (n == 1)
            ck_assert_int_eq(last_prio, 90);
        json_t *nt = json_object_get(r.json, "next_page_token");
        snprintf(tok, sizeof tok, "%s", json_is_string(nt) ? json_string_value(nt) : "");
        httpc_free(&r);
    } while (tok[0] && ++pages < 10);
    ck_assert_int_eq(n, 8);
    ck_assert_int_eq(last_prio, 10);
    /* a token of one order is refused by the other */
    snprintf(u, sizeof u, "%s/api/v1/jobs?page_size=2", T.base);
    httpc_get(u, &r);
    snprintf(tok, sizeof tok, "%s", json_string_value(json_object_get(r.json, "next_page_token")));
    httpc_free(&r);
    snprintf(u, sizeof u, "%s/api/v1/jobs?order_by=priority&page_token=%s", T.base, tok);
    httpc_get(u, &r);
    ck_assert_int_eq(r.status, 400);
    httpc_free(&r);
    snprintf(u, sizeof u, "%s/api/v1/jobs?order_by=name", T.base);
    httpc_get(u, &r);
    ck_assert_int_eq(r.status, 400);
    httpc_free(&r);
}
END_TEST

START_TEST(run_metrics_artifact_range_delete)
{
    start_pool(1);
    char id[STORE_ID_MAX];
    snprintf(id, sizeof id, "%s", submit(SMALL_JOB));
    wait_http_state(id, "SUCCEEDED", 5000);
    char u[256];
    httpc_resp r;
    /* metrics through after_seq, 7 at a time: seq 1..60 each once */
    long after = 0, n = 0;
    for (int guard = 0; guard < 100; guard++) {
        snprintf(u, sizeof u, "%s/api/v1/jobs/%s/metrics?after_seq=%ld&limit=7", T.base, id, after);
        ck_assert_int_eq(httpc_get(u, &r), 0);
        ck_assert_int_eq(r.status, 200);
        json_t *pts = json_object_get(r.json, "points");
        for (size_t i = 0; i < json_array_size(pts); i++)
            ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(pts, i), "seq")),
                             ++n);
        long next = (long)json_integer_value(json_object_get(r.json, "next_seq"));
        size_t got = json_array_size(pts);
        httpc_free(&r);
        if (got == 0)
            break;
        after = next;
    }
    ck_assert_int_eq(n, 60);
    snprintf(u, sizeof u, "%s/api/v1/jobs/%s/metrics?names=train_loss&max_points=8", T.base, id);
    httpc_get(u, &r);
    ck_assert_uint_le(json_array_size(json_object_get(r.json, "points")), 8);
    ck_assert(json_is_true(json_object_get(r.json, "downsampled")));
    httpc_free(&r);
    snprintf(u, sizeof u, "%s/api/v1/jobs/%s/logs?tail=5", T.base, id);
    httpc_get(u, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_ge(json_array_size(json_object_get(r.json, "lines")), 1);
    httpc_free(&r);
    /* the event stream of a finished job: everything, then the end */
    snprintf(u, sizeof u, "%s/api/v1/jobs/%s/events", T.base, id);
    ck_assert_int_eq(httpc_stream(u, NULL, 5000, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"to\":\"SUCCEEDED\""));
    ck_assert_ptr_nonnull(strstr(r.body, "event: end\n"));
    httpc_free(&r);

    /* the artifact: whole, and byte ranges */
    snprintf(u, sizeof u, "%s/api/v1/jobs/%s/artifacts", T.base, id);
    httpc_get(u, &r);
    json_t *a0 = json_array_get(json_object_get(r.json, "artifacts"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(a0, "name")), "model.safetensors");
    long size = (long)json_integer_value(json_object_get(a0, "size"));
    httpc_free(&r);
    snprintf(u, sizeof u, "%s/api/v1/jobs/%s/artifacts/model.safetensors", T.base, id);
    httpc_get(u, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq((long)r.len, size);
    char *whole = malloc(r.len);
    memcpy(whole, r.body, r.len);
    httpc_free(&r);
    httpc_do("GET", u, (const char *const[]){"Range: bytes=10-19", NULL}, NULL, 0, &r);
    ck_assert_int_eq(r.status, 206);
    ck_assert_int_eq(r.len, 10);
    ck_assert_mem_eq(r.body, whole + 10, 10);
    char cr[64], want[64];
    snprintf(want, sizeof want, "bytes 10-19/%ld", size);
    ck_assert_str_eq(httpc_header(&r, "Content-Range", cr, sizeof cr), want);
    httpc_free(&r);
    httpc_do("GET", u, (const char *const[]){"Range: bytes=-5", NULL}, NULL, 0, &r);
    ck_assert_int_eq(r.status, 206);
    ck_assert_mem_eq(r.body, whole + size - 5, 5);
    httpc_free(&r);
    httpc_do("GET", u, (const char *const[]){"Range: bytes=99999999-", NULL}, NULL, 0, &r);
    ck_assert_int_eq(r.status, 416);
    httpc_free(&r);
    free(whole);
    snprintf(u, sizeof u, "%s/api/v1/jobs/%s/artifacts/nothing.bin", T.base, id);
    httpc_get(u, &r);
    ck_assert_int_eq(r.status, 404);
    httpc_free(&r);

    snprintf(u, sizeof u, "%s/api/v1/workers", T.base);
    httpc_get(u, &r);
    json_t *w0 = json_array_get(json_object_get(r.json, "workers"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(w0, "id")), "api-pool");
    httpc_free(&r);

    /* delete: the job and its files go */
    snprintf(u, sizeof u, "%s/api/v1/jobs/%s", T.base, id);
    httpc_do("DELETE", u, NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 204);
    httpc_free(&r);
    httpc_get(u, &r);
    ck_assert_int_eq(r.status, 404);
    httpc_free(&r);
    char jd[256];
    snprintf(jd, sizeof jd, "%s/jobs/%s", T.dir, id);
    ck_assert_int_ne(access(jd, F_OK), 0);
}
END_TEST

START_TEST(cancel_queued_and_running)
{
    char u[256];
    httpc_resp r;
    /* queued (no pool yet): CANCELLED at once; again: 409 */
    char q[STORE_ID_MAX];
    snprintf(q, sizeof q, "%s", submit(SMALL_JOB));
    snprintf(u, sizeof u, "%s/api/v1/jobs/%s/cancel", T.base, q);
    httpc_do("POST", u, NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 202);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "state")), "CANCELLED");
    httpc_free(&r);
    httpc_do("POST", u, NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 409);
    httpc_free(&r);
    /* running: CANCELLING, then CANCELLED once the pool stopped */
    const char *longjob =
        "{\"name\":\"long\",\"model\":{\"arch\":\"resnet_cifar\",\"depth\":20,\"widths\":[16,32,"
        "64]},\"data\":{\"dataset\":\"fashion-mnist\"},\"optim\":{\"epochs\":1,\"max_steps\":"
        "100000}}";
    char id[STORE_ID_MAX];
    snprintf(id, sizeof id, "%s", submit(longjob));
    start_pool(5);
    wait_http_state(id, "RUNNING", 3000);
    snprintf(u, sizeof u, "%s/api/v1/jobs/%s", T.base, id);
    httpc_do("DELETE", u, NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 409);
    httpc_free(&r);
    snprintf(u, sizeof u, "%s/api/v1/jobs/%s/cancel", T.base, id);
    httpc_do("POST", u, NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 202);
    const char *st = json_string_value(json_object_get(r.json, "state"));
    ck_assert(strcmp(st, "CANCELLING") == 0 || strcmp(st, "CANCELLED") == 0);
    httpc_free(&r);
    wait_http_state(id, "CANCELLED", 2000);
    snprintf(u, sizeof u, "%s/api/v1/jobs/%s", T.base, id);
    httpc_get(u, &r);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "reason")), "USER_CANCELLED");
    httpc_free(&r);
}
END_TEST

START_TEST(health_and_dashboard)
{
    char u[128];
    httpc_resp r;
    url(u, sizeof u, "/healthz");
    httpc_get(u, &r);
    ck_assert_int_eq(r.status, 200);
    httpc_free(&r);
    url(u, sizeof u, "/readyz");
    httpc_get(u, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "ready");
    httpc_free(&r);
    submit(SMALL_JOB);
    url(u, sizeof u, "/metrics");
    httpc_get(u, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "kiln_jobs{state=\"QUEUED\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "kiln_broker_up 1\n"));
    httpc_free(&r);
    url(u, sizeof u, "/");
    httpc_get(u, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "src=\"/dashboard/app.js\""));
    ck_assert_ptr_null(strstr(r.body, "<script>")); /* no inline script */
    char h[512];
    ck_assert_ptr_nonnull(httpc_header(&r, "Content-Security-Policy", h, sizeof h));
    ck_assert_ptr_nonnull(strstr(h, "script-src 'self';"));
    ck_assert_ptr_nonnull(strstr(h, "frame-ancestors 'none'"));
    ck_assert_ptr_null(strstr(h, "unsafe"));
    ck_assert_str_eq(httpc_header(&r, "X-Content-Type-Options", h, sizeof h), "nosniff");
    httpc_free(&r);
    url(u, sizeof u, "/dashboard/app.js");
    httpc_get(u, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(httpc_header(&r, "Content-Type", h, sizeof h),
                     "text/javascript; charset=utf-8");
    ck_assert_ptr_nonnull(httpc_header(&r, "Content-Security-Policy", h, sizeof h));
    httpc_free(&r);
    url(u, sizeof u, "/dashboard/none.js");
    httpc_get(u, &r);
    ck_assert_int_eq(r.status, 404);
    httpc_free(&r);
    /* API answers are nosniff too */
    url(u, sizeof u, "/api/v1/jobs");
    httpc_get(u, &r);
    ck_assert_str_eq(httpc_header(&r, "X-Content-Type-Options", h, sizeof h), "nosniff");
    httpc_free(&r);
    url(u, sizeof u, "/");
    /* HEAD is served like GET, without a body */
    httpc_do("HEAD", u, NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.len, 0);
    httpc_free(&r);
}
END_TEST

START_TEST(every_threading_mode_serves)
{
    /* the fixture runs the pool mode; the other two here */
    static const http_mode modes[2] = {HTTP_MODE_EPOLL, HTTP_MODE_PER_CONNECTION};
    for (int i = 0; i < 2; i++) {
        http_server *h;
        errbuf eb;
        http_options ho = {.address = "127.0.0.1", .port = 0, .body_limit = 1024, .mode = modes[i]};
        ck_assert_int_eq(http_start(&h, &ho, routes_dispatch, &T.app, &eb), 0);
        char u[128];
        snprintf(u, sizeof u, "http://127.0.0.1:%d/healthz", http_port(h));
        httpc_resp r;
        ck_assert_int_eq(httpc_get(u, &r), 0);
        ck_assert_int_eq(r.status, 200);
        httpc_free(&r);
        http_stop(h);
    }
    errbuf eb;
    http_server *h;
    http_options bad = {.address = "not-an-ip", .port = 0, .body_limit = 1024};
    ck_assert_int_eq(http_start(&h, &bad, routes_dispatch, &T.app, &eb), ERR_INVALID);
}
END_TEST

Suite *suite_api(void)
{
    Suite *s = suite_create("api");
    tu_case_add(s, "http", 30, setup, teardown,
                TU_TESTS(openapi_routes_answer_as_documented, schema_check_catches_wrong_answers,
                         examples_match_the_spec_schema, invalid_examples_name_the_fields,
                         submit_defaults_dry_run_idempotency, error_shapes, list_pages,
                         run_metrics_artifact_range_delete, cancel_queued_and_running,
                         health_and_dashboard, every_threading_mode_serves));
    return s;
}
