/* broker.h - the server's ZeroMQ side: one ROUTER socket on its own thread.
 *
 * broker.c is the only file of the server that includes zmq.h. Its thread
 * owns the socket: it receives frames (identity, header, blobs), decodes
 * them (common/msg) and feeds them to the coordinator (server/coord), which
 * answers through a callback that this thread turns back into frames. Other
 * threads only call broker_wake, broker_workers and broker_ready, which are
 * thread-safe. With tokens, the socket is a ZeroMQ PLAIN server and this
 * thread also answers its ZAP requests (inproc://zeromq.zap.01 of the
 * broker's context): a pool joins only with a token that has the pool scope.
 */
#ifndef KILN_BROKER_H
#define KILN_BROKER_H

#include "common/err.h"
#include "server/auth.h"
#include "server/poolkeys.h"
#include "server/stats.h"
#include "server/store.h"

#include <jansson.h>

typedef struct broker broker;

typedef struct broker_options {
    const char *endpoint;      /* e.g. "tcp://127.0.0.1:5555", "tcp://127.0.0.1:*", "inproc://x" */
    int heartbeat_ms;          /* default 1000 */
    int liveness;              /* default 5 */
    int restart_grace_ms;      /* coord_options.restart_grace_ms (default: the liveness window) */
    const char *data_dir;      /* where checkpoints and artifacts go */
    void *zmq_context;         /* NULL: the broker makes its own (an inproc peer must share one) */
    server_stats *stats;       /* messages in and out are counted here; may be NULL */
    const auth *auth;          /* tokens: pools must join with a pool-scope token as their
                                * ZeroMQ PLAIN password; NULL = no check (loopback only) */
    const char *curve_secret;  /* the server's CurveZMQ secret key (Z85): the pool socket
                                * is encrypted and pools join with a key listed in
                                * pool_keys instead of a token; NULL = no CURVE */
    const poolkeys *pool_keys; /* with curve_secret: who may join, under which pool id */
    int owner_max_running;     /* per-owner limits of the scheduler (coord.h); 0 = none */
    int owner_max_ranks;
} broker_options;

/* broker_curve_keypair makes a new CurveZMQ keypair in Z85 (41 bytes each,
 * NUL-terminated). Returns 0, or -1 when ZeroMQ was built without CURVE. */
int broker_curve_keypair(char *public_z85, char *secret_z85);

/* broker_curve_public derives the public key (Z85) of a secret key (Z85).
 * Returns 0, or -1 (not a key, or no CURVE). */
int broker_curve_public(const char *secret_z85, char *public_z85);

/* broker_start binds the socket and starts the thread. Returns 0, or ERR_IO
 * (bind failed; eb names the endpoint and the reason). */
int broker_start(broker **out, store *st, const broker_options *o, errbuf *eb);

/* The endpoint actually bound (a wildcard port resolved), e.g. tcp://127.0.0.1:40123. */
const char *broker_endpoint(const broker *b);

/* broker_stop stops the thread, closes the socket and frees b; NULL is a no-op. */
void broker_stop(broker *b);

/* Hooks for the HTTP side (ctx = broker *): */
void broker_wake(void *ctx);       /* schedule and deliver cancels now */
json_t *broker_workers(void *ctx); /* GET /workers (new reference) */
int broker_ready(void *ctx);       /* 1 while bound and running */

#endif
