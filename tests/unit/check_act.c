/* check_act.c - activations and elementwise arithmetic.
 *
 * GELU is checked against the exact erf form evaluated in double, over a dense grid of
 * [-14, 14] and random floats of every magnitude, to 1e-6 relative (the gradient against
 * Phi + x phi, relative to |Phi| + |x phi|); then every backward by finite differences,
 * ReLU/ReLU6 at their kinks and in place, and the accumulation contract. The
 * MobileNetV3 / EfficientNet activations (h-swish, h-sigmoid, sigmoid, SiLU) against
 * their formulas in double and PyTorch's gradients at the kinks, and the squeeze-
 * excitation channel multiply against naive loops. */
#include "common/rng.h"
#include "common/xalloc.h"
#include "tests/unit/gradcheck.h"
#include "tests/unit/testutil.h"
#include "worker/nn/act.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_act(void);

#define GELU_TINY 1e-36

/* 0.5 x (1 + erf(x / sqrt 2)) = 0.5 x erfc(-x / sqrt 2), in double, without cancellation. */
static double gelu_exact(double x)
{
    return 0.5 * x * erfc(-x / sqrt(2.0));
}

static double phi_cdf(double x)
{
    return 0.5 * erfc(-x / sqrt(2.0));
}

static double phi_pdf(double x)
{
    return exp(-0.5 * x * x) / sqrt(2.0 * 3.14159265358979323846);
}

/* Checks GELU and its gradient on n points; returns the worst relative errors. */
static void gelu_accuracy(const float *x, size_t n, double *worst_y, double *worst_g)
{
    float *y = xmallocarray(n, sizeof(float)), *g = xcalloc(n, sizeof(float));
    float *one = xmallocarray(n, sizeof(float));
    for (size_t i = 0; i < n; i++)
        one[i] = 1.0f;
    nn_gelu_forward(y, x, n);
    nn_gelu_backward(g, one, x, n);
    for (size_t i = 0; i < n; i++) {
        double xd = x[i], ey = gelu_exact(xd);
        double eg = phi_cdf(xd) + xd * phi_pdf(xd), sg = phi_cdf(xd) + fabs(xd) * phi_pdf(xd);
        /* Below e^-87.3 (|x| > ~13.2) the exponential flushes to 0 instead of going
         * denormal: values within a few factors of FLT_MIN are checked absolutely. */
        double ry = fabs(ey) >= GELU_TINY ? fabs((double)y[i] - ey) / fabs(ey)
                                          : (fabs((double)y[i]) <= GELU_TINY ? 0.0 : 1.0);
        double rg = sg >= GELU_TINY ? fabs((double)g[i] - eg) / sg
                                    : (fabs((double)g[i]) <= GELU_TINY ? 0.0 : 1.0);
        if (ry > *worst_y || rg > *worst_g)
            ck_assert_msg(ry <= 1e-6 && rg <= 1e-6,
                          "gelu(%.9g) = %.9g (exact %.9g), grad %.9g (exact %.9g)", xd,
                          (double)y[i], ey, (double)g[i], eg);
        *worst_y = fmax(*worst_y, ry);
        *worst_g = fmax(*worst_g, rg);
    }
    free(y), free(g), free(one);
}

START_TEST(gelu_matches_erf)
{
    double wy = 0, wg = 0;
    /* A dense grid over the range where GELU is a normal float and not yet x itself. */
    size_t n = 2000001;
    float *x = xmallocarray(n, sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(-14.0 + 28.0 * (double)i / (double)(n - 1));
    gelu_accuracy(x, n, &wy, &wg);
    /* Random floats of every magnitude and sign, from 1e-30 to 1e4. */
    rng r;
    rng_seed(&r, 42);
    for (size_t i = 0; i < n; i++) {
        double mag = pow(10.0, -30.0 + 34.0 * (double)rng_uniform(&r));
        x[i] = (float)(rng_uniform(&r) < 0.5f ? -mag : mag);
    }
    gelu_accuracy(x, n, &wy, &wg);
    printf("  gelu vs double erf: max rel err %.2e, gradient %.2e\n", wy, wg);
    /* Special values. */
    float sx[5] = {0.0f, 1e30f, INFINITY, -1e30f, NAN}, sy[5], sg[5] = {0};
    float one[5] = {1, 1, 1, 1, 1};
    nn_gelu_forward(sy, sx, 5);
    nn_gelu_backward(sg, one, sx, 5);
    ck_assert(sy[0] == 0.0f && fabsf(sg[0] - 0.5f) < 1e-7f);
    ck_assert(sy[1] == 1e30f && sg[1] == 1.0f);
    ck_assert(isinf(sy[2]) && sy[2] > 0);
    ck_assert(sy[3] == 0.0f && sg[3] == 0.0f);
    ck_assert(isnan(sy[4]) && isnan(sg[4]));
    free(x);
}
END_TEST

typedef struct act_ctx {
    float *x;
    size_t n;
    void (*fwd)(float *, const float *, size_t);
} act_ctx;

static void act_fwd(void *ctx, float *y)
{
    act_ctx *c = ctx;
    c->fwd(y, c->x, c->n);
}

/* Finite differences of an activation, with its backward reading x (GELU) or y (ReLUs). */
static double act_fd(const char *label, void (*fwd)(float *, const float *, size_t),
                     void (*bwd)(float *, const float *, const float *, size_t), int bwd_reads_y,
                     float *x, size_t n)
{
    float *y = xmallocarray(n, sizeof(float)), *dy = xmallocarray(n, sizeof(float));
    float *dx = xcalloc(n, sizeof(float));
    tu_fill_uniform(dy, n, -1, 1, 5);
    fwd(y, x, n);
    bwd(dx, dy, bwd_reads_y ? y : x, n);
    act_ctx c = {x, n, fwd};
    double e = gradcheck_input(label, act_fwd, &c, x, n, 1, dx, y, dy, n, 1e-3f);
    free(y), free(dy), free(dx);
    return e;
}

/* Random values at least `gap` away from each kink in `kinks`. */
static void fill_away(float *x, size_t n, float lo, float hi, const float *kinks, int nk, float gap,
                      unsigned long long seed)
{
    rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        int ok;
        do {
            x[i] = lo + (hi - lo) * rng_uniform(&r);
            ok = 1;
            for (int k = 0; k < nk; k++)
                ok &= fabsf(x[i] - kinks[k]) > gap;
        } while (!ok);
    }
}

START_TEST(finite_differences)
{
    size_t n = 301;
    float *x = xmallocarray(n, sizeof(float));
    const float kinks[2] = {0.0f, 6.0f};
    tu_fill_uniform(x, n, -5.0f, 5.0f, 3);
    ck_assert(act_fd("gelu", nn_gelu_forward, nn_gelu_backward, 0, x, n) < 1e-3);
    fill_away(x, n, -3.0f, 3.0f, kinks, 1, 0.01f, 4);
    ck_assert(act_fd("relu", nn_relu_forward, nn_relu_backward, 1, x, n) < 1e-4);
    fill_away(x, n, -3.0f, 9.0f, kinks, 2, 0.01f, 5);
    ck_assert(act_fd("relu6", nn_relu6_forward, nn_relu6_backward, 1, x, n) < 1e-4);
    free(x);
}
END_TEST

START_TEST(relu_kinks_and_in_place)
{
    float x[8] = {-1.0f, 0.0f, 0.5f, 5.9f, 6.0f, 7.0f, -0.0f, 3.0f};
    float dy[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float y[8], y6[8], g[8] = {0}, g6[8] = {0};
    nn_relu_forward(y, x, 8);
    nn_relu6_forward(y6, x, 8);
    const float ey[8] = {0, 0, 0.5f, 5.9f, 6.0f, 7.0f, 0, 3.0f};
    const float ey6[8] = {0, 0, 0.5f, 5.9f, 6.0f, 6.0f, 0, 3.0f};
    for (int i = 0; i < 8; i++)
        ck_assert(y[i] == ey[i] && y6[i] == ey6[i]);
    nn_relu_backward(g, dy, y, 8);
    nn_relu6_backward(g6, dy, y6, 8);
    /* Gradient 0 at and beyond the kinks: x = 0 for ReLU, x = 0 and x = 6 for ReLU6. */
    const float eg[8] = {0, 0, 3, 4, 5, 6, 0, 8};
    const float eg6[8] = {0, 0, 3, 4, 0, 0, 0, 8};
    for (int i = 0; i < 8; i++)
        ck_assert_msg(g[i] == eg[i] && g6[i] == eg6[i], "i=%d: %g %g", i, (double)g[i],
                      (double)g6[i]);
    /* In place: out == inp, and the backward still works from the output. */
    float z[8];
    memcpy(z, x, sizeof z);
    nn_relu6_forward(z, z, 8);
    ck_assert_mem_eq(z, y6, sizeof z);
    /* Accumulation: a second backward adds the same again. */
    nn_relu6_backward(g6, dy, z, 8);
    for (int i = 0; i < 8; i++)
        ck_assert(g6[i] == 2 * eg6[i]);
}
END_TEST

/* GELU's backward accumulates; large arrays (the threaded path) match small ones. */
START_TEST(accumulates_and_threads)
{
    size_t n = 100003; /* above the parallel thresholds, odd */
    float *x = xmallocarray(n, sizeof(float)), *dy = xmallocarray(n, sizeof(float));
    float *y = xmallocarray(n, sizeof(float)), *g = xcalloc(n, sizeof(float));
    tu_fill_uniform(x, n, -6, 6, 11);
    tu_fill_uniform(dy, n, -1, 1, 12);
    nn_gelu_forward(y, x, n);
    nn_gelu_backward(g, dy, x, n);
    nn_gelu_backward(g, dy, x, n);
    for (size_t i = 0; i < n; i += 997) {
        float y1, g1 = 0;
        nn_gelu_forward(&y1, x + i, 1);
        nn_gelu_backward(&g1, dy + i, x + i, 1);
        ck_assert(y1 == y[i]);
        ck_assert(g[i] == 2 * g1);
    }
    free(x), free(dy), free(y), free(g);
}
END_TEST

START_TEST(elementwise_arithmetic)
{
    size_t n = 70001;
    float *a = xmallocarray(n, sizeof(float)), *b = xmallocarray(n, sizeof(float));
    float *o = xmallocarray(n, sizeof(float)), *d = xmallocarray(n, sizeof(float));
    tu_fill_uniform(a, n, -3, 3, 21);
    tu_fill_uniform(b, n, -3, 3, 22);
    nn_add_forward(o, a, b, n);
    for (size_t i = 0; i < n; i++)
        ck_assert(o[i] == a[i] + b[i]);
    memcpy(d, a, n * sizeof(float));
    nn_accumulate(d, b, n);
    ck_assert_mem_eq(d, o, n * sizeof(float));
    memcpy(d, a, n * sizeof(float));
    nn_axpy(d, -0.75f, b, n);
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - 0.75 * (double)b[i];
        /* one rounding with a fused multiply-add, two on the generic path (no FMA) */
        ck_assert_msg(fabs((double)d[i] - e) <=
                          1.2e-7 * (fabs((double)a[i]) + fabs(0.75 * (double)b[i])),
                      "axpy[%zu]", i);
    }
    /* assign is accumulate into zeros, bit for bit: a -0 comes out +0 */
    b[0] = -0.0f;
    memset(o, 0, n * sizeof(float));
    nn_accumulate(o, b, n);
    memcpy(d, a, n * sizeof(float));
    nn_assign(d, b, n);
    ck_assert_mem_eq(d, o, n * sizeof(float));
    ck_assert(!signbit(d[0]));
    /* n = 0 touches nothing. */
    memcpy(o, d, n * sizeof(float));
    nn_axpy(d, 2.0f, b, 0);
    nn_accumulate(d, b, 0);
    nn_assign(d, b, 0);
    ck_assert_mem_eq(o, d, n * sizeof(float));
    free(a), free(b), free(o), free(d);
}
END_TEST

/* h-swish, h-sigmoid, sigmoid and SiLU against double-precision formulas on a grid
 * through [-12, 12] (kinks included); PyTorch's gradients at the kinks; finite
 * differences away from them. The gradients are allowed the absolute error that an
 * ulp of sigmoid(x) carries into 1 - s (PyTorch computes them the same way). */
START_TEST(mobilenet_activations)
{
    size_t n = 4801;
    float *x = xmallocarray(n, sizeof(float)), *y = xmallocarray(n, sizeof(float));
    float *g = xmallocarray(n, sizeof(float)), *one = xmallocarray(n, sizeof(float));
    for (size_t i = 0; i < n; i++) {
        x[i] = -12.0f + 24.0f * (float)i / (float)(n - 1);
        one[i] = 1.0f;
    }
    void (*fwd[4])(float *, const float *, size_t) = {nn_hswish_forward, nn_hsigmoid_forward,
                                                      nn_sigmoid_forward, nn_silu_forward};
    void (*bwd[4])(float *, const float *, const float *, size_t) = {
        nn_hswish_backward, nn_hsigmoid_backward, nn_sigmoid_backward, nn_silu_backward};
    for (int k = 0; k < 4; k++) {
        memset(g, 0, n * sizeof(float));
        fwd[k](y, x, n);
        bwd[k](g, one, x, n);
        for (size_t i = 0; i < n; i++) {
            double v = x[i], r6 = fmin(fmax(v + 3.0, 0.0), 6.0), s = 1.0 / (1.0 + exp(-v));
            double ey, eg;
            switch (k) {
            case 0:
                ey = v * r6 / 6.0;
                eg = v < -3.0 ? 0.0 : v <= 3.0 ? v / 3.0 + 0.5 : 1.0;
                break;
            case 1:
                ey = r6 / 6.0;
                eg = (v > -3.0 && v < 3.0) ? 1.0 / 6.0 : 0.0;
                break;
            case 2:
                ey = s;
                eg = s * (1.0 - s);
                break;
            default:
                ey = v * s;
                eg = s * (1.0 + v * (1.0 - s));
                break;
            }
            ck_assert_msg(fabs((double)y[i] - ey) <= 4e-7 * fabs(ey) + 1e-30 &&
                              fabs((double)g[i] - eg) <= 1e-6 * fabs(eg) + 4e-7 * (1.0 + fabs(v)),
                          "act %d at %.9g: y %.9g (%.9g), grad %.9g (%.9g)", k, v, (double)y[i], ey,
                          (double)g[i], eg);
        }
    }
    /* PyTorch's choices at the kinks: h-swish's gradient is x/3 + 1/2 on [-3, 3] inclusive,
     * h-sigmoid's is 1/6 only strictly inside */
    float k3[2] = {-3.0f, 3.0f}, gk[2] = {0, 0}, gs[2] = {0, 0};
    nn_hswish_backward(gk, one, k3, 2);
    nn_hsigmoid_backward(gs, one, k3, 2);
    ck_assert(gk[0] == -0.5f && gk[1] == 1.5f && gs[0] == 0.0f && gs[1] == 0.0f);
    /* finite differences, with every point 0.01 away from -3 and 3 */
    const float kinks[2] = {-3.0f, 3.0f};
    fill_away(x, 301, -6.0f, 6.0f, kinks, 2, 0.01f, 41);
    ck_assert(act_fd("hswish", nn_hswish_forward, nn_hswish_backward, 0, x, 301) < 1e-3);
    ck_assert(act_fd("hsigmoid", nn_hsigmoid_forward, nn_hsigmoid_backward, 0, x, 301) < 1e-3);
    tu_fill_uniform(x, 301, -8.0f, 8.0f, 42);
    ck_assert(act_fd("sigmoid", nn_sigmoid_forward, nn_sigmoid_backward, 0, x, 301) < 1e-3);
    ck_assert(act_fd("silu", nn_silu_forward, nn_silu_backward, 0, x, 301) < 1e-3);
    free(x), free(y), free(g), free(one);
}
END_TEST

/* out[b, p, c] = x[b, p, c] * s[b, c]; dx += dout * s, ds[b, c] += sum_p dout * x, against
 * naive loops in double, on the threaded path too; dx or ds may be skipped. */
START_TEST(channel_multiply)
{
    const int B = 3, HW = 4099, C = 24; /* above the parallel threshold */
    size_t n = (size_t)B * HW * C;
    float *x = xmallocarray(n, sizeof(float)), *dout = xmallocarray(n, sizeof(float));
    float *out = xmallocarray(n, sizeof(float)), *dx = xcalloc(n, sizeof(float));
    float s[3 * 24], ds[3 * 24] = {0};
    tu_fill_uniform(x, n, -2, 2, 51);
    tu_fill_uniform(dout, n, -1, 1, 52);
    tu_fill_uniform(s, (size_t)B * C, 0, 1, 53);
    nn_chmul_forward(out, x, s, B, HW, C);
    nn_chmul_backward(dx, ds, dout, x, s, B, HW, C);
    nn_chmul_backward(dx, NULL, dout, x, s, B, HW, C); /* dx accumulates, ds untouched */
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            double want = 0, mag = 0;
            for (int p = 0; p < HW; p++) {
                size_t i = ((size_t)b * HW + p) * C + c;
                ck_assert(out[i] == x[i] * s[b * C + c]);
                ck_assert(dx[i] == 2 * (dout[i] * s[b * C + c]));
                want += (double)dout[i] * (double)x[i];
                mag += fabs((double)dout[i] * (double)x[i]);
            }
            ck_assert_msg(fabs((double)ds[b * C + c] - want) <= 1e-5 * mag, "ds[%d,%d] %g vs %g", b,
                          c, (double)ds[b * C + c], want);
        }
    free(x), free(dout), free(out), free(dx);
}
END_TEST

Suite *suite_act(void)
{
    Suite *s = suite_create("act");
    tu_case_add(s, "core", 60, NULL, NULL,
                TU_TESTS(gelu_matches_erf, finite_differences, relu_kinks_and_in_place,
                         mobilenet_activations, channel_multiply, accumulates_and_threads,
                         elementwise_arithmetic));
    return s;
}
