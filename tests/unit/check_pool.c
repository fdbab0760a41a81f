/* check_pool.c - max-pool and global average pool, forward and backward.
 *
 * Forward against a naive double implementation, gradients against central
 * finite differences (max-pool inputs are distinct with gaps far above the
 * step, so no window changes its maximum), PyTorch's tie and NaN rules, and
 * the contract (backward accumulates, thread count does not matter).
 */
#include "common/rng.h"
#include "common/xalloc.h"
#include "tests/unit/testutil.h"
#include "worker/nn/gemm.h"
#include "worker/nn/pooling.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_pool(void);

typedef struct pool_case {
    int B, H, W, C, k, s, p;
} pool_case;

static const pool_case pcases[] = {
    {2, 7, 7, 3, 3, 2, 1}, {1, 6, 5, 4, 2, 2, 0},  {2, 5, 5, 2, 3, 1, 1},    {3, 9, 9, 5, 3, 2, 0},
    {1, 4, 7, 1, 2, 1, 1}, {2, 8, 8, 17, 3, 3, 1}, {4, 14, 14, 32, 3, 2, 1},
};

/* n distinct values 0.01 apart in random order, centred on 0. */
static void fill_distinct(float *x, size_t n, unsigned long long seed)
{
    uint32_t *idx = xmallocarray(n, sizeof(uint32_t));
    for (size_t i = 0; i < n; i++)
        idx[i] = (uint32_t)i;
    rng r;
    rng_seed(&r, seed);
    rng_shuffle(&r, idx, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        x[i] = 0.01f * ((float)idx[i] - (float)n / 2.0f);
    free(idx);
}

static void naive_maxpool(float *y, const float *x, const pool_case *c, int Ho, int Wo)
{
    for (int b = 0; b < c->B; b++)
        for (int ho = 0; ho < Ho; ho++)
            for (int wo = 0; wo < Wo; wo++)
                for (int ch = 0; ch < c->C; ch++) {
                    float m = -INFINITY;
                    for (int i = 0; i < c->k; i++)
                        for (int j = 0; j < c->k; j++) {
                            int hi = ho * c->s - c->p + i, wi = wo * c->s - c->p + j;
                            if (hi < 0 || hi >= c->H || wi < 0 || wi >= c->W)
                                continue;
                            float v = x[(((size_t)b * c->H + hi) * c->W + wi) * c->C + ch];
                            m = v > m ? v : m;
                        }
                    y[(((size_t)b * Ho + ho) * Wo + wo) * c->C + ch] = m;
                }
}

START_TEST(maxpool_forward_backward)
{
    const pool_case *c = &pcases[_i];
    int Ho = nn_maxpool_out_size(c->H, c->k, c->s, c->p);
    int Wo = nn_maxpool_out_size(c->W, c->k, c->s, c->p);
    size_t nin = (size_t)c->B * c->H * c->W * c->C, nout = (size_t)c->B * Ho * Wo * c->C;
    float *x = xmallocarray(nin, sizeof(float)), *y = xmallocarray(nout, sizeof(float));
    float *ry = xmallocarray(nout, sizeof(float)), *dy = xmallocarray(nout, sizeof(float));
    float *dx = xcalloc(nin, sizeof(float));
    int *am = xmallocarray(nout, sizeof(int));
    fill_distinct(x, nin, 40u + (unsigned)_i);
    tu_fill_uniform(dy, nout, -1, 1, 50u + (unsigned)_i);
    nn_maxpool2d_forward(y, am, x, c->B, c->H, c->W, c->C, c->k, c->s, c->p);
    naive_maxpool(ry, x, c, Ho, Wo);
    for (size_t i = 0; i < nout; i++) {
        ck_assert_msg(y[i] == ry[i], "maxpool case %d: y[%zu] = %g, naive %g", _i, i, (double)y[i],
                      (double)ry[i]);
        ck_assert_msg(am[i] >= 0 && (size_t)am[i] < nin && x[am[i]] == y[i],
                      "maxpool case %d: argmax[%zu] does not point at the maximum", _i, i);
    }
    nn_maxpool2d_backward(dx, dy, am, c->B, Ho, Wo, c->C);
    /* Finite differences on sum(y*dy); the step stays below half the gaps. */
    const float eps = 4e-3f;
    double err = 0, m = tu_max_abs(dx, nin);
    size_t step = nin > 300 ? nin / 300 : 1; /* at most ~300 inputs */
    for (size_t i = 0; i < nin; i += step) {
        float keep = x[i];
        x[i] = keep + eps;
        nn_maxpool2d_forward(y, am, x, c->B, c->H, c->W, c->C, c->k, c->s, c->p);
        double lp = tu_dot(y, dy, nout);
        x[i] = keep - eps;
        nn_maxpool2d_forward(y, am, x, c->B, c->H, c->W, c->C, c->k, c->s, c->p);
        double lm = tu_dot(y, dy, nout);
        x[i] = keep;
        err = fmax(err, fabs((lp - lm) / (2.0 * (double)eps) - (double)dx[i]));
    }
    printf("  maxpool %dx%dx%dx%d k%d s%d p%d: fd err %.1e (max|dx| %.2f)\n", c->B, c->H, c->W,
           c->C, c->k, c->s, c->p, err, m);
    ck_assert_msg(err <= 1e-3 * m, "maxpool case %d: dx vs finite differences %.3e", _i, err);
    /* accumulation: a second backward doubles dx */
    float *dx1 = xmallocarray(nin, sizeof(float));
    memcpy(dx1, dx, nin * sizeof(float));
    nn_maxpool2d_forward(y, am, x, c->B, c->H, c->W, c->C, c->k, c->s, c->p);
    nn_maxpool2d_backward(dx, dy, am, c->B, Ho, Wo, c->C);
    double derr = 0;
    for (size_t i = 0; i < nin; i++)
        derr = fmax(derr, fabs((double)dx[i] - 2.0 * (double)dx1[i]));
    ck_assert_msg(derr <= 1e-6 * m, "maxpool case %d: backward does not accumulate", _i);
    free(x);
    free(y);
    free(ry);
    free(dy);
    free(dx);
    free(dx1);
    free(am);
}
END_TEST

/* Ties go to the first element of the window in scan order; padding never wins,
 * even over -inf; a NaN wins, as in PyTorch. */
START_TEST(maxpool_ties_inf_nan)
{
    float x[9], y[4];
    int am[4];
    for (int i = 0; i < 9; i++)
        x[i] = 1.0f;
    /* (1, 3, 3, 1), k2 s2 p1 -> 2x2; window (0,0) holds only x[0] */
    nn_maxpool2d_forward(y, am, x, 1, 3, 3, 1, 2, 2, 1);
    ck_assert_int_eq(am[0], 0);
    ck_assert_int_eq(am[1], 1); /* window rows -1..0, cols 1..2: first real is (0,1) */
    ck_assert_int_eq(am[2], 3);
    ck_assert_int_eq(am[3], 4);
    for (int i = 0; i < 9; i++)
        x[i] = -INFINITY;
    nn_maxpool2d_forward(y, am, x, 1, 3, 3, 1, 2, 2, 1);
    ck_assert_int_eq(am[3], 4);
    ck_assert(isinf(y[3]) && y[3] < 0);
    for (int i = 0; i < 9; i++)
        x[i] = (float)i;
    x[4] = NAN;
    nn_maxpool2d_forward(y, am, x, 1, 3, 3, 1, 2, 2, 1);
    ck_assert(isnan(y[3]));
    ck_assert_int_eq(am[3], 4);
    ck_assert(y[2] == 6.0f && am[2] == 6);
}
END_TEST

START_TEST(maxpool_thread_independent)
{
    const pool_case *c = &pcases[6];
    int Ho = nn_maxpool_out_size(c->H, c->k, c->s, c->p);
    size_t nin = (size_t)c->B * c->H * c->W * c->C, nout = (size_t)c->B * Ho * Ho * c->C;
    float *x = xmallocarray(nin, sizeof(float)), *dy = xmallocarray(nout, sizeof(float));
    float *y1 = xmallocarray(nout, sizeof(float)), *y2 = xmallocarray(nout, sizeof(float));
    float *d1 = xcalloc(nin, sizeof(float)), *d2 = xcalloc(nin, sizeof(float));
    int *am = xmallocarray(nout, sizeof(int));
    tu_fill_uniform(x, nin, -1, 1, 3);
    tu_fill_uniform(dy, nout, -1, 1, 4);
    int old = nn_get_threads();
    nn_set_threads(1);
    nn_maxpool2d_forward(y1, am, x, c->B, c->H, c->W, c->C, c->k, c->s, c->p);
    nn_maxpool2d_backward(d1, dy, am, c->B, Ho, Ho, c->C);
    nn_set_threads(2);
    nn_maxpool2d_forward(y2, am, x, c->B, c->H, c->W, c->C, c->k, c->s, c->p);
    nn_maxpool2d_backward(d2, dy, am, c->B, Ho, Ho, c->C);
    nn_set_threads(old);
    ck_assert(memcmp(y1, y2, nout * sizeof(float)) == 0);
    ck_assert(memcmp(d1, d2, nin * sizeof(float)) == 0);
    free(x);
    free(dy);
    free(y1);
    free(y2);
    free(d1);
    free(d2);
    free(am);
}
END_TEST

START_TEST(avgpool_forward_backward)
{
    static const int shapes[][3] = {{2, 16, 5}, {1, 1, 3}, {3, 49, 17}, {64, 16, 160}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int B = shapes[k][0], S = shapes[k][1], C = shapes[k][2];
        size_t nin = (size_t)B * S * C, nout = (size_t)B * C;
        float *x = xmallocarray(nin, sizeof(float)), *y = xmallocarray(nout, sizeof(float));
        float *dy = xmallocarray(nout, sizeof(float)), *dx = xcalloc(nin, sizeof(float));
        tu_fill_uniform(x, nin, -1, 1, 60u + k);
        tu_fill_uniform(dy, nout, -1, 1, 70u + k);
        nn_avgpool_forward(y, x, B, S, C);
        double ey = 0;
        for (int b = 0; b < B; b++)
            for (int c = 0; c < C; c++) {
                double s = 0;
                for (int p = 0; p < S; p++)
                    s += (double)x[((size_t)b * S + p) * C + c];
                ey = fmax(ey, fabs(s / S - (double)y[(size_t)b * C + c]));
            }
        ck_assert_msg(ey < 1e-6, "avgpool %d/%d/%d: forward err %.3e", B, S, C, ey);
        nn_avgpool_backward(dx, dy, B, S, C);
        /* linear: central differences with a large step are exact up to rounding */
        const float eps = 0.05f;
        double err = 0;
        for (size_t i = 0; i < nin; i += (nin > 300 ? nin / 300 : 1)) {
            float keep = x[i];
            x[i] = keep + eps;
            nn_avgpool_forward(y, x, B, S, C);
            double lp = tu_dot(y, dy, nout);
            x[i] = keep - eps;
            nn_avgpool_forward(y, x, B, S, C);
            double lm = tu_dot(y, dy, nout);
            x[i] = keep;
            err = fmax(err, fabs((lp - lm) / (2.0 * (double)eps) - (double)dx[i]));
        }
        double m = tu_max_abs(dx, nin);
        printf("  avgpool %d/%d/%d: fd err %.1e (max|dx| %.3f)\n", B, S, C, err, m);
        ck_assert_msg(err <= 1e-4 * m, "avgpool %d/%d/%d: dx vs finite differences %.3e", B, S, C,
                      err);
        float keep0 = dx[0];
        nn_avgpool_backward(dx, dy, B, S, C);
        ck_assert_msg(fabs((double)dx[0] - 2.0 * (double)keep0) <= 1e-7,
                      "avgpool backward does not accumulate");
        free(x);
        free(y);
        free(dy);
        free(dx);
    }
}
END_TEST

Suite *suite_pool(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tu_case_add(
        s, "core", 60, NULL, NULL,
        TU_TESTS(maxpool_ties_inf_nan, maxpool_thread_independent, avgpool_forward_backward));
    tcase_add_loop_test(tc, maxpool_forward_backward, 0, (int)(sizeof pcases / sizeof pcases[0]));
    return s;
}
