/* check_data.c - dataset readers: IDX (real Fashion-MNIST, gz and raw,
 * every corruption), CIFAR-10/100 binary files, the synthetic generator,
 * dataset_load dispatch, limits, tail split and statistics.
 *
 * Small files are written by the tests themselves into a fresh temporary
 * folder per test, which is removed at the end.
 */
#include "common/xalloc.h"
#include "tests/unit/testutil.h"
#include "worker/data/dataset.h"

#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* check's float macros pass floats through varargs (-Wdouble-promotion). */
#define FEQ(a, b) ck_assert_msg((a) == (b), "%s = %.9g, want %.9g", #a, (double)(a), (double)(b))
#define FNEAR(a, b, tol)                                                                           \
    ck_assert_msg(fabs((double)(a) - (double)(b)) <= (double)(tol), "%s = %.9g, want %.9g +- %g",  \
                  #a, (double)(a), (double)(b), (double)(tol))
Suite *suite_data(void);

/* ---- temporary folders and files --------------------------------------- */

static char tmp[256];

static void tmp_setup(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/kiln-data-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void tmp_teardown(void)
{
    rm_tree(tmp);
}

/* Path of `name` inside the test's folder (static buffer per slot). */
static const char *tpath(int slot, const char *name)
{
    static char buf[4][512];
    snprintf(buf[slot], sizeof buf[slot], "%s/%s", tmp, name);
    return buf[slot];
}

static void write_raw(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_gz(const char *path, const void *data, size_t len)
{
    gzFile f = gzopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gzwrite(f, data, (unsigned)len), (int)len);
    ck_assert_int_eq(gzclose(f), Z_OK);
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = xmalloc(*len + 1);
    ck_assert_uint_eq(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* An IDX image file of n images of rows x cols; pixel value from its index. */
static unsigned char *make_idx_images(uint32_t n, uint32_t rows, uint32_t cols, size_t *len)
{
    *len = 16 + (size_t)n * rows * cols;
    unsigned char *b = xmalloc(*len);
    put_be32(b, 0x00000803);
    put_be32(b + 4, n);
    put_be32(b + 8, rows);
    put_be32(b + 12, cols);
    for (size_t i = 16; i < *len; i++)
        b[i] = (unsigned char)((i * 37 + 11) & 0xff);
    return b;
}

static unsigned char *make_idx_labels(uint32_t n, int classes, size_t *len)
{
    *len = 8 + (size_t)n;
    unsigned char *b = xmalloc(*len);
    put_be32(b, 0x00000801);
    put_be32(b + 4, n);
    for (uint32_t i = 0; i < n; i++)
        b[8 + i] = (unsigned char)((i * 7 + 3) % (uint32_t)classes);
    return b;
}

/* Asserts a failed load: the code, both substrings in the message, d empty. */
static void expect_fail(int rc, int want, const errbuf *eb, const char *s1, const char *s2,
                        const dataset *d)
{
    ck_assert_msg(rc == want, "rc %d, want %d (%s)", rc, want, eb->msg);
    ck_assert_msg(strstr(eb->msg, s1) != NULL, "'%s' not in message '%s'", s1, eb->msg);
    ck_assert_msg(s2 == NULL || strstr(eb->msg, s2) != NULL, "'%s' not in message '%s'", s2,
                  eb->msg);
    ck_assert_int_eq(d->n, 0);
    ck_assert_ptr_null(d->images);
    ck_assert_ptr_null(d->labels);
}

/* ---- IDX ----------------------------------------------------------------- */

START_TEST(idx_fashion_mnist_real)
{
    data_spec spec = {.dataset = DS_FASHION_MNIST};
    dataset tr, te;
    errbuf eb;
    int rc = dataset_load(&tr, &te, &spec, &eb);
    ck_assert_msg(rc == 0, "%s", eb.msg);
    ck_assert_str_eq(tr.name, "fashion-mnist");
    ck_assert_int_eq(tr.n, 60000);
    ck_assert_int_eq(te.n, 10000);
    ck_assert_int_eq(tr.H, 28);
    ck_assert_int_eq(tr.W, 28);
    ck_assert_int_eq(tr.C, 1);
    ck_assert_int_eq(te.H, 28);
    ck_assert_int_eq(tr.num_classes, 10);
    FEQ(tr.mean[0], 0.2860f);
    FEQ(te.std[0], 0.3530f);
    /* Fashion-MNIST is balanced: 6000 / 1000 samples per class. */
    int count[10] = {0}, count_te[10] = {0};
    for (int i = 0; i < tr.n; i++) {
        ck_assert_uint_lt(tr.labels[i], 10);
        count[tr.labels[i]]++;
    }
    for (int i = 0; i < te.n; i++) {
        ck_assert_uint_lt(te.labels[i], 10);
        count_te[te.labels[i]]++;
    }
    for (int k = 0; k < 10; k++) {
        ck_assert_int_eq(count[k], 6000);
        ck_assert_int_eq(count_te[k], 1000);
    }
    /* Expected values computed independently with numpy from the .gz files. */
    const uint8_t first_tr[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    const uint8_t first_te[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    ck_assert_mem_eq(tr.labels, first_tr, 10);
    ck_assert_mem_eq(te.labels, first_te, 10);
    uint64_t s0 = 0, s_tr = 0, s_te = 0;
    for (int i = 0; i < 784; i++)
        s0 += tr.images[i];
    for (size_t i = 0; i < (size_t)tr.n * 784; i++)
        s_tr += tr.images[i];
    for (size_t i = 0; i < (size_t)te.n * 784; i++)
        s_te += te.images[i];
    ck_assert_uint_eq(s0, 76247);
    ck_assert_uint_eq(s_tr, 3431114169ULL);
    ck_assert_uint_eq(s_te, 573469082ULL);
    /* The published constants are the training set's own statistics. */
    float mean[3], std[3];
    dataset_compute_stats(&tr, mean, std);
    FNEAR(mean[0], 0.2860f, 1e-4f);
    FNEAR(std[0], 0.3530f, 1e-4f);

    /* Limits keep the first samples. */
    dataset tr2, te2;
    spec.train_limit = 1000;
    spec.test_limit = 77;
    rc = dataset_load(&tr2, &te2, &spec, &eb);
    ck_assert_msg(rc == 0, "%s", eb.msg);
    ck_assert_int_eq(tr2.n, 1000);
    ck_assert_int_eq(te2.n, 77);
    ck_assert_mem_eq(tr2.images, tr.images, 1000 * 784);
    ck_assert_mem_eq(te2.labels, te.labels, 77);
    dataset_free(&tr);
    dataset_free(&te);
    dataset_free(&tr2);
    dataset_free(&te2);
    ck_assert_ptr_null(tr.images);
    ck_assert_int_eq(tr.n, 0);
}
END_TEST

START_TEST(idx_gz_and_raw_identical)
{
    size_t li, ll;
    unsigned char *img = make_idx_images(5, 7, 6, &li);
    unsigned char *lab = make_idx_labels(5, 4, &ll);
    write_raw(tpath(0, "i.raw"), img, li);
    write_raw(tpath(1, "l.raw"), lab, ll);
    write_gz(tpath(2, "i.gz"), img, li);
    write_gz(tpath(3, "l.gz"), lab, ll);
    dataset a, b, c;
    errbuf eb;
    int rc = dataset_load_idx(&a, tpath(0, "i.raw"), tpath(1, "l.raw"), 4, &eb);
    ck_assert_msg(rc == 0, "%s", eb.msg);
    rc = dataset_load_idx(&b, tpath(2, "i.gz"), tpath(3, "l.gz"), 4, &eb);
    ck_assert_msg(rc == 0, "%s", eb.msg);
    rc = dataset_load_idx(&c, tpath(2, "i.gz"), tpath(1, "l.raw"), 4, &eb);
    ck_assert_msg(rc == 0, "%s", eb.msg);
    ck_assert_int_eq(a.n, 5);
    ck_assert_int_eq(a.H, 7);
    ck_assert_int_eq(a.W, 6);
    ck_assert_int_eq(a.C, 1);
    ck_assert_int_eq(a.num_classes, 4);
    ck_assert_mem_eq(a.images, img + 16, 5 * 7 * 6);
    ck_assert_mem_eq(a.labels, lab + 8, 5);
    ck_assert_int_eq(b.n, a.n);
    ck_assert_mem_eq(b.images, a.images, 5 * 7 * 6);
    ck_assert_mem_eq(b.labels, a.labels, 5);
    ck_assert_mem_eq(c.images, a.images, 5 * 7 * 6);
    /* Stats of the raw reader: checked against a direct double computation. */
    double s = 0, ss = 0;
    for (int i = 0; i < 5 * 7 * 6; i++) {
        double x = img[16 + i] / 255.0;
        s += x;
        ss += x * x;
    }
    double m = s / 210, sd = sqrt(ss / 210 - m * m);
    FNEAR(a.mean[0], m, 1e-6);
    FNEAR(a.std[0], sd, 1e-6);
    dataset_free(&a);
    dataset_free(&b);
    dataset_free(&c);
    dataset_free(&c); /* second free of an emptied dataset is harmless */
    free(img);
    free(lab);
}
END_TEST

typedef enum { CORRUPT_IMAGES, CORRUPT_LABELS } corrupt_target;

/* Writes good images/labels (5 images 4x3, classes 3), applies one edit to
 * one file, loads and checks the failure. edit: 'm' bad magic, 'h' cut in
 * the header, 't' cut in the data, 'g' trailing garbage, 'd' absurd rows,
 * 'n' absurd count, 'z' zero count, 'c' count mismatch, 'r' label out of
 * range. gz: write the gzip form. */
static void corrupt_case(char edit, corrupt_target t, int gz, int want, const char *problem)
{
    size_t li, ll;
    unsigned char *img = make_idx_images(5, 4, 3, &li);
    unsigned char *lab = make_idx_labels(5, 3, &ll);
    unsigned char *buf = t == CORRUPT_IMAGES ? img : lab;
    size_t *len = t == CORRUPT_IMAGES ? &li : &ll;
    unsigned char *grown = NULL;
    switch (edit) {
    case 'm':
        put_be32(buf, t == CORRUPT_IMAGES ? 0x00000801 : 0x00000803);
        break;
    case 'h':
        *len = 6;
        break;
    case 't':
        *len -= 3;
        break;
    case 'g':
        grown = xmalloc(*len + 2);
        memcpy(grown, buf, *len);
        grown[*len] = grown[*len + 1] = 0x55;
        buf = grown;
        *len += 2;
        break;
    case 'd':
        put_be32(buf + 8, 100000);
        break;
    case 'n':
        put_be32(buf + 4, 0x7fffffff);
        break;
    case 'z':
        put_be32(buf + 4, 0);
        break;
    case 'c':
        put_be32(lab + 4, 4);
        ll -= 1;
        break;
    case 'r':
        lab[8 + 2] = 3;
        break;
    default:
        ck_abort_msg("bad edit");
    }
    const char *ip = tpath(0, gz ? "images.gz" : "images");
    const char *lp = tpath(1, gz ? "labels.gz" : "labels");
    (gz ? write_gz : write_raw)(ip, t == CORRUPT_IMAGES ? buf : img, li);
    (gz ? write_gz : write_raw)(lp, t == CORRUPT_LABELS ? buf : lab, ll);
    dataset d;
    errbuf eb;
    int rc = dataset_load_idx(&d, ip, lp, 3, &eb);
    /* 'c' names both files; everything else names the damaged one. */
    expect_fail(rc, want, &eb, t == CORRUPT_IMAGES ? ip : lp, problem, &d);
    free(img);
    free(lab);
    free(grown);
}

START_TEST(idx_corruptions)
{
    for (int gz = 0; gz <= 1; gz++) {
        corrupt_case('m', CORRUPT_IMAGES, gz, ERR_FORMAT, "bad magic number 0x00000801");
        corrupt_case('m', CORRUPT_LABELS, gz, ERR_FORMAT, "bad magic number 0x00000803");
        corrupt_case('h', CORRUPT_IMAGES, gz, ERR_FORMAT, "truncated header");
        corrupt_case('h', CORRUPT_LABELS, gz, ERR_FORMAT, "truncated header");
        corrupt_case('t', CORRUPT_IMAGES, gz, ERR_FORMAT, "truncated: expected 60 bytes of pixels");
        corrupt_case('t', CORRUPT_LABELS, gz, ERR_FORMAT, "truncated: expected 5 bytes of labels");
        corrupt_case('g', CORRUPT_IMAGES, gz, ERR_FORMAT, "trailing garbage");
        corrupt_case('g', CORRUPT_LABELS, gz, ERR_FORMAT, "trailing garbage");
        corrupt_case('d', CORRUPT_IMAGES, gz, ERR_FORMAT, "absurd dimensions 5 x 100000 x 3");
        corrupt_case('n', CORRUPT_IMAGES, gz, ERR_FORMAT, "absurd dimensions 2147483647");
        corrupt_case('n', CORRUPT_LABELS, gz, ERR_FORMAT, "truncated: expected 2147483647");
        corrupt_case('z', CORRUPT_IMAGES, gz, ERR_FORMAT, "absurd dimensions 0 x");
        corrupt_case('z', CORRUPT_LABELS, gz, ERR_FORMAT, "absurd label count 0");
        corrupt_case('c', CORRUPT_LABELS, gz, ERR_FORMAT, "has 5 images but");
        corrupt_case('c', CORRUPT_IMAGES, gz, ERR_FORMAT, "has 4 labels");
        corrupt_case('r', CORRUPT_LABELS, gz, ERR_FORMAT, "label 3 of sample 2 is out of range");
    }
}
END_TEST

START_TEST(idx_bad_gzip_and_missing)
{
    size_t li, ll, glen;
    unsigned char *img = make_idx_images(50, 10, 10, &li);
    unsigned char *lab = make_idx_labels(50, 10, &ll);
    const char *ip = tpath(0, "images.gz"), *lp = tpath(1, "labels.gz");
    write_gz(ip, img, li);
    write_gz(lp, lab, ll);
    unsigned char *g = read_all(ip, &glen);
    dataset d;
    errbuf eb;

    /* A gzip stream cut in the middle of its deflate data. */
    write_raw(ip, g, glen / 2);
    int rc = dataset_load_idx(&d, ip, lp, 10, &eb);
    expect_fail(rc, ERR_FORMAT, &eb, ip, "gzip", &d);

    /* A wrong CRC in the gzip trailer (the 8 last bytes are CRC32 + ISIZE). */
    g[glen - 8] ^= 0xff;
    write_raw(ip, g, glen);
    rc = dataset_load_idx(&d, ip, lp, 10, &eb);
    expect_fail(rc, ERR_FORMAT, &eb, ip, "corrupt gzip data", &d);

    /* Missing file. */
    rc = dataset_load_idx(&d, tpath(2, "nope"), lp, 10, &eb);
    expect_fail(rc, ERR_IO, &eb, tpath(2, "nope"), "cannot open", &d);
    rc = dataset_load_idx(&d, ip, tpath(3, "nolabels"), 10, &eb);
    expect_fail(rc, ERR_IO, &eb, tpath(3, "nolabels"), "No such file", &d);
    free(img);
    free(lab);
    free(g);
}
END_TEST

START_TEST(idx_load_via_spec_raw_names)
{
    /* dataset_load finds the raw names when no .gz exists, in any root. */
    size_t li, ll, ti, tl;
    unsigned char *img = make_idx_images(6, 5, 5, &li);
    unsigned char *lab = make_idx_labels(6, 10, &ll);
    unsigned char *timg = make_idx_images(2, 5, 5, &ti);
    unsigned char *tlab = make_idx_labels(2, 10, &tl);
    write_raw(tpath(0, "train-images-idx3-ubyte"), img, li);
    write_gz(tpath(1, "train-labels-idx1-ubyte.gz"), lab, ll);
    write_raw(tpath(2, "t10k-images-idx3-ubyte"), timg, ti);
    write_raw(tpath(3, "t10k-labels-idx1-ubyte"), tlab, tl);
    data_spec spec = {.dataset = DS_MNIST};
    dataset tr, te;
    errbuf eb;
    int rc = dataset_load(&tr, &te, &spec, &eb);
    expect_fail(rc, ERR_INVALID, &eb, "data.root", "mnist", &tr);
    snprintf(spec.root, sizeof spec.root, "%s", tmp);
    rc = dataset_load(&tr, &te, &spec, &eb);
    ck_assert_msg(rc == 0, "%s", eb.msg);
    ck_assert_str_eq(tr.name, "mnist");
    ck_assert_int_eq(tr.n, 6);
    ck_assert_int_eq(te.n, 2);
    FEQ(tr.mean[0], 0.1307f);
    FEQ(te.std[0], 0.3081f);
    ck_assert_mem_eq(te.images, timg + 16, 50);
    dataset_free(&tr);
    dataset_free(&te);
    /* A broken test file fails the whole load and leaves both empty. */
    tlab[8] = 10;
    write_raw(tpath(3, "t10k-labels-idx1-ubyte"), tlab, tl);
    rc = dataset_load(&tr, &te, &spec, &eb);
    expect_fail(rc, ERR_FORMAT, &eb, "t10k-labels-idx1-ubyte", "out of range", &tr);
    ck_assert_ptr_null(te.images);
    free(img);
    free(lab);
    free(timg);
    free(tlab);
}
END_TEST

/* ---- CIFAR --------------------------------------------------------------- */

/* Pixel value of record r (global index), channel c, planar offset i. */
static uint8_t cifar_px(int r, int c, int i)
{
    return (uint8_t)((r * 131 + c * 71 + i * 3 + (i >> 5)) & 0xff);
}

/* Writes `records` records starting at global index first. */
static void write_cifar(const char *path, int first, int records, int c100)
{
    size_t rec = 3072 + (c100 ? 2 : 1);
    unsigned char *b = xmalloc(rec * (size_t)records);
    for (int r = 0; r < records; r++) {
        unsigned char *p = b + rec * (size_t)r;
        int g = first + r;
        if (c100) {
            p[0] = (unsigned char)(g % 20);
            p[1] = (unsigned char)((g * 13) % 100);
        } else {
            p[0] = (unsigned char)(g % 10);
        }
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 1024; i++)
                p[rec - 3072 + (size_t)c * 1024 + i] = cifar_px(g, c, i);
    }
    write_raw(path, b, rec * (size_t)records);
    free(b);
}

static void check_cifar_content(const dataset *d, int first, int n, int c100)
{
    ck_assert_int_eq(d->n, n);
    ck_assert_int_eq(d->H, 32);
    ck_assert_int_eq(d->W, 32);
    ck_assert_int_eq(d->C, 3);
    ck_assert_int_eq(d->num_classes, c100 ? 100 : 10);
    for (int r = 0; r < n; r++) {
        int g = first + r;
        ck_assert_int_eq(d->labels[r], c100 ? (g * 13) % 100 : g % 10);
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++)
                for (int c = 0; c < 3; c++)
                    ck_assert_int_eq(d->images[(((size_t)r * 32 + y) * 32 + x) * 3 + c],
                                     cifar_px(g, c, y * 32 + x));
    }
}

START_TEST(cifar10_files)
{
    write_cifar(tpath(0, "a.bin"), 0, 3, 0);
    write_cifar(tpath(1, "b.bin"), 3, 2, 0);
    const char *paths[2] = {tpath(0, "a.bin"), tpath(1, "b.bin")};
    dataset d;
    errbuf eb;
    int rc = dataset_load_cifar(&d, paths, 2, 0, &eb);
    ck_assert_msg(rc == 0, "%s", eb.msg);
    ck_assert_str_eq(d.name, "cifar10");
    check_cifar_content(&d, 0, 5, 0);
    FEQ(d.mean[0], 0.4914f);
    FEQ(d.mean[2], 0.4465f);
    FEQ(d.std[1], 0.2435f);
    dataset_free(&d);

    /* Through dataset_load, in the cifar-10-batches-bin subfolder. */
    char sub[512];
    snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin", tmp);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    for (int i = 0; i < 5; i++) {
        char name[64];
        snprintf(name, sizeof name, "cifar-10-batches-bin/data_batch_%d.bin", i + 1);
        write_cifar(tpath(0, name), 2 * i, 2, 0);
    }
    write_cifar(tpath(0, "cifar-10-batches-bin/test_batch.bin"), 100, 3, 0);
    data_spec spec = {.dataset = DS_CIFAR10};
    snprintf(spec.root, sizeof spec.root, "%s", tmp);
    dataset tr, te;
    rc = dataset_load(&tr, &te, &spec, &eb);
    ck_assert_msg(rc == 0, "%s", eb.msg);
    check_cifar_content(&tr, 0, 10, 0);
    check_cifar_content(&te, 100, 3, 0);
    dataset_free(&tr);
    dataset_free(&te);
    /* And directly in root, with a limit. */
    snprintf(spec.root, sizeof spec.root, "%s", sub);
    spec.train_limit = 7;
    rc = dataset_load(&tr, &te, &spec, &eb);
    ck_assert_msg(rc == 0, "%s", eb.msg);
    check_cifar_content(&tr, 0, 7, 0);
    dataset_free(&tr);
    dataset_free(&te);
    /* A missing batch is named. */
    unlink(tpath(0, "cifar-10-batches-bin/data_batch_4.bin"));
    rc = dataset_load(&tr, &te, &spec, &eb);
    expect_fail(rc, ERR_IO, &eb, "data_batch_4.bin", "cannot open", &tr);
}
END_TEST

START_TEST(cifar100_files)
{
    write_cifar(tpath(0, "train.bin"), 0, 4, 1);
    write_cifar(tpath(1, "test.bin"), 50, 2, 1);
    data_spec spec = {.dataset = DS_CIFAR100};
    snprintf(spec.root, sizeof spec.root, "%s", tmp);
    dataset tr, te;
    errbuf eb;
    int rc = dataset_load(&tr, &te, &spec, &eb);
    ck_assert_msg(rc == 0, "%s", eb.msg);
    ck_assert_str_eq(tr.name, "cifar100");
    check_cifar_content(&tr, 0, 4, 1);
    check_cifar_content(&te, 50, 2, 1);
    FEQ(tr.mean[1], 0.4865f);
    FEQ(te.std[2], 0.2762f);
    dataset_free(&tr);
    dataset_free(&te);
}
END_TEST

START_TEST(cifar_corruptions)
{
    dataset d;
    errbuf eb;
    const char *p = tpath(0, "x.bin");
    const char *paths[1] = {p};
    size_t len;

    /* Not a whole number of records. */
    write_cifar(p, 0, 2, 0);
    unsigned char *b = read_all(p, &len);
    write_raw(p, b, len - 5);
    int rc = dataset_load_cifar(&d, paths, 1, 0, &eb);
    expect_fail(rc, ERR_FORMAT, &eb, p, "not a positive multiple of the 3073-byte record", &d);
    /* A CIFAR-10 file read as CIFAR-100 has the wrong record size. */
    write_raw(p, b, len);
    rc = dataset_load_cifar(&d, paths, 1, 1, &eb);
    expect_fail(rc, ERR_FORMAT, &eb, p, "3074-byte record", &d);
    /* Empty file. */
    write_raw(p, b, 0);
    rc = dataset_load_cifar(&d, paths, 1, 0, &eb);
    expect_fail(rc, ERR_FORMAT, &eb, p, "size 0", &d);
    /* Label out of range in the second record. */
    b[3073] = 10;
    write_raw(p, b, len);
    rc = dataset_load_cifar(&d, paths, 1, 0, &eb);
    expect_fail(rc, ERR_FORMAT, &eb, p, "record 1 has label 10, out of range", &d);
    free(b);

    write_cifar(p, 0, 3, 1);
    b = read_all(p, &len);
    b[2 * 3074 + 1] = 100;
    write_raw(p, b, len);
    rc = dataset_load_cifar(&d, paths, 1, 1, &eb);
    expect_fail(rc, ERR_FORMAT, &eb, p, "record 2 has fine label 100", &d);
    b[2 * 3074 + 1] = 99;
    b[0] = 20;
    write_raw(p, b, len);
    rc = dataset_load_cifar(&d, paths, 1, 1, &eb);
    expect_fail(rc, ERR_FORMAT, &eb, p, "record 0 has coarse label 20", &d);
    free(b);

    /* A missing file, and a root with nothing in it. */
    const char *two[2] = {p, tpath(1, "missing.bin")};
    rc = dataset_load_cifar(&d, two, 2, 1, &eb);
    expect_fail(rc, ERR_IO, &eb, "missing.bin", "cannot open", &d);
    data_spec spec = {.dataset = DS_CIFAR10};
    dataset te;
    rc = dataset_load(&d, &te, &spec, &eb);
    expect_fail(rc, ERR_INVALID, &eb, "data.root", "cifar10", &d);
    snprintf(spec.root, sizeof spec.root, "%s", tmp);
    rc = dataset_load(&d, &te, &spec, &eb);
    expect_fail(rc, ERR_IO, &eb, "data_batch_1.bin not found", "cifar-10-batches-bin", &d);
    spec.dataset = DS_CIFAR100;
    rc = dataset_load(&d, &te, &spec, &eb);
    expect_fail(rc, ERR_IO, &eb, "train.bin not found", "cifar-100-binary", &d);
}
END_TEST

/* ---- synthetic, splits, statistics ---------------------------------------- */

/* A dataset fits a model only with its image size, channels and classes;
 * the refusal names both shapes. */
START_TEST(dataset_must_fit_the_model)
{
    dataset d;
    dataset_synthetic(&d, 4, 12, 3, 7, 1);
    model_cfg c;
    memset(&c, 0, sizeof c);
    c.image_size = 12;
    c.in_channels = 3;
    c.num_classes = 7;
    errbuf eb;
    ck_assert_int_eq(dataset_fits_model(&d, &c, &eb), 0);
    int *field[] = {&c.image_size, &c.in_channels, &c.num_classes};
    for (int i = 0; i < 3; i++) {
        (*field[i])++;
        ck_assert_int_eq(dataset_fits_model(&d, &c, &eb), ERR_INVALID);
        ck_assert_msg(strstr(eb.msg, "is 12x12x3 with 7 classes") != NULL, "%s", eb.msg);
        (*field[i])--;
    }
    d.W = 11; /* not square: no model takes it */
    ck_assert_int_eq(dataset_fits_model(&d, &c, &eb), ERR_INVALID);
    ck_assert_msg(strstr(eb.msg, "is 12x11x3") != NULL, "%s", eb.msg);
    d.W = 12;
    dataset_free(&d);
}
END_TEST

START_TEST(synthetic_deterministic)
{
    dataset a, b, c, small;
    dataset_synthetic(&a, 200, 12, 3, 7, 42);
    dataset_synthetic(&b, 200, 12, 3, 7, 42);
    dataset_synthetic(&c, 200, 12, 3, 7, 43);
    dataset_synthetic(&small, 50, 12, 3, 7, 42);
    size_t bytes = 200 * 12 * 12 * 3;
    ck_assert_str_eq(a.name, "synthetic");
    ck_assert_int_eq(a.n, 200);
    ck_assert_int_eq(a.H, 12);
    ck_assert_int_eq(a.C, 3);
    ck_assert_int_eq(a.num_classes, 7);
    ck_assert_mem_eq(a.images, b.images, bytes);
    ck_assert_mem_eq(a.labels, b.labels, 200);
    ck_assert_int_ne(memcmp(a.images, c.images, bytes), 0);
    ck_assert_int_ne(memcmp(a.labels, c.labels, 200), 0);
    /* A smaller set is a prefix of a larger one. */
    ck_assert_mem_eq(small.images, a.images, 50 * 12 * 12 * 3);
    ck_assert_mem_eq(small.labels, a.labels, 50);
    int seen[7] = {0};
    for (int i = 0; i < 200; i++) {
        ck_assert_uint_lt(a.labels[i], 7);
        seen[a.labels[i]]++;
    }
    for (int k = 0; k < 7; k++)
        ck_assert_int_gt(seen[k], 0);
    float mean[3], std[3];
    dataset_compute_stats(&a, mean, std);
    for (int ch = 0; ch < 3; ch++) {
        FNEAR(mean[ch], DATASET_SYNTH_MEAN, 0.05f);
        FNEAR(std[ch], DATASET_SYNTH_STD, 0.05f);
    }
    dataset_free(&a);
    dataset_free(&b);
    dataset_free(&c);
    dataset_free(&small);
}
END_TEST

START_TEST(synthetic_learnable)
{
    /* A nearest-class-mean classifier fitted on 1500 samples must classify
     * held-out samples far above chance (1/10): the classes are learnable. */
    dataset d;
    const int n_fit = 1500, n = 2000, S = 16, C = 1, K = 10, P = S * S * C;
    dataset_synthetic(&d, n, S, C, K, 7);
    double *mean = xcalloc((size_t)K * P, sizeof(double));
    int cnt[10] = {0};
    for (int i = 0; i < n_fit; i++) {
        cnt[d.labels[i]]++;
        for (int p = 0; p < P; p++)
            mean[d.labels[i] * P + p] += d.images[(size_t)i * P + p];
    }
    for (int k = 0; k < K; k++)
        for (int p = 0; p < P; p++)
            mean[k * P + p] /= cnt[k] ? cnt[k] : 1;
    int correct = 0;
    for (int i = n_fit; i < n; i++) {
        int best = -1;
        double bd = 0;
        for (int k = 0; k < K; k++) {
            double dist = 0;
            for (int p = 0; p < P; p++) {
                double e = d.images[(size_t)i * P + p] - mean[k * P + p];
                dist += e * e;
            }
            if (best < 0 || dist < bd) {
                best = k;
                bd = dist;
            }
        }
        correct += best == d.labels[i];
    }
    double acc = (double)correct / (n - n_fit);
    printf("synthetic nearest-mean accuracy: %.3f\n", acc);
    ck_assert_double_gt(acc, 0.85);
    free(mean);
    dataset_free(&d);
}
END_TEST

START_TEST(synthetic_via_spec_and_split)
{
    data_spec spec = {.dataset = DS_SYNTHETIC,
                      .synth_train = 120,
                      .synth_test = 30,
                      .synth_classes = 5,
                      .synth_channels = 3,
                      .synth_size = 8};
    dataset tr, te, all;
    errbuf eb;
    int rc = dataset_load(&tr, &te, &spec, &eb);
    ck_assert_msg(rc == 0, "%s", eb.msg);
    dataset_synthetic(&all, 150, 8, 3, 5, DATASET_SYNTH_SEED);
    ck_assert_int_eq(tr.n, 120);
    ck_assert_int_eq(te.n, 30);
    ck_assert_str_eq(te.name, "synthetic");
    ck_assert_int_eq(te.num_classes, 5);
    ck_assert_mem_eq(tr.images, all.images, 120 * 192);
    ck_assert_mem_eq(te.images, all.images + 120 * 192, 30 * 192);
    ck_assert_mem_eq(te.labels, all.labels + 120, 30);
    FEQ(te.mean[2], DATASET_SYNTH_MEAN);

    /* Validation split of the training set. */
    ck_assert_int_eq(dataset_val_count(&tr, 0.1), 12);
    ck_assert_int_eq(dataset_val_count(&tr, 0.0), 0);
    ck_assert_int_eq(dataset_val_count(&tr, 1.0), 119);
    ck_assert_int_eq(dataset_val_count(&tr, 0.004), 0);
    dataset val;
    dataset_split_tail(&tr, &val, dataset_val_count(&tr, 0.25));
    ck_assert_int_eq(tr.n, 90);
    ck_assert_int_eq(val.n, 30);
    ck_assert_int_eq(val.H, 8);
    ck_assert_mem_eq(tr.images, all.images, 90 * 192);
    ck_assert_mem_eq(val.images, all.images + 90 * 192, 30 * 192);
    ck_assert_mem_eq(val.labels, all.labels + 90, 30);
    dataset empty;
    dataset_split_tail(&val, &empty, 0);
    ck_assert_int_eq(empty.n, 0);
    ck_assert_int_eq(val.n, 30);
    dataset_free(&empty);
    dataset_truncate(&val, 10);
    ck_assert_int_eq(val.n, 10);
    ck_assert_mem_eq(val.labels, all.labels + 90, 10);
    dataset_truncate(&val, 0);
    ck_assert_int_eq(val.n, 10);
    dataset_free(&val);
    dataset_free(&tr);
    dataset_free(&te);
    dataset_free(&all);

    /* Bad sizes are ERR_INVALID naming the field. */
    struct {
        int *field, value;
        const char *name;
    } bad[] = {{&spec.synth_train, 0, "data.synth_train"},
               {&spec.synth_test, -1, "data.synth_train/synth_test"},
               {&spec.synth_classes, 1, "data.synth_classes"},
               {&spec.synth_classes, 300, "data.synth_classes"},
               {&spec.synth_channels, 2, "data.synth_channels"},
               {&spec.synth_size, 0, "data.synth_size"},
               {&spec.synth_size, 5000, "data.synth_size"},
               {&spec.train_limit, -1, "data.train_limit"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int keep = *bad[i].field;
        *bad[i].field = bad[i].value;
        rc = dataset_load(&tr, &te, &spec, &eb);
        expect_fail(rc, ERR_INVALID, &eb, bad[i].name, NULL, &tr);
        ck_assert_ptr_null(te.images);
        *bad[i].field = keep;
    }
}
END_TEST

START_TEST(stats_match_direct_computation)
{
    dataset d;
    dataset_synthetic(&d, 40, 6, 3, 4, 9);
    float mean[3], std[3];
    dataset_compute_stats(&d, mean, std);
    for (int c = 0; c < 3; c++) {
        double s = 0, ss = 0;
        size_t cnt = 0;
        for (size_t p = 0; p < (size_t)40 * 36; p++) {
            double x = d.images[p * 3 + c] / 255.0;
            s += x;
            ss += x * x;
            cnt++;
        }
        double m = s / (double)cnt;
        FNEAR(mean[c], m, 1e-6);
        FNEAR(std[c], sqrt(ss / (double)cnt - m * m), 1e-6);
    }
    dataset_free(&d);
}
END_TEST

Suite *suite_data(void)
{
    Suite *s = suite_create("data");
    tu_case_add(s, "idx", 60, tmp_setup, tmp_teardown,
                TU_TESTS(idx_fashion_mnist_real, idx_gz_and_raw_identical, idx_corruptions,
                         idx_bad_gzip_and_missing, idx_load_via_spec_raw_names));
    tu_case_add(s, "cifar", 0, tmp_setup, tmp_teardown,
                TU_TESTS(cifar10_files, cifar100_files, cifar_corruptions));
    tu_case_add(s, "synthetic", 0, NULL, NULL,
                TU_TESTS(dataset_must_fit_the_model, synthetic_deterministic, synthetic_learnable,
                         synthetic_via_spec_and_split, stats_match_direct_computation));
    return s;
}
