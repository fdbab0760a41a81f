/* testserver.h - a real kiln server inside the test process, for the suites that
 * talk to one over HTTP and ZeroMQ (check_api, check_guard, check_hostile).
 *
 * testserver_start wires what kiln-server's main wires: the store on a file in a new
 * /tmp/kiln-<tag>-XXXXXX folder, the request counters, the event-stream hub, the
 * broker on tcp loopback (heartbeat 100 ms, liveness 5), optionally bearer tokens and
 * the group-committing submission queue, and HTTP on 127.0.0.1 at a free port. Jobs
 * run on tests/unit/fakepool.c (a scripted test double of a pool). Every call fails
 * the current test when something does not start.
 */
#ifndef KILN_TESTSERVER_H
#define KILN_TESTSERVER_H

#include "server/app.h"
#include "server/auth.h"
#include "server/broker.h"
#include "server/http.h"
#include "server/sse.h"
#include "server/stats.h"
#include "server/submitq.h"
#include "tests/unit/fakepool.h"
#include "tests/unit/httpc.h"

/* What a suite's fixture changes; zero is the default of each field. */
typedef struct testserver_options {
    const char *tag;              /* the temporary folder's name part: "api", "guard", ... */
    const char *tokens_text;      /* a tokens file's text (server/auth.h): bearer tokens on the
                                   * HTTP routes; NULL = none */
    int pool_tokens;              /* the broker checks pools' tokens against them too */
    int group_commit;             /* POSTs go through the submission queue, as in kiln-server */
    http_mode mode;               /* the suites use HTTP_MODE_POOL (0 is HTTP_MODE_EPOLL) */
    int per_ip, idle_s, header_s; /* http_options' limits (0: its defaults) */
    sse_options sse;              /* poll_ms defaults to 20 here */
    double max_job_memory;        /* app's admission limit (0: none) */
    int owner_max_queued;         /* app's per-owner queue limit (0: none) */
    void (*prepare_app)(app *a);  /* sets more of the app before HTTP starts; NULL: nothing */
} testserver_options;

typedef struct testserver {
    store *st;
    server_stats *stats;
    sse_hub *hub;
    broker *broker;
    auth *tokens;     /* NULL without tokens_text */
    submitq *submits; /* NULL without group_commit */
    app app;          /* the handlers' context */
    http_server *http;
    fakepool *pool; /* NULL until testserver_start_pool */
    char dir[64];   /* the data folder */
    char base[64];  /* "http://127.0.0.1:<port>" */
} testserver;

/* The body limit of the test servers' requests. */
#define TESTSERVER_BODY_LIMIT 8192

void testserver_start(testserver *t, const testserver_options *o);

/* Stops everything testserver_start (and testserver_start_pool) started and removes the
 * data folder. */
void testserver_stop(testserver *t);

/* Starts a fakepool (options fo; its endpoint is t's broker) as t->pool, stopped by
 * testserver_stop unless the test stops it first (and sets t->pool to NULL). */
void testserver_start_pool(testserver *t, fakepool_options fo);

/* One request to t at path, with a bearer token (NULL: none) and a JSON body (NULL:
 * none); *r receives the answer (httpc_free it). Returns the status. */
long testserver_req(const testserver *t, const char *method, const char *path, const char *tok,
                    const char *body, httpc_resp *r);

/* Waits up to ms milliseconds for job id to reach the state named want (read from the
 * store); fails the test naming the state it is in. */
void testserver_wait_state(const testserver *t, const char *id, const char *want, int ms);

/* Sleeps ms milliseconds. */
void testserver_sleep_ms(int ms);

#endif
