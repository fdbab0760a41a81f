/* check_gemm.c - nn_gemm (cblas_sgemm) against the naive double oracle. */
#include "common/xalloc.h"
#include "tests/unit/naive_gemm.h"
#include "tests/unit/testutil.h"
#include "worker/nn/gemm.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

Suite *suite_gemm(void);

/* One product, with padded leading dims (pad extra columns never read or
 * written: they hold a sentinel that must survive). Returns the error
 * relative to sum |a||b| per element. */
static double run_case(int ta, int tb, int M, int N, int K, float alpha, float beta, int pad,
                       unsigned long long seed)
{
    int ar = ta ? K : M, ac = ta ? M : K; /* stored shape of A */
    int br = tb ? N : K, bc = tb ? K : N;
    int lda = ac + pad, ldb = bc + pad, ldc = N + pad;
    size_t na = (size_t)ar * lda, nb = (size_t)br * ldb, nc = (size_t)M * ldc;
    float *A = xmallocarray(na + 1, sizeof(float));
    float *B = xmallocarray(nb + 1, sizeof(float));
    float *C = xmallocarray(nc + 1, sizeof(float));
    float *R = xmallocarray(nc + 1, sizeof(float));
    tu_fill_uniform(A, na, -1, 1, seed);
    tu_fill_uniform(B, nb, -1, 1, seed + 1);
    tu_fill_uniform(C, nc, -1, 1, seed + 2);
    for (int i = 0; i < M; i++)
        for (int j = N; j < ldc; j++)
            C[(size_t)i * ldc + j] = 12345.0f;
    for (size_t i = 0; i < nc; i++)
        R[i] = C[i];
    nn_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    naive_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, R, ldc);
    double err = 0.0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < ldc; j++) {
            size_t o = (size_t)i * ldc + j;
            if (j >= N) {
                ck_assert_msg(C[o] == 12345.0f, "gemm wrote outside C at (%d, %d)", i, j);
                continue;
            }
            /* scale: the magnitude of the terms, |alpha| K + |beta| |C| */
            double scale = fabs((double)alpha) * K + fabs((double)beta) + 1e-30;
            err = fmax(err, fabs((double)C[o] - (double)R[o]) / scale);
        }
    free(A);
    free(B);
    free(C);
    free(R);
    return err;
}

START_TEST(all_transposes_and_sizes)
{
    static const int sizes[][3] = {{1, 1, 1},      {3, 5, 7},   {17, 13, 9},  {64, 64, 64},
                                   {65, 31, 129},  {1, 100, 3}, {100, 1, 50}, {7, 9, 1},
                                   {128, 16, 144}, {33, 300, 2}};
    int n = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
                double e = run_case(ta, tb, M, N, K, 1.0f, 0.0f, 0, 100u + s);
                ck_assert_msg(e < 1e-6, "gemm ta=%d tb=%d %dx%dx%d: err %.3e", ta, tb, M, N, K, e);
                e = run_case(ta, tb, M, N, K, -0.75f, 0.5f, 3, 200u + s);
                ck_assert_msg(e < 1e-6, "gemm ta=%d tb=%d %dx%dx%d alpha/beta/ld: err %.3e", ta, tb,
                              M, N, K, e);
                e = run_case(ta, tb, M, N, K, 2.0f, 1.0f, 1, 300u + s);
                ck_assert_msg(e < 1e-6, "gemm ta=%d tb=%d %dx%dx%d beta=1: err %.3e", ta, tb, M, N,
                              K, e);
                n++;
            }
    printf("  gemm: %d shape/transpose combinations agree with the oracle\n", n);
}
END_TEST

START_TEST(beta_zero_ignores_nan)
{
    float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, 0, 0, 1, 1, 1}, C[4];
    for (int i = 0; i < 4; i++)
        C[i] = NAN;
    nn_gemm(0, 0, 2, 2, 3, 1.0f, A, 3, B, 2, 0.0f, C, 2);
    /* A (2,3) * B (3,2) = [[1+3, 2+3], [4+6, 5+6]] */
    ck_assert(C[0] == 4.0f);
    ck_assert(C[1] == 5.0f);
    ck_assert(C[2] == 10.0f);
    ck_assert(C[3] == 11.0f);
}
END_TEST

START_TEST(k_zero_scales_c)
{
    float C[4] = {1, 2, 3, 4}, dummy = 0.0f;
    nn_gemm(0, 0, 2, 2, 0, 1.0f, &dummy, 1, &dummy, 2, 0.5f, C, 2);
    ck_assert(C[0] == 0.5f);
    ck_assert(C[3] == 2.0f);
}
END_TEST

START_TEST(large_threaded_matches)
{
    int old = nn_get_threads();
    nn_set_threads(2);
    ck_assert_int_eq(nn_get_threads(), 2);
    double e = run_case(0, 1, 300, 257, 190, 1.0f, 0.0f, 0, 7);
    ck_assert_msg(e < 1e-6, "threaded gemm err %.3e", e);
    nn_set_threads(old);
}
END_TEST

Suite *suite_gemm(void)
{
    Suite *s = suite_create("gemm");
    tu_case_add(s, "core", 0, NULL, NULL,
                TU_TESTS(all_transposes_and_sizes, beta_zero_ignores_nan, k_zero_scales_c,
                         large_threaded_matches));
    return s;
}
