/* transform.h - torchvision's image transforms for training and evaluation.
 *
 * Training: RandomResizedCrop(size, scale, ratio, bilinear|bicubic),
 * RandomHorizontalFlip(p), RandAugment(n, m) (torchvision's 14 operations,
 * 31 magnitude bins, nearest-neighbour geometry, fill 0), ColorJitter(b, c,
 * s, h), ToTensor + Normalize(mean, std), RandomErasing(p, (0.02, 0.33),
 * (0.3, 3.3), value 0 or per-pixel normal). Evaluation: Resize(short side)
 * then CenterCrop(size), then Normalize. The random choices are drawn into a
 * transform_draw (from kiln's rng, not torch's) and applied separately, so
 * tests can apply torchvision's parameters and compare outputs: the
 * geometric and colour operations equal PIL's byte for byte (resample.c,
 * colorops.c). Images in are 8-bit (h, w, c), c = 1 or 3; outputs are float
 * (size, size, c). Thread-safe; scratch memory is the caller's
 * transform_work.
 */
#ifndef KILN_DATA_TRANSFORM_H
#define KILN_DATA_TRANSFORM_H

#include "common/rng.h"
#include "worker/data/image.h"
#include "worker/data/resample.h"

#define TRANSFORM_MAX_OPS    8  /* RandAugment operations per image */
#define TRANSFORM_RA_BINS    31 /* RandAugment magnitude bins (m in 0..30) */
#define TRANSFORM_RA_NUM_OPS 14

/* RandAugment's operations, in torchvision's order. */
enum {
    RA_IDENTITY = 0,
    RA_SHEAR_X,
    RA_SHEAR_Y,
    RA_TRANSLATE_X,
    RA_TRANSLATE_Y,
    RA_ROTATE,
    RA_BRIGHTNESS,
    RA_COLOR,
    RA_CONTRAST,
    RA_SHARPNESS,
    RA_POSTERIZE,
    RA_SOLARIZE,
    RA_AUTOCONTRAST,
    RA_EQUALIZE,
};

typedef struct transform_spec {
    int size; /* output side */
    int channels;
    resample_filter interp;
    /* training */
    double scale[2], ratio[2]; /* RandomResizedCrop */
    double hflip;              /* probability */
    double jitter[4];          /* ColorJitter brightness, contrast, saturation, hue (0 = off) */
    int ra_n, ra_m;            /* RandAugment operations and magnitude; ra_n = 0: off */
    double erase_p;            /* RandomErasing probability */
    int erase_pixel;           /* 1: per-pixel N(0, 1) values (timm's "pixel"); 0: zeros */
    /* evaluation */
    int resize; /* short side before the centre crop */
    float mean[3], std[3];
} transform_spec;

/* One sample's random choices. */
typedef struct transform_draw {
    int top, left, h, w; /* RandomResizedCrop region of the source */
    int flip;
    int n_ops;
    int op[TRANSFORM_MAX_OPS], negate[TRANSFORM_MAX_OPS]; /* RandAugment */
    int jitter;                                           /* ColorJitter applied */
    int jitter_order[4];                                  /* 0 b, 1 c, 2 s, 3 h */
    float jitter_f[3];                                    /* brightness, contrast, saturation */
    double hue;
    int erase, ei, ej, eh, ew; /* RandomErasing region of the output */
    uint64_t erase_seed;       /* per-pixel values */
} transform_draw;

typedef struct transform_work {
    image a, b, tmp; /* scratch */
} transform_work;

void transform_work_free(transform_work *w);

/* torchvision's RandomResizedCrop.get_params on an (h, w) image. */
void transform_rrc_params(int *top, int *left, int *ch, int *cw, int h, int w,
                          const double scale[2], const double ratio[2], rng *r);

/* Draws every random choice of the training pipeline for a source image of
 * (src_h, src_w), in this order: crop, flip, RandAugment (op, sign per
 * operation), ColorJitter (order, factors; only when some jitter > 0),
 * erasing. */
void transform_draw_train(transform_draw *d, const transform_spec *s, int src_h, int src_w, rng *r);

/* out (s->size, s->size, s->channels) = the training pipeline on src with
 * the choices d. src->c == s->channels (asserted). */
void transform_apply_train(float *out, const image *src, const transform_spec *s,
                           const transform_draw *d, transform_work *w);

/* out = Resize(s->resize) + CenterCrop(s->size) + Normalize of src. */
void transform_apply_eval(float *out, const image *src, const transform_spec *s, transform_work *w);

/* ---- the single operations (tested one by one against torchvision) -------- */

/* The (oh, ow) that Resize(short) gives an (h, w) image (torchvision 0.14). */
void transform_short_side(int *oh, int *ow, int h, int w, int short_side);

/* F.center_crop(img, (ch, cw)), zero-padding a smaller image first. */
void transform_center_crop(image *out, const image *in, int ch, int cw);

/* Mirrors im left-right in place. */
void transform_hflip(image *im);

/* RandAugment's magnitude of op at bin m (0..30) for an (h, w) image, as
 * torchvision's float32 linspace gives it (unsigned). */
double transform_ra_magnitude(int op, int m, int h, int w);

/* torchvision's _apply_op(img, op, magnitude) with nearest interpolation
 * and fill 0. out is scratch for the geometric operations; the result is
 * left in im. */
void transform_ra_apply(image *im, int op, double magnitude, transform_work *w);

/* ColorJitter's four adjustments in the given order (entries 0..3). */
void transform_jitter_apply(image *im, const int order[4], const float f[3], double hue,
                            image *tmp);

/* ToTensor + Normalize: out (h, w, c) = (px / 255 - mean) / std in float. */
void transform_normalize(float *out, const image *im, const float *mean, const float *std);

/* RandomErasing.get_params on a (h, w) output; *erase = 0 when no draw fits. */
void transform_erase_params(int *erase, int *i, int *j, int *eh, int *ew, int h, int w, rng *r);

#endif
