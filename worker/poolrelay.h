/* poolrelay.h - the control messages between the ranks of a pool (worker/pool.c).
 *
 * A pool of N ranks runs several jobs at once, each on a split of its ranks.
 * Only world rank 0 holds the link to the server; a job whose ranks do not
 * include rank 0 reports through it. Two kinds of message travel between world
 * ranks (dist_ctl_send), each a JSON header {"op": ...} and an optional blob:
 *
 *   rank 0 -> a rank: "run" (job_id, attempt, members, tag, init state; blob: the
 *       spec text), then "ckpt" and "init" (blobs: the checkpoint to resume from
 *       and the init_from weights, maybe empty); "cancel" and "stop" for the root
 *       of a running job; "quit" when the pool leaves.
 *   a job's root -> rank 0: the job's reports ("started", "metric", "log",
 *       "checkpoint" with its bytes, "finished" with every artifact's bytes,
 *       "failed"), "done" when the job's ranks are free again, and "stopping"
 *       when this rank was asked to stop while idle.
 *
 * relay_sink is the job_sink of a root other than rank 0; relay_apply is rank 0's
 * side, onto the link. Messages from one rank arrive in the order sent. Every
 * function here is called from a rank's main thread (MPI is FUNNELED).
 */
#ifndef KILN_POOLRELAY_H
#define KILN_POOLRELAY_H

#include "common/msg.h"
#include "worker/jobs/job.h"
#include "worker/link.h"

#include <jansson.h>
#include <stddef.h>

/* Sends {hdr (taken), blob} to world rank dest. */
void poolctl_send(int dest, json_t *hdr, const void *blob, size_t len);

/* The next message from world rank src (waits for it): its header (the caller's),
 * and in *blob (malloc'd, NULL when empty) its blob of *len bytes. NULL when the
 * message is malformed (logged). */
json_t *poolctl_recv(int src, void **blob, size_t *len);

/* The reports of a job whose root is not world rank 0. */
typedef struct relay {
    char job_id[MSG_ID_MAX];
    int attempt;
    int cancelled; /* rank 0 passed on the server's cancel */
} relay;

/* relay_sink binds r to (job_id, attempt) and fills *out with callbacks (ctx r)
 * that send each report to rank 0; its cancel check reads what rank 0 sent
 * ("cancel"; "stop" makes this rank's stop request). */
void relay_sink(relay *r, const char *job_id, int attempt, job_sink *out);

/* The job's end, from its root: finished (the artifacts' files in out_dir are read
 * now and sent) or failed. relay_finished returns 0, or an ERR_* with eb naming a
 * file that could not be read (nothing sent then). */
int relay_finished(relay *r, int cancelled, const json_t *summary, const char *out_dir,
                   const job_result *res, errbuf *eb);
void relay_failed(relay *r, const char *reason, const char *message);

/* Rank 0: one report of a job relayed by its root, onto the link. Returns 1 for
 * "done" (with *stopping: the job ended because its pool was asked to stop), 2 for
 * "stopping", 0 for a report. */
int relay_apply(pool_link *l, const json_t *hdr, const void *blob, size_t len, int *stopping);

#endif
