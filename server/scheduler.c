/* scheduler.c - priority/FIFO best-fit placement (see scheduler.h). */
#include "scheduler.h"

#include "common/xalloc.h"

#include <stdlib.h>

static int pool_total(const sched_pool *p)
{
    return p->total > p->ranks ? p->total : p->ranks;
}

int sched_plan(const store_queued *jobs, int n_jobs, const sched_pool *pools, int n_pools,
               sched_pick *out)
{
    if (n_pools <= 0 || n_jobs <= 0)
        return 0;
    char *used = xcalloc((size_t)n_pools, 1); /* picked or reserved */
    int n = 0, free_left = n_pools;
    for (int j = 0; j < n_jobs && free_left > 0; j++) {
        int best = -1, wait_for = -1;
        for (int p = 0; p < n_pools; p++) {
            if (used[p])
                continue;
            if (pools[p].ranks >= jobs[j].ranks) {
                if (best < 0 || pools[p].ranks < pools[best].ranks)
                    best = p;
            } else if (pool_total(&pools[p]) >= jobs[j].ranks) {
                if (wait_for < 0 || pool_total(&pools[p]) < pool_total(&pools[wait_for]))
                    wait_for = p;
            }
        }
        if (best < 0 && wait_for >= 0) { /* reserved: the job waits for this pool */
            used[wait_for] = 1;
            free_left--;
            continue;
        }
        if (best < 0)
            continue;
        used[best] = 1;
        free_left--;
        out[n].job = j;
        out[n].pool = best;
        n++;
    }
    free(used);
    return n;
}
