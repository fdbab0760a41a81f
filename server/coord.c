/* coord.c - pools, exactly-once application of job messages, scheduling (see coord.h).
 *
 * One mutex guards everything; it is taken by each public function, so
 * coord_workers (HTTP threads) sees a consistent pool table.
 */
#include "coord.h"

#include "common/files.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "server/lineage.h"
#include "server/scheduler.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define COORD_BATCH_MAX    256
#define COORD_STORE_LOG_MS 10000
/* With no pool free, the queue is read at most this often (see schedule). */
#define COORD_IDLE_SCAN_MS 200
/* A job's "why it waits" held back by its owner's limits, including the NUL. */
#define COORD_HELD_MAX 256

/* An attempt the server has on a pool, and the ranks it holds there. */
typedef struct pool_job {
    char job[MSG_ID_MAX];
    int attempt, ranks;
} pool_job;

typedef struct pool {
    char id[MSG_ID_MAX];
    int ranks, cores;
    json_t *hosts;
    char version[64];
    char engine[256];            /* kernel path and BLAS core, from hello; "" = not said */
    int64_t memory, rank_memory; /* bytes, from hello; 0 = not said */
    int alive;
    int ready;                /* said ready (it can take a job) since the last assign or end */
    int said_free;            /* free ranks its last ready said; -1 = not said (older pools) */
    int64_t seen_ms, sent_ms; /* last message from / to it */
    double connected_at;      /* wall clock of the last hello */
    pool_job *jobs;           /* the attempts the server has on this pool: their ranks sum to at
                               * most ranks (a pool of N ranks runs several jobs on a split of them) */
    int n_jobs, cap_jobs;
    int64_t cancel_ms; /* last cancel sent */
    int64_t asked_ms;  /* last request for a hello (ask_hello) */
    json_t *cached;    /* SHA-256s of the init weights the pool holds (from ready), or NULL */
} pool;

typedef struct pending {
    msg m;
    char pool_id[MSG_ID_MAX];
} pending;

struct coord {
    store *st;
    coord_options o;
    char data_dir[KILN_PATH_MAX];
    coord_send_fn send;
    void *ctx;
    pthread_mutex_t mu;
    pool *pools;
    int n_pools, cap_pools;
    pending *pend;
    int n_pend;
    int64_t start_ms;
    int wake;
    int64_t last_sched_ms, last_reconcile_ms;
    /* note_waiting: the pools at its last full pass, when that was, and the
     * newest job (submission order) it has seen */
    int note_alive, note_max_ranks;
    int64_t note_full_ms, note_order;
    int64_t last_scan_ms;         /* the last pass that read the queue */
    int64_t store_log_ms;         /* the last report of files that could not be written */
    long store_failures;          /* failures since then */
    char blocked_job[MSG_ID_MAX]; /* the job whose message says it waits for the disk */
};

coord *coord_new(store *st, const coord_options *o, coord_send_fn send, void *ctx, int64_t start_ms)
{
    coord *c = xcalloc(1, sizeof *c);
    c->st = st;
    c->o = *o;
    if (c->o.heartbeat_ms <= 0)
        c->o.heartbeat_ms = 1000;
    if (c->o.liveness <= 0)
        c->o.liveness = 5;
    int64_t window = (int64_t)c->o.heartbeat_ms * c->o.liveness;
    if (c->o.restart_grace_ms < window)
        c->o.restart_grace_ms = window > INT32_MAX ? INT32_MAX : (int)window;
    snprintf(c->data_dir, sizeof c->data_dir, "%s", o->data_dir != NULL ? o->data_dir : ".");
    c->o.data_dir = c->data_dir;
    c->send = send;
    c->ctx = ctx;
    pthread_mutex_init(&c->mu, NULL);
    c->pend = xcalloc(COORD_BATCH_MAX, sizeof *c->pend);
    c->start_ms = start_ms;
    c->wake = 1;
    c->note_alive = c->note_max_ranks = -1; /* the first pass is a full one */
    return c;
}

void coord_free(coord *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < c->n_pend; i++)
        msg_deinit(&c->pend[i].m);
    free(c->pend);
    for (int i = 0; i < c->n_pools; i++) {
        json_decref(c->pools[i].hosts);
        json_decref(c->pools[i].cached);
        free(c->pools[i].jobs);
    }
    free(c->pools);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void coord_wake(coord *c)
{
    pthread_mutex_lock(&c->mu);
    c->wake = 1;
    pthread_mutex_unlock(&c->mu);
}

static pool *find_pool(coord *c, const char *id)
{
    for (int i = 0; i < c->n_pools; i++)
        if (strcmp(c->pools[i].id, id) == 0)
            return &c->pools[i];
    return NULL;
}

int coord_pool_live(coord *c, const char *id, int64_t now_ms)
{
    pthread_mutex_lock(&c->mu);
    const pool *p = find_pool(c, id);
    int live = p != NULL && p->alive && now_ms - p->seen_ms < 2 * (int64_t)c->o.heartbeat_ms;
    pthread_mutex_unlock(&c->mu);
    return live;
}

static void send_to(coord *c, pool *p, const msg *m, int64_t now_ms)
{
    c->send(c->ctx, p->id, m);
    p->sent_ms = now_ms;
}

/* A pool this coordinator does not know (the server restarted while it stayed
 * connected: ZeroMQ reconnected its socket underneath) or gave up on speaks
 * without hello: a heartbeat with "hello": true makes it say hello again now,
 * rather than after its own liveness timeout, so that its running job is
 * reconciled before this server's restart window ends. At most once per
 * heartbeat interval for a known pool; the pool ignores the request while its
 * own hello is unanswered, so repeats are harmless. */
static void ask_hello(coord *c, pool *p, const char *pool_id, int64_t now_ms)
{
    if (p != NULL && p->asked_ms > 0 && now_ms - p->asked_ms < c->o.heartbeat_ms)
        return;
    if (p != NULL) {
        p->asked_ms = now_ms;
        log_info("pool %s: message from a pool marked lost; asking for its hello", pool_id);
    }
    msg m;
    msg_init(&m, MSG_HEARTBEAT);
    msg_set(&m, "hello", json_true());
    c->send(c->ctx, pool_id, &m);
    msg_deinit(&m);
}

static void send_simple(coord *c, pool *p, msg_type t, const char *job, int attempt, uint64_t seq,
                        int64_t now_ms)
{
    msg m;
    msg_init(&m, t);
    if (job != NULL)
        msg_set_job(&m, job, attempt, seq);
    send_to(c, p, &m, now_ms);
    msg_deinit(&m);
}

static pool_job *pool_job_find(pool *p, const char *job, int attempt)
{
    for (int i = 0; i < p->n_jobs; i++)
        if (p->jobs[i].attempt == attempt && strcmp(p->jobs[i].job, job) == 0)
            return &p->jobs[i];
    return NULL;
}

/* Records (job, attempt) on p, holding `ranks` of its ranks (once). */
static void pool_job_add(pool *p, const char *job, int attempt, int ranks)
{
    if (pool_job_find(p, job, attempt) != NULL)
        return;
    if (p->n_jobs == p->cap_jobs) {
        p->cap_jobs = p->cap_jobs ? 2 * p->cap_jobs : 4;
        p->jobs = xrealloc(p->jobs, (size_t)p->cap_jobs * sizeof *p->jobs);
    }
    pool_job *j = &p->jobs[p->n_jobs++];
    snprintf(j->job, sizeof j->job, "%s", job);
    j->attempt = attempt;
    j->ranks = ranks > 0 ? ranks : 1;
}

static void pool_job_drop(pool *p, const char *job, int attempt)
{
    pool_job *j = pool_job_find(p, job, attempt);
    if (j != NULL)
        *j = p->jobs[--p->n_jobs];
}

/* The ranks of p that no attempt of the server's holds, and no more than its last
 * ready said were free. */
static int pool_free_ranks(const pool *p)
{
    int used = 0;
    for (int i = 0; i < p->n_jobs; i++)
        used += p->jobs[i].ranks;
    int free = p->ranks > used ? p->ranks - used : 0;
    return p->said_free >= 0 && p->said_free < free ? p->said_free : free;
}

/* Whether the pool's list of what it runs ("current" of hello, "running" of
 * ready: an array of {job_id, attempt}; an object or null from older pools)
 * names (job, attempt). */
static int pool_says_it_runs(const json_t *list, const char *job, int attempt)
{
    if (json_is_object(list)) {
        const char *j = json_string_value(json_object_get(list, "job_id"));
        return j != NULL && strcmp(j, job) == 0 &&
               json_integer_value(json_object_get(list, "attempt")) == attempt;
    }
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x)
    {
        if (pool_says_it_runs(x, job, attempt))
            return 1;
    }
    return 0;
}

/* Ends the attempt the server has on pool p, e.g. because the pool died. */
static void lose_attempt(coord *c, const char *job, int attempt, const char *why)
{
    errbuf eb;
    int rc = store_attempt_lost(c->st, job, attempt, "WORKER_LOST", why, &eb);
    if (rc == 0)
        log_warn("job %s attempt %d: WORKER_LOST: %s", job, attempt, why);
    else if (rc != ERR_STATE)
        log_error("job %s attempt %d: cannot record the lost attempt: %s", job, attempt, eb.msg);
    c->wake = 1;
}

/* Whether pool p said it holds the weights with this SHA-256. */
static int pool_has(const pool *p, const char *sha)
{
    size_t i;
    json_t *x;
    json_array_foreach(p->cached, i, x)
    {
        if (json_is_string(x) && strcmp(json_string_value(x), sha) == 0)
            return 1;
    }
    return 0;
}

/* Adds the init weights to an assign: {"init": {sha256, size, attached}}
 * and, unless the pool has them cached, their bytes as the last blob. A
 * file that cannot be read is sent as announced-but-missing: the pool then
 * fails the attempt naming it. */
static void attach_init(coord *c, const pool *p, const store_assignment *a, msg *m)
{
    int attached = 0;
    if (!pool_has(p, a->init_sha256)) {
        char path[KILN_PATH_MAX];
        void *data;
        size_t len;
        errbuf eb;
        if (files_pathf(path, &eb, "%s/%s", c->data_dir, a->init_file) == 0 &&
            files_read(path, &data, &len, &eb) == 0)
            attached = msg_take_blob(m, data, len) == 0;
        else
            log_error("job %s: cannot read the init_from weights: %s", a->job_id, eb.msg);
    }
    msg_set(m, "init",
            json_pack("{s:s,s:I,s:b}", "sha256", a->init_sha256, "size", (json_int_t)a->init_size,
                      "attached", attached));
}

/* Sends the assign of (job, attempt) to p: the spec, and the newest
 * checkpoint if there is one, else the init_from weights if any. */
static int send_assign(coord *c, pool *p, const store_assignment *a, int64_t now_ms)
{
    json_error_t je;
    json_t *spec = json_loads(a->spec_json, 0, &je);
    if (spec == NULL) {
        log_error("job %s: stored spec is not JSON: %s", a->job_id, je.text);
        return ERR_FORMAT;
    }
    msg m;
    msg_init(&m, MSG_ASSIGN);
    msg_set_job(&m, a->job_id, a->attempt, 0);
    msg_set(&m, "spec", spec);
    if (a->ckpt_path[0] != '\0') {
        char path[KILN_PATH_MAX];
        void *data;
        size_t len;
        errbuf eb;
        if (files_pathf(path, &eb, "%s/%s", c->data_dir, a->ckpt_path) == 0 &&
            files_read(path, &data, &len, &eb) == 0) {
            msg_take_blob(&m, data, len);
            msg_set(&m, "resume_step", json_integer(a->ckpt_step));
        } else {
            log_warn("job %s: cannot read checkpoint to resume from (%s); attempt %d starts "
                     "fresh",
                     a->job_id, eb.msg, a->attempt);
        }
    }
    if (a->init_file[0] != '\0' && a->ckpt_path[0] == '\0')
        attach_init(c, p, a, &m);
    send_to(c, p, &m, now_ms);
    msg_deinit(&m);
    pool_job_add(p, a->job_id, a->attempt, a->ranks);
    p->ready = 0;
    return 0;
}

/* ---- control messages -------------------------------------------------------- */

/* The pool a hello comes from, known or new, described anew by that hello and with
 * no attempts yet (hello_reconcile gives back the ones it still runs). */
static pool *pool_from_hello(coord *c, const char *pool_id, const msg *m, int64_t now_ms)
{
    pool *p = find_pool(c, pool_id);
    if (p == NULL) {
        if (c->n_pools == c->cap_pools) {
            c->cap_pools = c->cap_pools ? 2 * c->cap_pools : 8;
            c->pools = xrealloc(c->pools, (size_t)c->cap_pools * sizeof *c->pools);
        }
        p = &c->pools[c->n_pools++];
        memset(p, 0, sizeof *p);
        snprintf(p->id, sizeof p->id, "%s", pool_id);
    }
    p->ranks = (int)msg_int(m, "ranks", 1);
    p->cores = (int)msg_int(m, "cores", 1);
    json_decref(p->hosts);
    p->hosts = json_incref(msg_get(m, "hosts"));
    snprintf(p->version, sizeof p->version, "%s", msg_str(m, "version", "?"));
    snprintf(p->engine, sizeof p->engine, "%s", msg_str(m, "engine", ""));
    p->memory = msg_int(m, "memory", 0);
    p->rank_memory = msg_int(m, "rank_memory", 0);
    p->alive = 1;
    p->ready = 0;
    p->said_free = -1;
    p->seen_ms = now_ms;
    p->connected_at = store_now();
    p->cancel_ms = -1;
    p->n_jobs = 0;
    log_info("pool %s: hello (%d ranks, %d cores, version %s%s%s)", p->id, p->ranks, p->cores,
             p->version, p->engine[0] ? "; " : "", p->engine);
    return p;
}

/* What the pool says it runs (`current`) against what the store says it runs on it:
 * the attempts in both go on, ones still STARTING wait for the next ready, the rest
 * of the store's are lost, and the rest of the pool's are cancelled. */
static void hello_reconcile(coord *c, pool *p, json_t *cur, int64_t now_ms)
{
    store_active *act;
    int n;
    errbuf eb;
    if (store_active_list(c->st, &act, &n, &eb) < 0) {
        log_error("pool %s: cannot reconcile: %s", p->id, eb.msg);
        return;
    }
    for (int i = 0; i < n; i++) {
        if (strcmp(act[i].pool_id, p->id) != 0)
            continue;
        if (pool_says_it_runs(cur, act[i].job_id, act[i].attempt)) {
            pool_job_add(p, act[i].job_id, act[i].attempt, act[i].ranks);
            log_info("pool %s: still runs job %s attempt %d", p->id, act[i].job_id, act[i].attempt);
        } else if (act[i].state == JS_STARTING) {
            /* The assign may have been lost with the old connection: it is
             * sent again when the pool says ready. */
            pool_job_add(p, act[i].job_id, act[i].attempt, act[i].ranks);
        } else {
            char why[256];
            snprintf(why, sizeof why, "pool %s reconnected without attempt %d", p->id,
                     act[i].attempt);
            lose_attempt(c, act[i].job_id, act[i].attempt, why);
        }
    }
    free(act);
    /* What the pool runs and the server no longer has on it is cancelled. */
    json_t *list = json_is_object(cur) ? json_pack("[O]", cur) : json_incref(cur);
    size_t k;
    json_t *x;
    json_array_foreach(list, k, x)
    {
        const char *job = json_string_value(json_object_get(x, "job_id"));
        int attempt = (int)json_integer_value(json_object_get(x, "attempt"));
        if (job == NULL || pool_job_find(p, job, attempt) != NULL)
            continue;
        log_warn("pool %s: runs job %s attempt %d, which the server no longer has on it: "
                 "cancelling it",
                 p->id, job, attempt);
        send_simple(c, p, MSG_CANCEL, job, attempt, 0, now_ms);
    }
    json_decref(list);
}

static void on_hello(coord *c, const char *pool_id, const msg *m, int64_t now_ms)
{
    pool *p = pool_from_hello(c, pool_id, m, now_ms);
    msg w;
    msg_init(&w, MSG_WELCOME);
    msg_set(&w, "heartbeat_ms", json_integer(c->o.heartbeat_ms));
    msg_set(&w, "liveness", json_integer(c->o.liveness));
    send_to(c, p, &w, now_ms);
    msg_deinit(&w);
    hello_reconcile(c, p, msg_get(m, "current"), now_ms);
}

/* Reconciles one attempt the server has on p with a ready that does not list it
 * ("running"): an assign still STARTING was lost or overtaken (sent again); one
 * the pool ran and no longer does ended without telling (lost). Returns 1 when
 * the attempt stays on p. */
static int ready_reconcile(coord *c, pool *p, const pool_job *pj, int64_t now_ms)
{
    job_state st;
    int attempt;
    errbuf eb;
    if (store_job_state(c->st, pj->job, &st, &attempt, NULL, &eb) != 0 || attempt != pj->attempt)
        return 0;
    if (st == JS_STARTING) {
        store_assignment a;
        if (store_assignment_get(c->st, pj->job, pj->attempt, &a, &eb) == 0) {
            log_info("pool %s: ready while job %s attempt %d is starting: assigning it again",
                     p->id, pj->job, pj->attempt);
            send_assign(c, p, &a, now_ms);
            free(a.spec_json);
            return 1;
        }
    } else if (JS_ON_POOL & JS_BIT(st)) {
        char why[256];
        snprintf(why, sizeof why, "pool %s reported idle while running attempt %d", p->id,
                 pj->attempt);
        lose_attempt(c, pj->job, pj->attempt, why);
    }
    return 0;
}

/* ready: the pool can take a job; "running" lists what it runs (older pools: only
 * sent when idle, without the list). */
static void on_ready(coord *c, pool *p, const msg *m, int64_t now_ms)
{
    p->ready = 1;
    p->said_free = (int)msg_int(m, "free_ranks", -1);
    json_decref(p->cached);
    p->cached = json_incref(msg_get(m, "cached"));
    c->wake = 1;
    const json_t *running = msg_get(m, "running");
    for (int i = 0; i < p->n_jobs;) {
        pool_job pj = p->jobs[i];
        if (pool_says_it_runs(running, pj.job, pj.attempt) || ready_reconcile(c, p, &pj, now_ms)) {
            i++;
            continue;
        }
        pool_job_drop(p, pj.job, pj.attempt); /* moves the last one here */
    }
}

/* ---- job messages ------------------------------------------------------------- */

/* Writes the blobs of m to their files; fills rel[] (relative paths). */
static int write_blobs(coord *c, const msg *m, char rel[][300], errbuf *eb)
{
    for (int i = 0; i < m->n_blobs; i++) {
        if (m->type == MSG_CHECKPOINT)
            snprintf(rel[i], 300, "jobs/%s/checkpoints/a%d-step-%lld.safetensors", m->job_id,
                     m->attempt, msg_int(m, "step", 0));
        else
            snprintf(rel[i], 300, "jobs/%s/artifacts/a%d/%s", m->job_id, m->attempt,
                     json_string_value(json_object_get(
                         json_array_get(msg_get(m, "artifacts"), (size_t)i), "name")));
        char path[KILN_PATH_MAX];
        int rc = files_pathf(path, eb, "%s/%s", c->data_dir, rel[i]);
        if (rc == 0)
            rc = files_write_atomic(path, m->blobs[i].data, m->blobs[i].len, eb);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void unlink_rel(coord *c, const char *rel)
{
    char path[KILN_PATH_MAX];
    if (files_pathf(path, NULL, "%s/%s", c->data_dir, rel) == 0)
        unlink(path);
}

/* A job message's files could not be written (a full disk, a broken
 * folder): the job waits with the reason in its message, and the log says it
 * at most once per COORD_STORE_LOG_MS with the count of what it left out. */
static void note_store_failure(coord *c, const msg *m, const char *why, int64_t now_ms)
{
    c->store_failures++;
    if (c->store_log_ms == 0 || now_ms - c->store_log_ms >= COORD_STORE_LOG_MS) {
        log_error("job %s: cannot store the files of %s seq %llu (the pool sends them again): "
                  "%s%s",
                  m->job_id, msg_type_name(m->type), (unsigned long long)m->seq, why,
                  c->store_failures > 1 ? " (and more such failures since the last report)" : "");
        c->store_log_ms = now_ms;
        c->store_failures = 0;
    }
    if (strcmp(c->blocked_job, m->job_id) != 0) {
        char text[700];
        snprintf(text, sizeof text,
                 "waiting: the server cannot store this job's files (%s); the pool keeps them "
                 "and sends them again",
                 why);
        errbuf eb;
        if (store_job_note_active(c->st, m->job_id, text, &eb) == 0)
            snprintf(c->blocked_job, sizeof c->blocked_job, "%s", m->job_id);
    }
}

/* The files of a job that was blocked were written: its message says so. */
static void note_store_ok(coord *c, const msg *m)
{
    if (strcmp(c->blocked_job, m->job_id) != 0)
        return;
    char text[300];
    snprintf(text, sizeof text, "attempt %d running; the server stores its files again",
             m->attempt);
    errbuf eb;
    if (store_job_note_active(c->st, m->job_id, text, &eb) == 0)
        c->blocked_job[0] = '\0';
    log_info("job %s: its files are stored again", m->job_id);
}

/* Whether messages a and b of a batch are of the same (pool, job, attempt). */
static int same_stream(const store_apply_in *a, const store_apply_in *b)
{
    return strcmp(a->pool_id, b->pool_id) == 0 && strcmp(a->m->job_id, b->m->job_id) == 0 &&
           a->m->attempt == b->m->attempt;
}

/* After the batch in[0..k) was applied: what message j's outcome asks for. One ack
 * per (pool, job, attempt), for the last of its messages in the batch, with "gap"
 * when one of them came after a missing one (the pool then sends again from
 * ack_seq + 1); the files of a message not applied are removed; a message for an
 * attempt no longer active is answered by a cancel; an attempt that ended frees its
 * ranks on the pool. */
static void settle(coord *c, const store_apply_in *in, store_apply_out *out, int k, int j,
                   int64_t now_ms)
{
    const msg *m = in[j].m;
    pool *p = find_pool(c, in[j].pool_id);
    int later = 0, gap = 0;
    for (int l = j + 1; l < k && !later; l++)
        later = same_stream(&in[l], &in[j]);
    for (int l = 0; l <= j; l++)
        gap |= out[l].outcome == APPLY_GAP && same_stream(&in[l], &in[j]);
    if (p != NULL && !later) {
        msg ack;
        msg_init(&ack, MSG_ACK);
        msg_set_job(&ack, m->job_id, m->attempt, out[j].ack_seq);
        if (gap)
            msg_set(&ack, "gap", json_true());
        send_to(c, p, &ack, now_ms);
        msg_deinit(&ack);
    }
    if (out[j].outcome == APPLY_STALE || out[j].outcome == APPLY_GAP || out[j].outcome == APPLY_BAD)
        for (int b = 0; b < m->n_blobs && in[j].blob_paths[b] != NULL; b++)
            unlink_rel(c, in[j].blob_paths[b]);
    if (out[j].outcome == APPLY_STALE && p != NULL && m->type != MSG_FINISHED &&
        m->type != MSG_FAILED && !later) {
        log_warn("pool %s: message for job %s attempt %d, which is not active: cancelling", p->id,
                 m->job_id, m->attempt);
        send_simple(c, p, MSG_CANCEL, m->job_id, m->attempt, 0, now_ms);
    }
    if (out[j].ended) {
        if (p != NULL) {
            pool_job_drop(p, m->job_id, m->attempt);
            p->ready = 0; /* its ranks count once the pool says ready again */
        }
        log_info("job %s attempt %d: %s", m->job_id, m->attempt,
                 m->type == MSG_FINISHED ? msg_str(m, "status", "") : "failed");
        c->wake = 1;
    }
    size_t u;
    json_t *path;
    json_array_foreach(out[j].unlink, u, path)
    {
        unlink_rel(c, json_string_value(path));
    }
    json_decref(out[j].unlink);
}

static int flush_locked(coord *c, int64_t now_ms)
{
    int n = c->n_pend;
    if (n == 0)
        return 0;
    store_apply_in *in = xcalloc((size_t)n, sizeof *in);
    store_apply_out *out = xcalloc((size_t)n, sizeof *out);
    char(*rel)[MSG_MAX_BLOBS][300] = xcalloc((size_t)n, sizeof *rel);
    int k = 0, applied = 0;
    errbuf eb;
    for (int i = 0; i < n; i++) {
        pending *pe = &c->pend[i];
        /* Files only for a message that can still be applied: a resend of
         * one already applied, or a message from a pool that does not hold
         * the attempt, is acked or dropped without touching the disk. */
        int wanted = pe->m.n_blobs > 0 && store_attempt_wants(c->st, pe->m.job_id, pe->m.attempt,
                                                              pe->pool_id, pe->m.seq);
        if (wanted && write_blobs(c, &pe->m, rel[i], &eb) < 0) {
            /* No ack: the pool keeps the message and sends it again. */
            note_store_failure(c, &pe->m, eb.msg, now_ms);
            continue;
        }
        if (wanted)
            note_store_ok(c, &pe->m);
        in[k].m = &pe->m;
        in[k].pool_id = pe->pool_id;
        for (int b = 0; wanted && b < pe->m.n_blobs; b++)
            in[k].blob_paths[b] = rel[i][b];
        k++;
    }
    int rc = k > 0 ? store_apply_batch(c->st, in, out, k, &eb) : 0;
    if (rc < 0)
        log_error("cannot apply %d pool messages (they will be sent again): %s", k, eb.msg);
    for (int j = 0; rc == 0 && j < k; j++) {
        applied += out[j].outcome == APPLY_OK;
        settle(c, in, out, k, j, now_ms);
    }
    for (int i = 0; i < n; i++)
        msg_deinit(&c->pend[i].m);
    c->n_pend = 0;
    free(in);
    free(out);
    free(rel);
    return applied;
}

int coord_flush(coord *c, int64_t now_ms)
{
    pthread_mutex_lock(&c->mu);
    int n = flush_locked(c, now_ms);
    pthread_mutex_unlock(&c->mu);
    return n;
}

void coord_receive(coord *c, const char *pool_id, msg *m, int64_t now_ms)
{
    pthread_mutex_lock(&c->mu);
    pool *p = find_pool(c, pool_id);
    if (p != NULL)
        p->seen_ms = now_ms;
    if ((p == NULL || !p->alive) && m->type != MSG_HELLO)
        ask_hello(c, p, pool_id, now_ms);
    if (msg_is_job_message(m->type)) {
        if (p == NULL || !p->alive) {
            /* Not applied and not acked: the pool resends after its hello. */
            pthread_mutex_unlock(&c->mu);
            return;
        }
        pending *pe = &c->pend[c->n_pend++];
        pe->m = *m;
        memset(m, 0, sizeof *m);
        snprintf(pe->pool_id, sizeof pe->pool_id, "%s", pool_id);
        if (c->n_pend == COORD_BATCH_MAX)
            flush_locked(c, now_ms);
        pthread_mutex_unlock(&c->mu);
        return;
    }
    flush_locked(c, now_ms);
    switch (m->type) {
    case MSG_HELLO:
        on_hello(c, pool_id, m, now_ms);
        break;
    case MSG_HEARTBEAT:
        break;
    case MSG_READY:
        if (p != NULL && p->alive)
            on_ready(c, p, m, now_ms);
        break;
    default:
        log_warn("pool %s: unexpected %s message dropped", pool_id, msg_type_name(m->type));
    }
    pthread_mutex_unlock(&c->mu);
}

/* ---- ticks: liveness, cancels, reconciliation, scheduling ------------------------- */

/* Says in a queued job's message why it waits, when no pool could take it. */
/* ---- per-owner limits (--owner-max-running, --owner-max-ranks) ---------------------- */

static store_owner_usage *usage_of(store_owner_usage *u, int nu, const char *owner)
{
    for (int i = 0; i < nu; i++)
        if (strcmp(u[i].owner, owner) == 0)
            return &u[i];
    return NULL;
}

/* Whether starting j would pass one of its owner's limits; if so the reason
 * goes into why (COORD_HELD_MAX bytes). */
static int owner_over(const coord *c, store_owner_usage *u, int nu, const store_queued *j,
                      char *why)
{
    const store_owner_usage *x = usage_of(u, nu, j->owner);
    int running = x != NULL ? x->running : 0, ranks = x != NULL ? x->ranks : 0;
    if (c->o.owner_max_running > 0 && running >= c->o.owner_max_running) {
        snprintf(why, COORD_HELD_MAX,
                 "waiting: owner '%s' runs %d jobs, the most one owner may run at once "
                 "(--owner-max-running %d)",
                 j->owner, running, c->o.owner_max_running);
        return 1;
    }
    if (c->o.owner_max_ranks > 0 && ranks + j->ranks > c->o.owner_max_ranks) {
        snprintf(why, COORD_HELD_MAX,
                 "waiting: owner '%s' uses %d ranks and this job needs %d more, past the %d one "
                 "owner may use (--owner-max-ranks)",
                 j->owner, ranks, j->ranks, c->o.owner_max_ranks);
        return 1;
    }
    return 0;
}

/* The owners' use of the pools, and held[j] (the reason, or "") for each
 * queued job its owner's limits hold back; NULL when no limit is set. */
static store_owner_usage *owner_holds(coord *c, const store_queued *q, int nq,
                                      char (*held)[COORD_HELD_MAX], int *nu)
{
    *nu = 0;
    if (c->o.owner_max_running <= 0 && c->o.owner_max_ranks <= 0)
        return NULL;
    store_owner_usage *u = NULL;
    errbuf eb;
    if (store_owner_usage_list(c->st, &u, nu, &eb) < 0) {
        log_warn("cannot read the owners' use of the pools: %s", eb.msg);
        return NULL;
    }
    for (int j = 0; j < nq; j++)
        owner_over(c, u, *nu, &q[j], held[j]);
    return u != NULL ? u : xcalloc(1, sizeof *u);
}

/* Counts a started job against its owner; returns the (maybe moved) table. */
static store_owner_usage *owner_count(store_owner_usage *u, int *nu, const store_queued *j)
{
    store_owner_usage *x = usage_of(u, *nu, j->owner);
    if (x == NULL) {
        u = xrealloc(u, (size_t)(*nu + 1) * sizeof *u);
        x = &u[(*nu)++];
        memset(x, 0, sizeof *x);
        snprintf(x->owner, sizeof x->owner, "%s", j->owner);
    }
    x->running++;
    x->ranks += j->ranks;
    return u;
}

/* Why job j waits, into text. */
static void waiting_text(const store_queued *j, int n_alive, int max_ranks, char *text, size_t len)
{
    if (n_alive == 0)
        snprintf(text, len,
                 "waiting for a worker pool: none is connected (start one with mpirun -np N "
                 "kiln-worker --connect <the server's pool endpoint>)");
    else if (j->ranks > max_ranks)
        snprintf(text, len,
                 "waiting for a pool with at least %d ranks: the largest connected pool has %d",
                 j->ranks, max_ranks);
    else
        snprintf(text, len, "waiting for a free pool");
}

/* Says why each job not started waits, in one transaction. Every job when
 * the pools changed (or once a second); otherwise only the jobs submitted
 * since the last pass, so that a burst of submissions, each of which wakes
 * the scheduler, does not rewrite the whole queue every time. */
static int notes_full(const coord *c, int n_alive, int max_ranks, int64_t now_ms)
{
    return n_alive != c->note_alive || max_ranks != c->note_max_ranks ||
           now_ms - c->note_full_ms >= 1000;
}

static void note_waiting(coord *c, const store_queued *q, const char *picked,
                         char (*held)[COORD_HELD_MAX], int nq, int n_alive, int max_ranks,
                         int64_t now_ms)
{
    int full = notes_full(c, n_alive, max_ranks, now_ms);
    store_note *notes = xcalloc((size_t)nq + 1, sizeof *notes);
    char(*text)[256] = xcalloc((size_t)nq + 1, sizeof *text);
    int n = 0;
    int64_t newest = c->note_order;
    for (int j = 0; j < nq; j++) {
        if (q[j].order > newest)
            newest = q[j].order;
        if (picked[j] || (!full && q[j].order <= c->note_order))
            continue;
        if (held[j][0] != '\0')
            snprintf(text[n], sizeof text[n], "%s", held[j]);
        else
            waiting_text(&q[j], n_alive, max_ranks, text[n], sizeof text[n]);
        notes[n] = (store_note){.id = q[j].id, .message = text[n]};
        n++;
    }
    errbuf eb;
    if (store_job_notes(c->st, notes, n, &eb) < 0)
        log_warn("cannot note why jobs wait: %s", eb.msg);
    c->note_order = newest;
    if (full) {
        c->note_alive = n_alive;
        c->note_max_ranks = max_ranks;
        c->note_full_ms = now_ms;
    }
    free(notes);
    free(text);
}

/* One scheduling pass: the queue, the free pools and what became of them. */
typedef struct sched_round {
    const store_queued *q;
    int nq;
    const sched_pool *free_pools;
    const int *index; /* free pool -> c->pools */
    int nf;
    char *picked;                 /* per job: an attempt was started (or tried) */
    char *pool_used;              /* per free pool: it got a job */
    char (*held)[COORD_HELD_MAX]; /* per job: why an owner limit holds it, or "" */
    store_owner_usage *use;       /* NULL: no owner limits */
    int nu;
} sched_round;

/* Plans the jobs not yet started or held over the pools not yet used, and
 * starts the picks in order. Returns 1 when an owner's limit stopped a pick
 * (that job is now held): the caller plans again. */
static int start_round(coord *c, sched_round *r, int64_t now_ms)
{
    store_queued *el = xcalloc((size_t)r->nq + 1, sizeof *el);
    int *emap = xcalloc((size_t)r->nq + 1, sizeof *emap), ne = 0;
    sched_pool *fp = xcalloc((size_t)r->nf + 1, sizeof *fp);
    int *fmap = xcalloc((size_t)r->nf + 1, sizeof *fmap), nfp = 0;
    for (int j = 0; j < r->nq; j++)
        if (!r->picked[j] && r->held[j][0] == '\0') {
            el[ne] = r->q[j];
            emap[ne++] = j;
        }
    for (int k = 0; k < r->nf; k++)
        if (!r->pool_used[k]) {
            fp[nfp] = r->free_pools[k];
            fmap[nfp++] = k;
        }
    sched_pick *picks = xcalloc((size_t)nfp + 1, sizeof *picks);
    int np = sched_plan(el, ne, fp, nfp, picks), again = 0;
    errbuf eb;
    for (int i = 0; i < np && !again; i++) {
        int j = emap[picks[i].job], k = fmap[picks[i].pool];
        pool *p = &c->pools[r->index[k]];
        const char *id = r->q[j].id;
        /* an earlier pick of this pass may have brought the owner to a limit */
        if (r->use != NULL && owner_over(c, r->use, r->nu, &r->q[j], r->held[j])) {
            again = 1;
            break;
        }
        r->picked[j] = 1;
        r->pool_used[k] = 1;
        store_assignment a;
        int rc = store_attempt_start(c->st, id, p->id, &a, &eb);
        if (rc < 0) {
            if (rc != ERR_STATE)
                log_error("job %s: cannot start an attempt: %s", id, eb.msg);
            continue;
        }
        log_info("job %s attempt %d -> pool %s (%d ranks)%s", id, a.attempt, p->id, p->ranks,
                 a.ckpt_path[0] ? ", resuming from a checkpoint" : "");
        if (a.superseded > 0 && a.ckpt_path[0])
            log_info("job %s: the %lld metric points earlier attempts logged after step %ld are "
                     "dropped (attempt %d logs those steps again)",
                     id, (long long)a.superseded, a.ckpt_step, a.attempt);
        else if (a.superseded > 0)
            log_info("job %s: the %lld metric points of earlier attempts are dropped (no "
                     "checkpoint: attempt %d starts over)",
                     id, (long long)a.superseded, a.attempt);
        if (r->use != NULL)
            r->use = owner_count(r->use, &r->nu, &r->q[j]);
        if (send_assign(c, p, &a, now_ms) < 0)
            lose_attempt(c, id, a.attempt, "the stored spec could not be read");
        free(a.spec_json);
    }
    free(el);
    free(emap);
    free(fp);
    free(fmap);
    free(picks);
    return again;
}

static void schedule(coord *c, int64_t now_ms)
{
    sched_pool *free_pools = xcalloc((size_t)c->n_pools + 1, sizeof *free_pools);
    int *index = xcalloc((size_t)c->n_pools + 1, sizeof *index);
    int nf = 0, n_alive = 0, max_ranks = 0;
    for (int i = 0; i < c->n_pools; i++) {
        pool *p = &c->pools[i];
        if (p->alive) {
            n_alive++;
            max_ranks = p->ranks > max_ranks ? p->ranks : max_ranks;
        }
        if (p->alive && p->ready && pool_free_ranks(p) > 0) {
            free_pools[nf].id = p->id;
            free_pools[nf].ranks = pool_free_ranks(p);
            free_pools[nf].total = p->ranks;
            index[nf++] = i;
        }
    }
    /* With no pool free nothing can start: a wake-up (each submission is
     * one) then only notes why new jobs wait, which can wait a moment, so
     * that a burst of submissions does not read the queue once each. */
    lineage_poll(c->st, c->data_dir);
    store_queued *q = NULL;
    if (nf == 0 && !notes_full(c, n_alive, max_ranks, now_ms) &&
        now_ms - c->last_scan_ms < COORD_IDLE_SCAN_MS)
        goto out;
    c->last_scan_ms = now_ms;
    int nq = 0;
    errbuf eb;
    if (store_queue(c->st, &q, &nq, &eb) < 0 || nq == 0)
        goto out;
    sched_round r = {.q = q,
                     .nq = nq,
                     .free_pools = free_pools,
                     .index = index,
                     .nf = nf,
                     .picked = xcalloc((size_t)nq, 1),
                     .pool_used = xcalloc((size_t)nf + 1, 1),
                     .held = xcalloc((size_t)nq, COORD_HELD_MAX)};
    r.use = owner_holds(c, q, nq, r.held, &r.nu);
    /* a job an owner's limit stops in the middle of a round is held, and the
     * rest planned again: at most once per job */
    for (int round = 0; round <= nq && start_round(c, &r, now_ms); round++)
        ;
    note_waiting(c, q, r.picked, r.held, nq, n_alive, max_ranks, now_ms);
    free(r.picked);
    free(r.pool_used);
    free(r.held);
    free(r.use);
out:
    free(q);
    free(free_pools);
    free(index);
}

/* force: send cancels now, even if one went out less than a heartbeat ago. */
static void reconcile(coord *c, int64_t now_ms, int force)
{
    store_active *act;
    int n;
    errbuf eb;
    if (store_active_list(c->st, &act, &n, &eb) < 0) {
        log_error("cannot read active jobs: %s", eb.msg);
        return;
    }
    for (int i = 0; i < n; i++) {
        pool *p = find_pool(c, act[i].pool_id);
        if (p == NULL || !p->alive) {
            if (now_ms - c->start_ms > c->o.restart_grace_ms) {
                char why[256];
                snprintf(why, sizeof why, "pool %s is not connected", act[i].pool_id);
                lose_attempt(c, act[i].job_id, act[i].attempt, why);
            }
            continue;
        }
        if (act[i].state == JS_CANCELLING &&
            (force || p->cancel_ms < 0 || now_ms - p->cancel_ms >= c->o.heartbeat_ms)) {
            send_simple(c, p, MSG_CANCEL, act[i].job_id, act[i].attempt, 0, now_ms);
            p->cancel_ms = now_ms;
        }
    }
    free(act);
}

int coord_tick(coord *c, int64_t now_ms)
{
    pthread_mutex_lock(&c->mu);
    flush_locked(c, now_ms);
    int64_t window = (int64_t)c->o.heartbeat_ms * c->o.liveness;
    for (int i = 0; i < c->n_pools; i++) {
        pool *p = &c->pools[i];
        if (!p->alive)
            continue;
        if (now_ms - p->seen_ms > window) {
            p->alive = 0;
            p->ready = 0;
            log_warn("pool %s: lost (nothing received for %lld ms)", p->id,
                     (long long)(now_ms - p->seen_ms));
            for (int k = 0; k < p->n_jobs; k++) {
                char why[256];
                snprintf(why, sizeof why, "pool %s sent nothing for %lld ms (%d heartbeats)", p->id,
                         (long long)(now_ms - p->seen_ms), c->o.liveness);
                lose_attempt(c, p->jobs[k].job, p->jobs[k].attempt, why);
            }
            p->n_jobs = 0;
            continue;
        }
        if (now_ms - p->sent_ms >= c->o.heartbeat_ms)
            send_simple(c, p, MSG_HEARTBEAT, NULL, 0, 0, now_ms);
    }
    if (c->wake || now_ms - c->last_reconcile_ms >= c->o.heartbeat_ms) {
        reconcile(c, now_ms, c->wake);
        c->last_reconcile_ms = now_ms;
    }
    if (c->wake || now_ms - c->last_sched_ms >= 1000) {
        c->wake = 0;
        schedule(c, now_ms);
        c->last_sched_ms = now_ms;
    }
    pthread_mutex_unlock(&c->mu);
    int next = c->o.heartbeat_ms / 4;
    return next < 10 ? 10 : (next > 100 ? 100 : next);
}

json_t *coord_workers(coord *c, int64_t now_ms)
{
    json_t *a = json_array();
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n_pools; i++) {
        const pool *p = &c->pools[i];
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(p->id));
        json_object_set_new(o, "state",
                            json_string(!p->alive ? "lost" : (p->n_jobs > 0 ? "busy" : "idle")));
        json_object_set_new(o, "ranks", json_integer(p->ranks));
        json_object_set_new(o, "hosts", p->hosts ? json_incref(p->hosts) : json_array());
        json_object_set_new(o, "cores", json_integer(p->cores));
        json_object_set_new(o, "version", json_string(p->version));
        json_object_set_new(o, "engine", p->engine[0] ? json_string(p->engine) : json_null());
        json_object_set_new(o, "memory", p->memory > 0 ? json_integer(p->memory) : json_null());
        json_object_set_new(o, "rank_memory",
                            p->rank_memory > 0 ? json_integer(p->rank_memory) : json_null());
        json_object_set_new(o, "last_heartbeat_age_s",
                            json_real((double)(now_ms - p->seen_ms) / 1000.0));
        char t[32];
        store_time_iso(p->connected_at, t);
        json_object_set_new(o, "connected_at", json_string(t));
        json_t *jobs = json_array();
        for (int k = 0; k < p->n_jobs; k++)
            json_array_append_new(jobs,
                                  json_pack("{s:s,s:i,s:i}", "job_id", p->jobs[k].job, "attempt",
                                            p->jobs[k].attempt, "ranks", p->jobs[k].ranks));
        json_object_set_new(o, "current_job",
                            p->n_jobs > 0 ? json_incref(json_array_get(jobs, 0)) : json_null());
        json_object_set_new(o, "current_jobs", jobs);
        json_object_set_new(o, "free_ranks", json_integer(p->alive ? pool_free_ranks(p) : 0));
        json_array_append_new(a, o);
    }
    pthread_mutex_unlock(&c->mu);
    return a;
}
