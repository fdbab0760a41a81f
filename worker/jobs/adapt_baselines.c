/* adapt_baselines.c - scaling rules at the same FLOPs as DNA (ALGORITHMS.md 3.3; see adapt.h).
 *
 * From the existing network, one rule each, fitted into the +-1 % band:
 *   - uniform_width: every unit at round(c * m) (>= 1 channel), the
 *     multiplier m whose net has the most MACs under the top of the band,
 *     then largest-remainder rounding: while under the band, the units
 *     that rounding cut most get one channel more (all units move together
 *     with m, so on narrow nets the plain rounding can miss the band);
 *   - uniform_depth: every stage at round(n * k) blocks (>= 1; new blocks
 *     copy the stage's last block). Depth alone moves the FLOPs in steps of
 *     whole blocks, so a width multiplier closes the gap to the band: of
 *     the depth multipliers whose net can be fitted, the one that needs
 *     the width multiplier closest to 1 is taken (depth does the scaling,
 *     width only the rounding);
 *   - compound (EfficientNet): depth multiplier alpha^phi and width
 *     multiplier beta^phi with phi = log(T / F) / log(alpha * beta^2), the
 *     resolution fixed; after rounding the depths, the width multiplier
 *     nearest beta^phi that fits the band is used.
 * Pure arithmetic on configs; the report names the multipliers used.
 */
#include "common/xalloc.h"
#include "worker/jobs/adapt.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define M_MIN  0.02
#define M_MAX  4.0
#define M_GRID 4000

/* Widths of multiplier m: round(c * m), at least 1, partners apart. */
static void widths_of(const adapt_space *as, double m, int *w)
{
    for (int u = 0; u < as->sp.n_units; u++) {
        long v = lround(as->nominal[u] * m);
        w[u] = v < 1 ? 1 : (int)v;
    }
    /* one channel at a time; C is the existing width here, so a unit above
     * it moves down */
    ps_fix_structure(&as->sp, w, 0);
}

/* The existing network at widths w, stage s at d[s] blocks (new blocks
 * copy the stage's last block). */
static void cfg_of(const adapt_space *as, const int *w, const int *d, model_cfg *out)
{
    assert(as->n_stages <= AS_MAX_STAGES);
    as_cfg(as, w, NULL, out);
    for (int s = as->n_stages - 1; s >= 0; s--) {
        if (d[s] < as->depth[s]) {
            as_cfg_remove_blocks(out, s, as->depth[s] - d[s]);
            continue;
        }
        for (int k = as->depth[s]; k < d[s]; k++) {
            int first[AS_MAX_STAGES], depth[AS_MAX_STAGES];
            as_stages(out, first, depth);
            int last = first[s] + depth[s] - 1, inner;
            if (out->arch == MC_RESNET_CIFAR) {
                inner = out->stages[s].mids[depth[s] - 1];
            } else {
                const mc_mbblock *b = &out->blocks[last];
                int cin = last == 0 ? out->mb_stem : out->blocks[last - 1].out;
                inner = b->hidden == cin ? b->out : b->hidden == b->out ? b->hidden + 1 : b->hidden;
            }
            if (as_cfg_append_block(out, s, inner) < 0)
                break;
        }
    }
}

static double macs_of(const adapt_space *as, const int *w, const int *d)
{
    model_cfg c;
    cfg_of(as, w, d, &c);
    return modelcfg_macs(&c);
}

/* Whether unit u may take width v: apart from its partners. */
static int apart(const prune_space *sp, const int *w, int u, int v)
{
    if (sp->units[u].partner >= 0 && w[sp->units[u].partner] == v)
        return 0;
    for (int x = 0; x < sp->n_units; x++)
        if (sp->units[x].partner == u && w[x] == v)
            return 0;
    return 1;
}

/* Largest-remainder rounding of multiplier m: the widths of m, then the
 * units that rounding cut most (c*m - w largest) get one channel more,
 * while the net stays <= hi, until it reaches lo. Returns the MACs. */
static double round_into(const adapt_space *as, double m, const int *d, double lo, double hi,
                         int *w)
{
    widths_of(as, m, w);
    double macs = macs_of(as, w, d);
    int n = as->sp.n_units;
    char *tried = xcalloc((size_t)n, 1);
    while (macs < lo) {
        int best = -1;
        double cut = -HUGE_VAL;
        for (int u = 0; u < n; u++) {
            double c = as->nominal[u] * m - w[u];
            if (!tried[u] && c > cut && apart(&as->sp, w, u, w[u] + 1)) {
                cut = c;
                best = u;
            }
        }
        if (best < 0)
            break;
        tried[best] = 1;
        w[best]++;
        double x = macs_of(as, w, d);
        if (x > hi)
            w[best]--;
        else
            macs = x;
    }
    free(tried);
    return macs;
}

/* The width multiplier for depths d whose net has the most MACs <= hi
 * (ties: the one nearest `near`), then rounded into [lo, hi] if it can be;
 * w gets the widths, *macs their MACs (-1: nothing fits). */
static double fit_width(const adapt_space *as, const int *d, double lo, double hi, double near,
                        int *w, double *macs)
{
    double best_m = -1, best = -1;
    int *t = xcalloc((size_t)as->sp.n_units, sizeof(int));
    for (int i = 0; i <= M_GRID; i++) {
        double m = M_MIN + (M_MAX - M_MIN) * i / M_GRID;
        widths_of(as, m, t);
        double x = macs_of(as, t, d);
        if (x <= hi && (x > best || (x == best && fabs(m - near) < fabs(best_m - near)))) {
            best = x;
            best_m = m;
        }
    }
    free(t);
    *macs = best_m > 0 ? round_into(as, best_m, d, lo, hi, w) : -1;
    return best_m;
}

static void depths_of(const adapt_space *as, double k, int *d)
{
    for (int s = 0; s < as->n_stages; s++) {
        long v = lround(as->depth0[s] * k);
        d[s] = v < 1 ? 1 : v > MC_MAX_STAGE_BLOCKS / 2 ? MC_MAX_STAGE_BLOCKS / 2 : (int)v;
    }
}

int adapt_baseline(const adapt_spec *sp, const model_cfg *c, double target_mflops, model_cfg *out,
                   json_t *info, errbuf *eb)
{
    adapt_space as;
    int rc = as_init_super(&as, c, eb);
    if (rc != 0)
        return rc;
    double lo = target_mflops * (1 - ADAPT_TARGET_TOL) * 1e6;
    double hi = target_mflops * (1 + ADAPT_TARGET_TOL) * 1e6;
    double full = modelcfg_macs(c), macs = -1, m = 1, k = 1;
    int d[AS_MAX_STAGES];
    int *w = xcalloc((size_t)as.sp.n_units, sizeof(int));
    int *tw = xcalloc((size_t)as.sp.n_units, sizeof(int));
    memcpy(d, as.depth0, sizeof d);
    switch (sp->method) {
    case ADAPT_UNIFORM_WIDTH:
        m = fit_width(&as, d, lo, hi, 1.0, w, &macs);
        break;
    case ADAPT_UNIFORM_DEPTH: {
        /* every distinct depth vector of multipliers 0.01..4 */
        double best_gap = HUGE_VAL;
        int prev[AS_MAX_STAGES] = {0}, cand[AS_MAX_STAGES] = {0};
        for (int i = 1; i <= 400; i++) {
            double ki = 0.01 * i;
            depths_of(&as, ki, cand);
            if (memcmp(cand, prev, (size_t)as.n_stages * sizeof(int)) == 0)
                continue;
            memcpy(prev, cand, sizeof prev);
            double x, mi = fit_width(&as, cand, lo, hi, 1.0, tw, &x);
            if (x < lo || mi <= 0)
                continue;
            double gap = fabs(log(mi));
            if (gap < best_gap) {
                best_gap = gap;
                m = mi;
                k = ki;
                macs = x;
                memcpy(d, cand, sizeof d);
                memcpy(w, tw, (size_t)as.sp.n_units * sizeof(int));
            }
        }
        break;
    }
    case ADAPT_COMPOUND: {
        double phi = log(target_mflops * 1e6 / full) /
                     log(sp->compound_alpha * sp->compound_beta * sp->compound_beta);
        k = pow(sp->compound_alpha, phi);
        depths_of(&as, k, d);
        double wn = pow(sp->compound_beta, phi);
        m = fit_width(&as, d, lo, hi, wn, w, &macs);
        json_object_set_new(info, "phi", json_real(phi));
        json_object_set_new(info, "width_multiplier_rule", json_real(wn));
        break;
    }
    case ADAPT_DNA:
        rc = err_set(eb, ERR_INVALID, "dna is not a baseline");
        break;
    }
    if (rc == 0 && (m <= 0 || macs < 0))
        rc = err_set(eb, ERR_INVALID, "no %s network fits under %.4f MFLOPs",
                     adaptspec_method_name(sp->method), hi / 1e6);
    if (rc == 0) {
        cfg_of(&as, w, d, out);
        json_object_set_new(info, "width_multiplier", json_real(m));
        json_object_set_new(info, "depth_multiplier", json_real(k));
        json_object_set_new(info, "depths", nas_int_array(d, as.n_stages));
        json_object_set_new(info, "in_band", json_boolean(macs >= lo && macs <= hi));
    }
    free(w);
    free(tw);
    as_deinit(&as);
    return rc;
}
