/* gemm.h - the one place kiln calls BLAS, plus the thread-count knob.
 *
 * Row-major C = alpha * op(A) * op(B) + beta * C through cblas_sgemm.
 * Keeping every GEMM behind this wrapper lets tests swap in the naive
 * oracle (tests/unit/naive_gemm.h) and lets the bench count FLOPs.
 * Results do not depend on the thread count (gemm.c cuts large products by shape).
 * Thread-safe as far as OpenBLAS is; nn_set_threads is process-wide.
 */
#ifndef KILN_NN_GEMM_H
#define KILN_NN_GEMM_H

/* C (M, N) = alpha * op(A) * op(B) + beta * C; op(A) is (M, K), op(B) is (K, N).
 * transa/transb: 0 = as stored, 1 = transposed. lda/ldb/ldc are row strides. */
void nn_gemm(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);

/* Sets the threads used by BLAS and by the kernels' own OpenMP loops. */
void nn_set_threads(int n);
int nn_get_threads(void);

#endif
