/* layernorm.c - LayerNorm over the last dim, channels-last rows (see norm.h).
 *
 * Row statistics are two-pass (the mean, then the mean squared deviation), so rows
 * whose mean dwarfs their spread lose nothing (a one-pass E[x^2] - E[x]^2 would).
 * Rows are walked in 16-float vectors (vec.h) with a scalar tail, so any C works.
 * The backward makes two passes: rows split over the threads for dinp, then column
 * ranges split over the threads for dw/db, each column summed over the rows in order
 * (float over blocks of LN_ROW_BLOCK rows, then double), so every value is computed
 * the same way whatever the thread count. BatchNorm lives in batchnorm.c.
 * Depends on OpenMP; thread-safe (no state).
 */
#include "worker/nn/norm.h"
#include "worker/nn/tensor.h"
#include "worker/nn/vec.h"

#include <math.h>
#include <omp.h>

/* Columns of dw/db summed per block (accumulators on the stack), a multiple of VEC_LEN. */
#define LN_COL_BLOCK 128
/* Rows summed in float before the partial sums are added into double. */
#define LN_ROW_BLOCK 16
/* Below this many elements the kernels run on the calling thread only. */
#define LN_PAR_MIN (1 << 13)

/* Mean and 1/sqrt(biased variance + eps) of one row, two-pass. The first pass sums
 * x - x[0] rather than x, so a mean far from zero costs no precision: the terms are of the
 * order of the spread. Each of the 2 x 16 float lanes then sums only C/32 values and the
 * lanes are added as a tree, which keeps both sums within a few ulp of the spread
 * (checked against double in check_layernorm.c); two accumulators halve the dependency
 * chain that bounds this loop. */
static void row_stats(const float *x, int C, float eps, float *mean, float *rstd)
{
    int cv = C / VEC_LEN * VEC_LEN, c = 0;
    const float pivot = x[0];
    v16 s0 = {0}, s1 = {0};
    for (; c + 2 * VEC_LEN <= cv; c += 2 * VEC_LEN) {
        s0 += vec_ld(x + c) - pivot;
        s1 += vec_ld(x + c + VEC_LEN) - pivot;
    }
    for (; c < cv; c += VEC_LEN)
        s0 += vec_ld(x + c) - pivot;
    float sum = vec_hsum(s0 + s1);
    for (c = cv; c < C; c++)
        sum += x[c] - pivot;
    float m = pivot + sum / (float)C;
    v16 q0 = {0}, q1 = {0};
    for (c = 0; c + 2 * VEC_LEN <= cv; c += 2 * VEC_LEN) {
        v16 d0 = vec_ld(x + c) - m, d1 = vec_ld(x + c + VEC_LEN) - m;
        q0 += d0 * d0;
        q1 += d1 * d1;
    }
    for (; c < cv; c += VEC_LEN) {
        v16 d = vec_ld(x + c) - m;
        q0 += d * d;
    }
    float var = vec_hsum(q0 + q1);
    for (c = cv; c < C; c++)
        var += (x[c] - m) * (x[c] - m);
    *mean = m;
    *rstd = 1.0f / sqrtf(var / (float)C + eps);
}

void nn_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int N, int C, float eps)
{
    NN_ASSERT(out != NULL && mean != NULL && rstd != NULL && inp != NULL);
    NN_ASSERT(w != NULL && b != NULL);
    NN_ASSERT(N >= 0 && C > 0 && eps >= 0.0f);
    int cv = C / VEC_LEN * VEC_LEN;
#pragma omp parallel for schedule(static) if ((long)N * C >= LN_PAR_MIN)
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float *y = out + (size_t)i * C;
        float m, r;
        row_stats(x, C, eps, &m, &r);
        mean[i] = m;
        rstd[i] = r;
        for (int c = 0; c < cv; c += VEC_LEN)
            vec_st(y + c, (vec_ld(x + c) - m) * r * vec_ld(w + c) + vec_ld(b + c));
        for (int c = cv; c < C; c++)
            y[c] = (x[c] - m) * r * w[c] + b[c];
    }
}

/* dinp for rows [0, N): dx = rstd * (g - mean(g) - xhat * mean(g xhat)), g = dy * w. */
static void ln_backward_rows(float *dinp, const float *dout, const float *inp, const float *w,
                             const float *mean, const float *rstd, int N, int C)
{
    int cv = C / VEC_LEN * VEC_LEN;
#pragma omp parallel for schedule(static) if ((long)N * C >= LN_PAR_MIN)
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        const float *dy = dout + (size_t)i * C;
        float *dx = dinp + (size_t)i * C;
        float m = mean[i], r = rstd[i];
        v16 sg = {0}, sgx = {0};
        for (int c = 0; c < cv; c += VEC_LEN) {
            v16 g = vec_ld(dy + c) * vec_ld(w + c);
            sg += g;
            sgx += g * ((vec_ld(x + c) - m) * r);
        }
        float tg = vec_hsum(sg), tgx = vec_hsum(sgx);
        for (int c = cv; c < C; c++) {
            float g = dy[c] * w[c];
            tg += g;
            tgx += g * ((x[c] - m) * r);
        }
        float mg = tg / (float)C, mgx = tgx / (float)C;
        for (int c = 0; c < cv; c += VEC_LEN) {
            v16 xhat = (vec_ld(x + c) - m) * r;
            v16 g = vec_ld(dy + c) * vec_ld(w + c);
            vec_st(dx + c, vec_ld(dx + c) + r * (g - mg - xhat * mgx));
        }
        for (int c = cv; c < C; c++) {
            float xhat = (x[c] - m) * r;
            dx[c] += r * (dy[c] * w[c] - mg - xhat * mgx);
        }
    }
}

/* dw, db for columns [c0, c1), c0 a multiple of VEC_LEN: sums over all N rows in order. */
static void ln_backward_cols(float *dw, float *db, const float *dout, const float *inp,
                             const float *mean, const float *rstd, int N, int C, int c0, int c1)
{
    for (int cb = c0; cb < c1; cb += LN_COL_BLOCK) {
        int nc = c1 - cb < LN_COL_BLOCK ? c1 - cb : LN_COL_BLOCK;
        int full = nc / VEC_LEN; /* whole vectors; a tail of < VEC_LEN columns is scalar */
        double aw[LN_COL_BLOCK] = {0}, ab[LN_COL_BLOCK] = {0};
        for (int i0 = 0; i0 < N; i0 += LN_ROW_BLOCK) {
            int i1 = i0 + LN_ROW_BLOCK < N ? i0 + LN_ROW_BLOCK : N;
            v16 pw[LN_COL_BLOCK / VEC_LEN] = {{0}}, pb[LN_COL_BLOCK / VEC_LEN] = {{0}};
            float tw[VEC_LEN] = {0}, tb[VEC_LEN] = {0};
            for (int i = i0; i < i1; i++) {
                const float *x = inp + (size_t)i * C + cb;
                const float *dy = dout + (size_t)i * C + cb;
                float m = mean[i], r = rstd[i];
                for (int k = 0; k < full; k++) {
                    v16 g = vec_ld(dy + k * VEC_LEN);
                    pw[k] += g * ((vec_ld(x + k * VEC_LEN) - m) * r);
                    pb[k] += g;
                }
                for (int c = full * VEC_LEN; c < nc; c++) {
                    tw[c - full * VEC_LEN] += dy[c] * ((x[c] - m) * r);
                    tb[c - full * VEC_LEN] += dy[c];
                }
            }
            for (int k = 0; k < full; k++)
                for (int l = 0; l < VEC_LEN; l++) {
                    aw[k * VEC_LEN + l] += (double)pw[k][l];
                    ab[k * VEC_LEN + l] += (double)pb[k][l];
                }
            for (int c = full * VEC_LEN; c < nc; c++) {
                aw[c] += (double)tw[c - full * VEC_LEN];
                ab[c] += (double)tb[c - full * VEC_LEN];
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
        /* Per-thread column ranges in whole vectors: no shared cache lines, no split vectors. */
#pragma omp parallel if ((long)N * C >= LN_PAR_MIN)
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int groups = (C + VEC_LEN - 1) / VEC_LEN;
        int g0 = (int)((long)groups * t / nt), g1 = (int)((long)groups * (t + 1) / nt);
        int c0 = g0 * VEC_LEN, c1 = g1 * VEC_LEN < C ? g1 * VEC_LEN : C;
        if (c0 < c1)
            ln_backward_cols(dw, db, dout, inp, mean, rstd, N, C, c0, c1);
    }
}
