/* check_handlers.c - routes and handlers called directly: no sockets, no broker. */
#include "server/handlers.h"
#include "server/yamljson.h"
#include "tests/unit/testutil.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_handlers(void);

static app A;

static void setup(void)
{
    memset(&A, 0, sizeof A);
    errbuf eb;
    ck_assert_int_eq(store_open(&A.st, ":memory:", &eb), 0);
    snprintf(A.data_dir, sizeof A.data_dir, "/nonexistent");
    A.body_limit = 1024;
}

static void teardown(void)
{
    store_close(A.st);
}

/* Dispatches method path?query with an optional JSON body. */
static int call(const char *method, const char *path, const char *body, http_response *resp)
{
    static http_request req;
    memset(&req, 0, sizeof req);
    static char pathbuf[256], qbuf[256];
    snprintf(pathbuf, sizeof pathbuf, "%s", path);
    char *q = strchr(pathbuf, '?');
    if (q != NULL) {
        *q = '\0';
        snprintf(qbuf, sizeof qbuf, "%s", q + 1);
        for (char *kv = strtok(qbuf, "&"); kv != NULL; kv = strtok(NULL, "&")) {
            char *eq = strchr(kv, '=');
            if (eq != NULL)
                *eq = '\0';
            req.query[req.n_query].key = kv;
            req.query[req.n_query].value = eq != NULL ? eq + 1 : "";
            req.n_query++;
        }
    }
    req.method = method;
    req.path = pathbuf;
    req.body = body;
    req.len = body != NULL ? strlen(body) : 0;
    snprintf(req.request_id, sizeof req.request_id, "rtest");
    http_response_init(resp);
    routes_dispatch(&A, &req, resp);
    return resp->status;
}

static const char *err_field(const http_response *r, int i)
{
    json_t *d = json_object_get(json_object_get(r->json, "error"), "details");
    return json_string_value(json_object_get(json_array_get(d, (size_t)i), "field"));
}

START_TEST(submit_validates_and_stores)
{
    http_response r;
    ck_assert_int_eq(call("POST", "/api/v1/jobs",
                          "{\"model\":{\"arch\":\"resnet_cifar\"},"
                          "\"optim\":{\"lr\":-1}}",
                          &r),
                     400);
    ck_assert_str_eq(err_field(&r, 0), "optim.lr");
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(r.json, "error"), "request_id")),
        "rtest");
    http_response_free(&r);
    /* adapt jobs are validated like the others: a target out of reach is a 400 */
    ck_assert_int_eq(call("POST", "/api/v1/jobs",
                          "{\"type\":\"adapt\",\"model\":{\"arch\":\"resnet_cifar\"},"
                          "\"adapt\":{\"method\":\"dna\",\"target_mflops\":1000}}",
                          &r),
                     400);
    ck_assert_str_eq(err_field(&r, 0), "adapt.target_mflops");
    http_response_free(&r);
    ck_assert_int_eq(call("POST", "/api/v1/jobs",
                          "{\"type\":\"adapt\",\"model\":{\"arch\":\"resnet_cifar\"},"
                          "\"adapt\":{\"method\":\"dna\",\"target_ratio\":1.3}}",
                          &r),
                     201);
    http_response_free(&r);
    ck_assert_int_eq(
        call("POST", "/api/v1/jobs", "{\"name\":\"ok\",\"model\":{\"arch\":\"resnet_cifar\"}}", &r),
        201);
    const char *id = json_string_value(json_object_get(r.json, "id"));
    char path[128];
    snprintf(path, sizeof path, "/api/v1/jobs/%s", id);
    ck_assert_int_eq(r.n_headers, 2); /* and X-Content-Type-Options, on every answer */
    ck_assert_str_eq(r.hkey[0], "Location");
    ck_assert_str_eq(r.hval[0], path);
    ck_assert_str_eq(r.hkey[1], "X-Content-Type-Options");
    http_response_free(&r);
    ck_assert_int_eq(call("GET", path, NULL, &r), 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "state")), "QUEUED");
    http_response_free(&r);
    /* no broker: no pools, and not ready */
    ck_assert_int_eq(call("GET", "/api/v1/workers", NULL, &r), 200);
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "workers")), 0);
    http_response_free(&r);
    ck_assert_int_eq(call("GET", "/readyz", NULL, &r), 503);
    http_response_free(&r);
}
END_TEST

START_TEST(router_errors)
{
    http_response r;
    ck_assert_int_eq(call("GET", "/api/v1/jobs/a/b/c", NULL, &r), 404);
    http_response_free(&r);
    ck_assert_int_eq(call("PATCH", "/api/v1/jobs/x", NULL, &r), 405);
    ck_assert_str_eq(r.hval[0], "GET, DELETE");
    http_response_free(&r);
    ck_assert_int_eq(call("POST", "/api/v1/jobs", NULL, &r), 400);
    ck_assert_str_eq(err_field(&r, 0), "body");
    http_response_free(&r);
    ck_assert_int_eq(call("POST", "/api/v1/jobs", "[1]", &r), 400);
    ck_assert_str_eq(err_field(&r, 0), "");
    http_response_free(&r);
    ck_assert_int_eq(call("GET", "/api/v1/jobs?page_size=abc", NULL, &r), 400);
    ck_assert_str_eq(err_field(&r, 0), "page_size");
    http_response_free(&r);
    ck_assert_int_eq(call("GET", "/api/v1/jobs/j1/metrics?after_seq=-1", NULL, &r), 400);
    ck_assert_str_eq(err_field(&r, 0), "after_seq");
    http_response_free(&r);
    ck_assert_int_eq(call("GET", "/api/v1/jobs/j1/metrics", NULL, &r), 404);
    http_response_free(&r);
    ck_assert_int_eq(call("GET", "/api/v1/jobs/j1/logs?follow=true", NULL, &r), 404);
    http_response_free(&r);
    ck_assert_int_eq(call("GET", "/api/v1/jobs/j1/logs?follow=maybe", NULL, &r), 400);
    ck_assert_str_eq(err_field(&r, 0), "follow");
    http_response_free(&r);
    ck_assert_int_eq(call("GET", "/api/v1/jobs/j1/artifacts/..secret", NULL, &r), 404);
    http_response_free(&r);
    ck_assert_int_eq(call("POST", "/api/v1/jobs/j1/cancel", NULL, &r), 404);
    http_response_free(&r);
    ck_assert_int_eq(call("DELETE", "/api/v1/jobs/j1", NULL, &r), 404);
    http_response_free(&r);
    /* the body limit, as http.c reports it */
    http_request req;
    memset(&req, 0, sizeof req);
    req.method = "POST";
    req.path = "/api/v1/jobs";
    req.too_large = 1;
    http_response_init(&r);
    routes_dispatch(&A, &req, &r);
    ck_assert_int_eq(r.status, 413);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "error"), "code")),
                     "PAYLOAD_TOO_LARGE");
    http_response_free(&r);
}
END_TEST

START_TEST(yaml_to_json)
{
    const char *y = "a: 1\nb: [x, 'y', 2.5, true, null]\nc:\n  d: '3'\n  e: -4\n";
    json_t *j;
    errbuf eb;
    ck_assert_int_eq(yamljson_parse(y, strlen(y), &j, &eb), 0);
    json_t *want = json_loads("{\"a\":1,\"b\":[\"x\",\"y\",2.5,true,null],\"c\":{\"d\":\"3\","
                              "\"e\":-4}}",
                              0, NULL);
    ck_assert(json_equal(j, want));
    json_decref(j);
    json_decref(want);
    const char *bad = "a: {b: 1\n";
    ck_assert_int_eq(yamljson_parse(bad, strlen(bad), &j, &eb), ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(eb.msg, "line"));
}
END_TEST

Suite *suite_handlers(void)
{
    Suite *s = suite_create("handlers");
    tu_case_add(s, "direct", 0, setup, teardown,
                TU_TESTS(submit_validates_and_stores, router_errors, yaml_to_json));
    return s;
}
