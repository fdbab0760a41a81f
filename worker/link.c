/* link.c - the socket shell of the pool link (see link.h). The only ZeroMQ file of the worker.
 *
 * The protocol itself (outbox, spill file, acks, resends, heartbeats, the
 * handshake, assignments and cancels) is worker/link_core.c; this file owns
 * the DEALER socket, the link thread, the wake pipe and the mutex. One mutex
 * guards the core; the link thread also holds it while it sends (zmq_send
 * with ZMQ_DONTWAIT only copies).
 */
#include "link.h"

#include "common/clock.h"
#include "common/files.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "link_core.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define LINK_ZMTP_PING_MS    500
#define LINK_ZMTP_TIMEOUT_MS 1500
/* A TCP connect to an address nobody holds any more (a server container restarted
 * under a new one) fails only when ARP gives up, 3 s later; ZeroMQ resolves the
 * server's name again on each attempt, so a short attempt finds the new address
 * sooner. 1 s still allows for a slow first handshake across sites. */
#define LINK_CONNECT_TIMEOUT_MS 1000

struct pool_link {
    char endpoint[256];
    char token[300];                                           /* PLAIN password, or "" */
    char curve_server[41], curve_secret[41], curve_public[41]; /* Z85; "" = no CURVE */
    char pool_id[MSG_ID_MAX];
    link_options o;
    void *ctx;
    int own_ctx;
    pthread_t thread;
    int wake_fd[2];
    int wake_pending; /* a byte is in wake_fd (under mu) */
    pthread_mutex_t mu;
    pthread_cond_t cv;

    /* Shared, under mu. */
    link_core *core;
    int interrupted, stop;

    /* Link thread only. */
    void *sock;
    int64_t reconnect_at;
};

const char *link_pool_id(const pool_link *l)
{
    return l->pool_id;
}

/* Wakes the link thread: a byte in its pipe, unless one is there already (the
 * thread clears wake_pending when it empties the pipe, and then sees everything
 * queued before). Under mu: one system call per batch of queued work, not per
 * metric point. */
static void wake(pool_link *l)
{
    if (l->wake_pending)
        return;
    l->wake_pending = 1;
    char c = 1;
    if (write(l->wake_fd[1], &c, 1) < 0 && errno != EAGAIN)
        log_warn("link: cannot wake the link thread: %s", strerror(errno));
}

/* Queues m (its content is taken) for (job, attempt). */
static int enqueue(pool_link *l, msg *m, const char *job, int attempt)
{
    pthread_mutex_lock(&l->mu);
    int rc = lcore_enqueue(l->core, m, job, attempt);
    pthread_cond_broadcast(&l->cv);
    wake(l);
    pthread_mutex_unlock(&l->mu);
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
    pthread_mutex_lock(&l->mu);
    int rc = lcore_metric(l->core, job_id, attempt, json_deep_copy(point));
    pthread_cond_broadcast(&l->cv);
    wake(l);
    pthread_mutex_unlock(&l->mu);
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
    double t = clock_wall_s();
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

int link_checkpoint_file(pool_link *l, const char *job_id, int attempt, long step, const char *path)
{
    if (!job_args_ok(job_id, attempt) || step < 0 || path == NULL)
        return ERR_INVALID;
    void *data;
    size_t len;
    errbuf reb;
    if (files_read(path, &data, &len, &reb) < 0) {
        log_error("link: cannot read checkpoint: %s", reb.msg);
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
            errbuf reb;
            if (files_read(arts[i].path, &data, &size, &reb) < 0) {
                rc =
                    err_set(eb, ERR_IO, "link: cannot read artifact %s: %s", arts[i].name, reb.msg);
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
    pthread_mutex_lock(&l->mu);
    int yes = lcore_cancel_requested(l->core, job_id, attempt);
    pthread_mutex_unlock(&l->mu);
    return yes;
}

int link_flush(pool_link *l, int timeout_ms)
{
    struct timespec ts;
    clock_deadline(&ts, CLOCK_MONOTONIC, timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&l->mu);
    while (lcore_queued(l->core) > 0 && rc == 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&l->cv, &l->mu);
        else if (pthread_cond_timedwait(&l->cv, &l->mu, &ts) == ETIMEDOUT)
            rc = lcore_queued(l->core) > 0 ? ERR_TIMEOUT : 0;
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int link_wait_assign(pool_link *l, int timeout_ms, link_assignment *a)
{
    memset(a, 0, sizeof *a);
    struct timespec ts;
    clock_deadline(&ts, CLOCK_MONOTONIC, timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&l->mu);
    lcore_set_waiting(l->core, 1);
    wake(l);
    while (lcore_pending(l->core) == 0 && !l->interrupted && rc == 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&l->cv, &l->mu);
        else if (pthread_cond_timedwait(&l->cv, &l->mu, &ts) == ETIMEDOUT)
            rc = ERR_TIMEOUT;
    }
    if (l->interrupted)
        rc = ERR_CANCELLED;
    else if (lcore_take_assign(l->core, a))
        rc = 0;
    lcore_set_waiting(l->core, 0);
    pthread_mutex_unlock(&l->mu);
    return rc;
}

void link_set_free_ranks(pool_link *l, int free_ranks)
{
    pthread_mutex_lock(&l->mu);
    lcore_set_free_ranks(l->core, free_ranks);
    wake(l);
    pthread_mutex_unlock(&l->mu);
}

void link_set_cached(pool_link *l, const char *const *sha256, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n && i < MSG_MAX_CACHED; i++)
        json_array_append_new(a, json_string(sha256[i]));
    pthread_mutex_lock(&l->mu);
    lcore_set_cached(l->core, a);
    pthread_mutex_unlock(&l->mu);
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
    lcore_get_stats(l->core, s);
    pthread_mutex_unlock(&l->mu);
}

/* ---- the link thread ----------------------------------------------------------- */

/* The core's send callback: 0, or -1 when the socket cannot take m now. Under mu. */
static int send_msg(void *ctx, const msg *m)
{
    pool_link *l = ctx;
    if (l->sock == NULL)
        return -1;
    size_t len;
    char *hdr = msg_encode(m, &len);
    int rc = zmq_send(l->sock, hdr, len, (m->n_blobs > 0 ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
    free(hdr);
    for (int i = 0; rc >= 0 && i < m->n_blobs; i++)
        rc = zmq_send(l->sock, m->blobs[i].data, m->blobs[i].len,
                      (i + 1 < m->n_blobs ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
    return rc < 0 ? -1 : 0;
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
    /* ZMTP heartbeats: a connection whose peer vanished without closing it (a server
     * container restarted under a new address) is dropped and made again within
     * LINK_ZMTP_TIMEOUT_MS, so the pool reaches a restarted server long before its own
     * liveness timeout, inside the server's restart window. */
    int ping_ms = LINK_ZMTP_PING_MS, dead_ms = LINK_ZMTP_TIMEOUT_MS;
    zmq_setsockopt(l->sock, ZMQ_HEARTBEAT_IVL, &ping_ms, sizeof ping_ms);
    zmq_setsockopt(l->sock, ZMQ_HEARTBEAT_TIMEOUT, &dead_ms, sizeof dead_ms);
    int connect_ms = LINK_CONNECT_TIMEOUT_MS;
    zmq_setsockopt(l->sock, ZMQ_CONNECT_TIMEOUT, &connect_ms, sizeof connect_ms);
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
    lcore_connected(l->core, t);
    return 0;
}

/* Reads one message (header and blobs) from the socket into m: 0, 1 when
 * nothing is waiting, or ERR_* when it is malformed (eb says why). */
static int receive_one(pool_link *l, msg *m, errbuf *eb)
{
    zmq_msg_t part;
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, l->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&part);
        return 1;
    }
    int rc = msg_decode(m, zmq_msg_data(&part), zmq_msg_size(&part), eb);
    int more = zmq_msg_more(&part);
    zmq_msg_close(&part);
    while (more) {
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, l->sock, 0) < 0) {
            zmq_msg_close(&part);
            if (rc == 0)
                rc = err_set(eb, ERR_PEER, "the rest of a message did not come");
            break;
        }
        if (rc == 0)
            msg_add_blob(m, zmq_msg_data(&part), zmq_msg_size(&part));
        more = zmq_msg_more(&part);
        zmq_msg_close(&part);
    }
    if (rc == 0 && msg_check_blobs(m, eb) < 0)
        rc = ERR_INVALID;
    return rc;
}

/* Reads every waiting message into the core. Under mu. */
static void receive_all(pool_link *l, int64_t t)
{
    for (;;) {
        msg m;
        errbuf eb;
        memset(&m, 0, sizeof m);
        int rc = receive_one(l, &m, &eb);
        if (rc == 1)
            break;
        if (rc < 0) {
            lcore_heard(l->core, t);
            log_warn("link: message from the server dropped: %s", eb.msg);
        } else {
            lcore_receive(l->core, &m, t);
        }
        msg_deinit(&m);
    }
    pthread_cond_broadcast(&l->cv);
}

/* The server went silent: close the socket and wait before the next one. */
static void reconnect_later(pool_link *l, int64_t t)
{
    link_stats s;
    lcore_get_stats(l->core, &s);
    zmq_close(l->sock);
    l->sock = NULL;
    int wait = lcore_disconnected(l->core, t);
    l->reconnect_at = t + wait;
    /* A server with tokens drops a pool without a valid one in the
     * handshake, silently: say what may be wrong. */
    log_warn("link: nothing from %s for %lld ms; reconnecting in %d ms%s", l->endpoint,
             (long long)lcore_silent_ms(l->core, t), wait,
             s.connected          ? ""
             : l->curve_server[0] ? " (is the server up, with this --server-key? does its "
                                    "pool keys file list this pool's public key under "
                                    "this --pool-id?)"
             : l->token[0]        ? " (is the server up? does it know this pool token?)"
                                  : " (is the server up? one started with --tokens needs a "
                                    "pool token: --token or KILN_TOKEN)");
}

static void *run(void *arg)
{
    pool_link *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        int64_t t = clock_mono_ms();
        if (l->sock == NULL && t >= l->reconnect_at && connect_sock(l, t) < 0)
            l->reconnect_at = t + l->o.reconnect_max_ms;
        long timeout = l->sock == NULL ? (long)(l->reconnect_at - t) : lcore_poll_ms(l->core, t);
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
            l->wake_pending = 0;
        }
        if (l->sock == NULL)
            continue;
        t = clock_mono_ms();
        receive_all(l, t);
        if (lcore_tick(l->core, t) == LCORE_LOST)
            reconnect_later(l, t);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* Copies the caller's options into l->o with defaults for what is unset; the
 * secrets go to l's own buffers (the caller's pointers are not kept). */
static void take_options(pool_link *l, const link_options *o)
{
    if (o != NULL)
        l->o = *o;
    else
        link_options_default(&l->o);
    snprintf(l->token, sizeof l->token, "%s", l->o.token != NULL ? l->o.token : "");
    if (l->o.curve_server_key != NULL) {
        snprintf(l->curve_server, sizeof l->curve_server, "%s", l->o.curve_server_key);
        snprintf(l->curve_secret, sizeof l->curve_secret, "%s",
                 l->o.curve_secret != NULL ? l->o.curve_secret : "");
    }
    l->o.token = l->o.curve_server_key = l->o.curve_secret = NULL;
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
}

/* Checks endpoint and info and fills l's endpoint and pool id. */
static int take_identity(pool_link *l, const char *endpoint, const link_pool_info *info, errbuf *eb)
{
    if (endpoint == NULL || strlen(endpoint) >= 256 || strstr(endpoint, "://") == NULL)
        return err_set(eb, ERR_INVALID, "link: '%s' is not an endpoint like tcp://host:5555",
                       endpoint != NULL ? endpoint : "NULL");
    if (info == NULL || info->ranks < 1 || info->cores < 1)
        return err_set(eb, ERR_INVALID, "link: pool info needs ranks >= 1 and cores >= 1");
    snprintf(l->endpoint, sizeof l->endpoint, "%s", endpoint);
    if (info->pool_id != NULL && info->pool_id[0] != '\0') {
        if (strlen(info->pool_id) >= MSG_ID_MAX || strchr(info->pool_id, ' ') != NULL)
            return err_set(eb, ERR_INVALID, "link: pool id '%s' is too long or has spaces",
                           info->pool_id);
        snprintf(l->pool_id, sizeof l->pool_id, "%s", info->pool_id);
    } else {
        char host[64] = "pool";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        snprintf(l->pool_id, sizeof l->pool_id, "%.40s-%ld", host, (long)getpid());
    }
    return 0;
}

/* Initialises the mutex and the condition variable (on the monotonic clock). */
static void init_sync(pool_link *l)
{
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
}

int link_new(pool_link **out, const char *endpoint, const link_pool_info *info,
             const link_options *o, errbuf *eb)
{
    *out = NULL;
    pool_link *l = xcalloc(1, sizeof *l);
    int rc = take_identity(l, endpoint, info, eb);
    if (rc < 0)
        goto fail_free;
    take_options(l, o);
    if (l->curve_server[0] != '\0' && (strlen(l->curve_server) != 40 || !zmq_has("curve") ||
                                       zmq_curve_public(l->curve_public, l->curve_secret) != 0)) {
        rc = err_set(eb, ERR_INVALID,
                     "link: the CURVE keys are not usable (the server key and the pool's secret "
                     "key are 40 Z85 characters each, from kiln-server curve-keypair)");
        goto fail_free;
    }
    link_pool_info id = *info;
    id.pool_id = l->pool_id;
    rc = lcore_new(&l->core, l->endpoint, &id, &l->o, send_msg, l, eb);
    if (rc < 0)
        goto fail_free;
    l->o.spill_dir = NULL; /* borrowed; the core has made its file */
    if (pipe(l->wake_fd) != 0) {
        rc = err_set(eb, ERR_IO, "link: pipe: %s", strerror(errno));
        goto fail_core;
    }
    fcntl(l->wake_fd[0], F_SETFL, O_NONBLOCK);
    fcntl(l->wake_fd[1], F_SETFL, O_NONBLOCK);
    l->ctx = l->o.zmq_context;
    if (l->ctx == NULL) {
        l->ctx = zmq_ctx_new();
        l->own_ctx = 1;
    }
    init_sync(l);
    if (pthread_create(&l->thread, NULL, run, l) != 0) {
        rc = err_set(eb, ERR_INTERNAL, "link: cannot start its thread");
        goto fail_sync;
    }
    *out = l;
    return 0;
fail_sync:
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    if (l->own_ctx)
        zmq_ctx_term(l->ctx);
    close(l->wake_fd[0]);
    close(l->wake_fd[1]);
fail_core:
    lcore_free(l->core);
fail_free:
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
    l->wake_pending = 0; /* this wake must reach the thread */
    wake(l);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    if (l->sock != NULL)
        zmq_close(l->sock);
    if (l->own_ctx)
        zmq_ctx_term(l->ctx);
    lcore_free(l->core);
    close(l->wake_fd[0]);
    close(l->wake_fd[1]);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
