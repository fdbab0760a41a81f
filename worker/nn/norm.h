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

/* BatchNorm fused with the activation that follows it, to save the memory
 * passes of a separate activation. The output is act(BN(inp)); the
 * backward takes the gradient of that output and the output itself (the
 * activation's derivative is read from it: ReLU y > 0, ReLU6 0 < y < 6), and
 * gives exactly what the unfused pair gives. NN_ACT_NONE is plain BN. */
typedef enum { NN_ACT_NONE = 0, NN_ACT_RELU, NN_ACT_RELU6 } nn_act_kind;

void nn_batchnorm_act_forward_train(float *out, float *mean, float *rstd, float *run_mean,
                                    float *run_var, const float *inp, const float *w,
                                    const float *b, int N, int C, float eps, float momentum,
                                    nn_act_kind act);
/* nn_batchnorm_act_forward_train that also keeps in `keep` (2C floats) the
 * per-channel constants of its output pass, so that nn_batchnorm_act_reapply
 * can rebuild `out` bit for bit from `inp` later (a backward pass recomputes
 * the output instead of storing it). keep may be NULL. */
void nn_batchnorm_act_forward_train_keep(float *out, float *mean, float *rstd, float *keep,
                                         float *run_mean, float *run_var, const float *inp,
                                         const float *w, const float *b, int N, int C, float eps,
                                         float momentum, nn_act_kind act);
/* Rebuilds the output of a nn_batchnorm_act_forward_train_keep call from the
 * same inp, b and act and the mean and keep it wrote: identical bits. */
void nn_batchnorm_act_reapply(float *out, const float *inp, const float *mean, const float *keep,
                              const float *b, int N, int C, nn_act_kind act);
void nn_batchnorm_act_backward_train(float *dinp, float *dw, float *db, const float *dout,
                                     const float *out, const float *inp, const float *w,
                                     const float *mean, const float *rstd, int N, int C,
                                     nn_act_kind act);
void nn_batchnorm_act_forward_eval(float *out, const float *inp, const float *w, const float *b,
                                   const float *run_mean, const float *run_var, int N, int C,
                                   float eps, nn_act_kind act);
void nn_batchnorm_act_backward_eval(float *dinp, float *dw, float *db, const float *dout,
                                    const float *out, const float *inp, const float *w,
                                    const float *run_mean, const float *run_var, int N, int C,
                                    float eps, nn_act_kind act);

/* BatchNorm, a residual add and an activation in one pass: out = act(BN(inp) + res),
 * bit for bit what BN, the add and the activation kernels give one after the other
 * (res is added to the BN output with one rounding, then the activation applies). The
 * backward takes the gradient of out and out itself; it accumulates into dinp what BN's
 * backward gives and into dres the activation's gradient, the add's share for its
 * residual input. res (forward) and dres, dinp (backward) may be NULL: without res these
 * are the _act_ kernels above. */
void nn_batchnorm_add_act_forward_train(float *out, float *mean, float *rstd, float *run_mean,
                                        float *run_var, const float *inp, const float *res,
                                        const float *w, const float *b, int N, int C, float eps,
                                        float momentum, nn_act_kind act);
void nn_batchnorm_add_act_backward_train(float *dinp, float *dres, float *dw, float *db,
                                         const float *dout, const float *out, const float *inp,
                                         const float *w, const float *mean, const float *rstd,
                                         int N, int C, nn_act_kind act);
void nn_batchnorm_add_act_forward_eval(float *out, const float *inp, const float *res,
                                       const float *w, const float *b, const float *run_mean,
                                       const float *run_var, int N, int C, float eps,
                                       nn_act_kind act);
void nn_batchnorm_add_act_backward_eval(float *dinp, float *dres, float *dw, float *db,
                                        const float *dout, const float *out, const float *inp,
                                        const float *w, const float *run_mean, const float *run_var,
                                        int N, int C, float eps, nn_act_kind act);

/* LayerNorm over the last dim: out (N, C); mean, rstd (N) saved for backward. */
void nn_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int N, int C, float eps);
void nn_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                           const float *w, const float *mean, const float *rstd, int N, int C);

#endif
