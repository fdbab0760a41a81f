/* check_layernorm.c - LayerNorm against a double-precision LayerNorm and finite
 * differences: C = 1, odd C, C over a column block, rows with a large mean, many rows. */
#include "common/xalloc.h"
#include "tests/unit/gradcheck.h"
#include "tests/unit/testutil.h"
#include "worker/nn/norm.h"

#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_layernorm(void);

typedef struct ln_case {
    int N, C;
    float eps;
    float *x, *w, *b, *dy, *mean, *rstd;
} ln_case;

static void ln_init(ln_case *c, int N, int C, float eps, float offset, unsigned long long seed)
{
    size_t n = (size_t)N * C;
    c->N = N, c->C = C, c->eps = eps;
    c->x = xmallocarray(n, sizeof(float));
    c->dy = xmallocarray(n, sizeof(float));
    c->w = xmallocarray((size_t)C, sizeof(float));
    c->b = xmallocarray((size_t)C, sizeof(float));
    c->mean = xmallocarray((size_t)N, sizeof(float));
    c->rstd = xmallocarray((size_t)N, sizeof(float));
    tu_fill_uniform(c->x, n, -2.0f, 2.0f, seed);
    for (size_t i = 0; i < n; i++)
        c->x[i] += offset;
    tu_fill_uniform(c->dy, n, -1.0f, 1.0f, seed + 1);
    tu_fill_uniform(c->w, (size_t)C, 0.5f, 1.5f, seed + 2);
    tu_fill_uniform(c->b, (size_t)C, -0.5f, 0.5f, seed + 3);
}

static void ln_free(ln_case *c)
{
    free(c->x), free(c->dy), free(c->w), free(c->b), free(c->mean), free(c->rstd);
}

static void ln_fwd(void *ctx, float *y)
{
    ln_case *c = ctx;
    nn_layernorm_forward(y, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->C, c->eps);
}

/* Double-precision LayerNorm forward and backward (the textbook formulas). */
static void naive_ln(double *y, double *dx, double *dw, double *db, const ln_case *c)
{
    int N = c->N, C = c->C;
    memset(dw, 0, (size_t)C * sizeof(double));
    memset(db, 0, (size_t)C * sizeof(double));
    for (int i = 0; i < N; i++) {
        const float *x = c->x + (size_t)i * C, *dy = c->dy + (size_t)i * C;
        double m = 0, v = 0;
        for (int k = 0; k < C; k++)
            m += (double)x[k];
        m /= C;
        for (int k = 0; k < C; k++)
            v += ((double)x[k] - m) * ((double)x[k] - m);
        v /= C;
        double r = 1.0 / sqrt(v + (double)c->eps), sg = 0, sgx = 0;
        for (int k = 0; k < C; k++) {
            double xh = ((double)x[k] - m) * r, g = (double)dy[k] * (double)c->w[k];
            y[(size_t)i * C + k] = xh * (double)c->w[k] + (double)c->b[k];
            dw[k] += (double)dy[k] * xh;
            db[k] += (double)dy[k];
            sg += g;
            sgx += g * xh;
        }
        for (int k = 0; k < C; k++) {
            double xh = ((double)x[k] - m) * r, g = (double)dy[k] * (double)c->w[k];
            dx[(size_t)i * C + k] = r * (g - sg / C - xh * sgx / C);
        }
    }
}

/* The spacing of floats at |x|. */
static double float_ulp(double x)
{
    return x == 0.0 ? 0.0 : ldexp(1.0, ilogb(x) - 23);
}

static void check_naive(int N, int C, float eps, float offset)
{
    ln_case c;
    ln_init(&c, N, C, eps, offset, 31 + (unsigned long long)(N + C));
    size_t n = (size_t)N * C;
    double *ry = xmallocarray(n, sizeof(double)), *rdx = xmallocarray(n, sizeof(double));
    double *rdw = xmallocarray(C, sizeof(double)), *rdb = xmallocarray(C, sizeof(double));
    naive_ln(ry, rdx, rdw, rdb, &c);
    float *y = xmallocarray(n, sizeof(float));
    ln_fwd(&c, y);
    /* The saved statistics, to a few float ulps of the row's scale. */
    double worst_m = 0, worst_r = 0;
    for (int i = 0; i < N; i++) {
        const float *x = c.x + (size_t)i * C;
        double m = 0, v = 0;
        for (int k = 0; k < C; k++)
            m += (double)x[k];
        m /= C;
        for (int k = 0; k < C; k++)
            v += ((double)x[k] - m) * ((double)x[k] - m);
        double r = 1.0 / sqrt(v / C + (double)eps);
        /* The mean to its own float rounding plus a few ulps of the spread 1/r. */
        worst_m = fmax(worst_m, (fabs((double)c.mean[i] - m) - 0.5 * float_ulp(m)) * r);
        worst_r = fmax(worst_r, fabs((double)c.rstd[i] - r) / r);
    }
    ck_assert_msg(worst_m <= 4.0 * (double)FLT_EPSILON && worst_r <= 4.0 * (double)FLT_EPSILON,
                  "layernorm %dx%d statistics: mean %.2e (of the spread), rstd %.2e", N, C, worst_m,
                  worst_r);
    float *dx = xmallocarray(n, sizeof(float)), *dw = xmallocarray(C, sizeof(float));
    float *db = xmallocarray(C, sizeof(float));
    /* Start from 1: the backward must add. */
    for (size_t i = 0; i < n; i++)
        dx[i] = 1.0f, rdx[i] += 1.0;
    for (int k = 0; k < C; k++)
        dw[k] = db[k] = 1.0f, rdw[k] += 1.0, rdb[k] += 1.0;
    nn_layernorm_backward(dx, dw, db, c.dy, c.x, c.w, c.mean, c.rstd, N, C);
    double ey = tu_rel_err_d(y, ry, n), ex = tu_rel_err_d(dx, rdx, n);
    double ew = tu_rel_err_d(dw, rdw, C), eb = tu_rel_err_d(db, rdb, C);
    printf("  layernorm %4dx%4d offset %6.0f: mean %.1e rstd %.1e y %.1e dx %.1e dw %.1e "
           "db %.1e\n",
           N, C, (double)offset, worst_m, worst_r, ey, ex, ew, eb);
    /* The statistics are exact to float rounding even for rows whose mean dwarfs their
     * spread (checked above with an offset of 1000, where a one-pass float variance
     * E[x^2] - E[x]^2 is off by ~10%). The normalised values then carry the rounding of the saved
     * float mean, ulp(mean)/2 relative to the spread, so those rows get a tolerance to match. */
    double tol = 2e-6 + 0.5 * ldexp(1.0, ilogb(fmax(fabs(offset), 1.0)) - 23);
    ck_assert_msg(ey < tol && ex < tol && ew < tol && eb < 2e-6,
                  "layernorm %dx%d: y %.2e dx %.2e dw %.2e db %.2e", N, C, ey, ex, ew, eb);
    free(ry), free(rdx), free(rdw), free(rdb), free(y), free(dx), free(dw), free(db);
    ln_free(&c);
}

START_TEST(matches_double)
{
    check_naive(1, 1, 1e-6f, 0.0f);
    check_naive(1, 96, 1e-6f, 0.0f);
    check_naive(5, 7, 1e-5f, 0.0f);
    check_naive(37, 200, 1e-6f, 0.0f); /* dw/db over several column blocks */
    check_naive(13, 33, 1e-6f, 100.0f);
    check_naive(13, 33, 1e-6f, 1000.0f);
    check_naive(640, 96, 1e-6f, 0.0f); /* the ViT's C, threaded paths */
}
END_TEST

static void check_fd(int N, int C, float eps)
{
    ln_case c;
    ln_init(&c, N, C, eps, 0.3f, 3 + (unsigned long long)(N * C));
    size_t n = (size_t)N * C;
    float *y = xmallocarray(n, sizeof(float)), *dx = xcalloc(n, sizeof(float));
    float *dw = xcalloc(C, sizeof(float)), *db = xcalloc(C, sizeof(float));
    ln_fwd(&c, y);
    nn_layernorm_backward(dx, dw, db, c.dy, c.x, c.w, c.mean, c.rstd, N, C);
    ck_assert(gradcheck_input("layernorm dx", ln_fwd, &c, c.x, n, 1, dx, y, c.dy, n, 1e-2f) < 2e-3);
    ck_assert(gradcheck_input("layernorm dw", ln_fwd, &c, c.w, C, 1, dw, y, c.dy, n, 0.25f) < 1e-4);
    ck_assert(gradcheck_input("layernorm db", ln_fwd, &c, c.b, C, 1, db, y, c.dy, n, 0.25f) < 1e-4);
    free(y), free(dx), free(dw), free(db);
    ln_free(&c);
}

START_TEST(finite_differences)
{
    check_fd(1, 5, 1e-6f);
    check_fd(4, 8, 1e-6f);
    check_fd(3, 17, 1e-5f);
}
END_TEST

/* Twice from zero = double; NULL outputs are skipped without touching the others. */
START_TEST(accumulates_and_skips)
{
    ln_case c;
    int N = 50, C = 40;
    ln_init(&c, N, C, 1e-6f, 0.0f, 9);
    size_t n = (size_t)N * C;
    float *y = xmallocarray(n, sizeof(float));
    ln_fwd(&c, y);
    float *dx1 = xcalloc(n, sizeof(float)), *dw1 = xcalloc(C, sizeof(float));
    float *db1 = xcalloc(C, sizeof(float)), *dx2 = xcalloc(n, sizeof(float));
    float *dw2 = xcalloc(C, sizeof(float)), *db2 = xcalloc(C, sizeof(float));
    nn_layernorm_backward(dx1, dw1, db1, c.dy, c.x, c.w, c.mean, c.rstd, N, C);
    for (int r = 0; r < 2; r++)
        nn_layernorm_backward(dx2, dw2, db2, c.dy, c.x, c.w, c.mean, c.rstd, N, C);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(dx2[i] == 2 * dx1[i], "dx[%zu] did not accumulate", i);
    for (int k = 0; k < C; k++) {
        ck_assert_msg(dw2[k] == 2 * dw1[k], "dw[%d] did not accumulate", k);
        ck_assert_msg(db2[k] == 2 * db1[k], "db[%d] did not accumulate", k);
    }
    float *dx3 = xcalloc(n, sizeof(float)), *db3 = xcalloc(C, sizeof(float));
    nn_layernorm_backward(dx3, NULL, NULL, c.dy, c.x, c.w, c.mean, c.rstd, N, C);
    ck_assert_mem_eq(dx3, dx1, n * sizeof(float));
    nn_layernorm_backward(NULL, NULL, db3, c.dy, c.x, c.w, c.mean, c.rstd, N, C);
    ck_assert_mem_eq(db3, db1, C * sizeof(float));
    free(y), free(dx1), free(dw1), free(db1), free(dx2), free(dw2), free(db2), free(dx3);
    free(db3);
    ln_free(&c);
}
END_TEST

Suite *suite_layernorm(void)
{
    Suite *s = suite_create("layernorm");
    tu_case_add(s, "core", 0, NULL, NULL,
                TU_TESTS(matches_double, finite_differences, accumulates_and_skips));
    return s;
}
