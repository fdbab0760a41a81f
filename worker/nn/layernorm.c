/* layernorm.c - LayerNorm over the last dim, channels-last rows (see norm.h).
 *
 * Row statistics are accumulated in double (a two-pass mean and biased
 * variance), so rows with a large mean relative to their spread lose nothing.
 * The backward makes two passes: rows split over the threads for dinp, then
 * columns split over the threads for dw/db, each column summed over the rows
 * in order in double. Every value is computed the same way whatever the
 * thread count. BatchNorm lives in batchnorm.c. Depends on OpenMP; no state.
 */
#include "worker/nn/norm.h"
#include "worker/nn/tensor.h"

#include <math.h>
#include <omp.h>

/* Columns of dw/db summed per block (double accumulators on the stack). */
#define LN_COL_BLOCK 64
/* Below this many elements the kernels run on the calling thread only. */
#define LN_PAR_MIN (1 << 13)

void nn_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int N, int C, float eps)
{
    NN_ASSERT(out != NULL && mean != NULL && rstd != NULL && inp != NULL);
    NN_ASSERT(w != NULL && b != NULL);
    NN_ASSERT(N >= 0 && C > 0 && eps >= 0.0f);
#pragma omp parallel for schedule(static) if ((long)N * C >= LN_PAR_MIN)
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float *y = out + (size_t)i * C;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++)
            s += (double)x[c];
        double m = s / C;
        double v = 0.0;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++) {
            double d = (double)x[c] - m;
            v += d * d;
        }
        float mf = (float)m;
        float r = (float)(1.0 / sqrt(v / C + (double)eps));
        mean[i] = mf;
        rstd[i] = r;
#pragma omp simd
        for (int c = 0; c < C; c++)
            y[c] = (x[c] - mf) * r * w[c] + b[c];
    }
}

/* dinp for rows [0, N): dx = rstd * (g - mean(g) - xhat * mean(g xhat)), g = dy * w. */
static void ln_backward_rows(float *dinp, const float *dout, const float *inp, const float *w,
                             const float *mean, const float *rstd, int N, int C)
{
#pragma omp parallel for schedule(static) if ((long)N * C >= LN_PAR_MIN)
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        const float *dy = dout + (size_t)i * C;
        float *dx = dinp + (size_t)i * C;
        float m = mean[i], r = rstd[i];
        double sg = 0.0, sgx = 0.0;
#pragma omp simd reduction(+ : sg, sgx)
        for (int c = 0; c < C; c++) {
            float g = dy[c] * w[c];
            sg += (double)g;
            sgx += (double)(g * ((x[c] - m) * r));
        }
        float mg = (float)(sg / C), mgx = (float)(sgx / C);
#pragma omp simd
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * r;
            dx[c] += r * (dy[c] * w[c] - mg - xhat * mgx);
        }
    }
}

/* dw, db for columns [c0, c1): sums over all N rows, in row order, in double. */
static void ln_backward_cols(float *dw, float *db, const float *dout, const float *inp,
                             const float *mean, const float *rstd, int N, int C, int c0, int c1)
{
    for (int cb = c0; cb < c1; cb += LN_COL_BLOCK) {
        int nc = c1 - cb < LN_COL_BLOCK ? c1 - cb : LN_COL_BLOCK;
        double aw[LN_COL_BLOCK] = {0}, ab[LN_COL_BLOCK] = {0};
        for (int i = 0; i < N; i++) {
            const float *x = inp + (size_t)i * C + cb;
            const float *dy = dout + (size_t)i * C + cb;
            float m = mean[i], r = rstd[i];
#pragma omp simd
            for (int c = 0; c < nc; c++) {
                aw[c] += (double)(dy[c] * ((x[c] - m) * r));
                ab[c] += (double)dy[c];
            }
        }
        for (int c = 0; c < nc; c++) {
            if (dw != NULL)
                dw[cb + c] += (float)aw[c];
            if (db != NULL)
                db[cb + c] += (float)ab[c];
        }
    }
}

void nn_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                           const float *w, const float *mean, const float *rstd, int N, int C)
{
    NN_ASSERT(dout != NULL && inp != NULL && w != NULL && mean != NULL && rstd != NULL);
    NN_ASSERT(N >= 0 && C > 0);
    if (dinp != NULL)
        ln_backward_rows(dinp, dout, inp, w, mean, rstd, N, C);
    if (dw == NULL && db == NULL)
        return;
        /* Per-thread column ranges in whole groups of 16 floats: no shared cache lines. */
#pragma omp parallel if ((long)N * C >= LN_PAR_MIN)
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int groups = (C + 15) / 16;
        int g0 = (int)((long)groups * t / nt), g1 = (int)((long)groups * (t + 1) / nt);
        int c0 = g0 * 16, c1 = g1 * 16 < C ? g1 * 16 : C;
        if (c0 < c1)
            ln_backward_cols(dw, db, dout, inp, mean, rstd, N, C, c0, c1);
    }
}
