/* check_dropout.c - dropout and drop-path: keep rates within a few standard deviations,
 * scaling by 1/(1-p), the saved mask reused by the backward, the identity at p = 0, and
 * masks fixed by the rng's seed. */
#include "common/rng.h"
#include "common/xalloc.h"
#include "tests/unit/testutil.h"
#include "worker/nn/dropout.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_dropout(void);

/* |kept - n(1-p)| within 5 binomial standard deviations. */
static void check_rate(size_t kept, size_t n, float p)
{
    double mean = (double)n * (1.0 - (double)p);
    double sd = sqrt((double)n * (double)p * (1.0 - (double)p));
    printf("  keep %zu of %zu at p %.2f (expected %.0f +- %.0f)\n", kept, n, (double)p, mean, sd);
    ck_assert_msg(fabs((double)kept - mean) <= 5 * sd + 1, "kept %zu of %zu at p %.2f", kept, n,
                  (double)p);
}

START_TEST(dropout_statistics_and_backward)
{
    const float ps[3] = {0.1f, 0.5f, 0.9f};
    size_t n = 200003;
    float *x = xmallocarray(n, sizeof(float)), *y = xmallocarray(n, sizeof(float));
    float *m = xmallocarray(n, sizeof(float)), *dy = xmallocarray(n, sizeof(float));
    float *dx = xmallocarray(n, sizeof(float));
    tu_fill_uniform(x, n, -2, 2, 1);
    tu_fill_uniform(dy, n, -1, 1, 2);
    for (int t = 0; t < 3; t++) {
        float p = ps[t], scale = 1.0f / (1.0f - p);
        rng r;
        rng_seed(&r, 100 + (uint64_t)t);
        nn_dropout_forward(y, m, x, n, p, &r);
        size_t kept = 0, bad = 0;
        double sum_x = 0, sum_y = 0;
        for (size_t i = 0; i < n; i++) {
            bad += !(m[i] == 0.0f || m[i] == scale) || y[i] != x[i] * m[i];
            kept += m[i] != 0.0f;
            sum_x += fabs((double)x[i]);
            sum_y += fabs((double)y[i]);
        }
        ck_assert_msg(bad == 0, "%zu elements with a wrong mask or output", bad);
        check_rate(kept, n, p);
        /* Scaling keeps the expectation: E|y| = E|x| (loose: 5% for p = 0.9's variance). */
        ck_assert(fabs(sum_y / sum_x - 1.0) < 0.05);
        /* The backward applies the same mask and accumulates. */
        for (size_t i = 0; i < n; i++)
            dx[i] = 1.0f;
        nn_dropout_backward(dx, dy, m, n);
        for (size_t i = 0; i < n; i++)
            bad += fabs((double)dx[i] - (1.0 + (double)dy[i] * (double)m[i])) >= 1e-6;
        ck_assert_msg(bad == 0, "backward: %zu wrong elements", bad);
        /* Same seed, same mask; another seed, another mask. */
        float *m2 = xmallocarray(n, sizeof(float));
        rng_seed(&r, 100 + (uint64_t)t);
        nn_dropout_forward(y, m2, x, n, p, &r);
        ck_assert_mem_eq(m, m2, n * sizeof(float));
        rng_seed(&r, 999);
        nn_dropout_forward(y, m2, x, n, p, &r);
        ck_assert(memcmp(m, m2, n * sizeof(float)) != 0);
        free(m2);
    }
    free(x), free(y), free(m), free(dy), free(dx);
}
END_TEST

START_TEST(p_zero_is_identity)
{
    size_t n = 1001;
    float *x = xmallocarray(n, sizeof(float)), *y = xmallocarray(n, sizeof(float));
    float *m = xmallocarray(n, sizeof(float));
    tu_fill_uniform(x, n, -2, 2, 3);
    rng r, r0;
    rng_seed(&r, 5);
    r0 = r;
    nn_dropout_forward(y, m, x, n, 0.0f, &r);
    ck_assert_mem_eq(x, y, n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        ck_assert(m[i] == 1.0f);
    float pm[7];
    nn_droppath_forward(y, pm, x, 7, 143, 0.0f, &r);
    ck_assert_mem_eq(x, y, 7 * 143 * sizeof(float));
    for (int b = 0; b < 7; b++)
        ck_assert(pm[b] == 1.0f);
    /* Nothing was drawn. */
    ck_assert(rng_u64(&r) == rng_u64(&r0));
    free(x), free(y), free(m);
}
END_TEST

START_TEST(droppath_statistics_and_backward)
{
    int B = 20000;
    size_t per = 3;
    size_t n = (size_t)B * per;
    float p = 0.2f, scale = 1.0f / (1.0f - p);
    float *x = xmallocarray(n, sizeof(float)), *y = xmallocarray(n, sizeof(float));
    float *dy = xmallocarray(n, sizeof(float)), *dx = xcalloc(n, sizeof(float));
    float *m = xmallocarray((size_t)B, sizeof(float));
    tu_fill_uniform(x, n, -2, 2, 6);
    tu_fill_uniform(dy, n, -1, 1, 7);
    rng r;
    rng_seed(&r, 11);
    nn_droppath_forward(y, m, x, B, per, p, &r);
    size_t kept = 0;
    for (int b = 0; b < B; b++) {
        ck_assert(m[b] == 0.0f || m[b] == scale);
        kept += m[b] != 0.0f;
        /* A whole sample is kept (scaled) or zeroed. */
        for (size_t i = 0; i < per; i++)
            ck_assert(y[b * per + i] == x[b * per + i] * m[b]);
    }
    check_rate(kept, (size_t)B, p);
    nn_droppath_backward(dx, dy, m, B, per);
    nn_droppath_backward(dx, dy, m, B, per);
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < per; i++)
            ck_assert(fabs((double)dx[b * per + i] - 2.0 * (double)dy[b * per + i] * (double)m[b]) <
                      1e-6);
    /* A large per-sample size takes the threaded path and gives the same values. */
    int B2 = 8;
    size_t per2 = 50 * 96;
    float *x2 = xmallocarray((size_t)B2 * per2, sizeof(float));
    float *y2 = xmallocarray((size_t)B2 * per2, sizeof(float));
    tu_fill_uniform(x2, (size_t)B2 * per2, -1, 1, 8);
    rng_seed(&r, 12);
    nn_droppath_forward(y2, m, x2, B2, per2, 0.5f, &r);
    for (int b = 0; b < B2; b++)
        for (size_t i = 0; i < per2; i += 101)
            ck_assert(y2[b * per2 + i] == x2[b * per2 + i] * m[b]);
    free(x), free(y), free(dy), free(dx), free(m), free(x2), free(y2);
}
END_TEST

Suite *suite_dropout(void)
{
    Suite *s = suite_create("dropout");
    tu_case_add(s, "core", 60, NULL, NULL,
                TU_TESTS(dropout_statistics_and_backward, p_zero_is_identity,
                         droppath_statistics_and_backward));
    return s;
}
