/* gradcheck.h - finite-difference gradient checks for the layer kernels (ggml style).
 *
 * The scalar loss is L = sum(y * dy) over a forward output y and a fixed random dy,
 * accumulated in double. gradcheck_input() perturbs one input tensor element by element
 * (central differences, x +- h), reruns the caller's forward, and compares
 * (L(x+h) - L(x-h)) / 2h with the analytic gradient the caller's backward produced.
 * Test-only code: single-threaded apart from the kernels it calls.
 */
#ifndef KILN_GRADCHECK_H
#define KILN_GRADCHECK_H

#include <stddef.h>

/* Runs the forward pass on the current inputs (read through ctx) into y. */
typedef void (*gradcheck_fwd)(void *ctx, float *y);

/* Checks d L / d x for every `stride`-th element of x (n floats, perturbed in place and
 * restored). `analytic` holds the backward's gradient for x; y (ny floats) is scratch for
 * the forward and dy the upstream gradient. Returns max|fd - analytic| / max|analytic| over
 * the checked elements (max|analytic| taken over all of x, at least 1e-12) and prints it
 * with `label`. */
double gradcheck_input(const char *label, gradcheck_fwd fwd, void *ctx, float *x, size_t n,
                       size_t stride, const float *analytic, float *y, const float *dy, size_t ny,
                       float h);

/* L = sum(y * dy) in double. */
double gradcheck_loss(const float *y, const float *dy, size_t ny);

#endif
