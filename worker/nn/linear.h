/* linear.h - fully connected layer over the last dim: y = x W^T + b.
 *
 * inp (N, IN), w (OUT, IN) as in PyTorch, b (OUT) or NULL, out (N, OUT).
 * One GEMM each way. Pure; see tensor.h for the kernel contract.
 */
#ifndef KILN_NN_LINEAR_H
#define KILN_NN_LINEAR_H

void nn_linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int IN,
                       int OUT);

/* Accumulates dinp (N, IN), dw (OUT, IN), db (OUT); any may be NULL. */
void nn_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, int N, int IN, int OUT);

#endif
