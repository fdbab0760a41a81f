/* act.c - elementwise activations and arithmetic (see act.h).
 *
 * Every loop is vectorised (`omp simd`) and split over the OpenMP threads once
 * it is large enough to pay for the fork; each element is computed the same
 * way whatever the thread count, so results never depend on it. GELU uses
 * vmath_normal (vmath.h): exact-erf GELU to about 5e-7 relative, without libm
 * calls in the loop. Depends on libc/libm and OpenMP only; thread-safe.
 */
#include "worker/nn/act.h"

#include "worker/nn/tensor.h"
#include "worker/nn/vmath.h"

/* Below this many elements a loop runs on the calling thread only. */
#define ACT_PAR_MIN (1 << 15)
/* GELU costs ~40 flops an element, so it pays to split sooner. */
#define GELU_PAR_MIN (1 << 12)

void nn_gelu_forward(float *out, const float *inp, size_t n)
{
    NN_ASSERT(out != NULL && inp != NULL);
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (parallel : n >= GELU_PAR_MIN)
    for (long i = 0; i < len; i++) {
        float cdf, pdf;
        vmath_normal(inp[i], &cdf, &pdf);
        out[i] = inp[i] * cdf;
    }
}

void nn_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
    NN_ASSERT(dinp != NULL && dout != NULL && inp != NULL);
    long len = (long)n;
    /* d/dx x Phi(x) = Phi(x) + x phi(x). */
#pragma omp parallel for simd schedule(static) if (parallel : n >= GELU_PAR_MIN)
    for (long i = 0; i < len; i++) {
        float cdf, pdf;
        float x = inp[i];
        vmath_normal(x, &cdf, &pdf);
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}

void nn_relu_forward(float *out, const float *inp, size_t n)
{
    NN_ASSERT(out != NULL && inp != NULL);
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (parallel : n >= ACT_PAR_MIN)
    for (long i = 0; i < len; i++)
        out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void nn_relu_backward(float *dinp, const float *dout, const float *out, size_t n)
{
    NN_ASSERT(dinp != NULL && dout != NULL && out != NULL);
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (parallel : n >= ACT_PAR_MIN)
    for (long i = 0; i < len; i++)
        dinp[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}

void nn_relu6_forward(float *out, const float *inp, size_t n)
{
    NN_ASSERT(out != NULL && inp != NULL);
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (parallel : n >= ACT_PAR_MIN)
    for (long i = 0; i < len; i++) {
        float x = inp[i] > 0.0f ? inp[i] : 0.0f;
        out[i] = x < 6.0f ? x : 6.0f;
    }
}

void nn_relu6_backward(float *dinp, const float *dout, const float *out, size_t n)
{
    NN_ASSERT(dinp != NULL && dout != NULL && out != NULL);
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (parallel : n >= ACT_PAR_MIN)
    for (long i = 0; i < len; i++)
        dinp[i] += (out[i] > 0.0f && out[i] < 6.0f) ? dout[i] : 0.0f;
}

void nn_add_forward(float *out, const float *a, const float *b, size_t n)
{
    NN_ASSERT(out != NULL && a != NULL && b != NULL);
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (parallel : n >= ACT_PAR_MIN)
    for (long i = 0; i < len; i++)
        out[i] = a[i] + b[i];
}

void nn_accumulate(float *dst, const float *src, size_t n)
{
    NN_ASSERT(dst != NULL && src != NULL);
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (parallel : n >= ACT_PAR_MIN)
    for (long i = 0; i < len; i++)
        dst[i] += src[i];
}

void nn_assign(float *dst, const float *src, size_t n)
{
    NN_ASSERT(dst != NULL && src != NULL);
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (parallel : n >= ACT_PAR_MIN)
    for (long i = 0; i < len; i++)
        dst[i] = 0.0f + src[i];
}

void nn_axpy(float *dst, float s, const float *src, size_t n)
{
    NN_ASSERT(dst != NULL && src != NULL);
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (parallel : n >= ACT_PAR_MIN)
    for (long i = 0; i < len; i++)
        dst[i] += s * src[i];
}

/* ---- MobileNetV3 / EfficientNet activations ---------------------------------- */

/* sigmoid(x) = 1 / (1 + e^-x), with the exponent never positive. */
static inline float sigmoidf_(float x)
{
    float e = vmath_exp_neg(x >= 0.0f ? -x : x, 0.0f);
    return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

void nn_hswish_forward(float *out, const float *inp, size_t n)
{
    NN_ASSERT(out != NULL && inp != NULL);
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (parallel : n >= ACT_PAR_MIN)
    for (long i = 0; i < len; i++) {
        float x = inp[i], r = x + 3.0f;
        r = r > 0.0f ? r : 0.0f;
        r = r < 6.0f ? r : 6.0f;
        out[i] = x * r / 6.0f;
    }
}

void nn_hswish_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
    NN_ASSERT(dinp != NULL && dout != NULL && inp != NULL);
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (parallel : n >= ACT_PAR_MIN)
    for (long i = 0; i < len; i++) {
        float x = inp[i];
        dinp[i] += x < -3.0f ? 0.0f : x <= 3.0f ? dout[i] * (x / 3.0f + 0.5f) : dout[i];
    }
}

void nn_hsigmoid_forward(float *out, const float *inp, size_t n)
{
    NN_ASSERT(out != NULL && inp != NULL);
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (parallel : n >= ACT_PAR_MIN)
    for (long i = 0; i < len; i++) {
        float r = inp[i] + 3.0f;
        r = r > 0.0f ? r : 0.0f;
        r = r < 6.0f ? r : 6.0f;
        out[i] = r / 6.0f;
    }
}

void nn_hsigmoid_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
    NN_ASSERT(dinp != NULL && dout != NULL && inp != NULL);
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (parallel : n >= ACT_PAR_MIN)
    for (long i = 0; i < len; i++)
        dinp[i] += (inp[i] > -3.0f && inp[i] < 3.0f) ? dout[i] * (1.0f / 6.0f) : 0.0f;
}

void nn_sigmoid_forward(float *out, const float *inp, size_t n)
{
    NN_ASSERT(out != NULL && inp != NULL);
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (parallel : n >= GELU_PAR_MIN)
    for (long i = 0; i < len; i++)
        out[i] = sigmoidf_(inp[i]);
}

void nn_sigmoid_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
    NN_ASSERT(dinp != NULL && dout != NULL && inp != NULL);
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (parallel : n >= GELU_PAR_MIN)
    for (long i = 0; i < len; i++) {
        float s = sigmoidf_(inp[i]);
        dinp[i] += dout[i] * (1.0f - s) * s;
    }
}

void nn_silu_forward(float *out, const float *inp, size_t n)
{
    NN_ASSERT(out != NULL && inp != NULL);
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (parallel : n >= GELU_PAR_MIN)
    for (long i = 0; i < len; i++)
        out[i] = inp[i] * sigmoidf_(inp[i]);
}

void nn_silu_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
    NN_ASSERT(dinp != NULL && dout != NULL && inp != NULL);
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (parallel : n >= GELU_PAR_MIN)
    for (long i = 0; i < len; i++) {
        float x = inp[i], s = sigmoidf_(x);
        dinp[i] += dout[i] * (s * (1.0f + x * (1.0f - s)));
    }
}

void nn_chmul_forward(float *out, const float *x, const float *s, int B, int HW, int C)
{
    NN_ASSERT(out != NULL && x != NULL && s != NULL);
    long rows = (long)B * HW;
#pragma omp parallel for schedule(static) if (parallel : (size_t)rows * C >= ACT_PAR_MIN)
    for (long r = 0; r < rows; r++) {
        const float *sc = s + (r / HW) * C;
        const float *xr = x + r * C;
        float *o = out + r * C;
#pragma omp simd
        for (int c = 0; c < C; c++)
            o[c] = xr[c] * sc[c];
    }
}

void nn_chmul_backward(float *dx, float *ds, const float *dout, const float *x, const float *s,
                       int B, int HW, int C)
{
    NN_ASSERT(dout != NULL && x != NULL && s != NULL);
#pragma omp parallel for schedule(static) if (parallel : (size_t)B * HW * C >= ACT_PAR_MIN)
    for (int b = 0; b < B; b++) {
        const float *sc = s + (size_t)b * C;
        for (int p = 0; p < HW; p++) {
            size_t r = ((size_t)b * HW + p) * C;
            if (dx != NULL) {
#pragma omp simd
                for (int c = 0; c < C; c++)
                    dx[r + c] += dout[r + c] * sc[c];
            }
            if (ds != NULL) {
                float *d = ds + (size_t)b * C;
#pragma omp simd
                for (int c = 0; c < C; c++)
                    d[c] += dout[r + c] * x[r + c];
            }
        }
    }
}
