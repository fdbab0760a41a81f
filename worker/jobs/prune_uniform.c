/* prune_uniform.c - the uniform-width baseline (see prune.h).
 *
 * One width multiplier m for every unit: the m whose real-valued widths
 * C*m/max (clamped to [1, C]) have exactly the target's MACs, found by
 * bisection (MACs grow with m). Rounding those widths moves the MACs by
 * whole channels, so the rounded network is fitted into the +-1 % band by
 * common/bandfit.h, each unit kept near C*m/max (a tenth of its width
 * costs 1); a target the space cannot meet within the band fails the job.
 */
#include "common/bandfit.h"
#include "common/xalloc.h"
#include "worker/jobs/prune.h"

#include <stdlib.h>
#include <string.h>

#define BISECT_STEPS 100

/* Real widths of multiplier m. */
static void widths_of(const prune_space *sp, double m, double *ec)
{
    for (int u = 0; u < sp->n_units; u++) {
        double c = sp->units[u].channels, v = c * m / sp->width.max;
        ec[u] = v < 1 ? 1 : v > c ? c : v;
    }
}

int prune_uniform_widths(const pruner *p, int *w, json_t *info, double *mult, errbuf *eb)
{
    const prune_space *sp = &p->sp;
    int n = sp->n_units, *one = xcalloc((size_t)n, sizeof(int));
    double *want = xcalloc((size_t)n, sizeof(double)), *scale = xcalloc((size_t)n, sizeof(double));
    double target = p->goal.target * 1e6, a = 0, b = sp->width.max;
    for (int it = 0; it < BISECT_STEPS; it++) {
        double mid = 0.5 * (a + b);
        widths_of(sp, mid, want);
        if (prunespace_expected_macs(sp, want, NULL) > target)
            b = mid;
        else
            a = mid;
    }
    *mult = 0.5 * (a + b);
    widths_of(sp, *mult, want);
    for (int u = 0; u < n; u++) {
        one[u] = 1;
        scale[u] = 0.1 * want[u];
    }
    prunespace_uniform_widths(sp, *mult, w);
    double rounded = prunespace_macs(sp, w) / 1e6;
    bandfit_result r;
    int rc = prune_fit_band(p, want, scale, one, w, &r, eb);
    json_object_set_new(info, "width_multiplier", json_real(*mult));
    json_object_set_new(info, "rounded_mflops", json_real(rounded));
    json_object_set_new(info, "fitted",
                        json_pack("{s:f, s:i, s:b, s:f, s:I}", "mflops", r.macs / 1e6,
                                  "moved_channels", r.moved, "in_band", r.in_band, "distance",
                                  r.cost, "combinations", (json_int_t)r.combos));
    free(one);
    free(want);
    free(scale);
    return rc;
}
