/* gemm.c - the one place kiln calls BLAS, and the thread-count knob.
 *
 * A row-major wrapper over cblas_sgemm. We link the OpenMP flavour of
 * OpenBLAS, so BLAS and our own OpenMP loops share one pool of threads;
 * nn_set_threads sets both. A GEMM issued inside an OpenMP parallel region
 * runs single-threaded in OpenBLAS, which the conv kernels rely on to run
 * one small GEMM per thread. nn_gemm never lets OpenBLAS split a product
 * among threads itself, as OpenBLAS's split moves with the thread count and
 * so does its rounding: a large product is cut into blocks chosen from its
 * shape alone and run in an OpenMP loop, so results do not depend on the
 * number of threads. Depends on CBLAS and OpenMP only.
 */
#include "worker/nn/gemm.h"

#include "worker/nn/tensor.h"

#include <cblas.h>
#include <omp.h>

/* How a large product is cut (gemm_blocks). */
#define GEMM_MAX_BLOCKS 8
#define GEMM_BLOCK_MACS (1 << 18) /* about OpenBLAS's own threshold for threading */
#define GEMM_MIN_SIDE   32
#define GEMM_ALIGN      16 /* block edges on whole register tiles */

/* One product through cblas_sgemm, called where OpenBLAS runs it on one thread. */
static void gemm_call(int transa, int transb, int M, int N, int K, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, transa ? CblasTrans : CblasNoTrans,
                transb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* Blocks of a product too big for one thread: from the shape alone (never the thread
 * count), at most GEMM_MAX_BLOCKS, each at least GEMM_BLOCK_MACS multiply-adds and
 * GEMM_MIN_SIDE rows or columns wide. Sets *by_rows (else by columns). */
static int gemm_blocks(int M, int N, int K, int *by_rows)
{
    double macs = (double)M * N * K;
    int nb = macs >= (double)GEMM_MAX_BLOCKS * GEMM_BLOCK_MACS ? GEMM_MAX_BLOCKS
                                                               : (int)(macs / GEMM_BLOCK_MACS);
    *by_rows = M >= N;
    int side = *by_rows ? M : N;
    while (nb > 1 && side / nb < GEMM_MIN_SIDE)
        nb--;
    return nb < 1 ? 1 : nb;
}

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
    /* Inside a parallel loop (active or not: the level counts one-thread teams too, so
     * that the same call cuts the same way at any thread count) the caller splits. */
    int by_rows, nb = omp_get_level() > 0 ? 1 : gemm_blocks(M, N, K, &by_rows);
    if (nb == 1) {
        gemm_call(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* Rows of C come from rows of op(A), columns from columns of op(B). Each block is
     * one single-threaded call (OpenBLAS does not thread inside a parallel region). */
#pragma omp parallel for schedule(static)
    for (int q = 0; q < nb; q++) {
        int side = by_rows ? M : N;
        int lo = (int)((long)side * q / nb) / GEMM_ALIGN * GEMM_ALIGN;
        int hi = q == nb - 1 ? side : (int)((long)side * (q + 1) / nb) / GEMM_ALIGN * GEMM_ALIGN;
        if (hi <= lo)
            continue;
        if (by_rows) {
            const float *a = transa ? A + lo : A + (size_t)lo * lda;
            gemm_call(transa, transb, hi - lo, N, K, alpha, a, lda, B, ldb, beta,
                      C + (size_t)lo * ldc, ldc);
        } else {
            const float *b = transb ? B + (size_t)lo * ldb : B + lo;
            gemm_call(transa, transb, M, hi - lo, K, alpha, A, lda, b, ldb, beta, C + lo, ldc);
        }
    }
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
