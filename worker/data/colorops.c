/* colorops.c - PIL's colour operations (see colorops.h).
 *
 * The blend is Pillow's: out = in1 + alpha * (in2 - in1) in float,
 * truncated, clipped outside [0, 255]. Lookup tables carry the per-value
 * operations. Depends on libc, libm; thread-safe.
 */
#include "worker/data/colorops.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static uint8_t blend1(int a, int b, float alpha)
{
    float t = (float)a + alpha * (float)(b - a);
    if (t <= 0.0f)
        return 0;
    if (t >= 255.0f)
        return 255;
    return (uint8_t)t;
}

static size_t samples(const image *im)
{
    return (size_t)im->h * im->w * im->c;
}

static uint8_t luma(const uint8_t *rgb)
{
    return (uint8_t)(((uint32_t)rgb[0] * 19595u + (uint32_t)rgb[1] * 38470u +
                      (uint32_t)rgb[2] * 7471u + 0x8000u) >>
                     16);
}

void colorops_brightness(image *im, float f)
{
    size_t n = samples(im);
    for (size_t i = 0; i < n; i++)
        im->px[i] = blend1(0, im->px[i], f);
}

void colorops_contrast(image *im, float f)
{
    size_t n = (size_t)im->h * im->w;
    uint64_t hist[256];
    memset(hist, 0, sizeof hist);
    for (size_t i = 0; i < n; i++)
        hist[im->c == 3 ? luma(im->px + 3 * i) : im->px[i]]++;
    double sum = 0;
    for (int v = 0; v < 256; v++)
        sum += (double)v * (double)hist[v];
    int mean = (int)(sum / (double)n + 0.5);
    size_t m = samples(im);
    for (size_t i = 0; i < m; i++)
        im->px[i] = blend1(mean, im->px[i], f);
}

void colorops_saturation(image *im, float f)
{
    if (im->c != 3)
        return;
    size_t n = (size_t)im->h * im->w;
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = im->px + 3 * i;
        int l = luma(p);
        for (int c = 0; c < 3; c++)
            p[c] = blend1(l, p[c], f);
    }
}

static uint8_t clip8i(int v)
{
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static void rgb_to_hsv(uint8_t *hsv, const uint8_t *rgb)
{
    int r = rgb[0], g = rgb[1], b = rgb[2];
    int maxc = r > g ? (r > b ? r : b) : (g > b ? g : b);
    int minc = r < g ? (r < b ? r : b) : (g < b ? g : b);
    hsv[2] = (uint8_t)maxc;
    if (minc == maxc) {
        hsv[0] = hsv[1] = 0;
        return;
    }
    float cr = (float)(maxc - minc);
    float s = cr / (float)maxc;
    float rc = (float)(maxc - r) / cr, gc = (float)(maxc - g) / cr, bc = (float)(maxc - b) / cr;
    float h;
    if (r == maxc)
        h = bc - gc;
    else if (g == maxc)
        h = (float)(2.0 + (double)rc - (double)bc);
    else
        h = (float)(4.0 + (double)gc - (double)rc);
    h = (float)fmod((double)h / 6.0 + 1.0, 1.0);
    hsv[0] = clip8i((int)((double)h * 255.0));
    hsv[1] = clip8i((int)((double)s * 255.0));
}

static void hsv_to_rgb(uint8_t *rgb, const uint8_t *hsv)
{
    int h = hsv[0], s = hsv[1], v = hsv[2];
    if (s == 0) {
        rgb[0] = rgb[1] = rgb[2] = (uint8_t)v;
        return;
    }
    int i = (int)floor((double)(float)h * 6.0 / 255.0);
    float f = (float)((double)(float)h * 6.0 / 255.0 - (double)(float)i);
    float fs = (float)((double)(float)s / 255.0);
    uint8_t p = clip8i((int)round((double)(float)v * (1.0 - (double)fs)));
    uint8_t q = clip8i((int)round((double)(float)v * (1.0 - (double)(fs * f))));
    uint8_t t = clip8i((int)round((double)(float)v * (1.0 - (double)fs * (1.0 - (double)f))));
    uint8_t V = (uint8_t)v;
    switch (i % 6) {
    case 0:
        rgb[0] = V, rgb[1] = t, rgb[2] = p;
        break;
    case 1:
        rgb[0] = q, rgb[1] = V, rgb[2] = p;
        break;
    case 2:
        rgb[0] = p, rgb[1] = V, rgb[2] = t;
        break;
    case 3:
        rgb[0] = p, rgb[1] = q, rgb[2] = V;
        break;
    case 4:
        rgb[0] = t, rgb[1] = p, rgb[2] = V;
        break;
    default:
        rgb[0] = V, rgb[1] = p, rgb[2] = q;
        break;
    }
}

void colorops_hue(image *im, double f)
{
    assert(f >= -0.5 && f <= 0.5);
    if (im->c != 3)
        return;
    /* numpy's uint8(x) of a float: truncated toward zero, then wrapped. */
    uint8_t shift = (uint8_t)(int)(f * 255.0);
    size_t n = (size_t)im->h * im->w;
    for (size_t i = 0; i < n; i++) {
        uint8_t hsv[3];
        rgb_to_hsv(hsv, im->px + 3 * i);
        hsv[0] = (uint8_t)(hsv[0] + shift);
        hsv_to_rgb(im->px + 3 * i, hsv);
    }
}

/* PIL's ImagingFilter 3x3 clip: rounded to nearest. */
static uint8_t clip8f(float v)
{
    if (v <= 0.0f)
        return 0;
    if (v >= 255.0f)
        return 255;
    return (uint8_t)(v + 0.5f);
}

void colorops_sharpness(image *im, float f, image *tmp)
{
    int H = im->h, W = im->w, C = im->c;
    if (H < 3 || W < 3)
        return; /* PIL's filter keeps such images as they are: the blend is the identity */
    image_resize_buffer(tmp, H, W, C);
    memcpy(tmp->px, im->px, samples(im));
    const float k1 = 1.0f / 13.0f, k5 = 5.0f / 13.0f;
    size_t st = (size_t)W * C;
    for (int y = 1; y < H - 1; y++) {
        const uint8_t *up = im->px + (size_t)(y - 1) * st, *mid = up + st, *dn = mid + st;
        uint8_t *o = tmp->px + (size_t)y * st;
        for (int x = 1; x < W - 1; x++)
            for (int c = 0; c < C; c++) {
                int i = x * C + c;
                float s = 0.0f;
                s += (float)dn[i - C] * k1 + (float)dn[i] * k1 + (float)dn[i + C] * k1;
                s += (float)mid[i - C] * k1 + (float)mid[i] * k5 + (float)mid[i + C] * k1;
                s += (float)up[i - C] * k1 + (float)up[i] * k1 + (float)up[i + C] * k1;
                o[i] = clip8f(s);
            }
    }
    size_t n = samples(im);
    for (size_t i = 0; i < n; i++)
        im->px[i] = blend1(tmp->px[i], im->px[i], f);
}

static void apply_luts(image *im, uint8_t lut[3][256])
{
    size_t n = (size_t)im->h * im->w;
    int C = im->c;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < C; c++)
            im->px[i * C + c] = lut[c][im->px[i * C + c]];
}

static void histograms(const image *im, uint64_t hist[3][256])
{
    memset(hist, 0, 3 * 256 * sizeof(uint64_t));
    size_t n = (size_t)im->h * im->w;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < im->c; c++)
            hist[c][im->px[i * im->c + c]]++;
}

void colorops_posterize(image *im, int bits)
{
    assert(bits >= 1 && bits <= 8);
    uint8_t mask = (uint8_t) ~((1u << (8 - bits)) - 1u);
    size_t n = samples(im);
    for (size_t i = 0; i < n; i++)
        im->px[i] &= mask;
}

void colorops_solarize(image *im, double threshold)
{
    size_t n = samples(im);
    for (size_t i = 0; i < n; i++)
        if (!((double)im->px[i] < threshold))
            im->px[i] = (uint8_t)(255 - im->px[i]);
}

void colorops_autocontrast(image *im)
{
    uint64_t hist[3][256];
    uint8_t lut[3][256];
    histograms(im, hist);
    for (int c = 0; c < im->c; c++) {
        int lo = 0, hi = 255;
        while (lo < 256 && hist[c][lo] == 0)
            lo++;
        while (hi >= 0 && hist[c][hi] == 0)
            hi--;
        for (int v = 0; v < 256; v++) {
            if (hi <= lo) {
                lut[c][v] = (uint8_t)v;
                continue;
            }
            double scale = 255.0 / (hi - lo), offset = -lo * scale;
            lut[c][v] = clip8i((int)(v * scale + offset));
        }
    }
    apply_luts(im, lut);
}

void colorops_equalize(image *im)
{
    uint64_t hist[3][256];
    uint8_t lut[3][256];
    histograms(im, hist);
    for (int c = 0; c < im->c; c++) {
        uint64_t total = 0, last = 0;
        int used = 0;
        for (int v = 0; v < 256; v++)
            if (hist[c][v]) {
                total += hist[c][v];
                last = hist[c][v];
                used++;
            }
        uint64_t step = used <= 1 ? 0 : (total - last) / 255;
        uint64_t n = step / 2;
        for (int v = 0; v < 256; v++) {
            lut[c][v] = step == 0 ? (uint8_t)v : (uint8_t)(n / step > 255 ? 255 : n / step);
            n += hist[c][v];
        }
    }
    apply_luts(im, lut);
}
