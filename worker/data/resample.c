/* resample.c - PIL-exact antialiased resize (see resample.h).
 *
 * The taps of each output coordinate are computed in double exactly as
 * PIL's precompute_coeffs does (the centre, the rounded window, the
 * normalisation) and converted to 22-bit fixed point; accumulation starts at
 * half a unit and is clipped to 0..255. The horizontal pass runs only over
 * the rows the vertical pass reads. Depends on libc, libm; thread-safe.
 */
#include "worker/data/resample.h"

#include "common/xalloc.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RS_PRECISION 22 /* 32 - 8 - 2 bits */

static double filter_bilinear(double x)
{
    if (x < 0.0)
        x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double filter_bicubic(double x)
{
    const double a = -0.5;
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

typedef struct taps {
    int ksize;   /* taps per output coordinate */
    int *bounds; /* (out, 2): first input index, tap count */
    int32_t *k;  /* (out, ksize) fixed-point weights */
} taps;

static void taps_make(taps *t, int in_size, int out_size, resample_filter f)
{
    double support0 = f == RESAMPLE_BICUBIC ? 2.0 : 1.0;
    double (*fn)(double) = f == RESAMPLE_BICUBIC ? filter_bicubic : filter_bilinear;
    double scale = (double)in_size / out_size, fscale = scale < 1.0 ? 1.0 : scale;
    double support = support0 * fscale, ss = 1.0 / fscale;
    t->ksize = (int)ceil(support) * 2 + 1;
    t->bounds = xmallocarray((size_t)out_size * 2, sizeof(int));
    t->k = xcalloc((size_t)out_size * t->ksize, sizeof(int32_t));
    double *w = xmallocarray((size_t)t->ksize, sizeof(double));
    for (int o = 0; o < out_size; o++) {
        double center = (o + 0.5) * scale, sum = 0.0;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0)
            lo = 0;
        if (hi > in_size)
            hi = in_size;
        int n = hi - lo;
        assert(n <= t->ksize);
        for (int x = 0; x < n; x++) {
            w[x] = fn((x + lo - center + 0.5) * ss);
            sum += w[x];
        }
        for (int x = 0; x < n; x++) {
            double v = sum != 0.0 ? w[x] / sum : w[x];
            t->k[(size_t)o * t->ksize + x] = v < 0 ? (int32_t)(-0.5 + v * (1 << RS_PRECISION))
                                                   : (int32_t)(0.5 + v * (1 << RS_PRECISION));
        }
        t->bounds[2 * o] = lo;
        t->bounds[2 * o + 1] = n;
    }
    free(w);
}

static void taps_free(taps *t)
{
    free(t->bounds);
    free(t->k);
}

static uint8_t clip8(int32_t v)
{
    if (v >= (1 << RS_PRECISION << 8))
        return 255;
    if (v <= 0)
        return 0;
    return (uint8_t)(v >> RS_PRECISION);
}

/* Horizontal pass: rows [y0, y1) of the region (origin top, left) into tmp. */
static void pass_h(image *tmp, const image *in, int top, int left, int y0, int y1, int ow,
                   const taps *t)
{
    int C = in->c;
    image_resize_buffer(tmp, y1 - y0, ow, C);
    for (int y = y0; y < y1; y++) {
        const uint8_t *row = in->px + ((size_t)(top + y) * in->w + left) * C;
        uint8_t *o = tmp->px + (size_t)(y - y0) * ow * C;
        for (int x = 0; x < ow; x++) {
            const int32_t *k = t->k + (size_t)x * t->ksize;
            int lo = t->bounds[2 * x], n = t->bounds[2 * x + 1];
            for (int c = 0; c < C; c++) {
                int32_t s = 1 << (RS_PRECISION - 1);
                for (int i = 0; i < n; i++)
                    s += row[(lo + i) * C + c] * k[i];
                o[x * C + c] = clip8(s);
            }
        }
    }
}

/* Vertical pass: src rows are region rows shifted by y0. */
static void pass_v(image *out, const uint8_t *src, size_t src_stride, int y0, int oh, int ow, int C,
                   const taps *t)
{
    for (int y = 0; y < oh; y++) {
        const int32_t *k = t->k + (size_t)y * t->ksize;
        int lo = t->bounds[2 * y] - y0, n = t->bounds[2 * y + 1];
        uint8_t *o = out->px + (size_t)y * ow * C;
        for (int x = 0; x < ow * C; x++) {
            int32_t s = 1 << (RS_PRECISION - 1);
            for (int i = 0; i < n; i++)
                s += src[(size_t)(lo + i) * src_stride + x] * k[i];
            o[x] = clip8(s);
        }
    }
}

void resample_crop(image *out, const image *in, int top, int left, int h, int w, int oh, int ow,
                   resample_filter f, image *tmp)
{
    assert(out != in && h >= 1 && w >= 1 && oh >= 1 && ow >= 1);
    assert(top >= 0 && left >= 0 && top + h <= in->h && left + w <= in->w);
    int C = in->c;
    image_resize_buffer(out, oh, ow, C);
    int need_h = ow != w, need_v = oh != h;
    taps tv = {0, NULL, NULL}, th = {0, NULL, NULL};
    int y0 = 0, y1 = h;
    if (need_v) {
        taps_make(&tv, h, oh, f);
        y0 = tv.bounds[0];
        y1 = tv.bounds[2 * (oh - 1)] + tv.bounds[2 * (oh - 1) + 1];
    }
    const uint8_t *src; /* the (y1 - y0, ow) rows the vertical pass reads */
    size_t stride;
    if (need_h) {
        taps_make(&th, w, ow, f);
        pass_h(tmp, in, top, left, y0, y1, ow, &th);
        src = tmp->px;
        stride = (size_t)ow * C;
    } else {
        src = in->px + ((size_t)(top + y0) * in->w + left) * C;
        stride = (size_t)in->w * C;
    }
    if (need_v) {
        pass_v(out, src, stride, y0, oh, ow, C, &tv);
    } else {
        for (int y = 0; y < oh; y++)
            memcpy(out->px + (size_t)y * ow * C, src + (size_t)y * stride, (size_t)ow * C);
    }
    taps_free(&th);
    taps_free(&tv);
}
