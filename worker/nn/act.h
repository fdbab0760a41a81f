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

/* torch.nn.Hardswish: x * min(max(x + 3, 0), 6) / 6; gradient 0 below -3, x/3 + 1/2
 * on [-3, 3], 1 above (PyTorch's). Backward reads the input. */
void nn_hswish_forward(float *out, const float *inp, size_t n);
void nn_hswish_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* torch.nn.Hardsigmoid: min(max(x + 3, 0), 6) / 6; gradient 1/6 strictly inside
 * (-3, 3), else 0. Backward reads the input. */
void nn_hsigmoid_forward(float *out, const float *inp, size_t n);
void nn_hsigmoid_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* sigmoid(x) = 1 / (1 + e^-x) and SiLU (swish) x * sigmoid(x), to about 2 ulp;
 * gradients s (1 - s) and s (1 + x (1 - s)). Backward reads the input. */
void nn_sigmoid_forward(float *out, const float *inp, size_t n);
void nn_sigmoid_backward(float *dinp, const float *dout, const float *inp, size_t n);
void nn_silu_forward(float *out, const float *inp, size_t n);
void nn_silu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* Squeeze-excitation's scale: out[b, p, c] = x[b, p, c] * s[b, c] for B samples of HW
 * positions and C channels (channels-last). Backward accumulates dx += dout * s and
 * ds[b, c] += sum_p dout * x; dx or ds may be NULL (not wanted). */
void nn_chmul_forward(float *out, const float *x, const float *s, int B, int HW, int C);
void nn_chmul_backward(float *dx, float *ds, const float *dout, const float *x, const float *s,
                       int B, int HW, int C);

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
