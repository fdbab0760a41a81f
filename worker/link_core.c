/* link_core.c - the pool side of the protocol without sockets or threads (see link_core.h).
 *
 * The outbox is a FIFO of job messages: sent entries stay until acked; after
 * a reconnect, a stall or a gap all are marked unsent (go-back-N; the server
 * drops what it already applied); at most LCORE_WINDOW of them are in flight.
 * When memory is full, new messages go to the spill file, and while it holds
 * any, every new message goes there too, so the order is kept.
 */
#include "link_core.h"

#include "common/files.h"
#include "common/log.h"
#include "common/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LCORE_MAX_PENDING_ASSIGN 4
#define LCORE_SEQ_SLOTS          8
#define LCORE_CANCEL_SLOTS       16
#define LCORE_MAX_RUNNING        64 /* jobs one pool runs at once (one rank each at least) */
#define LCORE_BATCH_POINTS       256
#define LCORE_WINDOW             512   /* job messages in flight (sent, not acked) at most */
#define LCORE_RESEND_MAX_MS      60000 /* the resend timeout doubles up to this */

typedef struct entry {
    msg m;
    size_t bytes;
    int sent;        /* sent on the current connection */
    int resent;      /* sent more than once (no round-trip sample then: Karn) */
    int64_t sent_ms; /* last send; 0 = never sent (may still take metric points) */
    struct entry *next;
} entry;

typedef struct job_key {
    char job[MSG_ID_MAX];
    int attempt;
    uint64_t n; /* seq: last given; cancel: unused */
} job_key;

struct link_core {
    lcore_send_fn send;
    void *send_ctx;
    char peer[256]; /* the server's endpoint, for the log */
    link_options o; /* the pointers in it are not kept */
    char pool_id[MSG_ID_MAX];
    int ranks, cores;
    json_t *hosts;
    char version[64];
    char engine[256];            /* kernel path and BLAS core, sent in hello; "" = unknown */
    int64_t memory, rank_memory; /* sent in hello when > 0 */

    /* The outbox and the spill file. */
    entry *head, *tail;
    size_t n_mem, bytes_mem;
    FILE *spill;
    char spill_path[KILN_PATH_MAX];
    long spill_rd, spill_wr;
    size_t n_spill;
    job_key seqs[LCORE_SEQ_SLOTS];
    int seq_next_slot;

    /* The job side. */
    job_key cancels[LCORE_CANCEL_SLOTS];
    int cancel_next_slot;
    link_assignment pend[LCORE_MAX_PENDING_ASSIGN];
    int n_pend;
    struct {
        char job[MSG_ID_MAX];
        int attempt;
        uint64_t end_seq;         /* seq of its finished/failed, 0 while it runs */
    } running[LCORE_MAX_RUNNING]; /* taken jobs, each until its end message is acked */
    int n_running;
    int free_ranks; /* ranks free for another job, as the pool says; -1 = not said */
    int waiting;
    json_t *cached; /* SHA-256s of the init weights held, sent with ready (or NULL) */
    link_stats stats;

    /* The connection. */
    int hello_sent, ready_sent, welcomed;
    int hb_ms, liveness;
    int64_t last_recv, last_send;
    int64_t last_ack;    /* last ack of any kind, or the last go-back */
    int64_t last_goback; /* last time every unacked message was marked for resending */
    int resend_wait;     /* the resend timeout now: rto, doubled after each resend */
    int srtt;            /* smoothed ack round trip, ms (0 = no sample yet) */
    int backoff_ms;
};

static int same_job(const msg *m, const char *job, int attempt)
{
    return m->attempt == attempt && strcmp(m->job_id, job) == 0;
}

/* The index of (job, attempt) among the running jobs, or -1. */
static int running_find(const link_core *c, const char *job, int attempt)
{
    for (int i = 0; i < c->n_running; i++)
        if (c->running[i].attempt == attempt && strcmp(c->running[i].job, job) == 0)
            return i;
    return -1;
}

/* Whether some job's end message is not acked yet: no ready may overtake it (the
 * server would take that job for lost). */
static int end_unacked(const link_core *c)
{
    for (int i = 0; i < c->n_running; i++)
        if (c->running[i].end_seq > 0)
            return 1;
    return 0;
}

/* [{job_id, attempt}] of the running jobs. */
static json_t *running_json(const link_core *c)
{
    json_t *a = json_array();
    for (int i = 0; i < c->n_running; i++)
        json_array_append_new(a, json_pack("{s:s,s:i}", "job_id", c->running[i].job, "attempt",
                                           c->running[i].attempt));
    return a;
}

/* ---- the spill file ------------------------------------------------------------ */

static int spill_open(link_core *c, errbuf *eb)
{
    const char *dir = c->o.spill_dir;
    if (dir == NULL)
        dir = getenv("TMPDIR");
    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    snprintf(c->spill_path, sizeof c->spill_path, "%s/kiln-link-%s-%ld.spill", dir, c->pool_id,
             (long)getpid());
    c->spill = fopen(c->spill_path, "w+b");
    if (c->spill == NULL)
        return err_set(eb, ERR_IO, "link: cannot create spill file %s: %s", c->spill_path,
                       strerror(errno));
    return 0;
}

static int spill_write(link_core *c, const msg *m)
{
    size_t hl;
    char *hdr = msg_encode(m, &hl);
    uint32_t h32 = (uint32_t)hl, nb = (uint32_t)m->n_blobs;
    int ok = fseek(c->spill, c->spill_wr, SEEK_SET) == 0 && fwrite(&h32, 4, 1, c->spill) == 1 &&
             fwrite(hdr, 1, hl, c->spill) == hl && fwrite(&nb, 4, 1, c->spill) == 1;
    for (int i = 0; ok && i < m->n_blobs; i++) {
        uint64_t bl = m->blobs[i].len;
        ok = fwrite(&bl, 8, 1, c->spill) == 1 &&
             (bl == 0 || fwrite(m->blobs[i].data, 1, bl, c->spill) == bl);
    }
    free(hdr);
    if (!ok || fflush(c->spill) != 0) {
        log_error("link: cannot write spill file %s: %s", c->spill_path, strerror(errno));
        return ERR_IO;
    }
    c->spill_wr = ftell(c->spill);
    c->n_spill++;
    c->stats.spilled++;
    return 0;
}

/* Reads the blobs of a spilled message into m. */
static int spill_read_blobs(link_core *c, msg *m)
{
    uint32_t nb;
    if (fread(&nb, 4, 1, c->spill) != 1)
        return ERR_IO;
    for (uint32_t i = 0; i < nb; i++) {
        uint64_t bl;
        if (fread(&bl, 8, 1, c->spill) != 1)
            return ERR_IO;
        void *data = xmalloc(bl > 0 ? (size_t)bl : 1);
        if (bl > 0 && fread(data, 1, (size_t)bl, c->spill) != bl) {
            free(data);
            return ERR_IO;
        }
        msg_take_blob(m, data, (size_t)bl);
    }
    return 0;
}

/* Reads the oldest spilled message into m. */
static int spill_read(link_core *c, msg *m)
{
    uint32_t h32;
    errbuf eb;
    if (fseek(c->spill, c->spill_rd, SEEK_SET) != 0 || fread(&h32, 4, 1, c->spill) != 1)
        return ERR_IO;
    char *hdr = xmalloc((size_t)h32 + 1);
    int rc = fread(hdr, 1, h32, c->spill) == h32 ? msg_decode(m, hdr, h32, &eb) : ERR_IO;
    free(hdr);
    if (rc == 0)
        rc = spill_read_blobs(c, m);
    if (rc < 0) {
        log_error("link: spill file %s is unreadable at offset %ld", c->spill_path, c->spill_rd);
        return rc;
    }
    c->spill_rd = ftell(c->spill);
    c->n_spill--;
    if (c->n_spill == 0) {
        c->spill_rd = c->spill_wr = 0;
        if (ftruncate(fileno(c->spill), 0) != 0)
            log_warn("link: cannot truncate %s: %s", c->spill_path, strerror(errno));
    }
    return 0;
}

/* ---- the outbox ---------------------------------------------------------------- */

static size_t msg_bytes(const msg *m)
{
    size_t n = 256;
    for (int i = 0; i < m->n_blobs; i++)
        n += m->blobs[i].len;
    return n;
}

static int mem_full(const link_core *c, size_t add)
{
    return c->n_mem >= c->o.outbox_max_msgs ||
           (c->n_mem > 0 && c->bytes_mem + add > c->o.outbox_max_bytes);
}

static void append_mem(link_core *c, msg *m)
{
    entry *e = xcalloc(1, sizeof *e);
    e->m = *m;
    memset(m, 0, sizeof *m);
    e->bytes = msg_bytes(&e->m);
    if (c->tail != NULL)
        c->tail->next = e;
    else
        c->head = e;
    c->tail = e;
    c->n_mem++;
    c->bytes_mem += e->bytes;
}

static uint64_t next_seq(link_core *c, const char *job, int attempt)
{
    for (int i = 0; i < LCORE_SEQ_SLOTS; i++)
        if (c->seqs[i].attempt == attempt && strcmp(c->seqs[i].job, job) == 0)
            return ++c->seqs[i].n;
    job_key *k = &c->seqs[c->seq_next_slot];
    c->seq_next_slot = (c->seq_next_slot + 1) % LCORE_SEQ_SLOTS;
    snprintf(k->job, sizeof k->job, "%s", job);
    k->attempt = attempt;
    k->n = 1;
    return 1;
}

int lcore_enqueue(link_core *c, msg *m, const char *job, int attempt)
{
    msg_set_job(m, job, attempt, next_seq(c, job, attempt));
    if (m->type == MSG_FINISHED || m->type == MSG_FAILED) {
        int r = running_find(c, job, attempt);
        if (r >= 0)
            c->running[r].end_seq = m->seq;
        c->ready_sent = 0;
    }
    int rc = 0;
    if (c->n_spill > 0 || mem_full(c, msg_bytes(m))) {
        rc = spill_write(c, m);
        msg_deinit(m);
    } else {
        append_mem(c, m);
    }
    return rc;
}

int lcore_metric(link_core *c, const char *job, int attempt, json_t *point)
{
    /* Join the newest unsent metric message of this attempt, if there is one. */
    entry *t = c->tail;
    if (c->n_spill == 0 && t != NULL && t->sent_ms == 0 && t->m.type == MSG_METRIC &&
        same_job(&t->m, job, attempt)) {
        json_t *pts = msg_get(&t->m, "points");
        if (json_array_size(pts) < LCORE_BATCH_POINTS) {
            json_array_append_new(pts, point);
            return 0;
        }
    }
    msg m;
    msg_init(&m, MSG_METRIC);
    msg_set(&m, "points", json_pack("[o]", point));
    return lcore_enqueue(c, &m, job, attempt);
}

/* Marks every unacked message for sending again (go-back-N). */
static void go_back(link_core *c, int64_t t)
{
    for (entry *e = c->head; e != NULL; e = e->next)
        e->sent = 0;
    c->last_goback = t;
    c->last_ack = t;
}

/* Removes e (after prev) from the outbox; a message sent once gives a round-trip sample. */
static void drop_acked(link_core *c, entry **pp, entry *prev, int64_t t)
{
    entry *e = *pp;
    *pp = e->next;
    if (c->tail == e)
        c->tail = prev;
    c->n_mem--;
    c->bytes_mem -= e->bytes;
    c->stats.acked++;
    /* Karn: only a message sent once gives a round-trip sample, and only a
     * sample brings a backed-off timeout down again. */
    if (!e->resent && e->sent_ms > 0) {
        int sample = (int)(t - e->sent_ms);
        c->srtt = c->srtt == 0 ? sample : (7 * c->srtt + sample) / 8;
        c->resend_wait = 4 * c->srtt > c->o.resend_ms ? 4 * c->srtt : c->o.resend_ms;
    }
    msg_deinit(&e->m);
    free(e);
}

static void on_ack(link_core *c, const msg *m, int64_t t)
{
    entry **pp = &c->head, *prev = NULL;
    while (*pp != NULL) {
        entry *e = *pp;
        int same = same_job(&e->m, m->job_id, m->attempt);
        if (same && e->m.seq > m->seq)
            break; /* a job's messages are in seq order: nothing further is acked */
        if (same) {
            drop_acked(c, pp, prev, t);
            continue;
        }
        prev = e;
        pp = &e->next;
    }
    c->last_ack = t;
    /* The server saw a gap (a message it never got, e.g. dropped while it
     * did not know this pool): go back now, but at most once per round trip. */
    if (json_is_true(msg_get(m, "gap")) &&
        t - c->last_goback >= (c->srtt * 2 > 50 ? c->srtt * 2 : 50))
        go_back(c, t);
    int r = running_find(c, m->job_id, m->attempt);
    if (r >= 0 && c->running[r].end_seq > 0 && m->seq >= c->running[r].end_seq) {
        c->running[r] = c->running[--c->n_running];
        c->ready_sent = 0;
    }
}

/* ---- the job side ---------------------------------------------------------------- */

static void take_assign_blobs(link_assignment *a, msg *m)
{
    json_t *init = msg_get(m, "init");
    int n_ckpt = m->n_blobs;
    if (init != NULL) {
        a->has_init = 1;
        snprintf(a->init_sha256, sizeof a->init_sha256, "%s",
                 json_string_value(json_object_get(init, "sha256")));
        a->init_size = (long long)json_integer_value(json_object_get(init, "size"));
        if (json_is_true(json_object_get(init, "attached")) && m->n_blobs > 0) {
            n_ckpt--;
            a->init = m->blobs[n_ckpt].data;
            a->init_len = m->blobs[n_ckpt].len;
            m->blobs[n_ckpt].data = NULL;
        }
    }
    if (n_ckpt > 0) {
        a->checkpoint = m->blobs[0].data;
        a->checkpoint_len = m->blobs[0].len;
        m->blobs[0].data = NULL;
        a->resume_step = (long)msg_int(m, "resume_step", 0);
    }
}

static void on_assign(link_core *c, msg *m)
{
    if (running_find(c, m->job_id, m->attempt) >= 0)
        return; /* sent again by the server; we have it */
    for (int i = 0; i < c->n_pend; i++)
        if (strcmp(c->pend[i].job_id, m->job_id) == 0 && c->pend[i].attempt == m->attempt)
            return;
    if (c->n_pend == LCORE_MAX_PENDING_ASSIGN) {
        log_warn("link: assignment of job %s dropped: %d already waiting", m->job_id, c->n_pend);
        return;
    }
    link_assignment *a = &c->pend[c->n_pend++];
    memset(a, 0, sizeof *a);
    snprintf(a->job_id, sizeof a->job_id, "%s", m->job_id);
    a->attempt = m->attempt;
    a->spec = json_incref(msg_get(m, "spec"));
    take_assign_blobs(a, m);
    log_info("link: assigned job %s attempt %d%s", a->job_id, a->attempt,
             a->checkpoint ? " (resuming)" : "");
}

static void on_cancel(link_core *c, const msg *m)
{
    if (lcore_cancel_requested(c, m->job_id, m->attempt))
        return;
    job_key *k = &c->cancels[c->cancel_next_slot];
    c->cancel_next_slot = (c->cancel_next_slot + 1) % LCORE_CANCEL_SLOTS;
    snprintf(k->job, sizeof k->job, "%s", m->job_id);
    k->attempt = m->attempt;
    log_info("link: cancel of job %s attempt %d", m->job_id, m->attempt);
}

int lcore_cancel_requested(const link_core *c, const char *job, int attempt)
{
    for (int i = 0; i < LCORE_CANCEL_SLOTS; i++)
        if (c->cancels[i].attempt == attempt && strcmp(c->cancels[i].job, job) == 0)
            return 1;
    return 0;
}

int lcore_take_assign(link_core *c, link_assignment *a)
{
    if (c->n_pend == 0)
        return 0;
    *a = c->pend[0];
    memmove(&c->pend[0], &c->pend[1], (size_t)(c->n_pend - 1) * sizeof c->pend[0]);
    c->n_pend--;
    if (c->n_running < LCORE_MAX_RUNNING) {
        int r = c->n_running++;
        snprintf(c->running[r].job, sizeof c->running[r].job, "%s", a->job_id);
        c->running[r].attempt = a->attempt;
        c->running[r].end_seq = 0;
    } else {
        log_warn("link: %d jobs run already; job %s is not listed to the server", LCORE_MAX_RUNNING,
                 a->job_id);
    }
    return 1; /* the next ready lists it: the pool says how many ranks it left free */
}

int lcore_pending(const link_core *c)
{
    return c->n_pend;
}

int64_t lcore_silent_ms(const link_core *c, int64_t t)
{
    return t - c->last_recv;
}

void lcore_set_waiting(link_core *c, int waiting)
{
    c->waiting = waiting;
}

void lcore_set_free_ranks(link_core *c, int free_ranks)
{
    if (free_ranks != c->free_ranks)
        c->ready_sent = 0;
    c->free_ranks = free_ranks;
}

void lcore_set_cached(link_core *c, json_t *a)
{
    json_decref(c->cached);
    c->cached = a;
}

size_t lcore_queued(const link_core *c)
{
    return c->n_mem + c->n_spill;
}

void lcore_get_stats(const link_core *c, link_stats *s)
{
    *s = c->stats;
    s->queued = c->n_mem + c->n_spill;
}

/* ---- the connection ------------------------------------------------------------ */

/* Sends m; 0, or -1 when the connection cannot take it now. */
static int send_msg(link_core *c, const msg *m, int64_t t)
{
    if (c->send(c->send_ctx, m) < 0)
        return -1;
    c->last_send = t;
    return 0;
}

static int send_simple(link_core *c, msg_type type, int64_t t)
{
    msg m;
    msg_init(&m, type);
    if (type == MSG_READY && c->cached != NULL)
        msg_set(&m, "cached", json_deep_copy(c->cached));
    if (type == MSG_READY) {
        msg_set(&m, "running", running_json(c));
        if (c->free_ranks >= 0)
            msg_set(&m, "free_ranks", json_integer(c->free_ranks));
    }
    int rc = send_msg(c, &m, t);
    msg_deinit(&m);
    return rc;
}

static void send_hello(link_core *c, int64_t t)
{
    msg m;
    msg_init(&m, MSG_HELLO);
    msg_set(&m, "pool_id", json_string(c->pool_id));
    msg_set(&m, "ranks", json_integer(c->ranks));
    msg_set(&m, "cores", json_integer(c->cores));
    msg_set(&m, "version", json_string(c->version));
    if (c->engine[0] != '\0')
        msg_set(&m, "engine", json_string(c->engine));
    msg_set(&m, "hosts", json_incref(c->hosts));
    if (c->memory > 0)
        msg_set(&m, "memory", json_integer((json_int_t)c->memory));
    if (c->rank_memory > 0)
        msg_set(&m, "rank_memory", json_integer((json_int_t)c->rank_memory));
    msg_set(&m, "current", running_json(c));
    if (send_msg(c, &m, t) == 0)
        c->hello_sent = 1;
    msg_deinit(&m);
}

void lcore_connected(link_core *c, int64_t t)
{
    c->last_recv = t;
    c->last_ack = t;
    c->last_send = 0;
}

int lcore_disconnected(link_core *c, int64_t t)
{
    (void)t;
    c->stats.reconnects++;
    c->hello_sent = c->ready_sent = c->welcomed = 0;
    c->stats.connected = 0;
    for (entry *e = c->head; e != NULL; e = e->next)
        e->sent = 0;
    int wait = c->backoff_ms;
    c->backoff_ms =
        c->backoff_ms * 2 > c->o.reconnect_max_ms ? c->o.reconnect_max_ms : c->backoff_ms * 2;
    return wait;
}

/* The server asked for a hello: it restarted while ZeroMQ kept (or re-made)
 * this connection, or it gave up on this pool. Say hello on the same
 * connection and send every unacked message again. While that hello is
 * unanswered, further requests are ignored (welcomed is 0). */
static void hello_again(link_core *c)
{
    log_info("link: %s does not know this pool (restarted?); saying hello again", c->peer);
    c->hello_sent = c->ready_sent = c->welcomed = 0;
    for (entry *e = c->head; e != NULL; e = e->next)
        e->sent = 0;
}

void lcore_heard(link_core *c, int64_t t)
{
    c->last_recv = t;
}

void lcore_receive(link_core *c, msg *m, int64_t t)
{
    c->last_recv = t;
    switch (m->type) {
    case MSG_WELCOME:
        c->hb_ms = (int)msg_int(m, "heartbeat_ms", c->hb_ms);
        c->liveness = (int)msg_int(m, "liveness", c->liveness);
        c->welcomed = 1;
        c->stats.connected = 1;
        c->backoff_ms = c->o.reconnect_min_ms;
        log_info("link: connected to %s as %s", c->peer, c->pool_id);
        break;
    case MSG_ASSIGN:
        on_assign(c, m);
        break;
    case MSG_CANCEL:
        on_cancel(c, m);
        break;
    case MSG_ACK:
        on_ack(c, m, t);
        break;
    case MSG_HEARTBEAT:
        if (json_is_true(msg_get(m, "hello")) && c->welcomed)
            hello_again(c);
        break;
    default:
        log_warn("link: unexpected %s from the server", msg_type_name(m->type));
    }
}

/* Sends the unsent messages of the window. */
static void send_outbox(link_core *c, int64_t t)
{
    int k = 0;
    for (entry *e = c->head; e != NULL && k < LCORE_WINDOW; e = e->next, k++) {
        if (e->sent)
            continue;
        if (send_msg(c, &e->m, t) < 0)
            break;
        if (e->sent_ms > 0) {
            c->stats.resent++;
            e->resent = 1;
        }
        e->sent = 1;
        e->sent_ms = t;
        c->stats.sent++;
    }
}

int lcore_tick(link_core *c, int64_t t)
{
    if (t - c->last_recv > (int64_t)c->hb_ms * c->liveness)
        return LCORE_LOST;
    if (!c->hello_sent) {
        send_hello(c, t);
        if (!c->hello_sent)
            return 0; /* not connected yet (ZMQ_IMMEDIATE) */
    }
    /* Refill memory from the spill file, in order. */
    while (c->n_spill > 0 && !mem_full(c, 0)) {
        msg m;
        if (spill_read(c, &m) < 0) {
            msg_deinit(&m);
            break;
        }
        append_mem(c, &m);
    }
    /* Acks stopped: go back and send every unacked message again. Only when
     * no ack at all came for resend_wait (at least resend_ms and 4 smoothed
     * round trips), doubling after each resend: a server that still acks is
     * busy, not missing messages (a missing one is reported as a gap), and
     * must not be buried under copies of what it is working on. */
    if (c->head != NULL && c->head->sent && t - c->head->sent_ms >= c->resend_wait &&
        t - c->last_ack >= c->resend_wait) {
        go_back(c, t);
        c->resend_wait =
            c->resend_wait * 2 > LCORE_RESEND_MAX_MS ? LCORE_RESEND_MAX_MS : c->resend_wait * 2;
    }
    send_outbox(c, t);
    /* Ready: the pool has free ranks (as it said), or, one job at a time, it waits
     * for work with none running; never while a job's end message is unacked. */
    int can_take = c->free_ranks >= 0 ? c->free_ranks > 0 : c->waiting && c->n_running == 0;
    if (can_take && !end_unacked(c) && c->n_pend == 0 && !c->ready_sent &&
        send_simple(c, MSG_READY, t) == 0)
        c->ready_sent = 1;
    if (t - c->last_send >= c->hb_ms)
        send_simple(c, MSG_HEARTBEAT, t);
    return 0;
}

long lcore_poll_ms(const link_core *c, int64_t t)
{
    if (!c->hello_sent)
        return 10;
    int64_t next_hb = c->last_send + c->hb_ms - t;
    if (next_hb < 0)
        return 0;
    return next_hb > 50 ? 50 : (long)next_hb; /* also the resend and liveness checks */
}

/* ---- life ------------------------------------------------------------------------ */

/* link.h: the defaults and the assignment live here, with no sockets. */
void link_options_default(link_options *o)
{
    memset(o, 0, sizeof *o);
    o->heartbeat_ms = 1000;
    o->liveness = 5;
    o->reconnect_min_ms = 100;
    o->reconnect_max_ms = 5000;
    o->resend_ms = 2000;
    o->outbox_max_msgs = 4096;
    o->outbox_max_bytes = 64u << 20;
}

void link_assignment_free(link_assignment *a)
{
    json_decref(a->spec);
    free(a->checkpoint);
    free(a->init);
    memset(a, 0, sizeof *a);
}

int lcore_new(link_core **out, const char *peer, const link_pool_info *info, const link_options *o,
              lcore_send_fn send, void *send_ctx, errbuf *eb)
{
    *out = NULL;
    link_core *c = xcalloc(1, sizeof *c);
    c->send = send;
    c->send_ctx = send_ctx;
    c->free_ranks = -1;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->o = *o;
    c->o.token = c->o.curve_server_key = c->o.curve_secret = NULL;
    snprintf(c->pool_id, sizeof c->pool_id, "%s", info->pool_id);
    c->ranks = info->ranks;
    c->cores = info->cores;
    c->memory = info->memory;
    c->rank_memory = info->rank_memory;
    snprintf(c->version, sizeof c->version, "%s", info->version ? info->version : "unknown");
    snprintf(c->engine, sizeof c->engine, "%s", info->engine ? info->engine : "");
    c->hb_ms = o->heartbeat_ms;
    c->liveness = o->liveness;
    c->backoff_ms = o->reconnect_min_ms;
    c->resend_wait = o->resend_ms;
    int rc = spill_open(c, eb);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->o.spill_dir = NULL; /* borrowed; used only by spill_open */
    c->hosts = json_array();
    for (int i = 0; i < info->n_hosts && info->hosts != NULL; i++)
        json_array_append_new(c->hosts, json_string(info->hosts[i]));
    *out = c;
    return 0;
}

void lcore_free(link_core *c)
{
    if (c == NULL)
        return;
    while (c->head != NULL) {
        entry *e = c->head;
        c->head = e->next;
        msg_deinit(&e->m);
        free(e);
    }
    for (int i = 0; i < c->n_pend; i++)
        link_assignment_free(&c->pend[i]);
    fclose(c->spill);
    unlink(c->spill_path);
    json_decref(c->hosts);
    json_decref(c->cached);
    free(c);
}
