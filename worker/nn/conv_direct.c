/* conv_direct.c - direct AVX-512 convolution kernels (see conv_direct.h).
 *
 * Two register-blocked micro-kernels, both specialised at compile time for
 * their tile shape (always_inline + a switch over the supported shapes):
 *   conv tile: P output pixels of one row x 16*NB output channels; for each
 *     tap and input channel, NB weight vectors are loaded once and P
 *     broadcast inputs are multiplied into them. Used for the forward pass
 *     and, with flipped weights over the padded dout, for the stride-1
 *     input gradient.
 *   dw tile: R input channels x 16*NB output channels of one tap; streams
 *     every pixel of the image, broadcasting R inputs against NB dout
 *     vectors.
 * Inputs are zero-padded copies, so the inner loops carry no bounds checks.
 * Built only with AVX-512 (-march=native here); otherwise convd_supported()
 * is false and conv.c never calls the kernels.
 */
#include "worker/nn/conv_direct.h"

#include "worker/nn/tensor.h"

#include <string.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define CONVD_ENABLED 1
#else
#define CONVD_ENABLED 0
#endif

#define CONVD_MIN_P 4 /* narrower pixel tiles leave the FMA units idle */

/* Output channels per conv tile: 32 when they divide, else 16. */
static int conv_nb(int OC)
{
    return OC % 32 == 0 ? 2 : 1;
}

/* The widest supported pixel tile dividing the row width Wo. */
static int conv_p(int Wo, int NB)
{
    static const int p1[] = {16, 14, 8, 7, 4, 2, 1}, p2[] = {8, 7, 4, 2, 1};
    const int *ps = NB == 1 ? p1 : p2;
    for (int i = 0;; i++)
        if (Wo % ps[i] == 0)
            return ps[i];
}

int convd_supported(const nn_conv2d_dims *d)
{
    if (!CONVD_ENABLED || d->groups != 1 || d->OC % 16 != 0 || d->kh != d->kw)
        return 0;
    if (d->kh == 1 && d->stride == 1 && d->pad == 0)
        return 0; /* a plain GEMM */
    return conv_p(d->Wo, conv_nb(d->OC)) >= CONVD_MIN_P;
}

int convd_dinp_supported(const nn_conv2d_dims *d)
{
    return convd_supported(d) && d->stride == 1 && d->IC % 16 == 0 && d->pad <= d->kh - 1 &&
           conv_p(d->W, conv_nb(d->IC)) >= CONVD_MIN_P;
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
    int khw = d->kh * d->kw, IC = d->IC, OC = d->OC;
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < IC; c++)
            for (int t = 0; t < khw; t++)
                wt[((size_t)t * IC + c) * OC + o] = w[((size_t)o * IC + c) * khw + t];
}

void convd_weights_flip(float *wf, const float *w, const nn_conv2d_dims *d)
{
    int khw = d->kh * d->kw, IC = d->IC, OC = d->OC;
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < IC; c++)
            for (int t = 0; t < khw; t++)
                wf[((size_t)(khw - 1 - t) * OC + o) * IC + c] = w[((size_t)o * IC + c) * khw + t];
}

#if CONVD_ENABLED

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Geometry shared by the tiles of one call. */
typedef struct convd_geom {
    int kh, kw, ICt, OCt, s, Wp; /* taps, channels in/out of this conv, stride, padded width */
} convd_geom;

/* out[p, 0:16*NB] (pixel stride OCt) = or += sum over taps and channels of
 * x[tap + p*s] * wt[tap, c, 0:16*NB]; x is the tile origin in the padded input. */
ALWAYS_INLINE void conv_tile(float *out, const float *x, const float *wt, const float *b,
                             int accumulate, const convd_geom *g, const int P, const int NB)
{
    __m512 acc[16][2];
    const int ICt = g->ICt, OCt = g->OCt, s = g->s;
#pragma GCC unroll 16
    for (int p = 0; p < P; p++)
#pragma GCC unroll 2
        for (int n = 0; n < NB; n++)
            acc[p][n] = accumulate
                            ? _mm512_loadu_ps(out + (size_t)p * OCt + 16 * n)
                            : (b != NULL ? _mm512_loadu_ps(b + 16 * n) : _mm512_setzero_ps());
    for (int i = 0; i < g->kh; i++)
        for (int j = 0; j < g->kw; j++) {
            const float *xr = x + ((size_t)i * g->Wp + j) * ICt;
            const float *wr = wt + (size_t)(i * g->kw + j) * ICt * OCt;
            for (int c = 0; c < ICt; c++) {
                __m512 wv[2];
#pragma GCC unroll 2
                for (int n = 0; n < NB; n++)
                    wv[n] = _mm512_loadu_ps(wr + (size_t)c * OCt + 16 * n);
#pragma GCC unroll 16
                for (int p = 0; p < P; p++) {
                    __m512 xv = _mm512_set1_ps(xr[(size_t)p * s * ICt + c]);
#pragma GCC unroll 2
                    for (int n = 0; n < NB; n++)
                        acc[p][n] = _mm512_fmadd_ps(xv, wv[n], acc[p][n]);
                }
            }
        }
#pragma GCC unroll 16
    for (int p = 0; p < P; p++)
#pragma GCC unroll 2
        for (int n = 0; n < NB; n++)
            _mm512_storeu_ps(out + (size_t)p * OCt + 16 * n, acc[p][n]);
}

/* out (Ho, Wo, OCt) = or += conv of the padded input xpad with wt (kh, kw, ICt, OCt). */
static void conv_image(float *out, const float *xpad, const float *wt, const float *b,
                       int accumulate, const convd_geom *g, int Ho, int Wo)
{
    int NB = conv_nb(g->OCt), P = conv_p(Wo, NB), OCt = g->OCt;
    for (int ho = 0; ho < Ho; ho++)
        for (int wo = 0; wo < Wo; wo += P)
            for (int ocb = 0; ocb < OCt; ocb += 16 * NB) {
                float *o = out + ((size_t)ho * Wo + wo) * OCt + ocb;
                const float *x = xpad + ((size_t)ho * g->s * g->Wp + (size_t)wo * g->s) * g->ICt;
                const float *w = wt + ocb;
                const float *bb = b != NULL ? b + ocb : NULL;
                switch (P * 4 + NB) {
#define CONV_CASE(PP, NN)                                                                          \
    case PP * 4 + NN:                                                                              \
        conv_tile(o, x, w, bb, accumulate, g, PP, NN);                                             \
        break;
                    CONV_CASE(16, 1)
                    CONV_CASE(14, 1)
                    CONV_CASE(8, 1)
                    CONV_CASE(7, 1)
                    CONV_CASE(4, 1)
                    CONV_CASE(2, 1)
                    CONV_CASE(1, 1)
                    CONV_CASE(8, 2)
                    CONV_CASE(7, 2)
                    CONV_CASE(4, 2)
                    CONV_CASE(2, 2)
                    CONV_CASE(1, 2)
#undef CONV_CASE
                default:
                    /* every (P, NB) conv_p can choose has a case; see dw */
                    NN_ASSERT(0);
                    conv_tile(o, x, w, bb, accumulate, g, P, NB);
                }
            }
}

/* dwt[tap, c0:c0+R, ocb:ocb+16*NB] += sum over all pixels of x * dout; the R
 * inputs are consecutive floats from the tap's pixel onwards. */
ALWAYS_INLINE void dw_tile(float *dwt, const float *xpad, const float *dout, int tap_i,
                           const nn_conv2d_dims *d, int Wp, const int R, const int NB)
{
    __m512 acc[24][4];
    const int IC = d->IC, OC = d->OC, s = d->stride, Wo = d->Wo;
#pragma GCC unroll 24
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int n = 0; n < NB; n++)
            acc[r][n] = _mm512_loadu_ps(dwt + (size_t)r * OC + 16 * n);
    for (int ho = 0; ho < d->Ho; ho++) {
        const float *xr = xpad + (size_t)(ho * s + tap_i) * Wp * IC;
        const float *gr = dout + (size_t)ho * Wo * OC;
        for (int wo = 0; wo < Wo; wo++) {
            __m512 gv[4];
#pragma GCC unroll 4
            for (int n = 0; n < NB; n++)
                gv[n] = _mm512_loadu_ps(gr + (size_t)wo * OC + 16 * n);
            const float *xx = xr + (size_t)wo * s * IC;
#pragma GCC unroll 24
            for (int r = 0; r < R; r++) {
                __m512 xv = _mm512_set1_ps(xx[r]);
#pragma GCC unroll 4
                for (int n = 0; n < NB; n++)
                    acc[r][n] = _mm512_fmadd_ps(xv, gv[n], acc[r][n]);
            }
        }
    }
#pragma GCC unroll 24
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int n = 0; n < NB; n++)
            _mm512_storeu_ps(dwt + (size_t)r * OC + 16 * n, acc[r][n]);
}

void convd_forward_image(float *out, const float *xpad, const float *wt, const float *b,
                         const nn_conv2d_dims *d)
{
    convd_geom g = {d->kh, d->kw, d->IC, d->OC, d->stride, d->W + 2 * d->pad};
    conv_image(out, xpad, wt, b, 0, &g, d->Ho, d->Wo);
}

void convd_dinp_image(float *dinp, const float *gpad, const float *wf, const nn_conv2d_dims *d)
{
    int pp = d->kh - 1 - d->pad;
    convd_geom g = {d->kh, d->kw, d->OC, d->IC, 1, d->Wo + 2 * pp};
    conv_image(dinp, gpad, wf, NULL, 1, &g, d->H, d->W);
}

void convd_dw_image(float *dwt, const float *xpad, const float *dout, const nn_conv2d_dims *d)
{
    int IC = d->IC, OC = d->OC, Wp = d->W + 2 * d->pad;
    /* For one kernel row, the (tap column, channel) pairs are contiguous both
     * in a pixel's input run and in dwt, so they form one axis of length
     * kw*IC: a 3-channel stem gets 9-wide tiles instead of 3-wide ones. */
    int KC = d->kw * IC;
    int NB = OC % 64 == 0 ? 4 : (OC % 32 == 0 ? 2 : 1);
    /* up to 24 accumulators: with NB dout vectors and a broadcast, at most
     * 29 of the 32 vector registers */
    static const int rs[] = {24, 16, 12, 9, 8, 6, 4, 3, 2, 1};
    int R = 1;
    for (int i = 0; i < 10; i++)
        if (rs[i] * NB <= 24 && KC % rs[i] == 0) {
            R = rs[i];
            break;
        }
    for (int ti = 0; ti < d->kh; ti++)
        for (int c0 = 0; c0 < KC; c0 += R)
            for (int ocb = 0; ocb < OC; ocb += 16 * NB) {
                float *dd = dwt + ((size_t)ti * KC + c0) * OC + ocb;
                const float *x = xpad + c0;
                const float *g = dout + ocb;
                switch (R * 8 + NB) {
#define DW_CASE(RR, NN)                                                                            \
    case RR * 8 + NN:                                                                              \
        dw_tile(dd, x, g, ti, d, Wp, RR, NN);                                                      \
        break;
                    DW_CASE(24, 1)
                    DW_CASE(16, 1)
                    DW_CASE(12, 1)
                    DW_CASE(12, 2)
                    DW_CASE(9, 2)
                    DW_CASE(6, 4)
                    DW_CASE(9, 1)
                    DW_CASE(6, 1)
                    DW_CASE(6, 2)
                    DW_CASE(8, 1)
                    DW_CASE(4, 1)
                    DW_CASE(3, 1)
                    DW_CASE(2, 1)
                    DW_CASE(1, 1)
                    DW_CASE(8, 2)
                    DW_CASE(4, 2)
                    DW_CASE(3, 2)
                    DW_CASE(2, 2)
                    DW_CASE(1, 2)
                    DW_CASE(4, 4)
                    DW_CASE(3, 4)
                    DW_CASE(2, 4)
                    DW_CASE(1, 4)
#undef DW_CASE
                default:
                    /* every (R, NB) chosen above has a case; this generic
                     * instance (sums in memory, slow) is only a safety net */
                    NN_ASSERT(0);
                    dw_tile(dd, x, g, ti, d, Wp, R, NB);
                }
            }
}

#else /* !CONVD_ENABLED: never called, convd_supported() is false */

void convd_forward_image(float *out, const float *xpad, const float *wt, const float *b,
                         const nn_conv2d_dims *d)
{
    (void)out, (void)xpad, (void)wt, (void)b, (void)d;
    NN_ASSERT(0);
}

void convd_dinp_image(float *dinp, const float *gpad, const float *wf, const nn_conv2d_dims *d)
{
    (void)dinp, (void)gpad, (void)wf, (void)d;
    NN_ASSERT(0);
}

void convd_dw_image(float *dwt, const float *xpad, const float *dout, const nn_conv2d_dims *d)
{
    (void)dwt, (void)xpad, (void)dout, (void)d;
    NN_ASSERT(0);
}

#endif
