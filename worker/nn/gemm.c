/* gemm.c - the one place kiln calls BLAS, and the thread-count knob.
 *
 * A thin row-major wrapper over cblas_sgemm. We link the OpenMP flavour of
 * OpenBLAS, so BLAS and our own OpenMP loops share one pool of threads;
 * nn_set_threads sets both. A GEMM issued inside an OpenMP parallel region
 * runs single-threaded in OpenBLAS, which the conv kernels rely on to run
 * one small GEMM per thread. Depends on CBLAS and OpenMP only.
 */
#include "worker/nn/gemm.h"

#include "worker/nn/tensor.h"

#include <cblas.h>
#include <omp.h>

void nn_gemm(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc)
{
    NN_ASSERT(M >= 0 && N >= 0 && K >= 0);
    NN_ASSERT(ldc >= (N > 1 ? N : 1));
    NN_ASSERT(lda >= ((transa ? M : K) > 1 ? (transa ? M : K) : 1));
    NN_ASSERT(ldb >= ((transb ? K : N) > 1 ? (transb ? K : N) : 1));
    if (M == 0 || N == 0)
        return;
    if (K == 0) {
        /* BLAS implementations differ on K == 0; the maths says C = beta * C. */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, transa ? CblasTrans : CblasNoTrans,
                transb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void nn_set_threads(int n)
{
    NN_ASSERT(n >= 1);
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int nn_get_threads(void)
{
    return omp_get_max_threads();
}
