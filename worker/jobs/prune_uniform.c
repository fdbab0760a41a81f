/* prune_uniform.c - the uniform-width baseline (see prune.h).
 *
 * One width multiplier m for every unit (round(C*m/max), at least one
 * channel), the largest whose net fits under the top of the target band.
 * MACs are not monotone in m once rounding and the structure rules act, so
 * every multiplier on a fine grid is tried and the one with the most MACs
 * under the limit is kept (ties: the smaller m).
 */
#include "common/xalloc.h"
#include "worker/jobs/prune.h"

#include <stdlib.h>
#include <string.h>

#define GRID 20000

double prune_uniform_widths(const pruner *p, int *w)
{
    const prune_space *sp = &p->sp;
    double hi = p->target * (1 + PRUNE_TARGET_TOL) * 1e6;
    int *t = xcalloc((size_t)sp->n_units, sizeof(int));
    double best_m = 0, best_macs = -1, mx = sp->width.max;
    for (int i = 1; i <= GRID; i++) {
        double m = mx * i / GRID;
        ps_uniform_widths(sp, m, t);
        double macs = ps_macs(sp, t);
        if (macs <= hi && macs > best_macs) {
            best_macs = macs;
            best_m = m;
            memcpy(w, t, (size_t)sp->n_units * sizeof(int));
        }
    }
    if (best_macs < 0) { /* even one channel everywhere is too much: take the smallest */
        best_m = mx / GRID;
        ps_uniform_widths(sp, best_m, w);
    }
    free(t);
    return best_m;
}
