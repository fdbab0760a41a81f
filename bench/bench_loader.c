/* bench_loader.c - how fast the batch loader produces augmented batches.
 *
 * Usage: bench_loader [ROOT [BATCHES [COMPUTE_US]]]
 *   ROOT        Fashion-MNIST folder (default: the Debian path)
 *   BATCHES     batches per measurement (default 2000)
 *   COMPUTE_US  simulated compute per batch for the overlap test (default 2000)
 * Measures, on the same data in the same run:
 *   1. sync:     the same work (permutation, crop/flip, normalise) done
 *                inline on the calling thread - the baseline;
 *   2. loader:   loader_next in a tight loop (one prefetch thread);
 *   3. overlap:  loader_next with COMPUTE_US of busy work between calls,
 *                reporting how long the caller still waits for data.
 * Prints one JSON line per measurement.
 */
#include "common/rng.h"
#include "common/xalloc.h"
#include "worker/data/augment.h"
#include "worker/data/dataset.h"
#include "worker/data/loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define B   128
#define PAD 2

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static volatile double sink;

static void spin_us(double us)
{
    double end = now() + us * 1e-6;
    double acc = 0;
    while (now() < end)
        acc += 1.0;
    sink = acc;
}

/* The loader's work without the thread: what one batch costs inline. */
static double bench_sync(const dataset *d, long batches, float *x, int32_t *y)
{
    size_t per = (size_t)d->H * d->W * d->C;
    uint32_t *perm = xmallocarray((size_t)d->n, sizeof *perm);
    float lut[AUGMENT_LUT_SIZE];
    augment_lut(lut, d->mean, d->std, d->C);
    long nb = d->n / B, done = 0;
    double t0 = now();
    for (int epoch = 0; done < batches; epoch++) {
        for (int i = 0; i < d->n; i++)
            perm[i] = (uint32_t)i;
        rng r;
        rng_derive(&r, LOADER_STREAM_TAG, (uint64_t)epoch, LOADER_PERM_STREAM);
        rng_shuffle(&r, perm, (uint32_t)d->n);
        for (long g = 0; g < nb && done < batches; g++, done++) {
            for (int i = 0; i < B; i++) {
                long p = g * B + i;
                int ox, oy, flip;
                rng_derive(&r, LOADER_STREAM_TAG, (uint64_t)epoch, (uint64_t)p);
                augment_draw(&ox, &oy, &flip, &r, PAD, 1);
                augment_crop_flip(x + i * per, d->images + perm[p] * per, lut, d->H, d->W, d->C,
                                  PAD, ox, oy, flip);
                y[i] = d->labels[perm[p]];
            }
        }
    }
    double dt = now() - t0;
    free(perm);
    return dt;
}

/* Runs `batches` batches through l; returns the wall time, and in *wait the
 * time spent inside loader_next. */
static double bench_loader(loader *l, long batches, double compute_us, float *x, int32_t *y,
                           double *wait)
{
    long done = 0;
    *wait = 0;
    double t0 = now();
    for (int epoch = 0; done < batches; epoch++) {
        loader_start_epoch(l, epoch, 0);
        while (done < batches) {
            double a = now();
            int n = loader_next(l, x, y);
            *wait += now() - a;
            if (n == 0)
                break;
            done++;
            if (compute_us > 0)
                spin_us(compute_us);
        }
    }
    return now() - t0;
}

int main(int argc, char **argv)
{
    data_spec spec = {.dataset = DS_FASHION_MNIST};
    if (argc > 1)
        snprintf(spec.root, sizeof spec.root, "%s", argv[1]);
    long batches = argc > 2 ? atol(argv[2]) : 2000;
    double compute_us = argc > 3 ? atof(argv[3]) : 2000.0;
    if (batches < 1 || compute_us < 0) {
        fprintf(stderr, "usage: %s [ROOT [BATCHES [COMPUTE_US]]]\n", argv[0]);
        return 2;
    }
    dataset tr, te;
    errbuf eb;
    double t0 = now();
    int rc = dataset_load(&tr, &te, &spec, &eb);
    if (rc != 0) {
        fprintf(stderr, "bench_loader: %s\n", eb.msg);
        return 1;
    }
    printf("{\"bench\":\"load\",\"dataset\":\"%s\",\"train\":%d,\"test\":%d,\"seconds\":%.3f}\n",
           tr.name, tr.n, te.n, now() - t0);
    size_t per = (size_t)tr.H * tr.W * tr.C;
    float *x = xaligned((size_t)B * per * sizeof(float));
    int32_t *y = xmallocarray(B, sizeof *y);

    double dt = bench_sync(&tr, batches, x, y);
    printf("{\"bench\":\"sync\",\"batch\":%d,\"batches\":%ld,\"seconds\":%.3f,"
           "\"batches_per_s\":%.0f,\"us_per_batch\":%.1f}\n",
           B, batches, dt, (double)batches / dt, dt * 1e6 / (double)batches);

    loader_opts o = {
        .batch = B, .rank = 0, .world = 1, .seed = 0, .train = 1, .crop_padding = PAD, .hflip = 1};
    loader *l = loader_new(&tr, &o);
    double wait;
    dt = bench_loader(l, batches, 0, x, y, &wait);
    printf("{\"bench\":\"loader\",\"batch\":%d,\"batches\":%ld,\"seconds\":%.3f,"
           "\"batches_per_s\":%.0f,\"us_per_batch\":%.1f}\n",
           B, batches, dt, (double)batches / dt, dt * 1e6 / (double)batches);

    long few = batches < 500 ? batches : 500;
    dt = bench_loader(l, few, compute_us, x, y, &wait);
    printf("{\"bench\":\"overlap\",\"batch\":%d,\"batches\":%ld,\"compute_us\":%.0f,"
           "\"seconds\":%.3f,\"wait_us_per_batch\":%.1f}\n",
           B, few, compute_us, dt, wait * 1e6 / (double)few);
    loader_free(l);

    loader_opts e = {.batch = 1000, .rank = 0, .world = 1, .train = 0};
    float *xe = xaligned((size_t)1000 * per * sizeof(float));
    int32_t *ye = xmallocarray(1000, sizeof *ye);
    l = loader_new(&te, &e);
    dt = bench_loader(l, loader_batches_per_epoch(l), 0, xe, ye, &wait);
    printf("{\"bench\":\"eval\",\"batch\":1000,\"samples_per_s\":%.0f}\n", (double)te.n / dt);
    loader_free(l);
    free(xe);
    free(ye);
    free(x);
    free(y);
    dataset_free(&tr);
    dataset_free(&te);
    return 0;
}
