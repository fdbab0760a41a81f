/* loss.c - softmax cross-entropy with label smoothing, and the soft-target KL (see loss.h).
 *
 * These run once per step on (B, K) logits with small K, so everything is computed in
 * double on the calling thread: a max-shifted log-sum-exp per row, and the mean over rows
 * summed in row order. That keeps the loss exact to float rounding for any logits, including
 * very large ones. Depends on libm only; thread-safe (no state).
 */
#include "worker/nn/loss.h"

#include "worker/nn/tensor.h"

#include <math.h>

/* log sum_k exp(z_k) of one row, shifted by its max. */
static double row_logsumexp(const float *z, int K)
{
    double m = (double)z[0];
    for (int k = 1; k < K; k++)
        m = (double)z[k] > m ? (double)z[k] : m;
    double s = 0.0;
    for (int k = 0; k < K; k++)
        s += exp((double)z[k] - m);
    return m + log(s);
}

/* probs row = softmax(z) given its log-sum-exp. */
static void row_softmax(float *p, const float *z, int K, double lse)
{
    for (int k = 0; k < K; k++)
        p[k] = (float)exp((double)z[k] - lse);
}

float nn_crossentropy_forward(float *probs, int *correct, const float *logits,
                              const int32_t *targets, int B, int K, float smoothing)
{
    NN_ASSERT(probs != NULL && logits != NULL && targets != NULL);
    NN_ASSERT(B > 0 && K > 0 && smoothing >= 0.0f && smoothing <= 1.0f);
    double total = 0.0, eps = smoothing;
    int hits = 0;
    for (int i = 0; i < B; i++) {
        const float *z = logits + (size_t)i * K;
        int y = targets[i];
        NN_ASSERT(y >= 0 && y < K);
        double lse = row_logsumexp(z, K);
        row_softmax(probs + (size_t)i * K, z, K, lse);
        /* sum_k q_k (lse - z_k) with q = (1 - eps) onehot(y) + eps/K */
        double zsum = 0.0;
        int arg = 0;
        for (int k = 0; k < K; k++) {
            zsum += (double)z[k];
            if (z[k] > z[arg])
                arg = k;
        }
        total += lse - (1.0 - eps) * (double)z[y] - eps / K * zsum;
        hits += arg == y;
    }
    if (correct != NULL)
        *correct = hits;
    return (float)(total / B);
}

void nn_crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets, int B,
                              int K, float smoothing, float scale)
{
    NN_ASSERT(dlogits != NULL && probs != NULL && targets != NULL);
    NN_ASSERT(B > 0 && K > 0);
    float s = scale / (float)B;
    float off = smoothing / (float)K, on = 1.0f - smoothing + off;
    for (int i = 0; i < B; i++) {
        const float *p = probs + (size_t)i * K;
        float *d = dlogits + (size_t)i * K;
        int y = targets[i];
        NN_ASSERT(y >= 0 && y < K);
        for (int k = 0; k < K; k++)
            d[k] += s * (p[k] - (k == y ? on : off));
    }
}

void nn_softmax(float *probs, const float *logits, int B, int K)
{
    NN_ASSERT(probs != NULL && logits != NULL && B >= 0 && K > 0);
    for (int i = 0; i < B; i++) {
        const float *z = logits + (size_t)i * K;
        row_softmax(probs + (size_t)i * K, z, K, row_logsumexp(z, K));
    }
}

float nn_softtarget_forward(float *probs, const float *logits, const float *teacher, int B, int K)
{
    NN_ASSERT(probs != NULL && logits != NULL && teacher != NULL && B > 0 && K > 0);
    double total = 0.0;
    for (int i = 0; i < B; i++) {
        const float *z = logits + (size_t)i * K;
        const float *t = teacher + (size_t)i * K;
        double lse = row_logsumexp(z, K);
        row_softmax(probs + (size_t)i * K, z, K, lse);
        /* sum_k t_k (log t_k - (z_k - lse)), with 0 log 0 = 0 */
        for (int k = 0; k < K; k++) {
            NN_ASSERT(t[k] >= 0.0f);
            if (t[k] > 0.0f)
                total += (double)t[k] * (log((double)t[k]) - ((double)z[k] - lse));
        }
    }
    return (float)(total / B);
}

void nn_softtarget_backward(float *dlogits, const float *probs, const float *teacher, int B, int K,
                            float scale)
{
    NN_ASSERT(dlogits != NULL && probs != NULL && teacher != NULL && B > 0 && K > 0);
    float s = scale / (float)B;
    size_t n = (size_t)B * K;
    for (size_t i = 0; i < n; i++)
        dlogits[i] += s * (probs[i] - teacher[i]);
}
