/* check_linear.c - the fully connected layer against a naive double-precision linear and
 * finite differences, on odd shapes, batch 1, without bias, and on the ViT's sizes. */
#include "common/xalloc.h"
#include "tests/unit/gradcheck.h"
#include "tests/unit/testutil.h"
#include "worker/nn/linear.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_linear(void);

typedef struct lin_case {
    int N, IN, OUT, bias;
    float *x, *w, *b, *dy;
} lin_case;

static void lin_init(lin_case *c, int N, int IN, int OUT, int bias, unsigned long long seed)
{
    c->N = N, c->IN = IN, c->OUT = OUT, c->bias = bias;
    c->x = xmallocarray((size_t)N * IN, sizeof(float));
    c->w = xmallocarray((size_t)OUT * IN, sizeof(float));
    c->b = bias ? xmallocarray((size_t)OUT, sizeof(float)) : NULL;
    c->dy = xmallocarray((size_t)N * OUT, sizeof(float));
    tu_fill_uniform(c->x, (size_t)N * IN, -1.0f, 1.0f, seed);
    tu_fill_uniform(c->w, (size_t)OUT * IN, -0.5f, 0.5f, seed + 1);
    if (bias)
        tu_fill_uniform(c->b, (size_t)OUT, -1.0f, 1.0f, seed + 2);
    tu_fill_uniform(c->dy, (size_t)N * OUT, -1.0f, 1.0f, seed + 3);
}

static void lin_free(lin_case *c)
{
    free(c->x);
    free(c->w);
    free(c->b);
    free(c->dy);
}

static void lin_fwd(void *ctx, float *y)
{
    lin_case *c = ctx;
    nn_linear_forward(y, c->x, c->w, c->b, c->N, c->IN, c->OUT);
}

/* Naive double-precision forward and backward: the independent oracle. */
static void naive_linear(double *y, double *dx, double *dw, double *db, const lin_case *c)
{
    int N = c->N, IN = c->IN, OUT = c->OUT;
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OUT; o++) {
            double s = c->b ? (double)c->b[o] : 0.0;
            for (int k = 0; k < IN; k++)
                s += (double)c->x[i * IN + k] * (double)c->w[o * IN + k];
            y[i * OUT + o] = s;
        }
    for (int i = 0; i < N; i++)
        for (int k = 0; k < IN; k++) {
            double s = 0;
            for (int o = 0; o < OUT; o++)
                s += (double)c->dy[i * OUT + o] * (double)c->w[o * IN + k];
            dx[i * IN + k] = s;
        }
    for (int o = 0; o < OUT; o++) {
        double sb = 0;
        for (int k = 0; k < IN; k++) {
            double s = 0;
            for (int i = 0; i < N; i++)
                s += (double)c->dy[i * OUT + o] * (double)c->x[i * IN + k];
            dw[o * IN + k] = s;
        }
        for (int i = 0; i < N; i++)
            sb += (double)c->dy[i * OUT + o];
        db[o] = sb;
    }
}

/* max|c - r| / max|r| with a double reference. */

/* Forward and backward against the naive oracle, and the backward's accumulation. */
static void check_against_naive(int N, int IN, int OUT, int bias)
{
    lin_case c;
    lin_init(&c, N, IN, OUT, bias, 100 + (unsigned long long)(N * 7 + IN * 3 + OUT));
    size_t ny = (size_t)N * OUT, nx = (size_t)N * IN, nw = (size_t)OUT * IN;
    double *ry = xmallocarray(ny, sizeof(double)), *rdx = xmallocarray(nx, sizeof(double));
    double *rdw = xmallocarray(nw, sizeof(double)), *rdb = xmallocarray(OUT, sizeof(double));
    naive_linear(ry, rdx, rdw, rdb, &c);

    float *y = xmallocarray(ny, sizeof(float));
    lin_fwd(&c, y);
    double e = tu_rel_err_d(y, ry, ny);
    ck_assert_msg(e < 2e-6, "linear %dx%d->%d forward rel err %.3e", N, IN, OUT, e);

    /* Start from non-zero gradients: the backward must add to them. */
    float *dx = xmallocarray(nx, sizeof(float)), *dw = xmallocarray(nw, sizeof(float));
    float *db = xmallocarray(OUT, sizeof(float));
    tu_fill_uniform(dx, nx, -1, 1, 7);
    tu_fill_uniform(dw, nw, -1, 1, 8);
    tu_fill_uniform(db, OUT, -1, 1, 9);
    float *dx0 = xmallocarray(nx, sizeof(float)), *dw0 = xmallocarray(nw, sizeof(float));
    float *db0 = xmallocarray(OUT, sizeof(float));
    memcpy(dx0, dx, nx * sizeof(float));
    memcpy(dw0, dw, nw * sizeof(float));
    memcpy(db0, db, OUT * sizeof(float));
    nn_linear_backward(dx, dw, bias ? db : NULL, c.dy, c.x, c.w, N, IN, OUT);
    for (size_t i = 0; i < nx; i++)
        rdx[i] += (double)dx0[i];
    for (size_t i = 0; i < nw; i++)
        rdw[i] += (double)dw0[i];
    for (int i = 0; i < OUT; i++)
        rdb[i] = (bias ? rdb[i] : 0.0) + (double)db0[i];
    double ex = tu_rel_err_d(dx, rdx, nx), ew = tu_rel_err_d(dw, rdw, nw),
           eb = tu_rel_err_d(db, rdb, OUT);
    printf("  linear %4dx%3d->%3d bias %d: fwd %.1e dx %.1e dw %.1e db %.1e\n", N, IN, OUT, bias, e,
           ex, ew, eb);
    ck_assert_msg(ex < 2e-6 && ew < 2e-6 && eb < 2e-6, "linear backward: dx %.3e dw %.3e db %.3e",
                  ex, ew, eb);
    free(ry), free(rdx), free(rdw), free(rdb), free(y);
    free(dx), free(dw), free(db), free(dx0), free(dw0), free(db0);
    lin_free(&c);
}

START_TEST(matches_naive)
{
    check_against_naive(1, 1, 1, 1);
    check_against_naive(1, 7, 5, 1);
    check_against_naive(7, 13, 5, 1);
    check_against_naive(7, 13, 5, 0);
    check_against_naive(33, 17, 70, 1);   /* db spans two column blocks, odd tail */
    check_against_naive(200, 96, 288, 1); /* the qkv shape, threaded paths */
    check_against_naive(150, 384, 96, 0);
}
END_TEST

/* Central differences of sum(y * dy) for every d* output. */
static void check_fd(int N, int IN, int OUT, int bias)
{
    lin_case c;
    lin_init(&c, N, IN, OUT, bias, 5 + (unsigned long long)N);
    size_t ny = (size_t)N * OUT, nx = (size_t)N * IN, nw = (size_t)OUT * IN;
    float *y = xmallocarray(ny, sizeof(float));
    float *dx = xcalloc(nx, sizeof(float)), *dw = xcalloc(nw, sizeof(float));
    float *db = xcalloc(OUT, sizeof(float));
    nn_linear_backward(dx, dw, bias ? db : NULL, c.dy, c.x, c.w, N, IN, OUT);
    /* The loss is linear in each parameter, so a large step only reduces rounding noise. */
    const double tol = 1e-4;
    ck_assert(gradcheck_input("linear dx", lin_fwd, &c, c.x, nx, 1, dx, y, c.dy, ny, 0.25f) < tol);
    ck_assert(gradcheck_input("linear dw", lin_fwd, &c, c.w, nw, 1, dw, y, c.dy, ny, 0.25f) < tol);
    if (bias)
        ck_assert(gradcheck_input("linear db", lin_fwd, &c, c.b, OUT, 1, db, y, c.dy, ny, 0.25f) <
                  tol);
    free(y), free(dx), free(dw), free(db);
    lin_free(&c);
}

START_TEST(finite_differences)
{
    check_fd(1, 3, 2, 1);
    check_fd(5, 7, 4, 1);
    check_fd(9, 6, 11, 0);
}
END_TEST

/* Running the backward twice from zero gives twice the gradient; NULL outputs are skipped. */
START_TEST(accumulates_and_skips)
{
    lin_case c;
    int N = 40, IN = 24, OUT = 36;
    lin_init(&c, N, IN, OUT, 1, 77);
    size_t nx = (size_t)N * IN, nw = (size_t)OUT * IN;
    float *dx1 = xcalloc(nx, sizeof(float)), *dw1 = xcalloc(nw, sizeof(float));
    float *db1 = xcalloc(OUT, sizeof(float));
    float *dx2 = xcalloc(nx, sizeof(float)), *dw2 = xcalloc(nw, sizeof(float));
    float *db2 = xcalloc(OUT, sizeof(float));
    nn_linear_backward(dx1, dw1, db1, c.dy, c.x, c.w, N, IN, OUT);
    nn_linear_backward(dx2, dw2, db2, c.dy, c.x, c.w, N, IN, OUT);
    nn_linear_backward(dx2, dw2, db2, c.dy, c.x, c.w, N, IN, OUT);
    for (size_t i = 0; i < nx; i++)
        dx1[i] *= 2;
    for (size_t i = 0; i < nw; i++)
        dw1[i] *= 2;
    for (int i = 0; i < OUT; i++)
        db1[i] *= 2;
    ck_assert(tu_rel_err(dx2, dx1, nx) < 1e-6);
    ck_assert(tu_rel_err(dw2, dw1, nw) < 1e-6);
    ck_assert(tu_rel_err(db2, db1, OUT) < 1e-6);

    /* Only dw requested: dinp and db untouched (NULL), and the same dw as before. */
    float *dw3 = xcalloc(nw, sizeof(float));
    nn_linear_backward(NULL, dw3, NULL, c.dy, c.x, c.w, N, IN, OUT);
    for (size_t i = 0; i < nw; i++)
        dw3[i] *= 2;
    ck_assert(tu_rel_err(dw3, dw1, nw) < 1e-6);
    /* Only dinp: w is needed, inp is not. */
    float *dx3 = xcalloc(nx, sizeof(float));
    nn_linear_backward(dx3, NULL, NULL, c.dy, NULL, c.w, N, IN, OUT);
    for (size_t i = 0; i < nx; i++)
        dx3[i] *= 2;
    ck_assert(tu_rel_err(dx3, dx1, nx) < 1e-6);
    free(dx1), free(dw1), free(db1), free(dx2), free(dw2), free(db2), free(dw3), free(dx3);
    lin_free(&c);
}
END_TEST

Suite *suite_linear(void)
{
    Suite *s = suite_create("linear");
    tu_case_add(s, "core", 0, NULL, NULL,
                TU_TESTS(matches_naive, finite_differences, accumulates_and_skips));
    return s;
}
