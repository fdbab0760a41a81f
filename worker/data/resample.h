/* resample.h - PIL's antialiased resize of an 8-bit image region.
 *
 * torchvision resizes PIL images with Image.resize, whose resampler is a
 * separable convolution: the filter (bilinear support 1, bicubic a = -0.5
 * support 2) is stretched by the downscale factor, its taps are normalised,
 * rounded to 22-bit fixed point, and applied horizontally, the result
 * rounded to 8 bits, then vertically. This file computes the same
 * arithmetic, so that outputs equal PIL's byte for byte. Pure functions over
 * caller buffers (scratch included); thread-safe.
 */
#ifndef KILN_DATA_RESAMPLE_H
#define KILN_DATA_RESAMPLE_H

#include "worker/data/image.h"

typedef enum { RESAMPLE_BILINEAR = 0, RESAMPLE_BICUBIC } resample_filter;

/* out (oh, ow, in->c) = the region rows [top, top + h) x columns
 * [left, left + w) of in, resized as PIL's crop(...).resize((ow, oh), f)
 * (taps never reach outside the region). The region must lie inside in,
 * h, w, oh, ow >= 1 (asserted). out must not be in; tmp is scratch (grown
 * as needed). When oh == h and ow == w the region is copied. */
void resample_crop(image *out, const image *in, int top, int left, int h, int w, int oh, int ow,
                   resample_filter f, image *tmp);

#endif
