/* loader.h - batches for training and evaluation, prefetched on a thread.
 *
 * Sampler: each epoch has one permutation of the training set, from
 * (seed, epoch). Global batch g is perm[g*G .. (g+1)*G), G = per-rank batch
 * times world size, and rank r takes the slice [r*b, (r+1)*b) of it; the
 * last incomplete global batch is dropped. So the data order is the same
 * whatever the rank count. Augmentation of a sample draws from an rng
 * derived from (seed, epoch, position in the permutation), so it too is the
 * same whatever rank processes it.
 *
 * Evaluation (shuffle off) walks the dataset in order; rank r takes the
 * contiguous shard [r*n/world, (r+1)*n/world), nothing dropped.
 *
 * Batches come out as floats (b, H, W, C), normalised with the dataset's
 * mean/std, with int32 labels. A background thread prepares the next batch
 * while the caller computes on the current one. One loader per thread.
 */
#ifndef KILN_DATA_LOADER_H
#define KILN_DATA_LOADER_H

#include <stdint.h>

#include "worker/data/dataset.h"

typedef struct loader_opts {
    int batch;             /* per-rank batch size */
    int rank, world;       /* this rank and the number of ranks (1 for local runs) */
    uint64_t seed;
    int train;             /* 1: shuffled, augmented, drop last; 0: in order, sharded, no augment */
    int crop_padding;      /* train only: random crop after padding (0 = off) */
    int hflip;             /* train only */
} loader_opts;

typedef struct loader loader;

/* Borrows ds, which must outlive the loader. */
loader *loader_new(const dataset *ds, const loader_opts *o);
void loader_free(loader *l); /* NULL is a no-op; joins the thread */

/* Batches this rank gets per epoch. */
long loader_batches_per_epoch(const loader *l);

/* Starts epoch `epoch`, skipping its first `skip` batches (for resuming). */
void loader_start_epoch(loader *l, int epoch, long skip);

/* Fills x (batch, H, W, C) and y (batch) with the next batch and returns
 * its size (< batch only for the last eval shard batch), or 0 at the end of
 * the epoch. The buffers must hold o->batch samples. */
int loader_next(loader *l, float *x, int32_t *y);

#endif
