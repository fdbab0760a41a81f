/* bench_norm.c - batchnorm and pooling time at the reference models' shapes.
 *
 * Prints ms per call (fastest of repeats) and the effective memory traffic
 * in GB/s (tensor bytes read + written by one pass of the algorithm as
 * written: BN train forward reads x twice and writes y, backward reads x
 * and dy twice and writes dx).
 * Usage: OMP_NUM_THREADS=2 bench_norm [seconds per measurement]
 */
#include "common/rng.h"
#include "common/xalloc.h"
#include "worker/nn/norm.h"
#include "worker/nn/pooling.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bn_ctx {
    int kind, N, C;
    float *x, *y, *dy, *dx, *w, *b, *dw, *db, *mean, *rstd, *rm, *rv;
    int *am;
    int B, H, W;
} bn_ctx;

static void run(const bn_ctx *c)
{
    nn_bn bn = {.N = c->N,
                .C = c->C,
                .w = c->w,
                .b = c->b,
                .run_mean = c->rm,
                .run_var = c->rv,
                .eps = 1e-5f,
                .momentum = 0.1f};
    nn_bn_saved saved = {.mean = c->mean, .rstd = c->rstd};
    switch (c->kind) {
    case 0:
        nn_batchnorm_forward_train(c->y, &saved, c->x, NULL, &bn);
        break;
    case 1:
        nn_batchnorm_backward_train(c->dx, NULL, c->dw, c->db, c->dy, NULL, c->x, &saved, &bn);
        break;
    case 2:
        nn_maxpool2d_forward(c->y, c->am, c->x, c->B, c->H, c->W, c->C, 3, 2, 1);
        break;
    case 3:
        nn_maxpool2d_backward(c->dx, c->dy, c->am, c->B, (c->H - 1) / 2 + 1, (c->W - 1) / 2 + 1,
                              c->C);
        break;
    default:
        break;
    }
}

static double best_time(bn_ctx *c, int kind, double budget)
{
    c->kind = kind;
    run(c);
    double t0 = omp_get_wtime(), best = 1e30;
    int reps = 0;
    do {
        double t1 = omp_get_wtime();
        run(c);
        double t = omp_get_wtime() - t1;
        best = t < best ? t : best;
        reps++;
    } while (omp_get_wtime() - t0 < budget || reps < 3);
    return best;
}

static float *buf(size_t n, uint64_t seed)
{
    float *p = xaligned(n * sizeof(float));
    rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        p[i] = rng_uniform(&r) - 0.5f;
    return p;
}

int main(int argc, char **argv)
{
    double budget = argc > 1 ? atof(argv[1]) : 0.25;
    static const struct {
        const char *name;
        int B, H, C;
    } bn[] = {{"resnet20 s1", 64, 32, 16},
              {"resnet20 s2", 64, 16, 32},
              {"resnet20 s3", 64, 8, 64},
              {"mbv2-w0.5 hidden 48@32", 64, 32, 48},
              {"mbv2-w1.0 hidden 144@32", 64, 32, 144},
              {"ceit leff 384@7", 64, 7, 384}};
    printf("batchnorm train, %d threads\n%-26s %10s %10s %10s %10s\n", omp_get_max_threads(),
           "layer", "fwd ms", "fwd GB/s", "bwd ms", "bwd GB/s");
    for (size_t i = 0; i < sizeof bn / sizeof bn[0]; i++) {
        bn_ctx c;
        memset(&c, 0, sizeof c);
        c.N = bn[i].B * bn[i].H * bn[i].H;
        c.C = bn[i].C;
        size_t n = (size_t)c.N * c.C;
        c.x = buf(n, 1);
        c.y = buf(n, 2);
        c.dy = buf(n, 3);
        c.dx = buf(n, 4);
        c.w = buf((size_t)c.C, 5);
        c.b = buf((size_t)c.C, 6);
        c.dw = buf((size_t)c.C, 7);
        c.db = buf((size_t)c.C, 8);
        c.mean = buf((size_t)c.C, 9);
        c.rstd = buf((size_t)c.C, 10);
        c.rm = buf((size_t)c.C, 11);
        c.rv = buf((size_t)c.C, 12);
        for (int k = 0; k < c.C; k++)
            c.rv[k] += 1.0f;
        double tf = best_time(&c, 0, budget), tb = best_time(&c, 1, budget);
        double mb = (double)n * sizeof(float);
        printf("%-26s %10.3f %10.1f %10.3f %10.1f\n", bn[i].name, tf * 1e3, 3 * mb / tf * 1e-9,
               tb * 1e3, 5 * mb / tb * 1e-9);
        free(c.x);
        free(c.y);
        free(c.dy);
        free(c.dx);
        free(c.w);
        free(c.b);
        free(c.dw);
        free(c.db);
        free(c.mean);
        free(c.rstd);
        free(c.rm);
        free(c.rv);
    }
    bn_ctx c;
    memset(&c, 0, sizeof c);
    c.B = 64;
    c.H = c.W = 28;
    c.C = 32;
    size_t nin = (size_t)64 * 28 * 28 * 32, nout = (size_t)64 * 14 * 14 * 32;
    c.x = buf(nin, 1);
    c.dx = buf(nin, 2);
    c.y = buf(nout, 3);
    c.dy = buf(nout, 4);
    c.am = xaligned(nout * sizeof(int));
    double tf = best_time(&c, 2, budget), tb = best_time(&c, 3, budget);
    printf("maxpool 3/2/1 64x28x28x32: fwd %.3f ms, bwd %.3f ms\n", tf * 1e3, tb * 1e3);
    free(c.x);
    free(c.dx);
    free(c.y);
    free(c.dy);
    free(c.am);
    return 0;
}
