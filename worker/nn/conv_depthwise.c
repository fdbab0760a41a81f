/* conv_depthwise.c - depthwise convolution (see conv_depthwise.h).
 *
 * Direct loops vectorised over blocks of DW_BLK channels; 3x3 kernels keep
 * their taps in registers, and a stride-1 input gradient is the same
 * correlation with flipped taps. Output rows (forward), input rows (input
 * gradient) and fixed parts of the output rows (weight gradient, summed in
 * part order) are split over the threads, so results do not depend on their
 * count. Scratch: the reordered taps, the flipped taps, then one partial
 * weight gradient per part.
 */
#include "worker/nn/conv_depthwise.h"

#include "worker/nn/tensor.h"

#include <string.h>

#define DW_PAR_MIN (1 << 14) /* less work than this runs on one thread */

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
#pragma omp parallel for schedule(static) if ((size_t)nrows * g->Wo * g->C * 9 >= DW_PAR_MIN)
    for (int row = 0; row < nrows; row++) {
        int bi = row / g->Ho, ho = row % g->Ho;
        dw3_row(out + (size_t)row * g->Wo * g->C, in + (size_t)bi * g->Hi * g->Wi * g->C, wr, b, ho,
                g, accumulate);
    }
}

static void dw_forward(float *out, const float *inp, const float *b, const nn_conv2d_dims *d,
                       const float *wr)
{
    size_t rows = (size_t)d->B * d->Ho * d->Wo;
    int C = d->IC, Ho = d->Ho, Wo = d->Wo;
    if (dw3_fast(d)) {
        dw3_geom g = {d->H, d->W, Ho, Wo, C, d->stride, d->pad};
        dw3_conv(out, inp, wr, b, d->B, &g, 0);
        return;
    }
    int nrows = d->B * Ho;
#pragma omp parallel for schedule(static) if (rows * C * d->kh * d->kw >= DW_PAR_MIN)
    for (int row = 0; row < nrows; row++) {
        int bi = row / Ho, ho = row % Ho;
        int src[CONVDW_MAX_TAPS], tap[CONVDW_MAX_TAPS];
        const float *img = inp + (size_t)bi * d->H * d->W * C;
        for (int wo = 0; wo < Wo; wo++) {
            int n = dw_taps_fwd(src, tap, ho, wo, d);
            dw_taps_dot(out + ((size_t)row * Wo + wo) * C, img, wr, b, src, tap, n, C, 0);
        }
    }
}

/* dinp gathered per input row, so rows are owned by one thread each. */
static void dw_backward_input(float *dinp, const float *dout, const nn_conv2d_dims *d,
                              const float *wr)
{
    size_t rows = (size_t)d->B * d->Ho * d->Wo;
    int C = d->IC, H = d->H, W = d->W;
    int nrows = d->B * H;
#pragma omp parallel for schedule(static) if (rows * C * d->kh * d->kw >= DW_PAR_MIN)
    for (int row = 0; row < nrows; row++) {
        int bi = row / H, hi = row % H;
        int dst[CONVDW_MAX_TAPS], tap[CONVDW_MAX_TAPS];
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
                               const nn_conv2d_dims *d, int P, float *parts)
{
    int C = d->IC, khw = d->kh * d->kw, nrows = d->B * d->Ho;
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

int convdw_supported(const nn_conv2d_dims *d)
{
    return d->groups == d->IC && d->groups == d->OC && d->kh * d->kw <= CONVDW_MAX_TAPS;
}

size_t convdw_scratch_floats(const nn_conv2d_dims *d, int parts)
{
    return (size_t)(2 + parts) * d->kh * d->kw * d->IC;
}

void convdw_forward(float *out, const float *inp, const float *w, const float *b,
                    const nn_conv2d_dims *d, float *scratch)
{
    dw_reorder(scratch, w, d);
    dw_forward(out, inp, b, d, scratch);
}

void convdw_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                     const nn_conv2d_dims *d, int parts, float *scratch)
{
    size_t taps = (size_t)d->kh * d->kw * d->IC;
    float *wr = scratch, *wf = scratch + taps;
    dw_reorder(wr, w, d);
    if (dinp != NULL && dw3_fast(d) && d->stride == 1) {
        /* the stride-1 input gradient is a correlation of dout with the
         * flipped taps and padding 2 - pad */
        for (int t = 0; t < 9; t++)
            memcpy(wf + (size_t)t * d->IC, wr + (size_t)(8 - t) * d->IC,
                   (size_t)d->IC * sizeof(float));
        dw3_geom g = {d->Ho, d->Wo, d->H, d->W, d->IC, 1, 2 - d->pad};
        dw3_conv(dinp, dout, wf, NULL, d->B, &g, 1);
    } else if (dinp != NULL) {
        dw_backward_input(dinp, dout, d, wr);
    }
    if (dw != NULL)
        dw_backward_weight(dw, dout, inp, d, parts, scratch + 2 * taps);
}
