/* pooling.c - max-pooling and global average pooling, channels-last (see pooling.h).
 *
 * Max-pool scans each window in (row, column) order and keeps the first
 * maximum (a NaN wins, as in PyTorch), recording its flat input index; the
 * backward routes each output gradient there. Loops vectorise over C and
 * run in parallel over output rows (forward) or images (backward, whose
 * windows overlap only within an image). Pure: no allocation, no I/O.
 */
#include "worker/nn/pooling.h"

#include "worker/nn/tensor.h"

#define POOL_PAR_MIN (1 << 14) /* fewer elements than this run on one thread */

#include <limits.h>
#include <math.h>
#include <stddef.h>

int nn_maxpool_out_size(int H, int k, int stride, int pad)
{
    NN_ASSERT(k >= 1 && stride >= 1 && pad >= 0 && H + 2 * pad >= k);
    return (H + 2 * pad - k) / stride + 1;
}

void nn_maxpool2d_forward(float *out, int *argmax, const float *inp, int B, int H, int W, int C,
                          int k, int stride, int pad)
{
    NN_ASSERT(out != NULL && argmax != NULL && inp != NULL);
    NN_ASSERT(B >= 1 && H >= 1 && W >= 1 && C >= 1);
    /* As in PyTorch: every window then holds at least one real element. */
    NN_ASSERT(pad <= k / 2);
    NN_ASSERT((size_t)B * H * W * C <= (size_t)INT_MAX);
    int Ho = nn_maxpool_out_size(H, k, stride, pad);
    int Wo = nn_maxpool_out_size(W, k, stride, pad);
    int nrows = B * Ho;
#pragma omp parallel for schedule(static) if ((size_t)nrows * Wo * C * k * k >= POOL_PAR_MIN)
    for (int row = 0; row < nrows; row++) {
        int b = row / Ho, ho = row % Ho;
        for (int wo = 0; wo < Wo; wo++) {
            float *o = out + ((size_t)row * Wo + wo) * C;
            int *a = argmax + ((size_t)row * Wo + wo) * C;
            /* PyTorch's rule: start at -inf with the window's first real
             * element as index, then take any larger value or any NaN. */
            int i0 = ho * stride - pad < 0 ? pad - ho * stride : 0;
            int j0 = wo * stride - pad < 0 ? pad - wo * stride : 0;
            int first =
                (int)((((size_t)b * H + ho * stride - pad + i0) * W + wo * stride - pad + j0) * C);
            for (int c = 0; c < C; c++) {
                o[c] = -INFINITY;
                a[c] = first + c;
            }
            for (int i = i0; i < k; i++) {
                int hi = ho * stride - pad + i;
                if (hi >= H)
                    break;
                for (int j = j0; j < k; j++) {
                    int wi = wo * stride - pad + j;
                    if (wi >= W)
                        break;
                    int base = (int)((((size_t)b * H + hi) * W + wi) * C);
                    const float *x = inp + base;
                    /* branch-free selects, so that the loop vectorises */
                    for (int c = 0; c < C; c++) {
                        float v = x[c], m = o[c];
                        int take = (v > m) | (v != v);
                        o[c] = take ? v : m;
                        a[c] = take ? base + c : a[c];
                    }
                }
            }
        }
    }
}

void nn_maxpool2d_backward(float *dinp, const float *dout, const int *argmax, int B, int Ho, int Wo,
                           int C)
{
    NN_ASSERT(dinp != NULL && dout != NULL && argmax != NULL);
    size_t per = (size_t)Ho * Wo * C;
    /* An image's outputs only point into that image, so images never collide. */
#pragma omp parallel for schedule(static) if (per * B >= POOL_PAR_MIN)
    for (int b = 0; b < B; b++) {
        const float *g = dout + (size_t)b * per;
        const int *a = argmax + (size_t)b * per;
        for (size_t i = 0; i < per; i++)
            dinp[a[i]] += g[i];
    }
}

void nn_avgpool_forward(float *out, const float *inp, int B, int S, int C)
{
    NN_ASSERT(out != NULL && inp != NULL && B >= 1 && S >= 1 && C >= 1);
#pragma omp parallel for schedule(static) if ((size_t)B * S * C >= POOL_PAR_MIN)
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * C;
        const float *x = inp + (size_t)b * S * C;
        for (int c = 0; c < C; c++)
            o[c] = 0.0f;
        for (int s = 0; s < S; s++)
            for (int c = 0; c < C; c++)
                o[c] += x[(size_t)s * C + c];
        for (int c = 0; c < C; c++)
            o[c] /= (float)S;
    }
}

void nn_avgpool_backward(float *dinp, const float *dout, int B, int S, int C)
{
    NN_ASSERT(dinp != NULL && dout != NULL && B >= 1 && S >= 1 && C >= 1);
    float inv = 1.0f / (float)S;
#pragma omp parallel for schedule(static) if ((size_t)B * S * C >= POOL_PAR_MIN)
    for (int b = 0; b < B; b++) {
        const float *g = dout + (size_t)b * C;
        float *dx = dinp + (size_t)b * S * C;
        for (int s = 0; s < S; s++)
            for (int c = 0; c < C; c++)
                dx[(size_t)s * C + c] += g[c] * inv;
    }
}
