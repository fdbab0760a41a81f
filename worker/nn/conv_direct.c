/* conv_direct.c - direct convolution kernels (see conv_direct.h).
 *
 * Two register-blocked micro-kernels, both specialised at compile time for
 * their tile shape (always_inline + a switch over the supported shapes):
 *   conv tile: P output pixels of one row x NB vectors of output channels;
 *     for each tap and input channel, NB weight vectors are loaded once and P
 *     broadcast inputs are multiplied into them. Used for the forward pass
 *     and, with flipped weights over the padded dout, for the stride-1
 *     input gradient.
 *   dw tile: R input channels x NB vectors of output channels of one tap;
 *     streams every pixel of the image, broadcasting R inputs against NB
 *     dout vectors.
 * Inputs are zero-padded copies, so the inner loops carry no bounds checks.
 * The file is compiled once per kernel path (isa.h); the vector width, the
 * register count and so the tile shapes follow the instruction set.
 */
#include "worker/nn/conv_direct.h"

#include "worker/nn/tensor.h"

#include <immintrin.h>
#include <string.h>

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* One vector of CD_VW floats, in CD_REGS registers. */
#if defined(__AVX512F__)
#define CD_VW   16
#define CD_REGS 32
typedef __m512 cd_vec;
ALWAYS_INLINE cd_vec cd_load(const float *p)
{
    return _mm512_loadu_ps(p);
}
ALWAYS_INLINE void cd_store(float *p, cd_vec v)
{
    _mm512_storeu_ps(p, v);
}
ALWAYS_INLINE cd_vec cd_set1(float x)
{
    return _mm512_set1_ps(x);
}
ALWAYS_INLINE cd_vec cd_zero(void)
{
    return _mm512_setzero_ps();
}
ALWAYS_INLINE cd_vec cd_fma(cd_vec a, cd_vec b, cd_vec c)
{
    return _mm512_fmadd_ps(a, b, c);
}
#elif defined(__AVX2__) && defined(__FMA__)
#define CD_VW   8
#define CD_REGS 16
typedef __m256 cd_vec;
ALWAYS_INLINE cd_vec cd_load(const float *p)
{
    return _mm256_loadu_ps(p);
}
ALWAYS_INLINE void cd_store(float *p, cd_vec v)
{
    _mm256_storeu_ps(p, v);
}
ALWAYS_INLINE cd_vec cd_set1(float x)
{
    return _mm256_set1_ps(x);
}
ALWAYS_INLINE cd_vec cd_zero(void)
{
    return _mm256_setzero_ps();
}
ALWAYS_INLINE cd_vec cd_fma(cd_vec a, cd_vec b, cd_vec c)
{
    return _mm256_fmadd_ps(a, b, c);
}
#else /* SSE2, the x86-64 baseline: no fused multiply-add */
#define CD_VW   4
#define CD_REGS 16
typedef __m128 cd_vec;
ALWAYS_INLINE cd_vec cd_load(const float *p)
{
    return _mm_loadu_ps(p);
}
ALWAYS_INLINE void cd_store(float *p, cd_vec v)
{
    _mm_storeu_ps(p, v);
}
ALWAYS_INLINE cd_vec cd_set1(float x)
{
    return _mm_set1_ps(x);
}
ALWAYS_INLINE cd_vec cd_zero(void)
{
    return _mm_setzero_ps();
}
ALWAYS_INLINE cd_vec cd_fma(cd_vec a, cd_vec b, cd_vec c)
{
    return _mm_add_ps(_mm_mul_ps(a, b), c);
}
#endif

/* Tile shapes. A conv tile holds P*NB accumulators, NB weight vectors and a
 * broadcast; a dw tile R*NB accumulators, NB dout vectors and a broadcast;
 * both within the registers. The pixel counts P are the widths that divide
 * the usual rows (32, 28, 16, 14, 8, 7). */
#if CD_REGS == 32
static const int conv_ps1[] = {16, 14, 8, 7, 4, 2, 1}; /* NB = 1 */
static const int conv_ps2[] = {8, 7, 4, 2, 1};         /* NB = 2 */
#define CD_ACC_MAX 24                                  /* dw tile accumulators */
#else
static const int conv_ps1[] = {12, 8, 7, 6, 4, 2, 1};
static const int conv_ps2[] = {6, 4, 3, 2, 1};
#define CD_ACC_MAX 12
#endif
#define CONVD_MIN_TILE 4 /* P * NB: narrower tiles leave the FMA units idle */

int convd_channels(int C)
{
    return (C + CD_VW - 1) / CD_VW * CD_VW;
}

/* The widest P in ps (n entries) dividing Wo. */
static int first_divisor(const int *ps, int n, int Wo)
{
    for (int i = 0; i < n; i++)
        if (Wo % ps[i] == 0)
            return ps[i];
    return 1;
}

/* The conv tile for rows of Wo pixels and OCp output channels: NB (vectors)
 * and P (pixels), the one with more accumulators (two vectors per broadcast
 * on a tie). */
static void conv_tile_shape(int Wo, int OCp, int *P, int *NB)
{
    int p1 = first_divisor(conv_ps1, (int)(sizeof conv_ps1 / sizeof conv_ps1[0]), Wo);
    int p2 = OCp % (2 * CD_VW) == 0
                 ? first_divisor(conv_ps2, (int)(sizeof conv_ps2 / sizeof conv_ps2[0]), Wo)
                 : 0;
    if (2 * p2 >= p1) {
        *P = p2, *NB = 2;
    } else {
        *P = p1, *NB = 1;
    }
}

static int conv_tile_ok(int Wo, int OCp)
{
    int P, NB;
    conv_tile_shape(Wo, OCp, &P, &NB);
    return P * NB >= CONVD_MIN_TILE;
}

int convd_supported(const nn_conv2d_dims *d)
{
    /* Without FMA and with 4-float vectors these tiles lose to im2col and the
     * BLAS (measured 15 against 46 GFLOP/s on ResNet-20's convs, one thread). */
    if (CD_VW < 8)
        return 0;
    if (d->groups != 1 || d->kh != d->kw || 2 * d->OC < CD_VW)
        return 0;
    if (d->kh == 1 && d->stride == 1 && d->pad == 0)
        return 0; /* a plain GEMM */
    return conv_tile_ok(d->Wo, convd_channels(d->OC));
}

int convd_dinp_supported(const nn_conv2d_dims *d)
{
    return convd_supported(d) && d->stride == 1 && 2 * d->IC >= CD_VW && d->pad <= d->kh - 1 &&
           conv_tile_ok(d->W, convd_channels(d->IC));
}

void convd_pad(float *dst, const float *src, int H, int W, int C, int pad)
{
    size_t Wp = (size_t)W + 2 * (size_t)pad, row = (size_t)W * C;
    size_t border = (size_t)pad * C;
    memset(dst, 0, (size_t)pad * Wp * C * sizeof(float));
    float *d = dst + (size_t)pad * Wp * C;
    for (int h = 0; h < H; h++, d += Wp * C) {
        memset(d, 0, border * sizeof(float));
        memcpy(d + border, src + (size_t)h * row, row * sizeof(float));
        memset(d + border + row, 0, border * sizeof(float));
    }
    memset(d, 0, (size_t)pad * Wp * C * sizeof(float));
}

void convd_weights_hwio(float *wt, const float *w, const nn_conv2d_dims *d)
{
    int khw = d->kh * d->kw, IC = d->IC, OC = d->OC, OCp = convd_channels(OC);
    if (OCp != OC)
        memset(wt, 0, (size_t)khw * IC * OCp * sizeof(float));
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < IC; c++)
            for (int t = 0; t < khw; t++)
                wt[((size_t)t * IC + c) * OCp + o] = w[((size_t)o * IC + c) * khw + t];
}

void convd_weights_flip(float *wf, const float *w, const nn_conv2d_dims *d)
{
    int khw = d->kh * d->kw, IC = d->IC, OC = d->OC, ICp = convd_channels(IC);
    if (ICp != IC)
        memset(wf, 0, (size_t)khw * OC * ICp * sizeof(float));
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < IC; c++)
            for (int t = 0; t < khw; t++)
                wf[((size_t)(khw - 1 - t) * OC + o) * ICp + c] = w[((size_t)o * IC + c) * khw + t];
}

/* Geometry shared by the tiles of one call. */
typedef struct convd_geom {
    int kh, kw, ICt, OCt, s, Wp; /* taps, channels in / out (padded) of this conv, stride,
                                    padded input width */
} convd_geom;

/* out[p, 0:VW*NB] (pixel stride OCt) = or += sum over taps and channels of
 * x[tap + p*s] * wt[tap, c, 0:VW*NB]; x is the tile origin in the padded input. */
ALWAYS_INLINE void conv_tile(float *out, const float *x, const float *wt, const float *b,
                             int accumulate, const convd_geom *g, const int P, const int NB)
{
    cd_vec acc[16][2];
    const int ICt = g->ICt, OCt = g->OCt, s = g->s;
#pragma GCC unroll 16
    for (int p = 0; p < P; p++)
#pragma GCC unroll 2
        for (int n = 0; n < NB; n++)
            acc[p][n] = accumulate ? cd_load(out + (size_t)p * OCt + CD_VW * n)
                                   : (b != NULL ? cd_load(b + CD_VW * n) : cd_zero());
    for (int i = 0; i < g->kh; i++)
        for (int j = 0; j < g->kw; j++) {
            const float *xr = x + ((size_t)i * g->Wp + j) * ICt;
            const float *wr = wt + (size_t)(i * g->kw + j) * ICt * OCt;
            for (int c = 0; c < ICt; c++) {
                cd_vec wv[2];
#pragma GCC unroll 2
                for (int n = 0; n < NB; n++)
                    wv[n] = cd_load(wr + (size_t)c * OCt + CD_VW * n);
#pragma GCC unroll 16
                for (int p = 0; p < P; p++) {
                    cd_vec xv = cd_set1(xr[(size_t)p * s * ICt + c]);
#pragma GCC unroll 2
                    for (int n = 0; n < NB; n++)
                        acc[p][n] = cd_fma(xv, wv[n], acc[p][n]);
                }
            }
        }
#pragma GCC unroll 16
    for (int p = 0; p < P; p++)
#pragma GCC unroll 2
        for (int n = 0; n < NB; n++)
            cd_store(out + (size_t)p * OCt + CD_VW * n, acc[p][n]);
}

/* out (Ho, Wo, OCt) = or += conv of the padded input xpad with wt (kh, kw, ICin, OCt). */
static void conv_image(float *out, const float *xpad, const float *wt, const float *b,
                       int accumulate, const convd_geom *g, int Ho, int Wo)
{
    int P, NB, OCt = g->OCt;
    conv_tile_shape(Wo, OCt, &P, &NB);
    for (int ho = 0; ho < Ho; ho++)
        for (int wo = 0; wo < Wo; wo += P)
            for (int ocb = 0; ocb < OCt; ocb += CD_VW * NB) {
                float *o = out + ((size_t)ho * Wo + wo) * OCt + ocb;
                const float *x = xpad + ((size_t)ho * g->s * g->Wp + (size_t)wo * g->s) * g->ICt;
                const float *w = wt + ocb;
                const float *bb = b != NULL ? b + ocb : NULL;
                switch (P * 4 + NB) {
#define CONV_CASE(PP, NN)                                                                          \
    case PP * 4 + NN:                                                                              \
        conv_tile(o, x, w, bb, accumulate, g, PP, NN);                                             \
        break;
#if CD_REGS == 32
                    CONV_CASE(16, 1)
                    CONV_CASE(14, 1)
                    CONV_CASE(8, 1)
                    CONV_CASE(7, 1)
                    CONV_CASE(8, 2)
                    CONV_CASE(7, 2)
#else
                    CONV_CASE(12, 1)
                    CONV_CASE(8, 1)
                    CONV_CASE(7, 1)
                    CONV_CASE(6, 1)
                    CONV_CASE(6, 2)
                    CONV_CASE(3, 2)
#endif
                    CONV_CASE(4, 1)
                    CONV_CASE(2, 1)
                    CONV_CASE(1, 1)
                    CONV_CASE(4, 2)
                    CONV_CASE(2, 2)
                    CONV_CASE(1, 2)
#undef CONV_CASE
                default:
                    /* every (P, NB) conv_tile_shape can choose has a case */
                    NN_ASSERT(0);
                    conv_tile(o, x, w, bb, accumulate, g, P, NB);
                }
            }
}

/* dwt[tap, c0:c0+R, ocb:ocb+VW*NB] += sum over all pixels of x * dout; the R
 * inputs are consecutive floats from the tap's pixel onwards. dout and dwt
 * have OCp channels. */
ALWAYS_INLINE void dw_tile(float *dwt, const float *xpad, const float *dout, int tap_i,
                           const nn_conv2d_dims *d, int Wp, const int R, const int NB)
{
    cd_vec acc[CD_ACC_MAX][4];
    const int IC = d->IC, OCp = convd_channels(d->OC), s = d->stride, Wo = d->Wo;
#pragma GCC unroll 24
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int n = 0; n < NB; n++)
            acc[r][n] = cd_load(dwt + (size_t)r * OCp + CD_VW * n);
    for (int ho = 0; ho < d->Ho; ho++) {
        const float *xr = xpad + (size_t)(ho * s + tap_i) * Wp * IC;
        const float *gr = dout + (size_t)ho * Wo * OCp;
        for (int wo = 0; wo < Wo; wo++) {
            cd_vec gv[4];
#pragma GCC unroll 4
            for (int n = 0; n < NB; n++)
                gv[n] = cd_load(gr + (size_t)wo * OCp + CD_VW * n);
            const float *xx = xr + (size_t)wo * s * IC;
#pragma GCC unroll 24
            for (int r = 0; r < R; r++) {
                cd_vec xv = cd_set1(xx[r]);
#pragma GCC unroll 4
                for (int n = 0; n < NB; n++)
                    acc[r][n] = cd_fma(xv, gv[n], acc[r][n]);
            }
        }
    }
#pragma GCC unroll 24
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int n = 0; n < NB; n++)
            cd_store(dwt + (size_t)r * OCp + CD_VW * n, acc[r][n]);
}

void convd_forward_image(float *out, const float *xpad, const float *wt, const float *b,
                         const nn_conv2d_dims *d)
{
    convd_geom g = {d->kh, d->kw, d->IC, convd_channels(d->OC), d->stride, d->W + 2 * d->pad};
    conv_image(out, xpad, wt, b, 0, &g, d->Ho, d->Wo);
}

void convd_dinp_image(float *dinp, const float *gpad, const float *wf, const nn_conv2d_dims *d,
                      int accumulate)
{
    int pp = d->kh - 1 - d->pad;
    /* the transposed conv reads OC channels per pixel and writes ICp */
    convd_geom g = {d->kh, d->kw, d->OC, convd_channels(d->IC), 1, d->Wo + 2 * pp};
    conv_image(dinp, gpad, wf, NULL, accumulate, &g, d->H, d->W);
}

/* The dw tile for KC (tap column, channel) pairs and OCp channels: over the
 * dout vectors NB that divide OCp, the widest R dividing KC that fits, and of
 * those the tile with the most accumulators (the wider NB on a tie: fewer
 * broadcasts per multiply-add). */
static void dw_tile_shape(int KC, int OCp, int *R, int *NB)
{
    static const int rs[] = {24, 16, 12, 9, 8, 6, 4, 3, 2, 1};
    *R = 1, *NB = 1;
    for (int nb = 4; nb >= 1; nb /= 2) {
        if (OCp % (nb * CD_VW) != 0)
            continue;
        for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++)
            if (rs[i] * nb <= CD_ACC_MAX && rs[i] * nb + nb + 1 <= CD_REGS && KC % rs[i] == 0) {
                if (rs[i] * nb > *R * *NB)
                    *R = rs[i], *NB = nb;
                break;
            }
    }
}

void convd_dw_image(float *dwt, const float *xpad, const float *dout, const nn_conv2d_dims *d)
{
    int IC = d->IC, OCp = convd_channels(d->OC), Wp = d->W + 2 * d->pad;
    /* For one kernel row, the (tap column, channel) pairs are contiguous both
     * in a pixel's input run and in dwt, so they form one axis of length
     * kw*IC: a 3-channel stem gets 9-wide tiles instead of 3-wide ones. */
    int KC = d->kw * IC, R, NB;
    dw_tile_shape(KC, OCp, &R, &NB);
    for (int ti = 0; ti < d->kh; ti++)
        for (int c0 = 0; c0 < KC; c0 += R)
            for (int ocb = 0; ocb < OCp; ocb += CD_VW * NB) {
                float *dd = dwt + ((size_t)ti * KC + c0) * OCp + ocb;
                const float *x = xpad + c0;
                const float *g = dout + ocb;
                switch (R * 8 + NB) {
#define DW_CASE(RR, NN)                                                                            \
    case RR * 8 + NN:                                                                              \
        dw_tile(dd, x, g, ti, d, Wp, RR, NN);                                                      \
        break;
#if CD_REGS == 32
                    DW_CASE(24, 1)
                    DW_CASE(16, 1)
                    DW_CASE(12, 2)
                    DW_CASE(9, 2)
                    DW_CASE(8, 2)
                    DW_CASE(6, 4)
                    DW_CASE(4, 4)
                    DW_CASE(3, 4)
#endif
                    DW_CASE(12, 1)
                    DW_CASE(9, 1)
                    DW_CASE(8, 1)
                    DW_CASE(6, 1)
                    DW_CASE(4, 1)
                    DW_CASE(3, 1)
                    DW_CASE(2, 1)
                    DW_CASE(1, 1)
                    DW_CASE(6, 2)
                    DW_CASE(4, 2)
                    DW_CASE(3, 2)
                    DW_CASE(2, 2)
                    DW_CASE(1, 2)
                    DW_CASE(2, 4)
                    DW_CASE(1, 4)
#undef DW_CASE
                default:
                    /* every (R, NB) dw_tile_shape chooses has a case; this
                     * generic instance (sums in memory, slow) is a safety net */
                    NN_ASSERT(0);
                    dw_tile(dd, x, g, ti, d, Wp, R, NB);
                }
            }
}
