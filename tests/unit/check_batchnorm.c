/* check_batchnorm.c - batch normalisation, training and eval mode.
 *
 * Forward and running statistics against a naive double implementation of
 * PyTorch's rules (biased variance to normalise, unbiased for running_var,
 * momentum, momentum 1, NULL running stats); every gradient of both modes
 * against central finite differences of sum(y * dy); and the contract
 * (backward accumulates, thread count does not matter).
 */
#include "common/xalloc.h"
#include "tests/unit/testutil.h"
#include "worker/nn/act.h"
#include "worker/nn/gemm.h"
#include "worker/nn/norm.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_batchnorm(void);

typedef struct bn_bufs {
    int N, C;
    float eps; /* 1e-5 unless a test sets it */
    float *x, *w, *b, *dy, *y, *mean, *rstd, *rm, *rv;
} bn_bufs;

static void bn_init(bn_bufs *t, int N, int C, float offset, unsigned long long seed)
{
    size_t n = (size_t)N * C;
    t->N = N;
    t->C = C;
    t->eps = 1e-5f;
    t->x = xmallocarray(n, sizeof(float));
    t->dy = xmallocarray(n, sizeof(float));
    t->y = xmallocarray(n, sizeof(float));
    t->w = xmallocarray((size_t)C, sizeof(float));
    t->b = xmallocarray((size_t)C, sizeof(float));
    t->mean = xmallocarray((size_t)C, sizeof(float));
    t->rstd = xmallocarray((size_t)C, sizeof(float));
    t->rm = xmallocarray((size_t)C, sizeof(float));
    t->rv = xmallocarray((size_t)C, sizeof(float));
    tu_fill_uniform(t->x, n, -2, 2, seed);
    /* per-channel offsets and scales, so that every channel has its own stats */
    for (size_t i = 0; i < n; i++)
        t->x[i] = t->x[i] * (1.0f + 0.1f * (float)(i % (size_t)C)) + offset;
    tu_fill_uniform(t->dy, n, -1, 1, seed + 1);
    tu_fill_uniform(t->w, (size_t)C, 0.5f, 1.5f, seed + 2);
    tu_fill_uniform(t->b, (size_t)C, -1, 1, seed + 3);
    tu_fill_uniform(t->rm, (size_t)C, -1, 1, seed + 4);
    tu_fill_uniform(t->rv, (size_t)C, 0.5f, 2, seed + 5);
}

static void bn_free(bn_bufs *t)
{
    free(t->x);
    free(t->dy);
    free(t->y);
    free(t->w);
    free(t->b);
    free(t->mean);
    free(t->rstd);
    free(t->rm);
    free(t->rv);
}

/* t's layer: its w and b, the running statistics rm and rv, its eps; momentum, act. */
static nn_bn layer_of(const bn_bufs *t, float *rm, float *rv, float momentum, nn_act_kind act)
{
    return (nn_bn){.N = t->N,
                   .C = t->C,
                   .w = t->w,
                   .b = t->b,
                   .run_mean = rm,
                   .run_var = rv,
                   .eps = t->eps,
                   .momentum = momentum,
                   .act = act};
}

/* The kernels on t's input x, with its mean and rstd as the saved statistics: the
 * training forward into y updating rm and rv (NULL: not updated), with the residual
 * res (NULL: none); its backward from dy (y: the forward's output, for act); and the
 * same in eval mode with t's running statistics. */
static void fwd_train(bn_bufs *t, float *y, float *rm, float *rv, const float *res, float momentum,
                      nn_act_kind act)
{
    nn_bn bn = layer_of(t, rm, rv, momentum, act);
    nn_bn_saved saved = {.mean = t->mean, .rstd = t->rstd};
    nn_batchnorm_forward_train(y, &saved, t->x, res, &bn);
}

static void bwd_train(bn_bufs *t, float *dx, float *dres, float *dw, float *db, const float *dy,
                      const float *y, nn_act_kind act)
{
    nn_bn bn = layer_of(t, NULL, NULL, 0.1f, act);
    nn_bn_saved saved = {.mean = t->mean, .rstd = t->rstd};
    nn_batchnorm_backward_train(dx, dres, dw, db, dy, y, t->x, &saved, &bn);
}

static void fwd_eval(bn_bufs *t, float *y, const float *res, nn_act_kind act)
{
    nn_bn bn = layer_of(t, t->rm, t->rv, 0.1f, act);
    nn_batchnorm_forward_eval(y, t->x, res, &bn);
}

static void bwd_eval(bn_bufs *t, float *dx, float *dres, float *dw, float *db, const float *dy,
                     const float *y, nn_act_kind act)
{
    nn_bn bn = layer_of(t, t->rm, t->rv, 0.1f, act);
    nn_batchnorm_backward_eval(dx, dres, dw, db, dy, y, t->x, &bn);
}

/* Per-channel batch mean and biased variance in double (two passes). */
static void naive_stats(double *mu, double *var, const float *x, int N, int C)
{
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int r = 0; r < N; r++)
            s += (double)x[(size_t)r * C + c];
        mu[c] = s / N;
        double q = 0;
        for (int r = 0; r < N; r++) {
            double d = (double)x[(size_t)r * C + c] - mu[c];
            q += d * d;
        }
        var[c] = q / N;
    }
}

static double rel(double c, double r)
{
    return fabs(c - r) / fmax(fabs(r), 1e-30);
}

/* Forward, saved stats and running stats against the naive rules. */
static void check_train_forward(int N, int C, float offset, float momentum)
{
    const float eps = 1e-5f;
    bn_bufs t;
    bn_init(&t, N, C, offset, 11u + (unsigned)N);
    double *mu = xmallocarray((size_t)C, sizeof(double));
    double *var = xmallocarray((size_t)C, sizeof(double));
    float *rm0 = xmallocarray((size_t)C, sizeof(float)),
          *rv0 = xmallocarray((size_t)C, sizeof(float));
    memcpy(rm0, t.rm, (size_t)C * sizeof(float));
    memcpy(rv0, t.rv, (size_t)C * sizeof(float));
    naive_stats(mu, var, t.x, N, C);
    fwd_train(&t, t.y, t.rm, t.rv, NULL, momentum, NN_ACT_NONE);
    double ey = 0, es = 0, er = 0, ymax = 0;
    for (int c = 0; c < C; c++) {
        double rs = 1.0 / sqrt(var[c] + (double)eps);
        /* the saved mean is a float: allow its rounding, else 2e-6 of the std */
        es = fmax(es, fmax(fabs((double)t.mean[c] - mu[c]) - 6e-8 * fabs(mu[c]), 0.0) * rs);
        es = fmax(es, rel((double)t.rstd[c], rs));
        double m = (double)momentum;
        double erm = (1 - m) * (double)rm0[c] + m * mu[c];
        double erv = (1 - m) * (double)rv0[c] + m * var[c] * N / (N - 1);
        er = fmax(er, fabs((double)t.rm[c] - erm) / fmax(1.0, fabs(erm)));
        er = fmax(er, rel((double)t.rv[c], erv));
        for (int r = 0; r < N; r++) {
            size_t i = (size_t)r * C + c;
            double ry = ((double)t.x[i] - mu[c]) * rs * (double)t.w[c] + (double)t.b[c];
            ey = fmax(ey, fabs((double)t.y[i] - ry));
            ymax = fmax(ymax, fabs(ry));
        }
    }
    ey /= ymax;
    printf("  bn train N=%d C=%d offset %g momentum %g: y %.1e stats %.1e running %.1e\n", N, C,
           (double)offset, (double)momentum, ey, es, er);
    ck_assert_msg(ey < 2e-6, "bn forward rel err %.3e", ey);
    ck_assert_msg(es < 2e-6, "bn saved mean/rstd err %.3e", es);
    ck_assert_msg(er < 2e-6, "bn running stats err %.3e", er);
    free(mu);
    free(var);
    free(rm0);
    free(rv0);
    bn_free(&t);
}

START_TEST(train_forward_and_running_stats)
{
    check_train_forward(100, 3, 0.0f, 0.1f);
    check_train_forward(2, 5, 0.0f, 0.1f);       /* smallest batch with unbiased var */
    check_train_forward(4096, 300, 0.0f, 0.3f);  /* several channel blocks, parts */
    check_train_forward(3000, 7, 1000.0f, 0.1f); /* large mean: no cancellation */
    check_train_forward(50, 4, 0.0f, 1.0f);      /* momentum 1 */
}
END_TEST

/* Momentum 1 stores the batch statistics exactly, whatever was there (even
 * NaN); NULL running stats leave the output unchanged. */
START_TEST(momentum_one_and_null_stats)
{
    bn_bufs t;
    bn_init(&t, 40, 6, 0.0f, 5);
    for (int c = 0; c < 6; c++) {
        t.rm[c] = NAN;
        t.rv[c] = NAN;
    }
    fwd_train(&t, t.y, t.rm, t.rv, NULL, 1.0f, NN_ACT_NONE);
    double *mu = xmallocarray(6, sizeof(double)), *var = xmallocarray(6, sizeof(double));
    naive_stats(mu, var, t.x, 40, 6);
    for (int c = 0; c < 6; c++) {
        ck_assert_msg(t.rm[c] == t.mean[c], "momentum 1: running_mean is not the batch mean");
        ck_assert_msg(rel((double)t.rv[c], var[c] * 40 / 39) < 1e-6,
                      "momentum 1: running_var is not the unbiased batch variance");
    }
    float *y2 = xmallocarray(240, sizeof(float));
    fwd_train(&t, y2, NULL, NULL, NULL, 0.1f, NN_ACT_NONE);
    ck_assert(memcmp(y2, t.y, 240 * sizeof(float)) == 0);
    free(y2);
    free(mu);
    free(var);
    bn_free(&t);
}
END_TEST

START_TEST(eval_forward)
{
    bn_bufs t;
    bn_init(&t, 30, 5, 0.5f, 9);
    const float eps = 1e-3f;
    t.eps = eps;
    float rm0[5], rv0[5];
    memcpy(rm0, t.rm, sizeof rm0);
    memcpy(rv0, t.rv, sizeof rv0);
    fwd_eval(&t, t.y, NULL, NN_ACT_NONE);
    double e = 0;
    for (int r = 0; r < 30; r++)
        for (int c = 0; c < 5; c++) {
            size_t i = (size_t)r * 5 + c;
            double ry = ((double)t.x[i] - (double)t.rm[c]) / sqrt((double)t.rv[c] + (double)eps) *
                            (double)t.w[c] +
                        (double)t.b[c];
            e = fmax(e, fabs(ry - (double)t.y[i]));
        }
    ck_assert_msg(e < 1e-5, "bn eval forward err %.3e", e);
    ck_assert(memcmp(rm0, t.rm, sizeof rm0) == 0 && memcmp(rv0, t.rv, sizeof rv0) == 0);
    bn_free(&t);
}
END_TEST

/* ---- finite differences ------------------------------------------------------ */

static double loss_of(bn_bufs *t, int train)
{
    if (train)
        fwd_train(t, t->y, NULL, NULL, NULL, 0.1f, NN_ACT_NONE);
    else
        fwd_eval(t, t->y, NULL, NN_ACT_NONE);
    return tu_dot(t->y, t->dy, (size_t)t->N * t->C);
}

/* max |fd - g| / max |g| over every element of v. */
static double fd_err(bn_bufs *t, int train, float *v, size_t n, const float *g)
{
    const float h = 1e-2f;
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = v[i];
        v[i] = keep + h;
        double lp = loss_of(t, train);
        v[i] = keep - h;
        double lm = loss_of(t, train);
        v[i] = keep + 2 * h;
        double lpp = loss_of(t, train);
        v[i] = keep - 2 * h;
        double lmm = loss_of(t, train);
        v[i] = keep;
        /* fourth-order central difference: truncation error O(h^4) */
        double fd = (8.0 * (lp - lm) - (lpp - lmm)) / (12.0 * (double)h);
        d = fmax(d, fabs(fd - (double)g[i]));
        m = fmax(m, fabs((double)g[i]));
    }
    return m > 0 ? d / m : d;
}

START_TEST(gradients_finite_differences)
{
    static const int shapes[][2] = {{12, 3}, {3, 4}, {40, 5}};
    for (int mode = 0; mode < 2; mode++)
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
            int N = shapes[k][0], C = shapes[k][1], train = mode == 0;
            bn_bufs t;
            bn_init(&t, N, C, 0.3f, 100u + k);
            size_t n = (size_t)N * C;
            float *dx = xcalloc(n, sizeof(float)), *dw = xcalloc((size_t)C, sizeof(float));
            float *db = xcalloc((size_t)C, sizeof(float));
            if (train) {
                fwd_train(&t, t.y, NULL, NULL, NULL, 0.1f, NN_ACT_NONE);
                bwd_train(&t, dx, NULL, dw, db, t.dy, NULL, NN_ACT_NONE);
            } else {
                bwd_eval(&t, dx, NULL, dw, db, t.dy, NULL, NN_ACT_NONE);
            }
            double ex = fd_err(&t, train, t.x, n, dx);
            double ew = fd_err(&t, train, t.w, (size_t)C, dw);
            double eb = fd_err(&t, train, t.b, (size_t)C, db);
            printf("  bn fd %s N=%d C=%d: dx %.1e dw %.1e db %.1e\n", train ? "train" : "eval", N,
                   C, ex, ew, eb);
            ck_assert_msg(ex < 1e-3 && ew < 1e-3 && eb < 1e-3,
                          "bn %s N=%d C=%d: gradients vs finite differences dx %.2e dw %.2e db "
                          "%.2e",
                          train ? "train" : "eval", N, C, ex, ew, eb);
            free(dx);
            free(dw);
            free(db);
            bn_free(&t);
        }
}
END_TEST

/* Backward twice = 2x once (both modes); NULL skips; thread count does not matter. */
START_TEST(accumulates_and_thread_independent)
{
    const int N = 2048, C = 40;
    size_t n = (size_t)N * C;
    bn_bufs t;
    bn_init(&t, N, C, 0.0f, 77);
    int old = nn_get_threads();
    for (int train = 0; train < 2; train++) {
        float *dx1 = xcalloc(n, sizeof(float)), *dx2 = xcalloc(n, sizeof(float));
        float *dw1 = xcalloc((size_t)C, sizeof(float)), *dw2 = xcalloc((size_t)C, sizeof(float));
        float *db1 = xcalloc((size_t)C, sizeof(float)), *db2 = xcalloc((size_t)C, sizeof(float));
        float *y1 = xmallocarray(n, sizeof(float));
        nn_set_threads(1);
        if (train) {
            fwd_train(&t, y1, NULL, NULL, NULL, 0.1f, NN_ACT_NONE);
            bwd_train(&t, dx1, NULL, dw1, db1, t.dy, NULL, NN_ACT_NONE);
        } else {
            fwd_eval(&t, y1, NULL, NN_ACT_NONE);
            bwd_eval(&t, dx1, NULL, dw1, db1, t.dy, NULL, NN_ACT_NONE);
        }
        nn_set_threads(2);
        if (train) {
            fwd_train(&t, t.y, NULL, NULL, NULL, 0.1f, NN_ACT_NONE);
            bwd_train(&t, dx2, NULL, dw2, db2, t.dy, NULL, NN_ACT_NONE);
            bwd_train(&t, dx2, NULL, NULL, NULL, t.dy, NULL, NN_ACT_NONE);
            bwd_train(&t, NULL, NULL, dw2, db2, t.dy, NULL, NN_ACT_NONE);
        } else {
            fwd_eval(&t, t.y, NULL, NN_ACT_NONE);
            bwd_eval(&t, dx2, NULL, dw2, db2, t.dy, NULL, NN_ACT_NONE);
            bwd_eval(&t, dx2, NULL, NULL, NULL, t.dy, NULL, NN_ACT_NONE);
            bwd_eval(&t, NULL, NULL, dw2, db2, t.dy, NULL, NN_ACT_NONE);
        }
        ck_assert_msg(memcmp(y1, t.y, n * sizeof(float)) == 0,
                      "bn forward differs between 1 and 2 threads");
        /* one pass from zero is bitwise the same, so twice is exactly 2x */
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += dx2[i] != 2.0f * dx1[i];
        ck_assert_msg(bad == 0, "bn dinp: %zu values not 2x after two passes", bad);
        for (int c = 0; c < C; c++)
            ck_assert_msg(dw2[c] == 2.0f * dw1[c] && db2[c] == 2.0f * db1[c],
                          "bn dw/db: not 2x after two passes");
        free(dx1);
        free(dx2);
        free(dw1);
        free(dw2);
        free(db1);
        free(db2);
        free(y1);
    }
    nn_set_threads(old);
    bn_free(&t);
}
END_TEST

/* BN fused with ReLU / ReLU6 gives bit for bit what BN followed by the
 * activation kernel gives, forward and backward, in both modes. */
START_TEST(fused_activation_equals_the_pair)
{
    const int N = 300, C = 19;
    const nn_act_kind acts[2] = {NN_ACT_RELU, NN_ACT_RELU6};
    size_t n = (size_t)N * C;
    for (int ai = 0; ai < 2; ai++) {
        for (int train = 0; train <= 1; train++) {
            bn_bufs t;
            bn_init(&t, N, C, 0.5f, 77 + (unsigned long long)ai);
            /* a wide output range, so that both ReLU6 kinks are crossed */
            for (int c = 0; c < C; c++) {
                t.w[c] = 5.0f;
                t.b[c] = 1.0f;
                t.rv[c] = 0.05f;
            }
            float *z = xcalloc(n, sizeof(float)), *yf = xcalloc(n, sizeof(float));
            float *g = xcalloc(n, sizeof(float)), *dx1 = xcalloc(n, sizeof(float));
            float *dx2 = xcalloc(n, sizeof(float));
            float dw1[19] = {0}, db1[19] = {0}, dw2[19] = {0}, db2[19] = {0};
            float rm2[19], rv2[19];
            memcpy(rm2, t.rm, sizeof rm2);
            memcpy(rv2, t.rv, sizeof rv2);
            if (train) {
                fwd_train(&t, t.y, t.rm, t.rv, NULL, 0.1f, NN_ACT_NONE);
                fwd_train(&t, yf, rm2, rv2, NULL, 0.1f, acts[ai]);
                ck_assert_mem_eq(rm2, t.rm, sizeof rm2);
                ck_assert_mem_eq(rv2, t.rv, sizeof rv2);
            } else {
                fwd_eval(&t, t.y, NULL, NN_ACT_NONE);
                fwd_eval(&t, yf, NULL, acts[ai]);
            }
            if (acts[ai] == NN_ACT_RELU) {
                nn_relu_forward(z, t.y, n);
                nn_relu_backward(g, t.dy, z, n);
            } else {
                nn_relu6_forward(z, t.y, n);
                nn_relu6_backward(g, t.dy, z, n);
            }
            ck_assert_mem_eq(yf, z, n * sizeof(float));
            int zeros = 0, sixes = 0;
            for (size_t i = 0; i < n; i++) {
                zeros += z[i] == 0.0f;
                sixes += z[i] == 6.0f;
            }
            ck_assert_int_gt(zeros, 0);
            if (acts[ai] == NN_ACT_RELU6)
                ck_assert_int_gt(sixes, 0);
            if (train) {
                bwd_train(&t, dx1, NULL, dw1, db1, g, NULL, NN_ACT_NONE);
                bwd_train(&t, dx2, NULL, dw2, db2, t.dy, yf, acts[ai]);
            } else {
                bwd_eval(&t, dx1, NULL, dw1, db1, g, NULL, NN_ACT_NONE);
                bwd_eval(&t, dx2, NULL, dw2, db2, t.dy, yf, acts[ai]);
            }
            ck_assert_mem_eq(dx1, dx2, n * sizeof(float));
            ck_assert_mem_eq(dw1, dw2, sizeof dw1);
            ck_assert_mem_eq(db1, db2, sizeof db1);
            free(z);
            free(yf);
            free(g);
            free(dx1);
            free(dx2);
            bn_free(&t);
        }
    }
}
END_TEST

/* The unfused sequence BN -> add(res, BN) -> act and its backward, from zeroed
 * gradients, as the unfused network program runs it. */
static void bn_add_act_unfused(bn_bufs *t, const float *res, nn_act_kind act, int train, float *out,
                               float *dx, float *dres, float *dw, float *db)
{
    int N = t->N, C = t->C;
    size_t n = (size_t)N * C;
    float *sum = xcalloc(n, sizeof(float)), *dsum = xcalloc(n, sizeof(float));
    float *dbn = xcalloc(n, sizeof(float));
    if (train)
        fwd_train(t, t->y, t->rm, t->rv, NULL, 0.1f, NN_ACT_NONE);
    else
        fwd_eval(t, t->y, NULL, NN_ACT_NONE);
    nn_add_forward(sum, res, t->y, n);
    if (act == NN_ACT_RELU) {
        nn_relu_forward(out, sum, n);
        nn_relu_backward(dsum, t->dy, out, n);
    } else if (act == NN_ACT_RELU6) {
        nn_relu6_forward(out, sum, n);
        nn_relu6_backward(dsum, t->dy, out, n);
    } else {
        memcpy(out, sum, n * sizeof(float));
        nn_accumulate(dsum, t->dy, n);
    }
    nn_accumulate(dres, dsum, n);
    nn_accumulate(dbn, dsum, n);
    if (train)
        bwd_train(t, dx, NULL, dw, db, dbn, NULL, NN_ACT_NONE);
    else
        bwd_eval(t, dx, NULL, dw, db, dbn, NULL, NN_ACT_NONE);
    free(sum);
    free(dsum);
    free(dbn);
}

/* BN fused with a residual add and ReLU / ReLU6 / no activation gives bit for bit what
 * the three kernels give one after the other, forward and backward, in both modes, for
 * fewer and more channels than one channel block. */
START_TEST(fused_residual_equals_the_sequence)
{
    const int shapes[2][2] = {{300, 19}, {40, 300}};
    const nn_act_kind acts[3] = {NN_ACT_NONE, NN_ACT_RELU, NN_ACT_RELU6};
    for (int si = 0; si < 2; si++)
        for (int ai = 0; ai < 3; ai++)
            for (int train = 0; train <= 1; train++) {
                int N = shapes[si][0], C = shapes[si][1];
                size_t n = (size_t)N * C;
                bn_bufs t;
                bn_init(&t, N, C, 0.5f, 91 + (unsigned long long)(ai + 3 * si));
                for (int c = 0; c < C; c++) {
                    t.w[c] = 3.0f;
                    t.rv[c] = 0.05f;
                }
                float *res = xcalloc(n, sizeof(float));
                tu_fill_uniform(res, n, -4, 6, 5 + (unsigned long long)ai);
                float *o1 = xcalloc(n, sizeof(float)), *o2 = xcalloc(n, sizeof(float));
                float *dx1 = xcalloc(n, sizeof(float)), *dx2 = xcalloc(n, sizeof(float));
                float *dr1 = xcalloc(n, sizeof(float)), *dr2 = xcalloc(n, sizeof(float));
                float *dw1 = xcalloc((size_t)C, sizeof(float));
                float *db1 = xcalloc((size_t)C, sizeof(float));
                float *dw2 = xcalloc((size_t)C, sizeof(float));
                float *db2 = xcalloc((size_t)C, sizeof(float));
                float *rm2 = xmallocarray((size_t)C, sizeof(float));
                float *rv2 = xmallocarray((size_t)C, sizeof(float));
                memcpy(rm2, t.rm, (size_t)C * sizeof(float));
                memcpy(rv2, t.rv, (size_t)C * sizeof(float));
                if (train)
                    fwd_train(&t, o2, rm2, rv2, res, 0.1f, acts[ai]);
                else
                    fwd_eval(&t, o2, res, acts[ai]);
                /* the unfused pass overwrites mean/rstd with the same values */
                bn_add_act_unfused(&t, res, acts[ai], train, o1, dx1, dr1, dw1, db1);
                ck_assert_mem_eq(o1, o2, n * sizeof(float));
                ck_assert_mem_eq(rm2, t.rm, (size_t)C * sizeof(float));
                ck_assert_mem_eq(rv2, t.rv, (size_t)C * sizeof(float));
                int clipped = 0;
                for (size_t i = 0; i < n; i++)
                    clipped += o1[i] == 0.0f || o1[i] == 6.0f;
                if (acts[ai] != NN_ACT_NONE)
                    ck_assert_int_gt(clipped, 0);
                if (train)
                    bwd_train(&t, dx2, dr2, dw2, db2, t.dy, o2, acts[ai]);
                else
                    bwd_eval(&t, dx2, dr2, dw2, db2, t.dy, o2, acts[ai]);
                ck_assert_mem_eq(dx1, dx2, n * sizeof(float));
                ck_assert_mem_eq(dr1, dr2, n * sizeof(float));
                ck_assert_mem_eq(dw1, dw2, (size_t)C * sizeof(float));
                ck_assert_mem_eq(db1, db2, (size_t)C * sizeof(float));
                /* without an input gradient the residual's is the same */
                memset(dr2, 0, n * sizeof(float));
                if (train)
                    bwd_train(&t, NULL, dr2, NULL, NULL, t.dy, o2, acts[ai]);
                else
                    bwd_eval(&t, NULL, dr2, NULL, NULL, t.dy, o2, acts[ai]);
                ck_assert_mem_eq(dr1, dr2, n * sizeof(float));
                free(res);
                free(o1);
                free(o2);
                free(dx1);
                free(dx2);
                free(dr1);
                free(dr2);
                free(dw1);
                free(db1);
                free(dw2);
                free(db2);
                free(rm2);
                free(rv2);
                bn_free(&t);
            }
}
END_TEST

Suite *suite_batchnorm(void)
{
    Suite *s = suite_create("batchnorm");
    tu_case_add(s, "core", 60, NULL, NULL,
                TU_TESTS(train_forward_and_running_stats, momentum_one_and_null_stats, eval_forward,
                         gradients_finite_differences, accumulates_and_thread_independent,
                         fused_activation_equals_the_pair, fused_residual_equals_the_sequence));
    return s;
}
