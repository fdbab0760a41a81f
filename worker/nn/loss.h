/* loss.h - softmax cross-entropy (with label smoothing) and soft-target loss.
 *
 * Cross-entropy: loss = mean_i sum_k -q_ik log softmax(z_i)_k with
 * q = (1 - eps) onehot(y) + eps/K. Soft-target (for DMCP's in-place
 * distillation): loss = mean_i sum_k p_ik (log p_ik - log softmax(z_i)_k),
 * i.e. KL(p || softmax(z)), with the teacher probabilities p given.
 * Pure; see tensor.h for the kernel contract (backward accumulates).
 */
#ifndef KILN_NN_LOSS_H
#define KILN_NN_LOSS_H

#include <stdint.h>

/* Returns the mean loss over the B rows. probs (B, K) receives softmax(z)
 * for the backward pass; logits (B, K); targets (B) in [0, K).
 * If correct is not NULL it receives the number of rows whose argmax == target. */
float nn_crossentropy_forward(float *probs, int *correct, const float *logits,
                              const int32_t *targets, int B, int K, float smoothing);

/* Accumulates dlogits += scale * d(mean loss)/dlogits = scale * (probs - q) / B. */
void nn_crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets, int B,
                              int K, float smoothing, float scale);

/* Softmax of each row: probs (B, K) from logits (B, K) (for teachers and eval). */
void nn_softmax(float *probs, const float *logits, int B, int K);

/* KL(teacher || softmax(logits)), mean over rows. probs receives softmax(logits). */
float nn_softtarget_forward(float *probs, const float *logits, const float *teacher, int B, int K);

/* Accumulates dlogits += scale * (probs - teacher) / B. */
void nn_softtarget_backward(float *dlogits, const float *probs, const float *teacher, int B, int K,
                            float scale);

#endif
