/* prune_derive.c - the network a DMCP search found (ALGORITHMS.md 2.7; see prune.h).
 *
 * Expected sampling (ES): every unit's width is round(E[c] - 1e-4), the
 * reference code's rule, then - unlike the reference, which does not check
 * it - fitted into the +-1 % band around the target one channel at a time,
 * taking channels off the units whose last kept channel is least likely to
 * be kept, or adding the most likely next channels. Direct sampling (DS):
 * walk every unit's chain and redraw the whole structure until its real
 * MACs lie in the band. Both keep the sharing rules (a unit is one width)
 * and the block structure (partner units stay apart).
 */
#include "common/xalloc.h"
#include "worker/jobs/prune.h"

#include <stdlib.h>
#include <string.h>

#define DS_MAX_DRAWS 20000
#define DS_TAG       0x64735f73616d70ULL /* "ds_samp" */

static json_t *widths_json(const int *w, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_integer(w[i]));
    return a;
}

int prune_fit_band(pruner *p, int *w, const prune_chains *ch)
{
    const prune_space *sp = &p->sp;
    double lo = p->target * (1 - PRUNE_TARGET_TOL) * 1e6,
           hi = p->target * (1 + PRUNE_TARGET_TOL) * 1e6;
    double macs = ps_macs(sp, w);
    int moved = 0;
    while (macs > hi) {
        int best = -1;
        double best_p = 2;
        for (int u = 0; u < sp->n_units; u++) {
            if (!ps_move_ok(sp, w, u, w[u] - 1, sp->units[u].c_min))
                continue;
            double pk = chains_channel_p(ch, u, w[u] - 1);
            if (pk < best_p) {
                best_p = pk;
                best = u;
            }
        }
        if (best < 0)
            break;
        w[best]--;
        macs = ps_macs(sp, w);
        moved++;
    }
    while (macs < lo) {
        int best = -1;
        double best_p = -1;
        for (int u = 0; u < sp->n_units; u++) {
            if (!ps_move_ok(sp, w, u, w[u] + 1, 1))
                continue;
            w[u]++;
            double after = ps_macs(sp, w);
            w[u]--;
            double pk = chains_channel_p(ch, u, w[u]);
            if (after <= hi && pk > best_p) {
                best_p = pk;
                best = u;
            }
        }
        if (best < 0)
            break;
        w[best]++;
        macs = ps_macs(sp, w);
        moved++;
    }
    return moved;
}

int prune_derive_widths(pruner *p, int *w, json_t *info, errbuf *eb)
{
    const prune_space *sp = &p->sp;
    int n = sp->n_units;
    int *es = xcalloc((size_t)n, sizeof(int)), *ds = xcalloc((size_t)n, sizeof(int));
    double lo = p->target * (1 - PRUNE_TARGET_TOL), hi = p->target * (1 + PRUNE_TARGET_TOL);
    chains_es_widths(&p->ch, es);
    json_object_set_new(
        info, "es",
        json_pack("{s:o, s:f}", "widths", widths_json(es, n), "mflops", ps_macs(sp, es) / 1e6));
    int moved = prune_fit_band(p, es, &p->ch);
    double es_m = ps_macs(sp, es) / 1e6;
    json_object_set_new(info, "es_fitted",
                        json_pack("{s:o, s:f, s:i, s:b}", "widths", widths_json(es, n), "mflops",
                                  es_m, "moved_channels", moved, "in_band",
                                  es_m >= lo && es_m <= hi));
    /* direct samples within the band */
    rng r;
    rng_derive(&r, p->j.spec->seed ^ DS_TAG, 0, 0);
    json_t *samples = json_array();
    int want = p->ps.ds_samples, draws = 0, found = 0;
    if (p->ps.derive == PRUNE_DERIVE_DS && want < 1)
        want = 1;
    while (found < want && draws < DS_MAX_DRAWS) {
        chains_sample(&p->ch, &r, ds);
        draws++;
        double m = ps_macs(sp, ds) / 1e6;
        if (m < lo || m > hi)
            continue;
        if (found == 0 && p->ps.derive == PRUNE_DERIVE_DS)
            memcpy(w, ds, (size_t)n * sizeof(int));
        json_array_append_new(samples,
                              json_pack("{s:o, s:f}", "widths", widths_json(ds, n), "mflops", m));
        found++;
    }
    json_object_set_new(info, "ds", samples);
    json_object_set_new(info, "ds_draws", json_integer(draws));
    json_object_set_new(info, "used", json_string(p->ps.derive == PRUNE_DERIVE_DS ? "ds" : "es"));
    int rc = 0;
    if (p->ps.derive == PRUNE_DERIVE_ES)
        memcpy(w, es, (size_t)n * sizeof(int));
    else if (found == 0)
        rc = err_set(eb, ERR_INTERNAL,
                     "no direct sample within +-1 %% of %.4f MFLOPs in %d draws; use derive "
                     "\"es\"",
                     p->target, draws);
    if (rc == 0 && !(es_m >= lo && es_m <= hi) && p->ps.derive == PRUNE_DERIVE_ES)
        nas_say(&p->j, "warn", "the expected architecture has %.4f MFLOPs, outside [%.4f, %.4f]",
                es_m, lo, hi);
    if (p->j.d->world > 1) /* the same network everywhere, whatever the rounding */
        dist_bcast(w, (size_t)n * sizeof(int), 0);
    free(es);
    free(ds);
    return rc;
}
