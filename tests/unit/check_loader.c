/* check_loader.c - augmentation and the prefetching batch loader.
 *
 * Augmentation is checked against a naive second implementation that builds
 * the padded image explicitly; the loader against a recomputation of the
 * streams documented in loader.h, and against itself across rank counts,
 * epochs and resumes. Loaders are also freed mid-epoch (run under ASan).
 */
#include "common/rng.h"
#include "common/xalloc.h"
#include "tests/unit/testutil.h"
#include "worker/data/augment.h"
#include "worker/data/dataset.h"
#include "worker/data/loader.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* check's float macros pass floats through varargs (-Wdouble-promotion). */
#define FEQ(a, b) ck_assert_msg((a) == (b), "%s = %.9g, want %.9g", #a, (double)(a), (double)(b))
#define FNEAR(a, b, tol)                                                                           \
    ck_assert_msg(fabs((double)(a) - (double)(b)) <= (double)(tol), "%s = %.9g, want %.9g +- %g",  \
                  #a, (double)(a), (double)(b), (double)(tol))
Suite *suite_loader(void);

/* A dataset whose sample i carries i in channel 0 of its first two pixels
 * (mean 0, std 1 there, so the loader's float is byte / 255) and varied
 * content elsewhere. */
static void make_indexed(dataset *d, int n, int H, int W, int C)
{
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "indexed");
    d->n = n;
    d->H = H;
    d->W = W;
    d->C = C;
    d->num_classes = 10;
    size_t per = (size_t)H * W * C;
    d->images = xmalloc((size_t)n * per);
    d->labels = xmalloc((size_t)n);
    for (int i = 0; i < n; i++) {
        for (size_t p = 0; p < per; p++)
            d->images[i * per + p] = (uint8_t)((i * 29 + p * 13 + 5) & 0xff);
        d->images[i * per] = (uint8_t)(i & 0xff);
        d->images[i * per + (size_t)C] = (uint8_t)(i >> 8);
        d->labels[i] = (uint8_t)(i % 10);
    }
    for (int c = 0; c < 3; c++) {
        d->mean[c] = 0.0f;
        d->std[c] = 1.0f;
    }
}

static int decode_index(const float *x, int C)
{
    return (int)lrintf(x[0] * 255.0f) | (int)lrintf(x[C] * 255.0f) << 8;
}

/* The documented normalisation, in the same float operations. */
static float norm_ref(int v, float mean, float std)
{
    return ((float)v / 255.0f - mean) / std;
}

/* Naive crop + flip: pad explicitly (pixel 0), crop, mirror, normalise. */
static void crop_flip_ref(float *out, const uint8_t *img, int H, int W, int C, const float *mean,
                          const float *std, int pad, int ox, int oy, int flip)
{
    int PH = H + 2 * pad, PW = W + 2 * pad;
    int *padded = xcalloc((size_t)PH * PW * C, sizeof(int));
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++)
                padded[((y + pad) * PW + x + pad) * C + c] = img[(y * W + x) * C + c];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int cx = flip ? W - 1 - x : x;
            for (int c = 0; c < C; c++)
                out[(y * W + x) * C + c] =
                    norm_ref(padded[((oy + y) * PW + ox + cx) * C + c], mean[c], std[c]);
        }
    free(padded);
}

/* ---- augmentation -------------------------------------------------------- */

START_TEST(augment_matches_naive)
{
    const float mean[3] = {0.2860f, 0.48f, 0.45f}, std[3] = {0.3530f, 0.24f, 0.26f};
    const int H = 5, W = 7;
    for (int C = 1; C <= 3; C += 2) {
        uint8_t img[5 * 7 * 3];
        for (int i = 0; i < H * W * C; i++)
            img[i] = (uint8_t)(40 + i * 7);
        float lut[AUGMENT_LUT_SIZE];
        augment_lut(lut, mean, std, C);
        for (int c = 0; c < C; c++)
            for (int v = 0; v < 256; v++) {
                FEQ(lut[c * 256 + v], norm_ref(v, mean[c], std[c]));
                FNEAR(lut[c * 256 + v], (v / 255.0 - (double)mean[c]) / (double)std[c], 1e-5);
            }
        for (int pad = 0; pad <= 3; pad++)
            for (int oy = 0; oy <= 2 * pad; oy++)
                for (int ox = 0; ox <= 2 * pad; ox++)
                    for (int flip = 0; flip <= 1; flip++) {
                        float got[5 * 7 * 3], want[5 * 7 * 3];
                        augment_crop_flip(got, img, lut, H, W, C, pad, ox, oy, flip);
                        crop_flip_ref(want, img, H, W, C, mean, std, pad, ox, oy, flip);
                        ck_assert_msg(memcmp(got, want, sizeof(float) * H * W * C) == 0,
                                      "C %d pad %d ox %d oy %d flip %d", C, pad, ox, oy, flip);
                    }
        /* The padding is pixel 0 normalised: (0 - mean) / std. */
        float out[5 * 7 * 3];
        augment_crop_flip(out, img, lut, H, W, C, 2, 0, 0, 0);
        for (int c = 0; c < C; c++) {
            FNEAR(out[c], -mean[c] / std[c], 1e-6);
            FEQ(out[(1 * W + 1) * C + c], lut[c * 256]);
            /* (2, 2) of the crop is (0, 0) of the image. */
            FEQ(out[(2 * W + 2) * C + c], lut[c * 256 + img[c]]);
        }
        /* No padding, no flip = plain normalisation; a flip mirrors it. */
        float plain[5 * 7 * 3];
        augment_normalize(plain, img, lut, H, W, C);
        augment_crop_flip(out, img, lut, H, W, C, 0, 0, 0, 0);
        ck_assert_mem_eq(out, plain, sizeof(float) * H * W * C);
        augment_crop_flip(out, img, lut, H, W, C, 0, 0, 0, 1);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < C; c++)
                    FEQ(out[(y * W + x) * C + c], plain[(y * W + W - 1 - x) * C + c]);
    }
}
END_TEST

START_TEST(augment_draw_ranges)
{
    rng r;
    rng_seed(&r, 5);
    int hist_x[5] = {0}, hist_y[5] = {0}, flips = 0;
    const int N = 20000;
    for (int i = 0; i < N; i++) {
        int ox, oy, flip;
        augment_draw(&ox, &oy, &flip, &r, 2, 1);
        ck_assert_int_ge(ox, 0);
        ck_assert_int_le(ox, 4);
        ck_assert_int_ge(oy, 0);
        ck_assert_int_le(oy, 4);
        hist_x[ox]++;
        hist_y[oy]++;
        flips += flip;
    }
    for (int k = 0; k < 5; k++) {
        ck_assert_int_gt(hist_x[k], N / 5 - 300);
        ck_assert_int_lt(hist_x[k], N / 5 + 300);
        ck_assert_int_gt(hist_y[k], N / 5 - 300);
        ck_assert_int_lt(hist_y[k], N / 5 + 300);
    }
    ck_assert_int_gt(flips, N / 2 - 400);
    ck_assert_int_lt(flips, N / 2 + 400);
    for (int i = 0; i < 100; i++) {
        int ox, oy, flip;
        augment_draw(&ox, &oy, &flip, &r, 0, 0);
        ck_assert_int_eq(ox + oy + flip, 0);
    }
}
END_TEST

/* ---- the loader ---------------------------------------------------------- */

/* Reads a whole epoch: x (nb*batch*per), y (nb*batch); returns samples read. */
static long read_epoch(loader *l, int epoch, long skip, float *x, int32_t *y, size_t per, int batch)
{
    loader_start_epoch(l, epoch, skip);
    long total = 0;
    int n;
    while ((n = loader_next(l, x + total * per, y + total)) > 0) {
        ck_assert_int_le(n, batch);
        total += n;
    }
    ck_assert_int_eq(loader_next(l, x, y), 0); /* stays at the end */
    return total;
}

START_TEST(loader_matches_documented_streams)
{
    dataset d;
    dataset_synthetic(&d, 70, 6, 3, 4, 3);
    d.mean[1] = 0.4f;
    d.std[2] = 0.3f;
    loader_opts o = {
        .batch = 8, .rank = 0, .world = 1, .seed = 99, .train = 1, .crop_padding = 2, .hflip = 1};
    loader *l = loader_new(&d, &o);
    ck_assert_int_eq(loader_batches_per_epoch(l), 8);
    size_t per = 6 * 6 * 3;
    float *x = xmallocarray(64 * per, sizeof(float)), *want = xmalloc(per * sizeof(float));
    int32_t y[64];
    uint32_t perm[70];
    for (int epoch = 0; epoch < 3; epoch++) {
        ck_assert_int_eq(read_epoch(l, epoch, 0, x, y, per, 8), 64);
        for (uint32_t i = 0; i < 70; i++)
            perm[i] = i;
        rng r;
        rng_derive(&r, 99 ^ LOADER_STREAM_TAG, (uint64_t)epoch, LOADER_PERM_STREAM);
        rng_shuffle(&r, perm, 70);
        int flipped = 0;
        for (int p = 0; p < 64; p++) {
            int ox, oy, flip;
            rng_derive(&r, 99 ^ LOADER_STREAM_TAG, (uint64_t)epoch, (uint64_t)p);
            augment_draw(&ox, &oy, &flip, &r, 2, 1);
            flipped += flip;
            crop_flip_ref(want, d.images + perm[p] * per, 6, 6, 3, d.mean, d.std, 2, ox, oy, flip);
            ck_assert_msg(memcmp(x + p * per, want, per * sizeof(float)) == 0,
                          "epoch %d position %d", epoch, p);
            ck_assert_int_eq(y[p], d.labels[perm[p]]);
        }
        ck_assert_int_gt(flipped, 0);
        ck_assert_int_lt(flipped, 64);
    }
    loader_free(l);
    free(x);
    free(want);
    dataset_free(&d);
}
END_TEST

START_TEST(loader_deterministic_and_epochs_differ)
{
    dataset d;
    make_indexed(&d, 300, 5, 5, 1);
    loader_opts o = {.batch = 16, .world = 1, .seed = 7, .train = 1};
    loader *a = loader_new(&d, &o), *b = loader_new(&d, &o);
    o.seed = 8;
    loader *c = loader_new(&d, &o);
    size_t per = 25;
    long nb = loader_batches_per_epoch(a);
    ck_assert_int_eq(nb, 300 / 16);
    float *xa = xmallocarray((size_t)nb * 16 * per, sizeof(float));
    float *xb = xmallocarray((size_t)nb * 16 * per, sizeof(float));
    int32_t *ya = xmallocarray((size_t)nb * 16, sizeof(int32_t));
    int32_t *yb = xmallocarray((size_t)nb * 16, sizeof(int32_t));
    int first0[288], first1[288];
    for (int epoch = 0; epoch < 2; epoch++) {
        long n = read_epoch(a, epoch, 0, xa, ya, per, 16);
        ck_assert_int_eq(n, nb * 16);
        ck_assert_int_eq(read_epoch(b, epoch, 0, xb, yb, per, 16), n);
        ck_assert_mem_eq(xa, xb, (size_t)n * per * sizeof(float));
        ck_assert_mem_eq(ya, yb, (size_t)n * sizeof(int32_t));
        ck_assert_int_eq(read_epoch(c, epoch, 0, xb, yb, per, 16), n);
        ck_assert_int_ne(memcmp(xa, xb, (size_t)n * per * sizeof(float)), 0);
        /* Each sample at most once per epoch, and its label goes with it. */
        char seen[300] = {0};
        for (long i = 0; i < n; i++) {
            int k = decode_index(xa + i * per, 1);
            ck_assert_int_lt(k, 300);
            ck_assert_int_eq(seen[k], 0);
            seen[k] = 1;
            ck_assert_int_eq(ya[i], k % 10);
            (epoch == 0 ? first0 : first1)[i] = k;
        }
    }
    ck_assert_int_ne(memcmp(first0, first1, sizeof first0), 0);
    loader_free(a);
    loader_free(b);
    loader_free(c);
    free(xa);
    free(xb);
    free(ya);
    free(yb);
    dataset_free(&d);
}
END_TEST

/* Repeated augmentation: R copies in a row, dealt across ranks as DeiT's
 * RASampler deals them; each copy is a different position, so a different
 * augmentation stream. */
START_TEST(loader_repeated_augmentation)
{
    dataset d;
    make_indexed(&d, 240, 5, 5, 1);
    size_t per = 25;
    loader_opts o = {.batch = 12, .world = 1, .seed = 9, .train = 1, .repeats = 3};
    loader *l = loader_new(&d, &o);
    long nb = loader_batches_per_epoch(l);
    float *x = xmallocarray((size_t)nb * 12 * per, sizeof(float));
    int32_t *y = xmallocarray((size_t)nb * 12, sizeof(int32_t));
    long n = read_epoch(l, 1, 0, x, y, per, 12);
    ck_assert_int_eq(n, 240);
    int seen[240] = {0};
    for (long p = 0; p < n; p++) {
        int k = decode_index(x + p * per, 1);
        ck_assert_int_eq(k, decode_index(x + (p / 3 * 3) * per, 1));
        seen[k]++;
    }
    int distinct = 0;
    for (int k = 0; k < 240; k++) {
        ck_assert_int_le(seen[k], 3);
        distinct += seen[k] > 0;
    }
    ck_assert_int_eq(distinct, 80);
    loader_free(l);
    /* Two ranks, R = 2: both ranks' i-th sample of batch g is the same sample. */
    o.world = 2, o.batch = 6, o.repeats = 2;
    loader *r0 = loader_new(&d, &o);
    o.rank = 1;
    loader *r1 = loader_new(&d, &o);
    float *x1 = xmallocarray((size_t)nb * 12 * per, sizeof(float));
    int32_t *y1 = xmallocarray((size_t)nb * 12, sizeof(int32_t));
    long n0 = read_epoch(r0, 0, 0, x, y, per, 6), n1 = read_epoch(r1, 0, 0, x1, y1, per, 6);
    ck_assert_int_eq(n0, n1);
    for (long p = 0; p < n0; p++)
        ck_assert_int_eq(decode_index(x + p * per, 1), decode_index(x1 + p * per, 1));
    loader_free(r0);
    loader_free(r1);
    free(x);
    free(x1);
    free(y);
    free(y1);
    dataset_free(&d);
}
END_TEST

START_TEST(loader_rank_slices_union)
{
    /* The global batch of 1 rank equals, element for element, the
     * concatenation of the slices of 2 and of 4 ranks, for every batch. */
    dataset d;
    dataset_synthetic(&d, 203, 7, 3, 5, 11);
    const int G = 8;
    size_t per = 7 * 7 * 3;
    loader_opts o = {
        .batch = G, .world = 1, .seed = 123, .train = 1, .crop_padding = 2, .hflip = 1};
    loader *one = loader_new(&d, &o);
    long nb = loader_batches_per_epoch(one);
    ck_assert_int_eq(nb, 203 / G);
    float *gx = xmallocarray((size_t)G * per, sizeof(float));
    float *rx = xmallocarray((size_t)G * per, sizeof(float));
    int32_t gy[8], ry[8];
    for (int world = 2; world <= 4; world *= 2) {
        loader *ranks[4];
        for (int r = 0; r < world; r++) {
            loader_opts ro = o;
            ro.batch = G / world;
            ro.rank = r;
            ro.world = world;
            ranks[r] = loader_new(&d, &ro);
            ck_assert_int_eq(loader_batches_per_epoch(ranks[r]), nb);
        }
        for (int epoch = 4; epoch < 6; epoch++) {
            loader_start_epoch(one, epoch, 0);
            for (int r = 0; r < world; r++)
                loader_start_epoch(ranks[r], epoch, 0);
            for (long g = 0; g < nb; g++) {
                ck_assert_int_eq(loader_next(one, gx, gy), G);
                for (int r = 0; r < world; r++) {
                    int b = G / world;
                    ck_assert_int_eq(loader_next(ranks[r], rx + (size_t)r * b * per, ry + r * b),
                                     b);
                }
                ck_assert_msg(memcmp(gx, rx, (size_t)G * per * sizeof(float)) == 0,
                              "world %d epoch %d batch %ld", world, epoch, g);
                ck_assert_mem_eq(gy, ry, sizeof gy);
            }
            ck_assert_int_eq(loader_next(one, gx, gy), 0);
        }
        for (int r = 0; r < world; r++)
            loader_free(ranks[r]);
    }
    loader_free(one);
    free(gx);
    free(rx);
    dataset_free(&d);
}
END_TEST

START_TEST(loader_eval_shards)
{
    dataset d;
    make_indexed(&d, 103, 4, 3, 3);
    /* Channel 0 keeps mean 0, std 1 for decode_index. */
    d.mean[1] = 0.3f;
    d.std[1] = 0.2f;
    size_t per = 4 * 3 * 3;
    int covered[103] = {0};
    float *x = xmallocarray(40 * per, sizeof(float));
    int32_t y[40];
    const long want_nb[3] = {9, 9, 9}, last[3] = {2, 2, 3};
    for (int r = 0; r < 3; r++) {
        /* Augmentation options are ignored for evaluation. */
        loader_opts o = {.batch = 4,
                         .rank = r,
                         .world = 3,
                         .seed = 1,
                         .train = 0,
                         .crop_padding = 2,
                         .hflip = 1};
        loader *l = loader_new(&d, &o);
        ck_assert_int_eq(loader_batches_per_epoch(l), want_nb[r]);
        loader_start_epoch(l, 0, 0);
        long total = 0, batches = 0;
        int n, prev = 0;
        while ((n = loader_next(l, x + total * per, y + total)) > 0) {
            batches++;
            prev = n;
            total += n;
        }
        ck_assert_int_eq(batches, want_nb[r]);
        ck_assert_int_eq(prev, last[r]);
        long lo = (long)r * 103 / 3;
        for (long i = 0; i < total; i++) {
            int k = decode_index(x + i * per, 3);
            ck_assert_int_eq(k, lo + i); /* in order */
            covered[k]++;
            ck_assert_int_eq(y[i], k % 10);
            /* Plain normalisation of every value. */
            for (size_t p = 0; p < per; p++) {
                int c = (int)(p % 3);
                double ref =
                    (d.images[(size_t)k * per + p] / 255.0 - (double)d.mean[c]) / (double)d.std[c];
                FNEAR(x[i * per + p], ref, 1e-6);
            }
        }
        /* A second epoch gives the same shard. */
        float *x2 = xmallocarray(40 * per, sizeof(float));
        int32_t y2[40];
        ck_assert_int_eq(read_epoch(l, 1, 0, x2, y2, per, 4), total);
        ck_assert_mem_eq(x2, x, (size_t)total * per * sizeof(float));
        free(x2);
        loader_free(l);
    }
    for (int k = 0; k < 103; k++)
        ck_assert_int_eq(covered[k], 1);
    free(x);
    dataset_free(&d);
}
END_TEST

START_TEST(loader_skip_resume)
{
    dataset d;
    dataset_synthetic(&d, 150, 6, 1, 3, 2);
    size_t per = 36;
    loader_opts o = {
        .batch = 6, .world = 2, .rank = 1, .seed = 5, .train = 1, .crop_padding = 1, .hflip = 1};
    loader *a = loader_new(&d, &o), *b = loader_new(&d, &o);
    long nb = loader_batches_per_epoch(a);
    ck_assert_int_eq(nb, 150 / 12);
    float *xa = xmallocarray((size_t)nb * 6 * per, sizeof(float));
    float *xb = xmallocarray((size_t)nb * 6 * per, sizeof(float));
    int32_t *ya = xmallocarray((size_t)nb * 6, sizeof(int32_t));
    int32_t *yr = xmallocarray((size_t)nb * 6, sizeof(int32_t));
    int32_t yb[6];
    ck_assert_int_eq(read_epoch(a, 3, 0, xa, ya, per, 6), nb * 6);
    /* Resume at batch 5 in a fresh loader = continuing. */
    ck_assert_int_eq(read_epoch(b, 3, 5, xb, yr, per, 6), (nb - 5) * 6);
    ck_assert_mem_eq(xb, xa + 5 * 6 * per, (size_t)(nb - 5) * 6 * per * sizeof(float));
    ck_assert_mem_eq(yr, ya + 5 * 6, (size_t)(nb - 5) * 6 * sizeof(int32_t));
    /* Restart mid-epoch: read 2 batches of epoch 1, jump to epoch 3 at 7. */
    loader_start_epoch(b, 1, 0);
    ck_assert_int_eq(loader_next(b, xb, yb), 6);
    ck_assert_int_eq(loader_next(b, xb, yb), 6);
    loader_start_epoch(b, 3, 7);
    for (long g = 7; g < nb; g++) {
        ck_assert_int_eq(loader_next(b, xb, yb), 6);
        ck_assert_mem_eq(xb, xa + g * 6 * per, 6 * per * sizeof(float));
        ck_assert_mem_eq(yb, ya + g * 6, sizeof yb);
    }
    ck_assert_int_eq(loader_next(b, xb, yb), 0);
    /* Skipping everything (or more) ends the epoch at once. */
    loader_start_epoch(b, 3, nb);
    ck_assert_int_eq(loader_next(b, xb, yb), 0);
    loader_start_epoch(b, 3, nb + 100);
    ck_assert_int_eq(loader_next(b, xb, yb), 0);
    loader_start_epoch(b, 3, 0);
    ck_assert_int_eq(loader_next(b, xb, yb), 6);
    ck_assert_mem_eq(xb, xa, 6 * per * sizeof(float));
    loader_free(a);
    loader_free(b);
    free(xa);
    free(xb);
    free(ya);
    free(yr);
    dataset_free(&d);
}
END_TEST

START_TEST(loader_free_mid_epoch)
{
    dataset d;
    dataset_synthetic(&d, 2000, 16, 3, 4, 1);
    float *x = xmallocarray((size_t)64 * 16 * 16 * 3, sizeof(float));
    int32_t y[64];
    for (int i = 0; i < 30; i++) {
        loader_opts o = {.batch = 64,
                         .world = 1,
                         .seed = (uint64_t)i,
                         .train = i % 2,
                         .crop_padding = 2,
                         .hflip = 1};
        loader *l = loader_new(&d, &o);
        switch (i % 3) {
        case 0:
            break; /* never started */
        case 1:
            loader_start_epoch(l, i, 0);
            break;
        default:
            loader_start_epoch(l, 0, 0);
            ck_assert_int_eq(loader_next(l, x, y), 64);
            loader_start_epoch(l, 1, 2); /* discards what was prefetched */
            ck_assert_int_eq(loader_next(l, x, y), 64);
        }
        loader_free(l);
    }
    loader_free(NULL);
    free(x);
    dataset_free(&d);
}
END_TEST

START_TEST(loader_empty_and_tiny)
{
    dataset d;
    make_indexed(&d, 5, 2, 2, 1);
    float x[8 * 4];
    int32_t y[8];
    loader_opts o = {.batch = 8, .world = 1, .train = 1};
    loader *l = loader_new(&d, &o);
    ck_assert_int_eq(loader_batches_per_epoch(l), 0); /* dropped: 5 < 8 */
    loader_start_epoch(l, 0, 0);
    ck_assert_int_eq(loader_next(l, x, y), 0);
    loader_free(l);
    o.train = 0;
    o.world = 8;
    o.rank = 0; /* shard [0, 0) */
    l = loader_new(&d, &o);
    ck_assert_int_eq(loader_batches_per_epoch(l), 0);
    loader_start_epoch(l, 0, 0);
    ck_assert_int_eq(loader_next(l, x, y), 0);
    loader_free(l);
    o.rank = 7; /* shard [4, 5) */
    l = loader_new(&d, &o);
    ck_assert_int_eq(loader_batches_per_epoch(l), 1);
    loader_start_epoch(l, 0, 0);
    ck_assert_int_eq(loader_next(l, x, y), 1);
    ck_assert_int_eq(decode_index(x, 1), 4);
    ck_assert_int_eq(loader_next(l, x, y), 0);
    loader_free(l);
    dataset_free(&d);
}
END_TEST

Suite *suite_loader(void)
{
    Suite *s = suite_create("loader");
    tu_case_add(s, "augment", 0, NULL, NULL, TU_TESTS(augment_matches_naive, augment_draw_ranges));
    tu_case_add(s, "loader", 60, NULL, NULL,
                TU_TESTS(loader_matches_documented_streams, loader_deterministic_and_epochs_differ,
                         loader_rank_slices_union, loader_repeated_augmentation, loader_eval_shards,
                         loader_skip_resume, loader_free_mid_epoch, loader_empty_and_tiny));
    return s;
}
