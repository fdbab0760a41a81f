/* bench_dense.c - speed of the dense kernels at the ViT-mini shapes (batch 64).
 *
 * One row per layer: forward and backward GFLOP/s (2 x multiply-adds; the
 * backward counts both products) or, for memory-bound kernels, GB/s of the
 * minimal traffic, beside a baseline measured in the same run: cblas_sgemm of
 * the same size for the GEMM-shaped layers, memcpy of the same bytes for the
 * memory-bound ones. It also times attention written as one small sgemm per
 * (batch, head) inside an OpenMP loop, the alternative the kernel was chosen
 * against. Each figure is the best of several rounds (the machine is shared).
 *
 *   OMP_NUM_THREADS=2 bench_dense
 *   BENCH_CLOCK=cpu OMP_NUM_THREADS=1 bench_dense   (CPU time: for a loaded machine)
 */
#include "common/rng.h"
#include "common/xalloc.h"
#include "worker/nn/act.h"
#include "worker/nn/attention.h"
#include "worker/nn/gemm.h"
#include "worker/nn/linear.h"
#include "worker/nn/norm.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUNDS        15
#define ROUND_SECONDS 0.02

/* Wall time, or with BENCH_CLOCK=cpu the process's CPU time: with one thread a
 * figure that holds while other programs load the machine. */
static double now_s(void)
{
    static int cpu = -1;
    if (cpu < 0) {
        const char *e = getenv("BENCH_CLOCK");
        cpu = e != NULL && strcmp(e, "cpu") == 0;
    }
    struct timespec ts;
    clock_gettime(cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best seconds per call of fn(ctx) over ROUNDS rounds of at least ROUND_SECONDS. */
static double time_call(void (*fn)(void *), void *ctx)
{
    fn(ctx);
    fn(ctx);
    int reps = 1;
    for (;;) {
        double t0 = now_s();
        for (int r = 0; r < reps; r++)
            fn(ctx);
        if (now_s() - t0 >= ROUND_SECONDS || reps >= (1 << 20))
            break;
        reps *= 2;
    }
    double best = INFINITY;
    for (int k = 0; k < ROUNDS; k++) {
        double t0 = now_s();
        for (int r = 0; r < reps; r++)
            fn(ctx);
        double dt = (now_s() - t0) / reps;
        best = dt < best ? dt : best;
    }
    return best;
}

static float *rand_buf(size_t n, rng *r, float scale)
{
    float *p = xaligned(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = scale * (2.0f * rng_uniform(r) - 1.0f);
    return p;
}

static void print_row(const char *name, const char *shape, double work, double tf, double tb,
                      double bwd_work, const char *unit, const char *base_name, double base)
{
    printf("%-20s %-18s %7.1f %-7s %7.1f %-7s %8.1f %8.1f   %-26s %6.1f\n", name, shape,
           work / tf * 1e-9, unit, bwd_work / tb * 1e-9, unit, tf * 1e6, tb * 1e6, base_name, base);
}

/* ---- GEMM-shaped layers ---------------------------------------------------------- */

typedef struct lin_ctx {
    int N, IN, OUT;
    float *x, *w, *b, *y, *dy, *dx, *dw, *db;
} lin_ctx;

static void lin_fwd(void *p)
{
    lin_ctx *c = p;
    nn_linear_forward(c->y, c->x, c->w, c->b, c->N, c->IN, c->OUT);
}

static void lin_bwd(void *p)
{
    lin_ctx *c = p;
    nn_linear_backward(c->dx, c->dw, c->db, c->dy, c->x, c->w, c->N, c->IN, c->OUT);
}

typedef struct sgemm_ctx {
    int M, N, K;
    float *a, *b, *c;
} sgemm_ctx;

static void sgemm_run(void *p)
{
    sgemm_ctx *s = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->M, s->N, s->K, 1.0f, s->a, s->K, s->b,
                s->N, 0.0f, s->c, s->N);
}

/* GFLOP/s of a plain M x N x K sgemm. */
static double sgemm_gflops(int M, int N, int K, rng *r)
{
    sgemm_ctx s = {M,
                   N,
                   K,
                   rand_buf((size_t)M * K, r, 1),
                   rand_buf((size_t)K * N, r, 1),
                   rand_buf((size_t)M * N, r, 1)};
    double t = time_call(sgemm_run, &s);
    free(s.a), free(s.b), free(s.c);
    return 2.0 * M * N * K / t * 1e-9;
}

static void bench_linear(const char *name, int N, int IN, int OUT, rng *r)
{
    lin_ctx c = {.N = N, .IN = IN, .OUT = OUT};
    c.x = rand_buf((size_t)N * IN, r, 1), c.w = rand_buf((size_t)OUT * IN, r, 0.1f);
    c.b = rand_buf((size_t)OUT, r, 1), c.y = rand_buf((size_t)N * OUT, r, 1);
    c.dy = rand_buf((size_t)N * OUT, r, 1), c.dx = rand_buf((size_t)N * IN, r, 1);
    c.dw = rand_buf((size_t)OUT * IN, r, 1), c.db = rand_buf((size_t)OUT, r, 1);
    double flops = 2.0 * N * IN * OUT;
    double tf = time_call(lin_fwd, &c), tb = time_call(lin_bwd, &c);
    char shape[64], base[64];
    snprintf(shape, sizeof shape, "%dx%d -> %d", N, IN, OUT);
    snprintf(base, sizeof base, "sgemm %dx%dx%d GFLOP/s", N, OUT, IN);
    print_row(name, shape, flops, tf, tb, 2 * flops, "GFLOP/s", base, sgemm_gflops(N, OUT, IN, r));
    free(c.x), free(c.w), free(c.b), free(c.y), free(c.dy), free(c.dx), free(c.dw), free(c.db);
}

/* ---- attention ------------------------------------------------------------------- */

typedef struct att_ctx {
    int B, T, C, NH, query;
    float *qkv, *out, *att, *dout, *dqkv, *scratch;
} att_ctx;

static void att_fwd(void *p)
{
    att_ctx *c = p;
    nn_attention_forward(c->out, c->att, c->qkv, c->B, c->T, c->C, c->NH, c->query, c->scratch);
}

static void att_bwd(void *p)
{
    att_ctx *c = p;
    nn_attention_backward(c->dqkv, c->dout, c->qkv, c->att, c->B, c->T, c->C, c->NH, c->query,
                          c->scratch);
}

/* The alternative: the same attention (all queries) with one cblas_sgemm per product and
 * (batch, head), inside an OpenMP loop (OpenBLAS then runs each call single-threaded). */
static void softmax_row(float *p, int T, float scale)
{
    float m = -INFINITY, s = 0.0f;
    for (int j = 0; j < T; j++)
        m = p[j] > m ? p[j] : m;
    for (int j = 0; j < T; j++)
        s += (p[j] = expf((p[j] - m) * scale));
    for (int j = 0; j < T; j++)
        p[j] /= s;
}

static void att_sgemm_fwd(void *p)
{
    att_ctx *c = p;
    int T = c->T, C = c->C, HS = C / c->NH, ld = 3 * C;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for schedule(static)
    for (int u = 0; u < c->B * c->NH; u++) {
        int b = u / c->NH, h = u % c->NH;
        const float *q = c->qkv + (size_t)b * T * ld + h * HS, *k = q + C, *v = q + 2 * C;
        float *a = c->att + (size_t)u * T * T;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HS, 1.0f, q, ld, k, ld, 0.0f, a,
                    T);
        for (int i = 0; i < T; i++)
            softmax_row(a + (size_t)i * T, T, scale);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HS, T, 1.0f, a, T, v, ld, 0.0f,
                    c->out + (size_t)b * T * C + h * HS, C);
    }
}

static void att_sgemm_bwd(void *p)
{
    att_ctx *c = p;
    int T = c->T, C = c->C, HS = C / c->NH, ld = 3 * C;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel
    {
        float *ds = c->scratch + (size_t)omp_get_thread_num() * T * T;
#pragma omp for schedule(static)
        for (int u = 0; u < c->B * c->NH; u++) {
            int b = u / c->NH, h = u % c->NH;
            size_t off = (size_t)b * T * ld + h * HS;
            const float *q = c->qkv + off, *k = q + C, *v = q + 2 * C;
            float *dq = c->dqkv + off, *dk = dq + C, *dv = dq + 2 * C;
            const float *a = c->att + (size_t)u * T * T;
            const float *g = c->dout + (size_t)b * T * C + h * HS;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HS, 1.0f, g, C, v, ld, 0.0f,
                        ds, T);
            for (int i = 0; i < T; i++) {
                float dot = 0.0f;
                for (int j = 0; j < T; j++)
                    dot += a[i * T + j] * ds[i * T + j];
                for (int j = 0; j < T; j++)
                    ds[i * T + j] = scale * a[i * T + j] * (ds[i * T + j] - dot);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HS, T, 1.0f, ds, T, k, ld,
                        1.0f, dq, ld);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HS, T, 1.0f, ds, T, q, ld, 1.0f,
                        dk, ld);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HS, T, 1.0f, a, T, g, C, 1.0f,
                        dv, ld);
        }
    }
}

static void bench_attention(const char *name, int B, int T, int C, int NH, int query, int alt,
                            rng *r)
{
    att_ctx c = {.B = B, .T = T, .C = C, .NH = NH, .query = query};
    int TQ = nn_attention_queries(T, query), HS = C / NH;
    size_t ns = nn_attention_scratch_floats(B, T, C, NH, query);
    size_t alt_ns = (size_t)omp_get_max_threads() * T * T;
    c.qkv = rand_buf((size_t)B * T * 3 * C, r, 1), c.out = rand_buf((size_t)B * TQ * C, r, 1);
    c.att = rand_buf((size_t)B * NH * TQ * T, r, 1), c.dout = rand_buf((size_t)B * TQ * C, r, 1);
    c.dqkv = rand_buf((size_t)B * T * 3 * C, r, 1);
    c.scratch = rand_buf(ns > alt_ns ? ns : alt_ns, r, 1);
    /* Products only: q k^T and att v forward, four of that size backward. */
    double flops = 2.0 * 2.0 * B * NH * TQ * T * HS;
    double tf = time_call(att_fwd, &c), tb = time_call(att_bwd, &c);
    char shape[64], base[64];
    snprintf(shape, sizeof shape, "B%d T%d C%d H%d%s", B, T, C, NH,
             query == NN_ATTN_ALL_QUERIES ? "" : " 1q");
    snprintf(base, sizeof base, "sgemm %dx%dx%d GFLOP/s", B * NH * TQ, T, HS);
    print_row(name, shape, flops, tf, tb, 2 * flops, "GFLOP/s", base,
              sgemm_gflops(B * NH * TQ, T, HS, r));
    if (alt) {
        double af = time_call(att_sgemm_fwd, &c), ab = time_call(att_sgemm_bwd, &c);
        char note[64];
        snprintf(note, sizeof note, "kernel: %.2fx fwd, %.2fx bwd", af / tf, ab / tb);
        print_row(" as sgemm per (b,h)", shape, flops, af, ab, 2 * flops, "GFLOP/s", note, 0.0);
    }
    free(c.qkv), free(c.out), free(c.att), free(c.dout), free(c.dqkv), free(c.scratch);
}

/* ---- memory-bound layers --------------------------------------------------------- */

typedef struct mem_ctx {
    int N, C;
    float *x, *y, *w, *b, *mean, *rstd, *dy, *dx, *dw, *db;
    size_t bytes;
} mem_ctx;

static void ln_fwd(void *p)
{
    mem_ctx *c = p;
    nn_layernorm_forward(c->y, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->C, 1e-6f);
}

static void ln_bwd(void *p)
{
    mem_ctx *c = p;
    nn_layernorm_backward(c->dx, c->dw, c->db, c->dy, c->x, c->w, c->mean, c->rstd, c->N, c->C);
}

static void gelu_fwd(void *p)
{
    mem_ctx *c = p;
    nn_gelu_forward(c->y, c->x, (size_t)c->N * c->C);
}

static void gelu_bwd(void *p)
{
    mem_ctx *c = p;
    nn_gelu_backward(c->dx, c->dy, c->x, (size_t)c->N * c->C);
}

static void copy_run(void *p)
{
    mem_ctx *c = p;
    memcpy(c->y, c->x, c->bytes / 2);
}

static void bench_memory(const char *name, int N, int C, void (*fwd)(void *), void (*bwd)(void *),
                         rng *r)
{
    size_t n = (size_t)N * C;
    mem_ctx c = {.N = N, .C = C};
    c.x = rand_buf(n, r, 1), c.y = rand_buf(n, r, 1), c.w = rand_buf(C, r, 1);
    c.b = rand_buf(C, r, 1), c.mean = rand_buf(N, r, 1), c.rstd = rand_buf(N, r, 1);
    c.dy = rand_buf(n, r, 1), c.dx = rand_buf(n, r, 1), c.dw = rand_buf(C, r, 1);
    c.db = rand_buf(C, r, 1);
    fwd(&c); /* valid statistics for the backward */
    /* Minimal traffic: forward reads x and writes y; backward reads dy, x and dx and
     * writes dx. The baseline copies n floats (reads + writes 2n floats' bytes). */
    double fb = 2.0 * n * sizeof(float), bb = 4.0 * n * sizeof(float);
    double tf = time_call(fwd, &c), tb = time_call(bwd, &c);
    c.bytes = 2 * n * sizeof(float);
    double tc = time_call(copy_run, &c);
    char shape[64], base[64];
    snprintf(shape, sizeof shape, "%dx%d", N, C);
    snprintf(base, sizeof base, "memcpy %zu KB GB/s", n * sizeof(float) / 1024);
    print_row(name, shape, fb, tf, tb, bb, "GB/s", base, (double)c.bytes / tc * 1e-9);
    free(c.x), free(c.y), free(c.w), free(c.b), free(c.mean), free(c.rstd), free(c.dy);
    free(c.dx), free(c.dw), free(c.db);
}

int main(void)
{
    rng r;
    rng_seed(&r, 1);
    nn_set_threads(omp_get_max_threads());
    printf("bench_dense: %d threads; best of %d rounds; GFLOP/s count 2 x multiply-adds, "
           "backward = both products\n",
           nn_get_threads(), ROUNDS);
    printf("%-20s %-18s %15s %15s %8s %8s   %-33s\n", "layer", "shape", "forward", "backward",
           "fwd us", "bwd us", "baseline (same run)");
    bench_linear("linear qkv", 3200, 96, 288, &r);
    bench_linear("linear proj", 3200, 96, 96, &r);
    bench_linear("linear fc1", 3200, 96, 384, &r);
    bench_linear("linear fc2", 3200, 384, 96, &r);
    bench_linear("linear head", 64, 96, 10, &r);
    bench_attention("attention", 64, 50, 96, 3, NN_ATTN_ALL_QUERIES, 1, &r);
    bench_attention("attention LCA", 64, 6, 96, 3, 5, 0, &r);
    printf("GB/s rows: minimal traffic (forward reads x, writes y; backward reads dy, x, dx, "
           "writes dx)\n");
    bench_memory("layernorm", 3200, 96, ln_fwd, ln_bwd, &r);
    bench_memory("gelu", 3200, 384, gelu_fwd, gelu_bwd, &r);
    return 0;
}
