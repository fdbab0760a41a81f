/* check_link.c - broker (ROUTER) + pool link (DEALER) together, over inproc:// and tcp loopback.
 *
 * The pools here are tests/unit/fakepool.c (a scripted test double speaking
 * the real protocol through worker/link.c); the server side is the real
 * broker, coordinator and store.
 */
#include "server/broker.h"
#include "tests/unit/fakepool.h"
#include "tests/unit/testutil.h"
#include "worker/linksink.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

Suite *suite_link(void);

static store *S;
static broker *B;
static void *ZCTX;
static char DIR_[64];
static char EP[128];
static int counter;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void start_broker(const char *endpoint, int hb, int liveness)
{
    broker_options bo = {.endpoint = endpoint,
                         .heartbeat_ms = hb,
                         .liveness = liveness,
                         .data_dir = DIR_,
                         .zmq_context = ZCTX};
    errbuf eb;
    ck_assert_msg(broker_start(&B, S, &bo, &eb) == 0, "%s", eb.msg);
    snprintf(EP, sizeof EP, "%s", broker_endpoint(B));
}

static void setup(void)
{
    errbuf eb;
    ck_assert_int_eq(store_open(&S, ":memory:", &eb), 0);
    snprintf(DIR_, sizeof DIR_, "/tmp/kiln-link-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(DIR_));
    ZCTX = zmq_ctx_new();
    B = NULL;
}

static void teardown(void)
{
    broker_stop(B);
    zmq_ctx_term(ZCTX);
    store_close(S);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", DIR_);
    ck_assert_int_eq(system(cmd), 0);
}

static void inproc_broker(int hb, int liveness)
{
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://kiln-link-%d-%d", (int)getpid(), counter++);
    start_broker(ep, hb, liveness);
}

static void submit(char id[STORE_ID_MAX], int prio, int ranks, int max_restarts, int steps)
{
    char spec[128];
    snprintf(spec, sizeof spec, "{\"optim\":{\"max_steps\":%d}}", steps);
    store_job_new j = {.name = "t",
                       .type = "train",
                       .priority = prio,
                       .ranks = ranks,
                       .max_restarts = max_restarts,
                       .keep_last = 2,
                       .spec_json = spec};
    errbuf eb;
    ck_assert_int_eq(store_job_create(S, &j, id, &eb), 0);
    broker_wake(B);
}

static job_state state_of(const char *id)
{
    job_state st;
    errbuf eb;
    ck_assert_int_eq(store_job_state(S, id, &st, NULL, NULL, &eb), 0);
    return st;
}

/* Waits up to ms for the job to reach st; fails the test otherwise. */
static void wait_state(const char *id, job_state st, int ms)
{
    for (int t = 0; t < ms; t += 5) {
        if (state_of(id) == st)
            return;
        sleep_ms(5);
    }
    ck_abort_msg("job %s is %s after %d ms, expected %s", id, store_state_name(state_of(id)), ms,
                 store_state_name(st));
}

static json_t *job(const char *id)
{
    json_t *j;
    errbuf eb;
    ck_assert_int_eq(store_job_get(S, id, &j, &eb), 0);
    return j;
}

static long step_of(const char *id)
{
    json_t *j = job(id);
    long s = (long)json_integer_value(json_object_get(json_object_get(j, "progress"), "step"));
    json_decref(j);
    return s;
}

/* Reads every metric through after_seq pages of 7 and checks that the seqs
 * rise and, with the points a retry dropped (metrics_dropped), account for
 * 1..metric_count; returns how many were read. A job of one attempt: seq runs
 * 1..n once each. */
static int metrics_gap_free(const char *id)
{
    json_t *j = job(id);
    int64_t count = json_integer_value(json_object_get(j, "metric_count"));
    int64_t dropped = json_integer_value(json_object_get(j, "metrics_dropped"));
    if (json_integer_value(json_object_get(j, "attempt")) == 1)
        ck_assert_int_eq(dropped, 0);
    json_decref(j);
    int64_t after = 0, last = 0;
    int n = 0;
    for (;;) {
        store_metric_query q = {.after_seq = after, .limit = 7};
        json_t *o;
        errbuf eb;
        ck_assert_int_eq(store_metrics(S, id, &q, &o, &eb), 0);
        json_t *pts = json_object_get(o, "points");
        size_t i;
        json_t *p;
        json_array_foreach(pts, i, p)
        {
            int64_t seq = json_integer_value(json_object_get(p, "seq"));
            ck_assert_int_gt(seq, last);
            if (dropped == 0)
                ck_assert_int_eq(seq, n + 1);
            last = seq;
            n++;
        }
        int64_t next = json_integer_value(json_object_get(o, "next_seq"));
        size_t got = json_array_size(pts);
        json_decref(o);
        if (got == 0) {
            ck_assert_int_eq(next, after);
            break;
        }
        after = next;
    }
    ck_assert_int_eq(n + dropped, count);
    return n;
}

/* Each step 1..steps appears exactly once for the name. */
static void steps_once(const char *id, const char *name, long from, long to)
{
    store_metric_query q = {.after_seq = 0, .limit = 100000, .names = name};
    json_t *o;
    errbuf eb;
    ck_assert_int_eq(store_metrics(S, id, &q, &o, &eb), 0);
    json_t *pts = json_object_get(o, "points");
    ck_assert_int_eq(json_array_size(pts), to - from + 1);
    size_t i;
    json_t *p;
    json_array_foreach(pts, i, p)
        ck_assert_int_eq(json_integer_value(json_object_get(p, "step")), from + (long)i);
    json_decref(o);
}

START_TEST(train_job_over_tcp)
{
    start_broker("tcp://127.0.0.1:*", 100, 5);
    ck_assert_ptr_nonnull(strstr(EP, "tcp://127.0.0.1:"));
    char id[STORE_ID_MAX];
    submit(id, 50, 2, 0, 40);
    fakepool_options fo = {.endpoint = EP, .pool_id = "tcp-pool", .ranks = 2, .step_ms = 1};
    fakepool *f = fakepool_start(&fo);
    ck_assert_ptr_nonnull(f);
    wait_state(id, JS_SUCCEEDED, 5000);
    ck_assert_int_eq(metrics_gap_free(id), 80); /* train_loss and lr per step */
    steps_once(id, "train_loss", 1, 40);
    json_t *j = job(id);
    ck_assert_str_eq(json_string_value(json_object_get(j, "reason")), "COMPLETED");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "result"), "steps")),
                     40);
    json_t *arts = json_object_get(j, "artifacts");
    ck_assert_int_eq(json_array_size(arts), 1);
    json_decref(j);
    char rel[256], path[512];
    int64_t size;
    errbuf eb;
    ck_assert_int_eq(store_artifact(S, id, "model.safetensors", rel, sizeof rel, &size, &eb), 0);
    snprintf(path, sizeof path, "%s/%s", DIR_, rel);
    ck_assert_int_eq(access(path, R_OK), 0);
    json_t *w = broker_workers(B);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(w, 0), "id")), "tcp-pool");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(w, 0), "ranks")), 2);
    json_decref(w);
    fakepool_stop(f);
}
END_TEST

START_TEST(cancel_running_and_queued)
{
    inproc_broker(100, 5);
    char run_id[STORE_ID_MAX], queued[STORE_ID_MAX];
    submit(run_id, 90, 1, 0, 100000);
    submit(queued, 10, 1, 0, 10);
    fakepool_options fo = {.endpoint = EP, .zmq_context = ZCTX, .step_ms = 5};
    fakepool *f = fakepool_start(&fo);
    wait_state(run_id, JS_RUNNING, 3000);
    while (step_of(run_id) < 5)
        sleep_ms(5);
    errbuf eb;
    /* queued: cancelled at once, never runs */
    ck_assert_int_eq(
        store_transition(S, queued, JS_RUNNABLE, JS_CANCELLED, "USER_CANCELLED", "t", NULL, &eb),
        0);
    ck_assert_int_eq(
        store_transition(S, run_id, JS_ON_POOL, JS_CANCELLING, "USER_CANCELLED", "t", NULL, &eb),
        0);
    broker_wake(B);
    wait_state(run_id, JS_CANCELLED, 2000);
    long stopped_at = step_of(run_id);
    ck_assert_int_lt(stopped_at, 100000);
    /* the final checkpoint was kept */
    char ck[512];
    snprintf(ck, sizeof ck, "%s/jobs/%s/checkpoints/a1-step-%ld.safetensors", DIR_, run_id,
             stopped_at);
    ck_assert_msg(access(ck, R_OK) == 0, "no final checkpoint %s", ck);
    sleep_ms(100);
    ck_assert_int_eq(state_of(queued), JS_CANCELLED);
    ck_assert_int_eq(fakepool_started_count(f), 1);
    fakepool_stop(f);
}
END_TEST

START_TEST(pool_killed_job_resumes_elsewhere)
{
    inproc_broker(50, 3);
    char id[STORE_ID_MAX];
    submit(id, 50, 1, 1, 60);
    fakepool_options fo = {.endpoint = EP,
                           .zmq_context = ZCTX,
                           .pool_id = "doomed",
                           .step_ms = 10,
                           .ckpt_every = 5,
                           .heartbeat_ms = 50,
                           .liveness = 3};
    fakepool *a = fakepool_start(&fo);
    wait_state(id, JS_RUNNING, 3000);
    while (step_of(id) < 12)
        sleep_ms(5);
    fakepool_kill(a);
    /* 3 x 50 ms of silence, then WORKER_LOST */
    wait_state(id, JS_RESTARTING, 1500);
    json_t *j = job(id);
    ck_assert_str_eq(json_string_value(json_object_get(j, "reason")), "WORKER_LOST");
    json_decref(j);
    fo.pool_id = "rescuer";
    fakepool *b = fakepool_start(&fo);
    wait_state(id, JS_SUCCEEDED, 5000);
    long resumed = fakepool_last_resume(b);
    ck_assert_int_ge(resumed, 10);
    /* attempt 2 reported steps resumed+1..60, and the points attempt 1 reported
     * after its checkpoint were dropped: each step once, every seq accounted for */
    metrics_gap_free(id);
    steps_once(id, "train_loss", 1, 60);
    steps_once(id, "lr", 1, 60);
    json_t *w = broker_workers(B);
    ck_assert_int_eq(json_array_size(w), 2);
    json_decref(w);
    j = job(id);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "attempt")), 2);
    json_decref(j);
    fakepool_stop(b);
}
END_TEST

START_TEST(priorities_over_two_pools)
{
    inproc_broker(100, 5);
    static const int prio[6] = {10, 90, 50, 90, 30, 50};
    char ids[6][STORE_ID_MAX];
    for (int i = 0; i < 6; i++)
        submit(ids[i], prio[i], 1, 0, 5);
    fakepool_options fo = {.endpoint = EP, .zmq_context = ZCTX, .step_ms = 2, .pool_id = "pa"};
    fakepool *a = fakepool_start(&fo);
    fo.pool_id = "pb";
    fakepool *b = fakepool_start(&fo);
    for (int i = 0; i < 6; i++)
        wait_state(ids[i], JS_SUCCEEDED, 5000);
    /* order of assignment (the seq of each job's SCHEDULED event) must be
     * priority desc, FIFO within a priority */
    double started[6];
    for (int i = 0; i < 6; i++) {
        json_t *j = job(ids[i]);
        json_t *ev = json_object_get(j, "events");
        started[i] = -1;
        for (size_t e = 0; e < json_array_size(ev); e++)
            if (strcmp(json_string_value(json_object_get(json_array_get(ev, e), "to")),
                       "STARTING") == 0)
                started[i] =
                    (double)json_integer_value(json_object_get(json_array_get(ev, e), "seq"));
        ck_assert(started[i] > 0);
        json_decref(j);
    }
    static const int expect[6] = {1, 3, 2, 5, 4, 0};
    for (int k = 1; k < 6; k++)
        ck_assert_msg(started[expect[k - 1]] <= started[expect[k]],
                      "job %d (prio %d) was scheduled after job %d (prio %d)", expect[k - 1],
                      prio[expect[k - 1]], expect[k], prio[expect[k]]);
    ck_assert_int_eq(fakepool_started_count(a) + fakepool_started_count(b), 6);
    ck_assert_int_ge(fakepool_started_count(a), 1);
    ck_assert_int_ge(fakepool_started_count(b), 1);
    fakepool_stop(a);
    fakepool_stop(b);
}
END_TEST

START_TEST(ranks_must_fit)
{
    inproc_broker(100, 5);
    char big[STORE_ID_MAX], small[STORE_ID_MAX];
    submit(big, 90, 2, 0, 5);
    submit(small, 10, 1, 0, 5);
    fakepool_options fo = {.endpoint = EP, .zmq_context = ZCTX, .ranks = 1, .pool_id = "one"};
    fakepool *a = fakepool_start(&fo);
    wait_state(small, JS_SUCCEEDED, 3000);
    sleep_ms(50);
    ck_assert_int_eq(state_of(big), JS_QUEUED);
    fo.ranks = 2;
    fo.pool_id = "two";
    fakepool *b = fakepool_start(&fo);
    wait_state(big, JS_SUCCEEDED, 3000);
    ck_assert_int_eq(fakepool_started_count(a), 1);
    ck_assert_int_eq(fakepool_started_count(b), 1);
    fakepool_stop(a);
    fakepool_stop(b);
}
END_TEST

START_TEST(spill_then_deliver_in_order)
{
    /* messages queued while no server is up go through the spill file */
    char id[STORE_ID_MAX];
    store_job_new j = {.name = "s", .type = "train", .priority = 1, .ranks = 1, .spec_json = "{}"};
    errbuf eb;
    ck_assert_int_eq(store_job_create(S, &j, id, &eb), 0);
    store_assignment as;
    ck_assert_int_eq(store_attempt_start(S, id, "spiller", &as, &eb), 0);
    free(as.spec_json);
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://kiln-spill-%d", (int)getpid());
    link_options lo;
    link_options_default(&lo);
    lo.zmq_context = ZCTX;
    lo.outbox_max_msgs = 4;
    lo.reconnect_min_ms = lo.reconnect_max_ms = 20;
    lo.resend_ms = 200;
    link_pool_info info = {.pool_id = "spiller", .ranks = 1, .cores = 1, .version = "t"};
    pool_link *l;
    ck_assert_int_eq(link_new(&l, ep, &info, &lo, &eb), 0);
    ck_assert_int_eq(link_started(l, id, 1, 30), 0);
    for (int s = 1; s <= 30; s++) {
        json_t *p = json_pack("{s:i,s:f}", "step", s, "loss", 1.0 / s);
        ck_assert_int_eq(link_metric(l, id, 1, p), 0);
        json_decref(p);
        char text[32];
        snprintf(text, sizeof text, "line %d", s);
        ck_assert_int_eq(link_log(l, id, 1, "info", text), 0); /* no metric batching */
    }
    link_stats st;
    link_get_stats(l, &st);
    ck_assert_uint_gt(st.spilled, 40);
    ck_assert_uint_eq(st.queued, 61);
    ck_assert_uint_eq(st.acked, 0);
    start_broker(ep, 100, 5);
    ck_assert_int_eq(link_flush(l, 5000), 0);
    link_get_stats(l, &st);
    ck_assert_uint_eq(st.queued, 0);
    ck_assert_uint_eq(st.acked, 61);
    ck_assert_int_eq(metrics_gap_free(id), 30);
    steps_once(id, "loss", 1, 30);
    json_t *logs;
    ck_assert_int_eq(store_logs(S, id, 0, 100, 0, &logs, &eb), 0);
    json_t *lines = json_object_get(logs, "lines");
    ck_assert_int_eq(json_array_size(lines), 30);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(lines, 29), "text")),
                     "line 30");
    json_decref(logs);
    ck_assert_int_eq(state_of(id), JS_RUNNING);
    link_free(l);
}
END_TEST

START_TEST(resends_are_applied_once)
{
    /* resend_ms = 2: whenever the server is slower than that, the link sends
     * unacked messages again (the timing of resends is check_linkcore's); the
     * real server must apply each exactly once. The
     * liveness is generous (5 s): this test is about resends, and a server
     * slowed down by ASan or a loaded machine must not declare the pool lost
     * (which rightly drops the rest of the attempt's messages as stale). */
    inproc_broker(100, 50);
    char id[STORE_ID_MAX];
    store_job_new j = {.name = "r", .type = "train", .priority = 1, .ranks = 1, .spec_json = "{}"};
    errbuf eb;
    ck_assert_int_eq(store_job_create(S, &j, id, &eb), 0);
    store_assignment as;
    ck_assert_int_eq(store_attempt_start(S, id, "resender", &as, &eb), 0);
    free(as.spec_json);
    link_options lo;
    link_options_default(&lo);
    lo.zmq_context = ZCTX;
    lo.resend_ms = 2;
    link_pool_info info = {.pool_id = "resender", .ranks = 1, .cores = 1, .version = "t"};
    pool_link *l;
    ck_assert_int_eq(link_new(&l, EP, &info, &lo, &eb), 0);
    link_started(l, id, 1, 1000);
    for (int s = 1; s <= 1000; s++) {
        json_t *p = json_pack("{s:i,s:f}", "step", s, "loss", (double)s);
        link_metric(l, id, 1, p);
        json_decref(p);
        link_log(l, id, 1, "info", "x"); /* one message per point: no batching */
    }
    int frc = link_flush(l, 10000); /* a bound for a slow (ASan) run; it takes ~0.1 s */
    link_stats st;
    link_get_stats(l, &st);
    json_t *jj = job(id);
    char *dump = json_dumps(json_object_get(jj, "attempts"), 0);
    ck_assert_msg(frc == 0,
                  "flush: queued %zu sent %llu resent %llu acked %llu reconnects %llu; %s %s",
                  st.queued, (unsigned long long)st.sent, (unsigned long long)st.resent,
                  (unsigned long long)st.acked, (unsigned long long)st.reconnects, dump,
                  json_string_value(json_object_get(jj, "state")));
    free(dump);
    json_decref(jj);
    ck_assert_int_eq(metrics_gap_free(id), 1000);
    steps_once(id, "loss", 1, 1000);
    json_t *logs;
    ck_assert_int_eq(store_logs(S, id, 0, 10000, 0, &logs, &eb), 0);
    ck_assert_int_eq(json_array_size(json_object_get(logs, "lines")), 1000);
    json_decref(logs);
    link_free(l);
}
END_TEST

START_TEST(ready_never_overtakes_finished)
{
    /* A burst far past the in-flight window, then finished and at once a
     * wait for the next job: the ready must not reach the server before the
     * finished does (it would take the job for lost). */
    inproc_broker(100, 5);
    char id[STORE_ID_MAX];
    submit(id, 50, 1, 0, 10);
    link_options lo;
    link_options_default(&lo);
    lo.zmq_context = ZCTX;
    link_pool_info info = {.pool_id = "burst", .ranks = 1, .cores = 1, .version = "t"};
    pool_link *l;
    errbuf eb;
    ck_assert_int_eq(link_new(&l, EP, &info, &lo, &eb), 0);
    link_assignment a;
    ck_assert_int_eq(link_wait_assign(l, 3000, &a), 0);
    ck_assert_str_eq(a.job_id, id);
    link_started(l, a.job_id, a.attempt, 1500);
    for (int s = 1; s <= 1500; s++) {
        json_t *p = json_pack("{s:i,s:f}", "step", s, "loss", 1.0);
        link_metric(l, a.job_id, a.attempt, p);
        json_decref(p);
        link_log(l, a.job_id, a.attempt, "info", "x");
    }
    ck_assert_int_eq(link_finished(l, a.job_id, a.attempt, 0, NULL, NULL, 0, &eb), 0);
    /* wait for the next job (the link may say ready) until the server has the end */
    for (int t = 0; t < 5000 && state_of(id) != JS_SUCCEEDED; t += 5) {
        link_assignment next;
        ck_assert_int_eq(link_wait_assign(l, 5, &next), ERR_TIMEOUT);
    }
    ck_assert_int_eq(state_of(id), JS_SUCCEEDED);
    ck_assert_int_eq(metrics_gap_free(id), 1500);
    link_assignment_free(&a);
    link_free(l);
}
END_TEST

START_TEST(sink_style_calls)
{
    /* What the engine's job_sink maps to: one value per call with its epoch,
     * a checkpoint file, an artifact by path. */
    inproc_broker(100, 5);
    char id[STORE_ID_MAX];
    submit(id, 50, 1, 0, 10);
    link_options lo;
    link_options_default(&lo);
    lo.zmq_context = ZCTX;
    link_pool_info info = {.pool_id = "sink", .ranks = 1, .cores = 1, .version = "t"};
    pool_link *l;
    errbuf eb;
    ck_assert_int_eq(link_new(&l, EP, &info, &lo, &eb), 0);
    link_assignment a;
    ck_assert_int_eq(link_wait_assign(l, 3000, &a), 0);
    linksink ls;
    job_sink sink;
    linksink_init(&ls, l, a.job_id, a.attempt, &sink);
    sink.started(sink.ctx, 10);
    for (int s = 1; s <= 10; s++) {
        sink.metric(sink.ctx, "train_loss", 1.0 / s, s, s / 5.0);
        ck_assert_int_eq(link_metric_value(l, a.job_id, a.attempt, "lr", 0.1, s, -1), 0);
    }
    sink.log(sink.ctx, "info", "epoch 2 done");
    ck_assert_int_eq(sink.cancel_requested(sink.ctx), 0);
    ck_assert_int_eq(link_metric_value(l, a.job_id, a.attempt, "epoch", 1, 1, -1), ERR_INVALID);
    char ck[128], art[128];
    snprintf(ck, sizeof ck, "%s/ck.safetensors", DIR_);
    snprintf(art, sizeof art, "%s/final.safetensors", DIR_);
    FILE *f = fopen(ck, "wb");
    fputs("checkpoint-bytes", f);
    fclose(f);
    f = fopen(art, "wb");
    fputs("model-bytes", f);
    fclose(f);
    sink.checkpoint(sink.ctx, ck, 10);
    ck_assert_int_eq(link_checkpoint_file(l, a.job_id, a.attempt, 10, "/nonexistent"), ERR_IO);
    link_artifact arts[1] = {{.name = "model.safetensors", .path = art}};
    link_artifact bad[1] = {{.name = "model.safetensors", .path = "/nonexistent"}};
    ck_assert_int_eq(link_finished(l, a.job_id, a.attempt, 0, NULL, bad, 1, &eb), ERR_IO);
    ck_assert_ptr_nonnull(strstr(eb.msg, "/nonexistent"));
    ck_assert_int_eq(link_finished(l, a.job_id, a.attempt, 0, NULL, arts, 1, &eb), 0);
    ck_assert_int_eq(link_flush(l, 3000), 0);
    wait_state(id, JS_SUCCEEDED, 3000);
    store_metric_query q = {.after_seq = 0, .limit = 100, .names = "train_loss"};
    json_t *o;
    ck_assert_int_eq(store_metrics(S, id, &q, &o, &eb), 0);
    json_t *last = json_array_get(json_object_get(o, "points"), 9);
    ck_assert(json_real_value(json_object_get(last, "epoch")) == 2.0);
    ck_assert_int_eq(json_integer_value(json_object_get(last, "step")), 10);
    json_decref(o);
    char rel[256], path[512];
    int64_t size;
    ck_assert_int_eq(store_artifact(S, id, "model.safetensors", rel, sizeof rel, &size, &eb), 0);
    ck_assert_int_eq(size, 11);
    snprintf(path, sizeof path, "%s/jobs/%s/checkpoints/a1-step-10.safetensors", DIR_, id);
    f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    char buf[32] = "";
    ck_assert_uint_eq(fread(buf, 1, sizeof buf, f), 16);
    fclose(f);
    ck_assert_str_eq(buf, "checkpoint-bytes");
    link_assignment_free(&a);
    link_free(l);
}
END_TEST

/* Receives one message on a raw ROUTER within ms; 1 if one came. */
static int raw_recv(void *router, int ms, msg *m)
{
    zmq_pollitem_t it = {router, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, ms) <= 0)
        return 0;
    char id[64], hdr[65536];
    int n = zmq_recv(router, id, sizeof id, 0);
    ck_assert_int_gt(n, 0);
    n = zmq_recv(router, hdr, sizeof hdr, 0);
    ck_assert_int_gt(n, 0);
    errbuf eb;
    ck_assert_int_eq(msg_decode(m, hdr, (size_t)n, &eb), 0);
    int more;
    size_t ml = sizeof more;
    zmq_getsockopt(router, ZMQ_RCVMORE, &more, &ml);
    ck_assert_int_eq(more, 0);
    return 1;
}

static void raw_send(void *router, const char *to, msg *m)
{
    size_t len;
    char *text = msg_encode(m, &len);
    ck_assert_int_ge(zmq_send(router, to, strlen(to), ZMQ_SNDMORE), 0);
    ck_assert_int_ge(zmq_send(router, text, len, 0), 0);
    free(text);
}

START_TEST(link_says_hello_when_asked)
{
    /* A server that restarted under a live connection asks with a heartbeat
     * carrying "hello": the link says hello again on the same socket and
     * sends its unacked messages after it. */
    void *router = zmq_socket(ZCTX, ZMQ_ROUTER);
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://kiln-ask-%d", (int)getpid());
    ck_assert_int_eq(zmq_bind(router, ep), 0);
    link_options lo;
    link_options_default(&lo);
    lo.zmq_context = ZCTX;
    lo.resend_ms = 60000; /* no timed resend within the test */
    link_pool_info info = {.pool_id = "ask", .ranks = 1, .cores = 1, .version = "t"};
    pool_link *l;
    errbuf eb;
    ck_assert_int_eq(link_new(&l, ep, &info, &lo, &eb), 0);
    msg m;
    ck_assert(raw_recv(router, 2000, &m));
    ck_assert_int_eq(m.type, MSG_HELLO);
    msg_deinit(&m);
    msg w;
    msg_init(&w, MSG_WELCOME);
    msg_set(&w, "heartbeat_ms", json_integer(1000));
    msg_set(&w, "liveness", json_integer(5));
    raw_send(router, "ask", &w);
    msg_deinit(&w);
    link_started(l, "jq", 3, 10);
    int got = 0;
    while (!got && raw_recv(router, 2000, &m)) {
        got = m.type == MSG_STARTED;
        msg_deinit(&m);
    }
    ck_assert(got);
    msg h;
    msg_init(&h, MSG_HEARTBEAT);
    msg_set(&h, "hello", json_true());
    raw_send(router, "ask", &h);
    msg_deinit(&h);
    /* well inside the link's liveness timeout (5 s), after which it would say
     * hello anyway, on a new socket */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int hello = 0, started_after = 0;
    for (int i = 0; i < 20 && !started_after && raw_recv(router, 2000, &m); i++) {
        if (m.type == MSG_HELLO) {
            hello++;
        } else if (m.type == MSG_STARTED) {
            ck_assert_int_eq(hello, 1); /* the resend follows the hello */
            ck_assert_uint_eq(m.seq, 1);
            started_after = 1;
        }
        msg_deinit(&m);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ck_assert_int_eq(hello, 1);
    ck_assert(started_after);
    double waited = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    ck_assert_msg(waited < 2.0, "the hello came after %.1f s, not at once", waited);
    link_free(l);
    zmq_close(router);
}
END_TEST

Suite *suite_link(void)
{
    Suite *s = suite_create("link");
    tu_case_add(s, "core", 30, setup, teardown,
                TU_TESTS(train_job_over_tcp, cancel_running_and_queued,
                         pool_killed_job_resumes_elsewhere, priorities_over_two_pools,
                         ranks_must_fit, spill_then_deliver_in_order, resends_are_applied_once,
                         link_says_hello_when_asked, ready_never_overtakes_finished,
                         sink_style_calls));
    return s;
}
