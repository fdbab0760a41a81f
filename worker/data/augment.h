/* augment.h - per-sample image transforms of the batch loader.
 *
 * Normalisation through a per-channel lookup table, and the training
 * augmentation of the reference recipe: a random crop of the original size
 * from the image padded with pixel value 0 on every side, then a random
 * horizontal flip. Images are uint8 channels-last (H, W, C), outputs float
 * (H, W, C). Pure functions over caller buffers: no allocation, no I/O, no
 * shared state; thread-safe.
 */
#ifndef KILN_DATA_AUGMENT_H
#define KILN_DATA_AUGMENT_H

#include "common/rng.h"

#include <stdint.h>

#define AUGMENT_LUT_SIZE (3 * 256)

/* lut (3, 256): lut[c*256 + v] = (v/255 - mean[c]) / std[c], computed in
 * float as (float)v / 255.0f, then (x - mean) / std - the same float
 * operations as the PyTorch recipe. Channels >= C are left untouched.
 * 1 <= C <= 3; every std[c] must be > 0. */
void augment_lut(float *lut, const float *mean, const float *std, int C);

/* out (H, W, C) = lut applied to img (H, W, C). */
void augment_normalize(float *out, const uint8_t *img, const float *lut, int H, int W, int C);

/* out (H, W, C) = the normalised crop at offset (oy, ox) of img padded by
 * `pad` pixels of value 0 on each side, mirrored left-right when flip:
 *   out[y][x] = P[oy + y][ox + (flip ? W - 1 - x : x)],
 * where P is the (H + 2 pad, W + 2 pad) padded image, so padding pixels come
 * out as lut[c*256 + 0] = (0 - mean) / std. 0 <= ox, oy <= 2 pad. With
 * pad = 0, ox = oy = 0 and flip = 0 this equals augment_normalize. */
void augment_crop_flip(float *out, const uint8_t *img, const float *lut, int H, int W, int C,
                       int pad, int ox, int oy, int flip);

/* Draws one sample's augmentation from r, in this order: ox then oy, each
 * uniform in [0, 2 pad] (drawn only if pad > 0, else 0), then flip with
 * probability 1/2 (drawn only if hflip, else 0). */
void augment_draw(int *ox, int *oy, int *flip, rng *r, int pad, int hflip);

#endif
