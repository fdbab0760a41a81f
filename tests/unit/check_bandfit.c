/* check_bandfit.c - fitting a network of a search space into a MACs band.
 *
 * Random wanted architectures (real widths in each unit's range, real
 * depths) at many seeds and targets, in DMCP spaces and DNA window spaces
 * of ResNet-20, MobileNetV2 (x0.5 and x1.0) and the small networks of the
 * job tests: the fit lands in the band by the model config's own MAC count
 * (modelcfg_macs, independent of the space's layer table), keeps every
 * width in its range and partners apart, and no single channel or block
 * moved toward the wanted network would still lie in the band. On small
 * ranges an exhaustive enumeration is the second computation: the fit
 * finds a network in the band exactly when one exists, as near to the
 * wanted one as the best there is (within a factor of 2), and otherwise
 * fails with a network at most twice as far from the band as the nearest. A band outside the space
 * fails with the smallest (or largest) network.
 */
#include "common/adaptspace.h"
#include "common/bandfit.h"
#include "common/err.h"
#include "common/modelcfg.h"
#include "common/prunespace.h"
#include "common/rng.h"
#include "common/xalloc.h"
#include "tests/unit/testutil.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_bandfit(void);

#define R20                                                                                        \
    "{\"arch\":\"resnet_cifar\",\"image_size\":32,\"in_channels\":3,\"num_classes\":10,"           \
    "\"depth\":20,\"widths\":[16,32,64]}"
#define MBV2_050                                                                                   \
    "{\"arch\":\"mobilenetv2\",\"image_size\":32,\"in_channels\":3,\"num_classes\":10,"            \
    "\"width_mult\":0.5}"
#define MBV2_100                                                                                   \
    "{\"arch\":\"mobilenetv2\",\"image_size\":32,\"in_channels\":3,\"num_classes\":10,"            \
    "\"width_mult\":1.0}"
/* the job tests' networks (check_adapt.c, check_prune.c) */
#define RESNET_JOB                                                                                 \
    "{\"arch\":\"resnet_cifar\",\"image_size\":12,\"in_channels\":1,\"num_classes\":4,"            \
    "\"stem\":8,\"stages\":[{\"width\":8,\"mids\":[8,8]},{\"width\":16,\"mids\":[16,16]}]}"
#define MBV2_JOB                                                                                   \
    "{\"arch\":\"mobilenetv2\",\"image_size\":12,\"in_channels\":1,\"num_classes\":4,"             \
    "\"stem\":8,\"blocks\":[{\"hidden\":8,\"out\":8,\"stride\":1},"                                \
    "{\"hidden\":24,\"out\":12,\"stride\":2},{\"hidden\":36,\"out\":12,\"stride\":1},"             \
    "{\"hidden\":36,\"out\":16,\"stride\":2},{\"hidden\":48,\"out\":16,\"stride\":1}],"            \
    "\"last\":24}"
#define RESNET_SMALL                                                                               \
    "{\"arch\":\"resnet_cifar\",\"image_size\":8,\"in_channels\":3,\"num_classes\":5,"             \
    "\"stem\":8,\"stages\":[{\"width\":8,\"mids\":[8,6]},{\"width\":16,\"mids\":[12,16,10]}]}"

static const prunespace_width DMCP_W = {0.1, 1.0, 0.1};
static const adaptspace_window DNA_W = {0.25, 1.5, 0.1};

/* A problem over a DNA window space (depths free) or a DMCP space (widths only). */
typedef struct problem {
    adapt_space as; /* the space; for DMCP only as.sp is used */
    int dna;
    bandfit_spec f;
    double *want, want_d[ADAPTSPACE_MAX_STAGES];
    int *w_min, *w_max, *w0, d0[ADAPTSPACE_MAX_STAGES];
} problem;

static void problem_init(problem *p, const char *model, int dna)
{
    memset(p, 0, sizeof *p);
    model_cfg c;
    tu_model_cfg(&c, model);
    errbuf eb;
    p->dna = dna;
    if (dna)
        ck_assert_msg(adaptspace_init(&p->as, &c, &DNA_W, &eb) == 0, "%s", eb.msg);
    else
        ck_assert_msg(prune_space_init(&p->as.sp, &c, &DMCP_W, &eb) == 0, "%s", eb.msg);
    int nu = p->as.sp.n_units;
    p->want = xcalloc((size_t)nu, sizeof(double));
    p->w_min = xcalloc((size_t)nu, sizeof(int));
    p->w_max = xcalloc((size_t)nu, sizeof(int));
    p->w0 = xcalloc((size_t)nu, sizeof(int));
    p->f = (bandfit_spec){.sp = &p->as.sp, .want = p->want, .w_min = p->w_min, .w_max = p->w_max};
    for (int u = 0; u < nu; u++) {
        p->w_min[u] = p->as.sp.units[u].c_min;
        p->w_max[u] = p->as.sp.units[u].channels;
    }
    if (dna) {
        p->f.n_stages = p->as.n_stages;
        p->f.first = p->as.first;
        p->f.depth_max = p->as.depth;
        p->f.want_depth = p->want_d;
    }
}

static void problem_deinit(problem *p)
{
    if (p->dna)
        adaptspace_deinit(&p->as);
    else
        prune_space_deinit(&p->as.sp);
    free(p->want);
    free(p->w_min);
    free(p->w_max);
    free(p->w0);
}

/* Whether unit u is read or written by a layer of a kept block. */
static int unit_live(const problem *p, const int *d, int u)
{
    const prune_space *sp = &p->as.sp;
    for (int l = 0; l < sp->n_layers; l++) {
        const prunespace_layer *x = &sp->layers[l];
        if (x->in_unit != u && x->out_unit != u)
            continue;
        if (!p->dna || x->blk < 0)
            return 1;
        int s = adaptspace_stage_of(&p->as, x->blk);
        if (x->blk - p->as.first[s] < d[s])
            return 1;
    }
    return 0;
}

static int partners_apart(const problem *p, const int *w, const int *d)
{
    const prune_space *sp = &p->as.sp;
    for (int u = 0; u < sp->n_units; u++) {
        int q = sp->units[u].partner;
        if (q >= 0 && w[u] == w[q] && unit_live(p, d, u) && unit_live(p, d, q))
            return 0;
    }
    return 1;
}

/* MACs by the model config's own count. */
static double cfg_macs(const problem *p, const int *w, const int *d)
{
    model_cfg c;
    if (p->dna)
        adaptspace_cfg(&p->as, w, d, &c);
    else
        prunespace_widths_to_cfg(&p->as.sp, w, &c);
    return modelcfg_macs(&c);
}

/* A random wanted network in the ranges, and its rounding as the start. */
static void random_want(problem *p, rng *r)
{
    const prune_space *sp = &p->as.sp;
    for (int u = 0; u < sp->n_units; u++) {
        p->want[u] = p->w_min[u] + (p->w_max[u] - p->w_min[u]) * (double)rng_uniform(r);
        p->w0[u] = (int)lround(p->want[u]);
    }
    prunespace_fix_structure(sp, p->w0, 0);
    for (int s = 0; s < p->f.n_stages; s++) {
        p->want_d[s] = 1 + (p->as.depth[s] - 1) * (double)rng_uniform(r);
        p->d0[s] = (int)lround(p->want_d[s]);
    }
}

static double distance(const problem *p, const int *w, const int *d)
{
    double c = 0;
    for (int u = 0; u < p->as.sp.n_units; u++)
        if (unit_live(p, d, u)) {
            double x = (w[u] - p->want[u]) / p->as.sp.units[u].group;
            c += x * x;
        }
    for (int s = 0; s < p->f.n_stages; s++)
        c += (d[s] - p->want_d[s]) * (d[s] - p->want_d[s]);
    return c;
}

/* The fit lands in the band with a valid network, and no move of one
 * channel or one block toward the wanted network stays in it. */
static void check_fit(problem *p, const char *what)
{
    int nu = p->as.sp.n_units, w[512], d[ADAPTSPACE_MAX_STAGES];
    ck_assert_int_le(nu, 512);
    memcpy(w, p->w0, (size_t)nu * sizeof(int));
    memcpy(d, p->d0, sizeof d);
    bandfit_result r;
    int rc = bandfit_run(&p->f, w, d, &r);
    double m = cfg_macs(p, w, d);
    ck_assert_msg(rc == 0, "%s: no fit into [%.0f, %.0f] (nearest %.0f, space %.0f..%.0f)", what,
                  p->f.lo, p->f.hi, r.macs, r.min_macs, r.max_macs);
    ck_assert_msg(m >= p->f.lo && m <= p->f.hi, "%s: %.0f MACs outside [%.0f, %.0f]", what, m,
                  p->f.lo, p->f.hi);
    ck_assert(m == r.macs && r.in_band);
    ck_assert(fabs(r.cost - distance(p, w, d)) < 1e-9 * (1 + r.cost));
    for (int u = 0; u < nu; u++)
        ck_assert(w[u] >= p->w_min[u] && w[u] <= p->w_max[u]);
    for (int s = 0; s < p->f.n_stages; s++)
        ck_assert(d[s] >= 1 && d[s] <= p->as.depth[s]);
    ck_assert_msg(partners_apart(p, w, d), "%s: partners equal", what);
    for (int u = 0; u < nu; u++) {
        if (!unit_live(p, d, u))
            continue;
        int old = w[u], v = p->want[u] > old ? old + 1 : old - 1;
        if (fabs(v - p->want[u]) >= fabs(old - p->want[u]) || v < p->w_min[u] || v > p->w_max[u])
            continue;
        w[u] = v;
        double mv = cfg_macs(p, w, d);
        ck_assert_msg(!(mv >= p->f.lo && mv <= p->f.hi && partners_apart(p, w, d)),
                      "%s: unit %s could move to %d, nearer its wanted %.2f", what,
                      p->as.sp.units[u].name, v, p->want[u]);
        w[u] = old;
    }
}

/* The spaces of the benchmark networks: random wanted networks, targets
 * across the space, every one in the band. */
static void fit_many(const char *model, int dna, int seeds)
{
    problem p;
    problem_init(&p, model, dna);
    const double at[6] = {0.02, 0.15, 0.35, 0.55, 0.75, 0.97};
    for (int seed = 1; seed <= seeds; seed++) {
        rng r;
        rng_seed(&r, (uint64_t)seed * 7919u);
        random_want(&p, &r);
        int nu = p.as.sp.n_units, w[512], d[ADAPTSPACE_MAX_STAGES];
        for (int u = 0; u < nu; u++)
            w[u] = p.w_min[u];
        prunespace_fix_structure(&p.as.sp, w, 0);
        for (int s = 0; s < ADAPTSPACE_MAX_STAGES; s++)
            d[s] = 1;
        double lo = cfg_macs(&p, w, d);
        prunespace_full_widths(&p.as.sp, w);
        double hi = cfg_macs(&p, w, p.dna ? p.as.depth : NULL);
        for (int t = 0; t < 6; t++) {
            double target = lo + at[t] * (hi - lo);
            p.f.lo = target * 0.99;
            p.f.hi = target * 1.01;
            char what[200];
            snprintf(what, sizeof what, "%.40s %s seed %d target %.4f MMACs", model,
                     dna ? "dna" : "dmcp", seed, target / 1e6);
            check_fit(&p, what);
        }
    }
    problem_deinit(&p);
}

START_TEST(resnet20_dmcp)
{
    fit_many(R20, 0, 6);
}
END_TEST

START_TEST(resnet20_dna)
{
    fit_many(R20, 1, 6);
}
END_TEST

START_TEST(mbv2_dmcp)
{
    fit_many(MBV2_050, 0, 3);
    fit_many(MBV2_100, 0, 3);
}
END_TEST

START_TEST(mbv2_dna)
{
    fit_many(MBV2_050, 1, 3);
    fit_many(MBV2_100, 1, 3);
}
END_TEST

/* ---- exhaustive comparison on small ranges ------------------------------------------ */

/* Every network of the ranges (units only in dropped blocks at the start,
 * as the fit leaves them): MACs and distance. */
typedef struct brute {
    double *macs, *cost;
    long n, cap;
} brute;

static void brute_walk(const problem *p, int *w, int *d, int k, brute *b)
{
    int nu = p->as.sp.n_units, ns = p->f.n_stages;
    if (k < nu) {
        for (int v = p->w_min[k]; v <= p->w_max[k]; v++) {
            w[k] = v;
            brute_walk(p, w, d, k + 1, b);
        }
        w[k] = p->w0[k];
        return;
    }
    if (k < nu + ns) {
        for (int v = 1; v <= p->as.depth[k - nu]; v++) {
            d[k - nu] = v;
            brute_walk(p, w, d, k + 1, b);
        }
        return;
    }
    for (int u = 0; u < nu; u++)
        if (!unit_live(p, d, u) && w[u] != p->w0[u])
            return;
    if (!partners_apart(p, w, d))
        return;
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 4096;
        b->macs = xrealloc(b->macs, (size_t)b->cap * sizeof(double));
        b->cost = xrealloc(b->cost, (size_t)b->cap * sizeof(double));
    }
    b->macs[b->n] = cfg_macs(p, w, d);
    b->cost[b->n++] = distance(p, w, d);
}

/* Small ranges (+-radius channels around the wanted widths) on a
 * job-test network, targets around the start's MACs: the fit against
 * every network of the ranges. Returns the worst ratio of the fit's
 * distance (+ 1/4) to the best one's (+ 1/4). */
static double compare_exhaustive(const char *model, int dna, int radius, int seeds, int *n_unreach)
{
    problem p;
    problem_init(&p, model, dna);
    int nu = p.as.sp.n_units;
    double worst = 1;
    for (int seed = 1; seed <= seeds; seed++) {
        rng r;
        rng_seed(&r, 1000u + (uint64_t)seed);
        for (int u = 0; u < nu; u++) {
            p.w_min[u] = p.as.sp.units[u].c_min;
            p.w_max[u] = p.as.sp.units[u].channels;
        }
        random_want(&p, &r);
        for (int u = 0; u < nu; u++) {
            int c = (int)lround(p.want[u]);
            p.w_min[u] = c - radius < p.as.sp.units[u].c_min ? p.as.sp.units[u].c_min : c - radius;
            p.w_max[u] =
                c + radius > p.as.sp.units[u].channels ? p.as.sp.units[u].channels : c + radius;
        }
        int w[64], d[ADAPTSPACE_MAX_STAGES];
        memcpy(w, p.w0, (size_t)nu * sizeof(int));
        memcpy(d, p.d0, sizeof d);
        brute b = {0};
        brute_walk(&p, w, d, 0, &b);
        double m0 = cfg_macs(&p, p.w0, p.d0);
        for (int t = 0; t < 10; t++) {
            double target = m0 * (0.7 + 0.06 * t + 0.013 * (double)rng_uniform(&r));
            p.f.lo = target * 0.99;
            p.f.hi = target * 1.01;
            double best = HUGE_VAL, near = HUGE_VAL;
            for (long i = 0; i < b.n; i++) {
                double m = b.macs[i];
                if (m >= p.f.lo && m <= p.f.hi)
                    best = fmin(best, b.cost[i]);
                else
                    near = fmin(near, m < p.f.lo ? p.f.lo - m : m - p.f.hi);
            }
            memcpy(w, p.w0, (size_t)nu * sizeof(int));
            memcpy(d, p.d0, sizeof d);
            bandfit_result res;
            int rc = bandfit_run(&p.f, w, d, &res);
            char what[160];
            snprintf(what, sizeof what, "%.30s seed %d target %.0f", model, seed, target);
            if (best == HUGE_VAL) {
                ck_assert_msg(rc == ERR_INVALID, "%s: fit claims a network nothing reaches", what);
                ck_assert(!res.in_band && res.macs == cfg_macs(&p, w, d));
                double dist = res.macs < p.f.lo ? p.f.lo - res.macs : res.macs - p.f.hi;
                ck_assert_msg(dist >= near && dist <= 2 * near + 1,
                              "%s: nearest %.0f MACs off, the ranges reach %.0f", what, dist, near);
                (*n_unreach)++;
                continue;
            }
            ck_assert_msg(rc == 0, "%s: the fit missed the band that %g reaches", what, best);
            double m = cfg_macs(&p, w, d);
            ck_assert(m >= p.f.lo && m <= p.f.hi && partners_apart(&p, w, d));
            double c = distance(&p, w, d);
            ck_assert(c >= best - 1e-9);
            worst = fmax(worst, (c + 0.25) / (best + 0.25));
        }
        free(b.macs);
        free(b.cost);
    }
    problem_deinit(&p);
    return worst;
}

START_TEST(small_nets_against_exhaustive_search)
{
    int unreach = 0;
    double worst = 1;
    worst = fmax(worst, compare_exhaustive(RESNET_JOB, 1, 1, 8, &unreach));
    worst = fmax(worst, compare_exhaustive(RESNET_JOB, 0, 2, 8, &unreach));
    worst = fmax(worst, compare_exhaustive(RESNET_SMALL, 0, 1, 8, &unreach));
    worst = fmax(worst, compare_exhaustive(MBV2_JOB, 1, 1, 8, &unreach));
    worst = fmax(worst, compare_exhaustive(MBV2_JOB, 0, 1, 8, &unreach));
    ck_assert_msg(worst < 2.0, "the fit's network is %.2fx the best distance", worst);
    ck_assert_int_gt(unreach, 0); /* the failing side was exercised */
}
END_TEST

START_TEST(band_outside_the_space_fails_with_the_extremes)
{
    problem p;
    problem_init(&p, RESNET_JOB, 1);
    rng r;
    rng_seed(&r, 5);
    random_want(&p, &r);
    int nu = p.as.sp.n_units, w[64], d[ADAPTSPACE_MAX_STAGES], wmin[64],
        dmin[ADAPTSPACE_MAX_STAGES];
    adaptspace_min_widths(&p.as, wmin);
    for (int s = 0; s < ADAPTSPACE_MAX_STAGES; s++)
        dmin[s] = 1;
    double mn = cfg_macs(&p, wmin, dmin), mx = adaptspace_macs(&p.as, p.w_max, NULL);
    const double targets[2] = {0.5 * mn, 1.5 * mx};
    for (int t = 0; t < 2; t++) {
        p.f.lo = 0.99 * targets[t];
        p.f.hi = 1.01 * targets[t];
        memcpy(w, p.w0, (size_t)nu * sizeof(int));
        memcpy(d, p.d0, sizeof d);
        bandfit_result res;
        ck_assert_int_eq(bandfit_run(&p.f, w, d, &res), ERR_INVALID);
        ck_assert(!res.in_band);
        ck_assert(res.min_macs <= mn && res.max_macs == mx);
        ck_assert(res.macs == (t == 0 ? mn : mx));
        ck_assert(res.macs == cfg_macs(&p, w, d));
    }
    problem_deinit(&p);
}
END_TEST

START_TEST(start_in_the_band_is_kept)
{
    problem p;
    problem_init(&p, R20, 0);
    rng r;
    rng_seed(&r, 9);
    random_want(&p, &r);
    int nu = p.as.sp.n_units, w[64];
    double m = cfg_macs(&p, p.w0, NULL);
    p.f.lo = m * 0.995;
    p.f.hi = m * 1.015;
    memcpy(w, p.w0, (size_t)nu * sizeof(int));
    bandfit_result res;
    ck_assert_int_eq(bandfit_run(&p.f, w, NULL, &res), 0);
    ck_assert_int_eq(res.moved, 0);
    ck_assert(memcmp(w, p.w0, (size_t)nu * sizeof(int)) == 0);
    ck_assert(res.macs == m && bandfit_macs(&p.f, w, NULL) == m);
    problem_deinit(&p);
}
END_TEST

Suite *suite_bandfit(void)
{
    Suite *s = suite_create("bandfit");
    tu_case_add(s, "fit", 60, NULL, NULL,
                TU_TESTS(resnet20_dmcp, resnet20_dna, mbv2_dmcp, mbv2_dna,
                         small_nets_against_exhaustive_search,
                         band_outside_the_space_fails_with_the_extremes,
                         start_in_the_band_is_kept));
    return s;
}
