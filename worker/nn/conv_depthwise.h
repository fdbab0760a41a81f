/* conv_depthwise.h - depthwise convolution kernels, internal to conv.c.
 *
 * A depthwise convolution (groups == IC == OC) of channels-last images with
 * kernels of up to CONVDW_MAX_TAPS taps; conv.c runs larger ones through
 * im2col. Built for every kernel path. No allocation, no I/O; OpenMP inside.
 */
#ifndef KILN_NN_CONV_DEPTHWISE_H
#define KILN_NN_CONV_DEPTHWISE_H

#include "worker/nn/conv.h"

#include <stddef.h>

#define CONVDW_MAX_TAPS 64 /* kernels up to 8x8 */

/* Whether d is a depthwise convolution these kernels run. */
int convdw_supported(const nn_conv2d_dims *d);

/* The scratch floats of both passes with `parts` parts of the weight gradient. */
size_t convdw_scratch_floats(const nn_conv2d_dims *d, int parts);

/* out (B, Ho, Wo, C) = the convolution of inp (B, H, W, C) with w (C, 1, kh, kw)
 * plus b (C, may be NULL). */
void convdw_forward(float *out, const float *inp, const float *w, const float *b,
                    const nn_conv2d_dims *d, float *scratch);

/* Accumulates the input gradient into dinp and the weight gradient into dw (either
 * may be NULL), the latter summed over `parts` fixed parts of the output rows in part
 * order. The bias gradient is conv.c's. */
void convdw_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                     const nn_conv2d_dims *d, int parts, float *scratch);

#endif
