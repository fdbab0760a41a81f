/* imgindex.h - the file list of an image dataset: paths, labels, classes.
 *
 * Built from a class-per-subfolder tree (torchvision's ImageFolder: classes
 * are the sorted folder names; files are found recursively, in the order of
 * sorted(os.walk) then sorted names, with the extensions .jpg .jpeg .png in
 * any case) or from a manifest (CSV "path,label" lines, an optional
 * "path,label" header; or JSON lines {"path": ..., "label": ...}; labels all
 * integers 0..K-1, or all class names, then sorted as folders are; paths
 * relative to the root). Only names and sizes are held, never pixels, so
 * memory is a few dozen bytes a file. The fingerprint (count, total bytes,
 * FNV-1a hash of every path, size and label) lets ranks check that they see
 * the same dataset. Immutable after building; may be shared by threads.
 */
#ifndef KILN_DATA_IMGINDEX_H
#define KILN_DATA_IMGINDEX_H

#include "common/err.h"

#include <stdint.h>

#define IMGINDEX_MAX_CLASSES 100000

typedef struct imgindex {
    char root[512];
    int n; /* files */
    int num_classes;
    char **class_names; /* (num_classes), owned */
    char *names;        /* all relative paths, NUL-separated, owned */
    uint64_t *name_off; /* (n) offsets into names */
    int32_t *labels;    /* (n) */
    uint64_t *bytes;    /* (n) file sizes */
    uint64_t total_bytes;
    uint64_t hash; /* FNV-1a 64 over (path, size, label) in order */
} imgindex;

/* Scans root/<class>/... as ImageFolder does. Files whose relative path
 * hashes into the held-out fraction are kept only when `keep` says so:
 * keep = 0 all files; 1 those outside the fraction (training); 2 those
 * inside (testing). The choice depends only on the path, so it is stable
 * across hosts, orders and additions. Returns 0, ERR_IO (no such folder),
 * ERR_FORMAT (no class folder, an empty dataset) with eb naming the folder. */
int imgindex_scan(imgindex *ix, const char *root, double holdout, int keep, errbuf *eb);

/* Makes ix use the classes of `like` (the training split), so that label k
 * means the same class in both: a class of ix unknown to `like` is
 * ERR_FORMAT naming it. */
int imgindex_align(imgindex *ix, const imgindex *like, errbuf *eb);

/* Reads a manifest (CSV or JSON lines, chosen by the extension .csv / .jsonl
 * / .json, else by the first character) whose paths are relative to root.
 * A bad line gives ERR_FORMAT naming the file and the line. */
int imgindex_load_manifest(imgindex *ix, const char *manifest, const char *root, errbuf *eb);

/* The relative path of file i. */
const char *imgindex_name(const imgindex *ix, int i);

/* root/name of file i into buf; returns 0 or ERR_INVALID when it does not fit. */
int imgindex_path(const imgindex *ix, int i, char *buf, size_t cap);

void imgindex_free(imgindex *ix); /* safe on a zeroed index */

#endif
