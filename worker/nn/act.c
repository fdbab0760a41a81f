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
