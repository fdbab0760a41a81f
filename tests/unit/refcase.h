/* refcase.h - one PyTorch reference case and the checks against it.
 *
 * A case is a set of tensors sharing the prefix "<name>." in a reference
 * file, plus its attributes (the JSON in the file's metadata under <name>).
 * The layer runners (ref_run_<op>) take every shape and attribute from the
 * file, so any file of the same format works. Comparison follows the
 * reference README: max|c - r| <= tol * max|r|; names listed in the case's
 * `exact_zeros` use max|c| <= 1e-5 * G instead (G = the largest max|r| of
 * the case's gradients). Each check prints one line with its error, as
 * llm.c does, and fails the running check test on a mismatch.
 */
#ifndef KILN_REFCASE_H
#define KILN_REFCASE_H

#include "common/safetensors.h"

#include <jansson.h>
#include <stddef.h>

/* Tolerances of the layers file (reference README). */
#define REF_TOL_FWD   1e-5
#define REF_TOL_GRAD  3e-5
#define REF_TOL_STATE 1e-5

typedef struct ref_case {
    const st_file *f;
    const char *name;  /* the case name, e.g. "conv2d_1x1" */
    json_t *attrs;     /* borrowed: the case's attribute object */
    double grad_scale; /* G: the largest max|r| over the case's gradient tensors */
} ref_case;

/* Fills c for case `name` of file f (attrs parsed from the metadata; owned by
 * c until ref_case_deinit). */
void ref_case_init(ref_case *c, const st_file *f, const char *name);
void ref_case_deinit(ref_case *c);

/* Whether the case has a tensor "<name>.<suffix>". */
int ref_has(const ref_case *c, const char *suffix);

/* A malloc'd float copy of "<name>.<suffix>"; *numel and the shape (up to 8
 * dims, *ndim) are returned if the pointers are not NULL. Fails the test if
 * the tensor is missing. */
float *ref_get(const ref_case *c, const char *suffix, size_t *numel, int *ndim, int64_t *shape);

/* Same, but a 4-D NCHW tensor is returned channels-last (B, H, W, C). */
float *ref_get_nhwc(const ref_case *c, const char *suffix, size_t *numel);

/* Labels "<name>.<suffix>" (I64) as int32 in a malloc'd array. */
int *ref_get_labels(const ref_case *c, const char *suffix, size_t *numel);

/* Compares `computed` (n floats) against "<name>.<suffix>" with tolerance
 * tol (or the exact-zero rule when the suffix is listed in exact_zeros),
 * prints the result line, and fails the test on a mismatch. If `nhwc` is
 * set the computed tensor is channels-last and is compared against a 4-D
 * NCHW reference. Returns the measured error. */
double ref_check(const ref_case *c, const char *suffix, const float *computed, size_t n, double tol,
                 int nhwc);

/* Integer attribute `key` of the case (fails the test if missing). */
int ref_attr_int(const ref_case *c, const char *key);
double ref_attr_double(const ref_case *c, const char *key);
/* 0/1 for JSON booleans; `dflt` if missing. */
int ref_attr_bool(const ref_case *c, const char *key, int dflt);
const char *ref_attr_str(const ref_case *c, const char *key);

#endif
