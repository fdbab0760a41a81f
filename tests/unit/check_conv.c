/* check_conv.c - conv2d forward/backward on every algorithm path.
 *
 * Three independent checks: a naive direct convolution in double (forward
 * and the three gradients written out from the definition), central finite
 * differences of the scalar loss sum(y * dy), and properties of the
 * contract (backward accumulates, NULL gradients are skipped, results do
 * not depend on the thread count).
 */
#include "common/xalloc.h"
#include "tests/unit/testutil.h"
#include "worker/nn/conv.h"
#include "worker/nn/gemm.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_conv(void);

typedef struct conv_case {
    int B, H, W, IC, OC, k, s, p, g, bias;
    const char *what; /* the path it is meant to exercise */
} conv_case;

/* Buffers of one case, filled with fixed-seed data. */
typedef struct conv_bufs {
    nn_conv2d_dims d;
    size_t nin, nout, nw;
    float *x, *w, *b, *dy, *y, *scratch;
} conv_bufs;

static void bufs_init(conv_bufs *t, const conv_case *c, unsigned long long seed)
{
    nn_conv2d_dims_init(&t->d, c->B, c->H, c->W, c->IC, c->OC, c->k, c->s, c->p, c->g);
    t->nin = (size_t)c->B * c->H * c->W * c->IC;
    t->nout = (size_t)c->B * t->d.Ho * t->d.Wo * c->OC;
    t->nw = (size_t)c->OC * (c->IC / c->g) * c->k * c->k;
    t->x = xmallocarray(t->nin, sizeof(float));
    t->w = xmallocarray(t->nw, sizeof(float));
    t->b = c->bias ? xmallocarray((size_t)c->OC, sizeof(float)) : NULL;
    t->dy = xmallocarray(t->nout, sizeof(float));
    t->y = xmallocarray(t->nout, sizeof(float));
    size_t ns = nn_conv2d_scratch_floats(&t->d);
    t->scratch = xmallocarray(ns ? ns : 1, sizeof(float));
    tu_fill_uniform(t->x, t->nin, -1, 1, seed);
    tu_fill_uniform(t->w, t->nw, -1, 1, seed + 1);
    if (t->b != NULL)
        tu_fill_uniform(t->b, (size_t)c->OC, -1, 1, seed + 2);
    tu_fill_uniform(t->dy, t->nout, -1, 1, seed + 3);
}

static void bufs_free(conv_bufs *t)
{
    free(t->x);
    free(t->w);
    free(t->b);
    free(t->dy);
    free(t->y);
    free(t->scratch);
}

/* ---- the naive double-precision convolution ---------------------------------- */

static void naive_forward(double *y, const float *x, const float *w, const float *b,
                          const nn_conv2d_dims *d)
{
    int ICg = d->IC / d->groups, OCg = d->OC / d->groups;
    for (int n = 0; n < d->B; n++)
        for (int ho = 0; ho < d->Ho; ho++)
            for (int wo = 0; wo < d->Wo; wo++)
                for (int o = 0; o < d->OC; o++) {
                    int g = o / OCg;
                    double s = b != NULL ? (double)b[o] : 0.0;
                    for (int ci = 0; ci < ICg; ci++)
                        for (int i = 0; i < d->kh; i++)
                            for (int j = 0; j < d->kw; j++) {
                                int hi = ho * d->stride - d->pad + i;
                                int wi = wo * d->stride - d->pad + j;
                                if (hi < 0 || hi >= d->H || wi < 0 || wi >= d->W)
                                    continue;
                                double xv =
                                    x[(((size_t)n * d->H + hi) * d->W + wi) * d->IC + g * ICg + ci];
                                s += xv *
                                     (double)w[(((size_t)o * ICg + ci) * d->kh + i) * d->kw + j];
                            }
                    y[(((size_t)n * d->Ho + ho) * d->Wo + wo) * d->OC + o] = s;
                }
}

static void naive_backward(double *dx, double *dw, double *db, const float *dy, const float *x,
                           const float *w, const nn_conv2d_dims *d)
{
    int ICg = d->IC / d->groups, OCg = d->OC / d->groups;
    for (int n = 0; n < d->B; n++)
        for (int ho = 0; ho < d->Ho; ho++)
            for (int wo = 0; wo < d->Wo; wo++)
                for (int o = 0; o < d->OC; o++) {
                    int g = o / OCg;
                    double go = dy[(((size_t)n * d->Ho + ho) * d->Wo + wo) * d->OC + o];
                    db[o] += go;
                    for (int ci = 0; ci < ICg; ci++)
                        for (int i = 0; i < d->kh; i++)
                            for (int j = 0; j < d->kw; j++) {
                                int hi = ho * d->stride - d->pad + i;
                                int wi = wo * d->stride - d->pad + j;
                                if (hi < 0 || hi >= d->H || wi < 0 || wi >= d->W)
                                    continue;
                                size_t xi =
                                    (((size_t)n * d->H + hi) * d->W + wi) * d->IC + g * ICg + ci;
                                size_t wi_ = (((size_t)o * ICg + ci) * d->kh + i) * d->kw + j;
                                dx[xi] += go * (double)w[wi_];
                                dw[wi_] += go * (double)x[xi];
                            }
                }
}

/* Every algorithm path, odd sizes, batch 1, groups, and shapes large
 * enough to split into several parts and im2col chunks. */
static const conv_case naive_cases[] = {
    {2, 5, 5, 8, 12, 1, 1, 0, 1, 1, "1x1"},
    {3, 7, 6, 5, 9, 1, 1, 0, 1, 0, "1x1 odd"},
    {4, 16, 16, 24, 40, 1, 1, 0, 1, 1, "1x1 parts"},
    {2, 4, 4, 64, 320, 1, 1, 0, 1, 0, "1x1 wide weights"},
    {1, 3, 5, 7, 3, 1, 1, 0, 1, 1, "1x1 batch 1"},
    {2, 8, 8, 4, 6, 2, 2, 0, 1, 1, "patchify"},
    {2, 9, 6, 3, 5, 3, 3, 0, 1, 0, "patchify k3"},
    {4, 28, 28, 8, 24, 2, 2, 0, 1, 1, "patchify parts"},
    {2, 9, 9, 4, 6, 2, 2, 0, 1, 1, "patchify, side not divisible (im2col)"},
    {2, 7, 7, 6, 6, 3, 1, 1, 6, 1, "depthwise"},
    {2, 8, 8, 6, 6, 3, 2, 1, 6, 0, "depthwise s2"},
    {3, 9, 5, 20, 20, 5, 2, 2, 20, 1, "depthwise 5x5 non-square"},
    {4, 16, 16, 48, 48, 3, 1, 1, 48, 1, "depthwise parts"},
    {1, 7, 7, 384, 384, 3, 1, 1, 384, 1, "depthwise wide batch 1"},
    {2, 9, 7, 32, 32, 3, 2, 1, 32, 1, "depthwise 3x3 fast s2 odd"},
    {2, 6, 6, 16, 16, 3, 1, 0, 16, 0, "depthwise 3x3 fast no pad"},
    {1, 5, 5, 16, 16, 3, 1, 2, 16, 1, "depthwise 3x3 fast pad 2"},
    {2, 4, 3, 16, 16, 3, 1, 1, 16, 1, "depthwise 3x3 fast narrow"},
    {2, 7, 7, 24, 24, 3, 1, 1, 24, 1, "depthwise 3x3 channels not /16"},
    {2, 9, 9, 3, 4, 3, 2, 1, 1, 1, "im2col 3x3 s2"},
    {2, 16, 16, 3, 8, 7, 2, 3, 1, 0, "im2col 7x7 s2"},
    {2, 7, 5, 6, 4, 3, 1, 1, 2, 1, "im2col groups 2"},
    {2, 6, 6, 8, 12, 3, 2, 1, 4, 0, "im2col groups 4 s2"},
    {2, 5, 5, 3, 6, 3, 1, 1, 3, 1, "depth multiplier 2 (im2col groups)"},
    {1, 5, 7, 3, 5, 3, 1, 1, 1, 1, "im2col batch 1"},
    {2, 8, 8, 16, 30, 1, 2, 0, 1, 0, "1x1 stride 2 (im2col)"},
    {2, 3, 3, 2, 3, 1, 1, 1, 1, 1, "1x1 padded (im2col)"},
    {2, 3, 3, 2, 2, 5, 1, 2, 1, 1, "kernel larger than input"},
    {2, 7, 8, 3, 4, 2, 3, 1, 1, 0, "stride above kernel"},
    {4, 12, 12, 64, 60, 3, 1, 1, 1, 0, "im2col several chunks"},
    {8, 16, 16, 16, 20, 3, 1, 1, 1, 1, "im2col parts"},
    {4, 28, 28, 1, 8, 3, 1, 1, 1, 0, "im2col single channel"},
    {2, 32, 32, 3, 16, 3, 1, 1, 1, 0, "direct stem 3->16"},
    {2, 32, 32, 3, 32, 3, 1, 1, 1, 0, "direct stem 3->32"},
    {2, 28, 28, 1, 32, 3, 1, 1, 1, 0, "direct stem 1->32"},
    {8, 16, 16, 16, 16, 3, 1, 1, 1, 1, "direct parts, dinp direct"},
    {4, 12, 12, 64, 64, 3, 1, 1, 1, 0, "direct 64->64 P=4"},
    {2, 16, 16, 16, 32, 3, 2, 1, 1, 1, "direct s2 (dinp by im2col)"},
    {2, 8, 8, 16, 32, 1, 2, 0, 1, 0, "direct 1x1 s2"},
    {2, 10, 10, 16, 16, 5, 1, 2, 1, 1, "direct 5x5"},
    {2, 9, 9, 16, 32, 3, 1, 0, 1, 1, "direct no pad, P=7"},
    {1, 8, 8, 128, 48, 3, 1, 1, 1, 1, "direct wide input, OC 48"},
    {2, 14, 14, 32, 96, 2, 2, 0, 1, 1, "direct patchify"},
};

START_TEST(matches_naive_double)
{
    const conv_case *c = &naive_cases[_i];
    conv_bufs t;
    bufs_init(&t, c, 1000u + (unsigned)_i * 10u);
    double *ry = xcalloc(t.nout, sizeof(double));
    double *rdx = xcalloc(t.nin, sizeof(double));
    double *rdw = xcalloc(t.nw, sizeof(double));
    double *rdb = xcalloc((size_t)c->OC, sizeof(double));
    naive_forward(ry, t.x, t.w, t.b, &t.d);
    naive_backward(rdx, rdw, rdb, t.dy, t.x, t.w, &t.d);

    nn_conv2d_forward(t.y, t.x, t.w, t.b, &t.d, t.scratch);
    double ey = tu_rel_err_d(t.y, ry, t.nout);

    /* Gradients start from random values: backward must add to them. */
    float *dx = xmallocarray(t.nin, sizeof(float));
    float *dw = xmallocarray(t.nw, sizeof(float));
    float *db = xmallocarray((size_t)c->OC, sizeof(float));
    tu_fill_uniform(dx, t.nin, -1, 1, 77);
    tu_fill_uniform(dw, t.nw, -1, 1, 78);
    tu_fill_uniform(db, (size_t)c->OC, -1, 1, 79);
    for (size_t i = 0; i < t.nin; i++)
        rdx[i] += (double)dx[i];
    for (size_t i = 0; i < t.nw; i++)
        rdw[i] += (double)dw[i];
    for (int i = 0; i < c->OC; i++)
        rdb[i] += (double)db[i];
    nn_conv2d_backward(dx, dw, db, t.dy, t.x, t.w, &t.d, t.scratch);
    double edx = tu_rel_err_d(dx, rdx, t.nin);
    double edw = tu_rel_err_d(dw, rdw, t.nw);
    double edb = tu_rel_err_d(db, rdb, (size_t)c->OC);
    printf("  conv %-40s y %.1e dx %.1e dw %.1e db %.1e\n", c->what, ey, edx, edw, edb);
    ck_assert_msg(ey < 2e-6, "%s: forward rel err %.3e", c->what, ey);
    ck_assert_msg(edx < 2e-6, "%s: dinp rel err %.3e", c->what, edx);
    ck_assert_msg(edw < 2e-6, "%s: dw rel err %.3e", c->what, edw);
    ck_assert_msg(edb < 2e-6, "%s: db rel err %.3e", c->what, edb);
    free(dx);
    free(dw);
    free(db);
    free(ry);
    free(rdx);
    free(rdw);
    free(rdb);
    bufs_free(&t);
}
END_TEST

/* Every channel combination the direct kernels dispatch on (tile widths by
 * IC and OC, stride 1 and 2), each against the naive convolution. */
START_TEST(direct_dispatch_sweep)
{
    static const int ics[] = {1, 2, 3, 4, 5, 6, 8, 12, 16, 24, 32, 48, 64};
    static const int ocs[] = {12, 16, 20, 32, 48, 64, 96};
    int n = 0;
    for (size_t a = 0; a < sizeof ics / sizeof ics[0]; a++)
        for (size_t o = 0; o < sizeof ocs / sizeof ocs[0]; o++)
            for (int s = 1; s <= 2; s++) {
                conv_case c = {2, 8 * s, 8 * s, ics[a], ocs[o], 3, s, 1, 1, 1, "sweep"};
                conv_bufs t;
                bufs_init(&t, &c, 300u + (unsigned)n);
                double *ry = xcalloc(t.nout, sizeof(double));
                double *rdx = xcalloc(t.nin, sizeof(double));
                double *rdw = xcalloc(t.nw, sizeof(double));
                double *rdb = xcalloc((size_t)c.OC, sizeof(double));
                naive_forward(ry, t.x, t.w, t.b, &t.d);
                naive_backward(rdx, rdw, rdb, t.dy, t.x, t.w, &t.d);
                float *dx = xcalloc(t.nin, sizeof(float)), *dw = xcalloc(t.nw, sizeof(float));
                nn_conv2d_forward(t.y, t.x, t.w, t.b, &t.d, t.scratch);
                nn_conv2d_backward(dx, dw, NULL, t.dy, t.x, t.w, &t.d, t.scratch);
                double ey = tu_rel_err_d(t.y, ry, t.nout), ex = tu_rel_err_d(dx, rdx, t.nin);
                double ew = tu_rel_err_d(dw, rdw, t.nw);
                ck_assert_msg(ey < 2e-6 && ex < 2e-6 && ew < 2e-6,
                              "direct sweep IC %d OC %d s%d: y %.2e dx %.2e dw %.2e", c.IC, c.OC, s,
                              ey, ex, ew);
                free(ry);
                free(rdx);
                free(rdw);
                free(rdb);
                free(dx);
                free(dw);
                bufs_free(&t);
                n++;
            }
    printf("  conv direct sweep: %d channel/stride combinations agree with the naive conv\n", n);
}
END_TEST

/* Channel counts that are not whole vectors (the direct kernels pad them) at
 * row widths that select every tile shape of every kernel path (P pixels of
 * 1..16, one or two vectors), forward and both gradients against the naive
 * convolution. make test runs this suite under each path. */
START_TEST(direct_tile_sweep)
{
    static const int ws[] = {3, 4, 6, 7, 9, 12, 14, 16, 28};
    static const int chans[][2] = {{3, 8}, {12, 20}, {16, 24}, {20, 40}, {8, 64}, {24, 12}};
    int n = 0;
    for (size_t a = 0; a < sizeof ws / sizeof ws[0]; a++)
        for (size_t c = 0; c < sizeof chans / sizeof chans[0]; c++) {
            conv_case k = {1, ws[a], ws[a], chans[c][0], chans[c][1], 3, 1, 1, 1, 1, "tiles"};
            conv_bufs t;
            bufs_init(&t, &k, 500u + (unsigned)n);
            double *ry = xcalloc(t.nout, sizeof(double)), *rdx = xcalloc(t.nin, sizeof(double));
            double *rdw = xcalloc(t.nw, sizeof(double)),
                   *rdb = xcalloc((size_t)k.OC, sizeof(double));
            naive_forward(ry, t.x, t.w, t.b, &t.d);
            naive_backward(rdx, rdw, rdb, t.dy, t.x, t.w, &t.d);
            float *dx = xcalloc(t.nin, sizeof(float)), *dw = xcalloc(t.nw, sizeof(float));
            float *db = xcalloc((size_t)k.OC, sizeof(float));
            nn_conv2d_forward(t.y, t.x, t.w, t.b, &t.d, t.scratch);
            nn_conv2d_backward(dx, dw, db, t.dy, t.x, t.w, &t.d, t.scratch);
            double ey = tu_rel_err_d(t.y, ry, t.nout), ex = tu_rel_err_d(dx, rdx, t.nin);
            double ew = tu_rel_err_d(dw, rdw, t.nw), eb = tu_rel_err_d(db, rdb, (size_t)k.OC);
            ck_assert_msg(ey < 2e-6 && ex < 2e-6 && ew < 2e-6 && eb < 2e-6,
                          "tile sweep W %d IC %d OC %d: y %.2e dx %.2e dw %.2e db %.2e", ws[a],
                          k.IC, k.OC, ey, ex, ew, eb);
            free(ry), free(rdx), free(rdw), free(rdb), free(dx), free(dw), free(db);
            bufs_free(&t);
            n++;
        }
    printf("  conv tile sweep: %d width/channel combinations agree with the naive conv\n", n);
}
END_TEST

/* ---- finite differences ------------------------------------------------------ */

static double loss_of(conv_bufs *t)
{
    nn_conv2d_forward(t->y, t->x, t->w, t->b, &t->d, t->scratch);
    return tu_dot(t->y, t->dy, t->nout);
}

/* Central differences of sum(y*dy) for every element of v, against g.
 * The conv is linear in each argument, so a large eps has no truncation
 * error and keeps float rounding small next to the step. */
static double fd_err(conv_bufs *t, float *v, size_t n, const float *g)
{
    const float eps = 1e-2f;
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = v[i];
        v[i] = keep + eps;
        double lp = loss_of(t);
        v[i] = keep - eps;
        double lm = loss_of(t);
        v[i] = keep;
        double fd = (lp - lm) / (2.0 * (double)eps);
        d = fmax(d, fabs(fd - (double)g[i]));
        m = fmax(m, fabs((double)g[i]));
    }
    return m > 0 ? d / m : d;
}

static const conv_case fd_cases[] = {
    {2, 3, 3, 4, 5, 1, 1, 0, 1, 1, "1x1"},
    {2, 4, 4, 3, 4, 2, 2, 0, 1, 1, "patchify"},
    {2, 5, 5, 4, 4, 3, 2, 1, 4, 1, "depthwise s2"},
    {1, 4, 4, 3, 3, 3, 1, 1, 3, 0, "depthwise batch 1"},
    {2, 5, 5, 16, 16, 3, 1, 1, 16, 1, "depthwise 3x3 fast"},
    {2, 5, 4, 3, 4, 3, 2, 1, 1, 1, "3x3 s2 non-square"},
    {1, 4, 4, 4, 6, 3, 1, 1, 2, 1, "groups 2"},
    {1, 6, 6, 2, 3, 5, 2, 2, 1, 0, "5x5 s2"},
    {2, 5, 5, 3, 2, 1, 2, 0, 1, 1, "1x1 stride 2"},
    {2, 4, 4, 16, 16, 3, 1, 1, 1, 1, "direct"},
    {1, 8, 8, 3, 16, 3, 2, 1, 1, 1, "direct s2"},
};

START_TEST(finite_differences)
{
    const conv_case *c = &fd_cases[_i];
    conv_bufs t;
    bufs_init(&t, c, 5000u + (unsigned)_i * 10u);
    float *dx = xcalloc(t.nin, sizeof(float));
    float *dw = xcalloc(t.nw, sizeof(float));
    float *db = xcalloc((size_t)c->OC, sizeof(float));
    nn_conv2d_forward(t.y, t.x, t.w, t.b, &t.d, t.scratch);
    nn_conv2d_backward(dx, dw, c->bias ? db : NULL, t.dy, t.x, t.w, &t.d, t.scratch);
    double ex = fd_err(&t, t.x, t.nin, dx);
    double ew = fd_err(&t, t.w, t.nw, dw);
    double eb = c->bias ? fd_err(&t, t.b, (size_t)c->OC, db) : 0.0;
    printf("  conv fd %-20s dx %.1e dw %.1e db %.1e\n", c->what, ex, ew, eb);
    ck_assert_msg(ex < 1e-4, "%s: dinp vs finite differences %.3e", c->what, ex);
    ck_assert_msg(ew < 1e-4, "%s: dw vs finite differences %.3e", c->what, ew);
    ck_assert_msg(eb < 1e-4, "%s: db vs finite differences %.3e", c->what, eb);
    free(dx);
    free(dw);
    free(db);
    bufs_free(&t);
}
END_TEST

/* ---- contract properties ----------------------------------------------------- */

/* max|twice - 2*once| / max|2*once|: a scatter-add kernel adds into the
 * running value, so the doubling is exact only up to float rounding. */
static double doubled_err(const float *twice, const float *once, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)twice[i] - 2.0 * (double)once[i]));
        m = fmax(m, fabs(2.0 * (double)once[i]));
    }
    return m > 0 ? d / m : d;
}

/* Backward twice from zero = 2x once; NULL skips; threads do not matter. */
START_TEST(accumulates_skips_and_is_thread_independent)
{
    static const conv_case cases[] = {
        {2, 4, 4, 3, 5, 3, 1, 1, 1, 1, "im2col"},
        {4, 16, 16, 24, 40, 1, 1, 0, 1, 1, "1x1"},
        {4, 28, 28, 8, 24, 2, 2, 0, 1, 1, "patchify"},
        {4, 16, 16, 48, 48, 3, 2, 1, 48, 1, "depthwise"},
        {8, 16, 16, 16, 20, 3, 1, 1, 1, 1, "im2col parts"},
        {8, 16, 16, 16, 16, 3, 1, 1, 1, 1, "direct"},
        {8, 16, 16, 16, 32, 3, 2, 1, 1, 1, "direct s2"},
        {4, 4, 4, 64, 320, 1, 1, 0, 1, 0, "1x1 wide weights (threaded BLAS)"},
        {4, 16, 16, 32, 32, 3, 1, 1, 32, 1, "depthwise 3x3 fast"},
    };
    int old = nn_get_threads();
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const conv_case *c = &cases[k];
        conv_bufs t;
        bufs_init(&t, c, 9000u + k);
        size_t nb = (size_t)c->OC;
        float *dx1 = xcalloc(t.nin, sizeof(float)), *dx2 = xcalloc(t.nin, sizeof(float));
        float *dw1 = xcalloc(t.nw, sizeof(float)), *dw2 = xcalloc(t.nw, sizeof(float));
        float *db1 = xcalloc(nb, sizeof(float)), *db2 = xcalloc(nb, sizeof(float));
        float *y1 = xmallocarray(t.nout, sizeof(float));
        nn_set_threads(1);
        nn_conv2d_forward(y1, t.x, t.w, t.b, &t.d, t.scratch);
        nn_conv2d_backward(dx1, dw1, db1, t.dy, t.x, t.w, &t.d, t.scratch);
        nn_set_threads(2);
        nn_conv2d_forward(t.y, t.x, t.w, t.b, &t.d, t.scratch);
        ck_assert_msg(memcmp(y1, t.y, t.nout * sizeof(float)) == 0,
                      "%s: forward differs between 1 and 2 threads", c->what);
        nn_conv2d_backward(dx2, dw2, db2, t.dy, t.x, t.w, &t.d, t.scratch);
        ck_assert_msg(memcmp(dx1, dx2, t.nin * sizeof(float)) == 0 &&
                          memcmp(dw1, dw2, t.nw * sizeof(float)) == 0 &&
                          memcmp(db1, db2, nb * sizeof(float)) == 0,
                      "%s: backward differs between 1 and 2 threads", c->what);
        /* second call, one gradient at a time: each must double */
        nn_conv2d_backward(dx2, NULL, NULL, t.dy, t.x, t.w, &t.d, t.scratch);
        nn_conv2d_backward(NULL, dw2, NULL, t.dy, t.x, t.w, &t.d, t.scratch);
        nn_conv2d_backward(NULL, NULL, db2, t.dy, t.x, t.w, &t.d, t.scratch);
        ck_assert_msg(doubled_err(dx2, dx1, t.nin) < 1e-6, "%s: dinp does not accumulate", c->what);
        ck_assert_msg(doubled_err(dw2, dw1, t.nw) < 1e-6, "%s: dw does not accumulate", c->what);
        ck_assert_msg(doubled_err(db2, db1, nb) < 1e-6, "%s: db does not accumulate", c->what);
        free(dx1);
        free(dx2);
        free(dw1);
        free(dw2);
        free(db1);
        free(db2);
        free(y1);
        bufs_free(&t);
    }
    nn_set_threads(old);
}
END_TEST

START_TEST(output_size_and_scratch)
{
    nn_conv2d_dims d;
    nn_conv2d_dims_init(&d, 64, 32, 32, 16, 32, 3, 2, 1, 1);
    ck_assert_int_eq(d.Ho, 16);
    ck_assert_int_eq(d.Wo, 16);
    nn_conv2d_dims_init(&d, 1, 28, 28, 32, 96, 2, 2, 0, 1);
    ck_assert_int_eq(d.Ho, 14);
    nn_conv2d_dims_init(&d, 1, 7, 9, 3, 3, 3, 2, 1, 3);
    ck_assert_int_eq(d.Ho, 4);
    ck_assert_int_eq(d.Wo, 5);
    /* 1x1 stride 1 over a small batch needs nothing beyond the bias partials */
    nn_conv2d_dims_init(&d, 1, 2, 2, 4, 4, 1, 1, 0, 1);
    ck_assert_uint_le(nn_conv2d_scratch_floats(&d), 4u * 4u);
}
END_TEST

Suite *suite_conv(void)
{
    Suite *s = suite_create("conv");
    TCase *tc =
        tu_case_add(s, "core", 60, NULL, NULL,
                    TU_TESTS(direct_dispatch_sweep, direct_tile_sweep,
                             accumulates_skips_and_is_thread_independent, output_size_and_scratch));
    tcase_add_loop_test(tc, matches_naive_double, 0,
                        (int)(sizeof naive_cases / sizeof naive_cases[0]));
    tcase_add_loop_test(tc, finite_differences, 0, (int)(sizeof fd_cases / sizeof fd_cases[0]));
    return s;
}
