/* link_core.h - the pool side of the protocol without sockets or threads (api/messages.md).
 *
 * A link_core holds everything worker/link.c needs to speak to the server
 * except the socket: the outbox of job messages (with seqs per attempt) and
 * its spill file, acks (also "gap"), adaptive resends (go-back-N with
 * doubling), heartbeats and liveness, the handshake (hello, welcome, hello
 * again when a server heartbeat carries "hello": true), ready, and the
 * assignments and cancels for the job side. It never reads a clock: every
 * call that depends on time takes the current time t (ms, monotonic), and it
 * sends through the callback given to lcore_new. It is not thread-safe: the
 * socket shell (link.c) calls it under its mutex.
 *
 * The shell's loop:
 *
 *     lcore_connected(c, t);                 // after making a socket
 *     for each message read: lcore_receive(c, &m, t);
 *     if (lcore_tick(c, t) == LCORE_LOST) {  // the server went silent
 *         close the socket;
 *         reconnect after lcore_disconnected(c, t) ms;
 *     }
 *     poll for at most lcore_poll_ms(c, t) ms
 */
#ifndef KILN_LINK_CORE_H
#define KILN_LINK_CORE_H

#include "common/err.h"
#include "common/msg.h"
#include "link.h"

#include <stddef.h>
#include <stdint.h>

typedef struct link_core link_core;

/* Sends m on the connection: 0, or -1 when it cannot be taken now (not
 * connected yet); the core then tries again later. m stays the caller's. */
typedef int (*lcore_send_fn)(void *ctx, const msg *m);

#define LCORE_LOST 1 /* lcore_tick: nothing heard for liveness heartbeats */

/* lcore_new copies peer (the server's endpoint, for the log), info (pool_id must be set) and o
 * (whose defaults are already filled in: every field > 0) and creates the spill file in
 * o->spill_dir ($TMPDIR or /tmp when NULL). Returns 0, or ERR_IO with eb
 * naming the file. */
int lcore_new(link_core **out, const char *peer, const link_pool_info *info, const link_options *o,
              lcore_send_fn send, void *send_ctx, errbuf *eb);

/* lcore_free frees the outbox, waiting assignments and removes the spill
 * file. NULL is a no-op. */
void lcore_free(link_core *c);

/* lcore_enqueue gives m (its content is taken) the next seq of (job,
 * attempt) and queues it, in memory or, when memory is full or the spill
 * file already holds messages, in the spill file. 0, or ERR_IO when the
 * spill file cannot be written (m is dropped then). */
int lcore_enqueue(link_core *c, msg *m, const char *job, int attempt);

/* lcore_metric adds one point (taken) to the newest metric message of (job,
 * attempt) if it is still unsent and not full, else queues a new metric
 * message. 0 or ERR_IO as lcore_enqueue. */
int lcore_metric(link_core *c, const char *job, int attempt, json_t *point);

/* lcore_connected: a new socket was made at t; the handshake starts over
 * with the next lcore_tick (hello, then the unacked messages again). */
void lcore_connected(link_core *c, int64_t t);

/* lcore_disconnected: the shell closed the socket at t. Every unacked
 * message will be sent again; returns the back-off (ms) to wait before the
 * next connection: reconnect_min_ms, doubling to reconnect_max_ms, back to
 * the minimum after a welcome. */
int lcore_disconnected(link_core *c, int64_t t);

/* lcore_receive handles one decoded message from the server at t (welcome,
 * assign, cancel, ack, heartbeat; others are logged and dropped). Its blobs
 * may be taken (an assignment's checkpoint and init weights); the caller
 * still deinits m. */
void lcore_receive(link_core *c, msg *m, int64_t t);

/* lcore_heard: something came from the server at t that could not be read;
 * it still shows the server is alive (liveness). */
void lcore_heard(link_core *c, int64_t t);

/* lcore_tick sends what is due at t: hello, spilled messages read back,
 * go-back after acks stopped for the resend timeout, the outbox (at most a
 * window in flight), ready, a heartbeat. Returns LCORE_LOST (and sends
 * nothing) when the server has been silent for liveness heartbeat
 * intervals; the shell then closes the socket and calls lcore_disconnected. */
int lcore_tick(link_core *c, int64_t t);

/* lcore_poll_ms: how long the shell may wait for input at t before the next
 * lcore_tick is due (0..50 ms). */
long lcore_poll_ms(const link_core *c, int64_t t);

/* lcore_set_waiting: the job side waits for work (1) or not (0); while it
 * does, is idle and nothing is waiting, a ready is sent (one job at a time,
 * until lcore_set_free_ranks is called). */
void lcore_set_waiting(link_core *c, int waiting);

/* lcore_set_free_ranks: the pool runs several jobs at once and has free_ranks
 * ranks free; while that is > 0 and no assignment waits, a ready listing the
 * running jobs is sent (again whenever the count or the running jobs change). */
void lcore_set_free_ranks(link_core *c, int free_ranks);

/* lcore_take_assign moves the oldest waiting assignment into *a (the caller
 * frees it with link_assignment_free) and adds it to the running jobs (listed
 * in hello and ready until its end message is acked). 1 if
 * there was one, else 0. */
int lcore_take_assign(link_core *c, link_assignment *a);

/* lcore_pending: assignments waiting to be taken. */
int lcore_pending(const link_core *c);

/* lcore_silent_ms: how long (ms) nothing has come from the server at t. */
int64_t lcore_silent_ms(const link_core *c, int64_t t);

/* lcore_cancel_requested: 1 once the server asked to cancel (job, attempt). */
int lcore_cancel_requested(const link_core *c, const char *job, int attempt);

/* lcore_set_cached takes a (a JSON array of SHA-256 hex strings) to send
 * with the next ready. */
void lcore_set_cached(link_core *c, json_t *a);

/* lcore_queued: job messages not acked yet (memory + spill file). */
size_t lcore_queued(const link_core *c);

/* lcore_get_stats fills s (queued included). */
void lcore_get_stats(const link_core *c, link_stats *s);

#endif
