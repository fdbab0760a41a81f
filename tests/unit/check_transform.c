/* check_transform.c - kiln's transforms against torchvision on the same images.
 *
 * The test writes a source PNG (RGB and grey, odd sizes), lists cases with
 * fixed parameters (the random ones fixed too), has Debian's torchvision
 * compute them (tests/tools/tvref.py ops), and compares: uint8 results must
 * be equal byte for byte; float results (ToTensor + Normalize, erasing)
 * within 1e-6. RandomResizedCrop's and RandomErasing's parameter draws are
 * checked for their documented ranges and for the fallback.
 */
#include "common/rng.h"
#include "common/xalloc.h"
#include "tests/unit/imgwrite.h"
#include "tests/unit/testutil.h"
#include "worker/data/imgdecode.h"
#include "worker/data/transform.h"

#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_transform(void);

static const char *const RA_NAMES[TRANSFORM_RA_NUM_OPS] = {
    "Identity", "ShearX",   "ShearY",    "TranslateX", "TranslateY", "Rotate",       "Brightness",
    "Color",    "Contrast", "Sharpness", "Posterize",  "Solarize",   "AutoContrast", "Equalize"};

static const float IMNET_MEAN[3] = {0.485f, 0.456f, 0.406f},
                   IMNET_STD[3] = {0.229f, 0.224f, 0.225f};

typedef struct tcase_ctx {
    char *dir;
    char src_rgb[512], src_grey[512];
    image rgb, grey;
    FILE *cases;
    int n;
} tcase_ctx;

static void make_sources(tcase_ctx *t, int h, int w)
{
    uint8_t *px = xmalloc((size_t)h * w * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            /* A blob, a gradient and a texture: every operation changes something. */
            double d = hypot(x - w * 0.4, y - h * 0.6) / (w * 0.5);
            for (int c = 0; c < 3; c++) {
                double v = 128 + 90 * cos(d * (3 + c)) + 30 * sin(x * 0.7 + c) * cos(y * 0.45);
                px[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0     ? 0
                                                            : v > 255 ? 255
                                                                      : v) ^
                                                  (uint8_t)(((x ^ y) & 4) * c);
            }
        }
    snprintf(t->src_rgb, sizeof t->src_rgb, "%s/src.png", t->dir);
    ck_assert_int_eq(iw_png_pixels(t->src_rgb, px, h, w, 3), 0);
    snprintf(t->src_grey, sizeof t->src_grey, "%s/src.png", t->dir); /* PIL converts to L */
    free(px);
    uint8_t *buf = NULL;
    size_t cap = 0, len;
    ck_assert_int_eq(imgdecode_read_file(t->src_rgb, &buf, &cap, &len, NULL), 0);
    ck_assert_int_eq(imgdecode(&t->rgb, buf, len, 3, "src", NULL), 0);
    ck_assert_int_eq(imgdecode(&t->grey, buf, len, 1, "src", NULL), 0);
    free(buf);
}

/* Adds a case; returns its name (static buffer of the caller). */
static void add(tcase_ctx *t, char *name, size_t cap, int grey, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void add(tcase_ctx *t, char *name, size_t cap, int grey, const char *fmt, ...)
{
    snprintf(name, cap, "c%03d", t->n++);
    fprintf(t->cases, "%s %s %s ", name, t->src_rgb, grey ? "L" : "RGB");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(t->cases, fmt, ap);
    va_end(ap);
    fputc('\n', t->cases);
}

/* The cases, in one place for both the listing and the checking pass. */
typedef enum { K_U8, K_F32 } kind;
typedef struct one {
    char name[16];
    kind k;
    image u8;
    float *f;
    int h, w, c;
} one;

#define MAX_CASES 512

static void load_ref(const tcase_ctx *t, const one *o, void **data, int *h, int *w, int *c)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s.shape", t->dir, o->name);
    FILE *f = fopen(p, "r");
    ck_assert_msg(f != NULL, "torchvision wrote no %s", p);
    ck_assert_int_eq(fscanf(f, "%d %d %d", h, w, c), 3);
    fclose(f);
    snprintf(p, sizeof p, "%s/%s.out", t->dir, o->name);
    size_t cap = 0, len;
    uint8_t *buf = NULL;
    ck_assert_int_eq(imgdecode_read_file(p, &buf, &cap, &len, NULL), 0);
    size_t want = (size_t)*h * *w * *c * (o->k == K_F32 ? sizeof(float) : 1);
    ck_assert_msg(len == want, "%s: %zu bytes, want %zu", p, len, want);
    *data = buf;
}

static void compare(const tcase_ctx *t, const one *o, const char *what)
{
    void *ref;
    int h, w, c;
    load_ref(t, o, &ref, &h, &w, &c);
    ck_assert_msg(h == o->h && w == o->w && c == o->c,
                  "%s (%s): shape %dx%dx%d, torchvision %dx%dx%d", what, o->name, o->h, o->w, o->c,
                  h, w, c);
    size_t n = (size_t)h * w * c, bad = 0, first = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = o->k == K_U8 ? fabs((double)o->u8.px[i] - ((uint8_t *)ref)[i])
                                : fabs((double)o->f[i] - (double)((float *)ref)[i]);
        if (d > (o->k == K_U8 ? 0.0 : 1e-6) && bad++ == 0)
            first = i;
        worst = d > worst ? d : worst;
    }
    ck_assert_msg(bad == 0,
                  "%s (%s): %zu of %zu values differ from torchvision (max %g), first at %zu", what,
                  o->name, bad, n, worst, first);
    free(ref);
}

static void run_python(const tcase_ctx *t)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/tools/tvref.py ops %s/cases.txt %s", t->dir,
             t->dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void setup_ctx(tcase_ctx *t, int h, int w)
{
    memset(t, 0, sizeof *t);
    ck_assert_msg(iw_have_torchvision(), "/usr/bin/python3 with torchvision is needed (make deps)");
    t->dir = iw_tempdir("tf");
    make_sources(t, h, w);
    char p[600];
    snprintf(p, sizeof p, "%s/cases.txt", t->dir);
    t->cases = fopen(p, "w");
    ck_assert_ptr_nonnull(t->cases);
}

static void teardown_ctx(tcase_ctx *t)
{
    image_free(&t->rgb);
    image_free(&t->grey);
    iw_rmtree(t->dir);
    free(t->dir);
}

static void set_u8(one *o, const image *im)
{
    o->k = K_U8;
    image_resize_buffer(&o->u8, im->h, im->w, im->c);
    memcpy(o->u8.px, im->px, (size_t)im->h * im->w * im->c);
    o->h = im->h;
    o->w = im->w;
    o->c = im->c;
}

/* Resizes, crops, flips, centre crops; RGB and grey. */
START_TEST(test_geometry)
{
    tcase_ctx t;
    setup_ctx(&t, 71, 97);
    one *os = xcalloc(MAX_CASES, sizeof *os);
    int n = 0;
    transform_work w = {0};
    const char *interp[2] = {"bilinear", "bicubic"};
    static const int sizes[][2] = {{32, 32}, {71, 97}, {150, 201}, {35, 120}, {7, 5}, {71, 40}};
    for (int g = 0; g < 2; g++) {
        const image *src = g ? &t.grey : &t.rgb;
        for (int f = 0; f < 2; f++)
            for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                one *o = &os[n++];
                add(&t, o->name, sizeof o->name, g, "resize %d %d %s", sizes[s][0], sizes[s][1],
                    interp[f]);
                image out = {0};
                resample_crop(&out, src, 0, 0, src->h, src->w, sizes[s][0], sizes[s][1],
                              (resample_filter)f, &w.tmp);
                set_u8(o, &out);
                image_free(&out);
            }
        static const int crops[][5] = {
            {3, 5, 40, 61, 24}, {0, 0, 71, 97, 224}, {10, 20, 13, 9, 32}, {60, 80, 11, 17, 16}};
        for (int f = 0; f < 2; f++)
            for (size_t s = 0; s < 4; s++) {
                const int *c = crops[s];
                one *o = &os[n++];
                add(&t, o->name, sizeof o->name, g, "resized_crop %d %d %d %d %d %s", c[0], c[1],
                    c[2], c[3], c[4], interp[f]);
                image out = {0};
                resample_crop(&out, src, c[0], c[1], c[2], c[3], c[4], c[4], (resample_filter)f,
                              &w.tmp);
                set_u8(o, &out);
                image_free(&out);
            }
        static const int shorts[] = {64, 80, 256};
        for (int s = 0; s < 3; s++) {
            one *o = &os[n++];
            add(&t, o->name, sizeof o->name, g, "resize_short %d bilinear", shorts[s]);
            int oh, ow;
            transform_short_side(&oh, &ow, src->h, src->w, shorts[s]);
            image out = {0};
            resample_crop(&out, src, 0, 0, src->h, src->w, oh, ow, RESAMPLE_BILINEAR, &w.tmp);
            set_u8(o, &out);
            image_free(&out);
        }
        static const int cc[][2] = {{64, 64}, {70, 96}, {80, 101}, {33, 20}};
        for (int s = 0; s < 4; s++) {
            one *o = &os[n++];
            add(&t, o->name, sizeof o->name, g, "center_crop %d %d", cc[s][0], cc[s][1]);
            image out = {0};
            transform_center_crop(&out, src, cc[s][0], cc[s][1]);
            set_u8(o, &out);
            image_free(&out);
        }
        one *o = &os[n++];
        add(&t, o->name, sizeof o->name, g, "hflip");
        set_u8(o, src);
        transform_hflip(&o->u8);
    }
    fclose(t.cases);
    run_python(&t);
    for (int i = 0; i < n; i++) {
        compare(&t, &os[i], "geometry");
        image_free(&os[i].u8);
    }
    free(os);
    transform_work_free(&w);
    teardown_ctx(&t);
}
END_TEST

/* RandAugment's 14 operations at several magnitudes and both signs, and
 * ColorJitter's four adjustments in several orders. */
START_TEST(test_color_and_randaugment)
{
    tcase_ctx t;
    setup_ctx(&t, 53, 67);
    one *os = xcalloc(MAX_CASES, sizeof *os);
    int n = 0;
    transform_work w = {0};
    static const int mags[] = {0, 5, 9, 17, 30};
    for (int g = 0; g < 2; g++) {
        const image *src = g ? &t.grey : &t.rgb;
        for (int op = 0; op < TRANSFORM_RA_NUM_OPS; op++)
            for (int mi = 0; mi < 5; mi++)
                for (int neg = 0; neg < 2; neg++) {
                    one *o = &os[n++];
                    add(&t, o->name, sizeof o->name, g, "ra %s %d %d", RA_NAMES[op], mags[mi], neg);
                    set_u8(o, src);
                    double mag = transform_ra_magnitude(op, mags[mi], src->h, src->w);
                    if (neg && op >= RA_SHEAR_X && op <= RA_SHARPNESS)
                        mag = -mag;
                    transform_ra_apply(&o->u8, op, mag, &w);
                    o->h = o->u8.h;
                    o->w = o->u8.w;
                }
        static const char *orders[] = {"0123", "3210", "2031", "1302"};
        static const double jit[][4] = {{1.3, 0.7, 1.4, 0.08},
                                        {0.6, 1.35, 0.2, -0.23},
                                        {1.0, 1.0, 1.0, 0.5},
                                        {1.9, 0.1, 0.0, -0.5}};
        for (int k = 0; k < 4; k++) {
            one *o = &os[n++];
            const double *j = jit[k];
            add(&t, o->name, sizeof o->name, g, "jitter %s %.17g %.17g %.17g %.17g", orders[k],
                j[0], j[1], j[2], j[3]);
            set_u8(o, src);
            int ord[4];
            for (int i = 0; i < 4; i++)
                ord[i] = orders[k][i] - '0';
            float f[3] = {(float)j[0], (float)j[1], (float)j[2]};
            transform_jitter_apply(&o->u8, ord, f, j[3], &w.tmp);
        }
    }
    fclose(t.cases);
    run_python(&t);
    for (int i = 0; i < n; i++) {
        compare(&t, &os[i], "colour/RandAugment");
        image_free(&os[i].u8);
    }
    free(os);
    transform_work_free(&w);
    teardown_ctx(&t);
}
END_TEST

/* Normalisation, the eval pipeline and the whole training pipeline at fixed
 * draws, against torchvision's composition of the same operations. */
START_TEST(test_pipelines)
{
    tcase_ctx t;
    setup_ctx(&t, 83, 61);
    one *os = xcalloc(MAX_CASES, sizeof *os);
    int n = 0;
    transform_work w = {0};
    for (int g = 0; g < 2; g++) {
        const image *src = g ? &t.grey : &t.rgb;
        int C = src->c;
        one *o = &os[n++];
        add(&t, o->name, sizeof o->name, g, "normalize %s",
            C == 3 ? "0.485 0.456 0.406 0.229 0.224 0.225" : "0.485 0.229");
        o->k = K_F32;
        o->h = src->h, o->w = src->w, o->c = C;
        o->f = xmallocarray((size_t)src->h * src->w * C, sizeof(float));
        transform_normalize(o->f, src, IMNET_MEAN, IMNET_STD);

        transform_spec s = {.size = 48, .channels = C, .interp = RESAMPLE_BICUBIC, .resize = 55};
        memcpy(s.mean, IMNET_MEAN, sizeof s.mean);
        memcpy(s.std, IMNET_STD, sizeof s.std);
        o = &os[n++];
        add(&t, o->name, sizeof o->name, g, "eval 55 48 bicubic");
        o->k = K_F32;
        o->h = o->w = 48, o->c = C;
        o->f = xmallocarray((size_t)48 * 48 * C, sizeof(float));
        transform_apply_eval(o->f, src, &s, &w);

        static const int draws[][10] = {
            /* top left h w flip opA negA opB negB m */
            {5, 7, 60, 44, 1, RA_ROTATE, 1, RA_COLOR, 0, 9},
            {0, 0, 83, 61, 0, RA_SHEAR_X, 0, RA_EQUALIZE, 0, 9},
            {20, 3, 31, 57, 1, RA_TRANSLATE_Y, 1, RA_SHARPNESS, 1, 15},
        };
        for (int k = 0; k < 3; k++) {
            const int *d = draws[k];
            transform_draw dr = {.top = d[0],
                                 .left = d[1],
                                 .h = d[2],
                                 .w = d[3],
                                 .flip = d[4],
                                 .n_ops = 2,
                                 .jitter = 1,
                                 .erase = 1,
                                 .ei = 3 + k,
                                 .ej = 7,
                                 .eh = 10 + k,
                                 .ew = 5};
            dr.op[0] = d[5], dr.negate[0] = d[6], dr.op[1] = d[7], dr.negate[1] = d[8];
            static const int ord[4] = {2, 0, 3, 1};
            memcpy(dr.jitter_order, ord, sizeof ord);
            dr.jitter_f[0] = 1.2f, dr.jitter_f[1] = 0.8f, dr.jitter_f[2] = 1.1f;
            dr.hue = 0.05;
            transform_spec ts = s;
            ts.interp = (resample_filter)(k & 1);
            ts.ra_m = d[9];
            o = &os[n++];
            add(&t, o->name, sizeof o->name, g,
                "train %d %d %d %d 48 %s %d %s %d %s %d %d 2031 %.17g %.17g %.17g %.17g %d %d %d "
                "%d",
                d[0], d[1], d[2], d[3], k & 1 ? "bicubic" : "bilinear", d[4], RA_NAMES[d[5]], d[6],
                RA_NAMES[d[7]], d[8], d[9], (double)dr.jitter_f[0], (double)dr.jitter_f[1],
                (double)dr.jitter_f[2], dr.hue, dr.ei, dr.ej, dr.eh, dr.ew);
            o->k = K_F32;
            o->h = o->w = 48, o->c = C;
            o->f = xmallocarray((size_t)48 * 48 * C, sizeof(float));
            transform_apply_train(o->f, src, &ts, &dr, &w);
        }
    }
    fclose(t.cases);
    run_python(&t);
    for (int i = 0; i < n; i++) {
        compare(&t, &os[i], "pipeline");
        free(os[i].f);
    }
    free(os);
    transform_work_free(&w);
    teardown_ctx(&t);
}
END_TEST

/* The parameter draws stay in torchvision's ranges; the crop falls back to
 * the centre when no attempt fits. */
START_TEST(test_draw_ranges)
{
    rng r;
    rng_seed(&r, 42);
    const double scale[2] = {0.08, 1.0}, ratio[2] = {3.0 / 4.0, 4.0 / 3.0};
    for (int i = 0; i < 2000; i++) {
        int h = 20 + (int)rng_below(&r, 300), w = 20 + (int)rng_below(&r, 300);
        int top, left, ch, cw;
        transform_rrc_params(&top, &left, &ch, &cw, h, w, scale, ratio, &r);
        ck_assert(ch >= 1 && cw >= 1 && top >= 0 && left >= 0 && top + ch <= h && left + cw <= w);
        int e, ei, ej, eh, ew;
        transform_erase_params(&e, &ei, &ej, &eh, &ew, h, w, &r);
        if (e)
            ck_assert(eh < h && ew < w && ei + eh <= h && ej + ew <= w);
    }
    /* A 1000 x 10 strip: a scale of 1 never fits a ratio in [3/4, 4/3], so
     * torchvision's fallback crops the centre at the largest ratio. */
    const double full[2] = {1.0, 1.0};
    int top, left, ch, cw;
    transform_rrc_params(&top, &left, &ch, &cw, 10, 1000, full, ratio, &r);
    ck_assert_int_eq(ch, 10);
    ck_assert_int_eq(cw, 13); /* round(10 * 4/3) */
    ck_assert_int_eq(top, 0);
    ck_assert_int_eq(left, (1000 - 13) / 2);
}
END_TEST

Suite *suite_transform(void)
{
    Suite *s = suite_create("transform");
    tu_case_add(
        s, "core", 120, NULL, NULL,
        TU_TESTS(test_geometry, test_color_and_randaugment, test_pipelines, test_draw_ranges));
    return s;
}
