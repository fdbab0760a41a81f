/* coord.h - the coordinator: what the server does with pool messages.
 *
 * coord keeps the table of pools (hello, heartbeats, liveness), applies job
 * messages to the store exactly once (in batches, one transaction each) and
 * acks them after the commit, writes checkpoint and artifact files before
 * they are referenced, reconciles after reconnects and restarts, sends
 * cancels, and runs the scheduler. It knows nothing about sockets: outgoing
 * messages go through a send callback, so tests drive it directly and
 * broker.c moves its frames over ZeroMQ.
 * Threads: everything but coord_workers runs on one thread (the broker's);
 * coord_workers may be called from any thread.
 */
#ifndef KILN_COORD_H
#define KILN_COORD_H

#include "common/msg.h"
#include "server/store.h"

#include <jansson.h>
#include <stdint.h>

typedef struct coord coord;

/* Sends m (borrowed; encode it before returning) to pool pool_id. */
typedef void (*coord_send_fn)(void *ctx, const char *pool_id, const msg *m);

typedef struct coord_options {
    int heartbeat_ms;     /* heartbeat interval both ways (default 1000) */
    int liveness;         /* a pool silent for liveness intervals is lost (default 5) */
    int restart_grace_ms; /* after this coord starts, how long the pools of the jobs the
                           * store has as running have to say hello again before those
                           * attempts end WORKER_LOST (default and least: the liveness
                           * window, heartbeat_ms * liveness) */
    const char *data_dir;
    int owner_max_running; /* jobs one owner may have on pools at once; 0 = no limit */
    int owner_max_ranks;   /* ranks those jobs may hold together; 0 = no limit */
} coord_options;

/* coord_new: st and data_dir are borrowed for the coord's life. start_ms is
 * "now" on the caller's monotonic clock: attempts the store has as active
 * whose pools do not say hello within restart_grace_ms of it end WORKER_LOST. */
coord *coord_new(store *st, const coord_options *o, coord_send_fn send, void *ctx,
                 int64_t start_ms);
void coord_free(coord *c);

/* coord_receive handles one message from pool_id (decoded, blobs attached,
 * borrowed). Job messages are held for the next coord_flush (batching);
 * any other message flushes the pending batch first, so that each pool's
 * messages take effect in the order they were sent. */
void coord_receive(coord *c, const char *pool_id, msg *m, int64_t now_ms);

/* coord_flush applies the pending job messages in one transaction and sends
 * their acks. Returns the number applied now (duplicates excluded). */
int coord_flush(coord *c, int64_t now_ms);

/* coord_tick: heartbeats out, lost pools, cancels, reconciliation and (when
 * something changed or once a second) scheduling. Call it at least every
 * heartbeat_ms / 2. Returns the delay in ms until it wants to run again. */
int coord_tick(coord *c, int64_t now_ms);

/* Whether pool `id` is live: not lost, and heard from within two heartbeat
 * intervals. A second connection under a live id is refused by the broker. */
int coord_pool_live(coord *c, const char *id, int64_t now_ms);

/* coord_wake asks for scheduling and cancel delivery at the next tick. */
void coord_wake(coord *c);

/* The pools as GET /workers shows them (new reference). Thread-safe. */
json_t *coord_workers(coord *c, int64_t now_ms);

#endif
