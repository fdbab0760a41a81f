/* check_store.c - the SQLite job store (server/store*.c) on :memory:. */
#include "server/store.h"
/* sq_write and the connection, for the transaction and prepare checks */
#include "server/store_impl.h"
#include "tests/unit/testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Suite *suite_store(void);

static store *S;

static void setup(void)
{
    errbuf eb;
    ck_assert_int_eq(store_open(&S, ":memory:", &eb), 0);
}

static void teardown(void)
{
    store_close(S);
    S = NULL;
}

static void create(char id[STORE_ID_MAX], const char *name, int priority, int ranks)
{
    errbuf eb;
    store_job_new j = {.name = name,
                       .type = "train",
                       .priority = priority,
                       .ranks = ranks,
                       .max_restarts = 1,
                       .keep_last = 2,
                       .spec_json = "{\"name\":\"x\"}",
                       .params = 1000,
                       .mflops = 1.5};
    ck_assert_int_eq(store_job_create(S, &j, id, &eb), 0);
}

static job_state state_of(const char *id)
{
    job_state st;
    errbuf eb;
    ck_assert_int_eq(store_job_state(S, id, &st, NULL, NULL, &eb), 0);
    return st;
}

/* Applies one job message from pool p; returns the outcome. */
static store_apply_outcome apply(msg *m, const char *pool, uint64_t *ack, const char *path)
{
    store_apply_in in = {.m = m, .pool_id = pool};
    for (int i = 0; i < m->n_blobs; i++)
        in.blob_paths[i] = path;
    store_apply_out out;
    errbuf eb;
    ck_assert_int_eq(store_apply_batch(S, &in, &out, 1, &eb), 0);
    if (ack != NULL)
        *ack = out.ack_seq;
    json_decref(out.unlink);
    return out.outcome;
}

static void metric_msg(msg *m, const char *id, int attempt, uint64_t seq, int step, double loss)
{
    msg_init(m, MSG_METRIC);
    msg_set_job(m, id, attempt, seq);
    msg_set(m, "points", json_pack("[{s:i,s:f,s:f}]", "step", step, "loss", loss, "acc", 0.5));
}

START_TEST(open_and_version)
{
    ck_assert_int_eq(store_schema_version(S), STORE_SCHEMA_VERSION);
    errbuf eb;
    ck_assert_int_eq(store_writable(S, &eb), 0);
}
END_TEST

START_TEST(newer_schema_refused)
{
    char dir[] = "/tmp/kiln-store-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/kiln.db", dir);
    store *s2;
    errbuf eb;
    ck_assert_int_eq(store_open(&s2, path, &eb), 0);
    store_close(s2);
    /* reopening an up-to-date file is fine and keeps the version */
    ck_assert_int_eq(store_open(&s2, path, &eb), 0);
    ck_assert_int_eq(store_schema_version(s2), STORE_SCHEMA_VERSION);
    store_close(s2);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "sqlite3 %s 'PRAGMA user_version=99'", path);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(store_open(&s2, path, &eb), ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(eb.msg, "99"));
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* A store of schema 4 (before metrics_dropped) with a job in it: opening it
 * migrates it in place, and the job reads back whole, with none dropped. */
START_TEST(older_schema_migrated)
{
    char dir[] = "/tmp/kiln-store-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/kiln.db", dir);
    store *keep = S, *s2;
    errbuf eb;
    ck_assert_int_eq(store_open(&s2, path, &eb), 0);
    S = s2;
    char id[STORE_ID_MAX];
    create(id, "old", 50, 1);
    S = keep;
    store_close(s2);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "sqlite3 %s 'ALTER TABLE jobs DROP COLUMN metrics_dropped; PRAGMA user_version=4'",
             path);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(store_open(&s2, path, &eb), 0);
    ck_assert_int_eq(store_schema_version(s2), STORE_SCHEMA_VERSION);
    json_t *j;
    ck_assert_int_eq(store_job_get(s2, id, &j, &eb), 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "old");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "metrics_dropped")), 0);
    json_decref(j);
    store_close(s2);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(create_get)
{
    char id[STORE_ID_MAX];
    create(id, "first", 50, 2);
    ck_assert_int_eq(id[0], 'j');
    json_t *j;
    errbuf eb;
    ck_assert_int_eq(store_job_get(S, id, &j, &eb), 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "QUEUED");
    ck_assert_str_eq(json_string_value(json_object_get(j, "reason")), "SUBMITTED");
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "first");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "ranks")), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "spec"), "name")), "x");
    json_t *ev = json_object_get(j, "events");
    ck_assert_int_eq(json_array_size(ev), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(ev, 0), "to")), "QUEUED");
    json_decref(j);
    ck_assert_int_eq(store_job_get(S, "jnope", &j, &eb), ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(eb.msg, "jnope"));
}
END_TEST

START_TEST(idempotency)
{
    errbuf eb;
    char a[STORE_ID_MAX], b[STORE_ID_MAX];
    store_job_new j = {.name = "n",
                       .type = "train",
                       .priority = 1,
                       .ranks = 1,
                       .spec_json = "{}",
                       .idem_key = "k1",
                       .body_hash = "h1"};
    ck_assert_int_eq(store_job_create(S, &j, a, &eb), 0);
    ck_assert_int_eq(store_job_create(S, &j, b, &eb), 1);
    ck_assert_str_eq(a, b);
    j.body_hash = "h2";
    ck_assert_int_eq(store_job_create(S, &j, b, &eb), ERR_EXISTS);
    ck_assert_ptr_nonnull(strstr(eb.msg, "k1"));
    int64_t n;
    ck_assert_int_eq(store_job_count(S, &n, &eb), 0);
    ck_assert_int_eq(n, 1);
}
END_TEST

START_TEST(batch_create_is_one_commit)
{
    /* Group commit: four jobs in one transaction. The second reuses an
     * existing key with another body (refused alone), the fourth repeats
     * the first's key and body within the batch (the first's job). */
    errbuf eb;
    char old[STORE_ID_MAX];
    store_job_new base = {
        .name = "n", .type = "train", .priority = 1, .ranks = 1, .spec_json = "{}"};
    store_job_new k0 = base, j1 = base, j2 = base, j3 = base;
    k0.idem_key = "k0", k0.body_hash = "h0";
    ck_assert_int_eq(store_job_create(S, &k0, old, &eb), 0);
    j1.idem_key = "k1", j1.body_hash = "h1";
    j2.idem_key = "k0", j2.body_hash = "other";
    j3.name = "third";
    store_job_batch b[4] = {{.job = &j1}, {.job = &j2}, {.job = &j3}, {.job = &j1}};
    uint64_t before = store_changes(S);
    ck_assert_int_eq(store_job_create_batch(S, b, 4, &eb), 0);
    ck_assert_int_eq(store_changes(S), before + 1); /* one commit */
    ck_assert_int_eq(b[0].rc, 0);
    ck_assert_int_eq(b[1].rc, ERR_EXISTS);
    ck_assert_ptr_nonnull(strstr(b[1].eb.msg, "k0"));
    ck_assert_int_eq(b[2].rc, 0);
    ck_assert_int_eq(b[3].rc, 1);
    ck_assert_str_eq(b[3].id, b[0].id);
    ck_assert_str_ne(b[0].id, b[2].id);
    int64_t n;
    ck_assert_int_eq(store_job_count(S, &n, &eb), 0);
    ck_assert_int_eq(n, 3); /* k0's, the first and the third */
    json_t *job;
    ck_assert_int_eq(store_job_get(S, b[2].id, &job, &eb), 0);
    ck_assert_str_eq(json_string_value(json_object_get(job, "name")), "third");
    ck_assert_str_eq(json_string_value(json_object_get(job, "state")), "QUEUED");
    json_decref(job);
}
END_TEST

START_TEST(transitions_cas)
{
    char id[STORE_ID_MAX];
    create(id, "t", 50, 1);
    errbuf eb;
    job_state was;
    /* QUEUED -> RUNNING is not in from_mask {STARTING}: refused, nothing changes */
    ck_assert_int_eq(store_transition(S, id, JS_BIT(JS_STARTING), JS_RUNNING, "X", "y", &was, &eb),
                     ERR_STATE);
    ck_assert_int_eq(was, JS_QUEUED);
    ck_assert_ptr_nonnull(strstr(eb.msg, "QUEUED"));
    ck_assert_int_eq(store_transition(S, id, JS_BIT(JS_QUEUED), JS_CANCELLED, "USER_CANCELLED",
                                      "by test", &was, &eb),
                     0);
    ck_assert_int_eq(state_of(id), JS_CANCELLED);
    /* a second cancel finds CANCELLED */
    ck_assert_int_eq(store_transition(S, id, JS_BIT(JS_QUEUED), JS_CANCELLED, "USER_CANCELLED",
                                      "again", &was, &eb),
                     ERR_STATE);
    ck_assert_int_eq(was, JS_CANCELLED);
    json_t *ev;
    ck_assert_int_eq(store_events(S, id, 0, 100, &ev, &eb), 0);
    ck_assert_int_eq(json_array_size(ev), 2);
    json_t *e = json_array_get(ev, 1);
    ck_assert_str_eq(json_string_value(json_object_get(e, "from")), "QUEUED");
    ck_assert_str_eq(json_string_value(json_object_get(e, "reason")), "USER_CANCELLED");
    ck_assert_str_eq(json_string_value(json_object_get(e, "message")), "by test");
    json_decref(ev);
    ck_assert(store_transition_legal(JS_RUNNING, JS_RESTARTING));
    ck_assert(!store_transition_legal(JS_SUCCEEDED, JS_RUNNING));
    ck_assert(!store_transition_legal(JS_QUEUED, JS_RUNNING));
}
END_TEST

START_TEST(list_pages_filters)
{
    char ids[7][STORE_ID_MAX];
    for (int i = 0; i < 7; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s-%d", i % 2 ? "odd" : "even", i);
        create(ids[i], name, 10, 1);
    }
    errbuf eb;
    store_transition(S, ids[3], JS_BIT(JS_QUEUED), JS_CANCELLED, "USER_CANCELLED", "x", NULL, &eb);
    store_list_query q = {.state = -1, .page_size = 3};
    json_t *items;
    int64_t next;
    int seen = 0;
    char prev[STORE_ID_MAX] = "";
    for (int page = 0; page < 5; page++) {
        ck_assert_int_eq(store_job_list(S, &q, &items, &next, &eb), 0);
        for (size_t i = 0; i < json_array_size(items); i++) {
            const char *id = json_string_value(json_object_get(json_array_get(items, i), "id"));
            /* newest first: ids[6] .. ids[0] */
            ck_assert_str_eq(id, ids[6 - seen]);
            if (prev[0])
                ck_assert_int_ne(strcmp(prev, id), 0);
            snprintf(prev, sizeof prev, "%s", id);
            seen++;
        }
        json_decref(items);
        if (next == 0)
            break;
        q.before = next;
    }
    ck_assert_int_eq(seen, 7);
    store_list_query f = {.state = JS_CANCELLED, .page_size = 10};
    ck_assert_int_eq(store_job_list(S, &f, &items, &next, &eb), 0);
    ck_assert_int_eq(json_array_size(items), 1);
    ck_assert_int_eq(next, 0);
    json_decref(items);
    store_list_query g = {.state = -1, .q = "odd", .page_size = 10};
    ck_assert_int_eq(store_job_list(S, &g, &items, &next, &eb), 0);
    ck_assert_int_eq(json_array_size(items), 3);
    json_decref(items);
    store_list_query h = {.state = -1, .type = "prune", .page_size = 10};
    ck_assert_int_eq(store_job_list(S, &h, &items, &next, &eb), 0);
    ck_assert_int_eq(json_array_size(items), 0);
    json_decref(items);
}
END_TEST

START_TEST(queue_order)
{
    char a[STORE_ID_MAX], b[STORE_ID_MAX], c[STORE_ID_MAX], d[STORE_ID_MAX];
    create(a, "a", 10, 1);
    create(b, "b", 90, 1);
    create(c, "c", 10, 2);
    create(d, "d", 90, 4);
    store_queued *q;
    int n;
    errbuf eb;
    ck_assert_int_eq(store_queue(S, &q, &n, &eb), 0);
    ck_assert_int_eq(n, 4);
    ck_assert_str_eq(q[0].id, b);
    ck_assert_str_eq(q[1].id, d);
    ck_assert_str_eq(q[2].id, a);
    ck_assert_str_eq(q[3].id, c);
    ck_assert_int_eq(q[1].ranks, 4);
    free(q);
}
END_TEST

/* Starts attempt 1 of a fresh job on pool p1 and returns its id. */
static void running_job(char id[STORE_ID_MAX])
{
    create(id, "r", 50, 1);
    store_assignment a;
    errbuf eb;
    ck_assert_int_eq(store_attempt_start(S, id, "p1", &a, &eb), 0);
    ck_assert_int_eq(a.attempt, 1);
    ck_assert_str_eq(a.spec_json, "{\"name\":\"x\"}");
    ck_assert_str_eq(a.ckpt_path, "");
    free(a.spec_json);
    ck_assert_int_eq(state_of(id), JS_STARTING);
    msg m;
    msg_init(&m, MSG_STARTED);
    msg_set_job(&m, id, 1, 1);
    msg_set(&m, "total_steps", json_integer(100));
    ck_assert_int_eq(apply(&m, "p1", NULL, NULL), APPLY_OK);
    msg_deinit(&m);
    ck_assert_int_eq(state_of(id), JS_RUNNING);
}

START_TEST(apply_dedup_gap_stale)
{
    char id[STORE_ID_MAX];
    running_job(id);
    msg m;
    uint64_t ack;
    metric_msg(&m, id, 1, 2, 10, 1.0);
    ck_assert_int_eq(apply(&m, "p1", &ack, NULL), APPLY_OK);
    ck_assert_uint_eq(ack, 2);
    /* the same message again: not applied, acked again */
    ck_assert_int_eq(apply(&m, "p1", &ack, NULL), APPLY_DUP);
    ck_assert_uint_eq(ack, 2);
    msg_deinit(&m);
    /* seq 4 before 3: a gap, not applied; the ack repeats 2 */
    metric_msg(&m, id, 1, 4, 30, 3.0);
    ck_assert_int_eq(apply(&m, "p1", &ack, NULL), APPLY_GAP);
    ck_assert_uint_eq(ack, 2);
    msg_deinit(&m);
    metric_msg(&m, id, 1, 3, 20, 2.0);
    ck_assert_int_eq(apply(&m, "p1", &ack, NULL), APPLY_OK);
    msg_deinit(&m);
    metric_msg(&m, id, 1, 4, 30, 3.0);
    ck_assert_int_eq(apply(&m, "p1", &ack, NULL), APPLY_OK);
    ck_assert_uint_eq(ack, 4);
    msg_deinit(&m);
    /* another attempt number, or another pool: stale, acked, dropped */
    metric_msg(&m, id, 2, 5, 40, 4.0);
    ck_assert_int_eq(apply(&m, "p1", &ack, NULL), APPLY_STALE);
    ck_assert_uint_eq(ack, 5);
    msg_deinit(&m);
    metric_msg(&m, id, 1, 5, 40, 4.0);
    ck_assert_int_eq(apply(&m, "p2", &ack, NULL), APPLY_STALE);
    msg_deinit(&m);
    /* 3 metric messages of 2 values each: seq 1..6, each once, in order */
    store_metric_query mq = {.after_seq = 0, .limit = 1000};
    json_t *o;
    errbuf eb;
    ck_assert_int_eq(store_metrics(S, id, &mq, &o, &eb), 0);
    json_t *pts = json_object_get(o, "points");
    ck_assert_int_eq(json_array_size(pts), 6);
    for (size_t i = 0; i < 6; i++)
        ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(pts, i), "seq")),
                         (json_int_t)i + 1);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "next_seq")), 6);
    json_decref(o);
    /* after_seq is exclusive; names filters */
    mq.after_seq = 4;
    mq.names = "loss";
    ck_assert_int_eq(store_metrics(S, id, &mq, &o, &eb), 0);
    pts = json_object_get(o, "points");
    ck_assert_int_eq(json_array_size(pts), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(pts, 0), "name")), "loss");
    ck_assert(json_real_value(json_object_get(json_array_get(pts, 0), "value")) == 3.0);
    json_decref(o);
    json_t *j;
    ck_assert_int_eq(store_job_get(S, id, &j, &eb), 0);
    json_t *prog = json_object_get(j, "progress");
    ck_assert_int_eq(json_integer_value(json_object_get(prog, "step")), 30);
    ck_assert_int_eq(json_integer_value(json_object_get(prog, "total_steps")), 100);
    json_t *lat = json_object_get(json_object_get(j, "latest_metrics"), "loss");
    ck_assert(json_real_value(json_object_get(lat, "value")) == 3.0);
    json_decref(j);
}
END_TEST

START_TEST(downsampling)
{
    char id[STORE_ID_MAX];
    running_job(id);
    /* 100 points of one series with a spike (min) at step 37 */
    for (int i = 0; i < 100; i++) {
        msg m;
        msg_init(&m, MSG_METRIC);
        msg_set_job(&m, id, 1, (uint64_t)i + 2);
        double v = i == 37 ? -5.0 : (i == 62 ? 9.0 : (double)(i % 7));
        msg_set(&m, "points", json_pack("[{s:i,s:f}]", "step", i, "loss", v));
        ck_assert_int_eq(apply(&m, "p1", NULL, NULL), APPLY_OK);
        msg_deinit(&m);
    }
    store_metric_query mq = {.after_seq = 0, .limit = 1000, .max_points = 20};
    json_t *o;
    errbuf eb;
    ck_assert_int_eq(store_metrics(S, id, &mq, &o, &eb), 0);
    json_t *pts = json_object_get(o, "points");
    size_t n = json_array_size(pts);
    ck_assert_uint_le(n, 20);
    ck_assert_uint_ge(n, 10);
    ck_assert(json_is_true(json_object_get(o, "downsampled")));
    ck_assert_int_eq(json_integer_value(json_object_get(o, "next_seq")), 100);
    int has_min = 0, has_max = 0;
    int64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(pts, i);
        int64_t seq = json_integer_value(json_object_get(p, "seq"));
        ck_assert_int_gt(seq, prev);
        prev = seq;
        double v = json_real_value(json_object_get(p, "value"));
        has_min |= v == -5.0;
        has_max |= v == 9.0;
    }
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(pts, 0), "seq")), 1);
    ck_assert_int_eq(prev, 100);
    ck_assert(has_min && has_max);
    json_decref(o);
}
END_TEST

START_TEST(finish_with_artifacts)
{
    char id[STORE_ID_MAX];
    running_job(id);
    msg m;
    msg_init(&m, MSG_CHECKPOINT);
    msg_set_job(&m, id, 1, 2);
    msg_set(&m, "step", json_integer(50));
    msg_add_blob(&m, "abc", 3);
    ck_assert_int_eq(apply(&m, "p1", NULL, "jobs/x/checkpoints/step-50.safetensors"), APPLY_OK);
    msg_deinit(&m);
    msg_init(&m, MSG_FINISHED);
    msg_set_job(&m, id, 1, 3);
    msg_set(&m, "status", json_string("succeeded"));
    msg_set(&m, "result", json_pack("{s:f}", "test_acc", 0.75));
    msg_set(&m, "artifacts", json_pack("[{s:s,s:i}]", "name", "model.safetensors", "size", 4));
    msg_add_blob(&m, "wxyz", 4);
    ck_assert_int_eq(apply(&m, "p1", NULL, "jobs/x/artifacts/model.safetensors"), APPLY_OK);
    msg_deinit(&m);
    ck_assert_int_eq(state_of(id), JS_SUCCEEDED);
    char path[256];
    int64_t size;
    errbuf eb;
    ck_assert_int_eq(store_artifact(S, id, "model.safetensors", path, sizeof path, &size, &eb), 0);
    ck_assert_str_eq(path, "jobs/x/artifacts/model.safetensors");
    ck_assert_int_eq(size, 4);
    ck_assert_int_eq(store_artifact(S, id, "nope", path, sizeof path, &size, &eb), ERR_NOT_FOUND);
    json_t *j;
    ck_assert_int_eq(store_job_get(S, id, &j, &eb), 0);
    ck_assert(json_real_value(json_object_get(json_object_get(j, "result"), "test_acc")) == 0.75);
    ck_assert_str_eq(json_string_value(json_object_get(j, "reason")), "COMPLETED");
    json_t *att = json_array_get(json_object_get(j, "attempts"), 0);
    ck_assert(json_is_false(json_object_get(att, "active")));
    json_decref(j);
    /* a message after the end is stale */
    metric_msg(&m, id, 1, 4, 60, 1.0);
    ck_assert_int_eq(apply(&m, "p1", NULL, NULL), APPLY_STALE);
    msg_deinit(&m);
    ck_assert_int_eq(store_job_delete(S, id, &eb), 0);
    ck_assert_int_eq(store_job_get(S, id, &j, &eb), ERR_NOT_FOUND);
}
END_TEST

START_TEST(checkpoint_keep_last)
{
    char id[STORE_ID_MAX];
    running_job(id); /* keep_last = 2 */
    for (int i = 0; i < 3; i++) {
        msg m;
        msg_init(&m, MSG_CHECKPOINT);
        msg_set_job(&m, id, 1, (uint64_t)i + 2);
        msg_set(&m, "step", json_integer(10 * (i + 1)));
        msg_add_blob(&m, "abc", 3);
        char path[64];
        snprintf(path, sizeof path, "ck-%d", 10 * (i + 1));
        store_apply_in in = {.m = &m, .pool_id = "p1", .blob_paths = {path}};
        store_apply_out out;
        errbuf eb;
        ck_assert_int_eq(store_apply_batch(S, &in, &out, 1, &eb), 0);
        ck_assert_int_eq(out.outcome, APPLY_OK);
        if (i < 2) {
            ck_assert_ptr_null(out.unlink);
        } else {
            ck_assert_int_eq(json_array_size(out.unlink), 1);
            ck_assert_str_eq(json_string_value(json_array_get(out.unlink, 0)), "ck-10");
        }
        json_decref(out.unlink);
        msg_deinit(&m);
    }
}
END_TEST

START_TEST(failure_and_retry)
{
    char id[STORE_ID_MAX];
    running_job(id); /* max_restarts = 1 */
    msg m;
    msg_init(&m, MSG_FAILED);
    msg_set_job(&m, id, 1, 2);
    msg_set(&m, "reason", json_string("RANK_FAILED"));
    msg_set(&m, "message", json_string("rank 1 exited with signal 9"));
    ck_assert_int_eq(apply(&m, "p1", NULL, NULL), APPLY_OK);
    msg_deinit(&m);
    ck_assert_int_eq(state_of(id), JS_RESTARTING);
    store_queued *q;
    int n;
    errbuf eb;
    ck_assert_int_eq(store_queue(S, &q, &n, &eb), 0);
    ck_assert_int_eq(n, 1);
    free(q);
    store_assignment a;
    ck_assert_int_eq(store_attempt_start(S, id, "p2", &a, &eb), 0);
    ck_assert_int_eq(a.attempt, 2);
    free(a.spec_json);
    /* the pool dies: no restarts left */
    ck_assert_int_eq(store_attempt_lost(S, id, 1, "WORKER_LOST", "gone", &eb), ERR_STATE);
    ck_assert_int_eq(
        store_attempt_lost(S, id, 2, "WORKER_LOST", "pool p2 missed 5 heartbeats", &eb), 0);
    json_t *j;
    ck_assert_int_eq(store_job_get(S, id, &j, &eb), 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "FAILED");
    ck_assert_str_eq(json_string_value(json_object_get(j, "reason")), "BACKOFF_LIMIT_EXCEEDED");
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(j, "message")), "WORKER_LOST"));
    json_decref(j);
}
END_TEST

/* Steps of job id's "loss" points, in seq order, into steps[]; returns how many. */
static int loss_steps(const char *id, int *steps, int cap)
{
    store_metric_query mq = {.after_seq = 0, .limit = 1000, .names = "loss"};
    json_t *o;
    errbuf eb;
    ck_assert_int_eq(store_metrics(S, id, &mq, &o, &eb), 0);
    json_t *pts = json_object_get(o, "points");
    int n = (int)json_array_size(pts);
    ck_assert_int_le(n, cap);
    for (int i = 0; i < n; i++)
        steps[i] = (int)json_integer_value(json_object_get(json_array_get(pts, i), "step"));
    json_decref(o);
    return n;
}

/* The attempt's pool is lost; the retry starts (on p2). */
static store_assignment lose_and_retry(const char *id, int attempt)
{
    errbuf eb;
    ck_assert_int_eq(store_attempt_lost(S, id, attempt, "WORKER_LOST", "gone", &eb), 0);
    ck_assert_int_eq(state_of(id), JS_RESTARTING);
    store_assignment a;
    ck_assert_int_eq(store_attempt_start(S, id, "p2", &a, &eb), 0);
    ck_assert_int_eq(a.attempt, attempt + 1);
    free(a.spec_json);
    return a;
}

START_TEST(retry_supersedes_metrics)
{
    char id[STORE_ID_MAX];
    running_job(id);
    msg m;
    uint64_t seq = 2;
    for (int step = 10; step <= 40; step += 10) {
        metric_msg(&m, id, 1, seq++, step, step / 10.0);
        ck_assert_int_eq(apply(&m, "p1", NULL, NULL), APPLY_OK);
        msg_deinit(&m);
        if (step == 20) { /* a checkpoint at step 20 comes between them */
            msg_init(&m, MSG_CHECKPOINT);
            msg_set_job(&m, id, 1, seq++);
            msg_set(&m, "step", json_integer(20));
            msg_add_blob(&m, "abc", 3);
            ck_assert_int_eq(apply(&m, "p1", NULL, "ck-20"), APPLY_OK);
            msg_deinit(&m);
        }
    }
    /* attempt 1 died after step 40; attempt 2 resumes from the checkpoint at 20: the
     * 4 points (loss and acc) of steps 30 and 40 go, the job's progress goes back */
    store_assignment a = lose_and_retry(id, 1);
    ck_assert_int_eq(a.ckpt_step, 20);
    ck_assert_int_eq(a.superseded, 4);
    int steps[16];
    ck_assert_int_eq(loss_steps(id, steps, 16), 2);
    ck_assert_int_eq(steps[0], 10);
    ck_assert_int_eq(steps[1], 20);
    json_t *j;
    errbuf eb;
    ck_assert_int_eq(store_job_get(S, id, &j, &eb), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "progress"), "step")),
                     20);
    json_t *lat = json_object_get(json_object_get(j, "latest_metrics"), "loss");
    ck_assert(json_real_value(json_object_get(lat, "value")) == 2.0);
    ck_assert_int_eq(json_integer_value(json_object_get(lat, "step")), 20);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "metrics_dropped")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "metric_count")), 8);
    const char *text = json_string_value(json_object_get(j, "message"));
    ck_assert_msg(strstr(text, "step 20") != NULL && strstr(text, "4 metric points") != NULL,
                  "the state message says what went: %s", text);
    json_decref(j);
    /* attempt 2 logs step 30 again: each step once, seqs go on from where they were */
    metric_msg(&m, id, 2, 1, 30, 3.5);
    ck_assert_int_eq(apply(&m, "p2", NULL, NULL), APPLY_OK);
    msg_deinit(&m);
    ck_assert_int_eq(loss_steps(id, steps, 16), 3);
    ck_assert_int_eq(steps[2], 30);
}
END_TEST

START_TEST(retry_without_checkpoint_starts_over)
{
    char id[STORE_ID_MAX];
    running_job(id);
    msg m;
    metric_msg(&m, id, 1, 2, 10, 1.0);
    ck_assert_int_eq(apply(&m, "p1", NULL, NULL), APPLY_OK);
    msg_deinit(&m);
    store_assignment a = lose_and_retry(id, 1);
    ck_assert_str_eq(a.ckpt_path, "");
    ck_assert_int_eq(a.superseded, 2);
    int steps[4];
    ck_assert_int_eq(loss_steps(id, steps, 4), 0);
    json_t *j;
    errbuf eb;
    ck_assert_int_eq(store_job_get(S, id, &j, &eb), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "progress"), "step")),
                     0);
    ck_assert_int_eq(json_object_size(json_object_get(j, "latest_metrics")), 0);
    json_decref(j);
}
END_TEST

START_TEST(invalid_data_is_final)
{
    char id[STORE_ID_MAX];
    running_job(id);
    msg m;
    msg_init(&m, MSG_FAILED);
    msg_set_job(&m, id, 1, 2);
    msg_set(&m, "reason", json_string("INVALID_DATA"));
    msg_set(&m, "message", json_string("cannot open /nope/train-images-idx3-ubyte"));
    ck_assert_int_eq(apply(&m, "p1", NULL, NULL), APPLY_OK);
    msg_deinit(&m);
    ck_assert_int_eq(state_of(id), JS_FAILED);
}
END_TEST

START_TEST(cancel_running)
{
    char id[STORE_ID_MAX];
    running_job(id);
    errbuf eb;
    ck_assert_int_eq(
        store_transition(S, id, JS_ON_POOL, JS_CANCELLING, "USER_CANCELLED", "asked", NULL, &eb),
        0);
    store_active *act;
    int n;
    ck_assert_int_eq(store_active_list(S, &act, &n, &eb), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(act[0].pool_id, "p1");
    ck_assert_int_eq(act[0].state, JS_CANCELLING);
    free(act);
    /* metrics still count while cancelling */
    msg m;
    metric_msg(&m, id, 1, 2, 5, 1.0);
    ck_assert_int_eq(apply(&m, "p1", NULL, NULL), APPLY_OK);
    msg_deinit(&m);
    msg_init(&m, MSG_FINISHED);
    msg_set_job(&m, id, 1, 3);
    msg_set(&m, "status", json_string("cancelled"));
    ck_assert_int_eq(apply(&m, "p1", NULL, NULL), APPLY_OK);
    msg_deinit(&m);
    ck_assert_int_eq(state_of(id), JS_CANCELLED);
    /* delete refuses non-terminal jobs */
    char other[STORE_ID_MAX];
    create(other, "q", 1, 1);
    ck_assert_int_eq(store_job_delete(S, other, &eb), ERR_STATE);
    ck_assert_int_eq(store_job_delete(S, id, &eb), 0);
}
END_TEST

START_TEST(logs_tail)
{
    char id[STORE_ID_MAX];
    running_job(id);
    msg m;
    msg_init(&m, MSG_LOG);
    msg_set_job(&m, id, 1, 2);
    msg_set(&m, "lines",
            json_pack("[{s:s},{s:s,s:s},{s:s}]", "text", "one", "text", "two", "level", "warn",
                      "text", "three"));
    ck_assert_int_eq(apply(&m, "p1", NULL, NULL), APPLY_OK);
    msg_deinit(&m);
    json_t *o;
    errbuf eb;
    ck_assert_int_eq(store_logs(S, id, 0, 100, 2, &o, &eb), 0);
    json_t *lines = json_object_get(o, "lines");
    ck_assert_int_eq(json_array_size(lines), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(lines, 0), "text")), "two");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(lines, 0), "level")), "warn");
    json_decref(o);
    ck_assert_int_eq(store_logs(S, id, 1, 100, 0, &o, &eb), 0);
    ck_assert_int_eq(json_array_size(json_object_get(o, "lines")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "next_seq")), 3);
    json_decref(o);
}
END_TEST

/* Uploaded models: create, get, list; delete refused while a job that has
 * not ended starts from one; after deps: the first job not succeeded, a
 * deleted one. */
START_TEST(models_and_deps)
{
    errbuf eb;
    char m[STORE_ID_MAX];
    store_new_id("m", m);
    store_model_new mn = {.name = "up",
                          .path = "models/x.safetensors",
                          .size = 10,
                          .sha256 = "ab",
                          .model_json = "{\"arch\":\"deit\"}",
                          .tensors = 2,
                          .params = 7};
    ck_assert_int_eq(store_model_create(S, &mn, m, &eb), 0);
    json_t *o;
    char path[256];
    ck_assert_int_eq(store_model_get(S, m, &o, path, sizeof path, &eb), 0);
    ck_assert_str_eq(path, "models/x.safetensors");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "model"), "arch")),
                     "deit");
    ck_assert_int_eq(json_integer_value(json_object_get(o, "params")), 7);
    json_decref(o);
    ck_assert_int_eq(store_model_list(S, &o, &eb), 0);
    ck_assert_int_eq(json_array_size(o), 1);
    json_decref(o);
    /* a queued job starts from it: no delete */
    char a[STORE_ID_MAX], b[STORE_ID_MAX];
    const char *after[1] = {NULL};
    store_job_new j = {.name = "j",
                       .type = "train",
                       .priority = 1,
                       .ranks = 1,
                       .keep_last = 1,
                       .spec_json = "{}",
                       .init_file = "models/x.safetensors",
                       .init_sha256 = "ab",
                       .init_size = 10};
    ck_assert_int_eq(store_job_create(S, &j, a, &eb), 0);
    ck_assert_int_eq(store_model_delete(S, m, path, sizeof path, &eb), ERR_STATE);
    ck_assert_ptr_nonnull(strstr(eb.msg, a));
    /* b waits for a */
    after[0] = a;
    store_job_new k = {.name = "k",
                       .type = "train",
                       .priority = 1,
                       .ranks = 1,
                       .keep_last = 1,
                       .spec_json = "{}",
                       .after = after,
                       .n_after = 1,
                       .waiting_for = a};
    ck_assert_int_eq(store_job_create(S, &k, b, &eb), 0);
    store_queued *q;
    int n;
    ck_assert_int_eq(store_queue(S, &q, &n, &eb), 0);
    ck_assert_int_eq(n, 1); /* only a: b is blocked */
    ck_assert_str_eq(q[0].id, a);
    free(q);
    char which[STORE_ID_MAX];
    int st;
    ck_assert_int_eq(store_deps_state(S, b, which, &st, &eb), 1);
    ck_assert_str_eq(which, a);
    ck_assert_int_eq(st, JS_QUEUED);
    ck_assert_int_eq(
        store_transition(S, a, JS_BIT(JS_QUEUED), JS_CANCELLED, "USER_CANCELLED", "x", NULL, &eb),
        0);
    ck_assert_int_eq(store_model_delete(S, m, path, sizeof path, &eb), 0);
    ck_assert_int_eq(store_model_get(S, m, &o, NULL, 0, &eb), ERR_NOT_FOUND);
    ck_assert_int_eq(store_deps_state(S, b, which, &st, &eb), 2);
    ck_assert_int_eq(st, JS_CANCELLED);
    ck_assert_int_eq(store_job_delete(S, a, &eb), 0);
    ck_assert_int_eq(store_deps_state(S, b, which, &st, &eb), 2);
    ck_assert_int_eq(st, -1); /* deleted */
}
END_TEST

/* ---- the write-transaction helper ---- */

/* Write-transaction bodies for sq_write: cancel the QUEUED job arg (a state
 * change and an event row), then fail or succeed. */
static int cancel_then_fail(store *s, void *arg, errbuf *eb)
{
    ck_assert_int_eq(sq_transition(s, arg, JS_BIT(JS_QUEUED), JS_CANCELLED, "USER_CANCELLED",
                                   "undone", NULL, eb),
                     0);
    return err_set(eb, ERR_INVALID, "the body failed on purpose");
}

static int cancel_ok(store *s, void *arg, errbuf *eb)
{
    return sq_transition(s, arg, JS_BIT(JS_QUEUED), JS_CANCELLED, "USER_CANCELLED", "done", NULL,
                         eb);
}

static int nothing(store *s, void *arg, errbuf *eb)
{
    (void)s, (void)arg, (void)eb;
    return 0;
}

static size_t events_of(const char *id)
{
    json_t *a;
    errbuf eb;
    ck_assert_int_eq(store_events(S, id, 0, 100, &a, &eb), 0);
    size_t n = json_array_size(a);
    json_decref(a);
    return n;
}

static char *field_of(const char *id, const char *key)
{
    json_t *j;
    errbuf eb;
    ck_assert_int_eq(store_job_get(S, id, &j, &eb), 0);
    char *v = strdup(json_string_value(json_object_get(j, key)));
    json_decref(j);
    return v;
}

/* A body that fails leaves the store as it was: state, events, change count;
 * its error comes back through errbuf. One that succeeds commits. */
START_TEST(write_tx_rolls_back)
{
    char id[STORE_ID_MAX];
    create(id, "a", 1, 1);
    ck_assert_int_eq(events_of(id), 1);
    uint64_t changes = store_changes(S);
    errbuf eb;
    ck_assert_int_eq(sq_write(S, SQ_COUNT_COMMIT, cancel_then_fail, id, &eb), ERR_INVALID);
    ck_assert_str_eq(eb.msg, "the body failed on purpose");
    ck_assert_int_eq(state_of(id), JS_QUEUED);
    char *reason = field_of(id, "reason");
    ck_assert_str_eq(reason, "SUBMITTED");
    free(reason);
    ck_assert_int_eq(events_of(id), 1);
    ck_assert_uint_eq(store_changes(S), changes);
    /* the lock was released and the store still writes */
    ck_assert_int_eq(store_writable(S, &eb), 0);
    ck_assert_int_eq(sq_write(S, SQ_COUNT_COMMIT, cancel_ok, id, &eb), 0);
    ck_assert_int_eq(state_of(id), JS_CANCELLED);
    ck_assert_int_eq(events_of(id), 2);
    ck_assert_uint_eq(store_changes(S), changes + 1);
}
END_TEST

/* How a commit counts in store_changes: COMMIT always, ROWS only when a row
 * changed, NONE never (a note changes the message but wakes no stream). */
START_TEST(write_tx_change_count)
{
    char id[STORE_ID_MAX];
    create(id, "a", 1, 1);
    uint64_t c = store_changes(S);
    errbuf eb;
    ck_assert_int_eq(sq_write(S, SQ_COUNT_ROWS, nothing, NULL, &eb), 0);
    ck_assert_uint_eq(store_changes(S), c);
    ck_assert_int_eq(sq_write(S, SQ_COUNT_COMMIT, nothing, NULL, &eb), 0);
    ck_assert_uint_eq(store_changes(S), c + 1);
    ck_assert_int_eq(store_job_note(S, id, "waiting for 2 ranks", &eb), 0);
    ck_assert_uint_eq(store_changes(S), c + 1);
    char *msg_text = field_of(id, "message");
    ck_assert_str_eq(msg_text, "waiting for 2 ranks");
    free(msg_text);
    ck_assert_int_eq(sq_write(S, SQ_COUNT_ROWS, cancel_ok, id, &eb), 0);
    ck_assert_uint_eq(store_changes(S), c + 2);
}
END_TEST

/* ---- statements are prepared once ---- */

/* SQLite calls the authorizer while it compiles a statement (never when it
 * runs one): a count of its calls counts the prepares. */
static long prepares;

static int count_prepares(void *arg, int action, const char *a, const char *b, const char *c,
                          const char *d)
{
    (void)arg, (void)action, (void)a, (void)b, (void)c, (void)d;
    prepares++;
    return SQLITE_OK;
}

static int live_statements(void)
{
    int n = 0;
    for (sqlite3_stmt *q = sqlite3_next_stmt(S->db, NULL); q != NULL;
         q = sqlite3_next_stmt(S->db, q))
        n++;
    return n;
}

static void cancelled_job(char id[STORE_ID_MAX])
{
    errbuf eb;
    create(id, "d", 1, 1);
    ck_assert_int_eq(
        store_transition(S, id, JS_BIT(JS_QUEUED), JS_CANCELLED, "USER_CANCELLED", "x", NULL, &eb),
        0);
}

/* store_job_delete runs a DELETE per table: after the first delete, more
 * deletes prepare nothing and leave no statement behind. */
START_TEST(delete_prepares_once)
{
    char ids[4][STORE_ID_MAX];
    for (int i = 0; i < 4; i++)
        cancelled_job(ids[i]);
    sqlite3_set_authorizer(S->db, count_prepares, NULL);
    errbuf eb;
    ck_assert_int_eq(store_job_delete(S, ids[0], &eb), 0);
    ck_assert_int_gt(prepares, 0); /* the first prepared its statements: the counter sees them */
    int live = live_statements();
    prepares = 0;
    for (int i = 1; i < 4; i++)
        ck_assert_int_eq(store_job_delete(S, ids[i], &eb), 0);
    ck_assert_int_eq(prepares, 0);
    ck_assert_int_eq(live_statements(), live);
    ck_assert_int_eq(store_job_delete(S, ids[1], &eb), ERR_NOT_FOUND);
}
END_TEST

static void apply_ok(msg *m, const char *path)
{
    ck_assert_int_eq(apply(m, "p1", NULL, path), APPLY_OK);
    msg_deinit(m);
}

/* A job's whole life through the API: submit, wait on another, start,
 * report, read every view, lose its pool, fail, delete; a model's too. */
static void api_round(void)
{
    errbuf eb;
    char id[STORE_ID_MAX], w[STORE_ID_MAX], mid[STORE_ID_MAX], path[256];
    running_job(id);
    msg m;
    metric_msg(&m, id, 1, 2, 1, 0.5);
    apply_ok(&m, NULL);
    msg_init(&m, MSG_LOG);
    msg_set_job(&m, id, 1, 3);
    msg_set(&m, "lines", json_pack("[{s:s}]", "text", "one"));
    apply_ok(&m, NULL);
    msg_init(&m, MSG_CHECKPOINT);
    msg_set_job(&m, id, 1, 4);
    msg_set(&m, "step", json_integer(1));
    msg_add_blob(&m, "abc", 3);
    apply_ok(&m, "ck-1");
    ck_assert(store_attempt_wants(S, id, 1, "p1", 5));
    ck_assert_int_eq(store_job_note_active(S, id, "disk full", &eb), 0);
    /* w waits for id */
    const char *after[1] = {id};
    store_job_new k = {.name = "w",
                       .type = "train",
                       .priority = 1,
                       .ranks = 1,
                       .keep_last = 1,
                       .spec_json = "{}",
                       .after = after,
                       .n_after = 1,
                       .waiting_for = id};
    ck_assert_int_eq(store_job_create(S, &k, w, &eb), 0);
    store_blocked *b;
    int n;
    ck_assert_int_eq(store_blocked_list(S, &b, &n, &eb), 0);
    for (int i = 0; i < n; i++)
        free(b[i].spec_json);
    free(b);
    char which[STORE_ID_MAX];
    int st;
    ck_assert_int_eq(store_deps_state(S, w, which, &st, &eb), 1);
    ck_assert_int_eq(store_job_wait(S, w, "WAITING_FOR it", &eb), 0);
    ck_assert_int_eq(store_job_unblock(S, w, NULL, NULL, 0, NULL, 0, 0, &eb), 0);
    ck_assert_int_eq(store_job_note(S, w, "waiting for a pool", &eb), 0);
    /* every view */
    json_t *o;
    ck_assert_int_eq(store_job_get(S, id, &o, &eb), 0);
    json_decref(o);
    int64_t next, counts[JS__COUNT], count;
    for (int by = 0; by < 2; by++) {
        store_list_query lq = {.state = -1, .page_size = 1, .by_priority = by};
        ck_assert_int_eq(store_job_list(S, &lq, &o, &next, &eb), 0);
        json_decref(o);
    }
    ck_assert_int_eq(store_job_counts(S, counts, &eb), 0);
    ck_assert_int_eq(store_job_count(S, &count, &eb), 0);
    store_queued *q;
    ck_assert_int_eq(store_queue(S, &q, &n, &eb), 0);
    free(q);
    store_active *act;
    ck_assert_int_eq(store_active_list(S, &act, &n, &eb), 0);
    free(act);
    store_metric_query mq = {.limit = 100, .names = "loss", .max_points = 4};
    ck_assert_int_eq(store_metrics(S, id, &mq, &o, &eb), 0);
    json_decref(o);
    ck_assert_int_eq(store_logs(S, id, 0, 100, 0, &o, &eb), 0);
    json_decref(o);
    ck_assert_int_eq(store_logs(S, id, 0, 100, 5, &o, &eb), 0);
    json_decref(o);
    ck_assert_int_eq(store_artifacts(S, id, &o, &eb), 0);
    json_decref(o);
    int64_t size;
    ck_assert_int_eq(store_artifact(S, id, "x", path, sizeof path, &size, &eb), ERR_NOT_FOUND);
    ck_assert_int_eq(store_events(S, id, 0, 100, &o, &eb), 0);
    json_decref(o);
    ck_assert_int_eq(store_events_all(S, 0, 100, &o, &eb), 0);
    json_decref(o);
    ck_assert_int_gt(store_events_max(S), 0);
    ck_assert_int_eq(store_checkpoints(S, id, 0, 100, &o, &eb), 0);
    json_decref(o);
    long step;
    ck_assert_int_eq(store_checkpoint_latest(S, id, path, sizeof path, &step, &eb), 0);
    ck_assert_int_eq(store_attempt_counts(S, &o, &eb), 0);
    json_decref(o);
    char *spec;
    ck_assert_int_eq(store_job_spec(S, id, &spec, &eb), 0);
    free(spec);
    ck_assert_int_eq(store_schema_version(S), STORE_SCHEMA_VERSION);
    ck_assert_int_eq(store_writable(S, &eb), 0);
    /* the pool is lost: restart on p2, which reports a final failure */
    ck_assert_int_eq(store_attempt_lost(S, id, 1, "WORKER_LOST", "gone", &eb), 0);
    store_assignment a;
    ck_assert_int_eq(store_attempt_start(S, id, "p1", &a, &eb), 0);
    free(a.spec_json);
    ck_assert_int_eq(store_assignment_get(S, id, 2, &a, &eb), 0);
    free(a.spec_json);
    msg_init(&m, MSG_FAILED);
    msg_set_job(&m, id, 2, 1);
    msg_set(&m, "reason", json_string("INVALID_DATA"));
    msg_set(&m, "message", json_string("bad"));
    apply_ok(&m, NULL);
    ck_assert_int_eq(state_of(id), JS_FAILED);
    ck_assert_int_eq(
        store_transition(S, w, JS_BIT(JS_QUEUED), JS_CANCELLED, "USER_CANCELLED", "x", NULL, &eb),
        0);
    ck_assert_int_eq(store_job_delete(S, id, &eb), 0);
    ck_assert_int_eq(store_job_delete(S, w, &eb), 0);
    /* a model */
    store_new_id("m", mid);
    store_model_new mn = {
        .name = "up", .path = "models/y", .size = 1, .sha256 = "ab", .tensors = 1};
    ck_assert_int_eq(store_model_create(S, &mn, mid, &eb), 0);
    ck_assert_int_eq(store_model_get(S, mid, &o, path, sizeof path, &eb), 0);
    json_decref(o);
    ck_assert_int_eq(store_model_list(S, &o, &eb), 0);
    json_decref(o);
    ck_assert_int_eq(store_model_delete(S, mid, path, sizeof path, &eb), 0);
}

/* After one round has prepared what it needs, more rounds prepare nothing:
 * every statement of the store is prepared once and cached. */
START_TEST(statements_prepared_once)
{
    sqlite3_set_authorizer(S->db, count_prepares, NULL);
    api_round();
    ck_assert_int_gt(prepares, 0);
    int live = live_statements();
    prepares = 0;
    for (int i = 0; i < 3; i++)
        api_round();
    ck_assert_int_eq(prepares, 0);
    ck_assert_int_eq(live_statements(), live);
}
END_TEST

Suite *suite_store(void)
{
    Suite *s = suite_create("store");
    tu_case_add(s, "core", 0, setup, teardown,
                TU_TESTS(open_and_version, newer_schema_refused, older_schema_migrated, create_get,
                         idempotency, batch_create_is_one_commit, transitions_cas,
                         list_pages_filters, queue_order, apply_dedup_gap_stale, downsampling,
                         finish_with_artifacts, checkpoint_keep_last, failure_and_retry,
                         retry_supersedes_metrics, retry_without_checkpoint_starts_over,
                         invalid_data_is_final, cancel_running, logs_tail, models_and_deps,
                         write_tx_rolls_back, write_tx_change_count, delete_prepares_once,
                         statements_prepared_once));
    return s;
}
