/* attention.c - multi-head self-attention core on the qkv linear's output (see attention.h).
 *
 * The work splits into B*NH independent (batch, head) units, divided statically over the
 * OpenMP threads; each unit writes only its own slices of out, att and dqkv, so there are
 * no races and no reductions across threads, and every value is computed the same way
 * whatever the thread count. With T ~ 50 and HS ~ 32 a unit's products are too small for
 * BLAS calls to pay (bench/bench_dense.c times one sgemm per product and unit against this
 * code), so they run through one register-tiled kernel, tile_mm, written with the 16-float
 * vectors of vec.h. tile_mm needs its B operand and its output in rows of whole vectors: K^T
 * and V^T are transposed into zero-padded per-thread scratch (T rounded up to Tp), and when
 * HS is not a multiple of 16 the head slices are packed into padded scratch too. The
 * softmax runs on the padded score rows, also in whole vectors, with vmath.h's exp.
 * Depends on vec.h, vmath.h and OpenMP; thread-safe (no state).
 */
#include "worker/nn/attention.h"

#include "worker/nn/tensor.h"
#include "worker/nn/vec.h"
#include "worker/nn/vmath.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* The kernels use at most this many threads, and the scratch holds one slice per thread. */
#define ATTN_MAX_THREADS 16
/* Below this many multiply-adds in total a call runs on the calling thread only. */
#define ATTN_PAR_MIN (1 << 15)
#define VL           VEC_LEN
/* Query rows per register tile in tile_mm. */
#define TILE_ROWS 4

static inline int round_up(int x, int m)
{
    return (x + m - 1) / m * m;
}

/* Writes (or, with acc, adds) `rows` of a tile's accumulator rows to C. */
static inline void tile_store(float *c, int ldc, const v16 *r, int rows, int acc)
{
    for (int i = 0; i < rows; i++) {
        float *ci = c + (long)i * ldc;
        vec_st(ci, acc ? vec_ld(ci) + r[i] : r[i]);
    }
}

/* C (M, N) (+)= A (M, K) . B (K, N), with A[i, k] = A[i*sar + k*sac] (so A may be a
 * transposed view), B rows ldb apart, C rows ldc apart, N a multiple of VL. `acc` selects
 * C += over C =. Register tiles of TILE_ROWS rows x 32 columns (2 x TILE_ROWS accumulators;
 * x 16 for an odd vector at the end). A last tile with fewer rows repeats its last row and
 * stores only the real ones: a full tile runs at full speed, where 1-row tiles would be
 * bound by the FMA latency. */
static void tile_mm(float *C, int ldc, const float *A, long sar, long sac, const float *B, int ldb,
                    int M, int N, int K, int acc)
{
    for (int i = 0; i < M; i += TILE_ROWS) {
        int rows = M - i < TILE_ROWS ? M - i : TILE_ROWS;
        const float *a[TILE_ROWS];
        for (int q = 0; q < TILE_ROWS; q++)
            a[q] = A + (i + (q < rows ? q : rows - 1)) * sar;
        float *c = C + (long)i * ldc;
        int j = 0;
        for (; j + 2 * VL <= N; j += 2 * VL) {
            v16 r0[TILE_ROWS] = {{0}}, r1[TILE_ROWS] = {{0}};
            const float *b = B + j;
            for (int k = 0; k < K; k++, b += ldb) {
                v16 b0 = vec_ld(b), b1 = vec_ld(b + VL);
                VEC_KEEP(b0);
                VEC_KEEP(b1);
                for (int q = 0; q < TILE_ROWS; q++) {
                    float x = a[q][k * sac];
                    r0[q] += x * b0;
                    r1[q] += x * b1;
                }
            }
            tile_store(c + j, ldc, r0, rows, acc);
            tile_store(c + j + VL, ldc, r1, rows, acc);
        }
        if (j < N) {
            v16 r0[TILE_ROWS] = {{0}};
            const float *b = B + j;
            for (int k = 0; k < K; k++, b += ldb) {
                v16 b0 = vec_ld(b);
                for (int q = 0; q < TILE_ROWS; q++)
                    r0[q] += a[q][k * sac] * b0;
            }
            tile_store(c + j, ldc, r0, rows, acc);
        }
    }
}

/* dst (cols, rows_p) = src (rows, cols)^T, src rows lds apart, columns rows..rows_p zero.
 * Column by column (measured faster than row by row, and than 16 x 16 shuffle blocks as gcc
 * compiles them). */
static void pack_transposed(float *dst, int rows_p, const float *src, long lds, int rows, int cols)
{
    for (int c = 0; c < cols; c++) {
        float *d = dst + (long)c * rows_p;
        for (int r = 0; r < rows; r++)
            d[r] = src[r * lds + c];
        for (int r = rows; r < rows_p; r++)
            d[r] = 0.0f;
    }
}

/* dst (rows, cols_p) = src (rows, cols), src rows lds apart, columns cols..cols_p zero. */
static void pack_rows(float *dst, int cols_p, const float *src, long lds, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        memcpy(dst + (long)r * cols_p, src + r * lds, (size_t)cols * sizeof(float));
        for (int c = cols; c < cols_p; c++)
            dst[(long)r * cols_p + c] = 0.0f;
    }
}

/* dst (rows, cols) (+)= src (rows, cols_p)[:, :cols]. */
static void unpack_rows(float *dst, long ldd, const float *src, int cols_p, int rows, int cols,
                        int acc)
{
    for (int r = 0; r < rows; r++) {
        float *d = dst + r * ldd;
        const float *s = src + (long)r * cols_p;
        if (acc) {
            for (int c = 0; c < cols; c++)
                d[c] += s[c];
        } else {
            memcpy(d, s, (size_t)cols * sizeof(float));
        }
    }
}

/* Shapes shared by the forward and backward of one call. */
typedef struct attn_dims {
    int B, T, C, NH, HS, TQ, q0; /* q0: token of the first query row */
    int Tp, HSp;                 /* T and HS rounded up to whole vectors */
    int direct;                  /* HS is whole vectors: use head slices in place */
    long per_thread;             /* scratch floats per thread */
    int threads;
} attn_dims;

static attn_dims attn_dims_make(int B, int T, int C, int NH, int query)
{
    NN_ASSERT(B >= 0 && T > 0 && C > 0 && NH > 0 && C % NH == 0);
    NN_ASSERT(query == NN_ATTN_ALL_QUERIES || (query >= 0 && query < T));
    attn_dims d;
    d.B = B, d.T = T, d.C = C, d.NH = NH, d.HS = C / NH;
    d.TQ = nn_attention_queries(T, query);
    d.q0 = query == NN_ATTN_ALL_QUERIES ? 0 : query;
    d.Tp = round_up(T, VL);
    d.HSp = round_up(d.HS, VL);
    d.direct = d.HS % VL == 0;
    /* K^T or V^T (HS, Tp) and scores (TQ, Tp); unless direct, packed K/V (T, HSp), Q and
     * dout (TQ, HSp) and one output block (T, HSp). Rounded to whole cache lines. */
    long f = (long)d.HS * d.Tp + (long)d.TQ * d.Tp;
    if (!d.direct)
        f += (2L * T + 2L * d.TQ) * d.HSp;
    d.per_thread = (f + VL - 1) / VL * VL;
    int units = B * NH;
    d.threads = units < ATTN_MAX_THREADS ? (units > 0 ? units : 1) : ATTN_MAX_THREADS;
    return d;
}

int nn_attention_queries(int T, int query)
{
    return query == NN_ATTN_ALL_QUERIES ? T : 1;
}

size_t nn_attention_scratch_floats(int B, int T, int C, int NH, int query)
{
    attn_dims d = attn_dims_make(B, T, C, NH, query);
    return (size_t)d.threads * (size_t)d.per_thread;
}

/* Threads for a call: OpenMP's current limit, at most the scratch slices. */
static int attn_threads(const attn_dims *d)
{
    long work = (long)d->B * d->NH * d->TQ * d->T * d->HS;
    if (work < ATTN_PAR_MIN)
        return 1;
    int nt = omp_get_max_threads();
    return nt < d->threads ? nt : d->threads;
}

/* Row-wise softmax of scale * s[i, :T] (rows Tp apart, overwritten with the unnormalised
 * exponentials) into the att rows (T apart). The score rows are walked in whole vectors:
 * the last vector's padding lanes are masked in registers (storing -inf there first would
 * stall the next vector load on store forwarding). */
static void softmax_rows(float *att, float *s, int TQ, int T, int Tp, float scale)
{
    int tv = T / VL * VL;
    for (int i = 0; i < TQ; i++) {
        float *si = s + (long)i * Tp, *ai = att + (long)i * T;
        v16 mv = vec_set1(-INFINITY);
        for (int j = 0; j < Tp; j += VL)
            mv = vec_max(mv, vec_select(vec_lanes() < T - j, vec_ld(si + j), mv));
        float m = vec_hmax(mv);
#pragma omp simd
        for (int j = 0; j < Tp; j++)
            si[j] = j < T ? vmath_exp_neg((si[j] - m) * scale, 0.0f) : 0.0f;
        v16 sv = vec_ld(si);
        for (int j = VL; j < Tp; j += VL)
            sv += vec_ld(si + j);
        float inv = 1.0f / vec_hsum(sv);
        for (int j = 0; j < tv; j += VL)
            vec_st(ai + j, vec_ld(si + j) * inv);
        for (int j = tv; j < T; j++)
            ai[j] = si[j] * inv;
    }
}

/* o (TQ, HS) = att (TQ, T) . v (T, HS) for one (batch b, head h) unit; vp is the
 * unit's scratch for the padded v and output. */
static void attn_pv_unit(float *out, const float *att, const float *qkv, const attn_dims *d, int b,
                         int h, float *vp)
{
    const long ld = 3L * d->C;
    const float *v = qkv + (long)b * d->T * ld + (long)h * d->HS + 2L * d->C;
    float *o = out + (long)b * d->TQ * d->C + (long)h * d->HS;
    const float *a = att + ((long)b * d->NH + h) * d->TQ * d->T;
    if (d->direct) {
        tile_mm(o, d->C, a, d->T, 1, v, (int)ld, d->TQ, d->HS, d->T, 0);
    } else {
        float *op = vp + (long)d->T * d->HSp;
        pack_rows(vp, d->HSp, v, ld, d->T, d->HS);
        tile_mm(op, d->HSp, a, d->T, 1, vp, d->HSp, d->TQ, d->HSp, d->T, 0);
        unpack_rows(o, d->C, op, d->HSp, d->TQ, d->HS, 0);
    }
}

/* One (batch b, head h) unit of the forward. */
static void attn_forward_unit(float *out, float *att, const float *qkv, const attn_dims *d, int b,
                              int h, float *scr)
{
    const long ld = 3L * d->C;
    const float *base = qkv + (long)b * d->T * ld + (long)h * d->HS;
    const float *q = base + (long)d->q0 * ld, *k = base + d->C;
    float *a = att + ((long)b * d->NH + h) * d->TQ * d->T;
    float *kt = scr, *s = kt + (long)d->HS * d->Tp;
    float *vp = s + (long)d->TQ * d->Tp;

    /* s (TQ, Tp) = q (TQ, HS) . k^T (HS, Tp); the padded columns of k^T are zero. */
    pack_transposed(kt, d->Tp, k, ld, d->T, d->HS);
    tile_mm(s, d->Tp, q, ld, 1, kt, d->Tp, d->TQ, d->Tp, d->HS, 0);
    softmax_rows(a, s, d->TQ, d->T, d->Tp, (float)(1.0 / sqrt((double)d->HS)));
    attn_pv_unit(out, att, qkv, d, b, h, vp);
}

void nn_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH,
                          int query, float *scratch)
{
    NN_ASSERT(out != NULL && att != NULL && qkv != NULL && scratch != NULL);
    attn_dims d = attn_dims_make(B, T, C, NH, query);
    int units = B * NH;
#pragma omp parallel num_threads(attn_threads(&d))
    {
        float *scr = scratch + (long)omp_get_thread_num() * d.per_thread;
#pragma omp for schedule(static)
        for (int u = 0; u < units; u++)
            attn_forward_unit(out, att, qkv, &d, u / NH, u % NH, scr);
    }
}

void nn_attention_output(float *out, const float *att, const float *qkv, int B, int T, int C,
                         int NH, int query, float *scratch)
{
    NN_ASSERT(out != NULL && att != NULL && qkv != NULL && scratch != NULL);
    attn_dims d = attn_dims_make(B, T, C, NH, query);
    int units = B * NH;
#pragma omp parallel num_threads(attn_threads(&d))
    {
        float *scr = scratch + (long)omp_get_thread_num() * d.per_thread;
        float *vp = scr + (long)d.HS * d.Tp + (long)d.TQ * d.Tp; /* where the forward has it */
#pragma omp for schedule(static)
        for (int u = 0; u < units; u++)
            attn_pv_unit(out, att, qkv, &d, u / NH, u % NH, vp);
    }
}

/* ds[i, j] = scale * p[i, j] * (dp[i, j] - sum_j' p[i, j'] dp[i, j']), in place over dp
 * (rows Tp apart; only the first T columns are meaningful). */
static void softmax_backward_rows(float *dp, const float *att, int TQ, int T, int Tp, float scale)
{
    int tv = T / VL * VL;
    for (int i = 0; i < TQ; i++) {
        float *g = dp + (long)i * Tp;
        const float *p = att + (long)i * T;
        v16 acc = {0};
        for (int j = 0; j < tv; j += VL)
            acc += vec_ld(p + j) * vec_ld(g + j);
        float dot = vec_hsum(acc);
        for (int j = tv; j < T; j++)
            dot += p[j] * g[j];
        for (int j = 0; j < tv; j += VL)
            vec_st(g + j, scale * vec_ld(p + j) * (vec_ld(g + j) - dot));
        for (int j = tv; j < T; j++)
            g[j] = scale * p[j] * (g[j] - dot);
    }
}

/* One (batch b, head h) unit of the backward. */
static void attn_backward_unit(float *dqkv, const float *dout, const float *qkv, const float *att,
                               const attn_dims *d, int b, int h, float *scr)
{
    const long ld = 3L * d->C;
    const long off = (long)b * d->T * ld + (long)h * d->HS;
    const float *q = qkv + off + (long)d->q0 * ld, *k = qkv + off + d->C, *v = k + d->C;
    float *dq = dqkv + off + (long)d->q0 * ld, *dk = dqkv + off + d->C, *dv = dk + d->C;
    const float *dout_h = dout + (long)b * d->TQ * d->C + (long)h * d->HS;
    const float *a = att + ((long)b * d->NH + h) * d->TQ * d->T;
    float *vt = scr, *ds = vt + (long)d->HS * d->Tp;
    const int T = d->T, TQ = d->TQ, HSp = d->HSp;

    /* dp (TQ, Tp) = dout (TQ, HS) . v^T (HS, Tp), then ds = the softmax backward, scaled. */
    pack_transposed(vt, d->Tp, v, ld, T, d->HS);
    tile_mm(ds, d->Tp, dout_h, d->C, 1, vt, d->Tp, TQ, d->Tp, d->HS, 0);
    softmax_backward_rows(ds, a, TQ, T, d->Tp, (float)(1.0 / sqrt((double)d->HS)));
    if (d->direct) {
        /* dq += ds . k;  dk += ds^T . q;  dv += att^T . dout */
        tile_mm(dq, (int)ld, ds, d->Tp, 1, k, (int)ld, TQ, d->HS, T, 1);
        tile_mm(dk, (int)ld, ds, 1, d->Tp, q, (int)ld, T, d->HS, TQ, 1);
        tile_mm(dv, (int)ld, a, 1, T, dout_h, d->C, T, d->HS, TQ, 1);
        return;
    }
    float *kp = ds + (long)TQ * d->Tp, *qp = kp + (long)T * HSp;
    float *dp = qp + (long)TQ * HSp, *gp = dp + (long)TQ * HSp;
    pack_rows(kp, HSp, k, ld, T, d->HS);
    pack_rows(qp, HSp, q, ld, TQ, d->HS);
    pack_rows(dp, HSp, dout_h, d->C, TQ, d->HS);
    tile_mm(gp, HSp, ds, d->Tp, 1, kp, HSp, TQ, HSp, T, 0);
    unpack_rows(dq, ld, gp, HSp, TQ, d->HS, 1);
    tile_mm(gp, HSp, ds, 1, d->Tp, qp, HSp, T, HSp, TQ, 0);
    unpack_rows(dk, ld, gp, HSp, T, d->HS, 1);
    tile_mm(gp, HSp, a, 1, T, dp, HSp, T, HSp, TQ, 0);
    unpack_rows(dv, ld, gp, HSp, T, d->HS, 1);
}

void nn_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                           int B, int T, int C, int NH, int query, float *scratch)
{
    NN_ASSERT(dqkv != NULL && dout != NULL && qkv != NULL && att != NULL && scratch != NULL);
    attn_dims d = attn_dims_make(B, T, C, NH, query);
    int units = B * NH;
#pragma omp parallel num_threads(attn_threads(&d))
    {
        float *scr = scratch + (long)omp_get_thread_num() * d.per_thread;
#pragma omp for schedule(static)
        for (int u = 0; u < units; u++)
            attn_backward_unit(dqkv, dout, qkv, att, &d, u / NH, u % NH, scr);
    }
}
