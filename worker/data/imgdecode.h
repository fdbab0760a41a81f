/* imgdecode.h - JPEG and PNG files to 8-bit RGB or grayscale pixels.
 *
 * Decoding goes through Debian's libjpeg-turbo and libpng and gives the
 * pixels that PIL's Image.open(f).convert("RGB") (or "L") gives on the same
 * libraries, the way torchvision's ImageFolder reads a file: grayscale is
 * replicated, alpha is dropped (not composited), palettes are looked up,
 * 16-bit samples keep their high byte, Adobe CMYK JPEGs are inverted and
 * converted as PIL does, RGB -> L is PIL's ITU-R 601 fixed-point formula.
 * Progressive and arithmetic-coded JPEGs and interlaced PNGs are decoded.
 * Anything else (12-bit or lossless JPEG, a truncated or corrupt file, a
 * libjpeg warning, sides over IMGDECODE_MAX_SIDE) is refused with ERR_FORMAT
 * and a message naming the file and the problem; no input crashes or leaks.
 * Depends on libc, libjpeg, libpng; thread-safe (no shared state).
 */
#ifndef KILN_DATA_IMGDECODE_H
#define KILN_DATA_IMGDECODE_H

#include "common/err.h"
#include "worker/data/image.h"

#include <stddef.h>
#include <stdint.h>

#define IMGDECODE_MAX_SIDE   16384      /* pixels per side */
#define IMGDECODE_MAX_PIXELS (1u << 27) /* 134 M pixels: a decompression-bomb guard */

typedef enum { IMG_UNKNOWN = 0, IMG_JPEG, IMG_PNG } img_format;

/* The format by magic number (JPEG FF D8 FF, PNG's 8-byte signature). */
img_format imgdecode_sniff(const uint8_t *data, size_t len);

/* Decodes the file image data[0..len) into out as (h, w, channels) bytes,
 * channels 1 (luma) or 3 (RGB) (asserted). out's buffer is reused and grown
 * as needed (image.h); on failure its shape is unspecified but it stays
 * valid for image_free. `name` (may be NULL) prefixes the message.
 * Returns 0, or ERR_FORMAT with eb naming the problem. */
int imgdecode(image *out, const uint8_t *data, size_t len, int channels, const char *name,
              errbuf *eb);

/* Reads the whole file at path into *buf (grown with realloc as needed;
 * *cap is its size) and sets *len. Returns 0 or ERR_IO naming the file. */
int imgdecode_read_file(const char *path, uint8_t **buf, size_t *cap, size_t *len, errbuf *eb);

#endif
