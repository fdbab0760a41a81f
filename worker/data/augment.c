/* augment.c - normalisation, random crop with padding and flip (see augment.h).
 *
 * The crop is done by index arithmetic on the unpadded image: rows and
 * columns that fall in the padding take the lookup value of pixel 0, so no
 * padded copy is ever made. Depends on libc and common/rng; thread-safe.
 */
#include "worker/data/augment.h"

#include <assert.h>
#include <stddef.h>

void augment_lut(float *lut, const float *mean, const float *std, int C)
{
    assert(C >= 1 && C <= 3);
    for (int c = 0; c < C; c++) {
        assert(std[c] > 0.0f);
        for (int v = 0; v < 256; v++)
            lut[c * 256 + v] = ((float)v / 255.0f - mean[c]) / std[c];
    }
}

void augment_normalize(float *out, const uint8_t *img, const float *lut, int H, int W, int C)
{
    size_t pixels = (size_t)H * W;
    if (C == 1) {
        for (size_t i = 0; i < pixels; i++)
            out[i] = lut[img[i]];
        return;
    }
    for (size_t i = 0; i < pixels; i++)
        for (int c = 0; c < C; c++)
            out[i * C + c] = lut[c * 256 + img[i * C + c]];
}

void augment_crop_flip(float *out, const uint8_t *img, const float *lut, int H, int W, int C,
                       int pad, int ox, int oy, int flip)
{
    assert(pad >= 0 && ox >= 0 && ox <= 2 * pad && oy >= 0 && oy <= 2 * pad);
    /* Source column of output column x: sx = base + step * x. */
    int step = flip ? -1 : 1;
    int base = flip ? ox - pad + W - 1 : ox - pad;
    for (int y = 0; y < H; y++) {
        int sy = oy - pad + y;
        float *o = out + (size_t)y * W * C;
        if (sy < 0 || sy >= H) {
            for (int x = 0; x < W; x++)
                for (int c = 0; c < C; c++)
                    o[x * C + c] = lut[c * 256];
            continue;
        }
        const uint8_t *row = img + (size_t)sy * W * C;
        for (int x = 0; x < W; x++) {
            int sx = base + step * x;
            if (sx < 0 || sx >= W) {
                for (int c = 0; c < C; c++)
                    o[x * C + c] = lut[c * 256];
            } else {
                for (int c = 0; c < C; c++)
                    o[x * C + c] = lut[c * 256 + row[sx * C + c]];
            }
        }
    }
}

void augment_draw(int *ox, int *oy, int *flip, rng *r, int pad, int hflip)
{
    *ox = pad > 0 ? (int)rng_below(r, (uint32_t)(2 * pad + 1)) : 0;
    *oy = pad > 0 ? (int)rng_below(r, (uint32_t)(2 * pad + 1)) : 0;
    *flip = hflip ? rng_uniform(r) < 0.5f : 0;
}
