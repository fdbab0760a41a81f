/* conv.c - 2-D convolution over channels-last activations (see conv.h).
 *
 * Four algorithms, chosen from the dims alone:
 *   CONV_1X1      1x1, stride 1, no padding, one group: the activation is
 *                 already the (rows, IC) GEMM operand, no copy at all.
 *   CONV_DIRECT   one group, OC % 16 == 0, AVX-512: register-blocked direct
 *                 kernels over zero-padded images (conv_direct.c), about
 *                 twice as fast as im2col + GEMM for ResNet's narrow layers;
 *                 the input gradient of a strided conv uses im2col's path.
 *   CONV_DEPTHWISE groups == IC == OC: direct loops vectorised over blocks
 *                 of DW_BLK channels; 3x3 kernels keep their taps in registers,
 *                 and a stride-1 input gradient is the same correlation
 *                 with flipped taps.
 *   CONV_IM2COL   everything else: im2col of a chunk of output rows into
 *                 (rows, kh*kw*ICg) with the weights reordered to
 *                 (OC, kh, kw, ICg), then one GEMM per group.
 * Parallelism: the work is cut into a fixed number of parts that depend on
 * the dims only, and each part runs single-threaded GEMMs (OpenBLAS runs
 * serially inside an OpenMP region). Reductions (dw, db) get one partial
 * per part in scratch and are summed in part order, so results do not
 * depend on the thread count. Kernels never allocate; scratch is sized by
 * nn_conv2d_scratch_floats. Depends on gemm.h, conv_direct.h and OpenMP.
 */
#include "worker/nn/conv.h"

#include "worker/nn/conv_direct.h"
#include "worker/nn/gemm.h"
#include "worker/nn/tensor.h"

#include <string.h>

#define CONV_PARTS      4           /* max parts of a reduction; fixed, so results are too */
#define CONV_PART_ROWS  256         /* fewer output rows per part than this are not split */
#define CONV_CHUNK_ROWS 1024        /* row chunk of the parallel row-wise GEMMs */
#define CONV_COL_FLOATS (64 * 1024) /* target im2col chunk: 256 KB, stays in L2 */
#define CONV_COLSUM_BLK 256         /* channels per pass of the bias-gradient sum */
#define DW_MAX_TAPS     64          /* depthwise kernels up to 8x8; larger ones use im2col */
#define CONV_PAR_MIN    (1 << 14)   /* less work than this runs on one thread */

typedef enum { CONV_1X1, CONV_DEPTHWISE, CONV_DIRECT, CONV_IM2COL } conv_algo;

/* The plan: algorithm, partition and scratch layout, all derived from dims. */
typedef struct conv_plan {
    conv_algo algo;
    int ICg, OCg;              /* channels per group */
    int K;                     /* GEMM depth per group: kh*kw*ICg */
    size_t rows;               /* output rows B*Ho*Wo */
    int parts;                 /* P: parts of the reductions (and of the im2col work) */
    int dw_parts;              /* 1x1 only: 0 = dw by one GEMM over all rows, else = parts */
    int chunk;                 /* im2col: output rows per col chunk */
    int dinp_direct;           /* direct: the input gradient runs directly too */
    size_t off_wr, off_col;    /* im2col: reordered weights, col chunks */
    size_t off_wt, off_wf;     /* direct: HWIO weights; direct, depthwise: flipped weights */
    size_t off_xpad, off_gpad; /* direct: per-part padded input and dout images */
    size_t off_dw, off_db;     /* per-part partials of dw and db */
    size_t total;              /* floats of scratch */
} conv_plan;

static int imin(int a, int b)
{
    return a < b ? a : b;
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* Parts for a reduction over `rows` rows made of `units` indivisible units. */
static int parts_for(size_t rows, size_t units)
{
    size_t p = rows / CONV_PART_ROWS;
    if (p > units)
        p = units;
    return p < 1 ? 1 : (p > CONV_PARTS ? CONV_PARTS : (int)p);
}

static void conv_plan_make(conv_plan *p, const nn_conv2d_dims *d)
{
    memset(p, 0, sizeof *p);
    p->ICg = d->IC / d->groups;
    p->OCg = d->OC / d->groups;
    p->K = d->kh * d->kw * p->ICg;
    p->rows = (size_t)d->B * d->Ho * d->Wo;
    int k = d->kh;
    if (d->groups == d->IC && d->groups == d->OC && d->kh * d->kw <= DW_MAX_TAPS)
        p->algo = CONV_DEPTHWISE;
    else if (k == 1 && d->kw == 1 && d->stride == 1 && d->pad == 0 && d->groups == 1)
        p->algo = CONV_1X1;
    else if (convd_supported(d))
        p->algo = CONV_DIRECT;
    else
        p->algo = CONV_IM2COL;

    size_t wsz = (size_t)d->OC * p->K; /* reordered weights, or one dw partial */
    size_t at = 0;
    switch (p->algo) {
    case CONV_1X1:
        p->parts = parts_for(p->rows, p->rows);
        /* Per-part partials while OC * parts <= rows; else one threaded GEMM. */
        p->dw_parts = (size_t)d->OC * p->parts <= p->rows && p->parts > 1 ? p->parts : 0;
        p->off_dw = at;
        at += (size_t)p->dw_parts * wsz;
        break;
    case CONV_DEPTHWISE:
        p->parts = parts_for(p->rows, (size_t)d->B * d->Ho);
        p->off_wr = at;
        at += (size_t)d->kh * d->kw * d->IC;
        p->off_wf = at; /* flipped taps for the stride-1 input gradient */
        at += (size_t)d->kh * d->kw * d->IC;
        p->off_dw = at;
        at += (size_t)p->parts * d->kh * d->kw * d->IC;
        break;
    case CONV_DIRECT:
        p->parts = parts_for(p->rows, (size_t)d->B);
        p->dinp_direct = convd_dinp_supported(d);
        p->off_wt = at;
        at += wsz;
        p->off_xpad = at;
        at += (size_t)p->parts * (d->H + 2 * d->pad) * (d->W + 2 * d->pad) * d->IC;
        p->off_dw = at;
        at += (size_t)p->parts * wsz;
        if (p->dinp_direct) {
            int pp = d->kh - 1 - d->pad;
            p->off_wf = at;
            at += wsz;
            p->off_gpad = at;
            at += (size_t)p->parts * (d->Ho + 2 * pp) * (d->Wo + 2 * pp) * d->OC;
        } else {
            /* the input gradient goes through im2col's dcol GEMM and col2im */
            p->chunk = clampi(CONV_COL_FLOATS / p->K, 16, 4096);
            p->off_wr = at;
            at += wsz;
            p->off_col = at;
            at += (size_t)p->parts * p->chunk * p->K;
        }
        break;
    case CONV_IM2COL:
        /* Parts hold whole images, so col2im of different parts never overlap. */
        p->parts = parts_for(p->rows, (size_t)d->B);
        p->chunk = clampi(CONV_COL_FLOATS / p->K, 16, 4096);
        p->off_wr = at;
        at += wsz;
        p->off_col = at;
        at += (size_t)p->parts * p->chunk * p->K;
        p->off_dw = at;
        at += (size_t)p->parts * wsz;
        break;
    }
    p->off_db = at;
    at += (size_t)p->parts * d->OC;
    p->total = at;
}

void nn_conv2d_dims_init(nn_conv2d_dims *d, int B, int H, int W, int IC, int OC, int k, int stride,
                         int pad, int groups)
{
    NN_ASSERT(B >= 1 && H >= 1 && W >= 1 && IC >= 1 && OC >= 1);
    NN_ASSERT(k >= 1 && stride >= 1 && pad >= 0 && groups >= 1);
    NN_ASSERT(IC % groups == 0 && OC % groups == 0);
    d->B = B;
    d->H = H;
    d->W = W;
    d->IC = IC;
    d->OC = OC;
    d->kh = k;
    d->kw = k;
    d->stride = stride;
    d->pad = pad;
    d->groups = groups;
    d->Ho = (H + 2 * pad - k) / stride + 1;
    d->Wo = (W + 2 * pad - k) / stride + 1;
    NN_ASSERT(H + 2 * pad >= k && W + 2 * pad >= k);
    NN_ASSERT(d->Ho >= 1 && d->Wo >= 1);
}

size_t nn_conv2d_scratch_floats(const nn_conv2d_dims *d)
{
    conv_plan p;
    conv_plan_make(&p, d);
    return p.total;
}

/* wr (OC, kh, kw, ICg) from w (OC, ICg, kh, kw): im2col then copies runs of ICg. */
static void reorder_weights(float *wr, const float *w, const nn_conv2d_dims *d, int ICg)
{
    int khw = d->kh * d->kw;
    for (int o = 0; o < d->OC; o++)
        for (int c = 0; c < ICg; c++)
            for (int t = 0; t < khw; t++)
                wr[((size_t)o * khw + t) * ICg + c] = w[((size_t)o * ICg + c) * khw + t];
}

/* dw (OC, ICg, kh, kw) += sum over the parts of dwr (OC, kh, kw, ICg), in part order. */
static void reduce_dw_reordered(float *dw, const float *parts, int nparts, size_t psize,
                                const nn_conv2d_dims *d, int ICg)
{
    int khw = d->kh * d->kw;
#pragma omp parallel for schedule(static) if ((size_t)d->OC * ICg * khw * nparts >= CONV_PAR_MIN)
    for (int o = 0; o < d->OC; o++)
        for (int c = 0; c < ICg; c++)
            for (int t = 0; t < khw; t++) {
                size_t src = ((size_t)o * khw + t) * ICg + c;
                float s = 0.0f;
                for (int q = 0; q < nparts; q++)
                    s += parts[q * psize + src];
                dw[((size_t)o * ICg + c) * khw + t] += s;
            }
}

/* part (C) = column sums of x rows [r0, r1) with row stride C, in double. */
static void colsum_rows(float *part, const float *x, size_t r0, size_t r1, int C)
{
    for (int c0 = 0; c0 < C; c0 += CONV_COLSUM_BLK) {
        int n = imin(CONV_COLSUM_BLK, C - c0);
        double acc[CONV_COLSUM_BLK];
        for (int c = 0; c < n; c++)
            acc[c] = 0.0;
        for (size_t r = r0; r < r1; r++) {
            const float *row = x + r * (size_t)C + c0;
            for (int c = 0; c < n; c++)
                acc[c] += (double)row[c];
        }
        for (int c = 0; c < n; c++)
            part[c0 + c] = (float)acc[c];
    }
}

/* db (C) += column sums of dout (rows, C), with fixed parts summed in order. */
static void bias_grad(float *db, const float *dout, size_t rows, int C, int nparts, float *parts)
{
#pragma omp parallel for schedule(static) if (nparts > 1)
    for (int q = 0; q < nparts; q++)
        colsum_rows(parts + (size_t)q * C, dout, rows * q / nparts, rows * (q + 1) / nparts, C);
    for (int c = 0; c < C; c++) {
        float s = 0.0f;
        for (int q = 0; q < nparts; q++)
            s += parts[(size_t)q * C + c];
        db[c] += s;
    }
}

static void add_bias_rows(float *out, const float *b, size_t r0, size_t r1, int C)
{
    for (size_t r = r0; r < r1; r++) {
        float *o = out + r * (size_t)C;
        for (int c = 0; c < C; c++)
            o[c] += b[c];
    }
}

/* C (rows, N) = A (rows, K) op(B) + beta*C (+ bias per row if not NULL, for
 * ldc == N), cut into row chunks that the threads run as serial GEMMs. The
 * chunks depend on rows alone, never on the thread count: a BLAS may round a
 * row differently by where it falls in its tiles, so chunks that moved with
 * the threads would make results depend on them. At least CONV_PARTS chunks
 * where rows allow, so that up to that many threads share the work. */
static void gemm_rows(int transb, size_t rows, int N, int K, const float *A, int lda,
                      const float *Bm, int ldb, float beta, float *C, int ldc, const float *bias)
{
    int nch = (int)((rows + CONV_CHUNK_ROWS - 1) / CONV_CHUNK_ROWS);
    if (nch < CONV_PARTS && rows >= 2u * CONV_PART_ROWS)
        nch = imin(CONV_PARTS, (int)(rows / CONV_PART_ROWS));
    if (nch <= 1) {
        nn_gemm(0, transb, (int)rows, N, K, 1.0f, A, lda, Bm, ldb, beta, C, ldc);
        if (bias != NULL)
            add_bias_rows(C, bias, 0, rows, N);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int q = 0; q < nch; q++) {
        size_t r0 = rows * q / nch, r1 = rows * (q + 1) / nch;
        if (r1 <= r0)
            continue;
        nn_gemm(0, transb, (int)(r1 - r0), N, K, 1.0f, A + r0 * lda, lda, Bm, ldb, beta,
                C + r0 * ldc, ldc);
        if (bias != NULL)
            add_bias_rows(C, bias, r0, r1, N);
    }
}

/* ---- 1x1 ------------------------------------------------------------------ */

static void conv1x1_forward(float *out, const float *inp, const float *w, const float *b,
                            const nn_conv2d_dims *d, const conv_plan *p)
{
    gemm_rows(1, p->rows, d->OC, d->IC, inp, d->IC, w, d->IC, 0.0f, out, d->OC, b);
}

static void conv1x1_backward(float *dinp, float *dw, const float *dout, const float *inp,
                             const float *w, const nn_conv2d_dims *d, const conv_plan *p,
                             float *scratch)
{
    int OC = d->OC, IC = d->IC;
    if (dinp != NULL)
        gemm_rows(0, p->rows, IC, OC, dout, OC, w, IC, 1.0f, dinp, IC, NULL);
    if (dw == NULL)
        return;
    if (p->dw_parts == 0) {
        nn_gemm(1, 0, OC, IC, (int)p->rows, 1.0f, dout, OC, inp, IC, 1.0f, dw, IC);
        return;
    }
    float *parts = scratch + p->off_dw;
    size_t psize = (size_t)OC * IC;
    int P = p->dw_parts;
#pragma omp parallel for schedule(static)
    for (int q = 0; q < P; q++) {
        size_t r0 = p->rows * q / P, r1 = p->rows * (q + 1) / P;
        nn_gemm(1, 0, OC, IC, (int)(r1 - r0), 1.0f, dout + r0 * OC, OC, inp + r0 * IC, IC, 0.0f,
                parts + q * psize, IC);
    }
#pragma omp parallel for schedule(static) if (psize * P >= CONV_PAR_MIN)
    for (size_t i = 0; i < psize; i++) {
        float s = 0.0f;
        for (int q = 0; q < P; q++)
            s += parts[q * psize + i];
        dw[i] += s;
    }
}

/* ---- depthwise -------------------------------------------------------------- */

/* Channels are processed in blocks of DW_BLK held in one vector (gcc's
 * vector extension, as wide as the widest SIMD register compiled in: 16
 * floats with AVX-512), whose running sums stay in registers while the taps
 * or pixels stream past. A tail of fewer channels runs scalar loops. */
#if defined(__AVX512F__)
#define DW_BLK 16
#elif defined(__AVX__)
#define DW_BLK 8
#else
#define DW_BLK 4
#endif
typedef float dw_vec __attribute__((vector_size(DW_BLK * sizeof(float))));
#define DW_INLINE static inline __attribute__((always_inline))

DW_INLINE dw_vec dw_ld(const float *p)
{
    dw_vec v;
    memcpy(&v, p, sizeof v);
    return v;
}

DW_INLINE void dw_st(float *p, dw_vec v)
{
    memcpy(p, &v, sizeof v);
}

/* wr (kh, kw, C) from w (C, 1, kh, kw): one tap of every channel is a row. */
static void dw_reorder(float *wr, const float *w, const nn_conv2d_dims *d)
{
    int khw = d->kh * d->kw;
    for (int c = 0; c < d->IC; c++)
        for (int t = 0; t < khw; t++)
            wr[(size_t)t * d->IC + c] = w[(size_t)c * khw + t];
}

/* The taps of output (ho, wo) that fall inside the image: input pixel
 * offsets src[] and tap indices tap[]; returns their count. */
DW_INLINE int dw_taps_fwd(int *src, int *tap, int ho, int wo, const nn_conv2d_dims *d)
{
    int n = 0;
    for (int i = 0; i < d->kh; i++) {
        int hi = ho * d->stride - d->pad + i;
        if (hi < 0 || hi >= d->H)
            continue;
        for (int j = 0; j < d->kw; j++) {
            int wi = wo * d->stride - d->pad + j;
            if (wi < 0 || wi >= d->W)
                continue;
            src[n] = hi * d->W + wi;
            tap[n++] = i * d->kw + j;
        }
    }
    return n;
}

/* The outputs whose taps read input (hi, wi): output offsets and tap indices. */
DW_INLINE int dw_taps_bwd(int *dst, int *tap, int hi, int wi, const nn_conv2d_dims *d)
{
    int n = 0, s = d->stride;
    for (int i = 0; i < d->kh; i++) {
        int t = hi + d->pad - i;
        if (t < 0 || t % s != 0 || t / s >= d->Ho)
            continue;
        for (int j = 0; j < d->kw; j++) {
            int u = wi + d->pad - j;
            if (u < 0 || u % s != 0 || u / s >= d->Wo)
                continue;
            dst[n] = (t / s) * d->Wo + u / s;
            tap[n++] = i * d->kw + j;
        }
    }
    return n;
}

/* o (C) = b + sum over the n listed taps of x[off[t]] * w[tap[t]]; acc_init
 * instead of b when accumulating (o already holds the start value). */
DW_INLINE void dw_taps_dot(float *o, const float *x, const float *wr, const float *b,
                           const int *off, const int *tap, int n, int C, int accumulate)
{
    int c0 = 0;
    for (; c0 + DW_BLK <= C; c0 += DW_BLK) {
        dw_vec acc = accumulate ? dw_ld(o + c0) : (b != NULL ? dw_ld(b + c0) : (dw_vec){0});
        for (int t = 0; t < n; t++)
            acc += dw_ld(x + (size_t)off[t] * C + c0) * dw_ld(wr + (size_t)tap[t] * C + c0);
        dw_st(o + c0, acc);
    }
    for (int c = c0; c < C; c++) {
        float acc = accumulate ? o[c] : (b != NULL ? b[c] : 0.0f);
        for (int t = 0; t < n; t++)
            acc += x[(size_t)off[t] * C + c] * wr[(size_t)tap[t] * C + c];
        o[c] = acc;
    }
}

/* The 3x3 kernels below take whole DW_BLK-channel blocks. */
static int dw3_fast(const nn_conv2d_dims *d)
{
    return d->kh == 3 && d->kw == 3 && d->IC % DW_BLK == 0 && d->pad <= 2;
}

/* Geometry of a 3x3 depthwise correlation: input (Hi, Wi, C) -> output
 * (Ho, Wo, C), stride s, zero padding pad. The forward pass is one; with
 * flipped taps and padding 2 - pad, so is the stride-1 input gradient. */
typedef struct dw3_geom {
    int Hi, Wi, Ho, Wo, C, s, pad;
} dw3_geom;

/* Output (ho, wo) of image `in`, c-block [c0, c0+16), taps read where inside. */
DW_INLINE dw_vec dw3_px_edge(const float *in, const float *wr, dw_vec acc, int ho, int wo, int c0,
                             const dw3_geom *g)
{
    for (int i = 0; i < 3; i++) {
        int hi = ho * g->s - g->pad + i;
        if (hi < 0 || hi >= g->Hi)
            continue;
        for (int j = 0; j < 3; j++) {
            int wi = wo * g->s - g->pad + j;
            if (wi >= 0 && wi < g->Wi)
                acc += dw_ld(in + ((size_t)hi * g->Wi + wi) * g->C + c0) *
                       dw_ld(wr + (size_t)(i * 3 + j) * g->C + c0);
        }
    }
    return acc;
}

/* One output row `ho` of a 3x3 depthwise correlation (C % 16 == 0): the nine
 * tap weights of a channel block stay in registers across the row, and
 * interior pixels run without bounds checks. out is overwritten (b, which
 * may be NULL, is added) or accumulated into. */
static void dw3_row(float *orow, const float *in, const float *wr, const float *b, int ho,
                    const dw3_geom *g, int accumulate)
{
    int C = g->C, s = g->s;
    const float *xr[3];
    for (int i = 0; i < 3; i++) {
        int hi = ho * s - g->pad + i;
        xr[i] = hi >= 0 && hi < g->Hi ? in + (size_t)hi * g->Wi * C : NULL;
    }
    /* interior: every tap column inside, wo*s - pad >= 0 and wo*s - pad + 2 < Wi */
    int lo = (g->pad + s - 1) / s, hi = g->Wi - 3 + g->pad >= 0 ? (g->Wi - 3 + g->pad) / s + 1 : 0;
    if (hi > g->Wo)
        hi = g->Wo;
    if (lo > hi)
        lo = hi;
    for (int c0 = 0; c0 < C; c0 += DW_BLK) {
        dw_vec w[9];
        for (int t = 0; t < 9; t++)
            w[t] = dw_ld(wr + (size_t)t * C + c0);
        dw_vec bias = b != NULL ? dw_ld(b + c0) : (dw_vec){0};
        for (int wo = 0; wo < g->Wo; wo++) {
            float *o = orow + (size_t)wo * C + c0;
            dw_vec acc = accumulate ? dw_ld(o) : bias;
            if (wo < lo || wo >= hi) {
                dw_st(o, dw3_px_edge(in, wr, acc, ho, wo, c0, g));
                continue;
            }
            size_t wi = (size_t)(wo * s - g->pad) * C + c0;
            for (int i = 0; i < 3; i++) {
                if (xr[i] == NULL)
                    continue;
                const float *x = xr[i] + wi;
                acc += dw_ld(x) * w[3 * i] + dw_ld(x + C) * w[3 * i + 1] +
                       dw_ld(x + 2 * (size_t)C) * w[3 * i + 2];
            }
            dw_st(o, acc);
        }
    }
}

/* out (B, Ho, Wo, C) = or += the 3x3 depthwise correlation of in (B, Hi, Wi, C). */
static void dw3_conv(float *out, const float *in, const float *wr, const float *b, int B,
                     const dw3_geom *g, int accumulate)
{
    int nrows = B * g->Ho;
#pragma omp parallel for schedule(static) if ((size_t)nrows * g->Wo * g->C * 9 >= CONV_PAR_MIN)
    for (int row = 0; row < nrows; row++) {
        int bi = row / g->Ho, ho = row % g->Ho;
        dw3_row(out + (size_t)row * g->Wo * g->C, in + (size_t)bi * g->Hi * g->Wi * g->C, wr, b, ho,
                g, accumulate);
    }
}

static void dw_forward(float *out, const float *inp, const float *b, const nn_conv2d_dims *d,
                       const conv_plan *p, const float *wr)
{
    int C = d->IC, Ho = d->Ho, Wo = d->Wo;
    if (dw3_fast(d)) {
        dw3_geom g = {d->H, d->W, Ho, Wo, C, d->stride, d->pad};
        dw3_conv(out, inp, wr, b, d->B, &g, 0);
        return;
    }
    int nrows = d->B * Ho;
#pragma omp parallel for schedule(static) if (p->rows * C * d->kh * d->kw >= CONV_PAR_MIN)
    for (int row = 0; row < nrows; row++) {
        int bi = row / Ho, ho = row % Ho;
        int src[DW_MAX_TAPS], tap[DW_MAX_TAPS];
        const float *img = inp + (size_t)bi * d->H * d->W * C;
        for (int wo = 0; wo < Wo; wo++) {
            int n = dw_taps_fwd(src, tap, ho, wo, d);
            dw_taps_dot(out + ((size_t)row * Wo + wo) * C, img, wr, b, src, tap, n, C, 0);
        }
    }
}

/* dinp gathered per input row, so rows are owned by one thread each. */
static void dw_backward_input(float *dinp, const float *dout, const nn_conv2d_dims *d,
                              const conv_plan *p, const float *wr)
{
    int C = d->IC, H = d->H, W = d->W;
    int nrows = d->B * H;
#pragma omp parallel for schedule(static) if (p->rows * C * d->kh * d->kw >= CONV_PAR_MIN)
    for (int row = 0; row < nrows; row++) {
        int bi = row / H, hi = row % H;
        int dst[DW_MAX_TAPS], tap[DW_MAX_TAPS];
        const float *gimg = dout + (size_t)bi * d->Ho * d->Wo * C;
        for (int wi = 0; wi < W; wi++) {
            int n = dw_taps_bwd(dst, tap, hi, wi, d);
            dw_taps_dot(dinp + ((size_t)row * W + wi) * C, gimg, wr, NULL, dst, tap, n, C, 1);
        }
    }
}

/* pt (C) += sum over output row gr (Wo, C) of dout * the input row xr under
 * tap column j: output wo reads input column wo*s - pad + j. */
static void dw_weight_row(float *pt, const float *gr, const float *xr, int j,
                          const nn_conv2d_dims *d)
{
    int C = d->IC, s = d->stride, c0 = 0;
    /* the outputs whose input column lies inside the image */
    int lo = d->pad - j > 0 ? (d->pad - j + s - 1) / s : 0;
    int hi = (d->W - 1 + d->pad - j) / s + 1;
    if (hi > d->Wo)
        hi = d->Wo;
    if (hi <= lo)
        return;
    const float *xl = xr + ((size_t)lo * s - (size_t)d->pad + (size_t)j) * C; /* column of lo */
    const float *gl = gr + (size_t)lo * C;
    int n = hi - lo;
    size_t xs = (size_t)s * C;
    for (; c0 + DW_BLK <= C; c0 += DW_BLK) {
        dw_vec acc = dw_ld(pt + c0);
        for (int q = 0; q < n; q++)
            acc += dw_ld(gl + (size_t)q * C + c0) * dw_ld(xl + q * xs + c0);
        dw_st(pt + c0, acc);
    }
    for (int c = c0; c < C; c++) {
        float acc = pt[c];
        for (int q = 0; q < n; q++)
            acc += gl[(size_t)q * C + c] * xl[q * xs + c];
        pt[c] = acc;
    }
}

/* part (kh, kw, C) = sum over output rows [r0, r1) of dout * the input under each tap. */
/* Kernel row i of a 3x3 depthwise weight gradient (C % 16 == 0): pt (3, C)
 * += sum over output row gr of dout * the input row xr under each of the
 * three tap columns, the three sums of a channel block in registers. */
static void dw3_weight_row(float *pt, const float *gr, const float *xr, const nn_conv2d_dims *d)
{
    int C = d->IC, s = d->stride, pad = d->pad, W = d->W, Wo = d->Wo;
    int lo = (pad + s - 1) / s, hi = W - 3 + pad >= 0 ? (W - 3 + pad) / s + 1 : 0;
    if (hi > Wo)
        hi = Wo;
    if (lo > hi)
        lo = hi;
    for (int c0 = 0; c0 < C; c0 += DW_BLK) {
        dw_vec a[3];
        for (int j = 0; j < 3; j++)
            a[j] = dw_ld(pt + (size_t)j * C + c0);
        for (int wo = 0; wo < Wo; wo++) {
            dw_vec g = dw_ld(gr + (size_t)wo * C + c0);
            int wi = wo * s - pad;
            if (wo >= lo && wo < hi) {
                const float *x = xr + (size_t)wi * C + c0;
                a[0] += g * dw_ld(x);
                a[1] += g * dw_ld(x + C);
                a[2] += g * dw_ld(x + 2 * (size_t)C);
                continue;
            }
            for (int j = 0; j < 3; j++)
                if (wi + j >= 0 && wi + j < W)
                    a[j] += g * dw_ld(xr + (size_t)(wi + j) * C + c0);
        }
        for (int j = 0; j < 3; j++)
            dw_st(pt + (size_t)j * C + c0, a[j]);
    }
}

static void dw_weight_part(float *part, const float *dout, const float *inp, int r0, int r1,
                           const nn_conv2d_dims *d)
{
    int C = d->IC, H = d->H, Ho = d->Ho, Wo = d->Wo, kh = d->kh, kw = d->kw;
    memset(part, 0, (size_t)kh * kw * C * sizeof(float));
    for (int row = r0; row < r1; row++) {
        int bi = row / Ho, ho = row % Ho;
        const float *img = inp + (size_t)bi * H * d->W * C;
        const float *gr = dout + (size_t)row * Wo * C;
        for (int i = 0; i < kh; i++) {
            int hi = ho * d->stride - d->pad + i;
            if (hi < 0 || hi >= H)
                continue;
            const float *xr = img + (size_t)hi * d->W * C;
            if (dw3_fast(d)) {
                dw3_weight_row(part + (size_t)i * 3 * C, gr, xr, d);
                continue;
            }
            for (int j = 0; j < kw; j++)
                dw_weight_row(part + (size_t)(i * kw + j) * C, gr, xr, j, d);
        }
    }
}

static void dw_backward_weight(float *dw, const float *dout, const float *inp,
                               const nn_conv2d_dims *d, const conv_plan *p, float *scratch)
{
    int C = d->IC, khw = d->kh * d->kw, P = p->parts, nrows = d->B * d->Ho;
    float *parts = scratch + p->off_dw;
    size_t psize = (size_t)khw * C;
#pragma omp parallel for schedule(static) if (P > 1)
    for (int q = 0; q < P; q++)
        dw_weight_part(parts + q * psize, dout, inp, (int)((long)nrows * q / P),
                       (int)((long)nrows * (q + 1) / P), d);
    for (int c = 0; c < C; c++)
        for (int t = 0; t < khw; t++) {
            float sum = 0.0f;
            for (int q = 0; q < P; q++)
                sum += parts[q * psize + (size_t)t * C + c];
            dw[(size_t)c * khw + t] += sum;
        }
}

/* ---- im2col ----------------------------------------------------------------- */

/* col (n, K) for output rows [r0, r0+n) and group g: kh*kw runs of ICg floats. */
static void im2col(float *col, const float *inp, size_t r0, int n, int g, const nn_conv2d_dims *d,
                   int ICg)
{
    int H = d->H, W = d->W, IC = d->IC, s = d->stride, pad = d->pad, kh = d->kh, kw = d->kw;
    int K = kh * kw * ICg;
    int HWo = d->Ho * d->Wo;
    for (int q = 0; q < n; q++) {
        size_t r = r0 + (size_t)q;
        int bi = (int)(r / HWo), rem = (int)(r % HWo);
        int ho = rem / d->Wo, wo = rem % d->Wo;
        float *dst = col + (size_t)q * K;
        for (int i = 0; i < kh; i++) {
            int hi = ho * s - pad + i;
            float *drow = dst + (size_t)i * kw * ICg;
            if (hi < 0 || hi >= H) {
                memset(drow, 0, (size_t)kw * ICg * sizeof(float));
                continue;
            }
            const float *srow = inp + ((size_t)bi * H + hi) * W * IC + (size_t)g * ICg;
            int wi0 = wo * s - pad;
            int j0 = clampi(-wi0, 0, kw);
            int j1 = clampi(W - wi0, j0, kw);
            if (j0 > 0)
                memset(drow, 0, (size_t)j0 * ICg * sizeof(float));
            if (ICg == IC) {
                if (j1 > j0)
                    memcpy(drow + (size_t)j0 * ICg, srow + (size_t)(wi0 + j0) * IC,
                           (size_t)(j1 - j0) * IC * sizeof(float));
            } else {
                for (int j = j0; j < j1; j++) {
                    const float *src = srow + (size_t)(wi0 + j) * IC;
                    float *dd = drow + (size_t)j * ICg;
                    for (int c = 0; c < ICg; c++)
                        dd[c] = src[c];
                }
            }
            if (j1 < kw)
                memset(drow + (size_t)j1 * ICg, 0, (size_t)(kw - j1) * ICg * sizeof(float));
        }
    }
}

/* dinp += col2im(col (n, K)) for output rows [r0, r0+n) and group g. */
static void col2im(float *dinp, const float *col, size_t r0, int n, int g, const nn_conv2d_dims *d,
                   int ICg)
{
    int H = d->H, W = d->W, IC = d->IC, s = d->stride, pad = d->pad, kh = d->kh, kw = d->kw;
    int K = kh * kw * ICg;
    int HWo = d->Ho * d->Wo;
    for (int q = 0; q < n; q++) {
        size_t r = r0 + (size_t)q;
        int bi = (int)(r / HWo), rem = (int)(r % HWo);
        int ho = rem / d->Wo, wo = rem % d->Wo;
        const float *src = col + (size_t)q * K;
        for (int i = 0; i < kh; i++) {
            int hi = ho * s - pad + i;
            if (hi < 0 || hi >= H)
                continue;
            float *drow = dinp + ((size_t)bi * H + hi) * W * IC + (size_t)g * ICg;
            const float *srow = src + (size_t)i * kw * ICg;
            int wi0 = wo * s - pad;
            int j0 = clampi(-wi0, 0, kw);
            int j1 = clampi(W - wi0, j0, kw);
            if (ICg == IC) {
                float *dd = drow + (size_t)(wi0 + j0) * IC;
                const float *ss = srow + (size_t)j0 * IC;
                int len = (j1 - j0) * IC;
                for (int c = 0; c < len; c++)
                    dd[c] += ss[c];
            } else {
                for (int j = j0; j < j1; j++) {
                    float *dd = drow + (size_t)(wi0 + j) * IC;
                    const float *ss = srow + (size_t)j * ICg;
                    for (int c = 0; c < ICg; c++)
                        dd[c] += ss[c];
                }
            }
        }
    }
}

/* Row range of part q: whole images. */
static void part_rows(const nn_conv2d_dims *d, int q, int P, size_t *r0, size_t *r1)
{
    size_t img = (size_t)d->Ho * d->Wo;
    *r0 = (size_t)(d->B * (long)q / P) * img;
    *r1 = (size_t)(d->B * (long)(q + 1) / P) * img;
}

static void im2col_forward(float *out, const float *inp, const float *b, const nn_conv2d_dims *d,
                           const conv_plan *p, float *scratch)
{
    const float *wr = scratch + p->off_wr;
    int P = p->parts, K = p->K, OC = d->OC, OCg = p->OCg;
#pragma omp parallel for schedule(static) if (P > 1)
    for (int q = 0; q < P; q++) {
        float *col = scratch + p->off_col + (size_t)q * p->chunk * K;
        size_t r0, r1;
        part_rows(d, q, P, &r0, &r1);
        for (size_t r = r0; r < r1; r += (size_t)p->chunk) {
            int n = (int)(r1 - r < (size_t)p->chunk ? r1 - r : (size_t)p->chunk);
            for (int g = 0; g < d->groups; g++) {
                im2col(col, inp, r, n, g, d, p->ICg);
                nn_gemm(0, 1, n, OCg, K, 1.0f, col, K, wr + (size_t)g * OCg * K, K, 0.0f,
                        out + r * OC + (size_t)g * OCg, OC);
            }
            if (b != NULL)
                add_bias_rows(out, b, r, r + (size_t)n, OC);
        }
    }
}

static void im2col_backward(float *dinp, float *dw, const float *dout, const float *inp,
                            const nn_conv2d_dims *d, const conv_plan *p, float *scratch)
{
    const float *wr = scratch + p->off_wr;
    float *parts = scratch + p->off_dw;
    int P = p->parts, K = p->K, OC = d->OC, OCg = p->OCg;
    size_t psize = (size_t)OC * K;
#pragma omp parallel for schedule(static) if (P > 1)
    for (int q = 0; q < P; q++) {
        float *col = scratch + p->off_col + (size_t)q * p->chunk * K;
        float *part = parts + q * psize;
        size_t r0, r1;
        part_rows(d, q, P, &r0, &r1);
        if (dw != NULL)
            memset(part, 0, psize * sizeof(float));
        for (size_t r = r0; r < r1; r += (size_t)p->chunk) {
            int n = (int)(r1 - r < (size_t)p->chunk ? r1 - r : (size_t)p->chunk);
            for (int g = 0; g < d->groups; g++) {
                const float *go = dout + r * OC + (size_t)g * OCg;
                if (dw != NULL) {
                    im2col(col, inp, r, n, g, d, p->ICg);
                    nn_gemm(1, 0, OCg, K, n, 1.0f, go, OC, col, K, 1.0f, part + (size_t)g * OCg * K,
                            K);
                }
                if (dinp != NULL) {
                    nn_gemm(0, 0, n, K, OCg, 1.0f, go, OC, wr + (size_t)g * OCg * K, K, 0.0f, col,
                            K);
                    col2im(dinp, col, r, n, g, d, p->ICg);
                }
            }
        }
    }
    if (dw != NULL)
        reduce_dw_reordered(dw, parts, P, psize, d, p->ICg);
}

/* ---- direct (conv_direct.c) -------------------------------------------------- */

static void direct_forward(float *out, const float *inp, const float *b, const nn_conv2d_dims *d,
                           const conv_plan *p, float *scratch)
{
    const float *wt = scratch + p->off_wt;
    size_t in_img = (size_t)d->H * d->W * d->IC, out_img = (size_t)d->Ho * d->Wo * d->OC;
    size_t xpad_sz = (size_t)(d->H + 2 * d->pad) * (d->W + 2 * d->pad) * d->IC;
    int P = p->parts;
#pragma omp parallel for schedule(static) if (P > 1)
    for (int q = 0; q < P; q++) {
        float *xpad = scratch + p->off_xpad + (size_t)q * xpad_sz;
        for (int bi = d->B * q / P; bi < d->B * (q + 1) / P; bi++) {
            convd_pad(xpad, inp + bi * in_img, d->H, d->W, d->IC, d->pad);
            convd_forward_image(out + bi * out_img, xpad, wt, b, d);
        }
    }
}

static void direct_backward(float *dinp, float *dw, const float *dout, const float *inp,
                            const nn_conv2d_dims *d, const conv_plan *p, float *scratch)
{
    const float *wf = scratch + p->off_wf;
    float *parts = scratch + p->off_dw;
    size_t psize = (size_t)d->OC * p->K;
    size_t in_img = (size_t)d->H * d->W * d->IC, out_img = (size_t)d->Ho * d->Wo * d->OC;
    size_t xpad_sz = (size_t)(d->H + 2 * d->pad) * (d->W + 2 * d->pad) * d->IC;
    int pp = d->kh - 1 - d->pad;
    size_t gpad_sz = (size_t)(d->Ho + 2 * pp) * (d->Wo + 2 * pp) * d->OC;
    int P = p->parts, do_dinp = dinp != NULL && p->dinp_direct;
    if (dw != NULL || do_dinp) {
#pragma omp parallel for schedule(static) if (P > 1)
        for (int q = 0; q < P; q++) {
            float *part = parts + q * psize;
            float *xpad = scratch + p->off_xpad + (size_t)q * xpad_sz;
            if (dw != NULL)
                memset(part, 0, psize * sizeof(float));
            for (int bi = d->B * q / P; bi < d->B * (q + 1) / P; bi++) {
                if (dw != NULL) {
                    convd_pad(xpad, inp + bi * in_img, d->H, d->W, d->IC, d->pad);
                    convd_dw_image(part, xpad, dout + bi * out_img, d);
                }
                if (do_dinp) {
                    float *gpad = scratch + p->off_gpad + (size_t)q * gpad_sz;
                    convd_pad(gpad, dout + bi * out_img, d->Ho, d->Wo, d->OC, pp);
                    convd_dinp_image(dinp + bi * in_img, gpad, wf, d);
                }
            }
        }
    }
    if (dw != NULL) {
        /* partials are (kh, kw, IC, OC); dw is (OC, IC, kh, kw) */
        int khw = d->kh * d->kw, IC = d->IC, OC = d->OC;
#pragma omp parallel for schedule(static) if (psize * P >= CONV_PAR_MIN)
        for (int o = 0; o < OC; o++)
            for (int c = 0; c < IC; c++)
                for (int t = 0; t < khw; t++) {
                    size_t src = ((size_t)t * IC + c) * OC + o;
                    float s = 0.0f;
                    for (int q = 0; q < P; q++)
                        s += parts[q * psize + src];
                    dw[((size_t)o * IC + c) * khw + t] += s;
                }
    }
    if (dinp != NULL && !p->dinp_direct)
        im2col_backward(dinp, NULL, dout, inp, d, p, scratch);
}

/* ---- entry points ------------------------------------------------------------ */

static void check_dims(const nn_conv2d_dims *d)
{
    (void)d; /* only the asserts read it */
    NN_ASSERT(d != NULL);
    NN_ASSERT(d->B >= 1 && d->IC >= 1 && d->OC >= 1 && d->groups >= 1);
    NN_ASSERT(d->IC % d->groups == 0 && d->OC % d->groups == 0);
    NN_ASSERT(d->Ho == (d->H + 2 * d->pad - d->kh) / d->stride + 1);
    NN_ASSERT(d->Wo == (d->W + 2 * d->pad - d->kw) / d->stride + 1);
    NN_ASSERT(d->Ho >= 1 && d->Wo >= 1);
}

void nn_conv2d_forward(float *out, const float *inp, const float *w, const float *b,
                       const nn_conv2d_dims *d, float *scratch)
{
    check_dims(d);
    NN_ASSERT(out != NULL && inp != NULL && w != NULL);
    conv_plan p;
    conv_plan_make(&p, d);
    NN_ASSERT(scratch != NULL || p.total == 0);
    switch (p.algo) {
    case CONV_1X1:
        conv1x1_forward(out, inp, w, b, d, &p);
        break;
    case CONV_DEPTHWISE:
        dw_reorder(scratch + p.off_wr, w, d);
        dw_forward(out, inp, b, d, &p, scratch + p.off_wr);
        break;
    case CONV_DIRECT:
        convd_weights_hwio(scratch + p.off_wt, w, d);
        direct_forward(out, inp, b, d, &p, scratch);
        break;
    case CONV_IM2COL:
        reorder_weights(scratch + p.off_wr, w, d, p.ICg);
        im2col_forward(out, inp, b, d, &p, scratch);
        break;
    }
}

void nn_conv2d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const nn_conv2d_dims *d, float *scratch)
{
    check_dims(d);
    NN_ASSERT(dout != NULL && inp != NULL && w != NULL);
    conv_plan p;
    conv_plan_make(&p, d);
    NN_ASSERT(scratch != NULL || p.total == 0);
    if (db != NULL)
        bias_grad(db, dout, p.rows, d->OC, p.parts, scratch + p.off_db);
    switch (p.algo) {
    case CONV_1X1:
        conv1x1_backward(dinp, dw, dout, inp, w, d, &p, scratch);
        break;
    case CONV_DEPTHWISE:
        dw_reorder(scratch + p.off_wr, w, d);
        if (dinp != NULL && dw3_fast(d) && d->stride == 1) {
            /* the stride-1 input gradient is a correlation of dout with the
             * flipped taps and padding 2 - pad */
            float *wf = scratch + p.off_wf;
            for (int t = 0; t < 9; t++)
                memcpy(wf + (size_t)t * d->IC, scratch + p.off_wr + (size_t)(8 - t) * d->IC,
                       (size_t)d->IC * sizeof(float));
            dw3_geom g = {d->Ho, d->Wo, d->H, d->W, d->IC, 1, 2 - d->pad};
            dw3_conv(dinp, dout, wf, NULL, d->B, &g, 1);
        } else if (dinp != NULL) {
            dw_backward_input(dinp, dout, d, &p, scratch + p.off_wr);
        }
        if (dw != NULL)
            dw_backward_weight(dw, dout, inp, d, &p, scratch);
        break;
    case CONV_DIRECT:
        if (p.dinp_direct)
            convd_weights_flip(scratch + p.off_wf, w, d);
        else if (dinp != NULL)
            reorder_weights(scratch + p.off_wr, w, d, p.ICg);
        direct_backward(dinp, dw, dout, inp, d, &p, scratch);
        break;
    case CONV_IM2COL:
        reorder_weights(scratch + p.off_wr, w, d, p.ICg);
        im2col_backward(dinp, dw, dout, inp, d, &p, scratch);
        break;
    }
}
