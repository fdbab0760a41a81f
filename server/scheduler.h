/* scheduler.h - which queued job goes to which free pool (a pure function).
 *
 * Rules: highest priority first, FIFO within a priority (the order of the
 * queue given); one job per pool at a time (only free pools are given); a
 * job that needs N ranks goes only to a pool with at least N. Among the
 * free pools that fit, a job takes the one with the fewest ranks (best fit,
 * so that big pools stay free for big jobs). A job that fits no free pool is
 * passed over for now, and later jobs may use the pools it cannot (they do
 * not delay it: it could not have run on them). No I/O, no state;
 * thread-safe.
 */
#ifndef KILN_SCHEDULER_H
#define KILN_SCHEDULER_H

#include "server/store.h"

typedef struct sched_pool {
    const char *id;
    int ranks;
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
