/* dataset.h - image classification datasets: in memory as uint8, or files.
 *
 * Users' images (folder, manifest) are file datasets: an index of files
 * (imgindex.h) that the loader decodes and transforms as it goes.
 * Loaders for IDX (MNIST, Fashion-MNIST; gzipped or raw), CIFAR-10/100
 * binary batches, and a seeded synthetic dataset for tests. Images are
 * stored channels-last (n, H, W, C) as bytes, labels as bytes; the float
 * conversion and normalisation happen in the batch loader. A bad file gives
 * ERR_FORMAT or ERR_IO with a message naming the file and the problem (wrong
 * magic, truncated data, label out of range, counts that disagree).
 * A dataset is immutable after loading and may be shared across threads.
 */
#ifndef KILN_DATA_DATASET_H
#define KILN_DATA_DATASET_H

#include "common/err.h"
#include "common/jobspec.h"
#include "worker/data/imgindex.h"
#include "worker/data/transform.h"

#include <stdint.h>

typedef struct dataset {
    char name[32]; /* "fashion-mnist", "cifar10", ... */
    int n;         /* samples */
    int H, W, C;   /* per-sample shape */
    int num_classes;
    uint8_t *images;       /* (n, H, W, C), owned */
    uint8_t *labels;       /* (n), owned, each < num_classes */
    float mean[3], std[3]; /* per-channel normalisation of x/255 */
    /* Users' images (folder, manifest): the files are decoded by the loader's
     * threads as batches are needed, so images and labels are NULL and
     * H, W, C are the transforms' output. */
    imgindex *files;   /* owned; NULL for the in-memory datasets */
    transform_spec tf; /* the transforms of the files */
    int train_split;   /* 1: the training split (train transforms), 0: eval transforms */
    int on_bad_fail;   /* 1: a bad file fails the loader; 0: skipped, counted, replaced */
    int workers;       /* decoding threads of a loader over this dataset */
    int prefetch;      /* batches decoded ahead */
} dataset;

/* The label of sample i (in-memory or file dataset). */
int dataset_label(const dataset *d, long i);

/* Builds the train and test splits of a folder or manifest data spec as file
 * datasets (imgdata.c): folder split "folders" reads root/<train_dir> and
 * root/<val_dir>, "fraction" holds out test_fraction of root's files by
 * path; a manifest lists the files of each split. The test split's classes
 * are aligned with the training split's. Returns 0, ERR_IO or ERR_FORMAT (eb names
 * the folder or file). */
int dataset_load_images(dataset *train, dataset *test, const data_spec *spec, errbuf *eb);

/* The data_spec has no seed of its own: a synthetic dataset is a fixed
 * function of its sizes, generated from this seed (the job seed changes the
 * initialisation and the sample order, not the data). */
#define DATASET_SYNTH_SEED 0x6b696c6e53594e54ULL /* "kilnSYNT" */

/* Normalisation of the synthetic dataset, per channel, of x/255. The
 * generator centres the patterns on 0.5 with a spread close to 0.25 (see
 * synthetic.c), so these fixed values normalise it to roughly N(0, 1)
 * whatever the split or its size. */
#define DATASET_SYNTH_MEAN 0.5f
#define DATASET_SYNTH_STD  0.25f

/* Loads the train and test splits described by spec (spec->train_limit and
 * test_limit applied: the first N samples of each split are kept). Both
 * outputs are filled on success; on failure both are left empty and eb names
 * the file and the problem. Free with dataset_free.
 *
 * Files under spec->root (an empty root means the Debian path for
 * Fashion-MNIST and is an error for the others):
 *   fashion-mnist, mnist: {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
 *     (the .gz name is tried first);
 *   cifar10: data_batch_1..5.bin and test_batch.bin, in root or in
 *     root/cifar-10-batches-bin;
 *   cifar100: train.bin and test.bin, in root or in root/cifar-100-binary;
 *   synthetic: nothing is read; synth_train + synth_test samples are
 *     generated from DATASET_SYNTH_SEED and the last synth_test of them
 *     form the test split.
 * mean/std are the usual published constants (Fashion-MNIST 0.2860/0.3530,
 * MNIST 0.1307/0.3081, CIFAR-10 and -100 per channel) or DATASET_SYNTH_*.
 * The validation split (spec->val_fraction) is left to the caller:
 * dataset_split_tail(train, val, dataset_val_count(train, spec->val_fraction)).
 * Returns 0, ERR_IO (missing or unreadable file), ERR_FORMAT (corrupt file)
 * or ERR_INVALID (a spec field out of range). */
int dataset_load(dataset *train, dataset *test, const data_spec *spec, errbuf *eb);

/* Reads one IDX image file (magic 0x00000803: n x rows x cols bytes) and its
 * IDX label file (magic 0x00000801: n bytes), each gzipped or raw (zlib
 * detects the gzip magic; a raw file is read as is). Checks the magic
 * numbers, the dimensions (at most 4096 per side and 2^32 bytes of pixels),
 * that the data is neither truncated nor followed by trailing bytes, that the
 * counts agree and that every label is < num_classes. d gets C = 1, the name
 * "idx", and mean/std computed from its pixels (dataset_compute_stats).
 * On failure d is left empty. Returns 0, ERR_IO or ERR_FORMAT. */
int dataset_load_idx(dataset *d, const char *images_path, const char *labels_path, int num_classes,
                     errbuf *eb);

/* Reads CIFAR binary batches, concatenated in the order given. CIFAR-10
 * records are <label><3072 pixels>, CIFAR-100 records (cifar100 != 0)
 * <coarse label><fine label><3072 pixels>, pixels channel-planar
 * (3, 32, 32); they are stored channels-last. The fine label is kept (100
 * classes). Each file must be a non-empty whole number of records with every
 * label in range. d gets the name "cifar10"/"cifar100" and the published
 * mean/std. On failure d is left empty. Returns 0, ERR_IO or ERR_FORMAT. */
int dataset_load_cifar(dataset *d, const char *const *paths, int n_paths, int cifar100, errbuf *eb);

/* A learnable synthetic dataset: class-dependent patterns plus noise. Sample
 * i depends only on (seed, i) and the sizes, so a larger set begins with
 * the samples of a smaller one. Requires n >= 0, 1 <= size <= 4096,
 * 1 <= channels <= 3 and 1 <= classes <= 256 (asserted). Name "synthetic",
 * mean/std DATASET_SYNTH_MEAN/STD. */
void dataset_synthetic(dataset *d, int n, int size, int channels, int classes, uint64_t seed);

/* Moves the last `count` samples of src into a new dataset (validation split).
 * 0 <= count <= src->n (asserted); tail gets src's name, shape, classes and
 * mean/std, and owns copies of the samples; src keeps the first n - count. */
void dataset_split_tail(dataset *src, dataset *tail, int count);

/* The size of the validation split for val_fraction of d: round(n * frac),
 * clamped to [0, n - 1] so that training keeps at least one sample. */
int dataset_val_count(const dataset *d, double val_fraction);

/* 0 if d's images and classes are what model c takes (image_size x image_size,
 * in_channels, num_classes); else ERR_INVALID naming both shapes. */
int dataset_fits_model(const dataset *d, const model_cfg *c, errbuf *eb);

/* Keeps only the first `limit` samples of d (no-op when limit <= 0 or
 * limit >= d->n). */
void dataset_truncate(dataset *d, int limit);

/* Per-channel mean and standard deviation of the pixels of d, as x/255.
 * For an empty dataset mean is 0 and std 1; a std of 0 is reported as 1. */
void dataset_compute_stats(const dataset *d, float mean[3], float std[3]);

void dataset_free(dataset *d); /* leaves d empty; safe on an empty dataset */

#endif
