/* dataset.c - dataset_load (which files, which constants) and the helpers
 * that reshape a loaded dataset: truncate, tail split, statistics, free.
 *
 * The readers themselves live in idx.c, cifar.c and synthetic.c. This file
 * decides the file names under data_spec.root and the published
 * normalisation constants. Depends on libc; thread-safe (no shared state).
 */
#include "worker/data/dataset.h"

#include "common/xalloc.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DS_PATH_MAX 1024

static int join(char *out, const char *dir, const char *sub, const char *file, errbuf *eb)
{
    int len = sub != NULL ? snprintf(out, DS_PATH_MAX, "%s/%s/%s", dir, sub, file)
                          : snprintf(out, DS_PATH_MAX, "%s/%s", dir, file);
    if (len < 0 || len >= DS_PATH_MAX)
        return err_set(eb, ERR_INVALID, "data.root: path too long (%s)", dir);
    return 0;
}

/* <root>/<base>.gz if it exists, else <root>/<base> (whose absence the reader reports). */
static int idx_path(char *out, const char *root, const char *base, errbuf *eb)
{
    char gz[DS_PATH_MAX];
    int rc = join(gz, root, NULL, base, eb);
    if (rc != 0)
        return rc;
    size_t len = strlen(gz);
    if (len + 3 >= sizeof gz)
        return err_set(eb, ERR_INVALID, "data.root: path too long (%s)", root);
    memcpy(out, gz, len + 1);
    memcpy(gz + len, ".gz", 4);
    if (access(gz, F_OK) == 0)
        memcpy(out, gz, len + 4);
    return 0;
}

static int load_idx_pair(dataset *d, const char *root, const char *split, int classes, errbuf *eb)
{
    char img[DS_PATH_MAX], lab[DS_PATH_MAX], base[64];
    snprintf(base, sizeof base, "%s-images-idx3-ubyte", split);
    int rc = idx_path(img, root, base, eb);
    if (rc != 0)
        return rc;
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", split);
    rc = idx_path(lab, root, base, eb);
    if (rc != 0)
        return rc;
    return dataset_load_idx(d, img, lab, classes, eb);
}

static int load_idx_dataset(dataset *train, dataset *test, const data_spec *spec, errbuf *eb)
{
    int fashion = spec->dataset == DS_FASHION_MNIST;
    const char *root = spec->root;
    if (root[0] == '\0') {
        if (!fashion)
            return err_set(eb, ERR_INVALID, "data.root: required for mnist");
        root = JOBSPEC_DEFAULT_FMNIST_ROOT;
    }
    int rc = load_idx_pair(train, root, "train", 10, eb);
    if (rc == 0)
        rc = load_idx_pair(test, root, "t10k", 10, eb);
    if (rc != 0)
        return rc;
    const float mean = fashion ? 0.2860f : 0.1307f, std = fashion ? 0.3530f : 0.3081f;
    const char *name = fashion ? "fashion-mnist" : "mnist";
    dataset *both[2] = {train, test};
    for (int i = 0; i < 2; i++) {
        snprintf(both[i]->name, sizeof both[i]->name, "%s", name);
        for (int c = 0; c < 3; c++) {
            both[i]->mean[c] = mean;
            both[i]->std[c] = std;
        }
    }
    return 0;
}

static int load_cifar_dataset(dataset *train, dataset *test, const data_spec *spec, errbuf *eb)
{
    int c100 = spec->dataset == DS_CIFAR100;
    const char *sub = c100 ? "cifar-100-binary" : "cifar-10-batches-bin";
    const char *probe = c100 ? "train.bin" : "data_batch_1.bin";
    if (spec->root[0] == '\0')
        return err_set(eb, ERR_INVALID, "data.root: required for %s",
                       c100 ? "cifar100" : "cifar10");
    char p[DS_PATH_MAX];
    int rc = join(p, spec->root, NULL, probe, eb);
    if (rc != 0)
        return rc;
    const char *in = NULL; /* subfolder, or NULL for root itself */
    if (access(p, F_OK) != 0) {
        rc = join(p, spec->root, sub, probe, eb);
        if (rc != 0)
            return rc;
        if (access(p, F_OK) != 0)
            return err_set(eb, ERR_IO, "%s: %s not found there nor in %s/%s", spec->root, probe,
                           spec->root, sub);
        in = sub;
    }
    char paths[6][DS_PATH_MAX];
    const char *ptr[6];
    const char *train_files[5] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                  "data_batch_4.bin", "data_batch_5.bin"};
    int n_train = c100 ? 1 : 5;
    for (int i = 0; i < n_train; i++) {
        rc = join(paths[i], spec->root, in, c100 ? "train.bin" : train_files[i], eb);
        if (rc != 0)
            return rc;
        ptr[i] = paths[i];
    }
    rc = join(paths[5], spec->root, in, c100 ? "test.bin" : "test_batch.bin", eb);
    if (rc != 0)
        return rc;
    ptr[5] = paths[5];
    rc = dataset_load_cifar(train, ptr, n_train, c100, eb);
    if (rc == 0)
        rc = dataset_load_cifar(test, ptr + 5, 1, c100, eb);
    return rc;
}

static int load_synthetic(dataset *train, dataset *test, const data_spec *s, errbuf *eb)
{
    if (s->synth_train < 1 || s->synth_test < 0 || s->synth_train > INT32_MAX - s->synth_test)
        return err_set(eb, ERR_INVALID,
                       "data.synth_train/synth_test: need synth_train >= 1 and "
                       "synth_test >= 0 (got %d, %d)",
                       s->synth_train, s->synth_test);
    if (s->synth_classes < 2 || s->synth_classes > 256)
        return err_set(eb, ERR_INVALID, "data.synth_classes: %d is not in [2, 256]",
                       s->synth_classes);
    if (s->synth_channels != 1 && s->synth_channels != 3)
        return err_set(eb, ERR_INVALID, "data.synth_channels: %d is not 1 or 3", s->synth_channels);
    if (s->synth_size < 1 || s->synth_size > 1024)
        return err_set(eb, ERR_INVALID, "data.synth_size: %d is not in [1, 1024]", s->synth_size);
    double bytes = (double)(s->synth_train + s->synth_test) * s->synth_size * s->synth_size *
                   s->synth_channels;
    if (bytes > 4294967296.0)
        return err_set(eb, ERR_INVALID,
                       "data.synth_*: %.0f bytes of images is over the 4 GiB "
                       "limit",
                       bytes);
    /* One generation, then a split: the test samples share the classes' patterns. */
    dataset_synthetic(train, s->synth_train + s->synth_test, s->synth_size, s->synth_channels,
                      s->synth_classes, DATASET_SYNTH_SEED);
    dataset_split_tail(train, test, s->synth_test);
    return 0;
}

int dataset_load(dataset *train, dataset *test, const data_spec *spec, errbuf *eb)
{
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    int rc;
    if (spec->train_limit < 0 || spec->test_limit < 0)
        return err_set(eb, ERR_INVALID, "data.train_limit/test_limit: must be >= 0");
    switch (spec->dataset) {
    case DS_FASHION_MNIST:
    case DS_MNIST:
        rc = load_idx_dataset(train, test, spec, eb);
        break;
    case DS_CIFAR10:
    case DS_CIFAR100:
        rc = load_cifar_dataset(train, test, spec, eb);
        break;
    case DS_SYNTHETIC:
        rc = load_synthetic(train, test, spec, eb);
        break;
    case DS_FOLDER:
    case DS_MANIFEST:
        rc = dataset_load_images(train, test, spec, eb);
        break;
    default:
        rc = err_set(eb, ERR_INVALID, "data.dataset: unknown kind %d", (int)spec->dataset);
    }
    if (rc != 0) {
        dataset_free(train);
        dataset_free(test);
        return rc;
    }
    dataset_truncate(train, spec->train_limit);
    dataset_truncate(test, spec->test_limit);
    return 0;
}

static size_t sample_bytes(const dataset *d)
{
    return (size_t)d->H * d->W * d->C;
}

int dataset_label(const dataset *d, long i)
{
    return d->files != NULL ? d->files->labels[i] : d->labels[i];
}

void dataset_truncate(dataset *d, int limit)
{
    if (limit <= 0 || limit >= d->n)
        return;
    d->n = limit;
    if (d->files != NULL)
        return; /* the index stays; only the first n files are used */
    d->images = xrealloc(d->images, (size_t)limit * sample_bytes(d));
    d->labels = xrealloc(d->labels, (size_t)limit);
}

void dataset_split_tail(dataset *src, dataset *tail, int count)
{
    assert(count >= 0 && count <= src->n && src != tail);
    size_t per = sample_bytes(src);
    int keep = src->n - count;
    *tail = *src;
    tail->n = count;
    tail->images = xmallocarray(count ? (size_t)count : 1, per);
    tail->labels = xmalloc(count ? (size_t)count : 1);
    if (count > 0) {
        memcpy(tail->images, src->images + (size_t)keep * per, (size_t)count * per);
        memcpy(tail->labels, src->labels + keep, (size_t)count);
    }
    src->n = keep;
    src->images = xrealloc(src->images, keep ? (size_t)keep * per : 1);
    src->labels = xrealloc(src->labels, keep ? (size_t)keep : 1);
}

int dataset_val_count(const dataset *d, double val_fraction)
{
    if (!(val_fraction > 0.0) || d->n < 2)
        return 0;
    double c = floor(val_fraction * d->n + 0.5);
    return c > d->n - 1 ? d->n - 1 : (int)c;
}

int dataset_fits_model(const dataset *d, const model_cfg *c, errbuf *eb)
{
    if (d->H == c->image_size && d->W == c->image_size && d->C == c->in_channels &&
        d->num_classes == c->num_classes)
        return 0;
    return err_set(eb, ERR_INVALID,
                   "dataset %s is %dx%dx%d with %d classes; the model expects %dx%dx%d with %d "
                   "classes",
                   d->name, d->H, d->W, d->C, d->num_classes, c->image_size, c->image_size,
                   c->in_channels, c->num_classes);
}

void dataset_compute_stats(const dataset *d, float mean[3], float std[3])
{
    double s[3] = {0, 0, 0}, ss[3] = {0, 0, 0};
    size_t pixels = (size_t)d->n * d->H * d->W;
    int C = d->C < 3 ? d->C : 3;
    /* Integer sums per channel are exact; a histogram keeps it one pass. */
    uint64_t hist[3][256];
    memset(hist, 0, sizeof hist);
    for (size_t p = 0; p < pixels; p++)
        for (int c = 0; c < C; c++)
            hist[c][d->images[p * d->C + c]]++;
    for (int c = 0; c < 3; c++) {
        mean[c] = 0.0f;
        std[c] = 1.0f;
    }
    if (pixels == 0)
        return;
    for (int c = 0; c < C; c++) {
        for (int v = 0; v < 256; v++) {
            double x = v / 255.0;
            s[c] += (double)hist[c][v] * x;
            ss[c] += (double)hist[c][v] * x * x;
        }
        double m = s[c] / (double)pixels;
        double var = ss[c] / (double)pixels - m * m;
        mean[c] = (float)m;
        std[c] = var > 1e-12 ? (float)sqrt(var) : 1.0f;
    }
    for (int c = C; c < 3; c++) {
        mean[c] = mean[0];
        std[c] = std[0];
    }
}

void dataset_free(dataset *d)
{
    if (d == NULL)
        return;
    free(d->images);
    free(d->labels);
    if (d->files != NULL) {
        imgindex_free(d->files);
        free(d->files);
    }
    memset(d, 0, sizeof *d);
}
