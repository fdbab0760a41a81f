/* link.c - the pool side of the protocol (see link.h). The only ZeroMQ file of the worker.
 *
 * One mutex guards the shared state (outbox, spill file, assignments,
 * cancels); the link thread also holds it while it sends (zmq_send with
 * ZMQ_DONTWAIT only copies). The outbox is a FIFO of job messages: sent
 * entries stay until acked; after a reconnect or a stall all are marked
 * unsent (go-back-N; the server drops what it already applied); at most
 * LINK_WINDOW of them are in flight. When memory
 * is full, new messages go to the spill file, and while it holds any, every
 * new message goes there too, so the order is kept.
 */
#include "link.h"

#include "common/log.h"
#include "common/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define LINK_MAX_PENDING_ASSIGN 4
#define LINK_SEQ_SLOTS          8
#define LINK_CANCEL_SLOTS       16
#define LINK_BATCH_POINTS       256
#define LINK_WINDOW             512 /* job messages in flight (sent, not acked) at most */

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

struct pool_link {
    char endpoint[256];
    char token[300];                                           /* PLAIN password, or "" */
    char curve_server[41], curve_secret[41], curve_public[41]; /* Z85; "" = no CURVE */
    char pool_id[MSG_ID_MAX];
    int ranks, cores;
    json_t *hosts;
    char version[64];
    char engine[256];            /* kernel path and BLAS core, sent in hello; "" = unknown */
    int64_t memory, rank_memory; /* sent in hello when > 0 */
    link_options o;
    void *ctx;
    int own_ctx;
    pthread_t thread;
    int wake_fd[2];
    pthread_mutex_t mu;
    pthread_cond_t cv;

    /* Shared, under mu. */
    entry *head, *tail;
    size_t n_mem, bytes_mem;
    FILE *spill;
    char spill_path[512];
    long spill_rd, spill_wr;
    size_t n_spill;
    job_key seqs[LINK_SEQ_SLOTS];
    int seq_next_slot;
    job_key cancels[LINK_CANCEL_SLOTS];
    int cancel_next_slot;
    link_assignment pend[LINK_MAX_PENDING_ASSIGN];
    int n_pend;
    char cur_job[MSG_ID_MAX]; /* current job, until its end message is acked */
    int cur_attempt;
    uint64_t cur_end_seq; /* seq of its finished/failed, 0 while it runs */
    int waiting, interrupted, stop;
    link_stats stats;
    json_t *cached; /* SHA-256s of the init weights held, sent with ready (or NULL) */

    /* Link thread only. */
    void *sock;
    int hello_sent, ready_sent, welcomed;
    int hb_ms, liveness;
    int64_t last_recv, last_send, reconnect_at;
    int64_t last_ack;    /* last ack of any kind, or the last go-back */
    int64_t last_goback; /* last time every unacked message was marked for resending */
    int resend_wait;     /* the resend timeout now: rto, doubled after each resend */
    int srtt;            /* smoothed ack round trip, ms (0 = no sample yet) */
    int backoff_ms;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

const char *link_pool_id(const pool_link *l)
{
    return l->pool_id;
}

static void wake(pool_link *l)
{
    char c = 1;
    if (write(l->wake_fd[1], &c, 1) < 0 && errno != EAGAIN)
        log_warn("link: cannot wake the link thread: %s", strerror(errno));
}

static int same_job(const msg *m, const char *job, int attempt)
{
    return m->attempt == attempt && strcmp(m->job_id, job) == 0;
}

/* ---- the spill file ------------------------------------------------------------ */

static int spill_open(pool_link *l, errbuf *eb)
{
    const char *dir = l->o.spill_dir;
    if (dir == NULL)
        dir = getenv("TMPDIR");
    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    snprintf(l->spill_path, sizeof l->spill_path, "%s/kiln-link-%s-%ld.spill", dir, l->pool_id,
             (long)getpid());
    l->spill = fopen(l->spill_path, "w+b");
    if (l->spill == NULL)
        return err_set(eb, ERR_IO, "link: cannot create spill file %s: %s", l->spill_path,
                       strerror(errno));
    return 0;
}

static int spill_write(pool_link *l, const msg *m)
{
    size_t hl;
    char *hdr = msg_encode(m, &hl);
    uint32_t h32 = (uint32_t)hl, nb = (uint32_t)m->n_blobs;
    int ok = fseek(l->spill, l->spill_wr, SEEK_SET) == 0 && fwrite(&h32, 4, 1, l->spill) == 1 &&
             fwrite(hdr, 1, hl, l->spill) == hl && fwrite(&nb, 4, 1, l->spill) == 1;
    for (int i = 0; ok && i < m->n_blobs; i++) {
        uint64_t bl = m->blobs[i].len;
        ok = fwrite(&bl, 8, 1, l->spill) == 1 &&
             (bl == 0 || fwrite(m->blobs[i].data, 1, bl, l->spill) == bl);
    }
    free(hdr);
    if (!ok || fflush(l->spill) != 0) {
        log_error("link: cannot write spill file %s: %s", l->spill_path, strerror(errno));
        return ERR_IO;
    }
    l->spill_wr = ftell(l->spill);
    l->n_spill++;
    l->stats.spilled++;
    return 0;
}

/* Reads the oldest spilled message into m. */
static int spill_read(pool_link *l, msg *m)
{
    uint32_t h32, nb;
    errbuf eb;
    if (fseek(l->spill, l->spill_rd, SEEK_SET) != 0 || fread(&h32, 4, 1, l->spill) != 1)
        return ERR_IO;
    char *hdr = xmalloc((size_t)h32 + 1);
    int rc = fread(hdr, 1, h32, l->spill) == h32 ? msg_decode(m, hdr, h32, &eb) : ERR_IO;
    free(hdr);
    if (rc == 0 && fread(&nb, 4, 1, l->spill) != 1)
        rc = ERR_IO;
    for (uint32_t i = 0; rc == 0 && i < nb; i++) {
        uint64_t bl;
        if (fread(&bl, 8, 1, l->spill) != 1) {
            rc = ERR_IO;
            break;
        }
        void *data = xmalloc(bl > 0 ? (size_t)bl : 1);
        if (bl > 0 && fread(data, 1, (size_t)bl, l->spill) != bl) {
            free(data);
            rc = ERR_IO;
            break;
        }
        msg_take_blob(m, data, (size_t)bl);
    }
    if (rc < 0) {
        log_error("link: spill file %s is unreadable at offset %ld", l->spill_path, l->spill_rd);
        return rc;
    }
    l->spill_rd = ftell(l->spill);
    l->n_spill--;
    if (l->n_spill == 0) {
        l->spill_rd = l->spill_wr = 0;
        if (ftruncate(fileno(l->spill), 0) != 0)
            log_warn("link: cannot truncate %s: %s", l->spill_path, strerror(errno));
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

static int mem_full(const pool_link *l, size_t add)
{
    return l->n_mem >= l->o.outbox_max_msgs ||
           (l->n_mem > 0 && l->bytes_mem + add > l->o.outbox_max_bytes);
}

static void append_mem(pool_link *l, msg *m)
{
    entry *e = xcalloc(1, sizeof *e);
    e->m = *m;
    memset(m, 0, sizeof *m);
    e->bytes = msg_bytes(&e->m);
    if (l->tail != NULL)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
    l->n_mem++;
    l->bytes_mem += e->bytes;
}

static uint64_t next_seq(pool_link *l, const char *job, int attempt)
{
    for (int i = 0; i < LINK_SEQ_SLOTS; i++)
        if (l->seqs[i].attempt == attempt && strcmp(l->seqs[i].job, job) == 0)
            return ++l->seqs[i].n;
    job_key *k = &l->seqs[l->seq_next_slot];
    l->seq_next_slot = (l->seq_next_slot + 1) % LINK_SEQ_SLOTS;
    snprintf(k->job, sizeof k->job, "%s", job);
    k->attempt = attempt;
    k->n = 1;
    return 1;
}

/* Gives m (its content is taken) the next seq and queues it. Under mu. */
static int enqueue_locked(pool_link *l, msg *m, const char *job, int attempt)
{
    msg_set_job(m, job, attempt, next_seq(l, job, attempt));
    if (m->type == MSG_FINISHED || m->type == MSG_FAILED) {
        if (strcmp(l->cur_job, job) == 0 && l->cur_attempt == attempt)
            l->cur_end_seq = m->seq;
        l->ready_sent = 0;
    }
    int rc = 0;
    if (l->n_spill > 0 || mem_full(l, msg_bytes(m))) {
        rc = spill_write(l, m);
        msg_deinit(m);
    } else {
        append_mem(l, m);
    }
    pthread_cond_broadcast(&l->cv);
    return rc;
}

static int enqueue(pool_link *l, msg *m, const char *job, int attempt)
{
    pthread_mutex_lock(&l->mu);
    int rc = enqueue_locked(l, m, job, attempt);
    pthread_mutex_unlock(&l->mu);
    wake(l);
    return rc;
}

static int job_args_ok(const char *job, int attempt)
{
    if (job == NULL || job[0] == '\0' || strlen(job) >= MSG_ID_MAX || attempt < 1) {
        log_error("link: bad job id or attempt (%s, %d)", job != NULL ? job : "NULL", attempt);
        return 0;
    }
    return 1;
}

int link_started(pool_link *l, const char *job_id, int attempt, long total_steps)
{
    if (!job_args_ok(job_id, attempt))
        return ERR_INVALID;
    msg m;
    msg_init(&m, MSG_STARTED);
    if (total_steps > 0)
        msg_set(&m, "total_steps", json_integer(total_steps));
    return enqueue(l, &m, job_id, attempt);
}

int link_metric(pool_link *l, const char *job_id, int attempt, const json_t *point)
{
    if (!job_args_ok(job_id, attempt))
        return ERR_INVALID;
    json_t *step = json_object_get(point, "step");
    if (!json_is_object(point) || !json_is_integer(step) || json_integer_value(step) < 0 ||
        json_object_size(point) < 2) {
        log_error("link: a metric point needs an integer \"step\" >= 0 and a value");
        return ERR_INVALID;
    }
    json_t *copy = json_deep_copy(point);
    pthread_mutex_lock(&l->mu);
    /* Join the newest unsent metric message of this attempt, if there is one. */
    entry *t = l->tail;
    if (l->n_spill == 0 && t != NULL && t->sent_ms == 0 && t->m.type == MSG_METRIC &&
        same_job(&t->m, job_id, attempt)) {
        json_t *pts = msg_get(&t->m, "points");
        if (json_array_size(pts) < LINK_BATCH_POINTS) {
            json_array_append_new(pts, copy);
            pthread_mutex_unlock(&l->mu);
            return 0;
        }
    }
    msg m;
    msg_init(&m, MSG_METRIC);
    msg_set(&m, "points", json_pack("[o]", copy));
    int rc = enqueue_locked(l, &m, job_id, attempt);
    pthread_mutex_unlock(&l->mu);
    wake(l);
    return rc;
}

int link_metric_value(pool_link *l, const char *job_id, int attempt, const char *name, double value,
                      long step, double epoch)
{
    if (name == NULL || name[0] == '\0' || strlen(name) >= 64 || strcmp(name, "step") == 0 ||
        strcmp(name, "time") == 0 || strcmp(name, "epoch") == 0 || step < 0) {
        log_error("link: bad metric name '%s' or step %ld", name != NULL ? name : "NULL", step);
        return ERR_INVALID;
    }
    json_t *p = json_pack("{s:I,s:f}", "step", (json_int_t)step, name, value);
    if (p == NULL) {
        log_error("link: metric %s: %g is not a finite number", name, value);
        return ERR_INVALID;
    }
    if (epoch >= 0)
        json_object_set_new(p, "epoch", json_real(epoch));
    int rc = link_metric(l, job_id, attempt, p);
    json_decref(p);
    return rc;
}

int link_log(pool_link *l, const char *job_id, int attempt, const char *level, const char *text)
{
    if (!job_args_ok(job_id, attempt) || text == NULL)
        return ERR_INVALID;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double t = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    msg m;
    msg_init(&m, MSG_LOG);
    msg_set(&m, "lines",
            json_pack("[{s:s,s:s,s:f}]", "level", level != NULL ? level : "info", "text", text,
                      "time", t));
    return enqueue(l, &m, job_id, attempt);
}

int link_checkpoint(pool_link *l, const char *job_id, int attempt, long step, const void *bytes,
                    size_t len)
{
    if (!job_args_ok(job_id, attempt) || step < 0 || (bytes == NULL && len > 0))
        return ERR_INVALID;
    msg m;
    msg_init(&m, MSG_CHECKPOINT);
    msg_set(&m, "step", json_integer(step));
    msg_add_blob(&m, bytes, len);
    return enqueue(l, &m, job_id, attempt);
}

/* Reads a whole file into a malloc'd buffer; 0 or ERR_IO. */
static int read_file(const char *path, void **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return ERR_IO;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    int rc = ERR_IO;
    if (size >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        *data = xmalloc((size_t)size + 1);
        if (fread(*data, 1, (size_t)size, f) == (size_t)size) {
            *len = (size_t)size;
            rc = 0;
        } else {
            free(*data);
            *data = NULL;
        }
    }
    fclose(f);
    return rc;
}

int link_checkpoint_file(pool_link *l, const char *job_id, int attempt, long step, const char *path)
{
    if (!job_args_ok(job_id, attempt) || step < 0 || path == NULL)
        return ERR_INVALID;
    void *data;
    size_t len;
    if (read_file(path, &data, &len) < 0) {
        log_error("link: cannot read checkpoint %s: %s", path, strerror(errno));
        return ERR_IO;
    }
    msg m;
    msg_init(&m, MSG_CHECKPOINT);
    msg_set(&m, "step", json_integer(step));
    msg_take_blob(&m, data, len);
    return enqueue(l, &m, job_id, attempt);
}

int link_finished(pool_link *l, const char *job_id, int attempt, int cancelled,
                  const json_t *result, const link_artifact *arts, int n_arts, errbuf *eb)
{
    if (!job_args_ok(job_id, attempt))
        return err_set(eb, ERR_INVALID, "link: bad job id or attempt");
    if (n_arts < 0 || n_arts > MSG_MAX_BLOBS)
        return err_set(eb, ERR_INVALID, "link: at most %d artifacts", MSG_MAX_BLOBS);
    if (result != NULL && !json_is_object(result))
        return err_set(eb, ERR_INVALID, "link: the result must be a JSON object");
    msg m;
    msg_init(&m, MSG_FINISHED);
    msg_set(&m, "status", json_string(cancelled ? "cancelled" : "succeeded"));
    msg_set(&m, "result", result != NULL ? json_deep_copy(result) : json_object());
    json_t *list = json_array();
    int rc = 0;
    for (int i = 0; i < n_arts; i++) {
        if (arts[i].name == NULL || !msg_name_ok(arts[i].name)) {
            rc = err_set(eb, ERR_INVALID, "link: artifact name '%s' is not a safe file name",
                         arts[i].name != NULL ? arts[i].name : "NULL");
            break;
        }
        if (arts[i].bytes != NULL || arts[i].path == NULL) {
            msg_add_blob(&m, arts[i].bytes, arts[i].bytes != NULL ? arts[i].len : 0);
        } else {
            void *data;
            size_t size;
            if (read_file(arts[i].path, &data, &size) < 0) {
                rc = err_set(eb, ERR_IO, "link: cannot read artifact %s from %s: %s", arts[i].name,
                             arts[i].path, strerror(errno));
                break;
            }
            msg_take_blob(&m, data, size);
        }
        json_array_append_new(list, json_pack("{s:s,s:I}", "name", arts[i].name, "size",
                                              (json_int_t)m.blobs[m.n_blobs - 1].len));
    }
    msg_set(&m, "artifacts", list);
    if (rc < 0) {
        msg_deinit(&m);
        return rc;
    }
    rc = enqueue(l, &m, job_id, attempt);
    if (rc < 0)
        return err_set(eb, rc, "link: cannot queue the finished message (spill file)");
    return 0;
}

int link_failed(pool_link *l, const char *job_id, int attempt, const char *reason,
                const char *message)
{
    if (!job_args_ok(job_id, attempt) || reason == NULL || reason[0] == '\0' ||
        strlen(reason) >= 64 || message == NULL)
        return ERR_INVALID;
    msg m;
    msg_init(&m, MSG_FAILED);
    msg_set(&m, "reason", json_string(reason));
    msg_set(&m, "message", json_string(message[0] != '\0' ? message : "(no message)"));
    return enqueue(l, &m, job_id, attempt);
}

int link_cancel_requested(pool_link *l, const char *job_id, int attempt)
{
    int yes = 0;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < LINK_CANCEL_SLOTS && !yes; i++)
        yes = l->cancels[i].attempt == attempt && strcmp(l->cancels[i].job, job_id) == 0;
    pthread_mutex_unlock(&l->mu);
    return yes;
}

static void deadline(struct timespec *ts, int timeout_ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int link_flush(pool_link *l, int timeout_ms)
{
    struct timespec ts;
    deadline(&ts, timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&l->mu);
    while (l->n_mem + l->n_spill > 0 && rc == 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&l->cv, &l->mu);
        else if (pthread_cond_timedwait(&l->cv, &l->mu, &ts) == ETIMEDOUT)
            rc = l->n_mem + l->n_spill > 0 ? ERR_TIMEOUT : 0;
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int link_wait_assign(pool_link *l, int timeout_ms, link_assignment *a)
{
    memset(a, 0, sizeof *a);
    struct timespec ts;
    deadline(&ts, timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&l->mu);
    l->waiting = 1;
    wake(l);
    while (l->n_pend == 0 && !l->interrupted && rc == 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&l->cv, &l->mu);
        else if (pthread_cond_timedwait(&l->cv, &l->mu, &ts) == ETIMEDOUT)
            rc = ERR_TIMEOUT;
    }
    if (l->interrupted) {
        rc = ERR_CANCELLED;
    } else if (l->n_pend > 0) {
        rc = 0;
        *a = l->pend[0];
        memmove(&l->pend[0], &l->pend[1], (size_t)(l->n_pend - 1) * sizeof l->pend[0]);
        l->n_pend--;
        snprintf(l->cur_job, sizeof l->cur_job, "%s", a->job_id);
        l->cur_attempt = a->attempt;
        l->cur_end_seq = 0;
    }
    l->waiting = 0;
    pthread_mutex_unlock(&l->mu);
    return rc;
}

void link_set_cached(pool_link *l, const char *const *sha256, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n && i < MSG_MAX_CACHED; i++)
        json_array_append_new(a, json_string(sha256[i]));
    pthread_mutex_lock(&l->mu);
    json_decref(l->cached);
    l->cached = a;
    pthread_mutex_unlock(&l->mu);
}

void link_assignment_free(link_assignment *a)
{
    json_decref(a->spec);
    free(a->checkpoint);
    free(a->init);
    memset(a, 0, sizeof *a);
}

void link_interrupt(pool_link *l)
{
    pthread_mutex_lock(&l->mu);
    l->interrupted = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

void link_get_stats(pool_link *l, link_stats *s)
{
    pthread_mutex_lock(&l->mu);
    *s = l->stats;
    s->queued = l->n_mem + l->n_spill;
    pthread_mutex_unlock(&l->mu);
}

/* ---- the link thread ----------------------------------------------------------- */

/* Sends m; 0, or -1 when the socket cannot take it now. Under mu. */
static int send_msg(pool_link *l, const msg *m)
{
    size_t len;
    char *hdr = msg_encode(m, &len);
    int rc = zmq_send(l->sock, hdr, len, (m->n_blobs > 0 ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
    free(hdr);
    for (int i = 0; rc >= 0 && i < m->n_blobs; i++)
        rc = zmq_send(l->sock, m->blobs[i].data, m->blobs[i].len,
                      (i + 1 < m->n_blobs ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
    if (rc < 0)
        return -1;
    l->last_send = now_ms();
    return 0;
}

static int send_simple(pool_link *l, msg_type t)
{
    msg m;
    msg_init(&m, t);
    if (t == MSG_READY && l->cached != NULL)
        msg_set(&m, "cached", json_deep_copy(l->cached));
    int rc = send_msg(l, &m);
    msg_deinit(&m);
    return rc;
}

static void disconnect(pool_link *l, int64_t t)
{
    if (l->sock != NULL) {
        zmq_close(l->sock);
        l->sock = NULL;
        l->stats.reconnects++;
    }
    l->hello_sent = l->ready_sent = l->welcomed = 0;
    l->stats.connected = 0;
    for (entry *e = l->head; e != NULL; e = e->next)
        e->sent = 0;
    l->reconnect_at = t + l->backoff_ms;
    l->backoff_ms =
        l->backoff_ms * 2 > l->o.reconnect_max_ms ? l->o.reconnect_max_ms : l->backoff_ms * 2;
}

static int connect_sock(pool_link *l, int64_t t)
{
    l->sock = zmq_socket(l->ctx, ZMQ_DEALER);
    if (l->sock == NULL)
        return -1;
    int zero = 0, one = 1, hwm = 100000;
    zmq_setsockopt(l->sock, ZMQ_ROUTING_ID, l->pool_id, strlen(l->pool_id));
    zmq_setsockopt(l->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(l->sock, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(l->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (l->curve_server[0] != '\0') {
        zmq_setsockopt(l->sock, ZMQ_CURVE_SERVERKEY, l->curve_server, sizeof l->curve_server);
        zmq_setsockopt(l->sock, ZMQ_CURVE_PUBLICKEY, l->curve_public, sizeof l->curve_public);
        zmq_setsockopt(l->sock, ZMQ_CURVE_SECRETKEY, l->curve_secret, sizeof l->curve_secret);
    } else if (l->token[0] != '\0') {
        zmq_setsockopt(l->sock, ZMQ_PLAIN_USERNAME, l->pool_id, strlen(l->pool_id));
        zmq_setsockopt(l->sock, ZMQ_PLAIN_PASSWORD, l->token, strlen(l->token));
    }
    if (zmq_connect(l->sock, l->endpoint) != 0) {
        log_error("link: cannot connect to %s: %s", l->endpoint, zmq_strerror(errno));
        zmq_close(l->sock);
        l->sock = NULL;
        return -1;
    }
    l->last_recv = t;
    l->last_ack = t;
    l->last_send = 0;
    return 0;
}

static void send_hello(pool_link *l)
{
    msg m;
    msg_init(&m, MSG_HELLO);
    msg_set(&m, "pool_id", json_string(l->pool_id));
    msg_set(&m, "ranks", json_integer(l->ranks));
    msg_set(&m, "cores", json_integer(l->cores));
    msg_set(&m, "version", json_string(l->version));
    if (l->engine[0] != '\0')
        msg_set(&m, "engine", json_string(l->engine));
    msg_set(&m, "hosts", json_incref(l->hosts));
    if (l->memory > 0)
        msg_set(&m, "memory", json_integer((json_int_t)l->memory));
    if (l->rank_memory > 0)
        msg_set(&m, "rank_memory", json_integer((json_int_t)l->rank_memory));
    msg_set(&m, "current",
            l->cur_job[0] ? json_pack("{s:s,s:i}", "job_id", l->cur_job, "attempt", l->cur_attempt)
                          : json_null());
    if (send_msg(l, &m) == 0)
        l->hello_sent = 1;
    msg_deinit(&m);
}

/* Marks every unacked message for sending again (go-back-N). */
static void go_back(pool_link *l, int64_t t)
{
    for (entry *e = l->head; e != NULL; e = e->next)
        e->sent = 0;
    l->last_goback = t;
    l->last_ack = t;
}

static void on_ack(pool_link *l, const msg *m)
{
    entry **pp = &l->head, *prev = NULL;
    while (*pp != NULL) {
        entry *e = *pp;
        int same = same_job(&e->m, m->job_id, m->attempt);
        if (same && e->m.seq > m->seq)
            break; /* a job's messages are in seq order: nothing further is acked */
        if (same) {
            *pp = e->next;
            if (l->tail == e)
                l->tail = prev;
            l->n_mem--;
            l->bytes_mem -= e->bytes;
            l->stats.acked++;
            int64_t t = now_ms();
            /* Karn: only a message sent once gives a round-trip sample, and
             * only a sample brings a backed-off timeout down again. */
            if (!e->resent && e->sent_ms > 0) {
                int sample = (int)(t - e->sent_ms);
                l->srtt = l->srtt == 0 ? sample : (7 * l->srtt + sample) / 8;
                l->resend_wait = 4 * l->srtt > l->o.resend_ms ? 4 * l->srtt : l->o.resend_ms;
            }
            msg_deinit(&e->m);
            free(e);
            continue;
        }
        prev = e;
        pp = &e->next;
    }
    int64_t t = now_ms();
    l->last_ack = t;
    /* The server saw a gap (a message it never got, e.g. dropped while it
     * did not know this pool): go back now, but at most once per round trip. */
    if (json_is_true(msg_get(m, "gap")) &&
        t - l->last_goback >= (l->srtt * 2 > 50 ? l->srtt * 2 : 50))
        go_back(l, t);
    if (l->cur_end_seq > 0 && m->seq >= l->cur_end_seq && m->attempt == l->cur_attempt &&
        strcmp(m->job_id, l->cur_job) == 0) {
        l->cur_job[0] = '\0';
        l->cur_attempt = 0;
        l->cur_end_seq = 0;
    }
    pthread_cond_broadcast(&l->cv);
}

static void on_assign(pool_link *l, msg *m)
{
    if (l->cur_job[0] && same_job(m, l->cur_job, l->cur_attempt))
        return; /* sent again by the server; we have it */
    for (int i = 0; i < l->n_pend; i++)
        if (strcmp(l->pend[i].job_id, m->job_id) == 0 && l->pend[i].attempt == m->attempt)
            return;
    if (l->n_pend == LINK_MAX_PENDING_ASSIGN) {
        log_warn("link: assignment of job %s dropped: %d already waiting", m->job_id, l->n_pend);
        return;
    }
    link_assignment *a = &l->pend[l->n_pend++];
    memset(a, 0, sizeof *a);
    snprintf(a->job_id, sizeof a->job_id, "%s", m->job_id);
    a->attempt = m->attempt;
    a->spec = json_incref(msg_get(m, "spec"));
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
    log_info("link: assigned job %s attempt %d%s", a->job_id, a->attempt,
             a->checkpoint ? " (resuming)" : "");
    pthread_cond_broadcast(&l->cv);
}

static void on_cancel(pool_link *l, const msg *m)
{
    for (int i = 0; i < LINK_CANCEL_SLOTS; i++)
        if (same_job(m, l->cancels[i].job, l->cancels[i].attempt) &&
            l->cancels[i].attempt == m->attempt)
            return;
    job_key *k = &l->cancels[l->cancel_next_slot];
    l->cancel_next_slot = (l->cancel_next_slot + 1) % LINK_CANCEL_SLOTS;
    snprintf(k->job, sizeof k->job, "%s", m->job_id);
    k->attempt = m->attempt;
    log_info("link: cancel of job %s attempt %d", m->job_id, m->attempt);
}

/* The server asked for a hello: it restarted while ZeroMQ kept (or re-made)
 * this connection, or it gave up on this pool. Say hello on the same socket
 * and send every unacked message again after its welcome. While that hello is
 * unanswered, further requests are ignored (welcomed is 0). Under mu. */
static void hello_again(pool_link *l)
{
    log_info("link: %s does not know this pool (restarted?); saying hello again", l->endpoint);
    l->hello_sent = l->ready_sent = l->welcomed = 0;
    for (entry *e = l->head; e != NULL; e = e->next)
        e->sent = 0;
}

/* Reads every waiting message. Under mu. */
static void receive_all(pool_link *l, int64_t t)
{
    for (;;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, l->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            return;
        }
        l->last_recv = t;
        msg m;
        errbuf eb;
        int rc = msg_decode(&m, zmq_msg_data(&part), zmq_msg_size(&part), &eb);
        int more = zmq_msg_more(&part);
        zmq_msg_close(&part);
        while (more) {
            zmq_msg_init(&part);
            if (zmq_msg_recv(&part, l->sock, 0) < 0) {
                zmq_msg_close(&part);
                rc = ERR_PEER;
                break;
            }
            if (rc == 0)
                msg_add_blob(&m, zmq_msg_data(&part), zmq_msg_size(&part));
            more = zmq_msg_more(&part);
            zmq_msg_close(&part);
        }
        if (rc == 0 && msg_check_blobs(&m, &eb) < 0)
            rc = ERR_INVALID;
        if (rc < 0) {
            log_warn("link: message from the server dropped: %s", eb.msg);
            msg_deinit(&m);
            continue;
        }
        switch (m.type) {
        case MSG_WELCOME:
            l->hb_ms = (int)msg_int(&m, "heartbeat_ms", l->hb_ms);
            l->liveness = (int)msg_int(&m, "liveness", l->liveness);
            l->welcomed = 1;
            l->stats.connected = 1;
            l->backoff_ms = l->o.reconnect_min_ms;
            log_info("link: connected to %s as %s", l->endpoint, l->pool_id);
            break;
        case MSG_ASSIGN:
            on_assign(l, &m);
            break;
        case MSG_CANCEL:
            on_cancel(l, &m);
            break;
        case MSG_ACK:
            on_ack(l, &m);
            break;
        case MSG_HEARTBEAT:
            if (json_is_true(msg_get(&m, "hello")) && l->welcomed)
                hello_again(l);
            break;
        default:
            log_warn("link: unexpected %s from the server", msg_type_name(m.type));
        }
        msg_deinit(&m);
    }
}

/* Sends what is due: hello, the outbox, ready, a heartbeat. Under mu. */
static void send_due(pool_link *l, int64_t t)
{
    if (!l->hello_sent) {
        send_hello(l);
        if (!l->hello_sent)
            return; /* not connected yet (ZMQ_IMMEDIATE) */
    }
    /* Refill memory from the spill file, in order. */
    while (l->n_spill > 0 && !mem_full(l, 0)) {
        msg m;
        if (spill_read(l, &m) < 0) {
            msg_deinit(&m);
            break;
        }
        append_mem(l, &m);
    }
    /* Acks stopped: go back and send every unacked message again. Only when
     * no ack at all came for resend_wait (at least resend_ms and 4 smoothed
     * round trips), doubling after each resend: a server that still acks is
     * busy, not missing messages (a missing one is reported as a gap), and
     * must not be buried under copies of what it is working on. */
    if (l->head != NULL && l->head->sent && t - l->head->sent_ms >= l->resend_wait &&
        t - l->last_ack >= l->resend_wait) {
        go_back(l, t);
        l->resend_wait = l->resend_wait * 2 > 60000 ? 60000 : l->resend_wait * 2;
    }
    int k = 0;
    for (entry *e = l->head; e != NULL && k < LINK_WINDOW; e = e->next, k++) {
        if (e->sent)
            continue;
        if (send_msg(l, &e->m) < 0)
            break;
        if (e->sent_ms > 0) {
            l->stats.resent++;
            e->resent = 1;
        }
        e->sent = 1;
        e->sent_ms = t;
        l->stats.sent++;
    }
    /* Idle only once the last job's end message is acked: a ready must never
     * overtake it (the server would take the job for lost). */
    int idle = l->cur_job[0] == '\0';
    if (l->waiting && idle && l->n_pend == 0 && !l->ready_sent && send_simple(l, MSG_READY) == 0)
        l->ready_sent = 1;
    if (t - l->last_send >= l->hb_ms)
        send_simple(l, MSG_HEARTBEAT);
}

static void *run(void *arg)
{
    pool_link *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        int64_t t = now_ms();
        if (l->sock == NULL && t >= l->reconnect_at && connect_sock(l, t) < 0)
            l->reconnect_at = t + l->o.reconnect_max_ms;
        long timeout;
        if (l->sock == NULL) {
            timeout = (long)(l->reconnect_at - t);
        } else {
            int64_t next_hb = l->last_send + l->hb_ms - t;
            timeout = next_hb < 0 ? 0 : (long)next_hb;
            if (timeout > 50)
                timeout = 50; /* also the resend and liveness checks */
            if (!l->hello_sent)
                timeout = 10;
        }
        if (timeout < 0)
            timeout = 0;
        zmq_pollitem_t items[2] = {{NULL, l->wake_fd[0], ZMQ_POLLIN, 0},
                                   {l->sock, 0, ZMQ_POLLIN, 0}};
        pthread_mutex_unlock(&l->mu);
        zmq_poll(items, l->sock != NULL ? 2 : 1, timeout);
        pthread_mutex_lock(&l->mu);
        if (items[0].revents & ZMQ_POLLIN) {
            char buf[64];
            while (read(l->wake_fd[0], buf, sizeof buf) > 0)
                ;
        }
        if (l->sock == NULL)
            continue;
        t = now_ms();
        receive_all(l, t);
        if (t - l->last_recv > (int64_t)l->hb_ms * l->liveness) {
            /* A server with tokens drops a pool without a valid one in the
             * handshake, silently: say what may be wrong. */
            log_warn("link: nothing from %s for %lld ms; reconnecting in %d ms%s", l->endpoint,
                     (long long)(t - l->last_recv), l->backoff_ms,
                     l->stats.connected   ? ""
                     : l->curve_server[0] ? " (is the server up, with this --server-key? does its "
                                            "pool keys file list this pool's public key under "
                                            "this --pool-id?)"
                     : l->token[0]        ? " (is the server up? does it know this pool token?)"
                                          : " (is the server up? one started with --tokens needs a "
                                            "pool token: --token or KILN_TOKEN)");
            disconnect(l, t);
            continue;
        }
        send_due(l, t);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int link_new(pool_link **out, const char *endpoint, const link_pool_info *info,
             const link_options *o, errbuf *eb)
{
    *out = NULL;
    if (endpoint == NULL || strlen(endpoint) >= 256 || strstr(endpoint, "://") == NULL)
        return err_set(eb, ERR_INVALID, "link: '%s' is not an endpoint like tcp://host:5555",
                       endpoint != NULL ? endpoint : "NULL");
    if (info == NULL || info->ranks < 1 || info->cores < 1)
        return err_set(eb, ERR_INVALID, "link: pool info needs ranks >= 1 and cores >= 1");
    pool_link *l = xcalloc(1, sizeof *l);
    snprintf(l->endpoint, sizeof l->endpoint, "%s", endpoint);
    if (info->pool_id != NULL && info->pool_id[0] != '\0') {
        if (strlen(info->pool_id) >= MSG_ID_MAX || strchr(info->pool_id, ' ') != NULL) {
            free(l);
            return err_set(eb, ERR_INVALID, "link: pool id '%s' is too long or has spaces",
                           info->pool_id);
        }
        snprintf(l->pool_id, sizeof l->pool_id, "%s", info->pool_id);
    } else {
        char host[64] = "pool";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        snprintf(l->pool_id, sizeof l->pool_id, "%.40s-%ld", host, (long)getpid());
    }
    l->ranks = info->ranks;
    l->cores = info->cores;
    l->memory = info->memory;
    l->rank_memory = info->rank_memory;
    l->hosts = json_array();
    for (int i = 0; i < info->n_hosts && info->hosts != NULL; i++)
        json_array_append_new(l->hosts, json_string(info->hosts[i]));
    snprintf(l->version, sizeof l->version, "%s", info->version ? info->version : "unknown");
    snprintf(l->engine, sizeof l->engine, "%s", info->engine ? info->engine : "");
    if (o != NULL)
        l->o = *o;
    else
        link_options_default(&l->o);
    snprintf(l->token, sizeof l->token, "%s", l->o.token != NULL ? l->o.token : "");
    l->o.token = NULL; /* borrowed from the caller: l->token holds the copy */
    if (l->o.curve_server_key != NULL) {
        snprintf(l->curve_server, sizeof l->curve_server, "%s", l->o.curve_server_key);
        snprintf(l->curve_secret, sizeof l->curve_secret, "%s",
                 l->o.curve_secret != NULL ? l->o.curve_secret : "");
    }
    l->o.curve_server_key = l->o.curve_secret = NULL; /* borrowed, as the token */
    link_options d;
    link_options_default(&d);
    if (l->o.heartbeat_ms <= 0)
        l->o.heartbeat_ms = d.heartbeat_ms;
    if (l->o.liveness <= 0)
        l->o.liveness = d.liveness;
    if (l->o.reconnect_min_ms <= 0)
        l->o.reconnect_min_ms = d.reconnect_min_ms;
    if (l->o.reconnect_max_ms < l->o.reconnect_min_ms)
        l->o.reconnect_max_ms = l->o.reconnect_min_ms;
    if (l->o.resend_ms <= 0)
        l->o.resend_ms = d.resend_ms;
    if (l->o.outbox_max_msgs == 0)
        l->o.outbox_max_msgs = d.outbox_max_msgs;
    if (l->o.outbox_max_bytes == 0)
        l->o.outbox_max_bytes = d.outbox_max_bytes;
    l->hb_ms = l->o.heartbeat_ms;
    l->liveness = l->o.liveness;
    l->backoff_ms = l->o.reconnect_min_ms;
    l->resend_wait = l->o.resend_ms;
    int rc = spill_open(l, eb);
    if (rc < 0)
        goto fail;
    if (l->curve_server[0] != '\0' && (strlen(l->curve_server) != 40 || !zmq_has("curve") ||
                                       zmq_curve_public(l->curve_public, l->curve_secret) != 0)) {
        rc = err_set(eb, ERR_INVALID,
                     "link: the CURVE keys are not usable (the server key and the pool's secret "
                     "key are 40 Z85 characters each, from kiln-server curve-keypair)");
        goto fail;
    }
    if (pipe(l->wake_fd) != 0) {
        rc = err_set(eb, ERR_IO, "link: pipe: %s", strerror(errno));
        goto fail;
    }
    fcntl(l->wake_fd[0], F_SETFL, O_NONBLOCK);
    fcntl(l->wake_fd[1], F_SETFL, O_NONBLOCK);
    l->ctx = l->o.zmq_context;
    if (l->ctx == NULL) {
        l->ctx = zmq_ctx_new();
        l->own_ctx = 1;
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&l->thread, NULL, run, l) != 0) {
        rc = err_set(eb, ERR_INTERNAL, "link: cannot start its thread");
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        if (l->own_ctx)
            zmq_ctx_term(l->ctx);
        goto fail;
    }
    *out = l;
    return 0;
fail:
    if (l->spill != NULL) {
        fclose(l->spill);
        unlink(l->spill_path);
    }
    if (l->wake_fd[0] > 0) {
        close(l->wake_fd[0]);
        close(l->wake_fd[1]);
    }
    json_decref(l->hosts);
    json_decref(l->cached);
    free(l);
    return rc;
}

void link_free(pool_link *l)
{
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    l->interrupted = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    wake(l);
    pthread_join(l->thread, NULL);
    if (l->sock != NULL)
        zmq_close(l->sock);
    if (l->own_ctx)
        zmq_ctx_term(l->ctx);
    while (l->head != NULL) {
        entry *e = l->head;
        l->head = e->next;
        msg_deinit(&e->m);
        free(e);
    }
    for (int i = 0; i < l->n_pend; i++)
        link_assignment_free(&l->pend[i]);
    fclose(l->spill);
    unlink(l->spill_path);
    close(l->wake_fd[0]);
    close(l->wake_fd[1]);
    json_decref(l->hosts);
    json_decref(l->cached);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
