/* testutil.h - helpers shared by the check suites.
 *
 * Reference files are read from $KILN_REF (default ../shared/reference),
 * never copied into the project. Comparison follows the reference README:
 * max|c - r| <= tol * max|r| per tensor. Layout helpers convert PyTorch's
 * NCHW tensors to the engine's channels-last layout and back.
 * Single-threaded test code; allocation failures abort.
 */
#ifndef KILN_TESTUTIL_H
#define KILN_TESTUTIL_H

#include "common/modelcfg.h"
#include "common/safetensors.h"

#include <check.h>
#include <jansson.h>
#include <stddef.h>

/* Adds to suite s one case of tests that share a timeout (seconds; 0 keeps
 * check's default) and a checked fixture (setup/teardown, either may be
 * NULL), and returns it for any loop tests. Write the list as
 * TU_TESTS(test_a, test_b, ...). */
TCase *tu_case_add(Suite *s, const char *name, int timeout, SFun setup, SFun teardown,
                   const TTest *const *tests, size_t n);

/* The two last arguments of tu_case_add for a list of START_TEST names. */
#define TU_TESTS(...)                                                                              \
    (const TTest *const[]){__VA_ARGS__},                                                           \
        sizeof((const TTest *const[]){__VA_ARGS__}) / sizeof(const TTest *)

/* A new empty folder /tmp/kiln-<tag>-XXXXXX (malloc'd path; the test frees it
 * after tu_remove_dir). */
char *tu_temp_dir(const char *tag);

/* Removes a folder and everything in it (common/files); fails the test if it
 * cannot. */
void tu_remove_dir(const char *dir);

/* Fails the test unless dir_a/name and dir_b/name hold the same bytes. */
void tu_same_file(const char *dir_a, const char *dir_b, const char *name);

/* The JSON file dir/name (a job's report.json, architecture.json, ...); fails
 * the test naming the file if it is missing or not JSON. New reference. */
json_t *tu_load_json(const char *dir, const char *name);

/* The reference folders: $KILN_REF (a colon-separated list; the shared
 * folder first, then e.g. build/default/ref, the files tests/reference/
 * gen_models.py writes) or "../shared/reference". */
const char *tu_ref_dirs(void);

/* The first reference folder (the shared one, where the named files are). */
const char *tu_ref_dir(void);

/* Opens <ref dir>/<file>; fails the current test if it cannot. */
st_file *tu_open_ref(const char *file);

/* A malloc'd float32 copy of tensor `name`; *numel receives its size.
 * Fails the current test if the tensor is missing. */
float *tu_tensor(const st_file *f, const char *name, size_t *numel);

/* Parses a "model" config from JSON text into *c; fails the test naming the JSON
 * error or the fields modelcfg_parse refused. */
void tu_model_cfg(model_cfg *c, const char *text);

/* max |a[i]| */
double tu_max_abs(const float *a, size_t n);

/* max |c - r| / max |r| (max |c - r| if r is all zero). */
double tu_rel_err(const float *c, const float *r, size_t n);

/* The same against a reference r computed in double. */
double tu_rel_err_d(const float *c, const double *r, size_t n);

/* Layout conversions for a (B, C, H, W) tensor. */
void tu_nchw_to_nhwc(float *dst, const float *src, int B, int C, int H, int W);
void tu_nhwc_to_nchw(float *dst, const float *src, int B, int C, int H, int W);

/* Fills a with uniform values in [lo, hi) from a fixed-seed generator. */
void tu_fill_uniform(float *a, size_t n, float lo, float hi, unsigned long long seed);

/* sum_i a[i] * b[i] in double. */
double tu_dot(const float *a, const float *b, size_t n);

#endif
