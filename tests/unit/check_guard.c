/* check_guard.c - the server under attack and over time: bearer tokens and
 * scopes, connection limits against slow and half-open clients, event
 * streams (replay from Last-Event-ID, keepalives, freeing on disconnect) and
 * the Prometheus counters. A real server on 127.0.0.1:0; jobs run on the
 * scripted fakepool (a test double). Every loop is bounded in count and time.
 */
#include "common/clock.h"
#include "common/msg.h"
#include "server/app.h"
#include "server/auth.h"
#include "server/broker.h"
#include "server/http.h"
#include "server/routes.h"
#include "server/sse.h"
#include "server/stats.h"
#include "server/submitq.h"
#include "tests/unit/testserver.h"
#include "tests/unit/testutil.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

Suite *suite_guard(void);

static testserver T;

/* Three tokens, one per scope; the hashes are computed, not pasted. */
static const char *TOK_READ = "kiln_reader-0123456789";
static const char *TOK_SUBMIT = "kiln_submitter-0123456789";
static const char *TOK_ADMIN = "kiln_admin-0123456789";
static const char *TOK_SUBMIT2 = "kiln_other-submitter-0123456789";

/* The tokens file of the suites with tokens: the hashes are computed, not pasted. */
static const char *tokens_text(void)
{
    static char text[1024];
    char h1[72], h2[72], h3[72], h4[72];
    auth_hash(TOK_READ, h1);
    auth_hash(TOK_SUBMIT, h2);
    auth_hash(TOK_ADMIN, h3);
    auth_hash(TOK_SUBMIT2, h4);
    snprintf(text, sizeof text,
             "# name scopes hash\nviewer read %s\nci submit,read %s\n\nroot admin %s\n"
             "ci2 submit,read %s\n",
             h1, h2, h3, h4);
    return text;
}

/* A server with POSTs group-committed, as in kiln-server, and event streams that
 * keep alive every 300 ms, at most 6 at once; o sets the rest. */
static void start(testserver_options o)
{
    o.tag = "guard";
    o.mode = HTTP_MODE_POOL;
    o.group_commit = 1;
    o.sse.keepalive_ms = 300;
    o.sse.max_streams = 6;
    testserver_start(&T, &o);
}

static void setup_default(void)
{
    start((testserver_options){0});
}

static void setup_tokens(void)
{
    start((testserver_options){.tokens_text = tokens_text()});
}

static void setup_limits(void)
{
    start((testserver_options){.per_ip = 8, .idle_s = 2, .header_s = 1});
}

static void setup_owner_limits(void)
{
    start((testserver_options){.tokens_text = tokens_text(), .owner_max_queued = 2});
}

static void teardown(void)
{
    testserver_stop(&T);
}

static void start_pool(int step_ms)
{
    testserver_start_pool(
        &T, (fakepool_options){
                .pool_id = "guard-pool", .ranks = 2, .step_ms = step_ms, .ckpt_every = 5});
}

static const char *JOB =
    "{\"name\":\"guard\",\"model\":{\"arch\":\"resnet_cifar\",\"depth\":20,\"widths\":[16,32,"
    "64]},\"data\":{\"dataset\":\"fashion-mnist\"},\"optim\":{\"epochs\":1,\"max_steps\":25}}";

/* A request with an optional bearer token; returns the status. */
static long req_tok(const char *method, const char *path, const char *tok, const char *body,
                    httpc_resp *r)
{
    return testserver_req(&T, method, path, tok, body, r);
}

static void submit(const char *tok, char id[STORE_ID_MAX])
{
    httpc_resp r;
    ck_assert_int_eq(req_tok("POST", "/api/v1/jobs", tok, JOB, &r), 201);
    snprintf(id, STORE_ID_MAX, "%s", json_string_value(json_object_get(r.json, "id")));
    httpc_free(&r);
}

static void wait_state(const char *id, const char *want, int ms)
{
    testserver_wait_state(&T, id, want, ms);
}

/* ---- auth, without a server ---------------------------------------------------- */

START_TEST(auth_file_hash_and_check)
{
    /* SHA-256("abc") from FIPS 180-2, an independent vector */
    char h[72];
    auth_hash("abc", h);
    ck_assert_str_eq(h, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    char text[512];
    snprintf(text, sizeof text, "a read %s\nb admin %s\n", h, h);
    auth *a;
    errbuf eb;
    /* the same hash twice is fine; the same name twice is not */
    ck_assert_int_eq(auth_parse(&a, text, strlen(text), "t", &eb), 0);
    ck_assert_int_eq(auth_count(a), 2);
    unsigned sc;
    char name[AUTH_NAME_MAX];
    ck_assert_int_eq(auth_check(a, "abc", &sc, name), 1);
    ck_assert_str_eq(name, "a");
    ck_assert_uint_eq(sc, AUTH_READ);
    ck_assert_int_eq(auth_check(a, "abd", &sc, name), 0);
    ck_assert_uint_eq(sc, 0);
    ck_assert_int_eq(auth_check(a, "", &sc, NULL), 0);
    auth_free(a);
    ck_assert_int_eq(auth_scopes_parse("admin", &sc, &eb), 0);
    ck_assert_uint_eq(sc, AUTH_READ | AUTH_SUBMIT | AUTH_ADMIN | AUTH_POOL);
    ck_assert_int_eq(auth_scopes_parse("read,write", &sc, &eb), ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(eb.msg, "'write'"));

    /* bad files name the line and the problem */
    static const char *const bad[][2] = {
        {"x read sha256:abc\n", "line 1"},
        {"# c\nx read\n", "line 2"},
        {"x fly sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n",
         "'fly'"},
        {"x read abc123\n", "sha256:"},
        {"# only a comment\n", "no token"},
        {"a/b read sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n",
         "name"},
        {"a read sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n"
         "a read sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n",
         "twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(auth_parse(&a, bad[i][0], strlen(bad[i][0]), "tokens.txt", &eb),
                         ERR_FORMAT);
        ck_assert_ptr_null(a);
        ck_assert_msg(strstr(eb.msg, bad[i][1]) != NULL, "case %zu: '%s' lacks '%s'", i, eb.msg,
                      bad[i][1]);
    }
    ck_assert_int_eq(auth_load(&a, "/nonexistent/tokens", &eb), ERR_IO);

    /* new tokens are random and well-formed */
    char t1[64], t2[64];
    auth_token_new(t1);
    auth_token_new(t2);
    ck_assert_uint_eq(strlen(t1), 5 + 43);
    ck_assert_str_ne(t1, t2);
    ck_assert_str_eq(auth_bearer("Bearer  xyz"), "xyz");
    ck_assert_str_eq(auth_bearer("bearer xyz"), "xyz");
    ck_assert_ptr_null(auth_bearer("Basic xyz"));
    ck_assert_ptr_null(auth_bearer("Bearer "));
    ck_assert_ptr_null(auth_bearer(NULL));
}
END_TEST

/* ---- auth over HTTP --------------------------------------------------------------- */

START_TEST(tokens_and_scopes)
{
    httpc_resp r;
    /* no token, a wrong token: 401 with a challenge */
    ck_assert_int_eq(req_tok("GET", "/api/v1/jobs", NULL, NULL, &r), 401);
    char ch[64];
    ck_assert_ptr_nonnull(httpc_header(&r, "WWW-Authenticate", ch, sizeof ch));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "error"), "code")),
                     "UNAUTHENTICATED");
    httpc_free(&r);
    ck_assert_int_eq(req_tok("GET", "/api/v1/jobs", "kiln_not-a-token", NULL, &r), 401);
    httpc_free(&r);
    ck_assert_int_eq(req_tok("GET", "/metrics", NULL, NULL, &r), 401);
    httpc_free(&r);
    ck_assert_int_eq(req_tok("GET", "/api/v1/events", NULL, NULL, &r), 401);
    httpc_free(&r);
    /* public routes need none */
    ck_assert_int_eq(req_tok("GET", "/healthz", NULL, NULL, &r), 200);
    httpc_free(&r);
    ck_assert_int_eq(req_tok("GET", "/readyz", NULL, NULL, &r), 200);
    httpc_free(&r);
    /* read may read, not submit: 403 naming the scope */
    ck_assert_int_eq(req_tok("GET", "/api/v1/jobs", TOK_READ, NULL, &r), 200);
    httpc_free(&r);
    ck_assert_int_eq(req_tok("POST", "/api/v1/jobs", TOK_READ, JOB, &r), 403);
    ck_assert_ptr_nonnull(strstr(r.body, "'submit'"));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "error"), "code")),
                     "PERMISSION_DENIED");
    httpc_free(&r);
    /* submit may submit, and cancel and delete its own jobs only */
    char id[STORE_ID_MAX], id2[STORE_ID_MAX];
    submit(TOK_SUBMIT, id);
    submit(TOK_SUBMIT2, id2);
    char p[128];
    snprintf(p, sizeof p, "/api/v1/jobs/%s", id);
    ck_assert_int_eq(req_tok("GET", p, TOK_READ, NULL, &r), 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "owner")), "ci");
    httpc_free(&r);
    ck_assert_int_eq(req_tok("GET", "/api/v1/jobs?owner=ci2", TOK_READ, NULL, &r), 200);
    json_t *items = json_object_get(r.json, "jobs");
    ck_assert_int_eq((int)json_array_size(items), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "id")), id2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "owner")), "ci2");
    httpc_free(&r);
    snprintf(p, sizeof p, "/api/v1/jobs/%s/cancel", id);
    ck_assert_int_eq(req_tok("POST", p, TOK_READ, NULL, &r), 403);
    httpc_free(&r);
    ck_assert_int_eq(req_tok("POST", p, TOK_SUBMIT2, NULL, &r), 403);
    ck_assert_ptr_nonnull(strstr(r.body, "belongs to 'ci'"));
    httpc_free(&r);
    ck_assert_int_eq(req_tok("POST", p, TOK_SUBMIT, NULL, &r), 202);
    httpc_free(&r);
    snprintf(p, sizeof p, "/api/v1/jobs/%s", id);
    ck_assert_int_eq(req_tok("DELETE", p, TOK_SUBMIT2, NULL, &r), 403);
    httpc_free(&r);
    ck_assert_int_eq(req_tok("DELETE", p, TOK_SUBMIT, NULL, &r), 204);
    httpc_free(&r);
    /* admin may do everything, to anyone's jobs */
    snprintf(p, sizeof p, "/api/v1/jobs/%s/cancel", id2);
    ck_assert_int_eq(req_tok("POST", p, TOK_ADMIN, NULL, &r), 202);
    httpc_free(&r);
    snprintf(p, sizeof p, "/api/v1/jobs/%s", id2);
    ck_assert_int_eq(req_tok("GET", p, TOK_ADMIN, NULL, &r), 200);
    httpc_free(&r);
    ck_assert_int_eq(req_tok("DELETE", p, TOK_ADMIN, NULL, &r), 204);
    httpc_free(&r);
    /* the refusals are counted like any answer */
    ck_assert_int_eq(req_tok("GET", "/metrics", TOK_READ, NULL, &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "kiln_http_requests_total{route=\"GET /api/v1/jobs\","
                                         "code=\"401\"} 2\n"));
    ck_assert_ptr_nonnull(
        strstr(r.body, "kiln_http_requests_total{route=\"POST /api/v1/jobs\",code=\"403\"} 1\n"));
    httpc_free(&r);
}
END_TEST

/* ---- slow and half-open clients ---------------------------------------------------- */

/* A TCP connection to the server from source address src (127.0.0.x). */
static int connect_from(const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    inet_pton(AF_INET, src, &a.sin_addr);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    a.sin_port = htons((uint16_t)http_port(T.http));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* 1 when the peer closed fd (EOF or reset), without blocking. */
static int peer_closed(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0)
        return 0;
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* A normal client's request, timed: the server must stay responsive. */
static int64_t timed_health(void)
{
    int64_t t0 = clock_mono_ms();
    httpc_resp r;
    char u[128];
    snprintf(u, sizeof u, "%s/healthz", T.base);
    ck_assert_int_eq(httpc_get(u, &r), 0);
    ck_assert_int_eq(r.status, 200);
    httpc_free(&r);
    return clock_mono_ms() - t0;
}

START_TEST(slowloris_cannot_exhaust)
{
    /* 24 attackers from 127.0.0.2 (per-address limit 8, header deadline 1 s,
     * idle timeout 2 s): 12 trickle a header byte every 200 ms, 12 send
     * nothing at all. Bounded: 24 sockets, 4 s. */
    enum { N = 24 };
    int fd[N];
    int64_t closed_at[N];
    for (int i = 0; i < N; i++) {
        fd[i] = connect_from("127.0.0.2");
        closed_at[i] = -1;
        if (i % 2 == 0)
            ck_assert_int_gt(send(fd[i], "GET /healthz HTTP/1.1\r\n", 23, MSG_NOSIGNAL), 0);
    }
    int64_t t0 = clock_mono_ms(), worst = 0;
    int max_conns = 0;
    while (clock_mono_ms() - t0 < 4000) {
        for (int i = 0; i < N; i++) {
            if (closed_at[i] >= 0)
                continue;
            if (peer_closed(fd[i])) {
                closed_at[i] = clock_mono_ms() - t0;
                continue;
            }
            if (i % 2 == 0)
                send(fd[i], "X", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        int64_t t = timed_health();
        worst = t > worst ? t : worst;
        int c = http_connections(T.http);
        max_conns = c > max_conns ? c : max_conns;
        testserver_sleep_ms(200);
    }
    int closed = 0, late = 0;
    for (int i = 0; i < N; i++) {
        closed += closed_at[i] >= 0;
        late += closed_at[i] > 2500;
        close(fd[i]);
    }
    printf("slowloris: %d/%d attacker connections closed by the server, %d after 2.5 s; at most "
           "%d connections open; worst /healthz %lld ms; %lu header timeouts\n",
           closed, N, late, max_conns, (long long)worst, http_header_timeouts(T.http));
    ck_assert_int_eq(closed, N);        /* nobody holds a connection */
    ck_assert_int_eq(late, 0);          /* each within the deadline (+ slack) */
    ck_assert_int_le(max_conns, 8 + 1); /* the per-address limit (+ our own request) */
    ck_assert_int_lt(worst, 1000);      /* the server kept answering others */
    ck_assert_uint_ge(http_header_timeouts(T.http), 8);
    /* after the attack, connections drain to zero */
    for (int t = 0; t < 100 && http_connections(T.http) > 0; t++)
        testserver_sleep_ms(20);
    ck_assert_int_eq(http_connections(T.http), 0);
}
END_TEST

START_TEST(body_limit_and_keepalive_reuse)
{
    httpc_resp r;
    char *big = malloc(20000);
    memset(big, ' ', 20000);
    big[0] = '{';
    big[19999] = '}';
    char u[128];
    snprintf(u, sizeof u, "%s/api/v1/jobs", T.base);
    httpc_do("POST", u, (const char *const[]){"Content-Type: application/json", NULL}, big, 20000,
             &r);
    ck_assert_int_eq(r.status, 413);
    httpc_free(&r);
    free(big);
    /* a well-behaved keep-alive client is not cut by the header deadline
     * while it is answered: ten requests over one connection */
    int fd = connect_from("127.0.0.3");
    for (int i = 0; i < 10; i++) {
        const char *q = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        ck_assert_int_eq(send(fd, q, strlen(q), MSG_NOSIGNAL), (ssize_t)strlen(q));
        char buf[1024];
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        ck_assert_int_gt(n, 0);
        buf[n] = '\0';
        ck_assert_ptr_nonnull(strstr(buf, "200 OK"));
        testserver_sleep_ms(50);
    }
    close(fd);
}
END_TEST

START_TEST(artifact_names_stay_in_the_job_folder)
{
    start_pool(1);
    char id[STORE_ID_MAX];
    submit(NULL, id);
    wait_state(id, "SUCCEEDED", 5000);
    /* a secret next to the job folders, and the path tricks that would reach it */
    char secret[128];
    snprintf(secret, sizeof secret, "%s/jobs/secret.txt", T.dir);
    FILE *f = fopen(secret, "w");
    ck_assert_ptr_nonnull(f);
    fputs("do not serve me", f);
    fclose(f);
    static const char *const tricks[] = {
        "..%2Fsecret.txt",
        "..%2F..%2Fkiln.db",
        "%2e%2e%2fsecret.txt",
        ".secret",
        "..",
        "a%2F..%2F..%2Fsecret.txt",
        "%00model.safetensors",
        "model.safetensors%2F..%2F..%2F..%2Fsecret.txt",
    };
    for (size_t i = 0; i < sizeof tricks / sizeof tricks[0]; i++) {
        char p[256];
        snprintf(p, sizeof p, "/api/v1/jobs/%s/artifacts/%s", id, tricks[i]);
        httpc_resp r;
        long st = req_tok("GET", p, NULL, NULL, &r);
        /* 400 for an escaped control character (%00), 404 for the rest */
        ck_assert_msg(st == (strstr(tricks[i], "%00") != NULL ? 400 : 404), "%s answered %ld",
                      tricks[i], st);
        ck_assert_ptr_null(strstr(r.body, "do not serve me"));
        httpc_free(&r);
    }
    /* the real one is served */
    char p[256];
    snprintf(p, sizeof p, "/api/v1/jobs/%s/artifacts/model.safetensors", id);
    httpc_resp r;
    ck_assert_int_eq(req_tok("GET", p, NULL, NULL, &r), 200);
    httpc_free(&r);
    /* a pool cannot name an artifact (or a job) outside the folder either */
    static const char *const bad_msgs[] = {
        "{\"type\":\"finished\",\"job_id\":\"j1\",\"attempt\":1,\"seq\":1,\"status\":"
        "\"succeeded\",\"artifacts\":[{\"name\":\"../../kiln.db\",\"size\":1}]}",
        "{\"type\":\"finished\",\"job_id\":\"j1\",\"attempt\":1,\"seq\":1,\"status\":"
        "\"succeeded\",\"artifacts\":[{\"name\":\".hidden\",\"size\":1}]}",
        "{\"type\":\"checkpoint\",\"job_id\":\"../x\",\"attempt\":1,\"seq\":1,\"step\":1}",
        "{\"type\":\"checkpoint\",\"job_id\":\"..\",\"attempt\":1,\"seq\":1,\"step\":1}",
    };
    for (size_t i = 0; i < sizeof bad_msgs / sizeof bad_msgs[0]; i++) {
        msg m;
        errbuf eb;
        ck_assert_int_eq(msg_decode(&m, bad_msgs[i], strlen(bad_msgs[i]), &eb), ERR_INVALID);
        ck_assert_ptr_nonnull(strstr(eb.msg, "field '"));
        msg_deinit(&m);
    }
}
END_TEST

/* ---- event streams ------------------------------------------------------------------ */

/* Splits an event-stream body into events: ids[] and the raw text of each
 * event after its id line (types and data). Returns the count. */
static int parse_events(const char *body, char ids[][64], char texts[][512], int max)
{
    int n = 0;
    const char *p = body;
    while (n < max && (p = strstr(p, "id: ")) != NULL) {
        const char *e = strchr(p, '\n');
        snprintf(ids[n], 64, "%.*s", (int)(e - p - 4), p + 4);
        const char *end = strstr(e, "\n\n");
        snprintf(texts[n], 512, "%.*s", end != NULL ? (int)(end - e - 1) : 0, e + 1);
        n++;
        p = end != NULL ? end : e;
    }
    return n;
}

START_TEST(sse_replays_from_last_event_id)
{
    start_pool(2);
    char id[STORE_ID_MAX];
    submit(NULL, id);
    wait_state(id, "SUCCEEDED", 5000);
    char u[256];
    snprintf(u, sizeof u, "%s/api/v1/jobs/%s/events", T.base, id);
    httpc_resp r;
    ck_assert_int_eq(httpc_stream(u, NULL, 5000, &r), 0);
    ck_assert_int_eq(r.status, 200);
    char ctype[64];
    ck_assert_str_eq(httpc_header(&r, "Content-Type", ctype, sizeof ctype),
                     "text/event-stream; charset=utf-8");
    static char ids[400][64], texts[400][512];
    int n = parse_events(r.body, ids, texts, 400);
    /* 25 steps x 2 metrics, the log line, the 3 checkpoints kept (keep_last
     * 3 of 5), 4 state events, end */
    int metrics = 0, states = 0, ckpts = 0, logs = 0;
    for (int i = 0; i < n; i++) {
        metrics += strncmp(texts[i], "event: metric\n", 14) == 0;
        states += strncmp(texts[i], "event: state\n", 13) == 0;
        ckpts += strncmp(texts[i], "event: checkpoint\n", 18) == 0;
        logs += strncmp(texts[i], "event: log\n", 11) == 0;
    }
    ck_assert_int_eq(metrics, 50);
    ck_assert_int_eq(ckpts, 3);
    ck_assert_int_ge(logs, 1);
    ck_assert_int_eq(states, 4); /* QUEUED, STARTING, RUNNING, SUCCEEDED */
    ck_assert_int_eq(strncmp(texts[n - 1], "event: end\n", 11), 0);
    ck_assert_ptr_nonnull(strstr(texts[n - 1], "\"state\":\"SUCCEEDED\""));
    /* reconnect after event k: exactly events k+1.. again, for several k */
    for (int k = 0; k < n - 1; k += 13) {
        char hdr[96];
        snprintf(hdr, sizeof hdr, "Last-Event-ID: %.64s", ids[k]);
        httpc_resp r2;
        ck_assert_int_eq(httpc_stream(u, (const char *const[]){hdr, NULL}, 5000, &r2), 0);
        static char ids2[400][64], texts2[400][512];
        int n2 = parse_events(r2.body, ids2, texts2, 400);
        ck_assert_int_eq(n2, n - 1 - k);
        for (int i = 0; i < n2; i++) {
            ck_assert_str_eq(texts2[i], texts[k + 1 + i]);
            if (i < n2 - 1)
                ck_assert_str_eq(ids2[i], ids[k + 1 + i]);
        }
        httpc_free(&r2);
    }
    httpc_free(&r);
    /* logs follow: log events only, ending */
    snprintf(u, sizeof u, "%s/api/v1/jobs/%s/logs?follow=true", T.base, id);
    ck_assert_int_eq(httpc_stream(u, NULL, 5000, &r), 0);
    ck_assert_ptr_nonnull(strstr(r.body, "event: log\n"));
    ck_assert_ptr_null(strstr(r.body, "event: metric\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "event: end\n"));
    httpc_free(&r);
    /* a cursor of the wrong shape is a 400 naming it */
    snprintf(u, sizeof u, "%s/api/v1/jobs/%s/events?last_event_id=1.2", T.base, id);
    ck_assert_int_eq(httpc_get(u, &r), 0);
    ck_assert_int_eq(r.status, 400);
    ck_assert_ptr_nonnull(strstr(r.body, "Last-Event-ID"));
    httpc_free(&r);
    snprintf(u, sizeof u, "%s/api/v1/jobs/jnope/events", T.base);
    ck_assert_int_eq(httpc_get(u, &r), 0);
    ck_assert_int_eq(r.status, 404);
    httpc_free(&r);
    /* the all-jobs stream from event 0: this job's transitions in order */
    snprintf(u, sizeof u, "%s/api/v1/events", T.base);
    ck_assert_int_eq(httpc_stream(u, (const char *const[]){"Last-Event-ID: 0", NULL}, 800, &r), 0);
    n = parse_events(r.body, ids, texts, 400);
    ck_assert_int_eq(n, 4);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(atoi(ids[i]), i + 1);
    ck_assert_ptr_nonnull(strstr(texts[3], "\"to\":\"SUCCEEDED\""));
    httpc_free(&r);
}
END_TEST

START_TEST(sse_live_keepalive_and_disconnect)
{
    /* a live stream sees a job submitted after it opened, and keepalives */
    char u[256];
    snprintf(u, sizeof u, "%s/api/v1/events", T.base);
    int fd = connect_from("127.0.0.1");
    const char *q = "GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(send(fd, q, strlen(q), MSG_NOSIGNAL), (ssize_t)strlen(q));
    testserver_sleep_ms(100);
    char id[STORE_ID_MAX];
    submit(NULL, id);
    char buf[16384];
    size_t got = 0;
    int64_t t0 = clock_mono_ms();
    while (clock_mono_ms() - t0 < 1200 && got < sizeof buf - 1) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
            ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
    }
    buf[got] = '\0';
    ck_assert_ptr_nonnull(strstr(buf, "text/event-stream"));
    ck_assert_ptr_nonnull(strstr(buf, id));
    ck_assert_ptr_nonnull(strstr(buf, "\"to\":\"QUEUED\""));
    int keepalives = 0;
    for (const char *k = buf; (k = strstr(k, ": keepalive")) != NULL; k++)
        keepalives++;
    ck_assert_int_ge(keepalives, 2); /* 1.2 s at one per 300 ms of silence */
    close(fd);

    /* streams over the limit get 503; closed ones are freed */
    int fds[6];
    for (int i = 0; i < 6; i++) {
        fds[i] = connect_from("127.0.0.1");
        ck_assert_int_eq(send(fds[i], q, strlen(q), MSG_NOSIGNAL), (ssize_t)strlen(q));
    }
    for (int t = 0; t < 100 && sse_hub_count(T.hub) < 6; t++)
        testserver_sleep_ms(20);
    ck_assert_int_eq(sse_hub_count(T.hub), 6);
    ck_assert_int_eq(stats_sse_open(T.stats), 6);
    httpc_resp r;
    ck_assert_int_eq(httpc_get(u, &r), 0);
    ck_assert_int_eq(r.status, 503);
    char ra[16];
    ck_assert_ptr_nonnull(httpc_header(&r, "Retry-After", ra, sizeof ra));
    httpc_free(&r);
    for (int i = 0; i < 6; i++)
        close(fds[i]);
    /* a closed stream is noticed at its next write (a keepalive at most
     * 300 ms later) and freed */
    int64_t t1 = clock_mono_ms();
    while (sse_hub_count(T.hub) > 0 && clock_mono_ms() - t1 < 3000)
        testserver_sleep_ms(20);
    printf("sse: 6 closed streams freed in %lld ms\n", (long long)(clock_mono_ms() - t1));
    ck_assert_int_eq(sse_hub_count(T.hub), 0);
    ck_assert_int_eq(stats_sse_open(T.stats), 0);
    for (int t = 0; t < 100 && http_connections(T.http) > 0; t++)
        testserver_sleep_ms(20);
    ck_assert_int_eq(http_connections(T.http), 0);
    /* a server stopping with open streams ends them (teardown stops it) */
    fd = connect_from("127.0.0.1");
    ck_assert_int_eq(send(fd, q, strlen(q), MSG_NOSIGNAL), (ssize_t)strlen(q));
    for (int t = 0; t < 100 && sse_hub_count(T.hub) < 1; t++)
        testserver_sleep_ms(20);
    http_stop(T.http);
    T.http = NULL;
    ck_assert_int_eq(sse_hub_count(T.hub), 0);
    close(fd);
}
END_TEST

START_TEST(prometheus_counters)
{
    start_pool(1);
    char id[STORE_ID_MAX];
    submit(NULL, id);
    wait_state(id, "SUCCEEDED", 5000);
    httpc_resp r;
    ck_assert_int_eq(req_tok("GET", "/api/v1/nope", NULL, NULL, &r), 404);
    httpc_free(&r);
    ck_assert_int_eq(req_tok("GET", "/metrics", NULL, NULL, &r), 200);
    const char *b = r.body;
    ck_assert_ptr_nonnull(strstr(b, "kiln_jobs{state=\"SUCCEEDED\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(b, "kiln_queue_depth 0\n"));
    ck_assert_ptr_nonnull(strstr(b, "kiln_attempts{reason=\"COMPLETED\"} 1\n"));
    ck_assert_ptr_nonnull(
        strstr(b, "kiln_pool_heartbeat_age_seconds{pool=\"guard-pool\",state=\"idle\"} "));
    ck_assert_ptr_nonnull(
        strstr(b, "kiln_http_requests_total{route=\"POST /api/v1/jobs\",code=\"201\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(b, "kiln_http_requests_total{route=\"other\",code=\"404\"} 1\n"));
    ck_assert_ptr_nonnull(
        strstr(b, "kiln_http_request_duration_seconds_count{route=\"POST /api/v1/jobs\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(
        b,
        "kiln_http_request_duration_seconds_bucket{route=\"POST /api/v1/jobs\",le=\"+Inf\"} 1\n"));
    /* 25 metric points travel in batches: at least one metric message in;
     * one ack out per applied batch; the job's assign out */
    const char *m = strstr(b, "kiln_zmq_messages_total{direction=\"in\",type=\"metric\"} ");
    ck_assert_ptr_nonnull(m);
    ck_assert_int_ge(atoi(m + strlen("kiln_zmq_messages_total{direction=\"in\",type=\"metric\"} ")),
                     1);
    ck_assert_ptr_nonnull(
        strstr(b, "kiln_zmq_messages_total{direction=\"out\",type=\"assign\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(b, "kiln_zmq_messages_total{direction=\"in\",type=\"finished\"} "
                                    "1\n"));
    ck_assert_ptr_nonnull(strstr(b, "kiln_zmq_errors_total{direction=\"in\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(b, "kiln_sse_streams 0\n"));
    /* every sample line is "name{labels} value" or "name value" */
    for (const char *line = b; *line != '\0';) {
        const char *e = strchr(line, '\n');
        ck_assert_ptr_nonnull(e);
        if (line[0] != '#') {
            const char *sp = e;
            while (sp > line && sp[-1] != ' ')
                sp--;
            sp = sp > line ? sp - 1 : NULL;
            ck_assert_msg(sp != NULL && strncmp(line, "kiln_", 5) == 0, "bad line %.*s",
                          (int)(e - line), line);
            char *end;
            strtod(sp + 1, &end);
            ck_assert_msg(end == e, "bad value in %.*s", (int)(e - line), line);
        }
        line = e + 1;
    }
    httpc_free(&r);
}
END_TEST

/* One raw request on a new connection; the status of the answer (0 if none). */
static int raw_status(const char *request, char *body, size_t blen)
{
    int fd = connect_from("127.0.0.4");
    ck_assert_int_eq(send(fd, request, strlen(request), MSG_NOSIGNAL), (ssize_t)strlen(request));
    char buf[4096];
    size_t got = 0;
    ssize_t n;
    struct pollfd p = {fd, POLLIN, 0};
    while (got < sizeof buf - 1 && poll(&p, 1, 3000) > 0 &&
           (n = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0) {
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL && strchr(strstr(buf, "\r\n\r\n"), '}') != NULL)
            break;
    }
    close(fd);
    buf[got] = '\0';
    if (body != NULL)
        snprintf(body, blen, "%s", buf);
    int status = 0;
    return sscanf(buf, "HTTP/1.%*d %d", &status) == 1 ? status : 0;
}

START_TEST(strict_http_framing)
{
    start_pool(1);
    char id[STORE_ID_MAX];
    submit(NULL, id);
    wait_state(id, "SUCCEEDED", 5000);
    char body[4096], q[512];
    /* the well-formed request is answered, so the refusals below are about the form */
    ck_assert_int_eq(raw_status("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", NULL, 0), 200);
    ck_assert_int_eq(raw_status("GET /healthz HTTP/1.0\r\n\r\n", NULL, 0), 200);
    ck_assert_int_eq(raw_status("GET /healthz HTTP/1.1\r\n\r\n", body, sizeof body), 400);
    ck_assert_ptr_nonnull(strstr(body, "without a Host header"));
    ck_assert_int_eq(raw_status("POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                "application/json\r\nContent-Length: 2\r\nContent-Length: "
                                "40\r\n\r\n{}",
                                body, sizeof body),
                     400);
    ck_assert_ptr_nonnull(strstr(body, "conflicting Content-Length"));
    ck_assert_int_eq(raw_status("POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: "
                                "2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                                body, sizeof body),
                     400);
    /* the artifact exists: with %00 it must not be served, nor the path cut short */
    snprintf(q, sizeof q,
             "GET /api/v1/jobs/%s/artifacts/model.safetensors HTTP/1.1\r\nHost: x\r\n\r\n", id);
    ck_assert_int_eq(raw_status(q, NULL, 0), 200);
    snprintf(q, sizeof q,
             "GET /api/v1/jobs/%s/artifacts/model.safetensors%%00.txt HTTP/1.1\r\nHost: x\r\n\r\n",
             id);
    ck_assert_int_eq(raw_status(q, body, sizeof body), 400);
    ck_assert_ptr_nonnull(strstr(body, "NUL (%00)"));
    snprintf(q, sizeof q, "GET /api/v1/jobs?name=a%%00b HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(raw_status(q, NULL, 0), 400);
    snprintf(q, sizeof q, "GET /api/v1/jobs/%%0a HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(raw_status(q, NULL, 0), 400);
    /* a newline in a query value is data (a JSON config, a name), not framing */
    snprintf(q, sizeof q, "GET /api/v1/jobs?name=a%%0ab HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(raw_status(q, NULL, 0), 200);
    /* integers out of range are refused, not clamped */
    snprintf(
        q, sizeof q,
        "GET /api/v1/jobs/%s/metrics?after_seq=99999999999999999999 HTTP/1.1\r\nHost: x\r\n\r\n",
        id);
    ck_assert_int_eq(raw_status(q, body, sizeof body), 400);
    ck_assert_ptr_nonnull(strstr(body, "after_seq"));
    snprintf(q, sizeof q, "GET /api/v1/jobs?page_size=1001 HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(raw_status(q, NULL, 0), 400);
    /* the connection is still good for the next client */
    ck_assert_int_eq(raw_status("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", NULL, 0), 200);
}
END_TEST

START_TEST(owner_queue_limit)
{
    /* 'ci' may have two jobs waiting (no pool runs them): the third POST is
     * 429 naming the limit; another owner is not held by it; a cancel makes
     * room again. */
    char a[STORE_ID_MAX], b[STORE_ID_MAX], c[STORE_ID_MAX];
    submit(TOK_SUBMIT, a);
    submit(TOK_SUBMIT, b);
    httpc_resp r;
    ck_assert_int_eq(req_tok("POST", "/api/v1/jobs", TOK_SUBMIT, JOB, &r), 429);
    ck_assert_ptr_nonnull(strstr(r.body, "owner 'ci' has 2 jobs waiting"));
    ck_assert_ptr_nonnull(strstr(r.body, "--owner-max-queued 2"));
    httpc_free(&r);
    submit(TOK_SUBMIT2, c);
    char p[128];
    snprintf(p, sizeof p, "/api/v1/jobs/%s/cancel", a);
    ck_assert_int_eq(req_tok("POST", p, TOK_SUBMIT, NULL, &r), 202);
    httpc_free(&r);
    submit(TOK_SUBMIT, a);
    int64_t n;
    errbuf eb;
    ck_assert_int_eq(store_job_count(T.st, &n, &eb), 0);
    ck_assert_int_eq(n, 4); /* the cancelled one, b, c and the new one: nothing refused stored */
}
END_TEST

Suite *suite_guard(void)
{
    Suite *s = suite_create("guard");
    tu_case_add(s, "auth", 0, NULL, NULL, TU_TESTS(auth_file_hash_and_check));
    tu_case_add(s, "tokens", 30, setup_tokens, teardown, TU_TESTS(tokens_and_scopes));
    tu_case_add(s, "owners", 30, setup_owner_limits, teardown, TU_TESTS(owner_queue_limit));
    tu_case_add(s, "limits", 30, setup_limits, teardown,
                TU_TESTS(slowloris_cannot_exhaust, body_limit_and_keepalive_reuse));
    tu_case_add(s, "events", 30, setup_default, teardown,
                TU_TESTS(sse_replays_from_last_event_id, sse_live_keepalive_and_disconnect,
                         prometheus_counters, artifact_names_stay_in_the_job_folder,
                         strict_http_framing));
    return s;
}
