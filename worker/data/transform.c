/* transform.c - torchvision's transforms on 8-bit images (see transform.h).
 *
 * The geometry of RandAugment goes through PIL's affine transform with
 * nearest-neighbour sampling: the inverse matrix comes from torchvision's
 * _get_inverse_affine_matrix (or PIL's rotate, with its cosines rounded to
 * 15 decimals), then PIL's scale-only path or its 16.16 fixed-point path.
 * Python's round() is half-to-even (rint here). Depends on libc, libm,
 * common/rng, resample.c, colorops.c; thread-safe.
 */
#include "worker/data/transform.h"

#include "worker/data/colorops.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TF_PI 3.14159265358979323846

void transform_work_free(transform_work *w)
{
    image_free(&w->a);
    image_free(&w->b);
    image_free(&w->tmp);
}

static double uniform(rng *r, double lo, double hi)
{
    return lo + (hi - lo) * (double)rng_uniform(r);
}

void transform_rrc_params(int *top, int *left, int *ch, int *cw, int h, int w,
                          const double scale[2], const double ratio[2], rng *r)
{
    double area = (double)h * w, lr0 = log(ratio[0]), lr1 = log(ratio[1]);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * uniform(r, scale[0], scale[1]);
        double aspect = exp(uniform(r, lr0, lr1));
        int cwi = (int)rint(sqrt(target * aspect)), chi = (int)rint(sqrt(target / aspect));
        if (cwi > 0 && cwi <= w && chi > 0 && chi <= h) {
            *top = (int)rng_below(r, (uint32_t)(h - chi + 1));
            *left = (int)rng_below(r, (uint32_t)(w - cwi + 1));
            *ch = chi;
            *cw = cwi;
            return;
        }
    }
    double in_ratio = (double)w / (double)h, rmin = fmin(ratio[0], ratio[1]),
           rmax = fmax(ratio[0], ratio[1]);
    int cwi = w, chi = h;
    if (in_ratio < rmin)
        chi = (int)rint(cwi / rmin);
    else if (in_ratio > rmax)
        cwi = (int)rint(chi * rmax);
    *top = (h - chi) / 2;
    *left = (w - cwi) / 2;
    *ch = chi;
    *cw = cwi;
}

void transform_erase_params(int *erase, int *i, int *j, int *eh, int *ew, int h, int w, rng *r)
{
    const double s0 = 0.02, s1 = 0.33, lr0 = log(0.3), lr1 = log(3.3);
    double area = (double)h * w;
    *erase = 0;
    for (int attempt = 0; attempt < 10; attempt++) {
        double ea = area * uniform(r, s0, s1), aspect = exp(uniform(r, lr0, lr1));
        int hh = (int)rint(sqrt(ea * aspect)), ww = (int)rint(sqrt(ea / aspect));
        if (!(hh < h && ww < w))
            continue;
        *i = (int)rng_below(r, (uint32_t)(h - hh + 1));
        *j = (int)rng_below(r, (uint32_t)(w - ww + 1));
        *eh = hh;
        *ew = ww;
        *erase = 1;
        return;
    }
}

void transform_draw_train(transform_draw *d, const transform_spec *s, int src_h, int src_w, rng *r)
{
    memset(d, 0, sizeof *d);
    transform_rrc_params(&d->top, &d->left, &d->h, &d->w, src_h, src_w, s->scale, s->ratio, r);
    d->flip = s->hflip > 0 && (double)rng_uniform(r) < s->hflip;
    d->n_ops = s->ra_n < TRANSFORM_MAX_OPS ? s->ra_n : TRANSFORM_MAX_OPS;
    for (int k = 0; k < d->n_ops; k++) {
        d->op[k] = (int)rng_below(r, TRANSFORM_RA_NUM_OPS);
        d->negate[k] = (int)rng_below(r, 2);
    }
    const double *j = s->jitter;
    d->jitter = j[0] > 0 || j[1] > 0 || j[2] > 0 || j[3] > 0;
    if (d->jitter) {
        uint32_t ord[4] = {0, 1, 2, 3};
        rng_shuffle(r, ord, 4);
        for (int k = 0; k < 4; k++)
            d->jitter_order[k] = (int)ord[k];
        for (int k = 0; k < 3; k++)
            d->jitter_f[k] = j[k] > 0 ? (float)uniform(r, fmax(0.0, 1.0 - j[k]), 1.0 + j[k]) : 1.0f;
        d->hue = j[3] > 0 ? uniform(r, -j[3], j[3]) : 0.0;
    }
    if (s->erase_p > 0 && (double)rng_uniform(r) < s->erase_p) {
        transform_erase_params(&d->erase, &d->ei, &d->ej, &d->eh, &d->ew, s->size, s->size, r);
        d->erase_seed = rng_u64(r);
    }
}

/* ---- geometry ------------------------------------------------------------- */

void transform_short_side(int *oh, int *ow, int h, int w, int short_side)
{
    int sh = w <= h ? w : h, lg = w <= h ? h : w;
    int nl = (int)((double)short_side * lg / sh);
    *ow = w <= h ? short_side : nl;
    *oh = w <= h ? nl : short_side;
}

void transform_center_crop(image *out, const image *in, int ch, int cw)
{
    int H = in->h, W = in->w, C = in->c;
    /* Padding (left, top) that torchvision adds to a smaller image, then the
     * crop offset in the padded image. */
    int pl = cw > W ? (cw - W) / 2 : 0, pt = ch > H ? (ch - H) / 2 : 0;
    int pw = cw > W ? W + pl + (cw - W + 1) / 2 : W, ph = ch > H ? H + pt + (ch - H + 1) / 2 : H;
    int top = (int)rint((ph - ch) / 2.0), left = (int)rint((pw - cw) / 2.0);
    image_resize_buffer(out, ch, cw, C);
    for (int y = 0; y < ch; y++) {
        int sy = y + top - pt;
        uint8_t *o = out->px + (size_t)y * cw * C;
        for (int x = 0; x < cw; x++) {
            int sx = x + left - pl;
            for (int c = 0; c < C; c++)
                o[x * C + c] = (sy >= 0 && sy < H && sx >= 0 && sx < W)
                                   ? in->px[((size_t)sy * W + sx) * C + c]
                                   : 0;
        }
    }
}

void transform_hflip(image *im)
{
    int W = im->w, C = im->c;
    for (int y = 0; y < im->h; y++) {
        uint8_t *row = im->px + (size_t)y * W * C;
        for (int x = 0; x < W / 2; x++)
            for (int c = 0; c < C; c++) {
                uint8_t t = row[x * C + c];
                row[x * C + c] = row[(W - 1 - x) * C + c];
                row[(W - 1 - x) * C + c] = t;
            }
    }
}

/* PIL's ImagingTransformAffine with NEAREST and fill 0: out (same size) at
 * (x, y) samples in at a * (x + 0.5, y + 0.5) + (a2, a5). */
static void affine_nearest(image *out, const image *in, const double a[6])
{
    int H = in->h, W = in->w, C = in->c;
    image_resize_buffer(out, H, W, C);
    memset(out->px, 0, (size_t)H * W * C);
    if (a[1] == 0 && a[3] == 0) { /* PIL's scale-only path */
        double xo0 = a[2] + a[0] * 0.5, yo = a[5] + a[4] * 0.5;
        for (int y = 0; y < H; y++) {
            int yi = yo < 0.0 ? -1 : (int)yo;
            yo += a[4];
            if (yi < 0 || yi >= H)
                continue;
            double xo = xo0;
            for (int x = 0; x < W; x++) {
                int xi = xo < 0.0 ? -1 : (int)xo;
                xo += a[0];
                if (xi >= 0 && xi < W)
                    memcpy(out->px + ((size_t)y * W + x) * C, in->px + ((size_t)yi * W + xi) * C,
                           (size_t)C);
            }
        }
        return;
    }
    /* PIL's 16.16 fixed-point path (taken whenever the corners map within
     * +-32768, always so for images under 2^14 pixels a side here). */
    for (int k = 0; k < 4; k++) {
        double x = (k & 1) ? W : 0, y = (k & 2) ? H : 0;
        assert(fabs(x * a[0] + y * a[1] + a[2]) < 32768.0);
        assert(fabs(x * a[3] + y * a[4] + a[5]) < 32768.0);
        (void)x, (void)y; /* only the asserts read them */
    }
#define TF_FIX(v) ((int)floor((v)*65536.0 + 0.5))
    int a0 = TF_FIX(a[0]), a1 = TF_FIX(a[1]), a3 = TF_FIX(a[3]), a4 = TF_FIX(a[4]);
    int a2 = TF_FIX(a[2] + a[0] * 0.5 + a[1] * 0.5), a5 = TF_FIX(a[5] + a[3] * 0.5 + a[4] * 0.5);
#undef TF_FIX
    for (int y = 0; y < H; y++) {
        int xx = a2, yy = a5;
        for (int x = 0; x < W; x++) {
            int xi = xx >> 16, yi = yy >> 16;
            if (xi >= 0 && xi < W && yi >= 0 && yi < H)
                memcpy(out->px + ((size_t)y * W + x) * C, in->px + ((size_t)yi * W + xi) * C,
                       (size_t)C);
            xx += a0;
            yy += a3;
        }
        a2 += a1;
        a5 += a4;
    }
}

static double py_radians(double deg)
{
    return deg * (TF_PI / 180.0);
}

static double py_degrees(double rad)
{
    return rad * (180.0 / TF_PI);
}

/* torchvision's _get_inverse_affine_matrix (scale 1). */
static void inverse_affine(double m[6], double cx, double cy, double angle, double tx, double ty,
                           double shx, double shy)
{
    double rot = py_radians(angle), sx = py_radians(shx), sy = py_radians(shy);
    double a = cos(rot - sy) / cos(sy);
    double b = -cos(rot - sy) * tan(sx) / cos(sy) - sin(rot);
    double c = sin(rot - sy) / cos(sy);
    double d = -sin(rot - sy) * tan(sx) / cos(sy) + cos(rot);
    m[0] = d;
    m[1] = -b;
    m[2] = 0.0;
    m[3] = -c;
    m[4] = a;
    m[5] = 0.0;
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
    m[2] += cx;
    m[5] += cy;
}

/* Python's round(x, 15), correctly rounded through decimal text as CPython does. */
static double round15(double x)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.15f", x);
    return strtod(buf, NULL);
}

/* PIL's Image.rotate(angle) matrix (no expand, centre w/2, h/2). */
static void rotate_matrix(double m[6], double angle, int H, int W)
{
    angle = fmod(angle, 360.0);
    if (angle < 0)
        angle += 360.0;
    double cx = W / 2.0, cy = H / 2.0, r = -py_radians(angle);
    m[0] = round15(cos(r));
    m[1] = round15(sin(r));
    m[2] = 0.0;
    m[3] = round15(-sin(r));
    m[4] = round15(cos(r));
    m[5] = 0.0;
    double x = -cx, y = -cy;
    double t2 = m[0] * x + m[1] * y + m[2], t5 = m[3] * x + m[4] * y + m[5];
    m[2] = t2 + cx;
    m[5] = t5 + cy;
}

/* ---- RandAugment ---------------------------------------------------------- */

/* torch.linspace(lo, hi, 31)[m] in float32 (its two-sided formula). */
static float linspace31(float lo, float hi, int m)
{
    const int steps = TRANSFORM_RA_BINS;
    float step = (hi - lo) / (float)(steps - 1);
    return m < steps / 2 ? lo + step * (float)m : hi - step * (float)(steps - m - 1);
}

double transform_ra_magnitude(int op, int m, int h, int w)
{
    assert(m >= 0 && m < TRANSFORM_RA_BINS);
    switch (op) {
    case RA_SHEAR_X:
    case RA_SHEAR_Y:
        return (double)linspace31(0.0f, 0.3f, m);
    case RA_TRANSLATE_X:
        return (double)linspace31(0.0f, (float)(150.0 / 331.0 * w), m);
    case RA_TRANSLATE_Y:
        return (double)linspace31(0.0f, (float)(150.0 / 331.0 * h), m);
    case RA_ROTATE:
        return (double)linspace31(0.0f, 30.0f, m);
    case RA_BRIGHTNESS:
    case RA_COLOR:
    case RA_CONTRAST:
    case RA_SHARPNESS:
        return (double)linspace31(0.0f, 0.9f, m);
    case RA_POSTERIZE:
        return 8.0 - rint((double)((float)m / 7.5f));
    case RA_SOLARIZE:
        return (double)linspace31(255.0f, 0.0f, m);
    default:
        return 0.0;
    }
}

static int ra_signed(int op)
{
    return op >= RA_SHEAR_X && op <= RA_SHARPNESS;
}

void transform_ra_apply(image *im, int op, double mag, transform_work *w)
{
    double m[6];
    int geometric = 1;
    switch (op) {
    case RA_SHEAR_X:
        inverse_affine(m, 0, 0, 0.0, 0, 0, py_degrees(atan(mag)), 0.0);
        break;
    case RA_SHEAR_Y:
        inverse_affine(m, 0, 0, 0.0, 0, 0, 0.0, py_degrees(atan(mag)));
        break;
    case RA_TRANSLATE_X:
        inverse_affine(m, im->w * 0.5, im->h * 0.5, 0.0, (double)(int)mag, 0, 0.0, 0.0);
        break;
    case RA_TRANSLATE_Y:
        inverse_affine(m, im->w * 0.5, im->h * 0.5, 0.0, 0, (double)(int)mag, 0.0, 0.0);
        break;
    case RA_ROTATE:
        rotate_matrix(m, mag, im->h, im->w);
        break;
    default:
        geometric = 0;
    }
    if (geometric) {
        if (op == RA_ROTATE && fmod(fmod(mag, 360.0) + 360.0, 360.0) == 0.0)
            return; /* PIL returns a copy */
        affine_nearest(&w->tmp, im, m);
        image t = *im;
        *im = w->tmp;
        w->tmp = t;
        return;
    }
    switch (op) {
    case RA_BRIGHTNESS:
        colorops_brightness(im, (float)(1.0 + mag));
        break;
    case RA_COLOR:
        colorops_saturation(im, (float)(1.0 + mag));
        break;
    case RA_CONTRAST:
        colorops_contrast(im, (float)(1.0 + mag));
        break;
    case RA_SHARPNESS:
        colorops_sharpness(im, (float)(1.0 + mag), &w->tmp);
        break;
    case RA_POSTERIZE:
        colorops_posterize(im, (int)mag);
        break;
    case RA_SOLARIZE:
        colorops_solarize(im, mag);
        break;
    case RA_AUTOCONTRAST:
        colorops_autocontrast(im);
        break;
    case RA_EQUALIZE:
        colorops_equalize(im);
        break;
    default:
        break; /* identity */
    }
}

void transform_jitter_apply(image *im, const int order[4], const float f[3], double hue, image *tmp)
{
    (void)tmp;
    for (int k = 0; k < 4; k++) {
        switch (order[k]) {
        case 0:
            colorops_brightness(im, f[0]);
            break;
        case 1:
            colorops_contrast(im, f[1]);
            break;
        case 2:
            colorops_saturation(im, f[2]);
            break;
        default:
            if (hue != 0.0)
                colorops_hue(im, hue);
            break;
        }
    }
}

void transform_normalize(float *out, const image *im, const float *mean, const float *std)
{
    float lut[3][256];
    int C = im->c;
    for (int c = 0; c < C; c++)
        for (int v = 0; v < 256; v++)
            lut[c][v] = ((float)v / 255.0f - mean[c]) / std[c];
    size_t n = (size_t)im->h * im->w;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < C; c++)
            out[i * C + c] = lut[c][im->px[i * C + c]];
}

/* ---- pipelines -------------------------------------------------------------- */

void transform_apply_train(float *out, const image *src, const transform_spec *s,
                           const transform_draw *d, transform_work *w)
{
    assert(src->c == s->channels);
    resample_crop(&w->a, src, d->top, d->left, d->h, d->w, s->size, s->size, s->interp, &w->tmp);
    if (d->flip)
        transform_hflip(&w->a);
    for (int k = 0; k < d->n_ops; k++) {
        int op = d->op[k];
        double mag = transform_ra_magnitude(op, s->ra_m, w->a.h, w->a.w);
        if (ra_signed(op) && d->negate[k])
            mag = -mag;
        transform_ra_apply(&w->a, op, mag, w);
    }
    if (d->jitter)
        transform_jitter_apply(&w->a, d->jitter_order, d->jitter_f, d->hue, &w->tmp);
    transform_normalize(out, &w->a, s->mean, s->std);
    if (d->erase) {
        rng r;
        rng_seed(&r, d->erase_seed);
        int C = s->channels;
        for (int y = d->ei; y < d->ei + d->eh; y++)
            for (int x = d->ej; x < d->ej + d->ew; x++)
                for (int c = 0; c < C; c++)
                    out[((size_t)y * s->size + x) * C + c] = s->erase_pixel ? rng_normal(&r) : 0.0f;
    }
}

void transform_apply_eval(float *out, const image *src, const transform_spec *s, transform_work *w)
{
    assert(src->c == s->channels);
    int oh, ow;
    transform_short_side(&oh, &ow, src->h, src->w, s->resize);
    resample_crop(&w->a, src, 0, 0, src->h, src->w, oh, ow, s->interp, &w->tmp);
    transform_center_crop(&w->b, &w->a, s->size, s->size);
    transform_normalize(out, &w->b, s->mean, s->std);
}
