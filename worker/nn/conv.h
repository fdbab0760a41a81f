/* conv.h - 2-D convolution over channels-last activations.
 *
 * Any kernel size, stride, padding and groups (groups == IC == OC is the
 * depthwise case). Zero padding, cross-correlation, PyTorch's output size
 * Ho = (H + 2*pad - kh)/stride + 1. Weights are (OC, IC/groups, kh, kw) as
 * in PyTorch. The algorithm (plain GEMM for 1x1, im2col + GEMM, direct
 * loops for depthwise) is chosen per shape inside the kernel; callers only
 * size the scratch with nn_conv2d_scratch_floats. Pure; see tensor.h for the
 * shared kernel contract (backward accumulates).
 */
#ifndef KILN_NN_CONV_H
#define KILN_NN_CONV_H

#include <stddef.h>

typedef struct nn_conv2d_dims {
    int B, H, W, IC; /* input (B, H, W, IC) */
    int OC, kh, kw, stride, pad, groups;
    int Ho, Wo; /* output (B, Ho, Wo, OC); set by nn_conv2d_dims_init */
} nn_conv2d_dims;

/* Fills d and derives Ho, Wo. Asserts groups divides IC and OC and Ho, Wo >= 1. */
void nn_conv2d_dims_init(nn_conv2d_dims *d, int B, int H, int W, int IC, int OC, int k, int stride,
                         int pad, int groups);

/* Floats of scratch that forward and backward need for these dims (0 allowed). */
size_t nn_conv2d_scratch_floats(const nn_conv2d_dims *d);

/* out (B, Ho, Wo, OC) = conv(inp (B, H, W, IC), w (OC, IC/g, kh, kw)) + b (OC).
 * b may be NULL. out is overwritten. */
void nn_conv2d_forward(float *out, const float *inp, const float *w, const float *b,
                       const nn_conv2d_dims *d, float *scratch);

/* Accumulates dinp (B, H, W, IC), dw (OC, IC/g, kh, kw), db (OC) from
 * dout (B, Ho, Wo, OC). Any of dinp, dw, db may be NULL. */
void nn_conv2d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const nn_conv2d_dims *d, float *scratch);

#endif
