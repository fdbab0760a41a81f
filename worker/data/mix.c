/* mix.c - Mixup and CutMix (see mix.h). Depends on libc, libm, common/rng;
 * thread-safe. */
#include "worker/data/mix.h"

#include <assert.h>
#include <math.h>
#include <string.h>

static double gamma_draw(rng *r, double a)
{
    if (a < 1.0) { /* boost: G(a) = G(a + 1) * U^(1/a) */
        double u = (double)rng_uniform(r);
        return gamma_draw(r, a + 1.0) * pow(u > 0 ? u : 1e-300, 1.0 / a);
    }
    double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = (double)rng_normal(r), v = 1.0 + c * x;
        if (v <= 0)
            continue;
        v = v * v * v;
        double u = (double)rng_uniform(r);
        if (u < 1.0 - 0.0331 * x * x * x * x ||
            (u > 0 && log(u) < 0.5 * x * x + d * (1 - v + log(v))))
            return d * v;
    }
}

double mix_beta(rng *r, double a)
{
    assert(a > 0);
    double x = gamma_draw(r, a), y = gamma_draw(r, a);
    return x + y > 0 ? x / (x + y) : 0.5;
}

int mix_enabled(const mix_spec *m)
{
    return (m->mixup > 0 || m->cutmix > 0) && m->prob > 0;
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

double mix_batch(float *x, float *targets, const int32_t *y, int B, int H, int W, int C, int K,
                 const mix_spec *m, float smoothing, rng *r)
{
    float off = smoothing / (float)K, on = 1.0f - smoothing + off;
    double lam = 1.0;
    int cut = 0, yl = 0, yh = 0, xl = 0, xh = 0;
    if (mix_enabled(m) && (double)rng_uniform(r) < m->prob) {
        cut = m->cutmix > 0 && (m->mixup <= 0 || (double)rng_uniform(r) < m->switch_prob);
        lam = mix_beta(r, cut ? m->cutmix : m->mixup);
        if (cut) {
            double rat = sqrt(1.0 - lam);
            int ch = (int)(H * rat), cw = (int)(W * rat);
            int cy = (int)rng_below(r, (uint32_t)H), cx = (int)rng_below(r, (uint32_t)W);
            yl = clampi(cy - ch / 2, 0, H);
            yh = clampi(cy + ch / 2, 0, H);
            xl = clampi(cx - cw / 2, 0, W);
            xh = clampi(cx + cw / 2, 0, W);
            lam = 1.0 - (double)(yh - yl) * (xh - xl) / ((double)H * W);
        }
        size_t per = (size_t)H * W * C;
        /* Pairs (i, B-1-i) swap roles, so each pair is mixed from copies of both. */
        for (int i = 0; i < B / 2; i++) {
            float *a = x + (size_t)i * per, *b = x + (size_t)(B - 1 - i) * per;
            if (cut) {
                for (int yy = yl; yy < yh; yy++) {
                    size_t o = ((size_t)yy * W + xl) * C, n = (size_t)(xh - xl) * C;
                    for (size_t k = 0; k < n; k++) {
                        float t = a[o + k];
                        a[o + k] = b[o + k];
                        b[o + k] = t;
                    }
                }
            } else {
                float l = (float)lam, l1 = (float)(1.0 - lam);
                for (size_t k = 0; k < per; k++) {
                    float va = a[k], vb = b[k];
                    a[k] = va * l + vb * l1;
                    b[k] = vb * l + va * l1;
                }
            }
        }
        /* An odd batch's middle sample is mixed with itself: unchanged. */
    }
    for (int i = 0; i < B; i++) {
        assert(y[i] >= 0 && y[i] < K && y[B - 1 - i] >= 0 && y[B - 1 - i] < K);
        float *t = targets + (size_t)i * K;
        for (int k = 0; k < K; k++)
            t[k] = off;
        t[y[i]] += (float)lam * (on - off);
        t[y[B - 1 - i]] += (float)(1.0 - lam) * (on - off);
    }
    return lam;
}
