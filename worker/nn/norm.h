/* norm.h - batch normalisation and layer normalisation, channels-last.
 *
 * BatchNorm normalises each channel over all N rows (N = B*H*W). Training
 * mode uses the batch mean and the biased variance, and updates the running
 * statistics with PyTorch's rule: rm = (1-m)*rm + m*mean,
 * rv = (1-m)*rv + m*var*N/(N-1). Eval mode uses the running statistics.
 * LayerNorm normalises each row over its C channels (biased variance, eps
 * inside the sqrt). Pure; see tensor.h for the kernel contract.
 */
#ifndef KILN_NN_NORM_H
#define KILN_NN_NORM_H

/* Training-mode BN. out (N, C); mean, rstd (C) are saved for backward.
 * run_mean/run_var (C) are updated with `momentum` unless they are NULL.
 * A momentum of 1 stores exactly this batch's statistics. */
void nn_batchnorm_forward_train(float *out, float *mean, float *rstd, float *run_mean,
                                float *run_var, const float *inp, const float *w, const float *b,
                                int N, int C, float eps, float momentum);

/* Backward of the training-mode forward (batch statistics). */
void nn_batchnorm_backward_train(float *dinp, float *dw, float *db, const float *dout,
                                 const float *inp, const float *w, const float *mean,
                                 const float *rstd, int N, int C);

/* Eval-mode BN: out = (inp - rm) / sqrt(rv + eps) * w + b. */
void nn_batchnorm_forward_eval(float *out, const float *inp, const float *w, const float *b,
                               const float *run_mean, const float *run_var, int N, int C,
                               float eps);

/* Backward of the eval-mode forward (statistics are constants). */
void nn_batchnorm_backward_eval(float *dinp, float *dw, float *db, const float *dout,
                                const float *inp, const float *w, const float *run_mean,
                                const float *run_var, int N, int C, float eps);

/* LayerNorm over the last dim: out (N, C); mean, rstd (N) saved for backward. */
void nn_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int N, int C, float eps);
void nn_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                           const float *w, const float *mean, const float *rstd, int N, int C);

#endif
