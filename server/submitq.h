/* submitq.h - group commit of job submissions: many POSTs, one fsync.
 *
 * One thread takes every submission queued since its last round and stores
 * them with store_job_create_batch: one write transaction, so one fsync, for
 * all of them. Each submission's done callback then runs on that thread with
 * its outcome, and only then is the client answered: every reply still
 * follows the fsync of its job. While a round commits, new submissions queue
 * up, so a round grows with the load, and a lone submission is committed at
 * once (no timer). Depends on store.h and pthreads; thread-safe.
 */
#ifndef KILN_SUBMITQ_H
#define KILN_SUBMITQ_H

#include "common/err.h"
#include "server/store.h"

/* At most this many submissions in one transaction. */
#define SUBMITQ_BATCH_MAX 256

typedef struct submitq submitq;

/* Called on the queue's thread with the outcome of one submission
 * (store_job_create's id, rc and message); ctx as given to submitq_push. */
typedef void (*submitq_done_fn)(void *ctx, const store_job_batch *outcome);

/* submitq_start starts the committing thread over st (which must outlive
 * the queue). Returns 0, or ERR_INTERNAL when the thread cannot start. */
int submitq_start(submitq **out, store *st, errbuf *eb);

/* submitq_push queues *job (borrowed: it and the strings it points to must
 * stay valid until done runs). Returns 0, and done(ctx, outcome) runs once,
 * later, on the queue's thread; or ERR_STATE when the queue is draining,
 * and done never runs: store the job some other way. */
int submitq_push(submitq *q, const store_job_new *job, submitq_done_fn done, void *ctx);

/* submitq_drain stops taking submissions, commits those queued, runs their
 * callbacks and joins the thread. After it, submitq_push returns ERR_STATE;
 * q stays valid for callers that still hold it. NULL ok. */
void submitq_drain(submitq *q);

/* submitq_free drains (if not done yet) and frees q. NULL ok. */
void submitq_free(submitq *q);

/* Rounds committed and submissions stored so far (their ratio is the mean
 * batch size). Thread-safe. */
void submitq_stats(submitq *q, unsigned long *rounds, unsigned long *jobs);

#endif
