/* pooljob.h - one job's part on one rank of a pool (worker/pool.c places the jobs).
 *
 * A pool of N ranks runs several jobs at once, each on a split of its ranks. Every
 * rank of a job calls pooljob_run with the same job_order: it makes the job's
 * communicator (dist_group_begin), writes the checkpoint or init weights it got into
 * the job's work folder, runs job_run over the job's ranks only, and the job's root
 * (its lowest world rank) reports: on the link when it is world rank 0, else through
 * rank 0 (worker/poolrelay.h). Called from a rank's main thread.
 */
#ifndef KILN_POOLJOB_H
#define KILN_POOLJOB_H

#include "common/msg.h"
#include "worker/dist.h"
#include "worker/link.h"

#include <stddef.h>

/* The init_from weights of an assignment, as every rank of its job gets them. */
typedef struct init_blob {
    int state; /* 0: none sent; 1: bytes; -1: rank 0 could not get them (msg says why) */
    void *data;
    size_t len;
    char msg[600];
} init_blob;

/* What a rank needs to run its part of a job: the same on each of its ranks (world
 * rank 0 sends it to the others). */
typedef struct job_order {
    char job_id[MSG_ID_MAX];
    int attempt;
    int *members, n; /* world ranks, ascending: members[0] is the job's root */
    int tag;         /* of its communicator */
    char *spec_text;
    void *ckpt;
    size_t ckpt_len;
    init_blob ib;
} job_order;

/* Where a job's part runs: the pool around it. */
typedef struct pooljob_env {
    const dist_info *pool; /* the whole pool */
    pool_link *link;       /* world rank 0: the link; elsewhere NULL (reports go via rank 0) */
    const char *work_root; /* the pool's work folder: the job's is <work_root>/<job>-<attempt> */
    /* rank 0: its leading of the pool, called between the steps of its own job (from the
     * job's cancel check); NULL elsewhere */
    void (*between_steps)(void *ctx);
    void *ctx;
} pooljob_env;

/* Runs this rank's part of job o. Returns 1 when the pool was asked to stop (on any
 * rank of the job), the same on every rank of the job. The root's "done" (a root other
 * than world rank 0) goes to rank 0 before it returns. */
int pooljob_run(const pooljob_env *e, const job_order *o);

/* Frees o and everything it holds; NULL is a no-op. */
void job_order_free(job_order *o);

#endif
