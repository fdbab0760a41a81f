/* check_loss.c - cross-entropy with label smoothing, accuracy count, softmax and the
 * soft-target KL, against double-precision formulas and finite differences. */
#include "common/xalloc.h"
#include "tests/unit/testutil.h"
#include "worker/nn/loss.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

Suite *suite_loss(void);

/* Mean over rows of sum_k -q_k log softmax(z)_k, q = (1-eps) onehot + eps/K, in double. */
static double ce_double(const float *z, const int32_t *y, int B, int K, double eps)
{
    double total = 0;
    for (int i = 0; i < B; i++) {
        double m = -INFINITY, s = 0;
        for (int k = 0; k < K; k++)
            m = fmax(m, (double)z[i * K + k]);
        for (int k = 0; k < K; k++)
            s += exp((double)z[i * K + k] - m);
        for (int k = 0; k < K; k++) {
            double q = (k == y[i] ? 1.0 - eps : 0.0) + eps / K;
            total -= q * ((double)z[i * K + k] - m - log(s));
        }
    }
    return total / B;
}

static void check_ce(int B, int K, float eps, float spread, unsigned long long seed)
{
    size_t n = (size_t)B * K;
    float *z = xmallocarray(n, sizeof(float)), *p = xmallocarray(n, sizeof(float));
    float *d = xcalloc(n, sizeof(float));
    int32_t *y = xmallocarray((size_t)B, sizeof(int32_t));
    tu_fill_uniform(z, n, -spread, spread, seed);
    for (int i = 0; i < B; i++)
        y[i] = (int32_t)((i * 7 + 3) % K);
    int correct = -1;
    float loss = nn_crossentropy_forward(p, &correct, z, y, B, K, eps);
    double ref = ce_double(z, y, B, K, eps);
    ck_assert_msg(fabs((double)loss - ref) <= 2e-7 * fmax(1.0, fabs(ref)), "loss %.9g vs %.9g",
                  (double)loss, ref);
    /* Accuracy: rows whose (first) maximum is the target. */
    int hits = 0;
    for (int i = 0; i < B; i++) {
        int a = 0;
        for (int k = 1; k < K; k++)
            if (z[i * K + k] > z[i * K + a])
                a = k;
        hits += a == y[i];
    }
    ck_assert_int_eq(correct, hits);
    /* Softmax rows sum to one; the backward is (p - q) / B * scale, accumulated. */
    for (int i = 0; i < B; i++) {
        double s = 0;
        for (int k = 0; k < K; k++)
            s += (double)p[i * K + k];
        ck_assert(fabs(s - 1.0) < 1e-6);
    }
    nn_crossentropy_backward(d, p, y, B, K, eps, 1.0f);
    nn_crossentropy_backward(d, p, y, B, K, eps, 0.5f);
    /* Finite differences of the returned (float) loss: d = 1.5 * dL/dz. */
    double worst = 0, gmax = 0;
    for (size_t i = 0; i < n; i++) {
        float z0 = z[i];
        float h = 1e-2f;
        z[i] = z0 + h;
        double lp = ce_double(z, y, B, K, eps);
        z[i] = z0 - h;
        double lm = ce_double(z, y, B, K, eps);
        z[i] = z0;
        double fd = 1.5 * (lp - lm) / ((double)(z0 + h) - (double)(z0 - h));
        worst = fmax(worst, fabs(fd - (double)d[i]));
        gmax = fmax(gmax, fabs((double)d[i]));
    }
    printf("  crossentropy B%d K%d eps %.2f: loss %.7f (double %.7f), fd rel %.1e\n", B, K,
           (double)eps, (double)loss, ref, worst / gmax);
    ck_assert_msg(worst < 1e-3 * gmax, "crossentropy gradient: %.3e", worst / gmax);
    free(z), free(p), free(d), free(y);
}

START_TEST(crossentropy)
{
    check_ce(6, 10, 0.0f, 3.0f, 1);
    check_ce(6, 10, 0.1f, 3.0f, 2);
    check_ce(1, 2, 0.3f, 1.0f, 3);
    check_ce(64, 10, 0.1f, 8.0f, 4);
    check_ce(5, 1000, 0.0f, 5.0f, 5);
}
END_TEST

START_TEST(crossentropy_extremes)
{
    /* Huge logits stay finite; a confident right answer costs ~0, a wrong one ~the gap. */
    float z[6] = {1000.0f, -1000.0f, 0.0f, -1000.0f, 1000.0f, 0.0f}, p[6];
    int32_t y[2] = {0, 0};
    int correct;
    float loss = nn_crossentropy_forward(p, &correct, z, y, 2, 3, 0.0f);
    ck_assert(isfinite(loss));
    ck_assert(fabs((double)loss - 1000.0) < 1e-3); /* (0 + 2000) / 2 */
    ck_assert_int_eq(correct, 1);
    ck_assert(p[0] == 1.0f && p[1] == 0.0f && p[4] == 1.0f);
    /* Label smoothing spreads eps/K onto every class: the loss of a row equals
     * (1-eps) CE(y) + eps mean_k CE(k). */
    float z2[4] = {0.5f, -1.0f, 2.0f, 0.0f}, p2[4];
    int32_t y2[1] = {2};
    float l0 = nn_crossentropy_forward(p2, NULL, z2, y2, 1, 4, 0.0f);
    float l1 = nn_crossentropy_forward(p2, NULL, z2, y2, 1, 4, 0.2f);
    double lse = log(exp(0.5) + exp(-1.0) + exp(2.0) + exp(0.0));
    double mean_ce = (4 * lse - (0.5 - 1.0 + 2.0 + 0.0)) / 4;
    ck_assert(fabs((double)l0 - (lse - 2.0)) < 1e-6);
    ck_assert(fabs((double)l1 - (0.8 * (lse - 2.0) + 0.2 * mean_ce)) < 1e-6);
}
END_TEST

START_TEST(softmax_and_softtarget)
{
    int B = 5, K = 7;
    size_t n = (size_t)B * K;
    float *z = xmallocarray(n, sizeof(float)), *t = xmallocarray(n, sizeof(float));
    float *p = xmallocarray(n, sizeof(float)), *p2 = xmallocarray(n, sizeof(float));
    float *d = xcalloc(n, sizeof(float));
    tu_fill_uniform(z, n, -4, 4, 8);
    tu_fill_uniform(p2, n, -2, 2, 9);
    nn_softmax(t, p2, B, K); /* teacher probabilities */
    t[3] = 0.0f;             /* a zero teacher entry: 0 log 0 = 0 */
    double s3 = 0;
    for (int k = 0; k < K; k++)
        s3 += (double)t[k];
    for (int k = 0; k < K; k++)
        t[k] = (float)((double)t[k] / s3);
    float kl = nn_softtarget_forward(p, z, t, B, K);
    nn_softmax(p2, z, B, K);
    ck_assert_mem_eq(p, p2, n * sizeof(float));
    double ref = 0;
    for (int i = 0; i < B; i++) {
        double m = -INFINITY, s = 0;
        for (int k = 0; k < K; k++)
            m = fmax(m, (double)z[i * K + k]);
        for (int k = 0; k < K; k++)
            s += exp((double)z[i * K + k] - m);
        for (int k = 0; k < K; k++) {
            double tk = t[i * K + k], ls = (double)z[i * K + k] - m - log(s);
            ck_assert(fabs((double)p[i * K + k] - exp(ls)) < 1e-7);
            if (tk > 0)
                ref += tk * (log(tk) - ls);
        }
    }
    ref /= B;
    ck_assert_msg(fabs((double)kl - ref) < 1e-6 * fmax(1.0, ref), "kl %.9g vs %.9g", (double)kl,
                  ref);
    ck_assert(kl > 0.0f);
    /* Gradient: accumulated, scaled, and equal to finite differences of the KL. */
    nn_softtarget_backward(d, p, t, B, K, 2.0f);
    double worst = 0, gmax = 0;
    for (size_t i = 0; i < n; i++) {
        float z0 = z[i], h = 1e-2f;
        z[i] = z0 + h;
        double lp = nn_softtarget_forward(p2, z, t, B, K);
        z[i] = z0 - h;
        double lm = nn_softtarget_forward(p2, z, t, B, K);
        z[i] = z0;
        double fd = 2.0 * (lp - lm) / ((double)(z0 + h) - (double)(z0 - h));
        worst = fmax(worst, fabs(fd - (double)d[i]));
        gmax = fmax(gmax, fabs((double)d[i]));
    }
    printf("  softtarget: kl %.7f (double %.7f), fd rel %.1e\n", (double)kl, ref, worst / gmax);
    ck_assert(worst < 2e-3 * gmax);
    /* KL of a distribution with itself is 0. */
    nn_softmax(t, z, B, K);
    ck_assert(fabsf(nn_softtarget_forward(p, z, t, B, K)) < 1e-6f);
    free(z), free(t), free(p), free(p2), free(d);
}
END_TEST

Suite *suite_loss(void)
{
    Suite *s = suite_create("loss");
    tu_case_add(s, "core", 0, NULL, NULL,
                TU_TESTS(crossentropy, crossentropy_extremes, softmax_and_softtarget));
    return s;
}
