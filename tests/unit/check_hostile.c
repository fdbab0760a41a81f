/* check_hostile.c - the server among many users, against the defects a probe
 * found: admission control of oversized models and failures a retry cannot
 * fix, pool identity bound to the first connection, checkpoint resends and
 * temporary files, event-stream slots, and strict HTTP parsing. A real
 * server on 127.0.0.1:0 with pools that are the scripted fakepool (a test
 * double) or raw ZeroMQ sockets. Every loop is bounded in count and time.
 */
#include "common/files.h"
#include "common/msg.h"
#include "server/app.h"
#include "server/auth.h"
#include "server/broker.h"
#include "server/http.h"
#include "server/routes.h"
#include "server/sse.h"
#include "server/stats.h"
#include "tests/unit/testserver.h"
#include "tests/unit/testutil.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

Suite *suite_hostile(void);

static testserver T;

static const char *TOK_SUBMIT = "kiln_submitter-0123456789";
static const char *TOK_ADMIN = "kiln_admin-0123456789";
static const char *TOK_POOL = "kiln_pool-0123456789";
static const char *TOK_POOL2 = "kiln_pool2-0123456789";

/* The tokens file of the suites with tokens (submit, admin and two pool tokens): the
 * hashes are computed, not pasted. */
static const char *tokens_text(void)
{
    static char text[1024];
    char h1[72], h2[72], h3[72], h4[72];
    auth_hash(TOK_SUBMIT, h1);
    auth_hash(TOK_ADMIN, h2);
    auth_hash(TOK_POOL, h3);
    auth_hash(TOK_POOL2, h4);
    snprintf(text, sizeof text, "ci submit,read %s\nroot admin %s\ngpu pool %s\ngpu2 pool %s\n", h1,
             h2, h3, h4);
    return text;
}

/* A server whose event streams keep alive only every 30 s (a closed stream must be
 * noticed without them), at most 6 at once unless o says, 3 per owner; tokens, when
 * given, bind the pools too. o sets the rest. */
static void start(testserver_options o)
{
    o.tag = "hostile";
    o.mode = HTTP_MODE_POOL;
    o.pool_tokens = 1;
    o.sse.keepalive_ms = 30000;
    if (o.sse.max_streams == 0)
        o.sse.max_streams = 6;
    o.sse.max_per_owner = 3;
    testserver_start(&T, &o);
}

static void setup_plain(void)
{
    start((testserver_options){0});
}

static void setup_tokens(void)
{
    start((testserver_options){.tokens_text = tokens_text()});
}

static void setup_limit(void)
{
    start((testserver_options){.max_job_memory = 64.0 * 1024 * 1024});
}

static void teardown(void)
{
    testserver_stop(&T);
}

/* A request with an optional bearer token; returns the status. */
static long req(const char *method, const char *path, const char *tok, const char *body,
                httpc_resp *r)
{
    return testserver_req(&T, method, path, tok, body, r);
}

/* The one {field, reason} detail of an error answer. */
static const char *detail(const httpc_resp *r, const char *key)
{
    json_t *d = json_array_get(json_object_get(json_object_get(r->json, "error"), "details"), 0);
    const char *v = json_string_value(json_object_get(d, key));
    return v != NULL ? v : "";
}

static void wait_state(const char *id, const char *want, int ms)
{
    testserver_wait_state(&T, id, want, ms);
}

/* Waits until GET /workers lists pool `id`. */
static void wait_pool(const char *id, const char *tok)
{
    for (int t = 0; t < 5000; t += 20) {
        httpc_resp r;
        req("GET", "/api/v1/workers", tok, NULL, &r);
        char *text = r.body;
        int seen = text != NULL && strstr(text, id) != NULL;
        httpc_free(&r);
        if (seen)
            return;
        testserver_sleep_ms(20);
    }
    ck_abort_msg("pool %s did not join", id);
}

#define RESNET20                                                                                   \
    "\"model\":{\"arch\":\"resnet_cifar\",\"depth\":20,\"widths\":[16,32,64]},"                    \
    "\"data\":{\"dataset\":\"fashion-mnist\"}"

/* ---- 1. admission control and failures a retry cannot fix ------------------------- */

START_TEST(oversized_models_are_refused)
{
    testserver_start_pool(
        &T, (fakepool_options){
                .pool_id = "mem-pool", .ranks = 2, .step_ms = 1, .rank_memory = (int64_t)1 << 30});
    wait_pool("mem-pool", NULL);
    httpc_resp r;
    /* the pool says its memory */
    ck_assert_int_eq(req("GET", "/api/v1/workers", NULL, NULL, &r), 200);
    json_t *w =
        json_array_get(json_is_array(r.json) ? r.json : json_object_get(r.json, "workers"), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(w, "rank_memory")), (json_int_t)1 << 30);
    ck_assert_int_eq(json_integer_value(json_object_get(w, "memory")), (json_int_t)2 << 30);
    httpc_free(&r);
    /* the probe's ResNet: 232e9 parameters */
    ck_assert_int_eq(req("POST", "/api/v1/jobs", NULL,
                         "{\"model\":{\"arch\":\"resnet_cifar\",\"depth\":386,\"widths\":[8192,"
                         "8192,8192]},\"data\":{\"dataset\":\"synthetic\"}}",
                         &r),
                     400);
    ck_assert_str_eq(detail(&r, "field"), "model");
    ck_assert_msg(strstr(detail(&r, "reason"), "mem-pool") != NULL, "%s", r.body);
    httpc_free(&r);
    /* a DeiT of 7e11 parameters */
    ck_assert_int_eq(req("POST", "/api/v1/jobs", NULL,
                         "{\"model\":{\"arch\":\"deit\",\"image_size\":32,\"in_channels\":3,"
                         "\"num_classes\":10,\"embed_dim\":8192,\"depth\":64,\"num_heads\":64,"
                         "\"patch_size\":4,\"mlp_ratio\":16},\"data\":{\"dataset\":\"synthetic\","
                         "\"synthetic\":{\"size\":32,\"channels\":3}}}",
                         &r),
                     400);
    ck_assert_msg(strcmp(detail(&r, "field"), "model") == 0, "%s", r.body);
    httpc_free(&r);
    /* a small model with a huge batch: the batch is named */
    ck_assert_int_eq(
        req("POST", "/api/v1/jobs", NULL,
            "{" RESNET20 ",\"optim\":{\"batch_size\":16384},\"resources\":{\"ranks\":2}}", &r),
        400);
    ck_assert_str_eq(detail(&r, "field"), "optim.batch_size");
    httpc_free(&r);
    /* the same model at its default batch runs */
    ck_assert_int_eq(req("POST", "/api/v1/jobs", NULL,
                         "{" RESNET20 ",\"optim\":{\"max_steps\":3},\"resources\":{\"ranks\":2}}",
                         &r),
                     201);
    char id[STORE_ID_MAX];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(r.json, "id")));
    httpc_free(&r);
    wait_state(id, "SUCCEEDED", 10000);
}
END_TEST

START_TEST(max_job_memory_is_enforced)
{
    httpc_resp r;
    /* ResNet-20 at batch 128 needs more than 64 MiB; its state alone does not */
    ck_assert_int_eq(req("POST", "/api/v1/jobs", NULL, "{" RESNET20 "}", &r), 400);
    ck_assert_str_eq(detail(&r, "field"), "optim.batch_size");
    ck_assert_msg(strstr(detail(&r, "reason"), "--max-job-memory") != NULL, "%s", r.body);
    httpc_free(&r);
    ck_assert_int_eq(
        req("POST", "/api/v1/jobs", NULL,
            "{\"model\":{\"arch\":\"resnet_cifar\",\"depth\":20,\"widths\":[256,512,1024]},"
            "\"data\":{\"dataset\":\"fashion-mnist\"},\"optim\":{\"batch_size\":2}}",
            &r),
        400);
    ck_assert_str_eq(detail(&r, "field"), "model");
    httpc_free(&r);
    ck_assert_int_eq(
        req("POST", "/api/v1/jobs", NULL, "{" RESNET20 ",\"optim\":{\"batch_size\":8}}", &r), 201);
    httpc_free(&r);
}
END_TEST

/* OUT_OF_MEMORY (and the other reasons a retry cannot fix) end the job at
 * once, whatever retry.max_restarts allows; RANK_FAILED is retried. */
START_TEST(failures_a_retry_cannot_fix_are_final)
{
    const char *reasons[] = {"OUT_OF_MEMORY", "INVALID_DATA", "RANK_FAILED"};
    for (int i = 0; i < 3; i++) {
        testserver_start_pool(&T, (fakepool_options){.pool_id = "oom-pool",
                                                     .ranks = 1,
                                                     .step_ms = 1,
                                                     .fail_first = 1,
                                                     .fail_reason = reasons[i]});
        httpc_resp r;
        ck_assert_int_eq(req("POST", "/api/v1/jobs", NULL,
                             "{" RESNET20
                             ",\"optim\":{\"max_steps\":5},\"retry\":{\"max_restarts\":"
                             "3},\"resources\":{\"ranks\":1}}",
                             &r),
                         201);
        char id[STORE_ID_MAX];
        snprintf(id, sizeof id, "%s", json_string_value(json_object_get(r.json, "id")));
        httpc_free(&r);
        wait_state(id, i < 2 ? "FAILED" : "SUCCEEDED", 10000);
        char path[128];
        snprintf(path, sizeof path, "/api/v1/jobs/%s", id);
        ck_assert_int_eq(req("GET", path, NULL, NULL, &r), 200);
        ck_assert_int_eq(json_integer_value(json_object_get(r.json, "attempt")), i < 2 ? 1 : 2);
        if (i < 2)
            ck_assert_str_eq(json_string_value(json_object_get(r.json, "reason")), reasons[i]);
        httpc_free(&r);
        fakepool_stop(T.pool);
        T.pool = NULL;
    }
}
END_TEST

/* ---- 2. pool identity -------------------------------------------------------------- */

/* A raw pool connection: routing id, PLAIN user name and password. */
static void *rogue_open(void *ctx, const char *routing_id, const char *user, const char *pass)
{
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    ck_assert_ptr_nonnull(d);
    int zero = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(d, ZMQ_ROUTING_ID, routing_id, strlen(routing_id));
    if (user != NULL) {
        zmq_setsockopt(d, ZMQ_PLAIN_USERNAME, user, strlen(user));
        zmq_setsockopt(d, ZMQ_PLAIN_PASSWORD, pass, strlen(pass));
    }
    ck_assert_int_eq(zmq_connect(d, broker_endpoint(T.broker)), 0);
    return d;
}

static void rogue_send(void *d, msg *m)
{
    size_t len;
    char *hdr = msg_encode(m, &len);
    zmq_send(d, hdr, len, m->n_blobs > 0 ? ZMQ_SNDMORE : 0);
    for (int i = 0; i < m->n_blobs; i++)
        zmq_send(d, m->blobs[i].data, m->blobs[i].len, i + 1 < m->n_blobs ? ZMQ_SNDMORE : 0);
    free(hdr);
    msg_deinit(m);
}

static void rogue_hello(void *d, const char *pool_id, const char *job)
{
    msg m;
    msg_init(&m, MSG_HELLO);
    msg_set(&m, "pool_id", json_string(pool_id));
    msg_set(&m, "ranks", json_integer(2));
    msg_set(&m, "cores", json_integer(1));
    msg_set(&m, "version", json_string("rogue"));
    msg_set(&m, "hosts", json_pack("[s]", "x"));
    msg_set(&m, "current",
            job != NULL ? json_pack("{s:s,s:i}", "job_id", job, "attempt", 1) : json_null());
    rogue_send(d, &m);
}

/* Whether a welcome comes within ms. */
static int rogue_welcomed(void *d, int ms)
{
    for (int t = 0; t < ms; t += 20) {
        zmq_pollitem_t it = {d, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20) > 0) {
            char buf[4096];
            int n = zmq_recv(d, buf, sizeof buf - 1, 0);
            if (n > 0 && (size_t)n < sizeof buf) {
                buf[n] = '\0';
                if (strstr(buf, "\"welcome\"") != NULL)
                    return 1;
            }
        }
    }
    return 0;
}

/* What the probe did with a pool token: a second connection under the live
 * pool-a (refused at the handshake), and a pool under its own id sending
 * pool-a's job a metric and a `finished` with a 4-byte model (dropped: the
 * attempt is not its). The job ends on pool-a with pool-a's model; the
 * id stays bound to pool-a's token after pool-a leaves. */
START_TEST(a_pool_cannot_take_another_pools_job)
{
    testserver_start_pool(
        &T, (fakepool_options){.pool_id = "pool-a", .ranks = 1, .step_ms = 30, .token = TOK_POOL});
    httpc_resp r;
    ck_assert_int_eq(req("POST", "/api/v1/jobs", TOK_SUBMIT,
                         "{" RESNET20 ",\"optim\":{\"max_steps\":60},\"resources\":{\"ranks\":1}}",
                         &r),
                     201);
    char id[STORE_ID_MAX];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(r.json, "id")));
    httpc_free(&r);
    wait_state(id, "RUNNING", 5000);
    void *ctx = zmq_ctx_new();
    /* the same id, the same token: refused while pool-a is live */
    void *twin = rogue_open(ctx, "pool-a", "pool-a", TOK_POOL);
    rogue_hello(twin, "pool-a", id);
    ck_assert_msg(!rogue_welcomed(twin, 800), "a second connection under pool-a was welcomed");
    /* its own id, pool-a's job: welcomed as itself, its job messages dropped */
    void *evil = rogue_open(ctx, "evil", "evil", TOK_POOL);
    rogue_hello(evil, "evil", id);
    ck_assert(rogue_welcomed(evil, 2000));
    for (int seq = 1; seq <= 80; seq++) {
        msg m;
        msg_init(&m, seq % 2 ? MSG_METRIC : MSG_FINISHED);
        msg_set_job(&m, id, 1, (uint64_t)seq);
        if (seq % 2) {
            msg_set(&m, "points", json_pack("[{s:i,s:f}]", "step", 1, "train_loss", 123456.5));
        } else {
            msg_set(&m, "status", json_string("succeeded"));
            msg_set(&m, "artifacts",
                    json_pack("[{s:s,s:i}]", "name", "model.safetensors", "size", 4));
            msg_add_blob(&m, "EVIL", 4);
        }
        rogue_send(evil, &m);
    }
    /* a routing id other than the name it authenticated as: dropped */
    void *liar = rogue_open(ctx, "liar", "evil2", TOK_POOL);
    rogue_hello(liar, "liar", NULL);
    ck_assert(!rogue_welcomed(liar, 500));
    wait_state(id, "SUCCEEDED", 15000);
    char path[160];
    snprintf(path, sizeof path, "/api/v1/jobs/%s/artifacts/model.safetensors", id);
    ck_assert_int_eq(req("GET", path, TOK_SUBMIT, NULL, &r), 200);
    ck_assert_msg(r.len > 8 && memcmp(r.body, "EVIL", 4) != 0, "the model is %zu bytes", r.len);
    httpc_free(&r);
    snprintf(path, sizeof path, "/api/v1/jobs/%s/metrics?names=train_loss&limit=1000", id);
    ck_assert_int_eq(req("GET", path, TOK_SUBMIT, NULL, &r), 200);
    ck_assert_ptr_null(strstr(r.body, "123456"));
    httpc_free(&r);
    /* pool-a leaves; its id stays bound to its token */
    fakepool_stop(T.pool);
    T.pool = NULL;
    testserver_sleep_ms(400);
    void *other = rogue_open(ctx, "pool-a", "pool-a", TOK_POOL2);
    rogue_hello(other, "pool-a", NULL);
    ck_assert_msg(!rogue_welcomed(other, 800), "pool-a joined with another token");
    void *back = rogue_open(ctx, "pool-a", "pool-a", TOK_POOL);
    rogue_hello(back, "pool-a", NULL);
    ck_assert_msg(rogue_welcomed(back, 3000), "pool-a could not come back with its token");
    zmq_close(twin);
    zmq_close(evil);
    zmq_close(liar);
    zmq_close(other);
    zmq_close(back);
    zmq_ctx_term(ctx);
}
END_TEST

/* ---- 3. checkpoint resends, temporary files, a full disk ------------------------ */

/* Reads messages until one of type `type` (with seq >= min_seq when > 0)
 * comes; its header (new ref), or NULL after ms. Heartbeats meanwhile, so
 * that the server does not take the pool for lost. */
static json_t *rogue_wait(void *d, const char *type, long long min_seq, int ms)
{
    for (int t = 0; t < ms; t += 20) {
        msg hb;
        msg_init(&hb, MSG_HEARTBEAT);
        rogue_send(d, &hb);
        zmq_pollitem_t it = {d, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20) <= 0)
            continue;
        json_t *hdr = NULL;
        for (int frame = 0;; frame++) {
            zmq_msg_t part;
            zmq_msg_init(&part);
            ck_assert_int_ge(zmq_msg_recv(&part, d, 0), 0);
            if (frame == 0)
                hdr = json_loadb(zmq_msg_data(&part), zmq_msg_size(&part), 0, NULL);
            int more = zmq_msg_more(&part);
            zmq_msg_close(&part);
            if (!more)
                break;
        }
        const char *got = json_string_value(json_object_get(hdr, "type"));
        if (got != NULL && strcmp(got, type) == 0 &&
            (min_seq <= 0 || json_integer_value(json_object_get(hdr, "seq")) >= min_seq))
            return hdr;
        json_decref(hdr);
    }
    return NULL;
}

static void rogue_checkpoint(void *d, const char *id, int seq, int step)
{
    msg m;
    msg_init(&m, MSG_CHECKPOINT);
    msg_set_job(&m, id, 1, (uint64_t)seq);
    msg_set(&m, "step", json_integer(step));
    char blob[32];
    snprintf(blob, sizeof blob, "checkpoint of step %d", step);
    msg_add_blob(&m, blob, strlen(blob));
    rogue_send(d, &m);
}

/* Files in the job's checkpoint folder (temporary ones included). */
static int ckpt_files(const char *id)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls -A %s/jobs/%s/checkpoints 2>/dev/null | wc -l", T.dir, id);
    FILE *f = popen(cmd, "r");
    int n = -1;
    ck_assert_int_eq(fscanf(f, "%d", &n), 1);
    pclose(f);
    return n;
}

static const char *job_message(const char *id, char *buf, size_t len)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/jobs/%s", id);
    httpc_resp r;
    ck_assert_int_eq(req("GET", path, NULL, NULL, &r), 200);
    snprintf(buf, len, "%s", json_string_value(json_object_get(r.json, "message")));
    httpc_free(&r);
    return buf;
}

/* keep_last 2 with a checkpoint every step; the server is slow and the pool
 * sends every checkpoint again: the resends (applied and pruned already) are
 * acked without being written, so 2 files stay on disk. Then the folder
 * cannot take files (as on a full disk): the job waits, saying why, no ack
 * goes out, and when the folder works again the resent checkpoint is stored
 * and the job ends. */
START_TEST(resent_checkpoints_and_a_full_disk)
{
    httpc_resp r;
    ck_assert_int_eq(req("POST", "/api/v1/jobs", NULL,
                         "{" RESNET20 ",\"optim\":{\"max_steps\":10},\"resources\":{\"ranks\":1},"
                         "\"checkpoint\":{\"every_steps\":1,\"keep_last\":2}}",
                         &r),
                     201);
    char id[STORE_ID_MAX];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(r.json, "id")));
    httpc_free(&r);
    void *ctx = zmq_ctx_new();
    void *d = rogue_open(ctx, "ck-pool", NULL, NULL);
    rogue_hello(d, "ck-pool", NULL);
    msg m;
    msg_init(&m, MSG_READY);
    rogue_send(d, &m);
    json_t *h = rogue_wait(d, "assign", 0, 5000);
    ck_assert_ptr_nonnull(h);
    json_decref(h);
    msg_init(&m, MSG_STARTED);
    msg_set_job(&m, id, 1, 1);
    rogue_send(d, &m);
    for (int step = 1; step <= 5; step++)
        rogue_checkpoint(d, id, step + 1, step);
    ck_assert_ptr_nonnull(h = rogue_wait(d, "ack", 6, 5000));
    json_decref(h);
    ck_assert_int_eq(ckpt_files(id), 2);
    for (int round = 0; round < 3; round++) /* every one of them again, three times */
        for (int step = 1; step <= 5; step++)
            rogue_checkpoint(d, id, step + 1, step);
    ck_assert_ptr_nonnull(h = rogue_wait(d, "ack", 6, 5000));
    json_decref(h);
    testserver_sleep_ms(200);
    ck_assert_int_eq(ckpt_files(id), 2);

    /* the folder cannot take files */
    char dir[160], aside[170], cmd[600];
    snprintf(dir, sizeof dir, "%s/jobs/%s/checkpoints", T.dir, id);
    snprintf(aside, sizeof aside, "%s.aside", dir);
    ck_assert_int_eq(rename(dir, aside), 0);
    FILE *f = fopen(dir, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    for (int i = 0; i < 20; i++)
        rogue_checkpoint(d, id, 7, 6);
    ck_assert_ptr_null(rogue_wait(d, "ack", 7, 600));
    char text[700];
    ck_assert_msg(strstr(job_message(id, text, sizeof text), "cannot store this job's files") !=
                      NULL,
                  "%s", text);
    snprintf(cmd, sizeof cmd, "rm -f %s && mv %s %s", dir, aside, dir);
    ck_assert_int_eq(system(cmd), 0);
    rogue_checkpoint(d, id, 7, 6);
    ck_assert_ptr_nonnull(h = rogue_wait(d, "ack", 7, 5000));
    json_decref(h);
    ck_assert_ptr_nonnull(strstr(job_message(id, text, sizeof text), "stores its files again"));
    ck_assert_int_eq(ckpt_files(id), 2);
    msg_init(&m, MSG_FINISHED);
    msg_set_job(&m, id, 1, 8);
    msg_set(&m, "status", json_string("succeeded"));
    msg_set(&m, "artifacts", json_array());
    rogue_send(d, &m);
    wait_state(id, "SUCCEEDED", 5000);
    zmq_close(d);
    zmq_ctx_term(ctx);
}
END_TEST

START_TEST(temporary_files_are_swept)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/jobs/j1/checkpoints %s/jobs/j1/artifacts/a1 && cd %s/jobs/j1 && "
             "touch checkpoints/a1-step-5.safetensors checkpoints/a1-step-6.safetensors.tmp.123.0 "
             "artifacts/a1/model.safetensors.tmp.99.12 artifacts/a1/model.safetensors "
             "artifacts/a1/notes.tmp.txt artifacts/a1/x.tmp.1",
             T.dir, T.dir, T.dir);
    ck_assert_int_eq(system(cmd), 0);
    char jobs[128];
    snprintf(jobs, sizeof jobs, "%s/jobs", T.dir);
    ck_assert_int_eq(files_sweep_tmp(jobs), 2);
    snprintf(cmd, sizeof cmd, "cd %s/jobs/j1 && (ls checkpoints; ls artifacts/a1) | tr '\\n' ' '",
             T.dir);
    FILE *f = popen(cmd, "r");
    char out[400] = "";
    ck_assert_ptr_nonnull(fgets(out, sizeof out, f));
    pclose(f);
    ck_assert_str_eq(out, "a1-step-5.safetensors model.safetensors notes.tmp.txt x.tmp.1 ");
    ck_assert_int_eq(files_sweep_tmp("/nonexistent/kiln"), 0);
}
END_TEST

/* /readyz looks at the data dir: not ready with less free than asked for. */
START_TEST(readyz_sees_the_disk)
{
    httpc_resp r;
    ck_assert_int_eq(req("GET", "/readyz", NULL, NULL, &r), 200);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "checks"), "disk")),
                     "ok");
    httpc_free(&r);
    T.app.min_free_disk = 1e18; /* an exabyte: no disk here has it */
    ck_assert_int_eq(req("GET", "/readyz", NULL, NULL, &r), 503);
    const char *why = json_string_value(json_object_get(json_object_get(r.json, "checks"), "disk"));
    ck_assert_msg(why != NULL && strstr(why, "MiB free, less than") != NULL, "%s", r.body);
    httpc_free(&r);
    T.app.min_free_disk = 0;
}
END_TEST

/* ---- 4. event-stream slots ------------------------------------------------------- */

/* Opens GET /api/v1/events on a raw socket; the socket, and the status. */
static int open_events(int *status)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port(T.http))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const char *text = "GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    char buf[256] = "";
    ssize_t n = read(fd, buf, sizeof buf - 1);
    *status = 0;
    if (n > 12)
        sscanf(buf, "HTTP/1.%*d %d", status);
    return fd;
}

/* One client may hold 3 of the 6 streams; streams it closes free their
 * slots at once (well before the keepalive that would notice otherwise). */
START_TEST(closed_streams_free_their_slots)
{
    int fds[3], st;
    for (int i = 0; i < 3; i++) {
        fds[i] = open_events(&st);
        ck_assert_int_eq(st, 200);
    }
    int extra = open_events(&st);
    ck_assert_int_eq(st, 503); /* the per-client cap, with 3 of 6 open */
    close(extra);
    ck_assert_int_eq(sse_hub_count(T.hub), 3);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int waited = 0;
    while (sse_hub_count(T.hub) > 0 && waited < 5000) {
        testserver_sleep_ms(10);
        waited += 10;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    ck_assert_msg(sse_hub_count(T.hub) == 0 && ms < 1000,
                  "%d streams still open %.0f ms after their clients closed them",
                  sse_hub_count(T.hub), ms);
    for (int i = 0; i < 3; i++) {
        fds[i] = open_events(&st);
        ck_assert_int_eq(st, 200);
    }
    for (int i = 0; i < 3; i++)
        close(fds[i]);
}
END_TEST

/* ---- 6. strict HTTP -------------------------------------------------------------- */

/* Sends raw request text to the server; the status of the answer (0: none). */
static int raw_http(const char *text)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port(T.http))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    char buf[512] = "";
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    int status = 0;
    if (n > 12)
        sscanf(buf, "HTTP/1.%*d %d", &status);
    return status;
}

START_TEST(strict_http)
{
    /* a well-formed request passes */
    ck_assert_int_eq(raw_http("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
    ck_assert_int_eq(raw_http("GET /healthz HTTP/1.0\r\n\r\n"), 200);
    ck_assert_int_eq(raw_http("POST /api/v1/jobs?dry_run=true HTTP/1.1\r\nHost: x\r\n"
                              "Content-Type: application/json\r\nContent-Length: 2\r\n"
                              "Content-Length: 2\r\n\r\n{}"),
                     400); /* the same length twice is allowed; {} is not a spec */
    /* conflicting Content-Length */
    ck_assert_int_eq(raw_http("POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\n"
                              "Content-Type: application/json\r\nContent-Length: 2\r\n"
                              "Content-Length: 40\r\n\r\n{}"),
                     400);
    /* HTTP/1.1 without Host */
    ck_assert_int_eq(raw_http("GET /healthz HTTP/1.1\r\n\r\n"), 400);
    /* %00 in a path or a query */
    ck_assert_int_eq(raw_http("GET /api/v1/jobs/j1/artifacts/model.safetensors%00.txt HTTP/1.1\r\n"
                              "Host: x\r\n\r\n"),
                     400);
    ck_assert_int_eq(raw_http("GET /api/v1/jobs?state=QUEUED%00x HTTP/1.1\r\nHost: x\r\n\r\n"),
                     400);
    /* the flag does not stick to the connection's next request */
    ck_assert_int_eq(raw_http("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
    /* out-of-range and malformed integers: refused, not clamped */
    httpc_resp r;
    const char *bad[] = {"/api/v1/jobs?page_size=1001", "/api/v1/jobs?page_size=0",
                         "/api/v1/jobs?page_size=99999999999999999999999",
                         "/api/v1/jobs?page_size=%2B5", "/api/v1/jobs?page_size=%205"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(req("GET", bad[i], NULL, NULL, &r) == 400, "%s: %ld", bad[i], r.status);
        ck_assert_str_eq(detail(&r, "field"), "page_size");
        httpc_free(&r);
    }
    ck_assert_int_eq(req("GET", "/api/v1/jobs?page_size=1000", NULL, NULL, &r), 200);
    httpc_free(&r);
}
END_TEST

Suite *suite_hostile(void)
{
    Suite *s = suite_create("hostile");
    tu_case_add(s, "admission", 60, setup_plain, teardown,
                TU_TESTS(oversized_models_are_refused, failures_a_retry_cannot_fix_are_final,
                         resent_checkpoints_and_a_full_disk, temporary_files_are_swept,
                         readyz_sees_the_disk, strict_http, closed_streams_free_their_slots));
    tu_case_add(s, "limit", 30, setup_limit, teardown, TU_TESTS(max_job_memory_is_enforced));
    tu_case_add(s, "identity", 60, setup_tokens, teardown,
                TU_TESTS(a_pool_cannot_take_another_pools_job));
    (void)TOK_ADMIN;
    return s;
}
