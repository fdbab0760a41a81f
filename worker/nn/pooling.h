/* pooling.h - max-pooling and global average pooling, channels-last.
 *
 * Max-pool pads with -inf and routes each output's gradient to the window's
 * (first) maximum, recorded as an index by the forward pass. Pure; see
 * tensor.h for the kernel contract (backward accumulates).
 */
#ifndef KILN_NN_POOLING_H
#define KILN_NN_POOLING_H

/* Output side for a max-pool: (H + 2*pad - k)/stride + 1. */
int nn_maxpool_out_size(int H, int k, int stride, int pad);

/* out (B, Ho, Wo, C); argmax (B, Ho, Wo, C) receives the flat index into inp
 * of the chosen element, for the backward pass. */
void nn_maxpool2d_forward(float *out, int *argmax, const float *inp, int B, int H, int W, int C,
                          int k, int stride, int pad);
void nn_maxpool2d_backward(float *dinp, const float *dout, const int *argmax, int B, int Ho, int Wo,
                           int C);

/* out (B, C) = mean over the S = H*W positions of inp (B, S, C). */
void nn_avgpool_forward(float *out, const float *inp, int B, int S, int C);
void nn_avgpool_backward(float *dinp, const float *dout, int B, int S, int C);

#endif
