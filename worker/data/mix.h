/* mix.h - Mixup and CutMix of a batch with soft targets (timm's "batch" mode).
 *
 * With probability prob a batch is mixed with its own reverse (sample i
 * with sample B-1-i): CutMix with probability switch_prob when both are on,
 * else Mixup. lam ~ Beta(alpha, alpha); Mixup blends whole images, CutMix
 * pastes a box of area about (1 - lam) of the image (centre uniform, sides
 * sqrt(1 - lam) of the image's, clipped) and then sets lam to the exact kept
 * area. Targets are lam * smooth(y) + (1 - lam) * smooth(y reversed), with
 * label smoothing off = s / K, on = 1 - s + off. Pure functions over caller
 * buffers; thread-safe.
 */
#ifndef KILN_DATA_MIX_H
#define KILN_DATA_MIX_H

#include "common/jobspec.h"
#include "common/rng.h"

#include <stdint.h>

/* A draw from Beta(a, a), a > 0 (Marsaglia-Tsang gammas). */
double mix_beta(rng *r, double a);

/* Mixes x (B, H, W, C) in place and writes targets (B, K); returns the lam
 * used (1 when the batch is not mixed: targets are then the smoothed
 * one-hot labels). Labels must be < K (asserted). */
double mix_batch(float *x, float *targets, const int32_t *y, int B, int H, int W, int C, int K,
                 const mix_spec *m, float smoothing, rng *r);

/* Whether m mixes at all. */
int mix_enabled(const mix_spec *m);

#endif
