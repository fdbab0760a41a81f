/* conv_direct.h - direct AVX-512 convolution kernels, internal to conv.c.
 *
 * Register-blocked NHWC convolution of one image at a time, over a
 * zero-padded copy of the image, with no im2col: a tile of P output pixels
 * times 16*NB output channels lives in registers while the taps and input
 * channels stream past. Used by conv.c for dense convolutions whose output
 * channels are a multiple of 16 (ResNet, the stems); conv.c falls back to
 * im2col + GEMM where these do not apply or AVX-512 is not compiled in.
 * Pure functions: no allocation, no I/O, no threads (conv.c splits work).
 */
#ifndef KILN_NN_CONV_DIRECT_H
#define KILN_NN_CONV_DIRECT_H

#include "worker/nn/conv.h"

/* Whether the forward and the weight gradient can run directly (AVX-512
 * built in, groups 1, OC % 16 == 0). */
int convd_supported(const nn_conv2d_dims *d);

/* Whether the input gradient can run directly too: the stride-1 transposed
 * convolution is a convolution of the padded dout with flipped weights,
 * which needs IC % 16 == 0 and pad <= k - 1. */
int convd_dinp_supported(const nn_conv2d_dims *d);

/* dst (H + 2*pad, W + 2*pad, C) = src (H, W, C) with a zero border. */
void convd_pad(float *dst, const float *src, int H, int W, int C, int pad);

/* wt (kh, kw, IC, OC) from w (OC, IC, kh, kw). */
void convd_weights_hwio(float *wt, const float *w, const nn_conv2d_dims *d);

/* wf (kh, kw, OC, IC) = w (OC, IC, kh, kw) flipped in both spatial dims. */
void convd_weights_flip(float *wf, const float *w, const nn_conv2d_dims *d);

/* out (Ho, Wo, OC) = conv(xpad (H+2p, W+2p, IC), wt) + b (b may be NULL). */
void convd_forward_image(float *out, const float *xpad, const float *wt, const float *b,
                         const nn_conv2d_dims *d);

/* dinp (H, W, IC) += transposed conv of gpad (dout padded by k-1-pad) with wf. */
void convd_dinp_image(float *dinp, const float *gpad, const float *wf, const nn_conv2d_dims *d);

/* dwt (kh, kw, IC, OC) += sum over the pixels of xpad under each tap times dout (Ho, Wo, OC). */
void convd_dw_image(float *dwt, const float *xpad, const float *dout, const nn_conv2d_dims *d);

#endif
