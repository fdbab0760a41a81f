/* batchnorm.c - batch normalisation over channels-last rows (see norm.h).
 *
 * Each channel is normalised over all N rows. Per-channel sums are taken in
 * double over a fixed number of row parts, combined in part order, so the
 * result does not depend on the thread count; the batch variance is taken
 * around a shift (the first row) so that a large mean does not cancel it.
 * Channels are processed in blocks of BN_CBLK, which bounds the stack
 * space of the partial sums. Pure: no allocation, no I/O. LayerNorm, also
 * declared in norm.h, lives in layernorm.c.
 */
#include "worker/nn/norm.h"
#include "worker/nn/tensor.h"
#include "worker/nn/vec.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#define BN_CBLK    256       /* channels per pass */
#define BN_PARTS   4         /* fixed row parts of every reduction */
#define BN_RBLK    16        /* rows summed in float before the double sums */
#define BN_AHEAD   4         /* rows prefetched ahead in the sums of wide rows */
#define BN_PAR_MIN (1 << 14) /* fewer elements than this run on one thread */

typedef enum { BN_SUM_STATS, BN_SUM_GRAD } bn_sum_mode;

static inline float act_apply(nn_act_kind act, float v)
{
    switch (act) {
    case NN_ACT_RELU:
        return v > 0.0f ? v : 0.0f;
    case NN_ACT_RELU6:
        return v > 0.0f ? (v < 6.0f ? v : 6.0f) : 0.0f;
    default:
        return v;
    }
}

/* Adds to a1, a2 (doubles, indexed from c0) the sums of bn_sums over rows [r0, r1) of
 * the m whole vectors of channels from c0: in float per vector across the rows (at most
 * BN_RBLK of them), then into double. The rows are walked in memory order, which keeps
 * the hardware prefetcher streaming when the tensor does not fit the caches; with
 * M > 0 (the caller's m as a constant, at most BN_VCHUNK) the float sums stay in
 * registers, else (M = 0, any m) in an array on the stack. */
static inline __attribute__((always_inline)) void
bn_sums_vec_m(double *a1, double *a2, bn_sum_mode mode, const float *x, const float *g,
              const float *y, nn_act_kind act, const float *ctr, int C, int c0, int m, int M,
              int r0, int r1)
{
    float hi = act == NN_ACT_RELU6 ? 6.0f : INFINITY;
    int nv = M > 0 ? M : m;
    v16 s1[BN_CBLK / VEC_LEN], s2[BN_CBLK / VEC_LEN];
    for (int k = 0; k < nv; k++) {
        s1[k] = vec_set1(0.0f);
        s2[k] = vec_set1(0.0f);
    }
    for (int r = r0; r < r1; r++) {
        size_t o = (size_t)r * C + c0;
        for (int k = 0; k < nv; k++, o += VEC_LEN) {
            if (M == 0 && (k & 3) == 0) {
                /* a wide row: fetch ahead, as the rows behind need many lines at once */
                __builtin_prefetch(x + o + (size_t)BN_AHEAD * C);
                if (mode == BN_SUM_GRAD)
                    __builtin_prefetch(g + o + (size_t)BN_AHEAD * C);
            }
            v16 v = vec_ld(x + o) - vec_ld(ctr + k * VEC_LEN);
            if (mode == BN_SUM_STATS) {
                s1[k] += v;
                s2[k] += v * v;
                continue;
            }
            v16 gv = vec_ld(g + o);
            if (act != NN_ACT_NONE) {
                v16 yv = vec_ld(y + o);
                gv = vec_select((yv > 0.0f) & (yv < hi), gv, vec_set1(0.0f));
            }
            s1[k] += gv;
            s2[k] += gv * v;
        }
    }
    for (int k = 0; k < nv; k++) {
        double *d1 = a1 + k * VEC_LEN, *d2 = a2 + k * VEC_LEN;
        v8d l1 = vec_lo_d(s1[k]), h1 = vec_hi_d(s1[k]), l2 = vec_lo_d(s2[k]), h2 = vec_hi_d(s2[k]);
        for (int l = 0; l < VEC_LEN / 2; l++) {
            d1[l] += l1[l];
            d1[l + VEC_LEN / 2] += h1[l];
            d2[l] += l2[l];
            d2[l + VEC_LEN / 2] += h2[l];
        }
    }
}

/* bn_sums_vec_m for the ng whole vectors of channels from c0 (ctr indexed from c0). */
static void bn_sums_vec(double *a1, double *a2, bn_sum_mode mode, const float *x, const float *g,
                        const float *y, nn_act_kind act, const float *ctr, int C, int c0, int ng,
                        int r0, int r1)
{
    switch (ng) {
    case 0:
        break;
    case 1:
        bn_sums_vec_m(a1, a2, mode, x, g, y, act, ctr, C, c0, 1, 1, r0, r1);
        break;
    case 2:
        bn_sums_vec_m(a1, a2, mode, x, g, y, act, ctr, C, c0, 2, 2, r0, r1);
        break;
    case 3:
        bn_sums_vec_m(a1, a2, mode, x, g, y, act, ctr, C, c0, 3, 3, r0, r1);
        break;
    case 4:
        bn_sums_vec_m(a1, a2, mode, x, g, y, act, ctr, C, c0, 4, 4, r0, r1);
        break;
    default:
        bn_sums_vec_m(a1, a2, mode, x, g, y, act, ctr, C, c0, ng, 0, r0, r1);
    }
}

/* The same sums for the channels [c0 + from, c0 + n) one by one, in double. */
static void bn_sums_tail(double *a1, double *a2, bn_sum_mode mode, const float *x, const float *g,
                         const float *y, nn_act_kind act, const float *ctr, int C, int c0, int from,
                         int n, int r0, int r1)
{
    float hi = act == NN_ACT_RELU6 ? 6.0f : INFINITY;
    for (int r = r0; r < r1; r++) {
        size_t o = (size_t)r * C + c0;
        for (int c = from; c < n; c++) {
            double v = (double)x[o + c] - (double)ctr[c];
            if (mode == BN_SUM_STATS) {
                a1[c] += v;
                a2[c] += v * v;
                continue;
            }
            float gv = g[o + c];
            if (act != NN_ACT_NONE && !((y[o + c] > 0.0f) & (y[o + c] < hi)))
                gv = 0.0f;
            a1[c] += (double)gv;
            a2[c] += (double)gv * v;
        }
    }
}

/* For channels [c0, c0+n):
 *   BN_SUM_STATS: s1 = sum(x - ctr), s2 = sum((x - ctr)^2)
 *   BN_SUM_GRAD:  s1 = sum(g),       s2 = sum(g * (x - ctr))
 * over the N rows of x (and g), into double. ctr is indexed from c0. In
 * BN_SUM_GRAD, g is the gradient of a fused activation's output y
 * (act != NN_ACT_NONE) and is masked by the activation's derivative. Whole
 * vectors of channels are summed in float over blocks of BN_RBLK rows first. */
static void bn_sums(double *s1, double *s2, bn_sum_mode mode, const float *x, const float *g,
                    const float *y, nn_act_kind act, const float *ctr, int N, int C, int c0, int n)
{
    double part[BN_PARTS][2][BN_CBLK];
    int P = (size_t)N * n >= BN_PAR_MIN ? BN_PARTS : 1;
    int ng = n / VEC_LEN;
#pragma omp parallel for schedule(static) if (P > 1)
    for (int q = 0; q < P; q++) {
        double *a1 = part[q][0], *a2 = part[q][1];
        for (int c = 0; c < n; c++) {
            a1[c] = 0.0;
            a2[c] = 0.0;
        }
        int r0 = (int)((long)N * q / P), r1 = (int)((long)N * (q + 1) / P);
        for (int rb = r0; rb < r1; rb += BN_RBLK) {
            int re = rb + BN_RBLK < r1 ? rb + BN_RBLK : r1;
            bn_sums_vec(a1, a2, mode, x, g, y, act, ctr, C, c0, ng, rb, re);
            if (ng * VEC_LEN < n)
                bn_sums_tail(a1, a2, mode, x, g, y, act, ctr, C, c0, ng * VEC_LEN, n, rb, re);
        }
    }
    for (int c = 0; c < n; c++) {
        s1[c] = 0.0;
        s2[c] = 0.0;
        for (int q = 0; q < P; q++) {
            s1[c] += part[q][0][c];
            s2[c] += part[q][1][c];
        }
    }
}

/* out[:, c0:c0+n] = act((inp - ctr - lo) * scale + shift [+ res]), all indexed from
 * c0; lo is the part of a double centre that a float ctr cannot hold. res (may be NULL)
 * is added after the affine step and before the activation, as a separate residual add
 * would (the same two roundings). */
static void bn_apply(float *out, const float *inp, const float *res, const float *ctr,
                     const float *lo, const float *scale, const float *shift, nn_act_kind act,
                     int N, int C, int c0, int n)
{
#pragma omp parallel for schedule(static) if ((size_t)N * n >= BN_PAR_MIN)
    for (int r = 0; r < N; r++) {
        const float *xr = inp + (size_t)r * C + c0;
        float *o = out + (size_t)r * C + c0;
        if (res != NULL) {
            const float *rr = res + (size_t)r * C + c0;
            switch (act) {
            case NN_ACT_RELU:
                for (int c = 0; c < n; c++)
                    o[c] = act_apply(NN_ACT_RELU,
                                     (xr[c] - ctr[c] - lo[c]) * scale[c] + shift[c] + rr[c]);
                break;
            case NN_ACT_RELU6:
                for (int c = 0; c < n; c++)
                    o[c] = act_apply(NN_ACT_RELU6,
                                     (xr[c] - ctr[c] - lo[c]) * scale[c] + shift[c] + rr[c]);
                break;
            default:
                for (int c = 0; c < n; c++)
                    o[c] = (xr[c] - ctr[c] - lo[c]) * scale[c] + shift[c] + rr[c];
            }
            continue;
        }
        switch (act) {
        case NN_ACT_RELU:
            for (int c = 0; c < n; c++)
                o[c] = act_apply(NN_ACT_RELU, (xr[c] - ctr[c] - lo[c]) * scale[c] + shift[c]);
            break;
        case NN_ACT_RELU6:
            for (int c = 0; c < n; c++)
                o[c] = act_apply(NN_ACT_RELU6, (xr[c] - ctr[c] - lo[c]) * scale[c] + shift[c]);
            break;
        default:
            for (int c = 0; c < n; c++)
                o[c] = (xr[c] - ctr[c] - lo[c]) * scale[c] + shift[c];
        }
    }
}

/* The training forward: act(BN(inp) [+ res]), with the statistics into saved's mean and
 * rstd, the running ones updated and, when saved->keep is not NULL, what a reapply needs
 * into keep. */
void nn_batchnorm_forward_train(float *out, const nn_bn_saved *saved, const float *inp,
                                const float *res, const nn_bn *bn)
{
    float *mean = saved->mean, *rstd = saved->rstd, *keep = saved->keep;
    float *run_mean = bn->run_mean, *run_var = bn->run_var;
    const float *w = bn->w, *b = bn->b;
    int N = bn->N, C = bn->C;
    NN_ASSERT(out != NULL && mean != NULL && rstd != NULL && inp != NULL && w != NULL && b != NULL);
    NN_ASSERT(N >= 1 && C >= 1 && bn->eps >= 0.0f);
    NN_ASSERT((run_mean == NULL) == (run_var == NULL));
    /* PyTorch refuses a single value per channel: the unbiased variance is undefined. */
    NN_ASSERT(N >= 2 || run_var == NULL);
    for (int c0 = 0; c0 < C; c0 += BN_CBLK) {
        int n = C - c0 < BN_CBLK ? C - c0 : BN_CBLK;
        double s1[BN_CBLK], s2[BN_CBLK];
        float scale[BN_CBLK] = {0}, lo[BN_CBLK] = {0};
        const float *shift0 = inp + c0; /* the first row */
        bn_sums(s1, s2, BN_SUM_STATS, inp, NULL, NULL, NN_ACT_NONE, shift0, N, C, c0, n);
        for (int c = 0; c < n; c++) {
            double dm = s1[c] / N;
            double var = s2[c] / N - dm * dm;
            if (var < 0.0)
                var = 0.0;
            double mu = (double)shift0[c] + dm;
            double rs = 1.0 / sqrt(var + (double)bn->eps);
            mean[c0 + c] = (float)mu;
            lo[c] = (float)(mu - (double)mean[c0 + c]);
            rstd[c0 + c] = (float)rs;
            scale[c] = (float)(rs * (double)w[c0 + c]);
            if (run_mean != NULL) {
                double uvar = var * N / (N - 1);
                if (bn->momentum == 1.0f) {
                    run_mean[c0 + c] = (float)mu;
                    run_var[c0 + c] = (float)uvar;
                } else {
                    double m = (double)bn->momentum;
                    run_mean[c0 + c] = (float)((1.0 - m) * (double)run_mean[c0 + c] + m * mu);
                    run_var[c0 + c] = (float)((1.0 - m) * (double)run_var[c0 + c] + m * uvar);
                }
            }
        }
        if (keep != NULL) {
            memcpy(keep + c0, lo, (size_t)n * sizeof(float));
            memcpy(keep + C + c0, scale, (size_t)n * sizeof(float));
        }
        bn_apply(out, inp, res, mean + c0, lo, scale, b + c0, bn->act, N, C, c0, n);
    }
}

void nn_batchnorm_reapply(float *out, const float *inp, const nn_bn_saved *saved, const nn_bn *bn)
{
    const float *mean = saved->mean, *keep = saved->keep;
    int N = bn->N, C = bn->C;
    NN_ASSERT(out != NULL && inp != NULL && mean != NULL && keep != NULL && bn->b != NULL);
    NN_ASSERT(N >= 1 && C >= 1);
    for (int c0 = 0; c0 < C; c0 += BN_CBLK) {
        int n = C - c0 < BN_CBLK ? C - c0 : BN_CBLK;
        bn_apply(out, inp, NULL, mean + c0, keep + c0, keep + C + c0, bn->b + c0, bn->act, N, C, c0,
                 n);
    }
}

/* The gradient pass of the training backward for channels [c0, c0+n) (k, a, off, mu
 * indexed from c0): dinp += k*g - a*(x - mu) - off and dres += g, with g = dout masked by
 * the activation's derivative (read from out). Either output may be NULL. */
static void bn_grad_train(float *dinp, float *dres, const float *dout, const float *out,
                          const float *inp, const float *mu, const float *k, const float *a,
                          const float *off, nn_act_kind act, int N, int C, int c0, int n)
{
    float hi = act == NN_ACT_RELU6 ? 6.0f : INFINITY;
#pragma omp parallel for schedule(static) if ((size_t)N * n >= BN_PAR_MIN)
    for (int r = 0; r < N; r++) {
        size_t o = (size_t)r * C + c0;
        const float *xr = inp + o, *gr = dout + o;
        float gm[BN_CBLK];
        if (act != NN_ACT_NONE) {
            const float *yr = out + o;
            for (int c = 0; c < n; c++)
                gm[c] = ((yr[c] > 0.0f) & (yr[c] < hi)) ? gr[c] : 0.0f;
            gr = gm;
        }
        if (dres != NULL) {
            float *dr = dres + o;
            for (int c = 0; c < n; c++)
                dr[c] += gr[c];
        }
        if (dinp != NULL) {
            float *dx = dinp + o;
            for (int c = 0; c < n; c++)
                dx[c] += k[c] * gr[c] - a[c] * (xr[c] - mu[c]) - off[c];
        }
    }
}

/* dinp += k * (dout - sg/N - xc * rstd^2 * sgx/N) with k = w*rstd, all per channel;
 * xc = x - mean. Written with a per-channel scale a and offset so one FMA chain. */
void nn_batchnorm_backward_train(float *dinp, float *dres, float *dw, float *db, const float *dout,
                                 const float *out, const float *inp, const nn_bn_saved *saved,
                                 const nn_bn *bn)
{
    const float *w = bn->w, *mean = saved->mean, *rstd = saved->rstd;
    nn_act_kind act = bn->act;
    int N = bn->N, C = bn->C;
    NN_ASSERT(dout != NULL && inp != NULL && w != NULL && mean != NULL && rstd != NULL);
    NN_ASSERT(act == NN_ACT_NONE || out != NULL);
    NN_ASSERT(N >= 1 && C >= 1);
    for (int c0 = 0; c0 < C; c0 += BN_CBLK) {
        int n = C - c0 < BN_CBLK ? C - c0 : BN_CBLK;
        double sg[BN_CBLK], sgx[BN_CBLK];
        float k[BN_CBLK], a[BN_CBLK], off[BN_CBLK];
        bn_sums(sg, sgx, BN_SUM_GRAD, inp, dout, out, act, mean + c0, N, C, c0, n);
        for (int c = 0; c < n; c++) {
            double rs = (double)rstd[c0 + c];
            if (db != NULL)
                db[c0 + c] += (float)sg[c];
            if (dw != NULL)
                dw[c0 + c] += (float)(sgx[c] * rs);
            double kk = (double)w[c0 + c] * rs;
            k[c] = (float)kk;
            /* dinp = k*dout - k*rs^2*sgx/N * (x - mean) - k*sg/N */
            a[c] = (float)(kk * rs * rs * sgx[c] / N);
            off[c] = (float)(kk * sg[c] / N);
        }
        if (dinp != NULL || dres != NULL)
            bn_grad_train(dinp, dres, dout, out, inp, mean + c0, k, a, off, act, N, C, c0, n);
    }
}

void nn_batchnorm_forward_eval(float *out, const float *inp, const float *res, const nn_bn *bn)
{
    const float *w = bn->w, *b = bn->b, *run_mean = bn->run_mean, *run_var = bn->run_var;
    int N = bn->N, C = bn->C;
    NN_ASSERT(out != NULL && inp != NULL && w != NULL && b != NULL && run_mean != NULL &&
              run_var != NULL);
    NN_ASSERT(N >= 1 && C >= 1);
    for (int c0 = 0; c0 < C; c0 += BN_CBLK) {
        int n = C - c0 < BN_CBLK ? C - c0 : BN_CBLK;
        float scale[BN_CBLK] = {0}, lo[BN_CBLK] = {0};
        for (int c = 0; c < n; c++) {
            scale[c] = (float)((double)w[c0 + c] / sqrt((double)run_var[c0 + c] + (double)bn->eps));
            lo[c] = 0.0f;
        }
        bn_apply(out, inp, res, run_mean + c0, lo, scale, b + c0, bn->act, N, C, c0, n);
    }
}

void nn_batchnorm_backward_eval(float *dinp, float *dres, float *dw, float *db, const float *dout,
                                const float *out, const float *inp, const nn_bn *bn)
{
    const float *w = bn->w, *run_mean = bn->run_mean, *run_var = bn->run_var;
    nn_act_kind act = bn->act;
    int N = bn->N, C = bn->C;
    NN_ASSERT(dout != NULL && inp != NULL && w != NULL && run_mean != NULL && run_var != NULL);
    NN_ASSERT(act == NN_ACT_NONE || out != NULL);
    NN_ASSERT(N >= 1 && C >= 1);
    for (int c0 = 0; c0 < C; c0 += BN_CBLK) {
        int n = C - c0 < BN_CBLK ? C - c0 : BN_CBLK;
        double rs[BN_CBLK];
        float k[BN_CBLK];
        for (int c = 0; c < n; c++) {
            rs[c] = 1.0 / sqrt((double)run_var[c0 + c] + (double)bn->eps);
            k[c] = (float)((double)w[c0 + c] * rs[c]);
        }
        if (dw != NULL || db != NULL) {
            double sg[BN_CBLK], sgx[BN_CBLK];
            bn_sums(sg, sgx, BN_SUM_GRAD, inp, dout, out, act, run_mean + c0, N, C, c0, n);
            for (int c = 0; c < n; c++) {
                if (db != NULL)
                    db[c0 + c] += (float)sg[c];
                if (dw != NULL)
                    dw[c0 + c] += (float)(sgx[c] * rs[c]);
            }
        }
        if (dinp == NULL && dres == NULL)
            continue;
#pragma omp parallel for schedule(static) if ((size_t)N * n >= BN_PAR_MIN)
        for (int r = 0; r < N; r++) {
            const float *gr = dout + (size_t)r * C + c0;
            const float *yr = out != NULL ? out + (size_t)r * C + c0 : NULL;
            float hi = act == NN_ACT_RELU6 ? 6.0f : INFINITY;
            if (dres != NULL) {
                float *dr = dres + (size_t)r * C + c0;
                if (act == NN_ACT_NONE)
                    for (int c = 0; c < n; c++)
                        dr[c] += gr[c];
                else
                    for (int c = 0; c < n; c++)
                        dr[c] += ((yr[c] > 0.0f) & (yr[c] < hi)) ? gr[c] : 0.0f;
            }
            if (dinp == NULL)
                continue;
            float *dx = dinp + (size_t)r * C + c0;
            if (act == NN_ACT_NONE) {
                for (int c = 0; c < n; c++)
                    dx[c] += k[c] * gr[c];
            } else {
                for (int c = 0; c < n; c++)
                    dx[c] += ((yr[c] > 0.0f) & (yr[c] < hi)) ? k[c] * gr[c] : 0.0f;
            }
        }
    }
}
