/* conv_direct.h - direct convolution kernels, internal to conv.c.
 *
 * Register-blocked NHWC convolution of one image at a time, over a
 * zero-padded copy of the image, with no im2col: a tile of P output pixels
 * times NB vectors of output channels lives in registers while the taps and
 * input channels stream past. Built for every kernel path: vectors of 16
 * floats with AVX-512 (32 registers), 8 with AVX2 and 4 on the generic path
 * (16 registers), with tile shapes to match. Channel counts that are not a
 * multiple of the vector width run on channels padded up to one
 * (convd_channels): the weights are zero-padded and the caller passes padded
 * output and dout images, then keeps the real channels. conv.c falls back to
 * im2col + GEMM where no tile fits. Pure functions: no allocation, no I/O, no
 * threads (conv.c splits the work).
 */
#ifndef KILN_NN_CONV_DIRECT_H
#define KILN_NN_CONV_DIRECT_H

#include "worker/nn/conv.h"

/* C rounded up to a whole number of vectors. */
int convd_channels(int C);

/* Whether the forward and the weight gradient can run directly (groups 1,
 * square kernel, not a plain 1x1 GEMM, a tile wide enough for the output row,
 * at least half a vector of output channels). */
int convd_supported(const nn_conv2d_dims *d);

/* Whether the input gradient can run directly too: the stride-1 transposed
 * convolution is a convolution of the padded dout with flipped weights,
 * which needs pad <= k - 1 and a tile for the input row. */
int convd_dinp_supported(const nn_conv2d_dims *d);

/* dst (H + 2*pad, W + 2*pad, C) = src (H, W, C) with a zero border. */
void convd_pad(float *dst, const float *src, int H, int W, int C, int pad);

/* wt (kh, kw, IC, OCp) from w (OC, IC, kh, kw), OCp = convd_channels(OC),
 * the padded channels zero. */
void convd_weights_hwio(float *wt, const float *w, const nn_conv2d_dims *d);

/* wf (kh, kw, OC, ICp) = w (OC, IC, kh, kw) flipped in both spatial dims,
 * ICp = convd_channels(IC), the padded channels zero. */
void convd_weights_flip(float *wf, const float *w, const nn_conv2d_dims *d);

/* out (Ho, Wo, OCp) = conv(xpad (H+2p, W+2p, IC), wt) + b (OCp floats, or
 * NULL). */
void convd_forward_image(float *out, const float *xpad, const float *wt, const float *b,
                         const nn_conv2d_dims *d);

/* dinp (H, W, ICp) = (accumulate: +=) the transposed conv of gpad (dout
 * padded by k-1-pad, OC channels) with wf. */
void convd_dinp_image(float *dinp, const float *gpad, const float *wf, const nn_conv2d_dims *d,
                      int accumulate);

/* dwt (kh, kw, IC, OCp) += sum over the pixels of xpad under each tap times
 * dout (Ho, Wo, OCp). */
void convd_dw_image(float *dwt, const float *xpad, const float *dout, const nn_conv2d_dims *d);

#endif
