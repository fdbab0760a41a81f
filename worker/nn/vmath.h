/* vmath.h - vectorisable exp and normal-CDF helpers for the kernels (private to worker/nn).
 *
 * libm's expf/erff are scalar calls that stop gcc from vectorising a loop (libmvec is only
 * used under -ffast-math, which kiln does not use). These static inline functions use only
 * arithmetic, compares and bit casts, so a loop calling them under `#pragma omp simd`
 * compiles to AVX-512 code. Accuracy is stated per function and is checked against libm in
 * double by tests/unit/check_act.c. Pure functions, no state: thread-safe.
 */
#ifndef KILN_NN_VMATH_H
#define KILN_NN_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* 2^n for an integer-valued float n in [-126, 127], built from the exponent bits. */
static inline float vmath_pow2i(float n)
{
    int32_t bits = ((int32_t)n + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* exp(x - lo) for x in [-87.3, 88.7] and |lo| tiny beside 1 (a correction term), within
 * about 2 ulp. Below -87.3 (where the result would be denormal) it returns 0, above 88.7
 * +inf; NaN propagates. The polynomial is a relative minimax fit of degree 6 on
 * [-ln2/2, ln2/2] (max error 1.9e-9), after Cody-Waite reduction x = n ln2 + r. */
static inline float vmath_exp_lo(float x, float lo)
{
    const float lo_lim = -87.33f, hi_lim = 88.72f;
    float xc = x < lo_lim ? lo_lim : x;
    xc = xc > hi_lim ? hi_lim : xc;
    /* n = round(x / ln2) by the 1.5*2^23 trick (round to nearest even). */
    const float shifter = 12582912.0f;
    float n = (xc * 1.44269504f + shifter) - shifter;
    float r = xc - n * 0.693359375f; /* ln2 high part: 9 bits, so n*hi is exact */
    r = r - n * -2.12194440e-4f;     /* ln2 - high part */
    r = r - lo;
    float p = 1.3836742503e-03f;
    p = p * r + 8.3748986834e-03f;
    p = p * r + 4.1668231812e-02f;
    p = p * r + 1.6666419187e-01f;
    p = p * r + 4.9999992032e-01f;
    p = p * r + 1.0000000365e+00f;
    p = p * r + 1.0000000006e+00f;
    /* n can reach 128 at the top of the range: split the scale so 2^n never overflows early. */
    float half = n > 0.0f ? 1.0f : 0.0f;
    float y = p * vmath_pow2i(n - half) * (half + 1.0f);
    y = x < lo_lim ? 0.0f : y;
    return x > hi_lim ? INFINITY : y;
}

static inline float vmath_exp(float x)
{
    return vmath_exp_lo(x, 0.0f);
}

/* The standard normal CDF Phi(x) = 0.5 erfc(-x/sqrt(2)) and density e^(-x^2/2)/sqrt(2 pi),
 * both with relative error below about 5e-7 wherever they are normal floats (|x| < 13).
 *
 * With z = |x|/sqrt(2): erfc(z) = e^(-z^2) R(z), R(z) = t P(t), t = 1/(1 + a z), a = 0.36,
 * where P is a degree-9 relative minimax fit on t in [0, 1] (max error 3.5e-8; P(0) = a /
 * sqrt(pi) so large z is covered too). e^(-x^2/2) is computed from x^2 split exactly into
 * hi + lo with an FMA, because rounding x^2 alone would cost 2e-5 relative at |x| = 13.
 * For x >= 0, Phi = 1 - erfc/2; for x < 0, Phi = erfc/2 with no cancellation, so
 * GELU(x) = x Phi(x) keeps its relative accuracy far into the negative tail. */
static inline void vmath_normal(float x, float *cdf, float *pdf)
{
    float sq = x * x;
    float sq_lo = fmaf(x, x, -sq);
    float e = vmath_exp_lo(-0.5f * sq, 0.5f * sq_lo); /* e^(-x^2/2) */
    float z = (x < 0.0f ? -x : x) * 0.707106781f;
    float t = 1.0f / (1.0f + 0.36f * z);
    float p = 3.7662029937e-02f;
    p = p * t + -1.4196783483e-01f;
    p = p * t + 1.4342282534e-01f;
    p = p * t + -2.8634314461e-02f;
    p = p * t + 1.0651537840e-01f;
    p = p * t + 1.2292536637e-01f;
    p = p * t + 1.6391655835e-01f;
    p = p * t + 1.8994404587e-01f;
    p = p * t + 2.0310772301e-01f;
    p = p * t + 2.0310825723e-01f;
    float half_erfc = 0.5f * e * (t * p);
    *cdf = x < 0.0f ? half_erfc : 1.0f - half_erfc;
    *pdf = e * 0.398942280f;
}

#endif
