/* link.h - a pool's connection to kiln-server (rank 0 only; api/messages.md).
 *
 * worker/link.c is the only ZeroMQ file of the worker. A pool_link owns one
 * DEALER socket on its own thread: it says hello, heartbeats both ways
 * (also while a job runs), asks for work (ready), receives assign and
 * cancel, and sends the job messages the training thread queues. Every job
 * message gets the next seq of its (job, attempt) and stays in the outbox
 * until the server acks it; unacked messages are sent again after a
 * reconnect (exponential back-off) or when acks stall (no ack for
 * resend_ms, then doubling). The outbox is bounded
 * in memory; past the bound, messages are spilled to a file and read back
 * in order, never dropped. Consecutive metric points of one job that are
 * still unsent travel as one message. The protocol itself lives in
 * worker/link_core.c (no sockets, no threads); this file's shell drives it.
 *
 * Threads: every function is thread-safe; none of the queueing functions
 * blocks on the network (they copy and return). Only link_wait_assign and
 * link_flush wait, with a timeout. The training thread only touches the
 * link's queues and flags; the link thread alone touches the socket.
 *
 * Typical use in kiln-worker's rank 0:
 *
 *     pool_link *l;
 *     link_pool_info info = {.pool_id = id, .ranks = R, .hosts = hosts, .n_hosts = R,
 *                            .cores = C, .version = KILN_VERSION, ...};
 *     if (link_new(&l, "tcp://server:5555", &info, NULL, &eb) < 0) ...
 *     for (;;) {
 *         link_assignment a;
 *         if (link_wait_assign(l, -1, &a) != 0) break;          // ERR_CANCELLED on shutdown
 *         link_started(l, a.job_id, a.attempt, total_steps);
 *         for each step:
 *             if (link_cancel_requested(l, a.job_id, a.attempt)) -> checkpoint, finished(cancelled)
 *             link_metric(l, a.job_id, a.attempt, point);       // {"step": s, "train_loss": x}
 *             every N steps: link_checkpoint(l, a.job_id, a.attempt, step, bytes, len);
 *         link_finished(l, a.job_id, a.attempt, 0, result, arts, n, &eb)   // or link_failed
 *         link_assignment_free(&a);
 *     }
 *     link_flush(l, 10000);
 *     link_free(l);
 */
#ifndef KILN_LINK_H
#define KILN_LINK_H

#include "common/err.h"
#include "common/msg.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pool_link pool_link;

typedef struct link_pool_info {
    const char *pool_id;      /* routing id; NULL = "<hostname>-<pid>" */
    int ranks;                /* MPI world size */
    const char *const *hosts; /* one host name per rank (n_hosts of them), or NULL */
    int n_hosts;
    int cores;           /* cores on the hosts in total */
    const char *version; /* kiln version string */
    const char *engine;  /* kernel path and BLAS core (nn_startup_summary), or NULL */
    int64_t memory;      /* bytes of memory on the hosts in total; 0 = not said */
    int64_t rank_memory; /* bytes the rank with the least can use; 0 = not said */
} link_pool_info;

typedef struct link_options {
    int heartbeat_ms;             /* until the server's welcome says otherwise; default 1000 */
    int liveness;                 /* silent intervals before reconnecting; default 5 */
    int reconnect_min_ms;         /* back-off: default 100, doubling ... */
    int reconnect_max_ms;         /* ... up to this; default 5000 */
    int resend_ms;                /* resend unacked messages after no ack for this long (or 4
                                   * round trips if longer), doubling; default 2000 */
    size_t outbox_max_msgs;       /* in memory; default 4096 */
    size_t outbox_max_bytes;      /* in memory; default 64 MiB */
    const char *spill_dir;        /* for the spill file; default $TMPDIR or /tmp */
    void *zmq_context;            /* NULL: the link makes its own (inproc needs the server's) */
    const char *token;            /* a pool-scope token of a server started with --tokens: sent
                                   * as the ZeroMQ PLAIN password (user name = pool id);
                                   * NULL = none (copied by link_new) */
    const char *curve_server_key; /* the server's CurveZMQ public key (Z85): the link is
                                   * encrypted and joins with curve_secret; NULL = no CURVE
                                   * (copied by link_new) */
    const char *curve_secret;     /* this pool's secret key (Z85); its public key must be in
                                   * the server's pool keys file under this pool's id */
} link_options;

/* link_options_default fills the defaults above. */
void link_options_default(link_options *o);

/* link_new copies info and o (NULL = defaults), starts the link thread and
 * begins connecting to endpoint (e.g. "tcp://host:5555"); it does not wait
 * for the server. Returns 0, or ERR_INVALID (bad endpoint or info) /
 * ERR_IO (the spill file) with eb saying why. */
int link_new(pool_link **out, const char *endpoint, const link_pool_info *info,
             const link_options *o, errbuf *eb);

/* link_free stops the thread and closes the socket; queued messages that
 * were not acked are lost, so call link_flush first. NULL is a no-op. */
void link_free(pool_link *l);

/* A job to run. */
typedef struct link_assignment {
    char job_id[MSG_ID_MAX];
    int attempt;      /* pass it back with every job message */
    json_t *spec;     /* the canonical job spec (owned; parse with jobspec_parse) */
    void *checkpoint; /* safetensors bytes to resume from (owned), or NULL */
    size_t checkpoint_len;
    long resume_step; /* the step of that checkpoint; 0 when fresh */
    int has_init;     /* the job starts from weights the server holds (init_from) */
    char init_sha256[65];
    long long init_size;
    void *init; /* their bytes (owned), or NULL when the pool said it has them cached */
    size_t init_len;
} link_assignment;

/* link_set_cached sets the SHA-256s (hex) of the init weights this pool
 * holds; the next ready carries them, so the server sends only what the
 * pool lacks. Thread-safe. */
void link_set_cached(pool_link *l, const char *const *sha256, int n);

/* link_set_free_ranks: the pool runs several jobs at once, one per split of its
 * ranks, and free_ranks of them are free now. From the first call on, a ready
 * (listing the jobs taken and not ended) goes to the server whenever
 * free_ranks > 0 and it changes, and link_wait_assign only waits. Thread-safe. */
void link_set_free_ranks(pool_link *l, int free_ranks);

/* link_wait_assign tells the server this pool is free (ready) and blocks
 * until an assignment arrives (0, *a filled; free it with
 * link_assignment_free), timeout_ms passes (ERR_TIMEOUT; -1 = no timeout),
 * or link_interrupt is called (ERR_CANCELLED). The job is among the pool's
 * running jobs (hello and ready list them) until its finished/failed message
 * is acked. */
int link_wait_assign(pool_link *l, int timeout_ms, link_assignment *a);

void link_assignment_free(link_assignment *a);

/* link_interrupt makes a pending and every later link_wait_assign return
 * ERR_CANCELLED (for shutting down from a signal-handling thread). */
void link_interrupt(pool_link *l);

/* Job messages. Each copies what it is given, queues it and returns 0;
 * ERR_INVALID for bad arguments (eb-less: the log says why); ERR_IO if the
 * outbox is full and the spill file cannot be written. */

/* started: the attempt runs; total_steps (0 if unknown) gives progress. */
int link_started(pool_link *l, const char *job_id, int attempt, long total_steps);

/* metric: one point {"step": s (integer >= 0), "name": number, ...}; an
 * optional "time" (Unix seconds) is kept, else the server stamps it. */
int link_metric(pool_link *l, const char *job_id, int attempt, const json_t *point);

/* metric_value: one named value at `step` (and fractional epoch, < 0 = none),
 * the shape of job_sink.metric; the same as link_metric with
 * {"step": step, "epoch": epoch, name: value}. */
int link_metric_value(pool_link *l, const char *job_id, int attempt, const char *name, double value,
                      long step, double epoch);

/* log: one line; level "debug" | "info" | "warn" | "error". */
int link_log(pool_link *l, const char *job_id, int attempt, const char *level, const char *text);

/* checkpoint: the safetensors bytes of the state at `step` (copied). */
int link_checkpoint(pool_link *l, const char *job_id, int attempt, long step, const void *bytes,
                    size_t len);

/* checkpoint_file: the same, from a complete checkpoint file at path (read
 * now). ERR_IO if it cannot be read (the log names it). */
int link_checkpoint_file(pool_link *l, const char *job_id, int attempt, long step,
                         const char *path);

/* An artifact: bytes (copied) or, when bytes is NULL, the file at path (read
 * now). name: [A-Za-z0-9._-], e.g. "model.safetensors". */
typedef struct link_artifact {
    const char *name;
    const void *bytes;
    size_t len;
    const char *path;
} link_artifact;

/* finished: the attempt ended, succeeded (cancelled = 0) or stopped on a
 * cancel (cancelled = 1); result (borrowed, may be NULL) is a JSON object
 * such as {"test_acc": 0.87}. Returns 0, or ERR_INVALID/ERR_IO (an unsafe
 * name, an unreadable file) with eb naming it; nothing is queued then. */
int link_finished(pool_link *l, const char *job_id, int attempt, int cancelled,
                  const json_t *result, const link_artifact *arts, int n_arts, errbuf *eb);

/* failed: the attempt cannot go on. reason: INVALID_SPEC, INVALID_DATA,
 * UNSUPPORTED (never retried), RANK_FAILED, NUMERIC_ERROR, INTERNAL
 * (retried while retry.max_restarts allows); message: for a person. */
int link_failed(pool_link *l, const char *job_id, int attempt, const char *reason,
                const char *message);

/* link_cancel_requested: 1 once the server has asked to cancel (job,
 * attempt), else 0. Cheap (a mutex and a short scan): call it every step. */
int link_cancel_requested(pool_link *l, const char *job_id, int attempt);

/* link_flush waits until every queued message has been acked: 0, or
 * ERR_TIMEOUT after timeout_ms (-1 = no timeout). */
int link_flush(pool_link *l, int timeout_ms);

typedef struct link_stats {
    int connected;    /* the server's welcome came on this connection */
    uint64_t sent;    /* job messages sent (first sends and resends) */
    uint64_t resent;  /* of which resends */
    uint64_t acked;   /* job messages acked */
    uint64_t spilled; /* job messages that went through the spill file */
    uint64_t reconnects;
    size_t queued; /* job messages not yet acked (memory + spill) */
} link_stats;

void link_get_stats(pool_link *l, link_stats *s);

/* The pool id in use (valid for the link's life). */
const char *link_pool_id(const pool_link *l);

#endif
