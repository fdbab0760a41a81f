/* dropout.h - dropout and drop-path (per-sample stochastic depth).
 *
 * Both scale kept values by 1/(1-p) in training and are the identity at
 * p = 0 or in eval (callers simply skip them). Masks are drawn from an
 * explicit rng and saved for the backward pass. Pure apart from the rng;
 * see tensor.h for the kernel contract (backward accumulates).
 */
#ifndef KILN_NN_DROPOUT_H
#define KILN_NN_DROPOUT_H

#include "common/rng.h"

#include <stddef.h>

/* Elementwise: mask (n) receives 0 or 1/(1-p); out = inp * mask. 0 <= p < 1. */
void nn_dropout_forward(float *out, float *mask, const float *inp, size_t n, float p, rng *r);
void nn_dropout_backward(float *dinp, const float *dout, const float *mask, size_t n);

/* Per sample: each of the B samples (rows of `per_sample` floats) is kept
 * whole, scaled by 1/(1-p), or zeroed; mask (B) receives the scale. */
void nn_droppath_forward(float *out, float *mask, const float *inp, int B, size_t per_sample,
                         float p, rng *r);
void nn_droppath_backward(float *dinp, const float *dout, const float *mask, int B,
                          size_t per_sample);

#endif
