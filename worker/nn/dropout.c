/* dropout.c - dropout and drop-path with masks from an explicit rng (see dropout.h).
 *
 * The masks are drawn sequentially from the caller's rng (one uniform per element or
 * per sample, kept when u >= p), so a seed fixes them whatever the thread count; the
 * elementwise products are split over the OpenMP threads. At p = 0 nothing is drawn
 * and the mask is all ones. Depends on common/rng and OpenMP; not thread-safe per rng.
 */
#include "worker/nn/dropout.h"

#include "worker/nn/tensor.h"

#define DROP_PAR_MIN (1 << 15)

void nn_dropout_forward(float *out, float *mask, const float *inp, size_t n, float p, rng *r)
{
    NN_ASSERT(out != NULL && mask != NULL && inp != NULL && r != NULL);
    NN_ASSERT(p >= 0.0f && p < 1.0f);
    float keep = 1.0f / (1.0f - p);
    if (p == 0.0f) {
        for (size_t i = 0; i < n; i++)
            mask[i] = 1.0f;
    } else {
        for (size_t i = 0; i < n; i++)
            mask[i] = rng_uniform(r) >= p ? keep : 0.0f;
    }
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (n >= DROP_PAR_MIN)
    for (long i = 0; i < len; i++)
        out[i] = inp[i] * mask[i];
}

void nn_dropout_backward(float *dinp, const float *dout, const float *mask, size_t n)
{
    NN_ASSERT(dinp != NULL && dout != NULL && mask != NULL);
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (n >= DROP_PAR_MIN)
    for (long i = 0; i < len; i++)
        dinp[i] += dout[i] * mask[i];
}

void nn_droppath_forward(float *out, float *mask, const float *inp, int B, size_t per_sample,
                         float p, rng *r)
{
    NN_ASSERT(out != NULL && mask != NULL && inp != NULL && r != NULL && B >= 0);
    NN_ASSERT(p >= 0.0f && p < 1.0f);
    float keep = 1.0f / (1.0f - p);
    for (int b = 0; b < B; b++)
        mask[b] = (p == 0.0f || rng_uniform(r) >= p) ? keep : 0.0f;
    long len = (long)B * (long)per_sample;
#pragma omp parallel for schedule(static) if (len >= DROP_PAR_MIN)
    for (int b = 0; b < B; b++) {
        const float *x = inp + (size_t)b * per_sample;
        float *y = out + (size_t)b * per_sample;
        float m = mask[b];
#pragma omp simd
        for (size_t i = 0; i < per_sample; i++)
            y[i] = x[i] * m;
    }
}

void nn_droppath_backward(float *dinp, const float *dout, const float *mask, int B,
                          size_t per_sample)
{
    NN_ASSERT(dinp != NULL && dout != NULL && mask != NULL && B >= 0);
    long len = (long)B * (long)per_sample;
#pragma omp parallel for schedule(static) if (len >= DROP_PAR_MIN)
    for (int b = 0; b < B; b++) {
        const float *g = dout + (size_t)b * per_sample;
        float *d = dinp + (size_t)b * per_sample;
        float m = mask[b];
#pragma omp simd
        for (size_t i = 0; i < per_sample; i++)
            d[i] += g[i] * m;
    }
}
