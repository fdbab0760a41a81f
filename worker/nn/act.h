/* act.h - elementwise activations and elementwise arithmetic.
 *
 * GELU is the exact erf form 0.5*x*(1 + erf(x/sqrt(2))). ReLU and ReLU6
 * backward read the forward *output* (y > 0, 0 < y < 6), so they may run
 * in place; their gradient is 0 at and beyond the kinks. Pure; see
 * tensor.h for the kernel contract (backward accumulates).
 */
#ifndef KILN_NN_ACT_H
#define KILN_NN_ACT_H

#include <stddef.h>

void nn_gelu_forward(float *out, const float *inp, size_t n);
void nn_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);

void nn_relu_forward(float *out, const float *inp, size_t n);
void nn_relu_backward(float *dinp, const float *dout, const float *out, size_t n);

void nn_relu6_forward(float *out, const float *inp, size_t n);
void nn_relu6_backward(float *dinp, const float *dout, const float *out, size_t n);

/* out = a + b. */
void nn_add_forward(float *out, const float *a, const float *b, size_t n);
/* dst += src. */
void nn_accumulate(float *dst, const float *src, size_t n);
/* dst = 0 + src: what nn_accumulate gives into a zeroed dst (a -0 becomes +0), in one
 * pass instead of two. */
void nn_assign(float *dst, const float *src, size_t n);
/* dst += s * src. */
void nn_axpy(float *dst, float s, const float *src, size_t n);

#endif
