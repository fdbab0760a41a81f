/* naive_gemm.h - the triple-loop GEMM oracle the BLAS path is checked against.
 *
 * Same contract as nn_gemm (worker/nn/gemm.h): row-major
 * C (M, N) = alpha * op(A) * op(B) + beta * C, accumulated in double.
 * Slow on purpose; test code only. Thread-safe (no state).
 */
#ifndef KILN_NAIVE_GEMM_H
#define KILN_NAIVE_GEMM_H

void naive_gemm(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);

#endif
