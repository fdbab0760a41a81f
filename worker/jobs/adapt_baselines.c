/* adapt_baselines.c - scaling rules at the same FLOPs as DNA (ALGORITHMS.md 3.3; see adapt.h).
 *
 * From the existing network, one rule each:
 *   - uniform_width: every unit at c * m, the depths as they are;
 *   - uniform_depth: every stage at round(n * k) blocks (>= 1; new blocks
 *     copy the stage's last block). Depth alone moves the FLOPs in steps of
 *     whole blocks, so a width multiplier m closes the gap: of the depth
 *     multipliers, the one whose depths need the m closest to 1 (depth
 *     does the scaling, width only the rounding);
 *   - compound (EfficientNet): depths round(n * alpha^phi) with phi =
 *     log(T / F) / log(alpha * beta^2), the resolution fixed; the rule's
 *     width multiplier beta^phi is reported, m is solved again after the
 *     depths are rounded.
 * In each, m is the multiplier whose real widths c * m (at least 1) have
 * exactly the target's MACs at those depths (bisection: MACs grow with
 * m). The widths round(c * m) are then fitted into the +-1 % band by
 * common/bandfit.h, each unit near c * m (a tenth of its width costs 1);
 * a target the rule cannot meet within the band fails naming
 * adapt.target_*. Pure arithmetic on configs; the report names the
 * multipliers used.
 */
#include "common/bandfit.h"
#include "common/xalloc.h"
#include "worker/jobs/adapt.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define M_MAX        4.0
#define BISECT_STEPS 100
#define DEPTH_TRIES  8 /* uniform_depth: depth vectors tried, nearest m = 1 first */

static const prunespace_width DMCP_GRID = {0.1, 1.0, 0.1};

/* The existing network at widths w, stage s at d[s] blocks (new blocks
 * copy the stage's last block). */
static void cfg_of(const adapt_space *as, const int *w, const int *d, model_cfg *out)
{
    assert(as->n_stages <= ADAPTSPACE_MAX_STAGES);
    adaptspace_cfg(as, w, NULL, out);
    for (int s = as->n_stages - 1; s >= 0; s--) {
        if (d[s] < as->depth[s]) {
            adaptspace_cfg_remove_blocks(out, s, as->depth[s] - d[s]);
            continue;
        }
        for (int k = as->depth[s]; k < d[s]; k++) {
            int first[ADAPTSPACE_MAX_STAGES], depth[ADAPTSPACE_MAX_STAGES];
            adaptspace_stages(out, first, depth);
            int last = first[s] + depth[s] - 1, inner;
            if (modelcfg_is_resnet(out->arch)) {
                inner = out->stages[s].mids[depth[s] - 1];
            } else {
                const mc_mbblock *b = &out->blocks[last];
                int cin = last == 0 ? out->mb_stem : out->blocks[last - 1].out;
                inner = b->hidden == cin ? b->out : b->hidden == b->out ? b->hidden + 1 : b->hidden;
            }
            if (adaptspace_cfg_append_block(out, s, inner) < 0)
                break;
        }
    }
}

/* The existing network at depths d: nom with its widths as they are, big
 * with every width ceil(cap * c) (room for rounding up); units line up. */
typedef struct scaled {
    prune_space nom, big;
} scaled;

static void scaled_deinit(scaled *x)
{
    prune_space_deinit(&x->nom);
    prune_space_deinit(&x->big);
}

static int scaled_init(scaled *x, const adapt_space *as, const int *d, double cap, errbuf *eb)
{
    memset(x, 0, sizeof *x);
    model_cfg n, b;
    cfg_of(as, as->nominal, d, &n);
    int rc = prune_space_init(&x->nom, &n, &DMCP_GRID, eb);
    if (rc != 0)
        return rc;
    int *wb = xcalloc((size_t)x->nom.n_units, sizeof(int));
    for (int u = 0; u < x->nom.n_units; u++)
        wb[u] = (int)ceil(cap * x->nom.units[u].channels);
    prunespace_widths_to_cfg(&x->nom, wb, &b);
    free(wb);
    if ((rc = prune_space_init(&x->big, &b, &DMCP_GRID, eb)) != 0)
        return rc;
    if (x->big.n_units != x->nom.n_units)
        return err_set(eb, ERR_INTERNAL, "scaled network: %d units, the network %d", x->big.n_units,
                       x->nom.n_units);
    for (int u = 0; u < x->nom.n_units; u++)
        if (strcmp(x->big.units[u].name, x->nom.units[u].name) != 0)
            return err_set(eb, ERR_INTERNAL, "scaled unit %s does not match %s",
                           x->big.units[u].name, x->nom.units[u].name);
    return 0;
}

/* Real widths c * m, at least 1, of the units of nom. */
static void real_widths(const prune_space *nom, double m, double *ec)
{
    for (int u = 0; u < nom->n_units; u++)
        ec[u] = fmax(1.0, nom->units[u].channels * m);
}

/* The width multiplier in (0, M_MAX] whose real widths at depths d have
 * `target` MACs (M_MAX when even that is short). Returns -1 on a space
 * that cannot be built. */
static double solve_m(const adapt_space *as, const int *d, double target)
{
    scaled x;
    if (scaled_init(&x, as, d, 1.0, NULL) != 0) {
        scaled_deinit(&x);
        return -1;
    }
    double *ec = xcalloc((size_t)x.nom.n_units, sizeof(double)), a = 0, b = M_MAX;
    for (int it = 0; it < BISECT_STEPS; it++) {
        double mid = 0.5 * (a + b);
        real_widths(&x.nom, mid, ec);
        if (prunespace_expected_macs(&x.nom, ec, NULL) > target)
            b = mid;
        else
            a = mid;
    }
    free(ec);
    scaled_deinit(&x);
    return 0.5 * (a + b);
}

/* The network of multiplier m at depths d: widths round(c * m) fitted
 * into [lo, hi]; out gets it (the nearest network when nothing fits), r
 * the fit's outcome, *rounded the MFLOPs before the fit. Returns 0 or
 * ERR_INVALID naming `field`. */
static int fit_at(const adapt_space *as, const int *d, double m, double target_mflops,
                  const char *field, model_cfg *out, bandfit_result *r, double *rounded, errbuf *eb)
{
    scaled x;
    int rc = scaled_init(&x, as, d, fmax(1.0, 1.5 * m), eb);
    if (rc != 0) {
        scaled_deinit(&x);
        return rc;
    }
    int n = x.big.n_units, *w = xcalloc((size_t)n, sizeof(int));
    int *one = xcalloc((size_t)n, sizeof(int));
    double *want = xcalloc((size_t)n, sizeof(double)), *scale = xcalloc((size_t)n, sizeof(double));
    real_widths(&x.nom, m, want);
    for (int u = 0; u < n; u++) {
        long v = lround(want[u]);
        int C = x.big.units[u].channels;
        w[u] = v > C ? C : (int)v;
        one[u] = 1;
        scale[u] = 0.1 * want[u];
    }
    prunespace_fix_structure(&x.big, w, 0);
    *rounded = prunespace_macs(&x.big, w) / 1e6;
    bandfit_spec f = {.sp = &x.big,
                      .want = want,
                      .scale = scale,
                      .w_min = one,
                      .lo = target_mflops * (1 - ADAPT_TARGET_TOL) * 1e6,
                      .hi = target_mflops * (1 + ADAPT_TARGET_TOL) * 1e6};
    rc = bandfit_run(&f, w, NULL, r);
    if (rc != 0)
        rc = bandfit_error(eb, field, target_mflops, &f, r);
    prunespace_widths_to_cfg(&x.big, w, out);
    free(w);
    free(one);
    free(want);
    free(scale);
    scaled_deinit(&x);
    return rc;
}

static void depths_of(const adapt_space *as, double k, int *d)
{
    for (int s = 0; s < as->n_stages; s++) {
        long v = lround(as->depth0[s] * k);
        d[s] = v < 1 ? 1 : v > MC_MAX_STAGE_BLOCKS / 2 ? MC_MAX_STAGE_BLOCKS / 2 : (int)v;
    }
}

typedef struct depth_choice {
    int d[ADAPTSPACE_MAX_STAGES];
    double k, m, gap;
} depth_choice;

static int by_gap(const void *x, const void *y)
{
    const depth_choice *a = x, *b = y;
    if (a->gap != b->gap)
        return a->gap < b->gap ? -1 : 1;
    return (a->k > b->k) - (a->k < b->k);
}

/* uniform_depth: every distinct depth vector of multipliers 0.01..4 with
 * its m, tried nearest m = 1 first. */
static int uniform_depth(const adapt_space *as, double target_mflops, const char *field,
                         model_cfg *out, bandfit_result *r, double *rounded, depth_choice *best,
                         errbuf *eb)
{
    depth_choice *c = xcalloc(400, sizeof *c);
    int n = 0, prev[ADAPTSPACE_MAX_STAGES] = {0}, rc = ERR_INVALID;
    for (int i = 1; i <= 400; i++) {
        depth_choice x = {.k = 0.01 * i};
        depths_of(as, x.k, x.d);
        if (memcmp(x.d, prev, (size_t)as->n_stages * sizeof(int)) == 0)
            continue;
        memcpy(prev, x.d, sizeof prev);
        x.m = solve_m(as, x.d, target_mflops * 1e6);
        if (x.m <= 0 || x.m >= M_MAX)
            continue;
        x.gap = fabs(log(x.m));
        c[n++] = x;
    }
    qsort(c, (size_t)n, sizeof *c, by_gap);
    if (n == 0)
        rc = err_set(eb, ERR_INVALID, "%s: no uniform_depth network reaches %.4f MFLOPs", field,
                     target_mflops);
    for (int i = 0; i < n && i < DEPTH_TRIES; i++) {
        errbuf e2;
        rc = fit_at(as, c[i].d, c[i].m, target_mflops, field, out, r, rounded, i == 0 ? eb : &e2);
        *best = c[i];
        if (rc != ERR_INVALID) /* in the band, or a failure another depth cannot mend */
            break;
    }
    free(c);
    return rc;
}

int adapt_baseline(const adapt_spec *sp, const model_cfg *c, double target_mflops, model_cfg *out,
                   json_t *info, errbuf *eb)
{
    adapt_space as;
    int rc = adaptspace_init_super(&as, c, eb);
    if (rc != 0)
        return rc;
    const char *field = adapt_target_field(sp);
    double full = modelcfg_macs(c), m = 1, k = 1, rounded = 0;
    int d[ADAPTSPACE_MAX_STAGES];
    bandfit_result r;
    memset(&r, 0, sizeof r);
    memcpy(d, as.depth0, sizeof d);
    switch (sp->method) {
    case ADAPT_UNIFORM_WIDTH:
        m = solve_m(&as, d, target_mflops * 1e6);
        rc = fit_at(&as, d, m, target_mflops, field, out, &r, &rounded, eb);
        break;
    case ADAPT_UNIFORM_DEPTH: {
        depth_choice best = {.k = 1, .m = 1};
        rc = uniform_depth(&as, target_mflops, field, out, &r, &rounded, &best, eb);
        memcpy(d, best.d, sizeof d);
        k = best.k;
        m = best.m;
        break;
    }
    case ADAPT_COMPOUND: {
        double phi = log(target_mflops * 1e6 / full) /
                     log(sp->compound_alpha * sp->compound_beta * sp->compound_beta);
        k = pow(sp->compound_alpha, phi);
        depths_of(&as, k, d);
        m = solve_m(&as, d, target_mflops * 1e6);
        rc = fit_at(&as, d, m, target_mflops, field, out, &r, &rounded, eb);
        json_object_set_new(info, "phi", json_real(phi));
        json_object_set_new(info, "width_multiplier_rule", json_real(pow(sp->compound_beta, phi)));
        break;
    }
    case ADAPT_DNA:
        rc = err_set(eb, ERR_INVALID, "dna is not a baseline");
        break;
    }
    if (rc == 0) {
        json_object_set_new(info, "width_multiplier", json_real(m));
        json_object_set_new(info, "depth_multiplier", json_real(k));
        json_object_set_new(info, "depths", nas_int_array(d, as.n_stages));
        json_object_set_new(info, "rounded_mflops", json_real(rounded));
        json_object_set_new(info, "moved_channels", json_integer(r.moved));
        json_object_set_new(info, "distance", json_real(r.cost));
        json_object_set_new(info, "in_band", json_boolean(r.in_band));
    }
    adaptspace_deinit(&as);
    return rc;
}
