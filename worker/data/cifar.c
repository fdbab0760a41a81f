/* cifar.c - the CIFAR-10/100 binary-format reader.
 *
 * Each file is a sequence of fixed-size records: CIFAR-10 <label><pixels>,
 * CIFAR-100 <coarse><fine><pixels>, with 3072 channel-planar pixels
 * (3, 32, 32). Sizes are checked against the record size before anything is
 * read, and records are converted to channels-last (32, 32, 3) on load.
 * Depends on libc only; no shared state, thread-safe.
 */
#include "common/xalloc.h"
#include "worker/data/dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CIFAR_SIDE   32
#define CIFAR_PIXELS (3 * CIFAR_SIDE * CIFAR_SIDE)

/* Published per-channel statistics of the training sets, of x/255. */
static const float cifar10_mean[3] = {0.4914f, 0.4822f, 0.4465f};
static const float cifar10_std[3] = {0.2470f, 0.2435f, 0.2616f};
static const float cifar100_mean[3] = {0.5071f, 0.4865f, 0.4409f};
static const float cifar100_std[3] = {0.2673f, 0.2564f, 0.2762f};

/* Opens path and returns its record count in *records. */
static int cifar_open(FILE **out, long *records, const char *path, size_t rec, errbuf *eb)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return err_set(eb, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return err_set(eb, ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        fclose(f);
        return err_set(eb, ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0 || (uint64_t)st.st_size % rec != 0) {
        fclose(f);
        return err_set(eb, ERR_FORMAT,
                       "%s: size %lld is not a positive multiple of the %zu-byte record "
                       "(truncated, or not a CIFAR-%s binary file)",
                       path, (long long)st.st_size, rec, rec == CIFAR_PIXELS + 1 ? "10" : "100");
    }
    *out = f;
    *records = (long)((uint64_t)st.st_size / rec);
    return 0;
}

/* Reads `records` records of f into images/labels (channels-last). */
static int cifar_read(FILE *f, const char *path, long records, int cifar100, uint8_t *images,
                      uint8_t *labels, errbuf *eb)
{
    size_t rec = CIFAR_PIXELS + (cifar100 ? 2 : 1);
    unsigned char buf[CIFAR_PIXELS + 2];
    const int plane = CIFAR_SIDE * CIFAR_SIDE;
    for (long r = 0; r < records; r++) {
        if (fread(buf, 1, rec, f) != rec) {
            if (ferror(f))
                return err_set(eb, ERR_IO, "%s: read failed at record %ld: %s", path, r,
                               strerror(errno));
            return err_set(eb, ERR_FORMAT, "%s: truncated at record %ld", path, r);
        }
        if (cifar100 && buf[0] >= 20)
            return err_set(eb, ERR_FORMAT,
                           "%s: record %ld has coarse label %u, out of range (expected 0..19)",
                           path, r, buf[0]);
        unsigned label = buf[rec - CIFAR_PIXELS - 1];
        unsigned classes = cifar100 ? 100 : 10;
        if (label >= classes)
            return err_set(eb, ERR_FORMAT,
                           "%s: record %ld has %slabel %u, out of range (expected 0..%u)", path, r,
                           cifar100 ? "fine " : "", label, classes - 1);
        labels[r] = (uint8_t)label;
        const unsigned char *px = buf + rec - CIFAR_PIXELS;
        uint8_t *dst = images + (size_t)r * CIFAR_PIXELS;
        for (int i = 0; i < plane; i++) {
            dst[3 * i + 0] = px[i];
            dst[3 * i + 1] = px[plane + i];
            dst[3 * i + 2] = px[2 * plane + i];
        }
    }
    return 0;
}

int dataset_load_cifar(dataset *d, const char *const *paths, int n_paths, int cifar100, errbuf *eb)
{
    memset(d, 0, sizeof *d);
    size_t rec = CIFAR_PIXELS + (cifar100 ? 2 : 1);
    long total = 0;
    int rc = 0;
    uint8_t *images = NULL, *labels = NULL;
    if (n_paths < 1)
        return err_set(eb, ERR_INVALID, "no CIFAR files given");
    /* Size every file first, so a bad one fails before the big allocation. */
    for (int i = 0; i < n_paths; i++) {
        FILE *f = NULL;
        long records = 0;
        rc = cifar_open(&f, &records, paths[i], rec, eb);
        if (rc != 0)
            return rc;
        fclose(f);
        if (records > INT32_MAX - total)
            return err_set(eb, ERR_FORMAT, "%s: too many records in all (over %d)", paths[i],
                           INT32_MAX);
        total += records;
    }
    images = xmallocarray((size_t)total, CIFAR_PIXELS);
    labels = xmalloc((size_t)total);
    long at = 0;
    for (int i = 0; i < n_paths; i++) {
        FILE *f = NULL;
        long records = 0;
        rc = cifar_open(&f, &records, paths[i], rec, eb);
        if (rc != 0)
            goto out;
        if (at + records > total)
            rc = err_set(eb, ERR_FORMAT, "%s: file grew while being read", paths[i]);
        else
            rc = cifar_read(f, paths[i], records, cifar100, images + (size_t)at * CIFAR_PIXELS,
                            labels + at, eb);
        fclose(f);
        if (rc != 0)
            goto out;
        at += records;
    }
    if (at != total) {
        rc = err_set(eb, ERR_FORMAT, "%s: file shrank while being read", paths[n_paths - 1]);
        goto out;
    }
    snprintf(d->name, sizeof d->name, "%s", cifar100 ? "cifar100" : "cifar10");
    d->n = (int)total;
    d->H = d->W = CIFAR_SIDE;
    d->C = 3;
    d->num_classes = cifar100 ? 100 : 10;
    memcpy(d->mean, cifar100 ? cifar100_mean : cifar10_mean, sizeof d->mean);
    memcpy(d->std, cifar100 ? cifar100_std : cifar10_std, sizeof d->std);
    d->images = images;
    d->labels = labels;
    images = labels = NULL;
out:
    free(images);
    free(labels);
    return rc;
}
