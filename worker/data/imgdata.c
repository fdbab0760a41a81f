/* imgdata.c - the folder and manifest datasets as file datasets (see
 * dataset_load_images in dataset.h).
 *
 * Only the indexes are built here; the pixels are decoded by the loader.
 * Depends on libc, imgindex.c; thread-safe.
 */
#include "common/xalloc.h"
#include "worker/data/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void as_dataset(dataset *d, imgindex *ix, const data_spec *spec, int train)
{
    const image_spec *im = &spec->img;
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", jobspec_dataset_name(spec->dataset));
    d->files = ix;
    d->n = ix->n;
    d->H = d->W = im->image_size;
    d->C = im->channels;
    d->num_classes = ix->num_classes;
    d->train_split = train;
    d->on_bad_fail = im->on_bad_fail;
    d->workers = im->workers;
    d->prefetch = im->prefetch;
    transform_spec *t = &d->tf;
    t->size = im->image_size;
    t->channels = im->channels;
    t->interp = im->bicubic ? RESAMPLE_BICUBIC : RESAMPLE_BILINEAR;
    memcpy(t->scale, im->scale, sizeof t->scale);
    memcpy(t->ratio, im->ratio, sizeof t->ratio);
    t->hflip = im->hflip;
    memcpy(t->jitter, im->jitter, sizeof t->jitter);
    t->ra_n = im->ra_n;
    t->ra_m = im->ra_m;
    t->erase_p = im->erase_p;
    t->erase_pixel = im->erase_pixel;
    t->resize = im->resize;
    for (int c = 0; c < 3; c++) {
        d->mean[c] = t->mean[c] = (float)im->mean[c];
        d->std[c] = t->std[c] = (float)im->std[c];
    }
}

static int join(char *out, size_t cap, const char *a, const char *b, errbuf *eb)
{
    int n = snprintf(out, cap, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= cap)
        return err_set(eb, ERR_INVALID, "data.root: path too long (%s/%s)", a, b);
    return 0;
}

int dataset_load_images(dataset *train, dataset *test, const data_spec *spec, errbuf *eb)
{
    const image_spec *im = &spec->img;
    imgindex *tr = xcalloc(1, sizeof *tr), *te = xcalloc(1, sizeof *te);
    char a[1024], b[1024];
    int rc;
    if (spec->dataset == DS_MANIFEST) {
        rc = join(a, sizeof a, spec->root, im->manifest_train, eb);
        if (rc == 0)
            rc = join(b, sizeof b, spec->root, im->manifest_test, eb);
        if (rc == 0)
            rc = imgindex_load_manifest(tr, a, spec->root, eb);
        if (rc == 0)
            rc = imgindex_load_manifest(te, b, spec->root, eb);
    } else if (im->split == SPLIT_FOLDERS) {
        rc = join(a, sizeof a, spec->root, im->train_dir, eb);
        if (rc == 0)
            rc = join(b, sizeof b, spec->root, im->val_dir, eb);
        if (rc == 0)
            rc = imgindex_scan(tr, a, 0.0, 0, eb);
        if (rc == 0)
            rc = imgindex_scan(te, b, 0.0, 0, eb);
    } else {
        rc = imgindex_scan(tr, spec->root, im->test_fraction, 1, eb);
        if (rc == 0)
            rc = imgindex_scan(te, spec->root, im->test_fraction, 2, eb);
    }
    if (rc == 0)
        rc = imgindex_align(te, tr, eb);
    if (rc != 0) {
        imgindex_free(tr);
        imgindex_free(te);
        free(tr);
        free(te);
        return rc;
    }
    as_dataset(train, tr, spec, 1);
    as_dataset(test, te, spec, 0);
    return 0;
}
