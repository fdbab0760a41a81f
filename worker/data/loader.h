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
 * Repeated augmentation (repeats R > 1): the epoch's sequence lists each
 * permuted sample R times in a row and is dealt to the ranks as DeiT's
 * RASampler deals it (position (g, r, i) takes entry ((g*b + i)*world + r)
 * / R of the permutation), so the R copies, each augmented by its own
 * position's stream, land on different ranks; the epoch keeps its length
 * and sees about n / R distinct samples. The order then depends on the
 * rank count.
 *
 * Evaluation (shuffle off) walks the dataset in order; rank r takes the
 * contiguous shard [r*n/world, (r+1)*n/world), nothing dropped.
 *
 * Random streams, with T = LOADER_STREAM_TAG: the permutation of epoch e is
 * rng_shuffle of the identity with rng_derive(seed ^ T, e, LOADER_PERM_STREAM);
 * the sample at position p of that permutation is augmented with
 * rng_derive(seed ^ T, e, p) through augment_draw (augment.h), or, for a
 * file dataset, through transform_draw_train (transform.h). The tag keeps
 * these streams apart from other users of the job seed.
 *
 * Batches come out as floats (b, H, W, C), normalised with the dataset's
 * mean/std, with int32 labels. A background thread prepares the next batch
 * while the caller computes on the current one (two buffers; it waits on a
 * condition variable, never spins); a file dataset gets ds->workers threads
 * and max(ds->prefetch, workers) buffers, each thread decoding whole
 * batches, so memory is fixed by the batch, not by the dataset.
 * One loader per thread: the functions below must all be called from the
 * thread that owns the loader.
 */
#ifndef KILN_DATA_LOADER_H
#define KILN_DATA_LOADER_H

#include "worker/data/dataset.h"

#include <stdint.h>

#define LOADER_STREAM_TAG  0x6b696c6e44415441ULL /* "kilnDATA" */
#define LOADER_PERM_STREAM UINT64_MAX            /* never a sample position */

typedef struct loader_opts {
    int batch;       /* per-rank batch size */
    int rank, world; /* this rank and the number of ranks (1 for local runs) */
    uint64_t seed;
    int train;        /* 1: shuffled, augmented, drop last; 0: in order, sharded, no augment */
    int crop_padding; /* train only: random crop after padding (0 = off) */
    int hflip;        /* train only */
    int repeats;      /* train only: repeated augmentation (DeiT's RASampler); 0 or 1 = off */
} loader_opts;

typedef struct loader loader;

/* Borrows ds, which must outlive the loader; copies o. Starts the prefetch
 * thread, which stays idle until loader_start_epoch. Requires batch >= 1,
 * 0 <= rank < world, crop_padding >= 0 and 1 <= ds->C <= 3 (asserted).
 * Never returns NULL (out of memory or no thread aborts, as xmalloc). */
loader *loader_new(const dataset *ds, const loader_opts *o);

/* Stops and joins the prefetch thread (waiting at most for the batch it is
 * preparing) and frees everything; fine mid-epoch. NULL is a no-op. */
void loader_free(loader *l);

/* Batches this rank gets per epoch: train floor(n / (batch * world)) (the
 * same on every rank), eval ceil(shard / batch) (shards differ by at most
 * one sample, so the count can differ by one between ranks). */
long loader_batches_per_epoch(const loader *l);

/* Starts epoch `epoch` (>= 0), skipping its first `skip` batches (for
 * resuming; clamped to [0, batches per epoch]). Batches the thread prepared
 * for an earlier epoch are dropped. May be called at any time, also in the
 * middle of an epoch. */
void loader_start_epoch(loader *l, int epoch, long skip);

/* Fills x (batch, H, W, C) and y (batch) with the next batch and returns
 * its size (< batch only for the last eval shard batch), or 0 at the end of
 * the epoch. For a file dataset (dataset.files) the samples are decoded and
 * transformed by `workers` threads, `prefetch` batches ahead; a bad file is
 * logged, counted and replaced by the next good file of the index (so a
 * batch stays full and the same on every run), or, with on_bad_fail, makes
 * this return the negative ERR_* (message in loader_error) from then on. The buffers must hold
 * o->batch samples. loader_start_epoch must have been called first (asserted). */
int loader_next(loader *l, float *x, int32_t *y);

/* Bad files met so far (skipped and replaced). Thread-safe. */
long loader_bad_files(loader *l);

/* The message of the failure loader_next reported ("" before any). */
const char *loader_error(const loader *l);

#endif
