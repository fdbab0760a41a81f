/* testserver.c - a real kiln server inside the test process (see testserver.h). */
#include "tests/unit/testserver.h"

#include "server/routes.h"
#include "tests/unit/testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void testserver_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void testserver_start(testserver *t, const testserver_options *o)
{
    errbuf eb = {{0}};
    memset(t, 0, sizeof *t);
    char *dir = tu_temp_dir(o->tag != NULL ? o->tag : "server");
    snprintf(t->dir, sizeof t->dir, "%s", dir);
    free(dir);
    char db[128];
    snprintf(db, sizeof db, "%s/kiln.db", t->dir);
    ck_assert_msg(store_open(&t->st, db, &eb) == 0, "%s", eb.msg);
    t->stats = stats_new(routes_labels(), routes_count());
    sse_options so = o->sse;
    if (so.poll_ms == 0)
        so.poll_ms = 20;
    t->hub = sse_hub_new(t->st, t->stats, &so);
    if (o->tokens_text != NULL)
        ck_assert_msg(
            auth_parse(&t->tokens, o->tokens_text, strlen(o->tokens_text), "test tokens", &eb) == 0,
            "%s", eb.msg);
    broker_options bo = {.endpoint = "tcp://127.0.0.1:*",
                         .heartbeat_ms = 100,
                         .liveness = 5,
                         .data_dir = t->dir,
                         .stats = t->stats,
                         .auth = o->pool_tokens ? t->tokens : NULL};
    ck_assert_msg(broker_start(&t->broker, t->st, &bo, &eb) == 0, "%s", eb.msg);
    app *a = &t->app;
    a->st = t->st;
    snprintf(a->data_dir, sizeof a->data_dir, "%s", t->dir);
    a->body_limit = TESTSERVER_BODY_LIMIT;
    a->max_job_memory = o->max_job_memory;
    a->owner_limits.max_queued = o->owner_max_queued;
    a->wake = broker_wake;
    a->workers = broker_workers;
    a->broker_ready = broker_ready;
    a->broker_ctx = t->broker;
    a->stats = t->stats;
    a->sse = t->hub;
    a->auth = t->tokens;
    if (o->group_commit) {
        ck_assert_msg(submitq_start(&t->submits, t->st, &eb) == 0, "%s", eb.msg);
        a->submits = t->submits;
    }
    if (o->prepare_app != NULL)
        o->prepare_app(a);
    http_options ho = {.address = "127.0.0.1",
                       .port = 0,
                       .body_limit = TESTSERVER_BODY_LIMIT,
                       .mode = o->mode,
                       .threads = 2,
                       .per_ip_limit = o->per_ip,
                       .idle_timeout_s = o->idle_s,
                       .header_timeout_s = o->header_s};
    ck_assert_msg(http_start(&t->http, &ho, routes_dispatch, &t->app, &eb) == 0, "%s", eb.msg);
    ck_assert_int_gt(http_port(t->http), 0);
    snprintf(t->base, sizeof t->base, "http://127.0.0.1:%d", http_port(t->http));
}

void testserver_stop(testserver *t)
{
    fakepool_stop(t->pool);
    if (t->submits != NULL)
        submitq_drain(t->submits);
    http_stop(t->http);
    submitq_free(t->submits);
    sse_hub_free(t->hub);
    broker_stop(t->broker);
    store_close(t->st);
    stats_free(t->stats);
    auth_free(t->tokens);
    tu_remove_dir(t->dir);
    memset(t, 0, sizeof *t);
}

void testserver_start_pool(testserver *t, fakepool_options fo)
{
    fo.endpoint = broker_endpoint(t->broker);
    t->pool = fakepool_start(&fo);
    ck_assert_ptr_nonnull(t->pool);
}

long testserver_req(const testserver *t, const char *method, const char *path, const char *tok,
                    const char *body, httpc_resp *r)
{
    char u[512], auth_h[128];
    snprintf(u, sizeof u, "%s%s", t->base, path);
    const char *h[3] = {NULL, NULL, NULL};
    int n = 0;
    if (tok != NULL) {
        snprintf(auth_h, sizeof auth_h, "Authorization: Bearer %s", tok);
        h[n++] = auth_h;
    }
    if (body != NULL)
        h[n++] = "Content-Type: application/json";
    ck_assert_int_eq(httpc_do(method, u, h, body, body != NULL ? strlen(body) : 0, r), 0);
    return r->status;
}

void testserver_wait_state(const testserver *t, const char *id, const char *want, int ms)
{
    char st[32] = "";
    for (int waited = 0; waited < ms; waited += 20) {
        job_state s;
        errbuf eb;
        ck_assert_int_eq(store_job_state(t->st, id, &s, NULL, NULL, &eb), 0);
        snprintf(st, sizeof st, "%s", store_state_name(s));
        if (strcmp(st, want) == 0)
            return;
        testserver_sleep_ms(20);
    }
    ck_abort_msg("job %s is %s, expected %s", id, st, want);
}
