/* dataset.h - image classification datasets held in memory as uint8.
 *
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

#include <stdint.h>

#include "common/err.h"
#include "common/jobspec.h"

typedef struct dataset {
    char name[32];         /* "fashion-mnist", "cifar10", ... */
    int n;                 /* samples */
    int H, W, C;           /* per-sample shape */
    int num_classes;
    uint8_t *images;       /* (n, H, W, C), owned */
    uint8_t *labels;       /* (n), owned, each < num_classes */
    float mean[3], std[3]; /* per-channel normalisation of x/255 */
} dataset;

/* Loads the train and test splits described by spec (spec->train_limit and
 * test_limit applied). Both outputs are filled on success; on failure both
 * are left empty. Free with dataset_free. */
int dataset_load(dataset *train, dataset *test, const data_spec *spec, errbuf *eb);

/* Individual readers, for tests and tools. */
int dataset_load_idx(dataset *d, const char *images_path, const char *labels_path,
                     int num_classes, errbuf *eb);
int dataset_load_cifar(dataset *d, const char *const *paths, int n_paths, int cifar100,
                       errbuf *eb);
/* A learnable synthetic dataset: class-dependent patterns plus noise. */
void dataset_synthetic(dataset *d, int n, int size, int channels, int classes, uint64_t seed);

/* Moves the last `count` samples of src into a new dataset (validation split). */
void dataset_split_tail(dataset *src, dataset *tail, int count);

void dataset_free(dataset *d); /* leaves d empty; safe on an empty dataset */

#endif
