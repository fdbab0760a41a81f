/* check_linkcore.c - the pool link's protocol core driven without sockets or threads:
 * a fake clock (T, ms) and a send callback that records what the pool would send. */
#include "tests/unit/testutil.h"
#include "worker/link_core.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

Suite *suite_linkcore(void);

#define MAX_OUT 1024

static msg outq[MAX_OUT]; /* decoded copies, as the server would see them */
static int n_out;
static int refuse; /* 1: the connection takes nothing (not connected yet) */
static int64_t T;  /* the fake clock */
static link_core *C;
static char dir[64];

static int record(void *ctx, const msg *m)
{
    (void)ctx;
    if (refuse)
        return -1;
    ck_assert_int_lt(n_out, MAX_OUT);
    msg *s = &outq[n_out++];
    size_t len;
    char *text = msg_encode(m, &len);
    errbuf eb;
    ck_assert_int_eq(msg_decode(s, text, len, &eb), 0);
    free(text);
    for (int i = 0; i < m->n_blobs; i++)
        msg_add_blob(s, m->blobs[i].data, m->blobs[i].len);
    return 0;
}

static void clear_out(void)
{
    for (int i = 0; i < n_out; i++)
        msg_deinit(&outq[i]);
    n_out = 0;
}

/* How many messages of type t were sent since the last clear_out. */
static int count(msg_type t)
{
    int n = 0;
    for (int i = 0; i < n_out; i++)
        n += outq[i].type == t;
    return n;
}

static msg *last_of(msg_type t)
{
    for (int i = n_out - 1; i >= 0; i--)
        if (outq[i].type == t)
            return &outq[i];
    return NULL;
}

static void opts(link_options *o)
{
    link_options_default(o);
    o->heartbeat_ms = 1000;
    o->liveness = 5;
    o->reconnect_min_ms = 100;
    o->reconnect_max_ms = 800;
    o->resend_ms = 100;
    o->spill_dir = dir;
}

static void make_core(const link_options *o)
{
    link_pool_info info = {.pool_id = "p1", .ranks = 2, .cores = 8, .version = "t"};
    errbuf eb;
    ck_assert_int_eq(lcore_new(&C, "tcp://test:1", &info, o, record, NULL, &eb), 0);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/kiln-linkcore-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    n_out = 0;
    refuse = 0;
    T = 10000;
    C = NULL;
}

static void teardown(void)
{
    lcore_free(C);
    clear_out();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void server_says(msg *m)
{
    lcore_receive(C, m, T);
    msg_deinit(m);
}

static void welcome(int hb_ms, int liveness)
{
    msg w;
    msg_init(&w, MSG_WELCOME);
    msg_set(&w, "heartbeat_ms", json_integer(hb_ms));
    msg_set(&w, "liveness", json_integer(liveness));
    server_says(&w);
}

static void ack(const char *job, int attempt, uint64_t seq, int gap)
{
    msg a;
    msg_init(&a, MSG_ACK);
    msg_set_job(&a, job, attempt, seq);
    if (gap)
        msg_set(&a, "gap", json_true());
    server_says(&a);
}

static void heartbeat(int hello)
{
    msg h;
    msg_init(&h, MSG_HEARTBEAT);
    if (hello)
        msg_set(&h, "hello", json_true());
    server_says(&h);
}

static void started(const char *job, int attempt)
{
    msg m;
    msg_init(&m, MSG_STARTED);
    msg_set(&m, "total_steps", json_integer(10));
    ck_assert_int_eq(lcore_enqueue(C, &m, job, attempt), 0);
}

static void log_line(const char *job, int attempt, const char *text)
{
    msg m;
    msg_init(&m, MSG_LOG);
    msg_set(&m, "lines", json_pack("[{s:s,s:s}]", "level", "info", "text", text));
    ck_assert_int_eq(lcore_enqueue(C, &m, job, attempt), 0);
}

/* A connected, welcomed core with the hello recorded and cleared. */
static void connected_core(const link_options *o)
{
    make_core(o);
    lcore_connected(C, T);
    ck_assert_int_eq(lcore_tick(C, T), 0);
    ck_assert_int_eq(count(MSG_HELLO), 1);
    welcome(o->heartbeat_ms, o->liveness);
    clear_out();
}

START_TEST(handshake_hello_welcome_ready_heartbeat)
{
    link_options o;
    opts(&o);
    make_core(&o);
    lcore_connected(C, T);
    /* the socket cannot take anything yet: hello is tried again */
    refuse = 1;
    ck_assert_int_eq(lcore_tick(C, T), 0);
    ck_assert_int_eq(lcore_poll_ms(C, T), 10);
    refuse = 0;
    T += 10;
    ck_assert_int_eq(lcore_tick(C, T), 0);
    ck_assert_int_eq(n_out, 1); /* hello; a heartbeat is not due (just sent) */
    msg *h = &outq[0];
    ck_assert_int_eq(h->type, MSG_HELLO);
    ck_assert_str_eq(msg_str(h, "pool_id", ""), "p1");
    ck_assert_int_eq(msg_int(h, "ranks", 0), 2);
    ck_assert_int_eq(msg_int(h, "cores", 0), 8);
    ck_assert_str_eq(msg_str(h, "version", ""), "t");
    ck_assert_int_eq(json_array_size(msg_get(h, "current")), 0); /* [] */
    ck_assert(json_is_array(msg_get(h, "current")));
    ck_assert_ptr_null(msg_get(h, "memory"));
    /* no second hello */
    T += 5;
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_HELLO), 1);
    link_stats s;
    lcore_get_stats(C, &s);
    ck_assert_int_eq(s.connected, 0);
    welcome(200, 3);
    lcore_get_stats(C, &s);
    ck_assert_int_eq(s.connected, 1);
    /* ready once while the job side waits, with the cached weights */
    char sha[65];
    memset(sha, 'a', 64);
    sha[64] = '\0';
    lcore_set_cached(C, json_pack("[s]", sha));
    lcore_set_waiting(C, 1);
    lcore_tick(C, T);
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_READY), 1);
    ck_assert_str_eq(json_string_value(json_array_get(msg_get(last_of(MSG_READY), "cached"), 0)),
                     sha);
    /* heartbeats every 200 ms (the welcome's) of sending nothing */
    clear_out();
    ck_assert_int_eq(lcore_poll_ms(C, T), 50);
    T += 199;
    heartbeat(0);
    lcore_tick(C, T);
    ck_assert_int_eq(n_out, 0);
    ck_assert_int_eq(lcore_poll_ms(C, T), 1);
    T += 1;
    lcore_tick(C, T);
    ck_assert_int_eq(n_out, 1);
    ck_assert_int_eq(outq[0].type, MSG_HEARTBEAT);
}
END_TEST

START_TEST(resend_after_silence_backs_off_and_ack_stops_it)
{
    link_options o;
    opts(&o);
    connected_core(&o);
    started("j", 1);
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_STARTED), 1);
    ck_assert_uint_eq(last_of(MSG_STARTED)->seq, 1);
    /* no ack: sent again after 100, then 200, 400 ms more of silence */
    int64_t t0 = T;
    int64_t expect[3] = {100, 300, 700};
    for (int k = 0; k < 3; k++) {
        for (int64_t t = T + 1; t < t0 + expect[k]; t++) {
            T = t;
            if (t % 100 == 0)
                heartbeat(0); /* the server is alive, it only does not ack */
            lcore_tick(C, T);
            ck_assert_int_eq(count(MSG_STARTED), k + 1);
        }
        T = t0 + expect[k];
        lcore_tick(C, T);
        ck_assert_int_eq(count(MSG_STARTED), k + 2);
        ck_assert_uint_eq(last_of(MSG_STARTED)->seq, 1);
    }
    link_stats s;
    lcore_get_stats(C, &s);
    ck_assert_uint_eq(s.sent, 4);
    ck_assert_uint_eq(s.resent, 3);
    /* the ack empties the outbox; nothing is sent again */
    ack("j", 1, 1, 0);
    ck_assert_uint_eq(lcore_queued(C), 0);
    clear_out();
    for (int i = 0; i < 40; i++) {
        T += 50;
        heartbeat(0);
        lcore_tick(C, T);
    }
    ck_assert_int_eq(count(MSG_STARTED), 0);
    lcore_get_stats(C, &s);
    ck_assert_uint_eq(s.acked, 1);
    /* a message acked after one send (a round-trip sample, 10 ms) brings the
     * timeout back to resend_ms; the resent one above gave no sample (Karn) */
    log_line("j", 1, "a");
    lcore_tick(C, T);
    T += 10;
    ack("j", 1, 2, 0);
    log_line("j", 1, "b");
    clear_out();
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_LOG), 1);
    T += 99;
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_LOG), 1);
    T += 1;
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_LOG), 2);
}
END_TEST

START_TEST(gap_goes_back_once_per_round_trip)
{
    link_options o;
    opts(&o);
    o.resend_ms = 60000; /* no timed resend here */
    connected_core(&o);
    started("j", 1);
    log_line("j", 1, "a");
    log_line("j", 1, "b");
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_STARTED) + count(MSG_LOG), 3);
    clear_out();
    T += 60;
    ack("j", 1, 1, 1); /* got seq 1, then a gap: 2 never came */
    ck_assert_uint_eq(lcore_queued(C), 2);
    lcore_tick(C, T);
    ck_assert_int_eq(n_out, 2);
    ck_assert_int_eq(outq[0].type, MSG_LOG);
    ck_assert_uint_eq(outq[0].seq, 2);
    ck_assert_uint_eq(outq[1].seq, 3);
    /* a second gap within two round trips (the ack of seq 1 took 60 ms) is
     * the same loss, not a new one */
    clear_out();
    T += 119;
    ack("j", 1, 1, 1);
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_LOG), 0);
    /* after them, it is */
    T += 1;
    ack("j", 1, 1, 1);
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_LOG), 2);
    /* a plain ack resends nothing */
    clear_out();
    T += 100;
    ack("j", 1, 2, 0);
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_LOG), 0);
    ck_assert_uint_eq(lcore_queued(C), 1);
}
END_TEST

START_TEST(liveness_timeout_reconnects_with_doubling_back_off)
{
    link_options o;
    opts(&o);
    o.resend_ms = 60000;
    connected_core(&o);
    welcome(100, 3); /* the server's: 3 silent intervals of 100 ms */
    started("j", 1);
    lcore_tick(C, T);
    int64_t heard = T;
    T = heard + 300;
    ck_assert_int_eq(lcore_tick(C, T), 0);
    ck_assert_int_eq(lcore_silent_ms(C, T), 300);
    /* an unreadable message still shows the server is alive */
    lcore_heard(C, T);
    heard = T;
    T = heard + 300;
    ck_assert_int_eq(lcore_tick(C, T), 0);
    T = heard + 301;
    clear_out();
    ck_assert_int_eq(lcore_tick(C, T), LCORE_LOST);
    ck_assert_int_eq(n_out, 0); /* nothing sent on a lost connection */
    /* back-off: 100, 200, 400, 800 (the max), 800 */
    int expect[5] = {100, 200, 400, 800, 800};
    for (int k = 0; k < 5; k++) {
        ck_assert_int_eq(lcore_disconnected(C, T), expect[k]);
        T += expect[k];
        lcore_connected(C, T);
        clear_out();
        ck_assert_int_eq(lcore_tick(C, T), 0);
        /* a new connection: hello, then the unacked message again */
        ck_assert_int_eq(n_out >= 2, 1);
        ck_assert_int_eq(outq[0].type, MSG_HELLO);
        ck_assert_int_eq(outq[1].type, MSG_STARTED);
        T += 301;
        ck_assert_int_eq(lcore_tick(C, T), LCORE_LOST);
    }
    link_stats s;
    lcore_get_stats(C, &s);
    ck_assert_uint_eq(s.reconnects, 5);
    /* a welcome brings the back-off down to the minimum */
    ck_assert_int_eq(lcore_disconnected(C, T), 800);
    lcore_connected(C, T);
    lcore_tick(C, T);
    welcome(100, 3);
    T += 301;
    ck_assert_int_eq(lcore_tick(C, T), LCORE_LOST);
    ck_assert_int_eq(lcore_disconnected(C, T), 100);
}
END_TEST

START_TEST(hello_again_when_the_server_asks)
{
    link_options o;
    opts(&o);
    o.resend_ms = 60000;
    connected_core(&o);
    msg a;
    msg_init(&a, MSG_ASSIGN);
    msg_set_job(&a, "jq", 3, 0);
    msg_set(&a, "spec", json_pack("{s:i}", "x", 1));
    server_says(&a);
    link_assignment as;
    ck_assert_int_eq(lcore_take_assign(C, &as), 1);
    link_assignment_free(&as);
    started("jq", 3);
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_STARTED), 1);
    clear_out();
    T += 10;
    heartbeat(1);
    lcore_tick(C, T);
    /* hello (naming the current job) on the same connection, then the resend */
    ck_assert_int_ge(n_out, 2);
    ck_assert_int_eq(outq[0].type, MSG_HELLO);
    json_t *cur = json_array_get(msg_get(&outq[0], "current"), 0);
    ck_assert_int_eq(json_array_size(msg_get(&outq[0], "current")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(cur, "job_id")), "jq");
    ck_assert_int_eq(json_integer_value(json_object_get(cur, "attempt")), 3);
    ck_assert_int_eq(outq[1].type, MSG_STARTED);
    ck_assert_uint_eq(outq[1].seq, 1);
    /* asked again before the welcome: ignored */
    clear_out();
    T += 10;
    heartbeat(1);
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_HELLO), 0);
    ck_assert_int_eq(count(MSG_STARTED), 0);
    link_stats s;
    lcore_get_stats(C, &s);
    ck_assert_uint_eq(s.reconnects, 0);
    /* after the welcome, a new request is answered again */
    welcome(1000, 5);
    T += 10;
    heartbeat(1);
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_HELLO), 1);
}
END_TEST

START_TEST(spill_when_memory_is_full_and_deliver_in_order)
{
    link_options o;
    opts(&o);
    o.resend_ms = 60000;
    o.outbox_max_msgs = 3;
    connected_core(&o);
    char text[32];
    for (int i = 1; i <= 10; i++) {
        if (i == 6) {
            msg m;
            msg_init(&m, MSG_CHECKPOINT);
            msg_set(&m, "step", json_integer(6));
            msg_add_blob(&m, "0123456789", 10);
            ck_assert_int_eq(lcore_enqueue(C, &m, "j", 1), 0);
            continue;
        }
        snprintf(text, sizeof text, "line %d", i);
        log_line("j", 1, text);
    }
    link_stats s;
    lcore_get_stats(C, &s);
    ck_assert_uint_eq(s.spilled, 7);
    ck_assert_uint_eq(s.queued, 10);
    char path[128];
    snprintf(path, sizeof path, "%s/kiln-link-p1-%ld.spill", dir, (long)getpid());
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_gt(st.st_size, 0);
    /* only what memory holds goes out; each ack makes room for the next from the file */
    uint64_t next = 1;
    for (int round = 0; round < 10 && next <= 11; round++) {
        T += 10;
        lcore_tick(C, T);
        int got = 0;
        for (int i = 0; i < n_out; i++) {
            msg *m = &outq[i];
            if (m->type != MSG_LOG && m->type != MSG_CHECKPOINT)
                continue;
            ck_assert_uint_eq(m->seq, next);
            if (next == 6) {
                ck_assert_int_eq(m->type, MSG_CHECKPOINT);
                ck_assert_int_eq(m->n_blobs, 1);
                ck_assert_uint_eq(m->blobs[0].len, 10);
                ck_assert_int_eq(memcmp(m->blobs[0].data, "0123456789", 10), 0);
            } else {
                snprintf(text, sizeof text, "line %d", (int)next);
                json_t *line = json_array_get(msg_get(m, "lines"), 0);
                ck_assert_str_eq(json_string_value(json_object_get(line, "text")), text);
            }
            next++;
            got++;
        }
        ck_assert_int_le(got, 3);
        clear_out();
        ack("j", 1, next - 1, 0);
        if (round == 0)
            log_line("j", 1, "line 11"); /* memory has room, but the file comes first */
    }
    ck_assert_uint_eq(next, 12);
    ck_assert_uint_eq(lcore_queued(C), 0);
    /* the emptied file is truncated and removed with the core */
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_size, 0);
    lcore_free(C);
    C = NULL;
    ck_assert_int_ne(stat(path, &st), 0);
}
END_TEST

START_TEST(assign_cancel_and_ready_after_the_end_is_acked)
{
    link_options o;
    opts(&o);
    o.resend_ms = 60000;
    connected_core(&o);
    lcore_set_waiting(C, 1);
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_READY), 1);
    msg a;
    msg_init(&a, MSG_ASSIGN);
    msg_set_job(&a, "ja", 2, 0);
    msg_set(&a, "spec", json_pack("{s:i}", "x", 7));
    msg_set(&a, "resume_step", json_integer(40));
    msg_add_blob(&a, "ckpt", 4);
    msg a2;
    msg_init(&a2, MSG_ASSIGN);
    msg_set_job(&a2, "ja", 2, 0);
    msg_set(&a2, "spec", json_pack("{s:i}", "x", 7));
    server_says(&a);
    server_says(&a2); /* sent again: kept once */
    ck_assert_int_eq(lcore_pending(C), 1);
    link_assignment as;
    ck_assert_int_eq(lcore_take_assign(C, &as), 1);
    ck_assert_str_eq(as.job_id, "ja");
    ck_assert_int_eq(as.attempt, 2);
    ck_assert_int_eq(json_integer_value(json_object_get(as.spec, "x")), 7);
    ck_assert_uint_eq(as.checkpoint_len, 4);
    ck_assert_int_eq(memcmp(as.checkpoint, "ckpt", 4), 0);
    ck_assert_int_eq(as.resume_step, 40);
    link_assignment_free(&as);
    ck_assert_int_eq(lcore_pending(C), 0);
    link_assignment none;
    ck_assert_int_eq(lcore_take_assign(C, &none), 0);
    /* the current job's assign again is not a new one */
    msg a3;
    msg_init(&a3, MSG_ASSIGN);
    msg_set_job(&a3, "ja", 2, 0);
    server_says(&a3);
    ck_assert_int_eq(lcore_pending(C), 0);
    /* cancel */
    ck_assert_int_eq(lcore_cancel_requested(C, "ja", 2), 0);
    msg c;
    msg_init(&c, MSG_CANCEL);
    msg_set_job(&c, "ja", 2, 0);
    server_says(&c);
    ck_assert_int_eq(lcore_cancel_requested(C, "ja", 2), 1);
    ck_assert_int_eq(lcore_cancel_requested(C, "ja", 1), 0);
    /* finished; no ready until it is acked, even while waiting */
    msg f;
    msg_init(&f, MSG_FINISHED);
    msg_set(&f, "status", json_string("cancelled"));
    ck_assert_int_eq(lcore_enqueue(C, &f, "ja", 2), 0);
    lcore_set_waiting(C, 1);
    clear_out();
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_FINISHED), 1);
    ck_assert_int_eq(count(MSG_READY), 0);
    T += 10;
    ack("ja", 2, 1, 0);
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_READY), 1);
}
END_TEST

/* An assign of (job, attempt 1) from the server. */
static void assign_of(const char *job)
{
    msg a;
    msg_init(&a, MSG_ASSIGN);
    msg_set_job(&a, job, 1, 0);
    msg_set(&a, "spec", json_object());
    server_says(&a);
}

START_TEST(several_jobs_ready_lists_them)
{
    link_options o;
    opts(&o);
    o.resend_ms = 60000;
    connected_core(&o);
    /* a pool of 2 ranks, both free: ready, running [] and free_ranks 2 */
    lcore_set_free_ranks(C, 2);
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_READY), 1);
    ck_assert_int_eq(msg_int(last_of(MSG_READY), "free_ranks", -1), 2);
    ck_assert_int_eq(json_array_size(msg_get(last_of(MSG_READY), "running")), 0);
    /* j1 taken: a new ready lists it; no ready while an assign waits to be taken */
    assign_of("j1");
    clear_out();
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_READY), 0);
    link_assignment as;
    ck_assert_int_eq(lcore_take_assign(C, &as), 1);
    link_assignment_free(&as);
    lcore_set_free_ranks(C, 1);
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_READY), 1);
    json_t *run = msg_get(last_of(MSG_READY), "running");
    ck_assert_int_eq(json_array_size(run), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(run, 0), "job_id")), "j1");
    /* j2 takes the last rank: no ready with none free */
    assign_of("j2");
    ck_assert_int_eq(lcore_take_assign(C, &as), 1);
    link_assignment_free(&as);
    lcore_set_free_ranks(C, 0);
    clear_out();
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_READY), 0);
    /* hello names both */
    heartbeat(1);
    lcore_tick(C, T);
    ck_assert_int_eq(json_array_size(msg_get(last_of(MSG_HELLO), "current")), 2);
    welcome(o.heartbeat_ms, o.liveness);
    /* j1 ends: no ready until its end is acked, then one listing j2 only */
    msg f;
    msg_init(&f, MSG_FINISHED);
    msg_set(&f, "status", json_string("succeeded"));
    ck_assert_int_eq(lcore_enqueue(C, &f, "j1", 1), 0);
    lcore_set_free_ranks(C, 1);
    clear_out();
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_FINISHED), 1);
    ck_assert_int_eq(count(MSG_READY), 0);
    T += 10;
    ack("j1", 1, 1, 0);
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_READY), 1);
    run = msg_get(last_of(MSG_READY), "running");
    ck_assert_int_eq(json_array_size(run), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(run, 0), "job_id")), "j2");
}
END_TEST

START_TEST(metric_points_join_while_unsent)
{
    link_options o;
    opts(&o);
    o.resend_ms = 60000;
    connected_core(&o);
    ck_assert_int_eq(lcore_metric(C, "j", 1, json_pack("{s:i,s:f}", "step", 1, "loss", 0.5)), 0);
    ck_assert_int_eq(lcore_metric(C, "j", 1, json_pack("{s:i,s:f}", "step", 2, "loss", 0.4)), 0);
    ck_assert_uint_eq(lcore_queued(C), 1);
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_METRIC), 1);
    ck_assert_int_eq(json_array_size(msg_get(last_of(MSG_METRIC), "points")), 2);
    /* sent: the next point is a new message with the next seq */
    ck_assert_int_eq(lcore_metric(C, "j", 1, json_pack("{s:i,s:f}", "step", 3, "loss", 0.3)), 0);
    ck_assert_uint_eq(lcore_queued(C), 2);
    lcore_tick(C, T);
    ck_assert_int_eq(count(MSG_METRIC), 2);
    ck_assert_uint_eq(last_of(MSG_METRIC)->seq, 2);
}
END_TEST

Suite *suite_linkcore(void)
{
    Suite *s = suite_create("linkcore");
    tu_case_add(
        s, "core", 10, setup, teardown,
        TU_TESTS(handshake_hello_welcome_ready_heartbeat,
                 resend_after_silence_backs_off_and_ack_stops_it, gap_goes_back_once_per_round_trip,
                 liveness_timeout_reconnects_with_doubling_back_off,
                 hello_again_when_the_server_asks, spill_when_memory_is_full_and_deliver_in_order,
                 assign_cancel_and_ready_after_the_end_is_acked, several_jobs_ready_lists_them,
                 metric_points_join_while_unsent));
    return s;
}
