/* rng.c - xoshiro256** with splitmix64 seeding (see rng.h). */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void rng_seed(rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

void rng_derive(rng *r, uint64_t seed, uint64_t a, uint64_t b)
{
    uint64_t x = seed;
    uint64_t k = splitmix64(&x);
    x = k ^ (a * 0xd1342543de82ef95ULL);
    k = splitmix64(&x);
    x = k ^ (b * 0xa0761d6478bd642fULL);
    rng_seed(r, splitmix64(&x));
}

uint64_t rng_u64(rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float rng_uniform(rng *r)
{
    return (float)(rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

uint32_t rng_below(rng *r, uint32_t n)
{
    uint32_t limit = (uint32_t)(-n) % n; /* 2^32 mod n */
    for (;;) {
        uint32_t x = (uint32_t)(rng_u64(r) >> 32);
        uint64_t m = (uint64_t)x * n;
        if ((uint32_t)m >= limit)
            return (uint32_t)(m >> 32);
    }
}

float rng_normal(rng *r)
{
    double u1 = ((double)(rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0); /* (0, 1] */
    double u2 = (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

float rng_trunc_normal(rng *r, float std, float lo, float hi)
{
    for (;;) {
        float v = std * rng_normal(r);
        if (v >= lo && v <= hi)
            return v;
    }
}

void rng_shuffle(rng *r, uint32_t *idx, uint32_t n)
{
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = rng_below(r, i);
        uint32_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}
