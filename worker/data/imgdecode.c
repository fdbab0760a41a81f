/* imgdecode.c - JPEG (libjpeg-turbo) and PNG (libpng) decoding (see imgdecode.h).
 *
 * Both libraries report errors by a callback that must not return; it
 * longjmps back to the decode function, which then frees what it holds.
 * Objects live across setjmp are volatile or untouched after it. The colour
 * conversions after decoding are PIL's (Convert.c's formulas, written here
 * from their definitions). Depends on libc, libjpeg, libpng; thread-safe.
 */
#include "worker/data/imgdecode.h"

#include "common/xalloc.h"

#include <assert.h>
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* clang-format off: jpeglib.h needs stdio.h first */
#include <jerror.h>
#include <jpeglib.h>
/* clang-format on */

img_format imgdecode_sniff(const uint8_t *data, size_t len)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
        return IMG_JPEG;
    if (len >= 8 && memcmp(data, png_sig, 8) == 0)
        return IMG_PNG;
    return IMG_UNKNOWN;
}

/* PIL's RGB -> L: ITU-R 601-2 luma in 16-bit fixed point, rounded. */
static uint8_t luma(const uint8_t *rgb)
{
    return (uint8_t)(((uint32_t)rgb[0] * 19595u + (uint32_t)rgb[1] * 38470u +
                      (uint32_t)rgb[2] * 7471u + 0x8000u) >>
                     16);
}

/* a * b / 255, rounded, as PIL's MULDIV255. */
static int muldiv255(int a, int b)
{
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

/* PIL's CMYK -> RGB of one pixel of already un-inverted CMYK. */
static void cmyk_to_rgb(uint8_t *rgb, const uint8_t *cmyk)
{
    int nk = 255 - cmyk[3];
    for (int i = 0; i < 3; i++) {
        int v = nk - muldiv255(cmyk[i], nk);
        rgb[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

/* Converts im from `have` channels (1 or 3) to `want` in place. */
static void convert_in_place(image *im, int have, int want)
{
    size_t n = (size_t)im->h * im->w;
    if (have == want)
        return;
    if (have == 1) { /* grey -> RGB: back to front, so that nothing is overwritten early */
        assert(im->cap >= 3 * n); /* reserved by the decoder */
        im->c = 3;
        for (size_t i = n; i-- > 0;) {
            uint8_t v = im->px[i];
            im->px[3 * i] = im->px[3 * i + 1] = im->px[3 * i + 2] = v;
        }
        return;
    }
    for (size_t i = 0; i < n; i++)
        im->px[i] = luma(im->px + 3 * i);
    im->c = 1;
}

static int check_dims(unsigned w, unsigned h, const char *name, errbuf *eb)
{
    if (w == 0 || h == 0 || w > IMGDECODE_MAX_SIDE || h > IMGDECODE_MAX_SIDE ||
        (unsigned long long)w * h > IMGDECODE_MAX_PIXELS)
        return err_set(eb, ERR_FORMAT,
                       "%s: %ux%u pixels is outside the limits (sides 1..%d, %u "
                       "pixels)",
                       name, w, h, IMGDECODE_MAX_SIDE, IMGDECODE_MAX_PIXELS);
    return 0;
}

/* ---- JPEG ---------------------------------------------------------------- */

typedef struct jpeg_fail_ctx {
    struct jpeg_error_mgr mgr; /* first: libjpeg sees only this */
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jpeg_fail_ctx;

static void jpeg_on_error(j_common_ptr c)
{
    jpeg_fail_ctx *f = (jpeg_fail_ctx *)c->err;
    c->err->format_message(c, f->msg);
    longjmp(f->jb, 1);
}

/* Warnings mean damaged data (a truncated file, a corrupt segment), whose
 * pixels would be made up by the library: refused, except the harmless
 * notes about stray bytes between segments and header versions. */
static void jpeg_on_message(j_common_ptr c, int level)
{
    if (level >= 0)
        return;
    int code = c->err->msg_code;
    if (code == JWRN_EXTRANEOUS_DATA || code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM)
        return;
    jpeg_on_error(c);
}

static int decode_jpeg(image *out, const uint8_t *data, size_t len, int channels, const char *name,
                       errbuf *eb)
{
    struct jpeg_decompress_struct ci;
    jpeg_fail_ctx f;
    uint8_t *volatile row = NULL; /* CMYK scan line; volatile: freed after a longjmp */
    memset(&ci, 0, sizeof ci);
    ci.err = jpeg_std_error(&f.mgr);
    f.mgr.error_exit = jpeg_on_error;
    f.mgr.emit_message = jpeg_on_message;
    f.msg[0] = '\0';
    if (setjmp(f.jb) != 0) {
        free(row);
        jpeg_destroy_decompress(&ci);
        return err_set(eb, ERR_FORMAT, "%s: JPEG: %s", name, f.msg);
    }
    jpeg_create_decompress(&ci);
    if (len > (size_t)(unsigned long)-1)
        len = (size_t)(unsigned long)-1;
    jpeg_mem_src(&ci, data, (unsigned long)len);
    jpeg_read_header(&ci, TRUE);
    int have;
    switch (ci.jpeg_color_space) {
    case JCS_GRAYSCALE:
        ci.out_color_space = JCS_GRAYSCALE;
        have = 1;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        ci.out_color_space = JCS_RGB;
        have = 3;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        ci.out_color_space = JCS_CMYK;
        have = 4;
        break;
    default:
        snprintf(f.msg, sizeof f.msg, "colour space %d with %d components is not supported",
                 (int)ci.jpeg_color_space, ci.num_components);
        longjmp(f.jb, 1);
    }
    int rc = check_dims(ci.image_width, ci.image_height, name, eb);
    if (rc != 0) {
        jpeg_destroy_decompress(&ci);
        return rc;
    }
    jpeg_start_decompress(&ci);
    assert(ci.output_components == have);
    int w = (int)ci.output_width, h = (int)ci.output_height;
    image_resize_buffer(out, h, w, 3); /* room for the RGB of a grey file */
    out->c = have == 4 ? 3 : have;
    if (have == 4)
        row = xmalloc((size_t)w * 4);
    while (ci.output_scanline < ci.output_height) {
        int y = (int)ci.output_scanline;
        JSAMPROW dst = have == 4 ? row : out->px + (size_t)y * w * have;
        if (jpeg_read_scanlines(&ci, &dst, 1) != 1) {
            snprintf(f.msg, sizeof f.msg, "no data for row %d", y);
            longjmp(f.jb, 1);
        }
        if (have == 4) {
            /* PIL reads CMYK JPEGs as Adobe's inverted CMYK ("CMYK;I"). */
            uint8_t *o = out->px + (size_t)y * w * 3;
            for (int x = 0; x < w; x++) {
                uint8_t k[4] = {(uint8_t)(255 - row[4 * x]), (uint8_t)(255 - row[4 * x + 1]),
                                (uint8_t)(255 - row[4 * x + 2]), (uint8_t)(255 - row[4 * x + 3])};
                cmyk_to_rgb(o + 3 * x, k);
            }
        }
    }
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    free(row);
    convert_in_place(out, have == 4 ? 3 : have, channels);
    return 0;
}

/* ---- PNG ----------------------------------------------------------------- */

typedef struct png_src {
    const uint8_t *data;
    size_t len, pos;
    char msg[256];
} png_src;

static void png_on_error(png_structp p, png_const_charp msg)
{
    png_src *s = png_get_error_ptr(p);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(p, 1);
}

static void png_on_warning(png_structp p, png_const_charp msg)
{
    (void)p;
    (void)msg; /* benign by libpng's definition (an ancillary chunk, a profile) */
}

static void png_read_mem(png_structp p, png_bytep dst, size_t n)
{
    png_src *s = png_get_io_ptr(p);
    if (n > s->len - s->pos) {
        snprintf(s->msg, sizeof s->msg, "truncated after %zu bytes", s->len);
        png_longjmp(p, 1);
    }
    memcpy(dst, s->data + s->pos, n);
    s->pos += n;
}

static int decode_png(image *out, const uint8_t *data, size_t len, int channels, const char *name,
                      errbuf *eb)
{
    png_src src = {data, len, 0, ""};
    png_structp p =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    if (p == NULL)
        return err_set(eb, ERR_INTERNAL, "%s: PNG: cannot create a reader", name);
    png_infop info = png_create_info_struct(p);
    png_bytep *volatile rows = NULL;
    if (info == NULL || setjmp(png_jmpbuf(p)) != 0) {
        free(rows);
        png_destroy_read_struct(&p, info ? &info : NULL, NULL);
        return err_set(eb, ERR_FORMAT, "%s: PNG: %s", name, src.msg[0] ? src.msg : "bad file");
    }
    png_set_user_limits(p, IMGDECODE_MAX_SIDE, IMGDECODE_MAX_SIDE);
    png_set_read_fn(p, &src, png_read_mem);
    png_read_info(p, info);
    png_uint_32 w, h;
    int depth, type, interlace;
    png_get_IHDR(p, info, &w, &h, &depth, &type, &interlace, NULL, NULL);
    int rc = check_dims(w, h, name, eb);
    if (rc != 0) {
        png_destroy_read_struct(&p, &info, NULL);
        return rc;
    }
    /* As PIL: 16-bit samples keep their high byte, palettes become RGB,
     * low-depth grey is scaled to 0..255, alpha and tRNS are dropped. */
    if (depth == 16)
        png_set_strip_16(p);
    if (type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(p);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(p);
    png_set_strip_alpha(p); /* also the alpha that expanding a palette's tRNS adds */
    png_set_interlace_handling(p);
    png_read_update_info(p, info);
    int have = png_get_channels(p, info);
    if ((have != 1 && have != 3) || png_get_bit_depth(p, info) != 8) {
        snprintf(src.msg, sizeof src.msg, "colour type %d at %d bits is not supported", type,
                 depth);
        png_longjmp(p, 1);
    }
    image_resize_buffer(out, (int)h, (int)w, 3); /* room for the RGB of a grey file */
    out->c = have;
    rows = xmallocarray(h, sizeof(png_bytep));
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = out->px + (size_t)y * w * have;
    png_read_image(p, rows);
    free(rows);
    rows = NULL;
    png_destroy_read_struct(&p, &info, NULL);
    convert_in_place(out, have, channels);
    return 0;
}

int imgdecode(image *out, const uint8_t *data, size_t len, int channels, const char *name,
              errbuf *eb)
{
    assert(channels == 1 || channels == 3);
    if (name == NULL)
        name = "image";
    switch (imgdecode_sniff(data, len)) {
    case IMG_JPEG:
        return decode_jpeg(out, data, len, channels, name, eb);
    case IMG_PNG:
        return decode_png(out, data, len, channels, name, eb);
    default:
        return err_set(eb, ERR_FORMAT, "%s: not a JPEG or PNG file (first bytes %02x %02x %02x)",
                       name, len > 0 ? data[0] : 0, len > 1 ? data[1] : 0, len > 2 ? data[2] : 0);
    }
}

int imgdecode_read_file(const char *path, uint8_t **buf, size_t *cap, size_t *len, errbuf *eb)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return err_set(eb, ERR_IO, "%s: %s", path, strerror(errno));
    int rc = 0;
    size_t n = 0;
    for (;;) {
        if (n == *cap) {
            size_t grow = *cap < 65536 ? 65536 : *cap * 2;
            *buf = xrealloc(*buf, grow);
            *cap = grow;
        }
        size_t got = fread(*buf + n, 1, *cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                rc = err_set(eb, ERR_IO, "%s: read error after %zu bytes", path, n);
            break;
        }
    }
    fclose(f);
    *len = n;
    return rc;
}
