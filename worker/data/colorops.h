/* colorops.h - PIL's per-pixel and filter image operations, in place.
 *
 * The colour operations torchvision applies to PIL images (ColorJitter and
 * RandAugment): ImageEnhance's Brightness, Contrast, Color (saturation) and
 * Sharpness, torchvision's hue shift through PIL's HSV, and ImageOps'
 * posterize, solarize, autocontrast and equalize. Each computes what Pillow
 * 9 computes (its float blend truncated to 8 bits, its fixed-point luma, its
 * HSV conversions, its 3x3 smoothing with copied borders), so that results
 * equal PIL's byte for byte. Images are 8-bit (h, w, c) with c = 1 or 3;
 * for c = 1 the saturation and hue operations leave the image as it is, as
 * torchvision does. Pure functions; scratch memory is the caller's.
 * Thread-safe.
 */
#ifndef KILN_DATA_COLOROPS_H
#define KILN_DATA_COLOROPS_H

#include "worker/data/image.h"

/* ImageEnhance.Brightness(im).enhance(f): blend of black and im. */
void colorops_brightness(image *im, float f);

/* ImageEnhance.Contrast(im).enhance(f): blend of the grey level
 * int(mean of im's luma + 0.5) and im. */
void colorops_contrast(image *im, float f);

/* ImageEnhance.Color(im).enhance(f): blend of im's luma (as RGB) and im. */
void colorops_saturation(image *im, float f);

/* torchvision's adjust_hue: PIL RGB -> HSV, H += uint8(f * 255) mod 256,
 * HSV -> RGB. -0.5 <= f <= 0.5. */
void colorops_hue(image *im, double f);

/* ImageEnhance.Sharpness(im).enhance(f): blend of PIL's SMOOTH filter of im
 * (border pixels kept) and im. tmp is scratch. */
void colorops_sharpness(image *im, float f, image *tmp);

/* ImageOps.posterize: keep the top `bits` bits (1..8) of every sample. */
void colorops_posterize(image *im, int bits);

/* ImageOps.solarize: samples >= threshold become 255 - sample. */
void colorops_solarize(image *im, double threshold);

/* ImageOps.autocontrast (cutoff 0): each channel stretched to 0..255. */
void colorops_autocontrast(image *im);

/* ImageOps.equalize: PIL's histogram equalisation of each channel. */
void colorops_equalize(image *im);

#endif
