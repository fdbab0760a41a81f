/* idx.c - the IDX reader (MNIST, Fashion-MNIST), gzipped or raw.
 *
 * Files go through zlib's gz* interface, which recognises the gzip magic and
 * reads anything else transparently, so `file.gz` and `file` both work. The
 * header is validated before anything large is allocated, and the pixel
 * buffer grows as data actually arrives, so a header that lies about its
 * size gives a "truncated" error instead of a huge allocation.
 * Depends on libc and zlib; no shared state, thread-safe.
 */
#include "common/xalloc.h"
#include "worker/data/dataset.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_MAGIC_IMAGES 0x00000803u /* unsigned bytes, 3 dimensions */
#define IDX_MAGIC_LABELS 0x00000801u /* unsigned bytes, 1 dimension */
#define IDX_MAX_SIDE     4096u
#define IDX_MAX_BYTES    ((uint64_t)1 << 32)
#define IDX_FIRST_CHUNK  ((size_t)16 << 20) /* initial buffer; doubles as data arrives */

static int idx_open(gzFile *out, const char *path, errbuf *eb)
{
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (f == NULL)
        return err_set(eb, ERR_IO, "%s: cannot open: %s", path,
                       errno ? strerror(errno) : "out of memory");
    gzbuffer(f, 1 << 17);
    *out = f;
    return 0;
}

/* zlib's gzerror text, without the "path: " it puts in front. */
static const char *gz_msg(gzFile f, const char *path, int *zerr)
{
    const char *m = gzerror(f, zerr);
    size_t n = strlen(path);
    if (strncmp(m, path, n) == 0 && m[n] == ':' && m[n + 1] == ' ')
        m += n + 2;
    return m;
}

/* Reads up to len bytes; *got receives how many arrived before EOF.
 * A gzip stream that is corrupt or cut short is ERR_FORMAT. */
static int idx_read(gzFile f, const char *path, void *buf, size_t len, size_t *got, errbuf *eb)
{
    size_t done = 0;
    int zerr;
    while (done < len) {
        size_t want = len - done;
        if (want > (1u << 30))
            want = 1u << 30;
        int r = gzread(f, (unsigned char *)buf + done, (unsigned)want);
        if (r < 0) {
            const char *msg = gz_msg(f, path, &zerr);
            if (zerr == Z_ERRNO)
                return err_set(eb, ERR_IO, "%s: read failed: %s", path, strerror(errno));
            return err_set(eb, ERR_FORMAT, "%s: corrupt gzip data: %s", path, msg);
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    *got = done;
    /* zlib reports a gzip stream that ends early only through gzerror. */
    const char *msg = gz_msg(f, path, &zerr);
    if (done < len && zerr != Z_OK)
        return err_set(eb, ERR_FORMAT, "%s: truncated gzip stream: %s", path, msg);
    return 0;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads the magic and `ndim` dimensions; checks the magic. */
static int idx_header(gzFile f, const char *path, uint32_t magic, int ndim, uint32_t *dims,
                      errbuf *eb)
{
    unsigned char h[16];
    size_t want = 4 + 4 * (size_t)ndim, got = 0;
    int rc = idx_read(f, path, h, want, &got, eb);
    if (rc != 0)
        return rc;
    if (got >= 4 && be32(h) != magic)
        return err_set(eb, ERR_FORMAT,
                       "%s: bad magic number 0x%08x, expected 0x%08x (an IDX %s file)", path,
                       be32(h), magic, ndim == 3 ? "image" : "label");
    if (got < want)
        return err_set(eb, ERR_FORMAT, "%s: truncated header (%zu of %zu bytes)", path, got, want);
    for (int i = 0; i < ndim; i++)
        dims[i] = be32(h + 4 + 4 * i);
    return 0;
}

/* Reads exactly `len` bytes of payload into a new buffer, then checks that
 * nothing follows. `what` names the payload in messages. */
static int idx_payload(gzFile f, const char *path, const char *what, size_t len, uint8_t **out,
                       errbuf *eb)
{
    size_t cap = len < IDX_FIRST_CHUNK ? len : IDX_FIRST_CHUNK;
    uint8_t *buf = xmalloc(cap ? cap : 1);
    size_t have = 0;
    int rc;
    for (;;) {
        size_t got = 0;
        rc = idx_read(f, path, buf + have, cap - have, &got, eb);
        if (rc != 0)
            goto out;
        have += got;
        if (have < cap || cap == len)
            break;
        cap = cap * 2 < len ? cap * 2 : len;
        buf = xrealloc(buf, cap);
    }
    if (have < len) {
        rc = err_set(eb, ERR_FORMAT, "%s: truncated: expected %zu bytes of %s, found %zu", path,
                     len, what, have);
        goto out;
    }
    unsigned char extra[64];
    size_t got = 0;
    rc = idx_read(f, path, extra, sizeof extra, &got, eb);
    if (rc != 0)
        goto out;
    if (got > 0) {
        rc = err_set(eb, ERR_FORMAT, "%s: trailing garbage after the %zu bytes of %s", path, len,
                     what);
        goto out;
    }
out:
    if (rc != 0) {
        free(buf);
        buf = NULL;
    }
    *out = buf;
    return rc;
}

static int idx_images(const char *path, uint32_t *n, uint32_t *rows, uint32_t *cols,
                      uint8_t **pixels, errbuf *eb)
{
    gzFile f = NULL;
    int rc = idx_open(&f, path, eb);
    if (rc != 0)
        return rc;
    uint32_t dims[3] = {0, 0, 0};
    rc = idx_header(f, path, IDX_MAGIC_IMAGES, 3, dims, eb);
    if (rc != 0)
        goto out;
    uint64_t bytes = (uint64_t)dims[0] * dims[1] * dims[2];
    if (dims[0] == 0 || dims[0] > INT32_MAX || dims[1] == 0 || dims[1] > IDX_MAX_SIDE ||
        dims[2] == 0 || dims[2] > IDX_MAX_SIDE || bytes > IDX_MAX_BYTES) {
        rc = err_set(eb, ERR_FORMAT,
                     "%s: absurd dimensions %u x %u x %u (need 1..%d images of 1..%u x 1..%u "
                     "pixels, at most %llu bytes)",
                     path, dims[0], dims[1], dims[2], INT32_MAX, IDX_MAX_SIDE, IDX_MAX_SIDE,
                     (unsigned long long)IDX_MAX_BYTES);
        goto out;
    }
    rc = idx_payload(f, path, "pixels", (size_t)bytes, pixels, eb);
    if (rc != 0)
        goto out;
    *n = dims[0];
    *rows = dims[1];
    *cols = dims[2];
out:
    gzclose(f);
    return rc;
}

static int idx_labels(const char *path, uint32_t *n, uint8_t **labels, errbuf *eb)
{
    gzFile f = NULL;
    int rc = idx_open(&f, path, eb);
    if (rc != 0)
        return rc;
    uint32_t dims[1] = {0};
    rc = idx_header(f, path, IDX_MAGIC_LABELS, 1, dims, eb);
    if (rc != 0)
        goto out;
    if (dims[0] == 0 || dims[0] > INT32_MAX) {
        rc = err_set(eb, ERR_FORMAT, "%s: absurd label count %u (need 1..%d)", path, dims[0],
                     INT32_MAX);
        goto out;
    }
    rc = idx_payload(f, path, "labels", dims[0], labels, eb);
    if (rc == 0)
        *n = dims[0];
out:
    gzclose(f);
    return rc;
}

int dataset_load_idx(dataset *d, const char *images_path, const char *labels_path, int num_classes,
                     errbuf *eb)
{
    assert(num_classes >= 1 && num_classes <= 256);
    memset(d, 0, sizeof *d);
    uint8_t *pixels = NULL, *labels = NULL;
    uint32_t n_img = 0, rows = 0, cols = 0, n_lab = 0;
    int rc = idx_labels(labels_path, &n_lab, &labels, eb);
    if (rc != 0)
        goto out;
    for (uint32_t i = 0; i < n_lab; i++) {
        if (labels[i] >= num_classes) {
            rc = err_set(eb, ERR_FORMAT,
                         "%s: label %u of sample %u is out of range (expected 0..%d)", labels_path,
                         labels[i], i, num_classes - 1);
            goto out;
        }
    }
    rc = idx_images(images_path, &n_img, &rows, &cols, &pixels, eb);
    if (rc != 0)
        goto out;
    if (n_img != n_lab) {
        rc = err_set(eb, ERR_FORMAT,
                     "image/label count mismatch: %s has %u images but %s has %u "
                     "labels",
                     images_path, n_img, labels_path, n_lab);
        goto out;
    }
    snprintf(d->name, sizeof d->name, "idx");
    d->n = (int)n_img;
    d->H = (int)rows;
    d->W = (int)cols;
    d->C = 1;
    d->num_classes = num_classes;
    d->images = pixels;
    d->labels = labels;
    pixels = labels = NULL;
    dataset_compute_stats(d, d->mean, d->std);
out:
    free(pixels);
    free(labels);
    return rc;
}
