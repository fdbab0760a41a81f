/* scheduler.c - priority/FIFO best-fit placement (see scheduler.h). */
#include "scheduler.h"

#include "common/xalloc.h"

#include <stdlib.h>

int sched_plan(const store_queued *jobs, int n_jobs, const sched_pool *pools, int n_pools,
               sched_pick *out)
{
    if (n_pools <= 0 || n_jobs <= 0)
        return 0;
    char *used = xcalloc((size_t)n_pools, 1);
    int n = 0, free_left = n_pools;
    for (int j = 0; j < n_jobs && free_left > 0; j++) {
        int best = -1;
        for (int p = 0; p < n_pools; p++) {
            if (used[p] || pools[p].ranks < jobs[j].ranks)
                continue;
            if (best < 0 || pools[p].ranks < pools[best].ranks)
                best = p;
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
