/* broker.c - the ROUTER socket and its thread (see broker.h). The only ZeroMQ file of the server.
 *
 * The thread polls the socket and a wake pipe; it reads up to a batch of
 * messages at a time, hands each to the coordinator and flushes the batch
 * (one store transaction, then the acks), and ticks the coordinator.
 */
#include "broker.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/xalloc.h"
#include "server/coord.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define BROKER_READ_BATCH 256

struct broker {
    void *ctx;
    int own_ctx;
    void *sock;
    char endpoint[256];
    coord *co;
    int wake_fd[2];
    pthread_t thread;
    atomic_int stop;
    atomic_int running;
    server_stats *stats;
    const auth *auth;
    void *zap;            /* REP socket answering ZAP requests, when auth or CURVE */
    const poolkeys *keys; /* CURVE: the keys that may join (a pool id is its key's name) */
    int curve;
    /* PLAIN: each pool id is bound to the token name of its first
     * authenticated connection (broker thread only). */
    struct binding {
        char id[MSG_ID_MAX];
        char token[AUTH_NAME_MAX];
    } * bound;
    int n_bound, cap_bound;
};

/* coord_send_fn: identity frame, header frame, blob frames. */
static void send_frames(void *ctx, const char *pool_id, const msg *m)
{
    broker *b = ctx;
    size_t len;
    char *hdr = msg_encode(m, &len);
    int more = m->n_blobs > 0 ? ZMQ_SNDMORE : 0;
    int rc = zmq_send(b->sock, pool_id, strlen(pool_id), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    if (rc >= 0)
        rc = zmq_send(b->sock, hdr, len, more | ZMQ_DONTWAIT);
    for (int i = 0; rc >= 0 && i < m->n_blobs; i++)
        rc = zmq_send(b->sock, m->blobs[i].data, m->blobs[i].len,
                      (i + 1 < m->n_blobs ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
    if (rc < 0) {
        log_debug("broker: %s to pool %s not sent: %s", msg_type_name(m->type), pool_id,
                  zmq_strerror(errno));
        stats_zmq_error(b->stats, 1);
    } else {
        size_t bytes = len;
        for (int i = 0; i < m->n_blobs; i++)
            bytes += m->blobs[i].len;
        stats_zmq(b->stats, 1, m->type, bytes);
    }
    free(hdr);
}

static int id_printable(const char *s, size_t n)
{
    if (n == 0 || n >= MSG_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return 0;
    return 1;
}

/* A pool is the name it authenticated as (the ZAP handler's User-Id): under
 * CURVE the name its key has in the pool keys file, under PLAIN the user name
 * its token was accepted with. A message under any other pool id is refused,
 * so no pool can speak for another, whatever routing id it picks. */
static int id_matches_user(const broker *b, zmq_msg_t *part, const char *id, errbuf *eb)
{
    const char *uid = zmq_msg_gets(part, "User-Id");
    if (uid != NULL && strcmp(uid, id) == 0)
        return 1;
    err_set(eb, ERR_AUTH, "pool id '%s' is not the name %s ('%s'): give the pool --pool-id %s", id,
            b->curve ? "of the key it joined with" : "it joined with", uid != NULL ? uid : "?",
            uid != NULL ? uid : "NAME");
    return 0;
}

/* Reads one multipart message; 1 if one was read, 0 if none is waiting. */
static int read_one(broker *b, int64_t t)
{
    zmq_msg_t part;
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, b->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&part);
        return 0;
    }
    char id[MSG_ID_MAX] = "";
    int nframes = 0, bad = 0;
    msg m;
    memset(&m, 0, sizeof m);
    int decoded = 0;
    size_t bytes = 0;
    errbuf eb = {""};
    for (;;) {
        size_t n = zmq_msg_size(&part);
        bytes += n;
        const char *data = zmq_msg_data(&part);
        if (nframes == 0) {
            if (id_printable(data, n))
                memcpy(id, data, n), id[n] = '\0';
            else
                bad = 1;
        } else if (nframes == 1 && !bad && b->zap != NULL && !id_matches_user(b, &part, id, &eb)) {
            bad = 1;
        } else if (nframes == 1 && !bad) {
            if (msg_decode(&m, data, n, &eb) == 0)
                decoded = 1;
            else
                bad = 1;
        } else if (!bad) {
            if (msg_add_blob(&m, data, n) < 0) {
                err_set(&eb, ERR_TOO_LARGE, "more than %d binary frames", MSG_MAX_BLOBS);
                bad = 1;
            }
        }
        nframes++;
        int more = zmq_msg_more(&part);
        zmq_msg_close(&part);
        if (!more)
            break;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, b->sock, 0) < 0) {
            zmq_msg_close(&part);
            bad = 1;
            break;
        }
    }
    if (!bad && decoded && msg_check_blobs(&m, &eb) < 0)
        bad = 1;
    if (!bad && nframes < 2)
        bad = 1, err_set(&eb, ERR_FORMAT, "no header frame");
    if (bad) {
        log_warn("broker: message from %s dropped: %s", id[0] ? id : "(bad id)", eb.msg);
        stats_zmq(b->stats, 0, decoded ? (int)m.type : -1, bytes);
        stats_zmq_error(b->stats, 0);
    } else {
        stats_zmq(b->stats, 0, m.type, bytes);
        coord_receive(b->co, id, &m, t);
    }
    msg_deinit(&m);
    return 1;
}

/* PLAIN: whether a connection under pool id `id` (its PLAIN user name) with
 * a token named `token` may join. The first authenticated connection binds
 * the id to its token; a connection under an id bound to another token, or
 * under the id of a pool that is live on another connection, is refused and
 * logged. 1 = join; 0 = refused, with why. */
static int plain_id_ok(broker *b, const char *id, const char *token, const char *addr,
                       const char **why)
{
    if (!id_printable(id, strlen(id))) {
        *why = "the PLAIN user name must be the pool id";
        log_warn("broker: a pool from %.64s refused: its PLAIN user name is not a pool id", addr);
        return 0;
    }
    struct binding *found = NULL;
    for (int i = 0; i < b->n_bound && found == NULL; i++)
        if (strcmp(b->bound[i].id, id) == 0)
            found = &b->bound[i];
    if (found != NULL && strcmp(found->token, token) != 0) {
        *why = "the pool id belongs to another token";
        log_warn("broker: pool '%s' from %.64s refused: the id is bound to token '%s', it came "
                 "with token '%s'",
                 id, addr, found->token, token);
        return 0;
    }
    if (coord_pool_live(b->co, id, clock_mono_ms())) {
        *why = "a pool is live under this id on another connection";
        log_warn("broker: a second connection under live pool id '%s' from %.64s refused (the "
                 "pool's own connection is kept)",
                 id, addr);
        return 0;
    }
    if (found == NULL) {
        if (b->n_bound == b->cap_bound) {
            b->cap_bound = b->cap_bound ? 2 * b->cap_bound : 16;
            b->bound = xrealloc(b->bound, (size_t)b->cap_bound * sizeof *b->bound);
        }
        found = &b->bound[b->n_bound++];
        snprintf(found->id, sizeof found->id, "%.*s", (int)sizeof found->id - 1, id);
        snprintf(found->token, sizeof found->token, "%.*s", (int)sizeof found->token - 1, token);
        log_info("broker: pool id '%s' bound to token '%s' (from %.64s)", id, token, addr);
    }
    return 1;
}

/* Answers one ZAP request (RFC 27): version, request id, domain, address,
 * routing id, mechanism, then the credentials. A PLAIN password that is a
 * token with the pool scope is accepted; a CURVE client key listed in the
 * pool keys file is accepted with its name as the User-Id. */
static void zap_answer(broker *b)
{
    char f[8][320];
    size_t len[8];
    int n = 0, more = 1;
    while (more && n < 8) {
        int r = zmq_recv(b->zap, f[n], sizeof f[n] - 1, ZMQ_DONTWAIT);
        if (r < 0)
            return;
        len[n] = (size_t)r < sizeof f[n] - 1 ? (size_t)r : sizeof f[n] - 1;
        f[n][len[n]] = '\0';
        n++;
        int m = 0;
        size_t ml = sizeof m;
        zmq_getsockopt(b->zap, ZMQ_RCVMORE, &m, &ml);
        more = m;
    }
    while (more) { /* drop extra frames */
        char sink[64];
        zmq_recv(b->zap, sink, sizeof sink, 0);
        int m = 0;
        size_t ml = sizeof m;
        zmq_getsockopt(b->zap, ZMQ_RCVMORE, &m, &ml);
        more = m;
    }
    const char *status = "400", *text = "a pool token is needed";
    unsigned scopes = 0;
    char name[AUTH_NAME_MAX] = "";
    char uid[sizeof f[0]] = ""; /* the User-Id: the pool id a connection is */
    char z85[POOLKEYS_Z85_LEN + 1] = "";
    const char *key_name = NULL;
    if (b->curve && n >= 7 && strcmp(f[5], "CURVE") == 0 && len[6] == 32 &&
        zmq_z85_encode(z85, (const uint8_t *)f[6], 32) != NULL)
        key_name = poolkeys_name(b->keys, z85);
    if (key_name != NULL) {
        status = "200";
        text = "OK";
        snprintf(uid, sizeof uid, "%s", key_name);
    } else if (b->curve) {
        text = "an unknown pool key";
        log_warn("broker: a pool from %.64s refused: %s%s is not in the pool keys file",
                 n >= 4 ? f[3] : "?", z85[0] ? "its key " : "it did not join with CURVE", z85);
        stats_zmq_error(b->stats, 0);
    } else if (n >= 8 && strcmp(f[5], "PLAIN") == 0 && len[7] < sizeof f[7] - 1 &&
               auth_check(b->auth, f[7], &scopes, name) && (scopes & AUTH_POOL)) {
        if (plain_id_ok(b, f[6], name, f[3], &text)) {
            status = "200";
            text = "OK";
        } else {
            stats_zmq_error(b->stats, 0);
        }
        /* the User-Id of the connection: the pool id it authenticated as */
        snprintf(uid, sizeof uid, "%s", f[6]);
    } else {
        log_warn("broker: pool '%.64s' from %.64s refused: %s", n >= 7 ? f[6] : "?",
                 n >= 4 ? f[3] : "?",
                 n >= 8 && scopes != 0 ? "its token lacks the pool scope" : "no valid pool token");
        stats_zmq_error(b->stats, 0);
    }
    zmq_send(b->zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(b->zap, f[1], n >= 2 ? len[1] : 0, ZMQ_SNDMORE);
    zmq_send(b->zap, status, 3, ZMQ_SNDMORE);
    zmq_send(b->zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(b->zap, uid, strlen(uid), ZMQ_SNDMORE);
    zmq_send(b->zap, "", 0, 0);
}

static void *run(void *arg)
{
    broker *b = arg;
    int64_t next_tick = 0;
    while (!atomic_load(&b->stop)) {
        int64_t t = clock_mono_ms();
        long timeout = next_tick > t ? (long)(next_tick - t) : 0;
        zmq_pollitem_t items[3] = {{b->sock, 0, ZMQ_POLLIN, 0},
                                   {NULL, b->wake_fd[0], ZMQ_POLLIN, 0},
                                   {b->zap, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, b->zap != NULL ? 3 : 2, timeout) < 0 && errno != EINTR) {
            log_error("broker: poll failed: %s", zmq_strerror(errno));
            break;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            char buf[64];
            while (read(b->wake_fd[0], buf, sizeof buf) > 0)
                ;
            coord_wake(b->co);
            next_tick = 0;
        }
        if (b->zap != NULL && (items[2].revents & ZMQ_POLLIN))
            zap_answer(b);
        t = clock_mono_ms();
        if (items[0].revents & ZMQ_POLLIN) {
            for (int i = 0; i < BROKER_READ_BATCH && read_one(b, t); i++)
                ;
            coord_flush(b->co, t);
        }
        if (t >= next_tick)
            next_tick = t + coord_tick(b->co, t);
    }
    coord_flush(b->co, clock_mono_ms());
    return NULL;
}

int broker_curve_keypair(char *public_z85, char *secret_z85)
{
    return zmq_has("curve") && zmq_curve_keypair(public_z85, secret_z85) == 0 ? 0 : -1;
}

int broker_curve_public(const char *secret_z85, char *public_z85)
{
    return zmq_has("curve") && z85_key_valid(secret_z85) &&
                   zmq_curve_public(public_z85, secret_z85) == 0
               ? 0
               : -1;
}

/* The ROUTER socket's options: id handover, ZMTP heartbeats, limits. */
static void set_socket_options(broker *b, const broker_options *o)
{
    int one = 1, zero = 0, hwm = 100000;
    /* Without authentication a reconnecting pool takes its id over from its
     * stale connection. With tokens or CURVE a pool's id is what it
     * authenticated as, so a connection under a live id is refused instead
     * (nobody can take a pool's connection over), and ZMTP heartbeats drop a
     * dead connection within the liveness window so its pool can come back. */
    int handover = o->curve_secret == NULL && o->auth == NULL;
    zmq_setsockopt(b->sock, ZMQ_ROUTER_HANDOVER, &handover, sizeof handover);
    if (!handover) {
        int ivl = o->heartbeat_ms > 0 ? o->heartbeat_ms : 1000;
        int ttl = ivl * (o->liveness > 1 ? o->liveness : 5);
        zmq_setsockopt(b->sock, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
        zmq_setsockopt(b->sock, ZMQ_HEARTBEAT_TIMEOUT, &ttl, sizeof ttl);
    }
    zmq_setsockopt(b->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(b->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(b->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(b->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    /* A frame larger than this (a checkpoint or artifact of over 1 GiB) drops
     * the connection rather than the server's memory. */
    int64_t maxmsg = (int64_t)1 << 30;
    zmq_setsockopt(b->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
}

/* With tokens or a CURVE key: the ZAP handler (bound before the first handshake) and
 * the socket's PLAIN or CURVE server side. 0 or an ERR_* (eb says why). */
static int set_security(broker *b, const broker_options *o, errbuf *eb)
{
    if (b->auth == NULL && !b->curve)
        return 0;
    int one = 1, zero = 0;
    b->zap = zmq_socket(b->ctx, ZMQ_REP);
    if (b->zap == NULL || zmq_bind(b->zap, "inproc://zeromq.zap.01") != 0)
        return err_set(eb, ERR_IO, "broker: cannot start the ZAP handler: %s", zmq_strerror(errno));
    zmq_setsockopt(b->zap, ZMQ_LINGER, &zero, sizeof zero);
    if (b->curve) {
        if (zmq_setsockopt(b->sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
            zmq_setsockopt(b->sock, ZMQ_CURVE_SECRETKEY, o->curve_secret,
                           strlen(o->curve_secret) + 1) != 0)
            return err_set(eb, ERR_INVALID,
                           "broker: CURVE refused (%s): is the secret key "
                           "40 Z85 characters, and ZeroMQ built with CURVE?",
                           zmq_strerror(errno));
    } else {
        zmq_setsockopt(b->sock, ZMQ_PLAIN_SERVER, &one, sizeof one);
    }
    zmq_setsockopt(b->sock, ZMQ_ZAP_DOMAIN, "kiln", 4);
    return 0;
}

/* Binds the socket (o->endpoint; the bound one, port included, in b->endpoint) and
 * makes the wake-up pipe. 0 or ERR_IO (eb says why). */
static int bind_and_pipe(broker *b, const broker_options *o, errbuf *eb)
{
    if (zmq_bind(b->sock, o->endpoint) != 0)
        return err_set(eb, ERR_IO, "broker: cannot bind %s: %s", o->endpoint, zmq_strerror(errno));
    size_t elen = sizeof b->endpoint;
    if (zmq_getsockopt(b->sock, ZMQ_LAST_ENDPOINT, b->endpoint, &elen) != 0)
        snprintf(b->endpoint, sizeof b->endpoint, "%s", o->endpoint);
    if (pipe(b->wake_fd) != 0)
        return err_set(eb, ERR_IO, "broker: pipe: %s", strerror(errno));
    fcntl(b->wake_fd[0], F_SETFL, O_NONBLOCK);
    fcntl(b->wake_fd[1], F_SETFL, O_NONBLOCK);
    return 0;
}

int broker_start(broker **out, store *st, const broker_options *o, errbuf *eb)
{
    *out = NULL;
    broker *b = xcalloc(1, sizeof *b);
    b->wake_fd[0] = b->wake_fd[1] = -1;
    b->stats = o->stats;
    b->auth = o->auth;
    b->keys = o->pool_keys;
    b->curve = o->curve_secret != NULL;
    int rc = 0;
    b->ctx = o->zmq_context;
    if (b->ctx == NULL) {
        b->ctx = zmq_ctx_new();
        b->own_ctx = 1;
    }
    b->sock = zmq_socket(b->ctx, ZMQ_ROUTER);
    if (b->sock == NULL) {
        rc = err_set(eb, ERR_INTERNAL, "broker: cannot make a ROUTER socket: %s",
                     zmq_strerror(errno));
        goto fail;
    }
    set_socket_options(b, o);
    if ((rc = set_security(b, o, eb)) != 0 || (rc = bind_and_pipe(b, o, eb)) != 0)
        goto fail;
    coord_options co = {.heartbeat_ms = o->heartbeat_ms,
                        .liveness = o->liveness,
                        .restart_grace_ms = o->restart_grace_ms,
                        .data_dir = o->data_dir,
                        .owner_max_running = o->owner_max_running,
                        .owner_max_ranks = o->owner_max_ranks};
    b->co = coord_new(st, &co, send_frames, b, clock_mono_ms());
    atomic_store(&b->running, 1);
    if (pthread_create(&b->thread, NULL, run, b) != 0) {
        rc = err_set(eb, ERR_INTERNAL, "broker: cannot start its thread");
        goto fail;
    }
    *out = b;
    return 0;
fail:
    coord_free(b->co);
    if (b->sock != NULL)
        zmq_close(b->sock);
    if (b->zap != NULL)
        zmq_close(b->zap);
    if (b->own_ctx)
        zmq_ctx_term(b->ctx);
    if (b->wake_fd[0] >= 0) {
        close(b->wake_fd[0]);
        close(b->wake_fd[1]);
    }
    free(b);
    return rc;
}

const char *broker_endpoint(const broker *b)
{
    return b->endpoint;
}

void broker_wake(void *ctx)
{
    broker *b = ctx;
    char c = 1;
    if (write(b->wake_fd[1], &c, 1) < 0 && errno != EAGAIN)
        log_warn("broker: cannot wake the broker thread: %s", strerror(errno));
}

json_t *broker_workers(void *ctx)
{
    broker *b = ctx;
    return coord_workers(b->co, clock_mono_ms());
}

int broker_ready(void *ctx)
{
    broker *b = ctx;
    return b != NULL && atomic_load(&b->running);
}

void broker_stop(broker *b)
{
    if (b == NULL)
        return;
    atomic_store(&b->stop, 1);
    broker_wake(b);
    pthread_join(b->thread, NULL);
    atomic_store(&b->running, 0);
    coord_free(b->co);
    zmq_close(b->sock);
    if (b->zap != NULL)
        zmq_close(b->zap);
    if (b->own_ctx)
        zmq_ctx_term(b->ctx);
    close(b->wake_fd[0]);
    close(b->wake_fd[1]);
    free(b->bound);
    free(b);
}
