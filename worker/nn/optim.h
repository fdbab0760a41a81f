/* optim.h - optimizers, learning-rate schedule and gradient clipping.
 *
 * One flat loop per call over a contiguous range of parameters, exactly
 * PyTorch's update rules:
 *   SGD:   g = grad + wd*p; buf = m*buf + (1-dampening)*g (buf = g on the
 *          first step); p -= lr * (nesterov ? g + m*buf : buf).
 *   AdamW: p *= 1 - lr*wd; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
 *          p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps), t >= 1.
 * A model calls these per tensor (weight decay differs per tensor) or once
 * over the whole flat buffer. Pure; no allocation.
 */
#ifndef KILN_NN_OPTIM_H
#define KILN_NN_OPTIM_H

#include <stddef.h>

typedef struct nn_sgd_params {
    float lr, momentum, dampening, weight_decay;
    int nesterov;
} nn_sgd_params;

typedef struct nn_adamw_params {
    float lr, beta1, beta2, eps, weight_decay;
} nn_adamw_params;

/* first_step != 0 initialises buf = g as PyTorch does when the buffer is new. */
void nn_sgd_step(float *p, float *buf, const float *grad, size_t n, const nn_sgd_params *o,
                 int first_step);

/* t is the step number after this update (1 for the first update). */
void nn_adamw_step(float *p, float *m, float *v, const float *grad, size_t n,
                   const nn_adamw_params *o, long t);

/* Linear warm-up from 0 then cosine decay to a floor, per step:
 *   t < warmup:  lr = base * (t + 1) / warmup
 *   else:        lr = min + (base - min) * (1 + cos(pi * (t - warmup)/(total - warmup))) / 2
 * schedule "constant" keeps base after the warm-up. */
typedef struct nn_schedule {
    double base_lr, min_lr;
    long warmup_steps, total_steps;
    int cosine; /* 0 = constant after warm-up */
} nn_schedule;

double nn_schedule_lr(const nn_schedule *s, long step);

/* L2 norm of g[0..n) accumulated in double. */
double nn_grad_norm(const float *g, size_t n);

/* Scales g by max_norm/norm when norm > max_norm; returns the norm before clipping. */
double nn_clip_grad_norm(float *g, size_t n, double max_norm);

#endif
