/* adapt_derive.c - the network a DNA search found (ALGORITHMS.md 3.2(f); see adapt.h).
 *
 * Widths round(E[c]) and depths round(E[depth]), then fitted into the
 * +-1 % band around the target one channel or one block at a time: the
 * candidate least likely to be kept goes while the net is too big (the
 * last kept channel of a unit, P of its group; the last kept block of a
 * stage, its q), the most likely next one comes while it is too small. The
 * proposal moves whole groups; single channels land closer to the target,
 * as in prune_derive.c. Sharing rules and block structure are kept.
 */
#include "common/xalloc.h"
#include "worker/jobs/adapt.h"

#include <stdlib.h>
#include <string.h>

/* Units that a layer of a kept block (or outside the blocks) reads or writes. */
static void live_units(const adapt_space *as, const int *d, char *live)
{
    memset(live, 0, (size_t)as->sp.n_units);
    for (int i = 0; i < as->sp.n_layers; i++) {
        const ps_layer *l = &as->sp.layers[i];
        if (l->blk >= 0) {
            int s = as_stage_of(as, l->blk);
            if (l->blk - as->first[s] >= d[s])
                continue;
        }
        if (l->in_unit >= 0)
            live[l->in_unit] = 1;
        if (l->out_unit >= 0)
            live[l->out_unit] = 1;
    }
}

int dna_fit_band(const adapt_state *st, int *w, int *d, double lo, double hi)
{
    const adapt_space *as = &st->as;
    const prune_space *sp = &as->sp;
    char *live = xcalloc((size_t)sp->n_units, 1);
    double macs = as_macs(as, w, d);
    int moved = 0;
    while (macs > hi) {
        int bu = -1, bs = -1;
        double best = 2;
        live_units(as, d, live);
        for (int u = 0; u < sp->n_units; u++) {
            if (!live[u] || !ps_move_ok(sp, w, u, w[u] - 1, sp->units[u].c_min))
                continue;
            double p = chains_channel_p(&st->ch, u, w[u] - 1);
            if (p < best) {
                best = p;
                bu = u;
            }
        }
        for (int s = 0; s < as->n_stages; s++) {
            if (d[s] <= 1)
                continue;
            double q = st->dc.q[as->first[s] + d[s] - 1];
            if (q < best) {
                best = q;
                bs = s;
                bu = -1;
            }
        }
        if (bs >= 0)
            d[bs]--;
        else if (bu >= 0)
            w[bu]--;
        else
            break;
        macs = as_macs(as, w, d);
        moved++;
    }
    while (macs < lo) {
        int bu = -1, bs = -1;
        double best = -1;
        live_units(as, d, live);
        for (int u = 0; u < sp->n_units; u++) {
            if (!live[u] || !ps_move_ok(sp, w, u, w[u] + 1, 1))
                continue;
            w[u]++;
            double after = as_macs(as, w, d);
            w[u]--;
            double p = chains_channel_p(&st->ch, u, w[u]);
            if (after <= hi && p > best) {
                best = p;
                bu = u;
            }
        }
        for (int s = 0; s < as->n_stages; s++) {
            if (d[s] >= as->depth[s])
                continue;
            d[s]++;
            double after = as_macs(as, w, d);
            d[s]--;
            double q = st->dc.q[as->first[s] + d[s]];
            if (after <= hi && q > best) {
                best = q;
                bs = s;
                bu = -1;
            }
        }
        if (bs >= 0)
            d[bs]++;
        else if (bu >= 0)
            w[bu]++;
        else
            break;
        macs = as_macs(as, w, d);
        moved++;
    }
    free(live);
    return moved;
}

void dna_derive(adapter *a, int *w, int *d, json_t *info)
{
    const adapt_state *st = a->st;
    const adapt_space *as = &st->as;
    double lo = a->target * (1 - ADAPT_TARGET_TOL), hi = a->target * (1 + ADAPT_TARGET_TOL);
    adapt_expected_arch(st, w, d);
    double es = as_macs(as, w, d) / 1e6;
    json_object_set_new(info, "expected",
                        json_pack("{s:o, s:o, s:f}", "widths", nas_int_array(w, as->sp.n_units),
                                  "depths", nas_int_array(d, as->n_stages), "mflops", es));
    int moved = dna_fit_band(st, w, d, lo * 1e6, hi * 1e6);
    double m = as_macs(as, w, d) / 1e6;
    json_object_set_new(info, "fitted",
                        json_pack("{s:o, s:o, s:f, s:i, s:b}", "widths",
                                  nas_int_array(w, as->sp.n_units), "depths",
                                  nas_int_array(d, as->n_stages), "mflops", m, "moves", moved,
                                  "in_band", m >= lo && m <= hi));
    if (!(m >= lo && m <= hi))
        nas_say(&a->j, "warn", "the derived network has %.4f MFLOPs, outside [%.4f, %.4f]", m, lo,
                hi);
    if (a->j.d->world > 1) { /* the same network everywhere, whatever the rounding */
        dist_bcast(w, (size_t)as->sp.n_units * sizeof(int), 0);
        dist_bcast(d, (size_t)as->n_stages * sizeof(int), 0);
    }
}
