/* imgwrite.c - test images written with libjpeg and libpng (see imgwrite.h). */
#include "tests/unit/imgwrite.h"

#include "common/xalloc.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* clang-format off: jpeglib.h needs stdio.h first */
#include <jpeglib.h>
/* clang-format on */

uint8_t iw_pattern(int x, int y, int c, int seed)
{
    /* Smooth gradients plus a checker, so resampling and colour code both get work. */
    int v = (x * (7 + c * 3) + y * (5 + seed) + c * 61 + seed * 17) & 0xff;
    if (((x / 5) + (y / 3)) & 1)
        v = 255 - v / 2;
    return (uint8_t)v;
}

static int jpeg_write(const char *path, const uint8_t *px, int h, int w, int comps, int quality,
                      int progressive, int subsample)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = comps == 1 ? JCS_GRAYSCALE : comps == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality, TRUE);
    if (comps == 3 && !subsample)
        for (int i = 0; i < 3; i++)
            ci.comp_info[i].h_samp_factor = ci.comp_info[i].v_samp_factor = 1;
    if (progressive)
        jpeg_simple_progression(&ci);
    jpeg_start_compress(&ci, TRUE);
    uint8_t *buf = xmalloc((size_t)w * comps);
    while (ci.next_scanline < ci.image_height) {
        memcpy(buf, px + (size_t)ci.next_scanline * w * comps, (size_t)w * comps);
        JSAMPROW row = buf;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    free(buf);
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    return fclose(f) == 0 ? 0 : -1;
}

int iw_jpeg(const char *path, int h, int w, int comps, int progressive, int subsample, int seed)
{
    uint8_t *px = xmalloc((size_t)h * w * comps);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < comps; c++)
                px[((size_t)y * w + x) * comps + c] = iw_pattern(x, y, c, seed);
    int rc = jpeg_write(path, px, h, w, comps, 90, progressive, subsample);
    free(px);
    return rc;
}

int iw_jpeg_pixels(const char *path, const uint8_t *px, int h, int w, int quality)
{
    return jpeg_write(path, px, h, w, 3, quality, 0, 1);
}

static int png_channels(int type)
{
    return type == 0 || type == 3 ? 1 : type == 4 ? 2 : type == 2 ? 3 : 4;
}

static int png_write(const char *path, const uint8_t *px, int h, int w, int type, int depth,
                     int interlace)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(p);
    if (setjmp(png_jmpbuf(p))) {
        png_destroy_write_struct(&p, &info);
        fclose(f);
        return -1;
    }
    png_init_io(p, f);
    png_set_IHDR(p, info, (png_uint_32)w, (png_uint_32)h, depth, type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (type == 3) {
        png_color pal[16];
        png_byte trns[16];
        for (int i = 0; i < 16; i++) {
            pal[i].red = (png_byte)(i * 16 + 3);
            pal[i].green = (png_byte)(255 - i * 13);
            pal[i].blue = (png_byte)(i * 37 & 0xff);
            trns[i] = (png_byte)(i * 17);
        }
        int n = depth >= 4 ? 16 : 1 << depth;
        png_set_PLTE(p, info, pal, n);
        png_set_tRNS(p, info, trns, n, NULL);
    }
    png_write_info(p, info);
    if (depth == 16)
        png_set_swap(p); /* rows below are little-endian 16-bit */
    int passes = interlace ? png_set_interlace_handling(p) : 1;
    size_t row_bytes = png_get_rowbytes(p, info);
    for (int pass = 0; pass < passes; pass++)
        for (int y = 0; y < h; y++)
            png_write_row(p, (png_const_bytep)(px + (size_t)y * row_bytes));
    png_write_end(p, info);
    png_destroy_write_struct(&p, &info);
    return fclose(f) == 0 ? 0 : -1;
}

int iw_png(const char *path, int h, int w, int type, int depth, int interlace, int seed)
{
    int ch = png_channels(type);
    size_t row_bytes = ((size_t)w * ch * depth + 7) / 8;
    uint8_t *px = xcalloc((size_t)h, row_bytes);
    int maxv = (1 << (depth < 8 ? depth : 8)) - 1;
    if (type == 3)
        maxv = depth >= 4 ? 15 : (1 << depth) - 1;
    for (int y = 0; y < h; y++) {
        uint8_t *row = px + (size_t)y * row_bytes;
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++) {
                int v = iw_pattern(x, y, c, seed);
                size_t i = (size_t)x * ch + c;
                if (depth == 16) {
                    int v16 = v * 257 ^ (x * 31 + y);
                    row[2 * i] = (uint8_t)(v16 & 0xff);
                    row[2 * i + 1] = (uint8_t)(v16 >> 8);
                } else if (depth == 8) {
                    row[i] = (uint8_t)(type == 3 ? v % 16 : v);
                } else {
                    int q = (v * maxv / 255) & maxv;
                    int per = 8 / depth;
                    int shift = 8 - depth * (int)(i % per + 1);
                    row[i / per] |= (uint8_t)(q << shift);
                }
            }
    }
    int rc = png_write(path, px, h, w, type, depth, interlace);
    free(px);
    return rc;
}

int iw_png_pixels(const char *path, const uint8_t *px, int h, int w, int c)
{
    return png_write(path, px, h, w, c == 1 ? 0 : 2, 8, 0);
}

char *iw_tempdir(const char *tag)
{
    char tmpl[256];
    snprintf(tmpl, sizeof tmpl, "/tmp/kiln-%s-XXXXXX", tag);
    char *d = mkdtemp(tmpl);
    if (d == NULL)
        abort();
    return xstrdup(d);
}

void iw_rmtree(const char *path)
{
    char cmd[1200];
    if (strncmp(path, "/tmp/kiln-", 10) != 0)
        abort(); /* only what iw_tempdir made */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "imgwrite: cannot remove %s\n", path);
}

int iw_truncate_copy(const char *src, const char *dst, long n)
{
    FILE *f = fopen(src, "rb"), *g = fopen(dst, "wb");
    int rc = f && g ? 0 : -1;
    for (long i = 0; rc == 0 && i < n; i++) {
        int ch = fgetc(f);
        if (ch == EOF)
            break;
        fputc(ch, g);
    }
    if (f)
        fclose(f);
    if (g && fclose(g) != 0)
        rc = -1;
    return rc;
}

int iw_have_torchvision(void)
{
    return system("/usr/bin/python3 -c 'import torchvision, PIL' >/dev/null 2>&1") == 0;
}
