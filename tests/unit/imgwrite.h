/* imgwrite.h - JPEG and PNG files that the tests write themselves.
 *
 * Test images of every colour type the decoders must handle: JPEG grey,
 * RGB (baseline or progressive, 4:2:0 or 4:4:4) and Adobe CMYK through
 * libjpeg; PNG grey (1, 2, 4, 8, 16 bits), grey+alpha, RGB and RGBA (8 and
 * 16 bits), palette (with tRNS) and interlaced through libpng. Pixel
 * content is a deterministic pattern of (x, y, channel, seed). Also a
 * temporary-directory helper and the path of Debian's python. Test code:
 * failures abort; single-threaded.
 */
#ifndef KILN_TEST_IMGWRITE_H
#define KILN_TEST_IMGWRITE_H

#include <stdint.h>

/* The pattern sample at (x, y, c). */
uint8_t iw_pattern(int x, int y, int c, int seed);

/* Writes a JPEG of (h, w) with `comps` components: 1 grey, 3 RGB, 4 CMYK
 * (Adobe marker, as Photoshop writes). quality 90; progressive when asked;
 * subsample 1: 4:2:0, 0: 4:4:4. Returns 0 or -1. */
int iw_jpeg(const char *path, int h, int w, int comps, int progressive, int subsample, int seed);

/* Writes an RGB JPEG of the given pixels (h, w, 3). */
int iw_jpeg_pixels(const char *path, const uint8_t *px, int h, int w, int quality);

/* Writes a PNG of (h, w): png colour type (0 grey, 2 RGB, 3 palette, 4 grey+
 * alpha, 6 RGBA) at `depth` bits; palette images get a 16-entry palette
 * with a tRNS chunk; interlace 1 = Adam7. Returns 0 or -1. */
int iw_png(const char *path, int h, int w, int color_type, int depth, int interlace, int seed);

/* Writes an 8-bit PNG of the given pixels (h, w, c), c = 1 or 3. */
int iw_png_pixels(const char *path, const uint8_t *px, int h, int w, int c);

/* Makes a fresh directory under /tmp; returns a static-free malloc'd path. */
char *iw_tempdir(const char *tag);

/* Removes the directory tree at path (rm -rf). */
void iw_rmtree(const char *path);

/* Writes the first n bytes of file src to dst (a truncated copy); returns 0 or -1. */
int iw_truncate_copy(const char *src, const char *dst, long n);

/* /usr/bin/python3 with PIL and torchvision importable: 1, else 0. */
int iw_have_torchvision(void);

#endif
