/* synthetic.c - a seeded, learnable synthetic image dataset.
 *
 * Class k is a pair of 2-D sinusoids whose frequencies and phases (one phase
 * per channel) come from rng_derive(seed, 0, k). Sample i draws its label, a
 * contrast, a shift of up to 1 pixel and per-pixel Gaussian noise from
 * rng_derive(seed, 1, i), so it depends only on (seed, i) and the sizes.
 * Pixel = 127.5 + 111 * contrast * pattern + N(0, 32), clipped to [0, 255]:
 * mean 0.5 and a spread near 0.25 of x/255 (DATASET_SYNTH_MEAN/STD).
 * Depends on libc, libm and common/rng; thread-safe.
 */
#include "common/rng.h"
#include "common/xalloc.h"
#include "worker/data/dataset.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYNTH_AMPLITUDE 111.0f
#define SYNTH_NOISE     32.0f
#define SYNTH_MAX_SHIFT 1
#define SYNTH_TWO_PI    6.2831853071795864f

typedef struct synth_class {
    float fx[2], fy[2]; /* cycles per image of the two sinusoids */
    float phase[3][2];  /* per channel, per sinusoid */
} synth_class;

static void synth_class_make(synth_class *k, uint64_t seed, int label)
{
    rng r;
    rng_derive(&r, seed, 0, (uint64_t)label);
    for (int s = 0; s < 2; s++) {
        /* At least one cycle per image along some axis, at most 3. */
        k->fx[s] = (rng_uniform(&r) * 2.0f - 1.0f) * 3.0f;
        k->fy[s] = (rng_uniform(&r) * 2.0f - 1.0f) * 3.0f;
        if (fabsf(k->fx[s]) + fabsf(k->fy[s]) < 1.0f)
            k->fx[s] = k->fx[s] < 0 ? k->fx[s] - 1.0f : k->fx[s] + 1.0f;
    }
    for (int c = 0; c < 3; c++)
        for (int s = 0; s < 2; s++)
            k->phase[c][s] = rng_uniform(&r) * SYNTH_TWO_PI;
}

void dataset_synthetic(dataset *d, int n, int size, int channels, int classes, uint64_t seed)
{
    assert(n >= 0 && size >= 1 && size <= 4096);
    assert(channels >= 1 && channels <= 3 && classes >= 1 && classes <= 256);
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "synthetic");
    d->n = n;
    d->H = d->W = size;
    d->C = channels;
    d->num_classes = classes;
    for (int c = 0; c < 3; c++) {
        d->mean[c] = DATASET_SYNTH_MEAN;
        d->std[c] = DATASET_SYNTH_STD;
    }
    size_t per = (size_t)size * size * channels;
    d->images = xmallocarray((size_t)n ? (size_t)n : 1, per);
    d->labels = xmalloc((size_t)n ? (size_t)n : 1);
    synth_class *cls = xmallocarray((size_t)classes, sizeof *cls);
    for (int k = 0; k < classes; k++)
        synth_class_make(&cls[k], seed, k);

    for (int i = 0; i < n; i++) {
        rng r;
        rng_derive(&r, seed, 1, (uint64_t)i);
        int label = (int)rng_below(&r, (uint32_t)classes);
        const synth_class *k = &cls[label];
        float contrast = 0.8f + 0.4f * rng_uniform(&r);
        int dx = (int)rng_below(&r, 2 * SYNTH_MAX_SHIFT + 1) - SYNTH_MAX_SHIFT;
        int dy = (int)rng_below(&r, 2 * SYNTH_MAX_SHIFT + 1) - SYNTH_MAX_SHIFT;
        uint8_t *img = d->images + (size_t)i * per;
        for (int y = 0; y < size; y++) {
            float v = (float)(y + dy) / (float)size;
            for (int x = 0; x < size; x++) {
                float u = (float)(x + dx) / (float)size;
                for (int c = 0; c < channels; c++) {
                    float p = 0.0f;
                    for (int s = 0; s < 2; s++)
                        p += 0.5f *
                             sinf(SYNTH_TWO_PI * (k->fx[s] * u + k->fy[s] * v) + k->phase[c][s]);
                    float px =
                        127.5f + SYNTH_AMPLITUDE * contrast * p + SYNTH_NOISE * rng_normal(&r);
                    px = px < 0.0f ? 0.0f : px > 255.0f ? 255.0f : px;
                    img[((size_t)y * size + x) * channels + c] = (uint8_t)lrintf(px);
                }
            }
        }
        d->labels[i] = (uint8_t)label;
    }
    free(cls);
}
