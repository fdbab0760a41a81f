/* mkimgfolder.c - an ImageFolder of JPEGs made from Fashion-MNIST, for the
 * integration tests and the loader benchmarks.
 *
 *   mkimgfolder IDX_ROOT OUT [--train N] [--test N] [--size S] [--bad K] [--png]
 *
 * Writes OUT/train/<class>/<i>.jpg (the first N training images) and
 * OUT/val/<class>/<i>.jpg (the first N test images), upscaled to S x S
 * (bilinear), RGB with a class-independent tint, quality 90. --bad K adds K
 * truncated JPEGs to the training classes; --png writes every third file as
 * PNG. A training set larger than Fashion-MNIST's 60,000 repeats it with
 * the tint varied. Test tool: errors exit 1.
 */
#include "common/xalloc.h"
#include "worker/data/dataset.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
/* clang-format off: jpeglib.h needs stdio.h first */
#include <jpeglib.h>
/* clang-format on */

static const char *const CLASSES[10] = {"0_tshirt", "1_trouser", "2_pullover", "3_dress", "4_coat",
                                        "5_sandal", "6_shirt",   "7_sneaker",  "8_bag",   "9_boot"};

static void mkdir_or_die(const char *p)
{
    if (mkdir(p, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "mkimgfolder: %s: %s\n", p, strerror(errno));
        exit(1);
    }
}

static void write_jpeg(const char *path, const uint8_t *rgb, int s)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        fprintf(stderr, "mkimgfolder: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = ci.image_height = (JDIMENSION)s;
    ci.input_components = 3;
    ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 90, TRUE);
    jpeg_start_compress(&ci, TRUE);
    uint8_t *row = xmalloc((size_t)s * 3);
    while (ci.next_scanline < ci.image_height) {
        memcpy(row, rgb + (size_t)ci.next_scanline * s * 3, (size_t)s * 3);
        JSAMPROW r = row;
        jpeg_write_scanlines(&ci, &r, 1);
    }
    free(row);
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    fclose(f);
}

static void write_png(const char *path, const uint8_t *rgb, int s)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        exit(1);
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(p);
    if (setjmp(png_jmpbuf(p)))
        exit(1);
    png_init_io(p, f);
    png_set_IHDR(p, info, (png_uint_32)s, (png_uint_32)s, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(p, info);
    for (int y = 0; y < s; y++)
        png_write_row(p, (png_const_bytep)(rgb + (size_t)y * s * 3));
    png_write_end(p, info);
    png_destroy_write_struct(&p, &info);
    fclose(f);
}

/* Bilinear upscale of a 28x28 grey image to s x s RGB with a tint. */
static void upscale(uint8_t *rgb, const uint8_t *g, int s, int tint)
{
    for (int y = 0; y < s; y++)
        for (int x = 0; x < s; x++) {
            double fy = (y + 0.5) * 28.0 / s - 0.5, fx = (x + 0.5) * 28.0 / s - 0.5;
            int y0 = fy < 0 ? 0 : (int)fy, x0 = fx < 0 ? 0 : (int)fx;
            int y1 = y0 + 1 > 27 ? 27 : y0 + 1, x1 = x0 + 1 > 27 ? 27 : x0 + 1;
            double wy = fy - y0 < 0 ? 0 : fy - y0, wx = fx - x0 < 0 ? 0 : fx - x0;
            double v = (1 - wy) * ((1 - wx) * g[y0 * 28 + x0] + wx * g[y0 * 28 + x1]) +
                       wy * ((1 - wx) * g[y1 * 28 + x0] + wx * g[y1 * 28 + x1]);
            for (int c = 0; c < 3; c++) {
                double t = v * (0.8 + 0.1 * ((tint + c) % 3)) + 10 * c;
                rgb[((size_t)y * s + x) * 3 + c] = (uint8_t)(t > 255 ? 255 : t);
            }
        }
}

static void write_split(const dataset *d, const char *out, const char *split, int n, int s, int png,
                        int bad)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", out, split);
    mkdir_or_die(p);
    for (int c = 0; c < 10; c++) {
        snprintf(p, sizeof p, "%s/%s/%s", out, split, CLASSES[c]);
        mkdir_or_die(p);
    }
    uint8_t *rgb = xmalloc((size_t)s * s * 3);
    for (int i = 0; i < n; i++) {
        int k = i % d->n;
        upscale(rgb, d->images + (size_t)k * 784, s, i / d->n + k);
        int as_png = png && i % 3 == 2;
        snprintf(p, sizeof p, "%s/%s/%s/%06d.%s", out, split, CLASSES[d->labels[k]], i,
                 as_png ? "png" : "jpg");
        if (as_png)
            write_png(p, rgb, s);
        else
            write_jpeg(p, rgb, s);
    }
    for (int i = 0; i < bad; i++) { /* a JPEG cut in half */
        snprintf(p, sizeof p, "%s/%s/%s/bad%03d.jpg", out, split, CLASSES[i % 10], i);
        write_jpeg(p, rgb, s);
        FILE *f = fopen(p, "r+b");
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fclose(f);
        if (truncate(p, len / 2) != 0)
            exit(1);
    }
    free(rgb);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: mkimgfolder IDX_ROOT OUT [--train N] [--test N] [--size S] "
                        "[--bad K] [--png]\n");
        return 1;
    }
    int ntrain = 1000, ntest = 200, size = 56, bad = 0, png = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--png") == 0)
            png = 1;
        else if (i + 1 < argc && strcmp(argv[i], "--train") == 0)
            ntrain = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--test") == 0)
            ntest = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--size") == 0)
            size = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--bad") == 0)
            bad = atoi(argv[++i]);
        else {
            fprintf(stderr, "mkimgfolder: unknown argument %s\n", argv[i]);
            return 1;
        }
    }
    data_spec spec = {.dataset = DS_FASHION_MNIST};
    snprintf(spec.root, sizeof spec.root, "%s", argv[1]);
    dataset tr, te;
    errbuf eb = {""};
    if (dataset_load(&tr, &te, &spec, &eb) != 0) {
        fprintf(stderr, "mkimgfolder: %s\n", eb.msg);
        return 1;
    }
    mkdir_or_die(argv[2]);
    write_split(&tr, argv[2], "train", ntrain, size, png, bad);
    write_split(&te, argv[2], "val", ntest, size, png, 0);
    dataset_free(&tr);
    dataset_free(&te);
    return 0;
}
