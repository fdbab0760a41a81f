/* naive_gemm.c - the triple-loop GEMM oracle (see naive_gemm.h). */
#include "tests/unit/naive_gemm.h"

#include <stddef.h>

void naive_gemm(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int k = 0; k < K; k++) {
                double a = transa ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = transb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
            }
            float *c = &C[(size_t)i * ldc + j];
            /* beta == 0 overwrites, as BLAS does: C may hold garbage (NaN) then. */
            double prev = beta == 0.0f ? 0.0 : (double)beta * (double)*c;
            *c = (float)((double)alpha * s + prev);
        }
}
