/* gradcheck.c - finite-difference gradient checks (see gradcheck.h). */
#include "tests/unit/gradcheck.h"

#include "tests/unit/testutil.h"

#include <math.h>
#include <stdio.h>

double gradcheck_loss(const float *y, const float *dy, size_t ny)
{
    return tu_dot(y, dy, ny);
}

double gradcheck_input(const char *label, gradcheck_fwd fwd, void *ctx, float *x, size_t n,
                       size_t stride, const float *analytic, float *y, const float *dy, size_t ny,
                       float h)
{
    double scale = fmax(tu_max_abs(analytic, n), 1e-12), worst = 0.0;
    if (stride == 0)
        stride = 1;
    for (size_t i = 0; i < n; i += stride) {
        float x0 = x[i];
        /* Use the step actually representable around x0, not h itself. */
        float xp = x0 + h, xm = x0 - h;
        x[i] = xp;
        fwd(ctx, y);
        double lp = gradcheck_loss(y, dy, ny);
        x[i] = xm;
        fwd(ctx, y);
        double lm = gradcheck_loss(y, dy, ny);
        x[i] = x0;
        double fd = (lp - lm) / ((double)xp - (double)xm);
        worst = fmax(worst, fabs(fd - (double)analytic[i]));
    }
    fwd(ctx, y);
    double rel = worst / scale;
    printf("  gradcheck %-40s max|fd - an| / max|an| = %.2e\n", label, rel);
    return rel;
}
