/* optim.c - SGD and AdamW steps, the warm-up + cosine schedule, and gradient clipping
 * (see optim.h).
 *
 * The updates follow PyTorch 1.13's single-tensor code operation by operation; the
 * scalar factors (bias corrections, 1 - lr*wd, step size) are formed in double, as
 * Python forms them, and then rounded to float. The elementwise loops are split over
 * the OpenMP threads. The gradient norm sums fixed chunks in double and adds the chunk
 * sums in order, so it does not depend on the thread count.
 * Depends on libm and OpenMP; thread-safe (no state).
 */
#include "worker/nn/optim.h"

#include "worker/nn/tensor.h"

#include <math.h>

#define OPT_PAR_MIN (1 << 15)
/* The norm's partial sums: a fixed count, so the summation order is fixed too. */
#define NORM_CHUNKS 64
#define OPT_PI      3.14159265358979323846

void nn_sgd_step(float *p, float *buf, const float *grad, size_t n, const nn_sgd_params *o,
                 int first_step)
{
    NN_ASSERT(p != NULL && grad != NULL && o != NULL);
    const float lr = o->lr, wd = o->weight_decay, mom = o->momentum;
    const float damp = 1.0f - o->dampening;
    const int nesterov = o->nesterov;
    NN_ASSERT(!nesterov || (mom > 0.0f && o->dampening == 0.0f));
    long len = (long)n;
    if (mom == 0.0f) {
#pragma omp parallel for simd schedule(static) if (n >= OPT_PAR_MIN)
        for (long i = 0; i < len; i++)
            p[i] -= lr * (grad[i] + wd * p[i]);
        return;
    }
    NN_ASSERT(buf != NULL);
#pragma omp parallel for simd schedule(static) if (n >= OPT_PAR_MIN)
    for (long i = 0; i < len; i++) {
        float g = grad[i] + wd * p[i];
        float b = first_step ? g : mom * buf[i] + damp * g;
        buf[i] = b;
        p[i] -= lr * (nesterov ? g + mom * b : b);
    }
}

void nn_adamw_step(float *p, float *m, float *v, const float *grad, size_t n,
                   const nn_adamw_params *o, long t)
{
    NN_ASSERT(p != NULL && m != NULL && v != NULL && grad != NULL && o != NULL && t >= 1);
    const double lr = o->lr;
    const float decay = (float)(1.0 - lr * (double)o->weight_decay);
    const float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    const float c1 = (float)(1.0 - (double)o->beta1), c2 = (float)(1.0 - (double)o->beta2);
    const double bc1 = 1.0 - pow((double)o->beta1, (double)t);
    const double bc2 = 1.0 - pow((double)o->beta2, (double)t);
    const float step = (float)(lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (n >= OPT_PAR_MIN)
    for (long i = 0; i < len; i++) {
        float g = grad[i];
        float mi = b1 * m[i] + c1 * g;
        float vi = b2 * v[i] + c2 * (g * g);
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - step * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    }
}

double nn_schedule_lr(const nn_schedule *s, long step)
{
    NN_ASSERT(s != NULL && step >= 0 && s->warmup_steps >= 0);
    if (step < s->warmup_steps)
        return s->base_lr * (double)(step + 1) / (double)s->warmup_steps;
    if (!s->cosine)
        return s->base_lr;
    long span = s->total_steps - s->warmup_steps;
    if (span <= 0 || step >= s->total_steps)
        return s->min_lr;
    double frac = (double)(step - s->warmup_steps) / (double)span;
    return s->min_lr + (s->base_lr - s->min_lr) * 0.5 * (1.0 + cos(OPT_PI * frac));
}

double nn_grad_norm(const float *g, size_t n)
{
    NN_ASSERT(g != NULL || n == 0);
    double part[NORM_CHUNKS];
    size_t chunk = (n + NORM_CHUNKS - 1) / NORM_CHUNKS;
#pragma omp parallel for schedule(static) if (n >= OPT_PAR_MIN)
    for (int c = 0; c < NORM_CHUNKS; c++) {
        size_t lo = (size_t)c * chunk, hi = lo + chunk;
        lo = lo < n ? lo : n;
        hi = hi < n ? hi : n;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (size_t i = lo; i < hi; i++)
            s += (double)g[i] * (double)g[i];
        part[c] = s;
    }
    double total = 0.0;
    for (int c = 0; c < NORM_CHUNKS; c++)
        total += part[c];
    return sqrt(total);
}

double nn_clip_grad_norm(float *g, size_t n, double max_norm)
{
    NN_ASSERT(max_norm > 0.0);
    double norm = nn_grad_norm(g, n);
    if (!isfinite(norm))
        return norm;
    /* PyTorch's clip_grad_norm_: coefficient max_norm / (norm + 1e-6), applied when < 1. */
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        float s = (float)coef;
        long len = (long)n;
#pragma omp parallel for simd schedule(static) if (n >= OPT_PAR_MIN)
        for (long i = 0; i < len; i++)
            g[i] *= s;
    }
    return norm;
}
