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
 *                 of channels (conv_depthwise.c).
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

#include "worker/nn/conv_depthwise.h"
#include "worker/nn/conv_direct.h"
#include "worker/nn/gemm.h"
#include "worker/nn/tensor.h"

#include <string.h>

#define CONV_PARTS      4           /* max parts of a reduction; fixed, so results are too */
#define CONV_PART_ROWS  256         /* fewer output rows per part than this are not split */
#define CONV_CHUNK_ROWS 1024        /* row chunk of the parallel row-wise GEMMs */
#define CONV_COL_FLOATS (64 * 1024) /* target im2col chunk: 256 KB, stays in L2 */
#define CONV_COLSUM_BLK 256         /* channels per pass of the bias-gradient sum */
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
    size_t off_wt, off_wf;     /* direct: HWIO weights, flipped weights */
    size_t off_xpad, off_gpad; /* direct: per-part padded input and dout images */
    size_t off_dw, off_db;     /* per-part partials of dw and db */
    size_t off_bpad, off_opad; /* direct, channels not whole vectors: padded bias; per-part
                                  padded output (forward) or dout (backward) images */
    size_t off_ipad;           /* direct, likewise: per-part padded dinp images */
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

/* Lays out from offset `at` what im2col needs: the reordered weights (wsz floats)
 * and per part a column buffer of chunk rows. Returns the offset after them. */
static size_t col_layout(conv_plan *p, size_t wsz, size_t at)
{
    p->chunk = clampi(CONV_COL_FLOATS / p->K, 16, 4096);
    p->off_wr = at;
    at += wsz;
    p->off_col = at;
    return at + (size_t)p->parts * p->chunk * p->K;
}

/* Lays out from offset `at` the direct kernels' scratch for p->parts parts. Channels
 * run padded to whole vectors (convd_channels): the weights in the scratch are padded,
 * and where a count is not whole already the kernels work on padded copies of the
 * output, dout and dinp images. Returns the offset after it. */
static size_t direct_layout(conv_plan *p, const nn_conv2d_dims *d, size_t at)
{
    int OCp = convd_channels(d->OC), ICp = convd_channels(d->IC), khw = d->kh * d->kw;
    size_t out_img = (size_t)d->Ho * d->Wo, in_img = (size_t)d->H * d->W;
    p->dinp_direct = convd_dinp_supported(d);
    p->off_wt = at;
    at += (size_t)khw * d->IC * OCp;
    p->off_xpad = at;
    at += (size_t)p->parts * (d->H + 2 * d->pad) * (d->W + 2 * d->pad) * d->IC;
    p->off_dw = at;
    at += (size_t)p->parts * khw * d->IC * OCp;
    if (OCp != d->OC) {
        p->off_bpad = at;
        at += (size_t)OCp;
        p->off_opad = at; /* forward output, then dout, per part */
        at += (size_t)p->parts * out_img * OCp;
    }
    if (!p->dinp_direct) /* the input gradient goes through im2col's dcol GEMM and col2im */
        return col_layout(p, (size_t)d->OC * p->K, at);
    int pp = d->kh - 1 - d->pad;
    p->off_wf = at;
    at += (size_t)khw * d->OC * ICp;
    p->off_gpad = at;
    at += (size_t)p->parts * (d->Ho + 2 * pp) * (d->Wo + 2 * pp) * d->OC;
    if (ICp != d->IC) {
        p->off_ipad = at;
        at += (size_t)p->parts * in_img * ICp;
    }
    return at;
}

static void conv_plan_make(conv_plan *p, const nn_conv2d_dims *d)
{
    memset(p, 0, sizeof *p);
    p->ICg = d->IC / d->groups;
    p->OCg = d->OC / d->groups;
    p->K = d->kh * d->kw * p->ICg;
    p->rows = (size_t)d->B * d->Ho * d->Wo;
    int k = d->kh;
    if (convdw_supported(d))
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
    case CONV_DEPTHWISE: /* its scratch first (conv_depthwise.c lays it out) */
        p->parts = parts_for(p->rows, (size_t)d->B * d->Ho);
        at += convdw_scratch_floats(d, p->parts);
        break;
    case CONV_DIRECT:
        p->parts = parts_for(p->rows, (size_t)d->B);
        at = direct_layout(p, d, at);
        break;
    case CONV_IM2COL:
        /* Parts hold whole images, so col2im of different parts never overlap. */
        p->parts = parts_for(p->rows, (size_t)d->B);
        at = col_layout(p, wsz, at);
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

/* ---- im2col ----------------------------------------------------------------- */

/* Output row r of the (B*Ho*Wo) rows: image bi, position (ho, wo). */
static inline void out_pos(const nn_conv2d_dims *d, size_t r, int *bi, int *ho, int *wo)
{
    size_t HWo = (size_t)d->Ho * d->Wo;
    int rem = (int)(r % HWo);
    *bi = (int)(r / HWo);
    *ho = rem / d->Wo;
    *wo = rem % d->Wo;
}

/* The input columns output column wo reads: wi0 + j for the kernel columns j in
 * [j0, j1), the ones that fall inside the image (the rest are padding). */
static inline void col_span(const nn_conv2d_dims *d, int wo, int *wi0, int *j0, int *j1)
{
    *wi0 = wo * d->stride - d->pad;
    *j0 = clampi(-*wi0, 0, d->kw);
    *j1 = clampi(d->W - *wi0, *j0, d->kw);
}

/* col (n, K) for output rows [r0, r0+n) and group g: kh*kw runs of ICg floats. */
static void im2col(float *col, const float *inp, size_t r0, int n, int g, const nn_conv2d_dims *d,
                   int ICg)
{
    int H = d->H, W = d->W, IC = d->IC, kh = d->kh, kw = d->kw;
    int K = kh * kw * ICg;
    for (int q = 0; q < n; q++) {
        int bi, ho, wo;
        out_pos(d, r0 + (size_t)q, &bi, &ho, &wo);
        float *dst = col + (size_t)q * K;
        for (int i = 0; i < kh; i++) {
            int hi = ho * d->stride - d->pad + i;
            float *drow = dst + (size_t)i * kw * ICg;
            if (hi < 0 || hi >= H) {
                memset(drow, 0, (size_t)kw * ICg * sizeof(float));
                continue;
            }
            const float *srow = inp + ((size_t)bi * H + hi) * W * IC + (size_t)g * ICg;
            int wi0, j0, j1;
            col_span(d, wo, &wi0, &j0, &j1);
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
    int H = d->H, W = d->W, IC = d->IC, kh = d->kh, kw = d->kw;
    int K = kh * kw * ICg;
    for (int q = 0; q < n; q++) {
        int bi, ho, wo;
        out_pos(d, r0 + (size_t)q, &bi, &ho, &wo);
        const float *src = col + (size_t)q * K;
        for (int i = 0; i < kh; i++) {
            int hi = ho * d->stride - d->pad + i;
            if (hi < 0 || hi >= H)
                continue;
            float *drow = dinp + ((size_t)bi * H + hi) * W * IC + (size_t)g * ICg;
            const float *srow = src + (size_t)i * kw * ICg;
            int wi0, j0, j1;
            col_span(d, wo, &wi0, &j0, &j1);
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

/* dst (n, C) = the first C of every row of src (n, Cp); add: dst += instead. */
static void unpad_rows(float *dst, const float *src, size_t n, int C, int Cp, int add)
{
    for (size_t r = 0; r < n; r++) {
        float *o = dst + r * (size_t)C;
        const float *i = src + r * (size_t)Cp;
        if (add)
            for (int c = 0; c < C; c++)
                o[c] += i[c];
        else
            memcpy(o, i, (size_t)C * sizeof(float));
    }
}

/* dst (n, Cp) = src (n, C) with Cp - C zero channels after each row. */
static void pad_rows(float *dst, const float *src, size_t n, int C, int Cp)
{
    for (size_t r = 0; r < n; r++) {
        memcpy(dst + r * (size_t)Cp, src + r * (size_t)C, (size_t)C * sizeof(float));
        memset(dst + r * (size_t)Cp + C, 0, (size_t)(Cp - C) * sizeof(float));
    }
}

static void direct_forward(float *out, const float *inp, const float *b, const nn_conv2d_dims *d,
                           const conv_plan *p, float *scratch)
{
    const float *wt = scratch + p->off_wt;
    int OCp = convd_channels(d->OC);
    size_t pix = (size_t)d->Ho * d->Wo;
    size_t in_img = (size_t)d->H * d->W * d->IC, out_img = pix * d->OC;
    size_t xpad_sz = (size_t)(d->H + 2 * d->pad) * (d->W + 2 * d->pad) * d->IC;
    if (b != NULL && OCp != d->OC) {
        float *bp = scratch + p->off_bpad;
        pad_rows(bp, b, 1, d->OC, OCp);
        b = bp;
    }
    int P = p->parts;
#pragma omp parallel for schedule(static) if (P > 1)
    for (int q = 0; q < P; q++) {
        float *xpad = scratch + p->off_xpad + (size_t)q * xpad_sz;
        float *opad = OCp != d->OC ? scratch + p->off_opad + (size_t)q * pix * OCp : NULL;
        for (int bi = d->B * q / P; bi < d->B * (q + 1) / P; bi++) {
            convd_pad(xpad, inp + bi * in_img, d->H, d->W, d->IC, d->pad);
            if (opad == NULL) {
                convd_forward_image(out + bi * out_img, xpad, wt, b, d);
            } else {
                convd_forward_image(opad, xpad, wt, b, d);
                unpad_rows(out + bi * out_img, opad, pix, d->OC, OCp, 0);
            }
        }
    }
}

/* One image's share of the direct backward: its dw partial, its input gradient. */
static void direct_backward_image(float *part, float *dinp, const float *dout, const float *inp,
                                  const nn_conv2d_dims *d, const conv_plan *p, float *scratch,
                                  int q)
{
    int OCp = convd_channels(d->OC), ICp = convd_channels(d->IC), pp = d->kh - 1 - d->pad;
    size_t pix = (size_t)d->Ho * d->Wo, in_pix = (size_t)d->H * d->W;
    if (part != NULL) {
        size_t xpad_sz = (size_t)(d->H + 2 * d->pad) * (d->W + 2 * d->pad) * d->IC;
        float *xpad = scratch + p->off_xpad + (size_t)q * xpad_sz;
        const float *g = dout;
        if (OCp != d->OC) {
            float *dpad = scratch + p->off_opad + (size_t)q * pix * OCp;
            pad_rows(dpad, dout, pix, d->OC, OCp);
            g = dpad;
        }
        convd_pad(xpad, inp, d->H, d->W, d->IC, d->pad);
        convd_dw_image(part, xpad, g, d);
    }
    if (dinp != NULL) {
        size_t gpad_sz = (size_t)(d->Ho + 2 * pp) * (d->Wo + 2 * pp) * d->OC;
        float *gpad = scratch + p->off_gpad + (size_t)q * gpad_sz;
        const float *wf = scratch + p->off_wf;
        convd_pad(gpad, dout, d->Ho, d->Wo, d->OC, pp);
        if (ICp == d->IC) {
            convd_dinp_image(dinp, gpad, wf, d, 1);
        } else {
            float *ipad = scratch + p->off_ipad + (size_t)q * in_pix * ICp;
            convd_dinp_image(ipad, gpad, wf, d, 0);
            unpad_rows(dinp, ipad, in_pix, d->IC, ICp, 1);
        }
    }
}

static void direct_backward(float *dinp, float *dw, const float *dout, const float *inp,
                            const nn_conv2d_dims *d, const conv_plan *p, float *scratch)
{
    float *parts = scratch + p->off_dw;
    int OCp = convd_channels(d->OC), khw = d->kh * d->kw, IC = d->IC, OC = d->OC;
    size_t psize = (size_t)khw * IC * OCp;
    size_t in_img = (size_t)d->H * d->W * d->IC, out_img = (size_t)d->Ho * d->Wo * d->OC;
    int P = p->parts, do_dinp = dinp != NULL && p->dinp_direct;
    if (dw != NULL || do_dinp) {
#pragma omp parallel for schedule(static) if (P > 1)
        for (int q = 0; q < P; q++) {
            float *part = dw != NULL ? parts + q * psize : NULL;
            if (part != NULL)
                memset(part, 0, psize * sizeof(float));
            for (int bi = d->B * q / P; bi < d->B * (q + 1) / P; bi++)
                direct_backward_image(part, do_dinp ? dinp + bi * in_img : NULL,
                                      dout + bi * out_img, inp + bi * in_img, d, p, scratch, q);
        }
    }
    if (dw != NULL) {
        /* partials are (kh, kw, IC, OCp); dw is (OC, IC, kh, kw) */
#pragma omp parallel for schedule(static) if (psize * P >= CONV_PAR_MIN)
        for (int o = 0; o < OC; o++)
            for (int c = 0; c < IC; c++)
                for (int t = 0; t < khw; t++) {
                    size_t src = ((size_t)t * IC + c) * OCp + o;
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
        convdw_forward(out, inp, w, b, d, scratch);
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
        convdw_backward(dinp, dw, dout, inp, w, d, p.parts, scratch);
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
