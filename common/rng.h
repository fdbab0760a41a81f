/* rng.h - explicit-state pseudo-random numbers (xoshiro256**).
 *
 * Every random draw in kiln goes through an rng passed by the caller; there
 * is no global state, so runs are reproducible and a checkpoint can save the
 * four state words and resume the exact stream. rng_derive gives independent
 * streams keyed by (seed, a, b) - for example (seed, epoch, sample index) -
 * so that a sample's augmentation does not depend on which rank draws it.
 * Not thread-safe per object; use one rng per thread.
 */
#ifndef KILN_RNG_H
#define KILN_RNG_H

#include <stdint.h>

typedef struct rng {
    uint64_t s[4];
} rng;

/* rng_seed initialises r from a 64-bit seed (splitmix64 expansion). */
void rng_seed(rng *r, uint64_t seed);

/* rng_derive initialises r from a seed and two stream keys. */
void rng_derive(rng *r, uint64_t seed, uint64_t a, uint64_t b);

uint64_t rng_u64(rng *r);

/* Uniform in [0, 1) with 24 random bits. */
float rng_uniform(rng *r);

/* Uniform integer in [0, n); n > 0. Unbiased (rejection). */
uint32_t rng_below(rng *r, uint32_t n);

/* Standard normal N(0, 1) (Box-Muller; uses two uniforms per call). */
float rng_normal(rng *r);

/* Normal N(0, std^2) truncated to [lo, hi] by redrawing, as PyTorch's
 * nn.init.trunc_normal_(std=std, a=lo, b=hi). Note that PyTorch's default
 * bounds are absolute (-2, 2), not multiples of std: for std = 0.02 that is
 * an ordinary normal. Requires lo < hi and a reachable interval. */
float rng_trunc_normal(rng *r, float std, float lo, float hi);

/* Fisher-Yates shuffle of idx[0..n). */
void rng_shuffle(rng *r, uint32_t *idx, uint32_t n);

#endif
