/* scheduler.h - which queued job goes to which free pool (a pure function).
 *
 * Rules: highest priority first, FIFO within a priority (the order of the
 * queue given); at most one new job per pool in one plan (a pool says ready
 * again when it has taken it); a job that needs N ranks goes only to a pool
 * with at least N free ranks. A pool runs several jobs at once while their
 * ranks fit in its own: only pools with free ranks are given, each with its
 * free and its total ranks. Among the pools that fit, a job takes the one
 * with the fewest free ranks (best fit, so that big pools stay free for big
 * jobs).
 *
 * Starvation: a job that fits no pool's free ranks but would fit a partly
 * busy pool's total reserves that pool (the one with the fewest ranks): no
 * later job of the queue takes its free ranks, so small jobs cannot keep a
 * wide job out forever by filling each rank as it frees; the price is ranks
 * left idle until the pool's running jobs end. A job that fits no pool's
 * total is passed over, and later jobs may use the pools it cannot (they do
 * not delay it: it could not have run on them). What still waits: a low
 * priority job, for as long as higher ones keep coming, and every queued
 * job behind a wide one on a reserved pool. No I/O, no state; thread-safe.
 */
#ifndef KILN_SCHEDULER_H
#define KILN_SCHEDULER_H

#include "server/store.h"

typedef struct sched_pool {
    const char *id;
    int ranks; /* free now */
    int total; /* in all; 0 = the same as ranks (an idle pool) */
} sched_pool;

typedef struct sched_pick {
    int job;  /* index into the queue */
    int pool; /* index into the pools */
} sched_pick;

/* sched_plan fills out[] (room for min(n_jobs, n_pools) picks) and returns
 * how many picks it made, in queue order. */
int sched_plan(const store_queued *jobs, int n_jobs, const sched_pool *pools, int n_pools,
               sched_pick *out);

#endif
