/* vec.h - fixed-width float vectors for the hand-tiled kernels (private to worker/nn).
 *
 * GCC vector extensions: a v16 is 16 floats, which gcc maps to one AVX-512 register, two
 * AVX registers or four SSE registers, so the same source compiles on any x86-64 (and
 * elsewhere). Loads and stores go through memcpy and need no alignment. The horizontal
 * reductions fold halves (a tree), which is both faster and more accurate than gcc's
 * lane-by-lane epilogue of an `omp simd` reduction. Pure inline functions; thread-safe.
 */
#ifndef KILN_NN_VEC_H
#define KILN_NN_VEC_H

#include <string.h>

#define VEC_LEN 16 /* floats per v16 */

/* Keeps v in a register. Without it gcc folds a load into every FMA that reads v (it
 * rates memory operands as free), which makes the tile kernels load-bound. Only where a
 * v16 fits one register (AVX-512): narrower paths hold it in two or four registers,
 * which no single asm operand can name. */
#if defined(__AVX512F__)
#define VEC_KEEP(v) __asm__("" : "+v"(v))
#else
#define VEC_KEEP(v) ((void)0)
#endif

typedef float v16 __attribute__((vector_size(16 * sizeof(float))));
typedef float v8 __attribute__((vector_size(8 * sizeof(float))));
typedef float v4 __attribute__((vector_size(4 * sizeof(float))));
typedef double v8d __attribute__((vector_size(8 * sizeof(double))));
typedef int v16i __attribute__((vector_size(16 * sizeof(int))));

static inline v16 vec_ld(const float *p)
{
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void vec_st(float *p, v16 v)
{
    memcpy(p, &v, sizeof v);
}

static inline v16 vec_set1(float x)
{
    return (v16){0} + x;
}

/* The two halves of a v16 (lanes 0-7 and 8-15). */
static inline v8 vec_lo(v16 v)
{
    v8 h;
    memcpy(&h, &v, sizeof h);
    return h;
}

static inline v8 vec_hi(v16 v)
{
    v8 h;
    memcpy(&h, (const char *)&v + sizeof h, sizeof h);
    return h;
}

static inline float vec_hsum(v16 v)
{
    v8 a = vec_lo(v) + vec_hi(v);
    v4 b, c;
    memcpy(&b, &a, sizeof b);
    memcpy(&c, (const char *)&a + sizeof b, sizeof c);
    b += c;
    return (b[0] + b[2]) + (b[1] + b[3]);
}

/* Lanes of a where mask is set (all ones), else of b (C has no ?: on vectors). */
static inline v16 vec_select(v16i mask, v16 a, v16 b)
{
    return (v16)(((v16i)a & mask) | ((v16i)b & ~mask));
}

/* Lane-wise max; a NaN lane of b propagates. */
static inline v16 vec_max(v16 a, v16 b)
{
    return vec_select(a > b, a, b);
}

/* Lanes 0..15, for building masks such as vec_lanes() < n (the first n lanes). */
static inline v16i vec_lanes(void)
{
    return (v16i){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
}

/* Horizontal max by halving: each step folds the vector onto itself (lanes swapped by
 * __builtin_shufflevector, which both gcc >= 12 and clang provide). */
static inline float vec_hmax(v16 v)
{
    v = vec_max(
        v, __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
    v = vec_max(
        v, __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11));
    v = vec_max(
        v, __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13));
    v = vec_max(
        v, __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14));
    return v[0];
}

static inline double vec_hsumd(v8d v)
{
    return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

/* v16 as two v8d, lanes 0-7 and 8-15. */
static inline v8d vec_lo_d(v16 v)
{
    return __builtin_convertvector(vec_lo(v), v8d);
}

static inline v8d vec_hi_d(v16 v)
{
    return __builtin_convertvector(vec_hi(v), v8d);
}

#endif
