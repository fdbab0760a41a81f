/* image.h - an 8-bit image buffer (H, W, C) that grows and is reused.
 *
 * The decoders and the transforms write into an `image`; a loader thread keeps
 * a few of them and reuses their memory from sample to sample, so decoding
 * allocates only when a larger image than any before comes along. Owns its
 * pixels. Depends on libc and common/xalloc; not shared between threads.
 */
#ifndef KILN_DATA_IMAGE_H
#define KILN_DATA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct image {
    uint8_t *px; /* (h, w, c) channels-last, rows packed; owned */
    int h, w, c;
    size_t cap; /* bytes allocated at px */
} image;

/* Sets the shape to (h, w, c) and makes px hold at least h*w*c bytes (the
 * contents are unspecified). h, w, c >= 1 (asserted). Aborts on OOM. */
void image_resize_buffer(image *im, int h, int w, int c);

/* Frees the pixels and leaves im empty; safe on an empty (zeroed) image. */
void image_free(image *im);

#endif
