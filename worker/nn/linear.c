/* linear.c - fully connected layer, y = x W^T + b (see linear.h).
 *
 * The three products go through nn_gemm (gemm.h). The forward writes the bias
 * into every output row first and lets the GEMM accumulate (beta = 1), which
 * saves BLAS its separate pass zeroing C. The bias gradient is a column sum of
 * dout: threads own disjoint column ranges and sum their rows in order in
 * double, so the result does not depend on the thread count.
 * Depends on gemm.h and OpenMP; thread-safe (no state).
 */
#include "worker/nn/linear.h"

#include "worker/nn/gemm.h"
#include "worker/nn/tensor.h"

#include <omp.h>
#include <string.h>

/* Columns of db summed per block (its double accumulators live on the stack). */
#define LIN_DB_BLOCK 64
/* Below this many outputs a loop runs on the calling thread only. */
#define LIN_PAR_MIN (1 << 14)

void nn_linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int IN,
                       int OUT)
{
    NN_ASSERT(out != NULL && inp != NULL && w != NULL);
    NN_ASSERT(N >= 0 && IN > 0 && OUT > 0);
    if (N == 0)
        return;
    float beta = 0.0f;
    if (b != NULL) {
        size_t row = (size_t)OUT * sizeof(float);
#pragma omp parallel for schedule(static) if ((long)N * OUT >= LIN_PAR_MIN)
        for (int i = 0; i < N; i++)
            memcpy(out + (size_t)i * OUT, b, row);
        beta = 1.0f;
    }
    /* out (N, OUT) = inp (N, IN) . w^T (IN, OUT) */
    nn_gemm(0, 1, N, OUT, IN, 1.0f, inp, IN, w, IN, beta, out, OUT);
}

/* db[c] += sum_i dout[i, c] for c in [c0, c1), rows summed in order. */
static void bias_grad_cols(float *db, const float *dout, int N, int OUT, int c0, int c1)
{
    for (int cb = c0; cb < c1; cb += LIN_DB_BLOCK) {
        int w = c1 - cb < LIN_DB_BLOCK ? c1 - cb : LIN_DB_BLOCK;
        double acc[LIN_DB_BLOCK] = {0};
        for (int i = 0; i < N; i++) {
            const float *row = dout + (size_t)i * OUT + cb;
#pragma omp simd
            for (int c = 0; c < w; c++)
                acc[c] += (double)row[c];
        }
        for (int c = 0; c < w; c++)
            db[cb + c] += (float)acc[c];
    }
}

void nn_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, int N, int IN, int OUT)
{
    NN_ASSERT(dout != NULL);
    NN_ASSERT(N >= 0 && IN > 0 && OUT > 0);
    if (N == 0)
        return;
    if (dinp != NULL) {
        NN_ASSERT(w != NULL);
        /* dinp (N, IN) += dout (N, OUT) . w (OUT, IN) */
        nn_gemm(0, 0, N, IN, OUT, 1.0f, dout, OUT, w, IN, 1.0f, dinp, IN);
    }
    if (dw != NULL) {
        NN_ASSERT(inp != NULL);
        /* dw (OUT, IN) += dout^T (OUT, N) . inp (N, IN) */
        nn_gemm(1, 0, OUT, IN, N, 1.0f, dout, OUT, inp, IN, 1.0f, dw, IN);
    }
    if (db != NULL) {
        /* Split the columns into per-thread ranges that are multiples of 16 floats, so no
         * two threads share a cache line of db and each range vectorises whole. */
#pragma omp parallel if ((long)N * OUT >= LIN_PAR_MIN)
        {
            int nt = omp_get_num_threads(), t = omp_get_thread_num();
            int groups = (OUT + 15) / 16;
            int g0 = (int)((long)groups * t / nt), g1 = (int)((long)groups * (t + 1) / nt);
            int c0 = g0 * 16, c1 = g1 * 16 < OUT ? g1 * 16 : OUT;
            if (c0 < c1)
                bias_grad_cols(db, dout, N, OUT, c0, c1);
        }
    }
}
