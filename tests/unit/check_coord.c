/* check_coord.c - the scheduler (pure) and the coordinator driven without sockets. */
#include "server/coord.h"
#include "server/scheduler.h"
#include "tests/unit/testutil.h"

#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Suite *suite_coord(void);

/* ---- scheduler ---------------------------------------------------------------- */

static store_queued qj(const char *id, int prio, int ranks, int order)
{
    store_queued j;
    memset(&j, 0, sizeof j);
    snprintf(j.id, sizeof j.id, "%s", id);
    j.priority = prio;
    j.ranks = ranks;
    j.order = order;
    return j;
}

START_TEST(sched_best_fit_and_skip)
{
    /* queue order is already priority/FIFO */
    store_queued q[4] = {qj("big", 90, 8, 1), qj("a", 90, 2, 2), qj("b", 50, 1, 3),
                         qj("c", 10, 1, 4)};
    sched_pool p[2] = {{"p4", 4, 0}, {"p2", 2, 0}};
    sched_pick out[2];
    int n = sched_plan(q, 4, p, 2, out);
    /* big fits nowhere and is passed over; a takes the smallest pool that fits (p2); b the other */
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(out[0].job, 1);
    ck_assert_int_eq(out[0].pool, 1);
    ck_assert_int_eq(out[1].job, 2);
    ck_assert_int_eq(out[1].pool, 0);
    ck_assert_int_eq(sched_plan(q, 4, p, 0, out), 0);
    ck_assert_int_eq(sched_plan(q, 0, p, 2, out), 0);
    /* one pool: the first job that fits, in queue order */
    sched_pool one = {"p1", 1, 0};
    n = sched_plan(q, 4, &one, 1, out);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(out[0].job, 2);
}
END_TEST

START_TEST(sched_partly_busy_pools)
{
    /* p4 runs a 2-rank job (2 of 4 free); p2 is idle */
    sched_pool p[2] = {{"p4", 2, 4}, {"p2", 2, 0}};
    sched_pick out[2];
    /* two 1-rank jobs: best fit by free ranks is a tie; each pool takes one */
    store_queued small[2] = {qj("a", 50, 1, 1), qj("b", 50, 1, 2)};
    ck_assert_int_eq(sched_plan(small, 2, p, 2, out), 2);
    ck_assert_int_eq(out[0].pool, 0);
    ck_assert_int_eq(out[1].pool, 1);
    /* a 4-rank job fits p4's total but not its free ranks: it reserves p4, so
     * the 1-rank job behind it goes to p2 and never to p4's free ranks */
    store_queued wide[3] = {qj("w", 50, 4, 1), qj("s", 50, 1, 2), qj("t", 50, 1, 3)};
    ck_assert_int_eq(sched_plan(wide, 3, p, 2, out), 1);
    ck_assert_int_eq(out[0].job, 1);
    ck_assert_int_eq(out[0].pool, 1);
    /* a job that fits no pool's total reserves nothing */
    store_queued huge[2] = {qj("h", 90, 8, 1), qj("s", 50, 1, 2)};
    ck_assert_int_eq(sched_plan(huge, 2, p, 2, out), 1);
    ck_assert_int_eq(out[0].job, 1);
    /* with the free ranks it needs, the wide job goes first */
    sched_pool idle = {"p4", 4, 4};
    ck_assert_int_eq(sched_plan(wide, 3, &idle, 1, out), 1);
    ck_assert_int_eq(out[0].job, 0);
}
END_TEST

/* ---- coordinator with a recording send function ---------------------------------- */

typedef struct sent {
    char pool[64];
    msg m;
} sent;

static sent outq[256];
static int n_out;
static store *S;
static coord *C;
static char dir[64];

static void record(void *ctx, const char *pool_id, const msg *m)
{
    (void)ctx;
    ck_assert_int_lt(n_out, 256);
    sent *s = &outq[n_out++];
    snprintf(s->pool, sizeof s->pool, "%s", pool_id);
    /* keep a decoded copy, as the pool would see it */
    size_t len;
    char *text = msg_encode(m, &len);
    errbuf eb;
    ck_assert_int_eq(msg_decode(&s->m, text, len, &eb), 0);
    free(text);
    for (int i = 0; i < m->n_blobs; i++)
        msg_add_blob(&s->m, m->blobs[i].data, m->blobs[i].len);
}

static void clear_out(void)
{
    for (int i = 0; i < n_out; i++)
        msg_deinit(&outq[i].m);
    n_out = 0;
}

/* The last message of type t sent to pool, or NULL. */
static msg *last_sent(const char *pool, msg_type t)
{
    for (int i = n_out - 1; i >= 0; i--)
        if (outq[i].m.type == t && strcmp(outq[i].pool, pool) == 0)
            return &outq[i].m;
    return NULL;
}

static void setup(void)
{
    errbuf eb;
    ck_assert_int_eq(store_open(&S, ":memory:", &eb), 0);
    snprintf(dir, sizeof dir, "/tmp/kiln-coord-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    coord_options o = {.heartbeat_ms = 100, .liveness = 3, .data_dir = dir};
    C = coord_new(S, &o, record, NULL, 0);
    n_out = 0;
}

static void teardown(void)
{
    coord_free(C);
    store_close(S);
    clear_out();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void submit(char id[STORE_ID_MAX], int prio, int ranks, int max_restarts)
{
    store_job_new j = {.name = "t",
                       .type = "train",
                       .priority = prio,
                       .ranks = ranks,
                       .max_restarts = max_restarts,
                       .keep_last = 2,
                       .spec_json = "{\"x\":1}"};
    errbuf eb;
    ck_assert_int_eq(store_job_create(S, &j, id, &eb), 0);
}

static void hello(const char *pool, int ranks, const char *cur_job, int cur_attempt, int64_t t)
{
    msg m;
    msg_init(&m, MSG_HELLO);
    msg_set(&m, "pool_id", json_string(pool));
    msg_set(&m, "ranks", json_integer(ranks));
    msg_set(&m, "cores", json_integer(2));
    msg_set(&m, "version", json_string("t"));
    msg_set(&m, "hosts", json_array());
    msg_set(&m, "current",
            cur_job ? json_pack("{s:s,s:i}", "job_id", cur_job, "attempt", cur_attempt)
                    : json_null());
    coord_receive(C, pool, &m, t);
    msg_deinit(&m);
}

static void simple(const char *pool, msg_type t, int64_t now)
{
    msg m;
    msg_init(&m, t);
    coord_receive(C, pool, &m, now);
    msg_deinit(&m);
}

static void job_msg(const char *pool, msg_type t, const char *job, int attempt, uint64_t seq,
                    int64_t now)
{
    msg m;
    msg_init(&m, t);
    msg_set_job(&m, job, attempt, seq);
    if (t == MSG_METRIC)
        msg_set(&m, "points", json_pack("[{s:I,s:f}]", "step", (json_int_t)seq, "loss", 1.0));
    if (t == MSG_FINISHED)
        msg_set(&m, "status", json_string("succeeded"));
    coord_receive(C, pool, &m, now);
    msg_deinit(&m);
}

static job_state state_of(const char *id)
{
    job_state st;
    errbuf eb;
    ck_assert_int_eq(store_job_state(S, id, &st, NULL, NULL, &eb), 0);
    return st;
}

/* A pool of `ranks` ranks that has said hello and ready at time t. */
static void pool_up(const char *pool, int ranks, int64_t t)
{
    hello(pool, ranks, NULL, 0, t);
    simple(pool, MSG_READY, t);
}

/* The "pool up, job started" fixture: job id (1 rank, priority 50, max_restarts) is
 * submitted, the 1-rank pool p1 comes up at time 0, gets the job at 1, and its attempt 1
 * is RUNNING at 2 (the pool's started message, seq 1, applied). */
static void job_running(char id[STORE_ID_MAX], int max_restarts)
{
    submit(id, 50, 1, max_restarts);
    pool_up("p1", 1, 0);
    coord_tick(C, 1);
    job_msg("p1", MSG_STARTED, id, 1, 1, 2);
    coord_flush(C, 2);
    ck_assert_int_eq(state_of(id), JS_RUNNING);
}

/* ready from a pool that runs the attempts given (job ids, attempt 1 each). */
static void ready_running(const char *pool, const char *const *jobs, int n, int64_t t)
{
    msg m;
    msg_init(&m, MSG_READY);
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:s,s:i}", "job_id", jobs[i], "attempt", 1));
    msg_set(&m, "running", a);
    coord_receive(C, pool, &m, t);
    msg_deinit(&m);
}

/* The job id the last assign to pool carried, or "". */
static const char *assigned(const char *pool)
{
    msg *m = last_sent(pool, MSG_ASSIGN);
    return m != NULL ? m->job_id : "";
}

START_TEST(pool_runs_several_jobs)
{
    char a[STORE_ID_MAX], b[STORE_ID_MAX], w[STORE_ID_MAX], c[STORE_ID_MAX];
    submit(a, 50, 1, 0);
    submit(b, 50, 1, 0);
    pool_up("p2", 2, 0);
    coord_tick(C, 1);
    ck_assert_str_eq(assigned("p2"), a);
    /* one assign per ready: b waits for the pool to take a and say ready again */
    clear_out();
    coord_tick(C, 2);
    ck_assert_ptr_null(last_sent("p2", MSG_ASSIGN));
    const char *run_a[] = {a};
    ready_running("p2", run_a, 1, 3);
    coord_tick(C, 4);
    ck_assert_str_eq(assigned("p2"), b);
    job_msg("p2", MSG_STARTED, a, 1, 1, 5);
    job_msg("p2", MSG_STARTED, b, 1, 1, 5);
    coord_flush(C, 5);
    ck_assert_int_eq(state_of(a), JS_RUNNING);
    ck_assert_int_eq(state_of(b), JS_RUNNING);
    json_t *wk = coord_workers(C, 6);
    json_t *p = json_array_get(wk, 0);
    ck_assert_str_eq(json_string_value(json_object_get(p, "state")), "busy");
    ck_assert_int_eq(json_array_size(json_object_get(p, "current_jobs")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "free_ranks")), 0);
    json_decref(wk);

    /* a 2-rank job, then a 1-rank one: when a ends, w fits p2's ranks but not its
     * free ones, so it reserves p2 and c does not take the freed rank */
    submit(w, 50, 2, 0);
    submit(c, 50, 1, 0);
    job_msg("p2", MSG_FINISHED, a, 1, 2, 7);
    const char *run_b[] = {b};
    clear_out();
    ready_running("p2", run_b, 1, 8);
    coord_tick(C, 9);
    ck_assert_ptr_null(last_sent("p2", MSG_ASSIGN));
    ck_assert_int_eq(state_of(a), JS_SUCCEEDED);
    ck_assert_int_eq(state_of(c), JS_QUEUED);
    /* b ends: w goes first, c after it */
    job_msg("p2", MSG_FINISHED, b, 1, 2, 10);
    ready_running("p2", NULL, 0, 11);
    coord_tick(C, 12);
    ck_assert_str_eq(assigned("p2"), w);
    ck_assert_int_eq(state_of(c), JS_QUEUED);

    /* a ready that leaves out a RUNNING attempt: it ended unreported, it is lost */
    job_msg("p2", MSG_STARTED, w, 1, 1, 13);
    ready_running("p2", NULL, 0, 14);
    coord_flush(C, 14);
    ck_assert_int_ne(state_of(w), JS_RUNNING);
    ck_assert_int_ne(state_of(w), JS_SUCCEEDED);
}
END_TEST

START_TEST(pool_lost_loses_every_job)
{
    char a[STORE_ID_MAX], b[STORE_ID_MAX];
    submit(a, 50, 1, 1);
    submit(b, 50, 1, 1);
    pool_up("p2", 2, 0);
    coord_tick(C, 1);
    const char *run_a[] = {a};
    ready_running("p2", run_a, 1, 2);
    coord_tick(C, 3);
    job_msg("p2", MSG_STARTED, a, 1, 1, 4);
    job_msg("p2", MSG_STARTED, b, 1, 1, 4);
    coord_flush(C, 4);
    /* silent past liveness (3 x 100 ms): both attempts are lost and retried */
    coord_tick(C, 400);
    ck_assert_int_eq(state_of(a), JS_RESTARTING);
    ck_assert_int_eq(state_of(b), JS_RESTARTING);
}
END_TEST

START_TEST(hello_ready_assign_ack)
{
    char id[STORE_ID_MAX];
    submit(id, 50, 2, 1);
    hello("p1", 2, NULL, 0, 10);
    ck_assert_ptr_nonnull(last_sent("p1", MSG_WELCOME));
    ck_assert_int_eq(msg_int(last_sent("p1", MSG_WELCOME), "heartbeat_ms", 0), 100);
    coord_tick(C, 20);
    ck_assert_ptr_null(last_sent("p1", MSG_ASSIGN)); /* not ready yet */
    simple("p1", MSG_READY, 30);
    coord_tick(C, 40);
    msg *a = last_sent("p1", MSG_ASSIGN);
    ck_assert_ptr_nonnull(a);
    ck_assert_str_eq(a->job_id, id);
    ck_assert_int_eq(a->attempt, 1);
    ck_assert_int_eq(json_integer_value(json_object_get(msg_get(a, "spec"), "x")), 1);
    ck_assert_int_eq(state_of(id), JS_STARTING);

    job_msg("p1", MSG_STARTED, id, 1, 1, 50);
    job_msg("p1", MSG_METRIC, id, 1, 2, 50);
    job_msg("p1", MSG_METRIC, id, 1, 2, 50); /* duplicate in the same batch */
    job_msg("p1", MSG_METRIC, id, 1, 3, 50);
    ck_assert_int_eq(coord_flush(C, 55), 3);
    ck_assert_int_eq(state_of(id), JS_RUNNING);
    /* one cumulative ack for the batch */
    int acks = 0;
    for (int i = 0; i < n_out; i++)
        acks += outq[i].m.type == MSG_ACK;
    ck_assert_int_eq(acks, 1);
    ck_assert_uint_eq(last_sent("p1", MSG_ACK)->seq, 3);
    /* a resend of seq 2 after a reconnect is acked again, not applied again */
    job_msg("p1", MSG_METRIC, id, 1, 2, 60);
    ck_assert_int_eq(coord_flush(C, 60), 0);
    ck_assert_uint_eq(last_sent("p1", MSG_ACK)->seq, 3);
    json_t *j;
    errbuf eb;
    ck_assert_int_eq(store_job_get(S, id, &j, &eb), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "metric_count")), 2);
    json_decref(j);
    json_t *w = coord_workers(C, 60);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(w, 0), "state")), "busy");
    json_decref(w);
}
END_TEST

START_TEST(artifacts_written_before_reference)
{
    char id[STORE_ID_MAX];
    job_running(id, 0);
    msg m;
    msg_init(&m, MSG_FINISHED);
    msg_set_job(&m, id, 1, 2);
    msg_set(&m, "status", json_string("succeeded"));
    msg_set(&m, "artifacts", json_pack("[{s:s,s:i}]", "name", "model.safetensors", "size", 5));
    msg_add_blob(&m, "12345", 5);
    coord_receive(C, "p1", &m, 3);
    msg_deinit(&m);
    coord_flush(C, 3);
    ck_assert_int_eq(state_of(id), JS_SUCCEEDED);
    char rel[256], path[512];
    int64_t size;
    errbuf eb;
    ck_assert_int_eq(store_artifact(S, id, "model.safetensors", rel, sizeof rel, &size, &eb), 0);
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    char buf[8] = "";
    ck_assert_uint_eq(fread(buf, 1, 8, f), 5);
    fclose(f);
    ck_assert_mem_eq(buf, "12345", 5);
    /* the pool is free again once it says ready */
    json_t *w = coord_workers(C, 4);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(w, 0), "state")), "idle");
    json_decref(w);
}
END_TEST

START_TEST(lost_pool_restarts_then_fails)
{
    char id[STORE_ID_MAX];
    job_running(id, 1);
    /* silent past 3 x 100 ms */
    coord_tick(C, 250);
    ck_assert_int_eq(state_of(id), JS_RUNNING);
    coord_tick(C, 400);
    ck_assert_int_eq(state_of(id), JS_RESTARTING);
    json_t *j;
    errbuf eb;
    ck_assert_int_eq(store_job_get(S, id, &j, &eb), 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "reason")), "WORKER_LOST");
    json_decref(j);
    json_t *w = coord_workers(C, 400);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(w, 0), "state")), "lost");
    json_decref(w);
    /* a second pool takes it: attempt 2; it dies too: no restarts left */
    pool_up("p2", 1, 410);
    coord_tick(C, 420);
    ck_assert_int_eq(last_sent("p2", MSG_ASSIGN)->attempt, 2);
    /* a late message of attempt 1 from p1 (reconnected) is stale: acked, and p1 told to cancel */
    hello("p1", 1, id, 1, 430);
    ck_assert_ptr_nonnull(last_sent("p1", MSG_CANCEL));
    job_msg("p1", MSG_METRIC, id, 1, 2, 431);
    coord_flush(C, 431);
    ck_assert_uint_eq(last_sent("p1", MSG_ACK)->seq, 2);
    coord_tick(C, 900);
    ck_assert_int_eq(state_of(id), JS_FAILED);
    ck_assert_int_eq(store_job_get(S, id, &j, &eb), 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "reason")), "BACKOFF_LIMIT_EXCEEDED");
    json_decref(j);
}
END_TEST

START_TEST(reconnect_keeps_running_job)
{
    char id[STORE_ID_MAX];
    job_running(id, 0);
    /* the connection drops and comes back within the window: the job goes on */
    hello("p1", 1, id, 1, 50);
    coord_tick(C, 60);
    ck_assert_int_eq(state_of(id), JS_RUNNING);
    ck_assert_ptr_null(last_sent("p1", MSG_CANCEL));
    /* a pool that comes back WITHOUT the job: the attempt is lost */
    hello("p1", 1, NULL, 0, 70);
    ck_assert_int_eq(state_of(id), JS_FAILED);
}
END_TEST

START_TEST(assign_sent_again_when_lost)
{
    char id[STORE_ID_MAX];
    submit(id, 50, 1, 0);
    pool_up("p1", 1, 0);
    coord_tick(C, 1);
    ck_assert_ptr_nonnull(last_sent("p1", MSG_ASSIGN));
    clear_out();
    /* the pool never got it: it reconnects idle and says ready */
    pool_up("p1", 1, 20);
    msg *a = last_sent("p1", MSG_ASSIGN);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->attempt, 1);
    ck_assert_int_eq(state_of(id), JS_STARTING);
}
END_TEST

START_TEST(cancel_is_sent_until_done)
{
    char id[STORE_ID_MAX];
    job_running(id, 0);
    errbuf eb;
    ck_assert_int_eq(
        store_transition(S, id, JS_ON_POOL, JS_CANCELLING, "USER_CANCELLED", "t", NULL, &eb), 0);
    coord_wake(C);
    coord_tick(C, 5);
    msg *c = last_sent("p1", MSG_CANCEL);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->job_id, id);
    clear_out();
    simple("p1", MSG_HEARTBEAT, 100);
    coord_tick(C, 110);
    ck_assert_ptr_nonnull(last_sent("p1", MSG_CANCEL));
    msg m;
    msg_init(&m, MSG_FINISHED);
    msg_set_job(&m, id, 1, 2);
    msg_set(&m, "status", json_string("cancelled"));
    coord_receive(C, "p1", &m, 120);
    msg_deinit(&m);
    coord_flush(C, 120);
    ck_assert_int_eq(state_of(id), JS_CANCELLED);
}
END_TEST

START_TEST(priority_order_two_pools)
{
    char lo[STORE_ID_MAX], hi[STORE_ID_MAX], mid[STORE_ID_MAX], hi2[STORE_ID_MAX];
    submit(lo, 10, 1, 0);
    submit(hi, 90, 1, 0);
    submit(mid, 50, 1, 0);
    submit(hi2, 90, 1, 0);
    hello("p1", 1, NULL, 0, 0);
    hello("p2", 1, NULL, 0, 0);
    simple("p1", MSG_READY, 0);
    simple("p2", MSG_READY, 0);
    coord_tick(C, 1);
    ck_assert_str_eq(last_sent("p1", MSG_ASSIGN)->job_id, hi);
    ck_assert_str_eq(last_sent("p2", MSG_ASSIGN)->job_id, hi2);
    ck_assert_int_eq(state_of(mid), JS_QUEUED);
    /* p2 finishes first and gets the next by priority */
    job_msg("p2", MSG_STARTED, hi2, 1, 1, 2);
    job_msg("p2", MSG_FINISHED, hi2, 1, 2, 2);
    simple("p2", MSG_READY, 3);
    coord_tick(C, 4);
    ck_assert_str_eq(last_sent("p2", MSG_ASSIGN)->job_id, mid);
    ck_assert_int_eq(state_of(lo), JS_QUEUED);
}
END_TEST

START_TEST(restart_grace_waits_for_the_pools)
{
    char id[STORE_ID_MAX];
    job_running(id, 1);
    coord_free(C);
    /* a grace longer than the liveness window (300 ms): a pool that needs 800 ms to
     * come back finds its job still its own */
    coord_options o = {
        .heartbeat_ms = 100, .liveness = 3, .restart_grace_ms = 1000, .data_dir = dir};
    C = coord_new(S, &o, record, NULL, 1000);
    coord_tick(C, 1500);
    ck_assert_int_eq(state_of(id), JS_RUNNING);
    hello("p1", 1, id, 1, 1800);
    coord_tick(C, 2100);
    ck_assert_int_eq(state_of(id), JS_RUNNING);
    /* one that does not come back loses its job once the grace is over, not before */
    coord_free(C);
    C = coord_new(S, &o, record, NULL, 3000);
    coord_tick(C, 3900);
    ck_assert_int_eq(state_of(id), JS_RUNNING);
    coord_tick(C, 4100);
    ck_assert_int_eq(state_of(id), JS_RESTARTING);
}
END_TEST

START_TEST(server_restart_reconciles)
{
    char id[STORE_ID_MAX];
    job_running(id, 1);
    /* a new coordinator on the same store (the server restarted) */
    coord_free(C);
    coord_options o = {.heartbeat_ms = 100, .liveness = 3, .data_dir = dir};
    C = coord_new(S, &o, record, NULL, 1000);
    coord_tick(C, 5); /* within the window: waits for the pool */
    ck_assert_int_eq(state_of(id), JS_RUNNING);
    /* the pool's socket reconnected underneath and it speaks without hello:
     * asked for one at once (not left to its liveness timeout) */
    clear_out();
    job_msg("p1", MSG_METRIC, id, 1, 2, 1100);
    coord_flush(C, 1100);
    msg *ask = last_sent("p1", MSG_HEARTBEAT);
    ck_assert_ptr_nonnull(ask);
    ck_assert(json_is_true(msg_get(ask, "hello")));
    ck_assert_int_eq(state_of(id), JS_RUNNING);
    hello("p1", 1, id, 1, 1150);
    job_msg("p1", MSG_METRIC, id, 1, 2, 1160);
    coord_flush(C, 1160);
    coord_tick(C, 1400);
    ck_assert_int_eq(state_of(id), JS_RUNNING);
    /* a job whose pool never comes back ends WORKER_LOST after the window */
    char other[STORE_ID_MAX];
    submit(other, 50, 1, 0);
    pool_up("p9", 1, 1400);
    coord_tick(C, 1401);
    coord_free(C);
    C = coord_new(S, &o, record, NULL, 2000);
    hello("p1", 1, id, 1, 2000);
    coord_tick(C, 2100);
    ck_assert_int_eq(state_of(other), JS_STARTING);
    simple("p1", MSG_HEARTBEAT, 2350);
    coord_tick(C, 2400);
    ck_assert_int_eq(state_of(other), JS_FAILED);
    ck_assert_int_eq(state_of(id), JS_RUNNING);
}
END_TEST

START_TEST(queued_jobs_say_why_they_wait)
{
    char big[STORE_ID_MAX], small[STORE_ID_MAX];
    submit(big, 50, 4, 0);
    submit(small, 10, 1, 0);
    coord_tick(C, 1);
    json_t *j;
    errbuf eb;
    ck_assert_int_eq(store_job_get(S, big, &j, &eb), 0);
    ck_assert_ptr_nonnull(
        strstr(json_string_value(json_object_get(j, "message")), "none is connected"));
    json_decref(j);
    pool_up("p1", 2, 2);
    coord_tick(C, 3);
    ck_assert_int_eq(state_of(small), JS_STARTING);
    ck_assert_int_eq(store_job_get(S, big, &j, &eb), 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "message")),
                     "waiting for a pool with at least 4 ranks: the largest connected pool has 2");
    ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "QUEUED");
    /* a note is not a transition: no event */
    ck_assert_int_eq(json_array_size(json_object_get(j, "events")), 1);
    json_decref(j);
}
END_TEST

/* Runs job id on pool p1 to SUCCEEDED (it was just assigned, attempt 1). */
static void succeed(const char *id, int64_t t)
{
    job_msg("p1", MSG_STARTED, id, 1, 1, t);
    job_msg("p1", MSG_FINISHED, id, 1, 2, t);
    coord_flush(C, t);
    ck_assert_int_eq(state_of(id), JS_SUCCEEDED);
}

/* The init_from weights go with the assign as the last blob, checked by
 * SHA-256, unless the pool said (ready "cached") that it holds them. */
START_TEST(init_weights_sent_unless_cached)
{
    const char bytes[] = "not really safetensors, but bytes to move";
    char path[200], hex[65];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(bytes, 1, sizeof bytes, f);
    fclose(f);
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)bytes, sizeof bytes);
    for (size_t i = 0; i < sizeof h; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    char id[2][STORE_ID_MAX];
    for (int k = 0; k < 2; k++) {
        store_job_new j = {.name = "t",
                           .type = "train",
                           .priority = 50,
                           .ranks = 1,
                           .keep_last = 2,
                           .spec_json = "{\"x\":1}",
                           .init_file = "w.safetensors",
                           .init_sha256 = hex,
                           .init_size = (int64_t)sizeof bytes};
        errbuf eb;
        ck_assert_int_eq(store_job_create(S, &j, id[k], &eb), 0);
    }
    pool_up("p1", 1, 1);
    coord_tick(C, 2);
    msg *a = last_sent("p1", MSG_ASSIGN);
    ck_assert_ptr_nonnull(a);
    ck_assert_str_eq(a->job_id, id[0]);
    json_t *init = msg_get(a, "init");
    ck_assert_str_eq(json_string_value(json_object_get(init, "sha256")), hex);
    ck_assert(json_is_true(json_object_get(init, "attached")));
    ck_assert_int_eq(a->n_blobs, 1);
    ck_assert_uint_eq(a->blobs[0].len, sizeof bytes);
    ck_assert_mem_eq(a->blobs[0].data, bytes, sizeof bytes);
    succeed(id[0], 3);
    /* the pool now holds them: only the hash goes */
    msg m;
    msg_init(&m, MSG_READY);
    msg_set(&m, "cached", json_pack("[s]", hex));
    coord_receive(C, "p1", &m, 4);
    msg_deinit(&m);
    coord_tick(C, 5);
    a = last_sent("p1", MSG_ASSIGN);
    ck_assert_str_eq(a->job_id, id[1]);
    ck_assert(json_is_false(json_object_get(msg_get(a, "init"), "attached")));
    ck_assert_int_eq(a->n_blobs, 0);
}
END_TEST

#define CHAIN_SPEC                                                                                 \
    "{\"model\":{\"arch\":\"resnet_cifar\",\"depth\":8,\"widths\":[8,16,32]},"                     \
    "\"data\":{\"dataset\":\"synthetic\"},\"after\":[\"%s\"]}"

static void submit_after(char id[STORE_ID_MAX], const char *dep)
{
    char spec[400];
    snprintf(spec, sizeof spec, CHAIN_SPEC, dep);
    const char *after[1] = {dep};
    store_job_new j = {.name = "next",
                       .type = "train",
                       .priority = 90,
                       .ranks = 1,
                       .keep_last = 2,
                       .spec_json = spec,
                       .after = after,
                       .n_after = 1,
                       .waiting_for = dep};
    errbuf eb;
    ck_assert_int_eq(store_job_create(S, &j, id, &eb), 0);
}

/* after: a job waits QUEUED (WAITING_FOR) while its dependency runs, runs
 * when it has succeeded, and is CANCELLED when its dependency is. */
START_TEST(after_waits_runs_or_cancels)
{
    char a[STORE_ID_MAX], b[STORE_ID_MAX], c[STORE_ID_MAX], d[STORE_ID_MAX];
    submit(a, 10, 1, 0);
    submit_after(b, a); /* a higher priority, but it must wait */
    pool_up("p1", 1, 1);
    coord_tick(C, 2);
    ck_assert_str_eq(last_sent("p1", MSG_ASSIGN)->job_id, a);
    json_t *j;
    errbuf eb;
    ck_assert_int_eq(store_job_get(S, b, &j, &eb), 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "QUEUED");
    ck_assert_str_eq(json_string_value(json_object_get(j, "reason")), "WAITING_FOR");
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(j, "message")), a));
    ck_assert_str_eq(
        json_string_value(json_object_get(json_array_get(json_object_get(j, "after"), 0), "state")),
        "STARTING");
    json_decref(j);
    succeed(a, 3);
    simple("p1", MSG_READY, 4);
    coord_tick(C, 5);
    ck_assert_int_eq(store_job_get(S, b, &j, &eb), 0);
    ck_assert_msg(strcmp(last_sent("p1", MSG_ASSIGN)->job_id, b) == 0, "job after: %s %s: %s",
                  json_string_value(json_object_get(j, "state")),
                  json_string_value(json_object_get(j, "reason")),
                  json_string_value(json_object_get(j, "message")));
    json_decref(j);
    /* a dependency cancelled: the job after it is cancelled, naming it */
    submit(d, 10, 4, 0); /* needs 4 ranks: stays queued */
    submit_after(c, d);
    ck_assert_int_eq(
        store_transition(S, d, JS_BIT(JS_QUEUED), JS_CANCELLED, "USER_CANCELLED", "x", NULL, &eb),
        0);
    coord_wake(C);
    coord_tick(C, 6);
    ck_assert_int_eq(state_of(c), JS_CANCELLED);
    ck_assert_int_eq(store_job_get(S, c, &j, &eb), 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "reason")), "DEPENDENCY_FAILED");
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(j, "message")), d));
    json_decref(j);
}
END_TEST

static void submit_owned(char id[STORE_ID_MAX], const char *owner, int prio, int ranks)
{
    store_job_new j = {.name = "o",
                       .type = "train",
                       .priority = prio,
                       .ranks = ranks,
                       .keep_last = 2,
                       .spec_json = "{\"x\":1}",
                       .owner = owner};
    errbuf eb;
    ck_assert_int_eq(store_job_create(S, &j, id, &eb), 0);
}

/* The pool the coordinator last assigned job id to. */
static const char *pool_of(const char *id)
{
    for (int i = n_out - 1; i >= 0; i--)
        if (outq[i].m.type == MSG_ASSIGN && strcmp(outq[i].m.job_id, id) == 0)
            return outq[i].pool;
    ck_abort_msg("job %s was not assigned", id);
    return NULL;
}

static int message_has(const char *id, const char *text)
{
    json_t *j;
    errbuf eb;
    ck_assert_int_eq(store_job_get(S, id, &j, &eb), 0);
    const char *m = json_string_value(json_object_get(j, "message"));
    int has = m != NULL && strstr(m, text) != NULL;
    json_decref(j);
    return has;
}

/* A coordinator with per-owner limits over three free 2-rank pools. */
static void owner_limited(int max_running, int max_ranks)
{
    coord_free(C);
    coord_options o = {.heartbeat_ms = 100,
                       .liveness = 3,
                       .data_dir = dir,
                       .owner_max_running = max_running,
                       .owner_max_ranks = max_ranks};
    C = coord_new(S, &o, record, NULL, 0);
    const char *pools[3] = {"p1", "p2", "p3"};
    for (int i = 0; i < 3; i++) {
        pool_up(pools[i], 2, 0);
    }
}

START_TEST(owner_running_limit)
{
    /* alice may run one job at once: her second waits while a pool is free,
     * and bob's lower-priority job starts past it */
    owner_limited(1, 0);
    char a1[STORE_ID_MAX], a2[STORE_ID_MAX], b1[STORE_ID_MAX];
    submit_owned(a1, "alice", 90, 1);
    submit_owned(a2, "alice", 80, 1);
    submit_owned(b1, "bob", 10, 1);
    coord_tick(C, 1);
    ck_assert_int_eq(state_of(a1), JS_STARTING);
    ck_assert_int_eq(state_of(a2), JS_QUEUED);
    ck_assert_int_eq(state_of(b1), JS_STARTING);
    ck_assert(message_has(a2, "owner 'alice' runs 1 jobs"));
    ck_assert(message_has(a2, "--owner-max-running 1"));
    /* her first job ends: the second starts */
    const char *p = pool_of(a1);
    job_msg(p, MSG_STARTED, a1, 1, 1, 2);
    job_msg(p, MSG_FINISHED, a1, 1, 2, 2);
    coord_flush(C, 2);
    ck_assert_int_eq(state_of(a1), JS_SUCCEEDED);
    simple(p, MSG_READY, 3);
    coord_tick(C, 4);
    ck_assert_int_eq(state_of(a2), JS_STARTING);
}
END_TEST

START_TEST(owner_ranks_limit)
{
    /* carol may hold 3 ranks: two 2-rank jobs do not fit together, a 1-rank
     * job beside the first does; dave has no such jobs and is not held */
    owner_limited(0, 3);
    char c1[STORE_ID_MAX], c2[STORE_ID_MAX], c3[STORE_ID_MAX], d1[STORE_ID_MAX];
    submit_owned(c1, "carol", 90, 2);
    submit_owned(c2, "carol", 80, 2);
    submit_owned(c3, "carol", 70, 1);
    submit_owned(d1, "dave", 10, 2);
    coord_tick(C, 1);
    ck_assert_int_eq(state_of(c1), JS_STARTING);
    ck_assert_int_eq(state_of(c2), JS_QUEUED);
    ck_assert_int_eq(state_of(c3), JS_STARTING);
    ck_assert_int_eq(state_of(d1), JS_STARTING);
    ck_assert(message_has(c2, "owner 'carol' uses 2 ranks and this job needs 2 more"));
    ck_assert(message_has(c2, "--owner-max-ranks"));
}
END_TEST

Suite *suite_coord(void)
{
    Suite *s = suite_create("coord");
    tu_case_add(s, "scheduler", 0, NULL, NULL,
                TU_TESTS(sched_best_fit_and_skip, sched_partly_busy_pools));
    tu_case_add(s, "coord", 0, setup, teardown,
                TU_TESTS(hello_ready_assign_ack, pool_runs_several_jobs, pool_lost_loses_every_job,
                         owner_running_limit, owner_ranks_limit, artifacts_written_before_reference,
                         lost_pool_restarts_then_fails, reconnect_keeps_running_job,
                         assign_sent_again_when_lost, cancel_is_sent_until_done,
                         priority_order_two_pools, restart_grace_waits_for_the_pools,
                         server_restart_reconciles, queued_jobs_say_why_they_wait,
                         init_weights_sent_unless_cached, after_waits_runs_or_cancels));
    return s;
}
