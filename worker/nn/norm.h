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

/* The activation a BatchNorm kernel applies to its output, fused to save the
 * memory passes of a separate activation kernel. The backward reads the
 * activation's derivative from the output itself (ReLU y > 0, ReLU6 0 < y < 6)
 * and gives exactly what the unfused pair gives. */
typedef enum { NN_ACT_NONE = 0, NN_ACT_RELU, NN_ACT_RELU6 } nn_act_kind;

/* One BatchNorm layer as its kernels see it, for one call: N rows (batch x
 * height x width) of C channels; the affine weight and bias w, b (C); the
 * running statistics run_mean, run_var (C), which eval mode reads and a
 * training forward updates with `momentum` (both NULL: not updated); eps; and
 * the activation after it. A momentum of 1 stores exactly this batch's
 * statistics. */
typedef struct nn_bn {
    int N, C;
    const float *w, *b;
    float *run_mean, *run_var;
    float eps, momentum;
    nn_act_kind act;
} nn_bn;

/* What a training forward saves for its backward: the batch mean and rstd
 * (C each), and, when keep is not NULL, the per-channel constants (2C) of its
 * output pass, from which nn_batchnorm_reapply rebuilds the output bit for bit
 * (a backward pass can recompute the output instead of storing it). */
typedef struct nn_bn_saved {
    float *mean, *rstd, *keep;
} nn_bn_saved;

/* Training mode: out (N, C) = act(BN(inp) + res) with the batch statistics
 * (mean and biased variance) into *saved, the running ones updated. res may be
 * NULL (no residual add); with it, out is bit for bit what BN, the add and the
 * activation kernels give one after the other (one rounding for the add). */
void nn_batchnorm_forward_train(float *out, const nn_bn_saved *saved, const float *inp,
                                const float *res, const nn_bn *bn);

/* Rebuilds out from the same inp and the mean and keep that a forward without
 * res saved: identical bits. Reads bn's b, act, N and C. */
void nn_batchnorm_reapply(float *out, const float *inp, const nn_bn_saved *saved, const nn_bn *bn);

/* Backward of nn_batchnorm_forward_train, given dout and (unless act is
 * NN_ACT_NONE) the forward's out: accumulates the input gradient into dinp, the
 * residual's (the activation's gradient) into dres, and the parameters' into dw
 * and db. Any of the four may be NULL. */
void nn_batchnorm_backward_train(float *dinp, float *dres, float *dw, float *db, const float *dout,
                                 const float *out, const float *inp, const nn_bn_saved *saved,
                                 const nn_bn *bn);

/* Eval mode: out = act((inp - rm) / sqrt(rv + eps) * w + b + res), res may be NULL. */
void nn_batchnorm_forward_eval(float *out, const float *inp, const float *res, const nn_bn *bn);

/* Backward of the eval-mode forward (the statistics are constants); as
 * nn_batchnorm_backward_train. */
void nn_batchnorm_backward_eval(float *dinp, float *dres, float *dw, float *db, const float *dout,
                                const float *out, const float *inp, const nn_bn *bn);

/* LayerNorm over the last dim: out (N, C); mean, rstd (N) saved for backward. */
void nn_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int N, int C, float eps);
void nn_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                           const float *w, const float *mean, const float *rstd, int N, int C);

#endif
